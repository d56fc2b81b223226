use super::*;
use crate::zone::Zone;
use crate::Snapshot;
use hickory_server::proto::op::{Edns, Message, Query};
use hickory_server::proto::rr::{Name, RData, RecordType};
use k8s_openapi::api::core::v1::Service;

fn service(name: &str, ip: &str) -> Arc<Service> {
    Arc::new(
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": ip, "ports": [{"port": 80}]}}))
        .expect("service"),
    )
}

fn dns(services: &[Arc<Service>]) -> ClusterDns {
    ClusterDns {
        current: Arc::new(RwLock::new(Snapshot::new(Zone::build(
            "cluster.local",
            services,
            &[],
        )))),
        upstreams: Arc::new([]),
    }
}

fn query(id: u16, name: &str, kind: RecordType, recursion_desired: bool) -> Message {
    let mut query = Message::new(id, MessageType::Query, OpCode::Query);
    query.metadata.recursion_desired = recursion_desired;
    query.add_query(Query::query(Name::from_ascii(name).expect("name"), kind));
    query
}

fn source() -> SocketAddr {
    "127.0.0.1:5353".parse().expect("addr")
}

fn ask(dns: &ClusterDns, query: &Message) -> Option<Message> {
    let packet = query.to_vec().expect("encode");
    match take(dns, &packet, source()) {
        Datagram::Answered(reply) => Some(Message::from_vec(&reply).expect("decode")),
        Datagram::ForHandler(_) | Datagram::Malformed => None,
    }
}

fn addresses(message: &Message) -> Vec<String> {
    message
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn only_plain_queries_are_answered_here() {
    let plain = query(1, "web.default.svc.cluster.local.", RecordType::A, true)
        .to_vec()
        .expect("encode");
    assert_eq!(plain_question_end(&plain), Some(plain.len()));
    // Trailing bytes, a short message, a response, another opcode.
    let mut trailing = plain.clone();
    trailing.push(0);
    assert_eq!(plain_question_end(&trailing), None);
    assert_eq!(plain_question_end(&plain[..HEADER + 3]), None);
    let mut response = plain.clone();
    response[2] |= 0x80;
    assert_eq!(plain_question_end(&response), None);
    let mut notify = plain.clone();
    notify[2] |= 4 << 3;
    assert_eq!(plain_question_end(&notify), None);
    // EDNS is an additional record.
    let mut edns = query(1, "web.default.svc.cluster.local.", RecordType::A, true);
    edns.edns = Some(Edns::new());
    assert_eq!(plain_question_end(&edns.to_vec().expect("encode")), None);
    // A compressed name (a pointer back into the header).
    let mut pointer = plain[..HEADER].to_vec();
    pointer.extend_from_slice(&[0xc0, 0x00, 0, 1, 0, 1]);
    assert_eq!(plain_question_end(&pointer), None);
    // A label running past the end.
    let mut cut = plain[..HEADER].to_vec();
    cut.extend_from_slice(&[10, b'a']);
    assert_eq!(plain_question_end(&cut), None);
}

#[test]
fn a_kept_answer_gets_the_askers_id_flags_and_case() {
    let dns = dns(&[service("web", "10.43.0.20")]);
    let first = ask(
        &dns,
        &query(7, "web.default.svc.cluster.local.", RecordType::A, true),
    )
    .expect("answered here");
    assert_eq!(first.metadata.id, 7);
    assert!(first.metadata.authoritative);
    assert!(first.metadata.recursion_desired);
    assert!(first.metadata.recursion_available);
    assert_eq!(addresses(&first), ["10.43.0.20"]);
    assert_eq!(first.answers[0].ttl, crate::zone::TTL);
    assert_eq!(dns.current.read().encoded.len(), 1);

    // The same question in other letters, another id, no recursion desired: the kept answer.
    let second = ask(
        &dns,
        &query(8, "WEB.Default.svc.cluster.LOCAL.", RecordType::A, false),
    )
    .expect("answered here");
    assert_eq!(dns.current.read().encoded.len(), 1, "one answer kept");
    assert_eq!(second.metadata.id, 8);
    assert!(!second.metadata.recursion_desired);
    assert_eq!(
        second.queries[0].name().to_ascii(),
        "WEB.Default.svc.cluster.LOCAL."
    );
    assert_eq!(addresses(&second), ["10.43.0.20"]);

    // Negative answers are kept too, with the SOA.
    let missing = ask(
        &dns,
        &query(9, "nope.default.svc.cluster.local.", RecordType::A, true),
    )
    .expect("answered here");
    assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(missing.authorities.len(), 1);
    let nodata = ask(
        &dns,
        &query(10, "web.default.svc.cluster.local.", RecordType::AAAA, true),
    )
    .expect("answered here");
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty());
    assert_eq!(dns.current.read().encoded.len(), 3);
}

#[test]
fn a_new_zone_starts_without_kept_answers() {
    let dns = dns(&[service("web", "10.43.0.20")]);
    let name = "web.default.svc.cluster.local.";
    assert_eq!(
        addresses(&ask(&dns, &query(1, name, RecordType::A, true)).expect("answered")),
        ["10.43.0.20"]
    );
    *dns.current.write() = Snapshot::new(Zone::build(
        "cluster.local",
        &[service("web", "10.43.0.21")],
        &[],
    ));
    assert_eq!(
        addresses(&ask(&dns, &query(2, name, RecordType::A, true)).expect("answered")),
        ["10.43.0.21"]
    );
}

#[test]
fn other_names_and_edns_go_to_the_handler() {
    let dns = dns(&[service("web", "10.43.0.20")]);
    assert!(ask(&dns, &query(1, "example.com.", RecordType::A, true)).is_none());
    let mut edns = query(1, "web.default.svc.cluster.local.", RecordType::A, true);
    edns.edns = Some(Edns::new());
    assert!(ask(&dns, &edns).is_none());
    assert_eq!(
        dns.current.read().encoded.len(),
        0,
        "forwarded names are not kept"
    );
}

#[test]
fn answers_kept_are_bounded() {
    let dns = dns(&[]);
    for i in 0..MAX_ENCODED + 10 {
        let name = format!("missing-{i}.default.svc.cluster.local.");
        let reply = ask(&dns, &query(1, &name, RecordType::A, true)).expect("answered");
        assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
    }
    assert_eq!(dns.current.read().encoded.len(), MAX_ENCODED);
}

#[test]
fn a_header_without_its_question_gets_formerr() {
    let mut packet = query(42, "x.", RecordType::A, true)
        .to_vec()
        .expect("encode");
    packet.truncate(HEADER);
    let reply = format_error(&packet).expect("a reply");
    let reply = Message::from_vec(&reply).expect("decode");
    assert_eq!(reply.metadata.id, 42);
    assert_eq!(reply.metadata.message_type, MessageType::Response);
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    assert!(reply.metadata.recursion_desired);
    // Too short for a header, or a response: nothing.
    assert!(format_error(&packet[..5]).is_none());
    packet[2] |= 0x80;
    assert!(format_error(&packet).is_none());
}
