//! The `kubernetes` Service's endpoints when several API servers share one store: upstream's
//! lease endpoint reconciler (`pkg/controlplane/reconcilers/lease.go`, the default
//! `--endpoint-reconciler-type=lease`).
//!
//! Each server keeps the key `/masterleases/<ip>` (in etcd `/registry/masterleases/<ip>`, as
//! upstream) attached to a store lease of [`MASTER_LEASE_TTL`] and refreshes it every
//! [`RECONCILE_INTERVAL`]; every server then writes the `kubernetes` Endpoints and EndpointSlice
//! from the addresses whose keys are alive. A server killed without warning drops out when its
//! lease expires (at most TTL + interval later); one that shuts down deletes its key and
//! rewrites the endpoints at once (upstream's `RemoveEndpoints`).
//!
//! One Service has one target port, so the servers must listen on one port at distinct
//! addresses (upstream requires the same `--secure-port` everywhere). The key's value is an
//! Endpoints object as upstream's, with the server's port beside its address (upstream's has no
//! port): the endpoints list only the servers on this server's port, so a server restarted on
//! another port does not keep pointing clients at the old one.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferry_store::{KeyRange, LeaseId, Op, RangeRequest, Store, StoreError, Txn};
use serde_json::{json, Value};

use crate::server::Server;
use crate::status::ApiError;

/// How long a server's key outlives its last refresh (upstream's
/// `DefaultEndpointReconcilerTTL`).
pub const MASTER_LEASE_TTL: Duration = Duration::from_secs(15);

/// How often each server refreshes its key and rewrites the endpoints (upstream's
/// `--endpoint-reconciler` interval, 10 s).
pub const RECONCILE_INTERVAL: Duration = Duration::from_secs(10);

/// Where the servers' keys live, below the store's prefix.
const MASTER_LEASES: &str = "/masterleases/";

/// The key a server at `ip` keeps alive.
fn master_lease_key(ip: IpAddr) -> Bytes {
    Bytes::from(format!("{MASTER_LEASES}{ip}"))
}

/// The value of a server's key: an Endpoints object naming its address and port.
fn master_lease_value(address: SocketAddr) -> Value {
    let ip = address.ip().to_string();
    json!({"kind": "Endpoints", "apiVersion": "v1", "metadata": {"name": ip},
        "subsets": [{"addresses": [{"ip": ip}],
            "ports": [{"name": "https", "port": address.port(), "protocol": "TCP"}]}]})
}

/// The addresses of the live servers on `port`, sorted, from the values of their keys (values
/// that do not parse, and servers on another port, are left out; a value without a port, as
/// upstream writes it, counts as on every port).
pub fn live_servers<'a>(values: impl IntoIterator<Item = &'a [u8]>, port: u16) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = values
        .into_iter()
        .filter_map(|value| serde_json::from_slice::<Value>(value).ok())
        .flat_map(|endpoints| {
            let subsets = endpoints["subsets"].as_array().cloned().unwrap_or_default();
            subsets.into_iter().flat_map(move |subset| {
                let ports: Vec<u64> = subset["ports"]
                    .as_array()
                    .map(|ports| ports.iter().filter_map(|p| p["port"].as_u64()).collect())
                    .unwrap_or_default();
                let on_port = ports.is_empty() || ports.contains(&u64::from(port));
                let addresses = subset["addresses"].as_array().cloned().unwrap_or_default();
                addresses
                    .into_iter()
                    .filter_map(|a| a["ip"].as_str().and_then(|ip| ip.parse::<IpAddr>().ok()))
                    .filter(move |_| on_port)
            })
        })
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

/// The `kubernetes` Endpoints and EndpointSlice listing `ips` on `port`. The slice's address
/// type follows the first address (upstream's servers share one family).
pub fn kubernetes_endpoints(ips: &[IpAddr], port: u16) -> (Value, Value) {
    let addresses: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip.to_string()})).collect();
    let endpoints = json!({"apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": addresses,
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]});
    let ipv6 = ips.first().is_some_and(|ip| ip.is_ipv6());
    let slice_endpoints: Vec<Value> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip.to_string()], "conditions": {"ready": true}}))
        .collect();
    // As upstream's EndpointsAdapter writes it (no managed-by label: no controller touches it).
    let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": if ipv6 { "IPv6" } else { "IPv4" },
        "endpoints": slice_endpoints,
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}]});
    (endpoints, slice)
}

/// Keeps one server's address among the `kubernetes` endpoints.
pub struct EndpointReconciler {
    server: Arc<Server>,
    address: SocketAddr,
    /// The store lease the key is attached to (0: none granted yet, or it expired).
    lease: tokio::sync::Mutex<LeaseId>,
}

