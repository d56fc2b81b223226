//! A container's cgroup resources (upstream `kuberuntime_container_linux.go`): CPU shares and
//! CFS quota from its requests and limits, its memory limit, and its `oom_score_adj` per QoS
//! class.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use super::{ConfigError, ContainerContext};
use crate::quantity::Quantity;
use crate::runtime::v1;
use crate::status::{pod_qos_class, QosClass};

/// CFS period, microseconds (upstream `quotaPeriod`).
pub const CPU_PERIOD_US: i64 = 100_000;
/// Minimum CFS quota, microseconds (upstream `minQuotaPeriod`).
const MIN_CPU_QUOTA_US: i64 = 1000;
/// cgroup v1 `cpu.shares` bounds (upstream `MinShares`, `MaxShares`).
const MIN_SHARES: i64 = 2;
const MAX_SHARES: i64 = 262_144;

fn parse_quantity(quantity: &ApiQuantity) -> Result<Quantity, ConfigError> {
    Quantity::from_api(quantity).map_err(|source| ConfigError::Quantity {
        value: quantity.0.clone(),
        source,
    })
}

/// cgroup v1 `cpu.shares` for a CPU request in millicores (upstream `MilliCPUToShares`).
pub fn milli_cpu_to_shares(milli_cpu: i64) -> i64 {
    if milli_cpu <= 0 {
        return MIN_SHARES;
    }
    (milli_cpu * 1024 / 1000).clamp(MIN_SHARES, MAX_SHARES)
}

/// CFS quota in microseconds for a CPU limit in millicores over `period` (upstream
/// `milliCPUToQuota`); 0 (no quota) when there is no limit.
pub fn milli_cpu_to_quota(milli_cpu: i64, period: i64) -> i64 {
    if milli_cpu <= 0 {
        return 0;
    }
    (milli_cpu * period / 1000).max(MIN_CPU_QUOTA_US)
}

/// Upstream's `GetContainerOOMScoreAdjust`: Guaranteed -997, BestEffort 1000, Burstable
/// `1000 - 1000 * memoryRequest / memoryCapacity` kept within 3..=999. (Node-critical pods also
/// get -997 upstream; there are none here yet.)
pub fn container_oom_score_adj(pod: &Pod, container: &Container, memory_capacity: i64) -> i64 {
    match pod_qos_class(pod) {
        QosClass::Guaranteed => -997,
        QosClass::BestEffort => 1000,
        QosClass::Burstable => {
            let request = container
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("memory"))
                .and_then(|q| Quantity::from_api(q).ok())
                .map(|q| q.value())
                .unwrap_or(0);
            if memory_capacity <= 0 {
                return 999;
            }
            let adj = 1000 - (i128::from(request) * 1000 / i128::from(memory_capacity)) as i64;
            if adj < 3 {
                3
            } else if adj == 1000 {
                999
            } else {
                adj
            }
        }
    }
}

pub(super) fn container_resources(
    pod: &Pod,
    container: &Container,
    ctx: &ContainerContext,
) -> Result<v1::LinuxContainerResources, ConfigError> {
    let resources = container.resources.clone().unwrap_or_default();
    let get = |list: &Option<BTreeMap<String, ApiQuantity>>, name: &str| {
        list.as_ref()
            .and_then(|l| l.get(name))
            .map(parse_quantity)
            .transpose()
    };
    let cpu_request = get(&resources.requests, "cpu")?;
    let cpu_limit = get(&resources.limits, "cpu")?.unwrap_or(Quantity::ZERO);
    let memory_limit = get(&resources.limits, "memory")?.unwrap_or(Quantity::ZERO);
    // A missing request defaults to the limit (the API server defaults it too).
    let shares = milli_cpu_to_shares(cpu_request.unwrap_or(cpu_limit).milli_value());
    Ok(v1::LinuxContainerResources {
        cpu_period: CPU_PERIOD_US,
        cpu_quota: milli_cpu_to_quota(cpu_limit.milli_value(), CPU_PERIOD_US),
        cpu_shares: shares,
        memory_limit_in_bytes: memory_limit.value(),
        // Upstream's value clamped at 0: without CAP_SYS_RESOURCE (docs/RUNTIME.md) runc cannot
        // lower oom_score_adj below containerd's own 0, so Guaranteed gets 0 instead of -997.
        oom_score_adj: container_oom_score_adj(pod, container, ctx.node_memory_capacity).max(0),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::podconfig::testing::*;

    #[test]
    fn linux_resources() {
        // (resources, cpu_shares, cpu_quota, memory_limit, oom_score_adj)
        let cases = [
            (json!({}), 2, 0, 0, 1000),
            (json!({"requests": {"cpu": "100m"}}), 102, 0, 0, 999),
            (json!({"requests": {"cpu": "1m"}}), 2, 0, 0, 999),
            (json!({"limits": {"cpu": "500m"}}), 512, 50_000, 0, 999),
            (json!({"limits": {"cpu": "1m"}}), 2, 1000, 0, 999),
            (
                json!({"requests": {"cpu": "1.5", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}),
                1536,
                200_000,
                2 << 30,
                875,
            ),
            // Guaranteed: upstream -997, clamped to 0 here.
            (
                json!({"requests": {"cpu": "1", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "128Mi"}}),
                1024,
                100_000,
                128 << 20,
                0,
            ),
            (json!({"limits": {"memory": "1e3"}}), 2, 0, 1000, 999),
        ];
        for (resources, shares, quota, memory, oom) in cases {
            let p = one(json!({"name": "c", "resources": resources}));
            let r = config(&p)
                .expect("config")
                .linux
                .and_then(|l| l.resources)
                .expect("resources");
            assert_eq!(
                (
                    r.cpu_shares,
                    r.cpu_period,
                    r.cpu_quota,
                    r.memory_limit_in_bytes,
                    r.oom_score_adj
                ),
                (shares, CPU_PERIOD_US, quota, memory, oom),
                "{resources}"
            );
        }
    }

    #[test]
    fn oom_score_adj_upstream_values() {
        let res = |r: serde_json::Value| one(json!({"name": "c", "resources": r}));
        let guaranteed = res(json!({"limits": {"cpu": "1", "memory": "1Gi"},
            "requests": {"cpu": "1", "memory": "1Gi"}}));
        let spec = guaranteed.spec.clone().unwrap_or_default();
        assert_eq!(
            container_oom_score_adj(&guaranteed, &spec.containers[0], 8 << 30),
            -997
        );
        let burstable = res(json!({"requests": {"memory": "8Gi"}}));
        let spec = burstable.spec.clone().unwrap_or_default();
        assert_eq!(
            container_oom_score_adj(&burstable, &spec.containers[0], 8 << 30),
            3
        );
    }
}
