//! `ferry bench scheduler`: scheduling throughput and memory through the real API.
//!
//! A `ferry server` (its own scheduler off) gets `--nodes` simulated nodes and `--pods` pending
//! pods; then the scheduler starts in this process and the time until every pod is bound is
//! measured — once for plain pods, once for pods with topology spread and pod anti-affinity.
//! The reference, in the same run on the same server: a trivial round-robin binder posting
//! the same number of `pods/binding` requests, the upper bound any scheduler could reach
//! through this API. Then, on a fresh server with everything on: the time from creating a
//! `--replicas` Deployment to all its pods Running on `--deployment-nodes` sim nodes.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Binding, Namespace, Node, ObjectReference, Pod, ServiceAccount};
use kube::api::{ListParams, PostParams};
use kube::runtime::watcher;
use kube::Api;
use serde_json::json;

use super::api::{rss_mib, start_server_with, status_mib};

/// Options of `ferry bench scheduler`.
#[derive(clap::Args)]
pub struct Args {
    /// Print one JSON object with every figure as the last line.
    #[arg(long)]
    json: bool,
    /// Simulated nodes for the scheduling runs.
    #[arg(long, default_value_t = 5000)]
    nodes: usize,
    /// Pending pods per scheduling run.
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Simulated nodes for the Deployment run.
    #[arg(long, default_value_t = 1000)]
    deployment_nodes: usize,
    /// Replicas of the Deployment run (0 skips it).
    #[arg(long, default_value_t = 10_000)]
    replicas: usize,
    /// Concurrent API clients creating pods and (for the reference) binding them.
    #[arg(long, default_value_t = 16)]
    clients: usize,
}

fn bench_pod(name: &str, namespace: &str, constrained: bool) -> Pod {
    let mut spec = json!({
        "containers": [{"name": "app", "image": "registry.local/app:1",
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}],
    });
    if constrained {
        spec["topologySpreadConstraints"] = json!([{
            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app": "bench"}},
        }]);
        spec["affinity"] = json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100,
            "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "bench"}}},
        }]}});
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "bench"}},
        "spec": spec,
    }))
    .unwrap_or_default()
}

/// Creates namespace `name` with the `default` service account the serviceaccount controller
/// (off in these runs) would make: the ServiceAccount admission plugin needs it for pods.
async fn create_namespace(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    let account: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "default"}}))?;
    Api::<ServiceAccount>::namespaced(client.clone(), name)
        .create(&PostParams::default(), &account)
        .await?;
    Ok(())
}

/// Creates `count` pods in `namespace` with `clients` concurrent clients.
async fn create_pods(
    client: &kube::Client,
    namespace: &str,
    count: usize,
    clients: usize,
    constrained: bool,
) -> anyhow::Result<()> {
    let per = count.div_ceil(clients.max(1));
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let namespace = namespace.to_string();
        tasks.spawn(async move {
            for i in (c * per).min(count)..((c + 1) * per).min(count) {
                api.create(
                    &PostParams::default(),
                    &bench_pod(&format!("p-{i:06}"), &namespace, constrained),
                )
                .await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    Ok(())
}

/// Resolves when `count` pods of `namespace` have a node.
async fn all_bound(client: kube::Client, namespace: String, count: usize) -> anyhow::Result<()> {
    let api: Api<Pod> = Api::namespaced(client, &namespace);
    let stream = watcher(api, watcher::Config::default().fields("spec.nodeName!="));
    futures::pin_mut!(stream);
    let mut bound = HashSet::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Apply(pod)) | Ok(watcher::Event::InitApply(pod)) => {
                bound.insert(pod.metadata.name.unwrap_or_default());
            }
            Ok(_) => {}
            Err(error) => tracing::debug!(%error, "bench watch"),
        }
        if bound.len() >= count {
            return Ok(());
        }
    }
    anyhow::bail!("watch ended with {} of {count} pods bound", bound.len())
}

