//! The pod subresources the kubelet answers, as upstream's `LogREST` and connect REST do:
//! `pods/log` streamed from the node's kubelet (`/containerLogs/…`), and `pods/exec`,
//! `pods/attach`, `pods/portforward`, whose upgrade is proxied to the kubelet (`/exec/…`,
//! `/attach/…`, `/portForward/…`) and from there to the container runtime — the protocol
//! (SPDY or WebSocket) is whatever the client and the runtime agree on, the API server only
//! splices the bytes ([`ferry_client::upgrade`]). The pod, its container and its node are
//! checked here first, with upstream's messages; whether the container has a log yet is the
//! kubelet's to say (it knows the instances).
//!
//! `nodes/<name>/proxy/<path>` ([`node_proxy`], upstream's `NodeREST` proxy) sends the request
//! to `<path>` on the node's kubelet (`kubectl get --raw /api/v1/nodes/<n>/proxy/stats/summary`)
//! and streams the answer back as the kubelet gave it.

use std::collections::HashMap;

use ferry_client::upgrade;
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::Router;
use crate::body::{self, BodyError, Response};
use crate::kubelet::Location;
use crate::request::RequestInfo;
use crate::rest;
use crate::status::{ApiError, FieldError};

/// The containers of every kind a pod has, by name (regular, init, ephemeral).
fn container_names<'a>(pod: &'a Value, kind: &str) -> Vec<&'a str> {
    pod.pointer(&format!("/spec/{kind}"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default()
}

/// The container a request is for: the one named (which must exist), or the pod's only one
/// (upstream's `ValidateContainer`).
pub fn validate_container(pod: &Value, requested: &str) -> Result<String, ApiError> {
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let containers = container_names(pod, "containers");
    if requested.is_empty() {
        return match containers.as_slice() {
            [only] => Ok(only.to_string()),
            [] => Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}"
            ))),
            many => Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                many.join(" ")
            ))),
        };
    }
    let known = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .any(|kind| container_names(pod, kind).contains(&requested));
    if !known {
        return Err(ApiError::bad_request(format!(
            "container {requested} is not valid for pod {name}"
        )));
    }
    Ok(requested.to_string())
}

/// The kubelet's query for a log request, after upstream's `PodLogOptions` validation (422).
pub fn log_query(name: &str, query: &HashMap<String, String>) -> Result<String, ApiError> {
    let mut errors = Vec::new();
    let number = |key: &str, errors: &mut Vec<FieldError>| -> Option<i64> {
        let value = query.get(key)?;
        match value.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                errors.push(FieldError::invalid(key, value, "must be an integer"));
                None
            }
        }
    };
    if number("tailLines", &mut errors).is_some_and(|n| n < 0) {
        errors.push(FieldError::invalid_raw(
            "tailLines",
            &query["tailLines"],
            "must be greater than or equal to 0",
        ));
    }
    if number("limitBytes", &mut errors).is_some_and(|n| n < 1) {
        errors.push(FieldError::invalid_raw(
            "limitBytes",
            &query["limitBytes"],
            "must be greater than 0",
        ));
    }
    if number("sinceSeconds", &mut errors).is_some_and(|n| n < 1) {
        errors.push(FieldError::invalid_raw(
            "sinceSeconds",
            &query["sinceSeconds"],
            "must be greater than 0",
        ));
    }
    if query.contains_key("sinceSeconds") && query.contains_key("sinceTime") {
        errors.push(FieldError::forbidden(
            "",
            "at most one of `sinceTime` or `sinceSeconds` may be specified",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid("PodLogOptions", "", name, &errors));
    }
    let mut out = form_urlencoded::Serializer::new(String::new());
    for key in [
        "follow",
        "previous",
        "timestamps",
        "tailLines",
        "limitBytes",
        "sinceSeconds",
        "sinceTime",
    ] {
        if let Some(value) = query.get(key) {
            out.append_pair(key, value);
        }
    }
    Ok(out.finish())
}

/// Reads the pod of the request.
async fn read_pod(router: &Router, info: &RequestInfo) -> Result<Value, ApiError> {
    let pods = router
        .rest
        .registry
        .resolve("", "v1", "pods")
        .ok_or_else(|| ApiError::internal("pods are not served"))?;
    let (pod, _) = rest::read(&router.rest.storage, &pods, &info.namespace, &info.name).await?;
    Ok(pod)
}

