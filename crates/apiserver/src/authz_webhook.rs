//! Webhook authorization (`--authorization-mode=…,Webhook`, upstream's `webhook`
//! authorizer): a request no earlier mode decided is sent as a SubjectAccessReview
//! (`authorization.k8s.io/v1beta1` by default, or `v1`: `--authorization-webhook-version`) to
//! the service the kubeconfig-format `--authorization-webhook-config-file` names. `allowed`
//! allows; `denied` forbids outright, so no later mode is asked; anything else is no opinion,
//! with the answer's reason. Answers are kept `--authorization-webhook-cache-authorized-ttl`
//! (5 min) when allowed and `--authorization-webhook-cache-unauthorized-ttl` (30 s) when not,
//! keyed by the review's spec. A webhook that cannot be reached has no opinion.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::auth::{Authorizer, Decision, UserInfo};
use crate::request::RequestInfo;
use crate::webhook as client;

/// How long the webhook may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The SubjectAccessReview versions a webhook may be asked in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V1beta1,
}

/// The webhook authorizer.
pub struct WebhookAuthorizer {
    target: client::Target,
    tls: Arc<rustls::ClientConfig>,
    version: Version,
    authorized_ttl: Duration,
    unauthorized_ttl: Duration,
    /// Decisions by the review's spec.
    cache: client::answers::Answers<String, Decision>,
}

impl std::fmt::Debug for WebhookAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookAuthorizer")
            .field("url", &self.target.url)
            .finish_non_exhaustive()
    }
}

impl WebhookAuthorizer {
    /// The authorizer the kubeconfig-format file at `path` describes, asking in `version`
    /// (`v1beta1`, `v1`) and keeping answers for the two TTLs.
    pub fn load(
        path: &Path,
        version: &str,
        authorized_ttl: Duration,
        unauthorized_ttl: Duration,
    ) -> Result<WebhookAuthorizer, String> {
        let version = match version {
            "v1beta1" | "" => Version::V1beta1,
            "v1" => Version::V1,
            other => return Err(format!("unsupported SubjectAccessReview version {other:?}")),
        };
        let (target, tls) = client::kubeconfig::load(path)?;
        Ok(WebhookAuthorizer {
            target,
            tls,
            version,
            authorized_ttl,
            unauthorized_ttl,
            cache: Default::default(),
        })
    }

    /// The answer kept for `key`, if it is still fresh.
    fn cached(&self, key: &String) -> Option<Decision> {
        self.cache.get(key, |decision| {
            if decision.allowed() {
                self.authorized_ttl
            } else {
                self.unauthorized_ttl
            }
        })
    }
}

/// The review's spec for `user` doing `request`, in `version`'s field names.
fn review_spec(user: &UserInfo, request: &RequestInfo, version: Version) -> Value {
    let mut spec = Map::new();
    if request.is_resource_request {
        spec.insert(
            "resourceAttributes".into(),
            json!({"namespace": request.namespace, "verb": request.verb,
                "group": request.group, "version": request.version,
                "resource": request.resource, "subresource": request.subresource,
                "name": request.name}),
        );
    } else {
        spec.insert(
            "nonResourceAttributes".into(),
            json!({"path": request.path, "verb": request.verb}),
        );
    }
    spec.insert("user".into(), json!(user.name));
    if !user.uid.is_empty() {
        spec.insert("uid".into(), json!(user.uid));
    }
    // v1beta1 names the groups `group`.
    let groups = match version {
        Version::V1 => "groups",
        Version::V1beta1 => "group",
    };
    spec.insert(groups.into(), json!(user.groups));
    Value::Object(spec)
}

/// What a review's answer decides.
fn decision_of(answer: &Value) -> Decision {
    let status = &answer["status"];
    let reason = status["reason"].as_str().unwrap_or_default().to_string();
    if status["allowed"].as_bool() == Some(true) {
        return Decision::Allow;
    }
    if status["denied"].as_bool() == Some(true) {
        return Decision::Forbid(reason);
    }
    match status["evaluationError"].as_str().filter(|e| !e.is_empty()) {
        Some(error) if reason.is_empty() => Decision::Deny(error.to_string()),
        _ => Decision::Deny(reason),
    }
}

