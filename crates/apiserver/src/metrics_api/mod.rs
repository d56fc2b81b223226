//! `metrics.k8s.io/v1beta1`: the resource usage of nodes and pods, as metrics-server serves it
//! upstream (behind API aggregation; ferry serves the group itself until aggregation lands).
//!
//! Every `--metric-resolution` the server scrapes each node's kubelet at `/metrics/resource`
//! ([`scrape`]) and keeps, per node and per container, the last two cumulative CPU samples and
//! the last memory working set. CPU usage is the rate between the two samples (or since the
//! container started, for a container seen once), memory the working set, as metrics-server's
//! storage computes them; a pod is served once all its containers have a usage. `kubectl top`
//! and the HorizontalPodAutoscaler read these objects (`NodeMetrics`, `PodMetrics`); nothing is
//! stored.

mod prom;
pub mod scrape;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use ferry_api::quantity::{Format, Quantity};
use parking_lot::RwLock;
use serde_json::{json, Value};

use crate::status::ApiError;
use ferry_api::selector::LabelSelector;

/// The group.
pub const GROUP: &str = "metrics.k8s.io";

/// One cumulative CPU reading.
#[derive(Debug, Clone, Copy, PartialEq)]
struct CpuSample {
    /// CPU seconds used so far.
    seconds: f64,
    /// When, in seconds since the epoch.
    at: f64,
}

/// What is served for one node or container: usage over a window ending at `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Usage {
    nanocores: u64,
    memory: u64,
    timestamp: f64,
    window: f64,
}

/// The readings kept for one node or container.
#[derive(Debug, Clone, Default)]
struct Series {
    last: Option<CpuSample>,
    usage: Option<Usage>,
}

impl Series {
    /// Adds a reading; `started` (seconds since the epoch) stands in for the previous reading of
    /// a container seen for the first time, at zero CPU.
    fn record(&mut self, cpu: CpuSample, memory: u64, started: Option<f64>) {
        let previous = self.last.or_else(|| {
            started
                .filter(|s| *s < cpu.at)
                .map(|at| CpuSample { seconds: 0.0, at })
        });
        if let Some(previous) = previous {
            let window = cpu.at - previous.at;
            if window > 0.0 && cpu.seconds >= previous.seconds {
                self.usage = Some(Usage {
                    nanocores: ((cpu.seconds - previous.seconds) / window * 1e9).round() as u64,
                    memory,
                    timestamp: cpu.at,
                    window,
                });
            }
        }
        if self.last.is_none_or(|l| cpu.at > l.at) {
            self.last = Some(cpu);
        }
    }
}

/// One pod's containers and labels.
#[derive(Debug, Clone, Default)]
struct PodSeries {
    labels: BTreeMap<String, String>,
    containers: BTreeMap<String, Series>,
    /// The scrape round that last saw the pod.
    seen: u64,
}

#[derive(Default)]
struct State {
    nodes: HashMap<String, (BTreeMap<String, String>, Series, u64)>,
    pods: HashMap<(String, String), PodSeries>,
    round: u64,
}

/// The usage the server serves.
#[derive(Default)]
pub struct ResourceMetrics {
    state: RwLock<State>,
}

fn rfc3339(seconds: f64) -> String {
    jiff::Timestamp::from_second(seconds as i64)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// A Go duration for a window (`15s`, `10.435s`).
fn go_seconds(seconds: f64) -> String {
    let millis = (seconds * 1000.0).round() as u64;
    if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        let text = format!("{}.{:03}", millis / 1000, millis % 1000);
        format!("{}s", text.trim_end_matches('0'))
    }
}

fn usage_json(usage: &Usage) -> Value {
    let cpu = Quantity::parse(&format!("{}n", usage.nanocores))
        .map(|q| q.canonical(Format::DecimalSi))
        .unwrap_or_else(|_| "0".into());
    let memory = Quantity::from_units(i64::try_from(usage.memory).unwrap_or(i64::MAX))
        .canonical(Format::BinarySi);
    json!({"cpu": cpu, "memory": memory})
}

/// A reading of usage: (cpu seconds, at, memory bytes).
pub type NodeUsage = (f64, f64, u64);

/// A container: (namespace, pod, container).
pub type ContainerKey = (String, String, String);

/// A container's reading: (cpu seconds, at, memory, started).
pub type ContainerUsage = (f64, f64, u64, Option<f64>);

/// Pods' labels by (namespace, name).
pub type PodLabels = HashMap<(String, String), BTreeMap<String, String>>;

/// A node's readings from one scrape.
pub struct NodeReading {
    /// The node.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The node's own CPU and memory, if reported: (cpu seconds, at, memory bytes).
    pub node: Option<NodeUsage>,
    /// Per container: (namespace, pod, container) → (cpu seconds, at, memory, started).
    pub containers: Vec<(ContainerKey, ContainerUsage)>,
}

