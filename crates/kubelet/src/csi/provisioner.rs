//! The external-provisioner and external-resizer in node-deployment mode, for a driver whose
//! volumes live on this node (`local.csi.ferry.dev`):
//!
//! - A claim annotated for the driver (`volume.kubernetes.io/storage-provisioner`) and placed
//!   on this node by the scheduler (`volume.kubernetes.io/selected-node`) gets a volume:
//!   CreateVolume named `pvc-<claim uid>`, then a PersistentVolume of that name pre-bound to the
//!   claim, pinned to the node by its topology, which the PersistentVolume controller binds.
//!   A driver that is out of room gives the claim back to the scheduler (the annotation goes).
//! - A Released volume of the driver on this node with the Delete policy: DeleteVolume, then
//!   the PersistentVolume goes.
//! - A bound claim asking for more than its volume has, of a class that allows expansion:
//!   ControllerExpandVolume, then the volume's and the claim's capacity.
//! - The node's free capacity per StorageClass of the driver, as `CSIStorageCapacity` objects
//!   in `kube-system`, refreshed every minute.
//!
//! Events and their wording are upstream's (`Provisioning`, `ProvisioningSucceeded`,
//! `ProvisioningFailed`, `Resizing`, `VolumeResizeSuccessful`, `VolumeResizeFailed`).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ferry_api::volumes::{
    claim_class, requested, PROVISIONED_BY, SELECTED_NODE, STORAGE_PROVISIONER,
};
use ferry_client::events::{reference, EventType, Recorder};
use ferry_csi::client::CsiClient;
use ferry_csi::v1;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec,
    VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::{CSIStorageCapacity, StorageClass};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt as _;
use kube::{Api, ResourceExt as _};

use super::{access_mode, mount_capability, rpc_error};

/// The finalizer of the volumes this provisioner made with the Delete policy.
pub const FINALIZER: &str = "external-provisioner.volume.kubernetes.io/finalizer";
/// Where capacity objects are kept.
const CAPACITY_NAMESPACE: &str = "kube-system";
/// How often everything is looked at again, besides the watches.
const RESYNC: Duration = Duration::from_secs(30);
/// How often capacity is published.
const CAPACITY_PERIOD: Duration = Duration::from_secs(60);

