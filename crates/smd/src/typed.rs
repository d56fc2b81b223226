//! Walking an object alongside its schema: naming list items (by key, by value) and checking
//! that an object fits its schema before merging. The other walks (field sets, merge, compare,
//! removal) live in their own files and share these helpers.

use serde_json::Value;

use crate::error::{ValidationError, ValidationErrors};
use crate::path::PathElement;
use crate::schema::{Handler, ListRelationship, ListType, Scalar, Schema, TypeRef};
use crate::value::kind_name;

/// A value guaranteed to be `null`, for upstream's "duplicate items merge as nil".
pub(crate) static NULL: Value = Value::Null;

/// The handler of `v` under `tr`, if the type resolves.
pub(crate) fn handler_for<'a>(
    schema: &'a Schema,
    tr: &'a TypeRef,
    v: Option<&Value>,
) -> Option<Handler<'a>> {
    schema.resolve(tr)?.deduce(v).handler()
}

/// How upstream names an item of an associative list: `Key` by its key fields (missing keys
/// take the field's default), or `Value` for a set member.
pub(crate) fn list_item_element(
    schema: &Schema,
    list: &ListType,
    item: &Value,
) -> Result<PathElement, String> {
    let keys = match &list.relationship {
        ListRelationship::Atomic => {
            return Err("invalid indexing of non-associative list".to_string())
        }
        ListRelationship::Associative(keys) => keys,
    };
    if keys.is_empty() {
        return match item {
            Value::Object(_) => {
                Err("associative list without keys has an element that's a map type".to_string())
            }
            Value::Array(_) => {
                Err("not supported: associative list with lists as elements".to_string())
            }
            Value::Null => Err(
                "associative list without keys has an element that's an explicit null".to_string(),
            ),
            v => Ok(PathElement::Value(v.clone())),
        };
    }
    let fields = match item {
        Value::Null => {
            return Err("associative list with keys may not have a null element".to_string())
        }
        Value::Object(m) => m,
        _ => return Err("associative list with keys may not have non-map elements".to_string()),
    };
    let mut key = Vec::with_capacity(keys.len());
    for name in keys {
        if let Some(v) = fields.get(name) {
            key.push((name.clone(), v.clone()));
        } else if let Some(default) = key_default(schema, list, name)? {
            key.push((name.clone(), default));
        }
    }
    if key.is_empty() {
        let quoted: Vec<String> = keys.iter().map(|k| crate::value::go_quote(k)).collect();
        return Err(format!(
            "associative list with keys has an element that omits all key fields [{}] (and doesn't have default values for any key fields)",
            quoted.join(" ")
        ));
    }
    Ok(PathElement::key(key))
}

/// The OpenAPI default of a key field of a list-map item.
fn key_default(schema: &Schema, list: &ListType, name: &str) -> Result<Option<Value>, String> {
    let atom = schema.resolve(&list.element).ok_or_else(|| {
        format!("couldn't find default value for {name}: invalid elementType for list")
    })?;
    let map = atom.map.ok_or_else(|| {
        format!(
            "couldn't find default value for {name}: associative list may not have non-map types"
        )
    })?;
    Ok(map
        .fields
        .get(name)
        .and_then(|f| f.default.clone())
        .filter(|d| !d.is_null()))
}

/// Checks `value` against the schema's root type, as upstream's `AsTyped` does before any
/// merge. `allow_duplicates` accepts repeated keys in sets and list-maps (live objects may have
/// them; applied configurations may not).
pub(crate) fn validate(
    schema: &Schema,
    value: &Value,
    allow_duplicates: bool,
) -> Result<(), ValidationErrors> {
    let mut v = Validator {
        schema,
        allow_duplicates,
        errors: Vec::new(),
        path: String::new(),
    };
    v.validate(value, schema.root());
    if v.errors.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(v.errors))
    }
}

struct Validator<'a> {
    schema: &'a Schema,
    allow_duplicates: bool,
    errors: Vec<ValidationError>,
    /// The path of the value being checked, as errors print it (`.spec.containers[name="c"]`):
    /// grown and cut back as the walk goes, so only errors copy it.
    path: String,
}

