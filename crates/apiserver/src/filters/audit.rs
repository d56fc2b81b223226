//! Audit (upstream's `WithAudit`): each request, once answered, becomes an [`AuditEvent`] —
//! who asked what and what they got — handed to an [`AuditSink`]. The server's sink writes them
//! as `tracing` events (target `ferry::audit`, debug level); the audit log with its policy plugs
//! in here as another sink.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use tower::Service;

use super::{BoxFuture, Filter};
use crate::auth::UserInfo;
use crate::body::{Request, Response};
use crate::request::RequestInfo;

/// One answered request (upstream's audit `Event` at stage `ResponseComplete`).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// Who asked.
    pub user: String,
    /// Their groups.
    pub groups: Vec<String>,
    /// The Kubernetes verb.
    pub verb: String,
    /// The request URI.
    pub request_uri: String,
    /// The response code.
    pub code: u16,
    /// How long the answer took, in seconds.
    pub latency_seconds: f64,
}

/// Where audit events go.
pub trait AuditSink: Send + Sync {
    /// Records one event.
    fn record(&self, event: &AuditEvent);
}

/// Audit events as `tracing` events.
pub struct TracingSink;

impl AuditSink for TracingSink {
    fn record(&self, event: &AuditEvent) {
        tracing::debug!(
            target: "ferry::audit",
            user = %event.user,
            verb = %event.verb,
            uri = %event.request_uri,
            code = event.code,
            latency = event.latency_seconds,
            "ResponseComplete"
        );
    }
}

/// The audit filter.
#[derive(Clone)]
pub struct Audit(pub Arc<dyn AuditSink>);

impl Filter for Audit {
    fn call<S>(&self, request: Request, mut next: S) -> BoxFuture
    where
        S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
        S::Future: Send,
    {
        let started = Instant::now();
        let user = request.extensions().get::<UserInfo>().cloned();
        let verb = request
            .extensions()
            .get::<RequestInfo>()
            .map(|i| i.verb.clone())
            .unwrap_or_default();
        let request_uri = request.uri().to_string();
        let sink = self.0.clone();
        let answered = next.call(request);
        Box::pin(async move {
            let response = answered.await?;
            let (user, groups) = user.map(|u| (u.name, u.groups)).unwrap_or_default();
            sink.record(&AuditEvent {
                user,
                groups,
                verb,
                request_uri,
                code: response.status().as_u16(),
                latency_seconds: started.elapsed().as_secs_f64(),
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
            .layer(FilterLayer(Audit(recorder.clone())))
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
    }
}
