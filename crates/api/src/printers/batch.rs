//! Table printers of the `batch` group's kinds, as upstream's `printers.go` prints them.

use serde_json::Value;

use super::cells::*;
use super::{Column, TablePrinter};

/// The table of `jobs.batch`.
pub struct Job;

impl TablePrinter for Job {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Status", "string", "Status of the job."),
            col("Completions", "string", "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs."),
            col("Duration", "string", "Time required to complete the job."),
            AGE,
            wide("Containers", "string", CONTAINERS_DESC),
            wide("Images", "string", IMAGES_DESC),
            wide("Selector", "string", "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"),
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        job_row(o, now)
    }
}

/// The table of `cronjobs.batch`.
pub struct CronJob;

impl TablePrinter for CronJob {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Schedule", "string", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
            col("Timezone", "string", "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process. The set of valid time zone names and the time zone offset is loaded from the system-wide time zone database by the API server during CronJob validation and the controller manager during execution. If no system-wide time zone database can be found a bundled version of the database is used instead. If the time zone name becomes invalid during the lifetime of a CronJob or due to a change in host configuration, the controller will stop creating new new Jobs and will create a system event with the reason UnknownTimeZone. More information can be found in https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones"),
            col("Suspend", "boolean", "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false."),
            col("Active", "integer", "A list of pointers to currently running jobs."),
            col("Last Schedule", "string", "Information when was the last time the job was successfully scheduled."),
            AGE,
            wide("Containers", "string", CONTAINERS_DESC),
            wide("Images", "string", IMAGES_DESC),
            wide("Selector", "string", "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"),
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        let last = at(o, &["status", "lastScheduleTime"]);
        let last = if last.is_null() {
            "<none>".to_string()
        } else {
            translate_timestamp_since(last.as_str(), now)
        };
        let tz = match at(o, &["spec", "timeZone"]).as_str() {
            Some(tz) => tz.to_string(),
            None => "<none>".to_string(),
        };
        let suspend = match at(o, &["spec", "suspend"]).as_bool() {
            Some(b) => print_bool(b),
            // Defaulted to false upstream.
            None => print_bool(false),
        };
        let (names, images) = containers_cells(at(
            o,
            &[
                "spec",
                "jobTemplate",
                "spec",
                "template",
                "spec",
                "containers",
            ],
        ));
        vec![
            name(o),
            st(o, &["spec", "schedule"]).into(),
            tz.into(),
            suspend.into(),
            (arr(o, &["status", "active"]).len() as i64).into(),
            last.into(),
            age(o, now),
            names.into(),
            images.into(),
            format_label_selector(at(o, &["spec", "jobTemplate", "spec", "selector"])).into(),
        ]
    }
}

pub(super) fn job_row(o: &Value, now: i128) -> Vec<Value> {
    let succeeded = int(o, &["status", "succeeded"]);
    let completions = match opt_int(o, &["spec", "completions"]) {
        Some(c) => format!("{succeeded}/{c}"),
        None => {
            let parallelism = opt_int(o, &["spec", "parallelism"]).unwrap_or(0);
            if parallelism > 1 {
                format!("{succeeded}/1 of {parallelism}")
            } else {
                format!("{succeeded}/1")
            }
        }
    };
    let start = at(o, &["status", "startTime"]).as_str();
    let completion = at(o, &["status", "completionTime"]).as_str();
    let duration = match (start, completion) {
        (None, _) => String::new(),
        (Some(s), None) => human_duration_nanos(now - parse_rfc3339(s).unwrap_or(ZERO_TIME)),
        (Some(s), Some(c)) => human_duration_nanos(
            parse_rfc3339(c).unwrap_or(ZERO_TIME) - parse_rfc3339(s).unwrap_or(ZERO_TIME),
        ),
    };
    let conditions = arr(o, &["status", "conditions"]);
    let has = |ty: &str| {
        conditions
            .iter()
            .find(|c| st(c, &["type"]) == ty)
            .is_some_and(|c| st(c, &["status"]) == "True")
    };
    let status = if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if deleting(o) {
        "Terminating"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = containers_cells(at(o, &["spec", "template", "spec", "containers"]));
    vec![
        name(o),
        status.into(),
        completions.into(),
        duration.into(),
        age(o, now),
        names.into(),
        images.into(),
        format_label_selector(at(o, &["spec", "selector"])).into(),
    ]
}
