//! Building a [`Schema`] from OpenAPI, with the rules of upstream's `schemaconv`:
//!
//! - `type: object` is a map: `properties` are its named fields; `additionalProperties` (a
//!   schema, or `true`) types its other keys; with neither, or under
//!   `x-kubernetes-preserve-unknown-fields`, other keys are deduced. `x-kubernetes-map-type`
//!   atomic|granular, also as an override on a `$ref` property.
//! - `type: array` is a list: `x-kubernetes-list-type` atomic|set|map (+ `list-map-keys`); without
//!   one, `x-kubernetes-patch-strategy: merge` makes it a map keyed by the patch merge key, or a set
//!   when there is no key; otherwise atomic.
//! - No `type` (as `x-kubernetes-int-or-string` and free-form fields): any of scalar, list, map.
//! - `$ref` and single-item `allOf: [{$ref}]` point at definitions; Quantity is an untyped
//!   scalar and RawExtension untyped and atomic.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Map, Value};

use crate::error::SchemaError;
use crate::schema::{
    Atom, ListRelationship, ListType, MapType, Scalar, Schema, StructField, Target, TypeRef,
    DEDUCED, UNTYPED_ATOMIC,
};

const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
const RAW_EXTENSION: &str = "io.k8s.apimachinery.pkg.runtime.RawExtension";
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const CRD_ROOT: &str = "__ferry_crd_root__";

struct Converter<'a> {
    definitions: &'a Map<String, Value>,
    types: Vec<Atom>,
    index: HashMap<String, usize>,
    pending: Vec<(String, usize)>,
}

fn extension<'v>(s: &'v Value, name: &str) -> Option<&'v Value> {
    s.get(name)
}

fn ref_name(s: &Value) -> Option<&str> {
    let r = s.get("$ref").and_then(Value::as_str).or_else(|| {
        match s.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
            Some([only]) => only.get("$ref").and_then(Value::as_str),
            _ => None,
        }
    })?;
    let name = r.rsplit('/').next().unwrap_or(r);
    (!name.is_empty()).then_some(name)
}

fn type_of(s: &Value) -> &str {
    match s.get("type") {
        Some(Value::String(t)) => t,
        Some(Value::Array(ts)) => ts.first().and_then(Value::as_str).unwrap_or(""),
        _ => "",
    }
}

/// `x-kubernetes-map-type`: `Some(true)` for atomic, `Some(false)` for granular.
fn map_atomic(s: &Value, context: &str) -> Result<Option<bool>, SchemaError> {
    match extension(s, "x-kubernetes-map-type") {
        None => Ok(None),
        Some(Value::String(t)) if t == "atomic" => Ok(Some(true)),
        Some(Value::String(t)) if t == "granular" => Ok(Some(false)),
        Some(other) => Err(SchemaError::Invalid(format!(
            "{context}: unknown map type {other}"
        ))),
    }
}

