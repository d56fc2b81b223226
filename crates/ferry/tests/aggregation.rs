//! Black-box test of API aggregation: a real `ferry server`, the real kubectl, and a tiny
//! HTTPS "extension API server" started by the test on 127.0.0.1, reached through a
//! selectorless Service and a hand-made EndpointSlice. It trusts only client certificates of
//! ferry's front-proxy CA (read from the `extension-apiserver-authentication` ConfigMap, as
//! metrics-server does) and echoes the `X-Remote-*` headers it got into the objects it serves.

mod common;

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
