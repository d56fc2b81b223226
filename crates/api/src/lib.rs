//! `ferry-api` holds the types and tables ferry's API server needs on top of
//! the object types from `k8s-openapi`: which resources exist, in which group
//! and version, whether they are namespaced, which verbs, short names,
//! categories and subresources upstream Kubernetes (v1.33) advertises for
//! them, and in which order the API groups are listed; the `k8s-openapi` type
//! of each kind ([`kinds`]), the OpenAPI documents built from them, patch
//! logic and table printers. It is pure data and pure functions: no I/O, no
//! async.
//!
//! Start reading at [`registry`]: the [`registry::RESOURCES`] table and its
//! look-ups [`registry::find`], [`registry::find_by_kind`] and
//! [`registry::groups`].

pub mod cron;
pub mod duration;
pub mod jsonpatch;
pub mod kinds;
pub mod label_selector;
pub mod matching;
pub mod names;
pub mod openapi;
pub mod patch;
pub mod pod_security;
pub mod printers;
pub mod qos;
pub mod quantity;
pub mod query;
pub mod quota;
pub mod registry;
pub mod resources;
pub mod selector;
pub mod time;
pub mod volumes;

pub use registry::{ResourceInfo, Subresource, RESOURCES};
