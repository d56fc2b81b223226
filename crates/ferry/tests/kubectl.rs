//! Black-box tests: a real `ferry server` on 127.0.0.1:0 with a temporary data dir, driven by
//! the real kubectl, comparing what kubectl prints with upstream's wording.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{eventually, Ferry, VALIDATE};

const NAMESPACE_AND_CONFIGMAP: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: demo
  labels:
    app: web
data:
  color: blue
";

#[test]
fn version_discovery_and_system_namespaces() {
    let ferry = Ferry::start();
    let version = ferry.ok(&["version"]);
    assert!(
        version.contains("Server Version: v1.33.0+ferry"),
        "{version}"
    );
    // Request and store latency metrics, in the OpenMetrics text format (a histogram bucket's
    // `le` label comes first there; Prometheus reads labels in any order).
    ferry.ok(&["create", "configmap", "metered", "--from-literal=a=b"]);
    let metrics = ferry.ok(&["get", "--raw", "/metrics"]);
    assert!(
        metrics.contains(
            "apiserver_request_total{verb=\"create\",resource=\"configmaps\",code=\"201\"}"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("etcd_request_duration_seconds_bucket{le=\"0.005\",operation=\"txn\",type=\"configmaps\"}"), "{metrics}");
    assert!(
        metrics.contains("# TYPE etcd_request_duration_seconds histogram\n"),
        "{metrics}"
    );
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
    assert!(
        metrics
            .contains("etcd_request_duration_seconds_count{operation=\"get\",type=\"namespaces\"}"),
        "{metrics}"
    );
    let resources = ferry.ok(&["api-resources"]);
    let deployments = resources
        .lines()
        .find(|l| l.starts_with("deployments "))
        .expect("deployments listed");
    let columns: Vec<&str> = deployments.split_whitespace().collect();
    assert_eq!(
        columns,
        vec!["deployments", "deploy", "apps/v1", "true", "Deployment"]
    );
    let versions = ferry.ok(&["api-versions"]);
    for gv in [
        "v1",
        "apps/v1",
        "batch/v1",
        "coordination.k8s.io/v1",
        "rbac.authorization.k8s.io/v1",
    ] {
        assert!(
            versions.lines().any(|l| l == gv),
            "{gv} missing from\n{versions}"
        );
    }
    let namespaces = ferry.ok(&["get", "namespaces", "-o", "name"]);
    for ns in ["default", "kube-node-lease", "kube-public", "kube-system"] {
        assert!(
            namespaces.contains(&format!("namespace/{ns}")),
            "{namespaces}"
        );
    }
    let table = ferry.ok(&["get", "ns"]);
    assert!(table.starts_with("NAME "), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("default") && l.contains("Active")),
        "{table}"
    );
}

#[test]
fn create_get_label_patch_delete() {
    let ferry = Ferry::start();
    let created = ferry.apply_yaml("create", NAMESPACE_AND_CONFIGMAP);
    assert_eq!(
        created,
        "namespace/demo created\nconfigmap/settings created\n"
    );

    let json: serde_json::Value =
        serde_json::from_str(&ferry.ok(&["-n", "demo", "get", "cm", "settings", "-o", "json"]))
            .expect("json");
    assert_eq!(json["data"]["color"], "blue");
    assert_eq!(json["metadata"]["uid"].as_str().map(str::len), Some(36));
    let rv: u64 = json["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .expect("resourceVersion");
    assert!(rv > 0);
    assert_eq!(
        ferry.ok(&[
            "-n",
            "demo",
            "get",
            "configmap",
            "settings",
            "-o",
            "jsonpath={.data.color}"
        ]),
        "blue"
    );
    let custom = ferry.ok(&[
        "-n",
        "demo",
        "get",
        "cm",
        "settings",
        "-o",
        "custom-columns=NAME:.metadata.name,COLOR:.data.color",
    ]);
    assert_eq!(custom, "NAME       COLOR\nsettings   blue\n");
    let table = ferry.ok(&["-n", "demo", "get", "cm", "settings"]);
    assert!(
        table.starts_with("NAME       DATA   AGE\nsettings   1      "),
        "{table}"
    );
    let yaml = ferry.ok(&["-n", "demo", "get", "cm", "settings", "-o", "yaml"]);
    assert!(
        yaml.contains("kind: ConfigMap") && yaml.contains("  color: blue"),
        "{yaml}"
    );

    assert_eq!(
        ferry.ok(&["-n", "demo", "label", "cm", "settings", "tier=front"]),
        "configmap/settings labeled\n"
    );
    assert_eq!(
        ferry.ok(&["-n", "demo", "annotate", "cm", "settings", "note=hello"]),
        "configmap/settings annotated\n"
    );
    let selected = ferry.ok(&[
        "-n",
        "demo",
        "get",
        "cm",
        "-l",
        "app=web,tier in (front,back)",
        "-o",
        "name",
    ]);
    assert_eq!(selected, "configmap/settings\n");
    assert_eq!(
        ferry.ok(&[
            "-n",
            "demo",
            "get",
            "cm",
            "-l",
            "app=web,tier!=front",
            "-o",
            "name"
        ]),
        ""
    );

    ferry.ok(&[
        "-n",
        "demo",
        "patch",
        "cm",
        "settings",
        "-p",
        r#"{"data":{"size":"L"}}"#,
    ]);
    ferry.ok(&[
        "-n",
        "demo",
        "patch",
        "cm",
        "settings",
        "--type=merge",
        "-p",
        r#"{"data":{"color":null}}"#,
    ]);
    ferry.ok(&[
        "-n",
        "demo",
        "patch",
        "cm",
        "settings",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/data/shape","value":"round"}]"#,
    ]);
    let data = ferry.ok(&[
        "-n",
        "demo",
        "get",
        "cm",
        "settings",
        "-o",
        "jsonpath={.data}",
    ]);
    assert_eq!(data, r#"{"shape":"round","size":"L"}"#);

    let names = ferry.ok(&[
        "get",
        "cm",
        "-A",
        "--field-selector",
        // kube-root-ca.crt is published in every namespace.
        "metadata.namespace=demo,metadata.name!=kube-root-ca.crt",
        "-o",
        "name",
    ]);
    assert_eq!(names, "configmap/settings\n");

    assert_eq!(
        ferry.ok(&["-n", "demo", "delete", "cm", "settings"]),
        "configmap \"settings\" deleted\n"
    );
    let missing = ferry.fails(&["-n", "demo", "get", "cm", "settings"]);
    assert_eq!(
        missing.trim(),
        "Error from server (NotFound): configmaps \"settings\" not found"
    );
}

#[test]
fn errors_are_worded_as_upstream() {
    let ferry = Ferry::start();
    ferry.apply_yaml("create", NAMESPACE_AND_CONFIGMAP);
    let exists = String::from_utf8_lossy(
        &ferry
            .with_stdin(&["create", "-f", "-", VALIDATE], NAMESPACE_AND_CONFIGMAP)
            .stderr,
    )
    .into_owned();
    assert!(exists.contains("Error from server (AlreadyExists): error when creating \"STDIN\": namespaces \"demo\" already exists"), "{exists}");
    assert!(
        exists.contains("configmaps \"settings\" already exists"),
        "{exists}"
    );

    let bad_name =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n  namespace: demo\n";
    let invalid = ferry.create_err(bad_name);
    assert!(invalid.contains("The ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters"), "{invalid}");

    let nowhere = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: nope\n";
    let no_ns = ferry.create_err(nowhere);
    assert!(no_ns.contains("namespaces \"nope\" not found"), "{no_ns}");

    let bad_deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: demo\nspec:\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: other\n    spec:\n      containers:\n      - name: c\n        image: busybox\n";
    let mismatch = ferry.create_err(bad_deploy);
    assert!(mismatch.contains("spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`"), "{mismatch}");

    let protected = ferry.fails(&["delete", "namespace", "default"]);
    assert!(
        protected
            .contains("namespaces \"default\" is forbidden: this namespace may not be deleted"),
        "{protected}"
    );
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: busybox:1.36
        ports:
        - containerPort: 80
";

#[test]
fn deployments_are_defaulted_scaled_and_patched_strategically() {
    let ferry = Ferry::start();
    assert_eq!(
        ferry.apply_yaml("create", DEPLOYMENT),
        "deployment.apps/web created\n"
    );
    let spec: serde_json::Value =
        serde_json::from_str(&ferry.ok(&["get", "deploy", "web", "-o", "json"])).expect("json");
    assert_eq!(spec["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
    assert_eq!(spec["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(
        spec["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    assert_eq!(
        spec["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"],
        "TCP"
    );
    assert_eq!(spec["metadata"]["generation"], 1);

    assert_eq!(
        ferry.ok(&["scale", "deploy", "web", "--replicas=5"]),
        "deployment.apps/web scaled\n"
    );
    assert_eq!(
        ferry.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.replicas} {.metadata.generation}"
        ]),
        "5 2"
    );

    // kubectl set image sends a strategic merge patch keyed by container name.
    assert_eq!(
        ferry.ok(&["set", "image", "deploy/web", "web=busybox:1.37"]),
        "deployment.apps/web image updated\n"
    );
    let image = ferry.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[*].image}",
    ]);
    assert_eq!(image, "busybox:1.37");
    let ports = ferry.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].ports[0].containerPort}",
    ]);
    assert_eq!(ports, "80", "the rest of the container is kept");

    // No nodes here: the controllers create pods that stay Pending, none available.
    let table = ferry.ok(&["get", "deploy"]);
    assert!(
        table.starts_with("NAME   READY   UP-TO-DATE   AVAILABLE   AGE\nweb    0/5     "),
        "{table}"
    );
    assert!(ferry.ok(&["get", "all"]).contains("deployment.apps/web"));
}

