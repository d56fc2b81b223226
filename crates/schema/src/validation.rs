//! Validating a value against a schema as upstream does for custom resources: kube-openapi's
//! `SchemaValidator` (type, junctors, string, format, number, slice, enum and object checks,
//! in that order, with its messages and its error paths), converted to field errors as
//! apiextensions-apiserver's `ValidateCustomResource` converts them. Also the TypeMeta checks
//! of `x-kubernetes-embedded-resource` objects (`objectmeta.Validate`).
//!
//! kube-openapi names a value by a dotted path of its own (`spec.labels.key`, `spec.list[0]`);
//! its messages carry that name, and so do the field paths built from it.

use serde_json::{Map, Value};

use crate::correlation::Ratchet;
use crate::errors::{child, go_float, go_quote, go_value, index, key, FieldError};
use crate::formats;
use crate::schema::{AdditionalProperties, Schema};

/// Validates `value` against `schema`, reporting paths under `base` (empty: upstream's nil
/// path, so top-level errors read `<nil>`).
pub(crate) fn validate(schema: &Schema, value: &Value, base: &str) -> Vec<FieldError> {
    into_field_errors(validate_node(schema, value, "", Ratchet::Off), base)
}

/// Validates the update of `old` to `value` with ratcheting: errors at values unchanged from
/// their correlated old values are dropped (upstream's `RatchetingSchemaValidator`).
pub(crate) fn validate_update(
    schema: &Schema,
    value: &Value,
    old: &Value,
    base: &str,
) -> Vec<FieldError> {
    let ratchet = Ratchet::root(schema, old);
    into_field_errors(validate_node(schema, value, "", ratchet), base)
}

fn into_field_errors(outcome: Outcome, base: &str) -> Vec<FieldError> {
    outcome
        .problems
        .into_iter()
        .map(|p| p.into_field_error(base))
        .collect()
}

/// What kube-openapi's `errors.Validation` codes turn into.
#[derive(Debug)]
enum Code {
    Required,
    Enum(Vec<Value>),
    TooLong(i64),
    TooMany {
        actual: i64,
        max: i64,
    },
    InvalidType,
    /// Any other `errors.Validation`: `Invalid value`.
    Other,
    /// Not an `errors.Validation` (junctor failures, range checks): reported at the base path
    /// with an empty value.
    Plain,
}

/// One kube-openapi error.
#[derive(Debug)]
struct Problem {
    name: String,
    code: Code,
    /// The Go-printed value; `None` prints as `""`.
    value: Option<String>,
    message: String,
}

impl Problem {
    fn into_field_error(self, base: &str) -> FieldError {
        let path = match self.name.as_str() {
            "" | "." => base.to_string(),
            name => child(base, name.trim_start_matches('.')),
        };
        let value = self.value.unwrap_or_else(|| go_quote(""));
        match self.code {
            Code::Required => FieldError::required(path, ""),
            Code::Enum(values) => {
                let supported: Vec<String> = values
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                FieldError::not_supported(path, value, &supported)
            }
            Code::TooLong(max) => FieldError::too_long(path, max),
            Code::TooMany { actual, max } => FieldError::too_many(path, actual, max),
            Code::InvalidType => FieldError::type_invalid(path, value, self.message),
            Code::Other => FieldError::invalid(path, value, self.message),
            Code::Plain => FieldError::invalid(base, go_quote(""), self.message),
        }
    }
}

/// kube-openapi's `Result`: errors (deduplicated by message) and how much of the schema
/// matched, which picks the best failing alternative of an `anyOf`/`oneOf`.
#[derive(Debug, Default)]
struct Outcome {
    problems: Vec<Problem>,
    matches: u32,
}

impl Outcome {
    fn add(&mut self, problem: Problem) {
        if !self.problems.iter().any(|p| p.message == problem.message) {
            self.problems.push(problem);
        }
    }

    fn merge(&mut self, other: Outcome) {
        for problem in other.problems {
            self.add(problem);
        }
        self.matches += other.matches;
    }

    fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }

    fn error(problem: Problem) -> Outcome {
        Outcome {
            problems: vec![problem],
            matches: 0,
        }
    }
}

