//! NetworkPolicy, enforced by each agent for its own pods in nftables (k3s ships kube-router's
//! policy controller for the same job): [`model`] decides, as a pure function of the policies,
//! pods and namespaces, which of this node's pods are isolated and what they may still receive
//! and send; [`render`] writes the table; [`PolicyController`] watches the three kinds and
//! replaces the table in one transaction after each change (changes that come together make
//! one sync) and every resync, which repairs hand edits.

pub mod model;
pub mod render;

#[cfg(test)]
mod tests;

use prometheus_client::metrics::counter::Counter;
use std::sync::Arc;
use std::time::Duration;

use ferry_client::watch::reflect;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::runtime::reflector::{self, Store};
use kube::Api;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::Notify;

/// Running `nft` failed.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// `nft` could not be run.
    #[error("running nft: {0}")]
    Spawn(#[from] std::io::Error),
    /// `nft` refused the script.
    #[error("nft -f failed: {0}")]
    Failed(String),
}

/// Runs `script` with `nft -f -` (one transaction).
pub async fn nft(script: &str) -> Result<(), NftError> {
    let mut child = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).await?;
    }
    let out = child.wait_with_output().await?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NftError::Failed(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// Counters of the policy controller.
#[derive(Debug, Default)]
pub struct PolicyStats {
    /// Tables applied.
    pub syncs: Counter,
    /// Syncs that failed (and were retried).
    pub failures: Counter,
}

/// Keeps `inet ferry-policy` in line with the NetworkPolicies for this node's pods.
pub struct PolicyController {
    node_name: String,
    resync: Duration,
    policies: Store<NetworkPolicy>,
    pods: Store<Pod>,
    namespaces: Store<Namespace>,
    changed: Arc<Notify>,
    /// Its counters.
    pub stats: Arc<PolicyStats>,
}

impl PolicyController {
    /// Watches NetworkPolicies, Pods and Namespaces through `client`; returns the controller
    /// and the watches to run beside [`PolicyController::run`].
    pub fn new(
        client: kube::Client,
        node_name: String,
        resync: Duration,
    ) -> (
        PolicyController,
        impl std::future::Future<Output = ()> + Send,
    ) {
        let changed = Arc::new(Notify::new());
        let (policies, policies_writer) = reflector::store();
        let (pods, pods_writer) = reflector::store();
        let (namespaces, namespaces_writer) = reflector::store();
        let watches = {
            let changed = changed.clone();
            async move {
                tokio::join!(
                    reflect(
                        Api::<NetworkPolicy>::all(client.clone()),
                        policies_writer,
                        changed.clone(),
                        "network policy"
                    ),
                    reflect(
                        Api::<Pod>::all(client.clone()),
                        pods_writer,
                        changed.clone(),
                        "network policy"
                    ),
                    reflect(
                        Api::<Namespace>::all(client),
                        namespaces_writer,
                        changed,
                        "network policy"
                    ),
                );
            }
        };
        let controller = PolicyController {
            node_name,
            resync,
            policies,
            pods,
            namespaces,
            changed,
            stats: Arc::default(),
        };
        (controller, watches)
    }

    /// The script for what the caches hold now.
    fn desired(&self) -> String {
        let policies = self.policies.state();
        let pods = self.pods.state();
        let namespaces = self.namespaces.state();
        let isolated = model::isolated(
            policies.iter().map(|p| p.as_ref()),
            pods.iter().map(|p| p.as_ref()),
            namespaces.iter().map(|n| n.as_ref()),
            &self.node_name,
        );
        render::script(&isolated)
    }

    /// Syncs after every change and every resync until `shutdown`. The table stays when it
    /// stops (isolated pods stay isolated while the agent restarts); `--cleanup` removes it.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        tokio::select! {
            _ = async {
                let _ = tokio::join!(
                    self.policies.wait_until_ready(),
                    self.pods.wait_until_ready(),
                    self.namespaces.wait_until_ready(),
                );
            } => {}
            () = &mut shutdown => return,
        }
        let mut applied: Option<String> = None;
        let mut last_sync = tokio::time::Instant::now();
        loop {
            let desired = self.desired();
            let due = last_sync.elapsed() >= self.resync;
            let mut retry = None;
            if due || applied.as_deref() != Some(desired.as_str()) {
                last_sync = tokio::time::Instant::now();
                match nft(&desired).await {
                    Ok(()) => {
                        self.stats.syncs.inc();
                        tracing::debug!("network policy table synced");
                        applied = Some(desired);
                    }
                    Err(error) => {
                        self.stats.failures.inc();
                        tracing::warn!(%error, "network policy sync failed; retrying");
                        applied = None;
                        retry = Some(Duration::from_secs(1));
                    }
                }
            }
            let wait = retry.unwrap_or_else(|| self.resync.saturating_sub(last_sync.elapsed()));
            tokio::select! {
                () = self.changed.notified() => {
                    // A rollout's many changes make one sync.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                () = tokio::time::sleep(wait) => {}
                () = &mut shutdown => return,
            }
        }
    }
}

/// Removes the policy table (nothing to remove is not an error).
pub async fn cleanup() -> Result<(), NftError> {
    nft(&render::cleanup_script()).await
}
