//! Test fixture in the style of upstream's `internal/fixture`: a sequence of applies and
//! updates run against one live object, then the object and the managers are checked.

use serde_json::Value;

use crate::fieldset::FieldSet;
use crate::managed::{ManagedFields, Operation};
use crate::path::Path;
use crate::schema::Schema;
use crate::{apply, update, ApplyError};

/// One step of a case.
pub(crate) enum Op {
    /// A non-forced apply that must succeed.
    Apply(&'static str, &'static str, Value),
    /// A non-forced apply that must fail with exactly these (manager, path) conflicts.
    Conflicts(&'static str, &'static str, Value, Vec<(&'static str, Path)>),
    /// A forced apply.
    Force(&'static str, &'static str, Value),
    /// An update writing the whole object.
    Update(&'static str, &'static str, Value),
}

/// What one manager must own at the end.
pub(crate) struct Owns(
    pub(crate) &'static str,
    pub(crate) Operation,
    pub(crate) &'static str,
    pub(crate) Vec<Path>,
);

enum Kind {
    Force,
    Other,
}

pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) ops: Vec<Op>,
    pub(crate) object: Value,
    /// `None` when upstream's case does not check the managers.
    pub(crate) managed: Option<Vec<Owns>>,
}

fn summary(m: &ManagedFields) -> Vec<(String, Operation, String, FieldSet)> {
    let mut v: Vec<_> =
        m.0.iter()
            .map(|e| {
                (
                    e.manager.clone(),
                    e.operation,
                    e.api_version.clone(),
                    e.fields.clone(),
                )
            })
            .collect();
    v.sort_by(|a, b| (&a.0, a.1, &a.2).cmp(&(&b.0, b.1, &b.2)));
    v
}

pub(crate) fn run(schema: &Schema, cases: Vec<Case>) {
    for case in cases {
        let mut live = Value::Null;
        let mut managed = ManagedFields::default();
        for (step, op) in case.ops.into_iter().enumerate() {
            let now = format!("2024-01-01T00:00:{step:02}Z");
            let name = case.name;
            let op_kind = match &op {
                Op::Force(..) => Kind::Force,
                _ => Kind::Other,
            };
            match op {
                Op::Apply(manager, version, config) | Op::Force(manager, version, config) => {
                    let force = matches!(op_kind, Kind::Force);
                    let (obj, m) = apply(
                        &live, &config, &managed, manager, version, "", force, &now, schema,
                    )
                    .unwrap_or_else(|e| panic!("{name}: step {step}: {e}"));
                    live = obj;
                    managed = m;
                }
                Op::Conflicts(manager, version, config, want) => {
                    match apply(
                        &live, &config, &managed, manager, version, "", false, &now, schema,
                    ) {
                        Err(ApplyError::Conflicts(c)) => {
                            let mut got: Vec<(String, String)> =
                                c.0.iter()
                                    .map(|c| (c.manager.manager.clone(), c.path.to_string()))
                                    .collect();
                            let mut want: Vec<(String, String)> = want
                                .iter()
                                .map(|(m, p)| (m.to_string(), p.to_string()))
                                .collect();
                            got.sort();
                            want.sort();
                            assert_eq!(got, want, "{name}: step {step}: conflicts");
                        }
                        other => panic!("{name}: step {step}: expected conflicts, got {other:?}"),
                    }
                }
                Op::Update(manager, version, new) => {
                    managed = update(&live, &new, &managed, manager, version, "", &now, schema);
                    live = new;
                }
            }
        }
        assert_eq!(live, case.object, "{}: object", case.name);
        if let Some(want) = case.managed {
            let want: ManagedFields = ManagedFields(
                want.into_iter()
                    .map(
                        |Owns(manager, operation, version, paths)| crate::ManagedFieldsEntry {
                            manager: manager.to_string(),
                            operation,
                            api_version: version.to_string(),
                            time: None,
                            subresource: String::new(),
                            fields: FieldSet::from_paths(&paths),
                        },
                    )
                    .collect(),
            );
            assert_eq!(summary(&managed), summary(&want), "{}: managers", case.name);
        }
    }
}
