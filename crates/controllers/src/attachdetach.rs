//! The attach-detach controller (upstream's `pkg/controller/volume/attachdetach` with the CSI
//! attacher of `pkg/volume/csi/csi_attacher.go`), for CSI persistent volumes: per node, every
//! volume a scheduled, unfinished pod uses through a bound claim, of a driver whose CSIDriver
//! asks for attachment (`attachRequired`, or no CSIDriver at all), gets a `storage.k8s.io/v1`
//! VolumeAttachment `csi-<sha256(handle, driver, node)>` with
//! `{attacher: <driver>, nodeName, source: {persistentVolumeName}}`, which the driver's
//! external-attacher attaches. An attachment no such pod needs any more is deleted (the
//! attacher detaches, then lets it go), but not while the node's kubelet still lists the volume
//! in `status.volumesInUse` — unless that lasts longer than [`MAX_WAIT_FOR_UNMOUNT`], upstream's
//! forced detach. The Node's `status.volumesAttached` lists the attached ones.
//!
//! Keyed by node name; pods, claims, volumes, CSIDrivers, VolumeAttachments and the Node
//! itself (its `volumesInUse`) requeue the nodes they concern.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_csi::attach::{attachment_name, unique_volume_name};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::storage::v1::{
    VolumeAttachment, VolumeAttachmentSource, VolumeAttachmentSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt as _};
use parking_lot::Mutex;
use serde_json::json;

use crate::queue::{Queue, Reconciler};
use crate::util::api_code;
use crate::volumeprotection::{claims_of, uses};
use crate::{ApiContext as _, Context, Error};

/// How long a detach waits for the kubelet to stop reporting the volume in use (upstream's
/// `maxWaitForUnmountDuration`).
pub const MAX_WAIT_FOR_UNMOUNT: Duration = Duration::from_secs(6 * 60);
/// How soon a node whose detach waits for its kubelet is looked at again.
const DETACH_RECHECK: Duration = Duration::from_secs(10);

/// One CSI volume attached to (or wanted on) a node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CsiVolume {
    /// The PersistentVolume.
    pub pv: String,
    /// The driver (`spec.csi.driver`), the attachment's attacher.
    pub driver: String,
    /// The volume handle.
    pub handle: String,
}

impl CsiVolume {
    /// How the Node's `volumesAttached` and `volumesInUse` name it.
    pub fn unique_name(&self) -> String {
        unique_volume_name(&self.driver, &self.handle)
    }
}

/// The attach-detach controller.
pub struct AttachDetachController {
    ctx: Arc<Context>,
    queue: Arc<Queue<String>>,
    /// Since when each attachment (by name) has waited to be deleted while in use.
    detach_waiting: Mutex<HashMap<String, Instant>>,
}

impl Reconciler for AttachDetachController {
    type Key = String;
    type Error = Error;
    const NAME: &'static str = "attachdetach";

    fn queue(&self) -> &Arc<Queue<String>> {
        &self.queue
    }

    async fn reconcile(self: Arc<Self>, node: String) -> Result<Option<Duration>, Error> {
        self.sync_node(&node).await
    }
}

/// The node a VolumeAttachment is for.
pub fn attachment_node(attachment: &VolumeAttachment) -> Option<String> {
    Some(attachment.spec.node_name.clone()).filter(|n| !n.is_empty())
}

fn pod_node(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()?
        .node_name
        .as_deref()
        .filter(|n| !n.is_empty())
}

impl AttachDetachController {
    /// Registers the handlers.
    pub fn new(ctx: Arc<Context>) -> Arc<AttachDetachController> {
        let controller = Arc::new(AttachDetachController {
            ctx: ctx.clone(),
            queue: Queue::new(),
            detach_waiting: Mutex::default(),
        });
        let c = controller.clone();
        ctx.pods.add_handler(move |old, new| {
            for pod in old.into_iter().chain(new) {
                if let Some(node) = pod_node(pod).filter(|_| !claims_of(pod).is_empty()) {
                    c.queue.add(node.to_string());
                }
            }
        });
        let c = controller.clone();
        ctx.volume_attachments.add_handler(move |old, new| {
            for attachment in old.into_iter().chain(new) {
                if let Some(node) = attachment_node(attachment) {
                    c.queue.add(node);
                }
            }
        });
        let c = controller.clone();
        ctx.nodes.add_handler(move |old, new| {
            let in_use = |n: Option<&Arc<Node>>| {
                n.and_then(|n| n.status.as_ref())
                    .and_then(|s| s.volumes_in_use.clone())
            };
            if let Some(node) = new {
                if old.is_none() || in_use(old) != in_use(new) {
                    c.queue.add(node.name_any());
                }
            }
        });
        let c = controller.clone();
        ctx.persistent_volume_claims.add_handler(move |_, new| {
            if let Some(claim) = new {
                c.requeue_claim_users(&claim.namespace().unwrap_or_default(), &claim.name_any());
            }
        });
        let c = controller.clone();
        ctx.persistent_volumes.add_handler(move |_, new| {
            let claim = new
                .and_then(|v| v.spec.as_ref())
                .and_then(|s| s.claim_ref.as_ref());
            if let Some(claim) = claim {
                let namespace = claim.namespace.clone().unwrap_or_default();
                c.requeue_claim_users(&namespace, claim.name.as_deref().unwrap_or_default());
            }
        });
        let c = controller.clone();
        ctx.csi_drivers.add_handler(move |_, _| {
            for node in c.ctx.nodes.list() {
                c.queue.add(node.name_any());
            }
        });
        controller
    }

