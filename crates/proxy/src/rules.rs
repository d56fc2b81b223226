//! The ruleset, as kube-proxy's nftables mode lays it out, in table `ip ferry-proxy`:
//!
//! - base chains on the nat hooks send every packet through `services`, whose two lookups are
//!   verdict maps — `service-ips` (cluster and external IP . protocol . port) and
//!   `service-nodeports` (protocol . port, for this machine's addresses) — so the cost of a
//!   packet does not grow with the number of Services;
//! - most Service ports are map elements only, no chain of their own: `service-ips` sends a
//!   port with N endpoints to `pick-N`, which picks a slot at random (`numgen random mod N`),
//!   and `slot-i` DNATs to the endpoint that the maps `slot-i-addresses` / `slot-i-ports` hold
//!   for the destination. Node ports go the same way through `nodeport-pick-N` (which marks for
//!   masquerade) and maps keyed by protocol . port; external IPs through `external-pick-N`.
//!   A change to a Service is then a few element updates, and nft — which lists a table's
//!   chains before each transaction — works on a table whose chains do not grow with the
//!   number of Services. Hairpin traffic is found in `nat-postrouting` by the set
//!   `endpoint-pairs`;
//! - Service ports that need per-endpoint state keep kube-proxy's chains: a `service-…` chain
//!   per port that picks an endpoint at random or the one a client stuck to
//!   (`sessionAffinity: ClientIP`, a timed set per endpoint), an `endpoint-…` chain per endpoint
//!   that DNATs to it (and marks hairpin traffic), and for `externalTrafficPolicy: Local` an
//!   `external-…` chain that keeps outside traffic on this node's endpoints with the client's
//!   address;
//! - filter chains reject new connections to a Service port without endpoints at once (map
//!   `no-endpoint-services`, `no-endpoint-nodeports`), and to cluster IPs on ports no Service
//!   has;
//! - `nat-postrouting` masquerades what was marked.
//!
//! [`fixed`] is the part that never changes; [`desired`] the per-Service part, as a
//! [`Ruleset`] that [`crate::sync`] compares with what was applied.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::model::{Endpoint, ServicePort, ServicePortName};
use crate::nft::{self, Command, Data, Hook, Key, Rule, SetDecl};

/// The pod and service ranges the rules refer to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// The cluster's pod CIDR: traffic from outside it is masqueraded.
    pub cluster_cidr: (Ipv4Addr, u8),
    /// The service CIDR: traffic to an address in it that no Service has is dropped.
    pub service_cidr: (Ipv4Addr, u8),
}

const SERVICES: &str = "services";
const MASQUERADING: &str = "masquerading";
const MARK_FOR_MASQUERADE: &str = "mark-for-masquerade";
const SERVICE_ENDPOINTS_CHECK: &str = "service-endpoints-check";
const NODEPORT_ENDPOINTS_CHECK: &str = "nodeport-endpoints-check";
const CLUSTER_IPS_CHECK: &str = "cluster-ips-check";
const REJECT_CHAIN: &str = "reject-chain";

/// Verdict map: cluster and external IP . protocol . port → the Service's chain.
pub const SERVICE_IPS: &str = "service-ips";
/// Verdict map: protocol . node port → the Service's external chain.
pub const SERVICE_NODEPORTS: &str = "service-nodeports";
/// Verdict map: IP . protocol . port of Services without endpoints → reject.
pub const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
/// Verdict map: protocol . node port of Services without endpoints → reject.
pub const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
/// Set: every cluster IP.
pub const CLUSTER_IPS: &str = "cluster-ips";
/// Set: `address . address` for every endpoint reached through the slot maps, so that a pod
/// sent to itself (hairpin) is masqueraded.
pub const ENDPOINT_PAIRS: &str = "endpoint-pairs";

const ADDRESS_PORT: &[&str] = &["ipv4_addr", "inet_proto", "inet_service"];
const PORT: &[&str] = &["inet_proto", "inet_service"];
const ADDRESS: &[&str] = &["ipv4_addr"];
const ADDRESS_PAIR: &[&str] = &["ipv4_addr", "ipv4_addr"];
const VERDICT: Option<&str> = Some("verdict");

