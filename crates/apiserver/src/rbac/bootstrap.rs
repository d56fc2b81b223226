//! Upstream's default RBAC policy (its `bootstrappolicy`), which every cluster starts with:
//! the user-facing roles (`cluster-admin`, `admin`, `edit`, `view`, built by aggregation), the
//! discovery roles everyone holds, the roles of the system components, and their bindings —
//! plus the bindings `kubeadm` (here `ferry server`) adds so that joining nodes may ask for
//! certificates. The controller manager's roles are in [`controllers`].
//!
//! The server reconciles them at every start as upstream does ([`reconcile_role`],
//! [`reconcile_binding`]): a missing object is created; an existing one annotated
//! `rbac.authorization.kubernetes.io/autoupdate: "true"` (or not annotated) gets back the
//! rules, subjects, labels and annotations it lacks — what an administrator added stays; one
//! annotated `"false"` is left alone.

use serde_json::{json, Map, Value};

pub mod controllers;

/// The annotation that lets the server put back default permissions at start.
pub const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const READ_WRITE: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "delete",
    "deletecollection",
    "patch",
    "update",
];

fn rule(verbs: &[&str], group: &str, resources: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": [group], "resources": resources})
}

fn named(mut rule: Value, names: &[&str]) -> Value {
    rule["resourceNames"] = json!(names);
    rule
}

fn urls(verbs: &[&str], urls: &[&str]) -> Value {
    json!({"verbs": verbs, "nonResourceURLs": urls})
}

/// Creating and changing events, in both groups.
fn events_rules() -> [Value; 2] {
    let verbs = &["create", "update", "patch"];
    [
        rule(verbs, "", &["events"]),
        rule(verbs, "events.k8s.io", &["events"]),
    ]
}

fn metadata(name: &str, labels: &[(&str, &str)]) -> Value {
    let mut all = Map::new();
    all.insert("kubernetes.io/bootstrapping".into(), json!("rbac-defaults"));
    for (key, value) in labels {
        all.insert((*key).into(), json!(value));
    }
    json!({"name": name, "labels": all, "annotations": {AUTOUPDATE: "true"}})
}

fn cluster_role(name: &str, labels: &[(&str, &str)], rules: Vec<Value>) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": metadata(name, labels), "rules": rules})
}

/// A ClusterRole filled by the aggregation controller from roles labelled `aggregate_label`.
fn aggregated(name: &str, labels: &[(&str, &str)], aggregate_label: &str) -> Value {
    let mut role = cluster_role(name, labels, Vec::new());
    role["aggregationRule"] =
        json!({"clusterRoleSelectors": [{"matchLabels": {aggregate_label: "true"}}]});
    role
}

const TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

/// A subject of a binding: `("User" | "Group", name)` or `("ServiceAccount", "ns/name")`.
fn subject((kind, name): (&str, &str)) -> Value {
    match (kind, name.split_once('/')) {
        ("ServiceAccount", Some((namespace, name))) => {
            json!({"kind": kind, "name": name, "namespace": namespace})
        }
        _ => json!({"kind": kind, "name": name, "apiGroup": "rbac.authorization.k8s.io"}),
    }
}

fn cluster_binding(name: &str, role: &str, subjects: &[(&str, &str)]) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": metadata(name, &[]),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects.iter().copied().map(subject).collect::<Vec<_>>()})
}

