//! `ferry bench pod-startup`: how long a pod takes from creation to Running and to Ready on a
//! real node (containerd, CNI), with the image already present.
//!
//! A `ferry server` (no local agent) and a `ferry agent` joined with the join token, both child
//! processes; one warm-up pod pulls the image. Then `--pods` pods are created at once and one
//! watch notes, on this machine's clock, when each is scheduled, has its sandbox
//! (`PodReadyToStartContainers`), its container started, is Running and Ready. The reference,
//! in the same run on the agent's own containerd: `ctr run -d` of the same image and command
//! (create + start, no pod sandbox or network) — as many at once as there are pods (the
//! runtime's floor for the same load; the ratio is against it), and one at a time. At the end the agent is
//! stopped and `ferry agent --cleanup` removes what it made. Then the pod-journey tracing's
//! cost: a second node, its server run with `--journeys=false`, takes the same `--pods` at once,
//! and their creation-to-Ready times are set beside the first node's (the agent, a process of
//! its own, records its steps on both). Needs root and the local test registry
//! (`scripts/build-test-images.sh`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{DeleteParams, PostParams};
use kube::runtime::watcher;
use kube::Api;
use serde_json::json;

use super::api::{start_server_with, ServerProcess};

const NODE: &str = "ferry-bench";
const BRIDGE: &str = "ferrybench0";
const CGROUP_ROOT: &str = "/ferry-bench";
const IMAGE: &str = "127.0.0.1:5000/busybox:1";
const NAMESPACE: &str = "bench";

/// Options of `ferry bench pod-startup`.
#[derive(clap::Args)]
pub struct Args {
    /// Print one JSON object with every figure as the last line.
    #[arg(long)]
    json: bool,
    /// Pods created at once.
    #[arg(long, default_value_t = 50)]
    pods: usize,
    /// `ctr run` repetitions one at a time for the reference, and pods created one at a time
    /// (each waited for) for the unloaded figure.
    #[arg(long, default_value_t = 10)]
    ctr_runs: usize,
}

/// When (since its create request) each step of one pod was seen.
#[derive(Default, Clone, Debug)]
struct Seen {
    created: Option<Instant>,
    scheduled: Option<Instant>,
    sandbox: Option<Instant>,
    started: Option<Instant>,
    running: Option<Instant>,
    ready: Option<Instant>,
}

pub(super) fn condition_true(pod: &Pod, type_: &str) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

fn note(seen: &mut Seen, pod: &Pod, now: Instant) {
    let spec = pod.spec.as_ref();
    if spec.and_then(|s| s.node_name.as_ref()).is_some() {
        seen.scheduled.get_or_insert(now);
    }
    if condition_true(pod, "PodReadyToStartContainers") {
        seen.sandbox.get_or_insert(now);
    }
    let status = pod.status.as_ref();
    let started = status
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
        });
    if started {
        seen.started.get_or_insert(now);
    }
    if status.and_then(|s| s.phase.as_deref()) == Some("Running") {
        seen.running.get_or_insert(now);
    }
    if condition_true(pod, "Ready") {
        seen.ready.get_or_insert(now);
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(super) fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    if samples.is_empty() {
        return 0.0;
    }
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn bench_pod(name: &str) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": "bench"}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                            "command": ["sleep", "3600"]}],
        },
    }))?)
}

/// The agent child process, stopped and cleaned up after when dropped.
struct AgentProcess {
    child: Option<Child>,
    args: Vec<String>,
}

