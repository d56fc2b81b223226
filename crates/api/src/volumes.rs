//! Matching claims to volumes, as upstream's `pkg/controller/volume/persistentvolume/util`:
//! what the PersistentVolume controller binds at once and what the scheduler's VolumeBinding
//! plugin binds on a chosen node.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Node, ObjectReference, PersistentVolume, PersistentVolumeClaim, Pod,
};

use crate::matching::{node_selector_terms_match, selector_matches};
use crate::quantity::Quantity;

/// On a claim and a volume: the controller finished binding them.
pub const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// On a claim and a volume: the controller (not a user) bound them.
pub const BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// On a claim: the provisioner asked to create its volume.
pub const STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
/// The beta spelling, still written by upstream.
pub const BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
/// On a claim: the node the scheduler picked for its first consumer.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// On a volume: the provisioner that created it.
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// A StorageClass provisioner that provisions nothing (statically made local volumes).
pub const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";

/// The claim of pod `pod`'s generic ephemeral volume `volume` (upstream's
/// `ephemeral.VolumeClaimName`).
pub fn ephemeral_claim_name(pod: &str, volume: &str) -> String {
    format!("{pod}-{volume}")
}

/// The claims a pod uses, each with whether it is an ephemeral volume's: its
/// `persistentVolumeClaim` volumes and the claims of its generic ephemeral volumes
/// (`<pod>-<volume>`).
pub fn pod_claims(pod: &Pod) -> Vec<(String, bool)> {
    let pod_name = pod.metadata.name.as_deref().unwrap_or("");
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|v| match (&v.persistent_volume_claim, &v.ephemeral) {
            (Some(claim), _) => Some((claim.claim_name.clone(), false)),
            (None, Some(_)) => Some((ephemeral_claim_name(pod_name, &v.name), true)),
            _ => None,
        })
        .collect()
}

/// Why `claim` may not serve `pod`'s generic ephemeral volume, if it may not (upstream's
/// `ephemeral.VolumeIsForPod`): it must be in the pod's namespace and controlled by the pod.
pub fn ephemeral_claim_not_for_pod(pod: &Pod, claim: &PersistentVolumeClaim) -> Option<String> {
    let uid = pod.metadata.uid.as_deref().unwrap_or("");
    let controlled = claim
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == uid);
    let namespace = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        m.namespace.clone().unwrap_or_default()
    };
    let name = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        m.name.clone().unwrap_or_default()
    };
    (namespace(&claim.metadata) != namespace(&pod.metadata) || !controlled).then(|| {
        format!(
            "PVC {}/{} was not created for pod {}/{} (pod is not owner)",
            namespace(&claim.metadata),
            name(&claim.metadata),
            namespace(&pod.metadata),
            name(&pod.metadata)
        )
    })
}

/// A claim's class name ("" for none).
pub fn claim_class(claim: &PersistentVolumeClaim) -> &str {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or("")
}

/// A volume's class name ("" for none).
pub fn volume_class(volume: &PersistentVolume) -> &str {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or("")
}

/// A volume's phase ("" before the first status).
pub fn phase_of_volume(volume: &PersistentVolume) -> &str {
    volume
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Whether a volume's claim reference names `claim` (an empty uid: pre-bound by name).
pub fn refers_to(reference: &ObjectReference, claim: &PersistentVolumeClaim) -> bool {
    reference.name.as_deref() == claim.metadata.name.as_deref()
        && reference.namespace.as_deref() == claim.metadata.namespace.as_deref()
        && reference
            .uid
            .as_deref()
            .is_none_or(|u| u.is_empty() || Some(u) == claim.metadata.uid.as_deref())
}

/// The reference to `claim` a bound volume holds.
pub fn claim_reference(claim: &PersistentVolumeClaim) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        name: claim.metadata.name.clone(),
        namespace: claim.metadata.namespace.clone(),
        uid: claim.metadata.uid.clone(),
        resource_version: claim.metadata.resource_version.clone(),
        field_path: None,
    }
}

/// The storage a claim requests.
pub fn requested(claim: &PersistentVolumeClaim) -> Quantity {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .and_then(|q| Quantity::parse(&q.0).ok())
        .unwrap_or(Quantity::ZERO)
}

/// A volume's storage capacity.
pub fn capacity(volume: &PersistentVolume) -> Quantity {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .and_then(|q| Quantity::parse(&q.0).ok())
        .unwrap_or(Quantity::ZERO)
}

