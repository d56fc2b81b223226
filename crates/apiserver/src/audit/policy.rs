//! The audit policy (upstream's `audit.k8s.io/v1` `Policy`, `--audit-policy-file`): rules in
//! order, the first that matches a request decides its level — `None` (not recorded),
//! `Metadata` (who, what, when, the answer's code), `Request` (also the request's body) or
//! `RequestResponse` (also the response's body). A request no rule matches is not recorded.
//! A rule matches by users, user groups, verbs, resources (group, resource or
//! `resource/subresource` or `*`, resource names), namespaces and non-resource URLs (`*`
//! suffix for prefixes); an empty list matches everything.

use serde::Deserialize;

use crate::auth::UserInfo;
use crate::request::RequestInfo;

/// How much of a request is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Default)]
pub enum Level {
    /// Nothing.
    #[default]
    None,
    /// Who, what, when, and the answer's code.
    Metadata,
    /// Also the request's body.
    Request,
    /// Also the response's body.
    RequestResponse,
}

impl Level {
    /// Upstream's name of the level.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "None",
            Level::Metadata => "Metadata",
            Level::Request => "Request",
            Level::RequestResponse => "RequestResponse",
        }
    }
}

/// Resources a rule names (upstream's `GroupResources`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupResources {
    #[serde(default)]
    group: String,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    resource_names: Vec<String>,
}

/// One rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    level: Level,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    user_groups: Vec<String>,
    #[serde(default)]
    verbs: Vec<String>,
    #[serde(default)]
    resources: Vec<GroupResources>,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    non_resource_urls: Vec<String>,
}

/// The policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    rules: Vec<Rule>,
}

impl Policy {
    /// Parses a policy file's YAML (or JSON).
    pub fn parse(text: &str) -> Result<Policy, String> {
        let policy: Policy = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        if policy.kind != "Policy" || !policy.api_version.starts_with("audit.k8s.io/") {
            return Err(format!(
                "expected kind Policy of audit.k8s.io, got kind {:?} of {:?}",
                policy.kind, policy.api_version
            ));
        }
        Ok(policy)
    }

    /// The level of `request` by `user` (`None` when no rule matches).
    pub fn level(&self, user: Option<&UserInfo>, request: &RequestInfo) -> Level {
        self.rules
            .iter()
            .find(|rule| rule.matches(user, request))
            .map_or(Level::None, |rule| rule.level)
    }
}

fn any_or(list: &[String], value: &str) -> bool {
    list.is_empty() || list.iter().any(|item| item == value)
}

impl Rule {
    fn matches(&self, user: Option<&UserInfo>, request: &RequestInfo) -> bool {
        let name = user.map(|u| u.name.as_str()).unwrap_or("system:anonymous");
        let groups = user.map(|u| u.groups.as_slice()).unwrap_or_default();
        if !any_or(&self.users, name) {
            return false;
        }
        if !self.user_groups.is_empty() && !groups.iter().any(|g| self.user_groups.contains(g)) {
            return false;
        }
        if !any_or(&self.verbs, &request.verb) {
            return false;
        }
        if !request.is_resource_request {
            // Rules about resources or namespaces are not about paths.
            if !self.resources.is_empty() || !self.namespaces.is_empty() {
                return false;
            }
            return self.non_resource_urls.is_empty()
                || self.non_resource_urls.iter().any(|url| {
                    url == &request.path
                        || url
                            .strip_suffix('*')
                            .is_some_and(|prefix| request.path.starts_with(prefix))
                });
        }
        if !self.non_resource_urls.is_empty() {
            return false;
        }
        if !self.namespaces.is_empty() && !self.namespaces.contains(&request.namespace) {
            return false;
        }
        self.resources.is_empty() || self.resources.iter().any(|r| r.matches(request))
    }
}

impl GroupResources {
    fn matches(&self, request: &RequestInfo) -> bool {
        if self.group != request.group {
            return false;
        }
        let combined = format!("{}/{}", request.resource, request.subresource);
        let resource_ok = self.resources.is_empty()
            || self.resources.iter().any(|r| {
                r == "*"
                    || (request.subresource.is_empty() && r == &request.resource)
                    || (!request.subresource.is_empty()
                        && (r == &combined
                            || r.strip_prefix("*/") == Some(request.subresource.as_str())
                            || r.strip_suffix("/*") == Some(request.resource.as_str())))
            });
        resource_ok
            && (self.resource_names.is_empty() || self.resource_names.contains(&request.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::parse;

    const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  users: ["system:kube-proxy"]
- level: None
  nonResourceURLs: ["/healthz*", "/version"]
- level: RequestResponse
  resources:
  - group: ""
    resources: ["configmaps"]
    resourceNames: ["audited"]
- level: Request
  verbs: ["create", "update", "patch"]
  resources:
  - group: ""
    resources: ["pods", "pods/*"]
  namespaces: ["prod"]
- level: Metadata
  userGroups: ["system:authenticated"]
"#;

    fn user(name: &str) -> UserInfo {
        UserInfo {
            name: name.into(),
            uid: String::new(),
            groups: vec!["system:authenticated".into()],
        }
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let policy = Policy::parse(POLICY).expect("policy");
        let jane = user("jane");
        let cases = [
            (&jane, "GET", "/healthz/etcd", Level::None),
            (&jane, "GET", "/version", Level::None),
            (&jane, "GET", "/api", Level::Metadata),
            (
                &jane,
                "GET",
                "/api/v1/namespaces/a/configmaps/audited",
                Level::RequestResponse,
            ),
            (
                &jane,
                "GET",
                "/api/v1/namespaces/a/configmaps/other",
                Level::Metadata,
            ),
            (
                &jane,
                "POST",
                "/api/v1/namespaces/prod/pods",
                Level::Request,
            ),
            (
                &jane,
                "POST",
                "/api/v1/namespaces/prod/pods/p/eviction",
                Level::Request,
            ),
            (
                &jane,
                "POST",
                "/api/v1/namespaces/dev/pods",
                Level::Metadata,
            ),
            (
                &jane,
                "GET",
                "/api/v1/namespaces/prod/pods",
                Level::Metadata,
            ),
        ];
        for (user, method, path, level) in cases {
            assert_eq!(
                policy.level(Some(user), &parse(method, path, false)),
                level,
                "{method} {path}"
            );
        }
        assert_eq!(
            policy.level(
                Some(&user("system:kube-proxy")),
                &parse("GET", "/api", false)
            ),
            Level::None
        );
        // Nobody authenticated: no group rule matches.
        assert_eq!(
            policy.level(None, &parse("GET", "/api", false)),
            Level::None
        );
        assert!(Policy::parse("kind: Pod\napiVersion: v1\n").is_err());
    }
}
