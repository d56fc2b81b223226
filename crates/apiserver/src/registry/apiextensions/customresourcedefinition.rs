//! CustomResourceDefinitions (upstream's `apiextensions-apiserver/pkg/registry/
//! customresourcedefinition` and `pkg/apis/apiextensions/validation`): defaults, validation of
//! names, versions and schemas, and the cleanup finalizer a delete adds so the definition's
//! objects go before it does.

use async_trait::async_trait;
use ferry_schema::{CostLimits, Structural};
use serde_json::{json, Value};

use crate::registry::generic::{self, default, dns1035_label_problems, dns1123_label_problems};
use crate::registry::Strategy;
use crate::status::FieldError;

/// The finalizer a deleted definition waits on while its objects are deleted.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// The rules of CustomResourceDefinitions.
pub struct CustomResourceDefinitionStrategy;

/// `SetDefaults_CustomResourceDefinition`: singular and list kind from the kind, `None`
/// conversion.
fn set_defaults(crd: &mut Value) {
    let kind = crd
        .pointer("/spec/names/kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if let Some(names) = crd.pointer_mut("/spec/names") {
        if !kind.is_empty() {
            default(names, "singular", json!(kind.to_lowercase()));
            default(names, "listKind", json!(format!("{kind}List")));
        }
    }
    if let Some(spec) = crd.get_mut("spec").filter(|s| s.is_object()) {
        default(spec, "conversion", json!({"strategy": "None"}));
    }
}

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Upstream's kind check (`IsDNS1035Label` of the lower-cased kind).
fn kind_problems(kind: &str) -> Option<String> {
    let problems = dns1035_label_problems(&kind.to_lowercase());
    (!problems.is_empty()).then(|| {
        "may have mixed case, but should otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?".to_string()
    })
}

fn validate_names(crd: &Value, errors: &mut Vec<FieldError>) {
    let plural = text(crd, "/spec/names/plural");
    if plural.is_empty() {
        errors.push(FieldError::required("spec.names.plural", ""));
    } else {
        for problem in dns1123_label_problems(plural) {
            errors.push(FieldError::invalid("spec.names.plural", plural, problem));
        }
    }
    let singular = text(crd, "/spec/names/singular");
    for problem in dns1123_label_problems(singular)
        .into_iter()
        .take_while(|_| !singular.is_empty())
    {
        errors.push(FieldError::invalid(
            "spec.names.singular",
            singular,
            problem,
        ));
    }
    let kind = text(crd, "/spec/names/kind");
    if kind.is_empty() {
        errors.push(FieldError::required("spec.names.kind", ""));
    } else if let Some(problem) = kind_problems(kind) {
        errors.push(FieldError::invalid("spec.names.kind", kind, problem));
    }
    let list_kind = text(crd, "/spec/names/listKind");
    if list_kind.is_empty() {
        errors.push(FieldError::required("spec.names.listKind", ""));
    } else if let Some(problem) = kind_problems(list_kind) {
        errors.push(FieldError::invalid(
            "spec.names.listKind",
            list_kind,
            problem,
        ));
    } else if list_kind == kind {
        errors.push(FieldError::invalid(
            "spec.names.listKind",
            list_kind,
            "kind and listKind may not be the same",
        ));
    }
    for (field, pointer) in [
        ("spec.names.shortNames", "/spec/names/shortNames"),
        ("spec.names.categories", "/spec/names/categories"),
    ] {
        let list = crd.pointer(pointer).and_then(Value::as_array);
        for (i, name) in list.into_iter().flatten().enumerate() {
            let name = name.as_str().unwrap_or("");
            for problem in dns1123_label_problems(name) {
                errors.push(FieldError::invalid(format!("{field}[{i}]"), name, problem));
            }
        }
    }
}

fn validate_versions(crd: &Value, limits: CostLimits<'_>, errors: &mut Vec<FieldError>) {
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let printed = Value::Array(versions.clone()).to_string();
    if versions.is_empty() {
        errors.push(FieldError::invalid_raw(
            "spec.versions",
            printed.clone(),
            "must have exactly one version marked as storage version",
        ));
        return;
    }
    let mut names = std::collections::HashSet::new();
    let mut storage = 0;
    for (i, version) in versions.iter().enumerate() {
        let path = format!("spec.versions[{i}]");
        let name = text(version, "/name");
        if !names.insert(name) {
            errors.push(FieldError::invalid_raw(
                "spec.versions",
                printed.clone(),
                "must contain unique version names",
            ));
        }
        for problem in dns1035_label_problems(name) {
            errors.push(FieldError::invalid(format!("{path}.name"), name, problem));
        }
        if version.get("storage").and_then(Value::as_bool) == Some(true) {
            storage += 1;
        }
        match version.pointer("/schema/openAPIV3Schema") {
            None => errors.push(FieldError::required(
                format!("{path}.schema.openAPIV3Schema"),
                "schemas are required",
            )),
            Some(schema) => {
                let base = format!("{path}.schema.openAPIV3Schema");
                if let Err(problems) = Structural::with_cost_limits(schema, &base, limits) {
                    errors.extend(problems.into_iter().map(|e| FieldError {
                        field: e.field,
                        kind: super::customresource::kind_of(e.kind),
                        value: e.value,
                        detail: e.detail,
                    }));
                }
            }
        }
        if let Some(scale) = version.pointer("/subresources/scale") {
            let scale_path = format!("{path}.subresources.scale");
            for (field, under) in [
                ("specReplicasPath", ".spec."),
                ("statusReplicasPath", ".status."),
            ] {
                let value = text(scale, &format!("/{field}"));
                if value.is_empty() {
                    errors.push(FieldError::required(format!("{scale_path}.{field}"), ""));
                } else if !value.starts_with(under) {
                    errors.push(FieldError::invalid(
                        format!("{scale_path}.{field}"),
                        value,
                        format!(
                            "should be a json path under {}",
                            under.trim_end_matches('.')
                        ),
                    ));
                }
            }
        }
    }
    if storage != 1 {
        errors.push(FieldError::invalid_raw(
            "spec.versions",
            printed,
            "must have exactly one version marked as storage version",
        ));
    }
}

