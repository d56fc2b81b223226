//! NodePublishVolume and NodeUnpublishVolume with real bind mounts ([`HostMounter`]). Needs root:
//! `cargo test -p ferry-csi --test host_mounts -- --ignored`. Mounts are made under a temporary
//! directory and taken down by a guard even when an assertion fails.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_csi::mounter::{HostMounter, Mounter};
use ferry_csi::v1::controller_server::Controller;
use ferry_csi::v1::node_server::Node;
use ferry_csi::v1::volume_capability::access_mode::Mode;
use ferry_csi::v1::volume_capability::{AccessMode, AccessType, MountVolume};
use ferry_csi::v1::*;
use ferry_csi::{DriverConfig, LocalDriver};
use tonic::Request;

/// Unmounts whatever is still mounted on its targets when dropped.
struct Unmounter(Vec<PathBuf>);

impl Drop for Unmounter {
    fn drop(&mut self) {
        for target in &self.0 {
            for _ in 0..8 {
                if !HostMounter.is_mount_point(target).unwrap_or(false) {
                    break;
                }
                let _ = rustix::mount::unmount(target, rustix::mount::UnmountFlags::DETACH);
            }
        }
    }
}

fn publish_request(volume_id: &str, target: &Path, readonly: bool) -> NodePublishVolumeRequest {
    NodePublishVolumeRequest {
        volume_id: volume_id.into(),
        target_path: target.display().to_string(),
        volume_capability: Some(VolumeCapability {
            access_type: Some(AccessType::Mount(MountVolume::default())),
            access_mode: Some(AccessMode {
                mode: Mode::SingleNodeMultiWriter.into(),
            }),
        }),
        readonly,
        ..Default::default()
    }
}

#[tokio::test]
#[ignore = "needs root: makes real bind mounts"]
async fn bind_mounts_for_real() {
    assert!(rustix::process::geteuid().is_root(), "run as root");
    let dir = tempfile::tempdir().expect("tempdir");
    let writable = dir.path().join("pods/1/mount");
    let readonly = dir.path().join("pods/2/mount");
    let _guard = Unmounter(vec![writable.clone(), readonly.clone()]);
    std::fs::create_dir_all(writable.parent().expect("parent")).expect("mkdir");
    std::fs::create_dir_all(readonly.parent().expect("parent")).expect("mkdir");

    let driver = LocalDriver::new(
        DriverConfig {
            node_id: "node-a".into(),
            root: dir.path().join("volumes"),
            capacity_bytes: None,
        },
        Arc::new(HostMounter),
    )
    .expect("driver");
    let volume = driver
        .create_volume(Request::new(CreateVolumeRequest {
            name: "pvc-real".into(),
            volume_capabilities: publish_request("", Path::new("/"), false)
                .volume_capability
                .into_iter()
                .collect(),
            ..Default::default()
        }))
        .await
        .expect("create")
        .into_inner()
        .volume
        .expect("volume");
    let id = volume.volume_id;

    driver
        .node_publish_volume(Request::new(publish_request(&id, &writable, false)))
        .await
        .expect("publish");
    driver
        .node_publish_volume(Request::new(publish_request(&id, &writable, false)))
        .await
        .expect("publish again");
    assert!(HostMounter.is_mount_point(&writable).expect("statx"));
    std::fs::write(writable.join("hello"), b"from the pod").expect("write through the mount");
    let source = dir.path().join("volumes").join(&id).join("hello");
    assert_eq!(std::fs::read(&source).expect("read"), b"from the pod");

    driver
        .node_publish_volume(Request::new(publish_request(&id, &readonly, true)))
        .await
        .expect("publish read-only");
    assert_eq!(
        std::fs::read(readonly.join("hello")).expect("read"),
        b"from the pod"
    );
    let err = std::fs::write(readonly.join("nope"), b"x").expect_err("read-only");
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::ROFS.raw_os_error())
    );

    for target in [&writable, &readonly] {
        driver
            .node_unpublish_volume(Request::new(NodeUnpublishVolumeRequest {
                volume_id: id.clone(),
                target_path: target.display().to_string(),
            }))
            .await
            .expect("unpublish");
        assert!(!target.exists());
    }
    assert!(source.exists(), "the data stays in the volume");
    driver
        .delete_volume(Request::new(DeleteVolumeRequest { volume_id: id }))
        .await
        .expect("delete");
    assert!(!source.exists());
}
