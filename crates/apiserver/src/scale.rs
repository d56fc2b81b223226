//! The `scale` subresource of deployments, replicasets, statefulsets, replicationcontrollers and
//! custom resources that have one: an `autoscaling/v1` Scale view of the replicas (where the
//! resource's [`ScalePaths`] say), as `kubectl scale` reads and writes it.
//!
//! A server-side apply of the Scale (`kubectl apply --server-side --subresource=scale`) merges
//! into the Scale with the managed fields of the object's replicas turned into the Scale's
//! `.spec.replicas`, and turns them back afterwards, as upstream's `ScaleHandler`: the Scale's
//! appliers and updaters own the object's replicas, and take them from whoever owned them.

use std::sync::{Arc, LazyLock};

use ferry_smd::{FieldSet, ManagedFields, ManagedFieldsEntry, Path};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{json, Value};

use crate::fieldmanager::FieldManager;
use crate::registry::{Resource, ScalePaths};
use crate::rest::{Request, View};
use crate::status::ApiError;

/// The Scale's apiVersion.
const SCALE_API_VERSION: &str = "autoscaling/v1";

/// The field manager of `autoscaling/v1` Scales.
static SCALE_FIELDS: LazyLock<Arc<FieldManager>> =
    LazyLock::new(|| Arc::new(FieldManager::of_type("autoscaling", "v1", "Scale")));

/// The `scale` subresource as an update view: reads give the Scale, writes set the replicas.
pub struct ScaleView;

impl View for ScaleView {
    fn read(&self, req: &Request<'_>, object: &Value) -> Result<Value, ApiError> {
        scale_of(req.resource, object)
    }

    fn write(&self, req: &Request<'_>, old: &Value, requested: Value) -> Result<Value, ApiError> {
        let paths = &req.resource.scale;
        let mut new = apply(paths, old, &requested)?;
        // An apply brings the Scale's managed fields; an update's are recorded on the object
        // afterwards (from the old object's: a subresource cannot set them).
        if let Ok(scale_fields) = ManagedFields::from_object(&requested) {
            if !scale_fields.is_empty() {
                let parent = ManagedFields::from_object(old).unwrap_or_default();
                let replicas = replicas_path(paths);
                let api_version = req.resource.info.api_version();
                to_parent(&parent, scale_fields, &replicas, &api_version).write_to(&mut new);
            }
        }
        Ok(new)
    }

    fn other_kind(&self) -> Option<(&'static str, &'static str)> {
        Some(("Scale", SCALE_API_VERSION))
    }

    fn read_for_apply(&self, req: &Request<'_>, object: &Value) -> Result<Value, ApiError> {
        let mut scale = scale_of(req.resource, object)?;
        let parent = ManagedFields::from_object(object).unwrap_or_default();
        let group = req.resource.info.group;
        to_scale(&parent, &replicas_path(&req.resource.scale), group).write_to(&mut scale);
        Ok(scale)
    }

    fn field_manager(&self, _req: &Request<'_>) -> Arc<FieldManager> {
        SCALE_FIELDS.clone()
    }
}

/// The object's desired replicas as a managed-fields path.
fn replicas_path(paths: &ScalePaths) -> Path {
    let names = pointer_tokens(&paths.spec_replicas);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    Path::fields(&names)
}