impl ResourceMetrics {
    /// Takes one scrape round: the readings of every node that answered, and the labels of
    /// every pod (`None` when the pods could not be listed: then no pod is forgotten for being
    /// absent); pods and nodes not seen for two rounds are forgotten.
    pub fn record_round(&self, readings: Vec<NodeReading>, pod_labels: Option<&PodLabels>) {
        let mut state = self.state.write();
        state.round += 1;
        let round = state.round;
        for reading in readings {
            let entry = state
                .nodes
                .entry(reading.name.clone())
                .or_insert_with(|| (BTreeMap::new(), Series::default(), round));
            entry.0 = reading.labels;
            entry.2 = round;
            if let Some((seconds, at, memory)) = reading.node {
                entry.1.record(CpuSample { seconds, at }, memory, None);
            }
            let mut reported: HashMap<(String, String), Vec<String>> = HashMap::new();
            for ((namespace, pod, container), (seconds, at, memory, started)) in reading.containers
            {
                let key = (namespace, pod);
                reported
                    .entry(key.clone())
                    .or_default()
                    .push(container.clone());
                let labels = pod_labels
                    .and_then(|l| l.get(&key).cloned())
                    .unwrap_or_default();
                let pod = state.pods.entry(key).or_default();
                pod.labels = labels;
                pod.seen = round;
                pod.containers.entry(container).or_default().record(
                    CpuSample { seconds, at },
                    memory,
                    started,
                );
            }
            // A pod's containers are the ones its kubelet reported now: a pod recreated under
            // its name with other containers leaves no ghosts.
            for (key, containers) in reported {
                if let Some(pod) = state.pods.get_mut(&key) {
                    pod.containers.retain(|name, _| containers.contains(name));
                }
            }
        }
        state.nodes.retain(|_, (_, _, seen)| *seen + 2 > round);
        state.pods.retain(|key, pod| {
            pod.seen + 2 > round && pod_labels.is_none_or(|l| l.contains_key(key))
        });
    }

    fn node_json(name: &str, labels: &BTreeMap<String, String>, usage: &Usage) -> Value {
        json!({"kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
            "metadata": {"name": name, "creationTimestamp": rfc3339(jiff::Timestamp::now().as_second() as f64), "labels": labels},
            "timestamp": rfc3339(usage.timestamp), "window": go_seconds(usage.window),
            "usage": usage_json(usage)})
    }

    fn pod_json(namespace: &str, name: &str, pod: &PodSeries) -> Option<Value> {
        let mut containers = Vec::new();
        let (mut timestamp, mut window) = (0f64, 0f64);
        for (container, series) in &pod.containers {
            let usage = series.usage?;
            timestamp = timestamp.max(usage.timestamp);
            window = window.max(usage.window);
            containers.push(json!({"name": container, "usage": usage_json(&usage)}));
        }
        if containers.is_empty() {
            return None;
        }
        Some(
            json!({"kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
            "metadata": {"name": name, "namespace": namespace,
                "creationTimestamp": rfc3339(jiff::Timestamp::now().as_second() as f64), "labels": pod.labels},
            "timestamp": rfc3339(timestamp), "window": go_seconds(window), "containers": containers}),
        )
    }

    /// `GET` of the collection or one object of `plural` (`nodes` or `pods`).
    pub fn answer(
        &self,
        plural: &str,
        namespace: &str,
        name: &str,
        query: &HashMap<String, String>,
    ) -> Result<Value, ApiError> {
        let selector =
            match query.get("labelSelector").filter(|s| !s.is_empty()) {
                Some(text) => Some(LabelSelector::parse(text).map_err(|e| {
                    ApiError::bad_request(format!("unable to parse requirement: {e}"))
                })?),
                None => None,
            };
        let selected =
            |labels: &BTreeMap<String, String>| selector.as_ref().is_none_or(|s| s.matches(labels));
        let state = self.state.read();
        let not_found = |resource: &str| {
            ApiError::not_found(crate::status::Target {
                group: GROUP,
                resource,
                name,
            })
        };
        match plural {
            "nodes" if !name.is_empty() => state
                .nodes
                .get(name)
                .and_then(|(labels, series, _)| {
                    series.usage.map(|u| Self::node_json(name, labels, &u))
                })
                .ok_or_else(|| not_found("nodes")),
            "nodes" => {
                let mut items: Vec<(&String, Value)> = state
                    .nodes
                    .iter()
                    .filter(|(_, (labels, _, _))| selected(labels))
                    .filter_map(|(n, (labels, series, _))| {
                        series.usage.map(|u| (n, Self::node_json(n, labels, &u)))
                    })
                    .collect();
                items.sort_by(|a, b| a.0.cmp(b.0));
                Ok(
                    json!({"kind": "NodeMetricsList", "apiVersion": "metrics.k8s.io/v1beta1",
                    "metadata": {}, "items": items.into_iter().map(|(_, v)| v).collect::<Vec<_>>()}),
                )
            }
            _ if !name.is_empty() => state
                .pods
                .get(&(namespace.to_string(), name.to_string()))
                .and_then(|pod| Self::pod_json(namespace, name, pod))
                .ok_or_else(|| not_found("pods")),
            _ => {
                let mut items: Vec<(&(String, String), Value)> = state
                    .pods
                    .iter()
                    .filter(|((ns, _), pod)| {
                        (namespace.is_empty() || ns == namespace) && selected(&pod.labels)
                    })
                    .filter_map(|(key, pod)| Self::pod_json(&key.0, &key.1, pod).map(|v| (key, v)))
                    .collect();
                items.sort_by(|a, b| a.0.cmp(b.0));
                Ok(
                    json!({"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1",
                    "metadata": {}, "items": items.into_iter().map(|(_, v)| v).collect::<Vec<_>>()}),
                )
            }
        }
    }
}

