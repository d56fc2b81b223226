//! Hostile input against a real `ferry server`: thousands of malformed, oversized, deeply
//! nested and slow requests from several clients at once. Each must get a 4xx `Status`, the
//! server must stay up with bounded memory, and nothing may be written.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Ferry;

/// Clients sending at once.
const CLIENTS: usize = 8;
/// Requests in all.
const REQUESTS: usize = 10_000;
/// The bearer token of the user sending them (a cluster admin: nothing is refused for want
/// of rights, so every refusal is about the input).
const TOKEN: &str = "hostile-token-0123456789";

/// One hostile request: method, path, content type, body.
struct Attack {
    method: &'static str,
    path: String,
    content_type: &'static str,
    body: Vec<u8>,
    /// The bearer token sent (a forged one for authentication attacks).
    token: String,
}

fn attack(
    method: &'static str,
    path: &str,
    content_type: &'static str,
    body: impl Into<Vec<u8>>,
) -> Attack {
    Attack {
        method,
        path: path.to_string(),
        content_type,
        body: body.into(),
        token: TOKEN.to_string(),
    }
}

/// The kinds of hostile request, cycled through.
fn attacks() -> Vec<Attack> {
    let configmaps = "/api/v1/namespaces/default/configmaps";
    let target = "/api/v1/namespaces/default/configmaps/target";
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let nested_object = format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"deep\"}},\"data\":{}{}}}",
        "{\"a\":".repeat(5_000),
        "}".repeat(5_000)
    );
    let billion_laughs = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: laughs}\na: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
    let mut forged = attack("GET", configmaps, "application/json", "");
    forged.token = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.".to_string();
    vec![
        attack("POST", configmaps, "application/json", "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":"),
        attack("POST", configmaps, "application/json", "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":5}}"),
        attack("POST", configmaps, "application/json", "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"Not A Name!\"}}"),
        attack("POST", configmaps, "application/json", "\u{0}\u{1}\u{2}garbage"),
        attack("POST", configmaps, "application/json", nested.clone()),
        attack("POST", configmaps, "application/json", nested_object),
        attack("POST", configmaps, "application/yaml", billion_laughs),
        attack("POST", configmaps, "application/yaml", "a: [b\n  c: {"),
        attack("POST", configmaps, "application/vnd.kubernetes.protobuf", b"k8s\0\xff\xff\xff\xff\x0f\x0a\x02garbage".to_vec()),
        attack("POST", configmaps, "application/vnd.kubernetes.protobuf", b"not protobuf".to_vec()),
        attack("POST", configmaps, "text/plain", "hello"),
        attack("PATCH", target, "application/json-patch+json", "[{\"op\":\"bogus\",\"path\":\"/data\"}]"),
        attack("PATCH", target, "application/json-patch+json", "[{\"op\":\"test\",\"path\":\"/data/a\",\"value\":\"never\"},{\"op\":\"add\",\"path\":\"/data/b\",\"value\":\"x\"}]"),
        attack("PATCH", target, "application/merge-patch+json", "{\"metadata\":{\"name\":\"other\"},\"data\":"),
        attack("PATCH", target, "application/strategic-merge-patch+json", nested),
        attack("PATCH", target, "application/merge-patch+json", "{\"data\":{\"a\":5}}"),
        attack("PUT", target, "application/json", "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"target\",\"resourceVersion\":\"1\"},\"data\":{\"a\":\"overwritten\"}}"),
        attack("GET", &format!("{configmaps}?labelSelector=a%20in%20(b"), "application/json", ""),
        attack("GET", &format!("{configmaps}?fieldSelector=spec.nothing%3D1"), "application/json", ""),
        attack("GET", &format!("{configmaps}?resourceVersion=abc&resourceVersionMatch=Exact"), "application/json", ""),
        attack("GET", &format!("{configmaps}?limit=-5&continue=%00%01bogus"), "application/json", ""),
        attack("GET", "/api/v1/namespaces/default/configmaps/..%2F..%2Fsecrets", "application/json", ""),
        attack("GET", "/apis/nothing.example.com/v1/widgets", "application/json", ""),
        attack("DELETE", &format!("{configmaps}/target?propagationPolicy=Sideways"), "application/json", ""),
        attack("POST", "/api/v1/namespaces/default/pods", "application/json", "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"},\"spec\":{\"containers\":[{\"name\":\"c\"}]}}"),
        forged,
    ]
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// One client: a kept-alive TLS connection, opened again when the server closes it.
struct Client<'a> {
    address: &'a str,
    tls: &'a Arc<rustls::ClientConfig>,
    stream: Option<Tls>,
    /// Connections opened.
    connections: usize,
}

