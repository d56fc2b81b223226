//! Scenario tests: one sync of the controller against the mock API server
//! ([`crate::testing`]) and a fake [`MetricsClient`], asserting the calls made, the status
//! written and the events, with upstream's reasons and messages.

use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::autoscaling::v2::{CrossVersionObjectReference, HorizontalPodAutoscaler};
use k8s_openapi::api::core::v1::Pod;
use parking_lot::Mutex;
use serde_json::{json, Value};

use super::metrics::{pod_metrics_info, PodMetrics};
use super::*;
use crate::testing::{client, echo, Call, Calls};

/// A pod's metrics: its name and, per container, (name, cpu, memory).
type Usage<'a> = (&'a str, &'a [(&'a str, &'a str, &'a str)]);

/// Resource metrics from a fixed list of PodMetrics; every read recorded.
#[derive(Default)]
struct FakeMetrics {
    pods: Mutex<Vec<PodMetrics>>,
    reads: Mutex<Vec<String>>,
}

impl FakeMetrics {
    /// Metrics of pods: (pod, [(container, cpu, memory)]).
    fn with(pods: &[Usage<'_>]) -> Arc<FakeMetrics> {
        let items = pods
            .iter()
            .map(|(pod, containers)| {
                let containers: Vec<Value> = containers
                    .iter()
                    .map(|(name, cpu, memory)| json!({"name": name, "usage": {"cpu": cpu, "memory": memory}}))
                    .collect();
                serde_json::from_value(json!({
                    "metadata": {"name": pod, "namespace": "default"},
                    "timestamp": jiff::Timestamp::now().to_string(), "window": "15s",
                    "containers": containers,
                }))
                .expect("pod metrics")
            })
            .collect();
        Arc::new(FakeMetrics {
            pods: Mutex::new(items),
            reads: Mutex::default(),
        })
    }
}

impl MetricsClient for FakeMetrics {
    fn resource_metric<'a>(
        &'a self,
        resource: &'a str,
        namespace: &'a str,
        selector: &'a str,
        container: Option<&'a str>,
    ) -> BoxFuture<'a, Result<PodMetricsInfo, MetricsError>> {
        self.reads.lock().push(format!(
            "{resource} {namespace} {selector} {}",
            container.unwrap_or("-")
        ));
        let items = self.pods.lock().clone();
        Box::pin(async move {
            if items.is_empty() {
                return Err(MetricsError::NoResourceMetrics);
            }
            Ok(pod_metrics_info(&items, resource, container))
        })
    }

    fn raw_metric<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<PodMetricsInfo, MetricsError>> {
        Box::pin(async { Err(MetricsError::CustomApi("not served".into())) })
    }

    fn object_metric<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: &'a CrossVersionObjectReference,
        _: &'a str,
    ) -> BoxFuture<'a, Result<i64, MetricsError>> {
        Box::pin(async { Err(MetricsError::CustomApi("not served".into())) })
    }

    fn external_metric<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Vec<i64>, MetricsError>> {
        Box::pin(async { Err(MetricsError::ExternalApi("not served".into())) })
    }
}

fn cpu_utilization(percent: i32) -> Value {
    json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": percent}}}])
}

fn hpa(name: &str, kind: &str, api_version: &str, spec: Value) -> HorizontalPodAutoscaler {
    let mut object = json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": "default", "uid": format!("{name}-uid"), "generation": 1, "resourceVersion": "1"},
        "spec": {"scaleTargetRef": {"apiVersion": api_version, "kind": kind, "name": "web"}, "minReplicas": 1, "maxReplicas": 10},
    });
    for (k, v) in spec.as_object().expect("spec fields") {
        object["spec"][k] = v.clone();
    }
    serde_json::from_value(object).expect("hpa")
}

/// A Running, long-ready pod of the target, requesting `cpu` (and 100Mi of memory) in its
/// container `c`.
fn pod(name: &str, cpu: Option<&str>) -> Pod {
    let long_ago = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1)).to_string();
    let requests = match cpu {
        Some(cpu) => json!({"cpu": cpu, "memory": "100Mi"}),
        None => json!({"memory": "100Mi"}),
    };
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": requests}}]},
        "status": {"phase": "Running", "startTime": long_ago,
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": long_ago}]},
    }))
    .expect("pod")
}

