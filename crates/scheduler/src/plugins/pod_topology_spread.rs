//! PodTopologySpread: `topologySpreadConstraints` keep matching pods spread across domains.
//! A `DoNotSchedule` constraint filters: placing the pod must not make
//! `count(domain) + self - min(count)` exceed `maxSkew` (`min` is 0 while fewer than
//! `minDomains` domains exist). `ScheduleAnyway` constraints score: fewer matching pods in the
//! node's domain is better.
//!
//! Pods are counted on nodes that pass the pod's nodeSelector/affinity (`nodeAffinityPolicy:
//! Honor`, the default) and, with `nodeTaintsPolicy: Honor`, tolerate the node's taints (default
//! Ignore); nodes must carry every constraint's topology key. `matchLabelKeys` adds the pod's
//! own values to the selector.
//!
//! System default constraints (hostname maxSkew 3, zone maxSkew 5, ScheduleAnyway) apply to a
//! pod without constraints of its own that belongs to a workload. Simplification: upstream
//! builds their selector from the Services/ReplicaSets/StatefulSets/ReplicationControllers
//! selecting the pod; ferry uses the pod's own labels when it has an owner of kind ReplicaSet,
//! StatefulSet or ReplicationController.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use serde::Deserialize;

use crate::cache::{NodeInfo, Snapshot};
use crate::config::ConfigError;
use crate::framework::{
    ClusterEvent, CycleState, Filter, NodeScore, Plugin, PreFilter, PreFilterResult, PreScore,
    Score, Status, MAX_NODE_SCORE,
};
use crate::plugins::node_affinity::pod_matches_node_selector_and_affinity;
use crate::plugins::{node_taints, parse_args, selector_matches, tolerated};

/// The plugin's name.
pub const NAME: &str = "PodTopologySpread";
/// The skew would be exceeded.
pub const ERR_REASON_CONSTRAINTS_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints";
/// The node lacks a topology key.
pub const ERR_REASON_NODE_LABEL_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";
const FILTER_KEY: &str = "PreFilterPodTopologySpread";
const SCORE_KEY: &str = "PreScorePodTopologySpread";

/// `PodTopologySpreadArgs`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Args {
    /// Constraints for pods without their own (with `defaultingType: List`).
    #[serde(default)]
    pub default_constraints: Vec<TopologySpreadConstraint>,
    /// `System` (default: upstream's built-in constraints) or `List`.
    #[serde(default)]
    pub defaulting_type: Option<String>,
}

/// The PodTopologySpread plugin.
pub struct PodTopologySpread {
    default_constraints: Vec<TopologySpreadConstraint>,
}

fn system_default_constraints() -> Vec<TopologySpreadConstraint> {
    let constraint = |key: &str, max_skew| TopologySpreadConstraint {
        topology_key: key.to_string(),
        max_skew,
        when_unsatisfiable: "ScheduleAnyway".into(),
        ..Default::default()
    };
    vec![
        constraint("kubernetes.io/hostname", 3),
        constraint("topology.kubernetes.io/zone", 5),
    ]
}

impl PodTopologySpread {
    /// Builds the plugin from its args.
    pub fn new(args: Option<&serde_json::Value>) -> Result<PodTopologySpread, ConfigError> {
        let args: Args = parse_args(NAME, args)?;
        let default_constraints = match args.defaulting_type.as_deref().unwrap_or("System") {
            "System" => {
                if !args.default_constraints.is_empty() {
                    return Err(ConfigError::Invalid(
                        "PodTopologySpread: defaultConstraints need defaultingType List".into(),
                    ));
                }
                system_default_constraints()
            }
            "List" => args.default_constraints,
            other => {
                return Err(ConfigError::Invalid(format!(
                    "PodTopologySpread: unknown defaultingType {other:?}"
                )))
            }
        };
        Ok(PodTopologySpread {
            default_constraints,
        })
    }
}

/// One constraint, ready to evaluate.
#[derive(Clone, Debug)]
struct Constraint {
    max_skew: i64,
    topology_key: String,
    selector: LabelSelector,
    min_domains: i64,
    honor_node_affinity: bool,
    honor_taints: bool,
}

fn labels(pod: &Pod) -> BTreeMap<String, String> {
    pod.metadata.labels.clone().unwrap_or_default()
}

