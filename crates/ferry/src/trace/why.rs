//! How a journey ends when the pod is not Ready: why it is still Pending (the scheduler's
//! words), why it is crashing (exit code, reason, log tail and the back-off until the next
//! try), or why it is not ready (its Ready condition and containers' readiness).

use std::time::Duration;

use ferry_journey::SpanRecord;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

/// Why a pod that is not scheduled is Pending: the latest "unschedulable" step's `why` (the
/// scheduler's sentence), else its `error` (upstream's FailedScheduling message), else the
/// pod's PodScheduled condition message. `None` once the pod has a node.
pub fn pending(pod: &Pod, steps: &[&SpanRecord]) -> Option<String> {
    if pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
    {
        return None;
    }
    let latest = steps
        .iter()
        .filter(|s| s.step == "unschedulable")
        .max_by_key(|s| (s.end_unix_nanos, s.start_unix_nanos));
    let from_step = latest.and_then(|s| {
        s.attributes
            .get("why")
            .filter(|w| !w.is_empty())
            .cloned()
            .or_else(|| s.error.clone())
    });
    from_step.or_else(|| scheduled_condition(pod))
}

/// The PodScheduled condition's message (or reason) while it is not True.
fn scheduled_condition(pod: &Pod) -> Option<String> {
    let condition = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status != "True")?;
    condition
        .message
        .clone()
        .filter(|m| !m.is_empty())
        .or_else(|| condition.reason.clone())
}

/// A container that crashed: what the kubelet reports of its last run and its back-off.
#[derive(Clone, Debug, PartialEq)]
pub struct Crash {
    /// The container's name.
    pub container: String,
    /// How many times it was restarted.
    pub restart_count: i32,
    /// Why it waits (`CrashLoopBackOff`), if it does.
    pub waiting: Option<String>,
    /// The last run's exit code.
    pub exit_code: Option<i32>,
    /// The last run's reason (`Error`, `OOMKilled`, `Completed`).
    pub reason: Option<String>,
    /// When the last run ended.
    pub finished_at: Option<Timestamp>,
    /// The back-off the kubelet waits before the next try.
    pub backoff_seconds: Option<u64>,
    /// When the next try is due.
    pub next_try_at: Option<Timestamp>,
    /// The last lines of the previous run's log.
    pub log_tail: Vec<String>,
}

impl Crash {
    /// As `ferry trace -o json` prints it (times in RFC 3339, as the API writes them).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "container": self.container,
            "restartCount": self.restart_count,
            "waiting": self.waiting,
            "exitCode": self.exit_code,
            "reason": self.reason,
            "finishedAt": self.finished_at.map(|t| t.to_string()),
            "backoffSeconds": self.backoff_seconds,
            "nextTryAt": self.next_try_at.map(|t| t.to_string()),
            "logTail": self.log_tail,
        })
    }
}

/// The first container that is in CrashLoopBackOff, else the first that was restarted.
pub fn crashed(pod: &Pod) -> Option<Crash> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let waiting_reason = |c: &ContainerStatus| c.state.as_ref()?.waiting.as_ref()?.reason.clone();
    let status = statuses
        .iter()
        .find(|c| waiting_reason(c).as_deref() == Some("CrashLoopBackOff"))
        .or_else(|| statuses.iter().find(|c| c.restart_count > 0))?;
    let last = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref());
    let finished_at = last.and_then(|t| t.finished_at.as_ref()).map(|t| t.0);
    let backoff = status
        .state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.message.as_deref())
        .and_then(backoff_of);
    Some(Crash {
        container: status.name.clone(),
        restart_count: status.restart_count,
        waiting: waiting_reason(status),
        exit_code: last.map(|t| t.exit_code),
        reason: last.and_then(|t| t.reason.clone()),
        finished_at,
        backoff_seconds: backoff.map(|b| b.as_secs()),
        next_try_at: finished_at.zip(backoff).and_then(|(at, b)| next_try(at, b)),
        log_tail: Vec::new(),
    })
}

/// The back-off in the kubelet's waiting message, upstream's wording:
/// `back-off 40s restarting failed container=app pod=web_default(uid)`.
pub fn backoff_of(message: &str) -> Option<Duration> {
    let rest = message.trim_start().strip_prefix("back-off ")?;
    let value = rest.split_whitespace().next()?;
    ferry_api::duration::parse_go(value)
}

