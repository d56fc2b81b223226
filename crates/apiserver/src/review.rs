//! The review resources: create-only, never stored, answered from the request's own
//! authentication and the server's authorizer — what `kubectl auth can-i`, `kubectl auth can-i
//! --list` and `kubectl auth whoami` ask, and what webhooks use to check tokens.
//!
//! - authentication.k8s.io/v1 SelfSubjectReview (who am I) and TokenReview (whose token);
//! - authorization.k8s.io/v1 SelfSubjectAccessReview, SubjectAccessReview,
//!   LocalSubjectAccessReview (may X do Y) and SelfSubjectRulesReview (what may I do).

use ferry_api::registry::ResourceInfo;
use serde_json::{json, Value};

use crate::auth::{Auth, Credentials, Decision, UserInfo};
use crate::request::RequestInfo;
use crate::status::ApiError;

/// Whether `resource` is one of the review resources: every resource of the authentication
/// and authorization groups is.
pub fn is_review(resource: &ResourceInfo) -> bool {
    matches!(
        resource.group,
        "authentication.k8s.io" | "authorization.k8s.io"
    )
}

fn user_json(user: &UserInfo) -> Value {
    json!({"username": user.name, "uid": user.uid, "groups": user.groups})
}

/// The request a SubjectAccessReview's spec describes.
fn attributes(spec: &Value, namespace_override: Option<&str>) -> RequestInfo {
    if let Some(resource) = spec.get("resourceAttributes").filter(|r| r.is_object()) {
        let text = |k: &str| {
            resource
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let group = text("group");
        RequestInfo {
            is_resource_request: true,
            verb: text("verb"),
            api_prefix: if group.is_empty() {
                "api".into()
            } else {
                "apis".into()
            },
            group,
            version: text("version"),
            namespace: namespace_override
                .map(str::to_string)
                .unwrap_or_else(|| text("namespace")),
            resource: text("resource"),
            subresource: text("subresource"),
            name: text("name"),
            ..Default::default()
        }
    } else {
        let attributes = spec
            .get("nonResourceAttributes")
            .cloned()
            .unwrap_or(json!({}));
        RequestInfo {
            is_resource_request: false,
            path: attributes["path"].as_str().unwrap_or("").to_string(),
            verb: attributes["verb"].as_str().unwrap_or("").to_string(),
            ..Default::default()
        }
    }
}

async fn decide(
    auth: &Auth,
    user: &UserInfo,
    spec: &Value,
    namespace_override: Option<&str>,
) -> Value {
    let (mut status, reason) = match auth
        .authorize(user, &attributes(spec, namespace_override))
        .await
    {
        Decision::Allow => return json!({"allowed": true}),
        Decision::Deny(reason) => (json!({"allowed": false}), reason),
        Decision::Forbid(reason) => (json!({"allowed": false, "denied": true}), reason),
    };
    if !reason.is_empty() {
        status["reason"] = json!(reason);
    }
    status
}

/// Answers a review created by `user`: the request object with its `status` filled in.
pub async fn review(
    auth: &Auth,
    user: &UserInfo,
    resource: &ResourceInfo,
    namespace: &str,
    mut object: Value,
) -> Result<Value, ApiError> {
    let spec = object.get("spec").cloned().unwrap_or(json!({}));
    let status = match resource.plural {
        "selfsubjectreviews" => json!({"userInfo": user_json(user)}),
        "tokenreviews" => {
            let token = spec["token"].as_str().unwrap_or("");
            if token.is_empty() {
                return Err(ApiError::invalid(
                    resource.kind,
                    resource.group,
                    "",
                    &[crate::status::FieldError::required("spec.token", "")],
                ));
            }
            let authenticated = auth
                .authenticate(&Credentials {
                    client_cert: None,
                    bearer_token: Some(token),
                })
                .await;
            match authenticated {
                Ok(subject) => {
                    json!({"authenticated": true, "user": user_json(&subject), "audiences": spec.get("audiences").cloned().unwrap_or(json!([]))})
                }
                Err(error) => json!({"authenticated": false, "error": error.to_string()}),
            }
        }
        "selfsubjectaccessreviews" => decide(auth, user, &spec, None).await,
        "subjectaccessreviews" | "localsubjectaccessreviews" => {
            let subject = UserInfo {
                name: spec["user"].as_str().unwrap_or("").to_string(),
                uid: spec["uid"].as_str().unwrap_or("").to_string(),
                groups: spec["groups"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
            };
            if subject.name.is_empty() && subject.groups.is_empty() {
                return Err(ApiError::invalid(
                    resource.kind,
                    resource.group,
                    "",
                    &[crate::status::FieldError::invalid_raw(
                        "spec.user",
                        "\"\"",
                        "at least one of user or group must be specified",
                    )],
                ));
            }
            // Only LocalSubjectAccessReview is namespaced: its path's namespace is the one asked about.
            let namespace = resource.namespaced.then_some(namespace);
            decide(auth, &subject, &spec, namespace).await
        }
        "selfsubjectrulesreviews" => rules(auth, user, spec["namespace"].as_str().unwrap_or("")),
        _ => {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ))
        }
    };
    object["status"] = status;
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object["metadata"]["creationTimestamp"] = Value::Null;
    Ok(object)
}

/// What the user may do in `namespace`, as the authorizers' rule resolvers list it
/// (upstream's SelfSubjectRulesReview): resource rules and non-resource rules apart, and
/// `incomplete` with the reason when an authorizer cannot list what it allows.
fn rules(auth: &Auth, user: &UserInfo, namespace: &str) -> Value {
    let mut rules = Vec::new();
    let outcome = auth.authz.rules_for(user, namespace, &mut rules);
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for rule in rules {
        if rule
            .non_resource_urls
            .as_ref()
            .is_some_and(|u| !u.is_empty())
        {
            non_resource_rules
                .push(json!({"verbs": rule.verbs, "nonResourceURLs": rule.non_resource_urls}));
        }
        if rule.resources.as_ref().is_some_and(|r| !r.is_empty()) {
            let mut resource = json!({"verbs": rule.verbs, "apiGroups": rule.api_groups.unwrap_or_default(),
                "resources": rule.resources});
            if let Some(names) = rule.resource_names.filter(|n| !n.is_empty()) {
                resource["resourceNames"] = json!(names);
            }
            resource_rules.push(resource);
        }
    }
    let mut status = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": outcome.is_err(),
    });
    if let Err(reason) = outcome {
        status["evaluationError"] = json!(reason);
    }
    status
}
