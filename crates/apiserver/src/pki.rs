//! The cluster's certificates: a CA, the API server's serving certificate and the admin's
//! client certificate (O=system:masters), made with rcgen on first start and kept under
//! `<data-dir>/tls` so restarts reuse them; and the admin kubeconfig.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Errors making or loading certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Generating or parsing a certificate or key.
    #[error("certificate: {0}")]
    Cert(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn cert_err(e: impl std::fmt::Display) -> PkiError {
    PkiError::Cert(e.to_string())
}

/// A certificate and its key, PEM-encoded.
#[derive(Clone, Debug)]
pub struct CertPair {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

/// The cluster's certificates.
#[derive(Clone, Debug)]
pub struct Pki {
    /// The CA that signs everything else and that clients and the server trust.
    pub ca: CertPair,
    /// The API server's serving certificate.
    pub server: CertPair,
    /// The admin's client certificate (CN=ferry-admin, O=system:masters).
    pub admin: CertPair,
}

/// IP addresses and names the serving certificate is valid for: loopback, the host name, and
/// the first address of the default service CIDR (the `kubernetes` service).
fn serving_names(extra: &[std::net::IpAddr]) -> Vec<SanType> {
    let mut names = vec![
        SanType::IpAddress([127, 0, 0, 1].into()),
        SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()),
        SanType::IpAddress([10, 43, 0, 1].into()),
    ];
    for dns in [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ] {
        names.extend(dns.try_into().ok().map(SanType::DnsName));
    }
    if let Ok(host) = fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        if !host.is_empty() && host != "localhost" {
            names.extend(host.to_string().try_into().ok().map(SanType::DnsName));
        }
    }
    // The machine's own addresses, so agents on other machines can join by IP, and the
    // addresses the server listens on (another loopback address, for one of several servers
    // on one machine).
    let fib = fs::read_to_string("/proc/net/fib_trie").unwrap_or_default();
    let local = local_ipv4_addresses(&fib)
        .into_iter()
        .map(std::net::IpAddr::from);
    for ip in local.chain(extra.iter().copied()) {
        let san = SanType::IpAddress(ip);
        if !names.contains(&san) {
            names.push(san);
        }
    }
    names
}

/// The machine's non-loopback IPv4 addresses, from `/proc/net/fib_trie` (each `|-- a.b.c.d`
/// line followed by `/32 host LOCAL`).
pub fn local_ipv4_addresses(fib_trie: &str) -> Vec<std::net::Ipv4Addr> {
    let mut last: Option<std::net::Ipv4Addr> = None;
    let mut out = vec![];
    for line in fib_trie.lines() {
        let line = line.trim();
        if let Some(ip) = line.strip_prefix("|-- ") {
            last = ip.parse().ok();
        } else if line.contains("/32 host LOCAL") {
            if let Some(ip) = last.filter(|ip| !ip.is_loopback()) {
                if !out.contains(&ip) {
                    out.push(ip);
                }
            }
        }
    }
    out
}