/// When the kubelet tries again: the last run's end plus the back-off.
pub fn next_try(finished_at: Timestamp, backoff: Duration) -> Option<Timestamp> {
    let backoff = jiff::SignedDuration::try_from(backoff).ok()?;
    finished_at.checked_add(backoff).ok()
}

/// `next try in 23s`, or `next try due now` once it is past.
pub fn next_try_words(next: Timestamp, now: Timestamp) -> String {
    let left = next.duration_since(now);
    if left.is_positive() {
        // Round up: "in 0s" would read as due.
        let secs = left.as_secs() + i64::from(left.subsec_nanos() > 0);
        format!("next try in {secs}s")
    } else {
        "next try due now".to_string()
    }
}

/// The lines that end a crashing pod's journey.
pub fn crash_lines(crash: &Crash, now: Timestamp) -> Vec<String> {
    let mut head = format!(
        "Crashing: container {} restarted {} times",
        crash.container, crash.restart_count
    );
    if let Some(waiting) = &crash.waiting {
        head.push_str(&format!(", {waiting}"));
    }
    let mut lines = vec![head];
    if let Some(code) = crash.exit_code {
        let reason = crash.reason.as_deref().unwrap_or("no reason given");
        let at = crash
            .finished_at
            .map(|t| format!(" at {t}"))
            .unwrap_or_default();
        lines.push(format!("  last run exited with code {code} ({reason}){at}"));
    }
    match (crash.backoff_seconds, crash.next_try_at) {
        (Some(backoff), Some(next)) => lines.push(format!(
            "  back-off {backoff}s: {}",
            next_try_words(next, now)
        )),
        (Some(backoff), None) => lines.push(format!("  back-off {backoff}s")),
        _ => {}
    }
    if !crash.log_tail.is_empty() {
        lines.push(format!(
            "  last {} log lines of the previous run:",
            crash.log_tail.len()
        ));
        lines.extend(crash.log_tail.iter().map(|l| format!("  | {l}")));
    }
    lines
}

/// Why a running pod that does not crash is not Ready: its Ready condition and each
/// container's readiness. `None` when it is Ready or not running.
pub fn not_ready(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() != Some("Running") {
        return None;
    }
    let ready = status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    if ready.status == "True" {
        return None;
    }
    let mut out = "Not ready".to_string();
    for part in [&ready.reason, &ready.message].into_iter().flatten() {
        out.push_str(": ");
        out.push_str(part);
    }
    let containers: Vec<String> = status
        .container_statuses
        .iter()
        .flatten()
        .map(|c| format!("{} ready={}", c.name, c.ready))
        .collect();
    if !containers.is_empty() {
        out.push_str(&format!(" (containers: {})", containers.join(", ")));
    }
    Some(out)
}