impl Client<'_> {
    fn connect(&self) -> std::io::Result<Tls> {
        let tcp = TcpStream::connect(self.address)?;
        tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
        let connection = rustls::ClientConnection::new(self.tls.clone(), name).expect("tls");
        Ok(rustls::StreamOwned::new(connection, tcp))
    }

    /// Sends `attack`; the status and body. An oversized body is announced but not sent: the
    /// server must refuse it from its Content-Length, before reading it.
    fn send(&mut self, attack: &Attack, announce_only: bool) -> (u16, Vec<u8>) {
        let mut last = None;
        for _ in 0..3 {
            match self.try_send(attack, announce_only) {
                Ok(answer) => return answer,
                // The server closed a kept-alive connection: open another.
                Err(e) => {
                    self.stream = None;
                    last = Some(e);
                }
            }
        }
        panic!("{} {}: {:?}", attack.method, attack.path, last);
    }

    fn try_send(
        &mut self,
        attack: &Attack,
        announce_only: bool,
    ) -> std::io::Result<(u16, Vec<u8>)> {
        if self.stream.is_none() {
            self.stream = Some(self.connect()?);
            self.connections += 1;
        }
        let address = self.address;
        let stream = self.stream.as_mut().expect("connected");
        let head = format!(
            "{} {} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\nContent-Type: {}\r\nAccept: application/json\r\nContent-Length: {}\r\n\r\n",
            attack.method,
            attack.path,
            attack.token,
            attack.content_type,
            attack.body.len()
        );
        stream.write_all(head.as_bytes())?;
        if !announce_only {
            stream.write_all(&attack.body)?;
        }
        stream.flush()?;
        let mut reader = BufReader::new(stream);
        let mut status_line = String::new();
        if reader.read_line(&mut status_line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let (mut length, mut chunked, mut close) = (None, false, announce_only);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(value) = lower.strip_prefix("content-length:") {
                length = value.trim().parse::<usize>().ok();
            }
            chunked |= lower.starts_with("transfer-encoding:") && lower.contains("chunked");
            close |= lower.starts_with("connection:") && lower.contains("close");
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                let mut size = String::new();
                reader.read_line(&mut size)?;
                let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0; size + 2];
                reader.read_exact(&mut chunk)?;
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        } else if let Some(n) = length {
            body.resize(n, 0);
            reader.read_exact(&mut body)?;
        } else {
            reader.read_to_end(&mut body)?;
            close = true;
        }
        if close {
            self.stream = None;
        }
        Ok((status, body))
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn hostile_requests_get_4xx_and_change_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tokens = tmp.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        format!("{TOKEN},hostile,hostile-uid,system:masters\n"),
    )
    .expect("tokens");
    let data = tmp.path().join("data");
    let ferry = Ferry::start_in(
        &data,
        &[
            "--token-file",
            tokens.to_str().expect("utf8"),
            "--disable-controllers",
            "--disable-scheduler",
        ],
    );
    ferry.ok(&["create", "configmap", "target", "--from-literal=a=original"]);
    // Without controllers nobody makes it; pods must reach their validation.
    ferry.ok(&["create", "serviceaccount", "default"]);
    let before = ferry.ok(&[
        "get",
        "configmaps,secrets,pods",
        "-A",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}@{.metadata.resourceVersion} {end}",
    ]);
    let pid = ferry.child.as_ref().expect("server").id();
    let rss_before = rss_kib(pid);

    let ca = std::fs::read(data.join("tls/ca.crt")).expect("ca");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile_certs(&ca) {
        roots.add(cert).expect("ca cert");
    }
    let tls = Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let address = ferry.url.trim_start_matches("https://").to_string();

    // Slow clients: half a request line, then nothing; they must not hold up the others.
    let slow: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut tcp = TcpStream::connect(&address).expect("connect");
            let _ = tcp.write_all(b"\x16\x03\x01");
            tcp
        })
        .collect();

    let oversized = attack(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        vec![b' '; 4 * 1024 * 1024],
    );
    let started = Instant::now();
    let failures = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (tls, address, oversized) = (&tls, &address, &oversized);
                scope.spawn(move || {
                    let attacks = attacks();
                    let mut failures = Vec::new();
                    let mut slowest = (Duration::ZERO, String::new());
                    let mut connection = Client {
                        address,
                        tls,
                        stream: None,
                        connections: 0,
                    };
                    let requests = std::env::var("FERRY_HOSTILE_REQUESTS")
                        .ok()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(REQUESTS);
                    for i in (client..requests).step_by(CLIENTS) {
                        // A few 4 MiB bodies; the rest cycle through the kinds.
                        let big = i % 1000 == 0;
                        let attack = if big {
                            oversized
                        } else {
                            &attacks[i % attacks.len()]
                        };
                        let sent = Instant::now();
                        let (status, body) = connection.send(attack, big);
                        let took = sent.elapsed();
                        if took > slowest.0 {
                            slowest = (
                                took,
                                format!(
                                    "{} {} ({})",
                                    attack.method, attack.path, attack.content_type
                                ),
                            );
                        }
                        let is_status = serde_json::from_slice::<serde_json::Value>(&body)
                            .is_ok_and(|v| v["kind"] == "Status");
                        if !(400..500).contains(&status) || !is_status {
                            failures.push(format!(
                                "{} {}: {status} {}",
                                attack.method,
                                attack.path,
                                String::from_utf8_lossy(&body[..body.len().min(200)])
                            ));
                        }
                    }
                    eprintln!(
                        "client {client}: {} connections, slowest {:?}: {}",
                        connection.connections, slowest.0, slowest.1
                    );
                    failures
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("client"))
            .collect::<Vec<_>>()
    });
    let elapsed = started.elapsed();
    let sent = std::env::var("FERRY_HOSTILE_REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(REQUESTS);
    drop(slow);
    let mut distinct = failures.clone();
    distinct.sort();
    distinct.dedup();
    assert!(
        failures.is_empty(),
        "{} of {REQUESTS} not a 4xx Status, e.g.:\n{}",
        failures.len(),
        distinct
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Still up, nothing written, memory bounded.
    let after = ferry.ok(&[
        "get",
        "configmaps,secrets,pods",
        "-A",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}@{.metadata.resourceVersion} {end}",
    ]);
    assert_eq!(after, before, "the store is unchanged");
    assert_eq!(
        ferry.ok(&["get", "configmap", "target", "-o", "jsonpath={.data}"]),
        r#"{"a":"original"}"#
    );
    let rss_after = rss_kib(pid);
    assert!(
        rss_after < rss_before + 256 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    eprintln!(
        "{sent} hostile requests from {CLIENTS} clients in {:.1} s; RSS {rss_before} → {rss_after} KiB",
        elapsed.as_secs_f64()
    );
}

/// The certificates of a PEM bundle.
fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject as _;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}
