//! Nodes (`pkg/registry/core/node`): a create keeps the status its kubelet sends, and
//! `spec.unschedulable` is selectable (`kubectl drain`, the DaemonSet controller).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::registry::Strategy;

/// The Node strategy.
pub struct NodeStrategy;

impl Strategy for NodeStrategy {
    fn resets_status_on_create(&self) -> bool {
        false
    }

    fn selectable_fields(&self, object: &Value, fields: &mut BTreeMap<String, String>) {
        let mut unschedulable = ferry_api::selector::text_at(object, "/spec/unschedulable");
        if unschedulable.is_empty() {
            unschedulable = "false".into();
        }
        fields.insert("spec.unschedulable".into(), unschedulable);
    }
}
