//! HTTP GET probes (upstream `pkg/probe/http`): one HTTP/1.1 GET per attempt on a fresh
//! connection, following same-host redirects like Go's client, passing on a 2xx status (a
//! redirect elsewhere is a warning).

use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::HTTPGetAction;
use tokio::task::AbortHandle;

use super::tcp::{dial, join_host_port, DialError};
use super::{resolve_port, PortError, ProbeResult, ProbeTarget, MAX_OUTPUT, USER_AGENT};

/// How many same-host redirects an HTTP probe follows (Go's HTTP client default).
const MAX_REDIRECTS: usize = 10;

/// An `http://host:port/path?query` URL, the parts an HTTP probe needs.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Url {
    scheme: String,
    host: String,
    port: u16,
    /// Starts with `/`.
    path_and_query: String,
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme,
            join_host_port(&self.host, self.port),
            self.path_and_query
        )
    }
}

impl Url {
    /// Where a `Location` header points, relative to this URL; `None` if it does not parse.
    fn join(&self, location: &str) -> Option<Url> {
        if location.starts_with("//") {
            return None;
        }
        if location.starts_with('/') {
            return Some(Url {
                path_and_query: location.to_string(),
                ..self.clone()
            });
        }
        if let Ok(uri) = location.parse::<hyper::Uri>() {
            if let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) {
                let scheme = scheme.to_ascii_lowercase();
                let port = uri
                    .port_u16()
                    .unwrap_or(if scheme == "https" { 443 } else { 80 });
                let path_and_query = uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .filter(|p| p.starts_with('/'))
                    .unwrap_or("/");
                return Some(Url {
                    scheme,
                    host: host
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_string(),
                    port,
                    path_and_query: path_and_query.to_string(),
                });
            }
        }
        // A relative path: next to the current one.
        let path = self.path_and_query.split('?').next().unwrap_or("/");
        let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        Some(Url {
            path_and_query: format!("{dir}{location}"),
            ..self.clone()
        })
    }
}

/// The first URL of an HTTP probe (upstream's `NewRequestForHTTPGetAction`).
fn http_url(http: &HTTPGetAction, target: &ProbeTarget<'_>) -> Result<Url, PortError> {
    let scheme = http
        .scheme
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("http")
        .to_ascii_lowercase();
    let host = http
        .host
        .as_deref()
        .filter(|h| !h.is_empty())
        .unwrap_or(target.pod_ip)
        .to_string();
    let port = resolve_port(&http.port, target.container)?;
    let path = http.path.as_deref().unwrap_or_default();
    let path_and_query = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    Ok(Url {
        scheme,
        host,
        port,
        path_and_query,
    })
}

/// Why a probe's `httpHeaders` cannot be sent, worded like Go's `net/http`.
#[derive(Debug, thiserror::Error)]
enum HeaderError {
    /// A name that is not an HTTP token.
    #[error("net/http: invalid header field name {name:?}")]
    Name {
        /// The name as the probe gives it.
        name: String,
        /// Why hyper refused it.
        #[source]
        source: hyper::header::InvalidHeaderName,
    },
    /// A value with bytes HTTP does not allow (control characters).
    #[error("net/http: invalid header field value for {name:?}")]
    Value {
        /// The header's name.
        name: String,
        /// Why hyper refused it.
        #[source]
        source: hyper::header::InvalidHeaderValue,
    },
}

/// The request headers of an HTTP probe: the probe's own, then `User-Agent` and `Accept` unless
/// it set them (an empty `Accept` removes it), and `Connection: close` (upstream disables
/// keep-alives).
fn http_headers(http: &HTTPGetAction) -> Result<hyper::HeaderMap, HeaderError> {
    use hyper::header::{self, HeaderName, HeaderValue};
    let mut headers = hyper::HeaderMap::new();
    for h in http.http_headers.iter().flatten() {
        let name =
            HeaderName::from_bytes(h.name.as_bytes()).map_err(|source| HeaderError::Name {
                name: h.name.clone(),
                source,
            })?;
        let value = HeaderValue::from_str(&h.value).map_err(|source| HeaderError::Value {
            name: h.name.clone(),
            source,
        })?;
        headers.append(name, value);
    }
    if !headers.contains_key(header::USER_AGENT) {
        headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
    }
    match headers.get(header::ACCEPT) {
        None => {
            headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        }
        Some(v) if v.is_empty() => {
            headers.remove(header::ACCEPT);
        }
        Some(_) => {}
    }
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    Ok(headers)
}

/// A response: status, `Location`, and the first [`MAX_OUTPUT`] bytes of the body.
struct Response {
    status: u16,
    location: Option<String>,
    body: String,
}

