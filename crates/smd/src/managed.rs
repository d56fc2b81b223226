//! `metadata.managedFields`: who owns which fields, decoded from and encoded to the object as
//! upstream's `DecodeManagedFields` / `EncodeObjectManagedFields` do.
//!
//! A manager is identified by its name, operation and subresource, plus the apiVersion for
//! updates (an applier keeps one entry across versions; an updater gets one per version).

use std::cmp::Ordering;

use serde_json::{Map, Value};

use crate::error::Error;
use crate::fieldset::FieldSet;
use crate::value::go_json_string;

/// How a manager last wrote its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Any other write: create, update, patch.
    Update,
}

impl Operation {
    /// The wire name: `Apply` or `Update`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One entry of `metadata.managedFields`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedFieldsEntry {
    /// The field manager's name.
    pub manager: String,
    /// Apply or Update.
    pub operation: Operation,
    /// The apiVersion the fields are expressed in.
    pub api_version: String,
    /// When the manager last changed the object (RFC 3339, UTC, seconds).
    pub time: Option<String>,
    /// The subresource written through (`status`, `scale`), or empty.
    pub subresource: String,
    /// The fields owned.
    pub fields: FieldSet,
}

impl ManagedFieldsEntry {
    /// Upstream's manager identifier (`BuildManagerIdentifier`): the entry as JSON without its
    /// fields and time, and without its apiVersion when it is an applier. Entries with the same
    /// identifier are the same manager; conflicts and the update cap order managers by it.
    pub fn identifier(&self) -> String {
        let mut out = String::from("{");
        let mut first = true;
        let mut field = |out: &mut String, name: &str, value: &str| {
            if value.is_empty() {
                return;
            }
            if !first {
                out.push(',');
            }
            first = false;
            go_json_string(name, out);
            out.push(':');
            go_json_string(value, out);
        };
        field(&mut out, "manager", &self.manager);
        field(&mut out, "operation", self.operation.as_str());
        if self.operation == Operation::Update {
            field(&mut out, "apiVersion", &self.api_version);
        }
        field(&mut out, "subresource", &self.subresource);
        out.push('}');
        out
    }

    /// Whether two entries belong to the same manager.
    pub fn same_manager(&self, other: &ManagedFieldsEntry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == Operation::Apply || self.api_version == other.api_version)
    }

    fn decode(v: &Value, index: usize) -> Result<ManagedFieldsEntry, Error> {
        let bad = |msg: String| Error::ManagedFields(msg);
        let obj = v
            .as_object()
            .ok_or_else(|| bad(format!("managed fields entry {index} is not an object")))?;
        let string = |name: &str| -> Result<String, Error> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(bad(format!(
                    "managed fields entry {index}: {name} must be a string, got {other}"
                ))),
            }
        };
        let operation = match string("operation")?.as_str() {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            _ => return Err(bad("operation must be `Apply` or `Update`".to_string())),
        };
        let api_version = string("apiVersion")?;
        if api_version.is_empty() {
            return Err(bad("apiVersion must not be empty".to_string()));
        }
        match string("fieldsType")?.as_str() {
            "FieldsV1" => {}
            "" => {
                return Err(bad(format!(
                    "missing fieldsType in managed fields entry {index}"
                )))
            }
            other => {
                return Err(bad(format!(
                    "invalid fieldsType {} in managed fields entry {index}",
                    crate::value::go_quote(other)
                )))
            }
        }
        let time =
            match string("time")?.as_str() {
                "" => None,
                t => Some(normalize_time(t).ok_or_else(|| {
                    bad(format!("managed fields entry {index}: invalid time {t:?}"))
                })?),
            };
        let fields = match obj.get("fieldsV1") {
            None | Some(Value::Null) => FieldSet::new(),
            Some(v) => FieldSet::from_fields_v1(v)?,
        };
        Ok(ManagedFieldsEntry {
            manager: string("manager")?,
            operation,
            api_version,
            time,
            subresource: string("subresource")?,
            fields,
        })
    }

    /// The entry as it appears in `metadata.managedFields` (empty fields omitted).
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: &str| {
            if !v.is_empty() {
                m.insert(k.to_string(), Value::String(v.to_string()));
            }
        };
        put("manager", &self.manager);
        put("operation", self.operation.as_str());
        put("apiVersion", &self.api_version);
        put("time", self.time.as_deref().unwrap_or(""));
        put("fieldsType", "FieldsV1");
        put("subresource", &self.subresource);
        m.insert("fieldsV1".to_string(), self.fields.to_fields_v1());
        Value::Object(m)
    }
}

/// Seconds since the epoch of an RFC 3339 time, 0 when absent (upstream sorts a nil time
/// first).
pub(crate) fn unix_seconds(time: Option<&str>) -> i64 {
    time.and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_second())
        .unwrap_or(0)
}

