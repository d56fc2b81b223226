//! Encryption at rest (`--encryption-provider-config`, upstream's `EncryptionConfiguration`
//! of `apiserver.config.k8s.io/v1`): for the resources it names, values are encrypted by the
//! first provider of their rule on their way to the store and decrypted by whichever provider
//! wrote them on their way back ([`EncryptingStore`], below the watch cache and every reader).
//!
//! A rule names resources as upstream does: `secrets` (core), `deployments.apps`, `*.apps`
//! (a group), `*.` (the core group), `*.*` (everything); the first rule naming a resource is
//! its rule. Values written before encryption are read when the rule lists `identity`.
//! Rotating a key: put the new key first, then rewrite every object (`kubectl get secrets -A
//! -o json | kubectl replace -f -`) — each write encrypts with the first provider.

pub mod providers;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use ferry_store::{
    KeyValue, LeaseId, Op, OpResponse, RangeRequest, RangeResponse, Revision, Store, StoreError,
    Txn, TxnResponse, WatchRequest, WatchStream,
};
use futures::StreamExt;
use serde::Deserialize;

pub use providers::Provider;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    resources: Vec<RuleFile>,
}

#[derive(Deserialize)]
struct RuleFile {
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    providers: Vec<ProviderFile>,
}

#[derive(Deserialize, Default)]
struct ProviderFile {
    aescbc: Option<KeysFile>,
    aesgcm: Option<KeysFile>,
    secretbox: Option<KeysFile>,
    identity: Option<serde_json::Value>,
    kms: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct KeysFile {
    #[serde(default)]
    keys: Vec<KeyFile>,
}

#[derive(Deserialize)]
struct KeyFile {
    name: String,
    secret: String,
}

/// Which resources a rule is for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resources {
    /// One resource (plural) of a group.
    One { group: String, plural: String },
    /// Every resource of a group (`""`: core).
    Group(String),
    /// Everything.
    All,
}

impl Resources {
    fn parse(text: &str) -> Resources {
        match text.split_once('.') {
            Some(("*", "*")) => Resources::All,
            Some(("*", group)) => Resources::Group(group.to_string()),
            Some((plural, group)) => Resources::One {
                group: group.to_string(),
                plural: plural.to_string(),
            },
            None => Resources::One {
                group: String::new(),
                plural: text.to_string(),
            },
        }
    }

    /// Whether the rule covers the resource stored under `/<plural>/`.
    fn covers(&self, plural: &str) -> bool {
        let groups = || {
            ferry_api::registry::served()
                .filter(move |r| r.plural == plural)
                .map(|r| r.group)
        };
        match self {
            Resources::All => true,
            Resources::Group(group) => groups().any(|g| g == group),
            Resources::One { group, plural: p } => p == plural && groups().any(|g| g == group),
        }
    }
}

/// One rule: its resources and providers (the first encrypts).
#[derive(Debug, Clone)]
struct Rule {
    resources: Vec<Resources>,
    providers: Vec<Provider>,
}

