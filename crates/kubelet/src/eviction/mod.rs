//! The eviction manager (upstream's `pkg/kubelet/eviction`): every monitoring interval it
//! reads the node's [`Summary`](crate::stats::Summary), decides which thresholds are met
//! ([`signals`]: hard ones at once, soft ones after their grace period), reports the node
//! conditions MemoryPressure / DiskPressure / PIDPressure (kept for
//! `--eviction-pressure-transition-period` after the signal clears; the heartbeat posts them,
//! the node lifecycle controller taints the node from them), and when a threshold is to be
//! acted on:
//!
//! 1. disk signals first reclaim node-level resources — dead containers and unused images
//!    ([`NodeReclaimer`], the garbage collectors of [`crate::gc`]) — and stop there if that was
//!    enough;
//! 2. otherwise ranks the active pods ([`rank`]) and evicts the first that is not critical: its
//!    pod worker kills it (grace period 1 s for hard thresholds, the pod's own up to
//!    `--eviction-max-pod-grace-period`, 0 by default, for soft ones) and fails it with reason `Evicted` and
//!    upstream's message; one pod per interval.
//!
//! Before the thresholds, every observation evicts the pods over their local storage limits
//! ([`local_storage`]: an emptyDir's `sizeLimit`, `ephemeral-storage` limits).
//!
//! New pods are admitted against the current conditions ([`admit`]). The I/O is behind traits
//! — [`SummaryProvider`] for the figures, [`ActivePods`], [`PodKiller`], [`NodeReclaimer`] —
//! so [`EvictionManager::synchronize`] runs in tests on fake observations.

pub mod admit;
pub mod local_storage;
pub mod rank;
pub mod signals;
pub mod threshold;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ferry_client::events::{EventType, Recorder};
use k8s_openapi::api::core::v1::{ObjectReference, Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use parking_lot::Mutex;
use tokio::time::Instant;

use self::admit::Admission;
use self::threshold::{NodeCondition, Signal, Threshold};
use crate::machine::Pressure;
use crate::stats::{Summary, SummaryProvider};

/// The grace period of evictions for hard thresholds (upstream's
/// `immediateEvictionGracePeriodSeconds`).
pub const IMMEDIATE_GRACE_PERIOD: Duration = Duration::from_secs(1);

/// The eviction manager's configuration (the kubelet's eviction flags).
#[derive(Clone, Debug)]
pub struct EvictionConfig {
    /// Hard and soft thresholds.
    pub thresholds: Vec<Threshold>,
    /// `--eviction-pressure-transition-period` (5m).
    pub pressure_transition_period: Duration,
    /// `--eviction-max-pod-grace-period`: the longest grace period of a soft eviction (0, the
    /// default: none, as upstream).
    pub max_pod_grace_period: Duration,
    /// How often the node is observed (upstream's `monitoringInterval`, 10 s).
    pub monitoring_interval: Duration,
    /// Whether images (and so containers' writable layers) are on a filesystem of their own,
    /// which containers' ephemeral-storage limits then do not count (ferry's containerd keeps
    /// them under the data dir, with the pods: `false`).
    pub dedicated_image_fs: bool,
}

impl Default for EvictionConfig {
    fn default() -> Self {
        EvictionConfig {
            thresholds: threshold::parse_thresholds(threshold::DEFAULT_EVICTION_HARD, "", "", "")
                .unwrap_or_default(),
            pressure_transition_period: Duration::from_secs(300),
            max_pod_grace_period: Duration::ZERO,
            monitoring_interval: Duration::from_secs(10),
            dedicated_image_fs: false,
        }
    }
}

/// An eviction asked of a pod worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodEviction {
    /// How long its containers get to stop.
    pub grace_period: Duration,
    /// Upstream's message (`The node was low on resource: …`).
    pub message: String,
}

impl PodEviction {
    /// The evicted pod's status: Failed, `Evicted`, the message, and the `DisruptionTarget`
    /// condition (`TerminationByKubelet`).
    pub fn apply(&self, status: &mut PodStatus, now: jiff::Timestamp) {
        status.phase = Some("Failed".into());
        status.reason = Some(rank::REASON.into());
        status.message = Some(self.message.clone());
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        if !conditions.iter().any(|c| c.type_ == "DisruptionTarget") {
            conditions.push(PodCondition {
                type_: "DisruptionTarget".into(),
                status: "True".into(),
                reason: Some("TerminationByKubelet".into()),
                message: Some(self.message.clone()),
                last_transition_time: Some(Time(now)),
                ..Default::default()
            });
        }
    }
}

/// What the rest of the kubelet sees of the eviction manager: the node conditions (for the
/// heartbeat and admission) and the evictions its pod workers are to carry out.
#[derive(Debug, Default)]
pub struct EvictionState {
    conditions: Mutex<BTreeSet<NodeCondition>>,
    pending: Mutex<HashMap<String, PodEviction>>,
}

