//! One sync of the controller against a mock API server: the calls it makes, and the tracker
//! keeping it from acting on a cache that has not seen its writes.

use super::*;
use crate::testing::{accept_all, client, echo, Call};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

fn service() -> Service {
    serde_json::from_value(
        json!({"metadata": {"name": "web", "namespace": "default", "uid": "svc-uid"},
        "spec": {"selector": {"app": "web"}, "clusterIP": "10.43.0.20", "ipFamilies": ["IPv4"],
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}}),
    )
    .expect("service")
}

fn pod(i: usize) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("web-{i}"), "namespace": "default", "uid": format!("uid-{i}"), "labels": {"app": "web"}},
        "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "x"}]},
        "status": {"phase": "Running", "podIP": format!("10.42.0.{}", i + 1),
            "conditions": [{"type": "Ready", "status": "True"}]},
    }))
    .expect("pod")
}

fn controller(client: kube::Client) -> Arc<EndpointSliceController> {
    let c = EndpointSliceController::new(Context::new(client, crate::Options::default()));
    c.ctx.nodes.seed(vec![serde_json::from_value(
        json!({"metadata": {"name": "node-a"}}),
    )
    .expect("node")]);
    c.ctx.endpoint_slices.seed(vec![]);
    c
}

/// Takes every key off the queue (those the seeding queued).
async fn drain(queue: &Queue<Key>) {
    while !queue.is_empty() {
        let k = queue.get().await.expect("key");
        queue.done(&k);
    }
}

fn key() -> Key {
    ("default".into(), "web".into())
}

#[tokio::test]
async fn creates_a_slice_then_waits_for_the_cache_to_see_it() {
    let (client, calls) = client(accept_all);
    let c = controller(client);
    c.ctx.services.seed(vec![service()]);
    c.ctx.pods.seed(vec![pod(0), pod(1)]);
    c.clone().reconcile(key()).await.expect("synced");
    let made = calls.without_events();
    assert_eq!(
        made.iter().map(Call::line).collect::<Vec<_>>(),
        ["POST /apis/discovery.k8s.io/v1/namespaces/default/endpointslices?"]
    );
    assert_eq!(made[0].body["metadata"]["generateName"], "web-");
    assert_eq!(made[0].body["endpoints"].as_array().map(Vec::len), Some(2));
    // The cache has not seen the new slice: a sync now would create a second one.
    let stale = c.clone().reconcile(key()).await;
    assert!(
        matches!(stale, Err(EndpointSliceError::StaleCache)),
        "{stale:?}"
    );
    assert_eq!(calls.without_events().len(), 1);
    // The watch brings the slice: no news for the controller, and the next sync is a no-op.
    let (_, answered) = echo(&made[0], 201);
    let created: EndpointSlice = serde_json::from_value(answered).expect("slice");
    drain(&c.queue).await;
    c.ctx.endpoint_slices.seed(vec![created]);
    assert!(c.queue.is_empty());
    c.clone().reconcile(key()).await.expect("synced");
    assert_eq!(calls.without_events().len(), 1);
}

