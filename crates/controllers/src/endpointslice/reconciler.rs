//! The EndpointSlice reconciler, as upstream's `k8s.io/endpointslice` `Reconciler`: from a
//! Service, the pods it selects and the slices it has, the slices to create, update and delete.
//! Pure — the controller makes the calls.
//!
//! Endpoints are grouped by the ports they resolve to (a pod whose named `targetPort` resolves
//! differently, or not at all, lands in another group), one group's endpoints packed into
//! slices of at most `max_per_slice`, with upstream's packing that changes as few slices as it
//! can:
//! 1. each existing slice keeps the endpoints still wanted (updated in place where they
//!    changed); a slice left empty is deleted;
//! 2. endpoints still to place fill the slices that change anyway, fullest first;
//! 3. the rest go into the unchanged slice closest to full that holds them all (when fewer than
//!    a slice's worth remain), else into new slices.
//!
//! A Service with no endpoints keeps one empty placeholder slice, and a create paired with a
//! delete becomes an update of the slice that would have gone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt as _;

use crate::endpointutil::{
    find_port, is_headless, is_pod_ready, pod_ipv4_addresses, pod_reference, protocol,
    publishes_not_ready, should_pod_be_in_endpoints, should_set_hostname,
};
use crate::util::new_controller_ref;

/// Upstream's `--max-endpoints-per-slice` default.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming the controller that manages a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// The label of the endpoints of a Service without a cluster IP.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// The node label whose value is an endpoint's zone.
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// What one sync changes.
#[derive(Debug, Default)]
pub struct Plan {
    /// New slices (named by `generateName`).
    pub create: Vec<EndpointSlice>,
    /// Slices rewritten whole.
    pub update: Vec<EndpointSlice>,
    /// Slices to delete.
    pub delete: Vec<EndpointSlice>,
    /// Pods left out because their node is not known (yet): the Service is synced again.
    pub missing_nodes: Vec<(String, String)>,
}

/// The settings of a reconciler.
#[derive(Debug, Clone, Copy)]
pub struct Reconciler {
    /// The value of [`MANAGED_BY_LABEL`] on the slices it manages.
    pub controller_name: &'static str,
    /// At most this many endpoints per slice.
    pub max_per_slice: usize,
}

/// What identifies an endpoint across syncs (upstream's `hashEndpoint`): its addresses, its
/// hostname and the pod it stands for. Everything else is updated in place.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct EndpointKey {
    addresses: Vec<String>,
    hostname: String,
    namespace: String,
    name: String,
}

pub(crate) fn endpoint_key(endpoint: &Endpoint) -> EndpointKey {
    let mut addresses = endpoint.addresses.clone();
    addresses.sort();
    let target = endpoint.target_ref.as_ref();
    EndpointKey {
        addresses,
        hostname: endpoint.hostname.clone().unwrap_or_default(),
        namespace: target.and_then(|t| t.namespace.clone()).unwrap_or_default(),
        name: target.and_then(|t| t.name.clone()).unwrap_or_default(),
    }
}

/// A set of ports, order aside (upstream's `PortMapKey`).
pub(crate) type PortKey = Vec<(String, i32, String, String)>;

pub(crate) fn port_key(ports: &[EndpointPort]) -> PortKey {
    let mut key: PortKey = ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or_default(),
                p.protocol.clone().unwrap_or_default(),
                p.app_protocol.clone().unwrap_or_default(),
            )
        })
        .collect();
    key.sort();
    key
}

/// The endpoints of one port group, by identity.
type EndpointSet = BTreeMap<EndpointKey, Endpoint>;

/// Whether two endpoints of one identity show the same (upstream's
/// `endpointsEqualBeyondHash`): node, zone, conditions and the pod reference.
fn equal_beyond_key(a: &Endpoint, b: &Endpoint) -> bool {
    let target = |e: &Endpoint| {
        e.target_ref.clone().map(|mut t| {
            t.resource_version = None;
            t
        })
    };
    a.node_name == b.node_name
        && a.zone == b.zone
        && a.conditions == b.conditions
        && target(a) == target(b)
}

