//! The kubelet's stats provider: upstream's `stats/v1alpha1` [`Summary`] of the node and its
//! pods, which `GET /stats/summary` serves and the eviction manager reads (upstream's
//! `pkg/kubelet/stats` CRI provider plus cadvisor's root cgroup).
//!
//! - [`summary`]: the API types.
//! - [`host`]: the host's parsers (interfaces, page faults, `/proc/self`, `du`).
//! - [`build_pods`] (pure): the pods from the runtime's answers (the same join as
//!   `/metrics/resource`: the current sandbox of each pod, its running containers) and what
//!   their directories hold — volumes under `<pods dir>/<uid>/volumes/<plugin>/<name>`, logs
//!   under the pod's log directory — with ephemeral storage as upstream sums it (containers'
//!   rootfs and logs, and the local volumes: emptyDir, configMap, downwardAPI).
//! - [`StatsProvider`] (I/O) behind the [`SummaryProvider`] trait, so the eviction manager's
//!   tests feed figures of their own.

pub mod host;
pub mod sandbox;
pub mod summary;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;

pub use self::summary::Summary;
use self::summary::{
    ContainerStats, CpuStats, FsStats, MemoryStats, NetworkStats, PodReference, PodStats,
    ProcessStats, RlimitStats, RuntimeStats, VolumeStats,
};
use crate::machine::{self, MachineConfig, MachineError};
use crate::podconfig::pod_log_directory;
use crate::runtime::{v1, Runtime, RuntimeError};

/// Why a summary could not be made.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// A runtime call failed (`what` names it).
    #[error("{what}: {source}")]
    Runtime {
        /// The call.
        what: &'static str,
        /// Its error.
        source: RuntimeError,
    },
    /// The host could not be read.
    #[error(transparent)]
    Machine(#[from] MachineError),
}

/// Something that makes summaries: the real [`StatsProvider`], or a test's fixed figures.
#[async_trait]
pub trait SummaryProvider: Send + Sync {
    /// The node's and its pods' figures now.
    async fn summary(&self) -> Result<Summary, StatsError>;
}

/// Fixed summaries, for tests: each call returns the current one.
#[derive(Default)]
pub struct StaticSummary(pub Mutex<Summary>);

#[async_trait]
impl SummaryProvider for StaticSummary {
    async fn summary(&self) -> Result<Summary, StatsError> {
        Ok(self.0.lock().clone())
    }
}

/// RFC 3339 (seconds) of nanoseconds since the epoch.
pub fn rfc3339(nanos: i64) -> String {
    jiff::Timestamp::from_second(nanos.div_euclid(1_000_000_000))
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// What the pod's directories hold: `(plugin dir, volume name) -> (bytes, inodes)`, and each
/// container's log files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodDisk {
    /// Volumes by plugin directory (`kubernetes.io~empty-dir`) and name.
    pub volumes: Vec<(String, String, u64, u64)>,
    /// Log bytes and inodes by container name.
    pub logs: HashMap<String, (u64, u64)>,
}

/// The runtime's answers for [`build_pods`].
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// `ListPodSandbox`.
    pub sandboxes: Vec<v1::PodSandbox>,
    /// `ListContainers`.
    pub containers: Vec<v1::Container>,
    /// `ListContainerStats`.
    pub container_stats: Vec<v1::ContainerStats>,
    /// `ListPodSandboxStats`, where the runtime has it.
    pub sandbox_stats: Vec<v1::PodSandboxStats>,
    /// What the host shows of the sandboxes the runtime gives no network or process figures
    /// for, by sandbox id.
    pub host: HashMap<String, sandbox::HostView>,
}

/// The plugin directories whose volumes count as the pod's local ephemeral storage
/// (upstream's `IsLocalEphemeralVolume`).
const LOCAL_VOLUME_PLUGINS: &[&str] = &[
    "kubernetes.io~empty-dir",
    "kubernetes.io~configmap",
    "kubernetes.io~downward-api",
];

fn value(v: Option<&v1::UInt64Value>) -> Option<u64> {
    v.map(|v| v.value)
}

