//! The admissionregistration.k8s.io group.

pub mod webhookconfiguration;
