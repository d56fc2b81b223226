//! Validation ratcheting (`CRDValidationRatcheting`, GA in 1.33): on update, an error at a
//! value that is unchanged from its old counterpart is dropped, so an object stored under an
//! older, looser schema can still be updated elsewhere. Which new value correlates with which
//! old one, and when a value counts as unchanged, follow upstream's `CorrelatedObject`
//! (`k8s.io/apiserver/pkg/cel/common`):
//!
//! - object fields correlate by name when the schema has a property (or an
//!   `additionalProperties` schema) for them, and the field is in both;
//! - `x-kubernetes-list-type: map` items correlate by their keys; no other list item
//!   correlates (not by index either);
//! - a value is unchanged when it deep-equals its old value, with objects compared through
//!   their correlated fields (a field the schema does not name makes the object changed) and
//!   map lists through their correlated items (their order does not matter).
//!
//! An error raised where no old value correlates ratchets when its nearest correlated
//! ancestor is unchanged.

use std::collections::HashMap;

use serde_json::Value;

use crate::schema::{AdditionalProperties, Schema};

/// Where a node stands in an update's correlation of new and old values.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ratchet<'a> {
    /// Nothing ratchets: a create, or below the root's `apiVersion` and `kind`.
    Off,
    /// This node correlates with `old` (`schema` is the node's schema).
    Correlated {
        schema: &'a Schema,
        old: &'a Value,
        root: bool,
    },
    /// This node does not correlate; its nearest correlated ancestor is `new` (with `old`).
    Below {
        schema: &'a Schema,
        new: &'a Value,
        old: &'a Value,
    },
}

impl<'a> Ratchet<'a> {
    /// The correlation of an update's root values.
    pub fn root(schema: &'a Schema, old: &'a Value) -> Ratchet<'a> {
        Ratchet::Correlated {
            schema,
            old,
            root: true,
        }
    }

    /// Whether this node correlates with an old value.
    pub fn is_correlated(&self) -> bool {
        matches!(self, Ratchet::Correlated { .. })
    }

    /// Whether an error raised at the node whose value is `new` ratchets (is dropped).
    pub fn ratchets(&self, new: &Value) -> bool {
        match *self {
            Ratchet::Off => false,
            Ratchet::Correlated { schema, old, .. } => unchanged(schema, new, old),
            Ratchet::Below { schema, new, old } => unchanged(schema, new, old),
        }
    }

    /// The field `name` of the object `new` (this node's value).
    pub fn field(self, new: &'a Value, name: &str) -> Ratchet<'a> {
        let Ratchet::Correlated { schema, old, root } = self else {
            return self;
        };
        if root && (name == "apiVersion" || name == "kind") {
            // Both sides are converted to the same version: these never ratchet.
            return Ratchet::Off;
        }
        let correlated = field_schema(schema, name).and_then(|property| {
            let old = old.as_object()?.get(name)?;
            new.as_object()?.get(name)?;
            Some(Ratchet::Correlated {
                schema: property,
                old,
                root: false,
            })
        });
        correlated.unwrap_or(Ratchet::Below { schema, new, old })
    }

    /// The item `item` of the list `new` (this node's value), given the old list's
    /// [`MapList`] (see [`Ratchet::map_list`]).
    pub fn item(self, new: &'a Value, item: &Value, old_items: &MapList<'a>) -> Ratchet<'a> {
        let Ratchet::Correlated { schema, old, .. } = self else {
            return self;
        };
        let correlated = schema.items.as_deref().and_then(|items| {
            Some(Ratchet::Correlated {
                schema: items,
                old: old_items.get(item)?,
                root: false,
            })
        });
        correlated.unwrap_or(Ratchet::Below { schema, new, old })
    }

    /// The old items of this node's list, by key (empty unless it is a correlated map list).
    pub fn map_list(&self) -> MapList<'a> {
        match *self {
            Ratchet::Correlated { schema, old, .. } => MapList::new(schema, old),
            _ => MapList::default(),
        }
    }
}

/// The schema of an object's field `name`: its property, or `additionalProperties`.
fn field_schema<'s>(schema: &'s Schema, name: &str) -> Option<&'s Schema> {
    schema
        .properties
        .get(name)
        .or(match &schema.additional_properties {
            Some(AdditionalProperties::Schema(additional)) => Some(additional),
            _ => None,
        })
}

/// The items of an old `x-kubernetes-list-type: map` list by their keys (upstream's
/// `MakeMapList`): an item whose key fields are missing or not scalars has no key; the first
/// of duplicates wins.
#[derive(Debug, Default)]
pub(crate) struct MapList<'a> {
    keys: &'a [String],
    items: HashMap<String, &'a Value>,
}

