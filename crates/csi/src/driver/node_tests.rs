use tonic::{Code, Request};

use super::*;
use crate::driver::testing::{
    block_capability, create_request, mount_capability, node_topology, publish_request, Fixture,
    NODE,
};
use crate::mounter::{MountCall, Mounter};
use crate::v1::controller_server::Controller;
use crate::v1::CapacityRange;

/// A fixture with one volume (`pvc-1`, 1000 bytes); its id.
async fn with_volume(capacity_bytes: Option<i64>) -> (Fixture, String) {
    let fixture = Fixture::new(capacity_bytes);
    let volume = fixture
        .driver
        .create_volume(Request::new(create_request("pvc-1", 1000)))
        .await
        .expect("create")
        .into_inner()
        .volume
        .expect("volume");
    (fixture, volume.volume_id)
}

async fn publish(fixture: &Fixture, request: NodePublishVolumeRequest) -> Result<(), Status> {
    fixture
        .driver
        .node_publish_volume(Request::new(request))
        .await
        .map(|_| ())
}

async fn unpublish(fixture: &Fixture, volume_id: &str, target: &Path) -> Result<(), Status> {
    fixture
        .driver
        .node_unpublish_volume(Request::new(NodeUnpublishVolumeRequest {
            volume_id: volume_id.to_string(),
            target_path: target.display().to_string(),
        }))
        .await
        .map(|_| ())
}

#[tokio::test]
async fn publish_bind_mounts_once_per_target() {
    let (fixture, id) = with_volume(None).await;
    let source = fixture.root().join(&id);
    let target = fixture.target("pod-1");
    let request = publish_request(&id, &target, Mode::SingleNodeMultiWriter, false);
    publish(&fixture, request.clone()).await.expect("publish");
    assert!(target.is_dir());
    publish(&fixture, request.clone()).await.expect("again");
    assert_eq!(
        fixture.mounter.calls(),
        vec![MountCall::Bind {
            source: source.clone(),
            target: target.clone(),
            readonly: false,
        }]
    );

    // The same target with other arguments.
    let readonly = publish_request(&id, &target, Mode::SingleNodeMultiWriter, true);
    let status = publish(&fixture, readonly).await.expect_err("other args");
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");

    // ReadWriteOnce: another pod on the node, read-only this time.
    let second = fixture.target("pod-2");
    publish(
        &fixture,
        publish_request(&id, &second, Mode::SingleNodeMultiWriter, true),
    )
    .await
    .expect("second pod");
    assert_eq!(
        fixture.mounter.calls().last(),
        Some(&MountCall::Bind {
            source,
            target: second.clone(),
            readonly: true,
        })
    );
    assert_eq!(fixture.mounter.mounts(), vec![target, second]);
}

#[tokio::test]
async fn single_writer_modes_allow_one_target() {
    let (fixture, id) = with_volume(None).await;
    let first = fixture.target("pod-1");
    let second = fixture.target("pod-2");
    publish(
        &fixture,
        publish_request(&id, &first, Mode::SingleNodeSingleWriter, false),
    )
    .await
    .expect("first");
    for mode in [Mode::SingleNodeSingleWriter, Mode::SingleNodeMultiWriter] {
        let status = publish(&fixture, publish_request(&id, &second, mode, false))
            .await
            .expect_err("second target");
        assert_eq!(status.code(), Code::FailedPrecondition, "{mode:?}");
    }
    assert!(!second.exists(), "refused before making the target");

    // Once the first is gone (unpublished, or its mount lost in a reboot) the second may go.
    fixture.mounter.clear_mounts();
    publish(
        &fixture,
        publish_request(&id, &second, Mode::SingleNodeSingleWriter, false),
    )
    .await
    .expect("after the first mount is gone");

    // SINGLE_NODE_WRITER (ReadWriteOnce from older COs) is shared by the node's pods.
    let (fixture, id) = with_volume(None).await;
    for pod in ["pod-1", "pod-2"] {
        let target = fixture.target(pod);
        publish(
            &fixture,
            publish_request(&id, &target, Mode::SingleNodeWriter, false),
        )
        .await
        .expect(pod);
    }
}

