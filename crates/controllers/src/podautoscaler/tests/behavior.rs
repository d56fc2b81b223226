//! Stabilization windows, scaling policies and the legacy limits.

use jiff::SignedDuration;
use serde_json::json;

use super::{ago, now};
use crate::podautoscaler::behavior::*;

fn key() -> crate::informer::Key {
    ("default".into(), "hpa".into())
}

fn policy(kind: PolicyType, value: i32, period_seconds: i32) -> Policy {
    Policy {
        kind,
        value,
        period_seconds,
    }
}

fn rules(select_policy: SelectPolicy, policies: Vec<Policy>) -> ScalingRules {
    ScalingRules {
        stabilization_window_seconds: 0,
        select_policy,
        policies,
    }
}

fn event(change: i32, seconds_ago: i64) -> ScaleEvent {
    ScaleEvent {
        replica_change: change,
        at: ago(seconds_ago),
        outdated: false,
    }
}

#[test]
fn behavior_defaults_are_upstreams() {
    let behavior = Behavior::with_defaults(&Default::default(), DEFAULT_DOWNSCALE_STABILIZATION);
    assert_eq!(
        behavior,
        Behavior {
            scale_up: ScalingRules {
                stabilization_window_seconds: 0,
                select_policy: SelectPolicy::Max,
                policies: vec![
                    policy(PolicyType::Pods, 4, 15),
                    policy(PolicyType::Percent, 100, 15)
                ],
            },
            scale_down: ScalingRules {
                stabilization_window_seconds: 300,
                select_policy: SelectPolicy::Max,
                policies: vec![policy(PolicyType::Percent, 100, 15)],
            },
        }
    );
    let given: k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerBehavior =
        serde_json::from_value(json!({
            "scaleUp": {"selectPolicy": "Disabled"},
            "scaleDown": {"stabilizationWindowSeconds": 60, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 30}]},
        }))
        .expect("behavior");
    let behavior = Behavior::with_defaults(&given, DEFAULT_DOWNSCALE_STABILIZATION);
    assert_eq!(behavior.scale_up.select_policy, SelectPolicy::Disabled);
    assert_eq!(behavior.scale_up.policies.len(), 2, "policies defaulted");
    assert_eq!(behavior.scale_down.stabilization_window_seconds, 60);
    assert_eq!(
        behavior.scale_down.policies,
        vec![policy(PolicyType::Pods, 1, 30)]
    );
}

