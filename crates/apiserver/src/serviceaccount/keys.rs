//! The key files service-account tokens are signed and verified with (upstream's
//! `--service-account-signing-key-file` and `--service-account-key-file`): PEM files of PKCS#8
//! private keys, public keys or certificates, read — and the signing key made on first start —
//! here; the keys themselves, their ids and JSON Web Keys are [`ferry_tokens::keys`].

use std::path::Path;

pub use ferry_tokens::keys::{jwks, KeyError, SigningKey, VerifyingKey};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The key in `path`, made (mode 0600) if the file does not exist.
pub fn load_or_generate(path: &Path) -> Result<SigningKey, KeyError> {
    match std::fs::read_to_string(path) {
        Ok(pem) => SigningKey::from_pem(&pem),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (key, pem) = SigningKey::generate()?;
            crate::pki::write_private(path, &pem).map_err(|e| KeyError::Invalid(e.to_string()))?;
            Ok(key)
        }
        Err(e) => Err(io(path)(e)),
    }
}

/// The public keys of a PEM file: of each private key, public key and certificate in it.
pub fn verifying_keys(path: &Path) -> Result<Vec<VerifyingKey>, KeyError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    ferry_tokens::keys::verifying_keys_in(&text, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_kept_in_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sa.key");
        let made = load_or_generate(&path).expect("made");
        let again = load_or_generate(&path).expect("loaded");
        assert_eq!(made.kid, again.kid);
        let public = verifying_keys(&path).expect("public");
        assert_eq!(public.len(), 1);
        assert_eq!(public[0].kid, made.kid);
        assert!(verifying_keys(&dir.path().join("missing")).is_err());
    }
}
