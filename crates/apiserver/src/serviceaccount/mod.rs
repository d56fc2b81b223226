//! Service-account tokens, as upstream's `pkg/serviceaccount` and the `serviceaccounts/token`
//! registry: [`Tokens`] signs bound tokens for TokenRequest ([`request`]) and authenticates
//! every service-account token a client presents — its signature by one of the
//! `--service-account-key-file` keys ([`keys`]), its issuer, times and audiences
//! ([`token`]), and that the service account and the object it is bound to still exist with
//! the uids it names (read from the store; successes are remembered for ten seconds, as
//! upstream's token cache does). It also serves the OIDC discovery documents, so other
//! systems can verify the tokens.

pub mod keys;
pub mod request;
pub use ferry_tokens::token;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ferry_store::Store;
use serde_json::{json, Value};

use crate::auth::{Authenticator, AuthnError, Credentials, UserInfo};
use keys::{SigningKey, VerifyingKey};
use token::{Claims, LegacyClaims, LEGACY_ISSUER};

/// The issuer `ferry server` names when `--service-account-issuer` is not given (kubeadm's and
/// k3s's).
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// How long a successful authentication is remembered.
const CACHE_TTL: Duration = Duration::from_secs(10);
/// Clock skew tolerated on `exp` and `nbf` (go-jose's default leeway, which upstream uses).
const LEEWAY: i64 = 60;

/// Settings of the token issuer and authenticator.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// `--service-account-issuer`: the first signs, all are accepted.
    pub issuers: Vec<String>,
    /// `--api-audiences`: a token must be for one of these (default: the issuers).
    pub audiences: Vec<String>,
    /// `--service-account-max-token-expiration`: longer requests are shortened.
    pub max_expiration: Option<Duration>,
}

/// The service-account token issuer and authenticator.
pub struct Tokens {
    store: Arc<dyn Store>,
    signing: SigningKey,
    verifying: Vec<VerifyingKey>,
    config: TokenConfig,
    cache: parking_lot::Mutex<HashMap<Vec<u8>, (UserInfo, Instant)>>,
}

/// An object as far as a token cares: its uid, and whether it is being deleted.
struct Found {
    uid: String,
    deleting: bool,
    object: Value,
}

impl Tokens {
    /// Tokens signed with `signing`, verified with `verifying` (the signing key's public half
    /// is always among them).
    pub fn new(
        store: Arc<dyn Store>,
        signing: SigningKey,
        mut verifying: Vec<VerifyingKey>,
        mut config: TokenConfig,
    ) -> Arc<Tokens> {
        if !verifying.iter().any(|k| k.kid == signing.kid) {
            verifying.push(signing.public.clone());
        }
        if config.issuers.is_empty() {
            config.issuers.push(DEFAULT_ISSUER.into());
        }
        if config.audiences.is_empty() {
            config.audiences = config.issuers.clone();
        }
        Arc::new(Tokens {
            store,
            signing,
            verifying,
            config,
            cache: Default::default(),
        })
    }

    /// The issuer new tokens name.
    pub fn issuer(&self) -> &str {
        &self.config.issuers[0]
    }

    /// The audiences a token without requested audiences gets, and one of which every token
    /// presented to this server must name.
    pub fn api_audiences(&self) -> &[String] {
        &self.config.audiences
    }

    /// Signs `claims`.
    pub fn sign(&self, claims: &impl serde::Serialize) -> Result<String, String> {
        token::sign(&self.signing, claims)
    }

    /// `/.well-known/openid-configuration`.
    pub fn discovery(&self) -> Value {
        let issuer = self.issuer().trim_end_matches('/');
        let mut algorithms: Vec<&str> = self
            .verifying
            .iter()
            .map(|k| {
                if k.algorithm == jsonwebtoken::Algorithm::ES256 {
                    "ES256"
                } else {
                    "RS256"
                }
            })
            .collect();
        algorithms.sort();
        algorithms.dedup();
        json!({"issuer": self.issuer(), "jwks_uri": format!("{issuer}/openid/v1/jwks"),
            "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": algorithms})
    }

    /// `/openid/v1/jwks`.
    pub fn jwks(&self) -> Value {
        keys::jwks(&self.verifying)
    }