#[tokio::test]
async fn publish_refusals() {
    let (fixture, id) = with_volume(None).await;
    let target = fixture.target("pod-1");
    let valid = publish_request(&id, &target, Mode::SingleNodeMultiWriter, false);
    let cases = [
        (
            publish_request("missing", &target, Mode::SingleNodeWriter, false),
            Code::NotFound,
            "missing",
        ),
        (
            NodePublishVolumeRequest {
                volume_id: String::new(),
                ..valid.clone()
            },
            Code::InvalidArgument,
            "volume_id is required",
        ),
        (
            NodePublishVolumeRequest {
                target_path: String::new(),
                ..valid.clone()
            },
            Code::InvalidArgument,
            "target_path is required",
        ),
        (
            NodePublishVolumeRequest {
                target_path: "relative/mount".into(),
                ..valid.clone()
            },
            Code::InvalidArgument,
            "absolute",
        ),
        (
            NodePublishVolumeRequest {
                volume_capability: None,
                ..valid.clone()
            },
            Code::InvalidArgument,
            "volume_capability is required",
        ),
        (
            NodePublishVolumeRequest {
                volume_capability: Some(block_capability()),
                ..valid.clone()
            },
            Code::InvalidArgument,
            "block",
        ),
        (
            publish_request(&id, &target, Mode::MultiNodeMultiWriter, false),
            Code::InvalidArgument,
            "MULTI_NODE_MULTI_WRITER",
        ),
    ];
    for (request, code, message) in cases {
        let status = publish(&fixture, request.clone())
            .await
            .expect_err("refused");
        assert_eq!(status.code(), code, "{request:?}: {status:?}");
        assert!(status.message().contains(message), "{status:?}");
    }
    assert!(fixture.mounter.calls().is_empty());
}

#[tokio::test]
async fn publish_recovers_from_reboots_and_failed_mounts() {
    let (fixture, id) = with_volume(None).await;
    let target = fixture.target("pod-1");
    let request = publish_request(&id, &target, Mode::SingleNodeWriter, false);

    fixture.mounter.fail_mounts(true);
    let status = publish(&fixture, request.clone())
        .await
        .expect_err("mount fails");
    assert_eq!(status.code(), Code::Internal);
    assert!(!target.exists(), "the target made for the mount is removed");
    fixture.mounter.fail_mounts(false);

    // Not recorded: a publish with other arguments is a new one, not ALREADY_EXISTS.
    let readonly = publish_request(&id, &target, Mode::SingleNodeWriter, true);
    publish(&fixture, readonly.clone()).await.expect("publish");

    // A reboot lost the mount; the kubelet publishes again and gets it back.
    fixture.mounter.clear_mounts();
    publish(&fixture, readonly).await.expect("republish");
    assert_eq!(fixture.mounter.mounts(), vec![target.clone()]);

    // Something else mounted on a target this driver never published there.
    let foreign = fixture.target("pod-2");
    std::fs::create_dir(&foreign).expect("mkdir");
    fixture
        .mounter
        .bind_mount(Path::new("/elsewhere"), &foreign, false)
        .expect("foreign mount");
    let status = publish(
        &fixture,
        publish_request(&id, &foreign, Mode::SingleNodeWriter, false),
    )
    .await
    .expect_err("foreign mount");
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
}

#[tokio::test]
async fn unpublish_unmounts_and_removes_the_target() {
    let (fixture, id) = with_volume(None).await;
    let target = fixture.target("pod-1");
    publish(
        &fixture,
        publish_request(&id, &target, Mode::SingleNodeSingleWriter, false),
    )
    .await
    .expect("publish");
    unpublish(&fixture, &id, &target).await.expect("unpublish");
    assert!(!target.exists());
    assert!(fixture.mounter.mounts().is_empty());
    assert_eq!(
        fixture.mounter.calls().last(),
        Some(&MountCall::Unmount {
            target: target.clone()
        })
    );
    unpublish(&fixture, &id, &target).await.expect("again");
    // The volume's data is untouched, and it may be published elsewhere now.
    assert!(fixture.root().join(&id).is_dir());
    let other = fixture.target("pod-2");
    publish(
        &fixture,
        publish_request(&id, &other, Mode::SingleNodeSingleWriter, false),
    )
    .await
    .expect("publish elsewhere");

    // Unknown volumes are cleaned up too: nothing of the target stays.
    let stray = fixture.target("pod-3");
    std::fs::create_dir(&stray).expect("mkdir");
    unpublish(&fixture, "gone", &stray)
        .await
        .expect("unknown volume");
    assert!(!stray.exists());

    // Files in the target are not ours to delete.
    std::fs::create_dir(&stray).expect("mkdir");
    std::fs::write(stray.join("file"), b"x").expect("write");
    let status = unpublish(&fixture, &id, &stray)
        .await
        .expect_err("not empty");
    assert_eq!(status.code(), Code::Internal);
    assert!(stray.join("file").exists());

    for (volume_id, target, field) in [("", "/t", "volume_id"), ("v", "", "target_path")] {
        let status = unpublish(&fixture, volume_id, Path::new(target))
            .await
            .expect_err("missing field");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains(field), "{status:?}");
    }
}

