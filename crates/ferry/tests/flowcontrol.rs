//! API Priority and Fairness against a real `ferry server`: the bootstrap configuration is
//! served and printed as upstream's, and under a flood of LISTs by an ordinary user some are
//! refused with 429 while a node's lease renewals all succeed.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use common::Ferry;

/// One HTTPS request with a bearer token on a fresh connection: status, headers (lower-case
/// names), body.
fn send(
    tls: &Arc<rustls::ClientConfig>,
    address: &str,
    token: &str,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let tcp = TcpStream::connect(address).expect("connect");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let connection = rustls::ClientConnection::new(tls.clone(), name).expect("tls");
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nAccept: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write");
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("status");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut headers = Vec::new();
    let mut chunked = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).expect("header") == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            chunked |= name == "transfer-encoding" && value.contains("chunked");
            headers.push((name, value.trim().to_string()));
        }
    }
    let mut raw = Vec::new();
    let _ = reader.read_to_end(&mut raw);
    let body = if chunked {
        // Enough for these tests: drop the chunk-size lines.
        String::from_utf8_lossy(&raw)
            .split("\r\n")
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s)
            .collect()
    } else {
        String::from_utf8_lossy(&raw).into_owned()
    };
    (status, headers, body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn a_list_flood_is_shed_while_node_heartbeats_pass() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tokens = tmp.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        "flood-token,flood,flood-uid\nnode-token,system:node:n1,n1-uid,system:nodes\n",
    )
    .expect("tokens");
    let data = tmp.path().join("data");
    // Three seats in all: one for global-default, one for node-high.
    let ferry = Ferry::start_in(
        &data,
        &[
            "--token-file",
            tokens.to_str().expect("utf8"),
            "--disable-controllers",
            "--disable-scheduler",
            "--max-requests-inflight=2",
            "--max-mutating-requests-inflight=1",
        ],
    );

    // The bootstrap configuration, printed as upstream prints it.
    let schemas = ferry.ok(&["get", "flowschemas"]);
    let header_line = schemas.lines().next().expect("header");
    for column in [
        "NAME",
        "PRIORITYLEVEL",
        "MATCHINGPRECEDENCE",
        "DISTINGUISHERMETHOD",
        "AGE",
        "MISSINGPL",
    ] {
        assert!(header_line.contains(column), "{schemas}");
    }
    for name in [
        "exempt",
        "probes",
        "system-leader-election",
        "endpoint-controller",
        "workload-leader-election",
        "system-node-high",
        "system-nodes",
        "kube-controller-manager",
        "kube-scheduler",
        "kube-system-service-accounts",
        "service-accounts",
        "global-default",
        "catch-all",
    ] {
        assert!(
            schemas.lines().any(|l| l.starts_with(&format!("{name} "))),
            "{name} in {schemas}"
        );
    }
    let both = ferry.ok(&["get", "flowschemas,prioritylevelconfigurations"]);
    assert!(both.contains("NOMINALCONCURRENCYSHARES"), "{both}");
    assert!(both.contains("QUEUELENGTHLIMIT"), "{both}");
    for name in [
        "exempt",
        "catch-all",
        "system",
        "node-high",
        "leader-election",
        "workload-high",
        "workload-low",
        "global-default",
    ] {
        assert!(
            both.contains(&format!(
                "prioritylevelconfiguration.flowcontrol.apiserver.k8s.io/{name} "
            )),
            "{name} in {both}"
        );
    }
    // The server keeps each schema's Dangling condition.
    assert!(common::eventually(
        std::time::Duration::from_secs(5),
        || {
            ferry.ok(&[
                "get",
                "flowschema",
                "global-default",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Dangling\")].status}",
            ]) == "False"
        }
    ));

    // A user takes global-default over (autoupdate-spec false): one queue of four.
    ferry.ok(&[
        "patch",
        "prioritylevelconfiguration",
        "global-default",
        "--type=merge",
        "-p",
        r#"{"metadata":{"annotations":{"apf.kubernetes.io/autoupdate-spec":"false"}},"spec":{"limited":{"limitResponse":{"queuing":{"queues":1,"handSize":1,"queueLengthLimit":4}}}}}"#,
    ]);
    // Many objects to list; the flood user may read them; the node's lease exists.
    let mut list = String::from("{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[");
    for i in 0..200 {
        if i > 0 {
            list.push(',');
        }
        list.push_str(&format!(
            "{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"cm-{i}\"}},\"data\":{{\"k\":\"{}\"}}}}",
            "v".repeat(200)
        ));
    }
    list.push_str("]}");
    let out = ferry.with_stdin(&["apply", "-f", "-"], &list);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ferry.ok(&[
        "create",
        "clusterrole",
        "cm-reader",
        "--verb=list",
        "--resource=configmaps",
    ]);
    ferry.ok(&[
        "create",
        "clusterrolebinding",
        "flood-list",
        "--clusterrole=cm-reader",
        "--user=flood",
    ]);
    assert!(common::eventually(
        std::time::Duration::from_secs(5),
        || {
            let out = ferry.kubectl(&["auth", "can-i", "list", "configmaps", "--as=flood"]);
            String::from_utf8_lossy(&out.stdout).trim() == "yes"
        }
    ));
    let lease = r#"{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"n1","namespace":"kube-node-lease"},"spec":{"holderIdentity":"n1","leaseDurationSeconds":40}}"#;
    let out = ferry.with_stdin(&["create", "-f", "-"], lease);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The server left the user's spec alone.
    assert_eq!(
        ferry.ok(&[
            "get",
            "prioritylevelconfiguration",
            "global-default",
            "-o",
            "jsonpath={.spec.limited.limitResponse.queuing.queueLengthLimit}",
        ]),
        "4"
    );

    let ca = std::fs::read(data.join("tls/ca.crt")).expect("ca");
    let mut roots = rustls::RootCertStore::empty();
    {
        use rustls::pki_types::pem::PemObject as _;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
            roots.add(cert.expect("pem")).expect("ca cert");
        }
    }
    let tls = Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let address = ferry.url.trim_start_matches("https://").to_string();

    // 24 clients list 200 ConfigMaps 10 times each while the node renews its lease 20 times.
    let flood: Vec<_> = (0..24)
        .map(|_| {
            let (tls, address) = (tls.clone(), address.clone());
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                for _ in 0..10 {
                    let (status, headers, _) = send(
                        &tls,
                        &address,
                        "flood-token",
                        "GET",
                        "/api/v1/namespaces/default/configmaps",
                        "",
                    );
                    answers.push((status, header(&headers, "retry-after").map(String::from)));
                }
                answers
            })
        })
        .collect();
    let lease_path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1";
    let mut renewals = Vec::new();
    for i in 0..20 {
        let (status, headers, body) = send(&tls, &address, "node-token", "GET", lease_path, "");
        assert_eq!(status, 200, "{body}");
        assert!(
            header(&headers, "x-kubernetes-pf-prioritylevel-uid").is_some_and(|u| !u.is_empty())
        );
        let mut lease: serde_json::Value = serde_json::from_str(&body).expect("lease");
        lease["spec"]["renewTime"] =
            serde_json::json!(format!("2026-01-01T00:00:{:02}.000000Z", i));
        let (status, _, body) = send(
            &tls,
            &address,
            "node-token",
            "PUT",
            lease_path,
            &lease.to_string(),
        );
        renewals.push((status, body));
    }
    let answers: Vec<(u16, Option<String>)> = flood
        .into_iter()
        .flat_map(|t| t.join().expect("flood client"))
        .collect();
    for (status, body) in &renewals {
        assert_eq!(*status, 200, "a lease renewal failed: {body}");
    }
    let rejected: Vec<_> = answers.iter().filter(|(s, _)| *s == 429).collect();
    let served = answers.iter().filter(|(s, _)| *s == 200).count();
    assert!(!rejected.is_empty(), "no LIST was refused: {answers:?}");
    assert!(served > 0, "every LIST was refused");
    assert_eq!(rejected.len() + served, answers.len(), "{answers:?}");
    assert!(
        rejected.iter().all(|(_, retry)| retry.is_some()),
        "429 without Retry-After"
    );

    // What the metrics and the debug dump say.
    let metrics = ferry.ok(&["get", "--raw", "/metrics"]);
    assert!(
        metrics.lines().any(
            |l| l.starts_with("apiserver_flowcontrol_rejected_requests_total{")
                && l.contains("priority_level=\"global-default\"")
                && l.contains("reason=\"queue-full\"")
        ),
        "{metrics}"
    );
    let dump = ferry.ok(&[
        "get",
        "--raw",
        "/debug/api_priority_and_fairness/dump_priority_levels",
    ]);
    assert!(
        dump.lines().any(|l| l.starts_with("global-default,")),
        "{dump}"
    );
}
