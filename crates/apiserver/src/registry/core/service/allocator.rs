//! Services' cluster IPs and node ports, allocated as upstream's service REST storage does: an
//! address of the service CIDR (10.43.0.0/16; 10.43.0.1 is the `kubernetes` service's) and,
//! for NodePort and LoadBalancer services, ports of 30000–32767 (shared by ports of the same
//! number, as TCP and UDP 53), plus a health check node port for a LoadBalancer that keeps
//! traffic local.
//!
//! Each reservation is a create-if-absent of a key in the store (its value: who holds it), so
//! two services never get the same address or port, even from concurrent requests or across
//! restarts: the store is the only record. Picked values come first from the upper part of
//! each range, leaving the lower part to those asked for by number (upstream's range offset),
//! at random, then by a scan of what is free. A refused request keeps nothing; an update
//! gives up what the old object held only once it is written ([`Reservations`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;

use bytes::Bytes;
use ferry_store::{KeyRange, RangeRequest};
use k8s_openapi::api::core::v1::ServiceSpec;
use rand::Rng;

use super::defaults::{needs_health_check, needs_node_ports, node_ports};
use super::validation::go_strings;
use super::{cluster_ips, service_type, CLUSTER_IP, EXTERNAL_NAME, LOAD_BALANCER, NODE_PORT};
use crate::registry::generic::parse_ip_sloppy;
use crate::registry::Reservations;
use crate::status::{ApiError, FieldError};
use crate::storage::Storage;

/// The first address, the `kubernetes` service's.
pub const KUBERNETES_SERVICE_IP: &str = "10.43.0.1";
/// The service CIDR.
const SERVICE_CIDR: &str = "10.43.0.0/16";
const NODE_PORT_RANGE: &str = "30000-32767";

/// A range values are reserved from: keys `<prefix><value>`, picked values from
/// `first + offset ..= last` before `first .. first + offset`.
struct Range {
    prefix: &'static str,
    first: u32,
    last: u32,
    offset: u32,
    show: fn(u32) -> String,
    parse: fn(&str) -> Option<u32>,
}

impl Range {
    fn key(&self, value: u32) -> Bytes {
        Bytes::from(format!("{}{}", self.prefix, (self.show)(value)))
    }

    fn contains(&self, value: u32) -> bool {
        (self.first..=self.last).contains(&value)
    }

    /// The upper part first, then the lower.
    fn parts(&self) -> [RangeInclusive<u32>; 2] {
        let split = self.first + self.offset;
        [split..=self.last, self.first..=split - 1]
    }
}

/// 10.43.0.1–10.43.255.254 (not the network or broadcast address); picked addresses from
/// 10.43.1.1 up (`calculateRangeOffset`: 256 for a /16).
const SERVICE_IPS: Range = Range {
    prefix: "/ranges/serviceips/",
    first: u32::from_be_bytes([10, 43, 0, 1]),
    last: u32::from_be_bytes([10, 43, 255, 254]),
    offset: 256,
    show: |v| Ipv4Addr::from(v).to_string(),
    parse: |s| s.parse::<Ipv4Addr>().ok().map(u32::from),
};

/// 30000–32767; picked ports from 30086 up (`calculateRangeOffset`: 2768 / 32).
const NODE_PORTS: Range = Range {
    prefix: "/ranges/servicenodeports/",
    first: 30000,
    last: 32767,
    offset: 86,
    show: |v| v.to_string(),
    parse: |s| s.parse().ok(),
};

/// How many random picks before scanning for a free value.
const RANDOM_PICKS: usize = 32;

/// Why a requested address or port cannot be had (upstream's allocator messages).
#[derive(Debug, PartialEq, thiserror::Error)]
enum RangeError {
    /// An address outside the service CIDR.
    #[error("the provided network does not match the current range")]
    OtherNetwork,
    /// The service CIDR's network or broadcast address.
    #[error(
        "the provided IP ({0}) is not in the valid range. The range of valid IPs is {SERVICE_CIDR}"
    )]
    ReservedIp(std::net::Ipv4Addr),
    /// A node port outside the node port range.
    #[error(
        "provided port is not in the valid range. The range of valid ports is {NODE_PORT_RANGE}"
    )]
    Port,
}

