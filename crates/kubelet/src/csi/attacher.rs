//! The external-attacher for a driver whose volumes live on this node (`local.csi.ferry.dev`),
//! beside its provisioner: the VolumeAttachments of the driver for this node, which the
//! attach-detach controller makes for pods placed here, are attached and detached through the
//! driver's Controller service.
//!
//! - Attach: the finalizer `external-attacher/<driver>` goes on first, then
//!   ControllerPublishVolume with the PersistentVolume's handle, attributes and access mode, then
//!   `status.attached: true` with the publish context as `attachmentMetadata` (or
//!   `status.attachError`). A driver without the PUBLISH_UNPUBLISH_VOLUME capability is attached
//!   without a call, as upstream's trivial handler does.
//! - Detach (the attachment deleted, held by the finalizer): ControllerUnpublishVolume, then the
//!   finalizer goes (or `status.detachError`, and a retry).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ferry_csi::attach::attacher_finalizer;
use ferry_csi::client::CsiClient;
use ferry_csi::v1;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::PersistentVolume;
use k8s_openapi::api::storage::v1::{CSIDriver, VolumeAttachment, VolumeError};
use kube::api::{Patch, PatchParams};
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt as _;
use kube::{Api, ResourceExt as _};
use parking_lot::Mutex;
use serde_json::json;

use super::{access_mode, mount_capability, rpc_error};

/// How often every attachment is looked at again, besides the watch (retries of failures).
const RESYNC: Duration = Duration::from_secs(15);
/// How often a CSIDriver without attachment is read again.
const DRIVER_RECHECK: Duration = Duration::from_secs(60);

/// A failed step; recorded in the attachment's status where it can be, and retried.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The API server refused.
    #[error(transparent)]
    Api(#[from] kube::Error),
    /// The driver refused.
    #[error("{}", rpc_error(.0))]
    Driver(#[from] tonic::Status),
    /// The attachment cannot be attached as it is.
    #[error("{0}")]
    Unsupported(String),
}

/// What an attachment needs from this attacher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing: another driver's or node's, attached already, or detached already.
    None,
    /// ControllerPublishVolume and `status.attached`.
    Attach,
    /// ControllerUnpublishVolume and the finalizer off.
    Detach,
}

/// What `attachment` needs from the attacher of `driver` on the node `node`.
pub fn action(attachment: &VolumeAttachment, driver: &str, node: &str) -> Action {
    if attachment.spec.attacher != driver || attachment.spec.node_name != node {
        return Action::None;
    }
    let finalizer = attacher_finalizer(driver);
    let has_finalizer = attachment.finalizers().contains(&finalizer);
    if attachment.metadata.deletion_timestamp.is_some() {
        return if has_finalizer {
            Action::Detach
        } else {
            Action::None
        };
    }
    let attached = attachment.status.as_ref().is_some_and(|s| s.attached);
    if attached && has_finalizer {
        Action::None
    } else {
        Action::Attach
    }
}

/// ControllerPublishVolume for `volume` on the node `node_id`: the PV's handle, attributes,
/// read-only flag and access mode.
pub fn publish_request(
    volume: &PersistentVolume,
    node_id: &str,
) -> Result<v1::ControllerPublishVolumeRequest, AttachError> {
    let spec = volume.spec.clone().unwrap_or_default();
    let Some(csi) = spec.csi else {
        return Err(AttachError::Unsupported(format!(
            "persistentvolume {} is not a CSI volume",
            volume.name_any()
        )));
    };
    let modes = spec.access_modes.unwrap_or_default();
    Ok(v1::ControllerPublishVolumeRequest {
        volume_id: csi.volume_handle,
        node_id: node_id.to_string(),
        volume_capability: Some(mount_capability(
            csi.fs_type.as_deref(),
            access_mode(&modes),
        )),
        readonly: csi.read_only.unwrap_or(false),
        volume_context: csi
            .volume_attributes
            .unwrap_or_default()
            .into_iter()
            .collect(),
    })
}

