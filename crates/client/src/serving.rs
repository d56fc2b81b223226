//! A component's own HTTPS server, as kube-scheduler's (`--secure-port` 10259) and
//! kube-controller-manager's (10257): `/healthz`, `/livez` and `/readyz` for everyone
//! (upstream's `--authorization-always-allow-paths` default), `/metrics` for callers the API
//! server lets `get` the path `/metrics` ([`crate::delegated`]).
//!
//! Answers as upstream's delegating filters: bad credentials (a token the API server does not
//! know) 401, a user not allowed — `system:anonymous` when no credentials came — 403, both as
//! a JSON `Status`. The serving certificate is the one given, or a self-signed one made at
//! start ([`self_signed`]), as upstream's components make when no `--tls-cert-file` is given.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::delegated::{Attributes, Authorizer, TokenAuthenticator, User};

/// kube-scheduler's secure port.
pub const SCHEDULER_PORT: u16 = 10259;
/// kube-controller-manager's secure port.
pub const CONTROLLER_MANAGER_PORT: u16 = 10257;

/// The paths anyone may get (upstream's `--authorization-always-allow-paths` default).
pub const ALWAYS_ALLOW_PATHS: &[&str] = &["/healthz", "/readyz", "/livez"];

/// The metrics' text, made at each scrape.
pub type Metrics = Arc<dyn Fn() -> Result<String, std::fmt::Error> + Send + Sync>;

/// A response.
pub type Response = http::Response<Full<Bytes>>;

/// The server: who checks callers, and what `/metrics` shows.
pub struct SecureServer {
    authenticator: Arc<dyn TokenAuthenticator>,
    authorizer: Arc<dyn Authorizer>,
    metrics: Metrics,
}

fn respond(status: u16, content_type: &'static str, body: String) -> Response {
    let mut response = http::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

/// A `metav1.Status` failure, as upstream's response writers answer.
fn status(code: u16, reason: &str, message: &str) -> Response {
    let mut body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if code == 403 {
        body["details"] = serde_json::json!({});
    }
    respond(code, "application/json", body.to_string())
}

impl SecureServer {
    /// A server checking tokens with `authenticator`, requests with `authorizer`, serving
    /// `metrics`.
    pub fn new(
        authenticator: Arc<dyn TokenAuthenticator>,
        authorizer: Arc<dyn Authorizer>,
        metrics: Metrics,
    ) -> Arc<SecureServer> {
        Arc::new(SecureServer {
            authenticator,
            authorizer,
            metrics,
        })
    }

    /// Who sent `headers` (`certificate`: the user of the client certificate the handshake
    /// verified); `None`: credentials were given and refused (401).
    async fn authenticate(
        &self,
        certificate: Option<User>,
        headers: &http::HeaderMap,
    ) -> Option<User> {
        if let Some(user) = certificate {
            return Some(user);
        }
        let Some(token) = crate::delegated::bearer_token(headers) else {
            return Some(User::anonymous());
        };
        match self.authenticator.authenticate(token).await {
            Ok(user) => user,
            Err(error) => {
                tracing::warn!(%error, "reviewing a token");
                None
            }
        }
    }

    /// Answers one request; `certificate` is the user of the verified client certificate.
    pub async fn handle<B>(
        &self,
        certificate: Option<User>,
        request: http::Request<B>,
    ) -> Response {
        let Some(user) = self.authenticate(certificate, request.headers()).await else {
            return status(401, "Unauthorized", "Unauthorized");
        };
        let path = request.uri().path();
        if !ALWAYS_ALLOW_PATHS.contains(&path) {
            let attributes = Attributes::Path {
                verb: crate::delegated::verb(request.method()),
                path: path.to_string(),
            };
            match self.authorizer.authorize(&user, &attributes).await {
                Ok(true) => {}
                Ok(false) => {
                    let message = crate::delegated::forbidden_message(&user, &attributes);
                    return status(403, "Forbidden", &format!("forbidden: {message}"));
                }
                Err(error) => {
                    tracing::warn!(%error, "authorizing a request");
                    return status(
                        500,
                        "InternalError",
                        &format!("Internal error occurred: {path:?}: {error}"),
                    );
                }
            }
        }
        match path {
            "/healthz" | "/livez" | "/readyz" => {
                respond(200, "text/plain; charset=utf-8", "ok".into())
            }
            "/metrics" => match (self.metrics)() {
                Ok(text) => respond(
                    200,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    text,
                ),
                Err(error) => status(500, "InternalError", &format!("encoding metrics: {error}")),
            },
            _ => respond(
                404,
                "text/plain; charset=utf-8",
                "404 page not found\n".into(),
            ),
        }
    }

    /// Serves TLS connections from `listener` until `shutdown` ([`serve_tls`]).
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        tls: rustls::ServerConfig,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        serve_tls(
            listener,
            tls,
            shutdown,
            "secure serving",
            move |certificate, request| {
                let server = self.clone();
                async move { server.handle(certificate, request).await }
            },
        )
        .await;
    }
}

