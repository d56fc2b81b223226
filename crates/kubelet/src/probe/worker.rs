//! One probe worker (upstream `pkg/kubelet/prober/worker.go`): the pure bookkeeping —
//! [`should_probe`] (initial delay, startup gating) and [`ProbeState`] (consecutive results
//! against the thresholds, the hold after a liveness or startup failure), tested by tables —
//! and the tokio task that probes one container instance every period with it.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use tokio::sync::Notify;

use super::manager::Shared;
use super::{positive, probe_once, probe_period, ProbeKind, ProbeResult, ProbeTarget};

/// How many times an attempt that errored (as opposed to failed) is repeated at once
/// (upstream's `maxProbeRetries`).
const MAX_RETRIES: usize = 3;

/// Whether a worker probes at this tick (the gates of upstream's `doProbe`, in its order):
/// not before `initialDelaySeconds` have passed since the container started (whole seconds);
/// the startup probe only until the container has started, the other two only after.
/// `started` is true when the container has no startup probe or passed it.
pub fn should_probe(kind: ProbeKind, probe: &Probe, since_start: Duration, started: bool) -> bool {
    let initial_delay = u64::from(
        probe
            .initial_delay_seconds
            .unwrap_or(0)
            .max(0)
            .unsigned_abs(),
    );
    if since_start.as_secs() < initial_delay {
        return false;
    }
    match kind {
        ProbeKind::Startup => !started,
        ProbeKind::Liveness | ProbeKind::Readiness => started,
    }
}

/// One container instance's result for one probe kind, as upstream's prober worker keeps it:
/// the published result starts at the kind's [initial value](ProbeKind::initial_result) and
/// changes only after `successThreshold` consecutive successes (default 1; always 1 for
/// liveness and startup) or `failureThreshold` consecutive failures (default 3). After a
/// published liveness or startup failure the state is on hold: the container is about to be
/// killed, and a new instance gets a new state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeState {
    kind: ProbeKind,
    success_threshold: u32,
    failure_threshold: u32,
    /// The published result: `Some(true)` success, `Some(false)` failure, `None` unknown.
    result: Option<bool>,
    /// The last attempt's outcome and how many times in a row it came out so.
    last: Option<bool>,
    run: u32,
    on_hold: bool,
}

impl ProbeState {
    /// A new container instance's state for `kind` with `probe`'s thresholds.
    pub fn new(kind: ProbeKind, probe: &Probe) -> ProbeState {
        let success_threshold = match kind {
            ProbeKind::Readiness => positive(probe.success_threshold, 1),
            ProbeKind::Liveness | ProbeKind::Startup => 1,
        };
        ProbeState {
            kind,
            success_threshold: u32::try_from(success_threshold).unwrap_or(u32::MAX),
            failure_threshold: u32::try_from(positive(probe.failure_threshold, 3))
                .unwrap_or(u32::MAX),
            result: kind.initial_result(),
            last: None,
            run: 0,
            on_hold: false,
        }
    }

    /// The published result: `Some(true)` success, `Some(false)` failure, `None` not known yet
    /// (a startup probe before its first verdict).
    pub fn result(&self) -> Option<bool> {
        self.result
    }

    /// Whether probing is on hold until a new container instance (after a published liveness
    /// or startup failure).
    pub fn on_hold(&self) -> bool {
        self.on_hold
    }

    /// Counts one attempt (`true`: success or warning, `false`: failure); returns whether the
    /// published result changed. Ignored while on hold.
    pub fn observe(&mut self, success: bool) -> bool {
        if self.on_hold {
            return false;
        }
        if self.last == Some(success) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(success);
            self.run = 1;
        }
        let threshold = if success {
            self.success_threshold
        } else {
            self.failure_threshold
        };
        if self.run < threshold {
            return false;
        }
        let changed = self.result != Some(success);
        self.result = Some(success);
        if !success && matches!(self.kind, ProbeKind::Liveness | ProbeKind::Startup) {
            self.on_hold = true;
            self.run = 0;
        }
        changed
    }
}

/// What a worker needs that does not change for its container instance.
pub(super) struct WorkerSpec {
    pub(super) uid: String,
    pub(super) container: Container,
    pub(super) container_id: String,
    pub(super) kind: ProbeKind,
    pub(super) probe: Probe,
    /// The container's start on tokio's clock.
    pub(super) started_at: tokio::time::Instant,
    pub(super) field_path: String,
}

/// What a worker reads from the shared state at each tick.
pub(super) struct Tick {
    pub(super) pod: Arc<Pod>,
    pub(super) pod_ip: String,
    pub(super) started: bool,
}

