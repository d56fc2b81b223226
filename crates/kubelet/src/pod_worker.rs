//! The pod worker: one per pod bound to this node, driving the pod toward what its spec says
//! (upstream `podWorkers` + `kuberuntime.SyncPod` + `KillPod`).
//!
//! Each sync looks at the runtime (the pod's sandboxes and containers, by the pod-uid label),
//! decides what to do next with the pure [`plan`], does it, and posts the status if it changed:
//!
//! 1. a ready sandbox (pause container, network namespace, CNI ADD), created if missing;
//! 2. volumes prepared (`FailedMount` events until they can be);
//! 3. init containers one at a time, each to success before the next (sidecars — init
//!    containers with `restartPolicy: Always` — only need to have started);
//! 4. app containers, restarted per the restart policy with upstream's crash-loop backoff, and
//!    killed and restarted when their liveness or startup probe fails;
//! 5. when the pod is being deleted: preStop hooks, containers stopped with the rest of the
//!    grace period (SIGTERM, then SIGKILL), the sandbox stopped and removed (CNI DEL), volumes
//!    cleaned, the final status posted, then the delete finalized with grace period 0.
//!
//! The worker holds its state between syncs as plain fields ([`WorkerState`]): the backoffs,
//! why containers are waiting, when termination started, the status last posted.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ferry_client::events::{EventType, Recorder};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container, LifecycleHandler, ObjectReference, Pod, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::images::{container_reference, ImageManager};
use crate::podconfig::{
    self, ContainerContext, SandboxContext, CONTAINER_HASH_ANNOTATION, CONTAINER_NAME_LABEL,
    POD_UID_LABEL,
};
use crate::probe::ProbeManager;
use crate::runtime::{v1, Runtime, RuntimeError};
use crate::status::{self, ContainerFacts, PodFacts, RuntimeState, Terminated};
use crate::volume::{ObjectSource, VolumeManager};

/// Upstream `minimumGracePeriodInSeconds`: a container always gets this long to stop.
const MINIMUM_GRACE_PERIOD: Duration = Duration::from_secs(2);
/// How soon a pod is looked at again after a step that may need a retry.
pub const RESYNC: Duration = Duration::from_secs(1);
/// How often a steady pod is looked at with nothing else happening: runtime state changes
/// (a container exits, a sandbox dies) wake the worker through the pod loop's relist (PLEG),
/// spec changes through the pod watch, probe results through the prober.
pub const STEADY_RESYNC: Duration = Duration::from_secs(10);
/// The resync after a sync that failed to start a container.
const ERROR_RESYNC: Duration = Duration::from_secs(3);
/// The resync of a pod that is finished or waiting on something slow.
const SLOW_RESYNC: Duration = Duration::from_secs(10);

/// The API calls a pod worker makes, behind a trait so the worker runs against a fake.
#[async_trait]
pub trait PodApi: Send + Sync {
    /// Patches `pods/status` (merge patch, for this uid only).
    async fn patch_status(&self, pod: &Pod, status: &PodStatus) -> Result<(), kube::Error>;
    /// Deletes the pod with grace period 0 (for this uid only): the kubelet's last word.
    async fn finalize_delete(&self, pod: &Pod) -> Result<(), kube::Error>;
}

/// [`PodApi`] on a kube client.
pub struct KubePodApi(pub kube::Client);

fn pods_api(client: &kube::Client, pod: &Pod) -> kube::Api<Pod> {
    kube::Api::namespaced(
        client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    )
}

#[async_trait]
impl PodApi for KubePodApi {
    async fn patch_status(&self, pod: &Pod, status: &PodStatus) -> Result<(), kube::Error> {
        let patch =
            serde_json::json!({ "metadata": { "uid": pod.metadata.uid }, "status": status });
        pods_api(&self.0, pod)
            .patch_status(
                pod.metadata.name.as_deref().unwrap_or_default(),
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(patch),
            )
            .await
            .map(|_| ())
    }

    async fn finalize_delete(&self, pod: &Pod) -> Result<(), kube::Error> {
        let params = kube::api::DeleteParams::default()
            .grace_period(0)
            .preconditions(kube::api::Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            });
        pods_api(&self.0, pod)
            .delete(pod.metadata.name.as_deref().unwrap_or_default(), &params)
            .await
            .map(|_| ())
    }
}

/// What the node tells every pod worker.
#[derive(Clone, Debug, Default)]
pub struct NodeContext {
    /// The node's name.
    pub node_name: String,
    /// The node's IPs, primary first.
    pub node_ips: Vec<String>,
    /// Sandbox settings (logs root, cgroup root, DNS); `attempt` is set per sandbox.
    pub sandbox: SandboxContext,
    /// The node's allocatable resources.
    pub node_allocatable: BTreeMap<String, ApiQuantity>,
    /// The node's memory capacity in bytes.
    pub node_memory_capacity: i64,
    /// Where pods' directories are (`<data-dir>/pods`).
    pub pods_dir: PathBuf,
    /// Directory of Localhost seccomp profiles.
    pub seccomp_profile_root: String,
}

/// What all pod workers share.
pub struct Shared {
    /// The container runtime.
    pub runtime: Arc<dyn Runtime>,
    /// The API calls.
    pub api: Arc<dyn PodApi>,
    /// ConfigMap and Secret lookups (env and volumes).
    pub objects: Arc<dyn ObjectSource>,
    /// The volume manager.
    pub volumes: VolumeManager,
    /// Image pulls and their backoff.
    pub images: ImageManager,
    /// The prober.
    pub probes: ProbeManager,
    /// Events, as the `kubelet` component from this node.
    pub recorder: Recorder,
    /// Node facts.
    pub node: NodeContext,
    /// How many pods may be starting (new sandbox and first containers) at once. Starting every
    /// new pod at once makes them all contend for the runtime and finish together at the end;
    /// a few at a time finish in turn, with the same total.
    pub pod_starts: tokio::sync::Semaphore,
}

/// The default for [`Shared::pod_starts`]: twice the CPUs.
pub fn default_pod_starts() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * 8
}

/// A container instance the runtime has for the pod.
#[derive(Clone, Debug)]
pub struct Instance {
    /// The runtime's id.
    pub id: String,
    /// The CRI attempt (the restart count).
    pub attempt: u32,
    /// The sandbox it runs in.
    pub sandbox_id: String,
    /// The spec hash it was created from.
    pub hash: Option<u32>,
    /// Its status.
    pub status: v1::ContainerStatus,
}

impl Instance {
    fn state(&self) -> v1::ContainerState {
        v1::ContainerState::try_from(self.status.state)
            .unwrap_or(v1::ContainerState::ContainerUnknown)
    }

    fn running(&self) -> bool {
        self.state() == v1::ContainerState::ContainerRunning
    }

    fn exit_code(&self) -> Option<i32> {
        (self.state() == v1::ContainerState::ContainerExited).then_some(self.status.exit_code)
    }
}

/// What the runtime has for one pod.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Its sandboxes, newest first.
    pub sandboxes: Vec<v1::PodSandbox>,
    /// Container instances by container name, newest first (at most the two newest have a
    /// status; older ones are garbage and removed).
    pub containers: HashMap<String, Vec<Instance>>,
}

impl Observed {
    /// The newest sandbox if it is ready.
    pub fn ready_sandbox(&self) -> Option<&v1::PodSandbox> {
        self.sandboxes
            .first()
            .filter(|s| s.state == v1::PodSandboxState::SandboxReady as i32)
    }

    fn latest(&self, name: &str) -> Option<&Instance> {
        self.containers.get(name).and_then(|v| v.first())
    }

    /// Only what runs in sandbox `id` (what the planner looks at: a new sandbox starts its
    /// init containers again).
    pub fn in_sandbox(&self, id: &str) -> Observed {
        Observed {
            sandboxes: self
                .sandboxes
                .iter()
                .filter(|s| s.id == id)
                .cloned()
                .collect(),
            containers: self
                .containers
                .iter()
                .map(|(name, list)| {
                    let list: Vec<Instance> = list
                        .iter()
                        .filter(|i| i.sandbox_id == id)
                        .cloned()
                        .collect();
                    (name.clone(), list)
                })
                .filter(|(_, list)| !list.is_empty())
                .collect(),
        }
    }
}

/// One thing the worker does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Start (or restart) a container.
    Start {
        /// Its name.
        name: String,
        /// It is an init container.
        init: bool,
    },
    /// Kill a running container (a failed liveness/startup probe, or its spec changed).
    Kill {
        /// The instance.
        id: String,
        /// Its name.
        name: String,
        /// Why, for the event.
        reason: String,
    },
    /// The pod failed (an init container failed under `restartPolicy: Never`).
    PodFailed,
}

/// What the planner knows about one container besides the runtime.
pub trait ProbeView {
    /// Which probe of this instance failed past its threshold (`liveness` or `startup`), if
    /// one did: the container must be restarted.
    fn failed_probe(&self, name: &str, id: &str) -> Option<&'static str>;
    /// Whether the container's startup probe has succeeded (true when it has none).
    fn started(&self, container: &Container) -> bool;
}

fn restart_policy(spec: &PodSpec) -> &str {
    spec.restart_policy.as_deref().unwrap_or("Always")
}

