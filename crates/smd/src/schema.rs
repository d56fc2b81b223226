//! The merge-relevant shape of a kind: which maps are structs (with named fields), which maps
//! and lists are atomic, which lists are sets or keyed maps. This is upstream's `schema.Schema`
//! cut down to what the walkers need; `openapi.rs` builds it from OpenAPI.
//!
//! Types are kept in an arena indexed by number; references between named definitions are
//! indexes, so recursive definitions (JSONSchemaProps) need no special handling.

use std::collections::BTreeMap;

use serde_json::Value;

/// The scalar kinds upstream distinguishes (for validation only; merging treats all scalars
/// as leaves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scalar {
    /// `integer` or `number`.
    Numeric,
    /// `string` without a special format.
    String,
    /// `boolean`.
    Boolean,
    /// Any scalar: int-or-string, quantities, date-times, untyped fields.
    Untyped,
}

/// What a reference points at.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A named type in the arena.
    Named(usize),
    /// A type defined in place.
    Inline(Box<Atom>),
    /// No type: a map whose unknown keys are not allowed has this element type.
    Nothing,
}

/// A reference to a type, with the field-level `x-kubernetes-map-type` override upstream
/// allows on a `$ref`.
#[derive(Debug, Clone)]
pub(crate) struct TypeRef {
    pub(crate) target: Target,
    pub(crate) map_atomic: Option<bool>,
}

impl TypeRef {
    pub(crate) fn named(i: usize) -> TypeRef {
        TypeRef {
            target: Target::Named(i),
            map_atomic: None,
        }
    }

    pub(crate) fn nothing() -> TypeRef {
        TypeRef {
            target: Target::Nothing,
            map_atomic: None,
        }
    }

    pub(crate) fn is_nothing(&self) -> bool {
        matches!(self.target, Target::Nothing)
    }
}

/// A type: any combination of scalar, list and map (an untyped field is all three; the value
/// decides which applies).
#[derive(Debug, Clone, Default)]
pub(crate) struct Atom {
    pub(crate) scalar: Option<Scalar>,
    pub(crate) list: Option<ListType>,
    pub(crate) map: Option<MapType>,
}

/// How the items of a list relate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListRelationship {
    /// The list is one value, replaced whole (`x-kubernetes-list-type: atomic`, the default).
    Atomic,
    /// Items are identified by these key fields (`map`), or by their value when there are
    /// none (`set`).
    Associative(Vec<String>),
}

/// A list type.
#[derive(Debug, Clone)]
pub(crate) struct ListType {
    pub(crate) element: TypeRef,
    pub(crate) relationship: ListRelationship,
}

/// A field of a struct.
#[derive(Debug, Clone)]
pub(crate) struct StructField {
    pub(crate) ty: TypeRef,
    /// The OpenAPI `default`, used for list-map keys the item omits.
    pub(crate) default: Option<Value>,
}

/// A map type: a struct (named fields), a map (element type for other keys), or both.
#[derive(Debug, Clone)]
pub(crate) struct MapType {
    pub(crate) fields: BTreeMap<String, StructField>,
    pub(crate) element: TypeRef,
    pub(crate) atomic: bool,
}

impl MapType {
    /// The type of the value under `key`: its field's type, or the element type.
    pub(crate) fn type_of(&self, key: &str) -> &TypeRef {
        self.fields.get(key).map(|f| &f.ty).unwrap_or(&self.element)
    }

    pub(crate) fn has_field(&self, key: &str) -> bool {
        self.fields.contains_key(key)
    }
}

/// A resolved type, narrowed to what applies to one value (upstream's `deduceAtom`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AtomView<'a> {
    pub(crate) scalar: Option<Scalar>,
    pub(crate) list: Option<&'a ListType>,
    pub(crate) map: Option<&'a MapType>,
    pub(crate) map_atomic: bool,
}

