//! Table tests of the decisions, then scenarios: one reconcile against a mock API server.

use super::*;
use serde_json::{json, Value};

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

/// A CronJob created at `created`, with `spec` merged over `*/5 * * * *`, Allow.
fn cron_job(created: &str, spec: Value, status: Value) -> CronJob {
    let mut base = json!({
        "schedule": "*/5 * * * *",
        "concurrencyPolicy": "Allow",
        "suspend": false,
        "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 1,
        "jobTemplate": {
            "metadata": {"labels": {"app": "nightly"}, "annotations": {"team": "ops"}},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox"}]}}}
        }
    });
    for (k, v) in spec.as_object().expect("spec").iter() {
        base[k] = v.clone();
    }
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": "default", "uid": "cj-uid",
            "resourceVersion": "1", "creationTimestamp": created},
        "spec": base,
        "status": status,
    }))
    .expect("cronjob")
}

fn job(name: &str, uid: &str, condition: Option<&str>, start: Option<&str>) -> Arc<Job> {
    let conditions: Vec<Value> = condition
        .map(|c| json!({"type": c, "status": "True"}))
        .into_iter()
        .collect();
    let mut status = json!({"conditions": conditions});
    if let Some(start) = start {
        status["startTime"] = json!(start);
        if condition == Some("Complete") {
            status["completionTime"] = json!(start);
        }
    }
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": uid,
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly",
                    "uid": "cj-uid", "controller": true}]},
            "spec": {"template": {}},
            "status": status,
        }))
        .expect("job"),
    )
}

fn active(name: &str, uid: &str) -> Value {
    json!({"kind": "Job", "apiVersion": "batch/v1", "namespace": "default", "name": name, "uid": uid})
}

fn reasons(decision: &Decision) -> Vec<&str> {
    decision.events.iter().map(|e| e.reason).collect()
}

/// The most recent unmet time of `spec` at `now` for a CronJob created at `created`.
fn unmet(
    spec: &str,
    created: &str,
    status: Value,
    deadline: Option<i64>,
    now: &str,
    with_deadline: bool,
) -> (Option<Timestamp>, Missed) {
    let cj = cron_job(
        created,
        json!({"startingDeadlineSeconds": deadline}),
        status,
    );
    let schedule = Schedule::parse(spec, &TimeZone::UTC).expect("schedule");
    let times = most_recent_schedule_time(&cj, ts(now), &schedule, with_deadline).expect("valid");
    (times.most_recent, times.missed)
}

#[test]
fn most_recent_unmet_times() {
    let created = "2024-01-01T10:01:00Z";
    let none = json!({});
    let at = |s: &str| Some(ts(s));
    // Not yet due; exactly due; three missed, so the latest.
    assert_eq!(
        unmet(
            "*/5 * * * *",
            created,
            none.clone(),
            None,
            "2024-01-01T10:04:59Z",
            true
        ),
        (None, Missed::None)
    );
    assert_eq!(
        unmet(
            "*/5 * * * *",
            created,
            none.clone(),
            None,
            "2024-01-01T10:05:00Z",
            true
        ),
        (at("2024-01-01T10:05:00Z"), Missed::None)
    );
    assert_eq!(
        unmet(
            "*/5 * * * *",
            created,
            none.clone(),
            None,
            "2024-01-01T10:17:00Z",
            true
        ),
        (at("2024-01-01T10:15:00Z"), Missed::Few)
    );
    // From the last scheduled time, not the creation.
    let last = |t: &str| json!({"lastScheduleTime": t});
    let midnight = "2024-01-01T00:00:00Z";
    assert_eq!(
        unmet(
            "@hourly",
            midnight,
            last("2024-01-01T09:00:00Z"),
            None,
            "2024-01-01T10:30:00Z",
            true
        ),
        (at("2024-01-01T10:00:00Z"), Missed::None)
    );
    assert_eq!(
        unmet(
            "@hourly",
            midnight,
            last("2024-01-01T10:00:00Z"),
            None,
            "2024-01-01T10:30:00Z",
            true
        ),
        (None, Missed::None)
    );
    // Over a hundred missed: still the latest, flagged; startingDeadlineSeconds moves the
    // window up, but not for the requeue computation.
    let noon = "2024-01-01T12:00:30Z";
    assert_eq!(
        unmet("* * * * *", midnight, none.clone(), None, noon, true),
        (at("2024-01-01T12:00:00Z"), Missed::Many)
    );
    assert_eq!(
        unmet("* * * * *", midnight, none.clone(), Some(200), noon, true),
        (at("2024-01-01T12:00:00Z"), Missed::Few)
    );
    assert_eq!(
        unmet("* * * * *", midnight, none.clone(), Some(200), noon, false),
        (at("2024-01-01T12:00:00Z"), Missed::Many)
    );
    // Uneven intervals: weekdays 6:30, 10:30, 14:30 (2024-01-08 is a Monday).
    assert_eq!(
        unmet(
            "30 6-16/4 * * 1-5",
            "2024-01-05T15:00:00Z",
            none,
            None,
            "2024-01-08T11:00:00Z",
            true
        ),
        (at("2024-01-08T10:30:00Z"), Missed::Few)
    );
    let never = Schedule::parse("0 0 31 2 *", &TimeZone::UTC).expect("parses");
    let cj = cron_job(midnight, json!({}), json!({}));
    assert_eq!(
        most_recent_schedule_time(&cj, ts("2024-02-01T00:00:00Z"), &never, true),
        Err(InvalidSchedule)
    );
}