fn cpu(cpu: &v1::CpuUsage) -> CpuStats {
    CpuStats {
        time: rfc3339(cpu.timestamp),
        usage_nano_cores: value(cpu.usage_nano_cores.as_ref()),
        usage_core_nano_seconds: value(cpu.usage_core_nano_seconds.as_ref()),
    }
}

fn memory(memory: &v1::MemoryUsage) -> MemoryStats {
    MemoryStats {
        time: rfc3339(memory.timestamp),
        available_bytes: value(memory.available_bytes.as_ref()),
        usage_bytes: value(memory.usage_bytes.as_ref()),
        working_set_bytes: value(memory.working_set_bytes.as_ref()),
        rss_bytes: value(memory.rss_bytes.as_ref()),
        page_faults: value(memory.page_faults.as_ref()),
        major_page_faults: value(memory.major_page_faults.as_ref()),
    }
}

/// `used` bytes and inodes on the filesystem `on` (its capacity and what is free).
fn part_of(on: &FsStats, used: u64, inodes_used: u64) -> FsStats {
    FsStats {
        used_bytes: Some(used),
        inodes_used: Some(inodes_used),
        ..on.clone()
    }
}

fn sum(values: impl Iterator<Item = Option<u64>>) -> Option<u64> {
    values.fold(None, |acc, v| match (acc, v) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
    })
}