#[test]
fn watch_streams_changes() {
    let ferry = Ferry::start();
    let mut watch = Command::new("kubectl")
        .env("KUBECONFIG", &ferry.kubeconfig)
        .args(["get", "cm", "-w", "-o", "name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w");
    let stdout = watch.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\n  namespace: default\n";
    ferry.apply_yaml("create", cm);
    // Other configmaps (kube-root-ca.crt, from the controllers) may come first.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while !seen.iter().any(|l| l == "configmap/watched") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        seen.push(
            rx.recv_timeout(left)
                .unwrap_or_else(|_| panic!("a watch event for configmap/watched, saw {seen:?}")),
        );
    }
    let _ = watch.kill();
    let _ = watch.wait();
}

#[test]
fn everything_survives_kill_9_with_the_same_resource_versions() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut ferry = Ferry::start_in(tmp.path(), &[]);
    ferry.apply_yaml("create", NAMESPACE_AND_CONFIGMAP);
    ferry.apply_yaml("create", DEPLOYMENT);
    let before = ferry.ok(&[
        "get",
        "cm,deploy,ns",
        "-A",
        "-o",
        "custom-columns=NAME:.metadata.name,RV:.metadata.resourceVersion,UID:.metadata.uid",
    ]);
    ferry.kill_hard();
    let ferry = Ferry::start_in(tmp.path(), &[]);
    let after = ferry.ok(&[
        "get",
        "cm,deploy,ns",
        "-A",
        "-o",
        "custom-columns=NAME:.metadata.name,RV:.metadata.resourceVersion,UID:.metadata.uid",
    ]);
    assert_eq!(before, after);
    assert!(after.contains("settings") && after.contains("web"));
}

