//! The ReplicaSet controller: keeps `spec.replicas` active pods matching the selector.
//!
//! Pods are claimed as upstream's `ClaimPods` does: a pod whose controller reference is this
//! ReplicaSet but whose labels no longer match is released; an orphan that matches is adopted.
//! Creations go out in slow-start batches (1, 2, 4, … so a broken template fails once, not
//! five hundred times) under [`Expectations`], deletions pick the pods upstream would pick
//! ([`rank_for_deletion`]). Decisions are pure functions at the bottom, tested by tables.
//! Each pod is created in a `created pod` journey step under the owner's
//! ([`crate::journey::create_pod`]), so the pod's journey continues the ReplicaSet's.
//!
//! The same controller keeps ReplicationControllers, as upstream's `pkg/controller/replication`
//! does: it is generic over the [`ReplicatedKind`] it watches, and sees every object as a
//! ReplicaSet ([`ReplicatedKind::as_replica_set`]; [`crate::replication`] converts RCs).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use ferry_client::events::{reference, EventType};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::{Metadata as _, NamespaceResourceScope, Resource as _};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt as _};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::claim;
use crate::expectations::Expectations;
use crate::informer::{key_of, Informer, Key};
use crate::journey::create_pod;
use crate::queue::{Queue, Reconciler};
use crate::util::{
    api_code, controller_ref, is_pod_active, is_pod_available, new_controller_ref, pod_ready,
    selector_is_empty, selector_matches,
};
use crate::{Context, Error};

/// At most this many creations or deletions per sync (upstream's `BurstReplicas`).
const BURST_REPLICAS: usize = 500;

/// The kind of object a [`ReplicaSetController`] keeps replicas for: its API type, its informer
/// and how it reads as a ReplicaSet — upstream's `informerAdapter`, `clientsetAdapter` and
/// `podControlAdapter` in one seam. The controller decides on the ReplicaSet view and writes
/// status, owner references and events as the kind itself.
pub trait ReplicatedKind: Send + Sync + 'static {
    /// The API object (its `KIND` and `API_VERSION` go into pods' owner references).
    type Object: k8s_openapi::Resource<Scope = NamespaceResourceScope>
        + k8s_openapi::Metadata<Ty = ObjectMeta>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static;
    /// The controller's name in logs.
    const NAME: &'static str;
    /// The source component of its events (`kubectl describe` shows it under "From").
    const COMPONENT: &'static str;
    /// What a failed status write was doing, in logs.
    const UPDATING_STATUS: &'static str;
    /// The shared informer of the objects.
    fn informer(ctx: &Context) -> &Arc<Informer<Self::Object>>;
    /// The object as a ReplicaSet: borrowed when it is one, converted otherwise.
    fn as_replica_set(object: &Self::Object) -> Cow<'_, ReplicaSet>;
    /// Puts a status computed on the ReplicaSet view onto the object.
    fn set_status(object: &mut Self::Object, status: ReplicaSetStatus);
}

/// ReplicaSets (`apps/v1`): the view is the object itself.
pub struct ReplicaSets;

impl ReplicatedKind for ReplicaSets {
    type Object = ReplicaSet;
    const NAME: &'static str = "replicaset";
    const COMPONENT: &'static str = "replicaset-controller";
    const UPDATING_STATUS: &'static str = "updating replicaset status";

    fn informer(ctx: &Context) -> &Arc<Informer<ReplicaSet>> {
        &ctx.replica_sets
    }

    fn as_replica_set(object: &ReplicaSet) -> Cow<'_, ReplicaSet> {
        Cow::Borrowed(object)
    }

    fn set_status(object: &mut ReplicaSet, status: ReplicaSetStatus) {
        object.status = Some(status);
    }
}

/// The controller of one [`ReplicatedKind`] (ReplicaSets unless named): its queue and
/// expectations.
pub struct ReplicaSetController<K: ReplicatedKind = ReplicaSets> {
    ctx: Arc<Context>,
    queue: Arc<Queue<Key>>,
    expectations: Expectations,
    kind: std::marker::PhantomData<K>,
}

fn owner_key(key: &Key) -> String {
    format!("{}/{}", key.0, key.1)
}

/// `apps` of `apps/v1`, `` of `v1`.
fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

