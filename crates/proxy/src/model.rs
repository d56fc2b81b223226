//! What the proxy programs, read from Services and EndpointSlices (kube-proxy's
//! `ServicePortMap` and `EndpointsMap`): one [`ServicePort`] per port of every Service with a
//! cluster IP, with the endpoints its slices list for that port name and protocol.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt as _;

use crate::nft::Protocol;

/// `namespace/name:port/protocol`: what a Service port is known by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePortName {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The port's name (empty for the single unnamed port).
    pub port: String,
    /// Its protocol.
    pub protocol: Protocol,
}

impl std::fmt::Display for ServicePortName {
    /// `ns/name/tcp/port`, as kube-proxy's chain names show it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.namespace,
            self.name,
            self.protocol.as_str(),
            self.port
        )
    }
}

/// One endpoint of a Service port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    /// The pod's address.
    pub ip: Ipv4Addr,
    /// The port on the pod.
    pub port: u16,
    /// Ready (and not terminating).
    pub ready: bool,
    /// Serving: ready, terminating or not.
    pub serving: bool,
    /// Being deleted.
    pub terminating: bool,
    /// On this node.
    pub local: bool,
}

/// One port of a Service with its endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicePort {
    /// What it is known by.
    pub name: ServicePortName,
    /// The cluster IP.
    pub cluster_ip: Ipv4Addr,
    /// The Service port.
    pub port: u16,
    /// The node port (NodePort and LoadBalancer Services).
    pub node_port: Option<u16>,
    /// External IPs and load-balancer ingress IPs: reached as the node port is.
    pub external_ips: Vec<Ipv4Addr>,
    /// `sessionAffinity: ClientIP`: how long a client sticks to its endpoint, in seconds.
    pub affinity_timeout: Option<u32>,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
    /// `externalTrafficPolicy: Local`.
    pub external_local: bool,
    /// Its endpoints, sorted.
    pub endpoints: Vec<Endpoint>,
}

impl ServicePort {
    /// The endpoints traffic may go to (kube-proxy's `CategorizeEndpoints`): the ready ones;
    /// if none is, those still serving while terminating. `local` keeps only this node's.
    pub fn usable(&self, local: bool) -> Vec<&Endpoint> {
        let candidates: Vec<&Endpoint> = self
            .endpoints
            .iter()
            .filter(|e| !local || e.local)
            .collect();
        let ready: Vec<&Endpoint> = candidates.iter().copied().filter(|e| e.ready).collect();
        if !ready.is_empty() {
            return ready;
        }
        candidates
            .into_iter()
            .filter(|e| e.serving && e.terminating)
            .collect()
    }

    /// Whether the node port or external IPs reach it.
    pub fn is_external(&self) -> bool {
        self.node_port.is_some() || !self.external_ips.is_empty()
    }
}

const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The Service ports to program on node `node`, sorted by name.
pub fn service_ports(
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
    node: &str,
) -> Vec<ServicePort> {
    // Slices by (namespace, service).
    let mut slices_of: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        if let Some(service) = slice.labels().get(SERVICE_NAME_LABEL) {
            slices_of
                .entry((slice.namespace().unwrap_or_default(), service.clone()))
                .or_default()
                .push(slice);
        }
    }
    let mut ports = Vec::new();
    for service in services {
        let Some(spec) = service.spec.as_ref() else {
            continue;
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        // Headless Services (and those without an address yet) get no rules.
        let Some(cluster_ip) = spec
            .cluster_ip
            .as_deref()
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        else {
            continue;
        };
        let key = (service.namespace().unwrap_or_default(), service.name_any());
        let service_slices = slices_of.get(&key).map(Vec::as_slice).unwrap_or_default();
        let mut external_ips: Vec<Ipv4Addr> = spec
            .external_ips
            .iter()
            .flatten()
            .filter_map(|ip| ip.parse().ok())
            .collect();
        external_ips.extend(
            service
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|i| i.ip.as_deref()?.parse::<Ipv4Addr>().ok()),
        );
        external_ips.sort();
        external_ips.dedup();
        let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|t| u32::try_from(t).ok())
                .unwrap_or(10800)
        });
        for port in spec.ports.iter().flatten() {
            let Some(protocol) = Protocol::parse(port.protocol.as_deref()) else {
                continue;
            };
            let Ok(number) = u16::try_from(port.port) else {
                continue;
            };
            let name = ServicePortName {
                namespace: key.0.clone(),
                name: key.1.clone(),
                port: port.name.clone().unwrap_or_default(),
                protocol,
            };
            ports.push(ServicePort {
                endpoints: endpoints_of(service_slices, &name, node),
                cluster_ip,
                port: number,
                node_port: port.node_port.and_then(|p| u16::try_from(p).ok()),
                external_ips: external_ips.clone(),
                affinity_timeout,
                internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
                external_local: spec.external_traffic_policy.as_deref() == Some("Local"),
                name,
            });
        }
    }
    ports.sort_by(|a, b| a.name.cmp(&b.name));
    ports
}

