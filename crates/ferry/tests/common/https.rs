//! A small HTTPS server on 127.0.0.1 for the black-box tests that need one on the other end of
//! the API server: admission and conversion webhooks, the token webhook, an OIDC issuer, an
//! extension API server. Its certificate is self-signed (the test hands the API server its
//! `ca_bundle`); with a client CA it accepts only clients that CA issued. One request per
//! connection, answered by the test's handler in the server's thread.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

/// A request, read whole.
pub struct Request {
    /// The path without the query.
    pub path: String,
    /// The query, without its `?` (empty if there is none), still percent-encoded.
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// Every value of the header `name` (any case), in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`null` if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// The server; stops (and closes its port) when dropped.
pub struct HttpsServer {
    pub port: u16,
    /// The server's certificate, base64 PEM, as a `caBundle` field wants it.
    pub ca_bundle: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpsServer {
    /// Serves on 127.0.0.1 with a certificate for `name` (a DNS name, or an IP address),
    /// requiring client certificates issued by `client_ca_pem` when given. `handle` answers
    /// each request with a status line (`200 OK`) and a JSON body.
    pub fn start(
        name: &str,
        client_ca_pem: Option<&str>,
        handle: impl Fn(&Request) -> (&'static str, String) + Send + 'static,
    ) -> HttpsServer {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names.push(match name.parse() {
            Ok(ip) => rcgen::SanType::IpAddress(ip),
            Err(_) => rcgen::SanType::DnsName(name.try_into().expect("DNS name")),
        });
        let cert = params.self_signed(&key).expect("certificate");
        let ca_bundle = base64::engine::general_purpose::STANDARD.encode(cert.pem());
        let builder = rustls::ServerConfig::builder();
        let builder = match client_ca_pem {
            Some(pem) => {
                let mut roots = rustls::RootCertStore::empty();
                for block in pem.split_inclusive("-----END CERTIFICATE-----\n") {
                    let der = pem_body(block);
                    if !der.is_empty() {
                        roots.add(der.into()).expect("client CA");
                    }
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                    .build()
                    .expect("client verifier");
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = Arc::new(
            builder
                .with_single_cert(
                    vec![cert.der().clone()],
                    rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
                )
                .expect("tls config"),
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            stream.set_nonblocking(false).expect("blocking");
                            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                            let connection =
                                rustls::ServerConnection::new(config.clone()).expect("tls");
                            let mut tls = rustls::StreamOwned::new(connection, stream);
                            if let Ok(request) = read_request(&mut tls) {
                                let (status, body) = handle(&request);
                                let _ = write_response(&mut tls, status, &body);
                            }
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        };
        HttpsServer {
            port,
            ca_bundle,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops answering: the port is closed.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads one HTTP/1.1 request (the TLS handshake, with its client check, happens here).
fn read_request(stream: &mut impl Read) -> std::io::Result<Request> {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let target = request_line.split_whitespace().nth(1).unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default().to_string();
    let query = target
        .split_once('?')
        .map(|(_, q)| q.to_string())
        .unwrap_or_default();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Request {
        path,
        query,
        headers,
        body,
    })
}

fn write_response(stream: &mut impl Write, status: &str, body: &str) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// The DER of one PEM certificate block.
fn pem_body(block: &str) -> Vec<u8> {
    let body: String = block
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.trim().is_empty())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap_or_default()
}
