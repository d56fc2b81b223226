//! End to end against a running ferry server: set `FERRY_SIM_E2E_KUBECONFIG` to its admin
//! kubeconfig and run `cargo test -p ferry-sim --test e2e -- --ignored`. Without it the test
//! is skipped (the sim crate does not build the server).

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;

async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..200 {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

fn pod(name: &str, node: &str, annotations: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]},
    }))
    .expect("pod")
}

#[tokio::test]
#[ignore = "needs FERRY_SIM_E2E_KUBECONFIG"]
async fn sim_against_a_server() {
    let Some(kubeconfig) = std::env::var_os("FERRY_SIM_E2E_KUBECONFIG") else {
        eprintln!("FERRY_SIM_E2E_KUBECONFIG not set; skipping");
        return;
    };
    let client = ferry_client::connect(&PathBuf::from(kubeconfig), "ferry-test")
        .await
        .expect("client");
    let options = ferry_sim::Options {
        nodes: 3,
        name_prefix: "e2e-".into(),
        pod_start_delay: Duration::from_millis(200),
        lease_renew_interval: Duration::from_millis(600),
        status_update_interval: Duration::from_secs(60),
        ..ferry_sim::Options::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let sim = tokio::spawn(ferry_sim::run(client.clone(), options, async move {
        let _ = stopped.await;
    }));
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");

    let listed = eventually("3 ready nodes", || async {
        let list = nodes
            .list(&ListParams::default().labels("type=ferry-sim"))
            .await
            .ok()?;
        let ready = list
            .items
            .iter()
            .filter(|n| ferry_sim::node::is_ready(n))
            .count();
        (ready == 3).then_some(list)
    })
    .await;
    let uid0 = listed
        .items
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some("e2e-0"))
        .and_then(|n| n.metadata.uid.clone());
    let lease = eventually("lease", || async { leases.get("e2e-1").await.ok() }).await;
    assert_eq!(
        lease
            .metadata
            .owner_references
            .as_ref()
            .map(|o| o[0].uid.clone()),
        listed.items[1].metadata.uid.clone()
    );

    // A pod bound to e2e-1 runs.
    pods.create(&PostParams::default(), &pod("web", "e2e-1", json!({})))
        .await
        .expect("create");
    let running = eventually("web running", || async {
        let p = pods.get("web").await.ok()?;
        (p.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(p)
    })
    .await;
    let status = running.status.expect("status");
    assert_eq!(status.qos_class.as_deref(), Some("Guaranteed"));
    assert_eq!(status.host_ip.as_deref(), Some("10.128.0.2"));
    eprintln!("web podIP {:?}", status.pod_ip);

    // One that completes.
    pods.create(
        &PostParams::default(),
        &pod(
            "job",
            "e2e-1",
            json!({"sim.ferry.dev/complete-after": "500ms"}),
        ),
    )
    .await
    .expect("create");
    eventually("job succeeded", || async {
        let p = pods.get("job").await.ok()?;
        (p.status?.phase.as_deref() == Some("Succeeded")).then_some(())
    })
    .await;

    // Deletion is honoured at once.
    pods.delete("web", &DeleteParams::default())
        .await
        .expect("delete");
    eventually("web gone", || async {
        pods.get_opt("web").await.ok()?.is_none().then_some(())
    })
    .await;
    pods.delete("job", &DeleteParams::default())
        .await
        .expect("delete");

    // Down: the lease stops; up: it renews again.
    let down =
        |value: Option<&str>| json!({"metadata": {"annotations": {"sim.ferry.dev/down": value}}});
    nodes
        .patch(
            "e2e-2",
            &PatchParams::default(),
            &Patch::Merge(down(Some("true"))),
        )
        .await
        .expect("down");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before = leases
        .get("e2e-2")
        .await
        .expect("lease")
        .spec
        .and_then(|s| s.renew_time);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = leases
        .get("e2e-2")
        .await
        .expect("lease")
        .spec
        .and_then(|s| s.renew_time);
    assert_eq!(before, after, "a down node does not renew");
    pods.create(&PostParams::default(), &pod("late", "e2e-2", json!({})))
        .await
        .expect("create");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let late = pods.get("late").await.expect("late");
    assert_ne!(
        late.status.and_then(|s| s.phase).as_deref(),
        Some("Running"),
        "a down node runs nothing"
    );
    nodes
        .patch("e2e-2", &PatchParams::default(), &Patch::Merge(down(None)))
        .await
        .expect("up");
    eventually("lease renewed", || async {
        let now = leases.get("e2e-2").await.ok()?.spec?.renew_time;
        (now != after).then_some(())
    })
    .await;
    eventually("late running", || async {
        (pods.get("late").await.ok()?.status?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;
    pods.delete("late", &DeleteParams::default())
        .await
        .expect("delete");

    // Someone marks e2e-0 not Ready: it says Ready again.
    let unknown = json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown"}]}});
    nodes
        .patch_status("e2e-0", &PatchParams::default(), &Patch::Strategic(unknown))
        .await
        .expect("unknown");
    eventually("ready again", || async {
        ferry_sim::node::is_ready(&nodes.get("e2e-0").await.ok()?).then_some(())
    })
    .await;

    // Deleted: registered again.
    nodes
        .delete("e2e-0", &DeleteParams::default())
        .await
        .expect("delete node");
    eventually("re-registered", || async {
        let n = nodes.get("e2e-0").await.ok()?;
        (n.metadata.uid != uid0 && ferry_sim::node::is_ready(&n)).then_some(())
    })
    .await;

    stop.send(()).expect("stop");
    sim.await.expect("join").expect("run");
    assert_eq!(
        nodes
            .list(&ListParams::default().labels("type=ferry-sim"))
            .await
            .expect("list")
            .items
            .len(),
        3,
        "nodes stay"
    );
}

fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    kib.unwrap_or(0) / 1024
}

/// `FERRY_SIM_E2E_SCALE=5000`: registers that many nodes, runs them for 20 s and prints the
/// time to register and this process's RSS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs FERRY_SIM_E2E_KUBECONFIG and FERRY_SIM_E2E_SCALE"]
async fn sim_at_scale() {
    let (Some(kubeconfig), Some(scale)) = (
        std::env::var_os("FERRY_SIM_E2E_KUBECONFIG"),
        std::env::var("FERRY_SIM_E2E_SCALE").ok(),
    ) else {
        eprintln!("FERRY_SIM_E2E_KUBECONFIG or FERRY_SIM_E2E_SCALE not set; skipping");
        return;
    };
    let nodes_wanted: usize = scale.parse().expect("FERRY_SIM_E2E_SCALE");
    let client = ferry_client::connect(&PathBuf::from(kubeconfig), "ferry-test")
        .await
        .expect("client");
    let options = ferry_sim::Options {
        nodes: nodes_wanted,
        name_prefix: "scale-".into(),
        ..ferry_sim::Options::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let start = std::time::Instant::now();
    let sim = tokio::spawn(ferry_sim::run(client.clone(), options, async move {
        let _ = stopped.await;
    }));
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    for _ in 0..600 {
        let n = leases
            .list_metadata(&ListParams::default())
            .await
            .map(|l| {
                l.items
                    .iter()
                    .filter(|l| {
                        l.metadata
                            .name
                            .as_deref()
                            .is_some_and(|n| n.starts_with("scale-"))
                    })
                    .count()
            })
            .unwrap_or(0);
        if n == nodes_wanted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "{nodes_wanted} nodes registered in {:?}, RSS {} MiB",
        start.elapsed(),
        rss_mib()
    );
    tokio::time::sleep(Duration::from_secs(20)).await;
    eprintln!("after 20 s of heartbeats: RSS {} MiB", rss_mib());
    stop.send(()).expect("stop");
    sim.await.expect("join").expect("run");
}
