//! NodeName: a pod that names a node in `spec.nodeName` fits only there.

use k8s_openapi::api::core::v1::Pod;

use crate::cache::NodeInfo;
use crate::framework::{ClusterEvent, CycleState, Filter, Plugin, Status};

/// The plugin's name.
pub const NAME: &str = "NodeName";
/// The reason for another node.
pub const ERR_REASON: &str = "node(s) didn't match the requested node name";

/// The NodeName plugin.
pub struct NodeName;

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events(&self) -> Vec<ClusterEvent> {
        vec![ClusterEvent::NodeAdd]
    }
    fn as_filter(&self) -> Option<&dyn Filter> {
        Some(self)
    }
}

impl Filter for NodeName {
    fn filter(&self, _state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        match pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .filter(|n| !n.is_empty())
        {
            Some(wanted) if wanted != node.name => Status::unresolvable(ERR_REASON),
            _ => Status::success(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{make_node, make_pod};

    #[test]
    fn node_name() {
        let node = NodeInfo::with_pods(make_node("n1").node(), []);
        for (pod, ok) in [
            (make_pod("p"), true),
            (make_pod("p").node("n1"), true),
            (make_pod("p").node("n2"), false),
        ] {
            assert_eq!(
                NodeName
                    .filter(&CycleState::new(), &pod.pod(), &node)
                    .is_success(),
                ok
            );
        }
    }
}
