//! The field set of an object (upstream's `ToFieldSet`): every leaf, every list-map item and set
//! member, every atomic list or map as a whole, every entry of a map that is not a struct, and
//! every field whose value is null or an empty map.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::error::Error;
use crate::fieldset::FieldSet;
use crate::path::PathElement;
use crate::schema::{Handler, Schema, TypeRef};
use crate::typed::{handler_for, list_item_element, validate};

impl FieldSet {
    /// The fields of `value` under the schema's root type. The value is checked against the
    /// schema first (duplicate list keys are allowed, as for live objects). Strip
    /// `metadata.managedFields` before asking.
    pub fn of(value: &Value, schema: &Schema) -> Result<FieldSet, Error> {
        validate(schema, value, true)?;
        Ok(field_set_of(schema, value))
    }
}

/// `FieldSet::of` without validation, for values already checked.
pub(crate) fn field_set_of(schema: &Schema, value: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    walk(schema, value, schema.root(), &mut Vec::new(), &mut out);
    out
}

fn walk(
    schema: &Schema,
    value: &Value,
    tr: &TypeRef,
    path: &mut Vec<PathElement>,
    out: &mut FieldSet,
) {
    let Some(handler) = handler_for(schema, tr, Some(value)) else {
        return;
    };
    match handler {
        Handler::Scalar(_) => out.insert_elements(path),
        Handler::List(list) => {
            if list.relationship == crate::schema::ListRelationship::Atomic {
                out.insert_elements(path);
                return;
            }
            let Value::Array(items) = value else {
                return;
            };
            let elements: Vec<Option<PathElement>> = items
                .iter()
                .map(|item| list_item_element(schema, list, item).ok())
                .collect();
            // Items whose key appears twice are owned only as a whole, not field by field.
            let mut seen = BTreeSet::new();
            let mut duplicates = BTreeSet::new();
            for pe in elements.iter().flatten() {
                if !seen.insert(pe.clone()) && duplicates.insert(pe.clone()) {
                    path.push(pe.clone());
                    out.insert_elements(path);
                    path.pop();
                }
            }
            for (item, pe) in items.iter().zip(elements) {
                let Some(pe) = pe else {
                    continue;
                };
                if duplicates.contains(&pe) {
                    continue;
                }
                path.push(pe);
                walk(schema, item, &list.element, path, out);
                out.insert_elements(path);
                path.pop();
            }
        }
        Handler::Map(map, atomic) => {
            if atomic {
                out.insert_elements(path);
                return;
            }
            let Value::Object(fields) = value else {
                return;
            };
            for (key, child) in fields {
                path.push(PathElement::Field(key.clone()));
                walk(schema, child, map.type_of(key), path, out);
                let empty = match child {
                    Value::Null => true,
                    Value::Object(m) => m.is_empty(),
                    _ => false,
                };
                if empty || !map.has_field(key) {
                    out.insert_elements(path);
                }
                path.pop();
            }
        }
    }
}

