//! The HorizontalPodAutoscaler controller (`autoscaling/v2`), as upstream's
//! `pkg/controller/podautoscaler` (`horizontal-pod-autoscaler`): every 15 s per HPA it reads
//! the target's `scale` subresource, asks the metrics for a replica count ([`replicas`], the
//! pure calculation, fed by a [`MetricsClient`] — [`metrics`]), keeps the count within
//! `minReplicas`/`maxReplicas` and the scaling behavior ([`behavior`]: stabilization windows and
//! policies over an in-memory history), writes the new count through the scale subresource and
//! the status (current/desired replicas, current metrics, conditions AbleToScale, ScalingActive,
//! ScalingLimited) with upstream's reasons, messages and events.
//!
//! A sync is upstream's `reconcileAutoscaler` (this file); the per-metric computations are in
//! `compute.rs`. The API defaults of `autoscaling/v2` (`minReplicas` 1, a CPU target of 80 % when
//! there are no metrics, behavior rules filled in) are applied here too, so an HPA stored
//! without them is read as upstream would serve it.

mod behavior;
mod compute;
pub mod metrics;
pub mod replicas;
#[cfg(test)]
mod scenarios;
mod selector;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use ferry_client::events::{reference, EventType};
use jiff::Timestamp;
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition,
    HorizontalPodAutoscalerSpec, HorizontalPodAutoscalerStatus, MetricSpec, MetricStatus,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::api::{ApiResource, DynamicObject, PostParams};
use kube::Api;
use parking_lot::Mutex;

pub use self::behavior::{
    Behavior, History, Normalized, Policy, PolicyType, ScalingRules, SelectPolicy,
};
pub use self::metrics::{
    MetricsClient, MetricsError, PodMetric, PodMetricsInfo, RestMetricsClient,
};
pub use self::replicas::{ReplicaCalculator, ReplicaError};
use crate::informer::{key_of, Key};
use crate::queue::{Queue, Reconciler};
use crate::replicaset::api_message;
use crate::util::selector_matches;
use crate::{Context, Error};

/// The source component of the controller's events.
const COMPONENT: &str = "horizontal-pod-autoscaler";
/// Upstream's `--horizontal-pod-autoscaler-sync-period`.
pub const DEFAULT_SYNC_PERIOD: Duration = Duration::from_secs(15);
/// The CPU utilization target of an HPA without metrics (upstream's `DefaultCPUUtilization`).
pub const DEFAULT_CPU_UTILIZATION: i32 = 80;

/// The controller's settings (upstream's `--horizontal-pod-autoscaler-*` flags).
#[derive(Clone, Debug)]
pub struct HpaOptions {
    /// How often each HPA is synced.
    pub sync_period: Duration,
    /// The scale-down stabilization window of HPAs that do not set one.
    pub downscale_stabilization: Duration,
    /// Tolerance and the CPU readiness periods.
    pub calculator: ReplicaCalculator,
}

impl Default for HpaOptions {
    fn default() -> HpaOptions {
        HpaOptions {
            sync_period: DEFAULT_SYNC_PERIOD,
            downscale_stabilization: behavior::DEFAULT_DOWNSCALE_STABILIZATION,
            calculator: ReplicaCalculator::default(),
        }
    }
}

/// The controller.
pub struct HorizontalController {
    ctx: Arc<Context>,
    queue: Arc<Queue<Key>>,
    metrics: Arc<dyn MetricsClient>,
    options: HpaOptions,
    /// Recent recommendations and scale events per HPA.
    history: Mutex<History>,
    /// Each HPA's target pod selector, `None` until its first sync (upstream's
    /// `hpaSelectors`): two HPAs selecting the same pods are refused.
    selectors: Mutex<HashMap<Key, Option<LabelSelector>>>,
    /// The clock, fixed in tests.
    now: fn() -> Timestamp,
}

impl Reconciler for HorizontalController {
    type Key = Key;
    type Error = Error;
    const NAME: &'static str = "horizontalpodautoscaler";

    fn queue(&self) -> &Arc<Queue<Key>> {
        &self.queue
    }

