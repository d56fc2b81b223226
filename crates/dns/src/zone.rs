//! The cluster's names, as the Kubernetes DNS specification (kubernetes/dns
//! `docs/specification.md`, schema 1.1.0) defines them, built from Services and EndpointSlices:
//!
//! - a Service with a cluster IP: `A <svc>.<ns>.svc.<zone>` → the IP, `SRV
//!   _<port>._<proto>.<svc>.<ns>.svc.<zone>` per named port, and the IP's `PTR`;
//! - a headless Service: `A <svc>.<ns>.svc.<zone>` → every ready endpoint, `A
//!   <hostname>.<svc>.<ns>.svc.<zone>` per endpoint (its `hostname`, or its address with dashes),
//!   `SRV` per named port and endpoint, and each address's `PTR`;
//! - an ExternalName Service: `CNAME <svc>.<ns>.svc.<zone>` → its external name;
//! - any pod address: `A a-b-c-d.<ns>.pod.<zone>`;
//! - `TXT dns-version.<zone>` → the schema version.
//!
//! A name that exists without records of the asked type (an AAAA question, or a name above
//! others such as `<ns>.svc.<zone>`) is NODATA; any other name in the zone is NXDOMAIN; both
//! carry the zone's SOA. Everything has a TTL of 5 s.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use hickory_server::proto::rr::rdata::{A, CNAME, PTR, SOA, SRV, TXT};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt as _;

/// The TTL of every answer.
pub const TTL: u32 = 5;
/// The schema version `dns-version.<zone>` answers.
pub const SCHEMA_VERSION: &str = "1.1.0";

const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// What a question gets.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// These records.
    Records(Vec<Record>),
    /// The name exists, without records of that type.
    NoData,
    /// No such name in the zone.
    NxDomain,
    /// Not a name of the cluster: forwarded.
    NotOurs,
}

/// Every name of the cluster at one moment.
#[derive(Debug, Default)]
pub struct Zone {
    /// `cluster.local`, lower case, without the final dot.
    domain: String,
    /// Records by owner name (lower case, without the final dot).
    records: HashMap<String, Vec<Record>>,
    /// Every name that exists: owners of records and the names above them in the zone.
    names: HashSet<String>,
}

fn name(text: &str) -> Name {
    Name::from_ascii(format!("{text}.")).unwrap_or_else(|_| Name::root())
}

fn reverse(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("{d}.{c}.{b}.{a}.in-addr.arpa")
}

fn dashed(ip: Ipv4Addr) -> String {
    ip.to_string().replace('.', "-")
}

impl Zone {
    /// The zone of `domain` for `services` and their `slices`.
    pub fn build(domain: &str, services: &[Arc<Service>], slices: &[Arc<EndpointSlice>]) -> Zone {
        let mut zone = Zone {
            domain: domain.trim_end_matches('.').to_lowercase(),
            ..Zone::default()
        };
        let version = format!("dns-version.{}", zone.domain);
        zone.add(&version, RData::TXT(TXT::new(vec![SCHEMA_VERSION.into()])));
        for sub in ["svc", "pod"] {
            let sub = format!("{sub}.{}", zone.domain);
            zone.exists(&sub);
        }
        let mut slices_of: HashMap<(String, String), Vec<&EndpointSlice>> = HashMap::new();
        for slice in slices {
            if let Some(service) = slice.labels().get(SERVICE_NAME_LABEL) {
                slices_of
                    .entry((slice.namespace().unwrap_or_default(), service.clone()))
                    .or_default()
                    .push(slice);
            }
        }
        for service in services {
            let namespace = service.namespace().unwrap_or_default();
            let key = (namespace, service.name_any());
            let slices = slices_of.get(&key).map(Vec::as_slice).unwrap_or_default();
            zone.add_service(service, &key.0, &key.1, slices);
        }
        zone
    }