/// A requested cluster IP as a value of [`SERVICE_IPS`], or upstream's reason it is not one.
fn ip_in_range(ip: IpAddr) -> Result<u32, RangeError> {
    let IpAddr::V4(v4) = ip else {
        return Err(RangeError::OtherNetwork);
    };
    let value = u32::from(v4);
    if value >> 16 != u32::from_be_bytes([0, 0, 10, 43]) {
        return Err(RangeError::OtherNetwork);
    }
    if !SERVICE_IPS.contains(value) {
        return Err(RangeError::ReservedIp(v4));
    }
    Ok(value)
}

/// A requested node port as a value of [`NODE_PORTS`], or upstream's reason it is not one.
fn node_port_in_range(port: i32) -> Result<u32, RangeError> {
    u32::try_from(port)
        .ok()
        .filter(|p| NODE_PORTS.contains(*p))
        .ok_or(RangeError::Port)
}

const ALREADY_ALLOCATED_PORT: &str = "provided port is already allocated";

/// The 422 of a refused allocation.
fn invalid(name: &str, error: FieldError) -> ApiError {
    ApiError::invalid("Service", "", name, &[error])
}

/// One request's reservations.
struct Allocation<'a> {
    storage: &'a Storage,
    /// The reservations' value: `<namespace>/<name>`.
    holder: Bytes,
    /// The service's name, for errors.
    name: &'a str,
    reservations: Reservations,
}

impl<'a> Allocation<'a> {
    fn new(storage: &'a Storage, namespace: &str, name: &'a str) -> Self {
        Allocation {
            storage,
            holder: Bytes::from(format!("{namespace}/{name}")),
            name,
            reservations: Reservations::default(),
        }
    }

    /// Reserves `key` if nobody holds it.
    async fn reserve(&mut self, key: Bytes) -> Result<bool, ApiError> {
        let created = self
            .storage
            .store
            .create(key.clone(), self.holder.clone(), 0)
            .await?;
        if created.is_some() {
            self.reservations.taken.push(key);
        }
        Ok(created.is_some())
    }

    /// Reserves a free value of `range`: random picks from its upper part, then a scan of both
    /// parts from a random place.
    async fn reserve_next(&mut self, range: &Range) -> Result<Option<u32>, ApiError> {
        let [upper, _] = range.parts();
        for _ in 0..RANDOM_PICKS {
            let candidate = rand::rng().random_range(upper.clone());
            if self.reserve(range.key(candidate)).await? {
                return Ok(Some(candidate));
            }
        }
        let held = self
            .storage
            .store
            .range(RangeRequest::new(KeyRange::prefix(range.prefix)))
            .await?;
        let held: BTreeSet<u32> = held
            .kvs
            .iter()
            .filter_map(|kv| {
                let key = std::str::from_utf8(&kv.key).ok()?;
                (range.parse)(key.strip_prefix(range.prefix)?)
            })
            .collect();
        for part in range.parts() {
            let size = part.end() - part.start() + 1;
            let start = rand::rng().random_range(0..size);
            for step in 0..size {
                let candidate = part.start() + (start + step) % size;
                if !held.contains(&candidate) && self.reserve(range.key(candidate)).await? {
                    return Ok(Some(candidate));
                }
            }
        }
        Ok(None)
    }

