//! `pods/binding` (the scheduler's bind) and `pods/eviction` (`kubectl drain`).

use serde_json::{json, Value};

use crate::object::{meta_str, metadata_mut};
use crate::rest::{self, Request};
use crate::server::Server;
use crate::status::ApiError;

fn success(code: u16) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code})
}

/// Binds a pod to a node: sets `spec.nodeName` once and the PodScheduled condition, as
/// upstream's `BindingREST`.
pub async fn bind(server: &Server, req: &Request<'_>) -> Result<Value, ApiError> {
    let binding = rest::parse_body(&req.body, req.content_type)?;
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(
            "Binding",
            "",
            req.name,
            &[crate::status::FieldError::required("target.name", "")],
        ));
    }
    let key = rest::key(req.resource, req.namespace, req.name);
    loop {
        let (mut pod, revision) = rest::read(server, req.resource, req.namespace, req.name).await?;
        if meta_str(&pod, "deletionTimestamp").is_some() {
            return Err(ApiError::conflict(
                crate::status::Target {
                    group: "",
                    resource: "pods",
                    name: req.name,
                },
                &format!(
                    "pod {} is being deleted, cannot be assigned to a host",
                    req.name
                ),
            ));
        }
        if let Some(current) = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            return Err(ApiError::conflict(
                crate::status::Target {
                    group: "",
                    resource: "pods",
                    name: req.name,
                },
                &format!("pod {} is already assigned to node \"{current}\"", req.name),
            ));
        }
        pod["spec"]["nodeName"] = Value::String(node.clone());
        let now = crate::object::now_rfc3339();
        let conditions = pod["status"]
            .as_object_mut()
            .map(|s| s.entry("conditions").or_insert(json!([])));
        if let Some(Value::Array(conditions)) = conditions {
            conditions.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
            conditions.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}));
        }
        if let Some(Value::Object(annotations)) = binding.pointer("/metadata/annotations") {
            let meta = metadata_mut(&mut pod);
            let target = meta.entry("annotations").or_insert(json!({}));
            for (k, v) in annotations {
                target[k] = v.clone();
            }
        }
        metadata_mut(&mut pod).remove("resourceVersion");
        let bytes = bytes::Bytes::from(serde_json::to_vec(&pod).unwrap_or_default());
        match server.store.update(key.clone(), revision, bytes).await? {
            Ok(_) => return Ok(success(201)),
            Err(None) => {
                return Err(ApiError::not_found(crate::status::Target {
                    group: "",
                    resource: "pods",
                    name: req.name,
                }))
            }
            Err(Some(_)) => continue,
        }
    }
}

/// Evicts a pod: deletes it as a DELETE with the eviction's options would. PodDisruptionBudgets
/// are checked once their controller exists.
pub async fn evict(server: &Server, req: &Request<'_>) -> Result<Value, ApiError> {
    let eviction = rest::parse_body(&req.body, req.content_type)?;
    let options = eviction.get("deleteOptions").cloned().unwrap_or(json!({}));
    let delete = Request {
        body: bytes::Bytes::from(options.to_string()),
        content_type: "application/json",
        subresource: "",
        ..*req
    };
    rest::delete(server, &delete).await?;
    Ok(success(201))
}
