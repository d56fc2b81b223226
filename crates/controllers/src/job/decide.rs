//! One sync of a Job as a pure function, upstream's `syncJob`, `manageJob` and
//! `trackJobStatusAndRemoveFinalizers`: [`decide`] says which pods to create and delete, the
//! status to write before any tracking finalizer is removed (with the newly finished pods in
//! `uncountedTerminatedPods`, and an interim `FailureTarget` or `SuccessCriteriaMet`
//! condition), and which finalizers to remove; [`settle`] is the status once they are gone:
//! the pods counted, and the final `Failed` or `Complete` condition once no pod is left
//! uncounted or terminating.
//!
//! Pods are counted once: a pod carries the `batch.kubernetes.io/job-tracking` finalizer while
//! it is not counted; a finished pod's UID goes to `uncountedTerminatedPods` (Indexed Jobs
//! record succeeded pods by index in `completedIndexes` instead), the finalizer is removed, and
//! the UID moves into the `succeeded` or `failed` counter.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt as _;

use super::indexes::Intervals;
use super::policy::{
    failure_counts, finished_time, index_absolute_failure_count, index_failure_count,
    match_pod_failure_policy, match_success_policy, remaining_backoff_for_index,
    replacement_failure_counts, BackoffRecord, RuleAction, COMPLETION_INDEX,
};
use crate::replicaset::rank_for_deletion;
use crate::util::{is_pod_active, pod_ready};

/// The finalizer that keeps a Job's pod until the Job has counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// Upstream's `MaxUncountedPods`: at most this many pods wait in `uncountedTerminatedPods`.
const MAX_UNCOUNTED_PODS: usize = 500;
/// Upstream's `MaxPodCreateDeletePerSync`.
const MAX_POD_CREATE_DELETE_PER_SYNC: usize = 500;

/// What the controller knows of a Job beyond the Job and its pods.
#[derive(Debug, Clone, Default)]
pub struct Tracking {
    /// UIDs of pods whose finalizer removal was sent and not seen yet.
    pub expected_removals: HashSet<String>,
    /// Whether the creations and deletions asked for earlier have all been seen.
    pub expectations_satisfied: bool,
    /// Failures since the last success, from earlier syncs.
    pub backoff: BackoffRecord,
}

/// A pod to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPod {
    /// Its completion index (Indexed Jobs).
    pub index: Option<u32>,
    /// Its index's failures so far, counted and ignored (with `backoffLimitPerIndex`).
    pub failure_counts: Option<(i32, i32)>,
}

/// A pod whose tracking finalizer goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    /// Its name.
    pub name: String,
    /// Its UID.
    pub uid: String,
}

/// An event to record on the Job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEvent {
    /// `Normal` or `Warning`.
    pub warning: bool,
    /// The reason.
    pub reason: &'static str,
    /// The message.
    pub message: String,
}

/// What one sync does.
#[derive(Debug, Default)]
pub struct Decision {
    /// Pods to create.
    pub create: Vec<NewPod>,
    /// Pods too many (or of a suspended Job): their finalizer is removed, then they are deleted.
    pub delete: Vec<String>,
    /// The active pods of a Job that failed or succeeded: deleted, keeping their finalizer, so
    /// they are counted.
    pub terminate: Vec<String>,
    /// Pods whose tracking finalizer goes once `status` is written.
    pub remove_finalizers: Vec<PodRef>,
    /// The UIDs of the pods holding the finalizer before the removals.
    pub with_finalizer: BTreeSet<String>,
    /// The status to write first.
    pub status: JobStatus,
    /// The final condition (`Failed` or `Complete`), added by [`settle`] when it may be.
    pub finished: Option<JobCondition>,
    /// Whether `uncountedTerminatedPods` is full, so more pods wait for the next sync.
    pub reached_max_uncounted: bool,
    /// The backoff record to keep after this sync.
    pub backoff: BackoffRecord,
    /// Events (suspension and resumption).
    pub events: Vec<JobEvent>,
    /// Look again after this (backoff, deadline).
    pub requeue_after: Option<Duration>,
}

