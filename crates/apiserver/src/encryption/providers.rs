//! The encryption providers of upstream's `EncryptionConfiguration`, each writing upstream's
//! envelope `k8s:enc:<provider>:v1:<key name>:` + its own bytes:
//!
//! - `aescbc`: AES-CBC with PKCS#7 padding, a random 16-byte IV before the ciphertext;
//! - `aesgcm`: AES-GCM, a random 12-byte nonce before the ciphertext and tag, the storage key
//!   as authenticated data (a value cannot be moved to another key);
//! - `secretbox`: XSalsa20-Poly1305, a random 24-byte nonce before the box;
//! - `identity`: the value as it is (and the reading of values written before encryption).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};

/// What a provider is.
#[derive(Clone)]
pub enum Provider {
    /// No encryption.
    Identity,
    /// AES-CBC with the named key (16, 24 or 32 bytes).
    AesCbc {
        /// The key's name, in the envelope.
        name: String,
        /// The key.
        key: Vec<u8>,
    },
    /// AES-GCM with the named key (16, 24 or 32 bytes).
    AesGcm {
        /// The key's name, in the envelope.
        name: String,
        /// The key.
        key: Vec<u8>,
    },
    /// XSalsa20-Poly1305 with the named 32-byte key.
    Secretbox {
        /// The key's name, in the envelope.
        name: String,
        /// The key.
        key: Vec<u8>,
    },
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        match self {
            Provider::Identity => write!(f, "identity"),
            Provider::AesCbc { name, .. } => write!(f, "aescbc:{name}"),
            Provider::AesGcm { name, .. } => write!(f, "aesgcm:{name}"),
            Provider::Secretbox { name, .. } => write!(f, "secretbox:{name}"),
        }
    }
}

type Aes192Gcm = aes_gcm::AesGcm<aes::Aes192, aes_gcm::aead::consts::U12>;

fn gcm_seal(key: &[u8], nonce: &[u8], msg: &[u8], aad: &[u8]) -> Result<Vec<u8>, String> {
    let payload = Payload { msg, aad };
    let nonce = aes_gcm::Nonce::from_slice(nonce);
    let sealed = match key.len() {
        16 => aes_gcm::Aes128Gcm::new_from_slice(key)
            .map_err(|e| e.to_string())?
            .encrypt(nonce, payload),
        24 => Aes192Gcm::new_from_slice(key)
            .map_err(|e| e.to_string())?
            .encrypt(nonce, payload),
        _ => aes_gcm::Aes256Gcm::new_from_slice(key)
            .map_err(|e| e.to_string())?
            .encrypt(nonce, payload),
    };
    sealed.map_err(|_| "aes-gcm encryption failed".to_string())
}

fn gcm_open(key: &[u8], nonce: &[u8], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, String> {
    let payload = Payload { msg: sealed, aad };
    let nonce = aes_gcm::Nonce::from_slice(nonce);
    let opened = match key.len() {
        16 => aes_gcm::Aes128Gcm::new_from_slice(key)
            .map_err(|e| e.to_string())?
            .decrypt(nonce, payload),
        24 => Aes192Gcm::new_from_slice(key)
            .map_err(|e| e.to_string())?
            .decrypt(nonce, payload),
        _ => aes_gcm::Aes256Gcm::new_from_slice(key)
            .map_err(|e| e.to_string())?
            .decrypt(nonce, payload),
    };
    opened.map_err(|_| "aes-gcm: message authentication failed".to_string())
}

fn cbc_seal(key: &[u8], iv: &[u8], msg: &[u8]) -> Result<Vec<u8>, String> {
    let invalid = |e: cbc::cipher::InvalidLength| e.to_string();
    Ok(match key.len() {
        16 => cbc::Encryptor::<aes::Aes128>::new_from_slices(key, iv)
            .map_err(invalid)?
            .encrypt_padded_vec_mut::<Pkcs7>(msg),
        24 => cbc::Encryptor::<aes::Aes192>::new_from_slices(key, iv)
            .map_err(invalid)?
            .encrypt_padded_vec_mut::<Pkcs7>(msg),
        _ => cbc::Encryptor::<aes::Aes256>::new_from_slices(key, iv)
            .map_err(invalid)?
            .encrypt_padded_vec_mut::<Pkcs7>(msg),
    })
}

fn cbc_open(key: &[u8], iv: &[u8], sealed: &[u8]) -> Result<Vec<u8>, String> {
    let invalid = |e: cbc::cipher::InvalidLength| e.to_string();
    let padding = |_| "aes-cbc: invalid padding".to_string();
    match key.len() {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv)
            .map_err(invalid)?
            .decrypt_padded_vec_mut::<Pkcs7>(sealed)
            .map_err(padding),
        24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(key, iv)
            .map_err(invalid)?
            .decrypt_padded_vec_mut::<Pkcs7>(sealed)
            .map_err(padding),
        _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv)
            .map_err(invalid)?
            .decrypt_padded_vec_mut::<Pkcs7>(sealed)
            .map_err(padding),
    }
}