/// Accepts TLS connections from `listener` until `shutdown` and serves each with `handle`,
/// which is given the user of the client's certificate (`None` without one; `tls` decides
/// which CA it must come from) and the request — the loop of every component's HTTPS server
/// (kube-scheduler's, kube-controller-manager's, the kubelet's). A handshake has 10 s;
/// connections may upgrade (the kubelet's exec, attach and port-forward). `name` labels the
/// logs.
pub async fn serve_tls<H, F, B>(
    listener: TcpListener,
    tls: rustls::ServerConfig,
    shutdown: impl std::future::Future<Output = ()>,
    name: &'static str,
    handle: H,
) where
    H: Fn(Option<User>, http::Request<hyper::body::Incoming>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = http::Response<B>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "{name}: accept");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let (acceptor, handle) = (acceptor.clone(), handle.clone());
        tokio::spawn(async move {
            let handshake =
                tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp));
            let tls = match handshake.await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "{name}: TLS handshake");
                    return;
                }
                Err(_) => return,
            };
            let certificate =
                crate::delegated::certificate_user(tls.get_ref().1.peer_certificates());
            let service = hyper::service::service_fn(move |request| {
                let response = handle(certificate.clone(), request);
                async move { Ok::<_, Infallible>(response.await) }
            });
            let builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            if let Err(error) = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, %error, "{name}: connection");
            }
        });
    }
}

/// A self-signed serving certificate and its key (PEM) for `localhost`, `127.0.0.1` and
/// `address`, as upstream's components make one when given none.
pub fn self_signed(address: IpAddr) -> Result<(String, String), String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    if !address.is_unspecified() && address.to_string() != "127.0.0.1" {
        names.push(address.to_string());
    }
    let certified = rcgen::generate_simple_self_signed(names).map_err(|e| e.to_string())?;
    Ok((certified.cert.pem(), certified.signing_key.serialize_pem()))
}

/// TLS presenting `cert_pem` with `key_pem`; client certificates are verified against
/// `client_ca_pem` when given (none: callers authenticate with tokens only).
pub fn tls_config(
    cert_pem: &str,
    key_pem: &str,
    client_ca_pem: Option<&str>,
) -> Result<rustls::ServerConfig, String> {
    let chain = crate::tls::certificates(cert_pem)?;
    let key = crate::tls::private_key(key_pem)?;
    if let Some(ca) = client_ca_pem {
        return crate::tls::server_config(chain, key, ca);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The client CA the API server publishes for delegated authentication
/// (`kube-system/extension-apiserver-authentication`, `client-ca-file`), if readable.
pub async fn client_ca(client: &kube::Client) -> Option<String> {
    use k8s_openapi::api::core::v1::ConfigMap;
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), "kube-system");
    match api.get_opt("extension-apiserver-authentication").await {
        Ok(map) => map?.data?.remove("client-ca-file"),
        Err(error) => {
            tracing::warn!(%error, "reading the client CA; client certificates will not authenticate");
            None
        }
    }
}

/// Where and with what certificate a component serves.
#[derive(Debug, Clone)]
pub struct Options {
    /// The address and port (`--bind-address`, `--secure-port`).
    pub address: SocketAddr,
    /// The serving certificate and key (PEM); `None`: a self-signed one.
    pub certificate: Option<(String, String)>,
}