impl<K: ReplicatedKind> Reconciler for ReplicaSetController<K> {
    type Key = Key;
    type Error = ReplicaSetError;
    const NAME: &'static str = K::NAME;

    fn queue(&self) -> &Arc<Queue<Key>> {
        &self.queue
    }

    async fn reconcile(self: Arc<Self>, key: Key) -> Result<Option<Duration>, ReplicaSetError> {
        self.sync(key).await
    }
}

impl<K: ReplicatedKind> ReplicaSetController<K> {
    /// Registers the event handlers; [`crate::queue::run`] starts the workers.
    pub fn new(ctx: Arc<Context>) -> Arc<ReplicaSetController<K>> {
        let controller = Arc::new(ReplicaSetController {
            ctx: ctx.clone(),
            queue: Queue::new(),
            expectations: Expectations::default(),
            kind: std::marker::PhantomData,
        });
        let c = controller.clone();
        K::informer(&ctx).add_handler(move |old, new| match (old, new) {
            (_, Some(rs)) => c.queue.add(key_of(rs.as_ref())),
            (Some(rs), None) => {
                let key = key_of(rs.as_ref());
                c.expectations.delete(&owner_key(&key));
                c.queue.add(key);
            }
            (None, None) => {}
        });
        let c = controller.clone();
        ctx.pods.add_handler(move |old, new| c.on_pod(old, new));
        controller
    }

    /// The owner that `reference` (a pod's controller reference) names, if it exists.
    fn resolve(&self, namespace: &str, reference: &OwnerReference) -> Option<Arc<K::Object>> {
        if reference.kind != K::Object::KIND || group_of(&reference.api_version) != K::Object::GROUP
        {
            return None;
        }
        let rs = K::informer(&self.ctx).get(namespace, &reference.name)?;
        (rs.metadata().uid.as_deref() == Some(reference.uid.as_str())).then_some(rs)
    }

    fn enqueue_matching(&self, pod: &Pod) {
        let namespace = pod.namespace().unwrap_or_default();
        for owner in K::informer(&self.ctx).list_namespace(&namespace) {
            let rs = K::as_replica_set(&owner);
            let selector = rs.spec.as_ref().map(|s| &s.selector);
            if selector.is_some_and(|s| {
                !selector_is_empty(s) && selector_matches(s, pod.metadata.labels.as_ref())
            }) {
                self.queue.add(key_of(owner.as_ref()));
            }
        }
    }

    fn pod_gone(&self, pod: &Pod) {
        let namespace = pod.namespace().unwrap_or_default();
        if let Some(rs) = controller_ref(&pod.metadata).and_then(|r| self.resolve(&namespace, r)) {
            let key = key_of(rs.as_ref());
            self.expectations
                .deletion_observed(&owner_key(&key), &format!("{namespace}/{}", pod.name_any()));
            self.queue.add(key);
        }
    }

    fn on_pod(&self, old: Option<&Arc<Pod>>, new: Option<&Arc<Pod>>) {
        let namespace = new.or(old).and_then(|p| p.namespace()).unwrap_or_default();
        match (old, new) {
            (None, Some(pod)) => {
                if pod.metadata.deletion_timestamp.is_some() {
                    // Seen for the first time already being deleted (after a restart).
                    return self.pod_gone(pod);
                }
                match controller_ref(&pod.metadata) {
                    Some(r) => {
                        if let Some(rs) = self.resolve(&namespace, r) {
                            let key = key_of(rs.as_ref());
                            self.expectations.creation_observed(&owner_key(&key));
                            self.queue.add(key);
                        }
                    }
                    None => self.enqueue_matching(pod),
                }
            }
            (Some(old), Some(new)) => {
                if new.metadata.deletion_timestamp.is_some()
                    && old.metadata.deletion_timestamp.is_none()
                {
                    // A pod being deleted is no longer active: count it gone now, as upstream.
                    self.pod_gone(new);
                    return;
                }
                let old_ref = controller_ref(&old.metadata);
                let new_ref = controller_ref(&new.metadata);
                if old_ref != new_ref {
                    if let Some(rs) = old_ref.and_then(|r| self.resolve(&namespace, r)) {
                        self.queue.add(key_of(rs.as_ref()));
                    }
                }
                match new_ref.and_then(|r| self.resolve(&namespace, r)) {
                    Some(owner) => {
                        let key = key_of(owner.as_ref());
                        let min_ready = K::as_replica_set(&owner)
                            .spec
                            .as_ref()
                            .and_then(|s| s.min_ready_seconds)
                            .unwrap_or(0);
                        if min_ready > 0 && !pod_ready(old).0 && pod_ready(new).0 {
                            // Becomes available later: look again then.
                            self.queue.add_after(
                                key.clone(),
                                Duration::from_secs(u64::try_from(min_ready).unwrap_or(0)),
                            );
                        }
                        self.queue.add(key);
                    }
                    None if new_ref.is_none()
                        && (old.metadata.labels != new.metadata.labels || old_ref.is_some()) =>
                    {
                        self.enqueue_matching(new)
                    }
                    None => {}
                }
            }
            (Some(pod), None) => self.pod_gone(pod),
            (None, None) => {}
        }
    }

