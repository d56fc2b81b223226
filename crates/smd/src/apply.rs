//! Server-side apply (upstream's `Updater.Apply` with the API server's field-manager layers).
//!
//! 1. The configuration is merged into the live object.
//! 2. The applier now owns exactly the configuration's fields.
//! 3. Fields the applier owned before and no longer applies are pruned from the object, unless
//!    another manager owns them (or something under them).
//! 4. The result is compared with the live object: other managers owning a changed field
//!    conflict, unless forced, which takes the field from them; everyone loses removed fields.
//! 5. Type meta and server-set metadata are dropped from the applier's set; its time moves
//!    only if the object changed.

use serde_json::{Map, Value};

use crate::compare::compare;
use crate::error::ApplyError;
use crate::fieldset::FieldSet;
use crate::managed::{ManagedFields, ManagedFieldsEntry, Operation};
use crate::merge::merge;
use crate::remove::remove_items;
use crate::tofieldset::{ensure_named_fields_are_members, field_set_of};
use crate::typed::validate;
use crate::updater::{strip_meta, Request, Updater};
use crate::value::equals;

/// Whether an applied configuration sets `metadata.managedFields` (any list, even empty;
/// `null` is allowed), which upstream refuses.
pub fn config_sets_managed_fields(config: &Value) -> bool {
    config
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .is_some_and(Value::is_array)
}

impl Updater<'_> {
    /// Applies `config` to `live` for `req.manager`. Returns the object to store (the live
    /// object itself when nothing changed) and the new managed fields; the object's own
    /// `metadata.managedFields` is left out, write them with [`ManagedFields::write_to`].
    pub fn apply(
        &self,
        live: &Value,
        config: &Value,
        managed: &ManagedFields,
        req: &Request<'_>,
        force: bool,
    ) -> Result<(Value, ManagedFields), ApplyError> {
        if config_sets_managed_fields(config) {
            return Err(ApplyError::ManagedFieldsInConfig);
        }
        let mut live = if live.is_null() {
            Value::Object(Map::new())
        } else {
            live.clone()
        };
        ManagedFields::strip(&mut live);
        validate(self.schema, config, false).map_err(ApplyError::InvalidConfig)?;
        validate(self.schema, &live, true).map_err(ApplyError::InvalidLive)?;

        let me = req.entry(Operation::Apply);
        let mut managers = self.reconciled(managed);
        let merged = merge(self.schema, &live, config);

        let previous = managers.remove(&me);
        let applied = self.filter(field_set_of(self.schema, config));
        managers.put(ManagedFieldsEntry {
            fields: applied,
            time: previous.as_ref().and_then(|p| p.time.clone()),
            ..me.clone()
        });
        let last = previous.map(|p| p.fields).unwrap_or_default();
        let merged = self.prune(merged, &managers, &last);

        let comparison = self.filter_comparison(compare(self.schema, &live, &merged));
        self.take_changes(&comparison, &mut managers, Some(&me), force)?;

        let changed = !equals(&live, &merged);
        if let Some(entry) = managers.get_mut(&me) {
            entry.fields = strip_meta(std::mem::take(&mut entry.fields));
            if changed {
                entry.time = Some(req.time());
            }
        }
        managers.drop_empty();
        let object = if changed { merged } else { live };
        Ok((object, managers.sorted()))
    }

    /// Removes from `merged` what the applier owned last time (`last`) and no one owns now,
    /// as upstream's `prune`, `addBackOwnedItems` and `addBackDanglingItems` do together.
    fn prune(&self, merged: Value, managers: &ManagedFields, last: &FieldSet) -> Value {
        if last.is_empty() {
            return merged;
        }
        let schema = self.schema;
        let ensure = |s: &FieldSet| ensure_named_fields_are_members(schema, s, schema.root());
        let last = ensure(last);

        // Remove everything the applier owned, whole structs included...
        let pruned = remove_items(schema, &merged, &last);

        // ...then put back what any manager (the applier's new configuration included) owns,
        // or what survived the removal anyway.
        let owned = managers
            .0
            .iter()
            .fold(FieldSet::new(), |acc, e| acc.union(&e.fields));
        let merged_set = ensure(&field_set_of(schema, &merged));
        let pruned_set = ensure(&field_set_of(schema, &pruned));
        let keep = pruned_set.union(&ensure(&owned));
        let pruned = remove_items(schema, &merged, &merged_set.difference(&keep));

        // Finally, only remove what the applier owned last time: fields that were unowned or
        // owned by updaters and happened to sit under a removed parent come back.
        let pruned_set = ensure(&field_set_of(schema, &pruned));
        let to_remove = merged_set.difference(&pruned_set).intersection(&last);
        remove_items(schema, &merged, &to_remove)
    }
}

