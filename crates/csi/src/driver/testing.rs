//! Builders for the driver's unit tests: a driver on a temporary directory with a fake mounter,
//! and the requests the tests send.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{DriverConfig, LocalDriver, TOPOLOGY_KEY};
use crate::mounter::FakeMounter;
use crate::v1::volume_capability::access_mode::Mode;
use crate::v1::volume_capability::{AccessMode, AccessType, BlockVolume, MountVolume};
use crate::v1::{CapacityRange, CreateVolumeRequest, NodePublishVolumeRequest, VolumeCapability};

pub(crate) const NODE: &str = "node-a";

/// A driver for node [`NODE`] on a temporary directory.
pub(crate) struct Fixture {
    pub dir: tempfile::TempDir,
    pub mounter: Arc<FakeMounter>,
    pub driver: LocalDriver,
}

impl Fixture {
    pub fn new(capacity_bytes: Option<i64>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mounter = Arc::new(FakeMounter::new());
        let driver = LocalDriver::new(
            DriverConfig {
                node_id: NODE.to_string(),
                root: dir.path().join("volumes"),
                capacity_bytes,
            },
            mounter.clone(),
        )
        .expect("driver");
        Self {
            dir,
            mounter,
            driver,
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("volumes")
    }

    /// A publish target under the temporary directory, its parent made as the kubelet would.
    pub fn target(&self, pod: &str) -> PathBuf {
        let parent = self.dir.path().join("pods").join(pod);
        std::fs::create_dir_all(&parent).expect("mkdir");
        parent.join("mount")
    }
}

pub(crate) fn mount_capability(mode: Mode) -> VolumeCapability {
    VolumeCapability {
        access_type: Some(AccessType::Mount(MountVolume::default())),
        access_mode: Some(AccessMode { mode: mode.into() }),
    }
}

pub(crate) fn block_capability() -> VolumeCapability {
    VolumeCapability {
        access_type: Some(AccessType::Block(BlockVolume {})),
        access_mode: Some(AccessMode {
            mode: Mode::SingleNodeWriter.into(),
        }),
    }
}

/// CreateVolume for `name` with `required_bytes` (0: unset) and ReadWriteOnce's mode.
pub(crate) fn create_request(name: &str, required_bytes: i64) -> CreateVolumeRequest {
    CreateVolumeRequest {
        name: name.to_string(),
        capacity_range: (required_bytes > 0).then_some(CapacityRange {
            required_bytes,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![mount_capability(Mode::SingleNodeMultiWriter)],
        ..Default::default()
    }
}

pub(crate) fn publish_request(
    volume_id: &str,
    target: &Path,
    mode: Mode,
    readonly: bool,
) -> NodePublishVolumeRequest {
    NodePublishVolumeRequest {
        volume_id: volume_id.to_string(),
        target_path: target.display().to_string(),
        volume_capability: Some(mount_capability(mode)),
        readonly,
        ..Default::default()
    }
}

pub(crate) fn node_topology(node: &str) -> crate::v1::Topology {
    crate::v1::Topology {
        segments: [(TOPOLOGY_KEY.to_string(), node.to_string())].into(),
    }
}