#[test]
fn tokens_authenticate_and_rbac_authorizes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tokens = tmp.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        "admin-token,alice,1,\"system:masters\"\nbob-token,bob,2\n",
    )
    .expect("token file");
    let data = tmp.path().join("data");
    let ferry = Ferry::start_in(&data, &["--token-file", tokens.to_str().expect("utf8")]);
    let ca = data.join("tls/ca.crt");
    let as_user = |token: &str, args: &[&str]| {
        Command::new("kubectl")
            .args([
                "--kubeconfig=/dev/null",
                "--server",
                &ferry.url,
                "--certificate-authority",
                ca.to_str().expect("utf8"),
                "--token",
                token,
            ])
            .args(args)
            .output()
            .expect("kubectl")
    };
    let alice = as_user("admin-token", &["get", "ns", "-o", "name"]);
    assert!(
        alice.status.success(),
        "{}",
        String::from_utf8_lossy(&alice.stderr)
    );
    let bob = as_user("bob-token", &["get", "pods"]);
    assert_eq!(
        String::from_utf8_lossy(&bob.stderr).trim(),
        "Error from server (Forbidden): pods is forbidden: User \"bob\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
    );
    let nobody = as_user("wrong", &["get", "pods"]);
    assert!(
        String::from_utf8_lossy(&nobody.stderr).contains("Unauthorized"),
        "{}",
        String::from_utf8_lossy(&nobody.stderr)
    );

    // The review resources answer `kubectl auth`.
    let out = |o: std::process::Output| String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert_eq!(
        out(as_user("bob-token", &["auth", "can-i", "list", "pods"])),
        "no"
    );
    assert_eq!(
        out(as_user("admin-token", &["auth", "can-i", "list", "pods"])),
        "yes"
    );
    let whoami = out(as_user("bob-token", &["auth", "whoami"]));
    assert!(
        whoami.contains("Username    bob") && whoami.contains("[system:authenticated]"),
        "{whoami}"
    );
    let rules = out(as_user("bob-token", &["auth", "can-i", "--list"]));
    assert!(
        rules.contains("selfsubjectaccessreviews.authorization.k8s.io") && !rules.contains("*.*"),
        "{rules}"
    );
    // Impersonation: a master may act as bob (and is then refused what bob is refused); bob
    // may not act as anyone.
    assert_eq!(
        out(as_user(
            "admin-token",
            &["auth", "can-i", "list", "pods", "--as=bob"]
        )),
        "no"
    );
    let as_bob = as_user("admin-token", &["get", "pods", "--as=bob"]);
    assert!(String::from_utf8_lossy(&as_bob.stderr)
        .contains("User \"bob\" cannot list resource \"pods\""));
    let escalation = as_user("bob-token", &["get", "pods", "--as=alice"]);
    assert!(
        String::from_utf8_lossy(&escalation.stderr)
            .contains("cannot impersonate resource \"users\""),
        "{}",
        String::from_utf8_lossy(&escalation.stderr)
    );

    // RBAC: upstream's default roles are there, and `view` in one namespace lets bob read there
    // and nowhere else (once the aggregation controller has filled `view`).
    let admin = |args: &[&str]| {
        let o = as_user("admin-token", args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        out(o)
    };
    let err = |o: std::process::Output| String::from_utf8_lossy(&o.stderr).trim().to_string();
    admin(&[
        "get",
        "clusterrole",
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:discovery",
    ]);
    admin(&[
        "get",
        "clusterrolebinding",
        "cluster-admin",
        "system:basic-user",
    ]);
    assert_eq!(
        admin(&[
            "create",
            "rolebinding",
            "bob-views",
            "--clusterrole=view",
            "--user=bob",
            "-n",
            "default"
        ]),
        "rolebinding.rbac.authorization.k8s.io/bob-views created"
    );
    let can = |args: &[&str]| {
        let mut all = vec!["auth", "can-i"];
        all.extend_from_slice(args);
        out(as_user("bob-token", &all))
    };
    assert!(
        eventually(Duration::from_secs(10), || can(&[
            "list", "pods", "-n", "default"
        ]) == "yes"),
        "view never took effect"
    );
    assert_eq!(
        err(as_user("bob-token", &["get", "pods", "-n", "default"])),
        "No resources found in default namespace."
    );
    assert_eq!(
        err(as_user("bob-token", &["get", "pods", "-n", "kube-system"])),
        "Error from server (Forbidden): pods is forbidden: User \"bob\" cannot list resource \"pods\" in API group \"\" in the namespace \"kube-system\""
    );
    assert_eq!(can(&["create", "deployments", "-n", "default"]), "no");
    assert_eq!(can(&["get", "secrets", "-n", "default"]), "no");
    let list = out(as_user(
        "bob-token",
        &["auth", "can-i", "--list", "-n", "default"],
    ));
    assert!(
        list.lines()
            .any(|l| l.starts_with("pods ") && l.contains("[get list watch]")),
        "{list}"
    );
    // A ClusterRole labelled to aggregate into `view` extends everyone who holds `view`.
    admin(&[
        "create",
        "clusterrole",
        "secret-lister",
        "--verb=list",
        "--resource=secrets",
    ]);
    admin(&[
        "label",
        "clusterrole",
        "secret-lister",
        "rbac.authorization.k8s.io/aggregate-to-view=true",
    ]);
    assert!(
        eventually(Duration::from_secs(10), || can(&[
            "list", "secrets", "-n", "default"
        ]) == "yes"),
        "aggregation never took effect"
    );

    // Escalation: allowed to write roles and bindings, bob still cannot grant what he lacks.
    admin(&[
        "create",
        "role",
        "rbac-writer",
        "-n",
        "default",
        "--verb=create,update,get",
        "--resource=roles.rbac.authorization.k8s.io,rolebindings.rbac.authorization.k8s.io",
    ]);
    admin(&[
        "create",
        "rolebinding",
        "bob-writes-rbac",
        "-n",
        "default",
        "--role=rbac-writer",
        "--user=bob",
    ]);
    assert!(eventually(Duration::from_secs(10), || can(&[
        "create", "roles", "-n", "default"
    ]) == "yes"));
    assert_eq!(
        err(as_user("bob-token", &["create", "role", "pod-killer", "-n", "default", "--verb=delete,get", "--resource=pods"])),
        "Error from server (Forbidden): roles.rbac.authorization.k8s.io \"pod-killer\" is forbidden: user \"bob\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"delete\"]}"
    );
    assert_eq!(
        out(as_user(
            "bob-token",
            &[
                "create",
                "role",
                "pod-reader",
                "-n",
                "default",
                "--verb=get,list",
                "--resource=pods"
            ]
        )),
        "role.rbac.authorization.k8s.io/pod-reader created"
    );
    assert_eq!(
        out(as_user(
            "bob-token",
            &[
                "create",
                "rolebinding",
                "carol-reads",
                "-n",
                "default",
                "--role=pod-reader",
                "--user=carol"
            ]
        )),
        "rolebinding.rbac.authorization.k8s.io/carol-reads created"
    );
    let bind_edit = err(as_user(
        "bob-token",
        &[
            "create",
            "rolebinding",
            "bob-edits",
            "-n",
            "default",
            "--clusterrole=edit",
            "--user=bob",
        ],
    ));
    assert!(
        bind_edit.starts_with("error: failed to create rolebinding: rolebindings.rbac.authorization.k8s.io \"bob-edits\" is forbidden: user \"bob\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:"),
        "{bind_edit}"
    );
    assert_eq!(
        admin(&["get", "rolebinding", "-n", "default", "-o", "name"]),
        "rolebinding.rbac.authorization.k8s.io/bob-views\nrolebinding.rbac.authorization.k8s.io/bob-writes-rbac\nrolebinding.rbac.authorization.k8s.io/carol-reads"
    );
    // `kubectl auth can-i --as` asks the same authorizer.
    assert_eq!(
        admin(&[
            "auth",
            "can-i",
            "get",
            "pods",
            "-n",
            "default",
            "--as=carol"
        ]),
        "yes"
    );
    // `kubectl auth reconcile` creates and extends roles as upstream's.
    let manifest = tmp.path().join("rbac.yaml");
    std::fs::write(&manifest, "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: pod-reader, namespace: default}\nrules:\n- {apiGroups: [\"\"], resources: [pods], verbs: [get, list, watch]}\n").expect("manifest");
    let reconciled = admin(&["auth", "reconcile", "-f", manifest.to_str().expect("utf8")]);
    assert!(
        reconciled.contains("role.rbac.authorization.k8s.io/pod-reader reconciled"),
        "{reconciled}"
    );
    assert_eq!(
        admin(&[
            "get",
            "role",
            "pod-reader",
            "-n",
            "default",
            "-o",
            "jsonpath={.rules[*].verbs}"
        ]),
        "[\"get\",\"list\"] [\"watch\"]"
    );
}

