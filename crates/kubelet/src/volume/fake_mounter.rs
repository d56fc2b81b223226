//! [`Mounter`] in memory for tests (built for this crate's tests and with the `testing`
//! feature, never into the release binary).

use parking_lot::Mutex;
use std::io;
use std::path::{Path, PathBuf};

use super::mounter::{MountPoint, Mounter};

/// A call recorded by [`FakeMounter`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountCall {
    /// [`Mounter::mount_tmpfs`].
    MountTmpfs {
        /// The target.
        target: PathBuf,
        /// The size limit.
        size_bytes: Option<i64>,
    },
    /// [`Mounter::unmount`].
    Unmount {
        /// The target.
        target: PathBuf,
    },
}

/// [`Mounter`] in memory, for tests: a mount adds a [`MountPoint`] (nothing is mounted, files go
/// to the directory underneath), an unmount removes the newest one on that path, and every call is
/// recorded. Unmounts can be made to fail.
#[derive(Debug, Default)]
pub struct FakeMounter {
    state: Mutex<FakeMounterState>,
}

#[derive(Debug, Default)]
struct FakeMounterState {
    mounts: Vec<MountPoint>,
    calls: Vec<MountCall>,
    fail_unmounts: bool,
}

impl FakeMounter {
    /// A fake with no mounts.
    pub fn new() -> Self {
        Self::default()
    }

    /// The calls made so far, in order.
    pub fn calls(&self) -> Vec<MountCall> {
        self.state.lock().calls.clone()
    }

    /// Adds a mount point as if something else had mounted it.
    pub fn add_mount(&self, mount: MountPoint) {
        self.state.lock().mounts.push(mount);
    }

    /// Makes later unmounts fail with `EBUSY` (and leave the mount) or succeed again.
    pub fn fail_unmounts(&self, fail: bool) {
        self.state.lock().fail_unmounts = fail;
    }
}

impl Mounter for FakeMounter {
    fn mount_points(&self) -> io::Result<Vec<MountPoint>> {
        Ok(self.state.lock().mounts.clone())
    }

    fn mount_tmpfs(&self, target: &Path, size_bytes: Option<i64>) -> io::Result<()> {
        let mut state = self.state.lock();
        state.calls.push(MountCall::MountTmpfs {
            target: target.to_path_buf(),
            size_bytes,
        });
        state.mounts.push(MountPoint {
            path: target.to_path_buf(),
            fs_type: "tmpfs".to_string(),
        });
        Ok(())
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.calls.push(MountCall::Unmount {
            target: target.to_path_buf(),
        });
        if state.fail_unmounts {
            return Err(io::Error::from_raw_os_error(16)); // EBUSY
        }
        match state.mounts.iter().rposition(|m| m.path == target) {
            Some(index) => {
                state.mounts.remove(index);
                Ok(())
            }
            None => Err(io::Error::from_raw_os_error(22)), // EINVAL: not a mount point
        }
    }
}
