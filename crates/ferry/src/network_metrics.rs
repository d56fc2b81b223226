//! The agent's network metrics, on kube-proxy's metrics address (`ferry agent
//! --proxy-metrics-bind-address`, 127.0.0.1:10249 as kube-proxy's `--metrics-bind-address`):
//! `GET /metrics` gives the service proxy's sync metrics under kube-proxy's names
//! ([`ferry_proxy::Metrics`]) and the pod network's and NetworkPolicy's sync counters;
//! `GET /healthz` answers `ok`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// The registry of one node's network components.
pub fn registry(
    proxy: &ferry_proxy::Metrics,
    pod_network: Option<&ferry_podnet::Stats>,
    policy: &ferry_podnet::policy::PolicyStats,
) -> Registry {
    let mut registry = Registry::default();
    proxy.register(&mut registry);
    let ferry = registry.sub_registry_with_prefix("ferry");
    if let Some(stats) = pod_network {
        ferry.register(
            "pod_network_syncs",
            "Route and VXLAN syncs of the pod network to other nodes",
            stats.syncs.clone(),
        );
        ferry.register(
            "pod_network_sync_failures",
            "Pod network syncs that failed (each retried)",
            stats.failures.clone(),
        );
    }
    ferry.register(
        "network_policy_syncs",
        "NetworkPolicy nft tables applied",
        policy.syncs.clone(),
    );
    ferry.register(
        "network_policy_sync_failures",
        "NetworkPolicy syncs that failed (each retried)",
        policy.failures.clone(),
    );
    registry
}

fn respond(registry: &Registry, path: &str) -> http::Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
        "/metrics" => {
            let mut text = String::new();
            match prometheus_client::encoding::text::encode(&mut text, registry) {
                Ok(()) => (200, "text/plain; version=0.0.4; charset=utf-8", text),
                Err(error) => (500, "text/plain; charset=utf-8", error.to_string()),
            }
        }
        "/healthz" => (200, "text/plain; charset=utf-8", "ok".to_string()),
        _ => (
            404,
            "text/plain; charset=utf-8",
            "404 page not found\n".to_string(),
        ),
    };
    let mut response = http::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

/// Binds `address`; a failure is logged and nothing is served (another agent on this machine
/// may hold kube-proxy's port), as the agent goes on without its metrics.
pub async fn bind(address: SocketAddr) -> Option<TcpListener> {
    match TcpListener::bind(address).await {
        Ok(listener) => Some(listener),
        Err(error) => {
            tracing::warn!(%address, %error, "not serving the network metrics (give --proxy-metrics-bind-address)");
            None
        }
    }
}

/// Serves `registry` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    registry: Registry,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let registry = Arc::new(registry);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::debug!(%error, "accepting a metrics connection");
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let response = respond(&registry, request.uri().path());
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "serving the network metrics");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_kube_proxys_metrics_and_the_networks_counters() {
        let proxy = ferry_proxy::Metrics::default();
        proxy.sync_failures.inc();
        let pod_network = ferry_podnet::Stats::default();
        let policy = ferry_podnet::policy::PolicyStats::default();
        policy.syncs.inc();
        let registry = registry(&proxy, Some(&pod_network), &policy);
        let listener = bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bound");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, registry, async {
            let _ = stopped.await;
        }));
        let get = |path: &'static str| async move {
            let stream = tokio::net::TcpStream::connect(address)
                .await
                .expect("connect");
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .expect("handshake");
            tokio::spawn(connection);
            let request = http::Request::get(path)
                .header("host", "localhost")
                .body(http_body_util::Empty::<Bytes>::new())
                .expect("request");
            let response = sender.send_request(request).await.expect("response");
            let status = response.status().as_u16();
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await
                .expect("body")
                .to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        };
        let (status, text) = get("/metrics").await;
        assert_eq!(status, 200);
        for line in [
            "kubeproxy_sync_proxy_rules_nftables_sync_failures_total{ip_family=\"IPv4\"} 1",
            "ferry_network_policy_syncs_total 1",
            "ferry_pod_network_sync_failures_total 0",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert_eq!(get("/healthz").await, (200, "ok".to_string()));
        assert_eq!(get("/nope").await.0, 404);
        let _ = stop.send(());
        server.await.expect("stopped");
    }
}