/// One probe worker: probes at once, then every period (or when triggered), until its
/// container instance is replaced or removed, or a liveness/startup verdict ends it.
pub(super) async fn run_worker(shared: Arc<Shared>, spec: WorkerSpec, trigger: Arc<Notify>) {
    let mut state = ProbeState::new(spec.kind, &spec.probe);
    let mut ticker = tokio::time::interval(probe_period(&spec.probe));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = trigger.notified() => {}
        }
        let Some(tick) = shared.tick(&spec) else {
            return;
        };
        let kind = spec.kind;
        // Graceful deletion: liveness and startup stop with a last success, so a container
        // shutting down is not restarted.
        if tick.pod.metadata.deletion_timestamp.is_some()
            && matches!(kind, ProbeKind::Liveness | ProbeKind::Startup)
        {
            shared.publish(&spec, Some(true));
            return;
        }
        let since_start = tokio::time::Instant::now().saturating_duration_since(spec.started_at);
        if !should_probe(kind, &spec.probe, since_start, tick.started) {
            if kind == ProbeKind::Startup && tick.started {
                // Started: this instance needs no more startup probing.
                return;
            }
            continue;
        }
        let target = ProbeTarget {
            pod_ip: &tick.pod_ip,
            container_id: &spec.container_id,
            container: &spec.container,
            runtime: shared.runtime.as_ref(),
        };
        let mut result = probe_once(&spec.probe, &target).await;
        for _ in 1..MAX_RETRIES {
            if !matches!(result, ProbeResult::Unknown(_)) {
                break;
            }
            result = probe_once(&spec.probe, &target).await;
        }
        let passed = match &result {
            ProbeResult::Success => true,
            ProbeResult::Warning(output) => {
                let message = format!("{} probe warning: {output}", kind.as_str());
                shared.event(&tick.pod, &spec, "ProbeWarning", message);
                true
            }
            ProbeResult::Failure(output) => {
                let message = format!("{} probe failed: {output}", kind.as_str());
                shared.event(&tick.pod, &spec, "Unhealthy", message);
                false
            }
            ProbeResult::Unknown(error) => {
                // Upstream records it and throws the attempt away.
                let message = format!(
                    "{} probe errored and resulted in unknown state: {error}",
                    kind.as_str()
                );
                shared.event(&tick.pod, &spec, "Unhealthy", message);
                tracing::debug!(
                    pod = %spec.uid, container = %spec.container.name, %error, "probe errored"
                );
                continue;
            }
        };
        if state.observe(passed) {
            shared.publish(&spec, state.result());
        }
        if state.on_hold() {
            // The container is about to be killed; its next instance gets a new worker.
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::probe::testing::*;
    use crate::probe::{probe_period, probe_timeout};

    #[test]
    fn thresholds() {
        use ProbeKind::*;
        // (kind, successThreshold, failureThreshold, attempts, published result after each
        // attempt, on hold at the end)
        type Case = (
            ProbeKind,
            Option<i32>,
            Option<i32>,
            &'static str,
            Vec<Option<bool>>,
            bool,
        );
        let cases: Vec<Case> = vec![
            // Readiness starts not ready; one success (default threshold) flips it.
            (Readiness, None, None, "S", vec![Some(true)], false),
            // Three failures in a row (default) to become unready again.
            (
                Readiness,
                None,
                None,
                "SFFF",
                vec![Some(true), Some(true), Some(true), Some(false)],
                false,
            ),
            // A success in between resets the failure run.
            (Readiness, None, None, "SFFSFF", vec![Some(true); 6], false),
            // successThreshold 3.
            (
                Readiness,
                Some(3),
                Some(1),
                "SSSF",
                vec![Some(false), Some(false), Some(true), Some(false)],
                false,
            ),
            // Readiness never holds: it keeps probing after failing.
            (
                Readiness,
                None,
                Some(1),
                "FS",
                vec![Some(false), Some(true)],
                false,
            ),
            // Liveness starts alive; fails after failureThreshold and then holds.
            (
                Liveness,
                None,
                None,
                "FFFS",
                vec![Some(true), Some(true), Some(false), Some(false)],
                true,
            ),
            (
                Liveness,
                None,
                Some(2),
                "FSFF",
                vec![Some(true), Some(true), Some(true), Some(false)],
                true,
            ),
            // successThreshold is always 1 for liveness and startup.
            (Liveness, Some(5), Some(1), "S", vec![Some(true)], false),
            // Startup starts unknown.
            (Startup, Some(5), None, "FS", vec![None, Some(true)], false),
            (
                Startup,
                None,
                Some(2),
                "FFS",
                vec![None, Some(false), Some(false)],
                true,
            ),
        ];
        for (kind, success, failure, attempts, expected, hold) in cases {
            let spec = probe(json!({"successThreshold": success, "failureThreshold": failure}));
            let mut state = ProbeState::new(kind, &spec);
            assert_eq!(state.result(), kind.initial_result());
            let mut results = Vec::new();
            for attempt in attempts.chars() {
                let before = state.result();
                let changed = state.observe(attempt == 'S');
                assert_eq!(changed, before != state.result(), "{kind:?} {attempts}");
                results.push(state.result());
            }
            assert_eq!(
                results, expected,
                "{kind:?} {success:?} {failure:?} {attempts}"
            );
            assert_eq!(state.on_hold(), hold, "{kind:?} {attempts}");
        }
    }

    #[test]
    fn gating() {
        use ProbeKind::*;
        let delayed = probe(json!({"initialDelaySeconds": 5}));
        let now = probe(json!({}));
        // (kind, probe, seconds since start, started, probes)
        let cases = [
            (Liveness, &delayed, 4.9, true, false),
            (Liveness, &delayed, 5.0, true, true),
            (Readiness, &delayed, 5.5, true, true),
            (Readiness, &now, 0.0, true, true),
            // Not started yet: only the startup probe runs.
            (Readiness, &now, 30.0, false, false),
            (Liveness, &now, 30.0, false, false),
            (Startup, &now, 0.0, false, true),
            (Startup, &delayed, 1.0, false, false),
            // Started: the startup probe is done.
            (Startup, &now, 30.0, true, false),
        ];
        for (kind, spec, seconds, started, expected) in cases {
            assert_eq!(
                should_probe(kind, spec, Duration::from_secs_f64(seconds), started),
                expected,
                "{kind:?} {seconds} {started}"
            );
        }
        assert_eq!(probe_timeout(&now), Duration::from_secs(1));
        assert_eq!(probe_period(&now), Duration::from_secs(10));
        assert_eq!(
            probe_period(&probe(json!({"periodSeconds": 3}))),
            Duration::from_secs(3)
        );
    }
}
