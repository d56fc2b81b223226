//! The volume manager: prepares a pod's volumes on the host before its containers start, and
//! removes them after the pod is gone.
//!
//! Each volume of a pod lives at `<pods_dir>/<pod uid>/volumes/<plugin dir>/<volume name>`, with
//! upstream's plugin directory names (`kubernetes.io~empty-dir`, `kubernetes.io~configmap`, ...),
//! and [`VolumeManager::prepare`] returns, per volume name, the [`VolumeHostPath`] that
//! `podconfig` bind-mounts into containers. Start reading at [`VolumeManager::prepare`].
//!
//! - `emptyDir`: a 0777 directory; `medium: Memory` mounts a tmpfs there.
//! - `configMap`, `secret`, `downwardAPI`, `projected`: files written with upstream's
//!   AtomicWriter layout (described at `AtomicWriter` in `atomic_writer.rs`), so a container
//!   sees an update to the object as one atomic switch. Like upstream, `secret` and `projected`
//!   volumes sit on a tmpfs so secret bytes never reach the node's disk. `prepare` runs on every
//!   pod sync, which is how updates propagate.
//! - `hostPath`: the path itself, after upstream's `type` checks.
//! - Anything else is refused with a `FailedMount`-style error.
//!
//! The API lookups go through [`ObjectSource`] ([`ApiObjectSource`] over a `kube::Client`,
//! [`StaticObjectSource`] for tests) and the mount syscalls through [`Mounter`] ([`HostMounter`],
//! and [`FakeMounter`], which records calls), so everything but the tmpfs mount itself is tested
//! without an API server or root. Errors are one [`VolumeError`] whose `Display` is the message of
//! upstream's `FailedMount` event.
//!
//! File I/O is done inline with `std::fs`: a volume is a handful of small files, cheaper to write
//! than to hand to a blocking thread.
//!
//! One file per volume source, as upstream's `pkg/volume/<plugin>`: `empty_dir.rs`,
//! `config_map.rs`, `secret.rs`, `downward_api.rs`, `projected.rs`, `host_path.rs`; then
//! `atomic_writer.rs` (how the files of the object-backed sources land on disk),
//! `object_source.rs` (the API lookups) and `mounter.rs` (the mount syscalls and their fake).
//! This file holds the errors, the manager, and its dispatch over the sources.

mod atomic_writer;
mod config_map;
mod csi;
mod downward_api;
mod empty_dir;
#[cfg(any(test, feature = "testing"))]
mod fake_mounter;
mod host_path;
mod mounter;
mod object_source;
mod persistent_volume;
mod projected;
mod secret;
#[cfg(test)]
mod testing;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Volume};

use self::atomic_writer::{AtomicWriter, Payload};
use self::config_map::config_map_payload;
use self::downward_api::downward_api_payload;
use self::host_path::check_host_path;
use self::secret::secret_payload;
use crate::podconfig::VolumeHostPath;
use crate::quantity::Quantity;

pub use self::csi::DEFAULT_ATTACH_WAIT;
pub use self::downward_api::DownwardApiError;
#[cfg(any(test, feature = "testing"))]
pub use self::fake_mounter::{FakeMounter, MountCall};
pub use self::host_path::HostPathError;
pub use self::mounter::{HostMounter, MountPoint, Mounter};
pub use self::object_source::{
    token_needs_refresh, ApiObjectSource, ObjectSource, StaticObjectSource, TokenFor,
};
pub use self::persistent_volume::{CsiPublish, CsiPublisher};

/// Upstream's plugin directories under `<pod dir>/volumes`.
const EMPTY_DIR_PLUGIN: &str = "kubernetes.io~empty-dir";
const CONFIG_MAP_PLUGIN: &str = "kubernetes.io~configmap";
const SECRET_PLUGIN: &str = "kubernetes.io~secret";
const DOWNWARD_API_PLUGIN: &str = "kubernetes.io~downward-api";
const PROJECTED_PLUGIN: &str = "kubernetes.io~projected";

/// The default file mode of configMap, secret, downwardAPI and projected files (upstream
/// `ConfigMapVolumeSourceDefaultMode` and friends), when the API server did not default it.
const DEFAULT_FILE_MODE: i32 = 0o644;

// ---------------------------------------------------------------------------------------------
// Errors

