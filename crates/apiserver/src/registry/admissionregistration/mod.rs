//! The admissionregistration.k8s.io group.

pub mod mutating_policy;
pub mod policy;
pub mod webhookconfiguration;
