//! The Job controller: runs pods until `completions` of them succeed, at most `parallelism` at
//! a time, as upstream's `pkg/controller/job` — NonIndexed and Indexed completion modes,
//! `backoffLimit` (with upstream's 10 s doubling delay before a failed pod is replaced),
//! `activeDeadlineSeconds`, `suspend`, the basics of `podFailurePolicy` (FailJob, Ignore and
//! Count on exit codes and pod conditions) and `ttlSecondsAfterFinished` (upstream's TTL
//! controller, folded in). The decision for one sync is [`decide`], a pure function.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ferry_client::events::{reference, EventType};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, PodFailurePolicyRule};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, PostParams, PropagationPolicy};
use kube::{Api, ResourceExt as _};

use crate::expectations::Expectations;
use crate::informer::{key_of, Key};
use crate::queue::{Queue, Reconciler};
use crate::replicaset::{api_message, pod_from_template};
use crate::util::{api_code, controller_ref, pod_ready};
use crate::{ApiContext as _, Context, Error};

/// The annotation (and label) carrying an Indexed Job pod's index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// Upstream's pod replacement backoff after failures: 10 s doubling, at most 6 min.
const BACKOFF_BASE: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(360);

/// The controller.
pub struct JobController {
    ctx: Arc<Context>,
    queue: Arc<Queue<Key>>,
    expectations: Expectations,
}

impl Reconciler for JobController {
    type Key = Key;
    type Error = Error;
    const NAME: &'static str = "job";

    fn queue(&self) -> &Arc<Queue<Key>> {
        &self.queue
    }

    async fn reconcile(self: Arc<Self>, key: Key) -> Result<Option<Duration>, Error> {
        self.sync(key).await
    }
}

impl JobController {
    /// Registers the handlers.
    pub fn new(ctx: Arc<Context>) -> Arc<JobController> {
        let controller = Arc::new(JobController {
            ctx: ctx.clone(),
            queue: Queue::new(),
            expectations: Expectations::default(),
        });
        let c = controller.clone();
        ctx.jobs.add_handler(move |old, new| match (old, new) {
            (_, Some(job)) => c.queue.add(key_of(job.as_ref())),
            (Some(job), None) => c.expectations.delete(&owner_key(&key_of(job.as_ref()))),
            (None, None) => {}
        });
        let c = controller.clone();
        ctx.pods.add_handler(move |old, new| {
            let Some(pod) = new.or(old) else { return };
            let Some(r) = controller_ref(&pod.metadata).filter(|r| r.kind == "Job") else {
                return;
            };
            let namespace = pod.namespace().unwrap_or_default();
            let Some(job) = c
                .ctx
                .jobs
                .get(&namespace, &r.name)
                .filter(|j| j.metadata.uid.as_deref() == Some(r.uid.as_str()))
            else {
                return;
            };
            let key = key_of(job.as_ref());
            match (old, new) {
                (None, Some(_)) => c.expectations.creation_observed(&owner_key(&key)),
                (Some(o), Some(n))
                    if o.metadata.deletion_timestamp.is_none()
                        && n.metadata.deletion_timestamp.is_some() =>
                {
                    c.expectations.deletion_observed(
                        &owner_key(&key),
                        &format!("{namespace}/{}", n.name_any()),
                    )
                }
                (Some(o), None) => c
                    .expectations
                    .deletion_observed(&owner_key(&key), &format!("{namespace}/{}", o.name_any())),
                _ => {}
            }
            c.queue.add(key);
        });
        controller
    }

