//! Shared informers, as client-go's: one list+watch per resource type feeding an in-memory cache
//! that every controller reads, and event handlers that turn changes into work-queue keys.
//! Handlers see the old and the new object (`None` for "absent"), so a controller can tell an
//! add from an update from a delete — the ReplicaSet expectations need it.
//!
//! A relist (after a watch expired with 410 Gone) replaces the cache and reports objects that
//! vanished meanwhile as deletions, so no controller misses a delete.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt as _;
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt as _;
use kube::{Api, Resource, ResourceExt as _};
use parking_lot::RwLock;
use serde::de::DeserializeOwned;

/// `(namespace, name)`; the namespace is empty for cluster-scoped objects.
pub type Key = (String, String);

/// Called with `(old, new)` after the cache changed: `(None, Some)` add, `(Some, Some)` update,
/// `(Some, None)` delete. Must be cheap: it runs on the informer's task.
pub type Handler<K> = Box<dyn Fn(Option<&Arc<K>>, Option<&Arc<K>>) + Send + Sync>;

/// A secondary index: the values an object is filed under (e.g. a pod's node name).
pub type IndexFn<K> = fn(&K) -> Option<String>;

struct Cache<K> {
    objects: BTreeMap<Key, Arc<K>>,
    index: HashMap<String, HashSet<Key>>,
}

/// One resource type's cache and handlers.
pub struct Informer<K: 'static> {
    api: Api<K>,
    config: watcher::Config,
    cache: RwLock<Cache<K>>,
    index_fn: Option<IndexFn<K>>,
    handlers: RwLock<Vec<Handler<K>>>,
    synced: tokio::sync::watch::Sender<bool>,
}

/// The cache key of an object.
pub fn key_of<K: Resource>(object: &K) -> Key {
    (object.namespace().unwrap_or_default(), object.name_any())
}

impl<K> Informer<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    /// An informer over `api` (all namespaces or one) with `config` (selectors).
    pub fn new(api: Api<K>, config: watcher::Config) -> Arc<Informer<K>> {
        Informer::with_index(api, config, None)
    }

    /// An informer with a secondary index.
    pub fn with_index(
        api: Api<K>,
        config: watcher::Config,
        index_fn: Option<IndexFn<K>>,
    ) -> Arc<Informer<K>> {
        Arc::new(Informer {
            api,
            config,
            cache: RwLock::new(Cache {
                objects: BTreeMap::new(),
                index: HashMap::new(),
            }),
            index_fn,
            handlers: RwLock::new(Vec::new()),
            synced: tokio::sync::watch::channel(false).0,
        })
    }

    /// Registers a handler; handlers added after the first sync see only later changes.
    pub fn add_handler(
        &self,
        handler: impl Fn(Option<&Arc<K>>, Option<&Arc<K>>) + Send + Sync + 'static,
    ) {
        self.handlers.write().push(Box::new(handler));
    }

    /// The cached object `namespace/name`.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        self.cache
            .read()
            .objects
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Every cached object.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.cache.read().objects.values().cloned().collect()
    }

    /// The cached objects of one namespace.
    pub fn list_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        let cache = self.cache.read();
        let start = (namespace.to_string(), String::new());
        cache
            .objects
            .range(start..)
            .take_while(|((ns, _), _)| ns == namespace)
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// The cached objects filed under `value` in the secondary index.
    pub fn list_indexed(&self, value: &str) -> Vec<Arc<K>> {
        let cache = self.cache.read();
        let Some(keys) = cache.index.get(value) else {
            return Vec::new();
        };
        keys.iter()
            .filter_map(|k| cache.objects.get(k).cloned())
            .collect()
    }

    /// Number of cached objects.
    pub fn len(&self) -> usize {
        self.cache.read().objects.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until the first list is in the cache.
    pub async fn wait_synced(&self) {
        let mut synced = self.synced.subscribe();
        let _ = synced.wait_for(|s| *s).await;
    }

    /// Whether the first list is in the cache.
    pub fn has_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Lists and watches until the process ends (reconnecting with backoff on errors).
    pub async fn run(self: Arc<Self>) {
        let stream = watcher(self.api.clone(), self.config.clone()).default_backoff();
        futures::pin_mut!(stream);
        let mut relist: Option<BTreeMap<Key, Arc<K>>> = None;
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(object)) => self.apply(Arc::new(object)),
                Ok(watcher::Event::Delete(object)) => self.delete(&key_of(&object)),
                Ok(watcher::Event::Init) => relist = Some(BTreeMap::new()),
                Ok(watcher::Event::InitApply(object)) => {
                    relist
                        .get_or_insert_with(BTreeMap::new)
                        .insert(key_of(&object), Arc::new(object));
                }
                Ok(watcher::Event::InitDone) => {
                    let listed = relist.take().unwrap_or_default();
                    let vanished: Vec<Key> = self
                        .cache
                        .read()
                        .objects
                        .keys()
                        .filter(|k| !listed.contains_key(*k))
                        .cloned()
                        .collect();
                    for key in vanished {
                        self.delete(&key);
                    }
                    for (_, object) in listed {
                        self.apply(object);
                    }
                    self.synced.send_replace(true);
                }
                Err(error) => {
                    tracing::debug!(%error, kind = %K::kind(&Default::default()), "watch error, retrying")
                }
            }
        }
    }

    /// Puts `objects` in the cache as a list would, without an API server (scenario tests).
    #[cfg(test)]
    pub(crate) fn seed(&self, objects: Vec<K>) {
        for object in objects {
            self.apply(Arc::new(object));
        }
        self.synced.send_replace(true);
    }

    /// Removes an object from the cache as a watch's delete would (scenario tests).
    #[cfg(test)]
    pub(crate) fn remove(&self, key: &Key) {
        self.delete(key);
    }

    fn apply(&self, object: Arc<K>) {
        let key = key_of(object.as_ref());
        let old = {
            let mut cache = self.cache.write();
            let old = cache.objects.insert(key.clone(), object.clone());
            if let Some(index_fn) = self.index_fn {
                let before = old.as_deref().and_then(index_fn);
                let after = index_fn(&object);
                if before != after {
                    if let Some(before) = before {
                        unindex(&mut cache.index, &before, &key);
                    }
                    if let Some(after) = after {
                        cache.index.entry(after).or_default().insert(key);
                    }
                }
            }
            old
        };
        // An unchanged object (same resourceVersion, e.g. from a relist) is not news.
        if let Some(old) = &old {
            if old.resource_version().is_some()
                && old.resource_version() == object.resource_version()
            {
                return;
            }
        }
        for handler in self.handlers.read().iter() {
            handler(old.as_ref(), Some(&object));
        }
    }

    fn delete(&self, key: &Key) {
        let old = {
            let mut cache = self.cache.write();
            let old = cache.objects.remove(key);
            if let (Some(index_fn), Some(old)) = (self.index_fn, &old) {
                if let Some(value) = index_fn(old) {
                    unindex(&mut cache.index, &value, key);
                }
            }
            old
        };
        if let Some(old) = old {
            for handler in self.handlers.read().iter() {
                handler(Some(&old), None);
            }
        }
    }
}

fn unindex(index: &mut HashMap<String, HashSet<Key>>, value: &str, key: &Key) {
    if let Some(keys) = index.get_mut(value) {
        keys.remove(key);
        if keys.is_empty() {
            index.remove(value);
        }
    }
}
