//! Recording ownership for writes other than apply (upstream's `Updater.Update` with the API
//! server's field-manager layers): the fields that changed become the writer's, everyone else
//! loses them, removed fields are nobody's; then the number of update entries is capped.

use serde_json::{Map, Value};

use crate::compare::{compare, Comparison};
use crate::error::Error;
use crate::fieldset::FieldSet;
use crate::managed::{unix_seconds, ManagedFields, ManagedFieldsEntry, Operation};
use crate::typed::validate;
use crate::updater::{strip_meta, Request, Updater};

/// Upstream keeps at most this many `Update` entries.
pub const MAX_UPDATE_MANAGERS: usize = 10;

/// The manager the oldest update entries are folded into.
pub const ANCIENT_CHANGES: &str = "ancient-changes";

impl Updater<'_> {
    /// Records the write of `new` over `old` (`null` for a create) by `req.manager`. Fails
    /// when either object does not fit the schema; [`crate::update`] then keeps the managed
    /// fields as they were, as upstream's `UpdateNoErrors` does.
    pub fn update(
        &self,
        old: &Value,
        new: &Value,
        managed: &ManagedFields,
        req: &Request<'_>,
    ) -> Result<ManagedFields, Error> {
        // The objects without their managed fields: copied only when they carry some (a
        // create's new object usually does not).
        let empty = Value::Object(Map::new());
        let (old, new) = (
            without_managed_fields(old, &empty),
            without_managed_fields(new, &empty),
        );
        let (old, new): (&Value, &Value) = (&old, &new);
        validate(self.schema, old, true)?;
        validate(self.schema, new, true)?;

        let me = req.entry(Operation::Update);
        let mut managers = self.reconciled(managed);
        let comparison = self.filter_comparison(compare(self.schema, old, new));
        // The write is a new operation: even the writer's own previous entry loses the fields
        // it changes, and gets them back below, merged.
        self.take_changes(&comparison, &mut managers, None, true)
            .map_err(|c| Error::ManagedFields(c.to_string()))?;

        // The comparison is already without the ignored fields.
        let Comparison {
            mut added,
            modified,
            ..
        } = comparison;
        added.absorb(modified);
        let taken = strip_meta(added);
        if !taken.is_empty() {
            let time = Some(req.time());
            match managers.get_mut(&me) {
                Some(entry) => {
                    entry.fields = taken.union(&entry.fields);
                    entry.api_version = req.api_version.to_string();
                    entry.time = time;
                }
                None => managers.put(ManagedFieldsEntry {
                    fields: taken,
                    time,
                    ..me
                }),
            }
        }
        cap_update_managers(&mut managers, MAX_UPDATE_MANAGERS);
        Ok(managers.sorted())
    }
}

/// `object` without `metadata.managedFields` (`empty` for `null`), copied only if it has them.
fn without_managed_fields<'a>(object: &'a Value, empty: &'a Value) -> std::borrow::Cow<'a, Value> {
    if object.is_null() {
        std::borrow::Cow::Borrowed(empty)
    } else if object.pointer("/metadata/managedFields").is_none() {
        std::borrow::Cow::Borrowed(object)
    } else {
        let mut object = object.clone();
        ManagedFields::strip(&mut object);
        std::borrow::Cow::Owned(object)
    }
}

