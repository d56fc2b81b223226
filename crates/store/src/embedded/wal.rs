//! The write-ahead log: numbered segment files of checksummed records.
//!
//! A record on disk is a 12-byte header — payload length, CRC-32C of the payload, CRC-32C of
//! those first 8 bytes — then the payload ([`super::codec`]). The header checksum tells a
//! damaged length (corruption) from a write that stopped half-way (a torn tail).
//!
//! Recovery reads segments in order. Only the last segment may end badly, and only in the way
//! an interrupted append leaves a file: an incomplete record followed by nothing but zeros or
//! the end of the file. Such a tail is cut off with a warning. Anything else — a bad record
//! followed by data, a bad record in an earlier segment — is corruption, and the store refuses
//! to start naming the file and offset, because skipping it would silently lose acknowledged
//! writes.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::codec::{decode_record, Decoder, Encoder};
use super::mvcc::WalRecord;
use crate::error::StoreError;
use crate::kv::Result;

const HEADER: usize = 12;

/// Appends `record`, framed, to `out`.
pub(crate) fn frame(record: &WalRecord, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    let mut e = Encoder {
        buf: std::mem::take(out),
    };
    super::codec::encode_record(record, &mut e);
    *out = e.buf;
    let payload_len = (out.len() - start - HEADER) as u32;
    let payload_crc = crc32c::crc32c(&out[start + HEADER..]);
    out[start..start + 4].copy_from_slice(&payload_len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&payload_crc.to_le_bytes());
    let header_crc = crc32c::crc32c(&out[start..start + 8]);
    out[start + 8..start + 12].copy_from_slice(&header_crc.to_le_bytes());
}

/// The path of segment `seq` in `dir`.
pub(crate) fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.wal"))
}

/// The segments in `dir`, by sequence number.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    let entries =
        fs::read_dir(dir).map_err(|e| StoreError::io(format!("listing {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(format!("listing {}", dir.display()), e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".wal")) else {
            continue;
        };
        if let Ok(seq) = u64::from_str_radix(stem, 16) {
            segments.push((seq, entry.path()));
        }
    }
    segments.sort();
    Ok(segments)
}

/// What reading a segment found.
#[derive(Debug)]
pub(crate) struct SegmentContents {
    pub records: Vec<WalRecord>,
    /// Length of the valid prefix; shorter than the file when a torn tail was found.
    pub valid_len: u64,
    /// Why the tail was cut, when it was.
    pub torn: Option<String>,
}

/// Reads one segment. `last` says whether a torn tail is allowed.
pub(crate) fn read_segment(path: &Path, last: bool) -> Result<SegmentContents> {
    let data = Bytes::from(
        fs::read(path).map_err(|e| StoreError::io(format!("reading {}", path.display()), e))?,
    );
    let corrupt = |offset: usize, reason: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    let zeros_from = |offset: usize| data[offset.min(data.len())..].iter().all(|b| *b == 0);
    let mut records = Vec::new();
    let mut offset = 0;
    while offset < data.len() {
        // Decides whether a bad record at `offset` is a torn tail or corruption.
        let bad = |reason: String, rest_from: usize| -> Result<Option<String>> {
            if last && zeros_from(rest_from) {
                Ok(Some(reason))
            } else {
                Err(corrupt(offset, reason))
            }
        };
        if data.len() - offset < HEADER {
            let torn = bad("incomplete record header".into(), data.len())?;
            return Ok(SegmentContents {
                records,
                valid_len: offset as u64,
                torn,
            });
        }
        let header = &data[offset..offset + HEADER];
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let payload_crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let header_crc = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        if crc32c::crc32c(&header[..8]) != header_crc {
            // A header cut short reads as zeros from the cut on; a damaged one is followed by data.
            let torn = bad("record header checksum mismatch".into(), offset + HEADER)?;
            return Ok(SegmentContents {
                records,
                valid_len: offset as u64,
                torn,
            });
        }
        let end = offset + HEADER + len;
        if end > data.len() {
            let torn = bad(
                format!("record of {len} bytes runs past the end of the file"),
                data.len(),
            )?;
            return Ok(SegmentContents {
                records,
                valid_len: offset as u64,
                torn,
            });
        }
        let payload = data.slice(offset + HEADER..end);
        if crc32c::crc32c(&payload) != payload_crc {
            let torn = bad("record checksum mismatch".into(), end)?;
            return Ok(SegmentContents {
                records,
                valid_len: offset as u64,
                torn,
            });
        }
        let mut decoder = Decoder::new(&payload);
        let record = decode_record(&mut decoder)
            .and_then(|r| decoder.finish().map(|()| r))
            .map_err(|e| corrupt(offset, format!("undecodable record: {}", e.0)))?;
        records.push(record);
        offset = end;
    }
    Ok(SegmentContents {
        records,
        valid_len: data.len() as u64,
        torn: None,
    })
}

