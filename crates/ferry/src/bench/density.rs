//! `ferry bench density`: upstream's density/load test (clusterloader2's `load` config) on this
//! machine. A `ferry server` with everything on gets `--nodes` simulated nodes, one namespace
//! per 100 of them, and `--pods-per-node` pods per node made through Deployments of mixed
//! sizes (a quarter of the pods in Deployments of 250, a quarter in Deployments of 30, half in
//! Deployments of 5), created at a steady `--pod-rate`; then every Deployment is scaled to
//! between half and one and a half times its size, then all are deleted.
//!
//! It reports what upstream's scalability SLOs measure, each with its verdict:
//! - API call latency, p50/p99 per verb and resource, from the server's own
//!   `apiserver_request_duration_seconds` (every client's calls: the controllers', the
//!   scheduler's, the nodes'), and from this client's probes per SLO class: a GET of a node,
//!   a namespace LIST of pods, a cluster LIST of pods, a mutating call (a ConfigMap update) —
//!   SLOs: mutating ≤ 1 s, GET ≤ 1 s, namespace LIST ≤ 5 s, cluster LIST ≤ 30 s (p99);
//! - pod startup latency, p50/p99, from a pod's first appearance to Running, both seen by one
//!   watch (SLO: p99 ≤ 5 s);
//! - the server's peak RSS and CPU seconds.
//!
//! Bounded: each phase waits at most `--phase-timeout`, and a phase that times out is reported
//! as such (the run goes on with the next).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::Api;
use serde_json::{json, Value};

use super::api::{percentiles, start_server_with, status_mib};
use super::scheduler::start_sim;

/// Options of `ferry bench density`.
#[derive(clap::Args)]
pub struct Args {
    /// Print one JSON object with every figure as the last line.
    #[arg(long)]
    json: bool,
    /// Simulated nodes.
    #[arg(long, default_value_t = 5000)]
    nodes: usize,
    /// Pods per node (upstream's density test: 30).
    #[arg(long, default_value_t = 30)]
    pods_per_node: usize,
    /// Pods per second the Deployments are created (and deleted) at.
    #[arg(long, default_value_t = 500)]
    pod_rate: usize,
    /// The longest wait for one phase to settle, in seconds.
    #[arg(long, default_value_t = 900)]
    phase_timeout: u64,
}

/// A mutex's guard, poisoned or not (the figures are still worth reading).
trait LockNow<T> {
    fn lock_now(&self) -> MutexGuard<'_, T>;
}

impl<T> LockNow<T> for Mutex<T> {
    fn lock_now(&self) -> MutexGuard<'_, T> {
        self.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Upstream's SLO thresholds (p99, seconds).
const MUTATING_SLO: f64 = 1.0;
const GET_SLO: f64 = 1.0;
const NAMESPACE_LIST_SLO: f64 = 5.0;
const CLUSTER_LIST_SLO: f64 = 30.0;
const POD_STARTUP_SLO: f64 = 5.0;

/// One Deployment of the load: its namespace, name and replicas.
#[derive(Clone)]
struct Workload {
    namespace: String,
    name: String,
    replicas: usize,
}

/// The Deployments of one namespace holding `pods` pods: a quarter in Deployments of 250, a
/// quarter in Deployments of 30, the rest in Deployments of 5 (clusterloader2's `load` mix).
fn workloads(namespace: &str, pods: usize) -> Vec<Workload> {
    let big = pods / 4 / 250;
    let medium = pods / 4 / 30;
    let small = (pods - big * 250 - medium * 30).div_ceil(5);
    let sizes = [
        ("big", big, 250),
        ("medium", medium, 30),
        ("small", small, 5),
    ];
    let mut out = Vec::new();
    for (kind, count, replicas) in sizes {
        for i in 0..count {
            out.push(Workload {
                namespace: namespace.to_string(),
                name: format!("{kind}-{i}"),
                replicas,
            });
        }
    }
    out
}

/// The scale factor of the `i`th Deployment in the scale phase: between 0.5 and 1.5, the same
/// in every run (a hash, not a random draw).
fn scale_factor(i: usize) -> f64 {
    let h = (i as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(17)
        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    0.5 + (h % 1001) as f64 / 1000.0
}

fn deployment(w: &Workload) -> anyhow::Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": w.name, "namespace": w.namespace},
        "spec": {
            "replicas": w.replicas,
            "selector": {"matchLabels": {"app": w.name}},
            "template": {"metadata": {"labels": {"app": w.name, "load": "density"}},
                "spec": {"containers": [{"name": "app", "image": "registry.local/pause:3.10",
                    "resources": {"requests": {"cpu": "1m", "memory": "10M"}}}]}},
        },
    }))?)
}

