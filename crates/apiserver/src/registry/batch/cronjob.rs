//! CronJobs (`pkg/registry/batch/cronjob`): upstream's defaults, applied to every write as
//! upstream's decoding applies them, and upstream's validation (`ValidateCronJobCreate`,
//! `ValidateCronJobUpdate`): the schedule read by the parser the controller runs
//! ([`ferry_api::cron`]), no `TZ=` in it, a known `timeZone`, the policies and limits, the
//! job template as a Job's spec whose selector is generated, and on create a name that leaves
//! room for the Jobs' 11-character suffix.

use ferry_api::cron::{location_problem, Schedule};
use jiff::tz::TimeZone;
use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::registry::apps::validation::{go_label_selector, nonnegative, str_at};
use crate::registry::batch::validation::{default_pod_failure_policy, validate_job_spec};
use crate::registry::core::pod::default_template;
use crate::registry::generic::default;
use crate::registry::Strategy;
use crate::status::FieldError;

/// The CronJob strategy.
pub struct CronJobStrategy;

impl Strategy for CronJobStrategy {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_for_create(&self, object: &mut Value, _user: Option<&UserInfo>) {
        set_defaults(object);
    }

    fn prepare_for_update(&self, new: &mut Value, _old: &Value) {
        set_defaults(new);
    }

    fn default_fields(&self, object: &mut Value) {
        set_defaults(object);
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        validate_spec(object, None, errors);
        let name = str_at(object, "/metadata/name");
        if name.len() > MAX_NAME_LENGTH {
            errors.push(FieldError::invalid(
                "metadata.name",
                name,
                format!("must be no more than {MAX_NAME_LENGTH} characters"),
            ));
        }
    }

    /// No name check: CronJobs made before it may still be updated (and deleted).
    fn validate_update(&self, new: &Value, old: &Value, errors: &mut Vec<FieldError>) {
        validate_spec(new, Some(old), errors);
    }
}

/// A Job's name is the CronJob's and an 11-character `-<minute>`, within a DNS-1035 label's 63.
pub const MAX_NAME_LENGTH: usize = 63 - 11;

/// `SetDefaults_CronJob` and the job template's pod defaults (its `restartPolicy` becomes
/// `Always`, which validation then refuses, as upstream's does).
fn set_defaults(object: &mut Value) {
    if let Some(spec) = object.get_mut("spec").filter(|s| s.is_object()) {
        if str_at(spec, "/concurrencyPolicy").is_empty() {
            spec["concurrencyPolicy"] = json!("Allow");
        }
        default(spec, "suspend", json!(false));
        default(spec, "successfulJobsHistoryLimit", json!(3));
        default(spec, "failedJobsHistoryLimit", json!(1));
    }
    default_template(object, "/spec/jobTemplate/spec/template/spec");
    default_pod_failure_policy(object, "/spec/jobTemplate/spec");
}

/// `validateCronJobSpec`; `old` is the stored object on update.
fn validate_spec(object: &Value, old: Option<&Value>, errors: &mut Vec<FieldError>) {
    let schedule = str_at(object, "/spec/schedule");
    let time_zone = object.pointer("/spec/timeZone").and_then(Value::as_str);
    if schedule.is_empty() {
        errors.push(FieldError::required("spec.schedule", ""));
    } else {
        // A schedule with `TZ` stored before that was refused may keep it.
        let tz_allowed = old.is_some_and(|o| str_at(o, "/spec/schedule").contains("TZ"));
        validate_schedule(schedule, tz_allowed, time_zone.is_some(), errors);
    }
    nonnegative(
        object,
        "/spec/startingDeadlineSeconds",
        "spec.startingDeadlineSeconds",
        errors,
    );
    let old_zone = old.map(|o| o.pointer("/spec/timeZone").and_then(Value::as_str));
    if old_zone != Some(time_zone) {
        if let Some(zone) = time_zone {
            validate_time_zone(zone, errors);
        }
    }
    match str_at(object, "/spec/concurrencyPolicy") {
        "" => errors.push(FieldError::required("spec.concurrencyPolicy", "")),
        "Allow" | "Forbid" | "Replace" => {}
        other => errors.push(FieldError::not_supported(
            "spec.concurrencyPolicy",
            other,
            &["Allow", "Forbid", "Replace"],
        )),
    }
    let template = object
        .pointer("/spec/jobTemplate/spec")
        .cloned()
        .unwrap_or_else(|| json!({}));
    validate_job_template_spec(&template, "spec.jobTemplate.spec", errors);
    for limit in ["successfulJobsHistoryLimit", "failedJobsHistoryLimit"] {
        nonnegative(
            object,
            &format!("/spec/{limit}"),
            &format!("spec.{limit}"),
            errors,
        );
    }
}