#[async_trait::async_trait]
impl Authorizer for WebhookAuthorizer {
    /// Only what is kept: the webhook itself is asked by [`Authorizer::authorize_async`].
    fn authorize(&self, user: &UserInfo, request: &RequestInfo) -> Decision {
        let spec = review_spec(user, request, self.version);
        self.cached(&spec.to_string())
            .unwrap_or(Decision::Deny(String::new()))
    }

    fn calls_out(&self) -> bool {
        true
    }

    fn rules_for(
        &self,
        _user: &UserInfo,
        _namespace: &str,
        _rules: &mut Vec<k8s_openapi::api::rbac::v1::PolicyRule>,
    ) -> Result<(), String> {
        // Upstream's words: SelfSubjectRulesReview is marked incomplete.
        Err("webhook authorizer does not support user rule resolution".into())
    }

    async fn authorize_async(&self, user: &UserInfo, request: &RequestInfo) -> Decision {
        let spec = review_spec(user, request, self.version);
        let key = spec.to_string();
        if let Some(decision) = self.cached(&key) {
            return decision;
        }
        let api_version = match self.version {
            Version::V1 => "authorization.k8s.io/v1",
            Version::V1beta1 => "authorization.k8s.io/v1beta1",
        };
        let review = json!({"apiVersion": api_version, "kind": "SubjectAccessReview",
            "spec": spec});
        match client::call(&self.target, self.tls.clone(), &review, TIMEOUT).await {
            Ok(answer) => {
                let decision = decision_of(&answer);
                self.cache.put(key, decision.clone());
                decision
            }
            Err(error) => {
                tracing::warn!(url = %self.target.url, %error, "the authorization webhook failed");
                Decision::Deny(String::new())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jane() -> UserInfo {
        UserInfo::new("jane".into(), "42".into(), vec!["devs".into()])
    }

    #[test]
    fn reviews_name_the_request_in_the_versions_fields() {
        let pods = RequestInfo {
            is_resource_request: true,
            verb: "list".into(),
            version: "v1".into(),
            namespace: "default".into(),
            resource: "pods".into(),
            ..Default::default()
        };
        let spec = review_spec(&jane(), &pods, Version::V1beta1);
        assert_eq!(spec["resourceAttributes"]["resource"], "pods");
        assert_eq!(spec["resourceAttributes"]["namespace"], "default");
        assert_eq!(spec["user"], "jane");
        assert_eq!(spec["uid"], "42");
        assert_eq!(spec["group"], json!(["devs", "system:authenticated"]));
        assert!(spec.get("groups").is_none());
        let healthz = RequestInfo {
            verb: "get".into(),
            path: "/healthz".into(),
            ..Default::default()
        };
        let spec = review_spec(&jane(), &healthz, Version::V1);
        assert_eq!(
            spec["nonResourceAttributes"],
            json!({"path": "/healthz", "verb": "get"})
        );
        assert_eq!(spec["groups"], json!(["devs", "system:authenticated"]));
    }

    #[test]
    fn answers_allow_forbid_or_have_no_opinion() {
        assert_eq!(
            decision_of(&json!({"status": {"allowed": true}})),
            Decision::Allow
        );
        assert_eq!(
            decision_of(&json!({"status": {"allowed": false, "denied": true, "reason": "no"}})),
            Decision::Forbid("no".into())
        );
        assert_eq!(
            decision_of(&json!({"status": {"allowed": false, "reason": "not mine"}})),
            Decision::Deny("not mine".into())
        );
        assert_eq!(
            decision_of(&json!({"status": {"allowed": false, "evaluationError": "boom"}})),
            Decision::Deny("boom".into())
        );
        assert_eq!(decision_of(&json!({})), Decision::Deny(String::new()));
    }
}
