//! The CronJob controller (upstream's `pkg/controller/cronjob`, `cronjob-controller`): creates a
//! Job at each time of a CronJob's `spec.schedule`, named `<cronjob>-<scheduled Unix minute>`
//! so one scheduled time never gets two Jobs.
//!
//! A sync, as upstream's: delete finished Jobs beyond the history limits; bring
//! `status.active` in line with the Jobs (finished ones out, with a `SawCompletedJob` event;
//! vanished ones out; `lastSuccessfulTime` the latest completion); then [`plan`] — a pure
//! function of the CronJob and the time — says whether a scheduled time is due and what
//! `concurrencyPolicy`, `suspend` and `startingDeadlineSeconds` allow; the sync carries it out
//! and comes back at the next scheduled time. Schedules are read by [`ferry_api::cron`], the
//! parser the API server validates them with.

use std::sync::Arc;
use std::time::Duration;

use ferry_client::events::{reference, EventType};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt as _};

use crate::informer::{key_of, Key};
use crate::queue::{Queue, Reconciler};
use crate::util::{api_code, controller_ref, new_controller_ref};
use crate::{ApiContext as _, Context, Error};
pub use ferry_api::cron::{load_location, ParseError, Schedule};

/// The annotation on a scheduled Job: its scheduled time, RFC 3339 in the CronJob's time zone.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Upstream's padding on a requeue at the next scheduled time, for clock skew.
const NEXT_SCHEDULE_DELTA: SignedDuration = SignedDuration::from_millis(100);
/// Upstream's limit on missed start times before it warns.
const MANY_MISSED: i64 = 100;
const COMPONENT: &str = "cronjob-controller";

/// The controller.
pub struct CronJobController {
    ctx: Arc<Context>,
    queue: Arc<Queue<Key>>,
    /// The zone of schedules that name none (Go's `time.Local`: the controller's own).
    local: TimeZone,
    /// The clock (upstream's `now`), fixed in tests.
    now: fn() -> Timestamp,
}

impl Reconciler for CronJobController {
    type Key = Key;
    type Error = Error;
    const NAME: &'static str = "cronjob";

    fn queue(&self) -> &Arc<Queue<Key>> {
        &self.queue
    }

    async fn reconcile(self: Arc<Self>, key: Key) -> Result<Option<Duration>, Error> {
        self.sync(key).await
    }
}

impl CronJobController {
    /// Registers the handlers.
    pub fn new(ctx: Arc<Context>) -> Arc<CronJobController> {
        CronJobController::with_clock(ctx, TimeZone::system(), Timestamp::now)
    }

    fn with_clock(
        ctx: Arc<Context>,
        local: TimeZone,
        now: fn() -> Timestamp,
    ) -> Arc<CronJobController> {
        let controller = Arc::new(CronJobController {
            ctx: ctx.clone(),
            queue: Queue::new(),
            local,
            now,
        });
        let c = controller.clone();
        ctx.cron_jobs.add_handler(move |old, new| match (old, new) {
            (Some(old), Some(new)) => c.cron_job_updated(old, new),
            (_, Some(cron_job)) | (Some(cron_job), None) => c.queue.add(key_of(cron_job.as_ref())),
            (None, None) => {}
        });
        let c = controller.clone();
        ctx.jobs.add_handler(move |old, new| {
            // Both owners when the controller reference changed; the queue folds repeats.
            for job in [old, new].into_iter().flatten() {
                if let Some(key) = c.owner_of(job) {
                    c.queue.add(key);
                }
            }
        });
        controller
    }

    /// The cached CronJob controlling `job`.
    fn owner_of(&self, job: &Job) -> Option<Key> {
        let owner = controller_ref(&job.metadata).filter(|r| r.kind == "CronJob")?;
        let namespace = job.namespace().unwrap_or_default();
        let cron_job = self.ctx.cron_jobs.get(&namespace, &owner.name)?;
        (cron_job.metadata.uid.as_deref() == Some(owner.uid.as_str()))
            .then(|| key_of(cron_job.as_ref()))
    }

