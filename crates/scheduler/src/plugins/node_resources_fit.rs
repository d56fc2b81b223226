//! NodeResourcesFit: a pod fits where its requests (init-container max rule, overhead) fit in
//! allocatable minus what the node's pods request, and the pod count stays under `pods`.
//! Scoring follows the configured strategy: LeastAllocated (default), MostAllocated or
//! RequestedToCapacityRatio, over cpu and memory by default, with 100m / 200Mi assumed for
//! containers without requests.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;

use crate::cache::{NodeInfo, Snapshot};
use crate::config::ConfigError;
use crate::framework::{
    ClusterEvent, CycleState, Filter, Plugin, PreFilter, PreFilterResult, PreScore, Score, Status,
    MAX_NODE_SCORE,
};
use crate::plugins::parse_args;
use crate::resources::{pod_requests, ResourceName, Resources, CPU, EPHEMERAL_STORAGE, MEMORY};

/// The plugin's name.
pub const NAME: &str = "NodeResourcesFit";
const STATE_KEY: &str = "PreFilterNodeResourcesFit";

/// A resource and its weight in scoring.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ResourceSpec {
    /// Resource name.
    pub name: String,
    /// Weight (default 1).
    #[serde(default = "one")]
    pub weight: i64,
}

fn one() -> i64 {
    1
}

/// One point of the RequestedToCapacityRatio shape: utilization (0..100) to score (0..10).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct UtilizationShapePoint {
    /// Utilization percent.
    pub utilization: i64,
    /// Score, 0..10.
    pub score: i64,
}

/// `RequestedToCapacityRatioParam`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RequestedToCapacityRatio {
    /// The shape, sorted by utilization.
    #[serde(default)]
    pub shape: Vec<UtilizationShapePoint>,
}

/// `ScoringStrategy`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScoringStrategy {
    /// `LeastAllocated`, `MostAllocated` or `RequestedToCapacityRatio`.
    #[serde(rename = "type", default = "least_allocated")]
    pub strategy: String,
    /// Resources and weights (default cpu 1, memory 1).
    #[serde(default = "default_resources")]
    pub resources: Vec<ResourceSpec>,
    /// The shape for RequestedToCapacityRatio.
    #[serde(default)]
    pub requested_to_capacity_ratio: Option<RequestedToCapacityRatio>,
}

fn least_allocated() -> String {
    "LeastAllocated".into()
}

/// cpu and memory, weight 1 each.
pub fn default_resources() -> Vec<ResourceSpec> {
    vec![
        ResourceSpec {
            name: CPU.into(),
            weight: 1,
        },
        ResourceSpec {
            name: MEMORY.into(),
            weight: 1,
        },
    ]
}

impl Default for ScoringStrategy {
    fn default() -> Self {
        ScoringStrategy {
            strategy: least_allocated(),
            resources: default_resources(),
            requested_to_capacity_ratio: None,
        }
    }
}

/// `NodeResourcesFitArgs`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Args {
    /// Extended resources not checked.
    #[serde(default)]
    pub ignored_resources: Vec<String>,
    /// Extended resource groups (prefix before `/`) not checked.
    #[serde(default)]
    pub ignored_resource_groups: Vec<String>,
    /// How nodes are scored.
    #[serde(default)]
    pub scoring_strategy: Option<ScoringStrategy>,
}

/// How NodeResourcesFit scores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Prefer emptier nodes (spreading).
    LeastAllocated,
    /// Prefer fuller nodes (bin packing).
    MostAllocated,
    /// Score by a piecewise-linear function of utilization (points scaled to 0..100).
    RequestedToCapacityRatio(Vec<(i64, i64)>),
}

/// The NodeResourcesFit plugin.
pub struct NodeResourcesFit {
    ignored: HashSet<String>,
    ignored_groups: HashSet<String>,
    strategy: Strategy,
    /// The scored resources, resolved, with their weights.
    resources: Vec<(ResourceName, i64)>,
}

/// Resolves the scored resources of a plugin's args.
pub(crate) fn resolve(resources: &[ResourceSpec]) -> Vec<(ResourceName, i64)> {
    resources
        .iter()
        .map(|r| (ResourceName::new(&r.name), r.weight))
        .collect()
}

