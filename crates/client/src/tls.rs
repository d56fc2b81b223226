//! TLS pieces the cluster's HTTPS servers share (the API server's and the kubelet's): PEM to
//! rustls types, a server configuration that verifies client certificates of the cluster CA
//! when offered, and IP addresses as X.509 names carry them.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The `CERTIFICATE` blocks of `pem`, in order; an error if there is none.
pub fn certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = pem::parse_many(pem)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| CertificateDer::from(b.into_contents()))
        .collect();
    if certs.is_empty() {
        return Err("no certificate in PEM".into());
    }
    Ok(certs)
}

/// The private key in `pem` (PKCS#8, SEC1 or PKCS#1).
pub fn private_key(pem: &str) -> Result<PrivateKeyDer<'static>, String> {
    let block = pem::parse(pem).map_err(|e| e.to_string())?;
    PrivateKeyDer::try_from(block.into_contents()).map_err(|e| e.to_string())
}

/// A server presenting `chain` with `key`, verifying client certificates against `ca_pem` when
/// they are offered (requests without one may still carry a token, or get 401), HTTP/1.1.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    ca_pem: &str,
) -> Result<rustls::ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(ca_pem)? {
        roots.add(cert).map_err(|e| e.to_string())?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| e.to_string())?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The address of an `iPAddress` subject alternative name (4 or 16 bytes).
pub fn san_ip(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn san_addresses_by_length() {
        assert_eq!(
            san_ip(&[10, 0, 0, 1]),
            Some("10.0.0.1".parse().expect("ip"))
        );
        let v6: IpAddr = "fd00::1".parse().expect("ip");
        let IpAddr::V6(octets) = v6 else {
            unreachable!()
        };
        assert_eq!(san_ip(&octets.octets()), Some(v6));
        assert_eq!(san_ip(&[1, 2, 3]), None);
    }

    #[test]
    fn a_pem_without_certificates_is_refused() {
        assert!(certificates("").is_err());
        assert!(private_key("not pem").is_err());
    }
}