/// Whether `volume` can serve `claim` as far as the claim asks (upstream's
/// `checkVolumeSatisfyClaim`): size, class, volume mode, access modes.
pub fn satisfies(volume: &PersistentVolume, claim: &PersistentVolumeClaim) -> Result<(), String> {
    if capacity(volume) < requested(claim) {
        return Err("requested PV is too small".into());
    }
    if volume_class(volume) != claim_class(claim) {
        return Err("storageClassName does not match".into());
    }
    let mode = |m: Option<&String>| m.map_or("Filesystem", |m| m.as_str()).to_string();
    if mode(volume.spec.as_ref().and_then(|s| s.volume_mode.as_ref()))
        != mode(claim.spec.as_ref().and_then(|s| s.volume_mode.as_ref()))
    {
        return Err("incompatible volumeMode".into());
    }
    let volume_modes = volume
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.clone())
        .unwrap_or_default();
    let claim_modes = claim
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.clone())
        .unwrap_or_default();
    if !claim_modes.iter().all(|m| volume_modes.contains(m)) {
        return Err("incompatible accessMode".into());
    }
    Ok(())
}

/// The volume `claim` is bound to (upstream's `FindMatchingVolume`): one pre-bound to the
/// claim, else the smallest Available volume that satisfies it and matches its selector. With a
/// `node` (the scheduler, for claims that wait for their first consumer) the volume's node
/// affinity must admit the node; without one, claims that wait (`delay_binding`) only take
/// pre-bound volumes. Volumes named in `excluded` (chosen for the pod's other claims) are
/// skipped.
pub fn find_best_match(
    claim: &PersistentVolumeClaim,
    volumes: &[Arc<PersistentVolume>],
    node: Option<&Node>,
    delay_binding: bool,
    excluded: &[String],
) -> Option<Arc<PersistentVolume>> {
    let selector = claim.spec.as_ref().and_then(|s| s.selector.as_ref());
    let mut best: Option<&Arc<PersistentVolume>> = None;
    for volume in volumes {
        if volume.metadata.deletion_timestamp.is_some()
            || excluded
                .iter()
                .any(|e| Some(e.as_str()) == volume.metadata.name.as_deref())
            || satisfies(volume, claim).is_err()
            || node.is_some_and(|n| !volume_admits_node(volume, n))
        {
            continue;
        }
        match volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) {
            Some(r) if refers_to(r, claim) => return Some(volume.clone()),
            Some(_) => continue,
            None => {}
        }
        if (node.is_none() && delay_binding) || phase_of_volume(volume) != "Available" {
            continue;
        }
        if selector.is_some_and(|s| {
            !selector_matches(
                s,
                volume.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()),
            )
        }) {
            continue;
        }
        if best.is_none_or(|b| capacity(volume) < capacity(b)) {
            best = Some(volume);
        }
    }
    best.cloned()
}

