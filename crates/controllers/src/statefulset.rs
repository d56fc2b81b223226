//! The StatefulSet controller, as upstream's `pkg/controller/statefulset`: pods with stable
//! names `<set>-<ordinal>` (from `spec.ordinals.start`), each with its hostname, the headless
//! Service as subdomain, and one PersistentVolumeClaim per `volumeClaimTemplates` entry that
//! outlives it (unless `persistentVolumeClaimRetentionPolicy` says otherwise).
//!
//! `OrderedReady` creates pods one at a time in ordinal order, each once the one before is
//! Running and Ready, and removes them in reverse; `Parallel` does all at once. Updates roll
//! from the highest ordinal down to `partition`, one pod (or `maxUnavailable`) at a time, or
//! wait for pods to be deleted (`OnDelete`). History is kept in ControllerRevisions, which
//! `status.currentRevision`/`updateRevision` name and pods carry in `controller-revision-hash`.
//!
//! A pod's name is its identity, so no expectations are needed: creating a pod that exists
//! is refused by the API server. What one sync does is [`plan`], a pure function.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ferry_client::events::{reference, EventType};
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt as _};
use serde_json::json;

use crate::claim;
use crate::history::{self, Created, REVISION_HASH_LABEL};
use crate::informer::{key_of, Key};
use crate::queue::{Queue, Reconciler};
use crate::replicaset::{api_message, pod_from_template};
use crate::util::{
    api_code, controller_ref, is_pod_available, new_controller_ref, pod_ready,
    scaled_int_or_percent, selector_is_empty, selector_matches,
};
use crate::{ApiContext as _, Context, Error};

/// The label naming a StatefulSet pod.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label holding a StatefulSet pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
const COMPONENT: &str = "statefulset-controller";

/// The controller.
pub struct StatefulSetController {
    ctx: Arc<Context>,
    queue: Arc<Queue<Key>>,
}

impl Reconciler for StatefulSetController {
    type Key = Key;
    type Error = Error;
    const NAME: &'static str = "statefulset";

    fn queue(&self) -> &Arc<Queue<Key>> {
        &self.queue
    }

    async fn reconcile(self: Arc<Self>, key: Key) -> Result<Option<Duration>, Error> {
        self.sync(key).await
    }
}

impl StatefulSetController {
    /// Registers the handlers.
    pub fn new(ctx: Arc<Context>) -> Arc<StatefulSetController> {
        let controller = Arc::new(StatefulSetController {
            ctx: ctx.clone(),
            queue: Queue::new(),
        });
        let c = controller.clone();
        ctx.stateful_sets.add_handler(move |old, new| {
            if let Some(set) = new.or(old) {
                c.queue.add(key_of(set.as_ref()));
            }
        });
        let c = controller.clone();
        ctx.pods.add_handler(move |old, new| {
            let Some(pod) = new.or(old) else { return };
            let namespace = pod.namespace().unwrap_or_default();
            match controller_ref(&pod.metadata).filter(|r| r.kind == "StatefulSet") {
                Some(r) => {
                    if let Some(set) = c
                        .ctx
                        .stateful_sets
                        .get(&namespace, &r.name)
                        .filter(|s| s.metadata.uid.as_deref() == Some(r.uid.as_str()))
                    {
                        let key = key_of(set.as_ref());
                        let min_ready = set
                            .spec
                            .as_ref()
                            .and_then(|s| s.min_ready_seconds)
                            .unwrap_or(0);
                        if let (Some(o), Some(n)) = (old, new) {
                            if min_ready > 0 && !pod_ready(o).0 && pod_ready(n).0 {
                                c.queue.add_after(
                                    key.clone(),
                                    Duration::from_secs(u64::try_from(min_ready).unwrap_or(0)),
                                );
                            }
                        }
                        c.queue.add(key);
                    }
                }
                None if new.is_some() && controller_ref(&pod.metadata).is_none() => {
                    for set in c.ctx.stateful_sets.list_namespace(&namespace) {
                        if set.spec.as_ref().is_some_and(|s| {
                            !selector_is_empty(&s.selector)
                                && selector_matches(&s.selector, pod.metadata.labels.as_ref())
                        }) {
                            c.queue.add(key_of(set.as_ref()));
                        }
                    }
                }
                None => {}
            }
        });
        controller
    }

