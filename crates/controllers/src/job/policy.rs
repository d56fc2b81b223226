//! The rules a Job's decision applies to single pods: `podFailurePolicy` matching
//! (`pod_failure_policy.go`), `successPolicy` matching (`success_policy.go`), when a pod
//! finished and how long a replacement waits after failures (`backoff_utils.go`), and the
//! per-index failure counts carried in pod annotations (`indexed_job_utils.go`).

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{PodFailurePolicy, SuccessPolicy};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::ResourceExt as _;

use super::indexes::Intervals;

/// The annotation (and label) carrying an Indexed Job pod's index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The annotation counting the failures of earlier pods of the same index (with
/// `backoffLimitPerIndex`).
pub const INDEX_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-failure-count";
/// The annotation counting the earlier failures of the index that a rule ignored.
pub const INDEX_IGNORED_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-ignored-failure-count";

/// Upstream's pod replacement backoff after failures: 10 s, doubling, at most 10 min.
pub const BACKOFF_BASE: Duration = Duration::from_secs(10);
/// The longest pod replacement backoff.
pub const BACKOFF_MAX: Duration = Duration::from_secs(600);

/// What the first matching `podFailurePolicy` rule says about a failed pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleAction {
    /// Fail the Job, with this message.
    FailJob(String),
    /// Fail the pod's index (with `backoffLimitPerIndex`).
    FailIndex,
    /// Do not count the failure.
    Ignore,
    /// Count the failure, as when no rule matches.
    Count,
}

impl RuleAction {
    /// The action's name in the API.
    pub fn name(&self) -> &'static str {
        match self {
            RuleAction::FailJob(_) => "FailJob",
            RuleAction::FailIndex => "FailIndex",
            RuleAction::Ignore => "Ignore",
            RuleAction::Count => "Count",
        }
    }
}

/// Whether a failure counts towards the backoff limits under `policy` (it does unless an
/// `Ignore` rule matches).
pub fn failure_counts(policy: Option<&PodFailurePolicy>, pod: &Pod) -> bool {
    match_pod_failure_policy(policy, pod) != Some(RuleAction::Ignore)
}

/// The action of the first rule of `policy` that the failed `pod` matches
/// (`matchPodFailurePolicy`). Exit code rules look at terminated containers, then init
/// containers, with a non-zero exit code; condition rules at the pod's conditions.
pub fn match_pod_failure_policy(
    policy: Option<&PodFailurePolicy>,
    pod: &Pod,
) -> Option<RuleAction> {
    let policy = policy?;
    let status = pod.status.as_ref();
    for (index, rule) in policy.rules.iter().enumerate() {
        let message = if let Some(requirement) = &rule.on_exit_codes {
            let matches = |c: &&ContainerStatus| {
                let Some(code) = c
                    .state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(|t| t.exit_code)
                else {
                    return false;
                };
                let listed = requirement.values.contains(&code);
                requirement
                    .container_name
                    .as_ref()
                    .is_none_or(|n| *n == c.name)
                    && code != 0
                    && match requirement.operator.as_str() {
                        "In" => listed,
                        "NotIn" => !listed,
                        _ => false,
                    }
            };
            let found = status
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|cs| cs.iter().find(matches))
                .or_else(|| {
                    status
                        .and_then(|s| s.init_container_statuses.as_ref())
                        .and_then(|cs| cs.iter().find(matches))
                });
            let Some(container) = found else { continue };
            let code = container
                .state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .map_or(0, |t| t.exit_code);
            format!(
                "Container {} for pod {}/{} failed with exit code {code} matching {} rule at index {index}",
                container.name,
                pod.namespace().unwrap_or_default(),
                pod.name_any(),
                rule.action
            )
        } else if let Some(patterns) = &rule.on_pod_conditions {
            let found = status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|conditions| {
                    conditions.iter().find(|c| {
                        patterns
                            .iter()
                            .any(|p| p.type_ == c.type_ && p.status == c.status)
                    })
                });
            let Some(condition) = found else { continue };
            format!(
                "Pod {}/{} has condition {} matching {} rule at index {index}",
                pod.namespace().unwrap_or_default(),
                pod.name_any(),
                condition.type_,
                rule.action
            )
        } else {
            continue;
        };
        // An unknown action matches nothing, as upstream's switch without a case.
        match rule.action.as_str() {
            "Ignore" => return Some(RuleAction::Ignore),
            "FailIndex" => return Some(RuleAction::FailIndex),
            "Count" => return Some(RuleAction::Count),
            "FailJob" => return Some(RuleAction::FailJob(message)),
            _ => {}
        }
    }
    None
}