#[test]
fn service_account_tokens_authenticate_and_verify_with_the_published_keys() {
    let ferry = Ferry::start();
    let err = |o: Output| String::from_utf8_lossy(&o.stderr).trim().to_string();
    ferry.ok(&["create", "serviceaccount", "robot"]);
    let token = ferry.ok(&["create", "token", "robot"]).trim().to_string();
    let as_robot = |token: &str, args: &[&str]| ferry.kubectl_with_token(token, args);
    let whoami = as_robot(
        &token,
        &["auth", "whoami", "-o", "jsonpath={.status.userInfo}"],
    );
    let whoami = String::from_utf8_lossy(&whoami.stdout).to_string();
    assert!(
        whoami.contains("\"username\":\"system:serviceaccount:default:robot\"")
            && whoami.contains("system:serviceaccounts:default"),
        "{whoami}"
    );
    // RBAC applies to it like to anyone.
    assert_eq!(
        err(as_robot(&token, &["get", "pods"])),
        "Error from server (Forbidden): pods is forbidden: User \"system:serviceaccount:default:robot\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
    );
    ferry.ok(&[
        "create",
        "rolebinding",
        "robot-views",
        "--clusterrole=view",
        "--serviceaccount=default:robot",
    ]);
    assert!(eventually(Duration::from_secs(10), || as_robot(
        &token,
        &["get", "pods"]
    )
    .status
    .success()));

    // The token verifies with the keys the discovery document points at.
    let discovery: serde_json::Value =
        serde_json::from_str(&ferry.ok(&["get", "--raw", "/.well-known/openid-configuration"]))
            .expect("json");
    assert_eq!(
        discovery["issuer"],
        "https://kubernetes.default.svc.cluster.local"
    );
    assert_eq!(
        discovery["jwks_uri"],
        "https://kubernetes.default.svc.cluster.local/openid/v1/jwks"
    );
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_str(&ferry.ok(&["get", "--raw", "/openid/v1/jwks"])).expect("jwks");
    let header = jsonwebtoken::decode_header(&token).expect("header");
    let jwk = jwks
        .find(header.kid.as_deref().expect("kid"))
        .expect("key published");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&["https://kubernetes.default.svc.cluster.local"]);
    validation.set_issuer(&["https://kubernetes.default.svc.cluster.local"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key"),
        &validation,
    )
    .expect("the token verifies")
    .claims;
    assert_eq!(claims["sub"], "system:serviceaccount:default:robot");
    assert_eq!(claims["kubernetes.io"]["serviceaccount"]["name"], "robot");
    let lifetime = claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat");
    assert_eq!(lifetime, 3600);

    // A token for another audience is not for the API server; a short one is refused.
    let other = ferry
        .ok(&["create", "token", "robot", "--audience=vault"])
        .trim()
        .to_string();
    assert!(err(as_robot(&other, &["get", "pods"])).contains("Unauthorized"));
    let short = ferry.fails(&["create", "token", "robot", "--duration=5m"]);
    assert!(
        short.contains("spec.expirationSeconds: Invalid value: 300: may not specify a duration less than 10 minutes"),
        "{short}"
    );
    assert!(ferry
        .fails(&["create", "token", "nobody"])
        .contains("serviceaccounts \"nobody\" not found"));

    // A token bound to a Secret dies with it; every token dies with its service account.
    ferry.ok(&[
        "create",
        "secret",
        "generic",
        "anchor",
        "--from-literal=a=b",
    ]);
    let bound = ferry
        .ok(&[
            "create",
            "token",
            "robot",
            "--bound-object-kind=Secret",
            "--bound-object-name=anchor",
        ])
        .trim()
        .to_string();
    assert!(as_robot(&bound, &["get", "pods"]).status.success());
    ferry.ok(&["delete", "secret", "anchor"]);
    assert!(eventually(Duration::from_secs(15), || err(as_robot(
        &bound,
        &["get", "pods"]
    ))
    .contains("Unauthorized")));
    // TokenReview says the same, with the reason.
    let review = |token: &str| {
        let out = ferry.with_stdin(
            &["create", "-o", "jsonpath={.status.authenticated} {.status.error}", "-f", "-"],
            &format!("apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec:\n  token: {token}\n"),
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    };
    assert_eq!(review(&token), "true");
    assert_eq!(
        review(&bound),
        "false invalid credentials: secret \"anchor\" not found"
    );
    ferry.ok(&["delete", "serviceaccount", "robot"]);
    assert!(eventually(Duration::from_secs(15), || err(as_robot(
        &token,
        &["get", "pods"]
    ))
    .contains("Unauthorized")));

    // Legacy token Secrets: the token controller fills them; they go with their account.
    let unnamed = ferry.with_stdin(&["create", "-f", "-"], "apiVersion: v1\nkind: Secret\nmetadata: {name: loose}\ntype: kubernetes.io/service-account-token\n");
    assert!(
        String::from_utf8_lossy(&unnamed.stderr)
            .contains("metadata.annotations[kubernetes.io/service-account.name]: Required value"),
        "{}",
        String::from_utf8_lossy(&unnamed.stderr)
    );
    ferry.ok(&["create", "serviceaccount", "old-school"]);
    ferry.apply_yaml("create", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: old-school-token\n  annotations: {kubernetes.io/service-account.name: old-school}\ntype: kubernetes.io/service-account-token\n");
    let mut legacy = String::new();
    assert!(
        eventually(Duration::from_secs(10), || {
            legacy = ferry.ok(&[
                "get",
                "secret",
                "old-school-token",
                "-o",
                "jsonpath={.data.token}",
            ]);
            !legacy.is_empty()
        }),
        "the token controller never filled the secret"
    );
    use base64::Engine as _;
    let legacy = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(legacy.trim())
            .expect("base64"),
    )
    .expect("utf8");
    let whoami = as_robot(
        &legacy,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    );
    let who = String::from_utf8_lossy(&whoami.stdout).to_string();
    assert_eq!(
        who,
        "system:serviceaccount:default:old-school",
        "{}",
        err(whoami)
    );
    assert_eq!(
        ferry.ok(&[
            "get",
            "secret",
            "old-school-token",
            "-o",
            "jsonpath={.data.namespace}"
        ]),
        base64::engine::general_purpose::STANDARD.encode("default")
    );
    assert!(!ferry
        .ok(&[
            "get",
            "secret",
            "old-school-token",
            "-o",
            "jsonpath={.data.ca\\.crt}"
        ])
        .is_empty());
    ferry.ok(&["delete", "serviceaccount", "old-school"]);
    assert!(eventually(Duration::from_secs(10), || !ferry
        .kubectl(&["get", "secret", "old-school-token"])
        .status
        .success()));
    // (Authentications are remembered for ten seconds, as upstream's token cache does.)
    assert!(eventually(Duration::from_secs(15), || err(as_robot(
        &legacy,
        &["get", "pods"]
    ))
    .contains("Unauthorized")));
}

/// The Node authorizer's graph: a node may read the Secrets and ConfigMaps its pods use, one by
/// one, and nothing else of theirs.
#[test]
fn nodes_read_only_what_their_pods_use() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let ferry = Ferry::start_in(&data, &[]);
    let pki = ferry_apiserver::pki::Pki::load_or_create(&data.join("tls")).expect("pki");
    let as_node = |node: &str, args: &[&str]| {
        let pair = pki
            .client_cert(&format!("system:node:{node}"), Some("system:nodes"))
            .expect("node certificate");
        let (cert, key) = (
            tmp.path().join(format!("{node}.crt")),
            tmp.path().join(format!("{node}.key")),
        );
        std::fs::write(&cert, &pair.cert_pem).expect("cert");
        std::fs::write(&key, &pair.key_pem).expect("key");
        let out = Command::new("kubectl")
            .args(["--kubeconfig=/dev/null", "--server", &ferry.url])
            .arg(format!(
                "--certificate-authority={}",
                data.join("tls/ca.crt").display()
            ))
            .arg(format!("--client-certificate={}", cert.display()))
            .arg(format!("--client-key={}", key.display()))
            .args(args)
            .output()
            .expect("kubectl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        )
    };
    ferry.ok(&["create", "secret", "generic", "used", "--from-literal=a=b"]);
    ferry.ok(&[
        "create",
        "secret",
        "generic",
        "unused",
        "--from-literal=a=b",
    ]);
    ferry.ok(&["create", "configmap", "settings", "--from-literal=a=b"]);
    ferry.apply_yaml(
        "create",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: bound}\nspec:\n  nodeName: n1\n  containers:\n  - name: c\n    image: busybox\n    envFrom: [{configMapRef: {name: settings}}]\n  volumes: [{name: s, secret: {secretName: used}}]\n",
    );
    assert!(
        eventually(Duration::from_secs(10), || as_node(
            "n1",
            &["get", "secret", "used"]
        )
        .0),
        "{:?}",
        as_node("n1", &["get", "secret", "used"])
    );
    assert!(as_node("n1", &["get", "configmap", "settings"]).0);
    assert!(
        as_node("n1", &["get", "configmap", "kube-root-ca.crt"]).0,
        "the token volume's CA"
    );
    assert_eq!(
        as_node("n1", &["get", "secret", "unused"]).1,
        "Error from server (Forbidden): secrets \"unused\" is forbidden: User \"system:node:n1\" cannot get resource \"secrets\" in API group \"\" in the namespace \"default\": no relationship found between node 'n1' and this object"
    );
    assert_eq!(
        as_node("n1", &["get", "secrets"]).1,
        "Error from server (Forbidden): secrets is forbidden: User \"system:node:n1\" cannot list resource \"secrets\" in API group \"\" in the namespace \"default\": can only get individual resources of this type"
    );
    assert!(as_node("n2", &["get", "secret", "used"])
        .1
        .contains("no relationship found between node 'n2' and this object"));
    ferry.ok(&["delete", "pod", "bound", "--grace-period=0", "--force"]);
    assert!(eventually(Duration::from_secs(10), || !as_node(
        "n1",
        &["get", "secret", "used"]
    )
    .0));
}

