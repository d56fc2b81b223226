//! ferry's Kubernetes API server: HTTPS with client-certificate and token authentication,
//! authorization, admission, and the REST verbs over the store, serving what unmodified
//! kubectl expects of an upstream cluster.
//!
//! Start at [`server`] (the request pipeline), then [`rest`] (the verbs) and [`watch`].
//! Kind-specific rules are in [`strategy`]; the resource table, printers and patch logic are in
//! the `ferry-api` crate; objects live in a `ferry-store` `Store`.

pub mod admission;
pub mod auth;
pub mod binding;
pub mod cache;
pub mod convert;
pub mod csr;
pub mod discovery;
pub mod object;
pub mod pki;
pub mod protobuf;
pub mod request;
pub mod rest;
pub mod review;
pub mod scale;
pub mod selector;
pub mod server;
pub mod service;
pub mod status;
pub mod storemetrics;
pub mod strategy;
pub mod watch;

pub use server::{serve, Server};
