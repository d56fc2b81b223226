//! Which pod goes first, and what it is told (upstream's `rankMemoryPressure`,
//! `rankDiskPressureFunc`, `rankPIDPressure` and `evictionMessage` in `helpers.go`):
//!
//! - memory: pods using more than they requested first, then lower priority, then the larger
//!   usage above the request;
//! - disk (ephemeral storage or inodes): the same with the pod's rootfs, logs and local volumes;
//! - PIDs: lower priority, then more processes.
//!
//! A pod without stats goes before one with them, as upstream.

use std::cmp::Ordering;

use k8s_openapi::api::core::v1::Pod;

use super::signals::Observations;
use super::threshold::{Signal, Threshold};
use crate::quantity::Quantity;
use crate::stats::summary::PodStats;
use crate::stats::Summary;

/// `SystemCriticalPriority`: pods at or above it are critical.
pub const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;

/// The eviction reason (`Evicted`), in the pod's status and events.
pub const REASON: &str = "Evicted";

/// Upstream's `IsCriticalPod`: static and mirror pods, and priority at the system-critical level.
pub fn is_critical(pod: &Pod) -> bool {
    let annotations = pod.metadata.annotations.as_ref();
    let static_or_mirror = annotations.is_some_and(|a| {
        a.contains_key("kubernetes.io/config.mirror")
            || a.get("kubernetes.io/config.source")
                .is_some_and(|s| s != "api")
    });
    static_or_mirror || priority(pod) >= SYSTEM_CRITICAL_PRIORITY
}

/// `spec.priority` (0 when unset).
pub fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

fn quantity(q: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>) -> u64 {
    q.and_then(|q| Quantity::parse(&q.0).ok())
        .map_or(0, |q| q.value().max(0) as u64)
}

/// Upstream's `GetResourceRequestQuantity`: the larger of the app containers' sum and the
/// largest init container, plus the pod overhead.
pub fn request(pod: &Pod, resource: &str) -> u64 {
    let Some(spec) = pod.spec.as_ref() else {
        return 0;
    };
    let of = |c: &k8s_openapi::api::core::v1::Container| {
        quantity(
            c.resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get(resource)),
        )
    };
    let apps: u64 = spec.containers.iter().map(of).sum();
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(of)
        .max()
        .unwrap_or(0);
    apps.max(init) + quantity(spec.overhead.as_ref().and_then(|o| o.get(resource)))
}

/// A container's request of `resource`.
fn container_request(pod: &Pod, name: &str, resource: &str) -> u64 {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .find(|c| c.name == name)
        .map_or(0, |c| {
            quantity(
                c.resources
                    .as_ref()
                    .and_then(|r| r.requests.as_ref())
                    .and_then(|r| r.get(resource)),
            )
        })
}

/// What a pod uses of the resource `signal` is short of.
pub fn usage(stats: &PodStats, signal: Signal) -> u64 {
    match signal {
        Signal::MemoryAvailable => stats.memory_working_set().unwrap_or(0),
        Signal::NodeFsAvailable | Signal::ImageFsAvailable => stats
            .ephemeral_storage
            .as_ref()
            .and_then(|f| f.used_bytes)
            .unwrap_or(0),
        Signal::NodeFsInodesFree | Signal::ImageFsInodesFree => stats
            .ephemeral_storage
            .as_ref()
            .and_then(|f| f.inodes_used)
            .unwrap_or(0),
        Signal::PidAvailable => stats
            .process_stats
            .as_ref()
            .and_then(|p| p.process_count)
            .unwrap_or(0),
    }
}

/// The request a pod's usage is compared with: memory or ephemeral-storage; none for inodes.
fn pod_request(pod: &Pod, signal: Signal) -> u64 {
    match signal.resource() {
        "memory" => request(pod, "memory"),
        "ephemeral-storage" => request(pod, "ephemeral-storage"),
        _ => 0,
    }
}

/// `cmpBool`: `true` first.
fn true_first(a: bool, b: bool) -> Ordering {
    b.cmp(&a)
}