fn has_workload_owner(pod: &Pod) -> bool {
    pod.metadata.owner_references.iter().flatten().any(|o| {
        matches!(
            o.kind.as_str(),
            "ReplicaSet" | "StatefulSet" | "ReplicationController"
        )
    })
}

impl PodTopologySpread {
    /// The pod's constraints with `when_unsatisfiable`, or the defaults if it has none.
    fn constraints(&self, pod: &Pod, when_unsatisfiable: &str) -> Vec<Constraint> {
        let own = pod
            .spec
            .as_ref()
            .and_then(|s| s.topology_spread_constraints.as_deref())
            .unwrap_or_default();
        if own.is_empty() && !has_workload_owner(pod) {
            return Vec::new();
        }
        let pod_labels = labels(pod);
        let convert = |c: &TopologySpreadConstraint, selector: LabelSelector| Constraint {
            max_skew: i64::from(c.max_skew),
            topology_key: c.topology_key.clone(),
            selector,
            min_domains: i64::from(c.min_domains.unwrap_or(1)),
            honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
        };
        if !own.is_empty() {
            return own
                .iter()
                .filter(|c| c.when_unsatisfiable == when_unsatisfiable)
                .map(|c| {
                    let mut selector = c.label_selector.clone().unwrap_or_default();
                    for key in c.match_label_keys.iter().flatten() {
                        if let Some(value) = pod_labels.get(key) {
                            selector
                                .match_expressions
                                .get_or_insert_with(Vec::new)
                                .push(LabelSelectorRequirement {
                                    key: key.clone(),
                                    operator: "In".into(),
                                    values: Some(vec![value.clone()]),
                                });
                        }
                    }
                    convert(c, selector)
                })
                .collect();
        }
        if pod_labels.is_empty() || !has_workload_owner(pod) {
            return Vec::new();
        }
        let selector = LabelSelector {
            match_labels: Some(pod_labels),
            match_expressions: None,
        };
        self.default_constraints
            .iter()
            .filter(|c| c.when_unsatisfiable == when_unsatisfiable)
            .map(|c| {
                convert(
                    c,
                    c.label_selector.clone().unwrap_or_else(|| selector.clone()),
                )
            })
            .collect()
    }
}

