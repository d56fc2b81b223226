//! SPDY/3.1 framing, the client's half: what a bridge needs to speak to a streaming server
//! (the kubelet's or the container runtime's) that offers exec, attach and port-forward over
//! SPDY only — as containerd's does for the WebSocket `v5.channel.k8s.io` kubectl asks for
//! first. Upstream's API server bridges the same way (WebSocket from the client, SPDY to the
//! kubelet); no maintained Rust crate speaks SPDY, so the few frames it takes are here.
//!
//! A frame (SPDY/3 §2.2) is a control frame — `1`, version 3, its type, 8 bits of flags, 24 of
//! length, the payload — or a data frame — `0`, a 31-bit stream id, flags, length, the bytes.
//! [`Writer`] writes the frames a client sends: `SYN_STREAM` (a new stream and its headers),
//! data with or without `FIN` (the half-close that carries stdin's end), `PING` answers,
//! `GOAWAY`. Its header blocks are one zlib stream per session, each block ended by a sync
//! flush (§2.6.10.1). The compressor uses no preset dictionary: the zlib header says so and a
//! reader then needs none (Go's `compress/zlib` reads it with or without one).
//! [`Reader`] splits what the server sends into [`Frame`]s; it does not inflate header blocks,
//! which a client of these protocols never needs (the streams are the client's and their
//! replies carry nothing), so their bytes are skipped whole.
//!
//! Flow control (`WINDOW_UPDATE`) is neither sent nor obeyed: the Go implementation behind
//! every Kubernetes streaming server (moby/spdystream) implements none either, and a
//! `WINDOW_UPDATE` sent to it would only be logged as unhandled.

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// The protocol version in every control frame.
const VERSION: u16 = 3;
/// The most a frame's 24-bit length can say.
const MAX_LENGTH: usize = 0x00ff_ffff;
/// The end of a stream's direction (data frames, `SYN_STREAM`, `SYN_REPLY`, `HEADERS`).
pub const FLAG_FIN: u8 = 0x01;

/// Control frame types (§2.6).
mod kind {
    pub const SYN_STREAM: u16 = 1;
    pub const SYN_REPLY: u16 = 2;
    pub const RST_STREAM: u16 = 3;
    pub const PING: u16 = 6;
    pub const GOAWAY: u16 = 7;
    pub const HEADERS: u16 = 8;
    // SETTINGS (4) and WINDOW_UPDATE (9) are read as `Frame::Other`.
}

/// `RST_STREAM` status: the stream is cancelled by its sender.
pub const RST_CANCEL: u32 = 5;
/// `GOAWAY` status: a normal end of the session.
pub const GOAWAY_OK: u32 = 0;

/// A frame the server sent; header blocks are left compressed and unread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Bytes of a stream, and whether the sender's direction of it ends with them.
    Data {
        /// The stream.
        stream_id: u32,
        /// The bytes (maybe none, with `fin`).
        data: Bytes,
        /// `FLAG_FIN`.
        fin: bool,
    },
    /// The peer opened a stream (streaming servers never do; a test's fake server reads a
    /// client's this way).
    SynStream {
        /// Its id.
        stream_id: u32,
        /// `FLAG_FIN`.
        fin: bool,
        /// The compressed name/value block, for whoever inflates the session's blocks.
        header_block: Bytes,
    },
    /// The server accepted one of the client's streams.
    SynReply {
        /// The stream.
        stream_id: u32,
        /// `FLAG_FIN`: the server will send nothing on it.
        fin: bool,
    },
    /// The stream ended abnormally.
    RstStream {
        /// The stream.
        stream_id: u32,
        /// Why (§2.6.2).
        status: u32,
    },
    /// A ping; the side whose ids have the other parity answers it with the same id.
    Ping {
        /// Its id: odd from the client, even from the server.
        id: u32,
    },
    /// The session ends: no new streams, those up to `last_stream_id` finish.
    GoAway {
        /// The last stream the sender handled.
        last_stream_id: u32,
        /// Why (0 is a normal end).
        status: u32,
    },
    /// More headers for a stream.
    Headers {
        /// The stream.
        stream_id: u32,
        /// `FLAG_FIN`.
        fin: bool,
    },
    /// Settings, window updates and types this client has no use for.
    Other {
        /// The control frame's type.
        kind: u16,
    },
}

