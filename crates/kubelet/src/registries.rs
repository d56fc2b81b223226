//! Registry mirrors and settings in k3s's `registries.yaml` format, turned into what the node's
//! containerd reads: a `hosts.toml` per registry under its `config_path` (mirrors as hosts
//! tried before the registry itself, with their TLS settings), and credentials in its CRI
//! registry `configs` (the one place containerd 1.6 takes them with `config_path`).
//!
//! ```yaml
//! mirrors:
//!   docker.io:
//!     endpoint: ["http://127.0.0.1:5000"]
//! configs:
//!   "registry.example.com:5000":
//!     auth: {username: me, password: secret}
//!     tls: {ca_file: /etc/ssl/ca.pem, insecure_skip_verify: false}
//! ```
//!
//! Differences from k3s: `rewrite` rules need k3s's patched containerd and are refused
//! ([`Registries::unsupported`] says so), and the `"*"` wildcard mirror needs containerd ≥ 1.7's
//! `_default` host directory (Debian 12 ships 1.6), so it is refused too.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::containerd::toml_str;

/// The parsed file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registries {
    /// Mirrors per registry host (`docker.io`, `registry.k8s.io`, `host:port`).
    #[serde(default)]
    pub mirrors: BTreeMap<String, Mirror>,
    /// Authentication and TLS per registry or mirror host.
    #[serde(default)]
    pub configs: BTreeMap<String, RegistryConfig>,
}

/// A registry's mirrors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    /// Endpoint URLs, tried in order before the registry itself.
    #[serde(default)]
    pub endpoint: Vec<String>,
    /// Repository rewrites (k3s's containerd only).
    #[serde(default)]
    pub rewrite: BTreeMap<String, String>,
}

/// A host's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Credentials.
    #[serde(default)]
    pub auth: Option<Auth>,
    /// TLS.
    #[serde(default)]
    pub tls: Option<Tls>,
}

/// Registry credentials, as CRI's `AuthConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// User name.
    #[serde(default)]
    pub username: String,
    /// Password.
    #[serde(default)]
    pub password: String,
    /// `base64(user:password)`.
    #[serde(default)]
    pub auth: String,
    /// An identity token.
    #[serde(default)]
    pub identitytoken: String,
}

/// TLS settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// A client certificate (PEM file).
    #[serde(default)]
    pub cert_file: String,
    /// Its key.
    #[serde(default)]
    pub key_file: String,
    /// A CA to trust (PEM file).
    #[serde(default)]
    pub ca_file: String,
    /// Do not verify the server's certificate.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// Errors reading the file.
#[derive(Debug, thiserror::Error)]
pub enum RegistriesError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// It is not the format.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        source: serde_yaml_ng::Error,
    },
    /// It asks for something this containerd cannot do.
    #[error("{path}: {0}", path = .1)]
    Unsupported(String, String),
}

/// The registry a host name stands for when it is the default (`docker.io`'s API lives
/// elsewhere).
fn server_url(host: &str) -> String {
    match host {
        "docker.io" => "https://registry-1.docker.io".to_string(),
        other => format!("https://{other}"),
    }
}

/// The `host[:port]` of an endpoint URL.
fn endpoint_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest)
}

