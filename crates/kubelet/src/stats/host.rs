//! The host's figures the summary needs beyond [`crate::server::node_stats`] and
//! [`crate::machine`]: interface counters (`/proc/net/dev`), page faults (`/proc/vmstat`), the
//! kubelet's own CPU and memory (`/proc/self`), a process's start, and how much a directory
//! tree holds (`du`, for volumes and logs). Parsers are pure and tested below.

use std::path::Path;

use super::summary::InterfaceStats;
use crate::server::node_stats::parse_key_values;

/// `/proc/net/dev`: each interface's receive and transmit bytes and errors, `lo` left out.
pub fn parse_net_dev(content: &str) -> Vec<InterfaceStats> {
    content
        .lines()
        .skip(2)
        .filter_map(|line| {
            let (name, counters) = line.split_once(':')?;
            let name = name.trim();
            if name == "lo" {
                return None;
            }
            let n: Vec<u64> = counters
                .split_whitespace()
                .map(|v| v.parse().unwrap_or(0))
                .collect();
            // rx: bytes packets errs drop fifo frame compressed multicast; tx: bytes packets errs
            Some(InterfaceStats {
                name: name.to_string(),
                rx_bytes: n.first().copied(),
                rx_errors: n.get(2).copied(),
                tx_bytes: n.get(8).copied(),
                tx_errors: n.get(10).copied(),
            })
        })
        .collect()
}

/// `pgfault` and `pgmajfault` of `/proc/vmstat`.
pub fn parse_page_faults(vmstat: &str) -> (Option<u64>, Option<u64>) {
    let values = parse_key_values(vmstat);
    (
        values.get("pgfault").copied(),
        values.get("pgmajfault").copied(),
    )
}

/// A process's CPU time (utime + stime, in ns) and start (clock ticks after boot) from its
/// `/proc/<pid>/stat`; the command may hold spaces and parentheses, so fields count from the
/// last `)`.
pub fn parse_pid_stat(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is the state (field 3); utime is field 14, stime 15, starttime 22.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let start: u64 = fields.get(19)?.parse().ok()?;
    Some(((utime + stime) * 10_000_000, start))
}

/// `VmRSS` of a `/proc/<pid>/status`, in bytes.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    parse_key_values(status).get("VmRSS").copied()
}

/// `btime` of `/proc/stat`: the boot time, seconds since the epoch.
pub fn parse_boot_time(stat: &str) -> Option<i64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// Bytes (allocated blocks, as `du`) and inodes under `dir`, not following symlinks nor
/// crossing into other filesystems. A missing directory holds nothing.
pub fn dir_usage(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(root) = std::fs::symlink_metadata(dir) else {
        return (0, 0);
    };
    let device = root.dev();
    let (mut bytes, mut inodes) = (root.blocks() * 512, 1u64);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.dev() != device {
                continue;
            }
            bytes = bytes.saturating_add(meta.blocks() * 512);
            inodes += 1;
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    (bytes, inodes)
}

/// The rate between two cumulative CPU readings `(time ns, core-ns)`, in nanocores; `None`
/// when time did not advance or the counter went back (a restarted container).
pub fn nano_cores(previous: (i64, u64), current: (i64, u64)) -> Option<u64> {
    let elapsed = current.0.checked_sub(previous.0).filter(|d| *d > 0)?;
    let used = current.1.checked_sub(previous.1)?;
    Some((u128::from(used) * 1_000_000_000 / elapsed as u128) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_counts_every_interface_but_loopback() {
        let dev = "Inter-|   Receive                                                |  Transmit\n \
            face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
            lo:  100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n  \
            eth0: 2000 20 3 0 0 0 0 0 1000 10 4 0 0 0 0 0\n";
        let interfaces = parse_net_dev(dev);
        assert_eq!(interfaces.len(), 1);
        assert_eq!(interfaces[0].name, "eth0");
        assert_eq!(interfaces[0].rx_bytes, Some(2000));
        assert_eq!(interfaces[0].rx_errors, Some(3));
        assert_eq!(interfaces[0].tx_bytes, Some(1000));
        assert_eq!(interfaces[0].tx_errors, Some(4));
    }

    #[test]
    fn process_figures_come_after_the_command() {
        let stat = "42 (my (odd) cmd) S 1 42 42 0 -1 4194560 100 0 0 0 30 20 0 0 20 0 4 0 555 0 0";
        assert_eq!(parse_pid_stat(stat), Some((500_000_000, 555)));
        assert_eq!(
            parse_vm_rss("Name:\tx\nVmRSS:\t  2048 kB\n"),
            Some(2 * 1024 * 1024)
        );
        assert_eq!(
            parse_boot_time("cpu 1 2\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
        assert_eq!(
            parse_page_faults("pgfault 10\npgmajfault 2\n"),
            (Some(10), Some(2))
        );
    }

    #[test]
    fn cpu_rate_is_the_slope_between_readings() {
        assert_eq!(
            nano_cores((0, 0), (1_000_000_000, 500_000_000)),
            Some(500_000_000)
        );
        assert_eq!(nano_cores((5, 10), (5, 20)), None);
        assert_eq!(nano_cores((0, 20), (10, 10)), None);
    }

    #[test]
    fn directory_usage_counts_files_and_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        std::fs::write(dir.path().join("sub/f"), vec![1u8; 10_000]).expect("write");
        let (bytes, inodes) = dir_usage(dir.path());
        assert_eq!(inodes, 3);
        assert!(bytes >= 10_000, "{bytes}");
        assert_eq!(dir_usage(&dir.path().join("missing")), (0, 0));
    }
}