/// The default scrape period (metrics-server's `--metric-resolution`).
pub const DEFAULT_RESOLUTION: Duration = Duration::from_secs(15);

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(at: f64, cpu: f64, memory: u64) -> NodeReading {
        NodeReading {
            name: "n1".into(),
            labels: [("zone".to_string(), "a".to_string())].into(),
            node: Some((cpu * 4.0, at, memory * 10)),
            containers: vec![(
                ("default".into(), "web".into(), "app".into()),
                (cpu, at, memory, Some(at - 10.0)),
            )],
        }
    }

    fn labels() -> HashMap<(String, String), BTreeMap<String, String>> {
        [(
            ("default".to_string(), "web".to_string()),
            [("app".to_string(), "web".to_string())].into(),
        )]
        .into()
    }

    #[test]
    fn usage_is_the_rate_between_readings() {
        let metrics = ResourceMetrics::default();
        metrics.record_round(vec![reading(1000.0, 2.0, 64 << 20)], Some(&labels()));
        // One reading: the pod's rate since its container started (2 s in 10 s), the node none.
        let pod = metrics
            .answer("pods", "default", "web", &HashMap::new())
            .unwrap();
        assert_eq!(pod["containers"][0]["usage"]["cpu"], "200m");
        assert_eq!(pod["containers"][0]["usage"]["memory"], "64Mi");
        assert_eq!(pod["window"], "10s");
        assert_eq!(pod["metadata"]["labels"]["app"], "web");
        assert_eq!(
            metrics
                .answer("nodes", "", "n1", &HashMap::new())
                .unwrap_err()
                .code,
            404
        );
        metrics.record_round(vec![reading(1015.0, 5.0, 32 << 20)], Some(&labels()));
        let pod = metrics
            .answer("pods", "default", "web", &HashMap::new())
            .unwrap();
        assert_eq!(pod["containers"][0]["usage"]["cpu"], "200m");
        assert_eq!(pod["window"], "15s");
        let node = metrics.answer("nodes", "", "n1", &HashMap::new()).unwrap();
        assert_eq!(node["usage"]["cpu"], "800m");
        assert_eq!(node["usage"]["memory"], "320Mi");
        let list = metrics
            .answer(
                "pods",
                "",
                "",
                &[("labelSelector".to_string(), "app=web".to_string())].into(),
            )
            .unwrap();
        assert_eq!(list["items"].as_array().unwrap().len(), 1);
        let none = metrics
            .answer(
                "pods",
                "default",
                "",
                &[("labelSelector".to_string(), "app=db".to_string())].into(),
            )
            .unwrap();
        assert!(none["items"].as_array().unwrap().is_empty());
        let missing = metrics
            .answer("pods", "default", "nope", &HashMap::new())
            .unwrap_err();
        assert_eq!(missing.message, "pods.metrics.k8s.io \"nope\" not found");
        // The pod is gone: forgotten.
        metrics.record_round(vec![reading(1030.0, 6.0, 1)], Some(&HashMap::new()));
        assert_eq!(
            metrics
                .answer("pods", "default", "web", &HashMap::new())
                .unwrap_err()
                .code,
            404
        );
    }

    #[test]
    fn a_recreated_pod_keeps_only_its_reported_containers() {
        let metrics = ResourceMetrics::default();
        let round = |container: &str, at: f64| NodeReading {
            name: "n1".into(),
            labels: BTreeMap::new(),
            node: None,
            containers: vec![(
                ("default".into(), "web".into(), container.into()),
                (1.0, at, 1 << 20, Some(at - 10.0)),
            )],
        };
        metrics.record_round(vec![round("app", 1000.0)], Some(&labels()));
        metrics.record_round(vec![round("web", 1015.0)], Some(&labels()));
        let pod = metrics
            .answer("pods", "default", "web", &HashMap::new())
            .unwrap();
        let names: Vec<&str> = pod["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["web"]);
        // A round whose pod list failed forgets nobody.
        metrics.record_round(vec![round("web", 1030.0)], None);
        assert!(metrics
            .answer("pods", "default", "web", &HashMap::new())
            .is_ok());
    }

    #[test]
    fn windows_read_as_go_durations() {
        assert_eq!(go_seconds(15.0), "15s");
        assert_eq!(go_seconds(10.435), "10.435s");
        assert_eq!(go_seconds(1.5), "1.5s");
    }
}