/// `ValidateCustomResourceDefinition`: with its rules' estimated costs held to upstream's
/// limits as `limits` says.
fn validate_definition(crd: &Value, limits: CostLimits<'_>, errors: &mut Vec<FieldError>) {
    let group = text(crd, "/spec/group");
    let plural = text(crd, "/spec/names/plural");
    let name = text(crd, "/metadata/name");
    if name != format!("{plural}.{group}") {
        errors.push(FieldError::invalid(
            "metadata.name",
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if group.is_empty() {
        errors.push(FieldError::required("spec.group", ""));
    } else if !generic::is_dns_subdomain(group) {
        for problem in generic::dns1123_subdomain_problems(group) {
            errors.push(FieldError::invalid("spec.group", group, problem));
        }
    } else if !group.contains('.') {
        errors.push(FieldError::invalid(
            "spec.group",
            group,
            "should be a domain with at least one dot",
        ));
    }
    match text(crd, "/spec/scope") {
        "" => errors.push(FieldError::required("spec.scope", "")),
        "Cluster" | "Namespaced" => {}
        other => errors.push(FieldError::not_supported(
            "spec.scope",
            other,
            &["Cluster", "Namespaced"],
        )),
    }
    validate_names(crd, errors);
    validate_versions(crd, limits, errors);
    match text(crd, "/spec/conversion/strategy") {
        "None" => {}
        "Webhook" => match crd.pointer("/spec/conversion/webhook") {
            None => errors.push(FieldError::required(
                "spec.conversion.webhook",
                "required when strategy is set to Webhook",
            )),
            Some(webhook) => {
                let versions = webhook
                    .get("conversionReviewVersions")
                    .and_then(Value::as_array);
                if !versions
                    .into_iter()
                    .flatten()
                    .any(|v| v == "v1" || v == "v1beta1")
                {
                    errors.push(FieldError::required(
                        "spec.conversion.webhook.conversionReviewVersions",
                        "must include at least one of v1, v1beta1",
                    ));
                }
                let config = webhook.get("clientConfig");
                let url = config.and_then(|c| c.get("url"));
                let service = config.and_then(|c| c.get("service"));
                if url.is_some() == service.is_some() {
                    errors.push(FieldError::required(
                        "spec.conversion.webhook.clientConfig",
                        "exactly one of url or service is required",
                    ));
                }
            }
        },
        other => errors.push(FieldError::not_supported(
            "spec.conversion.strategy",
            other,
            &["None", "Webhook"],
        )),
    }
}

#[async_trait]
impl Strategy for CustomResourceDefinitionStrategy {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_for_create(&self, object: &mut Value, _user: Option<&crate::auth::UserInfo>) {
        set_defaults(object);
    }

    fn prepare_for_update(&self, new: &mut Value, _old: &Value) {
        set_defaults(new);
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        validate_definition(object, CostLimits::All, errors);
    }

    fn validate_update(&self, new: &Value, old: &Value, errors: &mut Vec<FieldError>) {
        // The expressions the definition already had are not held to the cost limits again.
        let had = old
            .pointer("/spec/versions")
            .map(ferry_schema::expressions)
            .unwrap_or_default();
        validate_definition(new, CostLimits::Except(&had), errors);
        generic::immutable(new, old, "/spec/group", "spec.group", errors);
        generic::immutable(new, old, "/spec/scope", "spec.scope", errors);
    }

    fn delete_finalizers(&self) -> &'static [&'static str] {
        &[CLEANUP_FINALIZER]
    }

    fn prepare_for_graceful_delete(&self, object: &mut Value) {
        set_condition(
            object,
            "Terminating",
            "True",
            "InstanceDeletionPending",
            "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
        );
    }
}

/// Sets a condition of a definition's status, keeping its transition time when the status does
/// not change. Returns whether anything changed.
pub fn set_condition(
    crd: &mut Value,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
) -> bool {
    if !crd.get("status").is_some_and(Value::is_object) {
        crd["status"] = json!({});
    }
    let conditions = crd["status"]
        .as_object_mut()
        .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
    let Some(Value::Array(conditions)) = conditions else {
        return false;
    };
    let now = crate::object::now_rfc3339();
    match conditions.iter_mut().find(|c| c["type"] == type_) {
        Some(c) if c["status"] == status && c["reason"] == reason && c["message"] == message => {
            false
        }
        Some(c) => {
            if c["status"] != status {
                c["lastTransitionTime"] = json!(now);
            }
            c["status"] = json!(status);
            c["reason"] = json!(reason);
            c["message"] = json!(message);
            true
        }
        None => {
            conditions.push(
                json!({"type": type_, "status": status, "lastTransitionTime": now,
                "reason": reason, "message": message}),
            );
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::generic::tests::{field_errors, resource};

    fn crontab() -> Value {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "crontabs.stable.example.com"},
            "spec": {"group": "stable.example.com", "scope": "Namespaced",
                "names": {"plural": "crontabs", "kind": "CronTab", "shortNames": ["ct"]},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {"cronSpec": {"type": "string"}}}}}}}]}})
    }

    #[test]
    fn defaults_fill_singular_list_kind_and_conversion() {
        let mut crd = crontab();
        set_defaults(&mut crd);
        assert_eq!(crd["spec"]["names"]["singular"], "crontab");
        assert_eq!(crd["spec"]["names"]["listKind"], "CronTabList");
        assert_eq!(crd["spec"]["conversion"]["strategy"], "None");
        let crds = resource("apiextensions.k8s.io", "v1", "customresourcedefinitions");
        assert_eq!(field_errors(crds, &crd, None), Vec::<String>::new());
    }

    #[test]
    fn rules_costs_are_limited_unless_the_definition_had_them() {
        let crds = resource("apiextensions.k8s.io", "v1", "customresourcedefinitions");
        let with_rule = |rule: &str| {
            let mut crd = crontab();
            set_defaults(&mut crd);
            crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
                ["properties"]["tags"] = json!({"type": "array", "items": {"type": "string"},
                    "x-kubernetes-validations": [{"rule": rule}]});
            crd
        };
        let costly = with_rule("self.all(x, x.matches('^[a-z]+$'))");
        let over = |errors: &[String]| {
            errors.iter().any(|e| {
                e.starts_with("spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[tags].x-kubernetes-validations[0].rule: Forbidden: estimated rule cost exceeds budget")
            })
        };
        assert!(over(&field_errors(crds, &costly, None)));
        // A definition that had the rule keeps it through an update.
        let mut relabelled = costly.clone();
        relabelled["metadata"]["labels"] = json!({"team": "a"});
        assert!(!over(&field_errors(crds, &relabelled, Some(&costly))));
        // A new costly rule in an update is refused.
        let cheap = with_rule("self.size() >= 0");
        assert!(field_errors(crds, &cheap, None).is_empty());
        assert!(over(&field_errors(crds, &costly, Some(&cheap))));
    }

    #[test]
    fn bad_definitions_get_upstreams_messages() {
        let crds = resource("apiextensions.k8s.io", "v1", "customresourcedefinitions");
        let mut crd = crontab();
        set_defaults(&mut crd);
        crd["metadata"]["name"] = json!("tabs.stable.example.com");
        crd["spec"]["scope"] = json!("Galaxy");
        crd["spec"]["versions"][0]["storage"] = json!(false);
        let errors = field_errors(crds, &crd, None);
        assert!(errors.contains(&"metadata.name: Invalid value: \"tabs.stable.example.com\": must be spec.names.plural+\".\"+spec.group".to_string()), "{errors:?}");
        assert!(errors.contains(&"spec.scope: Unsupported value: \"Galaxy\": supported values: \"Cluster\", \"Namespaced\"".to_string()), "{errors:?}");
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("spec.versions: Invalid value: ")
                    && e.ends_with("must have exactly one version marked as storage version")),
            "{errors:?}"
        );
        let mut crd = crontab();
        set_defaults(&mut crd);
        crd["spec"]["group"] = json!("example");
        crd["metadata"]["name"] = json!("crontabs.example");
        crd["spec"]["versions"][0]
            .as_object_mut()
            .map(|v| v.remove("schema"));
        let errors = field_errors(crds, &crd, None);
        assert_eq!(
            errors,
            [
                "spec.group: Invalid value: \"example\": should be a domain with at least one dot",
                "spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required",
            ]
        );
    }

    #[test]
    fn a_delete_marks_the_definition_terminating() {
        let mut crd = crontab();
        CustomResourceDefinitionStrategy.prepare_for_graceful_delete(&mut crd);
        let condition = &crd["status"]["conditions"][0];
        assert_eq!(condition["type"], "Terminating");
        assert_eq!(condition["reason"], "InstanceDeletionPending");
        assert!(!set_condition(
            &mut crd,
            "Terminating",
            "True",
            "InstanceDeletionPending",
            "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon"
        ));
    }
}
