//! The `apiextensions.k8s.io` group: CustomResourceDefinitions, and the custom resources they
//! define, whose strategies are built while the server runs.

pub mod conversion;
pub mod customresource;
pub mod customresourcedefinition;
