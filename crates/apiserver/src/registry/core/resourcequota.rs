//! ResourceQuotas (`ValidateResourceQuota`): quantities that are not negative (and whole for
//! counts), known scopes that do not contradict each other, scoped quotas only on what their
//! scopes can select, and scope selectors whose operators fit their values.

use ferry_api::quantity::Quantity;
use ferry_api::quota::SCOPES;
use ferry_api::resources::Amount;
use serde_json::Value;

use crate::registry::Strategy;
use crate::status::FieldError;

/// The ResourceQuota strategy.
pub struct ResourceQuotaStrategy;

/// What a quota with `scope` may constrain (upstream's `IsResourceQuotaScopeValidForResource`).
fn scope_allows(scope: &str, resource: &str) -> bool {
    const COMPUTE: &[&str] = &[
        "pods",
        "count/pods",
        "cpu",
        "memory",
        "requests.cpu",
        "requests.memory",
        "limits.cpu",
        "limits.memory",
    ];
    match scope {
        "BestEffort" => matches!(resource, "pods" | "count/pods"),
        "CrossNamespacePodAffinity" => matches!(resource, "pods" | "count/pods"),
        _ => {
            COMPUTE.contains(&resource)
                || resource.starts_with("requests.")
                || resource.starts_with("limits.")
        }
    }
}

/// Counts must be whole numbers (upstream's `IsIntegerResourceName`).
fn is_count(resource: &str) -> bool {
    resource.starts_with("count/")
        || resource.ends_with("/persistentvolumeclaims")
        || matches!(
            resource,
            "pods"
                | "services"
                | "replicationcontrollers"
                | "resourcequotas"
                | "secrets"
                | "configmaps"
                | "persistentvolumeclaims"
                | "services.nodeports"
                | "services.loadbalancers"
        )
}

fn validate_list(list: &Value, path: &str, errors: &mut Vec<FieldError>) {
    for (name, value) in list.as_object().into_iter().flatten() {
        let text = value.as_str().unwrap_or_default();
        let field = format!("{path}[{name}]");
        match Amount::parse(text) {
            None => errors.push(FieldError::invalid(field, text, "must be a valid quantity")),
            Some(a) if a.quantity < Quantity::ZERO => errors.push(FieldError::invalid(
                field,
                text,
                "must be greater than or equal to 0",
            )),
            Some(a) if is_count(name) && a.quantity.milli_value() % 1000 != 0 => {
                errors.push(FieldError::invalid(field, text, "must be an integer"))
            }
            Some(_) => {}
        }
    }
}

impl Strategy for ResourceQuotaStrategy {
    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let spec = &object["spec"];
        validate_list(&spec["hard"], "spec.hard", errors);
        validate_list(&object["status"]["hard"], "status.hard", errors);
        validate_list(&object["status"]["used"], "status.used", errors);
        let mut scopes: Vec<String> = Vec::new();
        for (i, scope) in spec["scopes"].as_array().into_iter().flatten().enumerate() {
            let scope = scope.as_str().unwrap_or_default();
            if !SCOPES.contains(&scope) {
                errors.push(FieldError::invalid(
                    format!("spec.scopes[{i}]"),
                    scope,
                    "unsupported scope",
                ));
            }
            scopes.push(scope.to_string());
        }
        let expressions = spec["scopeSelector"]["matchExpressions"].as_array();
        for (i, expression) in expressions.into_iter().flatten().enumerate() {
            let path = format!("spec.scopeSelector.matchExpressions[{i}]");
            let scope = expression["scopeName"].as_str().unwrap_or_default();
            if !SCOPES.contains(&scope) {
                errors.push(FieldError::invalid(
                    format!("{path}.scopeName"),
                    scope,
                    "unsupported scope",
                ));
            }
            let values = expression["values"].as_array().map(Vec::len).unwrap_or(0);
            let operator = expression["operator"].as_str().unwrap_or_default();
            match operator {
                "In" | "NotIn" if values == 0 => errors.push(FieldError::required(
                    format!("{path}.values"),
                    "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector",
                )),
                "Exists" | "DoesNotExist" if values > 0 => errors.push(FieldError::invalid(
                    format!("{path}.values"),
                    format!("{values} values"),
                    "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope selector",
                )),
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => errors.push(FieldError::not_supported(
                    format!("{path}.operator"),
                    other,
                    &["DoesNotExist", "Exists", "In", "NotIn"],
                )),
            }
            scopes.push(scope.to_string());
        }
        let has = |s: &str| scopes.iter().any(|x| x == s);
        for (a, b) in [
            ("Terminating", "NotTerminating"),
            ("BestEffort", "NotBestEffort"),
        ] {
            if has(a) && has(b) {
                errors.push(FieldError::invalid(
                    "spec.scopes",
                    format!("[{a} {b}]"),
                    "conflicting scopes",
                ));
            }
        }
        for resource in spec["hard"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            if scopes
                .iter()
                .any(|s| SCOPES.contains(&s.as_str()) && !scope_allows(s, resource))
            {
                errors.push(FieldError::invalid(
                    format!("spec.hard[{resource}]"),
                    resource.as_str(),
                    "unsupported scope applied to resource",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::registry::generic::{tests::resource, validate};
    use serde_json::json;

    #[test]
    fn quotas_are_validated_as_upstream() {
        let r = resource("", "v1", "resourcequotas");
        let quota = |spec: serde_json::Value| json!({"metadata": {"name": "q", "namespace": "d"}, "spec": spec});
        validate(
            r,
            &quota(json!({"hard": {"pods": "10", "requests.cpu": "1500m",
            "count/deployments.apps": "2"}})),
            None,
        )
        .expect("valid");
        let err = validate(
            r,
            &quota(
                json!({"hard": {"pods": "1.5", "memory": "-1Gi", "configmaps": "2"},
                "scopes": ["BestEffort", "NotBestEffort"]}),
            ),
            None,
        )
        .expect_err("invalid");
        assert_eq!(
            err.message,
            "ResourceQuota \"q\" is invalid: [spec.hard[memory]: Invalid value: \"-1Gi\": must be greater than or equal to 0, spec.hard[pods]: Invalid value: \"1.5\": must be an integer, spec.scopes: Invalid value: \"[BestEffort NotBestEffort]\": conflicting scopes, spec.hard[configmaps]: Invalid value: \"configmaps\": unsupported scope applied to resource, spec.hard[memory]: Invalid value: \"memory\": unsupported scope applied to resource]"
        );
    }
}
