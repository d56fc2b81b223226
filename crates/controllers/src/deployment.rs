//! The Deployment controller: rolls a Deployment's pod template out through ReplicaSets, as
//! upstream's `pkg/controller/deployment`.
//!
//! Each template gets a ReplicaSet named `<deployment>-<pod-template-hash>`, labelled and
//! selected by that hash; `deployment.kubernetes.io/revision` numbers them so `kubectl rollout
//! history/undo` can find old ones. A sync claims the Deployment's ReplicaSets, then either
//! scales proportionally (a scaling event or a paused Deployment), or rolls out: RollingUpdate
//! grows the new ReplicaSet within `maxSurge` and shrinks old ones within `maxUnavailable`;
//! Recreate scales old ones to zero, waits for their pods to be gone, then scales the new one
//! up. Status and the Available/Progressing conditions follow upstream's rules, including
//! ProgressDeadlineExceeded. The arithmetic is pure functions at the bottom, tested by tables.
//!
//! Creating a ReplicaSet and scaling one up are journey steps (`created replicaset`, `scaled
//! replicaset`) under the Deployment's, so the ReplicaSet's pods continue its journey.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ferry_client::events::{reference, EventType};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt as _};
use serde_json::json;
use tracing::Instrument as _;

use crate::informer::{key_of, Key};
use crate::queue::{Queue, Reconciler};
use crate::util::{
    api_code, controller_ref, new_controller_ref, selector_is_empty, selector_matches,
};
use crate::{ApiContext as _, Context, Error};

/// The source of the controller's events and its journey steps.
const COMPONENT: &str = "deployment-controller";

/// The label that ties a ReplicaSet and its pods to one pod template.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// The revision of a ReplicaSet (and of the Deployment: its newest).
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions a ReplicaSet had before it was brought back by an undo.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// `spec.replicas` of the Deployment when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// `spec.replicas + maxSurge` of the Deployment when the ReplicaSet was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

