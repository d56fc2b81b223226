//! The authorization figures of `ferry bench api`:
//!
//! - **decision time**: the server's authorizer chain (privileged groups, Node, RBAC) over a
//!   policy of 200 ClusterRoles and 1,000 RoleBindings loaded from an embedded store, deciding
//!   for a user allowed by one of its bindings; reference: the same chain deciding for a
//!   `system:masters` user (allowed by the first authorizer);
//! - **pod creates/s** by a user whose rights come from RBAC (the same policy in the server)
//!   through the default admission plugins and one ValidatingAdmissionPolicy in CEL, next to
//!   the same creates on a server run in the same process with
//!   `--authorization-mode=AlwaysAllow` and every admission plugin off.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::Bytes;
use ferry_apiserver::auth::{Authorizer, AuthorizerChain, PrivilegedGroups, UserInfo};
use ferry_apiserver::pki::Pki;
use ferry_store::embedded::{Config, EmbeddedStore};
use ferry_store::Store;
use serde_json::{json, Value};

use super::api::{create_pods, percentiles, pod, start_server_with, Connection};

/// Roles in the policy.
const ROLES: usize = 200;
/// Bindings in the policy.
const BINDINGS: usize = 1000;
/// Namespaces the bindings are spread over.
const NAMESPACES: usize = 50;
/// The user whose requests are measured.
const USER: &str = "bench-user";

/// What this part measured.
pub struct Figures {
    /// RBAC-allowed decision, p50 and p99 (µs).
    pub decision_us: (f64, f64),
    /// The reference decision (system:masters), p50 and p99 (µs).
    pub reference_us: (f64, f64),
    /// Pod creates/s with RBAC and admission.
    pub rbac_creates_per_s: f64,
    /// Pod creates/s with AlwaysAllow and no admission.
    pub open_creates_per_s: f64,
}

fn cluster_role(i: usize) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
    "metadata": {"name": format!("bench-role-{i}")},
    "rules": [
        {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": [format!("things{i}"), "configmaps"]},
        {"verbs": ["create", "update"], "apiGroups": ["apps"], "resources": ["deployments", format!("widgets{i}")]},
        {"verbs": ["get"], "apiGroups": ["batch"], "resources": ["jobs"], "resourceNames": [format!("job-{i}")]},
        // The one role the measured user holds also lets it create pods.
        {"verbs": if i == 7 { json!(["create", "get"]) } else { json!(["get"]) }, "apiGroups": [""], "resources": ["pods"]},
    ]})
}

fn role_binding(i: usize) -> Value {
    let namespace = format!("bench-{}", i % NAMESPACES);
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": format!("binding-{i}"), "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": format!("bench-role-{}", i % ROLES)},
        "subjects": [
            {"kind": "User", "name": format!("user-{i}"), "apiGroup": "rbac.authorization.k8s.io"},
            {"kind": "Group", "name": format!("team-{}", i % 20), "apiGroup": "rbac.authorization.k8s.io"}]})
}

/// The binding that gives the measured user its role, in `default`.
fn user_binding() -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "bench-user", "namespace": "default"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "bench-role-7"},
        "subjects": [{"kind": "User", "name": USER, "apiGroup": "rbac.authorization.k8s.io"}]})
}

/// The policy as the store holds it: keys and values as the API server writes them.
fn policy_objects() -> Vec<(String, Value)> {
    let mut objects: Vec<(String, Value)> = (0..ROLES)
        .map(|i| (format!("/clusterroles/bench-role-{i}"), cluster_role(i)))
        .collect();
    objects.extend((0..BINDINGS).map(|i| {
        (
            format!("/rolebindings/bench-{}/binding-{i}", i % NAMESPACES),
            role_binding(i),
        )
    }));
    objects.push(("/rolebindings/default/bench-user".into(), user_binding()));
    objects
}

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo {
        name: name.into(),
        uid: String::new(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

/// Decision times of `chain` for `who`, in µs (p50, p99).
fn decision_times(
    chain: &AuthorizerChain,
    who: &UserInfo,
    rounds: usize,
) -> anyhow::Result<(f64, f64)> {
    let request = ferry_apiserver::request::parse("POST", "/api/v1/namespaces/default/pods", false);
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        let decision = chain.authorize(who, &request);
        samples.push(t.elapsed());
        if decision != ferry_apiserver::auth::Decision::Allow {
            bail!("{} was not allowed to create pods: {decision:?}", who.name);
        }
    }
    let (p50, p99) = percentiles(samples);
    Ok((p50 * 1000.0, p99 * 1000.0))
}

async fn decisions() -> anyhow::Result<((f64, f64), (f64, f64))> {
    let dir = tempfile::tempdir()?;
    let mut config = Config::new(dir.path());
    config.auto_compaction = None;
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(config).await?);
    for (key, object) in policy_objects() {
        store
            .put(Bytes::from(key), Bytes::from(object.to_string()))
            .await?;
    }
    let policy = ferry_apiserver::rbac::Policy::new();
    policy.start(store).await?;
    let chain = AuthorizerChain(vec![
        Box::new(PrivilegedGroups),
        Box::new(ferry_apiserver::node_authorizer::NodeAuthorizer(
            ferry_apiserver::node_graph::NodeGraph::new(),
        )),
        Box::new(ferry_apiserver::rbac::RbacAuthorizer(policy)),
    ]);
    let member = user(USER, &["team-3", "team-9", "system:authenticated"]);
    let master = user("admin", &["system:masters", "system:authenticated"]);
    // Warm up, then measure.
    decision_times(&chain, &member, 10_000)?;
    let rbac = decision_times(&chain, &member, 200_000)?;
    let reference = decision_times(&chain, &master, 200_000)?;
    Ok((rbac, reference))
}

