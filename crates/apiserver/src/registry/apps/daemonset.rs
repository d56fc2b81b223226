//! DaemonSets (`pkg/registry/apps/daemonset`): upstream's defaults (a RollingUpdate of one
//! unavailable pod, no surge, ten revisions kept).

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
    }
}