impl Registries {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Registries, RegistriesError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| RegistriesError::Io {
            path: shown.clone(),
            source,
        })?;
        let registries: Registries =
            serde_yaml_ng::from_str(&text).map_err(|source| RegistriesError::Parse {
                path: shown.clone(),
                source,
            })?;
        if let Some(why) = registries.unsupported() {
            return Err(RegistriesError::Unsupported(why, shown));
        }
        Ok(registries)
    }

    /// What this containerd cannot do of the file, if anything.
    pub fn unsupported(&self) -> Option<String> {
        if let Some((host, _)) = self.mirrors.iter().find(|(_, m)| !m.rewrite.is_empty()) {
            return Some(format!(
                "mirrors.{host}.rewrite needs k3s's patched containerd; Debian's containerd has no rewrites"
            ));
        }
        if self.mirrors.contains_key("*") {
            return Some(
                "the \"*\" mirror needs containerd 1.7 or later (Debian 12 ships 1.6); name each registry"
                    .to_string(),
            );
        }
        None
    }

    /// The TLS lines of a `hosts.toml` section for `host`'s settings.
    fn tls_lines(&self, host: &str, indent: &str) -> String {
        let Some(tls) = self.configs.get(host).and_then(|c| c.tls.as_ref()) else {
            return String::new();
        };
        let mut out = String::new();
        if !tls.ca_file.is_empty() {
            out.push_str(&format!("{indent}ca = {}\n", toml_str(&tls.ca_file)));
        }
        if !tls.cert_file.is_empty() {
            out.push_str(&format!(
                "{indent}client = [[{}, {}]]\n",
                toml_str(&tls.cert_file),
                toml_str(&tls.key_file)
            ));
        }
        if tls.insecure_skip_verify {
            out.push_str(&format!("{indent}skip_verify = true\n"));
        }
        out
    }

    /// `(registry host, hosts.toml)` for every mirrored or configured registry: the mirrors
    /// first, in order, then the registry itself as `server` (with its own settings).
    pub fn hosts_files(&self) -> BTreeMap<String, String> {
        let mut files = BTreeMap::new();
        let mut hosts: Vec<&String> = self.mirrors.keys().collect();
        hosts.extend(
            self.configs
                .keys()
                .filter(|h| !self.mirrors.contains_key(*h)),
        );
        for host in hosts {
            let mut text = format!("server = {}\n", toml_str(&server_url(host)));
            text.push_str(&self.tls_lines(host, ""));
            for endpoint in self
                .mirrors
                .get(host)
                .map(|m| &m.endpoint)
                .into_iter()
                .flatten()
            {
                let url = if endpoint.contains("://") {
                    endpoint.clone()
                } else {
                    format!("https://{endpoint}")
                };
                text.push_str(&format!(
                    "\n[host.{}]\n  capabilities = [\"pull\", \"resolve\"]\n",
                    toml_str(&url)
                ));
                text.push_str(&self.tls_lines(endpoint_host(&url), "  "));
            }
            files.insert(host.clone(), text);
        }
        files
    }

    /// The CRI plugin's `registry.configs."<host>".auth` tables for hosts with credentials.
    pub fn auth_toml(&self, cri_table: &str) -> String {
        let mut out = String::new();
        for (host, config) in &self.configs {
            let Some(auth) = &config.auth else { continue };
            out.push_str(&format!(
                "\n[{cri_table}.registry.configs.{}.auth]\n",
                toml_str(host)
            ));
            for (key, value) in [
                ("username", &auth.username),
                ("password", &auth.password),
                ("auth", &auth.auth),
                ("identitytoken", &auth.identitytoken),
            ] {
                if !value.is_empty() {
                    out.push_str(&format!("  {key} = {}\n", toml_str(value)));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Registries {
        serde_yaml_ng::from_str(yaml).expect("registries")
    }

    #[test]
    fn mirrors_become_hosts_in_order_before_the_registry() {
        let registries = parse(
            r#"
mirrors:
  docker.io:
    endpoint: ["http://127.0.0.1:5000", "mirror.example.com"]
configs:
  mirror.example.com:
    tls: {ca_file: /etc/ca.pem, cert_file: /c.pem, key_file: /k.pem}
  registry.example.com:
    tls: {insecure_skip_verify: true}
"#,
        );
        let files = registries.hosts_files();
        assert_eq!(
            files["docker.io"],
            "server = \"https://registry-1.docker.io\"\n\
             \n[host.\"http://127.0.0.1:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n\
             \n[host.\"https://mirror.example.com\"]\n  capabilities = [\"pull\", \"resolve\"]\n\
             \x20 ca = \"/etc/ca.pem\"\n  client = [[\"/c.pem\", \"/k.pem\"]]\n"
        );
        assert_eq!(
            files["registry.example.com"],
            "server = \"https://registry.example.com\"\nskip_verify = true\n"
        );
        assert_eq!(files.len(), 3, "{files:?}");
        assert!(registries.unsupported().is_none());
    }

    #[test]
    fn credentials_go_to_the_cri_configs() {
        let registries = parse(
            r#"
configs:
  "registry.example.com:5000":
    auth: {username: me, password: "se\"cret"}
"#,
        );
        assert_eq!(
            registries.auth_toml("plugins.\"io.containerd.grpc.v1.cri\""),
            "\n[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"registry.example.com:5000\".auth]\n  username = \"me\"\n  password = \"se\\\"cret\"\n"
        );
    }

    #[test]
    fn what_debians_containerd_cannot_do_is_refused() {
        let rewrite = parse(
            "mirrors:\n  docker.io:\n    endpoint: [x]\n    rewrite: {\"^a/(.*)\": \"b/$1\"}\n",
        );
        assert!(rewrite.unsupported().expect("refused").contains("rewrite"));
        let wildcard = parse("mirrors:\n  \"*\":\n    endpoint: [x]\n");
        assert!(wildcard.unsupported().expect("refused").contains("1.7"));
        assert!(
            serde_yaml_ng::from_str::<Registries>("mirrorz: {}\n").is_err(),
            "unknown keys"
        );
    }
}