    /// A changed schedule or time zone is looked at at its next time; other changes now.
    fn cron_job_updated(&self, old: &CronJob, new: &CronJob) {
        let key = key_of(new);
        let (old_spec, new_spec) = (spec_of(old), spec_of(new));
        if old_spec.schedule == new_spec.schedule && old_spec.time_zone == new_spec.time_zone {
            return self.queue.add(key);
        }
        let (text, _) = format_schedule(new_spec, &self.local);
        match Schedule::parse(&text, &self.local) {
            Ok(schedule) => self.queue.add_after(
                key,
                next_schedule_time_duration(new, (self.now)(), &schedule),
            ),
            Err(_) => self.ctx.recorder(COMPONENT).event(
                reference(new),
                EventType::Warning,
                "UnParseableCronJobSchedule",
                format!("unparseable schedule for cronjob: {}", new_spec.schedule),
            ),
        }
    }

    async fn sync(&self, key: Key) -> Result<Option<Duration>, Error> {
        let Some(cached) = self.ctx.cron_jobs.get(&key.0, &key.1) else {
            return Ok(None);
        };
        // Every Job it controls, whatever its labels now say.
        let jobs: Vec<Arc<Job>> = self
            .ctx
            .jobs
            .list_namespace(&key.0)
            .into_iter()
            .filter(|j| {
                controller_ref(&j.metadata).is_some_and(|r| r.kind == "CronJob" && r.name == key.1)
            })
            .collect();
        let mut cron_job = (*cached).clone();
        let mut update = self.clean_up_finished_jobs(&mut cron_job, &jobs).await;
        let result = self.sync_cron_job(&mut cron_job, &jobs, &mut update).await;
        if update {
            normalize(&mut cron_job);
            let api: Api<CronJob> = Api::namespaced(self.ctx.client.clone(), &key.0);
            match api
                .replace_status(&key.1, &PostParams::default(), &cron_job)
                .await
            {
                Ok(_) => {}
                Err(e) if api_code(&e) == Some(404) => return Ok(None),
                Err(e) => return Err(e).context("updating cronjob status"),
            }
        }
        result
    }

    fn record(&self, cron_job: &CronJob, event: Event) {
        self.ctx.recorder(COMPONENT).event(
            reference(cron_job),
            event.type_,
            event.reason,
            event.message,
        );
    }

    /// Deletes the finished Jobs beyond `successfulJobsHistoryLimit` and
    /// `failedJobsHistoryLimit`, oldest first; whether the status changed.
    async fn clean_up_finished_jobs(&self, cron_job: &mut CronJob, jobs: &[Arc<Job>]) -> bool {
        let mut update = false;
        for job in history_to_delete(spec_of(cron_job), jobs) {
            // A failure is an event; the next sync tries again.
            if self.delete_job(cron_job, &job).await.is_ok() {
                update = true;
            }
        }
        update
    }

