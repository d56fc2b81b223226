//! The HTTPS server and the request pipeline, in upstream's order:
//! authentication → authorization → (per verb) mutating admission → defaulting and validation
//! → validating admission → store. Non-resource paths (`/version`, health, discovery,
//! `/metrics`) are answered here; resource requests are resolved in the [`Registry`] and go to
//! [`crate::rest`] and [`crate::watch`].

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ferry_api::registry::ResourceInfo;
use ferry_store::Store;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::admission::Chain;
use crate::auth::{forbidden_message, Auth, AuthenticatorChain, Authorizer, Credentials, Decision};
use crate::discovery;
use crate::registry::{Registry, Resource};
use crate::request::{self, RequestInfo};
use crate::rest::{self, Request, Rest};
use crate::status::ApiError;
use crate::storage::Storage;

/// Requests bodies larger than this get 413, as upstream's 3 MiB limit.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// The Kubernetes version ferry serves.
pub const KUBERNETES_VERSION: &str = "v1.33.0+ferry";

/// The namespaces that exist from the start.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Request counts and total seconds by (verb, resource, code), for /metrics.
type RequestCounts = BTreeMap<(String, String, u16), (u64, f64)>;

/// Request counters for `/metrics`.
#[derive(Default)]
struct Metrics {
    /// (verb, resource, code) → (count, total seconds).
    requests: parking_lot::Mutex<RequestCounts>,
    watches: AtomicI64,
}

/// Everything a request handler needs.
pub struct Server {
    /// The REST verbs' storage, admission and resources.
    pub rest: Arc<Rest>,
    auth: Auth,
    /// The address clients reach us at (for `/api`'s serverAddressByClientCIDRs).
    address: parking_lot::Mutex<String>,
    metrics: Metrics,
}

impl Server {
    /// A server over `store` with the given authentication and authorization.
    pub fn new(
        store: Arc<dyn Store>,
        authn: AuthenticatorChain,
        authz: Box<dyn Authorizer>,
    ) -> Arc<Server> {
        let rest = Rest {
            storage: Storage::new(store),
            admission: Chain::from_names(crate::admission::DEFAULT_PLUGINS).unwrap_or_default(),
            registry: Registry::builtin(),
        };
        Arc::new(Server {
            rest: Arc::new(rest),
            auth: Auth { authn, authz },
            address: parking_lot::Mutex::new(String::new()),
            metrics: Metrics::default(),
        })
    }

    /// Creates the system namespaces if missing.
    pub async fn bootstrap(self: &Arc<Self>) -> Result<(), ApiError> {
        for name in SYSTEM_NAMESPACES {
            let namespace =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            self.ensure("namespaces", "", name, namespace, false)
                .await?;
        }
        Ok(())
    }

