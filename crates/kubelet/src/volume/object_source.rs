//! The API lookups volumes need, behind [`ObjectSource`] so tests need no API server:
//! [`ApiObjectSource`] GETs configMaps and secrets and asks for service-account tokens with a
//! `kube::Client` (keeping each token until 80% of its life is over, as upstream's token
//! manager does), and [`StaticObjectSource`] serves them from memory (and can be made to fail).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolume, PersistentVolumeClaim, Secret, ServiceAccount,
};
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::api::storage::v1::{CSIDriver, VolumeAttachment};
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
    /// A token of the pod's service account, bound to the pod (a projected
    /// `serviceAccountToken` source).
    async fn service_account_token(&self, request: &TokenFor) -> Result<String, VolumeError>;
    /// The RuntimeClass `name`, `None` if it does not exist (its `handler` is what the
    /// runtime is asked for).
    async fn runtime_class(&self, name: &str) -> Result<Option<RuntimeClass>, VolumeError>;
    /// The claim `namespace/name`, `None` if it does not exist.
    async fn persistent_volume_claim(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<PersistentVolumeClaim>, VolumeError>;
    /// The volume `name`, `None` if it does not exist.
    async fn persistent_volume(&self, name: &str) -> Result<Option<PersistentVolume>, VolumeError>;
    /// The CSIDriver `name` (whether its volumes need attaching), `None` if it does not exist.
    async fn csi_driver(&self, name: &str) -> Result<Option<CSIDriver>, VolumeError>;
    /// The VolumeAttachment `name`, `None` if it does not exist.
    async fn volume_attachment(&self, name: &str) -> Result<Option<VolumeAttachment>, VolumeError>;
    /// Drops what is kept for pods other than `pod_uids` (the pods still on the node).
    fn forget_other_pods(&self, _pod_uids: &[String]) {}
}

/// What a projected token is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenFor {
    /// The pod's namespace.
    pub namespace: String,
    /// Its service account.
    pub service_account: String,
    /// The audience (`""`: the API server's).
    pub audience: String,
    /// Requested lifetime in seconds.
    pub expiration_seconds: i64,
    /// The pod the token is bound to.
    pub pod_name: String,
    /// Its uid.
    pub pod_uid: String,
}

/// A token and its lifetime.
#[derive(Debug, Clone)]
struct CachedToken {
    token: String,
    issued: Timestamp,
    expires: Timestamp,
}

/// Whether a token issued at `issued` and expiring at `expires` is due for renewal at `now`
/// (upstream's token manager `requiresRefresh`): once 80% of its life is over, or a day after
/// it was issued, whichever comes first.
pub fn token_needs_refresh(issued: Timestamp, expires: Timestamp, now: Timestamp) -> bool {
    let life = expires.duration_since(issued);
    now >= issued + life.mul_f64(0.8) || now >= issued + jiff::SignedDuration::from_hours(24)
}

/// [`ObjectSource`] over the API server: one GET per lookup (a 404 is `None`).
#[derive(Clone)]
pub struct ApiObjectSource {
    client: kube::Client,
    tokens: Arc<Mutex<BTreeMap<TokenFor, CachedToken>>>,
}

