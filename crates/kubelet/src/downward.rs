//! The downward API's values, shared by env vars (`podconfig`) and downwardAPI volumes
//! (`volume`): label and annotation maps as upstream formats them (Go's `%q`), and a
//! container's resource requests and limits for `resourceFieldRef`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use crate::quantity::{Quantity, QuantityError};

/// Why a `resourceFieldRef` has no value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResourceValueError {
    /// Not `limits.<r>` or `requests.<r>` of cpu, memory, ephemeral-storage or hugepages.
    #[error("unsupported container resource : {0}")]
    Unsupported(String),
    /// A quantity (the amount, the divisor or the allocatable) that does not parse.
    #[error("invalid quantity {value:?}: {source}")]
    Quantity {
        /// The quantity as written.
        value: String,
        /// Why it does not parse.
        source: QuantityError,
    },
}

/// Parses an API quantity.
pub fn parse_api_quantity(quantity: &ApiQuantity) -> Result<Quantity, ResourceValueError> {
    Quantity::from_api(quantity).map_err(|source| ResourceValueError::Quantity {
        value: quantity.0.clone(),
        source,
    })
}

/// A container's `resource` (`limits.cpu`, `requests.memory`, ...) for `resourceFieldRef`
/// (upstream `ExtractContainerResourceValue`): unset or zero `cpu`, `memory` and
/// `ephemeral-storage` limits come from the node's allocatable (`allocatable` looks one up),
/// divided by `divisor` (default 1) and rounded up, CPU in millicores, the others in units.
pub fn container_resource_value(
    container: &Container,
    resource: &str,
    divisor: Option<&ApiQuantity>,
    allocatable: &dyn Fn(&str) -> Result<Option<Quantity>, ResourceValueError>,
) -> Result<String, ResourceValueError> {
    let unsupported = || ResourceValueError::Unsupported(resource.to_string());
    let (kind, name) = resource.split_once('.').ok_or_else(unsupported)?;
    let supported =
        matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-");
    if !matches!(kind, "limits" | "requests") || !supported {
        return Err(unsupported());
    }
    let resources = container.resources.as_ref();
    let declared = match kind {
        "limits" => resources.and_then(|r| r.limits.as_ref()),
        _ => resources.and_then(|r| r.requests.as_ref()),
    };
    let mut amount = match declared.and_then(|map| map.get(name)) {
        Some(q) => parse_api_quantity(q)?,
        None => Quantity::ZERO,
    };
    if kind == "limits"
        && amount.is_zero()
        && matches!(name, "cpu" | "memory" | "ephemeral-storage")
    {
        if let Some(node) = allocatable(name)? {
            amount = node;
        }
    }
    let divisor = match divisor {
        Some(q) => parse_api_quantity(q)?,
        None => Quantity::ZERO,
    };
    let divisor = if divisor.is_zero() {
        Quantity::from_units(1)
    } else {
        divisor
    };
    let value = if name == "cpu" {
        div_ceil(amount.milli_value(), divisor.milli_value().max(1))
    } else {
        div_ceil(amount.value(), divisor.value().max(1))
    };
    Ok(value.to_string())
}

/// `ceil(value / divisor)` for a positive divisor.
fn div_ceil(value: i64, divisor: i64) -> i64 {
    let quotient = value / divisor;
    if value % divisor > 0 {
        quotient + 1
    } else {
        quotient
    }
}

/// `metadata.labels['key']` → (`metadata.labels`, `key`) (upstream `SplitMaybeSubscriptedPath`).
pub fn split_subscript(path: &str) -> Option<(&str, &str)> {
    let inner = path.strip_suffix("']")?;
    let (head, key) = inner.split_once("['")?;
    (!head.is_empty()).then_some((head, key))
}

/// Upstream `FormatMap`: `key="value"` lines in key order, values quoted as Go's `%q`.
pub fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(key, value)| format!("{key}={}", go_quote(value)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Go's `strconv.Quote` (`%q`): printable characters as they are, the C escapes, `\x` for the
/// other ASCII controls and `\u`/`\U` for other non-printable characters. Go's `IsPrint` is
/// approximated by its Unicode categories known here (controls, non-ASCII spaces, line and
/// paragraph separators, common format characters, private use, noncharacters); unassigned
/// code points are taken as printable.
pub fn go_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if c < ' ' || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c if !go_is_print(c) => {
                let code = u32::from(c);
                if code < 0x10000 {
                    out.push_str(&format!("\\u{code:04x}"));
                } else {
                    out.push_str(&format!("\\U{code:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn go_is_print(c: char) -> bool {
    let code = u32::from(c);
    let not_printable = c.is_control()
        // Space separators other than U+0020, and the line and paragraph separators.
        || matches!(code, 0xa0 | 0x1680 | 0x2000..=0x200a | 0x2028 | 0x2029 | 0x202f | 0x205f | 0x3000)
        // Format characters.
        || matches!(code, 0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x180e | 0x200b..=0x200f
            | 0x202a..=0x202e | 0x2060..=0x2064 | 0x2066..=0x206f | 0xfeff | 0xfff9..=0xfffb
            | 0xe0001 | 0xe0020..=0xe007f)
        // Private use.
        || matches!(code, 0xe000..=0xf8ff | 0xf0000..=0xffffd | 0x100000..=0x10fffd)
        // Noncharacters.
        || matches!(code, 0xfdd0..=0xfdef)
        || code & 0xfffe == 0xfffe;
    !not_printable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quote_matches_go() {
        for (input, want) in [
            ("plain", r#""plain""#),
            ("q\"b\\", r#""q\"b\\""#),
            ("\u{7}\u{8}\u{c}\n\r\t\u{b}", r#""\a\b\f\n\r\t\v""#),
            ("\u{1}\u{1b}\u{7f}", r#""\x01\x1b\x7f""#),
            ("héllo ☃ 日本", r#""héllo ☃ 日本""#),
            ("nb\u{a0}sp\u{200b}\u{85}", r#""nb\u00a0sp\u200b\u0085""#),
            ("\u{f0000}", r#""\U000f0000""#),
        ] {
            assert_eq!(go_quote(input), want, "{input:?}");
        }
    }
}
