//! The apiregistration group (kube-aggregator's `pkg/registry/apiservice`).

pub mod apiservice;