fn leaf(
    common_name: &str,
    organization: Option<&str>,
    usage: ExtendedKeyUsagePurpose,
    names: Vec<SanType>,
    issuer: &Issuer<'_, KeyPair>,
) -> Result<CertPair, PkiError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    if let Some(o) = organization {
        dn.push(DnType::OrganizationName, o);
    }
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.subject_alt_names = names;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2035, 1, 1);
    let key = KeyPair::generate().map_err(cert_err)?;
    let cert = params.signed_by(&key, issuer).map_err(cert_err)?;
    Ok(CertPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Whether the certificate `cert_pem` names every address of `ips` among its IP SANs.
fn names_addresses(cert_pem: &str, ips: &[std::net::IpAddr]) -> bool {
    use x509_parser::extensions::GeneralName;
    let Some(der) = parse_certs(cert_pem)
        .ok()
        .and_then(|c| c.into_iter().next())
    else {
        return false;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
        return false;
    };
    let names: Vec<Vec<u8>> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::IPAddress(bytes) => Some(bytes.to_vec()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    ips.iter().all(|ip| {
        let bytes = match ip {
            std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
            std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        names.contains(&bytes)
    })
}

impl Pki {
    /// Loads the certificates from `dir`, creating any that are missing.
    pub fn load_or_create(dir: &Path) -> Result<Pki, PkiError> {
        Pki::load_or_create_serving(dir, &[])
    }

    /// As [`Pki::load_or_create`], with a serving certificate valid for `addresses` too (the
    /// addresses the server listens on); a kept one that does not name them is issued again.
    /// A CA already in `dir` (copied there for a server that joins others) signs it.
    pub fn load_or_create_serving(
        dir: &Path,
        addresses: &[std::net::IpAddr],
    ) -> Result<Pki, PkiError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let ca = match read_pair(dir, "ca")? {
            Some(ca) => ca,
            None => {
                let pair = self_signed_ca("ferry-ca")?;
                write_pair(dir, "ca", &pair)?;
                pair
            }
        };
        let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(cert_err)?;
        let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key).map_err(cert_err)?;
        let kept = read_pair(dir, "server")?;
        let server = match kept.filter(|pair| names_addresses(&pair.cert_pem, addresses)) {
            Some(pair) => pair,
            None => {
                let pair = leaf(
                    "kube-apiserver",
                    None,
                    ExtendedKeyUsagePurpose::ServerAuth,
                    serving_names(addresses),
                    &issuer,
                )?;
                write_pair(dir, "server", &pair)?;
                pair
            }
        };
        let admin = match read_pair(dir, "admin")? {
            Some(pair) => pair,
            None => {
                let pair = leaf(
                    "ferry-admin",
                    Some("system:masters"),
                    ExtendedKeyUsagePurpose::ClientAuth,
                    Vec::new(),
                    &issuer,
                )?;
                write_pair(dir, "admin", &pair)?;
                pair
            }
        };
        Ok(Pki { ca, server, admin })
    }

    /// A client certificate signed by the CA, for users and components: CN = user name,
    /// O = group (rcgen's distinguished names hold one value per attribute).
    pub fn client_cert(&self, user: &str, group: Option<&str>) -> Result<CertPair, PkiError> {
        let ca_key = KeyPair::from_pem(&self.ca.key_pem).map_err(cert_err)?;
        let issuer = Issuer::from_ca_cert_pem(&self.ca.cert_pem, ca_key).map_err(cert_err)?;
        leaf(
            user,
            group,
            ExtendedKeyUsagePurpose::ClientAuth,
            Vec::new(),
            &issuer,
        )
    }

    /// The TLS configuration of the API server: its certificate followed by the CA's, and client certificates
    /// verified against the CA when offered (requests without one may still carry a token, or
    /// are anonymous and get 401).
    pub fn server_tls(&self) -> Result<rustls::ServerConfig, PkiError> {
        // The CA follows the leaf, so a joining agent that knows only the CA's hash (from the
        // join token) can find it and pin it, as k3s's agents do.
        let mut chain = parse_certs(&self.server.cert_pem)?;
        chain.extend(parse_certs(&self.ca.cert_pem)?);
        ferry_client::tls::server_config(chain, parse_key(&self.server.key_pem)?, &self.ca.cert_pem)
            .map_err(cert_err)
    }

    /// A TLS client configuration trusting the cluster CA and presenting `client`'s
    /// certificate (for ferry's own clients: benchmarks, tests).
    pub fn client_tls(&self, client: &CertPair) -> Result<rustls::ClientConfig, PkiError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in parse_certs(&self.ca.cert_pem)? {
            roots.add(cert).map_err(cert_err)?;
        }
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(cert_err)?
            .with_root_certificates(roots)
            .with_client_auth_cert(parse_certs(&client.cert_pem)?, parse_key(&client.key_pem)?)
            .map_err(cert_err)
    }

    /// The cluster CA certificate (PEM), as published in `kube-root-ca.crt`.
    pub fn ca_pem(&self) -> String {
        self.ca.cert_pem.clone()
    }
}

/// The front proxy's credentials, as kubeadm makes them: its own CA (upstream's
/// `--requestheader-client-ca-file`, which extension API servers trust for requests the
/// aggregator proxies) and the `front-proxy-client` certificate the aggregator presents
/// (`--proxy-client-cert-file`), kept under `<data-dir>/tls` as `front-proxy-ca.*` and
/// `front-proxy-client.*`.
#[derive(Clone, Debug)]
pub struct FrontProxy {
    /// The front-proxy CA.
    pub ca: CertPair,
    /// The client certificate the aggregator presents (CN=front-proxy-client).
    pub client: CertPair,
}

/// The front proxy's client certificate's common name (upstream's
/// `--requestheader-allowed-names`).
pub const FRONT_PROXY_CLIENT: &str = "front-proxy-client";

impl FrontProxy {
    /// Loads the front proxy's certificates from `dir`, creating any that are missing.
    pub fn load_or_create(dir: &Path) -> Result<FrontProxy, PkiError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let ca = match read_pair(dir, "front-proxy-ca")? {
            Some(ca) => ca,
            None => {
                let pair = self_signed_ca("front-proxy-ca")?;
                write_pair(dir, "front-proxy-ca", &pair)?;
                pair
            }
        };
        let client = match read_pair(dir, FRONT_PROXY_CLIENT)? {
            Some(pair) => pair,
            None => {
                let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(cert_err)?;
                let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key).map_err(cert_err)?;
                let pair = leaf(
                    FRONT_PROXY_CLIENT,
                    None,
                    ExtendedKeyUsagePurpose::ClientAuth,
                    Vec::new(),
                    &issuer,
                )?;
                write_pair(dir, FRONT_PROXY_CLIENT, &pair)?;
                pair
            }
        };
        Ok(FrontProxy { ca, client })
    }

    /// The client certificate (followed by nothing: extension servers hold the CA) and its
    /// key, for a TLS client configuration.
    pub fn client_identity(
        &self,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), PkiError> {
        Ok((
            parse_certs(&self.client.cert_pem)?,
            parse_key(&self.client.key_pem)?,
        ))
    }
}

