//! The probe manager (upstream `pkg/kubelet/prober/prober_manager.go`): one worker task per
//! (pod, container, kind) for each container instance, the results they publish, which the pod
//! worker reads, and upstream's `Unhealthy`/`ProbeWarning` events. A startup or readiness
//! probe's first success for a container instance is a journey step (`startup probe passed`,
//! `readiness probe passed`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ferry_client::events::{self, EventType, Recorder};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};
use parking_lot::Mutex;
use tokio::sync::{mpsc, Notify};
use tokio::task::AbortHandle;

use super::worker::{run_worker, Tick, WorkerSpec};
use super::ProbeKind;
use crate::journey::{nanos, pod_step, start_at};
use crate::runtime::Runtime;

/// Runs the probes of the containers on this node; see the module docs.
///
/// Workers are tokio tasks on the runtime [`ProbeManager::sync_container`] is called on; they
/// are aborted by [`ProbeManager::remove_container`], [`ProbeManager::remove_pod`], a new
/// container instance, or dropping the manager.
pub struct ProbeManager {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ProbeManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeManager")
            .field("containers", &self.shared.containers.lock().len())
            .finish_non_exhaustive()
    }
}

pub(super) struct Shared {
    pub(super) runtime: Arc<dyn Runtime>,
    recorder: Recorder,
    on_change: mpsc::UnboundedSender<String>,
    /// (pod uid, container name) -> the current instance's probes. Workers lock it briefly to
    /// read their inputs and publish results, never across an await.
    containers: Mutex<HashMap<(String, String), Instance>>,
}

/// One container instance's probe results and workers.
struct Instance {
    container_id: String,
    /// The latest pod and IP the pod worker gave (a deletion timestamp quiets liveness).
    pod: Arc<Pod>,
    pod_ip: String,
    has_startup_probe: bool,
    liveness: Option<bool>,
    readiness: Option<bool>,
    startup: Option<bool>,
    workers: Vec<Worker>,
    /// When the container started, if the runtime said (the start of its probes' journey
    /// steps).
    started_at: Option<Timestamp>,
    /// The kinds whose first success is recorded as a journey step.
    passed: Vec<ProbeKind>,
}

impl Instance {
    fn result_mut(&mut self, kind: ProbeKind) -> &mut Option<bool> {
        match kind {
            ProbeKind::Liveness => &mut self.liveness,
            ProbeKind::Readiness => &mut self.readiness,
            ProbeKind::Startup => &mut self.startup,
        }
    }

    fn started(&self) -> bool {
        !self.has_startup_probe || self.startup == Some(true)
    }

    fn stop(&self) {
        for worker in &self.workers {
            worker.task.abort();
        }
    }
}

struct Worker {
    kind: ProbeKind,
    task: AbortHandle,
    /// Makes the worker probe now rather than at its next tick.
    trigger: Arc<Notify>,
}

