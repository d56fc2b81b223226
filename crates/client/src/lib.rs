//! `ferry-client`: what ferry's components share when they talk to the API server, as upstream's
//! client-go gives it to kube-controller-manager, kube-scheduler and the kubelet.
//!
//! - [`events`]: an event recorder writing core/v1 Events and aggregating repeats (count,
//!   lastTimestamp) as client-go's legacy recorder does, off the caller's path.
//! - [`leader`]: leader election on a coordination.k8s.io/v1 Lease, so two copies of a component
//!   can run and one works.
//! - [`connect`]: a kube-rs [`kube::Client`] from a kubeconfig file.
//! - [`bootstrap`]: a node joining a cluster with a join token (TLS bootstrapping): pin the CA
//!   by its hash, ask for a client certificate with a CSR, write a kubeconfig; and the
//!   kubelet's serving certificate, asked the same way.
//! - [`tls`]: the HTTPS servers' TLS configuration (client certificates of the cluster CA).
//! - [`upgrade`]: proxying an exec, attach or port-forward one hop further (API server →
//!   kubelet → runtime), whatever protocol the two ends agree on.
//!
//! Everything here talks to the API server only through kube-rs; nothing reaches the store.

pub mod bootstrap;
pub mod events;
pub mod kubeconfig;
pub mod leader;
pub mod tls;
pub mod upgrade;
pub mod watch;

use std::path::Path;

/// Errors of building a client.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The kubeconfig file could not be read or parsed.
    #[error("reading kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// Why.
        source: kube::config::KubeconfigError,
    },
    /// The client could not be built from it.
    #[error("building a client: {0}")]
    Client(#[from] kube::Error),
}

/// A client from a kubeconfig file (its current context), as `--kubeconfig` gives it.
pub async fn connect(kubeconfig: &Path) -> Result<kube::Client, ConnectError> {
    let wrap = |source| ConnectError::Kubeconfig {
        path: kubeconfig.display().to_string(),
        source,
    };
    let file = kube::config::Kubeconfig::read_from(kubeconfig).map_err(wrap)?;
    let config =
        kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(wrap)?;
    Ok(kube::Client::try_from(config)?)
}
