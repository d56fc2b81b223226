//! Feature gates: the upstream behaviours an operator may switch with `--feature-gates`
//! (`Name=true,Other=false`), under upstream's names and with kube-apiserver v1.33's defaults.
//! Only the gates ferry implements both ways are known; any other name is refused, as
//! upstream refuses names it does not know.

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
            // Go's strconv.ParseBool.
            let enabled = match value {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
                "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
                _ => {
                    return Err(FeatureGateError::InvalidValue {
                        name: name.to_string(),
                        value: value.to_string(),
                    })
                }
            };
            match name {
                "WatchList" => gates.watch_list = enabled,
                _ => return Err(FeatureGateError::Unrecognized(name.to_string())),
            }
        }
        Ok(gates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
