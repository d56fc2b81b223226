//! NetworkPolicy semantics as a pure function: from the policies, the pods and the namespaces,
//! which of this node's pods are isolated for ingress and egress and what each may still
//! receive or send. Upstream's rules (networking.k8s.io/v1 `NetworkPolicySpec`):
//!
//! - a pod is isolated for ingress (egress) when a policy in its namespace selects it and has
//!   `Ingress` (`Egress`) among its `policyTypes` (absent: `Ingress`, plus `Egress` when the
//!   policy has egress rules);
//! - an isolated pod takes what any selecting policy's rules allow (rules add up, never
//!   subtract); a rule's peers are alternatives (absent or empty: every address), its ports are
//!   alternatives (absent or empty: every port and protocol);
//! - a peer is an `ipBlock` (a CIDR less its `except`s), or pods: `podSelector` alone picks pods
//!   of the policy's namespace, `namespaceSelector` alone every pod of the namespaces it picks,
//!   both together the pods it picks in those namespaces;
//! - a port is a number or a container port's name, with `endPort` for a range and `protocol`
//!   TCP by default; a name is resolved against the pod that receives the traffic (the isolated
//!   pod for ingress, each peer pod for egress), and a pod without that name matches nothing.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ferry_api::matching::selector_matches;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::plan::Cidr;

/// A transport protocol a policy port names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP (the default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    fn parse(name: Option<&str>) -> Option<Protocol> {
        match name.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// Its nft keyword.
    pub fn nft(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// Destination ports of one protocol: `first..=last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ports {
    /// The protocol.
    pub protocol: Protocol,
    /// The first port.
    pub first: u16,
    /// The last port (the first, without `endPort`).
    pub last: u16,
}

/// The remote side of an allowed flow.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Addresses {
    /// Any address.
    Any,
    /// A CIDR less some CIDRs (`ipBlock`).
    Block {
        /// The CIDR.
        cidr: Cidr,
        /// What it excludes.
        except: Vec<Cidr>,
    },
    /// These pod IPs (sorted, not empty).
    Pods(Vec<Ipv4Addr>),
}

/// One allowed kind of flow: from (ingress) or to (egress) `addresses`, on `ports` (`None`:
/// every port and protocol).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Allow {
    /// The remote addresses.
    pub addresses: Addresses,
    /// The destination ports, `None` for all.
    pub ports: Option<Ports>,
}

/// One of this node's pods that a policy isolates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Isolated {
    /// The pod's IP.
    pub ip: Ipv4Addr,
    /// `namespace/name`, for the rules' comments.
    pub pod: String,
    /// What it may still receive (`None`: not isolated for ingress).
    pub ingress: Option<Vec<Allow>>,
    /// What it may still send (`None`: not isolated for egress).
    pub egress: Option<Vec<Allow>>,
}

/// A pod as the policies see it.
struct PodView<'a> {
    namespace: &'a str,
    name: &'a str,
    ip: Ipv4Addr,
    labels: &'a BTreeMap<String, String>,
    pod: &'a Pod,
}

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// Pods with an IPv4 pod IP of their own (not host-network) that still run.
fn pod_view(pod: &Pod) -> Option<PodView<'_>> {
    let spec = pod.spec.as_ref()?;
    let status = pod.status.as_ref()?;
    if spec.host_network == Some(true)
        || matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"))
    {
        return None;
    }
    Some(PodView {
        namespace: pod.metadata.namespace.as_deref()?,
        name: pod.metadata.name.as_deref()?,
        ip: status.pod_ip.as_deref()?.parse().ok()?,
        labels: pod.metadata.labels.as_ref().unwrap_or(&NO_LABELS),
        pod,
    })
}

/// The number `pod` exposes as the container port named `name` for `protocol`.
fn named_port(pod: &Pod, name: &str, protocol: Protocol) -> Option<u16> {
    pod.spec
        .as_ref()?
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| {
            p.name.as_deref() == Some(name)
                && Protocol::parse(p.protocol.as_deref()) == Some(protocol)
        })
        .and_then(|p| u16::try_from(p.container_port).ok())
}