#[tokio::test]
async fn volume_stats() {
    let (fixture, id) = with_volume(None).await;
    let target = fixture.target("pod-1");
    publish(
        &fixture,
        publish_request(&id, &target, Mode::SingleNodeWriter, false),
    )
    .await
    .expect("publish");
    // The fake mounts nothing: write into the volume's directory, as the pod would through
    // the mount.
    std::fs::write(fixture.root().join(&id).join("data"), vec![1u8; 8192]).expect("write");
    let stats = |volume_id: &str, volume_path: &Path| {
        fixture
            .driver
            .node_get_volume_stats(Request::new(NodeGetVolumeStatsRequest {
                volume_id: volume_id.to_string(),
                volume_path: volume_path.display().to_string(),
                staging_target_path: String::new(),
            }))
    };
    let usage = stats(&id, &target).await.expect("stats").into_inner().usage;
    let bytes = usage
        .iter()
        .find(|u| u.unit() == Unit::Bytes)
        .expect("bytes");
    assert_eq!(bytes.total, 1000);
    assert!(bytes.used >= 8192, "{bytes:?}");
    assert_eq!(bytes.available, 0, "more used than the capacity: none left");
    let inodes = usage
        .iter()
        .find(|u| u.unit() == Unit::Inodes)
        .expect("inodes");
    assert_eq!(inodes.used, 2);
    assert!(inodes.total > 0);

    let status = stats("missing", &target).await.expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);
    let status = stats(&id, &fixture.dir.path().join("nowhere"))
        .await
        .expect_err("not at the path");
    assert_eq!(status.code(), Code::NotFound);
    let status = stats(&id, Path::new("")).await.expect_err("no path");
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn node_expansion() {
    let (fixture, id) = with_volume(Some(10_000)).await;
    let target = fixture.target("pod-1");
    publish(
        &fixture,
        publish_request(&id, &target, Mode::SingleNodeWriter, false),
    )
    .await
    .expect("publish");
    let expand = |volume_id: &str, required_bytes: Option<i64>| {
        fixture
            .driver
            .node_expand_volume(Request::new(NodeExpandVolumeRequest {
                volume_id: volume_id.to_string(),
                volume_path: target.display().to_string(),
                capacity_range: required_bytes.map(|required_bytes| CapacityRange {
                    required_bytes,
                    limit_bytes: 0,
                }),
                ..Default::default()
            }))
    };
    let capacity = |r: Response<NodeExpandVolumeResponse>| r.into_inner().capacity_bytes;
    assert_eq!(capacity(expand(&id, None).await.expect("no range")), 1000);
    assert_eq!(capacity(expand(&id, Some(2000)).await.expect("grow")), 2000);
    assert_eq!(capacity(expand(&id, Some(10)).await.expect("shrink")), 2000);
    let status = expand(&id, Some(20_000)).await.expect_err("too large");
    assert_eq!(status.code(), Code::OutOfRange);
    let status = expand("missing", Some(10)).await.expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn node_identity_and_capabilities() {
    let fixture = Fixture::new(None);
    let info = fixture
        .driver
        .node_get_info(Request::new(NodeGetInfoRequest {}))
        .await
        .expect("info")
        .into_inner();
    assert_eq!(info.node_id, NODE);
    assert_eq!(info.max_volumes_per_node, 0);
    assert_eq!(info.accessible_topology, Some(node_topology(NODE)));

    let kinds: Vec<rpc::Type> = fixture
        .driver
        .node_get_capabilities(Request::new(NodeGetCapabilitiesRequest {}))
        .await
        .expect("capabilities")
        .into_inner()
        .capabilities
        .iter()
        .filter_map(|c| c.r#type.as_ref())
        .map(|node_service_capability::Type::Rpc(r)| r.r#type())
        .collect();
    assert_eq!(
        kinds,
        vec![
            rpc::Type::StageUnstageVolume,
            rpc::Type::GetVolumeStats,
            rpc::Type::ExpandVolume,
            rpc::Type::SingleNodeMultiWriter
        ]
    );

    let status = fixture
        .driver
        .node_stage_volume(Request::new(NodeStageVolumeRequest::default()))
        .await
        .expect_err("stage");
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = fixture
        .driver
        .node_unstage_volume(Request::new(NodeUnstageVolumeRequest::default()))
        .await
        .expect_err("unstage");
    assert_eq!(status.code(), Code::InvalidArgument);
}

fn stage_request(volume_id: &str, staging: &Path) -> NodeStageVolumeRequest {
    NodeStageVolumeRequest {
        volume_id: volume_id.to_string(),
        staging_target_path: staging.display().to_string(),
        volume_capability: Some(mount_capability(Mode::SingleNodeMultiWriter)),
        ..Default::default()
    }
}

async fn stage(fixture: &Fixture, request: NodeStageVolumeRequest) -> Result<(), Status> {
    fixture
        .driver
        .node_stage_volume(Request::new(request))
        .await
        .map(|_| ())
}

async fn unstage(fixture: &Fixture, volume_id: &str, staging: &Path) -> Result<(), Status> {
    fixture
        .driver
        .node_unstage_volume(Request::new(NodeUnstageVolumeRequest {
            volume_id: volume_id.to_string(),
            staging_target_path: staging.display().to_string(),
        }))
        .await
        .map(|_| ())
}

#[tokio::test]
async fn publications_are_bind_mounted_from_the_staging_target() {
    let (fixture, id) = with_volume(None).await;
    let source = fixture.root().join(&id);
    let staging = fixture.dir.path().join("plugins/csi/vol/globalmount");
    let target = fixture.target("pod-1");
    let mut publish_staged = publish_request(&id, &target, Mode::SingleNodeMultiWriter, false);
    publish_staged.staging_target_path = staging.display().to_string();

    // Not staged yet: the spec's order is stage, then publish.
    let status = publish(&fixture, publish_staged.clone())
        .await
        .expect_err("not staged");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");

    stage(&fixture, stage_request(&id, &staging))
        .await
        .expect("stage");
    stage(&fixture, stage_request(&id, &staging))
        .await
        .expect("stage again");
    assert!(staging.is_dir());
    let other = fixture.dir.path().join("elsewhere/globalmount");
    let status = stage(&fixture, stage_request(&id, &other))
        .await
        .expect_err("staged elsewhere");
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");

    publish(&fixture, publish_staged).await.expect("publish");
    assert_eq!(
        fixture.mounter.calls(),
        vec![
            MountCall::Bind {
                source,
                target: staging.clone(),
                readonly: false,
            },
            MountCall::Bind {
                source: staging.clone(),
                target: target.clone(),
                readonly: false,
            },
        ]
    );

    // Unstaging waits for the pods' publications to go.
    let status = unstage(&fixture, &id, &staging)
        .await
        .expect_err("still published");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    unpublish(&fixture, &id, &target).await.expect("unpublish");
    unstage(&fixture, &id, &staging).await.expect("unstage");
    unstage(&fixture, &id, &staging)
        .await
        .expect("unstage again");
    assert!(!staging.exists());
    assert!(fixture.mounter.mounts().is_empty());
    // A volume that is gone is unstaged all the same.
    unstage(&fixture, "unknown", &staging)
        .await
        .expect("unknown volume");
}

#[tokio::test]
async fn staging_follows_the_attachment_and_survives_a_reboot() {
    let (fixture, id) = with_volume(None).await;
    let staging = fixture.dir.path().join("plugins/csi/vol/globalmount");
    let mut request = stage_request(&id, &staging);
    request
        .publish_context
        .insert(PUBLISH_CONTEXT_NODE.into(), "node-b".into());
    let status = stage(&fixture, request.clone())
        .await
        .expect_err("attached elsewhere");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    request
        .publish_context
        .insert(PUBLISH_CONTEXT_NODE.into(), NODE.into());
    stage(&fixture, request.clone()).await.expect("stage");

    // After a reboot the record says staged, the mount is gone: staged again.
    fixture.mounter.clear_mounts();
    stage(&fixture, request).await.expect("restage");
    assert_eq!(fixture.mounter.mounts(), vec![staging.clone()]);

    let status = stage(&fixture, stage_request("unknown", &staging))
        .await
        .expect_err("unknown volume");
    assert_eq!(status.code(), Code::NotFound);
}
