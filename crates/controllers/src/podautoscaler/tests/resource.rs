//! Resource utilization cases (upstream's `TestReplicaCalc*` with a resource).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::{ago, now, CALCULATOR};
use crate::podautoscaler::metrics::{pod_metrics_info, PodMetrics, PodMetricsInfo};

/// When a pod started: long ago (CPU samples count), or just now (its CPU may be start-up).
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Start {
    Cool,
    Hot,
}

/// One of upstream's `replicaCalcTestCase`s for a resource metric.
pub(super) struct Case {
    pub(super) name: &'static str,
    pub(super) current: i32,
    /// The replicas, or a part of the error message.
    pub(super) expected: Result<i32, &'static str>,
    /// Each pod's request of both its containers (pods beyond the list request nothing).
    pub(super) requests: Vec<String>,
    /// Metric values per pod, per container.
    pub(super) levels: Vec<Vec<i64>>,
    /// Names of the pods the metrics are for, when not the pods'.
    pub(super) metric_pods: Vec<&'static str>,
    pub(super) target: i32,
    pub(super) utilization: i32,
    pub(super) value: i64,
    pub(super) container: Option<&'static str>,
    pub(super) ready: Vec<bool>,
    pub(super) start: Vec<Start>,
    pub(super) phase: Vec<&'static str>,
    pub(super) deleting: Vec<bool>,
}

impl Default for Case {
    fn default() -> Case {
        Case {
            name: "",
            current: 0,
            expected: Ok(0),
            requests: vec![],
            levels: vec![],
            metric_pods: vec![],
            target: 0,
            utilization: 0,
            value: 0,
            container: None,
            ready: vec![],
            start: vec![],
            phase: vec![],
            deleting: vec![],
        }
    }
}

/// Every container of every pod at the same level (upstream's `makePodMetricLevels`).
fn levels(values: &[i64]) -> Vec<Vec<i64>> {
    values.iter().map(|v| vec![*v, *v]).collect()
}

fn requests(n: usize, request: &str) -> Vec<String> {
    vec![request.to_string(); n]
}

fn strs(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

impl Case {
    pub(super) fn pods(&self) -> Vec<Arc<Pod>> {
        let count = usize::try_from(self.current)
            .unwrap_or(0)
            .max(self.phase.len());
        (0..count)
            .map(|i| {
                let ready = self.ready.get(i).copied().unwrap_or(true);
                let start = self.start.get(i).copied().unwrap_or(Start::Cool);
                let started = match start {
                    Start::Cool => ago(3600),
                    Start::Hot => now(),
                };
                // A pod that just started became ready just now, if it is ready.
                let transition = (start == Start::Hot).then(|| now().to_string());
                let resources = match self.requests.get(i) {
                    Some(r) => json!({"requests": {"cpu": r}}),
                    None => json!({}),
                };
                let mut pod = json!({
                    "metadata": {"name": format!("test-pod-{i}"), "namespace": "test-namespace",
                        "labels": {"name": "test-pod"}},
                    "spec": {"containers": [
                        {"name": "container1", "resources": resources},
                        {"name": "container2", "resources": resources}]},
                    "status": {"phase": self.phase.get(i).copied().unwrap_or("Running"),
                        "startTime": started.to_string(),
                        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                            "lastTransitionTime": transition}]},
                });
                if self.deleting.get(i).copied().unwrap_or(false) {
                    pod["metadata"]["deletionTimestamp"] = json!(now().to_string());
                }
                Arc::new(serde_json::from_value(pod).expect("pod"))
            })
            .collect()
    }

    fn metrics(&self) -> PodMetricsInfo {
        let items: Vec<PodMetrics> = self
            .levels
            .iter()
            .enumerate()
            .map(|(i, values)| {
                let name = self
                    .metric_pods
                    .get(i)
                    .map_or_else(|| format!("test-pod-{i}"), |n| n.to_string());
                let containers: Vec<_> = values
                    .iter()
                    .enumerate()
                    .map(|(j, v)| json!({"name": format!("container{}", j + 1), "usage": {"cpu": format!("{v}m")}}))
                    .collect();
                serde_json::from_value(json!({
                    "metadata": {"name": name, "namespace": "test-namespace"},
                    "timestamp": now().to_string(), "window": "1m", "containers": containers,
                }))
                .expect("pod metrics")
            })
            .collect();
        pod_metrics_info(&items, "cpu", self.container)
    }

    fn run(&self) {
        let result = CALCULATOR.resource_replicas(
            self.current,
            self.target,
            "cpu",
            self.container,
            &self.pods(),
            self.metrics(),
            now(),
        );
        match (&self.expected, result) {
            (Ok(replicas), Ok(result)) => assert_eq!(
                (result.replicas, result.utilization, result.raw_average),
                (*replicas, self.utilization, self.value),
                "{}",
                self.name
            ),
            (Err(part), Err(error)) => {
                assert!(error.to_string().contains(part), "{}: {error}", self.name)
            }
            (want, got) => panic!("{}: want {want:?}, got {got:?}", self.name),
        }
    }
}

