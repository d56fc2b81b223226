//! Proxying a request to an extension API server (upstream's `handler_proxy.go`): after ferry's
//! own authentication and authorization, the request goes to a ready endpoint of the
//! APIService's Service over TLS (the server verified with the `caBundle`, as
//! `<service>.<namespace>.svc`), presenting the front-proxy client certificate, without the
//! caller's credentials and with the user in `X-Remote-User`, `X-Remote-Group` (one header per
//! group) and `X-Remote-Extra-<key>`. The answer is streamed back as it comes (watches too).
//!
//! An APIService that is not available, or whose Service has no ready endpoint, answers 503
//! `service unavailable` as upstream's plain-text `http.Error`; a server that cannot be reached
//! answers 503 with the error (and its APIService is checked again at once).

use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{Aggregator, Remote};
use crate::auth::UserInfo;
use crate::body::{self, Body, BodyError, Request, Response};

/// How long connecting and the TLS handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Headers of one connection (RFC 9110 §7.6.1), not passed on.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The request headers that name the user: the caller's credentials (upstream's
/// authentication and impersonation filters remove them once used) and any front-proxy headers
/// the caller sent itself.
fn names_the_caller(name: &str) -> bool {
    name == "authorization"
        || name.starts_with("impersonate-")
        || name == "x-remote-user"
        || name == "x-remote-group"
        || name == "x-remote-uid"
        || name.starts_with("x-remote-extra-")
}

/// Upstream's `SetAuthProxyHeaders`: `X-Remote-User`, one `X-Remote-Group` per group, and one
/// `X-Remote-Extra-<key>` per value of each extra (the key percent-encoded as a URL path
/// segment). Values that are not valid header values are left out.
pub fn remote_headers(
    user: &str,
    groups: &[String],
    extra: &[(String, Vec<String>)],
) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = Vec::new();
    let mut add = |name: &str, value: &str| {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.push((name, value));
        }
    };
    add("X-Remote-User", user);
    for group in groups {
        add("X-Remote-Group", group);
    }
    for (key, values) in extra {
        let name = format!("X-Remote-Extra-{}", path_escape(key));
        for value in values {
            add(&name, value);
        }
    }
    headers
}

/// Go's `url.PathEscape`: everything but unreserved characters and a few sub-delimiters is
/// percent-encoded.
fn path_escape(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        let keep = byte.is_ascii_alphanumeric() || b"-_.~!$&'()*+,;=:@".contains(&byte);
        if keep {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Upstream's `http.Error`: the text and a newline, as plain text.
pub fn error(code: u16, text: &str) -> Response {
    let mut response = body::response(code, "text/plain; charset=utf-8", format!("{text}\n"));
    response.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Sends `request` over a new TLS connection to `address:port`, verified as `server_name`;
/// the answer's body streams as the server sends it.
pub async fn send(
    address: &str,
    port: u16,
    server_name: &str,
    tls: Arc<rustls::ClientConfig>,
    request: http::Request<Body>,
) -> Result<http::Response<hyper::body::Incoming>, String> {
    let name = rustls::pki_types::ServerName::try_from(server_name.to_string())
        .map_err(|e| e.to_string())?;
    let connect = async {
        let tcp = TcpStream::connect((address, port))
            .await
            .map_err(|e| format!("dial tcp {address}:{port}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("tls: {e}"))
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| format!("dial tcp {address}:{port}: i/o timeout"))??;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())
}

/// Proxies `request` from `user` to `remote`'s server.
pub async fn proxy(
    aggregator: &Aggregator,
    remote: &Remote,
    user: &UserInfo,
    request: Request,
) -> Response {
    if !remote.available {
        return error(503, "service unavailable");
    }
    let (address, port) = match aggregator.endpoint(remote) {
        Ok(endpoint) => endpoint,
        Err(why) => {
            tracing::warn!(apiservice = %remote.name, %why, "resolving an aggregated API's endpoint");
            return error(503, "service unavailable");
        }
    };
    let tls = match aggregator.client_config(remote) {
        Ok(tls) => tls,
        Err(why) => return error(500, &why),
    };
    let (parts, incoming) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let host = if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    };
    let mut builder = http::Request::builder()
        .method(parts.method)
        .uri(path)
        .version(http::Version::HTTP_11);
    for (name, value) in &parts.headers {
        let lower = name.as_str();
        if HOP_BY_HOP.contains(&lower) || names_the_caller(lower) || lower == "host" {
            continue;
        }
        builder = builder.header(name, value);
    }
    builder = builder.header(http::header::HOST, &host);
    for (name, value) in remote_headers(&user.name, &user.groups, &[]) {
        builder = builder.header(name, value);
    }
    let outgoing = match builder.body(incoming) {
        Ok(request) => request,
        Err(e) => return error(500, &e.to_string()),
    };
    match send(&address, port, &remote.server_name(), tls, outgoing).await {
        Ok(response) => {
            let (mut parts, incoming) = response.into_parts();
            for name in HOP_BY_HOP {
                parts.headers.remove(*name);
            }
            parts.version = http::Version::HTTP_11;
            let body = incoming.map_err(BodyError::new).boxed_unsync();
            http::Response::from_parts(parts, body)
        }
        Err(why) => {
            aggregator.report_unreachable(&remote.name);
            error(503, &why)
        }
    }
}

/// A verifier for `insecureSkipTLSVerify`: any server certificate is accepted (signatures are
/// still checked, so the handshake is with the holder of the key).
#[derive(Debug)]
pub struct AcceptAnyServer(pub Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_goes_in_front_proxy_headers() {
        assert_eq!(path_escape("example.com/x y"), "example.com%2Fx%20y");
        let headers = remote_headers(
            "alice",
            &["devs".to_string(), "system:authenticated".to_string()],
            &[(
                "scopes.example.com/x y".to_string(),
                vec!["a".into(), "b".into()],
            )],
        );
        let pairs: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let expect = |n: &str, v: &str| (n.to_string(), v.to_string());
        assert_eq!(
            pairs,
            vec![
                expect("x-remote-user", "alice"),
                expect("x-remote-group", "devs"),
                expect("x-remote-group", "system:authenticated"),
                expect("x-remote-extra-scopes.example.com%2fx%20y", "a"),
                expect("x-remote-extra-scopes.example.com%2fx%20y", "b"),
            ]
        );
    }

    #[test]
    fn callers_credentials_and_forged_headers_are_not_passed_on() {
        for name in [
            "authorization",
            "impersonate-user",
            "impersonate-extra-scopes",
            "x-remote-user",
            "x-remote-group",
            "x-remote-extra-a",
        ] {
            assert!(names_the_caller(name), "{name}");
        }
        assert!(!names_the_caller("accept"));
        assert!(!names_the_caller("user-agent"));
    }

    #[tokio::test]
    async fn an_unavailable_apiservice_answers_upstreams_503() {
        let aggregator = Aggregator::new();
        let remote = Remote::of(&serde_json::json!({"metadata": {"name": "v1.x.io"},
            "spec": {"group": "x.io", "version": "v1", "service": {"namespace": "x", "name": "api"}}}))
        .expect("remote");
        let user = UserInfo {
            name: "alice".into(),
            uid: String::new(),
            groups: vec![],
        };
        let request = http::Request::get("/apis/x.io/v1/things")
            .body(body::empty())
            .expect("request");
        let response = proxy(&aggregator, &remote, &user, request).await;
        assert_eq!(response.status(), 503);
        assert_eq!(
            response.headers()["content-type"],
            "text/plain; charset=utf-8"
        );
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(&bytes[..], b"service unavailable\n");
    }
}
