//! `persistentVolumeClaim` (upstream's volume manager resolving a claim to its volume, then the
//! volume's plugin): a `hostPath` or `local` volume is its path on the node; a `csi` volume is
//! staged by its driver once per node (NodeStageVolume, when the driver has the capability) at
//! `<kubelet root>/plugins/kubernetes.io/csi/<driver>/<sha256(volume handle)>/globalmount`, then
//! published (NodePublishVolume) onto `<pod dir>/volumes/kubernetes.io~csi/<volume>/mount`, as
//! upstream's CSI plugin lays it out (`csi_attacher.go`'s MountDevice, `csi_mounter.go`'s SetUp).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use ferry_api::volumes::ephemeral_claim_not_for_pod;
use k8s_openapi::api::core::v1::{PersistentVolumeClaimVolumeSource, Pod};

use super::{ObjectSource, VolumeError};

/// The plugin directory of CSI volumes.
pub const CSI_PLUGIN: &str = "kubernetes.io~csi";

/// What NodeStageVolume and NodePublishVolume are asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsiPublish {
    /// The driver (`spec.csi.driver`).
    pub driver: String,
    /// The volume's id at the driver (`spec.csi.volumeHandle`).
    pub volume_id: String,
    /// Where the volume is to appear.
    pub target: PathBuf,
    /// The node's global mount of the volume: where it is staged, and what the publication is
    /// made from, when the driver stages volumes (`None` otherwise).
    pub staging_target: Option<PathBuf>,
    /// The attachment's publish context (the VolumeAttachment's `attachmentMetadata`), empty
    /// for a driver that does not attach.
    pub publish_context: BTreeMap<String, String>,
    /// Mounted read-only.
    pub read_only: bool,
    /// `spec.csi.volumeAttributes`.
    pub context: BTreeMap<String, String>,
    /// `spec.csi.fsType`.
    pub fs_type: Option<String>,
}

/// The node side of the CSI drivers registered on this node.
#[async_trait]
pub trait CsiPublisher: Send + Sync {
    /// Whether `driver` is registered here.
    fn has_driver(&self, driver: &str) -> bool;
    /// Whether `driver` stages volumes (its node capability STAGE_UNSTAGE_VOLUME).
    async fn stages(&self, driver: &str) -> Result<bool, String>;
    /// NodeStageVolume at `request.staging_target`; the error is the driver's message.
    async fn stage(&self, request: &CsiPublish) -> Result<(), String>;
    /// NodePublishVolume (from `request.staging_target` when set); the error is the driver's
    /// message.
    async fn publish(&self, request: &CsiPublish) -> Result<(), String>;
    /// NodeUnstageVolume of `volume_id` at `staging_target`.
    async fn unstage(
        &self,
        driver: &str,
        volume_id: &str,
        staging_target: &Path,
    ) -> Result<(), String>;
}

/// What a claim's volume is on this node.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    /// A path of the node (`hostPath`, `local`).
    Path {
        /// The path.
        path: String,
        /// The `hostPath` type to check, if any.
        host_path_type: Option<String>,
        /// Mounted read-only.
        read_only: bool,
    },
    /// A CSI volume: driver, handle, attributes.
    Csi {
        /// The driver.
        driver: String,
        /// The volume handle.
        volume_id: String,
        /// Mounted read-only.
        read_only: bool,
        /// Volume attributes.
        context: BTreeMap<String, String>,
        /// The filesystem type.
        fs_type: Option<String>,
    },
}

