//! Deployments (`pkg/registry/apps/deployment`): upstream's defaults (one replica, a
//! RollingUpdate of 25%/25%, ten revisions kept, a 600 s progress deadline).

use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::registry::apps::workload_strategy;
use crate::registry::core::pod::default_template;
use crate::registry::generic::default;
use crate::registry::Strategy;
use crate::status::FieldError;

/// The Deployment strategy.
pub struct DeploymentStrategy;

impl Strategy for DeploymentStrategy {
    fn traced(&self) -> bool {
        true
    }

    workload_strategy!();

    fn prepare_for_create(&self, object: &mut Value, _user: Option<&UserInfo>) {
        self.default_fields(object);
    }

    fn default_fields(&self, object: &mut Value) {
        if let Some(spec) = object.get_mut("spec") {
            default(spec, "replicas", json!(1));
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "progressDeadlineSeconds", json!(600));
            default(spec, "strategy", json!({}));
            if let Some(strategy) = spec.get_mut("strategy") {
                default(strategy, "type", json!("RollingUpdate"));
                if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                    default(strategy, "rollingUpdate", json!({}));
                    if let Some(ru) = strategy.get_mut("rollingUpdate") {
                        default(ru, "maxUnavailable", json!("25%"));
                        default(ru, "maxSurge", json!("25%"));
                    }
                }
            }
        }
        default_template(object, "/spec/template/spec");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::generic::{prepare_for_create, tests::resource, validate};

    #[test]
    fn deployments_are_defaulted_and_validated_as_upstream() {
        let deployments = resource("apps", "v1", "deployments");
        let mut d = json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "other"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
        prepare_for_create(deployments, &mut d, None);
        assert_eq!(
            d.pointer("/spec/strategy/rollingUpdate/maxSurge"),
            Some(&json!("25%"))
        );
        assert_eq!(
            d.pointer("/spec/template/spec/restartPolicy"),
            Some(&json!("Always"))
        );
        let err = validate(deployments, &d, None).expect_err("invalid");
        assert_eq!(err.code, 422);
        assert!(err.message.contains("spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`"), "{}", err.message);
        d["spec"]["template"]["metadata"]["labels"]["app"] = json!("web");
        validate(deployments, &d, None).expect("valid");
        let mut moved = d.clone();
        moved["spec"]["selector"]["matchLabels"]["tier"] = json!("x");
        moved["spec"]["template"]["metadata"]["labels"]["tier"] = json!("x");
        let err = validate(deployments, &moved, Some(&d)).expect_err("immutable");
        assert!(
            err.message.contains("spec.selector: Invalid value"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("field is immutable"),
            "{}",
            err.message
        );
    }

    #[test]
    fn recreate_gets_no_rolling_update() {
        let deployments = resource("apps", "v1", "deployments");
        let mut d =
            json!({"metadata": {"name": "web"}, "spec": {"strategy": {"type": "Recreate"}}});
        prepare_for_create(deployments, &mut d, None);
        assert_eq!(
            d.pointer("/spec/strategy"),
            Some(&json!({"type": "Recreate"}))
        );
    }
}
