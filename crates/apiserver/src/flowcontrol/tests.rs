//! Classification of requests with upstream's bootstrap configuration, and the seats it gives.

use super::*;

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo::new(
        name.into(),
        String::new(),
        groups.iter().map(|g| g.to_string()).collect(),
    )
}

fn request(method: &str, path: &str) -> RequestInfo {
    crate::request::parse(method, path, false)
}

fn controller() -> Arc<Controller> {
    Controller::new(600, &mut prometheus_client::registry::Registry::default())
}

#[test]
fn requests_are_classified_as_upstream_bootstrap_says() {
    let apf = controller();
    let node = user("system:node:n1", &["system:nodes"]);
    let admin = user("admin", &["system:masters"]);
    let alice = user("alice", &[]);
    let kcm = user("system:kube-controller-manager", &[]);
    let scheduler = user("system:kube-scheduler", &[]);
    let kube_system_sa = user(
        "system:serviceaccount:kube-system:deployment-controller",
        &[
            "system:serviceaccounts",
            "system:serviceaccounts:kube-system",
        ],
    );
    let app_sa = user(
        "system:serviceaccount:apps:default",
        &["system:serviceaccounts", "system:serviceaccounts:apps"],
    );
    let endpoint_sa = user(
        "system:serviceaccount:kube-system:endpoint-controller",
        &["system:serviceaccounts"],
    );
    let cases: &[(&UserInfo, &str, &str, &str, &str)] = &[
        // (who, method, path, schema, level)
        (&admin, "GET", "/api/v1/pods", "exempt", "exempt"),
        (&alice, "GET", "/healthz", "probes", "exempt"),
        (&alice, "GET", "/readyz", "probes", "exempt"),
        (
            &alice,
            "GET",
            "/api/v1/pods",
            "global-default",
            "global-default",
        ),
        (
            &alice,
            "GET",
            "/metrics",
            "global-default",
            "global-default",
        ),
        (
            &node,
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
            "system-node-high",
            "node-high",
        ),
        (
            &node,
            "PATCH",
            "/api/v1/nodes/n1/status",
            "system-node-high",
            "node-high",
        ),
        (
            &node,
            "GET",
            "/api/v1/nodes/n1",
            "system-node-high",
            "node-high",
        ),
        (
            &node,
            "GET",
            "/api/v1/namespaces/default/pods",
            "system-nodes",
            "system",
        ),
        (
            &node,
            "GET",
            "/api/v1/namespaces/default/secrets/s",
            "system-nodes",
            "system",
        ),
        (
            &kcm,
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-controller-manager",
            "system-leader-election",
            "leader-election",
        ),
        (
            &kcm,
            "PUT",
            "/api/v1/namespaces/default/endpoints/web",
            "endpoint-controller",
            "workload-high",
        ),
        (
            &endpoint_sa,
            "PUT",
            "/api/v1/namespaces/default/endpoints/web",
            "endpoint-controller",
            "workload-high",
        ),
        (
            &kcm,
            "GET",
            "/apis/apps/v1/deployments",
            "kube-controller-manager",
            "workload-high",
        ),
        (
            &scheduler,
            "POST",
            "/api/v1/namespaces/default/pods/p/binding",
            "kube-scheduler",
            "workload-high",
        ),
        (
            &scheduler,
            "GET",
            "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-scheduler",
            "system-leader-election",
            "leader-election",
        ),
        (
            &kube_system_sa,
            "GET",
            "/apis/apps/v1/namespaces/default/replicasets",
            "kube-system-service-accounts",
            "workload-high",
        ),
        (
            &kube_system_sa,
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/apps/leases/x",
            "system-leader-election",
            "leader-election",
        ),
        (
            &app_sa,
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/apps/leases/x",
            "service-accounts",
            "workload-low",
        ),
        (
            &app_sa,
            "GET",
            "/api/v1/namespaces/apps/pods",
            "service-accounts",
            "workload-low",
        ),
    ];
    for (who, method, path, schema, level) in cases {
        let c = apf.classify(who, &request(method, path));
        assert_eq!(
            (c.flow_schema.as_str(), c.level.name.as_str()),
            (*schema, *level),
            "{} {method} {path}",
            who.name
        );
    }
    // ByUser: each user its own flow; ByNamespace: each namespace.
    let pods = request("GET", "/api/v1/pods");
    let bob = user("bob", &[]);
    assert_ne!(
        apf.classify(&alice, &pods).flow_hash,
        apf.classify(&bob, &pods).flow_hash
    );
    let in_a = request("GET", "/apis/apps/v1/namespaces/a/deployments");
    let in_b = request("GET", "/apis/apps/v1/namespaces/b/deployments");
    assert_ne!(
        apf.classify(&kcm, &in_a).flow_hash,
        apf.classify(&kcm, &in_b).flow_hash
    );
}