/// The Deployment's annotations its ReplicaSets do not get. The journey's is the
/// Deployment's own: a ReplicaSet gets one from the request that creates or scales it.
const SKIPPED_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    ferry_journey::ANNOTATION,
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// Why a Deployment's sync failed.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    /// An API call failed.
    #[error(transparent)]
    Api(#[from] Error),
    /// Scaling a ReplicaSet (writing its `spec.replicas` and annotations) failed.
    #[error("scaling replicaset {name}")]
    Scale {
        /// The ReplicaSet.
        name: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// A ReplicaSet of another template (or not ours) has the new one's name: `collisionCount`
    /// was raised so the next sync hashes to another name.
    #[error("hash collision for replicaset {name}: collisionCount raised")]
    HashCollision {
        /// The name both would have.
        name: String,
    },
    /// No ReplicaSet matches the template after one was asked to be created.
    #[error("no new replicaset")]
    NoNewReplicaSet,
}

/// The controller and its queue.
pub struct DeploymentController {
    ctx: Arc<Context>,
    queue: Arc<Queue<Key>>,
}

impl Reconciler for DeploymentController {
    type Key = Key;
    type Error = DeploymentError;
    const NAME: &'static str = "deployment";

    fn queue(&self) -> &Arc<Queue<Key>> {
        &self.queue
    }

    async fn reconcile(self: Arc<Self>, key: Key) -> Result<Option<Duration>, DeploymentError> {
        self.sync(key).await
    }
}

impl DeploymentController {
    /// Registers the handlers.
    pub fn new(ctx: Arc<Context>) -> Arc<DeploymentController> {
        let controller = Arc::new(DeploymentController {
            ctx: ctx.clone(),
            queue: Queue::new(),
        });
        let c = controller.clone();
        ctx.deployments.add_handler(move |old, new| {
            if let Some(d) = new.or(old) {
                c.queue.add(key_of(d.as_ref()));
            }
        });
        let c = controller.clone();
        ctx.replica_sets.add_handler(move |old, new| {
            let namespace = new.or(old).and_then(|r| r.namespace()).unwrap_or_default();
            let old_ref = old.and_then(|r| controller_ref(&r.metadata)).cloned();
            let new_ref = new.and_then(|r| controller_ref(&r.metadata)).cloned();
            for r in [&old_ref, &new_ref].into_iter().flatten() {
                if let Some(d) = c.resolve(&namespace, r) {
                    c.queue.add(key_of(d.as_ref()));
                }
            }
            if let (None, Some(rs)) = (&new_ref, new) {
                // An orphan: the Deployments that select it may adopt it.
                for d in c.ctx.deployments.list_namespace(&namespace) {
                    let selector = d.spec.as_ref().map(|s| &s.selector);
                    if selector.is_some_and(|s| {
                        !selector_is_empty(s) && selector_matches(s, rs.metadata.labels.as_ref())
                    }) {
                        c.queue.add(key_of(d.as_ref()));
                    }
                }
            }
        });
        let c = controller.clone();
        ctx.pods.add_handler(move |old, new| {
            // Recreate waits for the old pods to be gone.
            if let (Some(pod), None) = (old, new) {
                let namespace = pod.namespace().unwrap_or_default();
                let rs = controller_ref(&pod.metadata)
                    .and_then(|r| c.ctx.replica_sets.get(&namespace, &r.name));
                if let Some(d) = rs.and_then(|rs| {
                    controller_ref(&rs.metadata).and_then(|r| c.resolve(&namespace, r))
                }) {
                    if strategy_type(&d) == "Recreate" {
                        c.queue.add(key_of(d.as_ref()));
                    }
                }
            }
        });
        controller
    }

    fn resolve(&self, namespace: &str, reference: &OwnerReference) -> Option<Arc<Deployment>> {
        if reference.kind != "Deployment" {
            return None;
        }
        let d = self.ctx.deployments.get(namespace, &reference.name)?;
        (d.metadata.uid.as_deref() == Some(reference.uid.as_str())).then_some(d)
    }

    fn rs_api(&self, namespace: &str) -> Api<ReplicaSet> {
        Api::namespaced(self.ctx.client.clone(), namespace)
    }

    fn d_api(&self, namespace: &str) -> Api<Deployment> {
        Api::namespaced(self.ctx.client.clone(), namespace)
    }

    async fn sync(&self, key: Key) -> Result<Option<Duration>, DeploymentError> {
        let Some(d) = self.ctx.deployments.get(&key.0, &key.1) else {
            return Ok(None);
        };
        let mut d = (*d).clone();
        let spec = d.spec.clone().unwrap_or_default();
        if selector_is_empty(&spec.selector) {
            self.ctx.recorder(COMPONENT).event(
                reference(&d),
                EventType::Warning,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            );
            return Ok(None);
        }
        let rs_list = self.claim_replica_sets(&d).await?;
        if d.metadata.deletion_timestamp.is_some() {
            let (new_rs, old) = self.get_all(&mut d, rs_list, false).await?;
            self.sync_status(&d, &all_of(&old, new_rs.as_ref()), new_rs.as_ref())
                .await?;
            return Ok(None);
        }
        self.check_paused_conditions(&mut d).await?;
        if spec.paused == Some(true) {
            return self.sync_scale(&mut d, rs_list).await;
        }
        if is_scaling_event(&d, &rs_list) {
            return self.sync_scale(&mut d, rs_list).await;
        }
        if strategy_type(&d) == "Recreate" {
            self.rollout_recreate(&mut d, rs_list).await
        } else {
            self.rollout_rolling(&mut d, rs_list).await
        }
    }

    /// The ReplicaSets this Deployment controls, adopting matching orphans and releasing
    /// ones it no longer selects (upstream's `ClaimReplicaSets`).
    async fn claim_replica_sets(&self, d: &Deployment) -> Result<Vec<ReplicaSet>, DeploymentError> {
        let namespace = d.namespace().unwrap_or_default();
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let selector = d
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        let api = self.rs_api(&namespace);
        let mut claimed = Vec::new();
        for rs in self.ctx.replica_sets.list_namespace(&namespace) {
            let matches = selector_matches(&selector, rs.metadata.labels.as_ref());
            match controller_ref(&rs.metadata) {
                Some(r) if r.uid != uid => {}
                Some(_) if matches => claimed.push((*rs).clone()),
                Some(_) if d.metadata.deletion_timestamp.is_none() => {
                    let rest: Vec<&OwnerReference> = rs
                        .owner_references()
                        .iter()
                        .filter(|r| r.uid != uid)
                        .collect();
                    let patch =
                        json!({"metadata": {"ownerReferences": rest, "uid": rs.metadata.uid}});
                    if let Err(e) = api
                        .patch(
                            &rs.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(&patch),
                        )
                        .await
                    {
                        if !matches!(api_code(&e), Some(404) | Some(409)) {
                            return Err(Error::api("releasing a replicaset", e).into());
                        }
                    }
                }
                Some(_) => {}
                None if matches
                    && d.metadata.deletion_timestamp.is_none()
                    && rs.metadata.deletion_timestamp.is_none() =>
                {
                    let mut refs = rs.owner_references().to_vec();
                    refs.push(new_controller_ref(&d.metadata, "apps/v1", "Deployment"));
                    let patch =
                        json!({"metadata": {"ownerReferences": refs, "uid": rs.metadata.uid}});
                    match api
                        .patch(
                            &rs.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(&patch),
                        )
                        .await
                    {
                        Ok(adopted) => claimed.push(adopted),
                        Err(e) if matches!(api_code(&e), Some(404) | Some(409)) => {}
                        Err(e) => return Err(Error::api("adopting a replicaset", e).into()),
                    }
                }
                None => {}
            }
        }
        Ok(claimed)
    }

    /// Splits the ReplicaSets into the new one (matching the template; created if asked) and the
    /// old ones, and brings revision annotations up to date (upstream's
    /// `getAllReplicaSetsAndSyncRevision`).
    async fn get_all(
        &self,
        d: &mut Deployment,
        rs_list: Vec<ReplicaSet>,
        create: bool,
    ) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>), DeploymentError> {
        let template = d
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let (mut new_rs, mut old): (Option<ReplicaSet>, Vec<ReplicaSet>) = (None, Vec::new());
        let mut sorted = rs_list;
        sorted.sort_by(|a, b| {
            created(a)
                .cmp(&created(b))
                .then_with(|| a.name_any().cmp(&b.name_any()))
        });
        for rs in sorted {
            let same = rs
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| equal_ignore_hash(t, &template));
            if same && new_rs.is_none() {
                new_rs = Some(rs);
            } else {
                old.push(rs);
            }
        }
        let new_revision = max_revision(&old) + 1;
        let namespace = d.namespace().unwrap_or_default();
        let new_rs = match new_rs {
            Some(mut rs) => {
                let updated = set_new_rs_annotations(d, &mut rs, new_revision, true);
                let min_ready = d.spec.as_ref().and_then(|s| s.min_ready_seconds);
                let min_ready_changed =
                    rs.spec.as_ref().and_then(|s| s.min_ready_seconds) != min_ready;
                if updated || min_ready_changed {
                    if let Some(spec) = rs.spec.as_mut() {
                        spec.min_ready_seconds = min_ready;
                    }
                    rs = self
                        .rs_api(&namespace)
                        .replace(&rs.name_any(), &PostParams::default(), &rs)
                        .await
                        .context("updating the new replicaset")?;
                }
                if progress_deadline(d).is_some() && condition(d, "Progressing").is_none() {
                    let message = format!("Found new replica set {:?}", rs.name_any());
                    let mut status = d.status.clone().unwrap_or_default();
                    set_condition(
                        &mut status,
                        new_condition("Progressing", "True", "FoundNewReplicaSet", &message),
                    );
                    self.write_status(d, status).await?;
                }
                Some(rs)
            }
            None if create => Some(self.create_new_rs(d, &old, new_revision).await?),
            None => None,
        };
        if let Some(rs) = &new_rs {
            let revision = revision_of(rs).to_string();
            if d.annotations().get(REVISION) != Some(&revision) {
                d.annotations_mut().insert(REVISION.into(), revision);
                *d = self
                    .d_api(&namespace)
                    .replace(&d.name_any(), &PostParams::default(), d)
                    .await
                    .context("updating the deployment's revision")?;
            }
        }
        Ok((new_rs, old))
    }

    async fn create_new_rs(
        &self,
        d: &mut Deployment,
        old: &[ReplicaSet],
        revision: i64,
    ) -> Result<ReplicaSet, DeploymentError> {
        let namespace = d.namespace().unwrap_or_default();
        let spec = d.spec.clone().unwrap_or_default();
        let collision_count = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = template_hash(&spec.template, collision_count);
        let mut template = spec.template.clone();
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("{}-{hash}", d.name_any())),
                namespace: Some(namespace.clone()),
                owner_references: Some(vec![new_controller_ref(
                    &d.metadata,
                    "apps/v1",
                    "Deployment",
                )]),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let all = all_of(old, Some(&rs));
        let replicas = new_rs_new_replicas(d, &all, &rs);
        if let Some(s) = rs.spec.as_mut() {
            s.replicas = Some(replicas);
        }
        set_new_rs_annotations(d, &mut rs, revision, false);
        let api = self.rs_api(&namespace);
        let step = ferry_journey::step!(
            "created replicaset",
            parent = crate::journey::parent_of(&d.metadata),
            component = COMPONENT,
            object = tracing::field::Empty,
            uid = tracing::field::Empty
        );
        let created = match crate::journey::create_in(&api, &rs, step).await {
            Ok(created) => created,
            Err(e) if api_code(&e) == Some(409) => {
                // Same name: ours with the same template (a stale cache), or a hash collision.
                let existing = api.get(&rs.name_any()).await.map_err(Error::from)?;
                let ours = controller_ref(&existing.metadata)
                    .is_some_and(|r| Some(&r.uid) == d.metadata.uid.as_ref());
                let same = existing
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| equal_ignore_hash(t, &spec.template));
                if ours && same {
                    return Ok(existing);
                }
                let mut status = d.status.clone().unwrap_or_default();
                status.collision_count = Some(collision_count.unwrap_or(0) + 1);
                self.write_status(d, status).await?;
                return Err(DeploymentError::HashCollision {
                    name: rs.name_any(),
                });
            }
            Err(e) => {
                if progress_deadline(d).is_some() {
                    let message = format!(
                        "Failed to create new replica set {:?}: {}",
                        rs.name_any(),
                        crate::replicaset::api_message(&e)
                    );
                    let mut status = d.status.clone().unwrap_or_default();
                    set_condition(
                        &mut status,
                        new_condition("Progressing", "False", "ReplicaSetCreateError", &message),
                    );
                    self.write_status(d, status).await?;
                }
                return Err(Error::api("creating the new replicaset", e).into());
            }
        };
        if replicas > 0 {
            self.ctx.recorder(COMPONENT).event(
                reference(d),
                EventType::Normal,
                "ScalingReplicaSet",
                format!(
                    "Scaled up replica set {} from 0 to {replicas}",
                    created.name_any()
                ),
            );
        }
        if progress_deadline(d).is_some() {
            let message = format!("Created new replica set {:?}", created.name_any());
            let mut status = d.status.clone().unwrap_or_default();
            set_condition(
                &mut status,
                new_condition("Progressing", "True", "NewReplicaSetCreated", &message),
            );
            self.write_status(d, status).await?;
        }
        Ok(created)
    }

    /// Scales `rs` to `replicas` and stamps the replicas annotations; returns whether its size
    /// changed. The local copy follows the write.
    async fn scale(
        &self,
        d: &Deployment,
        rs: &mut ReplicaSet,
        replicas: i32,
    ) -> Result<bool, DeploymentError> {
        let current = spec_replicas(rs);
        let desired = deployment_replicas(d);
        let max = desired + max_surge(d);
        let annotations_stale = rs.annotations().get(DESIRED_REPLICAS)
            != Some(&desired.to_string())
            || rs.annotations().get(MAX_REPLICAS) != Some(&max.to_string());
        if current == replicas && !annotations_stale {
            return Ok(false);
        }
        let mut updated = rs.clone();
        updated.spec.get_or_insert_with(Default::default).replicas = Some(replicas);
        updated
            .annotations_mut()
            .insert(DESIRED_REPLICAS.into(), desired.to_string());
        updated
            .annotations_mut()
            .insert(MAX_REPLICAS.into(), max.to_string());
        let step = if replicas > current {
            scaled_step(d, rs, current, replicas)
        } else {
            tracing::Span::none()
        };
        let result = self
            .rs_api(&rs.namespace().unwrap_or_default())
            .replace(&rs.name_any(), &PostParams::default(), &updated)
            .instrument(step.clone())
            .await;
        if let Err(error) = &result {
            ferry_journey::fail(&step, error);
        }
        drop(step);
        *rs = result.map_err(|source| DeploymentError::Scale {
            name: rs.name_any(),
            source,
        })?;
        if current != replicas {
            let direction = if replicas > current { "up" } else { "down" };
            self.ctx.recorder(COMPONENT).event(
                reference(d),
                EventType::Normal,
                "ScalingReplicaSet",
                format!(
                    "Scaled {direction} replica set {} from {current} to {replicas}",
                    rs.name_any()
                ),
            );
        }
        Ok(current != replicas)
    }

    async fn rollout_rolling(
        &self,
        d: &mut Deployment,
        rs_list: Vec<ReplicaSet>,
    ) -> Result<Option<Duration>, DeploymentError> {
        let (new_rs, mut old) = self.get_all(d, rs_list, true).await?;
        let mut new_rs = new_rs.ok_or(DeploymentError::NoNewReplicaSet)?;
        // Grow the new ReplicaSet within maxSurge.
        let all = all_of(&old, Some(&new_rs));
        let target = match spec_replicas(&new_rs).cmp(&deployment_replicas(d)) {
            std::cmp::Ordering::Equal => None,
            std::cmp::Ordering::Greater => Some(deployment_replicas(d)),
            std::cmp::Ordering::Less => Some(new_rs_new_replicas(d, &all, &new_rs)),
        };
        if let Some(target) = target {
            if self.scale(d, &mut new_rs, target).await? {
                return self
                    .sync_rollout_status(d, &all_of(&old, Some(&new_rs)), Some(&new_rs))
                    .await;
            }
        }
        // Shrink old ones within maxUnavailable.
        let plan = plan_old_scale_down(d, &old, &new_rs);
        let mut scaled_down = false;
        for (index, replicas) in plan {
            if let Some(rs) = old.get_mut(index) {
                scaled_down |= self.scale(d, rs, replicas).await?;
            }
        }
        if scaled_down {
            return self
                .sync_rollout_status(d, &all_of(&old, Some(&new_rs)), Some(&new_rs))
                .await;
        }
        if deployment_complete(d, d.status.as_ref()) {
            self.cleanup(d, &old).await?;
        }
        self.sync_rollout_status(d, &all_of(&old, Some(&new_rs)), Some(&new_rs))
            .await
    }

    async fn rollout_recreate(
        &self,
        d: &mut Deployment,
        rs_list: Vec<ReplicaSet>,
    ) -> Result<Option<Duration>, DeploymentError> {
        let (new_rs, mut old) = self.get_all(d, rs_list, false).await?;
        let mut scaled_down = false;
        for rs in old.iter_mut().filter(|rs| spec_replicas(rs) > 0) {
            scaled_down |= self.scale(d, rs, 0).await?;
        }
        if scaled_down {
            return self
                .sync_rollout_status(d, &all_of(&old, new_rs.as_ref()), new_rs.as_ref())
                .await;
        }
        // Recreate means no old pod runs beside a new one: wait until they are all gone.
        if self.old_pods_running(&old, new_rs.as_ref()) {
            return self
                .sync_rollout_status(d, &all_of(&old, new_rs.as_ref()), new_rs.as_ref())
                .await;
        }
        let (new_rs, old) = match new_rs {
            Some(rs) => (rs, old),
            None => {
                let rs_list = all_of(&old, None);
                let (new_rs, old) = self.get_all(d, rs_list, true).await?;
                (new_rs.ok_or(DeploymentError::NoNewReplicaSet)?, old)
            }
        };
        let mut new_rs = new_rs;
        self.scale(d, &mut new_rs, deployment_replicas(d)).await?;
        if deployment_complete(d, d.status.as_ref()) {
            self.cleanup(d, &old).await?;
        }
        self.sync_rollout_status(d, &all_of(&old, Some(&new_rs)), Some(&new_rs))
            .await
    }

    fn old_pods_running(&self, old: &[ReplicaSet], new_rs: Option<&ReplicaSet>) -> bool {
        if old
            .iter()
            .any(|rs| rs.status.as_ref().is_some_and(|s| s.replicas > 0))
        {
            return true;
        }
        let uids: Vec<&str> = old
            .iter()
            .filter_map(|rs| rs.metadata.uid.as_deref())
            .collect();
        let new_uid = new_rs.and_then(|rs| rs.metadata.uid.as_deref());
        let namespace = old
            .first()
            .and_then(|rs| rs.namespace())
            .unwrap_or_default();
        self.ctx.pods.list_namespace(&namespace).iter().any(|pod| {
            let owner = controller_ref(&pod.metadata).map(|r| r.uid.as_str());
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            owner.is_some_and(|o| uids.contains(&o) && Some(o) != new_uid)
                && !matches!(phase, Some("Succeeded") | Some("Failed"))
        })
    }

    /// A scaling event or a paused Deployment: proportional scaling, no rollout.
    async fn sync_scale(
        &self,
        d: &mut Deployment,
        rs_list: Vec<ReplicaSet>,
    ) -> Result<Option<Duration>, DeploymentError> {
        let (new_rs, mut old) = self.get_all(d, rs_list, false).await?;
        let mut new_rs = new_rs;
        let plan = plan_scale(d, new_rs.as_ref(), &old);
        for (target, replicas) in plan {
            let rs = match target {
                Target::New => new_rs.as_mut(),
                Target::Old(i) => old.get_mut(i),
            };
            if let Some(rs) = rs {
                self.scale(d, rs, replicas).await?;
            }
        }
        if d.spec.as_ref().and_then(|s| s.paused) == Some(true) {
            self.cleanup(d, &old).await?;
        }
        self.sync_status(d, &all_of(&old, new_rs.as_ref()), new_rs.as_ref())
            .await?;
        Ok(None)
    }

    /// Deletes old, empty ReplicaSets beyond `revisionHistoryLimit`, oldest revision first.
    async fn cleanup(&self, d: &Deployment, old: &[ReplicaSet]) -> Result<(), DeploymentError> {
        let Some(limit) = d.spec.as_ref().and_then(|s| s.revision_history_limit) else {
            return Ok(());
        };
        let mut cleanable: Vec<&ReplicaSet> = old
            .iter()
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .collect();
        let excess = cleanable
            .len()
            .saturating_sub(usize::try_from(limit).unwrap_or(0));
        if excess == 0 {
            return Ok(());
        }
        cleanable.sort_by_key(|rs| (revision_of(rs), created(rs)));
        for rs in cleanable.into_iter().take(excess) {
            let status = rs.status.clone().unwrap_or_default();
            if status.replicas != 0
                || spec_replicas(rs) != 0
                || rs.metadata.generation > status.observed_generation
            {
                continue;
            }
            match self
                .rs_api(&rs.namespace().unwrap_or_default())
                .delete(&rs.name_any(), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(e) if api_code(&e) == Some(404) => {}
                Err(e) => return Err(Error::api("deleting an old replicaset", e).into()),
            }
        }
        Ok(())
    }

    async fn check_paused_conditions(&self, d: &mut Deployment) -> Result<(), DeploymentError> {
        if progress_deadline(d).is_none() {
            return Ok(());
        }
        let current = condition(d, "Progressing");
        if current.is_some_and(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded")) {
            return Ok(());
        }
        let paused_exists =
            current.is_some_and(|c| c.reason.as_deref() == Some("DeploymentPaused"));
        let paused = d.spec.as_ref().and_then(|s| s.paused) == Some(true);
        let mut status = d.status.clone().unwrap_or_default();
        if paused && !paused_exists {
            set_condition(
                &mut status,
                new_condition(
                    "Progressing",
                    "Unknown",
                    "DeploymentPaused",
                    "Deployment is paused",
                ),
            );
        } else if !paused && paused_exists {
            set_condition(
                &mut status,
                new_condition(
                    "Progressing",
                    "Unknown",
                    "DeploymentResumed",
                    "Deployment is resumed",
                ),
            );
        } else {
            return Ok(());
        }
        self.write_status(d, status).await
    }

    async fn sync_status(
        &self,
        d: &Deployment,
        all: &[ReplicaSet],
        new_rs: Option<&ReplicaSet>,
    ) -> Result<(), DeploymentError> {
        let mut d = d.clone();
        let status = calculate_status(&d, all, new_rs);
        self.write_status(&mut d, status).await
    }

    /// Status plus the Progressing and ReplicaFailure conditions (upstream's `syncRolloutStatus`);
    /// asks to be synced again when the progress deadline would pass.
    async fn sync_rollout_status(
        &self,
        d: &mut Deployment,
        all: &[ReplicaSet],
        new_rs: Option<&ReplicaSet>,
    ) -> Result<Option<Duration>, DeploymentError> {
        let now = jiff::Timestamp::now();
        let status = rollout_status(d, all, new_rs, now);
        self.write_status(d, status.clone()).await?;
        // Look again when the deadline would pass, unless done.
        let Some(deadline) = progress_deadline(d) else {
            return Ok(None);
        };
        if deployment_complete(d, Some(&status)) {
            return Ok(None);
        }
        let progressing = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Progressing");
        match progressing
            .and_then(|c| c.last_update_time.as_ref())
            .map(|t| t.0)
        {
            Some(from)
                if progressing
                    .is_some_and(|c| c.reason.as_deref() != Some("ProgressDeadlineExceeded")) =>
            {
                let due = from + jiff::SignedDuration::from_secs(i64::from(deadline));
                let left = now.duration_until(due);
                let secs = left.as_secs_f64().max(0.0) + 1.0;
                Ok(Some(Duration::from_secs_f64(secs)))
            }
            _ => Ok(None),
        }
    }

    async fn write_status(
        &self,
        d: &mut Deployment,
        mut status: DeploymentStatus,
    ) -> Result<(), DeploymentError> {
        status.observed_generation = d.metadata.generation;
        if d.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let mut updated = d.clone();
        updated.status = Some(status);
        let api = self.d_api(&d.namespace().unwrap_or_default());
        match api
            .replace_status(&d.name_any(), &PostParams::default(), &updated)
            .await
        {
            Ok(written) => {
                *d = written;
                Ok(())
            }
            Err(e) if api_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(Error::api("updating deployment status", e).into()),
        }
    }
}

