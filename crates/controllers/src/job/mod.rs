//! The Job controller: runs pods until `completions` of them succeed, at most `parallelism` at
//! a time, as upstream's `pkg/controller/job` in 1.33 — NonIndexed and Indexed completion
//! modes, `backoffLimit` (10 s doubling delay before a failed pod is replaced, reset by a
//! success), `backoffLimitPerIndex` and `maxFailedIndexes`, `activeDeadlineSeconds`, `suspend`,
//! `podFailurePolicy` (FailJob, FailIndex, Ignore, Count), `successPolicy`,
//! `podReplacementPolicy`, `managedBy` (Jobs of other controllers are left alone) and
//! `ttlSecondsAfterFinished` (upstream's TTL controller, folded in).
//!
//! Pods are counted with the `batch.kubernetes.io/job-tracking` finalizer, as upstream: a pod
//! keeps it until its end is recorded in the Job's status, so a pod deleted early still counts.
//! A Job ends in two steps: the interim `FailureTarget` (or `SuccessCriteriaMet`) condition,
//! then, once its pods are counted and none is terminating, `Failed` (or `Complete`).
//!
//! The decision for one sync is [`decide::decide`], a pure function, then [`decide::settle`]
//! once finalizers are removed; [`indexes`] holds the index sets and [`policy`] the rules
//! about single pods. This file does the I/O and keeps what upstream keeps in memory
//! (expectations, finalizer removals in flight, the backoff record).

pub mod decide;
pub mod indexes;
pub mod policy;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ferry_client::events::{reference, EventType};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::{Api, ResourceExt as _};
use parking_lot::Mutex;
use serde_json::json;

use crate::expectations::Expectations;
use crate::informer::{key_of, Key};
use crate::queue::{Queue, Reconciler};
use crate::replicaset::{api_message, pod_from_template};
use crate::util::{api_code, controller_ref};
use crate::{ApiContext as _, Context, Error};

pub use decide::{decide, settle, Decision, Tracking, TRACKING_FINALIZER};
use decide::{has_tracking_finalizer, is_finished, NewPod};
pub use indexes::Intervals;
use policy::BackoffRecord;
pub use policy::{COMPLETION_INDEX, INDEX_FAILURE_COUNT, INDEX_IGNORED_FAILURE_COUNT};

/// The `managedBy` value of Jobs this controller reconciles (also when unset).
pub const CONTROLLER_NAME: &str = "kubernetes.io/job-controller";

/// Upstream's `names.MaxGeneratedNameLength`: a generated name adds 5 characters.
const MAX_GENERATED_NAME_LENGTH: usize = 63 - 5;

/// What the queue holds: a Job to sync, or a pod whose tracking finalizer may have to go
/// because its Job is gone or finished (upstream's orphan queue).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Work {
    /// Sync this Job.
    Job(Key),
    /// Remove the tracking finalizer of this pod if no unfinished Job of ours owns it.
    OrphanPod(Key),
}

/// The controller.
pub struct JobController {
    ctx: Arc<Context>,
    queue: Arc<Queue<Work>>,
    expectations: Expectations,
    /// Per Job (`namespace/name`), the UIDs of pods whose finalizer removal is in flight
    /// (upstream's `finalizerExpectations`).
    removals: Mutex<HashMap<String, HashSet<String>>>,
    /// Per Job, failures since its last success (upstream's `podBackoffStore`).
    backoff: Mutex<HashMap<String, BackoffRecord>>,
}

impl Reconciler for JobController {
    type Key = Work;
    type Error = Error;
    const NAME: &'static str = "job";

    fn queue(&self) -> &Arc<Queue<Work>> {
        &self.queue
    }

    async fn reconcile(self: Arc<Self>, work: Work) -> Result<Option<Duration>, Error> {
        match work {
            Work::Job(key) => self.sync(key).await,
            Work::OrphanPod(key) => self.sync_orphan_pod(key).await.map(|()| None),
        }
    }
}

fn owner_key(key: &Key) -> String {
    format!("{}/{}", key.0, key.1)
}

/// Whether another controller reconciles the Job (`managedBy`).
fn managed_elsewhere(job: &Job) -> bool {
    job.spec
        .as_ref()
        .and_then(|s| s.managed_by.as_deref())
        .is_some_and(|m| m != CONTROLLER_NAME)
}

