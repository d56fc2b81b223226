//! Table tests of the Job decision, upstream's `job_controller_test.go` and the Job
//! integration tests rewritten: a small in-memory cluster runs [`decide`] and [`settle`] as
//! the controller does, and plays the kubelet (pods run, succeed, fail, go once deleted).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt as _;
use serde_json::{json, Value};

use super::decide::{decide, has_tracking_finalizer, settle, Decision, NewPod, Tracking};
use super::policy::{COMPLETION_INDEX, INDEX_FAILURE_COUNT};
use super::{pod_for, TRACKING_FINALIZER};

fn ts(s: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + s).expect("ts")
}

/// A Job from its spec (a `main` container, `restartPolicy: Never` unless the spec says).
fn job(spec: Value) -> Job {
    let mut spec = spec;
    spec.as_object_mut()
        .expect("spec")
        .entry("template")
        .or_insert(json!({
            "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}
        }));
    serde_json::from_value(json!({
        "metadata": {"name": "j", "namespace": "ns", "uid": "job-uid"},
        "spec": spec,
    }))
    .expect("job")
}

/// The Job, its pods, the clock, and what the controller keeps between syncs.
struct Cluster {
    job: Job,
    pods: Vec<Pod>,
    now: i64,
    created: usize,
    tracking: Tracking,
}

impl Cluster {
    fn new(spec: Value) -> Cluster {
        Cluster {
            job: job(spec),
            pods: Vec::new(),
            now: 0,
            created: 0,
            tracking: Tracking {
                expectations_satisfied: true,
                ..Tracking::default()
            },
        }
    }

    /// One sync, applied: pods created and deleted, the status written, the finalizers
    /// removed, the status written again.
    fn sync(&mut self) -> Decision {
        let pods: Vec<Arc<Pod>> = self.pods.iter().cloned().map(Arc::new).collect();
        let decision = decide(&self.job, &pods, &self.tracking, ts(self.now));
        let now = ts(self.now);
        for name in decision.terminate.iter().chain(&decision.delete) {
            let pod = self.pod_mut(name);
            pod.metadata.deletion_timestamp = Some(Time(now));
            pod.metadata.deletion_grace_period_seconds = Some(0);
        }
        for name in &decision.delete {
            self.pod_mut(name).metadata.finalizers = None;
        }
        for new in &decision.create {
            self.create(new);
        }
        let removed: HashSet<String> = decision
            .remove_finalizers
            .iter()
            .map(|p| p.uid.clone())
            .collect();
        for pod in &mut self.pods {
            if removed.contains(pod.metadata.uid.as_deref().unwrap_or_default()) {
                pod.metadata.finalizers = None;
            }
        }
        let (status, _) = settle(&decision, &removed, ts(self.now));
        self.job.status = Some(status);
        self.tracking.backoff = decision.backoff.clone();
        decision
    }

    fn create(&mut self, new: &NewPod) {
        let mut pod = pod_for(&self.job, new);
        let name = match new.index {
            Some(i) => format!("j-{i}-{}", self.created),
            None => format!("j-{}", self.created),
        };
        pod.metadata.name = Some(name);
        pod.metadata.uid = Some(format!("uid-{}", self.created));
        pod.metadata.creation_timestamp = Some(Time(ts(self.now)));
        self.created += 1;
        self.pods.push(pod);
    }

    fn pod_mut(&mut self, name: &str) -> &mut Pod {
        self.pods
            .iter_mut()
            .find(|p| p.name_any() == name)
            .unwrap_or_else(|| panic!("no pod {name}"))
    }

    fn status(&self) -> JobStatus {
        self.job.status.clone().unwrap_or_default()
    }

    fn condition(&self, type_: &str) -> Option<JobCondition> {
        self.status()
            .conditions
            .into_iter()
            .flatten()
            .find(|c| c.type_ == type_ && c.status == "True")
    }

    /// (type, reason, message) of the True conditions, in order.
    fn conditions(&self) -> Vec<(String, String, String)> {
        self.status()
            .conditions
            .into_iter()
            .flatten()
            .filter(|c| c.status == "True")
            .map(|c| {
                (
                    c.type_,
                    c.reason.unwrap_or_default(),
                    c.message.unwrap_or_default(),
                )
            })
            .collect()
    }

    /// (active, ready, succeeded, failed, terminating).
    fn counts(&self) -> (i32, i32, i32, i32, i32) {
        let s = self.status();
        (
            s.active.unwrap_or(0),
            s.ready.unwrap_or(0),
            s.succeeded.unwrap_or(0),
            s.failed.unwrap_or(0),
            s.terminating.unwrap_or(0),
        )
    }

