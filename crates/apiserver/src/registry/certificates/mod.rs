//! The certificates.k8s.io group: CertificateSigningRequests.

pub mod csr;
