//! What the workload validations share (upstream's `pkg/apis/apps/validation` helpers and the
//! apimachinery checks they call): non-negative fields, int-or-percent values, the selector
//! against the template's labels, the template's restart policy — and offending values printed
//! as upstream prints them, which for structs is Go's `%#v` (`intstr.IntOrString{Type:0,
//! IntVal:1, StrVal:""}`, `v1.LabelSelector{…}`), since that is what `kubectl` users read.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Map, Value};

use crate::status::{FieldError, FieldErrorKind};

/// `ValidateNonnegativeField` for the integer at `pointer` of `object`, when it is set.
pub fn nonnegative(object: &Value, pointer: &str, field: &str, errors: &mut Vec<FieldError>) {
    if let Some(value) = object.pointer(pointer).and_then(Value::as_i64) {
        nonnegative_value(value, field, errors);
    }
}

/// `ValidateNonnegativeField` for `value`.
pub fn nonnegative_value(value: i64, field: &str, errors: &mut Vec<FieldError>) {
    if value < 0 {
        errors.push(FieldError::invalid_raw(
            field,
            value.to_string(),
            "must be greater than or equal to 0",
        ));
    }
}

/// A string at `pointer`, "" when absent (Go's zero value).
pub fn str_at<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `field.NotSupported` whose value is printed as given (Go structs).
pub fn not_supported_raw(field: &str, value: String, supported: &[&str]) -> FieldError {
    let supported: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
    FieldError {
        field: field.to_string(),
        kind: FieldErrorKind::NotSupported,
        value: Some(value),
        detail: format!("supported values: {}", supported.join(", ")),
    }
}

/// Go's `%#v` of a pointer field: `(*T)(nil)`, or an address. Upstream prints the real
/// address, which differs on every request; any address reads the same to a person.
pub fn go_pointer(type_name: &str, present: bool) -> String {
    if present {
        format!("(*{type_name})(0xc000010000)")
    } else {
        format!("(*{type_name})(nil)")
    }
}

/// Go's `%#v` of a `map[string]string` (keys sorted, as Go prints maps); `None` is nil.
pub fn go_string_map(map: Option<&Map<String, Value>>) -> String {
    match map {
        None => "map[string]string(nil)".into(),
        Some(map) => {
            let pairs: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k:?}:{:?}", v.as_str().unwrap_or_default()))
                .collect();
            format!("map[string]string{{{}}}", pairs.join(", "))
        }
    }
}

/// Go's `%#v` of a `metav1.LabelSelector` (the value of a selector field error).
pub fn go_label_selector(selector: &Value) -> String {
    let expressions = match selector.get("matchExpressions").and_then(Value::as_array) {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(list) => {
            let items: Vec<String> = list
                .iter()
                .map(|r| {
                    let values = match r.get("values").and_then(Value::as_array) {
                        None => "[]string(nil)".to_string(),
                        Some(values) => {
                            let quoted: Vec<String> = values
                                .iter()
                                .map(|v| format!("{:?}", v.as_str().unwrap_or_default()))
                                .collect();
                            format!("[]string{{{}}}", quoted.join(", "))
                        }
                    };
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{:?}, Operator:{:?}, Values:{values}}}",
                        str_at(r, "/key"),
                        str_at(r, "/operator"),
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{expressions}}}",
        go_string_map(selector.get("matchLabels").and_then(Value::as_object))
    )
}

/// Go's `%#v` of an `intstr.IntOrString`: a JSON number is `Type:0`, a string `Type:1`.
pub fn go_int_or_string(value: &Value) -> String {
    match value {
        Value::String(s) => format!("intstr.IntOrString{{Type:1, IntVal:0, StrVal:{s:?}}}"),
        other => format!(
            "intstr.IntOrString{{Type:0, IntVal:{}, StrVal:\"\"}}",
            other.as_i64().unwrap_or(0)
        ),
    }
}

/// Upstream's `IsValidPercent` message.
const PERCENT_MESSAGE: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";

/// The number of a valid percent string (`getPercentValue`; Go's `Atoi` gives 0 on overflow).
fn percent_value(value: &Value) -> Option<i64> {
    let digits = value.as_str()?.strip_suffix('%')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse().unwrap_or(0))
}

/// `getIntOrPercentValue`: a percent's number, or the integer (a non-percent string as Go's
/// `Atoi` reads it, 0 when it does not).
pub fn int_or_percent_value(value: &Value) -> i64 {
    match (percent_value(value), value) {
        (Some(percent), _) => percent,
        (None, Value::String(s)) => s.parse().unwrap_or(0),
        (None, other) => other.as_i64().unwrap_or(0),
    }
}

/// `ValidatePositiveIntOrPercent` (which admits 0): a non-negative integer or a percent.
pub fn positive_int_or_percent(value: &Value, field: &str, errors: &mut Vec<FieldError>) {
    match value {
        Value::String(_) if percent_value(value).is_none() => errors.push(FieldError::invalid_raw(
            field,
            go_int_or_string(value),
            PERCENT_MESSAGE,
        )),
        Value::String(_) => {}
        other => nonnegative_value(other.as_i64().unwrap_or(0), field, errors),
    }
}

/// `IsNotMoreThan100Percent`.
pub fn not_more_than_100_percent(value: &Value, field: &str, errors: &mut Vec<FieldError>) {
    if percent_value(value).is_some_and(|p| p > 100) {
        errors.push(FieldError::invalid_raw(
            field,
            go_int_or_string(value),
            "must not be greater than 100%",
        ));
    }
}