    /// A cluster IP for a service that needs one: the one asked for, or a free one.
    async fn cluster_ip(&mut self, spec: &mut ServiceSpec) -> Result<(), ApiError> {
        if service_type(spec) == EXTERNAL_NAME
            || cluster_ips(spec).first().is_some_and(|ip| ip == "None")
        {
            return Ok(());
        }
        let requested = cluster_ips(spec).first().cloned().unwrap_or_default();
        let ip = if requested.is_empty() {
            let picked = self.reserve_next(&SERVICE_IPS).await?;
            let picked = picked.ok_or_else(|| {
                ApiError::internal("failed to allocate a serviceIP: range is full")
            })?;
            Ipv4Addr::from(picked).to_string()
        } else {
            let (name, printed) = (self.name, go_strings(cluster_ips(spec)));
            let fail = |detail: String| {
                invalid(
                    name,
                    FieldError::invalid_raw(
                        "spec.clusterIPs",
                        printed.clone(),
                        format!("failed to allocate IP {requested}: {detail}"),
                    ),
                )
            };
            let address = parse_ip_sloppy(&requested).ok_or_else(|| {
                ApiError::internal(format!("failed to parse service IP {requested:?}"))
            })?;
            let value = ip_in_range(address).map_err(|e| fail(e.to_string()))?;
            if !self.reserve(SERVICE_IPS.key(value)).await? {
                return Err(fail("provided IP is already allocated".into()));
            }
            requested
        };
        spec.cluster_ip = Some(ip.clone());
        spec.cluster_ips = Some(vec![ip]);
        Ok(())
    }

    /// Reserves the node port asked for by `spec.ports[index]`.
    async fn requested_node_port(&mut self, index: usize, port: i32) -> Result<(), ApiError> {
        let name = self.name;
        let fail = |detail: &str| {
            let field = format!("spec.ports[{index}].nodePort");
            invalid(
                name,
                FieldError::invalid_raw(field, port.to_string(), detail),
            )
        };
        let value = node_port_in_range(port).map_err(|e| fail(&e.to_string()))?;
        if !self.reserve(NODE_PORTS.key(value)).await? {
            return Err(fail(ALREADY_ALLOCATED_PORT));
        }
        Ok(())
    }

    async fn next_node_port(&mut self) -> Result<i32, ApiError> {
        match self.reserve_next(&NODE_PORTS).await? {
            Some(port) => Ok(port as i32),
            None => Err(ApiError::internal(
                "failed to allocate a nodePort: range is full",
            )),
        }
    }