    async fn sync(&self, key: Key) -> Result<Option<Duration>, Error> {
        let Some(set) = self.ctx.stateful_sets.get(&key.0, &key.1) else {
            return Ok(None);
        };
        let spec = set.spec.clone().unwrap_or_default();
        if selector_is_empty(&spec.selector) {
            return Ok(None);
        }
        let api: Api<StatefulSet> = Api::namespaced(self.ctx.client.clone(), &key.0);
        let owner = claim::Owner {
            meta: &set.metadata,
            api_version: "apps/v1",
            kind: "StatefulSet",
            selector: &spec.selector,
        };
        let pods = claim::claim(
            &self.ctx.client,
            &owner,
            self.ctx.pods.list_namespace(&key.0),
            || async { Ok(api.get_opt(&key.1).await?.map(|s| s.metadata)) },
        )
        .await?;
        let (current, update, collisions, old) = self.revisions(&set).await?;
        let now = jiff::Timestamp::now();
        let revisions = Revisions {
            current_name: current.name_any(),
            current_template: revision_template(&current).unwrap_or_else(|| spec.template.clone()),
            update_name: update.name_any(),
            update_template: spec.template.clone(),
        };
        if set.metadata.deletion_timestamp.is_none() {
            let plan = plan(&set, &pods, &revisions, now);
            self.carry_out(&set, plan, &revisions).await?;
        }
        let in_use: HashSet<String> = pods
            .iter()
            .filter_map(|p| p.labels().get(REVISION_HASH_LABEL).cloned())
            .chain([
                revisions.current_name.clone(),
                revisions.update_name.clone(),
            ])
            .collect();
        let limit = usize::try_from(spec.revision_history_limit.unwrap_or(10)).unwrap_or(0);
        let old: Vec<Arc<ControllerRevision>> = old
            .into_iter()
            .filter(|r| r.name_any() != revisions.current_name)
            .collect();
        history::truncate(&self.ctx.client, &old, &in_use, limit).await?;

        let status = calculate_status(&set, &pods, &revisions, collisions, now);
        if set.status.as_ref() != Some(&status) {
            let mut updated = (*set).clone();
            updated.status = Some(status.clone());
            match api
                .replace_status(&key.1, &PostParams::default(), &updated)
                .await
            {
                Ok(_) => {}
                Err(e) if matches!(api_code(&e), Some(404 | 409)) => {}
                Err(e) => return Err(e).context("updating statefulset status"),
            }
        }
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        if min_ready > 0 && status.available_replicas != status.ready_replicas {
            return Ok(Some(Duration::from_secs(
                u64::try_from(min_ready).unwrap_or(0),
            )));
        }
        Ok(None)
    }

    /// The current and update revisions, the collision count and every controlled revision
    /// (upstream's `getStatefulSetRevisions`): the update revision is created, or an equal
    /// older one renumbered as the newest (a rollback).
    async fn revisions(
        &self,
        set: &StatefulSet,
    ) -> Result<
        (
            ControllerRevision,
            ControllerRevision,
            Option<i32>,
            Vec<Arc<ControllerRevision>>,
        ),
        Error,
    > {
        let spec = set.spec.clone().unwrap_or_default();
        let owner = claim::Owner {
            meta: &set.metadata,
            api_version: "apps/v1",
            kind: "StatefulSet",
            selector: &spec.selector,
        };
        let revisions = history::controlled(&self.ctx, &owner).await?;
        let template = set
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let patch = history::template_patch(&template);
        let next = revisions.last().map_or(0, |r| r.revision) + 1;
        let mut collisions = set.status.as_ref().and_then(|s| s.collision_count);
        let equal: Vec<&Arc<ControllerRevision>> = revisions
            .iter()
            .filter(|r| history::holds(r, &patch))
            .collect();
        let update = match (equal.last(), revisions.last()) {
            (Some(eq), Some(last)) if eq.name_any() == last.name_any() => (***eq).clone(),
            (Some(eq), _) => history::renumber(&self.ctx.client, eq, next).await?,
            (None, _) => {
                let mut attempts = 0;
                loop {
                    let hash = history::data_hash(&patch, collisions);
                    let revision = history::new_revision(
                        &set.metadata,
                        "StatefulSet",
                        &template,
                        patch.clone(),
                        next,
                        &hash,
                    );
                    match history::create(&self.ctx.client, revision).await? {
                        Created::Revision(r) => break *r,
                        Created::Collision if attempts < 5 => {
                            attempts += 1;
                            collisions = Some(collisions.unwrap_or(0) + 1);
                        }
                        Created::Collision => {
                            return Err(Error::api(
                                "creating a controller revision",
                                kube::Error::Service("too many revision hash collisions".into()),
                            ))
                        }
                    }
                }
            }
        };
        let current_name = set
            .status
            .as_ref()
            .and_then(|s| s.current_revision.clone())
            .unwrap_or_default();
        let current = revisions
            .iter()
            .find(|r| r.name_any() == current_name)
            .map(|r| (**r).clone())
            .unwrap_or_else(|| update.clone());
        Ok((current, update, collisions, revisions))
    }

