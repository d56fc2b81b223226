//! The documents against what kubectl needs of them.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::model::*;
use super::operations::*;
use super::render::*;
use super::*;
use crate::registry::RESOURCES;

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
    let status = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"];
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
        cluster["paths"]["/apis/rbac.authorization.k8s.io/v1/clusterroles"]["post"]["operationId"],
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
    // Server-side apply reads an omitted protocol key as its default.
    assert_eq!(
        field("io.k8s.api.core.v1.ServicePort", "protocol")["default"],
        "TCP"
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
        field("io.k8s.api.apps.v1.DeploymentStatus", "conditions")["x-kubernetes-patch-merge-key"],
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
    let strategy = &doc["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]
        ["strategy"];
    assert_eq!(strategy["x-kubernetes-patch-strategy"], "retainKeys");
    assert!(strategy["allOf"][0]["$ref"].is_string());
    assert!(strategy["description"].is_string());
}

#[test]
fn every_kind_has_a_schema() {
    // metrics.k8s.io's schemas are its server's (metrics-server's, upstream), not the types'.
    for r in RESOURCES.iter().filter(|r| r.group != "metrics.k8s.io") {
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

#[test]
fn no_kind_requires_metadata() {
    let doc: Value = serde_json::from_slice(&super::v2_document().json).expect("json");
    let review = &doc["definitions"]["io.k8s.api.authentication.v1.TokenReview"];
    assert_eq!(review["required"], json!(["spec"]));
    for (name, def) in doc["definitions"].as_object().expect("definitions") {
        let required = def["required"].as_array().cloned().unwrap_or_default();
        assert!(!required.contains(&json!("metadata")), "{name}");
    }
}

#[test]
fn map_types_name_definitions_ferry_has() {
    // Every definition ferry has a type of, served or optional: a misspelt entry fails here.
    let mut generator = generator();
    for k in crate::kinds::KINDS {
        (k.register)(&mut generator);
    }
    let all = generator.take_definitions(false);
    for (def, field, map_type) in MAP_TYPES {
        assert!(
            ["atomic", "granular"].contains(map_type),
            "{def}: {map_type}"
        );
        let d = all
            .get(*def)
            .unwrap_or_else(|| panic!("no definition {def}"));
        if let Some(field) = field {
            assert!(
                d["properties"].get(*field).is_some(),
                "no field {def}.{field}"
            );
        }
        // The served ones carry the marker.
        if let Some(d) = MODEL.defs.get(*def) {
            let target = match field {
                None => d,
                Some(field) => &d["properties"][*field],
            };
            assert_eq!(
                target["x-kubernetes-map-type"], *map_type,
                "{def} {field:?}"
            );
        }
    }
}

#[test]
fn atomic_structs_and_maps() {
    let doc = v2();
    let defs = &doc["definitions"];
    for def in [
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
        "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference",
        "io.k8s.api.core.v1.NodeSelector",
        "io.k8s.api.core.v1.NodeSelectorTerm",
        "io.k8s.api.core.v1.ObjectReference",
        "io.k8s.api.core.v1.LocalObjectReference",
        "io.k8s.api.core.v1.SecretKeySelector",
        "io.k8s.api.rbac.v1.RoleRef",
    ] {
        assert_eq!(defs[def]["x-kubernetes-map-type"], "atomic", "{def}");
    }
    // Not every struct is atomic.
    for def in [
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "io.k8s.api.core.v1.PodSpec",
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement",
    ] {
        assert!(
            defs.get(def)
                .is_some_and(|d| d.get("x-kubernetes-map-type").is_none()),
            "{def}"
        );
    }
    let field = |def: &str, f: &str| defs[def]["properties"][f]["x-kubernetes-map-type"].clone();
    assert_eq!(
        field("io.k8s.api.core.v1.PodSpec", "nodeSelector"),
        "atomic"
    );
    assert_eq!(
        field("io.k8s.api.core.v1.ServiceSpec", "selector"),
        "atomic"
    );
    // A PersistentVolume's claimRef is granular although ObjectReference is atomic.
    assert_eq!(
        field("io.k8s.api.core.v1.PersistentVolumeSpec", "claimRef"),
        "granular"
    );

    // The v3 documents place them alike (a `$ref` field's override beside its `allOf`).
    let core = v3_group_version("api/v1").expect("api/v1");
    let schemas = &core["components"]["schemas"];
    assert_eq!(
        schemas["io.k8s.api.core.v1.NodeSelector"]["x-kubernetes-map-type"],
        "atomic"
    );
    let claim_ref = &schemas["io.k8s.api.core.v1.PersistentVolumeSpec"]["properties"]["claimRef"];
    assert_eq!(claim_ref["x-kubernetes-map-type"], "granular");
    assert_eq!(
        claim_ref["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.api.core.v1.ObjectReference"
    );
}
