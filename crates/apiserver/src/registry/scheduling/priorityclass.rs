//! PriorityClasses (`pkg/apis/scheduling/validation`): user classes stay at or below
//! 1,000,000,000 and may not take the reserved `system-` prefix (only the two system classes
//! have it); a class's value and preemption policy never change.

use serde_json::Value;

use crate::registry::Strategy;
use crate::status::FieldError;

/// The highest value a user-defined class may have.
const HIGHEST_USER_PRIORITY: i64 = 1_000_000_000;
/// The classes the API server itself keeps.
const SYSTEM_CLASSES: &[&str] = &["system-node-critical", "system-cluster-critical"];

/// The PriorityClass strategy.
pub struct PriorityClassStrategy;

impl Strategy for PriorityClassStrategy {
    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        if SYSTEM_CLASSES.contains(&name) {
            return;
        }
        if name.starts_with("system-") {
            errors.push(FieldError::forbidden(
                "metadata.name",
                "priority class names with 'system-' prefix are reserved",
            ));
        }
        if object["value"]
            .as_i64()
            .is_some_and(|v| v > HIGHEST_USER_PRIORITY)
        {
            errors.push(FieldError::forbidden(
                "value",
                format!(
                    "maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"
                ),
            ));
        }
    }

    fn validate_update(&self, new: &Value, old: &Value, errors: &mut Vec<FieldError>) {
        self.validate(new, errors);
        if new["value"] != old["value"] {
            errors.push(FieldError::forbidden(
                "value",
                "may not be changed in an update.",
            ));
        }
        if new["preemptionPolicy"] != old["preemptionPolicy"] {
            errors.push(FieldError::forbidden(
                "preemptionPolicy",
                "may not be changed in an update.",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::registry::generic::{tests::resource, validate};
    use serde_json::json;

    #[test]
    fn user_classes_are_bounded_and_values_fixed() {
        let r = resource("scheduling.k8s.io", "v1", "priorityclasses");
        let ok = json!({"metadata": {"name": "high"}, "value": 1000});
        validate(r, &ok, None).expect("valid");
        let err = validate(
            r,
            &json!({"metadata": {"name": "system-mine"}, "value": 2_000_000_000}),
            None,
        )
        .expect_err("reserved");
        assert_eq!(err.message, "PriorityClass.scheduling.k8s.io \"system-mine\" is invalid: [metadata.name: Forbidden: priority class names with 'system-' prefix are reserved, value: Forbidden: maximum allowed value of a user defined priority is 1000000000]");
        let changed = json!({"metadata": {"name": "high"}, "value": 1001});
        let err = validate(r, &changed, Some(&ok)).expect_err("immutable");
        assert!(
            err.message
                .contains("value: Forbidden: may not be changed in an update."),
            "{}",
            err.message
        );
        validate(
            r,
            &json!({"metadata": {"name": "system-node-critical"}, "value": 2_000_001_000}),
            None,
        )
        .expect("system class");
    }
}
