//! The Controller service: volumes made (a directory and its record), attached to their node
//! (ControllerPublish/Unpublish record it: a directory has nothing to attach), validated,
//! expanded (the recorded capacity) and deleted, and the capacity left. Not served: ListVolumes,
//! snapshots, clones, ControllerGetVolume and ControllerModifyVolume — their calls answer
//! UNIMPLEMENTED.

use tonic::{Request, Response, Status};

use super::capacity::{check_fits, Range};
use super::store::{volume_id, VolumeRecord};
use super::{
    check_capabilities, check_capability, require, Error, Inner, LocalDriver, PUBLISH_CONTEXT_NODE,
};
use crate::v1::controller_server::Controller;
use crate::v1::controller_service_capability::{self, rpc};
use crate::v1::validate_volume_capabilities_response::Confirmed;
use crate::v1::{
    ControllerExpandVolumeRequest, ControllerExpandVolumeResponse,
    ControllerGetCapabilitiesRequest, ControllerGetCapabilitiesResponse,
    ControllerPublishVolumeRequest, ControllerPublishVolumeResponse, ControllerServiceCapability,
    ControllerUnpublishVolumeRequest, ControllerUnpublishVolumeResponse, CreateVolumeRequest,
    CreateVolumeResponse, DeleteVolumeRequest, DeleteVolumeResponse, GetCapacityRequest,
    GetCapacityResponse, ValidateVolumeCapabilitiesRequest, ValidateVolumeCapabilitiesResponse,
    Volume,
};

impl Inner {
    fn create_volume(&self, request: CreateVolumeRequest) -> Result<CreateVolumeResponse, Error> {
        let name = require(&request.name, "name")?;
        check_capabilities(&request.volume_capabilities, "volume_capabilities")?;
        if request.volume_content_source.is_some() {
            return Err(Error::InvalidArgument(
                "volume_content_source: volumes cannot be made from snapshots or other volumes"
                    .into(),
            ));
        }
        if let Some(requirement) = &request.accessibility_requirements {
            // Preferred topologies are only a wish; requisite ones must include this node.
            if !requirement.requisite.is_empty()
                && !requirement.requisite.iter().any(|t| self.is_this_node(t))
            {
                return Err(Error::ResourceExhausted(format!(
                    "accessibility_requirements: the volume can only be made on node {}, which \
                     no requisite topology names",
                    self.config.node_id
                )));
            }
        }
        let range = Range::parse(request.capacity_range.as_ref(), "capacity_range")?;

        let _guard = self.lock.lock();
        let volume_id = volume_id(name);
        let capacity_bytes = match self.store.get(&volume_id)? {
            Some(existing) if existing.name != name => {
                return Err(Error::AlreadyExists(format!(
                    "volume id {volume_id} is taken by the volume named {:?}",
                    existing.name
                )))
            }
            Some(existing) if !range.admits(existing.capacity_bytes) => {
                return Err(Error::AlreadyExists(format!(
                    "volume {name:?} exists with {} bytes, outside capacity_range \
                     (required {}, limit {})",
                    existing.capacity_bytes, range.required, range.limit
                )))
            }
            // The same request again (or one it satisfies): finish a half-made volume.
            Some(existing) => existing.capacity_bytes,
            None => {
                let size = range.size_for_create();
                let allocated = self.store.allocated_bytes()?;
                check_fits(self.config.capacity_bytes, allocated, size, size)?;
                self.store.put(
                    &volume_id,
                    &VolumeRecord {
                        name: name.to_string(),
                        capacity_bytes: size,
                        publications: Vec::new(),
                        staged_at: None,
                        attached_to: None,
                    },
                )?;
                tracing::info!(%volume_id, name, capacity_bytes = size, "volume created");
                size
            }
        };
        self.store.make_dir(&volume_id)?;
        Ok(CreateVolumeResponse {
            volume: Some(Volume {
                capacity_bytes,
                volume_id,
                volume_context: Default::default(),
                content_source: None,
                accessible_topology: vec![self.topology()],
            }),
        })
    }