/// Why a volume could not be prepared or cleaned up.
///
/// The `MountVolume.SetUp failed for volume "<vol>" : ...` variants display exactly the message
/// upstream puts in a pod's `FailedMount` Warning event.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A configMap the volume needs does not exist and the volume is not `optional`.
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : configmap \"{name}\" not found")]
    ConfigMapNotFound {
        /// The volume name.
        volume: String,
        /// The configMap name.
        name: String,
    },
    /// A key listed in `items` is in neither `data` nor `binaryData` of the configMap.
    #[error(
        "MountVolume.SetUp failed for volume \"{volume}\" : configmap references non-existent config key: {key}"
    )]
    ConfigMapKeyNotFound {
        /// The volume name.
        volume: String,
        /// The missing key.
        key: String,
    },
    /// A secret the volume needs does not exist and the volume is not `optional`.
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : secret \"{name}\" not found")]
    SecretNotFound {
        /// The volume name.
        volume: String,
        /// The secret name.
        name: String,
    },
    /// A key listed in `items` is not in the secret.
    #[error(
        "MountVolume.SetUp failed for volume \"{volume}\" : secret references non-existent secret key: {key}"
    )]
    SecretKeyNotFound {
        /// The volume name.
        volume: String,
        /// The missing key.
        key: String,
    },
    /// A downward API item could not be resolved (unsupported field path or resource, unknown
    /// container, bad divisor).
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : {source}")]
    DownwardApi {
        /// The volume name.
        volume: String,
        /// Why, e.g. `unsupported fieldPath: spec.nodeName`.
        #[source]
        source: DownwardApiError,
    },
    /// A `hostPath` volume failed its `type` check, could not be created, or has a `..` in its
    /// path.
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : {source}")]
    HostPath {
        /// The volume name.
        volume: String,
        /// Why, e.g. `hostPath type check failed: /x is not a directory`.
        #[source]
        source: HostPathError,
    },
    /// The volume's spec cannot be laid out on disk: an invalid file path in `items` (upstream
    /// AtomicWriter's `invalid path: ...`), a volume name that is not one path component, or an
    /// unparsable quantity.
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : {message}")]
    InvalidSpec {
        /// The volume name.
        volume: String,
        /// What is wrong.
        message: String,
    },
    /// A projected volume has a source this cluster does not serve yet.
    #[error(
        "MountVolume.SetUp failed for volume \"{volume}\" : projected {projection} sources are not served by this cluster yet"
    )]
    UnsupportedProjection {
        /// The volume name.
        volume: String,
        /// The source kind: `serviceAccountToken` or `clusterTrustBundle`.
        projection: &'static str,
    },
    /// An emptyDir medium other than `""` and `Memory` (hugepages).
    #[error(
        "MountVolume.SetUp failed for volume \"{volume}\" : emptyDir medium \"{medium}\" is not supported by this kubelet"
    )]
    UnsupportedMedium {
        /// The volume name.
        volume: String,
        /// The medium.
        medium: String,
    },
    /// A volume type this kubelet has no plugin for (persistentVolumeClaim, nfs, csi, ...).
    #[error(
        "MountVolume.SetUp failed for volume \"{volume}\" : volume type not supported by this kubelet"
    )]
    UnsupportedType {
        /// The volume name.
        volume: String,
    },
    /// A claim cannot be used yet: missing, not bound, or its volume missing (upstream's
    /// desired-state populator messages).
    #[error("error processing PVC {namespace}/{name}: {message}")]
    Claim {
        /// The claim's namespace.
        namespace: String,
        /// The claim.
        name: String,
        /// Why.
        message: String,
    },
    /// No CSI driver of that name is registered on this node.
    #[error(
        "MountVolume.SetUp failed for volume \"{volume}\" : kubernetes.io/csi: mounter.SetUpAt failed to get CSI client: driver name {driver} not found in the list of registered CSI drivers"
    )]
    CsiDriverNotFound {
        /// The volume name.
        volume: String,
        /// The driver.
        driver: String,
    },
    /// NodePublishVolume failed.
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : rpc error: {message}")]
    CsiPublish {
        /// The volume name.
        volume: String,
        /// The driver's message.
        message: String,
    },
    /// The volume's VolumeAttachment did not become attached (upstream's WaitForAttach).
    #[error("MountVolume.WaitForAttach failed for volume \"{volume}\" : {message}")]
    CsiAttach {
        /// The volume name.
        volume: String,
        /// Why: the attacher's error, a deletion, or the wait running out.
        message: String,
    },
    /// NodeStageVolume (or the capability query before it) failed.
    #[error("MountVolume.MountDevice failed for volume \"{volume}\" : rpc error: {message}")]
    CsiStage {
        /// The volume name.
        volume: String,
        /// The driver's message.
        message: String,
    },
    /// NodeUnstageVolume failed for a volume no pod uses any more.
    #[error("UnmountDevice failed for volume {volume_id:?} : rpc error: {message}")]
    CsiUnstage {
        /// The volume handle.
        volume_id: String,
        /// The driver's message.
        message: String,
    },
    /// An [`ObjectSource`] lookup failed for a reason other than "not found".
    #[error("failed to get {kind} \"{namespace}/{name}\": {message}")]
    Api {
        /// `configmap` or `secret`.
        kind: &'static str,
        /// The object's namespace.
        namespace: String,
        /// The object's name.
        name: String,
        /// The client's error.
        message: String,
    },
    /// A lookup error ([`VolumeError::Api`]) met while preparing a volume, with that volume.
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : {source}")]
    Lookup {
        /// The volume name.
        volume: String,
        /// The lookup error.
        source: Box<VolumeError>,
    },
    /// A filesystem or mount operation failed while preparing a volume.
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : {action} {}: {source}", path.display())]
    Io {
        /// The volume name.
        volume: String,
        /// What was being done, e.g. `write file`.
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The pod has no `metadata.uid`, or the uid given is not one path component.
    #[error("invalid pod uid {0:?}")]
    InvalidPodUid(String),
    /// Listing, unmounting or removing a pod's directory failed.
    #[error("failed to clean up pod volumes: {action} {}: {source}", path.display())]
    Cleanup {
        /// What was being done, e.g. `unmount`.
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A mount under the pod's directory survived unmounting, so the tree was left in place
    /// rather than deleting files through the mount.
    #[error("failed to clean up pod volumes: {} is still mounted", path.display())]
    StillMounted {
        /// The mount point.
        path: PathBuf,
    },
}

/// `map_err` helper for I/O while preparing `volume`.
fn io_err<'a>(
    volume: &'a str,
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> VolumeError + 'a {
    move |source| VolumeError::Io {
        volume: volume.to_string(),
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// `map_err` helper for I/O while cleaning up.
fn cleanup_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> VolumeError + 'a {
    move |source| VolumeError::Cleanup {
        action,
        path: path.to_path_buf(),
        source,
    }
}

// ---------------------------------------------------------------------------------------------
// The manager

/// Prepares and cleans up pods' volumes under one `pods` directory.
///
/// `prepare` may run concurrently for different pods, but not for the same pod (the pod worker
/// serializes a pod's syncs).
#[derive(Clone)]
pub struct VolumeManager {
    pods_dir: PathBuf,
    /// `<kubelet root>/plugins`: CSI volumes are staged under `kubernetes.io/csi` there.
    plugins_dir: PathBuf,
    mounter: Arc<dyn Mounter>,
    csi: Option<Arc<dyn CsiPublisher>>,
    /// Held while staging a CSI volume and while unstaging unused ones (see `csi.rs`).
    csi_stage_lock: Arc<tokio::sync::Mutex<()>>,
    /// How long a CSI volume's setup waits for its attachment.
    attach_wait: std::time::Duration,
    node_allocatable: BTreeMap<String, Quantity>,
}

impl std::fmt::Debug for VolumeManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumeManager")
            .field("pods_dir", &self.pods_dir)
            .field("node_allocatable", &self.node_allocatable)
            .finish_non_exhaustive()
    }
}