/// `validateScheduleFormat`: the schedule parses as the controller parses it, and carries no
/// time zone of its own (`timeZone` is for that).
fn validate_schedule(
    schedule: &str,
    tz_allowed: bool,
    has_time_zone: bool,
    errors: &mut Vec<FieldError>,
) {
    if let Err(problem) = Schedule::parse(schedule, &TimeZone::UTC) {
        errors.push(FieldError::invalid(
            "spec.schedule",
            schedule,
            problem.to_string(),
        ));
    }
    let has_tz = schedule.contains("TZ");
    if tz_allowed && has_tz && has_time_zone {
        errors.push(FieldError::invalid(
            "spec.schedule",
            schedule,
            "cannot use both timeZone field and TZ or CRON_TZ in schedule",
        ));
    } else if !tz_allowed && has_tz {
        errors.push(FieldError::invalid(
            "spec.schedule",
            schedule,
            "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
        ));
    }
}

/// `validateTimeZone`: a non-empty IANA name (each part as the tz database names files), not
/// `Local`, that the tz database knows.
fn validate_time_zone(zone: &str, errors: &mut Vec<FieldError>) {
    let invalid = |detail: String| FieldError::invalid("spec.timeZone", zone, detail);
    if zone.is_empty() {
        errors.push(invalid("timeZone must be nil or non-empty string".into()));
        return;
    }
    // Letters, digits, `.`, `-`, `_` and `+`, at most 14 of them, not `.`, `..` or `-…`.
    let part_ok = |part: &str| {
        (1..=14).contains(&part.len())
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
            && part != "."
            && part != ".."
            && !part.starts_with('-')
    };
    if !zone.split('/').all(part_ok) {
        errors.push(invalid(format!("unknown time zone {zone}")));
        return;
    }
    if zone.eq_ignore_ascii_case("Local") {
        errors.push(invalid(
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"
                .into(),
        ));
    }
    if let Some(problem) = location_problem(zone) {
        errors.push(invalid(problem));
    }
}

