//! The `Available` condition of APIServices, as upstream's local and remote
//! AvailableConditionControllers set it: a local APIService is always available (`Local`); a
//! remote one is when its Service exists, has the port (a ClusterIP Service), a ready endpoint
//! for it, and its server answers `GET /apis/<group>/<version>` with a success, as
//! `system:kube-aggregator` in `system:masters` (reasons `ServiceNotFound`, `ServicePortError`,
//! `EndpointsNotFound`, `MissingEndpoints`, `FailedDiscoveryCheck`, with upstream's messages).
//! The document that answer carries is what discovery lists for the APIService.
//!
//! Upstream's check does not verify the server's certificate; this one does, with the
//! APIService's TLS settings, since its answer also feeds discovery.

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use super::{proxy, Aggregator, Remote};
use crate::body;
use crate::reflector::Objects;
use crate::registry::apiextensions::customresourcedefinition::set_condition;
use crate::rest::{self, Internal, Rest};
use crate::status::ApiError;

/// How long the discovery check may take (upstream's client timeout).
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// The user the discovery check is made as, so it may always read discovery.
const CHECK_USER: &str = "system:kube-aggregator";

/// An `Available` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// `True`, `False` or `Unknown`.
    pub status: &'static str,
    /// Why, in one word.
    pub reason: &'static str,
    /// Why, for people.
    pub message: String,
}

impl Condition {
    /// A local APIService's condition.
    pub fn local() -> Condition {
        Condition {
            status: "True",
            reason: "Local",
            message: "Local APIServices are always available".into(),
        }
    }

    /// A remote APIService that passed its checks.
    pub fn passed() -> Condition {
        Condition {
            status: "True",
            reason: "Passed",
            message: "all checks passed".into(),
        }
    }

    fn unavailable(reason: &'static str, message: String) -> Condition {
        Condition {
            status: "False",
            reason,
            message,
        }
    }
}

/// Whether an APIService's `Available` condition is `True`.
pub fn is_available(apiservice: &Value) -> bool {
    apiservice
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Available" && c["status"] == "True")
}

/// What the Service and its EndpointSlices say of `remote` before anything is dialed
/// (upstream's checks, in its order).
pub fn check_service(cluster: &Objects, remote: &Remote) -> Result<(), Condition> {
    let (namespace, name) = (&remote.namespace, &remote.service);
    let Some(service) = cluster.get(&format!("/services/{namespace}/{name}")) else {
        return Err(Condition::unavailable(
            "ServiceNotFound",
            format!("service/{name} in {namespace:?} is not present"),
        ));
    };
    let service_type = service
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    if service_type != "ClusterIP" {
        return Ok(());
    }
    let port = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|p| p["port"].as_i64() == Some(i64::from(remote.port)));
    let Some(port) = port else {
        return Err(Condition::unavailable(
            "ServicePortError",
            format!(
                "service/{name} in {namespace:?} is not listening on port {}",
                remote.port
            ),
        ));
    };
    let port_name = port["name"].as_str().unwrap_or("");
    let slices: Vec<Value> = cluster
        .under(&format!("/endpointslices/{namespace}/"))
        .into_iter()
        .filter(|s| {
            s.pointer("/metadata/labels/kubernetes.io~1service-name")
                .and_then(Value::as_str)
                == Some(name)
        })
        .collect();
    if slices.is_empty() {
        return Err(Condition::unavailable(
            "EndpointsNotFound",
            format!("cannot find endpointslices for service/{name} in {namespace:?}"),
        ));
    }
    let has_endpoint = slices.iter().any(|slice| {
        let ready = slice["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e.pointer("/conditions/ready").and_then(Value::as_bool) != Some(false));
        let port = slice["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["name"].as_str().unwrap_or("") == port_name && p["port"].is_number());
        ready && port
    });
    if !has_endpoint {
        return Err(Condition::unavailable(
            "MissingEndpoints",
            format!(
                "endpointslices for service/{name} in {namespace:?} have no addresses with port name {port_name:?}"
            ),
        ));
    }
    Ok(())
}

/// Why a GET from a remote APIService's server failed.
#[derive(Debug)]
pub enum FetchError {
    /// No endpoint, or no TLS configuration to reach it with.
    Unreachable(String),
    /// The request failed or was answered with an error, as `https://<endpoint><path>` (the
    /// URL) and why.
    Failed(String, String),
    /// No answer in time, from the URL.
    TimedOut(String),
}

/// The body of a GET of `path` from `remote`'s server, asked as the aggregator itself
/// (`system:kube-aggregator`, with `system:masters`).
pub async fn fetch(
    aggregator: &Aggregator,
    remote: &Remote,
    path: &str,
) -> Result<Bytes, FetchError> {
    let (address, port) = aggregator
        .endpoint(remote)
        .map_err(FetchError::Unreachable)?;
    let host = if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    };
    let url = format!("https://{host}{path}");
    let failed = |why: String| FetchError::Failed(url.clone(), why);
    let tls = aggregator.client_config(remote).map_err(&failed)?;
    let mut request = http::Request::get(path)
        .header(http::header::HOST, &host)
        .header(http::header::ACCEPT, "application/json")
        .body(body::empty())
        .map_err(|e| failed(e.to_string()))?;
    for (header, value) in proxy::remote_headers(CHECK_USER, &["system:masters".to_string()], &[]) {
        request.headers_mut().append(header, value);
    }
    let exchange = async {
        let response = proxy::send(&address, port, &remote.server_name(), tls, request)
            .await
            .map_err(|e| format!("Get {url:?}: {e}"))?;
        let status = response.status();
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .map_err(|e| format!("Get {url:?}: {e}"))?
            .to_bytes();
        if !status.is_success() && !status.is_redirection() {
            return Err(format!("bad status from {url}: {}", status.as_u16()));
        }
        Ok(bytes)
    };
    match tokio::time::timeout(CHECK_TIMEOUT + Duration::from_secs(1), exchange).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(why)) => Err(failed(why)),
        Err(_) => Err(FetchError::TimedOut(url.clone())),
    }
}

