//! The scheduler proper: one scheduling cycle per popped pod, then an asynchronous binding
//! cycle, as upstream's `schedule_one.go`.
//!
//! Scheduling cycle (one at a time, on the caller's task): pop → snapshot → PreFilter → Filter
//! over nodes in parallel (stopping once enough feasible nodes are found: upstream's adaptive
//! `percentageOfNodesToScore`, starting at a rotating index) → on failure PostFilter
//! (preemption) and the FailedScheduling outcome → PreScore/Score/NormalizeScore with weights →
//! the highest total (ties broken at random) → assume in the cache → Reserve → Permit.
//!
//! Binding cycle (a spawned task, so the next pod is scheduled meanwhile): wait for Permit if
//! asked → PreBind → Bind → the `Scheduled` event → PostBind. A failure unreserves, forgets the
//! assumed pod and requeues the pod with backoff.
//!
//! [`Scheduler`] does no I/O of its own: writes go through the [`Binder`], events through the
//! recorder, and the informer handlers (`on_pod`, `on_node`, ...) are plain methods, so it runs
//! in-process on fed objects (tests, [`crate::bench`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferry_client::events::{EventType, Recorder};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use parking_lot::Mutex;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;
use tracing::field::Empty;
use tracing::Instrument;

use crate::binder::Binder;
use crate::cache::{pod_key, Cache, NodeInfo, PodInfo, Snapshot};
use crate::config::{Config, ConfigError, DEFAULT_SCHEDULER_NAME};
use crate::explain::{why_pending, Shortfall};
use crate::framework::registry::Handle;
use crate::framework::runtime::run_filters;
use crate::framework::{ClusterEvent, Code, CycleState, Framework, NodeStatuses, Status};
use crate::journey::{pod_step, uid_or_key, LastUnschedulable};
use crate::plugins;
use crate::queue::{QueueOptions, QueuedPodInfo, SchedulingQueue};

/// The message when the cluster has no nodes.
pub const NO_NODES_AVAILABLE: &str = "no nodes available to schedule pods";
/// The condition reason of a pod that does not fit.
pub const REASON_UNSCHEDULABLE: &str = "Unschedulable";
/// The condition reason of an internal error.
pub const REASON_SCHEDULER_ERROR: &str = "SchedulerError";
/// Why a pod is pending when the cluster has no nodes, in plain words.
const NO_NODES_WHY: &str = "the cluster has no nodes";
/// The pseudo-plugin a pod waits on when there were no nodes at all (any node add retries it).
pub const NO_NODES_PLUGIN: &str = "<no nodes>";
/// Upstream's floor of feasible nodes to find before stopping.
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// Upstream's floor of the adaptive percentage.
const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: usize = 5;
/// Nodes a filter worker takes at a time.
const FILTER_CHUNK: usize = 16;
/// Below this many nodes per thread, a filter thread costs more than it saves.
const MIN_NODES_PER_FILTER_THREAD: usize = 256;

/// Why no node was found, as upstream's `FitError`; `Display` is the FailedScheduling message.
#[derive(Clone, Debug)]
pub struct FitError {
    /// How many nodes the cluster has.
    pub num_all_nodes: usize,
    /// The PreFilter rejection, if PreFilter rejected the pod.
    pub pre_filter_msg: Option<String>,
    /// Each evaluated node's status.
    pub statuses: NodeStatuses,
    /// What PostFilter (preemption) said.
    pub post_filter_msg: Option<String>,
    /// The plugins that rejected the pod.
    pub unschedulable_plugins: BTreeSet<&'static str>,
    /// For each resource nodes were rejected as `Insufficient <resource>` for, the pod's
    /// request and the most those nodes had free (for [`why_pending`]; not in the message).
    pub shortfalls: BTreeMap<String, Shortfall>,
}

impl FitError {
    /// A FitError over `statuses`.
    pub fn new(
        num_all_nodes: usize,
        pre_filter_msg: Option<String>,
        statuses: NodeStatuses,
    ) -> FitError {
        let unschedulable_plugins = statuses.values().filter_map(|s| s.plugin).collect();
        FitError {
            num_all_nodes,
            pre_filter_msg,
            statuses,
            post_filter_msg: None,
            unschedulable_plugins,
            shortfalls: BTreeMap::new(),
        }
    }
}

impl fmt::Display for FitError {
    /// `0/N nodes are available: <count> <reason>, ... .` with the "`<count> <reason>`" strings
    /// sorted, then the PostFilter message, as upstream's `FitError.Error()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0/{} nodes are available:", self.num_all_nodes)?;
        if let Some(message) = &self.pre_filter_msg {
            write!(f, " {message}.")?;
        } else {
            let mut histogram: HashMap<&str, usize> = HashMap::new();
            for status in self.statuses.values() {
                for reason in &status.reasons {
                    *histogram.entry(reason.as_str()).or_default() += 1;
                }
            }
            let mut reasons: Vec<String> = histogram
                .iter()
                .map(|(reason, count)| format!("{count} {reason}"))
                .collect();
            reasons.sort();
            if !reasons.is_empty() {
                write!(f, " {}.", reasons.join(", "))?;
            }
        }
        if let Some(message) = self.post_filter_msg.as_deref().filter(|m| !m.is_empty()) {
            write!(f, " {message}")?;
            if !message.ends_with('.') {
                f.write_str(".")?;
            }
        }
        Ok(())
    }
}

/// Why a scheduling cycle found no node.
#[derive(Clone, Debug)]
pub enum ScheduleError {
    /// The cluster has no nodes.
    NoNodes,
    /// No node fits.
    Fit(Box<FitError>),
    /// A plugin failed.
    Internal(Status),
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleError::NoNodes => f.write_str(NO_NODES_AVAILABLE),
            ScheduleError::Fit(error) => error.fmt(f),
            ScheduleError::Internal(status) => match status.plugin {
                Some(plugin) => write!(f, "running {plugin:?} plugin: {}", status.message()),
                None => f.write_str(&status.message()),
            },
        }
    }
}

/// A successful scheduling decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleResult {
    /// The chosen node.
    pub host: String,
    /// Nodes filtered.
    pub evaluated_nodes: usize,
    /// Nodes found feasible.
    pub feasible_nodes: usize,
}

