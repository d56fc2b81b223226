//! `KubeSchedulerConfiguration` (kubescheduler.config.k8s.io/v1): the fields ferry reads, with
//! upstream's defaults. Unknown fields are ignored.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// The API version accepted.
pub const API_VERSION: &str = "kubescheduler.config.k8s.io/v1";
/// The kind accepted.
pub const KIND: &str = "KubeSchedulerConfiguration";
/// The default profile's scheduler name.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

/// Errors of loading a configuration or building profiles from it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid YAML/JSON for this type.
    #[error("parsing {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// A plugin name not in the registry.
    #[error("unknown plugin {0:?}")]
    UnknownPlugin(String),
    /// Anything else wrong (apiVersion, kind, extension points, args).
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// A plugin named in an extension point, with its score weight.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct PluginRef {
    /// The plugin's name (`*` in `disabled`: all default plugins).
    pub name: String,
    /// Score weight (0: the default).
    #[serde(default)]
    pub weight: i64,
}

/// Enabled and disabled plugins of one extension point.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PluginSet {
    /// Added (after the defaults), or re-weighted if already a default.
    #[serde(default)]
    pub enabled: Vec<PluginRef>,
    /// Removed from the defaults.
    #[serde(default)]
    pub disabled: Vec<PluginRef>,
}

/// The plugins of a profile per extension point.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct Plugins {
    /// Plugins enabled at every extension point they implement.
    #[serde(default)]
    pub multi_point: PluginSet,
    #[serde(default)]
    pub pre_enqueue: PluginSet,
    #[serde(default)]
    pub queue_sort: PluginSet,
    #[serde(default)]
    pub pre_filter: PluginSet,
    #[serde(default)]
    pub filter: PluginSet,
    #[serde(default)]
    pub post_filter: PluginSet,
    #[serde(default)]
    pub pre_score: PluginSet,
    #[serde(default)]
    pub score: PluginSet,
    #[serde(default)]
    pub reserve: PluginSet,
    #[serde(default)]
    pub permit: PluginSet,
    #[serde(default)]
    pub pre_bind: PluginSet,
    #[serde(default)]
    pub bind: PluginSet,
    #[serde(default)]
    pub post_bind: PluginSet,
}

/// Args for one plugin.
#[derive(Clone, Debug, Deserialize)]
pub struct PluginConfig {
    /// The plugin.
    pub name: String,
    /// Its args object (the plugin parses it).
    #[serde(default)]
    pub args: Option<serde_json::Value>,
}

/// One scheduling profile: a scheduler name and its plugins.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// Pods with this `spec.schedulerName` use the profile.
    #[serde(default = "default_scheduler_name")]
    pub scheduler_name: String,
    /// Overrides the global percentage for this profile.
    #[serde(default)]
    pub percentage_of_nodes_to_score: Option<i32>,
    /// Plugins per extension point (merged over the defaults).
    #[serde(default)]
    pub plugins: Plugins,
    /// Args per plugin.
    #[serde(default)]
    pub plugin_config: Vec<PluginConfig>,
}

fn default_scheduler_name() -> String {
    DEFAULT_SCHEDULER_NAME.to_string()
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            scheduler_name: default_scheduler_name(),
            percentage_of_nodes_to_score: None,
            plugins: Plugins::default(),
            plugin_config: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    parallelism: Option<usize>,
    #[serde(default)]
    percentage_of_nodes_to_score: Option<i32>,
    #[serde(default)]
    pod_initial_backoff_seconds: Option<u64>,
    #[serde(default)]
    pod_max_backoff_seconds: Option<u64>,
    #[serde(default)]
    profiles: Vec<Profile>,
}

/// The scheduler's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The profiles (at least one).
    pub profiles: Vec<Profile>,
    /// Threads used to filter and score nodes (upstream default 16; capped by the machine).
    pub parallelism: usize,
    /// Percentage of nodes to find feasible before stopping; 0 is adaptive (50% - nodes/125,
    /// at least 5%, at least 100 nodes).
    pub percentage_of_nodes_to_score: i32,
    /// Backoff after a pod's first failure (default 1 s).
    pub pod_initial_backoff: Duration,
    /// Backoff cap (default 10 s).
    pub pod_max_backoff: Duration,
    /// How long an assumed pod waits for the watch to confirm it after its bind (default 30 s).
    pub assumed_pod_ttl: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            profiles: vec![Profile::default()],
            parallelism: 16,
            percentage_of_nodes_to_score: 0,
            pod_initial_backoff: Duration::from_secs(1),
            pod_max_backoff: Duration::from_secs(10),
            assumed_pod_ttl: Duration::from_secs(30),
        }
    }
}