fn all_of(old: &[ReplicaSet], new_rs: Option<&ReplicaSet>) -> Vec<ReplicaSet> {
    let mut all = old.to_vec();
    all.extend(new_rs.cloned());
    all
}

fn created(rs: &ReplicaSet) -> Option<jiff::Timestamp> {
    rs.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// `spec.strategy.type`, RollingUpdate by default.
pub fn strategy_type(d: &Deployment) -> &str {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
}

fn deployment_replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn progress_deadline(d: &Deployment) -> Option<i32> {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .filter(|s| *s != i32::MAX)
}

fn condition<'a>(d: &'a Deployment, type_: &str) -> Option<&'a DeploymentCondition> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// A ReplicaSet's revision (0 when unset).
pub fn revision_of(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn max_revision(rs_list: &[ReplicaSet]) -> i64 {
    rs_list.iter().map(revision_of).max().unwrap_or(0)
}

/// Resolves an IntOrString against `total`: percentages round up for surge, down for unavailable.
pub fn scaled_value(value: Option<&IntOrString>, total: i32, round_up: bool, default: &str) -> i32 {
    let default = IntOrString::String(default.to_string());
    crate::util::scaled_int_or_percent(value.unwrap_or(&default), total, round_up)
}

/// maxSurge and maxUnavailable as numbers (upstream's `ResolveFenceposts`): both zero would
/// deadlock, so maxUnavailable becomes 1.
pub fn resolve_fenceposts(d: &Deployment) -> (i32, i32) {
    let replicas = deployment_replicas(d);
    let rolling = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let surge = scaled_value(
        rolling.and_then(|r| r.max_surge.as_ref()),
        replicas,
        true,
        "25%",
    );
    let unavailable = scaled_value(
        rolling.and_then(|r| r.max_unavailable.as_ref()),
        replicas,
        false,
        "25%",
    );
    if surge == 0 && unavailable == 0 {
        return (0, 1);
    }
    (surge, unavailable)
}

fn max_surge(d: &Deployment) -> i32 {
    if strategy_type(d) != "RollingUpdate" {
        return 0;
    }
    resolve_fenceposts(d).0
}

/// Upstream's `MaxUnavailable`: 0 for Recreate or no replicas, never above replicas.
pub fn max_unavailable(d: &Deployment) -> i32 {
    let replicas = deployment_replicas(d);
    if strategy_type(d) != "RollingUpdate" || replicas == 0 {
        return 0;
    }
    resolve_fenceposts(d).1.min(replicas)
}

/// The pod-template-hash: [`crate::util::hash_with_collisions`] of the template.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    crate::util::hash_with_collisions(
        serde_json::to_string(template)
            .unwrap_or_default()
            .as_bytes(),
        collision_count,
    )
}