#[test]
fn requeues_land_just_after_the_next_time() {
    let schedule = Schedule::parse("*/5 * * * *", &TimeZone::UTC).expect("schedule");
    let cj = cron_job("2024-01-01T10:01:00Z", json!({}), json!({}));
    assert_eq!(
        next_schedule_time_duration(&cj, ts("2024-01-01T10:02:00Z"), &schedule),
        Duration::from_millis(180_100)
    );
    let cj = cron_job(
        "2024-01-01T10:01:00Z",
        json!({}),
        json!({"lastScheduleTime": "2024-01-01T10:05:00Z"}),
    );
    assert_eq!(
        next_schedule_time_duration(&cj, ts("2024-01-01T10:05:01Z"), &schedule),
        Duration::from_millis(299_100)
    );
}

#[test]
fn plans_follow_suspend_concurrency_and_deadlines() {
    let utc = TimeZone::UTC;
    let now = ts("2024-01-01T10:05:10Z");
    let running = json!({"active": [active("nightly-28401720", "old")]});
    type Case<'a> = (&'a str, Value, Value, &'a [&'a str], &'a str);
    let cases: &[Case] = &[
        ("due: start", json!({}), json!({}), &[], "start"),
        (
            "suspended",
            json!({"suspend": true}),
            json!({}),
            &[],
            "idle",
        ),
        (
            "Forbid with one running",
            json!({"concurrencyPolicy": "Forbid"}),
            running.clone(),
            &["JobAlreadyActive"],
            "wait",
        ),
        (
            "Forbid with none running",
            json!({"concurrencyPolicy": "Forbid"}),
            json!({}),
            &[],
            "start",
        ),
        (
            "Replace with one running",
            json!({"concurrencyPolicy": "Replace"}),
            running.clone(),
            &[],
            "start replacing",
        ),
        ("Allow with one running", json!({}), running, &[], "start"),
        (
            "already started for this time",
            json!({}),
            json!({"lastScheduleTime": "2024-01-01T10:05:00Z"}),
            &[],
            "wait",
        ),
        (
            "its job already active",
            json!({}),
            json!({"active": [active("nightly-28401725", "u")]}),
            &[],
            "wait",
        ),
        (
            "deadline of 5 s passed",
            json!({"startingDeadlineSeconds": 5}),
            json!({}),
            &[],
            "wait",
        ),
        (
            "deadline of 20 s not passed",
            json!({"startingDeadlineSeconds": 20}),
            json!({}),
            &[],
            "start",
        ),
        (
            "unknown time zone",
            json!({"timeZone": "Mars/Olympus"}),
            json!({}),
            &["UnknownTimeZone"],
            "idle",
        ),
        (
            "unparseable",
            json!({"schedule": "* * *"}),
            json!({}),
            &["UnparseableSchedule"],
            "idle",
        ),
        (
            "never fires",
            json!({"schedule": "0 0 31 2 *"}),
            json!({}),
            &["InvalidSchedule"],
            "idle",
        ),
        (
            "TZ in the schedule",
            json!({"schedule": "TZ=UTC */5 * * * *"}),
            json!({}),
            &["UnsupportedSchedule"],
            "start",
        ),
    ];
    for (name, spec, status, events, want) in cases {
        let cj = cron_job("2024-01-01T10:01:00Z", spec.clone(), status.clone());
        let d = plan(&cj, now, &utc);
        assert_eq!(reasons(&d), *events, "{name}");
        let got = match &d.plan {
            Plan::Idle => "idle",
            Plan::Wait { .. } => "wait",
            Plan::Start { replace, .. } if replace.is_empty() => "start",
            Plan::Start { .. } => "start replacing",
        };
        assert_eq!(got, *want, "{name}");
    }
    // Over a hundred missed: a warning, and only the latest starts.
    let cj = cron_job(
        "2024-01-01T00:00:00Z",
        json!({"schedule": "* * * * *"}),
        json!({}),
    );
    let d = plan(&cj, ts("2024-01-01T12:00:30Z"), &utc);
    assert_eq!(d.events[0].reason, "TooManyMissedTimes");
    assert_eq!(d.events[0].message, "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew");
    let Plan::Start { scheduled, .. } = d.plan else {
        panic!("start: {:?}", d.plan)
    };
    assert_eq!(scheduled, ts("2024-01-01T12:00:00Z"));
}

