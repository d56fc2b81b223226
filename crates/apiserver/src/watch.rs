//! WATCH: a chunked stream of `{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": …}`
//! lines from a store watch, with upstream's semantics: a watch without resourceVersion (or
//! "0") first sends the current objects as ADDED; a watch from resourceVersion N sends changes
//! after N; selectors turn changes into ADDED/DELETED as objects start or stop matching; a
//! resourceVersion compacted away gets an ERROR with a 410 Status ("too old resource
//! version") and the stream ends, so clients relist.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferry_store::{Event, EventKind, KeyRange, RangeRequest, Revision, StoreError, WatchRequest};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::registry::Resource;
use crate::rest::{decode, Rest, Selectors};
use crate::status::ApiError;
use crate::storage::prefix;

/// How often an idle watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);

/// Turns each object into what the client asked for (the object, a Table row, metadata).
pub type Transform = Arc<dyn Fn(&Value, bool) -> Value + Send + Sync>;

/// Opens a watch; returns the stream of encoded event lines.
pub async fn watch(
    rest: Arc<Rest>,
    resource: Arc<Resource>,
    namespace: &str,
    name: &str,
    query: &HashMap<String, String>,
    transform: Transform,
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
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|v| crate::request::query_bool(v));
    let send_initial = query
        .get("sendInitialEvents")
        .map(|v| crate::request::query_bool(v));
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let resource_version = query.get("resourceVersion").cloned().unwrap_or_default();
    let collection = prefix(info, namespace);

    // Where the stream starts, and the objects to send first.
    let mut initial = Vec::new();
    let start: Revision =
        if resource_version.is_empty() || resource_version == "0" || send_initial == Some(true) {
            let at = if send_initial == Some(true)
                && !resource_version.is_empty()
                && resource_version != "0"
            {
                resource_version
                    .parse()
                    .map_err(|_| ApiError::bad_request("invalid resourceVersion"))?
            } else {
                0
            };
            let listed = rest
                .storage
                .store
                .range(RangeRequest::new(KeyRange::prefix(collection.clone())).at(at))
                .await?;
            for kv in &listed.kvs {
                let object = decode(&resource, &kv.value, kv.mod_revision)?;
                if selectors.matches(&resource, &object) {
                    initial.push(object);
                }
            }
            let revision = if at > 0 { at } else { listed.header_revision };
            revision + 1
        } else {
            let rv: Revision = resource_version.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid resource version {resource_version:?}"))
            })?;
            rv + 1
        };
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
    let kind = info.kind;
    let api_version = info.api_version();
    tokio::spawn(async move {
        let line = |event_type: &str, object: Value| {
            let mut bytes = serde_json::to_vec(&json!({"type": event_type, "object": object}))
                .unwrap_or_default();
            bytes.push(b'\n');
            Bytes::from(bytes)
        };
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
        if send_initial == Some(true) && bookmarks {
            let bookmark = json!({"kind": kind, "apiVersion": api_version, "metadata": {
                "resourceVersion": (start - 1).to_string(),
                "annotations": {"k8s.io/initial-events-end": "true"}}});
            if tx.send(line("BOOKMARK", bookmark)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
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
                        if tx.send(emit(event_type, &object)).await.is_err() {
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
