//! Pruning: dropping the fields a schema does not specify, as upstream's
//! `pruning.PruneWithOptions` (with unknown-field tracking), and dropping `null`s the schema
//! neither allows nor defaults (`PruneNonNullableNullsWithoutDefaults`).

use serde_json::Value;

use crate::errors::{child, index};
use crate::schema::{is_meta_field, AdditionalProperties, Schema};

/// Prunes `value` (a whole resource when `resource_root`: then `apiVersion`, `kind` and
/// `metadata` are kept at the top as in embedded resources) and returns the pruned paths,
/// sorted, as `fieldValidation=Strict` names them (`spec.foo`, `spec.list[0].bar`).
pub(crate) fn prune(value: &mut Value, s: &Schema, resource_root: bool) -> Vec<String> {
    let mut pruned = Vec::new();
    prune_node(value, Some(s), resource_root, "", &mut pruned);
    pruned.sort();
    pruned
}

fn prune_node(
    value: &mut Value,
    s: Option<&Schema>,
    resource_root: bool,
    path: &str,
    pruned: &mut Vec<String>,
) {
    if let Some(s) = s.filter(|s| s.preserve_unknown_fields == Some(true)) {
        skip_prune(value, s, resource_root, path, pruned);
        return;
    }
    match value {
        Value::Object(fields) => {
            let Some(s) = s else {
                pruned.extend(fields.keys().map(|k| child(path, k)));
                fields.clear();
                return;
            };
            let embedded = s.embedded_resource || resource_root;
            fields.retain(|name, v| {
                if embedded && is_meta_field(name) {
                    return true;
                }
                let sub_path = child(path, name);
                if let Some(property) = s.properties.get(name) {
                    prune_node(v, Some(property), false, &sub_path, pruned);
                    true
                } else if let Some(additional) = &s.additional_properties {
                    prune_node(v, additional.schema(), false, &sub_path, pruned);
                    true
                } else {
                    if !is_meta_field(name) || !path.is_empty() {
                        pruned.push(sub_path);
                    }
                    false
                }
            });
        }
        Value::Array(items) => {
            let item_schema = s.and_then(|s| s.items.as_deref());
            for (i, item) in items.iter_mut().enumerate() {
                prune_node(item, item_schema, false, &index(path, i), pruned);
            }
        }
        _ => {}
    }
}

/// Below `x-kubernetes-preserve-unknown-fields`: unknown fields stay, known ones are pruned
/// by their own schemas.
fn skip_prune(
    value: &mut Value,
    s: &Schema,
    resource_root: bool,
    path: &str,
    pruned: &mut Vec<String>,
) {
    match value {
        Value::Object(fields) => {
            let embedded = s.embedded_resource || resource_root;
            for (name, v) in fields.iter_mut() {
                if embedded && is_meta_field(name) {
                    continue;
                }
                let sub_path = child(path, name);
                if let Some(property) = s.properties.get(name) {
                    prune_node(v, Some(property), false, &sub_path, pruned);
                } else if let Some(additional) = &s.additional_properties {
                    prune_node(
                        v,
                        AdditionalProperties::schema(additional),
                        false,
                        &sub_path,
                        pruned,
                    );
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = s.items.as_deref() {
                for (i, item) in items.iter_mut().enumerate() {
                    skip_prune(item, item_schema, false, &index(path, i), pruned);
                }
            }
        }
        _ => {}
    }
}

/// Drops `null` fields whose schema is not nullable and has no default (those with a default
/// are defaulted instead).
pub(crate) fn prune_non_nullable_nulls(value: &mut Value, s: Option<&Schema>) {
    match value {
        Value::Object(fields) => fields.retain(|name, v| {
            let field_schema = s.and_then(|s| s.field(name));
            let drop =
                v.is_null() && field_schema.is_some_and(|f| !f.nullable && f.default.is_none());
            if !drop {
                prune_non_nullable_nulls(v, field_schema);
            }
            !drop
        }),
        Value::Array(items) => {
            let item_schema = s.and_then(|s| s.items.as_deref());
            for item in items {
                prune_non_nullable_nulls(item, item_schema);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::parsed;
    use serde_json::json;

    fn schema(value: Value) -> Schema {
        parsed(&value)
    }

    #[test]
    fn unknown_fields_are_pruned_and_named() {
        let s = schema(json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "known": {"type": "string"},
                "list": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                    "properties": {"typed": {"type": "object", "properties": {"x": {"type": "string"}}}}},
                "template": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object"}}},
            }},
        }}));
        let cases = [
            (
                json!({"apiVersion": "v1", "kind": "K", "metadata": {"name": "a", "x": 1}, "spec": {"known": "k", "foo": 1}, "status": {}}),
                json!({"apiVersion": "v1", "kind": "K", "metadata": {"name": "a", "x": 1}, "spec": {"known": "k"}}),
                vec!["spec.foo", "status"],
            ),
            (
                json!({"spec": {"list": [{"a": "x", "b": 1}, {"c": {"d": 1}}]}}),
                json!({"spec": {"list": [{"a": "x"}, {}]}}),
                vec!["spec.list[0].b", "spec.list[1].c"],
            ),
            (
                json!({"spec": {"labels": {"x": "y"}, "free": {"anything": {"goes": 1}, "typed": {"x": "1", "y": 2}}}}),
                json!({"spec": {"labels": {"x": "y"}, "free": {"anything": {"goes": 1}, "typed": {"x": "1"}}}}),
                vec!["spec.free.typed.y"],
            ),
            (
                json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}, "status": {}}}}),
                json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}}}),
                vec!["spec.template.status"],
            ),
            (
                json!({"spec": {"template": {"spec": {"containers": []}}}}),
                json!({"spec": {"template": {"spec": {}}}}),
                vec!["spec.template.spec.containers"],
            ),
        ];
        for (mut value, want_value, want_paths) in cases {
            let input = value.clone();
            let paths = prune(&mut value, &s, true);
            assert_eq!(value, want_value, "{input}");
            assert_eq!(paths, want_paths, "{input}");
        }
    }

    #[test]
    fn non_nullable_nulls_without_defaults_are_dropped() {
        let s = schema(
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
                "a": {"type": "string"},
                "b": {"type": "string", "nullable": true},
                "c": {"type": "string", "default": "x"},
                "m": {"type": "object", "additionalProperties": {"type": "string"}},
            }}}}),
        );
        let mut value =
            json!({"spec": {"a": null, "b": null, "c": null, "m": {"k": null}, "unknown": null}});
        prune_non_nullable_nulls(&mut value, Some(&s));
        assert_eq!(
            value,
            json!({"spec": {"b": null, "c": null, "m": {}, "unknown": null}})
        );
    }
}
