use std::os::unix::fs::PermissionsExt;

use tonic::{Code, Request};

use super::*;
use crate::driver::testing::{
    block_capability, create_request, mount_capability, node_topology, publish_request, Fixture,
    NODE,
};
use crate::driver::{DEFAULT_CAPACITY_BYTES, TOPOLOGY_KEY};
use crate::v1::node_server::Node;
use crate::v1::volume_capability::access_mode::Mode;
use crate::v1::{CapacityRange, TopologyRequirement, VolumeCapability, VolumeContentSource};

async fn create(fixture: &Fixture, request: CreateVolumeRequest) -> Result<Volume, Status> {
    let response = fixture
        .driver
        .create_volume(Request::new(request))
        .await?
        .into_inner();
    Ok(response.volume.expect("volume"))
}

async fn delete(fixture: &Fixture, volume_id: &str) -> Result<(), Status> {
    fixture
        .driver
        .delete_volume(Request::new(DeleteVolumeRequest {
            volume_id: volume_id.to_string(),
        }))
        .await
        .map(|_| ())
}

async fn available(fixture: &Fixture, request: GetCapacityRequest) -> i64 {
    let response = fixture
        .driver
        .get_capacity(Request::new(request))
        .await
        .expect("capacity")
        .into_inner();
    assert_eq!(
        response.maximum_volume_size,
        Some(response.available_capacity)
    );
    response.available_capacity
}

async fn expand(fixture: &Fixture, volume_id: &str, required_bytes: i64) -> Result<i64, Status> {
    let response = fixture
        .driver
        .controller_expand_volume(Request::new(ControllerExpandVolumeRequest {
            volume_id: volume_id.to_string(),
            capacity_range: Some(CapacityRange {
                required_bytes,
                limit_bytes: 0,
            }),
            volume_capability: None,
        }))
        .await?
        .into_inner();
    assert!(!response.node_expansion_required);
    Ok(response.capacity_bytes)
}

#[tokio::test]
async fn create_is_idempotent_by_name() {
    let fixture = Fixture::new(None);
    let volume = create(&fixture, create_request("pvc-1", 5000))
        .await
        .expect("create");
    assert_eq!(volume.volume_id, volume_id("pvc-1"));
    assert_eq!(volume.capacity_bytes, 5000);
    assert_eq!(volume.accessible_topology, vec![node_topology(NODE)]);
    assert_eq!(
        volume.accessible_topology[0].segments[TOPOLOGY_KEY],
        "node-a"
    );
    let dir = fixture.root().join(&volume.volume_id);
    let mode = std::fs::metadata(&dir).expect("dir").permissions().mode();
    assert_eq!(mode & 0o777, 0o777);
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixture.root().join(format!("{}.json", volume.volume_id))).expect("record"),
    )
    .expect("json");
    assert_eq!(record["name"], "pvc-1");
    assert_eq!(record["capacity_bytes"], 5000);

    // Again, and with a range the volume satisfies: the same volume, data kept.
    std::fs::write(dir.join("data"), b"keep").expect("write");
    assert_eq!(
        create(&fixture, create_request("pvc-1", 5000))
            .await
            .expect("again"),
        volume
    );
    let mut satisfied = create_request("pvc-1", 4000);
    satisfied.capacity_range = Some(CapacityRange {
        required_bytes: 4000,
        limit_bytes: 6000,
    });
    assert_eq!(create(&fixture, satisfied).await.expect("within"), volume);
    assert!(dir.join("data").exists());

    // A half-made volume (record, no directory) is finished.
    std::fs::remove_dir_all(&dir).expect("rm");
    create(&fixture, create_request("pvc-1", 5000))
        .await
        .expect("finish");
    assert!(dir.is_dir());

    let status = create(&fixture, create_request("pvc-1", 6000))
        .await
        .expect_err("incompatible");
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");

    let default = create(&fixture, create_request("pvc-2", 0))
        .await
        .expect("default size");
    assert_eq!(default.capacity_bytes, DEFAULT_CAPACITY_BYTES);
    assert_ne!(default.volume_id, volume.volume_id);
}

