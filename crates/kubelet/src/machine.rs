//! This machine's facts, as the kubelet learns them from cadvisor's machine info: CPUs, memory,
//! the data dir's filesystem, identity (machine ID, boot ID, kernel, OS image), the InternalIP,
//! and the observations the eviction manager turns into MemoryPressure / DiskPressure /
//! PIDPressure.
//!
//! The parsing and the decisions are pure functions over file contents and plain numbers
//! (`parse_*`, [`cpu_capacity_millis`], [`allocatable`], [`pressure`]), tested by tables below.
//! [`read_facts`] and [`read_observations`] are the thin readers on top; every path they read is
//! under [`MachineConfig::root`] (`/` on a real node), so they run against a fake tree in tests.
//!
//! Deviations from upstream, on purpose:
//! - capacity is bounded by the cgroup limits of the agent's own cgroup and its ancestors
//!   (cgroup v1, v2 or hybrid): an agent in a limited container advertises what it can use.
//!   cadvisor reports the whole machine.
//! - [`pressure`] (the heartbeat's fallback when no eviction manager runs) reads
//!   `memory.available` as the kernel's `MemAvailable`, not capacity minus the root cgroup's
//!   working set, and applies no transition period; the eviction manager ([`crate::eviction`])
//!   does both as upstream, from the stats summary.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};

/// `maxPods` of the kubelet configuration, upstream's default.
pub const DEFAULT_MAX_PODS: u64 = 110;

const KI: u64 = 1 << 10;
const MI: u64 = 1 << 20;

/// A v1 `memory.limit_in_bytes` at or above this is "no limit" (the kernel reports
/// `PAGE_COUNTER_MAX` pages, 9223372036854771712 bytes on 4 KiB pages).
const V1_UNLIMITED: u64 = 1 << 62;

/// What went wrong reading the machine.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    /// A file every Linux machine has could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A file was read but did not say what it must (e.g. `/proc/meminfo` without `MemTotal`).
    #[error("parsing {path}: {what}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was missing or malformed.
        what: &'static str,
    },
    /// `statvfs` of the data dir failed.
    #[error("statvfs {path}: {source}")]
    Statvfs {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

// ---------------------------------------------------------------------------------------------
// Plain data.

/// The node resources the kubelet reports, in base units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// `cpu`, in millicores.
    pub cpu_millis: u64,
    /// `memory`, in bytes.
    pub memory_bytes: u64,
    /// `ephemeral-storage`, in bytes.
    pub ephemeral_storage_bytes: u64,
    /// `pods`.
    pub pods: u64,
    /// `hugepages-2Mi`, in bytes (ferry reserves none).
    pub hugepages_2mi_bytes: u64,
}

/// An eviction threshold's value: an absolute quantity or a percentage of capacity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ThresholdValue {
    /// Bytes (memory, disk) or a count (PIDs, inodes).
    Quantity(u64),
    /// A fraction of the capacity, `0.1` for `10%`.
    Percentage(f64),
}

impl ThresholdValue {
    /// The absolute threshold for `capacity`, as upstream's `GetThresholdQuantity`.
    pub fn quantity(self, capacity: u64) -> u64 {
        match self {
            ThresholdValue::Quantity(q) => q,
            ThresholdValue::Percentage(p) => (capacity as f64 * p) as u64,
        }
    }
}

/// The kubelet's `evictionHard` thresholds, all of the `signal < value` form.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvictionHard {
    /// `memory.available`.
    pub memory_available: Option<ThresholdValue>,
    /// `nodefs.available`.
    pub nodefs_available: Option<ThresholdValue>,
    /// `nodefs.inodesFree`.
    pub nodefs_inodes_free: Option<ThresholdValue>,
    /// `imagefs.available` (the image filesystem is the nodefs unless given apart).
    pub imagefs_available: Option<ThresholdValue>,
    /// `pid.available`.
    pub pid_available: Option<ThresholdValue>,
}

impl Default for EvictionHard {
    /// Upstream's `DefaultEvictionHard` on Linux: `memory.available<100Mi`,
    /// `nodefs.available<10%`, `nodefs.inodesFree<5%`, `imagefs.available<15%`. There is no
    /// default `pid.available` threshold upstream, so PIDPressure needs one configured.
    fn default() -> Self {
        EvictionHard {
            memory_available: Some(ThresholdValue::Quantity(100 * MI)),
            nodefs_available: Some(ThresholdValue::Percentage(0.10)),
            nodefs_inodes_free: Some(ThresholdValue::Percentage(0.05)),
            imagefs_available: Some(ThresholdValue::Percentage(0.15)),
            pid_available: None,
        }
    }
}

/// A filesystem's size and what is left, from `statvfs`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsStats {
    /// Total bytes.
    pub capacity_bytes: u64,
    /// Bytes available to unprivileged users (`f_bavail`).
    pub available_bytes: u64,
    /// Total inodes.
    pub inodes: u64,
    /// Free inodes.
    pub inodes_free: u64,
}

/// What the eviction manager observes, every status update.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Observations {
    /// Memory capacity (the denominator of a percentage threshold).
    pub memory_capacity_bytes: u64,
    /// `MemAvailable`, bounded by what the cgroup limit leaves.
    pub memory_available_bytes: u64,
    /// The data dir's filesystem.
    pub nodefs: FsStats,
    /// The image filesystem when it is another one.
    pub imagefs: Option<FsStats>,
    /// `min(kernel.pid_max, kernel.threads-max)`.
    pub pid_max: u64,
    /// Tasks on the machine (the total of `/proc/loadavg`'s fourth field).
    pub pids_running: u64,
}

/// The node conditions the eviction manager decides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pressure {
    /// MemoryPressure.
    pub memory: bool,
    /// DiskPressure.
    pub disk: bool,
    /// PIDPressure.
    pub pid: bool,
}

