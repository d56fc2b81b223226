//! The kubelet's own HTTPS server (upstream's `:10250`), which the API server calls for what
//! only the node has: a container's log, the streaming sessions — exec, attach,
//! port-forward — which it hands to the container runtime's streaming server, and the node's,
//! pods' and containers' CPU and memory for metrics-server.
//!
//! - TLS with the serving certificate the node got from the cluster's `kubelet-serving` signer;
//!   clients are authenticated by certificates of the cluster CA ([`authenticate`]) and each
//!   request is authorized by asking the API server a SubjectAccessReview for
//!   `nodes/<subresource>` of this node ([`auth`]), as upstream's webhook authorizer does.
//! - `GET /containerLogs/<namespace>/<pod>/<container>` streams the CRI log file ([`logs`]).
//! - `/exec/…`, `/attach/…` (`<namespace>/<pod>/<container>`) and `/portForward/<namespace>/<pod>`
//!   ask the runtime for a streaming URL (CRI `Exec`, `Attach`, `PortForward`) and proxy the
//!   client's upgrade to it ([`streaming`]), so SPDY or WebSocket — whichever the runtime and
//!   the client agree on — flows end to end; the WebSocket protocols kubectl asks for first
//!   (`v5.channel.k8s.io`, port-forward's tunnelled SPDY), which the runtime does not speak,
//!   the kubelet bridges to the runtime's SPDY itself ([`translate`]).
//! - `GET /metrics/resource` (`nodes/metrics`) writes CPU and memory usage in the Prometheus
//!   text format ([`resource_metrics`]), from CRI stats and the host ([`node_stats`]).
//! - `GET /metrics` (`nodes/metrics`): the kubelet's own metrics ([`crate::metrics`]).
//! - `GET /stats/summary` (`nodes/stats`) answers upstream's `stats/v1alpha1` Summary from the
//!   stats provider ([`crate::stats`]), the figures the eviction manager acts on.

pub mod auth;
pub mod logs;
pub mod node_stats;
pub mod resource_metrics;
pub mod streaming;
pub mod translate;

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use tokio::net::TcpListener;

use self::auth::{Attributes, Authorizer, User};
use crate::runtime::Runtime;

/// A response body: whole, or streamed (logs).
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

/// A response.
pub type Response = http::Response<Body>;