/// Upstream's `TestScalingWithRules`-style cases: the policies' limit on one change.
#[test]
fn policies_limit_the_rate_as_upstream() {
    use PolicyType::{Percent, Pods};
    use SelectPolicy::{Disabled, Max, Min};
    // (name, current, desired, min, max, up rules, down rules, up events, down events, want, reason)
    type RateCase = (
        &'static str,
        i32,
        i32,
        i32,
        i32,
        ScalingRules,
        ScalingRules,
        Vec<ScaleEvent>,
        Vec<ScaleEvent>,
        i32,
        &'static str,
    );
    let default = Behavior::with_defaults(&Default::default(), DEFAULT_DOWNSCALE_STABILIZATION);
    let up = default.scale_up.clone();
    let down = default.scale_down.clone();
    let cases: Vec<RateCase> = vec![
        (
            "scale up within the default rate",
            5,
            10,
            1,
            100,
            up.clone(),
            down.clone(),
            vec![],
            vec![],
            10,
            "DesiredWithinRange",
        ),
        (
            "default rate: 4 pods from few",
            1,
            10,
            1,
            100,
            up.clone(),
            down.clone(),
            vec![],
            vec![],
            5,
            "ScaleUpLimit",
        ),
        (
            "default rate: 100% from many",
            10,
            100,
            1,
            100,
            up.clone(),
            down.clone(),
            vec![],
            vec![],
            20,
            "ScaleUpLimit",
        ),
        (
            "pods policy larger than percent",
            3,
            500,
            1,
            1000,
            rules(Max, vec![policy(Pods, 100, 60), policy(Percent, 100, 60)]),
            down.clone(),
            vec![],
            vec![],
            103,
            "ScaleUpLimit",
        ),
        (
            "percent policy larger than pods",
            3,
            100,
            1,
            1000,
            rules(Max, vec![policy(Pods, 2, 60), policy(Percent, 100, 60)]),
            down.clone(),
            vec![],
            vec![],
            6,
            "ScaleUpLimit",
        ),
        (
            "maxReplicas limits a large pods policy",
            3,
            100,
            1,
            10,
            rules(Max, vec![policy(Pods, 100, 60)]),
            down.clone(),
            vec![],
            vec![],
            10,
            "TooManyReplicas",
        ),
        (
            "min policy up",
            10,
            100,
            1,
            1000,
            rules(Min, vec![policy(Pods, 4, 60), policy(Percent, 100, 60)]),
            down.clone(),
            vec![],
            vec![],
            14,
            "ScaleUpLimit",
        ),
        (
            "percent rounds up",
            1,
            10,
            1,
            100,
            rules(Max, vec![policy(Percent, 10, 60)]),
            down.clone(),
            vec![],
            vec![],
            2,
            "ScaleUpLimit",
        ),
        (
            "disabled up",
            10,
            100,
            1,
            1000,
            rules(Disabled, vec![policy(Pods, 4, 60)]),
            down.clone(),
            vec![],
            vec![],
            10,
            "ScaleUpLimit",
        ),
        (
            "recent scale up uses the rate",
            10,
            100,
            1,
            1000,
            rules(Max, vec![policy(Pods, 4, 60)]),
            down.clone(),
            vec![event(2, 10)],
            vec![],
            12,
            "ScaleUpLimit",
        ),
        (
            "old scale up does not",
            10,
            100,
            1,
            1000,
            rules(Max, vec![policy(Pods, 4, 60)]),
            down.clone(),
            vec![event(2, 61)],
            vec![],
            14,
            "ScaleUpLimit",
        ),
        (
            "rate used up: no scale up",
            10,
            100,
            1,
            1000,
            rules(Max, vec![policy(Pods, 4, 60)]),
            down.clone(),
            vec![event(5, 10)],
            vec![],
            10,
            "ScaleUpLimit",
        ),
        (
            "recent scale down adds to the rate",
            10,
            100,
            1,
            1000,
            rules(Max, vec![policy(Pods, 4, 60)]),
            down.clone(),
            vec![],
            vec![event(3, 10)],
            17,
            "ScaleUpLimit",
        ),
        (
            "percent policy larger than pods, down",
            100,
            2,
            1,
            1000,
            up.clone(),
            rules(Max, vec![policy(Pods, 2, 60), policy(Percent, 1, 60)]),
            vec![],
            vec![],
            98,
            "ScaleDownLimit",
        ),
        (
            "min policy down",
            100,
            2,
            1,
            1000,
            up.clone(),
            rules(Min, vec![policy(Pods, 2, 60), policy(Percent, 1, 60)]),
            vec![],
            vec![],
            99,
            "ScaleDownLimit",
        ),
        (
            "minReplicas limits a large pods policy",
            100,
            0,
            5,
            1000,
            up.clone(),
            rules(Max, vec![policy(Pods, 100, 60)]),
            vec![],
            vec![],
            5,
            "TooFewReplicas",
        ),
        (
            "default rate down: 100%",
            10,
            1,
            1,
            1000,
            up.clone(),
            down.clone(),
            vec![],
            vec![],
            1,
            "DesiredWithinRange",
        ),
        (
            "disabled down",
            10,
            1,
            1,
            1000,
            up.clone(),
            rules(Disabled, vec![policy(Pods, 4, 60)]),
            vec![],
            vec![],
            10,
            "ScaleDownLimit",
        ),
        (
            "recent scale down uses the rate",
            10,
            1,
            1,
            1000,
            up.clone(),
            rules(Max, vec![policy(Pods, 4, 60)]),
            vec![],
            vec![event(3, 10)],
            9,
            "ScaleDownLimit",
        ),
    ];
    for (
        name,
        current,
        desired,
        min,
        max,
        scale_up,
        scale_down,
        up_events,
        down_events,
        want,
        reason,
    ) in cases
    {
        let behavior = Behavior {
            scale_up,
            scale_down,
        };
        let (got, got_reason, _) = convert_desired_replicas_with_behavior_rate(
            current,
            desired,
            min,
            max,
            &behavior,
            &up_events,
            &down_events,
            now(),
        );
        assert_eq!((got, got_reason), (want, reason), "{name}");
    }
}

/// Upstream's `TestConvertDesiredReplicasWithRules`: the legacy limits without behavior.
#[test]
fn legacy_rules_limit_as_upstream() {
    let cases = [
        ("within range", 5, 7, 2, 10, 7, "DesiredWithinRange"),
        ("too few", 5, 1, 2, 10, 2, "TooFewReplicas"),
        ("too many", 8, 20, 2, 10, 10, "TooManyReplicas"),
        ("doubling at most", 3, 20, 2, 100, 6, "ScaleUpLimit"),
        ("four at least", 1, 20, 1, 100, 4, "ScaleUpLimit"),
    ];
    for (name, current, desired, min, max, want, reason) in cases {
        let (got, got_reason, _) = convert_desired_replicas_with_rules(current, desired, min, max);
        assert_eq!((got, got_reason), (want, reason), "{name}");
    }
}