    /// The names of the pods neither finished nor deleted.
    fn active(&self) -> Vec<String> {
        self.pods
            .iter()
            .filter(|p| crate::util::is_pod_active(p))
            .map(|p| p.name_any())
            .collect()
    }

    /// The active pod of an index.
    fn active_of(&self, index: u32) -> String {
        self.pods
            .iter()
            .filter(|p| crate::util::is_pod_active(p))
            .find(|p| p.annotations().get(COMPLETION_INDEX) == Some(&index.to_string()))
            .map(|p| p.name_any())
            .unwrap_or_else(|| panic!("no active pod of index {index}"))
    }

    fn set_status(&mut self, name: &str, status: Value) {
        let now = ts(self.now);
        let pod = self.pod_mut(name);
        let mut status = status;
        if let Some(code) = status.get("exitCode").cloned() {
            status.as_object_mut().expect("status").remove("exitCode");
            status["containerStatuses"] = json!([{"name": "main", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": code, "finishedAt": Time(now)}}}]);
        }
        pod.status = Some(serde_json::from_value(status).expect("status"));
    }

    /// The kubelet runs the pod, Ready.
    fn run(&mut self, name: &str) {
        let now = ts(self.now);
        self.set_status(name, json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": Time(now)}]}));
    }

    fn run_all(&mut self) {
        for name in self.active() {
            self.run(&name);
        }
    }

    fn succeed(&mut self, name: &str) {
        self.set_status(name, json!({"phase": "Succeeded", "exitCode": 0}));
    }

    fn fail(&mut self, name: &str, code: i32) {
        self.set_status(name, json!({"phase": "Failed", "exitCode": code}));
    }

    /// The kubelet stops the deleted pods (Failed, unless they finished) and the API server
    /// removes those without finalizers.
    fn kubelet_stops_deleted(&mut self) {
        let deleted: Vec<String> = self
            .pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some())
            .map(|p| p.name_any())
            .collect();
        for name in deleted {
            let phase = self
                .pod_mut(&name)
                .status
                .as_ref()
                .and_then(|s| s.phase.clone());
            if !matches!(phase.as_deref(), Some("Succeeded" | "Failed")) {
                self.fail(&name, 143);
            }
        }
        self.pods
            .retain(|p| p.metadata.deletion_timestamp.is_none() || has_tracking_finalizer(p));
    }

    fn advance(&mut self, secs: i64) {
        self.now += secs;
    }
}

fn reasons(c: &Cluster) -> Vec<(&'static str, String)> {
    c.conditions()
        .into_iter()
        .map(|(t, r, _)| {
            let t: &'static str = match t.as_str() {
                "FailureTarget" => "FailureTarget",
                "Failed" => "Failed",
                "SuccessCriteriaMet" => "SuccessCriteriaMet",
                "Complete" => "Complete",
                "Suspended" => "Suspended",
                _ => "other",
            };
            (t, r)
        })
        .collect()
}

#[test]
fn runs_parallelism_pods_until_completions_succeed() {
    let mut c = Cluster::new(json!({"completions": 3, "parallelism": 2}));
    let d = c.sync();
    assert_eq!(d.create.len(), 2);
    assert_eq!(c.counts(), (2, 0, 0, 0, 0));
    assert!(c
        .pods
        .iter()
        .all(|p| p.finalizers() == [TRACKING_FINALIZER]));
    assert!(c.status().start_time.is_some());
    assert_eq!(
        serde_json::to_value(c.status().uncounted_terminated_pods).expect("json"),
        json!({}),
        "written empty, as upstream"
    );
    c.run_all();
    c.sync();
    assert_eq!(c.counts(), (2, 2, 0, 0, 0));
    c.succeed("j-0");
    let d = c.sync();
    assert_eq!(d.create.len(), 1, "one more: 1 succeeded + 1 running of 3");
    assert_eq!(
        d.status
            .uncounted_terminated_pods
            .as_ref()
            .and_then(|u| u.succeeded.clone()),
        Some(vec!["uid-0".to_string()]),
        "first recorded as uncounted"
    );
    assert_eq!(c.counts(), (2, 1, 1, 0, 0), "then counted");
    assert!(!has_tracking_finalizer(&c.pods[0]));
    c.run_all();
    c.succeed("j-1");
    c.succeed("j-2");
    let d = c.sync();
    assert!(d.create.is_empty());
    assert_eq!(
        c.conditions(),
        [
            (
                "SuccessCriteriaMet".into(),
                "CompletionsReached".into(),
                "Reached expected number of succeeded pods".into()
            ),
            (
                "Complete".into(),
                "CompletionsReached".into(),
                "Reached expected number of succeeded pods".into()
            ),
        ]
    );
    assert_eq!(c.counts(), (0, 0, 3, 0, 0));
    assert_eq!(c.status().completion_time, Some(Time(ts(0))));
}

#[test]
fn pods_are_counted_once_their_finalizer_is_gone() {
    let mut c = Cluster::new(json!({"completions": 2, "parallelism": 2}));
    c.sync();
    c.run_all();
    c.succeed("j-0");
    let pods: Vec<Arc<Pod>> = c.pods.iter().cloned().map(Arc::new).collect();
    let d = decide(&c.job, &pods, &c.tracking, ts(1));
    // Nothing removed: the pod stays uncounted.
    let (status, finished) = settle(&d, &HashSet::new(), ts(1));
    assert!(!finished);
    assert_eq!(status.succeeded, None);
    assert_eq!(
        status.uncounted_terminated_pods.and_then(|u| u.succeeded),
        Some(vec!["uid-0".to_string()])
    );
    // The status was written with the UID, the removal sent but not seen yet: not counted
    // a second time.
    c.job.status = Some(d.status.clone());
    let mut tracking = c.tracking.clone();
    tracking.expected_removals.insert("uid-0".into());
    let again = decide(&c.job, &pods, &tracking, ts(2));
    assert_eq!(
        again.status.succeeded,
        Some(1),
        "counted from the uncounted list"
    );
    assert_eq!(
        again
            .status
            .uncounted_terminated_pods
            .and_then(|u| u.succeeded),
        None
    );
    assert!(again.remove_finalizers.is_empty());
}

#[test]
fn failures_back_off_then_exceed_the_limit() {
    let mut c = Cluster::new(json!({"completions": 1, "parallelism": 1, "backoffLimit": 2}));
    c.sync();
    c.run_all();
    c.advance(100);
    c.fail("j-0", 1);
    c.advance(5);
    let d = c.sync();
    assert!(d.create.is_empty(), "within the 10 s backoff");
    assert_eq!(d.requeue_after, Some(Duration::from_secs(5)));
    assert_eq!(c.counts(), (0, 0, 0, 1, 0));
    c.advance(6);
    assert_eq!(c.sync().create.len(), 1, "after the backoff");
    c.run_all();
    c.fail("j-1", 1);
    c.advance(15);
    assert!(c.sync().create.is_empty(), "the second failure waits 20 s");
    c.advance(6);
    assert_eq!(c.sync().create.len(), 1);
    c.run_all();
    c.fail("j-2", 1);
    c.sync();
    assert_eq!(
        c.conditions(),
        [
            (
                "FailureTarget".into(),
                "BackoffLimitExceeded".into(),
                "Job has reached the specified backoff limit".into()
            ),
            (
                "Failed".into(),
                "BackoffLimitExceeded".into(),
                "Job has reached the specified backoff limit".into()
            ),
        ]
    );
    assert_eq!(c.counts(), (0, 0, 0, 3, 0));
    assert!(c.pods.iter().all(|p| !has_tracking_finalizer(p)));
}

#[test]
fn a_success_resets_the_backoff() {
    let mut c = Cluster::new(json!({"completions": 3, "parallelism": 1}));
    c.sync();
    c.run_all();
    c.fail("j-0", 1);
    c.advance(11);
    c.sync();
    c.run_all();
    c.succeed("j-1");
    c.advance(1);
    let d = c.sync();
    assert_eq!(d.create.len(), 1, "no backoff after a success");
}

#[test]
fn the_failed_condition_waits_for_terminating_pods() {
    let mut c = Cluster::new(json!({"completions": 3, "parallelism": 3, "backoffLimit": 0}));
    c.sync();
    c.run_all();
    c.fail("j-0", 1);
    let d = c.sync();
    assert_eq!(d.terminate, ["j-1", "j-2"]);
    assert_eq!(
        reasons(&c),
        [("FailureTarget", "BackoffLimitExceeded".into())]
    );
    assert_eq!(
        c.counts(),
        (0, 0, 0, 3, 2),
        "the terminated pods count as failures"
    );
    c.advance(3);
    c.kubelet_stops_deleted();
    c.sync();
    assert_eq!(
        reasons(&c),
        [
            ("FailureTarget", "BackoffLimitExceeded".into()),
            ("Failed", "BackoffLimitExceeded".into())
        ]
    );
    assert_eq!(c.counts(), (0, 0, 0, 3, 0));
    assert_eq!(c.pods.len(), 1, "no finalizer keeps the deleted pods");
}

#[test]
fn the_deadline_fails_the_job() {
    let mut c =
        Cluster::new(json!({"completions": 1, "parallelism": 1, "activeDeadlineSeconds": 10}));
    let d = c.sync();
    assert_eq!(d.requeue_after, Some(Duration::from_secs(10)));
    c.run_all();
    c.advance(10);
    let d = c.sync();
    assert_eq!(d.terminate, ["j-0"]);
    assert_eq!(
        c.conditions(),
        [(
            "FailureTarget".into(),
            "DeadlineExceeded".into(),
            "Job was active longer than specified deadline".into()
        )]
    );
    c.kubelet_stops_deleted();
    c.sync();
    assert_eq!(
        c.condition("Failed").and_then(|f| f.message),
        Some("Job was active longer than specified deadline".into())
    );
    assert_eq!(c.counts(), (0, 0, 0, 1, 0));
}

#[test]
fn suspension_deletes_pods_without_counting_them() {
    let mut c = Cluster::new(json!({"completions": 2, "parallelism": 2, "suspend": true}));
    let d = c.sync();
    assert!(d.create.is_empty());
    assert_eq!(c.status().start_time, None, "not started while suspended");
    assert_eq!(reasons(&c), [("Suspended", "JobSuspended".into())]);
    assert_eq!(d.events[0].reason, "Suspended");
    c.job.spec.as_mut().expect("spec").suspend = Some(false);
    c.advance(5);
    let d = c.sync();
    assert_eq!(d.create.len(), 2);
    assert_eq!(d.events[0].reason, "Resumed");
    let suspended = c
        .status()
        .conditions
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Suspended")
        .expect("condition");
    assert_eq!(
        (suspended.status.as_str(), suspended.reason.as_deref()),
        ("False", Some("JobResumed"))
    );
    assert_eq!(c.status().start_time, Some(Time(ts(5))));
    c.run_all();
    c.job.spec.as_mut().expect("spec").suspend = Some(true);
    let d = c.sync();
    assert_eq!(d.delete.len(), 2, "deleted, their finalizer first");
    assert_eq!(c.counts(), (0, 0, 0, 0, 2));
    c.kubelet_stops_deleted();
    c.sync();
    assert_eq!(c.counts(), (0, 0, 0, 0, 0), "not failures");
}

fn exit_rule(action: &str, operator: &str, values: &[i32]) -> Value {
    json!({"action": action, "onExitCodes": {"operator": operator, "values": values}})
}

#[test]
fn pod_failure_policy_fails_ignores_or_counts() {
    let spec = json!({"completions": 2, "parallelism": 2, "backoffLimit": 6, "podFailurePolicy": {"rules": [
        exit_rule("FailJob", "In", &[42]),
        exit_rule("Ignore", "In", &[7]),
        exit_rule("Count", "In", &[3]),
    ]}});
    let mut c = Cluster::new(spec.clone());
    c.sync();
    c.run_all();
    c.fail("j-0", 7);
    c.advance(1);
    let d = c.sync();
    assert_eq!(
        c.counts(),
        (1, 1, 0, 0, 0),
        "an ignored failure is not counted"
    );
    assert!(
        d.create.is_empty(),
        "but the replacement still backs off, as upstream's"
    );
    c.fail("j-1", 3);
    c.advance(20);
    c.sync();
    assert_eq!(c.counts().3, 1, "counted");
    c.run_all();
    c.fail("j-2", 42);
    c.sync();
    assert_eq!(
        c.conditions(),
        [
            ("FailureTarget".into(), "PodFailurePolicy".into(), "Container main for pod ns/j-2 failed with exit code 42 matching FailJob rule at index 0".into()),
        ]
    );
    c.kubelet_stops_deleted();
    c.sync();
    assert_eq!(
        c.condition("Failed").and_then(|f| f.reason),
        Some("PodFailurePolicy".into())
    );
}

#[test]
fn terminating_pods_count_as_failed_unless_only_failed_pods_are_replaced() {
    // TerminatingOrFailed (the default): a deleted pod is a failure, replaced after the backoff.
    let mut c = Cluster::new(json!({"completions": 1, "parallelism": 1}));
    c.sync();
    c.run_all();
    c.pod_mut("j-0").metadata.deletion_timestamp = Some(Time(ts(0)));
    c.advance(11);
    let d = c.sync();
    assert_eq!(d.create.len(), 1);
    assert_eq!(c.counts(), (1, 0, 0, 1, 1));
    // Failed: the replacement waits for the pod to be Failed.
    let mut c =
        Cluster::new(json!({"completions": 1, "parallelism": 1, "podReplacementPolicy": "Failed"}));
    c.sync();
    c.run_all();
    c.pod_mut("j-0").metadata.deletion_timestamp = Some(Time(ts(0)));
    c.advance(11);
    let d = c.sync();
    assert!(d.create.is_empty());
    assert_eq!(c.counts(), (0, 0, 0, 0, 1));
    assert!(
        has_tracking_finalizer(&c.pods[0]),
        "kept until it is Failed"
    );
    c.fail("j-0", 143);
    c.advance(11);
    let d = c.sync();
    assert_eq!(d.create.len(), 1);
    assert_eq!(c.counts(), (1, 0, 0, 1, 0));
}

#[test]
fn work_queue_jobs_complete_when_a_pod_succeeded_and_the_rest_finished() {
    let mut c = Cluster::new(json!({"parallelism": 2}));
    c.sync();
    c.run_all();
    c.succeed("j-0");
    let d = c.sync();
    assert!(
        d.create.is_empty() && d.delete.is_empty(),
        "the others run on"
    );
    assert_eq!(c.condition("Complete"), None);
    c.succeed("j-1");
    c.sync();
    assert_eq!(
        reasons(&c).last(),
        Some(&("Complete", "CompletionsReached".into()))
    );
}

#[test]
fn restarts_past_the_backoff_limit_fail_on_failure_jobs() {
    let mut c = Cluster::new(
        json!({"completions": 1, "parallelism": 1, "backoffLimit": 2,
        "template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "main", "image": "busybox"}]}}}),
    );
    c.sync();
    c.set_status("j-0", json!({"phase": "Running", "containerStatuses": [{"name": "main", "image": "", "imageID": "", "ready": false, "restartCount": 2}]}));
    c.sync();
    assert_eq!(
        reasons(&c),
        [("FailureTarget", "BackoffLimitExceeded".into())]
    );
}

#[test]
fn a_job_being_deleted_lets_its_pods_go() {
    let mut c = Cluster::new(json!({"completions": 2, "parallelism": 2}));
    c.sync();
    c.run_all();
    c.job.metadata.deletion_timestamp = Some(Time(ts(1)));
    for pod in &mut c.pods {
        pod.metadata.deletion_timestamp = Some(Time(ts(1)));
    }
    let d = c.sync();
    assert!(d.create.is_empty());
    assert_eq!(d.remove_finalizers.len(), 2);
    assert_eq!(c.counts().3, 2, "deleted before they finished: failures");
}

fn indexed(extra: Value) -> Value {
    let mut spec = json!({"completionMode": "Indexed"});
    for (k, v) in extra.as_object().expect("object") {
        spec[k] = v.clone();
    }
    spec
}

#[test]
fn indexed_jobs_run_each_index_once() {
    let mut c = Cluster::new(indexed(json!({"completions": 5, "parallelism": 3})));
    let d = c.sync();
    assert_eq!(
        d.create.iter().map(|p| p.index).collect::<Vec<_>>(),
        [Some(0), Some(1), Some(2)]
    );
    c.run_all();
    c.succeed("j-0-0");
    c.succeed("j-1-1");
    let d = c.sync();
    assert_eq!(
        d.create.iter().map(|p| p.index).collect::<Vec<_>>(),
        [Some(3), Some(4)]
    );
    assert_eq!(c.status().completed_indexes.as_deref(), Some("0,1"));
    assert_eq!(c.status().failed_indexes, None);
    assert_eq!(
        c.status()
            .uncounted_terminated_pods
            .and_then(|u| u.succeeded),
        None,
        "indexes record succeeded pods"
    );
    // A second pod of index 3 (a slow informer made it): the less advanced one goes.
    c.run_all();
    let mut twin = pod_for(
        &c.job,
        &NewPod {
            index: Some(3),
            failure_counts: None,
        },
    );
    twin.metadata.name = Some("twin".into());
    twin.metadata.uid = Some("uid-twin".into());
    c.pods.push(twin);
    let d = c.sync();
    assert_eq!(d.delete, ["twin"]);
    c.kubelet_stops_deleted();
    for name in c.active() {
        c.succeed(&name);
    }
    c.sync();
    assert_eq!(c.status().completed_indexes.as_deref(), Some("0-4"));
    assert_eq!(c.counts(), (0, 0, 5, 0, 0));
    assert_eq!(
        reasons(&c).last(),
        Some(&("Complete", "CompletionsReached".into()))
    );
}

#[test]
fn indexed_pods_know_their_index() {
    let j = job(indexed(json!({"completions": 5, "backoffLimitPerIndex": 1,
        "template": {"spec": {"restartPolicy": "Never", "initContainers": [{"name": "init", "image": "x"}],
            "containers": [{"name": "main", "image": "x", "env": [{"name": "JOB_COMPLETION_INDEX", "value": "mine"}]}, {"name": "side", "image": "x"}]}}})));
    let pod = pod_for(
        &j,
        &NewPod {
            index: Some(3),
            failure_counts: Some((2, 1)),
        },
    );
    let value = serde_json::to_value(&pod).expect("json");
    assert_eq!(value["metadata"]["generateName"], "j-3-");
    assert_eq!(value["metadata"]["finalizers"], json!([TRACKING_FINALIZER]));
    assert_eq!(value["metadata"]["labels"][COMPLETION_INDEX], "3");
    assert_eq!(
        value["metadata"]["annotations"],
        json!({COMPLETION_INDEX: "3", INDEX_FAILURE_COUNT: "2", "batch.kubernetes.io/job-index-ignored-failure-count": "1"})
    );
    assert_eq!(value["spec"]["hostname"], "j-3");
    let env = |c: &Value| c["env"].as_array().expect("env").clone();
    let from_label = json!({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/job-completion-index']"}}});
    assert_eq!(
        env(&value["spec"]["initContainers"][0]),
        std::slice::from_ref(&from_label)
    );
    assert_eq!(
        env(&value["spec"]["containers"][0]),
        [json!({"name": "JOB_COMPLETION_INDEX", "value": "mine"})],
        "kept"
    );
    assert_eq!(env(&value["spec"]["containers"][1]), [from_label]);
    let mut long = j.clone();
    long.metadata.name = Some("a".repeat(60));
    let pod = pod_for(
        &long,
        &NewPod {
            index: Some(12),
            failure_counts: None,
        },
    );
    let name = pod.metadata.generate_name.expect("generateName");
    assert_eq!(name, format!("{}-12-", "a".repeat(54)));
    assert_eq!(name.len(), 58);
}

/// One step of upstream's `TestBackoffLimitPerIndex`: the pod of `index` ends with `phase`
/// (and this exit code), then (active, failed, succeeded, terminating), the active indexes,
/// completedIndexes, failedIndexes and the replacement's failure count.
struct Step {
    index: u32,
    exit: Option<i32>,
    disrupted: bool,
    want: (i32, i32, i32, i32),
    active: &'static [u32],
    completed: &'static str,
    failed_indexes: &'static str,
    replacement_failures: Option<i32>,
}

fn step(
    index: u32,
    exit: Option<i32>,
    want: (i32, i32, i32, i32),
    active: &'static [u32],
    failed_indexes: &'static str,
) -> Step {
    Step {
        index,
        exit,
        disrupted: false,
        want,
        active,
        completed: "",
        failed_indexes,
        replacement_failures: None,
    }
}

/// Runs upstream's backoff-limit-per-index scenario: the pods start, each step ends one, the
/// backoff passes, the remaining pods succeed; the Job ends with `want`.
fn per_index_scenario(name: &str, spec: Value, steps: Vec<Step>, want: &str) {
    let mut c = Cluster::new(indexed(spec));
    c.sync();
    c.run_all();
    for (i, s) in steps.into_iter().enumerate() {
        let pod = c.active_of(s.index);
        match s.exit {
            Some(code) => c.fail(&pod, code),
            None => c.succeed(&pod),
        }
        if s.disrupted {
            let status = c.pod_mut(&pod).status.as_mut().expect("status");
            status.conditions = Some(vec![serde_json::from_value(
                json!({"type": "DisruptionTarget", "status": "True"}),
            )
            .expect("condition")]);
        }
        c.sync();
        // The backoff of the index passes, the replacement starts.
        c.advance(3600);
        c.sync();
        c.run_all();
        c.sync();
        let (active, _, succeeded, failed, terminating) = c.counts();
        assert_eq!(
            (active, failed, succeeded, terminating),
            s.want,
            "{name}: step {i}"
        );
        let mut indexes: Vec<u32> = c
            .active()
            .iter()
            .map(|n| {
                c.pods
                    .iter()
                    .find(|p| p.name_any() == *n)
                    .and_then(super::decide::pod_index)
                    .expect("index")
            })
            .collect();
        indexes.sort_unstable();
        assert_eq!(indexes, s.active, "{name}: step {i} active indexes");
        assert_eq!(
            c.status().completed_indexes.as_deref().unwrap_or(""),
            s.completed,
            "{name}: step {i}"
        );
        assert_eq!(
            c.status().failed_indexes.as_deref(),
            Some(s.failed_indexes),
            "{name}: step {i}"
        );
        if let Some(count) = s.replacement_failures {
            let replacement = c.active_of(s.index);
            let pod = c
                .pods
                .iter()
                .find(|p| p.name_any() == replacement)
                .expect("pod");
            assert_eq!(
                pod.annotations().get(INDEX_FAILURE_COUNT),
                Some(&count.to_string()),
                "{name}: step {i} replacement"
            );
        }
        c.kubelet_stops_deleted();
    }
    for name in c.active() {
        c.succeed(&name);
    }
    c.sync();
    c.kubelet_stops_deleted();
    c.sync();
    assert!(c.condition(want).is_some(), "{name}: {:?}", c.conditions());
    assert!(
        c.pods.iter().all(|p| !has_tracking_finalizer(p)),
        "{name}: finalizers left"
    );
}

/// Upstream's integration test `TestBackoffLimitPerIndex`.
#[test]
fn backoff_limit_per_index() {
    per_index_scenario(
        "job succeeded",
        json!({"parallelism": 2, "completions": 2, "backoffLimitPerIndex": 1}),
        vec![Step {
            replacement_failures: Some(1),
            ..step(0, Some(1), (2, 1, 0, 0), &[0, 1], "")
        }],
        "Complete",
    );
    per_index_scenario(
        "an index fails after exceeding its backoff limit",
        json!({"parallelism": 2, "completions": 2, "backoffLimitPerIndex": 2}),
        vec![
            Step {
                replacement_failures: Some(1),
                ..step(0, Some(1), (2, 1, 0, 0), &[0, 1], "")
            },
            Step {
                replacement_failures: Some(2),
                ..step(0, Some(1), (2, 2, 0, 0), &[0, 1], "")
            },
            step(0, Some(1), (1, 3, 0, 0), &[1], "0"),
        ],
        "Failed",
    );
    per_index_scenario(
        "the global backoff limit is exceeded first",
        json!({"parallelism": 3, "completions": 3, "backoffLimitPerIndex": 1, "backoffLimit": 2}),
        vec![
            step(0, Some(1), (3, 1, 0, 0), &[0, 1, 2], ""),
            step(1, Some(1), (3, 2, 0, 0), &[0, 1, 2], ""),
            step(2, Some(1), (0, 5, 0, 2), &[], ""),
        ],
        "Failed",
    );
    per_index_scenario(
        "the job runs on after a failed index, then fails",
        json!({"parallelism": 2, "completions": 2, "backoffLimitPerIndex": 0}),
        vec![
            step(0, Some(1), (1, 1, 0, 0), &[1], "0"),
            Step {
                completed: "1",
                ..step(1, None, (0, 1, 1, 0), &[], "0")
            },
        ],
        "Failed",
    );
    per_index_scenario(
        "too many failed indexes end the job early",
        json!({"parallelism": 3, "completions": 3, "backoffLimitPerIndex": 0, "maxFailedIndexes": 1}),
        vec![
            step(0, Some(1), (2, 1, 0, 0), &[1, 2], "0"),
            step(1, Some(1), (0, 3, 0, 1), &[], "0,1"),
        ],
        "Failed",
    );
    per_index_scenario(
        "FailIndex rules",
        json!({"parallelism": 2, "completions": 2, "backoffLimitPerIndex": 1, "podFailurePolicy": {"rules": [
            exit_rule("FailIndex", "In", &[13]),
            {"action": "FailIndex", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        ]}}),
        vec![
            step(0, Some(13), (1, 1, 0, 0), &[1], "0"),
            Step {
                disrupted: true,
                ..step(1, Some(137), (0, 2, 0, 0), &[], "0,1")
            },
        ],
        "Failed",
    );
}

#[test]
fn failed_indexes_end_the_job_with_upstreams_reasons() {
    let mut c = Cluster::new(indexed(
        json!({"completions": 3, "parallelism": 3, "backoffLimitPerIndex": 0, "maxFailedIndexes": 1}),
    ));
    c.sync();
    c.run_all();
    c.fail("j-0-0", 1);
    c.fail("j-1-1", 1);
    c.sync();
    assert_eq!(
        c.conditions(),
        [(
            "FailureTarget".into(),
            "MaxFailedIndexesExceeded".into(),
            "Job has exceeded the specified maximal number of failed indexes".into()
        )]
    );
    let mut c = Cluster::new(indexed(
        json!({"completions": 2, "parallelism": 2, "backoffLimitPerIndex": 0}),
    ));
    c.sync();
    c.run_all();
    c.fail("j-0-0", 1);
    c.succeed("j-1-1");
    c.sync();
    assert_eq!(
        c.conditions(),
        [
            (
                "FailureTarget".into(),
                "FailedIndexes".into(),
                "Job has failed indexes".into()
            ),
            (
                "Failed".into(),
                "FailedIndexes".into(),
                "Job has failed indexes".into()
            ),
        ]
    );
    assert_eq!(c.status().failed_indexes.as_deref(), Some("0"));
    assert_eq!(c.status().completed_indexes.as_deref(), Some("1"));
}

#[test]
fn a_failed_pod_keeps_its_finalizer_until_its_index_is_replaced() {
    let mut c = Cluster::new(indexed(
        json!({"completions": 1, "parallelism": 1, "backoffLimitPerIndex": 3}),
    ));
    c.sync();
    c.run_all();
    c.fail("j-0-0", 1);
    c.advance(2);
    let d = c.sync();
    assert!(d.create.is_empty(), "the index backs off");
    assert_eq!(d.requeue_after, Some(Duration::from_secs(8)));
    assert!(
        has_tracking_finalizer(&c.pods[0]),
        "kept for the replacement's count"
    );
    assert_eq!(c.counts().3, 0, "not counted yet");
    c.advance(8);
    let d = c.sync();
    assert_eq!(
        d.create,
        [NewPod {
            index: Some(0),
            failure_counts: Some((1, 0))
        }]
    );
    c.sync();
    assert!(
        !has_tracking_finalizer(&c.pods[0]),
        "the replacement exists"
    );
    assert_eq!(c.counts().3, 1);
}

#[test]
fn success_policies_end_the_job_early() {
    let mut c = Cluster::new(indexed(json!({"completions": 4, "parallelism": 4,
        "successPolicy": {"rules": [{"succeededIndexes": "0,2", "succeededCount": 2}]}})));
    c.sync();
    c.run_all();
    c.succeed("j-0-0");
    c.sync();
    assert_eq!(c.condition("SuccessCriteriaMet"), None);
    c.succeed("j-2-2");
    let d = c.sync();
    assert_eq!(d.terminate, ["j-1-1", "j-3-3"], "the lingering pods go");
    assert_eq!(
        c.conditions(),
        [(
            "SuccessCriteriaMet".into(),
            "SuccessPolicy".into(),
            "Matched rules at index 0".into()
        )]
    );
    assert_eq!(c.counts(), (0, 0, 2, 0, 2), "not failures");
    c.kubelet_stops_deleted();
    c.sync();
    assert_eq!(
        c.conditions(),
        [
            (
                "SuccessCriteriaMet".into(),
                "SuccessPolicy".into(),
                "Matched rules at index 0".into()
            ),
            (
                "Complete".into(),
                "SuccessPolicy".into(),
                "Matched rules at index 0".into()
            ),
        ]
    );
    assert_eq!(c.counts(), (0, 0, 2, 0, 0));
    assert_eq!(c.status().completed_indexes.as_deref(), Some("0,2"));
    assert!(c.status().completion_time.is_some());
}

#[test]
fn nothing_finishes_while_expectations_are_pending() {
    let mut c = Cluster::new(json!({"completions": 1, "parallelism": 1, "backoffLimit": 0}));
    c.sync();
    c.run_all();
    c.fail("j-0", 1);
    c.tracking.expectations_satisfied = false;
    let d = c.sync();
    assert!(d.create.is_empty());
    assert_eq!(c.condition("FailureTarget"), None);
    c.tracking.expectations_satisfied = true;
    c.sync();
    assert!(c.condition("Failed").is_some());
}

#[test]
fn jobs_counted_before_the_finalizer_are_counted_again() {
    // A Job the controller counted by recounting its pods, before they carried the finalizer.
    let mut c = Cluster::new(json!({"completions": 3, "parallelism": 2}));
    c.sync();
    c.run_all();
    for pod in &mut c.pods {
        pod.metadata.finalizers = None;
    }
    c.succeed("j-0");
    c.job.status =
        Some(serde_json::from_value(json!({"active": 1, "succeeded": 1})).expect("status"));
    let d = c.sync();
    assert_eq!(d.create.len(), 1);
    assert_eq!(c.counts(), (2, 1, 1, 0, 0), "not counted twice");
    assert_eq!(
        serde_json::to_value(c.status().uncounted_terminated_pods).expect("json"),
        json!({})
    );
}
