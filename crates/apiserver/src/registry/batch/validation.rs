//! What Jobs and CronJobs' job templates share (`pkg/apis/batch/validation`): a Job spec's
//! validation (`validateJobSpec` — counts, completion mode and its limits, per-index backoff,
//! `managedBy`, `podFailurePolicy`, `successPolicy`, `podReplacementPolicy`, the pod template
//! and its restart policy) with upstream's messages, the index interval format of
//! `succeededIndexes`, and the defaults of a pod failure policy's condition patterns.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::registry::apps::validation::{go_pointer, nonnegative, str_at};
use crate::registry::core::pod::validate_pod_spec;
use crate::registry::generic::{dns1123_subdomain_problems, qualified_name_problems};
use crate::status::{FieldError, FieldErrorKind};

/// Upstream's caps on Indexed Jobs.
const MAX_INDEXED_PARALLELISM: i64 = 100_000;
const MAX_FAILED_INDEXES: i64 = 100_000;
const COMPLETIONS_SOFT_LIMIT: i64 = 100_000;
const HIGH_COMPLETIONS_LIMIT: i64 = 10_000;
/// Upstream's caps on the policies.
const MAX_POD_FAILURE_POLICY_RULES: usize = 20;
const MAX_ON_EXIT_CODES_VALUES: usize = 255;
const MAX_ON_POD_CONDITIONS_PATTERNS: usize = 20;
const MAX_SUCCESS_POLICY_RULES: usize = 20;

const ACTIONS: &[&str] = &["Count", "FailIndex", "FailJob", "Ignore"];
const OPERATORS: &[&str] = &["In", "NotIn"];
const CONDITION_STATUSES: &[&str] = &["False", "True", "Unknown"];

/// `SetDefaults_PodFailurePolicyOnPodConditionsPattern` on the spec at `pointer`: a pattern
/// without a status matches `True`.
pub fn default_pod_failure_policy(object: &mut Value, pointer: &str) {
    let Some(Value::Array(rules)) =
        object.pointer_mut(&format!("{pointer}/podFailurePolicy/rules"))
    else {
        return;
    };
    for rule in rules {
        if let Some(Value::Array(patterns)) = rule.get_mut("onPodConditions") {
            for pattern in patterns {
                if str_at(pattern, "/status").is_empty() {
                    if let Some(p) = pattern.as_object_mut() {
                        p.insert("status".into(), json!("True"));
                    }
                }
            }
        }
    }
}

/// An `Invalid value` without the value (upstream's `field.OmitValueType{}`).
fn invalid_omitted(field: String, detail: &str) -> FieldError {
    FieldError {
        field,
        kind: FieldErrorKind::Invalid,
        value: None,
        detail: detail.into(),
    }
}

/// Go's `%q` of a list of strings: `["a" "b"]`.
fn go_quoted_list(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

/// Go's `%#v` of a `[]int32`.
fn go_int32s(values: &[i64]) -> String {
    let list: Vec<String> = values.iter().map(i64::to_string).collect();
    format!("[]int32{{{}}}", list.join(", "))
}

/// Go's `%#v` of a `batch.SuccessPolicy`.
fn go_success_policy(policy: &Value) -> String {
    let rules = match policy.get("rules").and_then(Value::as_array) {
        None => "[]batch.SuccessPolicyRule(nil)".to_string(),
        Some(rules) => {
            let items: Vec<String> = rules
                .iter()
                .map(|r| {
                    format!(
                        "batch.SuccessPolicyRule{{SucceededIndexes:{}, SucceededCount:{}}}",
                        go_pointer("string", r.get("succeededIndexes").is_some()),
                        go_pointer("int32", r.get("succeededCount").is_some())
                    )
                })
                .collect();
            format!("[]batch.SuccessPolicyRule{{{}}}", items.join(", "))
        }
    };
    format!("batch.SuccessPolicy{{Rules:{rules}}}")
}

/// One `first[-last]` part of an index list (`parseIndexInterval`).
fn parse_index_interval(part: &str, completions: i64) -> Result<(i64, i64), String> {
    let limits: Vec<&str> = part.split('-').collect();
    if limits.len() > 2 {
        return Err(format!("the fragment {part:?} violates the requirement that an index interval can have at most two parts separated by '-'"));
    }
    let number = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| format!("cannot convert string to integer for index: {s:?}"))
    };
    let first = number(limits[0])?;
    if first >= completions {
        return Err(format!("too large index: {:?}", limits[0]));
    }
    let Some(last) = limits.get(1) else {
        return Ok((first, first));
    };
    let last_value = number(last)?;
    if last_value >= completions {
        return Err(format!("too large index: {last:?}"));
    }
    if first >= last_value {
        return Err(format!(
            "non-increasing order, previous: {first}, current: {last_value}"
        ));
    }
    Ok((first, last_value))
}