impl EvictionState {
    /// The conditions now.
    pub fn conditions(&self) -> BTreeSet<NodeCondition> {
        self.conditions.lock().clone()
    }

    /// Replaces the conditions (the manager's, or a test's).
    pub fn set_conditions(&self, conditions: BTreeSet<NodeCondition>) {
        *self.conditions.lock() = conditions;
    }

    /// The conditions as the heartbeat reports them.
    pub fn pressure(&self) -> Pressure {
        let c = self.conditions.lock();
        Pressure {
            memory: c.contains(&NodeCondition::MemoryPressure),
            disk: c.contains(&NodeCondition::DiskPressure),
            pid: c.contains(&NodeCondition::PidPressure),
        }
    }

    /// Whether `pod` may start now.
    pub fn admit(&self, pod: &Pod) -> Admission {
        admit::admit(pod, &self.conditions.lock())
    }

    /// Asks the worker of the pod `uid` to evict it.
    pub fn request(&self, uid: &str, eviction: PodEviction) {
        self.pending.lock().insert(uid.to_string(), eviction);
    }

    /// The eviction asked for the pod `uid`, taken.
    pub fn take(&self, uid: &str) -> Option<PodEviction> {
        self.pending.lock().remove(uid)
    }
}

/// The pods the manager may evict: this node's, not terminal, not being deleted.
#[async_trait]
pub trait ActivePods: Send + Sync {
    /// The active pods now.
    async fn active_pods(&self) -> Vec<Pod>;
}

/// Carries out an eviction.
#[async_trait]
pub trait PodKiller: Send + Sync {
    /// Evicts `pod`; `false` if it could not be.
    async fn evict(&self, pod: &Pod, eviction: PodEviction) -> bool;
}

/// Frees node-level resources for a disk signal (dead containers, unused images).
#[async_trait]
pub trait NodeReclaimer: Send + Sync {
    /// Reclaims what it can for `signal`.
    async fn reclaim(&self, signal: Signal);
}

/// [`PodKiller`] through the pod workers: the eviction is left in the [`EvictionState`] and
/// the pod's worker woken through the pod loop's channel.
pub struct WorkerKiller {
    /// Where the worker finds it.
    pub state: Arc<EvictionState>,
    /// The pod loop's wake-up channel (pod uids).
    pub kick: tokio::sync::mpsc::UnboundedSender<String>,
}

#[async_trait]
impl PodKiller for WorkerKiller {
    async fn evict(&self, pod: &Pod, eviction: PodEviction) -> bool {
        let Some(uid) = pod.metadata.uid.as_deref() else {
            return false;
        };
        self.state.request(uid, eviction);
        self.kick.send(uid.to_string()).is_ok()
    }
}

/// [`ActivePods`] from the API: this node's pods, not terminal, not being deleted.
pub struct ApiActivePods {
    /// The client.
    pub client: kube::Client,
    /// This node.
    pub node_name: String,
}

#[async_trait]
impl ActivePods for ApiActivePods {
    async fn active_pods(&self) -> Vec<Pod> {
        let api: kube::Api<Pod> = kube::Api::all(self.client.clone());
        let params =
            kube::api::ListParams::default().fields(&format!("spec.nodeName={}", self.node_name));
        match api.list(&params).await {
            Ok(list) => list.items.into_iter().filter(is_active).collect(),
            Err(error) => {
                tracing::debug!(%error, "eviction manager: listing pods");
                vec![]
            }
        }
    }
}

/// Not terminal and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// The eviction manager; see the module docs.
pub struct EvictionManager {
    config: EvictionConfig,
    summary: Arc<dyn SummaryProvider>,
    pods: Arc<dyn ActivePods>,
    killer: Arc<dyn PodKiller>,
    reclaimer: Option<Arc<dyn NodeReclaimer>>,
    recorder: Recorder,
    node_name: String,
    state: Arc<EvictionState>,
    memory: signals::Memory,
    metrics: Option<Arc<crate::metrics::KubeletMetrics>>,
}

