//! Where objects live, for every resource alike: the store (metered for `/metrics`), the
//! watch cache in front of it, and the keys objects are kept under — `/<resource>/<namespace>/<name>`
//! (`/<resource>/<name>` when cluster-scoped), without their `resourceVersion`, which is the
//! store's `mod_revision` and set on every read, as upstream's etcd3 storage does.
//!
//! Nothing here knows a kind: what a kind changes on the way in and out is its
//! [`crate::registry::Strategy`]'s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferry_api::registry::ResourceInfo;
use ferry_store::{LeaseId, Store, StoreError};
use prometheus_client::registry::Registry;

use crate::cache::WatchCache;
use crate::reflector::{LazyObjects, Objects};
use crate::status::ApiError;
use crate::storemetrics::MeteredStore;

/// The store, its watch cache and the leases objects with a time to live attach to.
pub struct Storage {
    /// The (metered) store.
    pub store: Arc<dyn Store>,
    /// Serves client watches from one store watch per resource.
    pub watch_cache: WatchCache,
    /// The lease objects with a TTL attach to, and when it was granted.
    ttl_lease: tokio::sync::Mutex<Option<(LeaseId, Instant)>>,
    /// The namespaces, Services and EndpointSlices, followed from the first time they are read:
    /// where webhooks, conversion webhooks and aggregated API servers are reached.
    cluster: LazyObjects,
}

impl Storage {
    /// Storage over `store`, its latencies measured into `metrics` (for `/metrics`).
    pub fn with_metrics(store: Arc<dyn Store>, metrics: &mut Registry) -> Storage {
        let store: Arc<dyn Store> = MeteredStore::new(store, metrics);
        Storage {
            watch_cache: WatchCache::new(store.clone()),
            store,
            ttl_lease: tokio::sync::Mutex::new(None),
            cluster: LazyObjects::new(&["/namespaces/", "/services/", "/endpointslices/"]),
        }
    }

    /// The namespaces, Services and EndpointSlices (see [`Objects`]), listed and watched on
    /// first use.
    pub async fn cluster(&self) -> Result<&Arc<Objects>, StoreError> {
        self.cluster.get(&self.store).await
    }

    /// Storage over `store`, measured into a registry nobody reads (tests).
    pub fn new(store: Arc<dyn Store>) -> Storage {
        Storage::with_metrics(store, &mut Registry::default())
    }

    /// The lease an object that lives `ttl` attaches to: one lease per minute is shared, lasting
    /// a minute longer than `ttl` (upstream's lease manager, reused for `--event-ttl`).
    pub async fn lease_for(&self, ttl: Duration) -> Result<LeaseId, ApiError> {
        let mut current = self.ttl_lease.lock().await;
        if let Some((id, granted)) = *current {
            if granted.elapsed() < Duration::from_secs(60) {
                return Ok(id);
            }
        }
        let (id, _) = self
            .store
            .lease_grant(ttl + Duration::from_secs(60))
            .await?;
        *current = Some((id, Instant::now()));
        Ok(id)
    }
}

/// Where a resource's keys start: its plural, under its group for a custom resource (as
/// upstream's `/registry/<group>/<plural>`, so no CRD's plural meets a built-in one). Resources
/// of one kind in two groups (core and events.k8s.io Events) share their plural's keys, as
/// upstream stores them once; so do a custom resource's versions.
fn root(info: &ResourceInfo) -> String {
    if info.custom {
        format!("/{}/{}", info.group, info.plural)
    } else {
        format!("/{}", info.plural)
    }
}

/// The key of an object.
pub fn key(info: &ResourceInfo, namespace: &str, name: &str) -> Bytes {
    let root = root(info);
    if info.namespaced {
        Bytes::from(format!("{root}/{namespace}/{name}"))
    } else {
        Bytes::from(format!("{root}/{name}"))
    }
}

/// The core/v1 object `plural` `namespace/name` as stored (JSON), for the server's own
/// lookups beside the REST verbs (admission plugins, the token issuer); `None` if absent.
pub async fn read_core(
    store: &dyn Store,
    plural: &str,
    namespace: &str,
    name: &str,
) -> Result<Option<serde_json::Value>, ApiError> {
    read(store, ("", "v1", plural), namespace, name).await
}

/// The object of `resource` (group, version, plural) `namespace/name` as stored (JSON);
/// `None` if absent.
pub async fn read(
    store: &dyn Store,
    (group, version, plural): (&str, &str, &str),
    namespace: &str,
    name: &str,
) -> Result<Option<serde_json::Value>, ApiError> {
    let info = ferry_api::registry::find(group, version, plural)
        .ok_or_else(|| ApiError::internal(format!("{plural} not registered")))?;
    let Some(kv) = store.get(&key(info, namespace, name)).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&kv.value)
        .map(Some)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// The key prefix of a collection (one namespace, or all).
pub fn prefix(info: &ResourceInfo, namespace: &str) -> Bytes {
    let root = root(info);
    if info.namespaced && !namespace.is_empty() {
        Bytes::from(format!("{root}/{namespace}/"))
    } else {
        Bytes::from(format!("{root}/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_etcd3_layout() {
        let pods = ferry_api::registry::find("", "v1", "pods").expect("pods");
        let nodes = ferry_api::registry::find("", "v1", "nodes").expect("nodes");
        assert_eq!(key(pods, "default", "web"), "/pods/default/web");
        assert_eq!(key(nodes, "", "n1"), "/nodes/n1");
        assert_eq!(prefix(pods, "default"), "/pods/default/");
        assert_eq!(prefix(pods, ""), "/pods/");
        assert_eq!(prefix(nodes, "ignored"), "/nodes/");
    }
}
