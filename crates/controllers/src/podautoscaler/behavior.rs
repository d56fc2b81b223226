//! Stabilization and scaling policies, as upstream's `horizontal.go` applies them after the
//! metrics proposed a replica count: `spec.behavior` (stabilization windows per direction,
//! `Pods`/`Percent` policies over periods, `selectPolicy`) or, without it, the legacy rules (a
//! 5-minute downscale window; at most double, or 4, per sync).
//!
//! What the rules need to remember — recent recommendations and recent scale events, per
//! HPA — lives in memory in a [`History`], as upstream keeps it: a restarted controller starts
//! with none. Time is passed in, so every rule is a pure function of its inputs.

use std::collections::HashMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscalerBehavior};

use crate::informer::Key;

/// Upstream's `--horizontal-pod-autoscaler-downscale-stabilization`.
pub const DEFAULT_DOWNSCALE_STABILIZATION: Duration = Duration::from_secs(300);
/// Without `behavior`, a sync scales up to at most this factor of the current replicas...
const SCALE_UP_LIMIT_FACTOR: f64 = 2.0;
/// ...or this many, whichever is more.
const SCALE_UP_LIMIT_MINIMUM: f64 = 4.0;

/// How a policy limits a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyType {
    /// By a number of pods per period.
    Pods,
    /// By a percentage of the replicas at the start of the period.
    Percent,
}

/// One scaling policy (`HPAScalingPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Pods or Percent.
    pub kind: PolicyType,
    /// How many pods, or what percentage.
    pub value: i32,
    /// Over how long.
    pub period_seconds: i32,
}

/// Which policy wins (`selectPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectPolicy {
    /// The one allowing the largest change (the default).
    Max,
    /// The one allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// The rules of one direction with upstream's defaults filled in (`HPAScalingRules`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalingRules {
    /// Recommendations this recent are considered.
    pub stabilization_window_seconds: i32,
    /// Which policy wins.
    pub select_policy: SelectPolicy,
    /// The policies.
    pub policies: Vec<Policy>,
}

/// `spec.behavior` with every default in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Behavior {
    /// Rules for scaling up.
    pub scale_up: ScalingRules,
    /// Rules for scaling down.
    pub scale_down: ScalingRules,
}

fn rules(
    given: Option<&HPAScalingRules>,
    default_window: i32,
    default_policies: Vec<Policy>,
) -> ScalingRules {
    let select_policy = match given.and_then(|r| r.select_policy.as_deref()) {
        Some("Min") => SelectPolicy::Min,
        Some("Disabled") => SelectPolicy::Disabled,
        _ => SelectPolicy::Max,
    };
    let policies = match given.and_then(|r| r.policies.as_ref()) {
        Some(policies) => policies
            .iter()
            .filter_map(|p| {
                let kind = match p.type_.as_str() {
                    "Pods" => PolicyType::Pods,
                    "Percent" => PolicyType::Percent,
                    _ => return None,
                };
                Some(Policy {
                    kind,
                    value: p.value,
                    period_seconds: p.period_seconds,
                })
            })
            .collect(),
        None => default_policies,
    };
    ScalingRules {
        stabilization_window_seconds: given
            .and_then(|r| r.stabilization_window_seconds)
            .unwrap_or(default_window),
        select_policy,
        policies,
    }
}

impl Behavior {
    /// `behavior` with upstream's defaults for what it leaves out (the API's
    /// `GenerateHPAScaleUpRules`/`GenerateHPAScaleDownRules`, then the controller's downscale
    /// window): up — no window, the larger of 4 pods or 100 % per 15 s; down — the
    /// `downscale_stabilization` window, 100 % per 15 s.
    pub fn with_defaults(
        behavior: &HorizontalPodAutoscalerBehavior,
        downscale_stabilization: Duration,
    ) -> Behavior {
        let down_window = i32::try_from(downscale_stabilization.as_secs()).unwrap_or(i32::MAX);
        Behavior {
            scale_up: rules(
                behavior.scale_up.as_ref(),
                0,
                vec![
                    Policy {
                        kind: PolicyType::Pods,
                        value: 4,
                        period_seconds: 15,
                    },
                    Policy {
                        kind: PolicyType::Percent,
                        value: 100,
                        period_seconds: 15,
                    },
                ],
            ),
            scale_down: rules(
                behavior.scale_down.as_ref(),
                down_window,
                vec![Policy {
                    kind: PolicyType::Percent,
                    value: 100,
                    period_seconds: 15,
                }],
            ),
        }
    }
}

/// A recommendation the metrics made, unstabilized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Recommendation {
    replicas: i32,
    at: Timestamp,
}

