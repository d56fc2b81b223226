//! `--admission-control-config-file`: upstream's `AdmissionConfiguration`
//! (`apiserver.config.k8s.io/v1`), which gives plugins their configuration, each inline
//! (`configuration`) or in a file of its own (`path`, relative to the configuration file).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("reading {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A file is not what it should be.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A plugin's configuration is not what the plugin takes.
    #[error("admission plugin {plugin:?}: {message}")]
    Plugin {
        /// The plugin.
        plugin: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AdmissionConfiguration {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    plugins: Vec<PluginEntry>,
}

#[derive(Deserialize)]
struct PluginEntry {
    name: String,
    #[serde(default)]
    path: Option<PathBuf>,
    #[serde(default)]
    configuration: Option<Value>,
}

/// The API groups whose `AdmissionConfiguration` ferry reads.
const API_VERSIONS: &[&str] = &[
    "apiserver.config.k8s.io/v1",
    "apiserver.config.k8s.io/v1alpha1",
    "apiserver.k8s.io/v1alpha1",
];

/// Each plugin's configuration object, by plugin name.
#[derive(Debug, Clone, Default)]
pub struct Configuration {
    plugins: BTreeMap<String, Value>,
}

impl Configuration {
    /// Reads the file at `path` and the plugin files it names.
    pub fn load(path: &Path) -> Result<Configuration, ConfigError> {
        let text = read(path)?;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let file: AdmissionConfiguration =
            serde_yaml_ng::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        if file.kind != "AdmissionConfiguration"
            || !API_VERSIONS.contains(&file.api_version.as_str())
        {
            return Err(invalid(format!(
                "expected kind AdmissionConfiguration of apiserver.config.k8s.io/v1, got kind {:?} of {:?}",
                file.kind, file.api_version
            )));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let mut plugins = BTreeMap::new();
        for entry in file.plugins {
            let configuration = match (entry.configuration, entry.path) {
                (Some(inline), _) => inline,
                (None, Some(file)) => {
                    let file = base.join(file);
                    let text = read(&file)?;
                    serde_yaml_ng::from_str(&text).map_err(|e| ConfigError::Invalid {
                        path: file,
                        message: e.to_string(),
                    })?
                }
                (None, None) => continue,
            };
            plugins.insert(entry.name, configuration);
        }
        Ok(Configuration { plugins })
    }

    /// The configuration given to the plugin called `name`.
    pub fn plugin(&self, name: &str) -> Option<&Value> {
        self.plugins.get(name)
    }

    /// A configuration with `configuration` for the plugin `name` (for tests and embedders).
    pub fn with_plugin(mut self, name: &str, configuration: Value) -> Configuration {
        self.plugins.insert(name.to_string(), configuration);
        self
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_path_buf(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_configurations_come_inline_or_from_their_own_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("pss.yaml"),
            "apiVersion: pod-security.admission.config.k8s.io/v1\nkind: PodSecurityConfiguration\ndefaults: {enforce: baseline}\n",
        )
        .expect("write");
        let main = dir.path().join("admission.yaml");
        std::fs::write(
            &main,
            "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n- name: PodSecurity\n  path: pss.yaml\n- name: Other\n  configuration: {a: 1}\n",
        )
        .expect("write");
        let config = Configuration::load(&main).expect("load");
        assert_eq!(
            config
                .plugin("PodSecurity")
                .and_then(|c| c.pointer("/defaults/enforce")),
            Some(&Value::from("baseline"))
        );
        assert_eq!(config.plugin("Other"), Some(&serde_json::json!({"a": 1})));
        assert_eq!(config.plugin("LimitRanger"), None);

        std::fs::write(&main, "apiVersion: v1\nkind: ConfigMap\n").expect("write");
        let err = Configuration::load(&main)
            .expect_err("wrong kind")
            .to_string();
        assert!(
            err.contains("expected kind AdmissionConfiguration"),
            "{err}"
        );
    }
}
