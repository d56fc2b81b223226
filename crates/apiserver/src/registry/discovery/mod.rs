//! The discovery.k8s.io group's kinds with rules of their own.

pub mod endpointslice;
