//! A Service's IP families on this single-stack IPv4 cluster, decided as upstream's
//! `initIPFamilyFields` decides them before allocating a cluster IP:
//!
//! - no `ipFamilyPolicy`: the old one on an update, `RequireDualStack` for a headless service
//!   without a selector (its endpoints may be of either family), `SingleStack` otherwise;
//! - `ipFamilies` from the cluster IPs given, else `[IPv4]`; a headless service without a
//!   selector that is not `SingleStack` gets `[IPv4, IPv6]` (upstream does this on single-stack
//!   clusters too: nothing is allocated for it);
//! - `PreferDualStack` is served as one IPv4 address and keeps its policy; `RequireDualStack`,
//!   `IPv6` and IPv6 cluster IPs are refused, as this cluster has one family.
//!
//! ExternalName services have no families.

use k8s_openapi::api::core::v1::ServiceSpec;

use super::validation::{cluster_ips_related_fields, go_strings};
use super::{cluster_ips, is_headless_without_selector, service_type, EXTERNAL_NAME};
use crate::status::FieldError;

/// The one family this cluster's service CIDR has.
const CLUSTER_FAMILY: &str = "IPv4";
const SINGLE_STACK: &str = "SingleStack";
const PREFER_DUAL_STACK: &str = "PreferDualStack";
const REQUIRE_DUAL_STACK: &str = "RequireDualStack";

/// Sets the `spec`'s policy and families, or says why they cannot be served (and leaves `spec`
/// as it was). `old` is the stored spec on an update.
pub(super) fn init(spec: &mut ServiceSpec, old: Option<&ServiceSpec>) -> Vec<FieldError> {
    let mut next = spec.clone();
    let errors = decide(&mut next, old);
    if errors.is_empty() {
        *spec = next;
    }
    errors
}

fn decide(spec: &mut ServiceSpec, old: Option<&ServiceSpec>) -> Vec<FieldError> {
    if service_type(spec) == EXTERNAL_NAME || unchanged_prefer_dual_stack(spec, old) {
        return Vec::new();
    }
    if spec.ip_family_policy.is_none() {
        spec.ip_family_policy = match old.and_then(|o| o.ip_family_policy.clone()) {
            Some(policy) => Some(policy),
            None if is_headless_without_selector(spec) => Some(REQUIRE_DUAL_STACK.into()),
            None => Some(SINGLE_STACK.into()),
        };
    }
    // Upstream's loose pre-validation: these errors come alone.
    let errors = cluster_ips_related_fields(spec);
    if !errors.is_empty() {
        return errors;
    }
    let policy = spec.ip_family_policy.clone().unwrap_or_default();
    let policy_error = |detail: &str| {
        FieldError::invalid("spec.ipFamilyPolicy", policy.as_str(), detail.to_string())
    };
    let mut errors = Vec::new();
    if let Some(old) = old {
        let families = |s: &ServiceSpec| s.ip_families.clone().unwrap_or_default();
        if policy == SINGLE_STACK {
            // Single-stack with the same fields as before is a clear request to drop the
            // secondary family; the primary never changes.
            if cluster_ips(spec) == cluster_ips(old) && cluster_ips(spec).len() > 1 {
                spec.cluster_ips = Some(cluster_ips(spec)[..1].to_vec());
            }
            if families(spec) == families(old) && families(spec).len() > 1 {
                spec.ip_families = Some(families(spec)[..1].to_vec());
            }
        } else {
            let reduced = |new: usize, old: usize| new != 0 && new < old;
            if reduced(cluster_ips(spec).len(), cluster_ips(old).len()) {
                errors.push(policy_error(
                    "must be 'SingleStack' to release the secondary cluster IP",
                ));
            }
            if reduced(families(spec).len(), families(old).len()) {
                errors.push(policy_error(
                    "must be 'SingleStack' to release the secondary IP family",
                ));
            }
        }
    }
    if policy == SINGLE_STACK {
        if cluster_ips(spec).len() == 2 {
            errors.push(policy_error("must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified"));
        }
        if spec.ip_families.as_ref().is_some_and(|f| f.len() == 2) {
            errors.push(policy_error("must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified"));
        }
    }
    // Families not given follow the cluster IPs given.
    let ips = cluster_ips(spec).to_vec();
    for (i, ip) in ips.iter().enumerate() {
        if ip == "None" {
            break;
        }
        let families = spec.ip_families.get_or_insert_with(Vec::new);
        if i < families.len() {
            continue;
        }
        let family = family_of(ip);
        if family == CLUSTER_FAMILY {
            families.push(family.into());
        } else {
            errors.push(FieldError::invalid_raw(
                format!("spec.clusterIPs[{i}]"),
                go_strings(&ips),
                format!("{family} is not configured on this cluster"),
            ));
        }
    }
    if spec.ip_families.as_ref().is_some_and(Vec::is_empty) {
        spec.ip_families = None;
    }
    if !errors.is_empty() {
        return errors;
    }
    if is_headless_without_selector(spec) {
        // Allowed any families: nothing is allocated.
        let families = spec.ip_families.get_or_insert_with(Vec::new);
        if families.is_empty() {
            families.push(CLUSTER_FAMILY.into());
        }
        if families.len() < 2 && policy != SINGLE_STACK {
            let other = if families[0] == "IPv4" {
                "IPv6"
            } else {
                "IPv4"
            };
            families.push(other.into());
        }
        return Vec::new();
    }
    if policy == REQUIRE_DUAL_STACK {
        errors.push(policy_error(
            "this cluster is not configured for dual-stack services",
        ));
    }
    for (i, family) in spec.ip_families.iter().flatten().enumerate() {
        if family != CLUSTER_FAMILY {
            errors.push(FieldError::invalid(
                format!("spec.ipFamilies[{i}]"),
                family.as_str(),
                "not configured on this cluster",
            ));
        }
    }
    if !errors.is_empty() {
        return errors;
    }
    if spec.ip_families.is_none() {
        spec.ip_families = Some(vec![CLUSTER_FAMILY.into()]);
    }
    Vec::new()
}

