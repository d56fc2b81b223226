//! ValidatingAdmissionPolicies and their bindings (`pkg/apis/admissionregistration`):
//! upstream's defaults and validation — every CEL expression must compile, so what the
//! ValidatingAdmissionPolicy plugin reads is what it can evaluate.

use std::collections::HashSet;

use serde_json::{json, Value};

use super::webhookconfiguration::{go_strings, one_of, strings, validate_rule};
use crate::registry::Strategy;
use crate::status::FieldError;

const REASONS: &[&str] = &[
    "Forbidden",
    "Invalid",
    "RequestEntityTooLarge",
    "Unauthorized",
];
const ACTIONS: &[&str] = &["Audit", "Deny", "Warn"];

/// `matchPolicy`, selectors and rule scopes of a `matchConstraints` or `matchResources`.
pub(super) fn default_match_resources(resources: Option<&mut Value>) {
    let Some(resources) = resources.and_then(Value::as_object_mut) else {
        return;
    };
    for (field, value) in [
        ("matchPolicy", json!("Equivalent")),
        ("namespaceSelector", json!({})),
        ("objectSelector", json!({})),
    ] {
        if resources.get(field).is_none_or(Value::is_null) {
            resources.insert(field.to_string(), value);
        }
    }
    for list in ["resourceRules", "excludeResourceRules"] {
        let rules = resources.get_mut(list).and_then(Value::as_array_mut);
        for rule in rules.into_iter().flatten().filter_map(Value::as_object_mut) {
            if rule.get("scope").is_none_or(Value::is_null) {
                rule.insert("scope".into(), json!("*"));
            }
        }
    }
}

/// That `expression` (at `field`) is given and compiles.
pub(super) fn validate_expression(field: &str, expression: &Value, errors: &mut Vec<FieldError>) {
    match expression.as_str().filter(|e| !e.trim().is_empty()) {
        None => errors.push(FieldError::required(field, "expression is not specified")),
        Some(source) => {
            if let Err(error) = ferry_cel::Program::compile(source) {
                errors.push(FieldError::invalid(field, source, error.to_string()));
            }
        }
    }
}

/// `matchConditions` (of a webhook or a policy): named, unique, compiling.
pub(super) fn validate_match_conditions(
    path: &str,
    conditions: &Value,
    errors: &mut Vec<FieldError>,
) {
    let mut names = HashSet::new();
    for (index, condition) in conditions.as_array().into_iter().flatten().enumerate() {
        let path = format!("{path}[{index}]");
        match condition["name"].as_str().filter(|n| !n.is_empty()) {
            None => errors.push(FieldError::required(format!("{path}.name"), "")),
            Some(name) if !names.insert(name) => {
                errors.push(FieldError::duplicate(format!("{path}.name"), name))
            }
            Some(_) => {}
        }
        validate_expression(
            &format!("{path}.expression"),
            &condition["expression"],
            errors,
        );
    }
}

pub(super) fn validate_match_resources(
    path: &str,
    resources: &Value,
    errors: &mut Vec<FieldError>,
) {
    for list in ["resourceRules", "excludeResourceRules"] {
        for (index, rule) in resources[list].as_array().into_iter().flatten().enumerate() {
            validate_rule(&format!("{path}.{list}[{index}]"), rule, errors);
        }
    }
    one_of(
        format!("{path}.matchPolicy"),
        &resources["matchPolicy"],
        &["Equivalent", "Exact"],
        errors,
    );
}

/// A policy's `paramKind`: both fields given.
pub(super) fn validate_param_kind(spec: &Value, errors: &mut Vec<FieldError>) {
    if spec["paramKind"].is_object() {
        for field in ["apiVersion", "kind"] {
            if spec["paramKind"][field].as_str().is_none_or(str::is_empty) {
                errors.push(FieldError::required(format!("spec.paramKind.{field}"), ""));
            }
        }
    }
}

/// A binding's `paramRef`: a name or a selector, and what to do when nothing is found.
pub(super) fn validate_param_ref(spec: &Value, errors: &mut Vec<FieldError>) {
    if let Some(reference) = spec.get("paramRef").filter(|r| r.is_object()) {
        if reference["name"].as_str().is_some_and(|n| !n.is_empty())
            && reference["selector"].is_object()
        {
            errors.push(FieldError::forbidden(
                "spec.paramRef.name",
                "name and selector are mutually exclusive",
            ));
        }
        match reference["parameterNotFoundAction"].as_str() {
            None => errors.push(FieldError::required(
                "spec.paramRef.parameterNotFoundAction",
                "",
            )),
            Some(action) => one_of(
                "spec.paramRef.parameterNotFoundAction".into(),
                &json!(action),
                &["Allow", "Deny"],
                errors,
            ),
        }
    }
}

