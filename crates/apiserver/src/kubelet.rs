//! The API server as a client of the kubelets (upstream's `--kubelet-client-certificate` and
//! `--kubelet-certificate-authority`): where a node's kubelet listens, from its Node object —
//! the address by upstream's preferred types and `status.daemonEndpoints.kubeletEndpoint.Port`
//! — and a TLS connection to it that verifies the kubelet's serving certificate against the
//! cluster CA and presents the API server's client certificate.

use std::sync::Arc;

use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::status::ApiError;

/// The user name of the API server's client certificate for kubelets (upstream's kubeadm
/// names it so; its group `system:masters` lets the kubelets' SubjectAccessReviews allow it).
pub const KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";

/// The address types tried in order (upstream's `--kubelet-preferred-address-types`, with the
/// host name last: it need not resolve).
const PREFERRED_ADDRESS_TYPES: &[&str] = &[
    "InternalIP",
    "ExternalIP",
    "InternalDNS",
    "ExternalDNS",
    "Hostname",
];

/// Where a node's kubelet listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Its address (IP or name).
    pub host: String,
    /// Its port.
    pub port: u16,
}

impl Location {
    /// From a Node object, or why not: upstream's wording when the node has no address.
    pub fn of(node: &Value) -> Result<Location, ApiError> {
        let name = node
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let addresses = node
            .pointer("/status/addresses")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let host = PREFERRED_ADDRESS_TYPES
            .iter()
            .find_map(|kind| {
                addresses.iter().find_map(|a| {
                    (a.get("type").and_then(Value::as_str) == Some(kind))
                        .then(|| a.get("address").and_then(Value::as_str))
                        .flatten()
                        .filter(|s| !s.is_empty())
                })
            })
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "no preferred addresses found; known addresses: [] (node {name})"
                ))
            })?;
        let port = node
            .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .unwrap_or(10250);
        Ok(Location {
            host: host.to_string(),
            port,
        })
    }

    /// `host:port`, with IPv6 hosts bracketed.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Connects to kubelets.
pub struct KubeletClient {
    tls: Arc<rustls::ClientConfig>,
}

impl KubeletClient {
    /// A client with `tls`: the cluster CA as its roots, the API server's kubelet client
    /// certificate.
    pub fn new(tls: rustls::ClientConfig) -> KubeletClient {
        KubeletClient { tls: Arc::new(tls) }
    }

    /// A TLS connection to the kubelet at `location`; failures are upstream's 500 wording of a
    /// failed dial.
    pub async fn connect(&self, location: &Location) -> Result<TlsStream<TcpStream>, ApiError> {
        let authority = location.authority();
        let failed = |e: &dyn std::fmt::Display| {
            ApiError::internal_message(format!("error dialing backend: dial tcp {authority}: {e}"))
        };
        let name = rustls::pki_types::ServerName::try_from(location.host.clone())
            .map_err(|e| failed(&e))?;
        let connect = async {
            let tcp = TcpStream::connect((location.host.as_str(), location.port))
                .await
                .map_err(|e| failed(&e))?;
            tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| failed(&e))
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), connect)
            .await
            .map_err(|_| failed(&"i/o timeout"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn location_prefers_internal_ips_and_the_published_port() {
        let node = json!({"metadata": {"name": "n1"}, "status": {
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 41234}}}});
        let location = Location::of(&node).expect("location");
        assert_eq!(location.authority(), "10.0.0.1:41234");
        let bare = json!({"metadata": {"name": "n1"}, "status": {"addresses": [{"type": "Hostname", "address": "n1"}]}});
        assert_eq!(
            Location::of(&bare).expect("location").authority(),
            "n1:10250"
        );
        let v6 = json!({"status": {"addresses": [{"type": "InternalIP", "address": "fd00::1"}]}});
        assert_eq!(
            Location::of(&v6).expect("location").authority(),
            "[fd00::1]:10250"
        );
        let none = json!({"metadata": {"name": "n1"}, "status": {}});
        assert_eq!(Location::of(&none).expect_err("no address").code, 400);
    }
}
