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
pub mod pod_topology_spread;
pub mod priority_sort;
pub mod scheduling_gates;
pub mod taint_toleration;

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, Taint, Toleration,
};
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
    registry.register(pod_topology_spread::NAME, |args, _| {
        Ok(Arc::new(pod_topology_spread::PodTopologySpread::new(args)?))
    });
    registry.register(default_preemption::NAME, |args, _| {
        Ok(Arc::new(default_preemption::DefaultPreemption::new(args)?))
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

pub use ferry_api::matching::{selector_matches, tolerates};

/// Whether an optional selector matches: a missing selector matches nothing, as upstream's
/// `LabelSelectorAsSelector(nil)` for affinity terms.
pub fn optional_selector_matches(
    selector: Option<&LabelSelector>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.is_some_and(|s| selector_matches(s, labels))
}

fn requirement_matches(requirement: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = requirement.values.as_deref().unwrap_or_default();
    let number = |s: &str| s.parse::<i64>().ok();
    match requirement.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(number),
                values.first().and_then(|s| number(s)),
            ) else {
                return false;
            };
            if values.len() != 1 {
                return false;
            }
            if requirement.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// Whether one node selector term matches `node`: all its label expressions and field
/// expressions (only `metadata.name`). A term with neither matches nothing.
pub fn node_selector_term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    expressions
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            r.key == "metadata.name" && requirement_matches(r, node.metadata.name.as_deref())
        })
}

/// Whether any of `terms` matches (the terms are ORed).
pub fn node_selector_terms_match(terms: &[NodeSelectorTerm], node: &Node) -> bool {
    terms.iter().any(|t| node_selector_term_matches(t, node))
}

/// Whether any of `tolerations` tolerates `taint`.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
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
    use super::*;
    use crate::testing::make_node;

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn node_selector_operators() {
        let node = make_node("n1").label("zone", "a").label("gen", "5").node();
        let cases = [
            (req("zone", "In", &["a", "b"]), true),
            (req("zone", "In", &["b"]), false),
            (req("zone", "NotIn", &["b"]), true),
            (req("missing", "NotIn", &["b"]), true),
            (req("zone", "Exists", &[]), true),
            (req("missing", "Exists", &[]), false),
            (req("missing", "DoesNotExist", &[]), true),
            (req("gen", "Gt", &["4"]), true),
            (req("gen", "Gt", &["5"]), false),
            (req("gen", "Lt", &["6"]), true),
            (req("zone", "Lt", &["6"]), false),
        ];
        for (requirement, want) in cases {
            let term = NodeSelectorTerm {
                match_expressions: Some(vec![requirement.clone()]),
                match_fields: None,
            };
            assert_eq!(
                node_selector_term_matches(&term, &node),
                want,
                "{requirement:?}"
            );
        }
        let by_name = NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![req("metadata.name", "In", &["n1"])]),
        };
        assert!(node_selector_term_matches(&by_name, &node));
        assert!(
            !node_selector_term_matches(&NodeSelectorTerm::default(), &node),
            "empty term matches nothing"
        );
    }

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
