//! NodeResourcesBalancedAllocation: prefers nodes where, with the pod, the used fractions of the
//! resources (cpu and memory by default) are close to each other: score = (1 - std) * 100.
//! Best-effort pods (no requests) are not scored, as upstream.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;

use crate::cache::{NodeInfo, Snapshot};
use crate::config::ConfigError;
use crate::framework::{CycleState, Plugin, PreScore, Score, Status, MAX_NODE_SCORE};
use crate::plugins::node_resources_fit::{default_resources, ResourceSpec};
use crate::plugins::parse_args;
use crate::resources::{pod_requests, Resources};

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
    resources: Vec<ResourceSpec>,
}

impl BalancedAllocation {
    /// Builds the plugin from its args.
    pub fn new(args: Option<&serde_json::Value>) -> Result<BalancedAllocation, ConfigError> {
        let args: Args = parse_args(NAME, args)?;
        Ok(BalancedAllocation {
            resources: args.resources,
        })
    }

    /// The score of `node` for a pod requesting `requests`.
    pub fn score_node(&self, requests: &Resources, node: &NodeInfo) -> i64 {
        let mut fractions = Vec::new();
        for spec in &self.resources {
            let capacity = node.allocatable.get(&spec.name);
            if capacity == 0 {
                continue;
            }
            let requested = node.requested.get(&spec.name) + requests.get(&spec.name);
            fractions.push((requested as f64 / capacity as f64).min(1.0));
        }
        let std = match fractions.len() {
            0 | 1 => 0.0,
            2 => ((fractions[0] - fractions[1]) / 2.0).abs(),
            n => {
                let mean = fractions.iter().sum::<f64>() / n as f64;
                (fractions
                    .iter()
                    .map(|f| (f - mean) * (f - mean))
                    .sum::<f64>()
                    / n as f64)
                    .sqrt()
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
        if self.resources.iter().all(|r| requests.get(&r.name) == 0) {
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
}
