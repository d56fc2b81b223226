//! `ferry agent --cleanup`: removes from this machine everything the agent made — containers,
//! containerd and its shims, mounts, the pods' network namespaces and veths, the bridge, the
//! guard's routes and nft table, what the CNI plugins left behind, the pods' cgroups, and the
//! agent's runtime state — so that a test (or a user) can leave the machine as it was.
//!
//! Run it with the agent stopped. Every step is best effort and says what it did; one failing
//! step does not stop the others.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::containerd::{self, ContainerdConfig};
use crate::netguard::{self, Guard};

/// What to clean.
#[derive(Clone, Debug)]
pub struct CleanupOptions {
    /// The agent's data dir.
    pub data_dir: PathBuf,
    /// The containerd config the agent ran with (its data dir is `data_dir/containerd`).
    pub containerd: ContainerdConfig,
    /// The pod bridge.
    pub bridge: String,
    /// The CNI network name (libcni's result cache files start with it).
    pub network_name: String,
    /// The pods' cgroup root (e.g. `/kubepods`).
    pub cgroup_root: String,
    /// The guard to remove.
    pub guard: Guard,
}

/// What was done, one line per action.
#[derive(Clone, Debug, Default)]
pub struct CleanupReport {
    /// Actions taken.
    pub actions: Vec<String>,
    /// Steps that failed.
    pub errors: Vec<String>,
}

/// Why a cleanup step failed; each becomes one line of [`CleanupReport::errors`].
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    /// A command ran and exited non-zero.
    #[error("{cmd} {}: {stderr}", args.join(" "))]
    Command {
        /// The program.
        cmd: String,
        /// Its arguments.
        args: Vec<String>,
        /// What it wrote to stderr, trimmed.
        stderr: String,
    },
    /// A command could not be started (not installed, not executable).
    #[error("{cmd}: {source}")]
    Spawn {
        /// The program.
        cmd: String,
        /// The OS's error.
        #[source]
        source: std::io::Error,
    },
    /// A directory of the agent's state could not be removed.
    #[error("removing {}: {source}", dir.display())]
    Remove {
        /// The directory.
        dir: PathBuf,
        /// The OS's error.
        #[source]
        source: std::io::Error,
    },
    /// A directory of the agent's state is left because something under it is still mounted
    /// (deleting through a mount would delete what it shows).
    #[error("not removing {}: still mounted: {}", dir.display(), mount.display())]
    StillMounted {
        /// The directory.
        dir: PathBuf,
        /// The first mount under it.
        mount: PathBuf,
    },
}

/// Runs `cmd` with `args`; its stdout if it exits zero.
fn run(cmd: &str, args: &[&str]) -> Result<String, CleanupError> {
    match Command::new(cmd).args(args).output() {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => Err(CleanupError::Command {
            cmd: cmd.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        }),
        Err(source) => Err(CleanupError::Spawn {
            cmd: cmd.to_string(),
            source,
        }),
    }
}

fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// Mount points under `dir`, deepest first (octal escapes of mountinfo decoded).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|m| {
            PathBuf::from(
                m.replace("\\040", " ")
                    .replace("\\011", "\t")
                    .replace("\\012", "\n")
                    .replace("\\134", "\\"),
            )
        })
        .filter(|m| m.starts_with(dir))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    mounts.dedup();
    mounts
}

