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

pub use ferry_gostrconv::quote as go_quote;

/// Upstream `FormatMap`: `key="value"` lines in key order, values quoted as Go's `%q`.
pub fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(key, value)| format!("{key}={}", go_quote(value)))
        .collect::<Vec<_>>()
        .join("\n")
}
