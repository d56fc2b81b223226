//! The mount syscalls NodePublishVolume and NodeUnpublishVolume need, behind [`Mounter`] so the
//! driver is tested without root: [`HostMounter`] mounts for real (rustix), `FakeMounter` (tests
//! and the `testing` feature) keeps a mount table in memory and records its `MountCall`s.

use std::io;
use std::path::Path;

/// The mount operations of the node driver.
pub trait Mounter: Send + Sync {
    /// Whether `path` is the root of a mount (false when it does not exist).
    fn is_mount_point(&self, path: &Path) -> io::Result<bool>;
    /// Bind-mounts the directory `source` onto the existing directory `target`, read-only when
    /// `readonly`. On failure nothing is left mounted.
    fn bind_mount(&self, source: &Path, target: &Path, readonly: bool) -> io::Result<()>;
    /// Unmounts the topmost mount on `target`.
    fn unmount(&self, target: &Path) -> io::Result<()>;
}

/// [`Mounter`] on the host: `mount(2)`/`umount2(2)` through rustix, mount roots from `statx(2)`
/// (`STATX_ATTR_MOUNT_ROOT`, Linux 5.8). Mounting needs `CAP_SYS_ADMIN`.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostMounter;

impl Mounter for HostMounter {
    fn is_mount_point(&self, path: &Path) -> io::Result<bool> {
        use rustix::fs::{statx, AtFlags, StatxAttributes, StatxFlags, CWD};
        // A bind mount of a directory of the same filesystem has the same st_dev as its parent,
        // so comparing devices (what `mountpoint(1)` once did) would miss exactly our mounts.
        let stat = match statx(
            CWD,
            path,
            AtFlags::NO_AUTOMOUNT | AtFlags::SYMLINK_NOFOLLOW,
            StatxFlags::BASIC_STATS,
        ) {
            Ok(stat) => stat,
            Err(rustix::io::Errno::NOENT) => return Ok(false),
            Err(err) => return Err(err.into()),
        };
        if !stat
            .stx_attributes_mask
            .contains(StatxAttributes::MOUNT_ROOT)
        {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the kernel does not report mount roots in statx (Linux 5.8 or later is needed)",
            ));
        }
        Ok(stat.stx_attributes.contains(StatxAttributes::MOUNT_ROOT))
    }

    fn bind_mount(&self, source: &Path, target: &Path, readonly: bool) -> io::Result<()> {
        rustix::mount::mount_bind(source, target)?;
        if readonly {
            // MS_RDONLY is ignored on the first MS_BIND; it takes a remount. A bind remount sets
            // every per-mount flag, so the ones the new mount inherited are passed again.
            let remount = inherited_flags(target).and_then(|flags| {
                rustix::mount::mount_remount(
                    target,
                    flags | rustix::mount::MountFlags::BIND | rustix::mount::MountFlags::RDONLY,
                    "",
                )
                .map_err(io::Error::from)
            });
            if let Err(err) = remount {
                let _ = rustix::mount::unmount(target, rustix::mount::UnmountFlags::empty());
                return Err(err);
            }
        }
        Ok(())
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        rustix::mount::unmount(target, rustix::mount::UnmountFlags::empty())?;
        Ok(())
    }
}

/// The per-mount flags (nosuid, nodev, noexec, atime) of the mount at `path`.
fn inherited_flags(path: &Path) -> io::Result<rustix::mount::MountFlags> {
    use rustix::fs::StatVfsMountFlags as St;
    use rustix::mount::MountFlags as Ms;
    let current = rustix::fs::statvfs(path)?.f_flag;
    let pairs = [
        (St::NOSUID, Ms::NOSUID),
        (St::NODEV, Ms::NODEV),
        (St::NOEXEC, Ms::NOEXEC),
        (St::NOATIME, Ms::NOATIME),
        (St::NODIRATIME, Ms::NODIRATIME),
        (St::RELATIME, Ms::RELATIME),
    ];
    Ok(pairs
        .into_iter()
        .filter(|(st, _)| current.contains(*st))
        .fold(Ms::empty(), |flags, (_, ms)| flags | ms))
}

#[cfg(any(test, feature = "testing"))]
pub use fake::{FakeMounter, MountCall};

#[cfg(any(test, feature = "testing"))]
mod fake {
    use std::io;
    use std::path::{Path, PathBuf};

    use parking_lot::Mutex;

    use super::Mounter;

    /// A call recorded by [`FakeMounter`].
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum MountCall {
        /// [`Mounter::bind_mount`].
        Bind {
            /// The volume directory.
            source: PathBuf,
            /// Where it was mounted.
            target: PathBuf,
            /// Read-only.
            readonly: bool,
        },
        /// [`Mounter::unmount`].
        Unmount {
            /// The target.
            target: PathBuf,
        },
    }

    /// [`Mounter`] in memory, for tests: a bind mount adds `target` to a mount table (nothing is
    /// mounted), an unmount removes it, and every call is recorded. Mounts can be made to fail.
    #[derive(Debug, Default)]
    pub struct FakeMounter {
        state: Mutex<State>,
    }

    #[derive(Debug, Default)]
    struct State {
        mounts: Vec<PathBuf>,
        calls: Vec<MountCall>,
        fail_mounts: bool,
    }

    impl FakeMounter {
        /// A fake with nothing mounted.
        pub fn new() -> Self {
            Self::default()
        }

        /// The calls made so far, in order.
        pub fn calls(&self) -> Vec<MountCall> {
            self.state.lock().calls.clone()
        }

        /// The mounted targets, oldest first.
        pub fn mounts(&self) -> Vec<PathBuf> {
            self.state.lock().mounts.clone()
        }

        /// Forgets every mount, as a reboot would.
        pub fn clear_mounts(&self) {
            self.state.lock().mounts.clear();
        }

        /// Makes later bind mounts fail with `EPERM` (recorded, nothing mounted), or succeed.
        pub fn fail_mounts(&self, fail: bool) {
            self.state.lock().fail_mounts = fail;
        }
    }

    impl Mounter for FakeMounter {
        fn is_mount_point(&self, path: &Path) -> io::Result<bool> {
            Ok(self.state.lock().mounts.iter().any(|m| m == path))
        }

        fn bind_mount(&self, source: &Path, target: &Path, readonly: bool) -> io::Result<()> {
            let mut state = self.state.lock();
            state.calls.push(MountCall::Bind {
                source: source.to_path_buf(),
                target: target.to_path_buf(),
                readonly,
            });
            if state.fail_mounts {
                return Err(io::Error::from_raw_os_error(1));
            }
            state.mounts.push(target.to_path_buf());
            Ok(())
        }

        fn unmount(&self, target: &Path) -> io::Result<()> {
            let mut state = self.state.lock();
            state.calls.push(MountCall::Unmount {
                target: target.to_path_buf(),
            });
            match state.mounts.iter().rposition(|m| m == target) {
                Some(i) => {
                    state.mounts.remove(i);
                    Ok(())
                }
                // umount2(2) on a path that is not a mount point.
                None => Err(io::Error::from_raw_os_error(22)),
            }
        }
    }
}
