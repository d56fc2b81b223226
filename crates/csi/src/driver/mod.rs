//! [`LocalDriver`]: the CSI driver `local.csi.ferry.dev` for node-local volumes, what k3s's
//! local-path provisioner makes (a directory per volume under a data dir), over the CSI gRPC API.
//! One instance runs on each node and serves Identity, Controller and Node for that node's
//! volumes: the node-local provisioner calls CreateVolume/DeleteVolume on the driver of the node
//! the claim is bound to (the volume's topology names the node); when the CSIDriver object asks
//! for attachment, the attacher calls ControllerPublishVolume (which only records the node: a
//! directory has nothing to attach); the kubelet calls NodeStageVolume to bind-mount the
//! directory at the node's global mount of the volume, then NodePublishVolume to bind-mount that
//! into each pod's volume path.
//!
//! - `identity.rs`, `controller.rs`, `node.rs`: one file per CSI service.
//! - `store.rs`: volume directories and their JSON records on disk.
//! - `capacity.rs`: the size decisions, pure.
//! - `usage.rs`: bytes and inodes a directory uses (NodeGetVolumeStats).
//!
//! Every RPC runs on the blocking pool (file system calls, mounts, a directory walk); those that
//! change volumes hold one lock, which is how the spec's "one call in flight per volume" is kept
//! without per-volume bookkeeping.

mod capacity;
mod controller;
mod identity;
mod node;
mod store;
mod usage;

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use tonic::{Response, Status};

use crate::mounter::Mounter;
use crate::v1::volume_capability::access_mode::Mode;
use crate::v1::volume_capability::AccessType;
use crate::v1::{Topology, VolumeCapability};

pub use capacity::DEFAULT_CAPACITY_BYTES;
pub use store::volume_id;

/// The driver's name (GetPluginInfo), as a StorageClass's `provisioner` and a CSI PV's `driver`.
pub const DRIVER_NAME: &str = "local.csi.ferry.dev";

/// The key of ControllerPublishVolume's publish context naming the node the volume was attached
/// to; NodeStageVolume refuses a context naming another node.
pub const PUBLISH_CONTEXT_NODE: &str = "local.csi.ferry.dev/node";

/// The topology key of the node a volume lives on (`accessible_topology`, NodeGetInfo); the
/// kubelet copies it into the CSINode's `topologyKeys` and the Node's labels.
pub const TOPOLOGY_KEY: &str = "topology.local.csi.ferry.dev/node";

/// What a [`LocalDriver`] serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverConfig {
    /// This node's name: NodeGetInfo's `node_id` and the value of [`TOPOLOGY_KEY`].
    pub node_id: String,
    /// The directory volumes are made in (created if missing), e.g.
    /// `<data-dir>/storage/local.csi.ferry.dev`.
    pub root: PathBuf,
    /// The bytes all volumes together may be given; `None` gives no limit (GetCapacity then
    /// reports the free space of the file system under `root`). Volumes are directories, so
    /// capacity is bookkeeping: it is never enforced on what pods write.
    pub capacity_bytes: Option<i64>,
}

/// The node-local CSI driver. Cheap to clone (one shared state); serve it with
/// [`serve`](crate::serve).
#[derive(Clone)]
pub struct LocalDriver {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LocalDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalDriver")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: DriverConfig,
    store: store::VolumeStore,
    mounter: Arc<dyn Mounter>,
    /// Held by every RPC that changes a volume record, a volume directory or a mount.
    lock: Mutex<()>,
}

impl LocalDriver {
    /// A driver for `config`, mounting through `mounter`; makes `config.root` if missing.
    pub fn new(config: DriverConfig, mounter: Arc<dyn Mounter>) -> io::Result<Self> {
        if config.node_id.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the CSI driver needs a node id",
            ));
        }
        let store = store::VolumeStore::open(config.root.clone())?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                store,
                mounter,
                lock: Mutex::new(()),
            }),
        })
    }

    /// What the driver was made with.
    pub fn config(&self) -> &DriverConfig {
        &self.inner.config
    }

    /// Runs `op` on the blocking pool and answers with its result, its error mapped to the
    /// CSI spec's status code.
    async fn run<T, F>(&self, rpc: &'static str, op: F) -> Result<Response<T>, Status>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, Error> + Send + 'static,
    {
        let inner = self.inner.clone();
        let result = tokio::task::spawn_blocking(move || op(&inner))
            .await
            .map_err(|err| Status::internal(format!("{rpc}: {err}")))?;
        match result {
            Ok(response) => Ok(Response::new(response)),
            Err(err) => {
                if let Error::Io { .. } = err {
                    tracing::warn!(rpc, %err, "CSI call failed");
                } else {
                    tracing::debug!(rpc, %err, "CSI call refused");
                }
                Err(err.into())
            }
        }
    }
}

