//! The Node service: a volume's directory bind-mounted at the kubelet's staging path
//! (NodeStageVolume, once per volume on the node), from there at each pod's target path
//! (NodePublishVolume), and unmounted again (NodeUnpublishVolume, NodeUnstageVolume); its usage,
//! this node's identity. A publish without a staging path (a CO that does not stage) mounts the
//! volume's directory directly.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use tonic::{Request, Response, Status};

use super::capacity::Range;
use super::store::Publication;
use super::{check_capability, require, usage, Error, Inner, LocalDriver, PUBLISH_CONTEXT_NODE};
use crate::v1::node_server::Node;
use crate::v1::node_service_capability::{self, rpc};
use crate::v1::volume_capability::access_mode::Mode;
use crate::v1::volume_capability::AccessType;
use crate::v1::volume_usage::Unit;
use crate::v1::{
    NodeExpandVolumeRequest, NodeExpandVolumeResponse, NodeGetCapabilitiesRequest,
    NodeGetCapabilitiesResponse, NodeGetInfoRequest, NodeGetInfoResponse,
    NodeGetVolumeStatsRequest, NodeGetVolumeStatsResponse, NodePublishVolumeRequest,
    NodePublishVolumeResponse, NodeServiceCapability, NodeStageVolumeRequest,
    NodeStageVolumeResponse, NodeUnpublishVolumeRequest, NodeUnpublishVolumeResponse,
    NodeUnstageVolumeRequest, NodeUnstageVolumeResponse, VolumeUsage,
};

/// Unmounts tried on one target before giving up (bind mounts can be stacked by repeated
/// publishes that crashed before recording; each unmount takes the topmost).
const MAX_UNMOUNTS: usize = 8;

/// Access modes that allow one publication on the node at a time (the second table of the
/// spec's NodePublishVolume). SINGLE_NODE_WRITER is left out on purpose: it is what Kubernetes
/// sends for ReadWriteOnce from COs that predate SINGLE_NODE_MULTI_WRITER, and ReadWriteOnce
/// lets every pod on the node use the volume.
fn is_exclusive(mode: i32) -> bool {
    matches!(
        Mode::try_from(mode),
        Ok(Mode::SingleNodeSingleWriter | Mode::SingleNodeReaderOnly)
    )
}

impl Inner {
    fn node_publish_volume(
        &self,
        request: NodePublishVolumeRequest,
    ) -> Result<NodePublishVolumeResponse, Error> {
        let volume_id = require(&request.volume_id, "volume_id")?;
        let target = absolute(&request.target_path, "target_path")?;
        let Some(capability) = &request.volume_capability else {
            return Err(Error::MissingField("volume_capability"));
        };
        let mode = check_capability(capability, "volume_capability")?;
        let (fs_type, mount_flags) = match &capability.access_type {
            Some(AccessType::Mount(mount)) => (mount.fs_type.clone(), mount.mount_flags.clone()),
            _ => Default::default(),
        };
        let staging = match request.staging_target_path.as_str() {
            "" => None,
            path => Some(absolute(path, "staging_target_path")?),
        };
        let wanted = Publication {
            target_path: target.clone(),
            readonly: request.readonly,
            access_mode: mode as i32,
            fs_type,
            mount_flags,
            staging_target_path: staging.clone(),
        };
        let readonly = request.readonly || mode == Mode::SingleNodeReaderOnly;

        let _guard = self.lock.lock();
        let mut record = self
            .store
            .get(volume_id)?
            .ok_or_else(|| Error::NotFound(format!("volume {volume_id} does not exist")))?;
        let source = match staging {
            Some(staging) => {
                // The spec's order: staged first, then published from the staging path.
                if record.staged_at.as_ref() != Some(&staging) || !self.is_mounted(&staging)? {
                    return Err(Error::FailedPrecondition(format!(
                        "volume {volume_id} is not staged at {}",
                        staging.display()
                    )));
                }
                staging
            }
            None => self.store.volume_dir(volume_id),
        };

        if let Some(existing) = record.publications.iter().find(|p| p.target_path == target) {
            if *existing != wanted {
                return Err(Error::AlreadyExists(format!(
                    "volume {volume_id} is published at {} with other arguments",
                    target.display()
                )));
            }
            // The same call again: done, or redone if the mount went away (a reboot).
            if !self.is_mounted(&target)? {
                make_target(&target)?;
                self.mount(&source, &target, readonly)?;
            }
            return Ok(NodePublishVolumeResponse {});
        }

        // Publications whose mount is gone (the node rebooted) do not count.
        let mut live = Vec::with_capacity(record.publications.len());
        for publication in std::mem::take(&mut record.publications) {
            if self.is_mounted(&publication.target_path)? {
                live.push(publication);
            }
        }
        record.publications = live;
        if let Some(other) = record
            .publications
            .iter()
            .find(|p| is_exclusive(p.access_mode) || is_exclusive(wanted.access_mode))
        {
            return Err(Error::FailedPrecondition(format!(
                "volume {volume_id} is already published at {} and its access mode allows one \
                 publication",
                other.target_path.display()
            )));
        }

        make_target(&target)?;
        if self.is_mounted(&target)? {
            return Err(Error::AlreadyExists(format!(
                "{} is already a mount point, not of volume {volume_id}",
                target.display()
            )));
        }
        // Recorded before mounting, so a crash in between leaves a record the retry completes
        // (and never a mount nobody knows about).
        record.publications.push(wanted);
        self.store.put(volume_id, &record)?;
        if let Err(err) = self.mount(&source, &target, readonly) {
            record.publications.retain(|p| p.target_path != target);
            self.store.put(volume_id, &record)?;
            let _ = fs::remove_dir(&target);
            return Err(err);
        }
        tracing::info!(%volume_id, target = %target.display(), readonly, "volume published");
        Ok(NodePublishVolumeResponse {})
    }

