//! Proxying the streaming requests (`exec`, `attach`, `portforward`) one hop further, as
//! upstream's upgrade-aware proxy does at the API server (to the kubelet) and at the kubelet (to
//! the container runtime's streaming server): the client's upgrade request is sent on over a
//! connection the caller opened, with the headers that negotiate the protocol (SPDY's
//! `X-Stream-Protocol-Version`, WebSocket's `Sec-WebSocket-*`); if the far side switches
//! protocols, the caller answers its client 101 with the far side's headers and [`splice`]s
//! the two upgraded connections, so whichever protocol the far end speaks is spoken end to end.
//! A refusal (any other status) comes back whole, for the caller to pass on: clients such as
//! kubectl fall back from WebSocket to SPDY on it.

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// The request headers that carry an upgrade's negotiation, forwarded as they are.
pub const REQUEST_HEADERS: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "x-stream-protocol-version",
];

/// The response headers of a switch, passed back to the client.
pub const RESPONSE_HEADERS: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "x-stream-protocol-version",
];

/// Errors of forwarding.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// The HTTP exchange with the far side failed.
    #[error("{0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built (a bad path or header).
    #[error("{0}")]
    Request(#[from] http::Error),
}

/// What the far side answered.
pub enum Forwarded {
    /// It switched protocols: these response headers, and the connection to splice.
    Switched {
        /// The headers of [`RESPONSE_HEADERS`] it sent.
        headers: http::HeaderMap,
        /// The upgraded connection.
        upgraded: hyper::upgrade::Upgraded,
    },
    /// It answered something else.
    Refused {
        /// The status.
        status: http::StatusCode,
        /// Its content type, if any.
        content_type: Option<http::HeaderValue>,
        /// The body.
        body: Bytes,
    },
}

impl Forwarded {
    /// The answer to the client: on a switch, 101 with the far side's headers — and the two
    /// connections spliced once the client's is upgraded; on a refusal, the far side's status,
    /// content type and body as they are (clients read the text, and fall back from WebSocket
    /// to SPDY on it). `body` makes the caller's body type from bytes.
    pub fn into_response<B>(
        self,
        client: hyper::upgrade::OnUpgrade,
        body: impl FnOnce(Bytes) -> B,
    ) -> http::Response<B> {
        match self {
            Forwarded::Switched { headers, upgraded } => {
                splice(client, upgraded);
                let mut response = http::Response::new(body(Bytes::new()));
                *response.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
                *response.headers_mut() = headers;
                response
            }
            Forwarded::Refused {
                status,
                content_type,
                body: text,
            } => {
                let mut response = http::Response::new(body(text));
                *response.status_mut() = status;
                if let Some(content_type) = content_type {
                    response
                        .headers_mut()
                        .insert(http::header::CONTENT_TYPE, content_type);
                }
                response
            }
        }
    }
}

/// Whether `headers` ask for an upgrade (`Connection: upgrade` and an `Upgrade` header).
pub fn is_upgrade(headers: &http::HeaderMap) -> bool {
    let connection_upgrade = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade && headers.contains_key(http::header::UPGRADE)
}

/// Sends `method path_and_query` with the negotiation headers of `headers` over `io` (already
/// connected, and TLS-wrapped if the far side wants it) to `host`, and returns its answer.
pub async fn forward<IO>(
    io: IO,
    method: &http::Method,
    host: &str,
    path_and_query: &str,
    headers: &http::HeaderMap,
) -> Result<Forwarded, UpgradeError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.with_upgrades().await {
            tracing::debug!(%error, "upgrade proxy connection");
        }
    });
    let mut request = http::Request::builder()
        .method(method.clone())
        .uri(path_and_query)
        .header(http::header::HOST, host);
    for name in REQUEST_HEADERS {
        for value in headers.get_all(*name) {
            request = request.header(*name, value);
        }
    }
    let request = request.body(Empty::<Bytes>::new())?;
    let mut response = sender.send_request(request).await?;
    if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        let status = response.status();
        let content_type = response.headers().get(http::header::CONTENT_TYPE).cloned();
        let body = response.into_body().collect().await?.to_bytes();
        return Ok(Forwarded::Refused {
            status,
            content_type,
            body,
        });
    }
    let mut switched = http::HeaderMap::new();
    for name in RESPONSE_HEADERS {
        for value in response.headers().get_all(*name) {
            switched.append(*name, value.clone());
        }
    }
    let upgraded = hyper::upgrade::on(&mut response).await?;
    Ok(Forwarded::Switched {
        headers: switched,
        upgraded,
    })
}