/// Whether two templates are equal apart from the pod-template-hash label.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut value = serde_json::to_value(t).unwrap_or_default();
        if let Some(labels) = value
            .pointer_mut("/metadata/labels")
            .and_then(|l| l.as_object_mut())
        {
            labels.remove(POD_TEMPLATE_HASH);
            if labels.is_empty() {
                if let Some(meta) = value
                    .pointer_mut("/metadata")
                    .and_then(|m| m.as_object_mut())
                {
                    meta.remove("labels");
                }
            }
        }
        if value
            .pointer("/metadata")
            .and_then(|m| m.as_object())
            .is_some_and(|m| m.is_empty())
        {
            if let Some(t) = value.as_object_mut() {
                t.remove("metadata");
            }
        }
        value
    };
    strip(a) == strip(b)
}

/// Copies the Deployment's annotations and the revision onto the new ReplicaSet; returns
/// whether anything changed (upstream's `SetNewReplicaSetAnnotations`).
fn set_new_rs_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
) -> bool {
    let mut changed = false;
    let copied: Vec<(String, String)> = d
        .annotations()
        .iter()
        .filter(|(k, _)| !SKIPPED_ANNOTATIONS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let annotations = rs.annotations_mut();
    for (k, v) in copied {
        if annotations.get(&k) != Some(&v) {
            annotations.insert(k, v);
            changed = true;
        }
    }
    let old_revision = annotations.get(REVISION).cloned();
    let old_number: i64 = old_revision
        .as_deref()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    if old_number < new_revision {
        annotations.insert(REVISION.into(), new_revision.to_string());
        changed = true;
        if exists {
            if let Some(old) = old_revision.filter(|r| !r.is_empty()) {
                let history = match annotations.get(REVISION_HISTORY) {
                    Some(h) if !h.is_empty() => format!("{h},{old}"),
                    _ => old,
                };
                annotations.insert(REVISION_HISTORY.into(), history);
            }
        }
    }
    if !exists {
        let desired = deployment_replicas(d);
        annotations.insert(DESIRED_REPLICAS.into(), desired.to_string());
        annotations.insert(MAX_REPLICAS.into(), (desired + max_surge(d)).to_string());
        changed = true;
    }
    changed
}

/// The `scaled replicaset` step of scaling `rs` up from `from` to `to`, in `d`'s journey.
fn scaled_step(d: &Deployment, rs: &ReplicaSet, from: i32, to: i32) -> tracing::Span {
    let step = ferry_journey::step!(
        "scaled replicaset",
        parent = crate::journey::parent_of(&d.metadata),
        component = COMPONENT,
        object = tracing::field::Empty,
        uid = tracing::field::Empty,
        from = from,
        to = to
    );
    crate::journey::record_object(&step, rs);
    step
}

/// Whether some active ReplicaSet was last scaled for a different `spec.replicas`.
fn is_scaling_event(d: &Deployment, rs_list: &[ReplicaSet]) -> bool {
    let desired = deployment_replicas(d).to_string();
    rs_list.iter().filter(|rs| spec_replicas(rs) > 0).any(|rs| {
        rs.annotations()
            .get(DESIRED_REPLICAS)
            .is_some_and(|a| *a != desired)
    })
}

/// The new ReplicaSet's size in a rollout (upstream's `NewRSNewReplicas`).
pub fn new_rs_new_replicas(d: &Deployment, all: &[ReplicaSet], new_rs: &ReplicaSet) -> i32 {
    let replicas = deployment_replicas(d);
    if strategy_type(d) != "RollingUpdate" {
        return replicas;
    }
    let current: i32 = all.iter().map(spec_replicas).sum();
    let max_total = replicas + max_surge(d);
    if current >= max_total {
        return spec_replicas(new_rs);
    }
    let up = (max_total - current).min(replicas - spec_replicas(new_rs));
    spec_replicas(new_rs) + up
}

fn available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// The old ReplicaSets' new sizes in a rolling update: first unhealthy replicas are cleaned
/// up, then healthy ones scaled down while at least `replicas - maxUnavailable` stay
/// available (upstream's `reconcileOldReplicaSets`). Returns (index in `old`, new size).
pub fn plan_old_scale_down(
    d: &Deployment,
    old: &[ReplicaSet],
    new_rs: &ReplicaSet,
) -> Vec<(usize, i32)> {
    let old_count: i32 = old.iter().map(spec_replicas).sum();
    if old_count == 0 {
        return Vec::new();
    }
    let all_count = old_count + spec_replicas(new_rs);
    let min_available = deployment_replicas(d) - max_unavailable(d);
    let new_unavailable = spec_replicas(new_rs) - available(new_rs);
    let max_scaled_down = all_count - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..old.len()).collect();
    order.sort_by_key(|i| (created(&old[*i]), old[*i].name_any()));
    let mut sizes: Vec<i32> = old.iter().map(spec_replicas).collect();
    // Unhealthy replicas first: they count against availability anyway.
    let mut cleaned = 0;
    for &i in &order {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = sizes[i] - available(&old[i]);
        if sizes[i] == 0 || unhealthy <= 0 {
            continue;
        }
        let down = (max_scaled_down - cleaned).min(unhealthy);
        sizes[i] -= down;
        cleaned += down;
    }
    // Then healthy ones, keeping minAvailable.
    let available_count: i32 = old.iter().map(available).sum::<i32>() + available(new_rs);
    if available_count > min_available {
        let total = available_count - min_available;
        let mut scaled = 0;
        for &i in &order {
            if scaled >= total {
                break;
            }
            if sizes[i] == 0 {
                continue;
            }
            let down = sizes[i].min(total - scaled);
            sizes[i] -= down;
            scaled += down;
        }
    }
    order
        .into_iter()
        .filter(|&i| sizes[i] != spec_replicas(&old[i]))
        .map(|i| (i, sizes[i]))
        .collect()
}

