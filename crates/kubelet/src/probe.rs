//! Container probes (liveness, readiness, startup), as upstream's prober (`pkg/kubelet/prober`
//! and `pkg/probe`) runs them.
//!
//! Three layers, from the edge inwards:
//!
//! - [`probe_once`]: one attempt of a probe against one container: an exec through
//!   [`Runtime::exec_sync`], an HTTP/1.1 GET, a TCP connect or a gRPC health check, each bounded
//!   by `timeoutSeconds` and answering with upstream's messages.
//! - [`ProbeState`] and [`should_probe`]: the pure bookkeeping of upstream's prober worker:
//!   the initial result per kind, consecutive results against `successThreshold` and
//!   `failureThreshold`, the hold after a liveness or startup failure, `initialDelaySeconds`,
//!   and the startup probe gating the other two. Tested by tables.
//! - [`ProbeManager`]: one tokio task per (pod, container, kind) probing every `periodSeconds`
//!   on tokio time, publishing results the pod worker reads ([`ProbeManager::readiness`],
//!   [`ProbeManager::startup`], [`ProbeManager::liveness_failed`]), recording upstream's
//!   `Unhealthy` events, and sending the pod's uid on a channel whenever a result changes.
//!
//! Results belong to one container *instance* (its runtime id): a restarted container starts
//! over from the initial values, as upstream's results cache is keyed by container id.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use ferry_client::events::{self, EventType, Recorder};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container, ExecAction, GRPCAction, HTTPGetAction, Pod, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use parking_lot::Mutex;
use tokio::sync::{mpsc, Notify};
use tokio::task::AbortHandle;

use crate::runtime::Runtime;

/// The `User-Agent` of HTTP and gRPC probes (upstream: `kube-probe/<major>.<minor>`).
pub const USER_AGENT: &str = "kube-probe/1.33";

/// How much of an exec probe's output or an HTTP probe's body is kept (upstream: 10 KiB).
pub const MAX_OUTPUT: usize = 10 * 1024;

/// How many times an attempt that errored (as opposed to failed) is repeated at once
/// (upstream's `maxProbeRetries`).
const MAX_RETRIES: usize = 3;

/// How many same-host redirects an HTTP probe follows (Go's HTTP client default).
const MAX_REDIRECTS: usize = 10;

/// The three probes a container can declare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// `livenessProbe`: failing it gets the container killed and restarted.
    Liveness,
    /// `readinessProbe`: the container is Ready only while it passes.
    Readiness,
    /// `startupProbe`: holds the other two back until it passes; failing it is like failing
    /// liveness.
    Startup,
}

impl ProbeKind {
    /// All three, in the order workers are started.
    pub const ALL: [ProbeKind; 3] = [
        ProbeKind::Startup,
        ProbeKind::Liveness,
        ProbeKind::Readiness,
    ];

    /// The word upstream's event messages start with (`Liveness probe failed: ...`).
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }

    /// The container's probe of this kind, if it declares one.
    pub fn spec(self, container: &Container) -> Option<&Probe> {
        match self {
            ProbeKind::Liveness => container.liveness_probe.as_ref(),
            ProbeKind::Readiness => container.readiness_probe.as_ref(),
            ProbeKind::Startup => container.startup_probe.as_ref(),
        }
    }

    /// The result a new container instance starts with (upstream worker's `initialValue`):
    /// not ready, alive, and not yet started (unknown).
    pub fn initial_result(self) -> Option<bool> {
        match self {
            ProbeKind::Readiness => Some(false),
            ProbeKind::Liveness => Some(true),
            ProbeKind::Startup => None,
        }
    }
}

/// The outcome of one probe attempt (upstream's `probe.Result` with its output).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    /// The probe passed.
    Success,
    /// The probe passed with a remark: an HTTP probe answered by a redirect to another host
    /// (or one we do not follow). Counts as success; recorded as a `ProbeWarning` event.
    Warning(String),
    /// The probe failed, with upstream's message (the command's output, `HTTP probe failed with
    /// statuscode: 500`, `dial tcp ...: connect: connection refused`, ...).
    Failure(String),
    /// The probe could not be run (the runtime's error, an unknown named port, an unsupported
    /// scheme). Upstream retries at once and then throws the attempt away: it counts neither
    /// way.
    Unknown(String),
}

impl ProbeResult {
    /// `Some(true)` for a success or warning, `Some(false)` for a failure, `None` if unknown.
    pub fn passed(&self) -> Option<bool> {
        match self {
            ProbeResult::Success | ProbeResult::Warning(_) => Some(true),
            ProbeResult::Failure(_) => Some(false),
            ProbeResult::Unknown(_) => None,
        }
    }
}

/// What a probe attempt runs against.
#[derive(Clone, Copy)]
pub struct ProbeTarget<'a> {
    /// The pod's IP: the default host of HTTP and TCP probes, the host of gRPC probes.
    pub pod_ip: &'a str,
    /// The container's runtime id (for exec probes).
    pub container_id: &'a str,
    /// The container's spec: named ports, and the env exec commands expand `$(VAR)` from.
    pub container: &'a Container,
    /// The runtime exec probes run through.
    pub runtime: &'a dyn Runtime,
}

impl std::fmt::Debug for ProbeTarget<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeTarget")
            .field("pod_ip", &self.pod_ip)
            .field("container_id", &self.container_id)
            .field("container", &self.container.name)
            .finish_non_exhaustive()
    }
}

/// `timeoutSeconds`, defaulted (1) and at least one second.
pub fn probe_timeout(probe: &Probe) -> Duration {
    Duration::from_secs(positive(probe.timeout_seconds, 1))
}

/// `periodSeconds`, defaulted (10) and at least one second.
pub fn probe_period(probe: &Probe) -> Duration {
    Duration::from_secs(positive(probe.period_seconds, 10))
}

fn positive(value: Option<i32>, default: u64) -> u64 {
    match value {
        Some(v) if v > 0 => u64::from(v.unsigned_abs()),
        _ => default,
    }
}

/// One attempt of `probe` against `target`, bounded by its `timeoutSeconds`. A probe with no
/// handler is [`ProbeResult::Unknown`].
pub async fn probe_once(probe: &Probe, target: &ProbeTarget<'_>) -> ProbeResult {
    let timeout = probe_timeout(probe);
    if let Some(exec) = &probe.exec {
        return exec_probe(exec, target, timeout).await;
    }
    if let Some(http) = &probe.http_get {
        return http_probe(http, target, timeout).await;
    }
    if let Some(tcp) = &probe.tcp_socket {
        return tcp_probe(tcp, target, timeout).await;
    }
    if let Some(grpc) = &probe.grpc {
        return grpc_probe(grpc, target, timeout).await;
    }
    ProbeResult::Unknown("missing probe handler".to_string())
}

// ---- exec ----------------------------------------------------------------------------------