fn should_restart(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

fn is_sidecar(container: &Container) -> bool {
    container.restart_policy.as_deref() == Some("Always")
}

/// What to do next for a pod whose sandbox is ready (upstream `computePodActions`): the next
/// init container, or every app container that should (re)start, plus kills for failed
/// liveness probes and changed specs. Pure.
pub fn plan(spec: &PodSpec, observed: &Observed, probes: &dyn ProbeView) -> Vec<Step> {
    let policy = restart_policy(spec);
    let mut steps = vec![];
    let start = |name: &str, init: bool| Step::Start {
        name: name.to_string(),
        init,
    };
    let kill_if_unhealthy = |c: &Container, i: &Instance, steps: &mut Vec<Step>| -> bool {
        let hash = podconfig::container_hash(c);
        let reason = if let Some(probe) = probes.failed_probe(&c.name, &i.id) {
            let then = if policy == "Never" {
                ""
            } else {
                ", will be restarted"
            };
            format!("Container {} failed {probe} probe{then}", c.name)
        } else if i.hash.is_some_and(|h| h != hash) {
            format!("Container {} definition changed, will be restarted", c.name)
        } else {
            return false;
        };
        steps.push(Step::Kill {
            id: i.id.clone(),
            name: c.name.clone(),
            reason,
        });
        true
    };

    // Init containers run only until an app container exists in this sandbox.
    let initialized = spec
        .containers
        .iter()
        .any(|c| observed.latest(&c.name).is_some());
    if !initialized {
        for c in spec.init_containers.iter().flatten() {
            let sidecar = is_sidecar(c);
            match observed.latest(&c.name) {
                None => {
                    steps.push(start(&c.name, true));
                    return steps;
                }
                Some(i) if i.running() => {
                    if sidecar {
                        if kill_if_unhealthy(c, i, &mut steps) {
                            steps.push(start(&c.name, true));
                            return steps;
                        }
                        if !probes.started(c) {
                            return steps; // the next one waits for its startup probe
                        }
                        continue;
                    }
                    return steps; // wait for it
                }
                Some(i) => match i.exit_code() {
                    Some(0) if !sidecar => continue,
                    Some(code) if !sidecar && !should_restart(policy, code) => {
                        return vec![Step::PodFailed];
                    }
                    // A failed init container, a stopped sidecar, or one created and never
                    // started: (re)start it.
                    _ => {
                        steps.push(start(&c.name, true));
                        return steps;
                    }
                },
            }
        }
    } else {
        // Sidecars keep running next to the app containers.
        for c in spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| is_sidecar(c))
        {
            match observed.latest(&c.name) {
                Some(i) if i.running() => {
                    if kill_if_unhealthy(c, i, &mut steps) {
                        steps.push(start(&c.name, true));
                    }
                }
                _ => steps.push(start(&c.name, true)),
            }
        }
    }
    for c in &spec.containers {
        match observed.latest(&c.name) {
            None => steps.push(start(&c.name, false)),
            Some(i) if i.running() => {
                if kill_if_unhealthy(c, i, &mut steps) && policy != "Never" {
                    steps.push(start(&c.name, false));
                }
            }
            Some(i) => match i.exit_code() {
                Some(code) if !should_restart(policy, code) => {}
                _ => steps.push(start(&c.name, false)),
            },
        }
    }
    steps
}

/// Whether every container of the pod has finished for good (restart policy Never or
/// OnFailure), so the pod is terminal.
pub fn all_done(spec: &PodSpec, observed: &Observed) -> bool {
    let policy = restart_policy(spec);
    if policy == "Always" {
        return false;
    }
    spec.containers.iter().all(|c| {
        observed
            .latest(&c.name)
            .and_then(Instance::exit_code)
            .is_some_and(|code| !should_restart(policy, code))
    })
}

/// A Go-style duration, as upstream's messages print them (`10s`, `1m20s`, `5m0s`).
pub fn go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m{}s", secs / 60, secs % 60)
    } else {
        format!("{}h{}m{}s", secs / 3600, (secs % 3600) / 60, secs % 60)
    }
}

/// What a sync asks of the loop that runs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncResult {
    /// Sync again after this long (or sooner if something changes).
    Resync(Duration),
    /// The pod is gone from the API and from this node: the worker can end.
    Finished,
}

/// A pod worker's memory between syncs.
#[derive(Debug)]
pub struct WorkerState {
    /// Crash-loop backoff per container name.
    pub crash_backoff: Backoff,
    /// Why a container is not running, when the runtime cannot tell (image pull errors,
    /// config errors, backoff), by container name.
    pub waiting: HashMap<String, (String, String)>,
    /// When the worker first saw the pod.
    pub first_seen: Timestamp,
    /// The status last posted.
    pub last_status: Option<PodStatus>,
    /// When termination must be over (set when it starts).
    pub kill_deadline: Option<Instant>,
    /// Containers and sandbox are gone and the final status is posted.
    pub killed: bool,
    /// Sandbox creation backoff.
    pub sandbox_backoff: Backoff,
    /// The pod finished (restart policy Never/OnFailure); its sandbox is stopped.
    pub finished: bool,
    /// The shortest crash-loop backoff left, as of the last sync (when to look again).
    pub backoff_until: Option<Duration>,
    /// The pod was deleted and its containers stopped: the final status is terminal.
    pub deleted: bool,
    /// When each exited container instance was first seen exited, by id.
    pub exits: HashMap<String, Instant>,
}

impl Default for WorkerState {
    fn default() -> Self {
        WorkerState {
            crash_backoff: Backoff::default(),
            waiting: HashMap::new(),
            first_seen: Timestamp::now(),
            last_status: None,
            kill_deadline: None,
            killed: false,
            sandbox_backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
            finished: false,
            backoff_until: None,
            deleted: false,
            exits: HashMap::new(),
        }
    }
}

/// The pod worker of one pod.
pub struct PodWorker {
    shared: Arc<Shared>,
    uid: String,
    /// Its state, public for tests.
    pub state: WorkerState,
    /// Newer versions of the pod while a sync runs (a shorter grace period, or a force
    /// delete, cuts a termination short, as upstream's pod workers do).
    pub updates: Option<tokio::sync::watch::Receiver<Option<Pod>>>,
}

/// Waits for `kills` (containers being stopped); if meanwhile the pod's grace period gets
/// shorter than `grace` (or the pod is gone from the API: a force delete), stops `ids` again
/// with the shorter timeout (at least the 2 s minimum). Returns the shortened grace, if any.
async fn kill_or_shorten(
    runtime: Arc<dyn Runtime>,
    kills: impl std::future::Future<Output = ()>,
    ids: Vec<String>,
    mut updates: Option<tokio::sync::watch::Receiver<Option<Pod>>>,
    mut grace: Duration,
) -> Option<Duration> {
    tokio::pin!(kills);
    let mut shortened = None;
    loop {
        let next_grace = async {
            let Some(rx) = updates.as_mut() else {
                return futures::future::pending().await;
            };
            if rx.changed().await.is_err() {
                return futures::future::pending().await;
            }
            let pod = rx.borrow().clone();
            match pod {
                Some(p) => p.metadata.deletion_grace_period_seconds.unwrap_or(i64::MAX),
                None => 0,
            }
        };
        tokio::select! {
            () = &mut kills => return shortened,
            seconds = next_grace => {
                let new = Duration::from_secs(seconds.max(0) as u64).max(MINIMUM_GRACE_PERIOD);
                if new < grace {
                    grace = new;
                    shortened = Some(new);
                    for id in &ids {
                        let (runtime, id) = (runtime.clone(), id.clone());
                        tokio::spawn(async move {
                            if let Err(e) = runtime.stop_container(&id, new.as_secs() as i64).await {
                                tracing::debug!(container = %id, error = %e, "stopping again with a shorter grace period");
                            }
                        });
                    }
                }
            }
        }
    }
}

struct Probes<'a>(&'a ProbeManager, &'a str);

impl ProbeView for Probes<'_> {
    fn failed_probe(&self, name: &str, id: &str) -> Option<&'static str> {
        self.0
            .failed_probe(self.1, name, id)
            .map(|kind| match kind {
                crate::probe::ProbeKind::Startup => "startup",
                _ => "liveness",
            })
    }

    fn started(&self, container: &Container) -> bool {
        container.startup_probe.is_none() || self.0.startup(self.1, &container.name) == Some(true)
    }
}

fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

fn ns_to_timestamp(ns: i64) -> Option<Timestamp> {
    (ns > 0)
        .then(|| Timestamp::from_nanosecond(i128::from(ns)).ok())
        .flatten()
}

fn terminated_of(instance: &Instance) -> Option<Terminated> {
    let code = instance.exit_code()?;
    let s = &instance.status;
    Some(Terminated {
        exit_code: code,
        signal: None,
        reason: if s.reason.is_empty() {
            if code == 0 { "Completed" } else { "Error" }.to_string()
        } else {
            s.reason.clone()
        },
        message: s.message.clone(),
        started_at: ns_to_timestamp(s.started_at),
        finished_at: ns_to_timestamp(s.finished_at),
    })
}

impl PodWorker {
    /// A worker for the pod with `uid`.
    pub fn new(shared: Arc<Shared>, uid: String) -> Self {
        PodWorker {
            shared,
            uid,
            state: WorkerState::default(),
            updates: None,
        }
    }

