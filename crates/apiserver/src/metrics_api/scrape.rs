//! The scrape loop: every resolution, each selected Node's kubelet is asked for
//! `/metrics/resource` (as the API server's kubelet client, like `pods/log`), and the readings go
//! to [`ResourceMetrics`]. Nodes are chosen by a label selector (metrics-server's
//! `--node-selector`); by default simulated nodes (`type=ferry-sim`) are left out, since
//! their addresses are made up.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ferry_store::{KeyRange, RangeRequest, Store};
use futures::StreamExt as _;
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::prom;
use super::{NodeReading, ResourceMetrics};
use crate::kubelet::{KubeletClient, Location};
use ferry_api::selector::LabelSelector;

/// The default node selector: real nodes only.
pub const DEFAULT_NODE_SELECTOR: &str = "type!=ferry-sim";
/// Kubelets asked at once.
const CONCURRENCY: usize = 32;

fn labels(object: &Value) -> BTreeMap<String, String> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

async fn objects(store: &dyn Store, prefix: &'static str) -> Option<Vec<Value>> {
    match store
        .range(RangeRequest::new(KeyRange::prefix(prefix)))
        .await
    {
        Ok(answer) => Some(
            answer
                .kvs
                .iter()
                .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
                .collect(),
        ),
        Err(error) => {
            tracing::warn!(%error, prefix, "metrics: listing failed");
            None
        }
    }
}

/// The readings of one kubelet's `/metrics/resource` text.
pub fn reading_of(
    name: &str,
    labels: BTreeMap<String, String>,
    text: &str,
    now: f64,
) -> NodeReading {
    let samples = prom::parse(text);
    let at = |s: &prom::Sample| s.timestamp_ms.map_or(now, |ms| ms as f64 / 1000.0);
    let mut node_cpu = None;
    let mut node_memory = None;
    type Key = (String, String, String);
    let mut cpu: HashMap<Key, (f64, f64)> = HashMap::new();
    let mut memory: HashMap<Key, u64> = HashMap::new();
    let mut started: HashMap<Key, f64> = HashMap::new();
    for sample in &samples {
        let key = || -> Option<Key> {
            Some((
                sample.labels.get("namespace")?.clone(),
                sample.labels.get("pod")?.clone(),
                sample.labels.get("container")?.clone(),
            ))
        };
        match sample.name.as_str() {
            "node_cpu_usage_seconds_total" => node_cpu = Some((sample.value, at(sample))),
            "node_memory_working_set_bytes" => node_memory = Some(sample.value as u64),
            "container_cpu_usage_seconds_total" => {
                if let Some(k) = key() {
                    cpu.insert(k, (sample.value, at(sample)));
                }
            }
            "container_memory_working_set_bytes" => {
                if let Some(k) = key() {
                    memory.insert(k, sample.value as u64);
                }
            }
            "container_start_time_seconds" => {
                if let Some(k) = key() {
                    started.insert(k, sample.value);
                }
            }
            _ => {}
        }
    }
    let containers = cpu
        .into_iter()
        .filter_map(|(key, (seconds, at))| {
            let memory = *memory.get(&key)?;
            let start = started.get(&key).copied();
            Some((key, (seconds, at, memory, start)))
        })
        .collect();
    NodeReading {
        name: name.to_string(),
        labels,
        node: match (node_cpu, node_memory) {
            (Some((seconds, at)), Some(memory)) => Some((seconds, at, memory)),
            _ => None,
        },
        containers,
    }
}

