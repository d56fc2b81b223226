//! What the node's routing should hold, as a pure function of the Node list: the peers (other
//! nodes with a podCIDR and an InternalIP) and, per backend, the routes, VXLAN neighbours and
//! forwarding entries that reach their pods. No I/O here; [`crate::link`] applies a [`Plan`].

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use k8s_openapi::api::core::v1::Node;

/// How pods on other nodes are reached (flannel's backend names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// A route per other node: its podCIDR via its InternalIP. The nodes must share an L2
    /// network (each node's address a direct next hop of the others).
    HostGw,
    /// An overlay: a VXLAN device ([`VXLAN_DEVICE`]) on every node, a route per other node
    /// through it, and the neighbour and forwarding entries that send the encapsulated frame to
    /// the node's InternalIP over UDP. Nodes only need to reach each other over IP.
    Vxlan,
}

impl Backend {
    /// Its name, as the flags and the `ferry-pod-network` ConfigMap spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::HostGw => "host-gw",
            Backend::Vxlan => "vxlan",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A backend name that is neither `host-gw` nor `vxlan`.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown pod network backend {0:?}: use host-gw or vxlan")]
pub struct UnknownBackend(pub String);

impl FromStr for Backend {
    type Err = UnknownBackend;
    fn from_str(s: &str) -> Result<Backend, UnknownBackend> {
        match s {
            "host-gw" => Ok(Backend::HostGw),
            "vxlan" => Ok(Backend::Vxlan),
            other => Err(UnknownBackend(other.to_string())),
        }
    }
}

/// The VXLAN device of the [`Backend::Vxlan`] overlay (flannel's is `flannel.1`).
pub const VXLAN_DEVICE: &str = "ferry.1";
/// Its VXLAN network identifier.
pub const VXLAN_VNI: u32 = 1;
/// Its UDP port (the Linux kernel's and flannel's default, 8472).
pub const VXLAN_PORT: u16 = 8472;
/// What the VXLAN header costs: outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14).
pub const VXLAN_OVERHEAD: u32 = 50;

/// An IPv4 network, kept with its host bits cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    /// The network address.
    pub network: Ipv4Addr,
    /// The prefix length, 0–32.
    pub prefix: u8,
}

impl Cidr {
    /// The network `address/prefix` (host bits cleared).
    pub fn new(address: Ipv4Addr, prefix: u8) -> Option<Cidr> {
        if prefix > 32 {
            return None;
        }
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        Some(Cidr {
            network: Ipv4Addr::from(u32::from(address) & mask),
            prefix,
        })
    }

    /// Whether `ip` lies in it.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        Cidr::new(ip, self.prefix) == Some(*self)
    }
}

/// A CIDR that is not `a.b.c.d/n`.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid IPv4 CIDR {0:?}")]
pub struct InvalidCidr(pub String);

