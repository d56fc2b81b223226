//! Snapshots: the whole MVCC state at one revision, so that the log before it can be deleted and
//! the disk holds what is live (plus retained history), not every write ever made.
//!
//! File `snap/<revision>.snap`: magic, the first log segment to replay after it, the encoded
//! state, and a CRC-32C of everything before it. Written to a temporary name, synced, renamed
//! and the directory synced, so a snapshot file that exists under its final name is complete;
//! a bad one is therefore corruption, not a torn write.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;

use super::codec::{decode_state, encode_state, Decoder, Encoder};
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
    encode_state(state, &mut e);
    let crc = crc32c::crc32c(&e.buf);
    e.u32(crc);
    e.buf
}

/// Writes an encoded snapshot of revision `revision` durably into `dir`.
pub(crate) fn write(dir: &Path, revision: Revision, encoded: &[u8]) -> Result<PathBuf> {
    let path = dir.join(format!("{revision:016x}.snap"));
    let tmp = dir.join(format!("{revision:016x}.snap.tmp"));
    let io = |e| StoreError::io(format!("writing snapshot {}", tmp.display()), e);
    let mut file = File::create(&tmp).map_err(io)?;
    file.write_all(encoded).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&tmp, &path)
        .map_err(|e| StoreError::io(format!("renaming {}", tmp.display()), e))?;
    sync_dir(dir)?;
    Ok(path)
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
}