/// A time as `metav1.Time` writes it: UTC, whole seconds, `Z`.
pub(crate) fn normalize_time(t: &str) -> Option<String> {
    let ts = t.parse::<jiff::Timestamp>().ok()?;
    let whole = jiff::Timestamp::from_second(ts.as_second()).ok()?;
    Some(whole.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// Whether a request's `metadata.managedFields` asks for a reset: an empty list, or a list of
/// one empty entry.
fn is_reset(list: &Value) -> bool {
    match list.as_array().map(Vec::as_slice) {
        Some([]) => true,
        Some([Value::Object(m)]) => m.values().all(|v| match v {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            Value::Object(o) => o.is_empty(),
            _ => false,
        }),
        _ => false,
    }
}

fn managed_fields_of(object: &Value) -> Option<&Value> {
    object.get("metadata")?.get("managedFields")
}

/// All the managers of an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManagedFields(pub Vec<ManagedFieldsEntry>);

impl ManagedFields {
    /// Decodes `metadata.managedFields` of an object (none is empty). A malformed entry fails
    /// the whole decode, as upstream; apply then fails, updates fall back as
    /// [`ManagedFields::decode_live_or_new`] describes.
    pub fn from_object(object: &Value) -> Result<ManagedFields, Error> {
        match managed_fields_of(object) {
            None | Some(Value::Null) => Ok(ManagedFields::default()),
            Some(list) => ManagedFields::from_list(list),
        }
    }

    /// Decodes a `managedFields` list. A later entry of the same manager replaces an earlier.
    pub fn from_list(list: &Value) -> Result<ManagedFields, Error> {
        let items = list
            .as_array()
            .ok_or_else(|| Error::ManagedFields("managedFields must be a list".to_string()))?;
        let mut out = ManagedFields::default();
        for (i, item) in items.iter().enumerate() {
            out.put(ManagedFieldsEntry::decode(item, i)?);
        }
        Ok(out)
    }

    /// The managed fields an update starts from (upstream's `decodeLiveOrNew`): for a
    /// subresource, always the live object's; otherwise the request's, so clients may edit
    /// them — unless the request resets them (`[]` or `[{}]`: start empty), or sends none or
    /// undecodable ones (keep the live object's). Undecodable live ones reset to empty.
    pub fn decode_live_or_new(live: &Value, new: &Value, is_subresource: bool) -> ManagedFields {
        let from_live = || ManagedFields::from_object(live).unwrap_or_default();
        if is_subresource {
            return from_live();
        }
        if managed_fields_of(new).is_some_and(is_reset) {
            return ManagedFields::default();
        }
        match ManagedFields::from_object(new) {
            Ok(m) if !m.0.is_empty() => m,
            _ => from_live(),
        }
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries in upstream's order: appliers before updaters, then oldest first, then by
    /// manager, apiVersion and subresource.
    pub fn sorted(self) -> ManagedFields {
        let order: Vec<usize> = self.order();
        let mut entries: Vec<Option<ManagedFieldsEntry>> = self.0.into_iter().map(Some).collect();
        ManagedFields(
            order
                .into_iter()
                .filter_map(|i| entries[i].take())
                .collect(),
        )
    }

    /// The positions of the entries in upstream's order (times parsed once each).
    fn order(&self) -> Vec<usize> {
        let seconds: Vec<i64> = self
            .0
            .iter()
            .map(|e| unix_seconds(e.time.as_deref()))
            .collect();
        let mut order: Vec<usize> = (0..self.0.len()).collect();
        order.sort_by(|&i, &j| {
            let (p, q) = (&self.0[i], &self.0[j]);
            p.operation
                .cmp(&q.operation)
                .then_with(|| seconds[i].cmp(&seconds[j]))
                .then_with(|| p.manager.cmp(&q.manager))
                .then_with(|| p.api_version.cmp(&q.api_version))
                .then_with(|| p.subresource.cmp(&q.subresource))
                .then(Ordering::Equal)
        });
        order
    }

    /// The list as it appears in `metadata.managedFields`, in upstream's order.
    pub fn to_value(&self) -> Value {
        Value::Array(
            self.order()
                .into_iter()
                .map(|i| self.0[i].to_value())
                .collect(),
        )
    }

    /// Writes the entries to `metadata.managedFields` in upstream's order, or removes the key
    /// when there are none.
    pub fn write_to(&self, object: &mut Value) {
        let Value::Object(obj) = object else {
            return;
        };
        if self.0.is_empty() {
            if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
                meta.remove("managedFields");
            }
            return;
        }
        let meta = obj
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if !meta.is_object() {
            *meta = Value::Object(Map::new());
        }
        if let Value::Object(meta) = meta {
            meta.insert("managedFields".to_string(), self.to_value());
        }
    }

    /// Removes `metadata.managedFields` from an object, as upstream does before computing
    /// field sets.
    pub fn strip(object: &mut Value) {
        if let Some(Value::Object(meta)) = object.get_mut("metadata") {
            meta.remove("managedFields");
        }
    }

    /// The entry of the manager `like` identifies.
    pub fn get(&self, like: &ManagedFieldsEntry) -> Option<&ManagedFieldsEntry> {
        self.0.iter().find(|e| e.same_manager(like))
    }

    pub(crate) fn get_mut(&mut self, like: &ManagedFieldsEntry) -> Option<&mut ManagedFieldsEntry> {
        self.0.iter_mut().find(|e| e.same_manager(like))
    }

    /// Adds an entry, replacing the same manager's.
    pub fn put(&mut self, entry: ManagedFieldsEntry) {
        match self.get_mut(&entry) {
            Some(existing) => *existing = entry,
            None => self.0.push(entry),
        }
    }

    pub(crate) fn remove(&mut self, like: &ManagedFieldsEntry) -> Option<ManagedFieldsEntry> {
        let i = self.0.iter().position(|e| e.same_manager(like))?;
        Some(self.0.remove(i))
    }

    /// Drops the entries that own nothing.
    pub(crate) fn drop_empty(&mut self) {
        self.0.retain(|e| !e.fields.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(v: Value) -> Value {
        json!({"metadata": {"managedFields": v}})
    }

    #[test]
    fn round_trip_in_upstream_order() {
        let obj = entry(json!([
            {"manager": "b", "operation": "Update", "apiVersion": "v1", "time": "2024-01-01T00:00:02Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:b": {}}}},
            {"manager": "a", "operation": "Update", "apiVersion": "v1", "time": "2024-01-01T00:00:01+00:00",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:a": {}}}, "subresource": "status"},
            {"manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "time": "2024-01-01T00:00:09.5Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:c": {}}}}
        ]));
        let m = ManagedFields::from_object(&obj).expect("decodes");
        let mut out = json!({"metadata": {}});
        m.write_to(&mut out);
        assert_eq!(
            out,
            entry(json!([
                {"manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "time": "2024-01-01T00:00:09Z",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:c": {}}}},
                {"manager": "a", "operation": "Update", "apiVersion": "v1", "time": "2024-01-01T00:00:01Z",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:a": {}}}, "subresource": "status"},
                {"manager": "b", "operation": "Update", "apiVersion": "v1", "time": "2024-01-01T00:00:02Z",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:b": {}}}}
            ]))
        );
        ManagedFields::default().write_to(&mut out);
        assert_eq!(out, json!({"metadata": {}}));
    }

    #[test]
    fn malformed_entries_fail_decoding() {
        let cases = [
            (
                json!([{"operation": "Patch", "apiVersion": "v1", "fieldsType": "FieldsV1"}]),
                "operation must be `Apply` or `Update`",
            ),
            (
                json!([{"operation": "Apply", "fieldsType": "FieldsV1"}]),
                "apiVersion must not be empty",
            ),
            (
                json!([{"operation": "Apply", "apiVersion": "v1"}]),
                "missing fieldsType in managed fields entry 0",
            ),
            (
                json!([{"operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV2"}]),
                "invalid fieldsType \"FieldsV2\" in managed fields entry 0",
            ),
        ];
        for (list, want) in cases {
            let err = ManagedFields::from_object(&entry(list)).expect_err("malformed");
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn live_or_new() {
        let good = json!([{"manager": "m", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1",
                           "fieldsV1": {"f:a": {}}}]);
        let other = json!([{"manager": "n", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1",
                            "fieldsV1": {"f:b": {}}}]);
        let bad = json!([{"operation": "Nope"}]);
        let names = |m: ManagedFields| m.0.into_iter().map(|e| e.manager).collect::<Vec<_>>();
        let live = entry(good.clone());
        assert_eq!(
            names(ManagedFields::decode_live_or_new(
                &live,
                &entry(other.clone()),
                false
            )),
            ["n"]
        );
        assert_eq!(
            names(ManagedFields::decode_live_or_new(
                &live,
                &entry(other),
                true
            )),
            ["m"]
        );
        assert_eq!(
            names(ManagedFields::decode_live_or_new(&live, &json!({}), false)),
            ["m"]
        );
        assert_eq!(
            names(ManagedFields::decode_live_or_new(
                &live,
                &entry(bad.clone()),
                false
            )),
            ["m"]
        );
        assert!(ManagedFields::decode_live_or_new(&live, &entry(json!([])), false).is_empty());
        assert!(ManagedFields::decode_live_or_new(&live, &entry(json!([{}])), false).is_empty());
        assert!(ManagedFields::decode_live_or_new(&entry(bad), &json!({}), false).is_empty());
    }

    #[test]
    fn identifiers_as_upstream() {
        let e = ManagedFieldsEntry {
            manager: "kubectl".into(),
            operation: Operation::Update,
            api_version: "apps/v1".into(),
            time: None,
            subresource: "status".into(),
            fields: FieldSet::new(),
        };
        assert_eq!(
            e.identifier(),
            r#"{"manager":"kubectl","operation":"Update","apiVersion":"apps/v1","subresource":"status"}"#
        );
        let a = ManagedFieldsEntry {
            operation: Operation::Apply,
            subresource: String::new(),
            ..e
        };
        assert_eq!(
            a.identifier(),
            r#"{"manager":"kubectl","operation":"Apply"}"#
        );
    }
}