/// How many indexes a list such as `1,3-5` names, or why it is not one
/// (`validateIndexesFormat`): intervals in increasing order, below `completions`.
pub fn validate_indexes_format(text: &str, completions: i64) -> Result<i64, String> {
    if text.is_empty() {
        return Ok(0);
    }
    let mut previous: Option<i64> = None;
    let mut total = 0;
    for part in text.split(',') {
        let (first, last) = parse_index_interval(part, completions)?;
        if let Some(p) = previous.filter(|p| *p >= first) {
            return Err(format!(
                "non-increasing order, previous: {p}, current: {first}"
            ));
        }
        total += last - first + 1;
        previous = Some(last);
    }
    Ok(total)
}

/// `validateJobSpec` (`path` is `spec`, or `spec.jobTemplate.spec` for a CronJob).
pub fn validate_job_spec(spec: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let int = |key: &str| spec.get(key).and_then(Value::as_i64);
    for key in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ] {
        nonnegative(spec, &format!("/{key}"), &format!("{path}.{key}"), errors);
    }
    let (parallelism, completions) = (int("parallelism"), int("completions"));
    let (per_index, max_failed) = (int("backoffLimitPerIndex"), int("maxFailedIndexes"));
    let invalid = |key: &str, value: i64, detail: String| {
        FieldError::invalid_raw(format!("{path}.{key}"), value.to_string(), detail)
    };
    if max_failed.is_some() && per_index.is_none() {
        errors.push(FieldError::required(
            format!("{path}.backoffLimitPerIndex"),
            "when maxFailedIndexes is specified",
        ));
    }
    if let Some(managed_by) = spec.get("managedBy").and_then(Value::as_str) {
        validate_managed_by(managed_by, &format!("{path}.managedBy"), errors);
    }
    let mode = spec.get("completionMode").and_then(Value::as_str);
    if let Some(mode) = mode {
        if !matches!(mode, "NonIndexed" | "Indexed") {
            errors.push(FieldError::not_supported(
                format!("{path}.completionMode"),
                mode,
                &["NonIndexed", "Indexed"],
            ));
        }
    }
    if mode == Some("Indexed") {
        if completions.is_none() {
            errors.push(FieldError::required(
                format!("{path}.completions"),
                "when completion mode is Indexed",
            ));
        }
        if let Some(p) = parallelism.filter(|p| *p > MAX_INDEXED_PARALLELISM) {
            errors.push(invalid("parallelism", p, format!("must be less than or equal to {MAX_INDEXED_PARALLELISM} when completion mode is Indexed")));
        }
        if let (Some(c), Some(m)) = (completions, max_failed) {
            if m > c {
                errors.push(invalid(
                    "maxFailedIndexes",
                    m,
                    "must be less than or equal to completions".into(),
                ));
            }
        }
        if let Some(m) = max_failed.filter(|m| *m > MAX_FAILED_INDEXES) {
            errors.push(invalid(
                "maxFailedIndexes",
                m,
                format!("must be less than or equal to {MAX_FAILED_INDEXES}"),
            ));
        }
        if completions.is_some_and(|c| c > COMPLETIONS_SOFT_LIMIT) && per_index.is_some() {
            let why = format!("must be less than or equal to {HIGH_COMPLETIONS_LIMIT} when completions are above {COMPLETIONS_SOFT_LIMIT} and used with backoff limit per index");
            if max_failed.is_none() {
                errors.push(FieldError::required(
                    format!("{path}.maxFailedIndexes"),
                    format!("must be specified when completions is above {COMPLETIONS_SOFT_LIMIT}"),
                ));
            }
            if let Some(p) = parallelism.filter(|p| *p > HIGH_COMPLETIONS_LIMIT) {
                errors.push(invalid("parallelism", p, why.clone()));
            }
            if let Some(m) = max_failed.filter(|m| *m > HIGH_COMPLETIONS_LIMIT) {
                errors.push(invalid("maxFailedIndexes", m, why));
            }
        }
    } else if mode.is_none() || mode == Some("NonIndexed") {
        for (key, value) in [
            ("backoffLimitPerIndex", per_index),
            ("maxFailedIndexes", max_failed),
        ] {
            if let Some(value) = value {
                errors.push(invalid(
                    key,
                    value,
                    "requires indexed completion mode".into(),
                ));
            }
        }
    }
    let failure_policy = spec.get("podFailurePolicy").filter(|p| !p.is_null());
    if let Some(policy) = failure_policy {
        validate_pod_failure_policy(spec, policy, &format!("{path}.podFailurePolicy"), errors);
    }
    if let Some(policy) = spec.get("successPolicy").filter(|p| !p.is_null()) {
        let field = format!("{path}.successPolicy");
        if mode != Some("Indexed") {
            errors.push(FieldError::invalid_raw(
                field,
                go_success_policy(policy),
                "requires indexed completion mode",
            ));
        } else {
            validate_success_policy(policy, completions.unwrap_or(0), &field, errors);
        }
    }
    if let Some(replacement) = spec.get("podReplacementPolicy").and_then(Value::as_str) {
        let supported: &[&str] = if failure_policy.is_some() {
            &["Failed"]
        } else {
            &["Failed", "TerminatingOrFailed"]
        };
        if !supported.contains(&replacement) {
            errors.push(FieldError::not_supported(
                format!("{path}.podReplacementPolicy"),
                replacement,
                supported,
            ));
        }
    }
    match spec.pointer("/template/spec") {
        Some(pod) => validate_pod_spec(pod, &format!("{path}.template.spec"), errors),
        None => errors.push(FieldError::required(
            format!("{path}.template.spec.containers"),
            "",
        )),
    }
    let field = format!("{path}.template.spec.restartPolicy");
    match str_at(spec, "/template/spec/restartPolicy") {
        "" | "Always" => errors.push(FieldError::required(
            field,
            "valid values: \"OnFailure\", \"Never\"",
        )),
        "OnFailure" if failure_policy.is_some() => errors.push(FieldError::invalid(
            field,
            "OnFailure",
            "only \"Never\" is supported when podFailurePolicy is specified",
        )),
        "OnFailure" | "Never" => {}
        other => errors.push(FieldError::not_supported(
            field,
            other,
            &["OnFailure", "Never"],
        )),
    }
}