impl FromStr for Cidr {
    type Err = InvalidCidr;
    fn from_str(s: &str) -> Result<Cidr, InvalidCidr> {
        let invalid = || InvalidCidr(s.to_string());
        let (address, prefix) = s.split_once('/').ok_or_else(invalid)?;
        let address: Ipv4Addr = address.parse().map_err(|_| invalid())?;
        let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
        Cidr::new(address, prefix).ok_or_else(invalid)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The annotation an agent puts on its Node once it runs the pod network, naming the backend
/// (as flannel's agents annotate theirs with `flannel.alpha.coreos.com/backend-type`). Only
/// nodes that carry it with this node's backend are peers: a node whose InternalIP is mere data
/// (a simulated one) is never routed to.
pub const BACKEND_ANNOTATION: &str = "podnet.ferry.dev/backend";

/// Another node whose pods this node routes to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Peer {
    /// Its podCIDR.
    pub pod_cidr: Cidr,
    /// Its InternalIP: the next hop (host-gw) or the tunnel's remote end (vxlan).
    pub node_ip: Ipv4Addr,
    /// The Node's name.
    pub node: String,
}

/// The node's IPv4 InternalIP and podCIDR, if it has both.
fn address_and_cidr(node: &Node) -> Option<(Ipv4Addr, Cidr)> {
    let cidr: Cidr = node.spec.as_ref()?.pod_cidr.as_deref()?.parse().ok()?;
    let ip = node
        .status
        .as_ref()?
        .addresses
        .iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .find_map(|a| a.address.parse::<Ipv4Addr>().ok())?;
    Some((ip, cidr))
}

/// The peers among `nodes`: every other node running the pod network with `backend`
/// ([`BACKEND_ANNOTATION`]) that has an IPv4 InternalIP and a podCIDR, sorted by podCIDR. A
/// node that shares one of `own_ips` runs on this machine (another agent beside this one, with
/// its own bridge): its pods are reached through that bridge's connected route, so it is no
/// peer.
pub fn peers<'a>(
    nodes: impl IntoIterator<Item = &'a Node>,
    backend: Backend,
    own_name: &str,
    own_ips: &[Ipv4Addr],
) -> Vec<Peer> {
    let mut peers: Vec<Peer> = nodes
        .into_iter()
        .filter(|n| n.metadata.name.as_deref() != Some(own_name))
        .filter(|n| {
            n.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(BACKEND_ANNOTATION))
                .is_some_and(|b| b == backend.as_str())
        })
        .filter_map(|n| {
            let (node_ip, pod_cidr) = address_and_cidr(n)?;
            (!own_ips.contains(&node_ip)).then(|| Peer {
                pod_cidr,
                node_ip,
                node: n.metadata.name.clone().unwrap_or_default(),
            })
        })
        .collect();
    peers.sort();
    // Two nodes claiming one podCIDR (the IPAM controller never does that): one route only.
    peers.dedup_by(|b, a| a.pod_cidr == b.pod_cidr);
    peers
}

/// This node's own part of the overlay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vtep {
    /// The VXLAN device's address: the first address of the podCIDR (its network address, as
    /// flannel does), as a /32. Peers route this node's podCIDR via it.
    pub address: Ipv4Addr,
    /// The device's MAC, [`vtep_mac`] of the node IP.
    pub mac: [u8; 6],
    /// The tunnel's local end: the node IP.
    pub local: Ipv4Addr,
}

/// The VXLAN device's MAC for a node IP: locally administered, unicast (`0e:fe:` and the four
/// bytes of the address). Every node computes every other node's, so nothing needs to be
/// published on the Node (flannel publishes a random MAC in an annotation instead).
pub fn vtep_mac(node_ip: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = node_ip.octets();
    [0x0e, 0xfe, a, b, c, d]
}

/// A route to a peer's pods.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    /// The peer's podCIDR.
    pub destination: Cidr,
    /// The next hop: the peer's InternalIP (host-gw) or its VTEP address (vxlan).
    pub gateway: Ipv4Addr,
    /// Through [`VXLAN_DEVICE`], on-link (vxlan); otherwise the kernel finds the device.
    pub via_vxlan: bool,
}

/// A peer's end of the overlay: its VTEP address answers to `mac` (a permanent neighbour
/// entry), and frames for `mac` go to `node_ip` (a forwarding-database entry).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Neighbour {
    /// The peer's VTEP address.
    pub address: Ipv4Addr,
    /// The peer's VTEP MAC.
    pub mac: [u8; 6],
    /// The peer's node IP, where its encapsulated frames go.
    pub node_ip: Ipv4Addr,
}

/// What the node's routing should hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The overlay device's own end, with the vxlan backend and at least one peer (a node
    /// alone makes no device).
    pub vtep: Option<Vtep>,
    /// One route per peer.
    pub routes: Vec<Route>,
    /// One neighbour per peer (vxlan).
    pub neighbours: Vec<Neighbour>,
}

