//! UDP, where nearly every query comes: a loop per socket that answers a plain question about
//! the cluster (one question, no EDNS, no other records) from the answer encoded the first time
//! it was asked of the current zone, and hands every other datagram to the [`ClusterDns`]
//! handler in a task of its own, as hickory-server's UDP loop does (its loop spawns a task and
//! decodes the whole message for every query, which costs more than answering one).
//!
//! An encoded answer is kept per lower-cased question; a later query gets a copy with its own
//! id, recursion-desired and checking-disabled flags and its question (its letters' case, which
//! the answer's compressed names point to). The answers go with their zone: a rebuilt zone starts
//! with none. Forwarded answers are never kept.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::net::NetError;
use hickory_server::proto::op::{Header, MessageType, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::Record;
use hickory_server::proto::serialize::binary::{BinEncodable, BinEncoder};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use parking_lot::RwLock;

use crate::zone::Answer;
use crate::{response_metadata, zone_response, ClusterDns};

/// The most answers kept per zone (questions for names that do not exist could otherwise
/// grow it without end); past it, answers are made but not kept.
const MAX_ENCODED: usize = 10_000;
/// The header's length.
const HEADER: usize = 12;
/// The largest UDP response without EDNS (RFC 1035 4.2.1).
const UDP_LIMIT: u16 = 512;

/// Wire bytes: a question (name, type, class) or a whole response.
type Wire = Box<[u8]>;

/// Encoded answers of one zone, by lower-cased question (name, type and class, as sent).
#[derive(Default)]
pub(crate) struct Encoded {
    answers: RwLock<HashMap<Wire, Wire>>,
}

impl Encoded {
    /// The kept answer to `question`, made the reply to `packet`.
    fn reply(&self, question: &[u8], packet: &[u8]) -> Option<Vec<u8>> {
        let answers = self.answers.read();
        let kept = answers.get(question)?;
        Some(stamp(kept, packet, HEADER + question.len()))
    }

    fn keep(&self, question: &[u8], answer: &[u8]) {
        let mut answers = self.answers.write();
        if answers.len() < MAX_ENCODED {
            answers.insert(question.into(), answer.into());
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.answers.read().len()
    }
}

/// Where the question of a plain query ends (past its type and class): a query (not a
/// response) of opcode QUERY with exactly one question, an uncompressed name, and nothing after
/// it — no answer, authority or additional records, so no EDNS. `None` for anything else.
fn plain_question_end(packet: &[u8]) -> Option<usize> {
    if packet.len() < HEADER + 5 {
        return None;
    }
    let is_response = packet[2] & 0x80 != 0;
    let opcode = (packet[2] >> 3) & 0x0f;
    let counts = [
        u16::from_be_bytes([packet[4], packet[5]]),
        u16::from_be_bytes([packet[6], packet[7]]),
        u16::from_be_bytes([packet[8], packet[9]]),
        u16::from_be_bytes([packet[10], packet[11]]),
    ];
    if is_response || opcode != 0 || counts != [1, 0, 0, 0] {
        return None;
    }
    let mut at = HEADER;
    loop {
        let length = usize::from(*packet.get(at)?);
        if length == 0 {
            break;
        }
        // A pointer (0xc0) or an extended label type: not a plain name.
        if length > 63 {
            return None;
        }
        at += 1 + length;
        if at - HEADER > 255 {
            return None;
        }
    }
    let end = at + 1 + 4;
    (end == packet.len()).then_some(end)
}

/// `kept` (an encoded answer) as the reply to `packet`, whose question ends at `end`.
fn stamp(kept: &[u8], packet: &[u8], end: usize) -> Vec<u8> {
    const RECURSION_DESIRED: u8 = 0x01;
    const CHECKING_DISABLED: u8 = 0x10;
    let mut reply = kept.to_vec();
    reply[..2].copy_from_slice(&packet[..2]);
    reply[2] = (reply[2] & !RECURSION_DESIRED) | (packet[2] & RECURSION_DESIRED);
    reply[3] = (reply[3] & !CHECKING_DISABLED) | (packet[3] & CHECKING_DISABLED);
    reply[HEADER..end].copy_from_slice(&packet[HEADER..end]);
    reply
}

/// What becomes of a datagram.
enum Datagram {
    /// A plain question about the cluster, answered here: the reply.
    Answered(Vec<u8>),
    /// Everything else that decodes (names outside the cluster, EDNS, other opcodes): for the
    /// handler, decoded once.
    ForHandler(Box<Request>),
    /// Not a DNS message.
    Malformed,
}

/// Answers `packet` here when it is a plain question about the cluster (from the kept answer,
/// or encoding one and keeping it); otherwise hands it on decoded.
fn take(dns: &ClusterDns, packet: &[u8], source: SocketAddr) -> Datagram {
    let plain = plain_question_end(packet);
    let mut lowered = [0u8; 264];
    let question = plain.map(|end| {
        let question = &mut lowered[..end - HEADER];
        question.copy_from_slice(&packet[HEADER..end]);
        // Label lengths are below 64, so only the letters change.
        question.make_ascii_lowercase();
        &*question
    });
    let snapshot = dns.current.read().clone();
    if let Some(reply) = question.and_then(|q| snapshot.encoded.reply(q, packet)) {
        return Datagram::Answered(reply);
    }
    let Ok(request) = Request::from_bytes(packet.to_vec(), source, Protocol::Udp) else {
        return Datagram::Malformed;
    };
    let Some(question) = question else {
        return Datagram::ForHandler(Box::new(request));
    };
    let answer = match request.request_info() {
        Ok(info) => snapshot
            .zone
            .answer(&info.query.name().to_string(), info.query.query_type()),
        Err(_) => Answer::NotOurs,
    };
    if answer == Answer::NotOurs {
        return Datagram::ForHandler(Box::new(request));
    }
    let soa = [snapshot.zone.soa()];
    let response = zone_response(&request, response_metadata(&request), &answer, &soa);
    let (_, encoded) = encode(response, UDP_LIMIT);
    snapshot.encoded.keep(question, &encoded);
    Datagram::Answered(encoded)
}

/// `response` in at most `limit` bytes (records that do not fit are left out and the message
/// marked truncated); a response that cannot be encoded becomes SERVFAIL, as hickory-server does.
fn encode<'a>(
    response: MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
    limit: u16,
) -> (ResponseInfo, Vec<u8>) {
    let id = response.metadata().id;
    let mut bytes = Vec::with_capacity(usize::from(UDP_LIMIT));
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_max_size(limit);
    let error = match response.destructive_emit(&mut encoder) {
        Ok(info) => return (info, bytes),
        Err(error) => error,
    };
    tracing::warn!(%error, "encoding a DNS response");
    let mut metadata = Metadata::new(id, MessageType::Response, OpCode::Query);
    metadata.response_code = ResponseCode::ServFail;
    let header = Header {
        metadata,
        counts: Default::default(),
    };
    bytes.clear();
    let _ = header.emit(&mut BinEncoder::new(&mut bytes));
    (header.into(), bytes)
}

/// Sends the handler's response to the asker, over the socket the query came on (without
/// waiting: a reply that finds the socket's buffer full is dropped, as UDP may drop it).
#[derive(Clone)]
struct Reply {
    socket: Arc<UdpSocket>,
    to: SocketAddr,
}

impl Reply {
    fn send(&self, bytes: &[u8]) -> std::io::Result<usize> {
        socket2::SockRef::from(&*self.socket).send_to_with_flags(
            bytes,
            &self.to.into(),
            libc::MSG_DONTWAIT,
        )
    }
}

#[async_trait::async_trait]
impl ResponseHandler for Reply {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let limit = response.edns().map_or(UDP_LIMIT, |edns| edns.max_payload());
        let (info, bytes) = encode(response, limit);
        self.send(&bytes)?;
        Ok(info)
    }
}