/// The real scheduler, in this process: seconds until every pod in `namespace` is bound.
async fn run_scheduler(
    client: &kube::Client,
    namespace: &str,
    count: usize,
) -> anyhow::Result<f64> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = ferry_scheduler::load_config(None)?;
    let started = Instant::now();
    let scheduler = tokio::spawn(ferry_scheduler::run(client.clone(), config, async move {
        let _ = stopped.await;
    }));
    all_bound(client.clone(), namespace.to_string(), count).await?;
    let seconds = started.elapsed().as_secs_f64();
    let _ = stop.send(());
    scheduler.await??;
    Ok(seconds)
}

/// The reference: bind every pending pod of `namespace` round-robin, no decisions at all.
async fn round_robin(
    client: &kube::Client,
    namespace: &str,
    clients: usize,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let nodes: Vec<String> = Api::<Node>::all(client.clone())
        .list_metadata(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    let pods: Vec<String> = Api::<Pod>::namespaced(client.clone(), namespace)
        .list_metadata(&ListParams::default().fields("spec.nodeName="))
        .await?
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    anyhow::ensure!(!nodes.is_empty(), "no nodes");
    let pods = Arc::new(pods);
    let nodes = Arc::new(nodes);
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let (pods, nodes) = (pods.clone(), nodes.clone());
        let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let namespace = namespace.to_string();
        tasks.spawn(async move {
            for i in (c..pods.len()).step_by(clients) {
                let binding = Binding {
                    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                        name: Some(pods[i].clone()),
                        namespace: Some(namespace.clone()),
                        ..Default::default()
                    },
                    target: ObjectReference {
                        api_version: Some("v1".into()),
                        kind: Some("Node".into()),
                        name: Some(nodes[i % nodes.len()].clone()),
                        ..Default::default()
                    },
                };
                api.create_subresource::<Binding, serde_json::Value>(
                    "binding",
                    &pods[i],
                    &PostParams::default(),
                    &binding,
                )
                .await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Starts `nodes` sim nodes in this process and waits until they are all Ready.
/// Running sim nodes: stopped (and waited for) by [`SimHandle::stop`].
pub(super) struct SimHandle {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl SimHandle {
    pub(super) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

pub(super) async fn start_sim(client: &kube::Client, nodes: usize) -> anyhow::Result<SimHandle> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = ferry_sim::Options {
        nodes,
        pod_start_delay: Duration::from_millis(10),
        ..Default::default()
    };
    let task = tokio::spawn(ferry_sim::run(client.clone(), options, async move {
        let _ = stopped.await;
    }));
    let api: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let ready = api
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count();
        if ready >= nodes {
            return Ok(SimHandle { stop, task });
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {ready} of {nodes} sim nodes Ready"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn own_rss_mib() -> f64 {
    rss_mib(std::process::id())
}

fn hwm_mib(pid: u32) -> f64 {
    status_mib(pid, "VmHWM:")
}

/// Runs the benchmark.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    println!(
        "ferry bench scheduler: {} pending pods on {} sim nodes",
        args.pods, args.nodes
    );
    let (server, _address, _) = start_server_with(
        &tmp.path().join("server"),
        &["--disable-scheduler", "--disable-controllers"],
    )?;
    let client = ferry_client::connect(
        &tmp.path().join("server").join("kubeconfig.yaml"),
        "ferry-bench",
    )
    .await?;
    let rss_before_sim = own_rss_mib();
    let sim = start_sim(&client, args.nodes).await.context("sim nodes")?;
    let sim_rss = own_rss_mib() - rss_before_sim;

    let mut figures = serde_json::Map::new();
    for (label, constrained) in [("plain", false), ("spread+anti-affinity", true)] {
        let namespace = if constrained {
            "bench-spread"
        } else {
            "bench-plain"
        };
        create_namespace(&client, namespace).await?;
        create_pods(&client, namespace, args.pods, args.clients, constrained).await?;
        let rss_before = own_rss_mib();
        let seconds = run_scheduler(&client, namespace, args.pods).await?;
        let scheduler_rss = own_rss_mib() - rss_before;
        let rate = args.pods as f64 / seconds;
        // The reference binds the same number of fresh pods round-robin.
        let reference_ns = format!("{namespace}-rr");
        create_namespace(&client, &reference_ns).await?;
        create_pods(&client, &reference_ns, args.pods, args.clients, constrained).await?;
        let reference =
            args.pods as f64 / round_robin(&client, &reference_ns, args.clients).await?;
        println!(
            "{label:>22}: {rate:>7.0} pods/s ({seconds:.1} s)   round-robin binder: {reference:>7.0} pods/s   ratio {:.2}   scheduler RSS +{scheduler_rss:.0} MiB",
            rate / reference
        );
        let key = if constrained { "spread" } else { "plain" };
        figures.insert(format!("{key}_pods_per_s"), json!(rate.round()));
        figures.insert(
            format!("{key}_reference_pods_per_s"),
            json!(reference.round()),
        );
        figures.insert(
            format!("{key}_ratio"),
            json!((rate / reference * 100.0).round() / 100.0),
        );
    }
    let server_rss = rss_mib(server.0.id());
    println!(
        "memory: API server + store with {} nodes and {} pods: RSS {server_rss:.0} MiB (peak {:.0} MiB); sim nodes in this process: +{sim_rss:.0} MiB; this process now {:.0} MiB",
        args.nodes,
        args.pods * 4,
        hwm_mib(server.0.id()),
        own_rss_mib()
    );
    figures.insert("server_rss_mib".into(), json!(server_rss.round()));
    figures.insert("bench_process_rss_mib".into(), json!(own_rss_mib().round()));
    sim.stop().await;
    drop(server);

    let algorithm = ferry_scheduler::bench::schedule_pods(args.pods, args.nodes).await?;
    println!(
        "in-process (no API, fake binder): {:.0} pods/s; round-robin placement {:.0} pods/s",
        algorithm.pods_per_second, algorithm.round_robin_pods_per_second
    );
    figures.insert(
        "in_process_pods_per_s".into(),
        json!(algorithm.pods_per_second.round()),
    );

    if args.replicas > 0 {
        let seconds = deployment_rollout(tmp.path(), args.deployment_nodes, args.replicas).await?;
        println!("deployment: {} replicas on {} sim nodes Running and available in {seconds:.1} s ({:.0} pods/s)", args.replicas, args.deployment_nodes, args.replicas as f64 / seconds);
        figures.insert(
            "deployment_seconds".into(),
            json!((seconds * 10.0).round() / 10.0),
        );
    }
    figures.insert(
        "pods_per_s".into(),
        figures.get("plain_pods_per_s").cloned().unwrap_or(json!(0)),
    );
    figures.insert("nodes".into(), json!(args.nodes));
    figures.insert("pods".into(), json!(args.pods));
    if args.json {
        println!("{}", serde_json::Value::Object(figures));
    }
    Ok(())
}

/// A fresh server with controllers and scheduler: seconds from creating a Deployment of
/// `replicas` to all of them available on `nodes` sim nodes.
async fn deployment_rollout(dir: &Path, nodes: usize, replicas: usize) -> anyhow::Result<f64> {
    let (_server, _address, _) = start_server_with(&dir.join("deployment"), &[])?;
    let client = ferry_client::connect(
        &dir.join("deployment").join("kubeconfig.yaml"),
        "ferry-bench",
    )
    .await?;
    let sim = start_sim(&client, nodes).await?;
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "big", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "big"}},
            "template": {"metadata": {"labels": {"app": "big"}}, "spec": {"containers": [{"name": "app", "image": "registry.local/app:1",
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}},
        },
    }))?;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let started = Instant::now();
    api.create(&PostParams::default(), &deployment).await?;
    let deadline = started + Duration::from_secs(1800);
    loop {
        let available = api
            .get("big")
            .await?
            .status
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        if usize::try_from(available).unwrap_or(0) >= replicas {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {available} of {replicas} available"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    sim.stop().await;
    Ok(seconds)
}
