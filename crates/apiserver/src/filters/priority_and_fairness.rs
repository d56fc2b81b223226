//! API Priority and Fairness (upstream's `WithPriorityAndFairness`): each request is
//! classified ([`crate::flowcontrol::Controller::classify`]) and, at a limited level, waits for
//! a seat or is refused with 429 and `Retry-After`; exempt levels pass at once. The response
//! names the FlowSchema and priority level (`X-Kubernetes-PF-*-UID`). A LIST takes the seats
//! its work estimate says ([`crate::flowcontrol::estimate`]). Long-running requests
//! (watches, `exec`/`attach`/`portforward`/`log`, `proxy`) are classified but take no seat:
//! upstream counts a watch only while it sends its initial events; ferry does not count it.
//!
//! With `--enable-priority-and-fairness=false` the server limits with [`MaxInFlight`] instead,
//! as upstream does; [`InFlightLimit`] is the chain's one layer for either.

use std::convert::Infallible;
use std::sync::Arc;

use tower::Service;

use super::max_inflight::MaxInFlight;
use super::{BoxFuture, Filter};
use crate::auth::UserInfo;
use crate::body::{Request, Response};
use crate::flowcontrol::{Controller, FLOW_SCHEMA_UID_HEADER, PRIORITY_LEVEL_UID_HEADER};
use crate::request::RequestInfo;
use crate::status::ApiError;

/// The priority-and-fairness filter.
#[derive(Clone)]
pub struct PriorityAndFairness(pub Arc<Controller>);

/// Whether a request runs for long (upstream's `BasicLongRunningRequestCheck` with the verbs
/// `watch`, `proxy` and the subresources `attach`, `exec`, `proxy`, `log`, `portforward`).
pub fn is_long_running(info: &RequestInfo) -> bool {
    info.is_resource_request
        && (matches!(info.verb.as_str(), "watch" | "proxy")
            || matches!(
                info.subresource.as_str(),
                "attach" | "exec" | "proxy" | "log" | "portforward"
            ))
}