#[test]
fn the_job_is_named_annotated_and_owned() {
    let now = ts("2024-01-01T10:05:10Z");
    let cj = cron_job(
        "2024-01-01T10:01:00Z",
        json!({"timeZone": "Europe/Berlin", "schedule": "5 11 * * *"}),
        json!({}),
    );
    let d = plan(&cj, now, &TimeZone::UTC);
    let Plan::Start {
        scheduled,
        job,
        requeue_after,
        ..
    } = d.plan
    else {
        panic!("start: {:?}", d.plan)
    };
    // 11:05 in Berlin is 10:05 UTC.
    assert_eq!(scheduled, ts("2024-01-01T10:05:00Z"));
    assert_eq!(job.metadata.name.as_deref(), Some("nightly-28401725"));
    let annotations = job.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations.get(SCHEDULED_TIMESTAMP).map(String::as_str),
        Some("2024-01-01T11:05:00+01:00")
    );
    assert_eq!(annotations.get("team").map(String::as_str), Some("ops"));
    assert_eq!(
        job.metadata
            .labels
            .unwrap_or_default()
            .get("app")
            .map(String::as_str),
        Some("nightly")
    );
    let owner = &job.metadata.owner_references.unwrap_or_default()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("CronJob", "cj-uid", Some(true))
    );
    assert!(job.spec.is_some_and(|s| s.template.spec.is_some()));
    // Tomorrow at 11:05 Berlin, plus 100 ms.
    assert_eq!(
        requeue_after,
        Duration::from_secs(24 * 3600 - 10) + Duration::from_millis(100)
    );
    // Without a time zone the annotation is UTC.
    let cj = cron_job("2024-01-01T10:01:00Z", json!({}), json!({}));
    let job = job_from_template(&cj, ts("2024-01-01T10:05:00Z"), &TimeZone::UTC);
    assert_eq!(
        job.metadata.annotations.unwrap_or_default()[SCHEDULED_TIMESTAMP],
        "2024-01-01T10:05:00Z"
    );
}

