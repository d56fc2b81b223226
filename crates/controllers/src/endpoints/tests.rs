//! The Endpoints controller: subsets from pods (table tests) and one sync against a mock API.

use super::*;
use crate::testing::{accept_all, client, Call};
use serde_json::{json, Value};

fn service(extra_spec: Value) -> Service {
    let mut spec = json!({"selector": {"app": "web"}, "clusterIP": "10.43.0.20",
        "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                  {"name": "admin", "port": 9000, "targetPort": 9000, "protocol": "TCP"}]});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(
        json!({"metadata": {"name": "web", "namespace": "default", "uid": "svc-uid",
        "labels": {"team": "a"}}, "spec": spec}),
    )
    .expect("service")
}

fn pod(i: usize, ready: bool, named_port: bool) -> Arc<Pod> {
    let ports = if named_port {
        json!([{"name": "http", "containerPort": 8080}])
    } else {
        json!([])
    };
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": format!("web-{i}"), "namespace": "default", "uid": format!("uid-{i}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "x", "ports": ports}]},
            "status": {"phase": "Running", "podIP": format!("10.42.{}.{}", i / 250, i % 250 + 1),
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .expect("pod"),
    )
}

fn ips(addresses: &Option<Vec<EndpointAddress>>) -> Vec<&str> {
    addresses.iter().flatten().map(|a| a.ip.as_str()).collect()
}

#[test]
fn addresses_grouped_by_the_ports_they_serve() {
    let pods = [pod(0, true, true), pod(1, false, true), pod(2, true, false)];
    let subsets = desired_subsets(&service(json!({})), &pods);
    let shown: Vec<(Vec<&str>, Vec<&str>, Vec<i32>)> = subsets
        .iter()
        .map(|s| {
            (
                ips(&s.addresses),
                ips(&s.not_ready_addresses),
                s.ports.iter().flatten().map(|p| p.port).collect(),
            )
        })
        .collect();
    // web-2 lacks the named port: it serves 9000 only.
    assert_eq!(
        shown,
        [
            (
                vec!["10.42.0.1", "10.42.0.3"],
                vec!["10.42.0.2"],
                vec![9000]
            ),
            (vec!["10.42.0.1"], vec!["10.42.0.2"], vec![8080]),
        ]
    );
    let address = serde_json::to_value(&subsets[1].addresses).expect("json");
    assert_eq!(
        address,
        json!([{"ip": "10.42.0.1", "nodeName": "node-a",
            "targetRef": {"kind": "Pod", "namespace": "default", "name": "web-0", "uid": "uid-0"}}])
    );
}

#[test]
fn publish_not_ready_lists_every_pod_ready_even_terminating_ones() {
    let mut terminating = (*pod(1, true, true)).clone();
    terminating.metadata.deletion_timestamp = Some(crate::util::now());
    let pods = [pod(0, false, true), Arc::new(terminating)];
    let publish = desired_subsets(&service(json!({"publishNotReadyAddresses": true})), &pods);
    assert_eq!(ips(&publish[0].addresses), ["10.42.0.1", "10.42.0.2"]);
    assert!(publish[0].not_ready_addresses.is_none());
    // Without it the terminating pod goes and the unready one is not ready.
    let plain = desired_subsets(&service(json!({})), &pods);
    assert_eq!(ips(&plain[0].not_ready_addresses), ["10.42.0.1"]);
    assert!(plain[0].addresses.is_none());
}

#[test]
fn a_headless_service_without_ports_lists_addresses_without_ports() {
    let svc = service(json!({"clusterIP": "None", "ports": []}));
    let subsets = desired_subsets(&svc, &[pod(0, true, true)]);
    assert_eq!(subsets.len(), 1);
    assert_eq!(ips(&subsets[0].addresses), ["10.42.0.1"]);
    assert!(subsets[0].ports.is_none());
    assert_eq!(
        endpoints_labels(&svc)
            .get(HEADLESS_LABEL)
            .map(String::as_str),
        Some("")
    );
}

#[test]
fn over_capacity_cuts_not_ready_addresses_first() {
    let address = |i: usize| EndpointAddress {
        ip: format!("10.0.{}.{}", i / 200, i % 200),
        ..EndpointAddress::default()
    };
    let mut subsets = vec![EndpointSubset {
        addresses: Some((0..900).map(address).collect()),
        not_ready_addresses: Some((900..1200).map(address).collect()),
        ports: None,
    }];
    assert!(truncate(&mut subsets));
    assert_eq!(subsets[0].addresses.as_ref().map(Vec::len), Some(900));
    assert_eq!(
        subsets[0].not_ready_addresses.as_ref().map(Vec::len),
        Some(100)
    );
    // Too many ready ones: not-ready all go, ready shared out by subset.
    let mut subsets = vec![
        EndpointSubset {
            addresses: Some((0..900).map(address).collect()),
            not_ready_addresses: Some(vec![address(1500)]),
            ports: None,
        },
        EndpointSubset {
            addresses: Some((900..1200).map(address).collect()),
            ..EndpointSubset::default()
        },
    ];
    assert!(truncate(&mut subsets));
    let sizes: Vec<usize> = subsets.iter().map(address_count).collect();
    assert_eq!(sizes, [750, 250]);
    assert!(!truncate(&mut subsets));
}

fn controller(client: kube::Client) -> Arc<EndpointsController> {
    EndpointsController::new(Context::new(client, crate::Options::default()))
}

#[tokio::test]
async fn a_sync_creates_then_leaves_alone_then_deletes_with_the_service() {
    let (client, calls) = client(accept_all);
    let c = controller(client);
    c.ctx.services.seed(vec![service(json!({}))]);
    c.ctx.pods.seed(vec![(*pod(0, true, true)).clone()]);
    c.ctx.endpoints.seed(vec![]);
    let key: Key = ("default".into(), "web".into());
    c.clone().reconcile(key.clone()).await.expect("synced");
    let made = calls.without_events();
    assert_eq!(
        made.iter().map(Call::line).collect::<Vec<_>>(),
        ["POST /api/v1/namespaces/default/endpoints?"]
    );
    let body = &made[0].body;
    assert_eq!(body["metadata"]["name"], "web");
    assert_eq!(
        body["metadata"]["labels"],
        json!({"team": "a", "endpoints.kubernetes.io/managed-by": "endpoint-controller"})
    );
    assert_eq!(body["subsets"][0]["addresses"][0]["ip"], "10.42.0.1");
    // Once the cache shows it, a sync changes nothing.
    let stored: Endpoints = serde_json::from_value(body.clone()).expect("endpoints");
    c.ctx.endpoints.seed(vec![stored]);
    c.clone().reconcile(key.clone()).await.expect("synced");
    assert_eq!(calls.without_events().len(), 1);
    // The Service goes: so do its Endpoints.
    c.ctx.services.remove(&key);
    c.clone().reconcile(key).await.expect("synced");
    assert_eq!(
        calls.without_events()[1].line(),
        "DELETE /api/v1/namespaces/default/endpoints/web?"
    );
}

#[tokio::test]
async fn services_without_a_selector_keep_their_hand_made_endpoints() {
    let (client, calls) = client(accept_all);
    let c = controller(client);
    c.ctx
        .services
        .seed(vec![service(json!({"selector": null}))]);
    c.ctx.pods.seed(vec![]);
    c.ctx.endpoints.seed(vec![]);
    c.clone()
        .reconcile(("default".into(), "web".into()))
        .await
        .expect("synced");
    assert!(calls.without_events().is_empty());
}