/// A FORMERR for a datagram that has a header but no message after it.
fn format_error(packet: &[u8]) -> Option<Vec<u8>> {
    if packet.len() < HEADER || packet[2] & 0x80 != 0 {
        return None;
    }
    let mut reply = vec![0u8; HEADER];
    reply[..2].copy_from_slice(&packet[..2]);
    // Response, the query's opcode and recursion-desired; recursion available, FORMERR.
    reply[2] = 0x80 | (packet[2] & 0x79);
    reply[3] = 0x80 | ResponseCode::FormErr.low();
    Some(reply)
}

/// How often a loop blocked on its socket looks at the stop flag.
pub(crate) const STOP_CHECK: Duration = Duration::from_millis(250);

/// Answers the datagrams that come to `socket` (blocking, with a read timeout of
/// [`STOP_CHECK`]) on this thread until `stop` is set; what cannot be answered at once runs on
/// `runtime`. A thread of its own rather than a task: a blocked `recvfrom` wakes straight into
/// the next query, where a task goes through the runtime's poller each time the socket empties.
pub(crate) fn serve(
    socket: UdpSocket,
    dns: Arc<ClusterDns>,
    runtime: tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
) {
    let socket = Arc::new(socket);
    let mut buffer = vec![0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let (n, source) = match socket.recv_from(&mut buffer) {
            Ok(received) => received,
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "receiving a DNS query");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        // Nothing can be sent back to port 0.
        if source.port() == 0 {
            continue;
        }
        let packet = &buffer[..n];
        let reply = match take(&dns, packet, source) {
            Datagram::Answered(reply) => reply,
            Datagram::Malformed => match format_error(packet) {
                Some(formerr) => formerr,
                None => continue,
            },
            // Responses are never answered (no reflection loops).
            Datagram::ForHandler(request)
                if request.metadata.message_type == MessageType::Response =>
            {
                continue
            }
            Datagram::ForHandler(request) => {
                let reply = Reply {
                    socket: socket.clone(),
                    to: source,
                };
                let dns = dns.clone();
                runtime.spawn(async move {
                    dns.handle_request::<_, TokioTime>(&request, reply).await;
                });
                continue;
            }
        };
        if let Err(error) = socket.send_to(&reply, source) {
            tracing::debug!(%error, %source, "sending a DNS answer");
        }
    }
}

#[cfg(test)]
mod tests;