    fn delete_volume(&self, request: DeleteVolumeRequest) -> Result<DeleteVolumeResponse, Error> {
        let volume_id = require(&request.volume_id, "volume_id")?;
        let _guard = self.lock.lock();
        let Some(record) = self.store.get(volume_id)? else {
            return Ok(DeleteVolumeResponse {});
        };
        // Records outlive mounts across reboots; only a live mount means a pod uses the data.
        let staged = record.staged_at.iter();
        let published = record.publications.iter().map(|p| &p.target_path);
        for target in staged.chain(published) {
            let mounted = self.mounter.is_mount_point(target).map_err(|err| {
                Error::io(format!("checking the mount on {}", target.display()), err)
            })?;
            if mounted {
                return Err(Error::FailedPrecondition(format!(
                    "volume {volume_id} is still mounted at {}",
                    target.display()
                )));
            }
        }
        self.store.remove(volume_id)?;
        tracing::info!(%volume_id, "volume deleted");
        Ok(DeleteVolumeResponse {})
    }

    /// Attaches the volume to `node_id`, which must be this node (where its directory is); the
    /// publish context names the node. A volume is attached to one node at a time.
    fn controller_publish_volume(
        &self,
        request: ControllerPublishVolumeRequest,
    ) -> Result<ControllerPublishVolumeResponse, Error> {
        let volume_id = require(&request.volume_id, "volume_id")?;
        let node_id = require(&request.node_id, "node_id")?;
        let Some(capability) = &request.volume_capability else {
            return Err(Error::MissingField("volume_capability"));
        };
        check_capability(capability, "volume_capability")?;
        if node_id != self.config.node_id {
            return Err(Error::NotFound(format!(
                "node {node_id}: volumes of this driver can only be attached to node {}",
                self.config.node_id
            )));
        }
        let _guard = self.lock.lock();
        let mut record = self
            .store
            .get(volume_id)?
            .ok_or_else(|| Error::NotFound(format!("volume {volume_id} does not exist")))?;
        match &record.attached_to {
            Some(node) if node == node_id => {}
            Some(node) => {
                return Err(Error::FailedPrecondition(format!(
                    "volume {volume_id} is attached to node {node}"
                )))
            }
            None => {
                record.attached_to = Some(node_id.to_string());
                self.store.put(volume_id, &record)?;
                tracing::info!(%volume_id, node_id, "volume attached");
            }
        }
        Ok(ControllerPublishVolumeResponse {
            publish_context: [(PUBLISH_CONTEXT_NODE.to_string(), node_id.to_string())].into(),
        })
    }

    /// Detaches the volume from `node_id` (every node when empty). Refused while the volume is
    /// still staged on the node; a volume that does not exist is detached.
    fn controller_unpublish_volume(
        &self,
        request: ControllerUnpublishVolumeRequest,
    ) -> Result<ControllerUnpublishVolumeResponse, Error> {
        let volume_id = require(&request.volume_id, "volume_id")?;
        let _guard = self.lock.lock();
        let Some(mut record) = self.store.get(volume_id)? else {
            return Ok(ControllerUnpublishVolumeResponse {});
        };
        let attached_here = record
            .attached_to
            .as_deref()
            .is_some_and(|node| request.node_id.is_empty() || node == request.node_id);
        if !attached_here {
            return Ok(ControllerUnpublishVolumeResponse {});
        }
        if let Some(staged) = &record.staged_at {
            let mounted = self.mounter.is_mount_point(staged).map_err(|err| {
                Error::io(format!("checking the mount on {}", staged.display()), err)
            })?;
            if mounted {
                return Err(Error::FailedPrecondition(format!(
                    "volume {volume_id} is still staged at {}",
                    staged.display()
                )));
            }
        }
        record.attached_to = None;
        self.store.put(volume_id, &record)?;
        tracing::info!(%volume_id, node_id = %request.node_id, "volume detached");
        Ok(ControllerUnpublishVolumeResponse {})
    }

