//! What a directory tree uses on disk, as `du` counts it: allocated blocks, each inode once
//! (hard links), without following symlinks or crossing into other file systems.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Bytes and inodes used under a directory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Allocated bytes (`st_blocks` × 512), the directory itself included.
    pub bytes: u64,
    /// Inodes, the directory itself included.
    pub inodes: u64,
}

/// Walks `dir` (iteratively: a deep tree must not exhaust the stack). Entries that vanish during
/// the walk are skipped, pods keep writing while the kubelet asks.
pub(crate) fn disk_usage(dir: &Path) -> io::Result<Usage> {
    let root = fs::symlink_metadata(dir)?;
    let device = root.dev();
    let mut usage = Usage::default();
    let mut seen = HashSet::new();
    let mut count = |meta: &fs::Metadata, usage: &mut Usage| {
        if meta.nlink() > 1 && !meta.is_dir() && !seen.insert(meta.ino()) {
            return;
        }
        usage.bytes += meta.blocks() * 512;
        usage.inodes += 1;
    };
    count(&root, &mut usage);
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let entries = match fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        };
        for entry in entries {
            let entry = entry?;
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(err),
            };
            if meta.dev() != device {
                continue;
            }
            count(&meta, &mut usage);
            if meta.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_files_dirs_and_hard_links_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = disk_usage(dir.path()).expect("usage");
        assert_eq!(empty.inodes, 1);

        let data = vec![7u8; 64 * 1024];
        fs::create_dir(dir.path().join("sub")).expect("mkdir");
        fs::write(dir.path().join("sub/a"), &data).expect("write");
        fs::hard_link(dir.path().join("sub/a"), dir.path().join("b")).expect("link");
        std::os::unix::fs::symlink("/", dir.path().join("root-link")).expect("symlink");
        let usage = disk_usage(dir.path()).expect("usage");
        // dir, sub, a (= b), root-link.
        assert_eq!(usage.inodes, 4);
        assert!(usage.bytes >= empty.bytes + data.len() as u64, "{usage:?}");
        // The symlink was not followed into `/`.
        assert!(usage.bytes < 10 * 1024 * 1024, "{usage:?}");

        assert_eq!(
            disk_usage(&dir.path().join("missing"))
                .expect_err("missing")
                .kind(),
            io::ErrorKind::NotFound
        );
    }
}
