//! The API Priority and Fairness figure of `ferry bench api`: node heartbeats (Lease renewals
//! by a node identity, upstream's `system-node-high` schema) p99 alone, and while clients of an
//! ordinary user (`global-default`) flood the server with LISTs of many ConfigMaps; with the
//! LISTs served and refused (429) meanwhile. Reference: the same heartbeats on the idle server
//! in the same run. The node's connection is opened, and used once, before the flood starts —
//! as a kubelet's is — so its TLS handshake does not queue behind the flood's connections.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use ferry_apiserver::pki::Pki;
use serde_json::{json, Value};

use super::api::{percentiles, start_server_with, Connection};

/// ConfigMaps each LIST returns.
const OBJECTS: usize = 1000;
/// The node's Lease.
const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/bench-node";
/// How long heartbeats are measured in each phase.
const PHASE: Duration = Duration::from_secs(4);

/// What this part measured.
pub struct Figures {
    /// Flood clients.
    pub clients: usize,
    /// Lease renewal p50 and p99 (ms), idle server.
    pub alone_ms: (f64, f64),
    /// Lease renewal p50 and p99 (ms), during the flood.
    pub flooded_ms: (f64, f64),
    /// Renewals that failed during the flood.
    pub failed_renewals: usize,
    /// LISTs served during the flood.
    pub lists_served: u64,
    /// LISTs refused with 429 during the flood.
    pub lists_rejected: u64,
}

/// Renews the node's Lease back to back for `PHASE`; the latencies and the failures.
async fn heartbeats(
    node: &mut Connection,
    lease: &mut Value,
) -> anyhow::Result<(Vec<Duration>, usize)> {
    let started = Instant::now();
    let (mut samples, mut failed) = (Vec::new(), 0);
    while started.elapsed() < PHASE {
        lease["spec"]["renewTime"] = json!(jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string());
        let sent = Instant::now();
        let (status, body) = node.request("PUT", LEASE, Some(lease)).await?;
        samples.push(sent.elapsed());
        if status == 200 {
            *lease = serde_json::from_slice(&body)?;
        } else {
            failed += 1;
            let (_, body) = node.request("GET", LEASE, None).await?;
            *lease = serde_json::from_slice(&body)?;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok((samples, failed))
}

/// Runs the figure with `clients` flooding clients.
pub async fn measure(clients: usize) -> anyhow::Result<Figures> {
    let tmp = tempfile::tempdir()?;
    let data_dir = tmp.path().join("server");
    let (server, address, _) =
        start_server_with(&data_dir, &["--disable-controllers", "--disable-scheduler"])?;
    let pki = Pki::load_or_create(&data_dir.join("tls"))?;
    let admin_tls = Arc::new(pki.client_tls(&pki.admin)?);
    let node_tls = Arc::new(
        pki.client_tls(&pki.client_cert("system:node:bench-node", Some("system:nodes"))?)?,
    );
    let flood_tls = Arc::new(pki.client_tls(&pki.client_cert("flood", None)?)?);
    let mut admin = Connection::open(&address, admin_tls).await?;
    let writes = [
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "bench-lister"}, "rules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["configmaps"]}]}),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "bench-lister"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "bench-lister"},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "flood"}]}),
        ),
        (
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "bench-node", "namespace": "kube-node-lease"}, "spec": {"holderIdentity": "bench-node", "leaseDurationSeconds": 40}}),
        ),
    ];
    for (path, body) in writes {
        let (status, answer) = admin.request("POST", path, Some(&body)).await?;
        if status != 201 {
            bail!("POST {path}: {status} {}", String::from_utf8_lossy(&answer));
        }
    }
    for i in 0..OBJECTS {
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}")},
            "data": {"payload": "x".repeat(512)}});
        admin
            .request("POST", "/api/v1/namespaces/default/configmaps", Some(&body))
            .await?;
    }
    let mut node = Connection::open(&address, node_tls.clone()).await?;
    let node_address = address.clone();
    let (_, body) = node.request("GET", LEASE, None).await?;
    let mut lease: Value = serde_json::from_slice(&body)?;
    heartbeats(&mut node, &mut lease).await?; // warm-up
    let (alone, _) = heartbeats(&mut node, &mut lease).await?;

    // The flooded heartbeats on a thread and runtime of their own, so the flood's client tasks
    // in this process do not delay them; their connection is open before the flood.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let heartbeat = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let mut node = Connection::open(&node_address, node_tls).await?;
            node.request("GET", LEASE, None).await?;
            let _ = ready_tx.send(());
            // Nothing else runs on this thread: waiting here holds nothing up.
            go_rx.recv()?;
            heartbeats(&mut node, &mut lease).await
        })
    });
    tokio::task::spawn_blocking(move || ready_rx.recv())
        .await?
        .map_err(|_| anyhow::anyhow!("the heartbeat connection did not open"))?;
    let served = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut flood = Vec::new();
    for _ in 0..clients {
        let (tls, address) = (flood_tls.clone(), address.clone());
        let (served, rejected, stop) = (served.clone(), rejected.clone(), stop.clone());
        flood.push(tokio::spawn(async move {
            let Ok(mut connection) = Connection::open(&address, tls).await else {
                return;
            };
            while !stop.load(Ordering::Relaxed) {
                match connection
                    .request("GET", "/api/v1/namespaces/default/configmaps", None)
                    .await
                {
                    Ok((200, _)) => served.fetch_add(1, Ordering::Relaxed),
                    Ok((429, _)) => rejected.fetch_add(1, Ordering::Relaxed),
                    _ => return,
                };
            }
        }));
    }
    // Let the flood build up before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (served_before, rejected_before) = (
        served.load(Ordering::Relaxed),
        rejected.load(Ordering::Relaxed),
    );
    go_tx.send(())?;
    let (flooded, failed_renewals) = tokio::task::spawn_blocking(move || heartbeat.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the heartbeat thread panicked"))??;
    let lists_served = served.load(Ordering::Relaxed) - served_before;
    let lists_rejected = rejected.load(Ordering::Relaxed) - rejected_before;
    stop.store(true, Ordering::Relaxed);
    drop(server);
    for task in flood {
        task.abort();
    }
    Ok(Figures {
        clients,
        alone_ms: percentiles(alone),
        flooded_ms: percentiles(flooded),
        failed_renewals,
        lists_served,
        lists_rejected,
    })
}