impl ApiObjectSource {
    /// Looks objects up with `client`.
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            tokens: Arc::default(),
        }
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

    async fn runtime_class(&self, name: &str) -> Result<Option<RuntimeClass>, VolumeError> {
        kube::Api::<RuntimeClass>::all(self.client.clone())
            .get_opt(name)
            .await
            .map_err(|err| VolumeError::Api {
                kind: "runtimeclass",
                namespace: String::new(),
                name: name.to_string(),
                message: err.to_string(),
            })
    }

    async fn persistent_volume_claim(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<PersistentVolumeClaim>, VolumeError> {
        kube::Api::<PersistentVolumeClaim>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|err| VolumeError::Api {
                kind: "persistentvolumeclaim",
                namespace: namespace.to_string(),
                name: name.to_string(),
                message: err.to_string(),
            })
    }

    async fn persistent_volume(&self, name: &str) -> Result<Option<PersistentVolume>, VolumeError> {
        kube::Api::<PersistentVolume>::all(self.client.clone())
            .get_opt(name)
            .await
            .map_err(|err| VolumeError::Api {
                kind: "persistentvolume",
                namespace: String::new(),
                name: name.to_string(),
                message: err.to_string(),
            })
    }

    async fn csi_driver(&self, name: &str) -> Result<Option<CSIDriver>, VolumeError> {
        cluster_get(&self.client, "csidriver", name).await
    }

    async fn volume_attachment(&self, name: &str) -> Result<Option<VolumeAttachment>, VolumeError> {
        cluster_get(&self.client, "volumeattachment", name).await
    }

    fn forget_other_pods(&self, pod_uids: &[String]) {
        self.tokens
            .lock()
            .retain(|key, _| pod_uids.contains(&key.pod_uid));
    }

    async fn service_account_token(&self, request: &TokenFor) -> Result<String, VolumeError> {
        let now = Timestamp::now();
        if let Some(cached) = self.tokens.lock().get(request) {
            if !token_needs_refresh(cached.issued, cached.expires, now) {
                return Ok(cached.token.clone());
            }
        }
        let body = TokenRequest {
            spec: TokenRequestSpec {
                audiences: if request.audience.is_empty() {
                    Vec::new()
                } else {
                    vec![request.audience.clone()]
                },
                expiration_seconds: Some(request.expiration_seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: Some(request.pod_name.clone()),
                    uid: Some(request.pod_uid.clone()),
                }),
            },
            ..Default::default()
        };
        let api_error = |message: String| VolumeError::Api {
            kind: "serviceaccount token",
            namespace: request.namespace.clone(),
            name: request.service_account.clone(),
            message,
        };
        let answer =
            kube::Api::<ServiceAccount>::namespaced(self.client.clone(), &request.namespace)
                .create_token_request(&request.service_account, &Default::default(), &body)
                .await
                .map_err(|err| api_error(err.to_string()))?;
        let status = answer
            .status
            .ok_or_else(|| api_error("the token request has no status".into()))?;
        let expires = status.expiration_timestamp.0;
        self.tokens.lock().insert(
            request.clone(),
            CachedToken {
                token: status.token.clone(),
                issued: now,
                expires,
            },
        );
        Ok(status.token)
    }
}

/// GETs the cluster-scoped object `name` (`kind` names it in errors); a 404 is `None`.
async fn cluster_get<K>(
    client: &kube::Client,
    kind: &'static str,
    name: &str,
) -> Result<Option<K>, VolumeError>
where
    K: kube::Resource<Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    kube::Api::<K>::all(client.clone())
        .get_opt(name)
        .await
        .map_err(|err| VolumeError::Api {
            kind,
            namespace: String::new(),
            name: name.to_string(),
            message: err.to_string(),
        })
}

/// [`ObjectSource`] backed by in-memory maps, for tests (here and in other crates). Objects are
/// keyed by their `metadata.namespace` (`default` when unset) and `metadata.name`; they can be
/// replaced between calls through `&self`, and every lookup can be made to fail.
#[derive(Debug, Default)]
pub struct StaticObjectSource {
    config_maps: Mutex<BTreeMap<(String, String), ConfigMap>>,
    secrets: Mutex<BTreeMap<(String, String), Secret>>,
    failure: Mutex<Option<String>>,
    /// Every token asked for, in order.
    pub token_requests: Mutex<Vec<TokenFor>>,
    runtime_classes: Mutex<BTreeMap<String, RuntimeClass>>,
    claims: Mutex<BTreeMap<(String, String), PersistentVolumeClaim>>,
    volumes: Mutex<BTreeMap<String, PersistentVolume>>,
    csi_drivers: Mutex<BTreeMap<String, CSIDriver>>,
    attachments: Mutex<BTreeMap<String, VolumeAttachment>>,
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