/// The plan for this node (`own_ip`, `own_cidr`) and its peers.
pub fn plan(backend: Backend, own_ip: Ipv4Addr, own_cidr: Cidr, peers: &[Peer]) -> Plan {
    match backend {
        Backend::HostGw => Plan {
            vtep: None,
            routes: peers
                .iter()
                .map(|p| Route {
                    destination: p.pod_cidr,
                    gateway: p.node_ip,
                    via_vxlan: false,
                })
                .collect(),
            neighbours: Vec::new(),
        },
        Backend::Vxlan => Plan {
            vtep: (!peers.is_empty()).then(|| Vtep {
                address: own_cidr.network,
                mac: vtep_mac(own_ip),
                local: own_ip,
            }),
            routes: peers
                .iter()
                .map(|p| Route {
                    destination: p.pod_cidr,
                    gateway: p.pod_cidr.network,
                    via_vxlan: true,
                })
                .collect(),
            neighbours: peers
                .iter()
                .map(|p| Neighbour {
                    address: p.pod_cidr.network,
                    mac: vtep_mac(p.node_ip),
                    node_ip: p.node_ip,
                })
                .collect(),
        },
    }
}

/// What to change to get from `current` to `desired` (both sorted or not; compared as sets).
#[derive(Debug, PartialEq, Eq)]
pub struct Diff<T> {
    /// In `desired`, not in `current`.
    pub add: Vec<T>,
    /// In `current`, not in `desired`.
    pub remove: Vec<T>,
}

