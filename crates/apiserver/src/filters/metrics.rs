//! Instrumentation (upstream's `MonitorRequest`): every answered request counts, by verb,
//! resource and code, with its latency, and open watches are counted — what `/metrics` shows.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tower::Service;

use super::{BoxFuture, Filter};
use crate::body::{Request, Response};
use crate::request::RequestInfo;

/// Upstream's buckets for `apiserver_request_duration_seconds`.
const BUCKETS: &[f64] = &[
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

/// A request's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: String,
    resource: String,
    code: u16,
}

fn histogram() -> Histogram {
    Histogram::new(BUCKETS.iter().copied())
}

/// The API server's request metrics.
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    durations: Family<RequestLabels, Histogram, fn() -> Histogram>,
    watches: Gauge,
}

impl Metrics {
    /// The metrics, registered in `registry`.
    pub fn new(registry: &mut Registry) -> Metrics {
        let metrics = Metrics {
            requests: Family::default(),
            durations: Family::new_with_constructor(histogram),
            watches: Gauge::default(),
        };
        registry.register(
            "apiserver_request",
            "Counter of apiserver requests broken out for each verb, resource and HTTP response code",
            metrics.requests.clone(),
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb, resource and code",
            metrics.durations.clone(),
        );
        registry.register(
            "apiserver_registered_watchers",
            "Number of currently open watches",
            metrics.watches.clone(),
        );
        metrics
    }

    fn record(&self, verb: String, resource: String, code: u16, seconds: f64) {
        let labels = RequestLabels {
            verb,
            resource,
            code,
        };
        self.requests.get_or_create(&labels).inc();
        self.durations.get_or_create(&labels).observe(seconds);
    }

    /// Counts an open watch until the guard is dropped.
    pub fn watch_opened(self: &Arc<Self>) -> WatchGuard {
        self.watches.inc();
        WatchGuard(self.clone())
    }
}

/// An open watch, counted until dropped.
pub struct WatchGuard(Arc<Metrics>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.watches.dec();
    }
}

/// The instrumentation filter.
#[derive(Clone)]
pub struct Instrument(pub Arc<Metrics>);

impl Filter for Instrument {
    fn call<S>(&self, request: Request, mut next: S) -> BoxFuture
    where
        S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
        S::Future: Send,
    {
        let started = Instant::now();
        let (verb, resource) = request
            .extensions()
            .get::<RequestInfo>()
            .map(|i| {
                let resource = if i.is_resource_request {
                    i.resource.clone()
                } else {
                    String::new()
                };
                (i.verb.clone(), resource)
            })
            .unwrap_or_default();
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let metrics = self.0.clone();
        let answered = next.call(request);
        Box::pin(async move {
            let response = answered.await?;
            let code = response.status().as_u16();
            metrics.record(verb, resource, code, started.elapsed().as_secs_f64());
            tracing::debug!(%method, %path, code, "request");
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::request_info::ParseRequestInfo;
    use crate::filters::testing::{get, Reached};
    use crate::filters::FilterLayer;
    use tower::{ServiceBuilder, ServiceExt};

    #[tokio::test]
    async fn requests_and_watches_are_counted() {
        let mut registry = Registry::default();
        let metrics = Arc::new(Metrics::new(&mut registry));
        let chain = ServiceBuilder::new()
            .layer(FilterLayer(ParseRequestInfo))
            .layer(FilterLayer(Instrument(metrics.clone())))
            .service(Reached::default().service());
        chain
            .clone()
            .oneshot(get("/api/v1/pods"))
            .await
            .expect("ok");
        chain.oneshot(get("/healthz")).await.expect("ok");
        let guard = metrics.watch_opened();
        let render = || {
            let mut text = String::new();
            prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
            text
        };
        let text = render();
        assert!(
            text.contains(
                "apiserver_request_total{verb=\"list\",resource=\"pods\",code=\"200\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("apiserver_request_total{verb=\"get\",resource=\"\",code=\"200\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("apiserver_request_duration_seconds_count{verb=\"list\",resource=\"pods\",code=\"200\"} 1\n"), "{text}");
        assert!(text.contains("apiserver_registered_watchers 1\n"), "{text}");
        drop(guard);
        assert!(render().contains("apiserver_registered_watchers 0\n"));
    }
}
