//! Plain, object and external metric cases; pod grouping and requests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::resource::Case;
use super::{ago, now, CALCULATOR};
use crate::podautoscaler::metrics::{PodMetric, PodMetricsInfo};
use crate::podautoscaler::replicas::*;

fn metric(value: i64) -> PodMetric {
    PodMetric {
        timestamp: now(),
        window: Duration::from_secs(60),
        value,
    }
}

/// Plain (per-pod average) metric cases: upstream's `podMetric` custom metric tests.
#[test]
fn plain_metric_replicas_follow_upstream_cases() {
    type PlainCase = (
        &'static str,
        i32,
        Vec<i64>,
        i64,
        Vec<bool>,
        Vec<&'static str>,
        i32,
        i64,
    );
    let cases: Vec<PlainCase> = vec![
        (
            "scale up",
            3,
            vec![20000, 10000, 30000],
            15000,
            vec![],
            vec![],
            4,
            20000,
        ),
        // Readiness does not matter for custom metrics, only Pending does.
        (
            "unready hot pod, no less scale",
            3,
            vec![50000, 10000, 30000],
            15000,
            vec![true, true, false],
            vec![],
            6,
            30000,
        ),
        (
            "unready hot pods would scale down",
            3,
            vec![50000, 15000, 30000],
            15000,
            vec![false, true, false],
            vec![],
            7,
            31666,
        ),
        ("one pod", 1, vec![8600], 4400, vec![], vec![], 2, 8600),
        (
            "scale down",
            5,
            vec![12000; 5],
            20000,
            vec![],
            vec![],
            3,
            12000,
        ),
        (
            "tolerance",
            3,
            vec![20000, 21000, 21000],
            20000,
            vec![],
            vec![],
            3,
            20666,
        ),
        (
            "missing metrics, no change",
            5,
            vec![20000, 19000, 21000],
            20000,
            vec![],
            vec![],
            5,
            20000,
        ),
        (
            "during a rolling update with max surge",
            2,
            vec![10000, 10000],
            17000,
            vec![],
            vec!["Running"; 3],
            2,
            10000,
        ),
        (
            "pending pods scaling up count as zero",
            2,
            vec![30000, 30000],
            10000,
            vec![],
            vec!["Running", "Running", "Pending"],
            6,
            30000,
        ),
    ];
    for (name, current, values, target, ready, phases, want, usage) in cases {
        let case = Case {
            current,
            ready,
            phase: phases,
            ..Default::default()
        };
        let metrics: PodMetricsInfo = values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("test-pod-{i}"), metric(*v)))
            .collect();
        let got = CALCULATOR
            .plain_metric_replicas(current, target, None, &case.pods(), metrics, now())
            .expect(name);
        assert_eq!(got, (want, usage), "{name}");
    }
}

/// Object and External metrics: one value against a total or per-pod target.
#[test]
fn object_and_external_replicas_follow_upstream_cases() {
    let pods = |ready: Vec<bool>, n: i32| {
        Case {
            current: n,
            ready,
            ..Default::default()
        }
        .pods()
    };
    // (name, current, ready, usage, target, want)
    let totals = [
        ("object scale up", 3, vec![], 20000, 15000, 4),
        (
            "object ignores unready pods",
            3,
            vec![false, true, false],
            50000,
            10000,
            5,
        ),
        ("object scale down", 5, vec![], 12000, 20000, 3),
        ("object tolerance", 3, vec![], 20666, 20000, 3),
        (
            "external ignores unready pods",
            3,
            vec![false, true, false],
            8600,
            4400,
            2,
        ),
        ("external scale down", 5, vec![], 8600, 14334, 3),
        ("external tolerance", 3, vec![], 8600, 8888, 3),
    ];
    for (name, current, ready, usage, target, want) in totals {
        let ratio = usage as f64 / target as f64;
        let got = CALCULATOR
            .usage_ratio_replicas(current, ratio, &pods(ready, current))
            .expect(name);
        assert_eq!(got, want, "{name}");
    }
    assert_eq!(
        CALCULATOR.usage_ratio_replicas(0, 2.5, &[]),
        Ok(3),
        "from zero"
    );
    // (name, status replicas, usage, per-pod target, want, per-pod usage)
    let per_pod = [
        ("object per pod scale up", 3, 20000, 5000, 4, 6667),
        ("object per pod scale down", 5, 6000, 2000, 3, 1200),
        ("object per pod tolerance", 4, 20166, 5000, 4, 5042),
        ("external per pod scale up", 3, 8600, 2150, 4, 2867),
        ("external per pod scale down", 5, 8600, 2867, 3, 1720),
        ("external per pod tolerance", 3, 8600, 2900, 3, 2867),
    ];
    for (name, status, usage, target, want, average) in per_pod {
        assert_eq!(
            CALCULATOR.per_pod_replicas(status, usage, target),
            (want, average),
            "{name}"
        );
    }
}

