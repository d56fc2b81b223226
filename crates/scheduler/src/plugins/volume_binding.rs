//! VolumeBinding: a pod lands where its PersistentVolumeClaims can be, as upstream's
//! `volumebinding` plugin.
//!
//! - PreFilter sorts the pod's claims: bound ones (their volume's node affinity must admit the
//!   node), ones whose class waits for the first consumer (`WaitForFirstConsumer`: bound here,
//!   knowing the node) and unbound ones of an `Immediate` class, which keep the pod waiting
//!   for the PersistentVolume controller. A missing claim rejects the pod.
//! - Filter finds, per node, an Available volume for each waiting claim (node affinity, size,
//!   class, access modes, selector) or else a class that can provision there (its provisioner
//!   and `allowedTopologies`).
//! - Reserve assumes the chosen volumes so no other pod takes them; PreBind writes the choice
//!   (the volume's `claimRef`, or the claim's `volume.kubernetes.io/selected-node` for its
//!   provisioner) and waits until every claim is bound, up to `bindTimeoutSeconds`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ferry_api::volumes::{
    find_best_match, volume_admits_node, BIND_COMPLETED, NO_PROVISIONER, SELECTED_NODE,
};
use futures::future::BoxFuture;
use futures::FutureExt;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use parking_lot::Mutex;
use serde::Deserialize;

use crate::binder::Binder;
use crate::cache::{NodeInfo, Snapshot};
use crate::config::ConfigError;
use crate::framework::{
    ClusterEvent, CycleState, Filter, Plugin, PreBind, PreFilter, PreFilterResult, Reserve, Status,
};
use crate::plugins::{node_selector_term_matches, parse_args};
use crate::volumes::{claim_key, VolumeCache};

/// The plugin's name.
pub const NAME: &str = "VolumeBinding";
/// Upstream's reasons.
pub const ERR_UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";
/// A bound volume's node affinity excludes the node.
pub const ERR_NODE_CONFLICT: &str = "node(s) had volume node affinity conflict";
/// No volume and no provisioning for a waiting claim on the node.
pub const ERR_BIND_CONFLICT: &str = "node(s) didn't find available persistent volumes to bind";
/// The class's driver reports too little room on the node.
pub const ERR_NOT_ENOUGH_SPACE: &str = "node(s) did not have enough free storage";
const STATE_KEY: &str = "PreFilterVolumeBinding";

/// The plugin's args (`VolumeBindingArgs`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Args {
    /// How long PreBind waits for the claims to be bound.
    #[serde(default = "default_timeout")]
    pub bind_timeout_seconds: u64,
}

fn default_timeout() -> u64 {
    600
}

impl Default for Args {
    fn default() -> Args {
        Args {
            bind_timeout_seconds: default_timeout(),
        }
    }
}

/// The plugin.
pub struct VolumeBinding {
    volumes: Arc<VolumeCache>,
    binder: Arc<dyn Binder>,
    timeout: Duration,
}

impl VolumeBinding {
    /// Builds the plugin from its args.
    pub fn new(
        args: Option<&serde_json::Value>,
        volumes: Arc<VolumeCache>,
        binder: Arc<dyn Binder>,
    ) -> Result<VolumeBinding, ConfigError> {
        let args: Args = parse_args(NAME, args)?;
        Ok(VolumeBinding {
            volumes,
            binder,
            timeout: Duration::from_secs(args.bind_timeout_seconds),
        })
    }
}

/// What one node needs for the pod's waiting claims.
#[derive(Clone, Debug, Default)]
struct Decision {
    /// (volume, claim) pairs to bind.
    bind: Vec<(String, Arc<PersistentVolumeClaim>)>,
    /// Claims to provision on the node.
    provision: Vec<Arc<PersistentVolumeClaim>>,
}

