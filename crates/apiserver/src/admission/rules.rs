//! Which requests a webhook or an admission policy applies to (upstream's `rules.Matcher` and
//! the selector matchers): its rules' operations, groups, versions, resources (`pods`,
//! `pods/status`, `pods/*`, `*/scale`, `*/*`) and scope, then its namespace and object
//! selectors.

use std::collections::BTreeMap;

use ferry_api::matching::selector_matches;
use k8s_openapi::api::admissionregistration::v1::RuleWithOperations;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

use super::Attributes;
use crate::object::labels;
use crate::reflector::Objects;
use crate::registry::{GroupResource, NAMESPACES};
use crate::status::ApiError;

/// What the rules look at in a request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `CREATE`, `UPDATE`, `DELETE`.
    pub operation: &'a str,
    /// The resource's group.
    pub group: &'a str,
    /// The resource's version.
    pub version: &'a str,
    /// The resource (plural).
    pub resource: &'a str,
    /// The subresource ("" for the object).
    pub subresource: &'a str,
    /// The request's namespace ("" for cluster-scoped resources).
    pub namespace: &'a str,
}

fn any_or(list: Option<&Vec<String>>, value: &str) -> bool {
    list.into_iter()
        .flatten()
        .any(|item| item == "*" || item == value)
}

/// Whether `rule` covers `request`.
pub fn rule_matches(rule: &RuleWithOperations, request: &Request<'_>) -> bool {
    let resource = rule.resources.iter().flatten().any(|pattern| {
        let (resource, subresource) = pattern.split_once('/').unwrap_or((pattern, ""));
        (resource == "*" || resource == request.resource)
            && (subresource == "*" || subresource == request.subresource)
    });
    let scope = match rule.scope.as_deref().unwrap_or("*") {
        "Cluster" => request.namespace.is_empty(),
        "Namespaced" => !request.namespace.is_empty(),
        _ => true,
    };
    any_or(rule.operations.as_ref(), request.operation)
        && any_or(rule.api_groups.as_ref(), request.group)
        && any_or(rule.api_versions.as_ref(), request.version)
        && resource
        && scope
}

/// Whether any of `rules` covers `request`.
pub fn rules_match(rules: Option<&Vec<RuleWithOperations>>, request: &Request<'_>) -> bool {
    rules
        .into_iter()
        .flatten()
        .any(|rule| rule_matches(rule, request))
}

/// Whether `selector` (absent: everything) matches an object whose labels, before and after
/// the request, are `old` and `new` — either will do, as upstream's object selector.
pub fn object_selected(
    selector: Option<&LabelSelector>,
    old: Option<&BTreeMap<String, String>>,
    new: Option<&BTreeMap<String, String>>,
) -> bool {
    let Some(selector) = selector else {
        return true;
    };
    [old, new]
        .into_iter()
        .flatten()
        .any(|labels| selector_matches(selector, labels))
}