    /// Syncs the HPA and comes back after the sync period, failed or not (upstream requeues
    /// every HPA at the sync period, never sooner, so events and recommendations keep its pace).
    async fn reconcile(self: Arc<Self>, key: Key) -> Result<Option<Duration>, Error> {
        let Some(hpa) = self.ctx.horizontal_pod_autoscalers.get(&key.0, &key.1) else {
            self.history.lock().forget(&key);
            return Ok(None);
        };
        if let Err(error) = self.reconcile_autoscaler(&hpa, &key).await {
            tracing::info!(controller = Self::NAME, namespace = %key.0, name = %key.1, %error, "sync failed");
        }
        Ok(Some(self.options.sync_period))
    }
}

/// A condition type's value as the API writes it.
fn condition_status(value: bool) -> &'static str {
    if value {
        "True"
    } else {
        "False"
    }
}

/// Sets a condition, moving its transition time only when its status changes (upstream's
/// `setCondition`).
fn set_condition(
    status: &mut HorizontalPodAutoscalerStatus,
    type_: &str,
    value: bool,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let index = match conditions.iter().position(|c| c.type_ == type_) {
        Some(i) => i,
        None => {
            conditions.push(HorizontalPodAutoscalerCondition {
                type_: type_.to_string(),
                ..Default::default()
            });
            conditions.len() - 1
        }
    };
    let condition = &mut conditions[index];
    if condition.status != condition_status(value) {
        condition.last_transition_time = Some(Time(now));
    }
    condition.status = condition_status(value).to_string();
    condition.reason = Some(reason.to_string());
    condition.message = Some(message.to_string());
}

/// The spec with the API's defaults for what it leaves out.
pub fn spec_with_defaults(hpa: &HorizontalPodAutoscaler) -> HorizontalPodAutoscalerSpec {
    let mut spec = hpa.spec.clone().unwrap_or_default();
    spec.min_replicas.get_or_insert(1);
    if spec.metrics.as_ref().is_none_or(Vec::is_empty) {
        spec.metrics = Some(vec![MetricSpec {
            type_: "Resource".into(),
            resource: Some(ResourceMetricSource {
                name: "cpu".into(),
                target: MetricTarget {
                    type_: "Utilization".into(),
                    average_utilization: Some(DEFAULT_CPU_UTILIZATION),
                    ..Default::default()
                },
            }),
            ..Default::default()
        }]);
    }
    spec
}

/// `apps` and `v1` of `apps/v1` (upstream's `schema.ParseGroupVersion`).
fn parse_group_version(api_version: &str) -> Result<(&str, &str), String> {
    if api_version.is_empty() || api_version == "/" {
        return Ok(("", ""));
    }
    match api_version.matches('/').count() {
        0 => Ok(("", api_version)),
        1 => Ok(api_version.split_once('/').unwrap_or_default()),
        _ => Err(format!("unexpected GroupVersion string: {api_version}")),
    }
}

/// A status compared as upstream's semantic equality does: absent and empty lists alike.
fn normalized(status: Option<&HorizontalPodAutoscalerStatus>) -> HorizontalPodAutoscalerStatus {
    let mut status = status.cloned().unwrap_or_default();
    if status.conditions.as_ref().is_some_and(Vec::is_empty) {
        status.conditions = None;
    }
    if status.current_metrics.as_ref().is_some_and(Vec::is_empty) {
        status.current_metrics = None;
    }
    if status.current_replicas == Some(0) {
        status.current_replicas = None;
    }
    status
}

/// A status of `current` and `desired` replicas with `metrics`, keeping the conditions and last
/// scale time (moved to now on a rescale) — upstream's `setStatus`.
fn set_status(
    hpa: &HorizontalPodAutoscaler,
    status: &mut HorizontalPodAutoscalerStatus,
    current: i32,
    desired: i32,
    metrics: Option<Vec<MetricStatus>>,
    rescaled: bool,
    now: Timestamp,
) {
    status.current_replicas = (current != 0).then_some(current);
    status.desired_replicas = desired;
    status.current_metrics = metrics;
    status.observed_generation = hpa.metadata.generation;
    if rescaled {
        status.last_scale_time = Some(Time(now));
    }
}