/// What `--encryption-provider-config` says.
#[derive(Debug, Clone, Default)]
pub struct EncryptionConfig {
    rules: Vec<Rule>,
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

fn keys(kind: &str, keys: KeysFile, lengths: &[usize]) -> Result<Vec<Provider>, ConfigError> {
    if keys.keys.is_empty() {
        return Err(ConfigError(format!("{kind}: keys: Required value")));
    }
    keys.keys
        .into_iter()
        .map(|k| {
            let secret = base64::engine::general_purpose::STANDARD
                .decode(k.secret.trim())
                .map_err(|e| ConfigError(format!("{kind} key {:?}: secret is not base64: {e}", k.name)))?;
            if !lengths.contains(&secret.len()) {
                return Err(ConfigError(format!(
                    "{kind} key {:?}: secret is not of the expected length, got {}, expected one of {lengths:?}",
                    k.name,
                    secret.len()
                )));
            }
            Ok(match kind {
                "aescbc" => Provider::AesCbc { name: k.name, key: secret },
                "aesgcm" => Provider::AesGcm { name: k.name, key: secret },
                _ => Provider::Secretbox { name: k.name, key: secret },
            })
        })
        .collect()
}

impl EncryptionConfig {
    /// Reads the configuration file at `path`.
    pub fn load(path: &Path) -> Result<EncryptionConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("reading {}: {e}", path.display())))?;
        EncryptionConfig::parse(&text)
    }

    /// Parses a configuration (YAML or JSON).
    pub fn parse(text: &str) -> Result<EncryptionConfig, ConfigError> {
        let file: ConfigFile =
            serde_yaml_ng::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        if file.kind != "EncryptionConfiguration"
            || !file.api_version.starts_with("apiserver.config.k8s.io/")
        {
            return Err(ConfigError(format!(
                "expected kind EncryptionConfiguration of apiserver.config.k8s.io/v1, got kind {:?} of {:?}",
                file.kind, file.api_version
            )));
        }
        let mut rules = Vec::new();
        for (index, rule) in file.resources.into_iter().enumerate() {
            if rule.resources.is_empty() || rule.providers.is_empty() {
                return Err(ConfigError(format!(
                    "resources[{index}]: both resources and providers are required"
                )));
            }
            let mut providers = Vec::new();
            for provider in rule.providers {
                if provider.kms.is_some() {
                    return Err(ConfigError(format!(
                        "resources[{index}]: the kms provider is not supported by ferry"
                    )));
                }
                if let Some(k) = provider.aescbc {
                    providers.extend(keys("aescbc", k, &[16, 24, 32])?);
                } else if let Some(k) = provider.aesgcm {
                    providers.extend(keys("aesgcm", k, &[16, 24, 32])?);
                } else if let Some(k) = provider.secretbox {
                    providers.extend(keys("secretbox", k, &[32])?);
                } else if provider.identity.is_some() {
                    providers.push(Provider::Identity);
                } else {
                    return Err(ConfigError(format!(
                        "resources[{index}]: a provider names no kind"
                    )));
                }
            }
            rules.push(Rule {
                resources: rule.resources.iter().map(|r| Resources::parse(r)).collect(),
                providers,
            });
        }
        Ok(EncryptionConfig { rules })
    }

    /// The providers of the resource stored under `key`, if a rule covers it.
    fn providers_for(&self, key: &[u8]) -> Option<&[Provider]> {
        let text = std::str::from_utf8(key).ok()?;
        let plural = text.trim_start_matches('/').split('/').next()?;
        self.rules
            .iter()
            .find(|rule| rule.resources.iter().any(|r| r.covers(plural)))
            .map(|rule| rule.providers.as_slice())
    }

    /// `value` as it is written at `key`.
    fn encrypt(&self, key: &[u8], value: &Bytes) -> Result<Bytes, StoreError> {
        match self.providers_for(key).and_then(|p| p.first()) {
            None | Some(Provider::Identity) => Ok(value.clone()),
            Some(provider) => provider
                .encrypt(key, value)
                .map(Bytes::from)
                .map_err(StoreError::Transform),
        }
    }

    /// The plaintext of `stored` at `key`.
    fn decrypt(&self, key: &[u8], stored: &Bytes) -> Result<Bytes, StoreError> {
        let Some(providers) = self.providers_for(key) else {
            return Ok(stored.clone());
        };
        if stored.is_empty() {
            return Ok(stored.clone());
        }
        for provider in providers {
            match provider.prefix() {
                Some(prefix) => {
                    if let Some(body) = stored.strip_prefix(prefix.as_bytes()) {
                        let plain = provider.decrypt(key, body).map_err(|e| {
                            StoreError::Transform(format!(
                                "failed to decrypt {}: {e}",
                                String::from_utf8_lossy(key)
                            ))
                        })?;
                        return Ok(Bytes::from(plain));
                    }
                }
                None if !stored.starts_with(b"k8s:enc:") => return Ok(stored.clone()),
                None => {}
            }
        }
        Err(StoreError::Transform(format!(
            "no matching prefix found for {}: the value was written with a key this server does not have",
            String::from_utf8_lossy(key)
        )))
    }

    fn decrypt_kv(&self, kv: &mut KeyValue) -> Result<(), StoreError> {
        kv.value = self.decrypt(&kv.key, &kv.value)?;
        Ok(())
    }

    fn decrypt_range(&self, response: &mut RangeResponse) -> Result<(), StoreError> {
        response
            .kvs
            .iter_mut()
            .try_for_each(|kv| self.decrypt_kv(kv))
    }
}