    async fn sync(&self, key: Key) -> Result<Option<Duration>, Error> {
        let Some(job) = self.ctx.jobs.get(&key.0, &key.1) else {
            return Ok(None);
        };
        let api: Api<Job> = Api::namespaced(self.ctx.client.clone(), &key.0);
        let now = jiff::Timestamp::now();
        if let Some(finished) = finish_time(&job) {
            // ttlSecondsAfterFinished: delete the Job (and, in the foreground, its pods).
            let Some(ttl) = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) else {
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
            match api.delete(&key.1, &params).await {
                Ok(_) => return Ok(None),
                Err(e) if api_code(&e) == Some(404) => return Ok(None),
                Err(e) => return Err(e).context("deleting a finished job"),
            }
        }
        if job.metadata.deletion_timestamp.is_some()
            || !self.expectations.satisfied(&owner_key(&key))
        {
            return Ok(None);
        }
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let pods: Vec<Arc<Pod>> = self
            .ctx
            .pods
            .list_namespace(&key.0)
            .into_iter()
            .filter(|p| controller_ref(&p.metadata).is_some_and(|r| r.uid == uid))
            .collect();
        let decision = decide(&job, &pods, now);
        let pod_api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &key.0);
        let owner = owner_key(&key);
        if !decision.delete.is_empty() || !decision.create.is_empty() {
            // Both at once: setting one after the other would forget the first.
            self.expectations.expect(
                &owner,
                decision.create.len() as i64,
                decision.delete.iter().map(|n| format!("{}/{n}", key.0)),
            );
        }
        if !decision.delete.is_empty() {
            for name in &decision.delete {
                match pod_api.delete(name, &DeleteParams::background()).await {
                    Ok(_) => self.ctx.recorder("job-controller").event(
                        reference(job.as_ref()),
                        EventType::Normal,
                        "SuccessfulDelete",
                        format!("Deleted pod: {name}"),
                    ),
                    Err(e) => {
                        self.expectations
                            .deletion_observed(&owner, &format!("{}/{name}", key.0));
                        if api_code(&e) != Some(404) {
                            // Neither the other deletions nor the creations happen now.
                            for other in &decision.delete {
                                self.expectations
                                    .deletion_observed(&owner, &format!("{}/{other}", key.0));
                            }
                            for _ in &decision.create {
                                self.expectations.creation_observed(&owner);
                            }
                            return Err(e).context("deleting a job pod");
                        }
                    }
                }
            }
        }
        if !decision.create.is_empty() {
            let template = job
                .spec
                .as_ref()
                .map(|s| s.template.clone())
                .unwrap_or_default();
            let name = job.name_any();
            for index in &decision.create {
                let mut pod = pod_from_template(&template, &job.metadata, "Job");
                if let Some(index) = index {
                    pod.metadata.generate_name = Some(format!("{name}-{index}-"));
                    pod.metadata
                        .annotations
                        .get_or_insert_with(Default::default)
                        .insert(COMPLETION_INDEX.into(), index.to_string());
                    pod.metadata
                        .labels
                        .get_or_insert_with(Default::default)
                        .insert(COMPLETION_INDEX.into(), index.to_string());
                    if let Some(spec) = pod.spec.as_mut() {
                        spec.hostname = Some(format!("{name}-{index}"));
                        for container in spec
                            .containers
                            .iter_mut()
                            .chain(spec.init_containers.iter_mut().flatten())
                        {
                            container.env.get_or_insert_with(Vec::new).push(
                                k8s_openapi::api::core::v1::EnvVar {
                                    name: "JOB_COMPLETION_INDEX".into(),
                                    value: None,
                                    value_from: Some(k8s_openapi::api::core::v1::EnvVarSource {
                                        field_ref: Some(
                                            k8s_openapi::api::core::v1::ObjectFieldSelector {
                                                field_path: format!(
                                                    "metadata.annotations['{COMPLETION_INDEX}']"
                                                ),
                                                api_version: None,
                                            },
                                        ),
                                        ..Default::default()
                                    }),
                                },
                            );
                        }
                    }
                }
                match pod_api.create(&PostParams::default(), &pod).await {
                    Ok(created) => self.ctx.recorder("job-controller").event(
                        reference(job.as_ref()),
                        EventType::Normal,
                        "SuccessfulCreate",
                        format!("Created pod: {}", created.name_any()),
                    ),
                    Err(e) => {
                        self.expectations.creation_observed(&owner);
                        self.ctx.recorder("job-controller").event(
                            reference(job.as_ref()),
                            EventType::Warning,
                            "FailedCreate",
                            format!("Error creating: {}", api_message(&e)),
                        );
                        return Err(e).context("creating a job pod");
                    }
                }
            }
        }
        let previous = job.status.clone().unwrap_or_default();
        if decision.status != previous {
            let newly_finished = finished_condition(&decision.status).is_some()
                && finished_condition(&previous).is_none();
            let mut updated = (*job).clone();
            updated.status = Some(decision.status.clone());
            match api
                .replace_status(&key.1, &PostParams::default(), &updated)
                .await
            {
                Ok(_) => {}
                Err(e) if api_code(&e) == Some(404) => return Ok(None),
                Err(e) => return Err(e).context("updating job status"),
            }
            if newly_finished {
                match finished_condition(&decision.status) {
                    Some(c) if c.type_ == "Complete" => self.ctx.recorder("job-controller").event(
                        reference(job.as_ref()),
                        EventType::Normal,
                        "Completed",
                        "Job completed",
                    ),
                    Some(c) => self.ctx.recorder("job-controller").event(
                        reference(job.as_ref()),
                        EventType::Warning,
                        c.reason.as_deref().unwrap_or("Failed"),
                        c.message.clone().unwrap_or_default(),
                    ),
                    None => {}
                }
            }
        }
        Ok(decision.requeue_after)
    }
}