    fn event(
        &self,
        pod: &Pod,
        container: Option<(&str, bool)>,
        warning: bool,
        reason: &str,
        message: String,
    ) {
        let mut reference = ferry_client::events::reference(pod);
        if let Some((name, init)) = container {
            reference = container_reference(&reference, name, init);
        }
        let kind = if warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        self.shared.recorder.event(reference, kind, reason, message);
    }

    /// The pod's sandboxes and containers as the runtime has them; removes container
    /// instances older than the two newest of each name and stale sandboxes (garbage).
    pub async fn observe(&self) -> Result<Observed, RuntimeError> {
        let runtime = &self.shared.runtime;
        let mut labels = HashMap::new();
        labels.insert(POD_UID_LABEL.to_string(), self.uid.clone());
        let mut sandboxes = runtime
            .list_pod_sandboxes(Some(v1::PodSandboxFilter {
                label_selector: labels.clone(),
                ..Default::default()
            }))
            .await?;
        sandboxes.sort_by_key(|s| {
            std::cmp::Reverse((s.metadata.as_ref().map(|m| m.attempt), s.created_at))
        });
        // Keep the newest two (the current one and the one before, for restart counts).
        let mut removed = vec![];
        for stale in sandboxes.iter().skip(2) {
            if stale.state != v1::PodSandboxState::SandboxReady as i32 {
                match runtime.remove_pod_sandbox(&stale.id).await {
                    Ok(()) => removed.push(stale.id.clone()),
                    Err(e) => {
                        tracing::debug!(sandbox = %stale.id, error = %e, "removing an old sandbox")
                    }
                }
            }
        }
        sandboxes.retain(|s| !removed.contains(&s.id));
        let containers = runtime
            .list_containers(Some(v1::ContainerFilter {
                label_selector: labels,
                ..Default::default()
            }))
            .await?;
        let mut by_name: HashMap<String, Vec<v1::Container>> = HashMap::new();
        for c in containers {
            let name = c
                .labels
                .get(CONTAINER_NAME_LABEL)
                .cloned()
                .or_else(|| c.metadata.as_ref().map(|m| m.name.clone()))
                .unwrap_or_default();
            by_name.entry(name).or_default().push(c);
        }
        let mut observed = Observed {
            sandboxes,
            containers: HashMap::new(),
        };
        for (name, mut list) in by_name {
            list.sort_by_key(|c| {
                std::cmp::Reverse((c.metadata.as_ref().map(|m| m.attempt), c.created_at))
            });
            let mut instances = vec![];
            for (n, c) in list.into_iter().enumerate() {
                if n >= 2 {
                    // Upstream keeps one dead instance per container (for lastState).
                    if let Err(e) = runtime.remove_container(&c.id).await {
                        tracing::debug!(id = %c.id, error = %e, "removing an old container");
                    }
                    continue;
                }
                let status = match runtime.container_status(&c.id).await {
                    Ok(status) => status,
                    Err(RuntimeError::NotFound(_)) => continue,
                    Err(e) => return Err(e),
                };
                instances.push(Instance {
                    attempt: c.metadata.as_ref().map(|m| m.attempt).unwrap_or(0),
                    sandbox_id: c.pod_sandbox_id.clone(),
                    hash: c
                        .annotations
                        .get(CONTAINER_HASH_ANNOTATION)
                        .and_then(|h| u32::from_str_radix(h, 16).ok()),
                    id: c.id,
                    status,
                });
            }
            observed.containers.insert(name, instances);
        }
        Ok(observed)
    }