    /// Deletes `job` (its pods in the background) and its reference in `status.active`
    /// (upstream's `deleteJob`). A Job already gone counts as deleted.
    async fn delete_job(&self, cron_job: &mut CronJob, job: &Job) -> Result<(), kube::Error> {
        let api: Api<Job> = Api::namespaced(
            self.ctx.client.clone(),
            &job.namespace().unwrap_or_default(),
        );
        let name = job.name_any();
        let deleted = match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => true,
            Err(e) if api_code(&e) == Some(404) => false,
            Err(e) => {
                self.record(
                    cron_job,
                    warning("FailedDelete", format!("Deleted job: {}", api_message(&e))),
                );
                return Err(e);
            }
        };
        remove_from_active(cron_job, job.metadata.uid.as_deref().unwrap_or_default());
        if deleted {
            self.record(
                cron_job,
                normal("SuccessfulDelete", format!("Deleted job {name}")),
            );
        }
        Ok(())
    }

    /// Upstream's `syncCronJob`: status from the Jobs, then the [`plan`] carried out. Sets
    /// `update` when the status must be written, even when it fails.
    async fn sync_cron_job(
        &self,
        cron_job: &mut CronJob,
        jobs: &[Arc<Job>],
        update: &mut bool,
    ) -> Result<Option<Duration>, Error> {
        let now = (self.now)();
        let namespace = cron_job.namespace().unwrap_or_default();
        let name = cron_job.name_any();
        let cron_jobs: Api<CronJob> = Api::namespaced(self.ctx.client.clone(), &namespace);
        let job_api: Api<Job> = Api::namespaced(self.ctx.client.clone(), &namespace);

        // A running Job missing from status.active: our cache may predate our own last status
        // write, so ask the API server before calling it unexpected.
        for job in jobs {
            let uid = job.metadata.uid.as_deref().unwrap_or_default();
            if finished_condition(job).is_some() || in_active(cron_job, uid) {
                continue;
            }
            let fresh = cron_jobs.get(&name).await.context("getting a cronjob")?;
            if in_active(&fresh, uid) {
                *cron_job = fresh;
                continue;
            }
            self.record(
                cron_job,
                warning(
                    "UnexpectedJob",
                    format!(
                        "Saw a job that the controller did not create or forgot: {}",
                        job.name_any()
                    ),
                ),
            );
        }
        let (events, changed) = record_finished_jobs(status_mut(cron_job), jobs);
        *update |= changed;
        for event in events {
            self.record(cron_job, event);
        }

        // An active Job the cache does not know: gone only if the API server agrees.
        let active = cron_job
            .status
            .as_ref()
            .and_then(|s| s.active.clone())
            .unwrap_or_default();
        for gone in active.iter().filter(|r| {
            !jobs
                .iter()
                .any(|j| j.metadata.uid.is_some() && j.metadata.uid == r.uid)
        }) {
            let job_name = gone.name.clone().unwrap_or_default();
            match job_api.get(&job_name).await {
                Ok(_) => {}
                Err(e) if api_code(&e) == Some(404) => {
                    self.record(
                        cron_job,
                        normal("MissingJob", format!("Active job went missing: {job_name}")),
                    );
                    remove_from_active(cron_job, gone.uid.as_deref().unwrap_or_default());
                    *update = true;
                }
                Err(e) => return Err(e).context("getting an active job"),
            }
        }

        let decision = plan(cron_job, now, &self.local);
        for event in decision.events {
            self.record(cron_job, event);
        }
        let (scheduled, job, replace, requeue_after) = match decision.plan {
            Plan::Idle => return Ok(None),
            Plan::Wait { after } => return Ok(Some(after)),
            Plan::Start {
                scheduled,
                job,
                replace,
                requeue_after,
            } => (scheduled, job, replace, requeue_after),
        };
        for active in replace {
            let active_name = active.name.clone().unwrap_or_default();
            let running = match job_api.get(&active_name).await {
                Ok(job) => job,
                Err(e) => {
                    self.record(
                        cron_job,
                        warning("FailedGet", format!("Get job: {}", api_message(&e))),
                    );
                    return Err(e).context("getting a job to replace");
                }
            };
            self.delete_job(cron_job, &running)
                .await
                .context("replacing an active job")?;
            *update = true;
        }

        let job_name = job.name_any();
        let created = match job_api.create(&PostParams::default(), job.as_ref()).await {
            Ok(created) => {
                self.record(
                    cron_job,
                    normal("SuccessfulCreate", format!("Created job {job_name}")),
                );
                created
            }
            Err(e) if is_namespace_terminating(&e) => return Err(e).context("creating a job"),
            Err(e) if is_already_exists(&e) => {
                // Made by an earlier sync whose status write was lost, or by someone else.
                let existing = job_api
                    .get(&job_name)
                    .await
                    .context("getting an existing job")?;
                let uid = existing.metadata.uid.as_deref().unwrap_or_default();
                let ours = controller_ref(&existing.metadata).map(|r| r.uid.as_str())
                    == cron_job.metadata.uid.as_deref();
                if !ours || in_active(cron_job, uid) {
                    return Ok(None);
                }
                tracing::info!(cronjob = %name, job = %job_name, "job already exists");
                existing
            }
            Err(e) => {
                self.record(
                    cron_job,
                    warning(
                        "FailedCreate",
                        format!("Error creating job: {}", api_message(&e)),
                    ),
                );
                return Err(e).context("creating a job");
            }
        };
        let status = status_mut(cron_job);
        status
            .active
            .get_or_insert_with(Vec::new)
            .push(reference(&created));
        status.last_schedule_time = Some(Time(scheduled));
        *update = true;
        Ok(Some(requeue_after))
    }
}

