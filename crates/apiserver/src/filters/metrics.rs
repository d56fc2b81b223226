//! Instrumentation (upstream's `MonitorRequest`): every answered request counts, by verb,
//! resource and code, with its latency, and open watches are counted — what `/metrics` shows.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tower::Service;

use super::{BoxFuture, Filter};
use crate::body::{Request, Response};
use crate::request::RequestInfo;

/// Request counts and total seconds by (verb, resource, code).
type RequestCounts = BTreeMap<(String, String, u16), (u64, f64)>;

/// The API server's request metrics.
#[derive(Default)]
pub struct Metrics {
    requests: parking_lot::Mutex<RequestCounts>,
    watches: AtomicI64,
}

impl Metrics {
    fn record(&self, verb: &str, resource: &str, code: u16, elapsed: Duration) {
        let mut requests = self.requests.lock();
        let entry = requests
            .entry((verb.to_string(), resource.to_string(), code))
            .or_default();
        entry.0 += 1;
        entry.1 += elapsed.as_secs_f64();
    }

    /// Counts an open watch until the guard is dropped.
    pub fn watch_opened(self: &Arc<Self>) -> WatchGuard {
        self.watches.fetch_add(1, Ordering::Relaxed);
        WatchGuard(self.clone())
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, resource and HTTP response code.\n# TYPE apiserver_request_total counter\n");
        let requests = self.requests.lock();
        for ((verb, resource, code), (count, _)) in requests.iter() {
            out.push_str(&format!("apiserver_request_total{{verb=\"{verb}\",resource=\"{resource}\",code=\"{code}\"}} {count}\n"));
        }
        out.push_str("# HELP apiserver_request_duration_seconds_sum Total response latency by verb and resource.\n# TYPE apiserver_request_duration_seconds_sum counter\n");
        for ((verb, resource, code), (_, seconds)) in requests.iter() {
            out.push_str(&format!("apiserver_request_duration_seconds_sum{{verb=\"{verb}\",resource=\"{resource}\",code=\"{code}\"}} {seconds:.6}\n"));
        }
        out.push_str(&format!(
            "# HELP apiserver_registered_watchers Number of currently open watches.\n# TYPE apiserver_registered_watchers gauge\napiserver_registered_watchers {}\n",
            self.watches.load(Ordering::Relaxed)
        ));
    }
}

/// An open watch, counted until dropped.
pub struct WatchGuard(Arc<Metrics>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.watches.fetch_sub(1, Ordering::Relaxed);
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
            metrics.record(&verb, &resource, code, started.elapsed());
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
        let metrics = Arc::new(Metrics::default());
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
        let mut text = String::new();
        metrics.render(&mut text);
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
        assert!(text.contains("apiserver_registered_watchers 1\n"), "{text}");
        drop(guard);
        let mut text = String::new();
        metrics.render(&mut text);
        assert!(text.contains("apiserver_registered_watchers 0\n"), "{text}");
    }
}
