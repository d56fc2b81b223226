//! Merging an applied configuration into a live object (upstream's `TypedValue.Merge` with the
//! keep-the-right-hand-side rule). Nothing is removed here; removal of fields an applier
//! dropped is `apply.rs`'s pruning.
//!
//! - Scalars, atomic lists and atomic maps: the configuration's value replaces the live one.
//! - Granular maps and structs: merged key by key.
//! - Sets and list-maps: items matched by value or key and merged; the result follows the
//!   configuration's order for the items it names, with live-only items kept where they were
//!   relative to them.
//! - Two empty-or-null sides are a leaf, so `[]` vs `null` vs absent survive as written.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::path::PathElement;
use crate::schema::{Handler, ListRelationship, ListType, MapType, Schema, TypeRef};
use crate::typed::{list_item_element, NULL};

/// Merges `rhs` into `lhs` under the schema's root type. Both must have been validated.
pub(crate) fn merge(schema: &Schema, lhs: &Value, rhs: &Value) -> Value {
    merge_value(schema, Some(lhs), Some(rhs), schema.root()).unwrap_or(Value::Null)
}

fn keep_rhs(lhs: Option<&Value>, rhs: Option<&Value>) -> Option<Value> {
    rhs.or(lhs).cloned()
}

fn merge_value(
    schema: &Schema,
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    tr: &TypeRef,
) -> Option<Value> {
    let atom = schema.resolve(tr)?;
    let left = atom.deduce(lhs);
    let right = atom.deduce(rhs);
    // When the two sides are of different kinds (an untyped field changing shape), the
    // right-hand side's kind decides.
    let view = if rhs.is_none() { left } else { right };
    match view.handler()? {
        Handler::Scalar(_) => keep_rhs(lhs, rhs),
        Handler::List(list) => {
            let l = lhs.and_then(Value::as_array);
            let r = rhs.and_then(Value::as_array);
            let empty = |v: Option<&Vec<Value>>| v.is_none_or(|v| v.is_empty());
            if list.relationship == ListRelationship::Atomic || (empty(l) && empty(r)) {
                return keep_rhs(lhs, rhs);
            }
            merge_list(schema, list, l, r)
        }
        Handler::Map(map, atomic) => {
            let l = lhs.and_then(Value::as_object);
            let r = rhs.and_then(Value::as_object);
            let empty = |v: Option<&Map<String, Value>>| v.is_none_or(|v| v.is_empty());
            if atomic || (empty(l) && empty(r)) {
                return keep_rhs(lhs, rhs);
            }
            merge_map(schema, map, l, r)
        }
    }
}

