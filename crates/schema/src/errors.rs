//! Field errors as upstream's `k8s.io/apimachinery/pkg/util/validation/field` prints them, and
//! the few Go formatting verbs (`%v`, `%q`, `%#v`) those messages are made of.

use serde_json::Value;

/// What is wrong with a field: upstream's `field.ErrorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldErrorKind {
    /// A value that was looked up was not found (`FieldValueNotFound`).
    NotFound,
    /// A required value is missing (`FieldValueRequired`).
    Required,
    /// A value that must be unique is not (`FieldValueDuplicate`).
    Duplicate,
    /// A malformed value (`FieldValueInvalid`).
    Invalid,
    /// A value of the wrong type for the schema (`FieldValueTypeInvalid`, printed as
    /// "Invalid value").
    TypeInvalid,
    /// A value outside an enumeration (`FieldValueNotSupported`).
    NotSupported,
    /// A value that is not allowed here (`FieldValueForbidden`).
    Forbidden,
    /// A string that is too long (`FieldValueTooLong`).
    TooLong,
    /// A list or map with too many entries (`FieldValueTooMany`).
    TooMany,
    /// Something that went wrong without being the input's fault (`InternalError`).
    Internal,
}

impl FieldErrorKind {
    /// The `reason` of a `StatusCause`, e.g. `FieldValueInvalid`.
    pub fn reason(self) -> &'static str {
        match self {
            FieldErrorKind::NotFound => "FieldValueNotFound",
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::TypeInvalid => "FieldValueTypeInvalid",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::TooLong => "FieldValueTooLong",
            FieldErrorKind::TooMany => "FieldValueTooMany",
            FieldErrorKind::Internal => "InternalError",
        }
    }

    /// The words a message starts with, e.g. `Invalid value`.
    pub fn message(self) -> &'static str {
        match self {
            FieldErrorKind::NotFound => "Not found",
            FieldErrorKind::Required => "Required value",
            FieldErrorKind::Duplicate => "Duplicate value",
            FieldErrorKind::Invalid | FieldErrorKind::TypeInvalid => "Invalid value",
            FieldErrorKind::NotSupported => "Unsupported value",
            FieldErrorKind::Forbidden => "Forbidden",
            FieldErrorKind::TooLong => "Too long",
            FieldErrorKind::TooMany => "Too many",
            FieldErrorKind::Internal => "Internal error",
        }
    }
}

/// One problem with one field, as upstream's `field.Error`; displays as upstream's one-line
/// form, `<field>: <body>`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {}", self.body())]
pub struct FieldError {
    /// The field's path, e.g. `spec.items[0].name`; `<nil>` where upstream has no path.
    pub field: String,
    /// What is wrong.
    pub kind: FieldErrorKind,
    /// The offending value as Go prints it in the message (`"x"`, `5`, `map[string]interface {}{…}`),
    /// `None` where the message omits it.
    pub value: Option<String>,
    /// The explanation after the value; may be empty.
    pub detail: String,
}

