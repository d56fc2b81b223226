//! Admission under pressure (upstream's eviction manager `Admit`, a
//! `lifecycle.PodAdmitHandler`): with no pressure every pod is admitted; critical pods always
//! are; under memory pressure alone, pods that are not BestEffort, and BestEffort pods that
//! tolerate the `node.kubernetes.io/memory-pressure` taint; any other pressure refuses the rest.
//! A refused pod is failed with reason `Evicted` and `The node had condition: [...]. `.

use std::collections::BTreeSet;

use ferry_api::qos::{pod_qos_class, QosClass};
use k8s_openapi::api::core::v1::{Pod, Taint};

use super::rank::{is_critical, REASON};
use super::threshold::NodeCondition;

/// Upstream's `lifecycle.PodAdmitResult`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// The pod may run.
    Admit,
    /// The pod must not run: its status becomes Failed with this reason and message.
    Reject {
        /// `Evicted`.
        reason: String,
        /// `The node had condition: [MemoryPressure]. `
        message: String,
    },
}

/// The memory-pressure taint a BestEffort pod may tolerate.
pub const MEMORY_PRESSURE_TAINT: &str = "node.kubernetes.io/memory-pressure";

/// Whether `pod` may start on a node with `conditions`.
pub fn admit(pod: &Pod, conditions: &BTreeSet<NodeCondition>) -> Admission {
    if conditions.is_empty() || is_critical(pod) {
        return Admission::Admit;
    }
    if conditions.len() == 1 && conditions.contains(&NodeCondition::MemoryPressure) {
        if pod_qos_class(pod) != QosClass::BestEffort {
            return Admission::Admit;
        }
        let taint = Taint {
            key: MEMORY_PRESSURE_TAINT.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.clone())
            .unwrap_or_default();
        if tolerations
            .iter()
            .any(|t| ferry_api::matching::tolerates(t, &taint))
        {
            return Admission::Admit;
        }
    }
    let names: Vec<&str> = conditions.iter().map(|c| c.as_str()).collect();
    Admission::Reject {
        reason: REASON.into(),
        message: format!("The node had condition: [{}]. ", names.join(" ")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(resources: serde_json::Value, tolerations: serde_json::Value, priority: i32) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {
            "priority": priority,
            "tolerations": tolerations,
            "containers": [{"name": "c", "resources": resources}]}}))
        .expect("pod")
    }

    /// Upstream's `TestAdmitUnderNodeConditions`.
    #[test]
    fn admission_under_node_conditions() {
        let best_effort = pod(json!({}), json!([]), 0);
        let burstable = pod(json!({"requests": {"memory": "100Mi"}}), json!([]), 0);
        let tolerating = pod(
            json!({}),
            json!([{"key": MEMORY_PRESSURE_TAINT, "operator": "Exists", "effect": "NoSchedule"}]),
            0,
        );
        let critical = pod(json!({}), json!([]), 2_000_000_000);
        let none = BTreeSet::new();
        let memory = BTreeSet::from([NodeCondition::MemoryPressure]);
        let memory_and_disk =
            BTreeSet::from([NodeCondition::MemoryPressure, NodeCondition::DiskPressure]);
        let reject = |message: &str| Admission::Reject {
            reason: "Evicted".into(),
            message: message.into(),
        };
        let cases: Vec<(&str, &Pod, &BTreeSet<NodeCondition>, Admission)> = vec![
            ("no pressure", &best_effort, &none, Admission::Admit),
            (
                "memory, best effort",
                &best_effort,
                &memory,
                reject("The node had condition: [MemoryPressure]. "),
            ),
            ("memory, burstable", &burstable, &memory, Admission::Admit),
            ("memory, tolerated", &tolerating, &memory, Admission::Admit),
            ("memory, critical", &critical, &memory, Admission::Admit),
            (
                "memory and disk, burstable",
                &burstable,
                &memory_and_disk,
                reject("The node had condition: [MemoryPressure DiskPressure]. "),
            ),
            (
                "memory and disk, tolerated",
                &tolerating,
                &memory_and_disk,
                reject("The node had condition: [MemoryPressure DiskPressure]. "),
            ),
            (
                "memory and disk, critical",
                &critical,
                &memory_and_disk,
                Admission::Admit,
            ),
        ];
        for (name, pod, conditions, want) in cases {
            assert_eq!(admit(pod, conditions), want, "{name}");
        }
    }
}