    async fn sync(&self, key: Key) -> Result<Option<Duration>, ReplicaSetError> {
        let owner = owner_key(&key);
        let Some(object) = K::informer(&self.ctx).get(&key.0, &key.1) else {
            self.expectations.delete(&owner);
            return Ok(None);
        };
        let rs = K::as_replica_set(&object);
        let needs_sync = self.expectations.satisfied(&owner);
        let spec = rs.spec.clone().unwrap_or_default();
        if !selects_template(&spec) {
            // Upstream's validation refuses such an object; a controller acting on it would
            // create pods it never claims, forever.
            tracing::info!(controller = K::NAME, namespace = %key.0, name = %key.1,
                "selector is empty or does not select the template's labels: not syncing");
            return Ok(None);
        }
        let all: Vec<Arc<Pod>> = self
            .ctx
            .pods
            .list_namespace(&key.0)
            .into_iter()
            .filter(|p| is_pod_active(p))
            .collect();
        let owner = claim::Owner {
            meta: &rs.metadata,
            api_version: K::Object::API_VERSION,
            kind: K::Object::KIND,
            selector: &spec.selector,
        };
        let api: Api<K::Object> = Api::namespaced(self.ctx.client.clone(), &key.0);
        let pods = claim::claim(&self.ctx.client, &owner, all, || async {
            Ok(api
                .get_opt(&key.1)
                .await?
                .map(|mut o| std::mem::take(o.metadata_mut())))
        })
        .await?;

        let manage = if needs_sync && rs.metadata.deletion_timestamp.is_none() {
            self.manage_replicas(&object, &rs, &pods).await
        } else {
            Ok(())
        };
        let now = jiff::Timestamp::now();
        let status = calculate_status(&rs, &pods, manage.as_ref().err(), now);
        self.update_status(&object, &rs, status.clone()).await?;
        manage?;
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        if min_ready > 0 && status.ready_replicas != status.available_replicas {
            return Ok(Some(Duration::from_secs(
                u64::try_from(min_ready).unwrap_or(0),
            )));
        }
        Ok(None)
    }