/// How many feasible nodes to find before stopping, as upstream's `numFeasibleNodesToFind`.
pub fn num_feasible_nodes_to_find(percentage: i32, num_all_nodes: usize) -> usize {
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND {
        return num_all_nodes;
    }
    let mut percentage = usize::try_from(percentage).unwrap_or(0);
    if percentage == 0 {
        percentage = 50usize
            .saturating_sub(num_all_nodes / 125)
            .max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND);
    }
    (num_all_nodes * percentage / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// Counts binding cycles in flight, so tests and benchmarks can wait for them.
#[derive(Default)]
struct InFlightBinds {
    count: AtomicUsize,
    done: Notify,
}

/// The scheduler: profiles, cache, queue; see the module docs.
pub struct Scheduler {
    /// The cache the informer handlers update.
    pub cache: Arc<Mutex<Cache>>,
    /// The scheduling queue.
    pub queue: Arc<SchedulingQueue>,
    /// Claims, volumes and classes (VolumeBinding's view).
    pub volumes: Arc<crate::volumes::VolumeCache>,
    /// Service and controller selectors (PodTopologySpread's default selector).
    pub workloads: Arc<crate::workloads::WorkloadCache>,
    profiles: HashMap<String, Arc<Framework>>,
    snapshot: Mutex<Snapshot>,
    binder: Arc<dyn Binder>,
    recorder: Option<Recorder>,
    percentage_of_nodes_to_score: i32,
    parallelism: usize,
    next_start_node_index: AtomicUsize,
    rng: AtomicU64,
    binds: InFlightBinds,
    waiting: Mutex<HashMap<String, oneshot::Sender<Status>>>,
    /// Pods nominated to a node by preemption (upstream's nominator): pod key to node and pod.
    /// Filters count them on their node for pods of lower or equal priority, so the room
    /// preemption freed is not taken by someone else.
    nominated: Mutex<HashMap<String, (String, Arc<Pod>)>>,
    /// The last `unschedulable` journey step's message per pod.
    unschedulable_steps: LastUnschedulable,
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn assigned(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

fn scheduler_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduler_name.as_deref())
        .filter(|n| !n.is_empty())
        .unwrap_or(DEFAULT_SCHEDULER_NAME)
}

impl Scheduler {
    /// Builds the profiles of `config` with the in-tree plugins; writes go through `binder`,
    /// events through `recorder` (none: not recorded).
    pub fn new(
        config: &Config,
        binder: Arc<dyn Binder>,
        recorder: Option<Recorder>,
    ) -> Result<Arc<Scheduler>, ConfigError> {
        Scheduler::with_registry(config, &plugins::registry(), binder, recorder)
    }

    /// As [`Scheduler::new`] with out-of-tree plugins: `registry` (start from
    /// [`plugins::registry`] and register more).
    pub fn with_registry(
        config: &Config,
        registry: &crate::framework::registry::Registry,
        binder: Arc<dyn Binder>,
        recorder: Option<Recorder>,
    ) -> Result<Arc<Scheduler>, ConfigError> {
        let volumes: Arc<crate::volumes::VolumeCache> = Default::default();
        let workloads: Arc<crate::workloads::WorkloadCache> = Default::default();
        let handle = Handle {
            binder: binder.clone(),
            volumes: volumes.clone(),
            workloads: workloads.clone(),
        };
        let parallelism = config
            .parallelism
            .min(
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1),
            )
            .max(1);
        let mut profiles = HashMap::new();
        for profile in &config.profiles {
            let framework = Framework::new(profile, registry, &handle, parallelism)?;
            profiles.insert(profile.scheduler_name.clone(), Arc::new(framework));
        }
        let first = config
            .profiles
            .first()
            .and_then(|p| profiles.get(&p.scheduler_name))
            .cloned()
            .ok_or_else(|| ConfigError::Invalid("no profiles".into()))?;
        let mut interest: HashMap<&'static str, HashSet<ClusterEvent>> = HashMap::new();
        for framework in profiles.values() {
            for (plugin, events) in framework.events() {
                interest.entry(plugin).or_default().extend(events);
            }
        }
        interest.insert(
            NO_NODES_PLUGIN,
            [ClusterEvent::NodeAdd].into_iter().collect(),
        );
        let by_name = profiles.clone();
        let sort = first.clone();
        let queue = SchedulingQueue::new(QueueOptions {
            less: Arc::new(move |a, b| sort.less(a, b)),
            pre_enqueue: Arc::new(move |pod: &Pod| match by_name.get(scheduler_name(pod)) {
                Some(framework) => framework.run_pre_enqueue(pod),
                None => Status::success(),
            }),
            interest,
            initial_backoff: config.pod_initial_backoff,
            max_backoff: config.pod_max_backoff,
        });
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Ok(Arc::new(Scheduler {
            cache: Arc::new(Mutex::new(Cache::new(config.assumed_pod_ttl))),
            queue: Arc::new(queue),
            volumes,
            workloads,
            profiles,
            snapshot: Mutex::new(Snapshot::default()),
            binder,
            recorder,
            percentage_of_nodes_to_score: config.percentage_of_nodes_to_score,
            parallelism,
            next_start_node_index: AtomicUsize::new(0),
            rng: AtomicU64::new(seed | 1),
            binds: InFlightBinds::default(),
            waiting: Mutex::new(HashMap::new()),
            nominated: Mutex::new(HashMap::new()),
            unschedulable_steps: LastUnschedulable::default(),
        }))
    }

    /// Whether some profile schedules `pod` (by `spec.schedulerName`).
    pub fn responsible_for(&self, pod: &Pod) -> bool {
        self.profiles.contains_key(scheduler_name(pod))
    }

    /// The profile named `name`.
    pub fn profile(&self, name: &str) -> Option<&Arc<Framework>> {
        self.profiles.get(name)
    }

    // ----- informer handlers: cheap, no I/O -----

    /// A pod was added or updated (`old`: the previous version, if known).
    pub fn on_pod(&self, old: Option<&Pod>, pod: Arc<Pod>) {
        let key = pod_key(&pod);
        if assigned(&pod) {
            self.nominated.lock().remove(&key);
            let was_assigned = old.is_some_and(assigned);
            if !was_assigned {
                // Bound, by us or by someone else: no longer ours to schedule.
                self.queue.delete(&key);
                self.unschedulable_steps.forget(&uid_or_key(&pod));
            }
            if is_terminal(&pod) {
                self.cache.lock().remove_pod(&key);
                self.queue.on_event(ClusterEvent::AssignedPodDelete);
                return;
            }
            let relevant = !was_assigned
                || old.is_some_and(|o| {
                    o.spec != pod.spec || o.metadata.labels != pod.metadata.labels
                });
            self.cache.lock().add_pod(pod);
            if relevant {
                self.queue.on_event(if was_assigned {
                    ClusterEvent::AssignedPodUpdate
                } else {
                    ClusterEvent::AssignedPodAdd
                });
            }
            return;
        }
        if !self.responsible_for(&pod)
            || is_terminal(&pod)
            || pod.metadata.deletion_timestamp.is_some()
        {
            self.queue.delete(&key);
            return;
        }
        if self.cache.lock().is_assumed(&key) {
            // Our bind is in flight and the watch has not caught up.
            return;
        }
        match old {
            Some(_) => self.queue.update(pod),
            None => self.queue.add(pod),
        }
    }

    /// A pod was deleted.
    pub fn on_pod_delete(&self, pod: &Pod) {
        let key = pod_key(pod);
        self.nominated.lock().remove(&key);
        self.queue.delete(&key);
        self.unschedulable_steps.forget(&uid_or_key(pod));
        if assigned(pod) {
            self.cache.lock().remove_pod(&key);
            self.queue.on_event(ClusterEvent::AssignedPodDelete);
        }
    }

    /// A node was added or updated.
    pub fn on_node(&self, node: impl Into<Arc<Node>>) {
        let events = self.cache.lock().upsert_node(node);
        for event in events {
            self.queue.on_event(event);
        }
    }

    /// A claim was added or changed.
    pub fn on_claim(&self, claim: Arc<k8s_openapi::api::core::v1::PersistentVolumeClaim>) {
        self.volumes.put_claim(claim);
        self.queue
            .on_event(ClusterEvent::PersistentVolumeClaimChange);
    }

    /// A claim went.
    pub fn on_claim_delete(&self, claim: &k8s_openapi::api::core::v1::PersistentVolumeClaim) {
        self.volumes.remove_claim(claim);
    }

    /// A volume was added or changed.
    pub fn on_volume(&self, volume: Arc<k8s_openapi::api::core::v1::PersistentVolume>) {
        self.volumes.put_volume(volume);
        self.queue.on_event(ClusterEvent::PersistentVolumeChange);
    }

    /// A volume went.
    pub fn on_volume_delete(&self, name: &str) {
        self.volumes.remove_volume(name);
    }

    /// A storage class was added or changed.
    pub fn on_storage_class(&self, class: Arc<k8s_openapi::api::storage::v1::StorageClass>) {
        self.volumes.put_class(class);
        self.queue.on_event(ClusterEvent::StorageClassChange);
    }

    /// A CSIDriver was added or changed.
    pub fn on_csi_driver(&self, driver: Arc<k8s_openapi::api::storage::v1::CSIDriver>) {
        self.volumes.put_driver(driver);
        self.queue.on_event(ClusterEvent::StorageCapacityChange);
    }

    /// A CSIDriver went.
    pub fn on_csi_driver_delete(&self, name: &str) {
        self.volumes.remove_driver(name);
        self.queue.on_event(ClusterEvent::StorageCapacityChange);
    }

    /// A CSINode was added or changed.
    pub fn on_csi_node(&self, node: Arc<k8s_openapi::api::storage::v1::CSINode>) {
        self.volumes.put_csi_node(node);
        self.queue.on_event(ClusterEvent::CsiNodeChange);
    }

    /// A CSINode went.
    pub fn on_csi_node_delete(&self, name: &str) {
        self.volumes.remove_csi_node(name);
        self.queue.on_event(ClusterEvent::CsiNodeChange);
    }

    /// A CSIStorageCapacity was added or changed.
    pub fn on_storage_capacity(
        &self,
        capacity: Arc<k8s_openapi::api::storage::v1::CSIStorageCapacity>,
    ) {
        self.volumes.put_capacity(capacity);
        self.queue.on_event(ClusterEvent::StorageCapacityChange);
    }

    /// A CSIStorageCapacity went.
    pub fn on_storage_capacity_delete(
        &self,
        capacity: &k8s_openapi::api::storage::v1::CSIStorageCapacity,
    ) {
        self.volumes.remove_capacity(capacity);
    }

    /// A storage class went.
    pub fn on_storage_class_delete(&self, name: &str) {
        self.volumes.remove_class(name);
    }

    /// A node was deleted.
    pub fn on_node_delete(&self, name: &str) {
        self.cache.lock().remove_node(name);
        self.queue.on_event(ClusterEvent::NodeDelete);
    }

    /// A namespace was added or updated.
    pub fn on_namespace(&self, namespace: &Namespace) {
        if self.cache.lock().upsert_namespace(namespace) {
            self.queue.on_event(ClusterEvent::NamespaceChange);
        }
    }

    /// A namespace was deleted.
    pub fn on_namespace_delete(&self, name: &str) {
        self.cache.lock().remove_namespace(name);
    }

    /// Periodic work: backoff flush, leftover flush, assumed pod expiry. Call every second;
    /// `tick` counts calls.
    pub fn housekeeping(&self, tick: u64) {
        self.queue.flush_backoff_completed();
        if tick.is_multiple_of(30) {
            self.queue.flush_unschedulable_leftover();
        }
        self.cache.lock().cleanup_assumed(Instant::now());
    }

    /// Lets a pod held by a Permit plugin proceed (`Status::success()`) or rejects it.
    pub fn resolve_waiting_pod(&self, key: &str, status: Status) -> bool {
        self.waiting
            .lock()
            .remove(key)
            .is_some_and(|sender| sender.send(status).is_ok())
    }

    /// Waits until no binding cycle is in flight.
    pub async fn wait_for_bindings(&self) {
        loop {
            let notified = self.binds.done.notified();
            if self.binds.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    // ----- the scheduling cycle -----

    fn random(&self) -> u64 {
        // xorshift64: tie-breaking needs no quality.
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Ordering::Relaxed);
        x
    }

    /// Schedules the next pod; `false` once the queue is closed.
    pub async fn schedule_one(self: &Arc<Self>) -> bool {
        let Some(info) = self.queue.pop().await else {
            return false;
        };
        let cycle = self.queue.scheduling_cycle();
        let key = info.key();
        let pod = info.pod.clone();
        let Some(framework) = self.profiles.get(scheduler_name(&pod)).cloned() else {
            self.queue.done(&key);
            return true;
        };
        if pod.metadata.deletion_timestamp.is_some()
            || self.cache.lock().is_assumed(&key)
            || assigned(&pod)
        {
            self.queue.done(&key);
            return true;
        }
        drop(pod_step!(
            "queued",
            pod,
            start_ns = ferry_journey::unix_nanos(info.active_since),
            attempts = info.attempts
        ));
        let mut state = CycleState::new();
        let outcome = {
            let mut snapshot = self.snapshot.lock();
            self.cache.lock().update_snapshot(&mut snapshot);
            match self.schedule_pod(&framework, &mut state, &pod, &snapshot) {
                Ok(result) => Ok(result),
                Err(ScheduleError::Fit(mut error)) => {
                    let (result, status) =
                        framework.run_post_filter(&state, &pod, &snapshot, &error.statuses);
                    if !status.message().is_empty() {
                        error.post_filter_msg = Some(status.message());
                    }
                    Err((ScheduleError::Fit(error), result))
                }
                Err(error) => Err((error, None)),
            }
        };
        let result = match outcome {
            Ok(result) => result,
            Err((error, post_filter)) => {
                let (nominated, victims) = match post_filter {
                    Some(r) => (r.nominated_node, r.victims),
                    None => (None, Vec::new()),
                };
                for victim in victims {
                    let delete = self.binder.delete_victim(&victim);
                    if let Some(recorder) = &self.recorder {
                        let message = format!(
                            "Preempted by pod {} on node {}",
                            pod.metadata.uid.as_deref().unwrap_or(""),
                            nominated.as_deref().unwrap_or("")
                        );
                        recorder.event(
                            ferry_client::events::reference(&*victim),
                            EventType::Normal,
                            "Preempted",
                            message,
                        );
                    }
                    tokio::spawn(async move {
                        if let Err(error) = delete.await {
                            tracing::warn!(%error, "deleting a preemption victim");
                        }
                    });
                }
                self.fail(info, cycle, &error, nominated);
                return true;
            }
        };
        // Assume, Reserve, Permit: the start of the `bound` step, which the binding cycle ends.
        let host = result.host;
        let bound = pod_step!("bound", pod, node = %host);
        let reserved = bound.in_scope(|| self.reserve(&framework, &mut state, &pod, &host));
        let (assumed, wait) = match reserved {
            Ok(reserved) => reserved,
            Err(error) => {
                ferry_journey::fail(&bound, &error);
                self.fail(info, cycle, &error, None);
                return true;
            }
        };
        self.binds.count.fetch_add(1, Ordering::SeqCst);
        let this = self.clone();
        tokio::spawn(async move {
            let step = bound.clone();
            this.binding_cycle(framework, state, assumed, host, info, cycle, wait, &step)
                .instrument(bound)
                .await;
            drop(step);
            if this.binds.count.fetch_sub(1, Ordering::SeqCst) == 1 {
                this.binds.done.notify_waiters();
            }
        });
        true
    }

    /// Assumes `pod` on `host` in the cache, then runs Reserve and Permit: the assumed pod and
    /// how long Permit asks to wait. A failure rolls back what was done.
    fn reserve(
        &self,
        framework: &Framework,
        state: &mut CycleState,
        pod: &Pod,
        host: &str,
    ) -> Result<(Arc<Pod>, Option<Duration>), ScheduleError> {
        let key = pod_key(pod);
        let mut assumed = pod.clone();
        assumed.spec.get_or_insert_with(Default::default).node_name = Some(host.to_string());
        let assumed = Arc::new(assumed);
        self.nominated.lock().remove(&key);
        self.cache
            .lock()
            .assume_pod(assumed.clone())
            .map_err(|error| ScheduleError::Internal(Status::error(error.to_string())))?;
        let status = framework.run_reserve(state, &assumed, host);
        if !status.is_success() {
            let _ = self.cache.lock().forget_pod(&key);
            return Err(ScheduleError::Internal(status));
        }
        match framework.run_permit(state, &assumed, host) {
            Ok(wait) => Ok((assumed, wait)),
            Err(status) => {
                framework.run_unreserve(state, &assumed, host);
                let _ = self.cache.lock().forget_pod(&key);
                Err(ScheduleError::Internal(status))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn binding_cycle(
        self: &Arc<Self>,
        framework: Arc<Framework>,
        mut state: CycleState,
        assumed: Arc<Pod>,
        host: String,
        info: QueuedPodInfo,
        cycle: u64,
        wait: Option<Duration>,
        step: &tracing::Span,
    ) {
        let key = info.key();
        let mut status = Status::success();
        if let Some(timeout) = wait {
            let (sender, receiver) = oneshot::channel();
            self.waiting.lock().insert(key.clone(), sender);
            status = match tokio::time::timeout(timeout, receiver).await {
                Ok(Ok(status)) => status,
                _ => Status::unschedulable("rejected due to timeout after waiting at permit"),
            };
            self.waiting.lock().remove(&key);
        }
        if status.is_success() {
            status = framework.run_pre_bind(&state, &assumed, &host).await;
        }
        if status.is_success() {
            status = framework.run_bind(&state, &assumed, &host).await;
        }
        if status.is_success() {
            self.cache.lock().finish_binding(&key, Instant::now());
            self.queue.done(&key);
            crate::metrics::scheduled(
                framework.profile(),
                info.attempt_start.elapsed(),
                info.attempts,
            );
            if let Some(recorder) = &self.recorder {
                let message = format!(
                    "Successfully assigned {}/{} to {host}",
                    assumed.metadata.namespace.as_deref().unwrap_or(""),
                    assumed.metadata.name.as_deref().unwrap_or("")
                );
                recorder.event(
                    ferry_client::events::reference(&*info.pod),
                    EventType::Normal,
                    "Scheduled",
                    message,
                );
            }
            framework.run_post_bind(&state, &assumed, &host);
            self.unschedulable_steps.forget(&uid_or_key(&assumed));
            return;
        }
        framework.run_unreserve(&mut state, &assumed, &host);
        let _ = self.cache.lock().forget_pod(&key);
        // The node this pod was assumed on has room again.
        self.queue.on_event(ClusterEvent::AssignedPodDelete);
        let status = Status {
            code: Code::Error,
            reasons: vec![format!("Binding rejected: {}", status.message())],
            plugin: status.plugin,
        };
        ferry_journey::fail(step, status.message());
        self.fail(info, cycle, &ScheduleError::Internal(status), None);
    }

    /// Records a failed attempt: requeue, FailedScheduling event, PodScheduled=False.
    fn fail(
        &self,
        mut info: QueuedPodInfo,
        cycle: u64,
        error: &ScheduleError,
        nominated: Option<String>,
    ) {
        let (reason, plugins) = match error {
            ScheduleError::Fit(fit) => (REASON_UNSCHEDULABLE, fit.unschedulable_plugins.clone()),
            ScheduleError::NoNodes => (
                REASON_UNSCHEDULABLE,
                [NO_NODES_PLUGIN].into_iter().collect(),
            ),
            ScheduleError::Internal(_) => (REASON_SCHEDULER_ERROR, BTreeSet::new()),
        };
        if let Some(framework) = self.profiles.get(scheduler_name(&info.pod)) {
            crate::metrics::attempt(
                framework.profile(),
                crate::metrics::failure_result(error),
                info.attempt_start.elapsed(),
            );
        }
        let message = error.to_string();
        tracing::debug!(pod = %info.key(), %message, "unable to schedule pod");
        self.record_unschedulable(&info.pod, error, &message);
        let pod = info.pod.clone();
        match nominated.as_deref() {
            Some("") => {
                self.nominated.lock().remove(&info.key());
            }
            Some(node) => {
                self.nominated
                    .lock()
                    .insert(info.key(), (node.to_string(), pod.clone()));
            }
            None => {}
        }
        info.unschedulable_plugins = plugins;
        self.queue.add_unschedulable(info, cycle);
        if let Some(recorder) = &self.recorder {
            recorder.event(
                ferry_client::events::reference(&*pod),
                EventType::Warning,
                "FailedScheduling",
                message.clone(),
            );
        }
        let write = self
            .binder
            .mark_unschedulable(&pod, reason, &message, nominated.as_deref());
        tokio::spawn(async move {
            if let Err(error) = write.await {
                tracing::debug!(%error, "updating the PodScheduled condition");
            }
        });
    }

    /// The `unschedulable` step of an attempt that found no node (error: the FailedScheduling
    /// `message`; `why`: [`why_pending`]), unless the pod's last one said the same.
    fn record_unschedulable(&self, pod: &Pod, error: &ScheduleError, message: &str) {
        let nodes = match error {
            ScheduleError::Fit(fit) => fit.num_all_nodes,
            ScheduleError::NoNodes => 0,
            ScheduleError::Internal(_) => return,
        };
        if !self.unschedulable_steps.is_new(&uid_or_key(pod), message) {
            return;
        }
        let why = match error {
            ScheduleError::Fit(fit) => why_pending(fit),
            _ => NO_NODES_WHY.to_string(),
        };
        let step = pod_step!("unschedulable", pod, nodes = nodes, why = %why);
        ferry_journey::fail(&step, message);
    }

    /// Picks a node for `pod` in `snapshot` (no side effects beyond `state` and the rotating
    /// start index), in the journey steps `filtered` and `scored`.
    pub fn schedule_pod(
        &self,
        framework: &Framework,
        state: &mut CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
    ) -> Result<ScheduleResult, ScheduleError> {
        if snapshot.num_nodes() == 0 {
            return Err(ScheduleError::NoNodes);
        }
        let filtered = pod_step!("filtered", pod, nodes = Empty, feasible = Empty);
        let outcome = filtered.in_scope(|| self.filter_nodes(framework, state, pod, snapshot));
        let (feasible, evaluated) = match outcome {
            Ok((feasible, evaluated)) => {
                filtered.record("nodes", evaluated);
                filtered.record("feasible", feasible.len());
                (feasible, evaluated)
            }
            Err(error) => {
                match &error {
                    ScheduleError::Fit(fit) => {
                        filtered.record("nodes", fit.statuses.len());
                        filtered.record("feasible", 0);
                    }
                    _ => ferry_journey::fail(&filtered, &error),
                }
                return Err(error);
            }
        };
        drop(filtered);
        let scored = pod_step!("scored", pod, node = Empty, score = Empty);
        let (host, score) = scored
            .in_scope(|| self.score_nodes(framework, state, pod, snapshot, &feasible))
            .inspect_err(|error| ferry_journey::fail(&scored, error))?;
        scored.record("node", host.as_str());
        if let Some(score) = score {
            scored.record("score", score);
        }
        Ok(ScheduleResult {
            host,
            evaluated_nodes: evaluated,
            feasible_nodes: feasible.len(),
        })
    }

    /// PreFilter, then Filter over the nodes it leaves: the feasible nodes and how many nodes
    /// were filtered, or the FitError when none is feasible.
    fn filter_nodes(
        &self,
        framework: &Framework,
        state: &mut CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
    ) -> Result<(Vec<Arc<NodeInfo>>, usize), ScheduleError> {
        let names = match framework.run_pre_filter(state, pod, snapshot) {
            Ok(names) => names,
            Err(status) if status.is_rejected() => {
                let statuses = snapshot
                    .nodes
                    .iter()
                    .map(|n| (n.name.clone(), status.clone()))
                    .collect();
                return Err(ScheduleError::Fit(Box::new(FitError::new(
                    snapshot.num_nodes(),
                    Some(status.message()),
                    statuses,
                ))));
            }
            Err(status) => return Err(ScheduleError::Internal(status)),
        };
        let narrowed: Vec<Arc<NodeInfo>>;
        let nodes: &[Arc<NodeInfo>] = match &names {
            Some(names) => {
                narrowed = snapshot
                    .nodes
                    .iter()
                    .filter(|n| names.contains(&n.name))
                    .cloned()
                    .collect();
                &narrowed
            }
            None => &snapshot.nodes,
        };
        let percentage = framework
            .percentage_of_nodes_to_score
            .unwrap_or(self.percentage_of_nodes_to_score);
        let (feasible, statuses) = self.find_feasible(
            framework,
            state,
            pod,
            nodes,
            num_feasible_nodes_to_find(percentage, nodes.len()),
        )?;
        if feasible.is_empty() {
            let mut error = FitError::new(snapshot.num_nodes(), None, statuses);
            error.shortfalls = crate::explain::shortfalls(&error.statuses, pod, snapshot);
            return Err(ScheduleError::Fit(Box::new(error)));
        }
        let evaluated = feasible.len() + statuses.len();
        Ok((feasible, evaluated))
    }

    /// PreScore, Score and NormalizeScore over the feasible nodes, then selectHost: the chosen
    /// node and its total score (none when it was the only feasible node: nothing is scored).
    fn score_nodes(
        &self,
        framework: &Framework,
        state: &mut CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
        feasible: &[Arc<NodeInfo>],
    ) -> Result<(String, Option<i64>), ScheduleError> {
        if let [only] = feasible {
            return Ok((only.name.clone(), None));
        }
        let status = framework.run_pre_score(state, pod, feasible, snapshot);
        if !status.is_success() {
            return Err(ScheduleError::Internal(status));
        }
        let totals = framework
            .run_score(state, pod, feasible)
            .map_err(ScheduleError::Internal)?;
        let best = self.select_host(&totals);
        Ok((feasible[best].name.clone(), totals.get(best).copied()))
    }

    /// The index of the highest total; ties broken uniformly at random (reservoir sampling, as
    /// upstream).
    fn select_host(&self, totals: &[i64]) -> usize {
        let mut best = 0;
        let mut ties = 0u64;
        for (i, total) in totals.iter().enumerate() {
            if *total > totals[best] {
                best = i;
                ties = 1;
            } else if *total == totals[best] {
                ties += 1;
                if self.random().is_multiple_of(ties) {
                    best = i;
                }
            }
        }
        best
    }

    /// Pods nominated to each node with at least `pod`'s priority (other than `pod`).
    fn nominated_pods_for(&self, pod: &Pod) -> HashMap<String, Vec<Arc<Pod>>> {
        let key = pod_key(pod);
        let priority = crate::plugins::priority_sort::pod_priority(pod);
        let mut by_node: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
        for (k, (node, nominated)) in self.nominated.lock().iter() {
            if *k != key && crate::plugins::priority_sort::pod_priority(nominated) >= priority {
                by_node
                    .entry(node.clone())
                    .or_default()
                    .push(nominated.clone());
            }
        }
        by_node
    }

    /// Runs the filters over `nodes` from the rotating start index until `to_find` feasible
    /// nodes are found, on up to `parallelism` threads.
    fn find_feasible(
        &self,
        framework: &Framework,
        state: &CycleState,
        pod: &Pod,
        nodes: &[Arc<NodeInfo>],
        to_find: usize,
    ) -> Result<(Vec<Arc<NodeInfo>>, NodeStatuses), ScheduleError> {
        let n = nodes.len();
        if n == 0 {
            return Ok((Vec::new(), NodeStatuses::new()));
        }
        if !framework.has_filters() {
            return Ok((
                nodes.iter().take(to_find).cloned().collect(),
                NodeStatuses::new(),
            ));
        }
        let nominated = self.nominated_pods_for(pod);
        let filters = framework.active_filters(state);
        let filter = |node: &Arc<NodeInfo>| -> Status {
            match nominated.get(&node.name) {
                None => run_filters(&filters, state, pod, node),
                Some(pods) => {
                    // As upstream: the pod must fit both with the nominated pods and without.
                    let mut with = (**node).clone();
                    for p in pods {
                        with.add_pod(PodInfo::new(p.clone()));
                    }
                    let status = run_filters(&filters, state, pod, &with);
                    if !status.is_success() {
                        return status;
                    }
                    run_filters(&filters, state, pod, node)
                }
            }
        };
        let start = self.next_start_node_index.load(Ordering::Relaxed) % n;
        let found = AtomicUsize::new(0);
        let next = AtomicUsize::new(0);
        let worker = || {
            let mut feasible = Vec::new();
            let mut failed = Vec::new();
            'outer: loop {
                let begin = next.fetch_add(FILTER_CHUNK, Ordering::Relaxed);
                if begin >= n {
                    break;
                }
                for j in begin..(begin + FILTER_CHUNK).min(n) {
                    if found.load(Ordering::Relaxed) >= to_find {
                        break 'outer;
                    }
                    let node = &nodes[(start + j) % n];
                    let status = filter(node);
                    if status.is_success() {
                        if found.fetch_add(1, Ordering::Relaxed) < to_find {
                            feasible.push((j, node.clone()));
                        }
                    } else {
                        failed.push((j, node.name.clone(), status));
                    }
                }
            }
            (feasible, failed)
        };
        // Threads only pay off with enough nodes to check; the caller's thread is one of them.
        let threads = self
            .parallelism
            .min(to_find.min(n) / MIN_NODES_PER_FILTER_THREAD)
            .max(1);
        let results: Vec<_> = if threads == 1 {
            vec![worker()]
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = (1..threads).map(|_| scope.spawn(worker)).collect();
                let mut results = vec![worker()];
                results.extend(
                    handles
                        .into_iter()
                        .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))),
                );
                results
            })
        };
        let mut feasible = Vec::new();
        let mut statuses = NodeStatuses::new();
        for (f, failed) in results {
            feasible.extend(f);
            for (_, name, status) in failed {
                if status.code == Code::Error {
                    return Err(ScheduleError::Internal(status));
                }
                statuses.insert(name, status);
            }
        }
        feasible.sort_by_key(|(j, _)| *j);
        let processed = feasible.len() + statuses.len();
        self.next_start_node_index
            .store((start + processed) % n, Ordering::Relaxed);
        Ok((
            feasible.into_iter().map(|(_, node)| node).collect(),
            statuses,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binder::{Call, FakeBinder};
    use crate::testing::{make_node, make_pod};

    fn scheduler(binder: Arc<FakeBinder>) -> Arc<Scheduler> {
        Scheduler::new(&Config::default(), binder, None).expect("scheduler")
    }

    fn schedule(
        s: &Scheduler,
        pod: &Pod,
        snapshot: &Snapshot,
    ) -> Result<ScheduleResult, ScheduleError> {
        let framework = s.profile(DEFAULT_SCHEDULER_NAME).expect("profile").clone();
        let mut state = CycleState::new();
        let result = s.schedule_pod(&framework, &mut state, pod, snapshot);
        match result {
            Err(ScheduleError::Fit(mut error)) => {
                let (_, status) = framework.run_post_filter(&state, pod, snapshot, &error.statuses);
                if !status.message().is_empty() {
                    error.post_filter_msg = Some(status.message());
                }
                Err(ScheduleError::Fit(error))
            }
            other => other,
        }
    }

    #[test]
    fn failed_scheduling_message_is_upstreams() {
        let s = scheduler(FakeBinder::new());
        let snapshot = Snapshot::from_objects(
            vec![
                make_node("cp")
                    .capacity(&[("cpu", "8")])
                    .taint("node-role.kubernetes.io/control-plane", "", "NoSchedule")
                    .node(),
                make_node("w1").capacity(&[("cpu", "1")]).node(),
                make_node("w2").capacity(&[("cpu", "1")]).node(),
            ],
            vec![],
        );
        let pod = make_pod("p").req("cpu", "2").pod();
        let error = schedule(&s, &pod, &snapshot).expect_err("does not fit");
        assert_eq!(
            error.to_string(),
            "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. \
             preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
        );
        let ScheduleError::Fit(fit) = error else {
            panic!("a fit error")
        };
        assert_eq!(
            fit.unschedulable_plugins,
            ["NodeResourcesFit", "TaintToleration"]
                .into_iter()
                .collect()
        );
    }

    #[test]
    fn several_reasons_per_node_are_counted_separately() {
        let s = scheduler(FakeBinder::new());
        let snapshot = Snapshot::from_objects(
            vec![
                make_node("a")
                    .capacity(&[("cpu", "1"), ("memory", "1Gi")])
                    .node(),
                make_node("b")
                    .capacity(&[("cpu", "1"), ("memory", "1Gi")])
                    .unschedulable()
                    .node(),
                make_node("c")
                    .capacity(&[("cpu", "1"), ("memory", "1Gi")])
                    .label("x", "y")
                    .node(),
            ],
            vec![],
        );
        let pod = make_pod("p")
            .req("cpu", "2")
            .req("memory", "2Gi")
            .node_affinity("x", "DoesNotExist", &[])
            .preemption_policy("Never")
            .pod();
        let error = schedule(&s, &pod, &snapshot).expect_err("does not fit");
        assert_eq!(
            error.to_string(),
            "0/3 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, 1 node(s) didn't match Pod's node affinity/selector, \
             1 node(s) were unschedulable. preemption: not eligible due to preemptionPolicy=Never."
        );
    }

    #[test]
    fn no_nodes() {
        let s = scheduler(FakeBinder::new());
        let error = schedule(&s, &make_pod("p").pod(), &Snapshot::default()).expect_err("no nodes");
        assert_eq!(error.to_string(), "no nodes available to schedule pods");
    }

    #[test]
    fn picks_the_best_scored_node() {
        let s = scheduler(FakeBinder::new());
        let snapshot = Snapshot::from_objects(
            vec![
                make_node("busy")
                    .capacity(&[("cpu", "4"), ("memory", "8Gi")])
                    .node(),
                make_node("idle")
                    .capacity(&[("cpu", "4"), ("memory", "8Gi")])
                    .node(),
                make_node("small")
                    .capacity(&[("cpu", "500m"), ("memory", "8Gi")])
                    .node(),
            ],
            vec![make_pod("e")
                .req("cpu", "3")
                .req("memory", "6Gi")
                .node("busy")
                .pod()],
        );
        let pod = make_pod("p").req("cpu", "1").req("memory", "1Gi").pod();
        for _ in 0..5 {
            let result = schedule(&s, &pod, &snapshot).expect("fits");
            assert_eq!(result.host, "idle");
            assert_eq!(result.feasible_nodes, 2);
        }
    }

    #[test]
    fn ties_are_spread() {
        let s = scheduler(FakeBinder::new());
        let nodes = (0..4)
            .map(|i| {
                make_node(&format!("n{i}"))
                    .capacity(&[("cpu", "4"), ("memory", "8Gi")])
                    .node()
            })
            .collect();
        let snapshot = Snapshot::from_objects(nodes, vec![]);
        let pod = make_pod("p").req("cpu", "1").pod();
        let hosts: HashSet<String> = (0..64)
            .map(|_| schedule(&s, &pod, &snapshot).expect("fits").host)
            .collect();
        assert!(hosts.len() > 1, "ties always went to {hosts:?}");
    }

    #[test]
    fn adaptive_percentage_of_nodes_to_score() {
        let cases = [
            (0, 50, 50),
            (0, 100, 100),
            (0, 1000, 420),
            (0, 5000, 500),
            (0, 6000, 300),
            (10, 500, 100),
            (30, 1000, 300),
        ];
        for (percentage, nodes, want) in cases {
            assert_eq!(
                num_feasible_nodes_to_find(percentage, nodes),
                want,
                "{percentage}% of {nodes}"
            );
        }
    }

    #[test]
    fn filtering_stops_early_and_rotates_on_large_clusters() {
        let s = scheduler(FakeBinder::new());
        let nodes: Vec<Node> = (0..1000)
            .map(|i| {
                make_node(&format!("n{i:04}"))
                    .capacity(&[("cpu", "4")])
                    .node()
            })
            .collect();
        let snapshot = Snapshot::from_objects(nodes, vec![]);
        let pod = make_pod("p").req("cpu", "1").pod();
        let first = schedule(&s, &pod, &snapshot).expect("fits");
        assert_eq!(first.feasible_nodes, 420);
        assert_eq!(s.next_start_node_index.load(Ordering::Relaxed), 420);
        schedule(&s, &pod, &snapshot).expect("fits");
        assert_eq!(s.next_start_node_index.load(Ordering::Relaxed), 840);
    }

    fn feed(s: &Scheduler, nodes: Vec<Node>) {
        for node in nodes {
            s.on_node(node);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn full_cycle_binds_and_records() {
        let binder = FakeBinder::new();
        let (recorder, mut events) = Recorder::for_tests();
        let s =
            Scheduler::new(&Config::default(), binder.clone(), Some(recorder)).expect("scheduler");
        feed(&s, vec![make_node("n1").capacity(&[("cpu", "2")]).node()]);
        s.on_pod(None, Arc::new(make_pod("a").req("cpu", "1").pod()));
        s.on_pod(None, Arc::new(make_pod("b").req("cpu", "1").pod()));
        s.on_pod(None, Arc::new(make_pod("c").req("cpu", "1").pod()));
        s.on_pod(
            None,
            Arc::new(make_pod("other").scheduler_name("custom").pod()),
        );
        for _ in 0..3 {
            assert!(s.schedule_one().await);
        }
        s.wait_for_bindings().await;
        tokio::task::yield_now().await;
        let calls = binder.calls();
        let binds: Vec<&Call> = calls
            .iter()
            .filter(|c| matches!(c, Call::Bind(..)))
            .collect();
        assert_eq!(binds.len(), 2, "{calls:?}");
        let failure = calls.iter().find_map(|c| match c {
            Call::Unschedulable(pod, reason, message, _) => {
                Some((pod.clone(), reason.clone(), message.clone()))
            }
            _ => None,
        });
        assert_eq!(
            failure,
            Some((
                "default/c".to_string(),
                "Unschedulable".to_string(),
                "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
                    .to_string()
            ))
        );
        let mut seen = Vec::new();
        while let Ok(record) = events.try_recv() {
            seen.push((record.reason, record.message));
        }
        assert!(
            seen.contains(&(
                "Scheduled".to_string(),
                "Successfully assigned default/a to n1".to_string()
            )),
            "{seen:?}"
        );
        assert!(seen.iter().any(|(reason, _)| reason == "FailedScheduling"));
        // The pod for another scheduler never entered the queue; c waits for an event.
        assert_eq!(s.queue.len(), (0, 0, 1));
        // A new node makes c schedulable (its 1 s backoff is over by then).
        tokio::time::advance(Duration::from_secs(1)).await;
        feed(&s, vec![make_node("n2").capacity(&[("cpu", "2")]).node()]);
        assert_eq!(s.queue.len(), (1, 0, 0));
        assert!(s.schedule_one().await);
        s.wait_for_bindings().await;
        assert!(binder
            .calls()
            .contains(&Call::Bind("default/c".into(), "n2".into())));
    }

    #[tokio::test(start_paused = true)]
    async fn bind_failure_forgets_and_backs_off() {
        let binder = FakeBinder::new();
        *binder.fail_binds.lock() = Some("etcd is sad".into());
        let s = scheduler(binder.clone());
        feed(&s, vec![make_node("n1").capacity(&[("cpu", "2")]).node()]);
        s.on_pod(None, Arc::new(make_pod("a").req("cpu", "1").pod()));
        assert!(s.schedule_one().await);
        s.wait_for_bindings().await;
        assert!(!s.cache.lock().is_assumed("default/a"));
        assert_eq!(
            s.cache.lock().node_info("n1").map(|n| n.pods.len()),
            Some(0)
        );
        assert_eq!(
            s.queue.place("default/a"),
            Some(crate::queue::Place::Backoff)
        );
        tokio::task::yield_now().await;
        assert!(binder
            .calls()
            .iter()
            .any(|c| matches!(c, Call::Unschedulable(_, reason, message, _)
            if reason == "SchedulerError" && message.contains("etcd is sad"))));
    }

    /// The reported case: a Deployment's pods on identical, empty nodes without zone labels
    /// (as `ferry sim` registers them) land one per node, as upstream's system default
    /// spreading puts them. The pods are scheduled back to back with their binds in flight, so
    /// each sees the ones before it only as assumed pods.
    #[tokio::test(start_paused = true)]
    async fn replicas_spread_evenly_over_identical_nodes() {
        for replicas in [3, 6, 9] {
            for round in 0..20 {
                let binder = FakeBinder::new();
                let s = scheduler(binder.clone());
                feed(
                    &s,
                    (0..3)
                        .map(|i| {
                            make_node(&format!("sim-{i}"))
                                .capacity(&[("cpu", "32"), ("memory", "256Gi"), ("pods", "110")])
                                .node()
                        })
                        .collect(),
                );
                for i in 0..replicas {
                    s.on_pod(
                        None,
                        Arc::new(
                            make_pod(&format!("web-abc-{i}"))
                                .label("app", "web")
                                .label("pod-template-hash", "abc")
                                .owner("ReplicaSet", "web-abc")
                                .pod(),
                        ),
                    );
                }
                for _ in 0..replicas {
                    assert!(s.schedule_one().await);
                }
                s.wait_for_bindings().await;
                let mut per_node: HashMap<String, usize> = HashMap::new();
                for call in binder.calls() {
                    if let Call::Bind(_, node) = call {
                        *per_node.entry(node).or_default() += 1;
                    }
                }
                let mut counts: Vec<usize> = (0..3)
                    .map(|i| per_node.get(&format!("sim-{i}")).copied().unwrap_or(0))
                    .collect();
                counts.sort_unstable();
                assert_eq!(
                    counts,
                    [replicas / 3; 3],
                    "{replicas} replicas, round {round}: {per_node:?}"
                );
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn watch_confirms_assumed_pods_and_removes_bound_pods_from_the_queue() {
        let s = scheduler(FakeBinder::new());
        feed(&s, vec![make_node("n1").capacity(&[("cpu", "2")]).node()]);
        let pending = make_pod("a").req("cpu", "1").pod();
        s.on_pod(None, Arc::new(pending.clone()));
        assert!(s.schedule_one().await);
        s.wait_for_bindings().await;
        assert!(s.cache.lock().is_assumed("default/a"));
        let bound = make_pod("a").req("cpu", "1").node("n1").pod();
        s.on_pod(Some(&pending), Arc::new(bound));
        assert!(!s.cache.lock().is_assumed("default/a"));
        assert_eq!(
            s.cache
                .lock()
                .node_info("n1")
                .map(|n| n.requested.milli_cpu),
            Some(1000)
        );
        // A pod bound by someone else leaves the queue.
        let other = make_pod("b").pod();
        s.on_pod(None, Arc::new(other.clone()));
        s.on_pod(Some(&other), Arc::new(make_pod("b").node("n1").pod()));
        assert!(s.queue.is_empty());
        // Deleted pods leave the queue too.
        s.on_pod(None, Arc::new(make_pod("c").pod()));
        s.on_pod_delete(&make_pod("c").pod());
        assert!(s.queue.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn preemption_deletes_victims_and_nominates() {
        let binder = FakeBinder::new();
        let s = scheduler(binder.clone());
        feed(&s, vec![make_node("n1").capacity(&[("cpu", "1")]).node()]);
        s.on_pod(
            None,
            Arc::new(make_pod("low").priority(1).req("cpu", "1").node("n1").pod()),
        );
        s.on_pod(
            None,
            Arc::new(make_pod("high").priority(100).req("cpu", "1").pod()),
        );
        assert!(s.schedule_one().await);
        tokio::task::yield_now().await;
        let calls = binder.calls();
        assert!(
            calls.contains(&Call::Delete("default/low".into())),
            "{calls:?}"
        );
        assert!(calls.iter().any(|c| matches!(c, Call::Unschedulable(pod, _, _, Some(node)) if pod == "default/high" && node == "n1")));
        // The victim's deletion retries the preemptor.
        s.on_pod_delete(&make_pod("low").priority(1).req("cpu", "1").node("n1").pod());
        assert_eq!(s.queue.len(), (0, 1, 0), "backoff first: it just failed");
        // Meanwhile a lower-priority pod does not take the room held for the preemptor...
        s.on_pod(
            None,
            Arc::new(make_pod("mid").priority(50).req("cpu", "1").pod()),
        );
        assert!(s.schedule_one().await);
        s.wait_for_bindings().await;
        assert!(!binder
            .calls()
            .contains(&Call::Bind("default/mid".into(), "n1".into())));
        // ...and the preemptor gets it once its backoff is over.
        tokio::time::advance(Duration::from_secs(1)).await;
        s.housekeeping(1);
        assert!(s.schedule_one().await);
        s.wait_for_bindings().await;
        assert!(binder
            .calls()
            .contains(&Call::Bind("default/high".into(), "n1".into())));
    }

    const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    fn attribute<'a>(span: &'a ferry_journey::SpanRecord, name: &str) -> Option<&'a str> {
        span.attributes.get(name).map(String::as_str)
    }

    #[tokio::test(start_paused = true)]
    async fn a_scheduled_pod_is_queued_filtered_scored_and_bound_in_its_journey() {
        let capture = ferry_journey::testing::capture();
        let binder = FakeBinder::new();
        let s = scheduler(binder.clone());
        feed(
            &s,
            vec![
                make_node("small").capacity(&[("cpu", "1")]).node(),
                make_node("big").capacity(&[("cpu", "8")]).node(),
                make_node("tainted")
                    .capacity(&[("cpu", "8")])
                    .taint("dedicated", "gpu", "NoSchedule")
                    .node(),
            ],
        );
        let pod = make_pod("a")
            .req("cpu", "2")
            .annotation(ferry_journey::ANNOTATION, TRACEPARENT)
            .pod();
        s.on_pod(None, Arc::new(pod));
        assert!(s.schedule_one().await);
        s.wait_for_bindings().await;
        let spans = capture.spans();
        let steps: Vec<&str> = spans.iter().map(|s| s.step.as_str()).collect();
        assert_eq!(steps, ["queued", "filtered", "scored", "bound"]);
        for span in &spans {
            assert_eq!(span.trace_id, "0af7651916cd43dd8448eb211c80319c");
            assert_eq!(span.parent_span_id.as_deref(), Some("b7ad6b7169203331"));
            assert_eq!(span.component, "kube-scheduler");
            let object = span.object.as_ref().expect("the pod");
            let name = (
                object.resource.as_str(),
                object.namespace.as_str(),
                object.name.as_str(),
            );
            assert_eq!(name, ("pods", "default", "a"));
            assert_eq!(object.uid.as_deref(), Some("uid-a"));
            assert_eq!(span.error, None, "{}", span.step);
        }
        let [queued, filtered, scored, bound] = &spans[..] else {
            panic!("four steps")
        };
        assert_eq!(attribute(queued, "attempts"), Some("1"));
        assert!(queued.start_unix_nanos <= queued.end_unix_nanos);
        assert_eq!(attribute(filtered, "nodes"), Some("3"));
        assert_eq!(attribute(filtered, "feasible"), Some("1"));
        assert_eq!(attribute(scored, "node"), Some("big"));
        assert_eq!(attribute(bound, "node"), Some("big"));
        assert!(filtered.end_unix_nanos <= bound.start_unix_nanos);
        // The binding POST is made inside the bound step, so the API server's steps join it.
        let sent = binder.bind_contexts.lock().clone();
        assert_eq!(
            sent,
            [Some(format!("00-{}-{}-01", bound.trace_id, bound.span_id))]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn scoring_records_the_chosen_nodes_score() {
        let capture = ferry_journey::testing::capture();
        let s = scheduler(FakeBinder::new());
        feed(
            &s,
            (0..2)
                .map(|i| make_node(&format!("n{i}")).capacity(&[("cpu", "4")]).node())
                .collect(),
        );
        s.on_pod(None, Arc::new(make_pod("a").req("cpu", "1").pod()));
        assert!(s.schedule_one().await);
        s.wait_for_bindings().await;
        let spans = capture.spans();
        let scored = spans.iter().find(|s| s.step == "scored").expect("scored");
        let bound = spans.iter().find(|s| s.step == "bound").expect("bound");
        assert_eq!(attribute(scored, "node"), attribute(bound, "node"));
        let score: i64 = attribute(scored, "score")
            .expect("a score")
            .parse()
            .expect("a number");
        assert!(score > 0, "{score}");
        assert_eq!(
            spans
                .iter()
                .find(|s| s.step == "filtered")
                .map(|s| attribute(s, "feasible")),
            Some(Some("2"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_unschedulable_pod_says_why_once_per_message() {
        let capture = ferry_journey::testing::capture();
        let binder = FakeBinder::new();
        let s = scheduler(binder.clone());
        feed(
            &s,
            vec![
                make_node("n1").capacity(&[("cpu", "1500m")]).node(),
                make_node("n2").capacity(&[("cpu", "1")]).node(),
                make_node("cp")
                    .capacity(&[("cpu", "8")])
                    .taint("node.kubernetes.io/not-ready", "", "NoSchedule")
                    .node(),
            ],
        );
        let pod = make_pod("p")
            .req("cpu", "2")
            .annotation(ferry_journey::ANNOTATION, TRACEPARENT)
            .pod();
        s.on_pod(None, Arc::new(pod));
        assert!(s.schedule_one().await);
        tokio::task::yield_now().await;
        let message = binder
            .calls()
            .iter()
            .find_map(|c| match c {
                Call::Unschedulable(_, _, message, _) => Some(message.clone()),
                _ => None,
            })
            .expect("FailedScheduling");
        let spans = capture.spans();
        assert_eq!(
            capture.steps(),
            ["queued", "filtered", "unschedulable"],
            "no node, so nothing scored or bound"
        );
        let step = &spans[2];
        assert_eq!(step.trace_id, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(step.error.as_deref(), Some(message.as_str()));
        assert!(
            message.starts_with("0/3 nodes are available: "),
            "{message}"
        );
        assert_eq!(attribute(step, "nodes"), Some("3"));
        assert_eq!(
            attribute(step, "why"),
            Some(
                "3 nodes: 2 Insufficient cpu (requested 2, free at most 1.5), \
                 1 had untolerated taint node.kubernetes.io/not-ready"
            )
        );
        assert_eq!(attribute(&spans[1], "feasible"), Some("0"));
        // Retried with the same result: queued and filtered again, no second unschedulable.
        capture.clear();
        tokio::time::advance(Duration::from_secs(301)).await;
        s.housekeeping(30);
        assert!(s.schedule_one().await);
        tokio::task::yield_now().await;
        assert_eq!(capture.steps(), ["queued", "filtered"]);
        let queued = &capture.spans()[0];
        assert_eq!(attribute(queued, "attempts"), Some("2"));
        // A different outcome is a new step.
        feed(&s, vec![make_node("n3").capacity(&[("cpu", "1")]).node()]);
        tokio::time::advance(Duration::from_secs(10)).await;
        s.housekeeping(31);
        assert!(s.schedule_one().await);
        tokio::task::yield_now().await;
        let steps = capture.steps();
        assert_eq!(steps.last().map(String::as_str), Some("unschedulable"));
        let spans = capture.spans();
        let why = spans.last().and_then(|s| attribute(s, "why"));
        assert!(
            why.is_some_and(|w| w.starts_with("4 nodes: 3 Insufficient cpu")),
            "{why:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_bind_fails_the_bound_step() {
        let capture = ferry_journey::testing::capture();
        let binder = FakeBinder::new();
        *binder.fail_binds.lock() = Some("etcd is sad".into());
        let s = scheduler(binder.clone());
        feed(&s, vec![make_node("n1").capacity(&[("cpu", "2")]).node()]);
        s.on_pod(None, Arc::new(make_pod("a").req("cpu", "1").pod()));
        assert!(s.schedule_one().await);
        s.wait_for_bindings().await;
        let spans = capture.spans();
        let bound = spans.iter().find(|s| s.step == "bound").expect("bound");
        assert!(
            bound
                .error
                .as_deref()
                .is_some_and(|e| e.contains("etcd is sad")),
            "{:?}",
            bound.error
        );
        assert!(
            !capture.steps().iter().any(|s| s == "unschedulable"),
            "an error is not a pod that does not fit"
        );
    }

    /// A Permit plugin holding every pod for 10 s.
    struct Gate;

    impl crate::framework::Plugin for Gate {
        fn name(&self) -> &'static str {
            "Gate"
        }
        fn as_permit(&self) -> Option<&dyn crate::framework::Permit> {
            Some(self)
        }
    }

    impl crate::framework::Permit for Gate {
        fn permit(&self, _: &CycleState, _: &Pod, _: &str) -> (Status, Duration) {
            (Status::new(Code::Wait, ""), Duration::from_secs(10))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn permit_wait_is_allowed_or_times_out() {
        let mut registry = plugins::registry();
        registry.register("Gate", |_, _| Ok(Arc::new(Gate)));
        let config = Config::parse(
            "profiles: [{plugins: {permit: {enabled: [{name: Gate}]}}}]",
            "f",
        )
        .expect("config");
        let binder = FakeBinder::new();
        let s =
            Scheduler::with_registry(&config, &registry, binder.clone(), None).expect("scheduler");
        feed(&s, vec![make_node("n1").capacity(&[("cpu", "2")]).node()]);
        s.on_pod(None, Arc::new(make_pod("a").pod()));
        s.on_pod(None, Arc::new(make_pod("b").pod()));
        assert!(s.schedule_one().await);
        assert!(s.schedule_one().await);
        tokio::task::yield_now().await;
        assert!(binder.calls().is_empty(), "both held at Permit");
        assert!(s.resolve_waiting_pod("default/a", Status::success()));
        tokio::time::advance(Duration::from_secs(10)).await;
        s.wait_for_bindings().await;
        assert!(binder
            .calls()
            .contains(&Call::Bind("default/a".into(), "n1".into())));
        assert!(!binder
            .calls()
            .iter()
            .any(|c| matches!(c, Call::Bind(pod, _) if pod == "default/b")));
        assert!(
            !s.cache.lock().is_assumed("default/b"),
            "the timed-out pod is forgotten"
        );
        assert_eq!(
            s.queue.place("default/b"),
            Some(crate::queue::Place::Backoff)
        );
    }
}