/// Whether pods on `node` count for `constraint` of `pod` (the inclusion policies).
fn node_counts(pod: &Pod, node: &Node, constraint: &Constraint) -> bool {
    if constraint.honor_node_affinity && !pod_matches_node_selector_and_affinity(pod, node) {
        return false;
    }
    if constraint.honor_taints {
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or_default();
        if node_taints(node).iter().any(|t| {
            (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerated(tolerations, t)
        }) {
            return false;
        }
    }
    true
}

/// Pods on `node` in the pod's namespace, not terminating, selected by `selector`.
fn matching_pods(node: &NodeInfo, namespace: &str, selector: &LabelSelector) -> i64 {
    let empty = BTreeMap::new();
    node.pods
        .iter()
        .filter(|p| {
            p.pod.metadata.namespace.as_deref().unwrap_or("") == namespace
                && p.pod.metadata.deletion_timestamp.is_none()
                && selector_matches(selector, p.pod.metadata.labels.as_ref().unwrap_or(&empty))
        })
        .count() as i64
}

/// The hostname label: its domains are single nodes.
const HOSTNAME: &str = "kubernetes.io/hostname";

/// Counts keyed by borrowed domain values, owned (for the cycle state).
fn owned(counts: HashMap<&str, i64>) -> HashMap<String, i64> {
    counts
        .into_iter()
        .map(|(value, count)| (value.to_string(), count))
        .collect()
}

struct FilterState {
    constraints: Vec<Constraint>,
    /// Per constraint: matching pods per domain value.
    counts: Vec<HashMap<String, i64>>,
    /// Per constraint: the global minimum (0 below minDomains).
    min_match: Vec<i64>,
}

impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events(&self) -> Vec<ClusterEvent> {
        vec![
            ClusterEvent::AssignedPodAdd,
            ClusterEvent::AssignedPodUpdate,
            ClusterEvent::AssignedPodDelete,
            ClusterEvent::NodeAdd,
            ClusterEvent::NodeLabelChange,
            ClusterEvent::NodeTaintChange,
            ClusterEvent::NodeDelete,
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

fn has_all_keys(node: &NodeInfo, constraints: &[Constraint]) -> bool {
    constraints
        .iter()
        .all(|c| node.label(&c.topology_key).is_some())
}

impl PreFilter for PodTopologySpread {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
    ) -> (Option<PreFilterResult>, Status) {
        let constraints = self.constraints(pod, "DoNotSchedule");
        if constraints.is_empty() {
            return (None, Status::skip());
        }
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("");
        let mut borrowed = vec![HashMap::<&str, i64>::new(); constraints.len()];
        for node in &snapshot.nodes {
            let Some(n) = node.node.as_ref() else {
                continue;
            };
            if !has_all_keys(node, &constraints) {
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                if !node_counts(pod, n, c) {
                    continue;
                }
                let Some(value) = node.label(&c.topology_key) else {
                    continue;
                };
                *borrowed[i].entry(value).or_default() +=
                    matching_pods(node, namespace, &c.selector);
            }
        }
        let counts: Vec<HashMap<String, i64>> = borrowed.into_iter().map(owned).collect();
        let min_match = constraints
            .iter()
            .zip(&counts)
            .map(|(c, domains)| {
                if (domains.len() as i64) < c.min_domains {
                    0
                } else {
                    domains.values().copied().min().unwrap_or(0)
                }
            })
            .collect();
        state.write(
            FILTER_KEY,
            FilterState {
                constraints,
                counts,
                min_match,
            },
        );
        (None, Status::success())
    }
}

impl Filter for PodTopologySpread {
    fn filter(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<FilterState>(FILTER_KEY) else {
            return Status::error("PodTopologySpread: no PreFilter state");
        };
        let pod_labels = labels(pod);
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(value) = node.label(&c.topology_key) else {
                return Status::unresolvable(ERR_REASON_NODE_LABEL_NOT_MATCH);
            };
            let self_match = i64::from(selector_matches(&c.selector, &pod_labels));
            let count = s.counts[i].get(value).copied().unwrap_or(0);
            if count + self_match - s.min_match[i] > c.max_skew {
                return Status::unschedulable(ERR_REASON_CONSTRAINTS_NOT_MATCH);
            }
        }
        Status::success()
    }
}

struct ScoreState {
    constraints: Vec<Constraint>,
    counts: Vec<HashMap<String, i64>>,
    weights: Vec<f64>,
}

impl PreScore for PodTopologySpread {
    fn pre_score<'a>(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        nodes: &'a [Arc<NodeInfo>],
        snapshot: &'a Snapshot,
    ) -> Status {
        let constraints = self.constraints(pod, "ScheduleAnyway");
        if constraints.is_empty() {
            return Status::skip();
        }
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("");
        // The domains among feasible nodes weigh each constraint: log(domains + 2).
        let feasible_domains: Vec<HashSet<&str>> = constraints
            .iter()
            .map(|c| {
                nodes
                    .iter()
                    .filter_map(|n| n.label(&c.topology_key))
                    .collect()
            })
            .collect();
        let weights = feasible_domains
            .iter()
            .map(|domains| ((domains.len() + 2) as f64).ln())
            .collect();
        let mut counts = Vec::with_capacity(constraints.len());
        for (c, domains) in constraints.iter().zip(&feasible_domains) {
            let mut domain_counts: HashMap<&str, i64> = HashMap::new();
            let mut count = |node: &'a NodeInfo| {
                let Some(n) = node.node.as_ref() else {
                    return;
                };
                let Some(value) = node.label(&c.topology_key) else {
                    return;
                };
                if !node_counts(pod, n, c) {
                    return;
                }
                *domain_counts.entry(value).or_default() +=
                    matching_pods(node, namespace, &c.selector);
            };
            if c.topology_key == HOSTNAME {
                // Hostname domains are single nodes: only feasible ones matter.
                for node in nodes {
                    count(node);
                }
            } else {
                // Score reads only feasible nodes' domains: count the nodes in those.
                for value in domains {
                    for &i in snapshot.nodes_in_domain(&c.topology_key, value) {
                        count(&snapshot.nodes[i]);
                    }
                }
            }
            counts.push(owned(domain_counts));
        }
        state.write(
            SCORE_KEY,
            ScoreState {
                constraints,
                counts,
                weights,
            },
        );
        Status::success()
    }
}

