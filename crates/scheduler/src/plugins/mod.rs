//! The in-tree plugins, one file each, and the [`registry`] of them by name. Each file has the
//! plugin's `NAME`, its constructor (`new` from its pluginConfig args), the cluster events that
//! can make a pod it rejected schedulable, and table tests.
//!
//! The shared matching rules (label selectors, node selector terms, tolerations) live here.

pub mod default_binder;
pub mod default_preemption;
pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources_balanced_allocation;
pub mod node_resources_fit;
pub mod node_unschedulable;
pub mod node_volume_limits;
pub mod pod_topology_spread;
pub mod priority_sort;
pub mod scheduling_gates;
pub mod taint_toleration;
pub mod volume_binding;
pub mod volume_restrictions;
pub mod volume_zone;

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::config::ConfigError;
use crate::framework::registry::{Handle, Registry};
use crate::framework::{Plugin, MAX_NODE_SCORE};

/// Every in-tree plugin by name.
pub fn registry() -> Registry {
    let mut registry = Registry::default();
    registry.register(priority_sort::NAME, |_, _| {
        Ok(Arc::new(priority_sort::PrioritySort))
    });
    registry.register(scheduling_gates::NAME, |_, _| {
        Ok(Arc::new(scheduling_gates::SchedulingGates))
    });
    registry.register(node_unschedulable::NAME, |_, _| {
        Ok(Arc::new(node_unschedulable::NodeUnschedulable))
    });
    registry.register(node_name::NAME, |_, _| Ok(Arc::new(node_name::NodeName)));
    registry.register(taint_toleration::NAME, |_, _| {
        Ok(Arc::new(taint_toleration::TaintToleration))
    });
    registry.register(node_affinity::NAME, |args, _| {
        Ok(Arc::new(node_affinity::NodeAffinity::new(args)?))
    });
    registry.register(node_ports::NAME, |_, _| Ok(Arc::new(node_ports::NodePorts)));
    registry.register(node_resources_fit::NAME, |args, _| {
        Ok(Arc::new(node_resources_fit::NodeResourcesFit::new(args)?))
    });
    registry.register(node_resources_balanced_allocation::NAME, |args, _| {
        Ok(Arc::new(
            node_resources_balanced_allocation::BalancedAllocation::new(args)?,
        ))
    });
    registry.register(image_locality::NAME, |_, _| {
        Ok(Arc::new(image_locality::ImageLocality))
    });
    registry.register(inter_pod_affinity::NAME, |args, _| {
        Ok(Arc::new(inter_pod_affinity::InterPodAffinity::new(args)?))
    });
    registry.register(pod_topology_spread::NAME, |args, handle: &Handle| {
        Ok(Arc::new(pod_topology_spread::PodTopologySpread::new(
            args,
            handle.workloads.clone(),
        )?) as Arc<dyn Plugin>)
    });
    registry.register(default_preemption::NAME, |args, _| {
        Ok(Arc::new(default_preemption::DefaultPreemption::new(args)?))
    });
    registry.register(volume_restrictions::NAME, |_, handle: &Handle| {
        Ok(Arc::new(volume_restrictions::VolumeRestrictions::new(
            handle.volumes.clone(),
        )) as Arc<dyn Plugin>)
    });
    registry.register(volume_binding::NAME, |args, handle: &Handle| {
        Ok(Arc::new(volume_binding::VolumeBinding::new(
            args,
            handle.volumes.clone(),
            handle.binder.clone(),
        )?) as Arc<dyn Plugin>)
    });
    registry.register(node_volume_limits::NAME, |_, handle: &Handle| {
        Ok(Arc::new(node_volume_limits::NodeVolumeLimits::new(
            handle.volumes.clone(),
        )) as Arc<dyn Plugin>)
    });
    registry.register(volume_zone::NAME, |_, handle: &Handle| {
        Ok(Arc::new(volume_zone::VolumeZone::new(handle.volumes.clone())) as Arc<dyn Plugin>)
    });
    registry.register(default_binder::NAME, |_, handle: &Handle| {
        Ok(Arc::new(default_binder::DefaultBinder::new(handle.binder.clone())) as Arc<dyn Plugin>)
    });
    registry
}

/// Parses a plugin's args (`None`: defaults).
pub(crate) fn parse_args<T: serde::de::DeserializeOwned + Default>(
    plugin: &str,
    args: Option<&serde_json::Value>,
) -> Result<T, ConfigError> {
    match args {
        None | Some(serde_json::Value::Null) => Ok(T::default()),
        Some(value) => serde_json::from_value(value.clone())
            .map_err(|e| ConfigError::Invalid(format!("pluginConfig args of {plugin}: {e}"))),
    }
}

pub use ferry_api::matching::{
    node_selector_term_matches, node_selector_terms_match, selector_matches, tolerated, tolerates,
};

/// Whether an optional selector matches: a missing selector matches nothing, as upstream's
/// `LabelSelectorAsSelector(nil)` for affinity terms.
pub fn optional_selector_matches(
    selector: Option<&LabelSelector>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.is_some_and(|s| selector_matches(s, labels))
}

/// Upstream's `DefaultNormalizeScore`: scales scores so the highest is [`MAX_NODE_SCORE`];
/// `reverse` flips them (fewer is better).
pub fn default_normalize_score(scores: &mut [crate::framework::NodeScore], reverse: bool) {
    let max = scores.iter().map(|s| s.score).max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| s.score = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        s.score = MAX_NODE_SCORE * s.score / max;
        if reverse {
            s.score = MAX_NODE_SCORE - s.score;
        }
    }
}

/// The node's taints.
pub(crate) fn node_taints(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Toleration;

    use super::*;

    #[test]
    fn toleration_rules() {
        let taint = Taint {
            key: "k".into(),
            value: Some("v".into()),
            effect: "NoSchedule".into(),
            time_added: None,
        };
        let t =
            |key: Option<&str>, op: &str, value: Option<&str>, effect: Option<&str>| Toleration {
                key: key.map(Into::into),
                operator: Some(op.into()),
                value: value.map(Into::into),
                effect: effect.map(Into::into),
                toleration_seconds: None,
            };
        assert!(tolerates(
            &t(Some("k"), "Equal", Some("v"), Some("NoSchedule")),
            &taint
        ));
        assert!(!tolerates(
            &t(Some("k"), "Equal", Some("w"), Some("NoSchedule")),
            &taint
        ));
        assert!(tolerates(&t(Some("k"), "Exists", None, None), &taint));
        assert!(
            tolerates(&t(None, "Exists", None, None), &taint),
            "empty key with Exists tolerates everything"
        );
        assert!(!tolerates(
            &t(Some("k"), "Exists", None, Some("NoExecute")),
            &taint
        ));
    }
}