fn job_finished(job: &Job) -> bool {
    job.status.as_ref().is_some_and(is_finished)
}

/// The patch removing the tracking finalizer, as upstream's.
fn remove_finalizer_patch() -> serde_json::Value {
    json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER]}})
}

impl JobController {
    /// Registers the handlers.
    pub fn new(ctx: Arc<Context>) -> Arc<JobController> {
        let controller = Arc::new(JobController {
            ctx: ctx.clone(),
            queue: Queue::new(),
            expectations: Expectations::default(),
            removals: Mutex::default(),
            backoff: Mutex::default(),
        });
        let c = controller.clone();
        ctx.jobs.add_handler(move |old, new| match (old, new) {
            (_, Some(job)) => c.queue.add(Work::Job(key_of(job.as_ref()))),
            (Some(job), None) => c.job_deleted(job),
            (None, None) => {}
        });
        let c = controller.clone();
        ctx.pods
            .add_handler(move |old, new| c.pod_changed(old.map(|p| &**p), new.map(|p| &**p)));
        controller
    }

    /// A deleted Job: forget what was kept for it, and free its pods of the finalizer.
    fn job_deleted(&self, job: &Job) {
        let key = owner_key(&key_of(job));
        self.expectations.delete(&key);
        self.removals.lock().remove(&key);
        self.backoff.lock().remove(&key);
        let namespace = job.namespace().unwrap_or_default();
        let uid = job.metadata.uid.clone().unwrap_or_default();
        for pod in self.ctx.pods.list_namespace(&namespace) {
            let owned = controller_ref(&pod.metadata).is_some_and(|r| r.uid == uid);
            if owned && has_tracking_finalizer(&pod) {
                self.queue
                    .add(Work::OrphanPod((namespace.clone(), pod.name_any())));
            }
        }
    }

    /// The Job controlling `pod`, if it exists.
    fn job_of(&self, pod: &Pod) -> Option<Arc<Job>> {
        let r = controller_ref(&pod.metadata).filter(|r| r.kind == "Job")?;
        self.ctx
            .jobs
            .get(&pod.namespace().unwrap_or_default(), &r.name)
            .filter(|j| j.metadata.uid.as_deref() == Some(r.uid.as_str()))
    }

    fn pod_changed(&self, old: Option<&Pod>, new: Option<&Pod>) {
        let Some(pod) = new.or(old) else { return };
        let namespace = pod.namespace().unwrap_or_default();
        let pod_key = (namespace.clone(), pod.name_any());
        let Some(job) = self.job_of(pod) else {
            // No Job of ours (any more): the finalizer has no one to wait for.
            if new.is_some_and(has_tracking_finalizer) {
                self.queue.add(Work::OrphanPod(pod_key));
            }
            return;
        };
        let key = key_of(job.as_ref());
        let owner = owner_key(&key);
        // A finalizer removal is seen once the pod is gone or shows no finalizer.
        if new.is_none_or(|p| !has_tracking_finalizer(p)) {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            if let Some(uids) = self.removals.lock().get_mut(&owner) {
                uids.remove(&uid);
            }
        }
        if job_finished(&job) {
            if new.is_some_and(has_tracking_finalizer) {
                self.queue.add(Work::OrphanPod(pod_key));
            }
            return;
        }
        let pod_name = format!("{namespace}/{}", pod.name_any());
        match (old, new) {
            (None, Some(p)) if p.metadata.deletion_timestamp.is_none() => {
                self.expectations.creation_observed(&owner)
            }
            (None, Some(_)) => self.expectations.deletion_observed(&owner, &pod_name),
            (Some(o), Some(n))
                if o.metadata.deletion_timestamp.is_none()
                    && n.metadata.deletion_timestamp.is_some() =>
            {
                self.expectations.deletion_observed(&owner, &pod_name)
            }
            (Some(_), None) => self.expectations.deletion_observed(&owner, &pod_name),
            _ => {}
        }
        self.queue.add(Work::Job(key));
    }

