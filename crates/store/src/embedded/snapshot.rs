//! Snapshots: the whole MVCC state at one revision, so that the log before it can be deleted and
//! the disk holds what is live (plus retained history), not every write ever made.
//!
//! File `snap/<revision>.snap`: magic, the first log segment to replay after it, the encoded
//! state, and a CRC-32C of everything before it. Written to a temporary name, synced, renamed
//! and the directory synced, so a snapshot file that exists under its final name is complete;
//! a bad one is therefore corruption, not a torn write.
//!
//! A *saved* snapshot (`ferry snapshot save`, a backup) uses the same state encoding behind a
//! header of its own, since it travels: it is copied between machines, kept for weeks, and
//! given back to `ferry server --restore-from`, where a truncated or foreign file must be
//! refused by name before anything is written. Layout, little-endian:
//!
//! ```text
//! 0   magic "FERRYBAK"         8   format version (u32, 1)     12  revision (i64)
//! 20  body length (u64)        28  CRC-32C of the body (u32)   32  CRC-32C of bytes 0..32
//! 36  body: the state at `revision`, each live key's latest version only (History::Latest)
//! ```

use std::fs::{self, File};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;

use super::codec::{decode_state, encode_state, Decoder, Encoder, History};
use super::mvcc::Mvcc;
use super::wal::sync_dir;
use crate::error::StoreError;
use crate::kv::{Result, Revision};

const MAGIC: &[u8; 8] = b"FERRYSN1";

/// Encodes `state` for a snapshot whose log resumes at segment `next_segment`.
pub(crate) fn encode(state: &Mvcc, next_segment: u64) -> Vec<u8> {
    let mut e = Encoder::new();
    e.buf.extend_from_slice(MAGIC);
    e.u64(next_segment);
    encode_state(state, History::All, &mut e);
    let crc = crc32c::crc32c(&e.buf);
    e.u32(crc);
    e.buf
}

/// Writes an encoded snapshot of revision `revision` durably into `dir`.
pub(crate) fn write(dir: &Path, revision: Revision, encoded: &[u8]) -> Result<PathBuf> {
    let path = dir.join(format!("{revision:016x}.snap"));
    write_durably(&path, encoded)?;
    Ok(path)
}

/// Writes `bytes` to a temporary name beside `path`, syncs, renames and syncs the directory:
/// a file under its final name is complete.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let io = |e| StoreError::io(format!("writing snapshot {}", tmp.display()), e);
    // Owner only: a snapshot holds every object, Secrets included.
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(|e| StoreError::io(format!("renaming {}", tmp.display()), e))?;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => sync_dir(Path::new(".")),
    }
}

/// The snapshots in `dir`, oldest first; removes leftover temporary files.
pub(crate) fn list(dir: &Path) -> Result<Vec<(Revision, PathBuf)>> {
    let mut snapshots = Vec::new();
    let entries =
        fs::read_dir(dir).map_err(|e| StoreError::io(format!("listing {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(format!("listing {}", dir.display()), e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".snap.tmp") {
            // An interrupted snapshot: never renamed, so never relied on.
            let _ = fs::remove_file(entry.path());
        } else if let Some(stem) = name.strip_suffix(".snap") {
            if let Ok(revision) = i64::from_str_radix(stem, 16) {
                snapshots.push((revision, entry.path()));
            }
        }
    }
    snapshots.sort();
    Ok(snapshots)
}

/// Loads a snapshot: the state and the first log segment to replay after it.
pub(crate) fn load(path: &Path, now: Instant) -> Result<(Mvcc, u64)> {
    let data =
        fs::read(path).map_err(|e| StoreError::io(format!("reading {}", path.display()), e))?;
    let corrupt = |offset: usize, reason: &str| StoreError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason: reason.to_string(),
    };
    if data.len() < MAGIC.len() + 12 || &data[..MAGIC.len()] != MAGIC {
        return Err(corrupt(0, "not a ferry snapshot"));
    }
    let body_end = data.len() - 4;
    let crc = u32::from_le_bytes([
        data[body_end],
        data[body_end + 1],
        data[body_end + 2],
        data[body_end + 3],
    ]);
    if crc32c::crc32c(&data[..body_end]) != crc {
        return Err(corrupt(0, "snapshot checksum mismatch"));
    }
    let body = Bytes::from(data).slice(MAGIC.len()..body_end);
    let mut d = Decoder::new(&body);
    let decoded = d
        .u64()
        .and_then(|next| Ok((decode_state(&mut d, now)?, next)));
    let (state, next_segment) = decoded.map_err(|e| corrupt(MAGIC.len(), &e.0))?;
    d.finish().map_err(|e| corrupt(MAGIC.len(), &e.0))?;
    Ok((state, next_segment))
}

