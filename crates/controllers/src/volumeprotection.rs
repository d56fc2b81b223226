//! The pvc-protection and pv-protection controllers (upstream's
//! `pkg/controller/volume/pvcprotection` and `pvprotection`): a claim keeps its
//! `kubernetes.io/pvc-protection` finalizer while a scheduled, running pod uses it, and a
//! volume its `kubernetes.io/pv-protection` finalizer while it is Bound; once deleted and
//! unused they go. Objects made before the StorageObjectInUseProtection admission plugin get
//! the finalizer added.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::PostParams;
use kube::{Api, Resource, ResourceExt as _};

use crate::informer::{key_of, Key};
use crate::persistentvolume::Item;
use crate::queue::{Queue, Reconciler};
use crate::util::api_code;
use crate::{ApiContext as _, Context, Error};

/// The claim finalizer.
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
/// The volume finalizer.
pub const PV_PROTECTION: &str = "kubernetes.io/pv-protection";

/// Both controllers, on one queue.
pub struct VolumeProtectionController {
    /// The claims' half (pvc-protection-controller).
    ctx: Arc<Context>,
    /// The volumes' half's client (pv-protection-controller).
    volume_client: kube::Client,
    queue: Arc<Queue<Item>>,
}

impl Reconciler for VolumeProtectionController {
    type Key = Item;
    type Error = Error;
    const NAME: &'static str = "volume-protection";

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

/// The claims `pod` names (its `persistentVolumeClaim` volumes and generic ephemeral ones).
pub fn claims_of(pod: &Pod) -> Vec<String> {
    ferry_api::volumes::pod_claims(pod)
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

/// Whether `pod` uses the claim `claim` (upstream's `podUsesPVC`): scheduled, not finished,
/// naming it.
pub fn uses(pod: &Pod, claim: &str) -> bool {
    let scheduled = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    scheduled && !finished && claims_of(pod).iter().any(|c| c == claim)
}

fn finalizers<K: Resource>(object: &K) -> &[String] {
    object.meta().finalizers.as_deref().unwrap_or_default()
}

impl VolumeProtectionController {
    /// Registers the handlers.
    pub fn new(ctx: Arc<Context>) -> Arc<VolumeProtectionController> {
        let volume_client = ctx.client.clone();
        Self::with_volume_client(ctx, volume_client)
    }

    /// Registers the handlers; volumes' finalizers are written through `volume_client`.
    pub fn with_volume_client(
        ctx: Arc<Context>,
        volume_client: kube::Client,
    ) -> Arc<VolumeProtectionController> {
        let controller = Arc::new(VolumeProtectionController {
            ctx: ctx.clone(),
            volume_client,
            queue: Queue::new(),
        });
        let c = controller.clone();
        ctx.persistent_volume_claims.add_handler(move |_, new| {
            if let Some(claim) = new {
                c.queue.add(Item::Claim(key_of(claim.as_ref())));
            }
        });
        let c = controller.clone();
        ctx.persistent_volumes.add_handler(move |_, new| {
            if let Some(volume) = new {
                c.queue.add(Item::Volume(volume.name_any()));
            }
        });
        let c = controller.clone();
        ctx.pods.add_handler(move |old, new| {
            // A pod that stops using a claim may free one being deleted.
            let Some(pod) = old.or(new) else { return };
            let namespace = pod.namespace().unwrap_or_default();
            for claim in claims_of(pod) {
                let deleting = c
                    .ctx
                    .persistent_volume_claims
                    .get(&namespace, &claim)
                    .is_some_and(|p| p.metadata.deletion_timestamp.is_some());
                if deleting {
                    c.queue.add(Item::Claim((namespace.clone(), claim)));
                }
            }
        });
        controller
    }

    async fn sync_claim(&self, key: Key) -> Result<Option<Duration>, Error> {
        let Some(claim) = self.ctx.persistent_volume_claims.get(&key.0, &key.1) else {
            return Ok(None);
        };
        let has = finalizers(claim.as_ref())
            .iter()
            .any(|f| f == PVC_PROTECTION);
        let deleting = claim.metadata.deletion_timestamp.is_some();
        let wanted = if deleting {
            let mut in_use = self
                .ctx
                .pods
                .list_namespace(&key.0)
                .iter()
                .any(|p| uses(p, &key.1));
            if has && !in_use {
                // The cache may not have seen a pod bound a moment ago: ask the API server
                // before letting the claim go (upstream's askAPIServer).
                let live = Api::<Pod>::namespaced(self.ctx.client.clone(), &key.0)
                    .list(&Default::default())
                    .await
                    .context("listing pods that may use a claim")?;
                in_use = live.items.iter().any(|p| uses(p, &key.1));
            }
            has && in_use
        } else {
            true
        };
        if wanted == has {
            return Ok(None);
        }
        let mut updated = (*claim).clone();
        set_finalizer(&mut updated.metadata.finalizers, PVC_PROTECTION, wanted);
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.ctx.client.clone(), &key.0);
        match api.replace(&key.1, &PostParams::default(), &updated).await {
            Ok(_) => Ok(None),
            Err(e) if api_code(&e) == Some(404) => Ok(None),
            Err(e) if api_code(&e) == Some(409) => Ok(Some(Duration::from_millis(100))),
            Err(e) => Err(e).context("updating a claim's protection finalizer"),
        }
    }

    async fn sync_volume(&self, name: String) -> Result<Option<Duration>, Error> {
        let Some(volume) = self.ctx.persistent_volumes.get("", &name) else {
            return Ok(None);
        };
        let has = finalizers(volume.as_ref())
            .iter()
            .any(|f| f == PV_PROTECTION);
        let wanted = if volume.metadata.deletion_timestamp.is_some() {
            let bound = volume.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
            has && bound
        } else {
            true
        };
        if wanted == has {
            return Ok(None);
        }
        let mut updated = (*volume).clone();
        set_finalizer(&mut updated.metadata.finalizers, PV_PROTECTION, wanted);
        let api: Api<PersistentVolume> = Api::all(self.volume_client.clone());
        match api.replace(&name, &PostParams::default(), &updated).await {
            Ok(_) => Ok(None),
            Err(e) if api_code(&e) == Some(404) => Ok(None),
            Err(e) if api_code(&e) == Some(409) => Ok(Some(Duration::from_millis(100))),
            Err(e) => Err(e).context("updating a volume's protection finalizer"),
        }
    }
}

fn set_finalizer(finalizers: &mut Option<Vec<String>>, finalizer: &str, present: bool) {
    let list = finalizers.get_or_insert_with(Vec::new);
    list.retain(|f| f != finalizer);
    if present {
        list.push(finalizer.to_string());
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(node: &str, phase: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"nodeName": node, "containers": [],
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "c"}},
                                 {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}]},
            "status": {"phase": phase}
        }))
        .unwrap()
    }

    #[test]
    fn scheduled_running_pods_use_their_claims() {
        assert_eq!(claims_of(&pod("n", "Running")), vec!["c", "p-scratch"]);
        assert!(uses(&pod("n", "Running"), "c"));
        assert!(uses(&pod("n", "Pending"), "p-scratch"));
        assert!(!uses(&pod("", "Pending"), "c"), "not scheduled");
        assert!(!uses(&pod("n", "Succeeded"), "c"), "finished");
        assert!(!uses(&pod("n", "Running"), "other"));
        let mut f = Some(vec!["a".to_string()]);
        set_finalizer(&mut f, PVC_PROTECTION, true);
        set_finalizer(&mut f, PVC_PROTECTION, true);
        assert_eq!(f, Some(vec!["a".to_string(), PVC_PROTECTION.to_string()]));
        set_finalizer(&mut f, PVC_PROTECTION, false);
        assert_eq!(f, Some(vec!["a".to_string()]));
    }
}
