//! The API lookups volumes need, behind [`ObjectSource`] so tests need no API server:
//! [`ApiObjectSource`] GETs configMaps and secrets with a `kube::Client`, and
//! [`StaticObjectSource`] serves them from memory (and can be made to fail).

use std::collections::BTreeMap;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use parking_lot::Mutex;

use super::VolumeError;

/// The API lookups volumes need, narrowed so tests need no server.
#[async_trait]
pub trait ObjectSource: Send + Sync {
    /// The configMap `namespace/name`, `None` if it does not exist.
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ConfigMap>, VolumeError>;
    /// The secret `namespace/name`, `None` if it does not exist.
    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, VolumeError>;
}

/// [`ObjectSource`] over the API server: one GET per lookup (a 404 is `None`).
#[derive(Clone)]
pub struct ApiObjectSource {
    client: kube::Client,
}

impl ApiObjectSource {
    /// Looks objects up with `client`.
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

impl std::fmt::Debug for ApiObjectSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiObjectSource").finish_non_exhaustive()
    }
}

#[async_trait]
impl ObjectSource for ApiObjectSource {
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ConfigMap>, VolumeError> {
        kube::Api::<ConfigMap>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|err| VolumeError::Api {
                kind: "configmap",
                namespace: namespace.to_string(),
                name: name.to_string(),
                message: err.to_string(),
            })
    }

    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, VolumeError> {
        kube::Api::<Secret>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|err| VolumeError::Api {
                kind: "secret",
                namespace: namespace.to_string(),
                name: name.to_string(),
                message: err.to_string(),
            })
    }
}

/// [`ObjectSource`] backed by in-memory maps, for tests (here and in other crates). Objects are
/// keyed by their `metadata.namespace` (`default` when unset) and `metadata.name`; they can be
/// replaced between calls through `&self`, and every lookup can be made to fail.
#[derive(Debug, Default)]
pub struct StaticObjectSource {
    config_maps: Mutex<BTreeMap<(String, String), ConfigMap>>,
    secrets: Mutex<BTreeMap<(String, String), Secret>>,
    failure: Mutex<Option<String>>,
}

fn object_key(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> (String, String) {
    (
        meta.namespace
            .clone()
            .unwrap_or_else(|| "default".to_string()),
        meta.name.clone().unwrap_or_default(),
    )
}

impl StaticObjectSource {
    /// An empty source: every lookup answers `None`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The source with `config_map` added.
    pub fn with_config_map(self, config_map: ConfigMap) -> Self {
        self.insert_config_map(config_map);
        self
    }

    /// The source with `secret` added.
    pub fn with_secret(self, secret: Secret) -> Self {
        self.insert_secret(secret);
        self
    }

    /// Adds or replaces a configMap.
    pub fn insert_config_map(&self, config_map: ConfigMap) {
        let key = object_key(&config_map.metadata);
        self.config_maps.lock().insert(key, config_map);
    }

    /// Adds or replaces a secret.
    pub fn insert_secret(&self, secret: Secret) {
        let key = object_key(&secret.metadata);
        self.secrets.lock().insert(key, secret);
    }

    /// Removes a configMap, returning it.
    pub fn remove_config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap> {
        self.config_maps
            .lock()
            .remove(&(namespace.to_string(), name.to_string()))
    }

    /// Removes a secret, returning it.
    pub fn remove_secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        self.secrets
            .lock()
            .remove(&(namespace.to_string(), name.to_string()))
    }

    /// Makes every later lookup fail with [`VolumeError::Api`] carrying `message` (`None`: stop
    /// failing).
    pub fn fail_lookups(&self, message: Option<String>) {
        *self.failure.lock() = message;
    }

    fn check_failure(
        &self,
        kind: &'static str,
        namespace: &str,
        name: &str,
    ) -> Result<(), VolumeError> {
        match self.failure.lock().clone() {
            Some(message) => Err(VolumeError::Api {
                kind,
                namespace: namespace.to_string(),
                name: name.to_string(),
                message,
            }),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl ObjectSource for StaticObjectSource {
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ConfigMap>, VolumeError> {
        self.check_failure("configmap", namespace, name)?;
        Ok(self
            .config_maps
            .lock()
            .get(&(namespace.to_string(), name.to_string()))
            .cloned())
    }

    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, VolumeError> {
        self.check_failure("secret", namespace, name)?;
        Ok(self
            .secrets
            .lock()
            .get(&(namespace.to_string(), name.to_string()))
            .cloned())
    }
}
