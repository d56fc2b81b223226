//! `GET /metrics/resource`: CPU and memory of the node, its pods and their containers, in the
//! Prometheus text format, as upstream's kubelet serves them
//! (`pkg/kubelet/metrics/collectors/resource_metrics.go`) for metrics-server.
//!
//! Three steps, as upstream's collector over its stats provider:
//!
//! 1. [`collect`] (I/O): the node's figures from the host ([`super::node_stats`]), and from the
//!    runtime the sandboxes, containers and their CRI stats (`ListContainerStats`), plus the
//!    pod sandboxes' own stats (`ListPodSandboxStats`) where the runtime has them.
//! 2. [`pod_stats`] (pure): the join, as upstream's CRI stats provider
//!    (`ListPodCPUAndMemoryStats`) makes it — running containers only, of the newest sandbox of
//!    each pod (or every ready one); a container's start time is its creation time; a pod's CPU
//!    and memory are its sandbox's (the pod cgroup, where cadvisor reads them upstream) or,
//!    without sandbox stats, the sums of its containers'.
//! 3. [`encode`] (pure): the text, with upstream's names, `[STABLE]` help, label names and
//!    millisecond timestamps, families and samples sorted as the Go client sorts them.
//!
//! The text encoder is ours rather than `prometheus-client`'s (which the API server's `/metrics`
//! uses): that crate writes OpenMetrics (`# EOF`, counters typed without their `_total`) and no
//! sample timestamps, and metrics-server reads the timestamps.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::node_stats::{self, HostUsage};
use super::Response;
use crate::runtime::{v1, Runtime};

/// The content type of the Prometheus text format, as the Go client sends it.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Cumulative CPU time at an instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuStats {
    /// When it was sampled, ns since the epoch.
    pub time_nanos: i64,
    /// Core-nanoseconds used since the start; `None` if the runtime did not say.
    pub usage_core_nano_seconds: Option<u64>,
}

/// The memory working set at an instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// When it was sampled, ns since the epoch.
    pub time_nanos: i64,
    /// Bytes; `None` if the runtime did not say.
    pub working_set_bytes: Option<u64>,
}

/// The node's own figures (upstream's summary `NodeStats`, the part this endpoint reports).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// CPU of the whole node.
    pub cpu: Option<CpuStats>,
    /// Memory working set of the whole node.
    pub memory: Option<MemoryStats>,
    /// Swap in use, in bytes, sampled with `memory` (upstream stamps it with the memory time).
    pub swap_usage_bytes: Option<u64>,
}

/// One container of a pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerStats {
    /// The container's name in the pod spec.
    pub name: String,
    /// When it was created, ns since the epoch (upstream's CRI provider reports the creation
    /// time as the start time).
    pub start_time_nanos: i64,
    /// Its CPU.
    pub cpu: Option<CpuStats>,
    /// Its memory.
    pub memory: Option<MemoryStats>,
}

/// One pod and its running containers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodStats {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The pod's CPU (its cgroup, or the sum of its containers).
    pub cpu: Option<CpuStats>,
    /// The pod's memory.
    pub memory: Option<MemoryStats>,
    /// Its running containers.
    pub containers: Vec<ContainerStats>,
}

/// Everything one scrape reports (upstream's `Summary` from `GetCPUAndMemoryStats`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// The node.
    pub node: NodeStats,
    /// Its pods.
    pub pods: Vec<PodStats>,
}

