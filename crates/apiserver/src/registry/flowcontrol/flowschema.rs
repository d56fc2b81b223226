//! FlowSchemas (`pkg/apis/flowcontrol/validation` and `v1` defaults): `matchingPrecedence`
//! defaults to 1000 and stays within [1, 10000]; each rule names subjects and at least one
//! resource or non-resource rule; the distinguisher is `ByUser` or `ByNamespace`.

use serde_json::Value;

use crate::auth::UserInfo;
use crate::registry::Strategy;
use crate::status::FieldError;

/// Upstream's default `matchingPrecedence`.
const DEFAULT_MATCHING_PRECEDENCE: i64 = 1000;
/// The highest `matchingPrecedence`.
const MAX_MATCHING_PRECEDENCE: i64 = 10000;

/// The FlowSchema strategy.
pub struct FlowSchemaStrategy;

impl Strategy for FlowSchemaStrategy {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_for_create(&self, object: &mut Value, _user: Option<&UserInfo>) {
        default(object);
    }

    fn prepare_for_update(&self, new: &mut Value, _old: &Value) {
        default(new);
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let spec = &object["spec"];
        if spec["priorityLevelConfiguration"]["name"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
        {
            errors.push(FieldError::required(
                "spec.priorityLevelConfiguration.name",
                "must reference a priority level",
            ));
        }
        let precedence = spec["matchingPrecedence"]
            .as_i64()
            .unwrap_or(DEFAULT_MATCHING_PRECEDENCE);
        if precedence <= 0 {
            errors.push(FieldError::invalid_raw(
                "spec.matchingPrecedence",
                precedence.to_string(),
                "must be a positive value",
            ));
        } else if precedence > MAX_MATCHING_PRECEDENCE {
            errors.push(FieldError::invalid_raw(
                "spec.matchingPrecedence",
                precedence.to_string(),
                format!("must not be greater than {MAX_MATCHING_PRECEDENCE}"),
            ));
        }
        if let Some(method) = spec["distinguisherMethod"].as_object() {
            let kind = method.get("type").and_then(Value::as_str).unwrap_or("");
            if kind != "ByUser" && kind != "ByNamespace" {
                errors.push(FieldError::not_supported(
                    "spec.distinguisherMethod.type",
                    kind,
                    &["ByNamespace", "ByUser"],
                ));
            }
        }
        for (i, rule) in spec["rules"].as_array().into_iter().flatten().enumerate() {
            validate_rule(&format!("spec.rules[{i}]"), rule, errors);
        }
    }
}

/// `v1`'s defaults.
fn default(object: &mut Value) {
    if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        let unset = spec
            .get("matchingPrecedence")
            .and_then(Value::as_i64)
            .is_none_or(|p| p == 0);
        if unset {
            spec.insert(
                "matchingPrecedence".into(),
                DEFAULT_MATCHING_PRECEDENCE.into(),
            );
        }
    }
}

fn non_empty(value: &Value) -> bool {
    value.as_array().is_some_and(|a| !a.is_empty())
}

fn validate_rule(path: &str, rule: &Value, errors: &mut Vec<FieldError>) {
    if !non_empty(&rule["subjects"]) {
        errors.push(FieldError::required(
            format!("{path}.subjects"),
            "subjects must contain at least one value",
        ));
    }
    for (i, subject) in rule["subjects"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("{path}.subjects[{i}]");
        let kind = subject["kind"].as_str().unwrap_or("");
        let member = match kind {
            "User" => "user",
            "Group" => "group",
            "ServiceAccount" => "serviceAccount",
            _ => {
                errors.push(FieldError::not_supported(
                    format!("{at}.kind"),
                    kind,
                    &["Group", "ServiceAccount", "User"],
                ));
                continue;
            }
        };
        if subject[member]["name"].as_str().unwrap_or("").is_empty() {
            errors.push(FieldError::required(
                format!("{at}.{member}.name"),
                format!("name is required for {} subject", member.to_lowercase()),
            ));
        }
        if kind == "ServiceAccount"
            && subject[member]["namespace"]
                .as_str()
                .unwrap_or("")
                .is_empty()
        {
            errors.push(FieldError::required(
                format!("{at}.serviceAccount.namespace"),
                "must specify namespace for service account",
            ));
        }
    }
    if !non_empty(&rule["resourceRules"]) && !non_empty(&rule["nonResourceRules"]) {
        errors.push(FieldError::required(
            path.to_string(),
            "at least one of resourceRules and nonResourceRules has to be non-empty",
        ));
    }
    for (i, r) in rule["resourceRules"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("{path}.resourceRules[{i}]");
        for (field, what) in [
            ("verbs", "verbs must contain at least one value"),
            (
                "apiGroups",
                "resource rules must supply at least one api group",
            ),
            (
                "resources",
                "resource rules must supply at least one resource",
            ),
        ] {
            if !non_empty(&r[field]) {
                errors.push(FieldError::required(format!("{at}.{field}"), what));
            }
        }
        if !non_empty(&r["namespaces"]) && r["clusterScope"] != true {
            errors.push(FieldError::required(
                format!("{at}.namespaces"),
                "resource rules that are not cluster scoped must supply at least one namespace",
            ));
        }
    }
    for (i, r) in rule["nonResourceRules"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("{path}.nonResourceRules[{i}]");
        if !non_empty(&r["verbs"]) {
            errors.push(FieldError::required(
                format!("{at}.verbs"),
                "verbs must contain at least one value",
            ));
        }
        if !non_empty(&r["nonResourceURLs"]) {
            errors.push(FieldError::required(
                format!("{at}.nonResourceURLs"),
                "nonResourceURLs must contain at least one value",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::generic::{tests::resource, validate};
    use serde_json::json;

    #[test]
    fn defaults_and_upstream_rules() {
        let r = resource("flowcontrol.apiserver.k8s.io", "v1", "flowschemas");
        let mut ok = json!({"metadata": {"name": "mine"}, "spec": {
            "priorityLevelConfiguration": {"name": "workload-low"},
            "distinguisherMethod": {"type": "ByUser"},
            "rules": [{"subjects": [{"kind": "User", "user": {"name": "alice"}}],
                       "resourceRules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["pods"], "namespaces": ["*"]}]}]}});
        FlowSchemaStrategy.prepare_for_create(&mut ok, None);
        assert_eq!(ok["spec"]["matchingPrecedence"], 1000);
        validate(r, &ok, None).expect("valid");
        let bad = json!({"metadata": {"name": "bad"}, "spec": {
            "priorityLevelConfiguration": {"name": ""}, "matchingPrecedence": 10001,
            "distinguisherMethod": {"type": "ByColour"},
            "rules": [{"subjects": [], "resourceRules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]}]}});
        let err = validate(r, &bad, None).expect_err("invalid");
        for expected in [
            "spec.priorityLevelConfiguration.name: Required value: must reference a priority level",
            "spec.matchingPrecedence: Invalid value: 10001: must not be greater than 10000",
            "spec.distinguisherMethod.type: Unsupported value: \"ByColour\": supported values: \"ByNamespace\", \"ByUser\"",
            "spec.rules[0].subjects: Required value: subjects must contain at least one value",
            "spec.rules[0].resourceRules[0].namespaces: Required value: resource rules that are not cluster scoped must supply at least one namespace",
        ] {
            assert!(err.message.contains(expected), "{expected} in {}", err.message);
        }
    }
}
