//! The driver served on a unix socket and called through the client, as the provisioner and the
//! kubelet will: every service over the wire, with the recording fake mounter.

use std::sync::Arc;

use ferry_csi::client;
use ferry_csi::driver::TOPOLOGY_KEY;
use ferry_csi::mounter::{FakeMounter, MountCall};
use ferry_csi::v1::volume_capability::access_mode::Mode;
use ferry_csi::v1::volume_capability::{AccessMode, AccessType, MountVolume};
use ferry_csi::v1::*;
use ferry_csi::{CsiSocket, DriverConfig, LocalDriver};
use tonic::Code;

fn rwo() -> VolumeCapability {
    VolumeCapability {
        access_type: Some(AccessType::Mount(MountVolume::default())),
        access_mode: Some(AccessMode {
            mode: Mode::SingleNodeMultiWriter.into(),
        }),
    }
}

#[tokio::test]
async fn identity_controller_and_node_over_a_unix_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mounter = Arc::new(FakeMounter::new());
    let driver = LocalDriver::new(
        DriverConfig {
            node_id: "node-a".into(),
            root: dir.path().join("volumes"),
            capacity_bytes: Some(10 << 30),
        },
        mounter.clone(),
    )
    .expect("driver");
    let socket_path = dir.path().join("plugins/local.csi.ferry.dev/csi.sock");
    let socket = CsiSocket::bind(&socket_path).expect("bind");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(socket.serve(driver, async {
        let _ = stopped.await;
    }));

    let mut csi = client::connect(&socket_path).await.expect("connect");

    // Identity.
    let info = csi
        .identity
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .expect("info")
        .into_inner();
    assert_eq!(info.name, "local.csi.ferry.dev");
    let probe = csi
        .identity
        .probe(ProbeRequest {})
        .await
        .expect("probe")
        .into_inner();
    assert_eq!(probe.ready, Some(true));

    // Controller: make a volume, see the capacity go.
    let created = csi
        .controller
        .create_volume(CreateVolumeRequest {
            name: "pvc-0b7d".into(),
            capacity_range: Some(CapacityRange {
                required_bytes: 2 << 30,
                limit_bytes: 0,
            }),
            volume_capabilities: vec![rwo()],
            ..Default::default()
        })
        .await
        .expect("create")
        .into_inner()
        .volume
        .expect("volume");
    assert_eq!(created.capacity_bytes, 2 << 30);
    assert_eq!(
        created.accessible_topology[0].segments[TOPOLOGY_KEY],
        "node-a"
    );
    let capacity = csi
        .controller
        .get_capacity(GetCapacityRequest::default())
        .await
        .expect("capacity")
        .into_inner();
    assert_eq!(capacity.available_capacity, 8 << 30);
    let status = csi
        .controller
        .create_volume(CreateVolumeRequest {
            name: "no-capabilities".into(),
            ..Default::default()
        })
        .await
        .expect_err("invalid");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("volume_capabilities"));

    // Node: publish into a pod's directory, read stats, unpublish.
    let info = csi
        .node
        .node_get_info(NodeGetInfoRequest {})
        .await
        .expect("node info")
        .into_inner();
    assert_eq!(info.node_id, "node-a");
    let pod_dir = dir.path().join("pods/uid-1/volumes/kubernetes.io~csi/pv-1");
    std::fs::create_dir_all(&pod_dir).expect("mkdir");
    let target = pod_dir.join("mount");
    csi.node
        .node_publish_volume(NodePublishVolumeRequest {
            volume_id: created.volume_id.clone(),
            target_path: target.display().to_string(),
            volume_capability: Some(rwo()),
            ..Default::default()
        })
        .await
        .expect("publish");
    assert_eq!(
        mounter.calls(),
        vec![MountCall::Bind {
            source: dir.path().join("volumes").join(&created.volume_id),
            target: target.clone(),
            readonly: false,
        }]
    );
    let stats = csi
        .node
        .node_get_volume_stats(NodeGetVolumeStatsRequest {
            volume_id: created.volume_id.clone(),
            volume_path: target.display().to_string(),
            staging_target_path: String::new(),
        })
        .await
        .expect("stats")
        .into_inner();
    assert_eq!(stats.usage[0].total, 2 << 30);
    let status = csi
        .node
        .node_publish_volume(NodePublishVolumeRequest {
            volume_id: "unknown".into(),
            target_path: target.display().to_string(),
            volume_capability: Some(rwo()),
            ..Default::default()
        })
        .await
        .expect_err("unknown volume");
    assert_eq!(status.code(), Code::NotFound);
    let status = csi
        .node
        .node_stage_volume(NodeStageVolumeRequest::default())
        .await
        .expect_err("stage");
    assert_eq!(status.code(), Code::InvalidArgument);
    csi.node
        .node_unpublish_volume(NodeUnpublishVolumeRequest {
            volume_id: created.volume_id.clone(),
            target_path: target.display().to_string(),
        })
        .await
        .expect("unpublish");
    assert!(!target.exists());

    csi.controller
        .delete_volume(DeleteVolumeRequest {
            volume_id: created.volume_id.clone(),
        })
        .await
        .expect("delete");
    assert!(!dir.path().join("volumes").join(&created.volume_id).exists());

    // An RPC of the spec this driver does not serve: UNIMPLEMENTED, as the spec asks.
    let mut grpc = tonic::client::Grpc::new(csi.channel());
    grpc.ready().await.expect("ready");
    let status = grpc
        .unary::<GetPluginInfoRequest, GetPluginInfoResponse, _>(
            tonic::Request::new(GetPluginInfoRequest {}),
            tonic::codegen::http::uri::PathAndQuery::from_static("/csi.v1.Controller/ListVolumes"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .expect_err("ListVolumes");
    assert_eq!(status.code(), Code::Unimplemented);

    stop.send(()).expect("stop");
    server.await.expect("join").expect("serve");
    assert!(!socket_path.exists(), "the socket is removed on shutdown");
    assert!(client::connect(&socket_path).await.is_err());
}