    /// Adds or replaces a RuntimeClass.
    pub fn insert_runtime_class(&self, class: RuntimeClass) {
        let name = class.metadata.name.clone().unwrap_or_default();
        self.runtime_classes.lock().insert(name, class);
    }

    /// Adds or replaces a claim.
    pub fn insert_claim(&self, claim: PersistentVolumeClaim) {
        let key = object_key(&claim.metadata);
        self.claims.lock().insert(key, claim);
    }

    /// Adds or replaces a volume.
    pub fn insert_volume(&self, volume: PersistentVolume) {
        let name = volume.metadata.name.clone().unwrap_or_default();
        self.volumes.lock().insert(name, volume);
    }

    /// Adds or replaces a CSIDriver.
    pub fn insert_csi_driver(&self, driver: CSIDriver) {
        let name = driver.metadata.name.clone().unwrap_or_default();
        self.csi_drivers.lock().insert(name, driver);
    }

    /// Adds or replaces a VolumeAttachment.
    pub fn insert_volume_attachment(&self, attachment: VolumeAttachment) {
        let name = attachment.metadata.name.clone().unwrap_or_default();
        self.attachments.lock().insert(name, attachment);
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

    async fn runtime_class(&self, name: &str) -> Result<Option<RuntimeClass>, VolumeError> {
        self.check_failure("runtimeclass", "", name)?;
        Ok(self.runtime_classes.lock().get(name).cloned())
    }

    async fn persistent_volume_claim(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<PersistentVolumeClaim>, VolumeError> {
        self.check_failure("persistentvolumeclaim", namespace, name)?;
        Ok(self
            .claims
            .lock()
            .get(&(namespace.to_string(), name.to_string()))
            .cloned())
    }

    async fn persistent_volume(&self, name: &str) -> Result<Option<PersistentVolume>, VolumeError> {
        self.check_failure("persistentvolume", "", name)?;
        Ok(self.volumes.lock().get(name).cloned())
    }

    async fn csi_driver(&self, name: &str) -> Result<Option<CSIDriver>, VolumeError> {
        self.check_failure("csidriver", "", name)?;
        Ok(self.csi_drivers.lock().get(name).cloned())
    }

    async fn volume_attachment(&self, name: &str) -> Result<Option<VolumeAttachment>, VolumeError> {
        self.check_failure("volumeattachment", "", name)?;
        Ok(self.attachments.lock().get(name).cloned())
    }

    /// `token:<namespace>/<service account>@<audience>`, recorded in `token_requests`.
    async fn service_account_token(&self, request: &TokenFor) -> Result<String, VolumeError> {
        self.check_failure(
            "serviceaccount token",
            &request.namespace,
            &request.service_account,
        )?;
        self.token_requests.lock().push(request.clone());
        Ok(format!(
            "token:{}/{}@{}",
            request.namespace, request.service_account, request.audience
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_renewed_after_80_percent_of_their_life() {
        let issued: Timestamp = "2026-01-01T00:00:00Z".parse().expect("time");
        let hour = jiff::SignedDuration::from_hours(1);
        let expires = issued + hour;
        let at = |minutes: i64| issued + jiff::SignedDuration::from_mins(minutes);
        assert!(!token_needs_refresh(issued, expires, at(0)));
        assert!(!token_needs_refresh(issued, expires, at(47)));
        assert!(token_needs_refresh(issued, expires, at(48)));
        assert!(token_needs_refresh(issued, expires, at(61)));
        // A year-long token is renewed after a day.
        let long = issued + jiff::SignedDuration::from_hours(24 * 365);
        assert!(!token_needs_refresh(issued, long, at(60 * 23)));
        assert!(token_needs_refresh(issued, long, at(60 * 24)));
    }
}