/// A failed metric: the ScalingActive condition it asks for.
#[derive(Clone, Debug)]
struct MetricFailure {
    reason: &'static str,
    message: String,
}

/// What the metrics propose (upstream's `computeReplicasForMetrics` results).
struct Proposal {
    replicas: i32,
    metric: String,
    statuses: Vec<MetricStatus>,
    /// Some metrics failed, but the others decided.
    error: Option<String>,
}

impl HorizontalController {
    /// Registers the handlers, reading metrics through the API server.
    pub fn new(ctx: Arc<Context>) -> Arc<HorizontalController> {
        let metrics = Arc::new(RestMetricsClient::new(ctx.client.clone()));
        let options = ctx.options.horizontal_pod_autoscaler.clone();
        HorizontalController::with_metrics(ctx, metrics, options)
    }

    /// Registers the handlers, reading metrics from `metrics`.
    pub fn with_metrics(
        ctx: Arc<Context>,
        metrics: Arc<dyn MetricsClient>,
        options: HpaOptions,
    ) -> Arc<HorizontalController> {
        let controller = Arc::new(HorizontalController {
            ctx: ctx.clone(),
            queue: Queue::new(),
            metrics,
            options,
            history: Mutex::new(History::default()),
            selectors: Mutex::new(HashMap::new()),
            now: Timestamp::now,
        });
        let c = controller.clone();
        ctx.horizontal_pod_autoscalers
            .add_handler(move |old, new| match (old, new) {
                (_, Some(hpa)) => {
                    // As upstream: every add waits the sync period, so an HPA is synced at most
                    // once per period however often it changes.
                    let key = key_of(hpa.as_ref());
                    c.selectors.lock().entry(key.clone()).or_insert(None);
                    c.queue.add_after(key, c.options.sync_period);
                }
                (Some(hpa), None) => {
                    let key = key_of(hpa.as_ref());
                    c.selectors.lock().remove(&key);
                    c.history.lock().forget(&key);
                }
                (None, None) => {}
            });
        controller
    }

    fn event(
        &self,
        hpa: &HorizontalPodAutoscaler,
        event_type: EventType,
        reason: &str,
        message: &str,
    ) {
        self.ctx
            .recorder(COMPONENT)
            .event(reference(hpa), event_type, reason, message);
    }

    /// Writes `status` if it differs from what the HPA had (upstream's `updateStatusIfNeeded`).
    async fn update_status_if_needed(
        &self,
        hpa: &HorizontalPodAutoscaler,
        status: HorizontalPodAutoscalerStatus,
    ) -> Result<(), String> {
        if normalized(hpa.status.as_ref()) == normalized(Some(&status)) {
            return Ok(());
        }
        let mut updated = hpa.clone();
        updated.status = Some(status);
        let name = hpa.metadata.name.clone().unwrap_or_default();
        let namespace = hpa.metadata.namespace.clone().unwrap_or_default();
        let api: Api<HorizontalPodAutoscaler> =
            Api::namespaced(self.ctx.client.clone(), &namespace);
        match api
            .replace_status(&name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => Ok(()),
            Err(error) => {
                let message = api_message(&error);
                self.event(hpa, EventType::Warning, "FailedUpdateStatus", &message);
                Err(format!("failed to update status for {name}: {message}"))
            }
        }
    }

