//! Upstream's bootstrap configuration (`k8s.io/apiserver/pkg/apis/flowcontrol/bootstrap`,
//! v1.33): the mandatory `exempt` and `catch-all` levels and schemas, which the server always
//! keeps as they are here, and the suggested ones, which it keeps until a user takes them over,
//! and [`reconcile`], which decides what an existing object becomes.

use serde_json::{json, Value};

/// The annotation saying who keeps an object's spec: `"true"` the server, `"false"` its users.
pub const AUTOUPDATE_ANNOTATION: &str = "apf.kubernetes.io/autoupdate-spec";

/// The exempt level's name.
pub const EXEMPT: &str = "exempt";
/// The catch-all level's and schema's name.
pub const CATCH_ALL: &str = "catch-all";

fn meta(name: &str) -> Value {
    json!({"name": name, "annotations": {AUTOUPDATE_ANNOTATION: "true"}})
}

fn level(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "PriorityLevelConfiguration",
        "metadata": meta(name), "spec": spec})
}

fn limited(shares: i64, lendable: i64, queuing: Option<(i64, i64, i64)>) -> Value {
    let response = match queuing {
        Some((queues, hand, length)) => json!({"type": "Queue",
            "queuing": {"queues": queues, "handSize": hand, "queueLengthLimit": length}}),
        None => json!({"type": "Reject"}),
    };
    json!({"type": "Limited", "limited": {"nominalConcurrencyShares": shares,
        "lendablePercent": lendable, "limitResponse": response}})
}

fn schema(name: &str, level: &str, precedence: i64, method: Option<&str>, rules: Value) -> Value {
    let mut spec = json!({"priorityLevelConfiguration": {"name": level},
        "matchingPrecedence": precedence, "rules": rules});
    if let Some(method) = method {
        spec["distinguisherMethod"] = json!({"type": method});
    }
    json!({"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema",
        "metadata": meta(name), "spec": spec})
}

fn groups(names: &[&str]) -> Vec<Value> {
    names
        .iter()
        .map(|n| json!({"kind": "Group", "group": {"name": n}}))
        .collect()
}

fn users(names: &[&str]) -> Vec<Value> {
    names
        .iter()
        .map(|n| json!({"kind": "User", "user": {"name": n}}))
        .collect()
}

fn kube_system_account(name: &str) -> Value {
    json!({"kind": "ServiceAccount", "serviceAccount": {"name": name, "namespace": "kube-system"}})
}

/// Every verb on every resource, cluster-scoped or in any namespace, and every non-resource URL.
fn everything(subjects: Vec<Value>) -> Value {
    json!([{"subjects": subjects,
        "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
            "namespaces": ["*"], "clusterScope": true}],
        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]}])
}

fn rule(
    verbs: &[&str],
    group: &str,
    resources: &[&str],
    namespaces: &[&str],
    cluster: bool,
) -> Value {
    json!({"verbs": verbs, "apiGroups": [group], "resources": resources,
        "namespaces": namespaces, "clusterScope": cluster})
}

/// The mandatory levels: `exempt` and `catch-all`.
pub fn mandatory_priority_levels() -> Vec<Value> {
    vec![
        level(
            EXEMPT,
            json!({"type": "Exempt", "exempt": {"nominalConcurrencyShares": 0, "lendablePercent": 0}}),
        ),
        level(CATCH_ALL, limited(5, 0, None)),
    ]
}

/// The suggested levels.
pub fn suggested_priority_levels() -> Vec<Value> {
    vec![
        level("system", limited(30, 33, Some((64, 6, 50)))),
        level("node-high", limited(40, 25, Some((64, 6, 50)))),
        level("leader-election", limited(10, 0, Some((16, 4, 50)))),
        level("workload-high", limited(40, 50, Some((128, 6, 50)))),
        level("workload-low", limited(100, 90, Some((128, 6, 50)))),
        level("global-default", limited(20, 50, Some((128, 6, 50)))),
    ]
}

/// The mandatory schemas: `exempt` (`system:masters`) and `catch-all`.
pub fn mandatory_flow_schemas() -> Vec<Value> {
    vec![
        schema(
            EXEMPT,
            EXEMPT,
            1,
            None,
            everything(groups(&["system:masters"])),
        ),
        schema(
            CATCH_ALL,
            CATCH_ALL,
            10000,
            Some("ByUser"),
            everything(groups(&["system:unauthenticated", "system:authenticated"])),
        ),
    ]
}

