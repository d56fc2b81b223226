//! The engine that applies and updates (upstream's `merge.Updater` together with the
//! field-manager layers around it in the API server: manager identifiers, metadata stripping,
//! timestamps, the cap on update entries). `apply.rs` and `update.rs` hold the two operations;
//! this file holds what they share.

use crate::compare::Comparison;
use crate::conflict::Conflicts;
use crate::fieldset::FieldSet;
use crate::managed::{ManagedFields, ManagedFieldsEntry, Operation};
use crate::path::PathElement;
use crate::reconcile::reconcile_with_schema;
use crate::schema::Schema;

/// Who writes, through what, and when: the parts of a request the engine records.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The field manager (`?fieldManager=`, or the user agent for updates). Empty is recorded
    /// as `unknown`, as upstream.
    pub manager: &'a str,
    /// The apiVersion of the request (`apps/v1`).
    pub api_version: &'a str,
    /// The subresource written (`status`), or empty.
    pub subresource: &'a str,
    /// The time to record, RFC 3339.
    pub now: &'a str,
}

impl Request<'_> {
    /// The managed-fields entry this request writes, without fields.
    pub(crate) fn entry(&self, operation: Operation) -> ManagedFieldsEntry {
        let manager = if self.manager.is_empty() {
            "unknown"
        } else {
            self.manager
        };
        ManagedFieldsEntry {
            manager: manager.to_string(),
            operation,
            api_version: self.api_version.to_string(),
            time: None,
            subresource: self.subresource.to_string(),
            fields: FieldSet::new(),
        }
    }

    /// The time as `metav1.Time` writes it.
    pub(crate) fn time(&self) -> String {
        crate::managed::normalize_time(self.now).unwrap_or_else(|| self.now.to_string())
    }
}

/// Applies and updates objects of one kind.
#[derive(Debug, Clone, Copy)]
pub struct Updater<'a> {
    pub(crate) schema: &'a Schema,
    pub(crate) ignored: Option<&'a FieldSet>,
}

impl<'a> Updater<'a> {
    /// An updater for objects of this schema.
    pub fn new(schema: &'a Schema) -> Updater<'a> {
        Updater {
            schema,
            ignored: None,
        }
    }

    /// Fields no manager can own through this endpoint and that never conflict (upstream's
    /// reset fields: `.status` for the main resource of most kinds, everything but `.status`
    /// for the status subresource).
    pub fn ignoring(self, fields: &'a FieldSet) -> Updater<'a> {
        Updater {
            ignored: Some(fields),
            ..self
        }
    }

    pub(crate) fn filter(&self, mut set: FieldSet) -> FieldSet {
        if let Some(ignored) = self.ignored {
            set.remove_recursive(ignored);
        }
        set
    }

    pub(crate) fn filter_comparison(&self, c: Comparison) -> Comparison {
        match self.ignored {
            Some(ignored) => c.exclude(ignored),
            None => c,
        }
    }

    /// The managers with their sets adjusted to the current schema.
    pub(crate) fn reconciled(&self, managed: &ManagedFields) -> ManagedFields {
        let mut out = managed.clone();
        for e in &mut out.0 {
            if let Some(set) = reconcile_with_schema(self.schema, &e.fields) {
                e.fields = set;
            }
        }
        out
    }

    /// Upstream's `update` step: other managers owning a changed field conflict (unless
    /// `force`, which takes the field from them); everyone but `current` loses removed fields;
    /// managers left with nothing are dropped.
    pub(crate) fn take_changes(
        &self,
        comparison: &Comparison,
        managers: &mut ManagedFields,
        current: Option<&ManagedFieldsEntry>,
        force: bool,
    ) -> Result<(), Conflicts> {
        let is_current = |e: &ManagedFieldsEntry| current.is_some_and(|c| e.same_manager(c));
        if managers.0.iter().all(is_current) {
            // No one else to conflict with or take fields from (a create, mostly).
            managers.drop_empty();
            return Ok(());
        }
        let changed = comparison.modified.union(&comparison.added);
        if !force {
            let conflicts: Vec<(ManagedFieldsEntry, FieldSet)> = managers
                .0
                .iter()
                .filter(|e| !is_current(e))
                .filter_map(|e| {
                    let c = e.fields.intersection(&changed);
                    (!c.is_empty()).then(|| (e.clone(), c))
                })
                .collect();
            if !conflicts.is_empty() {
                return Err(Conflicts::from_managers(conflicts));
            }
        }
        for e in managers.0.iter_mut().filter(|e| !is_current(e)) {
            e.fields.remove(&changed);
            e.fields.remove(&comparison.removed);
        }
        managers.drop_empty();
        Ok(())
    }
}

/// Fields no manager owns: type meta and the metadata the server sets (upstream's
/// `stripMetaManager`). `.metadata` itself is dropped but not what is under it.
pub(crate) fn strip_meta(mut set: FieldSet) -> FieldSet {
    for field in ["apiVersion", "kind", "metadata"] {
        set.remove_member(&PathElement::field(field));
    }
    let metadata = PathElement::field("metadata");
    for field in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        set.remove_member_under(&metadata, &PathElement::field(field));
    }
    set
}