/// Adds to a set the struct fields that are parents of its paths (upstream's
/// `EnsureNamedFieldsAreMembers`): removing `.spec` then removes the whole struct, while map
/// entries and list items stay owned only through their own paths.
pub(crate) fn ensure_named_fields_are_members(
    schema: &Schema,
    set: &FieldSet,
    tr: &TypeRef,
) -> FieldSet {
    let atom = schema.resolve(tr);
    let map = atom.and_then(|a| a.map);
    let list = atom.and_then(|a| a.list);
    let mut members: BTreeSet<PathElement> = set.members().cloned().collect();
    let mut children = BTreeMap::new();
    for (pe, child) in set.children() {
        let nothing = TypeRef::nothing();
        let child_type = match (pe, map, list) {
            (PathElement::Field(name), Some(m), _) => {
                if m.has_field(name) {
                    members.insert(pe.clone());
                }
                m.type_of(name)
            }
            (PathElement::Key(_), _, Some(l)) => &l.element,
            _ => &nothing,
        };
        children.insert(
            pe.clone(),
            ensure_named_fields_are_members(schema, child, child_type),
        );
    }
    FieldSet::from_parts(members, children)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fieldset::tests::{p, set};
    use crate::typed::tests::schema;
    use serde_json::json;

    fn pod_like() -> Schema {
        schema(json!({
            "T": {"type": "object", "properties": {
                "metadata": {"type": "object", "properties": {
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}}
                }},
                "spec": {"type": "object", "properties": {
                    "replicas": {"type": "integer"},
                    "containers": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                                   "items": {"type": "object", "properties": {
                                       "name": {"type": "string"}, "image": {"type": "string"},
                                       "args": {"type": "array", "items": {"type": "string"}}
                                   }}},
                    "finalizers": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                    "selector": {"type": "object", "x-kubernetes-map-type": "atomic",
                                 "properties": {"app": {"type": "string"}}},
                    "empty": {"type": "object", "properties": {"a": {"type": "string"}}}
                }}
            }}
        }))
    }

    #[test]
    fn to_field_set_table() {
        let s = pod_like();
        let c = json!({"name": "c"});
        let cases = [
            (
                "leaves and map entries",
                json!({"spec": {"replicas": 1}, "metadata": {"labels": {"app": "x"}}}),
                set(&[
                    p(&[json!("spec"), json!("replicas")]),
                    p(&[json!("metadata"), json!("labels"), json!("app")]),
                ]),
            ),
            (
                "list-map items own themselves and their fields; atomic lists are leaves",
                json!({"spec": {"containers": [{"name": "c", "image": "i", "args": ["a"]}]}}),
                set(&[
                    p(&[json!("spec"), json!("containers"), c.clone()]),
                    p(&[json!("spec"), json!("containers"), c.clone(), json!("name")]),
                    p(&[
                        json!("spec"),
                        json!("containers"),
                        c.clone(),
                        json!("image"),
                    ]),
                    p(&[json!("spec"), json!("containers"), c.clone(), json!("args")]),
                ]),
            ),
            (
                "set members",
                json!({"spec": {"finalizers": ["a", "b"]}}),
                set(&[
                    p(&[json!("spec"), json!("finalizers"), json!(["=", "a"])]),
                    p(&[json!("spec"), json!("finalizers"), json!(["=", "b"])]),
                ]),
            ),
            (
                "atomic maps, empty maps and nulls are leaves",
                json!({"spec": {"selector": {"app": "x"}, "empty": {}, "replicas": null}}),
                set(&[
                    p(&[json!("spec"), json!("selector")]),
                    p(&[json!("spec"), json!("empty")]),
                    p(&[json!("spec"), json!("replicas")]),
                ]),
            ),
            (
                "duplicated items are owned whole",
                json!({"spec": {"containers": [{"name": "c"}, {"name": "c", "image": "x"}]}}),
                set(&[p(&[json!("spec"), json!("containers"), c.clone()])]),
            ),
        ];
        for (name, obj, want) in cases {
            assert_eq!(FieldSet::of(&obj, &s).expect("valid"), want, "{name}");
        }
    }

    #[test]
    fn deduced_maps_own_every_entry() {
        let got =
            FieldSet::of(&json!({"a": {"b": 1}, "l": [1]}), &Schema::deduced()).expect("valid");
        assert_eq!(
            got,
            set(&[
                p(&[json!("a")]),
                p(&[json!("a"), json!("b")]),
                p(&[json!("l")]),
            ])
        );
    }

    #[test]
    fn named_fields_become_members() {
        let s = pod_like();
        let c = json!({"name": "c"});
        let input = set(&[
            p(&[
                json!("spec"),
                json!("containers"),
                c.clone(),
                json!("image"),
            ]),
            p(&[json!("metadata"), json!("labels"), json!("app")]),
        ]);
        let got = ensure_named_fields_are_members(&s, &input, s.root());
        let want = input.union(&set(&[
            p(&[json!("spec")]),
            p(&[json!("spec"), json!("containers")]),
            p(&[json!("metadata")]),
            p(&[json!("metadata"), json!("labels")]),
        ]));
        assert_eq!(got, want);
    }
}