/// The volume `claim` is bound to, as the node must set it up. The claim of a generic
/// ephemeral volume must be controlled by its pod, `owner`.
pub async fn resolve(
    volume: &str,
    namespace: &str,
    claim: &PersistentVolumeClaimVolumeSource,
    owner: Option<&Pod>,
    source: &dyn ObjectSource,
) -> Result<Resolved, VolumeError> {
    let claim_name = claim.claim_name.as_str();
    let lookup = |e: VolumeError| VolumeError::Lookup {
        volume: volume.to_string(),
        source: Box::new(e),
    };
    let unusable = |message: String| VolumeError::Claim {
        namespace: namespace.to_string(),
        name: claim_name.to_string(),
        message,
    };
    let Some(object) = source
        .persistent_volume_claim(namespace, claim_name)
        .await
        .map_err(lookup)?
    else {
        return Err(unusable(format!(
            "failed to fetch PVC from API server: persistentvolumeclaims {claim_name:?} not found"
        )));
    };
    if let Some(why) = owner.and_then(|pod| ephemeral_claim_not_for_pod(pod, &object)) {
        return Err(unusable(why));
    }
    let volume_name = object
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|v| !v.is_empty());
    let bound = object.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let (Some(volume_name), true) = (volume_name, bound) else {
        return Err(unusable("PVC is not bound".into()));
    };
    let Some(pv) = source
        .persistent_volume(&volume_name)
        .await
        .map_err(lookup)?
    else {
        return Err(unusable(format!(
            "failed to fetch PV {volume_name} from API server: persistentvolumes {volume_name:?} not found"
        )));
    };
    let read_only = claim.read_only.unwrap_or(false);
    let spec = pv.spec.unwrap_or_default();
    if let Some(host_path) = spec.host_path {
        return Ok(Resolved::Path {
            path: host_path.path,
            host_path_type: host_path.type_,
            read_only,
        });
    }
    if let Some(local) = spec.local {
        return Ok(Resolved::Path {
            path: local.path,
            host_path_type: Some("Directory".into()),
            read_only,
        });
    }
    if let Some(csi) = spec.csi {
        return Ok(Resolved::Csi {
            driver: csi.driver,
            volume_id: csi.volume_handle,
            read_only: read_only || csi.read_only.unwrap_or(false),
            context: csi.volume_attributes.unwrap_or_default(),
            fs_type: csi.fs_type,
        });
    }
    Err(VolumeError::UnsupportedType {
        volume: volume.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::volume::StaticObjectSource;

    fn source() -> StaticObjectSource {
        let source = StaticObjectSource::new();
        source.insert_claim(
            serde_json::from_value(json!({"metadata": {"name": "data", "namespace": "default"},
                "spec": {"volumeName": "pv1"}, "status": {"phase": "Bound"}}))
            .unwrap(),
        );
        source.insert_claim(
            serde_json::from_value(
                json!({"metadata": {"name": "pending", "namespace": "default"},
                "spec": {}, "status": {"phase": "Pending"}}),
            )
            .unwrap(),
        );
        source.insert_volume(
            serde_json::from_value(json!({"metadata": {"name": "pv1"},
                "spec": {"csi": {"driver": "local.csi.ferry.dev", "volumeHandle": "h1",
                                 "volumeAttributes": {"a": "b"}}}}))
            .unwrap(),
        );
        source
    }

    fn claim(name: &str) -> PersistentVolumeClaimVolumeSource {
        PersistentVolumeClaimVolumeSource {
            claim_name: name.into(),
            read_only: None,
        }
    }

    #[tokio::test]
    async fn claims_resolve_to_their_volume() {
        let source = source();
        let resolved = resolve("v", "default", &claim("data"), None, &source)
            .await
            .unwrap();
        assert_eq!(
            resolved,
            Resolved::Csi {
                driver: "local.csi.ferry.dev".into(),
                volume_id: "h1".into(),
                read_only: false,
                context: [("a".to_string(), "b".to_string())].into(),
                fs_type: None,
            }
        );
        let err = resolve("v", "default", &claim("pending"), None, &source)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "error processing PVC default/pending: PVC is not bound"
        );
        let err = resolve("v", "default", &claim("nope"), None, &source)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "error processing PVC default/nope: failed to fetch PVC from API server: persistentvolumeclaims \"nope\" not found"
        );
    }

    #[tokio::test]
    async fn an_ephemeral_volumes_claim_must_be_its_pods() {
        let source = source();
        source.insert_claim(
            serde_json::from_value(json!({"metadata": {"name": "app-scratch", "namespace": "default",
                "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "app", "uid": "pod-uid", "controller": true}]},
                "spec": {"volumeName": "pv1"}, "status": {"phase": "Bound"}}))
            .unwrap(),
        );
        let pod = |uid: &str| -> Pod {
            serde_json::from_value(
                json!({"metadata": {"name": "app", "namespace": "default", "uid": uid}}),
            )
            .unwrap()
        };
        let resolved = resolve(
            "scratch",
            "default",
            &claim("app-scratch"),
            Some(&pod("pod-uid")),
            &source,
        )
        .await
        .unwrap();
        assert!(matches!(resolved, Resolved::Csi { .. }), "{resolved:?}");
        // A pod of the same name made again (another uid) does not take the old pod's claim.
        let err = resolve(
            "scratch",
            "default",
            &claim("app-scratch"),
            Some(&pod("new-uid")),
            &source,
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "error processing PVC default/app-scratch: PVC default/app-scratch was not created for pod default/app (pod is not owner)"
        );
    }
}
