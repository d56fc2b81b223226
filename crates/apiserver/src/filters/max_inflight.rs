//! Max in flight (upstream's `WithMaxInFlightLimit`): at most `--max-requests-inflight`
//! read-only and `--max-mutating-requests-inflight` mutating requests at once (upstream's 400 and
//! 200); one more is refused at once with 429 and `Retry-After: 1`, which clients retry.
//! Long-running requests (watches) and `system:masters` are not counted, as upstream.

use std::convert::Infallible;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tower::Service;

use super::{BoxFuture, Filter};
use crate::auth::UserInfo;
use crate::body::{Request, Response};
use crate::request::RequestInfo;
use crate::status::ApiError;

/// Upstream's default `--max-requests-inflight`.
pub const DEFAULT_READ_ONLY: usize = 400;
/// Upstream's default `--max-mutating-requests-inflight`.
pub const DEFAULT_MUTATING: usize = 200;

/// The max-in-flight filter.
#[derive(Clone)]
pub struct MaxInFlight {
    read_only: Arc<Semaphore>,
    mutating: Arc<Semaphore>,
}

impl MaxInFlight {
    /// At most `read_only` and `mutating` requests at once.
    pub fn new(read_only: usize, mutating: usize) -> MaxInFlight {
        MaxInFlight {
            read_only: Arc::new(Semaphore::new(read_only)),
            mutating: Arc::new(Semaphore::new(mutating)),
        }
    }
}

impl Default for MaxInFlight {
    fn default() -> Self {
        MaxInFlight::new(DEFAULT_READ_ONLY, DEFAULT_MUTATING)
    }
}

fn is_mutating(verb: &str) -> bool {
    matches!(
        verb,
        "create" | "update" | "patch" | "delete" | "deletecollection" | "post" | "put"
    )
}

impl Filter for MaxInFlight {
    fn call<S>(&self, request: Request, mut next: S) -> BoxFuture
    where
        S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
        S::Future: Send,
    {
        let verb = request
            .extensions()
            .get::<RequestInfo>()
            .map(|i| i.verb.clone())
            .unwrap_or_default();
        let privileged = request
            .extensions()
            .get::<UserInfo>()
            .is_some_and(|u| u.groups.iter().any(|g| g == "system:masters"));
        if verb == "watch" || privileged {
            return Box::pin(next.call(request));
        }
        let pool = if is_mutating(&verb) {
            &self.mutating
        } else {
            &self.read_only
        };
        let Ok(permit) = pool.clone().try_acquire_owned() else {
            return Box::pin(async {
                let mut response = ApiError::too_many_requests().into_response();
                response.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static("1"),
                );
                Ok(response)
            });
        };
        let mut request = request;
        crate::journey::stamp(&mut request, |s| &mut s.admitted);
        let answered = next.call(request);
        Box::pin(async move {
            let response = answered.await;
            drop(permit);
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::authentication::tests::{as_user, auth};
    use crate::filters::authentication::Authenticate;
    use crate::filters::request_info::ParseRequestInfo;
    use crate::filters::FilterLayer;
    use tower::{ServiceBuilder, ServiceExt};

    #[tokio::test]
    async fn one_request_too_many_is_429() {
        // The inner service holds each request until released.
        let gate = Arc::new(tokio::sync::Notify::new());
        let waiting = gate.clone();
        let slow = tower::service_fn(move |_request: Request| {
            let waiting = waiting.clone();
            Box::pin(async move {
                waiting.notified().await;
                Ok(crate::body::text("done".into()))
            }) as BoxFuture
        });
        let chain = ServiceBuilder::new()
            .layer(FilterLayer(ParseRequestInfo))
            .layer(FilterLayer(Authenticate(auth())))
            .layer(FilterLayer(MaxInFlight::new(1, 1)))
            .service(slow);
        let first = tokio::spawn(chain.clone().oneshot(as_user("/api/v1/pods", "alice")));
        tokio::task::yield_now().await;
        let refused = chain
            .clone()
            .oneshot(as_user("/api/v1/pods", "alice"))
            .await
            .expect("ok");
        assert_eq!(refused.status(), 429);
        assert_eq!(refused.headers()["retry-after"], "1");
        // Watches and masters are not counted.
        let watch = tokio::spawn(
            chain
                .clone()
                .oneshot(as_user("/api/v1/pods?watch=1", "alice")),
        );
        let master = tokio::spawn(chain.clone().oneshot(as_user("/api/v1/pods", "admin")));
        tokio::task::yield_now().await;
        gate.notify_waiters();
        for handle in [first, watch, master] {
            assert_eq!(handle.await.expect("join").expect("ok").status(), 200);
        }
        let again = tokio::spawn(chain.oneshot(as_user("/api/v1/pods", "alice")));
        tokio::task::yield_now().await;
        gate.notify_waiters();
        assert_eq!(again.await.expect("join").expect("ok").status(), 200);
    }
}
