//! Stale UDP conntrack entries, removed after a sync as kube-proxy does
//! (`pkg/proxy/conntrack/cleanup.go`): a UDP "connection" has no end, so without this a client
//! keeps sending to an endpoint that is gone, or into the reject that was there before the
//! Service had endpoints, for as long as it keeps the flow alive.
//!
//! - an endpoint no longer used by a UDP Service port: entries whose original destination is the
//!   port (cluster IP, external IPs, node port) and whose reply comes from that endpoint;
//! - a UDP Service port that had no endpoint and now has one: every entry to the port.
//!
//! [`stale`] decides from the Service ports before and after the sync; [`flush`] dumps the IPv4
//! conntrack table over netlink (`NETLINK_NETFILTER`) and deletes the matching entries.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Protocol as CtProtocol, Tuple,
};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use crate::model::ServicePort;
use crate::nft::Protocol;

/// Which UDP entries to delete: every given field must match.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Filter {
    /// The original destination address (`None`: any — node ports, on any node address).
    pub destination: Option<Ipv4Addr>,
    /// The original destination port.
    pub port: u16,
    /// The address the replies come from (`None`: any).
    pub endpoint: Option<Ipv4Addr>,
}

/// One UDP conntrack entry: its original direction and where replies come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Original source address and port.
    pub source: (Ipv4Addr, u16),
    /// Original destination address and port.
    pub destination: (Ipv4Addr, u16),
    /// The reply's source address (the endpoint, after DNAT).
    pub reply_source: Ipv4Addr,
}

impl Filter {
    /// Whether `entry` is one to delete.
    pub fn matches(&self, entry: &Entry) -> bool {
        self.destination.is_none_or(|d| d == entry.destination.0)
            && self.port == entry.destination.1
            && self.endpoint.is_none_or(|e| e == entry.reply_source)
    }
}

/// The (destination, port) pairs a Service port is reached on: its cluster IP and external IPs
/// with the port, and its node port on any address.
fn destinations(port: &ServicePort) -> Vec<(Option<Ipv4Addr>, u16)> {
    let mut out = vec![(Some(port.cluster_ip), port.port)];
    out.extend(port.external_ips.iter().map(|ip| (Some(*ip), port.port)));
    out.extend(port.node_port.map(|n| (None, n)));
    out
}

/// The endpoint addresses traffic to `port` may go to on this node.
fn used(port: &ServicePort) -> BTreeSet<Ipv4Addr> {
    port.usable(false)
        .into_iter()
        .chain(port.usable(true))
        .map(|e| e.ip)
        .collect()
}

/// The entries made stale by going from `previous` to `next` (both as [`crate::model`] builds
/// them).
pub fn stale<'a>(previous: &'a [ServicePort], next: &'a [ServicePort]) -> Vec<Filter> {
    let udp = |ports: &'a [ServicePort]| -> BTreeMap<_, &'a ServicePort> {
        ports
            .iter()
            .filter(|p| p.name.protocol == Protocol::Udp)
            .map(|p| (&p.name, p))
            .collect()
    };
    let (before, after) = (udp(previous), udp(next));
    let mut filters = BTreeSet::new();
    for (name, old) in &before {
        let gone = used(old);
        let kept = after.get(name).map(|p| used(p)).unwrap_or_default();
        for endpoint in gone.difference(&kept) {
            for (destination, port) in destinations(old) {
                filters.insert(Filter {
                    destination,
                    port,
                    endpoint: Some(*endpoint),
                });
            }
        }
    }
    for (name, new) in &after {
        let had = before.get(name).is_some_and(|old| !used(old).is_empty());
        if !had && !used(new).is_empty() {
            for (destination, port) in destinations(new) {
                filters.insert(Filter {
                    destination,
                    port,
                    endpoint: None,
                });
            }
        }
    }
    filters.into_iter().collect()
}