impl Decision {
    fn requeue(&mut self, after: Duration) {
        // Upstream's batching period is the shortest delay.
        let after = after.max(Duration::from_secs(1));
        self.requeue_after = Some(self.requeue_after.map_or(after, |r| r.min(after)));
    }
}

/// Whether the condition of this type is True.
pub fn has_condition(status: &JobStatus, type_: &str) -> bool {
    find_condition(status, type_).is_some_and(|c| c.status == "True")
}

fn find_condition<'a>(status: &'a JobStatus, type_: &str) -> Option<&'a JobCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// `Complete` or `Failed` (`IsJobFinished`).
pub fn is_finished(status: &JobStatus) -> bool {
    has_condition(status, "Complete") || has_condition(status, "Failed")
}

/// A True condition (`newCondition`).
pub fn condition(type_: &str, reason: &str, message: &str, now: Timestamp) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Sets the condition of `type_` to this status, reason and message, replacing it if any of
/// them differs; a False condition is not added (`ensureJobConditionStatus`). Whether the
/// list changed.
fn ensure_condition(
    conditions: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    let new = JobCondition {
        status: status.into(),
        ..condition(type_, reason, message, now)
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            let same = c.status == status
                && c.reason.as_deref().unwrap_or("") == reason
                && c.message.as_deref().unwrap_or("") == message;
            if !same {
                *c = new;
            }
            !same
        }
        None if status != "False" => {
            conditions.push(new);
            true
        }
        None => false,
    }
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// A pod's completion index, if it has a valid one.
pub fn pod_index(pod: &Pod) -> Option<u32> {
    pod.annotations().get(COMPLETION_INDEX)?.parse().ok()
}

fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

/// Whether the pod holds the tracking finalizer.
pub fn has_tracking_finalizer(pod: &Pod) -> bool {
    pod.finalizers().iter().any(|f| f == TRACKING_FINALIZER)
}

/// Whether a pod counts as failed (`isPodFailed`): Failed, or — unless only failed pods are
/// replaced — being deleted before it succeeded.
fn pod_failed(pod: &Pod, only_replace_failed: bool) -> bool {
    phase(pod) == "Failed"
        || (!only_replace_failed
            && pod.metadata.deletion_timestamp.is_some()
            && phase(pod) != "Succeeded")
}

fn nonzero(value: usize) -> Option<i32> {
    (value > 0).then(|| i32::try_from(value).unwrap_or(i32::MAX))
}

fn count_of(value: Option<i32>) -> usize {
    usize::try_from(value.unwrap_or(0)).unwrap_or(0)
}

/// The Job's settings, read once.
struct Settings<'a> {
    job: &'a Job,
    indexed: bool,
    per_index: Option<i32>,
    completions: Option<u32>,
    parallelism: usize,
    only_replace_failed: bool,
    suspended: bool,
    /// The Job was counted before pods carried the tracking finalizer (its status has no
    /// `uncountedTerminatedPods`): its pods are counted again, as if they carried it.
    legacy: bool,
}

impl Settings<'_> {
    /// Whether the pod is still to be counted when it finishes.
    fn tracked(&self, pod: &Pod) -> bool {
        self.legacy || has_tracking_finalizer(pod)
    }

    fn policy(&self) -> Option<&k8s_openapi::api::batch::v1::PodFailurePolicy> {
        self.job.spec.as_ref()?.pod_failure_policy.as_ref()
    }

    /// The pod's index if it is one of the Job's (Indexed Jobs).
    fn valid_index(&self, pod: &Pod) -> Option<u32> {
        pod_index(pod).filter(|i| self.completions.is_some_and(|c| *i < c))
    }

    fn failed(&self, pod: &Pod) -> bool {
        pod_failed(pod, self.only_replace_failed)
    }

    /// Whether the failed pod fails its index (`isIndexFailed`).
    fn index_failed(&self, pod: &Pod) -> bool {
        let Some(limit) = self.per_index else {
            return false;
        };
        if !self.failed(pod) {
            return false;
        }
        let counts = match match_pod_failure_policy(self.policy(), pod) {
            Some(RuleAction::FailIndex) => return true,
            Some(RuleAction::Ignore) => false,
            _ => true,
        };
        counts && index_failure_count(pod) >= limit
    }
}

