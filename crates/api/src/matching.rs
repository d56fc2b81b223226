//! The matching rules every component applies the same way: label selectors and taint
//! tolerations, as upstream's `metav1.LabelSelectorAsSelector` and `Toleration.ToleratesTaint`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Whether `selector` matches `labels`. An empty selector matches everything; an unknown
/// operator matches nothing.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    for (key, value) in selector.match_labels.iter().flatten() {
        if labels.get(key) != Some(value) {
            return false;
        }
    }
    for expression in selector.match_expressions.iter().flatten() {
        let values = expression.values.as_deref().unwrap_or_default();
        let value = labels.get(&expression.key);
        let ok = match expression.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Whether `toleration` tolerates `taint`: the effect (if set) and the key (if set) must be
/// the taint's; `Exists` then tolerates, `Equal` (the default) also needs the same value.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = toleration.effect.as_deref().filter(|e| !e.is_empty()) {
        if effect != taint.effect {
            return false;
        }
    }
    let key = toleration.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
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

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn requirement(key: &str, operator: &str, values: &[&str]) -> LabelSelector {
        LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: key.into(),
                operator: operator.into(),
                values: Some(values.iter().map(|v| v.to_string()).collect()),
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn label_selectors() {
        let web = labels(&[("app", "web"), ("tier", "front")]);
        let app_web = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            ..Default::default()
        };
        for (selector, expected) in [
            (LabelSelector::default(), true),
            (app_web, true),
            (requirement("tier", "In", &["front", "back"]), true),
            (requirement("tier", "In", &["back"]), false),
            (requirement("tier", "NotIn", &["back"]), true),
            (requirement("zone", "NotIn", &["a"]), true),
            (requirement("tier", "Exists", &[]), true),
            (requirement("zone", "Exists", &[]), false),
            (requirement("zone", "DoesNotExist", &[]), true),
            (requirement("tier", "Gt", &["1"]), false),
        ] {
            assert_eq!(selector_matches(&selector, &web), expected, "{selector:?}");
        }
    }

    #[test]
    fn tolerations() {
        let taint = |key: &str, value: Option<&str>, effect: &str| Taint {
            key: key.into(),
            value: value.map(str::to_string),
            effect: effect.into(),
            ..Default::default()
        };
        let toleration = |key: Option<&str>,
                          operator: Option<&str>,
                          value: Option<&str>,
                          effect: Option<&str>| Toleration {
            key: key.map(str::to_string),
            operator: operator.map(str::to_string),
            value: value.map(str::to_string),
            effect: effect.map(str::to_string),
            ..Default::default()
        };
        let gpu = taint("gpu", Some("yes"), "NoSchedule");
        for (t, expected) in [
            (toleration(Some("gpu"), None, Some("yes"), None), true),
            (
                toleration(Some("gpu"), Some("Equal"), Some("no"), None),
                false,
            ),
            (
                toleration(Some("gpu"), Some("Exists"), None, Some("NoSchedule")),
                true,
            ),
            (
                toleration(Some("gpu"), Some("Exists"), None, Some("NoExecute")),
                false,
            ),
            (toleration(None, Some("Exists"), None, None), true),
            (toleration(Some("other"), Some("Exists"), None, None), false),
        ] {
            assert_eq!(tolerates(&t, &gpu), expected, "{t:?}");
        }
    }

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn node_selector_operators() {
        let node = Node {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("n1".into()),
                labels: Some(labels(&[("zone", "a"), ("gen", "5")])),
                ..Default::default()
            },
            ..Default::default()
        };
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
}
