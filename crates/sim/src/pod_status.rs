//! What the fake kubelet posts for a pod, as pure functions of the pod: the Running and Ready
//! status once its (pretend) containers started, the Succeeded status of a pod told to
//! complete, the Failed status of a pod told to fail or whose containers were stopped by its
//! deletion; and the decision what to do with a pod the watch shows (`decide`).

use std::net::Ipv4Addr;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStatus,
    HostIP, Pod, PodCondition, PodIP, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Annotation asking the sim to finish a pod (phase Succeeded) this long after it started,
/// as a Go duration: `"5s"`, `"1m30s"`.
pub const COMPLETE_AFTER_ANNOTATION: &str = "sim.ferry.dev/complete-after";

/// Annotation asking the sim to fail a pod (phase Failed, its containers exited with
/// [`EXIT_CODE_ANNOTATION`], else 1) this long after it started, as a Go duration. When a pod
/// has both, the sooner happens (failing on a tie).
pub const FAIL_AFTER_ANNOTATION: &str = "sim.ferry.dev/fail-after";

/// Annotation giving the exit code of the containers of a pod told to fail (1 to 255).
pub const EXIT_CODE_ANNOTATION: &str = "sim.ferry.dev/exit-code";

/// The exit code of a pod told to fail without [`EXIT_CODE_ANNOTATION`].
const DEFAULT_EXIT_CODE: i32 = 1;

/// The exit code of a container stopped by SIGTERM (128 + 15).
const SIGTERM_EXIT_CODE: i32 = 143;

/// The QoS class of a pod, as upstream's `ComputePodQOS` of the pod as the API server
/// defaults it (requests default to limits).
pub fn qos_class(spec: &PodSpec) -> &'static str {
    let mut spec = spec.clone();
    ferry_api::qos::default_requests_from_limits(&mut spec);
    ferry_api::qos::compute_qos_class(&spec).as_str()
}

/// How a pod told to finish ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Succeeded, exit code 0.
    Succeed,
    /// Failed, with this exit code.
    Fail(i32),
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a String> {
    pod.metadata.annotations.as_ref()?.get(key)
}

fn duration_annotation(pod: &Pod, key: &str) -> Option<Duration> {
    let value = annotation(pod, key)?;
    let parsed = ferry_api::duration::parse_go(value);
    if parsed.is_none() {
        tracing::warn!(pod = ?pod.metadata.name, %value, "ignoring an invalid {key}");
    }
    parsed
}

/// The pod's `sim.ferry.dev/complete-after`, when it has a valid one.
pub fn complete_after(pod: &Pod) -> Option<Duration> {
    duration_annotation(pod, COMPLETE_AFTER_ANNOTATION)
}

/// When (after it started) and how the pod finishes, from `sim.ferry.dev/complete-after`,
/// `sim.ferry.dev/fail-after` and `sim.ferry.dev/exit-code`.
pub fn finish_after(pod: &Pod) -> Option<(Duration, Outcome)> {
    let exit_code = annotation(pod, EXIT_CODE_ANNOTATION).map_or(DEFAULT_EXIT_CODE, |value| {
        match value.parse::<i32>() {
            Ok(code) if (1..=255).contains(&code) => code,
            _ => {
                tracing::warn!(pod = ?pod.metadata.name, %value, "ignoring an invalid {EXIT_CODE_ANNOTATION}");
                DEFAULT_EXIT_CODE
            }
        }
    });
    let fail =
        duration_annotation(pod, FAIL_AFTER_ANNOTATION).map(|d| (d, Outcome::Fail(exit_code)));
    let complete = complete_after(pod).map(|d| (d, Outcome::Succeed));
    match (fail, complete) {
        (Some(f), Some(c)) => Some(if c.0 < f.0 { c } else { f }),
        (f, c) => f.or(c),
    }
}

fn condition(type_: &str, status: &str, reason: Option<&str>, at: Timestamp) -> PodCondition {
    PodCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.map(str::to_string),
        last_transition_time: Some(Time(at)),
        ..PodCondition::default()
    }
}

