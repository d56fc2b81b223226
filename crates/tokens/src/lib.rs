//! `ferry-tokens`: service-account tokens, the JWTs the API server signs (TokenRequest, the
//! token controller's legacy Secrets) and verifies (its token authenticator, TokenReview).
//!
//! - [`keys`]: the ES256 or RS256 keys tokens are signed and verified with, from PEM text; key
//!   ids as upstream's, and the JSON Web Key Set `/openid/v1/jwks` publishes.
//! - [`token`]: the claims of bound and legacy tokens, signing, and the signature check.
//!
//! Pure functions over keys and text: the key files are read and written by the API server
//! (`ferry_apiserver::serviceaccount::keys`). A crate of its own so that the token decoder is
//! fuzzed without building the API server (`fuzz/fuzz_targets/jwt.rs`).

pub mod keys;
pub mod token;
