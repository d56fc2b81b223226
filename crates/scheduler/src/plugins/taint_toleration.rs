//! TaintToleration: a node's NoSchedule and NoExecute taints keep out pods that do not tolerate
//! them; untolerated PreferNoSchedule taints lower the node's score (fewer is better).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Toleration};

use crate::cache::{NodeInfo, Snapshot};
use crate::framework::{
    ClusterEvent, CycleState, Filter, NodeScore, Plugin, PreScore, Score, Status,
};
use crate::plugins::{default_normalize_score, node_taints, tolerated};

/// The plugin's name.
pub const NAME: &str = "TaintToleration";
const STATE_KEY: &str = "PreScoreTaintToleration";

/// The TaintToleration plugin.
pub struct TaintToleration;

fn tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default()
}

/// The FailedScheduling reason for an untolerated taint, `{key: value}` as upstream prints it.
pub fn untolerated_reason(key: &str, value: &str) -> String {
    format!("node(s) had untolerated taint {{{key}: {value}}}")
}

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events(&self) -> Vec<ClusterEvent> {
        vec![ClusterEvent::NodeAdd, ClusterEvent::NodeTaintChange]
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

impl Filter for TaintToleration {
    fn filter(&self, _state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let Some(n) = node.node.as_ref() else {
            return Status::unresolvable("node not found");
        };
        let tolerations = tolerations(pod);
        let untolerated = node_taints(n)
            .iter()
            .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
            .find(|t| !tolerated(tolerations, t));
        match untolerated {
            None => Status::success(),
            Some(taint) => Status::unresolvable(untolerated_reason(
                &taint.key,
                taint.value.as_deref().unwrap_or(""),
            )),
        }
    }
}

impl PreScore for TaintToleration {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        _nodes: &[Arc<NodeInfo>],
        _: &Snapshot,
    ) -> Status {
        let prefer: Vec<Toleration> = tolerations(pod)
            .iter()
            .filter(|t| {
                t.effect
                    .as_deref()
                    .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
            })
            .cloned()
            .collect();
        state.write(STATE_KEY, prefer);
        Status::success()
    }
}