    /// Creates or deletes pods of `rs` (the view of `object`, which events are about).
    async fn manage_replicas(
        &self,
        object: &K::Object,
        rs: &ReplicaSet,
        pods: &[Arc<Pod>],
    ) -> Result<(), ReplicaSetError> {
        let key = owner_key(&key_of(rs));
        let namespace = rs.namespace().unwrap_or_default();
        let replicas =
            usize::try_from(rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)).unwrap_or(0);
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &namespace);
        let recorder = self.ctx.recorder(K::COMPONENT);
        if pods.len() < replicas {
            let count = (replicas - pods.len()).min(BURST_REPLICAS);
            self.expectations.expect_creations(&key, count as i64);
            let template = rs
                .spec
                .as_ref()
                .and_then(|s| s.template.clone())
                .unwrap_or_default();
            let pod = pod_from_template(&template, &rs.metadata, K::Object::KIND);
            let mut remaining = count;
            let mut first_error = None;
            for batch in slow_start_batches(count) {
                let results = futures::future::join_all(
                    (0..batch).map(|_| create_pod(&api, &pod, &rs.metadata, K::COMPONENT)),
                )
                .await;
                remaining -= batch;
                for result in results {
                    match result {
                        Ok(created) => recorder.event(
                            reference(object),
                            EventType::Normal,
                            "SuccessfulCreate",
                            format!("Created pod: {}", created.name_any()),
                        ),
                        Err(error) => {
                            self.expectations.creation_observed(&key);
                            if !is_namespace_terminating(&error) {
                                recorder.event(
                                    reference(object),
                                    EventType::Warning,
                                    "FailedCreate",
                                    format!("Error creating: {}", api_message(&error)),
                                );
                            }
                            first_error.get_or_insert(error);
                        }
                    }
                }
                if first_error.is_some() {
                    // The rest of the batches are skipped: they will not be observed.
                    for _ in 0..remaining {
                        self.expectations.creation_observed(&key);
                    }
                    break;
                }
            }
            if let Some(error) = first_error {
                return Err(ReplicaSetError::CreateFailed(api_message(&error)));
            }
        } else if pods.len() > replicas {
            let count = (pods.len() - replicas).min(BURST_REPLICAS);
            let victims = pods_to_delete(pods, pods, count);
            self.expectations.expect_deletions(
                &key,
                victims
                    .iter()
                    .map(|p| format!("{namespace}/{}", p.name_any())),
            );
            let params = DeleteParams::default();
            let names: Vec<String> = victims.iter().map(|p| p.name_any()).collect();
            let results =
                futures::future::join_all(names.iter().map(|n| api.delete(n, &params))).await;
            let mut first_error = None;
            for (pod, result) in victims.iter().zip(results) {
                match result {
                    Ok(_) => recorder.event(
                        reference(object),
                        EventType::Normal,
                        "SuccessfulDelete",
                        format!("Deleted pod: {}", pod.name_any()),
                    ),
                    Err(error) => {
                        self.expectations
                            .deletion_observed(&key, &format!("{namespace}/{}", pod.name_any()));
                        if api_code(&error) != Some(404) {
                            recorder.event(
                                reference(object),
                                EventType::Warning,
                                "FailedDelete",
                                format!("Error deleting: {}", api_message(&error)),
                            );
                            first_error.get_or_insert(error);
                        }
                    }
                }
            }
            if let Some(error) = first_error {
                return Err(ReplicaSetError::DeleteFailed(api_message(&error)));
            }
        }
        Ok(())
    }

    /// Writes `status` (computed on `rs`, the view of `object`) unless `rs` has it already.
    async fn update_status(
        &self,
        object: &K::Object,
        rs: &ReplicaSet,
        status: ReplicaSetStatus,
    ) -> Result<(), Error> {
        if rs.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let api: Api<K::Object> =
            Api::namespaced(self.ctx.client.clone(), &rs.namespace().unwrap_or_default());
        let mut updated = object.clone();
        K::set_status(&mut updated, status.clone());
        match api
            .replace_status(&rs.name_any(), &PostParams::default(), &updated)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if api_code(&e) == Some(404) => Ok(()),
            Err(e) if api_code(&e) == Some(409) => {
                // Someone (a scale) moved it: write our status over the fresh copy once.
                let Some(mut fresh) = api.get_opt(&rs.name_any()).await? else {
                    return Ok(());
                };
                K::set_status(&mut fresh, status);
                api.replace_status(&rs.name_any(), &PostParams::default(), &fresh)
                    .await?;
                Ok(())
            }
            Err(e) => Err(Error::api(K::UPDATING_STATUS, e)),
        }
    }
}

/// Whether the selector is set and selects the template's labels — what upstream's validation
/// guarantees of every ReplicaSet and ReplicationController.
pub fn selects_template(spec: &k8s_openapi::api::apps::v1::ReplicaSetSpec) -> bool {
    let labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.as_ref());
    !selector_is_empty(&spec.selector) && selector_matches(&spec.selector, labels)
}

/// Why a ReplicaSet's sync failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaSetError {
    /// An API call failed.
    #[error(transparent)]
    Api(#[from] Error),
    /// Creating pods failed: the API's message, which also goes into the ReplicaFailure
    /// condition (reason FailedCreate).
    #[error("{0}")]
    CreateFailed(String),
    /// Deleting pods failed: the API's message (condition reason FailedDelete).
    #[error("{0}")]
    DeleteFailed(String),
}

/// The API's message of an error (what upstream puts in events), or the error itself.
pub fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

fn is_namespace_terminating(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(s) if s.code == 403 && s.message.contains("is being terminated"))
}

