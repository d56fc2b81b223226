//! The Endpoints controller (upstream's `pkg/controller/endpoint`, `endpoint-controller`): the
//! legacy v1 Endpoints of every Service with a selector, which `kubectl describe service` and
//! many older tools read. One object named as the Service, its addresses grouped into subsets
//! by the ports they serve, ready and not-ready addresses apart, at most 1,000 addresses (the
//! rest cut, with `endpoints.kubernetes.io/over-capacity: truncated`).
//!
//! Unlike EndpointSlices, Endpoints have no owner reference: the controller deletes them when
//! their Service goes, and leaves alone those of Services without a selector (made by hand).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use ferry_client::events::{reference, EventType};
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt as _};
use parking_lot::Mutex;

use crate::endpointutil::{
    find_port, is_headless, is_pod_ready, pod_ipv4_addresses, pod_reference, protocol,
    publishes_not_ready, selected_pods, service_selector, services_to_sync,
    should_pod_be_in_endpoints, should_set_hostname,
};
use crate::informer::{key_of, Key};
use crate::queue::{Queue, Reconciler};
use crate::util::api_code;
use crate::{Context, Error};

/// At most this many addresses in one Endpoints object.
pub const MAX_CAPACITY: usize = 1000;
/// The annotation of an Endpoints object whose addresses were cut to [`MAX_CAPACITY`].
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
/// The label on the Endpoints this controller manages.
pub const MANAGED_BY_LABEL: &str = "endpoints.kubernetes.io/managed-by";
/// Its value.
pub const CONTROLLER_NAME: &str = "endpoint-controller";
const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// Why a sync did not finish.
#[derive(Debug, thiserror::Error)]
pub enum EndpointsError {
    /// The cache still shows the Endpoints as they were before this controller's last update.
    #[error("endpoints informer cache is out of date, resource version {0} already processed")]
    StaleCache(String),
    /// An API call failed.
    #[error(transparent)]
    Api(#[from] Error),
}

/// The controller and its queue of Services.
pub struct EndpointsController {
    ctx: Arc<Context>,
    queue: Arc<Queue<Key>>,
    /// Per Service, the resourceVersion its Endpoints had before this controller's last update.
    stale: Mutex<HashMap<Key, String>>,
}

impl Reconciler for EndpointsController {
    type Key = Key;
    type Error = EndpointsError;
    const NAME: &'static str = "endpoint";

    fn queue(&self) -> &Arc<Queue<Key>> {
        &self.queue
    }

    async fn reconcile(self: Arc<Self>, key: Key) -> Result<Option<Duration>, EndpointsError> {
        self.sync(key).await
    }
}

impl EndpointsController {
    /// Registers the handlers.
    pub fn new(ctx: Arc<Context>) -> Arc<EndpointsController> {
        let controller = Arc::new(EndpointsController {
            ctx: ctx.clone(),
            queue: Queue::new(),
            stale: Mutex::default(),
        });
        let c = controller.clone();
        ctx.services.add_handler(move |old, new| {
            if let Some(service) = new.or(old) {
                c.queue.add(key_of(service.as_ref()));
            }
        });
        let c = controller.clone();
        ctx.pods.add_handler(move |old, new| {
            for key in services_to_sync(&c.ctx.services, old, new) {
                c.queue.add(key);
            }
        });
        // Endpoints deleted by someone else are made again.
        let c = controller.clone();
        ctx.endpoints.add_handler(move |old, new| {
            if let (Some(old), None) = (old, new) {
                c.queue.add(key_of(old.as_ref()));
            }
        });
        controller
    }

    async fn sync(&self, key: Key) -> Result<Option<Duration>, EndpointsError> {
        let (namespace, name) = &key;
        let api: Api<Endpoints> = Api::namespaced(self.ctx.client.clone(), namespace);
        let Some(service) = self.ctx.services.get(namespace, name) else {
            self.stale.lock().remove(&key);
            return match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => Ok(None),
                Err(e) if api_code(&e) == Some(404) => Ok(None),
                Err(e) => Err(Error::api("deleting endpoints", e).into()),
            };
        };
        if service_selector(&service).is_none() {
            return Ok(None);
        }
        let pods = selected_pods(&self.ctx.pods, &service);
        let subsets = desired_subsets(&service, &pods);
        let current = self.ctx.endpoints.get(namespace, name);
        if let Some(current) = &current {
            let version = current.resource_version().unwrap_or_default();
            if self.stale.lock().get(&key) == Some(&version) {
                return Err(EndpointsError::StaleCache(version));
            }
        }
        let labels = endpoints_labels(&service);
        if let Some(current) = &current {
            let total: usize = subsets.iter().map(address_count).sum();
            let capacity_marked = current.annotations().contains_key(OVER_CAPACITY);
            if current.subsets.clone().unwrap_or_default() == subsets
                && current.labels() == &labels
                && total <= MAX_CAPACITY
                && !capacity_marked
            {
                return Ok(None);
            }
        }

