//! Removing a set of fields and items from an object (upstream's `TypedValue.RemoveItems`),
//! used when an applier stops applying fields it owned alone.
//!
//! A path that is a member of the set removes the field or item with everything under it;
//! a path with only children in the set is descended into. Upstream's quirk is kept: a
//! container emptied by the removal of its children stays, as `null`.

use serde_json::{Map, Value};

use crate::fieldset::FieldSet;
use crate::path::PathElement;
use crate::schema::{Handler, ListRelationship, Schema, TypeRef};
use crate::typed::{handler_for, list_item_element};

/// `value` without the fields and items of `to_remove`.
pub(crate) fn remove_items(schema: &Schema, value: &Value, to_remove: &FieldSet) -> Value {
    remove(schema, value, to_remove, schema.root()).unwrap_or_else(|| Value::Object(Map::new()))
}

/// `None` stands for upstream's nil: the parent keeps the key with a `null` value.
fn remove(schema: &Schema, value: &Value, to_remove: &FieldSet, tr: &TypeRef) -> Option<Value> {
    match handler_for(schema, tr, Some(value))? {
        Handler::Scalar(_) => Some(value.clone()),
        Handler::List(list) => {
            let items = value.as_array().filter(|items| !items.is_empty())?;
            if list.relationship == ListRelationship::Atomic {
                return None;
            }
            let mut kept = Vec::with_capacity(items.len());
            for item in items {
                let Ok(pe) = list_item_element(schema, list, item) else {
                    kept.push(item.clone());
                    continue;
                };
                if to_remove.is_member(&pe) {
                    continue;
                }
                match to_remove.child(&pe) {
                    Some(sub) => {
                        kept.push(remove(schema, item, sub, &list.element).unwrap_or(Value::Null))
                    }
                    None => kept.push(item.clone()),
                }
            }
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        Handler::Map(map, atomic) => {
            let fields = value.as_object().filter(|m| !m.is_empty())?;
            if atomic {
                return None;
            }
            let mut kept = Map::new();
            for (key, child) in fields {
                let pe = PathElement::Field(key.clone());
                if to_remove.is_member(&pe) {
                    continue;
                }
                let v = match to_remove.child(&pe) {
                    Some(sub) => {
                        remove(schema, child, sub, map.type_of(key)).unwrap_or(Value::Null)
                    }
                    None => child.clone(),
                };
                kept.insert(key.clone(), v);
            }
            (!kept.is_empty()).then_some(Value::Object(kept))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fieldset::tests::{p, set};
    use crate::typed::tests::schema;
    use serde_json::json;

    #[test]
    fn remove_table() {
        let s = schema(json!({
            "T": {"type": "object", "properties": {
                "list": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                         "items": {"type": "object", "properties": {"name": {"type": "string"}, "v": {"type": "integer"}}}},
                "set": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "n": {"type": "integer"}
            }}
        }));
        let obj = json!({
            "list": [{"name": "a", "v": 1}, {"name": "b", "v": 2}],
            "set": ["x", "y"],
            "labels": {"k": "v"},
            "n": 1
        });
        let cases = [
            (
                "a field",
                set(&[p(&[json!("n")])]),
                json!({"list": [{"name": "a", "v": 1}, {"name": "b", "v": 2}], "set": ["x", "y"], "labels": {"k": "v"}}),
            ),
            (
                "an item",
                set(&[p(&[json!("list"), json!({"name": "a"})])]),
                json!({"list": [{"name": "b", "v": 2}], "set": ["x", "y"], "labels": {"k": "v"}, "n": 1}),
            ),
            (
                "a field of an item",
                set(&[p(&[json!("list"), json!({"name": "a"}), json!("v")])]),
                json!({"list": [{"name": "a"}, {"name": "b", "v": 2}], "set": ["x", "y"], "labels": {"k": "v"}, "n": 1}),
            ),
            (
                "a set member",
                set(&[p(&[json!("set"), json!(["=", "x"])])]),
                json!({"list": [{"name": "a", "v": 1}, {"name": "b", "v": 2}], "set": ["y"], "labels": {"k": "v"}, "n": 1}),
            ),
            (
                "emptied map stays as null",
                set(&[p(&[json!("labels"), json!("k")])]),
                json!({"list": [{"name": "a", "v": 1}, {"name": "b", "v": 2}], "set": ["x", "y"], "labels": null, "n": 1}),
            ),
        ];
        for (name, to_remove, want) in cases {
            assert_eq!(remove_items(&s, &obj, &to_remove), want, "{name}");
        }
    }
}
