//! The binary encoding of log records and snapshots: little-endian integers and length-prefixed
//! byte strings. Small on purpose; every reader checks bounds and reports truncation instead of
//! panicking, since the bytes come from disk.

use std::time::Duration;

use bytes::Bytes;

use super::mvcc::{Lease, Mvcc, Version, WalRecord, Write};

/// Why bytes could not be decoded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct DecodeError(pub String);

type Decoded<T> = std::result::Result<T, DecodeError>;

pub(crate) struct Encoder {
    pub buf: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Self {
        Encoder { buf: Vec::new() }
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.buf.extend_from_slice(v);
    }
}

pub(crate) struct Decoder<'a> {
    buf: &'a [u8],
    /// The whole input, so that byte strings can be sliced out without copying.
    source: &'a Bytes,
    pos: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(source: &'a Bytes) -> Self {
        Decoder {
            buf: &source[..],
            source,
            pos: 0,
        }
    }

    fn take(&mut self, n: usize) -> Decoded<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|end| *end <= self.buf.len());
        let end =
            end.ok_or_else(|| DecodeError(format!("truncated: {n} bytes wanted at {}", self.pos)))?;
        let slice = &self.buf[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    pub fn u8(&mut self) -> Decoded<u8> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> Decoded<u32> {
        let mut b = [0; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }

    pub fn u64(&mut self) -> Decoded<u64> {
        let mut b = [0; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }

    pub fn i64(&mut self) -> Decoded<i64> {
        Ok(self.u64()? as i64)
    }

    pub fn bytes(&mut self) -> Decoded<Bytes> {
        let n = self.u32()? as usize;
        let start = self.pos;
        self.take(n)?;
        Ok(self.source.slice(start..start + n))
    }

    pub fn finish(&self) -> Decoded<()> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(DecodeError(format!(
                "{} trailing bytes",
                self.buf.len() - self.pos
            )))
        }
    }
}

const TXN: u8 = 1;
const LEASE_GRANT: u8 = 2;
const LEASE_REVOKE: u8 = 3;
const COMPACT: u8 = 4;
const PUT: u8 = 1;
const DELETE: u8 = 2;

pub(crate) fn encode_record(record: &WalRecord, e: &mut Encoder) {
    match record {
        WalRecord::Txn { revision, writes } => {
            e.u8(TXN);
            e.i64(*revision);
            e.u32(writes.len() as u32);
            for write in writes {
                match write {
                    Write::Put { key, value, lease } => {
                        e.u8(PUT);
                        e.bytes(key);
                        e.bytes(value);
                        e.i64(*lease);
                    }
                    Write::Delete { key } => {
                        e.u8(DELETE);
                        e.bytes(key);
                    }
                }
            }
        }
        WalRecord::LeaseGrant { id, ttl } => {
            e.u8(LEASE_GRANT);
            e.i64(*id);
            e.u64(ttl.as_millis() as u64);
        }
        WalRecord::LeaseRevoke { id } => {
            e.u8(LEASE_REVOKE);
            e.i64(*id);
        }
        WalRecord::Compact { revision } => {
            e.u8(COMPACT);
            e.i64(*revision);
        }
    }
}

pub(crate) fn decode_record(d: &mut Decoder<'_>) -> Decoded<WalRecord> {
    let record = match d.u8()? {
        TXN => {
            let revision = d.i64()?;
            let n = d.u32()? as usize;
            let mut writes = Vec::with_capacity(n.min(1 << 16));
            for _ in 0..n {
                writes.push(match d.u8()? {
                    PUT => Write::Put {
                        key: d.bytes()?,
                        value: d.bytes()?,
                        lease: d.i64()?,
                    },
                    DELETE => Write::Delete { key: d.bytes()? },
                    other => return Err(DecodeError(format!("unknown write type {other}"))),
                });
            }
            WalRecord::Txn { revision, writes }
        }
        LEASE_GRANT => WalRecord::LeaseGrant {
            id: d.i64()?,
            ttl: Duration::from_millis(d.u64()?),
        },
        LEASE_REVOKE => WalRecord::LeaseRevoke { id: d.i64()? },
        COMPACT => WalRecord::Compact { revision: d.i64()? },
        other => return Err(DecodeError(format!("unknown record type {other}"))),
    };
    Ok(record)
}