/// `managedBy`: a domain-prefixed path (`IsDomainPrefixedPath`).
fn validate_managed_by(value: &str, field: &str, errors: &mut Vec<FieldError>) {
    if value.is_empty() {
        errors.push(FieldError::required(field, ""));
        return;
    }
    let Some((host, path)) = value
        .split_once('/')
        .filter(|(h, p)| !h.is_empty() && !p.is_empty())
    else {
        errors.push(FieldError::invalid(
            field,
            value,
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        ));
        return;
    };
    for problem in dns1123_subdomain_problems(host) {
        errors.push(FieldError::invalid(field, host, problem));
    }
    let path_ok = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-._~%!$&'()*+,;=:".contains(&b));
    if !path_ok {
        errors.push(FieldError::invalid(
            field,
            path,
            "Invalid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')",
        ));
    }
}

/// `validatePodFailurePolicy` and its rules.
fn validate_pod_failure_policy(
    spec: &Value,
    policy: &Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let rules_path = format!("{path}.rules");
    let rules = policy
        .get("rules")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if rules.len() > MAX_POD_FAILURE_POLICY_RULES {
        errors.push(FieldError::too_many(
            rules_path.clone(),
            rules.len(),
            MAX_POD_FAILURE_POLICY_RULES,
        ));
    }
    let containers: BTreeSet<&str> = ["containers", "initContainers"]
        .iter()
        .filter_map(|list| spec.pointer(&format!("/template/spec/{list}")))
        .filter_map(Value::as_array)
        .flatten()
        .map(|c| str_at(c, "/name"))
        .collect();
    let per_index = spec
        .get("backoffLimitPerIndex")
        .is_some_and(|v| !v.is_null());
    for (i, rule) in rules.iter().enumerate() {
        let rule_path = format!("{rules_path}[{i}]");
        let action_path = format!("{rule_path}.action");
        match str_at(rule, "/action") {
            "" => errors.push(FieldError::required(
                action_path,
                format!("valid values: {}", go_quoted_list(ACTIONS)),
            )),
            "FailIndex" if !per_index => errors.push(FieldError::invalid(
                action_path,
                "FailIndex",
                "requires the backoffLimitPerIndex to be set",
            )),
            action if !ACTIONS.contains(&action) => {
                errors.push(FieldError::not_supported(action_path, action, ACTIONS))
            }
            _ => {}
        }
        let on_exit = rule.get("onExitCodes").filter(|v| !v.is_null());
        if let Some(on_exit) = on_exit {
            validate_on_exit_codes(
                on_exit,
                &format!("{rule_path}.onExitCodes"),
                &containers,
                errors,
            );
        }
        let patterns = rule
            .get("onPodConditions")
            .and_then(Value::as_array)
            .filter(|p| !p.is_empty());
        if let Some(patterns) = patterns {
            validate_on_pod_conditions(patterns, &format!("{rule_path}.onPodConditions"), errors);
        }
        match (on_exit.is_some(), patterns.is_some()) {
            (true, true) => errors.push(invalid_omitted(
                rule_path,
                "specifying both OnExitCodes and OnPodConditions is not supported",
            )),
            (false, false) => errors.push(invalid_omitted(
                rule_path,
                "specifying one of OnExitCodes and OnPodConditions is required",
            )),
            _ => {}
        }
    }
}