    /// The resource serving the target's kind: the ones ferry knows by group and kind (as
    /// upstream's REST mapper, any version, the named one first), else discovery (custom
    /// resources).
    async fn target_resource(
        &self,
        target: &CrossVersionObjectReference,
    ) -> Result<ApiResource, String> {
        let api_version = target.api_version.as_deref().unwrap_or_default();
        let (group, version) = parse_group_version(api_version)?;
        let known = ferry_api::registry::RESOURCES
            .iter()
            .filter(|r| r.group == group && r.kind == target.kind);
        let info = known
            .clone()
            .find(|r| r.version == version)
            .or_else(|| known.clone().next());
        if let Some(info) = info {
            let api_version = if info.group.is_empty() {
                info.version.to_string()
            } else {
                format!("{}/{}", info.group, info.version)
            };
            return Ok(ApiResource {
                group: info.group.into(),
                version: info.version.into(),
                api_version,
                kind: info.kind.into(),
                plural: info.plural.into(),
            });
        }
        let gvk = kube::api::GroupVersionKind::gvk(group, version, &target.kind);
        match kube::discovery::pinned_kind(&self.ctx.client, &gvk).await {
            Ok((resource, _)) => Ok(resource),
            Err(_) => Err(format!(
                "no matches for kind {:?} in group {:?}",
                target.kind, group
            )),
        }
    }

    /// Checks the target's selector (upstream's `validateAndParseSelector`): present, valid,
    /// and not selecting pods another HPA controls. Returns the pods it selects.
    fn validate_selector(
        &self,
        hpa: &HorizontalPodAutoscaler,
        key: &Key,
        selector: &str,
        status: &mut HorizontalPodAutoscalerStatus,
        now: Timestamp,
    ) -> Result<Vec<Arc<Pod>>, String> {
        if selector.is_empty() {
            let message = "selector is required";
            self.event(hpa, EventType::Warning, "SelectorRequired", message);
            set_condition(
                status,
                "ScalingActive",
                false,
                "InvalidSelector",
                "the HPA target's scale is missing a selector",
                now,
            );
            return Err(message.into());
        }
        let parsed = match selector::parse(selector) {
            Ok(parsed) => parsed,
            Err(error) => {
                let message = format!(
                    "couldn't convert selector into a corresponding internal selector object: {error}"
                );
                self.event(hpa, EventType::Warning, "InvalidSelector", &message);
                set_condition(
                    status,
                    "ScalingActive",
                    false,
                    "InvalidSelector",
                    &message,
                    now,
                );
                return Err(message);
            }
        };
        let selectors = {
            let mut selectors = self.selectors.lock();
            if let Some(registered) = selectors.get_mut(key) {
                *registered = Some(parsed.clone());
            }
            selectors.clone()
        };
        let pods: Vec<Arc<Pod>> = self
            .ctx
            .pods
            .list_namespace(&key.0)
            .into_iter()
            .filter(|p| selector_matches(&parsed, p.metadata.labels.as_ref()))
            .collect();
        let controlling: BTreeSet<&Key> = selectors
            .iter()
            .filter(|(k, s)| {
                k.0 == key.0
                    && s.as_ref().is_some_and(|s| {
                        pods.iter()
                            .any(|p| selector_matches(s, p.metadata.labels.as_ref()))
                    })
            })
            .map(|(k, _)| k)
            .collect();
        if controlling.len() > 1 {
            let names: Vec<String> = controlling
                .iter()
                .map(|k| format!("{}/{}", k.0, k.1))
                .collect();
            let message = format!(
                "pods by selector {selector} are controlled by multiple HPAs: [{}]",
                names.join(" ")
            );
            self.event(hpa, EventType::Warning, "AmbiguousSelector", &message);
            set_condition(
                status,
                "ScalingActive",
                false,
                "AmbiguousSelector",
                &message,
                now,
            );
            return Err(message);
        }
        Ok(pods)
    }

