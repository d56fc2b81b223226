//! InterPodAffinity: required pod affinity and anti-affinity of the incoming pod, the required
//! anti-affinity of pods already running (symmetry), and preferred terms of both for scoring.
//!
//! A term selects pods by label selector in a set of namespaces: `namespaces`, plus every
//! namespace whose labels match `namespaceSelector` (`{}`: all), or the pod's own namespace
//! when both are empty. Namespace labels come from the namespace watch; a namespace not seen
//! yet counts as having no labels (best effort).
//!
//! As upstream, a pod whose required affinity matches no existing pod may still go anywhere
//! that has the topology keys if it matches its own terms (the first pod of a group).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, WeightedPodAffinityTerm};
use serde::Deserialize;

use crate::cache::{NodeInfo, Snapshot};
use crate::config::ConfigError;
use crate::framework::{
    ClusterEvent, CycleState, Filter, NodeScore, Plugin, PreFilter, PreFilterResult, PreScore,
    Score, Status, MAX_NODE_SCORE,
};
use crate::plugins::{optional_selector_matches, parse_args, selector_matches};

/// The plugin's name.
pub const NAME: &str = "InterPodAffinity";
/// The pod's required affinity is not satisfied.
pub const ERR_REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
/// The pod's required anti-affinity is violated.
pub const ERR_REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
/// An existing pod's required anti-affinity would be violated.
pub const ERR_REASON_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";
const FILTER_KEY: &str = "PreFilterInterPodAffinity";
const SCORE_KEY: &str = "PreScoreInterPodAffinity";

/// `InterPodAffinityArgs`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Args {
    /// The score an existing pod's required affinity term matching the incoming pod adds.
    #[serde(default = "one")]
    pub hard_pod_affinity_weight: i64,
    /// Ignore existing pods' preferred terms when scoring.
    #[serde(default)]
    pub ignore_preferred_terms_of_existing_pods: bool,
}

fn one() -> i64 {
    1
}

impl Default for Args {
    fn default() -> Self {
        Args {
            hard_pod_affinity_weight: 1,
            ignore_preferred_terms_of_existing_pods: false,
        }
    }
}

/// The InterPodAffinity plugin.
pub struct InterPodAffinity {
    args: Args,
}

impl InterPodAffinity {
    /// Builds the plugin from its args.
    pub fn new(args: Option<&serde_json::Value>) -> Result<InterPodAffinity, ConfigError> {
        let args: Args = parse_args(NAME, args)?;
        if !(0..=100).contains(&args.hard_pod_affinity_weight) {
            return Err(ConfigError::Invalid(
                "InterPodAffinity: hardPodAffinityWeight must be in 0..=100".into(),
            ));
        }
        Ok(InterPodAffinity { args })
    }
}

fn labels(pod: &Pod) -> &BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    pod.metadata.labels.as_ref().unwrap_or(&EMPTY)
}

/// Whether `term`, written in a pod of namespace `owner_namespace`, selects `target`.
pub fn term_matches(
    term: &PodAffinityTerm,
    owner_namespace: &str,
    target: &Pod,
    namespace_labels: &HashMap<String, BTreeMap<String, String>>,
) -> bool {
    let target_namespace = target.metadata.namespace.as_deref().unwrap_or("");
    let namespaces = term.namespaces.as_deref().unwrap_or_default();
    let in_namespace = if namespaces.is_empty() && term.namespace_selector.is_none() {
        target_namespace == owner_namespace
    } else {
        namespaces.iter().any(|n| n == target_namespace)
            || term.namespace_selector.as_ref().is_some_and(|selector| {
                let empty = BTreeMap::new();
                selector_matches(
                    selector,
                    namespace_labels.get(target_namespace).unwrap_or(&empty),
                )
            })
    };
    in_namespace && optional_selector_matches(term.label_selector.as_ref(), labels(target))
}

fn namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("")
}

fn required_affinity(pod: &Pod) -> &[PodAffinityTerm] {
    (|| {
        pod.spec
            .as_ref()?
            .affinity
            .as_ref()?
            .pod_affinity
            .as_ref()?
            .required_during_scheduling_ignored_during_execution
            .as_deref()
    })()
    .unwrap_or_default()
}