    fn validate_volume_capabilities(
        &self,
        request: ValidateVolumeCapabilitiesRequest,
    ) -> Result<ValidateVolumeCapabilitiesResponse, Error> {
        let volume_id = require(&request.volume_id, "volume_id")?;
        if request.volume_capabilities.is_empty() {
            return Err(Error::MissingField("volume_capabilities"));
        }
        if self.store.get(volume_id)?.is_none() {
            return Err(Error::NotFound(format!(
                "volume {volume_id} does not exist"
            )));
        }
        Ok(
            match check_capabilities(&request.volume_capabilities, "volume_capabilities") {
                Ok(()) => ValidateVolumeCapabilitiesResponse {
                    confirmed: Some(Confirmed {
                        volume_context: request.volume_context,
                        volume_capabilities: request.volume_capabilities,
                        parameters: request.parameters,
                    }),
                    message: String::new(),
                },
                Err(err) => ValidateVolumeCapabilitiesResponse {
                    confirmed: None,
                    message: err.to_string(),
                },
            },
        )
    }

    fn get_capacity(&self, request: GetCapacityRequest) -> Result<GetCapacityResponse, Error> {
        let unusable = request
            .volume_capabilities
            .iter()
            .any(|c| check_capability(c, "volume_capabilities").is_err())
            || request
                .accessible_topology
                .as_ref()
                .is_some_and(|t| !self.is_this_node(t));
        let available = if unusable {
            0
        } else {
            match self.config.capacity_bytes {
                Some(total) => (total - self.store.allocated_bytes()?).max(0),
                None => free_bytes(self.store.root())?,
            }
        };
        Ok(GetCapacityResponse {
            available_capacity: available,
            maximum_volume_size: Some(available),
            minimum_volume_size: None,
        })
    }

    /// Sets the recorded capacity of `volume_id` to what `range` asks for, if that is more;
    /// answers the capacity after. Shared by ControllerExpandVolume and NodeExpandVolume.
    pub(super) fn expand(&self, volume_id: &str, range: Range) -> Result<i64, Error> {
        let _guard = self.lock.lock();
        let mut record = self
            .store
            .get(volume_id)?
            .ok_or_else(|| Error::NotFound(format!("volume {volume_id} does not exist")))?;
        let Some(target) = range.expansion_target() else {
            return Err(Error::InvalidArgument(
                "capacity_range: required_bytes or limit_bytes must be set".into(),
            ));
        };
        // Already as large: OK with the current size, as the spec asks (a shrink is not an error).
        if target <= record.capacity_bytes {
            return Ok(record.capacity_bytes);
        }
        let allocated = self.store.allocated_bytes()?;
        check_fits(
            self.config.capacity_bytes,
            allocated,
            target,
            target - record.capacity_bytes,
        )?;
        tracing::info!(
            %volume_id,
            from = record.capacity_bytes,
            to = target,
            "volume expanded"
        );
        record.capacity_bytes = target;
        self.store.put(volume_id, &record)?;
        Ok(target)
    }
}

/// The bytes an unprivileged user may still write on the file system under `path`.
fn free_bytes(path: &std::path::Path) -> Result<i64, Error> {
    let stat = rustix::fs::statvfs(path)
        .map_err(|err| Error::io(format!("statvfs {}", path.display()), err.into()))?;
    let free = stat.f_bavail.saturating_mul(stat.f_frsize);
    Ok(i64::try_from(free).unwrap_or(i64::MAX))
}

fn rpc_capability(kind: rpc::Type) -> ControllerServiceCapability {
    ControllerServiceCapability {
        r#type: Some(controller_service_capability::Type::Rpc(
            controller_service_capability::Rpc {
                r#type: kind.into(),
            },
        )),
    }
}

