//! The FieldsV1 encoding of a field set, as stored in `metadata.managedFields[].fieldsV1`.
//!
//! Each level is a JSON object whose keys are path elements — `f:<name>`, `k:<json object of
//! the key fields>`, `v:<json value>`, `i:<index>` — and whose values are the next level. An
//! element with an empty object is a member; `".": {}` inside an element's object makes the
//! element a member as well as a parent. Keys of unknown element types are dropped, as
//! upstream does, so that a newer encoding can be read.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::error::Error;
use crate::fieldset::FieldSet;
use crate::path::PathElement;
use crate::value::{go_json, go_json_string};

/// Parses one serialized path element; `Ok(None)` for an element type this version does not
/// know.
pub(crate) fn parse_path_element(s: &str) -> Result<Option<PathElement>, Error> {
    let bytes = s.as_bytes();
    if bytes.len() < 2 {
        return Err(Error::FieldsV1(format!(
            "key must be 2 characters long: {s}"
        )));
    }
    if bytes[1] != b':' {
        return Err(Error::FieldsV1(format!("missing colon: {s}")));
    }
    let rest = &s[2..];
    let pe = match bytes[0] {
        b'f' => PathElement::Field(rest.to_string()),
        b'v' => {
            let v: Value = serde_json::from_str(rest)
                .map_err(|e| Error::FieldsV1(format!("parsing {s:?}: {e}")))?;
            PathElement::Value(v)
        }
        b'k' => {
            let v: Value = serde_json::from_str(rest)
                .map_err(|e| Error::FieldsV1(format!("parsing {s:?}: {e}")))?;
            let Value::Object(fields) = v else {
                return Err(Error::FieldsV1(format!("key {s:?} is not an object")));
            };
            PathElement::key(fields)
        }
        b'i' => {
            let i: usize = rest
                .strip_prefix('+')
                .unwrap_or(rest)
                .parse()
                .map_err(|e| Error::FieldsV1(format!("parsing {s:?}: {e}")))?;
            PathElement::Index(i)
        }
        _ => return Ok(None),
    };
    Ok(Some(pe))
}

/// Serializes one path element the way upstream does (field names raw, values as Go's
/// `encoding/json`, key fields sorted by name).
pub(crate) fn serialize_path_element(pe: &PathElement) -> String {
    let mut out = String::new();
    match pe {
        PathElement::Field(name) => {
            out.push_str("f:");
            out.push_str(name);
        }
        PathElement::Key(fields) => {
            out.push_str("k:{");
            for (i, (name, value)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json_string(name, &mut out);
                out.push(':');
                go_json(value, &mut out);
            }
            out.push('}');
        }
        PathElement::Value(v) => {
            out.push_str("v:");
            go_json(v, &mut out);
        }
        PathElement::Index(i) => {
            out.push_str("i:");
            out.push_str(&i.to_string());
        }
    }
    out
}

/// Reads one level: the set of children under it, and whether the level's owner is a member.
fn read_level(obj: &Map<String, Value>) -> Result<(Option<FieldSet>, bool), Error> {
    let mut is_member = false;
    let mut members = BTreeSet::new();
    let mut children = BTreeMap::new();
    let mut any = false;
    for (key, value) in obj {
        if key == "." {
            is_member = true;
            continue;
        }
        let Some(pe) = parse_path_element(key)? else {
            continue;
        };
        let Value::Object(inner) = value else {
            return Err(Error::FieldsV1(format!(
                "expected an object under {key:?}, got {value}"
            )));
        };
        let (grandchildren, child_is_member) = read_level(inner)?;
        if child_is_member {
            members.insert(pe.clone());
            any = true;
        }
        if let Some(g) = grandchildren {
            children.insert(pe, g);
            any = true;
        }
    }
    if !any {
        // An empty object (or one with only ".") marks a member.
        return Ok((None, true));
    }
    Ok((Some(FieldSet::from_parts(members, children)), is_member))
}

impl FieldSet {
    /// Decodes a FieldsV1 object: `{"f:spec":{"f:replicas":{}}}`.
    pub fn from_fields_v1(v: &Value) -> Result<FieldSet, Error> {
        let Value::Object(obj) = v else {
            return Err(Error::FieldsV1(format!("expected a JSON object, got {v}")));
        };
        let (set, _) = read_level(obj)?;
        Ok(set.unwrap_or_default())
    }