/// A pod for `template`, controlled by `owner` (upstream's `GetPodFromTemplate`): the template's
/// labels, annotations and finalizers, a name generated from the owner's.
pub fn pod_from_template(template: &PodTemplateSpec, owner: &ObjectMeta, kind: &str) -> Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    let api_version = match kind {
        "Job" => "batch/v1",
        "ReplicationController" => "v1",
        _ => "apps/v1",
    };
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", owner.name.as_deref().unwrap_or("pod"))),
            namespace: owner.namespace.clone(),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![new_controller_ref(owner, api_version, kind)]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// Upstream's slow start: batches of 1, 2, 4, … adding up to `count`.
pub fn slow_start_batches(count: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let (mut size, mut left) = (1usize, count);
    while left > 0 {
        let batch = size.min(left);
        batches.push(batch);
        left -= batch;
        size *= 2;
    }
    batches
}

/// The status upstream's `calculateStatus` computes.
pub fn calculate_status(
    rs: &ReplicaSet,
    pods: &[Arc<Pod>],
    manage_error: Option<&ReplicaSetError>,
    now: jiff::Timestamp,
) -> ReplicaSetStatus {
    let spec = rs.spec.clone().unwrap_or_default();
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let count = |f: &dyn Fn(&Pod) -> bool| {
        i32::try_from(pods.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
    };
    let fully_labeled = count(&|p: &Pod| {
        let labels = p.metadata.labels.clone().unwrap_or_default();
        template_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    });
    let mut conditions: Vec<ReplicaSetCondition> = rs
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let failure = manage_error.and_then(|e| match e {
        ReplicaSetError::CreateFailed(message) => Some(("FailedCreate", message.clone())),
        ReplicaSetError::DeleteFailed(message) => Some(("FailedDelete", message.clone())),
        ReplicaSetError::Api(_) => None,
    });
    match failure {
        Some((reason, message)) if !conditions.iter().any(|c| c.type_ == "ReplicaFailure") => {
            conditions.push(ReplicaSetCondition {
                type_: "ReplicaFailure".into(),
                status: "True".into(),
                reason: Some(reason.into()),
                message: Some(message),
                last_transition_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    now,
                )),
            });
        }
        Some(_) => {}
        None if manage_error.is_none() => conditions.retain(|c| c.type_ != "ReplicaFailure"),
        None => {}
    }
    ReplicaSetStatus {
        replicas: i32::try_from(pods.len()).unwrap_or(i32::MAX),
        fully_labeled_replicas: Some(fully_labeled),
        ready_replicas: Some(count(&|p: &Pod| pod_ready(p).0)),
        available_replicas: Some(count(&|p: &Pod| is_pod_available(p, min_ready, now))),
        observed_generation: rs.metadata.generation,
        conditions: (!conditions.is_empty()).then_some(conditions),
        terminating_replicas: None,
    }
}

/// The `count` pods to delete first, ranked as upstream's `ActivePodsWithRanks`; `related` are
/// the pods whose co-location counts (doubled-up pods go first).
pub fn pods_to_delete(pods: &[Arc<Pod>], related: &[Arc<Pod>], count: usize) -> Vec<Arc<Pod>> {
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for pod in related {
        if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            *per_node.entry(node).or_default() += 1;
        }
    }
    let rank = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .map_or(0, |n| per_node.get(n).copied().unwrap_or(0))
    };
    let mut ranked: Vec<(usize, Arc<Pod>)> = pods.iter().map(|p| (rank(p), p.clone())).collect();
    ranked.sort_by(|(ra, a), (rb, b)| rank_for_deletion(a, *ra, b, *rb));
    ranked.into_iter().take(count).map(|(_, p)| p).collect()
}

