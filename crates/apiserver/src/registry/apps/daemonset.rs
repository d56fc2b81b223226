//! DaemonSets (`pkg/registry/apps/daemonset`): upstream's defaults (a RollingUpdate of one
//! unavailable pod, no surge, ten revisions kept), applied to every write as upstream's
//! decoding applies them; the template generation, which apps/v1 carries in the
//! `deprecated.daemonset.template.generation` annotation: 1 at creation, one more each time the
//! pod template changes (the controller labels pods with it); and upstream's validation
//! (`ValidateDaemonSet`, `ValidateDaemonSetUpdate`, `ValidateRollingUpdateDaemonSet`): the
//! template's selector and restart policy, the update strategy, a selector that never changes.

use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::registry::apps::validation::{
    always_restarting, empty_selector, go_int_or_string, go_label_selector, go_pointer,
    int_or_percent_value, labels_mismatch, nonnegative, not_more_than_100_percent,
    not_supported_raw, positive_int_or_percent, str_at, template_labels, Selector,
};
use crate::registry::core::pod::{default_template, validate_pod_spec};
use crate::registry::generic::default;
use crate::registry::Strategy;
use crate::status::FieldError;

/// The DaemonSet strategy.
pub struct DaemonSetStrategy;

impl Strategy for DaemonSetStrategy {
    fn traced(&self) -> bool {
        true
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_for_create(&self, object: &mut Value, _user: Option<&UserInfo>) {
        set_defaults(object);
        set_template_generation(object, 1);
    }

    fn default_fields(&self, object: &mut Value) {
        set_defaults(object);
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        set_defaults(new);
        let generation = template_generation(old);
        let changed = new.pointer("/spec/template") != old.pointer("/spec/template");
        set_template_generation(new, if changed { generation + 1 } else { generation });
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        validate_spec(object, errors);
    }

    /// The new object's validation, then the selector, which apps/v1 never lets change.
    fn validate_update(&self, new: &Value, old: &Value, errors: &mut Vec<FieldError>) {
        validate_spec(new, errors);
        let selector = new.pointer("/spec/selector");
        if selector != old.pointer("/spec/selector") {
            errors.push(FieldError::invalid_raw(
                "spec.selector",
                selector
                    .map(go_label_selector)
                    .unwrap_or_else(|| "null".into()),
                "field is immutable",
            ));
        }
    }
}

/// `SetDefaults_DaemonSet` and the template's pod defaults: an unset strategy type is a
/// RollingUpdate, whose unset bounds are 1 unavailable and no surge.
fn set_defaults(object: &mut Value) {
    if let Some(spec) = object.get_mut("spec").filter(|s| s.is_object()) {
        default(spec, "revisionHistoryLimit", json!(10));
        default(spec, "updateStrategy", json!({}));
        if let Some(strategy) = spec.get_mut("updateStrategy").filter(|s| s.is_object()) {
            if str_at(strategy, "/type").is_empty() {
                strategy["type"] = json!("RollingUpdate");
            }
            if str_at(strategy, "/type") == "RollingUpdate" {
                if strategy.get("rollingUpdate").is_none_or(Value::is_null) {
                    strategy["rollingUpdate"] = json!({});
                }
                if let Some(rolling) = strategy.get_mut("rollingUpdate") {
                    default(rolling, "maxUnavailable", json!(1));
                    default(rolling, "maxSurge", json!(0));
                }
            }
        }
    }
    default_template(object, "/spec/template/spec");
}

/// `ValidateDaemonSetSpec`, in upstream's order.
fn validate_spec(object: &Value, errors: &mut Vec<FieldError>) {
    if !Selector::of(object).matches(template_labels(object)) {
        errors.push(labels_mismatch(object, "spec.template"));
    }
    empty_selector(object, "daemonset", errors);
    match object.pointer("/spec/template/spec") {
        Some(spec) => validate_pod_spec(spec, "spec.template.spec", errors),
        None => errors.push(FieldError::required("spec.template.spec.containers", "")),
    }
    always_restarting(object, "DaemonSet", errors);
    nonnegative(
        object,
        "/spec/minReadySeconds",
        "spec.minReadySeconds",
        errors,
    );
    validate_update_strategy(object, errors);
    nonnegative(
        object,
        "/spec/revisionHistoryLimit",
        "spec.revisionHistoryLimit",
        errors,
    );
}

/// `ValidateDaemonSetUpdateStrategy`.
fn validate_update_strategy(object: &Value, errors: &mut Vec<FieldError>) {
    let strategy = object
        .pointer("/spec/updateStrategy")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let rolling = strategy.get("rollingUpdate").filter(|r| !r.is_null());
    match str_at(&strategy, "/type") {
        "OnDelete" => {}
        "RollingUpdate" => match rolling {
            None => errors.push(FieldError::required(
                "spec.updateStrategy.rollingUpdate",
                "",
            )),
            Some(rolling) => validate_rolling_update(rolling, errors),
        },
        other => errors.push(not_supported_raw(
            "spec.updateStrategy",
            format!(
                "apps.DaemonSetUpdateStrategy{{Type:{other:?}, RollingUpdate:{}}}",
                go_pointer("apps.RollingUpdateDaemonSet", rolling.is_some())
            ),
            &["RollingUpdate", "OnDelete"],
        )),
    }
}

/// `ValidateRollingUpdateDaemonSet`: both bounds an integer or a percent of at most 100%, and
/// exactly one of them above 0.
fn validate_rolling_update(rolling: &Value, errors: &mut Vec<FieldError>) {
    const UNAVAILABLE: &str = "spec.updateStrategy.rollingUpdate.maxUnavailable";
    const SURGE: &str = "spec.updateStrategy.rollingUpdate.maxSurge";
    // An unset bound is Go's zero IntOrString.
    let bound = |key: &str| {
        rolling
            .get(key)
            .filter(|v| !v.is_null())
            .cloned()
            .unwrap_or(json!(0))
    };
    let (unavailable, surge) = (bound("maxUnavailable"), bound("maxSurge"));
    positive_int_or_percent(&unavailable, UNAVAILABLE, errors);
    positive_int_or_percent(&surge, SURGE, errors);
    not_more_than_100_percent(&unavailable, UNAVAILABLE, errors);
    not_more_than_100_percent(&surge, SURGE, errors);
    let has_unavailable = int_or_percent_value(&unavailable) != 0;
    let has_surge = int_or_percent_value(&surge) != 0;
    if has_unavailable && has_surge {
        errors.push(FieldError::invalid_raw(
            SURGE,
            go_int_or_string(&surge),
            "may not be set when maxUnavailable is non-zero",
        ));
    } else if !has_unavailable && !has_surge {
        errors.push(FieldError::required(
            UNAVAILABLE,
            "cannot be 0 when maxSurge is 0",
        ));
    }
}

/// The annotation holding the template generation.
pub const TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

fn template_generation(object: &Value) -> i64 {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(TEMPLATE_GENERATION))
        .and_then(Value::as_str)
        .and_then(|g| g.parse().ok())
        .unwrap_or(0)
}

