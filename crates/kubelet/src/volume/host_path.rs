//! `hostPath` (upstream `pkg/volume/hostpath`): the path itself, after upstream's `type` checks
//! (creating the directory or file for the `...OrCreate` types).

use std::fs;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};

use super::VolumeError;

/// Upstream hostPath `SetUp`: no `..` in the path, then the `type` check (creating the directory
/// or file for the `...OrCreate` types). Symlinks are followed, as upstream's `os.Stat`.
pub(super) fn check_host_path(
    volume: &str,
    path: &str,
    path_type: Option<&str>,
) -> Result<(), VolumeError> {
    let fail = |message: String| VolumeError::HostPath {
        volume: volume.to_string(),
        message,
    };
    if path.split('/').any(|part| part == "..") {
        return Err(fail(format!(
            "invalid HostPath `{path}`: must not contain '..'"
        )));
    }
    let path_type = path_type.unwrap_or_default();
    let metadata = fs::metadata(path).ok();
    let file_type = metadata.as_ref().map(fs::Metadata::file_type);
    let not_a = |what: &str| {
        fail(format!(
            "hostPath type check failed: {path} is not a {what}"
        ))
    };
    match path_type {
        "" => {}
        "DirectoryOrCreate" | "Directory" => match file_type {
            None if path_type == "DirectoryOrCreate" => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(path)
                    .map_err(|err| fail(format!("mkdir {path}: {err}")))?;
            }
            Some(t) if t.is_dir() => {}
            _ => return Err(not_a("directory")),
        },
        "FileOrCreate" | "File" => match file_type {
            None if path_type == "FileOrCreate" => {
                // O_CREAT without O_EXCL, and no parents: upstream's `makeFile`.
                fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o644)
                    .open(path)
                    .map_err(|err| fail(format!("open {path}: {err}")))?;
            }
            // Upstream's "file" is anything that is not a directory, socket or device.
            Some(t)
                if !(t.is_dir() || t.is_socket() || t.is_char_device() || t.is_block_device()) => {}
            _ => return Err(not_a("file")),
        },
        "Socket" => {
            if !file_type.is_some_and(|t| t.is_socket()) {
                return Err(not_a("socket file"));
            }
        }
        "CharDevice" => {
            if !file_type.is_some_and(|t| t.is_char_device()) {
                return Err(not_a("character device"));
            }
        }
        "BlockDevice" => {
            if !file_type.is_some_and(|t| t.is_block_device()) {
                return Err(not_a("block device"));
            }
        }
        other => return Err(fail(format!("{other} is an invalid volume type"))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use serde_json::json;

    use crate::podconfig::VolumeHostPath;
    use crate::volume::testing::*;
    use crate::volume::StaticObjectSource;

    async fn host_path(f: &Fixture, path: &Path, kind: &str) -> Result<VolumeHostPath, String> {
        let pod = pod(json!([{"name": "host", "hostPath": {"path": path, "type": kind}}]));
        f.manager
            .prepare(&pod, &StaticObjectSource::new())
            .await
            .map(|mut v| v.remove("host").expect("host volume"))
            .map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn host_path_types() {
        let f = fixture();
        let base = tempfile::tempdir().expect("tempdir");
        let base = base.path();
        let file = base.join("file");
        fs::write(&file, "x").expect("fs");
        let socket_path = base.join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket_path).expect("bind socket");
        let fail = |path: &Path, what: &str| {
            Err(format!(
                "MountVolume.SetUp failed for volume \"host\" : hostPath type check failed: {} is not a {what}",
                path.display()
            ))
        };

        // No type: no check at all, not even existence.
        let absent = base.join("absent");
        assert_eq!(
            host_path(&f, &absent, "").await,
            Ok(VolumeHostPath {
                host_path: absent.to_string_lossy().into(),
                read_only: false
            })
        );
        assert!(!absent.exists());

        let made = base.join("made/deep");
        host_path(&f, &made, "DirectoryOrCreate")
            .await
            .expect("hostPath accepted");
        assert!(made.is_dir());
        host_path(&f, &made, "Directory")
            .await
            .expect("hostPath accepted");
        assert_eq!(
            host_path(&f, &file, "Directory").await,
            fail(&file, "directory")
        );
        assert_eq!(
            host_path(&f, &file, "DirectoryOrCreate").await,
            fail(&file, "directory")
        );
        assert_eq!(
            host_path(&f, &absent, "Directory").await,
            fail(&absent, "directory")
        );

        let new_file = base.join("new-file");
        host_path(&f, &new_file, "FileOrCreate")
            .await
            .expect("hostPath accepted");
        assert!(new_file.is_file());
        assert_eq!(fs::read(&new_file).expect("fs").len(), 0);
        host_path(&f, &file, "FileOrCreate")
            .await
            .expect("hostPath accepted");
        assert_eq!(read(&file), "x", "an existing file is left alone");
        host_path(&f, &file, "File")
            .await
            .expect("hostPath accepted");
        assert_eq!(host_path(&f, &made, "File").await, fail(&made, "file"));
        let orphan = base.join("no-parent/file");
        let err = host_path(&f, &orphan, "FileOrCreate")
            .await
            .expect_err("must fail");
        assert!(err.contains("No such file or directory"), "{err}");

        host_path(&f, &socket_path, "Socket")
            .await
            .expect("hostPath accepted");
        assert_eq!(
            host_path(&f, &file, "Socket").await,
            fail(&file, "socket file")
        );
        host_path(&f, Path::new("/dev/null"), "CharDevice")
            .await
            .expect("hostPath accepted");
        assert_eq!(
            host_path(&f, &file, "CharDevice").await,
            fail(&file, "character device")
        );
        assert_eq!(
            host_path(&f, Path::new("/dev/null"), "BlockDevice").await,
            fail(Path::new("/dev/null"), "block device")
        );

        assert_eq!(
            host_path(&f, &file, "Weird").await,
            Err(
                "MountVolume.SetUp failed for volume \"host\" : Weird is an invalid volume type"
                    .into()
            )
        );
        assert_eq!(
            host_path(&f, Path::new("/var/../etc"), "").await,
            Err("MountVolume.SetUp failed for volume \"host\" : invalid HostPath `/var/../etc`: must not contain '..'".into())
        );
    }

    #[tokio::test]
    async fn host_path_directory_or_create_uses_0755() {
        let f = fixture();
        let base = tempfile::tempdir().expect("tempdir");
        let made = base.path().join("d");
        host_path(&f, &made, "DirectoryOrCreate")
            .await
            .expect("hostPath accepted");
        // 0755 less the umask, as upstream's MkdirAll.
        assert_eq!(mode(&made) & !0o755, 0);
        let made_file = base.path().join("f");
        host_path(&f, &made_file, "FileOrCreate")
            .await
            .expect("hostPath accepted");
        assert_eq!(mode(&made_file) & !0o644, 0);
    }
}
