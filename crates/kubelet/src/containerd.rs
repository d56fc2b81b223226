//! Supervising the node's own containerd: config generation (pure, [`render_config`]), start as a
//! child process, readiness by CRI `Version`, stop by pid.
//!
//! Everything containerd keeps is under one data dir ([`ContainerdConfig::data_dir`]): root,
//! state, sockets, runc state, the CNI conf dir, registry host configs and the log. A few host
//! paths are used regardless of the config (shim sockets in `/run/containerd/s`, sandbox netns in
//! `/run/netns/cni-*`, libcni's cache in `/var/lib/cni/results`); see docs/RUNTIME.md. Shims
//! outlive containerd by design: stop the containers first, then containerd, then reap
//! [`stray_shims`].

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use crate::runtime::{CriRuntime, Runtime, RuntimeError};

/// The local test registry, reached over plain HTTP.
pub const TEST_REGISTRY: &str = "127.0.0.1:5000";

/// The pause image the project builds and pushes to the test registry.
pub const DEFAULT_SANDBOX_IMAGE: &str = "127.0.0.1:5000/pause:3.10";

/// Errors from supervising containerd.
#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    /// Creating a directory or writing a config file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The `containerd` binary could not be started.
    #[error("starting {binary}: {source}")]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// containerd exited before its CRI service answered.
    #[error("containerd exited with {status} before it was ready; log tail:\n{log_tail}")]
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// The last lines of its log.
        log_tail: String,
    },
    /// containerd did not answer CRI `Version` in time.
    #[error("containerd's CRI service did not answer within {timeout:?} (last error: {last_error}); log tail:\n{log_tail}")]
    NotReady {
        /// How long we waited.
        timeout: Duration,
        /// The last error from the `Version` call.
        last_error: RuntimeError,
        /// The last lines of its log.
        log_tail: String,
    },
    /// Sending a signal or waiting for the process failed.
    #[error("stopping containerd (pid {pid}): {source}")]
    Stop {
        /// The pid.
        pid: u32,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// What to run containerd with. All paths derive from `data_dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerdConfig {
    /// The directory that holds everything containerd writes (created if missing). Keep it short:
    /// the gRPC socket lives in it and unix socket paths are limited to 107 bytes.
    pub data_dir: PathBuf,
    /// The `containerd` binary.
    pub containerd_binary: PathBuf,
    /// The `runc` binary the runc v2 shim runs.
    pub runc_binary: PathBuf,
    /// The CRI plugin's sandbox (pause) image.
    pub sandbox_image: String,
    /// Registries (`host:port`) to reach over plain HTTP, each given a `hosts.toml`.
    pub plain_http_registries: Vec<String>,
    /// Mirrors, TLS and credentials from a `registries.yaml` (they win over
    /// `plain_http_registries` for the same host).
    pub registries: crate::registries::Registries,
    /// Where the CNI plugin binaries are.
    pub cni_bin_dir: PathBuf,
    /// The snapshotter for container filesystems.
    pub snapshotter: String,
    /// containerd's log level (`info`, `debug`, ...).
    pub log_level: String,
}

impl ContainerdConfig {
    /// Defaults for this machine (Debian's binaries, overlayfs, the local test registry and pause
    /// image) under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            containerd_binary: PathBuf::from("/usr/bin/containerd"),
            runc_binary: PathBuf::from("/usr/sbin/runc"),
            sandbox_image: DEFAULT_SANDBOX_IMAGE.to_string(),
            plain_http_registries: vec![TEST_REGISTRY.to_string()],
            registries: Default::default(),
            cni_bin_dir: PathBuf::from(crate::cni::DEFAULT_CNI_BIN_DIR),
            snapshotter: "overlayfs".to_string(),
            log_level: "info".to_string(),
        }
    }

    /// The CRI (and containerd) gRPC socket.
    pub fn socket(&self) -> PathBuf {
        self.data_dir.join("containerd.sock")
    }

    /// The generated `config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.data_dir.join("config.toml")
    }

    /// containerd's persistent root (content store, snapshots, metadata).
    pub fn root_dir(&self) -> PathBuf {
        self.data_dir.join("root")
    }

    /// containerd's state dir (task bundles, sandbox shm).
    pub fn state_dir(&self) -> PathBuf {
        self.data_dir.join("state")
    }

    /// runc's state (`--root`), instead of `/run/containerd/runc`.
    pub fn runc_root(&self) -> PathBuf {
        self.data_dir.join("runc")
    }

    /// The CNI conf dir the CRI plugin reads; write the conflist here ([`crate::cni`]).
    pub fn cni_conf_dir(&self) -> PathBuf {
        self.data_dir.join("cni").join("net.d")
    }

    /// The registry `config_path` (one `host:port/hosts.toml` per registry).
    pub fn registry_config_dir(&self) -> PathBuf {
        self.data_dir.join("certs.d")
    }

    /// containerd's stdout and stderr.
    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join("containerd.log")
    }
}