/// How a selector reads (`metav1.LabelSelectorAsSelector`): none matches nothing, an empty
/// one everything.
pub enum Selector {
    /// No selector (`labels.Nothing()`).
    Nothing,
    /// No requirement (`labels.Everything()`).
    Everything,
    /// Requirements.
    Some(LabelSelector),
}

impl Selector {
    /// The selector at `spec.selector` of `object`.
    pub fn of(object: &Value) -> Selector {
        let Some(selector) = object.pointer("/spec/selector") else {
            return Selector::Nothing;
        };
        let count = |key: &str| match selector.get(key) {
            Some(Value::Object(m)) => m.len(),
            Some(Value::Array(a)) => a.len(),
            _ => 0,
        };
        if count("matchLabels") + count("matchExpressions") == 0 {
            return Selector::Everything;
        }
        match serde_json::from_value(selector.clone()) {
            Ok(parsed) => Selector::Some(parsed),
            // The typed round trip refused a malformed selector before validation.
            Err(_) => Selector::Nothing,
        }
    }

    /// Whether it matches `labels`.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let labels: BTreeMap<String, String> = labels
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        match self {
            Selector::Nothing => false,
            Selector::Everything => true,
            Selector::Some(selector) => ferry_api::matching::selector_matches(selector, &labels),
        }
    }
}

/// `spec.template.metadata.labels` of a workload.
pub fn template_labels(object: &Value) -> Option<&Map<String, Value>> {
    object
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
}

/// The error for a template whose labels the selector does not match.
pub fn labels_mismatch(object: &Value, template_path: &str) -> FieldError {
    FieldError::invalid_raw(
        format!("{template_path}.metadata.labels"),
        go_string_map(template_labels(object)),
        "`selector` does not match template `labels`",
    )
}

/// `len(matchLabels)+len(matchExpressions) == 0` for a set selector: upstream's "empty
/// selector is invalid for <kind>".
pub fn empty_selector(object: &Value, kind: &str, errors: &mut Vec<FieldError>) {
    if let Some(selector) = object.pointer("/spec/selector") {
        if matches!(Selector::of(object), Selector::Everything) {
            errors.push(FieldError::invalid_raw(
                "spec.selector",
                go_label_selector(selector),
                format!("empty selector is invalid for {kind}"),
            ));
        }
    }
}

/// A workload template's restart policy must be `Always`, and it may not have an active
/// deadline (`<kind>` in upstream's message: `StatefulSet`, `DaemonSet`).
pub fn always_restarting(object: &Value, kind: &str, errors: &mut Vec<FieldError>) {
    let policy = str_at(object, "/spec/template/spec/restartPolicy");
    if policy != "Always" {
        errors.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            policy,
            &["Always"],
        ));
    }
    if object
        .pointer("/spec/template/spec/activeDeadlineSeconds")
        .is_some_and(|v| !v.is_null())
    {
        errors.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_print_as_go_prints_them() {
        assert_eq!(
            go_int_or_string(&json!(1)),
            "intstr.IntOrString{Type:0, IntVal:1, StrVal:\"\"}"
        );
        assert_eq!(
            go_int_or_string(&json!("25%")),
            "intstr.IntOrString{Type:1, IntVal:0, StrVal:\"25%\"}"
        );
        assert_eq!(
            go_label_selector(&json!({"matchLabels": {"b": "2", "a": "1"}})),
            "v1.LabelSelector{MatchLabels:map[string]string{\"a\":\"1\", \"b\":\"2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"
        );
        assert_eq!(
            go_label_selector(&json!({"matchExpressions": [{"key": "k", "operator": "In", "values": ["x"]}]})),
            "v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:\"k\", Operator:\"In\", Values:[]string{\"x\"}}}}"
        );
        assert_eq!(go_string_map(None), "map[string]string(nil)");
    }

    #[test]
    fn int_or_percent_as_upstream_reads_it() {
        let mut errors = Vec::new();
        positive_int_or_percent(&json!("50%"), "f", &mut errors);
        positive_int_or_percent(&json!(0), "f", &mut errors);
        assert!(errors.is_empty());
        positive_int_or_percent(&json!("5"), "f", &mut errors);
        positive_int_or_percent(&json!(-1), "f", &mut errors);
        not_more_than_100_percent(&json!("101%"), "f", &mut errors);
        let messages: Vec<String> = errors.iter().map(FieldError::to_string).collect();
        assert_eq!(messages, [
            "f: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"5\"}: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
            "f: Invalid value: -1: must be greater than or equal to 0",
            "f: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"101%\"}: must not be greater than 100%",
        ]);
        assert_eq!(int_or_percent_value(&json!("30%")), 30);
        assert_eq!(int_or_percent_value(&json!("7")), 7);
        assert_eq!(int_or_percent_value(&json!("x")), 0);
        assert_eq!(int_or_percent_value(&json!(3)), 3);
    }

    #[test]
    fn selectors_read_as_label_selector_as_selector() {
        let with = |selector: Value| json!({"spec": {"selector": selector}});
        let labels = json!({"app": "web", "tier": "db"});
        let labels = labels.as_object();
        assert!(!Selector::of(&json!({"spec": {}})).matches(labels));
        assert!(Selector::of(&with(json!({}))).matches(labels));
        assert!(Selector::of(&with(json!({"matchLabels": {"app": "web"}}))).matches(labels));
        assert!(!Selector::of(&with(
            json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]})
        ))
        .matches(labels));
    }
}