fn decl(name: &str, key: &'static [&'static str], data: Option<&'static str>) -> SetDecl {
    SetDecl {
        name: name.into(),
        key,
        data,
        timeout: None,
    }
}

fn declarations() -> Vec<SetDecl> {
    vec![
        decl(SERVICE_IPS, ADDRESS_PORT, VERDICT),
        decl(SERVICE_NODEPORTS, PORT, VERDICT),
        decl(NO_ENDPOINT_SERVICES, ADDRESS_PORT, VERDICT),
        decl(NO_ENDPOINT_NODEPORTS, PORT, VERDICT),
        decl(CLUSTER_IPS, ADDRESS, None),
        decl(ENDPOINT_PAIRS, ADDRESS_PAIR, None),
    ]
}

/// The chains that never change, with their hooks and rules.
fn fixed_chains(config: &Config) -> Vec<(&'static str, Option<Hook>, Vec<Rule>)> {
    let hook = |kind, hook, priority| {
        Some(Hook {
            kind,
            hook,
            priority,
        })
    };
    let new_to = |chain| vec![nft::ct_new(), nft::jump(chain)];
    let (service_net, service_len) = config.service_cidr;
    let (cluster_net, cluster_len) = config.cluster_cidr;
    vec![
        (
            "nat-prerouting",
            hook("nat", "prerouting", -100),
            vec![vec![nft::jump(SERVICES)]],
        ),
        (
            "nat-output",
            hook("nat", "output", -100),
            vec![vec![nft::jump(SERVICES)]],
        ),
        (
            "nat-postrouting",
            hook("nat", "postrouting", 100),
            vec![vec![nft::jump(MASQUERADING)]],
        ),
        (
            "filter-input",
            hook("filter", "input", -110),
            vec![
                new_to(NODEPORT_ENDPOINTS_CHECK),
                new_to(SERVICE_ENDPOINTS_CHECK),
            ],
        ),
        (
            "filter-forward",
            hook("filter", "forward", -110),
            vec![new_to(SERVICE_ENDPOINTS_CHECK), new_to(CLUSTER_IPS_CHECK)],
        ),
        (
            "filter-output",
            hook("filter", "output", -110),
            vec![new_to(SERVICE_ENDPOINTS_CHECK)],
        ),
        // After DNAT: what still goes to a cluster IP was not for a served port.
        (
            "filter-output-post-dnat",
            hook("filter", "output", -90),
            vec![new_to(CLUSTER_IPS_CHECK)],
        ),
        (
            SERVICES,
            None,
            vec![
                // From outside the pod network to a cluster IP: masqueraded, so the reply
                // comes back through this node.
                vec![
                    nft::addr_in_set("daddr", CLUSTER_IPS),
                    nft::saddr_in(cluster_net, cluster_len, true),
                    nft::jump(MARK_FOR_MASQUERADE),
                ],
                vec![nft::lookup_address_port(SERVICE_IPS)],
                vec![
                    nft::fib_local("daddr"),
                    nft::daddr_not_loopback(),
                    nft::lookup_port(SERVICE_NODEPORTS),
                ],
            ],
        ),
        (
            MASQUERADING,
            None,
            vec![
                vec![
                    nft::ct_dnat(),
                    nft::addresses_in_set(ENDPOINT_PAIRS),
                    nft::jump(MARK_FOR_MASQUERADE),
                ],
                vec![nft::unmarked(), nft::ret()],
                vec![nft::set_mark(true)],
                vec![nft::masquerade()],
            ],
        ),
        (MARK_FOR_MASQUERADE, None, vec![vec![nft::set_mark(false)]]),
        (
            SERVICE_ENDPOINTS_CHECK,
            None,
            vec![vec![nft::lookup_address_port(NO_ENDPOINT_SERVICES)]],
        ),
        (
            NODEPORT_ENDPOINTS_CHECK,
            None,
            vec![vec![
                nft::fib_local("daddr"),
                nft::daddr_not_loopback(),
                nft::lookup_port(NO_ENDPOINT_NODEPORTS),
            ]],
        ),
        (
            CLUSTER_IPS_CHECK,
            None,
            vec![
                vec![nft::addr_in_set("daddr", CLUSTER_IPS), nft::reject()],
                vec![nft::daddr_in(service_net, service_len), nft::drop()],
            ],
        ),
        (REJECT_CHAIN, None, vec![vec![nft::reject()]]),
    ]
}

