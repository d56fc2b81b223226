//! `ferry bench exec`: looking inside a pod through the whole path — kubectl → API server →
//! kubelet → containerd's streaming server — against going to containerd directly.
//!
//! On a real node (a `ferry server` and a joined `ferry agent`, as `ferry bench pod-startup`):
//! - **exec round trips**: `kubectl exec <pod> -- true`, one after another, next to `ctr task
//!   exec` of the same command in the same container on the agent's containerd (the runtime's
//!   own floor for an exec session). kubectl 1.32 speaks WebSocket `v5.channel.k8s.io`, which
//!   the kubelet bridges to containerd's SPDY: the figure is what a user waits for.
//! - **log throughput**: a pod writes `--log-mb` MB of 100-byte lines as fast as it can and
//!   exits; `kubectl logs -f` then reads the whole log (following ends when the container has
//!   stopped), next to reading the CRI log file itself (`cat`, the disk's floor). Both in MB/s of
//!   the log's text.
//!
//! Needs root and the local test registry (`scripts/build-test-images.sh`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::Api;
use serde_json::json;

use super::podstartup::{condition_true, namespace_pods, on_real_node, percentile};

const IMAGE: &str = "127.0.0.1:5000/busybox:1";
const NAMESPACE: &str = "bench";

/// Options of `ferry bench exec`.
#[derive(clap::Args)]
pub struct Args {
    /// Print one JSON object with every figure as the last line.
    #[arg(long)]
    json: bool,
    /// Exec round trips measured (each way).
    #[arg(long, default_value_t = 40)]
    execs: usize,
    /// Megabytes the log writer writes.
    #[arg(long, default_value_t = 100)]
    log_mb: usize,
}

