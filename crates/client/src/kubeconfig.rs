//! Kubeconfigs as ferry writes them — one cluster, one user authenticated by client
//! certificate, one context, all current — built as `kube::config::Kubeconfig`, so kubectl,
//! kube-rs and every ferry component read the same thing.

use base64::Engine as _;
use kube::config::{
    AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};

/// Where a certificate or key comes from: embedded PEM (`*-data`) or a file beside the
/// kubeconfig (relative paths resolve against its directory).
#[derive(Debug, Clone, Copy)]
pub enum Pem<'a> {
    /// The PEM itself, embedded base64-encoded.
    Data(&'a str),
    /// A file's path.
    File(&'a str),
}

/// The kubeconfig of `user` at `server`, trusting `ca`, authenticated by `cert` and `key`. The
/// cluster and context are named `ferry`.
pub fn kubeconfig(server: &str, ca: Pem<'_>, user: &str, cert: Pem<'_>, key: Pem<'_>) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let (certificate_authority, certificate_authority_data) = match ca {
        Pem::Data(pem) => (None, Some(b64(pem))),
        Pem::File(path) => (Some(path.to_string()), None),
    };
    let mut auth = AuthInfo::default();
    match cert {
        Pem::Data(pem) => auth.client_certificate_data = Some(b64(pem)),
        Pem::File(path) => auth.client_certificate = Some(path.to_string()),
    }
    match key {
        Pem::Data(pem) => auth.client_key_data = Some(b64(pem).into()),
        Pem::File(path) => auth.client_key = Some(path.to_string()),
    }
    let config = Kubeconfig {
        api_version: Some("v1".into()),
        kind: Some("Config".into()),
        clusters: vec![NamedCluster {
            name: "ferry".into(),
            cluster: Some(Cluster {
                server: Some(server.into()),
                certificate_authority,
                certificate_authority_data,
                ..Cluster::default()
            }),
            ..NamedCluster::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: user.into(),
            auth_info: Some(auth),
            ..NamedAuthInfo::default()
        }],
        contexts: vec![NamedContext {
            name: "ferry".into(),
            context: Some(Context {
                cluster: "ferry".into(),
                user: Some(user.into()),
                ..Context::default()
            }),
            ..NamedContext::default()
        }],
        current_context: Some("ferry".into()),
        preferences: Some(Default::default()),
        ..Kubeconfig::default()
    };
    serde_yaml_ng::to_string(&config).unwrap_or_default()
}

/// The CA (PEM) the current context's cluster trusts in the kubeconfig at `path`: embedded, or
/// from its file (relative to the kubeconfig's directory).
pub fn cluster_ca(path: &std::path::Path) -> Result<String, String> {
    let config = Kubeconfig::read_from(path).map_err(|e| e.to_string())?;
    let context = config
        .current_context
        .as_deref()
        .and_then(|name| config.contexts.iter().find(|c| c.name == name))
        .and_then(|c| c.context.as_ref())
        .ok_or("the kubeconfig has no current context")?;
    let cluster = config
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.as_ref())
        .ok_or("the current context's cluster is missing")?;
    if let Some(data) = &cluster.certificate_authority_data {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| format!("certificate-authority-data: {e}"))?;
        return String::from_utf8(bytes).map_err(|e| e.to_string());
    }
    let file = cluster
        .certificate_authority
        .as_deref()
        .ok_or("the cluster names no certificate authority")?;
    let file = path
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join(file);
    std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_and_file_kubeconfigs_read_back() {
        let text = kubeconfig(
            "https://127.0.0.1:6443",
            Pem::Data("CA PEM"),
            "ferry-admin",
            Pem::Data("CERT PEM"),
            Pem::Data("KEY PEM"),
        );
        let parsed = Kubeconfig::from_yaml(&text).expect("kubeconfig");
        assert_eq!(parsed.current_context.as_deref(), Some("ferry"));
        let cluster = parsed.clusters[0].cluster.as_ref().expect("cluster");
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        assert_eq!(
            cluster.certificate_authority_data.as_deref(),
            Some("Q0EgUEVN")
        );
        let user = parsed.auth_infos[0].auth_info.as_ref().expect("user");
        assert_eq!(
            user.client_certificate_data.as_deref(),
            Some("Q0VSVCBQRU0=")
        );
        assert!(text.contains("client-key-data: S0VZIFBFTQ=="), "{text}");
        assert!(
            text.starts_with("preferences: {}\n") || text.contains("\npreferences: {}\n"),
            "{text}"
        );

        let files = kubeconfig(
            "https://n:6443",
            Pem::File("ca.crt"),
            "system:node:n1",
            Pem::File("node.crt"),
            Pem::File("node.key"),
        );
        let parsed = Kubeconfig::from_yaml(&files).expect("kubeconfig");
        let user = parsed.auth_infos[0].auth_info.as_ref().expect("user");
        assert_eq!(user.client_key.as_deref(), Some("node.key"));
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("embedded"), &text).expect("write");
        assert_eq!(
            cluster_ca(&dir.path().join("embedded")).as_deref(),
            Ok("CA PEM")
        );
        std::fs::write(dir.path().join("files"), &files).expect("write");
        std::fs::write(dir.path().join("ca.crt"), "FILE CA").expect("write");
        assert_eq!(
            cluster_ca(&dir.path().join("files")).as_deref(),
            Ok("FILE CA")
        );
        assert_eq!(
            parsed.contexts[0]
                .context
                .as_ref()
                .and_then(|c| c.user.as_deref()),
            Some("system:node:n1")
        );
    }
}