const SAVED_MAGIC: &[u8; 8] = b"FERRYBAK";
const SAVED_VERSION: u32 = 1;
const SAVED_HEADER: usize = 36;

/// What the header of a saved snapshot says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The store's revision the snapshot holds.
    pub revision: Revision,
    /// The file's size in bytes.
    pub size: u64,
}

/// Encodes a saved snapshot of `state` at its current revision.
pub(crate) fn encode_saved(state: &Mvcc) -> Vec<u8> {
    let mut body = Encoder::new();
    body.buf.resize(SAVED_HEADER, 0);
    encode_state(state, History::Latest, &mut body);
    let body_len = (body.buf.len() - SAVED_HEADER) as u64;
    let mut header = Encoder::new();
    header.buf.extend_from_slice(SAVED_MAGIC);
    header.u32(SAVED_VERSION);
    header.i64(state.current_revision);
    header.u64(body_len);
    header.u32(crc32c::crc32c(&body.buf[SAVED_HEADER..]));
    let crc = crc32c::crc32c(&header.buf);
    header.u32(crc);
    body.buf[..SAVED_HEADER].copy_from_slice(&header.buf);
    body.buf
}

/// Writes a saved snapshot durably to `path`.
pub(crate) fn write_saved(path: &Path, encoded: &[u8]) -> Result<()> {
    write_durably(path, encoded)
}

/// Checks the header of a saved snapshot (`start`: the file's first bytes, `len`: its length)
/// and returns what it says and the body's CRC.
fn check_saved_header(path: &Path, start: &[u8], len: u64) -> Result<(SnapshotInfo, u32)> {
    let invalid = |reason: String| StoreError::InvalidSnapshot {
        path: path.to_path_buf(),
        reason,
    };
    if start.len() < MAGIC.len() || &start[..MAGIC.len()] != SAVED_MAGIC {
        return Err(invalid(if start.starts_with(MAGIC) {
            "a store's own snapshot (snap/*.snap), not one made by `ferry snapshot save`".into()
        } else {
            "no FERRYBAK magic at its start".into()
        }));
    }
    if start.len() < SAVED_HEADER {
        return Err(invalid(format!(
            "truncated: {len} bytes, shorter than the {SAVED_HEADER}-byte header"
        )));
    }
    // In bounds: `start` holds the whole header.
    let u32_at = |at: usize| u32::from_le_bytes(start[at..at + 4].try_into().unwrap_or_default());
    let u64_at = |at: usize| u64::from_le_bytes(start[at..at + 8].try_into().unwrap_or_default());
    let (version, revision, body_len) = (u32_at(8), u64_at(12) as Revision, u64_at(20));
    let (body_crc, header_crc) = (u32_at(28), u32_at(32));
    if crc32c::crc32c(&start[..SAVED_HEADER - 4]) != header_crc {
        return Err(invalid("header checksum mismatch".into()));
    }
    if version != SAVED_VERSION {
        return Err(invalid(format!(
            "format version {version}; this ferry reads version {SAVED_VERSION}"
        )));
    }
    let want = SAVED_HEADER as u64 + body_len;
    if len != want {
        return Err(invalid(if len < want {
            format!("truncated: {len} bytes, the header says {want}")
        } else {
            format!("{} bytes after the end the header gives", len - want)
        }));
    }
    Ok((
        SnapshotInfo {
            revision,
            size: len,
        },
        body_crc,
    ))
}

/// Reads a saved snapshot's header (not its body): its revision and size. Refuses a file that
/// is not one, or whose length is not the header's.
pub fn read_info(path: &Path) -> Result<SnapshotInfo> {
    let io = |e| StoreError::io(format!("reading {}", path.display()), e);
    let mut file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut start = Vec::with_capacity(SAVED_HEADER);
    std::io::Read::by_ref(&mut file)
        .take(SAVED_HEADER as u64)
        .read_to_end(&mut start)
        .map_err(io)?;
    Ok(check_saved_header(path, &start, len)?.0)
}