/// The status patch recording `err` as the attachment's `field` (`attachError`,
/// `detachError`); `None` when `recorded` says the same already. Rewriting an unchanged error
/// would only trigger another watch event, and another failing attempt, at once: retries wait
/// for the periodic resync instead.
fn error_status(
    field: &str,
    recorded: Option<&VolumeError>,
    err: &AttachError,
) -> Option<serde_json::Value> {
    let message = err.to_string();
    if recorded.and_then(|e| e.message.as_deref()) == Some(message.as_str()) {
        return None;
    }
    Some(
        json!({"status": {field: {"time": jiff::Timestamp::now().to_string(),
                                   "message": message}}}),
    )
}

/// The attacher of one driver on this node.
pub struct Attacher {
    client: kube::Client,
    csi: CsiClient,
    driver: String,
    /// The Node's name (the attachments' `spec.nodeName`).
    node: String,
    /// The driver's id of this node (NodeGetInfo), what ControllerPublishVolume is given.
    node_id: String,
    /// Whether the driver has PUBLISH_UNPUBLISH_VOLUME, once asked.
    publishes: Mutex<Option<bool>>,
}

impl Attacher {
    /// An attacher for `driver`'s attachments to `node`, known to the driver as `node_id`.
    pub fn new(
        client: kube::Client,
        csi: CsiClient,
        driver: &str,
        node: &str,
        node_id: &str,
    ) -> Arc<Attacher> {
        Arc::new(Attacher {
            client,
            csi,
            driver: driver.to_string(),
            node: node.to_string(),
            node_id: node_id.to_string(),
            publishes: Mutex::new(None),
        })
    }

