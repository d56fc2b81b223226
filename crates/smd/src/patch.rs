//! Merging a partial object into a live one without field ownership, as upstream's
//! MutatingAdmissionPolicy applies an `ApplyConfiguration` (`TypedValue.Merge` after a check
//! that the configuration sets no atomic list, map or struct, whose unnamed members the merge
//! would drop).

use serde_json::Value;

use crate::error::ValidationErrors;
use crate::path::PathElement;
use crate::schema::{Handler, ListRelationship, Schema, TypeRef};
use crate::typed::validate;

/// Why a configuration cannot be merged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The configuration or the live object does not fit the schema.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// The configuration sets atomic values (their paths, as `.spec.selector`).
    #[error("may not mutate atomic arrays, maps or structs: {}", .0.join(", "))]
    Atomic(Vec<String>),
}

/// Merges `config` into `live` under `schema`: fields it sets replace the live ones, granular
/// maps and structs merge key by key, associative lists item by item; nothing is removed and
/// nobody is recorded as a manager.
pub fn merge_config(schema: &Schema, live: &Value, config: &Value) -> Result<Value, PatchError> {
    validate(schema, config, false)?;
    validate(schema, live, true)?;
    let atomics = atomic_paths(schema, config);
    if !atomics.is_empty() {
        return Err(PatchError::Atomic(atomics));
    }
    Ok(crate::merge::merge(schema, live, config))
}

/// The paths in `value` (validated) whose type is an atomic list, map or struct, in walk
/// order.
fn atomic_paths(schema: &Schema, value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    walk(schema, value, schema.root(), &mut String::new(), &mut found);
    found
}

fn walk(schema: &Schema, value: &Value, tr: &TypeRef, path: &mut String, found: &mut Vec<String>) {
    let Some(atom) = schema.resolve(tr) else {
        return;
    };
    match (atom.deduce(Some(value)).handler(), value) {
        (Some(Handler::Map(map, atomic)), Value::Object(fields)) => {
            if atomic {
                found.push(path.clone());
            }
            for (key, item) in fields {
                // Only the fields the struct names are looked into, as upstream.
                if let Some(field) = map.fields.get(key) {
                    let len = path.len();
                    path.push_str(&PathElement::Field(key.clone()).to_string());
                    walk(schema, item, &field.ty, path, found);
                    path.truncate(len);
                }
            }
        }
        (Some(Handler::List(list)), Value::Array(items)) => {
            if list.relationship == ListRelationship::Atomic {
                found.push(path.clone());
            }
            for (index, item) in items.iter().enumerate() {
                let len = path.len();
                // Items by index, as upstream names them here (not by key).
                path.push_str(&format!("[{index}]"));
                walk(schema, item, &list.element, path, found);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::typed::tests::schema;
    use serde_json::json;

    fn s() -> Schema {
        schema(json!({
            "T": {"type": "object", "properties": {
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "replicas": {"type": "integer"},
                "containers": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "properties": {"name": {"type": "string"}, "image": {"type": "string"}}}},
                "selector": {"type": "object", "x-kubernetes-map-type": "atomic", "additionalProperties": {"type": "string"}},
                "args": {"type": "array", "items": {"type": "string"}}
            }}
        }))
    }

    #[test]
    fn configurations_merge_without_removing() {
        let live = json!({"labels": {"app": "web"}, "replicas": 1,
            "containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]});
        let config = json!({"labels": {"env": "prod"}, "replicas": 3,
            "containers": [{"name": "b", "image": "b:2"}]});
        let merged = merge_config(&s(), &live, &config).expect("merges");
        assert_eq!(merged["labels"], json!({"app": "web", "env": "prod"}));
        assert_eq!(merged["replicas"], 3);
        assert_eq!(
            merged["containers"],
            json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:2"}])
        );
    }

    #[test]
    fn atomic_values_are_refused() {
        let live = json!({"selector": {"app": "web"}});
        let config = json!({"selector": {"app": "db"}, "args": ["x"]});
        let error = merge_config(&s(), &live, &config).expect_err("atomic");
        assert_eq!(
            error.to_string(),
            "may not mutate atomic arrays, maps or structs: .args, .selector"
        );
        let invalid = merge_config(&s(), &live, &json!({"replicas": "many"}));
        assert!(
            matches!(invalid, Err(PatchError::Invalid(_))),
            "{invalid:?}"
        );
    }
}
