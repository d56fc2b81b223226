//! Label selectors in their string form, as the HPA meets them: the scale subresource gives
//! the target's pod selector as a string (`status.selector`, `metav1.FormatLabelSelector`),
//! which [`parse`] reads as upstream's `labels.Parse`; metric selectors go to the metrics APIs
//! as strings ([`format`], `LabelSelectorAsSelector(..).String()`) and into messages as Go's
//! `%+v` prints them ([`go_debug`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

pub use ferry_api::label_selector::{format, parse};

/// The selector as Go's `%+v` prints a `*metav1.LabelSelector` (its generated `String()`), which
/// upstream puts in external metric names and messages.
pub fn go_debug(selector: Option<&LabelSelector>) -> String {
    let Some(selector) = selector else {
        return "nil".into();
    };
    let labels: String = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}: {v},"))
        .collect();
    let expressions: String = selector
        .match_expressions
        .iter()
        .flatten()
        .map(|e| {
            format!(
                "LabelSelectorRequirement{{Key:{},Operator:{},Values:[{}],}},",
                e.key,
                e.operator,
                e.values.as_deref().unwrap_or_default().join(" ")
            )
        })
        .collect();
    format!(
        "&LabelSelector{{MatchLabels:map[string]string{{{labels}}},MatchExpressions:[]LabelSelectorRequirement{{{expressions}}},}}"
    )
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;
    use crate::util::selector_matches;
    use std::collections::BTreeMap;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selector_strings_select_as_upstream() {
        let cases = [
            ("app=web", labels(&[("app", "web")]), true),
            ("app==web", labels(&[("app", "db")]), false),
            ("app=web,tier!=db", labels(&[("app", "web")]), true),
            ("tier in (a, b)", labels(&[("tier", "b")]), true),
            ("tier notin (a,b)", labels(&[("tier", "b")]), false),
            ("tier", labels(&[]), false),
            ("!tier", labels(&[]), true),
            ("", labels(&[("x", "y")]), true),
            (
                "app=web,tier in (a,b),!canary",
                labels(&[("app", "web"), ("tier", "a")]),
                true,
            ),
        ];
        for (text, l, want) in cases {
            let selector = parse(text).expect(text);
            assert_eq!(
                selector_matches(&selector, Some(&l)),
                want,
                "{text} on {l:?}"
            );
        }
        assert!(parse("tier in a,b").is_err());
        assert!(parse("a b c").is_err());
    }

    #[test]
    fn selectors_print_as_upstream() {
        let selector = LabelSelector {
            match_labels: Some(labels(&[("b", "2"), ("a", "1")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "c".into(),
                operator: "In".into(),
                values: Some(vec!["y".into(), "x".into()]),
            }]),
        };
        assert_eq!(format(Some(&selector)), "a=1,b=2,c in (x,y)");
        assert_eq!(format(None), "");
        assert_eq!(
            go_debug(Some(&selector)),
            "&LabelSelector{MatchLabels:map[string]string{a: 1,b: 2,},MatchExpressions:[]LabelSelectorRequirement{LabelSelectorRequirement{Key:c,Operator:In,Values:[y x],},},}"
        );
        assert_eq!(go_debug(None), "nil");
    }
}