/// The pods and their running containers (see the module docs). `nodefs` and `imagefs` give
/// the capacity of the filesystems logs and volumes, and writable layers, are on.
pub fn build_pods(
    listing: &Listing,
    disk: &HashMap<String, PodDisk>,
    nodefs: &FsStats,
    imagefs: &FsStats,
    now_nanos: i64,
) -> Vec<PodStats> {
    let sandboxes = crate::server::resource_metrics::current_sandboxes(listing.sandboxes.clone());
    let running = i32::from(v1::ContainerState::ContainerRunning);
    let stats: HashMap<&str, &v1::ContainerStats> = listing
        .container_stats
        .iter()
        .filter_map(|s| Some((s.attributes.as_ref()?.id.as_str(), s)))
        .collect();
    let sandbox_stats: HashMap<&str, &v1::LinuxPodSandboxStats> = listing
        .sandbox_stats
        .iter()
        .filter_map(|s| Some((s.attributes.as_ref()?.id.as_str(), s.linux.as_ref()?)))
        .collect();
    let mut ordered: Vec<&v1::PodSandbox> = sandboxes.values().collect();
    ordered.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let now = rfc3339(now_nanos);
    ordered
        .into_iter()
        .map(|sandbox| {
            let metadata = sandbox.metadata.clone().unwrap_or_default();
            let pod_disk = disk.get(&metadata.uid).cloned().unwrap_or_default();
            let mut containers: Vec<ContainerStats> = listing
                .containers
                .iter()
                .filter(|c| c.pod_sandbox_id == sandbox.id && c.state == running)
                .map(|c| {
                    let name = c
                        .metadata
                        .as_ref()
                        .map(|m| m.name.clone())
                        .unwrap_or_default();
                    let s = stats.get(c.id.as_str());
                    let rootfs = s.and_then(|s| s.writable_layer.as_ref()).map(|w| {
                        part_of(
                            imagefs,
                            value(w.used_bytes.as_ref()).unwrap_or(0),
                            value(w.inodes_used.as_ref()).unwrap_or(0),
                        )
                    });
                    let (log_bytes, log_inodes) =
                        pod_disk.logs.get(&name).copied().unwrap_or((0, 0));
                    ContainerStats {
                        start_time: rfc3339(c.created_at),
                        cpu: s.and_then(|s| s.cpu.as_ref()).map(cpu),
                        memory: s.and_then(|s| s.memory.as_ref()).map(memory),
                        rootfs,
                        logs: Some(part_of(nodefs, log_bytes, log_inodes)),
                        name,
                    }
                })
                .collect();
            containers.sort_by(|a, b| a.name.cmp(&b.name));
            let volume: Vec<VolumeStats> = pod_disk
                .volumes
                .iter()
                .map(|(_, name, bytes, inodes)| VolumeStats {
                    fs: part_of(nodefs, *bytes, *inodes),
                    name: name.clone(),
                })
                .collect();
            let local_volumes = pod_disk
                .volumes
                .iter()
                .filter(|(plugin, ..)| LOCAL_VOLUME_PLUGINS.contains(&plugin.as_str()));
            let used = containers
                .iter()
                .map(|c| {
                    c.rootfs.as_ref().and_then(|f| f.used_bytes).unwrap_or(0)
                        + c.logs.as_ref().and_then(|f| f.used_bytes).unwrap_or(0)
                })
                .sum::<u64>()
                + local_volumes.clone().map(|v| v.2).sum::<u64>();
            let inodes = containers
                .iter()
                .map(|c| {
                    c.rootfs.as_ref().and_then(|f| f.inodes_used).unwrap_or(0)
                        + c.logs.as_ref().and_then(|f| f.inodes_used).unwrap_or(0)
                })
                .sum::<u64>()
                + local_volumes.map(|v| v.3).sum::<u64>();
            let own = sandbox_stats.get(sandbox.id.as_str());
            let (pod_cpu, pod_memory) = match own {
                Some(own) => (own.cpu.as_ref().map(cpu), own.memory.as_ref().map(memory)),
                None => (
                    Some(CpuStats {
                        time: now.clone(),
                        usage_nano_cores: None,
                        usage_core_nano_seconds: sum(containers
                            .iter()
                            .map(|c| c.cpu.as_ref().and_then(|c| c.usage_core_nano_seconds))),
                    }),
                    Some(MemoryStats {
                        time: now.clone(),
                        working_set_bytes: sum(containers
                            .iter()
                            .map(|c| c.memory.as_ref().and_then(|m| m.working_set_bytes))),
                        usage_bytes: sum(containers
                            .iter()
                            .map(|c| c.memory.as_ref().and_then(|m| m.usage_bytes))),
                        ..Default::default()
                    }),
                ),
            };
            let host = listing.host.get(sandbox.id.as_str());
            let network = own.and_then(|o| o.network.as_ref()).map(|n| {
                let iface = |i: &v1::NetworkInterfaceUsage| summary::InterfaceStats {
                    name: i.name.clone(),
                    rx_bytes: value(i.rx_bytes.as_ref()),
                    rx_errors: value(i.rx_errors.as_ref()),
                    tx_bytes: value(i.tx_bytes.as_ref()),
                    tx_errors: value(i.tx_errors.as_ref()),
                };
                NetworkStats {
                    time: rfc3339(n.timestamp),
                    default: n.default_interface.as_ref().map(iface).unwrap_or_default(),
                    interfaces: n.interfaces.iter().map(iface).collect(),
                }
            });
            let network = network.or_else(|| host.and_then(|h| h.network.clone()));
            let process_stats = own
                .and_then(|o| o.process.as_ref())
                .map(|p| value(p.process_count.as_ref()))
                .or_else(|| host.map(|h| h.process_count))
                .map(|process_count| ProcessStats { process_count });
            PodStats {
                pod_ref: PodReference {
                    name: metadata.name,
                    namespace: metadata.namespace,
                    uid: metadata.uid,
                },
                start_time: rfc3339(sandbox.created_at),
                cpu: pod_cpu,
                memory: pod_memory,
                network,
                volume,
                ephemeral_storage: Some(FsStats {
                    time: now.clone(),
                    ..part_of(nodefs, used, inodes)
                }),
                process_stats,
                containers,
            }
        })
        .collect()
}

/// Fills `usageNanoCores` where the runtime left it out, from the previous reading of the same
/// thing (`cache`: key → (time ns, core-ns), replaced by this reading).
pub fn fill_cpu_rates(summary: &mut Summary, cache: &mut HashMap<String, (i64, u64)>) {
    let mut seen = HashMap::new();
    let mut fill = |key: String, cpu: &mut Option<CpuStats>| {
        let Some(cpu) = cpu.as_mut() else { return };
        let (Some(total), Ok(time)) = (
            cpu.usage_core_nano_seconds,
            cpu.time.parse::<jiff::Timestamp>(),
        ) else {
            return;
        };
        let reading = (time.as_nanosecond() as i64, total);
        if cpu.usage_nano_cores.is_none() {
            if let Some(previous) = cache.get(&key) {
                cpu.usage_nano_cores = host::nano_cores(*previous, reading);
            }
        }
        seen.insert(key, reading);
    };
    fill("node".into(), &mut summary.node.cpu);
    for c in &mut summary.node.system_containers {
        fill(format!("system/{}", c.name), &mut c.cpu);
    }
    for pod in &mut summary.pods {
        let uid = pod.pod_ref.uid.clone();
        fill(format!("pod/{uid}"), &mut pod.cpu);
        for c in &mut pod.containers {
            fill(format!("pod/{uid}/{}", c.name), &mut c.cpu);
        }
    }
    // Readings a second apart at least, so the rate is not noise.
    for (key, reading) in seen {
        match cache.get(&key) {
            Some(previous) if reading.0 - previous.0 < 1_000_000_000 => {}
            _ => {
                cache.insert(key, reading);
            }
        }
    }
}

