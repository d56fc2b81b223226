//! PersistentVolumeClaims (`pkg/registry/core/persistentvolumeclaim`): a new claim starts
//! Pending; after creation only its storage request (and its volume name, once, by the
//! binder) may change, and the request never shrinks below the claim's bound capacity —
//! with upstream's messages.

use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::registry::generic::dns1123_subdomain_problems;
use crate::registry::Strategy;
use crate::status::FieldError;

/// A claim's spec at `path`, as upstream's `ValidatePersistentVolumeClaimSpec` checks it: access
/// modes, a positive storage request, class name and volume mode. Claims, StatefulSets' claim
/// templates and pods' ephemeral volume templates are checked alike.
pub fn validate_claim_spec(spec: &Value, path: &str, errors: &mut Vec<FieldError>) {
    const MODES: &[&str] = &[
        "ReadOnlyMany",
        "ReadWriteMany",
        "ReadWriteOnce",
        "ReadWriteOncePod",
    ];
    let modes: Vec<&str> = spec
        .get("accessModes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|m| m.as_str().unwrap_or(""))
        .collect();
    if modes.is_empty() {
        errors.push(FieldError::required(
            format!("{path}.accessModes"),
            "at least 1 access mode is required",
        ));
    }
    for mode in &modes {
        if !MODES.contains(mode) {
            errors.push(FieldError::not_supported(
                format!("{path}.accessModes"),
                mode,
                MODES,
            ));
        }
    }
    if modes.contains(&"ReadWriteOncePod")
        && modes
            .iter()
            .any(|m| *m != "ReadWriteOncePod" && MODES.contains(m))
    {
        errors.push(FieldError::forbidden(
            format!("{path}.accessModes"),
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
    let field = format!("{path}.resources[storage]");
    match spec.pointer("/resources/requests/storage") {
        None => errors.push(FieldError::required(field, "")),
        Some(quantity) => {
            let text = quantity.as_str().unwrap_or_default();
            let positive = ferry_api::quantity::Quantity::parse(text)
                .is_ok_and(|q| q > ferry_api::quantity::Quantity::ZERO);
            if !positive {
                errors.push(FieldError::invalid(
                    field,
                    text,
                    "must be greater than zero",
                ));
            }
        }
    }
    let class = spec
        .get("storageClassName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !class.is_empty() {
        for problem in dns1123_subdomain_problems(class) {
            errors.push(FieldError::invalid(
                format!("{path}.storageClassName"),
                class,
                problem,
            ));
        }
    }
    if let Some(mode) = spec.get("volumeMode").and_then(Value::as_str) {
        if !matches!(mode, "Block" | "Filesystem") {
            errors.push(FieldError::not_supported(
                format!("{path}.volumeMode"),
                mode,
                &["Block", "Filesystem"],
            ));
        }
    }
}

/// The PersistentVolumeClaim strategy.
pub struct PersistentVolumeClaimStrategy;

impl Strategy for PersistentVolumeClaimStrategy {
    fn prepare_for_create(&self, object: &mut Value, _user: Option<&UserInfo>) {
        object["status"] = json!({"phase": "Pending"});
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let spec = object.get("spec").cloned().unwrap_or_else(|| json!({}));
        validate_claim_spec(&spec, "spec", errors);
    }

    fn validate_update(&self, new: &Value, old: &Value, errors: &mut Vec<FieldError>) {
        self.validate(new, errors);
        // Everything but the requests of a bound claim (and a volume name the binder sets for
        // the first time) is fixed.
        let bound = old.pointer("/status/phase").and_then(Value::as_str) == Some("Bound");
        let strip = |object: &Value| {
            let mut spec = object.get("spec").cloned().unwrap_or_else(|| json!({}));
            if let Some(map) = spec.as_object_mut() {
                if bound {
                    if let Some(requests) = map
                        .get_mut("resources")
                        .and_then(|r| r.get_mut("requests"))
                        .and_then(Value::as_object_mut)
                    {
                        requests.remove("storage");
                    }
                }
                map.remove("volumeAttributesClassName");
                if old
                    .pointer("/spec/volumeName")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .is_empty()
                {
                    map.remove("volumeName");
                }
            }
            spec
        };
        if strip(new) != strip(old) {
            errors.push(FieldError::forbidden(
                "spec",
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
            ));
            return;
        }
        let request = |object: &Value| {
            object
                .pointer("/spec/resources/requests/storage")
                .and_then(Value::as_str)
                .and_then(|q| ferry_api::quantity::Quantity::parse(q).ok())
        };
        if let (Some(new_request), Some(old_request)) = (request(new), request(old)) {
            if new_request < old_request {
                errors.push(FieldError::forbidden(
                    "spec.resources.requests.storage",
                    "field can not be less than previous value",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(size: &str) -> Value {
        json!({"metadata": {"name": "c"}, "spec": {"accessModes": ["ReadWriteOnce"],
               "resources": {"requests": {"storage": size}}}})
    }

    #[test]
    fn claims_start_pending_and_only_grow() {
        let mut c = claim("1Gi");
        PersistentVolumeClaimStrategy.prepare_for_create(&mut c, None);
        assert_eq!(c["status"]["phase"], "Pending");
        let mut errors = Vec::new();
        let mut old = claim("1Gi");
        old["status"] = json!({"phase": "Bound"});
        PersistentVolumeClaimStrategy.validate_update(&claim("2Gi"), &old, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        PersistentVolumeClaimStrategy.validate_update(&claim("500Mi"), &old, &mut errors);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "spec.resources.requests.storage");
        let mut errors = Vec::new();
        let mut other = claim("1Gi");
        other["spec"]["accessModes"] = json!(["ReadWriteMany"]);
        PersistentVolumeClaimStrategy.validate_update(&other, &claim("1Gi"), &mut errors);
        assert_eq!(errors[0].field, "spec");
        // An unbound claim's size is fixed too.
        let mut errors = Vec::new();
        PersistentVolumeClaimStrategy.validate_update(&claim("2Gi"), &claim("1Gi"), &mut errors);
        assert_eq!(errors[0].field, "spec");
        // The binder sets the volume name once.
        let mut errors = Vec::new();
        let mut bound = claim("1Gi");
        bound["spec"]["volumeName"] = json!("pv1");
        PersistentVolumeClaimStrategy.validate_update(&bound, &claim("1Gi"), &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        let mut errors = Vec::new();
        PersistentVolumeClaimStrategy.validate(&json!({"spec": {}}), &mut errors);
        assert_eq!(errors.len(), 2);
    }
}