/// The endpoints the slices list for one port (matched by name and protocol), one per address
/// and port even if several slices list it.
fn endpoints_of(slices: &[&EndpointSlice], name: &ServicePortName, node: &str) -> Vec<Endpoint> {
    let mut endpoints: BTreeMap<(Ipv4Addr, u16), Endpoint> = BTreeMap::new();
    for slice in slices {
        let port = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or_default() == name.port
                && Protocol::parse(p.protocol.as_deref()) == Some(name.protocol)
        });
        let Some(number) = port
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for endpoint in &slice.endpoints {
            let Some(ip) = endpoint.addresses.first().and_then(|a| a.parse().ok()) else {
                continue;
            };
            let conditions = endpoint.conditions.clone().unwrap_or_default();
            // Unknown readiness counts as ready, as the API says.
            let ready = conditions.ready.unwrap_or(true);
            endpoints.entry((ip, number)).or_insert(Endpoint {
                ip,
                port: number,
                ready,
                serving: conditions.serving.unwrap_or(ready),
                terminating: conditions.terminating.unwrap_or(false),
                local: endpoint.node_name.as_deref() == Some(node),
            });
        }
    }
    endpoints.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(spec: serde_json::Value) -> Arc<Service> {
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec}),
            )
            .expect("service"),
        )
    }

    fn slice(endpoints: serde_json::Value) -> Arc<EndpointSlice> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "web-x", "namespace": "default",
                "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": endpoints}))
            .expect("slice"),
        )
    }

    #[test]
    fn ports_with_their_endpoints() {
        let services = [
            service(
                json!({"clusterIP": "10.43.0.20", "type": "NodePort", "sessionAffinity": "ClientIP",
                "ports": [{"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP"},
                          {"name": "dns", "port": 53, "protocol": "UDP"}]}),
            ),
            service(json!({"clusterIP": "None", "ports": [{"port": 80}]})),
        ];
        let slices = [slice(json!([
            {"addresses": ["10.42.0.5"], "conditions": {"ready": true}, "nodeName": "a"},
            {"addresses": ["10.42.1.5"], "conditions": {"ready": false, "serving": true, "terminating": true}, "nodeName": "b"},
        ]))];
        let ports = service_ports(&services, &slices, "a");
        assert_eq!(ports.len(), 2);
        let http = ports.iter().find(|p| p.name.port == "http").expect("http");
        assert_eq!(http.name.to_string(), "default/web/tcp/http");
        assert_eq!(http.node_port, Some(30080));
        assert_eq!(http.affinity_timeout, Some(10800));
        assert_eq!(http.endpoints.len(), 2);
        assert!(http.endpoints[0].local && !http.endpoints[1].local);
        let usable: Vec<Ipv4Addr> = http.usable(false).iter().map(|e| e.ip).collect();
        assert_eq!(usable, [Ipv4Addr::new(10, 42, 0, 5)]);
        // The UDP port has no endpoints: no slice lists it.
        let dns = ports.iter().find(|p| p.name.port == "dns").expect("dns");
        assert!(dns.endpoints.is_empty());
    }

    #[test]
    fn terminating_endpoints_serve_only_when_nothing_is_ready() {
        let services = [service(
            json!({"clusterIP": "10.43.0.20", "ports": [{"name": "http", "port": 80}]}),
        )];
        let slices = [slice(json!([
            {"addresses": ["10.42.0.5"], "conditions": {"ready": false, "serving": true, "terminating": true}, "nodeName": "a"},
            {"addresses": ["10.42.0.6"], "conditions": {"ready": false, "serving": false, "terminating": true}, "nodeName": "a"},
        ]))];
        let ports = service_ports(&services, &slices, "a");
        let usable: Vec<Ipv4Addr> = ports[0].usable(false).iter().map(|e| e.ip).collect();
        assert_eq!(usable, [Ipv4Addr::new(10, 42, 0, 5)]);
        assert!(ports[0].usable(false).len() == ports[0].usable(true).len());
    }
}
