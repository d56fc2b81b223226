//! Upstream's AtomicWriter (`pkg/volume/util/atomic_writer.go`) and the file projections it
//! writes: how configMap, secret, downwardAPI and projected volumes put their files on disk so
//! that a container sees an update as one atomic switch.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::api::core::v1::KeyToPath;

use super::{io_err, is_path_component, VolumeError};
use crate::downward::go_quote;

/// One file of a volume (upstream `FileProjection`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct FileProjection {
    pub(super) data: Vec<u8>,
    /// Permission bits.
    pub(super) mode: u32,
}

/// Files by path relative to the volume directory.
pub(super) type Payload = BTreeMap<String, FileProjection>;

pub(super) fn file_mode(mode: i32) -> u32 {
    // The API validates modes to 0..=0777; mask anything else rather than set odd bits.
    u32::try_from(mode).unwrap_or(0o644) & 0o777
}

/// The keys of an object mapped to files (upstream `MakePayload` of the configmap and secret
/// plugins): every key when `items` is empty, else only the listed ones at their paths, with
/// their modes. A listed key that is missing is skipped when `optional`, else `missing_key(key)`.
pub(super) fn key_payload(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
    optional: bool,
    missing_key: impl Fn(&str) -> VolumeError,
) -> Result<Payload, VolumeError> {
    let mut payload = Payload::new();
    match items.filter(|items| !items.is_empty()) {
        None => {
            for (key, bytes) in data {
                payload.insert(
                    key.clone(),
                    FileProjection {
                        data: bytes.clone(),
                        mode: file_mode(default_mode),
                    },
                );
            }
        }
        Some(items) => {
            for item in items {
                let Some(bytes) = data.get(&item.key) else {
                    if optional {
                        continue;
                    }
                    return Err(missing_key(&item.key));
                };
                payload.insert(
                    item.path.clone(),
                    FileProjection {
                        data: bytes.clone(),
                        mode: file_mode(item.mode.unwrap_or(default_mode)),
                    },
                );
            }
        }
    }
    Ok(payload)
}

/// The symlink to the current timestamped directory.
const DATA_DIR_NAME: &str = "..data";
/// The symlink renamed over [`DATA_DIR_NAME`] to switch it atomically.
const NEW_DATA_DIR_NAME: &str = "..data_tmp";
/// Upstream's limits on payload paths.
const MAX_PATH_LENGTH: usize = 4096;
const MAX_FILE_NAME_LENGTH: usize = 255;

/// Writes a volume's files so a reader sees either all the old ones or all the new ones
/// (upstream `pkg/volume/util/atomic_writer.go`). The layout in the volume directory:
///
/// ```text
/// ..2024_05_01_10_00_00.123/   the files of one version, nested paths included
/// ..data -> ..2024_05_01_10_00_00.123
/// key    -> ..data/key         one symlink per top-level name
/// dir    -> ..data/dir         (for `dir/file` paths)
/// ```
///
/// An update writes a new timestamped directory, points a temporary symlink at it and renames
/// that over `..data` (rename is atomic), adds links for new top-level names, removes those of
/// names that are gone, and removes the old directory. Nothing is written when the files and
/// modes are unchanged.
pub(super) struct AtomicWriter<'a> {
    pub(super) target_dir: &'a Path,
    pub(super) volume: &'a str,
}

/// Ensures unique timestamped directory names within a process.
static TS_DIR_COUNTER: AtomicU64 = AtomicU64::new(0);

