//! The model: every definition in the canonical (v2) form, with ferry's additions (list kinds,
//! group-version-kind markers, strategic-merge patch metadata), built once from the types.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use k8s_openapi::api;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::schemars::generate::SchemaSettings;
use k8s_openapi::schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::kinds::KINDS;
use crate::patch::{schema_for, ListStrategy, PatchSchema};

use super::*;

// ---------------------------------------------------------------------------
// The types
// ---------------------------------------------------------------------------

/// Types the operations use that are not kinds of their own (in
/// `k8s-openapi`): their definition names.
pub(super) struct Aux {
    pub(super) delete_options: String,
    pub(super) list_meta: String,
    pub(super) patch: String,
    pub(super) status: String,
    pub(super) watch_event: String,
}

// ---------------------------------------------------------------------------
// The model: every definition, canonical (v2) form
// ---------------------------------------------------------------------------

/// Every definition, in the canonical form (v2: references
/// `#/definitions/<name>`, `$ref` with siblings allowed), with ferry's
/// additions, and the kind → definition index.
pub(super) struct Model {
    pub(super) defs: Map<String, Value>,
    /// `(group, version, kind)` → definition name; list kinds included.
    pub(super) by_gvk: HashMap<(String, String, String), String>,
    pub(super) aux: Aux,
    /// Fields to which two kinds' patch metadata gave different merge keys
    /// (must stay empty; checked by a test).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) patch_conflicts: Vec<String>,
}

impl Model {
    pub(super) fn def_for(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        self.by_gvk
            .get(&(group.to_string(), version.to_string(), kind.to_string()))
            .map(String::as_str)
    }

    /// The definition name of the kind a subresource answers with, if that
    /// kind has one.
    #[cfg(test)]
    pub(super) fn sub_def(
        &self,
        r: &crate::registry::ResourceInfo,
        s: &crate::registry::Subresource,
    ) -> Option<&str> {
        let (g, v) = sub_group_version(r, s);
        self.def_for(g, v, s.kind)
    }
}

pub(super) static MODEL: LazyLock<Model> = LazyLock::new(build_model);

/// The kinds of the group-versions served (optional ones only when turned on).
fn served_kinds() -> impl Iterator<Item = &'static crate::kinds::KindType> {
    KINDS
        .iter()
        .filter(|k| crate::registry::serves_version(k.group, k.version))
}

/// A generator of definitions in the canonical (v2) form, as the types derive them.
pub(super) fn generator() -> SchemaGenerator {
    SchemaSettings::draft07()
        .with(|s| {
            s.definitions_path = "/definitions".into();
            s.meta_schema = None;
            s.transforms = Vec::new();
            s.inline_subschemas = false;
        })
        .into_generator()
}