#[cfg(test)]
mod tests {
    //! Upstream's merge table cases (leaf, set, associative list, nested, multiple appliers,
    //! atomic, force), run through the fixture.
    use crate::fieldset::tests::p;
    use crate::fixture::{run, Case, Op, Owns};
    use crate::managed::Operation::{Apply as A, Update as U};
    use crate::schema::Schema;
    use crate::typed::tests::schema;
    use serde_json::json;

    fn leaf_schema() -> Schema {
        schema(json!({"T": {"type": "object", "properties": {
            "numeric": {"type": "number"}, "string": {"type": "string"}, "bool": {"type": "boolean"}
        }}}))
    }

    #[test]
    fn leaf_fields() {
        let n = || p(&[json!("numeric")]);
        let s = || p(&[json!("string")]);
        let b = || p(&[json!("bool")]);
        run(
            &leaf_schema(),
            vec![
                Case {
                    name: "apply_twice",
                    ops: vec![
                        Op::Apply("default", "v1", json!({"numeric": 1, "string": "string"})),
                        Op::Apply(
                            "default",
                            "v1",
                            json!({"numeric": 2, "string": "string", "bool": false}),
                        ),
                    ],
                    object: json!({"numeric": 2, "string": "string", "bool": false}),
                    managed: Some(vec![Owns("default", A, "v1", vec![n(), s(), b()])]),
                },
                Case {
                    name: "apply_twice_different_versions",
                    ops: vec![
                        Op::Apply("default", "v1", json!({"numeric": 1, "string": "string"})),
                        Op::Apply(
                            "default",
                            "v2",
                            json!({"numeric": 2, "string": "string", "bool": false}),
                        ),
                    ],
                    object: json!({"numeric": 2, "string": "string", "bool": false}),
                    managed: Some(vec![Owns("default", A, "v2", vec![n(), s(), b()])]),
                },
                Case {
                    name: "apply_update_apply_no_conflict",
                    ops: vec![
                        Op::Apply("default", "v1", json!({"numeric": 1, "string": "string"})),
                        Op::Update(
                            "controller",
                            "v1",
                            json!({"numeric": 1, "string": "string", "bool": true}),
                        ),
                        Op::Apply("default", "v1", json!({"numeric": 2, "string": "string"})),
                    ],
                    object: json!({"numeric": 2, "string": "string", "bool": true}),
                    managed: Some(vec![
                        Owns("default", A, "v1", vec![n(), s()]),
                        Owns("controller", U, "v1", vec![b()]),
                    ]),
                },
                Case {
                    name: "apply_update_apply_with_conflict, then force",
                    ops: vec![
                        Op::Apply("default", "v1", json!({"numeric": 1, "string": "string"})),
                        Op::Update(
                            "controller",
                            "v1",
                            json!({"numeric": 1, "string": "controller string", "bool": true}),
                        ),
                        Op::Conflicts(
                            "default",
                            "v1",
                            json!({"numeric": 2, "string": "user string"}),
                            vec![("controller", s())],
                        ),
                        Op::Force(
                            "default",
                            "v1",
                            json!({"numeric": 2, "string": "user string"}),
                        ),
                    ],
                    object: json!({"numeric": 2, "string": "user string", "bool": true}),
                    managed: Some(vec![
                        Owns("default", A, "v1", vec![n(), s()]),
                        Owns("controller", U, "v1", vec![b()]),
                    ]),
                },
                Case {
                    name: "apply_twice_remove",
                    ops: vec![
                        Op::Apply(
                            "default",
                            "v1",
                            json!({"numeric": 1, "string": "string", "bool": false}),
                        ),
                        Op::Apply("default", "v1", json!({"string": "new string"})),
                    ],
                    object: json!({"string": "new string"}),
                    managed: Some(vec![Owns("default", A, "v1", vec![s()])]),
                },
                Case {
                    name: "update_apply_omits: a field taken by an updater stays",
                    ops: vec![
                        Op::Apply("default", "v1", json!({"numeric": 2})),
                        Op::Update("controller", "v1", json!({"numeric": 1})),
                        Op::Apply("default", "v1", json!({})),
                    ],
                    object: json!({"numeric": 1}),
                    managed: Some(vec![Owns("controller", U, "v1", vec![n()])]),
                },
                Case {
                    name: "update_remove_empty_set",
                    ops: vec![
                        Op::Apply("default", "v1", json!({"string": "string"})),
                        Op::Update("controller", "v1", json!({"string": "new string"})),
                    ],
                    object: json!({"string": "new string"}),
                    managed: Some(vec![Owns("controller", U, "v1", vec![s()])]),
                },
                Case {
                    name: "apply_remove_empty_set",
                    ops: vec![
                        Op::Apply("default", "v1", json!({"string": "string"})),
                        Op::Apply("default", "v1", json!({})),
                    ],
                    object: json!({}),
                    managed: Some(vec![]),
                },
            ],
        );
    }