impl FieldError {
    /// `Required value`.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> FieldError {
        FieldError::new(field, FieldErrorKind::Required, None, detail)
    }

    /// `Forbidden`.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> FieldError {
        FieldError::new(field, FieldErrorKind::Forbidden, None, detail)
    }

    /// `Invalid value: <value>`; `value` already printed (see [`go_value`]).
    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<String>,
        detail: impl Into<String>,
    ) -> FieldError {
        FieldError::new(field, FieldErrorKind::Invalid, Some(value.into()), detail)
    }

    /// `Invalid value` for a value of the wrong type.
    pub fn type_invalid(
        field: impl Into<String>,
        value: impl Into<String>,
        detail: impl Into<String>,
    ) -> FieldError {
        FieldError::new(
            field,
            FieldErrorKind::TypeInvalid,
            Some(value.into()),
            detail,
        )
    }

    /// `Duplicate value: <value>`.
    pub fn duplicate(field: impl Into<String>, value: impl Into<String>) -> FieldError {
        FieldError::new(field, FieldErrorKind::Duplicate, Some(value.into()), "")
    }

    /// `Unsupported value: <value>: supported values: "a", "b"`.
    pub fn not_supported(
        field: impl Into<String>,
        value: impl Into<String>,
        supported: &[String],
    ) -> FieldError {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        FieldError::new(
            field,
            FieldErrorKind::NotSupported,
            Some(value.into()),
            detail,
        )
    }

    /// `Too long: may not be longer than <max>`.
    pub fn too_long(field: impl Into<String>, max: i64) -> FieldError {
        let detail = if max >= 0 {
            format!("may not be longer than {max}")
        } else {
            "value is too long".to_string()
        };
        FieldError::new(field, FieldErrorKind::TooLong, None, detail)
    }

    /// `Too many: <actual>: must have at most <max> items`.
    pub fn too_many(field: impl Into<String>, actual: i64, max: i64) -> FieldError {
        let detail = if max >= 0 {
            format!("must have at most {max} items")
        } else {
            "has too many items".to_string()
        };
        let value = (actual >= 0).then(|| actual.to_string());
        FieldError::new(field, FieldErrorKind::TooMany, value, detail)
    }

    /// `Internal error: <detail>`.
    pub fn internal(field: impl Into<String>, detail: impl Into<String>) -> FieldError {
        FieldError::new(field, FieldErrorKind::Internal, None, detail)
    }

    fn new(
        field: impl Into<String>,
        kind: FieldErrorKind,
        value: Option<String>,
        detail: impl Into<String>,
    ) -> FieldError {
        let field = field.into();
        FieldError {
            field: if field.is_empty() {
                NIL_PATH.to_string()
            } else {
                field
            },
            kind,
            value,
            detail: detail.into(),
        }
    }

    /// The message without the field: `Invalid value: "x": must be …` (upstream's `ErrorBody`).
    pub fn body(&self) -> String {
        let mut body = self.kind.message().to_string();
        let shows_value = !matches!(
            self.kind,
            FieldErrorKind::Required
                | FieldErrorKind::Forbidden
                | FieldErrorKind::TooLong
                | FieldErrorKind::Internal
        );
        if let (true, Some(value)) = (shows_value, &self.value) {
            body.push_str(": ");
            body.push_str(value);
        }
        if !self.detail.is_empty() {
            body.push_str(": ");
            body.push_str(&self.detail);
        }
        body
    }
}

/// What a nil `*field.Path` prints as; upstream's custom resource validation passes one.
pub(crate) const NIL_PATH: &str = "<nil>";

/// `field.Path.Child`: `base.name`, or `name` at the root.
pub(crate) fn child(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}.{name}")
    }
}

/// `field.Path.Key`: `base[key]`, unquoted as upstream prints it.
pub(crate) fn key(base: &str, key: &str) -> String {
    format!("{base}[{key}]")
}

/// `field.Path.Index`: `base[i]`.
pub(crate) fn index(base: &str, i: usize) -> String {
    format!("{base}[{i}]")
}

/// A JSON value as `field.Error` prints its bad value: strings quoted (`%q`), numbers and
/// bools bare (`%v`), `null` as `"null"`, objects and arrays as Go's `%#v` of unstructured
/// data.
pub fn go_value(value: &Value) -> String {
    match value {
        Value::Null => go_quote("null"),
        Value::String(s) => go_quote(s),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_number(n),
        Value::Object(_) | Value::Array(_) => go_sharp(value),
    }
}

