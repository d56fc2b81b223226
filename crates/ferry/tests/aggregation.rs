//! Black-box test of API aggregation: a real `ferry server`, the real kubectl, and a tiny
//! HTTPS "extension API server" started by the test on 127.0.0.1, reached through a
//! selectorless Service and a hand-made EndpointSlice. It trusts only client certificates of
//! ferry's front-proxy CA (read from the `extension-apiserver-authentication` ConfigMap, as
//! metrics-server does) and echoes the `X-Remote-*` headers it got into the objects it serves.

mod common;

use std::collections::BTreeMap;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::https::{HttpsServer, Request};
use common::{eventually, Ferry};
use serde_json::{json, Value};

const GROUP_VERSION: &str = "wardle.example.com/v1alpha1";

/// Who a request came from, as the front-proxy headers said.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    user: String,
    groups: Vec<String>,
}

/// The extension API server: serves `flunders` of `wardle.example.com/v1alpha1`.
struct ExtensionServer {
    https: HttpsServer,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl ExtensionServer {
    /// Serves with a certificate for `wardle.default.svc`, requiring a client certificate
    /// issued by `client_ca_pem`.
    fn start(client_ca_pem: &str) -> ExtensionServer {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let https = {
            let seen = seen.clone();
            HttpsServer::start("wardle.default.svc", Some(client_ca_pem), move |request| {
                answer(request, &seen)
            })
        };
        ExtensionServer { https, seen }
    }

    fn port(&self) -> u16 {
        self.https.port
    }

    fn ca_bundle(&self) -> &str {
        &self.https.ca_bundle
    }

    /// Stops answering: the port is closed.
    fn stop(&mut self) {
        self.https.stop();
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen").clone()
    }
}

fn flunder(name: &str, seen: &Seen) -> Value {
    json!({"apiVersion": GROUP_VERSION, "kind": "Flunder",
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": "2025-01-01T00:00:00Z",
                     "resourceVersion": "1", "uid": "f1"},
        "spec": {"remoteUser": seen.user, "remoteGroups": seen.groups}})
}

/// The extension server's OpenAPI v3 document of its group-version: the Flunder kind.
fn openapi_document() -> Value {
    let gvk = json!({"group": "wardle.example.com", "kind": "Flunder", "version": "v1alpha1"});
    let get = json!({"get": {"x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk,
        "responses": {"200": {"description": "OK", "content": {"application/json":
            {"schema": {"$ref": "#/components/schemas/io.k8s.wardle.v1alpha1.Flunder"}}}}}}});
    json!({"openapi": "3.0.0", "info": {"title": "wardle", "version": "v1alpha1"},
        "paths": {"/apis/wardle.example.com/v1alpha1/namespaces/{namespace}/flunders/{name}": get},
        "components": {"schemas": {"io.k8s.wardle.v1alpha1.Flunder": {
            "description": "A Flunder is a test object of the wardle extension server.",
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                "spec": {"type": "object", "description": "What the flunder was asked for.",
                    "properties": {"remoteUser": {"type": "string",
                        "description": "The user the request came from."}}}},
            "x-kubernetes-group-version-kind": [gvk]}}}})
}

/// Answers one request (the TLS handshake has verified the client's certificate).
fn answer(request: &Request, seen: &Mutex<Vec<Seen>>) -> (&'static str, String) {
    let path = request.path.clone();
    let who = Seen {
        path: path.clone(),
        user: request
            .header_values("x-remote-user")
            .next()
            .unwrap_or_default()
            .to_string(),
        groups: request
            .header_values("x-remote-group")
            .map(str::to_string)
            .collect(),
    };
    seen.lock().expect("seen").push(who.clone());
    let base = format!("/apis/{GROUP_VERSION}");
    let document_path = format!("/openapi/v3/apis/{GROUP_VERSION}");
    let body = if path == "/openapi/v3" {
        Some(json!({"paths": {format!("apis/{GROUP_VERSION}"):
            {"serverRelativeURL": format!("{document_path}?hash=0A1B")}}}))
    } else if path == document_path {
        Some(openapi_document())
    } else if path == base {
        Some(
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": GROUP_VERSION,
            "resources": [{"name": "flunders", "singularName": "flunder", "namespaced": true,
                           "kind": "Flunder", "verbs": ["get", "list"], "shortNames": ["fl"]}]}),
        )
    } else if path == format!("{base}/namespaces/default/flunders")
        || path == format!("{base}/flunders")
    {
        Some(json!({"apiVersion": GROUP_VERSION, "kind": "FlunderList",
            "metadata": {"resourceVersion": "1"}, "items": [flunder("alpha", &who)]}))
    } else {
        path.strip_prefix(&format!("{base}/namespaces/default/flunders/"))
            .map(|name| flunder(name, &who))
    };
    match body {
        Some(body) => ("200 OK", body.to_string()),
        None => (
            "404 Not Found",
            json!({"kind": "Status", "apiVersion": "v1",
            "status": "Failure", "reason": "NotFound", "code": 404})
            .to_string(),
        ),
    }
}