/// The reference tokens of a JSON pointer (`/spec/a~1b` → `spec`, `a/b`).
fn pointer_tokens(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// The Scale's `.spec.replicas`.
fn scale_replicas() -> FieldSet {
    FieldSet::from_paths(&[Path::fields(&["spec", "replicas"])])
}

/// Whether an entry is of the resource's group (any of its versions: ferry keeps the replicas
/// of every version of a resource at the same path).
fn of_group(entry: &ManagedFieldsEntry, group: &str) -> bool {
    match entry.api_version.split_once('/') {
        Some((g, _)) => g == group,
        None => group.is_empty(),
    }
}

/// The managed fields of a Scale: the object's managers of its replicas, each owning the
/// Scale's `.spec.replicas` (upstream's `ScaleHandler.ToSubresource`).
fn to_scale(parent: &ManagedFields, replicas: &Path, group: &str) -> ManagedFields {
    let entries = parent
        .0
        .iter()
        .filter(|e| of_group(e, group) && e.fields.has(replicas))
        .map(|e| ManagedFieldsEntry {
            api_version: SCALE_API_VERSION.to_string(),
            fields: scale_replicas(),
            ..e.clone()
        })
        .collect();
    ManagedFields(entries)
}

/// Whether two entries are one manager's, whatever apiVersion each names.
fn same_manager(a: &ManagedFieldsEntry, b: &ManagedFieldsEntry) -> bool {
    a.manager == b.manager && a.operation == b.operation && a.subresource == b.subresource
}

/// The object's managed fields after a write of its Scale (upstream's
/// `ScaleHandler.ToParent`): a manager of the replicas that is no longer one of the Scale's
/// loses them, and the Scale's managers own the object's replicas, in the object's apiVersion.
fn to_parent(
    parent: &ManagedFields,
    mut scale: ManagedFields,
    replicas: &Path,
    api_version: &str,
) -> ManagedFields {
    let group = api_version.split_once('/').map_or("", |(g, _)| g);
    let replicas_set = FieldSet::from_paths(std::slice::from_ref(replicas));
    let mut out = ManagedFields::default();
    for entry in &parent.0 {
        if !of_group(entry, group) || !entry.fields.has(replicas) {
            out.0.push(entry.clone());
            continue;
        }
        match scale.0.iter().position(|s| same_manager(s, entry)) {
            // Still a manager of the replicas: kept as it is.
            Some(i) => {
                scale.0.remove(i);
                out.0.push(entry.clone());
            }
            // The Scale's write took them.
            None => {
                let fields = entry.fields.difference(&replicas_set);
                if !fields.is_empty() {
                    out.0.push(ManagedFieldsEntry {
                        fields,
                        ..entry.clone()
                    });
                }
            }
        }
    }
    let scale_replicas = scale_replicas();
    for entry in scale.0 {
        if entry.fields.intersection(&scale_replicas).is_empty() {
            continue;
        }
        out.put(ManagedFieldsEntry {
            api_version: api_version.to_string(),
            fields: replicas_set.clone(),
            ..entry
        });
    }
    out
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
    let parts = pointer_tokens(pointer);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn managed(entries: Value) -> ManagedFields {
        ManagedFields::from_list(&entries).expect("managed fields")
    }

    fn entry(manager: &str, operation: &str, version: &str, sub: &str, fields: Value) -> Value {
        json!({"manager": manager, "operation": operation, "apiVersion": version,
            "subresource": sub, "time": "2026-12-07T10:00:00Z", "fieldsType": "FieldsV1",
            "fieldsV1": fields})
    }

    fn replicas() -> Path {
        Path::fields(&["spec", "replicas"])
    }

    fn deployment_fields() -> ManagedFields {
        managed(json!([
            entry(
                "kubectl",
                "Apply",
                "apps/v1",
                "",
                json!({"f:spec": {"f:replicas": {}, "f:paused": {}}})
            ),
            entry(
                "kube-controller-manager",
                "Update",
                "apps/v1",
                "status",
                json!({"f:status": {"f:replicas": {}}})
            ),
        ]))
    }

    #[test]
    fn the_scale_sees_the_managers_of_the_replicas() {
        let scale = to_scale(&deployment_fields(), &replicas(), "apps");
        assert_eq!(scale.0.len(), 1);
        let e = &scale.0[0];
        assert_eq!(
            (e.manager.as_str(), e.api_version.as_str()),
            ("kubectl", "autoscaling/v1")
        );
        assert_eq!(e.fields, scale_replicas());
        // Another group's entries are not the resource's.
        assert!(to_scale(&deployment_fields(), &replicas(), "batch").is_empty());
    }

    #[test]
    fn a_manager_kept_by_the_scale_keeps_its_entry() {
        let parent = deployment_fields();
        let scale = to_scale(&parent, &replicas(), "apps");
        assert_eq!(to_parent(&parent, scale, &replicas(), "apps/v1"), parent);
    }

    #[test]
    fn the_scale_writer_takes_the_replicas() {
        let parent = deployment_fields();
        let scale = managed(json!([entry(
            "hpa",
            "Update",
            "autoscaling/v1",
            "scale",
            json!({"f:spec": {"f:replicas": {}}})
        )]));
        let out = to_parent(&parent, scale, &replicas(), "apps/v1");
        let kubectl = out
            .0
            .iter()
            .find(|e| e.manager == "kubectl")
            .expect("kubectl");
        assert!(!kubectl.fields.has(&replicas()));
        assert!(kubectl.fields.has(&Path::fields(&["spec", "paused"])));
        let hpa = out.0.iter().find(|e| e.manager == "hpa").expect("hpa");
        assert_eq!(
            (hpa.api_version.as_str(), hpa.subresource.as_str()),
            ("apps/v1", "scale")
        );
        assert!(hpa.fields.has(&replicas()));
        assert_eq!(out.0.len(), 3);
    }

    #[test]
    fn an_entry_left_with_nothing_goes() {
        let parent = managed(json!([entry(
            "kubectl",
            "Apply",
            "apps/v1",
            "",
            json!({"f:spec": {"f:replicas": {}}})
        )]));
        let scale = managed(json!([entry(
            "hpa",
            "Apply",
            "autoscaling/v1",
            "scale",
            json!({"f:spec": {"f:replicas": {}}})
        )]));
        let out = to_parent(&parent, scale, &replicas(), "apps/v1");
        let managers: Vec<&str> = out.0.iter().map(|e| e.manager.as_str()).collect();
        assert_eq!(managers, ["hpa"]);
    }

    #[test]
    fn a_custom_resources_replicas_path_is_its_own() {
        let paths = ScalePaths {
            spec_replicas: "/spec/size~1count".into(),
            ..ScalePaths::default()
        };
        assert_eq!(replicas_path(&paths), Path::fields(&["spec", "size/count"]));
    }
}
