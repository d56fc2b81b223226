//! The CSI half of `persistentVolumeClaim` volumes, as upstream's `pkg/volume/csi`:
//!
//! 1. When the driver's CSIDriver asks for attachment (`attachRequired`, or no CSIDriver at
//!    all), wait for the VolumeAttachment `csi-<sha256(handle, driver, node)>` the
//!    attach-detach controller makes to be attached by the driver's attacher, and take its
//!    `attachmentMetadata` as the publish context (`csi_attacher.go`'s WaitForAttach).
//! 2. When the driver stages volumes (node capability STAGE_UNSTAGE_VOLUME), NodeStageVolume at
//!    the node's global mount `<plugins>/kubernetes.io/csi/<driver>/<sha256(handle)>/globalmount`
//!    (MountDevice), once per volume on the node: repeated calls are no-ops at the driver.
//! 3. NodePublishVolume into the pod's directory, from the global mount (`csi_mounter.go`'s
//!    SetUp).
//! 4. After pods are gone, NodeUnstageVolume for every staged volume no pod on the node uses
//!    any more ([`VolumeManager::unstage_unused_csi_volumes`], UnmountDevice).
//!
//! Who uses what is kept on disk as upstream keeps it: a `vol_data.json` (driver and handle)
//! beside each pod's mount and beside each global mount, so a restarted kubelet still knows
//! what it staged and which pods use it. Staging and unstaging take one lock, so a volume is
//! never unstaged between a pod recording its use and the publication.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::storage::v1::VolumeAttachment;
use serde::{Deserialize, Serialize};

use super::persistent_volume::{CsiPublish, CSI_PLUGIN};
use super::{io_err, is_path_component, ObjectSource, VolumeError, VolumeManager};
use crate::podconfig::VolumeHostPath;

/// The CSI plugin's directory under the kubelet's `plugins` directory.
const CSI_PLUGINS_SUBDIR: &str = "kubernetes.io/csi";
/// The global mount's name in a volume's directory under its driver's.
const GLOBAL_MOUNT: &str = "globalmount";
/// The record of the volume beside a pod's mount and a global mount.
const VOL_DATA: &str = "vol_data.json";
/// How often the VolumeAttachment is looked at while waiting.
const ATTACH_POLL: Duration = Duration::from_millis(500);
/// How long one volume setup waits for the attachment before failing (and being retried with
/// the pod's next sync).
pub const DEFAULT_ATTACH_WAIT: Duration = Duration::from_secs(30);

/// `vol_data.json`: which volume of which driver (upstream's keys).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct VolData {
    #[serde(rename = "driverName")]
    driver: String,
    #[serde(rename = "volumeHandle")]
    volume_handle: String,
}

/// A CSI volume of a pod, resolved from its claim.
pub(super) struct CsiVolume<'a> {
    /// The pod's volume name.
    pub name: &'a str,
    /// The node the pod is bound to.
    pub node: Option<&'a str>,
    /// The driver.
    pub driver: String,
    /// The volume handle.
    pub volume_id: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// Volume attributes.
    pub context: BTreeMap<String, String>,
    /// The filesystem type.
    pub fs_type: Option<String>,
}

/// Where a VolumeAttachment stands for the kubelet waiting on it.
#[derive(Debug, PartialEq, Eq)]
enum Attachment {
    /// Attached: the publish context.
    Attached(BTreeMap<String, String>),
    /// Not yet (or not yet made by the controller).
    Pending,
    /// Will not be attached: why.
    Failed(String),
}

/// Upstream's `verifyAttachmentStatus`, with a missing attachment still pending (the
/// controller makes it once it sees the pod on the node).
fn attachment_state(attachment: Option<&VolumeAttachment>) -> Attachment {
    let Some(attachment) = attachment else {
        return Attachment::Pending;
    };
    if attachment.metadata.deletion_timestamp.is_some() {
        return Attachment::Failed("volume attachment is being deleted".into());
    }
    let Some(status) = &attachment.status else {
        return Attachment::Pending;
    };
    if status.attached {
        return Attachment::Attached(status.attachment_metadata.clone().unwrap_or_default());
    }
    match status.attach_error.as_ref().and_then(|e| e.message.clone()) {
        Some(message) => Attachment::Failed(message),
        None => Attachment::Pending,
    }
}

impl VolumeManager {
    /// The CSI plugin's directory: `<plugins>/kubernetes.io/csi`.
    fn csi_plugin_dir(&self) -> PathBuf {
        self.plugins_dir.join(CSI_PLUGINS_SUBDIR)
    }

    /// A volume's directory under its driver's: `<csi plugin dir>/<driver>/<sha256(handle)>`.
    fn global_volume_dir(&self, driver: &str, volume_id: &str) -> PathBuf {
        self.csi_plugin_dir()
            .join(driver)
            .join(ferry_csi::attach::staging_dir_name(volume_id))
    }