impl NodeResourcesFit {
    /// Builds the plugin from its args.
    pub fn new(args: Option<&serde_json::Value>) -> Result<NodeResourcesFit, ConfigError> {
        let args: Args = parse_args(NAME, args)?;
        let scoring = args.scoring_strategy.unwrap_or_default();
        let strategy = match scoring.strategy.as_str() {
            "LeastAllocated" => Strategy::LeastAllocated,
            "MostAllocated" => Strategy::MostAllocated,
            "RequestedToCapacityRatio" => {
                let shape = scoring
                    .requested_to_capacity_ratio
                    .unwrap_or_default()
                    .shape;
                if shape.is_empty() {
                    return Err(ConfigError::Invalid(
                        "NodeResourcesFit: requestedToCapacityRatio.shape is empty".into(),
                    ));
                }
                Strategy::RequestedToCapacityRatio(
                    shape
                        .iter()
                        .map(|p| (p.utilization, p.score * MAX_NODE_SCORE / 10))
                        .collect(),
                )
            }
            other => {
                return Err(ConfigError::Invalid(format!(
                    "NodeResourcesFit: unknown scoring strategy {other:?}"
                )))
            }
        };
        Ok(NodeResourcesFit {
            ignored: args.ignored_resources.into_iter().collect(),
            ignored_groups: args.ignored_resource_groups.into_iter().collect(),
            strategy,
            resources: resolve(&scoring.resources),
        })
    }

    fn is_ignored(&self, name: &str) -> bool {
        self.ignored.contains(name)
            || name
                .split_once('/')
                .is_some_and(|(group, _)| self.ignored_groups.contains(group))
    }
}

