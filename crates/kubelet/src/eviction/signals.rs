//! The eviction manager's pure decisions over one observation (upstream's `helpers.go`):
//! signals observed from a [`Summary`], which thresholds are met (with minimum reclaim while
//! they were met before), since when, which have outlasted their grace period, the node
//! conditions they make, and how long a condition is kept after its signal clears
//! (`--eviction-pressure-transition-period`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use super::threshold::{NodeCondition, Signal, Threshold};
use crate::machine::ThresholdValue;
use crate::stats::Summary;

/// One signal's observed value and the capacity its percentages are of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    /// What is available.
    pub available: u64,
    /// Out of what.
    pub capacity: u64,
}

/// Every signal observed now.
pub type Observations = BTreeMap<Signal, Observation>;

/// Upstream's `makeSignalObservations`: from the node's figures in the summary. An image
/// filesystem the runtime does not report apart is the nodefs.
pub fn observations(summary: &Summary) -> Observations {
    let mut out = Observations::new();
    let node = &summary.node;
    if let Some(m) = &node.memory {
        if let (Some(available), Some(working_set)) = (m.available_bytes, m.working_set_bytes) {
            out.insert(
                Signal::MemoryAvailable,
                Observation {
                    available,
                    capacity: available.saturating_add(working_set),
                },
            );
        }
    }
    let mut fs = |bytes: Signal, inodes: Signal, f: &crate::stats::summary::FsStats| {
        if let (Some(available), Some(capacity)) = (f.available_bytes, f.capacity_bytes) {
            out.insert(
                bytes,
                Observation {
                    available,
                    capacity,
                },
            );
        }
        if let (Some(available), Some(capacity)) = (f.inodes_free, f.inodes) {
            out.insert(
                inodes,
                Observation {
                    available,
                    capacity,
                },
            );
        }
    };
    if let Some(f) = &node.fs {
        fs(Signal::NodeFsAvailable, Signal::NodeFsInodesFree, f);
    }
    match node.runtime.as_ref().and_then(|r| r.image_fs.as_ref()) {
        Some(f) => fs(Signal::ImageFsAvailable, Signal::ImageFsInodesFree, f),
        None => {
            if let Some(f) = &node.fs {
                fs(Signal::ImageFsAvailable, Signal::ImageFsInodesFree, f);
            }
        }
    }
    if let Some(r) = &node.rlimit {
        if let (Some(max), Some(cur)) = (r.maxpid, r.curproc) {
            let max = max.max(0) as u64;
            out.insert(
                Signal::PidAvailable,
                Observation {
                    available: max.saturating_sub(cur.max(0) as u64),
                    capacity: max,
                },
            );
        }
    }
    out
}

/// The threshold's quantity for a capacity (upstream's `GetThresholdQuantity`).
pub fn threshold_quantity(value: ThresholdValue, capacity: u64) -> u64 {
    value.quantity(capacity)
}

/// Upstream's `thresholdsMet`: the thresholds whose signal is below them; with
/// `enforce_min_reclaim`, below them plus their minimum reclaim.
pub fn thresholds_met(
    thresholds: &[Threshold],
    observations: &Observations,
    enforce_min_reclaim: bool,
) -> Vec<Threshold> {
    thresholds
        .iter()
        .filter(|t| {
            let Some(observed) = observations.get(&t.signal) else {
                return false;
            };
            let mut quantity = threshold_quantity(t.value, observed.capacity);
            if enforce_min_reclaim {
                if let Some(min) = t.min_reclaim {
                    quantity = quantity.saturating_add(min.quantity(observed.capacity));
                }
            }
            observed.available < quantity
        })
        .copied()
        .collect()
}

/// A threshold's identity across observations (signal and whether soft).
pub fn key(t: &Threshold) -> (Signal, bool) {
    (t.signal, t.is_hard())
}

/// Upstream's `thresholdsFirstObservedAt`: when each met threshold was first met (kept from
/// `last`, `now` for new ones).
pub fn thresholds_first_observed_at(
    met: &[Threshold],
    last: &BTreeMap<(Signal, bool), Instant>,
    now: Instant,
) -> BTreeMap<(Signal, bool), Instant> {
    met.iter()
        .map(|t| (key(t), last.get(&key(t)).copied().unwrap_or(now)))
        .collect()
}

/// Upstream's `thresholdsMetGracePeriod`: the met thresholds that have been met for their
/// grace period.
pub fn thresholds_met_grace_period(
    met: &[Threshold],
    first_observed: &BTreeMap<(Signal, bool), Instant>,
    now: Instant,
) -> Vec<Threshold> {
    met.iter()
        .filter(|t| {
            first_observed
                .get(&key(t))
                .is_some_and(|at| now.saturating_duration_since(*at) >= t.grace_period)
        })
        .copied()
        .collect()
}

