//! Webhook token authentication (`--authentication-token-webhook-config-file`, upstream's
//! `webhook` token authenticator): a bearer token no other authenticator knows is sent as an
//! `authentication.k8s.io/v1` TokenReview to the service the kubeconfig-format file names,
//! whose answer says who it is. Answers are kept for `--authentication-token-webhook-cache-ttl`
//! (refusals for 10 s), keyed by a SHA-256 of the token.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::auth::{Authenticator, AuthnError, Credentials, UserInfo};
use crate::webhook as client;

/// How long a refusal is kept.
const REFUSAL_TTL: Duration = Duration::from_secs(10);
/// How long the webhook may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The webhook token authenticator.
pub struct WebhookTokenAuthenticator {
    target: client::Target,
    tls: Arc<rustls::ClientConfig>,
    /// `authentication.k8s.io/v1` or `v1beta1`.
    api_version: String,
    ttl: Duration,
    /// Answers by the token's SHA-256.
    cache: client::answers::Answers<Vec<u8>, Result<UserInfo, AuthnError>>,
}

impl WebhookTokenAuthenticator {
    /// The authenticator the kubeconfig-format file at `path` describes; answers kept `ttl`;
    /// TokenReviews of `version` (`v1` or `v1beta1`).
    pub fn load(path: &Path, ttl: Duration, version: &str) -> Result<Self, String> {
        let (target, tls) = client::kubeconfig::load(path)?;
        let api_version = match version {
            "v1" | "" => "authentication.k8s.io/v1",
            "v1beta1" => "authentication.k8s.io/v1beta1",
            other => return Err(format!("unsupported TokenReview version {other:?}")),
        };
        Ok(WebhookTokenAuthenticator {
            target,
            tls,
            api_version: api_version.to_string(),
            ttl,
            cache: Default::default(),
        })
    }

    async fn review(&self, token: &str) -> Result<UserInfo, AuthnError> {
        let review = json!({
            "apiVersion": self.api_version, "kind": "TokenReview",
            "spec": {"token": token},
        });
        let answer = client::call(&self.target, self.tls.clone(), &review, TIMEOUT)
            .await
            .map_err(|e| AuthnError::Invalid(format!("the token webhook failed: {e}")))?;
        user_of(&answer)
    }
}

/// The user a TokenReview answer authenticates.
fn user_of(answer: &Value) -> Result<UserInfo, AuthnError> {
    let status = &answer["status"];
    if status["authenticated"].as_bool() != Some(true) {
        let why = status["error"]
            .as_str()
            .unwrap_or("not authenticated by the token webhook");
        return Err(AuthnError::Invalid(why.to_string()));
    }
    let user = &status["user"];
    let name = user["username"].as_str().unwrap_or_default();
    if name.is_empty() {
        return Err(AuthnError::Invalid(
            "the token webhook named no user".into(),
        ));
    }
    let groups = user["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect();
    Ok(UserInfo::new(
        name.to_string(),
        user["uid"].as_str().unwrap_or_default().to_string(),
        groups,
    ))
}

#[async_trait::async_trait]
impl Authenticator for WebhookTokenAuthenticator {
    async fn authenticate(
        &self,
        credentials: &Credentials<'_>,
    ) -> Option<Result<UserInfo, AuthnError>> {
        let token = credentials.bearer_token?;
        let key = ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
            .as_ref()
            .to_vec();
        let ttl = |answer: &Result<UserInfo, AuthnError>| {
            if answer.is_ok() {
                self.ttl
            } else {
                REFUSAL_TTL
            }
        };
        if let Some(answer) = self.cache.get(&key, ttl) {
            return Some(answer);
        }
        let answer = self.review(token).await;
        self.cache.put(key, answer.clone());
        Some(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_reviews_name_the_user_or_refuse() {
        let answer = json!({"status": {"authenticated": true,
            "user": {"username": "jane", "uid": "42", "groups": ["developers"]}}});
        let user = user_of(&answer).expect("authenticated");
        assert_eq!(user.name, "jane");
        assert_eq!(user.uid, "42");
        assert!(user.in_group("developers") && user.in_group("system:authenticated"));
        let refused = json!({"status": {"authenticated": false, "error": "token expired"}});
        assert_eq!(
            user_of(&refused),
            Err(AuthnError::Invalid("token expired".into()))
        );
        assert!(user_of(&json!({"status": {"authenticated": true, "user": {}}})).is_err());
    }
}
