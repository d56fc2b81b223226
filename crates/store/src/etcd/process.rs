//! A real etcd for tests and benchmarks: Debian's `etcd-server` (etcd 3.4) started on free
//! loopback ports with a fresh temporary data directory, and killed (SIGKILL) by its pid when
//! dropped — also when a test panics — so that no etcd is left running.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::StoreError;
use crate::kv::Result;

/// Where etcd is installed by default (Debian's `etcd-server` package).
const DEFAULT_BINARY: &str = "/usr/bin/etcd";

/// How long etcd gets to serve its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running etcd with its own data directory, killed when dropped.
pub struct EtcdProcess {
    child: Child,
    endpoint: String,
    // Declared after `child`, and `Drop` kills the child first: the directory goes last.
    dir: tempfile::TempDir,
}

impl EtcdProcess {
    /// The etcd binary: `$FERRY_ETCD_BIN`, else `/usr/bin/etcd`.
    pub fn binary() -> PathBuf {
        match std::env::var_os("FERRY_ETCD_BIN") {
            Some(bin) if !bin.is_empty() => PathBuf::from(bin),
            _ => PathBuf::from(DEFAULT_BINARY),
        }
    }

    /// Whether the etcd binary exists (a bare name is looked up in `$PATH`), so that callers
    /// can say clearly that etcd is missing.
    pub fn available() -> bool {
        let binary = Self::binary();
        if binary.components().count() > 1 {
            return binary.is_file();
        }
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(&binary).is_file()))
    }

    /// Starts etcd on free loopback ports and waits (up to 10 s) until it serves requests.
    pub async fn start() -> Result<EtcdProcess> {
        // The ports are free when picked but released before etcd binds them: if another
        // process takes one in between, etcd exits and we try again with new ports.
        let mut last_error = None;
        for _ in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("ferry-etcd-")
                .tempdir()
                .map_err(|e| StoreError::io("creating etcd's data dir", e))?;
            let (client, peer) = free_ports()?;
            let mut process = Self::spawn(dir, client, peer)?;
            match process.wait_ready().await {
                Ok(()) => return Ok(process),
                Err(e) => last_error = Some(e), // `process` is dropped: killed, dir removed
            }
        }
        Err(last_error.unwrap_or_else(|| StoreError::Etcd("etcd did not start".into())))
    }

    fn spawn(dir: tempfile::TempDir, client: u16, peer: u16) -> Result<EtcdProcess> {
        let log = std::fs::File::create(dir.path().join("etcd.log"))
            .map_err(|e| StoreError::io("creating etcd's log file", e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| StoreError::io("creating etcd's log file", e))?;
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut command = Command::new(Self::binary());
        command
            .arg("--name=ferry-test")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=ferry-test={peer_url}"))
            .arg("--logger=zap")
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        if let Some(arch) = unsupported_arch() {
            // etcd 3.4 refuses to start on architectures other than amd64 and ppc64le without it.
            command.env("ETCD_UNSUPPORTED_ARCH", arch);
        }
        let child = command
            .spawn()
            .map_err(|e| StoreError::io(format!("starting {}", Self::binary().display()), e))?;
        Ok(EtcdProcess {
            child,
            endpoint: client_url,
            dir,
        })
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_millis(500))
            .with_timeout(Duration::from_secs(1));
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(StoreError::Etcd(format!(
                    "etcd exited at start ({status}); its log:\n{}",
                    self.log_tail()
                )));
            }
            let client =
                etcd_client::Client::connect([self.endpoint.as_str()], Some(options.clone()));
            if let Ok(mut client) = client.await {
                if client.get("ferry-ready-check", None).await.is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(StoreError::Etcd(format!(
                    "etcd at {} did not answer within {} s; its log:\n{}",
                    self.endpoint,
                    READY_TIMEOUT.as_secs(),
                    self.log_tail()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The client URL, `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// etcd's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The temporary directory holding etcd's data (`data/`) and log (`etcd.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last lines of etcd's log, for error messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        // SIGKILL, then reap it: quick, and nothing survives the test.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two distinct free loopback ports (client, peer).
fn free_ports() -> Result<(u16, u16)> {
    let bind =
        || TcpListener::bind("127.0.0.1:0").map_err(|e| StoreError::io("picking a free port", e));
    let port = |l: &TcpListener| {
        l.local_addr()
            .map(|a| a.port())
            .map_err(|e| StoreError::io("picking a free port", e))
    };
    // Both listeners stay open until both ports are known, so the two differ.
    let (client, peer) = (bind()?, bind()?);
    Ok((port(&client)?, port(&peer)?))
}

/// The value etcd 3.4 wants in `ETCD_UNSUPPORTED_ARCH` on this machine (Go's architecture
/// name), or `None` where etcd 3.4 is supported as is.
fn unsupported_arch() -> Option<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => None,
        "powerpc64" if cfg!(target_endian = "little") => None,
        "aarch64" => Some("arm64"),
        "x86" => Some("386"),
        "powerpc64" => Some("ppc64"),
        other => Some(other),
    }
}