impl Inner {
    /// The topology every volume of this node is accessible from.
    fn topology(&self) -> Topology {
        Topology {
            segments: HashMap::from([(TOPOLOGY_KEY.to_string(), self.config.node_id.clone())]),
        }
    }

    /// Whether a topology names this node (other keys are not ours to judge).
    fn is_this_node(&self, topology: &Topology) -> bool {
        topology.segments.get(TOPOLOGY_KEY) == Some(&self.config.node_id)
    }
}

/// Why an RPC failed, one variant per CSI status code the driver answers with.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A required request field is empty (INVALID_ARGUMENT).
    #[error("{0} is required")]
    MissingField(&'static str),
    /// A field has a value the driver does not support (INVALID_ARGUMENT).
    #[error("{0}")]
    InvalidArgument(String),
    /// The volume does not exist (NOT_FOUND).
    #[error("{0}")]
    NotFound(String),
    /// A volume or publication exists with other arguments (ALREADY_EXISTS).
    #[error("{0}")]
    AlreadyExists(String),
    /// The volume's state forbids the call, e.g. it is in use (FAILED_PRECONDITION).
    #[error("{0}")]
    FailedPrecondition(String),
    /// Not enough capacity left, or not on this node's topology (RESOURCE_EXHAUSTED).
    #[error("{0}")]
    ResourceExhausted(String),
    /// The capacity asked for can never be given (OUT_OF_RANGE).
    #[error("{0}")]
    OutOfRange(String),
    /// The file system or a mount failed (INTERNAL).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: io::Error,
    },
}

impl Error {
    fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let message = err.to_string();
        match err {
            Error::MissingField(_) | Error::InvalidArgument(_) => Status::invalid_argument(message),
            Error::NotFound(_) => Status::not_found(message),
            Error::AlreadyExists(_) => Status::already_exists(message),
            Error::FailedPrecondition(_) => Status::failed_precondition(message),
            Error::ResourceExhausted(_) => Status::resource_exhausted(message),
            Error::OutOfRange(_) => Status::out_of_range(message),
            Error::Io { .. } => Status::internal(message),
        }
    }
}

/// Checks that a volume of this driver can be used as `capability` says (field name `field` in
/// messages) and returns its access mode: a mounted file system (a directory cannot be a block
/// device) on this one node (MULTI_NODE_* modes cannot be honoured by a node-local volume).
fn check_capability(capability: &VolumeCapability, field: &str) -> Result<Mode, Error> {
    match capability.access_type {
        Some(AccessType::Mount(_)) => {}
        Some(AccessType::Block(_)) => {
            return Err(Error::InvalidArgument(format!(
                "{field}: block volumes are not supported, {DRIVER_NAME} volumes are directories \
                 (use access type mount)"
            )))
        }
        None => {
            return Err(Error::InvalidArgument(format!(
                "{field}.access_type (mount) is required"
            )))
        }
    }
    let Some(access_mode) = &capability.access_mode else {
        return Err(Error::InvalidArgument(format!(
            "{field}.access_mode is required"
        )));
    };
    match Mode::try_from(access_mode.mode) {
        Ok(
            mode @ (Mode::SingleNodeWriter
            | Mode::SingleNodeReaderOnly
            | Mode::SingleNodeSingleWriter
            | Mode::SingleNodeMultiWriter),
        ) => Ok(mode),
        Ok(
            mode @ (Mode::MultiNodeReaderOnly
            | Mode::MultiNodeSingleWriter
            | Mode::MultiNodeMultiWriter),
        ) => Err(Error::InvalidArgument(format!(
            "{field}: access mode {} is not supported, {DRIVER_NAME} volumes are local to one node",
            mode.as_str_name()
        ))),
        Ok(Mode::Unknown) | Err(_) => Err(Error::InvalidArgument(format!(
            "{field}.access_mode: unknown mode {}",
            access_mode.mode
        ))),
    }
}

/// Checks every capability of a request (an empty list is a missing field).
fn check_capabilities(capabilities: &[VolumeCapability], field: &'static str) -> Result<(), Error> {
    if capabilities.is_empty() {
        return Err(Error::MissingField(field));
    }
    for (i, capability) in capabilities.iter().enumerate() {
        check_capability(capability, &format!("{field}[{i}]"))?;
    }
    Ok(())
}

/// An error if `value` is empty.
fn require<'a>(value: &'a str, field: &'static str) -> Result<&'a str, Error> {
    if value.is_empty() {
        Err(Error::MissingField(field))
    } else {
        Ok(value)
    }
}

#[cfg(test)]
mod testing;
