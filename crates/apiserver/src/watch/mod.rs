//! WATCH: a chunked stream of `{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": …}`
//! lines from a store watch, with upstream's semantics: a watch without resourceVersion (or
//! "0") first sends the current objects as ADDED; a watch from resourceVersion N sends changes
//! after N; selectors turn changes into ADDED/DELETED as objects start or stop matching; a
//! resourceVersion compacted away gets an ERROR with a 410 Status ("too old resource
//! version") and the stream ends, so clients relist.
//!
//! A streaming list ([`crate::list_options`], KEP-3157) is a watch whose initial objects end with a
//! bookmark annotated `k8s.io/initial-events-end` at the revision they were read at; the
//! changes after it follow. With `allowWatchBookmarks`, an idle watch gets a bookmark every
//! [`BOOKMARK_EVERY`] from the store's progress notifications.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferry_store::{Event, EventKind, KeyRange, RangeRequest, Revision, StoreError, WatchRequest};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::list_options::{ListOptions, Start, INITIAL_EVENTS_END, INITIAL_EVENTS_LIST_BLUEPRINT};
use crate::registry::Resource;
use crate::rest::{decode, Rest, Selectors};
use crate::status::ApiError;
use crate::storage::prefix;

/// How often an idle watch that allows bookmarks gets one.
pub const BOOKMARK_EVERY: Duration = Duration::from_secs(30);

/// Turns each object into what the client asked for (the object, a Table row, metadata).
pub type Transform = Arc<dyn Fn(&Value, bool) -> Value + Send + Sync>;

/// How a watch's objects reach the client.
pub struct Encoding {
    /// Each object as the client asked for it.
    pub transform: Transform,
    /// `(kind, apiVersion)` of the empty list a streaming-list client builds its list in,
    /// sent on the bookmark that ends the initial events; `None` unless the watch is one.
    pub list_blueprint: Option<(String, String)>,
}

/// Opens a watch with (validated) `options`; returns the stream of encoded event lines.
pub async fn watch(
    rest: Arc<Rest>,
    resource: Arc<Resource>,
    namespace: &str,
    name: &str,
    query: &HashMap<String, String>,
    options: &ListOptions,
    encoding: Encoding,
) -> Result<mpsc::Receiver<Bytes>, ApiError> {
    let mut query = query.clone();
    if !name.is_empty() {
        // A watch on one object's path is a watch of the collection by name.
        let by_name = format!("metadata.name={name}");
        let fields = match query.get("fieldSelector").filter(|f| !f.is_empty()) {
            Some(f) => format!("{f},{by_name}"),
            None => by_name,
        };
        query.insert("fieldSelector".into(), fields);
    }
    let info = resource.info;
    let selectors = Selectors::from_query(&resource, &query)?;
    let bookmarks = options.allow_watch_bookmarks;
    let timeout = options.timeout();
    let collection = prefix(info, namespace);
    let kind = info.kind;
    let api_version = info.api_version();

    // Where the stream starts, and the objects to send first.
    let mut initial = Vec::new();
    let mut end_bookmark = false;
    let after: Revision = match options.start()? {
        Start::After(revision) => revision,
        Start::Now => rest.storage.store.current_revision().await?,
        Start::Initial {
            not_older_than,
            end_bookmark: mark,
        } => {
            // The latest state is never older than what was asked for, unless it was asked
            // for a revision the store has not reached: upstream's watch cache gives up
            // waiting with an ERROR event.
            let listed = rest
                .storage
                .store
                .range(RangeRequest::new(KeyRange::prefix(collection.clone())))
                .await?;
            if let Some(requested) = not_older_than.filter(|r| *r > listed.header_revision) {
                let error = ApiError::from(StoreError::FutureRevision {
                    requested,
                    current: listed.header_revision,
                });
                return Ok(ended_with(error));
            }
            for kv in &listed.kvs {
                let object = decode(&resource, &kv.value, kv.mod_revision)?;
                if selectors.matches(&resource, &object) {
                    initial.push(object);
                }
            }
            resource
                .strategy
                .convert_stored(&rest.storage, &mut initial)
                .await?;
            end_bookmark = mark;
            listed.header_revision
        }
    };
    let start = after + 1;
    let mut request = WatchRequest::new(KeyRange::prefix(collection)).from_revision(start);
    if bookmarks {
        request = request.progress_every(BOOKMARK_EVERY);
    }
    let mut stream = rest
        .storage
        .watch_cache
        .watch(&prefix(info, ""), request)
        .await?;
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let Encoding {
        transform,
        list_blueprint,
    } = encoding;
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut first = true;
        let mut emit = |event_type: &str, object: &Value| {
            let out = transform(object, first);
            first = false;
            line(event_type, out)
        };
        for object in &initial {
            if tx.send(emit("ADDED", object)).await.is_err() {
                return;
            }
        }
        if end_bookmark {
            let mut bookmark = json!({"kind": kind, "apiVersion": api_version, "metadata": {
                "resourceVersion": after.to_string(),
                "annotations": {INITIAL_EVENTS_END: "true"}}});
            if let Some((list_kind, list_api_version)) = &list_blueprint {
                bookmark["metadata"]["annotations"][INITIAL_EVENTS_LIST_BLUEPRINT] =
                    Value::String(blueprint(list_kind, list_api_version));
            }
            if tx.send(line("BOOKMARK", bookmark)).await.is_err() {
                return;
            }
        }
        loop {
            let message = tokio::select! {
                m = stream.next() => m,
                () = &mut deadline => return,
                () = tx.closed() => return,
            };
            let response = match message {
                None => return,
                Some(Err(StoreError::Compacted {
                    requested,
                    compacted,
                })) => {
                    let status = ApiError::gone(format!(
                        "too old resource version: {} ({compacted})",
                        requested - 1
                    ))
                    .to_status();
                    let _ = tx.send(line("ERROR", status)).await;
                    return;
                }
                Some(Err(e)) => {
                    let _ = tx.send(line("ERROR", ApiError::from(e).to_status())).await;
                    return;
                }
                Some(Ok(response)) => response,
            };
            if response.is_progress_notify() {
                if bookmarks {
                    let bookmark = json!({"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": response.revision.to_string()}});
                    if tx.send(line("BOOKMARK", bookmark)).await.is_err() {
                        return;
                    }
                }
                continue;
            }
            for event in &response.events {
                match translate(&resource, &selectors, event) {
                    Ok(Some((event_type, object))) => {
                        let mut object = [object];
                        let converted = resource
                            .strategy
                            .convert_stored(&rest.storage, &mut object)
                            .await;
                        if let Err(e) = converted {
                            let _ = tx.send(line("ERROR", e.to_status())).await;
                            return;
                        }
                        if tx.send(emit(event_type, &object[0])).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let _ = tx.send(line("ERROR", e.to_status())).await;
                        return;
                    }
                }
            }
        }
    });
    Ok(rx)
}

