//! The node's own CPU, memory and swap for `/metrics/resource`, read from the host where
//! cadvisor reads them for upstream's kubelet (its root cgroup, `/`):
//!
//! - CPU: cumulative time the CPUs spent out of idle, from the `cpu` line of `/proc/stat`
//!   (user, nice, system, irq, softirq; guest time is inside user and nice).
//! - Memory working set: the root memory cgroup's usage minus its inactive file pages, as
//!   cadvisor computes it — cgroup v1 `memory.usage_in_bytes` minus `total_inactive_file`;
//!   cgroup v2, whose root has no `memory.current`, `anon + file - inactive_file` of the root's
//!   `memory.stat` (as runc's `rootStatsFromMeminfo`); without a memory cgroup mounted,
//!   `MemTotal - MemFree - Inactive(file)` of `/proc/meminfo`.
//! - Swap in use: `SwapTotal - SwapFree` of `/proc/meminfo`.
//!
//! Parsing is pure (`parse_*`, `working_set_*`), tested below; [`read`] is the thin reader, with
//! every path under a root (`/` on a node, a temporary tree in tests) as in [`crate::machine`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::machine::{parse_mountinfo_cgroups, under_path as under, CgroupMount, MachineError};

/// `USER_HZ`: `/proc/stat` counts in hundredths of a second on every Linux.
const NANOS_PER_TICK: u64 = 10_000_000;

/// The node's figures at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostUsage {
    /// When they were read, ns since the epoch.
    pub time_nanos: i64,
    /// Cumulative CPU time, in core-nanoseconds.
    pub cpu_core_nanos: u64,
    /// The memory working set, in bytes.
    pub working_set_bytes: u64,
    /// Swap in use, in bytes.
    pub swap_bytes: u64,
}

/// The busy time of the `cpu` line of `/proc/stat`, in nanoseconds.
pub fn parse_proc_stat_cpu_nanos(stat: &str) -> Option<u64> {
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some("cpu"))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal guest guest_nice
    let busy = [0, 1, 2, 5, 6]
        .iter()
        .map(|&i| ticks.get(i).copied().unwrap_or(0))
        .fold(0u64, u64::saturating_add);
    Some(busy.saturating_mul(NANOS_PER_TICK))
}

/// `key value` lines (`memory.stat`), or `Key: value kB` lines (`/proc/meminfo`, in bytes).
pub fn parse_key_values(content: &str) -> HashMap<&str, u64> {
    content
        .lines()
        .filter_map(|line| {
            let (key, rest) = line
                .split_once(':')
                .or_else(|| line.split_once(char::is_whitespace))?;
            let mut words = rest.split_whitespace();
            let value: u64 = words.next()?.parse().ok()?;
            let value = match words.next() {
                Some("kB") => value.saturating_mul(1024),
                _ => value,
            };
            Some((key.trim(), value))
        })
        .collect()
}

/// cgroup v1: `memory.usage_in_bytes` minus `total_inactive_file` of `memory.stat`.
pub fn working_set_v1(usage_in_bytes: &str, memory_stat: &str) -> Option<u64> {
    let usage: u64 = usage_in_bytes.trim().parse().ok()?;
    let stat = parse_key_values(memory_stat);
    Some(usage.saturating_sub(stat.get("total_inactive_file").copied().unwrap_or(0)))
}

/// cgroup v2: `memory.current` (the root has none: `anon + file` of `memory.stat`) minus
/// `inactive_file`.
pub fn working_set_v2(memory_current: Option<&str>, memory_stat: &str) -> Option<u64> {
    let stat = parse_key_values(memory_stat);
    let usage = match memory_current {
        Some(current) => current.trim().parse().ok()?,
        None => stat.get("anon")?.saturating_add(*stat.get("file")?),
    };
    Some(usage.saturating_sub(stat.get("inactive_file").copied().unwrap_or(0)))
}

/// Without a memory cgroup: `MemTotal - MemFree - Inactive(file)` of `/proc/meminfo`.
pub fn working_set_meminfo(meminfo: &str) -> Option<u64> {
    let info = parse_key_values(meminfo);
    Some(
        info.get("MemTotal")?
            .saturating_sub(*info.get("MemFree")?)
            .saturating_sub(info.get("Inactive(file)").copied().unwrap_or(0)),
    )
}

/// `SwapTotal - SwapFree` of `/proc/meminfo` (0 without swap).
pub fn swap_meminfo(meminfo: &str) -> u64 {
    let info = parse_key_values(meminfo);
    let get = |k| info.get(k).copied().unwrap_or(0);
    get("SwapTotal").saturating_sub(get("SwapFree"))
}

fn read_file(path: PathBuf) -> Result<String, MachineError> {
    std::fs::read_to_string(&path).map_err(|source| MachineError::Read { path, source })
}

/// The memory hierarchy this process sees: the v1 `memory` mount, else the v2 one.
fn memory_mount(mounts: &[CgroupMount]) -> Option<&CgroupMount> {
    mounts
        .iter()
        .find(|m| !m.v2 && m.controllers.iter().any(|c| c == "memory"))
        .or_else(|| mounts.iter().find(|m| m.v2))
}

