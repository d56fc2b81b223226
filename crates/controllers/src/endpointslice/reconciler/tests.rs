//! Table tests of the reconciler, after upstream's `reconciler_test.go` cases.

use super::*;
use serde_json::{json, Value};

fn service(extra_spec: Value) -> Service {
    let mut spec = json!({"selector": {"app": "web"}, "clusterIP": "10.43.0.20", "ipFamilies": ["IPv4"],
        "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(
        json!({"metadata": {"name": "web", "namespace": "default", "uid": "svc-uid",
        "labels": {"team": "a"}}, "spec": spec}),
    )
    .expect("service")
}

fn pod(i: usize, ready: bool) -> Arc<Pod> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": format!("web-{i}"), "namespace": "default", "uid": format!("uid-{i}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "x",
                "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": format!("10.42.{}.{}", i / 250, i % 250 + 1),
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .expect("pod"),
    )
}

fn pods(n: usize) -> Vec<Arc<Pod>> {
    (0..n).map(|i| pod(i, true)).collect()
}

fn nodes(name: &str) -> Option<Arc<Node>> {
    (name == "node-a").then(|| {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "node-a",
                "labels": {"topology.kubernetes.io/zone": "zone-1"}}}))
            .expect("node"),
        )
    })
}

fn reconcile(service: &Service, pods: &[Arc<Pod>], existing: &[Arc<EndpointSlice>]) -> Plan {
    Reconciler::DEFAULT.reconcile(service, pods, &nodes, existing)
}

/// The slices after a plan is carried out, as the API server would name them.
fn apply(existing: &[Arc<EndpointSlice>], plan: Plan) -> Vec<Arc<EndpointSlice>> {
    let gone: BTreeSet<String> = plan
        .delete
        .iter()
        .chain(&plan.update)
        .map(|s| s.name_any())
        .collect();
    let mut slices: Vec<Arc<EndpointSlice>> = existing
        .iter()
        .filter(|s| !gone.contains(&s.name_any()))
        .cloned()
        .collect();
    slices.extend(plan.update.into_iter().map(Arc::new));
    for (i, mut slice) in plan.create.into_iter().enumerate() {
        slice.metadata.name = Some(format!("web-{}{i}", slices.len()));
        slices.push(Arc::new(slice));
    }
    slices.sort_by_key(|s| s.name_any());
    slices
}

fn sizes(slices: &[EndpointSlice]) -> Vec<usize> {
    slices.iter().map(|s| s.endpoints.len()).collect()
}

#[test]
fn first_sync_makes_one_slice_with_everything_upstream_shows() {
    let plan = reconcile(&service(json!({})), &pods(3), &[]);
    assert!(plan.update.is_empty() && plan.delete.is_empty());
    assert_eq!(plan.create.len(), 1);
    let slice = serde_json::to_value(&plan.create[0]).expect("json");
    assert_eq!(
        slice["metadata"],
        json!({"generateName": "web-", "namespace": "default",
            "labels": {"team": "a", "kubernetes.io/service-name": "web",
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "svc-uid",
                "controller": true, "blockOwnerDeletion": true}]})
    );
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(
        slice["ports"],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
    );
    assert_eq!(
        slice["endpoints"][0],
        json!({"addresses": ["10.42.0.1"], "conditions": {"ready": true, "serving": true, "terminating": false},
            "nodeName": "node-a", "zone": "zone-1",
            "targetRef": {"kind": "Pod", "namespace": "default", "name": "web-0", "uid": "uid-0"}})
    );
    assert_eq!(sizes(&plan.create), [3]);
}

#[test]
fn a_service_without_pods_keeps_one_placeholder() {
    let svc = service(json!({}));
    let plan = reconcile(&svc, &[], &[]);
    assert_eq!(sizes(&plan.create), [0]);
    assert_eq!(plan.create[0].ports, Some(vec![]));
    let slices = apply(&[], plan);
    let again = reconcile(&svc, &[], &slices);
    assert!(again.create.is_empty() && again.update.is_empty() && again.delete.is_empty());
}

