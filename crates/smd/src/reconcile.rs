//! Bringing a stored field set in line with a schema that changed since it was written
//! (upstream's `ReconcileFieldSetWithSchema`): when a granular map or list became atomic, a
//! manager that owned parts of it now owns it whole. (Atomic to granular needs nothing: the
//! manager keeps owning the whole.)

use crate::fieldset::FieldSet;
use crate::path::PathElement;
use crate::schema::{Handler, ListRelationship, Schema, Target, TypeRef, DEDUCED};

/// The reconciled set, or `None` when nothing had to change.
pub(crate) fn reconcile_with_schema(schema: &Schema, set: &FieldSet) -> Option<FieldSet> {
    let mut to_remove = FieldSet::new();
    let mut to_add = FieldSet::new();
    let mut path = Vec::new();
    walk(
        schema,
        Some(set),
        schema.root(),
        false,
        &mut path,
        &mut to_remove,
        &mut to_add,
    );
    if to_remove.is_empty() && to_add.is_empty() {
        return None;
    }
    Some(set.recursive_difference(&to_remove).union(&to_add))
}

fn walk(
    schema: &Schema,
    set: Option<&FieldSet>,
    tr: &TypeRef,
    is_atomic: bool,
    path: &mut Vec<PathElement>,
    to_remove: &mut FieldSet,
    to_add: &mut FieldSet,
) {
    // No value to deduce from: the type's own branch order decides (map, scalar, list).
    let Some(handler) = schema.resolve(tr).and_then(|a| a.handler()) else {
        return;
    };
    let element_of = |pe: &PathElement| -> Option<TypeRef> {
        match handler {
            Handler::Map(map, _) => {
                let ty = match pe {
                    PathElement::Field(name) => map.type_of(name),
                    _ => &map.element,
                };
                (!ty.is_nothing()).then(|| ty.clone())
            }
            Handler::List(list) => Some(list.element.clone()),
            Handler::Scalar(_) => None,
        }
    };
    match handler {
        Handler::Scalar(_) => return,
        Handler::Map(map, atomic) => {
            // Free-form maps (preserved unknown fields) have no markers to reconcile with.
            let untyped =
                map.fields.is_empty() && matches!(map.element.target, Target::Named(DEDUCED));
            if untyped {
                return;
            }
            if !is_atomic && atomic {
                if set.is_some_and(|s| !s.is_empty()) {
                    to_remove.insert_elements(path);
                    to_add.insert_elements(path);
                }
                return;
            }
        }
        Handler::List(list) => {
            if !is_atomic && list.relationship == ListRelationship::Atomic {
                to_remove.insert_elements(path);
                to_add.insert_elements(path);
                return;
            }
        }
    }
    let Some(set) = set else {
        return;
    };
    // Children that are only parents first, then members, as upstream visits them.
    let parents = set.children().filter(|(pe, _)| !set.is_member(pe));
    let mut visits: Vec<(&PathElement, Option<&FieldSet>, bool)> = parents
        .map(|(pe, child)| (pe, Some(child), false))
        .collect();
    visits.extend(set.members().map(|pe| (pe, set.child(pe), true)));
    for (pe, child, is_member) in visits {
        let Some(ty) = element_of(pe) else {
            continue;
        };
        path.push(pe.clone());
        walk(
            schema,
            child,
            &ty,
            is_member && child.is_none(),
            path,
            to_remove,
            to_add,
        );
        path.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fieldset::tests::{p, set};
    use crate::typed::tests::schema;
    use serde_json::json;

    #[test]
    fn granular_turned_atomic_is_owned_whole() {
        let s = schema(json!({
            "T": {"type": "object", "properties": {
                "selector": {"type": "object", "x-kubernetes-map-type": "atomic", "additionalProperties": {"type": "string"}},
                "args": {"type": "array", "items": {"type": "string"}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}}
            }}
        }));
        let stored = set(&[
            p(&[json!("selector"), json!("a")]),
            p(&[json!("args"), json!(["=", "x"])]),
            p(&[json!("labels"), json!("b")]),
        ]);
        let want = set(&[
            p(&[json!("selector")]),
            p(&[json!("args")]),
            p(&[json!("labels"), json!("b")]),
        ]);
        assert_eq!(reconcile_with_schema(&s, &stored), Some(want));
        let fine = set(&[p(&[json!("selector")]), p(&[json!("labels"), json!("b")])]);
        assert_eq!(reconcile_with_schema(&s, &fine), None);
    }
}
