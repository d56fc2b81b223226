//! Reading metrics, as upstream's `pkg/controller/podautoscaler/metrics` (`client.go`,
//! `utilization.go`): the resource metrics API `metrics.k8s.io/v1beta1` for `Resource` and
//! `ContainerResource` metrics, the custom metrics API `custom.metrics.k8s.io/v1beta2` for
//! `Pods` and `Object` metrics and the external metrics API `external.metrics.k8s.io/v1beta1`
//! for `External` ones — all behind the [`MetricsClient`] trait, so the controller is tested
//! with a fake. [`RestMetricsClient`] reads them through the API server with kube-rs:
//! `GET /apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods?labelSelector=…` lists [`PodMetrics`].
//!
//! Values are milli-units (`250m` of CPU is 250, `64Mi` of memory is 67108864000), as upstream
//! keeps them.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::Timestamp;
use k8s_openapi::api::autoscaling::v2::CrossVersionObjectReference;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::ListParams;
use kube::Api;
use serde::{Deserialize, Serialize};

use crate::replicaset::api_message;

/// `metrics.k8s.io/v1beta1` `PodMetrics`: what a pod's containers used over `window` up to
/// `timestamp` (metrics-server's answer, served by the API server).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodMetrics {
    /// The pod's name and namespace (and labels, which the list's selector matched).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The end of the window the usage was measured over.
    #[serde(default)]
    pub timestamp: Option<Time>,
    /// The window's length, a Go duration (`15s`).
    #[serde(default)]
    pub window: String,
    /// Usage per container.
    #[serde(default)]
    pub containers: Vec<ContainerMetrics>,
}

/// One container's usage in a [`PodMetrics`].
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ContainerMetrics {
    /// The container's name.
    pub name: String,
    /// Usage by resource name (`cpu`, `memory`).
    #[serde(default)]
    pub usage: BTreeMap<String, Quantity>,
}

/// `metrics.k8s.io/v1beta1` `NodeMetrics`: what a node used (for `kubectl top node`; the HPA
/// does not read it).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeMetrics {
    /// The node's name.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The end of the window the usage was measured over.
    #[serde(default)]
    pub timestamp: Option<Time>,
    /// The window's length, a Go duration.
    #[serde(default)]
    pub window: String,
    /// Usage by resource name.
    #[serde(default)]
    pub usage: BTreeMap<String, Quantity>,
}

impl k8s_openapi::Resource for PodMetrics {
    const API_VERSION: &'static str = "metrics.k8s.io/v1beta1";
    const GROUP: &'static str = "metrics.k8s.io";
    const KIND: &'static str = "PodMetrics";
    const VERSION: &'static str = "v1beta1";
    const URL_PATH_SEGMENT: &'static str = "pods";
    type Scope = k8s_openapi::NamespaceResourceScope;
}

impl k8s_openapi::Metadata for PodMetrics {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl k8s_openapi::Resource for NodeMetrics {
    const API_VERSION: &'static str = "metrics.k8s.io/v1beta1";
    const GROUP: &'static str = "metrics.k8s.io";
    const KIND: &'static str = "NodeMetrics";
    const VERSION: &'static str = "v1beta1";
    const URL_PATH_SEGMENT: &'static str = "nodes";
    type Scope = k8s_openapi::ClusterResourceScope;
}

impl k8s_openapi::Metadata for NodeMetrics {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// One pod's value of a metric (upstream's `PodMetric`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodMetric {
    /// When it was measured (the end of the window).
    pub timestamp: Timestamp,
    /// Over how long.
    pub window: Duration,
    /// The value in milli-units.
    pub value: i64,
}

/// Metric values by pod name (upstream's `PodMetricsInfo`).
pub type PodMetricsInfo = BTreeMap<String, PodMetric>;

/// Why metrics could not be read; the messages are upstream's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    /// The resource metrics API call failed.
    #[error("unable to fetch metrics from resource metrics API: {0}")]
    ResourceApi(String),
    /// The resource metrics API had nothing for the selector.
    #[error("no metrics returned from resource metrics API")]
    NoResourceMetrics,
    /// The custom metrics API call failed.
    #[error("unable to fetch metrics from custom metrics API: {0}")]
    CustomApi(String),
    /// The custom metrics API had nothing for the selector.
    #[error("no metrics returned from custom metrics API")]
    NoCustomMetrics,
    /// An object metric's answer did not hold exactly one value.
    #[error("the custom metrics API server returned {0} results when we asked for exactly one")]
    NotOneObjectMetric(usize),
    /// The external metrics API call failed.
    #[error("unable to fetch metrics from external metrics API: {0}")]
    ExternalApi(String),
    /// The external metrics API had nothing for the selector.
    #[error("no metrics returned from external metrics API")]
    NoExternalMetrics,
}