/// Runs `count` calls of `call` spread evenly over `seconds` (at most `concurrency` at once);
/// the latency of each call is kept in `samples`.
async fn paced<F, Fut>(
    count: usize,
    seconds: f64,
    concurrency: usize,
    samples: Arc<Mutex<Vec<Duration>>>,
    call: F,
) -> anyhow::Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let started = Instant::now();
    let gap = Duration::from_secs_f64(seconds / count.max(1) as f64);
    let limit = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let due = started + gap * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let permit = limit.clone().acquire_owned().await?;
        let (future, samples) = (call(i), samples.clone());
        tasks.spawn(async move {
            let t = Instant::now();
            let result = future.await;
            samples.lock_now().push(t.elapsed());
            drop(permit);
            result
        });
        while let Some(done) = tasks.try_join_next() {
            done??;
        }
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// What the watch of every pod has seen: when each pod first appeared, when it was first
/// Running, and how many pods exist.
#[derive(Default)]
struct PodTimes {
    first_seen: HashMap<String, Instant>,
    startup: Vec<Duration>,
    running: HashSet<String>,
    live: usize,
    /// The pods of a relist in progress.
    relisted: Option<HashSet<String>>,
}

/// Watches every pod, filling `times`, until the task is aborted.
fn watch_pods(client: kube::Client, times: Arc<Mutex<PodTimes>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let pods: Api<Pod> = Api::all(client);
        let config = watcher::Config::default().labels("load=density");
        let mut events = std::pin::pin!(watcher(pods, config));
        while let Some(event) = events.next().await {
            let now = Instant::now();
            let mut times = times.lock_now();
            match event {
                Ok(watcher::Event::Init) => times.relisted = Some(HashSet::new()),
                Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                    let uid = pod.metadata.uid.clone().unwrap_or_default();
                    if let Some(relisted) = &mut times.relisted {
                        relisted.insert(uid.clone());
                    }
                    let first = *times.first_seen.entry(uid.clone()).or_insert(now);
                    let running = pod
                        .status
                        .as_ref()
                        .and_then(|s| s.phase.as_deref())
                        .is_some_and(|p| p == "Running");
                    if running && times.running.insert(uid) {
                        times.startup.push(now - first);
                    }
                    times.live = times.first_seen.len();
                }
                Ok(watcher::Event::InitDone) => {
                    // A relist: pods deleted while the watch was down are gone from it.
                    if let Some(relisted) = times.relisted.take() {
                        times.first_seen.retain(|uid, _| relisted.contains(uid));
                        times.running.retain(|uid| relisted.contains(uid));
                        times.live = times.first_seen.len();
                    }
                }
                Ok(watcher::Event::Delete(pod)) => {
                    let uid = pod.metadata.uid.unwrap_or_default();
                    times.first_seen.remove(&uid);
                    times.running.remove(&uid);
                    times.live = times.first_seen.len();
                }
                Err(error) => tracing::debug!(%error, "pod watch"),
            }
        }
    })
}

/// The SLO probes: every second a node GET, a namespace LIST of pods, a ConfigMap update; every
/// ten seconds a cluster LIST of pods. Latencies by class.
#[derive(Default)]
struct Probes {
    get: Vec<Duration>,
    namespace_list: Vec<Duration>,
    cluster_list: Vec<Duration>,
    mutating: Vec<Duration>,
}