/// Everything the node says about the machine in its status: resources and identity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeFacts {
    /// The hostname, lower-cased (the default node name).
    pub hostname: String,
    /// The InternalIP.
    pub internal_ip: Option<IpAddr>,
    /// `status.capacity`.
    pub capacity: Resources,
    /// `status.allocatable`: capacity minus reservations and the hard eviction thresholds.
    pub allocatable: Resources,
    /// `/etc/machine-id`.
    pub machine_id: String,
    /// The DMI product UUID, or the machine ID when it cannot be read.
    pub system_uuid: String,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
    /// `/proc/sys/kernel/osrelease`.
    pub kernel_version: String,
    /// `PRETTY_NAME` of `/etc/os-release`.
    pub os_image: String,
    /// `linux`.
    pub operating_system: String,
    /// The Go name of the architecture (`amd64`, `arm64`).
    pub architecture: String,
}

/// How to read the machine: where, and the kubelet configuration that shapes the result.
#[derive(Clone, Debug, PartialEq)]
pub struct MachineConfig {
    /// Prefix of every /proc, /sys and /etc path read (`/`; a temp dir in tests).
    pub root: PathBuf,
    /// The agent's data dir: its filesystem is the node's `ephemeral-storage`.
    pub data_dir: PathBuf,
    /// The image filesystem, when not the data dir's.
    pub image_dir: Option<PathBuf>,
    /// `maxPods`.
    pub max_pods: u64,
    /// `--node-ip`; without it the source address of the default route, then 127.0.0.1.
    pub node_ip: Option<IpAddr>,
    /// `--hostname-override`.
    pub hostname_override: Option<String>,
    /// `systemReserved` (cpu, memory, ephemeral-storage).
    pub system_reserved: Resources,
    /// `kubeReserved` (cpu, memory, ephemeral-storage).
    pub kube_reserved: Resources,
    /// `evictionHard`.
    pub eviction_hard: EvictionHard,
}

impl Default for MachineConfig {
    fn default() -> Self {
        MachineConfig {
            root: PathBuf::from("/"),
            data_dir: PathBuf::from("/var/lib/ferry"),
            image_dir: None,
            max_pods: DEFAULT_MAX_PODS,
            node_ip: None,
            hostname_override: None,
            system_reserved: Resources::default(),
            kube_reserved: Resources::default(),
            eviction_hard: EvictionHard::default(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pure parsing.

/// The number of logical CPUs in `/proc/cpuinfo` (its `processor` lines), at least 1.
pub fn parse_cpuinfo(cpuinfo: &str) -> u64 {
    let n = cpuinfo
        .lines()
        .filter(|l| {
            l.split(':')
                .next()
                .is_some_and(|k| k.trim_end() == "processor")
        })
        .count() as u64;
    n.max(1)
}

/// `MemTotal` and `MemAvailable` of `/proc/meminfo`, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemInfo {
    /// `MemTotal`.
    pub total_bytes: u64,
    /// `MemAvailable` (kernels before 3.14 lack it: `MemFree` then).
    pub available_bytes: u64,
}

/// Parses `/proc/meminfo`; `None` without `MemTotal`.
pub fn parse_meminfo(meminfo: &str) -> Option<MemInfo> {
    let mut fields = BTreeMap::new();
    for line in meminfo.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let Some(Ok(value)) = parts.next().map(str::parse::<u64>) else {
            continue;
        };
        let bytes = match parts.next() {
            Some("kB") => value.saturating_mul(KI),
            _ => value,
        };
        fields.insert(key.trim(), bytes);
    }
    let total_bytes = *fields.get("MemTotal")?;
    let available_bytes = fields
        .get("MemAvailable")
        .or_else(|| fields.get("MemFree"))
        .copied()
        .unwrap_or(total_bytes);
    Some(MemInfo {
        total_bytes,
        available_bytes,
    })
}

/// A cgroup hierarchy mounted on this machine, from `/proc/self/mountinfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupMount {
    /// `true` for the unified (v2) hierarchy.
    pub v2: bool,
    /// The cgroup the mount shows at its mount point (`/` unless bind-mounted from inside).
    pub root: String,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// The v1 controllers (super options such as `cpu`, `cpuacct`, `name=systemd`).
    pub controllers: Vec<String>,
}

/// The cgroup mounts in `/proc/self/mountinfo` (v1 `cgroup` and v2 `cgroup2`).
pub fn parse_mountinfo_cgroups(mountinfo: &str) -> Vec<CgroupMount> {
    let mut mounts = Vec::new();
    for line in mountinfo.lines() {
        // "id parent major:minor root mount-point options [optional...] - fstype source super"
        let Some((before, after)) = line.split_once(" - ") else {
            continue;
        };
        let before: Vec<&str> = before.split_whitespace().collect();
        let after: Vec<&str> = after.split_whitespace().collect();
        let (Some(root), Some(mount_point), Some(fstype)) =
            (before.get(3), before.get(4), after.first())
        else {
            continue;
        };
        let v2 = match *fstype {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        let controllers = if v2 {
            Vec::new()
        } else {
            after
                .get(2)
                .map(|opts| opts.split(',').map(str::to_string).collect())
                .unwrap_or_default()
        };
        mounts.push(CgroupMount {
            v2,
            root: unescape_mountinfo(root),
            mount_point: PathBuf::from(unescape_mountinfo(mount_point)),
            controllers,
        });
    }
    mounts
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let octal = rest.get(i + 1..i + 4);
        match octal.and_then(|o| u8::from_str_radix(o, 8).ok()) {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The process's cgroups, from `/proc/self/cgroup`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcCgroups {
    /// The v2 (unified) path, line `0::<path>`.
    pub v2: Option<String>,
    /// The v1 path of each controller.
    pub v1: BTreeMap<String, String>,
}

/// Parses `/proc/self/cgroup` (`hierarchy-id:controllers:path` lines).
pub fn parse_proc_cgroup(content: &str) -> ProcCgroups {
    let mut out = ProcCgroups::default();
    for line in content.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            out.v2 = Some(path.to_string());
        } else {
            for controller in controllers.split(',').filter(|c| !c.is_empty()) {
                out.v1.insert(controller.to_string(), path.to_string());
            }
        }
    }
    out
}

/// Where a controller's files for this process are, and in which cgroup version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupDir {
    /// `true` for v2 file names (`cpu.max`, `memory.max`).
    pub v2: bool,
    /// The process's cgroup directory.
    pub dir: PathBuf,
    /// The mount point: ancestors are read up to here.
    pub mount_point: PathBuf,
}