/// Copies both ways between the client's connection (once its 101 is sent) and the far side's,
/// until either closes; returns at once, the copying runs on its own task, which ends — and
/// drops both connections — when either side goes away.
pub fn splice(client: hyper::upgrade::OnUpgrade, far: hyper::upgrade::Upgraded) {
    tokio::spawn(async move {
        let client = match client.await {
            Ok(client) => client,
            Err(error) => {
                tracing::debug!(%error, "client upgrade");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut far = TokioIo::new(far);
        if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut far).await {
            tracing::debug!(%error, "stream ended");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_needs_both_headers() {
        let mut headers = http::HeaderMap::new();
        headers.insert("connection", "keep-alive, Upgrade".parse().expect("value"));
        assert!(!is_upgrade(&headers));
        headers.insert("upgrade", "SPDY/3.1".parse().expect("value"));
        assert!(is_upgrade(&headers));
        headers.insert("connection", "close".parse().expect("value"));
        assert!(!is_upgrade(&headers));
    }

    /// A far side that switches to an echo protocol, and one that refuses.
    #[tokio::test]
    async fn a_switch_is_spliced_and_a_refusal_comes_back_whole() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (near, far) = tokio::io::duplex(4096);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                |mut request: http::Request<hyper::body::Incoming>| async move {
                    let protocols = request
                        .headers()
                        .get_all("x-stream-protocol-version")
                        .iter()
                        .map(|v| v.to_str().unwrap_or("").to_string())
                        .collect::<Vec<_>>();
                    if protocols != ["v4.channel.k8s.io", "v3.channel.k8s.io"] {
                        return Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .status(403)
                                .body(http_body_util::Full::new(Bytes::from("no protocol")))
                                .expect("response"),
                        );
                    }
                    let upgrade = hyper::upgrade::on(&mut request);
                    tokio::spawn(async move {
                        let mut io = TokioIo::new(upgrade.await.expect("upgraded"));
                        let mut buf = [0u8; 5];
                        io.read_exact(&mut buf).await.expect("read");
                        io.write_all(&buf).await.expect("echo");
                    });
                    Ok(http::Response::builder()
                        .status(101)
                        .header("connection", "Upgrade")
                        .header("upgrade", "SPDY/3.1")
                        .header("x-stream-protocol-version", "v4.channel.k8s.io")
                        .body(http_body_util::Full::new(Bytes::new()))
                        .expect("response"))
                },
            );
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(far), service)
                .with_upgrades()
                .await
                .expect("serve");
        });
        let mut headers = http::HeaderMap::new();
        headers.insert("connection", "Upgrade".parse().expect("value"));
        headers.insert("upgrade", "SPDY/3.1".parse().expect("value"));
        headers.append(
            "x-stream-protocol-version",
            "v4.channel.k8s.io".parse().expect("value"),
        );
        headers.append(
            "x-stream-protocol-version",
            "v3.channel.k8s.io".parse().expect("value"),
        );
        headers.insert("authorization", "Bearer secret".parse().expect("value"));
        let Forwarded::Switched {
            headers: answer,
            upgraded,
        } = forward(near, &http::Method::POST, "far", "/exec/token", &headers)
            .await
            .expect("forward")
        else {
            panic!("refused");
        };
        assert_eq!(answer["x-stream-protocol-version"], "v4.channel.k8s.io");
        let mut io = TokioIo::new(upgraded);
        io.write_all(b"hello").await.expect("write");
        let mut echoed = [0u8; 5];
        io.read_exact(&mut echoed).await.expect("read");
        assert_eq!(&echoed, b"hello");

        let (near, far) = tokio::io::duplex(4096);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                |_request: http::Request<hyper::body::Incoming>| async move {
                    Ok::<_, std::convert::Infallible>(
                        http::Response::builder()
                            .status(400)
                            .header("content-type", "text/plain")
                            .body(http_body_util::Full::new(Bytes::from("bad request")))
                            .expect("response"),
                    )
                },
            );
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(far), service)
                .await;
        });
        let Forwarded::Refused { status, body, .. } =
            forward(near, &http::Method::GET, "far", "/exec/token", &headers)
                .await
                .expect("forward")
        else {
            panic!("switched");
        };
        assert_eq!((status.as_u16(), &body[..]), (400, &b"bad request"[..]));
    }
}
