//! The pod worker's journey steps that need memory between syncs (see [`crate::journey`]):
//! `pod seen` on the first sync, `volumes mounted` on the first successful set-up (a failure
//! once per distinct error), and `container exited` / `init container completed` once per
//! exited container instance. The steps around one action (the sandbox, a container's start,
//! the status that makes the pod Ready) are recorded where that action is.

use std::collections::{BTreeMap, HashSet};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodStatus};
use tracing::field::Empty;
use tracing::Instrument;

use super::plan::is_sidecar;
use super::pod_status::terminated_of;
use super::{find_container, Instance, Observed, PodWorker};
use crate::journey::{cri_nanos, nanos, pod_step, start_at};
use crate::podconfig::VolumeHostPath;
use crate::volume::VolumeError;

/// Which of the pod's once-only journey steps the worker has recorded.
#[derive(Debug, Default)]
pub struct StepsRecorded {
    /// `pod seen`.
    seen: bool,
    /// How far `volumes mounted` is.
    volumes: VolumesStep,
    /// The exited container instances whose exit is recorded, by id.
    exits: HashSet<String>,
}

/// The `volumes mounted` step: not tried yet, failed (with the error last recorded), or done.
#[derive(Debug, Default)]
enum VolumesStep {
    #[default]
    Pending,
    Failed(String),
    Mounted,
}

impl PodWorker {
    /// `pod seen`, on the worker's first sync: from when the pod watch delivered the pod (the
    /// worker was made then) to the sync that takes it up.
    pub(super) fn record_pod_seen(&mut self, pod: &Pod) {
        if std::mem::replace(&mut self.state.journey.seen, true) {
            return;
        }
        let span = pod_step!(&pod.metadata, "pod seen", node = %self.shared.node.node_name);
        start_at(&span, Some(nanos(self.state.first_seen)));
    }

    /// Prepares the pod's volumes; the first attempt is the `volumes mounted` step. Retries
    /// after a failure are recorded when they come out differently: the success, or a new
    /// error (a step after the fact, from the retry's start).
    pub(super) async fn mount_volumes(
        &mut self,
        pod: &Pod,
    ) -> Result<BTreeMap<String, VolumeHostPath>, VolumeError> {
        let (span, retry_started) = match self.state.journey.volumes {
            VolumesStep::Pending => (
                pod_step!(&pod.metadata, "volumes mounted", volumes = Empty),
                None,
            ),
            VolumesStep::Failed(_) => (tracing::Span::none(), Some(Timestamp::now())),
            VolumesStep::Mounted => (tracing::Span::none(), None),
        };
        let prepared = self
            .shared
            .volumes
            .prepare(pod, self.shared.objects.as_ref())
            .instrument(span.clone())
            .await;
        let late_step = || {
            let span = pod_step!(&pod.metadata, "volumes mounted", volumes = Empty);
            start_at(&span, retry_started.map(nanos));
            span
        };
        let step = &mut self.state.journey.volumes;
        match &prepared {
            Ok(volumes) if !matches!(step, VolumesStep::Mounted) => {
                let span = if retry_started.is_some() {
                    late_step()
                } else {
                    span
                };
                span.record("volumes", volumes.len());
                *step = VolumesStep::Mounted;
            }
            Ok(_) => {}
            Err(e) => {
                let error = e.to_string();
                if !matches!(step, VolumesStep::Failed(last) if *last == error) {
                    let span = if retry_started.is_some() {
                        late_step()
                    } else {
                        span
                    };
                    ferry_journey::fail(&span, &error);
                    *step = VolumesStep::Failed(error);
                }
            }
        }
        prepared
    }

    /// `container exited` for each exited container instance not recorded yet (for an init
    /// container that succeeded, `init container completed`), from the exit to now.
    pub(super) fn record_exits(&mut self, pod: &Pod, spec: &PodSpec, observed: &Observed) {
        let instances = || {
            observed
                .containers
                .iter()
                .flat_map(|(name, list)| list.iter().map(move |i| (name, i)))
        };
        let recorded = &mut self.state.journey.exits;
        recorded.retain(|id| instances().any(|(_, i)| i.id == *id));
        for (name, instance) in instances() {
            let Some(exit_code) = instance.exit_code() else {
                continue;
            };
            if recorded.contains(&instance.id) {
                continue;
            }
            recorded.insert(instance.id.clone());
            let init = find_container(spec, name).filter(|(c, init)| *init && !is_sidecar(c));
            if init.is_some() && exit_code == 0 {
                record_init_completed(pod, name, instance);
            } else {
                record_exit(pod, name, instance, exit_code);
            }
        }
    }
}

/// `init container completed`: its run, from its start to its exit.
fn record_init_completed(pod: &Pod, name: &str, instance: &Instance) {
    let span = pod_step!(&pod.metadata, "init container completed", container = name);
    start_at(&span, cri_nanos(instance.status.started_at));
    if let Some(end) = cri_nanos(instance.status.finished_at) {
        span.record("end_ns", end);
    }
}