    /// Creates a core/v1 object the server itself keeps; if it exists, leaves it (`replace`
    /// false) or replaces it.
    async fn ensure(
        &self,
        plural: &str,
        namespace: &str,
        name: &str,
        object: Value,
        replace: bool,
    ) -> Result<(), ApiError> {
        let resource = self
            .rest
            .registry
            .resolve("", "v1", plural)
            .ok_or_else(|| ApiError::internal("core resources not registered"))?;
        let query = HashMap::new();
        let warnings = parking_lot::Mutex::new(Vec::new());
        let req = Request {
            resource,
            namespace,
            name,
            subresource: "",
            query: &query,
            body: Bytes::from(object.to_string()),
            content_type: "application/json",
            warnings: &warnings,
            user: None,
        };
        match rest::create(&self.rest, &req).await {
            Ok(_) => Ok(()),
            Err(e) if e.code == 409 && replace => rest::update(&self.rest, &req).await.map(|_| ()),
            Err(e) if e.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The `kubernetes` service in `default` (10.43.0.1:443) and its Endpoints pointing at this
    /// API server, as upstream's bootstrap controller keeps them.
    pub async fn ensure_kubernetes_service(
        self: &Arc<Self>,
        address: SocketAddr,
    ) -> Result<(), ApiError> {
        let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": crate::registry::core::service::allocator::KUBERNETES_SERVICE_IP, "type": "ClusterIP", "sessionAffinity": "None",
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": address.port()}]}});
        let endpoints = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": address.ip().to_string()}], "ports": [{"name": "https", "port": address.port(), "protocol": "TCP"}]}]});
        self.ensure("services", "default", "kubernetes", service, true)
            .await?;
        self.ensure("endpoints", "default", "kubernetes", endpoints, true)
            .await
    }

    fn record(&self, verb: &str, resource: &str, code: u16, elapsed: Duration) {
        let mut requests = self.metrics.requests.lock();
        let entry = requests
            .entry((verb.to_string(), resource.to_string(), code))
            .or_default();
        entry.0 += 1;
        entry.1 += elapsed.as_secs_f64();
    }

    fn metrics_text(&self) -> String {
        let mut out = String::from("# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, resource and HTTP response code.\n# TYPE apiserver_request_total counter\n");
        let requests = self.metrics.requests.lock();
        for ((verb, resource, code), (count, _)) in requests.iter() {
            out.push_str(&format!("apiserver_request_total{{verb=\"{verb}\",resource=\"{resource}\",code=\"{code}\"}} {count}\n"));
        }
        out.push_str("# HELP apiserver_request_duration_seconds_sum Total response latency by verb and resource.\n# TYPE apiserver_request_duration_seconds_sum counter\n");
        for ((verb, resource, code), (_, seconds)) in requests.iter() {
            out.push_str(&format!("apiserver_request_duration_seconds_sum{{verb=\"{verb}\",resource=\"{resource}\",code=\"{code}\"}} {seconds:.6}\n"));
        }
        out.push_str(&format!(
            "# HELP apiserver_registered_watchers Number of currently open watches.\n# TYPE apiserver_registered_watchers gauge\napiserver_registered_watchers {}\n",
            self.metrics.watches.load(Ordering::Relaxed)
        ));
        self.rest.storage.render_metrics(&mut out);
        out
    }
}

/// The verified client certificate of a connection, if any.
#[derive(Clone, Default)]
pub struct Peer {
    /// DER of the leaf certificate.
    pub cert: Option<Arc<Vec<u8>>>,
}

/// Serves HTTPS on `listener` until `shutdown` resolves; then stops accepting, lets in-flight
/// requests finish (watches are cut after a grace period) and returns.
pub async fn serve(
    server: Arc<Server>,
    listener: TcpListener,
    tls: rustls::ServerConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    *server.address.lock() = address.to_string();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    // The OpenAPI documents are built from the types on first use; build them now, off the
    // request path, so kubectl's first validation does not wait.
    tokio::task::spawn_blocking(|| {
        ferry_api::openapi::v3_index();
        ferry_api::openapi::v2_protobuf();
    });
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let server = server.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%remote, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let peer = Peer {
                cert: tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| Arc::new(c.to_vec())),
            };
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let server = server.clone();
                    let peer = peer.clone();
                    async move {
                        Ok::<_, Infallible>(handle(server, peer, remote, req.map(Body::new)).await)
                    }
                });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            let _ = watcher.watch(connection.into_owned()).await;
        });
    }
    drop(listener);
    // In-flight requests finish; long watches are cut after a while.
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
    tracing::info!(%address, "API server stopped");
    Ok(())
}