    fn set_schema() -> Schema {
        schema(json!({"T": {"type": "object", "properties": {
            "list": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"}
        }}}))
    }

    #[test]
    fn sets() {
        let v = |x: &str| p(&[json!("list"), json!(["=", x])]);
        run(
            &set_schema(),
            vec![
                Case {
                    name: "apply_twice",
                    ops: vec![
                        Op::Apply("default", "v1", json!({"list": ["a", "c"]})),
                        Op::Apply("default", "v1", json!({"list": ["a", "b", "c", "d"]})),
                    ],
                    object: json!({"list": ["a", "b", "c", "d"]}),
                    managed: Some(vec![Owns(
                        "default",
                        A,
                        "v1",
                        vec![v("a"), v("b"), v("c"), v("d")],
                    )]),
                },
                Case {
                    name: "apply_update_apply_no_overlap",
                    ops: vec![
                        Op::Apply("default", "v1", json!({"list": ["a", "c"]})),
                        Op::Update("controller", "v1", json!({"list": ["a", "b", "c", "d"]})),
                        Op::Apply(
                            "default",
                            "v1",
                            json!({"list": ["a", "aprime", "c", "cprime"]}),
                        ),
                    ],
                    object: json!({"list": ["a", "b", "aprime", "c", "d", "cprime"]}),
                    managed: Some(vec![
                        Owns(
                            "default",
                            A,
                            "v1",
                            vec![v("a"), v("aprime"), v("c"), v("cprime")],
                        ),
                        Owns("controller", U, "v1", vec![v("b"), v("d")]),
                    ]),
                },
                Case {
                    name: "apply_update_apply_with_overlap: same members do not conflict",
                    ops: vec![
                        Op::Apply("default", "v1", json!({"list": ["a", "c"]})),
                        Op::Update("controller", "v2", json!({"list": ["a", "b", "c", "d"]})),
                        Op::Apply("default", "v1", json!({"list": ["a", "b", "c"]})),
                    ],
                    object: json!({"list": ["a", "b", "c", "d"]}),
                    managed: Some(vec![
                        Owns("default", A, "v1", vec![v("a"), v("b"), v("c")]),
                        Owns("controller", U, "v2", vec![v("b"), v("d")]),
                    ]),
                },
                Case {
                    name: "apply_twice_reorder",
                    ops: vec![
                        Op::Apply("default", "v1", json!({"list": ["a", "b", "c", "d"]})),
                        Op::Apply("default", "v1", json!({"list": ["a", "d", "c", "b"]})),
                    ],
                    object: json!({"list": ["a", "d", "c", "b"]}),
                    managed: Some(vec![Owns(
                        "default",
                        A,
                        "v1",
                        vec![v("a"), v("b"), v("c"), v("d")],
                    )]),
                },
                Case {
                    name: "apply_update_apply_reorder: reordering owns nothing",
                    ops: vec![
                        Op::Apply("default", "v1", json!({"list": ["a", "b", "c", "d"]})),
                        Op::Update("controller", "v1", json!({"list": ["a", "d", "c", "b"]})),
                        Op::Apply("default", "v2", json!({"list": ["a", "b", "c", "d"]})),
                    ],
                    object: json!({"list": ["a", "b", "c", "d"]}),
                    managed: Some(vec![Owns(
                        "default",
                        A,
                        "v2",
                        vec![v("a"), v("b"), v("c"), v("d")],
                    )]),
                },
                Case {
                    name: "apply_twice_remove",
                    ops: vec![
                        Op::Apply("default", "v1", json!({"list": ["a", "b", "c", "d"]})),
                        Op::Apply("default", "v1", json!({"list": ["a", "c"]})),
                    ],
                    object: json!({"list": ["a", "c"]}),
                    managed: Some(vec![Owns("default", A, "v1", vec![v("a"), v("c")])]),
                },
            ],
        );
    }

