//! kube-rs against `ferry server`, as upstream components will use it: typed clients over the
//! generated kubeconfig, the kube-runtime watcher across a server restart, 409 on stale
//! updates, 410 once history is compacted.

mod common;

use std::time::Duration;

use common::Ferry;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "data": {"k": "v"}}))
        .expect("configmap")
}

/// The next ConfigMap the watcher reports as applied (created or changed).
async fn next_applied(
    stream: &mut (impl futures::Stream<Item = Result<watcher::Event<ConfigMap>, watcher::Error>>
              + Unpin),
) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let event = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("a watch event in time")
            .expect("stream open");
        match event {
            Ok(watcher::Event::Apply(cm)) | Ok(watcher::Event::InitApply(cm)) => {
                return cm.metadata.name.unwrap_or_default();
            }
            // Errors while the server restarts are retried by the watcher's backoff.
            _ => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_resumes_across_a_server_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut ferry = Ferry::start_in(tmp.path(), &[]);
    let listen = ferry.url.trim_start_matches("https://").to_string();
    let api: Api<ConfigMap> = Api::namespaced(ferry.client().await, "default");
    api.create(&PostParams::default(), &configmap("before"))
        .await
        .expect("create");

    let mut stream = Box::pin(kube::runtime::WatchStreamExt::default_backoff(watcher(
        api.clone(),
        watcher::Config::default(),
    )));
    assert_eq!(next_applied(&mut stream).await, "before");

    ferry.kill_hard();
    let ferry = Ferry::start_at(tmp.path(), &listen, &[]);
    let api: Api<ConfigMap> = Api::namespaced(ferry.client().await, "default");
    api.create(&PostParams::default(), &configmap("after"))
        .await
        .expect("create after restart");
    assert_eq!(next_applied(&mut stream).await, "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_update_is_a_409_conflict() {
    let ferry = Ferry::start();
    let api: Api<ConfigMap> = Api::namespaced(ferry.client().await, "default");
    let created = api
        .create(&PostParams::default(), &configmap("cas"))
        .await
        .expect("create");
    let mut first = created.clone();
    first.data = Some([("k".to_string(), "first".to_string())].into());
    api.replace("cas", &PostParams::default(), &first)
        .await
        .expect("update with the current version");
    let mut stale = created;
    stale.data = Some([("k".to_string(), "stale".to_string())].into());
    match api.replace("cas", &PostParams::default(), &stale).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
            assert_eq!(status.message, "Operation cannot be fulfilled on configmaps \"cas\": the object has been modified; please apply your changes to the latest version and try again");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_compacted_history_gets_410_and_the_watcher_relists() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ferry = Ferry::start_in(tmp.path(), &["--etcd-compaction-interval", "1s"]);
    let client = ferry.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let old = api
        .create(&PostParams::default(), &configmap("old"))
        .await
        .expect("create");
    let old_rv = old.metadata.resource_version.expect("resourceVersion");
    for i in 0..5 {
        api.create(&PostParams::default(), &configmap(&format!("n{i}")))
            .await
            .expect("create");
    }
    // Compaction runs every second and keeps the last second of history: wait it out.
    let path = format!(
        "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={old_rv}&timeoutSeconds=2"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let request = http::Request::get(&path).body(Vec::new()).expect("request");
        let text = client.request_text(request).await.expect("watch");
        if text.contains("\"code\":410") {
            assert!(
                text.contains("\"type\":\"ERROR\"") && text.contains("too old resource version"),
                "{text}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no 410 within 20 s: {text}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The watcher lists first, so it starts fine after compaction.
    let mut stream = Box::pin(watcher(api, watcher::Config::default()));
    let mut seen = 0;
    while seen < 6 {
        if let Ok(watcher::Event::InitApply(_)) =
            tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .expect("in time")
                .expect("open")
        {
            seen += 1;
        }
    }
}

/// `?watch=true` with `Upgrade: websocket`: each event arrives as one text message.
#[tokio::test]
async fn watch_over_websocket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ferry = Ferry::start_in(
        dir.path(),
        &["--disable-controllers", "--disable-scheduler"],
    );
    let pki = ferry_apiserver::pki::Pki::load_or_create(&dir.path().join("tls")).expect("pki");
    let tls = pki.client_tls(&pki.admin).expect("client tls");
    let address = ferry.url.trim_start_matches("https://").to_string();
    let tcp = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("server name");
    let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls))
        .connect(name, tcp)
        .await
        .expect("tls");
    let url = format!("wss://{address}/api/v1/namespaces/default/configmaps?watch=true");
    let (mut socket, response) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("websocket handshake");
    assert_eq!(response.status(), 101);

    let api: Api<ConfigMap> = Api::default_namespaced(ferry.client().await);
    api.create(&PostParams::default(), &configmap("over-websocket"))
        .await
        .expect("create");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("an event in time")
            .expect("open")
            .expect("message");
        let tokio_tungstenite::tungstenite::Message::Text(text) = message else {
            continue;
        };
        let event: serde_json::Value =
            serde_json::from_str(&text).expect("one JSON event per message");
        if event["object"]["metadata"]["name"] == "over-websocket" {
            assert_eq!(event["type"], "ADDED");
            break;
        }
    }
}