#[test]
fn endpoints_are_packed_a_hundred_to_a_slice_and_a_second_sync_changes_nothing() {
    let svc = service(json!({}));
    let all = pods(250);
    let plan = reconcile(&svc, &all, &[]);
    assert_eq!(sizes(&plan.create), [100, 100, 50]);
    let slices = apply(&[], plan);
    let again = reconcile(&svc, &all, &slices);
    assert!(again.create.is_empty() && again.update.is_empty() && again.delete.is_empty());
}

#[test]
fn new_endpoints_fill_the_unchanged_slice_closest_to_full() {
    let svc = service(json!({}));
    let slices = apply(&[], reconcile(&svc, &pods(195), &[]));
    // 100 and 95 endpoints; 3 more fit the second without touching the first.
    let plan = reconcile(&svc, &pods(198), &slices);
    assert!(plan.create.is_empty() && plan.delete.is_empty());
    assert_eq!(sizes(&plan.update), [98]);
    // 10 more do not fit anywhere: a new slice, nothing else touched.
    let slices = apply(&slices, plan);
    let plan = reconcile(&svc, &pods(208), &slices);
    assert!(plan.update.is_empty());
    assert_eq!(sizes(&plan.create), [10]);
}

#[test]
fn a_slice_that_changes_anyway_takes_new_endpoints_first() {
    let svc = service(json!({}));
    let slices = apply(&[], reconcile(&svc, &pods(150), &[]));
    // web-0 leaves the full slice and two pods come: the first fills the slice that changes
    // anyway, the second goes to the unchanged one.
    let mut wanted = pods(152);
    wanted.remove(0);
    let plan = reconcile(&svc, &wanted, &slices);
    assert!(plan.create.is_empty() && plan.delete.is_empty());
    assert_eq!(sizes(&plan.update), [100, 51]);
}

#[test]
fn readiness_terminating_and_publish_not_ready() {
    let mut terminating = (*pod(1, true)).clone();
    terminating.metadata.deletion_timestamp = Some(crate::util::now());
    let pods = vec![pod(0, false), Arc::new(terminating)];
    let conditions = |plan: &Plan| -> Vec<Value> {
        plan.create[0]
            .endpoints
            .iter()
            .map(|e| serde_json::to_value(&e.conditions).expect("json"))
            .collect()
    };
    let plan = reconcile(&service(json!({})), &pods, &[]);
    assert_eq!(
        conditions(&plan),
        [
            json!({"ready": false, "serving": false, "terminating": false}),
            json!({"ready": false, "serving": true, "terminating": true}),
        ]
    );
    let plan = reconcile(
        &service(json!({"publishNotReadyAddresses": true})),
        &pods,
        &[],
    );
    assert_eq!(
        conditions(&plan),
        [
            json!({"ready": true, "serving": false, "terminating": false}),
            json!({"ready": true, "serving": true, "terminating": true}),
        ]
    );
}

#[test]
fn pods_without_the_named_port_form_their_own_group() {
    let mut lacking = (*pod(1, true)).clone();
    if let Some(spec) = lacking.spec.as_mut() {
        spec.containers[0].ports = None;
    }
    let plan = reconcile(&service(json!({})), &[pod(0, true), Arc::new(lacking)], &[]);
    let mut ports: Vec<Value> = plan
        .create
        .iter()
        .map(|s| serde_json::to_value(&s.ports).expect("json"))
        .collect();
    ports.sort_by_key(Value::to_string);
    assert_eq!(
        ports,
        [
            json!([]),
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
        ]
    );
}

