//! Calling a webhook (upstream's `k8s.io/apiserver/pkg/util/webhook`): a review POSTed over
//! HTTPS to the webhook's URL, or to a ready endpoint of its Service (upstream's endpoint
//! routing, with the Service's DNS name as the TLS server name), trusting only the webhook's
//! `caBundle`, within its timeout. Admission webhooks, the token webhook, OIDC discovery and
//! CustomResourceDefinitions' conversion webhooks call through here.

pub mod answers;
pub mod kubeconfig;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

/// Where a webhook is reached: the host and port to dial, the TLS server name and the URL
/// upstream would name in its errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// What is dialed.
    pub address: String,
    /// The port dialed.
    pub port: u16,
    /// The name the certificate must carry.
    pub server_name: String,
    /// The request's path and query.
    pub path: String,
    /// The URL as upstream prints it (`https://name.namespace.svc:443/path?timeout=10s`).
    pub url: String,
}

impl Target {
    /// The target of `url` (`https://host[:port]/path`), with upstream's `timeout` parameter.
    pub fn from_url(url: &str, timeout: Duration) -> Result<Target, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("invalid url {url:?}: {e}"))?;
        if uri.scheme_str() != Some("https") {
            return Err(format!("webhook url {url:?} must use https"));
        }
        let host = uri
            .host()
            .ok_or_else(|| format!("webhook url {url:?} has no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(443);
        Ok(Target::new(
            host.clone(),
            port,
            host,
            port,
            uri.path(),
            uri.query(),
            timeout,
        ))
    }

    /// The target of a Service's endpoint `address:port`, verified as `server_name`, shown with
    /// the Service's port `shown_port`.
    pub fn new(
        address: String,
        port: u16,
        server_name: String,
        shown_port: u16,
        path: &str,
        query: Option<&str>,
        timeout: Duration,
    ) -> Target {
        let timeout = format!("timeout={}s", timeout.as_secs());
        let query = match query {
            Some(q) if !q.is_empty() => format!("{q}&{timeout}"),
            _ => timeout,
        };
        Target::with_query(address, port, server_name, shown_port, path, Some(&query))
    }

    /// The target of `url` as it is, without the `timeout` parameter admission webhooks get
    /// (a token webhook, an OIDC issuer).
    pub fn plain(url: &str) -> Result<Target, String> {
        let with_timeout = Target::from_url(url, Duration::ZERO)?;
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("invalid url {url:?}: {e}"))?;
        Ok(Target::with_query(
            with_timeout.address,
            with_timeout.port,
            with_timeout.server_name,
            uri.port_u16().unwrap_or(443),
            uri.path(),
            uri.query(),
        ))
    }

    fn with_query(
        address: String,
        port: u16,
        server_name: String,
        shown_port: u16,
        path: &str,
        query: Option<&str>,
    ) -> Target {
        let path = if path.is_empty() { "/" } else { path };
        let path = match query {
            Some(query) if !query.is_empty() => format!("{path}?{query}"),
            _ => path.to_string(),
        };
        let shown = if server_name.contains(':') {
            format!("[{server_name}]")
        } else {
            server_name.clone()
        };
        Target {
            url: format!("https://{shown}:{shown_port}{path}"),
            address,
            port,
            server_name,
            path,
        }
    }
}