/// The PodScheduled condition as the scheduler (or the binding) set it, else True now.
fn scheduled_condition(pod: &Pod, now: Timestamp) -> PodCondition {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| {
            c.iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "True")
        })
        .cloned()
        .unwrap_or_else(|| condition("PodScheduled", "True", None, now))
}

fn container_id(pod: &Pod, container: &Container) -> String {
    format!(
        "fake://{}-{}",
        pod.metadata.uid.as_deref().unwrap_or_default(),
        container.name
    )
}

fn image(container: &Container) -> String {
    container.image.clone().unwrap_or_default()
}

fn container_status(
    pod: &Pod,
    container: &Container,
    state: ContainerState,
    ready: bool,
    started: bool,
) -> ContainerStatus {
    ContainerStatus {
        name: container.name.clone(),
        image: image(container),
        image_id: format!("fake://{}", image(container)),
        container_id: Some(container_id(pod, container)),
        ready,
        started: Some(started),
        restart_count: 0,
        state: Some(state),
        ..ContainerStatus::default()
    }
}

fn running(at: Timestamp) -> ContainerState {
    ContainerState {
        running: Some(ContainerStateRunning {
            started_at: Some(Time(at)),
        }),
        ..ContainerState::default()
    }
}

fn terminated(
    pod: &Pod,
    container: &Container,
    exit_code: i32,
    reason: &str,
    started: Timestamp,
    finished: Timestamp,
) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code,
            reason: Some(reason.to_string()),
            started_at: Some(Time(started)),
            finished_at: Some(Time(finished)),
            container_id: Some(container_id(pod, container)),
            ..ContainerStateTerminated::default()
        }),
        ..ContainerState::default()
    }
}

/// A sidecar: an init container with `restartPolicy: Always`, which keeps running.
fn is_sidecar(container: &Container) -> bool {
    container.restart_policy.as_deref() == Some("Always")
}

fn spec(pod: &Pod) -> PodSpec {
    pod.spec.clone().unwrap_or_default()
}

/// Init containers as they end up once the pod runs: completed (exit 0), sidecars running.
fn init_statuses(pod: &Pod, started: Timestamp, now: Timestamp) -> Option<Vec<ContainerStatus>> {
    let spec = spec(pod);
    let statuses: Vec<ContainerStatus> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| {
            if is_sidecar(c) {
                container_status(pod, c, running(started), true, true)
            } else {
                container_status(
                    pod,
                    c,
                    terminated(pod, c, 0, "Completed", started, now),
                    true,
                    false,
                )
            }
        })
        .collect();
    (!statuses.is_empty()).then_some(statuses)
}

/// Where a pod runs: its node's address and its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// The node's InternalIP.
    pub host_ip: Ipv4Addr,
    /// The pod's IP (the node's for `hostNetwork` pods).
    pub pod_ip: Ipv4Addr,
}

/// The status of a pod whose containers all started at `now`: Running, Ready.
pub fn running_status(pod: &Pod, placement: Placement, now: Timestamp) -> PodStatus {
    let spec = spec(pod);
    let containers = spec
        .containers
        .iter()
        .map(|c| container_status(pod, c, running(now), true, true))
        .collect();
    PodStatus {
        phase: Some("Running".into()),
        conditions: Some(vec![
            condition("PodReadyToStartContainers", "True", None, now),
            condition("Initialized", "True", None, now),
            condition("Ready", "True", None, now),
            condition("ContainersReady", "True", None, now),
            scheduled_condition(pod, now),
        ]),
        host_ip: Some(placement.host_ip.to_string()),
        host_ips: Some(vec![HostIP {
            ip: placement.host_ip.to_string(),
        }]),
        pod_ip: Some(placement.pod_ip.to_string()),
        pod_ips: Some(vec![PodIP {
            ip: placement.pod_ip.to_string(),
        }]),
        start_time: Some(Time(now)),
        qos_class: Some(qos_class(&spec).into()),
        container_statuses: Some(containers),
        init_container_statuses: init_statuses(pod, now, now),
        ..PodStatus::default()
    }
}

