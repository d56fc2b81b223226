//! The handler chain, as upstream's `k8s.io/apiserver/pkg/endpoints/filters`: each filter is a
//! `tower` layer around the next, in this order (outermost first):
//!
//! 1. [`recover::RecoverPanic`]: a panicking handler becomes a 500, not a dropped connection;
//! 2. [`request_info::ParseRequestInfo`]: the verb, resource, namespace, … and the query;
//! 3. [`metrics::Instrument`]: request counts and latencies for `/metrics`;
//! 4. [`authentication::Authenticate`]: who is asking, or 401;
//! 5. [`audit::Audit`]: what was asked and answered, to an [`audit::AuditSink`];
//! 6. [`impersonation::Impersonate`]: `--as`, checked with the authorizer;
//! 7. [`priority_and_fairness::PriorityAndFairness`]: API Priority and Fairness — each request
//!    classified into a priority level and a flow, run within the level's seats, queued
//!    fairly, or refused with 429 (or, with it disabled, [`max_inflight::MaxInFlight`]: at most
//!    so many requests at once, or 429);
//! 8. [`authorization::Authorize`]: may they, or 403;
//!
//! then the router ([`crate::handlers`]). A filter passes what it learnt to the next in the
//! request's extensions ([`crate::request::RequestInfo`], [`Query`], [`crate::auth::UserInfo`]).

pub mod audit;
pub mod authentication;
pub mod authorization;
pub mod impersonation;
pub mod max_inflight;
pub mod metrics;
pub mod priority_and_fairness;
pub mod recover;
pub mod request_info;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use crate::body::{Request, Response};

/// The future every filter and handler returns.
pub type BoxFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// The query parameters of a request, decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(pub HashMap<String, String>);

/// One step of the chain: given the request and the rest of the chain (`next`, ready to be
/// called), answers itself or passes the request on.
pub trait Filter: Clone + Send + Sync + 'static {
    /// Handles `request`.
    fn call<S>(&self, request: Request, next: S) -> BoxFuture
    where
        S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
        S::Future: Send;
}

/// A [`Filter`] as a `tower` layer.
#[derive(Debug, Clone)]
pub struct FilterLayer<F>(pub F);

impl<F: Filter, S> Layer<S> for FilterLayer<F> {
    type Service = FilterService<F, S>;

    fn layer(&self, inner: S) -> Self::Service {
        FilterService {
            filter: self.0.clone(),
            inner,
        }
    }
}

/// A [`Filter`] around the rest of the chain.
#[derive(Debug, Clone)]
pub struct FilterService<F, S> {
    filter: F,
    inner: S,
}

impl<F, S> Service<Request> for FilterService<F, S>
where
    F: Filter,
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> BoxFuture {
        // The ready service goes with this request; a fresh clone waits for the next.
        let fresh = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, fresh);
        self.filter.call(request, ready)
    }
}

/// What the tests of the filters share: a request builder and an inner service that records
/// what reached it.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::body::{self, Body};

    /// A GET of `path` from a client with no certificate.
    pub fn get(path: &str) -> Request {
        http::Request::builder()
            .uri(path)
            .body(body::empty())
            .expect("request")
    }

    /// What reached the inner service.
    #[derive(Clone, Default)]
    pub struct Reached(pub Arc<Mutex<Vec<http::request::Parts>>>);

    impl Reached {
        /// The inner service: answers 200 "ok" and records the request's parts.
        pub fn service(
            &self,
        ) -> impl Service<Request, Response = Response, Error = Infallible, Future = BoxFuture>
               + Clone
               + Send
               + 'static {
            let reached = self.0.clone();
            tower::service_fn(move |request: Request| {
                let (parts, _body): (_, Body) = request.into_parts();
                reached.lock().expect("lock").push(parts);
                Box::pin(async { Ok(body::text("ok".into())) }) as BoxFuture
            })
        }

        /// How many requests reached it.
        pub fn count(&self) -> usize {
            self.0.lock().expect("lock").len()
        }
    }
}
