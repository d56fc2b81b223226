//! kube-scheduler's main metrics, under upstream's names and labels
//! (`pkg/scheduler/metrics`), kept for the whole process as upstream's global registry:
//!
//! - `scheduler_schedule_attempts_total{profile,result}` and
//!   `scheduler_scheduling_attempt_duration_seconds{profile,result}`: each attempt's outcome
//!   (`scheduled`, `unschedulable`, `error`) and how long it took, from the pop to the bind;
//! - `scheduler_pod_scheduling_attempts`: how many attempts a scheduled pod needed;
//! - `scheduler_pending_pods{queue}`: pods in activeQ, backoffQ, the unschedulable pods
//!   (`unschedulable`) and those PreEnqueue holds (`gated`), kept by the queue as they move;
//! - `scheduler_queue_incoming_pods_total{event,queue}`: pods entering a queue, and why;
//! - `scheduler_framework_extension_point_duration_seconds{extension_point,profile,status}`:
//!   each extension point's run over its plugins (not Filter, which runs per node).
//!
//! Recording costs an atomic add, or a lookup of a label set of static strings and the
//! profile's shared name: nothing is allocated per pod. [`register`] adds them to a registry.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::framework::Code;
use crate::scheduler::ScheduleError;

/// `profile` and `result` of an attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    /// The profile (its scheduler name).
    pub profile: Arc<str>,
    /// `scheduled`, `unschedulable` or `error`.
    pub result: &'static str,
}

/// The labels of an extension point's run.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExtensionPointLabels {
    /// `PreFilter`, `Score`, `Bind`, …
    pub extension_point: &'static str,
    /// The profile.
    pub profile: Arc<str>,
    /// The status code's name (`Success`, `Unschedulable`, …).
    pub status: &'static str,
}

/// `queue` of the pending pods.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    /// `active`, `backoff`, `unschedulable` or `gated`.
    pub queue: &'static str,
}

/// `event` and `queue` of a pod entering a queue.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IncomingLabels {
    /// What moved it (`PodAdd`, `BackoffComplete`, `NodeAdd`, …).
    pub event: &'static str,
    /// `active`, `backoff` or `unschedulable`.
    pub queue: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

struct Metrics {
    schedule_attempts: Family<AttemptLabels, Counter>,
    attempt_duration: Histograms<AttemptLabels>,
    pod_scheduling_attempts: Histogram,
    pending_pods: Family<QueueLabels, Gauge>,
    incoming_pods: Family<IncomingLabels, Counter>,
    extension_point_duration: Histograms<ExtensionPointLabels>,
}

fn attempt_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

fn extension_point_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 12))
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    schedule_attempts: Family::default(),
    attempt_duration: Family::new_with_constructor(attempt_buckets),
    pod_scheduling_attempts: Histogram::new(exponential_buckets(1.0, 2.0, 5)),
    pending_pods: Family::default(),
    incoming_pods: Family::default(),
    extension_point_duration: Family::new_with_constructor(extension_point_buckets),
});

/// Adds the scheduler's metrics to `registry`.
pub fn register(registry: &mut Registry) {
    let m = &*METRICS;
    let scheduler = registry.sub_registry_with_prefix("scheduler");
    scheduler.register(
        "schedule_attempts",
        "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod could not be scheduled, while 'error' means an internal scheduler problem.",
        m.schedule_attempts.clone(),
    );
    scheduler.register(
        "scheduling_attempt_duration_seconds",
        "Scheduling attempt latency in seconds (scheduling algorithm + binding)",
        m.attempt_duration.clone(),
    );
    scheduler.register(
        "pod_scheduling_attempts",
        "Number of attempts to successfully schedule a pod.",
        m.pod_scheduling_attempts.clone(),
    );
    scheduler.register(
        "pending_pods",
        "Number of pending pods, by the queue type. 'active' means number of pods in activeQ; 'backoff' means number of pods in backoffQ; 'unschedulable' means number of pods in unschedulablePods that the scheduler attempted to schedule and failed; 'gated' is the number of unschedulable pods that the scheduler never attempted to schedule because they are gated.",
        m.pending_pods.clone(),
    );
    scheduler.register(
        "queue_incoming_pods",
        "Number of pods added to scheduling queues by event and queue type.",
        m.incoming_pods.clone(),
    );
    scheduler.register(
        "framework_extension_point_duration_seconds",
        "Latency for running all plugins of a specific extension point.",
        m.extension_point_duration.clone(),
    );
}

