//! Answers for every record type of the specification from fixed Services and slices.

use serde_json::json;

use super::*;

fn service(name: &str, spec: serde_json::Value) -> Arc<Service> {
    Arc::new(
        serde_json::from_value(
            json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec}),
        )
        .expect("service"),
    )
}

fn zone() -> Zone {
    let services = [
        service(
            "web",
            json!({"clusterIP": "10.43.0.20", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}),
        ),
        service(
            "db",
            json!({"clusterIP": "None", "ports": [{"name": "sql", "port": 5432}]}),
        ),
        service(
            "ext",
            json!({"type": "ExternalName", "externalName": "example.com"}),
        ),
    ];
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "db-x", "namespace": "default", "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4", "ports": [{"name": "sql", "port": 5432, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["10.42.0.5"], "hostname": "db-0", "conditions": {"ready": true}},
            {"addresses": ["10.42.0.6"], "conditions": {"ready": true}},
            {"addresses": ["10.42.0.7"], "conditions": {"ready": false}},
        ]}))
    .expect("slice");
    Zone::build("cluster.local", &services, &[Arc::new(slice)])
}

/// The answer's data as text, sorted.
fn shown(answer: Answer) -> Vec<String> {
    match answer {
        Answer::Records(records) => {
            let mut shown: Vec<String> = records.iter().map(|r| r.data.to_string()).collect();
            shown.sort();
            shown
        }
        other => vec![format!("{other:?}")],
    }
}

#[test]
fn services_with_a_cluster_ip() {
    let zone = zone();
    assert_eq!(
        shown(zone.answer("web.default.svc.cluster.local.", RecordType::A)),
        ["10.43.0.20"]
    );
    assert_eq!(
        shown(zone.answer("WEB.default.svc.cluster.local", RecordType::A)),
        ["10.43.0.20"]
    );
    assert_eq!(
        shown(zone.answer("_http._tcp.web.default.svc.cluster.local", RecordType::SRV)),
        ["0 100 80 web.default.svc.cluster.local."]
    );
    assert_eq!(
        shown(zone.answer("20.0.43.10.in-addr.arpa", RecordType::PTR)),
        ["web.default.svc.cluster.local."]
    );
}

#[test]
fn headless_services_list_their_ready_endpoints() {
    let zone = zone();
    assert_eq!(
        shown(zone.answer("db.default.svc.cluster.local", RecordType::A)),
        ["10.42.0.5", "10.42.0.6"]
    );
    assert_eq!(
        shown(zone.answer("db-0.db.default.svc.cluster.local", RecordType::A)),
        ["10.42.0.5"]
    );
    assert_eq!(
        shown(zone.answer("10-42-0-6.db.default.svc.cluster.local", RecordType::A)),
        ["10.42.0.6"]
    );
    assert_eq!(
        shown(zone.answer("_sql._tcp.db.default.svc.cluster.local", RecordType::SRV)),
        [
            "0 100 5432 10-42-0-6.db.default.svc.cluster.local.",
            "0 100 5432 db-0.db.default.svc.cluster.local."
        ]
    );
    assert_eq!(
        shown(zone.answer("5.0.42.10.in-addr.arpa", RecordType::PTR)),
        ["db-0.db.default.svc.cluster.local."]
    );
    // The endpoint that is not ready has no name.
    assert_eq!(
        zone.answer("10-42-0-7.db.default.svc.cluster.local", RecordType::A),
        Answer::NxDomain
    );
}

#[test]
fn external_names_pods_version_and_negative_answers() {
    let zone = zone();
    assert_eq!(
        shown(zone.answer("ext.default.svc.cluster.local", RecordType::A)),
        ["example.com."]
    );
    assert_eq!(
        shown(zone.answer("10-42-3-4.default.pod.cluster.local", RecordType::A)),
        ["10.42.3.4"]
    );
    assert_eq!(
        shown(zone.answer("dns-version.cluster.local", RecordType::TXT)),
        ["1.1.0"]
    );
    // Names that exist without records of the type: NODATA; others: NXDOMAIN.
    assert_eq!(
        zone.answer("web.default.svc.cluster.local", RecordType::AAAA),
        Answer::NoData
    );
    assert_eq!(
        zone.answer("default.svc.cluster.local", RecordType::A),
        Answer::NoData
    );
    assert_eq!(
        zone.answer("svc.cluster.local", RecordType::A),
        Answer::NoData
    );
    assert_eq!(
        zone.answer("nope.default.svc.cluster.local", RecordType::A),
        Answer::NxDomain
    );
    assert_eq!(
        zone.answer("web.other.svc.cluster.local", RecordType::A),
        Answer::NxDomain
    );
    // Not the cluster's: for the host's resolvers.
    assert_eq!(zone.answer("example.com", RecordType::A), Answer::NotOurs);
    assert_eq!(
        zone.answer("1.1.168.192.in-addr.arpa", RecordType::PTR),
        Answer::NotOurs
    );
    assert_eq!(
        shown(zone.answer("cluster.local", RecordType::SOA)).len(),
        1
    );
}