/// `--audit-policy-file` and `--audit-log-path`: each request at the level of the first rule
/// that matches it, one `audit.k8s.io/v1` Event a line.
#[test]
fn the_audit_log_records_what_the_policy_says() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let policy = tmp.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n\
         - level: RequestResponse\n  verbs: [create]\n  resources: [{group: \"\", resources: [configmaps]}]\n\
         - level: Metadata\n  resources: [{group: \"\", resources: [secrets]}]\n\
         - level: None\n",
    )
    .expect("policy");
    let log = tmp.path().join("logs/audit.log");
    let data = tmp.path().join("data");
    let ferry = Ferry::start_in(
        &data,
        &[
            &format!("--audit-policy-file={}", policy.display()),
            &format!("--audit-log-path={}", log.display()),
        ],
    );
    ferry.ok(&["create", "configmap", "audited", "--from-literal=a=b"]);
    ferry.ok(&["get", "configmap", "audited"]);
    ferry.ok(&["get", "secrets"]);
    // kubectl's requests (the in-process controllers write too, with the admin's identity).
    let events = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("one JSON event a line"))
            .filter(|e| {
                e["userAgent"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("kubectl"))
            })
            .collect()
    };
    assert!(
        eventually(Duration::from_secs(5), || events().len() >= 2),
        "{:?}",
        events()
    );
    let events = events();
    assert_eq!(events.len(), 2, "only what the policy records: {events:?}");
    let created = &events[0];
    assert_eq!(created["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(created["kind"], "Event");
    assert_eq!(created["level"], "RequestResponse");
    assert_eq!(created["stage"], "ResponseComplete");
    assert_eq!(created["verb"], "create");
    assert_eq!(created["user"]["username"], "ferry-admin");
    assert_eq!(created["objectRef"]["resource"], "configmaps");
    assert_eq!(created["objectRef"]["namespace"], "default");
    assert_eq!(created["responseStatus"]["code"], 201);
    assert_eq!(created["sourceIPs"][0], "127.0.0.1");
    assert_eq!(created["requestObject"]["data"]["a"], "b");
    assert_eq!(created["responseObject"]["metadata"]["name"], "audited");
    let listed = &events[1];
    assert_eq!(listed["level"], "Metadata");
    assert_eq!(listed["verb"], "list");
    assert_eq!(listed["objectRef"]["resource"], "secrets");
    assert!(listed.get("requestObject").is_none() && listed.get("responseObject").is_none());
}

#[test]
fn typed_clients_send_protobuf_and_it_is_understood() {
    let ferry = Ferry::start();
    assert_eq!(
        ferry.ok(&["create", "namespace", "shop"]),
        "namespace/shop created\n"
    );
    assert_eq!(
        ferry.ok(&[
            "-n",
            "shop",
            "create",
            "configmap",
            "cfg",
            "--from-literal=a=1",
            "--from-literal=empty="
        ]),
        "configmap/cfg created\n"
    );
    assert_eq!(
        ferry.ok(&["-n", "shop", "get", "cm", "cfg", "-o", "jsonpath={.data}"]),
        r#"{"a":"1","empty":""}"#
    );
    assert_eq!(
        ferry.ok(&[
            "-n",
            "shop",
            "create",
            "secret",
            "generic",
            "db",
            "--from-literal=password=hunter2"
        ]),
        "secret/db created\n"
    );
    assert_eq!(
        ferry.ok(&[
            "-n",
            "shop",
            "get",
            "secret",
            "db",
            "-o",
            "jsonpath={.data.password}"
        ]),
        "aHVudGVyMg=="
    );
    assert_eq!(
        ferry.ok(&[
            "-n",
            "shop",
            "get",
            "secret",
            "db",
            "-o",
            "jsonpath={.type}"
        ]),
        "Opaque"
    );
    assert_eq!(
        ferry.ok(&[
            "-n",
            "shop",
            "create",
            "deployment",
            "web",
            "--image=busybox:1.36",
            "--replicas=3"
        ]),
        "deployment.apps/web created\n"
    );
    let deployment = ferry.ok(&[
        "-n",
        "shop",
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.replicas} {.spec.strategy.type} {.spec.selector.matchLabels.app}",
    ]);
    assert_eq!(deployment, "3 RollingUpdate web");
    assert_eq!(
        ferry.ok(&[
            "-n",
            "shop",
            "run",
            "task",
            "--image=busybox",
            "--restart=Never",
            "--",
            "sleep",
            "60"
        ]),
        "pod/task created\n"
    );
    let pod = ferry.ok(&[
        "-n",
        "shop",
        "get",
        "pod",
        "task",
        "-o",
        "jsonpath={.spec.containers[0].args} {.status.phase} {.spec.restartPolicy}",
    ]);
    assert_eq!(pod, r#"["sleep","60"] Pending Never"#);
    let pods = ferry.ok(&["-n", "shop", "get", "pods", "task"]);
    assert!(
        pods.starts_with(
            "NAME   READY   STATUS    RESTARTS   AGE\ntask   0/1     Pending   0          "
        ),
        "{pods}"
    );
    // Unbound pods are deleted at once.
    assert_eq!(
        ferry.ok(&["-n", "shop", "delete", "pod", "task"]),
        "pod \"task\" deleted\n"
    );
}

#[test]
fn openapi_serves_validation_explain_apply_and_edit() {
    let ferry = Ferry::start();
    let explain = ferry.ok(&["explain", "deployment.spec.strategy"]);
    assert!(
        explain.contains("GROUP:      apps") && explain.contains("KIND:       Deployment"),
        "{explain}"
    );
    assert!(
        explain.contains("FIELD: strategy <DeploymentStrategy>"),
        "{explain}"
    );
    assert!(
        explain.contains("rollingUpdate\t<RollingUpdateDeployment>"),
        "{explain}"
    );

    let typo = DEPLOYMENT.replace(
        "        image: busybox:1.36",
        "        imagee: busybox:1.36\n        image: busybox:1.36",
    );
    let refused = ferry.create_err(&typo);
    assert!(
        refused.contains(
            "strict decoding error: unknown field \"spec.template.spec.containers[0].imagee\""
        ),
        "{refused}"
    );

    // Client-side apply: create, then a three-way strategic merge patch.
    assert_eq!(
        ferry.apply_yaml("apply", DEPLOYMENT),
        "deployment.apps/web created\n"
    );
    let changed = DEPLOYMENT
        .replace("replicas: 2", "replicas: 4")
        .replace("busybox:1.36", "busybox:1.37");
    assert_eq!(
        ferry.apply_yaml("apply", &changed),
        "deployment.apps/web configured\n"
    );
    let applied = ferry.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[0].containerPort}"]);
    assert_eq!(applied, "4 busybox:1.37 80");
    assert_eq!(
        ferry.apply_yaml("apply", &changed),
        "deployment.apps/web unchanged\n"
    );

    // kubectl edit with an editor that changes the replicas.
    let edit = Command::new("kubectl")
        .env("KUBECONFIG", &ferry.kubeconfig)
        .env("KUBE_EDITOR", "sed -i s/replicas:\\ 4/replicas:\\ 6/")
        .args(["edit", "deployment", "web"])
        .output()
        .expect("kubectl edit");
    assert!(
        edit.status.success(),
        "{}",
        String::from_utf8_lossy(&edit.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&edit.stdout),
        "deployment.apps/web edited\n"
    );
    assert_eq!(
        ferry.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "6"
    );
}