fn required_anti_affinity(pod: &Pod) -> &[PodAffinityTerm] {
    (|| {
        pod.spec
            .as_ref()?
            .affinity
            .as_ref()?
            .pod_anti_affinity
            .as_ref()?
            .required_during_scheduling_ignored_during_execution
            .as_deref()
    })()
    .unwrap_or_default()
}

fn preferred_affinity(pod: &Pod) -> &[WeightedPodAffinityTerm] {
    (|| {
        pod.spec
            .as_ref()?
            .affinity
            .as_ref()?
            .pod_affinity
            .as_ref()?
            .preferred_during_scheduling_ignored_during_execution
            .as_deref()
    })()
    .unwrap_or_default()
}

fn preferred_anti_affinity(pod: &Pod) -> &[WeightedPodAffinityTerm] {
    (|| {
        pod.spec
            .as_ref()?
            .affinity
            .as_ref()?
            .pod_anti_affinity
            .as_ref()?
            .preferred_during_scheduling_ignored_during_execution
            .as_deref()
    })()
    .unwrap_or_default()
}

type TopologyCounts = HashMap<(String, String), i64>;

#[derive(Default)]
struct FilterState {
    /// Domains where an existing pod's anti-affinity selects the incoming pod.
    existing_anti_affinity: TopologyCounts,
    /// Domains with pods matching all the incoming pod's affinity terms (counted per term key).
    affinity: TopologyCounts,
    /// Domains with pods matching the incoming pod's anti-affinity terms.
    anti_affinity: TopologyCounts,
    affinity_terms: Vec<PodAffinityTerm>,
    anti_affinity_terms: Vec<PodAffinityTerm>,
    /// The pod matches all its own affinity terms.
    self_match: bool,
}

impl Plugin for InterPodAffinity {
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
            ClusterEvent::NamespaceChange,
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

impl PreFilter for InterPodAffinity {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
    ) -> (Option<PreFilterResult>, Status) {
        let affinity_terms = required_affinity(pod).to_vec();
        let anti_affinity_terms = required_anti_affinity(pod).to_vec();
        let any_existing = snapshot.nodes_with_required_anti_affinity > 0;
        if affinity_terms.is_empty() && anti_affinity_terms.is_empty() && !any_existing {
            return (None, Status::skip());
        }
        let ns_labels = &snapshot.namespace_labels;
        let mut s = FilterState {
            affinity_terms,
            anti_affinity_terms,
            ..Default::default()
        };
        let pod_ns = namespace(pod);
        s.self_match = !s.affinity_terms.is_empty()
            && s.affinity_terms
                .iter()
                .all(|t| term_matches(t, pod_ns, pod, ns_labels));
        for node in &snapshot.nodes {
            let Some(node_labels) = node.labels() else {
                continue;
            };
            if node.pods_with_required_anti_affinity > 0 {
                for existing in node.pods.iter().filter(|p| p.has_required_anti_affinity) {
                    for term in required_anti_affinity(&existing.pod) {
                        if let Some(value) = node_labels.get(&term.topology_key) {
                            if term_matches(term, namespace(&existing.pod), pod, ns_labels) {
                                *s.existing_anti_affinity
                                    .entry((term.topology_key.clone(), value.clone()))
                                    .or_default() += 1;
                            }
                        }
                    }
                }
            }
            if s.affinity_terms.is_empty() && s.anti_affinity_terms.is_empty() {
                continue;
            }
            for existing in &node.pods {
                if !s.affinity_terms.is_empty()
                    && s.affinity_terms
                        .iter()
                        .all(|t| term_matches(t, pod_ns, &existing.pod, ns_labels))
                {
                    for term in &s.affinity_terms {
                        if let Some(value) = node_labels.get(&term.topology_key) {
                            *s.affinity
                                .entry((term.topology_key.clone(), value.clone()))
                                .or_default() += 1;
                        }
                    }
                }
                for term in &s.anti_affinity_terms {
                    if let Some(value) = node_labels.get(&term.topology_key) {
                        if term_matches(term, pod_ns, &existing.pod, ns_labels) {
                            *s.anti_affinity
                                .entry((term.topology_key.clone(), value.clone()))
                                .or_default() += 1;
                        }
                    }
                }
            }
        }
        state.write(FILTER_KEY, s);
        (None, Status::success())
    }
}