/// When the pod's containers started (its `startTime`), else `now`.
fn started_at(pod: &Pod, now: Timestamp) -> Timestamp {
    pod.status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map_or(now, |t| t.0)
}

/// The status of a pod whose containers stopped at `now`: all exited with `exit_code`
/// (`reason`), so the pod is in `phase`; the rest of its status (IPs, start time) stays as
/// posted before, since this goes out as a merge patch.
fn stopped_status(
    pod: &Pod,
    phase: &str,
    exit_code: i32,
    reason: &str,
    now: Timestamp,
) -> PodStatus {
    let spec = spec(pod);
    let started = started_at(pod, now);
    let containers = spec
        .containers
        .iter()
        .map(|c| {
            container_status(
                pod,
                c,
                terminated(pod, c, exit_code, reason, started, now),
                false,
                false,
            )
        })
        .collect();
    let inits = spec.init_containers.as_ref().map(|inits| {
        inits
            .iter()
            .map(|c| {
                let code = if is_sidecar(c) { exit_code } else { 0 };
                let reason = if is_sidecar(c) { reason } else { "Completed" };
                container_status(
                    pod,
                    c,
                    terminated(pod, c, code, reason, started, now),
                    false,
                    false,
                )
            })
            .collect()
    });
    let not_ready = if phase == "Succeeded" {
        "PodCompleted"
    } else {
        "PodFailed"
    };
    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(vec![
            condition("PodReadyToStartContainers", "False", None, now),
            condition(
                "Initialized",
                "True",
                Some(not_ready).filter(|_| phase == "Succeeded"),
                started,
            ),
            condition("Ready", "False", Some(not_ready), now),
            condition("ContainersReady", "False", Some(not_ready), now),
            scheduled_condition(pod, now),
        ]),
        container_statuses: Some(containers),
        init_container_statuses: inits,
        ..PodStatus::default()
    }
}

/// The status of a pod told to complete: Succeeded, containers terminated Completed (0).
pub fn succeeded_status(pod: &Pod, now: Timestamp) -> PodStatus {
    stopped_status(pod, "Succeeded", 0, "Completed", now)
}

/// The status of a pod told to fail: Failed, containers terminated with `exit_code` ("Error").
pub fn failed_status(pod: &Pod, exit_code: i32, now: Timestamp) -> PodStatus {
    stopped_status(pod, "Failed", exit_code, "Error", now)
}

/// The status a pod told to finish ends with.
pub fn finished_status(pod: &Pod, outcome: Outcome, now: Timestamp) -> PodStatus {
    match outcome {
        Outcome::Succeed => succeeded_status(pod, now),
        Outcome::Fail(code) => failed_status(pod, code, now),
    }
}

/// The status of a running pod being deleted once its containers stopped on SIGTERM: Failed,
/// containers terminated with 143 ("Error"), as the kubelet makes a deleted pod terminal
/// before it removes it.
pub fn killed_status(pod: &Pod, now: Timestamp) -> PodStatus {
    stopped_status(pod, "Failed", SIGTERM_EXIT_CODE, "Error", now)
}

/// What the sim has done with a pod so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracked {
    /// Its containers are "starting": it goes Running after the start delay.
    Starting,
    /// The sim posted Running (or found it Running after a restart).
    Running,
    /// Its containers have exited; nothing more to do until it is deleted.
    Finished,
    /// Its containers were stopped and the pod deleted (it may linger for finalizers).
    Terminating,
}

/// What to do with a pod the watch shows, bound to a live node of the sim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing (already handled, or nothing to do).
    Nothing,
    /// Start it: Running after the start delay.
    Start,
    /// It runs already (the sim restarted): take it over with its IP, and finish it at
    /// `finish_in` if it asks for that.
    Adopt {
        /// Its `status.podIP`, to keep reserved.
        pod_ip: Option<Ipv4Addr>,
        /// How long until it finishes, and how, if it has `sim.ferry.dev/complete-after` or
        /// `sim.ferry.dev/fail-after`.
        finish_in: Option<(Duration, Outcome)>,
    },
    /// It is being deleted: stop its containers (a Failed status if it ran) and delete it
    /// with grace period 0.
    Kill {
        /// Whether it was running, so its status must say its containers stopped.
        post_status: bool,
    },
}