    /// Once the driver's CSIDriver exists and asks for attachment (`attachRequired` not false),
    /// watches the attachments (and looks at all of them again periodically) until `shutdown`.
    /// Until then nothing is watched: no attachment of the driver is made (a driver without a
    /// CSIDriver is attached by upstream's rules, but ours gets one from `ferry server`, maybe
    /// a moment after the agent starts), and the agent's credentials may only read
    /// VolumeAttachments where attaching is in use.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()> + Send) {
        tokio::select! {
            _ = shutdown => {}
            _ = self.clone().attach_when_required() => {}
        }
    }

    async fn attach_when_required(self: Arc<Self>) {
        let drivers: Api<CSIDriver> = Api::all(self.client.clone());
        loop {
            match drivers.get_opt(&self.driver).await {
                Ok(Some(driver)) if driver.spec.attach_required != Some(false) => break,
                Ok(_) => {}
                Err(error) => tracing::debug!(%error, "reading the CSIDriver"),
            }
            tokio::time::sleep(DRIVER_RECHECK).await;
        }
        tracing::info!(driver = %self.driver, "attaching volumes of this node");
        self.watch_attachments().await
    }

    async fn watch_attachments(self: Arc<Self>) {
        let watch = {
            let this = self.clone();
            async move {
                let api: Api<VolumeAttachment> = Api::all(this.client.clone());
                let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
                futures::pin_mut!(stream);
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(watcher::Event::Apply(va) | watcher::Event::InitApply(va)) => {
                            this.sync_logged(&va).await
                        }
                        Ok(_) => {}
                        Err(error) => tracing::warn!(%error, "watching volume attachments"),
                    }
                }
            }
        };
        let periodic = {
            let this = self.clone();
            async move {
                let mut resync = tokio::time::interval(RESYNC);
                loop {
                    resync.tick().await;
                    let api: Api<VolumeAttachment> = Api::all(this.client.clone());
                    if let Ok(list) = api.list(&Default::default()).await {
                        for va in list {
                            this.sync_logged(&va).await;
                        }
                    }
                }
            }
        };
        tokio::select! {
            _ = watch => {}
            _ = periodic => {}
        }
    }

    async fn sync_logged(&self, attachment: &VolumeAttachment) {
        if let Err(error) = self.sync(attachment).await {
            tracing::warn!(attachment = %attachment.name_any(), %error, "attaching a volume");
        }
    }

    /// Attaches or detaches `attachment` if it is this attacher's to do.
    pub async fn sync(&self, attachment: &VolumeAttachment) -> Result<(), AttachError> {
        match action(attachment, &self.driver, &self.node) {
            Action::None => Ok(()),
            Action::Attach => self.attach(attachment).await,
            Action::Detach => self.detach(attachment).await,
        }
    }

    fn api(&self) -> Api<VolumeAttachment> {
        Api::all(self.client.clone())
    }

    async fn attach(&self, attachment: &VolumeAttachment) -> Result<(), AttachError> {
        let name = attachment.name_any();
        self.set_finalizer(attachment, true).await?;
        let result = self.controller_publish(attachment).await;
        let status = match &result {
            Ok(context) => Some(json!({"status": {"attached": true,
                "attachmentMetadata": context, "attachError": null}})),
            Err(err) => {
                let recorded = attachment
                    .status
                    .as_ref()
                    .and_then(|s| s.attach_error.as_ref());
                error_status("attachError", recorded, err).map(|mut status| {
                    status["status"]["attached"] = json!(false);
                    status
                })
            }
        };
        if let Some(status) = status {
            self.api()
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await?;
        }
        if result.is_ok() {
            tracing::info!(attachment = %name, "volume attached");
        }
        result.map(|_| ())
    }

    /// ControllerPublishVolume for the attachment's volume: its publish context.
    async fn controller_publish(
        &self,
        attachment: &VolumeAttachment,
    ) -> Result<std::collections::BTreeMap<String, String>, AttachError> {
        let Some(pv_name) = attachment.spec.source.persistent_volume_name.as_deref() else {
            return Err(AttachError::Unsupported(
                "only attachments of persistent volumes are supported".into(),
            ));
        };
        let Some(volume) = Api::<PersistentVolume>::all(self.client.clone())
            .get_opt(pv_name)
            .await?
        else {
            return Err(AttachError::Unsupported(format!(
                "persistentvolume {pv_name:?} not found"
            )));
        };
        let request = publish_request(&volume, &self.node_id)?;
        if !self.publishes().await? {
            return Ok(Default::default());
        }
        let mut controller = self.csi.controller.clone();
        let response = controller.controller_publish_volume(request).await?;
        Ok(response.into_inner().publish_context.into_iter().collect())
    }

    async fn detach(&self, attachment: &VolumeAttachment) -> Result<(), AttachError> {
        let name = attachment.name_any();
        let result = self.controller_unpublish(attachment).await;
        if let Err(err) = &result {
            let recorded = attachment
                .status
                .as_ref()
                .and_then(|s| s.detach_error.as_ref());
            if let Some(status) = error_status("detachError", recorded, err) {
                self.api()
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                    .await?;
            }
            return result;
        }
        self.set_finalizer(attachment, false).await?;
        tracing::info!(attachment = %name, "volume detached");
        Ok(())
    }

    async fn controller_unpublish(&self, attachment: &VolumeAttachment) -> Result<(), AttachError> {
        let volume = match attachment.spec.source.persistent_volume_name.as_deref() {
            Some(pv) => {
                Api::<PersistentVolume>::all(self.client.clone())
                    .get_opt(pv)
                    .await?
            }
            None => None,
        };
        // Without its volume there is no handle to detach: nothing is attached that we know of.
        let Some(handle) = volume
            .and_then(|v| v.spec)
            .and_then(|s| s.csi)
            .map(|c| c.volume_handle)
        else {
            return Ok(());
        };
        if !self.publishes().await? {
            return Ok(());
        }
        let mut controller = self.csi.controller.clone();
        controller
            .controller_unpublish_volume(v1::ControllerUnpublishVolumeRequest {
                volume_id: handle,
                node_id: self.node_id.clone(),
            })
            .await?;
        Ok(())
    }

    /// Whether the driver has PUBLISH_UNPUBLISH_VOLUME (asked once).
    async fn publishes(&self) -> Result<bool, AttachError> {
        if let Some(publishes) = *self.publishes.lock() {
            return Ok(publishes);
        }
        use v1::controller_service_capability::{rpc, Type};
        let mut controller = self.csi.controller.clone();
        let capabilities = controller
            .controller_get_capabilities(v1::ControllerGetCapabilitiesRequest {})
            .await?
            .into_inner()
            .capabilities;
        let publishes = capabilities.iter().any(|c| {
            matches!(&c.r#type, Some(Type::Rpc(r)) if r.r#type() == rpc::Type::PublishUnpublishVolume)
        });
        *self.publishes.lock() = Some(publishes);
        Ok(publishes)
    }

    /// Adds or removes this attacher's finalizer (a merge patch guarded by the
    /// resourceVersion, so a concurrent change is retried rather than overwritten).
    async fn set_finalizer(
        &self,
        attachment: &VolumeAttachment,
        present: bool,
    ) -> Result<(), AttachError> {
        let finalizer = attacher_finalizer(&self.driver);
        let mut finalizers = attachment.finalizers().to_vec();
        if finalizers.contains(&finalizer) == present {
            return Ok(());
        }
        finalizers.retain(|f| *f != finalizer);
        if present {
            finalizers.push(finalizer);
        }
        let patch = json!({"metadata": {"finalizers": finalizers,
            "resourceVersion": attachment.resource_version()}});
        self.api()
            .patch(
                &attachment.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attachment(node: &str, finalizer: bool, attached: bool, deleting: bool) -> VolumeAttachment {
        let mut va: VolumeAttachment = serde_json::from_value(json!({
            "metadata": {"name": "csi-1"},
            "spec": {"attacher": "local.csi.ferry.dev", "nodeName": node,
                     "source": {"persistentVolumeName": "pv-1"}},
            "status": {"attached": attached}
        }))
        .expect("attachment");
        if finalizer {
            va.metadata.finalizers = Some(vec![attacher_finalizer("local.csi.ferry.dev")]);
        }
        if deleting {
            va.metadata.deletion_timestamp = Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
            );
        }
        va
    }

    #[test]
    fn attachments_are_attached_and_detached_once() {
        let act = |va: &VolumeAttachment| action(va, "local.csi.ferry.dev", "n1");
        // (node, finalizer, attached, deleting) -> action
        let table = [
            (("n1", false, false, false), Action::Attach),
            (("n1", true, false, false), Action::Attach),
            // Attached, but the finalizer went missing: put it back (and re-publish, harmless).
            (("n1", false, true, false), Action::Attach),
            (("n1", true, true, false), Action::None),
            (("n1", true, true, true), Action::Detach),
            (("n1", true, false, true), Action::Detach),
            (("n1", false, true, true), Action::None),
            (("n2", false, false, false), Action::None),
        ];
        for ((node, finalizer, attached, deleting), want) in table {
            let va = attachment(node, finalizer, attached, deleting);
            assert_eq!(
                act(&va),
                want,
                "{node} finalizer={finalizer} attached={attached} deleting={deleting}"
            );
        }
        let mut other = attachment("n1", false, false, false);
        other.spec.attacher = "other.csi".into();
        assert_eq!(act(&other), Action::None);
    }

    #[test]
    fn unchanged_errors_are_not_written_again() {
        let err = AttachError::Unsupported("no volume".into());
        let patch = error_status("detachError", None, &err).expect("first time");
        assert_eq!(patch["status"]["detachError"]["message"], "no volume");
        let recorded = VolumeError {
            message: Some("no volume".into()),
            ..Default::default()
        };
        assert_eq!(error_status("detachError", Some(&recorded), &err), None);
        let other = AttachError::Unsupported("other".into());
        assert!(error_status("detachError", Some(&recorded), &other).is_some());
    }

    #[test]
    fn the_publish_request_comes_from_the_volume() {
        let volume: PersistentVolume = serde_json::from_value(json!({
            "metadata": {"name": "pv-1"},
            "spec": {"accessModes": ["ReadWriteOncePod"],
                     "csi": {"driver": "local.csi.ferry.dev", "volumeHandle": "h1",
                             "readOnly": true, "volumeAttributes": {"a": "b"}}}
        }))
        .expect("volume");
        let request = publish_request(&volume, "n1").expect("request");
        assert_eq!(request.volume_id, "h1");
        assert_eq!(request.node_id, "n1");
        assert!(request.readonly);
        assert_eq!(
            request.volume_context.get("a").map(String::as_str),
            Some("b")
        );
        assert_eq!(
            request
                .volume_capability
                .and_then(|c| c.access_mode)
                .map(|m| m.mode),
            Some(v1::volume_capability::access_mode::Mode::SingleNodeSingleWriter as i32)
        );
        let host_path: PersistentVolume = serde_json::from_value(
            json!({"metadata": {"name": "pv-2"}, "spec": {"hostPath": {"path": "/x"}}}),
        )
        .expect("volume");
        assert_eq!(
            publish_request(&host_path, "n1")
                .expect_err("not csi")
                .to_string(),
            "persistentvolume pv-2 is not a CSI volume"
        );
    }
}