fn parse_query(query: Option<&str>) -> HashMap<String, String> {
    query
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A JSON body ending with a newline, as upstream's Go encoder writes it.
fn json_response(code: u16, value: &Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    let mut body = value.to_string();
    body.push('\n');
    (status, [("content-type", "application/json")], body).into_response()
}

/// One request through the pipeline.
async fn handle(
    server: Arc<Server>,
    peer: Peer,
    remote: SocketAddr,
    req: axum::http::Request<Body>,
) -> Response {
    let started = Instant::now();
    let (mut parts, body) = req.into_parts();
    let query = parse_query(parts.uri.query());
    // The Python client sends `watch=True`.
    let watch = query.get("watch").is_some_and(|w| request::query_bool(w));
    let info = request::parse(parts.method.as_str(), parts.uri.path(), watch);
    // A watch may be served over WebSocket, as upstream does for clients that ask for it.
    let upgrade = parts
        .headers
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let websocket = if upgrade && info.verb == "watch" {
        use axum::extract::FromRequestParts as _;
        axum::extract::ws::WebSocketUpgrade::from_request_parts(&mut parts, &())
            .await
            .ok()
    } else {
        None
    };
    let result = pipeline(
        &server,
        &peer,
        &parts.headers,
        &info,
        &query,
        body,
        websocket,
    )
    .await;
    let response = result.unwrap_or_else(IntoResponse::into_response);
    let code = response.status().as_u16();
    let resource = if info.is_resource_request {
        info.resource.as_str()
    } else {
        ""
    };
    server.record(&info.verb, resource, code, started.elapsed());
    tracing::debug!(%remote, method = %parts.method, path = parts.uri.path(), code, "request");
    response
}

async fn pipeline(
    server: &Arc<Server>,
    peer: &Peer,
    headers: &HeaderMap,
    info: &RequestInfo,
    query: &HashMap<String, String>,
    body: Body,
    websocket: Option<axum::extract::ws::WebSocketUpgrade>,
) -> Result<Response, ApiError> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let bearer = header("authorization")
        .strip_prefix("Bearer ")
        .map(str::trim);
    let credentials = Credentials {
        client_cert: peer.cert.as_deref().map(Vec::as_slice),
        bearer_token: bearer,
    };
    let user = server
        .auth
        .authenticate(&credentials)
        .map_err(|_| ApiError::unauthorized())?;
    let user = impersonate(server, user, headers)?;
    if let Decision::Deny(reason) = server.auth.authorize(&user, info) {
        return Err(ApiError::forbidden(forbidden_message(&user, info, &reason)));
    }
    let body = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::too_large())?;
    let accept = header("accept");
    if !info.is_resource_request {
        return non_resource(server, info, accept);
    }
    let resource = server
        .rest
        .registry
        .resolve(&info.group, &info.version, &info.resource)
        .ok_or_else(ApiError::path_not_found)?;
    let resource_info = resource.info;
    if (resource_info.namespaced
        && info.namespace.is_empty()
        && !matches!(info.verb.as_str(), "list" | "watch"))
        || (!resource_info.namespaced && !info.namespace.is_empty())
    {
        return Err(ApiError::path_not_found());
    }
    let allowed = if info.subresource.is_empty() {
        resource_info.has_verb(&info.verb)
    } else {
        let sub = resource_info
            .subresource(&info.subresource)
            .ok_or_else(ApiError::path_not_found)?;
        sub.verbs.contains(&info.verb.as_str())
    };
    if !allowed {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource".to_string(),
        ));
    }
    let content_type = header("content-type");
    let warnings = parking_lot::Mutex::new(Vec::new());
    let req = Request {
        resource,
        namespace: &info.namespace,
        name: &info.name,
        subresource: &info.subresource,
        query,
        body,
        content_type,
        warnings: &warnings,
        user: Some(&user),
    };
    let output = Output::from_accept(accept)?;
    if info.verb == "create" && crate::review::is_review(resource_info) {
        let object = rest::parse_body(&req.body, req.content_type)?;
        let reviewed =
            crate::review::review(&server.auth, &user, resource_info, &info.namespace, object)?;
        return Ok(json_response(201, &reviewed));
    }
    let (code, value) = match (info.verb.as_str(), info.subresource.as_str()) {
        ("get", "scale") => (
            200,
            crate::scale::scale_of(resource_info, &rest::get(&server.rest, &req).await?)?,
        ),
        ("get", _) => (200, rest::get(&server.rest, &req).await?),
        ("list", _) => (200, rest::list(&server.rest, &req).await?),
        ("watch", _) => {
            return watch_response(
                server,
                resource.clone(),
                &info.namespace,
                &info.name,
                query,
                output,
                websocket,
            )
            .await
        }
        ("create", "binding") => (201, crate::binding::bind(&server.rest, &req).await?),
        ("create", "eviction") => (201, crate::binding::evict(&server.rest, &req).await?),
        ("create", "") => rest::create(&server.rest, &req).await?,
        ("update", _) => (200, rest::update(&server.rest, &req).await?),
        ("patch", _) => (200, rest::patch(&server.rest, &req).await?),
        ("delete", _) => (200, rest::delete(&server.rest, &req).await?),
        ("deletecollection", _) => (200, rest::delete_collection(&server.rest, &req).await?),
        _ => {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ))
        }
    };
    let mut response = if value.get("kind").and_then(Value::as_str) == Some("Status") {
        json_response(code, &value)
    } else {
        let rendered = output.render(resource_info, &value, info.verb == "list");
        if let Output::Yaml = output {
            let yaml = serde_yaml_ng::to_string(&rendered)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
            (status, [("content-type", "application/yaml")], yaml).into_response()
        } else {
            json_response(code, &rendered)
        }
    };
    // Upstream's warning format: code 299, agent "-", the text quoted.
    for warning in warnings.lock().iter() {
        let text = format!("299 - {:?}", warning);
        if let Ok(value) = axum::http::HeaderValue::from_str(&text) {
            response.headers_mut().append("warning", value);
        }
    }
    Ok(response)
}