/// The Job controller's decision for one sync of an unfinished Job (pure: the Job, the pods it
/// controls, what the controller tracks, the time).
pub fn decide(job: &Job, pods: &[Arc<Pod>], tracking: &Tracking, now: Timestamp) -> Decision {
    // Times are written to the second.
    let now = Timestamp::from_second(now.as_second()).unwrap_or(now);
    let spec = job.spec.clone().unwrap_or_default();
    let settings = Settings {
        job,
        indexed: spec.completion_mode.as_deref() == Some("Indexed"),
        per_index: spec
            .backoff_limit_per_index
            .filter(|_| spec.completion_mode.as_deref() == Some("Indexed")),
        completions: spec.completions.map(|c| u32::try_from(c).unwrap_or(0)),
        parallelism: usize::try_from(spec.parallelism.unwrap_or(1)).unwrap_or(0),
        only_replace_failed: spec.pod_replacement_policy.as_deref() == Some("Failed")
            || spec.pod_failure_policy.is_some(),
        suspended: spec.suspend == Some(true),
        legacy: job
            .status
            .as_ref()
            .is_none_or(|s| s.uncounted_terminated_pods.is_none()),
    };
    let s = &settings;
    let policy = s.policy();
    let completions = s.completions.unwrap_or(0);
    let mut status = job.status.clone().unwrap_or_default();
    if s.legacy {
        status.succeeded = None;
        status.failed = None;
    }
    let uncounted_before = status.uncounted_terminated_pods.clone().unwrap_or_default();
    let uncounted_succeeded: HashSet<String> = uncounted_before
        .succeeded
        .iter()
        .flatten()
        .cloned()
        .collect();
    let uncounted_failed: HashSet<String> =
        uncounted_before.failed.iter().flatten().cloned().collect();
    let expected = &tracking.expected_removals;

    let active_pods: Vec<&Arc<Pod>> = pods.iter().filter(|p| is_pod_active(p)).collect();
    let mut ready = active_pods.iter().filter(|p| pod_ready(p).0).count();
    let mut terminating = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some() && !is_terminal(p))
        .count();
    let mut active = active_pods.len();

    // Finished pods not counted yet (`getNewFinishedPods`).
    let fresh = |p: &Pod, uncounted: &HashSet<String>| {
        s.tracked(p)
            && !uncounted.contains(uid(p))
            && !expected.contains(uid(p))
            && (!s.indexed || s.valid_index(p).is_some())
    };
    let new_succeeded: Vec<&Pod> = pods
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| fresh(p, &uncounted_succeeded) && phase(p) == "Succeeded")
        .collect();
    let new_failed: Vec<&Pod> = pods
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| fresh(p, &uncounted_failed) && s.failed(p))
        .collect();
    let mut succeeded =
        count_of(status.succeeded) + new_succeeded.len() + uncounted_succeeded.len();
    let failed = count_of(status.failed)
        + new_failed
            .iter()
            .filter(|p| failure_counts(policy, p))
            .count()
        + uncounted_failed.len();
    if status.start_time.is_none() && !s.suspended {
        status.start_time = Some(Time(now));
    }
    let mut decision = Decision {
        backoff: tracking.backoff.next(&new_succeeded, &new_failed),
        ..Decision::default()
    };

    // Why the Job ends, if it does.
    let mut finished: Option<JobCondition> = find_condition(&status, "SuccessCriteriaMet")
        .filter(|c| c.status == "True")
        .cloned();
    if finished.is_none() {
        if let Some(target) =
            find_condition(&status, "FailureTarget").filter(|c| c.status == "True")
        {
            finished = Some(condition(
                "Failed",
                target.reason.as_deref().unwrap_or(""),
                target.message.as_deref().unwrap_or(""),
                now,
            ));
        } else if let Some(message) = pods.iter().filter(|p| s.failed(p)).find_map(|p| {
            match match_pod_failure_policy(policy, p) {
                Some(RuleAction::FailJob(message)) => Some(message),
                _ => None,
            }
        }) {
            finished = Some(condition(
                "FailureTarget",
                "PodFailurePolicy",
                &message,
                now,
            ));
        }
    }
    let backoff_limit = usize::try_from(spec.backoff_limit.unwrap_or(6)).unwrap_or(0);
    if finished.is_none() {
        let deadline = spec
            .active_deadline_seconds
            .zip(status.start_time.as_ref())
            .map(|(secs, start)| start.0 + SignedDuration::from_secs(secs));
        let deadline = deadline.filter(|_| !s.suspended);
        if failed > backoff_limit || past_backoff_limit_on_failure(job, pods, backoff_limit) {
            finished = Some(condition(
                "FailureTarget",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
                now,
            ));
        } else if deadline.is_some_and(|due| due <= now) {
            finished = Some(condition(
                "FailureTarget",
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
                now,
            ));
        } else if let Some(due) = deadline {
            decision.requeue(Duration::try_from(now.duration_until(due)).unwrap_or_default());
        }
    }

    let mut previous_succeeded = Intervals::default();
    let mut succeeded_indexes = Intervals::default();
    let mut failed_indexes: Option<Intervals> = None;
    let mut delayed: BTreeMap<u32, &Pod> = BTreeMap::new();
    if s.indexed {
        previous_succeeded = Intervals::parse(
            status.completed_indexes.as_deref().unwrap_or(""),
            completions,
        );
        let done: BTreeSet<u32> = pods
            .iter()
            .filter(|p| phase(p) == "Succeeded" && s.tracked(p))
            .filter_map(|p| s.valid_index(p))
            .collect();
        succeeded_indexes = previous_succeeded.with_indexes(&done);
        succeeded = succeeded_indexes.total();
        if s.per_index.is_some() {
            let newly_failed: BTreeSet<u32> = pods
                .iter()
                .filter(|p| s.tracked(p) && s.index_failed(p))
                .filter_map(|p| s.valid_index(p))
                .collect();
            let all_failed =
                Intervals::parse(status.failed_indexes.as_deref().unwrap_or(""), completions)
                    .with_indexes(&newly_failed);
            if finished.is_none() {
                let too_many = spec
                    .max_failed_indexes
                    .is_some_and(|max| all_failed.total() > count_of(Some(max)));
                if too_many {
                    finished = Some(condition(
                        "FailureTarget",
                        "MaxFailedIndexesExceeded",
                        "Job has exceeded the specified maximal number of failed indexes",
                        now,
                    ));
                } else if !all_failed.is_empty()
                    && all_failed.total() + succeeded_indexes.total() >= completions as usize
                {
                    finished = Some(condition(
                        "FailureTarget",
                        "FailedIndexes",
                        "Job has failed indexes",
                        now,
                    ));
                }
            }
            delayed = pods_with_delayed_deletion(
                s,
                pods,
                expected,
                &succeeded_indexes,
                &all_failed,
                &active_pods,
            );
            failed_indexes = Some(all_failed);
        }
        if finished.is_none() {
            if let Some(message) = match_success_policy(
                spec.success_policy.as_ref(),
                completions,
                &succeeded_indexes,
            ) {
                finished = Some(condition(
                    "SuccessCriteriaMet",
                    "SuccessPolicy",
                    &message,
                    now,
                ));
            }
        }
    }

    let conditions = status.conditions.get_or_insert_with(Vec::new);
    if finished.is_some() {
        // The Job is done: its active pods go, and are counted once gone.
        decision.terminate = active_pods.iter().map(|p| p.name_any()).collect();
        let deleted_ready = active_pods.iter().filter(|p| pod_ready(p).0).count();
        terminating += active;
        ready -= deleted_ready;
        active = 0;
        if !tracking.expectations_satisfied {
            // Pods may exist that the informer has not shown yet.
            finished = None;
        }
    } else {
        let mut managed = false;
        if tracking.expectations_satisfied && job.metadata.deletion_timestamp.is_none() {
            let counts = Counts {
                succeeded,
                active: &mut active,
                ready: &mut ready,
                terminating: &mut terminating,
            };
            manage(
                s,
                pods,
                &active_pods,
                counts,
                &succeeded_indexes,
                failed_indexes.as_ref(),
                &delayed,
                now,
                &mut decision,
            );
            managed = true;
        }
        let complete = match s.completions {
            None => succeeded > 0 && active == 0,
            Some(c) => succeeded >= c as usize && active == 0,
        };
        if complete {
            finished = Some(condition(
                "SuccessCriteriaMet",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                now,
            ));
        } else if managed {
            if s.suspended {
                if ensure_condition(
                    conditions,
                    "Suspended",
                    "True",
                    "JobSuspended",
                    "Job suspended",
                    now,
                ) {
                    decision.events.push(JobEvent {
                        warning: false,
                        reason: "Suspended",
                        message: "Job suspended".into(),
                    });
                }
            } else if ensure_condition(
                conditions,
                "Suspended",
                "False",
                "JobResumed",
                "Job resumed",
                now,
            ) {
                decision.events.push(JobEvent {
                    warning: false,
                    reason: "Resumed",
                    message: "Job resumed".into(),
                });
                // activeDeadlineSeconds counts the time a Job is continuously active.
                status.start_time = Some(Time(now));
            }
        }
    }
    status.active = nonzero(active);
    status.ready = Some(i32::try_from(ready).unwrap_or(i32::MAX));
    status.terminating = Some(i32::try_from(terminating).unwrap_or(i32::MAX));

    // Count the finished pods (`trackJobStatusAndRemoveFinalizers`).
    let with_finalizer: BTreeSet<String> = pods
        .iter()
        .filter(|p| s.tracked(p) && !expected.contains(uid(p)))
        .map(|p| uid(p).to_string())
        .collect();
    clean_uncounted(&mut status, &with_finalizer);
    let mut uncounted = status.uncounted_terminated_pods.clone().unwrap_or_default();
    let (mut uncounted_s, mut uncounted_f) = (
        uncounted.succeeded.take().unwrap_or_default(),
        uncounted.failed.take().unwrap_or_default(),
    );
    let mut ordered: Vec<&Arc<Pod>> = pods.iter().collect();
    if s.indexed {
        ordered.sort_by_key(|p| pod_index(p));
    }
    let mut new_indexes: BTreeSet<u32> = BTreeSet::new();
    let failing = finished
        .as_ref()
        .is_some_and(|c| c.type_ != "SuccessCriteriaMet");
    for pod in ordered {
        if !s.tracked(pod) || expected.contains(uid(pod)) {
            continue;
        }
        let failed_pod = s.failed(pod);
        // A failed pod waiting for its index's replacement keeps its finalizer.
        let awaits_replacement = pod_index(pod)
            .and_then(|i| delayed.get(&i))
            .is_some_and(|d| uid(d) == uid(pod));
        let removable = job.metadata.deletion_timestamp.is_some()
            || finished.is_some()
            || phase(pod) == "Succeeded"
            || (failed_pod && !awaits_replacement);
        if !removable {
            continue;
        }
        decision.remove_finalizers.push(PodRef {
            name: pod.name_any(),
            uid: uid(pod).to_string(),
        });
        if phase(pod) == "Succeeded" && !uncounted_failed.contains(uid(pod)) {
            if s.indexed {
                if let Some(index) = s.valid_index(pod).filter(|i| !previous_succeeded.has(*i)) {
                    new_indexes.insert(index);
                }
            } else if !uncounted_succeeded.contains(uid(pod)) {
                uncounted_s.push(uid(pod).to_string());
            }
        } else if (failed_pod || failing)
            && !uncounted_failed.contains(uid(pod))
            && (!s.indexed || s.valid_index(pod).is_some())
            && failure_counts(policy, pod)
        {
            uncounted_f.push(uid(pod).to_string());
        }
        if new_indexes.len() + uncounted_s.len() + uncounted_f.len() >= MAX_UNCOUNTED_PODS {
            decision.reached_max_uncounted = true;
            break;
        }
    }
    uncounted.succeeded = (!uncounted_s.is_empty()).then_some(uncounted_s);
    uncounted.failed = (!uncounted_f.is_empty()).then_some(uncounted_f);
    status.uncounted_terminated_pods = Some(uncounted);
    if s.indexed {
        let all = succeeded_indexes.with_indexes(&new_indexes);
        status.succeeded = nonzero(all.total());
        status.completed_indexes = Some(all.to_string()).filter(|s| !s.is_empty());
        status.failed_indexes = failed_indexes.map(|f| f.to_string());
    }
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    match finished {
        Some(c) if c.type_ == "FailureTarget" => {
            let message = c.message.clone().unwrap_or_default();
            let reason = c.reason.clone().unwrap_or_default();
            conditions.push(c);
            finished = Some(condition("Failed", &reason, &message, now));
        }
        Some(c) if c.type_ == "SuccessCriteriaMet" => {
            if !conditions
                .iter()
                .any(|x| x.type_ == "SuccessCriteriaMet" && x.status == "True")
            {
                conditions.push(c.clone());
            }
            finished = Some(condition(
                "Complete",
                c.reason.as_deref().unwrap_or(""),
                c.message.as_deref().unwrap_or(""),
                now,
            ));
        }
        _ => {}
    }
    if conditions.is_empty() {
        status.conditions = None;
    }
    decision.with_finalizer = with_finalizer;
    decision.finished = finished;
    decision.status = status;
    decision
}