/// Which branch of a type handles a value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Handler<'a> {
    Scalar(Scalar),
    List(&'a ListType),
    Map(&'a MapType, bool),
}

impl<'a> AtomView<'a> {
    /// Keeps only the branch matching the value's kind, when the type has it; otherwise (no
    /// value, null, or a kind the type lacks) keeps every branch, as upstream does.
    pub(crate) fn deduce(self, v: Option<&Value>) -> AtomView<'a> {
        let only = |mut a: AtomView<'a>, scalar: bool, list: bool, map: bool| {
            if !scalar {
                a.scalar = None;
            }
            if !list {
                a.list = None;
            }
            if !map {
                a.map = None;
            }
            a
        };
        match v {
            Some(Value::Number(_) | Value::String(_) | Value::Bool(_)) if self.scalar.is_some() => {
                only(self, true, false, false)
            }
            Some(Value::Array(_)) if self.list.is_some() => only(self, false, true, false),
            Some(Value::Object(_)) if self.map.is_some() => only(self, false, false, true),
            _ => self,
        }
    }

    /// Whether two deduced views select the same branches.
    pub(crate) fn same_branches(&self, other: &AtomView<'_>) -> bool {
        self.scalar.is_some() == other.scalar.is_some()
            && self.list.is_some() == other.list.is_some()
            && self.map.is_some() == other.map.is_some()
    }

    /// The branch that handles the value: map first, then scalar, then list (upstream's
    /// `handleAtom` order). `None` for an empty type.
    pub(crate) fn handler(&self) -> Option<Handler<'a>> {
        if let Some(m) = self.map {
            Some(Handler::Map(m, self.map_atomic))
        } else if let Some(s) = self.scalar {
            Some(Handler::Scalar(s))
        } else {
            self.list.map(Handler::List)
        }
    }
}

/// Index of the untyped atomic type (`__untyped_atomic_`): any scalar, or an atomic list or
/// map of such.
pub(crate) const UNTYPED_ATOMIC: usize = 0;
/// Index of the deduced type (`__untyped_deduced_`): any scalar, an atomic list, or a
/// granular map of deduced values.
pub(crate) const DEDUCED: usize = 1;

/// The merge schema of one kind.
#[derive(Debug, Clone)]
pub struct Schema {
    pub(crate) types: Vec<Atom>,
    pub(crate) root: TypeRef,
}

impl Schema {
    /// An arena holding only the two common types.
    pub(crate) fn with_common_types() -> Vec<Atom> {
        let untyped_atomic = Atom {
            scalar: Some(Scalar::Untyped),
            list: Some(ListType {
                element: TypeRef::named(UNTYPED_ATOMIC),
                relationship: ListRelationship::Atomic,
            }),
            map: Some(MapType {
                fields: BTreeMap::new(),
                element: TypeRef::named(UNTYPED_ATOMIC),
                atomic: true,
            }),
        };
        let deduced = Atom {
            scalar: Some(Scalar::Untyped),
            list: Some(ListType {
                element: TypeRef::named(UNTYPED_ATOMIC),
                relationship: ListRelationship::Atomic,
            }),
            map: Some(MapType {
                fields: BTreeMap::new(),
                element: TypeRef::named(DEDUCED),
                atomic: false,
            }),
        };
        vec![untyped_atomic, deduced]
    }

    /// The schema for objects of unknown type (upstream's `DeducedParseableType`): maps are
    /// granular, lists atomic, everything else a scalar.
    pub fn deduced() -> Schema {
        Schema {
            types: Schema::with_common_types(),
            root: TypeRef::named(DEDUCED),
        }
    }

    /// The root type reference.
    pub(crate) fn root(&self) -> &TypeRef {
        &self.root
    }

    /// The type a reference points at, with its map override applied.
    pub(crate) fn resolve<'a>(&'a self, tr: &'a TypeRef) -> Option<AtomView<'a>> {
        let atom: &Atom = match &tr.target {
            Target::Named(i) => self.types.get(*i)?,
            Target::Inline(a) => a,
            Target::Nothing => return None,
        };
        let map_atomic = match (&atom.map, tr.map_atomic) {
            (Some(_), Some(over)) => over,
            (Some(m), None) => m.atomic,
            (None, _) => false,
        };
        Some(AtomView {
            scalar: atom.scalar,
            list: atom.list.as_ref(),
            map: atom.map.as_ref(),
            map_atomic,
        })
    }
}