/// Where the HPA controller reads metrics (upstream's `MetricsClient`). Selectors are label
/// selector strings (`app=web,tier in (a,b)`), as the APIs take them.
pub trait MetricsClient: Send + Sync + 'static {
    /// `resource` (`cpu`, `memory`) of the pods `selector` matches in `namespace`: the sum over
    /// their containers, or `container`'s alone (upstream's `GetResourceMetric`).
    fn resource_metric<'a>(
        &'a self,
        resource: &'a str,
        namespace: &'a str,
        selector: &'a str,
        container: Option<&'a str>,
    ) -> BoxFuture<'a, Result<PodMetricsInfo, MetricsError>>;

    /// A custom metric of the pods `selector` matches (upstream's `GetRawMetric`).
    fn raw_metric<'a>(
        &'a self,
        metric: &'a str,
        namespace: &'a str,
        selector: &'a str,
        metric_selector: &'a str,
    ) -> BoxFuture<'a, Result<PodMetricsInfo, MetricsError>>;

    /// A custom metric of one object (upstream's `GetObjectMetric`), in milli-units.
    fn object_metric<'a>(
        &'a self,
        metric: &'a str,
        namespace: &'a str,
        object: &'a CrossVersionObjectReference,
        metric_selector: &'a str,
    ) -> BoxFuture<'a, Result<i64, MetricsError>>;

    /// The values of an external metric (upstream's `GetExternalMetric`), in milli-units.
    fn external_metric<'a>(
        &'a self,
        metric: &'a str,
        namespace: &'a str,
        selector: &'a str,
    ) -> BoxFuture<'a, Result<Vec<i64>, MetricsError>>;
}

/// Sums of `resource` per pod from the resource metrics API's answer (upstream's
/// `getPodMetrics`, or `getContainerMetrics` for one container). A pod missing the resource
/// in any container (or having no containers) is left out: the calculation counts it missing.
pub fn pod_metrics_info(
    items: &[PodMetrics],
    resource: &str,
    container: Option<&str>,
) -> PodMetricsInfo {
    let mut info = PodMetricsInfo::new();
    for item in items {
        let name = item.metadata.name.clone().unwrap_or_default();
        let timestamp = item
            .timestamp
            .as_ref()
            .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
        let window = ferry_api::duration::parse_go(&item.window).unwrap_or_default();
        let milli = |q: &Quantity| {
            ferry_api::quantity::Quantity::from_api(q)
                .map(|q| q.milli_value())
                .unwrap_or(0)
        };
        let value = match container {
            Some(wanted) => {
                let found = item.containers.iter().find(|c| c.name == wanted);
                match found.and_then(|c| c.usage.get(resource)) {
                    Some(q) => milli(q),
                    None => {
                        tracing::debug!(container = wanted, pod = %name, "missing container metric");
                        continue;
                    }
                }
            }
            None => {
                let values: Option<Vec<i64>> = item
                    .containers
                    .iter()
                    .map(|c| c.usage.get(resource).map(milli))
                    .collect();
                match values {
                    Some(values) if !values.is_empty() => values.iter().sum(),
                    _ => {
                        tracing::debug!(resource, pod = %name, "missing resource metric");
                        continue;
                    }
                }
            }
        };
        info.insert(
            name,
            PodMetric {
                timestamp,
                window,
                value,
            },
        );
    }
    info
}

