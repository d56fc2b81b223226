//! `hostPath` (upstream `pkg/volume/hostpath`): the path itself, after upstream's `type` checks
//! (creating the directory or file for the `...OrCreate` types).

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};

use super::VolumeError;

/// Why a `hostPath` volume cannot be set up (upstream's messages).
#[derive(Debug, thiserror::Error)]
pub enum HostPathError {
    /// The path has a `..` element.
    #[error("invalid HostPath `{path}`: must not contain '..'")]
    Backsteps {
        /// The path as written.
        path: String,
    },
    /// The path is missing or is not what `type` asks for.
    #[error("hostPath type check failed: {path} is not a {expected}")]
    TypeMismatch {
        /// The path.
        path: String,
        /// What `type` asks for, in upstream's words: `directory`, `file`, `socket file`,
        /// `character device` or `block device`.
        expected: &'static str,
    },
    /// `DirectoryOrCreate`: the directory could not be made.
    #[error("mkdir {path}: {source}")]
    CreateDirectory {
        /// The path.
        path: String,
        /// The OS's error.
        #[source]
        source: io::Error,
    },
    /// `FileOrCreate`: the file could not be made.
    #[error("open {path}: {source}")]
    CreateFile {
        /// The path.
        path: String,
        /// The OS's error.
        #[source]
        source: io::Error,
    },
    /// A `type` Kubernetes does not define.
    #[error("{path_type} is an invalid volume type")]
    InvalidType {
        /// The type as written.
        path_type: String,
    },
}

/// Upstream hostPath `SetUp`: no `..` in the path, then the `type` check (creating the directory
/// or file for the `...OrCreate` types). Symlinks are followed, as upstream's `os.Stat`.
pub(super) fn check_host_path(
    volume: &str,
    path: &str,
    path_type: Option<&str>,
) -> Result<(), VolumeError> {
    check(path, path_type.unwrap_or_default()).map_err(|source| VolumeError::HostPath {
        volume: volume.to_string(),
        source,
    })
}

fn check(path: &str, path_type: &str) -> Result<(), HostPathError> {
    if path.split('/').any(|part| part == "..") {
        return Err(HostPathError::Backsteps {
            path: path.to_string(),
        });
    }
    let metadata = fs::metadata(path).ok();
    let file_type = metadata.as_ref().map(fs::Metadata::file_type);
    let not_a = |expected| HostPathError::TypeMismatch {
        path: path.to_string(),
        expected,
    };
    match path_type {
        "" => {}
        "DirectoryOrCreate" | "Directory" => match file_type {
            None if path_type == "DirectoryOrCreate" => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(path)
                    .map_err(|source| HostPathError::CreateDirectory {
                        path: path.to_string(),
                        source,
                    })?;
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
                    .map_err(|source| HostPathError::CreateFile {
                        path: path.to_string(),
                        source,
                    })?;
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
        other => {
            return Err(HostPathError::InvalidType {
                path_type: other.to_string(),
            })
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use serde_json::json;

    use super::HostPathError;
    use crate::podconfig::VolumeHostPath;
    use crate::volume::testing::*;
    use crate::volume::{StaticObjectSource, VolumeError};

    async fn host_path(
        f: &Fixture,
        path: &Path,
        kind: &str,
    ) -> Result<VolumeHostPath, VolumeError> {
        let pod = pod(json!([{"name": "host", "hostPath": {"path": path, "type": kind}}]));
        f.manager
            .prepare(&pod, &StaticObjectSource::new())
            .await
            .map(|mut v| v.remove("host").expect("host volume"))
    }

    /// Why the `host` volume was refused.
    async fn refused(f: &Fixture, path: &Path, kind: &str) -> HostPathError {
        match host_path(f, path, kind).await {
            Err(VolumeError::HostPath { volume, source }) if volume == "host" => source,
            other => panic!("{} {kind}: {other:?}", path.display()),
        }
    }

    /// The path and the kind of a failed type check.
    async fn mismatch(f: &Fixture, path: &Path, kind: &str) -> (String, &'static str) {
        match refused(f, path, kind).await {
            HostPathError::TypeMismatch { path, expected } => (path, expected),
            other => panic!("{other:?}"),
        }
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
        let not_a = |path: &Path, expected| (path.display().to_string(), expected);

        // No type: no check at all, not even existence.
        let absent = base.join("absent");
        assert_eq!(
            host_path(&f, &absent, "").await.expect("no type, no check"),
            VolumeHostPath {
                host_path: absent.to_string_lossy().into(),
                read_only: false
            }
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
            mismatch(&f, &file, "Directory").await,
            not_a(&file, "directory")
        );
        assert_eq!(
            mismatch(&f, &file, "DirectoryOrCreate").await,
            not_a(&file, "directory")
        );
        assert_eq!(
            mismatch(&f, &absent, "Directory").await,
            not_a(&absent, "directory")
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
        assert_eq!(mismatch(&f, &made, "File").await, not_a(&made, "file"));
        let orphan = base.join("no-parent/file");
        match refused(&f, &orphan, "FileOrCreate").await {
            HostPathError::CreateFile { path, source } => {
                assert_eq!(Path::new(&path), orphan);
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }

        host_path(&f, &socket_path, "Socket")
            .await
            .expect("hostPath accepted");
        assert_eq!(
            mismatch(&f, &file, "Socket").await,
            not_a(&file, "socket file")
        );
        host_path(&f, Path::new("/dev/null"), "CharDevice")
            .await
            .expect("hostPath accepted");
        assert_eq!(
            mismatch(&f, &file, "CharDevice").await,
            not_a(&file, "character device")
        );
        assert_eq!(
            mismatch(&f, Path::new("/dev/null"), "BlockDevice").await,
            not_a(Path::new("/dev/null"), "block device")
        );

        assert!(matches!(
            refused(&f, &file, "Weird").await,
            HostPathError::InvalidType { path_type } if path_type == "Weird"
        ));
        assert!(matches!(
            refused(&f, Path::new("/var/../etc"), "").await,
            HostPathError::Backsteps { path } if path == "/var/../etc"
        ));
    }

    /// The messages of upstream's `FailedMount` events.
    #[tokio::test]
    async fn host_path_messages() {
        let f = fixture();
        let base = tempfile::tempdir().expect("tempdir");
        let file = base.path().join("file");
        fs::write(&file, "x").expect("fs");
        let message =
            |r: Result<VolumeHostPath, VolumeError>| r.expect_err("hostPath refused").to_string();
        assert_eq!(
            message(host_path(&f, &file, "Directory").await),
            format!(
                "MountVolume.SetUp failed for volume \"host\" : hostPath type check failed: {} is not a directory",
                file.display()
            )
        );
        assert_eq!(
            message(host_path(&f, &file, "Weird").await),
            "MountVolume.SetUp failed for volume \"host\" : Weird is an invalid volume type"
        );
        assert_eq!(
            message(host_path(&f, Path::new("/var/../etc"), "").await),
            "MountVolume.SetUp failed for volume \"host\" : invalid HostPath `/var/../etc`: must not contain '..'"
        );
        let orphan = base.path().join("no-parent/file");
        assert_eq!(
            message(host_path(&f, &orphan, "FileOrCreate").await),
            format!(
                "MountVolume.SetUp failed for volume \"host\" : open {}: No such file or directory (os error 2)",
                orphan.display()
            )
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