        let mut endpoints = current.as_deref().cloned().unwrap_or_else(|| Endpoints {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            ..Endpoints::default()
        });
        let mut subsets = subsets;
        let mut annotations = endpoints.metadata.annotations.take().unwrap_or_default();
        if truncate(&mut subsets) {
            annotations.insert(OVER_CAPACITY.into(), "truncated".into());
        } else {
            annotations.remove(OVER_CAPACITY);
        }
        endpoints.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
        endpoints.metadata.labels = Some(labels);
        endpoints.subsets = (!subsets.is_empty()).then_some(subsets);

        let params = PostParams::default();
        let written = match &current {
            None => api.create(&params, &endpoints).await,
            Some(_) => api.replace(name, &params, &endpoints).await,
        };
        match written {
            Ok(updated) => {
                if let Some(current) = &current {
                    if updated.resource_version() != current.resource_version() {
                        let version = current.resource_version().unwrap_or_default();
                        self.stale.lock().insert(key.clone(), version);
                    }
                }
                Ok(None)
            }
            // A namespace being deleted takes no new objects.
            Err(kube::Error::Api(status))
                if current.is_none()
                    && status.code == 403
                    && status.message.contains("because it is being terminated") =>
            {
                Ok(None)
            }
            Err(e) => {
                let (reason, verb) = match current {
                    None => ("FailedToCreateEndpoint", "create"),
                    Some(_) => ("FailedToUpdateEndpoint", "update"),
                };
                self.ctx.recorder("endpoint-controller").event(
                    reference(&endpoints),
                    EventType::Warning,
                    reason,
                    format!("Failed to {verb} endpoint for service {namespace}/{name}: {e}"),
                );
                Err(Error::api("writing endpoints", e).into())
            }
        }
    }
}

/// The Endpoints' labels: the Service's, the headless mark, and the controller's.
fn endpoints_labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels = service.labels().clone();
    if is_headless(service) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    } else {
        labels.remove(HEADLESS_LABEL);
    }
    labels.insert(MANAGED_BY_LABEL.into(), CONTROLLER_NAME.into());
    labels
}

fn address_count(subset: &EndpointSubset) -> usize {
    subset.addresses.as_ref().map_or(0, Vec::len)
        + subset.not_ready_addresses.as_ref().map_or(0, Vec::len)
}

/// The subsets of a Service's Endpoints from the pods it selects (upstream's `syncService`):
/// each pod's address once per Service port it has (a named `targetPort` it lacks leaves that
/// port out), ready unless the pod is not ready and the Service does not publish not-ready
/// addresses; then [`repack`]ed.
pub fn desired_subsets(service: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let publish = publishes_not_ready(service);
    let service_ports = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    let mut subsets = Vec::new();
    for pod in pods {
        if !should_pod_be_in_endpoints(pod, publish) {
            continue;
        }
        let Some(ip) = pod_ipv4_addresses(pod).into_iter().next() else {
            continue;
        };
        let spec = pod.spec.as_ref();
        let address = EndpointAddress {
            ip,
            node_name: spec.and_then(|s| s.node_name.clone()),
            hostname: should_set_hostname(pod, service)
                .then(|| spec.and_then(|s| s.hostname.clone()))
                .flatten(),
            target_ref: Some(pod_reference(pod)),
        };
        let ready = publish || is_pod_ready(pod);
        let subset = |ports: Option<Vec<EndpointPort>>| {
            let addresses = Some(vec![address.clone()]);
            if ready {
                EndpointSubset {
                    addresses,
                    ports,
                    ..EndpointSubset::default()
                }
            } else {
                EndpointSubset {
                    not_ready_addresses: addresses,
                    ports,
                    ..EndpointSubset::default()
                }
            }
        };
        // A headless Service may have no ports: its addresses are listed without.
        if service_ports.is_empty() && is_headless(service) {
            subsets.push(subset(None));
        }
        for port in &service_ports {
            if let Some(number) = find_port(pod, port) {
                subsets.push(subset(Some(vec![EndpointPort {
                    name: port.name.clone().filter(|n| !n.is_empty()),
                    port: number,
                    protocol: Some(protocol(port.protocol.as_ref()).to_string()),
                    app_protocol: port.app_protocol.clone(),
                }])));
            }
        }
    }
    repack(&subsets)
}