/// The directory of `controller` (`cpu` or `memory`) for this process: the v1 hierarchy that
/// has the controller if one is mounted (v1 and hybrid layouts), else the v2 hierarchy (its
/// files may be absent in a hybrid layout, where v2 holds no controllers: then no limit).
pub fn cgroup_dir(
    mounts: &[CgroupMount],
    proc_cgroups: &ProcCgroups,
    controller: &str,
) -> Option<CgroupDir> {
    let v1 = mounts
        .iter()
        .find(|m| !m.v2 && m.controllers.iter().any(|c| c == controller))
        .and_then(|m| Some((m, proc_cgroups.v1.get(controller)?)));
    let v2 = || {
        mounts
            .iter()
            .find(|m| m.v2)
            .and_then(|m| Some((m, proc_cgroups.v2.as_ref()?)))
    };
    let (mount, path) = v1.or_else(v2)?;
    let relative = path
        .strip_prefix(mount.root.trim_end_matches('/'))
        .unwrap_or(path)
        .trim_start_matches('/');
    let dir = if relative.is_empty() {
        mount.mount_point.clone()
    } else {
        mount.mount_point.join(relative)
    };
    Some(CgroupDir {
        v2: mount.v2,
        dir,
        mount_point: mount.mount_point.clone(),
    })
}

/// `dir` and its ancestors up to and including `mount_point`, innermost first: a limit on any
/// of them applies to the process.
pub fn cgroup_ancestors(dir: &Path, mount_point: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut current = Some(dir);
    while let Some(d) = current {
        if !d.starts_with(mount_point) {
            break;
        }
        out.push(d.to_path_buf());
        if d == mount_point {
            break;
        }
        current = d.parent();
    }
    out
}

/// A CFS bandwidth limit: `quota_us` of CPU time every `period_us`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuQuota {
    /// Microseconds of CPU per period.
    pub quota_us: u64,
    /// The period, in microseconds.
    pub period_us: u64,
}

/// Parses v2 `cpu.max` (`"max 100000"` is no limit, `"150000 100000"` is 1.5 CPUs).
pub fn parse_cpu_max(content: &str) -> Option<CpuQuota> {
    let mut parts = content.split_whitespace();
    let quota = parts.next()?;
    let period_us = parts.next().map_or(Some(100_000), |p| p.parse().ok())?;
    let quota_us = quota.parse().ok()?;
    (period_us > 0).then_some(CpuQuota {
        quota_us,
        period_us,
    })
}

/// Parses v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us` (a quota of `-1` is no limit).
pub fn parse_cfs(quota: &str, period: &str) -> Option<CpuQuota> {
    let quota_us: i64 = quota.trim().parse().ok()?;
    let period_us: u64 = period.trim().parse().ok()?;
    (quota_us > 0 && period_us > 0).then_some(CpuQuota {
        quota_us: quota_us as u64,
        period_us,
    })
}

/// Parses v2 `memory.max` (`max` is no limit).
pub fn parse_memory_max(content: &str) -> Option<u64> {
    content.trim().parse().ok()
}

/// Parses v1 `memory.limit_in_bytes` (the huge "unlimited" value is no limit).
pub fn parse_memory_limit_in_bytes(content: &str) -> Option<u64> {
    content
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|&v| v < V1_UNLIMITED)
}

/// The CPU capacity in millicores: the logical CPUs, bounded by the tightest quota (rounded up
/// to a millicore, at least 1m).
pub fn cpu_capacity_millis(processors: u64, quotas: &[CpuQuota]) -> u64 {
    let machine = processors.saturating_mul(1000);
    quotas
        .iter()
        .map(|q| {
            (q.quota_us.saturating_mul(1000))
                .div_ceil(q.period_us)
                .max(1)
        })
        .fold(machine, u64::min)
}

/// The value of `PRETTY_NAME` in `/etc/os-release` (quotes and escapes removed), or `Linux`
/// as cadvisor says without one.
pub fn parse_os_release(content: &str) -> String {
    content
        .lines()
        .find_map(|l| l.trim().strip_prefix("PRETTY_NAME="))
        .map(unquote_shell)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "Linux".to_string())
}

/// os-release values are shell-quoted: `"..."` with `\` escapes, or `'...'`.
fn unquote_shell(value: &str) -> String {
    let value = value.trim();
    if let Some(inner) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        return inner.to_string();
    }
    let inner = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The default route of `/proc/net/route`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultRoute {
    /// The interface.
    pub iface: String,
    /// The gateway (`0.0.0.0` for an on-link default route).
    pub gateway: Ipv4Addr,
}

