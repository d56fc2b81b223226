//! `ferry-dns`: the cluster DNS, answering the Kubernetes DNS specification's names from the
//! Services and EndpointSlices it watches ([`zone`]) and forwarding every other name to the
//! host's resolvers. It runs inside `ferry server` (docs/ARCHITECTURE.md says why) on UDP and
//! TCP, behind the `kube-dns` Service's cluster IP.

mod udp;
pub mod zone;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ferry_client::watch::reflect;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Message, Metadata, ResponseCode};
use hickory_server::proto::rr::Record;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo, Server};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::Api;
use parking_lot::RwLock;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::Notify;

use crate::zone::{Answer, Zone};

/// How long a forwarded question waits for each upstream resolver.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);

/// Settings of the DNS server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen (UDP and TCP); port 0 picks one.
    pub listen: SocketAddr,
    /// The cluster domain (`cluster.local`).
    pub domain: String,
    /// Where names outside the cluster go (the host's `/etc/resolv.conf` nameservers).
    pub upstreams: Vec<SocketAddr>,
}

/// The nameservers of a `resolv.conf`, on port 53, without `skip` (the cluster DNS itself).
pub fn upstreams_from_resolv_conf(text: &str, skip: &[std::net::IpAddr]) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().parse::<std::net::IpAddr>().ok())
        .filter(|ip| !skip.contains(ip))
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[error("binding the cluster DNS to {address}: {source}")]
pub struct BindError {
    /// The address.
    pub address: SocketAddr,
    /// The error.
    #[source]
    pub source: std::io::Error,
}

/// The zone of the moment, and the UDP answers already encoded from it (dropped with it).
struct Snapshot {
    zone: Zone,
    encoded: udp::Encoded,
}

impl Snapshot {
    fn new(zone: Zone) -> Arc<Snapshot> {
        Arc::new(Snapshot {
            zone,
            encoded: udp::Encoded::default(),
        })
    }
}

/// The request handler: the zone of the moment, and the upstreams.
#[derive(Clone)]
struct ClusterDns {
    current: Arc<RwLock<Arc<Snapshot>>>,
    upstreams: Arc<[SocketAddr]>,
}

impl ClusterDns {
    /// Asks the upstreams in turn; the first answer wins.
    async fn forward(&self, raw: &[u8]) -> Option<Message> {
        for upstream in self.upstreams.iter() {
            let bind: SocketAddr = if upstream.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                ([0u16; 8], 0).into()
            };
            let Ok(socket) = UdpSocket::bind(bind).await else {
                continue;
            };
            if socket.send_to(raw, upstream).await.is_err() {
                continue;
            }
            let mut buffer = vec![0u8; 4096];
            if let Ok(Ok(n)) = tokio::time::timeout(FORWARD_TIMEOUT, socket.recv(&mut buffer)).await
            {
                if let Ok(message) = Message::from_vec(&buffer[..n]) {
                    return Some(message);
                }
            }
        }
        None
    }
}

/// The header of the response to `request`: its id, opcode and flags, recursion available.
fn response_metadata(request: &Request) -> Metadata {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.recursion_available = true;
    metadata
}

type Records<'a> = std::slice::Iter<'a, Record>;

/// The authoritative response to `request` for a name of the zone: `answer`'s records, or
/// NODATA / NXDOMAIN with the zone's `soa` ([`Answer::NotOurs`] is never given).
fn zone_response<'q>(
    request: &'q Request,
    mut metadata: Metadata,
    answer: &'q Answer,
    soa: &'q [Record],
) -> MessageResponse<'q, 'q, Records<'q>, Records<'q>, Records<'q>, Records<'q>> {
    metadata.authoritative = true;
    let none: &[Record] = &[];
    let (records, negative) = match answer {
        Answer::Records(records) => (records.as_slice(), none),
        Answer::NxDomain => {
            metadata.response_code = ResponseCode::NXDomain;
            (none, soa)
        }
        Answer::NoData | Answer::NotOurs => (none, soa),
    };
    MessageResponseBuilder::from_message_request(request).build(
        metadata,
        records.iter(),
        none.iter(),
        negative.iter(),
        none.iter(),
    )
}

#[async_trait::async_trait]
impl RequestHandler for ClusterDns {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let builder = MessageResponseBuilder::from_message_request(request);
        let mut metadata = response_metadata(request);
        let Ok(info) = request.request_info() else {
            metadata.response_code = ResponseCode::FormErr;
            return send(&mut response_handle, builder.build_no_records(metadata)).await;
        };
        let snapshot = self.current.read().clone();
        let answer = snapshot
            .zone
            .answer(&info.query.name().to_string(), info.query.query_type());
        if answer != Answer::NotOurs {
            let soa = [snapshot.zone.soa()];
            let response = zone_response(request, metadata, &answer, &soa);
            return send(&mut response_handle, response).await;
        }
        let none: [Record; 0] = [];
        match self.forward(request.as_slice()).await {
            Some(answer) => {
                metadata.response_code = answer.metadata.response_code;
                let response = builder.build(
                    metadata,
                    answer.answers.iter(),
                    answer.authorities.iter(),
                    none.iter(),
                    none.iter(),
                );
                send(&mut response_handle, response).await
            }
            None => {
                metadata.response_code = ResponseCode::NXDomain;
                send(&mut response_handle, builder.build_no_records(metadata)).await
            }
        }
    }
}