/// Whether a volume's required node affinity admits `node` (volumes without one admit all).
pub fn volume_admits_node(volume: &PersistentVolume, node: &Node) -> bool {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
        .is_none_or(|r| node_selector_terms_match(&r.node_selector_terms, node))
}
#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn volume(
        name: &str,
        size: &str,
        class: &str,
        modes: &[&str],
        extra: serde_json::Value,
    ) -> Arc<PersistentVolume> {
        let mut value = json!({
            "metadata": {"name": name, "labels": {"tier": "fast"}},
            "spec": {"capacity": {"storage": size}, "storageClassName": class, "accessModes": modes,
                     "hostPath": {"path": "/tmp/x"}},
            "status": {"phase": "Available"}
        });
        if let Some(extra) = extra.as_object() {
            for (k, v) in extra {
                value["spec"][k] = v.clone();
            }
        }
        Arc::new(serde_json::from_value(value).unwrap())
    }

    fn claim(
        size: &str,
        class: &str,
        modes: &[&str],
        extra: serde_json::Value,
    ) -> PersistentVolumeClaim {
        let mut value = json!({
            "metadata": {"name": "data", "namespace": "default", "uid": "claim-uid"},
            "spec": {"resources": {"requests": {"storage": size}}, "storageClassName": class, "accessModes": modes}
        });
        if let Some(extra) = extra.as_object() {
            for (k, v) in extra {
                value["spec"][k] = v.clone();
            }
        }
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_smallest_fitting_volume_is_chosen() {
        let volumes = vec![
            volume("big", "10Gi", "", &["ReadWriteOnce"], json!({})),
            volume(
                "small",
                "2Gi",
                "",
                &["ReadWriteOnce", "ReadOnlyMany"],
                json!({}),
            ),
            volume("tiny", "500Mi", "", &["ReadWriteOnce"], json!({})),
            volume("other-class", "1Gi", "fast", &["ReadWriteOnce"], json!({})),
            volume("rwx-only", "1Gi", "", &["ReadWriteMany"], json!({})),
        ];
        let c = claim("1Gi", "", &["ReadWriteOnce"], json!({}));
        assert_eq!(
            find_best_match(&c, &volumes, None, false, &[])
                .unwrap()
                .metadata
                .name
                .clone()
                .unwrap(),
            "small"
        );
        let c = claim("1Gi", "fast", &["ReadWriteOnce"], json!({}));
        assert_eq!(
            find_best_match(&c, &volumes, None, false, &[])
                .unwrap()
                .metadata
                .name
                .clone()
                .unwrap(),
            "other-class"
        );
        let c = claim("20Gi", "", &["ReadWriteOnce"], json!({}));
        assert!(find_best_match(&c, &volumes, None, false, &[]).is_none());
        // A selector narrows; waiting for the consumer binds nothing here.
        let c = claim(
            "1Gi",
            "",
            &["ReadWriteOnce"],
            json!({"selector": {"matchLabels": {"tier": "slow"}}}),
        );
        assert!(find_best_match(&c, &volumes, None, false, &[]).is_none());
        let c = claim("1Gi", "", &["ReadWriteOnce"], json!({}));
        assert!(find_best_match(&c, &volumes, None, true, &[]).is_none());
    }

    #[test]
    fn pre_bound_volumes_win_and_bound_ones_are_skipped() {
        let prebound = volume(
            "mine",
            "5Gi",
            "",
            &["ReadWriteOnce"],
            json!({"claimRef": {"namespace": "default", "name": "data"}}),
        );
        let taken = volume(
            "taken",
            "1Gi",
            "",
            &["ReadWriteOnce"],
            json!({"claimRef": {"namespace": "default", "name": "other", "uid": "u2"}}),
        );
        let c = claim("1Gi", "", &["ReadWriteOnce"], json!({}));
        assert_eq!(
            find_best_match(&c, &[taken.clone(), prebound.clone()], None, true, &[])
                .unwrap()
                .metadata
                .name
                .clone()
                .unwrap(),
            "mine"
        );
        assert!(find_best_match(&c, &[taken], None, false, &[]).is_none());
    }

    #[test]
    fn mismatches_are_explained() {
        let v = volume("v", "1Gi", "", &["ReadWriteOnce"], json!({}));
        assert_eq!(
            satisfies(&v, &claim("2Gi", "", &["ReadWriteOnce"], json!({}))),
            Err("requested PV is too small".into())
        );
        assert_eq!(
            satisfies(&v, &claim("1Gi", "", &["ReadWriteMany"], json!({}))),
            Err("incompatible accessMode".into())
        );
        assert_eq!(
            satisfies(
                &v,
                &claim(
                    "1Gi",
                    "",
                    &["ReadWriteOnce"],
                    json!({"volumeMode": "Block"})
                )
            ),
            Err("incompatible volumeMode".into())
        );
        assert!(satisfies(&v, &claim("1Gi", "", &["ReadWriteOnce"], json!({}))).is_ok());
    }

    #[test]
    fn a_node_narrows_to_volumes_its_affinity_admits() {
        let local = |name: &str, host: &str| {
            volume(
                name,
                "1Gi",
                "local",
                &["ReadWriteOnce"],
                json!({"nodeAffinity": {"required": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [host]}]}]}}}),
            )
        };
        let volumes = vec![local("on-a", "a"), local("on-b", "b")];
        let node: Node = serde_json::from_value(
            json!({"metadata": {"name": "b", "labels": {"kubernetes.io/hostname": "b"}}}),
        )
        .unwrap();
        let c = claim("1Gi", "local", &["ReadWriteOnce"], json!({}));
        assert_eq!(
            find_best_match(&c, &volumes, Some(&node), true, &[])
                .unwrap()
                .metadata
                .name
                .clone()
                .unwrap(),
            "on-b"
        );
        assert!(find_best_match(&c, &volumes, Some(&node), true, &["on-b".to_string()]).is_none());
        assert!(find_best_match(&c, &volumes, None, true, &[]).is_none());
    }
}
