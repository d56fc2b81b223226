//! How many objects of each resource are stored (upstream's storage object counts, which its
//! `apiserver_storage_objects` metric and API Priority and Fairness's LIST estimates read):
//! counted from the store by key prefix when first asked for and again when a count is over a
//! minute old, in the background, so asking never waits.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_store::{KeyRange, RangeRequest};
use parking_lot::Mutex;

use crate::flowcontrol::ObjectCounts;
use crate::rest::Rest;
use crate::storage::prefix;

/// How long a count is used before it is counted again (upstream counts every minute).
const FRESH: Duration = Duration::from_secs(60);

/// Counts by group and resource, kept fresh from the store.
pub struct StoredCounts {
    rest: Arc<Rest>,
    counts: Mutex<HashMap<(String, String), (Instant, u64)>>,
    counting: Mutex<HashSet<(String, String)>>,
}

impl StoredCounts {
    /// Counts of the resources `rest` serves, from its storage.
    pub fn new(rest: Arc<Rest>) -> Arc<StoredCounts> {
        Arc::new(StoredCounts {
            rest,
            counts: Mutex::new(HashMap::new()),
            counting: Mutex::new(HashSet::new()),
        })
    }

    /// Counts `group`'s `resource` in the background (once at a time per resource).
    fn recount(self: &Arc<Self>, group: &str, resource: &str) {
        let key = (group.to_string(), resource.to_string());
        if !self.counting.lock().insert(key.clone()) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.counting.lock().remove(&key);
            return;
        };
        let counts = self.clone();
        runtime.spawn(async move {
            let found = counts
                .rest
                .registry
                .resolve_any_version(&key.0, &key.1)
                .map(|resource| prefix(resource.info, ""));
            if let Some(prefix) = found {
                let mut request = RangeRequest::new(KeyRange::prefix(prefix));
                request.count_only = true;
                match counts.rest.storage.store.range(request).await {
                    Ok(answer) => {
                        let count = u64::try_from(answer.count).unwrap_or(0);
                        counts
                            .counts
                            .lock()
                            .insert(key.clone(), (Instant::now(), count));
                    }
                    Err(error) => tracing::debug!(%error, "counting stored objects"),
                }
            }
            counts.counting.lock().remove(&key);
        });
    }
}

impl ObjectCounts for Arc<StoredCounts> {
    fn count(&self, group: &str, resource: &str) -> Option<u64> {
        let known = self
            .counts
            .lock()
            .get(&(group.to_string(), resource.to_string()))
            .copied();
        if known.is_none_or(|(at, _)| at.elapsed() > FRESH) {
            self.recount(group, resource);
        }
        known.map(|(_, count)| count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Chain;
    use crate::registry::Registry;
    use crate::storage::Storage;
    use ferry_store::embedded::{Config, EmbeddedStore};
    use ferry_store::Store;

    #[tokio::test]
    async fn counts_come_from_the_store_in_the_background() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(
            EmbeddedStore::open(Config::new(dir.path()))
                .await
                .expect("open"),
        );
        for name in ["a", "b", "c"] {
            let key = format!("/configmaps/default/{name}");
            store
                .create(key.into(), bytes::Bytes::from_static(b"{}"), 0)
                .await
                .expect("create")
                .expect("created");
        }
        let rest = Arc::new(Rest {
            storage: Storage::new(store),
            admission: Chain::from_names::<&str>(&[]).expect("empty chain"),
            registry: Registry::builtin(),
            auth: None,
        });
        let counts = StoredCounts::new(rest);
        // Not counted yet: nothing, and a count starts.
        assert_eq!(counts.count("", "configmaps"), None);
        let mut counted = None;
        for _ in 0..100 {
            tokio::task::yield_now().await;
            counted = counts.count("", "configmaps");
            if counted.is_some() {
                break;
            }
        }
        assert_eq!(counted, Some(3));
        assert_eq!(counts.count("", "nosuchthings"), None);
    }
}
