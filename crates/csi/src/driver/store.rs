//! The volumes on disk: `<root>/<volume id>/` is the volume (0777, as local-path makes it) and
//! `<root>/<volume id>.json` its [`VolumeRecord`]. The record is written before the directory
//! is made and removed after it is gone, so a record without a directory is a half-made or
//! half-deleted volume (the next CreateVolume or DeleteVolume finishes it) and a directory
//! without a record never happens. Callers serialize writes (the driver's lock).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Error;

/// What is kept about a volume beside its directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct VolumeRecord {
    /// The CreateVolume `name` the id was derived from.
    pub name: String,
    /// The capacity given at creation or by the last expansion.
    pub capacity_bytes: i64,
    /// Where the volume is bind-mounted (NodePublishVolume), in publish order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publications: Vec<Publication>,
    /// The staging target the volume is bind-mounted on (NodeStageVolume), if staged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged_at: Option<PathBuf>,
    /// The node the volume is attached to (ControllerPublishVolume), if attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached_to: Option<String>,
}

/// One NodePublishVolume: the target and the arguments that decide whether a repeated call is
/// the same one (CSI's P1 = P2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Publication {
    pub target_path: PathBuf,
    pub readonly: bool,
    /// `VolumeCapability.AccessMode.Mode` as its number.
    pub access_mode: i32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fs_type: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mount_flags: Vec<String>,
    /// The staging target the volume was published from; `None`: straight from its directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging_target_path: Option<PathBuf>,
}

/// The volumes under one root directory.
#[derive(Debug)]
pub(crate) struct VolumeStore {
    root: PathBuf,
}

impl VolumeStore {
    /// The store under `root`, made if missing.
    pub fn open(root: PathBuf) -> io::Result<Self> {
        fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The volume's directory. Only for ids that passed [`valid_volume_id`].
    pub fn volume_dir(&self, volume_id: &str) -> PathBuf {
        self.root.join(volume_id)
    }

    fn record_path(&self, volume_id: &str) -> PathBuf {
        self.root.join(format!("{volume_id}.json"))
    }

    /// The record of `volume_id`; `None` when there is none or the id cannot be one of ours
    /// (which also keeps ids like `../x` away from the filesystem).
    pub fn get(&self, volume_id: &str) -> Result<Option<VolumeRecord>, Error> {
        if !valid_volume_id(volume_id) {
            return Ok(None);
        }
        let path = self.record_path(volume_id);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(Error::io(format!("reading {}", path.display()), err)),
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|err| {
            Error::io(
                format!("parsing {}", path.display()),
                io::Error::new(io::ErrorKind::InvalidData, err),
            )
        })
    }

    /// Writes the record atomically (a temporary file renamed over it).
    pub fn put(&self, volume_id: &str, record: &VolumeRecord) -> Result<(), Error> {
        let path = self.record_path(volume_id);
        let tmp = self.root.join(format!(".{volume_id}.json.tmp"));
        let write = || -> io::Result<()> {
            let json = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
            let mut file = fs::File::create(&tmp)?;
            file.write_all(&json)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|err| Error::io(format!("writing {}", path.display()), err))
    }

    /// Makes the volume's directory (if missing), writable by every pod user as local-path's.
    pub fn make_dir(&self, volume_id: &str) -> Result<PathBuf, Error> {
        let dir = self.volume_dir(volume_id);
        let make = || -> io::Result<()> {
            match fs::create_dir(&dir) {
                Ok(()) => fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)),
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                Err(err) => Err(err),
            }
        };
        make().map_err(|err| Error::io(format!("making {}", dir.display()), err))?;
        Ok(dir)
    }

    /// Removes the directory with its content, then the record. Missing parts are fine.
    pub fn remove(&self, volume_id: &str) -> Result<(), Error> {
        let dir = self.volume_dir(volume_id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(Error::io(format!("removing {}", dir.display()), err)),
        }
        let record = self.record_path(volume_id);
        match fs::remove_file(&record) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(Error::io(format!("removing {}", record.display()), err)),
        }
    }

    /// Every volume's id and record. Unreadable records are skipped with a warning: one
    /// corrupt file must not stop provisioning on the node.
    pub fn list(&self) -> Result<Vec<(String, VolumeRecord)>, Error> {
        let entries = fs::read_dir(&self.root)
            .map_err(|err| Error::io(format!("listing {}", self.root.display()), err))?;
        let mut volumes = Vec::new();
        for entry in entries {
            let entry =
                entry.map_err(|err| Error::io(format!("listing {}", self.root.display()), err))?;
            let file_name = entry.file_name();
            let Some(volume_id) = file_name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            match self.get(volume_id) {
                Ok(Some(record)) => volumes.push((volume_id.to_string(), record)),
                Ok(None) => {}
                Err(err) => tracing::warn!(%err, "skipping a volume record"),
            }
        }
        volumes.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(volumes)
    }

    /// The capacity given to all volumes together.
    pub fn allocated_bytes(&self) -> Result<i64, Error> {
        Ok(self
            .list()?
            .iter()
            .map(|(_, record)| record.capacity_bytes)
            .sum())
    }
}