/// A policy port resolved for the pod receiving the traffic; `None` when it matches nothing
/// there (an unknown name or protocol, a port out of range).
fn resolve_port(port: &NetworkPolicyPort, receiver: Option<&Pod>) -> Option<Option<Ports>> {
    let protocol = Protocol::parse(port.protocol.as_deref())?;
    let first = match &port.port {
        // No port: every port of the protocol.
        None => {
            return Some(Some(Ports {
                protocol,
                first: 0,
                last: u16::MAX,
            }))
        }
        Some(IntOrString::Int(n)) => u16::try_from(*n).ok()?,
        Some(IntOrString::String(name)) => named_port(receiver?, name, protocol)?,
    };
    let last = match (&port.port, port.end_port) {
        (Some(IntOrString::Int(_)), Some(end)) => u16::try_from(end).ok()?.max(first),
        _ => first,
    };
    Some(Some(Ports {
        protocol,
        first,
        last,
    }))
}

/// What a policy's peer selects.
enum PeerMatch<'a> {
    Block(Addresses),
    Pods(Vec<&'a PodView<'a>>),
}

fn peer_match<'a>(
    peer: &NetworkPolicyPeer,
    policy_namespace: &str,
    pods: &'a [PodView<'a>],
    namespace_labels: &BTreeMap<&str, &BTreeMap<String, String>>,
) -> Option<PeerMatch<'a>> {
    if let Some(block) = &peer.ip_block {
        let cidr: Cidr = block.cidr.parse().ok()?;
        let except = block
            .except
            .iter()
            .flatten()
            .filter_map(|c| c.parse().ok())
            .collect();
        return Some(PeerMatch::Block(Addresses::Block { cidr, except }));
    }
    if peer.pod_selector.is_none() && peer.namespace_selector.is_none() {
        return None;
    }
    let selected = pods
        .iter()
        .filter(|p| match &peer.namespace_selector {
            None => p.namespace == policy_namespace,
            Some(selector) => namespace_labels
                .get(p.namespace)
                .is_some_and(|labels| selector_matches(selector, labels)),
        })
        .filter(|p| {
            peer.pod_selector
                .as_ref()
                .is_none_or(|selector| selector_matches(selector, p.labels))
        })
        .collect();
    Some(PeerMatch::Pods(selected))
}

