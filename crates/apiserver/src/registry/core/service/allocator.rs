//! Services' cluster IPs and node ports, allocated as upstream's service REST storage does:
//! a free address of the service CIDR (10.43.0.0/16; 10.43.0.1 is the `kubernetes` service's)
//! and, for NodePort and LoadBalancer services, free ports of 30000–32767. Each allocation is a
//! create-if-absent of a reservation key in the store, so two services never get the same one
//! even from concurrent requests; reservations go when the service does.

use std::net::Ipv4Addr;

use bytes::Bytes;
use rand::Rng;
use serde_json::{json, Value};

use crate::status::{ApiError, FieldError};
use crate::storage::Storage;

/// The service CIDR: 10.43.0.0/16.
const SERVICE_NETWORK: [u8; 2] = [10, 43];
/// The first address, reserved for the `kubernetes` service.
pub const KUBERNETES_SERVICE_IP: &str = "10.43.0.1";
const NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;

fn ip_key(ip: &str) -> Bytes {
    Bytes::from(format!("/ranges/serviceips/{ip}"))
}

fn port_key(port: i64) -> Bytes {
    Bytes::from(format!("/ranges/servicenodeports/{port}"))
}

fn in_range(ip: &str) -> bool {
    ip.parse::<Ipv4Addr>().is_ok_and(|a| {
        let o = a.octets();
        o[0] == SERVICE_NETWORK[0]
            && o[1] == SERVICE_NETWORK[1]
            && !(o[2] == 0 && o[3] == 0)
            && !(o[2] == 255 && o[3] == 255)
    })
}

fn invalid(object: &Value, field: &str, value: String, detail: &str) -> ApiError {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    ApiError::invalid(
        "Service",
        "",
        name,
        &[FieldError::invalid_raw(field, value, detail)],
    )
}

/// Allocates what a new service needs, writing it into `object`. On error nothing stays
/// reserved.
pub async fn allocate(storage: &Storage, object: &mut Value) -> Result<(), ApiError> {
    let owner = Bytes::from(format!(
        "{}/{}",
        object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(""),
        object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    ));
    let service_type = object
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    let mut reserved: Vec<Bytes> = Vec::new();
    let result = allocate_into(storage, object, &owner, &service_type, &mut reserved).await;
    if result.is_err() {
        for key in reserved {
            let _ = storage.store.delete(key, 0).await;
        }
    }
    result
}