#[test]
fn services_get_cluster_ips_and_node_ports() {
    let ferry = Ferry::start();
    let default = ferry.ok(&[
        "get",
        "svc",
        "kubernetes",
        "-o",
        "jsonpath={.spec.clusterIP} {.spec.ports[0].port}",
    ]);
    assert_eq!(default, "10.43.0.1 443");
    let endpoints = ferry.ok(&[
        "get",
        "endpoints",
        "kubernetes",
        "-o",
        "jsonpath={.subsets[0].addresses[0].ip}",
    ]);
    assert_eq!(endpoints, "127.0.0.1");

    assert_eq!(
        ferry.ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]),
        "service/web created\n"
    );
    let ip = ferry.ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    assert!(ip.starts_with("10.43.") && ip != "10.43.0.1", "{ip}");
    let table = ferry.ok(&["get", "svc", "web"]);
    assert!(
        table.contains(&format!("web    ClusterIP   {ip}")) && table.contains("80/TCP"),
        "{table}"
    );

    assert_eq!(
        ferry.ok(&["create", "service", "nodeport", "edge", "--tcp=443:8443"]),
        "service/edge created\n"
    );
    let node_port: u16 = ferry
        .ok(&[
            "get",
            "svc",
            "edge",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ])
        .parse()
        .expect("a node port");
    assert!((30000..=32767).contains(&node_port));

    // An explicit address already taken is refused; once freed it can be had.
    let taken = format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: twin\n  namespace: default\nspec:\n  clusterIP: {ip}\n  ports:\n  - port: 80\n");
    let refused = ferry.create_err(&taken);
    assert!(
        refused.contains(&format!(
            "failed to allocate IP {ip}: provided IP is already allocated"
        )),
        "{refused}"
    );
    ferry.ok(&["delete", "svc", "web"]);
    assert_eq!(ferry.apply_yaml("create", &taken), "service/twin created\n");
}

#[test]
fn bad_services_are_refused_with_upstream_wording() {
    let ferry = Ferry::start();
    let service = |name: &str, spec: &str| {
        format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n{spec}")
    };
    let cases = [
        (
            service("noports", "  selector: {app: web}\n"),
            "The Service \"noports\" is invalid: spec.ports: Required value",
        ),
        (
            service("pinned", "  ports:\n  - {port: 80, nodePort: 30080}\n"),
            "The Service \"pinned\" is invalid: spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
        ),
        (
            service("dual", "  ipFamilyPolicy: RequireDualStack\n  ports:\n  - {port: 80}\n"),
            "The Service \"dual\" is invalid: spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services",
        ),
        (
            service("far", "  type: NodePort\n  ports:\n  - {port: 80, nodePort: 8080}\n"),
            "The Service \"far\" is invalid: spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767",
        ),
        (
            service("alias", "  type: ExternalName\n  externalName: db.example.com\n  clusterIP: 10.43.0.77\n"),
            "The Service \"alias\" is invalid: spec.clusterIPs: Forbidden: may not be set for ExternalName services",
        ),
    ];
    for (yaml, want) in cases {
        let refused = ferry.create_err(&yaml);
        assert!(refused.contains(want), "{refused}");
    }
    // kubectl's generator names ports after their numbers: two alike are two errors.
    let twins = ferry.fails(&[
        "create",
        "service",
        "clusterip",
        "twins",
        "--tcp=80:80,443,443",
    ]);
    assert_eq!(
        twins,
        "error: failed to create ClusterIP service: Service \"twins\" is invalid: [spec.ports[2].name: Duplicate value: \"443\", spec.ports[2]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:443, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}]\n"
    );
    // PreferDualStack is served as one IPv4 address; the address never changes.
    let prefer = service(
        "web",
        "  ipFamilyPolicy: PreferDualStack\n  selector: {app: web}\n  ports:\n  - {port: 80}\n",
    );
    assert_eq!(ferry.apply_yaml("create", &prefer), "service/web created\n");
    assert_eq!(
        ferry.ok(&["get", "svc", "web", "-o", "jsonpath={.spec.ipFamilyPolicy} {.spec.ipFamilies} {.spec.internalTrafficPolicy} {.spec.ports[0].targetPort}"]),
        "PreferDualStack [\"IPv4\"] Cluster 80"
    );
    let moved = ferry.fails(&[
        "patch",
        "svc",
        "web",
        "-p",
        r#"{"spec":{"clusterIP":"10.43.9.9"}}"#,
    ]);
    assert!(
        moved.contains("The Service \"web\" is invalid: spec.clusterIPs[0]: Invalid value: []string{\"10.43.9.9\"}: may not change once set"),
        "{moved}"
    );
}