async fn exec_probe(exec: &ExecAction, target: &ProbeTarget<'_>, timeout: Duration) -> ProbeResult {
    // Upstream's ExpandContainerCommandOnlyStatic: only literal env values; a variable set
    // from a source expands to "".
    let env = target.container.env.as_deref().unwrap_or_default();
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|var| var.name == name)
            .map(|var| var.value.clone().unwrap_or_default())
    };
    let cmd: Vec<String> = exec
        .command
        .iter()
        .flatten()
        .map(|arg| crate::podconfig::expand(arg, &lookup))
        .collect();
    let joined = cmd.join(" ");
    match target
        .runtime
        .exec_sync(target.container_id, cmd, timeout)
        .await
    {
        Ok(result) => {
            // kuberuntime's RunInContainer: stdout, then stderr.
            let mut output = result.stdout;
            output.extend_from_slice(&result.stderr);
            output.truncate(MAX_OUTPUT);
            let output = String::from_utf8_lossy(&output).into_owned();
            if result.exit_code == 0 {
                ProbeResult::Success
            } else {
                ProbeResult::Failure(output)
            }
        }
        Err(e) if e.is_deadline_exceeded() => {
            ProbeResult::Failure(format!("command {joined:?} timed out"))
        }
        Err(e) => ProbeResult::Unknown(e.to_string()),
    }
}

// ---- ports and addresses -------------------------------------------------------------------

/// Upstream's `ResolveContainerPort`: a number, or the name of one of the container's ports
/// (falling back to a number written as a string); 1..=65535.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(name) => {
            let named = container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| i64::from(p.container_port));
            match named {
                Some(n) => n,
                None => name
                    .parse::<i64>()
                    .map_err(|_| format!("port {name} not found"))?,
            }
        }
    };
    u16::try_from(number)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("invalid port number: {number}"))
}

/// `host:port`, with brackets around an IPv6 host (Go's `net.JoinHostPort`).
fn join_host_port(host: &str, port: u16) -> String {
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

/// Connects like Go's `net.Dialer` with a timeout; errors are worded like its `*net.OpError`.
async fn dial(host: &str, port: u16, timeout: Duration) -> Result<tokio::net::TcpStream, String> {
    let addr = join_host_port(host, port);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((bare, port))).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(format!("dial tcp {addr}: {}", connect_error(&e))),
        Err(_) => Err(format!("dial tcp {addr}: i/o timeout")),
    }
}

// ---- tcpSocket -----------------------------------------------------------------------------

async fn tcp_probe(
    tcp: &TCPSocketAction,
    target: &ProbeTarget<'_>,
    timeout: Duration,
) -> ProbeResult {
    let port = match resolve_port(&tcp.port, target.container) {
        Ok(port) => port,
        Err(e) => return ProbeResult::Unknown(e),
    };
    let host = tcp
        .host
        .as_deref()
        .filter(|h| !h.is_empty())
        .unwrap_or(target.pod_ip);
    match dial(host, port, timeout).await {
        Ok(_stream) => ProbeResult::Success,
        Err(e) => ProbeResult::Failure(e),
    }
}

