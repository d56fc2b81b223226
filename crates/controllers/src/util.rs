//! Helpers the controllers share: controller references, label selectors, pod predicates.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The owner reference with `controller: true`, if any.
pub fn controller_ref(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// A controller reference to `owner` as controllers set it on what they create.
pub fn new_controller_ref(meta: &ObjectMeta, api_version: &str, kind: &str) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `selector` selects `labels`, as `metav1.LabelSelectorAsSelector`: an empty selector
/// selects everything; an invalid operator selects nothing.
pub fn selector_matches(
    selector: &LabelSelector,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    ferry_api::matching::selector_matches(selector, labels.unwrap_or(&BTreeMap::new()))
}

/// Whether a selector selects nothing at all (nil) or everything (empty): controllers refuse both.
pub fn selector_is_empty(selector: &LabelSelector) -> bool {
    selector
        .match_labels
        .as_ref()
        .is_none_or(BTreeMap::is_empty)
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty)
}

/// Upstream's `FilterActivePods`: not Succeeded, not Failed, not being deleted.
pub fn is_pod_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded") | Some("Failed"))
        && pod.metadata.deletion_timestamp.is_none()
}

/// The pod's Ready condition: (is true, since when).
pub fn pod_ready(pod: &Pod) -> (bool, Option<jiff::Timestamp>) {
    let condition = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    match condition {
        Some(c) if c.status == "True" => (true, c.last_transition_time.as_ref().map(|t| t.0)),
        _ => (false, None),
    }
}

/// Ready for at least `min_ready_seconds` at `now` (upstream's `IsPodAvailable`).
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: jiff::Timestamp) -> bool {
    match pod_ready(pod) {
        (false, _) => false,
        (true, _) if min_ready_seconds <= 0 => true,
        (true, None) => false,
        (true, Some(since)) => {
            since + jiff::SignedDuration::from_secs(i64::from(min_ready_seconds)) <= now
        }
    }
}

/// An IntOrString as a count out of `total` (upstream's `GetScaledValueFromIntOrPercent`): a
/// number is itself, `"N%"` is N percent of `total` rounded up or down; a string without `%`
/// (which validation refuses) is read as a number.
pub fn scaled_int_or_percent(value: &IntOrString, total: i32, round_up: bool) -> i32 {
    let text = match value {
        IntOrString::Int(i) => return *i,
        IntOrString::String(s) => s.as_str(),
    };
    let Some(percent) = text.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) else {
        return text.parse().unwrap_or(0);
    };
    let product = percent * i64::from(total);
    let value = if round_up {
        (product + 99).div_euclid(100)
    } else {
        product.div_euclid(100)
    };
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// FNV-1a (32 bit) of `data` and the collision count, encoded with upstream's
/// consonant-and-digit alphabet so it never spells words (`controller.ComputeHash`,
/// `history.HashControllerRevision`).
pub fn hash_with_collisions(data: &[u8], collision_count: Option<i32>) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u32::from(*b);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    };
    feed(data);
    if let Some(count) = collision_count {
        feed(&u32::from_ne_bytes(count.to_ne_bytes()).to_le_bytes());
    }
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    hash.to_string()
        .bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// Now, as API timestamps carry it.
pub fn now() -> Time {
    Time(jiff::Timestamp::now())
}

/// An API error's HTTP code, if it is one.
pub fn api_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_match_as_upstream() {
        let expr = |key: &str, op: &str, values: &[&str]| LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        };
        let app_web = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            ..Default::default()
        };
        let cases = [
            (app_web.clone(), labels(&[("app", "web"), ("x", "y")]), true),
            (app_web.clone(), labels(&[("app", "db")]), false),
            (LabelSelector::default(), labels(&[]), true),
            (
                LabelSelector {
                    match_expressions: Some(vec![expr("tier", "In", &["a", "b"])]),
                    ..Default::default()
                },
                labels(&[("tier", "b")]),
                true,
            ),
            (
                LabelSelector {
                    match_expressions: Some(vec![expr("tier", "NotIn", &["a"])]),
                    ..Default::default()
                },
                labels(&[]),
                true,
            ),
            (
                LabelSelector {
                    match_expressions: Some(vec![expr("tier", "Exists", &[])]),
                    ..Default::default()
                },
                labels(&[]),
                false,
            ),
            (
                LabelSelector {
                    match_expressions: Some(vec![expr("tier", "DoesNotExist", &[])]),
                    ..Default::default()
                },
                labels(&[]),
                true,
            ),
            (
                LabelSelector {
                    match_expressions: Some(vec![expr("tier", "Bogus", &[])]),
                    ..Default::default()
                },
                labels(&[]),
                false,
            ),
        ];
        for (selector, l, want) in cases {
            assert_eq!(
                selector_matches(&selector, Some(&l)),
                want,
                "{selector:?} on {l:?}"
            );
        }
    }
}
