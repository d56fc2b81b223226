//! What changed between two versions of an object (upstream's `TypedValue.Compare`): the
//! fields added, modified and removed. Update operations take ownership of the added and
//! modified fields; everyone loses the removed ones.
//!
//! Leaves (scalars, atomic lists and maps, empty containers) are compared by value. A granular
//! map or list that appears or disappears is itself recorded as added or removed, on top of
//! everything under it — that is where FieldsV1's `".": {}` on a new map comes from.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::fieldset::FieldSet;
use crate::path::PathElement;
use crate::schema::{Handler, ListRelationship, ListType, MapType, Schema, TypeRef};
use crate::typed::list_item_element;
use crate::value::equals;

/// The difference between two objects, as three disjoint sets of paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Fields present before and not after.
    pub removed: FieldSet,
    /// Fields present on both sides with different values.
    pub modified: FieldSet,
    /// Fields present after and not before.
    pub added: FieldSet,
}

impl Comparison {
    /// Whether the two objects were the same.
    pub fn is_same(&self) -> bool {
        self.removed.is_empty() && self.modified.is_empty() && self.added.is_empty()
    }

    /// Drops `fields`, and everything under them, from all three sets (upstream's
    /// `ExcludeFields`, used for the fields a subresource resets).
    pub fn exclude(mut self, fields: &FieldSet) -> Comparison {
        self.removed.remove_recursive(fields);
        self.modified.remove_recursive(fields);
        self.added.remove_recursive(fields);
        self
    }
}

/// Compares `lhs` (before) with `rhs` (after) under the schema's root type. Both must have
/// been validated.
pub fn compare(schema: &Schema, lhs: &Value, rhs: &Value) -> Comparison {
    let mut out = Comparison::default();
    let mut path = Vec::new();
    compare_value(
        schema,
        Some(lhs),
        Some(rhs),
        schema.root(),
        &mut path,
        &mut out,
    );
    out
}

fn compare_value(
    schema: &Schema,
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    tr: &TypeRef,
    path: &mut Vec<PathElement>,
    out: &mut Comparison,
) {
    if let (Some(l), Some(r)) = (lhs, rhs) {
        // Nothing under equal values can differ: skip the walk (an update mostly changes one
        // part of an object, a status write only its status).
        if equals(l, r) {
            return;
        }
    }
    let Some(atom) = schema.resolve(tr) else {
        return;
    };
    let left = atom.deduce(lhs);
    let right = atom.deduce(rhs);
    let in_leaf = if rhs.is_none() {
        handle(schema, left.handler(), lhs, rhs, path, out)
    } else if lhs.is_none() || left.same_branches(&right) {
        handle(schema, right.handler(), lhs, rhs, path, out)
    } else {
        // The sides are of different kinds: both readings are recorded, the right-hand one
        // decides whether this node was a leaf.
        handle(schema, left.handler(), lhs, rhs, path, out);
        handle(schema, right.handler(), lhs, rhs, path, out)
    };
    if !in_leaf {
        if lhs.is_none() {
            out.added.insert_elements(path);
        } else if rhs.is_none() {
            out.removed.insert_elements(path);
        }
    }
}

fn leaf(
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    path: &[PathElement],
    out: &mut Comparison,
) -> bool {
    match (lhs, rhs) {
        (None, _) => out.added.insert_elements(path),
        (_, None) => out.removed.insert_elements(path),
        (Some(l), Some(r)) if !equals(l, r) => out.modified.insert_elements(path),
        _ => {}
    }
    true
}