/// The representation a client asked for in `Accept`.
#[derive(Clone, Copy)]
enum Output {
    Object,
    Yaml,
    Table,
    Metadata,
}

impl Output {
    fn from_accept(accept: &str) -> Result<Output, ApiError> {
        if accept.is_empty() {
            return Ok(Output::Object);
        }
        for part in accept.split(',') {
            let part = part.replace(' ', "");
            if part.contains("as=Table") && part.contains("g=meta.k8s.io") {
                return Ok(Output::Table);
            }
            if (part.contains("as=PartialObjectMetadata")) && part.contains("g=meta.k8s.io") {
                return Ok(Output::Metadata);
            }
            let media = part.split(';').next().unwrap_or("");
            if part.contains("as=") {
                continue;
            }
            match media {
                "application/json" | "application/*" | "*/*" => return Ok(Output::Object),
                "application/yaml" => return Ok(Output::Yaml),
                // Protobuf responses are not produced: a client that also accepts JSON gets
                // JSON, one that accepts only protobuf gets 406.
                _ => {}
            }
        }
        Err(ApiError::not_acceptable(format!("only the following media types are accepted: application/json, application/yaml (got {accept:?})")))
    }

    fn render(self, resource: &ResourceInfo, value: &Value, is_list: bool) -> Value {
        match self {
            Output::Object | Output::Yaml => value.clone(),
            Output::Table => {
                let now = now_secs();
                let (items, rv, cont) = if is_list {
                    (
                        value["items"].as_array().cloned().unwrap_or_default(),
                        value
                            .pointer("/metadata/resourceVersion")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        value
                            .pointer("/metadata/continue")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    )
                } else {
                    (
                        vec![value.clone()],
                        value
                            .pointer("/metadata/resourceVersion")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        None,
                    )
                };
                ferry_api::printers::table(
                    resource.group,
                    resource.plural,
                    &items,
                    now,
                    &rv,
                    cont.as_deref(),
                )
            }
            Output::Metadata => {
                let partial = |o: &Value| json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata").cloned().unwrap_or(json!({}))});
                if is_list {
                    let items: Vec<Value> = value["items"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(partial)
                        .collect();
                    json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": value.get("metadata").cloned().unwrap_or(json!({})), "items": items})
                } else {
                    partial(value)
                }
            }
        }
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

async fn watch_response(
    server: &Arc<Server>,
    resource: Arc<Resource>,
    namespace: &str,
    name: &str,
    query: &HashMap<String, String>,
    output: Output,
    websocket: Option<axum::extract::ws::WebSocketUpgrade>,
) -> Result<Response, ApiError> {
    let info = resource.info;
    let transform: crate::watch::Transform =
        Arc::new(move |object: &Value, first: bool| match output {
            Output::Object | Output::Yaml => object.clone(),
            Output::Metadata => output.render(info, object, false),
            Output::Table => {
                let mut table = output.render(info, object, false);
                if !first {
                    // Column definitions come with the first event only, as upstream sends them.
                    table["columnDefinitions"] = json!([]);
                }
                table
            }
        });
    let rx = crate::watch::watch(
        server.rest.clone(),
        resource,
        namespace,
        name,
        query,
        transform,
    )
    .await?;
    server.metrics.watches.fetch_add(1, Ordering::Relaxed);
    let guard = WatchGuard(server.clone());
    if let Some(websocket) = websocket {
        return Ok(websocket.on_upgrade(move |socket| websocket_watch(socket, rx, guard)));
    }
    let stream = futures::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, Infallible>(bytes), (rx, guard)))
    });
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("transfer-encoding", "chunked")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| ApiError::internal("watch response").into_response()))
}