impl Score for PodTopologySpread {
    fn score(&self, state: &CycleState, _pod: &Pod, node: &NodeInfo) -> (i64, Status) {
        let Some(s) = state.read::<ScoreState>(SCORE_KEY) else {
            return (0, Status::success());
        };
        if !has_all_keys(node, &s.constraints) {
            // Marked for a 0 after normalizing.
            return (-1, Status::success());
        }
        let mut score = 0.0;
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(value) = node.label(&c.topology_key) else {
                continue;
            };
            let count = s.counts[i].get(value).copied().unwrap_or(0);
            score += count as f64 * s.weights[i] + (c.max_skew - 1) as f64;
        }
        (score.round() as i64, Status::success())
    }

    fn normalize_score(&self, _state: &CycleState, _pod: &Pod, scores: &mut [NodeScore]) -> Status {
        let valid = scores.iter().filter(|s| s.score >= 0).map(|s| s.score);
        let min = valid.clone().min().unwrap_or(0);
        let max = valid.max().unwrap_or(0);
        for s in scores.iter_mut() {
            s.score = if s.score < 0 {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - s.score) / max
            };
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{make_node, make_pod};

    fn nodes() -> Vec<Node> {
        vec![
            make_node("a1").label("zone", "a").node(),
            make_node("a2").label("zone", "a").node(),
            make_node("b1").label("zone", "b").node(),
            make_node("c1")
                .label("zone", "c")
                .label("pool", "other")
                .node(),
            make_node("nozone").node(),
        ]
    }

    fn web(name: &str, node: &str) -> Pod {
        make_pod(name).label("app", "web").node(node).pod()
    }

    fn filter(pod: &Pod, snapshot: &Snapshot) -> Vec<(String, Status)> {
        let plugin = PodTopologySpread::new(None).expect("plugin");
        let mut state = CycleState::new();
        let (_, status) = plugin.pre_filter(&mut state, pod, snapshot);
        snapshot
            .nodes
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    if status.is_skip() {
                        Status::success()
                    } else {
                        plugin.filter(&state, pod, n)
                    },
                )
            })
            .collect()
    }

    fn passing(results: &[(String, Status)]) -> Vec<&str> {
        results
            .iter()
            .filter(|(_, s)| s.is_success())
            .map(|(n, _)| n.as_str())
            .collect()
    }

    #[test]
    fn max_skew_across_zones() {
        // zone a: 2, zone b: 1, zone c: 0.
        let snapshot = Snapshot::from_objects(
            nodes(),
            vec![web("w1", "a1"), web("w2", "a2"), web("w3", "b1")],
        );
        let pod = make_pod("p")
            .label("app", "web")
            .spread(1, "zone", "DoNotSchedule", &[("app", "web")])
            .pod();
        let results = filter(&pod, &snapshot);
        // Only zone c (0 + 1 - 0 = 1) keeps the skew at 1; b would be 1 + 1 - 0 = 2.
        assert_eq!(passing(&results), ["c1"]);
        assert_eq!(
            results[0].1,
            Status::unschedulable(ERR_REASON_CONSTRAINTS_NOT_MATCH)
        );
        assert_eq!(
            results[4].1,
            Status::unresolvable(ERR_REASON_NODE_LABEL_NOT_MATCH)
        );
        // maxSkew 2 also allows zone b.
        let pod = make_pod("p")
            .label("app", "web")
            .spread(2, "zone", "DoNotSchedule", &[("app", "web")])
            .pod();
        assert_eq!(passing(&filter(&pod, &snapshot)), ["b1", "c1"]);
    }

    #[test]
    fn node_affinity_policy_and_min_domains() {
        let snapshot = Snapshot::from_objects(nodes(), vec![web("w1", "a1"), web("w3", "b1")]);
        // The pod may only go to nodes without the pool label, so zone c's node does not count:
        // the minimum is 1 (zones a and b), and every zone is allowed.
        let pod = make_pod("p")
            .label("app", "web")
            .node_affinity("pool", "DoesNotExist", &[])
            .spread(1, "zone", "DoNotSchedule", &[("app", "web")])
            .pod();
        assert_eq!(passing(&filter(&pod, &snapshot)), ["a1", "a2", "b1", "c1"]);
        // minDomains 4 with 3 domains: the minimum is 0, so a and b (1 + 1 - 0 = 2) fail.
        let pod = make_pod("p")
            .label("app", "web")
            .spread_constraint(TopologySpreadConstraint {
                max_skew: 1,
                topology_key: "zone".into(),
                when_unsatisfiable: "DoNotSchedule".into(),
                min_domains: Some(4),
                label_selector: Some(LabelSelector {
                    match_labels: Some(
                        [("app".to_string(), "web".to_string())]
                            .into_iter()
                            .collect(),
                    ),
                    match_expressions: None,
                }),
                ..Default::default()
            })
            .pod();
        assert_eq!(passing(&filter(&pod, &snapshot)), ["c1"]);
    }

    #[test]
    fn soft_constraints_score_emptier_domains_higher() {
        let snapshot = Snapshot::from_objects(
            nodes(),
            vec![web("w1", "a1"), web("w2", "a2"), web("w3", "b1")],
        );
        let pod = make_pod("p")
            .label("app", "web")
            .spread(1, "zone", "ScheduleAnyway", &[("app", "web")])
            .pod();
        let plugin = PodTopologySpread::new(None).expect("plugin");
        let mut state = CycleState::new();
        assert!(plugin
            .pre_score(&mut state, &pod, &snapshot.nodes, &snapshot)
            .is_success());
        let mut scores: Vec<NodeScore> = snapshot
            .nodes
            .iter()
            .map(|n| NodeScore {
                name: n.name.clone(),
                score: plugin.score(&state, &pod, n).0,
            })
            .collect();
        plugin.normalize_score(&state, &pod, &mut scores);
        let by_name: HashMap<&str, i64> =
            scores.iter().map(|s| (s.name.as_str(), s.score)).collect();
        assert!(
            by_name["c1"] > by_name["b1"] && by_name["b1"] > by_name["a1"],
            "{by_name:?}"
        );
        assert_eq!(by_name["c1"], 100);
        assert_eq!(by_name["nozone"], 0);
    }

    #[test]
    fn system_defaults_apply_to_workload_pods() {
        let plugin = PodTopologySpread::new(None).expect("plugin");
        let owned = make_pod("p")
            .label("app", "web")
            .owner("ReplicaSet", "web-1")
            .pod();
        let constraints = plugin.constraints(&owned, "ScheduleAnyway");
        assert_eq!(
            constraints
                .iter()
                .map(|c| (c.topology_key.as_str(), c.max_skew))
                .collect::<Vec<_>>(),
            [
                ("kubernetes.io/hostname", 3),
                ("topology.kubernetes.io/zone", 5)
            ]
        );
        assert!(plugin
            .constraints(&make_pod("p").label("app", "web").pod(), "ScheduleAnyway")
            .is_empty());
        assert!(plugin.constraints(&owned, "DoNotSchedule").is_empty());
    }

    #[test]
    fn soft_constraints_count_whole_feasible_domains() {
        // zone a: 2 (a1, a2), zone b: 1. Only a2 and c1 are feasible, but zone a's count
        // includes a1's pod, as a scan of every node would.
        let snapshot = Snapshot::from_objects(
            nodes(),
            vec![web("w1", "a1"), web("w2", "a2"), web("w3", "b1")],
        );
        let pod = make_pod("p")
            .label("app", "web")
            .spread(1, "zone", "ScheduleAnyway", &[("app", "web")])
            .pod();
        let plugin = PodTopologySpread::new(None).expect("plugin");
        let feasible: Vec<Arc<NodeInfo>> = ["a2", "c1"]
            .iter()
            .map(|n| snapshot.get(n).expect("node").clone())
            .collect();
        let mut state = CycleState::new();
        assert!(plugin
            .pre_score(&mut state, &pod, &feasible, &snapshot)
            .is_success());
        let raw: Vec<i64> = feasible
            .iter()
            .map(|n| plugin.score(&state, &pod, n).0)
            .collect();
        // Two feasible domains weigh ln(4): a2 = round(2 * 1.386) = 3, c1 = 0.
        assert_eq!(raw, [3, 0]);
    }
}
