//! NodeUnschedulable: a cordoned node (`spec.unschedulable`) takes only pods tolerating the
//! `node.kubernetes.io/unschedulable:NoSchedule` taint.

use k8s_openapi::api::core::v1::{Pod, Taint};

use crate::cache::NodeInfo;
use crate::framework::{ClusterEvent, CycleState, Filter, Plugin, Status};
use crate::plugins::tolerated;

/// The plugin's name.
pub const NAME: &str = "NodeUnschedulable";
/// The reason for a cordoned node.
pub const ERR_REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
/// The taint a cordoned node is treated as having.
pub const TAINT_NODE_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// The NodeUnschedulable plugin.
pub struct NodeUnschedulable;

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events(&self) -> Vec<ClusterEvent> {
        vec![
            ClusterEvent::NodeAdd,
            ClusterEvent::NodeUnschedulableChange,
            ClusterEvent::NodeTaintChange,
        ]
    }
    fn as_filter(&self) -> Option<&dyn Filter> {
        Some(self)
    }
}

impl Filter for NodeUnschedulable {
    fn filter(&self, _state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let Some(n) = node.node.as_ref() else {
            return Status::unresolvable("node not found");
        };
        if !n
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false)
        {
            return Status::success();
        }
        let taint = Taint {
            key: TAINT_NODE_UNSCHEDULABLE.into(),
            effect: "NoSchedule".into(),
            value: None,
            time_added: None,
        };
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or_default();
        if tolerated(tolerations, &taint) {
            Status::success()
        } else {
            Status::unresolvable(ERR_REASON_UNSCHEDULABLE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{make_node, make_pod};

    #[test]
    fn cordoned_nodes() {
        let cases = [
            (make_pod("p"), make_node("n"), true),
            (make_pod("p"), make_node("n").unschedulable(), false),
            (
                make_pod("p").toleration(TAINT_NODE_UNSCHEDULABLE, "Exists", "", "NoSchedule"),
                make_node("n").unschedulable(),
                true,
            ),
        ];
        for (i, (pod, node, ok)) in cases.into_iter().enumerate() {
            let status = NodeUnschedulable.filter(
                &CycleState::new(),
                &pod.pod(),
                &NodeInfo::with_pods(node.node(), []),
            );
            assert_eq!(status.is_success(), ok, "case {i}");
            if !ok {
                assert_eq!(status, Status::unresolvable(ERR_REASON_UNSCHEDULABLE));
            }
        }
    }
}
