//! Label selectors in their string form (`a=b,c!=d,e in (x,y),f notin (z),g,!h`): [`parse`]
//! reads one as upstream's `labels.Parse` into a LabelSelector of match expressions, and
//! [`format`] writes one as `metav1.FormatLabelSelector` / `LabelSelectorAsSelector(..).String()`
//! do (the scale subresource's `status.selector`, metric selectors sent to the metrics APIs).

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

/// Why a selector string does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unable to parse requirement: {0}")]
pub struct SelectorError(pub String);

/// Splits on commas outside parentheses.
pub(crate) fn split_top(s: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn requirement(key: &str, operator: &str, values: Vec<String>) -> LabelSelectorRequirement {
    LabelSelectorRequirement {
        key: key.to_string(),
        operator: operator.to_string(),
        values: (!values.is_empty()).then_some(values),
    }
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

/// Reads a label selector string (`a=b,c!=d,e in (x,y),f notin (z),g,!h`) as a LabelSelector
/// of match expressions; the empty string selects everything.
pub fn parse(selector: &str) -> Result<LabelSelector, SelectorError> {
    let mut expressions = Vec::new();
    for part in split_top(selector) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let bad = || SelectorError(part.to_string());
        let parsed = if let Some(key) = part.strip_prefix('!') {
            requirement(key.trim(), "DoesNotExist", vec![])
        } else if let Some((key, value)) = part.split_once("!=") {
            requirement(key.trim(), "NotIn", vec![value.trim().to_string()])
        } else if let Some((key, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
            requirement(key.trim(), "In", vec![value.trim().to_string()])
        } else if let Some((key, rest)) = part.split_once(char::is_whitespace) {
            let rest = rest.trim_start();
            let (operator, list) = if let Some(list) = rest.strip_prefix("notin") {
                ("NotIn", list)
            } else if let Some(list) = rest.strip_prefix("in") {
                ("In", list)
            } else {
                return Err(bad());
            };
            let inner = list
                .trim()
                .strip_prefix('(')
                .and_then(|l| l.strip_suffix(')'))
                .ok_or_else(bad)?;
            let values = inner.split(',').map(|v| v.trim().to_string()).collect();
            requirement(key.trim(), operator, values)
        } else {
            requirement(part, "Exists", vec![])
        };
        if !valid_key(&parsed.key) {
            return Err(bad());
        }
        expressions.push(parsed);
    }
    Ok(LabelSelector {
        match_labels: None,
        match_expressions: Some(expressions),
    })
}

/// The selector's string form (`LabelSelectorAsSelector(selector).String()`): requirements
/// sorted by key, `key=value` for match labels, set values sorted. `None` (upstream's nil,
/// which selects nothing) and the empty selector both print as the empty string.
pub fn format(selector: Option<&LabelSelector>) -> String {
    let Some(selector) = selector else {
        return String::new();
    };
    let mut parts: Vec<(String, String)> = Vec::new();
    for (key, value) in selector.match_labels.iter().flatten() {
        parts.push((key.clone(), format!("{key}={value}")));
    }
    for expression in selector.match_expressions.iter().flatten() {
        let key = &expression.key;
        let values: BTreeSet<&str> = expression
            .values
            .iter()
            .flatten()
            .map(String::as_str)
            .collect();
        let values = values.into_iter().collect::<Vec<_>>().join(",");
        let text = match expression.operator.as_str() {
            "In" => format!("{key} in ({values})"),
            "NotIn" => format!("{key} notin ({values})"),
            "Exists" => key.clone(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other} ({values})"),
        };
        parts.push((key.clone(), text));
    }
    parts.sort_by(|a, b| a.0.cmp(&b.0));
    parts
        .into_iter()
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join(",")
}
