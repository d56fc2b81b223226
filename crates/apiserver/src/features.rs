//! Feature gates: the upstream behaviours an operator may switch with `--feature-gates`
//! (`Name=true,Other=false`), under upstream's names and with kube-apiserver v1.33's defaults.
//! Only the gates ferry implements both ways are known; any other name is refused, as
//! upstream refuses names it does not know.
//!
//! [`RuntimeConfig`] is `--runtime-config`: the API versions served beyond the default ones
//! (`admissionregistration.k8s.io/v1alpha1=true`, or `api/alpha=true` for all of them).

use std::str::FromStr;

/// The gates ferry knows; `Default` is upstream v1.33's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeatureGates {
    /// `WatchList` (KEP-3157): watches with `sendInitialEvents`, i.e. streaming lists. Beta in
    /// 1.33 and off by default there (it was on in 1.32 and is on again in 1.34): without it a
    /// watch asking for initial events is refused with 422.
    pub watch_list: bool,
}

/// A `--feature-gates` value ferry cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeatureGateError {
    /// A gate ferry does not know (or cannot switch).
    #[error("unrecognized feature gate: {0}")]
    Unrecognized(String),
    /// `Name` without `=value`.
    #[error("missing bool value for {0}")]
    MissingValue(String),
    /// A value that is not a boolean.
    #[error("invalid value of {name}={value}, err: strconv.ParseBool: parsing {value:?}: invalid syntax")]
    InvalidValue {
        /// The gate.
        name: String,
        /// What was given for it.
        value: String,
    },
}

impl FromStr for FeatureGates {
    type Err = FeatureGateError;

    /// Upstream's `--feature-gates` syntax, over the defaults; an empty value changes nothing.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut gates = FeatureGates::default();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, value)) = pair.split_once('=') else {
                return Err(FeatureGateError::MissingValue(pair.to_string()));
            };
            let (name, value) = (name.trim(), value.trim());
            let enabled = parse_bool(value).ok_or_else(|| FeatureGateError::InvalidValue {
                name: name.to_string(),
                value: value.to_string(),
            })?;
            match name {
                "WatchList" => gates.watch_list = enabled,
                _ => return Err(FeatureGateError::Unrecognized(name.to_string())),
            }
        }
        Ok(gates)
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// `--runtime-config`: the optional API versions to serve (see
/// [`ferry_api::registry::OPTIONAL_RESOURCES`]), as `group/version` keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// The optional group-versions turned on.
    pub enabled: Vec<String>,
}

/// A `--runtime-config` value ferry cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeConfigError {
    /// A value that is not a boolean.
    #[error("invalid value of {key}: {value}, err: strconv.ParseBool: parsing {value:?}: invalid syntax")]
    InvalidValue {
        /// The key.
        key: String,
        /// What was given for it.
        value: String,
    },
    /// A group-version ferry does not have.
    #[error("unknown api groups {0}")]
    Unknown(String),
    /// Turning off an API served by default, which ferry cannot do.
    #[error("ferry cannot turn off {0}: only optional versions ({optional}) can be switched", optional = ferry_api::registry::optional_versions().join(", "))]
    CannotDisable(String),
}

impl FromStr for RuntimeConfig {
    type Err = RuntimeConfigError;

    /// Upstream's syntax: `key[=bool]` pairs, comma-separated, a key alone meaning `true`;
    /// keys are `group/version` (`v1` for core) or `api/all`, `api/alpha`, `api/beta`,
    /// `api/ga`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let optional = ferry_api::registry::optional_versions();
        let mut enabled: Vec<String> = Vec::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, "true"));
            let (key, value) = (key.trim(), value.trim());
            let on = parse_bool(value).ok_or_else(|| RuntimeConfigError::InvalidValue {
                key: key.to_string(),
                value: value.to_string(),
            })?;
            let keys: Vec<String> = match key {
                "api/all" | "api/alpha" => optional.clone(),
                "api/beta" => Vec::new(),
                "api/ga" if on => Vec::new(),
                "api/ga" => return Err(RuntimeConfigError::CannotDisable(key.to_string())),
                _ if optional.iter().any(|o| o == key) => vec![key.to_string()],
                _ => {
                    let (group, version) = key.rsplit_once('/').unwrap_or(("", key));
                    let served = ferry_api::registry::RESOURCES
                        .iter()
                        .any(|r| r.group == group && r.version == version);
                    if !served {
                        return Err(RuntimeConfigError::Unknown(key.to_string()));
                    }
                    if !on {
                        return Err(RuntimeConfigError::CannotDisable(key.to_string()));
                    }
                    Vec::new()
                }
            };
            for key in keys {
                enabled.retain(|k| *k != key);
                if on {
                    enabled.push(key);
                }
            }
        }
        Ok(RuntimeConfig { enabled })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_config_turns_optional_versions_on() {
        let parse = |text: &str| text.parse::<RuntimeConfig>();
        let map = "admissionregistration.k8s.io/v1alpha1".to_string();
        assert_eq!(parse("").map(|c| c.enabled), Ok(vec![]));
        for on in [
            "admissionregistration.k8s.io/v1alpha1=true",
            "admissionregistration.k8s.io/v1alpha1",
            "api/all=true",
            "api/alpha=true,apps/v1=true",
        ] {
            assert_eq!(parse(on).map(|c| c.enabled), Ok(vec![map.clone()]), "{on}");
        }
        assert_eq!(
            parse("api/all=true,admissionregistration.k8s.io/v1alpha1=false").map(|c| c.enabled),
            Ok(vec![])
        );
        assert_eq!(
            parse("batch/v2=true"),
            Err(RuntimeConfigError::Unknown("batch/v2".into()))
        );
        assert!(matches!(
            parse("apps/v1=false"),
            Err(RuntimeConfigError::CannotDisable(_))
        ));
        assert!(matches!(
            parse("api/all=yes"),
            Err(RuntimeConfigError::InvalidValue { .. })
        ));
    }

    #[test]
    fn watch_list_is_off_by_default_as_in_1_33() {
        assert!(!FeatureGates::default().watch_list);
        assert_eq!(
            "".parse::<FeatureGates>().expect("empty"),
            FeatureGates::default()
        );
    }

    #[test]
    fn gates_are_read_as_upstream_writes_them() {
        assert!(
            "WatchList=true"
                .parse::<FeatureGates>()
                .expect("on")
                .watch_list
        );
        assert!(
            !" WatchList=true , WatchList=false"
                .parse::<FeatureGates>()
                .expect("last wins")
                .watch_list
        );
        assert_eq!(
            "WatchList".parse::<FeatureGates>(),
            Err(FeatureGateError::MissingValue("WatchList".into()))
        );
        assert_eq!(
            "WatchList=yes".parse::<FeatureGates>(),
            Err(FeatureGateError::InvalidValue {
                name: "WatchList".into(),
                value: "yes".into()
            })
        );
        assert_eq!(
            "NoSuchGate=true"
                .parse::<FeatureGates>()
                .map_err(|e| e.to_string()),
            Err("unrecognized feature gate: NoSuchGate".into())
        );
    }
}