/// The endpoint a pod is (upstream's `podToEndpoint`): `serving` is the pod's readiness,
/// `terminating` its deletion, `ready` serving and not terminating — or always, with
/// `publishNotReadyAddresses`.
fn pod_to_endpoint(
    pod: &Pod,
    node: Option<&Node>,
    service: &Service,
    addresses: Vec<String>,
) -> Endpoint {
    let serving = is_pod_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let ready = publishes_not_ready(service) || (serving && !terminating);
    let spec = pod.spec.as_ref();
    Endpoint {
        addresses,
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        target_ref: Some(pod_reference(pod)),
        node_name: spec
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty()),
        zone: node
            .and_then(|n| n.labels().get(ZONE_LABEL))
            .filter(|z| !z.is_empty())
            .cloned(),
        hostname: should_set_hostname(pod, service)
            .then(|| spec.and_then(|s| s.hostname.clone()))
            .flatten(),
        ..Endpoint::default()
    }
}

/// The ports of the Service a pod serves (upstream's `getEndpointPorts`): one per Service port
/// whose `targetPort` the pod has.
fn endpoint_ports(service: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let ports = service.spec.as_ref().and_then(|s| s.ports.as_ref());
    ports
        .into_iter()
        .flatten()
        .filter_map(|port| {
            let number = find_port(pod, port)?;
            Some(EndpointPort {
                name: Some(port.name.clone().unwrap_or_default()),
                port: Some(number),
                protocol: Some(protocol(port.protocol.as_ref()).to_string()),
                app_protocol: port.app_protocol.clone(),
            })
        })
        .collect()
}

/// The address types of a Service's slices (upstream's `getAddressTypesForService`): its IP
/// families; without them, its cluster IP's family, or both for a headless Service.
fn address_types(service: &Service) -> BTreeSet<&'static str> {
    let spec = service.spec.as_ref();
    let mut types: BTreeSet<&'static str> = spec
        .and_then(|s| s.ip_families.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|family| match family.as_str() {
            "IPv4" => Some("IPv4"),
            "IPv6" => Some("IPv6"),
            _ => None,
        })
        .collect();
    if types.is_empty() {
        match spec.and_then(|s| s.cluster_ip.as_deref()) {
            Some(ip) if ip != "None" && !ip.is_empty() => {
                types.insert(if ip.contains(':') { "IPv6" } else { "IPv4" });
            }
            _ => types.extend(["IPv4", "IPv6"]),
        }
    }
    types
}

/// Whether the slice belongs to this Service (not to an earlier one of the same name).
fn owned_by(slice: &EndpointSlice, service: &Service) -> bool {
    slice.metadata.owner_references.iter().flatten().any(|o| {
        Some(&o.uid) == service.metadata.uid.as_ref()
            && o.kind == "Service"
            && o.api_version == "v1"
    })
}

