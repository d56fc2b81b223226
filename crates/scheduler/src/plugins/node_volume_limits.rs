//! NodeVolumeLimits: a node takes no more CSI volumes of a driver than its CSINode allows
//! (`spec.drivers[].allocatable.count`), as upstream's `nodevolumelimits` CSI plugin. A pod's
//! claims (and its ephemeral volumes' claims) count as `<driver>/<volume handle>` — from the
//! bound volume's `csi` source, or for a claim not bound yet its class's provisioner and a
//! handle of its own — and a volume the node's pods already use is not counted twice. A node
//! without a CSINode, or a driver without a count, has no limit.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::CSINode;

use crate::cache::{NodeInfo, Snapshot};
use crate::framework::{
    ClusterEvent, CycleState, Filter, Plugin, PreFilter, PreFilterResult, Status,
};
use crate::plugins::volume_binding::pod_claims;
use crate::volumes::VolumeCache;

/// The plugin's name.
pub const NAME: &str = "NodeVolumeLimits";
/// Upstream's reason.
pub const ERR_REASON_MAX_VOLUME_COUNT_EXCEEDED: &str = "node(s) exceed max volume count";

const STATE_KEY: &str = "PreFilterNodeVolumeLimits";

/// CSI volumes as `driver/handle` → driver.
type CsiVolumes = HashMap<String, String>;

/// The plugin.
pub struct NodeVolumeLimits {
    volumes: Arc<VolumeCache>,
}

impl NodeVolumeLimits {
    /// The plugin over the scheduler's claims, volumes, classes and CSINodes.
    pub fn new(volumes: Arc<VolumeCache>) -> NodeVolumeLimits {
        NodeVolumeLimits { volumes }
    }

    /// The driver and handle of `claim`'s volume (upstream's `getCSIDriverInfo`): its bound
    /// volume's CSI source, or for a claim not bound yet its class's provisioner and a handle
    /// naming the claim.
    fn driver_and_handle(&self, claim: &PersistentVolumeClaim) -> Option<(String, String)> {
        let bound = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.as_deref())
            .filter(|v| !v.is_empty())
            .and_then(|v| self.volumes.volume(v));
        if let Some(volume) = bound {
            let csi = volume.spec.as_ref()?.csi.as_ref()?;
            return Some((csi.driver.clone(), csi.volume_handle.clone()));
        }
        let class = ferry_api::volumes::claim_class(claim);
        if class.is_empty() {
            return None;
        }
        let provisioner = self.volumes.class(class)?.provisioner.clone();
        let handle = format!(
            "unbound-{}/{}",
            claim.metadata.namespace.as_deref().unwrap_or(""),
            claim.metadata.name.as_deref().unwrap_or("")
        );
        Some((provisioner, handle))
    }

    /// The CSI volumes of `pod` into `into`. For the pod being scheduled (`new_pod`) a missing
    /// claim or an ephemeral claim it does not own is why it cannot run anywhere yet; for pods
    /// already on the node such a claim is not counted.
    fn attachable(&self, pod: &Pod, new_pod: bool, into: &mut CsiVolumes) -> Result<(), String> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        for (name, ephemeral) in pod_claims(pod) {
            let Some(claim) = self.volumes.claim(namespace, &name) else {
                if new_pod {
                    return Err(format!(
                        "looking up PVC {namespace}/{name}: persistentvolumeclaim {name:?} not found"
                    ));
                }
                continue;
            };
            if ephemeral {
                if let Some(why) = ferry_api::volumes::ephemeral_claim_not_for_pod(pod, &claim) {
                    if new_pod {
                        return Err(why);
                    }
                    continue;
                }
            }
            if let Some((driver, handle)) = self.driver_and_handle(&claim) {
                into.insert(format!("{driver}/{handle}"), driver);
            }
        }
        Ok(())
    }
}

/// Each driver's volume limit on the node (upstream's `getVolumeLimits`).
fn limits(csi_node: &CSINode) -> BTreeMap<&str, i32> {
    csi_node
        .spec
        .drivers
        .iter()
        .filter_map(|d| {
            let count = d.allocatable.as_ref()?.count?;
            Some((d.name.as_str(), count))
        })
        .collect()
}

impl Plugin for NodeVolumeLimits {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events(&self) -> Vec<ClusterEvent> {
        vec![
            ClusterEvent::NodeAdd,
            ClusterEvent::CsiNodeChange,
            ClusterEvent::AssignedPodDelete,
            ClusterEvent::PersistentVolumeClaimChange,
            ClusterEvent::PersistentVolumeChange,
        ]
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilter> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn Filter> {
        Some(self)
    }
}

impl PreFilter for NodeVolumeLimits {
    /// The pod's own CSI volumes, counted once for every node.
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        _snapshot: &Snapshot,
    ) -> (Option<PreFilterResult>, Status) {
        if pod_claims(pod).is_empty() {
            return (None, Status::skip());
        }
        let mut volumes = CsiVolumes::new();
        if let Err(why) = self.attachable(pod, true, &mut volumes) {
            return (None, Status::unresolvable(why));
        }
        if volumes.is_empty() {
            return (None, Status::skip());
        }
        state.write(STATE_KEY, Arc::new(volumes));
        (None, Status::success())
    }
}