/// Every address and node port reserved before a kill -9 stays reserved after it: services
/// created afterwards never get them, asking for them is refused, and a type change frees its
/// node port for someone else.
#[test]
fn service_addresses_and_node_ports_survive_a_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let allocated = |ferry: &Ferry, name: &str| {
        let out = ferry.ok(&[
            "get",
            "svc",
            name,
            "-o",
            "jsonpath={.spec.clusterIP} {.spec.ports[0].nodePort}",
        ]);
        let (ip, port) = out.split_once(' ').unwrap_or((out.as_str(), ""));
        (ip.to_string(), port.to_string())
    };
    let create_services = |ferry: &Ferry, prefix: &str| {
        (0..4)
            .map(|i| {
                let name = format!("{prefix}{i}");
                ferry.ok(&["create", "service", "nodeport", &name, "--tcp=80:8080"]);
                allocated(ferry, &name)
            })
            .collect::<Vec<_>>()
    };
    let mut ferry = Ferry::start_in(tmp.path(), &[]);
    let before = create_services(&ferry, "before");
    ferry.kill_hard();

    let ferry = Ferry::start_in(tmp.path(), &[]);
    assert_eq!(allocated(&ferry, "before0"), before[0]);
    let after = create_services(&ferry, "after");
    let mut ips: Vec<&String> = before.iter().chain(&after).map(|(ip, _)| ip).collect();
    let mut ports: Vec<&String> = before.iter().chain(&after).map(|(_, port)| port).collect();
    ips.push(&before[0].0);
    ips.sort();
    ips.dedup();
    ports.sort();
    ports.dedup();
    assert_eq!((ips.len(), ports.len()), (8, 8), "{before:?} {after:?}");
    assert!(!ips.iter().any(|ip| ip.as_str() == "10.43.0.1"), "{ips:?}");

    let (ip, port) = &before[1];
    let twin = format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: twin\n  namespace: default\nspec:\n  type: NodePort\n  clusterIP: {ip}\n  ports:\n  - port: 80\n");
    let refused = ferry.create_err(&twin);
    assert!(
        refused.contains(&format!(
            "failed to allocate IP {ip}: provided IP is already allocated"
        )),
        "{refused}"
    );
    let port_twin = format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: twin\n  namespace: default\nspec:\n  type: NodePort\n  ports:\n  - port: 80\n    nodePort: {port}\n");
    let refused = ferry.create_err(&port_twin);
    assert!(
        refused.contains(&format!(
            "spec.ports[0].nodePort: Invalid value: {port}: provided port is already allocated"
        )),
        "{refused}"
    );

    // NodePort → ClusterIP gives the node port up (and keeps the address).
    ferry.ok(&[
        "patch",
        "svc",
        "before1",
        "-p",
        r#"{"spec":{"type":"ClusterIP"}}"#,
    ]);
    assert_eq!(allocated(&ferry, "before1"), (ip.clone(), String::new()));
    assert_eq!(
        ferry.apply_yaml("create", &port_twin),
        "service/twin created\n"
    );
    assert_eq!(allocated(&ferry, "twin").1, *port);
}

#[test]
fn the_etcd_backend_serves_kubectl_too() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let etcd = runtime
        .block_on(ferry_store::etcd::process::EtcdProcess::start())
        .expect("etcd (Debian package etcd-server)");
    let tmp = tempfile::tempdir().expect("tempdir");
    let endpoint = etcd.endpoint();
    let ferry = Ferry::start_in(
        tmp.path(),
        &["--store", "etcd", "--etcd-endpoints", &endpoint],
    );
    assert_eq!(
        ferry.ok(&["create", "configmap", "in-etcd", "--from-literal=k=v"]),
        "configmap/in-etcd created\n"
    );
    assert_eq!(
        ferry.ok(&["get", "cm", "in-etcd", "-o", "jsonpath={.data.k}"]),
        "v"
    );
    // The objects are under /registry in etcd, as kube-apiserver keeps them.
    let direct = runtime.block_on(async {
        let client = ferry_store::etcd::EtcdStore::connect(std::slice::from_ref(&endpoint), "")
            .await
            .expect("connect");
        ferry_store::Store::get(&client, b"/registry/configmaps/default/in-etcd")
            .await
            .expect("get")
    });
    assert!(direct.is_some());
    drop(ferry);
    drop(etcd);
}

#[test]
fn both_event_apis_share_one_storage() {
    let ferry = Ferry::start();
    let new_style = "apiVersion: events.k8s.io/v1
kind: Event
metadata: {name: new-style, namespace: default}
eventTime: '2026-11-26T10:00:00.000000Z'
reportingController: ferry.dev/test
reportingInstance: test-1
action: Testing
reason: NewStyle
type: Normal
note: written through events.k8s.io
regarding: {kind: Pod, name: somepod, namespace: default, apiVersion: v1}
";
    ferry.apply_yaml("create", new_style);
    // Read through core/v1, with its field names and field selectors.
    let core = ferry.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=somepod",
        "-o",
        "jsonpath={.items[*].message}/{.items[*].reportingComponent}",
    ]);
    assert_eq!(core, "written through events.k8s.io/ferry.dev/test");
    // And a core/v1 event through events.k8s.io/v1.
    let old_style = "apiVersion: v1
kind: Event
metadata: {name: old-style, namespace: default}
involvedObject: {kind: Pod, name: otherpod, namespace: default}
reason: OldStyle
message: written through core/v1
type: Normal
count: 3
";
    ferry.apply_yaml("create", old_style);
    let new = ferry.ok(&[
        "get",
        "events.v1.events.k8s.io",
        "old-style",
        "-o",
        "jsonpath={.note}/{.regarding.name}/{.deprecatedCount}",
    ]);
    assert_eq!(new, "written through core/v1/otherpod/3");
}

#[test]
fn unknown_fields_warn_and_are_dropped() {
    let ferry = Ferry::start();
    let yaml = "apiVersion: v1
kind: ConfigMap
metadata: {name: sloppy, namespace: default}
data: {a: b}
colour: blue
";
    let out = ferry.with_stdin(&["create", "-f", "-", "--validate=warn"], yaml);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Warning: unknown field \"colour\""),
        "{stderr}"
    );
    // Dropped, as upstream's typed decoding drops it.
    let stored = ferry.ok(&["get", "configmap", "sloppy", "-o", "json"]);
    assert!(!stored.contains("colour"), "{stored}");
    // Strict (kubectl's default) still refuses.
    let refused = ferry.with_stdin(&["create", "-f", "-"], &yaml.replace("sloppy", "strict"));
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr)
        .contains("strict decoding error: unknown field \"colour\""));
}