#[tokio::test]
async fn pods_of_unknown_nodes_are_left_out_and_the_service_retried() {
    let (client, calls) = client(accept_all);
    let c = controller(client);
    c.ctx.services.seed(vec![service()]);
    let mut elsewhere = pod(1);
    elsewhere.spec.as_mut().expect("spec").node_name = Some("node-b".into());
    c.ctx.pods.seed(vec![pod(0), elsewhere]);
    let result = c.clone().reconcile(key()).await;
    let error = result.expect_err("a pod was left out");
    assert_eq!(
        error.to_string(),
        "skipping Pods for Service default/web: Pod web-1: Node node-b Not Found"
    );
    let made = calls.without_events();
    assert_eq!(made[0].body["endpoints"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn pod_changes_queue_the_services_that_select_them() {
    let (client, _calls) = client(accept_all);
    let c = controller(client);
    c.ctx.services.seed(vec![service()]);
    drain(&c.queue).await;
    c.ctx.pods.seed(vec![pod(0)]);
    assert_eq!(c.queue.len(), 1);
    drain(&c.queue).await;
    // A change its endpoint does not show is no reason to sync.
    let mut annotated = pod(0);
    annotated.metadata.annotations = Some([("a".to_string(), "b".to_string())].into());
    annotated.metadata.resource_version = Some("9".into());
    c.ctx.pods.seed(vec![annotated]);
    assert_eq!(c.queue.len(), 0);
    // A pod leaving the selector is.
    let mut relabelled = pod(0);
    relabelled.metadata.labels = Some([("app".to_string(), "other".to_string())].into());
    relabelled.metadata.resource_version = Some("10".into());
    c.ctx.pods.seed(vec![relabelled]);
    assert_eq!(c.queue.len(), 1);
}

#[tokio::test]
async fn selectorless_and_deleted_services_get_nothing() {
    let (client, calls) = client(accept_all);
    let c = controller(client);
    let mut selectorless = service();
    selectorless.spec.as_mut().expect("spec").selector = None;
    c.ctx.services.seed(vec![selectorless]);
    c.ctx.pods.seed(vec![pod(0)]);
    c.clone().reconcile(key()).await.expect("synced");
    c.clone()
        .reconcile(("default".into(), "gone".into()))
        .await
        .expect("synced");
    assert!(calls.without_events().is_empty());
}

fn unready(i: usize) -> Pod {
    let mut pod = pod(i);
    let status = pod.status.as_mut().expect("status");
    status.conditions = Some(vec![serde_json::from_value(
        json!({"type": "Ready", "status": "False"}),
    )
    .expect("condition")]);
    pod
}

/// The slice the API server answered the last write with, as the watch brings it.
fn last_written(calls: &crate::testing::Calls) -> EndpointSlice {
    let made = calls.without_events();
    let last = made.last().expect("a write");
    let (_, answered) = echo(last, 200);
    serde_json::from_value(answered).expect("slice")
}

#[tokio::test]
async fn a_pod_becoming_a_ready_endpoint_is_a_step_of_its_journey() {
    let capture = ferry_journey::testing::capture();
    let (client, calls) = client(accept_all);
    let c = controller(client);
    c.ctx.services.seed(vec![service()]);
    let mut traced = pod(0);
    traced.metadata.annotations = Some(
        [(
            ferry_journey::ANNOTATION.to_string(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_string(),
        )]
        .into(),
    );
    c.ctx.pods.seed(vec![traced.clone(), unready(1)]);
    c.clone().reconcile(key()).await.expect("synced");
    // Only the ready pod is added.
    let spans = capture.spans();
    assert_eq!(capture.steps(), ["added to endpointslice"]);
    let step = &spans[0];
    assert_eq!(step.trace_id, "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(step.parent_span_id.as_deref(), Some("b7ad6b7169203331"));
    assert_eq!(step.component, "endpointslice-controller");
    let object = step.object.as_ref().expect("the pod");
    assert_eq!(
        (object.key(), object.uid.as_deref()),
        ("pods/default/web-0".to_string(), Some("uid-0"))
    );
    assert_eq!(step.attributes["service"], "web");
    assert_eq!(step.attributes["slice"], "web-abcde", "the generated name");
    // The watch brings the slice; a resync writes nothing and takes no step.
    capture.clear();
    drain(&c.queue).await;
    c.ctx.endpoint_slices.seed(vec![last_written(&calls)]);
    c.clone().reconcile(key()).await.expect("synced");
    assert_eq!(calls.without_events().len(), 1);
    assert!(capture.steps().is_empty());
    // The second pod turns ready: its endpoint's update is its step, and only its.
    c.ctx.pods.seed(vec![traced, pod(1)]);
    c.clone().reconcile(key()).await.expect("synced");
    let made = calls.without_events();
    assert_eq!(made.len(), 2);
    assert!(made[1].line().starts_with("PUT "), "{:?}", made[1].line());
    let spans = capture.spans();
    assert_eq!(capture.steps(), ["added to endpointslice"]);
    let object = spans[0].object.as_ref().expect("the pod");
    assert_eq!(object.key(), "pods/default/web-1");
    assert_eq!(
        spans[0].parent_span_id, None,
        "web-1 has no journey annotation"
    );
}