fn owner_key(key: &Key) -> String {
    format!("{}/{}", key.0, key.1)
}

fn finished_condition(status: &JobStatus) -> Option<&JobCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
}

fn finish_time(job: &Job) -> Option<jiff::Timestamp> {
    let status = job.status.as_ref()?;
    let condition = finished_condition(status)?;
    status
        .completion_time
        .as_ref()
        .or(condition.last_transition_time.as_ref())
        .map(|t| t.0)
}

/// What one sync does.
#[derive(Debug, Default, PartialEq)]
pub struct Decision {
    /// Pods to create: `Some(index)` for Indexed Jobs.
    pub create: Vec<Option<u32>>,
    /// Names of pods to delete.
    pub delete: Vec<String>,
    /// The new status.
    pub status: JobStatus,
    /// Look again after this (backoff, deadline).
    pub requeue_after: Option<Duration>,
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

fn pod_index(pod: &Pod) -> Option<u32> {
    pod.annotations().get(COMPLETION_INDEX)?.parse().ok()
}

/// The first podFailurePolicy rule a failed pod matches, with its index.
fn matching_rule<'a>(
    rules: &'a [PodFailurePolicyRule],
    pod: &Pod,
) -> Option<(usize, &'a PodFailurePolicyRule, String)> {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    for (i, rule) in rules.iter().enumerate() {
        if let Some(on_exit) = &rule.on_exit_codes {
            for status in &statuses {
                if on_exit
                    .container_name
                    .as_ref()
                    .is_some_and(|n| *n != status.name)
                {
                    continue;
                }
                let Some(code) = status
                    .state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(|t| t.exit_code)
                else {
                    continue;
                };
                let listed = on_exit.values.contains(&code);
                let matches = match on_exit.operator.as_str() {
                    "In" => listed,
                    "NotIn" => !listed && code != 0,
                    _ => false,
                };
                if matches {
                    let message = format!(
                        "Container {} for pod {}/{} failed with exit code {code} matching {} rule at index {i}",
                        status.name,
                        pod.namespace().unwrap_or_default(),
                        pod.name_any(),
                        rule.action
                    );
                    return Some((i, rule, message));
                }
            }
        }
        for wanted in rule.on_pod_conditions.iter().flatten() {
            let has = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == wanted.type_ && c.status == wanted.status)
                });
            if has {
                let message = format!(
                    "Pod {}/{} has condition {} matching {} rule at index {i}",
                    pod.namespace().unwrap_or_default(),
                    pod.name_any(),
                    wanted.type_,
                    rule.action
                );
                return Some((i, rule, message));
            }
        }
    }
    None
}

fn condition(type_: &str, reason: &str, message: &str, now: jiff::Timestamp) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Formats indexes as upstream's `completedIndexes`: `0-2,4`.
pub fn format_indexes(indexes: &BTreeSet<u32>) -> String {
    let mut parts = Vec::new();
    let mut iter = indexes.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end = iter.next().unwrap_or(end);
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    parts.join(",")
}