/// The message of the first `successPolicy` rule that `succeeded` satisfies, `Matched rules at
/// index N` (`matchSuccessPolicy`).
pub fn match_success_policy(
    policy: Option<&SuccessPolicy>,
    completions: u32,
    succeeded: &Intervals,
) -> Option<String> {
    let policy = policy?;
    if succeeded.is_empty() {
        return None;
    }
    let count = |c: Option<i32>| c.and_then(|c| u32::try_from(c).ok());
    for (index, rule) in policy.rules.iter().enumerate() {
        let matched = if let Some(indexes) = &rule.succeeded_indexes {
            let required = Intervals::parse(indexes, completions);
            // A rule whose indexes cannot be read matches nothing.
            !required.is_empty() && required.satisfied_by(succeeded, count(rule.succeeded_count))
        } else {
            count(rule.succeeded_count).is_some_and(|c| succeeded.total() >= c as usize)
        };
        if matched {
            return Some(format!("Matched rules at index {index}"));
        }
    }
    None
}

/// When a pod finished (`getFinishedTime`): the last container exit if all exited, else when
/// it stopped being Ready, else when it was deleted (less its grace period), else when it was
/// created.
pub fn finished_time(pod: &Pod) -> Timestamp {
    let status = pod.status.as_ref();
    let from_containers = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|statuses| {
            let mut latest: Option<Timestamp> = None;
            for status in statuses {
                let finished = status
                    .state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())?
                    .finished_at
                    .as_ref()?
                    .0;
                latest = latest.max(Some(finished));
            }
            latest
        });
    let from_ready = || {
        status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready" && c.status == "False"))
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0)
    };
    let from_deletion = || {
        let deleted = pod.metadata.deletion_timestamp.as_ref()?.0;
        let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(0);
        Some(deleted - SignedDuration::from_secs(grace))
    };
    from_containers
        .or_else(from_ready)
        .or_else(from_deletion)
        .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// How long a replacement still waits after `failures` consecutive failures, the last at
/// `last_failure` (`getRemainingTimeForFailuresCount`): 10 s doubling per failure, at most
/// 10 min, from the last failure.
pub fn remaining_backoff(failures: u32, last_failure: Timestamp, now: Timestamp) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let mut backoff = BACKOFF_BASE;
    for _ in 1..failures {
        backoff = backoff.saturating_mul(2);
        if backoff >= BACKOFF_MAX {
            backoff = BACKOFF_MAX;
            break;
        }
    }
    let elapsed = now.duration_since(last_failure);
    let backoff = SignedDuration::try_from(backoff).unwrap_or(SignedDuration::MAX);
    if backoff < elapsed {
        return Duration::ZERO;
    }
    Duration::try_from(backoff - elapsed).unwrap_or(Duration::ZERO)
}

/// Upstream's in-memory backoff record of a Job: failures since the last success.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackoffRecord {
    /// Consecutive failures after the last success.
    pub failures_after_last_success: u32,
    /// When the last of them happened.
    pub last_failure: Option<Timestamp>,
}

