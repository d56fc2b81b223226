//! PersistentVolumes (`pkg/registry/core/persistentvolume`): a new volume starts Pending (the
//! PersistentVolume controller makes it Available), with the time of that phase.

use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::registry::Strategy;

/// The PersistentVolume strategy.
pub struct PersistentVolumeStrategy;

impl Strategy for PersistentVolumeStrategy {
    fn prepare_for_create(&self, object: &mut Value, _user: Option<&UserInfo>) {
        let now = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        object["status"] = json!({"phase": "Pending", "lastPhaseTransitionTime": now});
    }
}
