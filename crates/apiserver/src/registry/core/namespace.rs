//! Namespaces (`pkg/registry/core/namespace`): created Active with the `kubernetes` finalizer
//! in `spec.finalizers`; a delete marks them Terminating and they stay until the namespace
//! controller has emptied them and cleared those finalizers through `finalize`.

use std::collections::BTreeMap;

use ferry_api::registry::ResourceInfo;
use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::registry::generic::default;
use crate::registry::{NameRule, Strategy};
use crate::status::ApiError;

/// The Namespace strategy.
pub struct NamespaceStrategy;

impl Strategy for NamespaceStrategy {
    fn name_rule(&self) -> NameRule {
        NameRule::Label
    }

    fn prepare_for_create(&self, object: &mut Value, _user: Option<&UserInfo>) {
        object["status"] = json!({"phase": "Active"});
        if let Some(spec) = object
            .as_object_mut()
            .map(|o| o.entry("spec").or_insert(json!({})))
        {
            default(spec, "finalizers", json!(["kubernetes"]));
        }
    }

    /// `finalize` replaces `spec.finalizers`; everything else as for any kind.
    fn merge_update(
        &self,
        info: &ResourceInfo,
        subresource: &str,
        old: &Value,
        requested: Value,
    ) -> Result<Value, ApiError> {
        if subresource != "finalize" {
            return crate::registry::generic::merge_update(info, subresource, old, requested);
        }
        let mut new = old.clone();
        new["spec"]["finalizers"] = requested
            .pointer("/spec/finalizers")
            .cloned()
            .unwrap_or(json!([]));
        Ok(new)
    }

    fn selectable_fields(&self, object: &Value, fields: &mut BTreeMap<String, String>) {
        fields.insert(
            "status.phase".into(),
            ferry_api::selector::text_at(object, "/status/phase"),
        );
    }

    fn has_spec_finalizers(&self, object: &Value) -> bool {
        !crate::object::strings_at(object, "/spec/finalizers").is_empty()
    }

    fn repeated_delete_conflict(&self) -> Option<&'static str> {
        Some("The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system.")
    }

    fn prepare_for_graceful_delete(&self, object: &mut Value) {
        object["status"]["phase"] = Value::String("Terminating".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::generic::{prepare_for_create, tests::resource};

    #[test]
    fn namespaces_start_active_with_the_kubernetes_finalizer() {
        let namespaces = resource("", "v1", "namespaces");
        let mut ns = json!({"metadata": {"name": "team"}});
        prepare_for_create(namespaces, &mut ns, None);
        assert_eq!(ns["status"], json!({"phase": "Active"}));
        assert_eq!(ns["spec"], json!({"finalizers": ["kubernetes"]}));
        assert!(NamespaceStrategy.has_spec_finalizers(&ns));
        let finalized = NamespaceStrategy
            .merge_update(
                namespaces.info,
                "finalize",
                &ns,
                json!({"spec": {"finalizers": []}}),
            )
            .expect("finalize");
        assert!(!NamespaceStrategy.has_spec_finalizers(&finalized));
        assert_eq!(finalized["status"], json!({"phase": "Active"}));
    }
}
