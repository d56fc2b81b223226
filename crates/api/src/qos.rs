//! The pod's quality-of-service class (upstream's `GetPodQOS` / `ComputePodQOS`), computed
//! with exact [`Quantity`] arithmetic, and the defaulting it depends on (`SetDefaults_Pod`:
//! requests default to limits) — for the API server, the kubelet and the simulated nodes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodSpec};

use crate::quantity::Quantity;

/// A pod's quality-of-service class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QosClass {
    /// Every container has equal, non-zero CPU and memory requests and limits.
    Guaranteed,
    /// Some requests or limits, not Guaranteed.
    Burstable,
    /// No CPU or memory requests or limits at all.
    BestEffort,
}

impl QosClass {
    /// The API name (`status.qosClass`).
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

/// The pod's QoS class: `status.qosClass` when set (it is immutable), else computed from the
/// spec (upstream `GetPodQOS`).
pub fn pod_qos_class(pod: &Pod) -> QosClass {
    match pod.status.as_ref().and_then(|s| s.qos_class.as_deref()) {
        Some("Guaranteed") => QosClass::Guaranteed,
        Some("Burstable") => QosClass::Burstable,
        Some("BestEffort") => QosClass::BestEffort,
        _ => compute_qos_class(&pod.spec.clone().unwrap_or_default()),
    }
}

/// Upstream `ComputePodQOS` over containers and init containers (cpu and memory only; zero
/// quantities count as unset; an unparsable quantity counts as unset).
pub fn compute_qos_class(spec: &PodSpec) -> QosClass {
    let mut requests: BTreeMap<&str, Quantity> = BTreeMap::new();
    let mut limits: BTreeMap<&str, Quantity> = BTreeMap::new();
    let mut guaranteed = true;
    for container in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let resources = container.resources.clone().unwrap_or_default();
        let positive = |list: &Option<BTreeMap<String, _>>, name: &str| {
            list.as_ref()
                .and_then(|l| l.get(name))
                .and_then(|q| Quantity::from_api(q).ok())
                .filter(|q| *q > Quantity::ZERO)
        };
        let mut limits_found = 0;
        for name in ["cpu", "memory"] {
            if let Some(q) = positive(&resources.requests, name) {
                let sum = requests.get(name).copied().unwrap_or_default() + q;
                requests.insert(name, sum);
            }
            if let Some(q) = positive(&resources.limits, name) {
                limits_found += 1;
                let sum = limits.get(name).copied().unwrap_or_default() + q;
                limits.insert(name, sum);
            }
        }
        if limits_found < 2 {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return QosClass::BestEffort;
    }
    if guaranteed
        && requests.len() == limits.len()
        && requests
            .iter()
            .all(|(name, req)| limits.get(name) == Some(req))
    {
        return QosClass::Guaranteed;
    }
    QosClass::Burstable
}

/// Upstream's `SetDefaults_Pod` for resources: a container (or init container) with a limit
/// but no request for a resource requests its limit.
pub fn default_requests_from_limits(spec: &mut PodSpec) {
    let containers = spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten());
    for container in containers {
        let Some(resources) = container.resources.as_mut() else {
            continue;
        };
        let Some(limits) = resources.limits.clone() else {
            continue;
        };
        let requests = resources.requests.get_or_insert_with(BTreeMap::new);
        for (name, limit) in limits {
            requests.entry(name).or_insert(limit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(containers: serde_json::Value, init: serde_json::Value) -> PodSpec {
        serde_json::from_value(json!({"containers": containers, "initContainers": init}))
            .expect("spec")
    }

    #[test]
    fn qos_classes() {
        let c = |r: serde_json::Value| json!({"name": "c", "resources": r});
        let g = json!({"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}});
        let cases = [
            (json!([c(json!({}))]), json!([]), QosClass::BestEffort),
            (
                json!([c(json!({"requests": {"cpu": "0"}}))]),
                json!([]),
                QosClass::BestEffort,
            ),
            (
                json!([c(json!({"requests": {"nvidia.com/gpu": "1"}}))]),
                json!([]),
                QosClass::BestEffort,
            ),
            (
                json!([c(json!({"requests": {"memory": "1Gi"}}))]),
                json!([]),
                QosClass::Burstable,
            ),
            (json!([c(g.clone())]), json!([]), QosClass::Guaranteed),
            (
                json!([c(
                    json!({"requests": {"cpu": "1000m", "memory": "1024Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}})
                )]),
                json!([]),
                QosClass::Guaranteed,
            ),
            (
                json!([c(g.clone()), c(json!({}))]),
                json!([]),
                QosClass::Burstable,
            ),
            (
                json!([c(g.clone())]),
                json!([c(json!({}))]),
                QosClass::Burstable,
            ),
            (
                json!([c(
                    json!({"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}})
                )]),
                json!([]),
                QosClass::Burstable,
            ),
            // Not defaulted: limits without requests.
            (
                json!([c(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))]),
                json!([]),
                QosClass::Burstable,
            ),
        ];
        for (containers, init, want) in cases {
            assert_eq!(
                compute_qos_class(&spec(containers.clone(), init.clone())),
                want,
                "{containers} {init}"
            );
        }
    }

    #[test]
    fn requests_default_to_limits_as_the_api_server_defaults_them() {
        let mut s = spec(
            json!([{"name": "c", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}}]),
            json!([{"name": "i", "resources": {"limits": {"memory": "64Mi"}}}]),
        );
        default_requests_from_limits(&mut s);
        let requests = |c: &k8s_openapi::api::core::v1::Container| {
            serde_json::to_value(c.resources.as_ref().and_then(|r| r.requests.clone()))
                .expect("json")
        };
        assert_eq!(
            requests(&s.containers[0]),
            json!({"cpu": "500m", "memory": "1Gi"})
        );
        assert_eq!(
            requests(&s.init_containers.as_ref().expect("init")[0]),
            json!({"memory": "64Mi"})
        );
        let mut limits_only = spec(
            json!([{"name": "c", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]),
            json!([]),
        );
        default_requests_from_limits(&mut limits_only);
        assert_eq!(compute_qos_class(&limits_only), QosClass::Guaranteed);
    }
}
