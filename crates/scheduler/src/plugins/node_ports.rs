//! NodePorts: a pod asking for host ports fits only where they are free. `0.0.0.0` conflicts
//! with every IP of the same protocol and port.

use k8s_openapi::api::core::v1::Pod;

use crate::cache::{pod_host_ports, HostPort, NodeInfo};
use crate::framework::{
    ClusterEvent, CycleState, Filter, Plugin, PreFilter, PreFilterResult, Status,
};

/// The plugin's name.
pub const NAME: &str = "NodePorts";
/// The reason for a conflict.
pub const ERR_REASON: &str = "node(s) didn't have free ports for the requested pod ports";
const STATE_KEY: &str = "PreFilterNodePorts";

/// The NodePorts plugin.
pub struct NodePorts;

impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events(&self) -> Vec<ClusterEvent> {
        vec![ClusterEvent::NodeAdd, ClusterEvent::AssignedPodDelete]
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilter> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn Filter> {
        Some(self)
    }
}

fn conflicts(used: &HostPort, wanted: &HostPort) -> bool {
    used.port == wanted.port
        && used.protocol == wanted.protocol
        && (used.ip == wanted.ip || used.ip == "0.0.0.0" || wanted.ip == "0.0.0.0")
}

impl PreFilter for NodePorts {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        _: &crate::cache::Snapshot,
    ) -> (Option<PreFilterResult>, Status) {
        let ports = pod_host_ports(pod);
        if ports.is_empty() {
            return (None, Status::skip());
        }
        state.write(STATE_KEY, ports);
        (None, Status::success())
    }
}

impl Filter for NodePorts {
    fn filter(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let computed;
        let wanted = match state.read::<Vec<HostPort>>(STATE_KEY) {
            Some(ports) => ports,
            None => {
                computed = pod_host_ports(pod);
                &computed
            }
        };
        if wanted
            .iter()
            .any(|w| node.used_ports.iter().any(|u| conflicts(u, w)))
        {
            Status::unschedulable(ERR_REASON)
        } else {
            Status::success()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{make_node, make_pod};

    #[test]
    fn host_ports() {
        let existing =
            |proto: &str, ip: &str, port| make_pod("e").node("n").host_port(proto, ip, port).pod();
        let cases = [
            (make_pod("p").host_port("TCP", "", 80), vec![], true),
            (
                make_pod("p").host_port("TCP", "", 80),
                vec![existing("TCP", "", 80)],
                false,
            ),
            (
                make_pod("p").host_port("UDP", "", 80),
                vec![existing("TCP", "", 80)],
                true,
            ),
            (
                make_pod("p").host_port("TCP", "10.0.0.1", 80),
                vec![existing("TCP", "10.0.0.2", 80)],
                true,
            ),
            (
                make_pod("p").host_port("TCP", "10.0.0.1", 80),
                vec![existing("TCP", "", 80)],
                false,
            ),
            (
                make_pod("p").host_port("TCP", "", 81),
                vec![existing("TCP", "", 80)],
                true,
            ),
        ];
        for (i, (pod, pods, ok)) in cases.into_iter().enumerate() {
            let pod = pod.pod();
            let node = NodeInfo::with_pods(make_node("n").node(), pods);
            let mut state = CycleState::new();
            NodePorts.pre_filter(&mut state, &pod, &Default::default());
            let status = NodePorts.filter(&state, &pod, &node);
            assert_eq!(status.is_success(), ok, "case {i}");
            if !ok {
                assert_eq!(status.message(), ERR_REASON);
            }
        }
    }
}