/// Upstream's `nodeConditions`: the conditions the met thresholds make.
pub fn node_conditions(met: &[Threshold]) -> BTreeSet<NodeCondition> {
    met.iter().map(|t| t.signal.node_condition()).collect()
}

/// Upstream's `nodeConditionsLastObservedAt`: `now` for the conditions seen now, the earlier
/// time for the others.
pub fn node_conditions_last_observed_at(
    conditions: &BTreeSet<NodeCondition>,
    last: &BTreeMap<NodeCondition, Instant>,
    now: Instant,
) -> BTreeMap<NodeCondition, Instant> {
    let mut out = last.clone();
    for c in conditions {
        out.insert(*c, now);
    }
    out
}

/// Upstream's `nodeConditionsObservedSince`: the conditions seen within the transition period.
pub fn node_conditions_observed_since(
    observed_at: &BTreeMap<NodeCondition, Instant>,
    period: Duration,
    now: Instant,
) -> BTreeSet<NodeCondition> {
    observed_at
        .iter()
        .filter(|(_, at)| now.saturating_duration_since(**at) < period)
        .map(|(c, _)| *c)
        .collect()
}

/// Upstream's `byEvictionPriority`: memory before everything else, the rest as given.
pub fn sort_by_eviction_priority(thresholds: &mut [Threshold]) {
    thresholds.sort_by_key(|t| t.signal != Signal::MemoryAvailable);
}

/// What one synchronization decided, before pods are looked at.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    /// The node conditions to report.
    pub conditions: BTreeSet<NodeCondition>,
    /// The thresholds to act on now (met past their grace period), by eviction priority.
    pub act_on: Vec<Threshold>,
}

/// What the manager remembers between observations.
#[derive(Clone, Debug, Default)]
pub struct Memory {
    /// Thresholds met at the last observation (minimum reclaim applies to them).
    pub thresholds_met: Vec<Threshold>,
    /// When each met threshold was first met.
    pub first_observed: BTreeMap<(Signal, bool), Instant>,
    /// When each condition was last seen.
    pub conditions_last_observed: BTreeMap<NodeCondition, Instant>,
}