/// The suggested schemas.
pub fn suggested_flow_schemas() -> Vec<Value> {
    let get_create_update = ["get", "create", "update"];
    let leases = |namespaces: &[&str]| {
        rule(
            &get_create_update,
            "coordination.k8s.io",
            &["leases"],
            namespaces,
            false,
        )
    };
    let mut leader_subjects = users(&["system:kube-controller-manager", "system:kube-scheduler"]);
    leader_subjects.push(kube_system_account("*"));
    let mut endpoint_subjects = users(&["system:kube-controller-manager"]);
    endpoint_subjects.push(kube_system_account("endpoint-controller"));
    vec![
        schema(
            "system-nodes",
            "system",
            500,
            Some("ByUser"),
            everything(groups(&["system:nodes"])),
        ),
        schema(
            "system-node-high",
            "node-high",
            400,
            Some("ByUser"),
            json!([{"subjects": groups(&["system:nodes"]), "resourceRules": [
                rule(&["*"], "", &["nodes", "nodes/status"], &["*"], true),
                rule(&["*"], "coordination.k8s.io", &["leases"], &["*"], false)]}]),
        ),
        schema(
            "probes",
            EXEMPT,
            2,
            None,
            json!([{"subjects": groups(&["system:unauthenticated", "system:authenticated"]),
                "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz", "/readyz", "/livez"]}]}]),
        ),
        schema(
            "system-leader-election",
            "leader-election",
            100,
            Some("ByUser"),
            json!([{"subjects": leader_subjects, "resourceRules": [
                rule(&get_create_update, "", &["endpoints", "configmaps"], &["kube-system"], false),
                leases(&["*"])]}]),
        ),
        schema(
            "endpoint-controller",
            "workload-high",
            150,
            Some("ByUser"),
            json!([{"subjects": endpoint_subjects, "resourceRules": [
                rule(&get_create_update, "", &["endpoints"], &["*"], false)]}]),
        ),
        schema(
            "workload-leader-election",
            "leader-election",
            200,
            Some("ByUser"),
            json!([{"subjects": [kube_system_account("*")], "resourceRules": [
                rule(&get_create_update, "", &["endpoints", "configmaps"], &["*"], false),
                leases(&["*"])]}]),
        ),
        schema(
            "kube-controller-manager",
            "workload-high",
            800,
            Some("ByNamespace"),
            everything(users(&["system:kube-controller-manager"])),
        ),
        schema(
            "kube-scheduler",
            "workload-high",
            800,
            Some("ByNamespace"),
            everything(users(&["system:kube-scheduler"])),
        ),
        schema(
            "kube-system-service-accounts",
            "workload-high",
            900,
            Some("ByNamespace"),
            everything(vec![kube_system_account("*")]),
        ),
        schema(
            "service-accounts",
            "workload-low",
            9000,
            Some("ByUser"),
            everything(groups(&["system:serviceaccounts"])),
        ),
        schema(
            "global-default",
            "global-default",
            9900,
            Some("ByUser"),
            everything(groups(&["system:unauthenticated", "system:authenticated"])),
        ),
    ]
}

/// Whether the server keeps `existing`'s spec (upstream's `autoupdate-spec` rule): the
/// annotation says so, or, without it, the object was never changed (generation 1).
fn server_keeps(existing: &Value) -> bool {
    match existing["metadata"]["annotations"][AUTOUPDATE_ANNOTATION].as_str() {
        Some("true") => true,
        Some("false") => false,
        _ => existing["metadata"]["generation"].as_i64() == Some(1),
    }
}

/// What the server makes of the existing object `existing` given its bootstrap version
/// `wanted`: `None` to leave it, or the object to write. A mandatory object always gets its
/// bootstrap spec back; a suggested one only while the server keeps it.
pub fn reconcile(existing: &Value, wanted: &Value, mandatory: bool) -> Option<Value> {
    if !mandatory && !server_keeps(existing) {
        return None;
    }
    let annotated =
        existing["metadata"]["annotations"][AUTOUPDATE_ANNOTATION].as_str() == Some("true");
    if existing["spec"] == wanted["spec"] && annotated {
        return None;
    }
    let mut updated = existing.clone();
    updated["spec"] = wanted["spec"].clone();
    updated["metadata"]["annotations"][AUTOUPDATE_ANNOTATION] = json!("true");
    Some(updated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autoupdate_spec_decides_who_keeps_the_spec() {
        let wanted = &suggested_priority_levels()[0];
        let mut changed = wanted.clone();
        changed["spec"]["limited"]["nominalConcurrencyShares"] = json!(99);
        changed["metadata"]["generation"] = json!(2);
        // Annotated true: the server puts its spec back.
        let back = reconcile(&changed, wanted, false).expect("restored");
        assert_eq!(back["spec"], wanted["spec"]);
        // Annotated false: the user's.
        changed["metadata"]["annotations"][AUTOUPDATE_ANNOTATION] = json!("false");
        assert_eq!(reconcile(&changed, wanted, false), None);
        // A mandatory object is the server's whatever the annotation says.
        let exempt = &mandatory_priority_levels()[0];
        let mut mine = exempt.clone();
        mine["metadata"]["annotations"][AUTOUPDATE_ANNOTATION] = json!("false");
        mine["spec"]["exempt"]["nominalConcurrencyShares"] = json!(10);
        assert_eq!(
            reconcile(&mine, exempt, true).expect("restored")["spec"],
            exempt["spec"]
        );
        // No annotation: generation 1 is the server's, a later one the user's.
        let mut bare = wanted.clone();
        bare["metadata"]["annotations"] = json!({});
        bare["metadata"]["generation"] = json!(1);
        assert!(reconcile(&bare, wanted, false).is_some());
        bare["metadata"]["generation"] = json!(3);
        assert_eq!(reconcile(&bare, wanted, false), None);
        // Unchanged: nothing to write.
        assert_eq!(reconcile(wanted, wanted, false), None);
    }
}