    async fn carry_out(
        &self,
        set: &StatefulSet,
        plan: Plan,
        revisions: &Revisions,
    ) -> Result<(), Error> {
        let namespace = set.namespace().unwrap_or_default();
        let set_name = set.name_any();
        let pods: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &namespace);
        let recorder = self.ctx.recorder(COMPONENT);
        for (ordinal, revision) in plan.create {
            let (template, revision_name) = match revision {
                Revision::Current => (&revisions.current_template, &revisions.current_name),
                Revision::Update => (&revisions.update_template, &revisions.update_name),
            };
            let pod = stateful_pod(set, template, ordinal, revision_name);
            self.create_claims(set, &pod, true, true).await?;
            match crate::journey::create_pod(&pods, &pod, &set.metadata, COMPONENT).await {
                Ok(_) => recorder.event(
                    reference(set),
                    EventType::Normal,
                    "SuccessfulCreate",
                    format!(
                        "create Pod {} in StatefulSet {set_name} successful",
                        pod.name_any()
                    ),
                ),
                Err(e) if api_code(&e) == Some(409) => {}
                Err(e) => {
                    recorder.event(
                        reference(set),
                        EventType::Warning,
                        "FailedCreate",
                        format!(
                            "create Pod {} in StatefulSet {set_name} failed error: {}",
                            pod.name_any(),
                            api_message(&e)
                        ),
                    );
                    return Err(e).context("creating a statefulset pod");
                }
            }
        }
        for name in plan.keep_claims {
            if let Some(existing) = self.ctx.pods.get(&namespace, &name) {
                let pending = matches!(
                    existing.status.as_ref().and_then(|s| s.phase.as_deref()),
                    None | Some("Pending")
                );
                self.create_claims(set, &existing, true, pending).await?;
            }
        }
        for pod in plan.condemn_claims {
            if let Some(existing) = self.ctx.pods.get(&namespace, &pod) {
                self.create_claims(set, &existing, false, false).await?;
            }
        }
        for name in plan.delete {
            match pods.delete(&name, &DeleteParams::default()).await {
                Ok(_) => recorder.event(
                    reference(set),
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!("delete Pod {name} in StatefulSet {set_name} successful"),
                ),
                Err(e) if api_code(&e) == Some(404) => {}
                Err(e) => {
                    recorder.event(
                        reference(set),
                        EventType::Warning,
                        "FailedDelete",
                        format!(
                            "delete Pod {name} in StatefulSet {set_name} failed error: {}",
                            api_message(&e)
                        ),
                    );
                    return Err(e).context("deleting a statefulset pod");
                }
            }
        }
        Ok(())
    }

    /// Creates the pod's missing claims and keeps their owner references as the retention
    /// policy says; `in_range` is false for a pod being scaled away.
    /// `starting`: the pod is about to be created or has not started, so a claim still being
    /// deleted must not be used (upstream refuses and retries).
    async fn create_claims(
        &self,
        set: &StatefulSet,
        pod: &Pod,
        in_range: bool,
        starting: bool,
    ) -> Result<(), Error> {
        let namespace = set.namespace().unwrap_or_default();
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.ctx.client.clone(), &namespace);
        let recorder = self.ctx.recorder(COMPONENT);
        for mut claim in claims_for(set, pod) {
            let name = claim.name_any();
            let existing = self.ctx.persistent_volume_claims.get(&namespace, &name);
            let refs = claim_owner_refs(
                set,
                pod,
                existing
                    .as_ref()
                    .map(|c| c.owner_references())
                    .unwrap_or_default(),
                in_range,
            );
            if starting
                && existing
                    .as_ref()
                    .is_some_and(|c| c.metadata.deletion_timestamp.is_some())
            {
                return Err(Error::Waiting(format!(
                    "pvc {name} of pod {} is being deleted",
                    pod.name_any()
                )));
            }
            match existing {
                None => {
                    claim.metadata.owner_references = (!refs.is_empty()).then_some(refs);
                    match api.create(&PostParams::default(), &claim).await {
                        Ok(_) => recorder.event(
                            reference(set),
                            EventType::Normal,
                            "SuccessfulCreate",
                            format!(
                                "create Claim {name} Pod {} in StatefulSet {} success",
                                pod.name_any(),
                                set.name_any()
                            ),
                        ),
                        Err(e) if api_code(&e) == Some(409) => {}
                        Err(e) => {
                            recorder.event(
                                reference(set),
                                EventType::Warning,
                                "FailedCreate",
                                format!(
                                    "create Claim {name} for Pod {} in StatefulSet {} failed error: {}",
                                    pod.name_any(),
                                    set.name_any(),
                                    api_message(&e)
                                ),
                            );
                            return Err(e).context("creating a statefulset claim");
                        }
                    }
                }
                Some(existing) if existing.owner_references() != refs.as_slice() => {
                    let patch = json!({"metadata": {"ownerReferences": refs, "uid": existing.metadata.uid}});
                    match api
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if matches!(api_code(&e), Some(404 | 409)) => {}
                        Err(e) => return Err(e).context("updating a claim's owners"),
                    }
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// The template a revision holds (its patch without the directive).
fn revision_template(revision: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut template = revision.data.as_ref()?.0.pointer("/spec/template")?.clone();
    template.as_object_mut()?.remove("$patch");
    serde_json::from_value(template).ok()
}

/// The current and update revisions' names and templates.
pub struct Revisions {
    /// `status.currentRevision`.
    pub current_name: String,
    /// Its pod template.
    pub current_template: PodTemplateSpec,
    /// `status.updateRevision`.
    pub update_name: String,
    /// Its pod template (the set's).
    pub update_template: PodTemplateSpec,
}

/// Which revision a new pod gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revision {
    /// The current one (ordinals below the partition).
    Current,
    /// The update one.
    Update,
}

/// What one sync does.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Pods to create: ordinal and revision.
    pub create: Vec<(i32, Revision)>,
    /// Pods to delete, by name.
    pub delete: Vec<String>,
    /// Pods being scaled away whose claims' owners may change first.
    pub condemn_claims: Vec<String>,
    /// Pods in range whose claims are made if missing and whose owners are kept as the
    /// retention policy says (upstream's `createMissingPersistentVolumeClaims` and
    /// `updateClaimOwnerRefForSetAndPod`).
    pub keep_claims: Vec<String>,
}