/// A failed step; logged, and retried at the next resync.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The API server refused.
    #[error(transparent)]
    Api(#[from] kube::Error),
    /// The driver refused.
    #[error("{}", rpc_error(.0))]
    Driver(#[from] tonic::Status),
}

/// The node's provisioner for one driver.
pub struct Provisioner {
    client: kube::Client,
    csi: CsiClient,
    driver: String,
    node: String,
    topology: BTreeMap<String, String>,
    recorder: Recorder,
}

/// A byte count as a quantity: whole GiB or MiB when it is one, else bytes.
pub fn bytes_quantity(bytes: i64) -> Quantity {
    const GI: i64 = 1 << 30;
    const MI: i64 = 1 << 20;
    Quantity(if bytes != 0 && bytes % GI == 0 {
        format!("{}Gi", bytes / GI)
    } else if bytes != 0 && bytes % MI == 0 {
        format!("{}Mi", bytes / MI)
    } else {
        bytes.to_string()
    })
}

fn quantity_bytes(quantity: &ferry_api::quantity::Quantity) -> i64 {
    // Whole bytes, rounded up as upstream's `Value()`.
    quantity.value()
}

impl Provisioner {
    /// A provisioner for `driver` on `node`, whose volumes are reachable at `topology`.
    pub fn new(
        client: kube::Client,
        csi: CsiClient,
        driver: &str,
        node: &str,
        topology: BTreeMap<String, String>,
    ) -> Arc<Provisioner> {
        let recorder = Recorder::new(client.clone(), &format!("{driver}_{node}"), "");
        Arc::new(Provisioner {
            client,
            csi,
            driver: driver.to_string(),
            node: node.to_string(),
            topology,
            recorder,
        })
    }

    /// Watches claims and volumes and publishes capacity until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()> + Send) {
        let claims = {
            let this = self.clone();
            async move {
                let api: Api<PersistentVolumeClaim> = Api::all(this.client.clone());
                let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
                futures::pin_mut!(stream);
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(watcher::Event::Apply(claim) | watcher::Event::InitApply(claim)) => {
                            this.sync_claim_logged(&claim).await
                        }
                        Ok(_) => {}
                        Err(error) => tracing::warn!(%error, "watching claims; retrying"),
                    }
                }
            }
        };
        let volumes = {
            let this = self.clone();
            async move {
                let api: Api<PersistentVolume> = Api::all(this.client.clone());
                let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
                futures::pin_mut!(stream);
                while let Some(event) = stream.next().await {
                    if let Err(error) = &event {
                        tracing::warn!(%error, "watching volumes; retrying");
                    }
                    if let Ok(watcher::Event::Apply(volume) | watcher::Event::InitApply(volume)) =
                        event
                    {
                        if let Err(e) = this.sync_volume(&volume).await {
                            tracing::warn!(volume = %volume.name_any(), error = %e, "deleting a volume");
                        }
                    }
                }
            }
        };
        let periodic = {
            let this = self.clone();
            async move {
                let mut resync = tokio::time::interval(RESYNC);
                let mut capacity = tokio::time::interval(CAPACITY_PERIOD);
                loop {
                    tokio::select! {
                        _ = resync.tick() => this.resync().await,
                        _ = capacity.tick() => {
                            if let Err(e) = this.publish_capacity().await {
                                tracing::warn!(error = %e, "publishing storage capacity");
                            }
                        }
                    }
                }
            }
        };
        tokio::select! {
            _ = shutdown => {}
            _ = claims => {}
            _ = volumes => {}
            _ = periodic => {}
        }
    }

    async fn resync(&self) {
        let claims: Api<PersistentVolumeClaim> = Api::all(self.client.clone());
        if let Ok(list) = claims.list(&Default::default()).await {
            for claim in list {
                self.sync_claim_logged(&claim).await;
            }
        }
        let volumes: Api<PersistentVolume> = Api::all(self.client.clone());
        if let Ok(list) = volumes.list(&Default::default()).await {
            for volume in list {
                let _ = self.sync_volume(&volume).await;
            }
        }
    }

    async fn sync_claim_logged(&self, claim: &PersistentVolumeClaim) {
        if let Err(e) = self.sync_claim(claim).await {
            tracing::warn!(claim = %format!("{}/{}", claim.namespace().unwrap_or_default(), claim.name_any()), error = %e, "provisioning");
        }
    }

    fn event(&self, claim: &PersistentVolumeClaim, warning: bool, reason: &str, message: String) {
        self.recorder.event(
            reference(claim),
            if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason,
            message,
        );
    }

    async fn class(&self, name: &str) -> Result<Option<StorageClass>, kube::Error> {
        Api::<StorageClass>::all(self.client.clone())
            .get_opt(name)
            .await
    }

    /// Provisions or grows `claim` if it is this node's to do.
    pub async fn sync_claim(&self, claim: &PersistentVolumeClaim) -> Result<(), ProvisionError> {
        if claim.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let annotations = claim.annotations();
        let volume_name = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .unwrap_or_default();
        if !volume_name.is_empty() {
            return self.maybe_expand(claim, &volume_name).await;
        }
        if annotations.get(STORAGE_PROVISIONER).map(String::as_str) != Some(self.driver.as_str())
            || annotations.get(SELECTED_NODE).map(String::as_str) != Some(self.node.as_str())
        {
            return Ok(());
        }
        let namespace = claim.namespace().unwrap_or_default();
        let uid = claim.metadata.uid.clone().unwrap_or_default();
        let pv_name = format!("pvc-{uid}");
        let volumes: Api<PersistentVolume> = Api::all(self.client.clone());
        if volumes.get_opt(&pv_name).await?.is_some() {
            return Ok(());
        }
        let class_name = claim_class(claim).to_string();
        let Some(class) = self.class(&class_name).await? else {
            self.event(
                claim,
                true,
                "ProvisioningFailed",
                format!("storageclass.storage.k8s.io {class_name:?} not found"),
            );
            return Ok(());
        };
        self.event(
            claim,
            false,
            "Provisioning",
            format!(
                "External provisioner is provisioning volume for claim \"{namespace}/{}\"",
                claim.name_any()
            ),
        );
        if claim.spec.as_ref().and_then(|s| s.volume_mode.as_deref()) == Some("Block") {
            self.event(
                claim,
                true,
                "ProvisioningFailed",
                format!(
                    "failed to provision volume with StorageClass {class_name:?}: rpc error: code = InvalidArgument desc = volume_capabilities: block access is not supported"
                ),
            );
            return Ok(());
        }
        let modes = claim
            .spec
            .as_ref()
            .and_then(|s| s.access_modes.clone())
            .unwrap_or_default();
        let topology = v1::Topology {
            segments: self.topology.clone().into_iter().collect(),
        };
        let request = v1::CreateVolumeRequest {
            name: pv_name.clone(),
            capacity_range: Some(v1::CapacityRange {
                required_bytes: quantity_bytes(&requested(claim)),
                limit_bytes: 0,
            }),
            volume_capabilities: vec![mount_capability(None, access_mode(&modes))],
            parameters: class
                .parameters
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            accessibility_requirements: Some(v1::TopologyRequirement {
                requisite: vec![topology.clone()],
                preferred: vec![topology],
            }),
            ..Default::default()
        };
        let created = match self.csi.clone().controller.create_volume(request).await {
            Ok(response) => response.into_inner().volume.unwrap_or_default(),
            Err(status) => {
                self.event(
                    claim,
                    true,
                    "ProvisioningFailed",
                    format!(
                        "failed to provision volume with StorageClass {class_name:?}: {}",
                        rpc_error(&status)
                    ),
                );
                if status.code() == tonic::Code::ResourceExhausted {
                    // No room here: let the scheduler pick another node.
                    let patch =
                        serde_json::json!({"metadata": {"annotations": {SELECTED_NODE: null}}});
                    Api::<PersistentVolumeClaim>::namespaced(self.client.clone(), &namespace)
                        .patch(
                            &claim.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(&patch),
                        )
                        .await?;
                }
                return Err(status.into());
            }
        };
        let volume = self.volume_object(claim, &class, &pv_name, &created, modes);
        match volumes.create(&PostParams::default(), &volume).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        self.event(
            claim,
            false,
            "ProvisioningSucceeded",
            format!("Successfully provisioned volume {pv_name}"),
        );
        Ok(())
    }

    /// The PersistentVolume of a created volume, pre-bound to its claim.
    fn volume_object(
        &self,
        claim: &PersistentVolumeClaim,
        class: &StorageClass,
        name: &str,
        created: &v1::Volume,
        modes: Vec<String>,
    ) -> PersistentVolume {
        let terms: Vec<NodeSelectorTerm> = created
            .accessible_topology
            .iter()
            .map(|t| NodeSelectorTerm {
                match_expressions: Some(
                    t.segments
                        .iter()
                        .map(|(k, v)| NodeSelectorRequirement {
                            key: k.clone(),
                            operator: "In".into(),
                            values: Some(vec![v.clone()]),
                        })
                        .collect(),
                ),
                match_fields: None,
            })
            .collect();
        PersistentVolume {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                annotations: Some([(PROVISIONED_BY.to_string(), self.driver.clone())].into()),
                // The storage goes before the object, even when the object is deleted by
                // hand (upstream's external-provisioner finalizer on Delete volumes).
                finalizers: (class.reclaim_policy.as_deref().unwrap_or("Delete") == "Delete")
                    .then(|| vec![FINALIZER.to_string()]),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                capacity: Some(
                    [(
                        "storage".to_string(),
                        bytes_quantity(created.capacity_bytes),
                    )]
                    .into(),
                ),
                access_modes: Some(modes),
                persistent_volume_reclaim_policy: Some(
                    class
                        .reclaim_policy
                        .clone()
                        .unwrap_or_else(|| "Delete".into()),
                ),
                storage_class_name: class.metadata.name.clone(),
                mount_options: class.mount_options.clone(),
                volume_mode: Some("Filesystem".into()),
                claim_ref: Some(ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("PersistentVolumeClaim".into()),
                    namespace: claim.namespace(),
                    name: claim.metadata.name.clone(),
                    uid: claim.metadata.uid.clone(),
                    resource_version: claim.metadata.resource_version.clone(),
                    field_path: None,
                }),
                csi: Some(CSIPersistentVolumeSource {
                    driver: self.driver.clone(),
                    volume_handle: created.volume_id.clone(),
                    volume_attributes: Some(created.volume_context.clone().into_iter().collect()),
                    ..Default::default()
                }),
                node_affinity: (!terms.is_empty()).then_some(VolumeNodeAffinity {
                    required: Some(NodeSelector {
                        node_selector_terms: terms,
                    }),
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn is_mine(&self, volume: &PersistentVolume) -> bool {
        volume.annotations().get(PROVISIONED_BY) == Some(&self.driver)
            && volume
                .spec
                .as_ref()
                .and_then(|s| s.node_affinity.as_ref())
                .and_then(|a| a.required.as_ref())
                .is_some_and(|r| {
                    r.node_selector_terms.iter().any(|t| {
                        t.match_expressions.iter().flatten().all(|e| {
                            self.topology
                                .get(&e.key)
                                .is_some_and(|v| e.values.as_ref().is_some_and(|vs| vs.contains(v)))
                        })
                    })
                })
    }

    /// Deletes a Released volume of this node whose policy is Delete.
    pub async fn sync_volume(&self, volume: &PersistentVolume) -> Result<(), ProvisionError> {
        if !self.is_mine(volume) {
            return Ok(());
        }
        let phase = volume.status.as_ref().and_then(|s| s.phase.as_deref());
        let delete = volume
            .spec
            .as_ref()
            .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
            == Some("Delete");
        let finalized = volume.finalizers().iter().any(|f| f == FINALIZER);
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        if volume.metadata.deletion_timestamp.is_some() {
            // Deleted (by us below, or by hand): once unbound, the storage, then our finalizer.
            if !finalized || phase == Some("Bound") {
                return Ok(());
            }
            self.delete_storage(volume).await?;
            let rest: Vec<&String> = volume
                .finalizers()
                .iter()
                .filter(|f| *f != FINALIZER)
                .collect();
            let patch = serde_json::json!({"metadata": {"finalizers": rest,
                "resourceVersion": volume.metadata.resource_version}});
            return match api
                .patch(
                    &volume.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
                Err(e) => Err(e.into()),
            };
        }
        if phase != Some("Released") || !delete {
            return Ok(());
        }
        self.delete_storage(volume).await?;
        match api
            .delete(&volume.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// DeleteVolume of a volume's handle (idempotent at the driver).
    async fn delete_storage(&self, volume: &PersistentVolume) -> Result<(), ProvisionError> {
        let handle = volume
            .spec
            .as_ref()
            .and_then(|s| s.csi.as_ref())
            .map(|c| c.volume_handle.clone())
            .unwrap_or_default();
        self.csi
            .clone()
            .controller
            .delete_volume(v1::DeleteVolumeRequest { volume_id: handle })
            .await?;
        Ok(())
    }

    /// Grows the volume of a bound claim asking for more (the external-resizer).
    async fn maybe_expand(
        &self,
        claim: &PersistentVolumeClaim,
        volume_name: &str,
    ) -> Result<(), ProvisionError> {
        let volumes: Api<PersistentVolume> = Api::all(self.client.clone());
        let Some(volume) = volumes.get_opt(volume_name).await? else {
            return Ok(());
        };
        if !self.is_mine(&volume) {
            return Ok(());
        }
        let wanted = requested(claim);
        let capacity = ferry_api::volumes::capacity(&volume);
        let claims: Api<PersistentVolumeClaim> =
            Api::namespaced(self.client.clone(), &claim.namespace().unwrap_or_default());
        let status_capacity = claim
            .status
            .as_ref()
            .and_then(|s| s.capacity.as_ref())
            .and_then(|c| c.get("storage"))
            .and_then(|q| ferry_api::quantity::Quantity::parse(&q.0).ok());
        if wanted <= capacity {
            // Grown before; the claim's status may still show the old size.
            if status_capacity.is_some_and(|c| c < capacity) {
                let storage = volume
                    .spec
                    .as_ref()
                    .and_then(|s| s.capacity.clone())
                    .unwrap_or_default();
                let patch = serde_json::json!({"status": {"capacity": storage}});
                claims
                    .patch_status(
                        &claim.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await?;
            }
            return Ok(());
        }
        let class_name = claim_class(claim).to_string();
        let allowed = self
            .class(&class_name)
            .await?
            .is_some_and(|c| c.allow_volume_expansion == Some(true));
        if !allowed {
            return Ok(());
        }
        self.event(
            claim,
            false,
            "Resizing",
            format!("External resizer is resizing volume {volume_name}"),
        );
        let handle = volume
            .spec
            .as_ref()
            .and_then(|s| s.csi.as_ref())
            .map(|c| c.volume_handle.clone())
            .unwrap_or_default();
        let response = self
            .csi
            .clone()
            .controller
            .controller_expand_volume(v1::ControllerExpandVolumeRequest {
                volume_id: handle,
                capacity_range: Some(v1::CapacityRange {
                    required_bytes: quantity_bytes(&wanted),
                    limit_bytes: 0,
                }),
                volume_capability: None,
            })
            .await;
        let bytes = match response {
            Ok(r) => r.into_inner().capacity_bytes,
            Err(status) => {
                self.event(
                    claim,
                    true,
                    "VolumeResizeFailed",
                    format!(
                        "resize volume {volume_name:?} by resizer {:?} failed: {}",
                        self.driver,
                        rpc_error(&status)
                    ),
                );
                return Err(status.into());
            }
        };
        let storage = serde_json::json!({"storage": bytes_quantity(bytes)});
        volumes
            .patch(
                volume_name,
                &PatchParams::default(),
                &Patch::Merge(&serde_json::json!({"spec": {"capacity": storage}})),
            )
            .await?;
        claims
            .patch_status(
                &claim.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&serde_json::json!({"status": {"capacity": storage}})),
            )
            .await?;
        self.event(
            claim,
            false,
            "VolumeResizeSuccessful",
            "Resize volume succeeded".into(),
        );
        Ok(())
    }

    /// Publishes the node's free capacity for each StorageClass of the driver.
    pub async fn publish_capacity(&self) -> Result<(), ProvisionError> {
        let classes = Api::<StorageClass>::all(self.client.clone())
            .list(&Default::default())
            .await?;
        let api: Api<CSIStorageCapacity> = Api::namespaced(self.client.clone(), CAPACITY_NAMESPACE);
        for class in classes.into_iter().filter(|c| c.provisioner == self.driver) {
            let class_name = class.name_any();
            let answer = self
                .csi
                .clone()
                .controller
                .get_capacity(v1::GetCapacityRequest {
                    volume_capabilities: vec![mount_capability(
                        None,
                        v1::volume_capability::access_mode::Mode::SingleNodeMultiWriter,
                    )],
                    parameters: class
                        .parameters
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .collect(),
                    accessible_topology: Some(v1::Topology {
                        segments: self.topology.clone().into_iter().collect(),
                    }),
                })
                .await?
                .into_inner();
            let name = capacity_name(&self.node, &class_name);
            let object = CSIStorageCapacity {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(CAPACITY_NAMESPACE.into()),
                    labels: Some(
                        [
                            (
                                "csi.storage.k8s.io/drivername".to_string(),
                                self.driver.clone(),
                            ),
                            (
                                "csi.storage.k8s.io/managed-by".to_string(),
                                format!("external-provisioner-{}", self.node),
                            ),
                        ]
                        .into(),
                    ),
                    ..Default::default()
                },
                storage_class_name: class_name,
                node_topology: Some(LabelSelector {
                    match_labels: Some(self.topology.clone()),
                    match_expressions: None,
                }),
                capacity: Some(bytes_quantity(answer.available_capacity)),
                maximum_volume_size: answer.maximum_volume_size.map(bytes_quantity),
            };
            match api.get_opt(&name).await? {
                None => {
                    api.create(&PostParams::default(), &object).await?;
                }
                Some(existing)
                    if existing.capacity != object.capacity
                        || existing.maximum_volume_size != object.maximum_volume_size =>
                {
                    let mut updated = object.clone();
                    updated.metadata.resource_version = existing.metadata.resource_version;
                    api.replace(&name, &PostParams::default(), &updated).await?;
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// The CSIStorageCapacity name of a node and class: `csisc-<node>-<class>`, cut to a valid
/// name with a hash of both when too long.
pub fn capacity_name(node: &str, class: &str) -> String {
    let name = format!("csisc-{node}-{class}");
    if name.len() <= 253 {
        return name;
    }
    let mut hash: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        hash = (hash ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    format!("{}-{hash:08x}", &name[..240])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_as_quantities() {
        assert_eq!(bytes_quantity(1 << 30).0, "1Gi");
        assert_eq!(bytes_quantity(3 << 20).0, "3Mi");
        assert_eq!(bytes_quantity(1000).0, "1000");
        assert_eq!(bytes_quantity(0).0, "0");
        let q = ferry_api::quantity::Quantity::parse("2Gi").unwrap();
        assert_eq!(quantity_bytes(&q), 2 << 30);
        let q = ferry_api::quantity::Quantity::parse("1G").unwrap();
        assert_eq!(quantity_bytes(&q), 1_000_000_000);
    }

    #[test]
    fn capacity_names_fit() {
        assert_eq!(capacity_name("n1", "local"), "csisc-n1-local");
        assert!(capacity_name(&"n".repeat(200), &"c".repeat(200)).len() <= 253);
    }
}