/// Sends each watch event as one WebSocket text message (upstream's framing for JSON), until
/// the watch ends or the client closes the socket.
async fn websocket_watch(
    mut socket: axum::extract::ws::WebSocket,
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
    _guard: WatchGuard,
) {
    use axum::extract::ws::Message;
    loop {
        tokio::select! {
            event = rx.recv() => {
                let Some(event) = event else { break };
                let text = String::from_utf8_lossy(event.trim_ascii_end()).into_owned();
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                // Pings are answered by the library; anything else from the client is ignored.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

/// Upstream's impersonation (`kubectl --as=U --as-group=G`): with `Impersonate-User` (and
/// `Impersonate-Group`, `Impersonate-Uid`) the request runs as that user, if the requester may
/// `impersonate` users (and each group) — asked of the authorizer like any other request.
fn impersonate(
    server: &Server,
    user: crate::auth::UserInfo,
    headers: &HeaderMap,
) -> Result<crate::auth::UserInfo, ApiError> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    };
    let Some(name) = values("impersonate-user").into_iter().next() else {
        if !values("impersonate-group").is_empty() {
            return Err(ApiError::internal(
                "requested impersonation of groups without impersonating a user",
            ));
        }
        return Ok(user);
    };
    let groups = values("impersonate-group");
    let uid = values("impersonate-uid")
        .into_iter()
        .next()
        .unwrap_or_default();
    let check = |resource: &str, object: &str| {
        let request = RequestInfo {
            is_resource_request: true,
            verb: "impersonate".into(),
            api_prefix: "api".into(),
            resource: resource.into(),
            name: object.into(),
            ..Default::default()
        };
        match server.auth.authorize(&user, &request) {
            Decision::Allow => Ok(()),
            Decision::Deny(_) => Err(ApiError::forbidden(format!("{resource} \"{object}\" is forbidden: User \"{}\" cannot impersonate resource \"{resource}\" in API group \"\" at the cluster scope", user.name))),
        }
    };
    check("users", &name)?;
    for group in &groups {
        check("groups", group)?;
    }
    let mut all_groups = groups;
    if !all_groups.iter().any(|g| g == "system:authenticated") {
        all_groups.push("system:authenticated".into());
    }
    Ok(crate::auth::UserInfo {
        name,
        uid,
        groups: all_groups,
    })
}

/// Counts open watches for `/metrics`.
struct WatchGuard(Arc<Server>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.metrics.watches.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `/version`, health, `/metrics` and discovery.
fn non_resource(server: &Server, info: &RequestInfo, accept: &str) -> Result<Response, ApiError> {
    if info.verb != "get" && info.verb != "head" {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let path = info.path.trim_end_matches('/');
    let text = |body: String| {
        Ok((
            StatusCode::OK,
            [("content-type", "text/plain; charset=utf-8")],
            body,
        )
            .into_response())
    };
    match path {
        "/healthz" | "/livez" | "/readyz" | "/healthz/ping" | "/livez/ping" | "/readyz/ping" => {
            text("ok".into())
        }
        "/version" => Ok(json_response(
            200,
            &json!({
                "major": "1", "minor": "33", "gitVersion": KUBERNETES_VERSION,
                "gitCommit": env!("CARGO_PKG_VERSION"), "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z", "goVersion": "rust", "compiler": "rustc",
                "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH }),
            }),
        )),
        "/metrics" => text(server.metrics_text()),
        "/api" if discovery::wants_aggregated(accept) => {
            Ok(aggregated(discovery::aggregated(true)))
        }
        "/apis" if discovery::wants_aggregated(accept) => {
            Ok(aggregated(discovery::aggregated(false)))
        }
        "/api" => Ok(json_response(
            200,
            &discovery::core_versions(&server.address.lock()),
        )),
        "/apis" => Ok(json_response(200, &discovery::group_list())),
        "/openapi/v2" => {
            if accept.contains("protobuf") {
                let body = ferry_api::openapi::v2_protobuf();
                return Ok((
                    StatusCode::OK,
                    [(
                        "content-type",
                        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                    )],
                    body.as_ref().clone(),
                )
                    .into_response());
            }
            Ok(json_response(200, &ferry_api::openapi::v2()))
        }
        "/openapi/v3" => Ok(json_response(200, &ferry_api::openapi::v3_index())),
        _ => {
            if let Some(gv) = path.strip_prefix("/openapi/v3/") {
                return ferry_api::openapi::v3_group_version(gv)
                    .map(|doc| json_response(200, &doc))
                    .ok_or_else(ApiError::path_not_found);
            }
            if info.api_prefix == "api" && !info.version.is_empty() {
                return discovery::resource_list("", &info.version)
                    .map(|v| json_response(200, &v))
                    .ok_or_else(ApiError::path_not_found);
            }
            if info.api_prefix == "apis" && !info.group.is_empty() {
                let found = if info.version.is_empty() {
                    discovery::group(&info.group)
                } else {
                    discovery::resource_list(&info.group, &info.version)
                };
                return found
                    .map(|v| json_response(200, &v))
                    .ok_or_else(ApiError::path_not_found);
            }
            Err(ApiError::path_not_found())
        }
    }
}

fn aggregated(value: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", discovery::AGGREGATED)],
        value.to_string(),
    )
        .into_response()
}