impl EvictionManager {
    /// A manager for `node_name` publishing to `state`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: EvictionConfig,
        node_name: impl Into<String>,
        summary: Arc<dyn SummaryProvider>,
        pods: Arc<dyn ActivePods>,
        killer: Arc<dyn PodKiller>,
        reclaimer: Option<Arc<dyn NodeReclaimer>>,
        recorder: Recorder,
        state: Arc<EvictionState>,
    ) -> Self {
        EvictionManager {
            config,
            summary,
            pods,
            killer,
            reclaimer,
            recorder,
            node_name: node_name.into(),
            state,
            memory: signals::Memory::default(),
            metrics: None,
        }
    }

    /// The same manager, counting its evictions in `metrics` (`kubelet_evictions`).
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::KubeletMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn count(&self, signal: &str) {
        if let Some(metrics) = &self.metrics {
            metrics.evicted(signal);
        }
    }

    fn node_reference(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(self.node_name.clone()),
            uid: Some(self.node_name.clone()),
            ..Default::default()
        }
    }

    /// One observation and what follows (upstream's `synchronize`); returns the pods evicted.
    pub async fn synchronize(&mut self, now: Instant) -> Vec<Pod> {
        let summary = match self.summary.summary().await {
            Ok(s) => s,
            Err(error) => {
                tracing::warn!(%error, "eviction manager: no summary");
                return vec![];
            }
        };
        let observations = signals::observations(&summary);
        let decision = signals::decide(
            &self.config.thresholds,
            &observations,
            &mut self.memory,
            self.config.pressure_transition_period,
            now,
        );
        if decision.conditions != self.state.conditions() {
            tracing::info!(conditions = ?decision.conditions, "eviction manager: node conditions");
        }
        self.state.set_conditions(decision.conditions);
        let mut pods = self.pods.active_pods().await;
        // Pods over their local storage limits go first, and alone (upstream's
        // `localStorageEviction`).
        let evicted = self.local_storage_eviction(&pods, &summary).await;
        if !evicted.is_empty() {
            return evicted;
        }
        let Some(to_reclaim) = decision.act_on.first().copied() else {
            return vec![];
        };
        let signal = to_reclaim.signal;
        self.recorder.event(
            self.node_reference(),
            EventType::Warning,
            "EvictionThresholdMet",
            format!("Attempting to reclaim {}", signal.resource()),
        );
        if signal.is_disk() {
            if let Some(reclaimer) = &self.reclaimer {
                reclaimer.reclaim(signal).await;
                if let Ok(after) = self.summary.summary().await {
                    let observations = signals::observations(&after);
                    if signals::thresholds_met(&[to_reclaim], &observations, false).is_empty() {
                        tracing::info!(%signal, "eviction manager: node-level reclaim was enough");
                        return vec![];
                    }
                }
            }
        }
        if pods.is_empty() {
            tracing::info!(%signal, "eviction manager: no pods to evict");
            return vec![];
        }
        rank::rank(&mut pods, signal, &summary);
        for pod in pods {
            if rank::is_critical(&pod) {
                continue;
            }
            // Upstream: the smaller of `--eviction-max-pod-grace-period` (0 by default: at
            // once) and the pod's own for soft thresholds, the minimum for hard ones.
            let grace_period = if to_reclaim.is_hard() {
                IMMEDIATE_GRACE_PERIOD
            } else {
                let own = Duration::from_secs(
                    pod.spec
                        .as_ref()
                        .and_then(|s| s.termination_grace_period_seconds)
                        .unwrap_or(30)
                        .max(0) as u64,
                );
                own.min(self.config.max_pod_grace_period)
            };
            let stats = pod.metadata.uid.as_deref().and_then(|u| summary.pod(u));
            let message =
                rank::eviction_message(signal, &pod, stats, &decision.act_on, &observations);
            let eviction = PodEviction {
                grace_period,
                message: message.clone(),
            };
            if self.killer.evict(&pod, eviction).await {
                tracing::info!(pod = ?pod.metadata.name, %signal, "eviction manager: evicted a pod");
                self.count(&signal.to_string());
                self.recorder.event(
                    ferry_client::events::reference(&pod),
                    EventType::Warning,
                    rank::REASON,
                    message,
                );
                return vec![pod];
            }
        }
        tracing::info!(%signal, "eviction manager: unable to evict any pod");
        vec![]
    }

    /// Evicts at once every pod over a local storage limit ([`local_storage`]); the pods
    /// evicted.
    async fn local_storage_eviction(&self, pods: &[Pod], summary: &Summary) -> Vec<Pod> {
        let mut evicted = Vec::new();
        for pod in pods {
            let Some(stats) = pod.metadata.uid.as_deref().and_then(|u| summary.pod(u)) else {
                continue;
            };
            let dedicated = self.config.dedicated_image_fs;
            let Some((violation, message)) = local_storage::violation(pod, stats, dedicated) else {
                continue;
            };
            if rank::is_critical(pod) {
                tracing::warn!(pod = ?pod.metadata.name, "eviction manager: cannot evict a critical pod");
                continue;
            }
            let eviction = PodEviction {
                grace_period: Duration::ZERO,
                message: message.clone(),
            };
            if self.killer.evict(pod, eviction).await {
                self.count(violation.signal());
                tracing::info!(pod = ?pod.metadata.name, signal = violation.signal(), "eviction manager: evicted a pod over a local storage limit");
                self.recorder.event(
                    ferry_client::events::reference(pod),
                    EventType::Warning,
                    rank::REASON,
                    message,
                );
                evicted.push(pod.clone());
            }
        }
        evicted
    }

    /// Observes every monitoring interval until `shutdown`.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(self.config.monitoring_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = tick.tick() => {
                    let evicted = self.synchronize(Instant::now()).await;
                    if !evicted.is_empty() {
                        // Give the worker time to stop it before the next observation.
                        tokio::time::sleep(self.config.monitoring_interval).await;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