/// Where the kubelet of `pod`'s node listens; 400 when the pod has no node.
async fn kubelet_of(router: &Router, pod: &Value, name: &str) -> Result<Location, ApiError> {
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if node_name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let nodes = router
        .rest
        .registry
        .resolve("", "v1", "nodes")
        .ok_or_else(|| ApiError::internal("nodes are not served"))?;
    let (node, _) = rest::read(&router.rest.storage, &nodes, "", node_name).await?;
    Location::of(&node)
}

fn kubelet_client(router: &Router) -> Result<&crate::kubelet::KubeletClient, ApiError> {
    router
        .kubelet
        .get()
        .ok_or_else(|| ApiError::unavailable("the API server has no kubelet client configured"))
}

/// A kubelet's refusal as upstream's response checker words it: 400 and 500 carry the
/// kubelet's text, others are generic.
fn kubelet_error(status: http::StatusCode, body: &[u8]) -> ApiError {
    let text = String::from_utf8_lossy(body).trim().to_string();
    match status.as_u16() {
        400 => ApiError::bad_request(text),
        500 => ApiError::internal(text),
        403 => ApiError::forbidden(text),
        404 => ApiError::not_found_message(text),
        code => ApiError::from_code(code, text),
    }
}

/// `GET pods/<name>/log`.
pub async fn log(
    router: &Router,
    info: &RequestInfo,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let kubelet_query = log_query(&info.name, query)?;
    let pod = read_pod(router, info).await?;
    let container = validate_container(&pod, query.get("container").map_or("", String::as_str))?;
    if pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        // Upstream: no node, no location, an empty log.
        return Ok(body::response(200, "text/plain", ""));
    }
    let location = kubelet_of(router, &pod, &info.name).await?;
    let tls = kubelet_client(router)?.connect(&location).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let path = format!(
        "/containerLogs/{}/{}/{}?{kubelet_query}",
        info.namespace, info.name, container
    );
    let request = http::Request::get(path)
        .header(http::header::HOST, location.authority())
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let status = response.status();
    if !status.is_success() {
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(kubelet_error(status, &body));
    }
    let mut answer =
        http::Response::new(response.into_body().map_err(BodyError::new).boxed_unsync());
    answer.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    Ok(answer)
}