/// A policy's defaults: `failurePolicy: Fail` and its `matchConstraints`' (both kinds of
/// admission policy).
pub(super) fn default_policy_spec(policy: &mut Value) {
    let Some(spec) = policy.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if spec.get("failurePolicy").is_none_or(Value::is_null) {
        spec.insert("failurePolicy".into(), json!("Fail"));
    }
    default_match_resources(spec.get_mut("matchConstraints"));
}

/// A policy's `matchConditions` and `variables`: named, compiling (both kinds of admission
/// policy).
pub(super) fn validate_conditions_and_variables(spec: &Value, errors: &mut Vec<FieldError>) {
    validate_match_conditions("spec.matchConditions", &spec["matchConditions"], errors);
    for (index, variable) in spec["variables"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let path = format!("spec.variables[{index}]");
        if variable["name"].as_str().is_none_or(str::is_empty) {
            errors.push(FieldError::required(
                format!("{path}.name"),
                "name is not specified",
            ));
        }
        validate_expression(
            &format!("{path}.expression"),
            &variable["expression"],
            errors,
        );
    }
}

/// The ValidatingAdmissionPolicy strategy.
pub struct ValidatingAdmissionPolicyStrategy;

impl Strategy for ValidatingAdmissionPolicyStrategy {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_for_create(&self, object: &mut Value, _user: Option<&crate::auth::UserInfo>) {
        self.prepare_for_update(object, &Value::Null);
    }

    fn prepare_for_update(&self, new: &mut Value, _old: &Value) {
        default_policy_spec(new);
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let spec = &object["spec"];
        one_of(
            "spec.failurePolicy".into(),
            &spec["failurePolicy"],
            &["Fail", "Ignore"],
            errors,
        );
        validate_param_kind(spec, errors);
        match spec.get("matchConstraints").filter(|m| m.is_object()) {
            None => errors.push(FieldError::required("spec.matchConstraints", "")),
            Some(constraints) => {
                if constraints["resourceRules"]
                    .as_array()
                    .is_none_or(Vec::is_empty)
                {
                    errors.push(FieldError::required(
                        "spec.matchConstraints.resourceRules",
                        "",
                    ));
                }
                validate_match_resources("spec.matchConstraints", constraints, errors);
            }
        }
        let validations = spec["validations"]
            .as_array()
            .map_or(&[][..], Vec::as_slice);
        let annotations = spec["auditAnnotations"].as_array().map_or(0, Vec::len);
        if validations.is_empty() && annotations == 0 {
            errors.push(FieldError::required(
                "spec.validations",
                "validations or auditAnnotations must contain at least one item",
            ));
        }
        for (index, validation) in validations.iter().enumerate() {
            let path = format!("spec.validations[{index}]");
            validate_expression(
                &format!("{path}.expression"),
                &validation["expression"],
                errors,
            );
            if let Some(message) = validation["message"].as_str() {
                if message.contains('\n') {
                    errors.push(FieldError::invalid(
                        format!("{path}.message"),
                        message,
                        "message must not contain line breaks",
                    ));
                }
            }
            if !validation["messageExpression"].is_null() {
                validate_expression(
                    &format!("{path}.messageExpression"),
                    &validation["messageExpression"],
                    errors,
                );
            }
            one_of(
                format!("{path}.reason"),
                &validation["reason"],
                REASONS,
                errors,
            );
        }
        validate_conditions_and_variables(spec, errors);
    }
}

/// The ValidatingAdmissionPolicyBinding strategy.
pub struct ValidatingAdmissionPolicyBindingStrategy;

impl Strategy for ValidatingAdmissionPolicyBindingStrategy {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_for_create(&self, object: &mut Value, _user: Option<&crate::auth::UserInfo>) {
        self.prepare_for_update(object, &Value::Null);
    }