/// A TOML basic string. JSON's escaping (`\"`, `\\`, `\n`, `\uXXXX`) is valid TOML.
/// `s` as a TOML basic string.
pub(crate) fn toml_str(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

fn toml_path(p: &Path) -> String {
    toml_str(&p.to_string_lossy())
}

/// containerd's `config.toml` (version 2, as containerd 1.6 reads it) for `config`.
pub fn render_config(config: &ContainerdConfig) -> String {
    let socket = config.socket();
    let ttrpc = PathBuf::from(format!("{}.ttrpc", socket.display()));
    let cri = r#"plugins."io.containerd.grpc.v1.cri""#;
    format!(
        r#"# Generated by ferry; edits are overwritten.
version = 2
root = {root}
state = {state}
plugin_dir = ""
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = {socket}
[ttrpc]
  address = {ttrpc}
[debug]
  address = ""
  level = {log_level}
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = {opt}
[{cri}]
  sandbox_image = {sandbox_image}
  # The streaming server (exec/attach/port-forward) on loopback only.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # Clamp oom_score_adj to containerd's own instead of -998: root here may lack
  # CAP_SYS_RESOURCE, and runc then fails every sandbox (docs/RUNTIME.md).
  restrict_oom_score_adj = true
  [{cri}.containerd]
    snapshotter = {snapshotter}
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        BinaryName = {runc}
        Root = {runc_root}
        SystemdCgroup = false
  [{cri}.cni]
    bin_dir = {cni_bin}
    conf_dir = {cni_conf}
    max_conf_num = 1
  [{cri}.registry]
    # hosts.toml per registry; replaces the deprecated registry.mirrors table.
    config_path = {registry}
{auths}
"#,
        root = toml_path(&config.root_dir()),
        state = toml_path(&config.state_dir()),
        socket = toml_path(&socket),
        ttrpc = toml_path(&ttrpc),
        log_level = toml_str(&config.log_level),
        opt = toml_path(&config.data_dir.join("opt")),
        sandbox_image = toml_str(&config.sandbox_image),
        snapshotter = toml_str(&config.snapshotter),
        runc = toml_path(&config.runc_binary),
        runc_root = toml_path(&config.runc_root()),
        cni_bin = toml_path(&config.cni_bin_dir),
        cni_conf = toml_path(&config.cni_conf_dir()),
        registry = toml_path(&config.registry_config_dir()),
        auths = config.registries.auth_toml(cri),
    )
}

/// The `hosts.toml` that makes `registry` (`host:port`) a plain-HTTP pull/resolve endpoint.
pub fn render_hosts_toml(registry: &str) -> String {
    let url = toml_str(&format!("http://{registry}"));
    format!("server = {url}\n[host.{url}]\n  capabilities = [\"pull\", \"resolve\"]\n")
}

/// Creates the data dir layout and writes `config.toml` and the registries' `hosts.toml`.
pub fn write_config(config: &ContainerdConfig) -> Result<(), ContainerdError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ContainerdError::Io { path, source }
    };
    // The registry hosts are made anew from the settings: a mirror dropped from them goes.
    let hosts_dir = config.registry_config_dir();
    if hosts_dir.exists() {
        std::fs::remove_dir_all(&hosts_dir).map_err(io(&hosts_dir))?;
    }
    for dir in [
        config.data_dir.clone(),
        config.cni_conf_dir(),
        config.registry_config_dir(),
    ] {
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    }
    let path = config.config_path();
    std::fs::write(&path, render_config(config)).map_err(io(&path))?;
    let mut hosts: std::collections::BTreeMap<String, String> = config
        .plain_http_registries
        .iter()
        .map(|registry| (registry.clone(), render_hosts_toml(registry)))
        .collect();
    hosts.extend(config.registries.hosts_files());
    for (registry, text) in hosts {
        let dir = hosts_dir.join(&registry);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = dir.join("hosts.toml");
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    Ok(())
}