impl Score for TaintToleration {
    fn score(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> (i64, Status) {
        let Some(n) = node.node.as_ref() else {
            return (0, Status::error("node not found"));
        };
        let prefer = state
            .read::<Vec<Toleration>>(STATE_KEY)
            .map(Vec::as_slice)
            .unwrap_or_else(|| tolerations(pod));
        let count = node_taints(n)
            .iter()
            .filter(|t| t.effect == "PreferNoSchedule" && !tolerated(prefer, t))
            .count();
        (count as i64, Status::success())
    }

    fn normalize_score(&self, _state: &CycleState, _pod: &Pod, scores: &mut [NodeScore]) -> Status {
        default_normalize_score(scores, true);
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{make_node, make_pod};

    #[test]
    fn filter() {
        let cases = [
            (make_pod("p"), make_node("n"), None),
            (
                make_pod("p"),
                make_node("n").taint("dedicated", "gpu", "NoSchedule"),
                Some("node(s) had untolerated taint {dedicated: gpu}"),
            ),
            (
                make_pod("p"),
                make_node("n").taint("node-role.kubernetes.io/control-plane", "", "NoSchedule"),
                Some("node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"),
            ),
            (
                make_pod("p"),
                make_node("n").taint("k", "v", "NoExecute"),
                Some("node(s) had untolerated taint {k: v}"),
            ),
            (
                make_pod("p"),
                make_node("n").taint("k", "v", "PreferNoSchedule"),
                None,
            ),
            (
                make_pod("p").toleration("k", "Equal", "v", "NoSchedule"),
                make_node("n").taint("k", "v", "NoSchedule"),
                None,
            ),
            (
                make_pod("p").toleration("k", "Exists", "", ""),
                make_node("n").taint("k", "v", "NoExecute"),
                None,
            ),
            (
                make_pod("p").toleration("k", "Equal", "other", "NoSchedule"),
                make_node("n").taint("k", "v", "NoSchedule"),
                Some("node(s) had untolerated taint {k: v}"),
            ),
        ];
        for (i, (pod, node, want)) in cases.into_iter().enumerate() {
            let status = TaintToleration.filter(
                &CycleState::new(),
                &pod.pod(),
                &NodeInfo::with_pods(node.node(), []),
            );
            match want {
                None => assert!(status.is_success(), "case {i}: {status:?}"),
                Some(reason) => assert_eq!(status, Status::unresolvable(reason), "case {i}"),
            }
        }
    }

    #[test]
    fn score_prefers_fewer_untolerated_prefer_no_schedule_taints() {
        let pod = make_pod("p")
            .toleration("tolerated", "Exists", "", "PreferNoSchedule")
            .pod();
        let nodes = [
            make_node("clean").node(),
            make_node("one")
                .taint("a", "", "PreferNoSchedule")
                .taint("tolerated", "", "PreferNoSchedule")
                .node(),
            make_node("two")
                .taint("a", "", "PreferNoSchedule")
                .taint("b", "", "PreferNoSchedule")
                .node(),
        ];
        let mut state = CycleState::new();
        TaintToleration.pre_score(&mut state, &pod, &[], &Snapshot::default());
        let mut scores: Vec<NodeScore> = nodes
            .into_iter()
            .map(|n| {
                let info = NodeInfo::with_pods(n, []);
                NodeScore {
                    name: info.name.clone(),
                    score: TaintToleration.score(&state, &pod, &info).0,
                }
            })
            .collect();
        assert_eq!(
            scores.iter().map(|s| s.score).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        TaintToleration.normalize_score(&state, &pod, &mut scores);
        assert_eq!(
            scores.iter().map(|s| s.score).collect::<Vec<_>>(),
            [100, 50, 0]
        );
    }

    /// Upstream's `TestTaintTolerationScore` cases (taint_toleration_test.go), normalized.
    #[test]
    fn upstream_score_cases() {
        let node = |name: &str, taints: &[(&str, &str, &str)]| {
            let mut builder = make_node(name);
            for (key, value, effect) in taints {
                builder = builder.taint(key, value, effect);
            }
            builder.node()
        };
        let pod = |tolerations: &[(&str, &str, &str)]| {
            let mut builder = make_pod("pod1");
            for (key, value, effect) in tolerations {
                builder = builder.toleration(key, "Equal", value, effect);
            }
            builder.pod()
        };
        let prefer = "PreferNoSchedule";
        let cpu = ("cpu-type", "arm64", prefer);
        let disk = ("disk-type", "ssd", prefer);
        let cases = [
            (
                "a node whose taints the pod tolerates scores higher than one with untolerated taints",
                pod(&[("foo", "bar", prefer)]),
                vec![
                    node("nodeA", &[("foo", "bar", prefer)]),
                    node("nodeB", &[("foo", "blah", prefer)]),
                ],
                vec![100, 0],
            ),
            (
                "nodes whose taints are all tolerated score the same, however many there are",
                pod(&[cpu, disk]),
                vec![node("nodeA", &[]), node("nodeB", &[cpu]), node("nodeC", &[cpu, disk])],
                vec![100, 100, 100],
            ),
            (
                "the more untolerated taints a node has, the lower it scores",
                pod(&[("foo", "bar", prefer)]),
                vec![node("nodeA", &[]), node("nodeB", &[cpu]), node("nodeC", &[cpu, disk])],
                vec![100, 50, 0],
            ),
            (
                "only PreferNoSchedule taints and tolerations count",
                pod(&[("cpu-type", "arm64", "NoSchedule"), ("disk-type", "ssd", "NoSchedule")]),
                vec![
                    node("nodeA", &[]),
                    node("nodeB", &[("cpu-type", "arm64", "NoSchedule")]),
                    node("nodeC", &[cpu, disk]),
                ],
                vec![100, 100, 0],
            ),
            (
                "without tolerations, the node without taints wins",
                pod(&[]),
                vec![node("nodeA", &[]), node("nodeB", &[cpu])],
                vec![100, 0],
            ),
        ];
        for (name, pod, nodes, want) in cases {
            let mut state = CycleState::new();
            TaintToleration.pre_score(&mut state, &pod, &[], &Snapshot::default());
            let mut scores: Vec<NodeScore> = nodes
                .into_iter()
                .map(|n| {
                    let info = NodeInfo::with_pods(n, []);
                    NodeScore {
                        name: info.name.clone(),
                        score: TaintToleration.score(&state, &pod, &info).0,
                    }
                })
                .collect();
            TaintToleration.normalize_score(&state, &pod, &mut scores);
            let got: Vec<i64> = scores.iter().map(|s| s.score).collect();
            assert_eq!(got, want, "{name}");
        }
    }
}
