//! The router at the end of the handler chain: non-resource paths ([`nonresource`]) and
//! resource requests ([`resource`], [`watch`]), answered in the representation the client asked
//! for ([`output`]). Everything before it — who asks, whether they may — is the filters'
//! ([`crate::filters`]).

pub mod connect;
pub mod nonresource;
pub mod output;
pub mod resource;
pub mod watch;

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::Service;

use crate::auth::{Auth, UserInfo};
use crate::body::{Request, Response};
use crate::filters::metrics::Metrics;
use crate::filters::{BoxFuture, Query};
use crate::request::RequestInfo;
use crate::rest::Rest;
use crate::status::ApiError;

/// The last service of the chain.
#[derive(Clone)]
pub struct Router {
    /// The REST verbs' storage, admission and resources.
    pub rest: Arc<Rest>,
    /// For the review resources (TokenReview, SubjectAccessReview, …).
    pub auth: Arc<Auth>,
    /// Request metrics, for the watch count.
    pub metrics: Arc<Metrics>,
    /// Every metric, for `/metrics`.
    pub registry: Arc<prometheus_client::registry::Registry>,
    /// The address clients reach the server at (`/api`'s serverAddressByClientCIDRs).
    pub address: Arc<parking_lot::Mutex<String>>,
    /// How the server reaches kubelets (logs, exec, port-forward), once configured.
    pub kubelet: Arc<std::sync::OnceLock<crate::kubelet::KubeletClient>>,
    /// The service-account token issuer, once configured.
    pub tokens: Arc<std::sync::OnceLock<Arc<crate::serviceaccount::Tokens>>>,
    /// The nodes' and pods' resource usage (`metrics.k8s.io`).
    pub resource_metrics: Arc<crate::metrics_api::ResourceMetrics>,
    /// The feature gates the server runs with.
    pub features: crate::features::FeatureGates,
    /// The APIServices: which group-versions are proxied to extension API servers.
    pub aggregator: Arc<crate::aggregator::Aggregator>,
    /// API Priority and Fairness, for its debug dump.
    pub flowcontrol: Arc<crate::flowcontrol::Controller>,
    /// The steps of pods' journeys, served under `/journey/v1/`.
    pub journeys: Arc<ferry_journey::Journeys>,
}

impl Router {
    /// `/metrics`: requests, watches and the store's latencies, in the OpenMetrics text
    /// format (which Prometheus' text parsers read).
    pub fn metrics_text(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    async fn route(self, mut request: Request) -> Response {
        let extensions = request.extensions();
        let (Some(info), Some(user)) = (
            extensions.get::<RequestInfo>().cloned(),
            extensions.get::<UserInfo>().cloned(),
        ) else {
            return ApiError::unauthorized().into_response();
        };
        let query = extensions.get::<Query>().cloned().unwrap_or_default();
        let stamps = extensions.get::<crate::journey::Stamps>().copied();
        let accept = request
            .headers()
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        // A group-version an extension API server serves is proxied to it, whatever the path
        // below it (upstream's aggregator sits in front of the local handlers).
        if info.api_prefix == "apis" {
            if let Some(remote) = self.aggregator.remote_for(&info.group, &info.version) {
                return crate::aggregator::proxy::proxy(&self.aggregator, &remote, &user, request)
                    .await;
            }
        }
        let answer = if info.is_resource_request {
            let upgrade = (info.verb == "watch"
                || ferry_client::upgrade::is_upgrade(request.headers()))
            .then(|| hyper::upgrade::on(&mut request));
            let (parts, body) = request.into_parts();
            let call = resource::Call {
                info: &info,
                query: &query.0,
                user: &user,
                headers: &parts.headers,
                uri: &parts.uri,
                method: &parts.method,
                stamps,
            };
            resource::handle(&self, call, body, upgrade).await
        } else if info.path.starts_with(crate::journey::PREFIX) {
            let watch = query
                .0
                .get("watch")
                .is_some_and(|w| crate::request::query_bool(w));
            crate::journey::handle(&self.journeys, &info, watch, request).await
        } else if crate::ui::serves(&info.path) {
            crate::ui::handle(&info)
        } else {
            nonresource::handle(&self, &info, &accept).await
        };
        answer.unwrap_or_else(ApiError::into_response)
    }
}

impl Service<Request> for Router {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> BoxFuture {
        let router = self.clone();
        Box::pin(async move { Ok(router.route(request).await) })
    }
}