#[tokio::test]
async fn create_refuses_what_a_node_local_directory_cannot_be() {
    let fixture = Fixture::new(None);
    let cases: Vec<(CreateVolumeRequest, Code, &str)> = vec![
        (
            create_request("", 0),
            Code::InvalidArgument,
            "name is required",
        ),
        (
            CreateVolumeRequest {
                volume_capabilities: vec![],
                ..create_request("v", 0)
            },
            Code::InvalidArgument,
            "volume_capabilities is required",
        ),
        (
            CreateVolumeRequest {
                volume_capabilities: vec![block_capability()],
                ..create_request("v", 0)
            },
            Code::InvalidArgument,
            "block",
        ),
        (
            CreateVolumeRequest {
                volume_capabilities: vec![
                    mount_capability(Mode::SingleNodeWriter),
                    mount_capability(Mode::MultiNodeReaderOnly),
                ],
                ..create_request("v", 0)
            },
            Code::InvalidArgument,
            "volume_capabilities[1]: access mode MULTI_NODE_READER_ONLY",
        ),
        (
            CreateVolumeRequest {
                volume_capabilities: vec![mount_capability(Mode::Unknown)],
                ..create_request("v", 0)
            },
            Code::InvalidArgument,
            "unknown mode",
        ),
        (
            CreateVolumeRequest {
                volume_capabilities: vec![VolumeCapability {
                    access_type: None,
                    ..mount_capability(Mode::SingleNodeWriter)
                }],
                ..create_request("v", 0)
            },
            Code::InvalidArgument,
            "access_type",
        ),
        (
            CreateVolumeRequest {
                volume_content_source: Some(VolumeContentSource::default()),
                ..create_request("v", 0)
            },
            Code::InvalidArgument,
            "volume_content_source",
        ),
        (
            CreateVolumeRequest {
                capacity_range: Some(CapacityRange {
                    required_bytes: 10,
                    limit_bytes: 5,
                }),
                ..create_request("v", 0)
            },
            Code::InvalidArgument,
            "limit_bytes",
        ),
        (
            CreateVolumeRequest {
                accessibility_requirements: Some(TopologyRequirement {
                    requisite: vec![node_topology("node-b")],
                    preferred: vec![],
                }),
                ..create_request("v", 0)
            },
            Code::ResourceExhausted,
            "node-a",
        ),
    ];
    for (request, code, message) in cases {
        let status = create(&fixture, request.clone())
            .await
            .expect_err("refused");
        assert_eq!(status.code(), code, "{request:?}: {status:?}");
        assert!(
            status.message().contains(message),
            "{:?} lacks {message:?}",
            status.message()
        );
    }
    assert!(
        std::fs::read_dir(fixture.root())
            .expect("ls")
            .next()
            .is_none(),
        "nothing was made"
    );

    // This node among the requisite ones, another one preferred: made here.
    let request = CreateVolumeRequest {
        accessibility_requirements: Some(TopologyRequirement {
            requisite: vec![node_topology("node-b"), node_topology(NODE)],
            preferred: vec![node_topology("node-b")],
        }),
        volume_capabilities: vec![
            mount_capability(Mode::SingleNodeWriter),
            mount_capability(Mode::SingleNodeSingleWriter),
            mount_capability(Mode::SingleNodeReaderOnly),
        ],
        ..create_request("v", 0)
    };
    create(&fixture, request).await.expect("create");
}

#[tokio::test]
async fn capacity_is_accounted() {
    let fixture = Fixture::new(Some(100));
    assert_eq!(
        available(&fixture, GetCapacityRequest::default()).await,
        100
    );
    let a = create(&fixture, create_request("a", 60))
        .await
        .expect("create a");
    assert_eq!(available(&fixture, GetCapacityRequest::default()).await, 40);

    let status = create(&fixture, create_request("b", 50))
        .await
        .expect_err("no room");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let status = create(&fixture, create_request("b", 101))
        .await
        .expect_err("never fits");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    // The default 1 GiB does not fit either, but a limit brings it down.
    let mut limited = create_request("b", 0);
    limited.capacity_range = Some(CapacityRange {
        required_bytes: 0,
        limit_bytes: 40,
    });
    let b = create(&fixture, limited).await.expect("limited");
    assert_eq!(b.capacity_bytes, 40);
    assert_eq!(available(&fixture, GetCapacityRequest::default()).await, 0);

    // Capacity for volumes this driver cannot make, or on another node, is none.
    let block = GetCapacityRequest {
        volume_capabilities: vec![block_capability()],
        ..Default::default()
    };
    let elsewhere = GetCapacityRequest {
        accessible_topology: Some(node_topology("node-b")),
        ..Default::default()
    };
    delete(&fixture, &b.volume_id).await.expect("delete b");
    assert_eq!(available(&fixture, block).await, 0);
    assert_eq!(available(&fixture, elsewhere).await, 0);
    let here = GetCapacityRequest {
        accessible_topology: Some(node_topology(NODE)),
        volume_capabilities: vec![mount_capability(Mode::SingleNodeMultiWriter)],
        ..Default::default()
    };
    assert_eq!(available(&fixture, here).await, 40);

    delete(&fixture, &a.volume_id).await.expect("delete a");
    assert_eq!(
        available(&fixture, GetCapacityRequest::default()).await,
        100
    );

    // Without a configured total, what the file system has free.
    let unlimited = Fixture::new(None);
    assert!(available(&unlimited, GetCapacityRequest::default()).await > 0);
}