/// Which ReplicaSet a scale plan entry is about.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    /// The new one.
    New,
    /// `old[i]`.
    Old(usize),
}

/// Proportional scaling (upstream's `scale`): one active ReplicaSet takes the whole count; a
/// saturated new one means old ones go to zero; otherwise the difference is shared out in
/// proportion to each ReplicaSet's size, leftovers to the largest.
pub fn plan_scale(
    d: &Deployment,
    new_rs: Option<&ReplicaSet>,
    old: &[ReplicaSet],
) -> Vec<(Target, i32)> {
    let replicas = deployment_replicas(d);
    let mut entries: Vec<(Target, &ReplicaSet)> = old
        .iter()
        .enumerate()
        .map(|(i, rs)| (Target::Old(i), rs))
        .collect();
    if let Some(rs) = new_rs {
        entries.push((Target::New, rs));
    }
    let active: Vec<&(Target, &ReplicaSet)> = entries
        .iter()
        .filter(|(_, rs)| spec_replicas(rs) > 0)
        .collect();
    match active.len() {
        0 => {
            // Nothing active: the new one, else the latest old one, takes the count.
            let latest = match new_rs {
                Some(_) => Some(Target::New),
                None => (0..old.len())
                    .max_by_key(|i| (created(&old[*i]), old[*i].name_any()))
                    .map(Target::Old),
            };
            return latest
                .into_iter()
                .filter(|_| replicas != 0)
                .map(|t| (t, replicas))
                .collect();
        }
        1 => {
            let (target, rs) = active[0];
            let target = match target {
                Target::New => Target::New,
                Target::Old(i) => Target::Old(*i),
            };
            return if spec_replicas(rs) == replicas {
                Vec::new()
            } else {
                vec![(target, replicas)]
            };
        }
        _ => {}
    }
    if let Some(rs) = new_rs {
        let saturated = rs.annotations().get(DESIRED_REPLICAS) == Some(&replicas.to_string())
            && spec_replicas(rs) == replicas
            && available(rs) == replicas;
        if saturated {
            return old
                .iter()
                .enumerate()
                .filter(|(_, rs)| spec_replicas(rs) > 0)
                .map(|(i, _)| (Target::Old(i), 0))
                .collect();
        }
    }
    if strategy_type(d) != "RollingUpdate" {
        return Vec::new();
    }
    let mut active: Vec<(Target, &ReplicaSet)> = entries
        .into_iter()
        .filter(|(_, rs)| spec_replicas(rs) > 0)
        .collect();
    let current: i32 = active.iter().map(|(_, rs)| spec_replicas(rs)).sum();
    let allowed = if replicas > 0 {
        replicas + max_surge(d)
    } else {
        0
    };
    let to_add = allowed - current;
    // Largest first; among equals the newer when adding, the older when removing.
    active.sort_by(|(_, a), (_, b)| {
        spec_replicas(b).cmp(&spec_replicas(a)).then_with(|| {
            if to_add > 0 {
                created(b).cmp(&created(a))
            } else {
                created(a).cmp(&created(b))
            }
        })
    });
    let mut added = 0;
    let mut sizes: Vec<i32> = Vec::with_capacity(active.len());
    for (_, rs) in &active {
        if to_add == 0 {
            sizes.push(spec_replicas(rs));
            continue;
        }
        let proportion = proportion(d, rs, to_add, added);
        sizes.push(spec_replicas(rs) + proportion);
        added += proportion;
    }
    if to_add != 0 {
        if let Some(first) = sizes.first_mut() {
            *first = (*first + to_add - added).max(0);
        }
    }
    active
        .into_iter()
        .zip(sizes)
        .filter(|((_, rs), size)| spec_replicas(rs) != *size || to_add != 0)
        .map(|((t, _), size)| (t, size))
        .collect()
}