/// The pod's claims, sorted by PreFilter, and the per-node decisions of Filter.
struct PodVolumes {
    bound: Vec<Arc<PersistentVolumeClaim>>,
    waiting: Vec<(Arc<PersistentVolumeClaim>, Option<Arc<StorageClass>>)>,
    decisions: Mutex<HashMap<String, Decision>>,
    reserved: Mutex<Option<Decision>>,
}

pub use ferry_api::volumes::pod_claims;

fn class_name(claim: &PersistentVolumeClaim) -> &str {
    ferry_api::volumes::claim_class(claim)
}

/// Whether `class` can provision a volume on `node` (its provisioner and topologies).
fn can_provision(class: &StorageClass, node: &Node) -> bool {
    if class.provisioner == NO_PROVISIONER {
        return false;
    }
    class.allowed_topologies.as_ref().is_none_or(|terms| {
        terms.is_empty()
            || terms.iter().any(|term| {
                let expressions = term.match_label_expressions.clone().unwrap_or_default();
                let term = k8s_openapi::api::core::v1::NodeSelectorTerm {
                    match_expressions: Some(
                        expressions
                            .into_iter()
                            .map(|e| k8s_openapi::api::core::v1::NodeSelectorRequirement {
                                key: e.key,
                                operator: "In".into(),
                                values: Some(e.values),
                            })
                            .collect(),
                    ),
                    match_fields: None,
                };
                node_selector_term_matches(&term, node)
            })
    })
}

/// Whether the class's CSI driver has room for the claim on `node` (upstream's
/// `hasEnoughCapacity`): only drivers whose CSIDriver tracks storage capacity are checked, then
/// some CSIStorageCapacity of the class whose topology selects the node must hold the request
/// (its maximum volume size, else its capacity).
fn has_enough_capacity(
    volumes: &VolumeCache,
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    node: &Node,
) -> bool {
    let tracked = volumes
        .driver(&class.provisioner)
        .and_then(|d| d.spec.storage_capacity)
        .unwrap_or(false);
    if !tracked {
        return true;
    }
    let size = ferry_api::volumes::requested(claim);
    let empty = Default::default();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let class_name = class.metadata.name.as_deref().unwrap_or("");
    volumes.capacities().iter().any(|c| {
        let room = c
            .maximum_volume_size
            .as_ref()
            .or(c.capacity.as_ref())
            .and_then(|q| ferry_api::quantity::Quantity::parse(&q.0).ok());
        c.storage_class_name == class_name
            && c.node_topology
                .as_ref()
                .is_some_and(|t| ferry_api::matching::selector_matches(t, labels))
            && room.is_some_and(|r| r >= size)
    })
}