async fn send<'a, R: ResponseHandler>(
    handle: &mut R,
    response: hickory_server::zone_handler::MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
) -> ResponseInfo {
    let metadata = *response.metadata();
    match handle.send_response(response).await {
        Ok(info) => info,
        Err(error) => {
            tracing::debug!(%error, "sending a DNS response");
            let mut failed = metadata;
            failed.response_code = ResponseCode::ServFail;
            hickory_server::proto::op::Header {
                metadata: failed,
                counts: Default::default(),
            }
            .into()
        }
    }
}

/// The sockets, bound: [`Bound::address`] tells the port when 0 was asked.
pub struct Bound {
    udp: Vec<std::net::UdpSocket>,
    tcp: TcpListener,
    options: Options,
}

/// UDP sockets on one address: the kernel spreads queries over them (`SO_REUSEPORT`), each
/// read by a thread of its own ([`udp::serve`]).
const UDP_SOCKETS: usize = 2;

/// A blocking UDP socket on `address` that others may share, waking every [`udp::STOP_CHECK`].
fn shared_udp(address: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    socket.set_reuse_port(true)?;
    socket.bind(&address.into())?;
    socket.set_read_timeout(Some(udp::STOP_CHECK))?;
    Ok(socket.into())
}

/// Binds UDP and TCP on `options.listen` (the same port for both).
pub async fn bind(options: Options) -> Result<Bound, BindError> {
    // Port 0: the kernel picks a free UDP port, which TCP may hold elsewhere; pick again.
    let attempts = if options.listen.port() == 0 { 20 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        match bind_once(options.listen).await {
            Ok((udp, tcp)) => return Ok(Bound { udp, tcp, options }),
            Err(e) if e.source.kind() == std::io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| BindError {
        address: options.listen,
        source: std::io::ErrorKind::AddrInUse.into(),
    }))
}

/// The UDP sockets and the TCP listener on one port.
async fn bind_once(
    listen: SocketAddr,
) -> Result<(Vec<std::net::UdpSocket>, TcpListener), BindError> {
    let error = |address, source| BindError { address, source };
    let first = shared_udp(listen).map_err(|e| error(listen, e))?;
    let address = first.local_addr().map_err(|e| error(listen, e))?;
    let mut udp = vec![first];
    for _ in 1..UDP_SOCKETS {
        udp.push(shared_udp(address).map_err(|e| error(address, e))?);
    }
    let tcp = TcpListener::bind(address)
        .await
        .map_err(|e| error(address, e))?;
    Ok((udp, tcp))
}

impl Bound {
    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.udp
            .first()
            .and_then(|s| s.local_addr().ok())
            .unwrap_or(self.options.listen)
    }

    /// Answers until `shutdown` resolves, from Services and EndpointSlices watched through
    /// `client`.
    pub async fn serve(
        self,
        client: kube::Client,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let domain = self.options.domain.clone();
        let zone = Arc::new(RwLock::new(Snapshot::new(Zone::build(&domain, &[], &[]))));
        let changed = Arc::new(Notify::new());
        let (services, services_writer) = reflector::store();
        let (slices, slices_writer) = reflector::store();
        let watched = zone.clone();
        let until = async move {
            let watches = async {
                tokio::join!(
                    reflect(
                        Api::<Service>::all(client.clone()),
                        services_writer,
                        changed.clone(),
                        "dns"
                    ),
                    reflect(
                        Api::<EndpointSlice>::all(client),
                        slices_writer,
                        changed.clone(),
                        "dns"
                    ),
                    rebuild(&watched, &domain, &services, &slices, &changed),
                );
            };
            tokio::select! {
                () = watches => {}
                () = shutdown => {}
            }
        };
        self.answer(zone, until).await;
    }

    /// Answers from a fixed `zone` until `until` resolves (benchmarks, tests).
    pub async fn serve_zone(self, zone: Zone, until: impl std::future::Future<Output = ()>) {
        self.answer(Arc::new(RwLock::new(Snapshot::new(zone))), until)
            .await;
    }

    /// Answers from `current` until `until` resolves: UDP in loops of ours ([`udp`]), one
    /// thread per socket; TCP through hickory-server.
    async fn answer(
        self,
        current: Arc<RwLock<Arc<Snapshot>>>,
        until: impl std::future::Future<Output = ()>,
    ) {
        let dns = ClusterDns {
            current,
            upstreams: self.options.upstreams.into(),
        };
        let mut server = Server::new(dns.clone());
        server.register_listener(self.tcp, Duration::from_secs(5), 4096);
        let dns = Arc::new(dns);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let runtime = tokio::runtime::Handle::current();
        let mut loops = Vec::new();
        for socket in self.udp {
            let (dns, runtime, stop) = (dns.clone(), runtime.clone(), stop.clone());
            match std::thread::Builder::new()
                .name("dns-udp".into())
                .spawn(move || udp::serve(socket, dns, runtime, stop))
            {
                Ok(thread) => loops.push(thread),
                Err(error) => tracing::error!(%error, "starting a cluster DNS thread"),
            }
        }
        until.await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = tokio::task::spawn_blocking(move || {
            for thread in loops {
                let _ = thread.join();
            }
        })
        .await;
        let _ = server.shutdown_gracefully().await;
    }
}