/// `isMatchingPreferDualStackClusterIPFields`: a `PreferDualStack` service whose type, cluster
/// IPs and families did not change is left as it is (it is not upgraded or downgraded because
/// the cluster's families changed).
fn unchanged_prefer_dual_stack(spec: &ServiceSpec, old: Option<&ServiceSpec>) -> bool {
    let Some(old) = old else { return false };
    let Some(policy) = spec.ip_family_policy.as_deref() else {
        return false;
    };
    spec.type_ == old.type_
        && service_type(spec) != EXTERNAL_NAME
        && policy == PREFER_DUAL_STACK
        && old
            .ip_family_policy
            .as_deref()
            .is_none_or(|p| p == PREFER_DUAL_STACK)
        && cluster_ips(spec) == cluster_ips(old)
        && spec.ip_families.as_deref().unwrap_or_default()
            == old.ip_families.as_deref().unwrap_or_default()
}

/// `familyOf`.
fn family_of(ip: &str) -> &'static str {
    match crate::registry::generic::parse_ip_sloppy(ip) {
        Some(std::net::IpAddr::V4(_)) => "IPv4",
        Some(std::net::IpAddr::V6(_)) => "IPv6",
        None => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn svc(policy: Option<&str>, families: &[&str], ips: &[&str]) -> ServiceSpec {
        ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(BTreeMap::from([("app".into(), "web".into())])),
            ip_family_policy: policy.map(str::to_string),
            ip_families: (!families.is_empty())
                .then(|| families.iter().map(|f| f.to_string()).collect()),
            cluster_ip: ips.first().map(|ip| ip.to_string()),
            cluster_ips: (!ips.is_empty()).then(|| ips.iter().map(|ip| ip.to_string()).collect()),
            ..ServiceSpec::default()
        }
    }

    #[test]
    fn families_on_a_single_stack_cluster() {
        // (spec, policy after, families after, errors)
        let headless_selectorless = {
            let mut s = svc(None, &[], &["None"]);
            s.selector = None;
            s
        };
        let cases: Vec<(ServiceSpec, &str, Vec<&str>, Vec<&str>)> = vec![
            (svc(None, &[], &[]), "SingleStack", vec!["IPv4"], vec![]),
            (svc(Some("PreferDualStack"), &[], &[]), "PreferDualStack", vec!["IPv4"], vec![]),
            (svc(None, &["IPv4"], &["10.43.0.9"]), "SingleStack", vec!["IPv4"], vec![]),
            (svc(None, &[], &["None"]), "SingleStack", vec!["IPv4"], vec![]),
            (headless_selectorless, "RequireDualStack", vec!["IPv4", "IPv6"], vec![]),
            (
                svc(Some("RequireDualStack"), &[], &[]),
                "",
                vec![],
                vec!["spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services"],
            ),
            (
                svc(None, &["IPv6"], &[]),
                "",
                vec![],
                vec!["spec.ipFamilies[0]: Invalid value: \"IPv6\": not configured on this cluster"],
            ),
            (
                svc(Some("PreferDualStack"), &["IPv4", "IPv6"], &[]),
                "",
                vec![],
                vec!["spec.ipFamilies[1]: Invalid value: \"IPv6\": not configured on this cluster"],
            ),
            (
                svc(None, &[], &["fd00::10"]),
                "",
                vec![],
                vec!["spec.clusterIPs[0]: Invalid value: []string{\"fd00::10\"}: IPv6 is not configured on this cluster"],
            ),
            (
                svc(None, &["IPv4", "IPv6"], &[]),
                "",
                vec![],
                vec!["spec.ipFamilyPolicy: Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified"],
            ),
            (
                svc(Some("Sometimes"), &[], &[]),
                "",
                vec![],
                vec!["spec.ipFamilyPolicy: Unsupported value: \"Sometimes\": supported values: \"PreferDualStack\", \"RequireDualStack\", \"SingleStack\""],
            ),
        ];
        for (mut spec, policy, families, want) in cases {
            let before = spec.clone();
            let errors: Vec<String> = init(&mut spec, None)
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(errors, want, "{before:?}");
            if want.is_empty() {
                assert_eq!(spec.ip_family_policy.as_deref(), Some(policy));
                let got: Vec<&str> = spec
                    .ip_families
                    .iter()
                    .flatten()
                    .map(String::as_str)
                    .collect();
                assert_eq!(got, families, "{before:?}");
            } else {
                assert_eq!(spec, before, "refused specs are left alone");
            }
        }
    }

    #[test]
    fn updates_inherit_the_policy_and_external_names_have_none() {
        let old = svc(Some("PreferDualStack"), &["IPv4"], &["10.43.0.9"]);
        let mut new = svc(None, &[], &["10.43.0.9"]);
        assert!(init(&mut new, Some(&old)).is_empty());
        assert_eq!(new.ip_family_policy.as_deref(), Some("PreferDualStack"));
        assert_eq!(new.ip_families, Some(vec!["IPv4".to_string()]));
        let mut external = ServiceSpec {
            type_: Some("ExternalName".into()),
            ..ServiceSpec::default()
        };
        assert!(init(&mut external, None).is_empty());
        assert_eq!(
            (external.ip_family_policy, external.ip_families),
            (None, None)
        );
    }
}
