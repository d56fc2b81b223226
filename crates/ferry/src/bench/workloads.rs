//! `ferry bench workloads`: the workload controllers and storage, each beside a reference
//! measured in the same run.
//!
//! - A DaemonSet on `--nodes` sim nodes: creation to every daemon pod available, next to a
//!   Deployment of as many replicas on the same nodes (ratio: Deployment time / DaemonSet time).
//! - With `--real-node` (root, containerd, the local registry): a `--stateful-replicas`
//!   Parallel StatefulSet with a claim per pod on a real node (the local CSI driver), creation
//!   to all Ready, next to a Deployment of as many replicas without claims; and the CSI
//!   driver's CreateVolume + NodePublishVolume over its socket, p50/p99, next to a plain
//!   `mkdir` + bind mount of a directory.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ferry_csi::v1;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::Api;
use serde_json::json;

use super::api::start_server_with;
use super::podstartup::{namespace_pods, on_real_node, percentile};
use super::scheduler::start_sim;

/// Options of `ferry bench workloads`.
#[derive(clap::Args)]
pub struct Args {
    /// Print one JSON object with every figure as the last line.
    #[arg(long)]
    json: bool,
    /// Simulated nodes for the DaemonSet run.
    #[arg(long, default_value_t = 5000)]
    nodes: usize,
    /// Also measure on a real node: a StatefulSet with claims, and CSI calls.
    #[arg(long)]
    real_node: bool,
    /// Replicas of the StatefulSet run.
    #[arg(long, default_value_t = 100)]
    stateful_replicas: usize,
    /// CSI create+publish rounds.
    #[arg(long, default_value_t = 200)]
    csi_rounds: usize,
}

const IMAGE: &str = "127.0.0.1:5000/busybox:1";

fn template(app: &str) -> serde_json::Value {
    json!({"metadata": {"labels": {"app": app}},
           "spec": {"terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "app", "image": IMAGE, "command": ["sleep", "3600"],
                                    "resources": {"requests": {"cpu": "1m", "memory": "4Mi"}}}]}})
}

/// Polls `ready` every 200 ms until it says yes; seconds since `started`.
async fn until<F, Fut>(
    started: Instant,
    limit: Duration,
    what: &str,
    mut ready: F,
) -> anyhow::Result<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    loop {
        if ready().await? {
            return Ok(started.elapsed().as_secs_f64());
        }
        anyhow::ensure!(
            started.elapsed() < limit,
            "{what}: not done after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn no_pods(pods: &Api<Pod>, app: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    until(started, Duration::from_secs(900), "pods gone", || async {
        Ok(pods
            .list(&ListParams::default().labels(&format!("app={app}")))
            .await?
            .items
            .is_empty())
    })
    .await
    .map(|_| ())
}

/// A Deployment of `replicas` in `namespace`: seconds to all available.
async fn deployment_seconds(
    client: &kube::Client,
    namespace: &str,
    replicas: usize,
) -> anyhow::Result<f64> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let object: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "reference"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "reference"}}, "template": template("reference")}
    }))?;
    let started = Instant::now();
    api.create(&PostParams::default(), &object).await?;
    let seconds = until(started, Duration::from_secs(1800), "deployment", || async {
        let available = api
            .get("reference")
            .await?
            .status
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        Ok(usize::try_from(available).unwrap_or(0) >= replicas)
    })
    .await?;
    api.delete("reference", &DeleteParams::default()).await?;
    no_pods(&Api::namespaced(client.clone(), namespace), "reference").await?;
    Ok(seconds)
}

