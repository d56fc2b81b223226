//! Roles and ClusterRoles (`ValidateRole`, `ValidateClusterRole`): every rule has verbs, and is
//! either about resources (with API groups and resources) or, in a ClusterRole only, about
//! non-resource URLs; an aggregation rule has at least one selector.

use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::Value;

use super::go_strings;
use crate::registry::{NameRule, Strategy};
use crate::status::FieldError;

/// The strategy of Role (`namespaced`) and ClusterRole.
pub struct RoleStrategy {
    /// Role rather than ClusterRole.
    pub namespaced: bool,
}

/// A rule's errors (`ValidatePolicyRule`).
fn validate_rule(rule: &PolicyRule, namespaced: bool, path: &str, errors: &mut Vec<FieldError>) {
    let set = |list: &Option<Vec<String>>| list.as_ref().is_some_and(|l| !l.is_empty());
    if rule.verbs.is_empty() {
        errors.push(FieldError::required(
            format!("{path}.verbs"),
            "verbs must contain at least one value",
        ));
    }
    if let Some(urls) = rule.non_resource_urls.as_ref().filter(|u| !u.is_empty()) {
        if namespaced {
            errors.push(FieldError::invalid_raw(
                format!("{path}.nonResourceURLs"),
                go_strings(urls),
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        if set(&rule.api_groups) || set(&rule.resources) || set(&rule.resource_names) {
            errors.push(FieldError::invalid_raw(
                format!("{path}.nonResourceURLs"),
                go_strings(urls),
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return;
    }
    if !set(&rule.api_groups) {
        errors.push(FieldError::required(
            format!("{path}.apiGroups"),
            "resource rules must supply at least one api group",
        ));
    }
    if !set(&rule.resources) {
        errors.push(FieldError::required(
            format!("{path}.resources"),
            "resource rules must supply at least one resource",
        ));
    }
}

impl Strategy for RoleStrategy {
    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        for (i, rule) in object["rules"].as_array().into_iter().flatten().enumerate() {
            let path = format!("rules[{i}]");
            match serde_json::from_value::<PolicyRule>(rule.clone()) {
                Ok(rule) => validate_rule(&rule, self.namespaced, &path, errors),
                Err(e) => errors.push(FieldError::invalid(path, rule.to_string(), e.to_string())),
            }
        }
        if let Some(aggregation) = object.get("aggregationRule").filter(|a| !a.is_null()) {
            let selectors = aggregation["clusterRoleSelectors"].as_array();
            if selectors.is_none_or(Vec::is_empty) {
                errors.push(FieldError::required(
                    "aggregationRule.clusterRoleSelectors",
                    "at least one clusterRoleSelector required if aggregationRule is non-nil",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::registry::generic::{tests::resource, validate};
    use serde_json::json;

    fn message(plural: &str, object: serde_json::Value) -> String {
        let r = resource("rbac.authorization.k8s.io", "v1", plural);
        match validate(r, &object, None) {
            Ok(()) => String::new(),
            Err(e) => e.message,
        }
    }

    #[test]
    fn rules_are_checked_as_upstream() {
        let ok = json!({"metadata": {"name": "r", "namespace": "a"}, "rules": [
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]});
        assert_eq!(message("roles", ok), "");
        let urls = json!({"metadata": {"name": "r"}, "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]});
        assert_eq!(message("clusterroles", urls.clone()), "");
        assert_eq!(
            message("roles", urls),
            "Role.rbac.authorization.k8s.io \"r\" is invalid: rules[0].nonResourceURLs: Invalid value: []string{\"/healthz\"}: namespaced rules cannot apply to non-resource URLs"
        );
        let bare = json!({"metadata": {"name": "r"}, "rules": [{"verbs": []}]});
        assert_eq!(
            message("clusterroles", bare),
            "ClusterRole.rbac.authorization.k8s.io \"r\" is invalid: [rules[0].verbs: Required value: verbs must contain at least one value, rules[0].apiGroups: Required value: resource rules must supply at least one api group, rules[0].resources: Required value: resource rules must supply at least one resource]"
        );
        let both = json!({"metadata": {"name": "r"}, "rules": [{"verbs": ["get"], "resources": ["pods"], "nonResourceURLs": ["/x"]}]});
        assert!(message("clusterroles", both)
            .contains("rules cannot apply to both regular resources and non-resource URLs"));
        let aggregation =
            json!({"metadata": {"name": "r"}, "aggregationRule": {"clusterRoleSelectors": []}});
        assert!(message("clusterroles", aggregation).contains("aggregationRule.clusterRoleSelectors: Required value: at least one clusterRoleSelector required if aggregationRule is non-nil"));
    }
}
