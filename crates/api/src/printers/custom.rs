//! The table of a custom resource: `Name`, then the columns its CustomResourceDefinition's
//! version lists in `additionalPrinterColumns` (or `Age` when it lists none), each cell found
//! by the column's JSONPath — upstream's apiextensions `tableconvertor`.

use jsonpath_rust::JsonPath;
use serde_json::Value;

use super::cells::{human_duration_nanos, name, parse_rfc3339, ZERO_TIME};
use super::{Column, TablePrinter, NAME};
use crate::registry::intern_str;

/// Upstream's description of `metadata.creationTimestamp`, for the default `Age` column.
const CREATION_TIMESTAMP: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// A column and the RFC 9535 form of its JSONPath.
struct CustomColumn {
    column: Column,
    path: String,
}

/// The table of one version of a custom resource.
pub struct CustomColumns {
    columns: Vec<CustomColumn>,
}

impl CustomColumns {
    /// The table of `definitions` (a version's `additionalPrinterColumns`); upstream's
    /// `Age` column when there are none. A column whose JSONPath does not parse gets no cells.
    pub fn new(definitions: &[Value]) -> CustomColumns {
        fn text<'a>(d: &'a Value, field: &str) -> &'a str {
            d.get(field).and_then(Value::as_str).unwrap_or("")
        }
        let mut columns: Vec<CustomColumn> = definitions
            .iter()
            .map(|d| CustomColumn {
                column: Column {
                    name: intern_str(text(d, "name")),
                    type_: intern_str(text(d, "type")),
                    format: intern_str(text(d, "format")),
                    description: intern_str(text(d, "description")),
                    priority: d.get("priority").and_then(Value::as_i64).unwrap_or(0) as i32,
                },
                path: rfc9535(text(d, "jsonPath")),
            })
            .collect();
        if columns.is_empty() {
            columns.push(CustomColumn {
                column: Column {
                    name: "Age",
                    type_: "date",
                    format: "",
                    description: CREATION_TIMESTAMP,
                    priority: 0,
                },
                path: rfc9535(".metadata.creationTimestamp"),
            });
        }
        CustomColumns { columns }
    }
}

/// A Kubernetes JSONPath (`.spec.replicas`, `{.status.conditions[?(@.type=="Ready")].status}`)
/// in RFC 9535's form (`$.spec.replicas`, `$.status.conditions[?(@.type=="Ready")].status`).
fn rfc9535(path: &str) -> String {
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path);
    if path.starts_with('$') {
        path.to_string()
    } else if path.starts_with('[') {
        format!("${path}")
    } else {
        format!("$.{}", path.trim_start_matches('.'))
    }
}

/// A cell of a column of `type_` from the first value the path found, as upstream's
/// `cellForJSONValue`: strings printed as kubectl's JSONPath prints them, numbers and booleans
/// kept when of the column's type, dates as the time since.
fn cell(type_: &str, value: &Value, now: i128) -> Value {
    match (type_, value) {
        ("string", Value::String(s)) => Value::String(s.clone()),
        ("string", Value::Null) => Value::Null,
        ("string", other) => Value::String(other.to_string()),
        ("integer", Value::Number(n)) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64().map(|f| (f as i64).into()).unwrap_or(Value::Null),
        },
        ("number", Value::Number(n)) => Value::Number(n.clone()),
        ("boolean", Value::Bool(b)) => Value::Bool(*b),
        ("date", Value::String(s)) => match parse_rfc3339(s) {
            Some(t) if t != ZERO_TIME => human_duration_nanos(now - t).into(),
            Some(_) => "<unknown>".into(),
            None => "<invalid>".into(),
        },
        _ => Value::Null,
    }
}

impl TablePrinter for CustomColumns {
    fn columns(&self) -> Vec<Column> {
        std::iter::once(NAME)
            .chain(self.columns.iter().map(|c| c.column))
            .collect()
    }

    fn row(&self, object: &Value, now: i128) -> Vec<Value> {
        let mut cells = vec![name(object)];
        for c in &self.columns {
            let found = object.query(&c.path).ok().and_then(|v| v.first().copied());
            cells.push(match found {
                Some(value) => cell(c.column.type_, value, now),
                None => Value::Null,
            });
        }
        cells
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::printers::format_rfc3339;
    use serde_json::json;

    /// An RFC 3339 time `seconds` after the epoch.
    fn at(seconds: i64) -> String {
        format_rfc3339(seconds as i128 * 1_000_000_000)
    }

    #[test]
    fn columns_follow_the_definitions() {
        let table = CustomColumns::new(&[
            json!({"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"}),
            json!({"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}),
            json!({"name": "Ready", "type": "string", "priority": 1,
                "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}),
            json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}),
            json!({"name": "Missing", "type": "string", "jsonPath": ".spec.nothing"}),
        ]);
        let names: Vec<&str> = table.columns().iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            ["Name", "Spec", "Replicas", "Ready", "Age", "Missing"]
        );
        assert_eq!(table.columns()[3].priority, 1);
        let object = json!({
            "metadata": {"name": "ct", "creationTimestamp": at(100)},
            "spec": {"cronSpec": "* * * * */5", "replicas": 3.0},
            "status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]},
        });
        let now = 400 * 1_000_000_000;
        assert_eq!(
            table.row(&object, now),
            [
                json!("ct"),
                json!("* * * * */5"),
                json!(3),
                json!("True"),
                json!("5m"),
                Value::Null
            ]
        );
    }

    #[test]
    fn no_definitions_give_an_age_column() {
        let table = CustomColumns::new(&[]);
        let names: Vec<&str> = table.columns().iter().map(|c| c.name).collect();
        assert_eq!(names, ["Name", "Age"]);
        let object = json!({"metadata": {"name": "x", "creationTimestamp": at(0)}});
        assert_eq!(table.row(&object, 30 * 1_000_000_000)[1], json!("30s"));
    }

    #[test]
    fn kubernetes_paths_become_rfc9535() {
        assert_eq!(rfc9535(".spec.x"), "$.spec.x");
        assert_eq!(rfc9535("{.spec.x}"), "$.spec.x");
        assert_eq!(rfc9535("$.a"), "$.a");
        assert_eq!(cell("string", &json!({"a": 1}), 0), json!("{\"a\":1}"));
    }
}
