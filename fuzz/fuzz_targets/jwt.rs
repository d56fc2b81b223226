//! Bearer tokens checked as service-account JWTs: `ferry_tokens::token`'s
//! `unverified_issuer` (read before anything is checked), `verify` against the server's
//! verifying keys, and `audiences` of the claims.
//!
//! Input: the token's text; when it is a JSON object instead, the claims of a token to sign.
//!
//! Holds: no panic; nothing verifies that the key did not sign (a forged signature never
//! passes); claims the key signs verify to themselves and their issuer is read back.

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
        let verified = verify(&token, keys).expect("a token the key signed verifies");
        assert_eq!(verified, claims);
        assert_eq!(
            unverified_issuer(&token).as_deref(),
            claims.get("iss").and_then(Value::as_str)
        );
        let _ = audiences(&verified);
    }
});