/// The labels a slice of `service` carries (upstream's `setEndpointSliceLabels`): the
/// Service's own, then the reserved ones; and whether the Service's part differs from the
/// slice's.
fn slice_labels(
    slice: Option<&EndpointSlice>,
    service: &Service,
    controller_name: &str,
) -> (BTreeMap<String, String>, bool) {
    let reserved =
        |k: &String| k == SERVICE_NAME_LABEL || k == MANAGED_BY_LABEL || k == HEADLESS_LABEL;
    let own = |labels: Option<&BTreeMap<String, String>>| -> BTreeMap<String, String> {
        labels
            .into_iter()
            .flatten()
            .filter(|(k, _)| !reserved(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let mut labels = own(service.metadata.labels.as_ref());
    let changed = slice.is_some_and(|s| own(s.metadata.labels.as_ref()) != labels);
    if is_headless(service) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels.insert(SERVICE_NAME_LABEL.into(), service.name_any());
    labels.insert(MANAGED_BY_LABEL.into(), controller_name.into());
    (labels, changed)
}

impl Reconciler {
    /// The reconciler of upstream's EndpointSlice controller.
    pub const DEFAULT: Reconciler = Reconciler {
        controller_name: "endpointslice-controller.k8s.io",
        max_per_slice: MAX_ENDPOINTS_PER_SLICE,
    };

    /// What to change so that `existing` (the slices this controller manages for `service`)
    /// hold the endpoints of `pods` (the pods `service` selects); `node` finds a node by name.
    pub fn reconcile(
        &self,
        service: &Service,
        pods: &[Arc<Pod>],
        node: &dyn Fn(&str) -> Option<Arc<Node>>,
        existing: &[Arc<EndpointSlice>],
    ) -> Plan {
        let types = address_types(service);
        let mut plan = Plan::default();
        let mut unsupported = Vec::new();
        let mut by_type: BTreeMap<&str, Vec<&EndpointSlice>> = BTreeMap::new();
        for slice in existing {
            match types.get(slice.address_type.as_str()) {
                Some(t) => by_type.entry(t).or_default().push(slice),
                None => unsupported.push((**slice).clone()),
            }
        }
        for address_type in types {
            let slices = by_type.remove(address_type).unwrap_or_default();
            self.reconcile_address_type(service, pods, node, &slices, address_type, &mut plan);
        }
        plan.delete.extend(unsupported);
        plan
    }

    fn reconcile_address_type(
        &self,
        service: &Service,
        pods: &[Arc<Pod>],
        node: &dyn Fn(&str) -> Option<Arc<Node>>,
        existing: &[&EndpointSlice],
        address_type: &'static str,
        plan: &mut Plan,
    ) {
        let mut create = Vec::new();
        let mut update = Vec::new();
        let mut delete: Vec<EndpointSlice> = Vec::new();

        let mut existing_by_ports: BTreeMap<PortKey, Vec<&EndpointSlice>> = BTreeMap::new();
        for slice in existing {
            if owned_by(slice, service) {
                let key = port_key(slice.ports.as_deref().unwrap_or_default());
                existing_by_ports.entry(key).or_default().push(slice);
            } else {
                delete.push((*slice).clone());
            }
        }

        let mut desired: BTreeMap<PortKey, (Vec<EndpointPort>, EndpointSet)> = BTreeMap::new();
        for pod in pods {
            if !should_pod_be_in_endpoints(pod, true) {
                continue;
            }
            let ports = endpoint_ports(service, pod);
            let (_, endpoints) = desired
                .entry(port_key(&ports))
                .or_insert_with(|| (ports, EndpointSet::new()));
            let node_name = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            let found = node(&node_name);
            if found.is_none() && !publishes_not_ready(service) {
                plan.missing_nodes.push((pod.name_any(), node_name));
                continue;
            }
            let addresses = match address_type {
                "IPv4" => pod_ipv4_addresses(pod),
                // ferry's pods have IPv4 addresses only.
                _ => Vec::new(),
            };
            if !addresses.is_empty() {
                let endpoint = pod_to_endpoint(pod, found.as_deref(), service, addresses);
                endpoints.insert(endpoint_key(&endpoint), endpoint);
            }
        }

        for (key, (ports, endpoints)) in desired.iter_mut() {
            let slices = existing_by_ports
                .get(key)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let endpoints = std::mem::take(endpoints);
            let group = self.reconcile_ports(service, slices, endpoints, ports, address_type);
            create.extend(group.create);
            update.extend(group.update);
            delete.extend(group.delete);
        }
        for (key, slices) in &existing_by_ports {
            if !desired.contains_key(key) {
                delete.extend(slices.iter().map(|s| (*s).clone()));
            }
        }

        // A Service without endpoints keeps one empty slice.
        if existing.len() == delete.len() && create.is_empty() {
            let placeholder = self.new_slice(service, Vec::new(), address_type);
            if delete.len() == 1 && same_placeholder(&delete[0], &placeholder) {
                delete.clear();
            } else {
                create.push(placeholder);
            }
        }

        // A slice to create and one to delete make an update of the latter.
        let mut i = 0;
        while i < delete.len() && !create.is_empty() {
            let gone = &delete[i];
            if owned_by(gone, service) {
                let mut slice = create.pop().expect("not empty");
                slice.metadata.name = gone.metadata.name.clone();
                slice.metadata.resource_version = gone.metadata.resource_version.clone();
                slice.metadata.uid = gone.metadata.uid.clone();
                update.push(slice);
                delete.remove(i);
            } else {
                i += 1;
            }
        }
        plan.create.extend(create);
        plan.update.extend(update);
        plan.delete.extend(delete);
    }

    /// One port group: upstream's `reconcileByPortMapping`.
    fn reconcile_ports(
        &self,
        service: &Service,
        existing: &[&EndpointSlice],
        mut desired: EndpointSet,
        ports: &[EndpointPort],
        address_type: &'static str,
    ) -> Plan {
        let mut plan = Plan::default();
        let mut slices: BTreeMap<String, EndpointSlice> = BTreeMap::new();
        let mut to_update: BTreeSet<String> = BTreeSet::new();
        let mut unchanged: BTreeSet<String> = BTreeSet::new();

        // 1. Keep what is still wanted.
        for slice in existing {
            let name = slice.name_any();
            let mut kept = Vec::new();
            let mut endpoint_changed = false;
            for endpoint in &slice.endpoints {
                if let Some(want) = desired.remove(&endpoint_key(endpoint)) {
                    endpoint_changed |= !equal_beyond_key(&want, endpoint);
                    kept.push(want);
                }
            }
            let (labels, labels_changed) = slice_labels(Some(slice), service, self.controller_name);
            if endpoint_changed || kept.len() != slice.endpoints.len() {
                if kept.is_empty() {
                    plan.delete.push((*slice).clone());
                    continue;
                }
                let mut changed = (*slice).clone();
                changed.endpoints = kept;
                changed.metadata.labels = Some(labels);
                slices.insert(name.clone(), changed);
                to_update.insert(name);
            } else if labels_changed {
                let mut changed = (*slice).clone();
                changed.metadata.labels = Some(labels);
                slices.insert(name.clone(), changed);
                to_update.insert(name);
            } else {
                slices.insert(name.clone(), (*slice).clone());
                unchanged.insert(name);
            }
        }

        // 2. Fill the slices that change anyway, fullest first.
        if !desired.is_empty() && !to_update.is_empty() {
            let mut order: Vec<&String> = to_update.iter().collect();
            order.sort_by_key(|name| std::cmp::Reverse(slices[*name].endpoints.len()));
            for name in order {
                let slice = slices.get_mut(name).expect("tracked");
                while slice.endpoints.len() < self.max_per_slice {
                    let Some((_, endpoint)) = desired.pop_first() else {
                        break;
                    };
                    slice.endpoints.push(endpoint);
                }
            }
        }

        // 3. The rest into the unchanged slice closest to full, or new slices.
        while !desired.is_empty() {
            let fill = (desired.len() < self.max_per_slice)
                .then(|| self.slice_to_fill(&unchanged, &slices, desired.len()))
                .flatten();
            let mut slice = match &fill {
                Some(name) => slices[name].clone(),
                None => self.new_slice(service, ports.to_vec(), address_type),
            };
            while slice.endpoints.len() < self.max_per_slice {
                let Some((_, endpoint)) = desired.pop_first() else {
                    break;
                };
                slice.endpoints.push(endpoint);
            }
            match fill {
                Some(name) => {
                    unchanged.remove(&name);
                    to_update.insert(name.clone());
                    slices.insert(name, slice);
                }
                None => plan.create.push(slice),
            }
        }
        plan.update = to_update
            .into_iter()
            .filter_map(|name| slices.remove(&name))
            .collect();
        plan
    }

    /// The unchanged slice that `count` more endpoints bring closest to full (upstream's
    /// `getSliceToFill`).
    fn slice_to_fill(
        &self,
        unchanged: &BTreeSet<String>,
        slices: &BTreeMap<String, EndpointSlice>,
        count: usize,
    ) -> Option<String> {
        unchanged
            .iter()
            .filter_map(|name| {
                let room = self
                    .max_per_slice
                    .checked_sub(count + slices[name].endpoints.len())?;
                Some((room, name))
            })
            .min_by_key(|(room, _)| *room)
            .map(|(_, name)| name.clone())
    }

    /// A new, empty slice of `service` (upstream's `newEndpointSlice`).
    fn new_slice(
        &self,
        service: &Service,
        ports: Vec<EndpointPort>,
        address_type: &'static str,
    ) -> EndpointSlice {
        let (labels, _) = slice_labels(None, service, self.controller_name);
        EndpointSlice {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}-", service.name_any())),
                namespace: service.namespace(),
                labels: Some(labels),
                owner_references: Some(vec![new_controller_ref(
                    &service.metadata,
                    "v1",
                    "Service",
                )]),
                ..ObjectMeta::default()
            },
            address_type: address_type.into(),
            endpoints: Vec::new(),
            ports: Some(ports),
        }
    }
}

/// Whether an existing slice is the placeholder that would be made anew (upstream's
/// `placeholderSliceCompare`: namespace, labels, owners, address type, no ports, no endpoints).
fn same_placeholder(existing: &EndpointSlice, placeholder: &EndpointSlice) -> bool {
    let labels = |s: &EndpointSlice| s.metadata.labels.clone().unwrap_or_default();
    existing.metadata.namespace == placeholder.metadata.namespace
        && labels(existing) == labels(placeholder)
        && existing.metadata.owner_references == placeholder.metadata.owner_references
        && existing.address_type == placeholder.address_type
        && existing.endpoints.is_empty()
        && existing.ports.as_ref().is_none_or(Vec::is_empty)
}

#[cfg(test)]
mod tests;