/// The status once the finalizers of `removed` (UIDs) are gone (`cleanUncountedPodsWithoutFinalizers`
/// and `enactJobFinished`): their pods counted, and the final condition added when nothing is
/// left uncounted or terminating. Whether the Job finished is the second value.
pub fn settle(decision: &Decision, removed: &HashSet<String>, now: Timestamp) -> (JobStatus, bool) {
    let now = Timestamp::from_second(now.as_second()).unwrap_or(now);
    let mut status = decision.status.clone();
    let still: BTreeSet<String> = decision
        .with_finalizer
        .iter()
        .filter(|u| !removed.contains(*u))
        .cloned()
        .collect();
    clean_uncounted(&mut status, &still);
    let Some(finished) = decision
        .finished
        .as_ref()
        .filter(|_| !decision.reached_max_uncounted)
    else {
        return (status, false);
    };
    let uncounted = status.uncounted_terminated_pods.as_ref();
    let waiting = uncounted.is_some_and(|u| u.succeeded.is_some() || u.failed.is_some())
        || status.terminating.unwrap_or(0) > 0;
    if waiting {
        return (status, false);
    }
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    ensure_condition(
        conditions,
        &finished.type_,
        "True",
        finished.reason.as_deref().unwrap_or(""),
        finished.message.as_deref().unwrap_or(""),
        now,
    );
    if finished.type_ == "Complete" {
        status.completion_time = Some(Time(now));
    }
    (status, true)
}