#[test]
fn seats_are_the_server_limit_shared_by_shares() {
    let apf = controller();
    let seats = |name: &str| apf.config.read().levels[name].nominal_seats;
    // Σ shares = 5 + 30 + 40 + 10 + 40 + 100 + 20 = 245; ceil(600 × shares / 245).
    assert_eq!(seats("catch-all"), 13);
    assert_eq!(seats("system"), 74);
    assert_eq!(seats("node-high"), 98);
    assert_eq!(seats("leader-election"), 25);
    assert_eq!(seats("workload-high"), 98);
    assert_eq!(seats("workload-low"), 245);
    assert_eq!(seats("global-default"), 49);
    assert!(apf.config.read().levels["exempt"].is_exempt());
    apf.set_limits(6, DEFAULT_QUEUE_WAIT);
    assert_eq!(seats("global-default"), 1);
}

#[test]
fn dangling_schemas_are_skipped_and_reported() {
    let apf = controller();
    let mut orphan = bootstrap::suggested_flow_schemas()
        .into_iter()
        .find(|s| s["metadata"]["name"] == "global-default")
        .expect("global-default");
    orphan["metadata"]["name"] = json!("orphan");
    orphan["metadata"]["resourceVersion"] = json!("7");
    orphan["spec"]["matchingPrecedence"] = json!(50);
    orphan["spec"]["priorityLevelConfiguration"]["name"] = json!("gone");
    apf.stored.write().schemas.insert("orphan".into(), orphan);
    apf.rebuild();
    let c = apf.classify(&user("alice", &[]), &request("GET", "/api/v1/pods"));
    assert_eq!(c.flow_schema, "global-default");
    let updates = apf.dangling_updates("2026-01-01T00:00:00Z");
    assert_eq!(updates.len(), 1, "only the stored schema");
    let condition = &updates[0]["status"]["conditions"][0];
    assert_eq!(condition["status"], "True");
    assert_eq!(condition["reason"], "NotFound");
    assert_eq!(
        condition["message"],
        "This FlowSchema references the PriorityLevelConfiguration object named \"gone\" but there is no such object"
    );
}

#[test]
fn the_dump_lists_every_level() {
    let dump = controller().dump_priority_levels();
    let lines: Vec<&str> = dump.lines().collect();
    assert!(lines[0].starts_with("PriorityLevelName,"), "{dump}");
    assert_eq!(lines.len(), 9, "{dump}");
    assert!(lines
        .iter()
        .any(|l| l.starts_with("exempt,") && l.contains("<none>")));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("global-default,") && l.contains("true")));
}

#[test]
fn retry_after_grows_while_drops_go_on_and_shrinks_after() {
    let mut drops = Drops::default();
    assert_eq!(drops.record(100), 1);
    assert_eq!(drops.record(101), 2);
    assert_eq!(drops.record(102), 2);
    assert_eq!(drops.record(103), 4);
    // Quiet for a while: back down.
    assert_eq!(drops.record(120), 2);
}
