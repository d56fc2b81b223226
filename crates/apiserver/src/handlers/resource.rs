//! Resource requests: the path's resource resolved in the registry, its scope and verbs checked
//! as upstream's installer does, then the verb (or subresource) dispatched to the REST verbs,
//! the review handler, the binding and eviction subresources, or a watch; the answer rendered as
//! the client asked.

use serde_json::Value;
use std::collections::HashMap;
use tracing::Instrument;

use super::output::Output;
use super::Router;
use crate::auth::UserInfo;
use crate::body::{self, Body, Response};
use crate::registry::SubresourceKind;
use crate::request::RequestInfo;
use crate::rest::View as _;
use crate::rest::{self, Request};
use crate::scale::ScaleView;
use crate::status::ApiError;

/// What a resource request carries besides its body.
pub struct Call<'a> {
    /// What the path asks for.
    pub info: &'a RequestInfo,
    /// The decoded query.
    pub query: &'a HashMap<String, String>,
    /// Who asks.
    pub user: &'a UserInfo,
    /// The request headers.
    pub headers: &'a http::HeaderMap,
    /// The request's URI (for the raw query of `exec`, whose `command` repeats).
    pub uri: &'a http::Uri,
    /// The request's method.
    pub method: &'a http::Method,
    /// When the filters let it through (for its journey steps).
    pub stamps: Option<crate::journey::Stamps>,
}

fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// A subresource discovery lists but ferry does not serve yet (`pods/log`, `pods/exec`, …):
/// 404 with the path, rather than the parent object.
fn not_served(info: &ferry_api::registry::ResourceInfo, subresource: &str) -> ApiError {
    ApiError {
        code: 404,
        reason: "NotFound",
        message: format!(
            "the server could not find the requested resource ({}/{subresource} is not served by ferry yet)",
            info.plural
        ),
        details: None,
    }
}