#[tokio::test]
async fn delete_is_idempotent_and_refuses_mounted_volumes() {
    let fixture = Fixture::new(None);
    for unknown in ["never-made", "../volumes", "a/b"] {
        delete(&fixture, unknown).await.expect("unknown is OK");
    }
    let status = delete(&fixture, "").await.expect_err("empty");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("volume_id"));

    let volume = create(&fixture, create_request("pvc-1", 0))
        .await
        .expect("create");
    let target = fixture.target("pod-1");
    fixture
        .driver
        .node_publish_volume(Request::new(publish_request(
            &volume.volume_id,
            &target,
            Mode::SingleNodeMultiWriter,
            false,
        )))
        .await
        .expect("publish");
    let status = delete(&fixture, &volume.volume_id)
        .await
        .expect_err("in use");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");

    // After a reboot the record still lists the publication, but nothing is mounted.
    fixture.mounter.clear_mounts();
    delete(&fixture, &volume.volume_id).await.expect("delete");
    assert!(!fixture.root().join(&volume.volume_id).exists());
    assert!(!fixture
        .root()
        .join(format!("{}.json", volume.volume_id))
        .exists());
    delete(&fixture, &volume.volume_id).await.expect("again");
}

#[tokio::test]
async fn expansion_records_the_larger_capacity() {
    let fixture = Fixture::new(Some(1000));
    let volume = create(&fixture, create_request("pvc-1", 100))
        .await
        .expect("create");
    let id = &volume.volume_id;
    assert_eq!(expand(&fixture, id, 300).await.expect("grow"), 300);
    assert_eq!(expand(&fixture, id, 300).await.expect("again"), 300);
    // Smaller than it is: OK with the current size.
    assert_eq!(expand(&fixture, id, 50).await.expect("shrink"), 300);
    assert_eq!(
        available(&fixture, GetCapacityRequest::default()).await,
        700
    );

    let status = expand(&fixture, id, 1001).await.expect_err("too large");
    assert_eq!(status.code(), Code::OutOfRange);
    create(&fixture, create_request("pvc-2", 600))
        .await
        .expect("create 2");
    let status = expand(&fixture, id, 500).await.expect_err("no room");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(expand(&fixture, id, 400).await.expect("fits"), 400);

    let status = expand(&fixture, "missing", 10).await.expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);
    let status = fixture
        .driver
        .controller_expand_volume(Request::new(ControllerExpandVolumeRequest {
            volume_id: id.clone(),
            ..Default::default()
        }))
        .await
        .expect_err("no range");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("capacity_range"));
    let status = fixture
        .driver
        .controller_expand_volume(Request::new(ControllerExpandVolumeRequest {
            volume_id: id.clone(),
            capacity_range: Some(CapacityRange {
                required_bytes: 500,
                limit_bytes: 0,
            }),
            volume_capability: Some(block_capability()),
        }))
        .await
        .expect_err("block");
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn validate_volume_capabilities() {
    let fixture = Fixture::new(None);
    let volume = create(&fixture, create_request("pvc-1", 0))
        .await
        .expect("create");
    let validate = |capabilities: Vec<VolumeCapability>, volume_id: &str| {
        fixture.driver.validate_volume_capabilities(Request::new(
            ValidateVolumeCapabilitiesRequest {
                volume_id: volume_id.to_string(),
                volume_capabilities: capabilities,
                ..Default::default()
            },
        ))
    };
    let ok = validate(
        vec![mount_capability(Mode::SingleNodeWriter)],
        &volume.volume_id,
    )
    .await
    .expect("validate")
    .into_inner();
    assert_eq!(
        ok.confirmed.expect("confirmed").volume_capabilities,
        vec![mount_capability(Mode::SingleNodeWriter)]
    );
    let refused = validate(vec![block_capability()], &volume.volume_id)
        .await
        .expect("validate")
        .into_inner();
    assert!(refused.confirmed.is_none());
    assert!(refused.message.contains("block"), "{}", refused.message);
    let status = validate(vec![block_capability()], "missing")
        .await
        .expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);
    let status = validate(vec![], &volume.volume_id)
        .await
        .expect_err("empty");
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn controller_capabilities() {
    let fixture = Fixture::new(None);
    let capabilities = fixture
        .driver
        .controller_get_capabilities(Request::new(ControllerGetCapabilitiesRequest {}))
        .await
        .expect("capabilities")
        .into_inner()
        .capabilities;
    let kinds: Vec<rpc::Type> = capabilities
        .iter()
        .filter_map(|c| c.r#type.as_ref())
        .map(|controller_service_capability::Type::Rpc(r)| r.r#type())
        .collect();
    assert_eq!(
        kinds,
        vec![
            rpc::Type::CreateDeleteVolume,
            rpc::Type::PublishUnpublishVolume,
            rpc::Type::GetCapacity,
            rpc::Type::ExpandVolume,
            rpc::Type::SingleNodeMultiWriter,
        ]
    );
}

#[tokio::test]
async fn volumes_attach_to_their_node_only_and_detach_once_unstaged() {
    let fixture = Fixture::new(None);
    let id = create(&fixture, create_request("pvc-1", 0))
        .await
        .expect("create")
        .volume_id;
    let attach = |node: &str| ControllerPublishVolumeRequest {
        volume_id: id.clone(),
        node_id: node.to_string(),
        volume_capability: Some(mount_capability(Mode::SingleNodeMultiWriter)),
        ..Default::default()
    };
    let detach = ControllerUnpublishVolumeRequest {
        volume_id: id.clone(),
        node_id: NODE.to_string(),
    };
    let status = fixture
        .driver
        .controller_publish_volume(Request::new(attach("node-b")))
        .await
        .expect_err("another node");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    for _ in 0..2 {
        let context = fixture
            .driver
            .controller_publish_volume(Request::new(attach(NODE)))
            .await
            .expect("attach")
            .into_inner()
            .publish_context;
        assert_eq!(
            context,
            [(PUBLISH_CONTEXT_NODE.to_string(), NODE.to_string())].into()
        );
    }

    // Staged with the publish context: detaching waits for the unstage.
    let staging = fixture.dir.path().join("globalmount");
    fixture
        .driver
        .node_stage_volume(Request::new(crate::v1::NodeStageVolumeRequest {
            volume_id: id.clone(),
            publish_context: [(PUBLISH_CONTEXT_NODE.to_string(), NODE.to_string())].into(),
            staging_target_path: staging.display().to_string(),
            volume_capability: Some(mount_capability(Mode::SingleNodeMultiWriter)),
            ..Default::default()
        }))
        .await
        .expect("stage");
    let status = fixture
        .driver
        .controller_unpublish_volume(Request::new(detach.clone()))
        .await
        .expect_err("still staged");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    // Nor is a staged volume deleted.
    let status = delete(&fixture, &id).await.expect_err("still staged");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    fixture
        .driver
        .node_unstage_volume(Request::new(crate::v1::NodeUnstageVolumeRequest {
            volume_id: id.clone(),
            staging_target_path: staging.display().to_string(),
        }))
        .await
        .expect("unstage");
    for _ in 0..2 {
        fixture
            .driver
            .controller_unpublish_volume(Request::new(detach.clone()))
            .await
            .expect("detach");
    }
    // Unknown volumes are detached.
    fixture
        .driver
        .controller_unpublish_volume(Request::new(ControllerUnpublishVolumeRequest {
            volume_id: "unknown".into(),
            node_id: NODE.into(),
        }))
        .await
        .expect("unknown");
}