/// The commands that create the fixed part: maps and sets, chains, then their rules.
pub fn fixed(config: &Config) -> (Vec<Command>, Vec<Command>) {
    let chains = fixed_chains(config);
    let mut declare: Vec<Command> = declarations().into_iter().map(Command::AddSet).collect();
    let mut rules = Vec::new();
    for (name, hook, chain_rules) in chains {
        declare.push(Command::AddChain(name.into(), hook));
        rules.extend(
            chain_rules
                .into_iter()
                .map(|r| Command::AddRule(name.into(), r)),
        );
    }
    (declare, rules)
}

/// The per-Service part of the ruleset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ruleset {
    /// Chains by name, with their rules.
    pub chains: BTreeMap<String, Vec<Rule>>,
    /// Map and set elements: (map, key) → what a map element maps the key to.
    pub elements: BTreeMap<(String, Key), Option<Data>>,
    /// Sets and maps by name (endpoint slots, session affinity). A name always stands for one
    /// declaration.
    pub sets: BTreeMap<String, SetDecl>,
}

/// What the slot maps are keyed by: the destination address . protocol . port (cluster and
/// external IPs), or the protocol . port alone (node ports).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Keyed {
    Address,
    Port,
}

impl Keyed {
    fn prefix(self) -> &'static str {
        match self {
            Keyed::Address => "",
            Keyed::Port => "nodeport-",
        }
    }
}

/// Slot `i`'s chain and its address and port maps.
fn slot_names(keyed: Keyed, i: usize) -> (String, String, String) {
    let chain = format!("{}slot-{i}", keyed.prefix());
    (
        chain.clone(),
        format!("{chain}-addresses"),
        format!("{chain}-ports"),
    )
}

impl Ruleset {
    fn element(&mut self, map: &str, key: Key, data: Option<Data>) {
        self.elements.insert((map.into(), key), data);
    }

    /// `slot-i` (or `nodeport-slot-i`) and its two maps, created on first use.
    fn slot(&mut self, keyed: Keyed, i: usize) -> String {
        let (chain, addresses, ports) = slot_names(keyed, i);
        if !self.chains.contains_key(&chain) {
            let key = match keyed {
                Keyed::Address => ADDRESS_PORT,
                Keyed::Port => PORT,
            };
            self.sets
                .insert(addresses.clone(), decl(&addresses, key, Some("ipv4_addr")));
            self.sets
                .insert(ports.clone(), decl(&ports, key, Some("inet_service")));
            let dnat = nft::dnat_from_maps(keyed == Keyed::Port, &addresses, &ports);
            self.chains.insert(chain.clone(), vec![vec![dnat]]);
        }
        chain
    }

    /// `pick-N` (or `nodeport-pick-N`, which also marks for masquerade): one of N slots.
    fn picker(&mut self, keyed: Keyed, n: usize) -> String {
        let chain = format!("{}pick-{n}", keyed.prefix());
        if !self.chains.contains_key(&chain) {
            let slots: Vec<String> = (0..n).map(|i| self.slot(keyed, i)).collect();
            let mut rules = Vec::new();
            if keyed == Keyed::Port {
                rules.push(vec![nft::jump(MARK_FOR_MASQUERADE)]);
            }
            rules.push(vec![nft::pick_one(&slots)]);
            self.chains.insert(chain.clone(), rules);
        }
        chain
    }

    /// `external-pick-N`: marks for masquerade, then `pick-N`.
    fn external_picker(&mut self, n: usize) -> String {
        let chain = format!("external-pick-{n}");
        if !self.chains.contains_key(&chain) {
            let pick = self.picker(Keyed::Address, n);
            let rules = vec![vec![nft::jump(MARK_FOR_MASQUERADE)], vec![nft::goto(&pick)]];
            self.chains.insert(chain.clone(), rules);
        }
        chain
    }

