//! `ferry-client`: what ferry's components share when they talk to the API server, as upstream's
//! client-go gives it to kube-controller-manager, kube-scheduler and the kubelet.
//!
//! - [`events`]: an event recorder writing core/v1 Events and aggregating repeats (count,
//!   lastTimestamp) as client-go's legacy recorder does, off the caller's path.
//! - [`leader`]: leader election on a coordination.k8s.io/v1 Lease, so two copies of a component
//!   can run and one works.
//! - [`connect`]: a kube-rs [`kube::Client`] from a kubeconfig file.
//! - [`clientbuilder`]: the clients a controller manager gives its controllers (one shared, or
//!   one per controller with its service account's token).
//! - [`bootstrap`]: a node joining a cluster with a join token (TLS bootstrapping): pin the CA
//!   by its hash, ask for a client certificate with a CSR, write a kubeconfig; and the
//!   kubelet's serving certificate, asked the same way.
//! - [`serving`]: kube-scheduler's and kube-controller-manager's own HTTPS server (health,
//!   `/metrics`), its callers checked by the API server ([`delegated`]: TokenReview,
//!   SubjectAccessReview); [`metrics`]: client-go's request and leader-election metrics.
//! - [`tls`]: the HTTPS servers' TLS configuration (client certificates of the cluster CA).
//! - [`journey`]: the pod's journey: requests carry the `traceparent` of the step they are
//!   made in; a component of its own process posts its steps to the API server.
//! - [`upgrade`]: proxying an exec, attach or port-forward one hop further (API server →
//!   kubelet → runtime), whatever protocol the two ends agree on.
//!
//! Everything here talks to the API server only through kube-rs; nothing reaches the store.

pub mod bootstrap;
pub mod clientbuilder;
pub mod delegated;
pub mod events;
pub mod journey;
pub mod kubeconfig;
pub mod leader;
pub mod metrics;
pub mod serving;
pub mod spdy;
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

/// The `User-Agent` a component of ferry sends, as upstream's components write theirs
/// (`kubelet/v1.33.0 (linux/amd64) kubernetes/abcdef`): the API server records the part before
/// the first `/` as the field manager of the component's writes.
pub fn user_agent(component: &str) -> String {
    format!(
        "{component}/v{} ({}/{}) ferry",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        go_arch(std::env::consts::ARCH)
    )
}

/// The `User-Agent` of one controller of `component` acting with its own credentials, as
/// upstream's client builder appends the controller's name: `kube-controller-manager/v0.1.0
/// (linux/amd64) ferry/deployment-controller` (the field manager stays `component`).
pub fn controller_user_agent(component: &str, controller: &str) -> String {
    format!("{}/{controller}", user_agent(component))
}

/// Go's name of a CPU architecture (what `kubectl version` and user agents show).
fn go_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// A client from a kubeconfig file (its current context), as `--kubeconfig` gives it, for
/// `component` (its [`user_agent`]: `kube-controller-manager`, `kube-scheduler`, `kubelet`…).
pub async fn connect(kubeconfig: &Path, component: &str) -> Result<kube::Client, ConnectError> {
    Ok(journey::client(config(kubeconfig, component).await?)?)
}

/// The configuration [`connect`] makes its client from (for clients derived from it).
pub async fn config(kubeconfig: &Path, component: &str) -> Result<kube::Config, ConnectError> {
    let wrap = |source| ConnectError::Kubeconfig {
        path: kubeconfig.display().to_string(),
        source,
    };
    let file = kube::config::Kubeconfig::read_from(kubeconfig).map_err(wrap)?;
    let config =
        kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(wrap)?;
    Ok(with_user_agent(config, component))
}

/// `config` sending `component`'s [`user_agent`] with every request.
pub fn with_user_agent(config: kube::Config, component: &str) -> kube::Config {
    with_user_agent_value(config, &user_agent(component))
}

/// `config` sending `agent` as its `User-Agent`, replacing any other.
pub fn with_user_agent_value(mut config: kube::Config, agent: &str) -> kube::Config {
    if let Ok(value) = http::HeaderValue::from_str(agent) {
        config
            .headers
            .retain(|(name, _)| name != http::header::USER_AGENT);
        config.headers.push((http::header::USER_AGENT, value));
    }
    config
}

#[cfg(test)]
mod tests {
    #[test]
    fn user_agents_name_the_component_first() {
        let ua = super::user_agent("kube-scheduler");
        assert!(ua.starts_with("kube-scheduler/v"), "{ua}");
        assert_eq!(ua.split('/').next(), Some("kube-scheduler"));
        let mut config = kube::Config::new("https://127.0.0.1:6443".parse().expect("url"));
        config = super::with_user_agent(super::with_user_agent(config, "a"), "kubelet");
        let agents: Vec<_> = config
            .headers
            .iter()
            .filter(|(n, _)| n == http::header::USER_AGENT)
            .collect();
        assert_eq!(agents.len(), 1);
        assert!(agents[0].1.to_str().expect("ascii").starts_with("kubelet/"));
    }

    #[test]
    fn controllers_are_named_after_the_manager() {
        let ua = super::controller_user_agent("kube-controller-manager", "deployment-controller");
        assert!(ua.starts_with("kube-controller-manager/v"), "{ua}");
        assert!(ua.ends_with(") ferry/deployment-controller"), "{ua}");
        assert_eq!(ua.split('/').next(), Some("kube-controller-manager"));
    }
}