/// An API server whose targets are at `replicas`, selecting `app=web`; writes echoed.
fn server(replicas: i32) -> (kube::Client, Calls) {
    client(move |call: &Call| match call.method.as_str() {
        "GET" if call.path.ends_with("/scale") => (
            200,
            json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": "web", "namespace": "default", "resourceVersion": "7"},
                "spec": {"replicas": replicas}, "status": {"replicas": replicas, "selector": "app=web"}}),
        ),
        "GET" => (
            404,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
                "message": "the server could not find the requested resource"}),
        ),
        "POST" => echo(call, 201),
        _ => echo(call, 200),
    })
}

fn controller(client: kube::Client, metrics: Arc<FakeMetrics>) -> Arc<HorizontalController> {
    let ctx = Context::new(client, crate::Options::default());
    HorizontalController::with_metrics(ctx, metrics, HpaOptions::default())
}

async fn sync(hc: &Arc<HorizontalController>, name: &str) {
    let again = hc
        .clone()
        .reconcile(("default".into(), name.into()))
        .await
        .expect("reconciled");
    assert_eq!(again, Some(DEFAULT_SYNC_PERIOD), "resynced every period");
}

fn lines(calls: &Calls) -> Vec<String> {
    calls.without_events().iter().map(Call::line).collect()
}

/// The status of the last status write.
fn written_status(calls: &Calls) -> Value {
    calls
        .without_events()
        .iter()
        .rev()
        .find(|c| c.path.contains("/status"))
        .map(|c| c.body["status"].clone())
        .expect("a status write")
}

/// `(type, status, reason, message)` of each condition.
fn conditions(status: &Value) -> Vec<(String, String, String, String)> {
    status["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .map(|c| {
            let s = |f: &str| c[f].as_str().unwrap_or_default().to_string();
            (s("type"), s("status"), s("reason"), s("message"))
        })
        .collect()
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
) -> (String, String, String, String) {
    (type_.into(), status.into(), reason.into(), message.into())
}

/// `(reason, message)` of the events posted, once `count` have arrived.
async fn events(calls: &Calls, count: usize) -> Vec<(String, String)> {
    for _ in 0..100 {
        if calls.events().len() >= count {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    calls
        .events()
        .iter()
        .map(|e| {
            let s = |f: &str| e.body[f].as_str().unwrap_or_default().to_string();
            (s("reason"), s("message"))
        })
        .collect()
}

const SCALE: &str = "/apis/apps/v1/namespaces/default/deployments/web/scale";
const STATUS: &str =
    "PUT /apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/web/status?";

#[tokio::test]
async fn a_busy_deployment_is_scaled_up_with_upstreams_status_and_event() {
    let (client, calls) = server(1);
    let metrics = FakeMetrics::with(&[("web-1", &[("c", "200m", "50Mi")])]);
    let hc = controller(client, metrics.clone());
    hc.ctx.horizontal_pod_autoscalers.seed(vec![hpa(
        "web",
        "Deployment",
        "apps/v1",
        json!({"metrics": cpu_utilization(50)}),
    )]);
    hc.ctx.pods.seed(vec![pod("web-1", Some("100m"))]);
    sync(&hc, "web").await;
    assert_eq!(
        lines(&calls),
        [
            format!("GET {SCALE}"),
            format!("PUT {SCALE}?"),
            STATUS.to_string()
        ]
    );
    assert_eq!(*metrics.reads.lock(), ["cpu default app=web -"]);
    let scale = &calls.without_events()[1].body;
    assert_eq!(
        scale["spec"]["replicas"], 4,
        "200% of a 50% target, at most 4 from 1"
    );
    assert_eq!(
        scale["metadata"]["resourceVersion"], "7",
        "the update is conditional"
    );
    let status = written_status(&calls);
    assert_eq!(status["currentReplicas"], 1);
    assert_eq!(status["desiredReplicas"], 4);
    assert_eq!(status["observedGeneration"], 1);
    assert!(status["lastScaleTime"].is_string());
    assert_eq!(
        status["currentMetrics"],
        json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 200, "averageValue": "200m"}}}])
    );
    assert_eq!(
        conditions(&status),
        [
            condition("AbleToScale", "True", "SucceededRescale", "the HPA controller was able to update the target scale to 4"),
            condition("ScalingActive", "True", "ValidMetricFound", "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)"),
            condition("ScalingLimited", "False", "DesiredWithinRange", "the desired count is within the acceptable range"),
        ]
    );
    assert_eq!(
        events(&calls, 1).await,
        [(
            "SuccessfulRescale".to_string(),
            "New size: 4; reason: cpu resource utilization (percentage of request) above target"
                .to_string()
        )]
    );
}