/// The root memory cgroup's working set (see the module docs).
fn read_working_set(root: &Path, meminfo: &str) -> Result<u64, MachineError> {
    let mountinfo = read_file(under(root, Path::new("/proc/self/mountinfo")))?;
    let mounts = parse_mountinfo_cgroups(&mountinfo);
    let parse_error = |path: PathBuf| MachineError::Parse {
        path,
        what: "no memory usage",
    };
    match memory_mount(&mounts) {
        Some(mount) => {
            let dir = under(root, &mount.mount_point);
            let stat = read_file(dir.join("memory.stat"))?;
            let found = if mount.v2 {
                let current = std::fs::read_to_string(dir.join("memory.current")).ok();
                working_set_v2(current.as_deref(), &stat)
            } else {
                working_set_v1(&read_file(dir.join("memory.usage_in_bytes"))?, &stat)
            };
            found.ok_or_else(|| parse_error(dir))
        }
        None => working_set_meminfo(meminfo)
            .ok_or_else(|| parse_error(under(root, Path::new("/proc/meminfo")))),
    }
}

/// Reads the node's figures under `root`, stamped `time_nanos`.
pub fn read(root: &Path, time_nanos: i64) -> Result<HostUsage, MachineError> {
    let stat_path = under(root, Path::new("/proc/stat"));
    let cpu_core_nanos =
        parse_proc_stat_cpu_nanos(&read_file(stat_path.clone())?).ok_or(MachineError::Parse {
            path: stat_path,
            what: "no cpu line",
        })?;
    let meminfo = read_file(under(root, Path::new("/proc/meminfo")))?;
    Ok(HostUsage {
        time_nanos,
        cpu_core_nanos,
        working_set_bytes: read_working_set(root, &meminfo)?,
        swap_bytes: swap_meminfo(&meminfo),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:        8000000 kB\nMemFree:         1000000 kB\n\
        MemAvailable:    5000000 kB\nInactive(file):  2000000 kB\nSwapTotal:       1000 kB\n\
        SwapFree:         400 kB\n";

    #[test]
    fn cpu_time_is_the_busy_ticks_of_proc_stat() {
        let stat = "cpu  100 20 30 4000 50 6 7 8 9 10\ncpu0 50 10 15 2000 25 3 3 4 4 5\n\
            intr 12345\n";
        // user + nice + system + irq + softirq = 163 ticks of 10 ms.
        assert_eq!(parse_proc_stat_cpu_nanos(stat), Some(1_630_000_000));
        // Old kernels have fewer columns.
        assert_eq!(parse_proc_stat_cpu_nanos("cpu 1 2 3 4\n"), Some(60_000_000));
        assert_eq!(parse_proc_stat_cpu_nanos("cpu0 1 2 3 4\n"), None);
        assert_eq!(parse_proc_stat_cpu_nanos("cpu 1 x 3\n"), None);
    }

    #[test]
    fn working_sets_as_cadvisor_computes_them() {
        let v1_stat = "cache 10\nrss 20\ntotal_cache 4000\ntotal_rss 6000\n\
            total_inactive_file 3000\n";
        assert_eq!(working_set_v1("10000\n", v1_stat), Some(7000));
        assert_eq!(working_set_v1("2000\n", v1_stat), Some(0), "never negative");
        assert_eq!(working_set_v1("", v1_stat), None);
        let v2_stat = "anon 5000\nfile 4000\nkernel 100\ninactive_file 3000\nactive_file 1000\n";
        assert_eq!(working_set_v2(None, v2_stat), Some(6000), "the root cgroup");
        assert_eq!(working_set_v2(Some("8000\n"), v2_stat), Some(5000));
        assert_eq!(working_set_v2(None, "inactive_file 1\n"), None);
        assert_eq!(working_set_meminfo(MEMINFO), Some(5_000_000 * 1024));
        assert_eq!(working_set_meminfo("MemFree: 1 kB\n"), None);
        assert_eq!(swap_meminfo(MEMINFO), 600 * 1024);
        assert_eq!(swap_meminfo("MemTotal: 1 kB\n"), 0);
    }

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("tempdir");
        for (path, content) in files {
            let path = root.path().join(path.trim_start_matches('/'));
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, content).expect("write");
        }
        root
    }

    #[test]
    fn reads_v1_v2_and_no_cgroup_trees() {
        let stat = "cpu  100 0 100 9000 0 0 0 0 0 0\n";
        let v1 = tree(&[
            ("/proc/stat", stat),
            ("/proc/meminfo", MEMINFO),
            (
                "/proc/self/mountinfo",
                "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                 41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
            ),
            ("/sys/fs/cgroup/memory/memory.usage_in_bytes", "9000\n"),
            (
                "/sys/fs/cgroup/memory/memory.stat",
                "total_inactive_file 1000\n",
            ),
        ]);
        assert_eq!(
            read(v1.path(), 42).expect("v1"),
            HostUsage {
                time_nanos: 42,
                cpu_core_nanos: 2_000_000_000,
                working_set_bytes: 8000,
                swap_bytes: 600 * 1024,
            }
        );
        let v2 = tree(&[
            ("/proc/stat", stat),
            ("/proc/meminfo", MEMINFO),
            (
                "/proc/self/mountinfo",
                "25 20 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
            ),
            (
                "/sys/fs/cgroup/memory.stat",
                "anon 300\nfile 200\ninactive_file 50\n",
            ),
        ]);
        assert_eq!(read(v2.path(), 0).expect("v2").working_set_bytes, 450);
        let none = tree(&[
            ("/proc/stat", stat),
            ("/proc/meminfo", MEMINFO),
            (
                "/proc/self/mountinfo",
                "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n",
            ),
        ]);
        assert_eq!(
            read(none.path(), 0).expect("meminfo").working_set_bytes,
            5_000_000 * 1024
        );
        let broken = tree(&[("/proc/stat", "intr 1\n")]);
        assert!(matches!(
            read(broken.path(), 0),
            Err(MachineError::Parse { .. })
        ));
    }
}