    /// One sync of `pod` (upstream `SyncPod`, or `SyncTerminatingPod` once it is being
    /// deleted).
    pub async fn sync(&mut self, pod: &Pod) -> SyncResult {
        if pod.metadata.deletion_timestamp.is_some() {
            return self.terminate(pod, false).await;
        }
        let observed = match self.observe().await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(pod = %pod_key(pod), error = %e, "looking at the runtime");
                return SyncResult::Resync(RESYNC);
            }
        };
        let spec = pod.spec.clone().unwrap_or_default();
        let api_phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(api_phase, Some("Succeeded" | "Failed")) || self.state.finished {
            // Nothing runs again: stop what is left, keep reporting the final status.
            self.state.finished = true;
            self.shared.probes.remove_pod(&self.uid);
            self.stop_sandboxes(&observed).await;
            let observed = self.observe().await.unwrap_or(observed);
            self.post_status(pod, &observed, false, vec![], true).await;
            return SyncResult::Resync(SLOW_RESYNC);
        }

        let sync_started = Instant::now();
        // 1. Volumes, before the sandbox: a pod that cannot mount gets no sandbox (and no IP).
        let volumes = match self
            .shared
            .volumes
            .prepare(pod, self.shared.objects.as_ref())
            .await
        {
            Ok(v) => v,
            Err(e) => {
                self.event(pod, None, true, "FailedMount", e.to_string());
                self.post_status(pod, &observed, false, vec![], false).await;
                return SyncResult::Resync(Duration::from_secs(5));
            }
        };

        // 2. The sandbox. A pod getting its first (or a new) sandbox waits its turn to start.
        let shared = self.shared.clone();
        let _starting = match observed.ready_sandbox() {
            Some(_) => None,
            None => shared.pod_starts.acquire().await.ok(),
        };
        let (sandbox_id, sandbox_config, pod_ips) =
            match self.ensure_sandbox(pod, &spec, &observed).await {
                Ok(Some(s)) => s,
                Ok(None) => {
                    // The sandbox died and the pod must not get a new one (it ran under Never).
                    self.state.finished = true;
                    let observed = self.observe().await.unwrap_or(observed);
                    self.post_status(pod, &observed, false, vec![], true).await;
                    return SyncResult::Resync(SLOW_RESYNC);
                }
                Err(()) => {
                    self.post_status(pod, &observed, false, vec![], false).await;
                    return SyncResult::Resync(RESYNC);
                }
            };
        let observed =
            if observed.ready_sandbox().map(|s| s.id.as_str()) == Some(sandbox_id.as_str()) {
                observed
            } else {
                match self.observe().await {
                    Ok(o) => o,
                    Err(_) => return SyncResult::Resync(RESYNC),
                }
            };

        let sandbox_done = Instant::now();
        // 3 and 4. Containers.
        self.state.backoff_until = None;
        let now = Instant::now();
        let exited: Vec<&str> = observed
            .containers
            .values()
            .flatten()
            .filter(|i| i.exit_code().is_some())
            .map(|i| i.id.as_str())
            .collect();
        self.state
            .exits
            .retain(|id, _| exited.contains(&id.as_str()));
        for id in exited {
            self.state.exits.entry(id.to_string()).or_insert(now);
        }
        let current = observed.in_sandbox(&sandbox_id);
        let steps = plan(&spec, &current, &Probes(&self.shared.probes, &self.uid));
        for step in &steps {
            match step {
                Step::Kill { id, name, reason } => {
                    let container = find_container(&spec, name);
                    self.event(
                        pod,
                        Some((name, container.is_some_and(|c| c.1))),
                        false,
                        "Killing",
                        reason.clone(),
                    );
                    let grace = pod_grace_period(pod);
                    self.kill_container(pod, id, name, grace).await;
                }
                Step::PodFailed => {
                    self.state.finished = true;
                }
                Step::Start { name, init } => {
                    let Some((container, _)) = find_container(&spec, name) else {
                        continue;
                    };
                    let previous = observed.latest(name);
                    if let Some(prev) = previous.filter(|p| !p.running()) {
                        // A restart: upstream's crash-loop backoff.
                        if prev.exit_code().is_some() {
                            // Upstream's crash-loop backoff, measured from the exit.
                            // When the worker first saw it exited (within a resync of the exit;
                            // on tokio's clock, so tests run on paused time).
                            let since_exit = self
                                .state
                                .exits
                                .get(&prev.id)
                                .map(|t| t.elapsed())
                                .unwrap_or_default();
                            let delay = self.state.crash_backoff.delay(name);
                            if let Some(delay) = delay.filter(|d| since_exit < *d) {
                                let (pname, ns) = (
                                    pod.metadata.name.clone().unwrap_or_default(),
                                    pod.metadata.namespace.clone().unwrap_or_default(),
                                );
                                self.event(pod, Some((name, *init)), true, "BackOff",
                                    format!("Back-off restarting failed container {name} in pod {pname}_{ns}({})", self.uid));
                                self.state.waiting.insert(name.clone(), ("CrashLoopBackOff".into(),
                                    format!("back-off {} restarting failed container={name} pod={pname}_{ns}({})", go_duration(delay), self.uid)));
                                self.state.backoff_until = Some(
                                    self.state
                                        .backoff_until
                                        .map_or(delay - since_exit, |d| d.min(delay - since_exit)),
                                );
                                continue;
                            }
                            self.state.crash_backoff.next(name);
                        }
                    }
                    // The restart count goes on across sandboxes.
                    let attempt = observed
                        .containers
                        .get(name.as_str())
                        .and_then(|list| list.iter().map(|i| i.attempt).max())
                        .map_or(0, |a| a + 1);
                    let ok = self
                        .start_container(
                            pod,
                            container,
                            *init,
                            &sandbox_id,
                            &sandbox_config,
                            &pod_ips,
                            &volumes,
                            attempt,
                        )
                        .await;
                    if ok && *init && !is_sidecar(container) {
                        break; // one init container at a time
                    }
                }
            }
        }
        let observed = match self.observe().await {
            Ok(o) => o,
            Err(_) => observed,
        };
        if all_done(&spec, &observed) || steps.contains(&Step::PodFailed) {
            self.state.finished = true;
            // What still runs (sidecars) stops with its grace period and preStop, as upstream.
            let grace = pod_grace_period(pod);
            let mut kills = vec![];
            for (name, list) in &observed.containers {
                for i in list.iter().filter(|i| i.running()) {
                    let init = find_container(&spec, name).is_some_and(|(_, init)| init);
                    self.event(
                        pod,
                        Some((name, init)),
                        false,
                        "Killing",
                        format!("Stopping container {name}"),
                    );
                    kills.push(self.kill_container(pod, &i.id, name, grace));
                }
            }
            futures::future::join_all(kills).await;
            self.stop_sandboxes(&observed).await;
        }
        for (name, instances) in &observed.containers {
            match instances
                .first()
                .filter(|i| i.running() && !self.state.finished)
            {
                Some(i) => {
                    let started_at =
                        ns_to_timestamp(i.status.started_at).unwrap_or_else(Timestamp::now);
                    self.shared.probes.sync_container(
                        pod,
                        name,
                        &i.id,
                        started_at,
                        pod_ips.first().map(String::as_str).unwrap_or_default(),
                    );
                }
                // Nothing to probe in a container that is not running.
                None => self.shared.probes.remove_container(&self.uid, name),
            }
        }
        let finished = self.state.finished;
        if steps.iter().any(|s| matches!(s, Step::Start { .. })) {
            tracing::debug!(pod = %pod_key(pod),
                before_containers_ms = sandbox_done.duration_since(sync_started).as_millis() as u64,
                containers_ms = sandbox_done.elapsed().as_millis() as u64, "started containers");
        }
        self.post_status(pod, &observed, !finished, pod_ips, finished)
            .await;
        // A fresh error stays visible for a few seconds before the next attempt turns it into
        // a backoff (upstream requeues a failed sync with a backoff of its own).
        let fresh_error = self.state.waiting.values().any(|(reason, _)| {
            matches!(
                reason.as_str(),
                "ErrImagePull"
                    | "CreateContainerConfigError"
                    | "CreateContainerError"
                    | "RunContainerError"
            )
        });
        let image_backoff = self
            .state
            .waiting
            .values()
            .any(|(reason, _)| reason == "ImagePullBackOff");
        SyncResult::Resync(if self.state.finished {
            SLOW_RESYNC
        } else if fresh_error {
            ERROR_RESYNC
        } else if let Some(left) = self.state.backoff_until {
            // Look again when the shortest crash-loop window ends (not every second: each
            // look while backing off is a BackOff event).
            left.clamp(RESYNC, SLOW_RESYNC)
        } else if image_backoff {
            ERROR_RESYNC
        } else {
            STEADY_RESYNC
        })
    }

    /// A ready sandbox for the pod: the existing one, or a new one. `Ok(None)`: no sandbox and
    /// none to be made now; `Err`: making one failed (event recorded).
    async fn ensure_sandbox(
        &mut self,
        pod: &Pod,
        spec: &PodSpec,
        observed: &Observed,
    ) -> Result<Option<(String, v1::PodSandboxConfig, Vec<String>)>, ()> {
        let mut ctx = self.shared.node.sandbox.clone();
        if let Some(ready) = observed.ready_sandbox() {
            ctx.attempt = ready.metadata.as_ref().map(|m| m.attempt).unwrap_or(0);
            let config = podconfig::sandbox_config(pod, &ctx).map_err(|e| {
                self.sandbox_failed(pod, &e);
            })?;
            let ips = self.sandbox_ips(&ready.id).await;
            return Ok(Some((ready.id.clone(), config, ips)));
        }
        // Upstream: a pod that must not restart and already ran gets no new sandbox.
        let ran = observed.containers.values().any(|v| !v.is_empty());
        if !observed.sandboxes.is_empty() && ran && restart_policy(spec) == "Never" {
            self.stop_sandboxes(observed).await;
            return Ok(None);
        }
        if self.state.sandbox_backoff.in_backoff("sandbox") {
            return Err(());
        }
        // A dead sandbox: stopped with its containers, and kept (until it is older than the
        // previous one) so the restart counts carry over to the new one, as upstream's.
        if !observed.sandboxes.is_empty() {
            self.event(
                pod,
                None,
                false,
                "SandboxChanged",
                "Pod sandbox changed, it will be killed and re-created.".into(),
            );
            self.stop_sandboxes(observed).await;
        }
        ctx.attempt = observed
            .sandboxes
            .first()
            .and_then(|s| s.metadata.as_ref())
            .map(|m| m.attempt + 1)
            .unwrap_or(0);
        let config = podconfig::sandbox_config(pod, &ctx).map_err(|e| {
            self.sandbox_failed(pod, &e);
        })?;
        if let Err(e) = self.prepare_pod_dir(&config) {
            self.sandbox_failed(pod, &e);
            self.state.sandbox_backoff.next("sandbox");
            return Err(());
        }
        let creating = Instant::now();
        match self
            .shared
            .runtime
            .run_pod_sandbox(
                config.clone(),
                pod.spec
                    .as_ref()
                    .and_then(|s| s.runtime_class_name.as_deref())
                    .unwrap_or(""),
            )
            .await
        {
            Ok(id) => {
                tracing::debug!(pod = %pod_key(pod), ms = creating.elapsed().as_millis() as u64, "sandbox created");
                self.state.sandbox_backoff.reset("sandbox");
                let ips = self.sandbox_ips(&id).await;
                Ok(Some((id, config, ips)))
            }
            Err(e) => {
                tracing::warn!(pod = %pod_key(pod), error = %e, "creating the pod sandbox");
                self.sandbox_failed(pod, &e);
                self.state.sandbox_backoff.next("sandbox");
                Err(())
            }
        }
    }

    /// Upstream's `FailedCreatePodSandBox` event.
    fn sandbox_failed(&self, pod: &Pod, error: &dyn std::fmt::Display) {
        self.event(
            pod,
            None,
            true,
            "FailedCreatePodSandBox",
            format!("Failed to create pod sandbox: {error}"),
        );
    }

    /// The log directory and the managed `/etc/hosts`, before the sandbox.
    fn prepare_pod_dir(&self, config: &v1::PodSandboxConfig) -> std::io::Result<()> {
        std::fs::create_dir_all(&config.log_directory)?;
        std::fs::create_dir_all(self.shared.node.pods_dir.join(&self.uid))
    }

    async fn sandbox_ips(&self, id: &str) -> Vec<String> {
        match self.shared.runtime.pod_sandbox_status(id).await {
            Ok(status) => status
                .network
                .map(|n| {
                    std::iter::once(n.ip)
                        .chain(n.additional_ips.into_iter().map(|i| i.ip))
                        .filter(|ip| !ip.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            Err(e) => {
                tracing::debug!(sandbox = %id, error = %e, "sandbox status");
                vec![]
            }
        }
    }

    /// The managed `/etc/hosts` of a pod (upstream `managedHostsFileContent`).
    fn write_etc_hosts(&self, pod: &Pod, pod_ips: &[String]) -> std::io::Result<Option<String>> {
        let spec = pod.spec.clone().unwrap_or_default();
        if spec.host_network.unwrap_or(false) {
            return Ok(None);
        }
        let hostname = spec
            .hostname
            .clone()
            .or_else(|| pod.metadata.name.clone())
            .unwrap_or_default();
        let mut content = String::from(
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
        );
        let fqdn = spec.subdomain.as_ref().map(|sub| {
            format!(
                "{hostname}.{sub}.{}.svc.{}",
                pod.metadata.namespace.as_deref().unwrap_or("default"),
                self.shared.node.sandbox.cluster_domain
            )
        });
        for ip in pod_ips {
            match &fqdn {
                Some(fqdn) => content.push_str(&format!("{ip}\t{fqdn}\t{hostname}\n")),
                None => content.push_str(&format!("{ip}\t{hostname}\n")),
            }
        }
        if let Some(aliases) = &spec.host_aliases {
            content.push_str("\n# Entries added by HostAliases.\n");
            for alias in aliases {
                let names = alias.hostnames.clone().unwrap_or_default().join("\t");
                content.push_str(&format!("{}\t{names}\n", alias.ip));
            }
        }
        let path = self.shared.node.pods_dir.join(&self.uid).join("etc-hosts");
        std::fs::create_dir_all(self.shared.node.pods_dir.join(&self.uid))?;
        std::fs::write(&path, content)?;
        Ok(Some(path.to_string_lossy().into_owned()))
    }

    /// Pulls, creates and starts one container; records why it could not in
    /// [`WorkerState::waiting`]. Returns whether it started.
    #[allow(clippy::too_many_arguments)]
    async fn start_container(
        &mut self,
        pod: &Pod,
        container: &Container,
        init: bool,
        sandbox_id: &str,
        sandbox_config: &v1::PodSandboxConfig,
        pod_ips: &[String],
        volumes: &BTreeMap<String, podconfig::VolumeHostPath>,
        attempt: u32,
    ) -> bool {
        let name = container.name.as_str();
        let at = Some((name, init));
        let runtime = self.shared.runtime.clone();
        let mut events = vec![];
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let mut pull_secrets = vec![];
        for reference in pod
            .spec
            .iter()
            .flat_map(|s| s.image_pull_secrets.iter().flatten())
        {
            // A missing pull secret is not an error: the pull goes on without it, as upstream.
            if let Ok(Some(secret)) = self
                .shared
                .objects
                .secret(&namespace, &reference.name)
                .await
            {
                pull_secrets.push(secret);
            }
        }
        let credentials = crate::images::pull_credentials(
            container.image.as_deref().unwrap_or_default(),
            &pull_secrets,
        );
        let image = self
            .shared
            .images
            .ensure_image(
                runtime.as_ref(),
                &self.uid,
                container,
                sandbox_config,
                &credentials,
                &mut events,
            )
            .await;
        for e in events {
            self.event(pod, at, e.warning, e.reason, e.message);
        }
        let image_ref = match image {
            Ok(r) => r,
            Err(e) => {
                self.event(pod, at, true, "Failed", format!("Error: {}", e.reason));
                self.state
                    .waiting
                    .insert(name.to_string(), (e.reason.to_string(), e.message));
                return false;
            }
        };
        let fail = |this: &mut Self, reason: &str, message: String| {
            this.event(pod, at, true, "Failed", format!("Error: {message}"));
            this.state
                .waiting
                .insert(name.to_string(), (reason.to_string(), message));
            false
        };
        let mut ctx = ContainerContext {
            restart_count: attempt,
            image_ref,
            pod_ips: pod_ips.to_vec(),
            host_ips: self.shared.node.node_ips.clone(),
            node_allocatable: self.shared.node.node_allocatable.clone(),
            node_memory_capacity: self.shared.node.node_memory_capacity,
            volumes: volumes.clone(),
            seccomp_profile_root: self.shared.node.seccomp_profile_root.clone(),
            ..Default::default()
        };
        match self.write_etc_hosts(pod, pod_ips) {
            Ok(path) => ctx.etc_hosts_path = path,
            Err(e) => {
                return fail(
                    self,
                    "CreateContainerConfigError",
                    format!("writing /etc/hosts: {e}"),
                )
            }
        }
        let message_dir = self
            .shared
            .node
            .pods_dir
            .join(&self.uid)
            .join("containers")
            .join(name);
        let message_file = message_dir.join(attempt.to_string());
        if let Err(e) =
            std::fs::create_dir_all(&message_dir).and_then(|()| std::fs::write(&message_file, b""))
        {
            return fail(
                self,
                "CreateContainerConfigError",
                format!("termination message file: {e}"),
            );
        }
        ctx.termination_message_host_path = Some(message_file.to_string_lossy().into_owned());
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let (config_maps, secrets) = env_sources(container);
        for cm in config_maps {
            match self.shared.objects.config_map(&namespace, &cm).await {
                Ok(Some(found)) => {
                    let mut data = found.data.unwrap_or_default();
                    for (k, v) in found.binary_data.unwrap_or_default() {
                        data.insert(k, String::from_utf8_lossy(&v.0).into_owned());
                    }
                    ctx.config_maps.insert(cm, data);
                }
                Ok(None) => {}
                Err(e) => return fail(self, "CreateContainerConfigError", e.to_string()),
            }
        }
        for s in secrets {
            match self.shared.objects.secret(&namespace, &s).await {
                Ok(Some(found)) => {
                    let data = found
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0))
                        .collect();
                    ctx.secrets.insert(s, data);
                }
                Ok(None) => {}
                Err(e) => return fail(self, "CreateContainerConfigError", e.to_string()),
            }
        }
        let config = match podconfig::container_config(pod, container, &ctx) {
            Ok(c) => c,
            Err(e) => return fail(self, "CreateContainerConfigError", e.to_string()),
        };
        let id = match runtime
            .create_container(sandbox_id, config, sandbox_config.clone())
            .await
        {
            Ok(id) => id,
            Err(e) => return fail(self, "CreateContainerError", e.to_string()),
        };
        self.event(
            pod,
            at,
            false,
            "Created",
            format!("Created container: {name}"),
        );
        if let Err(e) = runtime.start_container(&id).await {
            return fail(self, "RunContainerError", e.to_string());
        }
        self.event(
            pod,
            at,
            false,
            "Started",
            format!("Started container {name}"),
        );
        self.state.waiting.remove(name);
        if let Some(post_start) = container
            .lifecycle
            .as_ref()
            .and_then(|l| l.post_start.as_ref())
        {
            let ip = pod_ips.first().cloned().unwrap_or_default();
            if let Err(message) = self
                .run_hook(post_start, container, &id, &ip, Duration::from_secs(30))
                .await
            {
                self.event(pod, at, true, "FailedPostStartHook", message);
                let grace = pod_grace_period(pod);
                self.kill_container(pod, &id, name, grace).await;
                return false;
            }
        }
        true
    }

    /// Runs a lifecycle hook (exec in the container, or an HTTP GET), bounded by `timeout`.
    async fn run_hook(
        &self,
        hook: &LifecycleHandler,
        container: &Container,
        container_id: &str,
        pod_ip: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        if let Some(exec) = &hook.exec {
            let command = exec.command.clone().unwrap_or_default();
            return match self.shared.runtime.exec_sync(container_id, command.clone(), timeout).await {
                Ok(r) if r.exit_code == 0 => Ok(()),
                Ok(r) => Err(format!(
                    "Exec lifecycle hook ({command:?}) for Container \"{}\" in Pod failed - error: command '{}' exited with {}: {}",
                    container.name,
                    command.join(" "),
                    r.exit_code,
                    String::from_utf8_lossy(&r.stderr)
                )),
                Err(e) => Err(format!("Exec lifecycle hook ({command:?}) for Container \"{}\" in Pod failed - error: {e}", container.name)),
            };
        }
        if let Some(http) = &hook.http_get {
            let probe = k8s_openapi::api::core::v1::Probe {
                http_get: Some(http.clone()),
                timeout_seconds: Some(timeout.as_secs().max(1) as i32),
                ..Default::default()
            };
            let target = crate::probe::ProbeTarget {
                pod_ip,
                container_id,
                container,
                runtime: self.shared.runtime.as_ref(),
            };
            return match crate::probe::probe_once(&probe, &target).await {
                crate::probe::ProbeResult::Success => Ok(()),
                other => Err(format!("HTTP lifecycle hook ({}) for Container \"{}\" in Pod failed - error: {other:?}", http.path.clone().unwrap_or_default(), container.name)),
            };
        }
        if let Some(sleep) = &hook.sleep {
            tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0) as u64).min(timeout)).await;
        }
        Ok(())
    }

    /// Stops one container with `grace` (at least the 2 s minimum), running its preStop hook
    /// first.
    async fn kill_container(&self, pod: &Pod, id: &str, name: &str, grace: Duration) {
        let started = Instant::now();
        let spec = pod.spec.clone().unwrap_or_default();
        if let Some((container, _)) = find_container(&spec, name) {
            if let Some(pre_stop) = container
                .lifecycle
                .as_ref()
                .and_then(|l| l.pre_stop.as_ref())
            {
                let ip = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.pod_ip.clone())
                    .unwrap_or_default();
                let hook = self.run_hook(pre_stop, container, id, &ip, grace);
                match tokio::time::timeout(grace, hook).await {
                    Ok(Ok(())) => {}
                    Ok(Err(message)) => {
                        self.event(pod, Some((name, false)), true, "FailedPreStopHook", message)
                    }
                    Err(_) => self.event(
                        pod,
                        Some((name, false)),
                        true,
                        "FailedPreStopHook",
                        format!("PreStopHook failed: timed out after {}", go_duration(grace)),
                    ),
                }
            }
        }
        let left = grace
            .saturating_sub(started.elapsed())
            .max(MINIMUM_GRACE_PERIOD);
        if let Err(e) = self
            .shared
            .runtime
            .stop_container(id, left.as_secs_f64().ceil() as i64)
            .await
        {
            tracing::warn!(pod = %pod_key(pod), container = %name, error = %e, "stopping a container");
        }
    }

    async fn stop_sandboxes(&self, observed: &Observed) {
        for s in observed
            .sandboxes
            .iter()
            .filter(|s| s.state == v1::PodSandboxState::SandboxReady as i32)
        {
            if let Err(e) = self.shared.runtime.stop_pod_sandbox(&s.id).await {
                tracing::warn!(sandbox = %s.id, error = %e, "stopping a sandbox");
            }
        }
    }

    /// Terminates the pod: containers stopped within the grace period (preStop first), the
    /// sandbox stopped and removed, volumes cleaned, the final status posted, and — unless the
    /// pod is already `gone` from the API — the delete finalized with grace period 0.
    pub async fn terminate(&mut self, pod: &Pod, gone: bool) -> SyncResult {
        if !self.state.killed {
            let grace = Duration::from_secs(
                pod.metadata
                    .deletion_grace_period_seconds
                    .map(|g| g.max(0) as u64)
                    .unwrap_or_else(|| pod_grace_period(pod).as_secs()),
            );
            // terminationGracePeriodSeconds has no upper bound: cap it at a day.
            let grace = grace.min(Duration::from_secs(86_400));
            self.state
                .kill_deadline
                .get_or_insert(Instant::now() + grace);
            let observed = match self.observe().await {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(pod = %pod_key(pod), error = %e, "looking at the runtime");
                    return SyncResult::Resync(RESYNC);
                }
            };
            let spec = pod.spec.clone().unwrap_or_default();
            let mut running: Vec<(&String, &Instance)> = observed
                .containers
                .iter()
                .flat_map(|(name, list)| {
                    list.iter().filter(|i| i.running()).map(move |i| (name, i))
                })
                .collect();
            running
                .sort_by_key(|(name, _)| find_container(&spec, name).is_some_and(|(_, init)| init));
            // App containers first, then sidecars (upstream stops sidecars last), each group
            // with what is left of the grace period.
            for sidecars in [false, true] {
                let group: Vec<(&String, &Instance)> = running
                    .iter()
                    .filter(|(n, _)| {
                        find_container(&spec, n).is_some_and(|(_, init)| init) == sidecars
                    })
                    .copied()
                    .collect();
                if group.is_empty() {
                    continue;
                }
                let remaining = self.state.kill_deadline.map_or(Duration::ZERO, |d| {
                    d.saturating_duration_since(Instant::now())
                });
                let mut kills = vec![];
                for (name, instance) in &group {
                    self.event(
                        pod,
                        Some((name, sidecars)),
                        false,
                        "Killing",
                        format!("Stopping container {name}"),
                    );
                    kills.push(self.kill_container(pod, &instance.id, name, remaining));
                }
                let ids = group.iter().map(|(_, i)| i.id.clone()).collect();
                let shortened = kill_or_shorten(
                    self.shared.runtime.clone(),
                    async {
                        futures::future::join_all(kills).await;
                    },
                    ids,
                    self.updates.clone(),
                    remaining,
                )
                .await;
                if let Some(grace) = shortened {
                    let sooner = Instant::now() + grace;
                    self.state.kill_deadline =
                        Some(self.state.kill_deadline.map_or(sooner, |d| d.min(sooner)));
                }
            }
            self.stop_sandboxes(&observed).await;
            self.shared.probes.remove_pod(&self.uid);
            // The final status, from the stopped containers, before they are removed.
            let stopped = self.observe().await.unwrap_or(observed);
            if !gone {
                self.state.deleted = true;
                self.post_status(pod, &stopped, false, vec![], true).await;
            }
            for s in &stopped.sandboxes {
                if let Err(e) = self.shared.runtime.remove_pod_sandbox(&s.id).await {
                    tracing::warn!(sandbox = %s.id, error = %e, "removing a sandbox");
                    return SyncResult::Resync(RESYNC);
                }
            }
            // Unmounting and deleting files blocks: off the async threads.
            let (shared, uid) = (self.shared.clone(), self.uid.clone());
            let cleaned = tokio::task::spawn_blocking(move || shared.volumes.cleanup(&uid)).await;
            if let Ok(Err(e)) | Err(e) = cleaned
                .map_err(|e| e.to_string())
                .map(|r| r.map_err(|e| e.to_string()))
            {
                tracing::warn!(pod = %pod_key(pod), error = %e, "cleaning up volumes");
                return SyncResult::Resync(RESYNC);
            }
            let _ = std::fs::remove_dir_all(self.shared.node.pods_dir.join(&self.uid));
            let logs = podconfig::pod_log_directory(
                &self.shared.node.sandbox.pod_logs_root,
                pod.metadata.namespace.as_deref().unwrap_or_default(),
                pod.metadata.name.as_deref().unwrap_or_default(),
                &self.uid,
            );
            let _ = std::fs::remove_dir_all(logs);
            self.shared.images.forget_pod(&self.uid);
            self.state.killed = true;
        }
        if gone {
            return SyncResult::Finished;
        }
        match self.shared.api.finalize_delete(pod).await {
            Ok(()) => SyncResult::Resync(SLOW_RESYNC),
            Err(e) if matches!(&e, kube::Error::Api(s) if s.code == 404 || s.code == 409) => {
                SyncResult::Finished
            }
            Err(e) => {
                tracing::warn!(pod = %pod_key(pod), error = %e, "finalizing the delete");
                SyncResult::Resync(RESYNC)
            }
        }
    }

    /// The pod's facts for the status computation.
    fn facts(
        &self,
        pod: &Pod,
        observed: &Observed,
        sandbox_ready: bool,
        pod_ips: Vec<String>,
        terminal: bool,
    ) -> PodFacts {
        let spec = pod.spec.clone().unwrap_or_default();
        let container_facts = |c: &Container| -> Option<ContainerFacts> {
            let waiting = self.state.waiting.get(&c.name);
            let list = observed
                .containers
                .get(&c.name)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let Some(latest) = list.first() else {
                let (reason, message) = waiting?.clone();
                return Some(ContainerFacts::new(
                    &c.name,
                    RuntimeState::Waiting { reason, message },
                ));
            };
            let s = &latest.status;
            let mut last_termination = list.get(1).and_then(terminated_of);
            let state = match latest.state() {
                v1::ContainerState::ContainerRunning => RuntimeState::Running {
                    started_at: ns_to_timestamp(s.started_at).unwrap_or(self.state.first_seen),
                },
                v1::ContainerState::ContainerExited => {
                    let mut t = terminated_of(latest).unwrap_or_default();
                    if t.message.is_empty() {
                        t.message = self.termination_message(&c.name, latest.attempt);
                    }
                    match waiting.filter(|_| !terminal) {
                        // Waiting to be restarted: the exit becomes the last state.
                        Some((reason, message)) => {
                            last_termination = Some(t);
                            RuntimeState::Waiting {
                                reason: reason.clone(),
                                message: message.clone(),
                            }
                        }
                        None => RuntimeState::Terminated(t),
                    }
                }
                _ => RuntimeState::Waiting {
                    reason: waiting
                        .map(|w| w.0.clone())
                        .unwrap_or_else(|| "ContainerCreating".into()),
                    message: waiting.map(|w| w.1.clone()).unwrap_or_default(),
                },
            };
            let mut facts = ContainerFacts::new(&c.name, state);
            facts.last_termination = last_termination;
            facts.restart_count = latest.attempt as i32;
            facts.image = c.image.clone().unwrap_or_default();
            facts.image_id = s.image_ref.clone();
            facts.container_id = latest.id.clone();
            facts.readiness = self.shared.probes.readiness(&self.uid, &c.name);
            facts.startup = self.shared.probes.startup(&self.uid, &c.name);
            Some(facts)
        };
        PodFacts {
            containers: spec.containers.iter().filter_map(container_facts).collect(),
            init_containers: spec
                .init_containers
                .iter()
                .flatten()
                .filter_map(container_facts)
                .collect(),
            sandbox_ready,
            pod_ips,
            host_ips: self.shared.node.node_ips.clone(),
            start_time: Some(self.state.first_seen),
            pod_is_terminal: terminal,
            now: Timestamp::now(),
        }
    }

    fn termination_message(&self, name: &str, attempt: u32) -> String {
        let path = self
            .shared
            .node
            .pods_dir
            .join(&self.uid)
            .join("containers")
            .join(name)
            .join(attempt.to_string());
        let mut message = std::fs::read(path).unwrap_or_default();
        message.truncate(4096);
        String::from_utf8_lossy(&message).into_owned()
    }

    /// Computes the status and patches it if it changed since the last post (the status
    /// manager's rule).
    async fn post_status(
        &mut self,
        pod: &Pod,
        observed: &Observed,
        sandbox_ready: bool,
        pod_ips: Vec<String>,
        terminal: bool,
    ) {
        let facts = self.facts(pod, observed, sandbox_ready, pod_ips, terminal);
        let previous = self
            .state
            .last_status
            .clone()
            .or_else(|| pod.status.clone())
            .unwrap_or_default();
        let mut status = status::pod_status(pod, &facts, &previous);
        if self.state.deleted {
            terminal_status_of_deleted_pod(&mut status);
        }
        if status.pod_ip.is_none() {
            // A stopped sandbox keeps its IP in the status, as upstream's.
            status.pod_ip = previous.pod_ip.clone();
            status.pod_ips = previous.pod_ips.clone();
        }
        let changed = match &self.state.last_status {
            Some(last) => status::status_changed(last, &status),
            None => pod
                .status
                .as_ref()
                .is_none_or(|s| status::status_changed(s, &status)),
        };
        if !changed {
            return;
        }
        match self.shared.api.patch_status(pod, &status).await {
            Ok(()) => self.state.last_status = Some(status),
            Err(e) => tracing::debug!(pod = %pod_key(pod), error = %e, "patching the pod status"),
        }
    }
}

