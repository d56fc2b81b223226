//! The watch cache: one store watch per resource serves every client watch of it, as
//! upstream's cacher does, instead of one store watch per client.
//!
//! Each resource's cacher keeps the last [`HISTORY`] events and broadcasts new ones. A client
//! watch from a revision the history still covers gets the backlog from it and then the live
//! broadcast; the history and the broadcast are updated under one lock, so nothing falls in
//! between. A watch from an older revision, and a subscriber that falls too far behind the
//! broadcast, continue on a store watch of their own from the next revision they need — never
//! losing or repeating an event; only compaction ends them (with the store's `Compacted`, the
//! API server's 410).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use ferry_store::{
    Event, KeyRange, Revision, Store, StoreError, WatchRequest, WatchResponse, WatchStream,
};
use futures::StreamExt;
use tokio::sync::broadcast;

/// Events kept per resource for watches that start a little in the past.
const HISTORY: usize = 10_000;

/// How often the cacher asks the store for a progress notification (watch bookmarks).
const PROGRESS_EVERY: Duration = Duration::from_secs(30);

/// The caches of all resources.
pub struct WatchCache {
    store: Arc<dyn Store>,
    cachers: parking_lot::Mutex<HashMap<Bytes, Arc<Cacher>>>,
}

struct Cacher {
    state: parking_lot::Mutex<CacherState>,
}

struct CacherState {
    history: VecDeque<Event>,
    /// Every event with a revision above this is in `history` (or yet to come).
    floor: Revision,
    /// Live updates; `None` once the cacher's store watch ended.
    sender: Option<broadcast::Sender<Arc<WatchResponse>>>,
}

impl WatchCache {
    /// A cache over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        WatchCache {
            store,
            cachers: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// The cacher of the resource whose keys start with `prefix`, started on first use.
    async fn cacher(&self, prefix: &Bytes) -> Result<Arc<Cacher>, StoreError> {
        if let Some(cacher) = self
            .cachers
            .lock()
            .get(prefix)
            .filter(|c| c.state.lock().sender.is_some())
        {
            return Ok(cacher.clone());
        }
        let revision = self.store.current_revision().await?;
        let request = WatchRequest::new(KeyRange::prefix(prefix.clone()))
            .from_revision(revision + 1)
            .progress_every(PROGRESS_EVERY);
        let stream = self.store.watch(request).await?;
        let (sender, _) = broadcast::channel(1024);
        let cacher = Arc::new(Cacher {
            state: parking_lot::Mutex::new(CacherState {
                history: VecDeque::new(),
                floor: revision,
                sender: Some(sender),
            }),
        });
        let mut cachers = self.cachers.lock();
        // Another watch may have started one meanwhile: use it and drop ours.
        if let Some(existing) = cachers
            .get(prefix)
            .filter(|c| c.state.lock().sender.is_some())
        {
            return Ok(existing.clone());
        }
        cachers.insert(prefix.clone(), cacher.clone());
        tokio::spawn(run_cacher(Arc::downgrade(&cacher), stream));
        Ok(cacher)
    }

    /// A watch as [`Store::watch`] gives it, served from the cache when it can be.
    /// `resource_prefix` is the key prefix of the whole resource (all namespaces).
    pub async fn watch(
        &self,
        resource_prefix: &Bytes,
        request: WatchRequest,
    ) -> Result<WatchStream, StoreError> {
        let cacher = self.cacher(resource_prefix).await?;
        let start = if request.start_revision > 0 {
            request.start_revision
        } else {
            self.store.current_revision().await? + 1
        };
        let subscription = {
            let state = cacher.state.lock();
            match &state.sender {
                Some(sender) if start > state.floor => {
                    let backlog: Vec<Event> = state
                        .history
                        .iter()
                        .filter(|e| e.revision() >= start && request.range.contains(&e.kv.key))
                        .cloned()
                        .collect();
                    Some((backlog, sender.subscribe()))
                }
                _ => None,
            }
        };
        let Some((backlog, receiver)) = subscription else {
            // Older than the cache: the store serves it (or says it was compacted).
            return self
                .store
                .watch(WatchRequest {
                    start_revision: start,
                    ..request
                })
                .await;
        };
        let subscriber = Subscriber {
            store: self.store.clone(),
            request,
            next: start,
            backlog: Some(backlog),
            receiver,
            direct: None,
        };
        Ok(Box::pin(futures::stream::unfold(
            subscriber,
            Subscriber::next_message,
        )))
    }
}

/// Feeds a cacher from its store watch until the watch ends or the cacher is dropped.
async fn run_cacher(cacher: Weak<Cacher>, mut stream: WatchStream) {
    loop {
        let message = stream.next().await;
        let Some(cacher) = cacher.upgrade() else {
            return;
        };
        let mut state = cacher.state.lock();
        match message {
            Some(Ok(response)) => {
                for event in &response.events {
                    state.history.push_back(event.clone());
                }
                while state.history.len() > HISTORY {
                    if let Some(old) = state.history.pop_front() {
                        state.floor = old.revision();
                    }
                }
                if let Some(sender) = &state.sender {
                    let _ = sender.send(Arc::new(response));
                }
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "watch cache: store watch ended; watches continue on their own");
                state.sender = None;
                return;
            }
            None => {
                state.sender = None;
                return;
            }
        }
    }
}