/// `<set>-<ordinal>` → the ordinal, for pods of this set.
pub fn ordinal_of(set_name: &str, pod: &str) -> Option<i32> {
    let rest = pod.strip_prefix(set_name)?.strip_prefix('-')?;
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn is_running_and_ready(pod: &Pod) -> bool {
    phase(pod) == Some("Running") && pod_ready(pod).0
}

fn is_healthy(pod: &Pod) -> bool {
    is_running_and_ready(pod) && !is_terminating(pod)
}

fn revision_of(pod: &Pod) -> Option<&str> {
    pod.labels().get(REVISION_HASH_LABEL).map(String::as_str)
}

/// Upstream's `updateStatefulSet`, decided: first create or recreate the pods of ordinals in
/// range (in order and one at a time when OrderedReady), then remove the ones out of range
/// (highest first), then roll the update from the top down to the partition.
pub fn plan(
    set: &StatefulSet,
    pods: &[Arc<Pod>],
    revisions: &Revisions,
    now: jiff::Timestamp,
) -> Plan {
    let spec = set.spec.clone().unwrap_or_default();
    let name = set.name_any();
    let start = spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0);
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let parallel = spec.pod_management_policy.as_deref() == Some("Parallel");
    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate");
    let rolling_update = spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.rolling_update.as_ref());
    let partition = rolling_update.and_then(|r| r.partition).unwrap_or(0).max(0);
    let min_ready = spec.min_ready_seconds.unwrap_or(0);

    let mut in_range: BTreeMap<i32, &Arc<Pod>> = BTreeMap::new();
    let mut condemned: Vec<(i32, &Arc<Pod>)> = Vec::new();
    for pod in pods {
        let Some(ordinal) = ordinal_of(&name, &pod.name_any()) else {
            continue;
        };
        if (start..start.saturating_add(replicas)).contains(&ordinal) {
            in_range.insert(ordinal, pod);
        } else {
            condemned.push((ordinal, pod));
        }
    }
    condemned.sort_by_key(|c| std::cmp::Reverse(c.0));
    let mut plan = Plan::default();
    if spec
        .volume_claim_templates
        .as_ref()
        .is_some_and(|t| !t.is_empty())
    {
        plan.keep_claims = in_range
            .values()
            .filter(|p| !is_terminating(p))
            .map(|p| p.name_any())
            .collect();
    }

    for index in 0..replicas {
        let ordinal = start.saturating_add(index);
        let Some(pod) = in_range.get(&ordinal) else {
            let revision = if rolling && index < partition {
                Revision::Current
            } else {
                Revision::Update
            };
            plan.create.push((ordinal, revision));
            if !parallel {
                return plan;
            }
            continue;
        };
        if matches!(phase(pod), Some("Failed" | "Succeeded")) && !is_terminating(pod) {
            // Recreated once it is gone.
            plan.delete.push(pod.name_any());
            if !parallel {
                return plan;
            }
            continue;
        }
        if !parallel && (!is_running_and_ready(pod) || is_terminating(pod)) {
            return plan;
        }
        if !parallel && !is_pod_available(pod, min_ready, now) {
            return plan;
        }
    }

    let first_unhealthy = in_range
        .values()
        .chain(condemned.iter().map(|(_, p)| p))
        .find(|p| !is_healthy(p))
        .map(|p| p.name_any());
    for (_, pod) in &condemned {
        if is_terminating(pod) {
            if !parallel {
                return plan;
            }
            continue;
        }
        if !parallel
            && !is_running_and_ready(pod)
            && first_unhealthy.as_deref() != Some(pod.name_any().as_str())
        {
            return plan;
        }
        plan.condemn_claims.push(pod.name_any());
        plan.delete.push(pod.name_any());
        if !parallel {
            return plan;
        }
    }

    if !rolling {
        return plan;
    }
    let max_unavailable = rolling_update
        .and_then(|r| r.max_unavailable.as_ref())
        .map_or(1, |v| scaled_int_or_percent(v, replicas, false).max(1));
    let outdated = |pod: &Pod| {
        revision_of(pod) != Some(revisions.update_name.as_str()) && !is_terminating(pod)
    };
    if max_unavailable == 1 {
        // One at a time, each once the pods above it are healthy again.
        for index in (partition..replicas).rev() {
            let Some(pod) = in_range.get(&start.saturating_add(index)) else {
                continue;
            };
            if outdated(pod) {
                plan.delete.push(pod.name_any());
                return plan;
            }
            if !is_healthy(pod) {
                return plan;
            }
        }
        return plan;
    }
    // `maxUnavailable`: as many as the pods already unavailable leave room for.
    let unavailable = in_range.values().filter(|p| !is_healthy(p)).count() as i32;
    let room = (max_unavailable - unavailable).max(0) as usize;
    plan.delete.extend(
        (partition..replicas)
            .rev()
            .filter_map(|index| in_range.get(&start.saturating_add(index)))
            .filter(|pod| outdated(pod))
            .take(room)
            .map(|pod| pod.name_any()),
    );
    plan
}

