//! ferry's Kubernetes API server: HTTPS with client-certificate and token authentication,
//! authorization, admission, and the REST verbs over the store, serving what unmodified
//! kubectl expects of an upstream cluster.
//!
//! Start at [`server`] (the handler chain: [`filters`], then the router in [`handlers`]), then
//! [`rest`] (the verbs, one implementation for every kind) and [`watch`]. What is particular to
//! a kind is its strategy in [`registry`], one file per kind; [`admission`] holds the plugins;
//! [`kubelet`] is how the server reaches a node's kubelet for `pods/log`, `exec`, `attach` and
//! `portforward` ([`handlers::connect`]); [`apiextensions`] serves CustomResourceDefinitions'
//! resources; [`aggregator`] keeps the APIServices and proxies aggregated APIs;
//! [`journey`] records a traced write's steps and serves pods' journeys, which [`ui`] shows in
//! a browser; objects live in [`storage`] over a `ferry-store` `Store`; the resource table, the types,
//! printers and patch logic are in the `ferry-api` crate. docs/ARCHITECTURE.md follows a
//! request through these files.

pub mod admission;
pub mod aggregator;
pub mod apiextensions;
pub mod audit;
pub mod auth;
pub mod authz_webhook;
pub mod binding;
pub mod body;
pub mod cache;
pub mod discovery;
pub mod encryption;
pub mod endpoint_reconciler;
pub mod features;
pub mod fieldmanager;
pub mod filters;
pub mod flowcontrol;
pub mod handlers;
pub mod journey;
pub mod kubelet;
pub mod list_options;
pub mod metrics_api;
pub mod node_authorizer;
pub mod node_graph;
pub mod object;
pub mod object_counts;
pub mod oidc;
pub mod pki;
pub mod rbac;
pub mod reflector;
pub mod registry;
pub mod request;
pub mod rest;
pub mod review;
pub mod scale;
pub mod server;
pub mod serviceaccount;
pub mod status;
pub mod storage;
pub mod storemetrics;
pub mod token_webhook;
pub mod ui;
pub mod watch;
pub mod webhook;

pub use server::{serve, Server};
