//! The claims of service-account tokens, as upstream's `pkg/serviceaccount/claims.go` and
//! `legacy.go` write them, and their signing and signature check.
//!
//! A bound token (TokenRequest) carries `iss`, `sub`, `aud`, `exp`, `iat`, `nbf`, `jti` and a
//! private `kubernetes.io` claim naming the namespace, the service account and the object it
//! is bound to (pod — with the node it runs on —, secret or node), each by name and uid. A
//! legacy token (the token controller's Secret) has issuer `kubernetes/serviceaccount`, no
//! expiry and flat `kubernetes.io/serviceaccount/*` claims.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::keys::{SigningKey, VerifyingKey};

/// The issuer of legacy Secret-based tokens.
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";

/// An object a claim names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
}

/// The private `kubernetes.io` claim of a bound token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaims {
    /// The service account's namespace.
    pub namespace: String,
    /// The service account.
    pub serviceaccount: ObjectRef,
    /// The pod the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
    /// The secret the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectRef>,
    /// The node the token is bound to, or the bound pod runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ObjectRef>,
}

/// The claims of a bound token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Subject: `system:serviceaccount:<namespace>:<name>`.
    pub sub: String,
    /// Audiences.
    pub aud: Vec<String>,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Token id.
    pub jti: String,
    /// What the token is for.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
}

/// The claims of a legacy Secret-based token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyClaims {
    /// Always [`LEGACY_ISSUER`].
    pub iss: String,
    /// Subject: `system:serviceaccount:<namespace>:<name>`.
    pub sub: String,
    /// The namespace.
    #[serde(rename = "kubernetes.io/serviceaccount/namespace")]
    pub namespace: String,
    /// The Secret holding the token.
    #[serde(rename = "kubernetes.io/serviceaccount/secret.name")]
    pub secret_name: String,
    /// The service account.
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.name")]
    pub service_account_name: String,
    /// Its uid.
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.uid")]
    pub service_account_uid: String,
}

/// A legacy token of `namespace/account` (uid `uid`) kept in the Secret `secret` (what the token
/// controller writes into `kubernetes.io/service-account-token` Secrets).
pub fn sign_legacy(
    key: &SigningKey,
    namespace: &str,
    account: &str,
    uid: &str,
    secret: &str,
) -> Result<String, String> {
    sign(
        key,
        &LegacyClaims {
            iss: LEGACY_ISSUER.into(),
            sub: format!("system:serviceaccount:{namespace}:{account}"),
            namespace: namespace.into(),
            secret_name: secret.into(),
            service_account_name: account.into(),
            service_account_uid: uid.into(),
        },
    )
}

/// Signs `claims` with `key`, naming the key in the header.
pub fn sign(key: &SigningKey, claims: &impl Serialize) -> Result<String, String> {
    let mut header = Header::new(key.algorithm);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.key).map_err(|e| e.to_string())
}

/// The issuer a token claims, read without checking anything: it tells whether the token is
/// one of ours at all. `None` if it is not a JWT.
pub fn unverified_issuer(token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_string)
}

/// The claims of `token` if one of `keys` signed it (the key its header names, or any). Times
/// and audiences are the caller's to check.
pub fn verify(token: &str, keys: &[VerifyingKey]) -> Result<Value, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let candidates = keys.iter().filter(|k| {
        k.algorithm == header.alg && header.kid.as_ref().is_none_or(|kid| kid == &k.kid)
    });
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    for key in candidates {
        if let Ok(data) = jsonwebtoken::decode::<Value>(token, &key.key, &validation) {
            return Ok(data.claims);
        }
    }
    Err("token signature is invalid".into())
}

/// The audiences of a claim set: `aud` may be one string or a list.
pub fn audiences(claims: &Value) -> Vec<String> {
    match &claims["aud"] {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            iss: "https://kubernetes.default.svc.cluster.local".into(),
            sub: "system:serviceaccount:ns:sa".into(),
            aud: vec!["api".into()],
            exp: 2_000_000_000,
            iat: 1_000_000_000,
            nbf: 1_000_000_000,
            jti: "id".into(),
            kubernetes: KubernetesClaims {
                namespace: "ns".into(),
                serviceaccount: ObjectRef {
                    name: "sa".into(),
                    uid: "u1".into(),
                },
                pod: None,
                secret: None,
                node: None,
            },
        }
    }

    #[test]
    fn signed_claims_verify_with_the_public_key_only() {
        let (key, _) = SigningKey::generate().expect("key");
        let token = sign(&key, &claims()).expect("signed");
        assert_eq!(
            unverified_issuer(&token).as_deref(),
            Some("https://kubernetes.default.svc.cluster.local")
        );
        let verified = verify(&token, std::slice::from_ref(&key.public)).expect("verified");
        let back: Claims = serde_json::from_value(verified.clone()).expect("claims");
        assert_eq!(back, claims());
        assert_eq!(audiences(&verified), ["api"]);
        let (other, _) = SigningKey::generate().expect("key");
        assert!(verify(&token, &[other.public]).is_err());
        // A changed payload breaks the signature.
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        let mut forged = claims();
        forged.sub = "system:serviceaccount:kube-system:admin".into();
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).expect("json"));
        assert!(verify(&parts.join("."), std::slice::from_ref(&key.public)).is_err());
        assert_eq!(unverified_issuer("not-a-jwt"), None);
    }
}
