//! Black-box tests of server-side apply and managed fields with the real kubectl against a real
//! `ferry server`: `kubectl apply --server-side` creates and updates, records its manager,
//! conflicts with another manager's fields (409 with upstream's message) unless
//! `--force-conflicts`, removes fields its last applier drops, takes over from client-side
//! apply, and applies custom resources and the `scale` subresource; every other write records
//! its manager.

mod common;

use common::Ferry;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web, tier: front}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: 'registry.local/web:1'}]
";

fn managers(ferry: &Ferry, object: &str) -> String {
    ferry.ok(&[
        "get",
        object,
        "--show-managed-fields",
        "-o",
        "jsonpath={range .metadata.managedFields[*]}{.manager}/{.operation} {end}",
    ])
}

fn server_side(ferry: &Ferry, yaml: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["apply", "--server-side", "-f", "-"];
    args.extend_from_slice(extra);
    ferry.with_stdin(&args, yaml)
}

#[test]
fn server_side_apply_owns_fields_and_conflicts() {
    let ferry = Ferry::start();
    let out = server_side(&ferry, DEPLOYMENT, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "deployment.apps/web serverside-applied\n"
    );
    assert!(
        managers(&ferry, "deploy/web").starts_with("kubectl/Apply "),
        "{}",
        managers(&ferry, "deploy/web")
    );
    let fields = ferry.ok(&[
        "get",
        "deploy/web",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[0].fieldsV1}",
    ]);
    assert!(
        fields.contains("\"f:replicas\":{}") && fields.contains("k:{\\\"name\\\":\\\"web\\\"}"),
        "{fields}"
    );

    // Another manager changing an owned field conflicts, as upstream words it.
    let scaled =
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 4}\n";
    let out = server_side(&ferry, scaled, &["--field-manager=autoscaler"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"),
        "{err}"
    );
    // Forced, it takes the field.
    let out = server_side(
        &ferry,
        scaled,
        &["--field-manager=autoscaler", "--force-conflicts"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        ferry.ok(&["get", "deploy/web", "-o", "jsonpath={.spec.replicas}"]),
        "4"
    );
    let now = managers(&ferry, "deploy/web");
    assert!(
        now.contains("kubectl/Apply") && now.contains("autoscaler/Apply"),
        "{now}"
    );

    // Dropping a field its last applier owned removes it; the replicas kubectl no longer owns
    // stay the autoscaler's.
    let fewer = DEPLOYMENT
        .replace("labels: {app: web, tier: front}", "labels: {app: web}")
        .replace("  replicas: 2\n", "");
    let out = server_side(&ferry, &fewer, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        ferry.ok(&[
            "get",
            "deploy/web",
            "-o",
            "jsonpath={.metadata.labels.tier}|{.spec.replicas}"
        ]),
        "|4"
    );

    // Unknown fields are refused as kubectl asks (fieldValidation=Strict), before any merge.
    let out = server_side(
        &ferry,
        &fewer.replace("  selector:", "  colour: red\n  selector:"),
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown field \"spec.colour\""), "{err}");

    // Other writes record their manager.
    ferry.ok(&["label", "deploy/web", "owner=ops"]);
    assert!(
        managers(&ferry, "deploy/web").contains("kubectl-label/Update"),
        "{}",
        managers(&ferry, "deploy/web")
    );

    // A dry-run apply changes nothing; kubectl diff shows what would.
    let out = server_side(
        &ferry,
        &fewer.replace("web:1", "web:2"),
        &["--dry-run=server"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        ferry.ok(&[
            "get",
            "deploy/web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}"
        ]),
        "registry.local/web:1"
    );
    let diff = ferry.with_stdin(
        &["diff", "--server-side", "-f", "-"],
        &fewer.replace("web:1", "web:2"),
    );
    assert_eq!(
        diff.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&diff.stderr)
    );
    assert!(
        String::from_utf8_lossy(&diff.stdout).contains("+      - image: registry.local/web:2"),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
}

/// The `scale` subresource applied (kube-rs's `patch_scale`: kubectl cannot name a Scale).
async fn apply_scale(ferry: &Ferry, body: serde_json::Value, force: bool) -> Result<(), String> {
    let api: Api<Deployment> = Api::default_namespaced(ferry.client().await);
    let mut params = PatchParams::apply("scaler");
    params.force = force;
    api.patch_scale("web", &params, &Patch::Apply(body))
        .await
        .map(|scale| assert_eq!(scale.spec.and_then(|s| s.replicas), Some(3)))
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn the_scale_subresource_is_applied_and_owns_the_replicas() {
    let ferry = Ferry::start();
    let out = server_side(&ferry, DEPLOYMENT, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let scale = serde_json::json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": "web"}, "spec": {"replicas": 3}});
    // The Scale's replicas are kubectl's, who applied the Deployment's.
    let err = apply_scale(&ferry, scale.clone(), false)
        .await
        .expect_err("conflict");
    assert!(
        err.contains("Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"),
        "{err}"
    );
    assert_eq!(
        ferry.ok(&["get", "deploy/web", "-o", "jsonpath={.spec.replicas}"]),
        "2"
    );
    // Forced, the scaler owns the Deployment's replicas, and kubectl keeps the rest.
    apply_scale(&ferry, scale.clone(), true)
        .await
        .expect("forced");
    assert_eq!(
        ferry.ok(&["get", "deploy/web", "-o", "jsonpath={.spec.replicas}"]),
        "3"
    );
    let entry = |manager: &str, field: &str| {
        ferry.ok(&[
            "get",
            "deploy/web",
            "--show-managed-fields",
            "-o",
            &format!("jsonpath={{.metadata.managedFields[?(@.manager==\"{manager}\")].{field}}}"),
        ])
    };
    assert_eq!(entry("scaler", "fieldsV1.f:spec"), r#"{"f:replicas":{}}"#);
    assert_eq!(entry("scaler", "subresource"), "scale");
    assert_eq!(entry("scaler", "apiVersion"), "apps/v1");
    let kubectl = entry("kubectl", "fieldsV1.f:spec");
    assert!(
        !kubectl.contains("f:replicas") && kubectl.contains("f:template"),
        "{kubectl}"
    );
    // kubectl applying its Deployment with other replicas now conflicts with the scaler.
    let out = server_side(
        &ferry,
        &DEPLOYMENT.replace("replicas: 2", "replicas: 5"),
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("conflict with \"scaler\" with subresource \"scale\": .spec.replicas"),
        "{err}"
    );
    // A configuration of another kind is refused.
    let mut wrong = scale;
    wrong["kind"] = "Deployment".into();
    let err = apply_scale(&ferry, wrong, true).await.expect_err("kind");
    assert!(
        err.contains("the kind in the data (Deployment) does not match the expected kind (Scale)"),
        "{err}"
    );
}

#[test]
fn server_side_apply_takes_over_from_client_side_apply() {
    let ferry = Ferry::start();
    ferry.apply_yaml("apply", DEPLOYMENT);
    assert!(managers(&ferry, "deploy/web").contains("kubectl-client-side-apply/Update"));
    // kubectl 1.32 migrates the client-side manager's fields to its server-side one, so the
    // change of an owned field does not conflict.
    let out = server_side(
        &ferry,
        &DEPLOYMENT.replace("replicas: 2", "replicas: 3"),
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        ferry.ok(&["get", "deploy/web", "-o", "jsonpath={.spec.replicas}"]),
        "3"
    );
    assert!(
        managers(&ferry, "deploy/web").contains("kubectl/Apply"),
        "{}",
        managers(&ferry, "deploy/web")
    );
}

const WIDGETS: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, kind: Widget}
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
              size: {type: integer}
              ports:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items: {type: object, required: [name], properties: {name: {type: string}, port: {type: integer}}}
"#;

#[test]
fn custom_resources_are_applied_by_their_list_keys() {
    let ferry = Ferry::start();
    ferry.apply_yaml("apply", WIDGETS);
    ferry.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=20s",
    ]);
    let widget = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec:\n  size: 1\n  ports: [{name: http, port: 80}]\n";
    let out = server_side(&ferry, widget, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A second manager adds an item of the list-map; both items stay.
    let other = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec:\n  ports: [{name: metrics, port: 9090}]\n";
    let out = server_side(&ferry, other, &["--field-manager=sidecar"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        ferry.ok(&[
            "get",
            "widget/w",
            "-o",
            "jsonpath={.spec.ports[*].name} {.spec.size}"
        ]),
        "http metrics 1"
    );
    let out = server_side(
        &ferry,
        &widget.replace("port: 80", "port: 81"),
        &["--field-manager=sidecar"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("conflict with \"kubectl\": .spec.ports[name=\"http\"].port"),
        "{err}"
    );
}

#[test]
fn ports_applied_again_without_their_protocol_are_the_same_ports() {
    let ferry = Ferry::start();
    let service = "apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
";
    for run in 0..2 {
        let out = server_side(&ferry, service, &[]);
        assert!(
            out.status.success(),
            "apply {run}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ports = ferry.ok(&[
        "get",
        "service",
        "web",
        "-o",
        "jsonpath={.spec.ports[*].protocol}",
    ]);
    assert_eq!(ports, "TCP");
}
