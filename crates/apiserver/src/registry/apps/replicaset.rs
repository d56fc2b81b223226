//! ReplicaSets (`pkg/registry/apps/replicaset`): one replica by default, selectable by
//! `status.replicas`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::auth::UserInfo;
use crate::registry::apps::workload_strategy;
use crate::registry::Strategy;
use crate::status::FieldError;

/// The ReplicaSet strategy.
pub struct ReplicaSetStrategy;

impl Strategy for ReplicaSetStrategy {
    fn traced(&self) -> bool {
        true
    }

    workload_strategy!();

    fn prepare_for_create(&self, object: &mut Value, _user: Option<&UserInfo>) {
        self.default_fields(object);
    }

    fn default_fields(&self, object: &mut Value) {
        crate::registry::core::replicationcontroller::default_replicated(object);
    }

    fn selectable_fields(&self, object: &Value, fields: &mut BTreeMap<String, String>) {
        crate::registry::core::replicationcontroller::select_status_replicas(object, fields);
    }
}
