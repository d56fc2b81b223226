//! StatefulSets (`pkg/registry/apps/statefulset`): upstream's defaults (OrderedReady, a
//! RollingUpdate from partition 0, PVCs retained), applied to every write as upstream's
//! decoding applies them; names are DNS labels, as pods' hostnames derive from them; and
//! upstream's validation (`ValidateStatefulSet`, `ValidateStatefulSetUpdate`): policies,
//! update strategy, claim templates, the template's selector and restart policy, and an update
//! that changes only what may change.

use serde_json::{json, Map, Value};

use crate::auth::UserInfo;
use crate::registry::apps::validation::{
    always_restarting, empty_selector, go_int_or_string, go_pointer, int_or_percent_value,
    labels_mismatch, nonnegative, not_more_than_100_percent, positive_int_or_percent, str_at,
    template_labels, Selector,
};
use crate::registry::core::persistentvolumeclaim::validate_claim_spec;
use crate::registry::core::pod::{default_template, validate_pod_spec};
use crate::registry::generic::{default, dns1123_label_problems};
use crate::registry::{NameRule, Strategy};
use crate::status::FieldError;

/// The StatefulSet strategy.
pub struct StatefulSetStrategy;

impl Strategy for StatefulSetStrategy {
    fn traced(&self) -> bool {
        true
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn name_rule(&self) -> NameRule {
        NameRule::Label
    }

    fn prepare_for_create(&self, object: &mut Value, _user: Option<&UserInfo>) {
        set_defaults(object);
    }

    fn default_fields(&self, object: &mut Value) {
        set_defaults(object);
    }

    fn prepare_for_update(&self, new: &mut Value, _old: &Value) {
        set_defaults(new);
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        validate_spec(object, Write::Create, errors);
    }

    fn validate_update(&self, new: &Value, old: &Value, errors: &mut Vec<FieldError>) {
        validate_spec(new, Write::Update, errors);
        if fixed_part(new) != fixed_part(old) {
            errors.push(FieldError::forbidden("spec", FORBIDDEN_UPDATE));
        }
    }
}

/// Upstream's refusal of an update to anything but the fields it lists.
pub const FORBIDDEN_UPDATE: &str = "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";

/// What an update may change.
const MUTABLE: &[&str] = &[
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

/// Which write is validated: some checks hold only for new objects, so that objects stored
/// before them can still be updated (upstream's ratcheting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    Create,
    Update,
}

/// `SetDefaults_StatefulSet` and the template's pod defaults. A Go zero value (`""`) is
/// defaulted as an absent one.
fn set_defaults(object: &mut Value) {
    if let Some(spec) = object.get_mut("spec").filter(|s| s.is_object()) {
        default(spec, "replicas", json!(1));
        default_unset(spec, "podManagementPolicy", "OrderedReady");
        default(spec, "revisionHistoryLimit", json!(10));
        default(spec, "updateStrategy", json!({}));
        if let Some(strategy) = spec.get_mut("updateStrategy").filter(|s| s.is_object()) {
            if str_at(strategy, "/type").is_empty() {
                strategy["type"] = json!("RollingUpdate");
                default(strategy, "rollingUpdate", json!({}));
            }
            if str_at(strategy, "/type") == "RollingUpdate" {
                if let Some(rolling) = strategy.get_mut("rollingUpdate") {
                    default(rolling, "partition", json!(0));
                }
            }
        }
        default(spec, "persistentVolumeClaimRetentionPolicy", json!({}));
        if let Some(policy) = spec.get_mut("persistentVolumeClaimRetentionPolicy") {
            default_unset(policy, "whenDeleted", "Retain");
            default_unset(policy, "whenScaled", "Retain");
        }
    }
    default_template(object, "/spec/template/spec");
}

/// Sets `object[key]` when it is absent or Go's zero value.
fn default_unset(object: &mut Value, key: &str, value: &str) {
    if let Some(map) = object.as_object_mut() {
        let unset = map
            .get(key)
            .is_none_or(|v| v.is_null() || v.as_str() == Some(""));
        if unset {
            map.insert(key.into(), json!(value));
        }
    }
}

/// `ValidateStatefulSetSpec`, in upstream's order.
fn validate_spec(object: &Value, write: Write, errors: &mut Vec<FieldError>) {
    match str_at(object, "/spec/podManagementPolicy") {
        "" => errors.push(FieldError::required("spec.podManagementPolicy", "")),
        "OrderedReady" | "Parallel" => {}
        other => errors.push(FieldError::invalid(
            "spec.podManagementPolicy",
            other,
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    validate_update_strategy(object, errors);
    if let Some(policy) = object.pointer("/spec/persistentVolumeClaimRetentionPolicy") {
        for when in ["whenDeleted", "whenScaled"] {
            let value = str_at(policy, &format!("/{when}"));
            if !matches!(value, "Retain" | "Delete") {
                errors.push(FieldError::not_supported(
                    format!("spec.persistentVolumeClaimRetentionPolicy.{when}"),
                    value,
                    &["Retain", "Delete"],
                ));
            }
        }
    }
    if write == Write::Create {
        validate_claim_templates(object, errors);
    }
    nonnegative(object, "/spec/replicas", "spec.replicas", errors);
    nonnegative(
        object,
        "/spec/minReadySeconds",
        "spec.minReadySeconds",
        errors,
    );
    nonnegative(
        object,
        "/spec/revisionHistoryLimit",
        "spec.revisionHistoryLimit",
        errors,
    );
    nonnegative(
        object,
        "/spec/ordinals/start",
        "spec.ordinals.start",
        errors,
    );
    let service_name = str_at(object, "/spec/serviceName");
    if write == Write::Create && !service_name.is_empty() {
        for problem in dns1123_label_problems(service_name) {
            errors.push(FieldError::invalid(
                "spec.serviceName",
                service_name,
                problem,
            ));
        }
    }
    if object.pointer("/spec/selector").is_none() {
        errors.push(FieldError::required("spec.selector", ""));
    }
    empty_selector(object, "statefulset", errors);
    let selector = Selector::of(object);
    if !matches!(selector, Selector::Everything) && !selector.matches(template_labels(object)) {
        errors.push(labels_mismatch(object, "spec.template"));
    }
    match object.pointer("/spec/template/spec") {
        Some(spec) => validate_pod_spec(spec, "spec.template.spec", errors),
        None => errors.push(FieldError::required("spec.template.spec.containers", "")),
    }
    always_restarting(object, "StatefulSet", errors);
}

/// The update strategy: its type, and a rolling update only with `RollingUpdate`.
fn validate_update_strategy(object: &Value, errors: &mut Vec<FieldError>) {
    let strategy = object
        .pointer("/spec/updateStrategy")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let rolling = strategy.get("rollingUpdate").filter(|r| !r.is_null());
    let go_rolling = |rolling: &Value| {
        format!(
            "apps.RollingUpdateStatefulSetStrategy{{Partition:{}, MaxUnavailable:{}}}",
            rolling
                .get("partition")
                .and_then(Value::as_i64)
                .unwrap_or(0),
            go_pointer(
                "intstr.IntOrString",
                rolling.get("maxUnavailable").is_some_and(|m| !m.is_null())
            )
        )
    };
    match str_at(&strategy, "/type") {
        "" => errors.push(FieldError::required("spec.updateStrategy", "")),
        "OnDelete" => {
            if let Some(rolling) = rolling {
                errors.push(FieldError::invalid_raw(
                    "spec.updateStrategy.rollingUpdate",
                    go_rolling(rolling),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            if let Some(rolling) = rolling {
                validate_rolling_update(rolling, errors);
            }
        }
        other => errors.push(FieldError::invalid_raw(
            "spec.updateStrategy",
            format!(
                "apps.StatefulSetUpdateStrategy{{Type:{other:?}, RollingUpdate:{}}}",
                go_pointer("apps.RollingUpdateStatefulSetStrategy", rolling.is_some())
            ),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
}

/// `validateRollingUpdateStatefulSet`: a partition of 0 or more, and a `maxUnavailable` above
/// 0 and at most 100%.
fn validate_rolling_update(rolling: &Value, errors: &mut Vec<FieldError>) {
    nonnegative(
        rolling,
        "/partition",
        "spec.updateStrategy.rollingUpdate.partition",
        errors,
    );
    let Some(max) = rolling.get("maxUnavailable").filter(|m| !m.is_null()) else {
        return;
    };
    let field = "spec.updateStrategy.rollingUpdate.maxUnavailable";
    positive_int_or_percent(max, field, errors);
    if int_or_percent_value(max) == 0 {
        errors.push(FieldError::invalid_raw(
            field,
            go_int_or_string(max),
            "cannot be 0",
        ));
    }
    not_more_than_100_percent(max, field, errors);
}

/// The claim templates' specs, as a claim's ([`validate_claim_spec`]).
fn validate_claim_templates(object: &Value, errors: &mut Vec<FieldError>) {
    let templates = object
        .pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array);
    for (i, template) in templates.into_iter().flatten().enumerate() {
        let spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
        validate_claim_spec(
            &spec,
            &format!("spec.volumeClaimTemplates[{i}].spec"),
            errors,
        );
    }
}

/// The spec without what an update may change, with empty and null fields dropped (upstream
/// compares with `Semantic.DeepEqual`, to which nil and empty are the same).
fn fixed_part(object: &Value) -> Value {
    let mut spec = object.get("spec").cloned().unwrap_or_else(|| json!({}));
    if let Some(map) = spec.as_object_mut() {
        for field in MUTABLE {
            map.remove(*field);
        }
    }
    without_empty(spec)
}

fn without_empty(value: Value) -> Value {
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    };
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, without_empty(v)))
                .filter(|(_, v)| !empty(v))
                .collect::<Map<String, Value>>(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_empty).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::generic::{prepare_for_create, tests::resource};

    fn statefulsets() -> &'static crate::registry::Resource {
        resource("apps", "v1", "statefulsets")
    }

    /// A valid StatefulSet, defaulted as a create defaults it.
    fn valid() -> Value {
        let mut ss = json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "serviceName": "web",
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}
                },
                "volumeClaimTemplates": [{
                    "metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
                }]
            }
        });
        prepare_for_create(statefulsets(), &mut ss, None);
        ss
    }