/// One step of upstream's `synchronize` up to the choice of a threshold: updates `memory`.
pub fn decide(
    thresholds: &[Threshold],
    observations: &Observations,
    memory: &mut Memory,
    pressure_transition_period: Duration,
    now: Instant,
) -> Decision {
    let mut met = thresholds_met(thresholds, observations, false);
    // Thresholds met last time stay met until the signal recovers past the minimum reclaim.
    if !memory.thresholds_met.is_empty() {
        for t in thresholds_met(&memory.thresholds_met, observations, true) {
            if !met.iter().any(|m| key(m) == key(&t)) {
                met.push(t);
            }
        }
    }
    memory.first_observed = thresholds_first_observed_at(&met, &memory.first_observed, now);
    let seen = node_conditions(&met);
    memory.conditions_last_observed =
        node_conditions_last_observed_at(&seen, &memory.conditions_last_observed, now);
    let conditions = node_conditions_observed_since(
        &memory.conditions_last_observed,
        pressure_transition_period,
        now,
    );
    let mut act_on = thresholds_met_grace_period(&met, &memory.first_observed, now);
    sort_by_eviction_priority(&mut act_on);
    memory.thresholds_met = met;
    Decision { conditions, act_on }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: u64 = 1 << 20;

    fn memory_obs(available: u64) -> Observations {
        Observations::from([(
            Signal::MemoryAvailable,
            Observation {
                available,
                capacity: 2048 * MI,
            },
        )])
    }

    fn hard_memory(mi: u64) -> Threshold {
        Threshold::hard(Signal::MemoryAvailable, ThresholdValue::Quantity(mi * MI))
    }

    #[test]
    fn thresholds_met_as_upstreams_table() {
        let min_reclaim = Threshold {
            min_reclaim: Some(ThresholdValue::Quantity(500 * MI)),
            ..hard_memory(1024)
        };
        let cases: Vec<(&str, Threshold, u64, bool, bool)> = vec![
            ("not met", hard_memory(1024), 3000 * MI, false, false),
            ("met", hard_memory(1024), 500 * MI, false, true),
            ("met with min reclaim", min_reclaim, 1200 * MI, true, true),
            (
                "not met with min reclaim",
                min_reclaim,
                2000 * MI,
                true,
                false,
            ),
            (
                "percentage",
                Threshold::hard(Signal::MemoryAvailable, ThresholdValue::Percentage(0.5)),
                1000 * MI,
                false,
                true,
            ),
        ];
        for (name, t, available, enforce, want) in cases {
            let obs = memory_obs(available);
            assert_eq!(
                !thresholds_met(&[t], &obs, enforce).is_empty(),
                want,
                "{name}"
            );
        }
        // A signal not observed is never met.
        assert!(thresholds_met(&[hard_memory(1)], &Observations::new(), false).is_empty());
    }

    #[test]
    fn soft_thresholds_wait_for_their_grace_period_and_conditions_for_the_transition() {
        let soft = Threshold {
            grace_period: Duration::from_secs(60),
            ..hard_memory(1024)
        };
        let t0 = Instant::now();
        let period = Duration::from_secs(300);
        let mut memory = Memory::default();
        // Met: the condition at once, no eviction before the grace period.
        let d = decide(&[soft], &memory_obs(500 * MI), &mut memory, period, t0);
        assert_eq!(
            d.conditions,
            BTreeSet::from([NodeCondition::MemoryPressure])
        );
        assert!(d.act_on.is_empty());
        let d = decide(
            &[soft],
            &memory_obs(500 * MI),
            &mut memory,
            period,
            t0 + Duration::from_secs(61),
        );
        assert_eq!(d.act_on, vec![soft]);
        // Recovered: the condition stays for the transition period, nothing to act on.
        let d = decide(
            &[soft],
            &memory_obs(1500 * MI),
            &mut memory,
            period,
            t0 + Duration::from_secs(120),
        );
        assert_eq!(
            d.conditions,
            BTreeSet::from([NodeCondition::MemoryPressure])
        );
        assert!(d.act_on.is_empty());
        let d = decide(
            &[soft],
            &memory_obs(1500 * MI),
            &mut memory,
            period,
            t0 + Duration::from_secs(61 + 300),
        );
        assert!(d.conditions.is_empty());
        // Met again: the grace period starts over.
        let t1 = t0 + Duration::from_secs(400);
        let d = decide(&[soft], &memory_obs(500 * MI), &mut memory, period, t1);
        assert!(d.act_on.is_empty());
    }

    #[test]
    fn memory_first_then_disk_and_conditions_per_signal() {
        let disk = Threshold::hard(Signal::NodeFsAvailable, ThresholdValue::Percentage(0.1));
        let pid = Threshold::hard(Signal::PidAvailable, ThresholdValue::Quantity(100));
        let mut obs = memory_obs(10 * MI);
        obs.insert(
            Signal::NodeFsAvailable,
            Observation {
                available: 1,
                capacity: 100,
            },
        );
        obs.insert(
            Signal::PidAvailable,
            Observation {
                available: 50,
                capacity: 1000,
            },
        );
        let mut memory = Memory::default();
        let d = decide(
            &[disk, pid, hard_memory(100)],
            &obs,
            &mut memory,
            Duration::from_secs(300),
            Instant::now(),
        );
        assert_eq!(d.act_on[0].signal, Signal::MemoryAvailable);
        assert_eq!(
            d.conditions,
            BTreeSet::from([
                NodeCondition::MemoryPressure,
                NodeCondition::DiskPressure,
                NodeCondition::PidPressure
            ])
        );
    }

    #[test]
    fn observations_come_from_the_summary() {
        use crate::stats::summary::*;
        let summary = Summary {
            node: NodeStats {
                memory: Some(MemoryStats {
                    available_bytes: Some(50 * MI),
                    working_set_bytes: Some(150 * MI),
                    ..Default::default()
                }),
                fs: Some(FsStats {
                    available_bytes: Some(10),
                    capacity_bytes: Some(100),
                    inodes_free: Some(5),
                    inodes: Some(50),
                    ..Default::default()
                }),
                rlimit: Some(RlimitStats {
                    time: String::new(),
                    maxpid: Some(1000),
                    curproc: Some(300),
                }),
                ..Default::default()
            },
            pods: vec![],
        };
        let obs = observations(&summary);
        assert_eq!(
            obs[&Signal::MemoryAvailable],
            Observation {
                available: 50 * MI,
                capacity: 200 * MI
            }
        );
        // No image filesystem apart: it is the nodefs.
        assert_eq!(
            obs[&Signal::ImageFsAvailable],
            obs[&Signal::NodeFsAvailable]
        );
        assert_eq!(obs[&Signal::NodeFsInodesFree].available, 5);
        assert_eq!(obs[&Signal::PidAvailable].available, 700);
    }
}