    /// Attaches (waits for), stages and publishes `volume` for the pod `uid`; where it is.
    pub(super) async fn set_up_csi(
        &self,
        uid: &str,
        volume: CsiVolume<'_>,
        source: &dyn ObjectSource,
    ) -> Result<VolumeHostPath, VolumeError> {
        let name = volume.name;
        let csi = self
            .csi
            .as_ref()
            .filter(|c| c.has_driver(&volume.driver))
            .ok_or_else(|| VolumeError::CsiDriverNotFound {
                volume: name.to_string(),
                driver: volume.driver.clone(),
            })?;
        if !is_path_component(&volume.driver) {
            return Err(VolumeError::InvalidSpec {
                volume: name.to_string(),
                message: format!("invalid CSI driver name {:?}", volume.driver),
            });
        }
        let publish_context = if self.attach_required(name, &volume.driver, source).await? {
            self.wait_for_attach(&volume, source).await?
        } else {
            BTreeMap::new()
        };
        let stages = csi
            .stages(&volume.driver)
            .await
            .map_err(|message| VolumeError::CsiStage {
                volume: name.to_string(),
                message,
            })?;
        let pod_volume_dir = self.pod_volumes_dir(uid).join(CSI_PLUGIN).join(name);
        let global_dir = self.global_volume_dir(&volume.driver, &volume.volume_id);
        let request = CsiPublish {
            target: pod_volume_dir.join("mount"),
            staging_target: stages.then(|| global_dir.join(GLOBAL_MOUNT)),
            publish_context,
            driver: volume.driver,
            volume_id: volume.volume_id,
            read_only: volume.read_only,
            context: volume.context,
            fs_type: volume.fs_type,
        };
        let data = VolData {
            driver: request.driver.clone(),
            volume_handle: request.volume_id.clone(),
        };
        {
            let _staging = self.csi_stage_lock.lock().await;
            // The pod's use is on disk before the volume is staged for it.
            write_vol_data(name, &pod_volume_dir, &data)?;
            if stages {
                write_vol_data(name, &global_dir, &data)?;
                csi.stage(&request)
                    .await
                    .map_err(|message| VolumeError::CsiStage {
                        volume: name.to_string(),
                        message,
                    })?;
            }
        }
        csi.publish(&request)
            .await
            .map_err(|message| VolumeError::CsiPublish {
                volume: name.to_string(),
                message,
            })?;
        Ok(VolumeHostPath {
            host_path: request.target.to_string_lossy().into_owned(),
            read_only: request.read_only,
        })
    }

    /// Whether `driver`'s volumes are attached before use (upstream's `skipAttach` negated): a
    /// CSIDriver without `attachRequired: false`, or none at all.
    async fn attach_required(
        &self,
        volume: &str,
        driver: &str,
        source: &dyn ObjectSource,
    ) -> Result<bool, VolumeError> {
        let object = source
            .csi_driver(driver)
            .await
            .map_err(|e| VolumeError::Lookup {
                volume: volume.to_string(),
                source: Box::new(e),
            })?;
        Ok(object.is_none_or(|d| d.spec.attach_required != Some(false)))
    }

    /// Polls the volume's VolumeAttachment on the pod's node until it is attached (its publish
    /// context), fails, or [`VolumeManager::with_attach_wait`] passes.
    async fn wait_for_attach(
        &self,
        volume: &CsiVolume<'_>,
        source: &dyn ObjectSource,
    ) -> Result<BTreeMap<String, String>, VolumeError> {
        let failed = |message: String| VolumeError::CsiAttach {
            volume: volume.name.to_string(),
            message,
        };
        let Some(node) = volume.node.filter(|n| !n.is_empty()) else {
            return Err(failed("the pod is not bound to a node".into()));
        };
        let name = ferry_csi::attach::attachment_name(&volume.volume_id, &volume.driver, node);
        let deadline = tokio::time::Instant::now() + self.attach_wait;
        loop {
            let attachment =
                source
                    .volume_attachment(&name)
                    .await
                    .map_err(|e| VolumeError::Lookup {
                        volume: volume.name.to_string(),
                        source: Box::new(e),
                    })?;
            match attachment_state(attachment.as_ref()) {
                Attachment::Attached(context) => return Ok(context),
                Attachment::Failed(message) => return Err(failed(message)),
                Attachment::Pending => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(failed(format!(
                    "timed out waiting for external-attacher of {} CSI driver to attach volume {}",
                    volume.driver, volume.volume_id
                )));
            }
            tokio::time::sleep(ATTACH_POLL).await;
        }
    }