fn set_template_generation(object: &mut Value, generation: i64) {
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
    if !annotations.is_object() {
        *annotations = json!({});
    }
    annotations[TEMPLATE_GENERATION] = json!(generation.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::generic::{prepare_for_create, tests::resource};

    fn daemonsets() -> &'static crate::registry::Resource {
        resource("apps", "v1", "daemonsets")
    }

    fn valid() -> Value {
        let mut ds = json!({
            "metadata": {"name": "agent", "namespace": "kube-system"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {
                    "metadata": {"labels": {"app": "agent"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}
                }
            }
        });
        prepare_for_create(daemonsets(), &mut ds, None);
        ds
    }

    fn errors(ds: &Value, old: Option<&Value>) -> Vec<String> {
        crate::registry::generic::tests::field_errors(daemonsets(), ds, old)
    }

    #[test]
    fn the_template_generation_moves_with_the_template() {
        let mut ds = json!({"metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "a"}]}}}});
        DaemonSetStrategy.prepare_for_create(&mut ds, None);
        assert_eq!(ds["metadata"]["annotations"][TEMPLATE_GENERATION], "1");
        let mut same = ds.clone();
        same["spec"]["minReadySeconds"] = json!(5);
        DaemonSetStrategy.prepare_for_update(&mut same, &ds);
        assert_eq!(same["metadata"]["annotations"][TEMPLATE_GENERATION], "1");
        let mut changed = ds.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("b");
        DaemonSetStrategy.prepare_for_update(&mut changed, &ds);
        assert_eq!(changed["metadata"]["annotations"][TEMPLATE_GENERATION], "2");
    }

    #[test]
    fn strategies_are_defaulted_as_upstream() {
        assert_eq!(
            valid()["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        let mut partial = valid();
        partial["spec"]["updateStrategy"] = json!({"rollingUpdate": {"maxSurge": "10%"}});
        set_defaults(&mut partial);
        assert_eq!(
            partial["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "10%"}})
        );
        let mut on_delete = valid();
        on_delete["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
        set_defaults(&mut on_delete);
        assert_eq!(
            on_delete["spec"]["updateStrategy"],
            json!({"type": "OnDelete"})
        );
        assert!(errors(&valid(), None).is_empty());
        assert!(errors(&on_delete, None).is_empty());
    }

    #[test]
    fn invalid_specs_fail_as_upstream() {
        let rolling =
            |ru: Value| json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": ru}});
        let cases: &[(&str, Value, &[&str])] = &[
            (
                "both zero",
                rolling(json!({"maxUnavailable": 0, "maxSurge": 0})),
                &["spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"],
            ),
            (
                "both zero percent",
                rolling(json!({"maxUnavailable": "0%", "maxSurge": "0%"})),
                &["spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"],
            ),
            (
                "both set",
                rolling(json!({"maxUnavailable": 1, "maxSurge": "20%"})),
                &["spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"20%\"}: may not be set when maxUnavailable is non-zero"],
            ),
            (
                "surge only",
                rolling(json!({"maxUnavailable": 0, "maxSurge": 2})),
                &[],
            ),
            (
                "over 100%",
                rolling(json!({"maxUnavailable": "150%", "maxSurge": 0})),
                &["spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"150%\"}: must not be greater than 100%"],
            ),
            (
                "negative",
                rolling(json!({"maxUnavailable": -1, "maxSurge": 0})),
                &["spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: -1: must be greater than or equal to 0"],
            ),
            (
                "not a percent",
                rolling(json!({"maxUnavailable": "x", "maxSurge": 0})),
                &[
                    "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"x\"}: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                    "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0",
                ],
            ),
            (
                "rollingUpdate missing",
                json!({"updateStrategy": {"type": "RollingUpdate"}}),
                &["spec.updateStrategy.rollingUpdate: Required value"],
            ),
            (
                "unknown type",
                json!({"updateStrategy": {"type": "Sometimes"}}),
                &["spec.updateStrategy: Unsupported value: apps.DaemonSetUpdateStrategy{Type:\"Sometimes\", RollingUpdate:(*apps.RollingUpdateDaemonSet)(nil)}: supported values: \"RollingUpdate\", \"OnDelete\""],
            ),
            (
                "negative counts",
                json!({"minReadySeconds": -1, "revisionHistoryLimit": -2}),
                &[
                    "spec.minReadySeconds: Invalid value: -1: must be greater than or equal to 0",
                    "spec.revisionHistoryLimit: Invalid value: -2: must be greater than or equal to 0",
                ],
            ),
            (
                "empty selector",
                json!({"selector": {"matchLabels": {}}}),
                &["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for daemonset"],
            ),
            (
                "selector not matching",
                json!({"selector": {"matchLabels": {"app": "other"}}}),
                &["spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"agent\"}: `selector` does not match template `labels`"],
            ),
        ];
        for (name, spec, want) in cases {
            let mut ds = valid();
            for (k, v) in spec.as_object().expect("object") {
                ds["spec"][k] = v.clone();
            }
            assert_eq!(errors(&ds, None), *want, "{name}");
        }
    }

    #[test]
    fn templates_restart_always_and_selectors_stay() {
        let mut ds = valid();
        ds["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
        ds["spec"]["template"]["spec"]["activeDeadlineSeconds"] = json!(5);
        assert_eq!(
            errors(&ds, None),
            [
                "spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"",
                "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in DaemonSet is not Supported",
            ]
        );
        let old = valid();
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("busybox:2");
        new["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
        assert!(errors(&new, Some(&old)).is_empty());
        let mut moved = old.clone();
        moved["spec"]["selector"]["matchLabels"]["tier"] = json!("x");
        moved["spec"]["template"]["metadata"]["labels"]["tier"] = json!("x");
        assert_eq!(
            errors(&moved, Some(&old)),
            ["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"agent\", \"tier\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"]
        );
    }
}
