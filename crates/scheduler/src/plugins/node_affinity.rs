//! NodeAffinity: `spec.nodeSelector` and required node affinity terms filter nodes (terms ORed,
//! expressions within a term ANDed; operators In, NotIn, Exists, DoesNotExist, Gt, Lt; fields
//! `metadata.name`); preferred terms add their weight to the score. The `addedAffinity` arg is
//! applied to every pod of the profile, as upstream.

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, NodeSelectorTerm, Pod, PreferredSchedulingTerm};
use serde::Deserialize;

use crate::cache::{NodeInfo, Snapshot};
use crate::config::ConfigError;
use crate::framework::{
    ClusterEvent, CycleState, Filter, NodeScore, Plugin, PreFilter, PreFilterResult, PreScore,
    Score, Status,
};
use crate::plugins::{
    default_normalize_score, node_selector_term_matches, node_selector_terms_match, parse_args,
};

/// The plugin's name.
pub const NAME: &str = "NodeAffinity";
/// The reason when the pod's selector or required affinity does not match.
pub const ERR_REASON_POD: &str = "node(s) didn't match Pod's node affinity/selector";
/// The reason when the profile's added affinity does not match.
pub const ERR_REASON_ENFORCED: &str = "node(s) didn't match scheduler-enforced node affinity";

/// `NodeAffinityArgs`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Args {
    /// Affinity added to every pod of the profile.
    #[serde(default)]
    pub added_affinity: Option<k8s_openapi::api::core::v1::NodeAffinity>,
}

/// The NodeAffinity plugin.
pub struct NodeAffinity {
    added_required: Option<Vec<NodeSelectorTerm>>,
    added_preferred: Vec<PreferredSchedulingTerm>,
}

impl NodeAffinity {
    /// Builds the plugin from its args.
    pub fn new(args: Option<&serde_json::Value>) -> Result<NodeAffinity, ConfigError> {
        let args: Args = parse_args(NAME, args)?;
        let added = args.added_affinity.unwrap_or_default();
        Ok(NodeAffinity {
            added_required: added
                .required_during_scheduling_ignored_during_execution
                .map(|s| s.node_selector_terms),
            added_preferred: added
                .preferred_during_scheduling_ignored_during_execution
                .unwrap_or_default(),
        })
    }
}

fn required_terms(pod: &Pod) -> Option<&[NodeSelectorTerm]> {
    pod.spec
        .as_ref()?
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .map(|s| s.node_selector_terms.as_slice())
}

fn preferred_terms(pod: &Pod) -> &[PreferredSchedulingTerm] {
    (|| {
        pod.spec
            .as_ref()?
            .affinity
            .as_ref()?
            .node_affinity
            .as_ref()?
            .preferred_during_scheduling_ignored_during_execution
            .as_deref()
    })()
    .unwrap_or_default()
}

/// Whether `node` satisfies the pod's `nodeSelector` and required node affinity.
pub fn pod_matches_node_selector_and_affinity(pod: &Pod, node: &Node) -> bool {
    let empty = Default::default();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let selector_ok = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_selector.as_ref())
        .is_none_or(|selector| selector.iter().all(|(k, v)| labels.get(k) == Some(v)));
    selector_ok && required_terms(pod).is_none_or(|terms| node_selector_terms_match(terms, node))
}

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events(&self) -> Vec<ClusterEvent> {
        vec![ClusterEvent::NodeAdd, ClusterEvent::NodeLabelChange]
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

impl PreFilter for NodeAffinity {
    fn pre_filter(
        &self,
        _state: &mut CycleState,
        pod: &Pod,
        _: &Snapshot,
    ) -> (Option<PreFilterResult>, Status) {
        let has_selector = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_selector.as_ref())
            .is_some_and(|s| !s.is_empty());
        let Some(terms) = required_terms(pod) else {
            if !has_selector && self.added_required.is_none() {
                return (None, Status::skip());
            }
            return (None, Status::success());
        };
        // If every term pins metadata.name, only those nodes are worth filtering.
        let mut names = HashSet::new();
        for term in terms {
            let pinned = term
                .match_fields
                .iter()
                .flatten()
                .find(|f| f.key == "metadata.name" && f.operator == "In")
                .map(|f| f.values.clone().unwrap_or_default());
            match pinned {
                Some(values) => names.extend(values),
                None => return (None, Status::success()),
            }
        }
        if names.is_empty() {
            return (None, Status::unresolvable(ERR_REASON_POD));
        }
        (
            Some(PreFilterResult {
                node_names: Some(names),
            }),
            Status::success(),
        )
    }
}

impl Filter for NodeAffinity {
    fn filter(&self, _state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let Some(n) = node.node.as_ref() else {
            return Status::unresolvable("node not found");
        };
        if let Some(terms) = &self.added_required {
            if !node_selector_terms_match(terms, n) {
                return Status::unresolvable(ERR_REASON_ENFORCED);
            }
        }
        if pod_matches_node_selector_and_affinity(pod, n) {
            Status::success()
        } else {
            Status::unresolvable(ERR_REASON_POD)
        }
    }
}