    /// The replica count every metric proposes, the highest winning (upstream's
    /// `computeReplicasForMetrics`). Fails — with the statuses read — when every metric failed,
    /// or some did and the others would scale down.
    async fn compute_replicas_for_metrics(
        &self,
        hpa: &HorizontalPodAutoscaler,
        key: &Key,
        specs: &[MetricSpec],
        scale: &Scale,
        status: &mut HorizontalPodAutoscalerStatus,
        now: Timestamp,
    ) -> Result<Proposal, (Option<Vec<MetricStatus>>, String)> {
        let selector = scale
            .status
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        let pods = self
            .validate_selector(hpa, key, &selector, status, now)
            .map_err(|e| (None, e))?;
        let spec_replicas = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let status_replicas = scale.status.as_ref().map_or(0, |s| s.replicas);
        let mut statuses = vec![MetricStatus::default(); specs.len()];
        let (mut replicas, mut metric) = (0, String::new());
        let mut invalid = 0;
        let mut first_failure: Option<(MetricFailure, String)> = None;
        for (i, spec) in specs.iter().enumerate() {
            let target = compute::Target {
                hpa,
                spec_replicas,
                status_replicas,
                selector: &selector,
                pods: &pods,
                now,
            };
            match self.compute_replicas_for_metric(&target, spec).await {
                Ok(proposal) => {
                    statuses[i] = proposal.status;
                    if replicas == 0 || proposal.replicas > replicas {
                        replicas = proposal.replicas;
                        metric = proposal.metric;
                    }
                }
                Err(failure) => {
                    if invalid == 0 {
                        first_failure = Some(failure);
                    }
                    invalid += 1;
                }
            }
        }
        let error = first_failure.as_ref().map(|(_, error)| {
            format!(
                "invalid metrics ({invalid} invalid out of {}), first error is: {error}",
                specs.len()
            )
        });
        if invalid >= specs.len() || (invalid > 0 && replicas < spec_replicas) {
            if let Some((failure, _)) = &first_failure {
                set_condition(
                    status,
                    "ScalingActive",
                    false,
                    failure.reason,
                    &failure.message,
                    now,
                );
            }
            return Err((Some(statuses), error.unwrap_or_default()));
        }
        set_condition(
            status,
            "ScalingActive",
            true,
            "ValidMetricFound",
            &format!("the HPA was able to successfully calculate a replica count from {metric}"),
            now,
        );
        Ok(Proposal {
            replicas,
            metric,
            statuses,
            error,
        })
    }

    /// One sync of one HPA (upstream's `reconcileAutoscaler`).
    async fn reconcile_autoscaler(
        &self,
        hpa: &HorizontalPodAutoscaler,
        key: &Key,
    ) -> Result<(), String> {
        let now = (self.now)();
        let mut status = hpa.status.clone().unwrap_or_default();
        let spec = spec_with_defaults(hpa);
        let target = &spec.scale_target_ref;
        let target_ref = format!("{}/{}/{}", target.kind, key.0, target.name);

        let scale_failed = |error: String, status: &mut HorizontalPodAutoscalerStatus| {
            self.event(hpa, EventType::Warning, "FailedGetScale", &error);
            let message =
                format!("the HPA controller was unable to get the target's current scale: {error}");
            set_condition(
                status,
                "AbleToScale",
                false,
                "FailedGetScale",
                &message,
                now,
            );
        };
        let resource = match self.target_resource(target).await {
            Ok(resource) => resource,
            Err(error) => {
                scale_failed(error.clone(), &mut status);
                if let Err(e) = self.update_status_if_needed(hpa, status).await {
                    tracing::info!(%e, "updating hpa status");
                }
                return Err(format!(
                    "unable to determine resource for scale target reference: {error}"
                ));
            }
        };
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.ctx.client.clone(), &key.0, &resource);
        let scale = match api.get_scale(&target.name).await {
            Ok(scale) => scale,
            Err(error) => {
                let error = api_message(&error);
                scale_failed(error.clone(), &mut status);
                if let Err(e) = self.update_status_if_needed(hpa, status).await {
                    tracing::info!(%e, "updating hpa status");
                }
                return Err(format!(
                    "failed to query scale subresource for {target_ref}: {error}"
                ));
            }
        };
        set_condition(
            &mut status,
            "AbleToScale",
            true,
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale",
            now,
        );
        let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        self.history.lock().record_initial(key, current, now);