/// A self-signed CA named `common_name`.
fn self_signed_ca(common_name: &str) -> Result<CertPair, PkiError> {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2045, 1, 1);
    let key = KeyPair::generate().map_err(cert_err)?;
    let cert = params.self_signed(&key).map_err(cert_err)?;
    Ok(CertPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn read_pair(dir: &Path, name: &str) -> Result<Option<CertPair>, PkiError> {
    let cert_path = dir.join(format!("{name}.crt"));
    let key_path = dir.join(format!("{name}.key"));
    if !cert_path.exists() || !key_path.exists() {
        return Ok(None);
    }
    Ok(Some(CertPair {
        cert_pem: fs::read_to_string(&cert_path).map_err(io(&cert_path))?,
        key_pem: fs::read_to_string(&key_path).map_err(io(&key_path))?,
    }))
}

fn write_pair(dir: &Path, name: &str, pair: &CertPair) -> Result<(), PkiError> {
    let cert_path = dir.join(format!("{name}.crt"));
    let key_path = dir.join(format!("{name}.key"));
    fs::write(&cert_path, &pair.cert_pem).map_err(io(&cert_path))?;
    write_private(&key_path, &pair.key_pem)
}

/// Writes a file only its owner can read.
pub fn write_private(path: &Path, contents: &str) -> Result<(), PkiError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    file.write_all(contents.as_bytes()).map_err(io(path))
}

fn parse_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    ferry_client::tls::certificates(pem).map_err(cert_err)
}

fn parse_key(pem: &str) -> Result<PrivateKeyDer<'static>, PkiError> {
    ferry_client::tls::private_key(pem).map_err(cert_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_addresses_from_the_fib() {
        let fib = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n     +-- 10.0.2.0/24 2 0 2\n        |-- 10.0.2.15\n           /32 host LOCAL\n  +-- 127.0.0.0/8 2 0 2\n     |-- 127.0.0.1\n        /32 host LOCAL\nLocal:\n        |-- 10.0.2.15\n           /32 host LOCAL\n";
        assert_eq!(
            local_ipv4_addresses(fib),
            vec![std::net::Ipv4Addr::new(10, 0, 2, 15)]
        );
    }

    #[test]
    fn the_front_proxy_client_is_signed_by_its_own_ca() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = FrontProxy::load_or_create(dir.path()).expect("create");
        let again = FrontProxy::load_or_create(dir.path()).expect("load");
        assert_eq!(first.client.cert_pem, again.client.cert_pem);
        let der = parse_certs(&first.client.cert_pem).expect("pem");
        let (_, cert) = x509_parser::parse_x509_certificate(&der[0]).expect("x509");
        let names: Vec<_> = cert
            .subject()
            .iter_common_name()
            .filter_map(|n| n.as_str().ok())
            .collect();
        assert_eq!(names, vec![FRONT_PROXY_CLIENT]);
        let ca = parse_certs(&first.ca.cert_pem).expect("ca");
        let (_, ca) = x509_parser::parse_x509_certificate(&ca[0]).expect("x509");
        assert_eq!(cert.issuer(), ca.subject());
        first.client_identity().expect("identity");
    }

    #[test]
    fn certificates_are_made_once_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = Pki::load_or_create(dir.path()).expect("create");
        let second = Pki::load_or_create(dir.path()).expect("load");
        assert_eq!(first.ca.cert_pem, second.ca.cert_pem);
        assert_eq!(first.admin.cert_pem, second.admin.cert_pem);
        first.server_tls().expect("a usable TLS config");
        let der = parse_certs(&first.admin.cert_pem).expect("pem");
        let (_, cert) = x509_parser::parse_x509_certificate(&der[0]).expect("x509");
        let orgs: Vec<_> = cert
            .subject()
            .iter_organization()
            .filter_map(|o| o.as_str().ok())
            .collect();
        assert_eq!(orgs, vec!["system:masters"]);
    }

    #[test]
    fn the_serving_certificate_follows_the_listen_address() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = Pki::load_or_create(dir.path()).expect("create");
        let other: std::net::IpAddr = [127, 0, 0, 3].into();
        assert!(names_addresses(
            &first.server.cert_pem,
            &[[127, 0, 0, 1].into()]
        ));
        assert!(!names_addresses(&first.server.cert_pem, &[other]));
        let moved = Pki::load_or_create_serving(dir.path(), &[other]).expect("reissue");
        assert!(names_addresses(&moved.server.cert_pem, &[other]));
        assert_eq!(moved.ca.cert_pem, first.ca.cert_pem);
        let again = Pki::load_or_create_serving(dir.path(), &[other]).expect("load");
        assert_eq!(again.server.cert_pem, moved.server.cert_pem);
    }
}
