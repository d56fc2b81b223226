//! A pod's network and processes as the host sees them, for runtimes whose sandbox stats leave
//! them out (containerd 1.6 answers no `ListPodSandboxStats`): the interfaces of the pod's
//! network namespace (`/proc/<pid>/net/dev` of its sandbox's pause process, `eth0` the default
//! one as upstream's), and the processes of the pod's containers (the `cgroup.procs` of every
//! cgroup below the pod's, the pause's own left out, as upstream counts its containers').

use std::path::Path;

use super::host;
use super::summary::{InterfaceStats, NetworkStats};
use crate::machine::{cgroup_dir, parse_proc_cgroup, under_path as under, CgroupMount};

/// The interface upstream reports as a pod's own (`defaultNetworkInterfaceName`).
const DEFAULT_INTERFACE: &str = "eth0";

/// What the host shows of one pod.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostView {
    /// Its network namespace's interfaces.
    pub network: Option<NetworkStats>,
    /// Its containers' processes.
    pub process_count: Option<u64>,
}

/// The pod whose sandbox's pause process is `pid`, as seen under `root` (`/`, or a fake tree),
/// with the cgroup `mounts` of the host; `time` stamps the network figures.
pub fn read(root: &Path, pid: u32, mounts: &[CgroupMount], time: &str) -> HostView {
    let proc_dir = under(root, Path::new(&format!("/proc/{pid}")));
    let network = std::fs::read_to_string(proc_dir.join("net/dev"))
        .ok()
        .map(|dev| network(&host::parse_net_dev(&dev), time));
    let process_count = std::fs::read_to_string(proc_dir.join("cgroup"))
        .ok()
        .and_then(|cgroup| {
            let pause = cgroup_dir(mounts, &parse_proc_cgroup(&cgroup), "pids")?.dir;
            let pause = under(root, &pause);
            let pod = pause.parent()?;
            Some(processes_below(pod, &pause))
        });
    HostView {
        network,
        process_count,
    }
}

/// The interfaces as a pod's network figures.
fn network(interfaces: &[InterfaceStats], time: &str) -> NetworkStats {
    let default = interfaces
        .iter()
        .find(|i| i.name == DEFAULT_INTERFACE)
        .cloned()
        .unwrap_or_default();
    NetworkStats {
        time: time.to_string(),
        default,
        interfaces: interfaces.to_vec(),
    }
}

/// The processes in the cgroups below `pod`, `skipped` (the pause's) and its own left out.
fn processes_below(pod: &Path, skipped: &Path) -> u64 {
    let mut count = 0;
    for entry in std::fs::read_dir(pod).into_iter().flatten().flatten() {
        let path = entry.path();
        if !path.is_dir() || path == skipped {
            continue;
        }
        count += std::fs::read_to_string(path.join("cgroup.procs"))
            .map(|procs| procs.lines().filter(|l| !l.trim().is_empty()).count() as u64)
            .unwrap_or(0);
        count += processes_below(&path, skipped);
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::parse_mountinfo_cgroups;

    const MOUNTINFO: &str = "30 25 0:26 / /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids\n";

    fn write(root: &Path, path: &str, content: &str) {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
        std::fs::write(path, content).expect("write");
    }

    #[test]
    fn the_pods_interfaces_and_its_containers_processes() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path();
        write(
            root,
            "proc/42/net/dev",
            "Inter-|   Receive | Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs\n    lo: 10 1 0 0 0 0 0 0 10 1 0 0 0 0 0 0\n  eth0: 1500 10 1 0 0 0 0 0 700 5 2 0 0 0 0 0\n",
        );
        write(
            root,
            "proc/42/cgroup",
            "5:pids:/kubepods/besteffort/podu1/pause1\n1:name=systemd:/x\n",
        );
        let pod = "sys/fs/cgroup/pids/kubepods/besteffort/podu1";
        write(root, &format!("{pod}/pause1/cgroup.procs"), "42\n");
        write(root, &format!("{pod}/app/cgroup.procs"), "100\n101\n");
        write(root, &format!("{pod}/side/cgroup.procs"), "200\n");
        write(root, &format!("{pod}/cgroup.procs"), "");
        let mounts = parse_mountinfo_cgroups(MOUNTINFO);
        let view = read(root, 42, &mounts, "2026-12-07T10:00:00Z");
        let network = view.network.expect("network");
        assert_eq!(network.default.name, "eth0");
        assert_eq!(network.default.rx_bytes, Some(1500));
        assert_eq!(network.default.tx_errors, Some(2));
        assert_eq!(network.interfaces.len(), 1, "lo is left out");
        assert_eq!(view.process_count, Some(3));
        // A pid that is gone: nothing.
        assert_eq!(read(root, 7, &mounts, "t"), HostView::default());
    }
}
