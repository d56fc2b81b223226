//! A watch's response: chunked JSON lines, or — for a client that asks to upgrade — one
//! WebSocket text message per event (upstream's framing for JSON), until the watch ends or the
//! client goes.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, StreamBody};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::{Message, Role};
use tokio_tungstenite::WebSocketStream;

use super::output::Output;
use super::Router;
use crate::body::{BodyError, Response};
use crate::filters::metrics::WatchGuard;
use crate::list_options::ListOptions;
use crate::request::RequestInfo;
use crate::status::ApiError;
use crate::watch::Encoding;

/// The `Sec-WebSocket-Accept` answer to a client's upgrade, if it asks for one.
fn websocket_accept(headers: &http::HeaderMap) -> Option<String> {
    let upgrade = headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = headers.get(http::header::SEC_WEBSOCKET_KEY)?;
    upgrade.then(|| tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes()))
}

/// What `accept` asks for besides Table rows, which upstream does not render a streaming list
/// as; 406 when it asks for nothing else.
fn output_without_tables(accept: &str) -> Result<Output, ApiError> {
    let others: Vec<&str> = accept
        .split(',')
        .filter(|part| !part.replace(' ', "").contains("as=Table"))
        .collect();
    if others.is_empty() {
        return Err(ApiError::not_acceptable(format!(
            "only the following media types are accepted: application/json, application/yaml (got {accept:?})"
        )));
    }
    Output::from_accept(&others.join(","))
}

/// Validates the watch's options ([`ListOptions`]), starts it and answers with its stream.
pub async fn respond(
    router: &Router,
    resource: Arc<crate::registry::Resource>,
    info: &RequestInfo,
    query: &HashMap<String, String>,
    output: Output,
    headers: &http::HeaderMap,
    upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Response, ApiError> {
    let options = ListOptions::parse(query, true, router.features.watch_list)?;
    let mut output = output;
    if options.is_list_watch() && output == Output::Table {
        let accept = headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        output = output_without_tables(accept)?;
    }
    let list_blueprint = options.is_list_watch().then(|| match output {
        Output::Metadata => (
            "PartialObjectMetadataList".to_string(),
            "meta.k8s.io/v1".to_string(),
        ),
        _ => (
            format!("{}List", resource.info.kind),
            resource.info.api_version(),
        ),
    });
    let printer = resource.printer.clone();
    let transform: crate::watch::Transform =
        Arc::new(move |object: &Value, first: bool| match output {
            Output::Object | Output::Yaml => object.clone(),
            Output::Metadata => output.render(&*printer, object, false),
            Output::Table => {
                let mut table = output.render(&*printer, object, false);
                if !first {
                    // Column definitions come with the first event only, as upstream sends them.
                    table["columnDefinitions"] = json!([]);
                }
                table
            }
        });
    let rx = crate::watch::watch(
        router.rest.clone(),
        resource,
        &info.namespace,
        &info.name,
        query,
        &options,
        Encoding {
            transform,
            list_blueprint,
        },
    )
    .await?;
    let guard = router.metrics.watch_opened();
    if let (Some(accept), Some(upgrade)) = (websocket_accept(headers), upgrade) {
        tokio::spawn(async move {
            match upgrade.await {
                Ok(upgraded) => {
                    let socket = WebSocketStream::from_raw_socket(
                        hyper_util::rt::TokioIo::new(upgraded),
                        Role::Server,
                        None,
                    )
                    .await;
                    websocket_watch(socket, rx, guard).await;
                }
                Err(e) => tracing::debug!(error = %e, "watch upgrade failed"),
            }
        });
        let mut response = crate::body::response(101, "application/json", Bytes::new());
        let headers = response.headers_mut();
        headers.remove(http::header::CONTENT_TYPE);
        headers.insert(
            http::header::UPGRADE,
            http::HeaderValue::from_static("websocket"),
        );
        headers.insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("upgrade"),
        );
        if let Ok(value) = http::HeaderValue::from_str(&accept) {
            headers.insert(http::header::SEC_WEBSOCKET_ACCEPT, value);
        }
        return Ok(response);
    }
    let stream = futures::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        rx.recv().await.map(|bytes| {
            (
                Ok::<_, BodyError>(hyper::body::Frame::data(bytes)),
                (rx, guard),
            )
        })
    });
    let mut response = http::Response::new(StreamBody::new(stream).boxed_unsync());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// Sends each watch event as one text message until the watch ends or the client closes.
async fn websocket_watch<S>(
    mut socket: WebSocketStream<S>,
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
    _guard: WatchGuard,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        tokio::select! {
            event = rx.recv() => {
                let Some(event) = event else { break };
                let text = String::from_utf8_lossy(event.trim_ascii_end()).into_owned();
                if socket.send(Message::text(text)).await.is_err() {
                    return;
                }
            }
            incoming = socket.next() => match incoming {
                // Pings are answered by the library; anything else from the client is ignored.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = socket.close(None).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streaming_list_falls_back_from_table_rows() {
        let table = "application/json;as=Table;v=v1;g=meta.k8s.io";
        assert_eq!(
            output_without_tables(&format!("{table}, application/json")).expect("json"),
            Output::Object
        );
        assert_eq!(
            output_without_tables(table).expect_err("406").to_status()["code"],
            406
        );
    }
}