fn spec_of(cron_job: &CronJob) -> &CronJobSpec {
    static EMPTY: std::sync::OnceLock<CronJobSpec> = std::sync::OnceLock::new();
    cron_job
        .spec
        .as_ref()
        .unwrap_or_else(|| EMPTY.get_or_init(CronJobSpec::default))
}

fn status_mut(cron_job: &mut CronJob) -> &mut CronJobStatus {
    cron_job.status.get_or_insert_with(Default::default)
}

/// An empty `status.active` is left out, as Go's `omitempty` leaves it.
fn normalize(cron_job: &mut CronJob) {
    if let Some(status) = cron_job.status.as_mut() {
        if status.active.as_ref().is_some_and(Vec::is_empty) {
            status.active = None;
        }
    }
}

fn in_active(cron_job: &CronJob, uid: &str) -> bool {
    active_refs(cron_job).any(|r| r.uid.as_deref() == Some(uid))
}

fn active_refs(cron_job: &CronJob) -> impl Iterator<Item = &ObjectReference> {
    cron_job
        .status
        .as_ref()
        .and_then(|s| s.active.as_ref())
        .into_iter()
        .flatten()
}

fn remove_from_active(cron_job: &mut CronJob, uid: &str) {
    if let Some(active) = cron_job.status.as_mut().and_then(|s| s.active.as_mut()) {
        active.retain(|r| r.uid.as_deref() != Some(uid));
    }
}

fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

fn is_already_exists(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists")
}

fn is_namespace_terminating(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(s) if s.code == 403 && s.message.contains("is being terminated"))
}

/// `Complete` or `Failed`, when the Job has finished (upstream's `FinishedCondition`).
fn finished_condition(job: &Job) -> Option<&str> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| c.type_.as_str())
}

/// An event to record on the CronJob.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Normal or Warning.
    pub type_: EventType,
    /// Upstream's reason.
    pub reason: &'static str,
    /// Upstream's message.
    pub message: String,
}

fn normal(reason: &'static str, message: String) -> Event {
    Event {
        type_: EventType::Normal,
        reason,
        message,
    }
}

fn warning(reason: &'static str, message: String) -> Event {
    Event {
        type_: EventType::Warning,
        reason,
        message,
    }
}

/// Takes finished Jobs out of `status.active`, with a `SawCompletedJob` event each, and keeps
/// `lastSuccessfulTime` at the latest completion of a successful Job; whether the status changed.
pub fn record_finished_jobs(status: &mut CronJobStatus, jobs: &[Arc<Job>]) -> (Vec<Event>, bool) {
    let mut events = Vec::new();
    let mut changed = false;
    for job in jobs {
        let Some(condition) = finished_condition(job) else {
            continue;
        };
        let uid = job.metadata.uid.as_deref().unwrap_or_default();
        if let Some(active) = status.active.as_mut() {
            if active.iter().any(|r| r.uid.as_deref() == Some(uid)) {
                active.retain(|r| r.uid.as_deref() != Some(uid));
                events.push(normal(
                    "SawCompletedJob",
                    format!(
                        "Saw completed job: {}, condition: {condition}",
                        job.name_any()
                    ),
                ));
                changed = true;
            }
        }
        if condition == "Complete" {
            let completed = job.status.as_ref().and_then(|s| s.completion_time.clone());
            let later = match (&status.last_successful_time, &completed) {
                (None, Some(_)) => true,
                (Some(last), Some(done)) => done.0 > last.0,
                _ => false,
            };
            if later {
                status.last_successful_time = completed;
                changed = true;
            }
        }
    }
    (events, changed)
}

