//! NodeResourcesBalancedAllocation: prefers nodes where, with the pod, the used fractions of the
//! resources (cpu and memory by default) are close to each other: score = (1 - std) * 100.
//! Best-effort pods (no requests) are not scored, as upstream.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;

use crate::cache::{NodeInfo, Snapshot};
use crate::config::ConfigError;
use crate::framework::{CycleState, Plugin, PreScore, Score, Status, MAX_NODE_SCORE};
use crate::plugins::node_resources_fit::{
    default_resources, resolve, skip_unrequested, ResourceSpec,
};
use crate::plugins::parse_args;
use crate::resources::{pod_requests, ResourceName, Resources};

/// The plugin's name.
pub const NAME: &str = "NodeResourcesBalancedAllocation";
const STATE_KEY: &str = "PreScoreBalancedAllocation";

/// `NodeResourcesBalancedAllocationArgs`.
#[derive(Clone, Debug, Deserialize)]
pub struct Args {
    /// The resources balanced (default cpu and memory).
    #[serde(default = "default_resources")]
    pub resources: Vec<ResourceSpec>,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            resources: default_resources(),
        }
    }
}

/// The NodeResourcesBalancedAllocation plugin.
pub struct BalancedAllocation {
    /// The resources, resolved (weights do not matter here).
    resources: Vec<(ResourceName, i64)>,
}

impl BalancedAllocation {
    /// Builds the plugin from its args.
    pub fn new(args: Option<&serde_json::Value>) -> Result<BalancedAllocation, ConfigError> {
        let args: Args = parse_args(NAME, args)?;
        Ok(BalancedAllocation {
            resources: resolve(&args.resources),
        })
    }

    /// The score of `node` for a pod requesting `requests`.
    pub fn score_node(&self, requests: &Resources, node: &NodeInfo) -> i64 {
        // Two passes over the fractions instead of collecting them: no allocation per node.
        let fractions = || {
            self.resources.iter().filter_map(|(name, _)| {
                let capacity = node.allocatable.amount(name);
                if capacity == 0 || skip_unrequested(name, requests.amount(name)) {
                    return None;
                }
                let requested = node.requested.amount(name) + requests.amount(name);
                Some((requested as f64 / capacity as f64).min(1.0))
            })
        };
        let (n, sum) = fractions().fold((0usize, 0.0f64), |(n, sum), f| (n + 1, sum + f));
        let std = match n {
            0 | 1 => 0.0,
            2 => {
                let mut two = fractions();
                let (a, b) = (two.next().unwrap_or(0.0), two.next().unwrap_or(0.0));
                ((a - b) / 2.0).abs()
            }
            n => {
                let mean = sum / n as f64;
                (fractions().map(|f| (f - mean) * (f - mean)).sum::<f64>() / n as f64).sqrt()
            }
        };
        ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
    }
}

impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_pre_score(&self) -> Option<&dyn PreScore> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn Score> {
        Some(self)
    }
}

impl PreScore for BalancedAllocation {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        _nodes: &[Arc<NodeInfo>],
        _: &Snapshot,
    ) -> Status {
        let requests = pod_requests(pod, false);
        if self
            .resources
            .iter()
            .all(|(name, _)| requests.amount(name) == 0)
        {
            return Status::skip();
        }
        state.write(STATE_KEY, requests);
        Status::success()
    }
}