/// What a volume needs on disk, decided before touching it.
enum Plan {
    /// A directory, tmpfs-backed when `tmpfs` is `Some` (holding the size limit, if any).
    EmptyDir { tmpfs: Option<Option<i64>> },
    /// A directory (tmpfs-backed when `tmpfs` is `Some`) filled by the AtomicWriter.
    Files {
        plugin: &'static str,
        payload: Payload,
        tmpfs: Option<Option<i64>>,
    },
}

impl VolumeManager {
    /// A manager for `pods_dir` (`<data-dir>/pods`; made absolute against the current directory,
    /// since the paths it returns go to the container runtime) mounting through [`HostMounter`],
    /// with no node allocatable known. CSI volumes are staged under `plugins` beside `pods_dir`
    /// (the kubelet root's layout).
    pub fn new(pods_dir: impl Into<PathBuf>) -> Self {
        let pods_dir = pods_dir.into();
        let pods_dir = std::path::absolute(&pods_dir).unwrap_or(pods_dir);
        let plugins_dir = pods_dir
            .parent()
            .map_or_else(|| PathBuf::from("plugins"), |root| root.join("plugins"));
        Self {
            pods_dir,
            plugins_dir,
            mounter: Arc::new(HostMounter),
            csi: None,
            csi_stage_lock: Arc::default(),
            attach_wait: DEFAULT_ATTACH_WAIT,
            node_allocatable: BTreeMap::new(),
        }
    }

