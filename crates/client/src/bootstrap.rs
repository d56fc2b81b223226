//! TLS bootstrapping of a node agent, as upstream's kubelet does it with a bootstrap token
//! (kubeadm join), scaled down to one join token:
//!
//! 1. the join token `K10<sha256 of the CA certificate DER>::<id>.<secret>` (k3s's "secure"
//!    token format) names the cluster CA by its hash, so the agent needs no CA file: it takes
//!    the CA from the chain the server presents, checks its hash, then verifies the server's
//!    certificate against it — before any credential is sent;
//! 2. with the bearer token `<id>.<secret>` (user `system:bootstrap:<id>`, group
//!    `system:bootstrappers`) it creates a CertificateSigningRequest for
//!    `CN=system:node:<name>, O=system:nodes` with the signer
//!    `kubernetes.io/kube-apiserver-client-kubelet`, which the controller manager approves and
//!    signs;
//! 3. it writes its key, certificate, the CA and a kubeconfig using them, and from then on
//!    talks to the server as the node.
//!
//! Start at [`bootstrap_kubeconfig`].

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::Api;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// The signer of kubelet client certificates, which the controller manager approves for nodes.
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";

/// The signer of kubelet serving certificates (the kubelet's HTTPS server on :10250).
pub const KUBELET_SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";
/// The kubelet's serving certificate (PEM).
pub const SERVING_CERT_FILE: &str = "kubelet-serving.crt";
/// Its private key (PEM, PKCS#8, mode 0600).
pub const SERVING_KEY_FILE: &str = "kubelet-serving.key";

/// The kubeconfig [`bootstrap_kubeconfig`] writes in its directory.
pub const KUBECONFIG_FILE: &str = "kubelet.kubeconfig";
/// The node's client certificate (PEM).
pub const CERT_FILE: &str = "kubelet-client.crt";
/// The node's private key (PEM, PKCS#8, mode 0600).
pub const KEY_FILE: &str = "kubelet-client.key";
/// The cluster CA (PEM).
pub const CA_FILE: &str = "ca.crt";

/// A certificate is renewed when less than this is left of it.
const RENEW_BEFORE: Duration = Duration::from_secs(3600);
/// How long [`bootstrap_kubeconfig`] waits for the certificate.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the CSR is read while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Errors of joining a cluster.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The join token is not `K10<hash>::<id>.<secret>`.
    #[error("invalid join token: {0}")]
    InvalidToken(String),
    /// The server URL is not an https URL.
    #[error("invalid server URL {0:?}")]
    InvalidServer(String),
    /// No certificate in the server's chain has the hash the join token names: another
    /// cluster, or someone in between. Nothing was sent to the server.
    #[error("the server's CA does not match the join token's CA hash")]
    CaMismatch,
    /// The TLS connection to the server failed (or its certificate does not verify against
    /// the pinned CA).
    #[error("TLS connection to {server}: {reason}")]
    Tls {
        /// The server.
        server: String,
        /// Why.
        reason: String,
    },
    /// An API call failed (401: the token is not the server's).
    #[error("API request: {0}")]
    Api(#[from] kube::Error),
    /// The CertificateSigningRequest was denied or failed.
    #[error("certificate signing request {name} {condition}: {message}")]
    Refused {
        /// The CSR.
        name: String,
        /// `Denied` or `Failed`.
        condition: String,
        /// The condition's message.
        message: String,
    },
    /// No certificate was issued in time.
    #[error("certificate signing request {0} was not issued in time")]
    Timeout(String),
    /// Making a key or request, or reading a certificate.
    #[error("certificate: {0}")]
    Certificate(String),
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BootstrapError + '_ {
    move |source| BootstrapError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn cert_err(e: impl std::fmt::Display) -> BootstrapError {
    BootstrapError::Certificate(e.to_string())
}

/// A join token: `K10<sha256 hex of the CA certificate DER>::<id>.<secret>`, `id` 6 and
/// `secret` 16 characters of `[a-z0-9]`, as upstream's bootstrap tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// The hex SHA-256 of the cluster CA certificate (DER).
    pub ca_hash: String,
    /// The token id (public: it names the user `system:bootstrap:<id>`).
    pub id: String,
    /// The token secret.
    pub secret: String,
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinToken")
            .field("ca_hash", &self.ca_hash)
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl std::fmt::Display for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "K10{}::{}.{}", self.ca_hash, self.id, self.secret)
    }
}