/// `container exited`: from the exit to now, when the worker saw it.
fn record_exit(pod: &Pod, name: &str, instance: &Instance, exit_code: i32) {
    let reason = terminated_of(instance)
        .map(|t| t.reason)
        .unwrap_or_default();
    let span = pod_step!(&pod.metadata, "container exited",
        container = name, exit_code = i64::from(exit_code), reason = %reason);
    start_at(&span, cri_nanos(instance.status.finished_at));
}

/// Whether the status has the Ready condition True.
pub(super) fn is_ready(status: &PodStatus) -> bool {
    status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// When the first of the pod's (app) containers that run now started, if the runtime says.
pub(super) fn first_container_start(spec: &PodSpec, observed: &Observed) -> Option<u64> {
    spec.containers
        .iter()
        .filter_map(|c| observed.latest(&c.name).filter(|i| i.running()))
        .filter_map(|i| cri_nanos(i.status.started_at))
        .min()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use ferry_journey::SpanRecord;
    use serde_json::json;

    use crate::pod_worker::testing::*;
    use crate::runtime::fake::Op;
    use crate::runtime::RuntimeError;
    use crate::volume::StaticObjectSource;

    const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    /// A pod of the fixture's, with the API server's journey annotation.
    fn traced_pod(spec: serde_json::Value) -> k8s_openapi::api::core::v1::Pod {
        let mut pod = pod(spec);
        pod.metadata.annotations = Some(
            [(
                ferry_journey::ANNOTATION.to_string(),
                TRACEPARENT.to_string(),
            )]
            .into(),
        );
        pod
    }

    fn attribute<'a>(span: &'a SpanRecord, name: &str) -> Option<&'a str> {
        span.attributes.get(name).map(String::as_str)
    }

    fn named<'a>(spans: &'a [SpanRecord], step: &str) -> Vec<&'a SpanRecord> {
        spans.iter().filter(|s| s.step == step).collect()
    }

    async fn let_probes_run() {
        for _ in 0..3 {
            tokio::time::advance(Duration::from_secs(1)).await;
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_pod_synced_to_ready_records_its_journey_once_under_the_pods_trace() {
        let capture = ferry_journey::testing::capture();
        let mut f = fixture(StaticObjectSource::new());
        f.runtime.exit_on_start("i", 0);
        let exec_ok = || {
            Ok(crate::runtime::ExecSyncResult {
                exit_code: 0,
                ..Default::default()
            })
        };
        f.runtime.set_exec_result("c", exec_ok());
        let mut c = image("c");
        c["startupProbe"] = json!({"exec": {"command": ["up"]}, "periodSeconds": 1});
        c["readinessProbe"] = json!({"exec": {"command": ["ready"]}, "periodSeconds": 1});
        let p = traced_pod(json!({
            "initContainers": [{"name": "i", "image": "r/init:1"}],
            "containers": [c],
        }));
        f.worker.sync(&p).await; // the init container runs and completes
        f.worker.sync(&p).await; // the app container starts
        let_probes_run().await;
        f.worker.sync(&p).await; // its probes passed: Ready
        assert_eq!(
            capture.steps(),
            [
                "pod seen",
                "volumes mounted",
                "sandbox created",
                "image pulled",
                "container started",
                "init container completed",
                "image pulled",
                "container started",
                "startup probe passed",
                "readiness probe passed",
                "ready",
            ]
        );
        let status = last_status(&f.api);
        let ready = status["conditions"].as_array().into_iter().flatten();
        assert!(
            ready
                .into_iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True"),
            "{status}"
        );
        let spans = capture.spans();
        for span in &spans {
            assert_eq!(
                span.trace_id, "0af7651916cd43dd8448eb211c80319c",
                "{}",
                span.step
            );
            assert_eq!(
                span.parent_span_id.as_deref(),
                Some("b7ad6b7169203331"),
                "{}",
                span.step
            );
            assert_eq!(span.component, "kubelet");
            let object = span.object.as_ref().expect("object");
            assert_eq!(
                (object.key().as_str(), object.uid.as_deref()),
                ("pods/default/p", Some("uid-1"))
            );
            assert_eq!(span.error, None, "{}", span.step);
            assert!(
                span.start_unix_nanos <= span.end_unix_nanos,
                "{}",
                span.step
            );
        }
        assert_eq!(attribute(&spans[0], "node"), Some("n1"));
        assert_eq!(attribute(&spans[1], "volumes"), Some("0"));
        assert_eq!(attribute(&spans[2], "ip"), Some("10.42.0.2"));
        let images = named(&spans, "image pulled");
        assert_eq!(attribute(images[0], "image"), Some("r/init:1"));
        assert_eq!(attribute(images[0], "present"), None, "pulled");
        assert_eq!(attribute(images[1], "image"), Some("r/app:1"));
        assert_eq!(attribute(images[1], "present"), Some("true"));
        let started: Vec<_> = named(&spans, "container started")
            .iter()
            .map(|s| (attribute(s, "container"), attribute(s, "restart")))
            .collect();
        assert_eq!(started, [(Some("i"), None), (Some("c"), None)]);
        for step in [
            "init container completed",
            "startup probe passed",
            "readiness probe passed",
        ] {
            let span = named(&spans, step)[0];
            let expected = if step.starts_with("init") { "i" } else { "c" };
            assert_eq!(attribute(span, "container"), Some(expected), "{step}");
        }
        // Steady: nothing happens, nothing is recorded.
        capture.clear();
        f.worker.sync(&p).await;
        let_probes_run().await;
        f.worker.sync(&p).await;
        assert_eq!(capture.steps(), Vec::<String>::new());
    }

    #[tokio::test(start_paused = true)]
    async fn each_exit_of_a_crashing_container_is_recorded_once() {
        let capture = ferry_journey::testing::capture();
        let mut f = fixture(StaticObjectSource::new());
        f.runtime.exit_on_start("c", 1);
        let p = traced_pod(json!({"containers": [image("c")]}));
        f.worker.sync(&p).await; // started, exits
        let exits = || {
            let spans = capture.spans();
            named(&spans, "container exited")
                .iter()
                .map(|s| {
                    (
                        attribute(s, "container").map(str::to_string),
                        attribute(s, "exit_code").map(str::to_string),
                        attribute(s, "reason").map(str::to_string),
                    )
                })
                .collect::<Vec<_>>()
        };
        let one = (
            Some("c".to_string()),
            Some("1".to_string()),
            Some("Error".to_string()),
        );
        assert_eq!(exits(), std::slice::from_ref(&one));
        f.worker.sync(&p).await; // restarted at once, exits again
        f.worker.sync(&p).await; // backing off
        f.worker.sync(&p).await;
        assert_eq!(exits(), [one.clone(), one]);
        let spans = capture.spans();
        let restarts: Vec<_> = named(&spans, "container started")
            .iter()
            .map(|s| attribute(s, "restart"))
            .collect();
        assert_eq!(restarts, [None, Some("1")]);
        assert!(named(&spans, "ready").is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_pull_is_a_failed_image_step_and_backing_off_is_none() {
        let capture = ferry_journey::testing::capture();
        let mut f = fixture(StaticObjectSource::new());
        f.runtime.fail_pull(
            "r/missing:1",
            RuntimeError::NotFound("r/missing:1: not found".into()),
        );
        let p = traced_pod(json!({"containers": [{"name": "c", "image": "r/missing:1"}]}));
        f.worker.sync(&p).await;
        f.worker.sync(&p).await; // ImagePullBackOff: no pull
        let spans = capture.spans();
        let pulls = named(&spans, "image pulled");
        assert_eq!(pulls.len(), 1, "{:?}", capture.steps());
        assert_eq!(attribute(pulls[0], "image"), Some("r/missing:1"));
        let error = pulls[0].error.as_deref().expect("failed");
        assert!(error.contains("r/missing:1: not found"), "{error}");
        assert!(named(&spans, "container started").is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_sandbox_is_a_failed_step() {
        let capture = ferry_journey::testing::capture();
        let mut f = fixture(StaticObjectSource::new());
        f.runtime.fail_next(
            Op::RunPodSandbox,
            RuntimeError::Unavailable("cni: no IPs left".into()),
        );
        let p = traced_pod(json!({"containers": [image("c")]}));
        f.worker.sync(&p).await;
        tokio::time::advance(Duration::from_secs(2)).await;
        f.worker.sync(&p).await;
        let spans = capture.spans();
        let sandboxes = named(&spans, "sandbox created");
        assert_eq!(sandboxes.len(), 2, "{:?}", capture.steps());
        let error = sandboxes[0].error.as_deref().expect("failed");
        assert!(error.contains("cni: no IPs left"), "{error}");
        assert_eq!(sandboxes[1].error, None);
        assert_eq!(attribute(sandboxes[1], "ip"), Some("10.42.0.2"));
    }

    #[tokio::test(start_paused = true)]
    async fn volumes_that_cannot_mount_fail_once_then_mount() {
        let capture = ferry_journey::testing::capture();
        let mut f = fixture(StaticObjectSource::new());
        let p = traced_pod(json!({
            "volumes": [{"name": "conf", "configMap": {"name": "cm"}}],
            "containers": [image("c")],
        }));
        f.worker.sync(&p).await;
        f.worker.sync(&p).await;
        let volume_steps = || {
            let spans = capture.spans();
            named(&spans, "volumes mounted")
                .iter()
                .map(|s| {
                    (
                        s.error.is_some(),
                        attribute(s, "volumes").map(str::to_string),
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(volume_steps(), [(true, None)], "the same error once");
        let objects = StaticObjectSource::new().with_config_map(
            serde_json::from_value(json!({"metadata": {"name": "cm", "namespace": "default"}}))
                .expect("cm"),
        );
        Arc::get_mut(&mut f.worker.shared)
            .expect("the only owner")
            .objects = Arc::new(objects);
        f.worker.sync(&p).await;
        f.worker.sync(&p).await;
        assert_eq!(
            volume_steps(),
            [(true, None), (false, Some("1".to_string()))]
        );
    }
}
