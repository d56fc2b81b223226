//! The WebSocket protocols kubectl asks for first, served by the kubelet itself in front of a
//! streaming server that speaks SPDY for them — containerd's speaks SPDY and the older
//! WebSocket `v4.channel.k8s.io`, and refuses the two that kubectl 1.29+ offers:
//!
//! - **`v5.channel.k8s.io`** (exec, attach): binary messages whose first byte is the channel —
//!   0 stdin, 1 stdout, 2 stderr, 3 the error stream (the v4 JSON `Status`), 4 terminal resize
//!   — and, new in v5, `[255, channel]` closing the client's side of a channel (stdin's end,
//!   which v4 cannot carry). [`exec`] runs it against the runtime's SPDY
//!   `v4.channel.k8s.io`: one SPDY stream per channel, opened as upstream's client does (error,
//!   then stdin, stdout, stderr, resize), data copied both ways, the close signal sent as
//!   stdin's `FIN`; when the runtime has said all it will (the error stream and the output
//!   streams ended, or the session went away) the WebSocket is closed normally, which the
//!   client reads as the end of every channel.
//! - **`SPDY/3.1+portforward.k8s.io`** (port-forward): the client's own SPDY session, tunnelled
//!   in binary messages. [`tunnel`] upgrades to the runtime with SPDY `portforward.k8s.io` and
//!   copies bytes between the messages and that connection.
//!
//! Upstream's API server translates the same two protocols on its hop to the kubelet
//! (`StreamTranslatorHandler`, `StreamTunnelingHandler`); ferry's API server passes the
//! client's upgrade through and the kubelet, next to the runtime, translates.

use bytes::{BufMut as _, Bytes, BytesMut};
use ferry_client::spdy::{self, Frame, SpdyError};
use ferry_client::upgrade::{self, Forwarded};
use futures::{SinkExt as _, StreamExt as _};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::{full_body, text, Response};

/// The WebSocket remote-command protocol with stream close.
pub const V5_CHANNEL: &str = "v5.channel.k8s.io";
/// Port-forward's SPDY session tunnelled over WebSocket.
pub const PORT_FORWARD_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";

/// The SPDY remote-command protocol spoken to the runtime.
const SPDY_V4_CHANNEL: &str = "v4.channel.k8s.io";
/// The SPDY port-forward protocol spoken to the runtime.
const SPDY_PORT_FORWARD: &str = "portforward.k8s.io";

/// v5 channels.
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// The streams of an exec or attach session, as the runtime's request has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streams {
    /// The client sends stdin.
    pub stdin: bool,
    /// The process's stdout comes back.
    pub stdout: bool,
    /// The process's stderr comes back (never with a TTY, whose output is all stdout).
    pub stderr: bool,
    /// A terminal: resize messages go to it.
    pub tty: bool,
}

/// What the kubelet translates for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Translation {
    /// `v5.channel.k8s.io` to SPDY `v4.channel.k8s.io`.
    Exec(Streams),
    /// `SPDY/3.1+portforward.k8s.io` to SPDY `portforward.k8s.io`.
    PortForward,
}

/// Whether the client's upgrade is a WebSocket one offering `protocol`.
pub fn websocket_offers(headers: &http::HeaderMap, protocol: &str) -> bool {
    let websocket = headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    websocket
        && headers
            .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|offered| offered.trim() == protocol)
}