/// The window custom metrics without `windowSeconds` are taken to cover (upstream's
/// `metricServerDefaultMetricWindow`).
const DEFAULT_METRIC_WINDOW: Duration = Duration::from_secs(60);

/// `custom.metrics.k8s.io/v1beta2` `MetricValueList`.
#[derive(Clone, Debug, Default, Deserialize)]
struct MetricValueList {
    #[serde(default)]
    items: Vec<MetricValue>,
}

/// One value in a [`MetricValueList`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetricValue {
    #[serde(default)]
    described_object: DescribedObject,
    #[serde(default)]
    timestamp: Option<Time>,
    #[serde(default)]
    window_seconds: Option<i64>,
    value: Quantity,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct DescribedObject {
    #[serde(default)]
    name: String,
}

/// `external.metrics.k8s.io/v1beta1` `ExternalMetricValueList`.
#[derive(Clone, Debug, Default, Deserialize)]
struct ExternalMetricValueList {
    #[serde(default)]
    items: Vec<ExternalMetricValue>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct ExternalMetricValue {
    value: Quantity,
}

fn milli_of(q: &Quantity) -> i64 {
    ferry_api::quantity::Quantity::from_api(q)
        .map(|q| q.milli_value())
        .unwrap_or(0)
}

/// The metrics APIs read through the API server (upstream's `restMetricsClient`).
pub struct RestMetricsClient {
    client: kube::Client,
}

impl RestMetricsClient {
    /// A client reading through `client`.
    pub fn new(client: kube::Client) -> RestMetricsClient {
        RestMetricsClient { client }
    }

    /// GETs `path_and_query` and decodes the answer.
    async fn get<T: serde::de::DeserializeOwned>(&self, path_and_query: &str) -> Result<T, String> {
        // kube's request builder gives a GET of the right shape; the path is ours.
        let mut request = kube::core::Request::new("/")
            .list(&ListParams::default())
            .map_err(|e| e.to_string())?;
        *request.uri_mut() = path_and_query
            .parse()
            .map_err(|e| format!("invalid metrics path {path_and_query}: {e}"))?;
        self.client
            .request::<T>(request)
            .await
            .map_err(|e| api_message(&e))
    }
}

/// Percent-encodes a query parameter's value.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `?a=x&b=y` of the non-empty values.
fn query(params: &[(&str, &str)]) -> String {
    let parts: Vec<String> = params
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// `deployments.apps` for a Deployment, `pods` for a Pod: how the custom metrics API names the
/// resource of an object (upstream resolves it with a REST mapper).
fn qualified_resource(object: &CrossVersionObjectReference) -> String {
    let group = object
        .api_version
        .as_deref()
        .and_then(|v| v.rsplit_once('/'))
        .map_or("", |(group, _)| group);
    let plural = ferry_api::registry::RESOURCES
        .iter()
        .find(|r| r.group == group && r.kind == object.kind)
        .map_or_else(
            || format!("{}s", object.kind.to_lowercase()),
            |r| r.plural.to_string(),
        );
    if group.is_empty() {
        plural
    } else {
        format!("{plural}.{group}")
    }
}

const CUSTOM_METRICS: &str = "/apis/custom.metrics.k8s.io/v1beta2";
const EXTERNAL_METRICS: &str = "/apis/external.metrics.k8s.io/v1beta1";

impl MetricsClient for RestMetricsClient {
    fn resource_metric<'a>(
        &'a self,
        resource: &'a str,
        namespace: &'a str,
        selector: &'a str,
        container: Option<&'a str>,
    ) -> BoxFuture<'a, Result<PodMetricsInfo, MetricsError>> {
        Box::pin(async move {
            let api: Api<PodMetrics> = Api::namespaced(self.client.clone(), namespace);
            let mut params = ListParams::default();
            if !selector.is_empty() {
                params = params.labels(selector);
            }
            let list = api
                .list(&params)
                .await
                .map_err(|e| MetricsError::ResourceApi(api_message(&e)))?;
            if list.items.is_empty() {
                return Err(MetricsError::NoResourceMetrics);
            }
            Ok(pod_metrics_info(&list.items, resource, container))
        })
    }

