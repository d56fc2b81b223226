//! The API server's part of the pod's journey (`ferry-journey`).
//!
//! - **Which writes are steps**: creates, updates, patches and deletes of the kinds whose
//!   strategy says they are [`traced`](crate::registry::Strategy::traced) (pods and the
//!   workloads that make them), and their `binding` and `scale` subresources. Everything else
//!   (leases, events, status updates) is not: the ring would fill with heartbeats.
//! - **The request's steps**: a `request` span, under the client's `traceparent` when it sent
//!   one, with the filters' times as its first children (`authenticated`, `priority and
//!   fairness`, `authorized`, from the [`Stamps`] the filters leave on the request), then what
//!   the REST verbs do inside it (`decoded`, `mutating admission` with a child per plugin,
//!   `validation`, `validating admission`, `persisted` with the revision).
//! - **The object carries the trace on**: a create, or a write that moves the object's
//!   generation (a spec change, a scale), sets [`ferry_journey::ANNOTATION`] to the request's
//!   context ([`annotate`]); other writes keep the one the object had. Controllers, the
//!   scheduler and the kubelet read it as the parent of their steps.
//! - **Where steps are kept and served**: [`Journeys`] (the server installs it as a sink, and
//!   components in other processes post theirs), read over `/journey/v1/…` ([`handle`]).

use std::sync::Arc;

use bytes::Bytes;
use ferry_journey::{Journeys, SpanRecord, TraceId};
use http_body_util::{BodyExt, StreamBody};
use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::body::{self, BodyError, Request, Response};
use crate::registry::Resource;
use crate::request::RequestInfo;
use crate::status::ApiError;

/// When the filters let a request through, in nanoseconds since the Unix epoch (0: not yet).
#[derive(Clone, Copy, Debug, Default)]
pub struct Stamps {
    /// The request was read.
    pub received: u64,
    /// Its user was known.
    pub authenticated: u64,
    /// Priority and fairness (or max-in-flight) gave it a seat.
    pub admitted: u64,
    /// It was authorized.
    pub authorized: u64,
}

impl Stamps {
    /// Stamps of a request read now.
    pub fn received() -> Stamps {
        Stamps {
            received: ferry_journey::now_unix_nanos(),
            ..Stamps::default()
        }
    }
}

/// Records that a filter let `request` through now.
pub fn stamp(request: &mut Request, field: fn(&mut Stamps) -> &mut u64) {
    if let Some(stamps) = request.extensions_mut().get_mut::<Stamps>() {
        *field(stamps) = ferry_journey::now_unix_nanos();
    }
}

/// Whether the request's write is a step of a journey (never with journeys
/// [switched off](ferry_journey::sink::switch_off)).
pub fn is_traced(resource: &Resource, info: &RequestInfo) -> bool {
    ferry_journey::sink::enabled()
        && matches!(info.verb.as_str(), "create" | "update" | "patch" | "delete")
        && matches!(info.subresource.as_str(), "" | "binding" | "scale")
        && resource.strategy.traced()
}

/// Whether the caller runs inside a journey step (a traced request's REST verbs do).
pub fn traced() -> bool {
    ferry_journey::current().is_some()
}

