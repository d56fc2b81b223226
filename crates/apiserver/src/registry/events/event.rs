//! events.k8s.io/v1 Events: the same kind as core/v1 Events in another shape. Upstream keeps core/v1 Events and
//! events.k8s.io/v1 Events in the same storage (`/registry/events`), converting on the way in
//! and out, so an event written through either API is read through both — `kubectl describe`
//! (core/v1) sees what a new-style recorder wrote. ferry stores the core/v1 shape.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::registry::core::event::EVENT_TTL;
use crate::registry::Strategy;

/// The events.k8s.io/v1 Event strategy: core/v1's storage and lifetime, converted on the way in
/// and out.
pub struct EventStrategy;

impl Strategy for EventStrategy {
    fn ttl(&self) -> Option<Duration> {
        Some(EVENT_TTL)
    }

    fn encode_for_storage(&self, object: Value) -> Value {
        event_to_core(object)
    }

    fn decode_stored(&self, object: Value) -> Value {
        event_from_core(object)
    }
}

/// Field renames between events.k8s.io/v1 (left) and core/v1 (right); the other fields
/// (`metadata`, `eventTime`, `series`, `reportingInstance`, `action`, `reason`, `related`,
/// `type`) have the same name and shape in both.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename(object: Value, api_version: &str, to_core: bool) -> Value {
    let Value::Object(fields) = object else {
        return object;
    };
    let mut out = Map::with_capacity(fields.len());
    for (key, value) in fields {
        let renamed = EVENT_FIELDS
            .iter()
            .map(|&(new, core)| if to_core { (new, core) } else { (core, new) })
            .find(|(from, _)| *from == key)
            .map(|(_, to)| to.to_string());
        out.insert(renamed.unwrap_or(key), value);
    }
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    out.insert("kind".into(), Value::String("Event".into()));
    Value::Object(out)
}

/// An events.k8s.io/v1 Event as core/v1 stores it.
pub fn event_to_core(object: Value) -> Value {
    if object.get("apiVersion").and_then(Value::as_str) == Some("v1") {
        return object;
    }
    rename(object, "v1", true)
}

/// A stored core/v1 Event as events.k8s.io/v1 serves it.
pub fn event_from_core(object: Value) -> Value {
    if object.get("apiVersion").and_then(Value::as_str) == Some("events.k8s.io/v1") {
        return object;
    }
    rename(object, "events.k8s.io/v1", false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_round_trip_between_versions() {
        let new_style = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "default"},
            "eventTime": "2026-11-26T10:00:00.000000Z", "reportingController": "ferry.dev/test",
            "reportingInstance": "i", "action": "Binding", "reason": "Scheduled", "type": "Normal",
            "regarding": {"kind": "Pod", "name": "p"}, "note": "Successfully assigned",
            "deprecatedCount": 2,
        });
        let core = event_to_core(new_style.clone());
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["message"], "Successfully assigned");
        assert_eq!(core["reportingComponent"], "ferry.dev/test");
        assert_eq!(core["count"], 2);
        assert!(core.get("note").is_none() && core.get("regarding").is_none());
        assert_eq!(event_from_core(core), new_style);
    }

    #[test]
    fn already_converted_objects_are_left_alone() {
        let core = json!({"apiVersion": "v1", "kind": "Event", "message": "m"});
        assert_eq!(event_to_core(core.clone()), core);
        let new_style = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "note": "n"});
        assert_eq!(event_from_core(new_style.clone()), new_style);
    }
}
