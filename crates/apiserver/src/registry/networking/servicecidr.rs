//! ServiceCIDRs (`pkg/registry/networking/servicecidr`): the ranges service cluster IPs come
//! from — one or two CIDRs (one per IP family), fixed once created.

use std::net::IpAddr;

use serde_json::Value;

use crate::registry::generic::immutable;
use crate::registry::Strategy;
use crate::status::FieldError;

/// The ServiceCIDR strategy.
pub struct ServiceCidrStrategy;

impl Strategy for ServiceCidrStrategy {
    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let cidrs: Vec<&str> = object
            .pointer("/spec/cidrs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| c.as_str().unwrap_or(""))
            .collect();
        let spec = || object.get("spec").map(Value::to_string).unwrap_or_default();
        match cidrs.len() {
            0 => {
                errors.push(FieldError::required(
                    "spec.cidrs",
                    "at least one CIDR required",
                ));
                return;
            }
            1 => {}
            2 => {
                let families: Vec<Option<bool>> = cidrs
                    .iter()
                    .map(|c| parse_cidr(c).map(|(ip, _)| ip.is_ipv4()))
                    .collect();
                if families[0].is_none() || families[1].is_none() || families[0] == families[1] {
                    errors.push(FieldError::invalid_raw("spec.cidrs", spec(), "may specify no more than one IP for each IP family, i.e 192.168.0.0/24 and 2001:db8::/64"));
                    return;
                }
            }
            _ => {
                errors.push(FieldError::invalid_raw(
                    "spec.cidrs",
                    spec(),
                    "may only hold up to 2 values",
                ));
                return;
            }
        }
        for (i, cidr) in cidrs.iter().enumerate() {
            if let Some(problem) = cidr_problem(cidr) {
                errors.push(FieldError::invalid(
                    format!("spec.cidrs[{i}]"),
                    *cidr,
                    problem,
                ));
            }
        }
    }

    fn validate_update(&self, new: &Value, old: &Value, errors: &mut Vec<FieldError>) {
        self.validate(new, errors);
        immutable(new, old, "/spec/cidrs", "spec.cidrs", errors);
    }
}

fn parse_cidr(cidr: &str) -> Option<(IpAddr, u8)> {
    let (ip, bits) = cidr.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let bits: u8 = bits.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((ip, bits))
}

/// Upstream's `IsValidCIDR`: a CIDR, written canonically, whose address is the network's.
fn cidr_problem(cidr: &str) -> Option<String> {
    let Some((ip, bits)) = parse_cidr(cidr) else {
        return Some("must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)".into());
    };
    let network = match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            IpAddr::from((u32::from(v4) & mask).to_be_bytes())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            IpAddr::from((u128::from(v6) & mask).to_be_bytes())
        }
    };
    let canonical = format!("{network}/{bits}");
    (canonical != cidr).then(|| format!("must be in canonical form ({canonical:?})"))
}

#[cfg(test)]
mod tests {
    use crate::registry::generic::{tests::resource, validate};
    use serde_json::json;

    fn cidr(cidrs: serde_json::Value) -> serde_json::Value {
        json!({"metadata": {"name": "extra"}, "spec": {"cidrs": cidrs}})
    }

    #[test]
    fn one_cidr_per_family_in_canonical_form() {
        let r = resource("networking.k8s.io", "v1", "servicecidrs");
        validate(r, &cidr(json!(["10.44.0.0/16"])), None).expect("one");
        validate(r, &cidr(json!(["10.44.0.0/16", "2001:db8::/64"])), None).expect("dual");
        let err = validate(r, &cidr(json!([])), None).expect_err("none");
        assert!(
            err.message
                .ends_with("spec.cidrs: Required value: at least one CIDR required"),
            "{}",
            err.message
        );
        let err = validate(r, &cidr(json!(["10.44.0.0/16", "10.45.0.0/16"])), None)
            .expect_err("same family");
        assert!(
            err.message
                .contains("may specify no more than one IP for each IP family"),
            "{}",
            err.message
        );
        let err = validate(r, &cidr(json!(["10.44.0.1/16"])), None).expect_err("host bits");
        assert!(err.message.contains("spec.cidrs[0]: Invalid value: \"10.44.0.1/16\": must be in canonical form (\"10.44.0.0/16\")"), "{}", err.message);
        let err = validate(r, &cidr(json!(["10.44.0.0"])), None).expect_err("no prefix");
        assert!(
            err.message.contains("must be a valid CIDR value"),
            "{}",
            err.message
        );
        let old = cidr(json!(["10.44.0.0/16"]));
        let err = validate(r, &cidr(json!(["10.46.0.0/16"])), Some(&old)).expect_err("immutable");
        assert!(
            err.message.contains("field is immutable"),
            "{}",
            err.message
        );
    }
}