pub(super) fn build_model() -> Model {
    let mut generator = generator();
    let mut by_gvk = HashMap::new();
    for k in served_kinds() {
        (k.register)(&mut generator);
        by_gvk.insert(
            (
                k.group.to_string(),
                k.version.to_string(),
                k.kind.to_string(),
            ),
            (k.name)().into_owned(),
        );
    }
    let aux = Aux {
        delete_options: aux::<meta::DeleteOptions>(&mut generator),
        list_meta: aux::<meta::ListMeta>(&mut generator),
        patch: aux::<meta::Patch>(&mut generator),
        status: aux::<meta::Status>(&mut generator),
        watch_event: aux::<meta::WatchEvent<api::core::v1::Pod>>(&mut generator),
    };
    let mut defs = generator.take_definitions(false);

    // `JSONSchemaPropsOrArray`, `...OrBool` and `...OrStringArray` are
    // described by their description alone upstream: `oneOf` is not Swagger
    // 2.0, and strict decoding does not look inside them either.
    for def in defs.values_mut() {
        if let Value::Object(d) = def {
            d.remove("oneOf");
        }
    }

    // Upstream's representations of the two special scalars.
    if let Some(Value::Object(d)) = defs.get_mut(INT_OR_STRING) {
        d.insert("type".into(), "string".into());
        d.insert("format".into(), "int-or-string".into());
        d.insert("x-kubernetes-int-or-string".into(), true.into());
    }
    if let Some(Value::Object(d)) = defs.get_mut(QUANTITY) {
        d.remove("x-kubernetes-int-or-string");
        d.insert("type".into(), "string".into());
    }

    // Kinds carry their group-version-kind. Their `metadata` is never required upstream (the
    // Rust types hold it unconditionally, so the derived schema lists it): kubectl's
    // client-side validation would refuse a TokenReview or SubjectAccessReview without one.
    for k in served_kinds() {
        if let Some(Value::Object(d)) = defs.get_mut((k.name)().as_ref()) {
            if let Some(Value::Array(required)) = d.get_mut("required") {
                required.retain(|field| field != "metadata");
                if required.is_empty() {
                    d.remove("required");
                }
            }
            d.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([gvk(k.group, k.version, k.kind)]),
            );
        }
    }
    // Upstream lists every group-version for the kinds every group serves.
    let mut group_versions: Vec<(&str, &str)> = Vec::new();
    for r in crate::registry::served() {
        if !group_versions.contains(&(r.group, r.version)) {
            group_versions.push((r.group, r.version));
        }
    }
    for (name, kind) in [
        (&aux.delete_options, "DeleteOptions"),
        (&aux.watch_event, "WatchEvent"),
    ] {
        let all: Vec<Value> = group_versions
            .iter()
            .map(|(g, v)| gvk(g, v, kind))
            .collect();
        if let Some(Value::Object(d)) = defs.get_mut(name.as_str()) {
            d.insert("x-kubernetes-group-version-kind".into(), Value::Array(all));
        }
    }

    // List kinds.
    for r in crate::registry::served().filter(|r| r.has_verb("list")) {
        let Some(item) = by_gvk
            .get(&(
                r.group.to_string(),
                r.version.to_string(),
                r.kind.to_string(),
            ))
            .cloned()
        else {
            continue;
        };
        let list_name = format!("{item}List");
        let list_kind = r.list_kind();
        let item_def = defs.get(&item).cloned().unwrap_or(Value::Null);
        let mut props = Map::new();
        if let Some(p) = item_def.pointer("/properties/apiVersion") {
            props.insert("apiVersion".into(), p.clone());
        }
        props.insert(
            "items".into(),
            json!({
                "description": format!("The {} objects.", r.kind),
                "type": "array",
                "items": { "$ref": format!("{V2_REF}{item}") },
            }),
        );
        if let Some(p) = item_def.pointer("/properties/kind") {
            props.insert("kind".into(), p.clone());
        }
        props.insert(
            "metadata".into(),
            json!({
                "$ref": format!("{V2_REF}{}", aux.list_meta),
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
            }),
        );
        defs.insert(
            list_name.clone(),
            json!({
                "description": format!("{list_kind} is a list of {}.", r.kind),
                "type": "object",
                "properties": props,
                "required": ["items"],
                "x-kubernetes-group-version-kind": [gvk(r.group, r.version, &list_kind)],
            }),
        );
        by_gvk.insert(
            (r.group.to_string(), r.version.to_string(), list_kind),
            list_name,
        );
    }

    let patch_conflicts = annotate_patch_metadata(&mut defs, &by_gvk);
    for (def, field, list_type, keys) in LIST_TYPES {
        if let Some(Value::Object(p)) = defs
            .get_mut(*def)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(*field))
        {
            p.insert("x-kubernetes-list-type".into(), (*list_type).into());
            if !keys.is_empty() {
                p.insert("x-kubernetes-list-map-keys".into(), json!(keys));
            }
        }
    }
    mark_map_types(&mut defs);
    for (def, field, default) in DEFAULTS {
        if let Some(Value::Object(p)) = defs
            .get_mut(*def)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(*field))
        {
            p.insert("default".into(), (*default).into());
        }
    }

    Model {
        defs,
        by_gvk,
        aux,
        patch_conflicts,
    }
}

/// Adds `T`'s schema and returns its definition name.
pub(super) fn aux<T: JsonSchema>(generator: &mut SchemaGenerator) -> String {
    generator.subschema_for::<T>();
    T::schema_name().into_owned()
}

/// An `x-kubernetes-group-version-kind` entry.
pub(super) fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({ "group": group, "kind": kind, "version": version })
}

/// `x-kubernetes-list-type` (and `x-kubernetes-list-map-keys`) of the lists
/// whose upstream `+listType` markers are known here: definition, field,
/// list type, map keys.
pub(super) static LIST_TYPES: &[(&str, &str, &str, &[&str])] = &[
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "finalizers",
        "set",
        &[],
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "ownerReferences",
        "map",
        &["uid"],
    ),
    (
        "io.k8s.api.core.v1.Container",
        "ports",
        "map",
        &["containerPort", "protocol"],
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "ports",
        "map",
        &["containerPort", "protocol"],
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "ports",
        "map",
        &["port", "protocol"],
    ),
];