fn probe(
    client: kube::Client,
    node: String,
    probes: Arc<Mutex<Probes>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let nodes: Api<Node> = Api::all(client.clone());
        let namespace_pods: Api<Pod> = Api::namespaced(client.clone(), "density-0");
        let all_pods: Api<Pod> = Api::all(client.clone());
        let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let mut tick = 0u64;
        loop {
            let t = Instant::now();
            if nodes.get(&node).await.is_ok() {
                probes.lock_now().get.push(t.elapsed());
            }
            let t = Instant::now();
            if namespace_pods.list(&ListParams::default()).await.is_ok() {
                probes.lock_now().namespace_list.push(t.elapsed());
            }
            let t = Instant::now();
            let patch = json!({"data": {"tick": tick.to_string()}});
            if config_maps
                .patch(
                    "density-probe",
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .is_ok()
            {
                probes.lock_now().mutating.push(t.elapsed());
            }
            if tick.is_multiple_of(10) {
                let t = Instant::now();
                if all_pods.list(&ListParams::default()).await.is_ok() {
                    probes.lock_now().cluster_list.push(t.elapsed());
                }
            }
            tick += 1;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

/// Waits until `done` holds, checking every half second; false when `timeout` passed first.
async fn settle(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    done()
}

/// p50 and p99 per (verb, resource) from the server's `apiserver_request_duration_seconds`
/// buckets (all codes together), interpolated within a bucket as Prometheus's
/// `histogram_quantile` does; calls per key.
fn server_latencies(metrics: &str) -> Vec<(String, String, u64, f64, f64)> {
    // (verb, resource) → le → cumulative count.
    let mut buckets: HashMap<(String, String), HashMap<String, u64>> = HashMap::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_duration_seconds_bucket{") else {
            continue;
        };
        let Some((labels, count)) = rest.split_once("} ") else {
            continue;
        };
        let label = |name: &str| -> String {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_string())
                .unwrap_or_default()
        };
        let count: u64 = count.trim().parse::<f64>().unwrap_or(0.0) as u64;
        *buckets
            .entry((label("verb"), label("resource")))
            .or_default()
            .entry(label("le"))
            .or_default() += count;
    }
    let mut out = Vec::new();
    for ((verb, resource), by_le) in buckets {
        let mut bounds: Vec<(f64, u64)> = by_le
            .iter()
            .map(|(le, c)| (le.parse::<f64>().unwrap_or(f64::INFINITY), *c))
            .collect();
        bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = bounds.last().map(|b| b.1).unwrap_or(0);
        if total == 0 {
            continue;
        }
        let quantile = |q: f64| -> f64 {
            let rank = q * total as f64;
            let mut previous = (0.0, 0u64);
            for &(le, count) in &bounds {
                if count as f64 >= rank {
                    if le.is_infinite() {
                        return previous.0;
                    }
                    let inside = (count - previous.1) as f64;
                    let into = rank - previous.1 as f64;
                    return previous.0
                        + (le - previous.0) * if inside > 0.0 { into / inside } else { 1.0 };
                }
                previous = (le, count);
            }
            previous.0
        };
        out.push((verb, resource, total, quantile(0.5), quantile(0.99)));
    }
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command.
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

fn verdict(p99: f64, slo: f64) -> &'static str {
    if p99 <= slo {
        "pass"
    } else {
        "FAIL"
    }
}

/// Runs the benchmark.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("server");
    let (server, _address, _) = start_server_with(&dir, &[])?;
    let pid = server.0.id();
    let client = ferry_client::connect(&dir.join("kubeconfig.yaml"), "ferry-bench").await?;
    let phase_timeout = Duration::from_secs(args.phase_timeout);
    let started = Instant::now();
    let sim = start_sim(&client, args.nodes).await.context("sim nodes")?;
    eprintln!(
        "{} sim nodes Ready in {:.1} s",
        args.nodes,
        started.elapsed().as_secs_f64()
    );

    let namespaces = args.nodes.div_ceil(100);
    let pods_per_namespace = args.nodes * args.pods_per_node / namespaces;
    let ns_api: Api<Namespace> = Api::all(client.clone());
    for i in 0..namespaces {
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": format!("density-{i}")}}))?;
        ns_api.create(&PostParams::default(), &ns).await?;
    }
    let probe_map: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "density-probe"}}))?;
    Api::<ConfigMap>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &probe_map)
        .await?;
    let mut load: Vec<Workload> = (0..namespaces)
        .flat_map(|i| workloads(&format!("density-{i}"), pods_per_namespace))
        .collect();
    // Interleave namespaces and sizes, as the load test creates them.
    load.sort_by_key(|w| (w.name.clone(), w.namespace.clone()));
    let total_pods: usize = load.iter().map(|w| w.replicas).sum();

    let times = Arc::new(Mutex::new(PodTimes::default()));
    let watch = watch_pods(client.clone(), times.clone());
    let probes = Arc::new(Mutex::new(Probes::default()));
    let prober = probe(client.clone(), "sim-0".into(), probes.clone());
    let cpu_start = cpu_seconds(pid);

    // Create.
    let creating = Instant::now();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let create_seconds = total_pods as f64 / args.pod_rate.max(1) as f64;
    {
        let (client, load) = (client.clone(), Arc::new(load.clone()));
        paced(load.len(), create_seconds, 64, calls.clone(), move |i| {
            let (client, w) = (client.clone(), load[i].clone());
            async move {
                let api: Api<Deployment> = Api::namespaced(client, &w.namespace);
                api.create(&PostParams::default(), &deployment(&w)?).await?;
                Ok(())
            }
        })
        .await?;
    }
    let created_all = settle(phase_timeout, || {
        times.lock_now().running.len() >= total_pods
    })
    .await;
    let create_phase = creating.elapsed().as_secs_f64();
    eprintln!(
        "{total_pods} pods in {} Deployments: {} in {create_phase:.1} s",
        load.len(),
        if created_all {
            "all Running"
        } else {
            "NOT all Running"
        }
    );

    // Scale.
    let scaling = Instant::now();
    let scaled: Vec<Workload> = load
        .iter()
        .enumerate()
        .map(|(i, w)| Workload {
            replicas: ((w.replicas as f64) * scale_factor(i)).round() as usize,
            ..w.clone()
        })
        .collect();
    let scaled_pods: usize = scaled.iter().map(|w| w.replicas).sum();
    {
        let (client, scaled) = (client.clone(), Arc::new(scaled.clone()));
        paced(
            scaled.len(),
            create_seconds / 2.0,
            64,
            calls.clone(),
            move |i| {
                let (client, w) = (client.clone(), scaled[i].clone());
                async move {
                    let api: Api<Deployment> = Api::namespaced(client, &w.namespace);
                    let patch = json!({"spec": {"replicas": w.replicas}});
                    api.patch_scale(&w.name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await?;
                    Ok(())
                }
            },
        )
        .await?;
    }
    let scaled_all = settle(phase_timeout, || {
        let t = times.lock_now();
        t.live == scaled_pods && t.running.len() == scaled_pods
    })
    .await;
    let scale_phase = scaling.elapsed().as_secs_f64();
    eprintln!(
        "scaled to {scaled_pods} pods: {} in {scale_phase:.1} s",
        if scaled_all { "settled" } else { "NOT settled" }
    );

    // Delete.
    let deleting = Instant::now();
    {
        let (client, load) = (client.clone(), Arc::new(load.clone()));
        paced(load.len(), create_seconds, 64, calls.clone(), move |i| {
            let (client, w) = (client.clone(), load[i].clone());
            async move {
                let api: Api<Deployment> = Api::namespaced(client, &w.namespace);
                api.delete(&w.name, &DeleteParams::background()).await?;
                Ok(())
            }
        })
        .await?;
    }
    let deleted_all = settle(phase_timeout, || times.lock_now().live == 0).await;
    let delete_phase = deleting.elapsed().as_secs_f64();
    eprintln!(
        "deleted: {} in {delete_phase:.1} s",
        if deleted_all {
            "no pod left"
        } else {
            "pods LEFT"
        }
    );

    prober.abort();
    watch.abort();
    let cpu = cpu_seconds(pid) - cpu_start;
    let peak_rss = status_mib(pid, "VmHWM:");
    let metrics = client
        .request_text(http::Request::get("/metrics").body(Vec::new())?)
        .await
        .context("reading /metrics")?;
    sim.stop().await;
    drop(server);

    let server_side = server_latencies(&metrics);
    let startup = std::mem::take(&mut times.lock_now().startup);
    let (startup_p50, startup_p99) = percentiles(startup);
    let probes = std::mem::take(&mut *probes.lock_now());
    let classes = [
        ("mutating (ConfigMap patch)", probes.mutating, MUTATING_SLO),
        ("GET (node)", probes.get, GET_SLO),
        (
            "namespace LIST (pods)",
            probes.namespace_list,
            NAMESPACE_LIST_SLO,
        ),
        ("cluster LIST (pods)", probes.cluster_list, CLUSTER_LIST_SLO),
    ];
    let (calls_p50, calls_p99) = percentiles(std::mem::take(&mut *calls.lock_now()));

    println!(
        "ferry bench density: {} nodes, {total_pods} pods in {} Deployments over {namespaces} namespaces at {} pods/s",
        args.nodes,
        load.len(),
        args.pod_rate
    );
    println!("  phases: create {create_phase:.1} s, scale {scale_phase:.1} s, delete {delete_phase:.1} s");
    println!(
        "  pod startup (first seen → Running): p50 {:.3} s, p99 {:.3} s (SLO ≤ {POD_STARTUP_SLO} s: {})",
        startup_p50 / 1000.0,
        startup_p99 / 1000.0,
        verdict(startup_p99 / 1000.0, POD_STARTUP_SLO)
    );
    let mut figures = serde_json::Map::new();
    for (name, samples, slo) in classes {
        let n = samples.len();
        let (p50, p99) = percentiles(samples);
        println!(
            "  probe {name}: p50 {:.1} ms, p99 {:.1} ms over {n} calls (SLO ≤ {slo} s: {})",
            p50,
            p99,
            verdict(p99 / 1000.0, slo)
        );
        figures.insert(
            format!(
                "probe_{}",
                name.split(' ').next().unwrap_or(name).to_lowercase()
            ),
            json!({"p50_ms": p50, "p99_ms": p99, "calls": n, "slo_s": slo,
                   "pass": p99 / 1000.0 <= slo}),
        );
    }
    println!("  this client's Deployment calls: p50 {calls_p50:.1} ms, p99 {calls_p99:.1} ms");
    println!("  server-side latency per verb and resource (all clients):");
    let mut server_figures = Vec::new();
    for (verb, resource, count, p50, p99) in &server_side {
        if *count < 100 {
            continue;
        }
        let slo = match verb.as_str() {
            "get" => Some(GET_SLO),
            "list" => Some(CLUSTER_LIST_SLO),
            "watch" => None,
            _ => Some(MUTATING_SLO),
        };
        let check = slo.map(|s| verdict(*p99, s)).unwrap_or("-");
        println!(
            "    {verb:>16} {resource:<28} {count:>9} calls  p50 {:>8.1} ms  p99 {:>8.1} ms  {check}",
            p50 * 1000.0,
            p99 * 1000.0
        );
        server_figures.push(json!({"verb": verb, "resource": resource, "calls": count,
            "p50_ms": p50 * 1000.0, "p99_ms": p99 * 1000.0}));
    }
    println!("  server: peak RSS {peak_rss:.0} MiB, {cpu:.0} CPU seconds");
    if args.json {
        figures.insert("nodes".into(), json!(args.nodes));
        figures.insert("pods".into(), json!(total_pods));
        figures.insert("deployments".into(), json!(load.len()));
        figures.insert("create_phase_s".into(), json!(create_phase));
        figures.insert("scale_phase_s".into(), json!(scale_phase));
        figures.insert("delete_phase_s".into(), json!(delete_phase));
        figures.insert("all_running".into(), json!(created_all));
        figures.insert("scale_settled".into(), json!(scaled_all));
        figures.insert("all_deleted".into(), json!(deleted_all));
        figures.insert("pod_startup_p50_s".into(), json!(startup_p50 / 1000.0));
        figures.insert("pod_startup_p99_s".into(), json!(startup_p99 / 1000.0));
        figures.insert("server_peak_rss_mib".into(), json!(peak_rss));
        figures.insert("server_cpu_s".into(), json!(cpu));
        figures.insert("server_latencies".into(), Value::Array(server_figures));
        println!("{}", Value::Object(figures));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_mix_holds_every_pod() {
        let w = workloads("ns", 3000);
        let count = |size| w.iter().filter(|w| w.replicas == size).count();
        assert_eq!((count(250), count(30), count(5)), (3, 25, 300));
        assert_eq!(w.iter().map(|w| w.replicas).sum::<usize>(), 3000);
        // A small namespace is all small Deployments.
        assert_eq!(
            workloads("ns", 12)
                .iter()
                .map(|w| w.replicas)
                .sum::<usize>(),
            15
        );
    }

    #[test]
    fn scale_factors_stay_within_half_and_one_and_a_half() {
        assert!((0..10_000)
            .map(scale_factor)
            .all(|f| (0.5..=1.5).contains(&f)));
        assert_eq!(scale_factor(7), scale_factor(7));
    }

    #[test]
    fn server_latencies_are_read_from_the_histogram() {
        let text = "\
apiserver_request_duration_seconds_bucket{verb=\"get\",resource=\"pods\",code=\"200\",le=\"0.005\"} 50
apiserver_request_duration_seconds_bucket{verb=\"get\",resource=\"pods\",code=\"200\",le=\"0.025\"} 100
apiserver_request_duration_seconds_bucket{verb=\"get\",resource=\"pods\",code=\"200\",le=\"+Inf\"} 100
apiserver_request_duration_seconds_bucket{verb=\"get\",resource=\"pods\",code=\"404\",le=\"0.005\"} 0
apiserver_request_duration_seconds_bucket{verb=\"get\",resource=\"pods\",code=\"404\",le=\"0.025\"} 0
apiserver_request_duration_seconds_bucket{verb=\"get\",resource=\"pods\",code=\"404\",le=\"+Inf\"} 0
";
        let got = server_latencies(text);
        assert_eq!(got.len(), 1);
        let (verb, resource, count, p50, p99) = &got[0];
        assert_eq!(
            (verb.as_str(), resource.as_str(), *count),
            ("get", "pods", 100)
        );
        assert!((p50 - 0.005).abs() < 1e-9, "{p50}");
        // 99 of 100: 49 of the 50 in the second bucket, linear within it.
        assert!((p99 - (0.005 + 0.02 * 49.0 / 50.0)).abs() < 1e-9, "{p99}");
    }
}