impl Config {
    /// Parses a configuration document (YAML or JSON).
    pub fn parse(text: &str, path: &str) -> Result<Config, ConfigError> {
        let raw: Raw = serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        if raw.api_version.as_deref().is_some_and(|v| v != API_VERSION) {
            return Err(ConfigError::Invalid(format!(
                "apiVersion must be {API_VERSION}, got {:?}",
                raw.api_version
            )));
        }
        if raw.kind.as_deref().is_some_and(|k| k != KIND) {
            return Err(ConfigError::Invalid(format!(
                "kind must be {KIND}, got {:?}",
                raw.kind
            )));
        }
        let mut config = Config::default();
        if !raw.profiles.is_empty() {
            config.profiles = raw.profiles;
        }
        let mut names = std::collections::HashSet::new();
        for profile in &config.profiles {
            if !names.insert(profile.scheduler_name.clone()) {
                return Err(ConfigError::Invalid(format!(
                    "duplicate profile {:?}",
                    profile.scheduler_name
                )));
            }
        }
        if let Some(p) = raw.parallelism {
            if p == 0 {
                return Err(ConfigError::Invalid("parallelism must be positive".into()));
            }
            config.parallelism = p;
        }
        if let Some(p) = raw.percentage_of_nodes_to_score {
            if !(0..=100).contains(&p) {
                return Err(ConfigError::Invalid(format!(
                    "percentageOfNodesToScore must be in 0..=100, got {p}"
                )));
            }
            config.percentage_of_nodes_to_score = p;
        }
        if let Some(s) = raw.pod_initial_backoff_seconds {
            config.pod_initial_backoff = Duration::from_secs(s);
        }
        if let Some(s) = raw.pod_max_backoff_seconds {
            config.pod_max_backoff = Duration::from_secs(s);
        }
        if config.pod_max_backoff < config.pod_initial_backoff {
            return Err(ConfigError::Invalid(
                "podMaxBackoffSeconds is below podInitialBackoffSeconds".into(),
            ));
        }
        Ok(config)
    }
}

/// Loads a KubeSchedulerConfiguration (kubescheduler.config.k8s.io/v1, YAML or JSON) or defaults.
pub fn load_config(path: Option<&Path>) -> Result<Config, ConfigError> {
    let Some(path) = path else {
        return Ok(Config::default());
    };
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: shown.clone(),
        source,
    })?;
    Config::parse(&text, &shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_a_file() {
        let config = load_config(None).expect("defaults");
        assert_eq!(config.profiles.len(), 1);
        assert_eq!(config.profiles[0].scheduler_name, "default-scheduler");
        assert_eq!(config.pod_initial_backoff, Duration::from_secs(1));
    }

    #[test]
    fn parses_yaml_and_json() {
        let yaml = r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
percentageOfNodesToScore: 30
podMaxBackoffSeconds: 20
profiles:
- schedulerName: default-scheduler
- schedulerName: bin-packing
  plugins:
    score:
      disabled: [{name: NodeResourcesBalancedAllocation}]
      enabled: [{name: NodeResourcesFit, weight: 5}]
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy: {type: MostAllocated}
"#;
        let config = Config::parse(yaml, "f").expect("parse");
        assert_eq!(config.percentage_of_nodes_to_score, 30);
        assert_eq!(config.pod_max_backoff, Duration::from_secs(20));
        assert_eq!(
            config.profiles[1].plugins.score.enabled,
            [PluginRef {
                name: "NodeResourcesFit".into(),
                weight: 5
            }]
        );
        let json = r#"{"apiVersion":"kubescheduler.config.k8s.io/v1","kind":"KubeSchedulerConfiguration","profiles":[{"schedulerName":"x"}]}"#;
        assert_eq!(
            Config::parse(json, "f").expect("json").profiles[0].scheduler_name,
            "x"
        );
        assert!(matches!(
            Config::parse("apiVersion: v2\n", "f"),
            Err(ConfigError::Invalid(_))
        ));
        assert!(matches!(
            Config::parse("profiles: 3\n", "f"),
            Err(ConfigError::Parse { .. })
        ));
    }
}
