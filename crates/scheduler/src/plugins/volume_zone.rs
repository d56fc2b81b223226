//! VolumeZone: a pod whose bound volumes carry zone or region labels runs only on a node in one
//! of those zones and regions, as upstream's `volumezone` plugin. PreFilter gathers the
//! topology labels of the pod's bound volumes (claims of a `WaitForFirstConsumer` class not yet
//! bound are VolumeBinding's business); Filter checks each node that has any topology label
//! (a node without one — a single-zone cluster — always passes). A volume's label may list
//! several zones joined by `__`; a volume's beta label is matched against a node's GA label
//! when the node has only that.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::cache::{NodeInfo, Snapshot};
use crate::framework::{
    ClusterEvent, CycleState, Filter, Plugin, PreFilter, PreFilterResult, Status,
};
use crate::plugins::volume_binding::pod_claims;
use crate::volumes::VolumeCache;

/// The plugin's name.
pub const NAME: &str = "VolumeZone";
/// Upstream's reason.
pub const ERR_REASON_CONFLICT: &str = "node(s) had no available volume zone";

const STATE_KEY: &str = "PreFilterVolumeZone";

const BETA_ZONE: &str = "failure-domain.beta.kubernetes.io/zone";
const BETA_REGION: &str = "failure-domain.beta.kubernetes.io/region";
const ZONE: &str = "topology.kubernetes.io/zone";
const REGION: &str = "topology.kubernetes.io/region";
/// The labels that place a volume and a node, in upstream's order.
const TOPOLOGY_LABELS: [&str; 4] = [BETA_ZONE, BETA_REGION, ZONE, REGION];

/// The GA label of a beta one.
fn ga_label(key: &str) -> &str {
    match key {
        BETA_ZONE => ZONE,
        BETA_REGION => REGION,
        other => other,
    }
}

/// One label of one of the pod's volumes: its key and the zones (or regions) it allows.
#[derive(Debug, PartialEq)]
struct VolumeTopology {
    key: &'static str,
    values: BTreeSet<String>,
}

/// The plugin.
pub struct VolumeZone {
    volumes: Arc<VolumeCache>,
}

impl VolumeZone {
    /// The plugin over the scheduler's claims, volumes and classes.
    pub fn new(volumes: Arc<VolumeCache>) -> VolumeZone {
        VolumeZone { volumes }
    }

    /// The topology labels of `pod`'s bound volumes, or why the pod cannot be placed.
    fn topologies(&self, pod: &Pod) -> Result<Vec<VolumeTopology>, Status> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let mut topologies = Vec::new();
        for (name, _) in pod_claims(pod) {
            if name.is_empty() {
                return Err(Status::unresolvable("PersistentVolumeClaim had no name"));
            }
            let Some(claim) = self.volumes.claim(namespace, &name) else {
                return Err(Status::unresolvable(format!(
                    "persistentvolumeclaim {name:?} not found"
                )));
            };
            let spec = claim.spec.as_ref();
            let volume_name = spec.and_then(|s| s.volume_name.as_deref()).unwrap_or("");
            if volume_name.is_empty() {
                let class = ferry_api::volumes::claim_class(&claim);
                if class.is_empty() {
                    return Err(Status::unresolvable(
                        "PersistentVolumeClaim had no pv name and storageClass name",
                    ));
                }
                let Some(class) = self.volumes.class(class) else {
                    return Err(Status::unresolvable(format!(
                        "storageclass.storage.k8s.io {class:?} not found"
                    )));
                };
                match class.volume_binding_mode.as_deref() {
                    // Not bound yet: its volume will be made or picked for the chosen node.
                    Some("WaitForFirstConsumer") => continue,
                    None => {
                        return Err(Status::unresolvable(format!(
                            "VolumeBindingMode not set for StorageClass {:?}",
                            class.metadata.name.as_deref().unwrap_or("")
                        )))
                    }
                    Some(_) => return Err(Status::unresolvable("PersistentVolume had no name")),
                }
            }
            let Some(volume) = self.volumes.volume(volume_name) else {
                return Err(Status::unresolvable(format!(
                    "persistentvolume {volume_name:?} not found"
                )));
            };
            let labels = volume.metadata.labels.as_ref();
            for key in TOPOLOGY_LABELS {
                if let Some(value) = labels.and_then(|l| l.get(key)) {
                    let values = value
                        .split("__")
                        .map(str::trim)
                        .filter(|z| !z.is_empty())
                        .map(str::to_string)
                        .collect();
                    topologies.push(VolumeTopology { key, values });
                }
            }
        }
        Ok(topologies)
    }
}

impl Plugin for VolumeZone {
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
        ]
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilter> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn Filter> {
        Some(self)
    }
}

impl PreFilter for VolumeZone {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        _snapshot: &Snapshot,
    ) -> (Option<PreFilterResult>, Status) {
        if pod_claims(pod).is_empty() {
            return (None, Status::skip());
        }
        match self.topologies(pod) {
            Err(status) => (None, status),
            Ok(topologies) if topologies.is_empty() => (None, Status::skip()),
            Ok(topologies) => {
                state.write(STATE_KEY, Arc::new(topologies));
                (None, Status::success())
            }
        }
    }
}

