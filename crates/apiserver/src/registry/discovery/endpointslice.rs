//! EndpointSlices (`pkg/registry/discovery/endpointslice`): `metadata.generation` starts at 1
//! and moves when anything but the metadata changes, or the labels do (the EndpointSlice
//! controller tells its own writes from others' by it); the address type is one of IPv4, IPv6
//! or FQDN and never changes; at most 1,000 endpoints of 1 to 100 addresses of that type, and
//! at most 20,000 ports with unique names.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::registry::generic::{immutable, is_dns_label, is_dns_subdomain};
use crate::registry::Strategy;
use crate::status::FieldError;

const ADDRESS_TYPES: [&str; 3] = ["FQDN", "IPv4", "IPv6"];
const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];
const MAX_ENDPOINTS: usize = 1000;
const MAX_ADDRESSES: usize = 100;
const MAX_PORTS: usize = 20000;

/// The EndpointSlice strategy.
pub struct EndpointSliceStrategy;

fn without_metadata(object: &Value) -> Value {
    let mut rest = object.clone();
    if let Some(map) = rest.as_object_mut() {
        map.remove("metadata");
    }
    rest
}

impl Strategy for EndpointSliceStrategy {
    fn prepare_for_create(&self, object: &mut Value, _user: Option<&UserInfo>) {
        object["metadata"]["generation"] = json!(1);
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        let generation = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let changed = without_metadata(new) != without_metadata(old)
            || new.pointer("/metadata/labels") != old.pointer("/metadata/labels");
        new["metadata"]["generation"] = json!(if changed { generation + 1 } else { generation });
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let address_type = object
            .get("addressType")
            .and_then(Value::as_str)
            .unwrap_or("");
        if address_type.is_empty() {
            errors.push(FieldError::required("addressType", ""));
        } else if !ADDRESS_TYPES.contains(&address_type) {
            errors.push(FieldError::not_supported(
                "addressType",
                address_type,
                &ADDRESS_TYPES,
            ));
        }
        validate_endpoints(object, address_type, errors);
        validate_ports(object, errors);
    }

    fn validate_update(&self, new: &Value, old: &Value, errors: &mut Vec<FieldError>) {
        self.validate(new, errors);
        immutable(new, old, "/addressType", "addressType", errors);
    }
}

