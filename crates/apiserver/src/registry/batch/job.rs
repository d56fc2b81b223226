//! Jobs (`pkg/registry/batch/job`): unless `manualSelector`, the selector is generated from the
//! Job's UID and the template gets the matching labels (old and new spellings); upstream's
//! defaults; selectable by `status.successful`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::registry::core::pod::default_pod_spec;
use crate::registry::generic::default;
use crate::registry::Strategy;

/// The Job strategy.
pub struct JobStrategy;

impl Strategy for JobStrategy {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn prepare_for_create(&self, object: &mut Value, _user: Option<&UserInfo>) {
        generate_selector(object);
        if let Some(spec) = object.get_mut("spec") {
            default(spec, "parallelism", json!(1));
            default(spec, "completions", json!(1));
            default(spec, "backoffLimit", json!(6));
            default(spec, "completionMode", json!("NonIndexed"));
            default(spec, "suspend", json!(false));
            default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
            default(spec, "manualSelector", json!(false));
        }
        if let Some(spec) = object.pointer_mut("/spec/template/spec") {
            default(spec, "restartPolicy", json!("Never"));
            default_pod_spec(spec);
        }
    }

    fn selectable_fields(&self, object: &Value, fields: &mut BTreeMap<String, String>) {
        fields.insert(
            "status.successful".into(),
            crate::selector::text_at(object, "/status/succeeded"),
        );
    }
}

fn generate_selector(object: &mut Value) {
    if object
        .pointer("/spec/manualSelector")
        .and_then(Value::as_bool)
        == Some(true)
        || object.pointer("/spec/selector").is_some()
    {
        return;
    }
    let uid = crate::object::meta_str(object, "uid")
        .unwrap_or("")
        .to_string();
    let name = crate::object::meta_str(object, "name")
        .unwrap_or("")
        .to_string();
    if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert(
            "selector".into(),
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
        );
    }
    if let Some(template) = object
        .pointer_mut("/spec/template")
        .and_then(Value::as_object_mut)
    {
        let meta = template.entry("metadata").or_insert(json!({}));
        if let Some(meta) = meta.as_object_mut() {
            let labels = meta.entry("labels").or_insert(json!({}));
            if let Some(labels) = labels.as_object_mut() {
                labels.insert("batch.kubernetes.io/controller-uid".into(), json!(uid));
                labels.insert("batch.kubernetes.io/job-name".into(), json!(name));
                labels.insert("controller-uid".into(), json!(uid));
                labels.insert("job-name".into(), json!(name));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::generic::{prepare_for_create, tests::resource};

    #[test]
    fn selector_is_generated_from_the_uid() {
        let jobs = resource("batch", "v1", "jobs");
        let mut job = json!({"metadata": {"name": "pi", "uid": "u-1"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}});
        prepare_for_create(jobs, &mut job, None);
        assert_eq!(
            job.pointer("/spec/selector"),
            Some(&json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}}))
        );
        assert_eq!(
            job.pointer("/spec/template/metadata/labels/job-name"),
            Some(&json!("pi"))
        );
        assert_eq!(
            job.pointer("/spec/template/spec/restartPolicy"),
            Some(&json!("Never"))
        );
        assert_eq!(job.pointer("/spec/backoffLimit"), Some(&json!(6)));
        let mut manual = json!({"metadata": {"name": "m", "uid": "u-2"}, "spec": {"manualSelector": true, "template": {}}});
        prepare_for_create(jobs, &mut manual, None);
        assert_eq!(manual.pointer("/spec/selector"), None);
    }
}