fn merge_map(
    schema: &Schema,
    map: &MapType,
    lhs: Option<&Map<String, Value>>,
    rhs: Option<&Map<String, Value>>,
) -> Option<Value> {
    let mut out = Map::new();
    let keys: BTreeSet<&String> = lhs
        .into_iter()
        .flat_map(|m| m.keys())
        .chain(rhs.into_iter().flat_map(|m| m.keys()))
        .collect();
    for key in keys {
        let l = lhs.and_then(|m| m.get(key));
        let r = rhs.and_then(|m| m.get(key));
        if let Some(v) = merge_value(schema, l, r, map.type_of(key)) {
            out.insert(key.clone(), v);
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// The items of one side, named; items that cannot be named are left out (validation has
/// already rejected them in configurations). Repeated names keep the first item in the
/// index, or `null` when `duplicates_as_null` (upstream merges live duplicates as nil).
fn index_items<'v>(
    schema: &Schema,
    list: &ListType,
    items: Option<&'v Vec<Value>>,
    duplicates_as_null: bool,
) -> (Vec<(PathElement, usize)>, BTreeMap<PathElement, &'v Value>) {
    let mut order = Vec::new();
    let mut observed: BTreeMap<PathElement, &'v Value> = BTreeMap::new();
    for (i, item) in items.into_iter().flatten().enumerate() {
        let Ok(pe) = list_item_element(schema, list, item) else {
            continue;
        };
        match observed.get_mut(&pe) {
            Some(existing) => {
                if !duplicates_as_null {
                    continue;
                }
                *existing = &NULL;
            }
            None => {
                observed.insert(pe.clone(), item);
            }
        }
        order.push((pe, i));
    }
    (order, observed)
}

/// Upstream's ordered merge of associative lists: walk both sides together; an item named on
/// both sides is emitted when both walks reach it, in the right-hand side's order, and
/// left-only items are emitted where the left walk meets them.
fn merge_list(
    schema: &Schema,
    list: &ListType,
    lhs: Option<&Vec<Value>>,
    rhs: Option<&Vec<Value>>,
) -> Option<Value> {
    let (rhs_order, observed_rhs) = index_items(schema, list, rhs, false);
    let (lhs_order, observed_lhs) = index_items(schema, list, lhs, true);
    let lhs_items: &[Value] = lhs.map(Vec::as_slice).unwrap_or(&[]);

    let mut shared = rhs_order
        .iter()
        .filter(|(pe, _)| observed_lhs.contains_key(pe))
        .map(|(pe, _)| pe.clone())
        .collect::<Vec<_>>()
        .into_iter();
    let mut next_shared = shared.next();

    let mut merged_rhs = BTreeSet::new();
    let mut out = Vec::with_capacity(lhs_order.len().max(rhs_order.len()));
    let mut push = |v: Option<Value>| {
        if let Some(v) = v {
            out.push(v);
        }
    };
    let (l_len, r_len) = (lhs_order.len(), rhs_order.len());
    let (mut li, mut ri) = (0, 0);
    while li < l_len || ri < r_len {
        let (before_li, before_ri) = (li, ri);
        if li < l_len && ri < r_len {
            let pe = &lhs_order[li].0;
            if *pe == rhs_order[ri].0 {
                merged_rhs.insert(pe.clone());
                push(merge_value(
                    schema,
                    observed_lhs.get(pe).copied(),
                    observed_rhs.get(pe).copied(),
                    &list.element,
                ));
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            if observed_rhs.contains_key(pe) && next_shared.as_ref().is_some_and(|n| n != pe) {
                // A shared item, but not the one due next in the right-hand order.
                li += 1;
                continue;
            }
        }
        if li < l_len {
            let (pe, index) = &lhs_order[li];
            if !observed_rhs.contains_key(pe) {
                // A left-only item: take the item itself, even if its key repeats.
                push(merge_value(
                    schema,
                    lhs_items.get(*index),
                    None,
                    &list.element,
                ));
                li += 1;
                continue;
            } else if merged_rhs.contains(pe) {
                li += 1;
            }
        }
        if ri < r_len {
            let pe = &rhs_order[ri].0;
            merged_rhs.insert(pe.clone());
            push(merge_value(
                schema,
                observed_lhs.get(pe).copied(),
                observed_rhs.get(pe).copied(),
                &list.element,
            ));
            ri += 1;
            if next_shared.as_ref() == Some(pe) {
                next_shared = shared.next();
            }
        }
        if (li, ri) == (before_li, before_ri) {
            // Cannot happen with well-formed indexes; never loop forever on bad input.
            li += 1;
        }
    }
    (!out.is_empty()).then_some(Value::Array(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::typed::tests::schema;
    use serde_json::json;

    fn s() -> Schema {
        schema(json!({
            "T": {"type": "object", "properties": {
                "list": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                         "items": {"type": "object", "properties": {"name": {"type": "string"}, "value": {"type": "integer"}}}},
                "set": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "atomic": {"type": "array", "items": {"type": "string"}},
                "selector": {"type": "object", "x-kubernetes-map-type": "atomic", "additionalProperties": {"type": "string"}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "n": {"type": "integer"},
                "any": {"x-kubernetes-preserve-unknown-fields": true}
            }}
        }))
    }

    #[test]
    fn merge_table() {
        let s = s();
        let cases = [
            (
                "scalar replaced",
                json!({"n": 1}),
                json!({"n": 2}),
                json!({"n": 2}),
            ),
            (
                "scalar kept",
                json!({"n": 1, "labels": {"a": "x"}}),
                json!({"labels": {"b": "y"}}),
                json!({"n": 1, "labels": {"a": "x", "b": "y"}}),
            ),
            (
                "atomic list replaced",
                json!({"atomic": ["a", "b"]}),
                json!({"atomic": ["c"]}),
                json!({"atomic": ["c"]}),
            ),
            (
                "atomic map replaced",
                json!({"selector": {"a": "x"}}),
                json!({"selector": {"b": "y"}}),
                json!({"selector": {"b": "y"}}),
            ),
            (
                "set union, config order",
                json!({"set": ["a", "b", "c"]}),
                json!({"set": ["c", "d"]}),
                json!({"set": ["a", "b", "c", "d"]}),
            ),
            (
                "list-map merged by key",
                json!({"list": [{"name": "a", "value": 1}, {"name": "b", "value": 2}]}),
                json!({"list": [{"name": "b", "value": 3}, {"name": "c"}]}),
                json!({"list": [{"name": "a", "value": 1}, {"name": "b", "value": 3}, {"name": "c"}]}),
            ),
            (
                "config reorders shared items",
                json!({"list": [{"name": "a"}, {"name": "x"}, {"name": "b"}]}),
                json!({"list": [{"name": "b"}, {"name": "a"}]}),
                json!({"list": [{"name": "x"}, {"name": "b"}, {"name": "a"}]}),
            ),
            (
                "empty list kept as written",
                json!({"set": null}),
                json!({"set": []}),
                json!({"set": []}),
            ),
            (
                "untyped field changes kind",
                json!({"any": {"a": 1}}),
                json!({"any": "s"}),
                json!({"any": "s"}),
            ),
            (
                "live duplicates collapse into the config item",
                json!({"list": [{"name": "a", "value": 1}, {"name": "a", "value": 2}]}),
                json!({"list": [{"name": "a", "value": 3}]}),
                json!({"list": [{"name": "a", "value": 3}]}),
            ),
        ];
        for (name, lhs, rhs, want) in cases {
            assert_eq!(merge(&s, &lhs, &rhs), want, "{name}");
        }
    }
}
