//! Eviction signals and thresholds, and the flags that give them (upstream's
//! `pkg/kubelet/eviction/api` and `ParseThresholdConfig` in `helpers.go`): `--eviction-hard`
//! and `--eviction-soft` as `signal<quantity|percent` lists, `--eviction-soft-grace-period` and
//! `--eviction-minimum-reclaim` as `signal=value` lists, with upstream's error messages.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::machine::{EvictionHard, ThresholdValue};
use crate::quantity::Quantity;

/// A signal the eviction manager watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// `memory.available`: capacity minus the node's working set.
    MemoryAvailable,
    /// `nodefs.available`: free bytes of the kubelet's filesystem.
    NodeFsAvailable,
    /// `nodefs.inodesFree`.
    NodeFsInodesFree,
    /// `imagefs.available`: free bytes of the runtime's image filesystem.
    ImageFsAvailable,
    /// `imagefs.inodesFree`.
    ImageFsInodesFree,
    /// `pid.available`: `pid_max` minus processes.
    PidAvailable,
}

impl Signal {
    /// Every signal, in upstream's order.
    pub const ALL: [Signal; 6] = [
        Signal::MemoryAvailable,
        Signal::NodeFsAvailable,
        Signal::NodeFsInodesFree,
        Signal::ImageFsAvailable,
        Signal::ImageFsInodesFree,
        Signal::PidAvailable,
    ];

    /// The flag's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory.available",
            Signal::NodeFsAvailable => "nodefs.available",
            Signal::NodeFsInodesFree => "nodefs.inodesFree",
            Signal::ImageFsAvailable => "imagefs.available",
            Signal::ImageFsInodesFree => "imagefs.inodesFree",
            Signal::PidAvailable => "pid.available",
        }
    }

    /// The signal a flag names.
    pub fn parse(name: &str) -> Option<Signal> {
        Signal::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The node condition it drives (upstream's `signalToNodeCondition`).
    pub fn node_condition(self) -> NodeCondition {
        match self {
            Signal::MemoryAvailable => NodeCondition::MemoryPressure,
            Signal::PidAvailable => NodeCondition::PidPressure,
            _ => NodeCondition::DiskPressure,
        }
    }

    /// The resource it is short of (upstream's `signalToResource`): in eviction messages.
    pub fn resource(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory",
            Signal::NodeFsAvailable | Signal::ImageFsAvailable => "ephemeral-storage",
            Signal::NodeFsInodesFree | Signal::ImageFsInodesFree => "inodes",
            Signal::PidAvailable => "pids",
        }
    }

    /// Whether a filesystem signal (whose pressure node-level reclaim may relieve).
    pub fn is_disk(self) -> bool {
        self.node_condition() == NodeCondition::DiskPressure
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node condition the eviction manager reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeCondition {
    /// `MemoryPressure`.
    MemoryPressure,
    /// `DiskPressure`.
    DiskPressure,
    /// `PIDPressure`.
    PidPressure,
}

impl NodeCondition {
    /// The condition's type.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeCondition::MemoryPressure => "MemoryPressure",
            NodeCondition::DiskPressure => "DiskPressure",
            NodeCondition::PidPressure => "PIDPressure",
        }
    }
}

/// One threshold: below `value`, the signal is met; a soft one must stay met for
/// `grace_period` (zero for hard ones) before pods are evicted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Threshold {
    /// What is measured.
    pub signal: Signal,
    /// Where it is met.
    pub value: ThresholdValue,
    /// Zero: hard; otherwise how long it must hold.
    pub grace_period: Duration,
    /// Once met, the signal must recover this much beyond `value` before it is no longer met.
    pub min_reclaim: Option<ThresholdValue>,
}

impl Threshold {
    /// A hard threshold.
    pub fn hard(signal: Signal, value: ThresholdValue) -> Threshold {
        Threshold {
            signal,
            value,
            grace_period: Duration::ZERO,
            min_reclaim: None,
        }
    }

    /// Whether it is hard (evicts at once, with the minimum grace period).
    pub fn is_hard(&self) -> bool {
        self.grace_period.is_zero()
    }
}

/// Why the eviction flags are invalid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ThresholdError {
    /// An entry without a known operator.
    #[error("invalid eviction threshold syntax {0:?}, expected <signal><operator><value>")]
    Syntax(String),
    /// A signal not in the list.
    #[error("unsupported eviction signal {0}")]
    UnknownSignal(String),
    /// The same signal twice.
    #[error("found duplicate eviction threshold for signal {0}")]
    Duplicate(String),
    /// A percentage below 0% or above 100%.
    #[error("eviction percentage threshold {0} must be >= 0% and <= 100%: {1}")]
    Percentage(String, String),
    /// A quantity that does not parse, or is not positive.
    #[error("eviction threshold {0} must be positive: {1}")]
    Quantity(String, String),
    /// A soft threshold without a grace period.
    #[error("grace period must be specified for the soft eviction threshold {0}")]
    NoGracePeriod(String),
    /// A grace period for a signal without a soft threshold.
    #[error("grace period specified for signal {0} without a soft eviction threshold")]
    GraceWithoutSoft(String),
    /// A duration that does not parse.
    #[error("invalid duration {0:?}: {1}")]
    Duration(String, String),
}