    /// The manager waiting `wait` at most for a CSI volume's attachment on each setup
    /// ([`DEFAULT_ATTACH_WAIT`] otherwise).
    pub fn with_attach_wait(mut self, wait: std::time::Duration) -> Self {
        self.attach_wait = wait;
        self
    }

    /// The kubelet's `plugins` directory, where CSI volumes are staged.
    pub fn plugins_dir(&self) -> &Path {
        &self.plugins_dir
    }

    /// The manager publishing CSI volumes through `csi`.
    pub fn with_csi(mut self, csi: Arc<dyn CsiPublisher>) -> Self {
        self.csi = Some(csi);
        self
    }

    /// The manager mounting through `mounter` instead.
    pub fn with_mounter(mut self, mounter: Arc<dyn Mounter>) -> Self {
        self.mounter = mounter;
        self
    }

    /// The manager with the node's allocatable resources (`cpu`, `memory`,
    /// `ephemeral-storage`): downward API `limits.*` of a container without that limit report
    /// them, and memory-backed volumes are sized to at most the allocatable memory (as upstream).
    pub fn with_node_allocatable(mut self, node_allocatable: BTreeMap<String, Quantity>) -> Self {
        self.node_allocatable = node_allocatable;
        self
    }

    /// The `pods` directory.
    pub fn pods_dir(&self) -> &Path {
        &self.pods_dir
    }

    /// A pod's directory: `<pods_dir>/<uid>`.
    pub fn pod_dir(&self, pod_uid: &str) -> PathBuf {
        self.pods_dir.join(pod_uid)
    }

    /// A pod's volumes directory: `<pods_dir>/<uid>/volumes`.
    pub fn pod_volumes_dir(&self, pod_uid: &str) -> PathBuf {
        self.pod_dir(pod_uid).join("volumes")
    }

