//! The PersistentVolume controller, as upstream's `pkg/controller/volume/persistentvolume`:
//! binds claims to volumes and keeps both phases true.
//!
//! - A claim without a volume gets the smallest Available volume of its class whose access
//!   modes, volume mode, selector and size fit ([`find_best_match`]); a volume pre-bound to it
//!   (`claimRef`) or a claim naming its volume (`volumeName`) are bound as asked. Binding is
//!   two writes, as upstream: the volume's `claimRef` first, then the claim's `volumeName`,
//!   each followed by its status (volume Bound; claim Bound with the volume's capacity and
//!   access modes).
//! - With no volume, the claim's StorageClass decides: `WaitForFirstConsumer` waits for the
//!   scheduler to pick a node (`volume.kubernetes.io/selected-node`), then — as for
//!   `Immediate` — the claim is annotated for its class's external provisioner
//!   (`volume.kubernetes.io/storage-provisioner`), which creates the volume.
//! - A volume whose claim is gone is Released; `Retain` keeps it so, `Delete` leaves it to its
//!   provisioner (`pv.kubernetes.io/provisioned-by`) or fails it when it has none; a claim
//!   whose volume is gone is Lost.
//!
//! The decisions are pure functions at the bottom with table tests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ferry_api::volumes::{
    claim_class, claim_reference, find_best_match, phase_of_volume, refers_to, satisfies,
};
use ferry_client::events::{reference, EventType};
use k8s_openapi::api::core::v1::{
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimStatus, PersistentVolumeStatus,
};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::PostParams;
use kube::{Api, ResourceExt as _};

use crate::informer::{key_of, Key};
use crate::queue::{Queue, Reconciler};
use crate::util::{api_code, now};
use crate::{ApiContext as _, Context, Error};

pub use ferry_api::volumes::{
    BETA_STORAGE_PROVISIONER, BIND_COMPLETED, BOUND_BY_CONTROLLER, PROVISIONED_BY, SELECTED_NODE,
    STORAGE_PROVISIONER,
};
const COMPONENT: &str = "persistentvolume-controller";
/// How often every object is looked at again (upstream's `--pvclaimbinder-sync-period`).
const RESYNC: Duration = Duration::from_secs(15);

/// A claim or a volume to sync.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Item {
    /// A claim by namespace and name.
    Claim(Key),
    /// A volume by name.
    Volume(String),
}

/// The controller.
pub struct PersistentVolumeController {
    ctx: Arc<Context>,
    queue: Arc<Queue<Item>>,
}

impl Reconciler for PersistentVolumeController {
    type Key = Item;
    type Error = Error;
    const NAME: &'static str = "persistentvolume-binder";

    fn queue(&self) -> &Arc<Queue<Item>> {
        &self.queue
    }

    async fn reconcile(self: Arc<Self>, item: Item) -> Result<Option<Duration>, Error> {
        match item {
            Item::Claim(key) => self.sync_claim(key).await,
            Item::Volume(name) => self.sync_volume(name).await,
        }
    }
}

fn is(annotations: &BTreeMap<String, String>, key: &str) -> bool {
    annotations.contains_key(key)
}