    /// Queues the nodes of the pods using the claim `namespace/claim`.
    fn requeue_claim_users(&self, namespace: &str, claim: &str) {
        for pod in self.ctx.pods.list_namespace(namespace) {
            if uses(&pod, claim) {
                if let Some(node) = pod_node(&pod) {
                    self.queue.add(node.to_string());
                }
            }
        }
    }

    /// Whether `driver`'s volumes are attached (upstream's `isAttachRequired`).
    fn attach_required(&self, driver: &str) -> bool {
        self.ctx
            .csi_drivers
            .get("", driver)
            .is_none_or(|d| d.spec.attach_required != Some(false))
    }

    /// The CSI volume of the PersistentVolume `pv`, if it is one.
    fn csi_volume(&self, pv: &str) -> Option<CsiVolume> {
        let volume = self.ctx.persistent_volumes.get("", pv)?;
        let csi = volume.spec.as_ref()?.csi.as_ref()?;
        Some(CsiVolume {
            pv: pv.to_string(),
            driver: csi.driver.clone(),
            handle: csi.volume_handle.clone(),
        })
    }

    /// The attachments the pods on `node` need, by name (upstream's desired state of the world).
    fn desired(&self, node: &str) -> BTreeMap<String, CsiVolume> {
        let mut desired = BTreeMap::new();
        for pod in self.ctx.pods.list_indexed(node) {
            let namespace = pod.namespace().unwrap_or_default();
            for claim in claims_of(&pod) {
                if !uses(&pod, &claim) {
                    continue;
                }
                let Some(claim) = self.ctx.persistent_volume_claims.get(&namespace, &claim) else {
                    continue;
                };
                let bound = claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
                let pv = claim.spec.as_ref().and_then(|s| s.volume_name.as_deref());
                let Some(volume) = pv.filter(|_| bound).and_then(|pv| self.csi_volume(pv)) else {
                    continue;
                };
                if self.attach_required(&volume.driver) {
                    let name = attachment_name(&volume.handle, &volume.driver, node);
                    desired.insert(name, volume);
                }
            }
        }
        desired
    }

    async fn sync_node(&self, node: &str) -> Result<Option<Duration>, Error> {
        let desired = self.desired(node);
        let actual: Vec<Arc<VolumeAttachment>> = self
            .ctx
            .volume_attachments
            .list_indexed(node)
            .into_iter()
            .filter(|a| a.spec.source.persistent_volume_name.is_some())
            .collect();
        let node_object = self.ctx.nodes.get("", node);
        let in_use: BTreeSet<String> = node_object
            .as_ref()
            .and_then(|n| n.status.as_ref())
            .and_then(|s| s.volumes_in_use.clone())
            .unwrap_or_default()
            .into_iter()
            .collect();
        let api: Api<VolumeAttachment> = Api::all(self.ctx.client.clone());
        let mut requeue = None;

        for (name, volume) in &desired {
            self.detach_waiting.lock().remove(name);
            // One being detached is made again once it is gone (its deletion requeues the node).
            if actual.iter().any(|a| a.name_any() == *name) {
                continue;
            }
            let attachment = new_attachment(name, volume, node);
            match api.create(&PostParams::default(), &attachment).await {
                Ok(_) => tracing::info!(attachment = %name, pv = %volume.pv, node, "attaching"),
                Err(e) if api_code(&e) == Some(409) => {}
                Err(e) => return Err(e).context("creating a volume attachment"),
            }
        }

        for attachment in &actual {
            let name = attachment.name_any();
            if desired.contains_key(&name) || attachment.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let volume = attachment
                .spec
                .source
                .persistent_volume_name
                .as_deref()
                .and_then(|pv| self.csi_volume(pv));
            let mounted = volume
                .as_ref()
                .is_some_and(|v| in_use.contains(&v.unique_name()));
            if mounted && !self.waited_too_long(&name) {
                requeue = Some(DETACH_RECHECK);
                continue;
            }
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => tracing::info!(attachment = %name, node, "detaching"),
                Err(e) if api_code(&e) == Some(404) => {}
                Err(e) => return Err(e).context("deleting a volume attachment"),
            }
            self.detach_waiting.lock().remove(&name);
        }