#[tokio::test]
async fn a_pod_without_a_cpu_request_stops_scaling_with_upstreams_message() {
    let (client, calls) = server(1);
    let metrics = FakeMetrics::with(&[("web-1", &[("c", "200m", "50Mi")])]);
    let hc = controller(client, metrics);
    hc.ctx.horizontal_pod_autoscalers.seed(vec![hpa(
        "web",
        "Deployment",
        "apps/v1",
        json!({"metrics": cpu_utilization(50)}),
    )]);
    hc.ctx.pods.seed(vec![pod("web-1", None)]);
    sync(&hc, "web").await;
    assert_eq!(
        lines(&calls),
        [format!("GET {SCALE}"), STATUS.to_string()],
        "no rescale"
    );
    let status = written_status(&calls);
    assert_eq!(status["currentReplicas"], 1);
    assert_eq!(status["desiredReplicas"], 0);
    assert_eq!(status["currentMetrics"], json!([{"type": ""}]));
    let cause =
        "failed to get cpu utilization: missing request for cpu in container c of Pod web-1";
    assert_eq!(
        conditions(&status),
        [
            condition(
                "AbleToScale",
                "True",
                "SucceededGetScale",
                "the HPA controller was able to get the target's current scale"
            ),
            condition(
                "ScalingActive",
                "False",
                "FailedGetResourceMetric",
                &format!("the HPA was unable to compute the replica count: {cause}")
            ),
        ]
    );
    assert_eq!(
        events(&calls, 2).await,
        [
            ("FailedGetResourceMetric".to_string(), cause.to_string()),
            (
                "FailedComputeMetricsReplicas".to_string(),
                format!("invalid metrics (1 invalid out of 1), first error is: failed to get cpu resource metric value: {cause}")
            ),
        ]
    );
}

#[tokio::test]
async fn no_metrics_reads_as_upstream_says_it() {
    let (client, calls) = server(2);
    let hc = controller(client, FakeMetrics::with(&[]));
    // No metrics in the spec: the API's default, CPU at 80%.
    hc.ctx
        .horizontal_pod_autoscalers
        .seed(vec![hpa("web", "Deployment", "apps/v1", json!({}))]);
    hc.ctx
        .pods
        .seed(vec![pod("web-1", Some("100m")), pod("web-2", Some("100m"))]);
    sync(&hc, "web").await;
    let status = written_status(&calls);
    assert_eq!(
        conditions(&status)[1],
        condition("ScalingActive", "False", "FailedGetResourceMetric", "the HPA was unable to compute the replica count: failed to get cpu utilization: unable to get metrics for resource cpu: no metrics returned from resource metrics API")
    );
}

#[tokio::test]
async fn a_missing_target_fails_get_scale() {
    let (client, calls) = client(|call: &Call| match call.method.as_str() {
        "GET" => (
            404,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
                "message": "deployments.apps \"web\" not found"}),
        ),
        "POST" => echo(call, 201),
        _ => echo(call, 200),
    });
    let hc = controller(client, FakeMetrics::with(&[]));
    hc.ctx
        .horizontal_pod_autoscalers
        .seed(vec![hpa("web", "Deployment", "apps/v1", json!({}))]);
    hc.ctx.pods.seed(vec![]);
    sync(&hc, "web").await;
    assert_eq!(lines(&calls), [format!("GET {SCALE}"), STATUS.to_string()]);
    assert_eq!(
        conditions(&written_status(&calls)),
        [condition("AbleToScale", "False", "FailedGetScale", "the HPA controller was unable to get the target's current scale: deployments.apps \"web\" not found")]
    );
    assert_eq!(
        events(&calls, 1).await,
        [(
            "FailedGetScale".to_string(),
            "deployments.apps \"web\" not found".to_string()
        )]
    );
}

#[tokio::test]
async fn an_unknown_kind_has_no_match() {
    let (client, calls) = server(1);
    let hc = controller(client, FakeMetrics::with(&[]));
    hc.ctx
        .horizontal_pod_autoscalers
        .seed(vec![hpa("web", "Foo", "example.com/v1", json!({}))]);
    hc.ctx.pods.seed(vec![]);
    sync(&hc, "web").await;
    assert_eq!(
        conditions(&written_status(&calls)),
        [condition("AbleToScale", "False", "FailedGetScale", "the HPA controller was unable to get the target's current scale: no matches for kind \"Foo\" in group \"example.com\"")]
    );
}