/// Which versions of each key a state encoding keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum History {
    /// Every retained version: the store's own snapshots, which watches replay from.
    All,
    /// Only each live key's latest version, encoded as compacted at the current revision: a
    /// saved snapshot (`ferry snapshot save`), whose history a restore would drop anyway.
    Latest,
}

/// Encodes the whole state (its events and lease key sets are derived on load).
pub(crate) fn encode_state(m: &Mvcc, history: History, e: &mut Encoder) {
    e.i64(m.current_revision);
    let keys: Vec<(&Bytes, &[Version])> = match history {
        History::All => {
            e.i64(m.compact_revision);
            m.keys.iter().map(|(k, vs)| (k, &vs[..])).collect()
        }
        History::Latest => {
            e.i64(m.current_revision);
            m.keys
                .iter()
                .filter_map(|(k, vs)| {
                    let latest = vs.len().checked_sub(1)?;
                    vs[latest].value.is_some().then(|| (k, &vs[latest..]))
                })
                .collect()
        }
    };
    e.u32(m.leases.len() as u32);
    for (id, lease) in &m.leases {
        e.i64(*id);
        e.u64(lease.ttl.as_millis() as u64);
    }
    e.u64(keys.len() as u64);
    for (key, versions) in keys {
        e.bytes(key);
        e.u32(versions.len() as u32);
        for v in versions {
            e.i64(v.mod_revision);
            e.u32(v.sub);
            e.i64(v.create_revision);
            e.i64(v.version);
            e.i64(v.lease);
            match &v.value {
                Some(value) => {
                    e.u8(1);
                    e.bytes(value);
                }
                None => e.u8(0),
            }
        }
    }
}

pub(crate) fn decode_state(d: &mut Decoder<'_>, now: std::time::Instant) -> Decoded<Mvcc> {
    let mut m = Mvcc::new();
    m.current_revision = d.i64()?;
    m.compact_revision = d.i64()?;
    for _ in 0..d.u32()? {
        let id = d.i64()?;
        let ttl = Duration::from_millis(d.u64()?);
        m.leases.insert(
            id,
            Lease {
                ttl,
                deadline: now + ttl,
                keys: Default::default(),
            },
        );
    }
    for _ in 0..d.u64()? {
        let key = d.bytes()?;
        let n = d.u32()? as usize;
        let mut versions = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            versions.push(Version {
                mod_revision: d.i64()?,
                sub: d.u32()?,
                create_revision: d.i64()?,
                version: d.i64()?,
                lease: d.i64()?,
                value: match d.u8()? {
                    0 => None,
                    _ => Some(d.bytes()?),
                },
            });
        }
        m.keys.insert(key, versions);
    }
    m.rebuild_events();
    m.rebuild_lease_keys();
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let records = [
            WalRecord::Txn {
                revision: 7,
                writes: vec![
                    Write::Put {
                        key: Bytes::from_static(b"k"),
                        value: Bytes::from_static(b"v"),
                        lease: 3,
                    },
                    Write::Delete {
                        key: Bytes::from_static(b"gone"),
                    },
                ],
            },
            WalRecord::LeaseGrant {
                id: -5,
                ttl: Duration::from_secs(3600),
            },
            WalRecord::LeaseRevoke { id: 8 },
            WalRecord::Compact { revision: 99 },
        ];
        for record in records {
            let mut e = Encoder::new();
            encode_record(&record, &mut e);
            let bytes = Bytes::from(e.buf);
            let mut d = Decoder::new(&bytes);
            assert_eq!(decode_record(&mut d), Ok(record));
            assert_eq!(d.finish(), Ok(()));
        }
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let mut e = Encoder::new();
        encode_record(&WalRecord::Compact { revision: 5 }, &mut e);
        let bytes = Bytes::copy_from_slice(&e.buf[..4]);
        assert!(decode_record(&mut Decoder::new(&bytes)).is_err());
        let huge = Bytes::from_static(&[
            1, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 1, 255, 255, 255, 255,
        ]);
        assert!(decode_record(&mut Decoder::new(&huge)).is_err());
    }
}