impl EndpointReconciler {
    /// The reconciler of the server `server` serving at `address`.
    pub fn new(server: Arc<Server>, address: SocketAddr) -> EndpointReconciler {
        EndpointReconciler {
            server,
            address,
            lease: tokio::sync::Mutex::new(0),
        }
    }

    /// Creates the `kubernetes` Service (its target port this server's) and puts this server
    /// into its endpoints; the reconciler then runs while the server serves ([`Self::run`]),
    /// and takes the address out on shutdown.
    pub async fn start(
        server: &Arc<Server>,
        address: SocketAddr,
    ) -> Result<EndpointReconciler, ApiError> {
        server.ensure_kubernetes_service(address.port()).await?;
        let reconciler = EndpointReconciler::new(server.clone(), address);
        reconciler.reconcile().await?;
        Ok(reconciler)
    }

    fn store(&self) -> &Arc<dyn Store> {
        &self.server.rest.storage.store
    }

    /// Refreshes this server's key and writes the endpoints of the live servers (only when
    /// they changed); returns their addresses.
    pub async fn reconcile(&self) -> Result<Vec<IpAddr>, ApiError> {
        self.refresh().await?;
        let ips = self.live().await?;
        self.write(&ips).await?;
        Ok(ips)
    }

    /// Keeps the key alive: renews the lease, or grants a new one when it expired (a store
    /// that was unreachable longer than the TTL), and puts the key when it is missing or stale.
    async fn refresh(&self) -> Result<(), ApiError> {
        let mut lease = self.lease.lock().await;
        if *lease != 0 {
            match self.store().lease_keep_alive(*lease).await {
                Ok(_) => {}
                Err(StoreError::LeaseNotFound(_)) => *lease = 0,
                Err(error) => return Err(error.into()),
            }
        }
        if *lease == 0 {
            *lease = self.store().lease_grant(MASTER_LEASE_TTL).await?.0;
        }
        let key = master_lease_key(self.address.ip());
        let value = Bytes::from(master_lease_value(self.address).to_string());
        let current = self.store().get(&key).await?;
        if current.is_some_and(|kv| kv.lease == *lease && kv.value == value) {
            return Ok(());
        }
        let put = Txn::new().and_then([Op::Put {
            key,
            value,
            lease: *lease,
        }]);
        self.store().txn(put).await?;
        Ok(())
    }

    /// The live servers on this server's port.
    async fn live(&self) -> Result<Vec<IpAddr>, ApiError> {
        let range = KeyRange::prefix(Bytes::from_static(MASTER_LEASES.as_bytes()));
        let response = self.store().range(RangeRequest::new(range)).await?;
        Ok(live_servers(
            response.kvs.iter().map(|kv| kv.value.as_ref()),
            self.address.port(),
        ))
    }

    /// Writes the endpoints of `ips` where they differ from what is stored.
    async fn write(&self, ips: &[IpAddr]) -> Result<(), ApiError> {
        let (endpoints, slice) = kubernetes_endpoints(ips, self.address.port());
        let stored = self
            .stored(("", "v1", "endpoints"))
            .await?
            .map(|e| e["subsets"].clone());
        if stored.as_ref() != Some(&endpoints["subsets"]) {
            self.server
                .ensure(
                    ("", "v1", "endpoints"),
                    "default",
                    "kubernetes",
                    endpoints,
                    true,
                )
                .await?;
        }
        let stored = self
            .stored(("discovery.k8s.io", "v1", "endpointslices"))
            .await?
            .map(|s| (s["endpoints"].clone(), s["ports"].clone()));
        if stored != Some((slice["endpoints"].clone(), slice["ports"].clone())) {
            self.server
                .ensure(
                    ("discovery.k8s.io", "v1", "endpointslices"),
                    "default",
                    "kubernetes",
                    slice,
                    true,
                )
                .await?;
        }
        Ok(())
    }

    /// The stored `default/kubernetes` object of `resource`, if any.
    async fn stored(&self, resource: (&str, &str, &str)) -> Result<Option<Value>, ApiError> {
        crate::storage::read(self.store().as_ref(), resource, "default", "kubernetes").await
    }

    /// Deletes this server's key and rewrites the endpoints without it, for a server that is
    /// shutting down.
    pub async fn remove(&self) -> Result<(), ApiError> {
        let mut lease = self.lease.lock().await;
        if *lease != 0 {
            // Revoking deletes the key with it.
            match self.store().lease_revoke(*lease).await {
                Ok(()) | Err(StoreError::LeaseNotFound(_)) => {}
                Err(error) => return Err(error.into()),
            }
            *lease = 0;
        }
        drop(lease);
        let ips = self.live().await?;
        if !ips.is_empty() {
            self.write(&ips).await?;
        }
        Ok(())
    }

