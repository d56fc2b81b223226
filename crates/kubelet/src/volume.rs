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
//!   AtomicWriter layout (described at `AtomicWriter` below), so a container sees an update to
//!   the object as one atomic switch. Like upstream, `secret` and `projected` volumes sit on a tmpfs so secret
//!   bytes never reach the node's disk. `prepare` runs on every pod sync, which is how updates
//!   propagate.
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

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, KeyToPath, Pod, ResourceFieldSelector, Secret,
    Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use parking_lot::Mutex;

use crate::downward::{format_map, go_quote, split_subscript};
use crate::podconfig::VolumeHostPath;
use crate::quantity::Quantity;

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
    /// container, bad divisor); the message is upstream's.
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : {message}")]
    DownwardApi {
        /// The volume name.
        volume: String,
        /// Upstream's message, e.g. `unsupported fieldPath: spec.nodeName`.
        message: String,
    },
    /// A `hostPath` volume failed its `type` check or has a `..` in its path; the message is
    /// upstream's, e.g. `hostPath type check failed: /x is not a directory`.
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : {message}")]
    HostPath {
        /// The volume name.
        volume: String,
        /// Upstream's message.
        message: String,
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
// API lookups

/// The API lookups volumes need, narrowed so tests need no server.
#[async_trait]
pub trait ObjectSource: Send + Sync {
    /// The configMap `namespace/name`, `None` if it does not exist.
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ConfigMap>, VolumeError>;
    /// The secret `namespace/name`, `None` if it does not exist.
    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, VolumeError>;
}

/// [`ObjectSource`] over the API server: one GET per lookup (a 404 is `None`).
#[derive(Clone)]
pub struct ApiObjectSource {
    client: kube::Client,
}

impl ApiObjectSource {
    /// Looks objects up with `client`.
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

impl std::fmt::Debug for ApiObjectSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiObjectSource").finish_non_exhaustive()
    }
}

#[async_trait]
impl ObjectSource for ApiObjectSource {
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ConfigMap>, VolumeError> {
        kube::Api::<ConfigMap>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|err| VolumeError::Api {
                kind: "configmap",
                namespace: namespace.to_string(),
                name: name.to_string(),
                message: err.to_string(),
            })
    }

    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, VolumeError> {
        kube::Api::<Secret>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|err| VolumeError::Api {
                kind: "secret",
                namespace: namespace.to_string(),
                name: name.to_string(),
                message: err.to_string(),
            })
    }
}

/// [`ObjectSource`] backed by in-memory maps, for tests (here and in other crates). Objects are
/// keyed by their `metadata.namespace` (`default` when unset) and `metadata.name`; they can be
/// replaced between calls through `&self`, and every lookup can be made to fail.
#[derive(Debug, Default)]
pub struct StaticObjectSource {
    config_maps: Mutex<BTreeMap<(String, String), ConfigMap>>,
    secrets: Mutex<BTreeMap<(String, String), Secret>>,
    failure: Mutex<Option<String>>,
}

fn object_key(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> (String, String) {
    (
        meta.namespace
            .clone()
            .unwrap_or_else(|| "default".to_string()),
        meta.name.clone().unwrap_or_default(),
    )
}

impl StaticObjectSource {
    /// An empty source: every lookup answers `None`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The source with `config_map` added.
    pub fn with_config_map(self, config_map: ConfigMap) -> Self {
        self.insert_config_map(config_map);
        self
    }

    /// The source with `secret` added.
    pub fn with_secret(self, secret: Secret) -> Self {
        self.insert_secret(secret);
        self
    }

    /// Adds or replaces a configMap.
    pub fn insert_config_map(&self, config_map: ConfigMap) {
        let key = object_key(&config_map.metadata);
        self.config_maps.lock().insert(key, config_map);
    }

    /// Adds or replaces a secret.
    pub fn insert_secret(&self, secret: Secret) {
        let key = object_key(&secret.metadata);
        self.secrets.lock().insert(key, secret);
    }

    /// Removes a configMap, returning it.
    pub fn remove_config_map(&self, namespace: &str, name: &str) -> Option<ConfigMap> {
        self.config_maps
            .lock()
            .remove(&(namespace.to_string(), name.to_string()))
    }

    /// Removes a secret, returning it.
    pub fn remove_secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        self.secrets
            .lock()
            .remove(&(namespace.to_string(), name.to_string()))
    }

    /// Makes every later lookup fail with [`VolumeError::Api`] carrying `message` (`None`: stop
    /// failing).
    pub fn fail_lookups(&self, message: Option<String>) {
        *self.failure.lock() = message;
    }

    fn check_failure(
        &self,
        kind: &'static str,
        namespace: &str,
        name: &str,
    ) -> Result<(), VolumeError> {
        match self.failure.lock().clone() {
            Some(message) => Err(VolumeError::Api {
                kind,
                namespace: namespace.to_string(),
                name: name.to_string(),
                message,
            }),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl ObjectSource for StaticObjectSource {
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ConfigMap>, VolumeError> {
        self.check_failure("configmap", namespace, name)?;
        Ok(self
            .config_maps
            .lock()
            .get(&(namespace.to_string(), name.to_string()))
            .cloned())
    }

    async fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, VolumeError> {
        self.check_failure("secret", namespace, name)?;
        Ok(self
            .secrets
            .lock()
            .get(&(namespace.to_string(), name.to_string()))
            .cloned())
    }
}

// ---------------------------------------------------------------------------------------------
// Mounts

/// A mount point of the kubelet's mount namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountPoint {
    /// Where it is mounted (as the kernel reports it: absolute, symlinks resolved).
    pub path: PathBuf,
    /// The filesystem type, e.g. `tmpfs`.
    pub fs_type: String,
}

/// The mount syscalls volumes need, so everything else is tested without root.
pub trait Mounter: Send + Sync {
    /// The current mount points (`/proc/self/mountinfo`).
    fn mount_points(&self) -> io::Result<Vec<MountPoint>>;
    /// Mounts a tmpfs on `target`, limited to `size_bytes` when given (else the kernel's default,
    /// half the RAM).
    fn mount_tmpfs(&self, target: &Path, size_bytes: Option<i64>) -> io::Result<()>;
    /// Detaches the mount on `target` lazily (`MNT_DETACH`): it leaves the tree at once and is
    /// freed when no longer busy.
    fn unmount(&self, target: &Path) -> io::Result<()>;
}

/// [`Mounter`] on the host: `mount(2)`/`umount2(2)` through rustix, mount points from
/// `/proc/self/mountinfo`. Mounting needs `CAP_SYS_ADMIN`.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostMounter;

impl Mounter for HostMounter {
    fn mount_points(&self) -> io::Result<Vec<MountPoint>> {
        Ok(parse_mountinfo(&fs::read_to_string(
            "/proc/self/mountinfo",
        )?))
    }

    fn mount_tmpfs(&self, target: &Path, size_bytes: Option<i64>) -> io::Result<()> {
        let data = match size_bytes {
            Some(size) => Some(
                CString::new(format!("size={size}"))
                    .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?,
            ),
            None => None,
        };
        rustix::mount::mount(
            "tmpfs",
            target,
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            data.as_deref(),
        )?;
        Ok(())
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        rustix::mount::unmount(target, rustix::mount::UnmountFlags::DETACH)?;
        Ok(())
    }
}

/// Mount points and filesystem types from the text of `/proc/<pid>/mountinfo` (field 5 is the
/// mount point with `\ooo` octal escapes; the type follows the `-` separator).
fn parse_mountinfo(text: &str) -> Vec<MountPoint> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let mount_point = fields.get(4)?;
            let separator = fields.iter().position(|f| *f == "-")?;
            let fs_type = fields.get(separator + 1)?;
            Some(MountPoint {
                path: PathBuf::from(unescape_octal(mount_point)),
                fs_type: (*fs_type).to_string(),
            })
        })
        .collect()
}

/// Undoes the kernel's `\ooo` escaping of space, tab, newline and backslash in mountinfo.
fn unescape_octal(field: &str) -> String {
    use std::os::unix::ffi::OsStringExt;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|digits| bytes[i] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)));
        match octal {
            Some(digits) => {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    std::ffi::OsString::from_vec(out)
        .to_string_lossy()
        .into_owned()
}

/// A call recorded by [`FakeMounter`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountCall {
    /// [`Mounter::mount_tmpfs`].
    MountTmpfs {
        /// The target.
        target: PathBuf,
        /// The size limit.
        size_bytes: Option<i64>,
    },
    /// [`Mounter::unmount`].
    Unmount {
        /// The target.
        target: PathBuf,
    },
}

/// [`Mounter`] in memory, for tests: a mount adds a [`MountPoint`] (nothing is mounted, files go
/// to the directory underneath), an unmount removes the newest one on that path, and every call is
/// recorded. Unmounts can be made to fail.
#[derive(Debug, Default)]
pub struct FakeMounter {
    state: Mutex<FakeMounterState>,
}

#[derive(Debug, Default)]
struct FakeMounterState {
    mounts: Vec<MountPoint>,
    calls: Vec<MountCall>,
    fail_unmounts: bool,
}