impl Provider {
    /// The envelope prefix of the provider's values (`None` for identity).
    pub fn prefix(&self) -> Option<String> {
        match self {
            Provider::Identity => None,
            Provider::AesCbc { name, .. } => Some(format!("k8s:enc:aescbc:v1:{name}:")),
            Provider::AesGcm { name, .. } => Some(format!("k8s:enc:aesgcm:v1:{name}:")),
            Provider::Secretbox { name, .. } => Some(format!("k8s:enc:secretbox:v1:{name}:")),
        }
    }

    /// `plaintext`, stored at `key`, as the provider writes it.
    pub fn encrypt(&self, key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = self.prefix().unwrap_or_default().into_bytes();
        match self {
            Provider::Identity => out.extend_from_slice(plaintext),
            Provider::AesCbc { key: secret, .. } => {
                let iv: [u8; 16] = rand::random();
                out.extend_from_slice(&iv);
                out.extend(cbc_seal(secret, &iv, plaintext)?);
            }
            Provider::AesGcm { key: secret, .. } => {
                let nonce: [u8; 12] = rand::random();
                out.extend_from_slice(&nonce);
                out.extend(gcm_seal(secret, &nonce, plaintext, key)?);
            }
            Provider::Secretbox { key: secret, .. } => {
                use crypto_secretbox::aead::Aead as _;
                let nonce: [u8; 24] = rand::random();
                let cipher = crypto_secretbox::XSalsa20Poly1305::new_from_slice(secret)
                    .map_err(|e| e.to_string())?;
                let sealed = cipher
                    .encrypt(crypto_secretbox::Nonce::from_slice(&nonce), plaintext)
                    .map_err(|_| "secretbox encryption failed".to_string())?;
                out.extend_from_slice(&nonce);
                out.extend(sealed);
            }
        }
        Ok(out)
    }

    /// The plaintext of `stored` (without the provider's prefix), stored at `key`.
    pub fn decrypt(&self, key: &[u8], stored: &[u8]) -> Result<Vec<u8>, String> {
        let short = || "the stored value is too short".to_string();
        match self {
            Provider::Identity => Ok(stored.to_vec()),
            Provider::AesCbc { key: secret, .. } => {
                if stored.len() < 16 {
                    return Err(short());
                }
                let (iv, sealed) = stored.split_at(16);
                cbc_open(secret, iv, sealed)
            }
            Provider::AesGcm { key: secret, .. } => {
                if stored.len() < 12 {
                    return Err(short());
                }
                let (nonce, sealed) = stored.split_at(12);
                gcm_open(secret, nonce, sealed, key)
            }
            Provider::Secretbox { key: secret, .. } => {
                use crypto_secretbox::aead::Aead as _;
                if stored.len() < 24 {
                    return Err(short());
                }
                let (nonce, sealed) = stored.split_at(24);
                let cipher = crypto_secretbox::XSalsa20Poly1305::new_from_slice(secret)
                    .map_err(|e| e.to_string())?;
                cipher
                    .decrypt(crypto_secretbox::Nonce::from_slice(nonce), sealed)
                    .map_err(|_| "secretbox: message authentication failed".to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_round_trips_and_binds_what_it_should() {
        let providers = [
            Provider::AesCbc {
                name: "k1".into(),
                key: vec![1; 32],
            },
            Provider::AesCbc {
                name: "k16".into(),
                key: vec![1; 16],
            },
            Provider::AesGcm {
                name: "k2".into(),
                key: vec![2; 32],
            },
            Provider::AesGcm {
                name: "k24".into(),
                key: vec![2; 24],
            },
            Provider::Secretbox {
                name: "k3".into(),
                key: vec![3; 32],
            },
            Provider::Identity,
        ];
        let plaintext = br#"{"kind":"Secret","data":{"password":"aHVudGVyMg=="}}"#;
        for provider in &providers {
            let stored = provider
                .encrypt(b"/secrets/default/s", plaintext)
                .expect("encrypt");
            let prefix = provider.prefix().unwrap_or_default();
            assert!(stored.starts_with(prefix.as_bytes()), "{provider:?}");
            if !prefix.is_empty() {
                assert!(
                    !stored.windows(8).any(|w| w == b"aHVudGVy"),
                    "{provider:?} hides the data"
                );
            }
            let body = &stored[prefix.len()..];
            assert_eq!(
                provider
                    .decrypt(b"/secrets/default/s", body)
                    .expect("decrypt"),
                plaintext
            );
            // Two writes of one value differ (random IVs and nonces).
            if !prefix.is_empty() {
                assert_ne!(
                    stored,
                    provider
                        .encrypt(b"/secrets/default/s", plaintext)
                        .expect("again")
                );
            }
        }
        // AES-GCM binds the value to its key; a wrong key fails everywhere.
        let gcm = &providers[2];
        let stored = gcm
            .encrypt(b"/secrets/default/s", plaintext)
            .expect("encrypt");
        let body = &stored[gcm.prefix().unwrap_or_default().len()..];
        assert!(gcm.decrypt(b"/secrets/default/other", body).is_err());
        let other = Provider::Secretbox {
            name: "k3".into(),
            key: vec![4; 32],
        };
        let sealed = providers[4].encrypt(b"k", plaintext).expect("encrypt");
        assert!(other
            .decrypt(b"k", &sealed[other.prefix().unwrap_or_default().len()..])
            .is_err());
    }
}
