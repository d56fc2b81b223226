//! Table tests of the pure parts: upstream's `replica_calculator_test.go` cases rewritten
//! (`resource.rs`: the pods, their readiness and start times, the metric levels per container;
//! `pods.rs`: plain, object and external metrics, pod grouping and requests), and the
//! stabilization and policy rules of `horizontal_test.go` (`behavior.rs`).

mod behavior;
mod pods;
mod resource;

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::replicas::ReplicaCalculator;

/// Upstream's testing settings: tolerance 0.1, a 2-minute CPU initialization period, 10 s of
/// initial readiness delay.
pub(super) const CALCULATOR: ReplicaCalculator = ReplicaCalculator {
    tolerance: 0.1,
    cpu_initialization_period: Duration::from_secs(120),
    delay_of_initial_readiness_status: Duration::from_secs(10),
};

pub(super) fn now() -> Timestamp {
    "2025-06-01T12:00:00Z".parse().expect("now")
}

pub(super) fn ago(seconds: i64) -> Timestamp {
    now() - SignedDuration::from_secs(seconds)
}