/// A change the controller made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScaleEvent {
    /// How many replicas were added or removed (never negative).
    pub replica_change: i32,
    /// When.
    pub at: Timestamp,
    /// Older than every policy's period: its slot may be reused.
    pub outdated: bool,
}

#[derive(Clone, Debug, Default)]
struct Entry {
    recommendations: Vec<Recommendation>,
    scale_up_events: Vec<ScaleEvent>,
    scale_down_events: Vec<ScaleEvent>,
}

/// What the rules decided: the replica count and the conditions that explain it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Normalized {
    /// The replicas to scale to.
    pub desired: i32,
    /// AbleToScale's reason and message (`ReadyForNewScale`, `Scale{Up,Down}Stabilized`).
    pub able_to_scale: (&'static str, &'static str),
    /// Whether ScalingLimited is True, and its reason and message.
    pub limited: (bool, &'static str, &'static str),
}

/// Recent recommendations and scale events of every HPA (upstream's `recommendations`,
/// `scaleUpEvents` and `scaleDownEvents` maps).
#[derive(Debug, Default)]
pub struct History {
    entries: HashMap<Key, Entry>,
}

fn seconds(s: i32) -> SignedDuration {
    SignedDuration::from_secs(i64::from(s))
}

/// `now - window`, saturating.
fn before(now: Timestamp, window: SignedDuration) -> Timestamp {
    now.checked_sub(window).unwrap_or(Timestamp::MIN)
}

impl History {
    /// Remembers the current count as the first recommendation of an HPA seen for the first
    /// time, so a scale down waits a full window (upstream's `recordInitialRecommendation`).
    pub fn record_initial(&mut self, key: &Key, current_replicas: i32, now: Timestamp) {
        let entry = self.entries.entry(key.clone()).or_default();
        if entry.recommendations.is_empty() {
            entry.recommendations.push(Recommendation {
                replicas: current_replicas,
                at: now,
            });
        }
    }

    /// Forgets a deleted HPA.
    pub fn forget(&mut self, key: &Key) {
        self.entries.remove(key);
    }

    /// Records `recommendation`, reusing the slot of one older than `older_than` if any.
    fn record(&mut self, key: &Key, slot: Option<usize>, replicas: i32, now: Timestamp) {
        let recommendations = &mut self.entries.entry(key.clone()).or_default().recommendations;
        let new = Recommendation { replicas, at: now };
        match slot {
            Some(i) => recommendations[i] = new,
            None => recommendations.push(new),
        }
    }

    /// Applies the rules to the metrics' proposal: `behavior` (with defaults in place) or,
    /// without it, the legacy ones (upstream's `normalizeDesiredReplicas` and
    /// `normalizeDesiredReplicasWithBehaviors`).
    #[allow(clippy::too_many_arguments)]
    pub fn normalize(
        &mut self,
        key: &Key,
        behavior: Option<&Behavior>,
        current_replicas: i32,
        proposed: i32,
        min_replicas: i32,
        max_replicas: i32,
        downscale_stabilization: Duration,
        now: Timestamp,
    ) -> Normalized {
        let Some(behavior) = behavior else {
            let stabilized = self.stabilize(key, proposed, downscale_stabilization, now);
            let able_to_scale = if stabilized != proposed {
                ("ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation")
            } else {
                ("ReadyForNewScale", "recommended size matches current size")
            };
            let (desired, reason, message) = convert_desired_replicas_with_rules(
                current_replicas,
                stabilized,
                min_replicas,
                max_replicas,
            );
            return Normalized {
                desired,
                able_to_scale,
                limited: (desired != stabilized, reason, message),
            };
        };
        let (stabilized, reason, message) =
            self.stabilize_with_behavior(key, behavior, current_replicas, proposed, now);
        let able_to_scale = if stabilized != proposed {
            (reason, message)
        } else {
            ("ReadyForNewScale", "recommended size matches current size")
        };
        let entry = self.entries.entry(key.clone()).or_default();
        let (desired, reason, message) = convert_desired_replicas_with_behavior_rate(
            current_replicas,
            stabilized,
            min_replicas,
            max_replicas,
            behavior,
            &entry.scale_up_events,
            &entry.scale_down_events,
            now,
        );
        Normalized {
            desired,
            able_to_scale,
            limited: (desired != stabilized, reason, message),
        }
    }

