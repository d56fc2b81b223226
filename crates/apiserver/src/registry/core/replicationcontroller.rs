//! ReplicationControllers (`pkg/registry/core/replicationcontroller`): one replica and the pod
//! template's defaults, selectable by `status.replicas`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::registry::core::pod::default_template;
use crate::registry::generic::default;
use crate::registry::Strategy;

/// The ReplicationController strategy.
pub struct ReplicationControllerStrategy;

impl Strategy for ReplicationControllerStrategy {
    fn prepare_for_create(&self, object: &mut Value, _user: Option<&UserInfo>) {
        default_replicated(object);
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
        crate::selector::text_at(object, "/status/replicas"),
    );
}