/// The finished Jobs to delete: beyond `successfulJobsHistoryLimit` among the Complete ones and
/// beyond `failedJobsHistoryLimit` among the Failed ones, the earliest started first (never
/// started last, then by name). A limit left out keeps everything.
pub fn history_to_delete(spec: &CronJobSpec, jobs: &[Arc<Job>]) -> Vec<Arc<Job>> {
    let mut delete = Vec::new();
    for (condition, limit) in [
        ("Complete", spec.successful_jobs_history_limit),
        ("Failed", spec.failed_jobs_history_limit),
    ] {
        let Some(limit) = limit else { continue };
        let mut finished: Vec<Arc<Job>> = jobs
            .iter()
            .filter(|j| finished_condition(j) == Some(condition))
            .cloned()
            .collect();
        let excess = finished
            .len()
            .saturating_sub(usize::try_from(limit).unwrap_or(0));
        finished.sort_by_key(|j| {
            let start = j
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0);
            (start.is_none(), start, j.name_any())
        });
        delete.extend(finished.into_iter().take(excess));
    }
    delete
}

/// How many scheduled times passed unmet, roughly (upstream's `missedSchedulesType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    /// At most the one most recent time.
    None,
    /// Some, up to a hundred.
    Few,
    /// More than a hundred: a stopped controller or a skewed clock.
    Many,
}

/// What [`most_recent_schedule_time`] finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleTimes {
    /// `lastScheduleTime`, else the creation time (moved up to `startingDeadlineSeconds` ago
    /// when asked).
    pub earliest: Timestamp,
    /// The latest scheduled time after `earliest` and not after now.
    pub most_recent: Option<Timestamp>,
    /// How many were passed over.
    pub missed: Missed,
}

/// A schedule that parses but never fires twice a second apart (`0 0 31 2 *`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("time difference between two schedules is less than 1 second")]
pub struct InvalidSchedule;

/// Upstream's `mostRecentScheduleTime`: the latest unmet scheduled time since the last one (or
/// the creation), found without walking through every missed one — the count of missed times
/// is estimated from the first interval, and the walk starts just before the estimate.
pub fn most_recent_schedule_time(
    cron_job: &CronJob,
    now: Timestamp,
    schedule: &Schedule,
    include_starting_deadline: bool,
) -> Result<ScheduleTimes, InvalidSchedule> {
    let mut earliest = cron_job
        .status
        .as_ref()
        .and_then(|s| s.last_schedule_time.as_ref())
        .or(cron_job.metadata.creation_timestamp.as_ref())
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
    if include_starting_deadline {
        if let Some(seconds) = spec_of(cron_job).starting_deadline_seconds {
            if let Ok(deadline) = now.checked_sub(SignedDuration::from_secs(seconds)) {
                earliest = earliest.max(deadline);
            }
        }
    }
    let times = |most_recent, missed| {
        Ok(ScheduleTimes {
            earliest,
            most_recent,
            missed,
        })
    };
    let first = schedule.next(earliest).ok_or(InvalidSchedule)?;
    if now < first {
        return times(None, Missed::None);
    }
    let second = schedule.next(first).ok_or(InvalidSchedule)?;
    if now < second {
        return times(Some(first), Missed::None);
    }
    // Go's `Round(time.Second)`: half a second up.
    let interval = (second.duration_since(first).as_nanos() + 500_000_000) / 1_000_000_000;
    let interval = i64::try_from(interval).unwrap_or(i64::MAX);
    if interval < 1 {
        return Err(InvalidSchedule);
    }
    let missed = now.duration_since(first).as_secs() / interval + 1;
    // One interval before the estimate, for schedules whose intervals vary (`30 6-16/4 * * 1-5`).
    let mut t = first
        .checked_add(SignedDuration::from_secs(
            (missed - 2).saturating_mul(interval),
        ))
        .ok();
    let mut most_recent = None;
    while let Some(next) = t.and_then(|t| schedule.next(t)).filter(|n| *n <= now) {
        most_recent = Some(next);
        t = Some(next);
    }
    let missed = if missed > MANY_MISSED {
        Missed::Many
    } else if missed > 0 {
        Missed::Few
    } else {
        Missed::None
    };
    times(most_recent, missed)
}