    /// NodeUnstageVolume for every volume staged here that no pod directory uses any more, then
    /// its directory goes. Meant to run after pods' directories are cleaned up. Volumes of a
    /// driver not registered (yet) wait for it; the first failure is returned after the rest
    /// were tried.
    pub async fn unstage_unused_csi_volumes(&self) -> Result<(), VolumeError> {
        let Some(csi) = &self.csi else {
            return Ok(());
        };
        let _staging = self.csi_stage_lock.lock().await;
        let in_use = self.csi_volumes_of_pods()?;
        let mut first_error = None;
        for (dir, data) in self.staged_csi_volumes()? {
            if in_use.contains(&data) || !csi.has_driver(&data.driver) {
                continue;
            }
            let staging = dir.join(GLOBAL_MOUNT);
            let result = csi
                .unstage(&data.driver, &data.volume_handle, &staging)
                .await
                .map_err(|message| VolumeError::CsiUnstage {
                    volume_id: data.volume_handle.clone(),
                    message,
                })
                .and_then(|()| remove_global_dir(&dir));
            match result {
                Ok(()) => tracing::info!(
                    driver = %data.driver,
                    volume_id = %data.volume_handle,
                    "CSI volume unstaged"
                ),
                Err(err) => {
                    tracing::warn!(error = %err, "unstaging a CSI volume");
                    first_error.get_or_insert(err);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The node's `status.volumesInUse`: every CSI volume a pod here uses or that is staged
    /// here (`kubernetes.io/csi/<driver>^<handle>`), sorted. The attach-detach controller does
    /// not detach a volume while it is listed. Unreadable directories count as empty.
    pub fn csi_volumes_in_use(&self) -> Vec<String> {
        let mut used = self.csi_volumes_of_pods().unwrap_or_default();
        used.extend(
            self.staged_csi_volumes()
                .unwrap_or_default()
                .into_iter()
                .map(|(_, data)| data),
        );
        used.iter()
            .map(|d| ferry_csi::attach::unique_volume_name(&d.driver, &d.volume_handle))
            .collect()
    }

    /// The CSI volumes of the pods with a directory here, from their `vol_data.json`.
    fn csi_volumes_of_pods(&self) -> Result<BTreeSet<VolData>, VolumeError> {
        let mut used = BTreeSet::new();
        for uid in self.pod_uids_on_disk()? {
            let plugin_dir = self.pod_volumes_dir(&uid).join(CSI_PLUGIN);
            for dir in subdirectories(&plugin_dir)? {
                if let Some(data) = read_vol_data(&dir) {
                    used.insert(data);
                }
            }
        }
        Ok(used)
    }

    /// The volumes staged here: their directory (holding the global mount) and record.
    fn staged_csi_volumes(&self) -> Result<Vec<(PathBuf, VolData)>, VolumeError> {
        let mut staged = Vec::new();
        for driver_dir in subdirectories(&self.csi_plugin_dir())? {
            for dir in subdirectories(&driver_dir)? {
                if let Some(data) = read_vol_data(&dir) {
                    staged.push((dir, data));
                }
            }
        }
        Ok(staged)
    }
}

/// The directories in `dir` (none when it does not exist).
fn subdirectories(dir: &Path) -> Result<Vec<PathBuf>, VolumeError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(super::cleanup_err("list", dir)(err)),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(super::cleanup_err("list", dir))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    Ok(dirs)
}

fn read_vol_data(dir: &Path) -> Option<VolData> {
    let bytes = fs::read(dir.join(VOL_DATA)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Writes `dir/vol_data.json` (and `dir`) unless it already says `data`.
fn write_vol_data(volume: &str, dir: &Path, data: &VolData) -> Result<(), VolumeError> {
    if read_vol_data(dir).as_ref() == Some(data) {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(io_err(volume, "mkdir", dir))?;
    let path = dir.join(VOL_DATA);
    let json = serde_json::to_vec(data).map_err(|e| io_err(volume, "encode", &path)(e.into()))?;
    fs::write(&path, json).map_err(io_err(volume, "write file", &path))
}

/// Removes an unstaged volume's directory: the global mount point if the driver left it, the
/// record, then the directory. Never recursively: anything else in it is not ours.
fn remove_global_dir(dir: &Path) -> Result<(), VolumeError> {
    let global_mount = dir.join(GLOBAL_MOUNT);
    match fs::remove_dir(&global_mount) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => {
            return Err(super::cleanup_err("remove", &global_mount)(err))
        }
        _ => {}
    }
    let record = dir.join(VOL_DATA);
    match fs::remove_file(&record) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => {
            return Err(super::cleanup_err("remove", &record)(err))
        }
        _ => {}
    }
    match fs::remove_dir(dir) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => {
            Err(super::cleanup_err("remove", dir)(err))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
#[path = "csi_tests.rs"]
mod tests;
