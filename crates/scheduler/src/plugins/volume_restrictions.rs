//! VolumeRestrictions: a claim with the `ReadWriteOncePod` access mode serves one pod only, as
//! upstream's `volumerestrictions` plugin — a pod whose RWOP claim another scheduled pod already
//! uses is refused at PreFilter. (Upstream's checks of in-line GCE PD, EBS, RBD and iSCSI
//! volumes concern volume types ferry has no plugin for.)

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::cache::Snapshot;
use crate::framework::{ClusterEvent, CycleState, Plugin, PreFilter, PreFilterResult, Status};
use crate::plugins::volume_binding::pod_claims;
use crate::volumes::VolumeCache;

/// The plugin's name.
pub const NAME: &str = "VolumeRestrictions";
/// Upstream's reason.
pub const ERR_READ_WRITE_ONCE_POD: &str =
    "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode";

/// The plugin.
pub struct VolumeRestrictions {
    volumes: Arc<VolumeCache>,
}

impl VolumeRestrictions {
    /// The plugin over the scheduler's claims.
    pub fn new(volumes: Arc<VolumeCache>) -> VolumeRestrictions {
        VolumeRestrictions { volumes }
    }
}

impl Plugin for VolumeRestrictions {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events(&self) -> Vec<ClusterEvent> {
        vec![
            ClusterEvent::AssignedPodDelete,
            ClusterEvent::PersistentVolumeClaimChange,
        ]
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilter> {
        Some(self)
    }
}

impl PreFilter for VolumeRestrictions {
    fn pre_filter(
        &self,
        _state: &mut CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
    ) -> (Option<PreFilterResult>, Status) {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let exclusive: Vec<String> = pod_claims(pod)
            .into_iter()
            .map(|(name, _)| name)
            .filter(|name| {
                self.volumes.claim(namespace, name).is_some_and(|c| {
                    c.spec
                        .as_ref()
                        .and_then(|s| s.access_modes.as_ref())
                        .is_some_and(|m| m.iter().any(|m| m == "ReadWriteOncePod"))
                })
            })
            .collect();
        if exclusive.is_empty() {
            return (None, Status::skip());
        }
        let own_uid = pod.metadata.uid.as_deref();
        let taken = snapshot
            .nodes
            .iter()
            .flat_map(|n| n.pods.iter())
            .any(|other| {
                other.pod.metadata.uid.as_deref() != own_uid
                    && other.pod.metadata.namespace.as_deref().unwrap_or("default") == namespace
                    && pod_claims(&other.pod)
                        .iter()
                        .any(|(name, _)| exclusive.contains(name))
            });
        if taken {
            return (None, Status::unresolvable(ERR_READ_WRITE_ONCE_POD));
        }
        (None, Status::success())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cache::NodeInfo;
    use crate::testing::make_node;

    fn pod(name: &str, uid: &str, claim: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": uid},
            "spec": {"containers": [], "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_read_write_once_pod_claim_serves_one_pod() {
        let cache = Arc::new(VolumeCache::default());
        for (name, mode) in [("solo", "ReadWriteOncePod"), ("shared", "ReadWriteOnce")] {
            cache.put_claim(Arc::new(
                serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"},
                    "spec": {"accessModes": [mode]}}))
                .unwrap(),
            ));
        }
        let plugin = VolumeRestrictions::new(cache);
        let node = NodeInfo::with_pods(
            make_node("n1").node(),
            [pod("a", "u1", "solo"), pod("b", "u2", "shared")],
        );
        let snapshot = Snapshot::from_node_infos([node]);
        let mut state = CycleState::new();
        let (_, status) = plugin.pre_filter(&mut state, &pod("c", "u3", "solo"), &snapshot);
        assert_eq!(status, Status::unresolvable(ERR_READ_WRITE_ONCE_POD));
        let (_, status) = plugin.pre_filter(&mut state, &pod("c", "u3", "shared"), &snapshot);
        assert!(status.is_skip());
        let (_, status) = plugin.pre_filter(&mut state, &pod("a", "u1", "solo"), &snapshot);
        assert!(status.is_success(), "a pod does not conflict with itself");
    }
}