impl BackoffRecord {
    /// The record after pods newly seen succeeded or failed (`newBackoffRecord`): a success
    /// resets the count to the failures that finished after it.
    pub fn next(&self, new_succeeded: &[&Pod], new_failed: &[&Pod]) -> BackoffRecord {
        let mut failed: Vec<Timestamp> = new_failed.iter().map(|p| finished_time(p)).collect();
        failed.sort_unstable();
        let last_success = new_succeeded.iter().map(|p| finished_time(p)).max();
        match last_success {
            None if failed.is_empty() => self.clone(),
            None => BackoffRecord {
                failures_after_last_success: self.failures_after_last_success + failed.len() as u32,
                last_failure: failed.last().copied(),
            },
            Some(success) => {
                let after: Vec<Timestamp> = failed.into_iter().filter(|t| *t > success).collect();
                BackoffRecord {
                    failures_after_last_success: after.len() as u32,
                    last_failure: after.last().copied(),
                }
            }
        }
    }

    /// How long a replacement still waits.
    pub fn remaining(&self, now: Timestamp) -> Duration {
        match self.last_failure {
            Some(last) => remaining_backoff(self.failures_after_last_success, last, now),
            None => Duration::ZERO,
        }
    }
}

fn annotation_count(pod: &Pod, key: &str) -> i32 {
    pod.annotations()
        .get(key)
        .and_then(|v| v.parse::<i64>().ok())
        .and_then(|v| i32::try_from(v).ok())
        .filter(|v| *v >= 0)
        .unwrap_or(0)
}

/// The pod's `job-index-failure-count` (0 when absent or not a non-negative int32).
pub fn index_failure_count(pod: &Pod) -> i32 {
    annotation_count(pod, INDEX_FAILURE_COUNT)
}

/// The pod's failures of its index, counted or ignored.
pub fn index_absolute_failure_count(pod: &Pod) -> i32 {
    index_failure_count(pod).saturating_add(annotation_count(pod, INDEX_IGNORED_FAILURE_COUNT))
}

/// The failure counts (counted, ignored) a replacement of `replaced` carries
/// (`getNewIndexFailureCounts`): its own plus its failure.
pub fn replacement_failure_counts(
    policy: Option<&PodFailurePolicy>,
    replaced: Option<&Pod>,
) -> (i32, i32) {
    let Some(pod) = replaced else { return (0, 0) };
    let (failures, ignored) = (
        index_failure_count(pod),
        annotation_count(pod, INDEX_IGNORED_FAILURE_COUNT),
    );
    if failure_counts(policy, pod) {
        (failures.saturating_add(1), ignored)
    } else {
        (failures, ignored.saturating_add(1))
    }
}