/// `signal<value` (only `<` is an operator upstream).
fn split_threshold(entry: &str) -> Result<(Signal, &str), ThresholdError> {
    let (name, value) = entry
        .split_once('<')
        .ok_or_else(|| ThresholdError::Syntax(entry.to_string()))?;
    let signal =
        Signal::parse(name.trim()).ok_or_else(|| ThresholdError::UnknownSignal(name.into()))?;
    Ok((signal, value.trim()))
}

/// A quantity or a percentage of `signal`'s threshold; `None` for `0%` and `100%`, which
/// upstream takes as "no threshold" (kind's CI clusters disable disk eviction with `0%`).
pub fn parse_value(signal: Signal, value: &str) -> Result<Option<ThresholdValue>, ThresholdError> {
    if let Some(percent) = value.strip_suffix('%') {
        if value == "0%" || value == "100%" {
            return Ok(None);
        }
        let p: f64 = percent
            .parse()
            .map_err(|_| ThresholdError::Percentage(signal.to_string(), value.into()))?;
        if !(0.0..=100.0).contains(&p) {
            return Err(ThresholdError::Percentage(signal.to_string(), value.into()));
        }
        return Ok(Some(ThresholdValue::Percentage(p / 100.0)));
    }
    let q = Quantity::parse(value)
        .map_err(|e| ThresholdError::Quantity(signal.to_string(), format!("{value}: {e}")))?;
    let v = q.value();
    if v <= 0 {
        return Err(ThresholdError::Quantity(signal.to_string(), value.into()));
    }
    Ok(Some(ThresholdValue::Quantity(v as u64)))
}

/// A minimum reclaim: like a threshold, but zero is a value.
fn parse_min_reclaim(
    signal: Signal,
    value: &str,
) -> Result<Option<ThresholdValue>, ThresholdError> {
    if value.trim_end_matches('%').parse::<f64>() == Ok(0.0) {
        return Ok(Some(ThresholdValue::Quantity(0)));
    }
    parse_value(signal, value)
}

fn entries(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|e| !e.is_empty())
}

/// `signal=value` entries (`--eviction-soft-grace-period`, `--eviction-minimum-reclaim`).
fn assignments(list: &str) -> Result<BTreeMap<Signal, &str>, ThresholdError> {
    let mut out = BTreeMap::new();
    for entry in entries(list) {
        let (name, value) = entry
            .split_once('=')
            .ok_or_else(|| ThresholdError::Syntax(entry.to_string()))?;
        let signal =
            Signal::parse(name.trim()).ok_or_else(|| ThresholdError::UnknownSignal(name.into()))?;
        if out.insert(signal, value.trim()).is_some() {
            return Err(ThresholdError::Duplicate(signal.to_string()));
        }
    }
    Ok(out)
}

/// Upstream's `ParseThresholdConfig`: the hard thresholds, then the soft ones with their grace
/// periods; minimum reclaims apply to both.
pub fn parse_thresholds(
    hard: &str,
    soft: &str,
    soft_grace_periods: &str,
    min_reclaim: &str,
) -> Result<Vec<Threshold>, ThresholdError> {
    let graces = assignments(soft_grace_periods)?;
    let reclaims = assignments(min_reclaim)?;
    let mut out = Vec::new();
    for (list, is_soft) in [(hard, false), (soft, true)] {
        let mut seen = Vec::new();
        for entry in entries(list) {
            let (signal, value) = split_threshold(entry)?;
            if seen.contains(&signal) {
                return Err(ThresholdError::Duplicate(signal.to_string()));
            }
            seen.push(signal);
            let grace_period = if is_soft {
                let grace = graces
                    .get(&signal)
                    .ok_or_else(|| ThresholdError::NoGracePeriod(signal.to_string()))?;
                let d = ferry_api::duration::parse_go(grace).ok_or_else(|| {
                    ThresholdError::Duration(grace.to_string(), "not a Go duration".into())
                })?;
                if d.is_zero() {
                    return Err(ThresholdError::NoGracePeriod(signal.to_string()));
                }
                d
            } else {
                Duration::ZERO
            };
            let min_reclaim = match reclaims.get(&signal) {
                Some(v) => parse_min_reclaim(signal, v)?,
                None => None,
            };
            let Some(value) = parse_value(signal, value)? else {
                continue;
            };
            out.push(Threshold {
                signal,
                value,
                grace_period,
                min_reclaim,
            });
        }
    }
    let soft_signals: Vec<Signal> = out
        .iter()
        .filter(|t| !t.is_hard())
        .map(|t| t.signal)
        .collect();
    if let Some(signal) = graces.keys().find(|s| !soft_signals.contains(s)) {
        return Err(ThresholdError::GraceWithoutSoft(signal.to_string()));
    }
    Ok(out)
}

