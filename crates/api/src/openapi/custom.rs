//! The OpenAPI v3 document of a group-version served by CustomResourceDefinitions, as
//! upstream's apiextensions `builder` makes it: each kind's schema from its definition's
//! `openAPIV3Schema` with `apiVersion`, `kind` and `metadata` added and marked with its
//! group-version-kind, its list kind, and the paths of its verbs and subresources (PATCH takes
//! JSON, merge and apply patches, not strategic merge ones, so kubectl does not try those).

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::*;
use crate::registry::ResourceInfo;

/// The media types a custom resource's PATCH takes.
const CUSTOM_PATCH_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
];

/// One kind of a custom group-version and its schema.
pub struct CustomKind<'a> {
    /// The served resource.
    pub info: &'static ResourceInfo,
    /// Its version's `openAPIV3Schema`, if it has one.
    pub schema: Option<&'a Value>,
}

/// `stable.example.com` → `com.example.stable`, the prefix of upstream's definition names.
fn reversed(group: &str) -> String {
    group.split('.').rev().collect::<Vec<_>>().join(".")
}

fn def_name(group: &str, version: &str, kind: &str) -> String {
    format!("{}.{version}.{kind}", reversed(group))
}

/// The kind's definition (canonical form: `#/definitions/` references).
fn kind_def(kind: &CustomKind<'_>) -> Value {
    let info = kind.info;
    let mut schema = kind
        .schema
        .cloned()
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    if let Value::Object(o) = &mut schema {
        let properties = o
            .entry("properties")
            .or_insert_with(|| json!({}))
            .as_object_mut();
        if let Some(properties) = properties {
            properties.insert("apiVersion".into(), json!({"type": "string",
                "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"}));
            properties.insert("kind".into(), json!({"type": "string",
                "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"}));
            properties.insert("metadata".into(), json!({
                "$ref": format!("{V2_REF}{}", model_def_name::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>()),
                "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"}));
        }
        o.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([{"group": info.group, "kind": info.kind, "version": info.version}]),
        );
    }
    schema
}

/// The list kind's definition.
fn list_def(info: &ResourceInfo) -> Value {
    json!({
        "description": format!("{} is a list of {}", info.list_kind(), info.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string"},
            "items": {"type": "array", "items": {"$ref": format!("{V2_REF}{}", def_name(info.group, info.version, info.kind))}},
            "kind": {"type": "string"},
            "metadata": {"$ref": format!("{V2_REF}{}", MODEL.aux.list_meta)},
        },
        "x-kubernetes-group-version-kind": [{"group": info.group, "kind": info.list_kind(), "version": info.version}],
    })
}

/// The document of `group`/`version` with `kinds`, as served (with its hash).
pub fn custom_v3_document(group: &str, version: &str, kinds: &[CustomKind<'_>]) -> Document {
    let model = &*MODEL;
    let mut custom = Map::new();
    for kind in kinds {
        let info = kind.info;
        custom.insert(def_name(group, version, info.kind), kind_def(kind));
        custom.insert(def_name(group, version, &info.list_kind()), list_def(info));
    }
    let def_for = |g: &str, v: &str, k: &str| {
        let name = def_name(g, v, k);
        if custom.contains_key(&name) {
            Some(name)
        } else {
            model.def_for(g, v, k).map(String::from)
        }
    };
    let ops = kinds_operations(
        group,
        version,
        &Kinds {
            resources: kinds.iter().map(|k| k.info).collect(),
            def_for: &def_for,
            patch_types: CUSTOM_PATCH_TYPES,
        },
    );
    let mut paths = Map::new();
    for (p, list) in &ops {
        let item: Map<String, Value> = list
            .iter()
            .map(|op| (op.method.to_string(), op_v3(op)))
            .collect();
        paths.insert(p.clone(), Value::Object(item));
    }
    let mut referenced: BTreeSet<String> = op_refs(&model.defs, &ops);
    for def in custom.values() {
        collect_refs(&model.defs, def, &mut referenced);
    }
    let mut schemas = Map::new();
    for name in referenced {
        if let Some(def) = custom.get(&name) {
            schemas.insert(name.clone(), to_v3(def));
        } else if let Some(def) = model.defs.get(&name) {
            schemas.insert(name.clone(), def_to_v3(&name, def));
        }
    }
    Document::of(&json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes CRD Swagger", "version": "v0.1.0" },
        "paths": paths,
        "components": { "schemas": schemas },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::CustomResourceInfo;

    #[test]
    fn a_custom_group_version_has_its_kinds_paths_and_schemas() {
        let info = CustomResourceInfo {
            group: "stable.example.com".into(),
            version: "v1".into(),
            kind: "CronTab".into(),
            plural: "crontabs".into(),
            singular: "crontab".into(),
            namespaced: true,
            short_names: vec![],
            categories: vec![],
            status: true,
            scale: true,
        }
        .intern();
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
            "properties": {"cronSpec": {"type": "string", "description": "when"}}}}});
        let doc = custom_v3_document(
            "stable.example.com",
            "v1",
            &[CustomKind {
                info,
                schema: Some(&schema),
            }],
        );
        let doc: Value = serde_json::from_slice(&doc.json).expect("json");
        let schemas = &doc["components"]["schemas"];
        let kind = &schemas["com.example.stable.v1.CronTab"];
        assert_eq!(
            kind["properties"]["spec"]["properties"]["cronSpec"]["description"],
            "when"
        );
        assert_eq!(
            kind["x-kubernetes-group-version-kind"][0]["kind"],
            "CronTab"
        );
        assert_eq!(
            kind["properties"]["metadata"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        assert!(schemas
            .get("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
            .is_some());
        assert!(schemas.get("com.example.stable.v1.CronTabList").is_some());
        assert!(schemas.get("io.k8s.api.autoscaling.v1.Scale").is_some());
        let item =
            &doc["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"];
        let patch_types: Vec<&String> = item["patch"]["requestBody"]["content"]
            .as_object()
            .expect("content")
            .keys()
            .collect();
        assert!(
            !patch_types.iter().any(|t| t.contains("strategic")),
            "{patch_types:?}"
        );
        assert!(item["patch"]["parameters"]
            .to_string()
            .contains("fieldValidation"));
        assert!(doc["paths"]
            .get("/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}/scale")
            .is_some());
    }
}
