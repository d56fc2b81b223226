//! The OpenAPI documents ferry serves (`/openapi/v2`, `/openapi/v3` and
//! `/openapi/v3/<group-version>`), generated from the `k8s-openapi` types'
//! `schemars` schemas, and the strict-decoding check that uses them
//! ([`unknown_fields`]).
//!
//! What kubectl needs from them, and so what this module takes care of:
//!
//! * definitions named as upstream names them
//!   (`io.k8s.api.apps.v1.Deployment`), descriptions kept (`kubectl
//!   explain` prints them), top-level kinds marked with
//!   `x-kubernetes-group-version-kind` (`kubectl explain` finds the kind's
//!   schema by it);
//! * strategic-merge metadata (`x-kubernetes-patch-strategy`,
//!   `x-kubernetes-patch-merge-key`) on the lists and maps that have it,
//!   taken from [`crate::patch::schema_for`] so the documents and ferry's own
//!   patching agree (`kubectl apply` computes its patch from them);
//! * one path per collection, item and subresource with the operations the
//!   registry's verbs allow, each marked with `x-kubernetes-action` and
//!   `x-kubernetes-group-version-kind`, and `fieldValidation` among the
//!   query parameters of every POST, PUT and PATCH: kubectl looks for it
//!   there to decide that the server validates fields itself.
//!
//! `k8s-openapi` follows upstream's v2 conventions (a `$ref` may have a
//! `description` beside it, `IntOrString` and `Quantity` are strings), and
//! so does [`v2`]. The v3 documents follow upstream's v3 conventions: a
//! `$ref` with siblings is wrapped in `allOf`, `IntOrString` is `oneOf`
//! integer or string and `Quantity` `oneOf` string or number (so `kubectl
//! explain` prints `<IntOrString>` and `<Quantity>` as upstream's does).
//! List kinds (`DeploymentList`) have no type in `k8s-openapi`; their
//! schemas are built here.
//!
//! kubectl fetches `/openapi/v2` as protobuf (gnostic's `openapi.v2.Document`)
//! and does not accept JSON there: [`v2_protobuf`] is that encoding.
//!
//! Everything is generated on first use and cached for the life of the
//! process; the documents never change while it runs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, LazyLock, OnceLock};

use k8s_openapi::api;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::schemars::generate::SchemaSettings;
use k8s_openapi::schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::kinds::KINDS;
use crate::patch::{schema_for, ListStrategy, PatchSchema};
use crate::registry::{ResourceInfo, Subresource, RESOURCES};

/// `info.version` of every document: the Kubernetes version ferry follows.
const KUBERNETES_VERSION: &str = "v1.33.0";

/// Prefix of a reference in the canonical (v2) form.
const V2_REF: &str = "#/definitions/";

/// Prefix of a reference in a v3 document.
const V3_REF: &str = "#/components/schemas/";

/// Upstream's name of `IntOrString`'s definition.
const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";

/// Upstream's name of `Quantity`'s definition.
const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";

/// The media types a response can have.
const PRODUCES: &[&str] = &["application/json", "application/yaml"];

/// The media types of a list response (a watch streams JSON).
const PRODUCES_LIST: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/json;stream=watch",
];

/// The media types of a PATCH request body.
const PATCH_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/// `GET /openapi/v3`: every document [`v3_group_version`] serves, by path
/// (`"api/v1"`, `"apis/apps/v1"`, `"apis/apps"`, `"api"`, `"apis"`), each
/// with `serverRelativeURL` `/openapi/v3/<path>?hash=<HEX>` where the hash is
/// of the document's content (clients cache documents by that URL).
pub fn v3_index() -> Value {
    static INDEX: LazyLock<Value> = LazyLock::new(|| {
        let mut paths = Map::new();
        for path in V3_DOCS.keys() {
            if let Some(hash) = v3_hash(path) {
                paths.insert(
                    path.clone(),
                    json!({ "serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}") }),
                );
            }
        }
        json!({ "paths": paths })
    });
    INDEX.clone()
}

/// `GET /openapi/v3/<path>`: the OpenAPI 3.0 document of one group-version
/// (`"api/v1"`, `"apis/apps/v1"`, ...), with the paths of its resources and
/// the schemas they use; or of the discovery endpoints (`"api"`, `"apis"`,
/// `"apis/<group>"`). `None` for any other path.
pub fn v3_group_version(path: &str) -> Option<Arc<Value>> {
    let (target, cell) = V3_DOCS.get_key_value(path)?;
    Some(cell.get_or_init(|| Arc::new(build_v3_doc(target))).clone())
}

/// The hash in [`v3_index`]'s URL of the document at `path` (uppercase hex;
/// also usable as its ETag). `None` for a path [`v3_group_version`] does not
/// serve.
pub fn v3_hash(path: &str) -> Option<&'static str> {
    static HASHES: LazyLock<HashMap<String, String>> = LazyLock::new(|| {
        V3_DOCS
            .keys()
            .filter_map(|p| {
                let doc = v3_group_version(p)?;
                Some((p.clone(), content_hash(&doc)))
            })
            .collect()
    });
    HASHES.get(path).map(String::as_str)
}

/// `GET /openapi/v2` as JSON: a Swagger 2.0 document with every definition
/// and every path of every group-version.
pub fn v2() -> Arc<Value> {
    static V2: LazyLock<Arc<Value>> = LazyLock::new(|| Arc::new(build_v2_doc()));
    V2.clone()
}

/// `GET /openapi/v2` as kubectl asks for it (`Accept:
/// application/com.github.proto-openapi.spec.v2@v1.0+protobuf`): [`v2`]
/// encoded as gnostic's `openapi.v2.Document`.
pub fn v2_protobuf() -> Arc<Vec<u8>> {
    static PB: LazyLock<Arc<Vec<u8>>> = LazyLock::new(|| Arc::new(pb::document(&v2())));
    PB.clone()
}

/// The hash of [`v2`]'s content (uppercase hex), for its ETag.
pub fn v2_hash() -> &'static str {
    static HASH: LazyLock<String> = LazyLock::new(|| content_hash(&v2()));
    &HASH
}

/// The fields of `object` (an object of `kind` in `group`/`version`) that
/// its schema does not know, as upstream's strict decoding reports them:
/// paths such as `"spec.foo"` or `"spec.template.spec.containers[0].imagee"`
/// (upstream's message is `unknown field "<path>"`), in the object's key
/// order. Values of maps are checked against the map's value schema;
/// free-form values (`RawExtension`, maps of strings, schemas marked
/// `x-kubernetes-preserve-unknown-fields`) are not looked into. Nothing is
/// reported for a kind ferry has no schema for (custom resources).
pub fn unknown_fields(group: &str, version: &str, kind: &str, object: &Value) -> Vec<String> {
    prune_unknown_fields(group, version, kind, &mut object.clone())
}

/// Like [`unknown_fields`], and removes those fields from `object`, as upstream's decoding
/// into the typed object drops them (`fieldValidation=Warn|Ignore`).
pub fn prune_unknown_fields(
    group: &str,
    version: &str,
    kind: &str,
    object: &mut Value,
) -> Vec<String> {
    let model = &*MODEL;
    let mut out = Vec::new();
    let Some(name) = model.def_for(group, version, kind) else {
        return out;
    };
    let root = json!({ "$ref": format!("{V2_REF}{name}") });
    let mut path = String::new();
    prune_unknown(&model.defs, &root, object, &mut path, &mut out);
    out
}