#[tonic::async_trait]
impl Controller for LocalDriver {
    async fn create_volume(
        &self,
        request: Request<CreateVolumeRequest>,
    ) -> Result<Response<CreateVolumeResponse>, Status> {
        let request = request.into_inner();
        self.run("CreateVolume", move |inner| inner.create_volume(request))
            .await
    }

    async fn delete_volume(
        &self,
        request: Request<DeleteVolumeRequest>,
    ) -> Result<Response<DeleteVolumeResponse>, Status> {
        let request = request.into_inner();
        self.run("DeleteVolume", move |inner| inner.delete_volume(request))
            .await
    }

    async fn controller_publish_volume(
        &self,
        request: Request<ControllerPublishVolumeRequest>,
    ) -> Result<Response<ControllerPublishVolumeResponse>, Status> {
        let request = request.into_inner();
        self.run("ControllerPublishVolume", move |inner| {
            inner.controller_publish_volume(request)
        })
        .await
    }

    async fn controller_unpublish_volume(
        &self,
        request: Request<ControllerUnpublishVolumeRequest>,
    ) -> Result<Response<ControllerUnpublishVolumeResponse>, Status> {
        let request = request.into_inner();
        self.run("ControllerUnpublishVolume", move |inner| {
            inner.controller_unpublish_volume(request)
        })
        .await
    }

    async fn validate_volume_capabilities(
        &self,
        request: Request<ValidateVolumeCapabilitiesRequest>,
    ) -> Result<Response<ValidateVolumeCapabilitiesResponse>, Status> {
        let request = request.into_inner();
        self.run("ValidateVolumeCapabilities", move |inner| {
            inner.validate_volume_capabilities(request)
        })
        .await
    }

    async fn get_capacity(
        &self,
        request: Request<GetCapacityRequest>,
    ) -> Result<Response<GetCapacityResponse>, Status> {
        let request = request.into_inner();
        self.run("GetCapacity", move |inner| inner.get_capacity(request))
            .await
    }

    async fn controller_get_capabilities(
        &self,
        _request: Request<ControllerGetCapabilitiesRequest>,
    ) -> Result<Response<ControllerGetCapabilitiesResponse>, Status> {
        Ok(Response::new(ControllerGetCapabilitiesResponse {
            capabilities: vec![
                rpc_capability(rpc::Type::CreateDeleteVolume),
                // Offered for COs that ask for attachment (a CSIDriver with attachRequired).
                rpc_capability(rpc::Type::PublishUnpublishVolume),
                rpc_capability(rpc::Type::GetCapacity),
                rpc_capability(rpc::Type::ExpandVolume),
                // ReadWriteOnce becomes SINGLE_NODE_MULTI_WRITER (pods on the node share it) and
                // ReadWriteOncePod SINGLE_NODE_SINGLE_WRITER, instead of both SINGLE_NODE_WRITER.
                rpc_capability(rpc::Type::SingleNodeMultiWriter),
            ],
        }))
    }

    async fn controller_expand_volume(
        &self,
        request: Request<ControllerExpandVolumeRequest>,
    ) -> Result<Response<ControllerExpandVolumeResponse>, Status> {
        let request = request.into_inner();
        self.run("ControllerExpandVolume", move |inner| {
            let volume_id = require(&request.volume_id, "volume_id")?;
            let Some(range) = &request.capacity_range else {
                return Err(Error::MissingField("capacity_range"));
            };
            let range = Range::parse(Some(range), "capacity_range")?;
            if let Some(capability) = &request.volume_capability {
                check_capability(capability, "volume_capability")?;
            }
            Ok(ControllerExpandVolumeResponse {
                capacity_bytes: inner.expand(volume_id, range)?,
                // A directory has no file system of its own to grow.
                node_expansion_required: false,
            })
        })
        .await
    }
}

#[cfg(test)]
#[path = "controller_tests.rs"]
mod tests;