    /// Unmounts and removes the target. The volume's record is only consulted to forget the
    /// publication: undoing a publish never depends on the volume still existing, so an unknown
    /// volume answers OK rather than the spec's NOT_FOUND, which would leave the kubelet
    /// retrying the teardown of a pod forever.
    fn node_unpublish_volume(
        &self,
        request: NodeUnpublishVolumeRequest,
    ) -> Result<NodeUnpublishVolumeResponse, Error> {
        let volume_id = require(&request.volume_id, "volume_id")?;
        let target = absolute(&request.target_path, "target_path")?;

        let _guard = self.lock.lock();
        self.unmount_all(&target)?;
        if let Some(mut record) = self.store.get(volume_id)? {
            let before = record.publications.len();
            record.publications.retain(|p| p.target_path != target);
            if record.publications.len() != before {
                self.store.put(volume_id, &record)?;
            }
        }
        tracing::info!(%volume_id, target = %target.display(), "volume unpublished");
        Ok(NodeUnpublishVolumeResponse {})
    }

    /// Bind-mounts the volume's directory on the staging target, once per volume on the node:
    /// the kubelet's global mount, which every pod's publication is then bind-mounted from.
    fn node_stage_volume(
        &self,
        request: NodeStageVolumeRequest,
    ) -> Result<NodeStageVolumeResponse, Error> {
        let volume_id = require(&request.volume_id, "volume_id")?;
        let staging = absolute(&request.staging_target_path, "staging_target_path")?;
        let Some(capability) = &request.volume_capability else {
            return Err(Error::MissingField("volume_capability"));
        };
        check_capability(capability, "volume_capability")?;
        // An attached volume's publish context names the node it was attached to.
        if let Some(node) = request.publish_context.get(PUBLISH_CONTEXT_NODE) {
            if *node != self.config.node_id {
                return Err(Error::FailedPrecondition(format!(
                    "volume {volume_id} was attached to node {node}, not to this node ({})",
                    self.config.node_id
                )));
            }
        }

        let _guard = self.lock.lock();
        let mut record = self
            .store
            .get(volume_id)?
            .ok_or_else(|| Error::NotFound(format!("volume {volume_id} does not exist")))?;
        if let Some(staged) = &record.staged_at {
            let live = self.is_mounted(staged)?;
            if *staged == staging && live {
                return Ok(NodeStageVolumeResponse {});
            }
            if *staged != staging && live {
                return Err(Error::AlreadyExists(format!(
                    "volume {volume_id} is staged at {}, not at {}",
                    staged.display(),
                    staging.display()
                )));
            }
        }
        make_target(&staging)?;
        if self.is_mounted(&staging)? {
            return Err(Error::AlreadyExists(format!(
                "{} is already a mount point, not of volume {volume_id}",
                staging.display()
            )));
        }
        // Recorded before mounting, as publications are.
        record.staged_at = Some(staging.clone());
        self.store.put(volume_id, &record)?;
        let source = self.store.volume_dir(volume_id);
        if let Err(err) = self.mount(&source, &staging, false) {
            record.staged_at = None;
            self.store.put(volume_id, &record)?;
            let _ = fs::remove_dir(&staging);
            return Err(err);
        }
        tracing::info!(%volume_id, staging = %staging.display(), "volume staged");
        Ok(NodeStageVolumeResponse {})
    }

