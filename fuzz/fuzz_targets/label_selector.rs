//! Label selectors in their string form: `ferry_api::label_selector::parse` (what the scale
//! subresource and the metrics APIs read) and `format`. The API server's query parsers are
//! the `query_selectors` target's.
//!
//! Holds: no panic; for selectors whose keys and values are valid label keys and values (all
//! upstream accepts), `format(parse(s))` parses back to the same selector, and formatting is
//! a fixed point.

#![no_main]

use libfuzzer_sys::fuzz_target;

use ferry_api::label_selector::{format, parse};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(selector) = parse(text) else {
        return;
    };
    let printed = format(Some(&selector));
    if !all_valid(&selector) {
        return;
    }
    let again = parse(&printed).unwrap_or_else(|e| panic!("{printed:?} does not parse: {e}"));
    assert_eq!(
        format(Some(&again)),
        printed,
        "{text:?} printed as {printed:?}, which reads differently"
    );
});

/// Whether every key and value of the selector is what upstream's `labels.Parse` accepts.
fn all_valid(selector: &LabelSelector) -> bool {
    selector
        .match_expressions
        .iter()
        .flatten()
        .all(|r| valid_key(&r.key) && r.values.iter().flatten().all(|v| valid_value(v)))
}

/// A qualified name with an optional DNS-subdomain prefix: `example.com/app`.
fn valid_key(key: &str) -> bool {
    let (prefix, name) = key.rsplit_once('/').unwrap_or(("", key));
    !name.is_empty()
        && valid_value(name)
        && prefix.len() <= 253
        && prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
}

/// A label value: empty, or up to 63 alphanumerics, `-`, `_`, `.`, starting and ending
/// alphanumeric.
fn valid_value(value: &str) -> bool {
    let ends = |c: Option<char>| c.is_none_or(|c| c.is_ascii_alphanumeric());
    value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && ends(value.chars().next())
        && ends(value.chars().last())
}