/// The reasons `requests` does not fit on `node` (empty: it fits), as upstream's `fitsRequest`.
pub fn insufficient_resources(
    requests: &Resources,
    node: &NodeInfo,
    ignored: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut reasons = Vec::new();
    if node.pods.len() as i64 + 1 > node.allocatable.allowed_pod_number {
        reasons.push("Too many pods".to_string());
    }
    let free = |name: &str| node.allocatable.get(name) - node.requested.get(name);
    for name in [CPU, MEMORY, EPHEMERAL_STORAGE] {
        let wanted = requests.get(name);
        if wanted > 0 && wanted > free(name) {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    for (name, wanted) in &requests.scalar {
        if *wanted > 0 && !ignored(name) && *wanted > free(name) {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    reasons
}

impl Plugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events(&self) -> Vec<ClusterEvent> {
        vec![
            ClusterEvent::NodeAdd,
            ClusterEvent::NodeAllocatableChange,
            ClusterEvent::AssignedPodDelete,
            ClusterEvent::AssignedPodUpdate,
        ]
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilter> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn Filter> {
        Some(self)
    }
    fn as_pre_score(&self) -> Option<&dyn PreScore> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn Score> {
        Some(self)
    }
}

const SCORE_KEY: &str = "PreScoreNodeResourcesFit";

impl PreScore for NodeResourcesFit {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        _nodes: &[std::sync::Arc<NodeInfo>],
        _: &Snapshot,
    ) -> Status {
        state.write(
            SCORE_KEY,
            (pod_requests(pod, false), pod_requests(pod, true)),
        );
        Status::success()
    }
}

impl PreFilter for NodeResourcesFit {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        _: &Snapshot,
    ) -> (Option<PreFilterResult>, Status) {
        state.write(STATE_KEY, pod_requests(pod, false));
        (None, Status::success())
    }
}

impl Filter for NodeResourcesFit {
    fn filter(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let computed;
        let requests = match state.read::<Resources>(STATE_KEY) {
            Some(r) => r,
            None => {
                computed = pod_requests(pod, false);
                &computed
            }
        };
        let reasons = insufficient_resources(requests, node, |n| self.is_ignored(n));
        if reasons.is_empty() {
            Status::success()
        } else {
            Status {
                code: crate::framework::Code::Unschedulable,
                reasons,
                plugin: None,
            }
        }
    }
}

/// Interpolates the shape (utilization -> score) at `utilization`.
fn broken_linear(shape: &[(i64, i64)], utilization: i64) -> i64 {
    for (i, (u, s)) in shape.iter().enumerate() {
        if utilization <= *u {
            if i == 0 {
                return *s;
            }
            let (u0, s0) = shape[i - 1];
            return s0 + (s - s0) * (utilization - u0) / (u - u0);
        }
    }
    shape.last().map(|(_, s)| *s).unwrap_or(0)
}

/// Whether scoring skips `resource` for a pod requesting `pod_request` of it: an extended
/// resource (anything but cpu, memory and ephemeral-storage) the pod does not request, as
/// upstream's `calculateResourceAllocatableRequest`, so nodes are not ranked by resources the
/// pod does not use.
pub(crate) fn skip_unrequested(resource: &ResourceName, pod_request: i64) -> bool {
    pod_request == 0 && matches!(resource, ResourceName::Pods | ResourceName::Scalar(_))
}

impl NodeResourcesFit {
    /// The node's score for a pod requesting `pod_non_zero` / `pod_requests`.
    pub fn score_node(
        &self,
        pod_requests: &Resources,
        pod_non_zero: &Resources,
        node: &NodeInfo,
    ) -> i64 {
        let mut total = 0;
        let mut weights = 0;
        for (name, weight) in &self.resources {
            let capacity = node.allocatable.amount(name);
            if capacity == 0 || skip_unrequested(name, pod_requests.amount(name)) {
                continue;
            }
            let requested = if matches!(name, ResourceName::Cpu | ResourceName::Memory) {
                node.non_zero_requested.amount(name) + pod_non_zero.amount(name)
            } else {
                node.requested.amount(name) + pod_requests.amount(name)
            };
            let score = match &self.strategy {
                Strategy::LeastAllocated => {
                    if requested > capacity {
                        0
                    } else {
                        (capacity - requested) * MAX_NODE_SCORE / capacity
                    }
                }
                Strategy::MostAllocated => requested.min(capacity) * MAX_NODE_SCORE / capacity,
                Strategy::RequestedToCapacityRatio(shape) => {
                    broken_linear(shape, requested.min(capacity) * 100 / capacity)
                }
            };
            total += score * weight;
            weights += weight;
        }
        if weights == 0 {
            return 0;
        }
        match self.strategy {
            Strategy::RequestedToCapacityRatio(_) => (total as f64 / weights as f64).round() as i64,
            _ => total / weights,
        }
    }
}

impl Score for NodeResourcesFit {
    fn score(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> (i64, Status) {
        let score = match state.read::<(Resources, Resources)>(SCORE_KEY) {
            Some((requests, non_zero)) => self.score_node(requests, non_zero, node),
            None => self.score_node(&pod_requests(pod, false), &pod_requests(pod, true), node),
        };
        (score, Status::success())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{make_node, make_pod};
    use k8s_openapi::api::core::v1::Node;

    fn node(pods: Vec<Pod>) -> NodeInfo {
        NodeInfo::with_pods(
            make_node("n")
                .capacity(&[
                    ("cpu", "4"),
                    ("memory", "8Gi"),
                    ("pods", "3"),
                    ("example.com/gpu", "1"),
                ])
                .node(),
            pods,
        )
    }

    #[test]
    fn filter() {
        let plugin = NodeResourcesFit::new(None).expect("plugin");
        let existing = || {
            make_pod("e")
                .req("cpu", "3")
                .req("memory", "4Gi")
                .node("n")
                .pod()
        };
        let cases: Vec<(Pod, Vec<Pod>, Vec<&str>)> = vec![
            (
                make_pod("p").req("cpu", "1").pod(),
                vec![existing()],
                vec![],
            ),
            (
                make_pod("p").req("cpu", "1500m").pod(),
                vec![existing()],
                vec!["Insufficient cpu"],
            ),
            (
                make_pod("p").req("cpu", "2").req("memory", "5Gi").pod(),
                vec![existing()],
                vec!["Insufficient cpu", "Insufficient memory"],
            ),
            (
                make_pod("p").req("example.com/gpu", "2").pod(),
                vec![],
                vec!["Insufficient example.com/gpu"],
            ),
            (
                make_pod("p").req("example.com/fpga", "1").pod(),
                vec![],
                vec!["Insufficient example.com/fpga"],
            ),
            (
                make_pod("p").pod(),
                vec![existing(), existing(), existing()],
                vec!["Too many pods"],
            ),
            // The init-container max rule: 1 + max(init 2) = 2 does not fit in 1 free.
            (
                make_pod("p").req("cpu", "500m").init_req("cpu", "2").pod(),
                vec![existing()],
                vec!["Insufficient cpu"],
            ),
            // Overhead counts.
            (
                make_pod("p").req("cpu", "1").overhead("cpu", "1m").pod(),
                vec![existing()],
                vec!["Insufficient cpu"],
            ),
            // Best-effort pods fit anywhere with room for one more pod.
            (make_pod("p").pod(), vec![existing()], vec![]),
        ];
        for (i, (pod, pods, want)) in cases.into_iter().enumerate() {
            let mut state = CycleState::new();
            plugin.pre_filter(&mut state, &pod, &Snapshot::default());
            let status = plugin.filter(&state, &pod, &node(pods));
            assert_eq!(status.reasons, want, "case {i}");
            assert_eq!(status.is_success(), want.is_empty(), "case {i}");
        }
    }

    #[test]
    fn ignored_resources_are_not_checked() {
        let args = serde_json::json!({"ignoredResources": ["example.com/fpga"], "ignoredResourceGroups": ["ignored.io"]});
        let plugin = NodeResourcesFit::new(Some(&args)).expect("plugin");
        for pod in [
            make_pod("p").req("example.com/fpga", "1").pod(),
            make_pod("p").req("ignored.io/thing", "1").pod(),
        ] {
            assert!(plugin
                .filter(&CycleState::new(), &pod, &node(vec![]))
                .is_success());
        }
    }

    #[test]
    fn scoring_strategies() {
        let n = NodeInfo::with_pods(
            make_node("n")
                .capacity(&[("cpu", "4"), ("memory", "4Gi")])
                .node(),
            [make_pod("e")
                .req("cpu", "1")
                .req("memory", "1Gi")
                .node("n")
                .pod()],
        );
        let pod = make_pod("p").req("cpu", "1").req("memory", "1Gi").pod();
        let score = |args: serde_json::Value| {
            let plugin = NodeResourcesFit::new(Some(&args)).expect("plugin");
            plugin.score(&CycleState::new(), &pod, &n).0
        };
        // 2 of 4 cpu and 2 of 4 GiB in use with the pod: 50 either way.
        assert_eq!(score(serde_json::json!({})), 50);
        let n_empty = NodeInfo::with_pods(
            make_node("n")
                .capacity(&[("cpu", "4"), ("memory", "4Gi")])
                .node(),
            [],
        );
        let plugin = NodeResourcesFit::new(None).expect("plugin");
        // 1 of 4: least allocated 75.
        assert_eq!(plugin.score(&CycleState::new(), &pod, &n_empty).0, 75);
        let most = NodeResourcesFit::new(Some(
            &serde_json::json!({"scoringStrategy": {"type": "MostAllocated"}}),
        ))
        .expect("plugin");
        assert_eq!(most.score(&CycleState::new(), &pod, &n_empty).0, 25);
        // A shape favouring full nodes: 0% -> 0, 100% -> 10; 50% -> 50.
        let ratio = serde_json::json!({"scoringStrategy": {"type": "RequestedToCapacityRatio",
            "requestedToCapacityRatio": {"shape": [{"utilization": 0, "score": 0}, {"utilization": 100, "score": 10}]}}});
        assert_eq!(score(ratio), 50);
        // A best-effort pod is scored as 100m / 200Mi.
        let best_effort = make_pod("b").pod();
        let s = plugin.score(&CycleState::new(), &best_effort, &n_empty).0;
        // cpu: (4000-100)*100/4000 = 97; memory: (4096-200)*100/4096 = 95; average 96.
        assert_eq!(s, 96);
    }

    /// Upstream's `TestLeastAllocatedScoringStrategy` cases (least_allocated_test.go): raw
    /// scores per node. Quantities as upstream writes them ("4000" cpu is 4000 cores).
    #[test]
    fn upstream_least_allocated_cases() {
        type Requests<'a> = &'a [&'a [(&'a str, &'a str)]];
        let pod = |containers: Requests| make_pod("p").containers_requesting(containers).pod();
        let on = |node: &str, containers: Requests| {
            make_pod(&format!("e-{node}"))
                .containers_requesting(containers)
                .node(node)
                .pod()
        };
        let node =
            |name: &str, capacity: &[(&str, &str)]| make_node(name).capacity(capacity).node();
        let small = || [("cpu", "4000"), ("memory", "10000")];
        let big = || [("cpu", "10000"), ("memory", "20000")];
        let two_containers: Requests = &[
            &[("cpu", "1000"), ("memory", "2000")],
            &[("cpu", "2000"), ("memory", "3000")],
        ];
        let weighted = serde_json::json!({"scoringStrategy": {"resources": [
            {"name": "memory", "weight": 2}, {"name": "cpu", "weight": 1}]}});
        let extended = serde_json::json!({"scoringStrategy": {"resources": [
            {"name": "cpu", "weight": 1}, {"name": "memory", "weight": 1},
            {"name": "example.com/foo", "weight": 1}]}});
        let extended_weighted = serde_json::json!({"scoringStrategy": {"resources": [
            {"name": "example.com/foo", "weight": 2}, {"name": "cpu", "weight": 1},
            {"name": "memory", "weight": 1}]}});
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
                "nothing scheduled, nothing requested",
                pod(&[]),
                vec![node("node1", &small()), node("node2", &small())],
                vec![],
                None,
                [100, 100],
            ),
            (
                "nothing scheduled, resources requested, differently sized nodes",
                pod(two_containers),
                vec![
                    node("node1", &small()),
                    node("node2", &[("cpu", "6000"), ("memory", "10000")]),
                ],
                vec![],
                None,
                [37, 50],
            ),
            (
                "no resources requested, pods scheduled",
                pod(&[]),
                vec![node("node1", &small()), node("node2", &small())],
                vec![on("node1", &[]), on("node2", &[])],
                None,
                [100, 100],
            ),
            (
                "no resources requested, pods scheduled with resources",
                pod(&[]),
                vec![node("node1", &big()), node("node2", &big())],
                vec![
                    on("node1", &[&[("cpu", "3000"), ("memory", "0")]]),
                    on("node1", &[&[("cpu", "3000"), ("memory", "0")]]),
                    on("node2", &[&[("cpu", "3000"), ("memory", "0")]]),
                    on("node2", &[&[("cpu", "3000"), ("memory", "5000")]]),
                ],
                None,
                [70, 57],
            ),
            (
                "resources requested, pods scheduled with resources",
                pod(two_containers),
                vec![node("node1", &big()), node("node2", &big())],
                vec![
                    on("node1", &[&[("cpu", "3000"), ("memory", "0")]]),
                    on("node2", &[&[("cpu", "3000"), ("memory", "5000")]]),
                ],
                None,
                [57, 45],
            ),
            (
                "resources requested, pods scheduled with resources, differently sized nodes",
                pod(two_containers),
                vec![
                    node("node1", &big()),
                    node("node2", &[("cpu", "10000"), ("memory", "50000")]),
                ],
                vec![
                    on("node1", &[&[("cpu", "3000"), ("memory", "0")]]),
                    on("node2", &[&[("cpu", "3000"), ("memory", "5000")]]),
                ],
                None,
                [57, 60],
            ),
            (
                "requested resources exceed node capacity",
                pod(&[&[("cpu", "3000"), ("memory", "0")]]),
                vec![node("node1", &small()), node("node2", &small())],
                vec![
                    on("node1", &[&[("cpu", "3000"), ("memory", "0")]]),
                    on("node2", &[&[("cpu", "3000"), ("memory", "5000")]]),
                ],
                None,
                [50, 25],
            ),
            (
                "zero node resources, pods scheduled with resources",
                pod(&[]),
                vec![node("node1", &[]), node("node2", &[])],
                vec![
                    on("node1", &[&[("cpu", "3000"), ("memory", "0")]]),
                    on("node2", &[&[("cpu", "3000"), ("memory", "5000")]]),
                ],
                None,
                [0, 0],
            ),
            (
                "different weights on cpu and memory, differently sized nodes",
                pod(two_containers),
                vec![
                    node("node1", &small()),
                    node("node2", &[("cpu", "6000"), ("memory", "10000")]),
                ],
                vec![],
                Some(weighted),
                [41, 50],
            ),
            (
                "an extended resource the pod does not request is not scored",
                pod(two_containers),
                vec![
                    node("node1", &[("cpu", "6000"), ("memory", "10000")]),
                    node(
                        "node2",
                        &[
                            ("cpu", "6000"),
                            ("memory", "10000"),
                            ("example.com/foo", "4"),
                        ],
                    ),
                ],
                vec![],
                Some(extended.clone()),
                [50, 50],
            ),
            (
                "an extended resource the pod requests is scored",
                pod(&[&[
                    ("cpu", "3000"),
                    ("memory", "5000"),
                    ("example.com/foo", "2"),
                ]]),
                vec![
                    node(
                        "node1",
                        &[
                            ("cpu", "6000"),
                            ("memory", "10000"),
                            ("example.com/foo", "4"),
                        ],
                    ),
                    node(
                        "node2",
                        &[
                            ("cpu", "6000"),
                            ("memory", "10000"),
                            ("example.com/foo", "10"),
                        ],
                    ),
                ],
                vec![],
                Some(extended),
                [50, 60],
            ),
            (
                "a node without a resource",
                pod(&[&[("cpu", "3000"), ("memory", "4000")]]),
                vec![
                    node("node1", &[("cpu", "6000"), ("memory", "10000")]),
                    node(
                        "node2",
                        &[
                            ("cpu", "6000"),
                            ("memory", "10000"),
                            ("example.com/foo", "4"),
                        ],
                    ),
                ],
                vec![],
                Some(extended_weighted),
                [55, 55],
            ),
        ];
        for (name, pod, nodes, pods, args, want) in cases {
            let plugin = NodeResourcesFit::new(args.as_ref()).expect("plugin");
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
    }
}