    /// Unmounts and removes the staging target; refused while a publication made from it is
    /// still mounted. Like unpublishing, it never depends on the volume still existing.
    fn node_unstage_volume(
        &self,
        request: NodeUnstageVolumeRequest,
    ) -> Result<NodeUnstageVolumeResponse, Error> {
        let volume_id = require(&request.volume_id, "volume_id")?;
        let staging = absolute(&request.staging_target_path, "staging_target_path")?;

        let _guard = self.lock.lock();
        let record = self.store.get(volume_id)?;
        if let Some(record) = &record {
            for publication in &record.publications {
                if publication.staging_target_path.as_ref() == Some(&staging)
                    && self.is_mounted(&publication.target_path)?
                {
                    return Err(Error::FailedPrecondition(format!(
                        "volume {volume_id} is still published at {}",
                        publication.target_path.display()
                    )));
                }
            }
        }
        self.unmount_all(&staging)?;
        if let Some(mut record) = record {
            if record.staged_at.as_ref() == Some(&staging) {
                record.staged_at = None;
                self.store.put(volume_id, &record)?;
            }
        }
        tracing::info!(%volume_id, staging = %staging.display(), "volume unstaged");
        Ok(NodeUnstageVolumeResponse {})
    }

    /// Unmounts every mount stacked on `target`, then removes the directory if empty.
    fn unmount_all(&self, target: &Path) -> Result<(), Error> {
        let mut unmounts = 0;
        while self.is_mounted(target)? {
            if unmounts == MAX_UNMOUNTS {
                return Err(Error::io(
                    format!("unmounting {}", target.display()),
                    io::Error::other(format!("still a mount point after {MAX_UNMOUNTS} unmounts")),
                ));
            }
            self.mounter
                .unmount(target)
                .map_err(|err| Error::io(format!("unmounting {}", target.display()), err))?;
            unmounts += 1;
        }
        // remove_dir, not remove_dir_all: if anything is left in it, it is not ours to delete.
        match fs::remove_dir(target) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(Error::io(format!("removing {}", target.display()), err)),
        }
    }

    fn node_get_volume_stats(
        &self,
        request: NodeGetVolumeStatsRequest,
    ) -> Result<NodeGetVolumeStatsResponse, Error> {
        let volume_id = require(&request.volume_id, "volume_id")?;
        let volume_path = absolute(&request.volume_path, "volume_path")?;
        // No lock: a walk can take a while and only reads.
        let record = self
            .store
            .get(volume_id)?
            .ok_or_else(|| Error::NotFound(format!("volume {volume_id} does not exist")))?;
        if !volume_path.exists() {
            return Err(Error::NotFound(format!(
                "volume {volume_id} is not at {}",
                volume_path.display()
            )));
        }
        let dir = self.store.volume_dir(volume_id);
        let used = usage::disk_usage(&dir)
            .map_err(|err| Error::io(format!("measuring {}", dir.display()), err))?;
        let fs = rustix::fs::statvfs(&dir)
            .map_err(|err| Error::io(format!("statvfs {}", dir.display()), err.into()))?;
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let fs_free = clamp(fs.f_bavail.saturating_mul(fs.f_frsize));
        let used_bytes = clamp(used.bytes);
        Ok(NodeGetVolumeStatsResponse {
            usage: vec![
                VolumeUsage {
                    // What is left of the capacity, unless the disk has less.
                    available: (record.capacity_bytes - used_bytes).clamp(0, fs_free),
                    total: record.capacity_bytes,
                    used: used_bytes,
                    unit: Unit::Bytes.into(),
                },
                VolumeUsage {
                    // Inodes are not budgeted per volume: the file system's are shared.
                    available: clamp(fs.f_favail),
                    total: clamp(fs.f_files),
                    used: clamp(used.inodes),
                    unit: Unit::Inodes.into(),
                },
            ],
            volume_condition: None,
        })
    }

    fn node_expand_volume(
        &self,
        request: NodeExpandVolumeRequest,
    ) -> Result<NodeExpandVolumeResponse, Error> {
        let volume_id = require(&request.volume_id, "volume_id")?;
        let volume_path = absolute(&request.volume_path, "volume_path")?;
        if let Some(capability) = &request.volume_capability {
            check_capability(capability, "volume_capability")?;
        }
        let range = Range::parse(request.capacity_range.as_ref(), "capacity_range")?;
        let record = self
            .store
            .get(volume_id)?
            .ok_or_else(|| Error::NotFound(format!("volume {volume_id} does not exist")))?;
        if !volume_path.exists() {
            return Err(Error::NotFound(format!(
                "volume {volume_id} is not at {}",
                volume_path.display()
            )));
        }
        let capacity_bytes = match range.expansion_target() {
            // No range: nothing to grow to, the volume is as large as recorded.
            None => record.capacity_bytes,
            Some(_) => self.expand(volume_id, range)?,
        };
        Ok(NodeExpandVolumeResponse { capacity_bytes })
    }

    fn is_mounted(&self, path: &Path) -> Result<bool, Error> {
        self.mounter
            .is_mount_point(path)
            .map_err(|err| Error::io(format!("checking the mount on {}", path.display()), err))
    }

    fn mount(&self, source: &Path, target: &Path, readonly: bool) -> Result<(), Error> {
        self.mounter
            .bind_mount(source, target, readonly)
            .map_err(|err| {
                Error::io(
                    format!("bind-mounting {} on {}", source.display(), target.display()),
                    err,
                )
            })
    }
}

