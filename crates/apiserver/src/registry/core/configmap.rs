//! ConfigMaps (`pkg/registry/core/configmap`): keys are checked as upstream's
//! `IsConfigMapKey`.

use serde_json::Value;

use crate::registry::Strategy;
use crate::status::FieldError;

/// The ConfigMap strategy.
pub struct ConfigMapStrategy;

impl Strategy for ConfigMapStrategy {
    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        validate_keys(object, errors);
    }
}

/// The keys of `data`, `binaryData` and `stringData` (ConfigMaps and Secrets).
pub fn validate_keys(object: &Value, errors: &mut Vec<FieldError>) {
    for field in ["data", "binaryData", "stringData"] {
        let Some(Value::Object(data)) = object.get(field) else {
            continue;
        };
        for k in data.keys() {
            let valid = !k.is_empty()
                && k.len() <= 253
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !valid {
                errors.push(FieldError::invalid(format!("{field}[{k}]"), k.as_str(), "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::registry::generic::{tests::resource, validate};
    use serde_json::json;

    #[test]
    fn keys_are_checked() {
        for plural in ["configmaps", "secrets"] {
            let r = resource("", "v1", plural);
            validate(
                r,
                &json!({"metadata": {"name": "c"}, "data": {"a.b_C-1": "x"}}),
                None,
            )
            .expect("valid");
            let err = validate(
                r,
                &json!({"metadata": {"name": "c"}, "data": {"a/b": "x"}}),
                None,
            )
            .expect_err("bad key");
            assert!(
                err.message
                    .contains("data[a/b]: Invalid value: \"a/b\": a valid config key"),
                "{}",
                err.message
            );
        }
    }
}