/// Errors of a SPDY session.
#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    /// The connection failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The peer sent something that is not SPDY/3.
    #[error("SPDY protocol error: {0}")]
    Protocol(String),
    /// Compressing a header block failed.
    #[error("compressing SPDY headers: {0}")]
    Compress(#[from] flate2::CompressError),
}

/// Writes a client's frames to the server.
pub struct Writer<W> {
    io: W,
    compressor: flate2::Compress,
    next_stream_id: u32,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    /// A client session on `io` (the upgraded connection's write half).
    pub fn new(io: W) -> Self {
        Writer {
            io,
            compressor: flate2::Compress::new(flate2::Compression::default(), true),
            // Client-initiated streams are odd (§2.3.2).
            next_stream_id: 1,
        }
    }

    /// Opens a stream with `headers` (names lowercased, as SPDY requires) and returns its id.
    pub async fn open_stream(&mut self, headers: &[(&str, &str)]) -> Result<u32, SpdyError> {
        let stream_id = self.next_stream_id;
        self.next_stream_id += 2;
        let block = self.header_block(headers)?;
        let mut payload = BytesMut::with_capacity(10 + block.len());
        payload.put_u32(stream_id);
        payload.put_u32(0); // associated-to-stream-id
        payload.put_u16(0); // priority 0 (highest), unused bits, slot 0
        payload.put_slice(&block);
        self.control(kind::SYN_STREAM, 0, &payload).await?;
        Ok(stream_id)
    }

    /// Sends `data` on the stream, ending the client's direction of it with `fin`. Data larger
    /// than a frame can hold goes in several.
    pub async fn data(&mut self, stream_id: u32, data: &[u8], fin: bool) -> Result<(), SpdyError> {
        let mut chunks = data.chunks(MAX_LENGTH).peekable();
        if chunks.peek().is_none() {
            return self.data_frame(stream_id, &[], fin).await;
        }
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            self.data_frame(stream_id, chunk, fin && last).await?;
        }
        Ok(())
    }

    /// Answers the server's ping.
    pub async fn pong(&mut self, id: u32) -> Result<(), SpdyError> {
        self.control(kind::PING, 0, &id.to_be_bytes()).await
    }

    /// Cancels a stream.
    pub async fn reset(&mut self, stream_id: u32, status: u32) -> Result<(), SpdyError> {
        let mut payload = [0u8; 8];
        payload[..4].copy_from_slice(&stream_id.to_be_bytes());
        payload[4..].copy_from_slice(&status.to_be_bytes());
        self.control(kind::RST_STREAM, 0, &payload).await
    }

    /// Ends the session: no stream of the server's was handled (the client takes none).
    pub async fn go_away(&mut self) -> Result<(), SpdyError> {
        let mut payload = [0u8; 8];
        payload[4..].copy_from_slice(&GOAWAY_OK.to_be_bytes());
        self.control(kind::GOAWAY, 0, &payload).await?;
        self.io.shutdown().await?;
        Ok(())
    }

    async fn data_frame(
        &mut self,
        stream_id: u32,
        data: &[u8],
        fin: bool,
    ) -> Result<(), SpdyError> {
        let mut frame = BytesMut::with_capacity(8 + data.len());
        frame.put_u32(stream_id & 0x7fff_ffff);
        frame.put_u32(length_word(if fin { FLAG_FIN } else { 0 }, data.len()));
        frame.put_slice(data);
        self.io.write_all(&frame).await?;
        self.io.flush().await?;
        Ok(())
    }

    async fn control(&mut self, kind: u16, flags: u8, payload: &[u8]) -> Result<(), SpdyError> {
        if payload.len() > MAX_LENGTH {
            return Err(SpdyError::Protocol(format!(
                "a control frame of {} bytes",
                payload.len()
            )));
        }
        let mut frame = BytesMut::with_capacity(8 + payload.len());
        frame.put_u16(0x8000 | VERSION);
        frame.put_u16(kind);
        frame.put_u32(length_word(flags, payload.len()));
        frame.put_slice(payload);
        self.io.write_all(&frame).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// The compressed name/value block (§2.6.10): a count, then each name and value with a
    /// 32-bit length; this session's compressor, flushed so the block stands on its own.
    fn header_block(&mut self, headers: &[(&str, &str)]) -> Result<Vec<u8>, SpdyError> {
        let mut plain = BytesMut::new();
        plain.put_u32(headers.len() as u32);
        for (name, value) in headers {
            let name = name.to_ascii_lowercase();
            plain.put_u32(name.len() as u32);
            plain.put_slice(name.as_bytes());
            plain.put_u32(value.len() as u32);
            plain.put_slice(value.as_bytes());
        }
        // Deflate grows incompressible input by a few bytes per block, plus the flush marker.
        let mut out = Vec::with_capacity(plain.len() + plain.len() / 8 + 64);
        let mut input = &plain[..];
        loop {
            let before_in = self.compressor.total_in();
            self.compressor
                .compress_vec(input, &mut out, flate2::FlushCompress::Sync)?;
            let consumed = (self.compressor.total_in() - before_in) as usize;
            input = &input[consumed..];
            // Done once all input is in and the flush fitted (spare room left over).
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
            out.reserve(out.capacity().max(64));
        }
    }
}