    /// Reconciles every [`RECONCILE_INTERVAL`] until `shutdown` resolves, then removes this
    /// server's address.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let ticks = async {
            loop {
                tokio::time::sleep(RECONCILE_INTERVAL).await;
                if let Err(error) = self.reconcile().await {
                    tracing::warn!(error = %error.message, "reconciling the kubernetes endpoints");
                }
            }
        };
        tokio::select! {
            _ = ticks => {}
            _ = shutdown => {}
        }
        if let Err(error) = self.remove().await {
            tracing::warn!(error = %error.message, "removing this server from the kubernetes endpoints");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(ip: &str, port: Option<u16>) -> Vec<u8> {
        let ports = port.map_or(json!(null), |p| json!([{"port": p}]));
        json!({"subsets": [{"addresses": [{"ip": ip}], "ports": ports}]})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn live_servers_on_this_port_sorted() {
        let values = [
            value("127.0.0.4", Some(6443)),
            value("127.0.0.2", Some(6443)),
            value("127.0.0.3", Some(7443)), // another port: left out
            value("10.0.0.1", None),        // upstream's value, without a port
            b"not json".to_vec(),
            value("127.0.0.2", Some(6443)), // twice: once
        ];
        let ips = live_servers(values.iter().map(|v| v.as_slice()), 6443);
        let want: Vec<IpAddr> = ["10.0.0.1", "127.0.0.2", "127.0.0.4"]
            .iter()
            .map(|ip| ip.parse().expect("ip"))
            .collect();
        assert_eq!(ips, want);
    }

    #[test]
    fn the_key_value_is_read_back() {
        let address: SocketAddr = "127.0.0.3:6443".parse().expect("address");
        let value = master_lease_value(address).to_string();
        assert_eq!(live_servers([value.as_bytes()], 6443), vec![address.ip()]);
        assert_eq!(
            &master_lease_key(address.ip())[..],
            b"/masterleases/127.0.0.3"
        );
    }

    #[test]
    fn endpoints_list_every_live_server() {
        let ips: Vec<IpAddr> = vec![
            "127.0.0.2".parse().expect("ip"),
            "127.0.0.3".parse().expect("ip"),
        ];
        let (endpoints, slice) = kubernetes_endpoints(&ips, 6443);
        assert_eq!(
            endpoints["subsets"],
            json!([{"addresses": [{"ip": "127.0.0.2"}, {"ip": "127.0.0.3"}],
                "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}])
        );
        assert_eq!(slice["addressType"], "IPv4");
        assert_eq!(
            slice["endpoints"],
            json!([{"addresses": ["127.0.0.2"], "conditions": {"ready": true}},
                {"addresses": ["127.0.0.3"], "conditions": {"ready": true}}])
        );
        let (_, v6) = kubernetes_endpoints(&["::1".parse().expect("ip")], 6443);
        assert_eq!(v6["addressType"], "IPv6");
    }

    async fn addresses(reconciler: &EndpointReconciler) -> Value {
        let endpoints = reconciler.stored(("", "v1", "endpoints")).await;
        endpoints.expect("read").expect("endpoints")["subsets"][0]["addresses"].clone()
    }

    /// Two servers on one store: each sees the other; one that shuts down leaves at once.
    #[tokio::test]
    async fn servers_on_one_store_list_each_other_until_one_leaves() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = ferry_store::embedded::Config::new(dir.path());
        config.auto_compaction = None;
        let store = Arc::new(
            ferry_store::embedded::EmbeddedStore::open(config)
                .await
                .expect("open"),
        );
        let server = Server::new(
            store,
            crate::auth::AuthenticatorChain(vec![]),
            &[crate::auth::AuthorizationMode::AlwaysAllow],
            crate::admission::Chain::from_names::<&str>(&[]).expect("no plugins"),
        );
        server.bootstrap().await.expect("bootstrap");
        let a: SocketAddr = "127.0.0.2:6443".parse().expect("address");
        let b: SocketAddr = "127.0.0.3:6443".parse().expect("address");
        let first = EndpointReconciler::start(&server, a).await.expect("first");
        let second = EndpointReconciler::start(&server, b).await.expect("second");
        assert_eq!(
            second.reconcile().await.expect("reconcile"),
            vec![a.ip(), b.ip()]
        );
        assert_eq!(
            first.reconcile().await.expect("reconcile"),
            vec![a.ip(), b.ip()]
        );
        assert_eq!(
            addresses(&first).await,
            json!([{"ip": "127.0.0.2"}, {"ip": "127.0.0.3"}])
        );
        second.remove().await.expect("remove");
        assert_eq!(addresses(&first).await, json!([{"ip": "127.0.0.2"}]));
        assert_eq!(first.reconcile().await.expect("reconcile"), vec![a.ip()]);
    }
}