    fn prepare_for_update(&self, new: &mut Value, _old: &Value) {
        default_match_resources(new.pointer_mut("/spec/matchResources"));
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let spec = &object["spec"];
        if spec["policyName"].as_str().is_none_or(str::is_empty) {
            errors.push(FieldError::required("spec.policyName", ""));
        }
        let actions = strings(&spec["validationActions"]);
        if actions.is_empty() {
            errors.push(FieldError::required(
                "spec.validationActions",
                "at least one validation action is required",
            ));
        }
        let mut seen = HashSet::new();
        for (index, action) in actions.iter().enumerate() {
            let field = format!("spec.validationActions[{index}]");
            if !seen.insert(*action) {
                errors.push(FieldError::duplicate(field, *action));
            } else if !ACTIONS.contains(action) {
                errors.push(FieldError::not_supported(field, action, ACTIONS));
            }
        }
        if seen.contains("Deny") && seen.contains("Warn") {
            errors.push(FieldError::invalid_raw(
                "spec.validationActions",
                go_strings(&actions),
                "must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)",
            ));
        }
        validate_param_ref(spec, errors);
        if let Some(resources) = spec.get("matchResources").filter(|r| r.is_object()) {
            validate_match_resources("spec.matchResources", resources, errors);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::registry::generic::{tests::resource, validate};
    use serde_json::json;

    fn policy_error(spec: serde_json::Value) -> String {
        let r = resource(
            "admissionregistration.k8s.io",
            "v1",
            "validatingadmissionpolicies",
        );
        validate(r, &json!({"metadata": {"name": "p"}, "spec": spec}), None)
            .expect_err("invalid")
            .message
    }

    #[test]
    fn policies_must_match_something_and_compile() {
        let r = resource(
            "admissionregistration.k8s.io",
            "v1",
            "validatingadmissionpolicies",
        );
        let rules = json!({"resourceRules": [{"operations": ["CREATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"]}]});
        let valid = json!({"matchConstraints": rules, "validations": [{"expression": "object.spec.replicas <= 5"}]});
        validate(r, &json!({"metadata": {"name": "p"}, "spec": valid}), None).expect("valid");

        let broken =
            json!({"matchConstraints": rules, "validations": [{"expression": "object.spec.("}]});
        let err = policy_error(broken);
        assert!(err.contains("spec.validations[0].expression: Invalid value: \"object.spec.(\": compilation failed: ERROR: <input>:1:13: Syntax error"), "{err}");
        let empty = json!({"matchConstraints": rules});
        assert!(policy_error(empty).contains("spec.validations: Required value: validations or auditAnnotations must contain at least one item"));
        let unmatched = json!({"validations": [{"expression": "true"}]});
        assert!(policy_error(unmatched).contains("spec.matchConstraints: Required value"));
        let reason = json!({"matchConstraints": rules, "validations": [{"expression": "true", "reason": "Nope"}]});
        assert!(policy_error(reason).contains("spec.validations[0].reason: Unsupported value: \"Nope\": supported values: \"Forbidden\", \"Invalid\", \"RequestEntityTooLarge\", \"Unauthorized\""));
    }

    #[test]
    fn bindings_need_a_policy_and_actions() {
        let r = resource(
            "admissionregistration.k8s.io",
            "v1",
            "validatingadmissionpolicybindings",
        );
        let binding = |spec: serde_json::Value| json!({"metadata": {"name": "b"}, "spec": spec});
        validate(
            r,
            &binding(json!({"policyName": "p", "validationActions": ["Deny"]})),
            None,
        )
        .expect("valid");
        let err = validate(r, &binding(json!({})), None)
            .expect_err("empty")
            .message;
        assert!(err.contains("spec.policyName: Required value"), "{err}");
        assert!(err.contains("spec.validationActions: Required value: at least one validation action is required"), "{err}");
        let both = validate(
            r,
            &binding(json!({"policyName": "p", "validationActions": ["Deny", "Warn"]})),
            None,
        )
        .expect_err("both")
        .message;
        assert!(
            both.contains("must not contain both Deny and Warn"),
            "{both}"
        );
        let params = validate(
            r,
            &binding(json!({"policyName": "p", "validationActions": ["Deny"],
            "paramRef": {"name": "x", "selector": {}}})),
            None,
        )
        .expect_err("params")
        .message;
        assert!(
            params.contains(
                "spec.paramRef.name: Forbidden: name and selector are mutually exclusive"
            ),
            "{params}"
        );
        assert!(
            params.contains("spec.paramRef.parameterNotFoundAction: Required value"),
            "{params}"
        );
    }
}
