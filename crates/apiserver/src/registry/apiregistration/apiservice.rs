//! APIServices (kube-aggregator's `pkg/apis/apiregistration/validation` and strategy): the name
//! is `<version>.<group>`, priorities in range, a local APIService (no `service`) has no CA
//! bundle and does not skip TLS verification, a remote one names its Service (port 443 by
//! default, as upstream's `SetDefaults_ServiceReference`) and may not both skip verification
//! and carry a CA bundle.

use serde_json::Value;

use crate::auth::UserInfo;
use crate::registry::generic::{dns1035_label_problems, dns1123_subdomain_problems};
use crate::registry::{NameRule, Strategy};
use crate::status::FieldError;

/// The port a Service reference gets when it names none.
pub const DEFAULT_SERVICE_PORT: i64 = 443;

/// The APIService strategy.
pub struct ApiServiceStrategy;

/// `spec.service.port` defaulted.
fn default_port(object: &mut Value) {
    if let Some(service) = object
        .pointer_mut("/spec/service")
        .and_then(Value::as_object_mut)
    {
        service
            .entry("port")
            .or_insert_with(|| DEFAULT_SERVICE_PORT.into());
    }
}

impl Strategy for ApiServiceStrategy {
    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }

    fn prepare_for_create(&self, object: &mut Value, _user: Option<&UserInfo>) {
        default_port(object);
    }

    fn prepare_for_update(&self, new: &mut Value, _old: &Value) {
        default_port(new);
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        validate_api_service(object, errors);
    }
}

/// Upstream's `ValidateAPIService` (object metadata is checked generically).
pub fn validate_api_service(object: &Value, errors: &mut Vec<FieldError>) {
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let group = text("/spec/group");
    let version = text("/spec/version");
    let name = text("/metadata/name");
    let required_name = format!("{version}.{group}");
    if !name.is_empty() && name != required_name {
        errors.push(FieldError::invalid(
            "metadata.name",
            name,
            format!("must be `spec.version+\".\"+spec.group`: {required_name:?}"),
        ));
    }
    // Only the legacy core group may be empty.
    if group.is_empty() && version != "v1" {
        errors.push(FieldError::required(
            "spec.group",
            "only v1 may have an empty group and it better be legacy kube",
        ));
    }
    if !group.is_empty() {
        for problem in dns1123_subdomain_problems(group) {
            errors.push(FieldError::invalid("spec.group", group, problem));
        }
    }
    for problem in dns1035_label_problems(version) {
        errors.push(FieldError::invalid("spec.version", version, problem));
    }
    let number = |pointer: &str| object.pointer(pointer).and_then(Value::as_i64).unwrap_or(0);
    let group_priority = number("/spec/groupPriorityMinimum");
    if group_priority <= 0 || group_priority > 20000 {
        errors.push(FieldError::invalid_raw(
            "spec.groupPriorityMinimum",
            group_priority.to_string(),
            "must be positive and less than 20000",
        ));
    }
    let version_priority = number("/spec/versionPriority");
    if version_priority <= 0 || version_priority > 1000 {
        errors.push(FieldError::invalid_raw(
            "spec.versionPriority",
            version_priority.to_string(),
            "must be positive and less than 1000",
        ));
    }
    let ca_bundle = text("/spec/caBundle");
    let insecure = object
        .pointer("/spec/insecureSkipTLSVerify")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let Some(service) = object.pointer("/spec/service").filter(|s| s.is_object()) else {
        if !ca_bundle.is_empty() {
            // Upstream counts the decoded bytes.
            let bytes = base64_len(ca_bundle);
            errors.push(FieldError::invalid_raw(
                "spec.caBundle",
                format!("{bytes:?}"),
                "local APIServices may not have a caBundle",
            ));
        }
        if insecure {
            errors.push(FieldError::invalid_raw(
                "spec.insecureSkipTLSVerify",
                "true",
                "local APIServices may not have insecureSkipTLSVerify",
            ));
        }
        return;
    };
    for field in ["namespace", "name"] {
        if service[field].as_str().unwrap_or("").is_empty() {
            errors.push(FieldError::required(format!("spec.service.{field}"), ""));
        }
    }
    if insecure && !ca_bundle.is_empty() {
        errors.push(FieldError::invalid_raw(
            "spec.insecureSkipTLSVerify",
            "true",
            "may not be true if caBundle is present",
        ));
    }
}