impl Filter for InterPodAffinity {
    fn filter(&self, state: &CycleState, _pod: &Pod, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<FilterState>(FILTER_KEY) else {
            return Status::error("InterPodAffinity: no PreFilter state");
        };
        let empty = BTreeMap::new();
        let node_labels = node.labels().unwrap_or(&empty);
        let count = |counts: &TopologyCounts, key: &str| {
            node_labels
                .get(key)
                .and_then(|v| counts.get(&(key.to_string(), v.clone())))
                .copied()
                .unwrap_or(0)
        };
        // Affinity: every term's domain on this node must hold a matching pod, unless no pod
        // matches anywhere and the pod matches itself (the first of its group).
        let affinity_ok = s
            .affinity_terms
            .iter()
            .all(|t| count(&s.affinity, &t.topology_key) > 0)
            || (s.affinity.is_empty()
                && s.self_match
                && s.affinity_terms
                    .iter()
                    .all(|t| node_labels.contains_key(&t.topology_key)));
        if !affinity_ok {
            return Status::unresolvable(ERR_REASON_AFFINITY);
        }
        if s.anti_affinity_terms
            .iter()
            .any(|t| count(&s.anti_affinity, &t.topology_key) > 0)
        {
            return Status::unschedulable(ERR_REASON_ANTI_AFFINITY);
        }
        if !s.existing_anti_affinity.is_empty()
            && node_labels.iter().any(|(k, v)| {
                s.existing_anti_affinity
                    .get(&(k.clone(), v.clone()))
                    .is_some_and(|c| *c > 0)
            })
        {
            return Status::unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY);
        }
        Status::success()
    }
}

/// Per topology key, per value: the summed weights of the terms matching in that domain.
type TopologyScores = HashMap<String, HashMap<String, i64>>;

impl PreScore for InterPodAffinity {
    /// Sums, per topology domain, the weights of the incoming pod's preferred terms matching
    /// existing pods and of existing pods' terms matching the incoming pod, as upstream.
    /// Score only looks up the domains of feasible nodes, so only the nodes in those domains
    /// (found through the snapshot's domain index, for the topology keys any term uses) are
    /// visited: the same sums where they are read, without a pass over every pod.
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        nodes: &[Arc<NodeInfo>],
        snapshot: &Snapshot,
    ) -> Status {
        let own_affinity = preferred_affinity(pod);
        let own_anti_affinity = preferred_anti_affinity(pod);
        let has_own = !own_affinity.is_empty() || !own_anti_affinity.is_empty();
        let any_existing = snapshot.nodes_with_affinity > 0;
        if !has_own && !any_existing {
            return Status::skip();
        }
        let mut keys: BTreeSet<&str> = BTreeSet::new();
        if has_own {
            keys.extend(
                own_affinity
                    .iter()
                    .chain(own_anti_affinity)
                    .map(|t| t.pod_affinity_term.topology_key.as_str()),
            );
        }
        if any_existing {
            keys.extend(snapshot.affinity_topology_keys());
        }
        let mut visit = vec![false; snapshot.nodes.len()];
        let mut order: Vec<usize> = Vec::new();
        for key in keys {
            let values: HashSet<&str> = nodes.iter().filter_map(|n| n.label(key)).collect();
            for value in values {
                for &i in snapshot.nodes_in_domain(key, value) {
                    if !std::mem::replace(&mut visit[i], true) {
                        order.push(i);
                    }
                }
            }
        }
        let ns_labels = &snapshot.namespace_labels;
        let pod_ns = namespace(pod);
        let mut scores: HashMap<(&str, &str), i64> = HashMap::new();
        for i in order {
            let node = &snapshot.nodes[i];
            if !has_own && node.pods_with_affinity == 0 {
                continue;
            }
            let Some(node_labels) = node.labels() else {
                continue;
            };
            let mut add = |key: &str, weight: i64| {
                if let Some((key, value)) = node_labels.get_key_value(key) {
                    *scores.entry((key.as_str(), value.as_str())).or_default() += weight;
                }
            };
            for existing in &node.pods {
                let existing_pod = &existing.pod;
                for term in own_affinity {
                    if term_matches(&term.pod_affinity_term, pod_ns, existing_pod, ns_labels) {
                        add(&term.pod_affinity_term.topology_key, i64::from(term.weight));
                    }
                }
                for term in own_anti_affinity {
                    if term_matches(&term.pod_affinity_term, pod_ns, existing_pod, ns_labels) {
                        add(
                            &term.pod_affinity_term.topology_key,
                            -i64::from(term.weight),
                        );
                    }
                }
                if !existing.has_affinity {
                    continue;
                }
                let existing_ns = namespace(existing_pod);
                if self.args.hard_pod_affinity_weight > 0 {
                    for term in required_affinity(existing_pod) {
                        if term_matches(term, existing_ns, pod, ns_labels) {
                            add(&term.topology_key, self.args.hard_pod_affinity_weight);
                        }
                    }
                }
                if !self.args.ignore_preferred_terms_of_existing_pods {
                    for term in preferred_affinity(existing_pod) {
                        if term_matches(&term.pod_affinity_term, existing_ns, pod, ns_labels) {
                            add(&term.pod_affinity_term.topology_key, i64::from(term.weight));
                        }
                    }
                    for term in preferred_anti_affinity(existing_pod) {
                        if term_matches(&term.pod_affinity_term, existing_ns, pod, ns_labels) {
                            add(
                                &term.pod_affinity_term.topology_key,
                                -i64::from(term.weight),
                            );
                        }
                    }
                }
            }
        }
        if scores.is_empty() {
            return Status::skip();
        }
        let mut owned = TopologyScores::new();
        for ((key, value), score) in scores {
            let values = match owned.get_mut(key) {
                Some(values) => values,
                None => owned.entry(key.to_string()).or_default(),
            };
            values.insert(value.to_string(), score);
        }
        state.write(SCORE_KEY, owned);
        Status::success()
    }
}

