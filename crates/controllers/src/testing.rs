//! A mock API server for the controllers' scenario tests (kube-rs's `tower` service pattern):
//! a `kube::Client` whose requests are recorded — method, path with query, JSON body — and
//! answered by the test's responder, so a test drives one reconcile and asserts the exact API
//! calls it made. The client sends `traceparent` as the controllers' clients do
//! ([`ferry_client::journey::traceparent_layer`]), so a test sees which journey step a call was
//! made in.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use serde_json::Value;

/// One request the controller made.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// `GET`, `POST`, `PUT`, `PATCH`, `DELETE`.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The JSON body (`Null` when empty).
    pub body: Value,
    /// The `traceparent` header: the journey step the call was made in.
    pub traceparent: Option<String>,
}

impl Call {
    /// `"POST /api/v1/namespaces/default/pods"`.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// The calls a client made.
#[derive(Clone, Default)]
pub struct Calls(Arc<Mutex<Vec<Call>>>);

impl Calls {
    /// Every call but Events (the recorder posts those off the controller's path).
    pub fn without_events(&self) -> Vec<Call> {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .filter(|c| !c.path.contains("/events"))
            .cloned()
            .collect()
    }

    /// The Events posted so far.
    pub fn events(&self) -> Vec<Call> {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .filter(|c| c.path.contains("/events"))
            .cloned()
            .collect()
    }
}

/// A client answered by `respond(call) -> (code, body)`, and the record of its calls.
pub fn client(
    respond: impl Fn(&Call) -> (u16, Value) + Send + Sync + 'static,
) -> (kube::Client, Calls) {
    let calls = Calls::default();
    let recorded = calls.clone();
    let respond = Arc::new(respond);
    let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
        let recorded = recorded.clone();
        let respond = respond.clone();
        async move {
            let (parts, body) = request.into_parts();
            let bytes = body.collect().await?.to_bytes();
            let call = Call {
                method: parts.method.to_string(),
                path: parts
                    .uri
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                traceparent: parts
                    .headers
                    .get(ferry_journey::HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
            };
            let (code, answer) = respond(&call);
            recorded.0.lock().expect("lock").push(call);
            let response = http::Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(http_body_util::Full::new(Bytes::from(answer.to_string())))?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(response)
        }
    });
    let service = tower::ServiceBuilder::new()
        .layer(ferry_client::journey::traceparent_layer())
        .service(service);
    (kube::Client::new(service, "default"), calls)
}

/// The answer an API server gives a create or update: the body, with a resourceVersion (and,
/// for a create with `generateName`, a name).
pub fn echo(call: &Call, code: u16) -> (u16, Value) {
    let mut body = call.body.clone();
    if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        if !meta.contains_key("name") {
            let prefix = meta
                .get("generateName")
                .and_then(Value::as_str)
                .unwrap_or("x-")
                .to_string();
            meta.insert("name".into(), Value::String(format!("{prefix}abcde")));
        }
        meta.insert("resourceVersion".into(), Value::String("2".into()));
        meta.entry("uid").or_insert(Value::String("new-uid".into()));
    }
    (code, body)
}

/// An API server that accepts every write: creates (201) and updates (200) echoed, deletes
/// answered with a success `Status`.
pub fn accept_all(call: &Call) -> (u16, Value) {
    match call.method.as_str() {
        "POST" => echo(call, 201),
        "DELETE" => (
            200,
            serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
        ),
        _ => echo(call, 200),
    }
}