#[test]
fn finished_jobs_leave_the_active_list() {
    let mut status: CronJobStatus = serde_json::from_value(json!({
        "active": [active("a", "a-uid"), active("b", "b-uid")],
        "lastSuccessfulTime": "2024-01-01T09:00:00Z",
    }))
    .expect("status");
    let jobs = [
        job("a", "a-uid", Some("Complete"), Some("2024-01-01T10:00:00Z")),
        job("b", "b-uid", None, None),
        job("c", "c-uid", Some("Failed"), None),
    ];
    let (events, changed) = record_finished_jobs(&mut status, &jobs);
    assert!(changed);
    assert_eq!(
        events,
        [normal(
            "SawCompletedJob",
            "Saw completed job: a, condition: Complete".into()
        )]
    );
    let names: Vec<_> = status
        .active
        .iter()
        .flatten()
        .map(|r| r.name.clone())
        .collect();
    assert_eq!(names, [Some("b".to_string())]);
    assert_eq!(
        status.last_successful_time.as_ref().map(|t| t.0),
        Some(ts("2024-01-01T10:00:00Z"))
    );
    // Nothing new: nothing changes.
    let (events, changed) = record_finished_jobs(&mut status, &jobs);
    assert!(events.is_empty() && !changed);
}

#[test]
fn history_limits_delete_the_oldest_finished_jobs() {
    let jobs = [
        job("s3", "3", Some("Complete"), Some("2024-01-01T03:00:00Z")),
        job("s1", "1", Some("Complete"), Some("2024-01-01T01:00:00Z")),
        job("s2", "2", Some("Complete"), Some("2024-01-01T02:00:00Z")),
        job("s0", "0", Some("Complete"), None),
        job("f1", "f1", Some("Failed"), Some("2024-01-01T01:00:00Z")),
        job("f2", "f2", Some("Failed"), Some("2024-01-01T02:00:00Z")),
        job("running", "r", None, Some("2024-01-01T00:00:00Z")),
    ];
    let names = |spec: Value| -> Vec<String> {
        let cj = cron_job("2024-01-01T00:00:00Z", spec, json!({}));
        history_to_delete(spec_of(&cj), &jobs)
            .iter()
            .map(|j| j.name_any())
            .collect()
    };
    // Defaults 3 and 1: the earliest started success, the earlier failure.
    assert_eq!(names(json!({})), ["s1", "f1"]);
    // Never started sorts last.
    assert_eq!(
        names(json!({"successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 0})),
        ["s1", "s2", "s3", "f1", "f2"]
    );
    assert!(
        names(json!({"successfulJobsHistoryLimit": null, "failedJobsHistoryLimit": null}))
            .is_empty()
    );
}

/// Scenario tests: one reconcile against a mock API server, asserting the exact calls.
mod scenarios {
    use super::*;
    use crate::testing::{accept_all, client, echo, Call};

    fn at_10_05_10() -> Timestamp {
        ts("2024-01-01T10:05:10Z")
    }

    fn controller(client: kube::Client) -> Arc<CronJobController> {
        let ctx = Context::new(client, crate::Options::default());
        CronJobController::with_clock(ctx, TimeZone::UTC, at_10_05_10)
    }

    fn lines(calls: &[Call]) -> Vec<String> {
        calls.iter().map(Call::line).collect()
    }

    fn key() -> Key {
        ("default".into(), "nightly".into())
    }

    #[tokio::test]
    async fn a_due_cron_job_creates_its_job_then_records_it() {
        let (client, calls) = client(accept_all);
        let c = controller(client);
        c.ctx
            .cron_jobs
            .seed(vec![cron_job("2024-01-01T10:01:00Z", json!({}), json!({}))]);
        c.ctx.jobs.seed(vec![]);
        let requeue = c.clone().reconcile(key()).await.expect("synced");
        let made = calls.without_events();
        assert_eq!(
            lines(&made),
            [
                "POST /apis/batch/v1/namespaces/default/jobs?",
                "PUT /apis/batch/v1/namespaces/default/cronjobs/nightly/status?",
            ]
        );
        assert_eq!(made[0].body["metadata"]["name"], "nightly-28401725");
        let status = &made[1].body["status"];
        assert_eq!(status["lastScheduleTime"], "2024-01-01T10:05:00Z");
        assert_eq!(status["active"][0]["name"], "nightly-28401725");
        assert_eq!(status["active"][0]["kind"], "Job");
        assert_eq!(
            requeue,
            Some(Duration::from_millis(4 * 60_000 + 50_000 + 100))
        );
    }

    #[tokio::test]
    async fn replace_deletes_the_running_job_first() {
        let running = job(
            "nightly-28401720",
            "old",
            None,
            Some("2024-01-01T10:00:01Z"),
        );
        let answer = running.clone();
        let (client, calls) = client(move |call| match call.method.as_str() {
            "GET" => (200, serde_json::to_value(answer.as_ref()).expect("json")),
            _ => accept_all(call),
        });
        let c = controller(client);
        c.ctx.cron_jobs.seed(vec![cron_job(
            "2024-01-01T09:00:00Z",
            json!({"concurrencyPolicy": "Replace"}),
            json!({"active": [active("nightly-28401720", "old")],
                "lastScheduleTime": "2024-01-01T10:00:00Z"}),
        )]);
        c.ctx.jobs.seed(vec![(*running).clone()]);
        c.clone().reconcile(key()).await.expect("synced");
        let made = calls.without_events();
        assert_eq!(
            lines(&made),
            [
                "GET /apis/batch/v1/namespaces/default/jobs/nightly-28401720",
                "DELETE /apis/batch/v1/namespaces/default/jobs/nightly-28401720?",
                "POST /apis/batch/v1/namespaces/default/jobs?",
                "PUT /apis/batch/v1/namespaces/default/cronjobs/nightly/status?",
            ]
        );
        assert_eq!(made[1].body["propagationPolicy"], "Background");
        let active = &made[3].body["status"]["active"];
        assert_eq!(active.as_array().map(Vec::len), Some(1));
        assert_eq!(active[0]["name"], "nightly-28401725");
    }

    #[tokio::test]
    async fn an_existing_job_of_ours_is_recorded_not_recreated() {
        let (client, calls) = client(|call| match call.method.as_str() {
            "POST" => (
                409,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 409,
                    "reason": "AlreadyExists", "message": "jobs.batch \"nightly-28401725\" already exists"}),
            ),
            "GET" => (
                200,
                serde_json::to_value(job("nightly-28401725", "made-before", None, None).as_ref())
                    .expect("json"),
            ),
            _ => echo(call, 200),
        });
        let c = controller(client);
        c.ctx
            .cron_jobs
            .seed(vec![cron_job("2024-01-01T10:01:00Z", json!({}), json!({}))]);
        c.ctx.jobs.seed(vec![]);
        c.clone().reconcile(key()).await.expect("synced");
        let made = calls.without_events();
        assert_eq!(
            lines(&made),
            [
                "POST /apis/batch/v1/namespaces/default/jobs?",
                "GET /apis/batch/v1/namespaces/default/jobs/nightly-28401725",
                "PUT /apis/batch/v1/namespaces/default/cronjobs/nightly/status?",
            ]
        );
        assert_eq!(made[2].body["status"]["active"][0]["uid"], "made-before");
    }

    #[tokio::test]
    async fn finished_jobs_beyond_the_limit_are_deleted_and_leave_the_status() {
        let (client, calls) = client(accept_all);
        let c = controller(client);
        c.ctx.cron_jobs.seed(vec![cron_job(
            "2024-01-01T09:00:00Z",
            json!({"suspend": true, "failedJobsHistoryLimit": 1}),
            json!({"active": [active("f2", "f2")]}),
        )]);
        c.ctx.jobs.seed(vec![
            (*job("f1", "f1", Some("Failed"), Some("2024-01-01T09:10:00Z"))).clone(),
            (*job("f2", "f2", Some("Failed"), Some("2024-01-01T09:20:00Z"))).clone(),
        ]);
        let requeue = c.clone().reconcile(key()).await.expect("synced");
        let made = calls.without_events();
        assert_eq!(
            lines(&made),
            [
                "DELETE /apis/batch/v1/namespaces/default/jobs/f1?",
                "PUT /apis/batch/v1/namespaces/default/cronjobs/nightly/status?",
            ]
        );
        assert_eq!(requeue, None, "suspended: nothing to come back for");
        assert!(made[1].body["status"].get("active").is_none());
    }
}