#[test]
fn pods_without_ip_terminal_or_on_unknown_nodes_are_left_out() {
    let mut pending = (*pod(1, false)).clone();
    pending.status.as_mut().expect("status").pod_ip = None;
    let mut done = (*pod(2, false)).clone();
    done.status.as_mut().expect("status").phase = Some("Succeeded".into());
    let mut elsewhere = (*pod(3, true)).clone();
    elsewhere.spec.as_mut().expect("spec").node_name = Some("gone".into());
    let all = [
        pod(0, true),
        Arc::new(pending),
        Arc::new(done),
        Arc::new(elsewhere),
    ];
    let plan = reconcile(&service(json!({})), &all, &[]);
    assert_eq!(sizes(&plan.create), [1]);
    assert_eq!(
        plan.missing_nodes,
        [("web-3".to_string(), "gone".to_string())]
    );
}

#[test]
fn hostnames_of_pods_in_the_services_subdomain() {
    let mut named = (*pod(0, true)).clone();
    let spec = named.spec.as_mut().expect("spec");
    spec.hostname = Some("db-0".into());
    spec.subdomain = Some("web".into());
    let plan = reconcile(
        &service(json!({"clusterIP": "None"})),
        &[Arc::new(named)],
        &[],
    );
    let slice = &plan.create[0];
    assert_eq!(slice.endpoints[0].hostname.as_deref(), Some("db-0"));
    let labels = slice.metadata.labels.as_ref().expect("labels");
    assert_eq!(labels.get(HEADLESS_LABEL).map(String::as_str), Some(""));
}

#[test]
fn emptied_slices_become_the_placeholder_by_update() {
    let svc = service(json!({}));
    let slices = apply(&[], reconcile(&svc, &pods(2), &[]));
    let plan = reconcile(&svc, &[], &slices);
    assert!(plan.create.is_empty() && plan.delete.is_empty());
    assert_eq!(plan.update.len(), 1);
    assert_eq!(plan.update[0].name_any(), slices[0].name_any());
    assert!(plan.update[0].endpoints.is_empty());
    assert_eq!(plan.update[0].ports, Some(vec![]));
}

#[test]
fn service_label_changes_relabel_the_slices() {
    let svc = service(json!({}));
    let slices = apply(&[], reconcile(&svc, &pods(2), &[]));
    let mut relabelled = svc.clone();
    relabelled.metadata.labels = Some(BTreeMap::from([("team".into(), "b".into())]));
    let plan = reconcile(&relabelled, &pods(2), &slices);
    assert_eq!(plan.update.len(), 1);
    let labels = plan.update[0].metadata.labels.as_ref().expect("labels");
    assert_eq!(labels.get("team").map(String::as_str), Some("b"));
    assert_eq!(
        labels.get(SERVICE_NAME_LABEL).map(String::as_str),
        Some("web")
    );
}

#[test]
fn slices_of_an_earlier_service_of_the_same_name_go() {
    let svc = service(json!({}));
    let slices = apply(&[], reconcile(&svc, &pods(2), &[]));
    let mut recreated = svc.clone();
    recreated.metadata.uid = Some("new-uid".into());
    let plan = reconcile(&recreated, &pods(2), &slices);
    assert_eq!(sizes(&plan.create), [2]);
    assert_eq!(plan.delete.len(), 1);
    assert!(plan.update.is_empty());
}

#[test]
fn a_changed_endpoint_is_updated_in_place() {
    let svc = service(json!({}));
    let slices = apply(&[], reconcile(&svc, &pods(3), &[]));
    let now_unready = vec![pod(0, true), pod(1, false), pod(2, true)];
    let plan = reconcile(&svc, &now_unready, &slices);
    assert!(plan.create.is_empty() && plan.delete.is_empty());
    assert_eq!(sizes(&plan.update), [3]);
    let ready: Vec<Option<bool>> = plan.update[0]
        .endpoints
        .iter()
        .map(|e| e.conditions.as_ref().and_then(|c| c.ready))
        .collect();
    assert_eq!(ready, [Some(true), Some(false), Some(true)]);
}
