//! Uniqueness in `x-kubernetes-list-type: set` lists (whole items) and `map` lists (the
//! `x-kubernetes-list-map-keys`), as upstream's `listtype.ValidateListSetsAndMaps`.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::errors::{child, go_sharp, go_value, index, key, FieldError};
use crate::schema::{AdditionalProperties, Schema};

/// Checks every list below `value`; paths start at `path` (empty at the resource's root).
pub(crate) fn validate(s: &Schema, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    if let Value::Object(fields) = value {
        validate_object(s, fields, path, errors);
    }
}

fn validate_object(
    s: &Schema,
    fields: &Map<String, Value>,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    if let Some(AdditionalProperties::Schema(schema)) = &s.additional_properties {
        for (name, v) in fields {
            validate_value(schema, v, &key(path, name), errors);
        }
    }
    for (name, v) in fields {
        if let Some(property) = s.properties.get(name) {
            validate_value(property, v, &child(path, name), errors);
        }
    }
}

fn validate_value(s: &Schema, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    match value {
        Value::Array(items) => validate_array(s, items, path, errors),
        Value::Object(fields) => validate_object(s, fields, path, errors),
        _ => {}
    }
}

fn validate_array(s: &Schema, items: &[Value], path: &str, errors: &mut Vec<FieldError>) {
    match s.list_type.as_deref() {
        Some("set") => {
            for i in second_occurrences(items.iter()) {
                errors.push(FieldError::duplicate(index(path, i), go_value(&items[i])));
            }
        }
        Some("map") => validate_map_list(s, items, path, errors),
        _ => {}
    }
    if let Some(item_schema) = &s.items {
        for (i, item) in items.iter().enumerate() {
            validate_value(item_schema, item, &index(path, i), errors);
        }
    }
}

fn validate_map_list(s: &Schema, items: &[Value], path: &str, errors: &mut Vec<FieldError>) {
    if let Some((i, item)) = items
        .iter()
        .enumerate()
        .find(|(_, item)| !item.is_null() && !item.is_object())
    {
        errors.push(FieldError::invalid(
            index(path, i),
            go_value(item),
            "must be an object for an array of list-type map",
        ));
        return;
    }
    // Each item's key: the key fields it has (a missing key differs from a null one).
    let keys: Vec<Value> = items
        .iter()
        .map(|item| {
            let fields = item.as_object();
            let present = s
                .list_map_keys
                .iter()
                .filter_map(|k| Some((k.clone(), fields?.get(k)?.clone())));
            Value::Object(present.collect())
        })
        .collect();
    for i in second_occurrences(keys.iter()) {
        errors.push(FieldError::duplicate(index(path, i), go_sharp(&keys[i])));
    }
}

/// The index of each value's second occurrence, in order (later repeats are not reported).
fn second_occurrences<'a>(values: impl Iterator<Item = &'a Value>) -> Vec<usize> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, value) in values.enumerate() {
        let count = seen.entry(canonical(value)).or_insert(0);
        *count += 1;
        if *count == 2 {
            out.push(i);
        }
    }
    out
}

/// A string equal for equal values: object keys sorted, integers and floats kept apart.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(fields) => {
            let mut entries: Vec<(&String, &Value)> = fields.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), canonical(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", inner.join(","))
        }
        Value::Number(n) if n.is_f64() => format!("f{n}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::parse;
    use serde_json::json;

    fn check(list: Value, value: Value) -> Vec<String> {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"list": list}}}});
        let mut parse_errors = Vec::new();
        let schema = parse(&schema, "", &mut parse_errors);
        let mut errors = Vec::new();
        validate(&schema, &json!({"spec": {"list": value}}), "", &mut errors);
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn sets_and_maps_report_duplicates() {
        let set =
            json!({"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}});
        assert_eq!(
            check(set.clone(), json!(["a", "b", "a", "a", "b"])),
            vec![
                "spec.list[2]: Duplicate value: \"a\"",
                "spec.list[4]: Duplicate value: \"b\""
            ]
        );
        assert!(check(set, json!(["a", "b"])).is_empty());

        let ints =
            json!({"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "number"}});
        assert!(check(ints, json!([1, 1.5])).is_empty());

        let map = json!({"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "properties": {"name": {"type": "string"}, "v": {"type": "integer"}}}});
        assert_eq!(
            check(
                map.clone(),
                json!([{"name": "a", "v": 1}, {"name": "a", "v": 2}, {"v": 3}, {}])
            ),
            vec![
                "spec.list[1]: Duplicate value: map[string]interface {}{\"name\":\"a\"}",
                "spec.list[3]: Duplicate value: map[string]interface {}{}"
            ]
        );
        assert_eq!(
            check(map, json!([{"name": "a"}, "x"])),
            vec!["spec.list[1]: Invalid value: \"x\": must be an object for an array of list-type map"]
        );

        let two_keys = json!({"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port", "protocol"],
            "items": {"type": "object", "properties": {"port": {"type": "integer"}, "protocol": {"type": "string"}}}});
        assert_eq!(
            check(two_keys, json!([{"port": 80, "protocol": "TCP"}, {"port": 80, "protocol": "UDP"}, {"protocol": "TCP", "port": 80}])),
            vec!["spec.list[2]: Duplicate value: map[string]interface {}{\"port\":80, \"protocol\":\"TCP\"}"]
        );
    }

    #[test]
    fn nested_lists_are_checked() {
        let outer = json!({"type": "array", "items": {"type": "object", "properties": {
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}}}});
        assert_eq!(
            check(outer, json!([{"tags": ["x"]}, {"tags": ["y", "y"]}])),
            vec!["spec.list[1].tags[1]: Duplicate value: \"y\""]
        );
    }
}