/// The set difference both ways.
pub fn diff<T: Clone + Eq + std::hash::Hash>(current: &[T], desired: &[T]) -> Diff<T> {
    use std::collections::HashSet;
    let have: HashSet<&T> = current.iter().collect();
    let want: HashSet<&T> = desired.iter().collect();
    Diff {
        add: desired
            .iter()
            .filter(|t| !have.contains(t))
            .cloned()
            .collect(),
        remove: current
            .iter()
            .filter(|t| !want.contains(t))
            .cloned()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeSpec, NodeStatus};

    fn node(name: &str, ip: &str, cidr: Option<&str>) -> Node {
        Node {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                annotations: Some([(BACKEND_ANNOTATION.to_string(), "vxlan".to_string())].into()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                pod_cidr: cidr.map(str::to_string),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                addresses: Some(vec![
                    NodeAddress {
                        type_: "Hostname".into(),
                        address: name.into(),
                    },
                    NodeAddress {
                        type_: "InternalIP".into(),
                        address: ip.into(),
                    },
                ]),
                ..Default::default()
            }),
        }
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("address")
    }

    #[test]
    fn cidrs_parse_and_clear_host_bits() {
        let cidr: Cidr = "10.42.1.7/24".parse().expect("valid");
        assert_eq!(cidr.to_string(), "10.42.1.0/24");
        assert!(cidr.contains(ip("10.42.1.200")));
        assert!(!cidr.contains(ip("10.42.2.1")));
        assert_eq!("0.0.0.0/0".parse::<Cidr>().map(|c| c.prefix), Ok(0));
        for bad in ["10.42.0.0", "10.42.0.0/33", "10.42.0/24", "x/8"] {
            assert_eq!(bad.parse::<Cidr>(), Err(InvalidCidr(bad.into())), "{bad}");
        }
        assert_eq!("host-gw".parse(), Ok(Backend::HostGw));
        assert_eq!("vxlan".parse(), Ok(Backend::Vxlan));
        assert!("udp".parse::<Backend>().is_err());
    }

    #[test]
    fn peers_are_the_other_nodes_with_an_address_and_a_pod_cidr() {
        let nodes = [
            node("a", "192.168.1.1", Some("10.42.0.0/24")),
            node("c", "192.168.1.3", Some("10.42.2.0/24")),
            node("b", "192.168.1.2", Some("10.42.1.0/24")),
            // Not given a podCIDR yet.
            node("d", "192.168.1.4", None),
            // An IPv6-only node.
            node("e", "fd00::5", Some("10.42.4.0/24")),
            // Another agent on this machine (same address, its own bridge).
            node("f", "192.168.1.1", Some("10.42.5.0/24")),
        ];
        let mut simulated = node("g", "10.128.0.7", Some("10.42.6.0/24"));
        simulated.metadata.annotations = None;
        let mut host_gw = node("h", "192.168.1.8", Some("10.42.7.0/24"));
        host_gw.metadata.annotations =
            Some([(BACKEND_ANNOTATION.to_string(), "host-gw".to_string())].into());
        let all = nodes.iter().chain([&simulated, &host_gw]);
        let peers = peers(all, Backend::Vxlan, "a", &[ip("192.168.1.1")]);
        let names: Vec<&str> = peers.iter().map(|p| p.node.as_str()).collect();
        assert_eq!(names, ["b", "c"]);
        assert_eq!(peers[0].node_ip, ip("192.168.1.2"));
        assert_eq!(peers[0].pod_cidr.to_string(), "10.42.1.0/24");
    }

    #[test]
    fn host_gw_routes_each_pod_cidr_via_its_node() {
        let nodes = [
            node("b", "192.168.1.2", Some("10.42.1.0/24")),
            node("c", "192.168.1.3", Some("10.42.2.0/24")),
        ];
        let own: Cidr = "10.42.0.0/24".parse().expect("valid");
        let plan = plan(
            Backend::HostGw,
            ip("192.168.1.1"),
            own,
            &peers(&nodes, Backend::Vxlan, "a", &[]),
        );
        assert_eq!(plan.vtep, None);
        assert!(plan.neighbours.is_empty());
        assert_eq!(
            plan.routes,
            [
                Route {
                    destination: "10.42.1.0/24".parse().expect("valid"),
                    gateway: ip("192.168.1.2"),
                    via_vxlan: false
                },
                Route {
                    destination: "10.42.2.0/24".parse().expect("valid"),
                    gateway: ip("192.168.1.3"),
                    via_vxlan: false
                },
            ]
        );
    }

    #[test]
    fn vxlan_routes_via_each_peers_vtep_and_maps_it_to_the_node() {
        let nodes = [node("b", "192.168.1.2", Some("10.42.1.0/24"))];
        let own: Cidr = "10.42.0.0/24".parse().expect("valid");
        let plan = plan(
            Backend::Vxlan,
            ip("192.168.1.1"),
            own,
            &peers(&nodes, Backend::Vxlan, "a", &[]),
        );
        assert_eq!(
            plan.vtep,
            Some(Vtep {
                address: ip("10.42.0.0"),
                mac: [0x0e, 0xfe, 192, 168, 1, 1],
                local: ip("192.168.1.1"),
            })
        );
        assert_eq!(
            plan.routes,
            [Route {
                destination: "10.42.1.0/24".parse().expect("valid"),
                gateway: ip("10.42.1.0"),
                via_vxlan: true
            }]
        );
        assert_eq!(
            plan.neighbours,
            [Neighbour {
                address: ip("10.42.1.0"),
                mac: [0x0e, 0xfe, 192, 168, 1, 2],
                node_ip: ip("192.168.1.2"),
            }]
        );
        // Alone, a node makes no device.
        let alone = super::plan(Backend::Vxlan, ip("192.168.1.1"), own, &[]);
        assert_eq!(alone, Plan::default());
        // The MAC is a locally administered unicast address.
        let mac = vtep_mac(ip("192.168.1.1"));
        assert_eq!(mac[0] & 0b11, 0b10);
    }

    #[test]
    fn diff_is_both_set_differences() {
        let d = diff(&[1, 2, 3], &[2, 3, 4]);
        assert_eq!(d.add, [4]);
        assert_eq!(d.remove, [1]);
        let same = diff(&[1, 2], &[2, 1]);
        assert!(same.add.is_empty() && same.remove.is_empty());
    }
}