/// The pod of `ordinal` at `revision` (upstream's `newVersionedStatefulSetPod`): its name,
/// hostname, subdomain, identity labels, claims as volumes and revision label.
pub fn stateful_pod(
    set: &StatefulSet,
    template: &PodTemplateSpec,
    ordinal: i32,
    revision: &str,
) -> Pod {
    let name = format!("{}-{ordinal}", set.name_any());
    let mut pod = pod_from_template(template, &set.metadata, "StatefulSet");
    pod.metadata.generate_name = None;
    pod.metadata.name = Some(name.clone());
    let labels = pod.metadata.labels.get_or_insert_with(Default::default);
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(REVISION_HASH_LABEL.into(), revision.into());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.hostname = Some(name.clone());
    spec.subdomain = set
        .spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .filter(|s| !s.is_empty());
    let templates = set
        .spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.clone())
        .unwrap_or_default();
    if !templates.is_empty() {
        let volumes = spec.volumes.get_or_insert_with(Vec::new);
        for claim in &templates {
            let volume_name = claim.metadata.name.clone().unwrap_or_default();
            volumes.retain(|v| v.name != volume_name);
            volumes.push(Volume {
                name: volume_name.clone(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: format!("{volume_name}-{name}"),
                    read_only: None,
                }),
                ..Default::default()
            });
        }
    }
    pod
}

