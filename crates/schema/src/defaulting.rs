//! Defaulting: filling in `default`s as upstream's `defaulting.Default` does, into objects
//! that are present (a missing parent is not created), within additionalProperties and items
//! too, and over non-nullable `null`s. Also the checks that defaults are valid and pruned
//! (`defaulting.ValidateDefaults`), run when a schema is accepted.

use serde_json::Value;

use crate::errors::{child, go_value, key, FieldError};
use crate::schema::{is_meta_field, Schema};
use crate::{pruning, validation};

/// Applies the defaults of `s` to `value`.
pub(crate) fn apply(value: &mut Value, s: &Schema) {
    match value {
        Value::Object(fields) => {
            for (name, property) in &s.properties {
                let Some(default) = &property.default else {
                    continue;
                };
                match fields.get_mut(name) {
                    None => {
                        fields.insert(name.clone(), default.clone());
                    }
                    Some(v) if v.is_null() && !property.nullable => *v = default.clone(),
                    Some(_) => {}
                }
            }
            let additional = s.additional_properties.as_ref().and_then(|a| a.schema());
            for (name, v) in fields.iter_mut() {
                if let Some(property) = s.properties.get(name) {
                    apply(v, property);
                } else if let Some(additional) = additional {
                    fill_null(v, additional);
                    apply(v, additional);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = &s.items {
                for item in items {
                    fill_null(item, item_schema);
                    apply(item, item_schema);
                }
            }
        }
        _ => {}
    }
}

fn fill_null(v: &mut Value, s: &Schema) {
    if let (true, false, Some(default)) = (v.is_null(), s.nullable, &s.default) {
        *v = default.clone();
    }
}

/// Upstream's `ValidateDefaults` for a structural schema: every default must validate against
/// its schema and must not carry fields pruning would drop.
pub(crate) fn validate_defaults(root: &Schema, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    validate_node(root, path, true, false, &mut errors);
    errors
}

fn validate_node(
    s: &Schema,
    path: &str,
    resource_root: bool,
    inside_meta: bool,
    errors: &mut Vec<FieldError>,
) {
    let resource_root = resource_root || s.embedded_resource;
    let inside_meta = inside_meta && !s.embedded_resource;
    // Defaults of TypeMeta/ObjectMeta fields are checked as metadata upstream; ferry leaves
    // metadata to the caller.
    if let (Some(default), false) = (&s.default, inside_meta) {
        let default_path = child(path, "default");
        let mut pruned = default.clone();
        pruning::prune(&mut pruned, s, resource_root);
        if &pruned != default {
            errors.push(FieldError::invalid(
                default_path.clone(),
                go_value(default),
                "must not have unknown fields",
            ));
        }
        errors.extend(validation::validate(s, default, &default_path));
    }
    if let Some(items) = &s.items {
        validate_node(items, &child(path, "items"), false, inside_meta, errors);
    }
    for (name, property) in &s.properties {
        let sub_inside_meta = inside_meta || (resource_root && is_meta_field(name));
        let sub_path = key(&child(path, "properties"), name);
        validate_node(property, &sub_path, false, sub_inside_meta, errors);
    }
    if let Some(additional) = s.additional_properties.as_ref().and_then(|a| a.schema()) {
        validate_node(
            additional,
            &child(path, "additionalProperties"),
            false,
            inside_meta,
            errors,
        );
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
    fn defaults_fill_present_objects_only() {
        let s = schema(json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "replicas": {"type": "integer", "default": 1},
                "strategy": {"type": "object", "properties": {"type": {"type": "string", "default": "Rolling"}}},
                "ports": {"type": "array", "items": {"type": "object", "properties": {
                    "protocol": {"type": "string", "default": "TCP"}}}},
                "limits": {"type": "object", "additionalProperties": {"type": "object", "properties": {
                    "max": {"type": "integer", "default": 10}}}},
                "name": {"type": "string", "default": "x"},
                "note": {"type": "string", "nullable": true, "default": "n"},
                "withDefaultObject": {"type": "object", "default": {}, "properties": {"a": {"type": "string", "default": "A"}}},
            }},
        }}));
        let cases = [
            (json!({}), json!({})),
            (
                json!({"spec": {}}),
                json!({"spec": {"replicas": 1, "name": "x", "note": "n", "withDefaultObject": {"a": "A"}}}),
            ),
            (
                json!({"spec": {"replicas": 3, "strategy": {}, "ports": [{"port": 80}, {"protocol": "UDP"}],
                    "limits": {"cpu": {}}, "name": null, "note": null, "withDefaultObject": {"a": "B"}}}),
                json!({"spec": {"replicas": 3, "strategy": {"type": "Rolling"}, "ports": [{"port": 80, "protocol": "TCP"}, {"protocol": "UDP"}],
                    "limits": {"cpu": {"max": 10}}, "name": "x", "note": null, "withDefaultObject": {"a": "B"}}}),
            ),
        ];
        for (mut value, want) in cases {
            let input = value.clone();
            apply(&mut value, &s);
            assert_eq!(value, want, "{input}");
        }
    }

    #[test]
    fn defaults_must_validate_and_be_pruned() {
        let s = schema(
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
                "replicas": {"type": "integer", "default": "one"},
                "obj": {"type": "object", "properties": {"a": {"type": "string"}}, "default": {"a": "x", "b": 1}},
                "ok": {"type": "string", "enum": ["a"], "default": "a"},
            }}}}),
        );
        let errors: Vec<String> = validate_defaults(&s, "spec.versions[0].schema.openAPIV3Schema")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errors,
            vec![
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[obj].default: Invalid value: map[string]interface {}{\"a\":\"x\", \"b\":1}: must not have unknown fields",
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[replicas].default: Invalid value: \"string\":  in body must be of type integer: \"string\"",
            ]
        );
    }
}