impl Score for BalancedAllocation {
    fn score(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> (i64, Status) {
        let computed;
        let requests = match state.read::<Resources>(STATE_KEY) {
            Some(r) => r,
            None => {
                computed = pod_requests(pod, false);
                &computed
            }
        };
        (self.score_node(requests, node), Status::success())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{make_node, make_pod};
    use k8s_openapi::api::core::v1::Node;

    #[test]
    fn balanced_nodes_score_higher() {
        let plugin = BalancedAllocation::new(None).expect("plugin");
        let node = |pods: Vec<Pod>| {
            NodeInfo::with_pods(
                make_node("n")
                    .capacity(&[("cpu", "4"), ("memory", "4Gi")])
                    .node(),
                pods,
            )
        };
        let pod = make_pod("p").req("cpu", "1").req("memory", "1Gi").pod();
        let cases = [
            // 25% and 25%: perfectly balanced.
            (vec![], 100),
            // cpu 75%, memory 25%: std 0.25.
            (vec![make_pod("e").req("cpu", "2").node("n").pod()], 75),
            // cpu 100% (capped), memory 25%: std 0.375 -> 62.
            (vec![make_pod("e").req("cpu", "8").node("n").pod()], 62),
        ];
        for (i, (pods, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                plugin.score(&CycleState::new(), &pod, &node(pods)).0,
                want,
                "case {i}"
            );
        }
        let mut state = CycleState::new();
        assert!(
            plugin
                .pre_score(&mut state, &make_pod("b").pod(), &[], &Snapshot::default())
                .is_skip(),
            "best effort is skipped"
        );
    }

    /// Upstream's `TestNodeResourcesBalancedAllocation` cases (balanced_allocation_test.go).
    #[test]
    fn upstream_cases() {
        let cpu_and_memory: &[&[(&str, &str)]] = &[
            &[("cpu", "1000m"), ("memory", "2000")],
            &[("cpu", "2000m"), ("memory", "3000")],
        ];
        let cpu_only: &[&[(&str, &str)]] = &[
            &[("cpu", "1000m"), ("memory", "0")],
            &[("cpu", "2000m"), ("memory", "0")],
        ];
        let cpu_memory_gpu: &[&[(&str, &str)]] = &[
            &[("cpu", "1000m"), ("memory", "2000")],
            &[
                ("cpu", "2000m"),
                ("memory", "3000"),
                ("nvidia.com/gpu", "3"),
            ],
        ];
        let on = |name: &str, node: &str, containers: &[&[(&str, &str)]]| {
            make_pod(name)
                .containers_requesting(containers)
                .node(node)
                .pod()
        };
        let incoming =
            |containers: &[&[(&str, &str)]]| make_pod("p").containers_requesting(containers).pod();
        let node = |name: &str, milli_cpu: i64, memory: i64, gpu: bool| {
            let cpu = format!("{milli_cpu}m");
            let memory = memory.to_string();
            let mut capacity = vec![("cpu", cpu.as_str()), ("memory", memory.as_str())];
            if gpu {
                capacity.push(("nvidia.com/gpu", "8"));
            }
            make_node(name).capacity(&capacity).node()
        };
        let existing = || {
            vec![
                on("e1", "node1", cpu_only),
                on("e2", "node2", cpu_and_memory),
            ]
        };
        let with_gpu = serde_json::json!({"resources": [
            {"name": "cpu", "weight": 1}, {"name": "memory", "weight": 1},
            {"name": "nvidia.com/gpu", "weight": 1}]});
        type Case<'a> = (
            &'a str,
            Pod,
            Vec<Node>,
            Vec<Pod>,
            Option<serde_json::Value>,
            [i64; 2],
        );
        let cases: Vec<Case> = vec![
            (
                "nothing scheduled, resources requested, differently sized nodes",
                incoming(cpu_and_memory),
                vec![
                    node("node1", 4000, 10000, false),
                    node("node2", 6000, 10000, false),
                ],
                vec![],
                None,
                [87, 100],
            ),
            (
                "resources requested, pods scheduled with resources",
                incoming(cpu_and_memory),
                vec![
                    node("node1", 10000, 20000, false),
                    node("node2", 10000, 20000, false),
                ],
                existing(),
                None,
                [82, 95],
            ),
            (
                "resources requested, pods scheduled with resources, differently sized nodes",
                incoming(cpu_and_memory),
                vec![
                    node("node1", 10000, 20000, false),
                    node("node2", 10000, 50000, false),
                ],
                existing(),
                None,
                [82, 80],
            ),
            (
                "requested resources at node capacity",
                incoming(cpu_only),
                vec![
                    node("node1", 6000, 10000, false),
                    node("node2", 6000, 10000, false),
                ],
                existing(),
                None,
                [50, 75],
            ),
            (
                "include scalar resource on a node for balanced resource allocation",
                incoming(&[&[("memory", "0"), ("nvidia.com/gpu", "1")]]),
                vec![
                    node("node1", 3500, 40000, true),
                    node("node2", 3500, 40000, true),
                ],
                vec![
                    on("e1", "node2", cpu_and_memory),
                    on("e2", "node1", cpu_memory_gpu),
                ],
                Some(with_gpu.clone()),
                [70, 65],
            ),
            (
                "node without the scalar resource should skip the scalar resource",
                incoming(cpu_and_memory),
                vec![
                    node("node1", 3500, 40000, true),
                    node("node2", 3500, 40000, false),
                ],
                vec![],
                Some(with_gpu),
                [63, 63],
            ),
        ];
        for (name, pod, nodes, pods, args, want) in cases {
            let plugin = BalancedAllocation::new(args.as_ref()).expect("plugin");
            let snapshot = Snapshot::from_objects(nodes, pods);
            let mut state = CycleState::new();
            assert!(plugin
                .pre_score(&mut state, &pod, &snapshot.nodes, &snapshot)
                .is_success());
            let got: Vec<i64> = ["node1", "node2"]
                .iter()
                .map(|n| plugin.score(&state, &pod, snapshot.get(n).expect("node")).0)
                .collect();
            assert_eq!(got, want, "{name}");
        }
        // A best-effort pod (upstream's pod without containers) is skipped in PreScore.
        let mut state = CycleState::new();
        assert!(BalancedAllocation::new(None)
            .expect("plugin")
            .pre_score(&mut state, &incoming(&[]), &[], &Snapshot::default())
            .is_skip());
    }
}