/// Upstream `TerminatePod`: a deleted pod's containers that never ended are reported terminated
/// with `ContainerStatusUnknown` (137), and the pod ends Failed if it was not terminal yet.
pub fn terminal_status_of_deleted_pod(status: &mut PodStatus) {
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateTerminated};
    let statuses = status
        .container_statuses
        .iter_mut()
        .chain(status.init_container_statuses.iter_mut())
        .flatten();
    for c in statuses {
        let ended = c.state.as_ref().is_some_and(|s| s.terminated.is_some());
        if !ended {
            c.last_state = c
                .state
                .take()
                .filter(|s| s.running.is_some())
                .or(c.last_state.take());
            c.state = Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 137,
                    reason: Some("ContainerStatusUnknown".into()),
                    message: Some(
                        "The container could not be located when the pod was terminated".into(),
                    ),
                    ..Default::default()
                }),
                ..Default::default()
            });
            c.ready = false;
            c.started = Some(false);
        }
    }
    if !matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        status.phase = Some("Failed".into());
    }
}

/// The container named `name` and whether it is an init container.
fn find_container<'a>(spec: &'a PodSpec, name: &str) -> Option<(&'a Container, bool)> {
    spec.containers
        .iter()
        .find(|c| c.name == name)
        .map(|c| (c, false))
        .or_else(|| {
            spec.init_containers
                .iter()
                .flatten()
                .find(|c| c.name == name)
                .map(|c| (c, true))
        })
}

