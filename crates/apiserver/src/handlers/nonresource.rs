//! The non-resource paths: `/version`, health checks, `/metrics`, discovery (`/api`, `/apis`,
//! classic and aggregated) and the OpenAPI documents.

use serde_json::{json, Value};

use super::Router;
use crate::body::{self, Response};
use crate::discovery;
use crate::request::RequestInfo;
use crate::status::ApiError;

/// The Kubernetes version ferry serves.
pub const KUBERNETES_VERSION: &str = "v1.33.0+ferry";

/// `/version`, health, `/metrics` and discovery.
pub async fn handle(
    router: &Router,
    info: &RequestInfo,
    accept: &str,
) -> Result<Response, ApiError> {
    if info.verb != "get" && info.verb != "head" {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let path = info.path.trim_end_matches('/');
    let served =
        || discovery::Served::of(&router.rest.registry).with_remote(router.aggregator.discovery());
    let text = |body: String| Ok(body::text(body));
    match path {
        "/healthz" | "/livez" | "/readyz" | "/healthz/ping" | "/livez/ping" | "/readyz/ping" => {
            text("ok".into())
        }
        "/version" => Ok(body::json(
            200,
            &json!({
                "major": "1", "minor": "33", "gitVersion": KUBERNETES_VERSION,
                "gitCommit": env!("CARGO_PKG_VERSION"), "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z", "goVersion": "rust", "compiler": "rustc",
                "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH }),
            }),
        )),
        "/debug/api_priority_and_fairness/dump_priority_levels" => {
            text(router.flowcontrol.dump_priority_levels())
        }
        "/metrics" => Ok(body::response(
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            router.metrics_text(),
        )),
        "/api" if discovery::wants_aggregated(accept) => {
            Ok(aggregated(discovery::aggregated(&served(), true)))
        }
        "/apis" if discovery::wants_aggregated(accept) => {
            Ok(aggregated(discovery::aggregated(&served(), false)))
        }
        "/api" => Ok(body::json(
            200,
            &discovery::core_versions(&router.address.lock()),
        )),
        "/apis" => Ok(body::json(200, &discovery::group_list(&served()))),
        "/openapi/v2" => {
            let document = router.rest.registry.custom().v2();
            if accept.contains("protobuf") {
                return Ok(body::response(
                    200,
                    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                    document.protobuf.as_ref().clone(),
                ));
            }
            Ok(body::response(
                200,
                "application/json",
                document.json.json.clone(),
            ))
        }
        "/openapi/v3" => {
            let mut index = ferry_api::openapi::v3_index();
            for (path, document) in router.rest.registry.custom().documents() {
                index["paths"][path] = json!({
                    "serverRelativeURL": format!("/openapi/v3/{path}?hash={}", document.hash)
                });
            }
            // The remote APIServices' documents are fetched when asked for: no hash to give.
            for path in router.aggregator.openapi_v3_paths() {
                index["paths"][&path] = json!({"serverRelativeURL": format!("/openapi/v3/{path}")});
            }
            Ok(body::json(200, &index))
        }
        // OIDC discovery of the service-account token issuer.
        "/.well-known/openid-configuration" => match router.tokens.get() {
            Some(tokens) => Ok(body::json(200, &tokens.discovery())),
            None => Err(ApiError::path_not_found()),
        },
        "/openid/v1/jwks" => match router.tokens.get() {
            Some(tokens) => Ok(body::response(
                200,
                "application/jwk-set+json",
                tokens.jwks().to_string(),
            )),
            None => Err(ApiError::path_not_found()),
        },
        _ => {
            if let Some(gv) = path.strip_prefix("/openapi/v3/") {
                if let Some(document) = router.rest.registry.custom().documents().get(gv) {
                    return Ok(body::response(
                        200,
                        "application/json",
                        document.json.clone(),
                    ));
                }
                if let Some(fetched) = router.aggregator.openapi_v3_document(gv).await {
                    return fetched.map(|document| {
                        body::response(200, "application/json", document.to_vec())
                    });
                }
                return ferry_api::openapi::v3_document(gv)
                    .map(|doc| body::response(200, "application/json", doc.json.clone()))
                    .ok_or_else(ApiError::path_not_found);
            }
            if info.api_prefix == "api" && !info.version.is_empty() {
                return discovery::resource_list(&served(), "", &info.version)
                    .map(|v| body::json(200, &v))
                    .ok_or_else(ApiError::path_not_found);
            }
            if info.api_prefix == "apis" && !info.group.is_empty() {
                let found = if info.version.is_empty() {
                    discovery::group(&served(), &info.group)
                } else {
                    discovery::resource_list(&served(), &info.group, &info.version)
                };
                return found
                    .map(|v| body::json(200, &v))
                    .ok_or_else(ApiError::path_not_found);
            }
            Err(ApiError::path_not_found())
        }
    }
}

fn aggregated(value: Value) -> Response {
    body::response(200, discovery::AGGREGATED, value.to_string())
}
