//! A node joining `ferry server` with its join token (issue 6), as upstream's TLS
//! bootstrapping: the agent pins the CA by the token's hash, asks for a client certificate with
//! a CSR as `system:bootstrap:<id>`, the controller manager approves and signs it, and the node
//! then works as `system:node:<name>` with the Node authorizer's limits.

mod common;

use std::path::PathBuf;

use common::Ferry;
use ferry_client::bootstrap::{bootstrap_kubeconfig, BootstrapError};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};

fn data_dir(ferry: &Ferry) -> PathBuf {
    ferry
        .kubeconfig
        .parent()
        .expect("the kubeconfig is in the data dir")
        .to_path_buf()
}

fn join_token(ferry: &Ferry) -> String {
    let path = data_dir(ferry).join("join-token");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&path)
        .expect("join token written")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "only the server's user reads the token"
    );
    std::fs::read_to_string(path)
        .expect("join token")
        .trim()
        .to_string()
}

fn node(name: &str) -> Node {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).expect("node")
}

fn code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_and_works_as_itself() {
    let ferry = Ferry::start();
    let token = join_token(&ferry);
    assert!(token.starts_with("K10"), "{token}");
    let agent = tempfile::tempdir().expect("tempdir");
    let kubeconfig = bootstrap_kubeconfig(&ferry.url, &token, "n1", agent.path())
        .await
        .expect("joined");
    assert_eq!(kubeconfig, agent.path().join("kubelet.kubeconfig"));
    for file in ["kubelet-client.crt", "kubelet-client.key", "ca.crt"] {
        assert!(agent.path().join(file).exists(), "{file}");
    }

    let client = ferry_client::connect(&kubeconfig, "ferry-test")
        .await
        .expect("the kubeconfig loads");
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .create(&PostParams::default(), &node("n1"))
        .await
        .expect("a node creates its own Node");
    nodes.get("n1").await.expect("and reads it");
    nodes
        .patch(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"labels": {"joined": "yes"}}})),
        )
        .await
        .expect("and updates it");

    // Another node's object, made by the admin: readable, not writable.
    let out = ferry.with_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: n2\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut n2 = nodes.get("n2").await.expect("other nodes are readable");
    n2.metadata.labels = Some([("stolen".to_string(), "yes".to_string())].into());
    let error = nodes
        .replace("n2", &PostParams::default(), &n2)
        .await
        .expect_err("updating another node");
    assert_eq!(code(&error), Some(403), "{error}");

    let pods: Api<Pod> = Api::all(client.clone());
    pods.list(&ListParams::default())
        .await
        .expect("a node lists pods");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}))
    .expect("deployment");
    let error = deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect_err("a node creates no deployments");
    assert_eq!(code(&error), Some(403), "{error}");

    // NodeRestriction: pods bound to it only, no pod creation, no other Node.
    let out = ferry.with_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata: {name: mine}\nspec: {nodeName: n1, containers: [{name: c, image: busybox}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: theirs}\nspec: {nodeName: n2, containers: [{name: c, image: busybox}]}\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let in_default: Api<Pod> = Api::namespaced(client.clone(), "default");
    let error = in_default
        .delete("theirs", &Default::default())
        .await
        .expect_err("deleting a pod of another node");
    assert_eq!(code(&error), Some(403), "{error}");
    let error = in_default
        .patch_status(
            "theirs",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": {"phase": "Failed"}})),
        )
        .await
        .expect_err("writing the status of another node's pod");
    assert_eq!(code(&error), Some(403), "{error}");
    in_default
        .patch_status(
            "mine",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": {"phase": "Running"}})),
        )
        .await
        .expect("its own pod's status");
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "planted"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}}))
    .expect("pod");
    let error = in_default
        .create(&PostParams::default(), &pod)
        .await
        .expect_err("a node creates no pods");
    assert_eq!(code(&error), Some(403), "{error}");
    let other: Node =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "n3"}})).expect("node");
    let error = nodes
        .create(&PostParams::default(), &other)
        .await
        .expect_err("a node creates no other Node");
    assert_eq!(code(&error), Some(403), "{error}");
    in_default
        .delete("mine", &Default::default())
        .await
        .expect("deleting its own pod");

    // The CSR as kubectl shows it, and who asked for it.
    let csrs = ferry.ok(&["get", "csr"]);
    assert!(csrs.contains("Approved,Issued"), "{csrs}");
    assert!(
        csrs.contains("kubernetes.io/kube-apiserver-client-kubelet"),
        "{csrs}"
    );
    assert!(csrs.contains("system:bootstrap:"), "{csrs}");
    let can_i = ferry.kubectl(&[
        "auth",
        "can-i",
        "update",
        "nodes/n2",
        "--as=system:node:n1",
        "--as-group=system:nodes",
    ]);
    let answer = String::from_utf8_lossy(&can_i.stdout);
    assert!(answer.starts_with("no"), "{answer}");
    let can_i = ferry.kubectl(&[
        "auth",
        "can-i",
        "update",
        "nodes/n1",
        "--as=system:node:n1",
        "--as-group=system:nodes",
    ]);
    assert_eq!(String::from_utf8_lossy(&can_i.stdout).trim(), "yes");

    // A second start reuses the certificate: no new CSR.
    let again = bootstrap_kubeconfig(&ferry.url, &token, "n1", agent.path())
        .await
        .expect("reused");
    assert_eq!(again, kubeconfig);
    let csrs = ferry.ok(&["get", "csr", "-o", "name"]);
    assert_eq!(csrs.lines().count(), 1, "{csrs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_401() {
    let ferry = Ferry::start();
    let token = join_token(&ferry);
    let (rest, secret) = token.rsplit_once('.').expect("id.secret");
    let other = if secret.starts_with('a') { "b" } else { "a" };
    let wrong = format!("{rest}.{other}{}", &secret[1..]);
    let agent = tempfile::tempdir().expect("tempdir");
    let error = bootstrap_kubeconfig(&ferry.url, &wrong, "n1", agent.path())
        .await
        .expect_err("a wrong secret");
    match &error {
        BootstrapError::Api(e) => assert_eq!(code(e), Some(401), "{e}"),
        other => panic!("expected 401, got {other}"),
    }
    assert!(!agent.path().join("kubelet.kubeconfig").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_hash_stops_before_any_credential_is_sent() {
    let ferry = Ferry::start();
    let token = join_token(&ferry);
    let hash = &token[3..67];
    let flipped = if hash.starts_with('0') { "1" } else { "0" };
    let wrong = format!("K10{flipped}{}", &token[4..]);
    assert_ne!(&wrong[3..67], hash);
    let agent = tempfile::tempdir().expect("tempdir");
    let error = bootstrap_kubeconfig(&ferry.url, &wrong, "n1", agent.path())
        .await
        .expect_err("another CA");
    assert!(matches!(error, BootstrapError::CaMismatch), "{error}");
    let csrs = ferry.ok(&["get", "csr", "-o", "name"]);
    assert!(csrs.trim().is_empty(), "{csrs}");
    // Not a token at all.
    let error = bootstrap_kubeconfig(&ferry.url, "abcdef.0123456789abcdef", "n1", agent.path())
        .await
        .expect_err("not a join token");
    assert!(matches!(error, BootstrapError::InvalidToken(_)), "{error}");
}