        if let Some(node_object) = node_object {
            self.update_volumes_attached(&node_object, &actual).await?;
        }
        Ok(requeue)
    }

    /// Whether the attachment `name` has waited for its kubelet longer than
    /// [`MAX_WAIT_FOR_UNMOUNT`] (starting the clock on the first call).
    fn waited_too_long(&self, name: &str) -> bool {
        let mut waiting = self.detach_waiting.lock();
        let since = *waiting.entry(name.to_string()).or_insert_with(Instant::now);
        if since.elapsed() >= MAX_WAIT_FOR_UNMOUNT {
            tracing::warn!(
                attachment = name,
                "the volume is still in use on the node after 6m0s; detaching anyway"
            );
            true
        } else {
            false
        }
    }

    /// Sets the Node's `status.volumesAttached` to the attached attachments' volumes.
    async fn update_volumes_attached(
        &self,
        node: &Node,
        attachments: &[Arc<VolumeAttachment>],
    ) -> Result<(), Error> {
        let attached: BTreeSet<String> = attachments
            .iter()
            .filter(|a| a.status.as_ref().is_some_and(|s| s.attached))
            .filter_map(|a| {
                let pv = a.spec.source.persistent_volume_name.as_deref()?;
                self.csi_volume(pv)
            })
            .map(|v| v.unique_name())
            .collect();
        let current: BTreeSet<String> = node
            .status
            .as_ref()
            .and_then(|s| s.volumes_attached.as_ref())
            .map(|list| list.iter().map(|v| v.name.clone()).collect())
            .unwrap_or_default();
        if attached == current {
            return Ok(());
        }
        let list: Vec<_> = attached
            .iter()
            .map(|name| json!({"name": name, "devicePath": ""}))
            .collect();
        let patch = json!({"status": {"volumesAttached": list}});
        let nodes: Api<Node> = Api::all(self.ctx.client.clone());
        match nodes
            .patch_status(
                &node.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if api_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(e).context("updating the node's attached volumes"),
        }
    }
}

