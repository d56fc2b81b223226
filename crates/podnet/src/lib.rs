//! The pod network across nodes, as flannel does it for k3s: every node's podCIDR routed to that
//! node, so a pod reaches a pod on another node by its IP, unmasqueraded.
//!
//! - [`plan`]: the peers (other nodes with a podCIDR and an InternalIP) and what the routing
//!   should hold for them, per [`Backend`] — a pure function of the Node list;
//! - [`link`]: applying a plan through rtnetlink, and `--cleanup`;
//! - [`PodNetwork`]: watches Nodes and keeps the kernel in line with the plan after every
//!   change and every resync (which also repairs what was removed by hand). It reports the
//!   peers to the agent, which lets their pods and addresses through the pod-network guard.
//!
//! The backend is chosen by the server (`ferry server --pod-network`), which publishes it with
//! the cluster CIDR in the ConfigMap `kube-system/ferry-pod-network` ([`CONFIG_MAP`]) that every
//! agent reads when it starts, as flannel's agents read `kube-flannel-cfg`.

pub mod link;
pub mod plan;
pub mod policy;

use prometheus_client::metrics::counter::Counter;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use ferry_client::watch::reflect;
use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube::runtime::reflector::{self, Store};
use kube::Api;
use tokio::sync::Notify;

pub use link::{LinkError, Netlink, ROUTE_PROTOCOL};
pub use plan::{Backend, Cidr, Peer, Plan, BACKEND_ANNOTATION, VXLAN_DEVICE};

/// The ConfigMap (in `kube-system`) with the cluster's pod network settings.
pub const CONFIG_MAP: &str = "ferry-pod-network";

/// The cluster's pod network, as the server publishes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The cluster CIDR every node's podCIDR lies in.
    pub cluster_cidr: Cidr,
    /// How nodes reach each other's pods.
    pub backend: Backend,
}

/// A `ferry-pod-network` ConfigMap that does not say what it must.
#[derive(Debug, thiserror::Error)]
#[error("ConfigMap kube-system/{CONFIG_MAP}: {0}")]
pub struct InvalidConfig(String);