fn validate_endpoints(object: &Value, address_type: &str, errors: &mut Vec<FieldError>) {
    let endpoints = object
        .get("endpoints")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if endpoints.len() > MAX_ENDPOINTS {
        errors.push(FieldError::too_many(
            "endpoints",
            endpoints.len(),
            MAX_ENDPOINTS,
        ));
        return;
    }
    for (i, endpoint) in endpoints.iter().enumerate() {
        let path = format!("endpoints[{i}]");
        let addresses = endpoint
            .get("addresses")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if addresses.is_empty() {
            errors.push(FieldError::required(
                format!("{path}.addresses"),
                "must contain at least 1 address",
            ));
        } else if addresses.len() > MAX_ADDRESSES {
            errors.push(FieldError::too_many(
                format!("{path}.addresses"),
                addresses.len(),
                MAX_ADDRESSES,
            ));
        }
        for (j, address) in addresses.iter().enumerate() {
            let address = address.as_str().unwrap_or("");
            let problem = match address_type {
                "IPv4" => address
                    .parse::<Ipv4Addr>()
                    .is_err()
                    .then_some("must be a valid IPv4 address"),
                "IPv6" => address
                    .parse::<Ipv6Addr>()
                    .is_err()
                    .then_some("must be a valid IPv6 address"),
                "FQDN" => (!is_dns_subdomain(address))
                    .then_some("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
                _ => None,
            };
            if let Some(problem) = problem {
                errors.push(FieldError::invalid(
                    format!("{path}.addresses[{j}]"),
                    address,
                    problem,
                ));
            }
        }
        if let Some(hostname) = endpoint.get("hostname").and_then(Value::as_str) {
            if !is_dns_label(hostname) {
                errors.push(FieldError::invalid(
                    format!("{path}.hostname"),
                    hostname,
                    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
                ));
            }
        }
        if let Some(node) = endpoint.get("nodeName").and_then(Value::as_str) {
            if !is_dns_subdomain(node) {
                errors.push(FieldError::invalid(
                    format!("{path}.nodeName"),
                    node,
                    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
                ));
            }
        }
    }
}

fn validate_ports(object: &Value, errors: &mut Vec<FieldError>) {
    let ports = object
        .get("ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if ports.len() > MAX_PORTS {
        errors.push(FieldError::too_many("ports", ports.len(), MAX_PORTS));
        return;
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let path = format!("ports[{i}]");
        let name = port.get("name").and_then(Value::as_str).unwrap_or("");
        if !name.is_empty() && !is_dns_label(name) {
            errors.push(FieldError::invalid(
                format!("{path}.name"),
                name,
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
            ));
        }
        if !names.insert(name) {
            errors.push(FieldError::duplicate(format!("{path}.name"), name));
        }
        match port.get("protocol").and_then(Value::as_str) {
            None => errors.push(FieldError::required(format!("{path}.protocol"), "")),
            Some(p) if !PROTOCOLS.contains(&p) => errors.push(FieldError::not_supported(
                format!("{path}.protocol"),
                p,
                &PROTOCOLS,
            )),
            Some(_) => {}
        }
        if let Some(number) = port.get("port").and_then(Value::as_i64) {
            if !(1..=65535).contains(&number) {
                errors.push(FieldError::invalid_raw(
                    format!("{path}.port"),
                    number.to_string(),
                    "must be between 1 and 65535, inclusive",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::registry::generic::{tests::resource, validate};
    use crate::registry::Strategy as _;
    use serde_json::json;

    fn slice(endpoints: serde_json::Value, ports: serde_json::Value) -> serde_json::Value {
        json!({"metadata": {"name": "web-abc", "namespace": "default"}, "addressType": "IPv4",
            "endpoints": endpoints, "ports": ports})
    }

    #[test]
    fn valid_and_invalid_slices() {
        let slices = resource("discovery.k8s.io", "v1", "endpointslices");
        let ok = slice(
            json!([{"addresses": ["10.42.0.5"], "hostname": "web-0", "nodeName": "node-a"}]),
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
        );
        validate(slices, &ok, None).expect("valid");
        let bad = slice(
            json!([{"addresses": ["fd00::1"]}, {"addresses": []}]),
            json!([{"name": "http", "port": 0, "protocol": "TCP"}, {"name": "http", "port": 80, "protocol": "ICMP"}]),
        );
        let error = validate(slices, &bad, None).expect_err("invalid");
        assert_eq!(error.code, 422);
        assert_eq!(
            error.message,
            "EndpointSlice.discovery.k8s.io \"web-abc\" is invalid: [endpoints[0].addresses[0]: Invalid value: \"fd00::1\": must be a valid IPv4 address, endpoints[1].addresses: Required value: must contain at least 1 address, ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive, ports[1].name: Duplicate value: \"http\", ports[1].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"]"
        );
        let mut changed = ok.clone();
        changed["addressType"] = json!("IPv6");
        changed["endpoints"] = json!([]);
        let error = validate(slices, &changed, Some(&ok)).expect_err("immutable");
        assert!(
            error
                .message
                .contains("addressType: Invalid value: \"IPv6\": field is immutable"),
            "{}",
            error.message
        );
    }

    #[test]
    fn generation_moves_with_endpoints_ports_and_labels() {
        let strategy = super::EndpointSliceStrategy;
        let mut created = slice(json!([]), json!([]));
        strategy.prepare_for_create(&mut created, None);
        assert_eq!(created["metadata"]["generation"], 1);
        let mut annotated = created.clone();
        annotated["metadata"]["annotations"] = json!({"a": "b"});
        strategy.prepare_for_update(&mut annotated, &created);
        assert_eq!(annotated["metadata"]["generation"], 1);
        let mut relabelled = created.clone();
        relabelled["metadata"]["labels"] = json!({"a": "b"});
        strategy.prepare_for_update(&mut relabelled, &created);
        assert_eq!(relabelled["metadata"]["generation"], 2);
        let mut filled = created.clone();
        filled["endpoints"] = json!([{"addresses": ["10.42.0.5"]}]);
        strategy.prepare_for_update(&mut filled, &created);
        assert_eq!(filled["metadata"]["generation"], 2);
    }
}