/// `x-kubernetes-map-type` of the structs and maps upstream marks `// +structType=` or
/// `// +mapType=` (k8s.io/api and k8s.io/apimachinery v0.33, Kubernetes v1.33), for the
/// group-versions ferry has types of: definition, field (`None`: the definition itself, where
/// upstream puts a struct's marker; `Some`: a map field, or a field that overrides the marker of
/// the struct it refers to), map type. Server-side apply owns an atomic struct or map as one
/// leaf and replaces it whole. Upstream's markers in group-versions ferry has no types of
/// (admissionregistration v1beta1, apps v1beta2 and extensions v1beta1 `ScaleStatus.selector`,
/// node v1alpha1 and v1beta1 `Scheduling.nodeSelector`) are not listed.
pub(super) static MAP_TYPES: &[(&str, Option<&str>, &str)] = &[
    // k8s.io/apimachinery pkg/apis/meta/v1
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
        None,
        "atomic",
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference",
        None,
        "atomic",
    ),
    // admissionregistration/v1
    (
        "io.k8s.api.admissionregistration.v1.MatchResources",
        None,
        "atomic",
    ),
    (
        "io.k8s.api.admissionregistration.v1.NamedRuleWithOperations",
        None,
        "atomic",
    ),
    (
        "io.k8s.api.admissionregistration.v1.ParamKind",
        None,
        "atomic",
    ),
    (
        "io.k8s.api.admissionregistration.v1.ParamRef",
        None,
        "atomic",
    ),
    (
        "io.k8s.api.admissionregistration.v1.Variable",
        None,
        "atomic",
    ),
    // admissionregistration/v1alpha1 (served when turned on)
    (
        "io.k8s.api.admissionregistration.v1alpha1.MatchResources",
        None,
        "atomic",
    ),
    (
        "io.k8s.api.admissionregistration.v1alpha1.NamedRuleWithOperations",
        None,
        "atomic",
    ),
    (
        "io.k8s.api.admissionregistration.v1alpha1.ParamKind",
        None,
        "atomic",
    ),
    (
        "io.k8s.api.admissionregistration.v1alpha1.ParamRef",
        None,
        "atomic",
    ),
    // autoscaling/v1
    (
        "io.k8s.api.autoscaling.v1.CrossVersionObjectReference",
        None,
        "atomic",
    ),
    // core/v1
    ("io.k8s.api.core.v1.ConfigMapKeySelector", None, "atomic"),
    ("io.k8s.api.core.v1.EndpointAddress", None, "atomic"),
    ("io.k8s.api.core.v1.EndpointPort", None, "atomic"),
    ("io.k8s.api.core.v1.LocalObjectReference", None, "atomic"),
    ("io.k8s.api.core.v1.NodeSelector", None, "atomic"),
    ("io.k8s.api.core.v1.NodeSelectorTerm", None, "atomic"),
    ("io.k8s.api.core.v1.ObjectFieldSelector", None, "atomic"),
    ("io.k8s.api.core.v1.ObjectReference", None, "atomic"),
    ("io.k8s.api.core.v1.ResourceFieldSelector", None, "atomic"),
    ("io.k8s.api.core.v1.ScopeSelector", None, "atomic"),
    ("io.k8s.api.core.v1.SecretKeySelector", None, "atomic"),
    ("io.k8s.api.core.v1.SecretReference", None, "atomic"),
    ("io.k8s.api.core.v1.TopologySelectorTerm", None, "atomic"),
    (
        "io.k8s.api.core.v1.TypedLocalObjectReference",
        None,
        "atomic",
    ),
    (
        "io.k8s.api.core.v1.PersistentVolumeClaimStatus",
        Some("allocatedResourceStatuses"),
        "granular",
    ),
    (
        "io.k8s.api.core.v1.PersistentVolumeSpec",
        Some("claimRef"),
        "granular",
    ),
    ("io.k8s.api.core.v1.PodSpec", Some("nodeSelector"), "atomic"),
    (
        "io.k8s.api.core.v1.ReplicationControllerSpec",
        Some("selector"),
        "atomic",
    ),
    ("io.k8s.api.core.v1.ServiceSpec", Some("selector"), "atomic"),
    // discovery/v1
    ("io.k8s.api.discovery.v1.EndpointPort", None, "atomic"),
    // networking/v1
    (
        "io.k8s.api.networking.v1.ServiceBackendPort",
        None,
        "atomic",
    ),
    // node/v1
    (
        "io.k8s.api.node.v1.Scheduling",
        Some("nodeSelector"),
        "atomic",
    ),
    // rbac/v1
    ("io.k8s.api.rbac.v1.RoleRef", None, "atomic"),
    ("io.k8s.api.rbac.v1.Subject", None, "atomic"),
];

/// Writes [`MAP_TYPES`] on the definitions (and fields) there are; those of group-versions not
/// served are absent.
fn mark_map_types(defs: &mut Map<String, Value>) {
    for (def, field, map_type) in MAP_TYPES {
        let target = match field {
            None => defs.get_mut(*def),
            Some(field) => defs
                .get_mut(*def)
                .and_then(|d| d.get_mut("properties"))
                .and_then(|p| p.get_mut(*field)),
        };
        if let Some(Value::Object(t)) = target {
            t.insert("x-kubernetes-map-type".into(), (*map_type).into());
        }
    }
}