impl Plugin for VolumeBinding {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events(&self) -> Vec<ClusterEvent> {
        vec![
            ClusterEvent::NodeAdd,
            ClusterEvent::NodeLabelChange,
            ClusterEvent::PersistentVolumeClaimChange,
            ClusterEvent::PersistentVolumeChange,
            ClusterEvent::StorageClassChange,
            ClusterEvent::StorageCapacityChange,
        ]
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilter> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn Filter> {
        Some(self)
    }
    fn as_reserve(&self) -> Option<&dyn Reserve> {
        Some(self)
    }
    fn as_pre_bind(&self) -> Option<&dyn PreBind> {
        Some(self)
    }
}

impl PreFilter for VolumeBinding {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        _snapshot: &Snapshot,
    ) -> (Option<PreFilterResult>, Status) {
        let names = pod_claims(pod);
        if names.is_empty() {
            return (None, Status::skip());
        }
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let (mut bound, mut waiting, mut immediate) = (Vec::new(), Vec::new(), false);
        for (name, ephemeral) in names {
            let Some(claim) = self.volumes.claim(namespace, &name) else {
                let reason = if ephemeral {
                    format!("waiting for ephemeral volume controller to create the persistentvolumeclaim {name:?}")
                } else {
                    format!("persistentvolumeclaim {name:?} not found")
                };
                return (None, Status::unresolvable(reason));
            };
            if claim.metadata.deletion_timestamp.is_some() {
                return (
                    None,
                    Status::unresolvable(format!(
                        "persistentvolumeclaim {name:?} is being deleted"
                    )),
                );
            }
            // An ephemeral volume's claim must be the pod's own (a claim of that name made by
            // someone else is never taken over).
            if let Some(why) = ephemeral
                .then(|| ferry_api::volumes::ephemeral_claim_not_for_pod(pod, &claim))
                .flatten()
            {
                return (None, Status::unresolvable(why));
            }
            let volume_name = claim.spec.as_ref().and_then(|s| s.volume_name.as_deref());
            if volume_name.is_some_and(|v| !v.is_empty()) {
                bound.push(claim);
                continue;
            }
            let class = self.volumes.class(class_name(&claim));
            let delayed = class
                .as_ref()
                .is_some_and(|c| c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"));
            if delayed {
                waiting.push((claim, class));
            } else {
                immediate = true;
            }
        }
        if immediate {
            return (None, Status::unresolvable(ERR_UNBOUND_IMMEDIATE));
        }
        state.write(
            STATE_KEY,
            Arc::new(PodVolumes {
                bound,
                waiting,
                decisions: Mutex::default(),
                reserved: Mutex::default(),
            }),
        );
        (None, Status::success())
    }
}

impl Filter for VolumeBinding {
    fn filter(&self, state: &CycleState, _pod: &Pod, node: &NodeInfo) -> Status {
        let Some(volumes) = state.read::<Arc<PodVolumes>>(STATE_KEY) else {
            return Status::success();
        };
        let Some(node_object) = node.node.as_deref() else {
            return Status::unresolvable("node not found");
        };
        for claim in &volumes.bound {
            let name = claim
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.clone())
                .unwrap_or_default();
            match self.volumes.volume(&name) {
                Some(volume) if !volume_admits_node(&volume, node_object) => {
                    return Status::unresolvable(ERR_NODE_CONFLICT);
                }
                Some(_) => {}
                // Bound to a volume not seen yet (just provisioned): wait for it.
                None => {
                    return Status::unschedulable(format!(
                        "pvc {} bound to non-existent pv {name}",
                        claim_key(claim)
                    ))
                }
            }
        }
        let mut decision = Decision::default();
        let mut chosen: Vec<String> = Vec::new();
        for (claim, class) in &volumes.waiting {
            let candidates = self.volumes.free_volumes(&claim_key(claim));
            match find_best_match(claim, &candidates, Some(node_object), true, &chosen) {
                Some(volume) => {
                    let name = volume.metadata.name.clone().unwrap_or_default();
                    chosen.push(name.clone());
                    decision.bind.push((name, claim.clone()));
                }
                None if class
                    .as_ref()
                    .is_some_and(|c| can_provision(c, node_object)) =>
                {
                    let class = class.as_ref().expect("checked");
                    if !has_enough_capacity(&self.volumes, claim, class, node_object) {
                        return Status::unschedulable(ERR_NOT_ENOUGH_SPACE);
                    }
                    decision.provision.push(claim.clone())
                }
                None => return Status::unschedulable(ERR_BIND_CONFLICT),
            }
        }
        volumes.decisions.lock().insert(node.name.clone(), decision);
        Status::success()
    }
}

impl Reserve for VolumeBinding {
    fn reserve(&self, state: &mut CycleState, _pod: &Pod, node: &str) -> Status {
        let Some(volumes) = state.read::<Arc<PodVolumes>>(STATE_KEY) else {
            return Status::success();
        };
        let Some(decision) = volumes.decisions.lock().get(node).cloned() else {
            return Status::success();
        };
        for (volume, claim) in &decision.bind {
            self.volumes.assume(volume, &claim_key(claim));
        }
        *volumes.reserved.lock() = Some(decision);
        Status::success()
    }