/// The default ClusterRoles.
pub fn cluster_roles() -> Vec<Value> {
    let discovery_urls = [
        "/api",
        "/api/*",
        "/apis",
        "/apis/*",
        "/healthz",
        "/livez",
        "/openapi",
        "/openapi/*",
        "/readyz",
        "/version",
        "/version/",
    ];
    let public_urls = ["/healthz", "/livez", "/readyz", "/version", "/version/"];
    let monitoring_urls = [
        "/healthz",
        "/healthz/*",
        "/livez",
        "/livez/*",
        "/metrics",
        "/metrics/slis",
        "/readyz",
        "/readyz/*",
    ];
    let mut roles = vec![
        cluster_role(
            "cluster-admin",
            &[],
            vec![rule(&["*"], "*", &["*"]), urls(&["*"], &["*"])],
        ),
        cluster_role(
            "system:discovery",
            &[],
            vec![urls(&["get"], &discovery_urls)],
        ),
        cluster_role(
            "system:public-info-viewer",
            &[],
            vec![urls(&["get"], &public_urls)],
        ),
        cluster_role(
            "system:monitoring",
            &[],
            vec![urls(&["get"], &monitoring_urls)],
        ),
        // ferry's own: components in processes of their own post their journey steps
        // (`ferry-journey`); reading them and the web view is an administrator's
        // (`cluster-admin`'s `*`), or a user's an administrator binds to the reader role, as
        // `system:monitoring` is bound for `/metrics` (the view also lists pods: `view`).
        cluster_role(
            "ferry:journey-reporter",
            &[],
            vec![urls(&["post"], &["/journey/v1/spans"])],
        ),
        cluster_role(
            "ferry:journey-reader",
            &[],
            vec![urls(&["get"], &["/journey/v1/*", "/ui", "/ui/*"])],
        ),
        cluster_role(
            "system:basic-user",
            &[],
            vec![
                rule(
                    &["create"],
                    "authorization.k8s.io",
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(
                    &["create"],
                    "authentication.k8s.io",
                    &["selfsubjectreviews"],
                ),
            ],
        ),
        cluster_role(
            "system:service-account-issuer-discovery",
            &[],
            vec![urls(
                &["get"],
                &[
                    "/.well-known/openid-configuration",
                    "/.well-known/openid-configuration/",
                    "/openid/v1/jwks",
                    "/openid/v1/jwks/",
                ],
            )],
        ),
        aggregated("admin", &[], TO_ADMIN),
        aggregated("edit", &[(TO_ADMIN, "true")], TO_EDIT),
        aggregated("view", &[(TO_EDIT, "true")], TO_VIEW),
        cluster_role(
            "system:aggregate-to-admin",
            &[(TO_ADMIN, "true")],
            vec![
                rule(
                    &["create"],
                    "authorization.k8s.io",
                    &["localsubjectaccessreviews"],
                ),
                rule(
                    READ_WRITE,
                    "rbac.authorization.k8s.io",
                    &["roles", "rolebindings"],
                ),
            ],
        ),
        cluster_role(
            "system:aggregate-to-edit",
            &[(TO_EDIT, "true")],
            edit_rules(),
        ),
        cluster_role(
            "system:aggregate-to-view",
            &[(TO_VIEW, "true")],
            view_rules(),
        ),
        cluster_role(
            "system:auth-delegator",
            &[],
            vec![
                rule(&["create"], "authentication.k8s.io", &["tokenreviews"]),
                rule(
                    &["create"],
                    "authorization.k8s.io",
                    &["subjectaccessreviews"],
                ),
            ],
        ),
        cluster_role(
            "system:kubelet-api-admin",
            &[],
            vec![
                rule(&["get", "list", "watch", "proxy"], "", &["nodes"]),
                rule(
                    &["*"],
                    "",
                    &["nodes/log", "nodes/metrics", "nodes/proxy", "nodes/stats"],
                ),
            ],
        ),
        cluster_role(
            "system:node-bootstrapper",
            &[],
            vec![rule(
                &["create", "get", "list", "watch"],
                "certificates.k8s.io",
                &["certificatesigningrequests"],
            )],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            &[],
            vec![rule(
                &["create"],
                "certificates.k8s.io",
                &["certificatesigningrequests/nodeclient"],
            )],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            &[],
            vec![rule(
                &["create"],
                "certificates.k8s.io",
                &["certificatesigningrequests/selfnodeclient"],
            )],
        ),
        cluster_role("system:kube-scheduler", &[], scheduler_rules()),
        cluster_role(
            "system:volume-scheduler",
            &[],
            vec![
                rule(
                    &["get", "list", "patch", "update", "watch"],
                    "",
                    &["persistentvolumes"],
                ),
                rule(READ, "storage.k8s.io", &["storageclasses"]),
                rule(
                    &["get", "list", "patch", "update", "watch"],
                    "",
                    &["persistentvolumeclaims"],
                ),
            ],
        ),
        cluster_role(
            "system:kube-dns",
            &[],
            vec![rule(&["list", "watch"], "", &["endpoints", "services"])],
        ),
    ];
    let mut proxier = vec![
        rule(&["list", "watch"], "", &["services", "endpoints"]),
        rule(READ, "", &["nodes"]),
        rule(&["list", "watch"], "discovery.k8s.io", &["endpointslices"]),
    ];
    proxier.extend(events_rules());
    roles.push(cluster_role("system:node-proxier", &[], proxier));
    // ferry's own: what the agents' node-local CSI provisioner and resizer do (upstream runs
    // the external-provisioner as a pod with a role like this one).
    let mut local_storage = vec![
        rule(
            &["get", "list", "watch", "update", "patch"],
            "",
            &["persistentvolumeclaims"],
        ),
        rule(&["update", "patch"], "", &["persistentvolumeclaims/status"]),
        rule(
            &[
                "get", "list", "watch", "create", "delete", "update", "patch",
            ],
            "",
            &["persistentvolumes"],
        ),
        rule(READ, "storage.k8s.io", &["storageclasses", "csinodes"]),
        rule(
            &[
                "get", "list", "watch", "create", "update", "patch", "delete",
            ],
            "storage.k8s.io",
            &["csistoragecapacities"],
        ),
        rule(
            &["create", "update", "patch"],
            "storage.k8s.io",
            &["csinodes"],
        ),
        // The driver's attacher (external-attacher's role).
        rule(
            &["get", "list", "watch", "update", "patch"],
            "storage.k8s.io",
            &["volumeattachments"],
        ),
        rule(
            &["update", "patch"],
            "storage.k8s.io",
            &["volumeattachments/status"],
        ),
    ];
    local_storage.extend(events_rules());
    roles.push(cluster_role("ferry:local-storage", &[], local_storage));
    // metrics-server's role, aggregated into view (and so edit and admin).
    roles.push(cluster_role(
        "system:aggregated-metrics-reader",
        &[
            ("rbac.authorization.k8s.io/aggregate-to-view", "true"),
            ("rbac.authorization.k8s.io/aggregate-to-edit", "true"),
            ("rbac.authorization.k8s.io/aggregate-to-admin", "true"),
        ],
        vec![rule(READ, "metrics.k8s.io", &["pods", "nodes"])],
    ));
    roles.extend(controllers::cluster_roles());
    roles
}

fn view_rules() -> Vec<Value> {
    vec![
        rule(
            READ,
            "",
            &[
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "configmaps",
            ],
        ),
        rule(
            READ,
            "",
            &[
                "limitranges",
                "resourcequotas",
                "bindings",
                "events",
                "pods/status",
                "resourcequotas/status",
                "namespaces/status",
                "replicationcontrollers/status",
                "pods/log",
            ],
        ),
        rule(READ, "", &["namespaces"]),
        rule(READ, "discovery.k8s.io", &["endpointslices"]),
        rule(
            READ,
            "apps",
            &[
                "controllerrevisions",
                "statefulsets",
                "statefulsets/scale",
                "statefulsets/status",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
            ],
        ),
        rule(
            READ,
            "autoscaling",
            &[
                "horizontalpodautoscalers",
                "horizontalpodautoscalers/status",
            ],
        ),
        rule(
            READ,
            "batch",
            &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
        ),
        rule(
            READ,
            "policy",
            &["poddisruptionbudgets", "poddisruptionbudgets/status"],
        ),
        rule(
            READ,
            "networking.k8s.io",
            &["ingresses", "ingresses/status", "networkpolicies"],
        ),
    ]
}

fn edit_rules() -> Vec<Value> {
    let pod_streams = ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy"];
    let mut readable: Vec<&str> = pod_streams.to_vec();
    readable.extend(["secrets", "services/proxy"]);
    let mut pods: Vec<&str> = vec!["pods"];
    pods.extend(pod_streams);
    vec![
        rule(&["impersonate"], "", &["serviceaccounts"]),
        rule(WRITE, "", &pods),
        rule(&["create"], "", &["pods/eviction"]),
        rule(
            WRITE,
            "",
            &[
                "configmaps",
                "events",
                "persistentvolumeclaims",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "secrets",
                "serviceaccounts",
                "services",
                "services/proxy",
            ],
        ),
        rule(&["create"], "", &["serviceaccounts/token"]),
        rule(
            WRITE,
            "apps",
            &[
                "daemonsets",
                "deployments",
                "deployments/rollback",
                "deployments/scale",
                "replicasets",
                "replicasets/scale",
                "statefulsets",
                "statefulsets/scale",
            ],
        ),
        rule(WRITE, "autoscaling", &["horizontalpodautoscalers"]),
        rule(WRITE, "batch", &["cronjobs", "jobs"]),
        rule(WRITE, "policy", &["poddisruptionbudgets"]),
        rule(
            WRITE,
            "networking.k8s.io",
            &["ingresses", "networkpolicies"],
        ),
        rule(READ_WRITE, "coordination.k8s.io", &["leases"]),
        rule(READ, "", &readable),
    ]
}

fn scheduler_rules() -> Vec<Value> {
    let mut rules = events_rules().to_vec();
    rules.extend([
        rule(&["create"], "coordination.k8s.io", &["leases"]),
        named(
            rule(&["get", "update"], "coordination.k8s.io", &["leases"]),
            &["kube-scheduler"],
        ),
        rule(READ, "", &["nodes", "pods", "namespaces"]),
        // Preemption deletes the victims.
        rule(&["delete"], "", &["pods"]),
        rule(&["create"], "", &["pods/binding", "bindings"]),
        rule(&["patch", "update"], "", &["pods/status"]),
        rule(
            READ,
            "",
            &[
                "replicationcontrollers",
                "services",
                "persistentvolumeclaims",
                "persistentvolumes",
            ],
        ),
        rule(READ, "apps", &["replicasets", "statefulsets"]),
        rule(READ, "policy", &["poddisruptionbudgets"]),
        rule(&["create"], "authentication.k8s.io", &["tokenreviews"]),
        rule(
            &["create"],
            "authorization.k8s.io",
            &["subjectaccessreviews"],
        ),
        rule(
            READ,
            "storage.k8s.io",
            &[
                "csidrivers",
                "csinodes",
                "csistoragecapacities",
                "storageclasses",
            ],
        ),
    ]);
    rules
}

/// The default ClusterRoleBindings, and ferry's own for joining nodes.
pub fn cluster_role_bindings() -> Vec<Value> {
    let authenticated = ("Group", "system:authenticated");
    let mut bindings = vec![
        cluster_binding(
            "cluster-admin",
            "cluster-admin",
            &[("Group", "system:masters")],
        ),
        cluster_binding("system:discovery", "system:discovery", &[authenticated]),
        cluster_binding("system:basic-user", "system:basic-user", &[authenticated]),
        cluster_binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            &[authenticated, ("Group", "system:unauthenticated")],
        ),
        cluster_binding(
            "system:monitoring",
            "system:monitoring",
            &[("Group", "system:monitoring")],
        ),
        cluster_binding(
            "system:service-account-issuer-discovery",
            "system:service-account-issuer-discovery",
            &[("Group", "system:serviceaccounts")],
        ),
        cluster_binding(
            "system:node-proxier",
            "system:node-proxier",
            &[("User", "system:kube-proxy")],
        ),
        cluster_binding(
            "system:kube-scheduler",
            "system:kube-scheduler",
            &[("User", "system:kube-scheduler")],
        ),
        cluster_binding(
            "system:volume-scheduler",
            "system:volume-scheduler",
            &[("User", "system:kube-scheduler")],
        ),
        cluster_binding(
            "system:kube-dns",
            "system:kube-dns",
            &[("ServiceAccount", "kube-system/kube-dns")],
        ),
        // What kubeadm binds for TLS bootstrapping: joining nodes (the join token's
        // system:bootstrappers) may ask for a client certificate, and the approver grants it;
        // nodes may renew theirs.
        cluster_binding(
            "ferry:node-bootstrapper",
            "system:node-bootstrapper",
            &[("Group", "system:bootstrappers")],
        ),
        cluster_binding(
            "ferry:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            &[("Group", "system:bootstrappers")],
        ),
        cluster_binding(
            "ferry:local-storage",
            "ferry:local-storage",
            &[("Group", "system:nodes")],
        ),
        cluster_binding(
            "ferry:journey-reporter",
            "ferry:journey-reporter",
            &[
                ("Group", "system:nodes"),
                ("User", "system:kube-controller-manager"),
                ("User", "system:kube-scheduler"),
                ("User", "system:kube-proxy"),
                ("Group", "system:serviceaccounts:kube-system"),
            ],
        ),
        cluster_binding(
            "ferry:node-autoapprove-certificate-rotation",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            &[("Group", "system:nodes")],
        ),
    ];
    bindings.extend(controllers::cluster_role_bindings());
    bindings
}