/// The claims of `pod` (upstream's `getPersistentVolumeClaims`): `<template>-<pod>`, labelled
/// with the set's selector labels.
pub fn claims_for(set: &StatefulSet, pod: &Pod) -> Vec<PersistentVolumeClaim> {
    let Some(spec) = set.spec.as_ref() else {
        return Vec::new();
    };
    let selector_labels = spec.selector.match_labels.clone().unwrap_or_default();
    spec.volume_claim_templates
        .iter()
        .flatten()
        .map(|template| {
            let mut claim = template.clone();
            let template_name = template.metadata.name.clone().unwrap_or_default();
            let mut labels = template.metadata.labels.clone().unwrap_or_default();
            labels.extend(selector_labels.clone());
            claim.metadata = ObjectMeta {
                name: Some(format!("{template_name}-{}", pod.name_any())),
                namespace: set.namespace(),
                labels: Some(labels),
                annotations: template.metadata.annotations.clone(),
                ..Default::default()
            };
            claim.status = None;
            claim
        })
        .collect()
}

/// A claim's owner references under the retention policy (upstream's
/// `updateClaimOwnerRefForSetAndPod`): the set owns it when `whenDeleted: Delete`, the pod
/// when `whenScaled: Delete` and the pod is being scaled away; other owners are kept.
pub fn claim_owner_refs(
    set: &StatefulSet,
    pod: &Pod,
    existing: &[OwnerReference],
    in_range: bool,
) -> Vec<OwnerReference> {
    let policy = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    let when_deleted = policy.and_then(|p| p.when_deleted.as_deref()) == Some("Delete");
    let when_scaled = policy.and_then(|p| p.when_scaled.as_deref()) == Some("Delete");
    let set_uid = set.metadata.uid.clone().unwrap_or_default();
    let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
    let mut refs: Vec<OwnerReference> = existing
        .iter()
        .filter(|r| r.uid != set_uid && (pod_uid.is_empty() || r.uid != pod_uid))
        .cloned()
        .collect();
    let owner_ref = |meta: &ObjectMeta, api_version: &str, kind: &str| OwnerReference {
        controller: None,
        ..new_controller_ref(meta, api_version, kind)
    };
    if when_deleted {
        refs.push(owner_ref(&set.metadata, "apps/v1", "StatefulSet"));
    }
    if when_scaled && !in_range && !pod_uid.is_empty() {
        refs.push(owner_ref(&pod.metadata, "v1", "Pod"));
    }
    refs
}

