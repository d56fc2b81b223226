//! The kubelet's own metrics, `GET /metrics` on its server (authorized as `nodes/metrics`),
//! with upstream's names (`pkg/kubelet/metrics`): the node's name, the pods with a running
//! sandbox and the containers by state (read from the runtime when scraped), and the evictions
//! by the signal that caused them. The text is OpenMetrics, where a counter's samples end in
//! `_total` (`kubelet_evictions_total`), as Go's client writes them in that format too.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::runtime::{v1, Runtime};

/// `eviction_signal="memory.available"`, `"emptydirfs.limit"`, …
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignalLabel {
    eviction_signal: String,
}

/// `container_state="running"`, `"exited"`, `"created"`, `"unknown"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    container_state: String,
}

/// `node="n1"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabel {
    node: String,
}

/// The kubelet's metrics and their registry.
pub struct KubeletMetrics {
    registry: Registry,
    evictions: Family<SignalLabel, Counter>,
    running_pods: Gauge,
    running_containers: Family<StateLabel, Gauge>,
}

impl std::fmt::Debug for KubeletMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletMetrics").finish_non_exhaustive()
    }
}

/// A container state as upstream's label writes it.
fn state_label(state: i32) -> &'static str {
    match v1::ContainerState::try_from(state) {
        Ok(v1::ContainerState::ContainerCreated) => "created",
        Ok(v1::ContainerState::ContainerRunning) => "running",
        Ok(v1::ContainerState::ContainerExited) => "exited",
        _ => "unknown",
    }
}

impl KubeletMetrics {
    /// The metrics of the kubelet of `node_name`.
    pub fn new(node_name: &str) -> KubeletMetrics {
        let mut registry = Registry::default();
        let evictions = Family::<SignalLabel, Counter>::default();
        let running_pods = Gauge::default();
        let running_containers = Family::<StateLabel, Gauge>::default();
        let node = Family::<NodeLabel, Gauge>::default();
        node.get_or_create(&NodeLabel {
            node: node_name.to_string(),
        })
        .set(1);
        let kubelet = registry.sub_registry_with_prefix("kubelet");
        kubelet.register("node_name", "The node's name. The count is always 1", node);
        kubelet.register(
            "evictions",
            "Cumulative number of pod evictions by eviction signal",
            evictions.clone(),
        );
        kubelet.register(
            "running_pods",
            "Number of pods that have a running pod sandbox",
            running_pods.clone(),
        );
        kubelet.register(
            "running_containers",
            "Number of containers currently running",
            running_containers.clone(),
        );
        KubeletMetrics {
            registry,
            evictions,
            running_pods,
            running_containers,
        }
    }

    /// Counts an eviction caused by `signal` (`memory.available`, `emptydirfs.limit`, …).
    pub fn evicted(&self, signal: &str) {
        self.evictions
            .get_or_create(&SignalLabel {
                eviction_signal: signal.to_string(),
            })
            .inc();
    }

    /// The metrics in the Prometheus text format, the pods and containers counted from
    /// `runtime` now.
    pub async fn encode(&self, runtime: &dyn Runtime) -> Result<String, std::fmt::Error> {
        if let Ok(sandboxes) = runtime.list_pod_sandboxes(None).await {
            let ready = v1::PodSandboxState::SandboxReady as i32;
            let running = sandboxes.iter().filter(|s| s.state == ready).count();
            self.running_pods
                .set(i64::try_from(running).unwrap_or(i64::MAX));
        }
        if let Ok(containers) = runtime.list_containers(None).await {
            self.running_containers.clear();
            for container in &containers {
                self.running_containers
                    .get_or_create(&StateLabel {
                        container_state: state_label(container.state).to_string(),
                    })
                    .inc();
            }
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::FakeRuntime;

    #[tokio::test]
    async fn names_and_counts_as_upstream() {
        let metrics = KubeletMetrics::new("n1");
        metrics.evicted("memory.available");
        metrics.evicted("emptydirfs.limit");
        metrics.evicted("emptydirfs.limit");
        let runtime = FakeRuntime::default();
        let config = v1::PodSandboxConfig {
            metadata: Some(v1::PodSandboxMetadata {
                name: "p".into(),
                uid: "u".into(),
                namespace: "default".into(),
                attempt: 0,
            }),
            ..Default::default()
        };
        runtime.run_pod_sandbox(config, "").await.expect("sandbox");
        let text = metrics.encode(&runtime).await.expect("encode");
        assert!(text.contains("kubelet_node_name{node=\"n1\"} 1"), "{text}");
        assert!(
            text.contains("kubelet_evictions_total{eviction_signal=\"emptydirfs.limit\"} 2"),
            "{text}"
        );
        assert!(text.contains("kubelet_running_pods 1"), "{text}");
    }
}