/// Whether `existing` may be reconciled (its autoupdate annotation is not `"false"`).
fn autoupdates(existing: &Value) -> bool {
    existing["metadata"]["annotations"][AUTOUPDATE].as_str() != Some("false")
}

/// Adds `wanted`'s labels and annotations that `object` lacks; whether any was added.
fn merge_metadata(object: &mut Value, wanted: &Value) -> bool {
    let mut changed = false;
    for field in ["labels", "annotations"] {
        let Some(wanted) = wanted["metadata"][field].as_object() else {
            continue;
        };
        let meta = &mut object["metadata"];
        if !meta[field].is_object() {
            meta[field] = json!({});
        }
        for (key, value) in wanted {
            if meta[field].get(key).is_none() {
                meta[field][key] = value.clone();
                changed = true;
            }
        }
    }
    changed
}

/// The ClusterRole to write back when `existing` lacks what `wanted` grants (rules the
/// existing ones do not cover, labels, annotations, the aggregation rule); `None` if nothing is
/// missing or the role opted out.
pub fn reconcile_role(existing: &Value, wanted: &Value) -> Option<Value> {
    if !autoupdates(existing) {
        return None;
    }
    let mut role = existing.clone();
    let mut changed = merge_metadata(&mut role, wanted);
    if wanted.get("aggregationRule").is_some() {
        // Aggregated roles' rules are the controller's; their selectors come back whole.
        if role.get("aggregationRule") != wanted.get("aggregationRule") {
            let mut selectors = role["aggregationRule"]["clusterRoleSelectors"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for selector in wanted["aggregationRule"]["clusterRoleSelectors"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if !selectors.contains(selector) {
                    selectors.push(selector.clone());
                    changed = true;
                }
            }
            role["aggregationRule"] = json!({"clusterRoleSelectors": selectors});
        }
    } else {
        let held: Vec<k8s_openapi::api::rbac::v1::PolicyRule> =
            serde_json::from_value(role["rules"].clone()).unwrap_or_default();
        let mut rules = role["rules"].as_array().cloned().unwrap_or_default();
        for wanted_rule in wanted["rules"].as_array().into_iter().flatten() {
            let Ok(parsed) = serde_json::from_value(wanted_rule.clone()) else {
                continue;
            };
            if super::rules::covers(&held, &[parsed]).is_err() {
                rules.push(wanted_rule.clone());
                changed = true;
            }
        }
        role["rules"] = Value::Array(rules);
    }
    changed.then_some(role)
}

/// What becomes of an existing binding.
#[derive(Debug, PartialEq)]
pub enum BindingChange {
    /// Nothing to do.
    Keep,
    /// Write back this binding (subjects, labels or annotations were missing).
    Update(Value),
    /// Its roleRef differs and cannot change: delete it and create `wanted`.
    Recreate,
}

/// How `existing` is brought in line with `wanted`.
pub fn reconcile_binding(existing: &Value, wanted: &Value) -> BindingChange {
    if !autoupdates(existing) {
        return BindingChange::Keep;
    }
    if existing["roleRef"] != wanted["roleRef"] {
        return BindingChange::Recreate;
    }
    let mut binding = existing.clone();
    let mut changed = merge_metadata(&mut binding, wanted);
    let mut subjects = binding["subjects"].as_array().cloned().unwrap_or_default();
    for subject in wanted["subjects"].as_array().into_iter().flatten() {
        if !subjects.contains(subject) {
            subjects.push(subject.clone());
            changed = true;
        }
    }
    binding["subjects"] = Value::Array(subjects);
    if changed {
        BindingChange::Update(binding)
    } else {
        BindingChange::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(objects: &'a [Value], name: &str) -> &'a Value {
        objects
            .iter()
            .find(|o| o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{name}"))
    }

    #[test]
    fn every_binding_names_a_default_role_and_every_rule_parses() {
        let roles = cluster_roles();
        for binding in cluster_role_bindings() {
            find(&roles, binding["roleRef"]["name"].as_str().expect("name"));
            assert_eq!(binding["metadata"]["annotations"][AUTOUPDATE], "true");
        }
        for role in &roles {
            let rules: Vec<k8s_openapi::api::rbac::v1::PolicyRule> =
                serde_json::from_value(role["rules"].clone()).expect("rules parse");
            assert!(rules.iter().all(|r| !r.verbs.is_empty()));
        }
        // The user-facing roles aggregate as upstream's: admin ⊃ edit ⊃ view.
        assert_eq!(find(&roles, "edit")["metadata"]["labels"][TO_ADMIN], "true");
        assert_eq!(find(&roles, "view")["metadata"]["labels"][TO_EDIT], "true");
    }

    #[test]
    fn reconciling_adds_what_is_missing_and_keeps_what_was_added() {
        let wanted = find(&cluster_roles(), "system:basic-user").clone();
        assert_eq!(reconcile_role(&wanted, &wanted), None);
        let mut trimmed = wanted.clone();
        trimmed["rules"] = json!([
            rule(
                &["create"],
                "authorization.k8s.io",
                &["selfsubjectaccessreviews"]
            ),
            rule(&["get"], "", &["pods"])
        ]);
        trimmed["metadata"]["labels"] = json!({"team": "a"});
        let fixed = reconcile_role(&trimmed, &wanted).expect("changed");
        let rules = fixed["rules"].as_array().expect("rules");
        assert_eq!(rules.len(), 4, "{rules:?}");
        assert_eq!(rules[1], rule(&["get"], "", &["pods"]));
        assert_eq!(fixed["metadata"]["labels"]["team"], "a");
        assert_eq!(
            fixed["metadata"]["labels"]["kubernetes.io/bootstrapping"],
            "rbac-defaults"
        );
        let mut opted_out = trimmed.clone();
        opted_out["metadata"]["annotations"] = json!({AUTOUPDATE: "false"});
        assert_eq!(reconcile_role(&opted_out, &wanted), None);
    }

    #[test]
    fn bindings_get_their_subjects_back_and_a_changed_role_ref_is_recreated() {
        let wanted = find(&cluster_role_bindings(), "system:discovery").clone();
        assert_eq!(reconcile_binding(&wanted, &wanted), BindingChange::Keep);
        let mut emptied = wanted.clone();
        emptied["subjects"] = json!([subject(("User", "jane"))]);
        let BindingChange::Update(fixed) = reconcile_binding(&emptied, &wanted) else {
            panic!("update expected");
        };
        assert_eq!(fixed["subjects"].as_array().expect("subjects").len(), 2);
        let mut moved = wanted.clone();
        moved["roleRef"]["name"] = json!("view");
        assert_eq!(reconcile_binding(&moved, &wanted), BindingChange::Recreate);
    }
}
