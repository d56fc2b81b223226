use std::collections::HashMap;

use ferry_client::spdy::{Frame, Inflater, Reader, Writer};
use tokio::io::DuplexStream;

use super::*;

fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
    pairs
        .iter()
        .map(|(k, v)| {
            (
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                http::HeaderValue::from_str(v).expect("value"),
            )
        })
        .collect()
}

#[test]
fn only_websocket_upgrades_offering_the_protocol_are_translated() {
    let offer = |upgrade: &str, protocols: &str| {
        websocket_offers(
            &headers(&[("upgrade", upgrade), ("sec-websocket-protocol", protocols)]),
            V5_CHANNEL,
        )
    };
    assert!(offer("websocket", "v5.channel.k8s.io"));
    assert!(offer("WebSocket", "v4.channel.k8s.io, v5.channel.k8s.io"));
    assert!(!offer("websocket", "v4.channel.k8s.io"));
    assert!(!offer("SPDY/3.1", "v5.channel.k8s.io"));
}

/// A WebSocket client and the bridge's server side, over memory.
async fn websocket_pair() -> (WebSocketStream<DuplexStream>, WebSocketStream<DuplexStream>) {
    let (client, server) = tokio::io::duplex(64 * 1024);
    (
        WebSocketStream::from_raw_socket(client, Role::Client, None).await,
        WebSocketStream::from_raw_socket(server, Role::Server, None).await,
    )
}

/// What a fake SPDY v4 exec server saw.
#[derive(Debug, Default)]
struct Seen {
    /// Stream types in the order the client opened them, with their ids.
    streams: Vec<(String, u32)>,
    stdin: Vec<u8>,
    pong: bool,
    go_away: bool,
}

/// A runtime's exec session: pings first, echoes stdin on stdout; at stdin's end writes
/// `bye` on stderr and the v4 success status, ends its streams, and waits for the client's
/// GOAWAY.
async fn fake_exec_server(io: DuplexStream) -> Seen {
    let (read, write) = tokio::io::split(io);
    let (mut frames, mut out, mut inflater) =
        (Reader::new(read), Writer::new(write), Inflater::default());
    let mut seen = Seen::default();
    out.pong(2).await.expect("ping");
    let mut ids = HashMap::new();
    while let Some(frame) = frames.next().await.expect("frame") {
        match frame {
            Frame::SynStream {
                stream_id,
                header_block,
                ..
            } => {
                let headers = inflater.block(&header_block).expect("headers");
                let kind = headers
                    .iter()
                    .find(|(k, _)| k == "streamtype")
                    .map(|(_, v)| v.clone())
                    .expect("streamtype");
                ids.insert(kind.clone(), stream_id);
                seen.streams.push((kind, stream_id));
            }
            Frame::Data {
                stream_id,
                data,
                fin,
            } if Some(&stream_id) == ids.get("stdin") => {
                seen.stdin.extend_from_slice(&data);
                out.data(ids["stdout"], &data, false).await.expect("echo");
                if fin {
                    out.data(ids["stderr"], b"bye", true).await.expect("stderr");
                    out.data(ids["error"], br#"{"metadata":{},"status":"Success"}"#, true)
                        .await
                        .expect("status");
                    out.data(ids["stdout"], &[], true).await.expect("fin");
                }
            }
            Frame::Ping { id: 2 } => seen.pong = true,
            Frame::GoAway { .. } => {
                seen.go_away = true;
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    seen
}

#[tokio::test]
async fn v5_exec_runs_over_spdy_v4_with_stdin_closed_by_the_client() {
    let (mut client, bridge_side) = websocket_pair().await;
    let (bridge_far, runtime) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(fake_exec_server(runtime));
    let streams = Streams {
        stdin: true,
        stdout: true,
        stderr: true,
        tty: false,
    };
    let bridge = tokio::spawn(exec(bridge_side, bridge_far, streams));
    client
        .send(channel_message(STDIN, b"hello "))
        .await
        .expect("stdin");
    client
        .send(channel_message(STDIN, b"world"))
        .await
        .expect("stdin");
    client
        .send(Message::Binary(Bytes::from_static(&[CLOSE, STDIN])))
        .await
        .expect("close stdin");
    let mut channels: HashMap<u8, Vec<u8>> = HashMap::new();
    let close = loop {
        match client.next().await.expect("a message").expect("ok") {
            Message::Binary(data) => channels
                .entry(data[0])
                .or_default()
                .extend_from_slice(&data[1..]),
            Message::Close(frame) => break frame,
            _ => {}
        }
    };
    assert_eq!(close.map(|f| f.code), Some(CloseCode::Normal));
    assert_eq!(channels[&STDOUT], b"hello world");
    assert_eq!(channels[&STDERR], b"bye");
    assert_eq!(channels[&ERROR], br#"{"metadata":{},"status":"Success"}"#);
    bridge.await.expect("join").expect("bridge");
    let seen = server.await.expect("join");
    let order: Vec<(&str, u32)> = seen
        .streams
        .iter()
        .map(|(k, id)| (k.as_str(), *id))
        .collect();
    assert_eq!(
        order,
        [("error", 1), ("stdin", 3), ("stdout", 5), ("stderr", 7)]
    );
    assert_eq!(seen.stdin, b"hello world");
    assert!(seen.pong && seen.go_away, "{seen:?}");
}

#[tokio::test]
async fn a_client_that_goes_away_ends_the_runtime_session() {
    let (client, bridge_side) = websocket_pair().await;
    let (bridge_far, runtime) = tokio::io::duplex(64 * 1024);
    let streams = Streams {
        stdin: true,
        stdout: true,
        stderr: false,
        tty: true,
    };
    let bridge = tokio::spawn(exec(bridge_side, bridge_far, streams));
    let (read, _write) = tokio::io::split(runtime);
    let mut frames = Reader::new(read);
    let mut inflater = Inflater::default();
    let mut kinds = Vec::new();
    for _ in 0..4 {
        let Some(Frame::SynStream { header_block, .. }) = frames.next().await.expect("frame")
        else {
            panic!("a stream");
        };
        kinds.push(inflater.block(&header_block).expect("headers")[0].1.clone());
    }
    // With a TTY: no stderr stream, and a resize stream.
    assert_eq!(kinds, ["error", "stdin", "stdout", "resize"]);
    drop(client);
    assert!(matches!(
        frames.next().await.expect("frame"),
        Some(Frame::GoAway { .. })
    ));
    assert_eq!(frames.next().await.expect("end"), None);
    bridge.await.expect("join").expect("bridge");
}

#[tokio::test]
async fn the_port_forward_tunnel_copies_both_ways_until_the_runtime_closes() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (mut client, bridge_side) = websocket_pair().await;
    let (bridge_far, mut runtime) = tokio::io::duplex(64 * 1024);
    let bridge = tokio::spawn(tunnel(bridge_side, bridge_far));
    client
        .send(Message::Binary(Bytes::from_static(b"\x80\x03\x00\x01")))
        .await
        .expect("send");
    let mut got = [0u8; 4];
    runtime.read_exact(&mut got).await.expect("read");
    assert_eq!(&got, b"\x80\x03\x00\x01");
    runtime.write_all(b"reply").await.expect("write");
    let Some(Ok(Message::Binary(data))) = client.next().await else {
        panic!("a message");
    };
    assert_eq!(&data[..], b"reply");
    drop(runtime);
    assert!(matches!(
        client.next().await,
        Some(Ok(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            ..
        }))))
    ));
    bridge.await.expect("join").expect("bridge");
}