async fn daemonset_run(dir: &Path, nodes: usize) -> anyhow::Result<(f64, f64)> {
    let (_server, _address, _) = start_server_with(&dir.join("daemonset"), &[])?;
    let client = ferry_client::connect(
        &dir.join("daemonset").join("kubeconfig.yaml"),
        "ferry-bench",
    )
    .await?;
    let sim = start_sim(&client, nodes).await.context("sim nodes")?;
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    let object: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template("agent")}
    }))?;
    let started = Instant::now();
    api.create(&PostParams::default(), &object).await?;
    let daemonset = until(started, Duration::from_secs(1800), "daemonset", || async {
        let status = api.get("agent").await?.status.unwrap_or_default();
        Ok(status.desired_number_scheduled as usize >= nodes
            && usize::try_from(status.number_available.unwrap_or(0)).unwrap_or(0) >= nodes)
    })
    .await?;
    api.delete("agent", &DeleteParams::default()).await?;
    no_pods(&Api::namespaced(client.clone(), "default"), "agent").await?;
    let deployment = deployment_seconds(&client, "default", nodes).await?;
    sim.stop().await;
    Ok((daemonset, deployment))
}

/// On a real node: the StatefulSet with claims and the Deployment without.
async fn stateful_run(kubeconfig: &Path, replicas: usize) -> anyhow::Result<(f64, f64)> {
    let (client, pods) = namespace_pods(kubeconfig, "bench-stateful").await?;
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), "bench-stateful");
    let object: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "data"},
        "spec": {"replicas": replicas, "serviceName": "data", "podManagementPolicy": "Parallel",
                 "selector": {"matchLabels": {"app": "data"}}, "template": template("data"),
                 "volumeClaimTemplates": [{"metadata": {"name": "www"},
                     "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}}}]}
    }))?;
    let started = Instant::now();
    api.create(&PostParams::default(), &object).await?;
    let stateful = until(
        started,
        Duration::from_secs(1800),
        "statefulset",
        || async {
            let ready = api
                .get("data")
                .await?
                .status
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0);
            Ok(usize::try_from(ready).unwrap_or(0) >= replicas)
        },
    )
    .await?;
    api.delete("data", &DeleteParams::default()).await?;
    no_pods(&pods, "data").await?;
    let deployment = deployment_seconds(&client, "bench-stateful", replicas).await?;
    Ok((stateful, deployment))
}

/// CreateVolume + NodePublishVolume over the driver's socket, then the same directory work by
/// hand; each round is undone before the next. Milliseconds: (csi p50, p99, plain p50, p99).
async fn csi_run(dir: &Path, rounds: usize) -> anyhow::Result<(f64, f64, f64, f64)> {
    use ferry_csi::mounter::Mounter as _;
    let root = dir.join("csi-volumes");
    let socket = dir.join("csi.sock");
    let driver = ferry_csi::LocalDriver::new(
        ferry_csi::DriverConfig {
            node_id: "bench".into(),
            root: root.clone(),
            capacity_bytes: None,
        },
        Arc::new(ferry_csi::mounter::HostMounter),
    )?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        ferry_csi::CsiSocket::bind(&socket)?.serve(driver, async move {
            let _ = stopped.await;
        }),
    );
    let mut client = ferry_csi::client::connect(&socket).await?;
    let capability = ferry_kubelet::csi::mount_capability(
        None,
        v1::volume_capability::access_mode::Mode::SingleNodeMultiWriter,
    );
    let targets = dir.join("targets");
    std::fs::create_dir_all(&targets)?;
    let (mut csi, mut plain) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        let target = targets.join(format!("t{i}"));
        let started = Instant::now();
        let volume = client
            .controller
            .create_volume(v1::CreateVolumeRequest {
                name: format!("pvc-{i}"),
                capacity_range: Some(v1::CapacityRange {
                    required_bytes: 1 << 20,
                    limit_bytes: 0,
                }),
                volume_capabilities: vec![capability.clone()],
                ..Default::default()
            })
            .await?
            .into_inner()
            .volume
            .unwrap_or_default();
        client
            .node
            .node_publish_volume(v1::NodePublishVolumeRequest {
                volume_id: volume.volume_id.clone(),
                target_path: target.to_string_lossy().into_owned(),
                volume_capability: Some(capability.clone()),
                ..Default::default()
            })
            .await?;
        csi.push(started.elapsed().as_secs_f64() * 1000.0);
        client
            .node
            .node_unpublish_volume(v1::NodeUnpublishVolumeRequest {
                volume_id: volume.volume_id.clone(),
                target_path: target.to_string_lossy().into_owned(),
            })
            .await?;
        client
            .controller
            .delete_volume(v1::DeleteVolumeRequest {
                volume_id: volume.volume_id,
            })
            .await?;

        let source = root.join(format!("plain-{i}"));
        let started = Instant::now();
        std::fs::create_dir_all(&source)?;
        std::fs::create_dir_all(&target)?;
        ferry_csi::mounter::HostMounter.bind_mount(&source, &target, false)?;
        plain.push(started.elapsed().as_secs_f64() * 1000.0);
        ferry_csi::mounter::HostMounter.unmount(&target)?;
        std::fs::remove_dir(&target)?;
        std::fs::remove_dir(&source)?;
    }
    let _ = stop.send(());
    let _ = server.await;
    Ok((
        percentile(&mut csi, 0.5),
        percentile(&mut csi, 0.99),
        percentile(&mut plain, 0.5),
        percentile(&mut plain, 0.99),
    ))
}