/// Moves the uncounted pods whose finalizer is gone (not in `with_finalizer`) into the
/// counters.
fn clean_uncounted(status: &mut JobStatus, with_finalizer: &BTreeSet<String>) {
    let Some(uncounted) = status.uncounted_terminated_pods.as_mut() else {
        return;
    };
    let moved = |list: &mut Option<Vec<String>>| {
        let before = list.as_ref().map_or(0, Vec::len);
        let kept: Vec<String> = list
            .take()
            .into_iter()
            .flatten()
            .filter(|u| with_finalizer.contains(u))
            .collect();
        let gone = before - kept.len();
        *list = (!kept.is_empty()).then_some(kept);
        gone
    };
    let (succeeded, failed) = (
        moved(&mut uncounted.succeeded),
        moved(&mut uncounted.failed),
    );
    if succeeded > 0 {
        status.succeeded = nonzero(count_of(status.succeeded) + succeeded);
    }
    if failed > 0 {
        status.failed = nonzero(count_of(status.failed) + failed);
    }
}

/// With `restartPolicy: OnFailure`, whether the restarts of running pods reach the backoff
/// limit (`pastBackoffLimitOnFailure`).
fn past_backoff_limit_on_failure(job: &Job, pods: &[Arc<Pod>], limit: usize) -> bool {
    let on_failure = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.restart_policy.as_deref())
        == Some("OnFailure");
    if !on_failure {
        return false;
    }
    let restarts: usize = pods
        .iter()
        .filter(|p| matches!(phase(p), "Running" | "Pending"))
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .map(|c| usize::try_from(c.restart_count).unwrap_or(0))
        .sum();
    if limit == 0 {
        restarts > 0
    } else {
        restarts >= limit
    }
}