    fn list_map_schema() -> Schema {
        schema(json!({"T": {"type": "object", "properties": {
            "list": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                     "items": {"type": "object", "properties": {"name": {"type": "string"}, "value": {"type": "number"}}}}
        }}}))
    }

    #[test]
    fn list_maps_and_multiple_appliers() {
        let item = |k: &str| p(&[json!("list"), json!({"name": k})]);
        let field = |k: &str, f: &str| p(&[json!("list"), json!({"name": k}), json!(f)]);
        run(
            &list_map_schema(),
            vec![
                Case {
                    name: "removing_obsolete_applied_structs",
                    ops: vec![
                        Op::Apply(
                            "default",
                            "v1",
                            json!({"list": [{"name": "a", "value": 1}]}),
                        ),
                        Op::Apply(
                            "default",
                            "v1",
                            json!({"list": [{"name": "b", "value": 2}]}),
                        ),
                    ],
                    object: json!({"list": [{"name": "b", "value": 2}]}),
                    managed: Some(vec![Owns(
                        "default",
                        A,
                        "v1",
                        vec![item("b"), field("b", "name"), field("b", "value")],
                    )]),
                },
                Case {
                    name: "remove_one",
                    ops: vec![
                        Op::Apply(
                            "apply-one",
                            "v1",
                            json!({"list": [{"name": "a"}, {"name": "b"}]}),
                        ),
                        Op::Apply("apply-two", "v2", json!({"list": [{"name": "c"}]})),
                        Op::Apply("apply-one", "v3", json!({"list": [{"name": "a"}]})),
                    ],
                    object: json!({"list": [{"name": "a"}, {"name": "c"}]}),
                    managed: Some(vec![
                        Owns("apply-one", A, "v3", vec![item("a"), field("a", "name")]),
                        Owns("apply-two", A, "v2", vec![item("c"), field("c", "name")]),
                    ]),
                },
                Case {
                    name: "same_value_no_conflict: both own the field",
                    ops: vec![
                        Op::Apply(
                            "apply-one",
                            "v1",
                            json!({"list": [{"name": "a", "value": 0}]}),
                        ),
                        Op::Apply(
                            "apply-two",
                            "v2",
                            json!({"list": [{"name": "a", "value": 0}]}),
                        ),
                    ],
                    object: json!({"list": [{"name": "a", "value": 0}]}),
                    managed: Some(vec![
                        Owns(
                            "apply-one",
                            A,
                            "v1",
                            vec![item("a"), field("a", "name"), field("a", "value")],
                        ),
                        Owns(
                            "apply-two",
                            A,
                            "v2",
                            vec![item("a"), field("a", "name"), field("a", "value")],
                        ),
                    ]),
                },
                Case {
                    name: "change_value_yes_conflict",
                    ops: vec![
                        Op::Apply(
                            "apply-one",
                            "v1",
                            json!({"list": [{"name": "a", "value": 0}]}),
                        ),
                        Op::Conflicts(
                            "apply-two",
                            "v2",
                            json!({"list": [{"name": "a", "value": 1}]}),
                            vec![("apply-one", field("a", "value"))],
                        ),
                    ],
                    object: json!({"list": [{"name": "a", "value": 0}]}),
                    managed: Some(vec![Owns(
                        "apply-one",
                        A,
                        "v1",
                        vec![item("a"), field("a", "name"), field("a", "value")],
                    )]),
                },
                Case {
                    name: "remove_one_keep_one",
                    ops: vec![
                        Op::Apply(
                            "apply-one",
                            "v1",
                            json!({"list": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}),
                        ),
                        Op::Apply(
                            "apply-two",
                            "v2",
                            json!({"list": [{"name": "c"}, {"name": "d"}]}),
                        ),
                        Op::Apply("apply-one", "v3", json!({"list": [{"name": "a"}]})),
                    ],
                    object: json!({"list": [{"name": "a"}, {"name": "c"}, {"name": "d"}]}),
                    managed: Some(vec![
                        Owns("apply-one", A, "v3", vec![item("a"), field("a", "name")]),
                        Owns(
                            "apply-two",
                            A,
                            "v2",
                            vec![item("c"), item("d"), field("c", "name"), field("d", "name")],
                        ),
                    ]),
                },
            ],
        );
    }

    fn nested_schema() -> Schema {
        schema(json!({
            "T": {"type": "object", "properties": {
                "listOfLists": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "properties": {
                        "name": {"type": "string"},
                        "value": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}
                    }}},
                "mapOfMapsRecursive": {"$ref": "#/definitions/R"},
                "struct": {"type": "object", "properties": {"name": {"type": "string"}, "value": {"type": "number"}}}
            }},
            "R": {"type": "object", "additionalProperties": {"$ref": "#/definitions/R"}}
        }))
    }

    #[test]
    fn nested_and_dangling_items() {
        let lol = |k: &str| p(&[json!("listOfLists"), json!({"name": k})]);
        let lol_name = |k: &str| p(&[json!("listOfLists"), json!({"name": k}), json!("name")]);
        let lol_v = |k: &str, v: &str| {
            p(&[
                json!("listOfLists"),
                json!({"name": k}),
                json!("value"),
                json!(["=", v]),
            ])
        };
        let st = |f: &str| p(&[json!("struct"), json!(f)]);
        run(
            &nested_schema(),
            vec![
                Case {
                    name: "struct_apply_remove_all",
                    ops: vec![
                        Op::Apply(
                            "default",
                            "v1",
                            json!({"struct": {"name": "a", "value": 1}}),
                        ),
                        Op::Apply("default", "v1", json!({})),
                    ],
                    object: json!({}),
                    managed: Some(vec![]),
                },
                Case {
                    name: "struct_apply_remove_dangling",
                    ops: vec![
                        Op::Apply("default", "v1", json!({"struct": {"name": "a"}})),
                        Op::Apply("default", "v1", json!({"struct": null})),
                    ],
                    object: json!({"struct": null}),
                    managed: Some(vec![Owns("default", A, "v1", vec![p(&[json!("struct")])])]),
                },
                Case {
                    name: "struct_apply_update_remove_all",
                    ops: vec![
                        Op::Apply("default", "v1", json!({"struct": {"name": "a"}})),
                        Op::Update(
                            "controller",
                            "v1",
                            json!({"struct": {"name": "a", "value": 1}}),
                        ),
                        Op::Apply("default", "v1", json!({})),
                    ],
                    object: json!({"struct": {"value": 1}}),
                    managed: Some(vec![Owns("controller", U, "v1", vec![st("value")])]),
                },
                Case {
                    name: "struct_apply_update_dict_dangling",
                    ops: vec![
                        Op::Apply("default", "v1", json!({"struct": {"name": "a"}})),
                        Op::Update(
                            "controller",
                            "v1",
                            json!({"struct": {"name": "a", "value": 1}}),
                        ),
                        Op::Apply("default", "v1", json!({"struct": {}})),
                    ],
                    object: json!({"struct": {"value": 1}}),
                    managed: None,
                },
                Case {
                    name: "struct_apply_update_dict_null",
                    ops: vec![
                        Op::Apply("default", "v1", json!({"struct": {"name": "a"}})),
                        Op::Update(
                            "controller",
                            "v1",
                            json!({"struct": {"name": "a", "value": 1}}),
                        ),
                        Op::Apply("default", "v1", json!({"struct": null})),
                    ],
                    object: json!({"struct": {"value": 1}}),
                    managed: None,
                },
                Case {
                    name: "struct_apply_update_took_over",
                    ops: vec![
                        Op::Apply("default", "v1", json!({"struct": {"name": "a"}})),
                        Op::Update(
                            "controller",
                            "v1",
                            json!({"struct": {"name": "b", "value": 1}}),
                        ),
                        Op::Apply("default", "v1", json!({"struct": null})),
                    ],
                    object: json!({"struct": {"name": "b", "value": 1}}),
                    managed: None,
                },
                Case {
                    name: "unset_scalar_shared_with_updater",
                    ops: vec![
                        Op::Update(
                            "updater",
                            "v1",
                            json!({"struct": {"name": "a", "value": 1}}),
                        ),
                        Op::Apply(
                            "applier",
                            "v2",
                            json!({"struct": {"name": "a", "value": 1}}),
                        ),
                        Op::Apply("applier", "v3", json!({"struct": {"name": "a"}})),
                    ],
                    object: json!({"struct": {"name": "a", "value": 1}}),
                    managed: Some(vec![
                        Owns(
                            "updater",
                            U,
                            "v1",
                            vec![p(&[json!("struct")]), st("name"), st("value")],
                        ),
                        Owns("applier", A, "v3", vec![st("name")]),
                    ]),
                },
                Case {
                    name: "remove_one_keep_one_with_dangling_subitem",
                    ops: vec![
                        Op::Apply(
                            "apply-one",
                            "v1",
                            json!({"listOfLists": [{"name": "a"}, {"name": "b", "value": ["c"]}]}),
                        ),
                        Op::Apply(
                            "apply-two",
                            "v2",
                            json!({"listOfLists": [{"name": "b", "value": ["d"]}]}),
                        ),
                        Op::Update(
                            "controller",
                            "v2",
                            json!({"listOfLists": [{"name": "a"}, {"name": "b", "value": ["c", "d", "e"]}]}),
                        ),
                        Op::Apply("apply-one", "v3", json!({"listOfLists": [{"name": "a"}]})),
                    ],
                    object: json!({"listOfLists": [{"name": "a"}, {"name": "b", "value": ["d", "e"]}]}),
                    managed: Some(vec![
                        Owns("apply-one", A, "v3", vec![lol("a"), lol_name("a")]),
                        Owns(
                            "apply-two",
                            A,
                            "v2",
                            vec![lol("b"), lol_name("b"), lol_v("b", "d")],
                        ),
                        Owns("controller", U, "v2", vec![lol_v("b", "e")]),
                    ]),
                },
                Case {
                    name: "remove_one_with_dangling_subitem_keep_one",
                    ops: vec![
                        Op::Apply(
                            "apply-one",
                            "v1",
                            json!({"listOfLists": [{"name": "a"}, {"name": "b", "value": ["c"]}]}),
                        ),
                        Op::Apply(
                            "apply-two",
                            "v2",
                            json!({"listOfLists": [{"name": "a", "value": ["b"]}]}),
                        ),
                        Op::Update(
                            "controller",
                            "v2",
                            json!({"listOfLists": [{"name": "a", "value": ["b"]}, {"name": "b", "value": ["c", "d"]}]}),
                        ),
                        Op::Apply("apply-one", "v3", json!({"listOfLists": [{"name": "a"}]})),
                    ],
                    object: json!({"listOfLists": [{"name": "a", "value": ["b"]}]}),
                    managed: Some(vec![
                        Owns("apply-one", A, "v3", vec![lol("a"), lol_name("a")]),
                        Owns(
                            "apply-two",
                            A,
                            "v2",
                            vec![lol("a"), lol_name("a"), lol_v("a", "b")],
                        ),
                    ]),
                },
            ],
        );
    }

    #[test]
    fn deduced_recursive_maps() {
        let path = |parts: &[&str]| p(&parts.iter().map(|s| json!(s)).collect::<Vec<_>>());
        run(
            &Schema::deduced(),
            vec![Case {
                name: "multiple_appliers_recursive_map_deduced",
                ops: vec![
                    Op::Apply(
                        "apply-one",
                        "v1",
                        json!({"a": {"b": null}, "c": {"d": null}}),
                    ),
                    Op::Apply("apply-two", "v2", json!({"a": null, "c": {"d": null}})),
                    Op::Update(
                        "controller-one",
                        "v3",
                        json!({"a": {"b": {"c": null}}, "c": {"d": {"e": null}}}),
                    ),
                    Op::Update(
                        "controller-two",
                        "v2",
                        json!({"a": {"b": {"c": {"d": null}}}, "c": {"d": {"e": {"f": null}}}}),
                    ),
                    Op::Update(
                        "controller-one",
                        "v3",
                        json!({"a": {"b": {"c": {"d": {"e": null}}}}, "c": {"d": {"e": {"f": {"g": null}}}}}),
                    ),
                    Op::Apply("apply-one", "v4", json!({})),
                ],
                object: json!({"a": null, "c": {"d": {"e": {"f": {"g": null}}}}}),
                managed: Some(vec![
                    Owns(
                        "apply-two",
                        A,
                        "v2",
                        vec![path(&["a"]), path(&["c"]), path(&["c", "d"])],
                    ),
                    Owns(
                        "controller-one",
                        U,
                        "v3",
                        vec![path(&["c", "d", "e"]), path(&["c", "d", "e", "f", "g"])],
                    ),
                    Owns("controller-two", U, "v2", vec![path(&["c", "d", "e", "f"])]),
                ]),
            }],
        );
    }

    #[test]
    fn atomic_map_conflicts_as_a_whole_and_force_takes_it() {
        let s = schema(json!({"T": {"type": "object", "properties": {
            "atomicMap": {"type": "object", "x-kubernetes-map-type": "atomic", "additionalProperties": {"type": "string"}},
            "atomicList": {"type": "array", "items": {"type": "string"}}
        }}}));
        let m = || p(&[json!("atomicMap")]);
        let l = || p(&[json!("atomicList")]);
        run(
            &s,
            vec![
                Case {
                    name: "force",
                    ops: vec![
                        Op::Apply("apply-one", "v1", json!({"atomicMap": {"field1": "a"}})),
                        Op::Conflicts(
                            "apply-two",
                            "v1",
                            json!({"atomicMap": {"field2": "b"}}),
                            vec![("apply-one", m())],
                        ),
                        Op::Force("apply-two", "v1", json!({"atomicMap": {"field2": "b"}})),
                    ],
                    object: json!({"atomicMap": {"field2": "b"}}),
                    managed: Some(vec![Owns("apply-two", A, "v1", vec![m()])]),
                },
                Case {
                    name: "atomic list replaced whole; an equal value is shared",
                    ops: vec![
                        Op::Apply("apply-one", "v1", json!({"atomicList": ["a", "b"]})),
                        Op::Apply("apply-two", "v1", json!({"atomicList": ["a", "b"]})),
                        Op::Conflicts(
                            "apply-two",
                            "v1",
                            json!({"atomicList": ["c"]}),
                            vec![("apply-one", l())],
                        ),
                        Op::Update("controller", "v1", json!({"atomicList": ["x", "y", "z"]})),
                    ],
                    object: json!({"atomicList": ["x", "y", "z"]}),
                    managed: Some(vec![Owns("controller", U, "v1", vec![l()])]),
                },
            ],
        );
    }
}