    /// The slot elements that send `key` to `endpoints`, and `map`'s element sending `key` to
    /// the picker.
    fn slotted(
        &mut self,
        map: &str,
        keyed: Keyed,
        key: Key,
        endpoints: &[&Endpoint],
        picker: String,
    ) {
        for (i, endpoint) in endpoints.iter().enumerate() {
            let (_, addresses, ports) = slot_names(keyed, i);
            self.element(&addresses, key.clone(), Some(Data::Address(endpoint.ip)));
            self.element(&ports, key.clone(), Some(Data::Port(endpoint.port)));
            self.element(ENDPOINT_PAIRS, Key::Pair(endpoint.ip, endpoint.ip), None);
        }
        self.element(map, key, Some(Data::Goto(picker)));
    }
}

/// `<prefix>-<hash>-<what>`: a name unique to `what` whatever its length (kube-proxy's
/// `servicePortChainNameBase`: 8 base32 characters of its SHA-256).
fn chain_name(prefix: &str, what: &str) -> String {
    hashed_name(prefix, what, what)
}

/// `<prefix>-<hash of hashed>-<shown>`.
fn hashed_name(prefix: &str, hashed: &str, shown: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, hashed.as_bytes());
    let hash = data_encoding::BASE32.encode(digest.as_ref());
    format!("{prefix}-{}-{shown}", &hash[..8])
}

fn endpoint_id(name: &ServicePortName, endpoint: &Endpoint) -> String {
    format!("{name}__{}/{}", endpoint.ip, endpoint.port)
}

/// The rules that pick one of `endpoints` (by the client's affinity first), or drop when there
/// is none.
fn balance(port: &ServicePort, endpoints: &[&Endpoint]) -> Vec<Rule> {
    if endpoints.is_empty() {
        return vec![vec![nft::drop()]];
    }
    let mut rules = Vec::new();
    let chains: Vec<String> = endpoints
        .iter()
        .map(|e| chain_name("endpoint", &endpoint_id(&port.name, e)))
        .collect();
    if let Some(timeout) = port.affinity_timeout {
        for (endpoint, chain) in endpoints.iter().zip(&chains) {
            let set = affinity_set(port, endpoint, timeout);
            rules.push(vec![nft::addr_in_set("saddr", &set), nft::goto(chain)]);
        }
    }
    rules.push(vec![nft::pick_one(&chains)]);
    rules
}

/// The set of clients stuck to an endpoint; its name changes with the timeout, so a changed
/// timeout is a new set.
fn affinity_set(port: &ServicePort, endpoint: &Endpoint, timeout: u32) -> String {
    let id = endpoint_id(&port.name, endpoint);
    hashed_name("affinity", &format!("{id} {timeout}"), &id)
}

/// The per-Service part for `ports`.
pub fn desired(config: &Config, ports: &[ServicePort]) -> Ruleset {
    let mut set = Ruleset::default();
    for port in ports {
        set.element(CLUSTER_IPS, Key::Address(port.cluster_ip), None);
        let protocol = port.name.protocol;
        let cluster_key = Key::AddressPort(port.cluster_ip, protocol, port.port);
        let cluster = port.usable(false);
        if cluster.is_empty() {
            // No endpoint anywhere: new connections are refused at once.
            let reject = Some(Data::Goto(REJECT_CHAIN.into()));
            set.element(NO_ENDPOINT_SERVICES, cluster_key, reject.clone());
            if let Some(node_port) = port.node_port {
                set.element(
                    NO_ENDPOINT_NODEPORTS,
                    Key::Port(protocol, node_port),
                    reject.clone(),
                );
            }
            for ip in &port.external_ips {
                let key = Key::AddressPort(*ip, protocol, port.port);
                set.element(NO_ENDPOINT_SERVICES, key, reject.clone());
            }
        } else if port.affinity_timeout.is_some() || (port.is_external() && port.external_local) {
            chained(config, port, &cluster, &mut set);
        } else {
            slotted(port, &cluster, &mut set);
        }
    }
    set
}