    /// `initNodePorts`: each port number gets one node port, the one asked for by any port of
    /// that number, or a free one (unless a LoadBalancer asks for none).
    async fn create_node_ports(&mut self, spec: &mut ServiceSpec) -> Result<(), ApiError> {
        let allocate_new = allocates_node_ports(spec);
        let requested: Vec<(i32, i32)> = spec
            .ports
            .iter()
            .flatten()
            .map(|p| (p.port, p.node_port.unwrap_or(0)))
            .collect();
        let mut by_number: BTreeMap<i32, i32> = BTreeMap::new();
        for (i, port) in spec.ports.iter_mut().flatten().enumerate() {
            let node_port = port.node_port.unwrap_or(0);
            if node_port == 0 && !allocate_new {
                continue;
            }
            match by_number.get(&port.port) {
                None => {
                    let asked = requested
                        .iter()
                        .find(|(number, node_port)| *number == port.port && *node_port != 0);
                    let node_port = match asked {
                        Some((_, asked)) => {
                            self.requested_node_port(i, *asked).await?;
                            *asked
                        }
                        None => self.next_node_port().await?,
                    };
                    port.node_port = Some(node_port);
                    by_number.insert(port.port, node_port);
                }
                Some(&shared) if node_port == 0 => port.node_port = Some(shared),
                Some(&shared) if node_port != shared => {
                    self.requested_node_port(i, node_port).await?
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// `updateNodePorts`: node ports the old object did not hold are reserved, missing ones
    /// picked; the old object's that the new one dropped are given up.
    async fn update_node_ports(
        &mut self,
        new: &mut ServiceSpec,
        old: &ServiceSpec,
    ) -> Result<(), ApiError> {
        let held = node_ports(old);
        let allocate_new = allocates_node_ports(new);
        let mut reserved = BTreeSet::new();
        for (i, port) in new.ports.iter_mut().flatten().enumerate() {
            match port.node_port.unwrap_or(0) {
                0 if !allocate_new => {}
                0 => port.node_port = Some(self.next_node_port().await?),
                node_port if !held.contains(&node_port) && !reserved.contains(&node_port) => {
                    self.requested_node_port(i, node_port).await?;
                    reserved.insert(node_port);
                }
                _ => {}
            }
        }
        let kept = node_ports(new);
        for node_port in held.difference(&kept) {
            self.give_up_node_port(*node_port);
        }
        Ok(())
    }

    fn give_up_node_port(&mut self, port: i32) {
        if let Ok(port) = u32::try_from(port) {
            self.reservations.given_up.push(NODE_PORTS.key(port));
        }
    }

    /// `allocHealthCheckNodePort`: the one asked for, or a free one. Failures are internal
    /// errors upstream.
    async fn health_check_node_port(&mut self, spec: &mut ServiceSpec) -> Result<(), ApiError> {
        match spec.health_check_node_port.unwrap_or(0) {
            0 => match self.reserve_next(&NODE_PORTS).await? {
                Some(port) => spec.health_check_node_port = Some(port as i32),
                None => {
                    return Err(ApiError::internal(
                        "failed to allocate a HealthCheck NodePort 0: range is full",
                    ))
                }
            },
            port => {
                let fail = |detail: &str| {
                    ApiError::internal(format!(
                        "failed to allocate requested HealthCheck NodePort {port}: {detail}"
                    ))
                };
                let value = node_port_in_range(port).map_err(|e| fail(&e.to_string()))?;
                if !self.reserve(NODE_PORTS.key(value)).await? {
                    return Err(fail(ALREADY_ALLOCATED_PORT));
                }
            }
        }
        Ok(())
    }

    /// Keeps what was reserved if `result` is a success, gives it back otherwise.
    async fn finish(self, result: Result<(), ApiError>) -> Result<Reservations, ApiError> {
        match result {
            Ok(()) => Ok(self.reservations),
            Err(e) => {
                self.reservations.revert(self.storage).await;
                Err(e)
            }
        }
    }
}

/// `shouldAllocateNodePorts`: NodePorts always, LoadBalancers unless they ask for none.
fn allocates_node_ports(spec: &ServiceSpec) -> bool {
    match service_type(spec) {
        NODE_PORT => true,
        LOAD_BALANCER => spec.allocate_load_balancer_node_ports.unwrap_or(true),
        _ => false,
    }
}

/// The keys of the cluster IPs a spec holds.
fn cluster_ip_keys(spec: &ServiceSpec) -> Vec<Bytes> {
    if service_type(spec) == EXTERNAL_NAME {
        return Vec::new();
    }
    let mut ips = cluster_ips(spec).to_vec();
    if ips.is_empty() {
        // Objects written before clusterIPs existed.
        ips.extend(spec.cluster_ip.clone());
    }
    ips.iter()
        .filter_map(|ip| parse_ip_sloppy(ip))
        .filter_map(|ip| ip_in_range(ip).ok())
        .map(|v| SERVICE_IPS.key(v))
        .collect()
}

/// Allocates what a new service needs into `spec` (a valid one). On error nothing stays
/// reserved.
pub async fn allocate(
    storage: &Storage,
    namespace: &str,
    name: &str,
    spec: &mut ServiceSpec,
) -> Result<(), ApiError> {
    let mut allocation = Allocation::new(storage, namespace, name);
    let result = async {
        allocation.cluster_ip(spec).await?;
        if needs_node_ports(spec) {
            allocation.create_node_ports(spec).await?;
        }
        if needs_health_check(spec) {
            allocation.health_check_node_port(spec).await?;
        }
        Ok(())
    }
    .await;
    allocation.finish(result).await.map(drop)
}

/// What an update from `old` to `new` (a valid one) takes and gives up, as upstream's
/// `allocateUpdate`: a cluster IP when leaving ExternalName, and giving it up when becoming
/// one; node ports when becoming NodePort or LoadBalancer or adding ports, giving them up when
/// leaving; the health check node port as `externalTrafficPolicy: Local` comes and goes.
pub async fn allocate_update(
    storage: &Storage,
    namespace: &str,
    name: &str,
    new: &mut ServiceSpec,
    old: &ServiceSpec,
) -> Result<Reservations, ApiError> {
    let mut allocation = Allocation::new(storage, namespace, name);
    let result = async {
        let (old_type, new_type) = (service_type(old), service_type(new).to_string());
        let new_type = new_type.as_str();
        if old_type == EXTERNAL_NAME && new_type != EXTERNAL_NAME {
            allocation.cluster_ip(new).await?;
        } else if old_type != EXTERNAL_NAME && new_type == EXTERNAL_NAME {
            allocation
                .reservations
                .given_up
                .extend(cluster_ip_keys(old));
        }
        if needs_node_ports(old) && matches!(new_type, EXTERNAL_NAME | CLUSTER_IP) {
            for node_port in node_ports(old) {
                allocation.give_up_node_port(node_port);
            }
        }
        if needs_node_ports(new) {
            allocation.update_node_ports(new, old).await?;
        }
        match (needs_health_check(old), needs_health_check(new)) {
            (false, true) => allocation.health_check_node_port(new).await?,
            (true, false) => {
                if let Some(port) = old.health_check_node_port.filter(|p| *p != 0) {
                    allocation.give_up_node_port(port);
                }
            }
            _ => {}
        }
        Ok(())
    }
    .await;
    allocation.finish(result).await
}

/// Frees what a deleted service held.
pub async fn release(storage: &Storage, spec: &ServiceSpec) {
    let mut keys = cluster_ip_keys(spec);
    let mut ports = node_ports(spec);
    if needs_health_check(spec) {
        ports.extend(spec.health_check_node_port.filter(|p| *p != 0));
    }
    keys.extend(
        ports
            .into_iter()
            .filter_map(|p| u32::try_from(p).ok())
            .map(|p| NODE_PORTS.key(p)),
    );
    Reservations {
        taken: keys,
        given_up: Vec::new(),
    }
    .revert(storage)
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requested_addresses_and_ports_are_checked_as_upstream() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(
            ip_in_range(ip("10.43.12.7")),
            Ok(u32::from_be_bytes([10, 43, 12, 7]))
        );
        assert_eq!(
            ip_in_range(ip("10.42.0.5")).map_err(|e| e.to_string()),
            Err("the provided network does not match the current range".into())
        );
        assert_eq!(
            ip_in_range(ip("10.43.255.255")).map_err(|e| e.to_string()),
            Err("the provided IP (10.43.255.255) is not in the valid range. The range of valid IPs is 10.43.0.0/16".into())
        );
        assert!(ip_in_range(ip("10.43.0.0")).is_err());
        assert!(ip_in_range(ip("fd00::1")).is_err());
        assert_eq!(node_port_in_range(30000), Ok(30000));
        assert_eq!(
            node_port_in_range(80).map_err(|e| e.to_string()),
            Err(
                "provided port is not in the valid range. The range of valid ports is 30000-32767"
                    .into()
            )
        );
    }

    #[test]
    fn picked_values_come_from_the_upper_part_first() {
        let [upper, lower] = SERVICE_IPS.parts();
        assert_eq!(Ipv4Addr::from(*upper.start()).to_string(), "10.43.1.1");
        assert_eq!(Ipv4Addr::from(*lower.end()).to_string(), "10.43.1.0");
        assert_eq!(NODE_PORTS.parts(), [30086..=32767, 30000..=30085]);
        assert_eq!(
            &SERVICE_IPS.key(*upper.start())[..],
            b"/ranges/serviceips/10.43.1.1"
        );
        assert_eq!((SERVICE_IPS.parse)("10.43.1.1"), Some(*upper.start()));
    }

    #[test]
    fn load_balancers_may_go_without_node_ports() {
        let spec = |t: &str, allocate: Option<bool>| ServiceSpec {
            type_: Some(t.into()),
            allocate_load_balancer_node_ports: allocate,
            ..ServiceSpec::default()
        };
        assert!(allocates_node_ports(&spec("NodePort", None)));
        assert!(allocates_node_ports(&spec("LoadBalancer", Some(true))));
        assert!(!allocates_node_ports(&spec("LoadBalancer", Some(false))));
        assert!(!allocates_node_ports(&spec("ClusterIP", None)));
    }
}