    /// The object `plural`/`name` in `namespace`, from the store.
    async fn find(
        &self,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Found>, String> {
        let Some(object) = crate::storage::read_core(&*self.store, plural, namespace, name)
            .await
            .map_err(|e| e.message)?
        else {
            return Ok(None);
        };
        Ok(Some(Found {
            uid: object["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            deleting: object["metadata"]["deletionTimestamp"].is_string(),
            object,
        }))
    }

    /// Checks that `plural`/`name` exists with `uid` (upstream's wording of the failures).
    async fn check_bound(
        &self,
        kind: &str,
        plural: &str,
        namespace: &str,
        reference: &token::ObjectRef,
    ) -> Result<(), String> {
        match self.find(plural, namespace, &reference.name).await? {
            None => Err(format!("{kind} \"{}\" not found", reference.name)),
            Some(found) if found.uid != reference.uid => Err(format!(
                "{kind} UID ({}) does not match claim ({})",
                found.uid, reference.uid
            )),
            Some(found) if found.deleting && plural != "pods" => {
                Err(format!("{kind} \"{}\" is being deleted", reference.name))
            }
            Some(_) => Ok(()),
        }
    }

    async fn validate(&self, token: &str, issuer: &str) -> Result<UserInfo, String> {
        let claims = token::verify(token, &self.verifying)?;
        if issuer == LEGACY_ISSUER {
            return self.validate_legacy(token, claims).await;
        }
        let now = jiff::Timestamp::now().as_second();
        let exp = claims["exp"].as_i64().ok_or("token has no expiry")?;
        if now > exp + LEEWAY {
            return Err("service account token has expired".into());
        }
        if claims["nbf"].as_i64().is_some_and(|nbf| now + LEEWAY < nbf) {
            return Err("service account token is not valid yet".into());
        }
        let audiences = token::audiences(&claims);
        if !audiences.iter().any(|a| self.config.audiences.contains(a)) {
            return Err(format!(
                "token audiences {audiences:?} is invalid for the target audiences {:?}",
                self.config.audiences
            ));
        }
        let claims: Claims = serde_json::from_value(claims).map_err(|e| e.to_string())?;
        let k8s = &claims.kubernetes;
        let namespace = &k8s.namespace;
        let expected_sub = format!(
            "system:serviceaccount:{namespace}:{}",
            k8s.serviceaccount.name
        );
        if claims.sub != expected_sub {
            return Err("token subject does not match its service account".into());
        }
        self.check_bound(
            "serviceaccount",
            "serviceaccounts",
            namespace,
            &k8s.serviceaccount,
        )
        .await?;
        if let Some(pod) = &k8s.pod {
            self.check_bound("pod", "pods", namespace, pod).await?;
        }
        if let Some(secret) = &k8s.secret {
            self.check_bound("secret", "secrets", namespace, secret)
                .await?;
        }
        if let (Some(node), None) = (&k8s.node, &k8s.pod) {
            self.check_bound("node", "nodes", "", node).await?;
        }
        Ok(service_account_user(
            namespace,
            &k8s.serviceaccount.name,
            &k8s.serviceaccount.uid,
        ))
    }

    /// A legacy token is valid while its Secret exists and still holds it, and its service
    /// account exists with the uid it names.
    async fn validate_legacy(&self, token: &str, claims: Value) -> Result<UserInfo, String> {
        let claims: LegacyClaims = serde_json::from_value(claims).map_err(|e| e.to_string())?;
        let namespace = &claims.namespace;
        let secret = self
            .find("secrets", namespace, &claims.secret_name)
            .await?
            .ok_or_else(|| format!("secret \"{}\" not found", claims.secret_name))?;
        let stored = secret.object["data"]["token"].as_str().unwrap_or_default();
        let stored = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, stored)
            .unwrap_or_default();
        if stored != token.as_bytes() || secret.deleting {
            return Err("token does not match the secret it names".into());
        }
        self.check_bound(
            "serviceaccount",
            "serviceaccounts",
            namespace,
            &token::ObjectRef {
                name: claims.service_account_name.clone(),
                uid: claims.service_account_uid.clone(),
            },
        )
        .await?;
        Ok(service_account_user(
            namespace,
            &claims.service_account_name,
            &claims.service_account_uid,
        ))
    }
}

/// The user a service account's token authenticates as (upstream's `UserInfo`).
pub fn service_account_user(namespace: &str, name: &str, uid: &str) -> UserInfo {
    UserInfo::new(
        format!("system:serviceaccount:{namespace}:{name}"),
        uid.to_string(),
        vec![
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{namespace}"),
        ],
    )
}

/// The authenticator of service-account tokens (upstream's `--service-account-*` JWT
/// authenticators): tokens of another issuer are left to the others.
pub struct TokenAuthenticator(pub Arc<Tokens>);

#[async_trait]
impl Authenticator for TokenAuthenticator {
    async fn authenticate(
        &self,
        credentials: &Credentials<'_>,
    ) -> Option<Result<UserInfo, AuthnError>> {
        let token = credentials.bearer_token?;
        let issuer = token::unverified_issuer(token)?;
        let tokens = &self.0;
        if issuer != LEGACY_ISSUER && !tokens.config.issuers.contains(&issuer) {
            return None;
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
            .as_ref()
            .to_vec();
        if let Some((user, at)) = tokens.cache.lock().get(&digest) {
            if at.elapsed() < CACHE_TTL {
                return Some(Ok(user.clone()));
            }
        }
        Some(match tokens.validate(token, &issuer).await {
            Ok(user) => {
                let mut cache = tokens.cache.lock();
                if cache.len() > 10_000 {
                    cache.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
                }
                cache.insert(digest, (user.clone(), Instant::now()));
                Ok(user)
            }
            Err(reason) => Err(AuthnError::Invalid(reason)),
        })
    }
}