    /// The highest recommendation within the downscale window, recording this one (upstream's
    /// `stabilizeRecommendation`).
    fn stabilize(&mut self, key: &Key, proposed: i32, window: Duration, now: Timestamp) -> i32 {
        let cutoff = before(now, SignedDuration::try_from(window).unwrap_or_default());
        let mut max = proposed;
        let mut old = None;
        let recommendations = self
            .entries
            .get(key)
            .map(|e| e.recommendations.as_slice())
            .unwrap_or_default();
        for (i, r) in recommendations.iter().enumerate() {
            if r.at < cutoff {
                old = Some(i);
            } else if r.replicas > max {
                max = r.replicas;
            }
        }
        self.record(key, old, proposed, now);
        max
    }

    /// The proposal kept between the lowest recommendation of the scale-up window and the
    /// highest of the scale-down window, recording it (upstream's
    /// `stabilizeRecommendationWithBehaviors`).
    fn stabilize_with_behavior(
        &mut self,
        key: &Key,
        behavior: &Behavior,
        current_replicas: i32,
        proposed: i32,
        now: Timestamp,
    ) -> (i32, &'static str, &'static str) {
        let up_cutoff = before(now, seconds(behavior.scale_up.stabilization_window_seconds));
        let down_cutoff = before(
            now,
            seconds(behavior.scale_down.stabilization_window_seconds),
        );
        let (mut up, mut down) = (proposed, proposed);
        let mut old = None;
        let recommendations = self
            .entries
            .get(key)
            .map(|e| e.recommendations.as_slice())
            .unwrap_or_default();
        for (i, r) in recommendations.iter().enumerate() {
            if r.at > up_cutoff {
                up = up.min(r.replicas);
            }
            if r.at > down_cutoff {
                down = down.max(r.replicas);
            }
            if r.at < up_cutoff && r.at < down_cutoff {
                old = Some(i);
            }
        }
        let recommendation = current_replicas.max(up).min(down);
        self.record(key, old, proposed, now);
        if proposed >= current_replicas {
            (recommendation, "ScaleUpStabilized", "recent recommendations were lower than current one, applying the lowest recent recommendation")
        } else {
            (recommendation, "ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation")
        }
    }

    /// Remembers a scale from `previous` to `new` replicas for the policies' periods (upstream's
    /// `storeScaleEvent`); nothing without `behavior`, whose policies alone use them.
    pub fn store_scale_event(
        &mut self,
        behavior: Option<&Behavior>,
        key: &Key,
        previous: i32,
        new: i32,
        now: Timestamp,
    ) {
        let Some(behavior) = behavior else { return };
        let entry = self.entries.entry(key.clone()).or_default();
        let (events, rules, change) = if new > previous {
            (
                &mut entry.scale_up_events,
                &behavior.scale_up,
                new - previous,
            )
        } else {
            (
                &mut entry.scale_down_events,
                &behavior.scale_down,
                previous - new,
            )
        };
        let longest = rules
            .policies
            .iter()
            .map(|p| p.period_seconds)
            .max()
            .unwrap_or(0)
            .max(0);
        let cutoff = before(now, seconds(longest));
        let mut old = None;
        for (i, event) in events.iter_mut().enumerate() {
            if event.at < cutoff {
                event.outdated = true;
            }
            if event.outdated {
                old = Some(i);
            }
        }
        let event = ScaleEvent {
            replica_change: change,
            at: now,
            outdated: false,
        };
        match old {
            Some(i) => events[i] = event,
            None => events.push(event),
        }
    }
}

/// The legacy limits without `behavior` (upstream's `convertDesiredReplicasWithRules`): between
/// `min` and `max`, and at most double (or 4) the current count.
pub fn convert_desired_replicas_with_rules(
    current_replicas: i32,
    desired: i32,
    min_replicas: i32,
    max_replicas: i32,
) -> (i32, &'static str, &'static str) {
    let scale_up_limit = calculate_scale_up_limit(current_replicas);
    let (maximum, reason, message) = if max_replicas > scale_up_limit {
        (
            scale_up_limit,
            "ScaleUpLimit",
            "the desired replica count is increasing faster than the maximum scale rate",
        )
    } else {
        (
            max_replicas,
            "TooManyReplicas",
            "the desired replica count is more than the maximum replica count",
        )
    };
    if desired < min_replicas {
        return (
            min_replicas,
            "TooFewReplicas",
            "the desired replica count is less than the minimum replica count",
        );
    }
    if desired > maximum {
        return (maximum, reason, message);
    }
    (
        desired,
        "DesiredWithinRange",
        "the desired count is within the acceptable range",
    )
}

/// `max(2 × current, 4)` (upstream's `calculateScaleUpLimit`).
pub fn calculate_scale_up_limit(current_replicas: i32) -> i32 {
    (SCALE_UP_LIMIT_FACTOR * f64::from(current_replicas)).max(SCALE_UP_LIMIT_MINIMUM) as i32
}