impl PersistentVolumeController {
    /// Registers the handlers.
    pub fn new(ctx: Arc<Context>) -> Arc<PersistentVolumeController> {
        let controller = Arc::new(PersistentVolumeController {
            ctx: ctx.clone(),
            queue: Queue::new(),
        });
        let c = controller.clone();
        ctx.persistent_volume_claims.add_handler(move |old, new| {
            if let Some(claim) = new.or(old) {
                c.queue.add(Item::Claim(key_of(claim.as_ref())));
                if let Some(volume) = claim.spec.as_ref().and_then(|s| s.volume_name.clone()) {
                    c.queue.add(Item::Volume(volume));
                }
            }
        });
        let c = controller.clone();
        ctx.persistent_volumes.add_handler(move |old, new| {
            let Some(volume) = new.or(old) else { return };
            c.queue.add(Item::Volume(volume.name_any()));
            match volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) {
                Some(r) => c.queue.add(Item::Claim((
                    r.namespace.clone().unwrap_or_default(),
                    r.name.clone().unwrap_or_default(),
                ))),
                // A volume became free: the claims waiting may have it.
                None if new.is_some() => c.enqueue_pending_claims(),
                None => {}
            }
        });
        controller
    }

    fn enqueue_pending_claims(&self) {
        for claim in self.ctx.persistent_volume_claims.list() {
            if claim
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.as_deref())
                .is_none_or(str::is_empty)
            {
                self.queue.add(Item::Claim(key_of(claim.as_ref())));
            }
        }
    }

    fn event(
        &self,
        object: &impl kube::Resource<DynamicType = ()>,
        warning: bool,
        reason: &str,
        message: String,
    ) {
        self.ctx.recorder(COMPONENT).event(
            reference(object),
            if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason,
            message,
        );
    }

    fn class(&self, claim: &PersistentVolumeClaim) -> Option<Arc<StorageClass>> {
        let name = claim_class(claim);
        (!name.is_empty())
            .then(|| self.ctx.storage_classes.get("", name))
            .flatten()
    }

    async fn sync_claim(&self, key: Key) -> Result<Option<Duration>, Error> {
        let Some(claim) = self.ctx.persistent_volume_claims.get(&key.0, &key.1) else {
            return Ok(None);
        };
        if claim.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let volume_name = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .filter(|v| !v.is_empty());
        let bound = is(claim.annotations(), BIND_COMPLETED);
        let Some(volume_name) = volume_name else {
            if bound {
                // Bound before, and the volume name was taken away: lost.
                return self.claim_phase(&claim, "Lost", None).await;
            }
            return self.sync_unbound_claim(&claim).await;
        };
        match self.ctx.persistent_volumes.get("", &volume_name) {
            None if bound => {
                self.event(
                    claim.as_ref(),
                    true,
                    "ClaimLost",
                    "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!".into(),
                );
                self.claim_phase(&claim, "Lost", None).await
            }
            None => {
                self.claim_phase(&claim, "Pending", None).await?;
                Ok(Some(RESYNC))
            }
            Some(volume) => {
                let claim_ref = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
                match claim_ref {
                    None => {
                        if !bound {
                            if let Err(why) = satisfies(&volume, &claim) {
                                self.event(
                                    claim.as_ref(),
                                    true,
                                    "VolumeMismatch",
                                    format!(
                                        "Cannot bind to requested volume {volume_name:?}: {why}"
                                    ),
                                );
                                self.claim_phase(&claim, "Pending", None).await?;
                                return Ok(Some(RESYNC));
                            }
                        }
                        self.bind(&volume, &claim).await
                    }
                    Some(r) if refers_to(r, &claim) => self.bind(&volume, &claim).await,
                    Some(_) if bound => {
                        self.event(
                            claim.as_ref(),
                            true,
                            "ClaimMisbound",
                            "Two claims are bound to the same volume, this one is bound incorrectly".into(),
                        );
                        self.claim_phase(&claim, "Lost", None).await
                    }
                    Some(_) => {
                        self.claim_phase(&claim, "Pending", None).await?;
                        Ok(Some(RESYNC))
                    }
                }
            }
        }
    }

    async fn sync_unbound_claim(
        &self,
        claim: &PersistentVolumeClaim,
    ) -> Result<Option<Duration>, Error> {
        let class = self.class(claim);
        let delay = class
            .as_ref()
            .is_some_and(|c| c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"));
        let volumes = self.ctx.persistent_volumes.list();
        if let Some(volume) = find_best_match(claim, &volumes, None, delay, &[]) {
            return self.bind(&volume, claim).await;
        }
        let class_name = claim_class(claim);
        if delay && !is(claim.annotations(), SELECTED_NODE) {
            self.event(
                claim,
                false,
                "WaitForFirstConsumer",
                "waiting for first consumer to be created before binding".into(),
            );
        } else if !class_name.is_empty() {
            match &class {
                None => self.event(
                    claim,
                    true,
                    "ProvisioningFailed",
                    format!("storageclass.storage.k8s.io {class_name:?} not found"),
                ),
                Some(class) if class.provisioner == ferry_api::volumes::NO_PROVISIONER => self
                    .event(
                        claim,
                        false,
                        "WaitForPodScheduled",
                        "waiting for pod to be scheduled".into(),
                    ),
                Some(class) => {
                    self.annotate_for_provisioner(claim, &class.provisioner)
                        .await?;
                    self.event(
                        claim,
                        false,
                        "ExternalProvisioning",
                        format!(
                            "Waiting for a volume to be created either by the external provisioner '{}' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.",
                            class.provisioner
                        ),
                    );
                }
            }
        } else {
            self.event(
                claim,
                false,
                "FailedBinding",
                "no persistent volumes available for this claim and no storage class is set".into(),
            );
        }
        self.claim_phase(claim, "Pending", None).await?;
        Ok(Some(RESYNC))
    }

    async fn annotate_for_provisioner(
        &self,
        claim: &PersistentVolumeClaim,
        provisioner: &str,
    ) -> Result<(), Error> {
        let annotations = claim.annotations();
        if annotations.get(STORAGE_PROVISIONER).map(String::as_str) == Some(provisioner)
            && annotations
                .get(BETA_STORAGE_PROVISIONER)
                .map(String::as_str)
                == Some(provisioner)
        {
            return Ok(());
        }
        let mut updated = claim.clone();
        let annotations = updated
            .metadata
            .annotations
            .get_or_insert_with(Default::default);
        annotations.insert(STORAGE_PROVISIONER.into(), provisioner.into());
        annotations.insert(BETA_STORAGE_PROVISIONER.into(), provisioner.into());
        let api: Api<PersistentVolumeClaim> = Api::namespaced(
            self.ctx.client.clone(),
            &claim.namespace().unwrap_or_default(),
        );
        match api
            .replace(&claim.name_any(), &PostParams::default(), &updated)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if matches!(api_code(&e), Some(404 | 409)) => Ok(()),
            Err(e) => Err(e).context("annotating a claim for its provisioner"),
        }
    }

    /// Binds `volume` and `claim` (upstream's `bind`): the volume's claim reference and status,
    /// then the claim's volume name, annotations and status.
    async fn bind(
        &self,
        volume: &PersistentVolume,
        claim: &PersistentVolumeClaim,
    ) -> Result<Option<Duration>, Error> {
        let volumes: Api<PersistentVolume> = Api::all(self.ctx.client.clone());
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(
            self.ctx.client.clone(),
            &claim.namespace().unwrap_or_default(),
        );
        let mut volume = volume.clone();
        let wanted_ref = claim_reference(claim);
        let current_ref = volume.spec.as_ref().and_then(|s| s.claim_ref.clone());
        if current_ref
            .as_ref()
            .map(|r| (&r.uid, &r.name, &r.namespace))
            != Some((&wanted_ref.uid, &wanted_ref.name, &wanted_ref.namespace))
        {
            if current_ref.is_none() {
                volume
                    .metadata
                    .annotations
                    .get_or_insert_with(Default::default)
                    .insert(BOUND_BY_CONTROLLER.into(), "yes".into());
            }
            volume.spec.get_or_insert_with(Default::default).claim_ref = Some(wanted_ref);
            volume = match volumes
                .replace(&volume.name_any(), &PostParams::default(), &volume)
                .await
            {
                Ok(v) => v,
                Err(e) if matches!(api_code(&e), Some(404 | 409)) => {
                    return Ok(Some(Duration::from_millis(100)))
                }
                Err(e) => return Err(e).context("binding a volume to its claim"),
            };
        }
        if phase_of_volume(&volume) != "Bound" {
            volume.status = Some(volume_status(&volume, "Bound", None));
            volume = match volumes
                .replace_status(&volume.name_any(), &PostParams::default(), &volume)
                .await
            {
                Ok(v) => v,
                Err(e) if matches!(api_code(&e), Some(404 | 409)) => {
                    return Ok(Some(Duration::from_millis(100)))
                }
                Err(e) => return Err(e).context("updating a volume's phase"),
            };
        }
        let mut claim = claim.clone();
        let volume_name = volume.name_any();
        let needs_update = claim.spec.as_ref().and_then(|s| s.volume_name.as_deref())
            != Some(volume_name.as_str())
            || !is(claim.annotations(), BIND_COMPLETED);
        if needs_update {
            let by_controller = claim
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.as_deref())
                .is_none_or(str::is_empty);
            claim.spec.get_or_insert_with(Default::default).volume_name = Some(volume_name.clone());
            let annotations = claim
                .metadata
                .annotations
                .get_or_insert_with(Default::default);
            annotations.insert(BIND_COMPLETED.into(), "yes".into());
            if by_controller {
                annotations.insert(BOUND_BY_CONTROLLER.into(), "yes".into());
            }
            claim = match claims
                .replace(&claim.name_any(), &PostParams::default(), &claim)
                .await
            {
                Ok(c) => c,
                Err(e) if matches!(api_code(&e), Some(404 | 409)) => {
                    return Ok(Some(Duration::from_millis(100)))
                }
                Err(e) => return Err(e).context("binding a claim to its volume"),
            };
        }
        self.claim_phase(&claim, "Bound", Some(&volume)).await?;
        Ok(None)
    }

    /// Sets a claim's phase (and, when Bound, its capacity and access modes from `volume`).
    async fn claim_phase(
        &self,
        claim: &PersistentVolumeClaim,
        phase: &str,
        volume: Option<&PersistentVolume>,
    ) -> Result<Option<Duration>, Error> {
        let status = claim_status(claim, phase, volume);
        if claim.status.as_ref() == Some(&status) {
            return Ok(None);
        }
        let mut updated = claim.clone();
        updated.status = Some(status);
        let api: Api<PersistentVolumeClaim> = Api::namespaced(
            self.ctx.client.clone(),
            &claim.namespace().unwrap_or_default(),
        );
        match api
            .replace_status(&claim.name_any(), &PostParams::default(), &updated)
            .await
        {
            Ok(_) => Ok(None),
            Err(e) if matches!(api_code(&e), Some(404 | 409)) => {
                Ok(Some(Duration::from_millis(100)))
            }
            Err(e) => Err(e).context("updating a claim's phase"),
        }
    }

    async fn volume_phase(
        &self,
        volume: &PersistentVolume,
        phase: &str,
        message: Option<String>,
    ) -> Result<(), Error> {
        if phase_of_volume(volume) == phase
            && volume.status.as_ref().and_then(|s| s.message.clone()) == message
        {
            return Ok(());
        }
        let mut updated = volume.clone();
        updated.status = Some(volume_status(volume, phase, message));
        let api: Api<PersistentVolume> = Api::all(self.ctx.client.clone());
        match api
            .replace_status(&volume.name_any(), &PostParams::default(), &updated)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if matches!(api_code(&e), Some(404 | 409)) => Ok(()),
            Err(e) => Err(e).context("updating a volume's phase"),
        }
    }

    async fn sync_volume(&self, name: String) -> Result<Option<Duration>, Error> {
        let Some(volume) = self.ctx.persistent_volumes.get("", &name) else {
            return Ok(None);
        };
        if volume.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let claim_ref = volume.spec.as_ref().and_then(|s| s.claim_ref.clone());
        let Some(claim_ref) = claim_ref else {
            self.volume_phase(&volume, "Available", None).await?;
            return Ok(None);
        };
        if claim_ref.uid.as_deref().is_none_or(str::is_empty) {
            // Pre-bound by a user to a claim that does not exist yet.
            self.volume_phase(&volume, "Available", None).await?;
            return Ok(None);
        }
        let claim = self.ctx.persistent_volume_claims.get(
            claim_ref.namespace.as_deref().unwrap_or(""),
            claim_ref.name.as_deref().unwrap_or(""),
        );
        let claim = claim.filter(|c| c.metadata.uid == claim_ref.uid);
        match claim {
            None => {
                // The claim is gone — unless the cache is behind (a claim just made, seen by
                // the volume's writer first): ask the API server, as upstream does.
                let live = Api::<PersistentVolumeClaim>::namespaced(
                    self.ctx.client.clone(),
                    claim_ref.namespace.as_deref().unwrap_or(""),
                )
                .get_opt(claim_ref.name.as_deref().unwrap_or(""))
                .await
                .context("reading a volume's claim")?;
                if live.is_some_and(|c| c.metadata.uid == claim_ref.uid) {
                    return Ok(Some(Duration::from_millis(500)));
                }
                // Released, then reclaimed.
                if !matches!(phase_of_volume(&volume), "Released" | "Failed") {
                    self.volume_phase(&volume, "Released", None).await?;
                }
                self.reclaim(&volume).await?;
                Ok(None)
            }
            Some(claim) => {
                let claim_volume = claim
                    .spec
                    .as_ref()
                    .and_then(|s| s.volume_name.clone())
                    .unwrap_or_default();
                if claim_volume.is_empty() {
                    // The claim is being bound to this volume: finish from the claim's side.
                    self.queue.add(Item::Claim(key_of(claim.as_ref())));
                    Ok(None)
                } else if claim_volume == name {
                    self.volume_phase(&volume, "Bound", None).await?;
                    Ok(None)
                } else if is(volume.annotations(), BOUND_BY_CONTROLLER) {
                    // The claim went to another volume: this one is free again.
                    let mut unbound = (*volume).clone();
                    if let Some(spec) = unbound.spec.as_mut() {
                        spec.claim_ref = None;
                    }
                    if let Some(a) = unbound.metadata.annotations.as_mut() {
                        a.remove(BOUND_BY_CONTROLLER);
                    }
                    let api: Api<PersistentVolume> = Api::all(self.ctx.client.clone());
                    match api.replace(&name, &PostParams::default(), &unbound).await {
                        Ok(_) | Err(kube::Error::Api(_)) => Ok(None),
                        Err(e) => Err(e).context("unbinding a volume"),
                    }
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// Upstream's `reclaimVolume` for a Released volume.
    async fn reclaim(&self, volume: &PersistentVolume) -> Result<(), Error> {
        if phase_of_volume(volume) == "Failed" {
            return Ok(());
        }
        let policy = volume
            .spec
            .as_ref()
            .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
            .unwrap_or("Retain");
        match policy {
            "Retain" => Ok(()),
            "Delete" if is(volume.annotations(), PROVISIONED_BY) => {
                // Its provisioner deletes the storage and then the volume.
                Ok(())
            }
            "Delete" => {
                let message = format!(
                    "error getting deleter volume plugin for volume {:?}: no deletable volume plugin matched",
                    volume.name_any()
                );
                self.event(volume, true, "VolumeFailedDelete", message.clone());
                self.volume_phase(volume, "Failed", Some(message)).await
            }
            _ => {
                let message = "No recycler plugin found for the volume!".to_string();
                self.event(volume, true, "VolumeFailedRecycle", message.clone());
                self.volume_phase(volume, "Failed", Some(message)).await
            }
        }
    }
}

/// A claim's status in `phase`; Bound takes the volume's capacity and access modes.
pub fn claim_status(
    claim: &PersistentVolumeClaim,
    phase: &str,
    volume: Option<&PersistentVolume>,
) -> PersistentVolumeClaimStatus {
    let mut status = claim.status.clone().unwrap_or_default();
    status.phase = Some(phase.into());
    match (phase, volume) {
        ("Bound", Some(volume)) => {
            let spec = volume.spec.as_ref();
            status.capacity = spec.and_then(|s| s.capacity.clone());
            status.access_modes = spec.and_then(|s| s.access_modes.clone());
        }
        ("Bound", None) => {}
        _ => {
            status.capacity = None;
            status.access_modes = None;
        }
    }
    status
}

/// A volume's status in `phase`, with the transition time moved when the phase changes.
pub fn volume_status(
    volume: &PersistentVolume,
    phase: &str,
    message: Option<String>,
) -> PersistentVolumeStatus {
    let mut status = volume.status.clone().unwrap_or_default();
    if status.phase.as_deref() != Some(phase) {
        status.last_phase_transition_time = Some(now());
    }
    status.phase = Some(phase.into());
    status.message = message;
    status.reason = None;
    status
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn statuses_follow_the_phase() {
        let v: PersistentVolume = serde_json::from_value(json!({"metadata": {"name": "v"},
            "spec": {"capacity": {"storage": "3Gi"}, "accessModes": ["ReadWriteOnce"]}}))
        .unwrap();
        let c: PersistentVolumeClaim =
            serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap();
        let bound = claim_status(&c, "Bound", Some(&v));
        assert_eq!(bound.phase.as_deref(), Some("Bound"));
        assert_eq!(bound.capacity.unwrap()["storage"].0, "3Gi");
        assert_eq!(bound.access_modes.unwrap(), vec!["ReadWriteOnce"]);
        let pending = claim_status(&c, "Pending", None);
        assert!(pending.capacity.is_none());
        let released = volume_status(&v, "Released", None);
        assert_eq!(released.phase.as_deref(), Some("Released"));
        assert!(released.last_phase_transition_time.is_some());
    }
}