/// A store that encrypts and decrypts values as an [`EncryptionConfig`] says.
pub struct EncryptingStore {
    inner: Arc<dyn Store>,
    config: Arc<EncryptionConfig>,
}

impl EncryptingStore {
    /// `inner`, with `config` applied to what passes through.
    pub fn new(inner: Arc<dyn Store>, config: EncryptionConfig) -> Arc<EncryptingStore> {
        Arc::new(EncryptingStore {
            inner,
            config: Arc::new(config),
        })
    }

    fn encrypt_ops(&self, ops: &mut [Op]) -> Result<(), StoreError> {
        for op in ops {
            if let Op::Put { key, value, .. } = op {
                *value = self.config.encrypt(key, value)?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Store for EncryptingStore {
    async fn range(&self, request: RangeRequest) -> ferry_store::Result<RangeResponse> {
        let mut response = self.inner.range(request).await?;
        self.config.decrypt_range(&mut response)?;
        Ok(response)
    }

    async fn txn(&self, mut txn: Txn) -> ferry_store::Result<TxnResponse> {
        self.encrypt_ops(&mut txn.success)?;
        self.encrypt_ops(&mut txn.failure)?;
        let mut response = self.inner.txn(txn).await?;
        for op in &mut response.responses {
            match op {
                OpResponse::Put { prev_kv } => {
                    if let Some(kv) = prev_kv {
                        self.config.decrypt_kv(kv)?;
                    }
                }
                OpResponse::Delete { prev_kvs } => {
                    prev_kvs
                        .iter_mut()
                        .try_for_each(|kv| self.config.decrypt_kv(kv))?;
                }
                OpResponse::Range(range) => self.config.decrypt_range(range)?,
            }
        }
        Ok(response)
    }

    async fn watch(&self, request: WatchRequest) -> ferry_store::Result<WatchStream> {
        let config = self.config.clone();
        let stream = self.inner.watch(request).await?;
        Ok(Box::pin(stream.map(move |message| {
            let mut message = message?;
            for event in &mut message.events {
                if event.kind == ferry_store::EventKind::Put {
                    config.decrypt_kv(&mut event.kv)?;
                }
                if let Some(prev) = &mut event.prev_kv {
                    config.decrypt_kv(prev)?;
                }
            }
            Ok(message)
        })))
    }

    async fn is_stale(&self, key: &[u8]) -> ferry_store::Result<bool> {
        let Some(primary) = self.config.providers_for(key).and_then(|p| p.first()) else {
            return self.inner.is_stale(key).await;
        };
        let Some(stored) = self.inner.get(key).await? else {
            return Ok(false);
        };
        Ok(match primary.prefix() {
            Some(prefix) => !stored.value.starts_with(prefix.as_bytes()),
            None => stored.value.starts_with(b"k8s:enc:"),
        })
    }

    async fn compact(&self, revision: Revision) -> ferry_store::Result<()> {
        self.inner.compact(revision).await
    }

    async fn current_revision(&self) -> ferry_store::Result<Revision> {
        self.inner.current_revision().await
    }

    async fn lease_grant(&self, ttl: Duration) -> ferry_store::Result<(LeaseId, Duration)> {
        self.inner.lease_grant(ttl).await
    }

    async fn lease_keep_alive(&self, lease: LeaseId) -> ferry_store::Result<Duration> {
        self.inner.lease_keep_alive(lease).await
    }

    async fn lease_revoke(&self, lease: LeaseId) -> ferry_store::Result<()> {
        self.inner.lease_revoke(lease).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_store::embedded::{Config, EmbeddedStore};

    const CONFIG: &str = "apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets, '*.apps']
  providers:
  - aesgcm:
      keys: [{name: new, secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=}]
  - aescbc:
      keys: [{name: old, secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}]
  - identity: {}
";

    #[tokio::test]
    async fn values_are_encrypted_at_rest_and_read_back_through_any_listed_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let raw: Arc<dyn Store> = Arc::new(
            EmbeddedStore::open(Config::new(dir.path()))
                .await
                .expect("store"),
        );
        let config = EncryptionConfig::parse(CONFIG).expect("config");
        let store = EncryptingStore::new(raw.clone(), config.clone());
        let secret = Bytes::from_static(br#"{"data":{"password":"aHVudGVyMg=="}}"#);
        store
            .put(Bytes::from_static(b"/secrets/default/s"), secret.clone())
            .await
            .expect("put");
        store
            .put(
                Bytes::from_static(b"/deployments/default/d"),
                Bytes::from_static(b"{}"),
            )
            .await
            .expect("put");
        store
            .put(
                Bytes::from_static(b"/configmaps/default/c"),
                Bytes::from_static(b"{}"),
            )
            .await
            .expect("put");

        let at_rest = raw
            .get(b"/secrets/default/s")
            .await
            .expect("get")
            .expect("kv")
            .value;
        assert!(at_rest.starts_with(b"k8s:enc:aesgcm:v1:new:"));
        assert!(!at_rest.windows(8).any(|w| w == b"aHVudGVy"));
        assert!(raw
            .get(b"/deployments/default/d")
            .await
            .expect("get")
            .expect("kv")
            .value
            .starts_with(b"k8s:enc:aesgcm:v1:new:"));
        assert_eq!(
            raw.get(b"/configmaps/default/c")
                .await
                .expect("get")
                .expect("kv")
                .value,
            "{}",
            "not named: as it is"
        );
        assert_eq!(
            store
                .get(b"/secrets/default/s")
                .await
                .expect("get")
                .expect("kv")
                .value,
            secret
        );

        // Written by the old key, or before encryption: still read.
        let old = Provider::AesCbc {
            name: "old".into(),
            key: b"0123456789abcdef0123456789abcdef".to_vec(),
        };
        raw.put(
            Bytes::from_static(b"/secrets/default/old"),
            Bytes::from(
                old.encrypt(b"/secrets/default/old", b"{\"v\":1}")
                    .expect("encrypt"),
            ),
        )
        .await
        .expect("put");
        raw.put(
            Bytes::from_static(b"/secrets/default/plain"),
            Bytes::from_static(b"{\"v\":2}"),
        )
        .await
        .expect("put");
        let listed = store
            .range(RangeRequest::new(ferry_store::KeyRange::prefix(
                Bytes::from_static(b"/secrets/"),
            )))
            .await
            .expect("range");
        let values: Vec<&[u8]> = listed.kvs.iter().map(|kv| kv.value.as_ref()).collect();
        assert_eq!(values, [&b"{\"v\":1}"[..], b"{\"v\":2}", &secret[..]]);
        assert!(
            store
                .is_stale(b"/secrets/default/old")
                .await
                .expect("stale"),
            "an old key"
        );
        assert!(
            store
                .is_stale(b"/secrets/default/plain")
                .await
                .expect("stale"),
            "not encrypted"
        );

        // A key the server does not have: an error, not garbage.
        let stranger = Provider::Secretbox {
            name: "lost".into(),
            key: vec![9; 32],
        };
        raw.put(
            Bytes::from_static(b"/secrets/default/lost"),
            Bytes::from(stranger.encrypt(b"k", b"{}").expect("encrypt")),
        )
        .await
        .expect("put");
        let err = store
            .get(b"/secrets/default/lost")
            .await
            .expect_err("unknown key");
        assert!(
            err.to_string().contains("no matching prefix found"),
            "{err}"
        );

        // Watches see plaintext.
        let mut watch = store
            .watch(WatchRequest::new(ferry_store::KeyRange::prefix(
                Bytes::from_static(b"/secrets/"),
            )))
            .await
            .expect("watch");
        store
            .put(
                Bytes::from_static(b"/secrets/default/w"),
                Bytes::from_static(b"{\"w\":1}"),
            )
            .await
            .expect("put");
        let event = loop {
            let message = watch.next().await.expect("message").expect("ok");
            if let Some(event) = message.events.into_iter().next() {
                break event;
            }
        };
        assert_eq!(event.kv.value, Bytes::from_static(b"{\"w\":1}"));
    }

    #[test]
    fn bad_configurations_say_why() {
        let short = CONFIG.replace("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "AAEC");
        let err = EncryptionConfig::parse(&short)
            .expect_err("short key")
            .to_string();
        assert!(
            err.contains("secret is not of the expected length, got 3"),
            "{err}"
        );
        let kms = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers: [{kms: {name: x}}]\n";
        assert!(EncryptionConfig::parse(kms).is_err());
    }
}