/// Answers a resource request. `upgrade` is the connection's upgrade, for a watch over
/// WebSocket or a streaming subresource (exec, attach, port-forward).
pub async fn handle(
    router: &Router,
    call: Call<'_>,
    body: Body,
    upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Response, ApiError> {
    let Call {
        info,
        query,
        user,
        headers,
        uri,
        method,
        stamps,
    } = call;
    let resource = router
        .rest
        .registry
        .resolve(&info.group, &info.version, &info.resource)
        .ok_or_else(ApiError::path_not_found)?;
    let resource_info = resource.info;
    if (resource_info.namespaced
        && info.namespace.is_empty()
        && !matches!(info.verb.as_str(), "list" | "watch"))
        || (!resource_info.namespaced && !info.namespace.is_empty())
    {
        return Err(ApiError::path_not_found());
    }
    let subresource = if info.subresource.is_empty() {
        None
    } else {
        Some(
            resource
                .subresource(&info.subresource)
                .ok_or_else(|| not_served(resource_info, &info.subresource))?,
        )
    };
    let allowed = match subresource {
        None => resource_info.has_verb(&info.verb),
        Some(_) => resource_info
            .subresource(&info.subresource)
            .is_some_and(|s| s.verbs.contains(&info.verb.as_str())),
    };
    if !allowed {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    if resource_info.group == crate::metrics_api::GROUP {
        // Scraped usage, never the store (its plurals are the core kinds' keys).
        let value = router.resource_metrics.answer(
            resource_info.plural,
            &info.namespace,
            &info.name,
            query,
        )?;
        return Ok(body::json(200, &value));
    }
    match subresource {
        Some(SubresourceKind::Log) => return super::connect::log(router, info, query).await,
        Some(SubresourceKind::Stream) => {
            return super::connect::stream(router, info, uri, method, headers, upgrade).await
        }
        Some(SubresourceKind::NodeProxy) => {
            return super::connect::node_proxy(router, info, uri, method, headers, body).await
        }
        _ => {}
    }
    let output = Output::from_accept(header(headers, "accept"))?;
    if info.verb == "watch" {
        return super::watch::respond(
            router,
            resource.clone(),
            info,
            query,
            output,
            headers,
            upgrade,
        )
        .await;
    }
    let body = body::read(body, body::MAX_BODY)
        .await
        .map_err(|_| ApiError::too_large())?;
    let warnings = parking_lot::Mutex::new(Vec::new());
    let audit_annotations = parking_lot::Mutex::new(crate::audit::Annotations::default());
    let req = Request {
        resource: &resource,
        namespace: &info.namespace,
        name: &info.name,
        subresource: &info.subresource,
        query,
        body,
        content_type: header(headers, "content-type"),
        warnings: &warnings,
        audit_annotations: &audit_annotations,
        user: Some(user),
        user_agent: header(headers, "user-agent"),
    };
    let answered = if crate::journey::is_traced(&resource, info) {
        let span = crate::journey::request_span(info, user, headers, stamps.as_ref());
        let answered = answer(router, &req, info, user, subresource, &output)
            .instrument(span.clone())
            .await;
        match &answered {
            Ok(response) => crate::journey::answered(&span, stamps.as_ref(), response, None),
            Err(error) => {
                let response = error.clone().into_response();
                crate::journey::answered(&span, stamps.as_ref(), &response, Some(error))
            }
        }
        answered
    } else {
        answer(router, &req, info, user, subresource, &output).await
    };
    // Warnings and audit annotations go with refusals too.
    let mut response = answered.unwrap_or_else(ApiError::into_response);
    // Upstream's warning format: code 299, agent "-", the text quoted.
    for warning in warnings.lock().iter() {
        let text = format!("299 - {:?}", warning);
        if let Ok(value) = http::HeaderValue::from_str(&text) {
            response.headers_mut().append("warning", value);
        }
    }
    let audit_annotations = audit_annotations.into_inner();
    if !audit_annotations.0.is_empty() {
        response.extensions_mut().insert(audit_annotations);
    }
    Ok(response)
}

/// Runs a request that is not a watch or a stream, and renders its answer as `output`.
async fn answer(
    router: &Router,
    req: &Request<'_>,
    info: &RequestInfo,
    user: &UserInfo,
    subresource: Option<SubresourceKind>,
    output: &Output,
) -> Result<Response, ApiError> {
    let resource = req.resource;
    let resource_info = resource.info;
    if info.verb == "create" && crate::review::is_review(resource_info) {
        let object = rest::parse_body(&req.body, req.content_type)?;
        let reviewed =
            crate::review::review(&router.auth, user, resource_info, &info.namespace, object)
                .await?;
        return Ok(body::json(201, &reviewed));
    }
    let api = &router.rest;
    use SubresourceKind::{Binding, Eviction, Part, Scale, Token};
    let (code, value) = match (info.verb.as_str(), subresource) {
        ("get", Some(Scale)) => (200, ScaleView.read(req, &rest::get(api, req).await?)?),
        ("get", None | Some(Part)) => (200, rest::get(api, req).await?),
        ("list", None) => (200, rest::list(api, req).await?),
        ("create", Some(Binding)) => (201, crate::binding::bind(api, req).await?),
        ("create", Some(Eviction)) => (201, crate::binding::evict(api, req).await?),
        ("create", Some(Token)) => {
            let tokens = router.tokens.get().ok_or_else(|| {
                ApiError::unavailable("the service-account token issuer is not configured")
            })?;
            (
                201,
                crate::serviceaccount::request::create_token(tokens, api, req).await?,
            )
        }
        ("create", None) => rest::create(api, req).await?,
        ("update", None | Some(Part)) => (200, rest::update(api, req, &rest::ObjectView).await?),
        ("update", Some(Scale)) => (200, rest::update(api, req, &ScaleView).await?),
        ("patch", None | Some(Part)) => rest::patch(api, req, &rest::ObjectView).await?,
        ("patch", Some(Scale)) => rest::patch(api, req, &ScaleView).await?,
        ("delete", None) => (200, rest::delete(api, req).await?),
        ("deletecollection", None) => (200, rest::delete_collection(api, req).await?),
        _ => {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ))
        }
    };
    let response = if value.get("kind").and_then(Value::as_str) == Some("Status") {
        body::json(code, &value)
    } else {
        let rendered = output.render(&*resource.printer, &value, info.verb == "list");
        if let Output::Yaml = output {
            let yaml = serde_yaml_ng::to_string(&rendered)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            body::response(code, "application/yaml", yaml)
        } else {
            body::json(code, &rendered)
        }
    };
    Ok(response)
}
