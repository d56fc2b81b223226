//! The kubeconfig-format files that name a webhook the server itself calls
//! (`--authentication-token-webhook-config-file`, `--authorization-webhook-config-file`): the
//! first cluster's `server` and certificate authority, and the first user's client
//! certificate, as upstream's `webhook.NewGenericWebhook` reads them. Files named in it are
//! relative to the file.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use rustls::pki_types::pem::PemObject as _;
use serde::Deserialize;

use super::Target;

#[derive(Deserialize)]
struct Kubeconfig {
    #[serde(default)]
    clusters: Vec<NamedCluster>,
    #[serde(default)]
    users: Vec<NamedUser>,
}

#[derive(Deserialize)]
struct NamedCluster {
    #[serde(default)]
    cluster: ClusterFile,
}

#[derive(Deserialize)]
struct NamedUser {
    #[serde(default)]
    user: UserFile,
}

#[derive(Deserialize, Default)]
struct ClusterFile {
    #[serde(default)]
    server: String,
    #[serde(default, rename = "certificate-authority")]
    certificate_authority: Option<String>,
    #[serde(default, rename = "certificate-authority-data")]
    certificate_authority_data: Option<String>,
}

#[derive(Deserialize, Default)]
struct UserFile {
    #[serde(default, rename = "client-certificate")]
    client_certificate: Option<String>,
    #[serde(default, rename = "client-certificate-data")]
    client_certificate_data: Option<String>,
    #[serde(default, rename = "client-key")]
    client_key: Option<String>,
    #[serde(default, rename = "client-key-data")]
    client_key_data: Option<String>,
}

/// PEM from a `-data` field (base64) or a file named relative to the kubeconfig.
fn pem(data: Option<&str>, file: Option<&str>, base: &Path) -> Result<Option<Vec<u8>>, String> {
    if let Some(data) = data {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| format!("invalid base64: {e}"))?;
        return Ok(Some(bytes));
    }
    match file {
        Some(file) => std::fs::read(base.join(file))
            .map(Some)
            .map_err(|e| format!("reading {file}: {e}")),
        None => Ok(None),
    }
}

/// Where the webhook the file at `path` names is, and the TLS configuration to call it with:
/// its certificate authority trusted, the user's client certificate presented.
pub fn load(path: &Path) -> Result<(Target, Arc<rustls::ClientConfig>), String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let config: Kubeconfig = serde_yaml_ng::from_str(&text).map_err(|e| e.to_string())?;
    let base = path.parent().unwrap_or(Path::new("."));
    let cluster = config
        .clusters
        .into_iter()
        .next()
        .map(|c| c.cluster)
        .ok_or("the file names no cluster")?;
    let user = config
        .users
        .into_iter()
        .next()
        .map(|u| u.user)
        .unwrap_or_default();
    let target = Target::plain(&cluster.server)?;
    let ca = pem(
        cluster.certificate_authority_data.as_deref(),
        cluster.certificate_authority.as_deref(),
        base,
    )?
    .ok_or("the cluster has no certificate-authority")?;
    let roots = super::roots_from_pem(&ca).map_err(|e| format!("certificate-authority: {e}"))?;
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let cert = pem(
        user.client_certificate_data.as_deref(),
        user.client_certificate.as_deref(),
        base,
    )?;
    let key = pem(
        user.client_key_data.as_deref(),
        user.client_key.as_deref(),
        base,
    )?;
    let tls = match (cert, key) {
        (Some(cert), Some(key)) => {
            let chain = rustls::pki_types::CertificateDer::pem_slice_iter(&cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("client-certificate: {e}"))?;
            let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(&key)
                .map_err(|e| format!("client-key: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok((target, Arc::new(tls)))
}