/// One encoded event line.
fn line(event_type: &str, object: Value) -> Bytes {
    let mut bytes =
        serde_json::to_vec(&json!({"type": event_type, "object": object})).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// A watch that is only an ERROR event with `error`'s Status: upstream's answer, once a
/// watch's request was accepted, to what goes wrong before its first event.
fn ended_with(error: ApiError) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.try_send(line("ERROR", error.to_status()));
    rx
}

/// The `initial-events-list-blueprint` annotation: base64 of the empty list, encoded as
/// upstream's JSON serializer writes it (with its newline).
fn blueprint(list_kind: &str, api_version: &str) -> String {
    use base64::Engine as _;
    let list = json!({"kind": list_kind, "apiVersion": api_version, "metadata": {}, "items": []});
    let mut bytes = serde_json::to_vec(&list).unwrap_or_default();
    bytes.push(b'\n');
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A store event as the watch event a client sees, if any.
fn translate(
    resource: &Resource,
    selectors: &Selectors,
    event: &Event,
) -> Result<Option<(&'static str, Value)>, ApiError> {
    let previous = match &event.prev_kv {
        Some(prev) => Some(decode(resource, &prev.value, prev.mod_revision)?),
        None => None,
    };
    let was = previous
        .as_ref()
        .is_some_and(|p| selectors.matches(resource, p));
    match event.kind {
        EventKind::Put => {
            let current = decode(resource, &event.kv.value, event.kv.mod_revision)?;
            let is = selectors.matches(resource, &current);
            Ok(match (was, is) {
                (false, true) => Some(("ADDED", current)),
                (true, true) => Some(("MODIFIED", current)),
                // It stopped matching: to this watcher it is gone (with its new state).
                (true, false) => Some(("DELETED", current)),
                (false, false) => None,
            })
        }
        EventKind::Delete => Ok(match previous {
            Some(mut object) if was => {
                object["metadata"]["resourceVersion"] =
                    Value::String(event.kv.mod_revision.to_string());
                Some(("DELETED", object))
            }
            _ => None,
        }),
    }
}