// ---- httpGet -------------------------------------------------------------------------------

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
fn http_url(http: &HTTPGetAction, target: &ProbeTarget<'_>) -> Result<Url, String> {
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

/// The request headers of an HTTP probe: the probe's own, then `User-Agent` and `Accept` unless
/// it set them (an empty `Accept` removes it), and `Connection: close` (upstream disables
/// keep-alives).
fn http_headers(http: &HTTPGetAction) -> Result<hyper::HeaderMap, String> {
    use hyper::header::{self, HeaderName, HeaderValue};
    let mut headers = hyper::HeaderMap::new();
    for h in http.http_headers.iter().flatten() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| format!("net/http: invalid header field name {:?}", h.name))?;
        let value = HeaderValue::from_str(&h.value)
            .map_err(|_| format!("net/http: invalid header field value for {:?}", h.name))?;
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

/// One GET on a fresh connection; errors are the text after Go's `Get "<url>": `.
async fn http_get(
    url: &Url,
    headers: &hyper::HeaderMap,
    timeout: Duration,
) -> Result<Response, String> {
    let stream = dial(&url.host, url.port, timeout).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    let _connection = AbortOnDrop(tokio::spawn(connection).abort_handle());
    let mut request = hyper::Request::get(url.path_and_query.as_str())
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    *request.headers_mut() = headers.clone();
    if !request.headers().contains_key(hyper::header::HOST) {
        let host = hyper::header::HeaderValue::from_str(&join_host_port(&url.host, url.port))
            .map_err(|e| e.to_string())?;
        request.headers_mut().insert(hyper::header::HOST, host);
    }
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
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
            Some(Err(e)) => return Err(e.to_string()),
            None => break,
        }
    }
    Ok(Response {
        status,
        location,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

async fn http_probe(
    http: &HTTPGetAction,
    target: &ProbeTarget<'_>,
    timeout: Duration,
) -> ProbeResult {
    let mut url = match http_url(http, target) {
        Ok(url) => url,
        Err(e) => return ProbeResult::Unknown(e),
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

// ---- grpc ----------------------------------------------------------------------------------

/// A codec for messages we encode by hand: the health check's are one field each.
#[derive(Clone, Copy, Debug, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        Ok(Some(bytes.to_vec()))
    }
}

/// `grpc.health.v1.HealthCheckRequest { service }` in protobuf wire format.
fn health_check_request(service: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(service.len() + 6);
    if !service.is_empty() {
        out.push(0x0a); // field 1, length-delimited
        let mut len = service.len();
        while len >= 0x80 {
            out.push((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend_from_slice(service.as_bytes());
    }
    out
}

/// The `status` (field 1, an enum) of a `grpc.health.v1.HealthCheckResponse`; 0 (UNKNOWN)
/// when absent. Other fields are skipped.
fn health_check_status(mut msg: &[u8]) -> Result<u64, String> {
    fn varint(msg: &mut &[u8]) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = msg
                .split_first()
                .ok_or_else(|| "truncated health response".to_string())?;
            *msg = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("bad varint in health response".to_string())
    }
    let mut status = 0;
    while !msg.is_empty() {
        let key = varint(&mut msg)?;
        match key & 7 {
            0 => {
                let value = varint(&mut msg)?;
                if key >> 3 == 1 {
                    status = value;
                }
            }
            1 => msg = msg.get(8..).ok_or("truncated health response")?,
            2 => {
                let len = usize::try_from(varint(&mut msg)?).map_err(|e| e.to_string())?;
                msg = msg.get(len..).ok_or("truncated health response")?;
            }
            5 => msg = msg.get(4..).ok_or("truncated health response")?,
            _ => return Err("bad wire type in health response".to_string()),
        }
    }
    Ok(status)
}

fn health_status_name(status: u64) -> String {
    match status {
        0 => "UNKNOWN".to_string(),
        1 => "SERVING".to_string(),
        2 => "NOT_SERVING".to_string(),
        3 => "SERVICE_UNKNOWN".to_string(),
        n => n.to_string(),
    }
}

/// Go's `%v` of a whole-second `time.Duration`.
fn go_duration(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

async fn grpc_probe(grpc: &GRPCAction, target: &ProbeTarget<'_>, timeout: Duration) -> ProbeResult {
    let port = match u16::try_from(grpc.port).ok().filter(|p| *p > 0) {
        Some(port) => port,
        None => return ProbeResult::Unknown(format!("invalid port number: {}", grpc.port)),
    };
    let service = grpc.service.as_deref().unwrap_or_default();
    let addr = join_host_port(target.pod_ip, port);
    let deadline = tokio::time::Instant::now() + timeout;
    let endpoint = match tonic::transport::Endpoint::from_shared(format!("http://{addr}")) {
        Ok(endpoint) => endpoint,
        Err(e) => return ProbeResult::Unknown(e.to_string()),
    };
    let endpoint = endpoint
        .user_agent(USER_AGENT)
        .map(|e| e.connect_timeout(timeout));
    let endpoint = match endpoint {
        Ok(endpoint) => endpoint,
        Err(e) => return ProbeResult::Unknown(e.to_string()),
    };
    let channel = match tokio::time::timeout(timeout, endpoint.connect()).await {
        Ok(Ok(channel)) => channel,
        Ok(Err(e)) => {
            let source = std::error::Error::source(&e)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            return ProbeResult::Failure(format!(
                "error: failed to connect service at {addr:?}: {e}{source}"
            ));
        }
        Err(_) => {
            return ProbeResult::Failure(format!(
                "timeout: failed to connect service {addr:?} within {}: context deadline exceeded",
                go_duration(timeout)
            ))
        }
    };
    let mut client = tonic::client::Grpc::new(channel);
    let call = async {
        client
            .ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let path =
            tonic::codegen::http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/Check");
        client
            .unary(
                tonic::Request::new(health_check_request(service)),
                path,
                RawCodec,
            )
            .await
    };
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let response = match tokio::time::timeout(left, call).await {
        Ok(Ok(response)) => response.into_inner(),
        Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => {
            return ProbeResult::Failure(format!(
                "error: this server does not implement the grpc health protocol \
                 (grpc.health.v1.Health): {}",
                status.message()
            ))
        }
        Ok(Err(status)) if status.code() == tonic::Code::DeadlineExceeded => {
            return ProbeResult::Failure(format!(
                "timeout: health rpc did not complete within {}",
                go_duration(timeout)
            ))
        }
        Ok(Err(status)) => {
            return ProbeResult::Failure(format!(
                "error: health rpc probe failed: rpc error: code = {:?} desc = {}",
                status.code(),
                status.message()
            ))
        }
        Err(_) => {
            return ProbeResult::Failure(format!(
                "timeout: health rpc did not complete within {}",
                go_duration(timeout)
            ))
        }
    };
    match health_check_status(&response) {
        Ok(1) => ProbeResult::Success,
        Ok(status) => ProbeResult::Failure(format!(
            "service unhealthy (responded with {:?})",
            health_status_name(status)
        )),
        Err(e) => ProbeResult::Failure(format!("error: health rpc probe failed: {e}")),
    }
}

// ---- thresholds ----------------------------------------------------------------------------

/// Whether a worker probes at this tick (the gates of upstream's `doProbe`, in its order):
/// not before `initialDelaySeconds` have passed since the container started (whole seconds);
/// the startup probe only until the container has started, the other two only after.
/// `started` is true when the container has no startup probe or passed it.
pub fn should_probe(kind: ProbeKind, probe: &Probe, since_start: Duration, started: bool) -> bool {
    let initial_delay = u64::from(
        probe
            .initial_delay_seconds
            .unwrap_or(0)
            .max(0)
            .unsigned_abs(),
    );
    if since_start.as_secs() < initial_delay {
        return false;
    }
    match kind {
        ProbeKind::Startup => !started,
        ProbeKind::Liveness | ProbeKind::Readiness => started,
    }
}

/// One container instance's result for one probe kind, as upstream's prober worker keeps it:
/// the published result starts at the kind's [initial value](ProbeKind::initial_result) and
/// changes only after `successThreshold` consecutive successes (default 1; always 1 for
/// liveness and startup) or `failureThreshold` consecutive failures (default 3). After a
/// published liveness or startup failure the state is on hold: the container is about to be
/// killed, and a new instance gets a new state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeState {
    kind: ProbeKind,
    success_threshold: u32,
    failure_threshold: u32,
    /// The published result: `Some(true)` success, `Some(false)` failure, `None` unknown.
    result: Option<bool>,
    /// The last attempt's outcome and how many times in a row it came out so.
    last: Option<bool>,
    run: u32,
    on_hold: bool,
}

impl ProbeState {
    /// A new container instance's state for `kind` with `probe`'s thresholds.
    pub fn new(kind: ProbeKind, probe: &Probe) -> ProbeState {
        let success_threshold = match kind {
            ProbeKind::Readiness => positive(probe.success_threshold, 1),
            ProbeKind::Liveness | ProbeKind::Startup => 1,
        };
        ProbeState {
            kind,
            success_threshold: u32::try_from(success_threshold).unwrap_or(u32::MAX),
            failure_threshold: u32::try_from(positive(probe.failure_threshold, 3))
                .unwrap_or(u32::MAX),
            result: kind.initial_result(),
            last: None,
            run: 0,
            on_hold: false,
        }
    }

    /// The published result: `Some(true)` success, `Some(false)` failure, `None` not known yet
    /// (a startup probe before its first verdict).
    pub fn result(&self) -> Option<bool> {
        self.result
    }

    /// Whether probing is on hold until a new container instance (after a published liveness
    /// or startup failure).
    pub fn on_hold(&self) -> bool {
        self.on_hold
    }

    /// Counts one attempt (`true`: success or warning, `false`: failure); returns whether the
    /// published result changed. Ignored while on hold.
    pub fn observe(&mut self, success: bool) -> bool {
        if self.on_hold {
            return false;
        }
        if self.last == Some(success) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(success);
            self.run = 1;
        }
        let threshold = if success {
            self.success_threshold
        } else {
            self.failure_threshold
        };
        if self.run < threshold {
            return false;
        }
        let changed = self.result != Some(success);
        self.result = Some(success);
        if !success && matches!(self.kind, ProbeKind::Liveness | ProbeKind::Startup) {
            self.on_hold = true;
            self.run = 0;
        }
        changed
    }
}

// ---- manager -------------------------------------------------------------------------------

/// Runs the probes of the containers on this node; see the module docs.
///
/// Workers are tokio tasks on the runtime [`ProbeManager::sync_container`] is called on; they
/// are aborted by [`ProbeManager::remove_container`], [`ProbeManager::remove_pod`], a new
/// container instance, or dropping the manager.
pub struct ProbeManager {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ProbeManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeManager")
            .field("containers", &self.shared.containers.lock().len())
            .finish_non_exhaustive()
    }
}

struct Shared {
    runtime: Arc<dyn Runtime>,
    recorder: Recorder,
    on_change: mpsc::UnboundedSender<String>,
    /// (pod uid, container name) -> the current instance's probes. Workers lock it briefly to
    /// read their inputs and publish results, never across an await.
    containers: Mutex<HashMap<(String, String), Instance>>,
}

/// One container instance's probe results and workers.
struct Instance {
    container_id: String,
    /// The latest pod and IP the pod worker gave (a deletion timestamp quiets liveness).
    pod: Arc<Pod>,
    pod_ip: String,
    has_startup_probe: bool,
    liveness: Option<bool>,
    readiness: Option<bool>,
    startup: Option<bool>,
    workers: Vec<Worker>,
}

impl Instance {
    fn result_mut(&mut self, kind: ProbeKind) -> &mut Option<bool> {
        match kind {
            ProbeKind::Liveness => &mut self.liveness,
            ProbeKind::Readiness => &mut self.readiness,
            ProbeKind::Startup => &mut self.startup,
        }
    }

    fn started(&self) -> bool {
        !self.has_startup_probe || self.startup == Some(true)
    }

    fn stop(&self) {
        for worker in &self.workers {
            worker.task.abort();
        }
    }
}

struct Worker {
    kind: ProbeKind,
    task: AbortHandle,
    /// Makes the worker probe now rather than at its next tick.
    trigger: Arc<Notify>,
}

/// What a worker needs that does not change for its container instance.
struct WorkerSpec {
    uid: String,
    container: Container,
    container_id: String,
    kind: ProbeKind,
    probe: Probe,
    /// The container's start on tokio's clock.
    started_at: tokio::time::Instant,
    field_path: String,
}

impl ProbeManager {
    /// A manager probing through `runtime`, recording events with `recorder` (the kubelet's,
    /// source `kubelet` on this node), and sending a pod's uid on `on_change` whenever one of
    /// its containers' probe results changes.
    pub fn new(
        runtime: Arc<dyn Runtime>,
        recorder: Recorder,
        on_change: mpsc::UnboundedSender<String>,
    ) -> ProbeManager {
        ProbeManager {
            shared: Arc::new(Shared {
                runtime,
                recorder,
                on_change,
                containers: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Tells the manager that `container_name` of `pod` runs as `container_id`, started at
    /// `started_at` (a `Timestamp`, or `None` if unknown: counted from now), with the pod at
    /// `pod_ip`. A new instance (the first, or a new id) gets
    /// fresh results at their initial values and a worker per probe it declares; the previous
    /// instance's workers stop. The same instance again only refreshes the pod and IP.
    /// Must be called within a tokio runtime. Does not send on `on_change` (the caller is the
    /// one who would be told).
    pub fn sync_container(
        &self,
        pod: &Pod,
        container_name: &str,
        container_id: &str,
        started_at: impl Into<Option<Timestamp>>,
        pod_ip: &str,
    ) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let key = (uid.clone(), container_name.to_string());
        let Some((container, field_path)) = find_container(pod, container_name) else {
            self.remove_container(&uid, container_name);
            return;
        };
        let mut containers = self.shared.containers.lock();
        if let Some(instance) = containers.get_mut(&key) {
            if instance.container_id == container_id {
                instance.pod = Arc::new(pod.clone());
                instance.pod_ip = pod_ip.to_string();
                return;
            }
            instance.stop();
        }
        // The container's age by the wall clock, carried over to tokio's clock so workers
        // (and tests on paused time) measure the initial delay with tokio::time.
        let age = started_at
            .into()
            .and_then(|t| Timestamp::now().duration_since(t).try_into().ok())
            .unwrap_or(Duration::ZERO);
        let now = tokio::time::Instant::now();
        let started = now.checked_sub(age).unwrap_or(now);
        let mut instance = Instance {
            container_id: container_id.to_string(),
            pod: Arc::new(pod.clone()),
            pod_ip: pod_ip.to_string(),
            has_startup_probe: container.startup_probe.is_some(),
            liveness: None,
            readiness: None,
            startup: None,
            workers: Vec::new(),
        };
        for kind in ProbeKind::ALL {
            let Some(probe) = kind.spec(container) else {
                continue;
            };
            *instance.result_mut(kind) = kind.initial_result();
            let trigger = Arc::new(Notify::new());
            let spec = WorkerSpec {
                uid: uid.clone(),
                container: container.clone(),
                container_id: container_id.to_string(),
                kind,
                probe: probe.clone(),
                started_at: started,
                field_path: field_path.clone(),
            };
            let task = tokio::spawn(run_worker(self.shared.clone(), spec, trigger.clone()));
            instance.workers.push(Worker {
                kind,
                task: task.abort_handle(),
                trigger,
            });
        }
        containers.insert(key, instance);
    }

    /// The readiness result of the container's current instance: `None` without a readiness
    /// probe (a running container is then ready once started), else `Some(false)` until it
    /// passes.
    pub fn readiness(&self, uid: &str, container_name: &str) -> Option<bool> {
        self.get(uid, container_name, |i| i.readiness)
    }

    /// The startup result of the container's current instance: `None` without a startup probe
    /// or before its verdict, `Some(true)` once it passed, `Some(false)` once it failed past
    /// its threshold.
    pub fn startup(&self, uid: &str, container_name: &str) -> Option<bool> {
        self.get(uid, container_name, |i| i.startup)
    }

    /// Which probe says instance `container_id` must be killed and restarted: liveness failed
    /// past its threshold, or startup did. `None` if neither (or for another instance).
    pub fn failed_probe(
        &self,
        uid: &str,
        container_name: &str,
        container_id: &str,
    ) -> Option<ProbeKind> {
        let containers = self.shared.containers.lock();
        let instance = containers.get(&(uid.to_string(), container_name.to_string()))?;
        if instance.container_id != container_id {
            return None;
        }
        if instance.liveness == Some(false) {
            Some(ProbeKind::Liveness)
        } else if instance.startup == Some(false) {
            Some(ProbeKind::Startup)
        } else {
            None
        }
    }

    /// Whether instance `container_id` failed its liveness or startup probe and must be
    /// restarted (upstream's messages: `Container <name> failed liveness probe` /
    /// `failed startup probe`; see [`ProbeManager::failed_probe`] for which).
    pub fn liveness_failed(&self, uid: &str, container_name: &str, container_id: &str) -> bool {
        self.failed_probe(uid, container_name, container_id)
            .is_some()
    }

    /// Stops the container's workers and forgets its results.
    pub fn remove_container(&self, uid: &str, container_name: &str) {
        let removed = self
            .shared
            .containers
            .lock()
            .remove(&(uid.to_string(), container_name.to_string()));
        if let Some(instance) = removed {
            instance.stop();
        }
    }

    /// Stops every worker of the pod and forgets its results.
    pub fn remove_pod(&self, uid: &str) {
        let mut containers = self.shared.containers.lock();
        containers.retain(|(pod, _), instance| {
            if pod == uid {
                instance.stop();
                false
            } else {
                true
            }
        });
    }

    /// The (container name, kind) of every running worker of the pod, sorted.
    pub fn workers(&self, uid: &str) -> Vec<(String, ProbeKind)> {
        let containers = self.shared.containers.lock();
        let mut workers: Vec<(String, ProbeKind)> = containers
            .iter()
            .filter(|((pod, _), _)| pod == uid)
            .flat_map(|((_, name), instance)| {
                instance
                    .workers
                    .iter()
                    .filter(|w| !w.task.is_finished())
                    .map(move |w| (name.clone(), w.kind))
            })
            .collect();
        workers.sort_by_key(|(name, kind)| (name.clone(), *kind as u8));
        workers
    }

    fn get(&self, uid: &str, name: &str, f: impl Fn(&Instance) -> Option<bool>) -> Option<bool> {
        let containers = self.shared.containers.lock();
        containers
            .get(&(uid.to_string(), name.to_string()))
            .and_then(f)
    }
}

impl Drop for ProbeManager {
    fn drop(&mut self) {
        for instance in self.shared.containers.lock().values() {
            instance.stop();
        }
    }
}

/// The container named `name` (a regular container, or an init container: only restartable
/// ones may have probes) and its event field path.
fn find_container<'a>(pod: &'a Pod, name: &str) -> Option<(&'a Container, String)> {
    let spec = pod.spec.as_ref()?;
    if let Some(c) = spec.containers.iter().find(|c| c.name == name) {
        return Some((c, format!("spec.containers{{{name}}}")));
    }
    spec.init_containers
        .iter()
        .flatten()
        .find(|c| c.name == name)
        .map(|c| (c, format!("spec.initContainers{{{name}}}")))
}

/// What a worker reads from the shared state at each tick.
struct Tick {
    pod: Arc<Pod>,
    pod_ip: String,
    started: bool,
}

impl Shared {
    /// The instance's current inputs, or `None` if this worker's instance is gone.
    fn tick(&self, spec: &WorkerSpec) -> Option<Tick> {
        let containers = self.containers.lock();
        let instance = containers.get(&(spec.uid.clone(), spec.container.name.clone()))?;
        if instance.container_id != spec.container_id {
            return None;
        }
        Some(Tick {
            pod: instance.pod.clone(),
            pod_ip: instance.pod_ip.clone(),
            started: instance.started(),
        })
    }

    /// Publishes a result for the worker's instance; on a change, tells the pod worker, and
    /// wakes the other probes when the container has just started.
    fn publish(&self, spec: &WorkerSpec, result: Option<bool>) {
        let mut containers = self.containers.lock();
        let Some(instance) = containers.get_mut(&(spec.uid.clone(), spec.container.name.clone()))
        else {
            return;
        };
        if instance.container_id != spec.container_id {
            return;
        }
        let slot = instance.result_mut(spec.kind);
        if *slot == result {
            return;
        }
        *slot = result;
        if spec.kind == ProbeKind::Startup && result == Some(true) {
            for worker in &instance.workers {
                if worker.kind != ProbeKind::Startup {
                    worker.trigger.notify_one();
                }
            }
        }
        drop(containers);
        let _ = self.on_change.send(spec.uid.clone());
    }

    fn event(&self, pod: &Pod, spec: &WorkerSpec, reason: &str, message: String) {
        let mut object = events::reference(pod);
        object.field_path = Some(spec.field_path.clone());
        self.recorder
            .event(object, EventType::Warning, reason, message);
    }
}

/// One probe worker: probes at once, then every period (or when triggered), until its
/// container instance is replaced or removed, or a liveness/startup verdict ends it.
async fn run_worker(shared: Arc<Shared>, spec: WorkerSpec, trigger: Arc<Notify>) {
    let mut state = ProbeState::new(spec.kind, &spec.probe);
    let mut ticker = tokio::time::interval(probe_period(&spec.probe));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = trigger.notified() => {}
        }
        let Some(tick) = shared.tick(&spec) else {
            return;
        };
        let kind = spec.kind;
        // Graceful deletion: liveness and startup stop with a last success, so a container
        // shutting down is not restarted.
        if tick.pod.metadata.deletion_timestamp.is_some()
            && matches!(kind, ProbeKind::Liveness | ProbeKind::Startup)
        {
            shared.publish(&spec, Some(true));
            return;
        }
        let since_start = tokio::time::Instant::now().saturating_duration_since(spec.started_at);
        if !should_probe(kind, &spec.probe, since_start, tick.started) {
            if kind == ProbeKind::Startup && tick.started {
                // Started: this instance needs no more startup probing.
                return;
            }
            continue;
        }
        let target = ProbeTarget {
            pod_ip: &tick.pod_ip,
            container_id: &spec.container_id,
            container: &spec.container,
            runtime: shared.runtime.as_ref(),
        };
        let mut result = probe_once(&spec.probe, &target).await;
        for _ in 1..MAX_RETRIES {
            if !matches!(result, ProbeResult::Unknown(_)) {
                break;
            }
            result = probe_once(&spec.probe, &target).await;
        }
        let passed = match &result {
            ProbeResult::Success => true,
            ProbeResult::Warning(output) => {
                let message = format!("{} probe warning: {output}", kind.as_str());
                shared.event(&tick.pod, &spec, "ProbeWarning", message);
                true
            }
            ProbeResult::Failure(output) => {
                let message = format!("{} probe failed: {output}", kind.as_str());
                shared.event(&tick.pod, &spec, "Unhealthy", message);
                false
            }
            ProbeResult::Unknown(error) => {
                // Upstream records it and throws the attempt away.
                let message = format!(
                    "{} probe errored and resulted in unknown state: {error}",
                    kind.as_str()
                );
                shared.event(&tick.pod, &spec, "Unhealthy", message);
                tracing::debug!(
                    pod = %spec.uid, container = %spec.container.name, %error, "probe errored"
                );
                continue;
            }
        };
        if state.observe(passed) {
            shared.publish(&spec, state.result());
        }
        if state.on_hold() {
            // The container is about to be killed; its next instance gets a new worker.
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::runtime::fake::Call;
    use crate::runtime::{image_spec, v1, ExecSyncResult, FakeRuntime, RuntimeError};

    fn probe(value: serde_json::Value) -> Probe {
        serde_json::from_value(value).expect("probe")
    }

    fn container(value: serde_json::Value) -> Container {
        serde_json::from_value(value).expect("container")
    }

    // ---- thresholds ----

    #[test]
    fn thresholds() {
        use ProbeKind::*;
        // (kind, successThreshold, failureThreshold, attempts, published result after each
        // attempt, on hold at the end)
        type Case = (
            ProbeKind,
            Option<i32>,
            Option<i32>,
            &'static str,
            Vec<Option<bool>>,
            bool,
        );
        let cases: Vec<Case> = vec![
            // Readiness starts not ready; one success (default threshold) flips it.
            (Readiness, None, None, "S", vec![Some(true)], false),
            // Three failures in a row (default) to become unready again.
            (
                Readiness,
                None,
                None,
                "SFFF",
                vec![Some(true), Some(true), Some(true), Some(false)],
                false,
            ),
            // A success in between resets the failure run.
            (Readiness, None, None, "SFFSFF", vec![Some(true); 6], false),
            // successThreshold 3.
            (
                Readiness,
                Some(3),
                Some(1),
                "SSSF",
                vec![Some(false), Some(false), Some(true), Some(false)],
                false,
            ),
            // Readiness never holds: it keeps probing after failing.
            (
                Readiness,
                None,
                Some(1),
                "FS",
                vec![Some(false), Some(true)],
                false,
            ),
            // Liveness starts alive; fails after failureThreshold and then holds.
            (
                Liveness,
                None,
                None,
                "FFFS",
                vec![Some(true), Some(true), Some(false), Some(false)],
                true,
            ),
            (
                Liveness,
                None,
                Some(2),
                "FSFF",
                vec![Some(true), Some(true), Some(true), Some(false)],
                true,
            ),
            // successThreshold is always 1 for liveness and startup.
            (Liveness, Some(5), Some(1), "S", vec![Some(true)], false),
            // Startup starts unknown.
            (Startup, Some(5), None, "FS", vec![None, Some(true)], false),
            (
                Startup,
                None,
                Some(2),
                "FFS",
                vec![None, Some(false), Some(false)],
                true,
            ),
        ];
        for (kind, success, failure, attempts, expected, hold) in cases {
            let spec = probe(json!({"successThreshold": success, "failureThreshold": failure}));
            let mut state = ProbeState::new(kind, &spec);
            assert_eq!(state.result(), kind.initial_result());
            let mut results = Vec::new();
            for attempt in attempts.chars() {
                let before = state.result();
                let changed = state.observe(attempt == 'S');
                assert_eq!(changed, before != state.result(), "{kind:?} {attempts}");
                results.push(state.result());
            }
            assert_eq!(
                results, expected,
                "{kind:?} {success:?} {failure:?} {attempts}"
            );
            assert_eq!(state.on_hold(), hold, "{kind:?} {attempts}");
        }
    }

    #[test]
    fn gating() {
        use ProbeKind::*;
        let delayed = probe(json!({"initialDelaySeconds": 5}));
        let now = probe(json!({}));
        // (kind, probe, seconds since start, started, probes)
        let cases = [
            (Liveness, &delayed, 4.9, true, false),
            (Liveness, &delayed, 5.0, true, true),
            (Readiness, &delayed, 5.5, true, true),
            (Readiness, &now, 0.0, true, true),
            // Not started yet: only the startup probe runs.
            (Readiness, &now, 30.0, false, false),
            (Liveness, &now, 30.0, false, false),
            (Startup, &now, 0.0, false, true),
            (Startup, &delayed, 1.0, false, false),
            // Started: the startup probe is done.
            (Startup, &now, 30.0, true, false),
        ];
        for (kind, spec, seconds, started, expected) in cases {
            assert_eq!(
                should_probe(kind, spec, Duration::from_secs_f64(seconds), started),
                expected,
                "{kind:?} {seconds} {started}"
            );
        }
        assert_eq!(probe_timeout(&now), Duration::from_secs(1));
        assert_eq!(probe_period(&now), Duration::from_secs(10));
        assert_eq!(
            probe_period(&probe(json!({"periodSeconds": 3}))),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn ports_resolve_by_number_or_name() {
        let c =
            container(json!({"name": "app", "ports": [{"name": "http", "containerPort": 8080}]}));
        let cases = [
            (IntOrString::Int(80), Ok(80)),
            (IntOrString::String("http".into()), Ok(8080)),
            (IntOrString::String("81".into()), Ok(81)),
            (
                IntOrString::String("metrics".into()),
                Err("port metrics not found".to_string()),
            ),
            (
                IntOrString::Int(0),
                Err("invalid port number: 0".to_string()),
            ),
            (
                IntOrString::Int(70000),
                Err("invalid port number: 70000".to_string()),
            ),
        ];
        for (port, expected) in cases {
            assert_eq!(resolve_port(&port, &c), expected, "{port:?}");
        }
    }

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
    fn grpc_health_messages() {
        assert_eq!(health_check_request(""), Vec::<u8>::new());
        assert_eq!(health_check_request("db"), vec![0x0a, 2, b'd', b'b']);
        let long = "s".repeat(200);
        assert_eq!(&health_check_request(&long)[..3], &[0x0a, 0xc8, 0x01]);
        assert_eq!(health_check_status(&[]), Ok(0));
        assert_eq!(health_check_status(&[0x08, 0x01]), Ok(1));
        // An unknown length-delimited field first, then status NOT_SERVING.
        assert_eq!(health_check_status(&[0x12, 0x01, 0xff, 0x08, 0x02]), Ok(2));
        assert!(health_check_status(&[0x08]).is_err());
    }

    // ---- probe_once ----

    /// A fake runtime with one running container named `app`; returns its id.
    async fn running(fake: &FakeRuntime, name: &str) -> String {
        fake.add_image("busybox");
        let sandbox_config = v1::PodSandboxConfig {
            metadata: Some(v1::PodSandboxMetadata {
                name: "p".into(),
                uid: "uid-1".into(),
                namespace: "default".into(),
                attempt: 0,
            }),
            ..Default::default()
        };
        let sandbox = match fake.sandbox_ids().first() {
            Some(id) => id.clone(),
            None => fake
                .run_pod_sandbox(sandbox_config.clone(), "")
                .await
                .expect("sandbox"),
        };
        let config = v1::ContainerConfig {
            metadata: Some(v1::ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(image_spec("busybox")),
            ..Default::default()
        };
        let id = fake
            .create_container(&sandbox, config, sandbox_config)
            .await
            .expect("create");
        fake.start_container(&id).await.expect("start");
        id
    }

    fn target<'a>(fake: &'a FakeRuntime, id: &'a str, container: &'a Container) -> ProbeTarget<'a> {
        ProbeTarget {
            pod_ip: "127.0.0.1",
            container_id: id,
            container,
            runtime: fake,
        }
    }

    fn exec_calls(fake: &FakeRuntime) -> Vec<(String, Vec<String>)> {
        fake.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::ExecSync { container_id, cmd } => Some((container_id, cmd)),
                _ => None,
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn exec_probe() {
        let fake = FakeRuntime::new();
        let id = running(&fake, "app").await;
        let c = container(json!({"name": "app", "env": [
            {"name": "FILE", "value": "/tmp/healthy"},
            {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
        ]}));
        let spec = probe(json!({"exec": {"command": ["cat", "$(FILE)", "$(SECRET)", "$(OTHER)"]}}));
        let t = target(&fake, &id, &c);

        assert_eq!(probe_once(&spec, &t).await, ProbeResult::Success);
        assert_eq!(
            exec_calls(&fake),
            vec![(
                id.clone(),
                vec![
                    "cat".into(),
                    "/tmp/healthy".into(),
                    "".into(),
                    "$(OTHER)".into()
                ]
            )]
        );

        fake.push_exec_result(
            &id,
            Ok(ExecSyncResult {
                exit_code: 1,
                stdout: b"out ".to_vec(),
                stderr: b"cat: can't open".to_vec(),
            }),
        );
        assert_eq!(
            probe_once(&spec, &t).await,
            ProbeResult::Failure("out cat: can't open".into())
        );
        fake.push_exec_result(
            &id,
            Ok(ExecSyncResult {
                exit_code: 2,
                stdout: vec![b'x'; 3 * MAX_OUTPUT],
                stderr: vec![],
            }),
        );
        match probe_once(&spec, &t).await {
            ProbeResult::Failure(output) => assert_eq!(output.len(), MAX_OUTPUT),
            other => panic!("{other:?}"),
        }

        // A command outliving timeoutSeconds.
        fake.set_exec_delay(&id, Duration::from_secs(5));
        let slow = probe(json!({"exec": {"command": ["sleep", "5"]}, "timeoutSeconds": 2}));
        let start = tokio::time::Instant::now();
        assert_eq!(
            probe_once(&slow, &t).await,
            ProbeResult::Failure("command \"sleep 5\" timed out".into())
        );
        assert_eq!(start.elapsed(), Duration::from_secs(2));

        // The runtime failing is not a probe failure.
        fake.push_exec_result(&id, Err(RuntimeError::Unavailable("down".into())));
        fake.set_exec_delay(&id, Duration::ZERO);
        assert_eq!(
            probe_once(&spec, &t).await,
            ProbeResult::Unknown("runtime unavailable: down".into())
        );
        let gone = target(&fake, "gone", &c);
        assert!(matches!(
            probe_once(&spec, &gone).await,
            ProbeResult::Unknown(_)
        ));
        assert!(matches!(
            probe_once(&probe(json!({})), &t).await,
            ProbeResult::Unknown(_)
        ));
    }

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

    #[tokio::test]
    async fn grpc_probe_without_server_fails() {
        let fake = FakeRuntime::new();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let c = container(json!({"name": "app"}));
        let t = target(&fake, "c", &c);
        match probe_once(&probe(json!({"grpc": {"port": closed}})), &t).await {
            ProbeResult::Failure(message) => assert!(
                message.starts_with(&format!(
                    "error: failed to connect service at \"127.0.0.1:{closed}\""
                )),
                "{message}"
            ),
            other => panic!("{other:?}"),
        }
    }

    // ---- manager ----

    struct Harness {
        fake: Arc<FakeRuntime>,
        manager: ProbeManager,
        changes: mpsc::UnboundedReceiver<String>,
        events: mpsc::Receiver<ferry_client::events::Record>,
    }

    fn harness() -> Harness {
        let fake = Arc::new(FakeRuntime::new());
        let (recorder, events) = Recorder::for_tests();
        let (tx, changes) = mpsc::unbounded_channel();
        let manager = ProbeManager::new(fake.clone(), recorder, tx);
        Harness {
            fake,
            manager,
            changes,
            events,
        }
    }

    fn pod(app: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "uid-1"},
            "spec": {"containers": [app]}
        }))
        .expect("pod")
    }

    fn exec(cmd: &str, extra: serde_json::Value) -> serde_json::Value {
        let mut p = json!({"exec": {"command": [cmd]}});
        if let (Some(p), Some(extra)) = (p.as_object_mut(), extra.as_object()) {
            p.extend(extra.clone());
        }
        p
    }

    async fn sleep(seconds: f64) {
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    }

    fn drain(changes: &mut mpsc::UnboundedReceiver<String>) -> usize {
        let mut n = 0;
        while changes.try_recv().is_ok() {
            n += 1;
        }
        n
    }

    #[tokio::test(start_paused = true)]
    async fn readiness_flips_after_success_threshold() {
        let mut h = harness();
        let id = running(&h.fake, "app").await;
        let p = pod(json!({"name": "app", "readinessProbe":
        exec("ready", json!({
            "periodSeconds": 10, "successThreshold": 2, "failureThreshold": 2
        }))}));
        h.manager
            .sync_container(&p, "app", &id, Timestamp::now(), "10.42.0.2");
        assert_eq!(h.manager.readiness("uid-1", "app"), Some(false));
        assert_eq!(h.manager.startup("uid-1", "app"), None);
        assert_eq!(
            h.manager.workers("uid-1"),
            vec![("app".to_string(), ProbeKind::Readiness)]
        );

        sleep(1.0).await; // probed at 0: one success
        assert_eq!(exec_calls(&h.fake).len(), 1);
        assert_eq!(h.manager.readiness("uid-1", "app"), Some(false));
        sleep(10.0).await; // probed at 10: two
        assert_eq!(h.manager.readiness("uid-1", "app"), Some(true));
        assert_eq!(h.changes.try_recv().ok().as_deref(), Some("uid-1"));
        assert_eq!(drain(&mut h.changes), 0);

        h.fake.set_exec_result(
            "app",
            Ok(ExecSyncResult {
                exit_code: 1,
                stdout: b"not yet".to_vec(),
                stderr: vec![],
            }),
        );
        sleep(10.0).await; // 20: one failure
        assert_eq!(h.manager.readiness("uid-1", "app"), Some(true));
        sleep(10.0).await; // 30: two
        assert_eq!(h.manager.readiness("uid-1", "app"), Some(false));
        assert_eq!(drain(&mut h.changes), 1);
        let event = h.events.try_recv().expect("event");
        assert_eq!(event.reason, "Unhealthy");
        assert_eq!(event.message, "Readiness probe failed: not yet");
        assert_eq!(event.event_type, EventType::Warning);
        assert_eq!(
            event.involved_object.field_path.as_deref(),
            Some("spec.containers{app}")
        );
        assert_eq!(event.involved_object.uid.as_deref(), Some("uid-1"));
        // Readiness keeps probing after failing.
        sleep(10.0).await;
        assert_eq!(exec_calls(&h.fake).len(), 5);
        // A liveness failure would not be the container's fate.
        assert!(!h.manager.liveness_failed("uid-1", "app", &id));
    }

    #[tokio::test(start_paused = true)]
    async fn liveness_fails_after_failure_threshold_and_stops() {
        let mut h = harness();
        let id = running(&h.fake, "app").await;
        let p = pod(json!({"name": "app", "livenessProbe":
            exec("alive", json!({"periodSeconds": 5, "initialDelaySeconds": 3}))}));
        h.fake.set_exec_result(
            &id,
            Ok(ExecSyncResult {
                exit_code: 1,
                stdout: vec![],
                stderr: b"dead".to_vec(),
            }),
        );
        h.manager
            .sync_container(&p, "app", &id, Timestamp::now(), "10.42.0.2");
        assert_eq!(h.manager.readiness("uid-1", "app"), None);
        // Ticks at 0 (skipped: initial delay), 5, 10, 15.
        sleep(14.0).await;
        assert_eq!(exec_calls(&h.fake).len(), 2);
        assert!(!h.manager.liveness_failed("uid-1", "app", &id));
        sleep(2.0).await;
        assert!(h.manager.liveness_failed("uid-1", "app", &id));
        assert_eq!(
            h.manager.failed_probe("uid-1", "app", &id),
            Some(ProbeKind::Liveness)
        );
        assert!(!h.manager.liveness_failed("uid-1", "app", "other-instance"));
        assert_eq!(drain(&mut h.changes), 1);
        let mut messages = Vec::new();
        while let Ok(event) = h.events.try_recv() {
            messages.push(event.message);
        }
        assert_eq!(messages, vec!["Liveness probe failed: dead"; 3]);
        // On hold: no more probes for this instance.
        sleep(60.0).await;
        assert_eq!(exec_calls(&h.fake).len(), 3);
        assert!(h.manager.workers("uid-1").is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn startup_gates_liveness_and_readiness() {
        let mut h = harness();
        let id = running(&h.fake, "app").await;
        let p = pod(json!({"name": "app",
            "startupProbe": exec("started", json!({"periodSeconds": 2, "failureThreshold": 10})),
            "livenessProbe": exec("alive", json!({"periodSeconds": 10})),
            "readinessProbe": exec("ready", json!({"periodSeconds": 10}))}));
        let failed = Ok(ExecSyncResult {
            exit_code: 1,
            ..Default::default()
        });
        h.fake.push_exec_result(&id, failed.clone());
        h.fake.push_exec_result(&id, failed);
        h.manager
            .sync_container(&p, "app", &id, Timestamp::now(), "10.42.0.2");
        assert_eq!(h.manager.startup("uid-1", "app"), None);
        sleep(3.0).await; // startup at 0 and 2 fail
        assert_eq!(h.manager.startup("uid-1", "app"), None);
        assert_eq!(h.manager.readiness("uid-1", "app"), Some(false));
        sleep(2.0).await; // at 4 it passes; readiness and liveness run at once
        assert_eq!(h.manager.startup("uid-1", "app"), Some(true));
        assert_eq!(h.manager.readiness("uid-1", "app"), Some(true));
        let commands: Vec<String> = exec_calls(&h.fake)
            .into_iter()
            .map(|(_, cmd)| cmd.join(" "))
            .collect();
        assert_eq!(commands[..3], ["started", "started", "started"]);
        let mut rest = commands[3..].to_vec();
        rest.sort();
        assert_eq!(rest, ["alive", "ready"]);
        assert!(drain(&mut h.changes) >= 2);
        // Startup probing is over for this instance.
        sleep(30.0).await;
        let startups = exec_calls(&h.fake)
            .iter()
            .filter(|(_, cmd)| cmd[0] == "started")
            .count();
        assert_eq!(startups, 3);
        assert_eq!(
            h.manager.workers("uid-1"),
            vec![
                ("app".to_string(), ProbeKind::Liveness),
                ("app".to_string(), ProbeKind::Readiness)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn startup_failure_means_restart() {
        let h = harness();
        let id = running(&h.fake, "app").await;
        let p = pod(json!({"name": "app",
            "startupProbe": exec("started", json!({"periodSeconds": 1, "failureThreshold": 3})),
            "livenessProbe": exec("alive", json!({}))}));
        h.fake.set_exec_result(
            "app",
            Ok(ExecSyncResult {
                exit_code: 1,
                ..Default::default()
            }),
        );
        h.manager
            .sync_container(&p, "app", &id, Timestamp::now(), "10.42.0.2");
        sleep(2.5).await;
        assert_eq!(h.manager.startup("uid-1", "app"), Some(false));
        assert_eq!(
            h.manager.failed_probe("uid-1", "app", &id),
            Some(ProbeKind::Startup)
        );
        assert!(exec_calls(&h.fake)
            .iter()
            .all(|(_, cmd)| cmd[0] == "started"));
    }

    #[tokio::test(start_paused = true)]
    async fn new_instance_replaces_workers_and_results() {
        let mut h = harness();
        let first = running(&h.fake, "app").await;
        let p = pod(json!({"name": "app",
            "livenessProbe": exec("alive", json!({"periodSeconds": 1, "failureThreshold": 1})),
            "readinessProbe": exec("ready", json!({"periodSeconds": 10}))}));
        h.fake.set_exec_result(
            &first,
            Ok(ExecSyncResult {
                exit_code: 1,
                ..Default::default()
            }),
        );
        h.manager
            .sync_container(&p, "app", &first, Timestamp::now(), "10.42.0.2");
        sleep(0.5).await;
        assert!(h.manager.liveness_failed("uid-1", "app", &first));
        // The same instance again changes nothing.
        h.manager
            .sync_container(&p, "app", &first, Timestamp::now(), "10.42.0.2");
        assert!(h.manager.liveness_failed("uid-1", "app", &first));
        drain(&mut h.changes);

        // The pod worker restarted it.
        h.fake.stop_container(&first, 0).await.expect("stop");
        let second = running(&h.fake, "app").await;
        h.manager
            .sync_container(&p, "app", &second, Timestamp::now(), "10.42.0.2");
        assert!(!h.manager.liveness_failed("uid-1", "app", &first));
        assert!(!h.manager.liveness_failed("uid-1", "app", &second));
        assert_eq!(h.manager.readiness("uid-1", "app"), Some(false));
        sleep(5.5).await;
        assert_eq!(h.manager.readiness("uid-1", "app"), Some(true));
        assert!(!h.manager.liveness_failed("uid-1", "app", &second));
        let calls = exec_calls(&h.fake);
        let on_first = calls.iter().filter(|(id, _)| *id == first).count();
        assert_eq!(on_first, 2, "{calls:?}");
        assert!(calls.iter().skip(on_first).all(|(id, _)| *id == second));
        assert_eq!(h.manager.workers("uid-1").len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn remove_pod_stops_workers() {
        let h = harness();
        let app = running(&h.fake, "app").await;
        let side = running(&h.fake, "side").await;
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "uid-1"},
            "spec": {
                "containers": [{"name": "app",
                    "readinessProbe": exec("ready", json!({"periodSeconds": 1}))}],
                "initContainers": [{"name": "side", "restartPolicy": "Always",
                    "livenessProbe": exec("alive", json!({"periodSeconds": 1}))}]
            }
        }))
        .expect("pod");
        h.manager
            .sync_container(&p, "app", &app, Timestamp::now(), "10.42.0.2");
        h.manager
            .sync_container(&p, "side", &side, Timestamp::now(), "10.42.0.2");
        // A container the pod does not have gets no workers.
        h.manager
            .sync_container(&p, "ghost", "x", Timestamp::now(), "10.42.0.2");
        assert_eq!(h.manager.workers("uid-1").len(), 2);
        sleep(2.5).await;
        assert_eq!(exec_calls(&h.fake).len(), 6);

        h.manager.remove_container("uid-1", "side");
        assert_eq!(
            h.manager.workers("uid-1"),
            vec![("app".to_string(), ProbeKind::Readiness)]
        );
        h.manager.remove_pod("uid-1");
        assert!(h.manager.workers("uid-1").is_empty());
        assert_eq!(h.manager.readiness("uid-1", "app"), None);
        let before = exec_calls(&h.fake).len();
        sleep(10.0).await;
        assert_eq!(exec_calls(&h.fake).len(), before);
    }

    #[tokio::test(start_paused = true)]
    async fn deletion_quiets_liveness() {
        let h = harness();
        let id = running(&h.fake, "app").await;
        let mut p = pod(json!({"name": "app",
            "livenessProbe": exec("alive", json!({"periodSeconds": 1, "failureThreshold": 2}))}));
        h.fake.set_exec_result(
            "app",
            Ok(ExecSyncResult {
                exit_code: 1,
                ..Default::default()
            }),
        );
        h.manager
            .sync_container(&p, "app", &id, Timestamp::now(), "10.42.0.2");
        sleep(0.5).await; // one failure
        p.metadata.deletion_timestamp =
            Some(serde_json::from_value(json!("2024-01-01T00:00:00Z")).expect("time"));
        h.manager
            .sync_container(&p, "app", &id, Timestamp::now(), "10.42.0.2");
        sleep(5.0).await;
        assert!(!h.manager.liveness_failed("uid-1", "app", &id));
        assert_eq!(exec_calls(&h.fake).len(), 1);
        assert!(h.manager.workers("uid-1").is_empty());
    }
}
