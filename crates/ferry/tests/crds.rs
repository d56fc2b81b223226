//! Black-box tests of CustomResourceDefinitions with the real kubectl against a real
//! `ferry server`: a definition is established and its resources served in every version it
//! serves, with schema validation, defaulting, pruning, CEL rules, `status` and `scale`, printer
//! columns, short names and categories; names another definition holds are refused; deleting
//! the definition deletes its objects first; definitions outlive a restart.

mod common;

use std::time::Duration;

use common::{eventually, Ferry};

const CRONTABS: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: crontabs.stable.example.com}
spec:
  group: stable.example.com
  scope: Namespaced
  names: {plural: crontabs, singular: crontab, kind: CronTab, shortNames: [ct], categories: [all]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: "self.minReplicas <= self.replicas"
              message: "replicas must be at least minReplicas"
            properties:
              cronSpec: {type: string, pattern: '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'}
              image: {type: string}
              replicas: {type: integer, minimum: 0, maximum: 10, default: 1}
              minReplicas: {type: integer, default: 0}
          status:
            type: object
            properties:
              replicas: {type: integer}
              labelSelector: {type: string}
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas, labelSelectorPath: .status.labelSelector}
    additionalPrinterColumns:
    - {name: Spec, type: string, jsonPath: .spec.cronSpec}
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

const CRONTAB: &str = "apiVersion: stable.example.com/v1
kind: CronTab
metadata: {name: nightly}
spec: {cronSpec: '* * * * */5', image: backup:1}
";

fn established(ferry: &Ferry, crd: &str) {
    ferry.ok(&[
        "wait",
        "--for=condition=Established",
        &format!("crd/{crd}"),
        "--timeout=20s",
    ]);
}