/// Per index without a running pod, the last failed pod whose finalizer stays until its
/// replacement exists, so the replacement can carry its failure count
/// (`getPodsWithDelayedDeletionPerIndex`).
fn pods_with_delayed_deletion<'a>(
    s: &Settings<'_>,
    pods: &'a [Arc<Pod>],
    expected: &HashSet<String>,
    succeeded: &Intervals,
    failed: &Intervals,
    active: &[&Arc<Pod>],
) -> BTreeMap<u32, &'a Pod> {
    let active_indexes: BTreeSet<u32> = active.iter().filter_map(|p| pod_index(p)).collect();
    let mut result: BTreeMap<u32, &Pod> = BTreeMap::new();
    for pod in pods {
        if !s.tracked(pod) || expected.contains(uid(pod)) || !s.failed(pod) {
            continue;
        }
        let Some(index) = s.valid_index(pod) else {
            continue;
        };
        if succeeded.has(index) || failed.has(index) || active_indexes.contains(&index) {
            continue;
        }
        match result.get(&index) {
            Some(last)
                if !(index_absolute_failure_count(last) <= index_absolute_failure_count(pod)
                    && finished_time(pod) >= finished_time(last)) => {}
            _ => {
                result.insert(index, pod.as_ref());
            }
        }
    }
    result
}

