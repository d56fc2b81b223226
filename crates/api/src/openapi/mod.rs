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
//! The built-in documents are generated on first use and cached for the life
//! of the process. The custom resources' parts ([`custom_v3_document`],
//! [`custom_v2_part`], merged into v2 by [`v2_with_custom`]) are built by the
//! server when its CustomResourceDefinitions change.
//!
//! The parts: `model` (every definition, built once from the types),
//! `operations` (the paths and their verbs), `render` (the v2 and v3
//! documents), `protobuf` (the v2 document as kubectl fetches it: gnostic's
//! messages as `prost` types); here, the public entry points and the
//! strict-decoding check.

mod custom;
mod model;
mod operations;
mod protobuf;
mod render;
#[cfg(test)]
mod tests;

use std::sync::{Arc, LazyLock};

use serde_json::{json, Map, Value};

pub use custom::{custom_v2_part, custom_v3_document, CustomKind, CustomV2};
use model::*;
use operations::*;
use render::*;

/// `info.version` of every document: the Kubernetes version ferry follows.
pub(super) const KUBERNETES_VERSION: &str = "v1.33.0";

/// Prefix of a reference in the canonical (v2) form.
pub(super) const V2_REF: &str = "#/definitions/";

/// Prefix of a reference in a v3 document.
pub(super) const V3_REF: &str = "#/components/schemas/";

/// Upstream's name of `IntOrString`'s definition.
pub(super) const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";

/// Upstream's name of `Quantity`'s definition.
pub(super) const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";

/// The media types a response can have.
pub(super) const PRODUCES: &[&str] = &["application/json", "application/yaml"];

/// The media types of a list response (a watch streams JSON).
pub(super) const PRODUCES_LIST: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/json;stream=watch",
];

/// The media types of a PATCH request body.
pub(super) const PATCH_TYPES: &[&str] = &[
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
/// `"apis/<group>"`). `None` for any other path. Built anew on each call: the
/// server serves [`v3_document`], the same document kept as bytes.
pub fn v3_group_version(path: &str) -> Option<Arc<Value>> {
    let (target, _) = V3_DOCS.get_key_value(path)?;
    Some(Arc::new(build_v3_doc(target)))
}

/// [`v3_group_version`] serialized (JSON and a newline, as served), built on first use and
/// kept as bytes — a fraction of the memory of the tree — with its content hash.
pub fn v3_document(path: &str) -> Option<Arc<Document>> {
    let (target, cell) = V3_DOCS.get_key_value(path)?;
    Some(
        cell.get_or_init(|| Arc::new(Document::of(&build_v3_doc(target))))
            .clone(),
    )
}

/// A document as served: its JSON bytes (with the trailing newline Go's encoder writes) and the
/// hash of its content.
#[derive(Debug)]
pub struct Document {
    /// The JSON bytes.
    pub json: Vec<u8>,
    /// The content hash (uppercase hex), as in [`v3_index`]'s URLs and ETags.
    pub hash: String,
}

impl Document {
    fn of(doc: &Value) -> Document {
        let mut json = serde_json::to_vec(doc).unwrap_or_default();
        let hash = content_hash(doc);
        json.push(b'\n');
        Document { json, hash }
    }
}

/// The hash in [`v3_index`]'s URL of the document at `path` (uppercase hex;
/// also usable as its ETag). `None` for a path [`v3_group_version`] does not
/// serve.
pub fn v3_hash(path: &str) -> Option<String> {
    v3_document(path).map(|d| d.hash.clone())
}

/// The v2 document in both of its served forms, built from one tree that is then dropped.
#[derive(Debug, Clone)]
pub struct V2 {
    /// As JSON, with its hash.
    pub json: Arc<Document>,
    /// As gnostic's `openapi.v2.Document` (see [`v2_protobuf`]).
    pub protobuf: Arc<Vec<u8>>,
}

impl V2 {
    fn of(doc: &Value) -> V2 {
        V2 {
            json: Arc::new(Document::of(doc)),
            protobuf: Arc::new(protobuf::document(doc)),
        }
    }
}

static V2_SERVED: LazyLock<V2> = LazyLock::new(|| V2::of(&build_v2_doc()));

/// `/openapi/v2` with the paths and definitions of the custom group-versions `parts` added, as
/// upstream merges the CustomResourceDefinitions' specs into it; the built-in document when
/// there are none.
pub fn v2_with_custom(parts: &[CustomV2]) -> V2 {
    if parts.is_empty() {
        return V2_SERVED.clone();
    }
    let mut doc = build_v2_doc();
    if let Value::Object(o) = &mut doc {
        let mut paths = match o.remove("paths") {
            Some(Value::Object(paths)) => paths,
            _ => Map::new(),
        };
        let mut definitions = match o.remove("definitions") {
            Some(Value::Object(definitions)) => definitions,
            _ => Map::new(),
        };
        for part in parts {
            part.add_to(&mut paths, &mut definitions);
        }
        o.insert("paths".into(), Value::Object(paths));
        o.insert("definitions".into(), Value::Object(definitions));
    }
    V2::of(&doc)
}

/// `GET /openapi/v2` as JSON: a Swagger 2.0 document with every definition
/// and every path of every group-version. Built anew on each call: the server
/// serves [`v2_document`].
pub fn v2() -> Arc<Value> {
    Arc::new(build_v2_doc())
}

/// [`v2`] serialized, as served.
pub fn v2_document() -> Arc<Document> {
    V2_SERVED.json.clone()
}

/// `GET /openapi/v2` as kubectl asks for it (`Accept:
/// application/com.github.proto-openapi.spec.v2@v1.0+protobuf`): [`v2`]
/// encoded as gnostic's `openapi.v2.Document`.
pub fn v2_protobuf() -> Arc<Vec<u8>> {
    V2_SERVED.protobuf.clone()
}

/// The hash of [`v2`]'s content (uppercase hex), for its ETag.
pub fn v2_hash() -> String {
    V2_SERVED.json.hash.clone()
}

/// Every definition of the built-in types, in the canonical (v2) form (`#/definitions/`
/// references), with ferry's additions (list types, map keys, patch strategies): what
/// server-side apply's schemas are built from.
pub fn definitions() -> &'static Map<String, Value> {
    &MODEL.defs
}

/// The definition name of `kind` in `group`/`version` (`io.k8s.api.apps.v1.Deployment`), if
/// ferry has its type.
pub fn definition_name(group: &str, version: &str, kind: &str) -> Option<&'static str> {
    MODEL.def_for(group, version, kind)
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
// Strict decoding
// ---------------------------------------------------------------------------

/// Follows `$ref`s to the schema they name.
pub(super) fn resolve<'a>(defs: &'a Map<String, Value>, mut schema: &'a Value) -> &'a Value {
    for _ in 0..8 {
        match ref_name(schema).and_then(|n| defs.get(n)) {
            Some(next) => schema = next,
            None => break,
        }
    }
    schema
}
