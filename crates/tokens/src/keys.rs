//! The keys service-account tokens are signed and verified with (upstream's
//! `--service-account-signing-key-file` and `--service-account-key-file`): PEM files of PKCS#8
//! private keys, public keys or certificates, ECDSA P-256 (ES256) or RSA (RS256). The key id
//! in each token's header is upstream's: the unpadded base64url SHA-256 of the public key's
//! DER (SubjectPublicKeyInfo), so a verifier finds the key that signed a token, and
//! `/openid/v1/jwks` publishes the public keys as a JSON Web Key Set.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::{json, Value};

/// Why a key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no usable key.
    #[error("{0}")]
    Invalid(String),
}

/// A key that signs tokens.
pub struct SigningKey {
    /// The key id.
    pub kid: String,
    /// ES256 or RS256.
    pub algorithm: Algorithm,
    /// The private key.
    pub key: EncodingKey,
    /// Its public half.
    pub public: VerifyingKey,
}

/// A key that verifies tokens.
#[derive(Clone)]
pub struct VerifyingKey {
    /// The key id.
    pub kid: String,
    /// ES256 or RS256.
    pub algorithm: Algorithm,
    /// The public key.
    pub key: DecodingKey,
    /// The key as a JSON Web Key.
    pub jwk: Value,
}

fn invalid(e: impl std::fmt::Display) -> KeyError {
    KeyError::Invalid(e.to_string())
}

const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const P256: &str = "1.2.840.10045.3.1.7";
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

impl VerifyingKey {
    /// The key of a DER SubjectPublicKeyInfo.
    pub fn from_spki(der: &[u8]) -> Result<VerifyingKey, KeyError> {
        use x509_parser::prelude::FromDer as _;
        use x509_parser::public_key::PublicKey;
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(der).map_err(invalid)?;
        let kid = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, der));
        let oid = spki.algorithm.algorithm.to_id_string();
        match spki.parsed().map_err(invalid)? {
            PublicKey::EC(point) if oid == EC_PUBLIC_KEY => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|o| o.to_id_string());
                let data = point.data();
                if curve.as_deref() != Some(P256) || data.len() != 65 || data[0] != 4 {
                    return Err(invalid("only P-256 ECDSA keys are supported"));
                }
                let jwk = json!({"use": "sig", "kty": "EC", "kid": kid, "crv": "P-256", "alg": "ES256",
                    "x": URL_SAFE_NO_PAD.encode(&data[1..33]), "y": URL_SAFE_NO_PAD.encode(&data[33..])});
                Ok(VerifyingKey {
                    kid,
                    algorithm: Algorithm::ES256,
                    key: DecodingKey::from_ec_der(data),
                    jwk,
                })
            }
            PublicKey::RSA(rsa) if oid == RSA_ENCRYPTION => {
                let trim = |b: &[u8]| -> Vec<u8> {
                    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
                    b[start..].to_vec()
                };
                let (n, e) = (trim(rsa.modulus), trim(rsa.exponent));
                let jwk = json!({"use": "sig", "kty": "RSA", "kid": kid, "alg": "RS256",
                    "n": URL_SAFE_NO_PAD.encode(&n), "e": URL_SAFE_NO_PAD.encode(&e)});
                let key = DecodingKey::from_rsa_raw_components(&n, &e);
                Ok(VerifyingKey {
                    kid,
                    algorithm: Algorithm::RS256,
                    key,
                    jwk,
                })
            }
            _ => Err(invalid("only ECDSA P-256 and RSA keys are supported")),
        }
    }
}

impl SigningKey {
    /// A new ECDSA P-256 key.
    pub fn generate() -> Result<(SigningKey, String), KeyError> {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(invalid)?;
        let pem = pair.serialize_pem();
        Ok((SigningKey::from_pem(&pem)?, pem))
    }

    /// The key in a PKCS#8 PEM.
    pub fn from_pem(pem: &str) -> Result<SigningKey, KeyError> {
        let pair = rcgen::KeyPair::from_pem(pem).map_err(invalid)?;
        let public =
            VerifyingKey::from_spki(&rcgen::PublicKeyData::subject_public_key_info(&pair))?;
        let key = match public.algorithm {
            Algorithm::ES256 => EncodingKey::from_ec_der(&pair.serialize_der()),
            _ => EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(invalid)?,
        };
        Ok(SigningKey {
            kid: public.kid.clone(),
            algorithm: public.algorithm,
            key,
            public,
        })
    }
}

/// The public keys in PEM `text` (of `source`, for errors): of each private key, public key
/// and certificate in it.
pub fn verifying_keys_in(text: &str, source: &str) -> Result<Vec<VerifyingKey>, KeyError> {
    let mut keys = Vec::new();
    for block in pem::parse_many(text).map_err(invalid)? {
        match block.tag() {
            "PRIVATE KEY" => {
                let pem = pem::encode(&block);
                keys.push(SigningKey::from_pem(&pem)?.public);
            }
            "PUBLIC KEY" => keys.push(VerifyingKey::from_spki(block.contents())?),
            "CERTIFICATE" => {
                let (_, cert) =
                    x509_parser::parse_x509_certificate(block.contents()).map_err(invalid)?;
                keys.push(VerifyingKey::from_spki(cert.public_key().raw)?);
            }
            _ => {}
        }
    }
    if keys.is_empty() {
        return Err(invalid(format!(
            "{source}: no PKCS#8 private key, public key or certificate"
        )));
    }
    Ok(keys)
}

/// The JSON Web Key Set of `keys` (`/openid/v1/jwks`).
pub fn jwks(keys: &[VerifyingKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_through_pem_and_publish_as_jwk() {
        let (made, pem) = SigningKey::generate().expect("made");
        assert_eq!(made.algorithm, Algorithm::ES256);
        assert_eq!(SigningKey::from_pem(&pem).expect("again").kid, made.kid);
        let public = verifying_keys_in(&pem, "sa.key").expect("public");
        assert_eq!(public.len(), 1);
        assert_eq!(public[0].kid, made.kid);
        let set = jwks(&public);
        assert_eq!(set["keys"][0]["kty"], "EC");
        assert_eq!(set["keys"][0]["kid"], made.kid);
        assert_eq!(set["keys"][0]["x"].as_str().expect("x").len(), 43);
        // 32 bytes of SHA-256, unpadded base64url.
        assert_eq!(made.kid.len(), 43);
        assert!(verifying_keys_in("nothing here", "sa.pub").is_err());
    }
}
