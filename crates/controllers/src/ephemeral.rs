//! The ephemeral volume controller (upstream's `pkg/controller/volume/ephemeral`): a pod's
//! generic ephemeral volume (`spec.volumes[].ephemeral.volumeClaimTemplate`) gets its claim,
//! `<pod>-<volume>`, made from the template — its labels, annotations and spec — and owned by
//! the pod (controller, blocking its deletion), so the claim goes with the pod through the
//! garbage collector. A claim of that name the pod does not own is not touched: the pod
//! cannot start, and an Event on it says why. A claim deleted while its pod lives is made again.
//!
//! The scheduler waits for the claim (VolumeBinding), pvc-protection keeps it while the pod
//! runs, and the kubelet mounts it as the pod's claim once it checked the pod owns it.

use std::sync::Arc;
use std::time::Duration;

use ferry_api::volumes::{ephemeral_claim_name, ephemeral_claim_not_for_pod};
use ferry_client::events::{reference, EventType};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::PostParams;
use kube::{Api, Resource as _, ResourceExt as _};

use crate::informer::{key_of, Key};
use crate::queue::{Queue, Reconciler};
use crate::util::api_code;
use crate::{Context, Error};

/// The component of its Events.
const COMPONENT: &str = "ephemeral_volume";

fn has_ephemeral_volumes(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|v| v.iter().any(|v| v.ephemeral.is_some()))
}

/// Makes the claims of pods' generic ephemeral volumes.
pub struct EphemeralVolumeController {
    ctx: Arc<Context>,
    queue: Arc<Queue<Key>>,
}

impl Reconciler for EphemeralVolumeController {
    type Key = Key;
    type Error = Error;
    const NAME: &'static str = "ephemeral-volume";

    fn queue(&self) -> &Arc<Queue<Key>> {
        &self.queue
    }

    async fn reconcile(self: Arc<Self>, key: Key) -> Result<Option<Duration>, Error> {
        let Some(pod) = self.ctx.pods.get(&key.0, &key.1) else {
            return Ok(None);
        };
        // A pod being deleted needs no new claim.
        if pod.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            if let Err(error) = self.handle_volume(&pod, volume).await {
                self.ctx.recorder(COMPONENT).event(
                    reference(pod.as_ref()),
                    EventType::Warning,
                    "FailedBinding",
                    format!("ephemeral volume {}: {error}", volume.name),
                );
                return Err(error);
            }
        }
        Ok(None)
    }
}

impl EphemeralVolumeController {
    /// Registers the handlers: pods with ephemeral volumes, and claims of pods deleted.
    pub fn new(ctx: Arc<Context>) -> Arc<EphemeralVolumeController> {
        let controller = Arc::new(EphemeralVolumeController {
            ctx: ctx.clone(),
            queue: Queue::new(),
        });
        let c = controller.clone();
        ctx.pods.add_handler(move |_, new| {
            if let Some(pod) = new.filter(|p| has_ephemeral_volumes(p)) {
                c.queue.add(key_of(pod.as_ref()));
            }
        });
        let c = controller.clone();
        ctx.persistent_volume_claims.add_handler(move |old, new| {
            // A claim deleted while its pod lives: the pod's volume needs it made again.
            let (Some(claim), None) = (old, new) else {
                return;
            };
            let namespace = claim.namespace().unwrap_or_default();
            for owner in claim.owner_references() {
                if owner.kind == "Pod" && owner.controller == Some(true) {
                    c.queue.add((namespace.clone(), owner.name.clone()));
                }
            }
        });
        controller
    }

