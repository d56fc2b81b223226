//! OpenID Connect ID tokens (`--oidc-issuer-url` and its companions, upstream's `oidc`
//! authenticator): a bearer JWT whose `iss` is the configured issuer is verified against the
//! issuer's keys (its discovery document's `jwks_uri`, fetched over HTTPS trusting
//! `--oidc-ca-file`, kept five minutes and fetched again for an unknown key id), must be for
//! `--oidc-client-id` and unexpired, and names the user by `--oidc-username-claim` (with
//! `--oidc-username-prefix`; by default `<issuer>#` unless the claim is `email`) and its groups
//! by `--oidc-groups-claim` (with `--oidc-groups-prefix`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::auth::{Authenticator, AuthnError, Credentials, UserInfo};
use crate::webhook as client;

/// How long the issuer's keys are kept.
const KEYS_TTL: Duration = Duration::from_secs(300);
/// How long the issuer may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What the `--oidc-*` flags say.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// `--oidc-issuer-url`: `https://…`, as tokens' `iss`.
    pub issuer_url: String,
    /// `--oidc-client-id`: the audience tokens must be for.
    pub client_id: String,
    /// `--oidc-username-claim` (`sub`).
    pub username_claim: String,
    /// `--oidc-username-prefix`: `None` for the default, `-` for none.
    pub username_prefix: Option<String>,
    /// `--oidc-groups-claim`.
    pub groups_claim: Option<String>,
    /// `--oidc-groups-prefix`.
    pub groups_prefix: String,
    /// `--oidc-ca-file`: the CA the issuer's certificate must chain to.
    pub ca_file: Option<PathBuf>,
    /// `--oidc-required-claim`: `key=value` pairs every token must carry.
    pub required_claims: Vec<(String, String)>,
    /// `--oidc-signing-algs` (RS256).
    pub signing_algs: Vec<Algorithm>,
}

/// The OIDC authenticator.
pub struct OidcAuthenticator {
    config: OidcConfig,
    tls: Arc<rustls::ClientConfig>,
    keys: tokio::sync::Mutex<Option<(Instant, JwkSet)>>,
}

impl OidcAuthenticator {
    /// The authenticator of `config`.
    pub fn new(config: OidcConfig) -> Result<OidcAuthenticator, String> {
        if !config.issuer_url.starts_with("https://") {
            return Err(format!(
                "--oidc-issuer-url {:?} must be https",
                config.issuer_url
            ));
        }
        if config.client_id.is_empty() {
            return Err("--oidc-client-id is required with --oidc-issuer-url".into());
        }
        let roots = match &config.ca_file {
            Some(path) => {
                let pem =
                    std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
                client::roots_from_pem(&pem).map_err(|e| format!("--oidc-ca-file: {e}"))?
            }
            None => rustls::RootCertStore::empty(),
        };
        Ok(OidcAuthenticator {
            config,
            tls: client::tls(roots),
            keys: tokio::sync::Mutex::new(None),
        })
    }

    /// The issuer's keys, fetched when missing, old, or without `kid`.
    async fn keys(&self, kid: Option<&str>) -> Result<JwkSet, String> {
        let mut keys = self.keys.lock().await;
        if let Some((at, set)) = keys.as_ref() {
            let knows = kid.is_none_or(|kid| set.find(kid).is_some());
            if at.elapsed() < KEYS_TTL && knows {
                return Ok(set.clone());
            }
        }
        let issuer = self.config.issuer_url.trim_end_matches('/');
        let discovery =
            client::Target::plain(&format!("{issuer}/.well-known/openid-configuration"))?;
        let document = client::get(&discovery, self.tls.clone(), TIMEOUT).await?;
        let jwks_uri = document["jwks_uri"]
            .as_str()
            .ok_or("the issuer's discovery document has no jwks_uri")?;
        let target = client::Target::plain(jwks_uri)?;
        let set: JwkSet =
            serde_json::from_value(client::get(&target, self.tls.clone(), TIMEOUT).await?)
                .map_err(|e| format!("the issuer's keys: {e}"))?;
        *keys = Some((Instant::now(), set.clone()));
        Ok(set)
    }

