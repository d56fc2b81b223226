//! The admissionregistration.k8s.io group.

pub mod policy;
pub mod webhookconfiguration;