impl ProbeManager {
    /// A manager probing through `runtime`, recording events with `recorder` (the kubelet's,
    /// source `kubelet` on this node), and sending a pod's uid on `on_change` whenever one of
    /// its containers' probe results changes.
    pub fn new(
        runtime: Arc<dyn Runtime>,
        recorder: Recorder,
        on_change: mpsc::UnboundedSender<String>,
    ) -> ProbeManager {
        ProbeManager {
            shared: Arc::new(Shared {
                runtime,
                recorder,
                on_change,
                containers: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Tells the manager that `container_name` of `pod` runs as `container_id`, started at
    /// `started_at` (a `Timestamp`, or `None` if unknown: counted from now), with the pod at
    /// `pod_ip`. A new instance (the first, or a new id) gets
    /// fresh results at their initial values and a worker per probe it declares; the previous
    /// instance's workers stop. The same instance again only refreshes the pod and IP.
    /// Must be called within a tokio runtime. Does not send on `on_change` (the caller is the
    /// one who would be told).
    pub fn sync_container(
        &self,
        pod: &Pod,
        container_name: &str,
        container_id: &str,
        started_at: impl Into<Option<Timestamp>>,
        pod_ip: &str,
    ) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let key = (uid.clone(), container_name.to_string());
        let Some((container, field_path)) = find_container(pod, container_name) else {
            self.remove_container(&uid, container_name);
            return;
        };
        let mut containers = self.shared.containers.lock();
        if let Some(instance) = containers.get_mut(&key) {
            if instance.container_id == container_id {
                instance.pod = Arc::new(pod.clone());
                instance.pod_ip = pod_ip.to_string();
                return;
            }
            instance.stop();
        }
        // The container's age by the wall clock, carried over to tokio's clock so workers
        // (and tests on paused time) measure the initial delay with tokio::time.
        let started_at = started_at.into();
        let age = started_at
            .and_then(|t| Timestamp::now().duration_since(t).try_into().ok())
            .unwrap_or(Duration::ZERO);
        let now = tokio::time::Instant::now();
        let started = now.checked_sub(age).unwrap_or(now);
        let mut instance = Instance {
            container_id: container_id.to_string(),
            pod: Arc::new(pod.clone()),
            pod_ip: pod_ip.to_string(),
            has_startup_probe: container.startup_probe.is_some(),
            liveness: None,
            readiness: None,
            startup: None,
            workers: Vec::new(),
            started_at,
            passed: Vec::new(),
        };
        for kind in ProbeKind::ALL {
            let Some(probe) = kind.spec(container) else {
                continue;
            };
            *instance.result_mut(kind) = kind.initial_result();
            let trigger = Arc::new(Notify::new());
            let spec = WorkerSpec {
                uid: uid.clone(),
                container: container.clone(),
                container_id: container_id.to_string(),
                kind,
                probe: probe.clone(),
                started_at: started,
                field_path: field_path.clone(),
            };
            let task = tokio::spawn(run_worker(self.shared.clone(), spec, trigger.clone()));
            instance.workers.push(Worker {
                kind,
                task: task.abort_handle(),
                trigger,
            });
        }
        containers.insert(key, instance);
    }

    /// The readiness result of the container's current instance: `None` without a readiness
    /// probe (a running container is then ready once started), else `Some(false)` until it
    /// passes.
    pub fn readiness(&self, uid: &str, container_name: &str) -> Option<bool> {
        self.get(uid, container_name, |i| i.readiness)
    }

    /// The startup result of the container's current instance: `None` without a startup probe
    /// or before its verdict, `Some(true)` once it passed, `Some(false)` once it failed past
    /// its threshold.
    pub fn startup(&self, uid: &str, container_name: &str) -> Option<bool> {
        self.get(uid, container_name, |i| i.startup)
    }

    /// Which probe says instance `container_id` must be killed and restarted: liveness failed
    /// past its threshold, or startup did. `None` if neither (or for another instance).
    pub fn failed_probe(
        &self,
        uid: &str,
        container_name: &str,
        container_id: &str,
    ) -> Option<ProbeKind> {
        let containers = self.shared.containers.lock();
        let instance = containers.get(&(uid.to_string(), container_name.to_string()))?;
        if instance.container_id != container_id {
            return None;
        }
        if instance.liveness == Some(false) {
            Some(ProbeKind::Liveness)
        } else if instance.startup == Some(false) {
            Some(ProbeKind::Startup)
        } else {
            None
        }
    }

    /// Whether instance `container_id` failed its liveness or startup probe and must be
    /// restarted (upstream's messages: `Container <name> failed liveness probe` /
    /// `failed startup probe`; see [`ProbeManager::failed_probe`] for which).
    pub fn liveness_failed(&self, uid: &str, container_name: &str, container_id: &str) -> bool {
        self.failed_probe(uid, container_name, container_id)
            .is_some()
    }

    /// Stops the container's workers and forgets its results.
    pub fn remove_container(&self, uid: &str, container_name: &str) {
        let removed = self
            .shared
            .containers
            .lock()
            .remove(&(uid.to_string(), container_name.to_string()));
        if let Some(instance) = removed {
            instance.stop();
        }
    }

    /// Stops every worker of the pod and forgets its results.
    pub fn remove_pod(&self, uid: &str) {
        let mut containers = self.shared.containers.lock();
        containers.retain(|(pod, _), instance| {
            if pod == uid {
                instance.stop();
                false
            } else {
                true
            }
        });
    }

    /// The (container name, kind) of every running worker of the pod, sorted.
    pub fn workers(&self, uid: &str) -> Vec<(String, ProbeKind)> {
        let containers = self.shared.containers.lock();
        let mut workers: Vec<(String, ProbeKind)> = containers
            .iter()
            .filter(|((pod, _), _)| pod == uid)
            .flat_map(|((_, name), instance)| {
                instance
                    .workers
                    .iter()
                    .filter(|w| !w.task.is_finished())
                    .map(move |w| (name.clone(), w.kind))
            })
            .collect();
        workers.sort_by_key(|(name, kind)| (name.clone(), *kind as u8));
        workers
    }

    fn get(&self, uid: &str, name: &str, f: impl Fn(&Instance) -> Option<bool>) -> Option<bool> {
        let containers = self.shared.containers.lock();
        containers
            .get(&(uid.to_string(), name.to_string()))
            .and_then(f)
    }
}

impl Drop for ProbeManager {
    fn drop(&mut self) {
        for instance in self.shared.containers.lock().values() {
            instance.stop();
        }
    }
}

/// The container named `name` (a regular container, or an init container: only restartable
/// ones may have probes) and its event field path.
fn find_container<'a>(pod: &'a Pod, name: &str) -> Option<(&'a Container, String)> {
    let spec = pod.spec.as_ref()?;
    if let Some(c) = spec.containers.iter().find(|c| c.name == name) {
        return Some((c, format!("spec.containers{{{name}}}")));
    }
    spec.init_containers
        .iter()
        .flatten()
        .find(|c| c.name == name)
        .map(|c| (c, format!("spec.initContainers{{{name}}}")))
}

/// The journey step of a startup or readiness probe's first success for a container instance,
/// from when the container started.
fn record_passed(pod: &Pod, spec: &WorkerSpec, started_at: Option<Timestamp>) {
    let container = spec.container.name.as_str();
    let span = match spec.kind {
        ProbeKind::Startup => {
            pod_step!(&pod.metadata, "startup probe passed", container = container)
        }
        ProbeKind::Readiness => {
            pod_step!(
                &pod.metadata,
                "readiness probe passed",
                container = container
            )
        }
        ProbeKind::Liveness => return,
    };
    start_at(&span, started_at.map(nanos));
}

impl Shared {
    /// The instance's current inputs, or `None` if this worker's instance is gone.
    pub(super) fn tick(&self, spec: &WorkerSpec) -> Option<Tick> {
        let containers = self.containers.lock();
        let instance = containers.get(&(spec.uid.clone(), spec.container.name.clone()))?;
        if instance.container_id != spec.container_id {
            return None;
        }
        Some(Tick {
            pod: instance.pod.clone(),
            pod_ip: instance.pod_ip.clone(),
            started: instance.started(),
        })
    }

    /// Publishes a result for the worker's instance; on a change, tells the pod worker, and
    /// wakes the other probes when the container has just started.
    pub(super) fn publish(&self, spec: &WorkerSpec, result: Option<bool>) {
        let mut containers = self.containers.lock();
        let Some(instance) = containers.get_mut(&(spec.uid.clone(), spec.container.name.clone()))
        else {
            return;
        };
        if instance.container_id != spec.container_id {
            return;
        }
        let slot = instance.result_mut(spec.kind);
        if *slot == result {
            return;
        }
        *slot = result;
        if spec.kind == ProbeKind::Startup && result == Some(true) {
            for worker in &instance.workers {
                if worker.kind != ProbeKind::Startup {
                    worker.trigger.notify_one();
                }
            }
        }
        // A startup probe's last success at deletion is no pass.
        let first_pass = result == Some(true)
            && spec.kind != ProbeKind::Liveness
            && instance.pod.metadata.deletion_timestamp.is_none()
            && !instance.passed.contains(&spec.kind);
        let passed = first_pass.then(|| {
            instance.passed.push(spec.kind);
            (instance.pod.clone(), instance.started_at)
        });
        drop(containers);
        if let Some((pod, started_at)) = passed {
            record_passed(&pod, spec, started_at);
        }
        let _ = self.on_change.send(spec.uid.clone());
    }

    pub(super) fn event(&self, pod: &Pod, spec: &WorkerSpec, reason: &str, message: String) {
        let mut object = events::reference(pod);
        object.field_path = Some(spec.field_path.clone());
        self.recorder
            .event(object, EventType::Warning, reason, message);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::probe::testing::*;
    use crate::runtime::{ExecSyncResult, FakeRuntime};

    struct Harness {
        fake: Arc<FakeRuntime>,
        manager: ProbeManager,
        changes: mpsc::UnboundedReceiver<String>,
        events: mpsc::Receiver<ferry_client::events::Record>,
    }

    fn harness() -> Harness {
        let fake = Arc::new(FakeRuntime::new());
        let (recorder, events) = Recorder::for_tests();
        let (tx, changes) = mpsc::unbounded_channel();
        let manager = ProbeManager::new(fake.clone(), recorder, tx);
        Harness {
            fake,
            manager,
            changes,
            events,
        }
    }

    fn pod(app: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "uid-1"},
            "spec": {"containers": [app]}
        }))
        .expect("pod")
    }

    fn exec(cmd: &str, extra: serde_json::Value) -> serde_json::Value {
        let mut p = json!({"exec": {"command": [cmd]}});
        if let (Some(p), Some(extra)) = (p.as_object_mut(), extra.as_object()) {
            p.extend(extra.clone());
        }
        p
    }

    async fn sleep(seconds: f64) {
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    }

    fn drain(changes: &mut mpsc::UnboundedReceiver<String>) -> usize {
        let mut n = 0;
        while changes.try_recv().is_ok() {
            n += 1;
        }
        n
    }

    #[tokio::test(start_paused = true)]
    async fn readiness_flips_after_success_threshold() {
        let mut h = harness();
        let id = running(&h.fake, "app").await;
        let p = pod(json!({"name": "app", "readinessProbe":
        exec("ready", json!({
            "periodSeconds": 10, "successThreshold": 2, "failureThreshold": 2
        }))}));
        h.manager
            .sync_container(&p, "app", &id, Timestamp::now(), "10.42.0.2");
        assert_eq!(h.manager.readiness("uid-1", "app"), Some(false));
        assert_eq!(h.manager.startup("uid-1", "app"), None);
        assert_eq!(
            h.manager.workers("uid-1"),
            vec![("app".to_string(), ProbeKind::Readiness)]
        );

        sleep(1.0).await; // probed at 0: one success
        assert_eq!(exec_calls(&h.fake).len(), 1);
        assert_eq!(h.manager.readiness("uid-1", "app"), Some(false));
        sleep(10.0).await; // probed at 10: two
        assert_eq!(h.manager.readiness("uid-1", "app"), Some(true));
        assert_eq!(h.changes.try_recv().ok().as_deref(), Some("uid-1"));
        assert_eq!(drain(&mut h.changes), 0);

        h.fake.set_exec_result(
            "app",
            Ok(ExecSyncResult {
                exit_code: 1,
                stdout: b"not yet".to_vec(),
                stderr: vec![],
            }),
        );
        sleep(10.0).await; // 20: one failure
        assert_eq!(h.manager.readiness("uid-1", "app"), Some(true));
        sleep(10.0).await; // 30: two
        assert_eq!(h.manager.readiness("uid-1", "app"), Some(false));
        assert_eq!(drain(&mut h.changes), 1);
        let event = h.events.try_recv().expect("event");
        assert_eq!(event.reason, "Unhealthy");
        assert_eq!(event.message, "Readiness probe failed: not yet");
        assert_eq!(event.event_type, EventType::Warning);
        assert_eq!(
            event.involved_object.field_path.as_deref(),
            Some("spec.containers{app}")
        );
        assert_eq!(event.involved_object.uid.as_deref(), Some("uid-1"));
        // Readiness keeps probing after failing.
        sleep(10.0).await;
        assert_eq!(exec_calls(&h.fake).len(), 5);
        // A liveness failure would not be the container's fate.
        assert!(!h.manager.liveness_failed("uid-1", "app", &id));
    }

    #[tokio::test(start_paused = true)]
    async fn liveness_fails_after_failure_threshold_and_stops() {
        let mut h = harness();
        let id = running(&h.fake, "app").await;
        let p = pod(json!({"name": "app", "livenessProbe":
            exec("alive", json!({"periodSeconds": 5, "initialDelaySeconds": 3}))}));
        h.fake.set_exec_result(
            &id,
            Ok(ExecSyncResult {
                exit_code: 1,
                stdout: vec![],
                stderr: b"dead".to_vec(),
            }),
        );
        h.manager
            .sync_container(&p, "app", &id, Timestamp::now(), "10.42.0.2");
        assert_eq!(h.manager.readiness("uid-1", "app"), None);
        // Ticks at 0 (skipped: initial delay), 5, 10, 15.
        sleep(14.0).await;
        assert_eq!(exec_calls(&h.fake).len(), 2);
        assert!(!h.manager.liveness_failed("uid-1", "app", &id));
        sleep(2.0).await;
        assert!(h.manager.liveness_failed("uid-1", "app", &id));
        assert_eq!(
            h.manager.failed_probe("uid-1", "app", &id),
            Some(ProbeKind::Liveness)
        );
        assert!(!h.manager.liveness_failed("uid-1", "app", "other-instance"));
        assert_eq!(drain(&mut h.changes), 1);
        let mut messages = Vec::new();
        while let Ok(event) = h.events.try_recv() {
            messages.push(event.message);
        }
        assert_eq!(messages, vec!["Liveness probe failed: dead"; 3]);
        // On hold: no more probes for this instance.
        sleep(60.0).await;
        assert_eq!(exec_calls(&h.fake).len(), 3);
        assert!(h.manager.workers("uid-1").is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn startup_gates_liveness_and_readiness() {
        let mut h = harness();
        let id = running(&h.fake, "app").await;
        let p = pod(json!({"name": "app",
            "startupProbe": exec("started", json!({"periodSeconds": 2, "failureThreshold": 10})),
            "livenessProbe": exec("alive", json!({"periodSeconds": 10})),
            "readinessProbe": exec("ready", json!({"periodSeconds": 10}))}));
        let failed = Ok(ExecSyncResult {
            exit_code: 1,
            ..Default::default()
        });
        h.fake.push_exec_result(&id, failed.clone());
        h.fake.push_exec_result(&id, failed);
        h.manager
            .sync_container(&p, "app", &id, Timestamp::now(), "10.42.0.2");
        assert_eq!(h.manager.startup("uid-1", "app"), None);
        sleep(3.0).await; // startup at 0 and 2 fail
        assert_eq!(h.manager.startup("uid-1", "app"), None);
        assert_eq!(h.manager.readiness("uid-1", "app"), Some(false));
        sleep(2.0).await; // at 4 it passes; readiness and liveness run at once
        assert_eq!(h.manager.startup("uid-1", "app"), Some(true));
        assert_eq!(h.manager.readiness("uid-1", "app"), Some(true));
        let commands: Vec<String> = exec_calls(&h.fake)
            .into_iter()
            .map(|(_, cmd)| cmd.join(" "))
            .collect();
        assert_eq!(commands[..3], ["started", "started", "started"]);
        let mut rest = commands[3..].to_vec();
        rest.sort();
        assert_eq!(rest, ["alive", "ready"]);
        assert!(drain(&mut h.changes) >= 2);
        // Startup probing is over for this instance.
        sleep(30.0).await;
        let startups = exec_calls(&h.fake)
            .iter()
            .filter(|(_, cmd)| cmd[0] == "started")
            .count();
        assert_eq!(startups, 3);
        assert_eq!(
            h.manager.workers("uid-1"),
            vec![
                ("app".to_string(), ProbeKind::Liveness),
                ("app".to_string(), ProbeKind::Readiness)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn startup_failure_means_restart() {
        let h = harness();
        let id = running(&h.fake, "app").await;
        let p = pod(json!({"name": "app",
            "startupProbe": exec("started", json!({"periodSeconds": 1, "failureThreshold": 3})),
            "livenessProbe": exec("alive", json!({}))}));
        h.fake.set_exec_result(
            "app",
            Ok(ExecSyncResult {
                exit_code: 1,
                ..Default::default()
            }),
        );
        h.manager
            .sync_container(&p, "app", &id, Timestamp::now(), "10.42.0.2");
        sleep(2.5).await;
        assert_eq!(h.manager.startup("uid-1", "app"), Some(false));
        assert_eq!(
            h.manager.failed_probe("uid-1", "app", &id),
            Some(ProbeKind::Startup)
        );
        assert!(exec_calls(&h.fake)
            .iter()
            .all(|(_, cmd)| cmd[0] == "started"));
    }

    #[tokio::test(start_paused = true)]
    async fn new_instance_replaces_workers_and_results() {
        let mut h = harness();
        let first = running(&h.fake, "app").await;
        let p = pod(json!({"name": "app",
            "livenessProbe": exec("alive", json!({"periodSeconds": 1, "failureThreshold": 1})),
            "readinessProbe": exec("ready", json!({"periodSeconds": 10}))}));
        h.fake.set_exec_result(
            &first,
            Ok(ExecSyncResult {
                exit_code: 1,
                ..Default::default()
            }),
        );
        h.manager
            .sync_container(&p, "app", &first, Timestamp::now(), "10.42.0.2");
        sleep(0.5).await;
        assert!(h.manager.liveness_failed("uid-1", "app", &first));
        // The same instance again changes nothing.
        h.manager
            .sync_container(&p, "app", &first, Timestamp::now(), "10.42.0.2");
        assert!(h.manager.liveness_failed("uid-1", "app", &first));
        drain(&mut h.changes);

        // The pod worker restarted it.
        h.fake.stop_container(&first, 0).await.expect("stop");
        let second = running(&h.fake, "app").await;
        h.manager
            .sync_container(&p, "app", &second, Timestamp::now(), "10.42.0.2");
        assert!(!h.manager.liveness_failed("uid-1", "app", &first));
        assert!(!h.manager.liveness_failed("uid-1", "app", &second));
        assert_eq!(h.manager.readiness("uid-1", "app"), Some(false));
        sleep(5.5).await;
        assert_eq!(h.manager.readiness("uid-1", "app"), Some(true));
        assert!(!h.manager.liveness_failed("uid-1", "app", &second));
        let calls = exec_calls(&h.fake);
        let on_first = calls.iter().filter(|(id, _)| *id == first).count();
        assert_eq!(on_first, 2, "{calls:?}");
        assert!(calls.iter().skip(on_first).all(|(id, _)| *id == second));
        assert_eq!(h.manager.workers("uid-1").len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn remove_pod_stops_workers() {
        let h = harness();
        let app = running(&h.fake, "app").await;
        let side = running(&h.fake, "side").await;
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "uid-1"},
            "spec": {
                "containers": [{"name": "app",
                    "readinessProbe": exec("ready", json!({"periodSeconds": 1}))}],
                "initContainers": [{"name": "side", "restartPolicy": "Always",
                    "livenessProbe": exec("alive", json!({"periodSeconds": 1}))}]
            }
        }))
        .expect("pod");
        h.manager
            .sync_container(&p, "app", &app, Timestamp::now(), "10.42.0.2");
        h.manager
            .sync_container(&p, "side", &side, Timestamp::now(), "10.42.0.2");
        // A container the pod does not have gets no workers.
        h.manager
            .sync_container(&p, "ghost", "x", Timestamp::now(), "10.42.0.2");
        assert_eq!(h.manager.workers("uid-1").len(), 2);
        sleep(2.5).await;
        assert_eq!(exec_calls(&h.fake).len(), 6);

        h.manager.remove_container("uid-1", "side");
        assert_eq!(
            h.manager.workers("uid-1"),
            vec![("app".to_string(), ProbeKind::Readiness)]
        );
        h.manager.remove_pod("uid-1");
        assert!(h.manager.workers("uid-1").is_empty());
        assert_eq!(h.manager.readiness("uid-1", "app"), None);
        let before = exec_calls(&h.fake).len();
        sleep(10.0).await;
        assert_eq!(exec_calls(&h.fake).len(), before);
    }

    #[tokio::test(start_paused = true)]
    async fn deletion_quiets_liveness() {
        let h = harness();
        let id = running(&h.fake, "app").await;
        let mut p = pod(json!({"name": "app",
            "livenessProbe": exec("alive", json!({"periodSeconds": 1, "failureThreshold": 2}))}));
        h.fake.set_exec_result(
            "app",
            Ok(ExecSyncResult {
                exit_code: 1,
                ..Default::default()
            }),
        );
        h.manager
            .sync_container(&p, "app", &id, Timestamp::now(), "10.42.0.2");
        sleep(0.5).await; // one failure
        p.metadata.deletion_timestamp =
            Some(serde_json::from_value(json!("2024-01-01T00:00:00Z")).expect("time"));
        h.manager
            .sync_container(&p, "app", &id, Timestamp::now(), "10.42.0.2");
        sleep(5.0).await;
        assert!(!h.manager.liveness_failed("uid-1", "app", &id));
        assert_eq!(exec_calls(&h.fake).len(), 1);
        assert!(h.manager.workers("uid-1").is_empty());
    }
}
