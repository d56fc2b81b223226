//! The `scale` subresource of deployments, replicasets, statefulsets and replicationcontrollers:
//! an `autoscaling/v1` Scale view of `spec.replicas`, as `kubectl scale` reads and writes it.

use ferry_api::registry::ResourceInfo;
use serde_json::{json, Value};

use crate::rest::{Request, View};
use crate::status::ApiError;

/// The `scale` subresource as an update view: reads give the Scale, writes set the replicas.
pub struct ScaleView;

impl View for ScaleView {
    fn read(&self, req: &Request<'_>, object: &Value) -> Result<Value, ApiError> {
        scale_of(req.resource.info, object)
    }

    fn write(&self, _req: &Request<'_>, old: &Value, requested: Value) -> Result<Value, ApiError> {
        apply(old, &requested)
    }

    fn is_own_kind(&self) -> bool {
        false
    }
}

/// A selector as `metav1.FormatLabelSelector` prints it (a ReplicationController's is a plain
/// map): requirements sorted by key, `k=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`.
fn selector_text(selector: Option<&Value>) -> String {
    let Some(selector) = selector.and_then(Value::as_object) else {
        return String::new();
    };
    let mut parts: Vec<(String, String)> = Vec::new();
    let labels =
        if selector.contains_key("matchLabels") || selector.contains_key("matchExpressions") {
            selector.get("matchLabels").and_then(Value::as_object)
        } else {
            Some(selector)
        };
    for (k, v) in labels.into_iter().flatten() {
        parts.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
    }
    for e in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mut values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        values.sort();
        let text = match e.get("operator").and_then(Value::as_str).unwrap_or("") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.clone(),
            "DoesNotExist" => format!("!{key}"),
            _ => continue,
        };
        parts.push((key, text));
    }
    parts.sort();
    parts
        .into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(",")
}

/// The Scale object of `object`.
pub fn scale_of(info: &ResourceInfo, object: &Value) -> Result<Value, ApiError> {
    if info.subresource("scale").is_none() {
        return Err(ApiError::path_not_found());
    }
    let meta = object.get("metadata").cloned().unwrap_or(json!({}));
    let pick = |f: &str| meta.get(f).cloned().unwrap_or(Value::Null);
    let selector = selector_text(object.pointer("/spec/selector"));
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": pick("name"), "namespace": pick("namespace"), "uid": pick("uid"),
            "resourceVersion": pick("resourceVersion"), "creationTimestamp": pick("creationTimestamp"),
        },
        "spec": {"replicas": object.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": object.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    }))
}

/// `object` with the replicas a Scale asks for.
pub fn apply(object: &Value, scale: &Value) -> Result<Value, ApiError> {
    let replicas = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if replicas < 0 {
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        return Err(ApiError::invalid(
            "Scale",
            "autoscaling",
            name,
            &[crate::status::FieldError::invalid_raw(
                "spec.replicas",
                replicas.to_string(),
                "must be greater than or equal to 0",
            )],
        ));
    }
    let mut new = object.clone();
    new["spec"]["replicas"] = json!(replicas);
    Ok(new)
}