/// A Service port as elements of the slot maps; `cluster` are its usable endpoints.
fn slotted(port: &ServicePort, cluster: &[&Endpoint], set: &mut Ruleset) {
    let protocol = port.name.protocol;
    let internal = if port.internal_local {
        port.usable(true)
    } else {
        cluster.to_vec()
    };
    let cluster_key = Key::AddressPort(port.cluster_ip, protocol, port.port);
    if internal.is_empty() {
        // internalTrafficPolicy: Local without an endpoint on this node: dropped, as upstream.
        set.element(SERVICE_IPS, cluster_key, Some(Data::Drop));
    } else {
        let pick = set.picker(Keyed::Address, internal.len());
        set.slotted(SERVICE_IPS, Keyed::Address, cluster_key, &internal, pick);
    }
    // From outside (externalTrafficPolicy: Cluster): masqueraded, to any endpoint.
    for ip in &port.external_ips {
        let pick = set.external_picker(cluster.len());
        let key = Key::AddressPort(*ip, protocol, port.port);
        set.slotted(SERVICE_IPS, Keyed::Address, key, cluster, pick);
    }
    if let Some(node_port) = port.node_port {
        let pick = set.picker(Keyed::Port, cluster.len());
        let key = Key::Port(protocol, node_port);
        set.slotted(SERVICE_NODEPORTS, Keyed::Port, key, cluster, pick);
    }
}

/// A Service port with chains of its own (session affinity, `externalTrafficPolicy: Local`);
/// `cluster` are its usable endpoints.
fn chained(config: &Config, port: &ServicePort, cluster: &[&Endpoint], set: &mut Ruleset) {
    let (cluster_net, cluster_len) = config.cluster_cidr;
    let name = port.name.to_string();
    let protocol = port.name.protocol;
    let service_chain = chain_name("service", &name);
    let external_chain = chain_name("external", &name);
    let local = port.usable(true);
    // One chain per endpoint either policy may use.
    let mut all: Vec<&Endpoint> = cluster.iter().chain(&local).copied().collect();
    all.sort();
    all.dedup();
    for endpoint in all {
        let id = endpoint_id(&port.name, endpoint);
        let mut rules = vec![vec![
            nft::saddr(endpoint.ip),
            nft::jump(MARK_FOR_MASQUERADE),
        ]];
        if let Some(timeout) = port.affinity_timeout {
            let affinity = affinity_set(port, endpoint, timeout);
            rules.push(vec![nft::remember_client(&affinity)]);
            set.sets
                .insert(affinity.clone(), affinity_decl(&affinity, timeout));
        }
        rules.push(vec![
            nft::l4proto(protocol),
            nft::dnat(endpoint.ip, endpoint.port),
        ]);
        set.chains.insert(chain_name("endpoint", &id), rules);
    }
    let internal = if port.internal_local {
        &local[..]
    } else {
        cluster
    };
    // Traffic from outside the pod network to the cluster IP was marked in `services`.
    set.chains
        .insert(service_chain.clone(), balance(port, internal));
    let cluster_key = Key::AddressPort(port.cluster_ip, protocol, port.port);
    set.element(
        SERVICE_IPS,
        cluster_key,
        Some(Data::Goto(service_chain.clone())),
    );
    if !port.is_external() {
        return;
    }
    let rules = if port.external_local {
        // Pods and this machine may use any endpoint; others keep their address and reach
        // this node's endpoints only.
        let mut rules = vec![
            vec![
                nft::saddr_in(cluster_net, cluster_len, false),
                nft::goto(&service_chain),
            ],
            vec![nft::fib_local("saddr"), nft::jump(MARK_FOR_MASQUERADE)],
            vec![nft::fib_local("saddr"), nft::goto(&service_chain)],
        ];
        rules.extend(balance(port, &local));
        rules
    } else {
        vec![
            vec![nft::jump(MARK_FOR_MASQUERADE)],
            vec![nft::goto(&service_chain)],
        ]
    };
    set.chains.insert(external_chain.clone(), rules);
    let to_external = Some(Data::Goto(external_chain));
    if let Some(node_port) = port.node_port {
        set.element(
            SERVICE_NODEPORTS,
            Key::Port(protocol, node_port),
            to_external.clone(),
        );
    }
    for ip in &port.external_ips {
        let key = Key::AddressPort(*ip, protocol, port.port);
        set.element(SERVICE_IPS, key, to_external.clone());
    }
}

/// A session-affinity set: client addresses, each forgotten `timeout` seconds after its last
/// connection.
fn affinity_decl(name: &str, timeout: u32) -> SetDecl {
    SetDecl {
        timeout: Some(timeout),
        ..decl(name, ADDRESS, None)
    }
}

#[cfg(test)]
mod tests;
