//! Apply conflicts and how upstream reports them in a 409: the message
//! (`Apply failed with 1 conflict: conflict with "m" using v1: .spec.replicas`) and one
//! `FieldManagerConflict` cause per field.

use std::fmt;

use crate::fieldset::FieldSet;
use crate::managed::{ManagedFieldsEntry, Operation};
use crate::path::Path;
use crate::value::go_quote;

/// One field another manager owns and the apply would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The owner (its fields and time are not part of the conflict).
    pub manager: ManagedFieldsEntry,
    /// The field.
    pub path: Path,
}

impl Conflict {
    /// The manager as upstream prints it: `"name"`, with ` with subresource "status"` and,
    /// for updaters, ` using apps/v1`.
    pub fn manager_display(&self) -> String {
        let mut s = go_quote(&self.manager.manager);
        if !self.manager.subresource.is_empty() {
            s.push_str(" with subresource ");
            s.push_str(&go_quote(&self.manager.subresource));
        }
        if self.manager.operation == Operation::Update {
            s.push_str(" using ");
            s.push_str(&self.manager.api_version);
        }
        s
    }
}

/// A `metav1.StatusCause` of a conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictCause {
    /// Always `FieldManagerConflict`.
    pub reason: &'static str,
    /// `conflict with "m" using v1`.
    pub message: String,
    /// `.spec.replicas`.
    pub field: String,
}

/// The conflicts of a refused apply, grouped by manager (ordered by manager identifier) and,
/// within a manager, in field-set order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflicts(pub Vec<Conflict>);

impl Conflicts {
    /// The conflicts of each manager's conflicting fields.
    pub(crate) fn from_managers(sets: Vec<(ManagedFieldsEntry, FieldSet)>) -> Conflicts {
        let mut sets = sets;
        sets.sort_by_cached_key(|(m, _)| m.identifier());
        let mut out = Vec::new();
        for (manager, set) in sets {
            let manager = ManagedFieldsEntry {
                fields: FieldSet::new(),
                time: None,
                ..manager
            };
            for path in set.iter() {
                out.push(Conflict {
                    manager: manager.clone(),
                    path,
                });
            }
        }
        Conflicts(out)
    }

    /// How many fields conflict.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every conflicting field, whoever owns it.
    pub fn to_set(&self) -> FieldSet {
        FieldSet::from_paths(self.0.iter().map(|c| &c.path))
    }

    /// The conflicts on fields outside `allowed` (for the upgrade from client-side apply, where
    /// fields the last-applied annotation vouches for may be taken over).
    pub fn without(&self, allowed: &FieldSet) -> Conflicts {
        Conflicts(
            self.0
                .iter()
                .filter(|c| !allowed.has(&c.path))
                .cloned()
                .collect(),
        )
    }

    /// Upstream's 409 message.
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// The Status causes upstream attaches to the 409, one per field.
    pub fn causes(&self) -> Vec<ConflictCause> {
        self.0
            .iter()
            .map(|c| ConflictCause {
                reason: "FieldManagerConflict",
                message: format!("conflict with {}", c.manager_display()),
                field: c.path.to_string(),
            })
            .collect()
    }
}

impl fmt::Display for Conflicts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let [one] = self.0.as_slice() {
            return write!(
                f,
                "Apply failed with 1 conflict: conflict with {}: {}",
                one.manager_display(),
                one.path
            );
        }
        // Grouped by manager, managers sorted by identifier.
        let mut groups: Vec<(String, String, Vec<&Path>)> = Vec::new();
        for c in &self.0 {
            let id = c.manager.identifier();
            match groups.iter_mut().find(|(gid, _, _)| *gid == id) {
                Some((_, _, paths)) => paths.push(&c.path),
                None => groups.push((id, c.manager_display(), vec![&c.path])),
            }
        }
        groups.sort_by(|a, b| a.0.cmp(&b.0));
        write!(f, "Apply failed with {} conflicts: ", self.0.len())?;
        let mut first = true;
        for (_, display, paths) in groups {
            if !first {
                f.write_str("\n")?;
            }
            first = false;
            write!(f, "conflicts with {display}:")?;
            for p in paths {
                write!(f, "\n- {p}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Conflicts {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fieldset::tests::{p, set};
    use serde_json::json;

    fn manager(
        name: &str,
        operation: Operation,
        api_version: &str,
        subresource: &str,
    ) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: name.into(),
            operation,
            api_version: api_version.into(),
            time: Some("2024-01-01T00:00:00Z".into()),
            subresource: subresource.into(),
            fields: FieldSet::new(),
        }
    }

    #[test]
    fn one_conflict() {
        let c = Conflicts::from_managers(vec![(
            manager(
                "kubectl-client-side-apply",
                Operation::Update,
                "apps/v1",
                "",
            ),
            set(&[p(&[json!("spec"), json!("replicas")])]),
        )]);
        assert_eq!(
            c.to_string(),
            r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas"#
        );
        assert_eq!(
            c.causes(),
            [ConflictCause {
                reason: "FieldManagerConflict",
                message: r#"conflict with "kubectl-client-side-apply" using apps/v1"#.into(),
                field: ".spec.replicas".into(),
            }]
        );
    }

    #[test]
    fn many_conflicts_grouped_by_sorted_manager() {
        let c = Conflicts::from_managers(vec![
            (
                manager("Bob", Operation::Update, "v1", ""),
                set(&[
                    p(&[json!("key")]),
                    p(&[json!("list"), json!({"key": "a", "id": 2}), json!("id")]),
                ]),
            ),
            (
                manager("Alice", Operation::Apply, "v1", "status"),
                set(&[
                    p(&[json!("value")]),
                    p(&[json!("list"), json!({"key": "a", "id": 2}), json!("key")]),
                ]),
            ),
        ]);
        assert_eq!(
            c.to_string(),
            concat!(
                "Apply failed with 4 conflicts: conflicts with \"Alice\" with subresource \"status\":\n",
                "- .value\n",
                "- .list[id=2,key=\"a\"].key\n",
                "conflicts with \"Bob\" using v1:\n",
                "- .key\n",
                "- .list[id=2,key=\"a\"].id"
            )
        );
        assert_eq!(c.to_set().len(), 4);
        assert_eq!(c.without(&set(&[p(&[json!("key")])])).len(), 3);
    }
}
