//! The `flowcontrol.apiserver.k8s.io` group: API Priority and Fairness' configuration
//! (upstream's `pkg/registry/flowcontrol`). The server reads these objects to classify and
//! limit requests (`crate::flowcontrol`).

pub mod flowschema;
pub mod prioritylevelconfiguration;