/// The up default route (destination and mask 0) with the lowest metric.
pub fn parse_default_route(route: &str) -> Option<DefaultRoute> {
    const RTF_UP: u32 = 0x1;
    let hex = |s: &str| u32::from_str_radix(s, 16).ok();
    route
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (iface, dest, gw, flags, metric, mask) = (
                f.first()?,
                f.get(1)?,
                f.get(2)?,
                f.get(3)?,
                f.get(6)?,
                f.get(7)?,
            );
            let up = hex(flags)? & RTF_UP != 0;
            (up && hex(dest)? == 0 && hex(mask)? == 0).then_some(())?;
            // The kernel prints the address in host byte order: on the little-endian machines
            // ferry runs on, the first octet is the low byte.
            let gateway = Ipv4Addr::from(hex(gw)?.to_le_bytes());
            let metric: u64 = metric.parse().ok()?;
            Some((metric, iface.to_string(), gateway))
        })
        .min_by_key(|(metric, _, _)| *metric)
        .map(|(_, iface, gateway)| DefaultRoute { iface, gateway })
}

/// The number of tasks from `/proc/loadavg` (`0.1 0.2 0.3 running/total lastpid`), which the
/// kubelet prefers to `sysinfo(2)`.
pub fn parse_loadavg_tasks(loadavg: &str) -> Option<u64> {
    loadavg
        .split_whitespace()
        .nth(3)?
        .split_once('/')?
        .1
        .parse()
        .ok()
}

/// Go's name for Rust's `std::env::consts::ARCH`, as `kubernetes.io/arch` wants it.
pub fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

// ---------------------------------------------------------------------------------------------
// Pure decisions.

/// Allocatable = capacity − systemReserved − kubeReserved − the hard eviction thresholds for
/// memory and nodefs (upstream's `GetNodeAllocatableReservation` with `hardEvictionReservation`),
/// never below 0. Pods and hugepages are not reserved.
pub fn allocatable(
    capacity: &Resources,
    system_reserved: &Resources,
    kube_reserved: &Resources,
    eviction: &EvictionHard,
) -> Resources {
    let reserved = |f: fn(&Resources) -> u64| f(system_reserved).saturating_add(f(kube_reserved));
    let memory_eviction = eviction
        .memory_available
        .map_or(0, |t| t.quantity(capacity.memory_bytes));
    let nodefs_eviction = eviction
        .nodefs_available
        .map_or(0, |t| t.quantity(capacity.ephemeral_storage_bytes));
    Resources {
        cpu_millis: capacity
            .cpu_millis
            .saturating_sub(reserved(|r| r.cpu_millis)),
        memory_bytes: capacity
            .memory_bytes
            .saturating_sub(reserved(|r| r.memory_bytes))
            .saturating_sub(memory_eviction)
            .saturating_sub(capacity.hugepages_2mi_bytes),
        ephemeral_storage_bytes: capacity
            .ephemeral_storage_bytes
            .saturating_sub(reserved(|r| r.ephemeral_storage_bytes))
            .saturating_sub(nodefs_eviction),
        pods: capacity.pods,
        hugepages_2mi_bytes: capacity.hugepages_2mi_bytes,
    }
}