/// The counts `manage` moves.
struct Counts<'a> {
    succeeded: usize,
    active: &'a mut usize,
    ready: &'a mut usize,
    terminating: &'a mut usize,
}

/// Keeps the wanted number of pods running (`manageJob`): deletes the extra ones (all of a
/// suspended Job), else creates the missing ones once the backoff allows.
#[allow(clippy::too_many_arguments)]
fn manage(
    s: &Settings<'_>,
    pods: &[Arc<Pod>],
    active_pods: &[&Arc<Pod>],
    counts: Counts<'_>,
    succeeded_indexes: &Intervals,
    failed_indexes: Option<&Intervals>,
    delayed: &BTreeMap<u32, &Pod>,
    now: Timestamp,
    decision: &mut Decision,
) {
    let active = *counts.active;
    let mut remove = |chosen: Vec<&Arc<Pod>>, decision: &mut Decision| {
        *counts.active -= chosen.len();
        *counts.terminating += chosen.len();
        *counts.ready -= chosen.iter().filter(|p| pod_ready(p).0).count();
        decision.delete = chosen.iter().map(|p| p.name_any()).collect();
    };
    if s.suspended {
        remove(pods_for_removal(s, active_pods, active), decision);
        return;
    }
    let want = match s.completions {
        None if counts.succeeded > 0 => active,
        None => s.parallelism,
        Some(c) => (c as usize)
            .saturating_sub(counts.succeeded)
            .min(s.parallelism),
    };
    let mut extra = pods_for_removal(s, active_pods, active.saturating_sub(want));
    extra.truncate(MAX_POD_CREATE_DELETE_PER_SYNC);
    if !extra.is_empty() {
        // Deleting and creating in one sync could fight; deleting goes first.
        remove(extra, decision);
        return;
    }
    let terminating = if s.only_replace_failed {
        *counts.terminating
    } else {
        0
    };
    let missing = want.saturating_sub(terminating + active);
    if missing == 0 {
        return;
    }
    if s.per_index.is_none() {
        let remaining = decision.backoff.remaining(now);
        if !remaining.is_zero() {
            decision.requeue(remaining);
            return;
        }
    }
    let missing = missing.min(MAX_POD_CREATE_DELETE_PER_SYNC);
    let create: Vec<NewPod> = if s.indexed {
        let completions = s.completions.unwrap_or(0);
        let mut taken: BTreeSet<u32> = active_pods.iter().filter_map(|p| pod_index(p)).collect();
        if s.only_replace_failed {
            taken.extend(
                pods.iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_some() && !is_terminal(p))
                    .filter_map(|p| pod_index(p)),
            );
        }
        let mut not_pending = succeeded_indexes.with_indexes(&taken);
        if let Some(failed) = failed_indexes {
            not_pending = not_pending.merge(failed);
        }
        let mut indexes = not_pending.first_missing(missing, completions);
        if s.per_index.is_some() {
            // Each index waits out its own backoff.
            let waits: Vec<(u32, Duration)> = indexes
                .iter()
                .map(|i| {
                    (
                        *i,
                        remaining_backoff_for_index(delayed.get(i).copied(), now),
                    )
                })
                .collect();
            indexes = waits
                .iter()
                .filter(|(_, w)| w.is_zero())
                .map(|(i, _)| *i)
                .collect();
            if indexes.is_empty() {
                if let Some(shortest) = waits.iter().map(|(_, w)| *w).min() {
                    decision.requeue(shortest);
                }
                return;
            }
        }
        let policy = s.policy();
        indexes
            .into_iter()
            .map(|index| NewPod {
                index: Some(index),
                failure_counts: s
                    .per_index
                    .map(|_| replacement_failure_counts(policy, delayed.get(&index).copied())),
            })
            .collect()
    } else {
        vec![
            NewPod {
                index: None,
                failure_counts: None,
            };
            missing
        ]
    };
    *counts.active += create.len();
    decision.create = create;
}