fn validate_on_exit_codes(
    on_exit: &Value,
    path: &str,
    containers: &BTreeSet<&str>,
    errors: &mut Vec<FieldError>,
) {
    let operator_path = format!("{path}.operator");
    let operator = str_at(on_exit, "/operator");
    match operator {
        "" => errors.push(FieldError::required(
            operator_path,
            format!("valid values: {}", go_quoted_list(OPERATORS)),
        )),
        op if !OPERATORS.contains(&op) => {
            errors.push(FieldError::not_supported(operator_path, op, OPERATORS))
        }
        _ => {}
    }
    if let Some(name) = on_exit.get("containerName").and_then(Value::as_str) {
        if !containers.contains(name) {
            errors.push(FieldError::invalid(
                format!("{path}.containerName"),
                name,
                "must be one of the container or initContainer names in the pod template",
            ));
        }
    }
    let values_path = format!("{path}.values");
    let values: Vec<i64> = on_exit
        .get("values")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_i64)
        .collect();
    if values.is_empty() {
        errors.push(FieldError::invalid_raw(
            values_path.clone(),
            go_int32s(&values),
            "at least one value is required",
        ));
    } else if values.len() > MAX_ON_EXIT_CODES_VALUES {
        errors.push(FieldError::too_many(
            values_path.clone(),
            values.len(),
            MAX_ON_EXIT_CODES_VALUES,
        ));
    }
    let mut seen = BTreeSet::new();
    for (j, value) in values.iter().enumerate() {
        let value_path = format!("{values_path}[{j}]");
        if operator == "In" && *value == 0 {
            errors.push(FieldError::invalid_raw(
                value_path.clone(),
                "0",
                "must not be 0 for the In operator",
            ));
        }
        if !seen.insert(*value) {
            errors.push(FieldError::duplicate_raw(value_path, value.to_string()));
        }
    }
    if values.windows(2).any(|w| w[0] > w[1]) {
        errors.push(FieldError::invalid_raw(
            values_path,
            go_int32s(&values),
            "must be ordered",
        ));
    }
}