    /// Removes the tracking finalizer of a pod no unfinished Job of ours owns
    /// (`syncOrphanPod`).
    async fn sync_orphan_pod(&self, key: Key) -> Result<(), Error> {
        let Some(pod) = self.ctx.pods.get(&key.0, &key.1) else {
            return Ok(());
        };
        if !has_tracking_finalizer(&pod) {
            return Ok(());
        }
        if let Some(r) = controller_ref(&pod.metadata) {
            if r.kind != "Job" || r.api_version != "batch/v1" {
                return Ok(());
            }
            if let Some(job) = self.job_of(&pod) {
                if managed_elsewhere(&job) || !job_finished(&job) {
                    return Ok(());
                }
            }
        }
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &key.0);
        match api
            .patch(
                &key.1,
                &PatchParams::default(),
                &Patch::Strategic(remove_finalizer_patch()),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if api_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(e).context("removing the tracking finalizer of an orphan pod"),
        }
    }

    /// The pods the Job controls.
    fn pods_of(&self, job: &Job) -> Vec<Arc<Pod>> {
        let uid = job.metadata.uid.clone().unwrap_or_default();
        self.ctx
            .pods
            .list_namespace(&job.namespace().unwrap_or_default())
            .into_iter()
            .filter(|p| controller_ref(&p.metadata).is_some_and(|r| r.uid == uid))
            .collect()
    }

    fn event(&self, job: &Job, warning: bool, reason: &str, message: String) {
        let kind = if warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        self.ctx
            .recorder("job-controller")
            .event(reference(job), kind, reason, message);
    }

    async fn sync(&self, key: Key) -> Result<Option<Duration>, Error> {
        let Some(job) = self.ctx.jobs.get(&key.0, &key.1) else {
            return Ok(None);
        };
        if managed_elsewhere(&job) {
            return Ok(None);
        }
        let owner = owner_key(&key);
        let now = jiff::Timestamp::now();
        if job_finished(&job) {
            self.backoff.lock().remove(&owner);
            self.removals.lock().remove(&owner);
            return self.finished(&job, &key, now).await;
        }
        let pods = self.pods_of(&job);
        let tracking = Tracking {
            expected_removals: self
                .removals
                .lock()
                .get(&owner)
                .cloned()
                .unwrap_or_default(),
            expectations_satisfied: self.expectations.satisfied(&owner),
            backoff: self.backoff.lock().get(&owner).cloned().unwrap_or_default(),
        };
        let decision = decide(&job, &pods, &tracking, now);
        let pod_api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &key.0);

        // The active pods of a Job that ended go; their finalizers stay, so they are counted.
        for name in &decision.terminate {
            match pod_api.delete(name, &DeleteParams::background()).await {
                Ok(_) => self.event(
                    &job,
                    false,
                    "SuccessfulDelete",
                    format!("Deleted pod: {name}"),
                ),
                Err(e) if api_code(&e) == Some(404) => {}
                Err(e) => return Err(e).context("deleting an active pod of a finished job"),
            }
        }
        self.delete_pods(&job, &owner, &pod_api, &decision.delete)
            .await?;
        self.create_pods(&job, &owner, &pod_api, &decision.create)
            .await?;
        for event in &decision.events {
            self.event(&job, event.warning, event.reason, event.message.clone());
        }

        // The status with the newly finished pods, before their finalizers go.
        let api: Api<Job> = Api::namespaced(self.ctx.client.clone(), &key.0);
        let previous = job.status.clone().unwrap_or_default();
        let mut written = (*job).clone();
        if decision.status != previous {
            written.status = Some(decision.status.clone());
            written = match api
                .replace_status(&key.1, &PostParams::default(), &written)
                .await
            {
                Ok(updated) => updated,
                Err(e) if api_code(&e) == Some(404) => return Ok(None),
                Err(e) => return Err(e).context("updating job status"),
            };
        }
        *self.backoff.lock().entry(owner.clone()).or_default() = decision.backoff.clone();

        let (removed, removal_error) = self
            .remove_finalizers(&owner, &pod_api, &decision.remove_finalizers)
            .await;
        let (status, finished_now) = settle(&decision, &removed, now);
        if status != decision.status {
            written.status = Some(status.clone());
            match api
                .replace_status(&key.1, &PostParams::default(), &written)
                .await
            {
                Ok(_) => {}
                Err(e) if api_code(&e) == Some(404) => return Ok(None),
                Err(e) => return Err(e).context("updating job status"),
            }
        }
        if finished_now {
            self.record_finished(&job, &status);
        }
        if let Some(e) = removal_error {
            return Err(e).context("removing the tracking finalizer of a job pod");
        }
        Ok(decision.requeue_after)
    }

    /// A finished Job: frees pods left with the finalizer, then `ttlSecondsAfterFinished`
    /// deletes it (and, in the foreground, its pods).
    async fn finished(
        &self,
        job: &Job,
        key: &Key,
        now: jiff::Timestamp,
    ) -> Result<Option<Duration>, Error> {
        for pod in self.pods_of(job) {
            if has_tracking_finalizer(&pod) {
                self.queue
                    .add(Work::OrphanPod((key.0.clone(), pod.name_any())));
            }
        }
        let Some(ttl) = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) else {
            return Ok(None);
        };
        let Some(finished) = finish_time(job) else {
            return Ok(None);
        };
        let due = finished + jiff::SignedDuration::from_secs(i64::from(ttl));
        if due > now {
            return Ok(Some(Duration::from_secs_f64(
                now.duration_until(due).as_secs_f64().max(0.0) + 0.5,
            )));
        }
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            ..Default::default()
        };
        let api: Api<Job> = Api::namespaced(self.ctx.client.clone(), &key.0);
        match api.delete(&key.1, &params).await {
            Ok(_) => Ok(None),
            Err(e) if api_code(&e) == Some(404) => Ok(None),
            Err(e) => Err(e).context("deleting a finished job"),
        }
    }

    /// Deletes pods too many: the finalizer first, so they are not counted as failures
    /// (`deleteJobPods`).
    async fn delete_pods(
        &self,
        job: &Job,
        owner: &str,
        api: &Api<Pod>,
        names: &[String],
    ) -> Result<(), Error> {
        if names.is_empty() {
            return Ok(());
        }
        let namespace = job.namespace().unwrap_or_default();
        self.expectations
            .expect_deletions(owner, names.iter().map(|n| format!("{namespace}/{n}")));
        let mut first_error = None;
        for name in names {
            let result = match api
                .patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Strategic(remove_finalizer_patch()),
                )
                .await
            {
                Ok(_) => api
                    .delete(name, &DeleteParams::background())
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => self.event(
                    job,
                    false,
                    "SuccessfulDelete",
                    format!("Deleted pod: {name}"),
                ),
                Err(e) => {
                    // This deletion will not be seen.
                    self.expectations
                        .deletion_observed(owner, &format!("{namespace}/{name}"));
                    if api_code(&e) != Some(404) && first_error.is_none() {
                        first_error = Some(e);
                    }
                }
            }
        }
        match first_error {
            Some(e) => Err(e).context("deleting a job pod"),
            None => Ok(()),
        }
    }

    /// Creates the pods, stopping at the first failure.
    async fn create_pods(
        &self,
        job: &Job,
        owner: &str,
        api: &Api<Pod>,
        pods: &[NewPod],
    ) -> Result<(), Error> {
        if pods.is_empty() {
            return Ok(());
        }
        self.expectations.expect_creations(owner, pods.len() as i64);
        for (i, new) in pods.iter().enumerate() {
            let pod = pod_for(job, new);
            match crate::journey::create_pod(api, &pod, &job.metadata, "job-controller").await {
                Ok(created) => self.event(
                    job,
                    false,
                    "SuccessfulCreate",
                    format!("Created pod: {}", created.name_any()),
                ),
                Err(e) => {
                    // Neither this creation nor the ones skipped will be seen.
                    for _ in i..pods.len() {
                        self.expectations.creation_observed(owner);
                    }
                    self.event(
                        job,
                        true,
                        "FailedCreate",
                        format!("Error creating: {}", api_message(&e)),
                    );
                    return Err(e).context("creating a job pod");
                }
            }
        }
        Ok(())
    }

    /// Removes the tracking finalizer from the pods: the UIDs whose finalizer is gone (or
    /// whose pod is), and the first error.
    async fn remove_finalizers(
        &self,
        owner: &str,
        api: &Api<Pod>,
        pods: &[decide::PodRef],
    ) -> (HashSet<String>, Option<kube::Error>) {
        let mut removed = HashSet::new();
        if pods.is_empty() {
            return (removed, None);
        }
        self.removals
            .lock()
            .entry(owner.to_string())
            .or_default()
            .extend(pods.iter().map(|p| p.uid.clone()));
        let mut first_error = None;
        for pod in pods {
            match api
                .patch(
                    &pod.name,
                    &PatchParams::default(),
                    &Patch::Strategic(remove_finalizer_patch()),
                )
                .await
            {
                Ok(_) => {
                    removed.insert(pod.uid.clone());
                }
                Err(e) => {
                    // No update will show this removal.
                    if let Some(uids) = self.removals.lock().get_mut(owner) {
                        uids.remove(&pod.uid);
                    }
                    if api_code(&e) == Some(404) {
                        removed.insert(pod.uid.clone());
                    } else if first_error.is_none() {
                        first_error = Some(e);
                    }
                }
            }
        }
        (removed, first_error)
    }

    /// Events of a Job that just finished (`recordJobFinished`).
    fn record_finished(&self, job: &Job, status: &k8s_openapi::api::batch::v1::JobStatus) {
        let condition = status
            .conditions
            .iter()
            .flatten()
            .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True");
        match condition {
            Some(c) if c.type_ == "Complete" => {
                let completions = job.spec.as_ref().and_then(|s| s.completions);
                if completions.is_some_and(|c| status.succeeded.unwrap_or(0) > c) {
                    self.event(
                        job,
                        true,
                        "TooManySucceededPods",
                        "Too many succeeded pods running after completion count reached".into(),
                    );
                }
                self.event(job, false, "Completed", "Job completed".into());
            }
            Some(c) => self.event(
                job,
                true,
                c.reason.as_deref().unwrap_or("Failed"),
                c.message.clone().unwrap_or_default(),
            ),
            None => {}
        }
    }
}