/// The volume id for a CreateVolume `name`: the name's `[A-Za-z0-9_-]` characters (others
/// become `-`, at most 64 kept) for people reading the data directory, then 16 hex digits of its
/// FNV-1a hash so that names differing only in dropped characters get different ids. The same
/// name always gives the same id (CreateVolume's idempotency); ids are safe file names.
pub fn volume_id(name: &str) -> String {
    let readable: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    let readable = readable.trim_matches('-');
    let hash = fnv1a64(name.as_bytes());
    if readable.is_empty() {
        format!("{hash:016x}")
    } else {
        format!("{readable}-{hash:016x}")
    }
}

/// Whether `id` can be an id [`volume_id`] made.
pub(crate) fn valid_volume_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// FNV-1a, 64 bits: stable across Rust versions and machines, unlike `DefaultHasher`.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_ids_are_stable_readable_and_safe() {
        let id = volume_id("pvc-6a4c2f1e-0b7d-4c1e-9f7e-2d1c0b9a8f7e");
        assert_eq!(id, volume_id("pvc-6a4c2f1e-0b7d-4c1e-9f7e-2d1c0b9a8f7e"));
        assert!(id.starts_with("pvc-6a4c2f1e-0b7d-4c1e-9f7e-2d1c0b9a8f7e-"));
        // The hash is part of the format: a changed function would orphan existing volumes.
        assert_eq!(volume_id(""), "cbf29ce484222325");
        assert_eq!(volume_id("a"), "a-af63dc4c8601ec8c");

        for name in ["../../etc", "a/b", "日本", "a b", "-x-", &"y".repeat(300)] {
            let id = volume_id(name);
            assert!(valid_volume_id(&id), "{name:?} -> {id:?}");
            assert!(!id.contains(".."));
        }
        assert_ne!(volume_id("a/b"), volume_id("a b"));
        assert!(!valid_volume_id("../x"));
        assert!(!valid_volume_id(""));
        assert!(!valid_volume_id("a.json"));
    }

    #[test]
    fn records_round_trip_and_list_skips_strays() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = VolumeStore::open(dir.path().join("volumes")).expect("open");
        let record = VolumeRecord {
            name: "pvc-1".into(),
            capacity_bytes: 10,
            publications: vec![Publication {
                target_path: "/t".into(),
                readonly: true,
                access_mode: 7,
                fs_type: String::new(),
                mount_flags: vec![],
                staging_target_path: Some("/s".into()),
            }],
            staged_at: Some("/s".into()),
            attached_to: Some("node-a".into()),
        };
        store.put("v1", &record).expect("put");
        store
            .put(
                "v2",
                &VolumeRecord {
                    capacity_bytes: 5,
                    ..record.clone()
                },
            )
            .expect("put");
        fs::write(store.root().join("broken.json"), b"{").expect("write");
        fs::write(store.root().join("notes.txt"), b"").expect("write");
        assert_eq!(store.get("v1").expect("get"), Some(record));
        assert_eq!(store.get("../v1").expect("get"), None);
        assert_eq!(store.allocated_bytes().expect("allocated"), 15);

        let made = store.make_dir("v1").expect("make");
        let mode = fs::metadata(&made).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o777);
        fs::write(made.join("data"), b"x").expect("write");
        store.remove("v1").expect("remove");
        store.remove("v1").expect("remove again");
        assert!(!made.exists());
        assert_eq!(store.get("v1").expect("get"), None);
    }
}