#[test]
fn resource_replicas_follow_upstream_cases() {
    use Start::{Cool, Hot};
    let cases = vec![
        Case {
            name: "disjoint resources and metrics",
            current: 1,
            expected: Err("no metrics returned matched known pods"),
            requests: requests(1, "1"),
            levels: levels(&[100]),
            metric_pods: vec!["an-older-pod-name"],
            target: 100,
            ..Default::default()
        },
        Case {
            name: "scale up",
            current: 3,
            expected: Ok(5),
            requests: requests(3, "1"),
            levels: levels(&[300, 500, 700]),
            target: 30,
            utilization: 50,
            value: 2 * 500,
            ..Default::default()
        },
        Case {
            name: "container scale up",
            current: 3,
            expected: Ok(5),
            requests: requests(3, "1"),
            levels: vec![vec![1000, 300], vec![1000, 500], vec![1000, 700]],
            target: 30,
            utilization: 50,
            value: 500,
            container: Some("container2"),
            ..Default::default()
        },
        Case {
            name: "scale up with an unready pod: less scale",
            current: 3,
            expected: Ok(4),
            ready: vec![false, true, true],
            requests: requests(3, "1"),
            levels: levels(&[300, 500, 700]),
            target: 30,
            utilization: 60,
            value: 2 * 600,
            ..Default::default()
        },
        Case {
            name: "container scale up with a hot CPU pod: less scale",
            current: 3,
            expected: Ok(4),
            start: vec![Hot, Cool, Cool],
            requests: requests(3, "1"),
            levels: vec![vec![0, 300], vec![0, 500], vec![0, 700]],
            target: 30,
            utilization: 60,
            value: 600,
            container: Some("container2"),
            ..Default::default()
        },
        Case {
            name: "scale up with a hot CPU pod: less scale",
            current: 3,
            expected: Ok(4),
            start: vec![Hot, Cool, Cool],
            requests: requests(3, "1"),
            levels: levels(&[300, 500, 700]),
            target: 30,
            utilization: 60,
            value: 2 * 600,
            ..Default::default()
        },
        Case {
            name: "scale up with unready pods: no scale",
            current: 3,
            expected: Ok(3),
            ready: vec![true, false, false],
            requests: requests(3, "1"),
            levels: levels(&[400, 500, 700]),
            target: 30,
            utilization: 40,
            value: 2 * 400,
            ..Default::default()
        },
        Case {
            name: "hot CPU pods: no scale",
            current: 3,
            expected: Ok(3),
            ready: vec![true, false, false],
            start: vec![Cool, Hot, Hot],
            requests: requests(3, "1"),
            levels: levels(&[400, 500, 700]),
            target: 30,
            utilization: 40,
            value: 2 * 400,
            ..Default::default()
        },
        Case {
            name: "scale up ignores failed pods",
            current: 2,
            expected: Ok(4),
            ready: vec![true, true, false, false],
            phase: vec!["Running", "Running", "Failed", "Failed"],
            requests: requests(4, "1"),
            levels: levels(&[500, 700]),
            target: 30,
            utilization: 60,
            value: 2 * 600,
            ..Default::default()
        },
        Case {
            name: "missing container metric, scale up ignores failed pods",
            current: 2,
            expected: Ok(4),
            ready: vec![true, true, false, false],
            phase: vec!["Running", "Running", "Failed", "Failed"],
            requests: requests(4, "1"),
            levels: vec![vec![1000, 500], vec![9000, 700], vec![1000], vec![9000]],
            target: 30,
            utilization: 60,
            value: 600,
            container: Some("container2"),
            ..Default::default()
        },
        Case {
            name: "scale up ignores pods being deleted",
            current: 2,
            expected: Ok(4),
            ready: vec![true, true, false, false],
            phase: vec!["Running"; 4],
            deleting: vec![false, false, true, true],
            requests: requests(4, "1"),
            levels: levels(&[500, 700]),
            target: 30,
            utilization: 60,
            value: 2 * 600,
            ..Default::default()
        },
        Case {
            name: "container scale up ignores pods being deleted",
            current: 2,
            expected: Ok(4),
            ready: vec![true, true, false, false],
            phase: vec!["Running"; 4],
            deleting: vec![false, false, true, true],
            requests: requests(4, "1"),
            levels: levels(&[500, 700]),
            target: 30,
            utilization: 60,
            value: 600,
            container: Some("container1"),
            ..Default::default()
        },
        Case {
            name: "scale down",
            current: 5,
            expected: Ok(3),
            requests: requests(5, "1"),
            levels: levels(&[100, 300, 500, 250, 250]),
            target: 50,
            utilization: 28,
            value: 2 * 280,
            ..Default::default()
        },
        Case {
            name: "container scale down",
            current: 5,
            expected: Ok(3),
            requests: requests(5, "1"),
            levels: vec![
                vec![1000, 100],
                vec![1000, 300],
                vec![1000, 500],
                vec![1000, 250],
                vec![1000, 250],
            ],
            target: 50,
            utilization: 28,
            value: 280,
            container: Some("container2"),
            ..Default::default()
        },
        Case {
            name: "scale down excludes unready pods",
            current: 5,
            expected: Ok(2),
            ready: vec![true, true, true, false, false],
            requests: requests(5, "1"),
            levels: levels(&[100, 300, 500, 250, 250]),
            target: 50,
            utilization: 30,
            value: 2 * 300,
            ..Default::default()
        },
        Case {
            name: "scale down excludes unscheduled pods",
            current: 5,
            expected: Ok(1),
            ready: vec![true, false, false, false, false],
            phase: vec!["Running", "Pending", "Pending", "Pending", "Pending"],
            requests: requests(5, "1"),
            levels: levels(&[100]),
            target: 50,
            utilization: 10,
            value: 2 * 100,
            ..Default::default()
        },
        Case {
            name: "container scale down excludes unscheduled pods",
            current: 5,
            expected: Ok(1),
            ready: vec![true, false, false, false, false],
            phase: vec!["Running", "Pending", "Pending", "Pending", "Pending"],
            requests: requests(5, "1"),
            levels: vec![
                vec![1000, 100],
                vec![1000, 300],
                vec![1000, 500],
                vec![1000, 250],
                vec![1000, 250],
            ],
            target: 50,
            utilization: 10,
            value: 100,
            container: Some("container2"),
            ..Default::default()
        },
        Case {
            name: "scale down ignores hot CPU pods",
            current: 5,
            expected: Ok(2),
            start: vec![Cool, Cool, Cool, Hot, Hot],
            requests: requests(5, "1"),
            levels: levels(&[100, 300, 500, 250, 250]),
            target: 50,
            utilization: 30,
            value: 2 * 300,
            ..Default::default()
        },
        Case {
            name: "container scale down ignores hot CPU pods",
            current: 5,
            expected: Ok(2),
            start: vec![Cool, Cool, Cool, Hot, Hot],
            requests: requests(5, "1"),
            levels: vec![
                vec![1000, 100],
                vec![1000, 300],
                vec![1000, 500],
                vec![1000, 1000],
                vec![1000, 1000],
            ],
            target: 50,
            utilization: 30,
            value: 300,
            container: Some("container2"),
            ..Default::default()
        },
        Case {
            name: "scale down ignores failed pods",
            current: 5,
            expected: Ok(3),
            ready: vec![true, true, true, true, true, false, false],
            phase: vec![
                "Running", "Running", "Running", "Running", "Running", "Failed", "Failed",
            ],
            requests: requests(7, "1"),
            levels: levels(&[100, 300, 500, 250, 250]),
            target: 50,
            utilization: 28,
            value: 2 * 280,
            ..Default::default()
        },
        Case {
            name: "scale down ignores pods being deleted, still running",
            current: 5,
            expected: Ok(3),
            ready: vec![true, true, true, true, true, false, false],
            phase: vec!["Running"; 7],
            deleting: vec![false, false, false, false, false, true, true],
            requests: requests(7, "1"),
            levels: vec![
                vec![1000, 100],
                vec![1000, 300],
                vec![1000, 500],
                vec![1000, 250],
                vec![1000, 250],
            ],
            target: 50,
            utilization: 28,
            value: 280,
            container: Some("container2"),
            ..Default::default()
        },
        Case {
            name: "tolerance",
            current: 3,
            expected: Ok(3),
            requests: strs(&["900m", "1", "1100m"]),
            levels: levels(&[1010, 1030, 1020]),
            target: 100,
            utilization: 102,
            value: 2 * 1020,
            ..Default::default()
        },
        Case {
            name: "superfluous metrics",
            current: 4,
            expected: Ok(24),
            requests: requests(4, "1"),
            levels: levels(&[4000, 9500, 3000, 7000, 3200, 2000]),
            target: 100,
            utilization: 587,
            value: 2 * 5875,
            ..Default::default()
        },
        Case {
            name: "missing metrics",
            current: 4,
            expected: Ok(3),
            requests: requests(4, "1"),
            levels: levels(&[400, 95]),
            target: 100,
            utilization: 24,
            value: 495,
            ..Default::default()
        },
        Case {
            name: "empty CPU request",
            current: 1,
            expected: Err("missing request for cpu in container container1 of Pod test-pod-0"),
            levels: levels(&[200]),
            target: 100,
            ..Default::default()
        },
        Case {
            name: "missing metrics, no change: equal",
            current: 2,
            expected: Ok(2),
            requests: requests(2, "1"),
            levels: levels(&[1000]),
            target: 100,
            utilization: 100,
            value: 2 * 1000,
            ..Default::default()
        },
        Case {
            name: "missing metrics, no change: greater",
            current: 2,
            expected: Ok(2),
            requests: requests(2, "1"),
            levels: levels(&[1900]),
            target: 100,
            utilization: 190,
            value: 2 * 1900,
            ..Default::default()
        },
        Case {
            name: "missing metrics, no change: less",
            current: 2,
            expected: Ok(2),
            requests: requests(2, "1"),
            levels: levels(&[600]),
            target: 100,
            utilization: 60,
            value: 2 * 600,
            ..Default::default()
        },
        Case {
            name: "missing metrics and an unready pod: no change",
            current: 3,
            expected: Ok(3),
            ready: vec![false, true, true],
            requests: requests(3, "1"),
            levels: levels(&[100, 450]),
            target: 50,
            utilization: 45,
            value: 2 * 450,
            ..Default::default()
        },
        Case {
            name: "missing metrics and a hot CPU pod: no change",
            current: 3,
            expected: Ok(3),
            start: vec![Hot, Cool, Cool],
            requests: requests(3, "1"),
            levels: levels(&[100, 450]),
            target: 50,
            utilization: 45,
            value: 2 * 450,
            ..Default::default()
        },
        Case {
            name: "missing metrics and an unready pod: scale up",
            current: 3,
            expected: Ok(4),
            ready: vec![false, true, true],
            requests: requests(3, "1"),
            levels: levels(&[100, 2000]),
            target: 50,
            utilization: 200,
            value: 2 * 2000,
            ..Default::default()
        },
        Case {
            name: "missing metrics and a hot CPU pod: scale up",
            current: 3,
            expected: Ok(4),
            ready: vec![false, true, true],
            start: vec![Hot, Cool, Cool],
            requests: requests(3, "1"),
            levels: levels(&[100, 2000]),
            target: 50,
            utilization: 200,
            value: 2 * 2000,
            ..Default::default()
        },
        Case {
            name: "missing metrics and an unready pod: scale down",
            current: 4,
            expected: Ok(3),
            ready: vec![false, true, true, true],
            requests: requests(4, "1"),
            levels: levels(&[100, 100, 100]),
            target: 50,
            utilization: 10,
            value: 2 * 100,
            ..Default::default()
        },
        Case {
            name: "missing metrics, scale down with a target over 100%",
            current: 4,
            expected: Ok(2),
            ready: vec![false, true, true, true],
            requests: strs(&["1", "1", "2", "2"]),
            levels: levels(&[200, 100, 100]),
            target: 300,
            utilization: 6,
            value: 2 * 100,
            ..Default::default()
        },
        Case {
            name: "during a rolling update with max surge",
            current: 2,
            expected: Ok(2),
            phase: vec!["Running"; 3],
            requests: requests(3, "1"),
            levels: levels(&[100, 100]),
            target: 50,
            utilization: 10,
            value: 2 * 100,
            ..Default::default()
        },
    ];
    for case in cases {
        case.run();
    }
}