/// Upstream's ordering of pods to delete: `Less` means `a` goes first.
pub fn rank_for_deletion(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize) -> Ordering {
    let node = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    // 1. Unassigned before assigned.
    if node(a) != node(b) {
        return node(a).cmp(&node(b));
    }
    // 2. Pending before Unknown before Running.
    let phase = |p: &Pod| match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    };
    if phase(a) != phase(b) {
        return phase(a).cmp(&phase(b));
    }
    // 3. Not ready before ready.
    let (ready_a, since_a) = pod_ready(a);
    let (ready_b, since_b) = pod_ready(b);
    if ready_a != ready_b {
        return ready_a.cmp(&ready_b);
    }
    // 4. Lower controller.kubernetes.io/pod-deletion-cost first.
    let cost = |p: &Pod| {
        p.annotations()
            .get("controller.kubernetes.io/pod-deletion-cost")
            .and_then(|c| c.parse::<i32>().ok())
            .unwrap_or(0)
    };
    if cost(a) != cost(b) {
        return cost(a).cmp(&cost(b));
    }
    // 5. More co-located related pods first.
    if rank_a != rank_b {
        return rank_b.cmp(&rank_a);
    }
    // 6. Ready for less time first.
    if ready_a && since_a != since_b {
        return match (since_a, since_b) {
            (Some(x), Some(y)) => y.cmp(&x),
            (None, _) => Ordering::Less,
            (_, None) => Ordering::Greater,
        };
    }
    // 7. More restarts first.
    let restarts = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map_or(0, |c| c.iter().map(|c| c.restart_count).max().unwrap_or(0))
    };
    if restarts(a) != restarts(b) {
        return restarts(b).cmp(&restarts(a));
    }
    // 8. Newer first.
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    created(b).cmp(&created(a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ts(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + secs).expect("timestamp")
    }

    fn pod(
        name: &str,
        node: Option<&str>,
        phase: &str,
        ready_since: Option<i64>,
        created: i64,
    ) -> Arc<Pod> {
        let conditions = ready_since.map(|s| {
            vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(Time(ts(s))),
                ..Default::default()
            }]
        });
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(ts(created))),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(str::to_string),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions,
                ..Default::default()
            }),
        })
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<String> {
        pods.iter().map(|p| p.name_any()).collect()
    }

    #[test]
    fn deletion_ranking_follows_upstream() {
        type Case<'a> = (&'a str, Vec<Arc<Pod>>, usize, Vec<&'a str>);
        let cases: Vec<Case> = vec![
            (
                "unassigned first",
                vec![
                    pod("on-node", Some("n1"), "Running", Some(0), 0),
                    pod("unassigned", None, "Pending", None, 0),
                ],
                1,
                vec!["unassigned"],
            ),
            (
                "pending before running",
                vec![
                    pod("running", Some("n1"), "Running", Some(0), 0),
                    pod("pending", Some("n2"), "Pending", None, 0),
                ],
                1,
                vec!["pending"],
            ),
            (
                "not ready before ready",
                vec![
                    pod("ready", Some("n1"), "Running", Some(0), 0),
                    pod("unready", Some("n2"), "Running", None, 0),
                ],
                1,
                vec!["unready"],
            ),
            (
                "doubled-up node first",
                vec![
                    pod("alone", Some("n1"), "Running", Some(0), 0),
                    pod("pair-a", Some("n2"), "Running", Some(0), 0),
                    pod("pair-b", Some("n2"), "Running", Some(0), 5),
                ],
                1,
                vec!["pair-b"],
            ),
            (
                "ready for less time first",
                vec![
                    pod("old-ready", Some("n1"), "Running", Some(0), 0),
                    pod("new-ready", Some("n2"), "Running", Some(50), 0),
                ],
                1,
                vec!["new-ready"],
            ),
            (
                "newer first",
                vec![
                    pod("older", Some("n1"), "Running", Some(0), 0),
                    pod("newer", Some("n2"), "Running", Some(0), 10),
                ],
                1,
                vec!["newer"],
            ),
        ];
        for (name, pods, count, want) in cases {
            assert_eq!(names(&pods_to_delete(&pods, &pods, count)), want, "{name}");
        }
    }

    #[test]
    fn deletion_cost_annotation_is_honoured() {
        let mut cheap = (*pod("cheap", Some("n1"), "Running", Some(0), 0)).clone();
        cheap.metadata.annotations = Some(
            [(
                "controller.kubernetes.io/pod-deletion-cost".to_string(),
                "-10".to_string(),
            )]
            .into(),
        );
        let pods = vec![
            pod("default", Some("n2"), "Running", Some(0), 10),
            Arc::new(cheap),
        ];
        assert_eq!(names(&pods_to_delete(&pods, &pods, 1)), vec!["cheap"]);
    }

    #[test]
    fn slow_start_doubles() {
        assert_eq!(slow_start_batches(0), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1), vec![1]);
        assert_eq!(slow_start_batches(10), vec![1, 2, 4, 3]);
    }

    #[test]
    fn status_counts_ready_and_available() {
        let mut rs = ReplicaSet::default();
        rs.metadata.generation = Some(3);
        rs.spec = Some(k8s_openapi::api::apps::v1::ReplicaSetSpec {
            min_ready_seconds: Some(10),
            replicas: Some(3),
            ..Default::default()
        });
        let pods = vec![
            pod("a", Some("n"), "Running", Some(0), 0),
            pod("b", Some("n"), "Running", Some(95), 0),
            pod("c", Some("n"), "Pending", None, 0),
        ];
        let status = calculate_status(&rs, &pods, None, ts(100));
        assert_eq!(
            (
                status.replicas,
                status.ready_replicas,
                status.available_replicas
            ),
            (3, Some(2), Some(1))
        );
        assert_eq!(status.observed_generation, Some(3));
        let failed =
            ReplicaSetError::CreateFailed("pods \"x\" is forbidden: exceeded quota".into());
        let status = calculate_status(&rs, &pods, Some(&failed), ts(100));
        let condition = &status.conditions.expect("conditions")[0];
        assert_eq!(
            (condition.type_.as_str(), condition.reason.as_deref()),
            ("ReplicaFailure", Some("FailedCreate"))
        );
    }
}

