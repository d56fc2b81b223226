//! An in-process benchmark: N pending pods on M fake nodes through the whole scheduler (queue,
//! snapshot, every default plugin, assume, a fake binder), next to a trivial round-robin
//! placement measured in the same run as the reference. Two workloads, as `ferry bench
//! scheduler`: plain pods, and pods with a soft hostname topology spread constraint and a
//! preferred hostname pod anti-affinity (the cost of PodTopologySpread and InterPodAffinity).

use std::sync::Arc;
use std::time::Instant;

use crate::binder::FakeBinder;
use crate::config::{Config, ConfigError};
use crate::scheduler::Scheduler;
use crate::testing::{make_node, make_pod};

/// One run's figures.
#[derive(Clone, Debug)]
pub struct BenchResult {
    /// Pods scheduled.
    pub pods: usize,
    /// Nodes.
    pub nodes: usize,
    /// Pods bound per second by the scheduler.
    pub pods_per_second: f64,
    /// Pods placed per second by round-robin (checking only cpu), the reference.
    pub round_robin_pods_per_second: f64,
}

/// Why a benchmark run failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The default configuration did not build.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Some pods were not bound: the figure would not measure a full run.
    #[error("bound {bound} of {pods} pods")]
    Unbound {
        /// Pods bound.
        bound: usize,
        /// Pods created.
        pods: usize,
    },
}

/// What the benchmark's pods ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// 100m cpu, 128Mi, label `app=bench`.
    Plain,
    /// As plain, plus a topologySpreadConstraint (maxSkew 1, `kubernetes.io/hostname`,
    /// ScheduleAnyway, `app=bench`) and a preferred pod anti-affinity (weight 100,
    /// `kubernetes.io/hostname`, `app=bench`), as `ferry bench scheduler`'s constrained run.
    SpreadAntiAffinity,
}

/// Schedules `pods` pending plain pods (100m cpu, 128Mi) on `nodes` nodes (32 cpu, 128Gi, 110
/// pods, 3 zones) in-process and reports pods/s. Needs a Tokio runtime.
pub async fn schedule_pods(pods: usize, nodes: usize) -> Result<BenchResult, BenchError> {
    schedule_pods_with(pods, nodes, Workload::Plain).await
}

/// As [`schedule_pods`] with the pods of `workload`.
pub async fn schedule_pods_with(
    pods: usize,
    nodes: usize,
    workload: Workload,
) -> Result<BenchResult, BenchError> {
    let binder = FakeBinder::new();
    let scheduler = Scheduler::new(&Config::default(), binder.clone(), None)?;
    let node_objects: Vec<_> = (0..nodes)
        .map(|i| {
            make_node(&format!("node-{i:05}"))
                .capacity(&[("cpu", "32"), ("memory", "128Gi"), ("pods", "110")])
                .label("topology.kubernetes.io/zone", &format!("zone-{}", i % 3))
                .node()
        })
        .collect();
    for node in &node_objects {
        scheduler.on_node(node.clone());
    }
    let pod_objects: Vec<_> = (0..pods)
        .map(|i| {
            let pod = make_pod(&format!("pod-{i:06}"))
                .req("cpu", "100m")
                .req("memory", "128Mi")
                .label("app", "bench");
            match workload {
                Workload::Plain => pod,
                Workload::SpreadAntiAffinity => pod
                    .spread(
                        1,
                        "kubernetes.io/hostname",
                        "ScheduleAnyway",
                        &[("app", "bench")],
                    )
                    .preferred_pod_anti_affinity(
                        100,
                        "kubernetes.io/hostname",
                        &[("app", "bench")],
                    ),
            }
            .pod()
        })
        .collect();
    let start = Instant::now();
    for pod in &pod_objects {
        scheduler.on_pod(None, Arc::new(pod.clone()));
    }
    for _ in 0..pods {
        scheduler.schedule_one().await;
    }
    scheduler.wait_for_bindings().await;
    let elapsed = start.elapsed().as_secs_f64();
    let bound = binder
        .calls()
        .iter()
        .filter(|c| matches!(c, crate::binder::Call::Bind(..)))
        .count();
    if bound != pods {
        return Err(BenchError::Unbound { bound, pods });
    }

    // Reference: round-robin over nodes, checking free cpu only.
    let start = Instant::now();
    let mut free: Vec<i64> = vec![32_000; nodes];
    let mut placed = 0usize;
    let mut next = 0usize;
    for pod in &pod_objects {
        let request = crate::resources::pod_requests(pod, false).milli_cpu;
        for _ in 0..nodes {
            let i = next % nodes;
            next += 1;
            if free[i] >= request {
                free[i] -= request;
                placed += 1;
                break;
            }
        }
    }
    let reference = start.elapsed().as_secs_f64().max(1e-9);
    Ok(BenchResult {
        pods,
        nodes,
        pods_per_second: pods as f64 / elapsed.max(1e-9),
        round_robin_pods_per_second: placed as f64 / reference,
    })
}

#[cfg(test)]
mod tests {
    use super::Workload;

    #[tokio::test]
    async fn small_run_binds_everything() {
        let result = super::schedule_pods(200, 20).await.expect("bench");
        assert_eq!(result.pods, 200);
        assert!(result.pods_per_second > 0.0);
        let result = super::schedule_pods_with(200, 20, Workload::SpreadAntiAffinity)
            .await
            .expect("bench");
        assert_eq!(result.pods, 200);
    }

    /// Prints figures: `cargo test --release -p ferry-scheduler --lib bench::tests::figures -- --ignored --nocapture`
    /// (`FERRY_BENCH_SIZES=pods:nodes,...` overrides the sizes).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a benchmark, run in release"]
    async fn figures() {
        let sizes: Vec<(usize, usize)> = match std::env::var("FERRY_BENCH_SIZES") {
            Ok(list) => list
                .split(',')
                .filter_map(|s| {
                    let (p, n) = s.split_once(':')?;
                    Some((p.trim().parse().ok()?, n.trim().parse().ok()?))
                })
                .collect(),
            Err(_) => vec![(2000, 1000), (10_000, 5000)],
        };
        for workload in [Workload::Plain, Workload::SpreadAntiAffinity] {
            for &(pods, nodes) in &sizes {
                let r = super::schedule_pods_with(pods, nodes, workload)
                    .await
                    .expect("bench");
                println!(
                    "{workload:?}: {} pods on {} nodes: {:.0} pods/s (round-robin reference: {:.0} pods/s)",
                    r.pods, r.nodes, r.pods_per_second, r.round_robin_pods_per_second
                );
            }
        }
    }
}