/// Which pressure conditions the hard thresholds say hold: a signal below its threshold.
pub fn pressure(obs: &Observations, eviction: &EvictionHard) -> Pressure {
    let below = |value: u64, threshold: Option<ThresholdValue>, capacity: u64| {
        threshold.is_some_and(|t| value < t.quantity(capacity))
    };
    let imagefs = obs.imagefs.unwrap_or(obs.nodefs);
    Pressure {
        memory: below(
            obs.memory_available_bytes,
            eviction.memory_available,
            obs.memory_capacity_bytes,
        ),
        disk: below(
            obs.nodefs.available_bytes,
            eviction.nodefs_available,
            obs.nodefs.capacity_bytes,
        ) || (obs.nodefs.inodes > 0
            && below(
                obs.nodefs.inodes_free,
                eviction.nodefs_inodes_free,
                obs.nodefs.inodes,
            ))
            || below(
                imagefs.available_bytes,
                eviction.imagefs_available,
                imagefs.capacity_bytes,
            ),
        pid: below(
            obs.pid_max.saturating_sub(obs.pids_running),
            eviction.pid_available,
            obs.pid_max,
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// The readers.

fn under(root: &Path, absolute: &str) -> PathBuf {
    root.join(absolute.trim_start_matches('/'))
}

/// `absolute` as seen under `root` (`/`, or a fake tree in tests).
pub(crate) fn under_path(root: &Path, absolute: &Path) -> PathBuf {
    root.join(absolute.strip_prefix("/").unwrap_or(absolute))
}

fn read(root: &Path, absolute: &str) -> Result<String, MachineError> {
    let path = under(root, absolute);
    std::fs::read_to_string(&path).map_err(|source| MachineError::Read { path, source })
}

/// A file that may be absent (no error): trimmed content, or `None`.
fn read_opt(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The CPU quotas and memory limits on this process's cgroup and its ancestors.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupLimits {
    /// Every CPU quota found.
    pub cpu: Vec<CpuQuota>,
    /// The tightest memory limit.
    pub memory_bytes: Option<u64>,
}

/// Reads the cgroup limits (v1, v2 or hybrid) of this process; none when cgroups are not
/// mounted.
pub fn read_cgroup_limits(root: &Path) -> CgroupLimits {
    let mounts = read(root, "/proc/self/mountinfo")
        .map(|m| parse_mountinfo_cgroups(&m))
        .unwrap_or_default();
    let procs = read(root, "/proc/self/cgroup")
        .map(|c| parse_proc_cgroup(&c))
        .unwrap_or_default();
    let mut limits = CgroupLimits::default();
    let dirs = |controller| {
        cgroup_dir(&mounts, &procs, controller)
            .map(|d| {
                let dirs = cgroup_ancestors(&d.dir, &d.mount_point);
                (d.v2, dirs)
            })
            .map(|(v2, dirs)| (v2, dirs.into_iter().map(|d| under_path(root, &d))))
    };
    if let Some((v2, dirs)) = dirs("cpu") {
        for dir in dirs {
            let quota = if v2 {
                read_opt(&dir.join("cpu.max")).and_then(|c| parse_cpu_max(&c))
            } else {
                read_opt(&dir.join("cpu.cfs_quota_us"))
                    .zip(read_opt(&dir.join("cpu.cfs_period_us")))
                    .and_then(|(q, p)| parse_cfs(&q, &p))
            };
            limits.cpu.extend(quota);
        }
    }
    if let Some((v2, dirs)) = dirs("memory") {
        for dir in dirs {
            let limit = if v2 {
                read_opt(&dir.join("memory.max")).and_then(|c| parse_memory_max(&c))
            } else {
                read_opt(&dir.join("memory.limit_in_bytes"))
                    .and_then(|c| parse_memory_limit_in_bytes(&c))
            };
            limits.memory_bytes = match (limits.memory_bytes, limit) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }
    limits
}

/// `statvfs` of `dir`.
pub fn read_fs_stats(dir: &Path) -> Result<FsStats, MachineError> {
    let st = rustix::fs::statvfs(dir).map_err(|e| MachineError::Statvfs {
        path: dir.to_path_buf(),
        source: e.into(),
    })?;
    let frsize = if st.f_frsize > 0 {
        st.f_frsize
    } else {
        st.f_bsize
    };
    Ok(FsStats {
        capacity_bytes: st.f_blocks.saturating_mul(frsize),
        available_bytes: st.f_bavail.saturating_mul(frsize),
        inodes: st.f_files,
        inodes_free: st.f_ffree,
    })
}

/// The node IP: `--node-ip` if given, else the source address the kernel picks for the default
/// route's gateway (a connected UDP socket: nothing is sent, no netlink needed), else
/// 127.0.0.1.
pub fn node_ip(root: &Path, configured: Option<IpAddr>) -> IpAddr {
    if let Some(ip) = configured {
        return ip;
    }
    let from_route = read(root, "/proc/net/route")
        .ok()
        .and_then(|r| parse_default_route(&r))
        .and_then(|route| {
            // An on-link default route has no gateway: any off-link address selects it.
            let target = if route.gateway.is_unspecified() {
                Ipv4Addr::new(192, 0, 2, 1)
            } else {
                route.gateway
            };
            let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
            socket.connect((target, 53)).ok()?;
            Some(socket.local_addr().ok()?.ip())
        })
        .filter(|ip| !ip.is_unspecified() && !ip.is_loopback());
    from_route.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// Reads the machine's memory capacity (MemTotal bounded by the cgroup limit) and `MemInfo`.
fn read_memory(root: &Path, limits: &CgroupLimits) -> Result<(u64, MemInfo), MachineError> {
    let meminfo = read(root, "/proc/meminfo")?;
    let info = parse_meminfo(&meminfo).ok_or_else(|| MachineError::Parse {
        path: under(root, "/proc/meminfo"),
        what: "no MemTotal",
    })?;
    let capacity = limits
        .memory_bytes
        .map_or(info.total_bytes, |l| l.min(info.total_bytes));
    Ok((capacity, info))
}

/// Reads the node's facts: resources (capacity and allocatable) and identity.
pub fn read_facts(config: &MachineConfig) -> Result<NodeFacts, MachineError> {
    let root = &config.root;
    let limits = read_cgroup_limits(root);
    let processors = parse_cpuinfo(&read(root, "/proc/cpuinfo")?);
    let (memory_bytes, _) = read_memory(root, &limits)?;
    let nodefs = read_fs_stats(&config.data_dir)?;
    let capacity = Resources {
        cpu_millis: cpu_capacity_millis(processors, &limits.cpu),
        memory_bytes,
        ephemeral_storage_bytes: nodefs.capacity_bytes,
        pods: config.max_pods,
        hugepages_2mi_bytes: 0,
    };
    let allocatable = allocatable(
        &capacity,
        &config.system_reserved,
        &config.kube_reserved,
        &config.eviction_hard,
    );
    let text = |path: &str| read(root, path).map(|s| s.trim().to_string()).ok();
    let machine_id = text("/etc/machine-id")
        .or_else(|| text("/var/lib/dbus/machine-id"))
        .unwrap_or_default();
    let hostname = config
        .hostname_override
        .clone()
        .or_else(|| text("/proc/sys/kernel/hostname"))
        .unwrap_or_else(|| "localhost".to_string())
        .to_lowercase();
    Ok(NodeFacts {
        hostname,
        internal_ip: Some(node_ip(root, config.node_ip)),
        capacity,
        allocatable,
        system_uuid: text("/sys/class/dmi/id/product_uuid")
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| machine_id.clone()),
        machine_id,
        boot_id: text("/proc/sys/kernel/random/boot_id").unwrap_or_default(),
        kernel_version: text("/proc/sys/kernel/osrelease").unwrap_or_default(),
        os_image: parse_os_release(&text("/etc/os-release").unwrap_or_default()),
        operating_system: "linux".to_string(),
        architecture: go_arch(std::env::consts::ARCH).to_string(),
    })
}

/// Reads what the eviction manager observes: memory, the data dir's (and image dir's)
/// filesystem, PIDs.
pub fn read_observations(config: &MachineConfig) -> Result<Observations, MachineError> {
    let root = &config.root;
    let limits = read_cgroup_limits(root);
    let (capacity, info) = read_memory(root, &limits)?;
    let nodefs = read_fs_stats(&config.data_dir)?;
    let imagefs = match &config.image_dir {
        Some(dir) => Some(read_fs_stats(dir)?),
        None => None,
    };
    let number = |path: &str| {
        read(root, path)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    // The kubelet takes the smaller of the two system-wide task limits.
    let pid_max = [
        number("/proc/sys/kernel/pid_max"),
        number("/proc/sys/kernel/threads-max"),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(0);
    let pids_running = read(root, "/proc/loadavg")
        .ok()
        .and_then(|l| parse_loadavg_tasks(&l))
        .unwrap_or(0);
    Ok(Observations {
        memory_capacity_bytes: capacity,
        // Under a cgroup limit, what is available is also bounded by the limit.
        memory_available_bytes: info
            .available_bytes
            .min(capacity.saturating_sub(info.total_bytes.saturating_sub(info.available_bytes))),
        nodefs,
        imagefs,
        pid_max,
        pids_running,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
50 23 8:1 / / rw,relatime - ext4 /dev/sda1 rw";
    const HYBRID_CGROUP: &str = "\
9:name=systemd:/system.slice/ferry.service
4:memory:/system.slice/ferry.service
2:cpu,cpuacct:/system.slice/ferry.service
0::/system.slice/ferry.service";
    const V2_MOUNTINFO: &str =
        "25 20 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw";
    const V2_CGROUP: &str = "0::/kubepods.slice/agent";

    #[test]
    fn cpuinfo_counts_processors() {
        let table = [
            ("processor\t: 0\nmodel name\t: x\n\nprocessor\t: 1\n", 1 + 1),
            (
                "processor : 0\nprocessor : 1\nprocessor : 2\nprocessor : 3\n",
                4,
            ),
            ("", 1),
            ("model name: processor x\n", 1),
        ];
        for (input, want) in table {
            assert_eq!(parse_cpuinfo(input), want, "{input:?}");
        }
    }

    #[test]
    fn meminfo() {
        let table = [
            (
                "MemTotal:       24731708 kB\nMemFree: 1 kB\nMemAvailable:   23862888 kB\n",
                Some((24731708 * 1024, 23862888 * 1024)),
            ),
            (
                "MemTotal: 2048 kB\nMemFree: 1024 kB\n",
                Some((2 << 20, 1 << 20)),
            ),
            ("MemTotal: 4096\n", Some((4096, 4096))),
            ("MemFree: 1 kB\n", None),
            ("", None),
        ];
        for (input, want) in table {
            let got = parse_meminfo(input).map(|m| (m.total_bytes, m.available_bytes));
            assert_eq!(got, want, "{input:?}");
        }
    }

    #[test]
    fn cgroup_dirs_for_v1_v2_and_hybrid() {
        let hybrid = parse_mountinfo_cgroups(HYBRID_MOUNTINFO);
        assert_eq!(hybrid.len(), 4);
        let procs = parse_proc_cgroup(HYBRID_CGROUP);
        let v2only = parse_mountinfo_cgroups(V2_MOUNTINFO);
        let v2procs = parse_proc_cgroup(V2_CGROUP);
        // A container with its own cgroup namespace: the mount root is the container's cgroup.
        let nested = parse_mountinfo_cgroups(
            "1 0 0:1 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory",
        );
        let nested_procs = parse_proc_cgroup("5:memory:/docker/abc\n");
        type Row<'a> = (
            &'a [CgroupMount],
            &'a ProcCgroups,
            &'a str,
            Option<(bool, &'a str)>,
        );
        let table: [Row; 7] = [
            (
                &hybrid,
                &procs,
                "cpu",
                Some((
                    false,
                    "/sys/fs/cgroup/cpu,cpuacct/system.slice/ferry.service",
                )),
            ),
            (
                &hybrid,
                &procs,
                "memory",
                Some((false, "/sys/fs/cgroup/memory/system.slice/ferry.service")),
            ),
            // No v1 pids hierarchy: falls to v2 (whose files may be absent).
            (
                &hybrid,
                &procs,
                "pids",
                Some((true, "/sys/fs/cgroup/unified/system.slice/ferry.service")),
            ),
            (
                &v2only,
                &v2procs,
                "cpu",
                Some((true, "/sys/fs/cgroup/kubepods.slice/agent")),
            ),
            (
                &v2only,
                &v2procs,
                "memory",
                Some((true, "/sys/fs/cgroup/kubepods.slice/agent")),
            ),
            (
                &nested,
                &nested_procs,
                "memory",
                Some((false, "/sys/fs/cgroup/memory")),
            ),
            (&[], &procs, "cpu", None),
        ];
        for (mounts, procs, controller, want) in table {
            let got = cgroup_dir(mounts, procs, controller);
            let got = got.as_ref().map(|d| (d.v2, d.dir.to_str().unwrap_or("")));
            assert_eq!(got, want, "{controller}");
        }
    }

    #[test]
    fn mountinfo_unescapes_and_reads_controllers() {
        let m = parse_mountinfo_cgroups(
            "1 0 0:1 / /sys/fs/cgroup/my\\040dir rw - cgroup cgroup rw,cpu,cpuacct",
        );
        assert_eq!(m[0].mount_point, PathBuf::from("/sys/fs/cgroup/my dir"));
        assert_eq!(m[0].controllers, ["rw", "cpu", "cpuacct"]);
        assert!(!m[0].v2);
    }

    #[test]
    fn ancestors_stop_at_the_mount_point() {
        let got = cgroup_ancestors(
            Path::new("/sys/fs/cgroup/memory/a/b"),
            Path::new("/sys/fs/cgroup/memory"),
        );
        assert_eq!(
            got,
            [
                PathBuf::from("/sys/fs/cgroup/memory/a/b"),
                PathBuf::from("/sys/fs/cgroup/memory/a"),
                PathBuf::from("/sys/fs/cgroup/memory"),
            ]
        );
    }

    #[test]
    fn cpu_and_memory_limits() {
        let q = |quota_us, period_us| CpuQuota {
            quota_us,
            period_us,
        };
        let cpu_max = [
            ("max 100000\n", None),
            ("150000 100000\n", Some(q(150_000, 100_000))),
            ("50000", Some(q(50_000, 100_000))),
            ("garbage 1", None),
            ("1 0", None),
        ];
        for (input, want) in cpu_max {
            assert_eq!(parse_cpu_max(input), want, "{input:?}");
        }
        let cfs = [
            ("-1\n", "100000\n", None),
            ("200000", "100000", Some(q(200_000, 100_000))),
            ("0", "100000", None),
        ];
        for (quota, period, want) in cfs {
            assert_eq!(parse_cfs(quota, period), want, "{quota:?}");
        }
        let capacity = [
            (4, vec![], 4000),
            (4, vec![q(150_000, 100_000)], 1500),
            (4, vec![q(800_000, 100_000)], 4000),
            (8, vec![q(300_000, 100_000), q(100_000, 100_000)], 1000),
            (2, vec![q(1, 100_000)], 1),
            (2, vec![q(33_333, 100_000)], 334),
        ];
        for (processors, quotas, want) in capacity {
            assert_eq!(cpu_capacity_millis(processors, &quotas), want, "{quotas:?}");
        }
        let memory = [
            ("max\n", None, None),
            ("1073741824\n", Some(1 << 30), None),
            ("9223372036854771712\n", None, None),
            ("536870912", Some(1 << 29), Some(1 << 29)),
        ];
        for (input, v2, v1) in memory {
            assert_eq!(parse_memory_max(input).filter(|_| v2.is_some()), v2);
            assert_eq!(parse_memory_limit_in_bytes(input), v1.or(v2), "{input}");
        }
    }

    #[test]
    fn os_release() {
        let table = [
            (
                "NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
                "Debian GNU/Linux 12 (bookworm)",
            ),
            ("PRETTY_NAME='Alpine Linux v3.20'", "Alpine Linux v3.20"),
            ("PRETTY_NAME=Plain", "Plain"),
            ("PRETTY_NAME=\"say \\\"hi\\\"\"", "say \"hi\""),
            ("NAME=x\n", "Linux"),
            ("PRETTY_NAME=\"\"", "Linux"),
        ];
        for (input, want) in table {
            assert_eq!(parse_os_release(input), want, "{input:?}");
        }
    }

    #[test]
    fn default_route() {
        let header =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n";
        let table = [
            (
                "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\neth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n",
                Some(("eth0", Ipv4Addr::new(192, 0, 2, 1))),
            ),
            // Two default routes: the lower metric wins.
            (
                "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\neth0\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n",
                Some(("eth0", Ipv4Addr::new(10, 0, 0, 1))),
            ),
            // A route that is down does not count.
            (
                "eth0\t00000000\t010200C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\n",
                None,
            ),
            ("eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n", None),
            ("", None),
        ];
        for (body, want) in table {
            let got = parse_default_route(&format!("{header}{body}"));
            let got = got.as_ref().map(|r| (r.iface.as_str(), r.gateway));
            assert_eq!(got, want, "{body:?}");
        }
    }

    #[test]
    fn loadavg_and_arch() {
        assert_eq!(
            parse_loadavg_tasks("2.78 2.41 2.08 3/105 29125\n"),
            Some(105)
        );
        assert_eq!(parse_loadavg_tasks("2.78 2.41"), None);
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
        assert_eq!(go_arch("s390x"), "s390x");
    }

    #[test]
    fn allocatable_subtracts_reservations_and_hard_eviction() {
        let capacity = Resources {
            cpu_millis: 4000,
            memory_bytes: 8 << 30,
            ephemeral_storage_bytes: 100 << 30,
            pods: 110,
            hugepages_2mi_bytes: 0,
        };
        let none = Resources::default();
        let reserved = Resources {
            cpu_millis: 500,
            memory_bytes: 1 << 30,
            ephemeral_storage_bytes: 1 << 30,
            ..Resources::default()
        };
        let no_eviction = EvictionHard {
            memory_available: None,
            nodefs_available: None,
            nodefs_inodes_free: None,
            imagefs_available: None,
            pid_available: None,
        };
        let table = [
            (
                none,
                none,
                EvictionHard::default(),
                (4000, (8 << 30) - 100 * MI, (100 << 30) - (10 << 30)),
            ),
            (none, none, no_eviction, (4000, 8 << 30, 100 << 30)),
            (reserved, reserved, no_eviction, (3000, 6 << 30, 98 << 30)),
            (
                Resources {
                    cpu_millis: 9000,
                    memory_bytes: 9 << 30,
                    ..none
                },
                none,
                EvictionHard::default(),
                (0, 0, 90 << 30),
            ),
        ];
        for (system, kube, eviction, want) in table {
            let got = allocatable(&capacity, &system, &kube, &eviction);
            assert_eq!(
                (
                    got.cpu_millis,
                    got.memory_bytes,
                    got.ephemeral_storage_bytes
                ),
                want,
                "{system:?} {eviction:?}"
            );
            assert_eq!(got.pods, 110);
        }
    }

    #[test]
    fn pressure_from_default_thresholds() {
        let fs = |capacity_bytes: u64, available_bytes: u64| FsStats {
            capacity_bytes,
            available_bytes,
            inodes: 1000,
            inodes_free: 500,
        };
        let healthy = Observations {
            memory_capacity_bytes: 8 << 30,
            memory_available_bytes: 4 << 30,
            nodefs: fs(100 << 30, 50 << 30),
            imagefs: None,
            pid_max: 32768,
            pids_running: 105,
        };
        let with_pid = EvictionHard {
            pid_available: Some(ThresholdValue::Percentage(0.1)),
            ..EvictionHard::default()
        };
        let p = |memory, disk, pid| Pressure { memory, disk, pid };
        let table = [
            (healthy, EvictionHard::default(), p(false, false, false)),
            (
                Observations {
                    memory_available_bytes: 99 * MI,
                    ..healthy
                },
                EvictionHard::default(),
                p(true, false, false),
            ),
            (
                Observations {
                    memory_available_bytes: 100 * MI,
                    ..healthy
                },
                EvictionHard::default(),
                p(false, false, false),
            ),
            // 12% free: nodefs (10%) is fine, but the image filesystem is the same one and
            // imagefs.available<15% holds, as on a single-disk upstream node.
            (
                Observations {
                    nodefs: fs(100 << 30, 12 << 30),
                    ..healthy
                },
                EvictionHard::default(),
                p(false, true, false),
            ),
            // A separate image filesystem with room: 12% on nodefs is no pressure.
            (
                Observations {
                    nodefs: fs(100 << 30, 12 << 30),
                    imagefs: Some(fs(100 << 30, 50 << 30)),
                    ..healthy
                },
                EvictionHard::default(),
                p(false, false, false),
            ),
            (
                Observations {
                    nodefs: FsStats {
                        inodes_free: 10,
                        ..fs(100 << 30, 50 << 30)
                    },
                    ..healthy
                },
                EvictionHard::default(),
                p(false, true, false),
            ),
            // No default pid.available threshold upstream.
            (
                Observations {
                    pids_running: 32000,
                    ..healthy
                },
                EvictionHard::default(),
                p(false, false, false),
            ),
            (
                Observations {
                    pids_running: 32000,
                    ..healthy
                },
                with_pid,
                p(false, false, true),
            ),
            (healthy, with_pid, p(false, false, false)),
        ];
        for (obs, eviction, want) in table {
            assert_eq!(pressure(&obs, &eviction), want, "{obs:?}");
        }
    }

    /// A fake root with a hybrid cgroup layout: the reader finds the v1 limits.
    #[test]
    fn reader_on_a_fake_hybrid_root() -> Result<(), Box<dyn std::error::Error>> {
        let root = tempfile::tempdir()?;
        let write = |path: &str, content: &str| -> io::Result<()> {
            let p = under(root.path(), path);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(p, content)
        };
        write("/proc/self/mountinfo", HYBRID_MOUNTINFO)?;
        write("/proc/self/cgroup", HYBRID_CGROUP)?;
        write(
            "/proc/cpuinfo",
            "processor\t: 0\nprocessor\t: 1\nprocessor\t: 2\nprocessor\t: 3\n",
        )?;
        write(
            "/proc/meminfo",
            "MemTotal: 8388608 kB\nMemFree: 1 kB\nMemAvailable: 7340032 kB\n",
        )?;
        let cpu = "/sys/fs/cgroup/cpu,cpuacct/system.slice";
        write(&format!("{cpu}/ferry.service/cpu.cfs_quota_us"), "-1\n")?;
        write(
            &format!("{cpu}/ferry.service/cpu.cfs_period_us"),
            "100000\n",
        )?;
        write(&format!("{cpu}/cpu.cfs_quota_us"), "250000\n")?;
        write(&format!("{cpu}/cpu.cfs_period_us"), "100000\n")?;
        write(
            "/sys/fs/cgroup/memory/system.slice/ferry.service/memory.limit_in_bytes",
            "2147483648\n",
        )?;
        write(
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "9223372036854771712\n",
        )?;
        write("/etc/machine-id", "3d1219c7c4c5404aaa1f6d2a48adfda4\n")?;
        write("/proc/sys/kernel/random/boot_id", "c9aff790-06f3\n")?;
        write("/proc/sys/kernel/osrelease", "6.1.0-test\n")?;
        write("/proc/sys/kernel/hostname", "Node-A\n")?;
        write(
            "/etc/os-release",
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
        )?;
        write("/proc/sys/kernel/pid_max", "32768\n")?;
        write("/proc/sys/kernel/threads-max", "193102\n")?;
        write("/proc/loadavg", "0.1 0.2 0.3 3/105 29125\n")?;
        let config = MachineConfig {
            root: root.path().to_path_buf(),
            data_dir: root.path().to_path_buf(),
            node_ip: Some(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))),
            ..MachineConfig::default()
        };
        let facts = read_facts(&config)?;
        assert_eq!(facts.capacity.cpu_millis, 2500);
        assert_eq!(facts.capacity.memory_bytes, 2 << 30);
        assert_eq!(facts.allocatable.memory_bytes, (2 << 30) - 100 * MI);
        assert_eq!(facts.capacity.pods, 110);
        assert!(facts.capacity.ephemeral_storage_bytes > 0);
        assert_eq!(facts.hostname, "node-a");
        assert_eq!(facts.machine_id, "3d1219c7c4c5404aaa1f6d2a48adfda4");
        assert_eq!(facts.system_uuid, facts.machine_id);
        assert_eq!(facts.boot_id, "c9aff790-06f3");
        assert_eq!(facts.kernel_version, "6.1.0-test");
        assert_eq!(facts.os_image, "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(facts.internal_ip, config.node_ip);
        let obs = read_observations(&config)?;
        assert_eq!(obs.pid_max, 32768);
        assert_eq!(obs.pids_running, 105);
        assert_eq!(obs.memory_capacity_bytes, 2 << 30);
        // 1 GiB of the 8 GiB is in use: the 2 GiB limit leaves 1 GiB.
        assert_eq!(obs.memory_available_bytes, 1 << 30);
        assert!(!pressure(&obs, &config.eviction_hard).memory);
        Ok(())
    }

    /// The real machine: whatever it is, the reader gets sane numbers.
    #[test]
    fn reader_on_this_machine() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let config = MachineConfig {
            data_dir: dir.path().to_path_buf(),
            ..MachineConfig::default()
        };
        let facts = read_facts(&config)?;
        assert!(facts.capacity.cpu_millis >= 1);
        assert!(facts.capacity.memory_bytes > 0);
        assert!(facts.allocatable.memory_bytes <= facts.capacity.memory_bytes);
        assert!(facts.internal_ip.is_some());
        let obs = read_observations(&config)?;
        assert!(obs.pid_max > 0);
        Ok(())
    }
}
