//! Structured merge and diff: the engine behind server-side apply and `metadata.managedFields`
//! (upstream's sigs.k8s.io/structured-merge-diff and the API server's field manager),
//! rewritten over `serde_json::Value`. No I/O: the API server hands in objects, their schema
//! and the request, and gets back the object to store, the managed fields, or conflicts.
//!
//! Where to start reading:
//! - [`apply`] and [`update`] (`apply.rs`, `update.rs`, sharing `updater.rs`): the two
//!   operations, step by step.
//! - [`Schema`] (`schema.rs`, built by `openapi.rs`): what merges how — structs, granular or
//!   atomic maps, atomic lists, sets, list-maps.
//! - [`FieldSet`] (`fieldset.rs`, `path.rs`, encoded by `fieldsv1.rs`): sets of field paths,
//!   the currency of ownership.
//! - The walks over an object and its schema: `tofieldset.rs` (the fields of an object),
//!   `merge.rs`, `compare.rs` (what changed), `remove.rs`, `reconcile.rs`, `typed.rs`
//!   (validation, naming list items); `value.rs` holds upstream's value order and printing.
//! - [`ManagedFields`] (`managed.rs`) and [`Conflicts`] (`conflict.rs`): the wire forms.
//!
//! Not covered: conversion between apiVersions (every entry is read with the one schema
//! given), unions, and the upgrade from client-side apply, which the caller drives with
//! [`Conflicts::without`], [`compare()`] and [`FieldSet::of`] as upstream's
//! `lastAppliedManager` does.

mod apply;
mod compare;
mod conflict;
mod error;
mod fieldset;
mod fieldsv1;
#[cfg(test)]
mod fixture;
mod managed;
mod merge;
mod openapi;
mod patch;
mod path;
mod reconcile;
mod remove;
mod schema;
mod tofieldset;
mod typed;
mod update;
mod updater;
mod value;

use serde_json::Value;

pub use apply::config_sets_managed_fields;
pub use compare::{compare, Comparison};
pub use conflict::{Conflict, ConflictCause, Conflicts};
pub use error::{ApplyError, Error, SchemaError, ValidationError, ValidationErrors};
pub use fieldset::FieldSet;
pub use managed::{ManagedFields, ManagedFieldsEntry, Operation};
pub use patch::{merge_config, PatchError};
pub use path::{Path, PathElement};
pub use schema::Schema;
pub use update::{ANCIENT_CHANGES, MAX_UPDATE_MANAGERS};
pub use updater::{Request, Updater};

/// Server-side apply of `config` (the applied configuration, parsed to JSON) onto `live` for
/// `manager`, as upstream's `Updater.Apply` behind the API server's field manager.
///
/// Returns the object to store, without `metadata.managedFields` (write them with
/// [`ManagedFields::write_to`]), and the managers after the apply. Fails with
/// [`ApplyError::Conflicts`] when other managers own fields whose value would change (unless
/// `force`, which takes them), [`ApplyError::ManagedFieldsInConfig`] when the configuration
/// sets `metadata.managedFields`, or when either object does not fit the schema.
/// `now` (RFC 3339) becomes the applier's time if the object changed.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    live: &Value,
    config: &Value,
    managed: &ManagedFields,
    manager: &str,
    api_version: &str,
    subresource: &str,
    force: bool,
    now: &str,
    schema: &Schema,
) -> Result<(Value, ManagedFields), ApplyError> {
    let req = Request {
        manager,
        api_version,
        subresource,
        now,
    };
    Updater::new(schema).apply(live, config, managed, &req, force)
}

/// Records a create, update or non-apply patch (`old` is `null` for a create): the fields
/// that changed become `manager`'s (operation Update, merged into its entry for this
/// apiVersion), other managers lose them, removed fields are nobody's, empty entries are
/// dropped, and update entries beyond [`MAX_UPDATE_MANAGERS`] are folded into
/// [`ANCIENT_CHANGES`]. `managed` is what [`ManagedFields::decode_live_or_new`] returns. If
/// either object does not fit the schema, `managed` is returned unchanged, as upstream's
/// `UpdateNoErrors`.
///
/// For creates of built-in kinds, upstream's "old" object is Go's zero value of the type,
/// in which non-pointer structs are present (`spec: {template: {...}}`); passing such a
/// skeleton as `old` instead of `null` reproduces upstream's `".": {}` markers exactly. With
/// `null` (right for custom resources), every new map and list is marked.
#[allow(clippy::too_many_arguments)]
pub fn update(
    old: &Value,
    new: &Value,
    managed: &ManagedFields,
    manager: &str,
    api_version: &str,
    subresource: &str,
    now: &str,
    schema: &Schema,
) -> ManagedFields {
    let req = Request {
        manager,
        api_version,
        subresource,
        now,
    };
    Updater::new(schema)
        .update(old, new, managed, &req)
        .unwrap_or_else(|_| managed.clone())
}