    /// The uids of the pods that have a directory here (for removing those of pods that no
    /// longer exist, e.g. after a restart).
    pub fn pod_uids_on_disk(&self) -> Result<Vec<String>, VolumeError> {
        let entries = match fs::read_dir(&self.pods_dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(cleanup_err("list", &self.pods_dir)(err)),
        };
        let mut uids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(cleanup_err("list", &self.pods_dir))?;
            if let Some(name) = entry.file_name().to_str() {
                uids.push(name.to_string());
            }
        }
        uids.sort();
        Ok(uids)
    }

    /// Prepares every volume of `pod` and returns where each one is on the host, by volume name.
    ///
    /// Idempotent, and meant to run on every pod sync: configMap, secret and downward API
    /// contents are rewritten (atomically) when they changed. On error, returns the first failing
    /// volume's error and leaves the volumes already prepared in place; a retry redoes them.
    pub async fn prepare(
        &self,
        pod: &Pod,
        source: &dyn ObjectSource,
    ) -> Result<BTreeMap<String, VolumeHostPath>, VolumeError> {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        check_pod_uid(uid)?;
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let mut prepared = BTreeMap::new();
        for volume in pod
            .spec
            .iter()
            .flat_map(|spec| spec.volumes.iter().flatten())
        {
            let host_path = self
                .prepare_volume(pod, uid, namespace, volume, source)
                .await?;
            prepared.insert(volume.name.clone(), host_path);
        }
        Ok(prepared)
    }

    async fn prepare_volume(
        &self,
        pod: &Pod,
        uid: &str,
        namespace: &str,
        volume: &Volume,
        source: &dyn ObjectSource,
    ) -> Result<VolumeHostPath, VolumeError> {
        let name = volume.name.as_str();
        if let Some(host_path) = &volume.host_path {
            check_host_path(name, &host_path.path, host_path.type_.as_deref())?;
            return Ok(VolumeHostPath {
                host_path: host_path.path.clone(),
                read_only: false,
            });
        }
        if !is_path_component(name) {
            return Err(VolumeError::InvalidSpec {
                volume: name.to_string(),
                message: "the volume name must be a single path component".to_string(),
            });
        }
        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        if let Some(claim) = &volume.persistent_volume_claim {
            return self
                .prepare_claim(uid, namespace, name, node, claim, None, source)
                .await;
        }
        if volume.ephemeral.is_some() {
            // A generic ephemeral volume: the claim the ephemeral volume controller made for
            // this pod, once the pod is seen to own it.
            let pod_name = pod.metadata.name.as_deref().unwrap_or("");
            let claim = k8s_openapi::api::core::v1::PersistentVolumeClaimVolumeSource {
                claim_name: ferry_api::volumes::ephemeral_claim_name(pod_name, name),
                read_only: None,
            };
            return self
                .prepare_claim(uid, namespace, name, node, &claim, Some(pod), source)
                .await;
        }
        let plan = self.plan(pod, namespace, volume, source).await?;
        let (plugin, read_only) = match &plan {
            Plan::EmptyDir { .. } => (EMPTY_DIR_PLUGIN, false),
            Plan::Files { plugin, .. } => (*plugin, true),
        };
        let dir = self.pod_volumes_dir(uid).join(plugin).join(name);
        match plan {
            Plan::EmptyDir { tmpfs } => self.set_up_dir(name, &dir, tmpfs)?,
            Plan::Files { payload, tmpfs, .. } => {
                self.set_up_dir(name, &dir, tmpfs)?;
                AtomicWriter {
                    target_dir: &dir,
                    volume: name,
                }
                .write(payload)?;
            }
        }
        Ok(VolumeHostPath {
            // The pods dir comes from the agent's (UTF-8) configuration and the rest are names
            // from the API, so the path is UTF-8.
            host_path: dir.to_string_lossy().into_owned(),
            read_only,
        })
    }

    /// A `persistentVolumeClaim` volume (or an ephemeral one's claim, which `owner` must
    /// control) of a pod on `node`: its bound volume's path, or the target its CSI driver
    /// published it on.
    #[allow(clippy::too_many_arguments)]
    async fn prepare_claim(
        &self,
        uid: &str,
        namespace: &str,
        name: &str,
        node: Option<&str>,
        claim: &k8s_openapi::api::core::v1::PersistentVolumeClaimVolumeSource,
        owner: Option<&Pod>,
        source: &dyn ObjectSource,
    ) -> Result<VolumeHostPath, VolumeError> {
        match persistent_volume::resolve(name, namespace, claim, owner, source).await? {
            persistent_volume::Resolved::Path {
                path,
                host_path_type,
                read_only,
            } => {
                check_host_path(name, &path, host_path_type.as_deref())?;
                Ok(VolumeHostPath {
                    host_path: path,
                    read_only,
                })
            }
            persistent_volume::Resolved::Csi {
                driver,
                volume_id,
                read_only,
                context,
                fs_type,
            } => {
                let volume = csi::CsiVolume {
                    name,
                    node,
                    driver,
                    volume_id,
                    read_only,
                    context,
                    fs_type,
                };
                self.set_up_csi(uid, volume, source).await
            }
        }
    }

    /// Decides what `volume` needs: looks up its objects and computes its files.
    async fn plan(
        &self,
        pod: &Pod,
        namespace: &str,
        volume: &Volume,
        source: &dyn ObjectSource,
    ) -> Result<Plan, VolumeError> {
        let name = volume.name.as_str();
        let lookup_err = |source: VolumeError| VolumeError::Lookup {
            volume: name.to_string(),
            source: Box::new(source),
        };
        // The API server defaults a volume without any source to an emptyDir.
        let no_source = Volume {
            name: volume.name.clone(),
            ..Volume::default()
        };
        if volume.empty_dir.is_some() || *volume == no_source {
            let empty_dir = volume.empty_dir.clone().unwrap_or_default();
            let tmpfs = match empty_dir.medium.as_deref().unwrap_or_default() {
                "" => None,
                "Memory" => Some(self.tmpfs_size(name, pod, empty_dir.size_limit.as_ref())?),
                medium => {
                    return Err(VolumeError::UnsupportedMedium {
                        volume: name.to_string(),
                        medium: medium.to_string(),
                    })
                }
            };
            return Ok(Plan::EmptyDir { tmpfs });
        }
        if let Some(config_map) = &volume.config_map {
            let optional = config_map.optional.unwrap_or(false);
            let object = source
                .config_map(namespace, &config_map.name)
                .await
                .map_err(lookup_err)?;
            let mode = config_map.default_mode.unwrap_or(DEFAULT_FILE_MODE);
            let payload = config_map_payload(
                name,
                &config_map.name,
                object.as_ref(),
                config_map.items.as_deref(),
                mode,
                optional,
            )?;
            return Ok(Plan::Files {
                plugin: CONFIG_MAP_PLUGIN,
                payload,
                tmpfs: None,
            });
        }
        if let Some(secret) = &volume.secret {
            let optional = secret.optional.unwrap_or(false);
            let secret_name = secret.secret_name.clone().unwrap_or_default();
            let object = source
                .secret(namespace, &secret_name)
                .await
                .map_err(lookup_err)?;
            let mode = secret.default_mode.unwrap_or(DEFAULT_FILE_MODE);
            let payload = secret_payload(
                name,
                &secret_name,
                object.as_ref(),
                secret.items.as_deref(),
                mode,
                optional,
            )?;
            return Ok(Plan::Files {
                plugin: SECRET_PLUGIN,
                payload,
                // Upstream wraps secret volumes in a memory emptyDir: secrets never hit the disk.
                tmpfs: Some(self.tmpfs_size(name, pod, None)?),
            });
        }
        if let Some(downward_api) = &volume.downward_api {
            let mode = downward_api.default_mode.unwrap_or(DEFAULT_FILE_MODE);
            let items = downward_api.items.as_deref().unwrap_or_default();
            let payload = downward_api_payload(name, pod, items, mode, &self.node_allocatable)?;
            return Ok(Plan::Files {
                plugin: DOWNWARD_API_PLUGIN,
                payload,
                tmpfs: None,
            });
        }
        if let Some(projected) = &volume.projected {
            let payload = self
                .projected_payload(pod, namespace, name, projected, source)
                .await?;
            return Ok(Plan::Files {
                plugin: PROJECTED_PLUGIN,
                payload,
                // Upstream wraps projected volumes in a memory emptyDir too (secrets).
                tmpfs: Some(self.tmpfs_size(name, pod, None)?),
            });
        }
        Err(VolumeError::UnsupportedType {
            volume: name.to_string(),
        })
    }

    /// Unmounts everything under the pod's directory (deepest first, lazily), then removes the
    /// directory. Symlinks are removed, never followed (`remove_dir_all` does not follow them),
    /// and nothing is deleted while a mount remains, so removal cannot reach outside the tree.
    /// A missing directory is fine.
    pub fn cleanup(&self, pod_uid: &str) -> Result<(), VolumeError> {
        check_pod_uid(pod_uid)?;
        let pod_dir = self.pod_dir(pod_uid);
        match fs::symlink_metadata(&pod_dir) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(cleanup_err("stat", &pod_dir)(err)),
            // Not ours to descend into: remove the link only.
            Ok(meta) if !meta.is_dir() => {
                return fs::remove_file(&pod_dir).map_err(cleanup_err("remove", &pod_dir));
            }
            Ok(_) => {}
        }
        let canonical = fs::canonicalize(&pod_dir).map_err(cleanup_err("resolve", &pod_dir))?;
        let mut mounts = self.mounts_under(&canonical)?;
        // Deepest first, so a mount is never detached from under another one still listed.
        mounts.sort_by_key(|path| std::cmp::Reverse(path.components().count()));
        for mount in &mounts {
            tracing::info!(path = %mount.display(), "unmounting pod volume");
            if let Err(err) = self.mounter.unmount(mount) {
                // EINVAL: no longer a mount point (a duplicate entry already detached it).
                if err.raw_os_error() != Some(22) {
                    return Err(cleanup_err("unmount", mount)(err));
                }
            }
        }
        if let Some(path) = self.mounts_under(&canonical)?.into_iter().next() {
            return Err(VolumeError::StillMounted { path });
        }
        match fs::remove_dir_all(&pod_dir) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => {
                Err(cleanup_err("remove", &pod_dir)(err))
            }
            _ => Ok(()),
        }
    }

    fn mounts_under(&self, dir: &Path) -> Result<Vec<PathBuf>, VolumeError> {
        Ok(self
            .mounter
            .mount_points()
            .map_err(cleanup_err("read mounts for", dir))?
            .into_iter()
            .map(|m| m.path)
            .filter(|path| path.starts_with(dir))
            .collect())
    }
}