/// Whether the request's namespace (the object itself for a Namespace) has labels that
/// `selector` matches; requests for other cluster-scoped objects always match. `namespaces`
/// holds the namespaces under `/namespaces/`.
pub fn namespace_selected(
    selector: Option<&LabelSelector>,
    attributes: &Attributes<'_>,
    object: &Value,
    namespaces: &Objects,
) -> Result<bool, ApiError> {
    let Some(selector) = selector else {
        return Ok(true);
    };
    if GroupResource::of(attributes.resource) == NAMESPACES {
        return Ok(selector_matches(selector, &labels(object)));
    }
    let namespace = attributes.namespace(object);
    if namespace.is_empty() || selector == &LabelSelector::default() {
        return Ok(true);
    }
    let found = namespaces
        .get(&format!("/namespaces/{namespace}"))
        .ok_or_else(|| ApiError::internal(format!("namespace \"{namespace}\" not found")))?;
    Ok(selector_matches(selector, &labels(&found)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        operations: &[&str],
        groups: &[&str],
        resources: &[&str],
        scope: Option<&str>,
    ) -> RuleWithOperations {
        let strings = |items: &[&str]| Some(items.iter().map(|s| s.to_string()).collect());
        RuleWithOperations {
            operations: strings(operations),
            api_groups: strings(groups),
            api_versions: strings(&["*"]),
            resources: strings(resources),
            scope: scope.map(String::from),
        }
    }

    fn request<'a>(
        operation: &'a str,
        resource: &'a str,
        subresource: &'a str,
        namespace: &'a str,
    ) -> Request<'a> {
        Request {
            operation,
            group: "",
            version: "v1",
            resource,
            subresource,
            namespace,
        }
    }

    #[test]
    fn rules_match_operations_resources_subresources_and_scope() {
        let cases = [
            (
                rule(&["CREATE"], &[""], &["pods"], None),
                request("CREATE", "pods", "", "d"),
                true,
            ),
            (
                rule(&["CREATE"], &[""], &["pods"], None),
                request("UPDATE", "pods", "", "d"),
                false,
            ),
            (
                rule(&["*"], &[""], &["pods"], None),
                request("DELETE", "pods", "", "d"),
                true,
            ),
            (
                rule(&["*"], &["apps"], &["pods"], None),
                request("CREATE", "pods", "", "d"),
                false,
            ),
            // A resource alone does not cover its subresources…
            (
                rule(&["*"], &[""], &["pods"], None),
                request("UPDATE", "pods", "status", "d"),
                false,
            ),
            (
                rule(&["*"], &[""], &["*"], None),
                request("UPDATE", "pods", "status", "d"),
                false,
            ),
            // … `pods/status`, `pods/*`, `*/status` and `*/*` do.
            (
                rule(&["*"], &[""], &["pods/status"], None),
                request("UPDATE", "pods", "status", "d"),
                true,
            ),
            (
                rule(&["*"], &[""], &["pods/*"], None),
                request("UPDATE", "pods", "status", "d"),
                true,
            ),
            (
                rule(&["*"], &[""], &["pods/*"], None),
                request("CREATE", "pods", "", "d"),
                true,
            ),
            (
                rule(&["*"], &[""], &["*/status"], None),
                request("UPDATE", "pods", "status", "d"),
                true,
            ),
            (
                rule(&["*"], &[""], &["*/status"], None),
                request("UPDATE", "pods", "", "d"),
                false,
            ),
            (
                rule(&["*"], &["*"], &["*/*"], None),
                request("UPDATE", "pods", "binding", "d"),
                true,
            ),
            (
                rule(&["*"], &[""], &["pods/status"], None),
                request("UPDATE", "services", "status", "d"),
                false,
            ),
            // Scope.
            (
                rule(&["*"], &["*"], &["*"], Some("Namespaced")),
                request("CREATE", "nodes", "", ""),
                false,
            ),
            (
                rule(&["*"], &["*"], &["*"], Some("Cluster")),
                request("CREATE", "nodes", "", ""),
                true,
            ),
            (
                rule(&["*"], &["*"], &["*"], Some("Cluster")),
                request("CREATE", "pods", "", "d"),
                false,
            ),
            (
                rule(&["*"], &["*"], &["*"], Some("*")),
                request("CREATE", "pods", "", "d"),
                true,
            ),
        ];
        for (index, (rule, request, expected)) in cases.iter().enumerate() {
            assert_eq!(
                rule_matches(rule, request),
                *expected,
                "case {index}: {rule:?} {request:?}"
            );
        }
    }

    #[test]
    fn object_selectors_match_the_old_or_the_new_labels() {
        let selector: LabelSelector =
            serde_json::from_value(serde_json::json!({"matchLabels": {"hook": "on"}}))
                .expect("selector");
        let on: BTreeMap<String, String> = [("hook".to_string(), "on".to_string())].into();
        let off = BTreeMap::new();
        assert!(object_selected(None, None, Some(&off)));
        assert!(object_selected(Some(&selector), None, Some(&on)));
        assert!(!object_selected(Some(&selector), None, Some(&off)));
        assert!(
            object_selected(Some(&selector), Some(&on), Some(&off)),
            "label being removed"
        );
        assert!(object_selected(
            Some(&LabelSelector::default()),
            None,
            Some(&off)
        ));
    }
}