async fn fetch(client: &KubeletClient, location: &Location) -> Result<String, String> {
    let tls = client.connect(location).await.map_err(|e| e.message)?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = http::Request::get("/metrics/resource")
        .header(http::header::HOST, location.authority())
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if !status.is_success() {
        return Err(format!(
            "{status}: {}",
            String::from_utf8_lossy(&body).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// One round: every selected node, then the pods' labels.
async fn round(
    store: &dyn Store,
    client: &KubeletClient,
    selector: &LabelSelector,
    timeout: Duration,
) -> (
    Vec<NodeReading>,
    Option<HashMap<(String, String), BTreeMap<String, String>>>,
) {
    let nodes = objects(store, "/nodes/").await.unwrap_or_default();
    let now = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
    let readings: Vec<NodeReading> = futures::stream::iter(
        nodes
            .into_iter()
            .filter(|n| selector.matches(&labels(n)))
            .filter_map(|n| {
                let name = n.pointer("/metadata/name")?.as_str()?.to_string();
                Some((name, labels(&n), Location::of(&n).ok()?))
            }),
    )
    .map(|(name, labels, location)| async move {
        match tokio::time::timeout(timeout, fetch(client, &location)).await {
            Ok(Ok(text)) => Some(reading_of(&name, labels, &text, now)),
            Ok(Err(error)) => {
                tracing::debug!(node = %name, %error, "metrics: scrape failed");
                None
            }
            Err(_) => {
                tracing::debug!(node = %name, "metrics: scrape timed out");
                None
            }
        }
    })
    .buffer_unordered(CONCURRENCY)
    .filter_map(|r| async move { r })
    .collect()
    .await;
    if readings.is_empty() {
        // No kubelet answered (or none is selected: a simulated cluster): no pod to label.
        return (readings, None);
    }
    let pods = objects(store, "/pods/").await.map(|pods| {
        pods.into_iter()
            .filter_map(|p| {
                let namespace = p.pointer("/metadata/namespace")?.as_str()?.to_string();
                let name = p.pointer("/metadata/name")?.as_str()?.to_string();
                Some(((namespace, name), labels(&p)))
            })
            .collect()
    });
    (readings, pods)
}

/// Scrapes every `resolution` until the task is dropped; does nothing until the API server's
/// kubelet client is configured.
pub async fn run(
    store: Arc<dyn Store>,
    kubelet: Arc<OnceLock<KubeletClient>>,
    metrics: Arc<ResourceMetrics>,
    resolution: Duration,
    selector: LabelSelector,
) {
    let mut ticker = tokio::time::interval(resolution);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(client) = kubelet.get() else {
            continue;
        };
        let timeout = resolution.min(Duration::from_secs(10));
        let (readings, pods) = round(&*store, client, &selector, timeout).await;
        metrics.record_round(readings, pods.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_join_cpu_memory_and_start_times() {
        let text = "container_cpu_usage_seconds_total{container=\"app\",namespace=\"default\",pod=\"web\"} 3 1700000010000\n\
container_memory_working_set_bytes{container=\"app\",namespace=\"default\",pod=\"web\"} 1048576 1700000010000\n\
container_start_time_seconds{container=\"app\",namespace=\"default\",pod=\"web\"} 1700000000 1700000000000\n\
container_cpu_usage_seconds_total{container=\"side\",namespace=\"default\",pod=\"web\"} 1 1700000010000\n\
node_cpu_usage_seconds_total 100 1700000010000\n\
node_memory_working_set_bytes 2097152 1700000010000\n";
        let reading = reading_of("n1", BTreeMap::new(), text, 0.0);
        assert_eq!(reading.node, Some((100.0, 1_700_000_010.0, 2_097_152)));
        assert_eq!(
            reading.containers.len(),
            1,
            "a container without memory is left out"
        );
        let ((ns, pod, container), (cpu, at, memory, started)) = &reading.containers[0];
        assert_eq!(
            (ns.as_str(), pod.as_str(), container.as_str()),
            ("default", "web", "app")
        );
        assert_eq!(
            (*cpu, *at, *memory, *started),
            (3.0, 1_700_000_010.0, 1_048_576, Some(1_700_000_000.0))
        );
        assert!(
            LabelSelector::parse(DEFAULT_NODE_SELECTOR)
                .unwrap()
                .matches(&[("type".to_string(), "ferry-sim".to_string())].into())
                == false
        );
    }
}