impl From<HostUsage> for NodeStats {
    fn from(host: HostUsage) -> Self {
        NodeStats {
            cpu: Some(CpuStats {
                time_nanos: host.time_nanos,
                usage_core_nano_seconds: Some(host.cpu_core_nanos),
            }),
            memory: Some(MemoryStats {
                time_nanos: host.time_nanos,
                working_set_bytes: Some(host.working_set_bytes),
            }),
            swap_usage_bytes: Some(host.swap_bytes),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The join.

/// What the runtime said, for [`pod_stats`].
#[derive(Debug, Clone, Default)]
pub struct RuntimeListing {
    /// `ListPodSandbox`.
    pub sandboxes: Vec<v1::PodSandbox>,
    /// `ListContainers`.
    pub containers: Vec<v1::Container>,
    /// `ListContainerStats`.
    pub container_stats: Vec<v1::ContainerStats>,
    /// `ListPodSandboxStats`, or `None` where the runtime has none.
    pub sandbox_stats: Option<Vec<v1::PodSandboxStats>>,
}

/// Upstream's `removeTerminatedPods`: per pod (namespace and name), its only sandbox; of
/// several, the ready ones, or the newest when none is.
pub(crate) fn current_sandboxes(
    mut sandboxes: Vec<v1::PodSandbox>,
) -> HashMap<String, v1::PodSandbox> {
    sandboxes.sort_by_key(|s| s.created_at);
    let mut by_pod: BTreeMap<(String, String), Vec<v1::PodSandbox>> = BTreeMap::new();
    for sandbox in sandboxes {
        let metadata = sandbox.metadata.clone().unwrap_or_default();
        by_pod
            .entry((metadata.namespace, metadata.name))
            .or_default()
            .push(sandbox);
    }
    let ready = i32::from(v1::PodSandboxState::SandboxReady);
    let mut current = HashMap::new();
    for (_, mut instances) in by_pod {
        let kept: Vec<v1::PodSandbox> = if instances.len() == 1 {
            instances
        } else if instances.iter().any(|s| s.state == ready) {
            instances.into_iter().filter(|s| s.state == ready).collect()
        } else {
            instances.pop().into_iter().collect()
        };
        current.extend(kept.into_iter().map(|s| (s.id.clone(), s)));
    }
    current
}

fn value(v: Option<&v1::UInt64Value>) -> Option<u64> {
    v.map(|v| v.value)
}

/// A CRI CPU figure; a missing one is zero now, as upstream's `makeContainerCPUAndMemoryStats`.
fn cpu_stats(cpu: Option<&v1::CpuUsage>, now_nanos: i64) -> CpuStats {
    match cpu {
        Some(cpu) => CpuStats {
            time_nanos: cpu.timestamp,
            usage_core_nano_seconds: value(cpu.usage_core_nano_seconds.as_ref()),
        },
        None => CpuStats {
            time_nanos: now_nanos,
            usage_core_nano_seconds: Some(0),
        },
    }
}

/// A CRI memory figure; a missing one is zero now.
fn memory_stats(memory: Option<&v1::MemoryUsage>, now_nanos: i64) -> MemoryStats {
    match memory {
        Some(memory) => MemoryStats {
            time_nanos: memory.timestamp,
            working_set_bytes: value(memory.working_set_bytes.as_ref()),
        },
        None => MemoryStats {
            time_nanos: now_nanos,
            working_set_bytes: Some(0),
        },
    }
}

/// A pod's CPU and memory summed from its containers (upstream's fallback when cadvisor has no
/// pod cgroup): the last container's times, unknown values counted as zero.
fn summed(containers: &[ContainerStats]) -> (Option<CpuStats>, Option<MemoryStats>) {
    let mut cpu: Option<CpuStats> = None;
    let mut memory: Option<MemoryStats> = None;
    for c in containers {
        if let Some(c) = c.cpu {
            let sum = cpu.and_then(|s| s.usage_core_nano_seconds).unwrap_or(0);
            cpu = Some(CpuStats {
                time_nanos: c.time_nanos,
                usage_core_nano_seconds: Some(sum + c.usage_core_nano_seconds.unwrap_or(0)),
            });
        }
        if let Some(m) = c.memory {
            let sum = memory.and_then(|s| s.working_set_bytes).unwrap_or(0);
            memory = Some(MemoryStats {
                time_nanos: m.time_nanos,
                working_set_bytes: Some(sum + m.working_set_bytes.unwrap_or(0)),
            });
        }
    }
    (cpu, memory)
}

/// The pods and containers to report, from the runtime's answers (see the module docs); in the
/// order of `container_stats`. `now_nanos` stamps figures the runtime left out.
pub fn pod_stats(listing: RuntimeListing, now_nanos: i64) -> Vec<PodStats> {
    let sandboxes = current_sandboxes(listing.sandboxes);
    let running = i32::from(v1::ContainerState::ContainerRunning);
    let containers: HashMap<&str, &v1::Container> = listing
        .containers
        .iter()
        .filter(|c| c.state == running)
        .map(|c| (c.id.as_str(), c))
        .collect();
    let sandbox_stats: HashMap<&str, &v1::LinuxPodSandboxStats> = listing
        .sandbox_stats
        .iter()
        .flatten()
        .filter_map(|s| Some((s.attributes.as_ref()?.id.as_str(), s.linux.as_ref()?)))
        .collect();

    // Sandbox id -> its pod, in the order the first container of each came.
    let mut order: Vec<&str> = Vec::new();
    let mut pods: HashMap<&str, PodStats> = HashMap::new();
    for stats in &listing.container_stats {
        let Some(attributes) = &stats.attributes else {
            continue;
        };
        let Some(container) = containers.get(attributes.id.as_str()) else {
            continue;
        };
        let Some((sandbox_id, sandbox)) = sandboxes.get_key_value(&container.pod_sandbox_id) else {
            continue;
        };
        let pod = pods.entry(sandbox_id.as_str()).or_insert_with(|| {
            order.push(sandbox_id.as_str());
            let metadata = sandbox.metadata.clone().unwrap_or_default();
            PodStats {
                namespace: metadata.namespace,
                name: metadata.name,
                ..Default::default()
            }
        });
        let name = attributes
            .metadata
            .as_ref()
            .or(container.metadata.as_ref())
            .map(|m| m.name.clone())
            .unwrap_or_default();
        pod.containers.push(ContainerStats {
            name,
            start_time_nanos: container.created_at,
            cpu: Some(cpu_stats(stats.cpu.as_ref(), now_nanos)),
            memory: Some(memory_stats(stats.memory.as_ref(), now_nanos)),
        });
    }

    order
        .into_iter()
        .filter_map(|sandbox_id| {
            let mut pod = pods.remove(sandbox_id)?;
            let (cpu, memory) = match sandbox_stats.get(sandbox_id) {
                Some(own) => (
                    own.cpu.as_ref().map(|c| cpu_stats(Some(c), now_nanos)),
                    own.memory
                        .as_ref()
                        .map(|m| memory_stats(Some(m), now_nanos)),
                ),
                None => summed(&pod.containers),
            };
            pod.cpu = cpu;
            pod.memory = memory;
            Some(pod)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The text.

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

/// One family: upstream's descriptor and the samples of this scrape.
struct Family {
    name: &'static str,
    /// The help as upstream's registry annotates it (`[STABLE] …`).
    help: &'static str,
    kind: Kind,
    samples: Vec<Sample>,
}

struct Sample {
    /// Label names and values, names in sorted order.
    labels: Vec<(&'static str, String)>,
    value: f64,
    timestamp_ms: Option<i64>,
}

impl Family {
    fn new(name: &'static str, help: &'static str, kind: Kind) -> Family {
        Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    fn push(&mut self, labels: Vec<(&'static str, String)>, value: f64, time_nanos: Option<i64>) {
        self.samples.push(Sample {
            labels,
            value,
            timestamp_ms: time_nanos.map(|ns| ns.div_euclid(1_000_000)),
        });
    }
}

fn container_labels(pod: &PodStats, container: &ContainerStats) -> Vec<(&'static str, String)> {
    vec![
        ("container", container.name.clone()),
        ("namespace", pod.namespace.clone()),
        ("pod", pod.name.clone()),
    ]
}

fn pod_labels(pod: &PodStats) -> Vec<(&'static str, String)> {
    vec![
        ("namespace", pod.namespace.clone()),
        ("pod", pod.name.clone()),
    ]
}

/// Core-nanoseconds as core-seconds.
fn seconds(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

/// The families of one scrape: `summary`'s, or only `resource_scrape_error 1` when collecting
/// failed (`None`), as upstream's collector.
fn families(summary: Option<&Summary>) -> Vec<Family> {
    use Kind::{Counter, Gauge};
    let mut node_cpu = Family::new(
        "node_cpu_usage_seconds_total",
        "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
        Counter,
    );
    let mut node_memory = Family::new(
        "node_memory_working_set_bytes",
        "[STABLE] Current working set of the node in bytes",
        Gauge,
    );
    let mut node_swap = Family::new(
        "node_swap_usage_bytes",
        "[ALPHA] Current swap usage of the node in bytes. Reported only on non-windows systems",
        Gauge,
    );
    let mut container_start = Family::new(
        "container_start_time_seconds",
        "[STABLE] Start time of the container since unix epoch in seconds",
        Gauge,
    );
    let mut container_cpu = Family::new(
        "container_cpu_usage_seconds_total",
        "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
        Counter,
    );
    let mut container_memory = Family::new(
        "container_memory_working_set_bytes",
        "[STABLE] Current working set of the container in bytes",
        Gauge,
    );
    let mut pod_cpu = Family::new(
        "pod_cpu_usage_seconds_total",
        "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
        Counter,
    );
    let mut pod_memory = Family::new(
        "pod_memory_working_set_bytes",
        "[STABLE] Current working set of the pod in bytes",
        Gauge,
    );
    // `scrape_error`, its ALPHA twin, was deprecated in 1.29 and is hidden from 1.30 on.
    let mut scrape_error = Family::new(
        "resource_scrape_error",
        "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
        Gauge,
    );
    scrape_error.push(vec![], if summary.is_some() { 0.0 } else { 1.0 }, None);

    if let Some(summary) = summary {
        let node = &summary.node;
        if let Some(cpu) = node.cpu {
            if let Some(usage) = cpu.usage_core_nano_seconds {
                node_cpu.push(vec![], seconds(usage), Some(cpu.time_nanos));
            }
        }
        if let Some(memory) = node.memory {
            if let Some(bytes) = memory.working_set_bytes {
                node_memory.push(vec![], bytes as f64, Some(memory.time_nanos));
            }
            if let Some(bytes) = node.swap_usage_bytes {
                node_swap.push(vec![], bytes as f64, Some(memory.time_nanos));
            }
        }
        for pod in &summary.pods {
            for container in &pod.containers {
                // Upstream skips start times at or before the epoch's first second.
                if container.start_time_nanos.div_euclid(1_000_000_000) > 0 {
                    container_start.push(
                        container_labels(pod, container),
                        container.start_time_nanos as f64 / 1e9,
                        None,
                    );
                }
                if let Some(cpu) = container.cpu {
                    if let Some(usage) = cpu.usage_core_nano_seconds {
                        container_cpu.push(
                            container_labels(pod, container),
                            seconds(usage),
                            Some(cpu.time_nanos),
                        );
                    }
                }
                if let Some(memory) = container.memory {
                    if let Some(bytes) = memory.working_set_bytes {
                        container_memory.push(
                            container_labels(pod, container),
                            bytes as f64,
                            Some(memory.time_nanos),
                        );
                    }
                }
            }
            if let Some(cpu) = pod.cpu {
                if let Some(usage) = cpu.usage_core_nano_seconds {
                    pod_cpu.push(pod_labels(pod), seconds(usage), Some(cpu.time_nanos));
                }
            }
            if let Some(memory) = pod.memory {
                if let Some(bytes) = memory.working_set_bytes {
                    pod_memory.push(pod_labels(pod), bytes as f64, Some(memory.time_nanos));
                }
            }
        }
    }
    vec![
        node_cpu,
        node_memory,
        node_swap,
        container_start,
        container_cpu,
        container_memory,
        pod_cpu,
        pod_memory,
        scrape_error,
    ]
}

/// The Prometheus text (format 0.0.4) of a scrape: `summary`'s figures, or the scrape error
/// alone when collecting failed (`None`). Families come sorted by name and samples by label
/// values, as the Go client gathers them; families without samples are left out.
pub fn encode(summary: Option<&Summary>) -> String {
    let mut families = families(summary);
    families.retain(|f| !f.samples.is_empty());
    families.sort_by_key(|f| f.name);
    let mut out = String::new();
    for family in &mut families {
        // Stable: of two samples with one label set (two ready sandboxes of a pod), the first
        // collected stays, as the Go registry keeps it and drops the other.
        family.samples.sort_by(|a, b| {
            let values_a = a.labels.iter().map(|(_, v)| v);
            values_a.cmp(b.labels.iter().map(|(_, v)| v))
        });
        family
            .samples
            .dedup_by(|later, first| later.labels == first.labels);
        let kind = match family.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(out, "# HELP {} {}", family.name, escape_help(family.help));
        let _ = writeln!(out, "# TYPE {} {kind}", family.name);
        for sample in &family.samples {
            out.push_str(family.name);
            if !sample.labels.is_empty() {
                out.push('{');
                for (i, (name, value)) in sample.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{name}=\"{}\"", escape_label_value(value));
                }
                out.push('}');
            }
            out.push(' ');
            out.push_str(&format_float(sample.value));
            if let Some(ms) = sample.timestamp_ms {
                let _ = write!(out, " {ms}");
            }
            out.push('\n');
        }
    }
    out
}

/// HELP text escaping: backslash and newline.
fn escape_help(help: &str) -> String {
    help.replace('\\', r"\\").replace('\n', r"\n")
}

/// Label value escaping: backslash, double quote and newline.
fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str(r#"\""#),
            '\n' => out.push_str(r"\n"),
            c => out.push(c),
        }
    }
    out
}

/// A sample value as Go's `strconv.FormatFloat(v, 'g', -1, 64)` writes it (the Prometheus text
/// encoder's choice): the shortest digits that read back the same, in exponent form (at least
/// two exponent digits) when the exponent is below -4 or at least 6.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let scientific = format!("{v:e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return scientific;
    };
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..6).contains(&exponent) {
        format!("{v}")
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
    }
}

// ---------------------------------------------------------------------------------------------
// The I/O.

/// Asks the runtime and reads the host: the summary of one scrape, or why not.
pub async fn collect(runtime: &dyn Runtime, host_root: &Path) -> Result<Summary, String> {
    let now_nanos = now_nanos();
    let host = node_stats::read(host_root, now_nanos).map_err(|e| e.to_string())?;
    let sandboxes = runtime
        .list_pod_sandboxes(None)
        .await
        .map_err(|e| format!("failed to list all pod sandboxes: {e}"))?;
    let containers = runtime
        .list_containers(None)
        .await
        .map_err(|e| format!("failed to list all containers: {e}"))?;
    let container_stats = runtime
        .list_container_stats(None)
        .await
        .map_err(|e| format!("failed to list all container stats: {e}"))?;
    // The pods' own cgroups, where upstream has cadvisor read them; without them (an older
    // runtime, or a sandbox going away mid-call), the sums of the containers.
    let sandbox_stats = match runtime.list_pod_sandbox_stats(None).await {
        Ok(stats) => Some(stats),
        Err(error) => {
            tracing::debug!(%error, "pod sandbox stats; summing the containers'");
            None
        }
    };
    let listing = RuntimeListing {
        sandboxes,
        containers,
        container_stats,
        sandbox_stats,
    };
    Ok(Summary {
        node: host.into(),
        pods: pod_stats(listing, now_nanos),
    })
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The response to `GET /metrics/resource`: always 200, a failed collection reported as
/// `resource_scrape_error 1` (and logged), as upstream.
pub async fn serve(runtime: &Arc<dyn Runtime>, host_root: &Path) -> Response {
    let summary = match collect(runtime.as_ref(), host_root).await {
        Ok(summary) => Some(summary),
        Err(error) => {
            tracing::warn!(%error, "resource metrics");
            None
        }
    };
    let mut response = http::Response::new(super::full_body(Bytes::from(encode(summary.as_ref()))));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(CONTENT_TYPE),
    );
    response
}

#[cfg(test)]
mod tests;