/// The status upstream computes from the pods seen (`computeReplicaStatus` and
/// `completeRollingUpdate`).
pub fn calculate_status(
    set: &StatefulSet,
    pods: &[Arc<Pod>],
    revisions: &Revisions,
    collisions: Option<i32>,
    now: jiff::Timestamp,
) -> StatefulSetStatus {
    let spec = set.spec.clone().unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let name = set.name_any();
    let mut status = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        collision_count: collisions,
        conditions: set.status.as_ref().and_then(|s| s.conditions.clone()),
        current_revision: Some(revisions.current_name.clone()),
        update_revision: Some(revisions.update_name.clone()),
        ..Default::default()
    };
    let (mut ready, mut available, mut current, mut updated) = (0, 0, 0, 0);
    for pod in pods
        .iter()
        .filter(|p| ordinal_of(&name, &p.name_any()).is_some())
    {
        let created = phase(pod).is_some_and(|p| !p.is_empty());
        if created {
            status.replicas += 1;
        }
        if is_running_and_ready(pod) {
            ready += 1;
            if is_pod_available(pod, min_ready, now) {
                available += 1;
            }
        }
        if created && !is_terminating(pod) {
            if revision_of(pod) == Some(revisions.current_name.as_str()) {
                current += 1;
            }
            if revision_of(pod) == Some(revisions.update_name.as_str()) {
                updated += 1;
            }
        }
    }
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    status.current_replicas = Some(current);
    status.updated_replicas = Some(updated);
    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate");
    if rolling && updated == status.replicas && ready == status.replicas {
        status.current_replicas = Some(updated);
        status.current_revision = status.update_revision.clone();
    }
    status
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn set(extra_spec: serde_json::Value) -> StatefulSet {
        let mut value = json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "set-uid", "generation": 1},
            "spec": {
                "replicas": 3,
                "serviceName": "web",
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "c", "image": "web:1"}]}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
            }
        });
        if let Some(extra) = extra_spec.as_object() {
            for (k, v) in extra {
                value["spec"][k] = v.clone();
            }
        }
        serde_json::from_value(value).unwrap()
    }

    fn revisions(current: &str, update: &str) -> Revisions {
        Revisions {
            current_name: current.into(),
            current_template: PodTemplateSpec::default(),
            update_name: update.into(),
            update_template: PodTemplateSpec::default(),
        }
    }

    fn pod(name: &str, revision: &str, phase: &str, ready: bool) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                labels: Some([(REVISION_HASH_LABEL.to_string(), revision.to_string())].into()),
                ..Default::default()
            },
            spec: None,
            status: Some(
                serde_json::from_value(json!({
                    "phase": phase,
                    "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]
                }))
                .unwrap(),
            ),
        })
    }

    fn terminating(pod: Arc<Pod>) -> Arc<Pod> {
        let mut pod = (*pod).clone();
        pod.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
        Arc::new(pod)
    }

    fn now() -> jiff::Timestamp {
        jiff::Timestamp::now()
    }

    #[test]
    fn ordinals_come_from_names() {
        assert_eq!(ordinal_of("web", "web-0"), Some(0));
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        assert_eq!(ordinal_of("web", "web-x"), None);
        assert_eq!(ordinal_of("web", "webby-1"), None);
        assert_eq!(ordinal_of("web", "web-"), None);
    }

    #[test]
    fn ordered_ready_creates_one_at_a_time() {
        let s = set(json!({}));
        let r = revisions("r1", "r1");
        assert_eq!(plan(&s, &[], &r, now()).create, vec![(0, Revision::Update)]);
        // web-0 not ready yet: wait.
        let pods = [pod("web-0", "r1", "Pending", false)];
        assert_eq!(plan(&s, &pods, &r, now()), Plan::default());
        let pods = [pod("web-0", "r1", "Running", true)];
        assert_eq!(
            plan(&s, &pods, &r, now()).create,
            vec![(1, Revision::Update)]
        );
        // Parallel: all at once.
        let p = set(json!({"podManagementPolicy": "Parallel"}));
        assert_eq!(plan(&p, &[], &r, now()).create.len(), 3);
        // ordinals.start
        let offset = set(json!({"ordinals": {"start": 5}, "replicas": 1}));
        assert_eq!(
            plan(&offset, &[], &r, now()).create,
            vec![(5, Revision::Update)]
        );
    }

    #[test]
    fn failed_pods_are_deleted_to_be_recreated() {
        let s = set(json!({"replicas": 1}));
        let pods = [pod("web-0", "r1", "Failed", false)];
        assert_eq!(
            plan(&s, &pods, &revisions("r1", "r1"), now()).delete,
            vec!["web-0"]
        );
    }

    #[test]
    fn scale_down_goes_from_the_top_one_at_a_time() {
        let s = set(json!({"replicas": 1}));
        let r = revisions("r1", "r1");
        let pods = [
            pod("web-0", "r1", "Running", true),
            pod("web-1", "r1", "Running", true),
            pod("web-2", "r1", "Running", true),
        ];
        let p = plan(&s, &pods, &r, now());
        assert_eq!(p.delete, vec!["web-2"]);
        assert_eq!(p.condemn_claims, vec!["web-2"]);
        // While web-2 terminates, web-1 waits.
        let pods = [
            pod("web-0", "r1", "Running", true),
            pod("web-1", "r1", "Running", true),
            terminating(pod("web-2", "r1", "Running", true)),
        ];
        assert!(plan(&s, &pods, &r, now()).delete.is_empty());
    }

    #[test]
    fn rolling_update_goes_down_to_the_partition() {
        let r = revisions("r1", "r2");
        let pods = [
            pod("web-0", "r1", "Running", true),
            pod("web-1", "r1", "Running", true),
            pod("web-2", "r1", "Running", true),
        ];
        assert_eq!(
            plan(&set(json!({})), &pods, &r, now()).delete,
            vec!["web-2"]
        );
        // The updated pod is not ready yet: wait.
        let pods = [
            pod("web-0", "r1", "Running", true),
            pod("web-1", "r1", "Running", true),
            pod("web-2", "r2", "Running", false),
        ];
        assert!(plan(&set(json!({})), &pods, &r, now()).delete.is_empty());
        let pods = [
            pod("web-0", "r1", "Running", true),
            pod("web-1", "r1", "Running", true),
            pod("web-2", "r2", "Running", true),
        ];
        assert_eq!(
            plan(&set(json!({})), &pods, &r, now()).delete,
            vec!["web-1"]
        );
        // Partition 2: web-1 and web-0 stay at r1; a missing web-0 is recreated at r1.
        let partitioned = set(
            json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}}),
        );
        assert!(plan(&partitioned, &pods, &r, now()).delete.is_empty());
        assert_eq!(
            plan(&partitioned, &pods[1..], &r, now()).create,
            vec![(0, Revision::Current)]
        );
        // OnDelete: nothing is deleted.
        let on_delete = set(json!({"updateStrategy": {"type": "OnDelete"}}));
        let old = [
            pod("web-0", "r1", "Running", true),
            pod("web-1", "r1", "Running", true),
            pod("web-2", "r1", "Running", true),
        ];
        assert!(plan(&on_delete, &old, &r, now()).delete.is_empty());
        // maxUnavailable 2: two at once.
        let wide = set(
            json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}}),
        );
        assert_eq!(plan(&wide, &old, &r, now()).delete, vec!["web-2", "web-1"]);
    }

    #[test]
    fn pods_get_identity_and_claims() {
        let s = set(
            json!({"volumeClaimTemplates": [{"metadata": {"name": "www"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}],
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Delete"}}),
        );
        let template = s.spec.as_ref().unwrap().template.clone();
        let p = stateful_pod(&s, &template, 2, "web-abc");
        assert_eq!(p.name_any(), "web-2");
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("web-2"));
        assert_eq!(spec.subdomain.as_deref(), Some("web"));
        assert_eq!(p.labels()[POD_NAME_LABEL], "web-2");
        assert_eq!(p.labels()[POD_INDEX_LABEL], "2");
        assert_eq!(p.labels()[REVISION_HASH_LABEL], "web-abc");
        let volume = &spec.volumes.as_ref().unwrap()[0];
        assert_eq!(
            volume.persistent_volume_claim.as_ref().unwrap().claim_name,
            "www-web-2"
        );
        let claims = claims_for(&s, &p);
        assert_eq!(claims[0].name_any(), "www-web-2");
        assert_eq!(claims[0].labels()["app"], "web");
        let mut live = p.clone();
        live.metadata.uid = Some("pod-uid".into());
        let refs = claim_owner_refs(&s, &live, &[], true);
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].kind, "StatefulSet");
        let refs = claim_owner_refs(&s, &live, &refs, false);
        assert_eq!(
            refs.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>(),
            vec!["StatefulSet", "Pod"]
        );
        let retain = set(json!({}));
        assert!(claim_owner_refs(&retain, &live, &refs, true).is_empty());
    }

    #[test]
    fn the_rollout_completes_when_every_pod_is_updated_and_ready() {
        let s = set(json!({"replicas": 2}));
        let r = revisions("r1", "r2");
        let pods = [
            pod("web-0", "r2", "Running", true),
            pod("web-1", "r1", "Running", true),
        ];
        let status = calculate_status(&s, &pods, &r, None, now());
        assert_eq!(status.replicas, 2);
        assert_eq!(status.current_replicas, Some(1));
        assert_eq!(status.updated_replicas, Some(1));
        assert_eq!(status.current_revision.as_deref(), Some("r1"));
        let pods = [
            pod("web-0", "r2", "Running", true),
            pod("web-1", "r2", "Running", true),
        ];
        let status = calculate_status(&s, &pods, &r, None, now());
        assert_eq!(status.current_revision.as_deref(), Some("r2"));
        assert_eq!(status.current_replicas, Some(2));
        assert_eq!(status.ready_replicas, Some(2));
        assert_eq!(status.available_replicas, Some(2));
    }
}