/// `spec.terminationGracePeriodSeconds` (default 30).
fn pod_grace_period(pod: &Pod) -> Duration {
    let secs = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30);
    Duration::from_secs(secs.max(0) as u64)
}

/// The configMaps and secrets a container's env refers to.
fn env_sources(container: &Container) -> (Vec<String>, Vec<String>) {
    let (mut cms, mut secrets) = (vec![], vec![]);
    for from in container.env_from.iter().flatten() {
        if let Some(r) = &from.config_map_ref {
            cms.push(r.name.clone());
        }
        if let Some(r) = &from.secret_ref {
            secrets.push(r.name.clone());
        }
    }
    for env in container.env.iter().flatten() {
        if let Some(source) = &env.value_from {
            if let Some(r) = &source.config_map_key_ref {
                cms.push(r.name.clone());
            }
            if let Some(r) = &source.secret_key_ref {
                secrets.push(r.name.clone());
            }
        }
    }
    cms.sort();
    cms.dedup();
    secrets.sort();
    secrets.dedup();
    (cms, secrets)
}

/// An object reference for events about the pod (for callers outside the worker).
pub fn pod_reference(pod: &Pod) -> ObjectReference {
    ferry_client::events::reference(pod)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::fake::Call;
    use crate::runtime::FakeRuntime;
    use crate::volume::StaticObjectSource;
    use parking_lot::Mutex;
    use serde_json::json;

    /// Records what the worker posts and deletes.
    #[derive(Default)]
    struct FakeApi {
        statuses: Mutex<Vec<PodStatus>>,
        deletes: Mutex<u32>,
    }

    #[async_trait]
    impl PodApi for FakeApi {
        async fn patch_status(&self, _pod: &Pod, status: &PodStatus) -> Result<(), kube::Error> {
            self.statuses.lock().push(status.clone());
            Ok(())
        }
        async fn finalize_delete(&self, _pod: &Pod) -> Result<(), kube::Error> {
            *self.deletes.lock() += 1;
            Ok(())
        }
    }

    struct Fixture {
        runtime: Arc<FakeRuntime>,
        api: Arc<FakeApi>,
        events: tokio::sync::mpsc::Receiver<ferry_client::events::Record>,
        worker: PodWorker,
        _dir: tempfile::TempDir,
    }

    fn fixture(objects: StaticObjectSource) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime = Arc::new(FakeRuntime::new());
        runtime.add_image("r/app:1");
        let api = Arc::new(FakeApi::default());
        let (recorder, events) = Recorder::for_tests();
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let pods_dir = dir.path().join("pods");
        let shared = Arc::new(Shared {
            runtime: runtime.clone(),
            api: api.clone(),
            objects: Arc::new(objects),
            volumes: VolumeManager::new(pods_dir.clone()),
            images: ImageManager::default(),
            probes: ProbeManager::new(runtime.clone(), recorder.clone(), tx),
            recorder,
            pod_starts: tokio::sync::Semaphore::new(4),
            node: NodeContext {
                node_name: "n1".into(),
                node_ips: vec!["192.0.2.1".into()],
                sandbox: SandboxContext {
                    pod_logs_root: dir.path().join("logs").to_string_lossy().into_owned(),
                    cgroup_root: "/kubepods".into(),
                    cluster_domain: "cluster.local".into(),
                    ..Default::default()
                },
                pods_dir,
                ..Default::default()
            },
        });
        Fixture {
            worker: PodWorker::new(shared, "uid-1".into()),
            runtime,
            api,
            events,
            _dir: dir,
        }
    }

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "uid-1"},
            "spec": spec,
        }))
        .expect("pod")
    }

    fn created(runtime: &FakeRuntime) -> Vec<String> {
        runtime
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::CreateContainer { name, .. } => Some(name),
                _ => None,
            })
            .collect()
    }

    fn last_status(api: &FakeApi) -> serde_json::Value {
        serde_json::to_value(api.statuses.lock().last().cloned().unwrap_or_default()).expect("json")
    }

    fn reasons(
        events: &mut tokio::sync::mpsc::Receiver<ferry_client::events::Record>,
    ) -> Vec<String> {
        let mut out = vec![];
        while let Ok(e) = events.try_recv() {
            out.push(e.reason);
        }
        out
    }

    fn image(name: &str) -> serde_json::Value {
        json!({"name": name, "image": "r/app:1", "imagePullPolicy": "IfNotPresent"})
    }

    #[tokio::test(start_paused = true)]
    async fn init_containers_run_one_at_a_time_in_order() {
        let mut f = fixture(StaticObjectSource::new());
        f.runtime.exit_on_start("a", 0);
        f.runtime.exit_on_start("b", 0);
        let p =
            pod(json!({"initContainers": [image("a"), image("b")], "containers": [image("c")]}));
        f.worker.sync(&p).await;
        assert_eq!(created(&f.runtime), ["a"]);
        assert_eq!(
            last_status(&f.api)["initContainerStatuses"][0]["state"]["terminated"]["exitCode"],
            0
        );
        f.worker.sync(&p).await;
        assert_eq!(created(&f.runtime), ["a", "b"]);
        f.worker.sync(&p).await;
        assert_eq!(created(&f.runtime), ["a", "b", "c"]);
        let status = last_status(&f.api);
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["podIP"], "10.42.0.2");
        assert!(status["containerStatuses"][0]["state"]["running"].is_object());
        // Steady: nothing more is created, and an unchanged status is not posted again.
        let posted = f.api.statuses.lock().len();
        f.worker.sync(&p).await;
        assert_eq!(created(&f.runtime), ["a", "b", "c"]);
        assert_eq!(f.api.statuses.lock().len(), posted);
        let r = reasons(&mut f.events);
        assert!(r.iter().filter(|r| *r == "Started").count() == 3, "{r:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn failed_init_container_under_never_fails_the_pod() {
        let mut f = fixture(StaticObjectSource::new());
        f.runtime.exit_on_start("a", 3);
        let p = pod(
            json!({"restartPolicy": "Never", "initContainers": [image("a")], "containers": [image("c")]}),
        );
        f.worker.sync(&p).await;
        f.worker.sync(&p).await;
        assert_eq!(created(&f.runtime), ["a"], "no restart, no app container");
        assert_eq!(last_status(&f.api)["phase"], "Failed");
        assert!(f.worker.state.finished);
    }

    #[tokio::test(start_paused = true)]
    async fn crash_loop_backs_off() {
        let mut f = fixture(StaticObjectSource::new());
        f.runtime.exit_on_start("c", 1);
        let p = pod(json!({"containers": [image("c")]}));
        f.worker.sync(&p).await; // first start, exits
        f.worker.sync(&p).await; // first restart: at once
        assert_eq!(created(&f.runtime).len(), 2);
        f.worker.sync(&p).await; // in backoff
        assert_eq!(created(&f.runtime).len(), 2);
        let status = last_status(&f.api);
        let c = &status["containerStatuses"][0];
        assert_eq!(c["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(
            c["state"]["waiting"]["message"],
            "back-off 10s restarting failed container=c pod=p_default(uid-1)"
        );
        assert_eq!(c["lastState"]["terminated"]["exitCode"], 1);
        assert_eq!(c["restartCount"], 1);
        tokio::time::advance(Duration::from_secs(10)).await;
        f.worker.sync(&p).await;
        assert_eq!(created(&f.runtime).len(), 3);
        f.worker.sync(&p).await;
        assert_eq!(
            last_status(&f.api)["containerStatuses"][0]["state"]["waiting"]["message"],
            "back-off 20s restarting failed container=c pod=p_default(uid-1)"
        );
        assert!(reasons(&mut f.events).contains(&"BackOff".to_string()));
    }

    #[tokio::test(start_paused = true)]
    async fn image_pull_errors_then_back_off() {
        let mut f = fixture(StaticObjectSource::new());
        f.runtime.fail_pull(
            "r/missing:1",
            RuntimeError::NotFound("r/missing:1: not found".into()),
        );
        let p = pod(json!({"containers": [{"name": "c", "image": "r/missing:1"}]}));
        f.worker.sync(&p).await;
        let waiting = |f: &Fixture| {
            last_status(&f.api)["containerStatuses"][0]["state"]["waiting"]["reason"].clone()
        };
        assert_eq!(waiting(&f), "ErrImagePull");
        f.worker.sync(&p).await;
        assert_eq!(waiting(&f), "ImagePullBackOff");
        tokio::time::advance(Duration::from_secs(10)).await;
        f.worker.sync(&p).await;
        assert_eq!(waiting(&f), "ErrImagePull");
        let r = reasons(&mut f.events);
        assert!(
            r.contains(&"Pulling".to_string())
                && r.contains(&"Failed".to_string())
                && r.contains(&"BackOff".to_string()),
            "{r:?}"
        );
        assert!(created(&f.runtime).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn missing_config_map_key_is_a_config_error() {
        let objects = StaticObjectSource::new().with_config_map(
            serde_json::from_value(
                json!({"metadata": {"name": "cm", "namespace": "default"}, "data": {"a": "1"}}),
            )
            .expect("cm"),
        );
        let mut f = fixture(objects);
        let mut c = image("c");
        c["env"] =
            json!([{"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "b"}}}]);
        let p = pod(json!({"containers": [c]}));
        f.worker.sync(&p).await;
        let status = last_status(&f.api);
        let waiting = &status["containerStatuses"][0]["state"]["waiting"];
        assert_eq!(waiting["reason"], "CreateContainerConfigError");
        assert_eq!(
            waiting["message"],
            "couldn't find key b in ConfigMap default/cm"
        );
        assert!(created(&f.runtime).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn deletion_stops_containers_within_the_grace_period_then_finalizes() {
        let mut f = fixture(StaticObjectSource::new());
        let mut p = pod(
            json!({"terminationGracePeriodSeconds": 30, "containers": [image("c"), image("d")]}),
        );
        f.worker.sync(&p).await;
        assert_eq!(created(&f.runtime).len(), 2);
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            Timestamp::now(),
        ));
        p.metadata.deletion_grace_period_seconds = Some(5);
        f.runtime.clear_calls();
        let result = f.worker.sync(&p).await;
        assert_eq!(result, SyncResult::Resync(SLOW_RESYNC));
        let calls = f.runtime.calls();
        let stops: Vec<i64> = calls
            .iter()
            .filter_map(|c| match c {
                Call::StopContainer(_, t) => Some(*t),
                _ => None,
            })
            .collect();
        assert_eq!(
            stops,
            [5, 5],
            "each container gets the pod's remaining grace"
        );
        let stop_sandbox = calls
            .iter()
            .position(|c| matches!(c, Call::StopPodSandbox(_)))
            .expect("sandbox stopped");
        let remove_sandbox = calls
            .iter()
            .position(|c| matches!(c, Call::RemovePodSandbox(_)))
            .expect("sandbox removed");
        assert!(stop_sandbox < remove_sandbox);
        assert_eq!(*f.api.deletes.lock(), 1);
        let status = last_status(&f.api);
        assert!(
            status["containerStatuses"][0]["state"]["terminated"].is_object(),
            "{status}"
        );
        assert!(f.runtime.sandbox_ids().is_empty());
        assert!(reasons(&mut f.events).contains(&"Killing".to_string()));
        // Gone from the API afterwards: nothing more to do.
        assert_eq!(f.worker.terminate(&p, true).await, SyncResult::Finished);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pod_deleted_before_its_container_ran_ends_failed() {
        let mut f = fixture(StaticObjectSource::new());
        f.runtime
            .fail_pull("r/missing:1", RuntimeError::NotFound("nope".into()));
        let mut p = pod(json!({"containers": [{"name": "c", "image": "r/missing:1"}]}));
        f.worker.sync(&p).await;
        assert_eq!(last_status(&f.api)["phase"], "Pending");
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            Timestamp::now(),
        ));
        p.metadata.deletion_grace_period_seconds = Some(30);
        f.worker.sync(&p).await;
        let status = last_status(&f.api);
        assert_eq!(status["phase"], "Failed");
        let terminated = &status["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(terminated["reason"], "ContainerStatusUnknown");
        assert_eq!(terminated["exitCode"], 137);
        assert_eq!(*f.api.deletes.lock(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_sandbox_reruns_init_containers_and_keeps_restart_counts() {
        let mut f = fixture(StaticObjectSource::new());
        f.runtime.exit_on_start("i", 0);
        let p = pod(json!({"initContainers": [image("i")], "containers": [image("c")]}));
        f.worker.sync(&p).await;
        f.worker.sync(&p).await;
        assert_eq!(created(&f.runtime), ["i", "c"]);
        // The sandbox dies (its pause process, say).
        let first = f.runtime.sandbox_ids()[0].clone();
        f.runtime.stop_pod_sandbox(&first).await.expect("stop");
        f.worker.sync(&p).await;
        assert_eq!(
            created(&f.runtime),
            ["i", "c", "i"],
            "init containers run again"
        );
        f.worker.sync(&p).await;
        assert_eq!(created(&f.runtime), ["i", "c", "i", "c"]);
        let status = last_status(&f.api);
        assert_eq!(
            status["containerStatuses"][0]["restartCount"], 1,
            "{status}"
        );
        assert!(status["containerStatuses"][0]["state"]["running"].is_object());
        assert_eq!(
            f.runtime.sandbox_ids().len(),
            2,
            "the old sandbox is kept, stopped"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_liveness_probe_restarts_the_container() {
        let mut f = fixture(StaticObjectSource::new());
        f.runtime.set_exec_result(
            "c",
            Ok(crate::runtime::ExecSyncResult {
                exit_code: 1,
                stdout: b"unhealthy".to_vec(),
                stderr: vec![],
            }),
        );
        let mut c = image("c");
        c["livenessProbe"] =
            json!({"exec": {"command": ["check"]}, "periodSeconds": 1, "failureThreshold": 2});
        let p = pod(json!({"terminationGracePeriodSeconds": 5, "containers": [c]}));
        f.worker.sync(&p).await;
        assert_eq!(created(&f.runtime), ["c"]);
        // Two failed probes, a second apart.
        for _ in 0..3 {
            tokio::time::advance(Duration::from_secs(1)).await;
            tokio::task::yield_now().await;
        }
        f.worker.sync(&p).await;
        assert_eq!(created(&f.runtime), ["c", "c"], "killed and started again");
        let stops: Vec<i64> = f
            .runtime
            .calls()
            .iter()
            .filter_map(|c| match c {
                Call::StopContainer(_, t) => Some(*t),
                _ => None,
            })
            .collect();
        assert_eq!(stops, [5], "stopped with the pod's grace period");
        f.worker.sync(&p).await;
        let status = last_status(&f.api);
        assert_eq!(
            status["containerStatuses"][0]["restartCount"], 1,
            "{status}"
        );
        let mut events = vec![];
        while let Ok(e) = f.events.try_recv() {
            events.push((e.reason, e.message));
        }
        assert!(
            events.iter().any(|(r, m)| r == "Unhealthy" && m.starts_with("Liveness probe failed: unhealthy")),
            "{events:?}"
        );
        assert!(
            events.iter().any(|(r, m)| r == "Killing"
                && m == "Container c failed liveness probe, will be restarted"),
            "{events:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn completed_pod_under_on_failure_succeeds_and_stops_its_sandbox() {
        let mut f = fixture(StaticObjectSource::new());
        f.runtime.exit_on_start("c", 0);
        let p = pod(json!({"restartPolicy": "OnFailure", "containers": [image("c")]}));
        f.worker.sync(&p).await;
        assert_eq!(last_status(&f.api)["phase"], "Succeeded");
        assert!(f
            .runtime
            .calls()
            .iter()
            .any(|c| matches!(c, Call::StopPodSandbox(_))));
        f.worker.sync(&p).await;
        assert_eq!(created(&f.runtime).len(), 1, "not restarted");
    }

    #[test]
    fn plan_restarts_per_policy_and_kills_changed_containers() {
        struct NoProbes;
        impl ProbeView for NoProbes {
            fn failed_probe(&self, _: &str, _: &str) -> Option<&'static str> {
                None
            }
            fn started(&self, _: &Container) -> bool {
                true
            }
        }
        let spec: PodSpec =
            serde_json::from_value(json!({"containers": [image("c")]})).expect("spec");
        let exited = |code| Instance {
            id: "x".into(),
            attempt: 0,
            sandbox_id: "s".into(),
            hash: None,
            status: v1::ContainerStatus {
                state: v1::ContainerState::ContainerExited as i32,
                exit_code: code,
                ..Default::default()
            },
        };
        let observed = |i: Instance| Observed {
            sandboxes: vec![],
            containers: [("c".to_string(), vec![i])].into(),
        };
        let start = vec![Step::Start {
            name: "c".into(),
            init: false,
        }];
        assert_eq!(
            plan(&spec, &observed(exited(0)), &NoProbes),
            start,
            "Always restarts"
        );
        let mut never = spec.clone();
        never.restart_policy = Some("Never".into());
        assert!(plan(&never, &observed(exited(1)), &NoProbes).is_empty());
        let mut on_failure = spec.clone();
        on_failure.restart_policy = Some("OnFailure".into());
        assert!(plan(&on_failure, &observed(exited(0)), &NoProbes).is_empty());
        assert_eq!(plan(&on_failure, &observed(exited(1)), &NoProbes), start);
        let mut running = exited(0);
        running.status.state = v1::ContainerState::ContainerRunning as i32;
        running.hash = Some(1);
        let steps = plan(&spec, &observed(running), &NoProbes);
        assert!(
            matches!(&steps[0], Step::Kill { reason, .. } if reason.contains("definition changed")),
            "{steps:?}"
        );
        assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
    }
}