#[tokio::test]
async fn a_target_scaled_to_zero_disables_scaling() {
    let (client, calls) = server(0);
    let metrics = FakeMetrics::with(&[]);
    let hc = controller(client, metrics.clone());
    hc.ctx
        .horizontal_pod_autoscalers
        .seed(vec![hpa("web", "Deployment", "apps/v1", json!({}))]);
    hc.ctx.pods.seed(vec![]);
    sync(&hc, "web").await;
    assert_eq!(lines(&calls), [format!("GET {SCALE}"), STATUS.to_string()]);
    assert!(metrics.reads.lock().is_empty());
    let status = written_status(&calls);
    assert_eq!(status["desiredReplicas"], 0);
    assert_eq!(
        conditions(&status)[1],
        condition(
            "ScalingActive",
            "False",
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero"
        )
    );
}

#[tokio::test]
async fn replicas_outside_the_bounds_are_brought_in_without_metrics() {
    for (replicas, want, reason) in [
        (12, 10, "Current number of replicas above Spec.MaxReplicas"),
        (1, 3, "Current number of replicas below Spec.MinReplicas"),
    ] {
        let (client, calls) = server(replicas);
        let metrics = FakeMetrics::with(&[]);
        let hc = controller(client, metrics.clone());
        hc.ctx.horizontal_pod_autoscalers.seed(vec![hpa(
            "web",
            "Deployment",
            "apps/v1",
            json!({"minReplicas": 3}),
        )]);
        hc.ctx.pods.seed(vec![]);
        sync(&hc, "web").await;
        assert!(metrics.reads.lock().is_empty());
        assert_eq!(calls.without_events()[1].body["spec"]["replicas"], want);
        assert_eq!(written_status(&calls)["desiredReplicas"], want);
        assert_eq!(
            events(&calls, 1).await,
            [(
                "SuccessfulRescale".to_string(),
                format!("New size: {want}; reason: {reason}")
            )]
        );
    }
}

#[tokio::test]
async fn a_scale_down_waits_for_the_stabilization_window_and_an_unchanged_status_is_not_rewritten()
{
    let (client, calls) = server(4);
    let names = ["web-1", "web-2", "web-3", "web-4"];
    let usage: Vec<Usage<'_>> = names
        .iter()
        .map(|n| (*n, &[("c", "10m", "10Mi")][..]))
        .collect();
    let hc = controller(client, FakeMetrics::with(&usage));
    hc.ctx.horizontal_pod_autoscalers.seed(vec![hpa(
        "web",
        "Deployment",
        "apps/v1",
        json!({"metrics": cpu_utilization(50)}),
    )]);
    hc.ctx
        .pods
        .seed(names.iter().map(|n| pod(n, Some("100m"))).collect());
    sync(&hc, "web").await;
    assert_eq!(
        lines(&calls),
        [format!("GET {SCALE}"), STATUS.to_string()],
        "no rescale"
    );
    let status = written_status(&calls);
    assert_eq!(status["desiredReplicas"], 4);
    assert_eq!(
        conditions(&status)[0],
        condition("AbleToScale", "True", "ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation")
    );
    // The next sync sees its own status: nothing new to write.
    let mut seen = hc
        .ctx
        .horizontal_pod_autoscalers
        .get("default", "web")
        .expect("hpa")
        .as_ref()
        .clone();
    seen.status = Some(serde_json::from_value(status).expect("status"));
    seen.metadata.resource_version = Some("2".into());
    hc.ctx.horizontal_pod_autoscalers.seed(vec![seen]);
    sync(&hc, "web").await;
    assert_eq!(lines(&calls)[2..], [format!("GET {SCALE}")]);
}