/// The active pods to delete first (`activePodsForRemoval`): for Indexed Jobs every pod
/// without a valid index and all but the best of each repeated index; then, up to
/// `at_least`, the least advanced (unscheduled, pending, not ready, newest).
fn pods_for_removal<'a>(
    s: &Settings<'_>,
    active: &[&'a Arc<Pod>],
    at_least: usize,
) -> Vec<&'a Arc<Pod>> {
    let rank = |a: &&Arc<Pod>, b: &&Arc<Pod>| rank_for_deletion(a, 0, b, 0);
    let mut remove: Vec<&Arc<Pod>> = Vec::new();
    let mut left: Vec<&Arc<Pod>> = Vec::new();
    if s.indexed {
        let mut by_index: BTreeMap<Option<u32>, Vec<&Arc<Pod>>> = BTreeMap::new();
        for pod in active {
            by_index.entry(s.valid_index(pod)).or_default().push(pod);
        }
        for (index, mut same) in by_index {
            if index.is_none() {
                remove.extend(same);
                continue;
            }
            same.sort_by(rank);
            let best = same.pop();
            remove.extend(same);
            left.extend(best);
        }
    } else {
        left = active.to_vec();
    }
    if remove.len() < at_least {
        left.sort_by(rank);
        let more = at_least - remove.len();
        remove.extend(left.into_iter().take(more));
    }
    remove
}