    /// The 422's field errors of a create of `ss`, or of its update from `old`.
    fn errors(ss: &Value, old: Option<&Value>) -> Vec<String> {
        crate::registry::generic::tests::field_errors(statefulsets(), ss, old)
    }

    #[test]
    fn defaults_are_upstreams() {
        let ss = valid();
        assert_eq!(ss["spec"]["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            ss["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(
            ss["spec"]["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(ss["spec"]["template"]["spec"]["restartPolicy"], "Always");
        let mut on_delete = valid();
        on_delete["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
        set_defaults(&mut on_delete);
        assert_eq!(
            on_delete["spec"]["updateStrategy"],
            json!({"type": "OnDelete"})
        );
        let mut partial = valid();
        partial["spec"]["updateStrategy"] = json!({"rollingUpdate": {"maxUnavailable": 2}});
        partial["spec"]["persistentVolumeClaimRetentionPolicy"] = json!({"whenDeleted": "Delete"});
        set_defaults(&mut partial);
        assert_eq!(
            partial["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2, "partition": 0}})
        );
        assert_eq!(
            partial["spec"]["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Delete", "whenScaled": "Retain"})
        );
        assert!(errors(&valid(), None).is_empty());
    }

    #[test]
    fn invalid_specs_fail_as_upstream() {
        let cases: &[(&str, Value, &[&str])] = &[
            (
                "podManagementPolicy",
                json!({"podManagementPolicy": "Sometimes"}),
                &["spec.podManagementPolicy: Invalid value: \"Sometimes\": must be 'OrderedReady' or 'Parallel'"],
            ),
            (
                "updateStrategy type",
                json!({"updateStrategy": {"type": "Sometimes"}}),
                &["spec.updateStrategy: Invalid value: apps.StatefulSetUpdateStrategy{Type:\"Sometimes\", RollingUpdate:(*apps.RollingUpdateStatefulSetStrategy)(nil)}: must be 'RollingUpdate' or 'OnDelete'"],
            ),
            (
                "rollingUpdate with OnDelete",
                json!({"updateStrategy": {"type": "OnDelete", "rollingUpdate": {"partition": 1}}}),
                &["spec.updateStrategy.rollingUpdate: Invalid value: apps.RollingUpdateStatefulSetStrategy{Partition:1, MaxUnavailable:(*intstr.IntOrString)(nil)}: only allowed for updateStrategy 'RollingUpdate'"],
            ),
            (
                "negative partition",
                json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": -1}}}),
                &["spec.updateStrategy.rollingUpdate.partition: Invalid value: -1: must be greater than or equal to 0"],
            ),
            (
                "zero maxUnavailable",
                json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": 0}}}),
                &["spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: cannot be 0"],
            ),
            (
                "negative maxUnavailable",
                json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": -1}}}),
                &["spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: -1: must be greater than or equal to 0"],
            ),
            (
                "maxUnavailable over 100%",
                json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": "101%"}}}),
                &["spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"101%\"}: must not be greater than 100%"],
            ),
            (
                "maxUnavailable not a percent",
                json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": "0.5"}}}),
                &[
                    "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"0.5\"}: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                    "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"0.5\"}: cannot be 0",
                ],
            ),
            (
                "retention policy",
                json!({"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Keep", "whenScaled": "Delete"}}),
                &["spec.persistentVolumeClaimRetentionPolicy.whenDeleted: Unsupported value: \"Keep\": supported values: \"Retain\", \"Delete\""],
            ),
            (
                "negative counts",
                json!({"replicas": -1, "minReadySeconds": -1, "revisionHistoryLimit": -1, "ordinals": {"start": -1}}),
                &[
                    "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                    "spec.minReadySeconds: Invalid value: -1: must be greater than or equal to 0",
                    "spec.revisionHistoryLimit: Invalid value: -1: must be greater than or equal to 0",
                    "spec.ordinals.start: Invalid value: -1: must be greater than or equal to 0",
                ],
            ),
            (
                "serviceName",
                json!({"serviceName": "Web_Svc"}),
                &["spec.serviceName: Invalid value: \"Web_Svc\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"],
            ),
            (
                "serviceName with dots",
                json!({"serviceName": "web.svc"}),
                &["spec.serviceName: Invalid value: \"web.svc\": must not contain dots"],
            ),
            (
                "empty selector",
                json!({"selector": {}}),
                &["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for statefulset"],
            ),
            (
                "selector not matching",
                json!({"selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["db"]}]}}),
                &["spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`"],
            ),
        ];
        for (name, spec, want) in cases {
            let mut ss = valid();
            for (k, v) in spec.as_object().expect("object") {
                ss["spec"][k] = v.clone();
            }
            assert_eq!(errors(&ss, None), *want, "{name}");
        }
    }

    #[test]
    fn templates_restart_always_without_deadline() {
        let mut ss = valid();
        ss["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        ss["spec"]["template"]["spec"]["activeDeadlineSeconds"] = json!(10);
        assert_eq!(
            errors(&ss, None),
            [
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
                "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in StatefulSet is not Supported",
            ]
        );
        let mut missing = valid();
        missing["spec"]
            .as_object_mut()
            .expect("spec")
            .remove("selector");
        assert_eq!(
            errors(&missing, None),
            [
                "spec.selector: Required value",
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
            ]
        );
    }

    #[test]
    fn claim_templates_are_checked_as_claims() {
        let mut ss = valid();
        ss["spec"]["volumeClaimTemplates"] = json!([
            {"metadata": {"name": "a"}, "spec": {"resources": {"requests": {"storage": "0"}}}},
            {"metadata": {"name": "b"}, "spec": {"accessModes": ["ReadWriteOncePod", "ReadWriteOnce", "Sometimes"], "storageClassName": "Fast_Disks", "volumeMode": "Tape"}},
        ]);
        assert_eq!(
            errors(&ss, None),
            [
                "spec.volumeClaimTemplates[0].spec.accessModes: Required value: at least 1 access mode is required",
                "spec.volumeClaimTemplates[0].spec.resources[storage]: Invalid value: \"0\": must be greater than zero",
                "spec.volumeClaimTemplates[1].spec.accessModes: Unsupported value: \"Sometimes\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
                "spec.volumeClaimTemplates[1].spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes",
                "spec.volumeClaimTemplates[1].spec.resources[storage]: Required value",
                "spec.volumeClaimTemplates[1].spec.storageClassName: Invalid value: \"Fast_Disks\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                "spec.volumeClaimTemplates[1].spec.volumeMode: Unsupported value: \"Tape\": supported values: \"Block\", \"Filesystem\"",
            ]
        );
    }

    #[test]
    fn updates_change_only_what_upstream_allows() {
        let old = valid();
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(5);
        new["spec"]["minReadySeconds"] = json!(3);
        new["spec"]["revisionHistoryLimit"] = json!(2);
        new["spec"]["ordinals"] = json!({"start": 2});
        new["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
        new["spec"]["persistentVolumeClaimRetentionPolicy"] =
            json!({"whenDeleted": "Delete", "whenScaled": "Delete"});
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        assert!(errors(&new, Some(&old)).is_empty());
        let forbidden = format!("spec: Forbidden: {FORBIDDEN_UPDATE}");
        for (field, value) in [
            ("serviceName", json!("other")),
            ("podManagementPolicy", json!("Parallel")),
            ("volumeClaimTemplates", json!([])),
        ] {
            let mut changed = old.clone();
            changed["spec"][field] = value;
            assert_eq!(
                errors(&changed, Some(&old)),
                [forbidden.as_str()],
                "{field}"
            );
        }
        // The selector too (with labels to match, so it is the only complaint).
        let mut moved = old.clone();
        moved["spec"]["selector"]["matchLabels"]["tier"] = json!("x");
        moved["spec"]["template"]["metadata"]["labels"]["tier"] = json!("x");
        assert_eq!(errors(&moved, Some(&old)), [forbidden]);
        // A stored serviceName that is no label does not block other updates.
        let mut stored = old.clone();
        stored["spec"]["serviceName"] = json!("Legacy_Name");
        let mut scaled = stored.clone();
        scaled["spec"]["replicas"] = json!(3);
        assert!(errors(&scaled, Some(&stored)).is_empty());
        // Defaults come back on update, as upstream decodes every write with them.
        let mut replaced = old.clone();
        replaced["spec"]
            .as_object_mut()
            .expect("spec")
            .remove("podManagementPolicy");
        crate::registry::generic::prepare_for_update(statefulsets(), &mut replaced, &old);
        assert!(errors(&replaced, Some(&old)).is_empty());
    }
}