/// The Service's ready endpoint that its port `port` leads to: an address and the port there
/// (upstream's endpoint routing).
pub fn resolve_endpoint(
    cluster: &crate::reflector::Objects,
    namespace: &str,
    name: &str,
    port: i32,
) -> Result<(String, u16), String> {
    let service = cluster
        .get(&format!("/services/{namespace}/{name}"))
        .ok_or_else(|| format!("service \"{name}\" not found"))?;
    let ports = service.pointer("/spec/ports").and_then(Value::as_array);
    let service_port = ports
        .into_iter()
        .flatten()
        .find(|p| p["port"].as_i64() == Some(i64::from(port)))
        .ok_or_else(|| format!("service \"{name}\" has no port {port}"))?;
    let port_name = service_port["name"].as_str().unwrap_or_default();
    let slices = cluster.under(&format!("/endpointslices/{namespace}/"));
    for slice in slices.iter().filter(|s| {
        s.pointer("/metadata/labels/kubernetes.io~1service-name")
            .and_then(Value::as_str)
            == Some(name)
    }) {
        let Some(endpoint_port) = slice["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"].as_str().unwrap_or_default() == port_name)
            .and_then(|p| p["port"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        let ready = slice["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e.pointer("/conditions/ready").and_then(Value::as_bool) != Some(false));
        if let Some(address) = ready.and_then(|e| e["addresses"][0].as_str()) {
            return Ok((address.to_string(), endpoint_port));
        }
    }
    Err(format!("no endpoints available for service \"{name}\""))
}

/// Roots from a `caBundle` (base64 of PEM certificates, as it is in JSON).
pub fn roots(ca_bundle: Option<&str>) -> Result<rustls::RootCertStore, String> {
    let Some(bundle) = ca_bundle.filter(|b| !b.is_empty()) else {
        return Ok(rustls::RootCertStore::empty());
    };
    let pem = base64::engine::general_purpose::STANDARD
        .decode(bundle)
        .map_err(|e| format!("invalid caBundle: {e}"))?;
    roots_from_pem(&pem).map_err(|e| format!("invalid caBundle: {e}"))
}

/// Roots from PEM certificates (other PEM blocks are passed over).
pub fn roots_from_pem(pem: &[u8]) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    let certificates = pem::parse_many(pem).map_err(|e| e.to_string())?;
    for certificate in certificates.iter().filter(|c| c.tag() == "CERTIFICATE") {
        roots
            .add(rustls::pki_types::CertificateDer::from(
                certificate.contents().to_vec(),
            ))
            .map_err(|e| e.to_string())?;
    }
    Ok(roots)
}

/// A client configuration trusting `roots`, presenting no certificate.
pub fn tls(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
    Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// POSTs `review` to `target` and returns the decoded answer; errors are the text upstream
/// puts after `failed to call webhook: `.
pub async fn call(
    target: &Target,
    tls: Arc<rustls::ClientConfig>,
    review: &Value,
    timeout: Duration,
) -> Result<Value, String> {
    exchange(target, tls, Some(review), timeout).await
}

/// GETs the JSON document at `target` (an OIDC issuer's discovery document and keys).
pub async fn get(
    target: &Target,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<Value, String> {
    exchange(target, tls, None, timeout).await
}

/// POSTs `body`, or GETs without one; the JSON answer.
async fn exchange(
    target: &Target,
    tls: Arc<rustls::ClientConfig>,
    body: Option<&Value>,
    timeout: Duration,
) -> Result<Value, String> {
    let method = if body.is_some() { "Post" } else { "Get" };
    let failed = |e: &dyn std::fmt::Display| format!("{method} {:?}: {e}", target.url);
    let exchange = async {
        let name = rustls::pki_types::ServerName::try_from(target.server_name.clone())
            .map_err(|e| failed(&e))?;
        let tcp = TcpStream::connect((target.address.as_str(), target.port))
            .await
            .map_err(|e| failed(&format!("dial tcp {}:{}: {e}", target.address, target.port)))?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| failed(&format!("tls: {e}")))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| failed(&e))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let builder = match body {
            Some(_) => http::Request::post(&target.path)
                .header(http::header::CONTENT_TYPE, "application/json"),
            None => http::Request::get(&target.path),
        };
        let bytes = match body {
            Some(body) => serde_json::to_vec(body).map_err(|e| failed(&e))?,
            None => Vec::new(),
        };
        let request = builder
            .header(http::header::HOST, &target.server_name)
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| failed(&e))?;
        let response = sender.send_request(request).await.map_err(|e| failed(&e))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| failed(&e))?
            .to_bytes();
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            return Err(format!(
                "an error on the server ({:?}) has prevented the request from succeeding",
                text.trim()
            ));
        }
        serde_json::from_slice::<Value>(&bytes)
            .map_err(|e| format!("failed to decode the webhook's response: {e}"))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| failed(&"context deadline exceeded"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_the_timeout_and_service_targets_their_dns_name() {
        let target = Target::from_url("https://127.0.0.1:9443/mutate?x=1", Duration::from_secs(5))
            .expect("url");
        assert_eq!(target.address, "127.0.0.1");
        assert_eq!(target.port, 9443);
        assert_eq!(target.path, "/mutate?x=1&timeout=5s");
        assert_eq!(target.url, "https://127.0.0.1:9443/mutate?x=1&timeout=5s");
        let plain =
            Target::from_url("https://hooks.example", Duration::from_secs(10)).expect("url");
        assert_eq!((plain.port, plain.path.as_str()), (443, "/?timeout=10s"));
        assert!(Target::from_url("http://hooks.example/x", Duration::from_secs(10)).is_err());
        let plain = Target::plain("https://issuer.example:8443/keys?v=1").expect("url");
        assert_eq!((plain.port, plain.path.as_str()), (8443, "/keys?v=1"));
        assert_eq!(plain.url, "https://issuer.example:8443/keys?v=1");
        let service = Target::new(
            "10.42.0.7".into(),
            8443,
            "hook.system.svc".into(),
            443,
            "/validate",
            None,
            Duration::from_secs(10),
        );
        assert_eq!(
            service.url,
            "https://hook.system.svc:443/validate?timeout=10s"
        );
    }

    #[test]
    fn ca_bundles_are_base64_pem() {
        assert!(roots(None).expect("none").is_empty());
        assert!(roots(Some("not base64!")).is_err());
        let ca = rcgen::generate_simple_self_signed(vec!["hook".into()]).expect("cert");
        let bundle = base64::engine::general_purpose::STANDARD.encode(ca.cert.pem());
        assert_eq!(roots(Some(&bundle)).expect("roots").len(), 1);
    }
}
