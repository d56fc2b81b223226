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
//! The worker holds its state between syncs in [`WorkerState`]: where the pod is in its life
//! (the [`Lifecycle`] state machine: syncing, completed, terminating by a deadline,
//! terminated), the backoffs, why containers are waiting, the status last posted.
//!
//! By concept: `plan.rs` (the pure decision: what the runtime has for the pod, and what to do
//! next), `sync.rs` (one sync: look, plan, act), `sandbox.rs` (the pod sandbox and the pod's
//! `/etc/hosts`), `container.rs` (starting a container, its lifecycle hooks, killing it),
//! `terminate.rs` (a deleted pod's termination), `pod_status.rs` (the status a worker posts),
//! `lifecycle.rs` (the [`Lifecycle`] and its moves) and `journey.rs` (the journey steps
//! recorded once: the pod seen, its volumes, container exits). This file holds what a worker
//! is given ([`Shared`], [`NodeContext`], [`PodApi`]) and keeps ([`WorkerState`]).

mod container;
mod journey;
mod lifecycle;
mod plan;
mod pod_status;
mod sandbox;
mod sync;
mod terminate;
#[cfg(test)]
mod testing;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ferry_client::events::{EventType, Recorder};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, ObjectReference, Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::images::{container_reference, ImageManager};
use crate::podconfig::SandboxContext;
use crate::probe::ProbeManager;
use crate::runtime::Runtime;
use crate::volume::{ObjectSource, VolumeManager};

pub use self::journey::StepsRecorded;
pub use self::lifecycle::Lifecycle;
pub use self::plan::{all_done, plan, Instance, Observed, ProbeView, Step};
pub use self::terminate::terminal_status_of_deleted_pod;

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
    /// The eviction manager's side: evictions asked of the workers, and the node conditions
    /// new pods are admitted against.
    pub evictions: Arc<crate::eviction::EvictionState>,
}

/// The default for [`Shared::pod_starts`]: twice the CPUs.
pub fn default_pod_starts() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * 8
}

pub use ferry_api::duration::format_go as go_duration;

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
    /// Where the pod is in its life: syncing, completed, terminating (by when) or terminated.
    pub lifecycle: Lifecycle,
    /// Sandbox creation backoff.
    pub sandbox_backoff: Backoff,
    /// The shortest crash-loop backoff left, as of the last sync (when to look again).
    pub backoff_until: Option<Duration>,
    /// When each exited container instance was first seen exited, by id.
    pub exits: HashMap<String, Instant>,
    /// The eviction manager evicted the pod: it is killed and stays Failed with this.
    pub evicted: Option<crate::eviction::PodEviction>,
    /// The journey steps recorded once per pod or per container instance.
    pub journey: StepsRecorded,
}

impl Default for WorkerState {
    fn default() -> Self {
        WorkerState {
            crash_backoff: Backoff::default(),
            waiting: HashMap::new(),
            first_seen: Timestamp::now(),
            last_status: None,
            lifecycle: Lifecycle::Syncing,
            sandbox_backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
            backoff_until: None,
            exits: HashMap::new(),
            evicted: None,
            journey: StepsRecorded::default(),
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

/// The ephemeral container `name` as a container, and its target.
fn find_ephemeral(spec: &PodSpec, name: &str) -> Option<(Container, Option<String>)> {
    let ephemeral = spec
        .ephemeral_containers
        .iter()
        .flatten()
        .find(|c| c.name == name)?;
    Some((
        crate::podconfig::ephemeral_as_container(ephemeral),
        ephemeral.target_container_name.clone(),
    ))
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

/// An object reference for events about the pod (for callers outside the worker).
pub fn pod_reference(pod: &Pod) -> ObjectReference {
    ferry_client::events::reference(pod)
}