/// Loads a saved snapshot, checking its header, body checksum and encoding.
pub(crate) fn load_saved(path: &Path, now: Instant) -> Result<(Mvcc, SnapshotInfo)> {
    let data =
        fs::read(path).map_err(|e| StoreError::io(format!("reading {}", path.display()), e))?;
    let (info, body_crc) = check_saved_header(path, &data, data.len() as u64)?;
    let invalid = |reason: String| StoreError::InvalidSnapshot {
        path: path.to_path_buf(),
        reason,
    };
    if crc32c::crc32c(&data[SAVED_HEADER..]) != body_crc {
        return Err(invalid("checksum mismatch: the file is damaged".into()));
    }
    let body = Bytes::from(data).slice(SAVED_HEADER..);
    let mut d = Decoder::new(&body);
    let state = decode_state(&mut d, now)
        .and_then(|state| d.finish().map(|()| state))
        .map_err(|e| invalid(format!("undecodable body: {}", e.0)))?;
    if state.current_revision != info.revision {
        return Err(invalid(format!(
            "holds revision {} where the header says {}",
            state.current_revision, info.revision
        )));
    }
    Ok((state, info))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{Op, Txn};
    use std::time::Duration;

    #[test]
    fn a_snapshot_restores_keys_history_and_leases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = Instant::now();
        let mut m = Mvcc::new();
        m.grant_lease(3, Duration::from_secs(60), now);
        m.txn(&Txn::new().and_then([Op::put(&b"a"[..], &b"1"[..])]))
            .expect("txn");
        m.txn(&Txn::new().and_then([Op::Put {
            key: "b".into(),
            value: "2".into(),
            lease: 3,
        }]))
        .expect("txn");
        m.txn(&Txn::new().and_then([Op::delete(&b"a"[..])]))
            .expect("txn");
        let path = write(dir.path(), m.current_revision, &encode(&m, 7)).expect("write");
        let (loaded, next) = load(&path, now).expect("load");
        assert_eq!(next, 7);
        assert_eq!(loaded.keys, m.keys);
        assert_eq!(loaded.current_revision, m.current_revision);
        assert_eq!(loaded.leases[&3].keys.len(), 1);
        assert_eq!(
            list(dir.path()).expect("list"),
            vec![(m.current_revision, path.clone())]
        );

        let mut damaged = fs::read(&path).expect("read");
        damaged[20] ^= 1;
        fs::write(&path, damaged).expect("write");
        assert!(matches!(load(&path, now), Err(StoreError::Corrupt { .. })));
    }

    fn saved_state() -> Mvcc {
        let mut m = Mvcc::new();
        for (k, v) in [("a", "1"), ("b", "2"), ("a", "3")] {
            m.txn(&Txn::new().and_then([Op::put(k.to_string(), v.to_string())]))
                .expect("txn");
        }
        m.txn(&Txn::new().and_then([Op::delete(&b"b"[..])]))
            .expect("txn");
        m
    }

    #[test]
    fn a_saved_snapshot_holds_the_latest_versions_at_its_revision() {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = saved_state();
        let path = dir.path().join("saved");
        write_saved(&path, &encode_saved(&m)).expect("write");
        let info = read_info(&path).expect("info");
        assert_eq!(info.revision, m.current_revision);
        assert_eq!(info.size, fs::metadata(&path).expect("stat").len());
        let (loaded, loaded_info) = load_saved(&path, Instant::now()).expect("load");
        assert_eq!(loaded_info, info);
        assert_eq!(loaded.current_revision, m.current_revision);
        assert_eq!(loaded.compact_revision, m.current_revision);
        // `a` at its latest version only; `b`, deleted, is gone.
        assert_eq!(loaded.keys.len(), 1);
        assert_eq!(loaded.keys[&b"a"[..]], m.keys[&b"a"[..]][1..]);
    }

    #[test]
    fn a_truncated_damaged_or_foreign_file_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = saved_state();
        let encoded = encode_saved(&m);
        let path = dir.path().join("bad");
        let refused = |bytes: &[u8]| {
            fs::write(&path, bytes).expect("write");
            let info = read_info(&path).map(|_| ());
            let load = load_saved(&path, Instant::now()).map(|_| ());
            match load {
                Err(StoreError::InvalidSnapshot { path: p, reason }) => {
                    assert_eq!(p, path);
                    (info.is_err(), reason)
                }
                other => panic!("loaded a bad file: {other:?}"),
            }
        };
        let (by_header, reason) = refused(&encoded[..encoded.len() - 1]);
        assert!(by_header && reason.starts_with("truncated"), "{reason}");
        let (by_header, reason) = refused(&encoded[..20]);
        assert!(by_header && reason.starts_with("truncated"), "{reason}");
        let mut damaged = encoded.clone();
        *damaged.last_mut().expect("bytes") ^= 1;
        let (by_header, reason) = refused(&damaged);
        assert!(
            !by_header && reason.contains("checksum mismatch"),
            "{reason}"
        );
        let mut future = encoded.clone();
        future[8] = 2;
        let crc = crc32c::crc32c(&future[..SAVED_HEADER - 4]);
        future[SAVED_HEADER - 4..SAVED_HEADER].copy_from_slice(&crc.to_le_bytes());
        let (by_header, reason) = refused(&future);
        assert!(by_header && reason.contains("format version 2"), "{reason}");
        let (by_header, reason) = refused(b"apiVersion: v1\nkind: ConfigMap\n");
        assert!(by_header && reason.contains("magic"), "{reason}");
        let (by_header, reason) = refused(&encode(&m, 0));
        assert!(
            by_header && reason.contains("store's own snapshot"),
            "{reason}"
        );
        let error = refused(b"").1;
        assert!(error.contains("magic"), "{error}");
    }
}