/// Handles one reading of the node; returns whether it was a leaf.
fn handle(
    schema: &Schema,
    handler: Option<Handler<'_>>,
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    path: &mut Vec<PathElement>,
    out: &mut Comparison,
) -> bool {
    match handler {
        None => false,
        Some(Handler::Scalar(_)) => leaf(lhs, rhs, path, out),
        Some(Handler::List(list)) => {
            let l = lhs.and_then(Value::as_array);
            let r = rhs.and_then(Value::as_array);
            let empty = |v: Option<&Vec<Value>>| v.is_none_or(|v| v.is_empty());
            if list.relationship == ListRelationship::Atomic || (empty(l) && empty(r)) {
                return leaf(lhs, rhs, path, out);
            }
            compare_list(schema, list, l, r, path, out);
            false
        }
        Some(Handler::Map(map, atomic)) => {
            let l = lhs.and_then(Value::as_object);
            let r = rhs.and_then(Value::as_object);
            let empty = |v: Option<&Map<String, Value>>| v.is_none_or(|v| v.is_empty());
            if atomic || (empty(l) && empty(r)) {
                return leaf(lhs, rhs, path, out);
            }
            compare_map(schema, map, l, r, path, out);
            false
        }
    }
}

fn compare_map(
    schema: &Schema,
    map: &MapType,
    lhs: Option<&Map<String, Value>>,
    rhs: Option<&Map<String, Value>>,
    path: &mut Vec<PathElement>,
    out: &mut Comparison,
) {
    // Each key once: the left side's, then the right side's that the left lacks.
    let only_right = rhs
        .into_iter()
        .flat_map(|m| m.keys())
        .filter(|k| !lhs.is_some_and(|l| l.contains_key(*k)));
    let keys = lhs.into_iter().flat_map(|m| m.keys()).chain(only_right);
    for key in keys {
        path.push(PathElement::Field(key.clone()));
        compare_value(
            schema,
            lhs.and_then(|m| m.get(key)),
            rhs.and_then(|m| m.get(key)),
            map.type_of(key),
            path,
            out,
        );
        path.pop();
    }
}

/// The items of one side grouped by name, names in first-seen order.
fn group<'v>(
    schema: &Schema,
    list: &ListType,
    items: Option<&'v Vec<Value>>,
    order: &mut Vec<PathElement>,
    seen: &mut BTreeSet<PathElement>,
) -> BTreeMap<PathElement, Vec<&'v Value>> {
    let mut groups: BTreeMap<PathElement, Vec<&'v Value>> = BTreeMap::new();
    for item in items.into_iter().flatten() {
        let Ok(pe) = list_item_element(schema, list, item) else {
            continue;
        };
        if seen.insert(pe.clone()) {
            order.push(pe.clone());
        }
        groups.entry(pe).or_default().push(item);
    }
    groups
}