fn proportion(d: &Deployment, rs: &ReplicaSet, to_add: i32, added: i32) -> i32 {
    if spec_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let replicas = deployment_replicas(d);
    let fraction = if replicas == 0 {
        -spec_replicas(rs)
    } else {
        let deployment_max = replicas + max_surge(d);
        let annotated: i32 = rs
            .annotations()
            .get(MAX_REPLICAS)
            .and_then(|m| m.parse().ok())
            .unwrap_or_else(|| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
        if annotated == 0 {
            0
        } else {
            let size =
                f64::from(spec_replicas(rs)) * f64::from(deployment_max) / f64::from(annotated);
            size.round() as i32 - spec_replicas(rs)
        }
    };
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

fn new_condition(type_: &str, status: &str, reason: &str, message: &str) -> DeploymentCondition {
    let now = Time(jiff::Timestamp::now());
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

/// Upstream's `SetDeploymentCondition`: the same status and reason is no change; the same
/// status keeps its transition time.
fn set_condition(status: &mut DeploymentStatus, mut condition: DeploymentCondition) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    if let Some(current) = conditions.iter().find(|c| c.type_ == condition.type_) {
        if current.status == condition.status && current.reason == condition.reason {
            return;
        }
        if current.status == condition.status {
            condition.last_transition_time = current.last_transition_time.clone();
        }
    }
    conditions.retain(|c| c.type_ != condition.type_);
    conditions.push(condition);
}

fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != type_);
    }
}

/// Counts and the Available condition (upstream's `calculateStatus`).
pub fn calculate_status(
    d: &Deployment,
    all: &[ReplicaSet],
    new_rs: Option<&ReplicaSet>,
) -> DeploymentStatus {
    let status_of = |rs: &ReplicaSet| rs.status.clone().unwrap_or_default();
    let available_count: i32 = all.iter().map(available).sum();
    let total: i32 = all.iter().map(spec_replicas).sum();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(all.iter().map(|rs| status_of(rs).replicas).sum()),
        updated_replicas: Some(new_rs.map_or(0, |rs| status_of(rs).replicas)),
        ready_replicas: Some(
            all.iter()
                .map(|rs| status_of(rs).ready_replicas.unwrap_or(0))
                .sum(),
        ),
        available_replicas: Some(available_count),
        unavailable_replicas: Some((total - available_count).max(0)),
        collision_count: d.status.as_ref().and_then(|s| s.collision_count),
        conditions: d.status.as_ref().and_then(|s| s.conditions.clone()),
        terminating_replicas: None,
    };
    if available_count >= deployment_replicas(d) - max_unavailable(d) {
        set_condition(
            &mut status,
            new_condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            ),
        );
    } else {
        set_condition(
            &mut status,
            new_condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            ),
        );
    }
    status
}

/// All replicas updated and available, and the newest generation observed.
pub fn deployment_complete(d: &Deployment, status: Option<&DeploymentStatus>) -> bool {
    let Some(s) = status else { return false };
    let replicas = deployment_replicas(d);
    s.updated_replicas.unwrap_or(0) == replicas
        && s.replicas.unwrap_or(0) == replicas
        && s.available_replicas.unwrap_or(0) == replicas
        && s.observed_generation >= d.metadata.generation
}

/// Whether the rollout moved since the last status (upstream's `DeploymentProgressing`).
fn deployment_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let n = |v: Option<i32>| v.unwrap_or(0);
    n(new.updated_replicas) > n(old.updated_replicas)
        || n(new.replicas) - n(new.updated_replicas) < n(old.replicas) - n(old.updated_replicas)
        || n(new.ready_replicas) > n(old.ready_replicas)
        || n(new.available_replicas) > n(old.available_replicas)
}

/// The status with the Progressing and ReplicaFailure conditions (upstream's `syncRolloutStatus`).
pub fn rollout_status(
    d: &Deployment,
    all: &[ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    now: jiff::Timestamp,
) -> DeploymentStatus {
    let mut status = calculate_status(d, all, new_rs);
    let deadline = progress_deadline(d);
    if deadline.is_none() {
        remove_condition(&mut status, "Progressing");
    }
    let current = condition(d, "Progressing").cloned();
    let complete_before = status.replicas == status.updated_replicas
        && current
            .as_ref()
            .is_some_and(|c| c.reason.as_deref() == Some("NewReplicaSetAvailable"));
    if let (Some(deadline), false) = (deadline, complete_before) {
        let name = new_rs.map(|rs| rs.name_any());
        if deployment_complete(d, Some(&status)) {
            let message = match &name {
                Some(n) => format!("ReplicaSet {n:?} has successfully progressed."),
                None => "Deployment has successfully progressed.".into(),
            };
            set_condition(
                &mut status,
                new_condition("Progressing", "True", "NewReplicaSetAvailable", &message),
            );
        } else if deployment_progressing(d, &status) {
            let message = match &name {
                Some(n) => format!("ReplicaSet {n:?} is progressing."),
                None => "Deployment is progressing.".into(),
            };
            let mut c = new_condition("Progressing", "True", "ReplicaSetUpdated", &message);
            if let Some(current) = current.as_ref().filter(|c| c.status == "True") {
                c.last_transition_time = current.last_transition_time.clone();
            }
            // Progress renews the deadline even when the reason stays the same.
            remove_condition(&mut status, "Progressing");
            set_condition(&mut status, c);
        } else if timed_out(current.as_ref(), deadline, now) {
            let message = match &name {
                Some(n) => format!("ReplicaSet {n:?} has timed out progressing."),
                None => format!("Deployment {:?} has timed out progressing.", d.name_any()),
            };
            set_condition(
                &mut status,
                new_condition("Progressing", "False", "ProgressDeadlineExceeded", &message),
            );
        }
    }
    let failure = all
        .iter()
        .filter_map(|rs| {
            rs.status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "ReplicaFailure")
        })
        .next();
    match failure {
        Some(f) => set_condition(
            &mut status,
            DeploymentCondition {
                type_: "ReplicaFailure".into(),
                status: f.status.clone(),
                reason: f.reason.clone(),
                message: f.message.clone(),
                last_update_time: f.last_transition_time.clone(),
                last_transition_time: f.last_transition_time.clone(),
            },
        ),
        None => remove_condition(&mut status, "ReplicaFailure"),
    }
    status
}