/// Runs the benchmark.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let mut figures = serde_json::Map::new();
    println!("ferry bench workloads");
    let (daemonset, deployment) = daemonset_run(tmp.path(), args.nodes).await?;
    println!(
        "DaemonSet on {} sim nodes: all available in {daemonset:.1} s   Deployment of {} replicas: {deployment:.1} s   ratio {:.2}",
        args.nodes,
        args.nodes,
        deployment / daemonset
    );
    figures.insert("daemonset_nodes".into(), json!(args.nodes));
    figures.insert(
        "daemonset_seconds".into(),
        json!((daemonset * 10.0).round() / 10.0),
    );
    figures.insert(
        "daemonset_reference_deployment_seconds".into(),
        json!((deployment * 10.0).round() / 10.0),
    );
    figures.insert(
        "daemonset_ratio".into(),
        json!((deployment / daemonset * 100.0).round() / 100.0),
    );
    if args.real_node {
        let (csi50, csi99, plain50, plain99) = csi_run(tmp.path(), args.csi_rounds).await?;
        println!(
            "CSI CreateVolume+NodePublishVolume: p50 {csi50:.2} ms p99 {csi99:.2} ms   mkdir+bind mount: p50 {plain50:.2} ms p99 {plain99:.2} ms"
        );
        figures.insert("csi_p50_ms".into(), json!((csi50 * 100.0).round() / 100.0));
        figures.insert("csi_p99_ms".into(), json!((csi99 * 100.0).round() / 100.0));
        figures.insert(
            "mkdir_bind_p50_ms".into(),
            json!((plain50 * 100.0).round() / 100.0),
        );
        figures.insert(
            "mkdir_bind_p99_ms".into(),
            json!((plain99 * 100.0).round() / 100.0),
        );
        let replicas = args.stateful_replicas;
        let kept = Arc::new(std::sync::Mutex::new(None));
        let slot = kept.clone();
        on_real_node("ferry bench workloads --real-node", false, move |kubeconfig, _agent| async move {
            let (stateful, deployment) = stateful_run(&kubeconfig, replicas).await?;
            println!(
                "Parallel StatefulSet of {replicas} with claims on a real node: all Ready in {stateful:.1} s   Deployment of {replicas} without: {deployment:.1} s   ratio {:.2}",
                deployment / stateful
            );
            let value = json!({"stateful_replicas": replicas,
                      "stateful_seconds": (stateful * 10.0).round() / 10.0,
                      "stateful_reference_deployment_seconds": (deployment * 10.0).round() / 10.0,
                      "stateful_ratio": (deployment / stateful * 100.0).round() / 100.0});
            if let Ok(mut slot) = slot.lock() {
                *slot = Some(value.clone());
            }
            Ok(value)
        })
        .await?;
        if let Some(serde_json::Value::Object(map)) = kept.lock().ok().and_then(|mut k| k.take()) {
            figures.extend(map);
        }
    }
    if args.json {
        println!("{}", serde_json::Value::Object(figures));
    }
    Ok(())
}