#[test]
fn deletes_honour_grace_periods_and_force() {
    let ferry = Ferry::start();
    // Bound to a node no kubelet runs on: deletion waits for a kubelet that never comes.
    let pod = "apiVersion: v1
kind: Pod
metadata: {name: lingering, namespace: default}
spec:
  nodeName: ghost
  containers: [{name: app, image: busybox}]
";
    ferry.apply_yaml("create", pod);
    let out = ferry.ok(&[
        "delete",
        "pod",
        "lingering",
        "--grace-period=5",
        "--wait=false",
    ]);
    assert_eq!(out, "pod \"lingering\" deleted\n");
    let marked = ferry.ok(&[
        "get",
        "pod",
        "lingering",
        "-o",
        "jsonpath={.metadata.deletionGracePeriodSeconds} {.metadata.deletionTimestamp}",
    ]);
    let (grace, timestamp) = marked.split_once(' ').expect("marked for deletion");
    assert_eq!(grace, "5");
    assert!(!timestamp.is_empty());
    let table = ferry.ok(&["get", "pod", "lingering"]);
    assert!(table.contains("Terminating"), "{table}");
    // --wait gives up after its timeout while the pod is still there.
    let waited = ferry.kubectl(&["delete", "pod", "lingering", "--timeout=2s"]);
    assert!(!waited.status.success());
    // Force: gone at once.
    let forced = ferry.kubectl(&["delete", "pod", "lingering", "--grace-period=0", "--force"]);
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    assert!(String::from_utf8_lossy(&forced.stderr)
        .contains("Immediate deletion does not wait for confirmation"));
    assert!(ferry
        .fails(&["get", "pod", "lingering"])
        .contains("NotFound"));
}

/// The kind added by following docs/ARCHITECTURE.md's "Adding a kind": IPAddress (and
/// ServiceCIDR), served as upstream 1.33 serves them.
#[test]
fn ip_addresses_and_service_cidrs_are_served() {
    let ferry = Ferry::start();
    let resources = ferry.ok(&["api-resources", "--api-group=networking.k8s.io"]);
    let ip = resources
        .lines()
        .find(|l| l.starts_with("ipaddresses "))
        .expect("ipaddresses listed");
    assert_eq!(
        ip.split_whitespace().collect::<Vec<_>>(),
        [
            "ipaddresses",
            "ip",
            "networking.k8s.io/v1",
            "false",
            "IPAddress"
        ]
    );
    ferry.apply_yaml(
        "create",
        "apiVersion: networking.k8s.io/v1
kind: IPAddress
metadata:
  name: 10.43.7.7
spec:
  parentRef:
    resource: services
    namespace: default
    name: web
---
apiVersion: networking.k8s.io/v1
kind: ServiceCIDR
metadata:
  name: extra
spec:
  cidrs: [10.44.0.0/16]
",
    );
    let listed = ferry.ok(&["get", "ip"]);
    assert!(listed.starts_with("NAME        PARENTREF\n"), "{listed}");
    assert!(
        listed.contains("10.43.7.7   services/default/web"),
        "{listed}"
    );
    let cidrs = ferry.ok(&["get", "servicecidrs"]);
    assert!(cidrs.contains("extra   10.44.0.0/16"), "{cidrs}");
    let err = ferry.create_err(
        "apiVersion: networking.k8s.io/v1
kind: IPAddress
metadata:
  name: 10.43.07.7
spec:
  parentRef: {resource: services, name: web}
",
    );
    assert!(
        err.contains("The IPAddress \"10.43.07.7\" is invalid: metadata.name: Invalid value: \"10.43.07.7\": must be a valid IP address"),
        "{err}"
    );
    let explained = ferry.ok(&["explain", "ipaddress.spec.parentRef"]);
    assert!(explained.contains("resource"), "{explained}");
}

/// Subresources are served as the registry registers them per kind; one discovery lists but
/// ferry does not serve yet (`pods/log`) is a 404, never the parent object.
#[test]
fn unserved_subresources_are_not_found() {
    let ferry = Ferry::start();
    ferry.ok(&["run", "p", "--image=busybox:1.36", "--restart=Never"]);
    let err = ferry.fails(&["get", "--raw", "/api/v1/namespaces/default/pods/p/proxy"]);
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );
    // The log is served: a pod on no node has an empty one (upstream), a missing pod none.
    assert_eq!(
        ferry.ok(&["get", "--raw", "/api/v1/namespaces/default/pods/p/log"]),
        ""
    );
    let missing = ferry.fails(&["logs", "nothing"]);
    assert!(missing.contains(r#"pods "nothing" not found"#), "{missing}");
    let scale = ferry.fails(&["get", "--raw", "/api/v1/namespaces/default/pods/p/scale"]);
    assert!(
        scale.contains("NotFound") || scale.contains("not found"),
        "{scale}"
    );
    let status = ferry.ok(&["get", "--raw", "/api/v1/namespaces/default/pods/p/status"]);
    assert!(status.contains("\"kind\":\"Pod\""), "{status}");
}

/// The controllers act as upstream's do with `--use-service-account-credentials`: each as its
/// own service account in kube-system, with only its `system:controller:<name>` role.
#[test]
fn controllers_act_as_their_service_accounts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ferry = Ferry::start_in(tmp.path(), &["--use-service-account-credentials=true"]);
    let as_controller = |name: &str, verb: &str, resource: &str| {
        ferry.ok(&[
            "auth",
            "can-i",
            verb,
            resource,
            &format!("--as=system:serviceaccount:kube-system:{name}"),
        ])
    };
    assert_eq!(
        as_controller("deployment-controller", "create", "replicasets").trim(),
        "yes"
    );
    let secrets = ferry.kubectl(&[
        "auth",
        "can-i",
        "create",
        "secrets",
        "--as=system:serviceaccount:kube-system:deployment-controller",
    ]);
    assert_eq!(String::from_utf8_lossy(&secrets.stdout).trim(), "no");
    assert!(ferry
        .ok(&[
            "get",
            "clusterrole",
            "system:kube-controller-manager",
            "-o",
            "name"
        ])
        .contains("system:kube-controller-manager"));

    // The manager made the account; the controller works through it and its events appear.
    assert!(eventually(Duration::from_secs(20), || ferry
        .kubectl(&["get", "sa", "-n", "kube-system", "deployment-controller"])
        .status
        .success()));
    ferry.ok(&["create", "deployment", "web", "--image=nginx"]);
    assert!(eventually(Duration::from_secs(20), || {
        ferry
            .ok(&["get", "rs", "-l", "app=web", "-o", "name"])
            .contains("replicaset.apps/web-")
    }));
    assert!(eventually(Duration::from_secs(20), || {
        ferry
            .ok(&[
                "get",
                "events",
                "--field-selector=involvedObject.name=web",
                "-o=jsonpath={.items[*].source.component}",
            ])
            .contains("deployment-controller")
    }));
    // Its account deleted, its token is refused; the manager makes the account again with a
    // new token at once, and the controller goes on.
    ferry.ok(&["delete", "sa", "-n", "kube-system", "deployment-controller"]);
    ferry.ok(&["create", "deployment", "again", "--image=nginx"]);
    assert!(
        eventually(Duration::from_secs(20), || {
            ferry
                .ok(&["get", "rs", "-l", "app=again", "-o", "name"])
                .contains("replicaset.apps/again-")
        }),
        "no ReplicaSet after the account was deleted"
    );
    // Without its binding the deployment controller may no longer create ReplicaSets: it was
    // acting as its service account, not as a master.
    ferry.ok(&[
        "delete",
        "clusterrolebinding",
        "system:controller:deployment-controller",
    ]);
    std::thread::sleep(Duration::from_secs(2));
    ferry.ok(&["create", "deployment", "unbound", "--image=nginx"]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        ferry
            .ok(&["get", "rs", "-l", "app=unbound", "-o", "name"])
            .trim(),
        ""
    );
}