impl Validator<'_> {
    fn error(&mut self, message: String) {
        self.errors.push(ValidationError {
            path: self.path.clone(),
            message,
        });
    }

    fn validate(&mut self, value: &Value, tr: &TypeRef) {
        let Some(handler) = handler_for(self.schema, tr, Some(value)) else {
            self.error("schema error: no type found matching: inlined type".to_string());
            return;
        };
        match handler {
            Handler::Scalar(s) => {
                if let Some(msg) = scalar_error(s, value) {
                    self.error(msg);
                }
            }
            Handler::List(list) => match value {
                Value::Null => {}
                Value::Array(items) => self.validate_list(list, items),
                other => self.error(format!("expected list, got {other}")),
            },
            Handler::Map(map, _) => match value {
                Value::Null => {}
                Value::Object(fields) => {
                    let len = self.path.len();
                    for (key, child) in fields {
                        self.path.push('.');
                        self.path.push_str(key);
                        let ty = map.type_of(key);
                        if ty.is_nothing() {
                            self.error("field not declared in schema".to_string());
                            // Upstream stops at the first undeclared field of a map.
                            self.path.truncate(len);
                            return;
                        }
                        self.validate(child, ty);
                        self.path.truncate(len);
                    }
                }
                other => self.error(format!("expected map, got {other}")),
            },
        }
    }

    fn validate_list(&mut self, list: &ListType, items: &[Value]) {
        use std::fmt::Write;
        let mut seen = std::collections::BTreeSet::new();
        let len = self.path.len();
        for (i, item) in items.iter().enumerate() {
            let pe = if list.relationship == ListRelationship::Atomic {
                PathElement::Index(i)
            } else {
                match list_item_element(self.schema, list, item) {
                    Ok(pe) => pe,
                    Err(e) => {
                        self.error(format!("element {i}: {e}"));
                        return;
                    }
                }
            };
            let _ = write!(self.path, "{pe}");
            if list.relationship != ListRelationship::Atomic {
                let duplicate = seen.contains(&pe);
                if duplicate && !self.allow_duplicates {
                    let at = self.path.split_off(len);
                    self.error(format!("duplicate entries for key {pe}"));
                    self.path.push_str(&at);
                }
                if !duplicate {
                    seen.insert(pe);
                }
            }
            self.validate(item, &list.element);
            self.path.truncate(len);
        }
    }
}

fn scalar_error(s: Scalar, v: &Value) -> Option<String> {
    if v.is_null() {
        return None;
    }
    match s {
        Scalar::Numeric if !v.is_number() => Some(format!(
            "expected numeric (int or float), got {}",
            kind_name(v)
        )),
        Scalar::String if !v.is_string() => Some(format!("expected string, got {v}")),
        Scalar::Boolean if !v.is_boolean() => Some(format!("expected boolean, got {v}")),
        Scalar::Untyped if v.is_array() || v.is_object() => {
            Some(format!("expected any scalar, got {v}"))
        }
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A test schema: the `T` definition of the given OpenAPI definitions.
    pub(crate) fn schema(defs: Value) -> Schema {
        let Value::Object(defs) = defs else {
            panic!("definitions must be an object")
        };
        Schema::from_openapi(&defs, "T").expect("test schema builds")
    }

    fn list_schema() -> Schema {
        schema(json!({
            "T": {"type": "object", "properties": {
                "list": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                         "items": {"type": "object", "properties": {"name": {"type": "string", "default": ""}, "value": {"type": "integer"}}}},
                "set": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "n": {"type": "integer"}
            }}
        }))
    }

    #[test]
    fn validation_table() {
        let s = list_schema();
        let cases: [(&str, Value, bool, Option<&str>); 8] = [
            ("valid", json!({"list": [{"name": "a"}], "set": ["x"], "n": 1}), false, None),
            ("unknown field", json!({"nope": 1}), false, Some(".nope: field not declared in schema")),
            ("wrong scalar", json!({"n": "x"}), false, Some(".n: expected numeric (int or float), got string")),
            (
                "duplicate key",
                json!({"list": [{"name": "a"}, {"name": "a"}]}),
                false,
                Some(r#".list: duplicate entries for key [name="a"]"#),
            ),
            ("duplicates allowed for live objects", json!({"list": [{"name": "a"}, {"name": "a"}]}), true, None),
            ("key default", json!({"list": [{"value": 1}]}), false, None),
            (
                "map in a set",
                json!({"set": [{}]}),
                false,
                Some(".set: element 0: associative list without keys has an element that's a map type"),
            ),
            ("not a list", json!({"set": "x"}), false, Some(".set: expected list, got \"x\"")),
        ];
        for (name, v, dups, want) in cases {
            let got = validate(&s, &v, dups).err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), want, "{name}");
        }
    }

    #[test]
    fn key_defaults_fill_missing_keys() {
        let s = list_schema();
        let root = s.root().clone();
        let Some(Handler::Map(m, _)) = handler_for(&s, &root, Some(&json!({}))) else {
            panic!("root is a map")
        };
        let Some(Handler::List(l)) = handler_for(&s, m.type_of("list"), Some(&json!([]))) else {
            panic!("list is a list")
        };
        let pe = list_item_element(&s, l, &json!({"value": 1})).expect("defaulted");
        assert_eq!(pe, PathElement::key([("name".to_string(), json!(""))]));
    }
}