/// A containerd started by us. Dropping it kills the process (SIGKILL); call
/// [`Containerd::stop`] for a graceful stop.
#[derive(Debug)]
pub struct Containerd {
    config: ContainerdConfig,
    child: tokio::process::Child,
    pid: u32,
    runtime: CriRuntime,
}

impl Containerd {
    /// Writes the config, starts `containerd --config …` with its output in
    /// [`ContainerdConfig::log_path`], and waits up to `ready_timeout` for CRI `Version` to
    /// answer on the socket.
    pub async fn start(
        config: ContainerdConfig,
        ready_timeout: Duration,
    ) -> Result<Self, ContainerdError> {
        write_config(&config)?;
        let log_path = config.log_path();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ContainerdError::Io { path, source }
        };
        let log = std::fs::File::create(&log_path).map_err(io(&log_path))?;
        let log_err = log.try_clone().map_err(io(&log_path))?;
        let mut child = tokio::process::Command::new(&config.containerd_binary)
            .arg("--config")
            .arg(config.config_path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            // The safety net if we are dropped without stop(): never leave it running.
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ContainerdError::Spawn {
                binary: config.containerd_binary.clone(),
                source,
            })?;
        let pid = child.id().unwrap_or_default();
        tracing::info!(pid, socket = %config.socket().display(), "started containerd");