/// Sorts `pods` for eviction under `signal`'s pressure, first to go first.
pub fn rank(pods: &mut [Pod], signal: Signal, summary: &Summary) {
    let stats = |p: &Pod| p.metadata.uid.as_deref().and_then(|uid| summary.pod(uid));
    pods.sort_by(|p1, p2| {
        let (s1, s2) = (stats(p1), stats(p2));
        // Whether over the request (true first).
        let exceeds = || match (s1, s2) {
            (Some(a), Some(b)) => true_first(
                usage(a, signal) > pod_request(p1, signal),
                usage(b, signal) > pod_request(p2, signal),
            ),
            (a, b) => true_first(a.is_none(), b.is_none()),
        };
        let by_priority = priority(p1).cmp(&priority(p2));
        // Usage above the request, larger first.
        let above = || match (s1, s2) {
            (Some(a), Some(b)) => {
                let over = |s: &PodStats, p: &Pod| {
                    i128::from(usage(s, signal)) - i128::from(pod_request(p, signal))
                };
                over(b, p2).cmp(&over(a, p1))
            }
            (a, b) => true_first(a.is_none(), b.is_none()),
        };
        match signal {
            Signal::PidAvailable => by_priority.then_with(|| match (s1, s2) {
                (Some(a), Some(b)) => usage(b, signal).cmp(&usage(a, signal)),
                (a, b) => true_first(a.is_none(), b.is_none()),
            }),
            _ => exceeds().then(by_priority).then_with(above),
        }
    });
}

/// Go's `resource.Quantity` string of a byte count in the binary format: the largest power of
/// 1024 that divides it exactly (`100Mi`, `51200Ki`, `1536`).
pub fn binary_si(bytes: u64) -> String {
    const SUFFIXES: [&str; 6] = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    if bytes == 0 {
        return "0".into();
    }
    let mut value = bytes;
    let mut suffix = "";
    for s in SUFFIXES {
        if !value.is_multiple_of(1024) {
            break;
        }
        value /= 1024;
        suffix = s;
    }
    format!("{value}{suffix}")
}

/// A quantity of `signal`'s resource as upstream prints it (bytes binary, counts decimal).
fn format(signal: Signal, value: u64) -> String {
    match signal.resource() {
        "memory" | "ephemeral-storage" => binary_si(value),
        _ => value.to_string(),
    }
}

