//! ReplicationControllers (`pkg/registry/core/replicationcontroller`): one replica and the pod
//! template's defaults, a selector and labels taken from the template's labels when missing
//! (upstream's `SetDefaults_ReplicationController`), a generation that moves with the spec, the
//! selector checked against the template, selectable by `status.replicas`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::registry::core::pod::default_template;
use crate::registry::generic::default;
use crate::registry::Strategy;
use crate::status::FieldError;

/// The ReplicationController strategy.
pub struct ReplicationControllerStrategy;

/// A missing or empty selector, and missing labels, are the template's labels.
fn default_selector_and_labels(object: &mut Value) {
    let template_labels = object
        .pointer("/spec/template/metadata/labels")
        .filter(|l| l.as_object().is_some_and(|m| !m.is_empty()))
        .cloned();
    let Some(labels) = template_labels else {
        return;
    };
    if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        if spec
            .get("selector")
            .and_then(Value::as_object)
            .is_none_or(|s| s.is_empty())
        {
            spec.insert("selector".into(), labels.clone());
        }
    }
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if meta
            .get("labels")
            .and_then(Value::as_object)
            .is_none_or(|l| l.is_empty())
        {
            meta.insert("labels".into(), labels);
        }
    }
}

impl Strategy for ReplicationControllerStrategy {
    fn traced(&self) -> bool {
        true
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_for_create(&self, object: &mut Value, _user: Option<&UserInfo>) {
        default_selector_and_labels(object);
        default_replicated(object);
    }

    fn prepare_for_update(&self, new: &mut Value, _old: &Value) {
        default_selector_and_labels(new);
    }

    /// Upstream's `ValidateReplicationControllerSpec`: a selector, template labels it
    /// selects, no negative replicas.
    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let selector = object.pointer("/spec/selector").and_then(Value::as_object);
        match selector {
            None => errors.push(FieldError::required("spec.selector", "")),
            Some(s) if s.is_empty() => errors.push(FieldError::required("spec.selector", "")),
            Some(s) => {
                let labels = object
                    .pointer("/spec/template/metadata/labels")
                    .and_then(Value::as_object);
                if !s
                    .iter()
                    .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
                {
                    errors.push(crate::registry::apps::validation::labels_mismatch(
                        object,
                        "spec.template",
                    ));
                }
            }
        }
        if let Some(replicas) = object.pointer("/spec/replicas").and_then(Value::as_i64) {
            if replicas < 0 {
                errors.push(FieldError::invalid_raw(
                    "spec.replicas",
                    replicas.to_string(),
                    "must be greater than or equal to 0",
                ));
            }
        }
    }

    fn selectable_fields(&self, object: &Value, fields: &mut BTreeMap<String, String>) {
        select_status_replicas(object, fields);
    }
}

/// One replica and the pod template's defaults (ReplicationControllers and ReplicaSets).
pub fn default_replicated(object: &mut Value) {
    if let Some(spec) = object.get_mut("spec") {
        default(spec, "replicas", json!(1));
    }
    default_template(object, "/spec/template/spec");
}

/// `status.replicas`, selectable on ReplicationControllers and ReplicaSets.
pub fn select_status_replicas(object: &Value, fields: &mut BTreeMap<String, String>) {
    fields.insert(
        "status.replicas".into(),
        ferry_api::selector::text_at(object, "/status/replicas"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_selector_and_labels_come_from_the_template() {
        let mut rc = json!({"metadata": {"name": "web"}, "spec": {"template": {
            "metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        ReplicationControllerStrategy.prepare_for_create(&mut rc, None);
        assert_eq!(rc["spec"]["selector"], json!({"app": "web"}));
        assert_eq!(rc["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(rc["spec"]["replicas"], 1);
        let mut errors = Vec::new();
        ReplicationControllerStrategy.validate(&rc, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        rc["spec"]["selector"] = json!({"app": "db"});
        ReplicationControllerStrategy.validate(&rc, &mut errors);
        assert_eq!(errors[0].field, "spec.template.metadata.labels");
    }
}
