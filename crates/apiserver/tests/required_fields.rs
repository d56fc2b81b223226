//! Every served built-in kind, created with a minimal object through the REST verbs (in process,
//! over an embedded store): what comes back has every field its OpenAPI schema marks required,
//! at every level present — as upstream's decode → encode writes them and typed clients (the
//! official Python client's models) insist on.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use ferry_apiserver::admission::{Chain, DEFAULT_PLUGINS};
use ferry_apiserver::registry::Registry;
use ferry_apiserver::rest::{self, Request, Rest};
use ferry_apiserver::storage::Storage;
use serde_json::{json, Value};

/// The fields a minimal valid object of `plural` needs beside its metadata.
fn minimal_body(group: &str, plural: &str) -> Value {
    let template = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let selector = json!({"matchLabels": {"app": "x"}});
    match (group, plural) {
        ("", "pods") => json!({"spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
        ("", "persistentvolumeclaims") => json!({"spec": {"accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}}}),
        ("", "services") => json!({"spec": {"ports": [{"port": 80}]}}),
        ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets") => {
            json!({"spec": {"selector": selector, "template": template}})
        }
        ("", "replicationcontrollers") => {
            json!({"spec": {"selector": {"app": "x"}, "template": template}})
        }
        ("batch", "jobs") => {
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "Never"}}}})
        }
        ("batch", "cronjobs") => {
            json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "Never"}}}}}})
        }
        ("networking.k8s.io", "ipaddresses") => {
            json!({"metadata": {"name": "10.43.0.10"}, "spec": {"parentRef": {"resource": "services", "namespace": "default", "name": "web"}}})
        }
        ("apiregistration.k8s.io", "apiservices") => {
            json!({"metadata": {"name": "v1.x.example.com"},
            "spec": {"group": "x.example.com", "version": "v1", "groupPriorityMinimum": 1000, "versionPriority": 15}})
        }
        ("networking.k8s.io", "servicecidrs") => json!({"spec": {"cidrs": ["10.44.0.0/16"]}}),
        ("discovery.k8s.io", "endpointslices") => json!({"addressType": "IPv4", "endpoints": []}),
        ("flowcontrol.apiserver.k8s.io", "flowschemas") => json!({"spec": {
            "priorityLevelConfiguration": {"name": "global-default"},
            "rules": [{"subjects": [{"kind": "Group", "group": {"name": "x"}}],
                       "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/x"]}]}]}}),
        ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations") => {
            json!({"spec": {"type": "Limited", "limited": {"limitResponse": {"type": "Reject"}}}})
        }
        ("admissionregistration.k8s.io", "validatingadmissionpolicies") => {
            json!({"spec": {"matchConstraints": {"resourceRules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]}, "validations": [{"expression": "true"}]}})
        }
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings") => {
            json!({"spec": {"policyName": "p", "validationActions": ["Deny"]}})
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            json!({"metadata": {"name": "things.example.com"}, "spec": {"group": "example.com",
                "scope": "Namespaced", "names": {"plural": "things", "kind": "Thing"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object"}}}]}})
        }
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            json!({"roleRef": {"kind": "ClusterRole", "name": "view"}})
        }
        _ => json!({}),
    }
}

/// Kinds this test does not create: the review kinds and Bindings (answered, never stored),
/// CSRs (they need a signed request), and read-only ones.
fn skipped(group: &str, plural: &str) -> bool {
    matches!(group, "authentication.k8s.io" | "authorization.k8s.io")
        || matches!(
            (group, plural),
            ("", "bindings") | ("certificates.k8s.io", "certificatesigningrequests")
        )
}

fn resolve<'a>(definitions: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.trim_start_matches("#/definitions/");
            &definitions[name]
        }
        None => schema,
    }
}

/// The required fields missing from `value` (and from every object inside it), as paths.
fn missing(definitions: &Value, schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    let schema = resolve(definitions, schema);
    match value {
        Value::Object(fields) => {
            for required in schema["required"].as_array().into_iter().flatten() {
                let name = required.as_str().unwrap_or("");
                if !fields.contains_key(name) {
                    out.push(format!("{path}.{name}"));
                }
            }
            for (name, field) in fields {
                if let Some(property) = schema["properties"].get(name) {
                    missing(definitions, property, field, &format!("{path}.{name}"), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    missing(definitions, item_schema, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

fn definition_of<'a>(
    definitions: &'a Value,
    group: &str,
    version: &str,
    kind: &str,
) -> Option<&'a Value> {
    definitions.as_object()?.values().find(|d| {
        d["x-kubernetes-group-version-kind"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|gvk| gvk["group"] == group && gvk["version"] == version && gvk["kind"] == kind)
    })
}

async fn create(
    rest: &Rest,
    group: &str,
    version: &str,
    plural: &str,
    namespace: &str,
    body: Value,
) -> Value {
    let resource = rest
        .registry
        .resolve(group, version, plural)
        .expect("registered");
    let query = HashMap::new();
    let warnings = parking_lot::Mutex::new(Vec::new());
    let audit_annotations = Default::default();
    let req = Request {
        resource: &resource,
        namespace,
        name: "",
        subresource: "",
        query: &query,
        body: Bytes::from(body.to_string()),
        content_type: "application/json",
        warnings: &warnings,
        audit_annotations: &audit_annotations,
        user: None,
        user_agent: "test",
    };
    match rest::create(rest, &req).await {
        Ok((_, object)) => object,
        Err(e) => panic!("create {group}/{plural}: {}", e.message),
    }
}

#[tokio::test]
async fn every_kind_comes_back_with_its_required_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        ferry_store::embedded::EmbeddedStore::open(ferry_store::embedded::Config::new(dir.path()))
            .await
            .expect("open");
    let rest = Rest {
        storage: Storage::new(Arc::new(store)),
        admission: Chain::from_names(DEFAULT_PLUGINS).expect("plugins"),
        registry: Registry::builtin(),
        auth: None,
    };
    create(
        &rest,
        "",
        "v1",
        "namespaces",
        "",
        json!({"metadata": {"name": "default"}}),
    )
    .await;
    let document = ferry_api::openapi::v2();
    let definitions = &document["definitions"];
    let mut checked = 0;
    let mut problems = Vec::new();
    for info in ferry_api::RESOURCES {
        if !info.has_verb("create") || skipped(info.group, info.plural) {
            continue;
        }
        let Some(definition) = definition_of(definitions, info.group, info.version, info.kind)
        else {
            continue;
        };
        let namespace = if info.namespaced { "default" } else { "" };
        let mut body = minimal_body(info.group, info.plural);
        // Kinds that share storage (the two Events) get names of their own.
        let name = format!("x-{}-{}", info.group.replace('.', "-"), info.version);
        if body.pointer("/metadata/name").is_none() {
            body["metadata"] = json!({"name": name.replace("x--", "x-core-")});
        }
        body["apiVersion"] = json!(info.api_version());
        body["kind"] = json!(info.kind);
        let created = create(
            &rest,
            info.group,
            info.version,
            info.plural,
            namespace,
            body,
        )
        .await;
        let mut gaps = Vec::new();
        missing(definitions, definition, &created, info.kind, &mut gaps);
        if !gaps.is_empty() {
            problems.push(format!(
                "{}/{}: {}",
                info.group,
                info.plural,
                gaps.join(", ")
            ));
        }
        checked += 1;
    }
    assert!(checked > 40, "only {checked} kinds checked");
    assert!(
        problems.is_empty(),
        "required fields missing:\n{}",
        problems.join("\n")
    );
}