    fn add_service(
        &mut self,
        service: &Service,
        namespace: &str,
        svc: &str,
        slices: &[&EndpointSlice],
    ) {
        let Some(spec) = service.spec.as_ref() else {
            return;
        };
        let base = format!("{svc}.{namespace}.svc.{}", self.domain);
        if spec.type_.as_deref() == Some("ExternalName") {
            if let Some(target) = spec.external_name.as_deref().filter(|t| !t.is_empty()) {
                let target = target.trim_end_matches('.');
                self.add(&base, RData::CNAME(CNAME(name(target))));
            }
            return;
        }
        self.exists(&base);
        let cluster_ip = spec.cluster_ip.as_deref().unwrap_or("");
        if let Ok(ip) = cluster_ip.parse::<Ipv4Addr>() {
            self.add(&base, RData::A(A(ip)));
            self.add(&reverse(ip), RData::PTR(PTR(name(&base))));
            for port in spec.ports.iter().flatten() {
                let Some(port_name) = port.name.as_deref().filter(|n| !n.is_empty()) else {
                    continue;
                };
                let protocol = port.protocol.as_deref().unwrap_or("TCP").to_lowercase();
                let srv = format!("_{port_name}._{protocol}.{base}");
                let number = u16::try_from(port.port).unwrap_or_default();
                self.add(&srv, RData::SRV(SRV::new(0, 100, number, name(&base))));
            }
            return;
        }
        if cluster_ip != "None" {
            return;
        }
        // Headless: the ready endpoints themselves.
        for slice in slices.iter().filter(|s| s.address_type == "IPv4") {
            for endpoint in &slice.endpoints {
                let ready = endpoint
                    .conditions
                    .as_ref()
                    .and_then(|c| c.ready)
                    .unwrap_or(true);
                if !ready {
                    continue;
                }
                for ip in endpoint
                    .addresses
                    .iter()
                    .filter_map(|a| a.parse::<Ipv4Addr>().ok())
                {
                    let host = endpoint
                        .hostname
                        .clone()
                        .filter(|h| !h.is_empty())
                        .unwrap_or_else(|| dashed(ip));
                    let host_name = format!("{host}.{base}");
                    self.add(&base, RData::A(A(ip)));
                    self.add(&host_name, RData::A(A(ip)));
                    self.add(&reverse(ip), RData::PTR(PTR(name(&host_name))));
                    for port in slice.ports.iter().flatten() {
                        let Some(port_name) = port.name.as_deref().filter(|n| !n.is_empty()) else {
                            continue;
                        };
                        let protocol = port.protocol.as_deref().unwrap_or("TCP").to_lowercase();
                        let srv = format!("_{port_name}._{protocol}.{base}");
                        let number = port
                            .port
                            .and_then(|p| u16::try_from(p).ok())
                            .unwrap_or_default();
                        self.add(&srv, RData::SRV(SRV::new(0, 100, number, name(&host_name))));
                    }
                }
            }
        }
    }

    /// `owner` exists, and so does every name between it and the zone.
    fn exists(&mut self, owner: &str) {
        let mut current = owner;
        loop {
            if !self.names.insert(current.to_string()) {
                return;
            }
            if current == self.domain {
                return;
            }
            match current.split_once('.') {
                Some((_, parent)) if parent.ends_with(&self.domain) => current = parent,
                _ => return,
            }
        }
    }

    fn add(&mut self, owner: &str, data: RData) {
        self.exists(owner);
        let record = Record::from_rdata(name(owner), TTL, data);
        let records = self.records.entry(owner.to_string()).or_default();
        if !records.contains(&record) {
            records.push(record);
        }
    }

    /// Whether `query` (lower case, without the final dot) is under the zone or a reverse name
    /// it holds.
    fn is_ours(&self, query: &str) -> bool {
        query == self.domain
            || query.ends_with(&format!(".{}", self.domain))
            || self.records.contains_key(query)
    }

    /// The zone's SOA (for negative answers and SOA questions).
    pub fn soa(&self) -> Record {
        let zone = name(&self.domain);
        let soa = SOA::new(
            name(&format!("ns.dns.{}", self.domain)),
            name(&format!("hostmaster.{}", self.domain)),
            1,
            7200,
            1800,
            86400,
            TTL,
        );
        Record::from_rdata(zone, TTL, RData::SOA(soa))
    }

    /// The answer to a question for `query` (any case, with or without the final dot).
    pub fn answer(&self, query: &str, kind: RecordType) -> Answer {
        let query = query.trim_end_matches('.').to_lowercase();
        if !self.is_ours(&query) {
            return Answer::NotOurs;
        }
        if query == self.domain && kind == RecordType::SOA {
            return Answer::Records(vec![self.soa()]);
        }
        if let Some(ip) = self.pod_address(&query) {
            return match kind {
                RecordType::A | RecordType::ANY => {
                    Answer::Records(vec![Record::from_rdata(name(&query), TTL, RData::A(A(ip)))])
                }
                _ => Answer::NoData,
            };
        }
        let Some(records) = self.records.get(&query) else {
            return if self.names.contains(&query) {
                Answer::NoData
            } else {
                Answer::NxDomain
            };
        };
        let matching: Vec<Record> = records
            .iter()
            .filter(|r| kind == RecordType::ANY || r.record_type() == kind)
            .cloned()
            .collect();
        if !matching.is_empty() {
            return Answer::Records(matching);
        }
        // A CNAME answers every type.
        let aliases: Vec<Record> = records
            .iter()
            .filter(|r| r.record_type() == RecordType::CNAME)
            .cloned()
            .collect();
        if aliases.is_empty() {
            Answer::NoData
        } else {
            Answer::Records(aliases)
        }
    }

    /// `a-b-c-d.<ns>.pod.<zone>` → `a.b.c.d`.
    fn pod_address(&self, query: &str) -> Option<Ipv4Addr> {
        let rest = query.strip_suffix(&format!(".pod.{}", self.domain))?;
        let (host, namespace) = rest.split_once('.')?;
        if namespace.is_empty() || namespace.contains('.') {
            return None;
        }
        host.replace('-', ".").parse().ok()
    }
}

#[cfg(test)]
mod tests;
