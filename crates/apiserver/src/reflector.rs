//! In-memory views the API server keeps of some resources for its own decisions (the RBAC
//! policy, the Node authorizer's graph), filled as upstream's informers fill theirs: a list of
//! the resources' key prefixes at one revision, then watches from the next, and a new list when
//! a watch ends (compaction, a store hiccup).

use std::sync::Arc;
use std::time::Duration;

use ferry_store::{Event, KeyRange, KeyValue, RangeRequest, Store, StoreError, WatchRequest};
use futures::StreamExt;

/// A view kept by [`start`].
pub trait Reflected: Send + Sync + 'static {
    /// The key prefixes followed (`/pods/`, …); the index of one is passed back with its data.
    fn prefixes(&self) -> &'static [&'static str];
    /// Everything under the prefixes at one revision: replaces the view.
    fn replace(&self, listed: Vec<(usize, KeyValue)>);
    /// Changes under prefix `index`, in order.
    fn apply(&self, index: usize, events: &[Event]);
}

/// Lists into `view` (it is complete when this returns), then follows the changes in a task
/// that ends when the view is dropped.
pub async fn start<R: Reflected>(view: &Arc<R>, store: Arc<dyn Store>) -> Result<(), StoreError> {
    let revision = load(&**view, &*store).await?;
    let weak = Arc::downgrade(view);
    tokio::spawn(async move {
        let mut from = revision;
        loop {
            let Some(view) = weak.upgrade() else { return };
            if let Err(error) = follow(&*view, &*store, from).await {
                tracing::warn!(%error, prefixes = ?view.prefixes(), "watch ended, listing again");
            }
            drop(view);
            tokio::time::sleep(Duration::from_millis(200)).await;
            let Some(view) = weak.upgrade() else { return };
            match load(&*view, &*store).await {
                Ok(revision) => from = revision,
                Err(error) => tracing::warn!(%error, "list failed"),
            }
        }
    });
    Ok(())
}

/// Replaces the view with what the store holds now; the revision read at.
async fn load(view: &dyn Reflected, store: &dyn Store) -> Result<i64, StoreError> {
    let revision = store.current_revision().await?;
    let mut listed = Vec::new();
    for (index, prefix) in view.prefixes().iter().enumerate() {
        let answer = store
            .range(RangeRequest::new(KeyRange::prefix(*prefix)).at(revision))
            .await?;
        listed.extend(answer.kvs.into_iter().map(|kv| (index, kv)));
    }
    view.replace(listed);
    Ok(revision)
}

/// Applies the changes after `revision` until a watch fails (a watch that ends is a failure).
async fn follow(view: &dyn Reflected, store: &dyn Store, revision: i64) -> Result<(), StoreError> {
    let mut watches = Vec::new();
    for (index, prefix) in view.prefixes().iter().enumerate() {
        let request = WatchRequest::new(KeyRange::prefix(*prefix)).from_revision(revision + 1);
        let stream = store.watch(request).await?;
        watches.push(stream.map(move |message| (index, message)).boxed());
    }
    let mut merged = futures::stream::select_all(watches);
    while let Some((index, message)) = merged.next().await {
        let message = message?;
        if !message.events.is_empty() {
            view.apply(index, &message.events);
        }
    }
    Err(StoreError::Closed("the watch ended".into()))
}

/// Every object under some key prefixes, decoded and by key: the view an admission plugin
/// reads (PriorityClasses, LimitRanges, ResourceQuotas), started on first use.
pub struct Objects {
    prefixes: &'static [&'static str],
    objects: parking_lot::RwLock<std::collections::BTreeMap<Vec<u8>, serde_json::Value>>,
    /// Moves on every change: what is derived from the objects can be kept until it does.
    generation: std::sync::atomic::AtomicU64,
}

impl Reflected for Objects {
    fn prefixes(&self) -> &'static [&'static str] {
        self.prefixes
    }

    fn replace(&self, listed: Vec<(usize, KeyValue)>) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *self.objects.write() = listed
            .into_iter()
            .filter_map(|(_, kv)| Some((kv.key.to_vec(), serde_json::from_slice(&kv.value).ok()?)))
            .collect();
    }

    fn apply(&self, _index: usize, events: &[Event]) {
        let mut objects = self.objects.write();
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for event in events {
            let key = event.kv.key.to_vec();
            let decoded = match event.kind {
                ferry_store::EventKind::Put => serde_json::from_slice(&event.kv.value).ok(),
                ferry_store::EventKind::Delete => None,
            };
            match decoded {
                Some(object) => objects.insert(key, object),
                None => objects.remove(&key),
            };
        }
    }
}

impl Objects {
    /// A number that changes whenever the objects do.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A view holding `objects` by key, followed nowhere (a one-off read, tests).
    pub fn from_objects(objects: Vec<(String, serde_json::Value)>) -> Objects {
        Objects {
            prefixes: &[],
            objects: parking_lot::RwLock::new(
                objects
                    .into_iter()
                    .map(|(key, object)| (key.into_bytes(), object))
                    .collect(),
            ),
            generation: Default::default(),
        }
    }

    /// The object stored at `key` (`/namespaces/default`), if there is one.
    pub fn get(&self, key: &str) -> Option<serde_json::Value> {
        self.objects.read().get(key.as_bytes()).cloned()
    }

    /// The objects whose keys start with `prefix` (`/limitranges/<namespace>/`), in key order.
    pub fn under(&self, prefix: &str) -> Vec<serde_json::Value> {
        let objects = self.objects.read();
        objects
            .range(prefix.as_bytes().to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix.as_bytes()))
            .map(|(_, object)| object.clone())
            .collect()
    }

    /// Whether some object's key starts with `prefix`.
    pub fn any_under(&self, prefix: &str) -> bool {
        let objects = self.objects.read();
        objects
            .range(prefix.as_bytes().to_vec()..)
            .next()
            .is_some_and(|(key, _)| key.starts_with(prefix.as_bytes()))
    }
}

/// An [`Objects`] view listed and watched from the store the first time it is read.
pub struct LazyObjects {
    prefixes: &'static [&'static str],
    view: tokio::sync::OnceCell<Arc<Objects>>,
}

impl LazyObjects {
    /// A view of the objects under `prefixes`, not started yet.
    pub const fn new(prefixes: &'static [&'static str]) -> LazyObjects {
        LazyObjects {
            prefixes,
            view: tokio::sync::OnceCell::const_new(),
        }
    }

    /// The view, if it was started.
    pub fn started(&self) -> Option<&Arc<Objects>> {
        self.view.get()
    }

    /// The view, started from `store` on first use.
    pub async fn get(&self, store: &Arc<dyn Store>) -> Result<&Arc<Objects>, StoreError> {
        self.view
            .get_or_try_init(|| async {
                let view = Arc::new(Objects {
                    prefixes: self.prefixes,
                    objects: Default::default(),
                    generation: Default::default(),
                });
                start(&view, store.clone()).await?;
                Ok(view)
            })
            .await
    }
}