/// Upstream's `RepackSubsets`: the same addresses and ports regrouped so that each subset holds
/// the addresses serving exactly the same set of ports — an address is not ready for a port if
/// any subset says so — in a canonical order (addresses by IP, subsets and ports sorted).
pub fn repack(subsets: &[EndpointSubset]) -> Vec<EndpointSubset> {
    let mut addresses: BTreeMap<(String, String), EndpointAddress> = BTreeMap::new();
    let mut per_port: BTreeMap<PortKey, BTreeMap<(String, String), bool>> = BTreeMap::new();
    for subset in subsets {
        let ports: Vec<PortKey> = match subset.ports.as_deref() {
            None | Some([]) => vec![PortKey::NONE],
            Some(ports) => ports.iter().map(PortKey::of).collect(),
        };
        let listed = subset.addresses.iter().flatten().map(|a| (a, true)).chain(
            subset
                .not_ready_addresses
                .iter()
                .flatten()
                .map(|a| (a, false)),
        );
        for (address, ready) in listed {
            let uid = address.target_ref.as_ref().and_then(|t| t.uid.clone());
            let key = (address.ip.clone(), uid.unwrap_or_default());
            addresses
                .entry(key.clone())
                .or_insert_with(|| address.clone());
            for port in &ports {
                let was = per_port
                    .entry(port.clone())
                    .or_default()
                    .entry(key.clone())
                    .or_insert(ready);
                // Not ready wins over ready.
                *was &= ready;
            }
        }
    }
    let mut by_members: BTreeMap<BTreeMap<(String, String), bool>, BTreeSet<PortKey>> =
        BTreeMap::new();
    for (port, members) in per_port {
        by_members.entry(members).or_default().insert(port);
    }
    let mut repacked: Vec<EndpointSubset> = by_members
        .into_iter()
        .map(|(members, ports)| {
            let (mut ready, mut not_ready) = (Vec::new(), Vec::new());
            for (key, is_ready) in members {
                let address = addresses[&key].clone();
                if is_ready {
                    ready.push(address);
                } else {
                    not_ready.push(address);
                }
            }
            let ports: Vec<EndpointPort> = ports
                .into_iter()
                .filter(|p| *p != PortKey::NONE)
                .map(PortKey::into_port)
                .collect();
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect();
    repacked.sort_by_key(|s| serde_json::to_string(s).unwrap_or_default());
    repacked
}

/// A port of a subset; `NONE` stands for "no ports" (a headless Service without ports).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct PortKey {
    name: String,
    port: i32,
    protocol: String,
    app_protocol: Option<String>,
}

impl PortKey {
    const NONE: PortKey = PortKey {
        name: String::new(),
        port: -1,
        protocol: String::new(),
        app_protocol: None,
    };

    fn of(port: &EndpointPort) -> PortKey {
        PortKey {
            name: port.name.clone().unwrap_or_default(),
            port: port.port,
            protocol: protocol(port.protocol.as_ref()).to_string(),
            app_protocol: port.app_protocol.clone(),
        }
    }

    fn into_port(self) -> EndpointPort {
        EndpointPort {
            name: (!self.name.is_empty()).then_some(self.name),
            port: self.port,
            protocol: Some(self.protocol),
            app_protocol: self.app_protocol,
        }
    }
}

/// Cuts the addresses to [`MAX_CAPACITY`] as upstream's `truncateEndpoints`: the not-ready
/// ones first, each subset keeping its share (rounded up); if the ready ones alone are too
/// many, all not-ready ones go and the ready ones are shared out. Whether anything was cut.
pub fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let ready: usize = subsets
        .iter()
        .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
        .sum();
    let not_ready: usize = subsets
        .iter()
        .map(|s| s.not_ready_addresses.as_ref().map_or(0, Vec::len))
        .sum();
    if ready + not_ready <= MAX_CAPACITY {
        return false;
    }
    let truncate_ready = ready > MAX_CAPACITY;
    let (max, total) = if truncate_ready {
        (MAX_CAPACITY, ready)
    } else {
        (MAX_CAPACITY - ready, not_ready)
    };
    let mut room = max;
    for subset in subsets.iter_mut() {
        let list = if truncate_ready {
            subset.not_ready_addresses = None;
            &mut subset.addresses
        } else {
            &mut subset.not_ready_addresses
        };
        let count = list.as_ref().map_or(0, Vec::len);
        let share = (count * max).div_ceil(total).min(room);
        if let Some(list) = list.as_mut() {
            list.truncate(share);
        }
        room -= list.as_ref().map_or(0, Vec::len);
    }
    true
}

#[cfg(test)]
mod tests;