fn list_relationship(s: &Value, context: &str) -> Result<ListRelationship, SchemaError> {
    if let Some(t) = extension(s, "x-kubernetes-list-type") {
        return match t.as_str() {
            Some("atomic") => Ok(ListRelationship::Atomic),
            Some("set") => Ok(ListRelationship::Associative(Vec::new())),
            Some("map") => {
                let keys = extension(s, "x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .ok_or_else(|| SchemaError::Invalid(format!("{context}: missing map keys")))?;
                let keys: Vec<String> = keys
                    .iter()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect();
                Ok(ListRelationship::Associative(keys))
            }
            _ => Err(SchemaError::Invalid(format!(
                "{context}: unknown list type {t}"
            ))),
        };
    }
    if let Some(strategy) = extension(s, "x-kubernetes-patch-strategy") {
        return match strategy.as_str() {
            Some("merge" | "merge,retainKeys") => {
                match extension(s, "x-kubernetes-patch-merge-key") {
                    Some(Value::String(key)) => {
                        Ok(ListRelationship::Associative(vec![key.clone()]))
                    }
                    Some(other) => Err(SchemaError::Invalid(format!(
                        "{context}: uninterpreted merge key: {other}"
                    ))),
                    // A merge strategy without a key on a list of scalars: a set.
                    None => Ok(ListRelationship::Associative(Vec::new())),
                }
            }
            Some("retainKeys") => Ok(ListRelationship::Atomic),
            _ => Err(SchemaError::Invalid(format!(
                "{context}: unknown patch strategy {strategy}"
            ))),
        };
    }
    Ok(ListRelationship::Atomic)
}

impl<'a> Converter<'a> {
    fn new(definitions: &'a Map<String, Value>) -> Converter<'a> {
        Converter {
            definitions,
            types: Schema::with_common_types(),
            index: HashMap::new(),
            pending: Vec::new(),
        }
    }

    /// The arena index of a named definition, queuing it for conversion on first use.
    fn named(&mut self, name: &str) -> Result<usize, SchemaError> {
        if let Some(i) = self.index.get(name) {
            return Ok(*i);
        }
        let spec = self
            .definitions
            .get(name)
            .ok_or_else(|| SchemaError::MissingDefinition(name.to_string()))?;
        // A definition that is only a reference is an alias.
        if spec.get("$ref").is_some() {
            if let Some(target) = ref_name(spec) {
                if target != name {
                    let i = self.named(target)?;
                    self.index.insert(name.to_string(), i);
                    return Ok(i);
                }
            }
        }
        let i = self.types.len();
        self.types.push(Atom::default());
        self.index.insert(name.to_string(), i);
        self.pending.push((name.to_string(), i));
        Ok(i)
    }

    fn run(mut self, root: &str) -> Result<Schema, SchemaError> {
        let root = self.named(root)?;
        while let Some((name, i)) = self.pending.pop() {
            let atom = if name == QUANTITY {
                Atom {
                    scalar: Some(Scalar::Untyped),
                    ..Atom::default()
                }
            } else if name == RAW_EXTENSION {
                self.types[UNTYPED_ATOMIC].clone()
            } else {
                let spec = self
                    .definitions
                    .get(&name)
                    .ok_or_else(|| SchemaError::MissingDefinition(name.clone()))?;
                self.parse_schema(spec, false, &name)?
            };
            self.types[i] = atom;
        }
        Ok(Schema {
            types: self.types,
            root: TypeRef::named(root),
        })
    }

    fn parse_schema(
        &mut self,
        s: &Value,
        preserve_unknown: bool,
        context: &str,
    ) -> Result<Atom, SchemaError> {
        let preserve_unknown = preserve_unknown
            || extension(s, "x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        Ok(match type_of(s) {
            "" => Atom {
                scalar: Some(Scalar::Untyped),
                list: Some(self.parse_list(s, preserve_unknown, context)?),
                map: Some(self.parse_object(s, preserve_unknown, context)?),
            },
            "object" => Atom {
                map: Some(self.parse_object(s, preserve_unknown, context)?),
                ..Atom::default()
            },
            "array" => Atom {
                list: Some(self.parse_list(s, preserve_unknown, context)?),
                ..Atom::default()
            },
            "integer" | "number" => Atom {
                scalar: Some(Scalar::Numeric),
                ..Atom::default()
            },
            "boolean" => Atom {
                scalar: Some(Scalar::Boolean),
                ..Atom::default()
            },
            "string" => {
                let format = s.get("format").and_then(Value::as_str).unwrap_or("");
                let scalar = match format {
                    "" | "byte" => Scalar::String,
                    _ => Scalar::Untyped,
                };
                Atom {
                    scalar: Some(scalar),
                    ..Atom::default()
                }
            }
            other => {
                return Err(SchemaError::Invalid(format!(
                    "{context}: unrecognized type: '{other}'"
                )))
            }
        })
    }

    fn make_ref(
        &mut self,
        s: &Value,
        preserve_unknown: bool,
        context: &str,
    ) -> Result<TypeRef, SchemaError> {
        if let Some(name) = ref_name(s) {
            let i = self.named(name)?;
            return Ok(TypeRef {
                target: Target::Named(i),
                map_atomic: map_atomic(s, context)?,
            });
        }
        let atom = self.parse_schema(s, preserve_unknown, context)?;
        Ok(TypeRef {
            target: Target::Inline(Box::new(atom)),
            map_atomic: None,
        })
    }

    fn parse_object(
        &mut self,
        s: &Value,
        preserve_unknown: bool,
        context: &str,
    ) -> Result<MapType, SchemaError> {
        let mut fields = BTreeMap::new();
        let properties = s.get("properties").and_then(Value::as_object);
        for (name, member) in properties.into_iter().flatten() {
            let ty = self.make_ref(member, preserve_unknown, &format!("{context}.{name}"))?;
            fields.insert(
                name.clone(),
                StructField {
                    ty,
                    default: member.get("default").cloned(),
                },
            );
        }
        let element = match s.get("additionalProperties") {
            None if preserve_unknown || fields.is_empty() => TypeRef::named(DEDUCED),
            None | Some(Value::Bool(false)) => TypeRef::nothing(),
            Some(Value::Bool(true)) => TypeRef::named(DEDUCED),
            Some(schema) => self.make_ref(schema, preserve_unknown, &format!("{context}.*"))?,
        };
        Ok(MapType {
            fields,
            element,
            atomic: map_atomic(s, context)?.unwrap_or(false),
        })
    }

    fn parse_list(
        &mut self,
        s: &Value,
        preserve_unknown: bool,
        context: &str,
    ) -> Result<ListType, SchemaError> {
        let relationship = list_relationship(s, context)?;
        let element = match s.get("items") {
            Some(Value::Array(items)) => match items.as_slice() {
                [only] => self.make_ref(only, preserve_unknown, &format!("{context}[]"))?,
                _ => {
                    return Err(SchemaError::Invalid(format!(
                        "{context}: structural schema arrays must have exactly one member subtype"
                    )))
                }
            },
            Some(items) => self.make_ref(items, preserve_unknown, &format!("{context}[]"))?,
            // A list with no items is untyped (and atomic inside).
            None => TypeRef::named(UNTYPED_ATOMIC),
        };
        Ok(ListType {
            element,
            relationship,
        })
    }
}

/// The OpenAPI definitions of ObjectMeta and the types it uses, with the merge markers
/// upstream publishes for them.
fn object_meta_definitions() -> Map<String, Value> {
    let time = "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Time";
    let string_map =
        json!({"type": "object", "additionalProperties": {"type": "string", "default": ""}});
    let defs = json!({
        OBJECT_META: {
            "type": "object",
            "properties": {
                "annotations": string_map,
                "creationTimestamp": {"allOf": [{"$ref": time}]},
                "deletionGracePeriodSeconds": {"type": "integer", "format": "int64"},
                "deletionTimestamp": {"allOf": [{"$ref": time}]},
                "finalizers": {
                    "type": "array",
                    "items": {"type": "string", "default": ""},
                    "x-kubernetes-list-type": "set",
                    "x-kubernetes-patch-strategy": "merge"
                },
                "generateName": {"type": "string"},
                "generation": {"type": "integer", "format": "int64"},
                "labels": string_map,
                "managedFields": {
                    "type": "array",
                    "items": {"allOf": [{"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry"}]},
                    "x-kubernetes-list-type": "atomic"
                },
                "name": {"type": "string"},
                "namespace": {"type": "string"},
                "ownerReferences": {
                    "type": "array",
                    "items": {"allOf": [{"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference"}]},
                    "x-kubernetes-list-map-keys": ["uid"],
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-patch-merge-key": "uid",
                    "x-kubernetes-patch-strategy": "merge"
                },
                "resourceVersion": {"type": "string"},
                "selfLink": {"type": "string"},
                "uid": {"type": "string"}
            }
        },
        "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference": {
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string", "default": ""},
                "blockOwnerDeletion": {"type": "boolean"},
                "controller": {"type": "boolean"},
                "kind": {"type": "string", "default": ""},
                "name": {"type": "string", "default": ""},
                "uid": {"type": "string", "default": ""}
            },
            "x-kubernetes-map-type": "atomic"
        },
        "io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry": {
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "fieldsType": {"type": "string"},
                "fieldsV1": {"allOf": [{"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1"}]},
                "manager": {"type": "string"},
                "operation": {"type": "string"},
                "subresource": {"type": "string"},
                "time": {"allOf": [{"$ref": time}]}
            }
        },
        "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1": {"type": "object"},
        "io.k8s.apimachinery.pkg.apis.meta.v1.Time": {"type": "string", "format": "date-time"}
    });
    match defs {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Adds `apiVersion`, `kind` and an ObjectMeta `metadata` to an object schema, as the CRD
/// OpenAPI builder does for the root and for `x-kubernetes-embedded-resource` objects.
fn add_type_meta(s: &mut Value) {
    let Value::Object(obj) = s else {
        return;
    };
    let props = obj
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(props) = props {
        props
            .entry("apiVersion")
            .or_insert_with(|| json!({"type": "string"}));
        props
            .entry("kind")
            .or_insert_with(|| json!({"type": "string"}));
        props.insert(
            "metadata".to_string(),
            json!({"$ref": format!("#/definitions/{OBJECT_META}")}),
        );
    }
}

/// Walks a CRD schema and gives embedded resources their type meta.
fn add_embedded_type_meta(s: &mut Value) {
    let embedded = s.get("x-kubernetes-embedded-resource") == Some(&Value::Bool(true));
    if let Value::Object(obj) = s {
        for key in ["properties", "patternProperties"] {
            if let Some(Value::Object(props)) = obj.get_mut(key) {
                props.values_mut().for_each(add_embedded_type_meta);
            }
        }
        for key in ["items", "additionalProperties"] {
            if let Some(child) = obj.get_mut(key) {
                if child.is_object() {
                    add_embedded_type_meta(child);
                }
            }
        }
    }
    if embedded {
        add_type_meta(s);
    }
}

impl Schema {
    /// Builds the schema of the definition `root` out of OpenAPI `definitions` (an OpenAPI v3
    /// document's `components.schemas`, or a v2 document's `definitions`; references may use
    /// either prefix, only the name after the last `/` matters). Only definitions reachable
    /// from `root` are converted.
    pub fn from_openapi(
        definitions: &Map<String, Value>,
        root: &str,
    ) -> Result<Schema, SchemaError> {
        Converter::new(definitions).run(root)
    }

    /// Builds the schema of a custom resource from its version's `openAPIV3Schema` (inline, no
    /// references). The root gets `apiVersion`, `kind` and ObjectMeta's `metadata`
    /// (ownerReferences keyed by uid, finalizers a set, labels and annotations granular maps,
    /// managedFields atomic), as upstream's CRD OpenAPI builder does.
    pub fn from_crd(schema: &Value) -> Result<Schema, SchemaError> {
        let mut root = schema.clone();
        if !root.is_object() {
            return Err(SchemaError::Invalid(
                "openAPIV3Schema must be an object".to_string(),
            ));
        }
        add_embedded_type_meta(&mut root);
        add_type_meta(&mut root);
        let mut definitions = object_meta_definitions();
        definitions.insert(CRD_ROOT.to_string(), root);
        Converter::new(&definitions).run(CRD_ROOT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Handler;

    fn field<'a>(s: &'a Schema, tr: &'a TypeRef, name: &str) -> &'a TypeRef {
        match s.resolve(tr).and_then(|v| v.handler()) {
            Some(Handler::Map(m, _)) => m.type_of(name),
            other => panic!("not a map: {other:?}"),
        }
    }

    fn list_rel(s: &Schema, tr: &TypeRef) -> ListRelationship {
        match s.resolve(tr).and_then(|v| v.handler()) {
            Some(Handler::List(l)) => l.relationship.clone(),
            other => panic!("not a list: {other:?}"),
        }
    }

    #[test]
    fn list_and_map_markers() {
        let defs = json!({
            "T": {
                "type": "object",
                "properties": {
                    "atomicByDefault": {"type": "array", "items": {"type": "string"}},
                    "set": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                    "map": {"type": "array", "items": {"$ref": "#/components/schemas/Item"},
                            "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name", "proto"]},
                    "patchMerge": {"type": "array", "items": {"allOf": [{"$ref": "#/definitions/Item"}]},
                                   "x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "name"},
                    "patchSet": {"type": "array", "items": {"type": "string"}, "x-kubernetes-patch-strategy": "merge"},
                    "selector": {"allOf": [{"$ref": "#/components/schemas/Item"}], "x-kubernetes-map-type": "atomic"},
                    "item": {"$ref": "#/components/schemas/Item"}
                }
            },
            "Item": {"type": "object", "properties": {"name": {"type": "string"}}}
        });
        let Value::Object(defs) = defs else {
            unreachable!()
        };
        let s = Schema::from_openapi(&defs, "T").expect("schema");
        let root = s.root().clone();
        assert_eq!(
            list_rel(&s, field(&s, &root, "atomicByDefault")),
            ListRelationship::Atomic
        );
        assert_eq!(
            list_rel(&s, field(&s, &root, "set")),
            ListRelationship::Associative(vec![])
        );
        assert_eq!(
            list_rel(&s, field(&s, &root, "map")),
            ListRelationship::Associative(vec!["name".into(), "proto".into()])
        );
        assert_eq!(
            list_rel(&s, field(&s, &root, "patchMerge")),
            ListRelationship::Associative(vec!["name".into()])
        );
        assert_eq!(
            list_rel(&s, field(&s, &root, "patchSet")),
            ListRelationship::Associative(vec![])
        );
        let sel = s.resolve(field(&s, &root, "selector")).expect("resolves");
        assert!(sel.map_atomic);
        let item = s.resolve(field(&s, &root, "item")).expect("resolves");
        assert!(!item.map_atomic);
        // Unknown fields of a struct have no type.
        assert!(field(&s, &root, "nope").is_nothing());
    }

    #[test]
    fn missing_reference_is_an_error() {
        let Value::Object(defs) =
            json!({"T": {"type": "object", "properties": {"a": {"$ref": "#/definitions/Nope"}}}})
        else {
            unreachable!()
        };
        assert!(matches!(
            Schema::from_openapi(&defs, "T"),
            Err(SchemaError::MissingDefinition(n)) if n == "Nope"
        ));
        assert!(matches!(
            Schema::from_openapi(&defs, "X"),
            Err(SchemaError::MissingDefinition(_))
        ));
    }

    #[test]
    fn crd_gets_object_meta() {
        let s = Schema::from_crd(&json!({
            "type": "object",
            "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
        }))
        .expect("schema");
        let root = s.root().clone();
        let meta = field(&s, &root, "metadata").clone();
        assert_eq!(
            list_rel(&s, field(&s, &meta, "ownerReferences")),
            ListRelationship::Associative(vec!["uid".into()])
        );
        assert_eq!(
            list_rel(&s, field(&s, &meta, "finalizers")),
            ListRelationship::Associative(vec![])
        );
        assert_eq!(
            list_rel(&s, field(&s, &meta, "managedFields")),
            ListRelationship::Atomic
        );
        let spec = field(&s, &root, "spec").clone();
        // Preserved unknown fields are deduced, not rejected.
        assert!(!field(&s, &spec, "anything").is_nothing());
    }
}