fn validate_on_pod_conditions(patterns: &[Value], path: &str, errors: &mut Vec<FieldError>) {
    if patterns.len() > MAX_ON_POD_CONDITIONS_PATTERNS {
        errors.push(FieldError::too_many(
            path,
            patterns.len(),
            MAX_ON_POD_CONDITIONS_PATTERNS,
        ));
    }
    for (j, pattern) in patterns.iter().enumerate() {
        let pattern_path = format!("{path}[{j}]");
        let type_ = str_at(pattern, "/type");
        for problem in qualified_name_problems(type_) {
            errors.push(FieldError::invalid(
                format!("{pattern_path}.type"),
                type_,
                problem,
            ));
        }
        let status_path = format!("{pattern_path}.status");
        match str_at(pattern, "/status") {
            "" => errors.push(FieldError::required(
                status_path,
                format!("valid values: {}", go_quoted_list(CONDITION_STATUSES)),
            )),
            status if !CONDITION_STATUSES.contains(&status) => errors.push(
                FieldError::not_supported(status_path, status, CONDITION_STATUSES),
            ),
            _ => {}
        }
    }
}

/// `validateSuccessPolicy` of an Indexed Job with `completions`.
fn validate_success_policy(
    policy: &Value,
    completions: i64,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let rules_path = format!("{path}.rules");
    let rules = policy
        .get("rules")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if rules.is_empty() {
        errors.push(FieldError::required(
            rules_path.clone(),
            "at least one rules must be specified when the successPolicy is specified",
        ));
    }
    if rules.len() > MAX_SUCCESS_POLICY_RULES {
        errors.push(FieldError::too_many(
            rules_path.clone(),
            rules.len(),
            MAX_SUCCESS_POLICY_RULES,
        ));
    }
    for (i, rule) in rules.iter().enumerate() {
        let rule_path = format!("{rules_path}[{i}]");
        let indexes = rule.get("succeededIndexes").and_then(Value::as_str);
        let count = rule.get("succeededCount").and_then(Value::as_i64);
        if indexes.is_none() && count.is_none() {
            errors.push(FieldError::required(
                rule_path.clone(),
                "at least one of succeededCount or succeededIndexes must be specified",
            ));
        }
        let mut total = 0;
        if let Some(indexes) = indexes {
            match validate_indexes_format(indexes, completions) {
                Ok(t) => total = t,
                Err(e) => errors.push(FieldError::invalid(
                    format!("{rule_path}.succeededIndexes"),
                    indexes,
                    format!("error parsing succeededIndexes: {e}"),
                )),
            }
        }
        if let Some(count) = count {
            let field = format!("{rule_path}.succeededCount");
            nonnegative(rule, "/succeededCount", &field, errors);
            if count > completions {
                errors.push(FieldError::invalid_raw(
                    field.clone(),
                    count.to_string(),
                    format!("must be less than or equal to {completions} (the number of specified completions)"),
                ));
            }
            if indexes.is_some() && count > total {
                errors.push(FieldError::invalid_raw(
                    field,
                    count.to_string(),
                    format!("must be less than or equal to {total} (the number of indexes in the specified succeededIndexes field)"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Upstream's `TestValidateIndexesFormat` and the index format errors.
    #[test]
    fn index_lists() {
        let cases: &[(&str, Result<i64, &str>)] = &[
            ("", Ok(0)),
            ("0", Ok(1)),
            ("0,2-4,6", Ok(5)),
            ("1-3,5-9", Ok(8)),
            ("1-2-3", Err("the fragment \"1-2-3\" violates the requirement that an index interval can have at most two parts separated by '-'")),
            ("a", Err("cannot convert string to integer for index: \"a\"")),
            ("1-b", Err("cannot convert string to integer for index: \"b\"")),
            ("10", Err("too large index: \"10\"")),
            ("1-10", Err("too large index: \"10\"")),
            ("3-1", Err("non-increasing order, previous: 3, current: 1")),
            ("3,1", Err("non-increasing order, previous: 3, current: 1")),
            ("1-3,3", Err("non-increasing order, previous: 3, current: 3")),
            ("-1", Err("cannot convert string to integer for index: \"\"")),
        ];
        for (text, want) in cases {
            assert_eq!(
                validate_indexes_format(text, 10),
                want.map_err(String::from),
                "{text}"
            );
        }
    }
}