/// Scenario tests: one reconcile against a mock API server, asserting the exact calls.
#[cfg(test)]
mod scenarios {
    use super::*;
    use crate::testing::{accept_all, client, echo, Call};
    use serde_json::json;

    fn replica_set(replicas: i32) -> ReplicaSet {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web", "namespace": "default", "uid": "rs-uid", "generation": 1, "resourceVersion": "1"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
        }))
        .expect("replicaset")
    }

    fn owned_pod(name: &str, node: Option<&str>, ready: bool) -> Pod {
        let phase = if node.is_some() { "Running" } else { "Pending" };
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("{name}-uid"), "labels": {"app": "web"},
                "creationTimestamp": "2025-01-01T00:00:00Z",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "rs-uid", "controller": true, "blockOwnerDeletion": true}]},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .expect("pod")
    }

    fn controller(client: kube::Client) -> Arc<ReplicaSetController> {
        let ctx = Context::new(client, crate::Options::default());
        ReplicaSetController::new(ctx)
    }

    #[tokio::test]
    async fn too_few_pods_are_created_in_slow_start_batches_then_status() {
        let (client, calls) = client(accept_all);
        let rs = controller(client);
        rs.ctx.replica_sets.seed(vec![replica_set(3)]);
        rs.ctx.pods.seed(vec![]);
        rs.clone()
            .reconcile(("default".into(), "web".into()))
            .await
            .expect("synced");
        let made = calls.without_events();
        let lines: Vec<String> = made.iter().map(Call::line).collect();
        assert_eq!(
            lines,
            [
                "POST /api/v1/namespaces/default/pods?",
                "POST /api/v1/namespaces/default/pods?",
                "POST /api/v1/namespaces/default/pods?",
                "PUT /apis/apps/v1/namespaces/default/replicasets/web/status?",
            ]
        );
        let pod = &made[0].body;
        assert_eq!(pod["metadata"]["generateName"], "web-");
        assert_eq!(pod["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(
            pod["metadata"]["ownerReferences"],
            json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "rs-uid", "controller": true, "blockOwnerDeletion": true}])
        );
        let status = &made[3].body["status"];
        assert_eq!(status["replicas"], 0);
        assert_eq!(status["observedGeneration"], 1);
        // The creations are expected: until the pods are seen, another sync creates nothing.
        rs.clone()
            .reconcile(("default".into(), "web".into()))
            .await
            .expect("synced");
        let again: Vec<String> = calls.without_events()[4..].iter().map(Call::line).collect();
        assert!(again.iter().all(|l| !l.starts_with("POST")), "{again:?}");
        // One SuccessfulCreate event per pod, off the controller's path.
        for _ in 0..50 {
            if calls.events().len() >= 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let events = calls.events();
        assert_eq!(events.len(), 3, "{events:?}");
        assert_eq!(events[0].body["reason"], "SuccessfulCreate");
    }

    #[tokio::test]
    async fn pods_are_created_in_steps_under_the_replica_sets_journey() {
        let capture = ferry_journey::testing::capture();
        let (client, calls) = client(accept_all);
        let rs = controller(client);
        let mut traced = replica_set(2);
        traced.metadata.annotations = Some(
            [(
                ferry_journey::ANNOTATION.to_string(),
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_string(),
            )]
            .into(),
        );
        rs.ctx.replica_sets.seed(vec![traced]);
        rs.ctx.pods.seed(vec![]);
        rs.clone()
            .reconcile(("default".into(), "web".into()))
            .await
            .expect("synced");
        let steps = capture.spans();
        assert_eq!(capture.steps(), ["created pod", "created pod"]);
        for step in &steps {
            assert_eq!(step.trace_id, "0af7651916cd43dd8448eb211c80319c");
            assert_eq!(step.parent_span_id.as_deref(), Some("b7ad6b7169203331"));
            assert_eq!(step.component, "replicaset-controller");
            let object = step.object.as_ref().expect("the created pod");
            assert_eq!(object.key(), "pods/default/web-abcde");
            assert_eq!(object.uid.as_deref(), Some("new-uid"));
        }
        // Each create carries its own step's context: the server's steps and the pod's
        // annotation continue the ReplicaSet's trace.
        let mut sent: Vec<String> = calls
            .without_events()
            .iter()
            .filter(|c| c.line() == "POST /api/v1/namespaces/default/pods?")
            .map(|c| c.traceparent.clone().expect("a traceparent"))
            .collect();
        let mut expected: Vec<String> = steps
            .iter()
            .map(|s| format!("00-{}-{}-01", s.trace_id, s.span_id))
            .collect();
        sent.sort();
        expected.sort();
        assert_eq!(sent, expected);
        // The status write is no step of the journey.
        let status = calls.without_events().pop().expect("status");
        assert_eq!(status.traceparent, None);
    }

    #[tokio::test]
    async fn too_many_pods_lose_the_unscheduled_and_unready_first() {
        let (client, calls) = client(accept_all);
        let rs = controller(client);
        rs.ctx.replica_sets.seed(vec![replica_set(1)]);
        rs.ctx.pods.seed(vec![
            owned_pod("ready", Some("n1"), true),
            owned_pod("unready", Some("n1"), false),
            owned_pod("pending", None, false),
        ]);
        rs.clone()
            .reconcile(("default".into(), "web".into()))
            .await
            .expect("synced");
        let mut lines: Vec<String> = calls.without_events().iter().map(Call::line).collect();
        let status = lines.pop().expect("a status update");
        lines.sort();
        assert_eq!(
            lines,
            [
                "DELETE /api/v1/namespaces/default/pods/pending?",
                "DELETE /api/v1/namespaces/default/pods/unready?",
            ]
        );
        assert_eq!(
            status,
            "PUT /apis/apps/v1/namespaces/default/replicasets/web/status?"
        );
    }

    #[tokio::test]
    async fn a_failed_create_is_a_replica_failure_condition() {
        let (client, calls) = client(|call: &Call| match call.method.as_str() {
            "POST" if call.path.contains("/pods") => (
                403,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
                    "message": "pods \"web-\" is forbidden: exceeded quota"}),
            ),
            "POST" => echo(call, 201),
            _ => echo(call, 200),
        });
        let rs = controller(client);
        rs.ctx.replica_sets.seed(vec![replica_set(3)]);
        rs.ctx.pods.seed(vec![]);
        let result = rs.clone().reconcile(("default".into(), "web".into())).await;
        assert!(
            result.is_err(),
            "a failed create fails the sync (retried with backoff)"
        );
        let lines: Vec<String> = calls.without_events().iter().map(Call::line).collect();
        // Slow start: the first batch of one fails, the rest are not tried.
        assert_eq!(
            lines,
            [
                "POST /api/v1/namespaces/default/pods?",
                "PUT /apis/apps/v1/namespaces/default/replicasets/web/status?",
            ]
        );
        let status = &calls.without_events()[1].body["status"];
        assert_eq!(status["conditions"][0]["type"], "ReplicaFailure");
        assert_eq!(status["conditions"][0]["reason"], "FailedCreate");
        assert_eq!(
            status["conditions"][0]["message"],
            "pods \"web-\" is forbidden: exceeded quota"
        );
    }
}