/// The result label of a failed attempt: `unschedulable` when no node fits, `error` otherwise.
pub fn failure_result(error: &ScheduleError) -> &'static str {
    match error {
        ScheduleError::Fit(_) | ScheduleError::NoNodes => "unschedulable",
        ScheduleError::Internal(_) => "error",
    }
}

/// Records an attempt of `profile` that ended with `result` after `took`.
pub fn attempt(profile: &Arc<str>, result: &'static str, took: Duration) {
    let labels = AttemptLabels {
        profile: profile.clone(),
        result,
    };
    METRICS.schedule_attempts.get_or_create(&labels).inc();
    METRICS
        .attempt_duration
        .get_or_create(&labels)
        .observe(took.as_secs_f64());
}

/// Records a pod bound after `attempts` attempts, the last of which took `took`.
pub fn scheduled(profile: &Arc<str>, took: Duration, attempts: u32) {
    attempt(profile, "scheduled", took);
    METRICS.pod_scheduling_attempts.observe(f64::from(attempts));
}

/// Upstream's name of a status code.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Success => "Success",
        Code::Error => "Error",
        Code::Unschedulable => "Unschedulable",
        Code::UnschedulableAndUnresolvable => "UnschedulableAndUnresolvable",
        Code::Wait => "Wait",
        Code::Skip => "Skip",
    }
}

/// Records a run of `extension_point` of `profile` that answered `code` after `took`.
pub fn extension_point(
    extension_point: &'static str,
    profile: &Arc<str>,
    code: Code,
    took: Duration,
) {
    METRICS
        .extension_point_duration
        .get_or_create(&ExtensionPointLabels {
            extension_point,
            profile: profile.clone(),
            status: code_name(code),
        })
        .observe(took.as_secs_f64());
}

/// The `scheduler_pending_pods` series of `queue`.
pub fn pending(queue: &'static str) -> Gauge {
    METRICS
        .pending_pods
        .get_or_create(&QueueLabels { queue })
        .clone()
}

/// Counts a pod entering `queue` because of `event`.
pub fn incoming(event: &'static str, queue: &'static str) {
    METRICS
        .incoming_pods
        .get_or_create(&IncomingLabels { event, queue })
        .inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_names_and_labels() {
        let profile: Arc<str> = "metrics-test-profile".into();
        attempt(&profile, "unschedulable", Duration::from_millis(3));
        scheduled(&profile, Duration::from_millis(5), 2);
        extension_point(
            "PreFilter",
            &profile,
            Code::Success,
            Duration::from_micros(50),
        );
        incoming("PodAdd", "active");
        pending("gated").inc();
        pending("gated").dec();
        let mut registry = Registry::default();
        register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        for line in [
            r#"scheduler_schedule_attempts_total{profile="metrics-test-profile",result="unschedulable"} 1"#,
            r#"scheduler_schedule_attempts_total{profile="metrics-test-profile",result="scheduled"} 1"#,
            r#"scheduler_scheduling_attempt_duration_seconds_bucket{le="0.004",profile="metrics-test-profile",result="unschedulable"} 1"#,
            r#"scheduler_framework_extension_point_duration_seconds_count{extension_point="PreFilter",profile="metrics-test-profile",status="Success"} 1"#,
            r#"scheduler_pending_pods{queue="gated"} 0"#,
            "scheduler_pod_scheduling_attempts_bucket{le=\"2.0\"}",
            r#"scheduler_queue_incoming_pods_total{event="PodAdd",queue="active"}"#,
        ] {
            assert!(text.contains(line), "no {line} in {text}");
        }
    }
}