/// A whole body of `bytes`.
pub fn full_body(bytes: Bytes) -> Body {
    Full::new(bytes)
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

/// A plain-text response, as upstream's kubelet writes its errors.
pub fn text(status: u16, message: impl Into<String>) -> Response {
    let mut body = message.into();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    let mut response = http::Response::new(full_body(Bytes::from(body)));
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The kubelet's server: the node it serves, its runtime, and who decides who may call it.
#[derive(Clone)]
pub struct KubeletServer {
    node_name: String,
    runtime: Arc<dyn Runtime>,
    authorizer: Arc<dyn Authorizer>,
    pods: Arc<dyn streaming::PodLookup>,
    /// Where the host's `/proc` and `/sys` are (`/`; a fake tree in tests).
    host_root: PathBuf,
    /// The Summary API's source; `None`: `/stats/summary` answers 404.
    stats: Option<Arc<dyn crate::stats::SummaryProvider>>,
    /// The kubelet's metrics; `None`: `/metrics` answers 404.
    metrics: Option<Arc<crate::metrics::KubeletMetrics>>,
}

/// TLS for the server: `cert_pem` (the serving certificate) and its key, client certificates
/// verified against `ca_pem` when offered (a request without one gets 401).
pub fn tls_config(
    cert_pem: &str,
    key_pem: &str,
    ca_pem: &str,
) -> Result<rustls::ServerConfig, String> {
    use ferry_client::tls;
    tls::server_config(
        tls::certificates(cert_pem)?,
        tls::private_key(key_pem)?,
        ca_pem,
    )
}

impl KubeletServer {
    /// A server for `node_name`'s pods on `runtime` (their statuses from `pods`), authorizing
    /// with `authorizer`.
    pub fn new(
        node_name: impl Into<String>,
        runtime: Arc<dyn Runtime>,
        authorizer: Arc<dyn Authorizer>,
        pods: Arc<dyn streaming::PodLookup>,
    ) -> Arc<Self> {
        Self::with_host_root(node_name, runtime, authorizer, pods, "/")
    }

    /// [`KubeletServer::new`], reading the node's own figures under `host_root` instead of `/`.
    pub fn with_host_root(
        node_name: impl Into<String>,
        runtime: Arc<dyn Runtime>,
        authorizer: Arc<dyn Authorizer>,
        pods: Arc<dyn streaming::PodLookup>,
        host_root: impl Into<PathBuf>,
    ) -> Arc<Self> {
        Arc::new(KubeletServer {
            node_name: node_name.into(),
            runtime,
            authorizer,
            pods,
            host_root: host_root.into(),
            stats: None,
            metrics: None,
        })
    }

    /// The same server, answering `/stats/summary` from `stats`.
    pub fn with_stats(self: Arc<Self>, stats: Arc<dyn crate::stats::SummaryProvider>) -> Arc<Self> {
        let mut server = Arc::unwrap_or_clone(self);
        server.stats = Some(stats);
        Arc::new(server)
    }

    /// The same server, answering `/metrics` from `metrics`.
    pub fn with_metrics(
        self: Arc<Self>,
        metrics: Arc<crate::metrics::KubeletMetrics>,
    ) -> Arc<Self> {
        let mut server = Arc::unwrap_or_clone(self);
        server.metrics = Some(metrics);
        Arc::new(server)
    }

    /// Serves TLS connections from `listener` until `shutdown`
    /// ([`ferry_client::serving::serve_tls`]).
    pub async fn serve<F>(
        self: Arc<Self>,
        listener: TcpListener,
        tls: rustls::ServerConfig,
        shutdown: F,
    ) where
        F: std::future::Future<Output = ()>,
    {
        ferry_client::serving::serve_tls(
            listener,
            tls,
            shutdown,
            "kubelet server",
            move |user, request| {
                let server = self.clone();
                async move { server.handle(user, request).await }
            },
        )
        .await;
    }

    /// Answers one request from `user` (none: no client certificate).
    pub async fn handle<B>(&self, user: Option<User>, request: http::Request<B>) -> Response {
        let Some(user) = user else {
            return text(401, "Unauthorized");
        };
        let path = request.uri().path().to_string();
        let attributes = Attributes::of(request.method(), &path, &self.node_name);
        match self.authorizer.authorize(&user, &attributes).await {
            Ok(true) => {}
            Ok(false) => return text(403, attributes.forbidden(&user)),
            Err(error) => {
                tracing::warn!(%error, "kubelet authorization");
                return text(
                    500,
                    format!(
                        "Authorization error (user={}, verb={}, resource=nodes, subresource={})",
                        user.name, attributes.verb, attributes.subresource
                    ),
                );
            }
        }
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let query = request.uri().query().unwrap_or("").to_string();
        match segments.as_slice() {
            ["healthz"] => text(200, "ok"),
            ["containerLogs", namespace, pod, container] => {
                streaming::container_logs(
                    &self.runtime,
                    self.pods.as_ref(),
                    namespace,
                    pod,
                    container,
                    &query,
                )
                .await
            }
            [kind @ ("exec" | "attach"), namespace, pod, container] => {
                streaming::container_stream(&self.runtime, kind, namespace, pod, container, request)
                    .await
            }
            ["portForward", namespace, pod] => {
                streaming::port_forward(&self.runtime, namespace, pod, request).await
            }
            ["metrics", "resource"] => {
                resource_metrics::serve(&self.runtime, &self.host_root).await
            }
            ["metrics"] => match &self.metrics {
                Some(metrics) => match metrics.encode(self.runtime.as_ref()).await {
                    Ok(text) => {
                        let mut response = self::text(200, text);
                        response.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static(
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            ),
                        );
                        response
                    }
                    Err(error) => text(500, format!("encoding metrics: {error}")),
                },
                None => text(404, "404 page not found"),
            },
            ["stats", "summary"] => match &self.stats {
                Some(stats) => summary(stats.as_ref()).await,
                None => text(404, "404 page not found"),
            },
            _ => text(404, "404 page not found"),
        }
    }
}

/// `GET /stats/summary`: the summary as JSON, or upstream's 500 text when it cannot be made.
async fn summary(stats: &dyn crate::stats::SummaryProvider) -> Response {
    match stats.summary().await {
        Ok(summary) => match serde_json::to_vec(&summary) {
            Ok(json) => {
                let mut response = http::Response::new(full_body(Bytes::from(json)));
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                response
            }
            Err(error) => text(500, format!("Internal Error: {error}")),
        },
        Err(error) => text(
            500,
            format!("Internal Error: failed to get node info: {error}"),
        ),
    }
}

#[cfg(test)]
mod tests;