    /// Encodes the set as a FieldsV1 object.
    pub fn to_fields_v1(&self) -> Value {
        Value::Object(self.fields_v1_level(false))
    }

    fn fields_v1_level(&self, include_self: bool) -> Map<String, Value> {
        let mut out = Map::new();
        if include_self && !self.is_empty() {
            out.insert(".".to_string(), Value::Object(Map::new()));
        }
        for m in self.members() {
            if self.child(m).is_none() {
                out.insert(serialize_path_element(m), Value::Object(Map::new()));
            }
        }
        for (pe, set) in self.children() {
            out.insert(
                serialize_path_element(pe),
                Value::Object(set.fields_v1_level(self.is_member(pe))),
            );
        }
        out
    }

    /// Encodes the set as FieldsV1 JSON text, byte for byte as upstream writes it: entries in
    /// path-element order (fields, keys, values, indexes; numbers compared as numbers), `"."`
    /// first, no whitespace. Use this where byte compatibility matters: a `serde_json::Map`
    /// without `preserve_order` re-sorts keys as strings.
    pub fn to_fields_v1_json(&self) -> String {
        let mut out = String::from("{");
        self.write_fields_v1(false, &mut out);
        out.push('}');
        out
    }

    fn write_fields_v1(&self, include_self: bool, out: &mut String) {
        let mut first = true;
        let mut sep = |out: &mut String| {
            if !first {
                out.push(',');
            }
            first = false;
        };
        if include_self && !self.is_empty() {
            sep(out);
            out.push_str("\".\":{}");
        }
        // Members and children merged in element order; an element that is both is written
        // once, as a parent holding ".".
        let mut members = self.members().peekable();
        let mut children = self.children().peekable();
        loop {
            let next_member = members.peek().copied();
            let next_child = children.peek().map(|(pe, _)| *pe);
            let take_member = match (next_member, next_child) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(m), Some(c)) => m < c,
            };
            if take_member {
                if let Some(m) = members.next() {
                    sep(out);
                    go_json_string(&serialize_path_element(m), out);
                    out.push_str(":{}");
                }
            } else if let Some((pe, set)) = children.next() {
                let both = next_member == Some(pe);
                if both {
                    members.next();
                }
                sep(out);
                go_json_string(&serialize_path_element(pe), out);
                out.push_str(":{");
                set.write_fields_v1(both, out);
                out.push('}');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fieldset::tests::{p, set};
    use serde_json::json;

    #[test]
    fn round_trips() {
        let cases = [
            json!({"f:spec": {"f:replicas": {}}}),
            json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}),
            json!({"f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}}}}),
            json!({"f:finalizers": {"v:\"x\"": {}, "v:\"y\"": {}}}),
            json!({"f:args": {"i:0": {}}}),
        ];
        for c in cases {
            let s = FieldSet::from_fields_v1(&c).expect("decodes");
            assert_eq!(s.to_fields_v1(), c, "round trip of {c}");
        }
    }

    #[test]
    fn decodes_members_and_children() {
        let s = FieldSet::from_fields_v1(&json!({
            "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}}}},
            "f:x": {"u:unknown": {}},
        }))
        .expect("decodes");
        let item = p(&[json!("spec"), json!("containers"), json!({"name": "c"})]);
        let image = item.child(PathElement::field("image"));
        assert_eq!(s, set(&[item, image, p(&[json!("x")])]));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            json!({"x": {}}),
            json!({"fx": {}}),
            json!({"k:{bad": {}}),
            json!({"i:x": {}}),
            json!({"f:a": 1}),
            json!([]),
        ] {
            assert!(FieldSet::from_fields_v1(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_text_is_in_upstream_order() {
        let s = set(&[
            p(&[json!("ports"), json!({"port": 8080})]),
            p(&[json!("ports"), json!({"port": 80})]),
            p(&[json!("ports"), json!({"port": 80}), json!("port")]),
            p(&[json!("set"), json!(["=", 10])]),
            p(&[json!("set"), json!(["=", 9])]),
            p(&[json!("a<b")]),
        ]);
        assert_eq!(
            s.to_fields_v1_json(),
            concat!(
                r#"{"f:a\u003cb":{},"f:ports":{"k:{\"port\":80}":{".":{},"f:port":{}},"#,
                r#""k:{\"port\":8080}":{}},"f:set":{"v:9":{},"v:10":{}}}"#
            )
        );
    }
}