/// The receiving side of a session's header blocks: one zlib stream inflated block by block.
/// It reads blocks compressed without a preset dictionary, as [`Writer`] sends them — what a
/// server (a test's fake streaming server) needs to read a client's `SYN_STREAM` headers.
pub struct Inflater(flate2::Decompress);

impl Default for Inflater {
    fn default() -> Self {
        Inflater(flate2::Decompress::new(true))
    }
}

impl Inflater {
    /// The name/value pairs of the session's next block.
    pub fn block(&mut self, compressed: &[u8]) -> Result<Vec<(String, String)>, SpdyError> {
        let bad = |what: String| SpdyError::Protocol(format!("header block: {what}"));
        let mut plain = Vec::with_capacity(4 * compressed.len() + 256);
        let mut input = compressed;
        loop {
            let (in_before, out_before) = (self.0.total_in(), self.0.total_out());
            self.0
                .decompress_vec(input, &mut plain, flate2::FlushDecompress::Sync)
                .map_err(|e| bad(e.to_string()))?;
            input = &input[(self.0.total_in() - in_before) as usize..];
            if plain.len() == plain.capacity() {
                // Out of room: more may be pending.
                plain.reserve(plain.capacity());
            } else if input.is_empty() {
                break;
            } else if self.0.total_out() == out_before && self.0.total_in() == in_before {
                return Err(bad("stuck".into()));
            }
        }
        parse_block(Bytes::from(plain)).ok_or_else(|| bad("malformed".into()))
    }
}

/// The pairs of an inflated name/value block.
fn parse_block(mut plain: Bytes) -> Option<Vec<(String, String)>> {
    let text = |plain: &mut Bytes| {
        let n = (plain.remaining() >= 4).then(|| plain.get_u32() as usize)?;
        (plain.remaining() >= n)
            .then(|| String::from_utf8(plain.split_to(n).to_vec()).ok())
            .flatten()
    };
    let count = (plain.remaining() >= 4).then(|| plain.get_u32())?;
    (0..count)
        .map(|_| Some((text(&mut plain)?, text(&mut plain)?)))
        .collect()
}

/// The second word of a frame: flags and a 24-bit length.
fn length_word(flags: u8, length: usize) -> u32 {
    (u32::from(flags) << 24) | (length as u32 & MAX_LENGTH as u32)
}

/// Reads the server's frames.
pub struct Reader<R> {
    io: R,
    buffer: BytesMut,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// Frames from `io` (the upgraded connection's read half).
    pub fn new(io: R) -> Self {
        Reader {
            io,
            buffer: BytesMut::with_capacity(16 * 1024),
        }
    }