/// Whether `name` is one path component (so joining it stays in its directory).
fn is_path_component(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

fn check_pod_uid(uid: &str) -> Result<(), VolumeError> {
    if is_path_component(uid) {
        Ok(())
    } else {
        Err(VolumeError::InvalidPodUid(uid.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::PathBuf;

    use serde_json::json;

    use super::testing::*;
    use super::*;

    #[tokio::test]
    async fn lookup_failures_name_the_volume() {
        let f = fixture();
        let source = StaticObjectSource::new();
        source.fail_lookups(Some("connection refused".into()));
        let pod = pod(json!([{"name": "config", "configMap": {"name": "conf"}}]));
        assert_eq!(
            prepare_err(&f, &pod, &source).await,
            "MountVolume.SetUp failed for volume \"config\" : failed to get configmap \"ns1/conf\": connection refused"
        );
    }

    // --- other types, order, names -----------------------------------------------------------

    #[tokio::test]
    async fn unsupported_types_are_refused() {
        let f = fixture();
        for volume in [
            json!({"name": "claim", "nfs": {"server": "s", "path": "/"}}),
            json!({"name": "claim", "csi": {"driver": "d"}}),
        ] {
            assert_eq!(
                prepare_err(&f, &pod(json!([volume])), &StaticObjectSource::new()).await,
                "MountVolume.SetUp failed for volume \"claim\" : volume type not supported by this kubelet"
            );
        }
    }

    #[tokio::test]
    async fn first_failure_is_returned_and_earlier_volumes_stay() {
        let f = fixture();
        let pod = pod(json!([
            {"name": "a", "emptyDir": {}},
            {"name": "b", "configMap": {"name": "missing"}},
            {"name": "c", "secret": {"secretName": "missing"}},
            {"name": "d", "emptyDir": {}},
        ]));
        assert_eq!(
            prepare_err(&f, &pod, &StaticObjectSource::new()).await,
            "MountVolume.SetUp failed for volume \"b\" : configmap \"missing\" not found"
        );
        assert!(volume_dir(&f, "kubernetes.io~empty-dir", "a").is_dir());
        assert!(!volume_dir(&f, "kubernetes.io~empty-dir", "d").exists());
    }

    #[tokio::test]
    async fn names_that_would_escape_are_refused() {
        let f = fixture();
        let mut bad_uid = pod(json!([{"name": "a", "emptyDir": {}}]));
        bad_uid.metadata.uid = Some("../x".into());
        assert_eq!(
            prepare_err(&f, &bad_uid, &StaticObjectSource::new()).await,
            "invalid pod uid \"../x\""
        );
        let mut no_uid = bad_uid.clone();
        no_uid.metadata.uid = None;
        assert_eq!(
            prepare_err(&f, &no_uid, &StaticObjectSource::new()).await,
            "invalid pod uid \"\""
        );
        let bad_name = pod(json!([{"name": "..", "emptyDir": {}}]));
        assert_eq!(
            prepare_err(&f, &bad_name, &StaticObjectSource::new()).await,
            "MountVolume.SetUp failed for volume \"..\" : the volume name must be a single path component"
        );
        assert!(f.manager.cleanup("..").is_err());
        assert!(f.manager.cleanup("a/b").is_err());
    }

    // --- cleanup -------------------------------------------------------------------------------

    #[tokio::test]
    async fn cleanup_unmounts_deepest_first_and_removes_the_tree() {
        let f = fixture();
        let source = StaticObjectSource::new()
            .with_config_map(config_map("conf", json!({"k": "v"})))
            .with_secret(secret("creds", &[("k", b"v")]));
        let pod = pod(json!([
            {"name": "cache", "emptyDir": {"medium": "Memory"}},
            {"name": "c", "configMap": {"name": "conf"}},
            {"name": "s", "secret": {"secretName": "creds"}},
        ]));
        f.manager.prepare(&pod, &source).await.expect("prepare");
        // Something (say a bind mount) deeper inside the tmpfs, and a mount outside the pod.
        let cache = volume_dir(&f, "kubernetes.io~empty-dir", "cache");
        let deeper = cache.join("inner");
        fs::create_dir(&deeper).expect("fs");
        f.mounter.add_mount(MountPoint {
            path: deeper.clone(),
            fs_type: "ext4".into(),
        });
        let elsewhere = f.manager.pod_dir("other-pod");
        f.mounter.add_mount(MountPoint {
            path: elsewhere.clone(),
            fs_type: "tmpfs".into(),
        });

        assert_eq!(f.manager.pod_uids_on_disk().expect("list pods"), [UID]);
        f.manager.cleanup(UID).expect("cleanup");
        assert!(!f.manager.pod_dir(UID).exists());
        assert!(f.manager.pod_uids_on_disk().expect("list pods").is_empty());
        let unmounts: Vec<PathBuf> = f
            .mounter
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                MountCall::Unmount { target } => Some(target),
                MountCall::MountTmpfs { .. } => None,
            })
            .collect();
        assert_eq!(unmounts.len(), 3, "{unmounts:?}");
        assert_eq!(unmounts[0], deeper);
        assert!(!unmounts.contains(&elsewhere));
        assert_eq!(f.mounter.mount_points().expect("mounts").len(), 1);

        // Again, and for a pod never seen: nothing to do.
        f.manager.cleanup(UID).expect("cleanup");
        f.manager.cleanup("never-seen").expect("cleanup");
    }

    #[tokio::test]
    async fn cleanup_does_not_follow_symlinks_out_of_the_tree() {
        let f = fixture();
        let pod = pod(json!([{"name": "data", "emptyDir": {}}]));
        f.manager
            .prepare(&pod, &StaticObjectSource::new())
            .await
            .expect("prepare");
        let outside = tempfile::tempdir().expect("tempdir");
        fs::write(outside.path().join("precious"), "keep").expect("fs");
        let data = volume_dir(&f, "kubernetes.io~empty-dir", "data");
        std::os::unix::fs::symlink(outside.path(), data.join("link-to-dir")).expect("fs");
        std::os::unix::fs::symlink(outside.path().join("precious"), data.join("link-to-file"))
            .expect("fs");
        f.manager.cleanup(UID).expect("cleanup");
        assert!(!f.manager.pod_dir(UID).exists());
        assert_eq!(read(&outside.path().join("precious")), "keep");

        // A pod dir that is itself a symlink: only the link goes.
        fs::create_dir_all(f.manager.pods_dir()).expect("fs");
        std::os::unix::fs::symlink(outside.path(), f.manager.pod_dir("linked")).expect("fs");
        f.manager.cleanup("linked").expect("cleanup");
        assert!(fs::symlink_metadata(f.manager.pod_dir("linked")).is_err());
        assert_eq!(read(&outside.path().join("precious")), "keep");
    }

    #[tokio::test]
    async fn cleanup_keeps_the_tree_while_a_mount_remains() {
        let f = fixture();
        let pod = pod(json!([{"name": "cache", "emptyDir": {"medium": "Memory"}}]));
        f.manager
            .prepare(&pod, &StaticObjectSource::new())
            .await
            .expect("prepare");
        fs::write(
            volume_dir(&f, "kubernetes.io~empty-dir", "cache").join("f"),
            "x",
        )
        .expect("fs");
        f.mounter.fail_unmounts(true);
        let err = f.manager.cleanup(UID).expect_err("must fail");
        assert!(
            matches!(
                err,
                VolumeError::Cleanup {
                    action: "unmount",
                    ..
                }
            ),
            "{err}"
        );
        assert!(volume_dir(&f, "kubernetes.io~empty-dir", "cache")
            .join("f")
            .exists());
        f.mounter.fail_unmounts(false);
        f.manager.cleanup(UID).expect("cleanup");
        assert!(!f.manager.pod_dir(UID).exists());
    }
}
