//! Black-box test of API aggregation: a real `ferry server`, the real kubectl, and a tiny
//! HTTPS "extension API server" started by the test on 127.0.0.1, reached through a
//! selectorless Service and a hand-made EndpointSlice. It trusts only client certificates of
//! ferry's front-proxy CA (read from the `extension-apiserver-authentication` ConfigMap, as
//! metrics-server does) and echoes the `X-Remote-*` headers it got into the objects it serves.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
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
    port: u16,
    ca_bundle: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ExtensionServer {
    /// Serves with a certificate for `wardle.default.svc`, requiring a client certificate
    /// issued by `client_ca_pem`.
    fn start(client_ca_pem: &str) -> ExtensionServer {
        let key = rcgen::KeyPair::generate().expect("key");
        let params =
            rcgen::CertificateParams::new(vec!["wardle.default.svc".to_string()]).expect("params");
        let cert = params.self_signed(&key).expect("certificate");
        let ca_bundle = base64::engine::general_purpose::STANDARD.encode(cert.pem());
        let mut roots = rustls::RootCertStore::empty();
        for block in client_ca_pem.split_inclusive("-----END CERTIFICATE-----\n") {
            let der = pem_body(block);
            if !der.is_empty() {
                roots.add(der.into()).expect("front-proxy CA");
            }
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .expect("client verifier");
        let config = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .expect("tls config");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            stream.set_nonblocking(false).expect("blocking");
                            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                            let connection =
                                rustls::ServerConnection::new(config.clone()).expect("tls");
                            let mut tls = rustls::StreamOwned::new(connection, stream);
                            let _ = answer(&mut tls, &seen);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        };
        ExtensionServer {
            port,
            ca_bundle,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops answering: the port is closed.
    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen").clone()
    }
}

impl Drop for ExtensionServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The DER of one PEM certificate block.
fn pem_body(block: &str) -> Vec<u8> {
    let body: String = block
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.trim().is_empty())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap_or_default()
}

fn flunder(name: &str, seen: &Seen) -> Value {
    json!({"apiVersion": GROUP_VERSION, "kind": "Flunder",
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": "2025-01-01T00:00:00Z",
                     "resourceVersion": "1", "uid": "f1"},
        "spec": {"remoteUser": seen.user, "remoteGroups": seen.groups}})
}

/// Reads one request (the TLS handshake has verified the client's certificate) and answers it.
fn answer(
    stream: &mut rustls::StreamOwned<rustls::ServerConnection, std::net::TcpStream>,
    seen: &Mutex<Vec<Seen>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(&mut *stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let path = path.split('?').next().unwrap_or_default().to_string();
    let (mut user, mut groups) = (String::new(), Vec::new());
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("x-remote-user") {
                user = value.trim().to_string();
            } else if name.eq_ignore_ascii_case("x-remote-group") {
                groups.push(value.trim().to_string());
            }
        }
    }
    let who = Seen {
        path: path.clone(),
        user,
        groups,
    };
    seen.lock().expect("seen").push(who.clone());
    let base = format!("/apis/{GROUP_VERSION}");
    let body = if path == base {
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
    let (status, body) = match body {
        Some(body) => ("200 OK", body.to_string()),
        None => (
            "404 Not Found",
            json!({"kind": "Status", "apiVersion": "v1",
            "status": "Failure", "reason": "NotFound", "code": 404})
            .to_string(),
        ),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
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
    let port = remote.port;
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
            remote.ca_bundle
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
