//! A real etcd for tests and benchmarks: Debian's `etcd-server` (etcd 3.4) started on free
//! loopback ports with a temporary data directory, killed by its pid when dropped — also when
//! a test panics — so nothing is left running.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::StoreError;
use crate::kv::Result;

/// A running etcd.
pub struct EtcdProcess {
    child: Child,
    endpoint: String,
    dir: tempfile::TempDir,
}

fn binary() -> PathBuf {
    std::env::var_os("FERRY_ETCD_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/etcd"))
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| StoreError::io("picking a free port", e))?;
    let port = listener.local_addr().map_err(|e| StoreError::io("picking a free port", e))?.port();
    Ok(port)
}

impl EtcdProcess {
    /// Whether the etcd binary is installed.
    pub fn available() -> bool {
        binary().exists()
    }

    /// Starts etcd and waits until it serves requests (at most 20 s).
    pub async fn start() -> Result<EtcdProcess> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::io("creating etcd's data dir", e))?;
        // Ports are picked, released and then bound by etcd; retry if another process wins.
        let mut last_error = None;
        for _ in 0..3 {
            let (client, peer) = (free_port()?, free_port()?);
            let mut process = Self::spawn(dir.path(), client, peer)?;
            match process.wait_ready().await {
                Ok(()) => {
                    process.dir = dir;
                    return Ok(process);
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| StoreError::Etcd("etcd did not start".into())))
    }

    fn spawn(dir: &Path, client: u16, peer: u16) -> Result<EtcdProcess> {
        let data = dir.join(format!("data-{client}"));
        let log = std::fs::File::create(dir.join(format!("etcd-{client}.log")))
            .map_err(|e| StoreError::io("creating etcd's log", e))?;
        let log_err = log.try_clone().map_err(|e| StoreError::io("creating etcd's log", e))?;
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new(binary())
            .arg("--name=ferry-test")
            .arg(format!("--data-dir={}", data.display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=ferry-test={peer_url}"))
            .arg("--logger=zap")
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| StoreError::io(format!("starting {}", binary().display()), e))?;
        // A placeholder directory until `start` moves the real one in.
        let placeholder = tempfile::tempdir().map_err(|e| StoreError::io("creating a temporary dir", e))?;
        Ok(EtcdProcess { child, endpoint: client_url, dir: placeholder })
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(StoreError::Etcd(format!("etcd exited at start: {status}")));
            }
            let options = etcd_client::ConnectOptions::new().with_connect_timeout(Duration::from_millis(500)).with_timeout(Duration::from_secs(2));
            if let Ok(mut client) = etcd_client::Client::connect([self.endpoint.as_str()], Some(options)).await {
                if client.get("/", None).await.is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(StoreError::Etcd(format!("etcd at {} did not become ready in 20 s", self.endpoint)));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The client URL, `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// etcd's data and log directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
