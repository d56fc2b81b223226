//! The `scale` subresource of deployments, replicasets, statefulsets, replicationcontrollers and
//! custom resources that have one: an `autoscaling/v1` Scale view of the replicas (where the
//! resource's [`ScalePaths`] say), as `kubectl scale` reads and writes it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{json, Value};

use crate::registry::{Resource, ScalePaths};
use crate::rest::{Request, View};
use crate::status::ApiError;

/// The `scale` subresource as an update view: reads give the Scale, writes set the replicas.
pub struct ScaleView;

impl View for ScaleView {
    fn read(&self, req: &Request<'_>, object: &Value) -> Result<Value, ApiError> {
        scale_of(req.resource, object)
    }

    fn write(&self, req: &Request<'_>, old: &Value, requested: Value) -> Result<Value, ApiError> {
        apply(&req.resource.scale, old, &requested)
    }

    fn is_own_kind(&self) -> bool {
        false
    }
}

/// A selector as `metav1.FormatLabelSelector` prints it; a ReplicationController's is a plain
/// map of labels.
fn selector_text(selector: Option<&Value>) -> String {
    let Some(selector) = selector.filter(|s| s.is_object()) else {
        return String::new();
    };
    let structured =
        selector.get("matchLabels").is_some() || selector.get("matchExpressions").is_some();
    let parsed = if structured {
        serde_json::from_value(selector.clone()).ok()
    } else {
        serde_json::from_value(selector.clone())
            .ok()
            .map(|labels| LabelSelector {
                match_labels: Some(labels),
                match_expressions: None,
            })
    };
    ferry_api::label_selector::format(parsed.as_ref())
}

/// The Scale object of `object`.
pub fn scale_of(resource: &Resource, object: &Value) -> Result<Value, ApiError> {
    if resource.info.subresource("scale").is_none() {
        return Err(ApiError::path_not_found());
    }
    let paths = &resource.scale;
    let meta = object.get("metadata").cloned().unwrap_or(json!({}));
    let pick = |f: &str| meta.get(f).cloned().unwrap_or(Value::Null);
    let selector = match &paths.selector {
        None => String::new(),
        Some(pointer) if paths.selector_is_text => object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        Some(pointer) => selector_text(object.pointer(pointer)),
    };
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": pick("name"), "namespace": pick("namespace"), "uid": pick("uid"),
            "resourceVersion": pick("resourceVersion"), "creationTimestamp": pick("creationTimestamp"),
        },
        "spec": {"replicas": object.pointer(&paths.spec_replicas).cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": object.pointer(&paths.status_replicas).cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    }))
}

/// `object` with the replicas a Scale asks for.
pub fn apply(paths: &ScalePaths, object: &Value, scale: &Value) -> Result<Value, ApiError> {
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
    set_pointer(&mut new, &paths.spec_replicas, json!(replicas));
    Ok(new)
}

/// Sets the value at `pointer`, making the objects on the way.
fn set_pointer(object: &mut Value, pointer: &str, value: Value) {
    let mut at = object;
    let parts: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect();
    let Some((last, path)) = parts.split_last() else {
        return;
    };
    for part in path {
        if !at.get(part).is_some_and(Value::is_object) {
            at[part.as_str()] = json!({});
        }
        at = &mut at[part.as_str()];
    }
    at[last.as_str()] = value;
}