/// Whether the pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::lineage::tests::span;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).expect("a pod")
    }

    fn unschedulable(end: u64, why: Option<&str>, error: Option<&str>) -> SpanRecord {
        let mut s = span(
            "1",
            None,
            "unschedulable",
            "kube-scheduler",
            "pods/ns/p",
            Some("u"),
        );
        s.end_unix_nanos = end;
        if let Some(why) = why {
            s.attributes.insert("why".into(), why.into());
        }
        s.error = error.map(str::to_string);
        s
    }

    #[test]
    fn pending_reads_the_latest_step_then_its_error_then_the_condition() {
        let p = pod(
            serde_json::json!({"status": {"conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient cpu."}]}}),
        );
        let old = unschedulable(1, Some("old words"), None);
        let new = unschedulable(
            2,
            Some(
                "3 nodes: 1 had untolerated taint node.kubernetes.io/not-ready, 2 Insufficient cpu",
            ),
            Some("0/3 nodes"),
        );
        let no_why = unschedulable(
            3,
            None,
            Some("0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."),
        );
        let table: Vec<(Vec<&SpanRecord>, &str)> = vec![
            (
                vec![&new, &old],
                "3 nodes: 1 had untolerated taint node.kubernetes.io/not-ready, 2 Insufficient cpu",
            ),
            (
                vec![&old, &new, &no_why],
                "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.",
            ),
            (vec![], "0/3 nodes are available: 3 Insufficient cpu."),
        ];
        for (steps, want) in table {
            assert_eq!(pending(&p, &steps).as_deref(), Some(want));
        }
        let bound = pod(serde_json::json!({"spec": {"containers": [], "nodeName": "n1"}}));
        assert_eq!(pending(&bound, &[&new]), None);
        assert_eq!(pending(&pod(serde_json::json!({})), &[]), None);
    }

    #[test]
    fn backoff_is_read_from_the_kubelets_words() {
        let table = [
            (
                "back-off 40s restarting failed container=app pod=web_default(u1)",
                Some(40),
            ),
            (
                "back-off 5m0s restarting failed container=app pod=web_default(u1)",
                Some(300),
            ),
            (
                "back-off 1m20s restarting failed container=c pod=p_ns(u)",
                Some(80),
            ),
            ("Back-off pulling image \"nginx\"", None),
            ("", None),
        ];
        for (message, want) in table {
            assert_eq!(
                backoff_of(message).map(|d| d.as_secs()),
                want,
                "{message:?}"
            );
        }
    }

    #[test]
    fn the_next_try_is_the_last_end_plus_the_backoff() {
        let finished: Timestamp = "2026-12-07T07:00:00Z".parse().expect("time");
        let next = next_try(finished, Duration::from_secs(40)).expect("in range");
        assert_eq!(next.to_string(), "2026-12-07T07:00:40Z");
        let at = |s: &str| s.parse::<Timestamp>().expect("time");
        assert_eq!(
            next_try_words(next, at("2026-12-07T07:00:17Z")),
            "next try in 23s"
        );
        assert_eq!(
            next_try_words(next, at("2026-12-07T07:00:16.5Z")),
            "next try in 24s"
        );
        assert_eq!(
            next_try_words(next, at("2026-12-07T07:00:40Z")),
            "next try due now"
        );
        assert_eq!(
            next_try_words(next, at("2026-12-07T07:01:00Z")),
            "next try due now"
        );
    }

    #[test]
    fn a_crash_loop_reads_as_exit_code_reason_and_next_try() {
        let p = pod(
            serde_json::json!({"status": {"phase": "Running", "containerStatuses": [
            {"name": "side", "ready": true, "restartCount": 0, "image": "i", "imageID": "", "state": {"running": {}}},
            {"name": "app", "ready": false, "restartCount": 3, "image": "i", "imageID": "",
             "state": {"waiting": {"reason": "CrashLoopBackOff",
                "message": "back-off 40s restarting failed container=app pod=web_default(u1)"}},
             "lastState": {"terminated": {"exitCode": 2, "reason": "Error", "finishedAt": "2026-12-07T07:00:00Z"}}}]}}),
        );
        let mut crash = crashed(&p).expect("crashing");
        crash.log_tail = vec!["starting".into(), "panic: no config".into()];
        let now: Timestamp = "2026-12-07T07:00:17Z".parse().expect("time");
        assert_eq!(
            crash_lines(&crash, now).join("\n"),
            "\
Crashing: container app restarted 3 times, CrashLoopBackOff
  last run exited with code 2 (Error) at 2026-12-07T07:00:00Z
  back-off 40s: next try in 23s
  last 2 log lines of the previous run:
  | starting
  | panic: no config"
        );
        let fine = pod(serde_json::json!({"status": {"containerStatuses": [
            {"name": "a", "ready": true, "restartCount": 0, "image": "i", "imageID": ""}]}}));
        assert_eq!(crashed(&fine), None);
    }

    #[test]
    fn not_ready_without_a_crash_names_the_condition_and_containers() {
        let p = pod(serde_json::json!({"status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady",
                "message": "containers with unready status: [app]"}],
            "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0, "image": "i", "imageID": ""}]}}));
        assert_eq!(
            not_ready(&p).as_deref(),
            Some("Not ready: ContainersNotReady: containers with unready status: [app] (containers: app ready=false)")
        );
        assert!(!is_ready(&p));
        let ready = pod(serde_json::json!({"status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}]}}));
        assert_eq!(not_ready(&ready), None);
        assert!(is_ready(&ready));
    }
}