impl<'a> MapList<'a> {
    /// Indexes `old` if `schema` is a map list's (otherwise nothing correlates).
    pub fn new(schema: &'a Schema, old: &'a Value) -> MapList<'a> {
        let is_map_list = schema.list_type.as_deref() == Some("map")
            && !schema.list_map_keys.is_empty()
            && schema.type_ == "array";
        let Some(old) = old.as_array().filter(|_| is_map_list) else {
            return MapList::default();
        };
        let mut list = MapList {
            keys: &schema.list_map_keys,
            items: HashMap::with_capacity(old.len()),
        };
        for item in old {
            if let Some(key) = list.key(item) {
                list.items.entry(key).or_insert(item);
            }
        }
        list
    }

    /// The old item with `item`'s keys.
    pub fn get(&self, item: &Value) -> Option<&'a Value> {
        self.items.get(&self.key(item)?).copied()
    }

    fn key(&self, item: &Value) -> Option<String> {
        let fields = item.as_object()?;
        let mut key = String::new();
        for name in self.keys {
            match fields.get(name)? {
                // The JSON text keeps `1` and `1.0` apart, as Go's int64 and float64 are.
                v @ (Value::Bool(_) | Value::Number(_) | Value::String(_)) => {
                    key.push_str(&v.to_string());
                    key.push('\0');
                }
                _ => return None,
            }
        }
        Some(key)
    }
}

/// Upstream's `CachedDeepEqual`: whether `new` is unchanged from `old`, both at `schema`.
pub(crate) fn unchanged(schema: &Schema, new: &Value, old: &Value) -> bool {
    match (new, old) {
        (Value::Array(new_items), Value::Array(old_items)) => {
            if new_items.len() != old_items.len() {
                return false;
            }
            let map_list = MapList::new(schema, old);
            if map_list.items.is_empty() && map_list.keys.is_empty() {
                // Items do not correlate: the lists are compared as they are.
                return new_items == old_items;
            }
            let Some(item_schema) = schema.items.as_deref() else {
                return false;
            };
            new_items.iter().all(|item| {
                map_list
                    .get(item)
                    .is_some_and(|old_item| unchanged(item_schema, item, old_item))
            })
        }
        (Value::Object(new_fields), Value::Object(old_fields)) => {
            new_fields.len() == old_fields.len()
                && new_fields.iter().all(|(name, value)| {
                    let Some(old_value) = old_fields.get(name) else {
                        return false;
                    };
                    field_schema(schema, name)
                        .is_some_and(|field| unchanged(field, value, old_value))
                })
        }
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => false,
        (new, old) => new == old,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::parsed;
    use serde_json::json;

    #[test]
    fn unchanged_follows_upstreams_correlation() {
        let schema = parsed(&json!({"type": "object", "properties": {
            "name": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}},
            "tags": {"type": "array", "items": {"type": "string"}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        }}));
        let base = json!({"name": "a", "labels": {"x": "1"},
            "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}], "tags": ["a", "b"]});
        let cases = [
            (
                json!({"name": "a", "labels": {"x": "1"}, "ports": [{"name": "https", "port": 443}, {"name": "http", "port": 80}], "tags": ["a", "b"]}),
                true,
            ),
            (
                json!({"name": "b", "labels": {"x": "1"}, "ports": [], "tags": ["a", "b"]}),
                false,
            ),
            (
                json!({"name": "a", "labels": {"x": "1"}, "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}], "tags": ["b", "a"]}),
                false,
            ),
            (
                json!({"name": "a", "labels": {"x": "2"}, "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}], "tags": ["a", "b"]}),
                false,
            ),
            (
                json!({"name": "a", "labels": {"x": "1"}, "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 444}], "tags": ["a", "b"]}),
                false,
            ),
        ];
        for (new, want) in cases {
            assert_eq!(unchanged(&schema, &new, &base), want, "{new}");
        }
        assert!(unchanged(
            &schema,
            &json!({"free": {}}),
            &json!({"free": {}})
        ));
        // A field no schema names makes its object changed, as upstream's Key finds no schema.
        assert!(!unchanged(
            &schema,
            &json!({"free": {"a": 1}}),
            &json!({"free": {"a": 1}})
        ));
        assert!(!unchanged(
            &schema,
            &json!({"name": 1}),
            &json!({"name": 1.0})
        ));
    }

    #[test]
    fn map_list_items_correlate_by_scalar_keys() {
        let schema = parsed(&json!({"type": "array", "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name", "protocol"],
            "items": {"type": "object", "properties": {"name": {"type": "string"}, "protocol": {"type": "string"}}}}));
        let old = json!([{"name": "a", "protocol": "TCP", "n": 1}, {"name": "a", "protocol": "TCP", "n": 2}, {"name": "b"}]);
        let list = MapList::new(&schema, &old);
        assert_eq!(
            list.get(&json!({"name": "a", "protocol": "TCP"})),
            Some(&old[0])
        );
        assert_eq!(list.get(&json!({"name": "a", "protocol": "UDP"})), None);
        assert_eq!(list.get(&json!({"name": "b"})), None);
    }
}
