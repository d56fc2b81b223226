//! The scheduling framework: one small trait per extension point, as upstream's
//! `framework/interface.go`, the [`Status`] each returns, the per-cycle [`CycleState`], the
//! [`registry`] of plugins by name and the [`runtime::Framework`] (one per profile) that runs
//! them in order.
//!
//! A plugin is one value implementing [`Plugin`] (its name and the cluster events that can make a
//! pod it rejected schedulable) plus the extension-point traits it takes part in, exposed through
//! the `as_*` methods so that one object can sit at several points.

pub mod registry;
pub mod runtime;

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;

use crate::cache::{NodeInfo, Snapshot};
use crate::queue::QueuedPodInfo;

pub use runtime::Framework;

/// The highest score a Score plugin may give after normalization (upstream `MaxNodeScore`).
pub const MAX_NODE_SCORE: i64 = 100;

/// What a plugin's answer means for the pod, as upstream's `framework.Code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// The plugin is happy.
    Success,
    /// Something went wrong inside the scheduler; the pod is retried with backoff.
    Error,
    /// The pod does not fit now; preemption may help.
    Unschedulable,
    /// The pod does not fit and preemption cannot help (a label, a taint, a node name).
    UnschedulableAndUnresolvable,
    /// Permit only: hold the pod until allowed or timed out.
    Wait,
    /// The plugin has nothing to do for this pod (PreFilter/PreScore: skip its later step).
    Skip,
}

/// A plugin's answer: a code, human-readable reasons, and which plugin gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// What happens next.
    pub code: Code,
    /// The reasons, each counted separately in the FailedScheduling message.
    pub reasons: Vec<String>,
    /// The plugin that returned it, set by the framework.
    pub plugin: Option<&'static str>,
}

impl Status {
    /// A status with `code` and one reason (none if empty).
    pub fn new(code: Code, reason: impl Into<String>) -> Status {
        let reason = reason.into();
        Status {
            code,
            reasons: if reason.is_empty() {
                Vec::new()
            } else {
                vec![reason]
            },
            plugin: None,
        }
    }

    /// Success.
    pub fn success() -> Status {
        Status {
            code: Code::Success,
            reasons: Vec::new(),
            plugin: None,
        }
    }

    /// Skip.
    pub fn skip() -> Status {
        Status {
            code: Code::Skip,
            reasons: Vec::new(),
            plugin: None,
        }
    }

    /// Unschedulable with one reason.
    pub fn unschedulable(reason: impl Into<String>) -> Status {
        Status::new(Code::Unschedulable, reason)
    }

    /// UnschedulableAndUnresolvable with one reason.
    pub fn unresolvable(reason: impl Into<String>) -> Status {
        Status::new(Code::UnschedulableAndUnresolvable, reason)
    }

    /// An internal error.
    pub fn error(message: impl Into<String>) -> Status {
        Status::new(Code::Error, message)
    }

    /// Sets the plugin.
    pub fn with_plugin(mut self, plugin: &'static str) -> Status {
        self.plugin = Some(plugin);
        self
    }

    /// The code is Success.
    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }

    /// The code is Skip.
    pub fn is_skip(&self) -> bool {
        self.code == Code::Skip
    }

    /// The pod was rejected (Unschedulable or UnschedulableAndUnresolvable).
    pub fn is_rejected(&self) -> bool {
        matches!(
            self.code,
            Code::Unschedulable | Code::UnschedulableAndUnresolvable
        )
    }

    /// The reasons joined by ", ", as upstream's `Status.Message()`.
    pub fn message(&self) -> String {
        self.reasons.join(", ")
    }
}

/// State one scheduling cycle keeps between extension points, typed per plugin: a plugin writes
/// its PreFilter/PreScore results under its own key and reads them back in Filter/Score.
///
/// A handful of entries, read once per node and plugin: a vector searched by key (the same
/// `&'static str` nearly always, so a pointer comparison) beats hashing the key each time.
#[derive(Default)]
pub struct CycleState {
    data: Vec<(&'static str, Box<dyn Any + Send + Sync>)>,
    /// Plugins whose PreFilter returned Skip: their Filter is not called.
    pub skip_filter_plugins: HashSet<&'static str>,
    /// Plugins whose PreScore returned Skip: their Score is not called.
    pub skip_score_plugins: HashSet<&'static str>,
}

impl CycleState {
    /// An empty state.
    pub fn new() -> CycleState {
        CycleState::default()
    }

    /// Stores `value` under `key` (by convention the plugin's name plus a suffix).
    pub fn write<T: Any + Send + Sync>(&mut self, key: &'static str, value: T) {
        match self.data.iter_mut().find(|(k, _)| same_key(k, key)) {
            Some((_, slot)) => *slot = Box::new(value),
            None => self.data.push((key, Box::new(value))),
        }
    }

