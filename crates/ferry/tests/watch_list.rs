//! Streaming lists (KEP-3157) against `ferry server`: kube-rs' watcher in `streaming_lists()`
//! mode gets the matching ConfigMaps as initial events, the bookmark that ends them, then the
//! changes; without the `WatchList` gate (off by default, as in Kubernetes 1.33) the request is
//! refused with upstream's 422.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::Ferry;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher;

fn configmap(name: &str, app: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"app": app}},
        "data": {"k": "v"},
    }))
    .expect("configmap")
}

/// The next event of `stream`, in time.
async fn next<T>(stream: &mut (impl futures::Stream<Item = T> + Unpin)) -> T {
    tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .expect("a watch event in time")
        .expect("stream open")
}

fn name(cm: &ConfigMap) -> String {
    cm.metadata.name.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_streaming_list_watcher_sees_initial_objects_then_changes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ferry = Ferry::start_in(tmp.path(), &["--feature-gates=WatchList=true"]);
    let api: Api<ConfigMap> = Api::namespaced(ferry.client().await, "default");
    for (name, app) in [("one", "watched"), ("two", "watched"), ("other", "ignored")] {
        api.create(&PostParams::default(), &configmap(name, app))
            .await
            .expect("create");
    }

    let config = watcher::Config::default()
        .labels("app=watched")
        .streaming_lists();
    let mut stream = Box::pin(watcher(api.clone(), config));
    assert!(matches!(next(&mut stream).await, Ok(watcher::Event::Init)));
    let mut initial = BTreeSet::new();
    loop {
        match next(&mut stream).await.expect("no watch error") {
            watcher::Event::InitApply(cm) => {
                initial.insert(name(&cm));
            }
            watcher::Event::InitDone => break,
            other => panic!("unexpected event during the initial list: {other:?}"),
        }
    }
    assert_eq!(
        initial,
        BTreeSet::from(["one".to_string(), "two".to_string()])
    );

    api.create(&PostParams::default(), &configmap("three", "watched"))
        .await
        .expect("create after the initial list");
    api.create(&PostParams::default(), &configmap("another", "ignored"))
        .await
        .expect("create a non-matching one");
    api.delete("one", &DeleteParams::default())
        .await
        .expect("delete");
    match next(&mut stream).await.expect("no watch error") {
        watcher::Event::Apply(cm) => assert_eq!(name(&cm), "three"),
        other => panic!("expected three applied, got {other:?}"),
    }
    match next(&mut stream).await.expect("no watch error") {
        watcher::Event::Delete(cm) => assert_eq!(name(&cm), "one"),
        other => panic!("expected one deleted, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_initial_events_end_with_an_annotated_bookmark_at_their_revision() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ferry = Ferry::start_in(tmp.path(), &["--feature-gates=WatchList=true"]);
    let api: Api<ConfigMap> = Api::namespaced(ferry.client().await, "default");
    let created = api
        .create(&PostParams::default(), &configmap("one", "watched"))
        .await
        .expect("create");
    let created_rv: u64 = created
        .metadata
        .resource_version
        .expect("resourceVersion")
        .parse()
        .expect("numeric resourceVersion");

    // resourceVersion unset: a consistent read, which must include what was just written.
    let params = WatchParams::streaming_lists().fields("metadata.name=one");
    let mut events = api.watch(&params, "").await.expect("watch").boxed();
    match next(&mut events).await.expect("event") {
        WatchEvent::Added(cm) => assert_eq!(name(&cm), "one"),
        other => panic!("expected one added, got {other:?}"),
    }
    let WatchEvent::Bookmark(bookmark) = next(&mut events).await.expect("event") else {
        panic!("expected the initial-events-end bookmark");
    };
    assert_eq!(
        bookmark
            .metadata
            .annotations
            .get("k8s.io/initial-events-end")
            .map(String::as_str),
        Some("true")
    );
    assert!(bookmark
        .metadata
        .annotations
        .contains_key("kubernetes.io/initial-events-list-blueprint"));
    let end: u64 = bookmark
        .metadata
        .resource_version
        .parse()
        .expect("numeric resourceVersion");
    assert!(end >= created_rv, "{end} < {created_rv}");

    // Not older than a revision the store has not reached: an ERROR event, as upstream's
    // watch cache gives up waiting for it.
    let future = (end + 1000).to_string();
    let mut events = api.watch(&params, &future).await.expect("watch").boxed();
    match next(&mut events).await {
        Ok(WatchEvent::Error(status)) => assert_eq!(status.code, 504, "{status:?}"),
        other => panic!("expected a 504 ERROR event, got {other:?}"),
    }
    assert!(events.try_next().await.unwrap_or(None).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_watch_list_gate_a_streaming_list_is_refused() {
    let ferry = Ferry::start();
    let api: Api<ConfigMap> = Api::namespaced(ferry.client().await, "default");
    match api.watch(&WatchParams::streaming_lists(), "0").await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert_eq!(
                status.message,
                "ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: \
                 sendInitialEvents is forbidden for watch unless the WatchList feature gate is \
                 enabled"
            );
        }
        Err(other) => panic!("expected a 422, got {other}"),
        Ok(_) => panic!("expected a 422, got a watch"),
    }
}