impl AtomicWriter<'_> {
    pub(super) fn write(&self, payload: Payload) -> Result<(), VolumeError> {
        let payload = self.clean_payload(payload)?;
        let target = self.target_dir;
        let data_link = target.join(DATA_DIR_NAME);

        // The current version, if any.
        let old_ts_dir = match fs::read_link(&data_link) {
            Ok(link) => link
                .to_str()
                .filter(|name| is_path_component(name))
                .map(str::to_string),
            Err(err) if err.kind() == io::ErrorKind::NotFound => None,
            Err(err) => return Err(self.io("read link", &data_link)(err)),
        };

        // Paths of the current version the new one no longer has (a parent directory of a new
        // path is still needed).
        let mut to_remove = BTreeSet::new();
        if let Some(old) = &old_ts_dir {
            self.walk(&target.join(old), "", &mut to_remove)?;
        }
        for path in payload.keys() {
            let mut current = path.as_str();
            loop {
                to_remove.remove(current);
                match current.rsplit_once('/') {
                    Some((parent, _)) => current = parent,
                    None => break,
                }
            }
        }

        if old_ts_dir.is_some() && to_remove.is_empty() && self.unchanged(&payload) {
            tracing::trace!(volume = self.volume, "volume files unchanged");
            return self.create_user_visible_files(&payload);
        }

        let new_ts_dir = self.new_timestamp_dir()?;
        let new_ts_path = target.join(&new_ts_dir);
        if let Err(err) = self.write_payload(&new_ts_path, &payload) {
            let _ = fs::remove_dir_all(&new_ts_path);
            return Err(err);
        }

        // The switch: a new symlink renamed over `..data`.
        let tmp_link = target.join(NEW_DATA_DIR_NAME);
        match fs::remove_file(&tmp_link) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => {
                return Err(self.io("remove", &tmp_link)(err));
            }
            _ => {}
        }
        std::os::unix::fs::symlink(&new_ts_dir, &tmp_link)
            .map_err(self.io("create symlink", &tmp_link))?;
        fs::rename(&tmp_link, &data_link).map_err(self.io("rename over", &data_link))?;
        tracing::debug!(volume = self.volume, dir = %new_ts_dir, "volume files updated");

        self.create_user_visible_files(&payload)?;
        // Only top-level names have links; deeper paths went away with the old directory.
        for path in to_remove.iter().filter(|path| !path.contains('/')) {
            let link = target.join(path);
            match fs::remove_file(&link) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => {
                    return Err(self.io("remove", &link)(err));
                }
                _ => {}
            }
        }

        // The old version, and any directory left by a write that failed before its switch.
        // Payload paths cannot start with `..`, so every such directory is ours.
        let entries = fs::read_dir(target).map_err(self.io("list", target))?;
        for entry in entries {
            let entry = entry.map_err(self.io("list", target))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_dir && name.starts_with("..") && name != new_ts_dir {
                let path = entry.path();
                fs::remove_dir_all(&path).map_err(self.io("remove", &path))?;
            }
        }
        Ok(())
    }

    fn io<'b>(
        &'b self,
        action: &'static str,
        path: &'b Path,
    ) -> impl FnOnce(io::Error) -> VolumeError + 'b {
        io_err(self.volume, action, path)
    }

    /// Upstream `validatePayload`: every path relative, without `..`, not starting with `..`,
    /// within the length limits; then cleaned (`a//./b` → `a/b`).
    fn clean_payload(&self, payload: Payload) -> Result<Payload, VolumeError> {
        let invalid = |message: String| VolumeError::InvalidSpec {
            volume: self.volume.to_string(),
            message,
        };
        let mut clean = Payload::new();
        for (path, file) in payload {
            if path.is_empty() {
                return Err(invalid(format!(
                    "invalid path: must not be empty: {}",
                    go_quote(&path)
                )));
            }
            if path.starts_with('/') {
                return Err(invalid(format!(
                    "invalid path: must be relative path: {path}"
                )));
            }
            if path.len() > MAX_PATH_LENGTH {
                return Err(invalid(format!(
                    "invalid path: must be less than or equal to {MAX_PATH_LENGTH} characters"
                )));
            }
            let parts: Vec<&str> = path.split('/').collect();
            for part in &parts {
                if *part == ".." {
                    return Err(invalid(format!(
                        "invalid path: must not contain '..': {path}"
                    )));
                }
                if part.len() > MAX_FILE_NAME_LENGTH {
                    return Err(invalid(format!(
                        "invalid path: filenames must be less than or equal to {MAX_FILE_NAME_LENGTH} characters"
                    )));
                }
            }
            if parts[0].starts_with("..") && parts[0].len() > 2 {
                return Err(invalid(format!(
                    "invalid path: must not start with '..': {path}"
                )));
            }
            let cleaned: Vec<&str> = parts
                .into_iter()
                .filter(|part| !part.is_empty() && *part != ".")
                .collect();
            if cleaned.is_empty() || path.contains('\0') {
                return Err(invalid(format!("invalid path: {}", go_quote(&path))));
            }
            clean.insert(cleaned.join("/"), file);
        }
        Ok(clean)
    }

    /// Collects the paths (files and directories) under `dir`, relative, `/`-separated.
    fn walk(
        &self,
        dir: &Path,
        prefix: &str,
        out: &mut BTreeSet<String>,
    ) -> Result<(), VolumeError> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            // `..data` pointing nowhere: nothing to compare with.
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(self.io("list", dir)(err)),
        };
        for entry in entries {
            let entry = entry.map_err(self.io("list", dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let relative = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            // `file_type` does not follow symlinks.
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                self.walk(&entry.path(), &relative, out)?;
            }
            out.insert(relative);
        }
        Ok(())
    }

    /// Whether the current version has exactly these contents and modes (upstream compares
    /// contents only; a mode change is rewritten too).
    fn unchanged(&self, payload: &Payload) -> bool {
        let data_dir = self.target_dir.join(DATA_DIR_NAME);
        payload.iter().all(|(path, file)| {
            let full = data_dir.join(path);
            let same_mode = fs::symlink_metadata(&full)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o7777 == file.mode);
            same_mode && fs::read(&full).is_ok_and(|data| data == file.data)
        })
    }

    /// A new `..<UTC timestamp>.<n>` directory, mode 0755 (so group and other can traverse it
    /// whatever the umask).
    fn new_timestamp_dir(&self) -> Result<String, VolumeError> {
        let now = jiff::Timestamp::now();
        let stamp = now.strftime("..%Y_%m_%d_%H_%M_%S").to_string();
        loop {
            let n = TS_DIR_COUNTER.fetch_add(1, Ordering::Relaxed);
            let name = format!("{stamp}.{}{n}", now.subsec_nanosecond());
            let path = self.target_dir.join(&name);
            match fs::DirBuilder::new().mode(0o755).create(&path) {
                Ok(()) => {
                    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
                        .map_err(self.io("chmod", &path))?;
                    return Ok(name);
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(err) => return Err(self.io("create directory", &path)(err)),
            }
        }
    }

    fn write_payload(&self, dir: &Path, payload: &Payload) -> Result<(), VolumeError> {
        for (path, file) in payload {
            let full = dir.join(path);
            if let Some(parent) = full.parent() {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o777)
                    .create(parent)
                    .map_err(self.io("create directory", parent))?;
            }
            let mut handle = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(file.mode)
                .open(&full)
                .map_err(self.io("create file", &full))?;
            handle
                .write_all(&file.data)
                .map_err(self.io("write file", &full))?;
            // The umask may have cleared bits of the requested mode.
            fs::set_permissions(&full, fs::Permissions::from_mode(file.mode))
                .map_err(self.io("chmod", &full))?;
        }
        Ok(())
    }

    /// Links `name -> ..data/name` for each top-level name that has none yet.
    fn create_user_visible_files(&self, payload: &Payload) -> Result<(), VolumeError> {
        let names: BTreeSet<&str> = payload
            .keys()
            .map(|path| path.split('/').next().unwrap_or(path))
            .collect();
        for name in names {
            let link = self.target_dir.join(name);
            match fs::symlink_metadata(&link) {
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    std::os::unix::fs::symlink(Path::new(DATA_DIR_NAME).join(name), &link)
                        .map_err(self.io("create symlink", &link))?;
                }
                Err(err) => return Err(self.io("stat", &link)(err)),
                Ok(_) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use serde_json::json;

    use crate::volume::testing::*;
    use crate::volume::StaticObjectSource;

    #[tokio::test]
    async fn config_map_update_switches_atomically() {
        let f = fixture();
        let source = StaticObjectSource::new().with_config_map(config_map(
            "conf",
            json!({"keep": "v1", "gone": "x", "sub/ignored": "y"}),
        ));
        let pod = pod(
            json!([{"name": "config", "configMap": {"name": "conf", "items": [
                {"key": "keep", "path": "keep"},
                {"key": "gone", "path": "gone"},
                {"key": "gone", "path": "deep/gone"},
            ]}}]),
        );
        f.manager.prepare(&pod, &source).await.expect("prepare");
        let dir = volume_dir(&f, "kubernetes.io~configmap", "config");
        let first = ts_dirs(&dir);
        assert_eq!(visible(&dir), ["deep", "gone", "keep"]);

        // Unchanged: nothing rewritten.
        f.manager.prepare(&pod, &source).await.expect("prepare");
        assert_eq!(ts_dirs(&dir), first);

        // "gone" deleted from the configMap; optional would skip it, so make the items
        // reference only what is left.
        source.insert_config_map(config_map("conf", json!({"keep": "v2"})));
        let pod = pod_with(
            json!([{"name": "config", "configMap": {"name": "conf"}}]),
            json!([{"name": "app"}]),
        );
        f.manager.prepare(&pod, &source).await.expect("prepare");
        assert_eq!(read(&dir.join("keep")), "v2");
        let second = ts_dirs(&dir);
        assert_eq!(second.len(), 1, "old version removed: {second:?}");
        assert_ne!(second, first);
        assert_eq!(visible(&dir), ["keep"]);
        assert!(fs::symlink_metadata(dir.join("gone")).is_err());
        assert!(fs::symlink_metadata(dir.join("deep")).is_err());
    }

    #[tokio::test]
    async fn mode_change_alone_is_rewritten() {
        let f = fixture();
        let source =
            StaticObjectSource::new().with_config_map(config_map("conf", json!({"k": "v"})));
        let volume =
            |m: i32| pod(json!([{"name": "c", "configMap": {"name": "conf", "defaultMode": m}}]));
        f.manager
            .prepare(&volume(0o644), &source)
            .await
            .expect("prepare");
        f.manager
            .prepare(&volume(0o440), &source)
            .await
            .expect("prepare");
        let dir = volume_dir(&f, "kubernetes.io~configmap", "c");
        assert_eq!(mode(&dir.join("k")), 0o440);
        assert_eq!(ts_dirs(&dir).len(), 1);
    }

    #[tokio::test]
    async fn stale_versions_from_a_failed_write_are_swept() {
        let f = fixture();
        let source =
            StaticObjectSource::new().with_config_map(config_map("conf", json!({"k": "v1"})));
        let pod = pod(json!([{"name": "c", "configMap": {"name": "conf"}}]));
        f.manager.prepare(&pod, &source).await.expect("prepare");
        let dir = volume_dir(&f, "kubernetes.io~configmap", "c");
        fs::create_dir(dir.join("..2001_01_01_00_00_00.1")).expect("fs");
        std::os::unix::fs::symlink("nowhere", dir.join("..data_tmp")).expect("fs");
        source.insert_config_map(config_map("conf", json!({"k": "v2"})));
        f.manager.prepare(&pod, &source).await.expect("prepare");
        assert_eq!(read(&dir.join("k")), "v2");
        assert_eq!(ts_dirs(&dir).len(), 1);
        assert!(fs::symlink_metadata(dir.join("..data_tmp")).is_err());
    }

    #[tokio::test]
    async fn invalid_item_paths_are_refused_like_upstream() {
        let f = fixture();
        let source =
            StaticObjectSource::new().with_config_map(config_map("conf", json!({"a": "A"})));
        for (path, message) in [
            (
                "../escape",
                "invalid path: must not contain '..': ../escape",
            ),
            ("/abs", "invalid path: must be relative path: /abs"),
            ("..data", "invalid path: must not start with '..': ..data"),
            ("", "invalid path: must not be empty: \"\""),
        ] {
            let pod = pod(
                json!([{"name": "c", "configMap": {"name": "conf", "items": [{"key": "a", "path": path}]}}]),
            );
            assert_eq!(
                prepare_err(&f, &pod, &source).await,
                format!("MountVolume.SetUp failed for volume \"c\" : {message}")
            );
        }
        // `a//./b` is cleaned to `a/b`.
        let pod = pod(
            json!([{"name": "c", "configMap": {"name": "conf", "items": [{"key": "a", "path": "x//./y"}]}}]),
        );
        f.manager.prepare(&pod, &source).await.expect("prepare");
        assert_eq!(
            read(&volume_dir(&f, "kubernetes.io~configmap", "c").join("x/y")),
            "A"
        );
    }
}