fn finish_time(job: &Job) -> Option<jiff::Timestamp> {
    let status = job.status.as_ref()?;
    let condition = status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")?;
    status
        .completion_time
        .as_ref()
        .or(condition.last_transition_time.as_ref())
        .map(|t| t.0)
}

/// Upstream's `podGenerateNameWithIndex`: `<job>-<index>-`, the Job's name cut to fit.
fn generate_name_with_index(job_name: &str, index: u32) -> String {
    let suffix = format!("-{index}-");
    let mut prefix = format!("{job_name}{suffix}");
    if prefix.len() > MAX_GENERATED_NAME_LENGTH {
        let keep = MAX_GENERATED_NAME_LENGTH.saturating_sub(suffix.len());
        let mut cut = keep.min(job_name.len());
        while !job_name.is_char_boundary(cut) {
            cut -= 1;
        }
        prefix = format!("{}{suffix}", &job_name[..cut]);
    }
    prefix
}

/// The pod to create from the Job's template: owned by the Job, with the tracking finalizer;
/// for Indexed Jobs the index in an annotation, a label, the hostname and
/// `JOB_COMPLETION_INDEX`, and the index's failure counts with `backoffLimitPerIndex`.
pub fn pod_for(job: &Job, new: &NewPod) -> Pod {
    let template = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut pod = pod_from_template(&template, &job.metadata, "Job");
    let finalizers = pod.metadata.finalizers.get_or_insert_with(Vec::new);
    if !finalizers.iter().any(|f| f == TRACKING_FINALIZER) {
        finalizers.push(TRACKING_FINALIZER.into());
    }
    let Some(index) = new.index else {
        return pod;
    };
    let name = job.name_any();
    pod.metadata.generate_name = Some(generate_name_with_index(&name, index));
    let annotations = pod
        .metadata
        .annotations
        .get_or_insert_with(Default::default);
    annotations.insert(COMPLETION_INDEX.into(), index.to_string());
    if let Some((failures, ignored)) = new.failure_counts {
        annotations.insert(INDEX_FAILURE_COUNT.into(), failures.to_string());
        if ignored > 0 {
            annotations.insert(INDEX_IGNORED_FAILURE_COUNT.into(), ignored.to_string());
        }
    }
    pod.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(COMPLETION_INDEX.into(), index.to_string());
    if let Some(spec) = pod.spec.as_mut() {
        spec.hostname = Some(format!("{name}-{index}"));
        for container in spec
            .init_containers
            .iter_mut()
            .flatten()
            .chain(spec.containers.iter_mut())
        {
            let env = container.env.get_or_insert_with(Vec::new);
            if env.iter().any(|e| e.name == "JOB_COMPLETION_INDEX") {
                continue;
            }
            env.push(EnvVar {
                name: "JOB_COMPLETION_INDEX".into(),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: format!("metadata.labels['{COMPLETION_INDEX}']"),
                        api_version: None,
                    }),
                    ..Default::default()
                }),
            });
        }
    }
    pod
}