fn set_header(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(value) = http::HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

impl Filter for PriorityAndFairness {
    fn call<S>(&self, request: Request, mut next: S) -> BoxFuture
    where
        S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
        S::Future: Send,
    {
        let extensions = request.extensions();
        let (Some(info), Some(user)) = (
            extensions.get::<RequestInfo>(),
            extensions.get::<UserInfo>(),
        ) else {
            return Box::pin(next.call(request));
        };
        let classification = self.0.classify(user, info);
        let long_running = is_long_running(info);
        let seats = self
            .0
            .seats(&classification, info, request.uri().query().unwrap_or(""));
        let controller = self.0.clone();
        Box::pin(async move {
            let schema_uid = classification.flow_schema_uid.clone();
            let level_uid = classification.level.uid.clone();
            let admission = if long_running {
                None
            } else {
                match controller.admit(&classification, seats).await {
                    Ok(admission) => Some(admission),
                    Err(rejected) => {
                        let mut error = ApiError::too_many_requests();
                        if let Some(details) = error.details.as_mut() {
                            details.retry_after_seconds = Some(rejected.retry_after as i32);
                        }
                        let mut response = error.into_response();
                        set_header(
                            &mut response,
                            "retry-after",
                            &rejected.retry_after.to_string(),
                        );
                        set_header(&mut response, FLOW_SCHEMA_UID_HEADER, &schema_uid);
                        set_header(&mut response, PRIORITY_LEVEL_UID_HEADER, &level_uid);
                        return Ok(response);
                    }
                }
            };
            let mut request = request;
            crate::journey::stamp(&mut request, |s| &mut s.admitted);
            let mut response = next.call(request).await?;
            drop(admission);
            set_header(&mut response, FLOW_SCHEMA_UID_HEADER, &schema_uid);
            set_header(&mut response, PRIORITY_LEVEL_UID_HEADER, &level_uid);
            Ok(response)
        })
    }
}

/// The chain's concurrency limit: priority and fairness, or upstream's plain max-in-flight
/// when it is disabled.
#[derive(Clone)]
pub enum InFlightLimit {
    /// API Priority and Fairness (the default).
    PriorityAndFairness(PriorityAndFairness),
    /// `--max-requests-inflight` / `--max-mutating-requests-inflight` only.
    MaxInFlight(MaxInFlight),
}

impl Filter for InFlightLimit {
    fn call<S>(&self, request: Request, next: S) -> BoxFuture
    where
        S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
        S::Future: Send,
    {
        match self {
            InFlightLimit::PriorityAndFairness(f) => f.call(request, next),
            InFlightLimit::MaxInFlight(f) => f.call(request, next),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::FilterLayer;
    use std::time::Duration;
    use tower::{Layer, ServiceExt};

    /// A request of `method path` already authenticated as `user` in `groups`.
    fn request(method: &str, path: &str, user: &str, groups: &[&str]) -> Request {
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .body(crate::body::empty())
            .expect("request");
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let info = crate::request::parse(method, path, query.contains("watch=1"));
        request.extensions_mut().insert(info);
        request.extensions_mut().insert(UserInfo::new(
            user.into(),
            String::new(),
            groups.iter().map(|g| g.to_string()).collect(),
        ));
        request
    }

    #[tokio::test]
    async fn a_saturated_level_refuses_while_others_pass() {
        let controller =
            Controller::new(600, &mut prometheus_client::registry::Registry::default());
        // Six seats in all: global-default gets one, node-high one; queues wait 50 ms.
        controller.set_limits(6, Duration::from_millis(50));
        // The inner service holds alice's LISTs until released; others answer at once.
        let gate = Arc::new(tokio::sync::Notify::new());
        let waiting = gate.clone();
        let inner = tower::service_fn(move |request: Request| {
            let waiting = waiting.clone();
            let held = request
                .extensions()
                .get::<UserInfo>()
                .is_some_and(|u| u.name == "alice");
            Box::pin(async move {
                if held {
                    waiting.notified().await;
                }
                Ok(crate::body::text("done".into()))
            }) as BoxFuture
        });
        let chain = FilterLayer(PriorityAndFairness(controller.clone())).layer(inner);
        let list = || request("GET", "/api/v1/pods", "alice", &[]);
        let first = tokio::spawn(chain.clone().oneshot(list()));
        while controller.dump_priority_levels().lines().all(|l| {
            !(l.starts_with("global-default,")
                && l.split(',').nth(5).is_some_and(|c| c.trim() == "1"))
        }) {
            tokio::task::yield_now().await;
        }
        // The next LIST waits in a queue, then is refused.
        let refused = chain.clone().oneshot(list()).await.expect("answer");
        assert_eq!(refused.status(), 429);
        assert_eq!(refused.headers()["retry-after"], "1");
        assert!(refused.headers().contains_key(PRIORITY_LEVEL_UID_HEADER));
        let bytes = crate::body::read(refused.into_body(), 1 << 20)
            .await
            .expect("body");
        let body = String::from_utf8_lossy(&bytes);
        assert!(
            body.contains("\"reason\":\"TooManyRequests\"")
                && body.contains("Too many requests, please try again later."),
            "{body}"
        );
        // A node's lease renewal (node-high) and a master (exempt) pass meanwhile.
        let lease = request(
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
            "system:node:n1",
            &["system:nodes"],
        );
        assert_eq!(
            chain.clone().oneshot(lease).await.expect("ok").status(),
            200
        );
        let admin = request("GET", "/api/v1/pods", "admin", &["system:masters"]);
        assert_eq!(
            chain.clone().oneshot(admin).await.expect("ok").status(),
            200
        );
        // Alice's watch is not counted against the seat she holds.
        let watch = request("GET", "/api/v1/pods?watch=1", "bob", &[]);
        assert_eq!(
            chain.clone().oneshot(watch).await.expect("ok").status(),
            200
        );
        gate.notify_waiters();
        assert_eq!(first.await.expect("join").expect("ok").status(), 200);
        let dump = controller.dump_priority_levels();
        let row = dump
            .lines()
            .find(|l| l.starts_with("global-default,"))
            .expect("row");
        let cells: Vec<&str> = row.split(',').map(str::trim).collect();
        assert_eq!(cells[8], "1", "one timed out: {dump}");
    }

    #[test]
    fn long_running_requests_are_known() {
        for (method, path, long) in [
            ("GET", "/api/v1/namespaces/d/pods/p/log", true),
            ("POST", "/api/v1/namespaces/d/pods/p/exec", true),
            ("GET", "/api/v1/namespaces/d/pods/p", false),
            ("GET", "/healthz", false),
        ] {
            let info = crate::request::parse(method, path, false);
            assert_eq!(is_long_running(&info), long, "{path}");
        }
        assert!(is_long_running(&crate::request::parse(
            "GET",
            "/api/v1/pods",
            true
        )));
    }
}