    async fn verify(&self, token: &str) -> Result<UserInfo, AuthnError> {
        let invalid = |why: String| AuthnError::Invalid(format!("oidc: {why}"));
        let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(e.to_string()))?;
        if !self.config.signing_algs.contains(&header.alg) {
            return Err(invalid(format!(
                "token signed with {:?}, not an allowed algorithm",
                header.alg
            )));
        }
        let set = self.keys(header.kid.as_deref()).await.map_err(invalid)?;
        let candidates: Vec<_> = match header.kid.as_deref() {
            Some(kid) => set.find(kid).into_iter().collect(),
            None => set.keys.iter().collect(),
        };
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[&self.config.client_id]);
        validation.set_issuer(&[&self.config.issuer_url]);
        let mut last = invalid("no key of the issuer verifies the token".into());
        for jwk in candidates {
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            match jsonwebtoken::decode::<Value>(token, &key, &validation) {
                Ok(data) => return self.user(&data.claims).map_err(invalid),
                Err(e) => last = invalid(e.to_string()),
            }
        }
        Err(last)
    }

    /// The user the verified `claims` name.
    fn user(&self, claims: &Value) -> Result<UserInfo, String> {
        for (key, value) in &self.config.required_claims {
            if claims[key].as_str() != Some(value) {
                return Err(format!("required claim {key} not present or not {value:?}"));
            }
        }
        let claim = &self.config.username_claim;
        let name = claims[claim]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| format!("claim {claim} not present"))?;
        if claim == "email" && claims["email_verified"].as_bool() == Some(false) {
            return Err("email not verified".into());
        }
        let prefix = match self.config.username_prefix.as_deref() {
            Some("-") => String::new(),
            Some(prefix) => prefix.to_string(),
            None if claim == "email" => String::new(),
            None => format!("{}#", self.config.issuer_url),
        };
        let groups = match &self.config.groups_claim {
            Some(groups_claim) => match &claims[groups_claim] {
                Value::String(one) => vec![one.clone()],
                Value::Array(many) => many
                    .iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect(),
                _ => Vec::new(),
            },
            None => Vec::new(),
        };
        let groups = groups
            .into_iter()
            .map(|g| format!("{}{g}", self.config.groups_prefix))
            .collect();
        let uid = claims["sub"].as_str().unwrap_or_default().to_string();
        Ok(UserInfo::new(format!("{prefix}{name}"), uid, groups))
    }
}

/// The `iss` of a JWT, read without verifying it (to know whether the token is the issuer's).
fn issuer_of(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims["iss"].as_str().map(String::from)
}

#[async_trait::async_trait]
impl Authenticator for OidcAuthenticator {
    async fn authenticate(
        &self,
        credentials: &Credentials<'_>,
    ) -> Option<Result<UserInfo, AuthnError>> {
        let token = credentials.bearer_token?;
        // Not the issuer's token (a service account's, a static one): not ours to judge.
        if issuer_of(token)? != self.config.issuer_url {
            return None;
        }
        Some(self.verify(token).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn authenticator(username_claim: &str, prefix: Option<&str>) -> OidcAuthenticator {
        OidcAuthenticator::new(OidcConfig {
            issuer_url: "https://issuer.example".into(),
            client_id: "ferry".into(),
            username_claim: username_claim.into(),
            username_prefix: prefix.map(String::from),
            groups_claim: Some("groups".into()),
            groups_prefix: "oidc:".into(),
            ca_file: None,
            required_claims: vec![("hd".into(), "example.com".into())],
            signing_algs: vec![Algorithm::RS256],
        })
        .expect("config")
    }

    #[test]
    fn claims_name_the_user_as_upstream() {
        let claims = json!({"sub": "1234", "email": "jane@example.com", "email_verified": true,
            "groups": ["devs", "ops"], "hd": "example.com"});
        let user = authenticator("sub", None).user(&claims).expect("user");
        assert_eq!(user.name, "https://issuer.example#1234");
        assert!(user.in_group("oidc:devs") && user.in_group("oidc:ops"));
        assert_eq!(
            authenticator("email", None)
                .user(&claims)
                .expect("user")
                .name,
            "jane@example.com"
        );
        assert_eq!(
            authenticator("sub", Some("-"))
                .user(&claims)
                .expect("user")
                .name,
            "1234"
        );
        assert_eq!(
            authenticator("sub", Some("corp:"))
                .user(&claims)
                .expect("user")
                .name,
            "corp:1234"
        );
        let unverified =
            json!({"email": "jane@example.com", "email_verified": false, "hd": "example.com"});
        assert!(authenticator("email", None).user(&unverified).is_err());
        let outsider = json!({"sub": "1", "hd": "other.com"});
        assert!(authenticator("sub", None).user(&outsider).is_err());
        assert!(OidcAuthenticator::new(OidcConfig {
            issuer_url: "http://plain".into(),
            ..authenticator("sub", None).config
        })
        .is_err());
    }

    #[test]
    fn only_the_issuers_tokens_are_judged() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"iss":"https://issuer.example","sub":"1"}"#);
        assert_eq!(
            issuer_of(&format!("e30.{payload}.sig")).as_deref(),
            Some("https://issuer.example")
        );
        assert_eq!(issuer_of("not-a-jwt"), None);
    }
}