fn compare_list(
    schema: &Schema,
    list: &ListType,
    lhs: Option<&Vec<Value>>,
    rhs: Option<&Vec<Value>>,
    path: &mut Vec<PathElement>,
    out: &mut Comparison,
) {
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    let left = group(schema, list, lhs, &mut order, &mut seen);
    let right = group(schema, list, rhs, &mut order, &mut seen);
    for pe in order {
        let l = left.get(&pe).map(Vec::as_slice).unwrap_or(&[]);
        let r = right.get(&pe).map(Vec::as_slice).unwrap_or(&[]);
        path.push(pe);
        match (l.len(), r.len()) {
            (0, 0) => {}
            // No duplicates: item against item.
            (0..=1, 0..=1) => compare_value(
                schema,
                l.first().copied(),
                r.first().copied(),
                &list.element,
                path,
                out,
            ),
            // Duplicates on both sides: the group is one value.
            (2.., 2..) => {
                let same = l.len() == r.len() && l.iter().zip(r).all(|(a, b)| equals(a, b));
                if !same {
                    out.modified.insert_elements(path);
                }
            }
            // Duplicates resolved: the new single item is added, the duplicate marker removed.
            (2.., _) => {
                if let Some(item) = r.first() {
                    compare_value(schema, None, Some(item), &list.element, path, out);
                }
                out.removed.insert_elements(path);
            }
            // Duplicates introduced: the old single item is removed, the marker added.
            (_, _) => {
                if let Some(item) = l.first() {
                    compare_value(schema, Some(item), None, &list.element, path, out);
                }
                out.added.insert_elements(path);
            }
        }
        path.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fieldset::tests::{p, set};
    use crate::typed::tests::schema;
    use serde_json::json;

    fn s() -> Schema {
        schema(json!({
            "T": {"type": "object", "properties": {
                "spec": {"type": "object", "properties": {
                    "replicas": {"type": "integer"},
                    "list": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                             "items": {"type": "object", "properties": {"name": {"type": "string"}, "v": {"type": "integer"}}}},
                    "atomic": {"type": "array", "items": {"type": "string"}},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}}
                }}
            }}
        }))
    }

    #[test]
    fn compare_table() {
        let s = s();
        let a = json!({"name": "a"});
        struct Case {
            name: &'static str,
            lhs: Value,
            rhs: Value,
            removed: FieldSet,
            modified: FieldSet,
            added: FieldSet,
        }
        let cases = [
            Case {
                name: "same",
                lhs: json!({"spec": {"replicas": 1}}),
                rhs: json!({"spec": {"replicas": 1.0}}),
                removed: set(&[]),
                modified: set(&[]),
                added: set(&[]),
            },
            Case {
                name: "modified leaf",
                lhs: json!({"spec": {"replicas": 1}}),
                rhs: json!({"spec": {"replicas": 2}}),
                removed: set(&[]),
                modified: set(&[p(&[json!("spec"), json!("replicas")])]),
                added: set(&[]),
            },
            Case {
                name: "added map records the map itself",
                lhs: json!({}),
                rhs: json!({"spec": {"labels": {"x": "y"}}}),
                removed: set(&[]),
                modified: set(&[]),
                added: set(&[
                    p(&[json!("spec")]),
                    p(&[json!("spec"), json!("labels")]),
                    p(&[json!("spec"), json!("labels"), json!("x")]),
                ]),
            },
            Case {
                name: "list items by key",
                lhs: json!({"spec": {"list": [{"name": "a", "v": 1}, {"name": "b"}]}}),
                rhs: json!({"spec": {"list": [{"name": "a", "v": 2}, {"name": "c"}]}}),
                removed: set(&[
                    p(&[json!("spec"), json!("list"), json!({"name": "b"})]),
                    p(&[
                        json!("spec"),
                        json!("list"),
                        json!({"name": "b"}),
                        json!("name"),
                    ]),
                ]),
                modified: set(&[p(&[json!("spec"), json!("list"), a.clone(), json!("v")])]),
                added: set(&[
                    p(&[json!("spec"), json!("list"), json!({"name": "c"})]),
                    p(&[
                        json!("spec"),
                        json!("list"),
                        json!({"name": "c"}),
                        json!("name"),
                    ]),
                ]),
            },
            Case {
                name: "atomic list is one leaf",
                lhs: json!({"spec": {"atomic": ["a"]}}),
                rhs: json!({"spec": {"atomic": ["a", "b"]}}),
                removed: set(&[]),
                modified: set(&[p(&[json!("spec"), json!("atomic")])]),
                added: set(&[]),
            },
            Case {
                name: "duplicates introduced",
                lhs: json!({"spec": {"list": [{"name": "a"}]}}),
                rhs: json!({"spec": {"list": [{"name": "a"}, {"name": "a"}]}}),
                removed: set(&[
                    p(&[json!("spec"), json!("list"), a.clone()]),
                    p(&[json!("spec"), json!("list"), a.clone(), json!("name")]),
                ]),
                modified: set(&[]),
                added: set(&[p(&[json!("spec"), json!("list"), a.clone()])]),
            },
        ];
        for c in cases {
            let got = compare(&s, &c.lhs, &c.rhs);
            assert_eq!(got.removed, c.removed, "{}: removed", c.name);
            assert_eq!(got.modified, c.modified, "{}: modified", c.name);
            assert_eq!(got.added, c.added, "{}: added", c.name);
        }
    }
}
