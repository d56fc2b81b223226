//! The replica calculation, as upstream's `replica_calculator.go`: from the pods a target
//! selects and their metric values, how many replicas bring the metric to its target. Pure
//! functions over plain data; the controller fetches the metrics and lists the pods.
//!
//! The rules, upstream's: a ratio within the tolerance (10 %) of 1 keeps the current count;
//! pods being deleted or Failed are ignored; Pending pods — and, for CPU, pods still starting
//! (within the CPU initialization period, or never ready since shortly after starting) — are
//! unready: left out, and counted as using nothing when the metrics say scale up; pods without
//! metrics count as using nothing on a scale up and their full request (or the target, if
//! higher) on a scale down; and when assuming so would flip the direction, nothing changes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Container, Pod};

use super::metrics::{PodMetric, PodMetricsInfo};
use crate::util::pod_ready;

/// Upstream's `--horizontal-pod-autoscaler-tolerance`.
pub const DEFAULT_TOLERANCE: f64 = 0.1;
/// Upstream's `--horizontal-pod-autoscaler-cpu-initialization-period`.
pub const DEFAULT_CPU_INITIALIZATION_PERIOD: Duration = Duration::from_secs(300);
/// Upstream's `--horizontal-pod-autoscaler-initial-readiness-delay`.
pub const DEFAULT_INITIAL_READINESS_DELAY: Duration = Duration::from_secs(30);

/// Why no replica count could be computed; the messages are upstream's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplicaError {
    /// The selector matches no pod.
    #[error("no pods returned by selector while calculating replica count")]
    NoPods,
    /// Every pod with metrics was ignored or unready.
    #[error("did not receive metrics for targeted pods (pods might be unready)")]
    NoMetricsForTargetedPods,
    /// A container of a pod does not request the resource.
    #[error("missing request for {resource} in container {container} of Pod {pod}")]
    MissingRequest {
        /// `cpu`, `memory`, ...
        resource: String,
        /// The container.
        container: String,
        /// The pod.
        pod: String,
    },
    /// A `ContainerResource` metric names a container the pod does not have.
    #[error("container {container} not found in Pod {pod}")]
    ContainerNotFound {
        /// The container.
        container: String,
        /// The pod.
        pod: String,
    },
    /// The metrics name none of the pods.
    #[error("no metrics returned matched known pods")]
    NoMatchingPods,
}

/// A resource utilization result (upstream's `GetResourceReplicas` return values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceReplicas {
    /// The proposed replica count.
    pub replicas: i32,
    /// The pods' usage as a percentage of their requests.
    pub utilization: i32,
    /// The pods' average usage, in milli-units.
    pub raw_average: i64,
}

/// The pods of a target sorted by how the calculation treats them (upstream's `groupPods`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodGroups {
    /// Pods whose metrics count.
    pub ready: usize,
    /// Pending, or (for CPU) still starting.
    pub unready: BTreeSet<String>,
    /// Without a metric value.
    pub missing: BTreeSet<String>,
    /// Being deleted, or Failed.
    pub ignored: BTreeSet<String>,
}

/// The calculation's settings (upstream's `ReplicaCalculator` fields and tolerance).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReplicaCalculator {
    /// Ratios within this distance of 1 change nothing.
    pub tolerance: f64,
    /// How long after a pod starts its CPU samples may be those of its start-up.
    pub cpu_initialization_period: Duration,
    /// How long after starting a pod's readiness may still be settling.
    pub delay_of_initial_readiness_status: Duration,
}

impl Default for ReplicaCalculator {
    fn default() -> ReplicaCalculator {
        ReplicaCalculator {
            tolerance: DEFAULT_TOLERANCE,
            cpu_initialization_period: DEFAULT_CPU_INITIALIZATION_PERIOD,
            delay_of_initial_readiness_status: DEFAULT_INITIAL_READINESS_DELAY,
        }
    }
}

