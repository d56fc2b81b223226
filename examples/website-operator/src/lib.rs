//! An example operator written with kube-rs, run against `ferry server` by
//! `crates/ferry/tests/operator.rs`: it reconciles each `Website`
//! (`websites.example.ferry.dev/v1`) into a ConfigMap holding `spec.content` and a Deployment
//! of `spec.replicas` web servers, both applied server-side and owned by the Website; it
//! reports `status.observedGeneration` and a `Reconciled` condition through the status
//! subresource, records Events, and on deletion deletes the children before its finalizer is
//! removed.
//!
//! Why a workspace crate rather than a Cargo example of `crates/ferry`: the test drives the
//! same code in-process (a library it can call, with its own unit tests run by
//! `cargo test --workspace`), and kube's `derive` feature (kube-derive, schemars in kube-core)
//! stays out of the `ferry` binary: only this crate and ferry's tests pull it in.
//!
//! Start reading at [`website`] (the custom resource), then [`children`] (what it becomes),
//! then [`controller`] (the reconciler). `src/main.rs` is the binary:
//! `cargo run -p website-operator` against the cluster `KUBECONFIG` names.

pub mod children;
pub mod controller;
pub mod website;

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, CustomResourceExt};

pub use controller::run;
pub use website::{Website, WebsiteSpec, WebsiteStatus};

/// What a reconciliation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused a request, or could not be reached.
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
    /// The Website lacks a field the API server always sets.
    #[error("the Website has no {0}")]
    MissingField(&'static str),
}

/// What installing the CRD can fail with.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// Applying the definition failed.
    #[error("applying the CustomResourceDefinition failed: {0}")]
    Apply(#[from] kube::Error),
    /// Watching the definition for its condition failed.
    #[error("waiting for the CustomResourceDefinition failed: {0}")]
    Wait(#[from] kube::runtime::wait::Error),
    /// The definition was not `Established` in time.
    #[error("the CustomResourceDefinition was not Established within {0:?}")]
    NotEstablished(Duration),
}

/// Applies the definition derived from [`Website`] and waits up to `timeout` for it to be
/// `Established`, so that Websites can be served.
pub async fn install_crd(client: &Client, timeout: Duration) -> Result<(), InstallError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = Website::crd();
    let name = Website::crd_name();
    let params = PatchParams::apply(controller::FIELD_MANAGER).force();
    crds.patch(name, &params, &Patch::Apply(&crd)).await?;
    tokio::time::timeout(
        timeout,
        await_condition(crds, name, conditions::is_crd_established()),
    )
    .await
    .map_err(|_| InstallError::NotEstablished(timeout))??;
    Ok(())
}