/// `path` (the request field `field`) as an absolute path.
fn absolute(path: &str, field: &'static str) -> Result<PathBuf, Error> {
    let path = Path::new(require(path, field)?);
    if !path.is_absolute() {
        return Err(Error::InvalidArgument(format!(
            "{field} must be an absolute path, not {}",
            path.display()
        )));
    }
    Ok(path.to_path_buf())
}

/// Makes the publish target; its parent is the caller's to make (the spec), though making it
/// too costs nothing.
fn make_target(target: &Path) -> Result<(), Error> {
    fs::create_dir_all(target).map_err(|err| Error::io(format!("making {}", target.display()), err))
}

fn rpc_capability(kind: rpc::Type) -> NodeServiceCapability {
    NodeServiceCapability {
        r#type: Some(node_service_capability::Type::Rpc(
            node_service_capability::Rpc {
                r#type: kind.into(),
            },
        )),
    }
}

#[tonic::async_trait]
impl Node for LocalDriver {
    async fn node_stage_volume(
        &self,
        request: Request<NodeStageVolumeRequest>,
    ) -> Result<Response<NodeStageVolumeResponse>, Status> {
        let request = request.into_inner();
        self.run("NodeStageVolume", move |inner| {
            inner.node_stage_volume(request)
        })
        .await
    }

    async fn node_unstage_volume(
        &self,
        request: Request<NodeUnstageVolumeRequest>,
    ) -> Result<Response<NodeUnstageVolumeResponse>, Status> {
        let request = request.into_inner();
        self.run("NodeUnstageVolume", move |inner| {
            inner.node_unstage_volume(request)
        })
        .await
    }

    async fn node_publish_volume(
        &self,
        request: Request<NodePublishVolumeRequest>,
    ) -> Result<Response<NodePublishVolumeResponse>, Status> {
        let request = request.into_inner();
        self.run("NodePublishVolume", move |inner| {
            inner.node_publish_volume(request)
        })
        .await
    }

    async fn node_unpublish_volume(
        &self,
        request: Request<NodeUnpublishVolumeRequest>,
    ) -> Result<Response<NodeUnpublishVolumeResponse>, Status> {
        let request = request.into_inner();
        self.run("NodeUnpublishVolume", move |inner| {
            inner.node_unpublish_volume(request)
        })
        .await
    }

    async fn node_get_volume_stats(
        &self,
        request: Request<NodeGetVolumeStatsRequest>,
    ) -> Result<Response<NodeGetVolumeStatsResponse>, Status> {
        let request = request.into_inner();
        self.run("NodeGetVolumeStats", move |inner| {
            inner.node_get_volume_stats(request)
        })
        .await
    }

    async fn node_expand_volume(
        &self,
        request: Request<NodeExpandVolumeRequest>,
    ) -> Result<Response<NodeExpandVolumeResponse>, Status> {
        let request = request.into_inner();
        self.run("NodeExpandVolume", move |inner| {
            inner.node_expand_volume(request)
        })
        .await
    }

    async fn node_get_capabilities(
        &self,
        _request: Request<NodeGetCapabilitiesRequest>,
    ) -> Result<Response<NodeGetCapabilitiesResponse>, Status> {
        Ok(Response::new(NodeGetCapabilitiesResponse {
            capabilities: vec![
                rpc_capability(rpc::Type::StageUnstageVolume),
                rpc_capability(rpc::Type::GetVolumeStats),
                rpc_capability(rpc::Type::ExpandVolume),
                rpc_capability(rpc::Type::SingleNodeMultiWriter),
            ],
        }))
    }

    async fn node_get_info(
        &self,
        _request: Request<NodeGetInfoRequest>,
    ) -> Result<Response<NodeGetInfoResponse>, Status> {
        Ok(Response::new(NodeGetInfoResponse {
            node_id: self.inner.config.node_id.clone(),
            max_volumes_per_node: 0,
            accessible_topology: Some(self.inner.topology()),
        }))
    }
}

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