/// `t + d`, saturating.
fn plus(t: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// `ceil(x)` as an int32, saturating.
fn ceil_i32(x: f64) -> i32 {
    let x = x.ceil();
    if x >= f64::from(i32::MAX) {
        i32::MAX
    } else {
        x as i32
    }
}

impl ReplicaCalculator {
    fn within_tolerance(&self, usage_ratio: f64) -> bool {
        (1.0 - usage_ratio).abs() <= self.tolerance
    }

    /// Sorts `pods` for the calculation of `resource` (`None` for a custom metric): upstream's
    /// `groupPods`.
    pub fn group_pods(
        &self,
        pods: &[Arc<Pod>],
        metrics: &PodMetricsInfo,
        resource: Option<&str>,
        now: Timestamp,
    ) -> PodGroups {
        let mut groups = PodGroups::default();
        for pod in pods {
            let name = name(pod);
            if pod.metadata.deletion_timestamp.is_some() || phase(pod) == "Failed" {
                groups.ignored.insert(name);
                continue;
            }
            if phase(pod) == "Pending" {
                groups.unready.insert(name);
                continue;
            }
            let Some(metric) = metrics.get(&name) else {
                groups.missing.insert(name);
                continue;
            };
            if resource == Some("cpu") && self.cpu_unready(pod, metric, now) {
                groups.unready.insert(name);
                continue;
            }
            groups.ready += 1;
        }
        groups
    }

    /// Whether a pod's CPU sample may be from its start-up: during the initialization period,
    /// unless it is ready and was sampled for a whole window since; after it, if it has not
    /// been ready since shortly after starting.
    fn cpu_unready(&self, pod: &Pod, metric: &PodMetric, now: Timestamp) -> bool {
        let status = pod.status.as_ref();
        let condition = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
        let start = status.and_then(|s| s.start_time.as_ref()).map(|t| t.0);
        let (Some(condition), Some(start)) = (condition, start) else {
            return true;
        };
        // A missing transition time is Go's zero time: long ago.
        let transition = condition
            .last_transition_time
            .as_ref()
            .map_or(Timestamp::MIN, |t| t.0);
        let unready = condition.status == "False";
        if plus(start, self.cpu_initialization_period) > now {
            unready || metric.timestamp < plus(transition, metric.window)
        } else {
            unready && plus(start, self.delay_of_initial_readiness_status) > transition
        }
    }

    /// The replicas bringing `resource`'s utilization (percent of the pods' requests, or of
    /// `container`'s) to `target_utilization` (upstream's `GetResourceReplicas`).
    #[allow(clippy::too_many_arguments)]
    pub fn resource_replicas(
        &self,
        current_replicas: i32,
        target_utilization: i32,
        resource: &str,
        container: Option<&str>,
        pods: &[Arc<Pod>],
        mut metrics: PodMetricsInfo,
        now: Timestamp,
    ) -> Result<ResourceReplicas, ReplicaError> {
        if pods.is_empty() {
            return Err(ReplicaError::NoPods);
        }
        let groups = self.group_pods(pods, &metrics, Some(resource), now);
        for name in groups.ignored.iter().chain(&groups.unready) {
            metrics.remove(name);
        }
        if metrics.is_empty() {
            return Err(ReplicaError::NoMetricsForTargetedPods);
        }
        let requests = calculate_requests(pods, container, resource)?;
        let (usage_ratio, utilization, raw_average) =
            resource_utilization_ratio(&metrics, &requests, target_utilization)?;
        let result = |replicas| ResourceReplicas {
            replicas,
            utilization,
            raw_average,
        };

        let scale_up_with_unready = !groups.unready.is_empty() && usage_ratio > 1.0;
        if !scale_up_with_unready && groups.missing.is_empty() {
            if self.within_tolerance(usage_ratio) {
                return Ok(result(current_replicas));
            }
            return Ok(result(ceil_i32(usage_ratio * groups.ready as f64)));
        }
        if !groups.missing.is_empty() {
            // Scale down: a pod without metrics uses all it requests, or the target if higher;
            // scale up: nothing.
            let fallback = i64::from(target_utilization.max(100));
            for name in &groups.missing {
                let value = if usage_ratio < 1.0 {
                    requests.get(name).copied().unwrap_or(0) * fallback / 100
                } else if usage_ratio > 1.0 {
                    0
                } else {
                    continue;
                };
                metrics.insert(name.clone(), zero_metric(value));
            }
        }
        if scale_up_with_unready {
            for name in &groups.unready {
                metrics.insert(name.clone(), zero_metric(0));
            }
        }
        let (new_usage_ratio, _, _) =
            resource_utilization_ratio(&metrics, &requests, target_utilization)?;
        if self.within_tolerance(new_usage_ratio)
            || (usage_ratio < 1.0 && new_usage_ratio > 1.0)
            || (usage_ratio > 1.0 && new_usage_ratio < 1.0)
        {
            // Too small a change, or the assumptions flip the direction.
            return Ok(result(current_replicas));
        }
        let new_replicas = ceil_i32(new_usage_ratio * metrics.len() as f64);
        if (new_usage_ratio < 1.0 && new_replicas > current_replicas)
            || (new_usage_ratio > 1.0 && new_replicas < current_replicas)
        {
            return Ok(result(current_replicas));
        }
        Ok(result(new_replicas))
    }

    /// The replicas bringing a per-pod average value (milli-units) to `target_usage`, for
    /// `AverageValue` resource targets (`resource` given) and `Pods` metrics (upstream's
    /// `calcPlainMetricReplicas`). Returns the count and the current average.
    pub fn plain_metric_replicas(
        &self,
        current_replicas: i32,
        target_usage: i64,
        resource: Option<&str>,
        pods: &[Arc<Pod>],
        mut metrics: PodMetricsInfo,
        now: Timestamp,
    ) -> Result<(i32, i64), ReplicaError> {
        if pods.is_empty() {
            return Err(ReplicaError::NoPods);
        }
        let groups = self.group_pods(pods, &metrics, resource, now);
        for name in groups.ignored.iter().chain(&groups.unready) {
            metrics.remove(name);
        }
        if metrics.is_empty() {
            return Err(ReplicaError::NoMetricsForTargetedPods);
        }
        let (usage_ratio, usage) = metric_usage_ratio(&metrics, target_usage);
        let scale_up_with_unready = !groups.unready.is_empty() && usage_ratio > 1.0;
        if !scale_up_with_unready && groups.missing.is_empty() {
            if self.within_tolerance(usage_ratio) {
                return Ok((current_replicas, usage));
            }
            return Ok((ceil_i32(usage_ratio * groups.ready as f64), usage));
        }
        if !groups.missing.is_empty() {
            // Scale down: a pod without metrics is at the target; scale up: at nothing.
            for name in &groups.missing {
                let value = if usage_ratio < 1.0 {
                    target_usage
                } else if usage_ratio > 1.0 {
                    0
                } else {
                    continue;
                };
                metrics.insert(name.clone(), zero_metric(value));
            }
        }
        if scale_up_with_unready {
            for name in &groups.unready {
                metrics.insert(name.clone(), zero_metric(0));
            }
        }
        let (new_usage_ratio, _) = metric_usage_ratio(&metrics, target_usage);
        if self.within_tolerance(new_usage_ratio)
            || (usage_ratio < 1.0 && new_usage_ratio > 1.0)
            || (usage_ratio > 1.0 && new_usage_ratio < 1.0)
        {
            return Ok((current_replicas, usage));
        }
        let new_replicas = ceil_i32(new_usage_ratio * metrics.len() as f64);
        if (new_usage_ratio < 1.0 && new_replicas > current_replicas)
            || (new_usage_ratio > 1.0 && new_replicas < current_replicas)
        {
            return Ok((current_replicas, usage));
        }
        Ok((new_replicas, usage))
    }

    /// The replicas for a ratio of one total value to its target, scaled by the ready pods
    /// (upstream's `getUsageRatioReplicaCount`, for `Object` and `External` value targets);
    /// from zero replicas the ratio alone decides.
    pub fn usage_ratio_replicas(
        &self,
        current_replicas: i32,
        usage_ratio: f64,
        pods: &[Arc<Pod>],
    ) -> Result<i32, ReplicaError> {
        if current_replicas == 0 {
            return Ok(ceil_i32(usage_ratio));
        }
        if self.within_tolerance(usage_ratio) {
            return Ok(current_replicas);
        }
        let ready = ready_pod_count(pods)?;
        Ok(ceil_i32(usage_ratio * ready as f64))
    }

    /// The replicas for a total value whose target is per pod (upstream's
    /// `GetObjectPerPodMetricReplicas` and `GetExternalPerPodMetricReplicas`): the count and
    /// the current per-pod average.
    pub fn per_pod_replicas(
        &self,
        status_replicas: i32,
        usage: i64,
        target_average: i64,
    ) -> (i32, i64) {
        let mut replicas = status_replicas;
        let usage_ratio = usage as f64 / (target_average as f64 * f64::from(status_replicas));
        if !self.within_tolerance(usage_ratio) {
            replicas = ceil_i32(usage as f64 / target_average as f64);
        }
        let average = if usage == i64::MAX {
            usage
        } else {
            (usage as f64 / f64::from(status_replicas)).ceil() as i64
        };
        (replicas, average)
    }
}

fn zero_metric(value: i64) -> PodMetric {
    PodMetric {
        timestamp: Timestamp::UNIX_EPOCH,
        window: Duration::ZERO,
        value,
    }
}

/// Running and Ready pods (upstream's `getReadyPodsCount`).
pub fn ready_pod_count(pods: &[Arc<Pod>]) -> Result<i64, ReplicaError> {
    if pods.is_empty() {
        return Err(ReplicaError::NoPods);
    }
    Ok(pods
        .iter()
        .filter(|p| phase(p) == "Running" && pod_ready(p).0)
        .count() as i64)
}

/// Each pod's request of `resource` in milli-units: the sum over its containers (and
/// restartable init containers, the sidecars), or `container`'s alone (upstream's
/// `calculateRequests` without pod-level resources, an alpha feature in 1.33).
pub fn calculate_requests(
    pods: &[Arc<Pod>],
    container: Option<&str>,
    resource: &str,
) -> Result<BTreeMap<String, i64>, ReplicaError> {
    let mut requests = BTreeMap::new();
    for pod in pods {
        let name = name(pod);
        let spec = pod.spec.as_ref();
        let sidecars = spec
            .and_then(|s| s.init_containers.as_ref())
            .into_iter()
            .flatten()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"));
        let containers: Vec<&Container> = spec
            .map(|s| s.containers.iter())
            .into_iter()
            .flatten()
            .chain(sidecars)
            .collect();
        let mut request = 0i64;
        let mut found = false;
        for c in containers {
            if container.is_some_and(|wanted| wanted != c.name) {
                continue;
            }
            let value = c
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get(resource))
                .ok_or_else(|| ReplicaError::MissingRequest {
                    resource: resource.to_string(),
                    container: c.name.clone(),
                    pod: name.clone(),
                })?;
            request += ferry_api::quantity::Quantity::from_api(value)
                .map(|q| q.milli_value())
                .unwrap_or(0);
            if container.is_some() {
                found = true;
                break;
            }
        }
        if let (Some(container), false) = (container, found) {
            return Err(ReplicaError::ContainerNotFound {
                container: container.to_string(),
                pod: name,
            });
        }
        requests.insert(name, request);
    }
    Ok(requests)
}