/// GETs `remote`'s `/apis/<group>/<version>`: the resources it lists, or why the check failed.
async fn check_discovery(
    aggregator: &Aggregator,
    remote: &Remote,
) -> Result<Vec<Value>, Condition> {
    let failed = |why: String| Condition::unavailable("FailedDiscoveryCheck", why);
    let path = format!("/apis/{}/{}", remote.group, remote.version);
    match fetch(aggregator, remote, &path).await {
        Ok(bytes) => {
            let document: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            Ok(document["resources"]
                .as_array()
                .cloned()
                .unwrap_or_default())
        }
        Err(FetchError::Unreachable(why)) => Err(failed(why)),
        Err(FetchError::Failed(url, why)) => Err(failed(format!(
            "failing or missing response from {url}: {why}"
        ))),
        Err(FetchError::TimedOut(url)) => Err(failed(format!("timed out waiting for {url}"))),
    }
}

/// Checks `remote` and writes its condition when it changed: the resources its discovery
/// document lists if it passed, `None` if not.
pub async fn check(
    aggregator: &Aggregator,
    rest: &Rest,
    apiservice: &Value,
    remote: &Remote,
) -> Option<Vec<Value>> {
    let outcome = match aggregator.cluster() {
        Some(cluster) => match check_service(&cluster, remote) {
            Ok(()) => check_discovery(aggregator, remote).await,
            Err(condition) => Err(condition),
        },
        None => Err(Condition {
            status: "Unknown",
            reason: "ServiceAccessError",
            message: "the aggregator is not started".into(),
        }),
    };
    let condition = match &outcome {
        Ok(_) => Condition::passed(),
        Err(condition) => condition.clone(),
    };
    if let Err(error) = write_condition(rest, apiservice, &condition).await {
        tracing::debug!(apiservice = %remote.name, error = %error.message, "writing an APIService's condition");
    }
    if let Err(condition) = &outcome {
        tracing::debug!(apiservice = %remote.name, reason = condition.reason, message = %condition.message, "APIService unavailable");
    }
    outcome.ok()
}