/// How long the replacement of `last_failed`, the last failed pod of its index, still waits
/// (`getRemainingTimePerIndex`).
pub fn remaining_backoff_for_index(last_failed: Option<&Pod>, now: Timestamp) -> Duration {
    let Some(pod) = last_failed else {
        return Duration::ZERO;
    };
    let failures = u32::try_from(index_absolute_failure_count(pod)).unwrap_or(0) + 1;
    remaining_backoff(failures, finished_time(pod), now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{
        PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyOnPodConditionsPattern,
        PodFailurePolicyRule, SuccessPolicyRule,
    };
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).expect("pod")
    }

    fn exits(codes: &[(&str, i32)], inits: &[(&str, i32)]) -> Pod {
        let statuses = |list: &[(&str, i32)]| {
            list.iter()
                .map(|(name, code)| json!({"name": name, "image": "", "imageID": "", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": code}}}))
                .collect::<Vec<_>>()
        };
        pod(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "status": {"phase": "Failed", "containerStatuses": statuses(codes), "initContainerStatuses": statuses(inits)}
        }))
    }

    fn on_exit(
        action: &str,
        container: Option<&str>,
        operator: &str,
        values: &[i32],
    ) -> PodFailurePolicyRule {
        PodFailurePolicyRule {
            action: action.into(),
            on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                container_name: container.map(String::from),
                operator: operator.into(),
                values: values.to_vec(),
            }),
            on_pod_conditions: None,
        }
    }

    fn on_condition(action: &str, type_: &str, status: &str) -> PodFailurePolicyRule {
        PodFailurePolicyRule {
            action: action.into(),
            on_exit_codes: None,
            on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                type_: type_.into(),
                status: status.into(),
            }]),
        }
    }

    /// Upstream's `TestMatchPodFailurePolicy`, its main cases.
    #[test]
    fn pod_failure_policy_rules_match_in_order() {
        let policy = |rules: Vec<PodFailurePolicyRule>| PodFailurePolicy { rules };
        let fail_job_42 = policy(vec![on_exit("FailJob", None, "In", &[42])]);
        let cases: Vec<(&str, PodFailurePolicy, Pod, Option<RuleAction>)> = vec![
            (
                "FailJob on an exit code",
                fail_job_42.clone(),
                exits(&[("main", 42)], &[]),
                Some(RuleAction::FailJob("Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 0".into())),
            ),
            ("no match", fail_job_42.clone(), exits(&[("main", 1)], &[]), None),
            (
                "an init container's exit code",
                fail_job_42.clone(),
                exits(&[("main", 0)], &[("init", 42)]),
                Some(RuleAction::FailJob("Container init for pod ns/p failed with exit code 42 matching FailJob rule at index 0".into())),
            ),
            (
                "NotIn never matches exit code 0",
                policy(vec![on_exit("Ignore", None, "NotIn", &[1])]),
                exits(&[("main", 0)], &[]),
                None,
            ),
            (
                "NotIn",
                policy(vec![on_exit("Ignore", None, "NotIn", &[1])]),
                exits(&[("main", 2)], &[]),
                Some(RuleAction::Ignore),
            ),
            (
                "another container's code",
                policy(vec![on_exit("Count", Some("side"), "In", &[42])]),
                exits(&[("main", 42)], &[]),
                None,
            ),
            (
                "the first matching rule wins",
                policy(vec![
                    on_exit("FailIndex", None, "In", &[1, 2]),
                    on_exit("FailJob", None, "In", &[2]),
                ]),
                exits(&[("main", 2)], &[]),
                Some(RuleAction::FailIndex),
            ),
            (
                "an unknown action falls through",
                policy(vec![
                    on_exit("UnknownAction", None, "In", &[2]),
                    on_exit("Count", None, "In", &[2]),
                ]),
                exits(&[("main", 2)], &[]),
                Some(RuleAction::Count),
            ),
        ];
        for (name, policy, pod, want) in cases {
            assert_eq!(
                match_pod_failure_policy(Some(&policy), &pod),
                want,
                "{name}"
            );
        }
        let mut disrupted = exits(&[("main", 137)], &[]);
        disrupted.status.as_mut().expect("status").conditions = Some(vec![serde_json::from_value(
            json!({"type": "DisruptionTarget", "status": "True"}),
        )
        .expect("condition")]);
        let by_condition = policy(vec![on_condition("FailJob", "DisruptionTarget", "True")]);
        assert_eq!(
            match_pod_failure_policy(Some(&by_condition), &disrupted),
            Some(RuleAction::FailJob(
                "Pod ns/p has condition DisruptionTarget matching FailJob rule at index 0".into()
            ))
        );
        let other_status = policy(vec![on_condition("Ignore", "DisruptionTarget", "False")]);
        assert_eq!(
            match_pod_failure_policy(Some(&other_status), &disrupted),
            None
        );
        assert!(failure_counts(None, &disrupted));
    }

    /// Upstream's `TestMatchSuccessPolicy`.
    #[test]
    fn success_policy_rules() {
        let rule = |indexes: Option<&str>, count: Option<i32>| SuccessPolicyRule {
            succeeded_indexes: indexes.map(String::from),
            succeeded_count: count,
        };
        let iv = |pairs: &[(u32, u32)]| {
            let mut all = std::collections::BTreeSet::new();
            for &(a, b) in pairs {
                all.extend(a..=b);
            }
            Intervals::of(&all)
        };
        let cases: Vec<(&str, Vec<SuccessPolicyRule>, Intervals, Option<&str>)> = vec![
            ("no rules", vec![], iv(&[(0, 0)]), None),
            (
                "indexes in an invalid form",
                vec![rule(Some("invalid-form"), None)],
                iv(&[(0, 0)]),
                None,
            ),
            (
                "indexes matched",
                vec![rule(Some("0-2"), None)],
                iv(&[(0, 2), (4, 7)]),
                Some("Matched rules at index 0"),
            ),
            (
                "indexes not matched",
                vec![rule(Some("3"), None)],
                iv(&[(0, 2)]),
                None,
            ),
            (
                "count matched",
                vec![rule(None, Some(2))],
                iv(&[(0, 2)]),
                Some("Matched rules at index 0"),
            ),
            (
                "count not matched",
                vec![rule(None, Some(4))],
                iv(&[(0, 2)]),
                None,
            ),
            (
                "the second rule",
                vec![rule(Some("9"), None), rule(Some("4,6"), None)],
                iv(&[(0, 2), (4, 7)]),
                Some("Matched rules at index 1"),
            ),
            (
                "the first of two",
                vec![rule(Some("0,1"), None), rule(Some("5"), None)],
                iv(&[(0, 2), (4, 7)]),
                Some("Matched rules at index 0"),
            ),
            (
                "indexes and count",
                vec![rule(Some("3-6"), Some(2))],
                iv(&[(0, 2), (4, 7)]),
                Some("Matched rules at index 0"),
            ),
            (
                "indexes and count not matched",
                vec![rule(Some("3-6"), Some(2))],
                iv(&[(0, 2), (6, 7)]),
                None,
            ),
            (
                "nothing succeeded",
                vec![rule(None, Some(4))],
                Intervals::default(),
                None,
            ),
            (
                "a proper subset",
                vec![rule(Some("2-4,6-8"), None)],
                iv(&[(1, 9)]),
                Some("Matched rules at index 0"),
            ),
            (
                "equal",
                vec![rule(Some("2-4,6-9"), None)],
                iv(&[(2, 4), (6, 9)]),
                Some("Matched rules at index 0"),
            ),
            (
                "an empty rule",
                vec![rule(Some(""), None)],
                iv(&[(1, 3)]),
                None,
            ),
            (
                "disjoint",
                vec![rule(Some("10-12,14-16"), None)],
                iv(&[(1, 3), (5, 7)]),
                None,
            ),
            (
                "overlapping first",
                vec![rule(Some("1-3,5-7"), None)],
                iv(&[(2, 4), (6, 8)]),
                None,
            ),
            (
                "overlapping first, counted",
                vec![rule(Some("1-3,5-7"), Some(4))],
                iv(&[(2, 4), (6, 8)]),
                Some("Matched rules at index 0"),
            ),
            (
                "overlapping last",
                vec![rule(Some("2-4,6-9"), None)],
                iv(&[(1, 3), (5, 7)]),
                None,
            ),
            (
                "overlapping last, counted",
                vec![rule(Some("2-4,6-9"), Some(4))],
                iv(&[(1, 3), (5, 7)]),
                Some("Matched rules at index 0"),
            ),
            (
                "covering",
                vec![rule(Some("0-4,6-9"), None)],
                iv(&[(1, 3), (7, 8)]),
                None,
            ),
            (
                "covering, counted",
                vec![rule(Some("0-4,6-9"), Some(5))],
                iv(&[(1, 3), (7, 8)]),
                Some("Matched rules at index 0"),
            ),
            (
                "several at last",
                vec![rule(Some("0-6,8-9"), None)],
                iv(&[(1, 3), (5, 9)]),
                None,
            ),
            (
                "several at last, counted",
                vec![rule(Some("0-6,8-9"), Some(7))],
                iv(&[(1, 3), (5, 9)]),
                Some("Matched rules at index 0"),
            ),
            (
                "the first at first",
                vec![rule(Some("0-3,6-9"), None)],
                iv(&[(1, 9)]),
                None,
            ),
            (
                "the first at first, counted",
                vec![rule(Some("0-3,6-9"), Some(7))],
                iv(&[(1, 9)]),
                Some("Matched rules at index 0"),
            ),
        ];
        for (name, rules, succeeded, want) in cases {
            let policy = SuccessPolicy { rules };
            assert_eq!(
                match_success_policy(Some(&policy), 10, &succeeded).as_deref(),
                want,
                "{name}"
            );
        }
        assert_eq!(match_success_policy(None, 10, &iv(&[(0, 0)])), None);
    }

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).expect("ts")
    }

    /// Upstream's `TestGetRemainingTimeForFailuresCount` and `TestNewBackoffRecord`.
    #[test]
    fn backoff_doubles_from_the_last_failure() {
        let cases = [
            (0, 0, 0),
            (1, 0, 10),
            (1, 4, 6),
            (1, 11, 0),
            (2, 5, 15),
            (3, 0, 40),
            (7, 0, 600),
            (20, 100, 500),
        ];
        for (failures, elapsed, want) in cases {
            assert_eq!(
                remaining_backoff(failures, ts(0), ts(elapsed)),
                Duration::from_secs(want),
                "{failures} failures, {elapsed} s ago"
            );
        }
        let finished = |phase: &str, at: i64| {
            pod(
                json!({"metadata": {"name": "p", "creationTimestamp": "2000-01-01T00:00:00Z"}, "status": {"phase": phase, "containerStatuses": [
                    {"name": "c", "image": "", "imageID": "", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "finishedAt": Time(ts(at))}}}
                ]}}),
            )
        };
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        let (f1, f2, s3, f4) = (
            finished("Failed", 1),
            finished("Failed", 2),
            finished("Succeeded", 3),
            finished("Failed", 4),
        );
        let none = BackoffRecord::default();
        let two = none.next(&[], &[&f2, &f1]);
        assert_eq!(
            (two.failures_after_last_success, two.last_failure),
            (2, Some(ts(2)))
        );
        let reset = two.next(&[&s3], &[&f4, &f1]);
        assert_eq!(
            (reset.failures_after_last_success, reset.last_failure),
            (1, Some(ts(4)))
        );
        assert_eq!(two.next(&[&s3], &[]), BackoffRecord::default());
        assert_eq!(reset.remaining(ts(8)), Duration::from_secs(6));
        // The time a pod finished, by what its status says.
        let ready_false = pod(
            json!({"metadata": {"name": "p"}, "status": {"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": Time(ts(7))}]}}),
        );
        assert_eq!(finished_time(&ready_false), ts(7));
        let deleted = pod(
            json!({"metadata": {"name": "p", "deletionTimestamp": Time(ts(40)), "deletionGracePeriodSeconds": 30}}),
        );
        assert_eq!(finished_time(&deleted), ts(10));
    }

    #[test]
    fn replacements_carry_the_failure_counts() {
        let failed = |annotations: serde_json::Value, code: i32| {
            let mut p = exits(&[("main", code)], &[]);
            p.metadata.annotations = serde_json::from_value(annotations).expect("annotations");
            p
        };
        let ignore_7 = PodFailurePolicy {
            rules: vec![on_exit("Ignore", None, "In", &[7])],
        };
        let cases = [
            (None, None, (0, 0)),
            (Some(failed(json!({}), 1)), None, (1, 0)),
            (
                Some(failed(json!({INDEX_FAILURE_COUNT: "2"}), 1)),
                None,
                (3, 0),
            ),
            (
                Some(failed(
                    json!({INDEX_FAILURE_COUNT: "2", INDEX_IGNORED_FAILURE_COUNT: "1"}),
                    7,
                )),
                Some(&ignore_7),
                (2, 2),
            ),
            (
                Some(failed(json!({INDEX_FAILURE_COUNT: "bogus"}), 1)),
                None,
                (1, 0),
            ),
            (
                Some(failed(json!({INDEX_FAILURE_COUNT: "-3"}), 1)),
                None,
                (1, 0),
            ),
        ];
        for (i, (replaced, policy, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                replacement_failure_counts(policy, replaced.as_ref()),
                want,
                "case {i}"
            );
        }
    }
}