/// The `default`s upstream's OpenAPI publishes for list-map keys (`+default=` markers):
/// server-side apply merges an item that omits such a key as if it had the default, so a port
/// applied again without its protocol is the same port (definition, field, default).
pub(super) static DEFAULTS: &[(&str, &str, &str)] = &[
    ("io.k8s.api.core.v1.ContainerPort", "protocol", "TCP"),
    ("io.k8s.api.core.v1.ServicePort", "protocol", "TCP"),
];

/// The definition a schema refers to (`{"$ref": "#/definitions/<name>"}`).
pub(super) fn ref_name(schema: &Value) -> Option<&str> {
    schema.get("$ref")?.as_str()?.strip_prefix(V2_REF)
}

/// Longest field path (in field names) the walk for patch metadata follows;
/// the deepest path [`crate::patch`] knows is a CronJob's
/// `spec.jobTemplate.spec.template.spec.containers.env` (7).
pub(super) const PATCH_WALK_DEPTH: usize = 8;

/// Strategic-merge metadata of one field.
#[derive(Default, Clone, PartialEq, Eq)]
pub(super) struct PatchMeta {
    pub(super) merge: bool,
    pub(super) retain_keys: bool,
    pub(super) key: Option<&'static str>,
}

/// Walks every kind's schema along field paths, asks [`schema_for`] how
/// each list merges (and which maps retain keys), and writes the answer on
/// the definition that declares the field as upstream does
/// (`x-kubernetes-patch-strategy: merge` / `retainKeys` / `merge,retainKeys`
/// and `x-kubernetes-patch-merge-key`). Returns the fields that got two
/// different answers.
pub(super) fn annotate_patch_metadata(
    defs: &mut Map<String, Value>,
    by_gvk: &HashMap<(String, String, String), String>,
) -> Vec<String> {
    let mut found: BTreeMap<(String, String), PatchMeta> = BTreeMap::new();
    let mut conflicts = Vec::new();
    for r in crate::registry::served() {
        let key = (
            r.group.to_string(),
            r.version.to_string(),
            r.kind.to_string(),
        );
        let Some(def) = by_gvk.get(&key) else {
            continue;
        };
        let schema = schema_for(r.group, r.kind);
        let mut path = Vec::new();
        walk_patch(defs, def, &schema, &mut path, &mut found, &mut conflicts);
    }
    for ((def, field), meta) in found {
        let Some(Value::Object(p)) = defs
            .get_mut(&def)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(&field))
        else {
            continue;
        };
        let strategy = match (meta.merge, meta.retain_keys) {
            (true, true) => "merge,retainKeys",
            (true, false) => "merge",
            (false, true) => "retainKeys",
            (false, false) => continue,
        };
        if let Some(key) = meta.key {
            p.insert("x-kubernetes-patch-merge-key".into(), key.into());
        }
        p.insert("x-kubernetes-patch-strategy".into(), strategy.into());
    }
    conflicts
}

pub(super) fn walk_patch(
    defs: &Map<String, Value>,
    def: &str,
    schema: &dyn PatchSchema,
    path: &mut Vec<String>,
    found: &mut BTreeMap<(String, String), PatchMeta>,
    conflicts: &mut Vec<String>,
) {
    if path.len() >= PATCH_WALK_DEPTH {
        return;
    }
    let Some(props) = defs
        .get(def)
        .and_then(|d| d.get("properties"))
        .and_then(Value::as_object)
    else {
        return;
    };
    for (field, prop) in props {
        path.push(field.clone());
        let strs: Vec<&str> = path.iter().map(String::as_str).collect();
        let mut meta = PatchMeta::default();
        let (target, is_list) = match ref_name(prop) {
            Some(r) => (Some(r), false),
            None if prop.get("type").and_then(Value::as_str) == Some("array") => {
                (prop.get("items").and_then(ref_name), true)
            }
            None => (None, false),
        };
        if is_list {
            match schema.list_strategy(&strs) {
                ListStrategy::MergeByKey(k) => {
                    meta.merge = true;
                    meta.key = Some(k);
                }
                ListStrategy::MergePrimitives => meta.merge = true,
                ListStrategy::Replace => {}
            }
        }
        meta.retain_keys = schema.retain_keys(&strs);
        if meta != PatchMeta::default() {
            let entry = found.entry((def.to_string(), field.clone())).or_default();
            if entry.key.is_some() && meta.key.is_some() && entry.key != meta.key {
                conflicts.push(format!("{def}.{field}: {:?} vs {:?}", entry.key, meta.key));
            }
            entry.merge |= meta.merge;
            entry.retain_keys |= meta.retain_keys;
            entry.key = entry.key.or(meta.key);
        }
        if let Some(t) = target {
            walk_patch(defs, t, schema, path, found, conflicts);
        }
        path.pop();
    }
}