/// Upgrades `far` (connected to the runtime's streaming server at `authority`) to SPDY for
/// `path`, and answers the client's WebSocket upgrade with the bridge between the two; a
/// refusal by the runtime comes back to the client as it is.
pub async fn serve<B>(
    far: tokio::net::TcpStream,
    authority: &str,
    path: &str,
    mut request: http::Request<B>,
    translation: Translation,
) -> Response {
    let Some(key) = request.headers().get(http::header::SEC_WEBSOCKET_KEY) else {
        return text(400, "missing Sec-WebSocket-Key");
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let (protocol, spdy_protocol) = match translation {
        Translation::Exec(_) => (V5_CHANNEL, SPDY_V4_CHANNEL),
        Translation::PortForward => (PORT_FORWARD_TUNNEL, SPDY_PORT_FORWARD),
    };
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    headers.insert(
        http::header::UPGRADE,
        http::HeaderValue::from_static("SPDY/3.1"),
    );
    headers.insert(
        "x-stream-protocol-version",
        http::HeaderValue::from_static(spdy_protocol),
    );
    let client = hyper::upgrade::on(&mut request);
    let upgraded = match upgrade::forward(far, request.method(), authority, path, &headers).await {
        Ok(Forwarded::Switched { upgraded, .. }) => upgraded,
        Ok(refused @ Forwarded::Refused { .. }) => return refused.into_response(client, full_body),
        Err(error) => {
            return text(
                500,
                format!("proxying to the runtime's streaming server: {error}"),
            )
        }
    };
    tokio::spawn(async move {
        let client = match client.await {
            Ok(client) => client,
            Err(error) => {
                tracing::debug!(%error, "client upgrade");
                return;
            }
        };
        let socket =
            WebSocketStream::from_raw_socket(TokioIo::new(client), Role::Server, None).await;
        let far = TokioIo::new(upgraded);
        let result = match translation {
            Translation::Exec(streams) => exec(socket, far, streams).await,
            Translation::PortForward => tunnel(socket, far).await,
        };
        if let Err(error) = result {
            tracing::debug!(%error, protocol, "translated stream ended");
        }
    });
    let mut response = http::Response::new(full_body(Bytes::new()));
    *response.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(
        http::header::UPGRADE,
        http::HeaderValue::from_static("websocket"),
    );
    headers.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(accept) = http::HeaderValue::from_str(&accept) {
        headers.insert(http::header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    headers.insert(
        http::header::SEC_WEBSOCKET_PROTOCOL,
        http::HeaderValue::from_static(protocol),
    );
    response
}

/// Errors of a bridge.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The runtime's side.
    #[error("runtime: {0}")]
    Spdy(#[from] SpdyError),
    /// The client's side.
    #[error("client: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// The runtime's connection (the tunnel).
    #[error("runtime: {0}")]
    Io(#[from] std::io::Error),
}

/// One message of a v5 channel.
fn channel_message(channel: u8, data: &[u8]) -> Message {
    let mut message = BytesMut::with_capacity(1 + data.len());
    message.put_u8(channel);
    message.put_slice(data);
    Message::Binary(message.freeze())
}

/// Bridges a v5 WebSocket client to the runtime's SPDY v4 session on `far` (already
/// upgraded), until the runtime has finished (then the WebSocket closes normally) or the client
/// goes away (then the SPDY session is ended, which ends the process's streams).
pub async fn exec<S, F>(
    socket: WebSocketStream<S>,
    far: F,
    streams: Streams,
) -> Result<(), BridgeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: AsyncRead + AsyncWrite + Unpin,
{
    let (far_read, far_write) = tokio::io::split(far);
    let mut runtime = spdy::Writer::new(far_write);
    let mut frames = spdy::Reader::new(far_read);
    // Upstream's order: error, stdin, stdout, stderr, resize.
    let mut opened = Vec::new();
    for (kind, wanted) in [
        ("error", true),
        ("stdin", streams.stdin),
        ("stdout", streams.stdout),
        ("stderr", streams.stderr && !streams.tty),
        ("resize", streams.tty),
    ] {
        if wanted {
            opened.push((kind, runtime.open_stream(&[("streamtype", kind)]).await?));
        }
    }
    let id = |kind: &str| opened.iter().find(|(k, _)| *k == kind).map(|(_, id)| *id);
    let (error, stdin, stdout, stderr, resize) = (
        id("error"),
        id("stdin"),
        id("stdout"),
        id("stderr"),
        id("resize"),
    );
    // The runtime's streams still to end, and the channel each is delivered on.
    let mut open_outputs: Vec<(u32, u8)> = [(error, ERROR), (stdout, STDOUT), (stderr, STDERR)]
        .into_iter()
        .filter_map(|(id, channel)| id.map(|id| (id, channel)))
        .collect();
    let channel_of = |open: &[(u32, u8)], id: u32| {
        open.iter()
            .find(|(stream, _)| *stream == id)
            .map(|(_, channel)| *channel)
    };
    let mut stdin_open = stdin.is_some();
    let (mut client_tx, mut client_rx) = socket.split();
    let runtime_finished = loop {
        tokio::select! {
            message = client_rx.next() => {
                let data = match message {
                    Some(Ok(Message::Binary(data))) => data,
                    Some(Ok(Message::Close(_))) | None => break false,
                    Some(Err(error)) => {
                        tracing::debug!(%error, "exec client");
                        break false;
                    }
                    // Pings are answered by the WebSocket itself; text is not v5.
                    Some(Ok(_)) => continue,
                };
                match (data.first().copied(), stdin, resize) {
                    (Some(STDIN), Some(id), _) if stdin_open => {
                        runtime.data(id, &data[1..], false).await?;
                    }
                    (Some(RESIZE), _, Some(id)) => runtime.data(id, &data[1..], false).await?,
                    (Some(CLOSE), Some(id), _) if data[1..] == [STDIN] && stdin_open => {
                        stdin_open = false;
                        runtime.data(id, &[], true).await?;
                    }
                    _ => tracing::debug!(len = data.len(), "exec client message ignored"),
                }
            }
            frame = frames.next() => match frame? {
                Some(Frame::Data { stream_id, data, fin }) => {
                    if let Some(channel) = channel_of(&open_outputs, stream_id) {
                        if !data.is_empty() {
                            client_tx.send(channel_message(channel, &data)).await?;
                        }
                        if fin {
                            open_outputs.retain(|(id, _)| *id != stream_id);
                            if open_outputs.is_empty() {
                                break true;
                            }
                        }
                    }
                }
                Some(Frame::RstStream { stream_id, .. }) => {
                    open_outputs.retain(|(id, _)| *id != stream_id);
                    if Some(stream_id) == stdin {
                        stdin_open = false;
                    }
                    if open_outputs.is_empty() {
                        break true;
                    }
                }
                // The server's pings have even ids.
                Some(Frame::Ping { id }) if id % 2 == 0 => runtime.pong(id).await?,
                Some(Frame::GoAway { .. }) | None => break true,
                Some(_) => {}
            }
        }
    };
    if runtime_finished {
        let close = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        // The client may be gone already; the runtime's session ends all the same.
        let _ = client_tx.send(Message::Close(Some(close))).await;
    }
    runtime.go_away().await?;
    Ok(())
}

/// Copies a tunnelled SPDY session between the client's binary messages and the runtime's
/// connection `far` (already upgraded), until either side ends.
pub async fn tunnel<S, F>(socket: WebSocketStream<S>, far: F) -> Result<(), BridgeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: AsyncRead + AsyncWrite + Unpin,
{
    let (mut far_read, mut far_write) = tokio::io::split(far);
    let (mut client_tx, mut client_rx) = socket.split();
    let mut buffer = BytesMut::new();
    let runtime_finished = loop {
        buffer.reserve(32 * 1024);
        tokio::select! {
            message = client_rx.next() => match message {
                Some(Ok(Message::Binary(data))) => far_write.write_all(&data).await?,
                Some(Ok(Message::Close(_))) | None => break false,
                Some(Err(error)) => {
                    tracing::debug!(%error, "port-forward client");
                    break false;
                }
                Some(Ok(_)) => {}
            },
            read = far_read.read_buf(&mut buffer) => match read? {
                0 => break true,
                _ => {
                    let data: Bytes = buffer.split().freeze();
                    client_tx.send(Message::Binary(data)).await?;
                }
            },
        }
    };
    if runtime_finished {
        let close = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let _ = client_tx.send(Message::Close(Some(close))).await;
    }
    far_write.shutdown().await?;
    Ok(())
}

#[cfg(test)]
mod tests;
