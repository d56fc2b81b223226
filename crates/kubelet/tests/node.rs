//! The node heartbeat against a real API server (opt-in): start one, e.g.
//! `ferry server --https-listen 127.0.0.1:0 --data-dir $D --disable-scheduler`, then
//! `FERRY_KUBECONFIG=$D/<kubeconfig> cargo test -p ferry-kubelet --test node -- --ignored`.
//!
//! Registers a Node named after this test, checks its status, labels, Lease and a re-registration
//! with a new taint, then deletes what it created.

use std::sync::Arc;
use std::time::Duration;

use ferry_kubelet::machine::MachineConfig;
use ferry_kubelet::node::{self, HeartbeatConfig, NodeHeartbeat, NodeOptions, LEASE_NAMESPACE};
use ferry_kubelet::runtime::FakeRuntime;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Taint};
use kube::api::{Api, DeleteParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

type TestResult = Result<(), Box<dyn std::error::Error>>;

async fn client() -> Result<kube::Client, Box<dyn std::error::Error>> {
    let path = std::env::var("FERRY_KUBECONFIG")?;
    let kubeconfig = Kubeconfig::read_from(path)?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

#[tokio::test]
#[ignore = "needs a running ferry server: FERRY_KUBECONFIG"]
async fn heartbeat_registers_and_renews() -> TestResult {
    let client = client().await?;
    let name = "ferry-kubelet-node-test";
    let data_dir = tempfile::tempdir()?;
    let machine = MachineConfig {
        data_dir: data_dir.path().to_path_buf(),
        hostname_override: Some(name.to_string()),
        ..MachineConfig::default()
    };
    let mut heartbeat = NodeHeartbeat::new(NodeOptions::new(name), machine.clone());
    heartbeat.config = HeartbeatConfig {
        lease_renew_interval: Duration::from_millis(200),
        status_update_frequency: Duration::from_millis(200),
        ..HeartbeatConfig::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(
        heartbeat.run(client.clone(), Arc::new(FakeRuntime::new()), async {
            let _ = stopped.await;
        }),
    );

    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let mut lease = None;
    for _ in 0..50 {
        lease = leases.get_opt(name).await?;
        if lease.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lease = lease.ok_or("no lease")?;
    let node = nodes.get(name).await?;
    let uid = node.metadata.uid.clone().ok_or("no uid")?;
    let owner = lease
        .metadata
        .owner_references
        .as_ref()
        .and_then(|o| o.first())
        .ok_or("no owner")?;
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Node", uid.as_str())
    );
    let first_renew = lease.spec.as_ref().and_then(|s| s.renew_time.clone());
    let labels = node.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("kubernetes.io/hostname").map(String::as_str),
        Some(name)
    );
    let status = node.status.clone().ok_or("no status")?;
    let ready = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .ok_or("no Ready")?;
    assert_eq!(ready.status, "True");
    assert_eq!(
        status
            .node_info
            .as_ref()
            .map(|i| i.container_runtime_version.as_str()),
        Some("fake://0.0.0")
    );
    assert!(status
        .capacity
        .as_ref()
        .is_some_and(|c| c.contains_key("cpu")));

    tokio::time::sleep(Duration::from_millis(700)).await;
    let renewed = leases.get(name).await?;
    assert_ne!(renewed.spec.and_then(|s| s.renew_time), first_renew);
    let _ = stop.send(());
    task.await?;

    // Re-registration of the existing Node adds a taint and keeps the UID.
    let facts = ferry_kubelet::machine::read_facts(&machine)?;
    let mut options = NodeOptions::new(name);
    options.taints.push(Taint {
        key: "example.com/test".into(),
        effect: "NoSchedule".into(),
        ..Taint::default()
    });
    let mut again = node::node_object(&facts, &options);
    again.status = Some(status);
    let registered = node::register(&client, &again).await?;
    assert_eq!(registered.metadata.uid.as_deref(), Some(uid.as_str()));
    let taints = nodes
        .get(name)
        .await?
        .spec
        .and_then(|s| s.taints)
        .unwrap_or_default();
    assert!(taints.iter().any(|t| t.key == "example.com/test"));

    nodes.delete(name, &DeleteParams::default()).await?;
    let _ = leases.delete(name, &DeleteParams::default()).await;
    Ok(())
}