/// Why conntrack entries could not be listed or deleted.
#[derive(Debug, thiserror::Error)]
pub enum ConntrackError {
    /// The netlink socket failed.
    #[error("conntrack netlink socket: {0}")]
    Socket(#[from] std::io::Error),
    /// The kernel's answer could not be read.
    #[error("reading a conntrack netlink message: {0}")]
    Decode(#[from] netlink_packet_core::DecodeError),
    /// The kernel refused the request.
    #[error("conntrack request refused: {0}")]
    Refused(std::io::Error),
}

fn request(message: ConntrackMessage, flags: u16, sequence: u32) -> Vec<u8> {
    let inner = NetfilterMessage::new(
        NetfilterHeader::new(NetfilterProtoFamily::IPv4, 0, 0),
        message,
    );
    let mut message = NetlinkMessage::from(inner);
    message.header.flags = flags;
    message.header.sequence_number = sequence;
    message.finalize();
    let mut buffer = vec![0; message.buffer_len()];
    message.serialize(&mut buffer);
    buffer
}

/// The messages of one receive, in order.
fn messages(data: &[u8]) -> Result<Vec<NetlinkMessage<NetfilterMessage>>, ConntrackError> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < data.len() {
        let message = NetlinkMessage::<NetfilterMessage>::deserialize(&data[offset..])?;
        let length = message.header.length as usize;
        if length == 0 {
            break;
        }
        offset += (length + 3) & !3;
        out.push(message);
    }
    Ok(out)
}

fn v4(address: &IpAddr) -> Option<Ipv4Addr> {
    match address {
        IpAddr::V4(a) => Some(*a),
        IpAddr::V6(_) => None,
    }
}

/// (source, destination, source port, destination port, UDP?) of a tuple.
fn tuple(tuples: &[Tuple]) -> Option<(Ipv4Addr, Ipv4Addr, u16, u16, bool)> {
    let (mut source, mut destination, mut sport, mut dport, mut udp) =
        (None, None, None, None, false);
    for t in tuples {
        match t {
            Tuple::Ip(ips) => {
                for ip in ips {
                    match ip {
                        IPTuple::SourceAddress(a) => source = v4(a),
                        IPTuple::DestinationAddress(a) => destination = v4(a),
                        _ => {}
                    }
                }
            }
            Tuple::Proto(protos) => {
                for p in protos {
                    match p {
                        ProtoTuple::Protocol(CtProtocol::Udp) => udp = true,
                        ProtoTuple::SourcePort(p) => sport = Some(*p),
                        ProtoTuple::DestinationPort(p) => dport = Some(*p),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some((source?, destination?, sport?, dport?, udp))
}

/// The UDP entry an entry's attributes describe, with its original tuple as sent back to
/// delete it.
fn entry(attributes: &[ConntrackAttribute]) -> Option<(Entry, Vec<Tuple>)> {
    let mut original = None;
    let mut reply = None;
    for attribute in attributes {
        match attribute {
            ConntrackAttribute::CtaTupleOrig(t) => original = Some(t.clone()),
            ConntrackAttribute::CtaTupleReply(t) => reply = Some(t.clone()),
            _ => {}
        }
    }
    let original = original?;
    let (source, destination, sport, dport, udp) = tuple(&original)?;
    let (reply_source, ..) = tuple(&reply?)?;
    udp.then_some((
        Entry {
            source: (source, sport),
            destination: (destination, dport),
            reply_source,
        },
        original,
    ))
}

fn connect() -> Result<Socket, ConntrackError> {
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    Ok(socket)
}

/// Every IPv4 UDP entry, with its original tuple.
fn dump(socket: &Socket) -> Result<Vec<(Entry, Vec<Tuple>)>, ConntrackError> {
    let get = request(
        ConntrackMessage::Get(Vec::new()),
        NLM_F_REQUEST | NLM_F_DUMP,
        1,
    );
    socket.send(&get, 0)?;
    let mut entries = Vec::new();
    loop {
        let (data, _) = socket.recv_from_full()?;
        for message in messages(&data)? {
            match message.payload {
                NetlinkPayload::Done(_) => return Ok(entries),
                NetlinkPayload::Error(error) if error.code.is_some() => {
                    return Err(ConntrackError::Refused(error.to_io()))
                }
                NetlinkPayload::InnerMessage(NetfilterMessage {
                    inner: NetfilterMessageInner::Conntrack(ConntrackMessage::New(attributes)),
                    ..
                }) => entries.extend(entry(&attributes)),
                _ => {}
            }
        }
    }
}

/// The IPv4 UDP entries of this thread's network namespace.
pub fn udp_entries() -> Result<Vec<Entry>, ConntrackError> {
    Ok(dump(&connect()?)?.into_iter().map(|(e, _)| e).collect())
}

/// Deletes the UDP entries any of `filters` matches, in this thread's network namespace;
/// returns how many went. Entries that went meanwhile are not an error.
pub fn flush(filters: &[Filter]) -> Result<usize, ConntrackError> {
    if filters.is_empty() {
        return Ok(0);
    }
    let socket = connect()?;
    let doomed = dump(&socket)?
        .into_iter()
        .filter(|(entry, _)| filters.iter().any(|f| f.matches(entry)));
    let mut deleted = 0;
    for (sequence, (_, original)) in (2..).zip(doomed) {
        let delete = ConntrackMessage::Delete(vec![ConntrackAttribute::CtaTupleOrig(original)]);
        socket.send(&request(delete, NLM_F_REQUEST | NLM_F_ACK, sequence), 0)?;
        let (data, _) = socket.recv_from_full()?;
        for message in messages(&data)? {
            if let NetlinkPayload::Error(error) = message.payload {
                match error.code {
                    None => deleted += 1,
                    Some(_) if error.to_io().kind() == std::io::ErrorKind::NotFound => {}
                    Some(_) => return Err(ConntrackError::Refused(error.to_io())),
                }
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests;