        let min_replicas = spec.min_replicas.unwrap_or(1);
        let max_replicas = spec.max_replicas;
        let behavior = spec
            .behavior
            .as_ref()
            .map(|b| Behavior::with_defaults(b, self.options.downscale_stabilization));
        let mut desired = 0;
        let mut rescale_reason = String::new();
        let mut rescale = true;
        let mut metric_statuses = None;
        let mut partial_error = None;
        if current == 0 && min_replicas != 0 {
            // Autoscaling is off for a target scaled to zero.
            desired = 0;
            rescale = false;
            set_condition(
                &mut status,
                "ScalingActive",
                false,
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
                now,
            );
        } else if current > max_replicas {
            rescale_reason = "Current number of replicas above Spec.MaxReplicas".into();
            desired = max_replicas;
        } else if current < min_replicas {
            rescale_reason = "Current number of replicas below Spec.MinReplicas".into();
            desired = min_replicas;
        } else {
            let specs = spec.metrics.clone().unwrap_or_default();
            let proposal = match self
                .compute_replicas_for_metrics(hpa, key, &specs, &scale, &mut status, now)
                .await
            {
                Ok(proposal) => proposal,
                Err((statuses, error)) => {
                    let desired = status.desired_replicas;
                    set_status(hpa, &mut status, current, desired, statuses, false, now);
                    if let Err(e) = self.update_status_if_needed(hpa, status).await {
                        tracing::info!(%e, "updating hpa status");
                    }
                    self.event(
                        hpa,
                        EventType::Warning,
                        "FailedComputeMetricsReplicas",
                        &error,
                    );
                    return Err(format!("failed to compute desired number of replicas based on listed metrics for {target_ref}: {error}"));
                }
            };
            partial_error = proposal.error;
            metric_statuses = Some(proposal.statuses);
            let mut rescale_metric = String::new();
            if proposal.replicas > desired {
                desired = proposal.replicas;
                rescale_metric = proposal.metric;
            }
            if desired > current {
                rescale_reason = format!("{rescale_metric} above target");
            }
            if desired < current {
                rescale_reason = "All metrics below target".into();
            }
            let normalized = self.history.lock().normalize(
                key,
                behavior.as_ref(),
                current,
                desired,
                min_replicas,
                max_replicas,
                self.options.downscale_stabilization,
                now,
            );
            let (reason, message) = normalized.able_to_scale;
            set_condition(&mut status, "AbleToScale", true, reason, message, now);
            let (limited, reason, message) = normalized.limited;
            set_condition(&mut status, "ScalingLimited", limited, reason, message, now);
            desired = normalized.desired;
            rescale = desired != current;
        }

        if rescale {
            let mut new_scale = scale.clone();
            new_scale.spec.get_or_insert_with(Default::default).replicas = Some(desired);
            if let Err(error) = api
                .replace_scale(&target.name, &PostParams::default(), &new_scale)
                .await
            {
                let error = api_message(&error);
                self.event(
                    hpa,
                    EventType::Warning,
                    "FailedRescale",
                    &format!("New size: {desired}; reason: {rescale_reason}; error: {error}"),
                );
                set_condition(
                    &mut status,
                    "AbleToScale",
                    false,
                    "FailedUpdateScale",
                    &format!("the HPA controller was unable to update the target scale: {error}"),
                    now,
                );
                let previous_desired = status.desired_replicas;
                set_status(
                    hpa,
                    &mut status,
                    current,
                    previous_desired,
                    metric_statuses,
                    false,
                    now,
                );
                if let Err(e) = self.update_status_if_needed(hpa, status).await {
                    tracing::info!(%e, "updating hpa status");
                }
                return Err(format!("failed to rescale {target_ref}: {error}"));
            }
            set_condition(
                &mut status,
                "AbleToScale",
                true,
                "SucceededRescale",
                &format!("the HPA controller was able to update the target scale to {desired}"),
                now,
            );
            self.event(
                hpa,
                EventType::Normal,
                "SuccessfulRescale",
                &format!("New size: {desired}; reason: {rescale_reason}"),
            );
            self.history
                .lock()
                .store_scale_event(behavior.as_ref(), key, current, desired, now);
            tracing::info!(namespace = %key.0, name = %key.1, current, desired, reason = %rescale_reason, "successfully rescaled");
        } else {
            desired = current;
        }
        set_status(
            hpa,
            &mut status,
            current,
            desired,
            metric_statuses,
            rescale,
            now,
        );
        self.update_status_if_needed(hpa, status).await?;
        partial_error.map_or(Ok(()), Err)
    }
}