fn timed_out(current: Option<&DeploymentCondition>, deadline: i32, now: jiff::Timestamp) -> bool {
    let Some(c) = current else { return false };
    match c.reason.as_deref() {
        Some("NewReplicaSetAvailable") => false,
        Some("ProgressDeadlineExceeded") => true,
        _ => c
            .last_update_time
            .as_ref()
            .is_some_and(|t| t.0 + jiff::SignedDuration::from_secs(i64::from(deadline)) < now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, DeploymentStrategy, ReplicaSetStatus, RollingUpdateDeployment,
    };

    fn deployment(replicas: i32, surge: &str, unavailable: &str) -> Deployment {
        let parse = |s: &str| {
            if s.ends_with('%') {
                IntOrString::String(s.into())
            } else {
                IntOrString::Int(s.parse().expect("int"))
            }
        };
        Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                generation: Some(1),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(parse(surge)),
                        max_unavailable: Some(parse(unavailable)),
                    }),
                }),
                progress_deadline_seconds: Some(600),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn rs(name: &str, created_at: i64, replicas: i32, available: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(
                    jiff::Timestamp::from_second(1_700_000_000 + created_at).expect("ts"),
                )),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                ..Default::default()
            }),
            status: Some(ReplicaSetStatus {
                replicas,
                available_replicas: Some(available),
                ready_replicas: Some(available),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn fenceposts_round_as_upstream() {
        let cases = [
            (10, "25%", "25%", (3, 2)),
            (3, "25%", "25%", (1, 0)),
            (4, "0", "0", (0, 1)),
            (5, "2", "1", (2, 1)),
            (1, "0%", "0%", (0, 1)),
        ];
        for (replicas, surge, unavailable, want) in cases {
            assert_eq!(
                resolve_fenceposts(&deployment(replicas, surge, unavailable)),
                want,
                "{replicas} {surge} {unavailable}"
            );
        }
    }

    #[test]
    fn new_replica_set_grows_within_surge() {
        let d = deployment(3, "1", "0");
        let old = rs("old", 0, 3, 3);
        let new = rs("new", 10, 0, 0);
        assert_eq!(
            new_rs_new_replicas(&d, &[old.clone(), new.clone()], &new),
            1
        );
        let new = rs("new", 10, 1, 0);
        assert_eq!(
            new_rs_new_replicas(&d, &[old, new.clone()], &new),
            1,
            "at maxSurge: no more"
        );
    }

    #[test]
    fn old_replica_sets_shrink_within_unavailable() {
        // 3 replicas, surge 1, unavailable 0: old 3 available, new 1 available → old may lose 1.
        let d = deployment(3, "1", "0");
        assert_eq!(
            plan_old_scale_down(&d, &[rs("old", 0, 3, 3)], &rs("new", 10, 1, 1)),
            vec![(0, 2)]
        );
        // New not yet available: nothing goes.
        assert_eq!(
            plan_old_scale_down(&d, &[rs("old", 0, 3, 3)], &rs("new", 10, 1, 0)),
            vec![]
        );
        // Unhealthy old replicas are cleaned up first, even without new availability: 4 pods,
        // 2 must stay available, 1 new one unavailable → 1 unhealthy old one may go.
        let d = deployment(3, "1", "1");
        assert_eq!(
            plan_old_scale_down(&d, &[rs("old", 0, 3, 1)], &rs("new", 10, 1, 0)),
            vec![(0, 2)]
        );
        // Two old ReplicaSets: the oldest first.
        let d = deployment(4, "0", "2");
        assert_eq!(
            plan_old_scale_down(
                &d,
                &[rs("b", 5, 2, 2), rs("a", 0, 2, 2)],
                &rs("new", 10, 0, 0)
            ),
            vec![(1, 0)]
        );
    }

    #[test]
    fn proportional_scaling_shares_the_difference() {
        // Mid-rollout 10 → 15 with surge 3 (annotated max 13): old 8, new 5 grow to 12 and 6.
        let mut d = deployment(15, "3", "2");
        d.status = Some(DeploymentStatus {
            replicas: Some(13),
            ..Default::default()
        });
        let mut old = rs("old", 0, 8, 8);
        let mut new = rs("new", 10, 5, 0);
        for r in [&mut old, &mut new] {
            r.annotations_mut().insert(MAX_REPLICAS.into(), "13".into());
            r.annotations_mut()
                .insert(DESIRED_REPLICAS.into(), "10".into());
        }
        let plan = plan_scale(&d, Some(&new), &[old]);
        let total: i32 = plan.iter().map(|(_, s)| s).sum();
        assert_eq!(total, 18, "15 + surge 3: {plan:?}");
        assert!(
            plan.contains(&(Target::Old(0), 11)) || plan.contains(&(Target::Old(0), 12)),
            "{plan:?}"
        );
        // One active ReplicaSet takes the whole count.
        let d = deployment(7, "25%", "25%");
        assert_eq!(
            plan_scale(&d, Some(&rs("new", 0, 3, 3)), &[rs("old", 0, 0, 0)]),
            vec![(Target::New, 7)]
        );
    }

    #[test]
    fn hash_is_stable_and_collision_count_changes_it() {
        let t = PodTemplateSpec::default();
        assert_eq!(template_hash(&t, None), template_hash(&t, None));
        assert_ne!(template_hash(&t, None), template_hash(&t, Some(1)));
        assert!(template_hash(&t, None)
            .chars()
            .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        let mut with_hash = t.clone();
        with_hash.metadata = Some(ObjectMeta {
            labels: Some([(POD_TEMPLATE_HASH.to_string(), "abc".to_string())].into()),
            ..Default::default()
        });
        assert!(equal_ignore_hash(&t, &with_hash));
    }

    #[test]
    fn rollout_status_conditions() {
        let now = jiff::Timestamp::from_second(1_700_001_000).expect("ts");
        let d = deployment(2, "1", "0");
        let new = rs("web-abc", 0, 2, 2);
        let status = rollout_status(&d, std::slice::from_ref(&new), Some(&new), now);
        let progressing = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Progressing")
            .expect("progressing");
        assert_eq!(
            progressing.reason.as_deref(),
            Some("NewReplicaSetAvailable")
        );
        assert_eq!(
            progressing.message.as_deref(),
            Some("ReplicaSet \"web-abc\" has successfully progressed.")
        );
        let available = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Available")
            .expect("available");
        assert_eq!(available.status, "True");
        // Stuck past the deadline.
        let mut stuck = deployment(2, "1", "0");
        let long_ago = Time(jiff::Timestamp::from_second(1_700_000_000).expect("ts"));
        stuck.status = Some(DeploymentStatus {
            replicas: Some(1),
            updated_replicas: Some(1),
            conditions: Some(vec![DeploymentCondition {
                type_: "Progressing".into(),
                status: "True".into(),
                reason: Some("ReplicaSetUpdated".into()),
                last_update_time: Some(long_ago.clone()),
                last_transition_time: Some(long_ago),
                message: None,
            }]),
            ..Default::default()
        });
        let new = rs("web-abc", 0, 1, 0);
        let status = rollout_status(&stuck, std::slice::from_ref(&new), Some(&new), now);
        let progressing = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Progressing")
            .expect("progressing");
        assert_eq!(
            (progressing.status.as_str(), progressing.reason.as_deref()),
            ("False", Some("ProgressDeadlineExceeded"))
        );
    }

    #[test]
    fn scaling_mid_rollout_is_proportional() {
        let d = deployment(6, "25%", "25%");
        let rs = |name: &str, created: i64, replicas: i32| {
            let mut rs = rs(name, created, replicas, 0);
            rs.annotations_mut().insert(MAX_REPLICAS.into(), "4".into());
            rs.annotations_mut()
                .insert(DESIRED_REPLICAS.into(), "3".into());
            rs
        };
        let plan = plan_scale(&d, Some(&rs("new", 10, 1)), &[rs("old", 0, 3)]);
        assert_eq!(plan, vec![(Target::Old(0), 6), (Target::New, 2)]);
    }
}

/// Scenario tests: one reconcile against a mock API server, asserting the exact calls.
#[cfg(test)]
mod scenarios {
    use super::*;
    use crate::testing::{accept_all, client, Call};
    use serde_json::json;

    fn deployment(replicas: i32, image: &str) -> Deployment {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 1, "resourceVersion": "1"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": image}]}}},
        }))
        .expect("deployment")
    }

    fn controller(client: kube::Client) -> Arc<DeploymentController> {
        DeploymentController::new(Context::new(client, crate::Options::default()))
    }

    #[tokio::test]
    async fn a_new_deployment_gets_its_replica_set_then_status() {
        let (client, calls) = client(accept_all);
        let dc = controller(client);
        dc.ctx.deployments.seed(vec![deployment(2, "busybox:1")]);
        dc.ctx.replica_sets.seed(vec![]);
        dc.ctx.pods.seed(vec![]);
        dc.clone()
            .reconcile(("default".into(), "web".into()))
            .await
            .expect("synced");
        let made = calls.without_events();
        let lines: Vec<String> = made.iter().map(Call::line).collect();
        assert_eq!(
            lines,
            [
                "POST /apis/apps/v1/namespaces/default/replicasets?",
                "PUT /apis/apps/v1/namespaces/default/deployments/web/status?",
                "PUT /apis/apps/v1/namespaces/default/deployments/web?",
                "PUT /apis/apps/v1/namespaces/default/deployments/web/status?",
            ]
        );
        let template = deployment(2, "busybox:1")
            .spec
            .and_then(|s| s.template.into());
        let hash = template_hash(&template.expect("template"), None);
        let rs = &made[0].body;
        assert_eq!(rs["metadata"]["name"], format!("web-{hash}"));
        assert_eq!(
            rs["spec"]["replicas"], 2,
            "no old ReplicaSet: all replicas at once"
        );
        assert_eq!(
            rs["spec"]["selector"]["matchLabels"]["pod-template-hash"],
            hash
        );
        assert_eq!(
            rs["metadata"]["annotations"],
            json!({"deployment.kubernetes.io/desired-replicas": "2", "deployment.kubernetes.io/max-replicas": "3", "deployment.kubernetes.io/revision": "1"})
        );
        assert_eq!(rs["metadata"]["ownerReferences"][0]["uid"], "d-uid");
        assert_eq!(
            made[2].body["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
            "1"
        );
        let status = &made[3].body["status"];
        assert_eq!(status["unavailableReplicas"], 2);
        assert_eq!(status["conditions"][0]["reason"], "NewReplicaSetCreated");
        assert_eq!(
            status["conditions"][1]["reason"],
            "MinimumReplicasUnavailable"
        );
    }

    const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[tokio::test]
    async fn the_replica_set_is_created_in_the_deployments_journey() {
        let capture = ferry_journey::testing::capture();
        let (client, calls) = client(accept_all);
        let dc = controller(client);
        let mut d = deployment(2, "busybox:1");
        d.metadata.annotations = Some(
            [
                (
                    ferry_journey::ANNOTATION.to_string(),
                    TRACEPARENT.to_string(),
                ),
                ("team".to_string(), "web".to_string()),
            ]
            .into(),
        );
        dc.ctx.deployments.seed(vec![d]);
        dc.ctx.replica_sets.seed(vec![]);
        dc.ctx.pods.seed(vec![]);
        dc.clone()
            .reconcile(("default".into(), "web".into()))
            .await
            .expect("synced");
        let created = calls.without_events()[0].clone();
        assert_eq!(
            created.line(),
            "POST /apis/apps/v1/namespaces/default/replicasets?"
        );
        let annotations = &created.body["metadata"]["annotations"];
        assert_eq!(
            annotations["team"], "web",
            "the Deployment's annotations are copied"
        );
        assert!(
            annotations.get(ferry_journey::ANNOTATION).is_none(),
            "but not its journey: {annotations}"
        );
        assert_eq!(capture.steps(), ["created replicaset"]);
        let step = &capture.spans()[0];
        assert_eq!(step.trace_id, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(step.parent_span_id.as_deref(), Some("b7ad6b7169203331"));
        assert_eq!(step.component, "deployment-controller");
        let name = created.body["metadata"]["name"].as_str().expect("named");
        let object = step.object.as_ref().expect("the replicaset");
        assert_eq!(object.key(), format!("replicasets/default/{name}"));
        assert_eq!(object.uid.as_deref(), Some("new-uid"));
        assert_eq!(
            created.traceparent,
            Some(format!("00-{}-{}-01", step.trace_id, step.span_id))
        );
    }

    #[tokio::test]
    async fn scaling_resizes_the_replica_set_and_its_annotations() {
        let capture = ferry_journey::testing::capture();
        let (client, calls) = client(accept_all);
        let dc = controller(client);
        let d = deployment(4, "busybox:1");
        let template = d
            .spec
            .clone()
            .and_then(|s| s.template.into())
            .expect("template");
        let hash = template_hash(&template, None);
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": format!("web-{hash}"), "namespace": "default", "uid": "rs-uid", "resourceVersion": "1",
                "labels": {"app": "web", "pod-template-hash": hash},
                "annotations": {"deployment.kubernetes.io/desired-replicas": "2", "deployment.kubernetes.io/max-replicas": "3", "deployment.kubernetes.io/revision": "1"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d-uid", "controller": true, "blockOwnerDeletion": true}]},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web", "pod-template-hash": hash}},
                "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": hash}}, "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}},
            "status": {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2},
        }))
        .expect("replicaset");
        let mut d = d;
        d.metadata.annotations = Some(
            [
                (
                    "deployment.kubernetes.io/revision".to_string(),
                    "1".to_string(),
                ),
                (
                    ferry_journey::ANNOTATION.to_string(),
                    TRACEPARENT.to_string(),
                ),
            ]
            .into(),
        );
        dc.ctx.deployments.seed(vec![d]);
        dc.ctx.replica_sets.seed(vec![rs]);
        dc.ctx.pods.seed(vec![]);
        dc.clone()
            .reconcile(("default".into(), "web".into()))
            .await
            .expect("synced");
        let made = calls.without_events();
        let lines: Vec<String> = made.iter().map(Call::line).collect();
        assert_eq!(
            lines,
            [
                "PUT /apis/apps/v1/namespaces/default/deployments/web/status?".to_string(),
                format!("PUT /apis/apps/v1/namespaces/default/replicasets/web-{hash}?"),
                "PUT /apis/apps/v1/namespaces/default/deployments/web/status?".to_string(),
            ]
        );
        assert_eq!(
            made[0].body["status"]["conditions"][0]["reason"],
            "FoundNewReplicaSet"
        );
        let scaled = &made[1].body;
        assert_eq!(scaled["spec"]["replicas"], 4);
        assert!(scaled["metadata"]["annotations"]
            .get(ferry_journey::ANNOTATION)
            .is_none());
        assert_eq!(capture.steps(), ["scaled replicaset"]);
        let step = &capture.spans()[0];
        assert_eq!(step.parent_span_id.as_deref(), Some("b7ad6b7169203331"));
        let object = step.object.as_ref().expect("the replicaset");
        assert_eq!(
            (object.key(), object.uid.as_deref()),
            (format!("replicasets/default/web-{hash}"), Some("rs-uid"))
        );
        assert_eq!(
            (
                step.attributes["from"].as_str(),
                step.attributes["to"].as_str()
            ),
            ("2", "4")
        );
        assert_eq!(
            made[1].traceparent,
            Some(format!("00-{}-{}-01", step.trace_id, step.span_id))
        );
        assert_eq!(
            scaled["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"],
            "4"
        );
        assert_eq!(
            scaled["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"],
            "5"
        );
        let status = &made[2].body["status"];
        assert_eq!(
            (
                status["replicas"].clone(),
                status["unavailableReplicas"].clone()
            ),
            (json!(2), json!(2))
        );
        assert_eq!(
            status["conditions"][1]["reason"],
            "MinimumReplicasUnavailable"
        );
    }
}