const SCORE_KEY: &str = "PreScoreNodeAffinity";

impl PreScore for NodeAffinity {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        _nodes: &[Arc<NodeInfo>],
        _: &Snapshot,
    ) -> Status {
        let terms: Vec<PreferredSchedulingTerm> = preferred_terms(pod)
            .iter()
            .chain(self.added_preferred.iter())
            .cloned()
            .collect();
        if terms.is_empty() {
            return Status::skip();
        }
        state.write(SCORE_KEY, terms);
        Status::success()
    }
}

impl Score for NodeAffinity {
    fn score(&self, state: &CycleState, _pod: &Pod, node: &NodeInfo) -> (i64, Status) {
        let Some(n) = node.node.as_ref() else {
            return (0, Status::error("node not found"));
        };
        let terms = state
            .read::<Vec<PreferredSchedulingTerm>>(SCORE_KEY)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let score = terms
            .iter()
            .filter(|t| t.weight != 0 && node_selector_term_matches(&t.preference, n))
            .map(|t| i64::from(t.weight))
            .sum();
        (score, Status::success())
    }

    fn normalize_score(&self, _state: &CycleState, _pod: &Pod, scores: &mut [NodeScore]) -> Status {
        default_normalize_score(scores, false);
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{make_node, make_pod};

    fn run_filter(plugin: &NodeAffinity, pod: &Pod, node: Node) -> Status {
        let mut state = CycleState::new();
        let (_, status) = plugin.pre_filter(&mut state, pod, &Snapshot::default());
        if status.is_skip() {
            return Status::success();
        }
        plugin.filter(&state, pod, &NodeInfo::with_pods(node, []))
    }

    #[test]
    fn filter() {
        let plugin = NodeAffinity::new(None).expect("plugin");
        let node = || make_node("n1").label("zone", "a").label("cores", "8");
        let cases = [
            (make_pod("p"), true),
            (make_pod("p").node_selector("zone", "a"), true),
            (make_pod("p").node_selector("zone", "b"), false),
            (make_pod("p").node_affinity("zone", "In", &["a", "b"]), true),
            (make_pod("p").node_affinity("zone", "NotIn", &["a"]), false),
            (
                make_pod("p").node_affinity("gpu", "DoesNotExist", &[]),
                true,
            ),
            (make_pod("p").node_affinity("cores", "Gt", &["4"]), true),
            (make_pod("p").node_affinity("cores", "Lt", &["4"]), false),
            // Terms are ORed.
            (
                make_pod("p")
                    .node_affinity("zone", "In", &["b"])
                    .node_affinity("zone", "In", &["a"]),
                true,
            ),
            // nodeSelector and affinity are ANDed.
            (
                make_pod("p")
                    .node_selector("zone", "b")
                    .node_affinity("zone", "In", &["a"]),
                false,
            ),
            (make_pod("p").node_affinity_field("In", &["n1"]), true),
            (make_pod("p").node_affinity_field("In", &["n2"]), false),
            (make_pod("p").node_affinity_field("NotIn", &["n1"]), false),
        ];
        for (i, (pod, ok)) in cases.into_iter().enumerate() {
            let status = run_filter(&plugin, &pod.pod(), node().node());
            assert_eq!(status.is_success(), ok, "case {i}: {status:?}");
            if !ok {
                assert_eq!(status, Status::unresolvable(ERR_REASON_POD));
            }
        }
    }

    #[test]
    fn pre_filter_narrows_to_named_nodes() {
        let plugin = NodeAffinity::new(None).expect("plugin");
        let pod = make_pod("p").node_affinity_field("In", &["n1", "n2"]).pod();
        let (result, status) =
            plugin.pre_filter(&mut CycleState::new(), &pod, &Snapshot::default());
        assert!(status.is_success());
        let names = result.and_then(|r| r.node_names).expect("names");
        assert_eq!(
            names,
            ["n1".to_string(), "n2".to_string()].into_iter().collect()
        );
    }

    #[test]
    fn added_affinity_is_enforced() {
        let args = serde_json::json!({"addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["batch"]}]}]}}});
        let plugin = NodeAffinity::new(Some(&args)).expect("plugin");
        let status = run_filter(&plugin, &make_pod("p").pod(), make_node("n").node());
        assert_eq!(status, Status::unresolvable(ERR_REASON_ENFORCED));
        assert!(run_filter(
            &plugin,
            &make_pod("p").pod(),
            make_node("n").label("pool", "batch").node()
        )
        .is_success());
    }

    #[test]
    fn score_sums_matching_preferred_weights() {
        let plugin = NodeAffinity::new(None).expect("plugin");
        let pod = make_pod("p")
            .preferred_node_affinity(10, "zone", "In", &["a"])
            .preferred_node_affinity(30, "disk", "In", &["ssd"])
            .pod();
        let nodes = [
            make_node("none").node(),
            make_node("zone").label("zone", "a").node(),
            make_node("both")
                .label("zone", "a")
                .label("disk", "ssd")
                .node(),
        ];
        let mut state = CycleState::new();
        assert!(plugin
            .pre_score(&mut state, &pod, &[], &Snapshot::default())
            .is_success());
        let mut scores: Vec<NodeScore> = nodes
            .into_iter()
            .map(|n| {
                let info = NodeInfo::with_pods(n, []);
                NodeScore {
                    name: info.name.clone(),
                    score: plugin.score(&state, &pod, &info).0,
                }
            })
            .collect();
        assert_eq!(
            scores.iter().map(|s| s.score).collect::<Vec<_>>(),
            [0, 10, 40]
        );
        plugin.normalize_score(&state, &pod, &mut scores);
        assert_eq!(
            scores.iter().map(|s| s.score).collect::<Vec<_>>(),
            [0, 25, 100]
        );
    }

    /// Upstream's `TestNodeAffinityPriority` cases (node_affinity_test.go), normalized.
    #[test]
    fn upstream_priority_cases() {
        let node = |name: &str, labels: &[(&str, &str)]| {
            let mut builder = make_node(name);
            for (k, v) in labels {
                builder = builder.label(k, v);
            }
            builder.node()
        };
        let label1 = [("foo", "bar")];
        let label2 = [("key", "value")];
        let label3 = [("az", "az1")];
        let label4 = [("abc", "az11"), ("def", "az22")];
        let label5 = [("foo", "bar"), ("key", "value"), ("az", "az1")];
        let term = |weight: i32, requirements: serde_json::Value| serde_json::json!({"weight": weight, "preference": {"matchExpressions": requirements}});
        let is = |key: &str, value: &str| serde_json::json!({"key": key, "operator": "In", "values": [value]});
        let affinity1 = serde_json::json!([term(2, serde_json::json!([is("foo", "bar")]))]);
        let affinity2 = serde_json::json!([
            term(2, serde_json::json!([is("foo", "bar")])),
            term(4, serde_json::json!([is("key", "value")])),
            term(
                5,
                serde_json::json!([is("foo", "bar"), is("key", "value"), is("az", "az1")])
            ),
        ]);
        let pod = |preferred: Option<&serde_json::Value>| {
            let mut pod = make_pod("p").pod();
            if let (Some(spec), Some(preferred)) = (pod.spec.as_mut(), preferred) {
                spec.affinity = Some(
                    serde_json::from_value(serde_json::json!({"nodeAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": preferred}}))
                    .expect("affinity"),
                );
            }
            pod
        };
        let added = |preferred: &serde_json::Value| {
            serde_json::json!({"addedAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": preferred}})
        };
        type Case<'a> = (
            &'a str,
            Pod,
            Vec<Node>,
            Option<serde_json::Value>,
            Option<Vec<i64>>,
        );
        let cases: Vec<Case> = vec![
            (
                "no preferred terms: PreScore skips",
                pod(None),
                vec![node("node1", &label1)],
                None,
                None,
            ),
            (
                "no node matches the preferred terms: all score zero",
                pod(Some(&affinity1)),
                vec![
                    node("node1", &label4),
                    node("node2", &label2),
                    node("node3", &label3),
                ],
                None,
                Some(vec![0, 0, 0]),
            ),
            (
                "only node1 matches the preferred terms",
                pod(Some(&affinity1)),
                vec![
                    node("node1", &label1),
                    node("node2", &label2),
                    node("node3", &label3),
                ],
                None,
                Some(vec![100, 0, 0]),
            ),
            (
                "all nodes match, with different priorities",
                pod(Some(&affinity2)),
                vec![
                    node("node1", &label1),
                    node("node5", &label5),
                    node("node2", &label2),
                ],
                None,
                Some(vec![18, 100, 36]),
            ),
            (
                "added affinity",
                pod(None),
                vec![node("node1", &label1), node("node2", &label2)],
                Some(added(&affinity1)),
                Some(vec![100, 0]),
            ),
            (
                "added affinity and the pod's own",
                pod(Some(&affinity1)),
                vec![
                    node("node1", &label1),
                    node("node2", &label2),
                    node("node3", &label5),
                ],
                Some(added(&serde_json::json!([term(
                    3,
                    serde_json::json!([is("key", "value")])
                )]))),
                Some(vec![40, 60, 100]),
            ),
        ];
        for (name, pod, nodes, args, want) in cases {
            let plugin = NodeAffinity::new(args.as_ref()).expect("plugin");
            let infos: Vec<Arc<NodeInfo>> = nodes
                .into_iter()
                .map(|n| Arc::new(NodeInfo::with_pods(n, [])))
                .collect();
            let mut state = CycleState::new();
            let status = plugin.pre_score(&mut state, &pod, &infos, &Snapshot::default());
            let Some(want) = want else {
                assert!(status.is_skip(), "{name}");
                continue;
            };
            let mut scores: Vec<NodeScore> = infos
                .iter()
                .map(|info| NodeScore {
                    name: info.name.clone(),
                    score: plugin.score(&state, &pod, info).0,
                })
                .collect();
            plugin.normalize_score(&state, &pod, &mut scores);
            let got: Vec<i64> = scores.iter().map(|s| s.score).collect();
            assert_eq!(got, want, "{name}");
        }
    }
}
