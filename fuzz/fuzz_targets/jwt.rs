//! Bearer tokens checked as service-account JWTs: `ferry_tokens::token`'s
//! `unverified_issuer` (read before anything is checked), `verify` against the server's
//! verifying keys, and `audiences` of the claims.
//!
//! Input: the token's text; when it is a JSON object instead, the claims of a token to sign.
//!
//! Holds: no panic; nothing verifies that the key did not sign (a forged signature never
//! passes); claims the key signs verify to themselves and their issuer is read back, when
//! their registered claims have their JWT types.

#![no_main]

use std::sync::LazyLock;

use ferry_tokens::keys::SigningKey;
use ferry_tokens::token::{audiences, sign, unverified_issuer, verify};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The server's key (ES256), generated once per run.
static KEY: LazyLock<SigningKey> =
    LazyLock::new(|| SigningKey::generate().expect("a P-256 key generates").0);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let keys = std::slice::from_ref(&KEY.public);
    let _ = unverified_issuer(text);
    if let Ok(claims) = verify(text, keys) {
        // Only tokens this run signed can verify, and the fuzzer never sees those.
        panic!("a token the key did not sign verified: {claims}");
    }
    if let Ok(claims @ Value::Object(_)) = serde_json::from_str::<Value>(text) {
        let token = sign(&KEY, &claims).expect("JSON claims sign");
        if !registered_claims_typed(&claims) {
            // A NumericDate that is not a number, an issuer that is not a string…: upstream's
            // go-jose refuses such a token however it is signed; ferry may too.
            let _ = verify(&token, keys);
            return;
        }
        let verified = verify(&token, keys).expect("a token the key signed verifies");
        assert_eq!(verified, claims);
        assert_eq!(
            unverified_issuer(&token).as_deref(),
            claims.get("iss").and_then(Value::as_str)
        );
        let _ = audiences(&verified);
    }
});

/// Whether the registered claims present have their JWT types (RFC 7519 §4.1): `exp`, `nbf`
/// and `iat` non-negative numbers, `iss` and `sub` strings, `aud` a string or strings.
fn registered_claims_typed(claims: &Value) -> bool {
    let date = |name: &str| {
        claims
            .get(name)
            .is_none_or(|v| v.as_f64().is_some_and(|n| n >= 0.0 && n < u64::MAX as f64))
    };
    let text = |name: &str| claims.get(name).is_none_or(Value::is_string);
    let audience = claims.get("aud").is_none_or(|aud| match aud {
        Value::String(_) => true,
        Value::Array(items) => items.iter().all(Value::is_string),
        _ => false,
    });
    date("exp") && date("nbf") && date("iat") && text("iss") && text("sub") && audience
}
