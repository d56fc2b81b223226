//! StatefulSets (`pkg/registry/apps/statefulset`): upstream's defaults (OrderedReady, a
//! RollingUpdate from partition 0, PVCs retained); names are DNS labels, as pods' hostnames
//! derive from them.

use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::registry::apps::workload_strategy;
use crate::registry::core::pod::default_template;
use crate::registry::generic::default;
use crate::registry::{NameRule, Strategy};
use crate::status::FieldError;

/// The StatefulSet strategy.
pub struct StatefulSetStrategy;

impl Strategy for StatefulSetStrategy {
    workload_strategy!();

    fn name_rule(&self) -> NameRule {
        NameRule::Label
    }

    fn prepare_for_create(&self, object: &mut Value, _user: Option<&UserInfo>) {
        if let Some(spec) = object.get_mut("spec") {
            default(spec, "replicas", json!(1));
            default(spec, "podManagementPolicy", json!("OrderedReady"));
            default(spec, "revisionHistoryLimit", json!(10));
            default(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
            );
            default(
                spec,
                "persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
        }
        default_template(object, "/spec/template/spec");
    }
}