impl Filter for VolumeZone {
    fn filter(&self, state: &CycleState, _pod: &Pod, node: &NodeInfo) -> Status {
        let Some(topologies) = state.read::<Arc<Vec<VolumeTopology>>>(STATE_KEY) else {
            return Status::success();
        };
        let labels = node.node.as_ref().and_then(|n| n.metadata.labels.as_ref());
        let Some(labels) = labels.filter(|l| TOPOLOGY_LABELS.iter().any(|k| l.contains_key(*k)))
        else {
            // A node without any topology label (a single-zone cluster) takes any volume.
            return Status::success();
        };
        for topology in topologies.iter() {
            let value = labels
                .get(topology.key)
                .or_else(|| labels.get(ga_label(topology.key)));
            if !value.is_some_and(|v| topology.values.contains(v)) {
                return Status::unresolvable(ERR_REASON_CONFLICT);
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

    fn pod(claim: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u"},
            "spec": {"containers": [], "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]}
        }))
        .unwrap()
    }

    fn cache() -> Arc<VolumeCache> {
        let cache = Arc::new(VolumeCache::default());
        let claim = |name: &str, volume: &str, class: &str| {
            Arc::new(
                serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"},
                    "spec": {"volumeName": volume, "storageClassName": class}}))
                .unwrap(),
            )
        };
        cache.put_claim(claim("in-a", "pv-a", ""));
        cache.put_claim(claim("in-a-or-b", "pv-ab", ""));
        cache.put_claim(claim("beta", "pv-beta", ""));
        cache.put_claim(claim("later", "", "wait"));
        cache.put_claim(claim("now", "", "immediate"));
        let volume = |name: &str, labels: serde_json::Value| {
            Arc::new(
                serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))
                    .unwrap(),
            )
        };
        cache.put_volume(volume("pv-a", json!({ZONE: "zone-a", REGION: "r1"})));
        cache.put_volume(volume("pv-ab", json!({ZONE: "zone-a__zone-b"})));
        cache.put_volume(volume("pv-beta", json!({BETA_ZONE: "zone-b"})));
        for (name, mode) in [("wait", "WaitForFirstConsumer"), ("immediate", "Immediate")] {
            cache.put_class(Arc::new(
                serde_json::from_value(json!({"metadata": {"name": name}, "provisioner": "x",
                    "volumeBindingMode": mode}))
                .unwrap(),
            ));
        }
        cache
    }

    fn node(labels: &[(&str, &str)]) -> NodeInfo {
        let mut builder = make_node("n");
        for (k, v) in labels {
            builder = builder.label(k, v);
        }
        let mut info = NodeInfo::new("n");
        info.node = Some(Arc::new(builder.node()));
        info
    }

    /// The pod's filter status on a node with `labels`.
    fn on(plugin: &VolumeZone, pod: &Pod, labels: &[(&str, &str)]) -> Status {
        let mut state = CycleState::new();
        let (_, status) = plugin.pre_filter(&mut state, pod, &Snapshot::default());
        assert!(status.is_success(), "{status:?}");
        plugin.filter(&state, pod, &node(labels))
    }

    #[test]
    fn bound_volumes_keep_their_pods_in_their_zone() {
        let plugin = VolumeZone::new(cache());
        let conflict = Status::unresolvable(ERR_REASON_CONFLICT);
        let p = pod("in-a");
        assert!(on(&plugin, &p, &[(ZONE, "zone-a"), (REGION, "r1")]).is_success());
        assert_eq!(
            on(&plugin, &p, &[(ZONE, "zone-b"), (REGION, "r1")]),
            conflict
        );
        assert_eq!(
            on(&plugin, &p, &[(ZONE, "zone-a"), (REGION, "r2")]),
            conflict
        );
        // A node with no topology label at all takes it; one with some but not the zone does not.
        assert!(on(&plugin, &p, &[("other", "x")]).is_success());
        assert_eq!(on(&plugin, &p, &[(REGION, "r1")]), conflict);
        // Several zones joined by "__".
        let p = pod("in-a-or-b");
        assert!(on(&plugin, &p, &[(ZONE, "zone-b")]).is_success());
        assert_eq!(on(&plugin, &p, &[(ZONE, "zone-c")]), conflict);
        // A volume's beta label matches a node's GA label.
        let p = pod("beta");
        assert!(on(&plugin, &p, &[(ZONE, "zone-b")]).is_success());
        assert_eq!(on(&plugin, &p, &[(ZONE, "zone-a")]), conflict);
    }

    #[test]
    fn unbound_claims_are_skipped_or_refused_as_upstream() {
        let plugin = VolumeZone::new(cache());
        let mut state = CycleState::new();
        let snapshot = Snapshot::default();
        let no_volumes: Pod =
            serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": []}}))
                .unwrap();
        assert!(plugin
            .pre_filter(&mut state, &no_volumes, &snapshot)
            .1
            .is_skip());
        assert!(plugin
            .pre_filter(&mut state, &pod("later"), &snapshot)
            .1
            .is_skip());
        assert_eq!(
            plugin.pre_filter(&mut state, &pod("now"), &snapshot).1,
            Status::unresolvable("PersistentVolume had no name")
        );
        assert_eq!(
            plugin.pre_filter(&mut state, &pod("gone"), &snapshot).1,
            Status::unresolvable("persistentvolumeclaim \"gone\" not found")
        );
    }
}