fn is_token_part(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// `n` random characters of `[a-z0-9]`.
fn random_chars(n: usize) -> Result<String, BootstrapError> {
    use ring::rand::SecureRandom as _;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let rng = ring::rand::SystemRandom::new();
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        rng.fill(&mut buf)
            .map_err(|_| cert_err("no system randomness"))?;
        // 252 = 7 * 36: dropping the rest keeps every character equally likely.
        for b in buf.iter().filter(|b| **b < 252) {
            if out.len() < n {
                out.push(char::from(ALPHABET[usize::from(*b) % 36]));
            }
        }
    }
    Ok(out)
}

/// The hex SHA-256 of a DER certificate.
pub fn ca_hash(ca_der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, ca_der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn first_cert_der(pem_text: &str) -> Result<Vec<u8>, BootstrapError> {
    pem::parse_many(pem_text)
        .map_err(cert_err)?
        .into_iter()
        .find(|p| p.tag() == "CERTIFICATE")
        .map(pem::Pem::into_contents)
        .ok_or_else(|| cert_err("no CERTIFICATE in PEM"))
}

impl JoinToken {
    /// A new random token for the cluster whose CA certificate is `ca_pem`.
    pub fn generate(ca_pem: &str) -> Result<JoinToken, BootstrapError> {
        Ok(JoinToken {
            ca_hash: ca_hash(&first_cert_der(ca_pem)?),
            id: random_chars(6)?,
            secret: random_chars(16)?,
        })
    }

    /// Parses `K10<hash>::<id>.<secret>`; any other form is an error.
    pub fn parse(text: &str) -> Result<JoinToken, BootstrapError> {
        let invalid = |why: &str| BootstrapError::InvalidToken(why.to_string());
        let rest = text
            .trim()
            .strip_prefix("K10")
            .ok_or_else(|| invalid("does not start with K10"))?;
        let (hash, credentials) = rest
            .split_once("::")
            .ok_or_else(|| invalid("no '::' after the CA hash"))?;
        let is_hash = hash.len() == 64
            && hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !is_hash {
            return Err(invalid("the CA hash is not 64 lower-case hex digits"));
        }
        let (id, secret) = credentials
            .split_once('.')
            .ok_or_else(|| invalid("no '.' between id and secret"))?;
        if !is_token_part(id, 6) || !is_token_part(secret, 16) {
            return Err(invalid(
                "id and secret must be 6 and 16 characters of [a-z0-9]",
            ));
        }
        Ok(JoinToken {
            ca_hash: hash.to_string(),
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }

    /// The bearer token the server authenticates: `<id>.<secret>`.
    pub fn bearer(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }

    /// Whether the token names the CA `ca_pem`.
    pub fn matches_ca(&self, ca_pem: &str) -> bool {
        first_cert_der(ca_pem).is_ok_and(|der| ca_hash(&der) == self.ca_hash)
    }
}

/// Joins `node_name` to the cluster at `server_url` with `token`, keeping the credentials in
/// `dir`; returns the path of the kubeconfig to use (`dir/kubelet.kubeconfig`), which
/// [`crate::connect`] loads. An existing kubeconfig for the same server and node whose
/// certificate is valid for more than an hour is reused. Waits up to 60 s for the certificate.
pub async fn bootstrap_kubeconfig(
    server_url: &str,
    token: &str,
    node_name: &str,
    dir: &Path,
) -> Result<PathBuf, BootstrapError> {
    bootstrap_kubeconfig_with_timeout(server_url, token, node_name, dir, DEFAULT_TIMEOUT).await
}

/// [`bootstrap_kubeconfig`], waiting up to `timeout` for the certificate.
pub async fn bootstrap_kubeconfig_with_timeout(
    server_url: &str,
    token: &str,
    node_name: &str,
    dir: &Path,
    timeout: Duration,
) -> Result<PathBuf, BootstrapError> {
    if let Some(path) = reusable_kubeconfig(server_url, node_name, dir) {
        tracing::info!(path = %path.display(), "reusing the node's client certificate");
        return Ok(path);
    }
    let token = JoinToken::parse(token)?;
    let uri: http::Uri = server_url
        .parse()
        .map_err(|_| BootstrapError::InvalidServer(server_url.into()))?;
    if uri.scheme_str() != Some("https") {
        return Err(BootstrapError::InvalidServer(server_url.into()));
    }
    let ca_der = pinned_ca(&uri, &token.ca_hash).await?;
    let client = bootstrap_client(uri, &ca_der, &token.bearer())?;
    let (key_pem, csr_pem) = key_and_request(node_name, &[])?;
    let usages = ["digital signature", "client auth"];
    let cert_pem =
        request_certificate(client, &csr_pem, KUBELET_CLIENT_SIGNER, &usages, timeout).await?;
    write_credentials(server_url, node_name, dir, &ca_der, &cert_pem, &key_pem)
}

/// The CA pinned by its hash: the certificate in the server's TLS chain whose SHA-256 is
/// `hash`, after the server's own certificate verified against it (for the host it was
/// reached at). Only a TLS handshake: no request, no credential, is sent.
async fn pinned_ca(uri: &http::Uri, hash: &str) -> Result<Vec<u8>, BootstrapError> {
    let server = uri.to_string();
    let tls = |reason: String| BootstrapError::Tls {
        server: server.clone(),
        reason,
    };
    let host = uri
        .host()
        .ok_or_else(|| BootstrapError::InvalidServer(server.clone()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(443);
    let name = ServerName::try_from(host.clone()).map_err(|e| tls(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedCaVerifier {
        ca_hash: hash.to_string(),
        provider: provider.clone(),
        outcome: parking_lot::Mutex::new(None),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| tls(e.to_string()))?;
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await;
        let outcome = verifier.outcome.lock().take();
        match (stream, outcome) {
            (_, Some(Pinned::Mismatch)) => Err(BootstrapError::CaMismatch),
            (Ok(mut stream), Some(Pinned::Ca(ca))) => {
                use tokio::io::AsyncWriteExt as _;
                let _ = stream.shutdown().await;
                Ok(ca)
            }
            (Ok(_), None) => Err(tls("the server's certificate was not verified".into())),
            (Err(e), _) => Err(tls(e.to_string())),
        }
    };
    tokio::time::timeout(Duration::from_secs(30), handshake)
        .await
        .map_err(|_| tls("handshake timed out".into()))?
}

/// What the verifier found.
#[derive(Debug)]
enum Pinned {
    /// The CA (DER) whose hash matched, after the server's certificate verified against it.
    Ca(Vec<u8>),
    /// No certificate of the chain has the hash.
    Mismatch,
}

/// A server certificate verifier that trusts the CA certificate of the presented chain whose
/// hash the join token names — and nothing else.
#[derive(Debug)]
struct PinnedCaVerifier {
    ca_hash: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
    outcome: parking_lot::Mutex<Option<Pinned>>,
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(ca) = intermediates
            .iter()
            .find(|c| ca_hash(c.as_ref()) == self.ca_hash)
        else {
            *self.outcome.lock() = Some(Pinned::Mismatch);
            return Err(rustls::Error::General(
                "no certificate in the server's chain matches the join token's CA hash".into(),
            ));
        };
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(ca.clone().into_owned())
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        let verified =
            webpki.verify_server_cert(end_entity, &[], server_name, ocsp_response, now)?;
        *self.outcome.lock() = Some(Pinned::Ca(ca.as_ref().to_vec()));
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client trusting only the pinned CA, authenticating with the bootstrap token.
fn bootstrap_client(
    uri: http::Uri,
    ca_der: &[u8],
    bearer: &str,
) -> Result<kube::Client, BootstrapError> {
    let mut config = kube::Config::new(uri);
    config.root_cert = Some(vec![ca_der.to_vec()]);
    config.default_namespace = "default".into();
    config.auth_info = serde_json::from_value(serde_json::json!({ "token": bearer }))
        .map_err(|e| cert_err(format!("auth info: {e}")))?;
    Ok(crate::journey::client(crate::with_user_agent(
        config, "kubelet",
    ))?)
}

/// A new ECDSA P-256 key (PEM) and a certificate request (PEM) for
/// `CN=system:node:<name>, O=system:nodes`, naming `alt_names` (DNS names and IP addresses).
fn key_and_request(
    node_name: &str,
    alt_names: &[String],
) -> Result<(String, String), BootstrapError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(cert_err)?;
    let mut params = rcgen::CertificateParams::new(alt_names.to_vec()).map_err(cert_err)?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::OrganizationName, "system:nodes");
    dn.push(
        rcgen::DnType::CommonName,
        format!("system:node:{node_name}"),
    );
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key).map_err(cert_err)?;
    Ok((key.serialize_pem(), csr.pem().map_err(cert_err)?))
}

/// Creates the CSR for `signer` with `usages` and waits for its certificate (PEM).
async fn request_certificate(
    client: kube::Client,
    csr_pem: &str,
    signer: &str,
    usages: &[&str],
    timeout: Duration,
) -> Result<String, BootstrapError> {
    let api: Api<CertificateSigningRequest> = Api::all(client);
    let name = format!("node-csr-{}", random_chars(10)?);
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: k8s_openapi::ByteString(csr_pem.as_bytes().to_vec()),
            signer_name: signer.into(),
            usages: Some(usages.iter().map(|u| u.to_string()).collect()),
            ..Default::default()
        },
        status: None,
    };
    api.create(&PostParams::default(), &csr).await?;
    tracing::info!(csr = %name, %signer, "waiting for the node's certificate");
    let wait = async {
        loop {
            let csr = api.get(&name).await?;
            let status = csr.status.unwrap_or_default();
            for condition in status.conditions.iter().flatten() {
                if matches!(condition.type_.as_str(), "Denied" | "Failed") {
                    return Err(BootstrapError::Refused {
                        name: name.clone(),
                        condition: condition.type_.clone(),
                        message: condition.message.clone().unwrap_or_default(),
                    });
                }
            }
            if let Some(certificate) = status.certificate.filter(|c| !c.0.is_empty()) {
                return String::from_utf8(certificate.0).map_err(cert_err);
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .map_err(|_| BootstrapError::Timeout(name.clone()))?
}

/// Writes `contents` to `path`, readable by its owner only when `private`; through a temporary
/// file, so a reader never sees half a file.
fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), BootstrapError> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    // A temporary name of this file's own (not shared between the key and the certificate),
    // and the mode set explicitly: a leftover from a crash must not keep a looser mode.
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mode = if private { 0o600 } else { 0o644 };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io(&tmp))?;
    file.write_all(contents).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// The kubeconfig of the node: the server, and the CA, certificate and key files beside it
/// (relative paths resolve against the kubeconfig's directory, for kube-rs and kubectl alike).
fn node_kubeconfig(server_url: &str, node_name: &str) -> String {
    use crate::kubeconfig::{kubeconfig, Pem};
    let user = format!("system:node:{node_name}");
    kubeconfig(
        server_url,
        Pem::File(CA_FILE),
        &user,
        Pem::File(CERT_FILE),
        Pem::File(KEY_FILE),
    )
}

fn write_credentials(
    server_url: &str,
    node_name: &str,
    dir: &Path,
    ca_der: &[u8],
    cert_pem: &str,
    key_pem: &str,
) -> Result<PathBuf, BootstrapError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let ca_pem = pem::encode(&pem::Pem::new("CERTIFICATE", ca_der.to_vec()));
    write_file(&dir.join(KEY_FILE), key_pem.as_bytes(), true)?;
    write_file(&dir.join(CERT_FILE), cert_pem.as_bytes(), false)?;
    write_file(&dir.join(CA_FILE), ca_pem.as_bytes(), false)?;
    // Last: its presence says the rest is there.
    let path = dir.join(KUBECONFIG_FILE);
    write_file(
        &path,
        node_kubeconfig(server_url, node_name).as_bytes(),
        true,
    )?;
    Ok(path)
}

/// The kubelet's serving certificate and key (PEM) for `alt_names` (the node's addresses and
/// host name): the ones in `dir` while they name exactly these and are valid for more than an
/// hour, or else new ones, asked for as the node (`client`) with a CSR of the
/// `kubernetes.io/kubelet-serving` signer — as upstream's kubelet with
/// `serverTLSBootstrap: true` — waiting up to `timeout` for the certificate.
pub async fn serving_certificate(
    client: kube::Client,
    node_name: &str,
    alt_names: &[String],
    dir: &Path,
    timeout: Duration,
) -> Result<(String, String), BootstrapError> {
    let cert_path = dir.join(SERVING_CERT_FILE);
    let key_path = dir.join(SERVING_KEY_FILE);
    if let (Ok(cert_pem), Ok(key_pem)) = (
        std::fs::read_to_string(&cert_path),
        std::fs::read_to_string(&key_path),
    ) {
        match check_serving_cert(&cert_pem, node_name, alt_names, unix_now()) {
            Ok(()) => return Ok((cert_pem, key_pem)),
            Err(why) => tracing::info!(%why, "asking for a new serving certificate"),
        }
    }
    let (key_pem, csr_pem) = key_and_request(node_name, alt_names)?;
    let usages = ["digital signature", "server auth"];
    let cert_pem =
        request_certificate(client, &csr_pem, KUBELET_SERVING_SIGNER, &usages, timeout).await?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    write_file(&key_path, key_pem.as_bytes(), true)?;
    write_file(&cert_path, cert_pem.as_bytes(), false)?;
    Ok((cert_pem, key_pem))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Why a serving certificate cannot be reused (another node, other names, or expiring), or
/// `Ok` if it can.
fn check_serving_cert(
    cert_pem: &str,
    node_name: &str,
    alt_names: &[String],
    now_unix: i64,
) -> Result<(), BootstrapError> {
    check_client_cert(cert_pem, node_name, now_unix)?;
    let der = first_cert_der(cert_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(cert_err)?;
    let mut named: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::DNSName(n) => Some(n.to_string()),
                    x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                        crate::tls::san_ip(bytes).map(|ip| ip.to_string())
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let mut wanted = alt_names.to_vec();
    named.sort();
    wanted.sort();
    if named != wanted {
        return Err(cert_err(format!(
            "certificate names {named:?}, not {wanted:?}"
        )));
    }
    Ok(())
}

/// Why a client certificate cannot be reused, or `Ok` if it can.
fn check_client_cert(cert_pem: &str, node_name: &str, now_unix: i64) -> Result<(), BootstrapError> {
    let der = first_cert_der(cert_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(cert_err)?;
    let cn = cert
        .subject()
        .iter_common_name()
        .filter_map(|c| c.as_str().ok())
        .next()
        .unwrap_or("");
    if cn != format!("system:node:{node_name}") {
        return Err(cert_err(format!("certificate is for {cn:?}")));
    }
    let left = cert.validity().not_after.timestamp() - now_unix;
    if left <= RENEW_BEFORE.as_secs() as i64 {
        return Err(cert_err("certificate expires within the hour"));
    }
    Ok(())
}

/// `dir/kubelet.kubeconfig` if it is for `server_url` and its certificate, for this node,
/// is valid for more than an hour.
fn reusable_kubeconfig(server_url: &str, node_name: &str, dir: &Path) -> Option<PathBuf> {
    let path = dir.join(KUBECONFIG_FILE);
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).ok()?;
    let same_server = kubeconfig.clusters.iter().any(|c| {
        c.cluster
            .as_ref()
            .and_then(|c| c.server.as_deref())
            .map(|s| s.trim_end_matches('/'))
            == Some(server_url.trim_end_matches('/'))
    });
    if !same_server || !dir.join(KEY_FILE).exists() || !dir.join(CA_FILE).exists() {
        return None;
    }
    let cert_pem = std::fs::read_to_string(dir.join(CERT_FILE)).ok()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs() as i64;
    match check_client_cert(&cert_pem, node_name, now) {
        Ok(()) => Some(path),
        Err(why) => {
            tracing::info!(%why, "not reusing the node's client certificate");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn tokens_format_and_parse() {
        let text = format!("K10{HASH}::abcdef.zyxwvuts98765432");
        let token = JoinToken::parse(&text).expect("valid");
        assert_eq!(token.id, "abcdef");
        assert_eq!(token.secret, "zyxwvuts98765432");
        assert_eq!(token.ca_hash, HASH);
        assert_eq!(token.bearer(), "abcdef.zyxwvuts98765432");
        assert_eq!(token.to_string(), text);
        assert!(!format!("{token:?}").contains("zyxwvuts"));
        for bad in [
            "abcdef.0123456789abcdef".to_string(),
            format!("K10{HASH}abcdef.0123456789abcdef"),
            format!("K10{}::abcdef.0123456789abcdef", &HASH[1..]),
            format!("K10{}::abcdef.0123456789abcdef", HASH.to_uppercase()),
            format!("K10{HASH}::abcde.0123456789abcdef"),
            format!("K10{HASH}::abcdef.0123456789ABCDEF"),
            format!("K10{HASH}::abcdef0123456789abcdef"),
            format!("K10{HASH}::server:abcdef.0123456789abcdef"),
        ] {
            assert!(
                matches!(JoinToken::parse(&bad), Err(BootstrapError::InvalidToken(_))),
                "{bad}"
            );
        }
    }

    fn self_signed(cn: &str, days: i64) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.not_before = std::time::SystemTime::now().into();
        params.not_after =
            (std::time::SystemTime::now() + Duration::from_secs((days * 86400) as u64)).into();
        let cert = params.self_signed(&key).expect("cert");
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn generated_tokens_name_the_ca() {
        let (ca, _) = self_signed("ferry-ca", 365);
        let token = JoinToken::generate(&ca).expect("token");
        let again = JoinToken::parse(&token.to_string()).expect("parses");
        assert_eq!(again, token);
        assert!(token.matches_ca(&ca));
        let (other, _) = self_signed("ferry-ca", 365);
        assert!(!token.matches_ca(&other));
        assert_ne!(
            JoinToken::generate(&ca).expect("token").secret,
            token.secret
        );
    }

    #[test]
    fn requests_are_for_the_node() {
        let (_, csr) = key_and_request("n1", &[]).expect("csr");
        let block = pem::parse(&csr).expect("pem");
        assert_eq!(block.tag(), "CERTIFICATE REQUEST");
        use x509_parser::prelude::FromDer as _;
        let (_, request) = x509_parser::certification_request::X509CertificationRequest::from_der(
            block.contents(),
        )
        .expect("parses");
        let subject = request.certification_request_info.subject.to_string();
        assert!(subject.contains("CN=system:node:n1"), "{subject}");
        assert!(subject.contains("O=system:nodes"), "{subject}");
    }

    #[test]
    fn credentials_are_reused_only_when_still_good() {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = "https://127.0.0.1:6443";
        let (ca, _) = self_signed("ferry-ca", 365);
        let ca_der = first_cert_der(&ca).expect("der");
        let (cert, key) = self_signed("system:node:n1", 30);
        let path =
            write_credentials(server, "n1", dir.path(), &ca_der, &cert, &key).expect("written");
        assert_eq!(path, dir.path().join(KUBECONFIG_FILE));
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(reusable_kubeconfig(server, "n1", dir.path()), Some(path));
        assert_eq!(reusable_kubeconfig(server, "n2", dir.path()), None);
        assert_eq!(
            reusable_kubeconfig("https://127.0.0.1:7443", "n1", dir.path()),
            None
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_secs() as i64;
        assert!(check_client_cert(&cert, "n1", now).is_ok());
        assert!(check_client_cert(&cert, "n1", now + 30 * 86400 - 1800).is_err());
        let kubeconfig = kube::config::Kubeconfig::read_from(dir.path().join(KUBECONFIG_FILE))
            .expect("kube-rs reads it");
        assert_eq!(kubeconfig.current_context.as_deref(), Some("ferry"));
    }

    #[test]
    fn serving_certificates_are_reused_only_for_the_same_names() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(names(&["n1", "10.0.0.1"])).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "system:node:n1");
        params.not_after = (std::time::SystemTime::now() + Duration::from_secs(30 * 86400)).into();
        let cert = params.self_signed(&key).expect("cert").pem();
        let now = unix_now();
        assert!(check_serving_cert(&cert, "n1", &names(&["10.0.0.1", "n1"]), now).is_ok());
        assert!(check_serving_cert(&cert, "n1", &names(&["10.0.0.2", "n1"]), now).is_err());
        assert!(check_serving_cert(&cert, "n1", &names(&["n1"]), now).is_err());
        assert!(check_serving_cert(&cert, "n2", &names(&["10.0.0.1", "n1"]), now).is_err());
    }
}