/// The usage ratio, utilization percentage and average value of pods with both a metric and a
/// request (upstream's `GetResourceUtilizationRatio`).
pub fn resource_utilization_ratio(
    metrics: &PodMetricsInfo,
    requests: &BTreeMap<String, i64>,
    target_utilization: i32,
) -> Result<(f64, i32, i64), ReplicaError> {
    let (mut metrics_total, mut requests_total, mut entries) = (0i64, 0i64, 0i64);
    for (name, metric) in metrics {
        // A metric of a pod without a request is extraneous (requests are checked elsewhere).
        let Some(request) = requests.get(name) else {
            continue;
        };
        metrics_total += metric.value;
        requests_total += request;
        entries += 1;
    }
    if requests_total == 0 {
        return Err(ReplicaError::NoMatchingPods);
    }
    let utilization = i32::try_from(metrics_total * 100 / requests_total).unwrap_or(i32::MAX);
    Ok((
        f64::from(utilization) / f64::from(target_utilization),
        utilization,
        metrics_total / entries,
    ))
}

/// The usage ratio and average value of a plain metric (upstream's `GetMetricUsageRatio`).
pub fn metric_usage_ratio(metrics: &PodMetricsInfo, target_usage: i64) -> (f64, i64) {
    let total: i64 = metrics.values().map(|m| m.value).sum();
    let usage = total / metrics.len().max(1) as i64;
    (usage as f64 / target_usage as f64, usage)
}