    /// The next frame; `None` when the server closed the connection between frames. Safe to
    /// cancel (in a `select!`): a frame read in part stays buffered for the next call.
    pub async fn next(&mut self) -> Result<Option<Frame>, SpdyError> {
        loop {
            if let Some(frame) = parse(&mut self.buffer)? {
                return Ok(Some(frame));
            }
            if self.io.read_buf(&mut self.buffer).await? == 0 {
                return if self.buffer.is_empty() {
                    Ok(None)
                } else {
                    Err(SpdyError::Protocol(
                        "connection closed inside a frame".into(),
                    ))
                };
            }
        }
    }
}

/// The first whole frame in `buffer`, taken out of it; `None` if it holds less than a frame.
pub fn parse(buffer: &mut BytesMut) -> Result<Option<Frame>, SpdyError> {
    if buffer.len() < 8 {
        return Ok(None);
    }
    let first = u32::from_be_bytes([buffer[0], buffer[1], buffer[2], buffer[3]]);
    let flags = buffer[4];
    let length = u32::from_be_bytes([0, buffer[5], buffer[6], buffer[7]]) as usize;
    if buffer.len() < 8 + length {
        buffer.reserve(8 + length - buffer.len());
        return Ok(None);
    }
    buffer.advance(8);
    let mut payload = buffer.split_to(length).freeze();
    let fin = flags & FLAG_FIN != 0;
    if first & 0x8000_0000 == 0 {
        return Ok(Some(Frame::Data {
            stream_id: first,
            data: payload,
            fin,
        }));
    }
    let version = ((first >> 16) & 0x7fff) as u16;
    if version != VERSION {
        return Err(SpdyError::Protocol(format!(
            "control frame of SPDY version {version}"
        )));
    }
    let kind = (first & 0xffff) as u16;
    let need = |n: usize| {
        if length < n {
            Err(SpdyError::Protocol(format!(
                "control frame {kind} of {length} bytes"
            )))
        } else {
            Ok(())
        }
    };
    let stream_id = |payload: &mut Bytes| payload.get_u32() & 0x7fff_ffff;
    Ok(Some(match kind {
        kind::SYN_STREAM => {
            need(10)?;
            let stream_id = stream_id(&mut payload);
            payload.advance(6); // associated-to-stream-id, priority, slot
            Frame::SynStream {
                stream_id,
                fin,
                header_block: payload,
            }
        }
        kind::SYN_REPLY => {
            need(4)?;
            Frame::SynReply {
                stream_id: stream_id(&mut payload),
                fin,
            }
        }
        kind::RST_STREAM => {
            need(8)?;
            Frame::RstStream {
                stream_id: stream_id(&mut payload),
                status: payload.get_u32(),
            }
        }
        kind::PING => {
            need(4)?;
            Frame::Ping {
                id: payload.get_u32(),
            }
        }
        kind::GOAWAY => {
            need(8)?;
            Frame::GoAway {
                last_stream_id: stream_id(&mut payload),
                status: payload.get_u32(),
            }
        }
        kind::HEADERS => {
            need(4)?;
            Frame::Headers {
                stream_id: stream_id(&mut payload),
                fin,
            }
        }
        kind => Frame::Other { kind },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn written(write: impl AsyncFnOnce(&mut Writer<&mut Vec<u8>>)) -> BytesMut {
        let mut out = Vec::new();
        let mut writer = Writer::new(&mut out);
        write(&mut writer).await;
        BytesMut::from(&out[..])
    }

    #[tokio::test]
    async fn streams_open_with_odd_ids_and_one_compressed_header_stream() {
        let mut bytes = written(async |w| {
            assert_eq!(
                w.open_stream(&[("streamType", "error")])
                    .await
                    .expect("open"),
                1
            );
            assert_eq!(
                w.open_stream(&[("streamtype", "stdin"), ("port", "80")])
                    .await
                    .expect("open"),
                3
            );
        })
        .await;
        let mut inflater = Inflater::default();
        for (id, headers) in [
            (1, vec![("streamtype", "error")]),
            (3, vec![("streamtype", "stdin"), ("port", "80")]),
        ] {
            // 0x8003 0x0001: control, version 3, SYN_STREAM; no flags.
            assert_eq!(&bytes[..5], &[0x80, 0x03, 0x00, 0x01, 0x00]);
            let length = u32::from_be_bytes([0, bytes[5], bytes[6], bytes[7]]) as usize;
            let frame = bytes.split_to(8 + length);
            assert_eq!(u32::from_be_bytes(frame[8..12].try_into().expect("id")), id);
            assert_eq!(&frame[12..18], &[0, 0, 0, 0, 0, 0]);
            let expected: Vec<(String, String)> = headers
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(inflater.block(&frame[18..]).expect("inflate"), expected);
        }
        assert!(bytes.is_empty());
    }

    #[tokio::test]
    async fn data_frames_carry_fin_and_split_past_the_length_field() {
        let big = vec![7u8; MAX_LENGTH + 10];
        let mut bytes = written(async |w| {
            w.data(3, b"hello", false).await.expect("data");
            w.data(3, &[], true).await.expect("fin");
            w.data(5, &big, true).await.expect("big");
        })
        .await;
        let frames: Vec<Frame> = std::iter::from_fn(|| parse(&mut bytes).expect("parse")).collect();
        assert_eq!(
            frames[..2],
            [
                Frame::Data {
                    stream_id: 3,
                    data: Bytes::from_static(b"hello"),
                    fin: false
                },
                Frame::Data {
                    stream_id: 3,
                    data: Bytes::new(),
                    fin: true
                },
            ]
        );
        let Frame::Data { data, fin, .. } = &frames[2] else {
            panic!("{:?}", frames[2]);
        };
        assert_eq!((data.len(), *fin), (MAX_LENGTH, false));
        let Frame::Data { data, fin, .. } = &frames[3] else {
            panic!("{:?}", frames[3]);
        };
        assert_eq!((data.len(), *fin), (10, true));
        assert!(bytes.is_empty());
    }

    #[tokio::test]
    async fn control_frames_parse_and_partial_frames_wait() {
        let mut bytes = written(async |w| {
            w.pong(2).await.expect("ping");
            w.reset(5, RST_CANCEL).await.expect("reset");
        })
        .await;
        // A server's SYN_REPLY with FIN and a 3-byte header block, GOAWAY, WINDOW_UPDATE.
        bytes.extend_from_slice(&[0x80, 3, 0, 2, 1, 0, 0, 7, 0, 0, 0, 9, 1, 2, 3]);
        bytes.extend_from_slice(&[0x80, 3, 0, 7, 0, 0, 0, 8, 0, 0, 0, 4, 0, 0, 0, 0]);
        bytes.extend_from_slice(&[0x80, 3, 0, 9, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 1, 0]);
        let mut partial = bytes.split_to(10);
        assert_eq!(parse(&mut partial).expect("parse"), None);
        partial.unsplit(bytes);
        let mut bytes = partial;
        let frames: Vec<Frame> = std::iter::from_fn(|| parse(&mut bytes).expect("parse")).collect();
        assert_eq!(
            frames,
            [
                Frame::Ping { id: 2 },
                Frame::RstStream {
                    stream_id: 5,
                    status: RST_CANCEL
                },
                Frame::SynReply {
                    stream_id: 9,
                    fin: true
                },
                Frame::GoAway {
                    last_stream_id: 4,
                    status: GOAWAY_OK
                },
                Frame::Other { kind: 9 },
            ]
        );
        let mut wrong = BytesMut::from(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1][..]);
        assert!(matches!(parse(&mut wrong), Err(SpdyError::Protocol(_))));
        let mut short = BytesMut::from(&[0x80, 3, 0, 3, 0, 0, 0, 2, 0, 0][..]);
        assert!(matches!(parse(&mut short), Err(SpdyError::Protocol(_))));
    }

    #[tokio::test]
    async fn the_reader_ends_cleanly_only_between_frames() {
        let whole = written(async |w| w.data(1, b"x", true).await.expect("data")).await;
        let mut reader = Reader::new(&whole[..]);
        assert!(matches!(reader.next().await, Ok(Some(Frame::Data { .. }))));
        assert!(matches!(reader.next().await, Ok(None)));
        let mut cut = Reader::new(&whole[..whole.len() - 1]);
        assert!(matches!(cut.next().await, Err(SpdyError::Protocol(_))));
    }
}