/// Upstream's `TestGroupPods`.
#[test]
fn pods_are_grouped_as_upstream() {
    let pod = |name: &str, phase: &str, start: Option<i64>, ready: Option<(&str, i64)>| {
        let conditions = ready.map(|(status, since)| {
            json!([{"type": "Ready", "status": status, "lastTransitionTime": ago(since).to_string()}])
        });
        Arc::new(
            serde_json::from_value::<Pod>(json!({
                "metadata": {"name": name},
                "status": {"phase": phase, "startTime": start.map(|s| ago(s).to_string()), "conditions": conditions},
            }))
            .expect("pod"),
        )
    };
    let m = |value: i64, age: i64, window: u64| PodMetric {
        timestamp: ago(age),
        window: Duration::from_secs(window),
        value,
    };
    type GroupCase = (
        &'static str,
        Vec<Arc<Pod>>,
        Vec<(&'static str, PodMetric)>,
        Option<&'static str>,
        usize,
        Vec<&'static str>,
        Vec<&'static str>,
        Vec<&'static str>,
    );
    let cases: Vec<GroupCase> = vec![
        (
            "void",
            vec![],
            vec![],
            Some("cpu"),
            0,
            vec![],
            vec![],
            vec![],
        ),
        (
            "count in a ready pod - memory",
            vec![pod("bentham", "Succeeded", None, None)],
            vec![("bentham", m(1, 0, 60))],
            Some("memory"),
            1,
            vec![],
            vec![],
            vec![],
        ),
        (
            "unready a pod without ready condition - CPU",
            vec![pod("lucretius", "Succeeded", Some(0), None)],
            vec![("lucretius", m(1, 0, 0))],
            Some("cpu"),
            0,
            vec!["lucretius"],
            vec![],
            vec![],
        ),
        (
            "count in a ready pod with fresh metrics during initialization period - CPU",
            vec![pod("bentham", "Succeeded", Some(60), Some(("True", 30)))],
            vec![("bentham", m(1, 0, 30))],
            Some("cpu"),
            1,
            vec![],
            vec![],
            vec![],
        ),
        (
            "unready a ready pod without fresh metrics during initialization period - CPU",
            vec![pod("bentham", "Succeeded", Some(60), Some(("True", 30)))],
            vec![("bentham", m(1, 0, 60))],
            Some("cpu"),
            0,
            vec!["bentham"],
            vec![],
            vec![],
        ),
        (
            "unready an unready pod during initialization period - CPU",
            vec![pod(
                "lucretius",
                "Succeeded",
                Some(600),
                Some(("False", 594)),
            )],
            vec![("lucretius", m(1, 0, 0))],
            Some("cpu"),
            0,
            vec!["lucretius"],
            vec![],
            vec![],
        ),
        (
            "count in a ready pod without fresh metrics after initialization period - CPU",
            vec![pod("bentham", "Succeeded", Some(180), Some(("True", 180)))],
            vec![("bentham", m(1, 120, 60))],
            Some("cpu"),
            1,
            vec![],
            vec![],
            vec![],
        ),
        (
            "count in an unready pod that was ready after initialization period - CPU",
            vec![pod(
                "lucretius",
                "Succeeded",
                Some(600),
                Some(("False", 540)),
            )],
            vec![("lucretius", m(1, 0, 0))],
            Some("cpu"),
            1,
            vec![],
            vec![],
            vec![],
        ),
        (
            "unready pod that has never been ready after initialization period - CPU",
            vec![pod(
                "lucretius",
                "Succeeded",
                Some(600),
                Some(("False", 590)),
            )],
            vec![("lucretius", m(1, 0, 0))],
            Some("cpu"),
            1,
            vec![],
            vec![],
            vec![],
        ),
        (
            "a missing pod",
            vec![pod("epicurus", "Succeeded", Some(180), None)],
            vec![],
            Some("cpu"),
            0,
            vec![],
            vec!["epicurus"],
            vec![],
        ),
        (
            "several pods",
            vec![
                pod("lucretius", "Succeeded", Some(0), None),
                pod("niccolo", "Succeeded", Some(180), Some(("True", 180))),
                pod("epicurus", "Succeeded", Some(180), None),
            ],
            vec![("lucretius", m(1, 0, 0)), ("niccolo", m(1, 0, 0))],
            Some("cpu"),
            1,
            vec!["lucretius"],
            vec!["epicurus"],
            vec![],
        ),
        (
            "pending pods are unreadied",
            vec![pod("unscheduled", "Pending", None, None)],
            vec![],
            Some("cpu"),
            0,
            vec!["unscheduled"],
            vec![],
            vec![],
        ),
        (
            "ignore pods in a failed state",
            vec![pod("failed", "Failed", None, None)],
            vec![("failed", m(1, 0, 0))],
            Some("cpu"),
            0,
            vec![],
            vec![],
            vec!["failed"],
        ),
    ];
    for (name, pods, metrics, resource, ready, unready, missing, ignored) in cases {
        let metrics: PodMetricsInfo = metrics
            .into_iter()
            .map(|(n, m)| (n.to_string(), m))
            .collect();
        let groups = CALCULATOR.group_pods(&pods, &metrics, resource, now());
        let set = |names: Vec<&str>| names.into_iter().map(str::to_string).collect();
        assert_eq!(
            groups,
            PodGroups {
                ready,
                unready: set(unready),
                missing: set(missing),
                ignored: set(ignored)
            },
            "{name}"
        );
    }
    let mut deleted = (*pod("deleted", "Pending", None, None)).clone();
    deleted.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
    let metrics: PodMetricsInfo = [("deleted".to_string(), m(1, 0, 0))].into();
    let groups = CALCULATOR.group_pods(&[Arc::new(deleted)], &metrics, Some("cpu"), now());
    assert_eq!(groups.ignored.len(), 1, "pods being deleted are ignored");
}

/// Upstream's `TestCalculatePodRequests`.
#[test]
fn requests_sum_containers_and_sidecars() {
    let pod = |containers: serde_json::Value, init: serde_json::Value| {
        vec![Arc::new(
            serde_json::from_value::<Pod>(json!({
                "metadata": {"name": "test-pod"},
                "spec": {"containers": containers, "initContainers": init},
            }))
            .expect("pod"),
        )]
    };
    let two = pod(
        json!([{"name": "container1", "resources": {"requests": {"cpu": "100m"}}},
               {"name": "container2", "resources": {"requests": {"cpu": "50m"}}}]),
        json!([]),
    );
    let want = |v: i64| BTreeMap::from([("test-pod".to_string(), v)]);
    assert_eq!(calculate_requests(&[], None, "cpu"), Ok(BTreeMap::new()));
    assert_eq!(calculate_requests(&two, None, "cpu"), Ok(want(150)));
    assert_eq!(
        calculate_requests(&two, Some("container1"), "cpu"),
        Ok(want(100))
    );
    assert_eq!(
        calculate_requests(&two, Some("nope"), "cpu")
            .expect_err("no such container")
            .to_string(),
        "container nope not found in Pod test-pod"
    );
    let missing = pod(json!([{"name": "container1"}]), json!([]));
    assert_eq!(
        calculate_requests(&missing, None, "cpu")
            .expect_err("no request")
            .to_string(),
        "missing request for cpu in container container1 of Pod test-pod"
    );
    let sidecar = pod(
        json!([{"name": "container1", "resources": {"requests": {"cpu": "100m"}}}]),
        json!([{"name": "init-container1", "resources": {"requests": {"cpu": "20m"}}},
               {"name": "restartable-container1", "restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}}]),
    );
    assert_eq!(calculate_requests(&sidecar, None, "cpu"), Ok(want(150)));
}