/// `pods/<name>/exec|attach|portforward`: the client's upgrade proxied to the kubelet.
pub async fn stream(
    router: &Router,
    info: &RequestInfo,
    uri: &http::Uri,
    method: &http::Method,
    headers: &http::HeaderMap,
    client: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Response, ApiError> {
    let pod = read_pod(router, info).await?;
    let location = kubelet_of(router, &pod, &info.name).await?;
    let raw_query = uri.query().unwrap_or("");
    let path = match info.subresource.as_str() {
        "portforward" => {
            let mut query = form_urlencoded::Serializer::new(String::new());
            for (key, value) in form_urlencoded::parse(raw_query.as_bytes()) {
                if key == "ports" {
                    for port in value.split(',') {
                        query.append_pair("port", port.trim());
                    }
                }
            }
            format!(
                "/portForward/{}/{}?{}",
                info.namespace,
                info.name,
                query.finish()
            )
        }
        kind => {
            let requested = form_urlencoded::parse(raw_query.as_bytes())
                .find(|(k, _)| k == "container")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            let container = validate_container(&pod, &requested)?;
            if kind == "exec"
                && !form_urlencoded::parse(raw_query.as_bytes()).any(|(k, _)| k == "command")
            {
                return Err(ApiError::bad_request("you must specify at least 1 command"));
            }
            format!(
                "/{kind}/{}/{}/{container}?{raw_query}",
                info.namespace, info.name
            )
        }
    };
    let (Some(client), true) = (client, upgrade::is_upgrade(headers)) else {
        return Err(ApiError::bad_request("Upgrade request required"));
    };
    let tls = kubelet_client(router)?.connect(&location).await?;
    let forwarded = upgrade::forward(tls, method, &location.authority(), &path, headers)
        .await
        .map_err(|e| ApiError::internal(format!("error proxying to the kubelet: {e}")))?;
    Ok(forwarded.into_response(client, body::full))
}

/// The path on the kubelet a `nodes/<name>/proxy/<path>` request is for (`/` when none).
pub fn node_proxy_path(request_path: &str, node: &str) -> String {
    let marker = format!("/nodes/{node}/proxy");
    match request_path.find(&marker) {
        Some(at) => {
            let rest = &request_path[at + marker.len()..];
            if rest.is_empty() {
                "/".to_string()
            } else {
                rest.to_string()
            }
        }
        None => "/".to_string(),
    }
}

/// `nodes/<name>/proxy/<path>`: the request (method, query, body, content type) sent to the
/// node's kubelet with the API server's kubelet-client certificate; the kubelet's status,
/// content type and body come back as they are.
pub async fn node_proxy(
    router: &Router,
    info: &RequestInfo,
    uri: &http::Uri,
    method: &http::Method,
    headers: &http::HeaderMap,
    request_body: body::Body,
) -> Result<Response, ApiError> {
    let nodes = router
        .rest
        .registry
        .resolve("", "v1", "nodes")
        .ok_or_else(|| ApiError::internal("nodes are not served"))?;
    // `name:port` names a port on the node upstream; the kubelet's is the only one here.
    let name = info.name.split(':').next().unwrap_or_default();
    let (node, _) = rest::read(&router.rest.storage, &nodes, "", name).await?;
    let location = Location::of(&node)?;
    let mut path = node_proxy_path(uri.path(), &info.name);
    if let Some(query) = uri.query() {
        path = format!("{path}?{query}");
    }
    let payload = body::read(request_body, body::MAX_BODY)
        .await
        .map_err(|_| ApiError::too_large())?;
    let tls = kubelet_client(router)?.connect(&location).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut request = http::Request::builder()
        .method(method.clone())
        .uri(path)
        .header(http::header::HOST, location.authority());
    for name in [http::header::CONTENT_TYPE, http::header::ACCEPT] {
        if let Some(value) = headers.get(&name) {
            request = request.header(name, value);
        }
    }
    let request = request
        .body(http_body_util::Full::new(payload))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| ApiError::internal(format!("error trying to reach service: {e}")))?;
    let status = response.status();
    let content_type = response.headers().get(http::header::CONTENT_TYPE).cloned();
    let mut answer =
        http::Response::new(response.into_body().map_err(BodyError::new).boxed_unsync());
    *answer.status_mut() = status;
    if let Some(content_type) = content_type {
        answer
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, content_type);
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(statuses: Value) -> Value {
        json!({"metadata": {"name": "web"},
            "spec": {"containers": [{"name": "app"}, {"name": "side"}], "initContainers": [{"name": "init"}]},
            "status": {"containerStatuses": statuses}})
    }

    #[test]
    fn node_proxy_paths_are_what_follows_proxy() {
        assert_eq!(
            node_proxy_path("/api/v1/nodes/n1/proxy/stats/summary", "n1"),
            "/stats/summary"
        );
        assert_eq!(node_proxy_path("/api/v1/nodes/n1/proxy", "n1"), "/");
        assert_eq!(
            node_proxy_path("/api/v1/nodes/n1:10250/proxy/metrics/resource", "n1:10250"),
            "/metrics/resource"
        );
    }

    #[test]
    fn containers_are_named_or_the_only_one() {
        let two = pod(json!([]));
        assert_eq!(validate_container(&two, "side").expect("named"), "side");
        assert_eq!(validate_container(&two, "init").expect("init"), "init");
        assert_eq!(
            validate_container(&two, "").expect_err("ambiguous").message,
            "a container name must be specified for pod web, choose one of: [app side]"
        );
        assert_eq!(
            validate_container(&two, "nope")
                .expect_err("unknown")
                .message,
            "container nope is not valid for pod web"
        );
        let one = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "only"}]}});
        assert_eq!(validate_container(&one, "").expect("only"), "only");
    }

    #[test]
    fn log_options_are_validated_and_passed_on() {
        let query = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        let passed = log_query(
            "web",
            &query(&[("follow", "true"), ("tailLines", "5"), ("container", "app")]),
        )
        .expect("valid");
        assert_eq!(passed, "follow=true&tailLines=5");
        let invalid = log_query("web", &query(&[("tailLines", "-1")])).expect_err("negative");
        assert_eq!(invalid.code, 422);
        assert_eq!(
            invalid.message,
            "PodLogOptions \"web\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(
            log_query(
                "web",
                &query(&[("sinceSeconds", "5"), ("sinceTime", "2026-12-05T10:00:00Z")])
            )
            .expect_err("both")
            .code,
            422
        );
        assert_eq!(
            log_query("web", &query(&[("limitBytes", "0")]))
                .expect_err("zero")
                .code,
            422
        );
    }
}