/// How long until the next scheduled time after the last one, plus upstream's 100 ms
/// (`nextScheduleTimeDuration`); zero when the schedule never fires again.
pub fn next_schedule_time_duration(
    cron_job: &CronJob,
    now: Timestamp,
    schedule: &Schedule,
) -> Duration {
    let from = match most_recent_schedule_time(cron_job, now, schedule, false) {
        Err(_) => now,
        Ok(ScheduleTimes {
            most_recent: Some(t),
            ..
        }) => t,
        Ok(ScheduleTimes {
            earliest,
            missed: Missed::None,
            ..
        }) => earliest,
        Ok(_) => now,
    };
    schedule
        .next(from)
        .map(|next| (next + NEXT_SCHEDULE_DELTA).duration_since(now))
        .and_then(|d| Duration::try_from(d).ok())
        .unwrap_or(Duration::ZERO)
}

/// The scheduled time to start a Job for, if one is due (upstream's `nextScheduleTime`), and
/// whether more than a hundred were missed.
pub fn next_schedule_time(
    cron_job: &CronJob,
    now: Timestamp,
    schedule: &Schedule,
) -> Result<Option<(Timestamp, Missed)>, InvalidSchedule> {
    let times = most_recent_schedule_time(cron_job, now, schedule, true)?;
    Ok(times
        .most_recent
        .filter(|t| *t <= now)
        .map(|t| (t, times.missed)))
}

/// The schedule as the controller parses it (upstream's `formatSchedule`): `spec.timeZone`
/// becomes a `TZ=` prefix; a schedule with its own `TZ` is taken as it is, and flagged.
pub fn format_schedule(spec: &CronJobSpec, local: &TimeZone) -> (String, bool) {
    if spec.schedule.contains("TZ") {
        return (spec.schedule.clone(), true);
    }
    match &spec.time_zone {
        Some(zone) if load_location(zone, local).is_some() => {
            (format!("TZ={zone} {}", spec.schedule), false)
        }
        _ => (spec.schedule.clone(), false),
    }
}

/// The Job for `scheduled` (upstream's `getJobFromTemplate2`): `<cronjob>-<Unix minute>`, the
/// template's labels, annotations and spec, the scheduled-time annotation in the CronJob's
/// time zone (UTC without one), and the CronJob as its controller.
pub fn job_from_template(cron_job: &CronJob, scheduled: Timestamp, local: &TimeZone) -> Job {
    let spec = spec_of(cron_job);
    let template = spec.job_template.metadata.clone().unwrap_or_default();
    let zone = load_location(spec.time_zone.as_deref().unwrap_or_default(), local)
        .unwrap_or(TimeZone::UTC);
    let mut annotations = template.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), rfc3339_in(scheduled, &zone));
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(&cron_job.name_any(), scheduled)),
            namespace: cron_job.namespace(),
            labels: template.labels.filter(|l| !l.is_empty()),
            annotations: Some(annotations),
            owner_references: Some(vec![new_controller_ref(
                &cron_job.metadata,
                "batch/v1",
                "CronJob",
            )]),
            ..Default::default()
        },
        spec: spec.job_template.spec.clone(),
        status: None,
    }
}

/// `<cronjob>-<minutes since the Unix epoch>` (upstream's `getJobName`).
pub fn job_name(cron_job: &str, scheduled: Timestamp) -> String {
    format!("{cron_job}-{}", scheduled.as_second() / 60)
}

/// Go's `time.RFC3339` in `zone`: `Z` for a zero offset, else `±hh:mm`.
fn rfc3339_in(t: Timestamp, zone: &TimeZone) -> String {
    let zoned = t.to_zoned(zone.clone());
    if zoned.offset().seconds() == 0 {
        zoned.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// What a sync does once the status reflects the Jobs.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Nothing to start and nothing to come back for: being deleted, suspended, or a schedule
    /// or time zone that cannot work until the spec changes.
    Idle,
    /// Nothing to start now; look again after this.
    Wait {
        /// Until the next scheduled time.
        after: Duration,
    },
    /// Create `job`, first deleting the active Jobs in `replace` (concurrencyPolicy Replace).
    Start {
        /// The scheduled time it is for.
        scheduled: Timestamp,
        /// The Job to create.
        job: Box<Job>,
        /// Active Jobs to delete first.
        replace: Vec<ObjectReference>,
        /// When to look again once it is created.
        requeue_after: Duration,
    },
}

/// [`plan`]'s answer: what to do, and the events to record on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Events, in order.
    pub events: Vec<Event>,
    /// What to do.
    pub plan: Plan,
}