#[tokio::test]
async fn behavior_policies_limit_a_scale_up() {
    let (client, calls) = server(2);
    let metrics = FakeMetrics::with(&[
        ("web-1", &[("c", "200m", "1Mi")]),
        ("web-2", &[("c", "200m", "1Mi")]),
    ]);
    let hc = controller(client, metrics);
    let behavior =
        json!({"scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}});
    hc.ctx.horizontal_pod_autoscalers.seed(vec![hpa(
        "web",
        "Deployment",
        "apps/v1",
        json!({"metrics": cpu_utilization(50), "behavior": behavior}),
    )]);
    hc.ctx
        .pods
        .seed(vec![pod("web-1", Some("100m")), pod("web-2", Some("100m"))]);
    sync(&hc, "web").await;
    assert_eq!(calls.without_events()[1].body["spec"]["replicas"], 3);
    assert_eq!(
        conditions(&written_status(&calls))[2],
        condition(
            "ScalingLimited",
            "True",
            "ScaleUpLimit",
            "the desired replica count is increasing faster than the maximum scale rate"
        )
    );
}

#[tokio::test]
async fn memory_values_and_container_resources_are_read_and_the_highest_wins() {
    let (client, calls) = server(2);
    let metrics = FakeMetrics::with(&[
        ("web-1", &[("c", "25m", "150Mi")]),
        ("web-2", &[("c", "25m", "150Mi")]),
    ]);
    let hc = controller(client, metrics.clone());
    let specs = json!([
        {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
        {"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "c", "target": {"type": "Utilization", "averageUtilization": 50}}},
    ]);
    hc.ctx.horizontal_pod_autoscalers.seed(vec![hpa(
        "web",
        "Deployment",
        "apps/v1",
        json!({"metrics": specs}),
    )]);
    hc.ctx
        .pods
        .seed(vec![pod("web-1", Some("100m")), pod("web-2", Some("100m"))]);
    sync(&hc, "web").await;
    assert_eq!(
        *metrics.reads.lock(),
        ["memory default app=web -", "cpu default app=web c"]
    );
    assert_eq!(calls.without_events()[1].body["spec"]["replicas"], 3);
    let status = written_status(&calls);
    assert_eq!(
        status["currentMetrics"],
        json!([
            {"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "157286400"}}},
            {"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "c", "current": {"averageUtilization": 25, "averageValue": "25m"}}},
        ])
    );
    assert_eq!(
        events(&calls, 1).await,
        [(
            "SuccessfulRescale".to_string(),
            "New size: 3; reason: memory resource above target".to_string()
        )]
    );
}

#[tokio::test]
async fn two_hpas_over_the_same_pods_are_ambiguous() {
    let (client, calls) = server(1);
    let metrics = FakeMetrics::with(&[("web-1", &[("c", "50m", "1Mi")])]);
    let hc = controller(client, metrics);
    hc.ctx.horizontal_pod_autoscalers.seed(vec![
        hpa(
            "a",
            "Deployment",
            "apps/v1",
            json!({"metrics": cpu_utilization(50)}),
        ),
        hpa(
            "b",
            "Deployment",
            "apps/v1",
            json!({"metrics": cpu_utilization(50)}),
        ),
    ]);
    hc.ctx.pods.seed(vec![pod("web-1", Some("100m"))]);
    sync(&hc, "a").await;
    sync(&hc, "b").await;
    let status = written_status(&calls);
    let message = "pods by selector app=web are controlled by multiple HPAs: [default/a default/b]";
    assert_eq!(
        conditions(&status)[1],
        condition("ScalingActive", "False", "AmbiguousSelector", message)
    );
    assert!(events(&calls, 2)
        .await
        .contains(&("AmbiguousSelector".to_string(), message.to_string())));
}

#[tokio::test]
async fn replication_controllers_are_scaled_through_the_core_scale() {
    let (client, calls) = server(12);
    let hc = controller(client, FakeMetrics::with(&[]));
    hc.ctx.horizontal_pod_autoscalers.seed(vec![hpa(
        "web",
        "ReplicationController",
        "v1",
        json!({}),
    )]);
    hc.ctx.pods.seed(vec![]);
    sync(&hc, "web").await;
    assert_eq!(
        lines(&calls)[..2],
        [
            "GET /api/v1/namespaces/default/replicationcontrollers/web/scale",
            "PUT /api/v1/namespaces/default/replicationcontrollers/web/scale?",
        ]
    );
}

#[tokio::test]
async fn a_deleted_hpa_is_forgotten() {
    let (client, calls) = server(1);
    let hc = controller(client, FakeMetrics::with(&[]));
    hc.ctx
        .horizontal_pod_autoscalers
        .seed(vec![hpa("web", "Deployment", "apps/v1", json!({}))]);
    hc.ctx.pods.seed(vec![]);
    sync(&hc, "web").await;
    hc.ctx
        .horizontal_pod_autoscalers
        .remove(&("default".into(), "web".into()));
    let again = hc
        .clone()
        .reconcile(("default".into(), "web".into()))
        .await
        .expect("reconciled");
    assert_eq!(again, None);
    assert!(hc.selectors.lock().is_empty());
    assert_eq!(lines(&calls).len(), 2, "nothing after the deletion");
}