async fn allocate_into(
    storage: &Storage,
    object: &mut Value,
    owner: &Bytes,
    service_type: &str,
    reserved: &mut Vec<Bytes>,
) -> Result<(), ApiError> {
    if service_type == "ExternalName" {
        return Ok(());
    }
    let requested = object
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let ip = match requested.as_str() {
        "None" => None,
        "" => {
            let mut found = None;
            for _ in 0..256 {
                let candidate = {
                    let mut rng = rand::rng();
                    format!(
                        "{}.{}.{}.{}",
                        SERVICE_NETWORK[0],
                        SERVICE_NETWORK[1],
                        rng.random_range(0..=255u8),
                        rng.random_range(0..=255u8)
                    )
                };
                if !in_range(&candidate) || candidate == KUBERNETES_SERVICE_IP {
                    continue;
                }
                if storage
                    .store
                    .create(ip_key(&candidate), owner.clone(), 0)
                    .await?
                    .is_some()
                {
                    reserved.push(ip_key(&candidate));
                    found = Some(candidate);
                    break;
                }
            }
            Some(found.ok_or_else(|| {
                ApiError::internal("failed to allocate a serviceIP: range is full")
            })?)
        }
        ip => {
            if !in_range(ip) {
                return Err(invalid(object, "spec.clusterIPs", format!("[]string{{{ip:?}}}"), "failed to allocate IP: the provided IP is not in the valid range. The range of valid IPs is 10.43.0.0/16"));
            }
            if storage
                .store
                .create(ip_key(ip), owner.clone(), 0)
                .await?
                .is_none()
            {
                return Err(invalid(
                    object,
                    "spec.clusterIPs",
                    format!("[]string{{{ip:?}}}"),
                    &format!("failed to allocate IP {ip}: provided IP is already allocated"),
                ));
            }
            reserved.push(ip_key(ip));
            Some(ip.to_string())
        }
    };
    let spec = object
        .as_object_mut()
        .map(|o| o.entry("spec").or_insert(json!({})));
    let Some(spec) = spec else { return Ok(()) };
    let cluster_ip = ip.clone().unwrap_or_else(|| "None".to_string());
    spec["clusterIP"] = json!(cluster_ip);
    spec["clusterIPs"] = json!([cluster_ip]);
    spec["ipFamilies"] = json!(["IPv4"]);
    spec["ipFamilyPolicy"] = json!("SingleStack");
    if service_type == "NodePort" || service_type == "LoadBalancer" {
        if let Some(Value::Array(ports)) = spec.get_mut("ports") {
            for port in ports {
                let wanted = port.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
                let node_port = if wanted != 0 {
                    if !NODE_PORTS.contains(&(wanted as u16))
                        || storage
                            .store
                            .create(port_key(wanted), owner.clone(), 0)
                            .await?
                            .is_none()
                    {
                        return Err(invalid(
                            &json!({}),
                            "spec.ports[0].nodePort",
                            wanted.to_string(),
                            "provided port is already allocated",
                        ));
                    }
                    wanted
                } else {
                    let mut found = None;
                    for _ in 0..512 {
                        let candidate = i64::from(rand::rng().random_range(NODE_PORTS));
                        if storage
                            .store
                            .create(port_key(candidate), owner.clone(), 0)
                            .await?
                            .is_some()
                        {
                            found = Some(candidate);
                            break;
                        }
                    }
                    found.ok_or_else(|| {
                        ApiError::internal("failed to allocate a nodePort: range is full")
                    })?
                };
                reserved.push(port_key(node_port));
                port["nodePort"] = json!(node_port);
            }
        }
        spec.as_object_mut()
            .map(|s| s.entry("externalTrafficPolicy").or_insert(json!("Cluster")));
    }
    Ok(())
}

/// Frees what a deleted service held.
pub async fn release(storage: &Storage, object: &Value) {
    if let Some(ip) = object
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .filter(|ip| *ip != "None" && !ip.is_empty())
    {
        let _ = storage.store.delete(ip_key(ip), 0).await;
    }
    for port in object
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(node_port) = port.get("nodePort").and_then(Value::as_i64) {
            let _ = storage.store.delete(port_key(node_port), 0).await;
        }
    }
}

/// An update that leaves out the allocated values keeps them (kubectl apply of a manifest
/// without clusterIP), as upstream's service update does.
pub fn carry_over(new: &mut Value, old: &Value) {
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    for field in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
        if let Some(v) = old.pointer(&format!("/spec/{field}")) {
            spec.entry(field.to_string()).or_insert_with(|| v.clone());
        }
    }
    let old_ports: Vec<&Value> = old
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for port in ports {
            if port.get("nodePort").is_none() {
                let same = old_ports.iter().find(|p| {
                    p.get("port") == port.get("port") && p.get("protocol") == port.get("protocol")
                });
                if let Some(node_port) = same.and_then(|p| p.get("nodePort")) {
                    port["nodePort"] = node_port.clone();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_excludes_network_and_broadcast() {
        assert!(in_range("10.43.12.7"));
        assert!(!in_range("10.43.0.0"));
        assert!(!in_range("10.43.255.255"));
        assert!(!in_range("10.42.0.5"));
        assert!(!in_range("bogus"));
    }

    #[test]
    fn updates_keep_allocated_values() {
        let old = json!({"spec": {"clusterIP": "10.43.1.2", "clusterIPs": ["10.43.1.2"], "ports": [{"port": 80, "protocol": "TCP", "nodePort": 31000}]}});
        let mut new = json!({"spec": {"ports": [{"port": 80, "protocol": "TCP"}]}});
        carry_over(&mut new, &old);
        assert_eq!(new.pointer("/spec/clusterIP"), Some(&json!("10.43.1.2")));
        assert_eq!(new.pointer("/spec/ports/0/nodePort"), Some(&json!(31000)));
    }
}
