//! Which FlowSchema a request matches and which flow it belongs to (upstream's
//! `flowcontrol/rule.go`): pure functions over the schema's rules, the user and the request.

use k8s_openapi::api::flowcontrol::v1::{
    NonResourcePolicyRule, PolicyRulesWithSubjects, ResourcePolicyRule, Subject,
};

use crate::auth::UserInfo;
use crate::request::RequestInfo;

/// How a schema tells flows apart (`spec.distinguisherMethod.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distinguisher {
    /// One flow per user name.
    ByUser,
    /// One flow per namespace of the request.
    ByNamespace,
}

impl Distinguisher {
    /// The method named `name`, if it is one.
    pub fn parse(name: &str) -> Option<Distinguisher> {
        match name {
            "ByUser" => Some(Distinguisher::ByUser),
            "ByNamespace" => Some(Distinguisher::ByNamespace),
            _ => None,
        }
    }
}

/// The flow distinguisher of a request: the user's name, the request's namespace, or "" for a
/// schema without a method (all its requests one flow).
pub fn flow_distinguisher(
    method: Option<Distinguisher>,
    user: &UserInfo,
    info: &RequestInfo,
) -> String {
    match method {
        Some(Distinguisher::ByUser) => user.name.clone(),
        Some(Distinguisher::ByNamespace) => info.namespace.clone(),
        None => String::new(),
    }
}

/// Whether any of a schema's rules matches the request.
pub fn matches(rules: &[PolicyRulesWithSubjects], user: &UserInfo, info: &RequestInfo) -> bool {
    rules.iter().any(|rule| matches_rule(rule, user, info))
}

fn matches_rule(rule: &PolicyRulesWithSubjects, user: &UserInfo, info: &RequestInfo) -> bool {
    if !rule.subjects.iter().any(|s| matches_subject(s, user)) {
        return false;
    }
    if info.is_resource_request {
        rule.resource_rules
            .iter()
            .flatten()
            .any(|r| matches_resource(r, info))
    } else {
        rule.non_resource_rules
            .iter()
            .flatten()
            .any(|r| matches_non_resource(r, info))
    }
}

fn matches_subject(subject: &Subject, user: &UserInfo) -> bool {
    match subject.kind.as_str() {
        "User" => subject
            .user
            .as_ref()
            .is_some_and(|u| u.name == "*" || u.name == user.name),
        "Group" => subject
            .group
            .as_ref()
            .is_some_and(|g| g.name == "*" || user.groups.contains(&g.name)),
        "ServiceAccount" => {
            let Some(account) = &subject.service_account else {
                return false;
            };
            let Some(rest) = user.name.strip_prefix("system:serviceaccount:") else {
                return false;
            };
            let Some((namespace, name)) = rest.split_once(':') else {
                return false;
            };
            namespace == account.namespace && (account.name == "*" || account.name == name)
        }
        _ => false,
    }
}

fn has(list: &[String], value: &str) -> bool {
    list.iter().any(|v| v == "*" || v == value)
}

fn matches_resource(rule: &ResourcePolicyRule, info: &RequestInfo) -> bool {
    if !has(&rule.verbs, &info.verb) || !has(&rule.api_groups, &info.group) {
        return false;
    }
    let resource = if info.subresource.is_empty() {
        info.resource.clone()
    } else {
        format!("{}/{}", info.resource, info.subresource)
    };
    if !has(&rule.resources, &resource) {
        return false;
    }
    if info.namespace.is_empty() {
        rule.cluster_scope == Some(true)
    } else {
        has(
            rule.namespaces.as_deref().unwrap_or_default(),
            &info.namespace,
        )
    }
}

fn matches_non_resource(rule: &NonResourcePolicyRule, info: &RequestInfo) -> bool {
    has(&rule.verbs, &info.verb)
        && rule.non_resource_urls.iter().any(|pattern| {
            pattern == "*"
                || *pattern == info.path
                || pattern
                    .strip_suffix('*')
                    .is_some_and(|prefix| info.path.starts_with(prefix))
        })
}