impl FakeMounter {
    /// A fake with no mounts.
    pub fn new() -> Self {
        Self::default()
    }

    /// The calls made so far, in order.
    pub fn calls(&self) -> Vec<MountCall> {
        self.state.lock().calls.clone()
    }

    /// Adds a mount point as if something else had mounted it.
    pub fn add_mount(&self, mount: MountPoint) {
        self.state.lock().mounts.push(mount);
    }

    /// Makes later unmounts fail with `EBUSY` (and leave the mount) or succeed again.
    pub fn fail_unmounts(&self, fail: bool) {
        self.state.lock().fail_unmounts = fail;
    }
}

impl Mounter for FakeMounter {
    fn mount_points(&self) -> io::Result<Vec<MountPoint>> {
        Ok(self.state.lock().mounts.clone())
    }

    fn mount_tmpfs(&self, target: &Path, size_bytes: Option<i64>) -> io::Result<()> {
        let mut state = self.state.lock();
        state.calls.push(MountCall::MountTmpfs {
            target: target.to_path_buf(),
            size_bytes,
        });
        state.mounts.push(MountPoint {
            path: target.to_path_buf(),
            fs_type: "tmpfs".to_string(),
        });
        Ok(())
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.calls.push(MountCall::Unmount {
            target: target.to_path_buf(),
        });
        if state.fail_unmounts {
            return Err(io::Error::from_raw_os_error(16)); // EBUSY
        }
        match state.mounts.iter().rposition(|m| m.path == target) {
            Some(index) => {
                state.mounts.remove(index);
                Ok(())
            }
            None => Err(io::Error::from_raw_os_error(22)), // EINVAL: not a mount point
        }
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
    mounter: Arc<dyn Mounter>,
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
    /// with no node allocatable known.
    pub fn new(pods_dir: impl Into<PathBuf>) -> Self {
        let pods_dir = pods_dir.into();
        Self {
            pods_dir: std::path::absolute(&pods_dir).unwrap_or(pods_dir),
            mounter: Arc::new(HostMounter),
            node_allocatable: BTreeMap::new(),
        }
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
            let mode = projected.default_mode.unwrap_or(DEFAULT_FILE_MODE);
            let sources = projected.sources.as_deref().unwrap_or_default();
            // Refuse before looking anything up, so nothing is half done.
            for projection in sources {
                let unsupported = if projection.service_account_token.is_some() {
                    Some("serviceAccountToken")
                } else if projection.cluster_trust_bundle.is_some() {
                    Some("clusterTrustBundle")
                } else {
                    None
                };
                if let Some(projection) = unsupported {
                    return Err(VolumeError::UnsupportedProjection {
                        volume: name.to_string(),
                        projection,
                    });
                }
            }
            // Later sources overwrite earlier ones on the same path, as upstream.
            let mut payload = Payload::new();
            for projection in sources {
                if let Some(config_map) = &projection.config_map {
                    let optional = config_map.optional.unwrap_or(false);
                    let object = source
                        .config_map(namespace, &config_map.name)
                        .await
                        .map_err(lookup_err)?;
                    payload.extend(config_map_payload(
                        name,
                        &config_map.name,
                        object.as_ref(),
                        config_map.items.as_deref(),
                        mode,
                        optional,
                    )?);
                }
                if let Some(secret) = &projection.secret {
                    let optional = secret.optional.unwrap_or(false);
                    let object = source
                        .secret(namespace, &secret.name)
                        .await
                        .map_err(lookup_err)?;
                    payload.extend(secret_payload(
                        name,
                        &secret.name,
                        object.as_ref(),
                        secret.items.as_deref(),
                        mode,
                        optional,
                    )?);
                }
                if let Some(downward_api) = &projection.downward_api {
                    let items = downward_api.items.as_deref().unwrap_or_default();
                    payload.extend(downward_api_payload(
                        name,
                        pod,
                        items,
                        mode,
                        &self.node_allocatable,
                    )?);
                }
            }
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

    /// The size of a memory-backed volume (upstream `calculateEmptyDirMemorySize`): the node's
    /// allocatable memory, lowered to the pod's memory limit and then to the volume's
    /// `sizeLimit` when those are positive and smaller. `None` (the kernel's default) when none is
    /// known; unlike upstream, an unknown allocatable does not also disable the other two.
    fn tmpfs_size(
        &self,
        volume: &str,
        pod: &Pod,
        size_limit: Option<&ApiQuantity>,
    ) -> Result<Option<i64>, VolumeError> {
        let mut size = self
            .node_allocatable
            .get("memory")
            .map(Quantity::value)
            .filter(|bytes| *bytes > 0);
        let mut lower_to = |candidate: i64| {
            if candidate > 0 && size.is_none_or(|current| candidate <= current) {
                size = Some(candidate);
            }
        };
        if let Some(limit) = pod_memory_limit(pod) {
            lower_to(limit);
        }
        if let Some(size_limit) = size_limit {
            let parsed =
                Quantity::from_api(size_limit).map_err(|err| VolumeError::InvalidSpec {
                    volume: volume.to_string(),
                    message: format!("invalid sizeLimit {:?}: {err}", size_limit.0),
                })?;
            lower_to(parsed.value());
        }
        Ok(size)
    }

    /// Creates the volume directory with mode 0777 (upstream emptyDir `setupDir`; chmod because
    /// of the umask) and, for a memory medium, mounts a tmpfs on it unless one is there already.
    fn set_up_dir(
        &self,
        volume: &str,
        dir: &Path,
        tmpfs: Option<Option<i64>>,
    ) -> Result<(), VolumeError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o777)
            .create(dir)
            .map_err(io_err(volume, "create directory", dir))?;
        let Some(size_bytes) = tmpfs else {
            let mode = fs::metadata(dir)
                .map_err(io_err(volume, "stat", dir))?
                .permissions()
                .mode();
            if mode & 0o7777 != 0o777 {
                fs::set_permissions(dir, fs::Permissions::from_mode(0o777))
                    .map_err(io_err(volume, "chmod", dir))?;
            }
            return Ok(());
        };
        // Mountinfo shows canonical paths.
        let canonical = fs::canonicalize(dir).map_err(io_err(volume, "resolve", dir))?;
        let mounts = self
            .mounter
            .mount_points()
            .map_err(io_err(volume, "read mounts for", dir))?;
        let mounted = mounts
            .iter()
            .any(|m| m.path == canonical && m.fs_type == "tmpfs");
        if !mounted {
            fs::set_permissions(&canonical, fs::Permissions::from_mode(0o777))
                .map_err(io_err(volume, "chmod", dir))?;
            tracing::info!(volume, path = %canonical.display(), ?size_bytes, "mounting tmpfs");
            self.mounter
                .mount_tmpfs(&canonical, size_bytes)
                .map_err(io_err(volume, "mount tmpfs on", dir))?;
        }
        Ok(())
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

/// The pod's memory limit as upstream `ResourceConfigForPod` sets it on the pod cgroup: only
/// when every container (init ones included) declares one; then the larger of the app
/// containers plus restartable (sidecar) init containers, and each plain init container plus the
/// sidecars started before it; plus the pod overhead.
fn pod_memory_limit(pod: &Pod) -> Option<i64> {
    let spec = pod.spec.as_ref()?;
    let limit = |container: &Container| -> Option<i64> {
        let quantity = container
            .resources
            .as_ref()?
            .limits
            .as_ref()?
            .get("memory")?;
        Quantity::from_api(quantity)
            .ok()
            .map(|q| q.value())
            .filter(|bytes| *bytes > 0)
    };
    let mut app = 0i64;
    for container in &spec.containers {
        app = app.saturating_add(limit(container)?);
    }
    let mut sidecars = 0i64;
    let mut init = 0i64;
    for container in spec.init_containers.iter().flatten() {
        let bytes = limit(container)?;
        if container.restart_policy.as_deref() == Some("Always") {
            sidecars = sidecars.saturating_add(bytes);
            init = init.max(sidecars);
        } else {
            init = init.max(sidecars.saturating_add(bytes));
        }
    }
    let overhead = spec
        .overhead
        .as_ref()
        .and_then(|o| o.get("memory"))
        .and_then(|q| Quantity::from_api(q).ok())
        .map_or(0, |q| q.value());
    Some(
        app.saturating_add(sidecars)
            .max(init)
            .saturating_add(overhead),
    )
}

// ---------------------------------------------------------------------------------------------
// hostPath

/// Upstream hostPath `SetUp`: no `..` in the path, then the `type` check (creating the directory
/// or file for the `...OrCreate` types). Symlinks are followed, as upstream's `os.Stat`.
fn check_host_path(volume: &str, path: &str, path_type: Option<&str>) -> Result<(), VolumeError> {
    let fail = |message: String| VolumeError::HostPath {
        volume: volume.to_string(),
        message,
    };
    if path.split('/').any(|part| part == "..") {
        return Err(fail(format!(
            "invalid HostPath `{path}`: must not contain '..'"
        )));
    }
    let path_type = path_type.unwrap_or_default();
    let metadata = fs::metadata(path).ok();
    let file_type = metadata.as_ref().map(fs::Metadata::file_type);
    let not_a = |what: &str| {
        fail(format!(
            "hostPath type check failed: {path} is not a {what}"
        ))
    };
    match path_type {
        "" => {}
        "DirectoryOrCreate" | "Directory" => match file_type {
            None if path_type == "DirectoryOrCreate" => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(path)
                    .map_err(|err| fail(format!("mkdir {path}: {err}")))?;
            }
            Some(t) if t.is_dir() => {}
            _ => return Err(not_a("directory")),
        },
        "FileOrCreate" | "File" => match file_type {
            None if path_type == "FileOrCreate" => {
                // O_CREAT without O_EXCL, and no parents: upstream's `makeFile`.
                fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o644)
                    .open(path)
                    .map_err(|err| fail(format!("open {path}: {err}")))?;
            }
            // Upstream's "file" is anything that is not a directory, socket or device.
            Some(t)
                if !(t.is_dir() || t.is_socket() || t.is_char_device() || t.is_block_device()) => {}
            _ => return Err(not_a("file")),
        },
        "Socket" => {
            if !file_type.is_some_and(|t| t.is_socket()) {
                return Err(not_a("socket file"));
            }
        }
        "CharDevice" => {
            if !file_type.is_some_and(|t| t.is_char_device()) {
                return Err(not_a("character device"));
            }
        }
        "BlockDevice" => {
            if !file_type.is_some_and(|t| t.is_block_device()) {
                return Err(not_a("block device"));
            }
        }
        other => return Err(fail(format!("{other} is an invalid volume type"))),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Payloads: the files of configMap, secret, downwardAPI and projected volumes

/// One file of a volume (upstream `FileProjection`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileProjection {
    data: Vec<u8>,
    /// Permission bits.
    mode: u32,
}

/// Files by path relative to the volume directory.
type Payload = BTreeMap<String, FileProjection>;

fn file_mode(mode: i32) -> u32 {
    // The API validates modes to 0..=0777; mask anything else rather than set odd bits.
    u32::try_from(mode).unwrap_or(0o644) & 0o777
}

/// The keys of an object mapped to files (upstream `MakePayload` of the configmap and secret
/// plugins): every key when `items` is empty, else only the listed ones at their paths, with
/// their modes. A listed key that is missing is skipped when `optional`, else `missing_key(key)`.
fn key_payload(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
    optional: bool,
    missing_key: impl Fn(&str) -> VolumeError,
) -> Result<Payload, VolumeError> {
    let mut payload = Payload::new();
    match items.filter(|items| !items.is_empty()) {
        None => {
            for (key, bytes) in data {
                payload.insert(
                    key.clone(),
                    FileProjection {
                        data: bytes.clone(),
                        mode: file_mode(default_mode),
                    },
                );
            }
        }
        Some(items) => {
            for item in items {
                let Some(bytes) = data.get(&item.key) else {
                    if optional {
                        continue;
                    }
                    return Err(missing_key(&item.key));
                };
                payload.insert(
                    item.path.clone(),
                    FileProjection {
                        data: bytes.clone(),
                        mode: file_mode(item.mode.unwrap_or(default_mode)),
                    },
                );
            }
        }
    }
    Ok(payload)
}

/// The files of a configMap (volume or projection): `data` and `binaryData` keys.
fn config_map_payload(
    volume: &str,
    name: &str,
    config_map: Option<&ConfigMap>,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
    optional: bool,
) -> Result<Payload, VolumeError> {
    let Some(config_map) = config_map else {
        if optional {
            return Ok(Payload::new());
        }
        return Err(VolumeError::ConfigMapNotFound {
            volume: volume.to_string(),
            name: name.to_string(),
        });
    };
    let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (key, value) in config_map.binary_data.iter().flatten() {
        data.insert(key.clone(), value.0.clone());
    }
    // The API rejects a key in both; if one slips through, `data` wins as in upstream's lookup.
    for (key, value) in config_map.data.iter().flatten() {
        data.insert(key.clone(), value.clone().into_bytes());
    }
    key_payload(&data, items, default_mode, optional, |key| {
        VolumeError::ConfigMapKeyNotFound {
            volume: volume.to_string(),
            key: key.to_string(),
        }
    })
}

/// The files of a secret (volume or projection).
fn secret_payload(
    volume: &str,
    name: &str,
    secret: Option<&Secret>,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
    optional: bool,
) -> Result<Payload, VolumeError> {
    let Some(secret) = secret else {
        if optional {
            return Ok(Payload::new());
        }
        return Err(VolumeError::SecretNotFound {
            volume: volume.to_string(),
            name: name.to_string(),
        });
    };
    let mut data: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(key, value)| (key.clone(), value.0.clone()))
        .collect();
    // `stringData` is write-only: the API server merges it into `data` (overriding). Honour it
    // in case an object reaches us unconverted.
    for (key, value) in secret.string_data.iter().flatten() {
        data.insert(key.clone(), value.clone().into_bytes());
    }
    key_payload(&data, items, default_mode, optional, |key| {
        VolumeError::SecretKeyNotFound {
            volume: volume.to_string(),
            key: key.to_string(),
        }
    })
}