/// What to do with `pod` (bound to a live sim node), which the sim has handled as `tracked`.
pub fn decide(pod: &Pod, tracked: Option<Tracked>, now: Timestamp) -> Decision {
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending");
    let terminal = matches!(phase, "Succeeded" | "Failed");
    if pod.metadata.deletion_timestamp.is_some() {
        return match tracked {
            Some(Tracked::Terminating) => Decision::Nothing,
            Some(Tracked::Finished) => Decision::Kill { post_status: false },
            Some(Tracked::Starting | Tracked::Running) | None => Decision::Kill {
                post_status: !terminal && (phase == "Running" || tracked == Some(Tracked::Running)),
            },
        };
    }
    if tracked.is_some() || terminal {
        return Decision::Nothing;
    }
    if phase == "Running" {
        let pod_ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse().ok());
        let finish_in = finish_after(pod).map(|(after, outcome)| {
            let elapsed = now
                .duration_since(started_at(pod, now))
                .try_into()
                .unwrap_or(Duration::ZERO);
            (after.saturating_sub(elapsed), outcome)
        });
        return Decision::Adopt { pod_ip, finish_in };
    }
    Decision::Start
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).expect("pod")
    }

    fn t(s: &str) -> Timestamp {
        s.parse().expect("time")
    }

    #[test]
    fn qos_classes_as_upstream() {
        let r = |requests: serde_json::Value, limits: serde_json::Value| json!({"name": "c", "resources": {"requests": requests, "limits": limits}});
        let table = [
            (json!([{"name": "c"}]), "BestEffort"),
            (json!([r(json!({}), json!({}))]), "BestEffort"),
            (json!([r(json!({"cpu": "0"}), json!({}))]), "BestEffort"),
            (json!([r(json!({"cpu": "1"}), json!({}))]), "Burstable"),
            (
                json!([r(json!({}), json!({"cpu": "1", "memory": "1Gi"}))]),
                "Guaranteed",
            ),
            (
                json!([r(
                    json!({"cpu": "1000m", "memory": "1024Mi"}),
                    json!({"cpu": "1", "memory": "1Gi"})
                )]),
                "Guaranteed",
            ),
            (
                json!([r(
                    json!({"cpu": "500m", "memory": "1Gi"}),
                    json!({"cpu": "1", "memory": "1Gi"})
                )]),
                "Burstable",
            ),
            (json!([r(json!({}), json!({"cpu": "1"}))]), "Burstable"),
            (
                json!([r(json!({}), json!({"cpu": "1", "memory": "1Gi"})), {"name": "d"}]),
                "Burstable",
            ),
            (
                json!([r(
                    json!({"nvidia.com/gpu": "1"}),
                    json!({"nvidia.com/gpu": "1"})
                )]),
                "BestEffort",
            ),
        ];
        for (containers, want) in table {
            let spec: PodSpec =
                serde_json::from_value(json!({"containers": containers})).expect("spec");
            assert_eq!(qos_class(&spec), want, "{containers}");
        }
        let with_init: PodSpec = serde_json::from_value(json!({
            "containers": [r(json!({}), json!({"cpu": "1", "memory": "1Gi"}))],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "1"}}}],
        }))
        .expect("spec");
        assert_eq!(qos_class(&with_init), "Burstable", "init containers count");
    }

    fn sample() -> Pod {
        pod(json!({
            "metadata": {"name": "p", "namespace": "d", "uid": "u1"},
            "spec": {
                "nodeName": "sim-0",
                "initContainers": [{"name": "init", "image": "busybox"}, {"name": "side", "image": "envoy", "restartPolicy": "Always"}],
                "containers": [
                    {"name": "app", "image": "nginx:1.27", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
                    {"name": "log", "image": "fluentbit"},
                ],
            },
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"}]},
        }))
    }

    #[test]
    fn running_status_from_the_spec() {
        let now = t("2025-01-01T00:00:05Z");
        let placement = Placement {
            host_ip: Ipv4Addr::new(10, 128, 0, 1),
            pod_ip: Ipv4Addr::new(10, 42, 0, 2),
        };
        let status = serde_json::to_value(running_status(&sample(), placement, now)).expect("json");
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["hostIP"], "10.128.0.1");
        assert_eq!(status["hostIPs"], json!([{"ip": "10.128.0.1"}]));
        assert_eq!(status["podIP"], "10.42.0.2");
        assert_eq!(status["podIPs"], json!([{"ip": "10.42.0.2"}]));
        assert_eq!(status["startTime"], "2025-01-01T00:00:05Z");
        assert_eq!(status["qosClass"], "Burstable");
        let conditions: Vec<(&str, &str, &str)> = status["conditions"]
            .as_array()
            .expect("conditions")
            .iter()
            .map(|c| {
                (
                    c["type"].as_str().unwrap_or(""),
                    c["status"].as_str().unwrap_or(""),
                    c["lastTransitionTime"].as_str().unwrap_or(""),
                )
            })
            .collect();
        let at = "2025-01-01T00:00:05Z";
        assert_eq!(
            conditions,
            [
                ("PodReadyToStartContainers", "True", at),
                ("Initialized", "True", at),
                ("Ready", "True", at),
                ("ContainersReady", "True", at),
                ("PodScheduled", "True", "2025-01-01T00:00:00Z"),
            ]
        );
        let app = &status["containerStatuses"][0];
        assert_eq!(app["name"], "app");
        assert_eq!(app["image"], "nginx:1.27");
        assert_eq!(app["imageID"], "fake://nginx:1.27");
        assert_eq!(app["containerID"], "fake://u1-app");
        assert_eq!(
            (&app["ready"], &app["started"], &app["restartCount"]),
            (&json!(true), &json!(true), &json!(0))
        );
        assert_eq!(app["state"]["running"]["startedAt"], at);
        assert_eq!(status["containerStatuses"][1]["name"], "log");
        let init = &status["initContainerStatuses"];
        assert_eq!(init[0]["state"]["terminated"]["reason"], "Completed");
        assert_eq!(init[0]["state"]["terminated"]["exitCode"], 0);
        assert_eq!(
            init[1]["state"]["running"]["startedAt"], at,
            "sidecars keep running"
        );
    }

    #[test]
    fn stopped_statuses() {
        let mut p = sample();
        let start = t("2025-01-01T00:00:05Z");
        let now = t("2025-01-01T00:01:00Z");
        let placement = Placement {
            host_ip: Ipv4Addr::new(10, 128, 0, 1),
            pod_ip: Ipv4Addr::new(10, 42, 0, 2),
        };
        p.status = Some(running_status(&p, placement, start));
        let done = serde_json::to_value(succeeded_status(&p, now)).expect("json");
        assert_eq!(done["phase"], "Succeeded");
        let app = &done["containerStatuses"][0];
        assert_eq!(app["state"]["terminated"]["reason"], "Completed");
        assert_eq!(app["state"]["terminated"]["exitCode"], 0);
        assert_eq!(
            app["state"]["terminated"]["startedAt"],
            "2025-01-01T00:00:05Z"
        );
        assert_eq!(app["ready"], false);
        assert_eq!(
            done["conditions"][2],
            json!({"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": "2025-01-01T00:01:00Z"})
        );
        let killed = serde_json::to_value(killed_status(&p, now)).expect("json");
        assert_eq!(killed["phase"], "Failed");
        assert_eq!(
            killed["containerStatuses"][1]["state"]["terminated"]["exitCode"],
            143
        );
        assert_eq!(
            killed["initContainerStatuses"][0]["state"]["terminated"]["exitCode"],
            0
        );
    }

    #[test]
    fn pods_told_to_fail() {
        let with = |annotations: serde_json::Value| {
            let mut p = sample();
            p.metadata.annotations = serde_json::from_value(annotations).expect("annotations");
            p
        };
        let secs = Duration::from_secs;
        let cases = [
            (json!({}), None),
            (
                json!({COMPLETE_AFTER_ANNOTATION: "5s"}),
                Some((secs(5), Outcome::Succeed)),
            ),
            (
                json!({FAIL_AFTER_ANNOTATION: "2s"}),
                Some((secs(2), Outcome::Fail(1))),
            ),
            (
                json!({FAIL_AFTER_ANNOTATION: "2s", EXIT_CODE_ANNOTATION: "42"}),
                Some((secs(2), Outcome::Fail(42))),
            ),
            (
                json!({FAIL_AFTER_ANNOTATION: "2s", EXIT_CODE_ANNOTATION: "0"}),
                Some((secs(2), Outcome::Fail(1))),
            ),
            (
                json!({FAIL_AFTER_ANNOTATION: "9s", COMPLETE_AFTER_ANNOTATION: "5s"}),
                Some((secs(5), Outcome::Succeed)),
            ),
            (
                json!({FAIL_AFTER_ANNOTATION: "5s", COMPLETE_AFTER_ANNOTATION: "5s"}),
                Some((secs(5), Outcome::Fail(1))),
            ),
            (json!({FAIL_AFTER_ANNOTATION: "soon"}), None),
        ];
        for (annotations, want) in cases {
            assert_eq!(
                finish_after(&with(annotations.clone())),
                want,
                "{annotations}"
            );
        }
        let now = t("2025-01-01T00:01:00Z");
        let failed =
            serde_json::to_value(finished_status(&sample(), Outcome::Fail(42), now)).expect("json");
        assert_eq!(failed["phase"], "Failed");
        let app = &failed["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(
            (&app["exitCode"], &app["reason"]),
            (&json!(42), &json!("Error"))
        );
        assert_eq!(failed["conditions"][2]["reason"], "PodFailed");
    }

    #[test]
    fn decisions() {
        let now = t("2025-01-01T00:00:10Z");
        let pending = sample();
        let mut running = sample();
        running.status = Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some("10.42.0.9".into()),
            start_time: Some(Time(t("2025-01-01T00:00:04Z"))),
            ..PodStatus::default()
        });
        let mut completing = running.clone();
        completing.metadata.annotations =
            Some([(COMPLETE_AFTER_ANNOTATION.to_string(), "10s".to_string())].into());
        let mut deleting = running.clone();
        deleting.metadata.deletion_timestamp = Some(Time(now));
        let mut deleting_pending = pending.clone();
        deleting_pending.metadata.deletion_timestamp = Some(Time(now));
        let mut succeeded = sample();
        succeeded.status = Some(PodStatus {
            phase: Some("Succeeded".into()),
            ..PodStatus::default()
        });
        let adopt = |ip: Option<[u8; 4]>, complete_in: Option<u64>| Decision::Adopt {
            pod_ip: ip.map(Ipv4Addr::from),
            finish_in: complete_in.map(|s| (Duration::from_secs(s), Outcome::Succeed)),
        };
        let table = [
            (&pending, None, Decision::Start),
            (&pending, Some(Tracked::Starting), Decision::Nothing),
            (&running, None, adopt(Some([10, 42, 0, 9]), None)),
            (&running, Some(Tracked::Running), Decision::Nothing),
            (&completing, None, adopt(Some([10, 42, 0, 9]), Some(4))),
            (&succeeded, None, Decision::Nothing),
            (&deleting, None, Decision::Kill { post_status: true }),
            (
                &deleting,
                Some(Tracked::Running),
                Decision::Kill { post_status: true },
            ),
            (&deleting, Some(Tracked::Terminating), Decision::Nothing),
            (
                &deleting_pending,
                Some(Tracked::Starting),
                Decision::Kill { post_status: false },
            ),
            (
                &deleting_pending,
                Some(Tracked::Running),
                Decision::Kill { post_status: true },
            ),
        ];
        for (i, (pod, tracked, want)) in table.into_iter().enumerate() {
            assert_eq!(decide(pod, tracked, now), want, "case {i}");
        }
    }
}
