//! Audit (upstream's `WithAudit`): each request, once answered, becomes an [`AuditEvent`] —
//! who asked what, from where, and what they got — at the level the audit policy
//! ([`crate::audit::policy`]) gives it, handed to an [`AuditSink`]: the audit log
//! ([`crate::audit::log`], `--audit-log-path`) or, without one, `tracing` events (target
//! `ferry::audit`, debug level). At `Request` the request's body is kept in the event, at
//! `RequestResponse` the response's too (not of watches and upgraded connections, which
//! stream).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::Service;

use super::{BoxFuture, Filter};
use crate::audit::policy::{Level, Policy};
pub use crate::audit::{AuditEvent, AuditSink, TracingSink};
use crate::auth::UserInfo;
use crate::body::{Request, Response};
use crate::request::RequestInfo;

/// The address a request came from (the server puts it in each request's extensions).
#[derive(Debug, Clone, Copy)]
pub struct RemoteAddr(pub SocketAddr);

/// What the filter records, and where.
pub struct Auditor {
    /// The policy; without one every request is recorded at `Metadata`.
    pub policy: Option<Policy>,
    /// Where events go.
    pub sink: Arc<dyn AuditSink>,
}

/// The audit filter.
#[derive(Clone)]
pub struct Audit(pub Arc<Auditor>);

/// A body as JSON: JSON, YAML or Kubernetes protobuf, as its content type says (other bodies
/// are left out).
fn as_object(bytes: &[u8], content_type: &str) -> Option<Value> {
    crate::rest::parse_body(bytes, content_type).ok()
}

fn content_type(headers: &http::HeaderMap) -> String {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string()
}

impl Filter for Audit {
    fn call<S>(&self, request: Request, mut next: S) -> BoxFuture
    where
        S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
        S::Future: Send,
    {
        let received = jiff::Timestamp::now();
        let user = request.extensions().get::<UserInfo>().cloned();
        let info = request.extensions().get::<RequestInfo>().cloned();
        let level = match (&self.0.policy, &info) {
            (Some(policy), Some(info)) => policy.level(user.as_ref(), info),
            (Some(_), None) => Level::None,
            (None, _) => Level::Metadata,
        };
        if level == Level::None {
            return Box::pin(next.call(request));
        }
        let source_ip = request
            .extensions()
            .get::<RemoteAddr>()
            .map(|a| a.0.ip().to_string());
        let user_agent = request
            .headers()
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let request_uri = request.uri().to_string();
        let auditor = self.0.clone();
        Box::pin(async move {
            let verb = info.as_ref().map(|i| i.verb.clone()).unwrap_or_default();
            let has_body = matches!(verb.as_str(), "create" | "update" | "patch");
            let (request, request_object) = if level >= Level::Request && has_body {
                let (parts, body) = request.into_parts();
                match crate::body::read(body, crate::body::MAX_BODY).await {
                    Ok(bytes) => {
                        let object = as_object(&bytes, &content_type(&parts.headers));
                        (Request::from_parts(parts, crate::body::full(bytes)), object)
                    }
                    // Answered as the handler would answer it (and not recorded).
                    Err(_) => return Ok(crate::status::ApiError::too_large().into_response()),
                }
            } else {
                (request, None)
            };
            let response = next.call(request).await?;
            let code = response.status().as_u16();
            let streams = verb == "watch" || code == 101;
            let (response, response_object) = if level == Level::RequestResponse && !streams {
                let (parts, body) = response.into_parts();
                let bytes = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let object = as_object(&bytes, &content_type(&parts.headers));
                (
                    Response::from_parts(parts, crate::body::full(bytes)),
                    object,
                )
            } else {
                (response, None)
            };
            let annotations = response
                .extensions()
                .get::<crate::audit::Annotations>()
                .cloned()
                .unwrap_or_default();
            let (name, groups) = user.map(|u| (u.name, u.groups)).unwrap_or_default();
            auditor.sink.record(&AuditEvent {
                level,
                audit_id: crate::object::new_uid(),
                user: name,
                groups,
                verb,
                request_uri,
                info,
                source_ip,
                user_agent,
                code,
                request_object,
                response_object,
                received,
                completed: jiff::Timestamp::now(),
                annotations,
            });
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::authentication::tests::{as_user, auth};
    use crate::filters::authentication::Authenticate;
    use crate::filters::request_info::ParseRequestInfo;
    use crate::filters::testing::Reached;
    use crate::filters::FilterLayer;
    use serde_json::json;
    use std::sync::Mutex;
    use tower::ServiceExt;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<AuditEvent>>);

    impl AuditSink for Recorder {
        fn record(&self, event: &AuditEvent) {
            self.0.lock().expect("lock").push(event.clone());
        }
    }

    #[tokio::test]
    async fn answered_requests_are_recorded() {
        let recorder = Arc::new(Recorder::default());
        let reached = Reached::default();
        let chain = tower::ServiceBuilder::new()
            .layer(FilterLayer(ParseRequestInfo))
            .layer(FilterLayer(Authenticate(auth())))
            .layer(FilterLayer(Audit(Arc::new(Auditor {
                policy: None,
                sink: recorder.clone(),
            }))))
            .service(reached.service());
        chain
            .oneshot(as_user("/api/v1/namespaces/default/pods?limit=1", "alice"))
            .await
            .expect("ok");
        let events = recorder.0.lock().expect("lock");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].user, "alice");
        assert_eq!(events[0].verb, "list");
        assert_eq!(
            events[0].request_uri,
            "/api/v1/namespaces/default/pods?limit=1"
        );
        assert_eq!(events[0].code, 200);
        assert_eq!(events[0].level, Level::Metadata);
        let json = events[0].to_json().expect("recorded");
        assert_eq!(
            json["objectRef"],
            json!({"resource": "pods", "namespace": "default", "apiVersion": "v1"})
        );
        assert_eq!(json["user"]["username"], "alice");
        assert!(json.get("requestObject").is_none());
    }