/// The limits of `behavior`'s policies given the recent scale events (upstream's
/// `convertDesiredReplicasWithBehaviorRate`).
#[allow(clippy::too_many_arguments)]
pub fn convert_desired_replicas_with_behavior_rate(
    current_replicas: i32,
    desired: i32,
    min_replicas: i32,
    max_replicas: i32,
    behavior: &Behavior,
    scale_up_events: &[ScaleEvent],
    scale_down_events: &[ScaleEvent],
    now: Timestamp,
) -> (i32, &'static str, &'static str) {
    if desired > current_replicas {
        // Not above the current count until the events that used up the rate age out.
        let limit = scale_up_limit(
            current_replicas,
            scale_up_events,
            scale_down_events,
            &behavior.scale_up,
            now,
        )
        .max(current_replicas);
        let (maximum, reason, message) = if max_replicas > limit {
            (
                limit,
                "ScaleUpLimit",
                "the desired replica count is increasing faster than the maximum scale rate",
            )
        } else {
            (
                max_replicas,
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count",
            )
        };
        if desired > maximum {
            return (maximum, reason, message);
        }
    } else if desired < current_replicas {
        let limit = scale_down_limit(
            current_replicas,
            scale_up_events,
            scale_down_events,
            &behavior.scale_down,
            now,
        )
        .min(current_replicas);
        let (minimum, reason, message) = if min_replicas < limit {
            (
                limit,
                "ScaleDownLimit",
                "the desired replica count is decreasing faster than the maximum scale rate",
            )
        } else {
            (
                min_replicas,
                "TooFewReplicas",
                "the desired replica count is less than the minimum replica count",
            )
        };
        if desired < minimum {
            return (minimum, reason, message);
        }
    }
    (
        desired,
        "DesiredWithinRange",
        "the desired count is within the acceptable range",
    )
}

/// Replicas changed by `events` within the last `period_seconds` (upstream's
/// `getReplicasChangePerPeriod`).
pub fn replicas_change_per_period(
    period_seconds: i32,
    events: &[ScaleEvent],
    now: Timestamp,
) -> i32 {
    let cutoff = before(now, seconds(period_seconds));
    events
        .iter()
        .filter(|e| e.at > cutoff)
        .map(|e| e.replica_change)
        .sum()
}

/// The most replicas `rules` allow now (upstream's `calculateScaleUpLimitWithScalingRules`).
pub fn scale_up_limit(
    current_replicas: i32,
    scale_up_events: &[ScaleEvent],
    scale_down_events: &[ScaleEvent],
    rules: &ScalingRules,
    now: Timestamp,
) -> i32 {
    let (mut result, pick): (i32, fn(i32, i32) -> i32) = match rules.select_policy {
        SelectPolicy::Disabled => return current_replicas,
        SelectPolicy::Min => (i32::MAX, std::cmp::min),
        SelectPolicy::Max => (i32::MIN, std::cmp::max),
    };
    for policy in &rules.policies {
        let added = replicas_change_per_period(policy.period_seconds, scale_up_events, now);
        let deleted = replicas_change_per_period(policy.period_seconds, scale_down_events, now);
        let period_start = current_replicas - added + deleted;
        let proposed = match policy.kind {
            PolicyType::Pods => period_start + policy.value,
            // Rounded up, or a small percentage of few pods would never add one.
            PolicyType::Percent => {
                (f64::from(period_start) * (1.0 + f64::from(policy.value) / 100.0)).ceil() as i32
            }
        };
        result = pick(result, proposed);
    }
    result
}

/// The fewest replicas `rules` allow now (upstream's `calculateScaleDownLimitWithBehaviors`).
pub fn scale_down_limit(
    current_replicas: i32,
    scale_up_events: &[ScaleEvent],
    scale_down_events: &[ScaleEvent],
    rules: &ScalingRules,
    now: Timestamp,
) -> i32 {
    let (mut result, pick): (i32, fn(i32, i32) -> i32) = match rules.select_policy {
        SelectPolicy::Disabled => return current_replicas,
        SelectPolicy::Min => (i32::MIN, std::cmp::max),
        SelectPolicy::Max => (i32::MAX, std::cmp::min),
    };
    for policy in &rules.policies {
        let added = replicas_change_per_period(policy.period_seconds, scale_up_events, now);
        let deleted = replicas_change_per_period(policy.period_seconds, scale_down_events, now);
        let period_start = current_replicas - added + deleted;
        let proposed = match policy.kind {
            PolicyType::Pods => period_start - policy.value,
            PolicyType::Percent => {
                (f64::from(period_start) * (1.0 - f64::from(policy.value) / 100.0)) as i32
            }
        };
        result = pick(result, proposed);
    }
    result
}
