//! The ruleset, as kube-proxy's nftables mode lays it out, in table `ip ferry-proxy`:
//!
//! - base chains on the nat hooks send every packet through `services`, whose two lookups are
//!   verdict maps — `service-ips` (cluster and external IP . protocol . port) and
//!   `service-nodeports` (protocol . port, for this machine's addresses) — so the cost of a
//!   packet does not grow with the number of Services;
//! - a `service-…` chain per Service port marks traffic from outside the pod network for
//!   masquerade and picks an endpoint at random (`numgen random mod N`), or the one a client
//!   stuck to (`sessionAffinity: ClientIP`, a timed set per endpoint);
//! - an `endpoint-…` chain per endpoint DNATs to it (and marks hairpin traffic);
//! - an `external-…` chain per port reached from outside (NodePort, external and load-balancer
//!   IPs) masquerades it, or with `externalTrafficPolicy: Local` keeps it on this node's
//!   endpoints with the client's address;
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
use crate::nft::{self, Command, Hook, Key, Rule, SetDecl};

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

const ADDRESS_PORT: &[&str] = &["ipv4_addr", "inet_proto", "inet_service"];
const PORT: &[&str] = &["inet_proto", "inet_service"];
const ADDRESS: &[&str] = &["ipv4_addr"];

fn declarations() -> Vec<SetDecl> {
    let decl = |name: &str, key, verdicts| SetDecl {
        name: name.into(),
        key,
        verdicts,
        timeout: None,
    };
    vec![
        decl(SERVICE_IPS, ADDRESS_PORT, true),
        decl(SERVICE_NODEPORTS, PORT, true),
        decl(NO_ENDPOINT_SERVICES, ADDRESS_PORT, true),
        decl(NO_ENDPOINT_NODEPORTS, PORT, true),
        decl(CLUSTER_IPS, ADDRESS, false),
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
    /// Map and set elements: (map, key) → the chain a map element goes to.
    pub elements: BTreeMap<(&'static str, Key), Option<String>>,
    /// Session-affinity sets by name, with their timeouts.
    pub affinity_sets: BTreeMap<String, u32>,
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
    let (cluster_net, cluster_len) = config.cluster_cidr;
    for port in ports {
        let name = port.name.to_string();
        let protocol = port.name.protocol;
        let service_chain = chain_name("service", &name);
        let external_chain = chain_name("external", &name);
        set.elements
            .insert((CLUSTER_IPS, Key::Address(port.cluster_ip)), None);
        let cluster = port.usable(false);
        let local = port.usable(true);
        let cluster_key = Key::AddressPort(port.cluster_ip, protocol, port.port);
        let external_keys: Vec<(&'static str, Key)> = port
            .node_port
            .map(|n| (SERVICE_NODEPORTS, Key::Port(protocol, n)))
            .into_iter()
            .chain(
                port.external_ips
                    .iter()
                    .map(|ip| (SERVICE_IPS, Key::AddressPort(*ip, protocol, port.port))),
            )
            .collect();
        if cluster.is_empty() {
            // No endpoint anywhere: new connections are refused at once.
            let reject = Some(REJECT_CHAIN.to_string());
            set.elements
                .insert((NO_ENDPOINT_SERVICES, cluster_key), reject.clone());
            for (map, key) in external_keys {
                let map = if map == SERVICE_NODEPORTS {
                    NO_ENDPOINT_NODEPORTS
                } else {
                    NO_ENDPOINT_SERVICES
                };
                set.elements.insert((map, key), reject.clone());
            }
            continue;
        }
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
                set.affinity_sets.insert(affinity, timeout);
            }
            rules.push(vec![
                nft::l4proto(protocol),
                nft::dnat(endpoint.ip, endpoint.port),
            ]);
            set.chains.insert(chain_name("endpoint", &id), rules);
        }
        let internal = if port.internal_local {
            &local
        } else {
            &cluster
        };
        let mut rules = vec![vec![
            nft::daddr(port.cluster_ip),
            nft::dport(protocol, port.port),
            nft::saddr_in(cluster_net, cluster_len, true),
            nft::jump(MARK_FOR_MASQUERADE),
        ]];
        rules.extend(balance(port, internal));
        set.chains.insert(service_chain.clone(), rules);
        set.elements
            .insert((SERVICE_IPS, cluster_key), Some(service_chain.clone()));
        if port.is_external() {
            let rules = if port.external_local {
                // Pods and this machine may use any endpoint; others keep their address and
                // reach this node's endpoints only.
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
            for (map, key) in external_keys {
                set.elements
                    .insert((map, key), Some(external_chain.clone()));
            }
        }
    }
    set
}

#[cfg(test)]
mod tests;