/// The VolumeAttachment of `volume` on `node`, named `name`.
pub fn new_attachment(name: &str, volume: &CsiVolume, node: &str) -> VolumeAttachment {
    VolumeAttachment {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        spec: VolumeAttachmentSpec {
            attacher: volume.driver.clone(),
            node_name: node.to_string(),
            source: VolumeAttachmentSource {
                persistent_volume_name: Some(volume.pv.clone()),
                ..Default::default()
            },
        },
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::testing::{accept_all, client, Call, Calls};

    const DRIVER: &str = "local.csi.ferry.dev";

    fn pod(name: &str, node: &str, claim: &str, phase: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": name},
            "spec": {"nodeName": node, "containers": [],
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]},
            "status": {"phase": phase}
        }))
        .expect("pod")
    }

    fn claim(name: &str, pv: &str) -> k8s_openapi::api::core::v1::PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"volumeName": pv}, "status": {"phase": "Bound"}
        }))
        .expect("claim")
    }

    fn volume(name: &str, driver: &str) -> k8s_openapi::api::core::v1::PersistentVolume {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"csi": {"driver": driver, "volumeHandle": format!("{name}-handle")}}
        }))
        .expect("volume")
    }

    fn driver(name: &str, attach_required: bool) -> k8s_openapi::api::storage::v1::CSIDriver {
        serde_json::from_value(json!({
            "metadata": {"name": name}, "spec": {"attachRequired": attach_required}
        }))
        .expect("driver")
    }

    fn node(in_use: &[&str], attached: &[&str]) -> Node {
        let attached: Vec<Value> = attached
            .iter()
            .map(|n| json!({"name": n, "devicePath": ""}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": "n1"},
            "status": {"volumesInUse": in_use, "volumesAttached": attached}
        }))
        .expect("node")
    }

    fn attachment(pv: &str, attached: bool) -> VolumeAttachment {
        let volume = CsiVolume {
            pv: pv.into(),
            driver: DRIVER.into(),
            handle: format!("{pv}-handle"),
        };
        let mut va = new_attachment(
            &attachment_name(&volume.handle, DRIVER, "n1"),
            &volume,
            "n1",
        );
        va.status = Some(serde_json::from_value(json!({"attached": attached})).expect("status"));
        va
    }

    /// A controller over the given objects; the calls one sync of `n1` made.
    async fn sync(
        pods: Vec<Pod>,
        attachments: Vec<VolumeAttachment>,
        node_object: Node,
    ) -> (Vec<Call>, Option<Duration>, Calls) {
        let (client, calls) = client(accept_all);
        let ctx = Context::new(client, crate::Options::default());
        ctx.pods.seed(pods);
        ctx.persistent_volume_claims.seed(vec![
            claim("c1", "pv-1"),
            claim("c2", "pv-2"),
            claim("c3", "pv-3"),
        ]);
        ctx.persistent_volumes.seed(vec![
            volume("pv-1", DRIVER),
            volume("pv-2", "noattach.csi"),
            volume("pv-3", "unregistered.csi"),
        ]);
        ctx.csi_drivers
            .seed(vec![driver(DRIVER, true), driver("noattach.csi", false)]);
        ctx.volume_attachments.seed(attachments);
        ctx.nodes.seed(vec![node_object]);
        let controller = AttachDetachController::new(ctx);
        let requeue = controller.sync_node("n1").await.expect("synced");
        (calls.without_events(), requeue, calls)
    }

    fn lines(calls: &[Call]) -> Vec<String> {
        calls.iter().map(Call::line).collect()
    }

    #[tokio::test]
    async fn pods_volumes_get_attachments_named_as_upstream() {
        let pods = vec![
            pod("a", "n1", "c1", "Running"),
            pod("b", "n1", "c2", "Running"),
            pod("c", "n1", "c3", "Pending"),
        ];
        let (calls, requeue, _) = sync(pods, vec![], node(&[], &[])).await;
        assert_eq!(requeue, None);
        // pv-1: attach required; pv-2: the CSIDriver says no; pv-3: no CSIDriver, so required.
        assert_eq!(
            lines(&calls),
            [
                "POST /apis/storage.k8s.io/v1/volumeattachments?",
                "POST /apis/storage.k8s.io/v1/volumeattachments?",
            ]
        );
        let mut made: Vec<Value> = calls.iter().map(|c| c.body.clone()).collect();
        made.sort_by_key(|b| b["spec"]["source"]["persistentVolumeName"].to_string());
        assert_eq!(
            made[0]["metadata"]["name"],
            attachment_name("pv-1-handle", DRIVER, "n1")
        );
        assert_eq!(
            made[0]["spec"],
            json!({"attacher": DRIVER, "nodeName": "n1",
                   "source": {"persistentVolumeName": "pv-1"}})
        );
        assert_eq!(made[1]["spec"]["attacher"], "unregistered.csi");

        // Already there: nothing to do.
        let pods = vec![pod("a", "n1", "c1", "Running")];
        let (calls, _, _) = sync(pods, vec![attachment("pv-1", false)], node(&[], &[])).await;
        assert!(calls.is_empty(), "{calls:?}");
    }

    #[tokio::test]
    async fn attachments_go_once_no_pod_uses_them_and_the_kubelet_let_go() {
        let unique = unique_volume_name(DRIVER, "pv-1-handle");
        // A finished pod does not use its volume.
        let pods = vec![pod("a", "n1", "c1", "Succeeded")];
        // Still in use on the node: wait for the kubelet.
        let (calls, requeue, _) = sync(
            pods.clone(),
            vec![attachment("pv-1", true)],
            node(&[&unique], &[&unique]),
        )
        .await;
        assert!(calls.is_empty(), "{calls:?}");
        assert_eq!(requeue, Some(DETACH_RECHECK));

        let (calls, requeue, _) =
            sync(pods, vec![attachment("pv-1", true)], node(&[], &[&unique])).await;
        assert_eq!(requeue, None);
        assert_eq!(
            lines(&calls),
            [format!(
                "DELETE /apis/storage.k8s.io/v1/volumeattachments/{}?",
                attachment_name("pv-1-handle", DRIVER, "n1")
            )]
        );
    }

    #[tokio::test]
    async fn the_node_lists_its_attached_volumes() {
        let unique = unique_volume_name(DRIVER, "pv-1-handle");
        let pods = vec![pod("a", "n1", "c1", "Running")];
        let (calls, _, _) =
            sync(pods.clone(), vec![attachment("pv-1", true)], node(&[], &[])).await;
        assert_eq!(lines(&calls), ["PATCH /api/v1/nodes/n1/status?"]);
        assert_eq!(
            calls[0].body,
            json!({"status": {"volumesAttached": [{"name": unique, "devicePath": ""}]}})
        );
        // Up to date, or not attached yet: no patch.
        let (calls, _, _) = sync(
            pods.clone(),
            vec![attachment("pv-1", true)],
            node(&[], &[&unique]),
        )
        .await;
        assert!(calls.is_empty(), "{calls:?}");
        let (calls, _, _) = sync(pods, vec![attachment("pv-1", false)], node(&[], &[])).await;
        assert!(calls.is_empty(), "{calls:?}");
    }
}