/// Folds the oldest update entries into one `ancient-changes` entry per apiVersion until at
/// most `max` update entries remain (upstream's `capManagersManager`). The first old entry
/// of a version is kept until a second one of that version has to go; both then make the
/// bucket, which takes the time of the newest entry folded in.
pub(crate) fn cap_update_managers(managers: &mut ManagedFields, max: usize) {
    let is_update = |e: &&ManagedFieldsEntry| e.operation == Operation::Update;
    if managers.0.iter().filter(is_update).count() <= max {
        return;
    }
    let mut updaters: Vec<ManagedFieldsEntry> =
        managers.0.iter().filter(is_update).cloned().collect();
    updaters.sort_by_cached_key(|e| (unix_seconds(e.time.as_deref()), e.identifier()));

    let mut first_of_version: Vec<(String, ManagedFieldsEntry)> = Vec::new();
    let mut length = updaters.len();
    for updater in updaters {
        if length <= max {
            break;
        }
        let version = updater.api_version.clone();
        let bucket = ManagedFieldsEntry {
            manager: ANCIENT_CHANGES.to_string(),
            operation: Operation::Update,
            api_version: version.clone(),
            time: None,
            subresource: String::new(),
            fields: FieldSet::new(),
        };
        let Some((_, first)) = first_of_version.iter().find(|(v, _)| *v == version) else {
            first_of_version.push((version, updater));
            continue;
        };
        if updater.same_manager(&bucket) {
            // Upstream would fold the bucket into itself and then delete it, losing its
            // fields; leave it be instead.
            continue;
        }
        if managers.get(&bucket).is_none() {
            if let Some(moved) = managers.remove(first) {
                managers.put(ManagedFieldsEntry {
                    fields: moved.fields,
                    time: moved.time,
                    ..bucket.clone()
                });
            }
        }
        let Some(current) = managers.remove(&updater) else {
            continue;
        };
        if let Some(b) = managers.get_mut(&bucket) {
            b.fields = current.fields.union(&b.fields);
            b.api_version = current.api_version;
            b.time = current.time;
        }
        length -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fieldset::tests::p;
    use crate::schema::Schema;
    use serde_json::json;

    fn req<'a>(manager: &'a str, now: &'a str) -> Request<'a> {
        Request {
            manager,
            api_version: "v1",
            subresource: "",
            now,
        }
    }

    #[test]
    fn update_entries_of_one_manager_merge_and_keep_time_when_nothing_changes() {
        let s = Schema::deduced();
        let u = Updater::new(&s);
        let m = u
            .update(
                &Value::Null,
                &json!({"a": 1}),
                &ManagedFields::default(),
                &req("m", "2024-01-01T00:00:01Z"),
            )
            .expect("valid");
        let m = u
            .update(
                &json!({"a": 1}),
                &json!({"a": 1, "b": 2}),
                &m,
                &req("m", "2024-01-01T00:00:02Z"),
            )
            .expect("valid");
        assert_eq!(m.0.len(), 1);
        assert_eq!(
            m.0[0].fields,
            FieldSet::from_paths(&[p(&[json!("a")]), p(&[json!("b")])])
        );
        assert_eq!(m.0[0].time.as_deref(), Some("2024-01-01T00:00:02Z"));
        let same = u
            .update(
                &json!({"a": 1, "b": 2}),
                &json!({"a": 1, "b": 2}),
                &m,
                &req("m", "2024-01-01T00:00:03Z"),
            )
            .expect("valid");
        assert_eq!(same, m);
        // Another manager removing a field takes it from everyone.
        let m = u
            .update(
                &json!({"a": 1, "b": 2}),
                &json!({"a": 1}),
                &m,
                &req("n", "2024-01-01T00:00:04Z"),
            )
            .expect("valid");
        assert_eq!(m.0.len(), 1);
        assert_eq!(m.0[0].fields, FieldSet::from_paths(&[p(&[json!("a")])]));
    }

    #[test]
    fn unknown_manager_and_invalid_objects() {
        let s = crate::typed::tests::schema(
            json!({"T": {"type": "object", "properties": {"a": {"type": "integer"}}}}),
        );
        let m = crate::update(
            &json!({}),
            &json!({"a": 1}),
            &ManagedFields::default(),
            "",
            "v1",
            "",
            "2024-01-01T00:00:00Z",
            &s,
        );
        assert_eq!(m.0[0].manager, "unknown");
        // Upstream's UpdateNoErrors: an object that does not fit keeps the managers as they were.
        let kept = crate::update(
            &json!({"a": 1}),
            &json!({"a": 1, "zzz": 2}),
            &m,
            "x",
            "v1",
            "",
            "2024-01-01T00:00:01Z",
            &s,
        );
        assert_eq!(kept, m);
    }

    #[test]
    fn cap_folds_oldest_updates_into_ancient_changes() {
        // Twelve updaters, each owning its own field, at increasing times.
        let mut managers = ManagedFields::default();
        for i in 0..12 {
            managers.put(ManagedFieldsEntry {
                manager: format!("m{i:02}"),
                operation: Operation::Update,
                api_version: "v1".into(),
                time: Some(format!("2024-01-01T00:00:{i:02}Z")),
                subresource: String::new(),
                fields: FieldSet::from_paths(&[p(&[json!(format!("f{i:02}"))])]),
            });
        }
        managers.put(ManagedFieldsEntry {
            manager: "applier".into(),
            operation: Operation::Apply,
            api_version: "v1".into(),
            time: None,
            subresource: String::new(),
            fields: FieldSet::from_paths(&[p(&[json!("x")])]),
        });
        cap_update_managers(&mut managers, MAX_UPDATE_MANAGERS);
        let updaters: Vec<&ManagedFieldsEntry> = managers
            .0
            .iter()
            .filter(|e| e.operation == Operation::Update)
            .collect();
        assert_eq!(updaters.len(), MAX_UPDATE_MANAGERS);
        let bucket = updaters
            .iter()
            .find(|e| e.manager == ANCIENT_CHANGES)
            .expect("bucket");
        // m00 and m01 fold first, m02 joins to get down to ten; the bucket takes m02's time.
        assert_eq!(
            bucket.fields,
            FieldSet::from_paths(&[p(&[json!("f00")]), p(&[json!("f01")]), p(&[json!("f02")])])
        );
        assert_eq!(bucket.time.as_deref(), Some("2024-01-01T00:00:02Z"));
        assert!(managers
            .0
            .iter()
            .all(|e| !["m00", "m01", "m02"].contains(&e.manager.as_str())));
        assert!(managers.0.iter().any(|e| e.manager == "applier"));
    }
}