/// Rebuilds the zone after changes (changes that come together make one rebuild).
async fn rebuild(
    zone: &RwLock<Arc<Snapshot>>,
    domain: &str,
    services: &Store<Service>,
    slices: &Store<EndpointSlice>,
    changed: &Notify,
) {
    loop {
        changed.notified().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        let next = Zone::build(domain, &services.state(), &slices.state());
        *zone.write() = Snapshot::new(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_server::proto::op::{MessageType, OpCode, Query};
    use hickory_server::proto::rr::{Name, RecordType};

    /// One question over UDP to `server`.
    async fn ask(server: SocketAddr, name: &str, kind: RecordType) -> Message {
        let mut query = Message::new(7, MessageType::Query, OpCode::Query);
        query.add_query(Query::query(Name::from_ascii(name).expect("name"), kind));
        exchange(server, &query).await
    }

    /// `query` over UDP to `server`, and its answer.
    async fn exchange(server: SocketAddr, query: &Message) -> Message {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        socket
            .send_to(&query.to_vec().expect("encode"), server)
            .await
            .expect("send");
        let mut buffer = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buffer))
            .await
            .expect("an answer in time")
            .expect("recv");
        Message::from_vec(&buffer[..n]).expect("decode")
    }

    #[tokio::test]
    async fn answers_over_udp_with_nxdomain_nodata_and_forwarding() {
        let services = [Arc::new(
            serde_json::from_value::<Service>(serde_json::json!({
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"clusterIP": "10.43.0.20", "ports": [{"port": 80}]}}))
            .expect("service"),
        )];
        let zone = Arc::new(RwLock::new(Snapshot::new(Zone::build(
            "cluster.local",
            &services,
            &[],
        ))));
        // The "upstream" is a second server of ours answering for its own zone.
        let upstream_zone = Arc::new(RwLock::new(Snapshot::new(Zone::build(
            "example.test",
            &[],
            &[],
        ))));
        let options = |upstreams| Options {
            listen: "127.0.0.1:0".parse().expect("addr"),
            domain: "cluster.local".into(),
            upstreams,
        };
        let upstream = bind(options(vec![])).await.expect("bind upstream");
        let upstream_address = upstream.address();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (stop_upstream, upstream_stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(upstream.answer(upstream_zone, async {
            let _ = upstream_stopped.await;
        }));
        let bound = bind(options(vec![upstream_address])).await.expect("bind");
        let address = bound.address();
        tokio::spawn(bound.answer(zone, async {
            let _ = stopped.await;
        }));
        let answer = ask(address, "web.default.svc.cluster.local.", RecordType::A).await;
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        assert!(answer.metadata.authoritative);
        assert_eq!(answer.answers.len(), 1);
        assert_eq!(answer.answers[0].data.to_string(), "10.43.0.20");
        assert_eq!(answer.answers[0].ttl, zone::TTL);
        let nodata = ask(address, "web.default.svc.cluster.local.", RecordType::AAAA).await;
        assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
        assert!(nodata.answers.is_empty());
        assert_eq!(nodata.authorities.len(), 1, "the SOA");
        let missing = ask(address, "nope.default.svc.cluster.local.", RecordType::A).await;
        assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
        // Outside the cluster: forwarded, and the upstream's answer relayed.
        let forwarded = ask(address, "dns-version.example.test.", RecordType::TXT).await;
        assert_eq!(forwarded.metadata.response_code, ResponseCode::NoError);
        assert_eq!(forwarded.answers[0].data.to_string(), zone::SCHEMA_VERSION);
        // With EDNS the question goes through the handler, as names outside the cluster do.
        let mut edns = Message::new(8, MessageType::Query, OpCode::Query);
        edns.add_query(Query::query(
            Name::from_ascii("web.default.svc.cluster.local.").expect("name"),
            RecordType::A,
        ));
        edns.edns = Some(hickory_server::proto::op::Edns::new());
        let answer = exchange(address, &edns).await;
        assert_eq!(answer.metadata.id, 8);
        assert_eq!(answer.answers[0].data.to_string(), "10.43.0.20");
        let _ = stop.send(());
        let _ = stop_upstream.send(());
    }

    #[test]
    fn upstreams_are_the_hosts_nameservers_but_ours() {
        let conf = "search example.com\nnameserver 192.0.2.53\nnameserver 10.43.0.10\n# nameserver 1.1.1.1\nnameserver fd00::53\n";
        let ours = ["10.43.0.10".parse().expect("ip")];
        assert_eq!(
            upstreams_from_resolv_conf(conf, &ours),
            vec![
                "192.0.2.53:53".parse::<SocketAddr>().expect("addr"),
                "[fd00::53]:53".parse().expect("addr")
            ]
        );
    }
}