/// The kind of Go value unstructured JSON decodes to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Data<'a> {
    Null,
    Bool,
    Int(i64),
    Float(f64),
    String(&'a str),
    Array(&'a [Value]),
    Object(&'a Map<String, Value>),
}

impl<'a> Data<'a> {
    fn of(value: &'a Value) -> Data<'a> {
        match value {
            Value::Null => Data::Null,
            Value::Bool(_) => Data::Bool,
            Value::Number(n) => match n.as_i64() {
                Some(i) => Data::Int(i),
                None => Data::Float(n.as_f64().unwrap_or_default()),
            },
            Value::String(s) => Data::String(s),
            Value::Array(items) => Data::Array(items),
            Value::Object(fields) => Data::Object(fields),
        }
    }

    /// kube-openapi's `schemaInfoForType`: type and format of the data.
    fn type_and_format(self) -> (&'static str, &'static str) {
        match self {
            Data::Null => ("null", ""),
            Data::Bool => ("boolean", ""),
            Data::Int(_) => ("integer", "int64"),
            Data::Float(_) => ("number", "float64"),
            Data::String(_) => ("string", ""),
            Data::Array(_) => ("array", ""),
            Data::Object(_) => ("object", ""),
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Data::Int(i) => i as f64,
            Data::Float(f) => f,
            _ => 0.0,
        }
    }
}

/// The JSON types a node accepts: `x-kubernetes-int-or-string` is integer or string.
fn types(s: &Schema) -> Vec<&str> {
    if s.int_or_string {
        vec!["integer", "string"]
    } else if s.type_.is_empty() {
        Vec::new()
    } else {
        vec![s.type_.as_str()]
    }
}

/// Validates a node; with `ratchet` correlated, its errors (its children's included) are
/// dropped when its value is unchanged. Errors of children that do not correlate bubble up
/// to be judged here.
fn validate_node(s: &Schema, value: &Value, path: &str, ratchet: Ratchet<'_>) -> Outcome {
    let mut out = check_node(s, value, path, ratchet);
    if ratchet.is_correlated() && !out.problems.is_empty() && ratchet.ratchets(value) {
        // Upstream keeps them as warnings, which no response carries.
        out.problems.clear();
    }
    out
}

fn check_node(s: &Schema, value: &Value, path: &str, ratchet: Ratchet<'_>) -> Outcome {
    let data = Data::of(value);
    let mut out = Outcome::default();
    let types = types(s);
    if data == Data::Null {
        out.merge(check_type(s, &types, data, path));
        out.merge(check_enum(s, value, path));
        return out;
    }
    let run = |out: &mut Outcome, result: Outcome| {
        out.merge(result);
        out.matches += 1;
    };
    if !types.is_empty() || !s.checked_format.is_empty() {
        run(&mut out, check_type(s, &types, data, path));
    }
    run(&mut out, check_junctors(s, value, path));
    if let Data::String(string) = data {
        run(&mut out, check_string(s, string, path));
        if formats::is_known_string_format(&s.checked_format) {
            run(&mut out, check_format(s, string, path));
        }
    }
    if matches!(data, Data::Int(_) | Data::Float(_)) {
        run(&mut out, check_number(s, &types, data, path));
    }
    if let Data::Array(items) = data {
        run(&mut out, check_array(s, value, items, path, ratchet));
    }
    run(&mut out, check_enum(s, value, path));
    if let Data::Object(fields) = data {
        run(&mut out, check_object(s, value, fields, path, ratchet));
    }
    out.matches += 1;
    out
}

fn invalid_type(name: &str, type_name: &str, value: &str) -> Problem {
    Problem {
        name: name.to_string(),
        code: Code::InvalidType,
        value: Some(go_quote(value)),
        message: format!(
            "{name} in body must be of type {type_name}: {}",
            go_quote(value)
        ),
    }
}

/// Whether a float is an integer JSON can carry exactly (swag's `IsFloat64AJSONInteger`).
fn is_json_integer(f: f64) -> bool {
    f.is_finite() && f.abs() <= 9_007_199_254_740_992.0 && f.fract() == 0.0
}

/// kube-openapi's `typeValidator`.
fn check_type(s: &Schema, types: &[&str], data: Data<'_>, path: &str) -> Outcome {
    let ok = Outcome {
        problems: Vec::new(),
        matches: 1,
    };
    if data == Data::Null {
        if !types.is_empty() && !types.contains(&"null") && !s.nullable {
            return Outcome::error(invalid_type(path, &types.join(","), "null"));
        }
        return ok;
    }
    let format = s.checked_format.as_str();
    let (data_type, data_format) = data.type_and_format();
    let is_float_int =
        matches!(data, Data::Float(f) if is_json_integer(f)) && types.contains(&"integer");
    let is_int_float = matches!(data, Data::Int(_)) && types.contains(&"number");
    let string_or_slice = matches!(data, Data::String(_) | Data::Array(_));
    let type_matches = types.contains(&data_type) || is_float_int || is_int_float;
    if !(string_or_slice || format.is_empty() || type_matches || data_format == format) {
        return Outcome::error(invalid_type(path, format, data_format));
    }
    let numeric = types.contains(&"number") || types.contains(&"integer");
    if !numeric && !format.is_empty() && string_or_slice {
        return ok;
    }
    if !type_matches {
        return Outcome::error(invalid_type(path, &types.join(","), data_type));
    }
    ok
}

/// kube-openapi's `schemaPropsValidator`: `anyOf`, `oneOf`, `allOf`, `not`.
fn check_junctors(s: &Schema, value: &Value, path: &str) -> Outcome {
    let mut main = Outcome::default();
    let plain = |message: String| Problem {
        name: path.to_string(),
        code: Code::Plain,
        value: None,
        message,
    };
    if !s.any_of.is_empty() {
        let mut best: Option<Outcome> = None;
        let mut success: Option<Outcome> = None;
        for sub in &s.any_of {
            let result = validate_node(sub, value, path, Ratchet::Off);
            if result.is_valid() {
                best = None;
                success = Some(result);
                break;
            }
            if best.as_ref().is_none_or(|b| result.matches > b.matches) {
                best = Some(result);
            }
        }
        if success.is_none() {
            main.add(plain(format!(
                "{} must validate at least one schema (anyOf)",
                go_quote(path)
            )));
        }
        if let Some(result) = best.or(success) {
            main.merge(result);
        }
    }
    if !s.one_of.is_empty() {
        let mut best: Option<Outcome> = None;
        let mut success: Option<Outcome> = None;
        let mut validated = 0;
        for sub in &s.one_of {
            let result = validate_node(sub, value, path, Ratchet::Off);
            if result.is_valid() {
                validated += 1;
                best = None;
                success.get_or_insert(result);
                continue;
            }
            if validated == 0 && best.as_ref().is_none_or(|b| result.matches > b.matches) {
                best = Some(result);
            }
        }
        if validated != 1 {
            let found = if validated == 0 {
                "Found none valid".to_string()
            } else {
                format!("Found {validated} valid alternatives")
            };
            main.add(plain(format!(
                "{} must validate one and only one schema (oneOf). {found}",
                go_quote(path)
            )));
            if let Some(result) = best {
                main.merge(result);
            }
        } else if let Some(result) = success {
            main.merge(result);
        }
    }
    if !s.all_of.is_empty() {
        let mut validated = 0;
        for sub in &s.all_of {
            let result = validate_node(sub, value, path, Ratchet::Off);
            if result.is_valid() {
                validated += 1;
            }
            main.merge(result);
        }
        if validated != s.all_of.len() {
            let none = if validated == 0 {
                ". None validated"
            } else {
                ""
            };
            main.add(plain(format!(
                "{} must validate all the schemas (allOf){none}",
                go_quote(path)
            )));
        }
    }
    if let Some(not) = &s.not {
        if validate_node(not, value, path, Ratchet::Off).is_valid() {
            main.add(plain(format!(
                "{} must not validate the schema (not)",
                go_quote(path)
            )));
        }
    }
    main.matches += 1;
    main
}

/// kube-openapi's `stringValidator`: the first failing of maxLength, minLength, pattern.
fn check_string(s: &Schema, data: &str, path: &str) -> Outcome {
    let length = data.chars().count() as i64;
    let problem = |code: Code, message: String| {
        Outcome::error(Problem {
            name: path.to_string(),
            code,
            value: Some(go_quote(data)),
            message,
        })
    };
    if let Some(max) = s.max_length.filter(|max| length > *max) {
        return problem(
            Code::TooLong(max),
            format!("{path} in body should be at most {max} chars long"),
        );
    }
    if let Some(min) = s.min_length.filter(|min| length < *min) {
        return problem(
            Code::Other,
            format!("{path} in body should be at least {min} chars long"),
        );
    }
    if let Some(pattern) = &s.pattern {
        match &pattern.regex {
            Ok(regex) if regex.is_match(data) => {}
            Ok(_) => {
                return problem(
                    Code::Other,
                    format!("{path} in body should match '{}'", pattern.source),
                );
            }
            Err(e) => {
                return problem(
                    Code::Other,
                    format!(
                        "{path} in body should match '{}, but pattern is invalid: {e}'",
                        pattern.source
                    ),
                );
            }
        }
    }
    Outcome::default()
}

/// kube-openapi's `formatValidator`.
fn check_format(s: &Schema, data: &str, path: &str) -> Outcome {
    if formats::is_valid(&s.checked_format, data) {
        return Outcome::default();
    }
    let mut problem = invalid_type(path, &s.checked_format, data);
    problem.code = Code::InvalidType;
    Outcome::error(problem)
}

/// kube-openapi's `numberValidator`: the range of the format, then multipleOf, minimum,
/// maximum, each compared as integers when both sides are.
fn check_number(s: &Schema, types: &[&str], data: Data<'_>, path: &str) -> Outcome {
    let (type_name, format) = match types {
        ["integer"] if matches!(s.checked_format.as_str(), "int32" | "int64") => {
            ("integer", s.checked_format.as_str())
        }
        ["integer"] => ("integer", ""),
        ["number"] if matches!(s.checked_format.as_str(), "float" | "double") => {
            ("number", s.checked_format.as_str())
        }
        ["number"] => ("number", ""),
        _ => ("", ""),
    };
    let value = Some(number_value(data));
    let mut out = Outcome {
        problems: Vec::new(),
        matches: 1,
    };
    let plain = |message: String| Problem {
        name: path.to_string(),
        code: Code::Plain,
        value: None,
        message,
    };
    let in_range = |n: Data<'_>, prefix: &str| -> Option<Problem> {
        range_error(n, type_name, format, prefix, path).map(plain)
    };
    if let Some(problem) = in_range(data, "Checked") {
        out.add(problem);
    }
    let other = |message: String| Problem {
        name: path.to_string(),
        code: Code::Other,
        value: value.clone(),
        message,
    };
    let as_data = |bound: f64| {
        if bound.fract() == 0.0 && bound.abs() < 9.2e18 {
            Data::Int(bound as i64)
        } else {
            Data::Float(bound)
        }
    };

    if let Some(factor) = s.multiple_of {
        let range = in_range(as_data(factor), "MultipleOf");
        let native = range.is_none();
        if let Some(problem) = range {
            out.add(problem);
        }
        match data {
            Data::Int(i) if native => {
                let factor = factor as i64;
                if factor <= 0 {
                    out.add(other(format!(
                        "factor MultipleOf declared for {path} must be positive: {factor}"
                    )));
                } else if i % factor != 0 {
                    out.add(other(format!(
                        "{path} in body should be a multiple of {factor}"
                    )));
                }
            }
            _ => {
                let f = data.as_f64();
                if factor <= 0.0 {
                    out.add(other(format!(
                        "factor MultipleOf declared for {path} must be positive: {}",
                        go_float(factor)
                    )));
                } else {
                    let multiple = if factor < 1.0 {
                        1.0 / factor * f
                    } else {
                        f / factor
                    };
                    if !is_json_integer(multiple) {
                        out.add(other(format!(
                            "{path} in body should be a multiple of {}",
                            go_float(factor)
                        )));
                    }
                }
            }
        }
    }
    let bounds = [
        (s.minimum, s.exclusive_minimum, "Minimum boundary", false),
        (s.maximum, s.exclusive_maximum, "Maximum boundary", true),
    ];
    for (bound, exclusive, prefix, is_max) in bounds {
        let Some(bound) = bound else { continue };
        let range = in_range(as_data(bound), prefix);
        let native = range.is_none();
        if let Some(problem) = range {
            out.add(problem);
        }
        let (fails, printed) = match data {
            Data::Int(i) if native => {
                let b = bound as i64;
                let fails = match (is_max, exclusive) {
                    (true, false) => i > b,
                    (true, true) => i >= b,
                    (false, false) => i < b,
                    (false, true) => i <= b,
                };
                (fails, b.to_string())
            }
            _ => {
                let f = data.as_f64();
                let fails = match (is_max, exclusive) {
                    (true, false) => f > bound,
                    (true, true) => f >= bound,
                    (false, false) => f < bound,
                    (false, true) => f <= bound,
                };
                (fails, go_float(bound))
            }
        };
        if fails {
            let relation = match (is_max, exclusive) {
                (true, false) => "less than or equal to",
                (true, true) => "less than",
                (false, false) => "greater than or equal to",
                (false, true) => "greater than",
            };
            out.add(other(format!(
                "{path} in body should be {relation} {printed}"
            )));
        }
    }
    out
}

fn number_value(data: Data<'_>) -> String {
    match data {
        Data::Int(i) => i.to_string(),
        other => go_float(other.as_f64()),
    }
}

/// kube-openapi's `IsValueValidAgainstRange`: whether a number fits the schema's type and
/// format (an `int32` that overflows, a fraction for an `integer`).
fn range_error(
    n: Data<'_>,
    type_name: &str,
    format: &str,
    prefix: &str,
    path: &str,
) -> Option<String> {
    // Go formats floats with 'f' and the shortest digits before parsing them back.
    let text = match n {
        Data::Int(i) => i.to_string(),
        other => format!("{}", other.as_f64()),
    };
    let fits = match (type_name, format) {
        ("integer", "int32") => text.parse::<i32>().is_ok(),
        ("integer", _) => text.parse::<i64>().is_ok(),
        (_, "float") => text
            .parse::<f64>()
            .is_ok_and(|f| f.abs() <= f64::from(f32::MAX)),
        _ => true,
    };
    if fits {
        return None;
    }
    Some(if format.is_empty() {
        format!("{prefix} value must be of type {type_name} (default format) in {path}")
    } else {
        format!("{prefix} value must be of type {type_name} with format {format} in {path}")
    })
}

/// kube-openapi's `schemaSliceValidator`: items, then minItems, maxItems, uniqueItems.
fn check_array(
    s: &Schema,
    list: &Value,
    items: &[Value],
    path: &str,
    ratchet: Ratchet<'_>,
) -> Outcome {
    let mut out = Outcome::default();
    if let Some(item_schema) = &s.items {
        let old_items = ratchet.map_list();
        for (i, item) in items.iter().enumerate() {
            let ratchet = ratchet.item(list, item, &old_items);
            out.merge(validate_node(item_schema, item, &index(path, i), ratchet));
        }
    }
    let size = items.len() as i64;
    if let Some(min) = s.min_items.filter(|min| size < *min) {
        out.add(Problem {
            name: path.to_string(),
            code: Code::Other,
            value: Some(size.to_string()),
            message: format!("{path} in body should have at least {min} items"),
        });
    }
    if let Some(max) = s.max_items.filter(|max| size > *max) {
        out.add(Problem {
            name: path.to_string(),
            code: Code::TooMany { actual: size, max },
            value: Some(size.to_string()),
            message: format!("{path} in body should have at most {max} items"),
        });
    }
    if s.unique_items && has_duplicates(items) {
        out.add(Problem {
            name: path.to_string(),
            code: Code::Other,
            value: None,
            message: format!("{path} in body shouldn't contain duplicates"),
        });
    }
    out.matches += 1;
    out
}

fn has_duplicates(items: &[Value]) -> bool {
    items
        .iter()
        .enumerate()
        .any(|(i, a)| items[..i].iter().any(|b| a == b))
}

/// kube-openapi's `basicCommonValidator`: `enum`, compared as Go's reflection compares a
/// value converted to the enum entry's type (so `5.0` matches `5`, `null` matches nothing).
fn check_enum(s: &Schema, value: &Value, path: &str) -> Outcome {
    let Some(allowed) = s.enum_.as_ref().filter(|e| !e.is_empty()) else {
        return Outcome::default();
    };
    let matches = |entry: &Value| match (value, entry) {
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::Number(data), Value::Number(entry)) => match (entry.as_i64(), data.as_i64()) {
            (Some(e), Some(d)) => e == d,
            (Some(e), None) => data.as_f64().is_some_and(|d| d as i64 == e),
            (None, _) => data.as_f64() == entry.as_f64(),
        },
        (data, entry) => data == entry,
    };
    if allowed.iter().any(matches) {
        return Outcome::default();
    }
    Outcome::error(Problem {
        name: path.to_string(),
        code: Code::Enum(allowed.clone()),
        value: Some(go_value(value)),
        message: format!("{path} in body should be one of {allowed:?}"),
    })
}

/// kube-openapi's `objectValidator`: property counts, additionalProperties, properties,
/// required.
fn check_object(
    s: &Schema,
    object: &Value,
    fields: &Map<String, Value>,
    path: &str,
    ratchet: Ratchet<'_>,
) -> Outcome {
    let mut out = Outcome::default();
    let size = fields.len() as i64;
    if let Some(min) = s.min_properties.filter(|min| size < *min) {
        out.add(Problem {
            name: path.to_string(),
            code: Code::Other,
            value: Some(size.to_string()),
            message: format!("{path} in body should have at least {min} properties"),
        });
    }
    if let Some(max) = s.max_properties.filter(|max| size > *max) {
        out.add(Problem {
            name: path.to_string(),
            code: Code::TooMany { actual: size, max },
            value: Some(size.to_string()),
            message: format!("{path} in body should have at most {max} properties"),
        });
    }
    match &s.additional_properties {
        Some(AdditionalProperties::Allows(false)) => {
            for name in fields.keys().filter(|k| !s.properties.contains_key(*k)) {
                out.add(Problem {
                    name: path.to_string(),
                    code: Code::Other,
                    value: Some(go_quote(name)),
                    message: format!("{path}.{name} in body is a forbidden property"),
                });
            }
        }
        Some(AdditionalProperties::Schema(schema)) => {
            for (name, value) in fields
                .iter()
                .filter(|(k, _)| !s.properties.contains_key(*k))
            {
                let ratchet = ratchet.field(object, name);
                out.merge(validate_node(
                    schema,
                    value,
                    &format!("{path}.{name}"),
                    ratchet,
                ));
            }
        }
        _ => {}
    }
    for (name, schema) in &s.properties {
        if let Some(value) = fields.get(name) {
            let ratchet = ratchet.field(object, name);
            out.merge(validate_node(schema, value, &child(path, name), ratchet));
        }
    }
    for name in s.required.iter().filter(|k| !fields.contains_key(*k)) {
        let name = format!("{path}.{name}");
        out.add(Problem {
            message: format!("{name} in body is required"),
            name,
            code: Code::Required,
            value: None,
        });
    }
    out
}

/// `objectmeta.Validate` for custom resources: the TypeMeta of every
/// `x-kubernetes-embedded-resource` object (the custom resource's own is the caller's).
pub(crate) fn validate_embedded(
    s: &Schema,
    value: &Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    match value {
        Value::Object(fields) => {
            if s.embedded_resource {
                embedded_type_meta(fields, path, errors);
            }
            for (name, v) in fields {
                if let Some(property) = s.properties.get(name) {
                    validate_embedded(property, v, &child(path, name), errors);
                } else if let Some(schema) = s
                    .additional_properties
                    .as_ref()
                    .and_then(AdditionalProperties::schema)
                {
                    validate_embedded(schema, v, &key(path, name), errors);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = &s.items {
                for (i, item) in items.iter().enumerate() {
                    validate_embedded(item_schema, item, &index(path, i), errors);
                }
            }
        }
        _ => {}
    }
}

fn embedded_type_meta(fields: &Map<String, Value>, path: &str, errors: &mut Vec<FieldError>) {
    let api_version_path = child(path, "apiVersion");
    let kind_path = child(path, "kind");
    match fields.get("apiVersion") {
        None => errors.push(FieldError::required(api_version_path, "")),
        Some(Value::String(v)) if v.is_empty() => {
            errors.push(FieldError::required(api_version_path, ""));
        }
        Some(Value::String(v)) if v.matches('/').count() > 1 => {
            errors.push(FieldError::invalid(
                api_version_path,
                go_quote(v),
                format!("unexpected GroupVersion string: {v}"),
            ));
        }
        Some(Value::String(_)) => {}
        Some(other) => errors.push(FieldError::invalid(
            api_version_path,
            go_value(other),
            "must be a string",
        )),
    }
    match fields.get("kind") {
        None => errors.push(FieldError::required(kind_path, "")),
        Some(Value::String(v)) if v.is_empty() => {
            errors.push(FieldError::required(kind_path, ""));
        }
        Some(Value::String(v)) => {
            let problems = dns1035_label_problems(&v.to_lowercase());
            if !problems.is_empty() {
                errors.push(FieldError::invalid(
                    kind_path,
                    go_quote(v),
                    format!(
                        "may have mixed case, but should otherwise match: {}",
                        problems.join(",")
                    ),
                ));
            }
        }
        Some(other) => errors.push(FieldError::invalid(
            kind_path,
            go_value(other),
            "must be a string",
        )),
    }
}

/// `IsDNS1035Label`'s messages.
fn dns1035_label_problems(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > 63 {
        problems.push("must be no more than 63 characters".to_string());
    }
    let bytes = value.as_bytes();
    let valid = bytes.first().is_some_and(u8::is_ascii_lowercase)
        && bytes
            .last()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if !valid {
        problems.push("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')".to_string());
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::parse;
    use serde_json::json;

    fn errors(schema: Value, value: Value) -> Vec<String> {
        let mut parse_errors = Vec::new();
        let schema = parse(&schema, "", &mut parse_errors);
        assert!(parse_errors.is_empty(), "{parse_errors:?}");
        validate(&schema, &value, "")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn spec(properties: Value) -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": properties}}})
    }

    #[test]
    fn updates_ratchet_where_values_correlate_and_are_unchanged() {
        let schema = parse(
            &spec(json!({
                "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer", "maximum": 100}}}},
                "hosts": {"type": "array", "items": {"type": "string", "maxLength": 3}},
                "size": {"type": "string", "anyOf": [{"enum": ["small"]}, {"pattern": "^[0-9]+$"}]},
            })),
            "",
            &mut Vec::new(),
        );
        let update = |new: Value, old: Value| {
            validate_update(&schema, &new, &old, "")
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        let old = json!({"spec": {"ports": [{"name": "a", "port": 200}, {"name": "b", "port": 1}],
            "hosts": ["long", "ok"], "size": "big"}});
        // Map-list items correlate by key, in any order; unchanged lists and junctor
        // failures ratchet.
        let reordered = json!({"spec": {"ports": [{"name": "b", "port": 2}, {"name": "a", "port": 200}],
            "hosts": ["long", "ok"], "size": "big"}});
        assert!(update(reordered, old.clone()).is_empty());
        // Other lists' items do not correlate: a changed list is judged whole.
        let changed = json!({"spec": {"ports": [{"name": "a", "port": 300}],
            "hosts": ["long", "ok", "x"], "size": "big"}});
        assert_eq!(
            update(changed, old),
            vec![
                "spec.hosts[0]: Too long: may not be longer than 3",
                "spec.ports[0].port: Invalid value: 300: spec.ports[0].port in body should be less than or equal to 100",
            ]
        );
    }

    #[test]
    fn values_are_checked_as_kube_openapi_checks_them() {
        let cases: Vec<(Value, Value, Vec<&str>)> = vec![
            (
                spec(json!({"replicas": {"type": "integer"}})),
                json!({"spec": {"replicas": "3"}}),
                vec!["spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""],
            ),
            (
                spec(json!({"replicas": {"type": "integer"}})),
                json!({"spec": {"replicas": 3.0}}),
                vec![],
            ),
            (
                spec(json!({"ratio": {"type": "number"}})),
                json!({"spec": {"ratio": 3}}),
                vec![],
            ),
            (
                spec(json!({"name": {"type": "string"}})),
                json!({"spec": {"name": null}}),
                vec!["spec.name: Invalid value: \"null\": spec.name in body must be of type string: \"null\""],
            ),
            (
                spec(json!({"name": {"type": "string", "nullable": true}})),
                json!({"spec": {"name": null}}),
                vec![],
            ),
            (
                spec(json!({"color": {"type": "string", "enum": ["red", "blue"]}})),
                json!({"spec": {"color": "pink"}}),
                vec!["spec.color: Unsupported value: \"pink\": supported values: \"red\", \"blue\""],
            ),
            (
                spec(json!({"size": {"type": "integer", "enum": [1, 2]}})),
                json!({"spec": {"size": 3}}),
                vec!["spec.size: Unsupported value: 3: supported values: \"1\", \"2\""],
            ),
            (
                spec(json!({"replicas": {"type": "integer", "minimum": 1, "maximum": 5}})),
                json!({"spec": {"replicas": 10}}),
                vec!["spec.replicas: Invalid value: 10: spec.replicas in body should be less than or equal to 5"],
            ),
            (
                spec(json!({"replicas": {"type": "integer", "minimum": 1, "exclusiveMinimum": true}})),
                json!({"spec": {"replicas": 1}}),
                vec!["spec.replicas: Invalid value: 1: spec.replicas in body should be greater than 1"],
            ),
            (
                spec(json!({"ratio": {"type": "number", "maximum": 1.5}})),
                json!({"spec": {"ratio": 2.5}}),
                vec!["spec.ratio: Invalid value: 2.5: spec.ratio in body should be less than or equal to 1.5"],
            ),
            (
                spec(json!({"n": {"type": "integer", "multipleOf": 2}})),
                json!({"spec": {"n": 3}}),
                vec!["spec.n: Invalid value: 3: spec.n in body should be a multiple of 2"],
            ),
            (
                spec(json!({"n": {"type": "integer", "format": "int32"}})),
                json!({"spec": {"n": 3_000_000_000i64}}),
                vec!["<nil>: Invalid value: \"\": Checked value must be of type integer with format int32 in spec.n"],
            ),
            (
                spec(json!({"name": {"type": "string", "maxLength": 3}})),
                json!({"spec": {"name": "abcd"}}),
                vec!["spec.name: Too long: may not be longer than 3"],
            ),
            (
                spec(json!({"name": {"type": "string", "minLength": 3}})),
                json!({"spec": {"name": "ab"}}),
                vec!["spec.name: Invalid value: \"ab\": spec.name in body should be at least 3 chars long"],
            ),
            (
                spec(json!({"name": {"type": "string", "pattern": "^[a-z]+$"}})),
                json!({"spec": {"name": "AB"}}),
                vec!["spec.name: Invalid value: \"AB\": spec.name in body should match '^[a-z]+$'"],
            ),
            (
                spec(json!({"at": {"type": "string", "format": "date-time"}})),
                json!({"spec": {"at": "yesterday"}}),
                vec!["spec.at: Invalid value: \"yesterday\": spec.at in body must be of type date-time: \"yesterday\""],
            ),
            (
                spec(json!({"at": {"type": "string", "format": "something-else"}})),
                json!({"spec": {"at": "anything"}}),
                vec![],
            ),
            (
                spec(json!({"list": {"type": "array", "maxItems": 1, "items": {"type": "string"}}})),
                json!({"spec": {"list": ["a", 1]}}),
                vec![
                    "spec.list[1]: Invalid value: \"integer\": spec.list[1] in body must be of type string: \"integer\"",
                    "spec.list: Too many: 2: must have at most 1 items",
                ],
            ),
            (
                spec(json!({"list": {"type": "array", "minItems": 2, "items": {"type": "string"}}})),
                json!({"spec": {"list": ["a"]}}),
                vec!["spec.list: Invalid value: 1: spec.list in body should have at least 2 items"],
            ),
            (
                spec(json!({"m": {"type": "object", "maxProperties": 1, "additionalProperties": {"type": "integer"}}})),
                json!({"spec": {"m": {"a": 1, "b": "x"}}}),
                vec![
                    "spec.m: Too many: 2: must have at most 1 items",
                    "spec.m.b: Invalid value: \"string\": spec.m.b in body must be of type integer: \"string\"",
                ],
            ),
            (
                json!({"type": "object", "properties": {"spec": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}}}),
                json!({"spec": {}}),
                vec!["spec.name: Required value"],
            ),
            (
                spec(json!({"port": {"x-kubernetes-int-or-string": true}})),
                json!({"spec": {"port": true}}),
                vec!["spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\""],
            ),
            (
                spec(json!({"a": {"type": "string"}, "b": {"type": "string"}})),
                json!({"spec": {"a": "x"}}),
                vec![],
            ),
        ];
        for (schema, value, want) in cases {
            assert_eq!(
                errors(schema.clone(), value.clone()),
                want,
                "{schema} {value}"
            );
        }
    }

    #[test]
    fn junctors_report_as_kube_openapi() {
        let one_of = json!({"type": "object", "properties": {"spec": {"type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
            "oneOf": [{"required": ["a"]}, {"required": ["b"]}]}}});
        assert_eq!(
            errors(one_of.clone(), json!({"spec": {"a": "x", "b": "y"}})),
            vec!["<nil>: Invalid value: \"\": \"spec\" must validate one and only one schema (oneOf). Found 2 valid alternatives"]
        );
        assert_eq!(
            errors(one_of.clone(), json!({"spec": {}})),
            vec![
                "<nil>: Invalid value: \"\": \"spec\" must validate one and only one schema (oneOf). Found none valid",
                "spec.a: Required value",
            ]
        );
        assert!(errors(one_of, json!({"spec": {"b": "y"}})).is_empty());

        let any_of = spec(json!({"port": {"x-kubernetes-int-or-string": true,
            "anyOf": [{"type": "integer"}, {"type": "string"}], "pattern": "^[0-9]+%$"}}));
        assert!(errors(any_of.clone(), json!({"spec": {"port": 80}})).is_empty());
        assert!(errors(any_of.clone(), json!({"spec": {"port": "80%"}})).is_empty());
        assert_eq!(
            errors(any_of, json!({"spec": {"port": "80"}})),
            vec!["spec.port: Invalid value: \"80\": spec.port in body should match '^[0-9]+%$'"]
        );

        let not = spec(json!({"name": {"type": "string", "not": {"enum": ["admin"]}}}));
        assert_eq!(
            errors(not, json!({"spec": {"name": "admin"}})),
            vec!["<nil>: Invalid value: \"\": \"spec.name\" must not validate the schema (not)"]
        );

        let all_of =
            spec(json!({"n": {"type": "integer", "allOf": [{"minimum": 1}, {"maximum": 3}]}}));
        assert_eq!(
            errors(all_of, json!({"spec": {"n": 5}})),
            vec![
                "spec.n: Invalid value: 5: spec.n in body should be less than or equal to 3",
                "<nil>: Invalid value: \"\": \"spec.n\" must validate all the schemas (allOf)",
            ]
        );
    }

    #[test]
    fn embedded_resources_need_type_meta() {
        let schema = spec(
            json!({"template": {"type": "object", "x-kubernetes-embedded-resource": true,
            "x-kubernetes-preserve-unknown-fields": true}}),
        );
        let mut parse_errors = Vec::new();
        let schema = parse(&schema, "", &mut parse_errors);
        let check = |value: Value| {
            let mut errors = Vec::new();
            validate_embedded(&schema, &value, "", &mut errors);
            errors.iter().map(ToString::to_string).collect::<Vec<_>>()
        };
        assert_eq!(
            check(json!({"spec": {"template": {"metadata": {}}}})),
            vec![
                "spec.template.apiVersion: Required value",
                "spec.template.kind: Required value"
            ]
        );
        assert!(
            check(json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod"}}})).is_empty()
        );
        assert_eq!(
            check(json!({"spec": {"template": {"apiVersion": "a/b/c", "kind": "Pod_"}}})),
            vec![
                "spec.template.apiVersion: Invalid value: \"a/b/c\": unexpected GroupVersion string: a/b/c",
                "spec.template.kind: Invalid value: \"Pod_\": may have mixed case, but should otherwise match: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
            ]
        );
    }
}
