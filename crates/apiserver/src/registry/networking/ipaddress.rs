//! IPAddresses (`pkg/registry/networking/ipaddress`): an address of a service CIDR held by its
//! parent (a Service). The name is the address in canonical form, the parent is required and
//! never changes.

use serde_json::Value;

use crate::registry::generic::immutable;
use crate::registry::{NameRule, Strategy};
use crate::status::FieldError;

/// The IPAddress strategy.
pub struct IpAddressStrategy;

impl Strategy for IpAddressStrategy {
    fn name_rule(&self) -> NameRule {
        NameRule::IpAddress
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let Some(parent) = object.pointer("/spec/parentRef").filter(|p| p.is_object()) else {
            errors.push(FieldError::required("spec.parentRef", ""));
            return;
        };
        let field = |f: &str| parent.get(f).and_then(Value::as_str).unwrap_or("");
        let group = field("group");
        if !group.is_empty() && !crate::registry::generic::is_dns_subdomain(group) {
            errors.push(FieldError::invalid(
                "spec.parentRef.group",
                group,
                crate::registry::generic::SUBDOMAIN_MESSAGE,
            ));
        }
        for (name, required) in [("resource", true), ("name", true), ("namespace", false)] {
            let value = field(name);
            let path = format!("spec.parentRef.{name}");
            if value.is_empty() {
                if required {
                    errors.push(FieldError::required(path, ""));
                }
                continue;
            }
            for message in path_segment_problems(value) {
                errors.push(FieldError::invalid(path.clone(), value, message));
            }
        }
    }

    fn validate_update(&self, new: &Value, old: &Value, errors: &mut Vec<FieldError>) {
        self.validate(new, errors);
        immutable(new, old, "/spec/parentRef", "spec.parentRef", errors);
    }
}

/// Upstream's `IsValidPathSegmentName`.
fn path_segment_problems(value: &str) -> Vec<String> {
    if value == "." || value == ".." {
        return vec![format!("may not be '{value}'")];
    }
    ["/", "%"]
        .iter()
        .filter(|bad| value.contains(*bad))
        .map(|bad| format!("may not contain '{bad}'"))
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::registry::generic::{tests::resource, validate};
    use serde_json::json;

    fn ip(name: &str, parent: serde_json::Value) -> serde_json::Value {
        json!({"metadata": {"name": name}, "spec": {"parentRef": parent}})
    }

    #[test]
    fn names_are_addresses_in_canonical_form() {
        let ips = resource("networking.k8s.io", "v1", "ipaddresses");
        let parent = json!({"resource": "services", "namespace": "default", "name": "web"});
        validate(ips, &ip("10.43.0.10", parent.clone()), None).expect("IPv4");
        validate(ips, &ip("2001:db8::1", parent.clone()), None).expect("IPv6");
        let err = validate(ips, &ip("10.43.0", parent.clone()), None).expect_err("not an IP");
        assert_eq!(err.message, "IPAddress.networking.k8s.io \"10.43.0\" is invalid: metadata.name: Invalid value: \"10.43.0\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)");
        let err = validate(ips, &ip("2001:DB8::1", parent), None).expect_err("not canonical");
        assert!(
            err.message
                .contains("must be in canonical form (\"2001:db8::1\")"),
            "{}",
            err.message
        );
    }

    #[test]
    fn the_parent_is_required_and_fixed() {
        let ips = resource("networking.k8s.io", "v1", "ipaddresses");
        let err = validate(
            ips,
            &json!({"metadata": {"name": "10.43.0.10"}, "spec": {}}),
            None,
        )
        .expect_err("no parent");
        assert!(
            err.message.ends_with("spec.parentRef: Required value"),
            "{}",
            err.message
        );
        let err = validate(ips, &ip("10.43.0.10", json!({"resource": "a/b"})), None)
            .expect_err("bad parent");
        assert!(
            err.message
                .contains("spec.parentRef.resource: Invalid value: \"a/b\": may not contain '/'"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("spec.parentRef.name: Required value"),
            "{}",
            err.message
        );
        let old = ip("10.43.0.10", json!({"resource": "services", "name": "a"}));
        let moved = ip("10.43.0.10", json!({"resource": "services", "name": "b"}));
        let err = validate(ips, &moved, Some(&old)).expect_err("immutable");
        assert!(
            err.message.contains("spec.parentRef: Invalid value"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("field is immutable"),
            "{}",
            err.message
        );
    }
}
