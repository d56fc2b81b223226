//! The apps group's workloads: what Deployments and ReplicaSets share (a selector that matches
//! the template and never changes, a valid pod template), the validation helpers every workload
//! uses ([`validation`]), and one file per kind for its defaults and rules.

pub mod daemonset;
pub mod deployment;
pub mod replicaset;
pub mod statefulset;
pub mod validation;

use serde_json::Value;

use crate::registry::core::pod::validate_pod_spec;
use crate::status::FieldError;

/// A workload's selector, replicas and pod template (`ValidateDeploymentSpec` and its kin).
pub fn validate_workload(object: &Value, errors: &mut Vec<FieldError>) {
    let selector = object.pointer("/spec/selector");
    let match_labels = selector
        .and_then(|s| s.get("matchLabels"))
        .and_then(Value::as_object);
    let expressions = selector
        .and_then(|s| s.get("matchExpressions"))
        .and_then(Value::as_array);
    if selector.is_none()
        || (match_labels.is_none_or(|m| m.is_empty()) && expressions.is_none_or(|e| e.is_empty()))
    {
        errors.push(FieldError::required("spec.selector", ""));
    }
    let template_labels = object
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object);
    if let Some(match_labels) = match_labels {
        let matches = match_labels
            .iter()
            .all(|(k, v)| template_labels.and_then(|t| t.get(k)) == Some(v));
        if !matches {
            errors.push(validation::labels_mismatch(object, "spec.template"));
        }
    }
    if let Some(replicas) = object.pointer("/spec/replicas").and_then(Value::as_i64) {
        if replicas < 0 {
            errors.push(FieldError::invalid_raw(
                "spec.replicas",
                replicas.to_string(),
                "must be greater than or equal to 0",
            ));
        }
    }
    match object.pointer("/spec/template/spec") {
        Some(spec) => validate_pod_spec(spec, "spec.template.spec", errors),
        None => errors.push(FieldError::required("spec.template.spec.containers", "")),
    }
}

/// A workload update: the new object's validation, and a selector that did not change.
pub fn validate_workload_update(new: &Value, old: &Value, errors: &mut Vec<FieldError>) {
    validate_workload(new, errors);
    crate::registry::generic::immutable(new, old, "/spec/selector", "spec.selector", errors);
}

/// The `Strategy` methods every apps workload shares: generation, validation.
macro_rules! workload_strategy {
    () => {
        fn tracks_generation(&self) -> bool {
            true
        }

        fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
            crate::registry::apps::validate_workload(object, errors);
        }

        fn validate_update(&self, new: &Value, old: &Value, errors: &mut Vec<FieldError>) {
            crate::registry::apps::validate_workload_update(new, old, errors);
        }
    };
}
pub(crate) use workload_strategy;
