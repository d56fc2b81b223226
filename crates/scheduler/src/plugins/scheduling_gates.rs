//! SchedulingGates: a pod with `spec.schedulingGates` stays out of activeQ until every gate is
//! removed (an update of the pod, which the queue re-checks).

use k8s_openapi::api::core::v1::Pod;

use crate::framework::{Plugin, PreEnqueue, Status};

/// The plugin's name.
pub const NAME: &str = "SchedulingGates";

/// The SchedulingGates plugin.
pub struct SchedulingGates;

impl Plugin for SchedulingGates {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_pre_enqueue(&self) -> Option<&dyn PreEnqueue> {
        Some(self)
    }
}

impl PreEnqueue for SchedulingGates {
    fn pre_enqueue(&self, pod: &Pod) -> Status {
        let gates: Vec<&str> = pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduling_gates.as_ref())
            .into_iter()
            .flatten()
            .map(|g| g.name.as_str())
            .collect();
        if gates.is_empty() {
            return Status::success();
        }
        Status::unresolvable(format!(
            "waiting for scheduling gates: [{}]",
            gates.join(" ")
        ))
        .with_plugin(NAME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::make_pod;

    #[test]
    fn gates() {
        assert!(SchedulingGates
            .pre_enqueue(&make_pod("p").pod())
            .is_success());
        let status = SchedulingGates.pre_enqueue(
            &make_pod("p")
                .scheduling_gate("a")
                .scheduling_gate("b")
                .pod(),
        );
        assert_eq!(status.message(), "waiting for scheduling gates: [a b]");
        assert!(status.is_rejected());
    }
}