/// The `request` span of a traced write ([`answered`] ends it).
pub fn request_span(
    info: &RequestInfo,
    user: &UserInfo,
    headers: &http::HeaderMap,
    stamps: Option<&Stamps>,
) -> tracing::Span {
    let parent = headers
        .get(ferry_journey::HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let object = if info.namespace.is_empty() {
        format!("{}/{}", info.resource, info.name)
    } else {
        format!("{}/{}/{}", info.resource, info.namespace, info.name)
    };
    ferry_journey::step!(
        "request",
        parent = parent,
        component = "kube-apiserver",
        object = %object,
        uid = tracing::field::Empty,
        verb = %info.verb,
        subresource = %info.subresource,
        user = %user.name,
        code = tracing::field::Empty,
        start_ns = stamps.map_or(0, |s| s.received),
    )
}

/// Ends a traced request's span with its answer: the filters' steps (recorded now, from
/// their stamps, so that they name the object a create learnt its name from), the code, and
/// the message of a refusal.
pub fn answered(
    span: &tracing::Span,
    stamps: Option<&Stamps>,
    response: &Response,
    error: Option<&ApiError>,
) {
    filter_steps(span, stamps.copied().unwrap_or_default());
    span.record("code", response.status().as_u16());
    if let Some(error) = error {
        ferry_journey::fail(span, &error.message);
    }
}

/// The steps that ended before the request's span was made, children of it: their times are
/// the filters' stamps.
fn filter_steps(span: &tracing::Span, stamps: Stamps) {
    let _in = span.enter();
    let past = |name, start: u64, end: u64| {
        if start > 0 && end >= start {
            ferry_journey::record_past(name, start, end, &[], None);
        }
    };
    past("authenticated", stamps.received, stamps.authenticated);
    past(
        "priority and fairness",
        stamps.authenticated,
        stamps.admitted,
    );
    // Exempt requests (system:masters under max-in-flight) never waited for a seat.
    let admitted = stamps.admitted.max(stamps.authenticated);
    past("authorized", admitted, stamps.authorized);
}

/// A step of a traced request whose work makes no step of its own (validation, the store
/// write): timed, and recorded when it is over ([`ferry_journey::record_past`]).
pub struct Timed {
    step: &'static str,
    /// When it started; 0 when the request is not traced.
    start: u64,
}

impl Timed {
    /// Starts timing `step` if the request is traced.
    pub fn start(step: &'static str) -> Timed {
        let start = if traced() {
            ferry_journey::now_unix_nanos()
        } else {
            0
        };
        Timed { step, start }
    }

    /// Records the step, failed if `result` is an error, and gives `result` back.
    pub fn finish<T, E: std::fmt::Display>(self, result: Result<T, E>) -> Result<T, E> {
        self.done(&[], result.as_ref().err().map(|e| e as _));
        result
    }

    /// Records the step, with `attributes`, failed if `error` says so.
    pub fn done(self, attributes: &[(&'static str, &str)], error: Option<&dyn std::fmt::Display>) {
        if self.start == 0 {
            return;
        }
        let error = error.map(ToString::to_string);
        let end = ferry_journey::now_unix_nanos();
        ferry_journey::record_past(self.step, self.start, end, attributes, error.as_deref());
    }
}

/// Names the object of the traced request the caller is in (a create learns its name and
/// uid only after it was decoded), so the steps that follow are the object's.
pub fn name_request(plural: &str, object: &Value) {
    if !traced() {
        return;
    }
    let field = |name: &str| {
        object
            .get("metadata")
            .and_then(|m| m.get(name))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let key = match field("namespace") {
        "" => format!("{plural}/{}", field("name")),
        namespace => format!("{plural}/{namespace}/{}", field("name")),
    };
    let span = tracing::Span::current();
    span.record("object", key.as_str());
    span.record("uid", field("uid"));
}

/// Sets the journey annotation of an object being written in a traced request: the request's
/// context on a create or when the generation moves, else the one `old` had.
pub fn annotate(object: &mut Value, old: Option<&Value>) {
    let Some(context) = ferry_journey::current() else {
        return;
    };
    let generation = |o: &Value| o.pointer("/metadata/generation").and_then(Value::as_i64);
    let value = match old {
        Some(old) if generation(old) == generation(object) => old
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(ferry_journey::ANNOTATION))
            .cloned(),
        _ => Some(Value::String(context.to_string())),
    };
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    match value {
        Some(value) => {
            let annotations = meta
                .entry("annotations")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(annotations) = annotations.as_object_mut() {
                annotations.insert(ferry_journey::ANNOTATION.to_string(), value);
            }
        }
        None => {
            if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                annotations.remove(ferry_journey::ANNOTATION);
            }
        }
    }
}

/// The prefix of the journey paths.
pub const PREFIX: &str = "/journey/v1/";

/// `/journey/v1/…`:
/// - `GET traces/{traceId}` → `{traceId, spans, dropped}` (404 when not kept); with
///   `?watch=true` the kept steps then new ones, one JSON object per line;
/// - `GET objects/{uid}` → `{traces: [{traceId, spans, dropped}]}`, every kept trace with a step
///   for the object;
/// - `GET spans?watch=true` → every new step, one per line;
/// - `POST spans` with `{spans: […]}` → 202: steps of components in other processes (dropped
///   while journeys are switched off).
pub async fn handle(
    journeys: &Arc<Journeys>,
    info: &RequestInfo,
    watch: bool,
    request: Request,
) -> Result<Response, ApiError> {
    let rest = info.path.strip_prefix(PREFIX).unwrap_or("");
    let mut parts = rest.trim_end_matches('/').splitn(2, '/');
    match (info.verb.as_str(), parts.next(), parts.next()) {
        ("post", Some("spans"), None) => {
            let bytes = body::read(request.into_body(), body::MAX_BODY)
                .await
                .map_err(|_| ApiError::too_large())?;
            let posted: Posted = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::bad_request(format!("decoding spans: {e}")))?;
            // With journeys switched off (`ferry server --journeys=false`) they are dropped.
            if ferry_journey::sink::enabled() {
                for span in posted.spans {
                    journeys.insert(span);
                }
            }
            Ok(body::json(202, &json!({})))
        }
        ("get", Some("spans"), None) if watch => Ok(follow(journeys, Vec::new(), None)),
        ("get", Some("traces"), Some(id)) => {
            let trace_id = TraceId::parse(id)
                .ok_or_else(|| ApiError::bad_request(format!("invalid trace id {id:?}")))?;
            let kept = journeys.trace(trace_id);
            if watch {
                let spans = kept.map(|t| t.spans).unwrap_or_default();
                return Ok(follow(journeys, spans, Some(trace_id)));
            }
            let kept = kept.ok_or_else(|| ApiError {
                code: 404,
                reason: "NotFound",
                message: format!("trace {id} is not kept"),
                details: None,
            })?;
            Ok(body::json(200, &trace_json(trace_id, &kept)))
        }
        ("get", Some("objects"), Some(uid)) => {
            let traces: Vec<Value> = journeys
                .traces_of(uid)
                .into_iter()
                .filter_map(|id| journeys.trace(id).map(|kept| trace_json(id, &kept)))
                .collect();
            Ok(body::json(200, &json!({ "traces": traces })))
        }
        ("get" | "post", ..) => Err(ApiError::path_not_found()),
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}

#[derive(serde::Deserialize)]
struct Posted {
    spans: Vec<SpanRecord>,
}

fn trace_json(id: TraceId, kept: &ferry_journey::TraceSnapshot) -> Value {
    json!({
        "traceId": id.to_string(),
        "spans": kept.spans.iter().map(|s| &**s).collect::<Vec<&SpanRecord>>(),
        "dropped": kept.dropped,
    })
}

/// `first`, then every new step (of `trace` only, when given), one JSON object per line,
/// until the client goes away.
fn follow(
    journeys: &Arc<Journeys>,
    first: Vec<Arc<SpanRecord>>,
    trace: Option<TraceId>,
) -> Response {
    let live = journeys.follow();
    let trace = trace.map(|t| t.to_string());
    let line = |span: &SpanRecord| {
        let mut bytes = serde_json::to_vec(span).unwrap_or_default();
        bytes.push(b'\n');
        Bytes::from(bytes)
    };
    let kept: Vec<Bytes> = first.iter().map(|s| line(s)).collect();
    let seen: std::collections::HashSet<String> = first.iter().map(|s| s.span_id.clone()).collect();
    let kept = futures::stream::iter(kept.into_iter().map(Ok::<_, BodyError>));
    let new = futures::stream::unfold(
        (live, trace, seen),
        move |(mut live, trace, seen)| async move {
            loop {
                match live.recv().await {
                    Ok(span) => {
                        let wanted = trace.as_ref().is_none_or(|t| *t == span.trace_id)
                            && !seen.contains(&span.span_id);
                        if wanted {
                            return Some((Ok(line(&span)), (live, trace, seen)));
                        }
                    }
                    // A slow reader lost some steps: it goes on with the next ones.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    use futures::StreamExt as _;
    let frames = kept
        .chain(new)
        .map(|bytes| bytes.map(hyper::body::Frame::data));
    let mut response = http::Response::new(StreamBody::new(frames).boxed_unsync());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(verb: &str, subresource: &str) -> RequestInfo {
        let mut info = crate::request::parse("POST", "/api/v1/namespaces/default/pods", false);
        info.verb = verb.into();
        info.subresource = subresource.into();
        info
    }

    #[test]
    fn the_filters_times_become_the_first_steps_of_the_request() {
        let capture = ferry_journey::testing::capture();
        let stamps = Stamps {
            received: 1_000,
            authenticated: 1_500,
            admitted: 1_700,
            authorized: 2_000,
        };
        let user = UserInfo::new("alice".into(), String::new(), vec![]);
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
        );
        let span = request_span(&info("create", ""), &user, &headers, Some(&stamps));
        let response = http::Response::new(crate::body::empty());
        answered(&span, Some(&stamps), &response, None);
        drop(span);
        let spans = capture.spans();
        let steps: Vec<_> = spans
            .iter()
            .map(|s| (s.step.as_str(), s.start_unix_nanos))
            .collect();
        assert_eq!(
            steps,
            [
                ("authenticated", 1_000),
                ("priority and fairness", 1_500),
                ("authorized", 1_700),
                ("request", 1_000)
            ]
        );
        assert_eq!(spans[2].end_unix_nanos, 2_000);
        let request = &spans[3];
        assert_eq!(request.parent_span_id.as_deref(), Some("b7ad6b7169203331"));
        assert_eq!(
            request.attributes.get("user").map(String::as_str),
            Some("alice")
        );
        assert_eq!(
            request.attributes.get("verb").map(String::as_str),
            Some("create")
        );
        assert!(spans[..3].iter().all(|s| s.parent_span_id.as_deref()
            == Some(request.span_id.as_str())
            && s.component == "kube-apiserver"));
    }

    #[test]
    fn only_writes_of_traced_kinds_and_their_binding_and_scale_are_steps() {
        let registry = crate::registry::Registry::builtin();
        let pods = registry.builtin_resource("", "v1", "pods").expect("served");
        let leases = registry
            .builtin_resource("coordination.k8s.io", "v1", "leases")
            .expect("served");
        assert!(is_traced(&pods, &info("create", "")));
        assert!(is_traced(&pods, &info("create", "binding")));
        assert!(!is_traced(&pods, &info("patch", "status")));
        assert!(!is_traced(&pods, &info("get", "")));
        assert!(!is_traced(&leases, &info("update", "")));
    }

    #[test]
    fn outside_a_traced_request_objects_are_left_alone() {
        let mut object = json!({"metadata": {"name": "a"}});
        annotate(&mut object, None);
        assert_eq!(object, json!({"metadata": {"name": "a"}}));
    }
}