/// The files of a downward API volume or projection (upstream `downwardapi.CollectData`).
fn downward_api_payload(
    volume: &str,
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: i32,
    node_allocatable: &BTreeMap<String, Quantity>,
) -> Result<Payload, VolumeError> {
    let fail = |message: String| VolumeError::DownwardApi {
        volume: volume.to_string(),
        message,
    };
    let mut payload = Payload::new();
    for item in items {
        let value = if let Some(field_ref) = &item.field_ref {
            field_path_value(pod, &field_ref.field_path).map_err(fail)?
        } else if let Some(resource_ref) = &item.resource_field_ref {
            resource_field_value(pod, resource_ref, node_allocatable).map_err(fail)?
        } else {
            String::new()
        };
        payload.insert(
            item.path.clone(),
            FileProjection {
                data: value.into_bytes(),
                mode: file_mode(item.mode.unwrap_or(default_mode)),
            },
        );
    }
    Ok(payload)
}

/// A `fieldRef` of a downward API volume (upstream `fieldpath.ExtractFieldPathAsString`: unlike
/// env vars, only metadata fields).
fn field_path_value(pod: &Pod, field_path: &str) -> Result<String, String> {
    let meta = &pod.metadata;
    if let Some((path, key)) = split_subscript(field_path) {
        let map = match path {
            "metadata.annotations" => &meta.annotations,
            "metadata.labels" => &meta.labels,
            _ => {
                return Err(format!(
                    "fieldPath {} does not support subscript",
                    go_quote(field_path)
                ))
            }
        };
        return Ok(map
            .as_ref()
            .and_then(|m| m.get(key))
            .cloned()
            .unwrap_or_default());
    }
    Ok(match field_path {
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        _ => return Err(format!("unsupported fieldPath: {field_path}")),
    })
}

/// A `resourceFieldRef` of a downward API volume (upstream
/// `ExtractResourceValueByContainerNameAndNodeAllocatable`): the named container's value, see
/// [`crate::downward::container_resource_value`].
fn resource_field_value(
    pod: &Pod,
    selector: &ResourceFieldSelector,
    node_allocatable: &BTreeMap<String, Quantity>,
) -> Result<String, String> {
    let container_name = selector.container_name.as_deref().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let container = spec
        .into_iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .find(|c| c.name == container_name)
        .ok_or_else(|| format!("container {container_name} not found"))?;
    crate::downward::container_resource_value(
        container,
        &selector.resource,
        selector.divisor.as_ref(),
        &|name| Ok(node_allocatable.get(name).copied()),
    )
    .map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// AtomicWriter

/// The symlink to the current timestamped directory.
const DATA_DIR_NAME: &str = "..data";
/// The symlink renamed over [`DATA_DIR_NAME`] to switch it atomically.
const NEW_DATA_DIR_NAME: &str = "..data_tmp";
/// Upstream's limits on payload paths.
const MAX_PATH_LENGTH: usize = 4096;
const MAX_FILE_NAME_LENGTH: usize = 255;

/// Writes a volume's files so a reader sees either all the old ones or all the new ones
/// (upstream `pkg/volume/util/atomic_writer.go`). The layout in the volume directory:
///
/// ```text
/// ..2024_05_01_10_00_00.123/   the files of one version, nested paths included
/// ..data -> ..2024_05_01_10_00_00.123
/// key    -> ..data/key         one symlink per top-level name
/// dir    -> ..data/dir         (for `dir/file` paths)
/// ```
///
/// An update writes a new timestamped directory, points a temporary symlink at it and renames
/// that over `..data` (rename is atomic), adds links for new top-level names, removes those of
/// names that are gone, and removes the old directory. Nothing is written when the files and
/// modes are unchanged.
struct AtomicWriter<'a> {
    target_dir: &'a Path,
    volume: &'a str,
}

/// Ensures unique timestamped directory names within a process.
static TS_DIR_COUNTER: AtomicU64 = AtomicU64::new(0);