/// Serves `metrics` (and the health paths) as `options` say, checking callers through
/// `client` (the component's own), until `shutdown`; returns the address bound.
pub async fn start(
    client: kube::Client,
    options: Options,
    metrics: Metrics,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<SocketAddr, String> {
    let (cert, key) = match options.certificate {
        Some(pair) => pair,
        None => self_signed(options.address.ip())?,
    };
    let ca = client_ca(&client).await;
    let tls = tls_config(&cert, &key, ca.as_deref())?;
    let listener = TcpListener::bind(options.address)
        .await
        .map_err(|e| format!("listening on {}: {e}", options.address))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let (authenticator, authorizer) = crate::delegated::delegated(client);
    let server = SecureServer::new(authenticator, authorizer, metrics);
    tokio::spawn(server.serve(listener, tls, shutdown));
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clientbuilder::BoxFuture;

    /// Knows the token `good` as `alice` and `viewer` as `bob`.
    struct Tokens;

    impl TokenAuthenticator for Tokens {
        fn authenticate<'a>(
            &'a self,
            token: &'a str,
        ) -> BoxFuture<'a, Result<Option<User>, String>> {
            let user = match token {
                "good" => Some(User::authenticated("alice".into(), vec![])),
                "viewer" => Some(User::authenticated("bob".into(), vec![])),
                _ => None,
            };
            Box::pin(async move { Ok(user) })
        }
    }

    /// Lets alice get `/metrics`, nobody anything else.
    struct OnlyAlice;

    impl Authorizer for OnlyAlice {
        fn authorize<'a>(
            &'a self,
            user: &'a User,
            attributes: &'a Attributes,
        ) -> BoxFuture<'a, Result<bool, String>> {
            let allowed = user.name == "alice"
                && *attributes
                    == Attributes::Path {
                        verb: "get",
                        path: "/metrics".into(),
                    };
            Box::pin(async move { Ok(allowed) })
        }
    }

    fn server() -> Arc<SecureServer> {
        SecureServer::new(
            Arc::new(Tokens),
            Arc::new(OnlyAlice),
            Arc::new(|| Ok("scheduler_pending_pods{queue=\"active\"} 0\n# EOF\n".to_string())),
        )
    }

    async fn get(path: &str, token: Option<&str>) -> (u16, String) {
        let mut request = http::Request::get(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = server()
            .handle(None, request.body(()).expect("request"))
            .await;
        let status = response.status().as_u16();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .expect("body")
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn metrics_need_a_user_allowed_to_get_them() {
        let (code, body) = get("/metrics", Some("good")).await;
        assert_eq!(code, 200);
        assert!(body.contains("scheduler_pending_pods"), "{body}");
        let (code, body) = get("/metrics", Some("viewer")).await;
        assert_eq!(code, 403);
        assert!(
            body.contains(r#"forbidden: User \"bob\" cannot get path \"/metrics\""#),
            "{body}"
        );
        // Upstream's delegating authentication lets anonymous requests through to the
        // authorizer, which refuses them.
        let (code, body) = get("/metrics", None).await;
        assert_eq!(code, 403);
        assert!(body.contains(r#"User \"system:anonymous\""#), "{body}");
        let (code, body) = get("/metrics", Some("forged")).await;
        assert_eq!(code, 401);
        assert!(body.contains(r#""reason":"Unauthorized""#), "{body}");
    }

    #[tokio::test]
    async fn health_is_open_to_everyone_but_bad_credentials() {
        for path in ["/healthz", "/livez", "/readyz"] {
            assert_eq!(get(path, None).await, (200, "ok".to_string()));
            assert_eq!(get(path, Some("viewer")).await.0, 200);
        }
        assert_eq!(get("/healthz", Some("forged")).await.0, 401);
        // Other paths are authorized first, then not found.
        assert_eq!(get("/other", Some("viewer")).await.0, 403);
    }

    #[tokio::test]
    async fn a_certificate_user_needs_no_token() {
        let alice = User::authenticated("alice".into(), vec![]);
        let request = http::Request::get("/metrics").body(()).expect("request");
        assert_eq!(server().handle(Some(alice), request).await.status(), 200);
    }

    #[test]
    fn self_signed_certificates_make_a_tls_configuration() {
        let (cert, key) = self_signed("0.0.0.0".parse().expect("ip")).expect("certificate");
        assert!(tls_config(&cert, &key, None).is_ok());
        assert!(tls_config(&cert, &key, Some(&cert)).is_ok());
    }
}