/// Upstream's `evictionMessage`: the resource, the threshold and what is available, and each
/// container using more than it requested.
pub fn eviction_message(
    signal: Signal,
    pod: &Pod,
    stats: Option<&PodStats>,
    thresholds: &[Threshold],
    observations: &Observations,
) -> String {
    let resource = signal.resource();
    let mut message = format!("The node was low on resource: {resource}. ");
    let met = thresholds
        .iter()
        .find(|t| t.signal.resource() == resource)
        .and_then(|t| Some((t, observations.get(&t.signal)?)));
    if let Some((t, observed)) = met {
        message += &format!(
            "Threshold quantity: {}, available: {}. ",
            format(t.signal, t.value.quantity(observed.capacity)),
            format(t.signal, observed.available)
        );
    }
    let Some(stats) = stats else {
        return message;
    };
    for container in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        let Some(c) = stats.containers.iter().find(|c| c.name == container.name) else {
            continue;
        };
        let used = match resource {
            "memory" => c.memory.as_ref().and_then(|m| m.working_set_bytes),
            "ephemeral-storage" => c
                .rootfs
                .as_ref()
                .and_then(|r| r.used_bytes)
                .zip(c.logs.as_ref().and_then(|l| l.used_bytes))
                .map(|(r, l)| r + l),
            _ => None,
        };
        let requested = container_request(pod, &container.name, resource);
        if let Some(used) = used.filter(|u| *u > requested) {
            message += &format!(
                "Container {} was using {}, request is {}, has larger consumption of {resource}. ",
                container.name,
                binary_si(used),
                binary_si(requested),
            );
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::eviction::signals::Observation;
    use crate::machine::ThresholdValue;
    use crate::stats::summary::*;

    const MI: u64 = 1 << 20;

    fn pod(name: &str, priority: i32, memory_request: Option<&str>) -> Pod {
        let resources = match memory_request {
            Some(r) => json!({"requests": {"memory": r}}),
            None => json!({}),
        };
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": name},
            "spec": {"priority": priority, "containers": [{"name": "app", "resources": resources}]}
        }))
        .expect("pod")
    }

    fn stats(name: &str, working_set: u64) -> PodStats {
        PodStats {
            pod_ref: PodReference {
                name: name.into(),
                namespace: "default".into(),
                uid: name.into(),
            },
            containers: vec![ContainerStats {
                name: "app".into(),
                memory: Some(MemoryStats {
                    working_set_bytes: Some(working_set),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn names(pods: &[Pod]) -> Vec<&str> {
        pods.iter()
            .map(|p| p.metadata.name.as_deref().unwrap_or_default())
            .collect()
    }

    /// Upstream's `TestOrderedByExceedsRequestMemory`, `TestOrderedByPriority` and
    /// `TestOrderedbyMemory`, together.
    #[test]
    fn memory_ranking_as_upstream() {
        let summary = Summary {
            pods: vec![
                stats("below-request", 50 * MI),
                stats("above-request", 150 * MI),
                stats("best-effort-small", 10 * MI),
                stats("best-effort-big", 300 * MI),
                stats("high-priority-big", 500 * MI),
            ],
            ..Default::default()
        };
        let mut pods = vec![
            pod("below-request", 0, Some("100Mi")),
            pod("above-request", 0, Some("100Mi")),
            pod("best-effort-small", 0, None),
            pod("high-priority-big", 1000, None),
            pod("best-effort-big", 0, None),
            pod("no-stats", 0, None),
        ];
        rank(&mut pods, Signal::MemoryAvailable, &summary);
        assert_eq!(
            names(&pods),
            [
                "no-stats",
                "best-effort-big",
                "above-request",
                "best-effort-small",
                "high-priority-big",
                "below-request",
            ]
        );
    }

    #[test]
    fn pid_ranking_is_priority_then_processes() {
        let with_procs = |name: &str, n: u64| PodStats {
            process_stats: Some(ProcessStats {
                process_count: Some(n),
            }),
            ..stats(name, 0)
        };
        let summary = Summary {
            pods: vec![
                with_procs("few", 2),
                with_procs("many", 200),
                with_procs("vip", 500),
            ],
            ..Default::default()
        };
        let mut pods = vec![
            pod("few", 0, None),
            pod("vip", 10, None),
            pod("many", 0, None),
        ];
        rank(&mut pods, Signal::PidAvailable, &summary);
        assert_eq!(names(&pods), ["many", "few", "vip"]);
    }

    #[test]
    fn quantities_print_as_gos_binary_si() {
        let cases = [
            (0, "0"),
            (100 * MI, "100Mi"),
            (50 * MI, "50Mi"),
            (1536, "1536"),
            (1024, "1Ki"),
            (51_200 * 1024, "50Mi"),
            (3 << 30, "3Gi"),
            (1000 << 40, "1000Ti"),
        ];
        for (bytes, want) in cases {
            assert_eq!(binary_si(bytes), want, "{bytes}");
        }
    }

    #[test]
    fn the_message_names_the_resource_threshold_and_offending_containers() {
        let threshold =
            Threshold::hard(Signal::MemoryAvailable, ThresholdValue::Quantity(100 * MI));
        let observations = Observations::from([(
            Signal::MemoryAvailable,
            Observation {
                available: 50 * MI,
                capacity: 1024 * MI,
            },
        )]);
        let p = pod("web", 0, None);
        assert_eq!(
            eviction_message(
                Signal::MemoryAvailable,
                &p,
                Some(&stats("web", 80 * MI)),
                &[threshold],
                &observations
            ),
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. \
             Container app was using 80Mi, request is 0, has larger consumption of memory. "
        );
        // Within its request: not named.
        let p = pod("web", 0, Some("100Mi"));
        assert_eq!(
            eviction_message(
                Signal::MemoryAvailable,
                &p,
                Some(&stats("web", 80 * MI)),
                &[threshold],
                &observations
            ),
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. "
        );
        // A percentage threshold prints as the quantity it is of the capacity.
        let disk = Threshold::hard(Signal::NodeFsAvailable, ThresholdValue::Percentage(0.1));
        let obs = Observations::from([(
            Signal::NodeFsAvailable,
            Observation {
                available: 5 << 30,
                capacity: 100 << 30,
            },
        )]);
        assert!(eviction_message(Signal::NodeFsAvailable, &p, None, &[disk], &obs).starts_with(
            "The node was low on resource: ephemeral-storage. Threshold quantity: 10Gi, available: 5Gi. "
        ));
    }

    #[test]
    fn critical_pods_and_requests() {
        let mut critical = pod("c", SYSTEM_CRITICAL_PRIORITY, None);
        assert!(is_critical(&critical));
        critical.spec.as_mut().expect("spec").priority = Some(0);
        assert!(!is_critical(&critical));
        let p: Pod = serde_json::from_value(json!({"spec": {
            "containers": [
                {"name": "a", "resources": {"requests": {"memory": "100Mi"}}},
                {"name": "b", "resources": {"requests": {"memory": "50Mi"}}}],
            "initContainers": [{"name": "i", "resources": {"requests": {"memory": "200Mi"}}}],
            "overhead": {"memory": "10Mi"}}}))
        .expect("pod");
        assert_eq!(request(&p, "memory"), 210 * MI);
    }
}