impl Filter for NodeVolumeLimits {
    fn filter(&self, state: &CycleState, _pod: &Pod, node: &NodeInfo) -> Status {
        let Some(new_volumes) = state.read::<Arc<CsiVolumes>>(STATE_KEY) else {
            return Status::success();
        };
        let csi_node = self.volumes.csi_node(&node.name);
        let limits = csi_node.as_deref().map(limits).unwrap_or_default();
        if limits.is_empty() {
            return Status::success();
        }
        let mut attached = CsiVolumes::new();
        for existing in &node.pods {
            // Claims of pods already there that cannot be counted are not counted.
            let _ = self.attachable(&existing.pod, false, &mut attached);
        }
        let mut attached_per_driver: HashMap<&str, i32> = HashMap::new();
        for driver in attached.values() {
            *attached_per_driver.entry(driver.as_str()).or_default() += 1;
        }
        let mut new_per_driver: HashMap<&str, i32> = HashMap::new();
        // A volume the node already has costs nothing more.
        for (volume, driver) in new_volumes.iter() {
            if !attached.contains_key(volume) {
                *new_per_driver.entry(driver.as_str()).or_default() += 1;
            }
        }
        for (driver, count) in new_per_driver {
            if let Some(limit) = limits.get(driver) {
                if attached_per_driver.get(driver).copied().unwrap_or(0) + count > *limit {
                    return Status::unschedulable(ERR_REASON_MAX_VOLUME_COUNT_EXCEEDED);
                }
            }
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::make_node;

    const DRIVER: &str = "local.csi.ferry.dev";

    fn pod(name: &str, claims: &[&str]) -> Pod {
        let volumes: Vec<serde_json::Value> = claims
            .iter()
            .map(|c| json!({"name": c, "persistentVolumeClaim": {"claimName": c}}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("{name}-uid")},
            "spec": {"containers": [], "volumes": volumes}
        }))
        .unwrap()
    }

    fn cache(limit: Option<i32>) -> Arc<VolumeCache> {
        let cache = Arc::new(VolumeCache::default());
        for (claim, volume) in [("a", "pv-a"), ("b", "pv-b"), ("c", "pv-c"), ("new", "")] {
            cache.put_claim(Arc::new(
                serde_json::from_value(json!({"metadata": {"name": claim, "namespace": "default"},
                    "spec": {"volumeName": volume, "storageClassName": "local"}}))
                .unwrap(),
            ));
        }
        for volume in ["pv-a", "pv-b", "pv-c"] {
            cache.put_volume(Arc::new(
                serde_json::from_value(json!({"metadata": {"name": volume},
                    "spec": {"csi": {"driver": DRIVER, "volumeHandle": format!("h-{volume}")}}}))
                .unwrap(),
            ));
        }
        cache.put_class(Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "local"}, "provisioner": DRIVER}))
                .unwrap(),
        ));
        let allocatable = limit.map(|count| json!({"count": count}));
        cache.put_csi_node(Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "n1"},
                "spec": {"drivers": [{"name": DRIVER, "nodeID": "n1", "allocatable": allocatable}]}}))
            .unwrap(),
        ));
        cache
    }

    fn node_with(pods: Vec<Pod>) -> NodeInfo {
        NodeInfo::with_pods(make_node("n1").node(), pods)
    }

    /// The pod's status on `node`: PreFilter's if it refuses, Filter's after it.
    fn filter(plugin: &NodeVolumeLimits, pod: &Pod, node: &NodeInfo) -> Status {
        let mut state = CycleState::new();
        let (_, status) = plugin.pre_filter(&mut state, pod, &Snapshot::default());
        if status.is_skip() {
            return Status::success();
        }
        if !status.is_success() {
            return status;
        }
        plugin.filter(&state, pod, node)
    }

    #[test]
    fn a_node_takes_no_more_volumes_of_a_driver_than_its_csinode_allows() {
        let plugin = NodeVolumeLimits::new(cache(Some(2)));
        let full = Status::unschedulable(ERR_REASON_MAX_VOLUME_COUNT_EXCEEDED);
        let node = node_with(vec![pod("x", &["a"]), pod("y", &["b"])]);
        assert_eq!(filter(&plugin, &pod("p", &["c"]), &node), full);
        // A claim not bound yet counts against its class's provisioner.
        assert_eq!(filter(&plugin, &pod("p", &["new"]), &node), full);
        // A volume the node already has costs nothing.
        assert!(filter(&plugin, &pod("p", &["a"]), &node).is_success());
        let node = node_with(vec![pod("x", &["a"])]);
        assert!(filter(&plugin, &pod("p", &["c"]), &node).is_success());
        assert_eq!(filter(&plugin, &pod("p", &["b", "c"]), &node), full);
    }

    #[test]
    fn no_csinode_or_no_count_is_no_limit() {
        let node = node_with(vec![pod("x", &["a"]), pod("y", &["b"])]);
        let plugin = NodeVolumeLimits::new(cache(None));
        assert!(filter(&plugin, &pod("p", &["c"]), &node).is_success());
        let plugin = NodeVolumeLimits::new(cache(Some(2)));
        plugin.volumes.remove_csi_node("n1");
        assert!(filter(&plugin, &pod("p", &["c"]), &node).is_success());
    }

    #[test]
    fn a_missing_claim_of_the_new_pod_is_unresolvable_and_pods_without_claims_skip() {
        let plugin = NodeVolumeLimits::new(cache(Some(2)));
        let node = node_with(vec![pod("x", &["gone"])]);
        assert_eq!(
            filter(&plugin, &pod("p", &["gone"]), &node),
            Status::unresolvable(
                "looking up PVC default/gone: persistentvolumeclaim \"gone\" not found"
            )
        );
        assert!(filter(&plugin, &pod("p", &["a"]), &node).is_success());
        let (_, status) =
            plugin.pre_filter(&mut CycleState::new(), &pod("p", &[]), &Snapshot::default());
        assert!(status.is_skip());
    }
}
