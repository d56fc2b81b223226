//! DaemonSets (`pkg/registry/apps/daemonset`): upstream's defaults (a RollingUpdate of one
//! unavailable pod, no surge, ten revisions kept) and the template generation, which apps/v1
//! carries in the `deprecated.daemonset.template.generation` annotation: 1 at creation, one
//! more each time the pod template changes (the controller labels pods with it).

use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::registry::apps::workload_strategy;
use crate::registry::core::pod::default_template;
use crate::registry::generic::default;
use crate::registry::Strategy;
use crate::status::FieldError;

/// The DaemonSet strategy.
pub struct DaemonSetStrategy;

impl Strategy for DaemonSetStrategy {
    workload_strategy!();

    fn prepare_for_create(&self, object: &mut Value, _user: Option<&UserInfo>) {
        if let Some(spec) = object.get_mut("spec") {
            default(spec, "revisionHistoryLimit", json!(10));
            default(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
            );
        }
        default_template(object, "/spec/template/spec");
        set_template_generation(object, 1);
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        let generation = template_generation(old);
        let changed = new.pointer("/spec/template") != old.pointer("/spec/template");
        set_template_generation(new, if changed { generation + 1 } else { generation });
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
}