/// One client watch served from a cacher.
struct Subscriber {
    store: Arc<dyn Store>,
    request: WatchRequest,
    /// The next revision this watch needs.
    next: Revision,
    backlog: Option<Vec<Event>>,
    receiver: broadcast::Receiver<Arc<WatchResponse>>,
    /// Set once the watch continues on a store watch of its own.
    direct: Option<WatchStream>,
}

impl Subscriber {
    async fn next_message(mut self) -> Option<(Result<WatchResponse, StoreError>, Self)> {
        if let Some(backlog) = self.backlog.take() {
            if let Some(last) = backlog.last() {
                self.next = last.revision() + 1;
                let revision = last.revision();
                return Some((
                    Ok(WatchResponse {
                        revision,
                        events: backlog,
                    }),
                    self,
                ));
            }
        }
        loop {
            if let Some(direct) = &mut self.direct {
                let message = direct.next().await?;
                if let Ok(response) = &message {
                    if let Some(last) = response.events.last() {
                        self.next = last.revision() + 1;
                    }
                }
                return Some((message, self));
            }
            match self.receiver.recv().await {
                Ok(response) => {
                    if response.events.is_empty() {
                        if self.request.progress_notify.is_some()
                            && response.revision >= self.next - 1
                        {
                            return Some((
                                Ok(WatchResponse {
                                    revision: response.revision,
                                    events: Vec::new(),
                                }),
                                self,
                            ));
                        }
                        continue;
                    }
                    let events: Vec<Event> = response
                        .events
                        .iter()
                        .filter(|e| {
                            e.revision() >= self.next && self.request.range.contains(&e.kv.key)
                        })
                        .map(|e| {
                            let mut e = e.clone();
                            if !self.request.prev_kv {
                                e.prev_kv = None;
                            }
                            e
                        })
                        .collect();
                    if let Some(last) = response.events.last() {
                        self.next = self.next.max(last.revision() + 1);
                    }
                    if !events.is_empty() {
                        return Some((
                            Ok(WatchResponse {
                                revision: response.revision,
                                events,
                            }),
                            self,
                        ));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_))
                | Err(broadcast::error::RecvError::Closed) => {
                    // Too slow for the broadcast, or the cacher stopped: go on alone, losslessly.
                    let request = WatchRequest {
                        start_revision: self.next,
                        ..self.request.clone()
                    };
                    match self.store.watch(request).await {
                        Ok(stream) => self.direct = Some(stream),
                        Err(e) => return Some((Err(e), self)),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_store::embedded::{Config, EmbeddedStore};

    async fn store() -> (Arc<dyn Store>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::new(dir.path());
        config.auto_compaction = None;
        (
            Arc::new(EmbeddedStore::open(config).await.expect("open")),
            dir,
        )
    }

    async fn events(stream: &mut WatchStream, n: usize) -> Vec<Event> {
        let mut out = Vec::new();
        while out.len() < n {
            let message = tokio::time::timeout(Duration::from_secs(5), stream.next())
                .await
                .expect("in time")
                .expect("open")
                .expect("ok");
            out.extend(message.events);
        }
        out
    }

    #[tokio::test]
    async fn many_watches_share_one_store_watch_and_see_every_event() {
        let (store, _dir) = store().await;
        let cache = WatchCache::new(store.clone());
        let prefix = Bytes::from_static(b"/pods/");
        let start = store.current_revision().await.expect("rev") + 1;
        let mut all = cache
            .watch(
                &prefix,
                WatchRequest::new(KeyRange::prefix(prefix.clone())).from_revision(start),
            )
            .await
            .expect("watch");
        let mut one_ns = cache
            .watch(
                &prefix,
                WatchRequest::new(KeyRange::prefix(Bytes::from_static(b"/pods/a/")))
                    .from_revision(start),
            )
            .await
            .expect("watch");
        for i in 0..10 {
            let ns = if i % 2 == 0 { "a" } else { "b" };
            store
                .put(
                    Bytes::from(format!("/pods/{ns}/p{i}")),
                    Bytes::from_static(b"{}"),
                )
                .await
                .expect("put");
        }
        assert_eq!(events(&mut all, 10).await.len(), 10);
        let a = events(&mut one_ns, 5).await;
        assert!(a.iter().all(|e| e.kv.key.starts_with(b"/pods/a/")));
        // A late watch from the same start gets the backlog from the cache.
        let mut late = cache
            .watch(
                &prefix,
                WatchRequest::new(KeyRange::prefix(prefix.clone())).from_revision(start),
            )
            .await
            .expect("watch");
        let replay = events(&mut late, 10).await;
        assert!(replay.windows(2).all(|w| w[0].revision() < w[1].revision()));
        assert_eq!(cache.cachers.lock().len(), 1);
    }

    #[tokio::test]
    async fn a_watch_older_than_the_cache_is_served_by_the_store() {
        let (store, _dir) = store().await;
        let first = store
            .put(Bytes::from_static(b"/cm/x"), Bytes::from_static(b"1"))
            .await
            .expect("put");
        store
            .put(Bytes::from_static(b"/cm/x"), Bytes::from_static(b"2"))
            .await
            .expect("put");
        let cache = WatchCache::new(store.clone());
        let prefix = Bytes::from_static(b"/cm/");
        let mut old = cache
            .watch(
                &prefix,
                WatchRequest::new(KeyRange::prefix(prefix.clone())).from_revision(first),
            )
            .await
            .expect("watch");
        assert_eq!(events(&mut old, 2).await.len(), 2);
    }
}
