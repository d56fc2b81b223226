//! What client-go's own metrics count, under its names: the requests a process's clients made
//! (`rest_client_requests_total{code,host,method}`, counted by [`RequestsLayer`], which
//! [`crate::journey::client`] and the controllers' clients carry) and whether the process leads
//! (`leader_election_master_status{name}`, set by [`crate::leader::Elector`]). Both live in the
//! process, as client-go's global registry: a component adds them to its registry with
//! [`register`].

use std::sync::{Arc, LazyLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::clientbuilder::BoxFuture;

/// The labels of `rest_client_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The response's status code (`<error>` when none came).
    pub code: &'static str,
    /// The API server's `host:port`.
    pub host: Arc<str>,
    /// The request's method.
    pub method: &'static str,
}

/// The labels of `leader_election_master_status`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LeaseLabels {
    /// The Lease's name.
    pub name: Arc<str>,
}

/// Requests made by this process's clients.
pub static REST_CLIENT_REQUESTS: LazyLock<Family<RequestLabels, Counter>> =
    LazyLock::new(Family::default);

/// 1 while this process holds the Lease named by the label, 0 otherwise.
pub static LEADER_ELECTION_MASTER_STATUS: LazyLock<Family<LeaseLabels, Gauge>> =
    LazyLock::new(Family::default);

/// Adds the process's client metrics to `registry`.
pub fn register(registry: &mut Registry) {
    registry.register(
        "rest_client_requests",
        "Number of HTTP requests, partitioned by status code, method, and host.",
        REST_CLIENT_REQUESTS.clone(),
    );
    registry.register(
        "leader_election_master_status",
        "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease.",
        LEADER_ELECTION_MASTER_STATUS.clone(),
    );
}

/// The label of a status code, without allocating: the codes an API server answers, and
/// `<other>` for the rest.
fn code_label(code: u16) -> &'static str {
    match code {
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        406 => "406",
        409 => "409",
        410 => "410",
        415 => "415",
        422 => "422",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        _ => "<other>",
    }
}

fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        _ => "OTHER",
    }
}

/// Counts each request of a client in [`REST_CLIENT_REQUESTS`].
#[derive(Clone)]
pub struct RequestsLayer {
    host: Arc<str>,
}

impl RequestsLayer {
    /// Counts requests to the API server at `url` (its `host:port` is the label).
    pub fn new(url: &http::Uri) -> RequestsLayer {
        let host = match (url.host(), url.port_u16()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            _ => String::new(),
        };
        RequestsLayer { host: host.into() }
    }
}

impl<S> tower::Layer<S> for RequestsLayer {
    type Service = Requests<S>;

    fn layer(&self, inner: S) -> Requests<S> {
        Requests {
            inner,
            host: self.host.clone(),
        }
    }
}

/// The service of [`RequestsLayer`].
#[derive(Clone)]
pub struct Requests<S> {
    inner: S,
    host: Arc<str>,
}

impl<S, B, R> tower::Service<http::Request<B>> for Requests<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<http::Response<R>, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = method_label(request.method());
        let host = self.host.clone();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let result = answer.await;
            let code = match &result {
                Ok(response) => code_label(response.status().as_u16()),
                Err(_) => "<error>",
            };
            REST_CLIENT_REQUESTS
                .get_or_create(&RequestLabels { code, host, method })
                .inc();
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Layer as _, ServiceExt as _};

    #[tokio::test]
    async fn requests_are_counted_by_code_host_and_method() {
        let url: http::Uri = "https://10.9.8.7:6443".parse().expect("url");
        let server = tower::service_fn(|_request: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(
                http::Response::builder()
                    .status(409)
                    .body(())
                    .unwrap_or_default(),
            )
        });
        let counted = RequestsLayer::new(&url).layer(server);
        let request = http::Request::put("/api/v1/x").body(()).expect("request");
        counted.oneshot(request).await.expect("answer");
        let mut registry = Registry::default();
        register(&mut registry);
        LEADER_ELECTION_MASTER_STATUS
            .get_or_create(&LeaseLabels {
                name: "kube-scheduler".into(),
            })
            .set(1);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(
            text.contains(
                r#"rest_client_requests_total{code="409",host="10.9.8.7:6443",method="PUT"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"leader_election_master_status{name="kube-scheduler"} 1"#),
            "{text}"
        );
    }
}