/// The hard thresholds as the node's allocatable and the heartbeat's fallback read them.
pub fn eviction_hard(thresholds: &[Threshold]) -> EvictionHard {
    let hard = |signal| {
        thresholds
            .iter()
            .find(|t| t.signal == signal && t.is_hard())
            .map(|t| t.value)
    };
    EvictionHard {
        memory_available: hard(Signal::MemoryAvailable),
        nodefs_available: hard(Signal::NodeFsAvailable),
        nodefs_inodes_free: hard(Signal::NodeFsInodesFree),
        imagefs_available: hard(Signal::ImageFsAvailable),
        pid_available: hard(Signal::PidAvailable),
    }
}

/// Upstream's `--eviction-hard` default on Linux.
pub const DEFAULT_EVICTION_HARD: &str =
    "memory.available<100Mi,nodefs.available<10%,imagefs.available<15%,nodefs.inodesFree<5%";

#[cfg(test)]
mod tests {
    use super::*;

    const MI: u64 = 1 << 20;

    #[test]
    fn defaults_parse_to_upstreams_thresholds() {
        let t = parse_thresholds(DEFAULT_EVICTION_HARD, "", "", "").expect("defaults");
        assert_eq!(
            t,
            vec![
                Threshold::hard(Signal::MemoryAvailable, ThresholdValue::Quantity(100 * MI)),
                Threshold::hard(Signal::NodeFsAvailable, ThresholdValue::Percentage(0.10)),
                Threshold::hard(Signal::ImageFsAvailable, ThresholdValue::Percentage(0.15)),
                Threshold::hard(Signal::NodeFsInodesFree, ThresholdValue::Percentage(0.05)),
            ]
        );
        assert_eq!(eviction_hard(&t), EvictionHard::default());
    }

    #[test]
    fn thresholds_and_their_errors_as_upstreams_parse_threshold_config() {
        let soft = parse_thresholds(
            "",
            "memory.available<150Mi",
            "memory.available=30s",
            "memory.available=0,nodefs.available=500Mi",
        )
        .expect("soft");
        assert_eq!(
            soft,
            vec![Threshold {
                signal: Signal::MemoryAvailable,
                value: ThresholdValue::Quantity(150 * MI),
                grace_period: Duration::from_secs(30),
                min_reclaim: Some(ThresholdValue::Quantity(0)),
            }]
        );
        let cases: &[(&str, &str, &str, ThresholdError)] = &[
            (
                "memory.available>1Gi",
                "",
                "",
                ThresholdError::Syntax("memory.available>1Gi".into()),
            ),
            (
                "disk.available<1Gi",
                "",
                "",
                ThresholdError::UnknownSignal("disk.available".into()),
            ),
            (
                "memory.available<1Gi,memory.available<2Gi",
                "",
                "",
                ThresholdError::Duplicate("memory.available".into()),
            ),
            (
                "nodefs.available<150%",
                "",
                "",
                ThresholdError::Percentage("nodefs.available".into(), "150%".into()),
            ),
            (
                "memory.available<0",
                "",
                "",
                ThresholdError::Quantity("memory.available".into(), "0".into()),
            ),
            (
                "",
                "memory.available<1Gi",
                "",
                ThresholdError::NoGracePeriod("memory.available".into()),
            ),
            (
                "",
                "",
                "memory.available=30s",
                ThresholdError::GraceWithoutSoft("memory.available".into()),
            ),
        ];
        for (hard, soft, grace, want) in cases {
            assert_eq!(
                parse_thresholds(hard, soft, grace, "")
                    .expect_err(hard)
                    .to_string(),
                want.to_string(),
                "{hard} / {soft} / {grace}"
            );
        }
        // 0% and 100% are no threshold (kind's CI clusters disable disk eviction so).
        let kind = parse_thresholds(
            "memory.available<100Mi,nodefs.available<0%,imagefs.available<0%,nodefs.inodesFree<100%",
            "",
            "",
            "",
        )
        .expect("kind");
        assert_eq!(
            kind,
            vec![Threshold::hard(
                Signal::MemoryAvailable,
                ThresholdValue::Quantity(100 * MI)
            )]
        );
        let absurd = parse_thresholds("memory.available<1000Ti", "", "", "").expect("absurd");
        assert_eq!(
            absurd[0].value,
            ThresholdValue::Quantity(1000 * (1u64 << 40))
        );
    }
}