/// A local APIService's condition written, if it is not already `Local`.
pub async fn mark_local(rest: &Rest, apiservice: &Value) -> Result<(), ApiError> {
    write_condition(rest, apiservice, &Condition::local()).await
}

/// Writes `condition` to `apiservice`'s status (on the revision it was read at) if it changes
/// anything; a conflict is settled by the next pass.
async fn write_condition(
    rest: &Rest,
    apiservice: &Value,
    condition: &Condition,
) -> Result<(), ApiError> {
    let mut updated = apiservice.clone();
    if !set_condition(
        &mut updated,
        "Available",
        condition.status,
        condition.reason,
        &condition.message,
    ) {
        return Ok(());
    }
    let resource = rest
        .registry
        .resolve("apiregistration.k8s.io", "v1", "apiservices")
        .ok_or_else(|| ApiError::internal("apiservices not registered"))?;
    let name = apiservice["metadata"]["name"].as_str().unwrap_or_default();
    let internal = Internal::default();
    let req = internal.request(&resource, "", name, "status", &updated);
    rest::update(rest, &req, &rest::ObjectView)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn remote(port: i32) -> Remote {
        Remote::of(&json!({"metadata": {"name": "v1alpha1.wardle.example.com"},
            "spec": {"group": "wardle.example.com", "version": "v1alpha1",
                     "service": {"namespace": "wardle", "name": "api", "port": port}}}))
        .expect("remote")
    }

    fn service() -> (String, Value) {
        (
            "/services/wardle/api".into(),
            json!({"spec": {"type": "ClusterIP", "ports": [{"name": "https", "port": 443}]}}),
        )
    }

    fn slice(ready: bool, port_name: &str) -> (String, Value) {
        (
            "/endpointslices/wardle/api-x".into(),
            json!({"metadata": {"labels": {"kubernetes.io/service-name": "api"}},
                "endpoints": [{"addresses": ["10.0.0.7"], "conditions": {"ready": ready}}],
                "ports": [{"name": port_name, "port": 8443}]}),
        )
    }

    #[test]
    fn service_checks_in_upstreams_order_and_words() {
        let reason = |objects: Vec<(String, Value)>, port: i32| {
            check_service(&Objects::from_objects(objects), &remote(port))
                .map_err(|c| (c.reason, c.message))
        };
        assert_eq!(
            reason(vec![], 443),
            Err((
                "ServiceNotFound",
                r#"service/api in "wardle" is not present"#.into()
            ))
        );
        assert_eq!(
            reason(vec![service()], 8080),
            Err((
                "ServicePortError",
                r#"service/api in "wardle" is not listening on port 8080"#.into()
            ))
        );
        assert_eq!(
            reason(vec![service()], 443),
            Err((
                "EndpointsNotFound",
                r#"cannot find endpointslices for service/api in "wardle""#.into()
            ))
        );
        assert_eq!(
            reason(vec![service(), slice(false, "https")], 443),
            Err((
                "MissingEndpoints",
                r#"endpointslices for service/api in "wardle" have no addresses with port name "https""#.into()
            ))
        );
        assert_eq!(
            reason(vec![service(), slice(true, "other")], 443).map_err(|e| e.0),
            Err("MissingEndpoints")
        );
        assert_eq!(reason(vec![service(), slice(true, "https")], 443), Ok(()));
        let external = (
            "/services/wardle/api".to_string(),
            json!({"spec": {"type": "ExternalName", "externalName": "api.example.com"}}),
        );
        assert_eq!(reason(vec![external], 443), Ok(()));
    }

    #[test]
    fn conditions_as_upstream_writes_them() {
        let mut apiservice = json!({"metadata": {"name": "v1.apps"}});
        let local = Condition::local();
        assert!(set_condition(
            &mut apiservice,
            "Available",
            local.status,
            local.reason,
            &local.message
        ));
        assert!(is_available(&apiservice));
        assert_eq!(
            apiservice["status"]["conditions"][0]["message"],
            "Local APIServices are always available"
        );
        assert!(!set_condition(
            &mut apiservice,
            "Available",
            local.status,
            local.reason,
            &local.message
        ));
    }
}