fn prune_unknown(
    defs: &Map<String, Value>,
    schema: &Value,
    value: &mut Value,
    path: &mut String,
    out: &mut Vec<String>,
) {
    let schema = resolve(defs, schema);
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    match value {
        Value::Object(object) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let values = schema.get("additionalProperties").filter(|s| s.is_object());
            if properties.is_none() && values.is_none() {
                return;
            }
            let mut unknown = Vec::new();
            for (key, v) in object.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                match properties.map(|p| p.get(key)) {
                    Some(Some(s)) => prune_unknown(defs, s, v, path, out),
                    Some(None) => {
                        out.push(path.clone());
                        unknown.push(key.clone());
                    }
                    None => {
                        if let Some(s) = values {
                            prune_unknown(defs, s, v, path, out);
                        }
                    }
                }
                path.truncate(len);
            }
            for key in unknown {
                object.remove(&key);
            }
        }
        Value::Array(items) => {
            let Some(item_schema) = schema.get("items") else {
                return;
            };
            for (i, v) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                prune_unknown(defs, item_schema, v, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// The types
// ---------------------------------------------------------------------------

/// Types the operations use that are not kinds of their own (in
/// `k8s-openapi`): their definition names.
struct Aux {
    delete_options: String,
    list_meta: String,
    patch: String,
    status: String,
    watch_event: String,
}

// ---------------------------------------------------------------------------
// The model: every definition, canonical (v2) form
// ---------------------------------------------------------------------------

/// Every definition, in the canonical form (v2: references
/// `#/definitions/<name>`, `$ref` with siblings allowed), with ferry's
/// additions, and the kind → definition index.
struct Model {
    defs: Map<String, Value>,
    /// `(group, version, kind)` → definition name; list kinds included.
    by_gvk: HashMap<(String, String, String), String>,
    aux: Aux,
    /// Fields to which two kinds' patch metadata gave different merge keys
    /// (must stay empty; checked by a test).
    #[cfg_attr(not(test), allow(dead_code))]
    patch_conflicts: Vec<String>,
}

impl Model {
    fn def_for(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        self.by_gvk
            .get(&(group.to_string(), version.to_string(), kind.to_string()))
            .map(String::as_str)
    }

    /// The definition name of the kind a subresource answers with, if that
    /// kind has one.
    fn sub_def(&self, r: &ResourceInfo, s: &Subresource) -> Option<&str> {
        let (g, v) = sub_group_version(r, s);
        self.def_for(g, v, s.kind)
    }
}

static MODEL: LazyLock<Model> = LazyLock::new(build_model);

fn build_model() -> Model {
    let mut generator = SchemaSettings::draft07()
        .with(|s| {
            s.definitions_path = "/definitions".into();
            s.meta_schema = None;
            s.transforms = Vec::new();
            s.inline_subschemas = false;
        })
        .into_generator();
    let mut by_gvk = HashMap::new();
    for k in KINDS {
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

    // Kinds carry their group-version-kind.
    for k in KINDS {
        if let Some(Value::Object(d)) = defs.get_mut((k.name)().as_ref()) {
            d.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([gvk(k.group, k.version, k.kind)]),
            );
        }
    }
    // Upstream lists every group-version for the kinds every group serves.
    let mut group_versions: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
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
    for r in RESOURCES.iter().filter(|r| r.has_verb("list")) {
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

    Model {
        defs,
        by_gvk,
        aux,
        patch_conflicts,
    }
}

/// Adds `T`'s schema and returns its definition name.
fn aux<T: JsonSchema>(generator: &mut SchemaGenerator) -> String {
    generator.subschema_for::<T>();
    T::schema_name().into_owned()
}

/// An `x-kubernetes-group-version-kind` entry.
fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({ "group": group, "kind": kind, "version": version })
}

/// `x-kubernetes-list-type` (and `x-kubernetes-list-map-keys`) of the lists
/// whose upstream `+listType` markers are known here: definition, field,
/// list type, map keys.
static LIST_TYPES: &[(&str, &str, &str, &[&str])] = &[
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

/// The definition a schema refers to (`{"$ref": "#/definitions/<name>"}`).
fn ref_name(schema: &Value) -> Option<&str> {
    schema.get("$ref")?.as_str()?.strip_prefix(V2_REF)
}

/// Longest field path (in field names) the walk for patch metadata follows;
/// the deepest path [`crate::patch`] knows is a CronJob's
/// `spec.jobTemplate.spec.template.spec.containers.env` (7).
const PATCH_WALK_DEPTH: usize = 8;

/// Strategic-merge metadata of one field.
#[derive(Default, Clone, PartialEq, Eq)]
struct PatchMeta {
    merge: bool,
    retain_keys: bool,
    key: Option<&'static str>,
}

/// Walks every kind's schema along field paths, asks [`schema_for`] how
/// each list merges (and which maps retain keys), and writes the answer on
/// the definition that declares the field as upstream does
/// (`x-kubernetes-patch-strategy: merge` / `retainKeys` / `merge,retainKeys`
/// and `x-kubernetes-patch-merge-key`). Returns the fields that got two
/// different answers.
fn annotate_patch_metadata(
    defs: &mut Map<String, Value>,
    by_gvk: &HashMap<(String, String, String), String>,
) -> Vec<String> {
    let mut found: BTreeMap<(String, String), PatchMeta> = BTreeMap::new();
    let mut conflicts = Vec::new();
    for r in RESOURCES {
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

fn walk_patch(
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

// ---------------------------------------------------------------------------
// Strict decoding
// ---------------------------------------------------------------------------

/// Follows `$ref`s to the schema they name.
fn resolve<'a>(defs: &'a Map<String, Value>, mut schema: &'a Value) -> &'a Value {
    for _ in 0..8 {
        match ref_name(schema).and_then(|n| defs.get(n)) {
            Some(next) => schema = next,
            None => break,
        }
    }
    schema
}

// ---------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------

/// A parameter of an operation other than the body.
#[derive(Clone, Copy)]
struct Param {
    name: &'static str,
    /// `"path"` or `"query"`.
    location: &'static str,
    /// `"string"`, `"boolean"` or `"integer"`.
    ty: &'static str,
    description: &'static str,
}

const fn query(name: &'static str, ty: &'static str, description: &'static str) -> Param {
    Param {
        name,
        location: "query",
        ty,
        description,
    }
}

const P_NAME: Param = Param {
    name: "name",
    location: "path",
    ty: "string",
    description: "name of the object",
};
const P_NAMESPACE: Param = Param {
    name: "namespace",
    location: "path",
    ty: "string",
    description: "object name and auth scope, such as for teams and projects",
};
const P_PROXY_PATH: Param = Param {
    name: "path",
    location: "path",
    ty: "string",
    description: "path to the resource",
};
const P_PRETTY: Param = query(
    "pretty",
    "string",
    "If 'true', the output is pretty printed.",
);
const P_DRY_RUN: Param = query(
    "dryRun",
    "string",
    "When present, modifications are not persisted. The only valid value is All: all dry-run stages are processed.",
);
const P_FIELD_MANAGER: Param = query(
    "fieldManager",
    "string",
    "A name for the actor or entity making these changes (at most 128 printable characters).",
);
const P_FIELD_VALIDATION: Param = query(
    "fieldValidation",
    "string",
    "What the server does with unknown or duplicate fields in the object: Ignore (drop them silently), Warn (drop them with a warning per field; the default) or Strict (fail the request, listing every such field).",
);
const P_FORCE: Param = query(
    "force",
    "boolean",
    "Take over fields other managers own when they conflict. Only for apply patches (application/apply-patch+yaml).",
);
const LIST_PARAMS: &[Param] = &[
    query("allowWatchBookmarks", "boolean", "Ask for BOOKMARK watch events. Servers may ignore it."),
    query("continue", "string", "The continue token of the previous page of a paginated list."),
    query("fieldSelector", "string", "Restrict the list to objects whose fields match. Defaults to everything."),
    query("labelSelector", "string", "Restrict the list to objects whose labels match. Defaults to everything."),
    query("limit", "integer", "The most objects to return; a continue token in the response fetches the next page."),
    query("resourceVersion", "string", "Which version of the data the list (or watch start) must be at least as new as."),
    query("resourceVersionMatch", "string", "How resourceVersion applies to a list: Exact or NotOlderThan."),
    query("sendInitialEvents", "boolean", "Start a watch with synthetic ADDED events for the current state, then a bookmark."),
    query("timeoutSeconds", "integer", "Time limit of the list or watch call."),
    query("watch", "boolean", "Watch for changes instead of listing (the list's resourceVersion is where the watch starts)."),
];
const DELETE_PARAMS: &[Param] = &[
    query("gracePeriodSeconds", "integer", "Seconds before the object is deleted; 0 deletes immediately. Defaults to the kind's default."),
    query("ignoreStoreReadErrorWithClusterBreakingPotential", "boolean", "Delete an object that cannot be read from storage (corrupt). Dangerous."),
    query("orphanDependents", "boolean", "Deprecated: use propagationPolicy. Whether dependents are orphaned."),
    query("propagationPolicy", "string", "Whether and how garbage collection deletes dependents: Orphan, Background or Foreground."),
];

/// What a request body or response holds.
#[derive(Clone)]
enum Body {
    /// A definition.
    Def(String),
    /// A plain string (logs, proxied responses).
    Text,
}

impl Body {
    fn schema(&self) -> Value {
        match self {
            Body::Def(name) => json!({ "$ref": format!("{V2_REF}{name}") }),
            Body::Text => json!({ "type": "string" }),
        }
    }
}

/// One operation, before it is rendered as v2 or v3.
struct Op {
    method: &'static str,
    action: &'static str,
    id: String,
    description: String,
    tag: String,
    gvk: Option<(&'static str, &'static str, &'static str)>,
    params: Vec<Param>,
    /// Request body: media types and schema.
    body: Option<(&'static [&'static str], Body)>,
    /// Response status codes with their body.
    responses: Vec<(&'static str, Body)>,
    produces: &'static [&'static str],
}

/// `apps` → `Apps`, `rbac.authorization.k8s.io` → `RbacAuthorization`,
/// core → `Core`: the group part of upstream's operation ids.
fn group_camel(group: &str) -> String {
    if group.is_empty() {
        return "Core".into();
    }
    group
        .trim_end_matches(".k8s.io")
        .split('.')
        .map(capitalize)
        .collect()
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The operation tag of a group-version (`apps_v1`, `core_v1`).
fn tag(group: &str, version: &str) -> String {
    let g = group_camel(group);
    let mut c = g.chars();
    let lower: String = match c.next() {
        Some(first) => first.to_lowercase().chain(c).collect(),
        None => String::new(),
    };
    format!("{lower}_{version}")
}

/// The URL prefix of a group-version: `/api/v1`, `/apis/apps/v1`.
fn gv_prefix(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

/// The group and version of a subresource's kind.
fn sub_group_version<'a>(r: &'a ResourceInfo, s: &'a Subresource) -> (&'a str, &'a str) {
    if s.in_parent_group_version() {
        (r.group, r.version)
    } else {
        (s.group, s.version)
    }
}

/// The operations of every path of one group-version, by path.
fn gv_operations(group: &str, version: &str) -> BTreeMap<String, Vec<Op>> {
    let model = &*MODEL;
    let mut paths: BTreeMap<String, Vec<Op>> = BTreeMap::new();
    let prefix = gv_prefix(group, version);
    let gv_camel = format!("{}{}", group_camel(group), capitalize(version));
    let tag = tag(group, version);

    // The group-version's discovery document.
    paths.entry(format!("{prefix}/")).or_default().push(Op {
        method: "get",
        action: "",
        id: format!("get{gv_camel}APIResources"),
        description: "get available resources".into(),
        tag: tag.clone(),
        gvk: None,
        params: Vec::new(),
        body: None,
        responses: vec![("200", Body::Def(model_def_name::<meta::APIResourceList>()))],
        produces: PRODUCES,
    });

    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let Some(def) = model.def_for(r.group, r.version, r.kind) else {
            continue;
        };
        let kind_body = Body::Def(def.to_string());
        let list_body = model
            .def_for(r.group, r.version, &r.list_kind())
            .map(|d| Body::Def(d.to_string()));
        let gvk = Some((r.group, r.version, r.kind));
        let ns = if r.namespaced { "Namespaced" } else { "" };
        let (collection, path_params): (String, Vec<Param>) = if r.namespaced {
            (
                format!("{prefix}/namespaces/{{namespace}}/{}", r.plural),
                vec![P_NAMESPACE],
            )
        } else {
            (format!("{prefix}/{}", r.plural), Vec::new())
        };
        let item = format!("{collection}/{{name}}");
        let item_params: Vec<Param> = [P_NAME]
            .into_iter()
            .chain(path_params.iter().copied())
            .collect();
        let with = |base: &[Param], extra: &[Param]| -> Vec<Param> {
            base.iter()
                .chain(extra)
                .copied()
                .chain([P_PRETTY])
                .collect()
        };
        let write_params = [P_DRY_RUN, P_FIELD_MANAGER, P_FIELD_VALIDATION];
        let patch_params = [P_DRY_RUN, P_FIELD_MANAGER, P_FIELD_VALIDATION, P_FORCE];
        let delete_params: Vec<Param> = [P_DRY_RUN]
            .into_iter()
            .chain(DELETE_PARAMS.iter().copied())
            .collect();
        let op = |method, action, verb: &str, suffix: &str, description: String| Op {
            method,
            action,
            id: format!("{verb}{gv_camel}{ns}{}{suffix}", r.kind),
            description,
            tag: tag.clone(),
            gvk,
            params: Vec::new(),
            body: None,
            responses: Vec::new(),
            produces: PRODUCES,
        };

        // Collection.
        let mut ops = Vec::new();
        if r.has_verb("list") {
            if let Some(list_body) = &list_body {
                ops.push(Op {
                    params: with(&path_params, LIST_PARAMS),
                    responses: vec![("200", list_body.clone())],
                    produces: PRODUCES_LIST,
                    ..op(
                        "get",
                        "list",
                        "list",
                        "",
                        format!("list or watch objects of kind {}", r.kind),
                    )
                });
                if r.namespaced {
                    paths
                        .entry(format!("{prefix}/{}", r.plural))
                        .or_default()
                        .push(Op {
                            params: with(&[], LIST_PARAMS),
                            responses: vec![("200", list_body.clone())],
                            produces: PRODUCES_LIST,
                            id: format!("list{gv_camel}{}ForAllNamespaces", r.kind),
                            ..op(
                                "get",
                                "list",
                                "list",
                                "",
                                format!("list or watch objects of kind {}", r.kind),
                            )
                        });
                }
            }
        }
        if r.has_verb("create") {
            ops.push(Op {
                params: with(&path_params, &write_params),
                body: Some((&["*/*"], kind_body.clone())),
                responses: vec![
                    ("200", kind_body.clone()),
                    ("201", kind_body.clone()),
                    ("202", kind_body.clone()),
                ],
                ..op("post", "post", "create", "", format!("create a {}", r.kind))
            });
        }
        if r.has_verb("deletecollection") {
            let params: Vec<Param> = delete_params
                .iter()
                .copied()
                .chain(LIST_PARAMS.iter().copied())
                .collect();
            ops.push(Op {
                params: with(&path_params, &params),
                body: Some((&["*/*"], Body::Def(model.aux.delete_options.clone()))),
                responses: vec![("200", Body::Def(model.aux.status.clone()))],
                ..op(
                    "delete",
                    "deletecollection",
                    "deletecollection",
                    "",
                    format!("delete collection of {}", r.kind),
                )
            });
        }
        if !ops.is_empty() {
            paths.entry(collection.clone()).or_default().extend(ops);
        }

        // Item.
        let mut ops = Vec::new();
        if r.has_verb("get") {
            ops.push(Op {
                params: with(&item_params, &[]),
                responses: vec![("200", kind_body.clone())],
                ..op(
                    "get",
                    "get",
                    "read",
                    "",
                    format!("read the specified {}", r.kind),
                )
            });
        }
        if r.has_verb("update") {
            ops.push(Op {
                params: with(&item_params, &write_params),
                body: Some((&["*/*"], kind_body.clone())),
                responses: vec![("200", kind_body.clone()), ("201", kind_body.clone())],
                ..op(
                    "put",
                    "put",
                    "replace",
                    "",
                    format!("replace the specified {}", r.kind),
                )
            });
        }
        if r.has_verb("patch") {
            ops.push(Op {
                params: with(&item_params, &patch_params),
                body: Some((PATCH_TYPES, Body::Def(model.aux.patch.clone()))),
                responses: vec![("200", kind_body.clone()), ("201", kind_body.clone())],
                ..op(
                    "patch",
                    "patch",
                    "patch",
                    "",
                    format!("partially update the specified {}", r.kind),
                )
            });
        }
        if r.has_verb("delete") {
            ops.push(Op {
                params: with(&item_params, &delete_params),
                body: Some((&["*/*"], Body::Def(model.aux.delete_options.clone()))),
                responses: vec![
                    ("200", Body::Def(model.aux.status.clone())),
                    ("202", Body::Def(model.aux.status.clone())),
                ],
                ..op(
                    "delete",
                    "delete",
                    "delete",
                    "",
                    format!("delete a {}", r.kind),
                )
            });
        }
        if !ops.is_empty() {
            paths.entry(item.clone()).or_default().extend(ops);
        }

        // Subresources.
        for s in r.subresources {
            let sub_path = format!("{item}/{}", s.name);
            let suffix = capitalize(s.name);
            let (sg, sv) = sub_group_version(r, s);
            let sub_gvk = Some((sg, sv, s.kind));
            let mut ops = Vec::new();
            match (s.name, model.sub_def(r, s)) {
                ("log", _) => {
                    let log_params = [
                        query("container", "string", "The container to stream the logs of. Defaults to the only container, if there is one."),
                        query("follow", "boolean", "Keep streaming the log as it grows."),
                        query("limitBytes", "integer", "Stop after this many bytes."),
                        query("previous", "boolean", "The log of the previous, terminated instance of the container."),
                        query("sinceSeconds", "integer", "Only lines from the last this many seconds."),
                        query("tailLines", "integer", "Only this many lines from the end of the log."),
                        query("timestamps", "boolean", "Prefix each line with an RFC3339 timestamp."),
                    ];
                    ops.push(Op {
                        params: with(&item_params, &log_params),
                        responses: vec![("200", Body::Text)],
                        produces: &["text/plain", "application/json", "application/yaml"],
                        gvk: sub_gvk,
                        ..op(
                            "get",
                            "get",
                            "read",
                            &suffix,
                            format!("read log of the specified {}", r.kind),
                        )
                    });
                }
                (_, Some(sdef)) => {
                    let body = Body::Def(sdef.to_string());
                    for verb in s.verbs {
                        let o = match *verb {
                            "get" => Op {
                                params: with(&item_params, &[]),
                                responses: vec![("200", body.clone())],
                                ..op(
                                    "get",
                                    "get",
                                    "read",
                                    &suffix,
                                    format!("read {} of the specified {}", s.name, r.kind),
                                )
                            },
                            "update" => Op {
                                params: with(&item_params, &write_params),
                                body: Some((&["*/*"], body.clone())),
                                responses: vec![("200", body.clone()), ("201", body.clone())],
                                ..op(
                                    "put",
                                    "put",
                                    "replace",
                                    &suffix,
                                    format!("replace {} of the specified {}", s.name, r.kind),
                                )
                            },
                            "patch" => Op {
                                params: with(&item_params, &patch_params),
                                body: Some((PATCH_TYPES, Body::Def(model.aux.patch.clone()))),
                                responses: vec![("200", body.clone()), ("201", body.clone())],
                                ..op(
                                    "patch",
                                    "patch",
                                    "patch",
                                    &suffix,
                                    format!(
                                        "partially update {} of the specified {}",
                                        s.name, r.kind
                                    ),
                                )
                            },
                            "create" => Op {
                                params: with(&item_params, &write_params),
                                body: Some((&["*/*"], body.clone())),
                                responses: vec![
                                    ("200", body.clone()),
                                    ("201", body.clone()),
                                    ("202", body.clone()),
                                ],
                                ..op(
                                    "post",
                                    "post",
                                    "create",
                                    &suffix,
                                    format!("create {} of a {}", s.name, r.kind),
                                )
                            },
                            _ => continue,
                        };
                        ops.push(Op { gvk: sub_gvk, ..o });
                    }
                }
                (_, None) => {
                    // `connect` subresources: attach, exec, portforward, proxy.
                    let extra: &[Param] = match s.name {
                        "exec" => &[
                            query("command", "string", "The command to run; repeat the parameter for each argument."),
                            query("container", "string", "The container to run it in. Defaults to the only container, if there is one."),
                            query("stderr", "boolean", "Stream the command's standard error."),
                            query("stdin", "boolean", "Stream standard input to the command."),
                            query("stdout", "boolean", "Stream the command's standard output."),
                            query("tty", "boolean", "Allocate a terminal."),
                        ],
                        "attach" => &[
                            query("container", "string", "The container to attach to. Defaults to the only container, if there is one."),
                            query("stderr", "boolean", "Stream the container's standard error."),
                            query("stdin", "boolean", "Stream standard input to the container."),
                            query("stdout", "boolean", "Stream the container's standard output."),
                            query("tty", "boolean", "Whether the container was started with a terminal."),
                        ],
                        "portforward" => &[query("ports", "integer", "The ports to forward.")],
                        "proxy" => &[query("path", "string", "Path to the resource on the target.")],
                        _ => &[],
                    };
                    let mut targets = vec![(sub_path.clone(), item_params.clone(), "")];
                    if s.name == "proxy" {
                        let params: Vec<Param> =
                            item_params.iter().copied().chain([P_PROXY_PATH]).collect();
                        targets.push((format!("{sub_path}/{{path}}"), params, "WithPath"));
                    }
                    for (target, params, with_path) in targets {
                        let mut ops = Vec::new();
                        for verb in s.verbs {
                            let (method, m) = match *verb {
                                "create" => ("post", "Post"),
                                "delete" => ("delete", "Delete"),
                                "get" => ("get", "Get"),
                                "patch" => ("patch", "Patch"),
                                "update" => ("put", "Put"),
                                _ => continue,
                            };
                            let extra: &[Param] = if with_path.is_empty() { extra } else { &[] };
                            ops.push(Op {
                                method,
                                action: "connect",
                                id: format!(
                                    "connect{gv_camel}{m}{ns}{}{suffix}{with_path}",
                                    r.kind
                                ),
                                description: format!(
                                    "connect {} requests to {} of {}",
                                    method.to_uppercase(),
                                    s.name,
                                    r.kind
                                ),
                                tag: tag.clone(),
                                gvk: sub_gvk,
                                params: params.iter().chain(extra).copied().collect(),
                                body: None,
                                responses: vec![("200", Body::Text)],
                                produces: &["*/*"],
                            });
                        }
                        paths.entry(target).or_default().extend(ops);
                    }
                    continue;
                }
            }
            if !ops.is_empty() {
                paths.entry(sub_path).or_default().extend(ops);
            }
        }
    }
    paths
}

/// The definition name of a type (registering it is the model's job; this
/// only names it).
fn model_def_name<T: JsonSchema>() -> String {
    T::schema_name().into_owned()
}

/// The operations of the discovery documents: `/api/`, `/apis/`,
/// `/apis/<group>/`.
fn discovery_operations(path: &str) -> BTreeMap<String, Vec<Op>> {
    let (url, id, def, tag) = match path {
        "api" => (
            "/api/".to_string(),
            "getCoreAPIVersions".to_string(),
            model_def_name::<meta::APIVersions>(),
            "core".to_string(),
        ),
        "apis" => (
            "/apis/".to_string(),
            "getAPIVersions".to_string(),
            model_def_name::<meta::APIGroupList>(),
            "apis".to_string(),
        ),
        _ => {
            let group = path.trim_start_matches("apis/");
            let camel = group_camel(group);
            let mut c = camel.chars();
            let lower: String = c
                .next()
                .map(|f| f.to_lowercase().chain(c).collect())
                .unwrap_or_default();
            (
                format!("/apis/{group}/"),
                format!("get{camel}APIGroup"),
                model_def_name::<meta::APIGroup>(),
                lower,
            )
        }
    };
    let mut paths = BTreeMap::new();
    paths.insert(
        url,
        vec![Op {
            method: "get",
            action: "",
            id,
            description: "get available API versions".into(),
            tag,
            gvk: None,
            params: Vec::new(),
            body: None,
            responses: vec![("200", Body::Def(def))],
            produces: PRODUCES,
        }],
    );
    paths
}

/// What a v3 path serves: a group-version's resources or a discovery
/// endpoint.
enum DocKind {
    GroupVersion(&'static str, &'static str),
    Discovery,
}

/// Every path [`v3_group_version`] serves, each with its document's cache.
static V3_DOCS: LazyLock<BTreeMap<String, OnceLock<Arc<Value>>>> = LazyLock::new(|| {
    let mut docs = BTreeMap::new();
    docs.insert("api".to_string(), OnceLock::new());
    docs.insert("apis".to_string(), OnceLock::new());
    for r in RESOURCES {
        let gv = if r.group.is_empty() {
            format!("api/{}", r.version)
        } else {
            docs.insert(format!("apis/{}", r.group), OnceLock::new());
            format!("apis/{}/{}", r.group, r.version)
        };
        docs.insert(gv, OnceLock::new());
    }
    docs
});

fn doc_kind(path: &str) -> Option<DocKind> {
    if path == "api" || path == "apis" {
        return Some(DocKind::Discovery);
    }
    RESOURCES.iter().find_map(|r| {
        if r.group.is_empty() {
            (path == format!("api/{}", r.version))
                .then_some(DocKind::GroupVersion(r.group, r.version))
        } else if path == format!("apis/{}/{}", r.group, r.version) {
            Some(DocKind::GroupVersion(r.group, r.version))
        } else if path == format!("apis/{}", r.group) {
            Some(DocKind::Discovery)
        } else {
            None
        }
    })
}

fn operations_for(path: &str) -> BTreeMap<String, Vec<Op>> {
    match doc_kind(path) {
        Some(DocKind::GroupVersion(g, v)) => gv_operations(g, v),
        Some(DocKind::Discovery) => discovery_operations(path),
        None => BTreeMap::new(),
    }
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

/// Collects the definitions `schema` refers to, directly or not.
fn collect_refs(defs: &Map<String, Value>, schema: &Value, seen: &mut BTreeSet<String>) {
    match schema {
        Value::Object(o) => {
            if let Some(name) = ref_name(schema) {
                if seen.insert(name.to_string()) {
                    if let Some(d) = defs.get(name) {
                        collect_refs(defs, d, seen);
                    }
                }
            }
            for v in o.values() {
                collect_refs(defs, v, seen);
            }
        }
        Value::Array(a) => {
            for v in a {
                collect_refs(defs, v, seen);
            }
        }
        _ => {}
    }
}

/// A v3 schema from a canonical one: references into
/// `#/components/schemas/`, a `$ref` with siblings wrapped in `allOf`.
fn to_v3(schema: &Value) -> Value {
    match schema {
        Value::Object(o) => {
            if let Some(name) = ref_name(schema) {
                let reference = json!({ "$ref": format!("{V3_REF}{name}") });
                if o.len() == 1 {
                    return reference;
                }
                let mut out = Map::new();
                out.insert("allOf".into(), json!([reference]));
                for (k, v) in o {
                    if k != "$ref" {
                        out.insert(k.clone(), to_v3(v));
                    }
                }
                return Value::Object(out);
            }
            Value::Object(o.iter().map(|(k, v)| (k.clone(), to_v3(v))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(to_v3).collect()),
        other => other.clone(),
    }
}

/// A definition in its v3 form.
fn def_to_v3(name: &str, def: &Value) -> Value {
    let mut v3 = to_v3(def);
    if let Value::Object(o) = &mut v3 {
        let one_of = match name {
            INT_OR_STRING => Some(json!([{ "type": "integer" }, { "type": "string" }])),
            QUANTITY => Some(json!([{ "type": "string" }, { "type": "number" }])),
            _ => None,
        };
        if let Some(one_of) = one_of {
            o.remove("type");
            o.insert("oneOf".into(), one_of);
        }
    }
    v3
}

fn param_v3(p: &Param) -> Value {
    let mut v = json!({
        "name": p.name,
        "in": p.location,
        "description": p.description,
        "schema": { "type": p.ty, "uniqueItems": true },
    });
    if p.location == "path" {
        v["required"] = true.into();
    }
    v
}

fn param_v2(p: &Param) -> Value {
    let mut v = json!({
        "name": p.name,
        "in": p.location,
        "description": p.description,
        "type": p.ty,
        "uniqueItems": true,
    });
    if p.location == "path" {
        v["required"] = true.into();
    }
    v
}

fn status_text(code: &str) -> &'static str {
    match code {
        "200" => "OK",
        "201" => "Created",
        "202" => "Accepted",
        _ => "",
    }
}

fn op_v3(op: &Op) -> Value {
    let mut o = Map::new();
    o.insert("tags".into(), json!([op.tag]));
    o.insert("description".into(), op.description.clone().into());
    o.insert("operationId".into(), op.id.clone().into());
    o.insert(
        "parameters".into(),
        op.params.iter().map(param_v3).collect(),
    );
    if let Some((types, body)) = &op.body {
        let schema = to_v3(&body.schema());
        let content: Map<String, Value> = types
            .iter()
            .map(|t| ((*t).to_string(), json!({ "schema": schema })))
            .collect();
        o.insert(
            "requestBody".into(),
            json!({ "content": content, "required": true }),
        );
    }
    let mut responses = Map::new();
    for (code, body) in &op.responses {
        let schema = to_v3(&body.schema());
        let content: Map<String, Value> = op
            .produces
            .iter()
            .map(|t| ((*t).to_string(), json!({ "schema": schema })))
            .collect();
        responses.insert(
            (*code).to_string(),
            json!({ "description": status_text(code), "content": content }),
        );
    }
    responses.insert("401".into(), json!({ "description": "Unauthorized" }));
    o.insert("responses".into(), Value::Object(responses));
    if !op.action.is_empty() {
        o.insert("x-kubernetes-action".into(), op.action.into());
    }
    if let Some((g, v, k)) = op.gvk {
        o.insert("x-kubernetes-group-version-kind".into(), gvk(g, v, k));
    }
    Value::Object(o)
}

fn op_v2(op: &Op) -> Value {
    let mut o = Map::new();
    o.insert("tags".into(), json!([op.tag]));
    o.insert("description".into(), op.description.clone().into());
    if let Some((types, _)) = &op.body {
        o.insert("consumes".into(), json!(types));
    }
    o.insert("produces".into(), json!(op.produces));
    o.insert("schemes".into(), json!(["https"]));
    o.insert("operationId".into(), op.id.clone().into());
    let mut params: Vec<Value> = Vec::new();
    if let Some((_, body)) = &op.body {
        params.push(
            json!({ "name": "body", "in": "body", "required": true, "schema": body.schema() }),
        );
    }
    params.extend(op.params.iter().map(param_v2));
    o.insert("parameters".into(), Value::Array(params));
    let mut responses = Map::new();
    for (code, body) in &op.responses {
        responses.insert(
            (*code).to_string(),
            json!({ "description": status_text(code), "schema": body.schema() }),
        );
    }
    responses.insert("401".into(), json!({ "description": "Unauthorized" }));
    o.insert("responses".into(), Value::Object(responses));
    if !op.action.is_empty() {
        o.insert("x-kubernetes-action".into(), op.action.into());
    }
    if let Some((g, v, k)) = op.gvk {
        o.insert("x-kubernetes-group-version-kind".into(), gvk(g, v, k));
    }
    Value::Object(o)
}

/// The schemas the operations' bodies refer to.
fn op_refs(defs: &Map<String, Value>, ops: &BTreeMap<String, Vec<Op>>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for op in ops.values().flatten() {
        if let Some((_, body)) = &op.body {
            collect_refs(defs, &body.schema(), &mut seen);
        }
        for (_, body) in &op.responses {
            collect_refs(defs, &body.schema(), &mut seen);
        }
    }
    seen
}

fn build_v3_doc(path: &str) -> Value {
    let model = &*MODEL;
    let ops = operations_for(path);
    let mut paths = Map::new();
    for (p, list) in &ops {
        let item: Map<String, Value> = list
            .iter()
            .map(|op| (op.method.to_string(), op_v3(op)))
            .collect();
        paths.insert(p.clone(), Value::Object(item));
    }
    let schemas: Map<String, Value> = op_refs(&model.defs, &ops)
        .into_iter()
        .filter_map(|name| {
            let def = model.defs.get(&name)?;
            Some((name.clone(), def_to_v3(&name, def)))
        })
        .collect();
    json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": KUBERNETES_VERSION },
        "paths": paths,
        "components": { "schemas": schemas },
    })
}

fn build_v2_doc() -> Value {
    let model = &*MODEL;
    let mut paths = Map::new();
    for path in V3_DOCS.keys() {
        for (p, list) in operations_for(path) {
            let item: Map<String, Value> = list
                .iter()
                .map(|op| (op.method.to_string(), op_v2(op)))
                .collect();
            paths.insert(p, Value::Object(item));
        }
    }
    json!({
        "swagger": "2.0",
        "info": { "title": "Kubernetes", "version": KUBERNETES_VERSION },
        "paths": paths,
        "definitions": model.defs,
    })
}

/// FNV-1a (128 bit) of the document's JSON, as uppercase hex: stable across
/// builds and processes as long as the document is the same.
fn content_hash(doc: &Value) -> String {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let bytes = serde_json::to_vec(doc).unwrap_or_default();
    let mut h = OFFSET;
    for b in bytes {
        h ^= u128::from(b);
        h = h.wrapping_mul(PRIME);
    }
    format!("{h:032X}")
}

// ---------------------------------------------------------------------------
// Protobuf encoding of the v2 document
// ---------------------------------------------------------------------------

/// The v2 document as gnostic's `openapi.v2.Document` protobuf (the
/// message kubectl decodes), field numbers from gnostic's `OpenAPIv2.proto`.
/// Only what the document uses is encoded; anything else is left out.
mod pb {
    use serde_json::{Map, Value};

    /// A protobuf message being written.
    #[derive(Default)]
    struct Msg(Vec<u8>);

    impl Msg {
        fn varint(&mut self, mut v: u64) {
            while v >= 0x80 {
                self.0.push((v as u8) | 0x80);
                v >>= 7;
            }
            self.0.push(v as u8);
        }

        fn key(&mut self, field: u32, wire_type: u8) {
            self.varint((u64::from(field) << 3) | u64::from(wire_type));
        }

        fn bytes(&mut self, field: u32, b: &[u8]) {
            self.key(field, 2);
            self.varint(b.len() as u64);
            self.0.extend_from_slice(b);
        }

        /// A string field (proto3: empty is left out).
        fn string(&mut self, field: u32, s: &str) {
            if !s.is_empty() {
                self.bytes(field, s.as_bytes());
            }
        }

        /// A string field from a JSON value, if it is a string.
        fn string_of(&mut self, field: u32, v: Option<&Value>) {
            if let Some(s) = v.and_then(Value::as_str) {
                self.string(field, s);
            }
        }

        fn boolean(&mut self, field: u32, v: Option<&Value>) {
            if v.and_then(Value::as_bool) == Some(true) {
                self.key(field, 0);
                self.varint(1);
            }
        }

        fn int64(&mut self, field: u32, v: Option<&Value>) {
            if let Some(n) = v.and_then(Value::as_i64).filter(|n| *n != 0) {
                self.key(field, 0);
                self.varint(n as u64);
            }
        }

        fn double(&mut self, field: u32, v: Option<&Value>) {
            if let Some(n) = v.and_then(Value::as_f64).filter(|n| *n != 0.0) {
                self.key(field, 1);
                self.0.extend_from_slice(&n.to_le_bytes());
            }
        }

        /// An embedded message field.
        fn message(&mut self, field: u32, build: impl FnOnce(&mut Msg)) {
            let mut inner = Msg::default();
            build(&mut inner);
            self.bytes(field, &inner.0);
        }

        /// A repeated string field from a JSON array (or a single string).
        fn strings(&mut self, field: u32, v: Option<&Value>) {
            match v {
                Some(Value::Array(a)) => {
                    for s in a.iter().filter_map(Value::as_str) {
                        self.bytes(field, s.as_bytes());
                    }
                }
                Some(Value::String(s)) => self.bytes(field, s.as_bytes()),
                _ => {}
            }
        }

        /// `Any { yaml = 2 }` holding a JSON value (JSON is YAML).
        fn any(&mut self, field: u32, v: &Value) {
            let text = serde_json::to_string(v).unwrap_or_default();
            self.message(field, |m| m.string(2, &text));
        }

        /// `repeated NamedAny` of the object's `x-` keys.
        fn vendor_extensions(&mut self, field: u32, o: &Map<String, Value>) {
            for (k, v) in o.iter().filter(|(k, _)| k.starts_with("x-")) {
                self.message(field, |m| {
                    m.string(1, k);
                    m.any(2, v);
                });
            }
        }
    }

    /// `openapi.v2.Document`.
    pub(super) fn document(doc: &Value) -> Vec<u8> {
        let mut m = Msg::default();
        m.string_of(1, doc.get("swagger"));
        if let Some(info) = doc.get("info") {
            m.message(2, |i| {
                i.string_of(1, info.get("title"));
                i.string_of(2, info.get("version"));
                i.string_of(3, info.get("description"));
            });
        }
        m.strings(5, doc.get("schemes"));
        m.strings(6, doc.get("consumes"));
        m.strings(7, doc.get("produces"));
        if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
            m.message(8, |p| {
                for (name, item) in paths {
                    p.message(2, |n| {
                        n.string(1, name);
                        n.message(2, |pi| path_item(pi, item));
                    });
                }
            });
        }
        if let Some(defs) = doc.get("definitions").and_then(Value::as_object) {
            m.message(9, |d| {
                for (name, s) in defs {
                    d.message(1, |n| {
                        n.string(1, name);
                        n.message(2, |sm| schema(sm, s));
                    });
                }
            });
        }
        m.0
    }

    /// `PathItem`.
    fn path_item(m: &mut Msg, item: &Value) {
        for (method, field) in [
            ("get", 2),
            ("put", 3),
            ("post", 4),
            ("delete", 5),
            ("options", 6),
            ("head", 7),
            ("patch", 8),
        ] {
            if let Some(op) = item.get(method) {
                m.message(field, |o| operation(o, op));
            }
        }
        if let Some(params) = item.get("parameters").and_then(Value::as_array) {
            for p in params {
                m.message(9, |pm| parameters_item(pm, p));
            }
        }
        if let Some(o) = item.as_object() {
            m.vendor_extensions(10, o);
        }
    }

    /// `Operation`.
    fn operation(m: &mut Msg, op: &Value) {
        m.strings(1, op.get("tags"));
        m.string_of(2, op.get("summary"));
        m.string_of(3, op.get("description"));
        m.string_of(5, op.get("operationId"));
        m.strings(6, op.get("produces"));
        m.strings(7, op.get("consumes"));
        if let Some(params) = op.get("parameters").and_then(Value::as_array) {
            for p in params {
                m.message(8, |pm| parameters_item(pm, p));
            }
        }
        if let Some(responses) = op.get("responses").and_then(Value::as_object) {
            m.message(9, |r| {
                for (code, resp) in responses {
                    r.message(1, |n| {
                        n.string(1, code);
                        // ResponseValue { response = 1 }
                        n.message(2, |rv| {
                            rv.message(1, |rm| {
                                rm.string_of(1, resp.get("description"));
                                if let Some(s) = resp.get("schema") {
                                    // SchemaItem { schema = 1 }
                                    rm.message(2, |si| si.message(1, |sm| schema(sm, s)));
                                }
                                if let Some(o) = resp.as_object() {
                                    rm.vendor_extensions(5, o);
                                }
                            });
                        });
                    });
                }
            });
        }
        m.strings(10, op.get("schemes"));
        m.boolean(11, op.get("deprecated"));
        if let Some(o) = op.as_object() {
            m.vendor_extensions(13, o);
        }
    }

    /// `ParametersItem`: `Parameter` (body or non-body) or `JsonReference`.
    fn parameters_item(m: &mut Msg, p: &Value) {
        if p.get("$ref").is_some() {
            m.message(2, |r| {
                r.string_of(1, p.get("$ref"));
                r.string_of(2, p.get("description"));
            });
            return;
        }
        let location = p.get("in").and_then(Value::as_str).unwrap_or_default();
        m.message(1, |param| {
            if location == "body" {
                param.message(1, |b| {
                    b.string_of(1, p.get("description"));
                    b.string_of(2, p.get("name"));
                    b.string_of(3, p.get("in"));
                    b.boolean(4, p.get("required"));
                    if let Some(s) = p.get("schema") {
                        b.message(5, |sm| schema(sm, s));
                    }
                    if let Some(o) = p.as_object() {
                        b.vendor_extensions(6, o);
                    }
                });
                return;
            }
            param.message(2, |nb| {
                // Header = 1, FormData = 2, Query = 3, Path = 4; Query and
                // FormData have `allow_empty_value` as field 5, shifting
                // the rest by one.
                let (which, shift) = match location {
                    "header" => (1, 0),
                    "formData" => (2, 1),
                    "query" => (3, 1),
                    _ => (4, 0),
                };
                nb.message(which, |q| {
                    q.boolean(1, p.get("required"));
                    q.string_of(2, p.get("in"));
                    q.string_of(3, p.get("description"));
                    q.string_of(4, p.get("name"));
                    if shift == 1 {
                        q.boolean(5, p.get("allowEmptyValue"));
                    }
                    q.string_of(5 + shift, p.get("type"));
                    q.string_of(6 + shift, p.get("format"));
                    q.string_of(8 + shift, p.get("collectionFormat"));
                    if let Some(d) = p.get("default") {
                        q.any(9 + shift, d);
                    }
                    q.boolean(19 + shift, p.get("uniqueItems"));
                    if let Some(e) = p.get("enum").and_then(Value::as_array) {
                        for v in e {
                            q.any(20 + shift, v);
                        }
                    }
                    if let Some(o) = p.as_object() {
                        q.vendor_extensions(22 + shift, o);
                    }
                });
            });
        });
    }

    /// `Schema`.
    fn schema(m: &mut Msg, s: &Value) {
        let Some(o) = s.as_object() else {
            return;
        };
        m.string_of(1, o.get("$ref"));
        m.string_of(2, o.get("format"));
        m.string_of(3, o.get("title"));
        m.string_of(4, o.get("description"));
        if let Some(d) = o.get("default") {
            m.any(5, d);
        }
        m.double(6, o.get("multipleOf"));
        m.double(7, o.get("maximum"));
        m.boolean(8, o.get("exclusiveMaximum"));
        m.double(9, o.get("minimum"));
        m.boolean(10, o.get("exclusiveMinimum"));
        m.int64(11, o.get("maxLength"));
        m.int64(12, o.get("minLength"));
        m.string_of(13, o.get("pattern"));
        m.int64(14, o.get("maxItems"));
        m.int64(15, o.get("minItems"));
        m.boolean(16, o.get("uniqueItems"));
        m.int64(17, o.get("maxProperties"));
        m.int64(18, o.get("minProperties"));
        m.strings(19, o.get("required"));
        if let Some(e) = o.get("enum").and_then(Value::as_array) {
            for v in e {
                m.any(20, v);
            }
        }
        match o.get("additionalProperties") {
            Some(Value::Bool(b)) => {
                let b = *b;
                m.message(21, |a| {
                    a.key(2, 0);
                    a.varint(u64::from(b));
                });
            }
            Some(ap @ Value::Object(_)) => m.message(21, |a| a.message(1, |sm| schema(sm, ap))),
            _ => {}
        }
        if let Some(t) = o.get("type") {
            m.message(22, |ti| ti.strings(1, Some(t)));
        }
        match o.get("items") {
            Some(Value::Array(items)) => m.message(23, |ii| {
                for i in items {
                    ii.message(1, |sm| schema(sm, i));
                }
            }),
            Some(i @ Value::Object(_)) => m.message(23, |ii| ii.message(1, |sm| schema(sm, i))),
            _ => {}
        }
        if let Some(all_of) = o.get("allOf").and_then(Value::as_array) {
            for a in all_of {
                m.message(24, |sm| schema(sm, a));
            }
        }
        if let Some(props) = o.get("properties").and_then(Value::as_object) {
            m.message(25, |p| {
                for (name, ps) in props {
                    p.message(1, |n| {
                        n.string(1, name);
                        n.message(2, |sm| schema(sm, ps));
                    });
                }
            });
        }
        m.string_of(26, o.get("discriminator"));
        m.boolean(27, o.get("readOnly"));
        if let Some(e) = o.get("example") {
            m.any(30, e);
        }
        m.vendor_extensions(31, o);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_lists_group_versions() {
        let index = v3_index();
        let paths = index["paths"].as_object().expect("paths");
        for p in [
            "api",
            "apis",
            "api/v1",
            "apis/apps/v1",
            "apis/apps",
            "apis/autoscaling/v2",
            "apis/autoscaling/v1",
        ] {
            let url = paths[p]["serverRelativeURL"].as_str().expect(p);
            let hash = v3_hash(p).expect("hash");
            assert_eq!(url, format!("/openapi/v3/{p}?hash={hash}"));
            assert!(hash
                .chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
        }
        for r in RESOURCES {
            let gv = if r.group.is_empty() {
                format!("api/{}", r.version)
            } else {
                format!("apis/{}/{}", r.group, r.version)
            };
            assert!(paths.contains_key(&gv), "{gv}");
            assert!(v3_group_version(&gv).is_some(), "{gv}");
        }
        assert!(v3_group_version("apis/apps/v2").is_none());
        assert!(v3_group_version("apis/example.com/v1").is_none());
        // Stable.
        assert_eq!(v3_index(), index);
    }

    #[test]
    fn apps_v1_document() {
        let doc = v3_group_version("apis/apps/v1").expect("apps/v1");
        assert_eq!(doc["openapi"], "3.0.0");
        assert_eq!(doc["info"]["title"], "Kubernetes");
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let deploy = &schemas["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deploy["x-kubernetes-group-version-kind"],
            json!([{ "group": "apps", "kind": "Deployment", "version": "v1" }])
        );
        assert!(deploy["description"]
            .as_str()
            .is_some_and(|d| d.contains("Deployment")));
        assert_eq!(
            deploy["properties"]["metadata"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        assert!(schemas.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
        assert!(schemas.contains_key("io.k8s.api.core.v1.PodSpec"));
        assert!(schemas.contains_key("io.k8s.api.autoscaling.v1.Scale"));
        assert!(schemas.contains_key("io.k8s.api.apps.v1.DeploymentList"));
        assert!(!schemas.contains_key("io.k8s.api.batch.v1.Job"));
        // Every reference resolves within the document.
        let mut refs = BTreeSet::new();
        find_v3_refs(&doc, &mut refs);
        for r in refs {
            let name = r.strip_prefix(V3_REF).expect("v3 ref");
            assert!(schemas.contains_key(name), "{r}");
        }

        let path = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"];
        let post = &path["post"];
        assert_eq!(post["x-kubernetes-action"], "post");
        assert_eq!(
            post["x-kubernetes-group-version-kind"],
            json!({ "group": "apps", "kind": "Deployment", "version": "v1" })
        );
        let params = post["parameters"].as_array().expect("parameters");
        for name in ["fieldValidation", "dryRun", "fieldManager", "namespace"] {
            assert!(params.iter().any(|p| p["name"] == name), "{name}");
        }
        assert!(params
            .iter()
            .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"));
        assert_eq!(
            post["requestBody"]["content"]["*/*"]["schema"]["$ref"],
            "#/components/schemas/io.k8s.api.apps.v1.Deployment"
        );
        assert_eq!(path["get"]["x-kubernetes-action"], "list");
        assert_eq!(path["delete"]["x-kubernetes-action"], "deletecollection");

        let item = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
        for m in ["get", "put", "patch", "delete"] {
            assert!(item[m].is_object(), "{m}");
        }
        assert!(
            item["patch"]["requestBody"]["content"]["application/strategic-merge-patch+json"]
                .is_object()
        );
        for m in ["put", "patch"] {
            assert!(item[m]["parameters"]
                .as_array()
                .expect("params")
                .iter()
                .any(|p| p["name"] == "fieldValidation"));
        }
        assert!(doc["paths"]["/apis/apps/v1/deployments"]["get"].is_object());
        let scale = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
        assert_eq!(
            scale["put"]["x-kubernetes-group-version-kind"],
            json!({ "group": "autoscaling", "kind": "Scale", "version": "v1" })
        );
        let status =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"];
        assert_eq!(
            status["patch"]["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
    }

    fn find_v3_refs(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(r)) = o.get("$ref") {
                    out.insert(r.clone());
                }
                o.values().for_each(|v| find_v3_refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| find_v3_refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_post_put_patch_has_field_validation() {
        for path in V3_DOCS.keys() {
            let doc = v3_group_version(path).expect("doc");
            for (p, item) in doc["paths"].as_object().expect("paths") {
                for m in ["post", "put", "patch"] {
                    let Some(op) = item.get(m) else { continue };
                    if op["x-kubernetes-action"] == "connect" {
                        continue;
                    }
                    assert!(
                        op["parameters"]
                            .as_array()
                            .expect("params")
                            .iter()
                            .any(|x| x["name"] == "fieldValidation" && x["in"] == "query"),
                        "{m} {p}"
                    );
                }
            }
        }
    }

    #[test]
    fn core_paths_and_scopes() {
        let doc = v3_group_version("api/v1").expect("v1");
        let paths = doc["paths"].as_object().expect("paths");
        assert!(paths.contains_key("/api/v1/namespaces/{namespace}/pods"));
        assert!(paths.contains_key("/api/v1/namespaces/{namespace}/pods/{name}"));
        assert!(paths.contains_key("/api/v1/pods"));
        assert!(paths.contains_key("/api/v1/namespaces/{namespace}/pods/{name}/status"));
        assert!(paths.contains_key("/api/v1/namespaces/{namespace}/pods/{name}/log"));
        assert!(paths.contains_key("/api/v1/namespaces/{namespace}/pods/{name}/exec"));
        assert!(paths.contains_key("/api/v1/nodes/{name}/proxy/{path}"));
        assert!(paths.contains_key("/api/v1/nodes"));
        assert!(paths.contains_key("/api/v1/namespaces/{name}"));
        assert!(!paths.contains_key("/api/v1/namespaces/{namespace}/nodes"));
        // Namespaces have no deletecollection.
        assert!(paths["/api/v1/namespaces"].get("delete").is_none());
        // Bindings are create-only.
        let bindings = &paths["/api/v1/namespaces/{namespace}/bindings"];
        assert!(bindings["post"].is_object());
        assert!(bindings.get("get").is_none());
        assert!(!paths.contains_key("/api/v1/namespaces/{namespace}/bindings/{name}"));
        let eviction = &paths["/api/v1/namespaces/{namespace}/pods/{name}/eviction"]["post"];
        assert_eq!(
            eviction["x-kubernetes-group-version-kind"],
            json!({ "group": "policy", "kind": "Eviction", "version": "v1" })
        );
        let exec = &paths["/api/v1/namespaces/{namespace}/pods/{name}/exec"];
        assert_eq!(exec["post"]["x-kubernetes-action"], "connect");
        assert_eq!(
            exec["get"]["x-kubernetes-group-version-kind"]["kind"],
            "PodExecOptions"
        );
        let pod = &doc["components"]["schemas"]["io.k8s.api.core.v1.Pod"];
        assert_eq!(
            pod["x-kubernetes-group-version-kind"],
            json!([{ "group": "", "kind": "Pod", "version": "v1" }])
        );
        let cluster = v3_group_version("apis/rbac.authorization.k8s.io/v1").expect("rbac");
        assert!(
            cluster["paths"]["/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}"]["get"]
                .is_object()
        );
        assert_eq!(
            cluster["paths"]["/apis/rbac.authorization.k8s.io/v1/clusterroles"]["post"]
                ["operationId"],
            "createRbacAuthorizationV1ClusterRole"
        );
    }

    #[test]
    fn special_types() {
        let doc = v3_group_version("apis/apps/v1").expect("apps/v1");
        let schemas = &doc["components"]["schemas"];
        let ios = &schemas[INT_OR_STRING];
        assert_eq!(ios["format"], "int-or-string");
        assert_eq!(ios["x-kubernetes-int-or-string"], true);
        assert!(ios["oneOf"].is_array());
        assert!(schemas[QUANTITY]["oneOf"].is_array());
        let time = &schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Time"];
        assert_eq!(time["type"], "string");
        assert_eq!(time["format"], "date-time");

        let v2 = v2();
        let defs = &v2["definitions"];
        assert_eq!(defs[INT_OR_STRING]["type"], "string");
        assert_eq!(defs[INT_OR_STRING]["format"], "int-or-string");
        assert_eq!(defs[INT_OR_STRING]["x-kubernetes-int-or-string"], true);
        assert_eq!(defs[QUANTITY]["type"], "string");
        assert_eq!(
            defs["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["template"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.PodTemplateSpec"
        );
    }

    #[test]
    fn patch_metadata() {
        assert!(
            MODEL.patch_conflicts.is_empty(),
            "{:?}",
            MODEL.patch_conflicts
        );
        let defs = &v2()["definitions"];
        let field = |def: &str, f: &str| defs[def]["properties"][f].clone();
        let pod_spec = "io.k8s.api.core.v1.PodSpec";
        assert_eq!(
            field(pod_spec, "containers")["x-kubernetes-patch-strategy"],
            "merge"
        );
        assert_eq!(
            field(pod_spec, "containers")["x-kubernetes-patch-merge-key"],
            "name"
        );
        assert_eq!(
            field(pod_spec, "volumes")["x-kubernetes-patch-strategy"],
            "merge,retainKeys"
        );
        assert!(field(pod_spec, "tolerations")
            .get("x-kubernetes-patch-strategy")
            .is_none());
        let container = "io.k8s.api.core.v1.Container";
        assert_eq!(
            field(container, "env")["x-kubernetes-patch-merge-key"],
            "name"
        );
        assert_eq!(
            field(container, "ports")["x-kubernetes-patch-merge-key"],
            "containerPort"
        );
        assert_eq!(
            field(container, "ports")["x-kubernetes-list-map-keys"],
            json!(["containerPort", "protocol"])
        );
        assert_eq!(
            field("io.k8s.api.core.v1.EphemeralContainer", "volumeMounts")
                ["x-kubernetes-patch-merge-key"],
            "mountPath"
        );
        let meta = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
        assert_eq!(
            field(meta, "finalizers")["x-kubernetes-patch-strategy"],
            "merge"
        );
        assert!(field(meta, "finalizers")
            .get("x-kubernetes-patch-merge-key")
            .is_none());
        assert_eq!(field(meta, "finalizers")["x-kubernetes-list-type"], "set");
        assert_eq!(
            field(meta, "ownerReferences")["x-kubernetes-patch-merge-key"],
            "uid"
        );
        assert_eq!(
            field("io.k8s.api.apps.v1.DeploymentSpec", "strategy")["x-kubernetes-patch-strategy"],
            "retainKeys"
        );
        assert_eq!(
            field("io.k8s.api.apps.v1.DeploymentStatus", "conditions")
                ["x-kubernetes-patch-merge-key"],
            "type"
        );
        assert!(field(
            "io.k8s.api.certificates.v1.CertificateSigningRequestStatus",
            "conditions"
        )
        .get("x-kubernetes-patch-strategy")
        .is_none());
        assert_eq!(
            field("io.k8s.api.core.v1.ServiceSpec", "ports")["x-kubernetes-patch-merge-key"],
            "port"
        );
        assert_eq!(
            field("io.k8s.api.core.v1.NodeSpec", "podCIDRs")["x-kubernetes-patch-strategy"],
            "merge"
        );
        // The v3 form keeps them beside the allOf.
        let doc = v3_group_version("apis/apps/v1").expect("apps/v1");
        let strategy = &doc["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentSpec"]
            ["properties"]["strategy"];
        assert_eq!(strategy["x-kubernetes-patch-strategy"], "retainKeys");
        assert!(strategy["allOf"][0]["$ref"].is_string());
        assert!(strategy["description"].is_string());
    }

    #[test]
    fn every_kind_has_a_schema() {
        for r in RESOURCES {
            assert!(
                MODEL.def_for(r.group, r.version, r.kind).is_some(),
                "{} {}",
                r.api_version(),
                r.kind
            );
            if r.has_verb("list") {
                assert!(
                    MODEL.def_for(r.group, r.version, &r.list_kind()).is_some(),
                    "{}",
                    r.list_kind()
                );
            }
            for s in r.subresources {
                let connect = s.kind.ends_with("Options");
                assert_eq!(
                    MODEL.sub_def(r, s).is_some(),
                    !connect,
                    "{}/{}",
                    r.plural,
                    s.name
                );
            }
        }
    }

    #[test]
    fn unknown_fields_of_a_deployment() {
        let object = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": { "name": "d", "labels": { "app": "x", "anything": "goes" }, "annotations": { "a": "b" } },
            "spec": {
                "replicas": 1,
                "foo": 2,
                "selector": { "matchLabels": { "app": "x" } },
                "strategy": { "rollingUpdate": { "maxSurge": "25%" } },
                "template": {
                    "metadata": { "labels": { "app": "x" } },
                    "spec": {
                        "containers": [
                            { "name": "a", "image": "x", "resources": { "limits": { "cpu": "1" } } },
                            { "name": "b", "imagee": "x", "env": [{ "name": "A", "valu": "1" }] },
                        ]
                    }
                }
            },
            "statuss": {},
        });
        // (The order is the object's key order, which depends on
        // serde_json's `preserve_order`.)
        let mut found = unknown_fields("apps", "v1", "Deployment", &object);
        found.sort();
        assert_eq!(
            found,
            vec![
                "spec.foo",
                "spec.template.spec.containers[1].env[0].valu",
                "spec.template.spec.containers[1].imagee",
                "statuss",
            ]
        );
        let brief = json!({"spec":{"replicas":1,"foo":2,"template":{"spec":{"containers":[{"name":"a","imagee":"x"}]}}}});
        assert_eq!(
            unknown_fields("apps", "v1", "Deployment", &brief),
            vec!["spec.foo", "spec.template.spec.containers[0].imagee"]
        );
        assert!(unknown_fields("example.com", "v1", "Widget", &brief).is_empty());
        assert!(unknown_fields(
            "",
            "v1",
            "ConfigMap",
            &json!({"data": {"k": "v"}, "binaryData": {}})
        )
        .is_empty());
        assert_eq!(
            unknown_fields("", "v1", "ConfigMap", &json!({"metadata": {"nme": "x"}})),
            vec!["metadata.nme"]
        );
        // Free-form values are not looked into.
        let rev = json!({"data": {"whatever": {"deep": 1}}, "revision": 1});
        assert!(unknown_fields("apps", "v1", "ControllerRevision", &rev).is_empty());
        let crd = json!({"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {
            "type": "object",
            "properties": {"a": {"type": "string", "bogus": 1}},
        }}}]}});
        assert_eq!(
            unknown_fields(
                "apiextensions.k8s.io",
                "v1",
                "CustomResourceDefinition",
                &crd
            ),
            vec!["spec.versions[0].schema.openAPIV3Schema.properties.a.bogus"]
        );
        assert_eq!(
            unknown_fields(
                "apps",
                "v1",
                "DeploymentList",
                &json!({"items": [{"spec": {"x": 1}}]})
            ),
            vec!["items[0].spec.x"]
        );
    }

    #[test]
    fn v2_document() {
        let doc = v2();
        assert_eq!(doc["swagger"], "2.0");
        let post = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]["post"];
        let params = post["parameters"].as_array().expect("params");
        assert!(params
            .iter()
            .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"));
        assert!(params.iter().any(|p| p["in"] == "body"
            && p["schema"]["$ref"] == "#/definitions/io.k8s.api.apps.v1.Deployment"));
        assert!(doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"].is_object());
        let defs = doc["definitions"].as_object().expect("definitions");
        assert_eq!(
            defs["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"],
            json!([{ "group": "apps", "kind": "Deployment", "version": "v1" }])
        );
        // Every reference resolves.
        let mut refs = BTreeSet::new();
        collect_refs(defs, &doc["paths"], &mut refs);
        collect_refs(defs, &Value::Object(defs.clone()), &mut refs);
        for r in refs {
            assert!(defs.contains_key(&r), "{r}");
        }
        assert_eq!(v2_hash(), content_hash(&doc));
    }

    #[test]
    fn v2_protobuf_encodes_the_document() {
        let pb = v2_protobuf();
        assert!(pb.len() > 100_000);
        // Document.swagger (field 1, length-delimited) comes first.
        assert_eq!(&pb[..5], b"\x0a\x032.0");
        // Names of paths, definitions and vendor extensions are in it.
        let has = |s: &str| pb.windows(s.len()).any(|w| w == s.as_bytes());
        assert!(has("/apis/apps/v1/namespaces/{namespace}/deployments"));
        assert!(has("io.k8s.api.apps.v1.Deployment"));
        assert!(has("x-kubernetes-group-version-kind"));
        assert!(has("fieldValidation"));
    }
}