        let deadline = tokio::time::Instant::now() + ready_timeout;
        let socket = config.socket();
        let mut last_error = RuntimeError::Unavailable("not tried yet".to_string());
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(ContainerdError::Exited {
                    status,
                    log_tail: log_tail(&log_path),
                });
            }
            if socket.exists() {
                match CriRuntime::connect(&socket).await {
                    Ok(runtime) => match runtime.version().await {
                        Ok(version) => {
                            tracing::info!(pid, runtime = %version.runtime_name, version = %version.runtime_version,
                                api = %version.runtime_api_version, "containerd CRI is ready");
                            return Ok(Self {
                                config,
                                child,
                                pid,
                                runtime,
                            });
                        }
                        Err(e) => last_error = e,
                    },
                    Err(e) => last_error = e,
                }
            }
            if tokio::time::Instant::now() >= deadline {
                // kill_on_drop ends the child when `child` goes out of scope here.
                return Err(ContainerdError::NotReady {
                    timeout: ready_timeout,
                    last_error,
                    log_tail: log_tail(&log_path),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// A CRI client connected to this containerd.
    pub fn runtime(&self) -> &CriRuntime {
        &self.runtime
    }

    /// The config it runs with.
    pub fn config(&self) -> &ContainerdConfig {
        &self.config
    }

    /// SIGTERM, then SIGKILL if it has not exited after `timeout`. Returns its exit status.
    /// Shims keep running: see [`stray_shims`].
    pub async fn stop(mut self, timeout: Duration) -> Result<ExitStatus, ContainerdError> {
        let pid = self.pid;
        let stop_err = |source| ContainerdError::Stop { pid, source };
        if let Some(status) = self.child.try_wait().map_err(stop_err)? {
            return Ok(status);
        }
        signal(pid, rustix::process::Signal::TERM).map_err(stop_err)?;
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => status.map_err(stop_err),
            Err(_) => {
                tracing::warn!(pid, ?timeout, "containerd ignored SIGTERM; sending SIGKILL");
                self.child.kill().await.map_err(stop_err)?;
                self.child.wait().await.map_err(stop_err)
            }
        }
    }
}

/// Sends `signal` to `pid`.
pub fn signal(pid: u32, signal: rustix::process::Signal) -> std::io::Result<()> {
    let raw =
        i32::try_from(pid).map_err(|_| std::io::Error::other(format!("pid {pid} out of range")))?;
    let pid = rustix::process::Pid::from_raw(raw).ok_or_else(|| std::io::Error::other("pid 0"))?;
    rustix::process::kill_process(pid, signal).map_err(std::io::Error::from)
}

/// Pids of `containerd-shim-runc-v2` processes started for the containerd on `socket` (their
/// `-address` argument), found in /proc.
pub fn stray_shims(socket: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let socket = socket.as_os_str().as_encoded_bytes();
    let mut pids: Vec<u32> = entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            is_shim_for(&args, socket).then_some(pid)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// Whether a command line (NUL-split) is a runc v2 shim for `socket`.
fn is_shim_for(args: &[&[u8]], socket: &[u8]) -> bool {
    let is_shim = args
        .first()
        .is_some_and(|a| a.ends_with(b"containerd-shim-runc-v2"));
    is_shim
        && args
            .windows(2)
            .any(|w| w[0] == b"-address" && w[1] == socket)
}

/// SIGKILLs every [`stray_shims`] of `socket`; returns their pids.
pub fn kill_stray_shims(socket: &Path) -> Vec<u32> {
    let pids = stray_shims(socket);
    for pid in &pids {
        if let Err(e) = signal(*pid, rustix::process::Signal::KILL) {
            tracing::warn!(pid, error = %e, "could not kill containerd shim");
        }
    }
    pids
}

/// The last 20 lines of a log file ("" if unreadable).
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_puts_everything_under_the_data_dir() {
        let config = ContainerdConfig::new("/var/lib/ferry/containerd");
        let text = render_config(&config);
        let expected = r#"root = "/var/lib/ferry/containerd/root"
state = "/var/lib/ferry/containerd/state""#;
        assert!(text.contains(expected), "{text}");
        for line in [
            r#"address = "/var/lib/ferry/containerd/containerd.sock""#,
            r#"address = "/var/lib/ferry/containerd/containerd.sock.ttrpc""#,
            r#"path = "/var/lib/ferry/containerd/opt""#,
            r#"sandbox_image = "127.0.0.1:5000/pause:3.10""#,
            "restrict_oom_score_adj = true",
            r#"snapshotter = "overlayfs""#,
            r#"BinaryName = "/usr/sbin/runc""#,
            r#"Root = "/var/lib/ferry/containerd/runc""#,
            "SystemdCgroup = false",
            r#"bin_dir = "/usr/lib/cni""#,
            r#"conf_dir = "/var/lib/ferry/containerd/cni/net.d""#,
            r#"config_path = "/var/lib/ferry/containerd/certs.d""#,
            r#"stream_server_address = "127.0.0.1""#,
        ] {
            assert!(
                text.lines().any(|l| l.trim() == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(text
            .contains(r#"[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]"#));
        assert!(
            !text
                .lines()
                .any(|l| l.trim_start().starts_with('[') && l.contains("mirrors")),
            "config_path may not be combined with registry.mirrors"
        );
    }

    #[test]
    fn strings_are_escaped() {
        let mut config = ContainerdConfig::new("/tmp/a \"quoted\" dir");
        config.sandbox_image = "x\\y".to_string();
        let text = render_config(&config);
        assert!(
            text.contains(r#"root = "/tmp/a \"quoted\" dir/root""#),
            "{text}"
        );
        assert!(text.contains(r#"sandbox_image = "x\\y""#), "{text}");
    }

    #[test]
    fn hosts_toml_is_plain_http() {
        assert_eq!(
            render_hosts_toml("127.0.0.1:5000"),
            "server = \"http://127.0.0.1:5000\"\n[host.\"http://127.0.0.1:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        );
    }

    #[test]
    fn write_config_lays_out_the_data_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = ContainerdConfig::new(dir.path().join("c"));
        write_config(&config).expect("write");
        assert_eq!(
            std::fs::read_to_string(config.config_path()).expect("config"),
            render_config(&config)
        );
        let hosts = config
            .registry_config_dir()
            .join("127.0.0.1:5000/hosts.toml");
        assert_eq!(
            std::fs::read_to_string(hosts).expect("hosts"),
            render_hosts_toml("127.0.0.1:5000")
        );
        assert!(config.cni_conf_dir().is_dir());
    }

    #[test]
    fn shims_are_matched_by_their_address_argument() {
        let ours: Vec<&[u8]> = vec![
            b"/usr/bin/containerd-shim-runc-v2",
            b"-namespace",
            b"k8s.io",
            b"-id",
            b"abc",
            b"-address",
            b"/tmp/x/containerd.sock",
        ];
        assert!(is_shim_for(&ours, b"/tmp/x/containerd.sock"));
        assert!(!is_shim_for(&ours, b"/run/containerd/containerd.sock"));
        let not_a_shim: Vec<&[u8]> = vec![
            b"/usr/bin/containerd",
            b"-address",
            b"/tmp/x/containerd.sock",
        ];
        assert!(!is_shim_for(&not_a_shim, b"/tmp/x/containerd.sock"));
    }

    #[tokio::test]
    async fn a_missing_binary_is_a_spawn_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = ContainerdConfig::new(dir.path());
        config.containerd_binary = dir.path().join("no-such-containerd");
        let err = Containerd::start(config, Duration::from_secs(1))
            .await
            .expect_err("no binary");
        assert!(matches!(err, ContainerdError::Spawn { .. }), "{err}");
    }
}
