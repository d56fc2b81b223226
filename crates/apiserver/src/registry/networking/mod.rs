//! The networking.k8s.io group's kinds with rules of their own.

pub mod ipaddress;
pub mod servicecidr;