/// Upstream's `syncCronJob` after the status reconciliation: whether a scheduled time is due
/// and unmet, and what `startingDeadlineSeconds`, `concurrencyPolicy` and `suspend` allow.
pub fn plan(cron_job: &CronJob, now: Timestamp, local: &TimeZone) -> Decision {
    let mut events = Vec::new();
    let spec = spec_of(cron_job);
    let decision = |events, plan| Decision { events, plan };
    if cron_job.metadata.deletion_timestamp.is_some() {
        return decision(events, Plan::Idle);
    }
    if let Some(zone) = &spec.time_zone {
        if load_location(zone, local).is_none() {
            events.push(warning(
                "UnknownTimeZone",
                format!("invalid timeZone: {zone:?}: unknown time zone {zone}"),
            ));
            return decision(events, Plan::Idle);
        }
    }
    if spec.suspend == Some(true) {
        return decision(events, Plan::Idle);
    }
    let (text, unsupported) = format_schedule(spec, local);
    if unsupported {
        events.push(warning(
            "UnsupportedSchedule",
            format!(
                "CRON_TZ or TZ used in schedule {:?} is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details",
                spec.schedule
            ),
        ));
    }
    let schedule = match Schedule::parse(&text, local) {
        Ok(schedule) => schedule,
        Err(e) => {
            events.push(warning(
                "UnparseableSchedule",
                format!("unparseable schedule: {:?} : {e}", spec.schedule),
            ));
            return decision(events, Plan::Idle);
        }
    };
    let wait = || Plan::Wait {
        after: next_schedule_time_duration(cron_job, now, &schedule),
    };
    let scheduled = match next_schedule_time(cron_job, now, &schedule) {
        Err(e) => {
            events.push(warning(
                "InvalidSchedule",
                format!("invalid schedule: {} : {e}", spec.schedule),
            ));
            return decision(events, Plan::Idle);
        }
        Ok(None) => return decision(events, wait()),
        Ok(Some((scheduled, missed))) => {
            if missed == Missed::Many {
                events.push(warning(
                    "TooManyMissedTimes",
                    "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into(),
                ));
            }
            scheduled
        }
    };
    if let Some(seconds) = spec.starting_deadline_seconds {
        let deadline = scheduled.checked_add(SignedDuration::from_secs(seconds));
        if deadline.is_ok_and(|deadline| deadline < now) {
            events.push(warning(
                "MissSchedule",
                format!(
                    "Missed scheduled time to start a job: {}",
                    scheduled.strftime("%a, %d %b %Y %H:%M:%S +0000")
                ),
            ));
            return decision(events, wait());
        }
    }
    let name = job_name(&cron_job.name_any(), scheduled);
    let last = cron_job
        .status
        .as_ref()
        .and_then(|s| s.last_schedule_time.as_ref());
    if active_refs(cron_job).any(|r| r.name.as_deref() == Some(name.as_str()))
        || last.is_some_and(|t| t.0 == scheduled)
    {
        return decision(events, wait());
    }
    let active: Vec<ObjectReference> = active_refs(cron_job).cloned().collect();
    let replace = match spec.concurrency_policy.as_deref() {
        Some("Forbid") if !active.is_empty() => {
            events.push(normal(
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
            ));
            return decision(events, wait());
        }
        Some("Replace") => active,
        _ => Vec::new(),
    };
    // Once started, the next look is at the time after this one.
    let mut started = cron_job.clone();
    status_mut(&mut started).last_schedule_time = Some(Time(scheduled));
    let requeue_after = next_schedule_time_duration(&started, now, &schedule);
    decision(
        events,
        Plan::Start {
            scheduled,
            job: Box::new(job_from_template(cron_job, scheduled, local)),
            replace,
            requeue_after,
        },
    )
}

#[cfg(test)]
mod tests;
