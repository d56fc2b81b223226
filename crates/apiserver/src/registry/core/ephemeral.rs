//! `pods/ephemeralcontainers` (`kubectl debug`): the one way to add a container to a running
//! pod. An update through the subresource may only add ephemeral containers — the ones there
//! stay as they are — and each is checked as upstream's `validateEphemeralContainers` does:
//! only the fields that make sense for a debugging container (no ports, probes, lifecycle or
//! resources), a name unique in the pod, an image, and a `targetContainerName` that names one
//! of the pod's containers.

use serde_json::Value;

use crate::registry::generic::{is_dns_label, LABEL_MESSAGE};
use crate::status::FieldError;

/// The fields an ephemeral container may set (upstream's `allowedEphemeralContainerFields`).
const ALLOWED_FIELDS: &[&str] = &[
    "name",
    "image",
    "command",
    "args",
    "workingDir",
    "env",
    "envFrom",
    "volumeMounts",
    "volumeDevices",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "imagePullPolicy",
    "securityContext",
    "stdin",
    "stdinOnce",
    "tty",
    "targetContainerName",
];

fn list<'a>(spec: &'a Value, name: &str) -> &'a [Value] {
    spec.get(name)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn name_of(container: &Value) -> &str {
    container.get("name").and_then(Value::as_str).unwrap_or("")
}

/// The checks of the ephemeral containers of pod `spec`.
pub fn validate(spec: &Value, errors: &mut Vec<FieldError>) {
    let mut names: std::collections::BTreeSet<&str> = ["initContainers", "containers"]
        .iter()
        .flat_map(|l| list(spec, l))
        .map(name_of)
        .collect();
    let regular: Vec<&str> = ["initContainers", "containers"]
        .iter()
        .flat_map(|l| list(spec, l))
        .map(name_of)
        .collect();
    for (i, container) in list(spec, "ephemeralContainers").iter().enumerate() {
        let path = format!("spec.ephemeralContainers[{i}]");
        let name = name_of(container);
        if name.is_empty() {
            errors.push(FieldError::required(format!("{path}.name"), ""));
        } else if !is_dns_label(name) {
            errors.push(FieldError::invalid(
                format!("{path}.name"),
                name,
                LABEL_MESSAGE,
            ));
        } else if !names.insert(name) {
            errors.push(FieldError::duplicate(format!("{path}.name"), name));
        }
        if container
            .get("image")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            errors.push(FieldError::required(format!("{path}.image"), ""));
        }
        if let Some(fields) = container.as_object() {
            for (field, value) in fields {
                let empty = value.is_null()
                    || value.as_object().is_some_and(|o| o.is_empty())
                    || value.as_array().is_some_and(|a| a.is_empty());
                if !ALLOWED_FIELDS.contains(&field.as_str()) && !empty {
                    errors.push(FieldError::forbidden(
                        format!("{path}.{field}"),
                        "cannot be set for an Ephemeral Container",
                    ));
                }
            }
        }
        if let Some(target) = container
            .get("targetContainerName")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            if !regular.contains(&target) {
                errors.push(FieldError::not_found(
                    format!("{path}.targetContainerName"),
                    target,
                ));
            }
        }
    }
}

/// The checks of an update of the ephemeral containers: the old ones are kept unchanged.
pub fn validate_update(new_spec: &Value, old_spec: &Value, errors: &mut Vec<FieldError>) {
    let new = list(new_spec, "ephemeralContainers");
    for (i, old) in list(old_spec, "ephemeralContainers").iter().enumerate() {
        match new.iter().find(|c| name_of(c) == name_of(old)) {
            None => errors.push(FieldError::forbidden(
                "spec.ephemeralContainers",
                format!(
                    "existing ephemeral containers {:?} may not be removed",
                    name_of(old)
                ),
            )),
            Some(c) if c != old => errors.push(FieldError::forbidden(
                format!("spec.ephemeralContainers[{i}]"),
                format!(
                    "existing ephemeral containers {:?} may not be changed",
                    name_of(old)
                ),
            )),
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(ephemeral: Value) -> Value {
        json!({"containers": [{"name": "app", "image": "busybox"}], "ephemeralContainers": ephemeral})
    }

    fn messages(errors: Vec<FieldError>) -> Vec<String> {
        errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message()))
            .collect()
    }

    #[test]
    fn only_debugging_fields_and_a_known_target() {
        let mut errors = vec![];
        validate(
            &spec(
                json!([{"name": "debugger", "image": "busybox", "targetContainerName": "app",
                "stdin": true, "tty": true, "resources": {}, "ports": []}]),
            ),
            &mut errors,
        );
        assert!(errors.is_empty(), "{:?}", messages(errors));
        let mut errors = vec![];
        validate(
            &spec(json!([
                {"name": "d1", "image": "busybox", "ports": [{"containerPort": 80}],
                 "readinessProbe": {"exec": {"command": ["true"]}}},
                {"name": "app", "image": "busybox"},
                {"name": "d3", "targetContainerName": "nope"}])),
            &mut errors,
        );
        assert_eq!(
            messages(errors),
            [
                "spec.ephemeralContainers[0].ports: Forbidden: cannot be set for an Ephemeral Container",
                "spec.ephemeralContainers[0].readinessProbe: Forbidden: cannot be set for an Ephemeral Container",
                "spec.ephemeralContainers[1].name: Duplicate value: \"app\"",
                "spec.ephemeralContainers[2].image: Required value",
                "spec.ephemeralContainers[2].targetContainerName: Not found: \"nope\"",
            ]
        );
    }

    #[test]
    fn updates_only_add() {
        let one = spec(json!([{"name": "d1", "image": "busybox"}]));
        let two =
            spec(json!([{"name": "d1", "image": "busybox"}, {"name": "d2", "image": "busybox"}]));
        let mut errors = vec![];
        validate_update(&two, &one, &mut errors);
        assert!(errors.is_empty());
        let mut errors = vec![];
        validate_update(&spec(json!([])), &one, &mut errors);
        assert_eq!(
            messages(errors),
            ["spec.ephemeralContainers: Forbidden: existing ephemeral containers \"d1\" may not be removed"]
        );
        let mut errors = vec![];
        validate_update(
            &spec(json!([{"name": "d1", "image": "other"}])),
            &one,
            &mut errors,
        );
        assert_eq!(
            messages(errors),
            ["spec.ephemeralContainers[0]: Forbidden: existing ephemeral containers \"d1\" may not be changed"]
        );
    }
}