/// An open segment being appended to. Owned by the flusher thread.
pub(crate) struct SegmentWriter {
    file: File,
}

impl SegmentWriter {
    /// Creates segment `seq` (which must not exist) and makes its name durable.
    pub fn create(dir: &Path, seq: u64) -> Result<SegmentWriter> {
        let path = segment_path(dir, seq);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| StoreError::io(format!("creating {}", path.display()), e))?;
        sync_dir(dir)?;
        Ok(SegmentWriter { file })
    }

    /// Appends `bytes` and waits until they are on disk.
    pub fn append_durable(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all(bytes)
            .map_err(|e| StoreError::io("appending to the log", e))?;
        self.file
            .sync_data()
            .map_err(|e| StoreError::io("syncing the log", e))
    }
}

/// Makes a directory's entries (created, renamed, removed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(format!("syncing directory {}", dir.display()), e))
}

/// Cuts a torn tail off the last segment.
pub(crate) fn truncate(path: &Path, len: u64) -> Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io(format!("opening {}", path.display()), e))?;
    file.set_len(len)
        .and_then(|()| file.sync_all())
        .map_err(|e| StoreError::io(format!("truncating {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::mvcc::Write;

    fn record(revision: i64) -> WalRecord {
        WalRecord::Txn {
            revision,
            writes: vec![Write::Put {
                key: Bytes::from(format!("k{revision}")),
                value: Bytes::from(vec![b'v'; 100]),
                lease: 0,
            }],
        }
    }

    fn write_segment(dir: &Path, n: i64) -> (PathBuf, Vec<usize>) {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for revision in 2..2 + n {
            frame(&record(revision), &mut bytes);
            ends.push(bytes.len());
        }
        let path = segment_path(dir, 1);
        fs::write(&path, &bytes).expect("write");
        (path, ends)
    }

    #[test]
    fn reads_back_what_was_framed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, _) = write_segment(dir.path(), 5);
        let contents = read_segment(&path, true).expect("read");
        assert_eq!(contents.records, (2..7).map(record).collect::<Vec<_>>());
        assert!(contents.torn.is_none());
    }

    #[test]
    fn a_torn_tail_is_cut_in_the_last_segment_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, ends) = write_segment(dir.path(), 5);
        let full = fs::read(&path).expect("read");
        // Every way of stopping half-way through the last record, and zero-filled tails.
        for cut in ends[3] + 1..ends[4] {
            fs::write(&path, &full[..cut]).expect("write");
            let contents = read_segment(&path, true).expect("torn tail tolerated");
            assert_eq!(contents.records.len(), 4, "cut at {cut}");
            assert_eq!(contents.valid_len, ends[3] as u64);
            assert!(contents.torn.is_some());
            let mut zero_filled = full[..cut].to_vec();
            zero_filled.resize(full.len() + 4096, 0);
            fs::write(&path, &zero_filled).expect("write");
            // Zero-filling may restore the record when its own last bytes were zeros.
            let records = read_segment(&path, true).expect("zeros tolerated").records;
            assert!(records.len() == 4 || records.len() == 5, "cut at {cut}");
            assert_eq!(
                records,
                (2..2 + records.len() as i64)
                    .map(record)
                    .collect::<Vec<_>>()
            );
            if records.len() == 4 {
                assert!(matches!(
                    read_segment(&path, false),
                    Err(StoreError::Corrupt { .. })
                ));
            }
        }
    }

    #[test]
    fn corruption_before_the_tail_names_file_and_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, ends) = write_segment(dir.path(), 5);
        let full = fs::read(&path).expect("read");
        for flip in [
            ends[1] + 2,
            ends[1] + 5,
            ends[1] + 9,
            ends[1] + 20,
            ends[3] - 1,
        ] {
            let mut damaged = full.clone();
            damaged[flip] ^= 0x40;
            fs::write(&path, &damaged).expect("write");
            match read_segment(&path, true) {
                Err(StoreError::Corrupt {
                    path: p, offset, ..
                }) => {
                    assert_eq!(p, path);
                    assert!(
                        offset as usize <= flip && flip < offset as usize + 200,
                        "flip {flip} offset {offset}"
                    );
                }
                other => panic!("flip at {flip}: expected corruption, got {other:?}"),
            }
        }
    }
}
