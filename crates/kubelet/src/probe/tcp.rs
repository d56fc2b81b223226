//! TCP socket probes (upstream `pkg/probe/tcp`): a connect to the port, passing if it is
//! accepted; and the dialing HTTP and gRPC probes share, with Go's wording of its errors.

use std::time::Duration;

use k8s_openapi::api::core::v1::TCPSocketAction;

use super::{resolve_port, ProbeResult, ProbeTarget};

/// `host:port`, with brackets around an IPv6 host (Go's `net.JoinHostPort`).
pub(super) fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A connect error as Go words it (`connect: connection refused`): the OS's message in lower
/// case, without Rust's `(os error N)`.
fn connect_error(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    };
    let mut chars = text.chars();
    let lowered = match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    };
    if e.raw_os_error().is_some() {
        format!("connect: {lowered}")
    } else {
        lowered
    }
}

/// Why a dial failed, worded like Go's `*net.OpError` (`dial tcp <addr>: ...`).
#[derive(Debug, thiserror::Error)]
pub(super) enum DialError {
    /// The connect was refused or failed (`connect: connection refused`).
    #[error("dial tcp {addr}: {}", connect_error(source))]
    Connect {
        /// `host:port` as dialed.
        addr: String,
        /// The OS's error.
        #[source]
        source: std::io::Error,
    },
    /// No answer within the timeout.
    #[error("dial tcp {addr}: i/o timeout")]
    Timeout {
        /// `host:port` as dialed.
        addr: String,
    },
}

/// Connects like Go's `net.Dialer` with a timeout.
pub(super) async fn dial(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<tokio::net::TcpStream, DialError> {
    let addr = join_host_port(host, port);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((bare, port))).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(source)) => Err(DialError::Connect { addr, source }),
        Err(_) => Err(DialError::Timeout { addr }),
    }
}

pub(super) async fn tcp_probe(
    tcp: &TCPSocketAction,
    target: &ProbeTarget<'_>,
    timeout: Duration,
) -> ProbeResult {
    let port = match resolve_port(&tcp.port, target.container) {
        Ok(port) => port,
        Err(e) => return ProbeResult::Unknown(e.to_string()),
    };
    let host = tcp
        .host
        .as_deref()
        .filter(|h| !h.is_empty())
        .unwrap_or(target.pod_ip);
    match dial(host, port, timeout).await {
        Ok(_stream) => ProbeResult::Success,
        Err(e) => ProbeResult::Failure(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::probe::testing::*;
    use crate::probe::{probe_once, ProbeResult, ProbeTarget};
    use crate::runtime::FakeRuntime;

    #[tokio::test]
    async fn tcp_probe() {
        let fake = FakeRuntime::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let c =
            container(json!({"name": "app", "ports": [{"name": "tcp", "containerPort": port}]}));
        let t = target(&fake, "c", &c);
        let by_name = probe(json!({"tcpSocket": {"port": "tcp"}}));
        assert_eq!(probe_once(&by_name, &t).await, ProbeResult::Success);
        let explicit_host = probe(json!({"tcpSocket": {"port": port, "host": "127.0.0.1"}}));
        let elsewhere = ProbeTarget {
            pod_ip: "192.0.2.1",
            ..t
        };
        assert_eq!(
            probe_once(&explicit_host, &elsewhere).await,
            ProbeResult::Success
        );
        assert_eq!(
            probe_once(&probe(json!({"tcpSocket": {"port": closed}})), &t).await,
            ProbeResult::Failure(format!(
                "dial tcp 127.0.0.1:{closed}: connect: connection refused"
            ))
        );
        assert_eq!(
            probe_once(&probe(json!({"tcpSocket": {"port": "nope"}})), &t).await,
            ProbeResult::Unknown("port nope not found".into())
        );
        drop(listener);
    }
}
