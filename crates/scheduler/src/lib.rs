//! `ferry-scheduler`: kube-scheduler for ferry. It watches pods, nodes and namespaces through
//! kube-rs, picks a node for every pending pod whose `spec.schedulerName` names one of its
//! profiles, and binds it with a `pods/binding` POST; it writes the `PodScheduled` condition and
//! `Scheduled` / `FailedScheduling` events as upstream does. Upstream kube-scheduler is the spec:
//! the framework's extension points, the default plugins and weights, the queue's backoff and
//! the FailedScheduling messages follow it.
//!
//! Where to start reading: [`scheduler`] (one scheduling cycle, then an asynchronous binding
//! cycle), then [`framework`] (one trait per extension point, [`framework::Status`],
//! [`framework::CycleState`], profiles), [`plugins`] (one file per plugin, with table tests),
//! [`queue`] (activeQ, backoffQ, unschedulable pods and the cluster events that move them),
//! [`cache`] (NodeInfos, assumed pods, the per-cycle snapshot). [`run()`] wires kube-rs watchers
//! to it; [`binder`] holds every write behind a trait, so the core runs in-process (tests,
//! [`mod@bench`]).
//!
//! Storage: [`volumes`] keeps claims, volumes, classes, CSIDrivers and CSIStorageCapacities for
//! the VolumeBinding, VolumeRestrictions, VolumeZone and NodeVolumeLimits plugins. [`workloads`] keeps the selectors of
//! Services and controllers for PodTopologySpread's system default constraints. Not modelled
//! (yet): DynamicResources;
//! extenders; PodDisruptionBudgets in preemption; queueing hints finer than "this plugin cares
//! about this kind of event".
//!
//! The pod's journey (`ferry trace`): each attempt records the steps `queued`, `filtered`,
//! `scored` and `bound` (the `pods/binding` POST made inside it), or `unschedulable` with the
//! FailedScheduling message and [`explain::why_pending`]'s plain-words reason, once per
//! distinct message.
//!
//! Metrics: [`metrics`] keeps kube-scheduler's (`scheduler_schedule_attempts_total`,
//! `scheduler_pending_pods`, …), recorded by the scheduler, the queue and the framework.

pub mod bench;
pub mod binder;
pub mod cache;
pub mod config;
pub mod explain;
pub mod framework;
mod journey;
pub mod metrics;
pub mod plugins;
pub mod queue;
pub mod resources;
mod run;
pub mod scheduler;
pub mod testing;
pub mod volumes;
pub mod workloads;

pub use config::{load_config, Config, ConfigError};
pub use run::run;
pub use scheduler::Scheduler;