/// Runs the benchmark.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let json = args.json;
    on_real_node(
        "ferry bench exec",
        json,
        |kubeconfig, agent_dir| async move { measure(&args, &kubeconfig, &agent_dir).await },
    )
    .await
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Creates `pod` and waits until `done` says so of it (at most 120 s).
async fn create_and_wait(
    pods: &Api<Pod>,
    pod: serde_json::Value,
    done: fn(&Pod) -> bool,
) -> anyhow::Result<Pod> {
    let pod: Pod = serde_json::from_value(pod)?;
    let name = pod.metadata.name.clone().unwrap_or_default();
    pods.create(&PostParams::default(), &pod).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let pod = pods.get(&name).await?;
        if done(&pod) {
            return Ok(pod);
        }
        if Instant::now() > deadline {
            bail!(
                "pod {name} did not get there within 120 s: {:?}",
                pod.status
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn container_id(pod: &Pod) -> anyhow::Result<String> {
    let id = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.container_id.clone())
        .context("the pod has no container ID")?;
    Ok(id
        .split_once("://")
        .map_or(id.clone(), |(_, id)| id.to_string()))
}

/// Times `runs` runs of a command that must succeed; their times in ms.
fn timed(runs: usize, mut command: impl FnMut(usize) -> Command) -> anyhow::Result<Vec<f64>> {
    let mut times = Vec::with_capacity(runs);
    for n in 0..runs {
        let mut cmd = command(n);
        let started = Instant::now();
        let out = cmd.stdin(Stdio::null()).output()?;
        times.push(ms(started.elapsed()));
        if !out.status.success() {
            bail!(
                "{cmd:?} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(times)
}

async fn measure(
    args: &Args,
    kubeconfig: &Path,
    agent_dir: &Path,
) -> anyhow::Result<serde_json::Value> {
    let (_client, pods) = namespace_pods(kubeconfig, NAMESPACE).await?;
    let kubectl = |extra: &[&str]| {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--namespace", NAMESPACE])
            .args(extra);
        cmd
    };

    // Exec: kubectl through the whole path, then ctr on the same container.
    let target = create_and_wait(
        &pods,
        json!({"metadata": {"name": "target"}, "spec": {"terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "3600"]}]}}),
        |pod| condition_true(pod, "Ready"),
    )
    .await?;
    let id = container_id(&target)?;
    // One warm-up each (connections, caches).
    timed(1, |_| kubectl(&["exec", "target", "--", "true"]))?;
    let mut through_kubectl = timed(args.execs, |_| kubectl(&["exec", "target", "--", "true"]))?;
    let socket = agent_dir.join("containerd/containerd.sock");
    let ctr = |n: usize| {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(&socket)
            .args(["--namespace", "k8s.io", "task", "exec", "--exec-id"])
            .arg(format!("bench-{n}"))
            .args([id.as_str(), "true"]);
        cmd
    };
    timed(1, |_| ctr(usize::MAX))?;
    let mut through_ctr = timed(args.execs, ctr)?;
    let kubectl_p50 = percentile(&mut through_kubectl, 0.5);
    let kubectl_p99 = percentile(&mut through_kubectl, 0.99);
    let ctr_p50 = percentile(&mut through_ctr, 0.5);
    let ctr_p99 = percentile(&mut through_ctr, 0.99);

    // Logs: a writer that ends, read whole by `kubectl logs -f`, and the file by `cat`.
    let lines = args.log_mb * 10_000;
    let line = "x".repeat(99);
    let script = format!("yes {line} | head -n {lines}");
    let writer = create_and_wait(
        &pods,
        json!({"metadata": {"name": "writer"}, "spec": {"restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": IMAGE, "command": ["sh", "-c", script]}]}}),
        |pod| {
            pod.status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .is_some_and(|p| p == "Succeeded" || p == "Failed")
        },
    )
    .await?;
    let text_bytes = (lines * 100) as f64;
    let started = Instant::now();
    let out = kubectl(&["logs", "-f", "writer"])
        .stdout(Stdio::piped())
        .output()?;
    let kubectl_secs = started.elapsed().as_secs_f64();
    if out.stdout.len() as f64 != text_bytes {
        bail!(
            "kubectl logs -f read {} bytes, the pod wrote {text_bytes}",
            out.stdout.len()
        );
    }
    let uid = writer.metadata.uid.clone().unwrap_or_default();
    let log = agent_dir
        .join("pod-logs")
        .join(format!("{NAMESPACE}_writer_{uid}"))
        .join("c/0.log");
    let started = Instant::now();
    let out = Command::new("cat")
        .arg(&log)
        .stdout(Stdio::piped())
        .output()?;
    let cat_secs = started.elapsed().as_secs_f64();
    if !out.status.success() || out.stdout.is_empty() {
        bail!("reading {} failed", log.display());
    }
    let file_mb = out.stdout.len() as f64 / 1e6;
    let kubectl_mbs = text_bytes / 1e6 / kubectl_secs;
    let cat_mbs = text_bytes / 1e6 / cat_secs;

    println!(
        "exec: `kubectl exec target -- true`, {} round trips one after another",
        args.execs
    );
    println!("  kubectl (API server → kubelet → containerd)  p50 {kubectl_p50:6.1} ms  p99 {kubectl_p99:6.1} ms");
    println!(
        "  reference `ctr task exec` on containerd      p50 {ctr_p50:6.1} ms  p99 {ctr_p99:6.1} ms"
    );
    println!(
        "  ratio (kubectl p50 / ctr p50): {:.2}",
        kubectl_p50 / ctr_p50
    );
    println!(
        "logs: {:.0} MB of 100-byte lines ({file_mb:.0} MB as a CRI file), read whole",
        text_bytes / 1e6
    );
    println!("  `kubectl logs -f writer`          {kubectl_mbs:7.1} MB/s  ({kubectl_secs:.2} s)");
    println!("  reference `cat` of the CRI file   {cat_mbs:7.1} MB/s  ({cat_secs:.2} s)");
    println!("  ratio (kubectl / cat): {:.2}", kubectl_mbs / cat_mbs);
    Ok(json!({
        "execs": args.execs,
        "kubectl_exec_p50_ms": kubectl_p50, "kubectl_exec_p99_ms": kubectl_p99,
        "ctr_exec_p50_ms": ctr_p50, "ctr_exec_p99_ms": ctr_p99,
        "exec_ratio": kubectl_p50 / ctr_p50,
        "log_mb": text_bytes / 1e6,
        "kubectl_logs_mb_per_s": kubectl_mbs,
        "cat_mb_per_s": cat_mbs,
        "logs_ratio": kubectl_mbs / cat_mbs,
    }))
}