    fn unreserve(&self, state: &mut CycleState, _pod: &Pod, _node: &str) {
        let Some(volumes) = state.read::<Arc<PodVolumes>>(STATE_KEY) else {
            return;
        };
        if let Some(decision) = volumes.reserved.lock().take() {
            for (volume, _) in &decision.bind {
                self.volumes.forget(volume);
            }
        }
    }
}

/// Whether a claim is bound (upstream's `checkBindings`): named volume and bind completed.
fn is_bound(claim: &PersistentVolumeClaim) -> bool {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .is_some_and(|v| !v.is_empty())
        && claim
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(BIND_COMPLETED))
}

impl PreBind for VolumeBinding {
    fn pre_bind(&self, state: &CycleState, _pod: &Pod, node: &str) -> BoxFuture<'static, Status> {
        let Some(volumes) = state.read::<Arc<PodVolumes>>(STATE_KEY).cloned() else {
            return async { Status::success() }.boxed();
        };
        let decision = volumes.reserved.lock().clone().unwrap_or_default();
        let cache = self.volumes.clone();
        let binder = self.binder.clone();
        let timeout = self.timeout;
        let node = node.to_string();
        async move {
            for (volume_name, claim) in &decision.bind {
                let Some(volume) = cache.volume(volume_name) else {
                    return Status::error(format!("persistentvolume {volume_name:?} not found"));
                };
                if let Err(e) = binder.bind_volume(&volume, claim).await {
                    return Status::error(format!("binding volumes: {e}"));
                }
            }
            for claim in &decision.provision {
                if let Err(e) = binder.select_node(claim, &node).await {
                    return Status::error(format!("binding volumes: {e}"));
                }
            }
            let keys: Vec<(String, String)> = volumes
                .bound
                .iter()
                .chain(volumes.waiting.iter().map(|(c, _)| c))
                .map(|c| {
                    (
                        c.metadata.namespace.clone().unwrap_or_default(),
                        c.metadata.name.clone().unwrap_or_default(),
                    )
                })
                .collect();
            let provisioned: std::collections::HashSet<String> =
                decision.provision.iter().map(|c| claim_key(c)).collect();
            let mut seen_selected = std::collections::HashSet::new();
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                let pending: Vec<&(String, String)> = keys
                    .iter()
                    .filter(|(ns, name)| cache.claim(ns, name).is_none_or(|c| !is_bound(&c)))
                    .collect();
                if pending.is_empty() {
                    return Status::success();
                }
                // Upstream's checkBindings: a claim gone, being deleted, or handed back by its
                // provisioner (its selected node reset after it was seen set) fails at once, to
                // be retried elsewhere.
                for (ns, name) in &pending {
                    let key = format!("{ns}/{name}");
                    let reason = match cache.claim(ns, name) {
                        None => Some("was deleted"),
                        Some(c) if c.metadata.deletion_timestamp.is_some() => {
                            Some("is being deleted")
                        }
                        Some(c) if provisioned.contains(&key) => {
                            let selected = c
                                .metadata
                                .annotations
                                .as_ref()
                                .and_then(|a| a.get(SELECTED_NODE))
                                .is_some_and(|n| n == &node);
                            if selected {
                                seen_selected.insert(key);
                                None
                            } else if seen_selected.contains(&key) {
                                Some("had its selected node reset")
                            } else {
                                None
                            }
                        }
                        _ => None,
                    };
                    if let Some(reason) = reason {
                        return Status::error(format!(
                            "binding volumes: persistentvolumeclaim {ns}/{name} {reason}"
                        ));
                    }
                }
                if tokio::time::Instant::now() >= deadline {
                    let (ns, name) = pending[0];
                    return Status::error(format!(
                        "binding volumes: context deadline exceeded waiting for {ns}/{name}"
                    ));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::binder::{Call, FakeBinder};
    use crate::testing::make_node;

    fn claim(name: &str, class: &str, volume: Option<&str>) -> Arc<PersistentVolumeClaim> {
        let mut value = json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": class,
                     "resources": {"requests": {"storage": "1Gi"}}}
        });
        if let Some(v) = volume {
            value["spec"]["volumeName"] = json!(v);
            value["metadata"]["annotations"] = json!({BIND_COMPLETED: "yes"});
        }
        Arc::new(serde_json::from_value(value).unwrap())
    }

    fn local_volume(
        name: &str,
        host: &str,
        class: &str,
    ) -> Arc<k8s_openapi::api::core::v1::PersistentVolume> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": class,
                         "local": {"path": "/mnt/x"},
                         "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                             {"key": "kubernetes.io/hostname", "operator": "In", "values": [host]}]}]}}},
                "status": {"phase": "Available"}
            }))
            .unwrap(),
        )
    }

    fn class(name: &str, provisioner: &str) -> Arc<StorageClass> {
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": name}, "provisioner": provisioner,
                "volumeBindingMode": "WaitForFirstConsumer"}),
            )
            .unwrap(),
        )
    }

    fn pod_with(claims: &[&str]) -> Pod {
        let mut pod = crate::testing::make_pod("p").pod();
        pod.spec.as_mut().unwrap().volumes = Some(
            claims
                .iter()
                .map(|c| {
                    serde_json::from_value(
                        json!({"name": c, "persistentVolumeClaim": {"claimName": c}}),
                    )
                    .unwrap()
                })
                .collect(),
        );
        pod
    }

    fn node_info(name: &str) -> NodeInfo {
        let node = make_node(name).label("kubernetes.io/hostname", name).node();
        let mut info = NodeInfo::new(name);
        info.node = Some(Arc::new(node));
        info
    }

    fn plugin(cache: Arc<VolumeCache>, binder: Arc<FakeBinder>) -> VolumeBinding {
        VolumeBinding::new(Some(&json!({"bindTimeoutSeconds": 1})), cache, binder).unwrap()
    }

    #[test]
    fn claims_are_sorted_in_pre_filter() {
        let cache = Arc::new(VolumeCache::default());
        let p = plugin(cache.clone(), FakeBinder::new());
        let mut state = CycleState::new();
        let snapshot = Snapshot::default();
        assert!(p
            .pre_filter(&mut state, &crate::testing::make_pod("p").pod(), &snapshot)
            .1
            .is_skip());
        let (_, status) = p.pre_filter(&mut state, &pod_with(&["data"]), &snapshot);
        assert_eq!(
            status,
            Status::unresolvable("persistentvolumeclaim \"data\" not found")
        );
        cache.put_claim(claim("data", "standard", None));
        let (_, status) = p.pre_filter(&mut state, &pod_with(&["data"]), &snapshot);
        assert_eq!(status, Status::unresolvable(ERR_UNBOUND_IMMEDIATE));
        cache.put_class(class("standard", "local.csi.ferry.dev"));
        let (_, status) = p.pre_filter(&mut state, &pod_with(&["data"]), &snapshot);
        assert!(status.is_success());
    }

    #[test]
    fn an_ephemeral_volume_waits_for_its_own_claim() {
        let cache = Arc::new(VolumeCache::default());
        cache.put_class(class("standard", "local.csi.ferry.dev"));
        let p = plugin(cache.clone(), FakeBinder::new());
        let mut pod = crate::testing::make_pod("p").pod();
        pod.metadata.uid = Some("p-uid".into());
        pod.spec.as_mut().unwrap().volumes = Some(vec![serde_json::from_value(json!(
            {"name": "work", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}
        ))
        .unwrap()]);
        let mut state = CycleState::new();
        let (_, status) = p.pre_filter(&mut state, &pod, &Snapshot::default());
        assert_eq!(
            status,
            Status::unresolvable(
                "waiting for ephemeral volume controller to create the persistentvolumeclaim \"p-work\""
            )
        );
        // A claim of that name someone else made is not the pod's.
        let mut other = (*claim("p-work", "standard", None)).clone();
        cache.put_claim(Arc::new(other.clone()));
        let (_, status) = p.pre_filter(&mut state, &pod, &Snapshot::default());
        assert_eq!(
            status,
            Status::unresolvable(
                "PVC default/p-work was not created for pod default/p (pod is not owner)"
            )
        );
        other.metadata.owner_references = Some(vec![serde_json::from_value(json!(
            {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "p-uid", "controller": true}
        ))
        .unwrap()]);
        cache.put_claim(Arc::new(other));
        assert!(p
            .pre_filter(&mut state, &pod, &Snapshot::default())
            .1
            .is_success());
    }

    #[tokio::test]
    async fn local_volumes_decide_the_node_and_are_bound_in_pre_bind() {
        let cache = Arc::new(VolumeCache::default());
        let binder = FakeBinder::new();
        let p = plugin(cache.clone(), binder.clone());
        cache.put_class(class("local", NO_PROVISIONER));
        cache.put_claim(claim("data", "local", None));
        cache.put_volume(local_volume("pv-b", "b", "local"));
        let pod = pod_with(&["data"]);
        let mut state = CycleState::new();
        assert!(p
            .pre_filter(&mut state, &pod, &Snapshot::default())
            .1
            .is_success());
        assert_eq!(
            p.filter(&state, &pod, &node_info("a")),
            Status::unschedulable(ERR_BIND_CONFLICT)
        );
        assert!(p.filter(&state, &pod, &node_info("b")).is_success());
        assert!(p.reserve(&mut state, &pod, "b").is_success());
        // Assumed: another pod's claim does not get it.
        assert!(cache.free_volumes("default/other").is_empty());
        // PreBind binds and waits; the claim never gets bound here, so it times out.
        let status = p.pre_bind(&state, &pod, "b").await;
        assert_eq!(
            binder.calls(),
            [Call::BindVolume("pv-b".into(), "default/data".into())]
        );
        assert!(status.message().contains("deadline exceeded"), "{status:?}");
        p.unreserve(&mut state, &pod, "b");
        assert_eq!(cache.free_volumes("default/other").len(), 1);
    }

    #[tokio::test]
    async fn provisioned_claims_get_the_selected_node() {
        let cache = Arc::new(VolumeCache::default());
        let binder = FakeBinder::new();
        let p = plugin(cache.clone(), binder.clone());
        cache.put_class(class("standard", "local.csi.ferry.dev"));
        cache.put_claim(claim("data", "standard", None));
        let pod = pod_with(&["data"]);
        let mut state = CycleState::new();
        assert!(p
            .pre_filter(&mut state, &pod, &Snapshot::default())
            .1
            .is_success());
        assert!(p.filter(&state, &pod, &node_info("a")).is_success());
        assert!(p.reserve(&mut state, &pod, "a").is_success());
        let waiter = {
            let cache = cache.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                cache.put_claim(claim("data", "standard", Some("pv-new")));
            })
        };
        let status = p.pre_bind(&state, &pod, "a").await;
        waiter.await.unwrap();
        assert!(status.is_success(), "{status:?}");
        assert_eq!(
            binder.calls(),
            [Call::SelectNode("default/data".into(), "a".into())]
        );
    }

    #[test]
    fn bound_volumes_pin_the_pod_to_their_node() {
        let cache = Arc::new(VolumeCache::default());
        let p = plugin(cache.clone(), FakeBinder::new());
        cache.put_claim(claim("data", "local", Some("pv-b")));
        cache.put_volume(local_volume("pv-b", "b", "local"));
        let pod = pod_with(&["data"]);
        let mut state = CycleState::new();
        assert!(p
            .pre_filter(&mut state, &pod, &Snapshot::default())
            .1
            .is_success());
        assert_eq!(
            p.filter(&state, &pod, &node_info("a")),
            Status::unresolvable(ERR_NODE_CONFLICT)
        );
        assert!(p.filter(&state, &pod, &node_info("b")).is_success());
    }
}