/// `"<n> bytes"`, the length of a base64 value once decoded.
fn base64_len(encoded: &str) -> String {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map(|b| b.len())
        .unwrap_or(encoded.len());
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::registry::generic::{tests::resource, validate};

    fn apiservices() -> &'static crate::registry::Resource {
        resource("apiregistration.k8s.io", "v1", "apiservices")
    }

    #[test]
    fn names_priorities_and_services_as_upstream() {
        let ok = json!({"metadata": {"name": "v1beta1.metrics.k8s.io"},
            "spec": {"group": "metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100,
                     "versionPriority": 100, "service": {"namespace": "kube-system", "name": "metrics-server", "port": 443},
                     "insecureSkipTLSVerify": true}});
        validate(apiservices(), &ok, None).expect("valid");
        let core = json!({"metadata": {"name": "v1."},
            "spec": {"version": "v1", "groupPriorityMinimum": 18000, "versionPriority": 1}});
        validate(apiservices(), &core, None).expect("the legacy group");

        let err = validate(
            apiservices(),
            &json!({"metadata": {"name": "metrics"},
                "spec": {"group": "metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 0,
                         "versionPriority": 1001}}),
            None,
        )
        .expect_err("invalid");
        assert_eq!(
            err.message,
            r#"APIService.apiregistration.k8s.io "metrics" is invalid: [metadata.name: Invalid value: "metrics": must be `spec.version+"."+spec.group`: "v1beta1.metrics.k8s.io", spec.groupPriorityMinimum: Invalid value: 0: must be positive and less than 20000, spec.versionPriority: Invalid value: 1001: must be positive and less than 1000]"#
        );

        let err = validate(
            apiservices(),
            &json!({"metadata": {"name": "v1.example.com"},
                "spec": {"group": "example.com", "version": "v1", "groupPriorityMinimum": 1,
                         "versionPriority": 1, "caBundle": "YWJj", "insecureSkipTLSVerify": true}}),
            None,
        )
        .expect_err("local with TLS settings");
        assert!(
            err.message.contains(r#"spec.caBundle: Invalid value: "3 bytes": local APIServices may not have a caBundle"#)
                && err.message.contains("spec.insecureSkipTLSVerify: Invalid value: true: local APIServices may not have insecureSkipTLSVerify"),
            "{}",
            err.message
        );

        let err = validate(
            apiservices(),
            &json!({"metadata": {"name": "v1.example.com"},
                "spec": {"group": "example.com", "version": "v1", "groupPriorityMinimum": 1,
                         "versionPriority": 1, "caBundle": "YWJj", "insecureSkipTLSVerify": true,
                         "service": {"port": 443}}}),
            None,
        )
        .expect_err("remote");
        assert!(
            err.message.contains("spec.service.namespace: Required value")
                && err.message.contains("spec.service.name: Required value")
                && err.message.contains("spec.insecureSkipTLSVerify: Invalid value: true: may not be true if caBundle is present"),
            "{}",
            err.message
        );

        let err = validate(
            apiservices(),
            &json!({"metadata": {"name": "v2."},
                "spec": {"version": "v2", "groupPriorityMinimum": 1, "versionPriority": 1}}),
            None,
        )
        .expect_err("empty group");
        assert!(err.message.contains(
            "spec.group: Required value: only v1 may have an empty group and it better be legacy kube"
        ));
    }
}