#[test]
fn custom_resources_are_served_as_their_definition_says() {
    let ferry = Ferry::start();
    ferry.apply_yaml("apply", CRONTABS);
    established(&ferry, "crontabs.stable.example.com");
    assert_eq!(
        ferry.ok(&[
            "get",
            "crd/crontabs.stable.example.com",
            "-o",
            "jsonpath={.status.acceptedNames.kind} {.status.storedVersions} {.spec.conversion.strategy}"
        ]),
        "CronTab [\"v1\"] None"
    );
    ferry.apply_yaml("apply", CRONTAB);
    // Defaults from the schema; the table from the printer columns; the short name.
    let table = ferry.ok(&["get", "ct"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().expect("a header").split_whitespace().collect();
    assert_eq!(header, ["NAME", "SPEC", "REPLICAS", "AGE"], "{table}");
    let row = lines.next().expect("a row");
    assert!(
        row.starts_with("nightly") && row.contains("* * * * */5"),
        "{table}"
    );
    assert_eq!(row.split_whitespace().nth(6), Some("1"), "{table}");
    // Served in both versions, stored once.
    assert_eq!(
        ferry.ok(&[
            "get",
            "crontabs.v1beta1.stable.example.com/nightly",
            "-o",
            "jsonpath={.apiVersion} {.spec.image}"
        ]),
        "stable.example.com/v1beta1 backup:1"
    );
    // `kubectl explain` reads the version's OpenAPI v3 document.
    let explained = ferry.ok(&["explain", "crontabs.spec"]);
    assert!(
        explained.contains("KIND:       CronTab") && explained.contains("cronSpec\t<string>"),
        "{explained}"
    );
    // And `/openapi/v2`, which older clients read, has it too (upstream's v2 form: the
    // v1beta1 schema keeps unknown fields, so it has no properties but the object's type and
    // metadata).
    let explained = ferry.ok(&["explain", "crontabs.spec", "--output=plaintext-openapiv2"]);
    assert!(
        explained.contains("KIND:     CronTab") && explained.contains("cronSpec\t<string>"),
        "{explained}"
    );
    let v2: serde_json::Value =
        serde_json::from_str(&ferry.ok(&["get", "--raw", "/openapi/v2"])).expect("v2 json");
    let v1beta1 = &v2["definitions"]["com.example.stable.v1beta1.CronTab"];
    assert_eq!(
        v1beta1["x-kubernetes-preserve-unknown-fields"], true,
        "{v1beta1}"
    );
    let properties: Vec<&String> = v1beta1["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .collect();
    assert_eq!(properties, ["apiVersion", "kind", "metadata"], "{v1beta1}");
    assert!(v2["paths"]
        .get("/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}/scale")
        .is_some());
    // `kubectl get all` lists it by its category.
    assert!(ferry
        .ok(&["get", "all"])
        .contains("crontab.stable.example.com/nightly"));

    // Schema violations, CEL rules and unknown fields, with upstream's messages.
    let err = ferry.create_err(
        "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: bad}\nspec: {cronSpec: 'never', replicas: 'three'}\n",
    );
    assert!(err.contains("The CronTab \"bad\" is invalid"), "{err}");
    assert!(err.contains("spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""), "{err}");
    assert!(
        err.contains("spec.cronSpec: Invalid value: \"never\": spec.cronSpec in body should match"),
        "{err}"
    );
    let err = ferry.create_err(
        "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: bad}\nspec: {replicas: 2, minReplicas: 3}\n",
    );
    assert!(
        err.contains("spec: Invalid value: \"object\": replicas must be at least minReplicas"),
        "{err}"
    );
    let err = ferry.create_err(
        "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: bad}\nspec: {colour: red}\n",
    );
    assert!(err.contains("unknown field \"spec.colour\""), "{err}");
    // Strategic merge patches are not for custom resources; merge patches are.
    let err = ferry.fails(&[
        "patch",
        "ct",
        "nightly",
        "--type=strategic",
        "-p",
        "{\"spec\":{\"image\":\"x\"}}",
    ]);
    assert!(
        err.contains("UnsupportedMediaType") || err.contains("unknown format"),
        "{err}"
    );
    ferry.ok(&[
        "patch",
        "ct",
        "nightly",
        "--type=merge",
        "-p",
        "{\"spec\":{\"image\":\"backup:2\"}}",
    ]);
    assert_eq!(
        ferry.ok(&[
            "get",
            "ct",
            "nightly",
            "-o",
            "jsonpath={.metadata.generation}"
        ]),
        "2"
    );

    // The status subresource: the main resource ignores a status, status updates keep the spec.
    ferry.ok(&[
        "patch",
        "ct",
        "nightly",
        "--type=merge",
        "-p",
        "{\"status\":{\"replicas\":7}}",
    ]);
    assert_eq!(
        ferry.ok(&["get", "ct", "nightly", "-o", "jsonpath={.status.replicas}"]),
        ""
    );
    ferry.ok(&[
        "patch",
        "ct",
        "nightly",
        "--subresource=status",
        "--type=merge",
        "-p",
        "{\"status\":{\"replicas\":1,\"labelSelector\":\"app=nightly\"}}",
    ]);
    assert_eq!(
        ferry.ok(&[
            "get",
            "ct",
            "nightly",
            "-o",
            "jsonpath={.status.replicas} {.metadata.generation}"
        ]),
        "1 2"
    );
    // The scale subresource, as `kubectl scale` and autoscalers use it.
    ferry.ok(&["scale", "ct/nightly", "--replicas=3"]);
    assert_eq!(
        ferry.ok(&["get", "ct", "nightly", "-o", "jsonpath={.spec.replicas}"]),
        "3"
    );
    let scale = ferry.ok(&[
        "get",
        "--raw",
        "/apis/stable.example.com/v1/namespaces/default/crontabs/nightly/scale",
    ]);
    let scale: serde_json::Value = serde_json::from_str(&scale).expect("a Scale");
    assert_eq!(scale["spec"]["replicas"], 3);
    assert_eq!(scale["status"]["selector"], "app=nightly");
    let err = ferry.fails(&["scale", "ct/nightly", "--replicas=11"]);
    assert!(err.contains("spec.replicas"), "{err}");

    // A definition whose kind another definition of the group holds is not established.
    ferry.apply_yaml(
        "apply",
        &CRONTABS
            .replace("crontabs.stable.example.com", "jobtabs.stable.example.com")
            .replace(
                "plural: crontabs, singular: crontab",
                "plural: jobtabs, singular: jobtab",
            )
            .replace("shortNames: [ct]", "shortNames: [jt]"),
    );
    assert!(eventually(Duration::from_secs(10), || ferry.ok(&[
        "get",
        "crd/jobtabs.stable.example.com",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"NamesAccepted\")].reason}"
    ]) == "KindConflict"));
    assert!(ferry
        .fails(&["get", "jobtabs"])
        .contains("the server doesn't have a resource type"));
    ferry.ok(&["delete", "crd/jobtabs.stable.example.com"]);

    // Deleting the definition deletes its objects, then the definition.
    ferry.ok(&["delete", "crd/crontabs.stable.example.com", "--timeout=30s"]);
    assert!(ferry
        .fails(&["get", "crd/crontabs.stable.example.com"])
        .contains("NotFound"));
    let gone = ferry.fails(&["get", "ct"]);
    // kubectl's cached discovery may still name the resource: the server then answers 404.
    assert!(
        gone.contains("the server doesn't have a resource type")
            || gone.contains("the server could not find the requested resource"),
        "{gone}"
    );
    ferry.apply_yaml("apply", CRONTABS);
    established(&ferry, "crontabs.stable.example.com");
    assert_eq!(ferry.ok(&["get", "ct", "-o", "name"]), "");
}

#[test]
fn definitions_and_their_objects_outlive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listen = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        socket.local_addr().expect("addr").to_string()
    };
    {
        let ferry = Ferry::start_at(dir.path(), &listen, &[]);
        ferry.apply_yaml("apply", CRONTABS);
        established(&ferry, "crontabs.stable.example.com");
        ferry.apply_yaml("apply", CRONTAB);
    }
    let ferry = Ferry::start_at(dir.path(), &listen, &[]);
    assert_eq!(
        ferry.ok(&["get", "ct", "-o", "name"]),
        "crontab.stable.example.com/nightly\n"
    );
    let bad = ferry.create_err(
        "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: bad}\nspec: {replicas: 12}\n",
    );
    assert!(bad.contains("spec.replicas: Invalid value: 12: spec.replicas in body should be less than or equal to 10"), "{bad}");
}

#[test]
fn the_garbage_collector_follows_owners_of_and_by_custom_resources() {
    let ferry = Ferry::start();
    ferry.apply_yaml("apply", CRONTABS);
    established(&ferry, "crontabs.stable.example.com");
    ferry.apply_yaml("apply", CRONTAB);
    ferry.ok(&["create", "configmap", "owner"]);
    let uid = |object: &str| ferry.ok(&["get", object, "-o", "jsonpath={.metadata.uid}"]);
    let (crontab_uid, configmap_uid) = (uid("ct/nightly"), uid("configmap/owner"));
    // A ConfigMap owned by the custom resource, and a custom resource owned by a ConfigMap.
    ferry.apply_yaml(
        "create",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dependent\n  ownerReferences: [{{apiVersion: stable.example.com/v1, kind: CronTab, name: nightly, uid: {crontab_uid}}}]\n"
        ),
    );
    ferry.apply_yaml(
        "create",
        &format!(
            "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: owned\n  ownerReferences: [{{apiVersion: v1, kind: ConfigMap, name: owner, uid: {configmap_uid}}}]\nspec: {{}}\n"
        ),
    );
    ferry.ok(&["delete", "ct/nightly", "configmap/owner"]);
    // The collector finds the custom resource by rediscovery (every 30 s, as upstream's).
    assert!(
        eventually(Duration::from_secs(75), || {
            ferry.kubectl(&["get", "configmap/dependent"]).status.code() == Some(1)
                && ferry.kubectl(&["get", "ct/owned"]).status.code() == Some(1)
        }),
        "dependents left: {}",
        ferry.ok(&["get", "configmaps,crontabs", "-o", "name"])
    );
}

/// A definition of `widgets.rules.example.com` whose `spec.name` has `name_schema`.
fn widgets(name_schema: &str) -> String {
    format!(
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: widgets.rules.example.com}}
spec:
  group: rules.example.com
  scope: Namespaced
  names: {{plural: widgets, kind: Widget}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              name: {name_schema}
              size:
                type: integer
                x-kubernetes-validations:
                - rule: "!oldSelf.hasValue() || self >= oldSelf.value()"
                  optionalOldSelf: true
                  message: size may not shrink
              note: {{type: string}}
"#
    )
}

#[test]
fn rules_see_optional_old_values_updates_ratchet_and_costs_are_limited() {
    let ferry = Ferry::start();
    ferry.apply_yaml("apply", &widgets("{type: string}"));
    established(&ferry, "widgets.rules.example.com");
    ferry.apply_yaml(
        "create",
        "apiVersion: rules.example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {name: UPPER, size: 3}\n",
    );
    // optionalOldSelf: the rule ran on create (oldSelf none), and runs on update.
    let shrink = ferry.fails(&[
        "patch",
        "widget/w",
        "--type=merge",
        "-p",
        r#"{"spec":{"size":2}}"#,
    ]);
    assert!(
        shrink.contains("spec.size: Invalid value: \"integer\": size may not shrink"),
        "{shrink}"
    );

    // The name's schema gets stricter: the stored, now invalid name ratchets while other
    // fields change, but may not change to another invalid name.
    ferry.apply_yaml("apply", &widgets("{type: string, pattern: '^[a-z]+$'}"));
    assert!(eventually(Duration::from_secs(10), || {
        ferry
            .kubectl(&[
                "patch",
                "widget/w",
                "--type=merge",
                "-p",
                r#"{"spec":{"note":"still UPPER","size":4}}"#,
            ])
            .status
            .success()
            && ferry
                .fails(&[
                    "patch",
                    "widget/w",
                    "--type=merge",
                    "-p",
                    r#"{"spec":{"name":"LOWER"}}"#,
                ])
                .contains(r#"spec.name: Invalid value: "LOWER": spec.name in body should match '^[a-z]+$'"#)
    }));
    assert_eq!(
        ferry.ok(&[
            "get",
            "widget/w",
            "-o",
            "jsonpath={.spec.name} {.spec.size}"
        ]),
        "UPPER 4"
    );

    // A rule too costly to run on unbounded input is refused with upstream's words.
    let costly = widgets("{type: string}").replace(
        "note: {type: string}",
        "note: {type: string}\n              tags:\n                type: array\n                items: {type: string}\n                x-kubernetes-validations:\n                - rule: \"self.all(t, t.matches('^[a-z]+$'))\"",
    );
    let out = ferry.with_stdin(&["apply", "-f", "-"], &costly);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[tags].x-kubernetes-validations[0].rule: Forbidden: estimated rule cost exceeds budget by factor of"),
        "{err}"
    );
}