impl AgentProcess {
    fn stop_and_clean(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            if let Ok(exe) = std::env::current_exe() {
                let _ = Command::new(exe)
                    .args(["agent", "--cleanup"])
                    .args(&self.args)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.stop_and_clean();
    }
}

fn ctr(socket: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ctr")
        .arg("--address")
        .arg(socket)
        .args(["--namespace", "ferry-bench"])
        .args(args)
        .output()
        .context("running ctr")?;
    if !out.status.success() {
        bail!(
            "ctr {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `ctr run -d` arguments for container `id`.
fn ctr_run_args(socket: &Path, fifo: &str, runc_root: &str, id: &str) -> Vec<String> {
    let mut args: Vec<String> = vec!["--address".into(), socket.to_string_lossy().into_owned()];
    args.extend(
        [
            "--namespace",
            "ferry-bench",
            "run",
            "-d",
            "--null-io",
            "--fifo-dir",
            fifo,
            "--runc-root",
            runc_root,
            "--cgroup",
            &format!("{CGROUP_ROOT}/{id}"),
            IMAGE,
            id,
            "sleep",
            "3600",
        ]
        .map(str::to_string),
    );
    args
}

/// Kills and deletes a `ctr run -d` container.
fn ctr_remove(socket: &Path, id: &str) -> anyhow::Result<()> {
    ctr(socket, &["task", "kill", "--signal", "SIGKILL", id])?;
    // The task is gone once it is reaped; delete retries until then.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ctr(socket, &["task", "delete", id]).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    ctr(socket, &["containers", "delete", id])
}

/// The reference on the agent's own containerd: `ctr run -d` (create and start a container, no
/// pod sandbox or network) of the same image and command — `runs` times one after another
/// (one container's floor), then `concurrent` at once (the floor for the same load as the pods).
/// Returns both lists of times in ms.
fn ctr_reference(
    agent_dir: &Path,
    runs: usize,
    concurrent: usize,
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let socket = agent_dir.join("containerd/containerd.sock");
    let fifo = agent_dir.join("ctr-fifo").to_string_lossy().into_owned();
    let runc_root = agent_dir
        .join("containerd/runc/ferry-bench")
        .to_string_lossy()
        .into_owned();
    ctr(&socket, &["images", "pull", "--plain-http", IMAGE])?;
    let mut sequential = vec![];
    for n in 0..runs {
        let id = format!("ctr-bench-{n}");
        let started = Instant::now();
        let out = Command::new("ctr")
            .args(ctr_run_args(&socket, &fifo, &runc_root, &id))
            .output()?;
        if !out.status.success() {
            bail!("ctr run: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        sequential.push(ms(started.elapsed()));
        ctr_remove(&socket, &id)?;
    }
    let started = Instant::now();
    let mut children = vec![];
    for n in 0..concurrent {
        let id = format!("ctr-bench-c{n}");
        let child = Command::new("ctr")
            .args(ctr_run_args(&socket, &fifo, &runc_root, &id))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        children.push((id, child));
    }
    // Poll so each container's own completion time is seen.
    let mut at_once = vec![];
    let mut failed = None;
    while !children.is_empty() {
        let mut waiting = vec![];
        for (id, mut child) in children {
            match child.try_wait()? {
                Some(status) => {
                    at_once.push(ms(started.elapsed()));
                    if !status.success() {
                        failed = Some(id.clone());
                    }
                    let _ = ctr_remove(&socket, &id);
                }
                None => waiting.push((id, child)),
            }
        }
        children = waiting;
        std::thread::sleep(Duration::from_millis(5));
    }
    if let Some(id) = failed {
        bail!("ctr run of {id} failed");
    }
    Ok((sequential, at_once))
}

async fn wait_node_ready(client: &kube::Client) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(Some(node)) = nodes.get_opt(NODE).await {
            let ready = node
                .status
                .and_then(|s| s.conditions)
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if ready {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("node {NODE} never became Ready");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Fails unless this runs as root and the local test registry answers.
pub(super) fn need_root_and_registry(what: &str) -> anyhow::Result<()> {
    let out = Command::new("id").arg("-u").output()?;
    if String::from_utf8_lossy(&out.stdout).trim() != "0" {
        bail!("{what} runs containers and must run as root");
    }
    let registry = Command::new("curl")
        .args(["-fsS", "--max-time", "2", "http://127.0.0.1:5000/v2/"])
        .output()?;
    if !registry.status.success() {
        bail!(
            "the test registry does not answer on 127.0.0.1:5000: run scripts/build-test-images.sh"
        );
    }
    Ok(())
}

/// A `ferry server` (no local agent) and a `ferry agent` joined to it with the join token, both
/// child processes with their data under a temporary directory. Dropped, the agent is stopped
/// and cleaned up, then the server stopped, then the directory removed.
pub(super) struct RealNode {
    agent: AgentProcess,
    _server: ServerProcess,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The agent's data directory.
    pub agent_dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl RealNode {
    /// Starts both and waits for the node to be Ready.
    pub async fn start() -> anyhow::Result<RealNode> {
        RealNode::start_with(&[]).await
    }

    /// Starts both, the server with `server_flags` too, and waits for the node to be Ready.
    pub async fn start_with(server_flags: &[&str]) -> anyhow::Result<RealNode> {
        let tmp = tempfile::Builder::new()
            .prefix("ferry-bench.")
            .tempdir_in("/tmp")?;
        let server_dir = tmp.path().join("server");
        let agent_dir = tmp.path().join("agent");
        std::fs::create_dir_all(&server_dir)?;
        std::fs::create_dir_all(&agent_dir)?;
        let (server, address, _) = start_server_with(&server_dir, server_flags)?;
        let token = std::fs::read_to_string(server_dir.join("join-token"))?
            .trim()
            .to_string();
        let agent_args: Vec<String> = [
            "--node-name",
            NODE,
            "--data-dir",
            &agent_dir.to_string_lossy(),
            "--bridge",
            BRIDGE,
            "--cgroup-root",
            CGROUP_ROOT,
            // Any free port: a node of this machine may hold 10250.
            "--kubelet-port",
            "0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let log = std::fs::File::create(tmp.path().join("agent.log"))?;
        let child = Command::new(std::env::current_exe()?)
            .arg("agent")
            .args(["--server", &format!("https://{address}"), "--token", &token])
            .args(&agent_args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting ferry agent")?;
        let node = RealNode {
            agent: AgentProcess {
                child: Some(child),
                args: agent_args,
            },
            _server: server,
            kubeconfig: server_dir.join("kubeconfig.yaml"),
            agent_dir,
            _tmp: tmp,
        };
        let client = ferry_client::connect(&node.kubeconfig, "ferry-bench").await?;
        wait_node_ready(&client).await?;
        Ok(node)
    }

    /// Stops the agent and removes what it made (also done when dropped).
    pub fn stop(&mut self) {
        self.agent.stop_and_clean();
    }
}

/// Runs the benchmark.
pub async fn run(args: Args) -> anyhow::Result<()> {
    need_root_and_registry("ferry bench pod-startup")?;
    let args = &args;
    let mut figures = figures_on_real_node(&[], |kubeconfig, agent_dir| async move {
        measure(args, &kubeconfig, &agent_dir).await
    })
    .await?;
    let off = figures_on_real_node(&["--journeys=false"], |kubeconfig, _| async move {
        journeys_off(args, &kubeconfig).await
    })
    .await?;
    let on_p50 = figures["ready_p50_ms"].as_f64().unwrap_or(0.0);
    let ratio = if off.p50 > 0.0 { on_p50 / off.p50 } else { 0.0 };
    println!(
        "journeys: {} pods at once, creation to Ready: on p50 {on_p50:.0} ms, p99 {:.0} ms; off (server --journeys=false) p50 {:.0} ms, p99 {:.0} ms; ratio on/off (p50) {ratio:.2} (target ≤ 1.05)",
        args.pods,
        figures["ready_p99_ms"].as_f64().unwrap_or(0.0),
        off.p50,
        off.p99
    );
    if let Some(object) = figures.as_object_mut() {
        object.insert("journeys_off_ready_p50_ms".into(), json!(off.p50));
        object.insert("journeys_off_ready_p99_ms".into(), json!(off.p99));
        object.insert("journeys_ratio_ready_p50".into(), json!(ratio));
    }
    if args.json {
        println!("{figures}");
    }
    Ok(())
}

/// Runs `measure` (given the admin kubeconfig and the agent's data dir) on a [`RealNode`],
/// stops the node whatever happened, and prints the figures as JSON with `json`.
pub(super) async fn on_real_node<F, Fut>(what: &str, json: bool, measure: F) -> anyhow::Result<()>
where
    F: FnOnce(PathBuf, PathBuf) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<serde_json::Value>>,
{
    need_root_and_registry(what)?;
    let figures = figures_on_real_node(&[], measure).await?;
    if json {
        println!("{figures}");
    }
    Ok(())
}

/// Runs `measure` (given the admin kubeconfig and the agent's data dir) on a [`RealNode`]
/// whose server has `server_flags`, and stops the node whatever happened.
async fn figures_on_real_node<F, Fut, T>(server_flags: &[&str], measure: F) -> anyhow::Result<T>
where
    F: FnOnce(PathBuf, PathBuf) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut node = RealNode::start_with(server_flags).await?;
    let result = measure(node.kubeconfig.clone(), node.agent_dir.clone()).await;
    node.stop();
    result
}

/// A client, and the pods of a new namespace `namespace`.
pub(super) async fn namespace_pods(
    kubeconfig: &Path,
    namespace: &str,
) -> anyhow::Result<(kube::Client, Api<Pod>)> {
    let client = ferry_client::connect(kubeconfig, "ferry-bench").await?;
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    let pods = Api::namespaced(client.clone(), namespace);
    Ok((client, pods))
}

/// Creation to Ready on a node whose server runs with `--journeys=false`, p50 and p99 (ms).
struct ReadyOff {
    p50: f64,
    p99: f64,
}

/// The same warm-up and pods at once as [`measure`], on a server without journeys.
async fn journeys_off(args: &Args, kubeconfig: &Path) -> anyhow::Result<ReadyOff> {
    let (_client, pods) = namespace_pods(kubeconfig, NAMESPACE).await?;
    warm_up(&pods).await?;
    let (seen, _) = at_once(&pods, args.pods, false).await?;
    let mut ready: Vec<f64> = seen
        .values()
        .filter_map(|s| Some(ms(s.ready?.saturating_duration_since(s.created?))))
        .collect();
    Ok(ReadyOff {
        p50: percentile(&mut ready, 0.5),
        p99: percentile(&mut ready, 0.99),
    })
}

/// Pulls the image once, outside the measurement: a pod made Ready, then deleted.
async fn warm_up(pods: &Api<Pod>) -> anyhow::Result<()> {
    pods.create(&PostParams::default(), &bench_pod("warm")?)
        .await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let pod = pods.get("warm").await?;
        if condition_true(&pod, "Ready") {
            break;
        }
        if Instant::now() > deadline {
            bail!("the warm-up pod never became Ready");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pods.delete("warm", &DeleteParams::default()).await?;
    Ok(())
}

/// Creates `count` pods at once and notes when each passes each step, until all are Ready;
/// the notes and the time until the last was Ready (ms). Fails unless the pods carry the
/// journey annotation exactly when the server records `journeys`.
async fn at_once(
    pods: &Api<Pod>,
    count: usize,
    journeys: bool,
) -> anyhow::Result<(HashMap<String, Seen>, f64)> {
    let seen: std::sync::Arc<std::sync::Mutex<HashMap<String, Seen>>> = Default::default();
    let watch = {
        let (pods, seen) = (pods.clone(), seen.clone());
        tokio::spawn(async move {
            let stream = watcher(pods, watcher::Config::default().labels("app=bench"));
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                let now = Instant::now();
                if let Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) = event {
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    if name == "warm" {
                        continue;
                    }
                    let Ok(mut seen) = seen.lock() else { return };
                    note(seen.entry(name).or_default(), &pod, now);
                    if seen.len() == count && seen.values().all(|s| s.ready.is_some()) {
                        return;
                    }
                }
            }
        })
    };
    let started = Instant::now();
    let mut creates = tokio::task::JoinSet::new();
    for i in 0..count {
        let (pods, seen) = (pods.clone(), seen.clone());
        creates.spawn(async move {
            let name = format!("p-{i:03}");
            seen.lock()
                .expect("lock")
                .entry(name.clone())
                .or_default()
                .created = Some(Instant::now());
            pods.create(&PostParams::default(), &bench_pod(&name)?)
                .await?;
            anyhow::Ok(())
        });
    }
    while let Some(r) = creates.join_next().await {
        r??;
    }
    if tokio::time::timeout(Duration::from_secs(300), watch)
        .await
        .is_err()
    {
        bail!("not every pod became Ready within 300 s");
    }
    let all_ready_ms = ms(started.elapsed());
    let annotated = ferry_journey::of_object(&pods.get("p-000").await?.metadata).is_some();
    if annotated != journeys {
        bail!("with journeys {journeys}, a pod has the journey annotation: {annotated}");
    }
    let seen = seen
        .lock()
        .map_err(|_| anyhow::anyhow!("a pod's notes were poisoned"))?
        .clone();
    Ok((seen, all_ready_ms))
}

/// The figures of the first node: pods at once, pods one at a time, and the `ctr` reference.
async fn measure(
    args: &Args,
    kubeconfig: &Path,
    agent_dir: &Path,
) -> anyhow::Result<serde_json::Value> {
    let (_client, pods) = namespace_pods(kubeconfig, NAMESPACE).await?;
    warm_up(&pods).await?;
    let (seen, all_ready_ms) = at_once(&pods, args.pods, true).await?;

    // Unloaded: pods one at a time, each from its create request to Ready.
    let mut one_by_one = vec![];
    for i in 0..args.ctr_runs {
        let name = format!("single-{i:02}");
        let pod = bench_pod(&name)?;
        let started = Instant::now();
        pods.create(&PostParams::default(), &pod).await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if condition_true(&pods.get(&name).await?, "Ready") {
                break;
            }
            if Instant::now() > deadline {
                bail!("{name} never became Ready");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        one_by_one.push(ms(started.elapsed()));
    }
    let single_p50 = percentile(&mut one_by_one, 0.5);

    let phase = |f: fn(&Seen) -> Option<Instant>| -> Vec<f64> {
        seen.values()
            .filter_map(|s| Some(ms(f(s)?.saturating_duration_since(s.created?))))
            .collect()
    };
    let (mut scheduled, mut sandbox, mut started_c, mut running, mut ready) = (
        phase(|s| s.scheduled),
        phase(|s| s.sandbox),
        phase(|s| s.started),
        phase(|s| s.running),
        phase(|s| s.ready),
    );
    let (mut ctr_times, mut ctr_at_once) = ctr_reference(agent_dir, args.ctr_runs, args.pods)?;
    let ctr_single_p50 = percentile(&mut ctr_times, 0.5);
    let ctr_p50 = percentile(&mut ctr_at_once, 0.5);
    let ctr_p99 = percentile(&mut ctr_at_once, 0.99);
    let ready_p50 = percentile(&mut ready, 0.5);
    let ready_p99 = percentile(&mut ready, 0.99);
    let running_p50 = percentile(&mut running, 0.5);
    let running_p99 = percentile(&mut running, 0.99);
    let ratio = if ctr_p50 > 0.0 {
        ready_p50 / ctr_p50
    } else {
        0.0
    };
    println!("pod-startup: {} pods created at once on one real node (containerd, CNI bridge), image present", args.pods);
    println!(
        "  scheduled          p50 {:7.0} ms  p99 {:7.0} ms",
        percentile(&mut scheduled, 0.5),
        percentile(&mut scheduled, 0.99)
    );
    println!(
        "  sandbox ready      p50 {:7.0} ms  p99 {:7.0} ms",
        percentile(&mut sandbox, 0.5),
        percentile(&mut sandbox, 0.99)
    );
    println!(
        "  container started  p50 {:7.0} ms  p99 {:7.0} ms",
        percentile(&mut started_c, 0.5),
        percentile(&mut started_c, 0.99)
    );
    println!("  Running            p50 {running_p50:7.0} ms  p99 {running_p99:7.0} ms");
    println!("  Ready              p50 {ready_p50:7.0} ms  p99 {ready_p99:7.0} ms   (all {} Ready after {all_ready_ms:.0} ms)", args.pods);
    println!(
        "one pod at a time ({} pods, each waited for): Ready p50 {single_p50:.0} ms",
        args.ctr_runs
    );
    println!(
        "reference: `ctr run -d` of the same image and command, {} at once: p50 {ctr_p50:.0} ms  p99 {ctr_p99:.0} ms; one at a time: p50 {ctr_single_p50:.0} ms",
        args.pods
    );
    println!("ratio (Ready p50 / ctr run p50): {ratio:.1}");
    Ok(json!({
        "pods": args.pods,
        "scheduled_p50_ms": percentile(&mut scheduled, 0.5),
        "sandbox_p50_ms": percentile(&mut sandbox, 0.5),
        "started_p50_ms": percentile(&mut started_c, 0.5),
        "running_p50_ms": running_p50, "running_p99_ms": running_p99,
        "ready_p50_ms": ready_p50, "ready_p99_ms": ready_p99,
        "all_ready_ms": all_ready_ms,
        "single_ready_p50_ms": single_p50,
        "ctr_run_p50_ms": ctr_p50,
        "ctr_run_p99_ms": ctr_p99,
        "ctr_run_single_p50_ms": ctr_single_p50,
        "ratio_vs_ctr": ratio,
    }))
}