/// kubectl with a discovery cache of its own, so what it lists is what the server lists now.
fn fresh(ferry: &Ferry, args: &[&str]) -> Output {
    let cache = tempfile::tempdir().expect("cache dir");
    let mut all = vec![format!("--cache-dir={}", cache.path().display())];
    all.extend(args.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    ferry.kubectl(&all)
}

fn fresh_ok(ferry: &Ferry, args: &[&str]) -> String {
    let out = fresh(ferry, args);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// curl as the admin, with ferry's CA: (HTTP code, body).
fn curl(ferry: &Ferry, path: &str, accept: &str) -> (String, String) {
    let tls = ferry.kubeconfig.parent().expect("data dir").join("tls");
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}", "-H"])
        .arg(format!("Accept: {accept}"))
        .arg("--cacert")
        .arg(tls.join("ca.crt"))
        .arg("--cert")
        .arg(tls.join("admin.crt"))
        .arg("--key")
        .arg(tls.join("admin.key"))
        .arg(format!("{}{path}", ferry.url))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or((&text, ""));
    let body = if body.is_empty() {
        String::from_utf8_lossy(&out.stderr).into_owned()
    } else {
        body.to_string()
    };
    (code.to_string(), body)
}

#[test]
fn an_aggregated_api_is_proxied_discovered_and_marked_unavailable() {
    let ferry = Ferry::start();

    // What extension servers read to trust ferry's front proxy.
    let authentication: Value = serde_json::from_str(&ferry.ok(&[
        "get",
        "configmap",
        "-n",
        "kube-system",
        "extension-apiserver-authentication",
        "-o",
        "json",
    ]))
    .expect("json");
    let data = &authentication["data"];
    assert_eq!(
        data["requestheader-allowed-names"],
        r#"["front-proxy-client"]"#
    );
    assert_eq!(
        data["requestheader-username-headers"],
        r#"["X-Remote-User"]"#
    );
    assert_eq!(data["requestheader-group-headers"], r#"["X-Remote-Group"]"#);
    assert_eq!(
        data["requestheader-extra-headers-prefix"],
        r#"["X-Remote-Extra-"]"#
    );
    let cluster_ca =
        std::fs::read_to_string(ferry.kubeconfig.parent().expect("dir").join("tls/ca.crt"))
            .expect("ca");
    assert_eq!(data["client-ca-file"].as_str(), Some(cluster_ca.as_str()));
    let front_proxy_ca = data["requestheader-client-ca-file"]
        .as_str()
        .expect("front-proxy CA")
        .to_string();
    assert_ne!(front_proxy_ca, cluster_ca);

    // The server's own group-versions are local APIServices.
    let local_apps = |listed: &str| {
        listed.lines().any(|l| {
            l.split_whitespace()
                .take(3)
                .eq(["v1.apps", "Local", "True"])
        })
    };
    assert!(
        eventually(Duration::from_secs(10), || local_apps(&fresh_ok(
            &ferry,
            &["get", "apiservices"]
        ))),
        "{}",
        fresh_ok(&ferry, &["get", "apiservices"])
    );
    let listed = fresh_ok(&ferry, &["get", "apiservices"]);
    assert!(listed.starts_with("NAME"), "{listed}");
    assert!(listed.contains("v1beta1.metrics.k8s.io"), "{listed}");

    let mut remote = ExtensionServer::start(&front_proxy_ca);
    let port = remote.port();
    ferry.apply_yaml(
        "apply",
        &format!(
            r#"apiVersion: v1
kind: Service
metadata: {{name: wardle, namespace: default}}
spec:
  ports: [{{name: https, port: 443, targetPort: {port}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: wardle-1
  namespace: default
  labels: {{kubernetes.io/service-name: wardle}}
addressType: IPv4
endpoints: [{{addresses: ["127.0.0.1"], conditions: {{ready: true}}}}]
ports: [{{name: https, port: {port}, protocol: TCP}}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {{name: v1alpha1.wardle.example.com}}
spec:
  group: wardle.example.com
  version: v1alpha1
  groupPriorityMinimum: 1000
  versionPriority: 15
  caBundle: {}
  service: {{namespace: default, name: wardle}}
"#,
            remote.ca_bundle()
        ),
    );
    // NAME SERVICE AVAILABLE, without AGE.
    let row = || {
        let listed = fresh_ok(
            &ferry,
            &["get", "apiservices", "v1alpha1.wardle.example.com"],
        );
        let mut cells: Vec<&str> = listed
            .lines()
            .nth(1)
            .unwrap_or("")
            .split_whitespace()
            .collect();
        cells.pop();
        cells.join(" ")
    };
    assert!(
        eventually(Duration::from_secs(20), || row()
            == "v1alpha1.wardle.example.com default/wardle True"),
        "never available: {}",
        fresh_ok(
            &ferry,
            &[
                "get",
                "apiservice",
                "v1alpha1.wardle.example.com",
                "-o",
                "yaml"
            ]
        )
    );

    // Discovery lists its resources, so kubectl finds them by name and short name.
    let resources = fresh_ok(&ferry, &["api-resources", "--api-group=wardle.example.com"]);
    assert!(
        resources.contains("flunders")
            && resources.contains(" fl ")
            && resources.contains("Flunder"),
        "{resources}"
    );
    let (code, aggregated) = curl(
        &ferry,
        "/apis",
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
    );
    assert_eq!(code, "200", "{aggregated}");
    assert!(
        aggregated.contains(r#""resource":"flunders""#),
        "{aggregated}"
    );

    // Its OpenAPI v3 document is fetched from it, so `kubectl explain` knows its kinds.
    let index = ferry.ok(&["get", "--raw", "/openapi/v3"]);
    assert!(
        index.contains(r#""apis/wardle.example.com/v1alpha1":{"serverRelativeURL":"/openapi/v3/apis/wardle.example.com/v1alpha1"}"#),
        "{index}"
    );
    let explained = fresh_ok(&ferry, &["explain", "flunders.spec"]);
    assert!(
        explained.contains("KIND:       Flunder")
            && explained.contains("remoteUser\t<string>")
            && explained.contains("The user the request came from."),
        "{explained}"
    );

    // Requests are proxied as the authenticated user.
    let listed = fresh_ok(&ferry, &["get", "flunders"]);
    assert!(listed.contains("alpha"), "{listed}");
    let user = fresh_ok(
        &ferry,
        &["get", "fl", "alpha", "-o", "jsonpath={.spec.remoteUser}"],
    );
    assert_eq!(user, "ferry-admin");
    let groups = fresh_ok(
        &ferry,
        &[
            "get",
            "flunder",
            "alpha",
            "-o",
            "jsonpath={.spec.remoteGroups}",
        ],
    );
    assert_eq!(groups, r#"["system:masters","system:authenticated"]"#);

    // Ferry authorizes before proxying: jane may not, until RBAC says she may.
    let before = remote.seen().len();
    let denied = fresh(&ferry, &["get", "flunders", "--as=jane", "--as-group=devs"]);
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        !denied.status.success()
            && stderr.contains(
                r#"User "jane" cannot list resource "flunders" in API group "wardle.example.com""#
            ),
        "{stderr}"
    );
    assert!(
        remote.seen()[before..].iter().all(|s| s.user != "jane"),
        "the remote saw a refused request"
    );
    ferry.ok(&[
        "create",
        "clusterrole",
        "flunder-reader",
        "--verb=get,list",
        "--resource=flunders.wardle.example.com",
    ]);
    ferry.ok(&[
        "create",
        "clusterrolebinding",
        "devs-read-flunders",
        "--clusterrole=flunder-reader",
        "--group=devs",
    ]);
    let as_jane = || fresh(&ferry, &["get", "flunders", "--as=jane", "--as-group=devs"]);
    assert!(
        eventually(Duration::from_secs(10), || as_jane().status.success()),
        "{}",
        String::from_utf8_lossy(&as_jane().stderr)
    );
    let jane = remote
        .seen()
        .into_iter()
        .rev()
        .find(|s| s.user == "jane")
        .expect("the remote saw jane");
    assert!(
        jane.path.ends_with("/namespaces/default/flunders"),
        "{jane:?}"
    );
    assert_eq!(jane.groups, ["devs", "system:authenticated"]);
    // The availability checks come as the aggregator, a master.
    assert!(remote
        .seen()
        .iter()
        .any(|s| s.user == "system:kube-aggregator" && s.groups == ["system:masters"]));

    // The extension server goes away: the APIService becomes unavailable, requests get 503.
    remote.stop();
    let failed = fresh(&ferry, &["get", "flunders"]);
    assert!(!failed.status.success());
    assert!(
        eventually(Duration::from_secs(20), || {
            row() == "v1alpha1.wardle.example.com default/wardle False (FailedDiscoveryCheck)"
        }),
        "still available: {}",
        row()
    );
    let message = fresh_ok(
        &ferry,
        &[
            "get",
            "apiservice",
            "v1alpha1.wardle.example.com",
            "-o",
            "jsonpath={.status.conditions[0].message}",
        ],
    );
    assert!(
        message.starts_with(&format!(
            "failing or missing response from https://127.0.0.1:{port}/apis/wardle.example.com/v1alpha1: "
        )),
        "{message}"
    );
    let refused = fresh(
        &ferry,
        &[
            "get",
            "--raw",
            "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders",
        ],
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("ServiceUnavailable")
            || stderr.contains("the server is currently unable to handle the request"),
        "{stderr}"
    );
    let (code, body) = curl(
        &ferry,
        "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders",
        "application/json",
    );
    assert_eq!(
        (code.as_str(), body.trim_end()),
        ("503", "service unavailable")
    );
    // Still discovered, as stale.
    let (_, aggregated) = curl(
        &ferry,
        "/apis",
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
    );
    let aggregated: Value = serde_json::from_str(&aggregated).expect("json");
    let wardle = aggregated["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|g| g["metadata"]["name"] == "wardle.example.com")
        .cloned()
        .expect("wardle listed");
    assert_eq!(wardle["versions"][0]["freshness"], "Stale");
}

// The HorizontalPodAutoscaler against a metrics adapter: `custom.metrics.k8s.io/v1beta2` and
// `external.metrics.k8s.io/v1beta1` served as upstream's custom-metrics-apiserver library serves
// them (prometheus-adapter and KEDA are built on it), read by ferry's HPA controller through the
// aggregator.

const CUSTOM_METRICS: &str = "custom.metrics.k8s.io/v1beta2";
const EXTERNAL_METRICS: &str = "external.metrics.k8s.io/v1beta1";
/// When the adapter says its values were produced.
const MEASURED: &str = "2025-01-01T00:00:00Z";

/// One series of an external metric: its labels and value.
type Series = (BTreeMap<String, String>, String);

/// What the adapter serves, changed by the test as it goes.
#[derive(Default)]
struct MetricValues {
    /// Custom metrics of objects in `default`: (resource, name, metric) → quantity.
    objects: BTreeMap<(String, String, String), String>,
    /// Custom metrics every pod of `default` has the same value of: metric → quantity.
    pods: BTreeMap<String, String>,
    /// External metrics of `default` by name.
    external: BTreeMap<String, Vec<Series>>,
    /// Where the adapter lists pods, as adapters do to answer for the pods a selector picks.
    kubeconfig: std::path::PathBuf,
    /// The paths (with their queries) asked for.
    asked: Vec<String>,
}

/// A metrics adapter: one HTTPS server for both metrics APIs, trusting ferry's front proxy.
struct MetricsAdapter {
    https: HttpsServer,
    values: Arc<Mutex<MetricValues>>,
}

impl MetricsAdapter {
    fn start(client_ca_pem: &str, kubeconfig: &std::path::Path) -> MetricsAdapter {
        let values = Arc::new(Mutex::new(MetricValues {
            kubeconfig: kubeconfig.to_path_buf(),
            ..MetricValues::default()
        }));
        let https = {
            let values = values.clone();
            HttpsServer::start(
                "custom-metrics.default.svc",
                Some(client_ca_pem),
                move |request| answer_metrics(request, &values),
            )
        };
        MetricsAdapter { https, values }
    }

    /// Serves `value` as `metric` of the object `resource`/`name`.
    fn set_object(&self, resource: &str, name: &str, metric: &str, value: &str) {
        let key = (resource.to_string(), name.to_string(), metric.to_string());
        self.values
            .lock()
            .expect("values")
            .objects
            .insert(key, value.to_string());
    }

    /// Serves `value` as `metric` of every pod.
    fn set_pods(&self, metric: &str, value: &str) {
        self.values
            .lock()
            .expect("values")
            .pods
            .insert(metric.to_string(), value.to_string());
    }

    /// Serves `series` (labels, value) as the external metric `metric`.
    fn set_external(&self, metric: &str, series: &[(&[(&str, &str)], &str)]) {
        let series = series
            .iter()
            .map(|(labels, value)| {
                let labels = labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                (labels, value.to_string())
            })
            .collect();
        self.values
            .lock()
            .expect("values")
            .external
            .insert(metric.to_string(), series);
    }

    fn asked(&self) -> Vec<String> {
        self.values.lock().expect("values").asked.clone()
    }
}

/// `%XX` escapes decoded (the query of a request).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query parameter `name`, decoded (empty when absent).
fn query_param(query: &str, name: &str) -> String {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| percent_decode(v))
        .unwrap_or_default()
}

/// Whether `labels` match an equality selector (`a=b,c=d`; empty matches all), which is all
/// this adapter understands.
fn selector_matches(selector: &str, labels: &BTreeMap<String, String>) -> bool {
    selector
        .split(',')
        .filter(|term| !term.is_empty())
        .all(|term| match term.split_once('=') {
            Some((key, value)) => labels.get(key.trim()).map(String::as_str) == Some(value.trim()),
            None => false,
        })
}

/// custom-metrics-apiserver's discovery of a group-version: one resource per metric, named
/// `<resource>/<metric>` for custom metrics, `<metric>` for external ones.
fn metric_resources(group_version: &str, names: Vec<String>, kind: &str) -> Value {
    let resources: Vec<Value> = names
        .into_iter()
        .map(|name| json!({"name": name, "singularName": "", "namespaced": true, "kind": kind, "verbs": ["get"]}))
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
        "resources": resources})
}

/// A 404 as custom-metrics-apiserver words it.
fn metric_not_found(message: &str) -> (&'static str, String) {
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": "NotFound", "code": 404});
    ("404 Not Found", status.to_string())
}

/// The `MetricValueList` of one object's metric (custom-metrics-apiserver's answer to
/// `GET …/namespaces/{ns}/{resource}/{name}/{metric}`: a list of exactly one value).
fn object_metric(
    values: &MetricValues,
    resource: &str,
    name: &str,
    metric: &str,
) -> (&'static str, String) {
    let key = (resource.to_string(), name.to_string(), metric.to_string());
    let Some(value) = values.objects.get(&key) else {
        return metric_not_found(&format!(
            "the server could not find the metric {metric} for {resource} {name}"
        ));
    };
    // What kind of object each resource this test uses is (the adapter's REST mapping); the
    // API version is `<group>/<version>`, so `/v1` for the core group.
    let kind = match resource {
        "services" => "Service",
        "pods" => "Pod",
        other => other,
    };
    let item = json!({
        "describedObject": {"kind": kind, "namespace": "default", "name": name, "apiVersion": "/v1"},
        "metric": {"name": metric, "selector": null},
        "timestamp": MEASURED,
        "value": value,
    });
    let list = json!({"kind": "MetricValueList", "apiVersion": CUSTOM_METRICS, "metadata": {},
        "items": [item]});
    ("200 OK", list.to_string())
}

/// The `MetricValueList` of `metric` of the pods `selector` picks (`GET …/pods/*/{metric}`), one
/// value per pod.
fn pods_metric(values: &MetricValues, metric: &str, selector: &str) -> (&'static str, String) {
    let Some(value) = values.pods.get(metric) else {
        return metric_not_found(&format!(
            "the server could not find the metric {metric} for pods"
        ));
    };
    let listed = std::process::Command::new("kubectl")
        .env("KUBECONFIG", &values.kubeconfig)
        .args(["get", "pods", "-n", "default", "-l", selector])
        .arg("-o=jsonpath={.items[*].metadata.name}")
        .output()
        .expect("kubectl");
    let names = String::from_utf8_lossy(&listed.stdout).into_owned();
    let items: Vec<Value> = names
        .split_whitespace()
        .map(|name| {
            json!({
                "describedObject": {"kind": "Pod", "namespace": "default", "name": name, "apiVersion": "/v1"},
                "metric": {"name": metric, "selector": null},
                "timestamp": MEASURED,
                "windowSeconds": 60,
                "value": value,
            })
        })
        .collect();
    let list = json!({"kind": "MetricValueList", "apiVersion": CUSTOM_METRICS, "metadata": {},
        "items": items});
    ("200 OK", list.to_string())
}

/// The `ExternalMetricValueList` of the series of `metric` that `selector` matches (none is an
/// empty list, as custom-metrics-apiserver's test adapter answers).
fn external_metric(values: &MetricValues, metric: &str, selector: &str) -> (&'static str, String) {
    let items: Vec<Value> = values
        .external
        .get(metric)
        .into_iter()
        .flatten()
        .filter(|(labels, _)| selector_matches(selector, labels))
        .map(|(labels, value)| {
            json!({"metricName": metric, "metricLabels": labels, "timestamp": MEASURED,
                "value": value})
        })
        .collect();
    let list = json!({"kind": "ExternalMetricValueList", "apiVersion": EXTERNAL_METRICS,
        "metadata": {}, "items": items});
    ("200 OK", list.to_string())
}

/// Answers one request of the aggregator (discovery) or of the HPA controller (values).
fn answer_metrics(request: &Request, values: &Mutex<MetricValues>) -> (&'static str, String) {
    let mut values = values.lock().expect("values");
    let asked = match request.query.as_str() {
        "" => request.path.clone(),
        query => format!("{}?{query}", request.path),
    };
    values.asked.push(asked);
    let custom = format!("/apis/{CUSTOM_METRICS}");
    let external = format!("/apis/{EXTERNAL_METRICS}");
    let path = request.path.as_str();
    if path == custom {
        let names = values
            .objects
            .keys()
            .map(|(resource, _, metric)| format!("{resource}/{metric}"))
            .chain(values.pods.keys().map(|metric| format!("pods/{metric}")))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let list = metric_resources(CUSTOM_METRICS, names, "MetricValueList");
        return ("200 OK", list.to_string());
    }
    if path == external {
        let names = values.external.keys().cloned().collect();
        let list = metric_resources(EXTERNAL_METRICS, names, "ExternalMetricValueList");
        return ("200 OK", list.to_string());
    }
    if let Some(rest) = path.strip_prefix(&format!("{custom}/namespaces/default/")) {
        match rest.split('/').collect::<Vec<_>>()[..] {
            ["pods", "*", metric] => {
                let selector = query_param(&request.query, "labelSelector");
                return pods_metric(&values, metric, &selector);
            }
            [resource, name, metric] => return object_metric(&values, resource, name, metric),
            _ => {}
        }
    }
    if let Some(metric) = path.strip_prefix(&format!("{external}/namespaces/default/")) {
        let selector = query_param(&request.query, "labelSelector");
        return external_metric(&values, metric, &selector);
    }
    metric_not_found("the server could not find the requested resource")
}

/// The front-proxy CA extension API servers trust, from `extension-apiserver-authentication`.
fn front_proxy_ca(ferry: &Ferry) -> String {
    ferry.ok(&[
        "get",
        "configmap",
        "-n",
        "kube-system",
        "extension-apiserver-authentication",
        "-o",
        "jsonpath={.data.requestheader-client-ca-file}",
    ])
}

/// `kubectl get hpa NAME` without its AGE: NAME REFERENCE TARGETS MINPODS MAXPODS REPLICAS.
fn hpa_row(ferry: &Ferry, name: &str) -> String {
    let listed = ferry.ok(&["get", "hpa", name, "--no-headers"]);
    let mut cells: Vec<&str> = listed.split_whitespace().collect();
    cells.pop();
    cells.join(" ")
}

/// The `Type Status Reason` of `kind`'s line in `kubectl describe hpa`'s Conditions, and the
/// rest of the line (the message).
fn described_condition(described: &str, kind: &str) -> Option<(String, String)> {
    let conditions = described.split_once("Conditions:")?.1;
    conditions.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if words.next() != Some(kind) {
            return None;
        }
        let status = words.next()?;
        let reason = words.next()?;
        let message: Vec<&str> = words.collect();
        Some((format!("{kind} {status} {reason}"), message.join(" ")))
    })
}

fn deployment_replicas(ferry: &Ferry, name: &str) -> String {
    ferry.ok(&["get", "deployment", name, "-o", "jsonpath={.spec.replicas}"])
}

#[test]
fn the_hpa_scales_on_pods_object_and_external_metrics_of_an_aggregated_metrics_api() {
    // Short syncs, and scale-downs as soon as the metrics ask for them.
    let (ferry, _sim, _dir) = common::with_sim_nodes(
        1,
        &[
            "--horizontal-pod-autoscaler-sync-period=1s",
            "--horizontal-pod-autoscaler-downscale-stabilization=0s",
        ],
    );
    let adapter = MetricsAdapter::start(&front_proxy_ca(&ferry), &ferry.kubeconfig);
    adapter.set_pods("packets_per_second", "20");
    adapter.set_object("services", "web", "requests_per_second", "250");
    adapter.set_external(
        "queue_depth",
        &[
            (&[("queue", "jobs"), ("shard", "a")], "20"),
            (&[("queue", "jobs"), ("shard", "b")], "10"),
            (&[("queue", "mail")], "500"),
        ],
    );
    let port = adapter.https.port;
    let api_service = |group: &str, version: &str| {
        format!(
            r#"apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {{name: {version}.{group}}}
spec:
  group: {group}
  version: {version}
  groupPriorityMinimum: 100
  versionPriority: 100
  caBundle: {}
  service: {{namespace: default, name: custom-metrics}}
"#,
            adapter.https.ca_bundle
        )
    };
    ferry.apply_yaml(
        "apply",
        &format!(
            r#"apiVersion: v1
kind: Service
metadata: {{name: custom-metrics, namespace: default}}
spec:
  ports: [{{name: https, port: 443, targetPort: {port}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: custom-metrics-1
  namespace: default
  labels: {{kubernetes.io/service-name: custom-metrics}}
addressType: IPv4
endpoints: [{{addresses: ["127.0.0.1"], conditions: {{ready: true}}}}]
ports: [{{name: https, port: {port}, protocol: TCP}}]
---
{}---
{}"#,
            api_service("custom.metrics.k8s.io", "v1beta2"),
            api_service("external.metrics.k8s.io", "v1beta1"),
        ),
    );
    for name in [
        "v1beta2.custom.metrics.k8s.io",
        "v1beta1.external.metrics.k8s.io",
    ] {
        let available = || {
            ferry.ok(&[
                "get",
                "apiservice",
                name,
                "-o",
                r#"jsonpath={.status.conditions[?(@.type=="Available")].status}"#,
            ]) == "True"
        };
        assert!(
            eventually(Duration::from_secs(20), available),
            "{name} never available: {}",
            ferry.ok(&["get", "apiservice", name, "-o", "yaml"])
        );
    }
    // The adapter's discovery and values, proxied.
    let discovered = ferry.ok(&["get", "--raw", "/apis/custom.metrics.k8s.io/v1beta2"]);
    assert!(
        discovered.contains(r#""name":"services/requests_per_second""#),
        "{discovered}"
    );
    let jobs = ferry.ok(&[
        "get",
        "--raw",
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue_depth?labelSelector=queue%3Djobs",
    ]);
    let jobs: Value = serde_json::from_str(&jobs).expect("json");
    assert_eq!(jobs["items"].as_array().map(Vec::len), Some(2), "{jobs}");

    // Targets, each with a pod that runs on the simulated node.
    for name in ["web", "worker", "api", "lonely-object", "lonely-external"] {
        ferry.ok(&[
            "create",
            "deployment",
            name,
            "--image=registry.k8s.io/pause:3.10",
            "--replicas=1",
        ]);
    }
    ferry.ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    let ready = |name: &str| {
        ferry.ok(&[
            "get",
            "deployment",
            name,
            "-o",
            "jsonpath={.status.readyReplicas}",
        ]) == "1"
    };
    assert!(
        eventually(Duration::from_secs(30), || ready("web")),
        "web's pod never ready: {}",
        ferry.ok(&["get", "pods", "-o", "wide"])
    );

    let hpa = |name: &str, target: &str, max: u32, metric: &str| {
        format!(
            r#"apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: {name}, namespace: default}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: {target}}}
  minReplicas: 1
  maxReplicas: {max}
  metrics:
  - {metric}
---
"#
        )
    };
    ferry.apply_yaml(
        "apply",
        &[
            // 250 for a target value of 100 with one ready pod: 3 pods, then (as the value
            // stays) on to the maximum.
            hpa(
                "web",
                "web",
                4,
                "{type: Object, object: {describedObject: {apiVersion: v1, kind: Service, name: web}, \
                 metric: {name: requests_per_second}, target: {type: Value, value: '100'}}}",
            ),
            // 20 + 10 of queue=jobs for 10 a pod: 3 pods.
            hpa(
                "worker",
                "worker",
                10,
                "{type: External, external: {metric: {name: queue_depth, selector: {matchLabels: {queue: jobs}}}, \
                 target: {type: AverageValue, averageValue: '10'}}}",
            ),
            // 20 a pod for 10 a pod: twice the pods, up to the maximum.
            hpa(
                "api",
                "api",
                4,
                "{type: Pods, pods: {metric: {name: packets_per_second}, \
                 target: {type: AverageValue, averageValue: '10'}}}",
            ),
            hpa(
                "lonely-object",
                "lonely-object",
                10,
                "{type: Object, object: {describedObject: {apiVersion: v1, kind: Service, name: web}, \
                 metric: {name: no_such_metric}, target: {type: Value, value: '100'}}}",
            ),
            hpa(
                "lonely-external",
                "lonely-external",
                10,
                "{type: External, external: {metric: {name: no_such_queue}, \
                 target: {type: AverageValue, averageValue: '10'}}}",
            ),
        ]
        .concat(),
    );

    // The Object metric: up from one ready pod by the ratio, then held at the maximum.
    assert!(
        eventually(Duration::from_secs(30), || hpa_row(&ferry, "web")
            == "web Deployment/web 250/100 1 4 4"),
        "{}",
        ferry.ok(&["describe", "hpa", "web"])
    );
    assert_eq!(deployment_replicas(&ferry, "web"), "4");
    let events = ferry.ok(&[
        "get",
        "events",
        "--field-selector=involvedObject.kind=HorizontalPodAutoscaler,involvedObject.name=web,reason=SuccessfulRescale",
        "-o",
        "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
    ]);
    assert!(
        events.contains("New size: 3; reason: Service metric requests_per_second above target"),
        "{events}"
    );
    let described = ferry.ok(&["describe", "hpa", "web"]);
    assert!(
        described.contains(r#""requests_per_second" on Service/web (target value):"#)
            && described.contains("250 / 100"),
        "{described}"
    );
    assert_eq!(
        described_condition(&described, "ScalingActive"),
        Some((
            "ScalingActive True ValidMetricFound".into(),
            "the HPA was able to successfully calculate a replica count from Service metric requests_per_second".into()
        )),
        "{described}"
    );
    assert!(
        described_condition(&described, "AbleToScale")
            .is_some_and(|(c, _)| c.starts_with("AbleToScale True ")),
        "{described}"
    );
    assert_eq!(
        described_condition(&described, "ScalingLimited"),
        Some((
            "ScalingLimited True TooManyReplicas".into(),
            "the desired replica count is more than the maximum replica count".into()
        )),
        "{described}"
    );

    // The External metric: the sum of the series the selector picks, per pod.
    assert!(
        eventually(Duration::from_secs(30), || hpa_row(&ferry, "worker")
            == "worker Deployment/worker 10/10 (avg) 1 10 3"),
        "{}",
        ferry.ok(&["describe", "hpa", "worker"])
    );
    assert_eq!(deployment_replicas(&ferry, "worker"), "3");
    let described = ferry.ok(&["describe", "hpa", "worker"]);
    assert_eq!(
        described_condition(&described, "ScalingActive").map(|(c, _)| c),
        Some("ScalingActive True ValidMetricFound".into()),
        "{described}"
    );
    assert!(
        adapter.asked().iter().any(|a| a
            == "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue_depth?labelSelector=queue%3Djobs"),
        "{:?}",
        adapter.asked()
    );

    // The Pods metric: the average of the values of the target's pods.
    assert!(
        eventually(Duration::from_secs(30), || hpa_row(&ferry, "api")
            == "api Deployment/api 20/10 1 4 4"),
        "{}",
        ferry.ok(&["describe", "hpa", "api"])
    );
    assert!(
        adapter.asked().iter().any(|a| a
            == "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/packets_per_second?labelSelector=app%3Dapi"),
        "{:?}",
        adapter.asked()
    );

    // New values, new scales: down to the minimum, up to 5.
    adapter.set_pods("packets_per_second", "5");
    adapter.set_object("services", "web", "requests_per_second", "50");
    adapter.set_external(
        "queue_depth",
        &[
            (&[("queue", "jobs"), ("shard", "a")], "20"),
            (&[("queue", "jobs"), ("shard", "b")], "30"),
        ],
    );
    assert!(
        eventually(Duration::from_secs(30), || hpa_row(&ferry, "web")
            == "web Deployment/web 50/100 1 4 1"),
        "{}",
        ferry.ok(&["describe", "hpa", "web"])
    );
    assert_eq!(deployment_replicas(&ferry, "web"), "1");
    assert!(
        eventually(Duration::from_secs(30), || hpa_row(&ferry, "worker")
            == "worker Deployment/worker 10/10 (avg) 1 10 5"),
        "{}",
        ferry.ok(&["describe", "hpa", "worker"])
    );
    assert_eq!(deployment_replicas(&ferry, "worker"), "5");
    assert!(
        eventually(Duration::from_secs(30), || hpa_row(&ferry, "api")
            == "api Deployment/api 5/10 1 4 1"),
        "{}",
        ferry.ok(&["describe", "hpa", "api"])
    );

    // Metrics the adapter does not have: ScalingActive False, with upstream's messages.
    let failing = |name: &str, reason: &str, message: &str| {
        let condition =
            || described_condition(&ferry.ok(&["describe", "hpa", name]), "ScalingActive");
        let expected = Some((format!("ScalingActive False {reason}"), message.to_string()));
        assert!(
            eventually(Duration::from_secs(30), || condition() == expected),
            "{}",
            ferry.ok(&["describe", "hpa", name])
        );
    };
    failing(
        "lonely-object",
        "FailedGetObjectMetric",
        "the HPA was unable to compute the replica count: unable to get metric no_such_metric: \
         Service on default web/unable to fetch metrics from custom metrics API: the server could \
         not find the metric no_such_metric for services web",
    );
    failing(
        "lonely-external",
        "FailedGetExternalMetric",
        "the HPA was unable to compute the replica count: unable to get external metric \
         default/no_such_queue/nil: no metrics returned from external metrics API",
    );
    assert_eq!(
        hpa_row(&ferry, "lonely-object"),
        "lonely-object Deployment/lonely-object <unknown>/100 1 10 1"
    );
    assert_eq!(
        hpa_row(&ferry, "lonely-external"),
        "lonely-external Deployment/lonely-external <unknown>/10 (avg) 1 10 1"
    );
}
