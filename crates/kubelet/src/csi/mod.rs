//! The node's CSI side, as upstream's kubelet CSI plugin and its sidecars on a node:
//!
//! - [`CsiNode`] stages and publishes volumes through the drivers registered here
//!   (NodeStageVolume when the driver has the capability, NodePublishVolume, NodeUnstageVolume),
//!   for the volume manager's `persistentVolumeClaim` volumes.
//! - [`register`] records a driver as the kubelet's plugin registration does: the node's
//!   topology labels from NodeGetInfo, and the driver in the node's `CSINode` object.
//! - [`provisioner`] is the external-provisioner and external-resizer in node-deployment mode
//!   for drivers whose volumes live on this node: it creates volumes for claims the scheduler
//!   placed here, deletes them when released, grows them, and publishes the node's free
//!   capacity as `CSIStorageCapacity` so the scheduler only picks nodes with room.
//! - [`attacher`] is the external-attacher for such drivers: it attaches (ControllerPublish)
//!   the VolumeAttachments of this node the attach-detach controller makes.

pub mod attacher;
pub mod provisioner;

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use ferry_csi::client::CsiClient;
use ferry_csi::v1;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::storage::v1::{CSINode, CSINodeDriver, CSINodeSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use parking_lot::RwLock;

use crate::volume::{CsiPublish, CsiPublisher};

/// The drivers registered on this node, by name.
#[derive(Default)]
pub struct CsiNode {
    drivers: RwLock<HashMap<String, CsiClient>>,
    /// Whether each driver stages volumes, once asked (NodeGetCapabilities).
    stages: RwLock<HashMap<String, bool>>,
}

impl CsiNode {
    /// No drivers yet.
    pub fn new() -> CsiNode {
        CsiNode::default()
    }

    /// Adds (or replaces) a driver.
    pub fn add_driver(&self, name: &str, client: CsiClient) {
        self.stages.write().remove(name);
        self.drivers.write().insert(name.to_string(), client);
    }

    fn client(&self, driver: &str) -> Result<CsiClient, String> {
        self.drivers
            .read()
            .get(driver)
            .cloned()
            .ok_or_else(|| format!("driver {driver} is not registered"))
    }
}

/// Whether node capabilities include STAGE_UNSTAGE_VOLUME (upstream's
/// `hasStageUnstageCapability`).
pub fn has_stage_unstage(capabilities: &[v1::NodeServiceCapability]) -> bool {
    use v1::node_service_capability::{rpc, Type};
    capabilities.iter().any(
        |c| matches!(&c.r#type, Some(Type::Rpc(r)) if r.r#type() == rpc::Type::StageUnstageVolume),
    )
}

/// A gRPC status as the volume errors quote it: `code = X desc = Y`.
fn status_message(status: tonic::Status) -> String {
    format!("code = {:?} desc = {}", status.code(), status.message())
}

/// Makes the parent of a target path (the CO's job, per the spec).
fn make_parent(path: &std::path::Path) -> Result<(), String> {
    match path.parent() {
        Some(parent) => {
            std::fs::create_dir_all(parent).map_err(|e| format!("mkdir {}: {e}", parent.display()))
        }
        None => Ok(()),
    }
}

/// A filesystem volume capability in `mode`.
pub fn mount_capability(
    fs_type: Option<&str>,
    mode: v1::volume_capability::access_mode::Mode,
) -> v1::VolumeCapability {
    v1::VolumeCapability {
        access_type: Some(v1::volume_capability::AccessType::Mount(
            v1::volume_capability::MountVolume {
                fs_type: fs_type.unwrap_or_default().to_string(),
                ..Default::default()
            },
        )),
        access_mode: Some(v1::volume_capability::AccessMode { mode: mode as i32 }),
    }
}

/// The CSI access mode of Kubernetes access modes, for a driver that knows the single-node
/// multi-writer mode (upstream's mapping): ReadWriteOncePod is single-writer, ReadWriteOnce
/// multi-writer on one node, read-only modes read-only.
pub fn access_mode(modes: &[String]) -> v1::volume_capability::access_mode::Mode {
    use v1::volume_capability::access_mode::Mode;
    let has = |m: &str| modes.iter().any(|x| x == m);
    if has("ReadWriteOncePod") {
        Mode::SingleNodeSingleWriter
    } else if has("ReadWriteMany") {
        Mode::MultiNodeMultiWriter
    } else if has("ReadOnlyMany") && !has("ReadWriteOnce") {
        Mode::MultiNodeReaderOnly
    } else {
        Mode::SingleNodeMultiWriter
    }
}

/// A gRPC status as upstream prints it in events: `rpc error: code = X desc = Y`.
pub fn rpc_error(status: &tonic::Status) -> String {
    format!(
        "rpc error: code = {:?} desc = {}",
        status.code(),
        status.message()
    )
}

#[async_trait]
impl CsiPublisher for CsiNode {
    fn has_driver(&self, driver: &str) -> bool {
        self.drivers.read().contains_key(driver)
    }

    async fn stages(&self, driver: &str) -> Result<bool, String> {
        if let Some(stages) = self.stages.read().get(driver) {
            return Ok(*stages);
        }
        let mut client = self.client(driver)?;
        let capabilities = client
            .node
            .node_get_capabilities(v1::NodeGetCapabilitiesRequest {})
            .await
            .map_err(status_message)?
            .into_inner()
            .capabilities;
        let stages = has_stage_unstage(&capabilities);
        self.stages.write().insert(driver.to_string(), stages);
        Ok(stages)
    }

    async fn stage(&self, request: &CsiPublish) -> Result<(), String> {
        let Some(staging) = &request.staging_target else {
            return Err("no staging path".into());
        };
        let mut client = self.client(&request.driver)?;
        make_parent(staging)?;
        let body = v1::NodeStageVolumeRequest {
            volume_id: request.volume_id.clone(),
            publish_context: request.publish_context.clone().into_iter().collect(),
            staging_target_path: staging.to_string_lossy().into_owned(),
            volume_capability: Some(mount_capability(
                request.fs_type.as_deref(),
                v1::volume_capability::access_mode::Mode::SingleNodeMultiWriter,
            )),
            volume_context: request.context.clone().into_iter().collect(),
        };
        client
            .node
            .node_stage_volume(body)
            .await
            .map(|_| ())
            .map_err(status_message)
    }

    async fn publish(&self, request: &CsiPublish) -> Result<(), String> {
        let mut client = self.client(&request.driver)?;
        make_parent(&request.target)?;
        let body = v1::NodePublishVolumeRequest {
            volume_id: request.volume_id.clone(),
            publish_context: request.publish_context.clone().into_iter().collect(),
            staging_target_path: request
                .staging_target
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
            target_path: request.target.to_string_lossy().into_owned(),
            volume_capability: Some(mount_capability(
                request.fs_type.as_deref(),
                v1::volume_capability::access_mode::Mode::SingleNodeMultiWriter,
            )),
            readonly: request.read_only,
            volume_context: request.context.clone().into_iter().collect(),
        };
        client
            .node
            .node_publish_volume(body)
            .await
            .map(|_| ())
            .map_err(status_message)
    }

    async fn unstage(
        &self,
        driver: &str,
        volume_id: &str,
        staging_target: &std::path::Path,
    ) -> Result<(), String> {
        let mut client = self.client(driver)?;
        let body = v1::NodeUnstageVolumeRequest {
            volume_id: volume_id.to_string(),
            staging_target_path: staging_target.to_string_lossy().into_owned(),
        };
        client
            .node
            .node_unstage_volume(body)
            .await
            .map(|_| ())
            .map_err(status_message)
    }
}

/// Why a driver could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// NodeGetInfo failed.
    #[error("NodeGetInfo: {}", rpc_error(.0))]
    Driver(#[from] tonic::Status),
    /// Writing the Node or CSINode failed.
    #[error("recording the driver: {0}")]
    Api(#[from] kube::Error),
}

/// Registers `driver` on `node` (upstream's `nim.InstallCSIDriver`): the topology segments of
/// NodeGetInfo become node labels, and the driver joins the node's CSINode (made with the Node
/// as owner if missing). Returns the topology.
pub async fn register(
    client: &kube::Client,
    node: &str,
    driver: &str,
    csi: &mut CsiClient,
) -> Result<BTreeMap<String, String>, RegisterError> {
    let info = csi
        .node
        .node_get_info(v1::NodeGetInfoRequest::default())
        .await?
        .into_inner();
    let topology: BTreeMap<String, String> = info
        .accessible_topology
        .map(|t| t.segments.into_iter().collect())
        .unwrap_or_default();
    let nodes: Api<Node> = Api::all(client.clone());
    if !topology.is_empty() {
        let patch = serde_json::json!({"metadata": {"labels": topology}});
        nodes
            .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    let entry = CSINodeDriver {
        name: driver.to_string(),
        node_id: info.node_id,
        topology_keys: Some(topology.keys().cloned().collect()),
        allocatable: None,
    };
    let csinodes: Api<CSINode> = Api::all(client.clone());
    match csinodes.get_opt(node).await? {
        Some(mut existing) => {
            let drivers = &mut existing.spec.drivers;
            drivers.retain(|d| d.name != driver);
            drivers.push(entry);
            csinodes
                .replace(node, &PostParams::default(), &existing)
                .await?;
        }
        None => {
            let owner = nodes.get(node).await?;
            let object = CSINode {
                metadata: ObjectMeta {
                    name: Some(node.to_string()),
                    owner_references: Some(vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "Node".into(),
                        name: node.to_string(),
                        uid: owner.metadata.uid.unwrap_or_default(),
                        ..Default::default()
                    }]),
                    ..Default::default()
                },
                spec: CSINodeSpec {
                    drivers: vec![entry],
                },
            };
            csinodes.create(&PostParams::default(), &object).await?;
        }
    }
    Ok(topology)
}

#[cfg(test)]
mod tests {
    use super::*;
    use v1::volume_capability::access_mode::Mode;

    #[test]
    fn access_modes_map_as_upstream() {
        let modes = |m: &[&str]| m.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            access_mode(&modes(&["ReadWriteOnce"])),
            Mode::SingleNodeMultiWriter
        );
        assert_eq!(
            access_mode(&modes(&["ReadWriteOncePod"])),
            Mode::SingleNodeSingleWriter
        );
        assert_eq!(
            access_mode(&modes(&["ReadOnlyMany"])),
            Mode::MultiNodeReaderOnly
        );
        assert_eq!(
            access_mode(&modes(&["ReadWriteMany"])),
            Mode::MultiNodeMultiWriter
        );
    }
}