/// Where the provider reads.
#[derive(Debug, Clone)]
pub struct StatsConfig {
    /// The node's name.
    pub node_name: String,
    /// How the machine is read (root, data dir = nodefs).
    pub machine: MachineConfig,
    /// Pod directories (`<data dir>/pods`).
    pub pods_dir: PathBuf,
    /// The root of pod log directories.
    pub pod_logs_root: PathBuf,
    /// The runtime's process, for the `runtime` system container.
    pub runtime_pid: Option<u32>,
}

/// The real provider: CRI calls and the host.
pub struct StatsProvider {
    config: StatsConfig,
    runtime: Arc<dyn Runtime>,
    cpu_cache: Mutex<HashMap<String, (i64, u64)>>,
    /// Pause processes' pids by sandbox id (a sandbox keeps its pid).
    sandbox_pids: Mutex<HashMap<String, u32>>,
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn fs_of(stats: &machine::FsStats, time: &str) -> FsStats {
    FsStats {
        time: time.to_string(),
        available_bytes: Some(stats.available_bytes),
        capacity_bytes: Some(stats.capacity_bytes),
        used_bytes: Some(stats.capacity_bytes.saturating_sub(stats.available_bytes)),
        inodes_free: Some(stats.inodes_free),
        inodes: Some(stats.inodes),
        inodes_used: Some(stats.inodes.saturating_sub(stats.inodes_free)),
    }
}

fn read(root: &Path, path: &str) -> Option<String> {
    std::fs::read_to_string(root.join(path.trim_start_matches('/'))).ok()
}

/// A process's CPU and memory as a system container.
fn process_container(root: &Path, name: &str, pid: &str, boot: i64, time: &str) -> ContainerStats {
    let stat = read(root, &format!("/proc/{pid}/stat")).and_then(|s| host::parse_pid_stat(&s));
    let rss = read(root, &format!("/proc/{pid}/status")).and_then(|s| host::parse_vm_rss(&s));
    ContainerStats {
        name: name.to_string(),
        start_time: stat
            .map(|(_, start)| rfc3339((boot + (start / 100) as i64) * 1_000_000_000))
            .unwrap_or_default(),
        cpu: stat.map(|(cpu, _)| CpuStats {
            time: time.to_string(),
            usage_nano_cores: None,
            usage_core_nano_seconds: Some(cpu),
        }),
        memory: rss.map(|rss| MemoryStats {
            time: time.to_string(),
            usage_bytes: Some(rss),
            working_set_bytes: Some(rss),
            rss_bytes: Some(rss),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl StatsProvider {
    /// A provider reading `runtime` and the host as `config` says.
    pub fn new(config: StatsConfig, runtime: Arc<dyn Runtime>) -> Self {
        StatsProvider {
            config,
            runtime,
            cpu_cache: Mutex::new(HashMap::new()),
            sandbox_pids: Mutex::new(HashMap::new()),
        }
    }

    /// What the host shows of each ready sandbox the runtime gave no network figures for
    /// ([`sandbox`]), its pid asked of the runtime once.
    async fn host_views(
        &self,
        listing: &Listing,
        root: &Path,
        time: &str,
    ) -> HashMap<String, sandbox::HostView> {
        let ready = i32::from(v1::PodSandboxState::SandboxReady);
        let with_network: Vec<&str> = listing
            .sandbox_stats
            .iter()
            .filter(|s| s.linux.as_ref().is_some_and(|l| l.network.is_some()))
            .filter_map(|s| Some(s.attributes.as_ref()?.id.as_str()))
            .collect();
        let wanted: Vec<&str> = listing
            .sandboxes
            .iter()
            .filter(|s| s.state == ready && !with_network.contains(&s.id.as_str()))
            .map(|s| s.id.as_str())
            .collect();
        // Pids of sandboxes that are gone are forgotten.
        self.sandbox_pids
            .lock()
            .retain(|id, _| wanted.contains(&id.as_str()));
        if wanted.is_empty() {
            return HashMap::new();
        }
        let mounts = read(root, "/proc/self/mountinfo")
            .map(|m| machine::parse_mountinfo_cgroups(&m))
            .unwrap_or_default();
        let mut views = HashMap::new();
        for id in wanted {
            let known = self.sandbox_pids.lock().get(id).copied();
            let pid = match known {
                Some(pid) => pid,
                None => match self.runtime.pod_sandbox_pid(id).await {
                    Ok(Some(pid)) => {
                        self.sandbox_pids.lock().insert(id.to_string(), pid);
                        pid
                    }
                    _ => continue,
                },
            };
            views.insert(id.to_string(), sandbox::read(root, pid, &mounts, time));
        }
        views
    }

    async fn listing(&self) -> Result<Listing, StatsError> {
        let runtime = &self.runtime;
        let err = |what| move |source| StatsError::Runtime { what, source };
        Ok(Listing {
            sandboxes: runtime
                .list_pod_sandboxes(None)
                .await
                .map_err(err("failed to list all pod sandboxes"))?,
            containers: runtime
                .list_containers(None)
                .await
                .map_err(err("failed to list all containers"))?,
            container_stats: runtime
                .list_container_stats(None)
                .await
                .map_err(err("failed to list all container stats"))?,
            sandbox_stats: runtime
                .list_pod_sandbox_stats(None)
                .await
                .unwrap_or_default(),
            host: HashMap::new(),
        })
    }

    /// What each pod's directories hold.
    fn pod_disk(&self, listing: &Listing) -> HashMap<String, PodDisk> {
        let mut out = HashMap::new();
        for sandbox in &listing.sandboxes {
            let Some(m) = &sandbox.metadata else { continue };
            if out.contains_key(&m.uid) {
                continue;
            }
            let mut disk = PodDisk::default();
            let volumes = self.config.pods_dir.join(&m.uid).join("volumes");
            for plugin in std::fs::read_dir(&volumes).into_iter().flatten().flatten() {
                let plugin_name = plugin.file_name().to_string_lossy().into_owned();
                for volume in std::fs::read_dir(plugin.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    let (bytes, inodes) = host::dir_usage(&volume.path());
                    disk.volumes.push((
                        plugin_name.clone(),
                        volume.file_name().to_string_lossy().into_owned(),
                        bytes,
                        inodes,
                    ));
                }
            }
            disk.volumes.sort();
            let logs = pod_log_directory(
                &self.config.pod_logs_root.to_string_lossy(),
                &m.namespace,
                &m.name,
                &m.uid,
            );
            for container in std::fs::read_dir(&logs).into_iter().flatten().flatten() {
                let usage = host::dir_usage(&container.path());
                disk.logs
                    .insert(container.file_name().to_string_lossy().into_owned(), usage);
            }
            out.insert(m.uid.clone(), disk);
        }
        out
    }

    /// The image filesystem: CRI's answer for what images use, `statvfs` of its mount point for
    /// the rest; the nodefs when the runtime does not say.
    async fn image_fs(&self, nodefs: &machine::FsStats, time: &str) -> FsStats {
        let info = self.runtime.image_fs_info().await.ok();
        let usage = info.as_ref().and_then(|i| i.image_filesystems.first());
        let on = usage
            .and_then(|u| u.fs_id.as_ref())
            .and_then(|id| machine::read_fs_stats(Path::new(&id.mountpoint)).ok())
            .unwrap_or(*nodefs);
        let mut fs = fs_of(&on, time);
        if let Some(u) = usage {
            fs.used_bytes = value(u.used_bytes.as_ref()).or(fs.used_bytes);
            fs.inodes_used = value(u.inodes_used.as_ref()).or(fs.inodes_used);
        }
        fs
    }
}

#[async_trait]
impl SummaryProvider for StatsProvider {
    async fn summary(&self) -> Result<Summary, StatsError> {
        let now = now_nanos();
        let time = rfc3339(now);
        let root = self.config.machine.root.clone();
        let host_usage = crate::server::node_stats::read(&root, now)?;
        let observations = machine::read_observations(&self.config.machine)?;
        let mut listing = self.listing().await?;
        listing.host = self.host_views(&listing, &root, &time).await;
        let nodefs = fs_of(&observations.nodefs, &time);
        let imagefs = self.image_fs(&observations.nodefs, &time).await;
        let disk = self.pod_disk(&listing);
        let pods = build_pods(&listing, &disk, &nodefs, &imagefs, now);

        let boot = read(&root, "/proc/stat")
            .and_then(|s| host::parse_boot_time(&s))
            .unwrap_or(0);
        let meminfo = read(&root, "/proc/meminfo").unwrap_or_default();
        let info = crate::server::node_stats::parse_key_values(&meminfo);
        let (page_faults, major_page_faults) =
            host::parse_page_faults(&read(&root, "/proc/vmstat").unwrap_or_default());
        let working_set = host_usage.working_set_bytes;
        let interfaces = host::parse_net_dev(&read(&root, "/proc/net/dev").unwrap_or_default());
        let default_iface = read(&root, "/proc/net/route")
            .and_then(|r| machine::parse_default_route(&r))
            .map(|r| r.iface);
        let default = interfaces
            .iter()
            .find(|i| Some(&i.name) == default_iface.as_ref())
            .or(interfaces.first())
            .cloned()
            .unwrap_or_default();
        let mut system_containers = vec![process_container(&root, "kubelet", "self", boot, &time)];
        if let Some(pid) = self.config.runtime_pid {
            system_containers.push(process_container(
                &root,
                "runtime",
                &pid.to_string(),
                boot,
                &time,
            ));
        }
        system_containers.push(ContainerStats {
            name: "pods".into(),
            start_time: rfc3339(boot * 1_000_000_000),
            cpu: Some(CpuStats {
                time: time.clone(),
                usage_nano_cores: None,
                usage_core_nano_seconds: sum(pods
                    .iter()
                    .map(|p| p.cpu.as_ref().and_then(|c| c.usage_core_nano_seconds))),
            }),
            memory: Some(MemoryStats {
                time: time.clone(),
                working_set_bytes: sum(pods
                    .iter()
                    .map(|p| p.memory.as_ref().and_then(|m| m.working_set_bytes))),
                ..Default::default()
            }),
            ..Default::default()
        });
        let mut summary = Summary {
            node: summary::NodeStats {
                node_name: self.config.node_name.clone(),
                system_containers,
                start_time: rfc3339(boot * 1_000_000_000),
                cpu: Some(CpuStats {
                    time: time.clone(),
                    usage_nano_cores: None,
                    usage_core_nano_seconds: Some(host_usage.cpu_core_nanos),
                }),
                memory: Some(MemoryStats {
                    time: time.clone(),
                    available_bytes: Some(
                        observations
                            .memory_capacity_bytes
                            .saturating_sub(working_set),
                    ),
                    usage_bytes: info
                        .get("MemTotal")
                        .zip(info.get("MemFree"))
                        .map(|(t, f)| t.saturating_sub(*f)),
                    working_set_bytes: Some(working_set),
                    rss_bytes: info.get("AnonPages").copied(),
                    page_faults,
                    major_page_faults,
                }),
                network: Some(NetworkStats {
                    time: time.clone(),
                    default,
                    interfaces,
                }),
                fs: Some(nodefs),
                runtime: Some(RuntimeStats {
                    image_fs: Some(imagefs.clone()),
                    container_fs: Some(imagefs),
                }),
                rlimit: Some(RlimitStats {
                    time,
                    maxpid: i64::try_from(observations.pid_max).ok(),
                    curproc: i64::try_from(observations.pids_running).ok(),
                }),
            },
            pods,
        };
        fill_cpu_rates(&mut summary, &mut self.cpu_cache.lock());
        Ok(summary)
    }
}

#[cfg(test)]
mod tests;