/// Go's `%#v` of an unstructured value (`map[string]interface {}{"a":1}`), keys sorted as
/// `fmt` sorts them.
pub(crate) fn go_sharp(value: &Value) -> String {
    match value {
        Value::Null => "interface {}(nil)".to_string(),
        Value::String(s) => go_quote(s),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_number(n),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(go_sharp).collect();
            format!("[]interface {{}}{{{}}}", items.join(", "))
        }
        Value::Object(fields) => {
            let mut keys: Vec<&String> = fields.keys().collect();
            keys.sort();
            let entries: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", go_quote(k), go_sharp(&fields[k])))
                .collect();
            format!("map[string]interface {{}}{{{}}}", entries.join(", "))
        }
    }
}

/// A JSON number as Go holds it after decoding unstructured JSON (int64 when it fits, float64
/// otherwise), printed with `%v`.
fn go_number(n: &serde_json::Number) -> String {
    match n.as_i64() {
        Some(i) => i.to_string(),
        None => go_float(n.as_f64().unwrap_or_default()),
    }
}

/// Go's `%v` of a float64: the shortest digits, with an exponent below 1e-4 and from 1e6 on.
pub(crate) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let scientific = format!("{f:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if !(-4..6).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    } else {
        format!("{f}")
    }
}

/// Go's `strconv.Quote`.
pub(crate) use ferry_gostrconv::quote as go_quote;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_read_as_upstream_prints_them() {
        let cases = [
            (
                FieldError::type_invalid(
                    "spec.replicas",
                    go_value(&json!("string")),
                    "spec.replicas in body must be of type integer: \"string\"",
                ),
                "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"",
            ),
            (
                FieldError::not_supported(
                    "spec.color",
                    go_value(&json!("pink")),
                    &["red".to_string(), "blue".to_string()],
                ),
                "spec.color: Unsupported value: \"pink\": supported values: \"red\", \"blue\"",
            ),
            (FieldError::required("spec.name", ""), "spec.name: Required value"),
            (
                FieldError::forbidden("spec.x", "must not be set"),
                "spec.x: Forbidden: must not be set",
            ),
            (
                FieldError::too_long("spec.name", 5),
                "spec.name: Too long: may not be longer than 5",
            ),
            (
                FieldError::too_many("spec.list", 4, 3),
                "spec.list: Too many: 4: must have at most 3 items",
            ),
            (
                FieldError::duplicate("spec.list[1]", go_value(&json!({"name": "a", "port": 80}))),
                "spec.list[1]: Duplicate value: map[string]interface {}{\"name\":\"a\", \"port\":80}",
            ),
            (
                FieldError::invalid("", "\"\"", "\"spec\" must validate at least one schema (anyOf)"),
                "<nil>: Invalid value: \"\": \"spec\" must validate at least one schema (anyOf)",
            ),
        ];
        for (error, want) in cases {
            assert_eq!(error.to_string(), want);
        }
    }

    #[test]
    fn values_print_as_go_formats_them() {
        let cases = [
            (json!(null), "\"null\""),
            (json!(5), "5"),
            (json!(1.5), "1.5"),
            (json!(100.0), "100"),
            (json!(1e21), "1e+21"),
            (json!(1234567.5), "1.2345675e+06"),
            (json!(123456.5), "123456.5"),
            (json!(0.00001), "1e-05"),
            (json!(true), "true"),
            (json!("a\"b\n"), "\"a\\\"b\\n\""),
            (
                json!([1, "a", null]),
                "[]interface {}{1, \"a\", interface {}(nil)}",
            ),
            (
                json!({"b": 1e6, "a": {}}),
                "map[string]interface {}{\"a\":map[string]interface {}{}, \"b\":1e+06}",
            ),
        ];
        for (value, want) in cases {
            assert_eq!(go_value(&value), want, "{value}");
        }
    }

    #[test]
    fn paths_join_as_field_path_does() {
        assert_eq!(child("", "spec"), "spec");
        assert_eq!(child("spec", "x"), "spec.x");
        assert_eq!(key("spec.labels", "a.b"), "spec.labels[a.b]");
        assert_eq!(index("spec.items", 2), "spec.items[2]");
    }
}