impl Score for InterPodAffinity {
    fn score(&self, state: &CycleState, _pod: &Pod, node: &NodeInfo) -> (i64, Status) {
        let Some(scores) = state.read::<TopologyScores>(SCORE_KEY) else {
            return (0, Status::success());
        };
        let score = scores
            .iter()
            .filter_map(|(key, values)| node.label(key).and_then(|v| values.get(v)))
            .sum();
        (score, Status::success())
    }

    fn normalize_score(&self, _state: &CycleState, _pod: &Pod, scores: &mut [NodeScore]) -> Status {
        let min = scores.iter().map(|s| s.score).min().unwrap_or(0);
        let max = scores.iter().map(|s| s.score).max().unwrap_or(0);
        for s in scores.iter_mut() {
            // In floating point as upstream, whose rounding this keeps (100 * 0.29 is 28).
            s.score = if max > min {
                (MAX_NODE_SCORE as f64 * ((s.score - min) as f64 / (max - min) as f64)) as i64
            } else {
                0
            };
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{affinity_term, make_node, make_pod};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn zone_nodes() -> Vec<k8s_openapi::api::core::v1::Node> {
        vec![
            make_node("a1").label("zone", "a").node(),
            make_node("a2").label("zone", "a").node(),
            make_node("b1").label("zone", "b").node(),
            make_node("nozone").node(),
        ]
    }

    fn filter_all(pod: &Pod, snapshot: &Snapshot) -> Vec<(String, Status)> {
        let plugin = InterPodAffinity::new(None).expect("plugin");
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
    fn required_affinity_and_anti_affinity() {
        let web = make_pod("web").label("app", "web").node("a2").pod();
        let snapshot = Snapshot::from_objects(zone_nodes(), vec![web]);
        let cases: Vec<(Pod, Vec<&str>)> = vec![
            (make_pod("p").pod(), vec!["a1", "a2", "b1", "nozone"]),
            (
                make_pod("p").pod_affinity("zone", &[("app", "web")]).pod(),
                vec!["a1", "a2"],
            ),
        ];
        for (pod, want) in cases {
            assert_eq!(passing(&filter_all(&pod, &snapshot)), want);
        }
        let anti = make_pod("p")
            .pod_anti_affinity("zone", &[("app", "web")])
            .pod();
        let results = filter_all(&anti, &snapshot);
        assert_eq!(passing(&results), ["b1", "nozone"]);
        assert_eq!(
            results[0].1,
            Status::unschedulable(ERR_REASON_ANTI_AFFINITY)
        );
        let by_host = make_pod("p")
            .pod_anti_affinity("kubernetes.io/hostname", &[("app", "web")])
            .pod();
        assert_eq!(
            passing(&filter_all(&by_host, &snapshot)),
            ["a1", "b1", "nozone"]
        );
        let no_match = make_pod("p").pod_affinity("zone", &[("app", "db")]).pod();
        let results = filter_all(&no_match, &snapshot);
        assert!(passing(&results).is_empty());
        assert_eq!(results[0].1, Status::unresolvable(ERR_REASON_AFFINITY));
    }

    #[test]
    fn first_pod_of_a_group_may_match_itself() {
        let snapshot = Snapshot::from_objects(zone_nodes(), vec![]);
        let pod = make_pod("p")
            .label("app", "web")
            .pod_affinity("zone", &[("app", "web")])
            .pod();
        assert_eq!(
            passing(&filter_all(&pod, &snapshot)),
            ["a1", "a2", "b1"],
            "nodes with the topology key"
        );
    }

    #[test]
    fn existing_pods_anti_affinity_is_honoured() {
        let existing = make_pod("db")
            .node("a1")
            .pod_anti_affinity("zone", &[("app", "web")])
            .pod();
        let snapshot = Snapshot::from_objects(zone_nodes(), vec![existing]);
        let results = filter_all(&make_pod("p").label("app", "web").pod(), &snapshot);
        assert_eq!(passing(&results), ["b1", "nozone"]);
        assert_eq!(
            results[0].1,
            Status::unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY)
        );
        // A pod the term does not select is not affected.
        assert_eq!(
            passing(&filter_all(
                &make_pod("p").label("app", "api").pod(),
                &snapshot
            ))
            .len(),
            4
        );
    }

    #[test]
    fn namespaces_and_namespace_selector() {
        let other = make_pod("web")
            .namespace("other")
            .label("app", "web")
            .node("b1")
            .pod();
        let nodes = zone_nodes();
        let mut ns = HashMap::new();
        ns.insert(
            "other".to_string(),
            [("team".to_string(), "x".to_string())]
                .into_iter()
                .collect(),
        );
        let snapshot = Snapshot::from_objects(nodes, vec![other]).with_namespace_labels(ns);
        // Own namespace by default: no match.
        assert!(passing(&filter_all(
            &make_pod("p").pod_affinity("zone", &[("app", "web")]).pod(),
            &snapshot
        ))
        .is_empty());
        let mut by_name = affinity_term("zone", &[("app", "web")]);
        by_name.namespaces = Some(vec!["other".into()]);
        assert_eq!(
            passing(&filter_all(
                &make_pod("p").pod_affinity_term(by_name).pod(),
                &snapshot
            )),
            ["b1"]
        );
        let mut by_selector = affinity_term("zone", &[("app", "web")]);
        by_selector.namespace_selector = Some(LabelSelector {
            match_labels: Some(
                [("team".to_string(), "x".to_string())]
                    .into_iter()
                    .collect(),
            ),
            match_expressions: None,
        });
        assert_eq!(
            passing(&filter_all(
                &make_pod("p").pod_affinity_term(by_selector).pod(),
                &snapshot
            )),
            ["b1"]
        );
        let mut all = affinity_term("zone", &[("app", "web")]);
        all.namespace_selector = Some(LabelSelector::default());
        assert_eq!(
            passing(&filter_all(
                &make_pod("p").pod_affinity_term(all).pod(),
                &snapshot
            )),
            ["b1"]
        );
    }

    #[test]
    fn preferred_terms_score() {
        let snapshot = Snapshot::from_objects(
            zone_nodes(),
            vec![
                make_pod("web").label("app", "web").node("a1").pod(),
                make_pod("db").label("app", "db").node("b1").pod(),
            ],
        );
        let pod = make_pod("p")
            .preferred_pod_affinity(10, "zone", &[("app", "web")])
            .preferred_pod_anti_affinity(5, "zone", &[("app", "db")])
            .pod();
        let plugin = InterPodAffinity::new(None).expect("plugin");
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
        assert_eq!(
            scores.iter().map(|s| s.score).collect::<Vec<_>>(),
            [10, 10, -5, 0]
        );
        plugin.normalize_score(&state, &pod, &mut scores);
        assert_eq!(
            scores.iter().map(|s| s.score).collect::<Vec<_>>(),
            [100, 100, 0, 33]
        );
    }

    /// Raw scores of `feasible` (names) with PreScore given `nodes` as the feasible set.
    fn raw_scores(
        pod: &Pod,
        snapshot: &Snapshot,
        nodes: &[Arc<NodeInfo>],
        feasible: &[&str],
    ) -> Vec<i64> {
        let plugin = InterPodAffinity::new(None).expect("plugin");
        let mut state = CycleState::new();
        let status = plugin.pre_score(&mut state, pod, nodes, snapshot);
        feasible
            .iter()
            .map(|name| {
                let node = snapshot.get(name).expect("node");
                if status.is_skip() {
                    0
                } else {
                    plugin.score(&state, pod, node).0
                }
            })
            .collect()
    }

    #[test]
    fn pre_score_visits_only_feasible_domains_with_the_same_scores() {
        let nodes = vec![
            make_node("a1").label("zone", "a").node(),
            make_node("a2").label("zone", "a").node(),
            make_node("b1").label("zone", "b").node(),
            make_node("b2").label("zone", "b").node(),
            make_node("c1").label("zone", "c").node(),
            make_node("nozone").node(),
        ];
        let existing = vec![
            make_pod("web").label("app", "web").node("a1").pod(),
            make_pod("db")
                .label("app", "db")
                .node("b1")
                .preferred_pod_anti_affinity(7, "zone", &[("app", "web")])
                .pod(),
            make_pod("cache")
                .node("c1")
                .pod_affinity("kubernetes.io/hostname", &[("app", "web")])
                .pod(),
            make_pod("web2")
                .label("app", "web")
                .node("b2")
                .preferred_pod_affinity(3, "kubernetes.io/hostname", &[("app", "web")])
                .pod(),
            make_pod("db2").label("app", "db").node("nozone").pod(),
        ];
        let snapshot = Snapshot::from_objects(nodes, existing);
        let pods = [
            make_pod("p")
                .label("app", "web")
                .preferred_pod_affinity(10, "kubernetes.io/hostname", &[("app", "web")])
                .preferred_pod_anti_affinity(5, "zone", &[("app", "db")])
                .pod(),
            // No terms of its own: only existing pods' terms count.
            make_pod("q").label("app", "web").pod(),
        ];
        let subsets: [&[&str]; 4] = [
            &["a2", "b2"],
            &["a1", "c1", "nozone"],
            &["b1"],
            &["a1", "a2", "b1", "b2", "c1", "nozone"],
        ];
        for pod in &pods {
            for feasible in subsets {
                let nodes: Vec<Arc<NodeInfo>> = feasible
                    .iter()
                    .map(|n| snapshot.get(n).expect("node").clone())
                    .collect();
                // Every node as the feasible set visits every node: upstream's full scan.
                assert_eq!(
                    raw_scores(pod, &snapshot, &nodes, feasible),
                    raw_scores(pod, &snapshot, &snapshot.nodes, feasible),
                    "{:?} on {feasible:?}",
                    pod.metadata.name
                );
            }
        }
        // The figures themselves, for p on every node: a1 has web (+10 by hostname); zone b
        // has db (-5), db's anti-affinity against web (-7) and web2 (+10 own, +3 web2's term on
        // b2); c1 has cache's required affinity (+1).
        let all = ["a1", "a2", "b1", "b2", "c1", "nozone"];
        assert_eq!(
            raw_scores(&pods[0], &snapshot, &snapshot.nodes, &all),
            [10, 0, -12, 1, 1, 0]
        );
    }

    /// Upstream's `TestPreferredAffinity` cases (interpodaffinity/scoring_test.go), normalized.
    #[test]
    fn upstream_preferred_affinity_cases() {
        use serde_json::{json, Value};
        let selector = |expressions: Value| json!({"matchExpressions": expressions});
        let security_in = |values: &[&str]| {
            selector(json!([{"key": "security", "operator": "In", "values": values}]))
        };
        let weighted = |weight: i32, label_selector: Value, key: &str| json!({"weight": weight, "podAffinityTerm": {"labelSelector": label_selector, "topologyKey": key}});
        let stay_with = |weight: i32, security: &str| {
            json!({"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                weighted(weight, security_in(&[security]), "region")]}})
        };
        let away_from = |security: &str| {
            json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                weighted(5, security_in(&[security]), "az")]}})
        };
        let s1_exists = || {
            selector(json!([{"key": "security", "operator": "Exists"},
                            {"key": "wrongkey", "operator": "DoesNotExist"}]))
        };
        let affinity3 = json!({"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            weighted(8, selector(json!([
                {"key": "security", "operator": "NotIn", "values": ["S1"]},
                {"key": "security", "operator": "In", "values": ["S2"]}])), "region"),
            weighted(2, s1_exists(), "region")]}});
        let hard = json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": security_in(&["S1", "value2"]), "topologyKey": "region"},
            {"labelSelector": s1_exists(), "topologyKey": "region"}]}});
        let both = json!({
            "podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                weighted(8, security_in(&["S1"]), "region")]},
            "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                weighted(5, security_in(&["S2"]), "az")]}});
        let pod = |node: &str, security: Option<&str>, affinity: Option<&Value>| -> Pod {
            let mut value = json!({
                "metadata": {"name": format!("p-{node}"), "namespace": "default"},
                "spec": {"containers": []}});
            if let Some(security) = security {
                value["metadata"]["labels"] = json!({"security": security});
            }
            if !node.is_empty() {
                value["spec"]["nodeName"] = json!(node);
            }
            if let Some(affinity) = affinity {
                value["spec"]["affinity"] = affinity.clone();
            }
            serde_json::from_value(value).expect("pod")
        };
        // Existing pods get distinct names.
        let on = |pods: Vec<Pod>| -> Vec<Pod> {
            pods.into_iter()
                .enumerate()
                .map(|(i, mut p)| {
                    p.metadata.name = Some(format!("e{i}"));
                    p
                })
                .collect()
        };
        let node = |name: &str, labels: &[(&str, &str)]| {
            let mut builder = make_node(name);
            for (k, v) in labels {
                builder = builder.label(k, v);
            }
            builder.node()
        };
        let china = [("region", "China")];
        let india = [("region", "India")];
        let az1 = [("az", "az1")];
        let az2 = [("az", "az2")];
        let china_az1 = [("region", "China"), ("az", "az1")];
        type Case = (
            &'static str,
            Pod,
            Vec<Pod>,
            Vec<k8s_openapi::api::core::v1::Node>,
            Vec<i64>,
        );
        let cases: Vec<Case> = vec![
            (
                "affinity: the node matching the topology key and the pods scores high",
                pod("", Some("S1"), Some(&stay_with(5, "S1"))),
                on(vec![
                    pod("node1", Some("S1"), None),
                    pod("node2", Some("S2"), None),
                    pod("node3", Some("S1"), None),
                ]),
                vec![
                    node("node1", &china),
                    node("node2", &india),
                    node("node3", &az1),
                ],
                vec![100, 0, 0],
            ),
            (
                "affinity: every node of the matching domain scores the same",
                pod("", None, Some(&stay_with(5, "S1"))),
                on(vec![pod("node1", Some("S1"), None)]),
                vec![
                    node("node1", &china),
                    node("node2", &china_az1),
                    node("node3", &india),
                ],
                vec![100, 100, 0],
            ),
            (
                "affinity: the region with more matching pods scores high",
                pod("", Some("S1"), Some(&stay_with(6, "S2"))),
                on(["node1", "node1", "node2", "node3", "node4", "node5"]
                    .iter()
                    .map(|n| pod(n, Some("S2"), None))
                    .collect()),
                vec![
                    node("node1", &china),
                    node("node2", &india),
                    node("node3", &china),
                    node("node4", &china),
                    node("node5", &india),
                ],
                vec![100, 0, 100, 100, 0],
            ),
            (
                "affinity: different operators, some not matching",
                pod("", Some("S1"), Some(&affinity3)),
                on(vec![
                    pod("node1", Some("S1"), None),
                    pod("node2", Some("S2"), None),
                    pod("node3", Some("S1"), None),
                ]),
                vec![
                    node("node1", &china),
                    node("node2", &india),
                    node("node3", &az1),
                ],
                vec![20, 100, 0],
            ),
            (
                "affinity symmetry: existing pods' preferred terms",
                pod("", Some("S2"), None),
                on(vec![
                    pod("node1", Some("S1"), Some(&stay_with(5, "S1"))),
                    pod("node2", Some("S2"), Some(&stay_with(6, "S2"))),
                ]),
                vec![
                    node("node1", &china),
                    node("node2", &india),
                    node("node3", &az1),
                ],
                vec![0, 100, 0],
            ),
            (
                "affinity symmetry: existing pods' required terms",
                pod("", Some("S1"), None),
                on(vec![
                    pod("node1", Some("S1"), Some(&hard)),
                    pod("node2", Some("S2"), Some(&hard)),
                ]),
                vec![
                    node("node1", &china),
                    node("node2", &india),
                    node("node3", &az1),
                ],
                vec![100, 100, 0],
            ),
            (
                "anti-affinity: a node without matching pods scores high",
                pod("", Some("S1"), Some(&away_from("S1"))),
                on(vec![
                    pod("node1", Some("S1"), None),
                    pod("node2", Some("S2"), None),
                ]),
                vec![node("node1", &az1), node("node2", &china)],
                vec![0, 100],
            ),
            (
                "anti-affinity: a node without the topology key scores high",
                pod("", Some("S1"), Some(&away_from("S1"))),
                on(vec![
                    pod("node1", Some("S1"), None),
                    pod("node2", Some("S1"), None),
                ]),
                vec![node("node1", &az1), node("node2", &china)],
                vec![0, 100],
            ),
            (
                "anti-affinity symmetry",
                pod("", Some("S2"), None),
                on(vec![
                    pod("node1", Some("S1"), Some(&away_from("S2"))),
                    pod("node2", Some("S2"), Some(&away_from("S1"))),
                ]),
                vec![node("node1", &az1), node("node2", &az2)],
                vec![0, 100],
            ),
            (
                "affinity and anti-affinity",
                pod("", Some("S1"), Some(&both)),
                on(vec![
                    pod("node1", Some("S1"), None),
                    pod("node2", Some("S1"), None),
                ]),
                vec![node("node1", &china), node("node2", &az1)],
                vec![100, 0],
            ),
            (
                "affinity and anti-affinity, pods of one service",
                pod("", Some("S1"), Some(&both)),
                on([
                    "node1", "node1", "node2", "node3", "node3", "node4", "node5",
                ]
                .iter()
                .map(|n| pod(n, Some("S1"), None))
                .collect()),
                vec![
                    node("node1", &china_az1),
                    node("node2", &india),
                    node("node3", &china),
                    node("node4", &china),
                    node("node5", &india),
                ],
                vec![100, 0, 100, 100, 0],
            ),
            (
                "affinity, anti-affinity and symmetry together",
                pod("", Some("S1"), Some(&both)),
                on(vec![
                    pod("node1", Some("S1"), None),
                    pod("node2", Some("S2"), None),
                    pod("node3", None, Some(&both)),
                    pod("node4", None, Some(&away_from("S1"))),
                ]),
                vec![
                    node("node1", &china),
                    node("node2", &az1),
                    node("node3", &india),
                    node("node4", &az2),
                ],
                vec![100, 0, 100, 0],
            ),
            (
                "nodes of one domain without pods with affinity (upstream #82796)",
                pod("", Some("S1"), None),
                on(vec![
                    pod("node1", Some("S1"), None),
                    pod("node2", None, Some(&both)),
                ]),
                vec![node("node1", &china), node("node2", &china)],
                vec![0, 0],
            ),
        ];
        let plugin = InterPodAffinity::new(None).expect("plugin");
        for (name, pod, pods, nodes, want) in cases {
            let snapshot = Snapshot::from_objects(nodes, pods);
            let mut state = CycleState::new();
            let status = plugin.pre_score(&mut state, &pod, &snapshot.nodes, &snapshot);
            let mut scores: Vec<NodeScore> = snapshot
                .nodes
                .iter()
                .map(|n| NodeScore {
                    name: n.name.clone(),
                    score: if status.is_skip() {
                        0
                    } else {
                        plugin.score(&state, &pod, n).0
                    },
                })
                .collect();
            if !status.is_skip() {
                plugin.normalize_score(&state, &pod, &mut scores);
            }
            let got: Vec<i64> = scores.iter().map(|s| s.score).collect();
            assert_eq!(got, want, "{name}");
        }
        // A pod without affinity in a cluster without affinity terms: Skip.
        let snapshot = Snapshot::from_objects(vec![node("node1", &china)], vec![]);
        let mut state = CycleState::new();
        assert!(plugin
            .pre_score(
                &mut state,
                &pod("", Some("S1"), None),
                &snapshot.nodes,
                &snapshot
            )
            .is_skip());
    }
}