    #[tokio::test]
    async fn the_policy_decides_what_is_recorded_and_bodies_are_kept() {
        let recorder = Arc::new(Recorder::default());
        let policy = Policy::parse("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  verbs: [get]\n- level: RequestResponse\n").expect("policy");
        let reached = Reached::default();
        let chain = tower::ServiceBuilder::new()
            .layer(FilterLayer(ParseRequestInfo))
            .layer(FilterLayer(Authenticate(auth())))
            .layer(FilterLayer(Audit(Arc::new(Auditor {
                policy: Some(policy),
                sink: recorder.clone(),
            }))))
            .service(reached.service());
        chain
            .clone()
            .oneshot(as_user("/api/v1/namespaces/default/pods/p", "alice"))
            .await
            .expect("ok");
        assert!(
            recorder.0.lock().expect("lock").is_empty(),
            "gets are not recorded"
        );
        let mut post = as_user("/api/v1/namespaces/default/configmaps", "admin");
        *post.method_mut() = http::Method::POST;
        *post.body_mut() = crate::body::full(r#"{"kind":"ConfigMap","data":{"a":"1"}}"#);
        chain.clone().oneshot(post).await.expect("ok");
        // A body over the limit is refused as the handler refuses it.
        let mut large = as_user("/api/v1/namespaces/default/configmaps", "admin");
        *large.method_mut() = http::Method::POST;
        *large.body_mut() = crate::body::full(vec![b' '; crate::body::MAX_BODY + 1]);
        let refused = chain.oneshot(large).await.expect("ok");
        assert_eq!(refused.status(), 413);
        let events = recorder.0.lock().expect("lock");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].level, Level::RequestResponse);
        assert_eq!(
            events[0].request_object,
            Some(json!({"kind": "ConfigMap", "data": {"a": "1"}}))
        );
        assert_eq!(reached.count(), 2, "the handler got the body too");
    }
}
