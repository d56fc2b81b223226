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
//! pod without constraints of its own, selecting the pods of its Services and controller
//! ([`WorkloadCache::default_selector`], upstream's `DefaultSelector`); a pod nothing selects
//! gets none. With these system defaults a node lacking a topology key is still scored by the
//! keys it has (nodes without a zone label are spread by hostname), as upstream; with a pod's
//! own constraints or `defaultingType: List`, such a node is ignored (scores 0).
//!
//! Scoring as upstream's `scoring.go`: a node's raw score is, over the constraints whose key it
//! has, `count(domain) * ln(domains + 2) + maxSkew - 1` (domains among the scored feasible
//! nodes, every node counting for hostname); NormalizeScore maps it to
//! `100 * (max + min - score) / max`, so the emptiest domain gets 100.

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
use crate::plugins::{
    node_taints, optional_selector_matches, parse_args, selector_matches, tolerated,
};
use crate::workloads::WorkloadCache;

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
    /// The defaults are the built-in ones (`defaultingType: System`).
    system_defaulted: bool,
    workloads: Arc<WorkloadCache>,
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
    /// Builds the plugin from its args; default constraints select by `workloads`.
    pub fn new(
        args: Option<&serde_json::Value>,
        workloads: Arc<WorkloadCache>,
    ) -> Result<PodTopologySpread, ConfigError> {
        let args: Args = parse_args(NAME, args)?;
        let defaulting_type = args.defaulting_type.as_deref().unwrap_or("System");
        let default_constraints = match defaulting_type {
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
            system_defaulted: defaulting_type == "System",
            workloads,
        })
    }
}

/// One constraint, ready to evaluate.
#[derive(Clone, Debug)]
struct Constraint {
    max_skew: i64,
    topology_key: String,
    /// `None` (no labelSelector) selects no pods, as upstream's `LabelSelectorAsSelector(nil)`.
    selector: Option<LabelSelector>,
    min_domains: i64,
    honor_node_affinity: bool,
    honor_taints: bool,
}

fn labels(pod: &Pod) -> BTreeMap<String, String> {
    pod.metadata.labels.clone().unwrap_or_default()
}

fn own_constraints(pod: &Pod) -> &[TopologySpreadConstraint] {
    pod.spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_deref())
        .unwrap_or_default()
}