/// The Job controller's decision for one sync (pure: the Job, its pods, the time).
pub fn decide(job: &Job, pods: &[Arc<Pod>], now: jiff::Timestamp) -> Decision {
    let spec = job.spec.clone().unwrap_or_default();
    let mut status = job.status.clone().unwrap_or_default();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let parallelism = u32::try_from(spec.parallelism.unwrap_or(1)).unwrap_or(0);
    let completions = spec.completions.and_then(|c| u32::try_from(c).ok());
    let backoff_limit = u32::try_from(spec.backoff_limit.unwrap_or(6)).unwrap_or(0);
    let suspended = spec.suspend == Some(true);
    let rules = spec
        .pod_failure_policy
        .as_ref()
        .map(|p| p.rules.clone())
        .unwrap_or_default();

    let active: Vec<&Arc<Pod>> = pods
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none() && !matches!(phase(p), "Succeeded" | "Failed")
        })
        .collect();
    let succeeded_pods: Vec<&Arc<Pod>> = pods.iter().filter(|p| phase(p) == "Succeeded").collect();
    let mut failed = 0u32;
    let mut fail_job: Option<String> = None;
    let mut last_failure: Option<jiff::Timestamp> = None;
    for pod in pods.iter().filter(|p| phase(p) == "Failed") {
        match matching_rule(&rules, pod) {
            Some((_, rule, message)) if rule.action == "FailJob" => {
                fail_job.get_or_insert(message);
                failed += 1;
            }
            Some((_, rule, _)) if rule.action == "Ignore" => continue,
            _ => failed += 1,
        }
        let finished = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| {
                cs.iter()
                    .filter_map(|c| {
                        c.state
                            .as_ref()?
                            .terminated
                            .as_ref()?
                            .finished_at
                            .as_ref()
                            .map(|t| t.0)
                    })
                    .max()
            })
            .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0));
        last_failure = last_failure.max(finished);
    }
    let succeeded_indexes: BTreeSet<u32> = succeeded_pods
        .iter()
        .filter_map(|p| pod_index(p))
        .filter(|i| completions.is_none_or(|c| *i < c))
        .collect();
    let succeeded = if indexed {
        succeeded_indexes.len() as u32
    } else {
        succeeded_pods.len() as u32
    };

    let mut decision = Decision::default();
    if status.start_time.is_none() && !suspended {
        status.start_time = Some(Time(now));
    }
    status.active = Some(active.len() as i32);
    status.succeeded = Some(succeeded as i32);
    status.failed = Some(failed as i32);
    status.ready = Some(active.iter().filter(|p| pod_ready(p).0).count() as i32);
    status.terminating = Some(
        pods.iter()
            .filter(|p| {
                p.metadata.deletion_timestamp.is_some()
                    && !matches!(phase(p), "Succeeded" | "Failed")
            })
            .count() as i32,
    );
    if indexed {
        status.completed_indexes = Some(format_indexes(&succeeded_indexes));
    }
    let conditions = status.conditions.get_or_insert_with(Vec::new);

    // Failure: a FailJob rule, too many failures, or past the deadline.
    let deadline_exceeded = spec
        .active_deadline_seconds
        .zip(status.start_time.as_ref())
        .is_some_and(|(secs, start)| start.0 + jiff::SignedDuration::from_secs(secs) <= now);
    let failure = if let Some(message) = fail_job {
        Some(("PodFailurePolicy", message))
    } else if failed > backoff_limit {
        Some((
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit".to_string(),
        ))
    } else if deadline_exceeded {
        Some((
            "DeadlineExceeded",
            "Job was active longer than specified deadline".to_string(),
        ))
    } else {
        None
    };
    if let Some((reason, message)) = failure {
        decision.delete = active.iter().map(|p| p.name_any()).collect();
        for type_ in ["FailureTarget", "Failed"] {
            if !conditions.iter().any(|c| c.type_ == type_) {
                conditions.push(condition(type_, reason, &message, now));
            }
        }
        status.active = Some(0);
        decision.status = status;
        return decision;
    }

    // Success.
    let complete = match completions {
        Some(c) => succeeded >= c,
        None => succeeded > 0 && active.is_empty(),
    };
    if complete {
        if !indexed || completions.is_some() {
            decision.delete = active.iter().map(|p| p.name_any()).collect();
        }
        for (type_, reason) in [
            ("SuccessCriteriaMet", "CompletionsReached"),
            ("Complete", "CompletionsReached"),
        ] {
            if !conditions.iter().any(|c| c.type_ == type_) {
                conditions.push(condition(
                    type_,
                    reason,
                    "Reached expected number of succeeded pods",
                    now,
                ));
            }
        }
        status.completion_time.get_or_insert(Time(now));
        status.active = Some(0);
        decision.status = status;
        return decision;
    }

    // Suspension.
    let suspended_condition = conditions.iter().position(|c| c.type_ == "Suspended");
    if suspended {
        decision.delete = active.iter().map(|p| p.name_any()).collect();
        match suspended_condition {
            Some(i) if conditions[i].status == "True" => {}
            _ => {
                conditions.retain(|c| c.type_ != "Suspended");
                conditions.push(condition("Suspended", "JobSuspended", "Job suspended", now));
            }
        }
        decision.status = status;
        return decision;
    }
    if let Some(i) = suspended_condition.filter(|i| conditions[*i].status == "True") {
        conditions[i] = JobCondition {
            status: "False".into(),
            ..condition("Suspended", "JobResumed", "Job resumed", now)
        };
    }
    if conditions.is_empty() {
        status.conditions = None;
    }

    // How many should run.
    let wanted = match completions {
        Some(c) => parallelism.min(c.saturating_sub(succeeded)),
        None if succeeded > 0 => 0,
        None => parallelism,
    } as usize;
    if active.len() > wanted {
        let mut extra: Vec<&Arc<Pod>> = active.clone();
        // Not-ready and newest first, as upstream's ranking for deletion.
        extra.sort_by_key(|p| {
            (
                pod_ready(p).0,
                std::cmp::Reverse(p.metadata.creation_timestamp.as_ref().map(|t| t.0)),
            )
        });
        decision.delete = extra
            .into_iter()
            .take(active.len() - wanted)
            .map(|p| p.name_any())
            .collect();
    } else if active.len() < wanted {
        // After failures, wait 10 s · 2^(failures-1) before replacing.
        if failed > 0 {
            let delay = BACKOFF_BASE
                .saturating_mul(1u32.checked_shl(failed - 1).unwrap_or(u32::MAX))
                .min(BACKOFF_MAX);
            if let Some(last) = last_failure {
                let ready_at = last + jiff::SignedDuration::try_from(delay).unwrap_or_default();
                if ready_at > now {
                    decision.requeue_after = Some(Duration::from_secs_f64(
                        now.duration_until(ready_at).as_secs_f64().max(0.0) + 0.1,
                    ));
                    decision.status = status;
                    return decision;
                }
            }
        }
        let count = wanted - active.len();
        if indexed {
            let busy: BTreeSet<u32> = active.iter().filter_map(|p| pod_index(p)).collect();
            let total = completions.unwrap_or(parallelism);
            decision.create = (0..total)
                .filter(|i| !succeeded_indexes.contains(i) && !busy.contains(i))
                .take(count)
                .map(Some)
                .collect();
        } else {
            decision.create = vec![None; count];
        }
    }
    if let Some(secs) = spec.active_deadline_seconds {
        if let Some(start) = status.start_time.as_ref() {
            let due = start.0 + jiff::SignedDuration::from_secs(secs);
            decision.requeue_after = Some(Duration::from_secs_f64(
                now.duration_until(due).as_secs_f64().max(0.0) + 0.1,
            ));
        }
    }
    decision.status = status;
    decision
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::JobSpec;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStatus, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn condition_of<'a>(d: &'a Decision, type_: &str) -> &'a JobCondition {
        d.status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == type_)
            .expect("condition")
    }

    fn ts(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + s).expect("ts")
    }

    fn job(completions: Option<i32>, parallelism: i32) -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some("j".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: Some(JobSpec {
                completions,
                parallelism: Some(parallelism),
                backoff_limit: Some(2),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn pod(name: &str, phase: &str, exit: Option<(i32, i64)>) -> Arc<Pod> {
        let container_statuses = exit.map(|(code, at)| {
            vec![ContainerStatus {
                name: "main".into(),
                state: Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: code,
                        finished_at: Some(Time(ts(at))),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }]
        });
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                creation_timestamp: Some(Time(ts(0))),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some(phase.into()),
                container_statuses,
                ..Default::default()
            }),
        })
    }

    #[test]
    fn runs_parallelism_pods_until_completions_succeed() {
        let d = decide(&job(Some(3), 2), &[], ts(0));
        assert_eq!(d.create.len(), 2);
        let d = decide(
            &job(Some(3), 2),
            &[pod("a", "Succeeded", None), pod("b", "Running", None)],
            ts(1),
        );
        assert_eq!(d.create.len(), 1, "one more: 1 succeeded + 1 running of 3");
        let d = decide(
            &job(Some(3), 2),
            &[
                pod("a", "Succeeded", None),
                pod("b", "Succeeded", None),
                pod("c", "Succeeded", None),
            ],
            ts(2),
        );
        assert!(d.create.is_empty());
        let complete = condition_of(&d, "Complete");
        assert_eq!(complete.status, "True");
        assert!(d.status.completion_time.is_some());
    }

    #[test]
    fn failures_back_off_then_exceed_the_limit() {
        let failed = pod("a", "Failed", Some((1, 100)));
        let d = decide(&job(Some(1), 1), std::slice::from_ref(&failed), ts(105));
        assert!(d.create.is_empty(), "within the 10 s backoff");
        assert!(d.requeue_after.is_some_and(|r| r <= Duration::from_secs(6)));
        let d = decide(&job(Some(1), 1), std::slice::from_ref(&failed), ts(111));
        assert_eq!(d.create.len(), 1, "after the backoff");
        let pods = vec![
            failed.clone(),
            pod("b", "Failed", Some((1, 120))),
            pod("c", "Failed", Some((1, 150))),
        ];
        let d = decide(&job(Some(1), 1), &pods, ts(200));
        let failed = condition_of(&d, "Failed");
        assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
    }

    #[test]
    fn pod_failure_policy_fails_or_ignores() {
        use k8s_openapi::api::batch::v1::{
            PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement,
        };
        let mut j = job(Some(1), 1);
        j.spec.as_mut().expect("spec").pod_failure_policy = Some(PodFailurePolicy {
            rules: vec![
                PodFailurePolicyRule {
                    action: "FailJob".into(),
                    on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                        container_name: None,
                        operator: "In".into(),
                        values: vec![42],
                    }),
                    on_pod_conditions: None,
                },
                PodFailurePolicyRule {
                    action: "Ignore".into(),
                    on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                        container_name: None,
                        operator: "In".into(),
                        values: vec![7],
                    }),
                    on_pod_conditions: None,
                },
            ],
        });
        let d = decide(&j, &[pod("a", "Failed", Some((42, 0)))], ts(100));
        let failed = condition_of(&d, "Failed");
        assert_eq!(failed.reason.as_deref(), Some("PodFailurePolicy"));
        assert_eq!(failed.message.as_deref(), Some("Container main for pod ns/a failed with exit code 42 matching FailJob rule at index 0"));
        let d = decide(&j, &[pod("a", "Failed", Some((7, 99)))], ts(100));
        assert_eq!(
            (d.status.failed, d.create.len()),
            (Some(0), 1),
            "ignored failures do not count or back off"
        );
    }

    #[test]
    fn indexed_jobs_create_missing_indexes() {
        let mut j = job(Some(4), 2);
        j.spec.as_mut().expect("spec").completion_mode = Some("Indexed".into());
        let mut done = (*pod("a", "Succeeded", None)).clone();
        done.metadata.annotations = Some([(COMPLETION_INDEX.to_string(), "0".to_string())].into());
        let d = decide(&j, &[Arc::new(done)], ts(0));
        assert_eq!(d.create, vec![Some(1), Some(2)]);
        assert_eq!(d.status.completed_indexes.as_deref(), Some("0"));
        assert_eq!(format_indexes(&[0, 1, 2, 4, 6, 7].into()), "0-2,4,6-7");
    }

    #[test]
    fn deadline_fails_the_job() {
        let mut j = job(Some(1), 1);
        j.spec.as_mut().expect("spec").active_deadline_seconds = Some(10);
        j.status = Some(JobStatus {
            start_time: Some(Time(ts(0))),
            ..Default::default()
        });
        let d = decide(&j, &[pod("a", "Running", None)], ts(11));
        assert_eq!(d.delete, vec!["a".to_string()]);
        let failed = condition_of(&d, "Failed");
        assert_eq!(failed.reason.as_deref(), Some("DeadlineExceeded"));
    }
}