impl NetworkConfig {
    /// The ConfigMap's `data`.
    pub fn to_data(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("clusterCIDR".to_string(), self.cluster_cidr.to_string()),
            ("backend".to_string(), self.backend.to_string()),
        ])
    }

    /// Reads the ConfigMap's `data`.
    pub fn from_config_map(map: &ConfigMap) -> Result<NetworkConfig, InvalidConfig> {
        let data = map.data.as_ref();
        let field = |key: &str| {
            data.and_then(|d| d.get(key))
                .ok_or_else(|| InvalidConfig(format!("no {key}")))
        };
        Ok(NetworkConfig {
            cluster_cidr: field("clusterCIDR")?
                .parse()
                .map_err(|e| InvalidConfig(format!("clusterCIDR: {e}")))?,
            backend: field("backend")?
                .parse()
                .map_err(|e| InvalidConfig(format!("backend: {e}")))?,
        })
    }

    /// Waits for the server's ConfigMap and reads it.
    pub async fn fetch(client: &kube::Client) -> Result<NetworkConfig, InvalidConfig> {
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
        let mut logged = false;
        loop {
            match maps.get_opt(CONFIG_MAP).await {
                Ok(Some(map)) => return NetworkConfig::from_config_map(&map),
                Ok(None) => {}
                Err(error) if !logged => {
                    tracing::warn!(%error, "reading the pod network's ConfigMap; trying again")
                }
                Err(_) => {}
            }
            if !logged {
                tracing::info!("waiting for ConfigMap kube-system/{CONFIG_MAP}");
                logged = true;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// What [`PodNetwork`] needs to know about its node.
#[derive(Clone, Debug)]
pub struct Options {
    /// The Node's name.
    pub node_name: String,
    /// The node's InternalIP (the VXLAN tunnel's local end).
    pub node_ip: Ipv4Addr,
    /// The node's podCIDR.
    pub pod_cidr: Cidr,
    /// How to reach other nodes' pods.
    pub backend: Backend,
    /// How often the kernel is compared with the plan even without a change.
    pub resync: Duration,
}

/// Told the peers before each sync (the agent lets their pods and node addresses through its
/// guard).
pub type PeersChanged = Box<dyn Fn(&[Peer]) -> Result<(), String> + Send + Sync>;

/// Counters of the pod network controller.
#[derive(Debug, Default)]
pub struct Stats {
    /// Syncs that succeeded.
    pub syncs: Counter,
    /// Syncs that failed (and were retried).
    pub failures: Counter,
}

/// Keeps this node's routes to other nodes' pods in line with the Node list.
pub struct PodNetwork {
    client: kube::Client,
    options: Options,
    nodes: Store<Node>,
    changed: Arc<Notify>,
    on_peers: PeersChanged,
    /// Its counters.
    pub stats: Arc<Stats>,
}

impl PodNetwork {
    /// Watches Nodes through `client`; returns the controller and the watch to run beside
    /// [`PodNetwork::run`].
    pub fn new(
        client: kube::Client,
        options: Options,
        on_peers: PeersChanged,
    ) -> (PodNetwork, impl std::future::Future<Output = ()> + Send) {
        let changed = Arc::new(Notify::new());
        let (nodes, writer) = reflector::store();
        let wake = changed.clone();
        let watch_client = client.clone();
        let watch = reflect(Api::<Node>::all(watch_client), writer, wake, "node");
        let network = PodNetwork {
            client,
            options,
            nodes,
            changed,
            on_peers,
            stats: Arc::default(),
        };
        (network, watch)
    }

    /// Syncs after every change of the peers and every `resync`, until `shutdown`. What it
    /// made stays when it stops (pods keep their connectivity while the agent restarts);
    /// `ferry agent --cleanup` removes it.
    pub async fn run(self, netlink: Netlink, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        tokio::select! {
            _ = self.nodes.wait_until_ready() => {}
            () = &mut shutdown => return,
        }
        // Announce this node as a peer of the others (they route to it from now on).
        loop {
            match self.announce().await {
                Ok(()) => break,
                Err(error) => tracing::warn!(%error, "annotating the Node; trying again"),
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = &mut shutdown => return,
            }
        }
        let mut applied: Option<Vec<Peer>> = None;
        let mut last_sync = tokio::time::Instant::now();
        loop {
            let own_ips = netlink.own_addresses().await.unwrap_or_else(|error| {
                tracing::warn!(%error, "listing this node's addresses");
                vec![self.options.node_ip]
            });
            let nodes = self.nodes.state();
            let peers = plan::peers(
                nodes.iter().map(|n| n.as_ref()),
                self.options.backend,
                &self.options.node_name,
                &own_ips,
            );
            let due = last_sync.elapsed() >= self.options.resync;
            let mut retry = None;
            if due || applied.as_ref() != Some(&peers) {
                last_sync = tokio::time::Instant::now();
                match self.sync(&netlink, &peers).await {
                    Ok(()) => {
                        self.stats.syncs.inc();
                        applied = Some(peers);
                    }
                    Err(error) => {
                        self.stats.failures.inc();
                        tracing::warn!(%error, "pod network sync failed; retrying");
                        applied = None;
                        retry = Some(Duration::from_secs(1));
                    }
                }
            }
            let wait =
                retry.unwrap_or_else(|| self.options.resync.saturating_sub(last_sync.elapsed()));
            tokio::select! {
                () = self.changed.notified() => {}
                () = tokio::time::sleep(wait) => {}
                () = &mut shutdown => return,
            }
        }
    }

    /// Puts [`plan::BACKEND_ANNOTATION`] on this node's Node.
    async fn announce(&self) -> Result<(), kube::Error> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let patch = serde_json::json!({"metadata": {"annotations": {
            plan::BACKEND_ANNOTATION: self.options.backend.as_str(),
        }}});
        nodes
            .patch(
                &self.options.node_name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(patch),
            )
            .await
            .map(|_| ())
    }

    async fn sync(&self, netlink: &Netlink, peers: &[Peer]) -> Result<(), String> {
        let Options {
            backend,
            node_ip,
            pod_cidr,
            ..
        } = &self.options;
        let plan = plan::plan(*backend, *node_ip, *pod_cidr, peers);
        // The guard lets the peers' pods through before their routes exist: a packet routed
        // to a peer is never dropped by a guard that does not know it yet.
        (self.on_peers)(peers)?;
        let changes = netlink.apply(&plan).await.map_err(|e| e.to_string())?;
        if changes != link::Changes::default() {
            tracing::info!(
                %backend,
                peers = peers.len(),
                added = changes.added,
                removed = changes.removed,
                "pod network synced"
            );
        }
        Ok(())
    }
}

/// `ferry agent --cleanup`'s part: removes our routes and the VXLAN device.
pub async fn cleanup() -> Result<Vec<String>, LinkError> {
    Netlink::connect()?.cleanup().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_map_round_trips() {
        let config = NetworkConfig {
            cluster_cidr: "10.42.0.0/16".parse().expect("valid"),
            backend: Backend::Vxlan,
        };
        let map = ConfigMap {
            data: Some(config.to_data()),
            ..Default::default()
        };
        assert_eq!(NetworkConfig::from_config_map(&map).expect("valid"), config);
        let mut bad = map.clone();
        bad.data
            .as_mut()
            .expect("data")
            .insert("backend".into(), "udp".into());
        let error = NetworkConfig::from_config_map(&bad).expect_err("invalid");
        assert!(
            error.to_string().contains("unknown pod network backend"),
            "{error}"
        );
        let empty = ConfigMap::default();
        assert!(NetworkConfig::from_config_map(&empty).is_err());
    }
}