#[test]
fn stabilization_keeps_the_highest_recent_recommendation_when_scaling_down() {
    let mut history = History::default();
    let window = DEFAULT_DOWNSCALE_STABILIZATION;
    history.record_initial(&key(), 10, ago(600));
    // The first recommendation is past the window: a scale down is free.
    let n = history.normalize(&key(), None, 10, 4, 1, 20, window, ago(200));
    assert_eq!(n.desired, 4);
    assert_eq!(n.able_to_scale.0, "ReadyForNewScale");
    // Within 5 minutes of a recommendation of 4, a lower one waits.
    let n = history.normalize(&key(), None, 4, 2, 1, 20, window, ago(100));
    assert_eq!(n.desired, 4);
    assert_eq!(n.able_to_scale.0, "ScaleDownStabilized");
    assert_eq!(n.limited.1, "DesiredWithinRange");
    // ...until it ages out.
    let n = history.normalize(
        &key(),
        None,
        4,
        2,
        1,
        20,
        window,
        ago(100) + SignedDuration::from_secs(301),
    );
    assert_eq!(n.desired, 2);
    // Scaling up is never stabilized without behavior, only limited.
    let n = history.normalize(&key(), None, 2, 50, 1, 20, window, now());
    assert_eq!(
        (n.desired, n.limited),
        (
            4,
            (
                true,
                "ScaleUpLimit",
                "the desired replica count is increasing faster than the maximum scale rate"
            )
        )
    );
}

#[test]
fn behavior_windows_stabilize_both_ways() {
    let mut behavior =
        Behavior::with_defaults(&Default::default(), DEFAULT_DOWNSCALE_STABILIZATION);
    behavior.scale_up.stabilization_window_seconds = 120;
    let mut history = History::default();
    history.record_initial(&key(), 3, ago(60));
    // Up: the lowest recommendation of the last 2 minutes (3) holds.
    let n = history.normalize(
        &key(),
        Some(&behavior),
        3,
        10,
        1,
        100,
        DEFAULT_DOWNSCALE_STABILIZATION,
        now(),
    );
    assert_eq!(n.desired, 3);
    assert_eq!(n.able_to_scale, ("ScaleUpStabilized", "recent recommendations were lower than current one, applying the lowest recent recommendation"));
    // Two minutes later the recommendation of 3 is out of the up window: 10 within the rate.
    let later = now() + SignedDuration::from_secs(61);
    let n = history.normalize(
        &key(),
        Some(&behavior),
        3,
        10,
        1,
        100,
        DEFAULT_DOWNSCALE_STABILIZATION,
        later,
    );
    assert_eq!(n.desired, 7, "4 pods or 100% per 15 s");
    assert_eq!(n.limited.1, "ScaleUpLimit");
    assert_eq!(n.able_to_scale.0, "ReadyForNewScale");
    // Down: the highest of the last 5 minutes (10) holds.
    let n = history.normalize(
        &key(),
        Some(&behavior),
        10,
        2,
        1,
        100,
        DEFAULT_DOWNSCALE_STABILIZATION,
        later + SignedDuration::from_secs(15),
    );
    assert_eq!(n.desired, 10);
    assert_eq!(n.able_to_scale.0, "ScaleDownStabilized");
}

#[test]
fn scale_events_are_kept_for_the_longest_period_and_reused() {
    let behavior = Behavior {
        scale_up: rules(SelectPolicy::Max, vec![policy(PolicyType::Pods, 4, 60)]),
        scale_down: rules(SelectPolicy::Max, vec![policy(PolicyType::Pods, 4, 30)]),
    };
    let mut history = History::default();
    history.store_scale_event(None, &key(), 1, 5, now());
    let n = history.normalize(
        &key(),
        Some(&behavior),
        5,
        20,
        1,
        100,
        DEFAULT_DOWNSCALE_STABILIZATION,
        now(),
    );
    assert_eq!(n.desired, 9, "nothing stored without behavior");
    history.store_scale_event(Some(&behavior), &key(), 5, 9, ago(50));
    let n = history.normalize(
        &key(),
        Some(&behavior),
        9,
        20,
        1,
        100,
        DEFAULT_DOWNSCALE_STABILIZATION,
        now(),
    );
    assert_eq!(n.desired, 9, "the rate is used up for 60 s");
    history.store_scale_event(
        Some(&behavior),
        &key(),
        9,
        12,
        now() + SignedDuration::from_secs(20),
    );
    let n = history.normalize(
        &key(),
        Some(&behavior),
        12,
        20,
        1,
        100,
        DEFAULT_DOWNSCALE_STABILIZATION,
        now() + SignedDuration::from_secs(30),
    );
    assert_eq!(
        n.desired, 13,
        "the first event aged out; the second allows one more"
    );
    assert_eq!(
        replicas_change_per_period(60, &[event(4, 70), event(3, 10), event(2, 0)], now()),
        5
    );
    assert_eq!(
        scale_down_limit(
            10,
            &[event(2, 10)],
            &[],
            &rules(SelectPolicy::Max, vec![policy(PolicyType::Percent, 50, 60)]),
            now()
        ),
        4,
        "the period started at 8 replicas"
    );
    assert_eq!(calculate_scale_up_limit(3), 6);
    assert_eq!(calculate_scale_up_limit(1), 4);
}