#[cfg(test)]
mod tests {
    //! End to end, on Kubernetes-shaped objects: create, apply, conflicts, force, the wire
    //! forms the API server writes.
    use super::*;
    use serde_json::json;

    fn crd_schema() -> Schema {
        Schema::from_crd(&json!({
            "type": "object",
            "properties": {
                "spec": {"type": "object", "properties": {
                    "replicas": {"type": "integer"},
                    "containers": {"type": "array", "x-kubernetes-list-type": "map",
                                   "x-kubernetes-list-map-keys": ["name"],
                                   "items": {"type": "object", "properties": {
                                       "name": {"type": "string"}, "image": {"type": "string"}}}}
                }},
                "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}
            }
        }))
        .expect("schema")
    }

    fn object(replicas: i64, image: &str) -> Value {
        json!({
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "namespace": "default", "labels": {"app": "w"}},
            "spec": {"replicas": replicas, "containers": [{"name": "nginx", "image": image}]}
        })
    }

    const T0: &str = "2024-05-01T10:00:00Z";
    const T1: &str = "2024-05-01T10:00:01Z";
    const T2: &str = "2024-05-01T10:00:02Z";

    #[test]
    fn create_records_fields_v1_like_upstream() {
        let s = crd_schema();
        let m = update(
            &Value::Null,
            &object(1, "nginx:1"),
            &ManagedFields::default(),
            "kubectl-create",
            "example.com/v1",
            "",
            T0,
            &s,
        );
        let mut out = object(1, "nginx:1");
        m.write_to(&mut out);
        assert_eq!(
            out["metadata"]["managedFields"],
            json!([{
                "manager": "kubectl-create", "operation": "Update", "apiVersion": "example.com/v1",
                "time": T0, "fieldsType": "FieldsV1",
                "fieldsV1": {
                    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                    "f:spec": {".": {}, "f:replicas": {}, "f:containers": {".": {},
                        "k:{\"name\":\"nginx\"}": {".": {}, "f:name": {}, "f:image": {}}}}
                }
            }])
        );
    }

    #[test]
    fn apply_conflicts_then_force_takes_over() {
        let s = crd_schema();
        let live0 = object(1, "nginx:1");
        let created = update(
            &Value::Null,
            &live0,
            &ManagedFields::default(),
            "kubectl-client-side-apply",
            "example.com/v1",
            "",
            T0,
            &s,
        );

        let config = object(3, "nginx:2");
        let err = apply(
            &live0,
            &config,
            &created,
            "kubectl",
            "example.com/v1",
            "",
            false,
            T1,
            &s,
        )
        .expect_err("conflicts");
        let ApplyError::Conflicts(c) = err else {
            panic!("expected conflicts, got {err:?}")
        };
        assert_eq!(
            c.message(),
            concat!(
                "Apply failed with 2 conflicts: conflicts with \"kubectl-client-side-apply\" using example.com/v1:\n",
                "- .spec.replicas\n",
                "- .spec.containers[name=\"nginx\"].image"
            )
        );
        assert_eq!(
            c.causes()[1].field,
            r#".spec.containers[name="nginx"].image"#
        );
        assert_eq!(
            c.causes()[1].message,
            r#"conflict with "kubectl-client-side-apply" using example.com/v1"#
        );

        let (obj, m) = apply(
            &live0,
            &config,
            &created,
            "kubectl",
            "example.com/v1",
            "",
            true,
            T1,
            &s,
        )
        .expect("forced");
        assert_eq!(obj["spec"]["replicas"], json!(3));
        assert_eq!(obj["spec"]["containers"][0]["image"], json!("nginx:2"));
        // The applier comes first and owns what it applied, minus type meta and name.
        assert_eq!(m.0[0].operation, Operation::Apply);
        assert_eq!(m.0[0].time.as_deref(), Some(T1));
        assert_eq!(
            m.0[0].fields.to_fields_v1(),
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:replicas": {}, "f:containers": {
                    "k:{\"name\":\"nginx\"}": {".": {}, "f:name": {}, "f:image": {}}}}
            })
        );
        // The updater keeps what nobody took from it.
        assert_eq!(
            m.0[1].fields.to_fields_v1(),
            json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:spec": {".": {}, "f:containers": {".": {},
                "k:{\"name\":\"nginx\"}": {".": {}, "f:name": {}}}}})
        );

        // Applying the same again changes nothing, not even the time.
        let mut stored = obj.clone();
        m.write_to(&mut stored);
        let managed = ManagedFields::from_object(&stored).expect("decodes");
        let (again, m2) = apply(
            &stored,
            &config,
            &managed,
            "kubectl",
            "example.com/v1",
            "",
            false,
            T2,
            &s,
        )
        .expect("no-op");
        assert_eq!(m2, m);
        let mut without = stored.clone();
        ManagedFields::strip(&mut without);
        assert_eq!(again, without);
    }

    #[test]
    fn applier_removing_a_container_removes_it() {
        let s = crd_schema();
        let two = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
            "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        let (live, m) = apply(
            &Value::Null,
            &two,
            &ManagedFields::default(),
            "me",
            "example.com/v1",
            "",
            false,
            T0,
            &s,
        )
        .expect("create by apply");
        let one = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
            "spec": {"containers": [{"name": "b", "image": "y"}]}});
        let (live, _) =
            apply(&live, &one, &m, "me", "example.com/v1", "", false, T1, &s).expect("apply");
        assert_eq!(
            live["spec"]["containers"],
            json!([{"name": "b", "image": "y"}])
        );
    }

    #[test]
    fn managed_fields_in_config_are_refused() {
        let s = crd_schema();
        let mut config = object(1, "x");
        config["metadata"]["managedFields"] = json!([]);
        let err = apply(
            &Value::Null,
            &config,
            &ManagedFields::default(),
            "m",
            "example.com/v1",
            "",
            false,
            T0,
            &s,
        );
        assert_eq!(err.map(|_| ()), Err(ApplyError::ManagedFieldsInConfig));
        assert_eq!(
            ApplyError::ManagedFieldsInConfig.to_string(),
            "metadata.managedFields must be nil"
        );
        config["metadata"]["managedFields"] = Value::Null;
        assert!(apply(
            &Value::Null,
            &config,
            &ManagedFields::default(),
            "m",
            "example.com/v1",
            "",
            false,
            T0,
            &s
        )
        .is_ok());
    }

    #[test]
    fn invalid_config_is_refused_with_upstream_message() {
        let s = crd_schema();
        let mut config = object(1, "x");
        config["spec"]["containers"] = json!([{"name": "a"}, {"name": "a"}]);
        let err = apply(
            &Value::Null,
            &config,
            &ManagedFields::default(),
            "m",
            "example.com/v1",
            "",
            false,
            T0,
            &s,
        )
        .expect_err("duplicate keys");
        assert_eq!(
            err.to_string(),
            r#"failed to create typed patch object: .spec.containers: duplicate entries for key [name="a"]"#
        );
    }

    #[test]
    fn reset_fields_are_neither_owned_nor_conflicting() {
        let s = crd_schema();
        let status_only = FieldSet::from_paths(&[Path::fields(&["status"])]);
        let live = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
            "spec": {"replicas": 1}, "status": {"ready": false}});
        let managed = update(
            &Value::Null,
            &live,
            &ManagedFields::default(),
            "creator",
            "example.com/v1",
            "",
            T0,
            &s,
        );
        let config = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
            "spec": {"replicas": 1}, "status": {"ready": true}});
        let req = Request {
            manager: "m",
            api_version: "example.com/v1",
            subresource: "",
            now: T1,
        };
        let (_, m) = Updater::new(&s)
            .ignoring(&status_only)
            .apply(&live, &config, &managed, &req, false)
            .expect("status changes do not conflict when ignored");
        let mine = m.0.iter().find(|e| e.manager == "m").expect("entry");
        assert!(!mine.fields.has(&Path::fields(&["status", "ready"])));
        assert!(mine.fields.has(&Path::fields(&["spec", "replicas"])));
    }
}