/// `ValidateJobTemplateSpec`: the template's spec as a Job's (`validateJobSpec`), whose
/// selector the Job's creation generates.
fn validate_job_template_spec(spec: &Value, path: &str, errors: &mut Vec<FieldError>) {
    validate_job_spec(spec, path, errors);
    if let Some(selector) = spec.get("selector").filter(|s| !s.is_null()) {
        errors.push(FieldError::invalid_raw(
            format!("{path}.selector"),
            go_label_selector(selector),
            "`selector` will be auto-generated",
        ));
    }
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        errors.push(crate::registry::apps::validation::not_supported_raw(
            &format!("{path}.manualSelector"),
            "true".into(),
            &["nil", "false"],
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::generic::{prepare_for_create, tests::resource};

    fn cronjobs() -> &'static crate::registry::Resource {
        resource("batch", "v1", "cronjobs")
    }

    fn valid() -> Value {
        let mut cj = json!({
            "metadata": {"name": "backup", "namespace": "default"},
            "spec": {
                "schedule": "*/5 * * * ?",
                "jobTemplate": {"spec": {"template": {"spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [{"name": "c", "image": "busybox"}]
                }}}}
            }
        });
        prepare_for_create(cronjobs(), &mut cj, None);
        cj
    }

    fn errors(cj: &Value, old: Option<&Value>) -> Vec<String> {
        crate::registry::generic::tests::field_errors(cronjobs(), cj, old)
    }

    /// `valid()` with `spec` merged into its spec.
    fn with(spec: Value) -> Value {
        let mut cj = valid();
        for (k, v) in spec.as_object().expect("object") {
            cj["spec"][k] = v.clone();
        }
        cj
    }

    #[test]
    fn defaults_are_upstreams() {
        let cj = valid();
        assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(cj["spec"]["suspend"], false);
        assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(cj["spec"]["failedJobsHistoryLimit"], 1);
        assert!(errors(&cj, None).is_empty());
        for schedule in [
            "@hourly",
            "@every 1h30m",
            "0 0 1 JAN,jul SUN",
            "59 23 31 12 6",
        ] {
            assert!(
                errors(&with(json!({"schedule": schedule})), None).is_empty(),
                "{schedule}"
            );
        }
        for zone in [
            "UTC",
            "America/New_York",
            "Etc/GMT+5",
            "America/Argentina/Buenos_Aires",
        ] {
            assert!(
                errors(&with(json!({"timeZone": zone})), None).is_empty(),
                "{zone}"
            );
        }
    }

    #[test]
    fn schedules_are_parsed_as_the_controller_parses_them() {
        let cases: &[(&str, &[&str])] = &[
            ("", &["spec.schedule: Required value"]),
            ("error", &["spec.schedule: Invalid value: \"error\": expected exactly 5 fields, found 1: [error]"]),
            ("0 * * *", &["spec.schedule: Invalid value: \"0 * * *\": expected exactly 5 fields, found 4: [0 * * *]"]),
            ("61 * * * *", &["spec.schedule: Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61"]),
            ("@fortnightly", &["spec.schedule: Invalid value: \"@fortnightly\": unrecognized descriptor: @fortnightly"]),
            ("TZ=UTC 0 * * * *", &["spec.schedule: Invalid value: \"TZ=UTC 0 * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead"]),
            (
                "CRON_TZ=Mars/Olympus 0 * * * *",
                &[
                    "spec.schedule: Invalid value: \"CRON_TZ=Mars/Olympus 0 * * * *\": provided bad location Mars/Olympus: unknown time zone Mars/Olympus",
                    "spec.schedule: Invalid value: \"CRON_TZ=Mars/Olympus 0 * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
                ],
            ),
        ];
        for (schedule, want) in cases {
            assert_eq!(
                errors(&with(json!({"schedule": schedule})), None),
                *want,
                "{schedule}"
            );
        }
        // A TZ schedule stored before it was refused may stay, but not beside timeZone.
        let mut stored = with(json!({"schedule": "TZ=UTC 0 * * * *"}));
        let mut suspended = stored.clone();
        suspended["spec"]["suspend"] = json!(true);
        assert!(errors(&suspended, Some(&stored)).is_empty());
        stored["spec"]["timeZone"] = json!("UTC");
        assert_eq!(
            errors(&stored, Some(&suspended)),
            ["spec.schedule: Invalid value: \"TZ=UTC 0 * * * *\": cannot use both timeZone field and TZ or CRON_TZ in schedule"]
        );
    }

    #[test]
    fn time_zones_must_be_known_iana_names() {
        let cases: &[(&str, &[&str])] = &[
            ("", &["spec.timeZone: Invalid value: \"\": timeZone must be nil or non-empty string"]),
            ("Continent/Zone", &["spec.timeZone: Invalid value: \"Continent/Zone\": unknown time zone Continent/Zone"]),
            ("America/New York", &["spec.timeZone: Invalid value: \"America/New York\": unknown time zone America/New York"]),
            ("../etc/passwd", &["spec.timeZone: Invalid value: \"../etc/passwd\": unknown time zone ../etc/passwd"]),
            ("-0700", &["spec.timeZone: Invalid value: \"-0700\": unknown time zone -0700"]),
            ("America/Los_AngelesLosAngeles", &["spec.timeZone: Invalid value: \"America/Los_AngelesLosAngeles\": unknown time zone America/Los_AngelesLosAngeles"]),
            ("Local", &["spec.timeZone: Invalid value: \"Local\": timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"]),
            (
                "local",
                &[
                    "spec.timeZone: Invalid value: \"local\": timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
                    "spec.timeZone: Invalid value: \"local\": unknown time zone local",
                ],
            ),
            ("europe/berlin", &["spec.timeZone: Invalid value: \"europe/berlin\": unknown time zone europe/berlin"]),
        ];
        for (zone, want) in cases {
            assert_eq!(
                errors(&with(json!({"timeZone": zone})), None),
                *want,
                "{zone}"
            );
        }
        // An unchanged zone is not checked again on update.
        let mut stored = valid();
        stored["spec"]["timeZone"] = json!("Local");
        let mut suspended = stored.clone();
        suspended["spec"]["suspend"] = json!(true);
        assert!(errors(&suspended, Some(&stored)).is_empty());
    }

    #[test]
    fn policies_limits_and_names() {
        assert_eq!(
            errors(
                &with(json!({
                    "startingDeadlineSeconds": -1,
                    "concurrencyPolicy": "Sometimes",
                    "successfulJobsHistoryLimit": -1,
                    "failedJobsHistoryLimit": -1
                })),
                None
            ),
            [
                "spec.startingDeadlineSeconds: Invalid value: -1: must be greater than or equal to 0",
                "spec.concurrencyPolicy: Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\"",
                "spec.successfulJobsHistoryLimit: Invalid value: -1: must be greater than or equal to 0",
                "spec.failedJobsHistoryLimit: Invalid value: -1: must be greater than or equal to 0",
            ]
        );
        let mut long = valid();
        let name = "a".repeat(53);
        long["metadata"]["name"] = json!(name);
        assert_eq!(
            errors(&long, None),
            [format!(
                "metadata.name: Invalid value: \"{name}\": must be no more than 52 characters"
            )]
        );
        let mut suspended = long.clone();
        suspended["spec"]["suspend"] = json!(true);
        assert!(errors(&suspended, Some(&long)).is_empty(), "not on update");
        let mut dotted = valid();
        dotted["metadata"]["name"] = json!("nightly.backup");
        assert!(errors(&dotted, None).is_empty(), "a DNS subdomain");
    }

    #[test]
    fn job_templates_are_checked_as_jobs() {
        let mut always = json!({
            "metadata": {"name": "c"},
            "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "c", "image": "busybox"}]
            }}}}}
        });
        prepare_for_create(cronjobs(), &mut always, None);
        assert_eq!(
            errors(&always, None),
            ["spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""]
        );
        let template = |spec: Value| {
            let mut cj = valid();
            for (k, v) in spec.as_object().expect("object") {
                cj["spec"]["jobTemplate"]["spec"][k] = v.clone();
            }
            cj
        };
        let cases: &[(&str, Value, &[&str])] = &[
            (
                "negative counts",
                json!({"parallelism": -1, "completions": -1, "activeDeadlineSeconds": -1, "backoffLimit": -1, "ttlSecondsAfterFinished": -1}),
                &[
                    "spec.jobTemplate.spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
                    "spec.jobTemplate.spec.completions: Invalid value: -1: must be greater than or equal to 0",
                    "spec.jobTemplate.spec.activeDeadlineSeconds: Invalid value: -1: must be greater than or equal to 0",
                    "spec.jobTemplate.spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0",
                    "spec.jobTemplate.spec.ttlSecondsAfterFinished: Invalid value: -1: must be greater than or equal to 0",
                ],
            ),
            (
                "selector and manualSelector",
                json!({"selector": {"matchLabels": {"a": "b"}}, "manualSelector": true}),
                &[
                    "spec.jobTemplate.spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"a\":\"b\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: `selector` will be auto-generated",
                    "spec.jobTemplate.spec.manualSelector: Unsupported value: true: supported values: \"nil\", \"false\"",
                ],
            ),
            (
                "completion mode",
                json!({"completionMode": "Sometimes"}),
                &["spec.jobTemplate.spec.completionMode: Unsupported value: \"Sometimes\": supported values: \"NonIndexed\", \"Indexed\""],
            ),
            (
                "indexed without completions",
                json!({"completionMode": "Indexed", "backoffLimitPerIndex": 1, "maxFailedIndexes": 2}),
                &["spec.jobTemplate.spec.completions: Required value: when completion mode is Indexed"],
            ),
            (
                "per-index limits without indexes",
                json!({"maxFailedIndexes": 2}),
                &[
                    "spec.jobTemplate.spec.backoffLimitPerIndex: Required value: when maxFailedIndexes is specified",
                    "spec.jobTemplate.spec.maxFailedIndexes: Invalid value: 2: requires indexed completion mode",
                ],
            ),
            (
                "pod replacement",
                json!({"podReplacementPolicy": "Sometimes"}),
                &["spec.jobTemplate.spec.podReplacementPolicy: Unsupported value: \"Sometimes\": supported values: \"Failed\", \"TerminatingOrFailed\""],
            ),
        ];
        for (name, spec, want) in cases {
            assert_eq!(errors(&template(spec.clone()), None), *want, "{name}");
        }
        let mut bogus = valid();
        bogus["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] =
            json!("Sometimes");
        assert_eq!(
            errors(&bogus, None),
            ["spec.jobTemplate.spec.template.spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"OnFailure\", \"Never\""]
        );
    }
}