/// Processes whose command line mentions `needle`, but not this process.
fn processes_with(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    list_dir(Path::new("/proc"))
        .into_iter()
        .filter_map(|p| p.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Waits up to `timeout` for process `pid` to be gone, or a zombie waiting for its parent.
pub fn wait_gone(pid: u32, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Removes a cgroup directory tree depth-first (cgroupfs only removes empty ones); whether
/// `dir` is gone.
pub fn remove_cgroup_tree(dir: &Path) -> bool {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup_tree(&entry.path());
        }
    }
    std::fs::remove_dir(dir).is_ok()
}

/// Whether `ip nat` holds nothing but what CNI's portmap made (its `CNI-*` chains and jumps
/// to them from the base chains): then the table is ours to delete.
pub fn nat_table_is_portmaps_only(listing: &str) -> bool {
    let mut saw_cni = false;
    for line in listing.lines().map(str::trim) {
        if line.is_empty()
            || line == "}"
            || line.starts_with("table ")
            || line.starts_with("type ")
            || line.starts_with("policy ")
            || line.starts_with('#')
        {
            continue;
        }
        if let Some(chain) = line.strip_prefix("chain ") {
            saw_cni |= chain.starts_with("CNI-");
            continue;
        }
        let jumps_to_cni = line.contains("jump CNI-") || line.contains("goto CNI-");
        let in_cni_chain_rule = line.contains("CNI-") || line.contains("comment \"dnat name");
        if !(jumps_to_cni || in_cni_chain_rule) {
            // A rule that is not portmap's: someone else uses the table.
            return false;
        }
    }
    saw_cni
}

/// Removes everything; see the module docs.
pub fn cleanup(options: &CleanupOptions) -> CleanupReport {
    let mut report = CleanupReport::default();
    let did = |report: &mut CleanupReport, r: Result<String, CleanupError>| match r {
        Ok(action) => report.actions.push(action),
        Err(e) => report.errors.push(e.to_string()),
    };
    let config = &options.containerd;

    // 1. Containers, by runc's state (their processes outlive a killed shim).
    let runc_root = config.runc_root().join("k8s.io");
    let runc_root_str = runc_root.to_string_lossy().into_owned();
    if runc_root.exists() {
        for id in run("runc", &["--root", &runc_root_str, "list", "-q"])
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.is_empty())
        {
            did(
                &mut report,
                run("runc", &["--root", &runc_root_str, "delete", "--force", id])
                    .map(|_| format!("deleted container {id}")),
            );
        }
    }

    // 2. containerd started with our config, then its shims.
    let config_path = config.config_path().to_string_lossy().into_owned();
    for pid in processes_with(&config_path) {
        let _ = containerd::signal(pid, rustix::process::Signal::KILL);
        wait_gone(pid, Duration::from_secs(5));
        report.actions.push(format!("killed containerd {pid}"));
    }
    for pid in containerd::kill_stray_shims(&config.socket()) {
        wait_gone(pid, Duration::from_secs(5));
        report.actions.push(format!("killed shim {pid}"));
    }
    // Shim sockets nobody listens on any more.
    let listening = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    let shim_dir = Path::new("/run/containerd/s");
    for name in list_dir(shim_dir) {
        let path = shim_dir.join(&name);
        if !listening.contains(&*path.to_string_lossy()) {
            let _ = std::fs::remove_file(&path);
            report
                .actions
                .push(format!("removed stale shim socket {}", path.display()));
        }
    }

    // 3. Pod network namespaces without processes, the bridge, the guard, CNI leftovers.
    for netns in list_dir(Path::new("/run/netns")) {
        if !netns.starts_with("cni-") {
            continue;
        }
        let pids = run("ip", &["netns", "pids", &netns]).unwrap_or_default();
        if pids.trim().is_empty() {
            did(
                &mut report,
                run("ip", &["netns", "delete", &netns]).map(|_| format!("deleted netns {netns}")),
            );
        }
    }
    if run("ip", &["link", "show", &options.bridge]).is_ok() {
        did(
            &mut report,
            run("ip", &["link", "delete", &options.bridge])
                .map(|_| format!("deleted bridge {}", options.bridge)),
        );
    }
    match netguard::remove(&options.guard) {
        Ok(()) => report.actions.push("removed the pod-network guard".into()),
        Err(e) => report.errors.push(e.to_string()),
    }
    if let Ok(listing) = run("nft", &["list", "table", "ip", "nat"]) {
        if nat_table_is_portmaps_only(&listing) {
            did(
                &mut report,
                run("nft", &["delete", "table", "ip", "nat"])
                    .map(|_| "deleted portmap's table ip nat".to_string()),
            );
        }
    }
    let results = Path::new("/var/lib/cni/results");
    for name in list_dir(results) {
        if name.starts_with(&format!("{}-", options.network_name))
            || name.starts_with("cni-loopback-")
        {
            let _ = std::fs::remove_file(results.join(&name));
        }
    }

    // 4. Mounts under the data dir (overlay rootfs, shm, tmpfs volumes), deepest first.
    for mount in mounts_under(&options.data_dir) {
        let m = mount.to_string_lossy().into_owned();
        did(
            &mut report,
            run("umount", &["-l", &m]).map(|_| format!("unmounted {m}")),
        );
    }

    // 5. The pods' cgroups, in every hierarchy.
    let root = options.cgroup_root.trim_start_matches('/');
    if !root.is_empty() {
        let mut hierarchies = vec![PathBuf::from("/sys/fs/cgroup")];
        for name in list_dir(Path::new("/sys/fs/cgroup")) {
            hierarchies.push(Path::new("/sys/fs/cgroup").join(name));
        }
        for h in hierarchies {
            let dir = h.join(root);
            if dir.is_dir() && remove_cgroup_tree(&dir) {
                report
                    .actions
                    .push(format!("removed cgroup {}", dir.display()));
            }
        }
    }

    // 6. Runtime state under the data dir.
    for sub in ["containerd", "pods", "pod-logs", "cni"] {
        let dir = options.data_dir.join(sub);
        if let Some(mount) = mounts_under(&dir).into_iter().next() {
            // Never delete through a mount that would not go.
            report
                .errors
                .push(CleanupError::StillMounted { dir, mount }.to_string());
            continue;
        }
        if dir.exists() {
            did(
                &mut report,
                std::fs::remove_dir_all(&dir)
                    .map(|()| format!("removed {}", dir.display()))
                    .map_err(|source| CleanupError::Remove {
                        dir: dir.clone(),
                        source,
                    }),
            );
        }
    }

    // 7. Host directories the runtime created, if now empty.
    for dir in [
        "/run/netns",
        "/run/containerd/s",
        "/run/containerd",
        "/var/lib/cni/results",
        "/var/lib/cni",
    ] {
        let path = Path::new(dir);
        if path.is_dir() && list_dir(path).is_empty() {
            let _ = run("umount", &[dir]);
            if std::fs::remove_dir(path).is_ok() {
                report.actions.push(format!("removed {dir}"));
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_steps_read_as_before() {
        assert_eq!(
            CleanupError::Command {
                cmd: "ip".into(),
                args: vec!["link".into(), "delete".into(), "cni0".into()],
                stderr: "Cannot find device \"cni0\"".into(),
            }
            .to_string(),
            "ip link delete cni0: Cannot find device \"cni0\""
        );
        let missing = run("/nonexistent/ferry-cleanup-test", &["x"]).expect_err("no such program");
        assert!(matches!(missing, CleanupError::Spawn { .. }), "{missing:?}");
        assert!(
            missing
                .to_string()
                .starts_with("/nonexistent/ferry-cleanup-test: No such file or directory"),
            "{missing}"
        );
        let failed = run("sh", &["-c", "echo nope >&2; exit 3"]).expect_err("exits 3");
        assert_eq!(failed.to_string(), "sh -c echo nope >&2; exit 3: nope");
        assert_eq!(run("sh", &["-c", "echo hi"]).expect("runs"), "hi\n");
    }

    #[test]
    fn portmap_only_nat_table() {
        let portmap = r#"table ip nat {
	chain CNI-HOSTPORT-DNAT {
	}
	chain PREROUTING {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local counter packets 0 bytes 0 jump CNI-HOSTPORT-DNAT
	}
	chain OUTPUT {
		type nat hook output priority -100; policy accept;
		fib daddr type local counter packets 0 bytes 0 jump CNI-HOSTPORT-DNAT
	}
}"#;
        assert!(nat_table_is_portmaps_only(portmap));
        let shared = r#"table ip nat {
	chain POSTROUTING {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "eth0" masquerade
	}
	chain CNI-HOSTPORT-DNAT {
	}
}"#;
        assert!(!nat_table_is_portmaps_only(shared));
        assert!(!nat_table_is_portmaps_only("table ip nat {\n}"));
    }
}