impl AtomicWriter<'_> {
    fn write(&self, payload: Payload) -> Result<(), VolumeError> {
        let payload = self.clean_payload(payload)?;
        let target = self.target_dir;
        let data_link = target.join(DATA_DIR_NAME);

        // The current version, if any.
        let old_ts_dir = match fs::read_link(&data_link) {
            Ok(link) => link
                .to_str()
                .filter(|name| is_path_component(name))
                .map(str::to_string),
            Err(err) if err.kind() == io::ErrorKind::NotFound => None,
            Err(err) => return Err(self.io("read link", &data_link)(err)),
        };

        // Paths of the current version the new one no longer has (a parent directory of a new
        // path is still needed).
        let mut to_remove = BTreeSet::new();
        if let Some(old) = &old_ts_dir {
            self.walk(&target.join(old), "", &mut to_remove)?;
        }
        for path in payload.keys() {
            let mut current = path.as_str();
            loop {
                to_remove.remove(current);
                match current.rsplit_once('/') {
                    Some((parent, _)) => current = parent,
                    None => break,
                }
            }
        }

        if old_ts_dir.is_some() && to_remove.is_empty() && self.unchanged(&payload) {
            tracing::trace!(volume = self.volume, "volume files unchanged");
            return self.create_user_visible_files(&payload);
        }

        let new_ts_dir = self.new_timestamp_dir()?;
        let new_ts_path = target.join(&new_ts_dir);
        if let Err(err) = self.write_payload(&new_ts_path, &payload) {
            let _ = fs::remove_dir_all(&new_ts_path);
            return Err(err);
        }

        // The switch: a new symlink renamed over `..data`.
        let tmp_link = target.join(NEW_DATA_DIR_NAME);
        match fs::remove_file(&tmp_link) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => {
                return Err(self.io("remove", &tmp_link)(err));
            }
            _ => {}
        }
        std::os::unix::fs::symlink(&new_ts_dir, &tmp_link)
            .map_err(self.io("create symlink", &tmp_link))?;
        fs::rename(&tmp_link, &data_link).map_err(self.io("rename over", &data_link))?;
        tracing::debug!(volume = self.volume, dir = %new_ts_dir, "volume files updated");

        self.create_user_visible_files(&payload)?;
        // Only top-level names have links; deeper paths went away with the old directory.
        for path in to_remove.iter().filter(|path| !path.contains('/')) {
            let link = target.join(path);
            match fs::remove_file(&link) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => {
                    return Err(self.io("remove", &link)(err));
                }
                _ => {}
            }
        }

        // The old version, and any directory left by a write that failed before its switch.
        // Payload paths cannot start with `..`, so every such directory is ours.
        let entries = fs::read_dir(target).map_err(self.io("list", target))?;
        for entry in entries {
            let entry = entry.map_err(self.io("list", target))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_dir && name.starts_with("..") && name != new_ts_dir {
                let path = entry.path();
                fs::remove_dir_all(&path).map_err(self.io("remove", &path))?;
            }
        }
        Ok(())
    }

    fn io<'b>(
        &'b self,
        action: &'static str,
        path: &'b Path,
    ) -> impl FnOnce(io::Error) -> VolumeError + 'b {
        io_err(self.volume, action, path)
    }

    /// Upstream `validatePayload`: every path relative, without `..`, not starting with `..`,
    /// within the length limits; then cleaned (`a//./b` → `a/b`).
    fn clean_payload(&self, payload: Payload) -> Result<Payload, VolumeError> {
        let invalid = |message: String| VolumeError::InvalidSpec {
            volume: self.volume.to_string(),
            message,
        };
        let mut clean = Payload::new();
        for (path, file) in payload {
            if path.is_empty() {
                return Err(invalid(format!(
                    "invalid path: must not be empty: {}",
                    go_quote(&path)
                )));
            }
            if path.starts_with('/') {
                return Err(invalid(format!(
                    "invalid path: must be relative path: {path}"
                )));
            }
            if path.len() > MAX_PATH_LENGTH {
                return Err(invalid(format!(
                    "invalid path: must be less than or equal to {MAX_PATH_LENGTH} characters"
                )));
            }
            let parts: Vec<&str> = path.split('/').collect();
            for part in &parts {
                if *part == ".." {
                    return Err(invalid(format!(
                        "invalid path: must not contain '..': {path}"
                    )));
                }
                if part.len() > MAX_FILE_NAME_LENGTH {
                    return Err(invalid(format!(
                        "invalid path: filenames must be less than or equal to {MAX_FILE_NAME_LENGTH} characters"
                    )));
                }
            }
            if parts[0].starts_with("..") && parts[0].len() > 2 {
                return Err(invalid(format!(
                    "invalid path: must not start with '..': {path}"
                )));
            }
            let cleaned: Vec<&str> = parts
                .into_iter()
                .filter(|part| !part.is_empty() && *part != ".")
                .collect();
            if cleaned.is_empty() || path.contains('\0') {
                return Err(invalid(format!("invalid path: {}", go_quote(&path))));
            }
            clean.insert(cleaned.join("/"), file);
        }
        Ok(clean)
    }

    /// Collects the paths (files and directories) under `dir`, relative, `/`-separated.
    fn walk(
        &self,
        dir: &Path,
        prefix: &str,
        out: &mut BTreeSet<String>,
    ) -> Result<(), VolumeError> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            // `..data` pointing nowhere: nothing to compare with.
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(self.io("list", dir)(err)),
        };
        for entry in entries {
            let entry = entry.map_err(self.io("list", dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let relative = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            // `file_type` does not follow symlinks.
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                self.walk(&entry.path(), &relative, out)?;
            }
            out.insert(relative);
        }
        Ok(())
    }

    /// Whether the current version has exactly these contents and modes (upstream compares
    /// contents only; a mode change is rewritten too).
    fn unchanged(&self, payload: &Payload) -> bool {
        let data_dir = self.target_dir.join(DATA_DIR_NAME);
        payload.iter().all(|(path, file)| {
            let full = data_dir.join(path);
            let same_mode = fs::symlink_metadata(&full)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o7777 == file.mode);
            same_mode && fs::read(&full).is_ok_and(|data| data == file.data)
        })
    }

    /// A new `..<UTC timestamp>.<n>` directory, mode 0755 (so group and other can traverse it
    /// whatever the umask).
    fn new_timestamp_dir(&self) -> Result<String, VolumeError> {
        let now = jiff::Timestamp::now();
        let stamp = now.strftime("..%Y_%m_%d_%H_%M_%S").to_string();
        loop {
            let n = TS_DIR_COUNTER.fetch_add(1, Ordering::Relaxed);
            let name = format!("{stamp}.{}{n}", now.subsec_nanosecond());
            let path = self.target_dir.join(&name);
            match fs::DirBuilder::new().mode(0o755).create(&path) {
                Ok(()) => {
                    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
                        .map_err(self.io("chmod", &path))?;
                    return Ok(name);
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(err) => return Err(self.io("create directory", &path)(err)),
            }
        }
    }

    fn write_payload(&self, dir: &Path, payload: &Payload) -> Result<(), VolumeError> {
        for (path, file) in payload {
            let full = dir.join(path);
            if let Some(parent) = full.parent() {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o777)
                    .create(parent)
                    .map_err(self.io("create directory", parent))?;
            }
            let mut handle = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(file.mode)
                .open(&full)
                .map_err(self.io("create file", &full))?;
            handle
                .write_all(&file.data)
                .map_err(self.io("write file", &full))?;
            // The umask may have cleared bits of the requested mode.
            fs::set_permissions(&full, fs::Permissions::from_mode(file.mode))
                .map_err(self.io("chmod", &full))?;
        }
        Ok(())
    }

    /// Links `name -> ..data/name` for each top-level name that has none yet.
    fn create_user_visible_files(&self, payload: &Payload) -> Result<(), VolumeError> {
        let names: BTreeSet<&str> = payload
            .keys()
            .map(|path| path.split('/').next().unwrap_or(path))
            .collect();
        for name in names {
            let link = self.target_dir.join(name);
            match fs::symlink_metadata(&link) {
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    std::os::unix::fs::symlink(Path::new(DATA_DIR_NAME).join(name), &link)
                        .map_err(self.io("create symlink", &link))?;
                }
                Err(err) => return Err(self.io("stat", &link)(err)),
                Ok(_) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::MetadataExt;

    const UID: &str = "0d1e5c2a-uid";

    fn pod(volumes: serde_json::Value) -> Pod {
        pod_with(volumes, json!([{"name": "app", "image": "busybox"}]))
    }

    fn pod_with(volumes: serde_json::Value, containers: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {
                "name": "web", "namespace": "ns1", "uid": UID,
                "labels": {"app": "web", "tier": "front \"end\""},
                "annotations": {"note": "line1\nline2\tend"},
            },
            "spec": {"containers": containers, "volumes": volumes},
        }))
        .expect("valid object")
    }

    fn config_map(name: &str, data: serde_json::Value) -> ConfigMap {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns1"},
            "data": data,
        }))
        .expect("valid object")
    }

    fn secret(name: &str, data: &[(&str, &[u8])]) -> Secret {
        let mut secret = Secret {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns1".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        secret.data = Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), k8s_openapi::ByteString(v.to_vec())))
                .collect(),
        );
        secret
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        mounter: Arc<FakeMounter>,
        manager: VolumeManager,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        // Canonical, so paths compare equal to what the (fake) mount table records.
        let pods_dir = fs::canonicalize(dir.path()).expect("fs").join("pods");
        let mounter = Arc::new(FakeMounter::new());
        let manager = VolumeManager::new(pods_dir)
            .with_mounter(mounter.clone())
            .with_node_allocatable(BTreeMap::from([
                ("cpu".to_string(), Quantity::parse("4").expect("quantity")),
                (
                    "memory".to_string(),
                    Quantity::parse("8Gi").expect("quantity"),
                ),
                (
                    "ephemeral-storage".to_string(),
                    Quantity::parse("100Gi").expect("quantity"),
                ),
            ]));
        Fixture {
            _dir: dir,
            mounter,
            manager,
        }
    }

    fn volume_dir(f: &Fixture, plugin: &str, name: &str) -> PathBuf {
        f.manager.pod_volumes_dir(UID).join(plugin).join(name)
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("fs").mode() & 0o7777
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).expect("fs")
    }

    /// The `..`-prefixed directories of a volume (timestamped versions).
    fn ts_dirs(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("fs")
            .map(|e| e.expect("dir entry"))
            .filter(|e| e.file_type().expect("file type").is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".."))
            .collect();
        names.sort();
        names
    }

    /// The visible (non-`..`) names of a volume directory.
    fn visible(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("fs")
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|n| !n.starts_with(".."))
            .collect();
        names.sort();
        names
    }

    async fn prepare_err(f: &Fixture, pod: &Pod, source: &StaticObjectSource) -> String {
        f.manager
            .prepare(pod, source)
            .await
            .expect_err("must fail")
            .to_string()
    }

    // --- emptyDir ----------------------------------------------------------------------------

    #[tokio::test]
    async fn empty_dir_on_disk_is_a_0777_directory() {
        let f = fixture();
        let pod = pod(json!([{"name": "data", "emptyDir": {}}, {"name": "bare"}]));
        let volumes = f
            .manager
            .prepare(&pod, &StaticObjectSource::new())
            .await
            .expect("prepare");
        let dir = volume_dir(&f, "kubernetes.io~empty-dir", "data");
        assert_eq!(
            volumes["data"],
            VolumeHostPath {
                host_path: dir.to_string_lossy().into_owned(),
                read_only: false
            }
        );
        assert!(dir.is_dir());
        assert_eq!(mode(&dir), 0o777);
        // A volume without a source is an emptyDir (API defaulting).
        assert!(volume_dir(&f, "kubernetes.io~empty-dir", "bare").is_dir());
        assert!(f.mounter.calls().is_empty());

        // Idempotent, and contents survive.
        fs::write(dir.join("file"), "kept").expect("fs");
        f.manager
            .prepare(&pod, &StaticObjectSource::new())
            .await
            .expect("prepare");
        assert_eq!(read(&dir.join("file")), "kept");
    }

    #[tokio::test]
    async fn memory_empty_dir_mounts_a_tmpfs_once() {
        let f = fixture();
        let pod =
            pod(json!([{"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}]));
        let source = StaticObjectSource::new();
        f.manager.prepare(&pod, &source).await.expect("prepare");
        f.manager.prepare(&pod, &source).await.expect("prepare");
        let dir = volume_dir(&f, "kubernetes.io~empty-dir", "cache");
        assert_eq!(
            f.mounter.calls(),
            vec![MountCall::MountTmpfs {
                target: dir,
                size_bytes: Some(64 << 20)
            }]
        );
    }

    #[test]
    fn tmpfs_size_is_the_smallest_of_allocatable_pod_limit_and_size_limit() {
        let f = fixture();
        let limited =
            |limit: &str| json!([{"name": "app", "resources": {"limits": {"memory": limit}}}]);
        let size = |pod: &Pod, size_limit: Option<&str>| {
            let q = size_limit.map(|s| ApiQuantity(s.into()));
            f.manager.tmpfs_size("v", pod, q.as_ref()).expect("size")
        };
        // Only allocatable known.
        assert_eq!(size(&pod(json!([])), None), Some(8 << 30));
        // The pod's limit is lower.
        let p = pod_with(json!([]), limited("1Gi"));
        assert_eq!(size(&p, None), Some(1 << 30));
        // sizeLimit lower still; a larger sizeLimit does not raise it.
        assert_eq!(size(&p, Some("100Mi")), Some(100 << 20));
        assert_eq!(size(&p, Some("2Gi")), Some(1 << 30));
        // A container without a limit: no pod limit.
        let p = pod_with(
            json!([]),
            json!([{"name": "a", "resources": {"limits": {"memory": "1Gi"}}}, {"name": "b"}]),
        );
        assert_eq!(size(&p, None), Some(8 << 30));
        // Init containers: the larger of app sum and each init container.
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"uid": UID},
            "spec": {
                "containers": [{"name": "a", "resources": {"limits": {"memory": "1Gi"}}}],
                "initContainers": [{"name": "i", "resources": {"limits": {"memory": "3Gi"}}}],
            }
        }))
        .expect("valid object");
        assert_eq!(size(&p, None), Some(3 << 30));
        // No allocatable known: the other limits still apply.
        let bare = VolumeManager::new("/tmp/unused");
        assert_eq!(
            bare.tmpfs_size("v", &pod(json!([])), None).expect("size"),
            None
        );
        let q = ApiQuantity("10Mi".into());
        assert_eq!(
            bare.tmpfs_size("v", &pod(json!([])), Some(&q))
                .expect("size"),
            Some(10 << 20)
        );
    }

    #[tokio::test]
    async fn hugepages_medium_is_refused() {
        let f = fixture();
        let pod = pod(json!([{"name": "hp", "emptyDir": {"medium": "HugePages"}}]));
        assert_eq!(
            prepare_err(&f, &pod, &StaticObjectSource::new()).await,
            "MountVolume.SetUp failed for volume \"hp\" : emptyDir medium \"HugePages\" is not supported by this kubelet"
        );
    }

    /// Needs root: `cargo test -p ferry-kubelet --lib volume -- --ignored`.
    #[tokio::test]
    #[ignore = "mounts a tmpfs: needs root"]
    async fn memory_empty_dir_on_a_real_tmpfs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pods_dir = fs::canonicalize(dir.path()).expect("fs").join("pods");
        let manager = VolumeManager::new(&pods_dir);
        let pod =
            pod(json!([{"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}]));
        let volumes = manager
            .prepare(&pod, &StaticObjectSource::new())
            .await
            .expect("prepare");
        manager
            .prepare(&pod, &StaticObjectSource::new())
            .await
            .expect("prepare");
        let target = PathBuf::from(&volumes["cache"].host_path);
        let tmpfs: Vec<MountPoint> = HostMounter
            .mount_points()
            .expect("mounts")
            .into_iter()
            .filter(|m| m.path == target)
            .collect();
        assert_eq!(tmpfs.len(), 1, "mounted once: {tmpfs:?}");
        assert_eq!(tmpfs[0].fs_type, "tmpfs");
        // Size limit enforced.
        assert!(fs::write(target.join("big"), vec![0u8; 2 << 20]).is_err());

        manager.cleanup(UID).expect("cleanup");
        assert!(!manager.pod_dir(UID).exists());
        assert!(!HostMounter
            .mount_points()
            .expect("mounts")
            .iter()
            .any(|m| m.path == target));
    }

    // --- configMap -----------------------------------------------------------------------------

    #[tokio::test]
    async fn config_map_writes_every_key_with_the_atomic_layout() {
        let f = fixture();
        let mut cm = config_map("conf", json!({"app.properties": "a=1", "b": "two"}));
        cm.binary_data = Some(BTreeMap::from([(
            "blob".to_string(),
            k8s_openapi::ByteString(vec![0, 159, 146, 150]),
        )]));
        let source = StaticObjectSource::new().with_config_map(cm);
        let pod = pod(json!([{"name": "config", "configMap": {"name": "conf"}}]));
        let volumes = f.manager.prepare(&pod, &source).await.expect("prepare");
        let dir = volume_dir(&f, "kubernetes.io~configmap", "config");
        assert_eq!(volumes["config"].host_path, dir.to_string_lossy());
        assert!(volumes["config"].read_only);
        assert_eq!(mode(&dir), 0o777);

        assert_eq!(visible(&dir), ["app.properties", "b", "blob"]);
        assert_eq!(read(&dir.join("app.properties")), "a=1");
        assert_eq!(fs::read(dir.join("blob")).expect("fs"), [0, 159, 146, 150]);
        assert_eq!(
            fs::read_link(dir.join("b")).expect("fs"),
            PathBuf::from("..data/b")
        );
        let ts = ts_dirs(&dir);
        assert_eq!(ts.len(), 1);
        assert!(ts[0].starts_with("..20"), "{ts:?}");
        assert_eq!(
            fs::read_link(dir.join("..data")).expect("fs"),
            PathBuf::from(&ts[0])
        );
        assert_eq!(mode(&dir.join(&ts[0])), 0o755);
        assert_eq!(mode(&dir.join("b")), 0o644);
        assert!(!dir.join("..data_tmp").exists());
    }

    #[tokio::test]
    async fn config_map_items_select_keys_with_paths_and_modes() {
        let f = fixture();
        let source = StaticObjectSource::new()
            .with_config_map(config_map("conf", json!({"a": "A", "b": "B", "c": "C"})));
        let pod = pod(json!([{"name": "config", "configMap": {
            "name": "conf",
            "defaultMode": 0o600,
            "items": [
                {"key": "a", "path": "top"},
                {"key": "b", "path": "nested/dir/b.txt", "mode": 0o400},
                {"key": "c", "path": "nested/c"},
            ],
        }}]));
        f.manager.prepare(&pod, &source).await.expect("prepare");
        let dir = volume_dir(&f, "kubernetes.io~configmap", "config");
        assert_eq!(visible(&dir), ["nested", "top"]);
        assert_eq!(read(&dir.join("top")), "A");
        assert_eq!(read(&dir.join("nested/dir/b.txt")), "B");
        assert_eq!(read(&dir.join("nested/c")), "C");
        assert_eq!(
            fs::read_link(dir.join("nested")).expect("fs"),
            PathBuf::from("..data/nested")
        );
        assert_eq!(mode(&dir.join("top")), 0o600);
        assert_eq!(mode(&dir.join("nested/dir/b.txt")), 0o400);
        assert_eq!(mode(&dir.join("nested/c")), 0o600);
    }

    #[tokio::test]
    async fn config_map_update_switches_atomically() {
        let f = fixture();
        let source = StaticObjectSource::new().with_config_map(config_map(
            "conf",
            json!({"keep": "v1", "gone": "x", "sub/ignored": "y"}),
        ));
        let pod = pod(
            json!([{"name": "config", "configMap": {"name": "conf", "items": [
                {"key": "keep", "path": "keep"},
                {"key": "gone", "path": "gone"},
                {"key": "gone", "path": "deep/gone"},
            ]}}]),
        );
        f.manager.prepare(&pod, &source).await.expect("prepare");
        let dir = volume_dir(&f, "kubernetes.io~configmap", "config");
        let first = ts_dirs(&dir);
        assert_eq!(visible(&dir), ["deep", "gone", "keep"]);

        // Unchanged: nothing rewritten.
        f.manager.prepare(&pod, &source).await.expect("prepare");
        assert_eq!(ts_dirs(&dir), first);

        // "gone" deleted from the configMap; optional would skip it, so make the items
        // reference only what is left.
        source.insert_config_map(config_map("conf", json!({"keep": "v2"})));
        let pod = pod_with(
            json!([{"name": "config", "configMap": {"name": "conf"}}]),
            json!([{"name": "app"}]),
        );
        f.manager.prepare(&pod, &source).await.expect("prepare");
        assert_eq!(read(&dir.join("keep")), "v2");
        let second = ts_dirs(&dir);
        assert_eq!(second.len(), 1, "old version removed: {second:?}");
        assert_ne!(second, first);
        assert_eq!(visible(&dir), ["keep"]);
        assert!(fs::symlink_metadata(dir.join("gone")).is_err());
        assert!(fs::symlink_metadata(dir.join("deep")).is_err());
    }

    #[tokio::test]
    async fn mode_change_alone_is_rewritten() {
        let f = fixture();
        let source =
            StaticObjectSource::new().with_config_map(config_map("conf", json!({"k": "v"})));
        let volume =
            |m: i32| pod(json!([{"name": "c", "configMap": {"name": "conf", "defaultMode": m}}]));
        f.manager
            .prepare(&volume(0o644), &source)
            .await
            .expect("prepare");
        f.manager
            .prepare(&volume(0o440), &source)
            .await
            .expect("prepare");
        let dir = volume_dir(&f, "kubernetes.io~configmap", "c");
        assert_eq!(mode(&dir.join("k")), 0o440);
        assert_eq!(ts_dirs(&dir).len(), 1);
    }

    #[tokio::test]
    async fn stale_versions_from_a_failed_write_are_swept() {
        let f = fixture();
        let source =
            StaticObjectSource::new().with_config_map(config_map("conf", json!({"k": "v1"})));
        let pod = pod(json!([{"name": "c", "configMap": {"name": "conf"}}]));
        f.manager.prepare(&pod, &source).await.expect("prepare");
        let dir = volume_dir(&f, "kubernetes.io~configmap", "c");
        fs::create_dir(dir.join("..2001_01_01_00_00_00.1")).expect("fs");
        std::os::unix::fs::symlink("nowhere", dir.join("..data_tmp")).expect("fs");
        source.insert_config_map(config_map("conf", json!({"k": "v2"})));
        f.manager.prepare(&pod, &source).await.expect("prepare");
        assert_eq!(read(&dir.join("k")), "v2");
        assert_eq!(ts_dirs(&dir).len(), 1);
        assert!(fs::symlink_metadata(dir.join("..data_tmp")).is_err());
    }

    #[tokio::test]
    async fn missing_config_map_and_keys() {
        let f = fixture();
        let empty = StaticObjectSource::new();
        let pod1 = pod(json!([{"name": "config", "configMap": {"name": "nope"}}]));
        assert_eq!(
            prepare_err(&f, &pod1, &empty).await,
            "MountVolume.SetUp failed for volume \"config\" : configmap \"nope\" not found"
        );

        let source =
            StaticObjectSource::new().with_config_map(config_map("conf", json!({"a": "A"})));
        let pod2 = pod(
            json!([{"name": "config", "configMap": {"name": "conf", "items": [
                {"key": "a", "path": "a"}, {"key": "missing", "path": "m"},
            ]}}]),
        );
        assert_eq!(
            prepare_err(&f, &pod2, &source).await,
            "MountVolume.SetUp failed for volume \"config\" : configmap references non-existent config key: missing"
        );
    }

    #[tokio::test]
    async fn optional_config_map_missing_object_or_key() {
        let f = fixture();
        let pod1 =
            pod(json!([{"name": "config", "configMap": {"name": "nope", "optional": true}}]));
        let volumes = f
            .manager
            .prepare(&pod1, &StaticObjectSource::new())
            .await
            .expect("prepare");
        let dir = volume_dir(&f, "kubernetes.io~configmap", "config");
        assert_eq!(volumes["config"].host_path, dir.to_string_lossy());
        assert!(visible(&dir).is_empty());
        assert!(dir.join("..data").is_dir());

        let source =
            StaticObjectSource::new().with_config_map(config_map("conf", json!({"a": "A"})));
        let pod2 = pod(
            json!([{"name": "config", "configMap": {"name": "conf", "optional": true, "items": [
                {"key": "a", "path": "a"}, {"key": "missing", "path": "m"},
            ]}}]),
        );
        f.manager.prepare(&pod2, &source).await.expect("prepare");
        assert_eq!(visible(&dir), ["a"]);

        // The object appears later: the next sync fills the volume.
        f.manager
            .prepare(
                &pod1,
                &StaticObjectSource::new().with_config_map(config_map("nope", json!({"x": "1"}))),
            )
            .await
            .expect("prepare");
        assert_eq!(visible(&dir), ["x"]);
    }

    #[tokio::test]
    async fn invalid_item_paths_are_refused_like_upstream() {
        let f = fixture();
        let source =
            StaticObjectSource::new().with_config_map(config_map("conf", json!({"a": "A"})));
        for (path, message) in [
            (
                "../escape",
                "invalid path: must not contain '..': ../escape",
            ),
            ("/abs", "invalid path: must be relative path: /abs"),
            ("..data", "invalid path: must not start with '..': ..data"),
            ("", "invalid path: must not be empty: \"\""),
        ] {
            let pod = pod(
                json!([{"name": "c", "configMap": {"name": "conf", "items": [{"key": "a", "path": path}]}}]),
            );
            assert_eq!(
                prepare_err(&f, &pod, &source).await,
                format!("MountVolume.SetUp failed for volume \"c\" : {message}")
            );
        }
        // `a//./b` is cleaned to `a/b`.
        let pod = pod(
            json!([{"name": "c", "configMap": {"name": "conf", "items": [{"key": "a", "path": "x//./y"}]}}]),
        );
        f.manager.prepare(&pod, &source).await.expect("prepare");
        assert_eq!(
            read(&volume_dir(&f, "kubernetes.io~configmap", "c").join("x/y")),
            "A"
        );
    }

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

    // --- secret --------------------------------------------------------------------------------

    #[tokio::test]
    async fn secret_volume_on_tmpfs_with_modes() {
        let f = fixture();
        let source = StaticObjectSource::new().with_secret(secret(
            "creds",
            &[("user", b"admin"), ("pass", b"\x00s3cret")],
        ));
        let pod = pod(json!([
            {"name": "all", "secret": {"secretName": "creds"}},
            {"name": "some", "secret": {"secretName": "creds", "defaultMode": 0o400,
                "items": [{"key": "pass", "path": "p/pass"}, {"key": "user", "path": "u", "mode": 0o444}]}},
        ]));
        let volumes = f.manager.prepare(&pod, &source).await.expect("prepare");
        let all = volume_dir(&f, "kubernetes.io~secret", "all");
        let some = volume_dir(&f, "kubernetes.io~secret", "some");
        assert!(volumes["all"].read_only);
        assert_eq!(visible(&all), ["pass", "user"]);
        assert_eq!(fs::read(all.join("pass")).expect("fs"), b"\x00s3cret");
        assert_eq!(mode(&all.join("user")), 0o644);
        assert_eq!(read(&some.join("u")), "admin");
        assert_eq!(mode(&some.join("u")), 0o444);
        assert_eq!(mode(&some.join("p/pass")), 0o400);
        // Both on a tmpfs sized to the node's allocatable memory.
        assert_eq!(
            f.mounter.calls(),
            vec![
                MountCall::MountTmpfs {
                    target: all,
                    size_bytes: Some(8 << 30)
                },
                MountCall::MountTmpfs {
                    target: some,
                    size_bytes: Some(8 << 30)
                },
            ]
        );
        f.manager.prepare(&pod, &source).await.expect("prepare");
        assert_eq!(f.mounter.calls().len(), 2, "no second mount");
    }

    #[tokio::test]
    async fn secret_string_data_is_honoured() {
        let f = fixture();
        let mut s = secret("creds", &[("a", b"from-data")]);
        s.string_data = Some(BTreeMap::from([(
            "b".to_string(),
            "from-string".to_string(),
        )]));
        let source = StaticObjectSource::new().with_secret(s);
        let pod = pod(json!([{"name": "s", "secret": {"secretName": "creds"}}]));
        f.manager.prepare(&pod, &source).await.expect("prepare");
        let dir = volume_dir(&f, "kubernetes.io~secret", "s");
        assert_eq!(read(&dir.join("a")), "from-data");
        assert_eq!(read(&dir.join("b")), "from-string");
    }

    #[tokio::test]
    async fn missing_and_optional_secrets() {
        let f = fixture();
        let empty = StaticObjectSource::new();
        let pod1 = pod(json!([{"name": "s", "secret": {"secretName": "nope"}}]));
        assert_eq!(
            prepare_err(&f, &pod1, &empty).await,
            "MountVolume.SetUp failed for volume \"s\" : secret \"nope\" not found"
        );
        let source = StaticObjectSource::new().with_secret(secret("creds", &[("a", b"1")]));
        let pod2 = pod(
            json!([{"name": "s", "secret": {"secretName": "creds", "items": [{"key": "zz", "path": "zz"}]}}]),
        );
        assert_eq!(
            prepare_err(&f, &pod2, &source).await,
            "MountVolume.SetUp failed for volume \"s\" : secret references non-existent secret key: zz"
        );
        let pod3 = pod(json!([
            {"name": "s", "secret": {"secretName": "creds", "optional": true, "items": [{"key": "zz", "path": "zz"}, {"key": "a", "path": "a"}]}},
            {"name": "t", "secret": {"secretName": "nope", "optional": true}},
        ]));
        f.manager.prepare(&pod3, &source).await.expect("prepare");
        assert_eq!(visible(&volume_dir(&f, "kubernetes.io~secret", "s")), ["a"]);
        assert!(visible(&volume_dir(&f, "kubernetes.io~secret", "t")).is_empty());
    }

    // --- downwardAPI ---------------------------------------------------------------------------

    fn resource_pod(items: serde_json::Value) -> Pod {
        pod_with(
            json!([{"name": "info", "downwardAPI": {"items": items}}]),
            json!([
                {"name": "app", "resources": {
                    "requests": {"cpu": "250m", "memory": "64Mi"},
                    "limits": {"cpu": "1500m", "memory": "128Mi", "ephemeral-storage": "0"},
                }},
                {"name": "bare"},
            ]),
        )
    }

    #[tokio::test]
    async fn downward_api_metadata_fields() {
        let f = fixture();
        let pod = pod(
            json!([{"name": "info", "downwardAPI": {"defaultMode": 0o640, "items": [
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}},
                {"path": "uid", "fieldRef": {"fieldPath": "metadata.uid"}, "mode": 0o600},
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
                {"path": "sub/app", "fieldRef": {"fieldPath": "metadata.labels['app']"}},
                {"path": "sub/none", "fieldRef": {"fieldPath": "metadata.annotations['none']"}},
            ]}}]),
        );
        let volumes = f
            .manager
            .prepare(&pod, &StaticObjectSource::new())
            .await
            .expect("prepare");
        assert!(volumes["info"].read_only);
        let dir = volume_dir(&f, "kubernetes.io~downward-api", "info");
        assert_eq!(read(&dir.join("name")), "web");
        assert_eq!(read(&dir.join("namespace")), "ns1");
        assert_eq!(read(&dir.join("uid")), UID);
        assert_eq!(
            read(&dir.join("labels")),
            "app=\"web\"\ntier=\"front \\\"end\\\"\""
        );
        assert_eq!(
            read(&dir.join("annotations")),
            "note=\"line1\\nline2\\tend\""
        );
        assert_eq!(read(&dir.join("sub/app")), "web");
        assert_eq!(read(&dir.join("sub/none")), "");
        assert_eq!(mode(&dir.join("name")), 0o640);
        assert_eq!(mode(&dir.join("uid")), 0o600);
        assert!(dir.join("..data").is_dir());

        // A label change reaches the file on the next sync.
        let mut changed = pod.clone();
        changed.metadata.labels = Some(BTreeMap::from([("app".into(), "api".into())]));
        f.manager
            .prepare(&changed, &StaticObjectSource::new())
            .await
            .expect("prepare");
        assert_eq!(read(&dir.join("labels")), "app=\"api\"");
        assert_eq!(ts_dirs(&dir).len(), 1);
    }

    #[test]
    fn downward_api_resources_round_up_and_default_to_allocatable() {
        let f = fixture();
        let cases = [
            ("app", "limits.cpu", None, "2"), // 1500m → 2 cores
            ("app", "limits.cpu", Some("1m"), "1500"),
            ("app", "requests.cpu", None, "1"), // 250m rounds up
            ("app", "requests.cpu", Some("100m"), "3"), // 2.5 → 3
            ("app", "limits.memory", None, "134217728"),
            ("app", "limits.memory", Some("1Mi"), "128"),
            ("app", "requests.memory", Some("1Mi"), "64"),
            ("app", "limits.ephemeral-storage", Some("1Gi"), "100"), // zero limit → allocatable
            ("app", "requests.ephemeral-storage", None, "0"),
            ("bare", "limits.cpu", Some("1m"), "4000"), // unset → allocatable
            ("bare", "limits.memory", Some("1Gi"), "8"),
            ("bare", "requests.memory", None, "0"),
            ("app", "limits.hugepages-2Mi", None, "0"),
        ];
        for (container, resource, divisor, want) in cases {
            let pod = resource_pod(json!([]));
            let selector = ResourceFieldSelector {
                container_name: Some(container.into()),
                resource: resource.into(),
                divisor: divisor.map(|d| ApiQuantity(d.into())),
            };
            assert_eq!(
                resource_field_value(&pod, &selector, &f.manager.node_allocatable)
                    .expect("resource value"),
                want,
                "{container} {resource} {divisor:?}"
            );
        }
    }

    #[tokio::test]
    async fn downward_api_resource_file_and_errors() {
        let f = fixture();
        let pod = resource_pod(json!([
            {"path": "cpu", "resourceFieldRef": {"containerName": "app", "resource": "limits.cpu", "divisor": "1m"}},
        ]));
        f.manager
            .prepare(&pod, &StaticObjectSource::new())
            .await
            .expect("prepare");
        let dir = volume_dir(&f, "kubernetes.io~downward-api", "info");
        assert_eq!(read(&dir.join("cpu")), "1500");

        for (item, message) in [
            (
                json!({"path": "x", "resourceFieldRef": {"containerName": "ghost", "resource": "limits.cpu"}}),
                "container ghost not found",
            ),
            (
                json!({"path": "x", "resourceFieldRef": {"containerName": "app", "resource": "limits.gpu"}}),
                "unsupported container resource : limits.gpu",
            ),
            (
                json!({"path": "x", "fieldRef": {"fieldPath": "spec.nodeName"}}),
                "unsupported fieldPath: spec.nodeName",
            ),
            (
                json!({"path": "x", "fieldRef": {"fieldPath": "metadata.name['x']"}}),
                "fieldPath \"metadata.name['x']\" does not support subscript",
            ),
        ] {
            let pod = resource_pod(json!([item]));
            assert_eq!(
                prepare_err(&f, &pod, &StaticObjectSource::new()).await,
                format!("MountVolume.SetUp failed for volume \"info\" : {message}")
            );
        }
    }

    #[test]
    fn go_quote_matches_go() {
        for (input, want) in [
            ("plain", r#""plain""#),
            ("q\"b\\", r#""q\"b\\""#),
            ("\u{7}\u{8}\u{c}\n\r\t\u{b}", r#""\a\b\f\n\r\t\v""#),
            ("\u{1}\u{1b}\u{7f}", r#""\x01\x1b\x7f""#),
            ("héllo ☃ 日本", r#""héllo ☃ 日本""#),
            ("nb\u{a0}sp\u{200b}\u{85}", r#""nb\u00a0sp\u200b\u0085""#),
            ("\u{f0000}", r#""\U000f0000""#),
        ] {
            assert_eq!(go_quote(input), want, "{input:?}");
        }
    }

    // --- projected -----------------------------------------------------------------------------

    #[tokio::test]
    async fn projected_merges_sources_into_one_dir() {
        let f = fixture();
        let source = StaticObjectSource::new()
            .with_config_map(config_map(
                "conf",
                json!({"config.yaml": "x: 1", "other": "o"}),
            ))
            .with_secret(secret("creds", &[("token", b"t0k")]));
        let pod = pod(
            json!([{"name": "all-in-one", "projected": {"defaultMode": 0o440, "sources": [
                {"configMap": {"name": "conf", "items": [{"key": "config.yaml", "path": "conf/config.yaml"}]}},
                {"secret": {"name": "creds", "items": [{"key": "token", "path": "conf/token", "mode": 0o400}]}},
                {"secret": {"name": "missing", "optional": true}},
                {"downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
            ]}}]),
        );
        let volumes = f.manager.prepare(&pod, &source).await.expect("prepare");
        let dir = volume_dir(&f, "kubernetes.io~projected", "all-in-one");
        assert!(volumes["all-in-one"].read_only);
        assert_eq!(visible(&dir), ["conf", "labels"]);
        assert_eq!(read(&dir.join("conf/config.yaml")), "x: 1");
        assert_eq!(read(&dir.join("conf/token")), "t0k");
        assert_eq!(mode(&dir.join("conf/config.yaml")), 0o440);
        assert_eq!(mode(&dir.join("conf/token")), 0o400);
        assert_eq!(mode(&dir.join("labels")), 0o440);
        assert_eq!(
            f.mounter.calls(),
            vec![MountCall::MountTmpfs {
                target: dir,
                size_bytes: Some(8 << 30)
            }]
        );

        let missing = pod_with(
            json!([{"name": "p", "projected": {"sources": [{"configMap": {"name": "nope"}}]}}]),
            json!([{"name": "app"}]),
        );
        assert_eq!(
            prepare_err(&f, &missing, &source).await,
            "MountVolume.SetUp failed for volume \"p\" : configmap \"nope\" not found"
        );
    }

    #[tokio::test]
    async fn projected_token_and_trust_bundle_are_refused() {
        let f = fixture();
        for (projection, name) in [
            (
                json!({"serviceAccountToken": {"path": "token"}}),
                "serviceAccountToken",
            ),
            (
                json!({"clusterTrustBundle": {"path": "ca.crt", "name": "b"}}),
                "clusterTrustBundle",
            ),
        ] {
            let pod =
                pod(json!([{"name": "kube-api-access", "projected": {"sources": [projection]}}]));
            assert_eq!(
                prepare_err(&f, &pod, &StaticObjectSource::new()).await,
                format!("MountVolume.SetUp failed for volume \"kube-api-access\" : projected {name} sources are not served by this cluster yet")
            );
        }
        assert!(!f
            .manager
            .pod_volumes_dir(UID)
            .join("kubernetes.io~projected")
            .exists());
    }

    // --- hostPath ------------------------------------------------------------------------------

    async fn host_path(f: &Fixture, path: &Path, kind: &str) -> Result<VolumeHostPath, String> {
        let pod = pod(json!([{"name": "host", "hostPath": {"path": path, "type": kind}}]));
        f.manager
            .prepare(&pod, &StaticObjectSource::new())
            .await
            .map(|mut v| v.remove("host").expect("host volume"))
            .map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn host_path_types() {
        let f = fixture();
        let base = tempfile::tempdir().expect("tempdir");
        let base = base.path();
        let file = base.join("file");
        fs::write(&file, "x").expect("fs");
        let socket_path = base.join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket_path).expect("bind socket");
        let fail = |path: &Path, what: &str| {
            Err(format!(
                "MountVolume.SetUp failed for volume \"host\" : hostPath type check failed: {} is not a {what}",
                path.display()
            ))
        };

        // No type: no check at all, not even existence.
        let absent = base.join("absent");
        assert_eq!(
            host_path(&f, &absent, "").await,
            Ok(VolumeHostPath {
                host_path: absent.to_string_lossy().into(),
                read_only: false
            })
        );
        assert!(!absent.exists());

        let made = base.join("made/deep");
        host_path(&f, &made, "DirectoryOrCreate")
            .await
            .expect("hostPath accepted");
        assert!(made.is_dir());
        host_path(&f, &made, "Directory")
            .await
            .expect("hostPath accepted");
        assert_eq!(
            host_path(&f, &file, "Directory").await,
            fail(&file, "directory")
        );
        assert_eq!(
            host_path(&f, &file, "DirectoryOrCreate").await,
            fail(&file, "directory")
        );
        assert_eq!(
            host_path(&f, &absent, "Directory").await,
            fail(&absent, "directory")
        );

        let new_file = base.join("new-file");
        host_path(&f, &new_file, "FileOrCreate")
            .await
            .expect("hostPath accepted");
        assert!(new_file.is_file());
        assert_eq!(fs::read(&new_file).expect("fs").len(), 0);
        host_path(&f, &file, "FileOrCreate")
            .await
            .expect("hostPath accepted");
        assert_eq!(read(&file), "x", "an existing file is left alone");
        host_path(&f, &file, "File")
            .await
            .expect("hostPath accepted");
        assert_eq!(host_path(&f, &made, "File").await, fail(&made, "file"));
        let orphan = base.join("no-parent/file");
        let err = host_path(&f, &orphan, "FileOrCreate")
            .await
            .expect_err("must fail");
        assert!(err.contains("No such file or directory"), "{err}");

        host_path(&f, &socket_path, "Socket")
            .await
            .expect("hostPath accepted");
        assert_eq!(
            host_path(&f, &file, "Socket").await,
            fail(&file, "socket file")
        );
        host_path(&f, Path::new("/dev/null"), "CharDevice")
            .await
            .expect("hostPath accepted");
        assert_eq!(
            host_path(&f, &file, "CharDevice").await,
            fail(&file, "character device")
        );
        assert_eq!(
            host_path(&f, Path::new("/dev/null"), "BlockDevice").await,
            fail(Path::new("/dev/null"), "block device")
        );

        assert_eq!(
            host_path(&f, &file, "Weird").await,
            Err(
                "MountVolume.SetUp failed for volume \"host\" : Weird is an invalid volume type"
                    .into()
            )
        );
        assert_eq!(
            host_path(&f, Path::new("/var/../etc"), "").await,
            Err("MountVolume.SetUp failed for volume \"host\" : invalid HostPath `/var/../etc`: must not contain '..'".into())
        );
    }

    #[tokio::test]
    async fn host_path_directory_or_create_uses_0755() {
        let f = fixture();
        let base = tempfile::tempdir().expect("tempdir");
        let made = base.path().join("d");
        host_path(&f, &made, "DirectoryOrCreate")
            .await
            .expect("hostPath accepted");
        // 0755 less the umask, as upstream's MkdirAll.
        assert_eq!(mode(&made) & !0o755, 0);
        let made_file = base.path().join("f");
        host_path(&f, &made_file, "FileOrCreate")
            .await
            .expect("hostPath accepted");
        assert_eq!(mode(&made_file) & !0o644, 0);
    }

    // --- other types, order, names -----------------------------------------------------------

    #[tokio::test]
    async fn unsupported_types_are_refused() {
        let f = fixture();
        for volume in [
            json!({"name": "claim", "persistentVolumeClaim": {"claimName": "c"}}),
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

    #[test]
    fn mountinfo_is_parsed() {
        let text = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
95 22 0:50 / /var/lib/ferry/pods/u1/volumes/kubernetes.io~empty-dir/my\\040cache rw,relatime shared:50 - tmpfs tmpfs rw,size=1024k
96 22 0:51 / /with/optional rw master:1 propagate_from:2 - tmpfs tmpfs rw
";
        assert_eq!(
            parse_mountinfo(text),
            vec![
                MountPoint {
                    path: "/".into(),
                    fs_type: "ext4".into()
                },
                MountPoint {
                    path: "/var/lib/ferry/pods/u1/volumes/kubernetes.io~empty-dir/my cache".into(),
                    fs_type: "tmpfs".into()
                },
                MountPoint {
                    path: "/with/optional".into(),
                    fs_type: "tmpfs".into()
                },
            ]
        );
        assert_eq!(unescape_octal("a\\134b\\011c\\"), "a\\b\tc\\");
    }
}