impl PodTopologySpread {
    /// The pod's constraints with `when_unsatisfiable`, or the defaults if it has none.
    fn constraints(&self, pod: &Pod, when_unsatisfiable: &str) -> Vec<Constraint> {
        let own = own_constraints(pod);
        let convert = |c: &TopologySpreadConstraint, selector: Option<LabelSelector>| Constraint {
            max_skew: i64::from(c.max_skew),
            topology_key: c.topology_key.clone(),
            selector,
            min_domains: i64::from(c.min_domains.unwrap_or(1)),
            honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
        };
        if !own.is_empty() {
            let pod_labels = labels(pod);
            return own
                .iter()
                .filter(|c| c.when_unsatisfiable == when_unsatisfiable)
                .map(|c| {
                    let mut selector = c.label_selector.clone();
                    for key in c.match_label_keys.iter().flatten() {
                        if let Some(value) = pod_labels.get(key) {
                            selector
                                .get_or_insert_with(LabelSelector::default)
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
        let defaults: Vec<&TopologySpreadConstraint> = self
            .default_constraints
            .iter()
            .filter(|c| c.when_unsatisfiable == when_unsatisfiable)
            .collect();
        if defaults.is_empty() {
            return Vec::new();
        }
        let Some(selector) = self.workloads.default_selector(pod) else {
            return Vec::new();
        };
        defaults
            .into_iter()
            .map(|c| convert(c, Some(selector.clone())))
            .collect()
    }

    /// Whether a node must carry every constraint's topology key to be scored: not with the
    /// system defaults, so that nodes without a zone label are still spread by hostname.
    fn require_all_topologies(&self, pod: &Pod) -> bool {
        !own_constraints(pod).is_empty() || !self.system_defaulted
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
fn matching_pods(node: &NodeInfo, namespace: &str, selector: &Option<LabelSelector>) -> i64 {
    let Some(selector) = selector else {
        return 0;
    };
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
            let self_match = i64::from(optional_selector_matches(c.selector.as_ref(), &pod_labels));
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
    /// Nodes without every topology key score 0 (not with the system defaults).
    require_all_topologies: bool,
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
        let require_all = self.require_all_topologies(pod);
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("");
        let scored: Vec<&NodeInfo> = nodes
            .iter()
            .map(|n| &**n)
            .filter(|n| !require_all || has_all_keys(n, &constraints))
            .collect();
        let mut weights = Vec::with_capacity(constraints.len());
        let mut counts = Vec::with_capacity(constraints.len());
        for c in &constraints {
            let mut domain_counts: HashMap<&str, i64> = HashMap::new();
            let mut count = |node: &'a NodeInfo| {
                let Some(n) = node.node.as_ref() else {
                    return;
                };
                let Some(value) = node.label(&c.topology_key) else {
                    return;
                };
                if (require_all && !has_all_keys(node, &constraints)) || !node_counts(pod, n, c) {
                    return;
                }
                *domain_counts.entry(value).or_default() +=
                    matching_pods(node, namespace, &c.selector);
            };
            // Each constraint weighs log(domains + 2), domains among the scored nodes; a node
            // without the key (possible only with the system defaults) is one more domain, as
            // upstream's empty topology value.
            let domains = if c.topology_key == HOSTNAME {
                // Hostname domains are single nodes: Score counts each node's own pods, as
                // upstream's does, without a map of every scored node here.
                scored.len()
            } else {
                // Score reads only the scored nodes' domains: count the nodes in those.
                let values: HashSet<Option<&str>> =
                    scored.iter().map(|n| n.label(&c.topology_key)).collect();
                for value in values.iter().flatten() {
                    for &i in snapshot.nodes_in_domain(&c.topology_key, value) {
                        count(&snapshot.nodes[i]);
                    }
                }
                values.len()
            };
            weights.push(((domains + 2) as f64).ln());
            counts.push(owned(domain_counts));
        }
        state.write(
            SCORE_KEY,
            ScoreState {
                constraints,
                require_all_topologies: require_all,
                counts,
                weights,
            },
        );
        Status::success()
    }
}

impl Score for PodTopologySpread {
    fn score(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> (i64, Status) {
        let Some(s) = state.read::<ScoreState>(SCORE_KEY) else {
            return (0, Status::success());
        };
        if s.require_all_topologies && !has_all_keys(node, &s.constraints) {
            // Ignored: marked for a 0 after normalizing.
            return (-1, Status::success());
        }
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("");
        let mut score = 0.0;
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(value) = node.label(&c.topology_key) else {
                continue;
            };
            let count = if c.topology_key == HOSTNAME {
                matching_pods(node, namespace, &c.selector)
            } else {
                s.counts[i].get(value).copied().unwrap_or(0)
            };
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

    fn plugin() -> Result<PodTopologySpread, ConfigError> {
        PodTopologySpread::new(None, Default::default())
    }

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
        let plugin = plugin().expect("plugin");
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
        let plugin = plugin().expect("plugin");
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
        let plugin = plugin().expect("plugin");
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
        let plugin = plugin().expect("plugin");
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

    /// Runs PreScore, Score and NormalizeScore with `feasible` (names) as the filtered nodes.
    fn normalized_scores(
        plugin: &PodTopologySpread,
        pod: &Pod,
        snapshot: &Snapshot,
        feasible: &[&str],
    ) -> Vec<(String, i64)> {
        let feasible: Vec<Arc<NodeInfo>> = feasible
            .iter()
            .map(|n| snapshot.get(n).expect("node").clone())
            .collect();
        let mut state = CycleState::new();
        let status = plugin.pre_score(&mut state, pod, &feasible, snapshot);
        let mut scores: Vec<NodeScore> = feasible
            .iter()
            .map(|n| NodeScore {
                name: n.name.clone(),
                score: if status.is_skip() {
                    0
                } else {
                    plugin.score(&state, pod, n).0
                },
            })
            .collect();
        if !status.is_skip() {
            plugin.normalize_score(&state, pod, &mut scores);
        }
        scores.into_iter().map(|s| (s.name, s.score)).collect()
    }

    /// Upstream's `TestPodTopologySpreadScore` cases (scoring_test.go). Legend: X/Y matching
    /// pods on node-a/node-b; ~Y~ a node that is not a candidate (failed filtering); ?Y? a
    /// candidate without the topology key.
    #[test]
    fn upstream_score_cases() {
        let host = |name: &str| make_node(name).node();
        let zoned = |name: &str, zone: &str| make_node(name).label("zone", zone).node();
        let by_node = |name: &str, node: &str| make_node(name).label("node", node).node();
        let foo = |name: &str, node: &str| make_pod(name).label("foo", "").node(node).pod();
        let bar = |name: &str, node: &str| make_pod(name).label("bar", "").node(node).pod();
        let foobar = |name: &str, node: &str| {
            make_pod(name)
                .label("foo", "")
                .label("bar", "")
                .node(node)
                .pod()
        };
        // `counts`: how many foo pods on each named node.
        let foos = |counts: &[(&str, usize)]| -> Vec<Pod> {
            counts
                .iter()
                .flat_map(|(node, n)| (0..*n).map(move |i| foo(&format!("p-{node}-{i}"), node)))
                .collect()
        };
        let incoming = || make_pod("p").label("foo", "");
        let on_host = |max_skew| {
            incoming()
                .spread(max_skew, HOSTNAME, "ScheduleAnyway", &[("foo", "")])
                .pod()
        };
        let zone_and_host = |host_selector: &[(&str, &str)]| {
            make_pod("p")
                .label("foo", "")
                .label("bar", "")
                .spread(1, "zone", "ScheduleAnyway", &[("foo", "")])
                .spread(1, HOSTNAME, "ScheduleAnyway", host_selector)
                .pod()
        };
        let on_node_key = |c: TopologySpreadConstraint| {
            incoming().spread_constraint(TopologySpreadConstraint {
                max_skew: c.max_skew.max(1),
                topology_key: "node".into(),
                when_unsatisfiable: "ScheduleAnyway".into(),
                label_selector: Some(LabelSelector {
                    match_labels: Some([("foo".to_string(), String::new())].into()),
                    match_expressions: None,
                }),
                ..c
            })
        };
        let inclusion_nodes = || {
            vec![
                make_node("node-a")
                    .label("node", "node-a")
                    .label("foo", "")
                    .node(),
                make_node("node-b")
                    .label("node", "node-b")
                    .label("foo", "")
                    .node(),
                make_node("node-c")
                    .label("node", "node-c")
                    .taint("node.kubernetes.io/unschedulable", "", "NoSchedule")
                    .node(),
            ]
        };
        let inclusion_pods = || foos(&[("node-a", 2), ("node-b", 1), ("node-c", 1)]);
        let four = || {
            vec![
                host("node-a"),
                host("node-b"),
                host("node-c"),
                host("node-d"),
            ]
        };
        let four_zoned = || {
            vec![
                zoned("node-a", "zone1"),
                zoned("node-b", "zone1"),
                zoned("node-x", "zone2"),
                zoned("node-y", "zone2"),
            ]
        };
        type Case = (
            &'static str,
            Pod,
            Vec<Pod>,
            Vec<Node>,
            Vec<&'static str>,
            Vec<i64>,
        );
        let cases: Vec<Case> = vec![
            (
                "one constraint on node, no existing pods",
                on_host(1),
                vec![],
                vec![host("node-a"), host("node-b")],
                vec!["node-a", "node-b"],
                vec![100, 100],
            ),
            (
                "one constraint on node, only one node is candidate",
                on_host(1),
                foos(&[("node-a", 2), ("node-b", 1)]),
                vec![host("node-a"), host("node-b")],
                vec!["node-a"],
                vec![100],
            ),
            (
                "one constraint on node, all nodes have the same number of matching pods",
                on_host(1),
                foos(&[("node-a", 1), ("node-b", 1)]),
                vec![host("node-a"), host("node-b")],
                vec!["node-a", "node-b"],
                vec![100, 100],
            ),
            (
                "one constraint on node, all 4 nodes are candidates (2/1/0/3)",
                on_host(1),
                foos(&[("node-a", 2), ("node-b", 1), ("node-d", 3)]),
                four(),
                vec!["node-a", "node-b", "node-c", "node-d"],
                vec![20, 60, 100, 0],
            ),
            (
                "one constraint on node, null selector",
                incoming()
                    .spread_constraint(TopologySpreadConstraint {
                        max_skew: 1,
                        topology_key: HOSTNAME.into(),
                        when_unsatisfiable: "ScheduleAnyway".into(),
                        ..Default::default()
                    })
                    .pod(),
                foos(&[("node-a", 2), ("node-b", 1), ("node-d", 3)]),
                four(),
                vec!["node-a", "node-b", "node-c", "node-d"],
                vec![100, 100, 100, 100],
            ),
            (
                "one constraint on node, all 4 nodes are candidates, maxSkew=2",
                on_host(2),
                foos(&[("node-a", 2), ("node-b", 1), ("node-d", 3)]),
                four(),
                vec!["node-a", "node-b", "node-c", "node-d"],
                vec![33, 66, 100, 16],
            ),
            (
                "one constraint on node, all 4 nodes are candidates, maxSkew=3 (4/3/2/1)",
                on_host(3),
                foos(&[("node-a", 4), ("node-b", 3), ("node-c", 2), ("node-d", 1)]),
                four(),
                vec!["node-a", "node-b", "node-c", "node-d"],
                vec![44, 66, 77, 100],
            ),
            (
                "one constraint on node, 3 out of 4 nodes are candidates (4/2/1/~3~)",
                on_host(1),
                foos(&[("node-a", 4), ("node-b", 2), ("node-x", 1), ("node-y", 3)]),
                vec![host("node-a"), host("node-b"), host("node-x"), host("node-y")],
                vec!["node-a", "node-b", "node-x"],
                vec![33, 83, 100],
            ),
            (
                "one constraint on node, one candidate lacks the topology key (4/?2?/1/~3~)",
                on_host(1),
                foos(&[("node-a", 4), ("node-b", 2), ("node-x", 1), ("node-y", 3)]),
                vec![
                    host("node-a"),
                    {
                        let mut n = make_node("node-b").label("n", "node-b").node();
                        if let Some(l) = n.metadata.labels.as_mut() {
                            l.remove(HOSTNAME);
                        }
                        n
                    },
                    host("node-x"),
                    host("node-y"),
                ],
                vec!["node-a", "node-b", "node-x"],
                vec![16, 0, 100],
            ),
            (
                "one constraint on zone, 3 out of 4 nodes are candidates",
                incoming()
                    .spread(1, "zone", "ScheduleAnyway", &[("foo", "")])
                    .pod(),
                foos(&[("node-a", 4), ("node-b", 2), ("node-x", 1), ("node-y", 3)]),
                four_zoned(),
                vec!["node-a", "node-b", "node-x"],
                vec![75, 75, 100],
            ),
            (
                "two constraints on zone and node, 2 out of 4 nodes are candidates (2/~1~/2/~4~)",
                incoming()
                    .spread(1, "zone", "ScheduleAnyway", &[("foo", "")])
                    .spread(1, HOSTNAME, "ScheduleAnyway", &[("foo", "")])
                    .pod(),
                foos(&[("node-a", 2), ("node-b", 1), ("node-x", 2), ("node-y", 4)]),
                four_zoned(),
                vec!["node-a", "node-x"],
                vec![100, 63],
            ),
            (
                "two constraints on zone and node, with different labelSelectors",
                zone_and_host(&[("bar", "")]),
                vec![
                    foo("p-a1", "node-a"),
                    foobar("p-b1", "node-b"),
                    foo("p-y1", "node-y"),
                    bar("p-y2", "node-y"),
                ],
                four_zoned(),
                vec!["node-a", "node-b", "node-x", "node-y"],
                vec![60, 20, 100, 60],
            ),
            (
                "two constraints on zone and node, with different labelSelectors, some nodes have 0 pods",
                zone_and_host(&[("bar", "")]),
                vec![
                    bar("p-b1", "node-b"),
                    foo("p-x1", "node-x"),
                    foobar("p-y1", "node-y"),
                ],
                four_zoned(),
                vec!["node-a", "node-b", "node-x", "node-y"],
                vec![100, 60, 40, 0],
            ),
            (
                "two constraints on zone and node, with different labelSelectors, 3 out of 4 nodes are candidates",
                zone_and_host(&[("bar", "")]),
                vec![
                    foo("p-a1", "node-a"),
                    foobar("p-b1", "node-b"),
                    foo("p-y1", "node-y"),
                    bar("p-y2", "node-y"),
                ],
                four_zoned(),
                vec!["node-a", "node-b", "node-x"],
                vec![50, 25, 100],
            ),
            (
                "existing pods in a different namespace do not count",
                on_host(1),
                vec![
                    make_pod("p-a1")
                        .namespace("ns1")
                        .label("foo", "")
                        .node("node-a")
                        .pod(),
                    foo("p-a2", "node-a"),
                    foo("p-b1", "node-b"),
                    foo("p-b2", "node-b"),
                ],
                vec![host("node-a"), host("node-b")],
                vec!["node-a", "node-b"],
                vec![100, 33],
            ),
            (
                "terminating pods are excluded",
                on_host(1),
                vec![
                    make_pod("p-a")
                        .label("foo", "")
                        .node("node-a")
                        .terminating()
                        .pod(),
                    foo("p-b", "node-b"),
                ],
                vec![host("node-a"), host("node-b")],
                vec!["node-a", "node-b"],
                vec![100, 0],
            ),
            (
                "minDomains has no effect when ScheduleAnyway",
                on_node_key(TopologySpreadConstraint {
                    max_skew: 2,
                    min_domains: Some(10),
                    ..Default::default()
                })
                .pod(),
                foos(&[("node-a", 2), ("node-b", 2), ("node-c", 1)]),
                vec![
                    by_node("node-a", "node-a"),
                    by_node("node-b", "node-b"),
                    by_node("node-c", "node-c"),
                ],
                vec!["node-a", "node-b", "node-c"],
                vec![75, 75, 100],
            ),
            (
                "NodeAffinityPolicy honored with nodeSelector",
                on_node_key(Default::default())
                    .node_selector("foo", "")
                    .pod(),
                inclusion_pods(),
                inclusion_nodes(),
                vec!["node-a", "node-b", "node-c"],
                vec![0, 33, 100],
            ),
            (
                "NodeAffinityPolicy ignored with nodeSelector",
                on_node_key(TopologySpreadConstraint {
                    node_affinity_policy: Some("Ignore".into()),
                    ..Default::default()
                })
                .node_selector("foo", "")
                .pod(),
                inclusion_pods(),
                inclusion_nodes(),
                vec!["node-a", "node-b", "node-c"],
                vec![66, 100, 100],
            ),
            (
                "NodeAffinityPolicy honored with nodeAffinity",
                on_node_key(Default::default())
                    .node_affinity("foo", "In", &[""])
                    .pod(),
                inclusion_pods(),
                inclusion_nodes(),
                vec!["node-a", "node-b", "node-c"],
                vec![0, 33, 100],
            ),
            (
                "NodeTaintsPolicy honored",
                on_node_key(TopologySpreadConstraint {
                    node_taints_policy: Some("Honor".into()),
                    ..Default::default()
                })
                .pod(),
                inclusion_pods(),
                inclusion_nodes(),
                vec!["node-a", "node-b", "node-c"],
                vec![0, 33, 100],
            ),
            (
                "NodeTaintsPolicy ignored",
                on_node_key(Default::default()).pod(),
                inclusion_pods(),
                inclusion_nodes(),
                vec!["node-a", "node-b", "node-c"],
                vec![66, 100, 100],
            ),
        ];
        let plugin = plugin().expect("plugin");
        for (name, pod, pods, nodes, feasible, want) in cases {
            let snapshot = Snapshot::from_objects(nodes, pods);
            let got: Vec<i64> = normalized_scores(&plugin, &pod, &snapshot, &feasible)
                .into_iter()
                .map(|(_, score)| score)
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }

    /// The system defaults (upstream's "system defaulting, nodes don't have zone, pods match
    /// service" case): nodes without a zone label are still spread by hostname, with the
    /// selector of the Service selecting the pod.
    #[test]
    fn system_defaults_spread_nodes_without_zones_by_hostname() {
        let workloads = Arc::new(WorkloadCache::default());
        let plugin = PodTopologySpread::new(None, workloads.clone()).expect("plugin");
        let pods: Vec<Pod> = [("node-a", 4), ("node-b", 3), ("node-c", 2), ("node-d", 1)]
            .iter()
            .flat_map(|(node, n)| {
                (0..*n).map(move |i| {
                    make_pod(&format!("p-{node}-{i}"))
                        .label("foo", "")
                        .node(node)
                        .pod()
                })
            })
            .collect();
        let nodes = ["node-a", "node-b", "node-c", "node-d"];
        let snapshot =
            Snapshot::from_objects(nodes.iter().map(|n| make_node(n).node()).collect(), pods);
        let pod = make_pod("p").label("foo", "").pod();
        // Nothing selects the pod yet: no default constraints.
        let mut state = CycleState::new();
        assert!(plugin
            .pre_score(&mut state, &pod, &snapshot.nodes, &snapshot)
            .is_skip());
        workloads.put_service(&k8s_openapi::api::core::v1::Service {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("svc".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(k8s_openapi::api::core::v1::ServiceSpec {
                selector: Some([("foo".to_string(), String::new())].into()),
                ..Default::default()
            }),
            ..Default::default()
        });
        let got: Vec<i64> = normalized_scores(&plugin, &pod, &snapshot, &nodes)
            .into_iter()
            .map(|(_, score)| score)
            .collect();
        assert_eq!(got, [44, 66, 77, 100]);
        // With `defaultingType: List`, the same constraints ignore nodes without a zone.
        let list = PodTopologySpread::new(
            Some(&serde_json::json!({
                "defaultingType": "List",
                "defaultConstraints": [
                    {"maxSkew": 3, "topologyKey": HOSTNAME, "whenUnsatisfiable": "ScheduleAnyway"},
                    {"maxSkew": 5, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"},
                ]
            })),
            workloads,
        )
        .expect("plugin");
        let got: Vec<i64> = normalized_scores(&list, &pod, &snapshot, &nodes)
            .into_iter()
            .map(|(_, score)| score)
            .collect();
        assert_eq!(got, [0, 0, 0, 0]);
    }
}