    fn raw_metric<'a>(
        &'a self,
        metric: &'a str,
        namespace: &'a str,
        selector: &'a str,
        metric_selector: &'a str,
    ) -> BoxFuture<'a, Result<PodMetricsInfo, MetricsError>> {
        Box::pin(async move {
            let path = format!(
                "{CUSTOM_METRICS}/namespaces/{namespace}/pods/*/{metric}{}",
                query(&[
                    ("labelSelector", selector),
                    ("metricLabelSelector", metric_selector)
                ])
            );
            let list: MetricValueList = self.get(&path).await.map_err(MetricsError::CustomApi)?;
            if list.items.is_empty() {
                return Err(MetricsError::NoCustomMetrics);
            }
            Ok(list
                .items
                .iter()
                .map(|m| {
                    let window = m
                        .window_seconds
                        .and_then(|s| u64::try_from(s).ok())
                        .map_or(DEFAULT_METRIC_WINDOW, Duration::from_secs);
                    let metric = PodMetric {
                        timestamp: m.timestamp.as_ref().map_or(Timestamp::UNIX_EPOCH, |t| t.0),
                        window,
                        value: milli_of(&m.value),
                    };
                    (m.described_object.name.clone(), metric)
                })
                .collect())
        })
    }

    fn object_metric<'a>(
        &'a self,
        metric: &'a str,
        namespace: &'a str,
        object: &'a CrossVersionObjectReference,
        metric_selector: &'a str,
    ) -> BoxFuture<'a, Result<i64, MetricsError>> {
        Box::pin(async move {
            let q = query(&[("metricLabelSelector", metric_selector)]);
            let core_namespace = object.kind == "Namespace"
                && object.api_version.as_deref().is_none_or(|v| v == "v1");
            let path = if core_namespace {
                // The namespace's own metrics; CrossVersionObjectReference may not escape it.
                format!("{CUSTOM_METRICS}/namespaces/{namespace}/metrics/{metric}{q}")
            } else {
                format!(
                    "{CUSTOM_METRICS}/namespaces/{namespace}/{}/{}/{metric}{q}",
                    qualified_resource(object),
                    object.name
                )
            };
            let list: MetricValueList = self.get(&path).await.map_err(MetricsError::CustomApi)?;
            match list.items.as_slice() {
                [one] => Ok(milli_of(&one.value)),
                items => Err(MetricsError::CustomApi(
                    MetricsError::NotOneObjectMetric(items.len()).to_string(),
                )),
            }
        })
    }

    fn external_metric<'a>(
        &'a self,
        metric: &'a str,
        namespace: &'a str,
        selector: &'a str,
    ) -> BoxFuture<'a, Result<Vec<i64>, MetricsError>> {
        Box::pin(async move {
            let path = format!(
                "{EXTERNAL_METRICS}/namespaces/{namespace}/{metric}{}",
                query(&[("labelSelector", selector)])
            );
            let list: ExternalMetricValueList =
                self.get(&path).await.map_err(MetricsError::ExternalApi)?;
            if list.items.is_empty() {
                return Err(MetricsError::NoExternalMetrics);
            }
            Ok(list.items.iter().map(|m| milli_of(&m.value)).collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{client, Call};
    use serde_json::json;

    fn pod_metrics(name: &str, containers: serde_json::Value) -> PodMetrics {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"},
            "timestamp": "2025-01-01T00:00:00Z", "window": "15s",
            "containers": containers,
        }))
        .expect("pod metrics")
    }

    #[test]
    fn pod_values_sum_containers_and_skip_pods_missing_the_resource() {
        let items = vec![
            pod_metrics(
                "a",
                json!([{"name": "c1", "usage": {"cpu": "250m", "memory": "64Mi"}},
                       {"name": "c2", "usage": {"cpu": "1"}}]),
            ),
            pod_metrics("b", json!([{"name": "c1", "usage": {"memory": "1Mi"}}])),
            pod_metrics("c", json!([])),
        ];
        let cpu = pod_metrics_info(&items, "cpu", None);
        assert_eq!(cpu.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(cpu["a"].value, 1250);
        assert_eq!(cpu["a"].window, Duration::from_secs(15));
        assert_eq!(
            cpu["a"].timestamp,
            "2025-01-01T00:00:00Z".parse::<Timestamp>().expect("ts")
        );
        let memory = pod_metrics_info(&items, "memory", None);
        assert_eq!(memory["b"].value, 1_048_576_000);
        assert!(!memory.contains_key("a"), "c2 has no memory usage");
        let one = pod_metrics_info(&items, "cpu", Some("c2"));
        assert_eq!(one.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(one["a"].value, 1000);
    }

    #[tokio::test]
    async fn resource_metrics_are_listed_by_label_selector() {
        let (client, calls) = client(|_call: &Call| {
            (
                200,
                json!({"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {},
                    "items": [{"metadata": {"name": "web-1", "namespace": "default"},
                        "timestamp": "2025-01-01T00:00:00Z", "window": "15s",
                        "containers": [{"name": "c", "usage": {"cpu": "120m", "memory": "64Mi"}}]}]}),
            )
        });
        let metrics = RestMetricsClient::new(client);
        let info = metrics
            .resource_metric("cpu", "default", "app=web", None)
            .await
            .expect("metrics");
        assert_eq!(info["web-1"].value, 120);
        assert_eq!(
            calls.without_events()[0].line(),
            "GET /apis/metrics.k8s.io/v1beta1/namespaces/default/pods?&labelSelector=app%3Dweb"
        );
    }

    #[tokio::test]
    async fn an_unserved_metrics_api_reads_as_upstream_says_it() {
        let (client, _) = client(|_call: &Call| {
            (
                404,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
                    "message": "the server could not find the requested resource"}),
            )
        });
        let metrics = RestMetricsClient::new(client);
        let error = metrics
            .resource_metric("cpu", "default", "app=web", None)
            .await
            .expect_err("no API");
        assert_eq!(
            error.to_string(),
            "unable to fetch metrics from resource metrics API: the server could not find the requested resource"
        );
    }

    #[tokio::test]
    async fn custom_and_external_metrics_use_their_apis_paths() {
        let (client, calls) = client(|call: &Call| {
            let items = if call.path.contains("external") {
                json!([{"metricName": "queue", "value": "3"}, {"metricName": "queue", "value": "500m"}])
            } else {
                json!([{"describedObject": {"kind": "Pod", "name": "web-1"}, "metric": {"name": "qps"},
                    "timestamp": "2025-01-01T00:00:00Z", "value": "20"}])
            };
            (200, json!({"items": items}))
        });
        let metrics = RestMetricsClient::new(client);
        let raw = metrics
            .raw_metric("qps", "default", "app=web", "")
            .await
            .expect("raw");
        assert_eq!(raw["web-1"].value, 20_000);
        assert_eq!(raw["web-1"].window, DEFAULT_METRIC_WINDOW);
        let object = CrossVersionObjectReference {
            api_version: Some("apps/v1".into()),
            kind: "Deployment".into(),
            name: "web".into(),
        };
        let value = metrics
            .object_metric("qps", "default", &object, "")
            .await
            .expect("object");
        assert_eq!(value, 20_000);
        let external = metrics
            .external_metric("queue", "default", "q in (a,b)")
            .await
            .expect("external");
        assert_eq!(external, [3000, 500]);
        let lines: Vec<String> = calls.without_events().iter().map(Call::line).collect();
        assert_eq!(
            lines,
            [
                "GET /apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/qps?labelSelector=app%3Dweb",
                "GET /apis/custom.metrics.k8s.io/v1beta2/namespaces/default/deployments.apps/web/qps",
                "GET /apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue?labelSelector=q%20in%20%28a%2Cb%29",
            ]
        );
    }
}