/// Upstream's `TestReplicaCalcComputedToleranceAlgImplementation`: a target just past the
/// tolerance scales, one just within it does not.
#[test]
fn the_tolerance_is_applied_at_its_edge() {
    let start_pods = 10;
    let used: i64 = 10 * 150;
    let requested: i64 = 2 * used;
    let requested_to_used = (requested / used) as f64;
    let per_pod = requested / 10;
    let offsets = [100, -100, 10, -10, 2, -2, 1, -1, 0, 0];
    let requests: Vec<String> = offsets
        .iter()
        .map(|o| format!("{}m", per_pod + o))
        .collect();
    let target = (1.0 / (requested_to_used * (1.0 - CALCULATOR.tolerance))).abs() + 0.01;
    let used_ratio = used as f64 / (requested as f64 * target);
    let mut case = Case {
        name: "just past the tolerance",
        current: start_pods,
        expected: Ok((used_ratio * f64::from(start_pods)).ceil() as i32),
        requests,
        levels: levels(&[used / 10; 10]),
        target: (target * 100.0) as i32,
        utilization: (used * 100 / requested) as i32,
        value: 2 * used / 10,
        ..Default::default()
    };
    case.run();
    let target = (1.0 / (requested_to_used * (1.0 - CALCULATOR.tolerance))).abs() + 0.004;
    case.name = "just within the tolerance";
    case.target = (target * 100.0) as i32;
    case.expected = Ok(start_pods);
    case.run();
}