/// Creates `pods` pods as the benchmark user on a server started with `flags`, after the
/// admin wrote the policy; creates/s.
async fn creates(flags: &[&str], pods: usize, clients: usize) -> anyhow::Result<f64> {
    let tmp = tempfile::tempdir()?;
    let data_dir = tmp.path().join("server");
    let mut all = vec!["--disable-controllers", "--disable-scheduler"];
    all.extend_from_slice(flags);
    let (server, address, _) = start_server_with(&data_dir, &all)?;
    let pki = Pki::load_or_create(&data_dir.join("tls"))?;
    let admin_tls = Arc::new(pki.client_tls(&pki.admin)?);
    let user_tls = Arc::new(pki.client_tls(&pki.client_cert(USER, None)?)?);
    let mut admin = Connection::open(&address, admin_tls).await?;
    let post = |path: String, body: Value| (path, body);
    let mut writes = vec![post(
        "/api/v1/namespaces/default/serviceaccounts".into(),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}),
    )];
    for n in 0..NAMESPACES {
        writes.push(post("/api/v1/namespaces".into(), json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("bench-{n}")}})));
    }
    for i in 0..ROLES {
        writes.push(post(
            "/apis/rbac.authorization.k8s.io/v1/clusterroles".into(),
            cluster_role(i),
        ));
    }
    for i in 0..BINDINGS {
        let namespace = format!("bench-{}", i % NAMESPACES);
        writes.push(post(
            format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings"),
            role_binding(i),
        ));
    }
    writes.push(post(
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings".into(),
        user_binding(),
    ));
    // One CEL policy every pod create goes through (only when admission is on).
    writes.push(post(
        "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies".into(),
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": "images.bench.ferry"},
            "spec": {"matchConstraints": {"resourceRules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]},
                "validations": [{"expression": "object.spec.containers.all(c, c.image != '')"}]}}),
    ));
    writes.push(post(
        "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings".into(),
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": "images.bench.ferry"},
            "spec": {"policyName": "images.bench.ferry", "validationActions": ["Deny"]}}),
    ));
    for (path, body) in writes {
        let (status, answer) = admin.request("POST", &path, Some(&body)).await?;
        if status != 201 {
            bail!(
                "setting up {path}: {status} {}",
                String::from_utf8_lossy(&answer)
            );
        }
    }
    // The policy reaches the authorizer through a watch: wait for the user's first create.
    let mut probe = Connection::open(&address, user_tls.clone()).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = probe
            .request(
                "POST",
                "/api/v1/namespaces/default/pods",
                Some(&pod("probe")),
            )
            .await?;
        if status == 201 {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the benchmark user never could create pods: {status} {}",
                String::from_utf8_lossy(&body)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    create_pods(&address, &user_tls, pods, clients).await?;
    let rate = pods as f64 / started.elapsed().as_secs_f64();
    drop(server);
    Ok(rate)
}

/// Runs both measurements.
pub async fn measure(pods: usize, clients: usize) -> anyhow::Result<Figures> {
    let (decision_us, reference_us) = decisions().await?;
    println!(
        "authz:    RBAC decision ({ROLES} roles, {BINDINGS} bindings) p50 {:.2} µs, p99 {:.2} µs; reference (system:masters) p50 {:.2} µs, p99 {:.2} µs",
        decision_us.0, decision_us.1, reference_us.0, reference_us.1
    );
    let rbac_creates_per_s = creates(&[], pods, clients).await?;
    let no_admission = format!(
        "--disable-admission-plugins={}",
        ferry_apiserver::admission::PLUGINS.join(",")
    );
    let open_creates_per_s = creates(
        &["--authorization-mode=AlwaysAllow", &no_admission],
        pods,
        clients,
    )
    .await?;
    println!(
        "authz:    {pods} pod creates by an RBAC-bound user with admission and a CEL policy: {rbac_creates_per_s:.0}/s; reference (AlwaysAllow, no admission): {open_creates_per_s:.0}/s (ratio {:.2})",
        rbac_creates_per_s / open_creates_per_s
    );
    Ok(Figures {
        decision_us,
        reference_us,
        rbac_creates_per_s,
        open_creates_per_s,
    })
}