/// The allows of one rule (`peers`, `ports`) of a policy, for `isolated` and `direction`.
fn rule_allows(
    peers: Option<&Vec<NetworkPolicyPeer>>,
    ports: Option<&Vec<NetworkPolicyPort>>,
    policy_namespace: &str,
    isolated: &PodView<'_>,
    ingress: bool,
    pods: &[PodView<'_>],
    namespace_labels: &BTreeMap<&str, &BTreeMap<String, String>>,
) -> Vec<Allow> {
    let ports: Vec<&NetworkPolicyPort> = ports.into_iter().flatten().collect();
    let peers: Vec<&NetworkPolicyPeer> = peers.into_iter().flatten().collect();
    // Each (addresses, receiving pod) pair, then crossed with the ports resolved for it.
    let mut targets: Vec<(Addresses, Option<&Pod>)> = Vec::new();
    if peers.is_empty() {
        targets.push((Addresses::Any, ingress.then_some(isolated.pod)));
    }
    for peer in peers {
        match peer_match(peer, policy_namespace, pods, namespace_labels) {
            None => {}
            Some(PeerMatch::Block(addresses)) => {
                targets.push((addresses, ingress.then_some(isolated.pod)));
            }
            Some(PeerMatch::Pods(selected)) if ingress => {
                let mut ips: Vec<Ipv4Addr> = selected.iter().map(|p| p.ip).collect();
                ips.sort();
                ips.dedup();
                if !ips.is_empty() {
                    targets.push((Addresses::Pods(ips), Some(isolated.pod)));
                }
            }
            // Egress: named ports are resolved per peer pod, so each pod is a target.
            Some(PeerMatch::Pods(selected)) => {
                for pod in selected {
                    targets.push((Addresses::Pods(vec![pod.ip]), Some(pod.pod)));
                }
            }
        }
    }
    let mut allows = Vec::new();
    for (addresses, receiver) in targets {
        if ports.is_empty() {
            allows.push(Allow {
                addresses,
                ports: None,
            });
            continue;
        }
        for port in &ports {
            if let Some(resolved) = resolve_port(port, receiver) {
                allows.push(Allow {
                    addresses: addresses.clone(),
                    ports: resolved,
                });
            }
        }
    }
    allows
}

/// The policy types a policy has, with upstream's defaults: (ingress, egress).
fn policy_types(policy: &NetworkPolicy) -> (bool, bool) {
    let spec = policy.spec.as_ref();
    match spec.and_then(|s| s.policy_types.as_ref()) {
        Some(types) => (
            types.iter().any(|t| t == "Ingress"),
            types.iter().any(|t| t == "Egress"),
        ),
        None => (
            true,
            spec.and_then(|s| s.egress.as_ref())
                .is_some_and(|e| !e.is_empty()),
        ),
    }
}

/// This node's pods that policies isolate, with what each may still receive and send, sorted
/// by IP. `node_name` picks this node's pods among `pods`.
pub fn isolated<'a>(
    policies: impl IntoIterator<Item = &'a NetworkPolicy>,
    pods: impl IntoIterator<Item = &'a Pod>,
    namespaces: impl IntoIterator<Item = &'a Namespace>,
    node_name: &str,
) -> Vec<Isolated> {
    let pods: Vec<PodView<'a>> = pods.into_iter().filter_map(pod_view).collect();
    let namespace_labels: BTreeMap<&str, &BTreeMap<String, String>> = namespaces
        .into_iter()
        .filter_map(|n| {
            Some((
                n.metadata.name.as_deref()?,
                n.metadata.labels.as_ref().unwrap_or(&NO_LABELS),
            ))
        })
        .collect();
    let policies: Vec<&NetworkPolicy> = policies.into_iter().collect();
    let mut result = Vec::new();
    for pod in pods
        .iter()
        .filter(|p| p.pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node_name))
    {
        let mut ingress: Option<Vec<Allow>> = None;
        let mut egress: Option<Vec<Allow>> = None;
        for policy in &policies {
            let namespace = policy.metadata.namespace.as_deref().unwrap_or("default");
            let Some(spec) = policy.spec.as_ref() else {
                continue;
            };
            // An absent podSelector is the empty one: every pod of the namespace.
            let selects = spec
                .pod_selector
                .as_ref()
                .is_none_or(|selector| selector_matches(selector, pod.labels));
            if namespace != pod.namespace || !selects {
                continue;
            }
            let (isolates_ingress, isolates_egress) = policy_types(policy);
            if isolates_ingress {
                let allows = ingress.get_or_insert_with(Vec::new);
                for rule in spec.ingress.iter().flatten() {
                    allows.extend(rule_allows(
                        rule.from.as_ref(),
                        rule.ports.as_ref(),
                        namespace,
                        pod,
                        true,
                        &pods,
                        &namespace_labels,
                    ));
                }
            }
            if isolates_egress {
                let allows = egress.get_or_insert_with(Vec::new);
                for rule in spec.egress.iter().flatten() {
                    allows.extend(rule_allows(
                        rule.to.as_ref(),
                        rule.ports.as_ref(),
                        namespace,
                        pod,
                        false,
                        &pods,
                        &namespace_labels,
                    ));
                }
            }
        }
        if ingress.is_some() || egress.is_some() {
            for allows in [&mut ingress, &mut egress].into_iter().flatten() {
                allows.sort();
                allows.dedup();
            }
            result.push(Isolated {
                ip: pod.ip,
                pod: format!("{}/{}", pod.namespace, pod.name),
                ingress,
                egress,
            });
        }
    }
    result.sort_by_key(|i| i.ip);
    result
}