    async fn handle_volume(&self, pod: &Pod, volume: &Volume) -> Result<(), Error> {
        let Some(template) = volume
            .ephemeral
            .as_ref()
            .and_then(|e| e.volume_claim_template.as_ref())
        else {
            return Ok(());
        };
        let namespace = pod.namespace().unwrap_or_default();
        let name = ephemeral_claim_name(&pod.name_any(), &volume.name);
        if let Some(claim) = self.ctx.persistent_volume_claims.get(&namespace, &name) {
            return match ephemeral_claim_not_for_pod(pod, &claim) {
                Some(why) => Err(Error::Waiting(why)),
                None => Ok(()),
            };
        }
        let claim = PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                annotations: template
                    .metadata
                    .as_ref()
                    .and_then(|m| m.annotations.clone()),
                owner_references: Some(vec![OwnerReference {
                    api_version: Pod::api_version(&()).into_owned(),
                    kind: Pod::kind(&()).into_owned(),
                    name: pod.name_any(),
                    uid: pod.uid().unwrap_or_default(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..ObjectMeta::default()
            },
            spec: Some(template.spec.clone()),
            status: None,
        };
        let claims: Api<PersistentVolumeClaim> =
            Api::namespaced(self.ctx.client.clone(), &namespace);
        match claims.create(&PostParams::default(), &claim).await {
            Ok(_) => Ok(()),
            // Made meanwhile (a stale cache): the next event checks whose it is.
            Err(e) if api_code(&e) == Some(409) => Ok(()),
            Err(e) => Err(Error::api("creating an ephemeral volume's claim", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::{accept_all, client, Call};

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "app", "namespace": "default", "uid": "pod-uid"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}],
                     "volumes": [
                        {"name": "cache", "emptyDir": {}},
                        {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {
                            "metadata": {"labels": {"tier": "scratch"}, "annotations": {"a": "b"}},
                            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local",
                                     "resources": {"requests": {"storage": "1Gi"}}}}}}]}
        }))
        .expect("pod")
    }

    fn claim(owner_uid: &str) -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": "app-scratch", "namespace": "default",
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "app",
                                              "uid": owner_uid, "controller": true}]},
            "spec": {}
        }))
        .expect("claim")
    }

    fn controller(client: kube::Client) -> Arc<EphemeralVolumeController> {
        EphemeralVolumeController::new(Context::new(client, crate::Options::default()))
    }

    #[tokio::test]
    async fn a_pods_ephemeral_volume_gets_its_claim_owned_by_the_pod() {
        let (client, calls) = client(accept_all);
        let c = controller(client);
        c.ctx.pods.seed(vec![pod()]);
        c.ctx.persistent_volume_claims.seed(vec![]);
        c.clone()
            .reconcile(("default".into(), "app".into()))
            .await
            .expect("synced");
        let made = calls.without_events();
        let lines: Vec<String> = made.iter().map(Call::line).collect();
        assert_eq!(
            lines,
            ["POST /api/v1/namespaces/default/persistentvolumeclaims?"]
        );
        let body = &made[0].body;
        assert_eq!(body["metadata"]["name"], "app-scratch");
        assert_eq!(body["metadata"]["labels"], json!({"tier": "scratch"}));
        assert_eq!(body["metadata"]["annotations"], json!({"a": "b"}));
        assert_eq!(
            body["metadata"]["ownerReferences"],
            json!([{"apiVersion": "v1", "kind": "Pod", "name": "app", "uid": "pod-uid",
                    "controller": true, "blockOwnerDeletion": true}])
        );
        assert_eq!(body["spec"]["storageClassName"], "local");
        assert_eq!(body["spec"]["resources"]["requests"]["storage"], "1Gi");
    }

    #[tokio::test]
    async fn a_claim_the_pod_owns_is_kept_and_one_it_does_not_is_refused() {
        let (owned, calls) = client(accept_all);
        let c = controller(owned);
        c.ctx.pods.seed(vec![pod()]);
        c.ctx.persistent_volume_claims.seed(vec![claim("pod-uid")]);
        c.clone()
            .reconcile(("default".into(), "app".into()))
            .await
            .expect("synced");
        assert!(calls.without_events().is_empty());

        let (other, calls) = client(accept_all);
        let c = controller(other);
        c.ctx.pods.seed(vec![pod()]);
        c.ctx
            .persistent_volume_claims
            .seed(vec![claim("someone-else")]);
        let error = c
            .clone()
            .reconcile(("default".into(), "app".into()))
            .await
            .expect_err("not the pod's claim");
        assert_eq!(
            error.to_string(),
            "PVC default/app-scratch was not created for pod default/app (pod is not owner)"
        );
        assert!(calls.without_events().is_empty(), "nothing written");
    }

    #[tokio::test]
    async fn a_pod_being_deleted_gets_no_claim() {
        let (client, calls) = client(accept_all);
        let c = controller(client);
        let mut deleting = pod();
        deleting.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        c.ctx.pods.seed(vec![deleting]);
        c.ctx.persistent_volume_claims.seed(vec![]);
        c.clone()
            .reconcile(("default".into(), "app".into()))
            .await
            .expect("synced");
        assert!(calls.without_events().is_empty());
    }
}