    /// The value stored under `key`, if it has type `T`.
    pub fn read<T: Any + Send + Sync>(&self, key: &'static str) -> Option<&T> {
        self.data
            .iter()
            .find(|(k, _)| same_key(k, key))
            .and_then(|(_, v)| v.downcast_ref())
    }
}

fn same_key(a: &str, b: &str) -> bool {
    std::ptr::eq(a, b) || a == b
}

/// A change in the cluster that may make a rejected pod schedulable. Plugins list the ones that
/// can make them pass; the queue moves a pod only on events one of its rejecting plugins listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClusterEvent {
    /// A node was added.
    NodeAdd,
    /// A node's labels changed.
    NodeLabelChange,
    /// A node's taints changed.
    NodeTaintChange,
    /// A node's allocatable resources changed.
    NodeAllocatableChange,
    /// A node was cordoned or uncordoned.
    NodeUnschedulableChange,
    /// A node's image list changed.
    NodeImageChange,
    /// A node was deleted.
    NodeDelete,
    /// A pod got bound to a node (or an assigned pod was seen).
    AssignedPodAdd,
    /// An assigned pod changed (labels, resources).
    AssignedPodUpdate,
    /// An assigned pod was deleted or finished.
    AssignedPodDelete,
    /// A namespace was added or its labels changed.
    NamespaceChange,
    /// A PersistentVolumeClaim was added or changed (bound, annotated).
    PersistentVolumeClaimChange,
    /// A PersistentVolume was added or changed.
    PersistentVolumeChange,
    /// A StorageClass was added or changed.
    StorageClassChange,
    /// A CSIDriver or a CSIStorageCapacity was added or changed.
    StorageCapacityChange,
    /// A CSINode was added or changed (its drivers' volume limits).
    CsiNodeChange,
}

impl ClusterEvent {
    /// Its `event` label in `scheduler_queue_incoming_pods_total`.
    pub fn label(self) -> &'static str {
        match self {
            ClusterEvent::NodeAdd => "NodeAdd",
            ClusterEvent::NodeLabelChange => "NodeLabelChange",
            ClusterEvent::NodeTaintChange => "NodeTaintChange",
            ClusterEvent::NodeAllocatableChange => "NodeAllocatableChange",
            ClusterEvent::NodeUnschedulableChange => "NodeSpecUnschedulableChange",
            ClusterEvent::NodeImageChange => "NodeImageChange",
            ClusterEvent::NodeDelete => "NodeDelete",
            ClusterEvent::AssignedPodAdd => "AssignedPodAdd",
            ClusterEvent::AssignedPodUpdate => "AssignedPodUpdate",
            ClusterEvent::AssignedPodDelete => "AssignedPodDelete",
            ClusterEvent::NamespaceChange => "NamespaceChange",
            ClusterEvent::PersistentVolumeClaimChange => "PvcChange",
            ClusterEvent::PersistentVolumeChange => "PvChange",
            ClusterEvent::StorageClassChange => "StorageClassChange",
            ClusterEvent::StorageCapacityChange => "StorageCapacityChange",
            ClusterEvent::CsiNodeChange => "CSINodeChange",
        }
    }
}

/// The nodes a PreFilter plugin narrows the search to (`None`: all nodes).
#[derive(Clone, Debug, Default)]
pub struct PreFilterResult {
    /// The only nodes worth filtering.
    pub node_names: Option<HashSet<String>>,
}

/// What a PostFilter plugin (preemption) decided.
#[derive(Clone, Debug, Default)]
pub struct PostFilterResult {
    /// The node the pod is nominated to (`Some("")` clears a previous nomination).
    pub nominated_node: Option<String>,
    /// Pods to delete to make room.
    pub victims: Vec<Arc<Pod>>,
}

/// One node's score.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeScore {
    /// The node.
    pub name: String,
    /// Its score.
    pub score: i64,
}

/// Every filter status of a cycle by node name, as upstream's `NodeToStatusMap`.
pub type NodeStatuses = HashMap<String, Status>;