/// Aborts the spawned connection task when the request is done or abandoned.
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Why one GET failed: the text after Go's `Get "<url>": `.
#[derive(Debug, thiserror::Error)]
enum GetError {
    /// The connection could not be made.
    #[error(transparent)]
    Dial(#[from] DialError),
    /// The HTTP/1.1 handshake on the new connection failed.
    #[error(transparent)]
    Handshake(hyper::Error),
    /// The request could not be built (a path that is not a valid URI).
    #[error(transparent)]
    Request(#[from] hyper::http::Error),
    /// `host:port` is not a valid `Host` header.
    #[error(transparent)]
    Host(#[from] hyper::header::InvalidHeaderValue),
    /// Sending the request or reading the response head failed.
    #[error(transparent)]
    Send(hyper::Error),
    /// Reading the response body failed.
    #[error(transparent)]
    Body(hyper::Error),
}

/// One GET on a fresh connection.
async fn http_get(
    url: &Url,
    headers: &hyper::HeaderMap,
    timeout: Duration,
) -> Result<Response, GetError> {
    let stream = dial(&url.host, url.port, timeout).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(GetError::Handshake)?;
    let _connection = AbortOnDrop(tokio::spawn(connection).abort_handle());
    let mut request = hyper::Request::get(url.path_and_query.as_str()).body(Empty::new())?;
    *request.headers_mut() = headers.clone();
    if !request.headers().contains_key(hyper::header::HOST) {
        let host = hyper::header::HeaderValue::from_str(&join_host_port(&url.host, url.port))?;
        request.headers_mut().insert(hyper::header::HOST, host);
    }
    let response = sender.send_request(request).await.map_err(GetError::Send)?;
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(hyper::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while bytes.len() < MAX_OUTPUT {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(mut data) = frame.into_data() {
                    while data.has_remaining() && bytes.len() < MAX_OUTPUT {
                        let chunk = data.chunk();
                        let take = chunk.len().min(MAX_OUTPUT - bytes.len());
                        bytes.extend_from_slice(&chunk[..take]);
                        data.advance(take);
                    }
                }
            }
            Some(Err(e)) => return Err(GetError::Body(e)),
            None => break,
        }
    }
    Ok(Response {
        status,
        location,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

pub(super) async fn http_probe(
    http: &HTTPGetAction,
    target: &ProbeTarget<'_>,
    timeout: Duration,
) -> ProbeResult {
    let mut url = match http_url(http, target) {
        Ok(url) => url,
        Err(e) => return ProbeResult::Unknown(e.to_string()),
    };
    let headers = match http_headers(http) {
        Ok(headers) => headers,
        Err(e) => return ProbeResult::Failure(format!("Get {:?}: {e}", url.to_string())),
    };
    // Go's client.Timeout covers the whole exchange, redirects included.
    let deadline = tokio::time::Instant::now() + timeout;
    let first_host = url.host.clone();
    let mut redirects = 0;
    loop {
        if url.scheme != "http" {
            return ProbeResult::Unknown(format!(
                "{} probes are not supported (only http): {url}",
                url.scheme.to_ascii_uppercase()
            ));
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let response = match tokio::time::timeout(left, http_get(&url, &headers, left)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return ProbeResult::Failure(format!("Get {:?}: {e}", url.to_string())),
            Err(_) => {
                return ProbeResult::Failure(format!(
                    "Get {:?}: context deadline exceeded \
                     (Client.Timeout exceeded while awaiting headers)",
                    url.to_string()
                ))
            }
        };
        // Go's client follows 301, 302, 303, 307 and 308 with a Location; the prober's
        // redirect checker stops at a different host and returns that response.
        let next = match (response.status, &response.location) {
            (301 | 302 | 303 | 307 | 308, Some(location)) => url.join(location),
            _ => None,
        };
        match next {
            Some(next) if next.host == first_host => {
                redirects += 1;
                if redirects >= MAX_REDIRECTS {
                    return ProbeResult::Failure(format!(
                        "Get {:?}: stopped after {MAX_REDIRECTS} redirects",
                        next.to_string()
                    ));
                }
                url = next;
                continue;
            }
            _ => {}
        }
        return match response.status {
            200..=299 => ProbeResult::Success,
            300..=399 => ProbeResult::Warning(format!(
                "Probe terminated redirects, Response body: {}",
                response.body
            )),
            // Upstream keeps the body out of the user-facing message (issue 99425).
            status => ProbeResult::Failure(format!("HTTP probe failed with statuscode: {status}")),
        };
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::mpsc;

    use super::*;
    use crate::probe::testing::*;
    use crate::probe::{probe_once, ProbeResult};
    use crate::runtime::FakeRuntime;

    #[test]
    fn redirect_locations() {
        let base = Url {
            scheme: "http".into(),
            host: "10.0.0.1".into(),
            port: 8080,
            path_and_query: "/a/b?x=1".into(),
        };
        let join = |l: &str| base.join(l).map(|u| u.to_string());
        assert_eq!(join("/ok"), Some("http://10.0.0.1:8080/ok".into()));
        assert_eq!(join("c?y"), Some("http://10.0.0.1:8080/a/c?y".into()));
        assert_eq!(
            join("http://example.com/z"),
            Some("http://example.com:80/z".into())
        );
        assert_eq!(
            join("https://[::1]:8443"),
            Some("https://[::1]:8443/".into())
        );
    }

    #[test]
    fn invalid_headers_are_refused_in_go_words() {
        use k8s_openapi::api::core::v1::HTTPHeader;
        let with_header = |name: &str, value: &str| HTTPGetAction {
            http_headers: Some(vec![HTTPHeader {
                name: name.into(),
                value: value.into(),
            }]),
            ..Default::default()
        };
        let err = http_headers(&with_header("bad name", "x")).expect_err("invalid name");
        assert!(matches!(&err, HeaderError::Name { name, .. } if name == "bad name"));
        assert_eq!(
            err.to_string(),
            "net/http: invalid header field name \"bad name\""
        );
        let err = http_headers(&with_header("X-Probe", "a\nb")).expect_err("invalid value");
        assert!(matches!(&err, HeaderError::Value { name, .. } if name == "X-Probe"));
        assert_eq!(
            err.to_string(),
            "net/http: invalid header field value for \"X-Probe\""
        );
    }

    /// A tiny HTTP/1.1 server: answers by path, and sends each request's head on `requests`.
    async fn http_server() -> (u16, mpsc::UnboundedReceiver<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let path = head.split(' ').nth(1).unwrap_or("").to_string();
                    let _ = tx.send(head);
                    let (status, location, body) = match path.as_str() {
                        "/ok" | "/healthz?verbose=1" => ("200 OK", "", "fine".to_string()),
                        "/fail" => ("500 Internal Server Error", "", "broken".to_string()),
                        "/here" => ("302 Found", "/ok", String::new()),
                        "/away" => (
                            "301 Moved Permanently",
                            "http://example.invalid/",
                            "moved".into(),
                        ),
                        "/loop" => ("302 Found", "/loop", String::new()),
                        "/big" => ("200 OK", "", "y".repeat(100_000)),
                        "/slow" => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                        _ => ("404 Not Found", "", String::new()),
                    };
                    let location = if location.is_empty() {
                        String::new()
                    } else {
                        format!("Location: {location}\r\n")
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\n{location}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        (port, rx)
    }

    #[tokio::test]
    async fn http_probe() {
        let fake = FakeRuntime::new();
        let (port, mut requests) = http_server().await;
        let c =
            container(json!({"name": "app", "ports": [{"name": "web", "containerPort": port}]}));
        let t = target(&fake, "c", &c);
        let get = |path: &str| probe(json!({"httpGet": {"port": "web", "path": path}}));

        let custom = probe(json!({"httpGet": {
            "port": port, "path": "/healthz?verbose=1",
            "httpHeaders": [
                {"name": "X-Probe", "value": "yes"},
                {"name": "Accept", "value": "text/plain"}
            ]
        }}));
        assert_eq!(probe_once(&custom, &t).await, ProbeResult::Success);
        let head = requests.recv().await.expect("request").to_ascii_lowercase();
        assert!(
            head.starts_with("get /healthz?verbose=1 http/1.1\r\n"),
            "{head}"
        );
        for line in [
            "user-agent: kube-probe/1.33",
            "x-probe: yes",
            "accept: text/plain",
            &format!("host: 127.0.0.1:{port}"),
            "connection: close",
        ] {
            assert!(head.contains(line), "{line} in {head}");
        }

        assert_eq!(probe_once(&get("ok"), &t).await, ProbeResult::Success);
        assert!(requests
            .recv()
            .await
            .expect("request")
            .contains("accept: */*"));
        assert_eq!(probe_once(&get("/big"), &t).await, ProbeResult::Success);
        assert_eq!(
            probe_once(&get("/fail"), &t).await,
            ProbeResult::Failure("HTTP probe failed with statuscode: 500".into())
        );
        assert_eq!(
            probe_once(&get("/missing"), &t).await,
            ProbeResult::Failure("HTTP probe failed with statuscode: 404".into())
        );
        // Redirects: followed on the same host, not to another one.
        assert_eq!(probe_once(&get("/here"), &t).await, ProbeResult::Success);
        assert_eq!(
            probe_once(&get("/away"), &t).await,
            ProbeResult::Warning("Probe terminated redirects, Response body: moved".into())
        );
        assert_eq!(
            probe_once(&get("/loop"), &t).await,
            ProbeResult::Failure(format!(
                "Get \"http://127.0.0.1:{port}/loop\": stopped after 10 redirects"
            ))
        );
        assert_eq!(
            probe_once(&get("/slow"), &t).await,
            ProbeResult::Failure(format!(
                "Get \"http://127.0.0.1:{port}/slow\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            ))
        );
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        assert_eq!(
            probe_once(&probe(json!({"httpGet": {"port": closed, "path": "/"}})), &t).await,
            ProbeResult::Failure(format!(
                "Get \"http://127.0.0.1:{closed}/\": dial tcp 127.0.0.1:{closed}: connect: connection refused"
            ))
        );
        assert!(matches!(
            probe_once(
                &probe(json!({"httpGet": {"port": port, "scheme": "HTTPS"}})),
                &t
            )
            .await,
            ProbeResult::Unknown(_)
        ));
    }
}
