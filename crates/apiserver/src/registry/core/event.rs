//! core/v1 Events (`pkg/registry/core/event`): they live one hour (upstream's `--event-ttl`)
//! and are selectable by the object they are about, as `kubectl describe` lists them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::registry::Strategy;

/// How long Events live.
pub const EVENT_TTL: Duration = Duration::from_secs(3600);

/// The core/v1 Event strategy.
pub struct EventStrategy;

impl Strategy for EventStrategy {
    fn ttl(&self) -> Option<Duration> {
        Some(EVENT_TTL)
    }

    fn selectable_fields(&self, object: &Value, fields: &mut BTreeMap<String, String>) {
        for field in [
            "kind",
            "namespace",
            "name",
            "uid",
            "apiVersion",
            "resourceVersion",
            "fieldPath",
        ] {
            fields.insert(
                format!("involvedObject.{field}"),
                ferry_api::selector::text_at(object, &format!("/involvedObject/{field}")),
            );
        }
        for (name, pointer) in [
            ("reason", "/reason"),
            ("reportingComponent", "/reportingComponent"),
            ("source", "/source/component"),
            ("type", "/type"),
        ] {
            fields.insert(name.into(), ferry_api::selector::text_at(object, pointer));
        }
    }
}
