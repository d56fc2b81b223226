//! Rendering: the v2 document and the v3 documents (one per group-version) from the model and
//! the operations, in each version's conventions, and their content hashes.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use super::*;

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

/// Collects the definitions `schema` refers to, directly or not.
pub(super) fn collect_refs(defs: &Map<String, Value>, schema: &Value, seen: &mut BTreeSet<String>) {
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
pub(super) fn to_v3(schema: &Value) -> Value {
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
pub(super) fn def_to_v3(name: &str, def: &Value) -> Value {
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

pub(super) fn param_v3(p: &Param) -> Value {
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

pub(super) fn param_v2(p: &Param) -> Value {
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

pub(super) fn status_text(code: &str) -> &'static str {
    match code {
        "200" => "OK",
        "201" => "Created",
        "202" => "Accepted",
        _ => "",
    }
}

pub(super) fn op_v3(op: &Op) -> Value {
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

pub(super) fn op_v2(op: &Op) -> Value {
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
pub(super) fn op_refs(
    defs: &Map<String, Value>,
    ops: &BTreeMap<String, Vec<Op>>,
) -> BTreeSet<String> {
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

pub(super) fn build_v3_doc(path: &str) -> Value {
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

pub(super) fn build_v2_doc() -> Value {
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
pub(super) fn content_hash(doc: &Value) -> String {
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
