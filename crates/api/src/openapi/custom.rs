//! The OpenAPI v3 document of a group-version served by CustomResourceDefinitions, and its part
//! of `/openapi/v2`, as upstream's apiextensions `builder` makes them: each kind's schema from
//! its definition's `openAPIV3Schema` with `apiVersion`, `kind` and `metadata` added and marked
//! with its group-version-kind, its list kind, and the paths of its verbs and subresources
//! (PATCH takes JSON, merge and apply patches, not strategic merge ones, so kubectl does not try
//! those). In v2 the schemas lose what Swagger 2.0 and kubectl's v2 validation cannot read.

use std::collections::{BTreeMap, BTreeSet};

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

/// Which document a definition is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    V2,
    V3,
}

/// The kind's definition (canonical form: `#/definitions/` references). In v2, the schema is
/// made v2-compatible before the type and object metadata are added, as upstream does.
fn kind_def(kind: &CustomKind<'_>, form: Form) -> Value {
    let info = kind.info;
    let mut schema = kind
        .schema
        .cloned()
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    if form == Form::V2 {
        v2_compatible(&mut schema);
    }
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

/// The definitions of `kinds` and their list kinds, by name.
fn custom_defs(
    group: &str,
    version: &str,
    kinds: &[CustomKind<'_>],
    form: Form,
) -> Map<String, Value> {
    let mut custom = Map::new();
    for kind in kinds {
        let info = kind.info;
        custom.insert(def_name(group, version, info.kind), kind_def(kind, form));
        custom.insert(def_name(group, version, &info.list_kind()), list_def(info));
    }
    custom
}

/// The paths of `kinds`' verbs and subresources, with `custom`'s definitions for their kinds.
fn custom_operations(
    group: &str,
    version: &str,
    kinds: &[CustomKind<'_>],
    custom: &Map<String, Value>,
) -> BTreeMap<String, Vec<Op>> {
    let model = &*MODEL;
    let def_for = |g: &str, v: &str, k: &str| {
        let name = def_name(g, v, k);
        if custom.contains_key(&name) {
            Some(name)
        } else {
            model.def_for(g, v, k).map(String::from)
        }
    };
    kinds_operations(
        group,
        version,
        &Kinds {
            resources: kinds.iter().map(|k| k.info).collect(),
            def_for: &def_for,
            patch_types: CUSTOM_PATCH_TYPES,
        },
    )
}

/// What a custom group-version adds to `/openapi/v2`: its paths and its definitions, in v2 form.
#[derive(Debug, Clone, Default)]
pub struct CustomV2 {
    paths: Map<String, Value>,
    definitions: Map<String, Value>,
}

/// The part of `/openapi/v2` of `group`/`version` with `kinds` (see [`super::v2_with_custom`]).
pub fn custom_v2_part(group: &str, version: &str, kinds: &[CustomKind<'_>]) -> CustomV2 {
    let definitions = custom_defs(group, version, kinds, Form::V2);
    let ops = custom_operations(group, version, kinds, &definitions);
    let paths = ops
        .iter()
        .map(|(p, list)| {
            let item: Map<String, Value> = list
                .iter()
                .map(|op| (op.method.to_string(), op_v2(op)))
                .collect();
            (p.clone(), Value::Object(item))
        })
        .collect();
    CustomV2 { paths, definitions }
}

impl CustomV2 {
    /// Adds the part to a v2 document's `paths` and `definitions`.
    pub(super) fn add_to(
        &self,
        paths: &mut Map<String, Value>,
        definitions: &mut Map<String, Value>,
    ) {
        paths.extend(self.paths.iter().map(|(k, v)| (k.clone(), v.clone())));
        definitions.extend(self.definitions.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
}

/// A structural schema made fit for Swagger 2.0 and kubectl's v2 validation, as upstream's
/// `ToStructuralOpenAPIV2`: no junctors (`allOf`, `oneOf`, `anyOf`, `not`); a nullable value,
/// or one that keeps unknown fields, is left untyped and unchecked below; an array without
/// items is untyped; a nullable field is not required.
fn v2_compatible(schema: &mut Value) {
    let Value::Object(o) = schema else {
        return;
    };
    for junctor in ["allOf", "oneOf", "anyOf", "not"] {
        o.remove(junctor);
    }
    let is_true = |o: &Map<String, Value>, key: &str| o.get(key) == Some(&Value::Bool(true));
    // Which fields are nullable, before their own schemas change below.
    let nullable_fields: Vec<String> = o
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .filter(|(_, p)| p.get("nullable") == Some(&Value::Bool(true)))
                .map(|(name, _)| name.clone())
                .collect()
        })
        .unwrap_or_default();
    let nullable_values = o
        .get("additionalProperties")
        .is_some_and(|a| a.get("nullable") == Some(&Value::Bool(true)));
    if is_true(o, "nullable") {
        for key in ["type", "nullable", "items", "properties"] {
            o.remove(key);
        }
    }
    if is_true(o, "x-kubernetes-preserve-unknown-fields") {
        o.remove("items");
        o.remove("properties");
    }
    if o.get("type").and_then(Value::as_str) == Some("array") && !o.contains_key("items") {
        o.remove("type");
    }
    if nullable_values {
        o.remove("required");
    } else if let Some(Value::Array(required)) = o.get_mut("required") {
        required.retain(|r| {
            !r.as_str()
                .is_some_and(|r| nullable_fields.iter().any(|n| n == r))
        });
        if required.is_empty() {
            o.remove("required");
        }
    }
    if let Some(Value::Object(props)) = o.get_mut("properties") {
        props.values_mut().for_each(v2_compatible);
    }
    if let Some(items) = o.get_mut("items") {
        v2_compatible(items);
    }
    if let Some(additional @ Value::Object(_)) = o.get_mut("additionalProperties") {
        v2_compatible(additional);
    }
}

/// The document of `group`/`version` with `kinds`, as served (with its hash).
pub fn custom_v3_document(group: &str, version: &str, kinds: &[CustomKind<'_>]) -> Document {
    let model = &*MODEL;
    let custom = custom_defs(group, version, kinds, Form::V3);
    let ops = custom_operations(group, version, kinds, &custom);
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

    #[test]
    fn v2_schemas_lose_what_swagger_2_cannot_say() {
        let mut schema = json!({"type": "object", "required": ["a", "b"],
        "properties": {
            "a": {"type": "string", "nullable": true},
            "b": {"type": "array", "items": {"type": "string"}},
            "c": {"type": "array", "x-kubernetes-preserve-unknown-fields": true,
                "items": {"type": "string"}},
            "d": {"type": "object", "properties": {"e": {"type": "integer"}},
                "anyOf": [{"required": ["e"]}]},
            "f": {"type": "object", "required": ["x"],
                "additionalProperties": {"type": "string", "nullable": true}},
        }});
        v2_compatible(&mut schema);
        let p = &schema["properties"];
        assert_eq!(schema["required"], json!(["b"]));
        assert_eq!(p["a"], json!({}));
        assert_eq!(
            p["b"],
            json!({"type": "array", "items": {"type": "string"}})
        );
        assert_eq!(
            p["c"],
            json!({"x-kubernetes-preserve-unknown-fields": true})
        );
        assert_eq!(
            p["d"],
            json!({"type": "object", "properties": {"e": {"type": "integer"}}})
        );
        assert_eq!(
            p["f"],
            json!({"type": "object", "additionalProperties": {}})
        );
    }

    #[test]
    fn a_custom_group_version_adds_its_paths_and_definitions_to_v2() {
        let info = CustomResourceInfo {
            group: "v2.example.com".into(),
            version: "v1".into(),
            kind: "Widget".into(),
            plural: "widgets".into(),
            singular: "widget".into(),
            namespaced: false,
            short_names: vec![],
            categories: vec![],
            status: false,
            scale: false,
        }
        .intern();
        let schema = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true,
            "properties": {"spec": {"type": "object"}}});
        let part = custom_v2_part(
            "v2.example.com",
            "v1",
            &[CustomKind {
                info,
                schema: Some(&schema),
            }],
        );
        let served = crate::openapi::v2_with_custom(&[part]);
        let doc: Value = serde_json::from_slice(&served.json.json).expect("json");
        let widget = &doc["definitions"]["com.example.v2.v1.Widget"];
        let properties: Vec<&String> = widget["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .collect();
        assert_eq!(properties, ["apiVersion", "kind", "metadata"]);
        assert_eq!(
            widget["properties"]["metadata"]["$ref"],
            "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        let item = &doc["paths"]["/apis/v2.example.com/v1/widgets/{name}"];
        assert_eq!(
            item["get"]["responses"]["200"]["schema"]["$ref"],
            "#/definitions/com.example.v2.v1.Widget"
        );
        // The built-in paths and definitions are all there too.
        assert!(doc["definitions"]
            .get("io.k8s.api.apps.v1.Deployment")
            .is_some());
        assert!(!served.protobuf.is_empty());
        assert_ne!(served.json.hash, crate::openapi::v2_hash());
    }
}