/// What every plugin is: a name and the events that can make a pod it rejected schedulable.
pub trait Plugin: Send + Sync + 'static {
    /// The plugin's name as the configuration spells it.
    fn name(&self) -> &'static str;
    /// The cluster events that can turn this plugin's rejection into a pass.
    fn events(&self) -> Vec<ClusterEvent> {
        Vec::new()
    }
    /// This plugin as a PreEnqueue plugin.
    fn as_pre_enqueue(&self) -> Option<&dyn PreEnqueue> {
        None
    }
    /// This plugin as a QueueSort plugin.
    fn as_queue_sort(&self) -> Option<&dyn QueueSort> {
        None
    }
    /// This plugin as a PreFilter plugin.
    fn as_pre_filter(&self) -> Option<&dyn PreFilter> {
        None
    }
    /// This plugin as a Filter plugin.
    fn as_filter(&self) -> Option<&dyn Filter> {
        None
    }
    /// This plugin as a PostFilter plugin.
    fn as_post_filter(&self) -> Option<&dyn PostFilter> {
        None
    }
    /// This plugin as a PreScore plugin.
    fn as_pre_score(&self) -> Option<&dyn PreScore> {
        None
    }
    /// This plugin as a Score plugin.
    fn as_score(&self) -> Option<&dyn Score> {
        None
    }
    /// This plugin as a Reserve plugin.
    fn as_reserve(&self) -> Option<&dyn Reserve> {
        None
    }
    /// This plugin as a Permit plugin.
    fn as_permit(&self) -> Option<&dyn Permit> {
        None
    }
    /// This plugin as a PreBind plugin.
    fn as_pre_bind(&self) -> Option<&dyn PreBind> {
        None
    }
    /// This plugin as a Bind plugin.
    fn as_bind(&self) -> Option<&dyn Bind> {
        None
    }
    /// This plugin as a PostBind plugin.
    fn as_post_bind(&self) -> Option<&dyn PostBind> {
        None
    }
}

/// Decides whether a pod may enter the active queue at all (scheduling gates).
pub trait PreEnqueue: Send + Sync {
    /// Success lets the pod in; anything else keeps it parked until it is updated.
    fn pre_enqueue(&self, pod: &Pod) -> Status;
}

/// Orders the active queue.
pub trait QueueSort: Send + Sync {
    /// Whether `a` should be scheduled before `b`.
    fn less(&self, a: &QueuedPodInfo, b: &QueuedPodInfo) -> bool;
}

/// Runs once per cycle before filtering: precomputes state, or rejects the pod outright.
pub trait PreFilter: Send + Sync {
    /// Skip means "my Filter has nothing to check for this pod".
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
    ) -> (Option<PreFilterResult>, Status);
}

/// Checks one node; called in parallel over nodes.
pub trait Filter: Send + Sync {
    /// Success if the pod can run on `node`.
    fn filter(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status;
}

/// Runs when no node passed the filters (preemption).
pub trait PostFilter: Send + Sync {
    /// `statuses` has every node's filter status; `framework` lets the plugin re-run filters.
    fn post_filter(
        &self,
        state: &CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
        statuses: &NodeStatuses,
        framework: &Framework,
    ) -> (Option<PostFilterResult>, Status);
}

/// Runs once per cycle before scoring, over the feasible nodes.
pub trait PreScore: Send + Sync {
    /// Skip means "my Score has nothing to add for this pod".
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        nodes: &[Arc<NodeInfo>],
        snapshot: &Snapshot,
    ) -> Status;
}

/// Ranks one feasible node; scores are then normalized to 0..=100 and weighted.
pub trait Score: Send + Sync {
    /// The node's raw score.
    fn score(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> (i64, Status);
    /// Rescales all raw scores to 0..=[`MAX_NODE_SCORE`]; the default leaves them.
    fn normalize_score(
        &self,
        _state: &CycleState,
        _pod: &Pod,
        _scores: &mut [NodeScore],
    ) -> Status {
        Status::success()
    }
}

/// Claims resources for the pod on its node before binding, and gives them back on failure.
pub trait Reserve: Send + Sync {
    /// Reserves; a failure aborts the cycle.
    fn reserve(&self, state: &mut CycleState, pod: &Pod, node: &str) -> Status;
    /// Undoes [`Reserve::reserve`]; must be idempotent.
    fn unreserve(&self, state: &mut CycleState, pod: &Pod, node: &str);
}

/// Approves, rejects or holds the pod before binding.
pub trait Permit: Send + Sync {
    /// Wait holds the pod for at most the returned duration.
    fn permit(&self, state: &CycleState, pod: &Pod, node: &str) -> (Status, Duration);
}

/// Runs before binding (e.g. provisioning volumes); may do I/O.
pub trait PreBind: Send + Sync {
    /// Success lets binding proceed.
    fn pre_bind(&self, state: &CycleState, pod: &Pod, node: &str) -> BoxFuture<'static, Status>;
}

/// Binds the pod to the node; the first Bind plugin not returning Skip does it.
pub trait Bind: Send + Sync {
    /// Binds.
    fn bind(&self, state: &CycleState, pod: &Pod, node: &str) -> BoxFuture<'static, Status>;
}

/// Informational, after a successful bind.
pub trait PostBind: Send + Sync {
    /// Called once the pod is bound.
    fn post_bind(&self, state: &CycleState, pod: &Pod, node: &str);
}
