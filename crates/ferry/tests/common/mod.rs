//! The harness of the black-box tests: a real `ferry server` on 127.0.0.1:0 with a temporary
//! data dir, stopped by pid when dropped.

#![allow(dead_code)]

pub mod https;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running `ferry server`, stopped (by pid) when dropped — also when a test fails.
pub struct Ferry {
    pub child: Option<Child>,
    pub kubeconfig: PathBuf,
    pub url: String,
    _tmp: Option<tempfile::TempDir>,
}

impl Ferry {
    pub fn start() -> Ferry {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut ferry = Ferry::start_in(tmp.path(), &[]);
        ferry._tmp = Some(tmp);
        ferry
    }

    pub fn start_in(dir: &Path, extra: &[&str]) -> Ferry {
        Ferry::start_at(dir, "127.0.0.1:0", extra)
    }

    /// Starts on `listen` (to come back on the same address after a restart), without a local
    /// agent.
    pub fn start_at(dir: &Path, listen: &str, extra: &[&str]) -> Ferry {
        let mut flags = vec!["--disable-agent"];
        flags.extend_from_slice(extra);
        Ferry::start_server(dir, listen, &flags)
    }

    /// Starts with the local agent (root, containerd): `extra` are server flags.
    pub fn start_with_agent(dir: &Path, extra: &[&str]) -> Ferry {
        Ferry::start_server(dir, "127.0.0.1:0", extra)
    }

    /// Starts on `listen` with the local agent.
    pub fn start_with_agent_at(dir: &Path, listen: &str, extra: &[&str]) -> Ferry {
        Ferry::start_server(dir, listen, extra)
    }

    fn start_server(dir: &Path, listen: &str, extra: &[&str]) -> Ferry {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args([
                "server",
                "--cluster-dns-port=0",
                "--https-listen",
                listen,
                "--data-dir",
            ])
            .arg(dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ferry server");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let (mut url, mut kubeconfig) = (String::new(), PathBuf::new());
        for line in lines.by_ref() {
            let line = line.expect("read stdout");
            if let Some(rest) = line.strip_prefix("ferry: API server listening on ") {
                url = rest.split_whitespace().next().unwrap_or("").to_string();
            }
            if let Some(path) = line.strip_prefix("export KUBECONFIG=") {
                kubeconfig = PathBuf::from(path);
                break;
            }
        }
        assert!(
            !url.is_empty() && kubeconfig.exists(),
            "ferry server did not start"
        );
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ferry {
            child: Some(child),
            kubeconfig,
            url,
            _tmp: None,
        }
    }

    /// A kube-rs client of the server, from its kubeconfig.
    pub async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .expect("client config");
        kube::Client::try_from(config).expect("client")
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .output()
            .expect("run kubectl")
    }

    /// kubectl authenticating with the bearer `token` only (no client certificate).
    pub fn kubectl_with_token(&self, token: &str, args: &[&str]) -> Output {
        let ca = self
            .kubeconfig
            .parent()
            .expect("data dir")
            .join("tls/ca.crt");
        Command::new("kubectl")
            .args([
                "--kubeconfig=/dev/null",
                "--server",
                &self.url,
                "--token",
                token,
            ])
            .arg(format!("--certificate-authority={}", ca.display()))
            .args(args)
            .output()
            .expect("run kubectl")
    }

    /// kubectl that must succeed; returns stdout.
    /// `ferry trace ARGS` against this server: its output, which must be a success.
    pub fn trace(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .arg("trace")
            .args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .output()
            .expect("run ferry trace");
        assert!(
            out.status.success(),
            "ferry trace {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// kubectl that must fail; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should fail: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `kubectl create -f -` of `yaml`, which must fail: its standard error.
    pub fn create_err(&self, yaml: &str) -> String {
        let out = self.with_stdin(&["create", "-f", "-", VALIDATE], yaml);
        assert!(!out.status.success(), "creating should fail:\n{yaml}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// kubectl with `yaml` on its standard input.
    pub fn with_stdin(&self, args: &[&str], yaml: &str) -> Output {
        let mut child = Command::new("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(yaml.as_bytes())
            .expect("write yaml");
        child.wait_with_output().expect("kubectl")
    }

    pub fn apply_yaml(&self, verb: &str, yaml: &str) -> String {
        let out = self.with_stdin(&[verb, "-f", "-", VALIDATE], yaml);
        assert!(
            out.status.success(),
            "kubectl {verb} -f failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// SIGKILL: no chance to flush anything that was not already durable.
    pub fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Ferry {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// kubectl's default: server-side field validation, found through the OpenAPI documents.
pub const VALIDATE: &str = "--validate=strict";

/// A running `ferry sim`, stopped by pid when dropped.
pub struct Sim {
    child: Child,
}

impl Sim {
    /// Starts `nodes` simulated nodes against `ferry`, with extra flags.
    pub fn start(ferry: &Ferry, nodes: usize, extra: &[&str]) -> Sim {
        let child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["sim", "--kubeconfig"])
            .arg(&ferry.kubeconfig)
            .args([
                "--nodes",
                &nodes.to_string(),
                "--pod-start-delay",
                "200ms",
                "--lease-renew-interval",
                "1s",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ferry sim");
        Sim { child }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server (with `server_flags`) on a temporary data dir and `nodes` simulated nodes, once
/// they are Ready.
pub fn with_sim_nodes(nodes: usize, server_flags: &[&str]) -> (Ferry, Sim, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ferry = Ferry::start_in(dir.path(), server_flags);
    let sim = Sim::start(&ferry, nodes, &[]);
    assert!(
        eventually(Duration::from_secs(30), || ferry
            .ok(&["get", "nodes", "--no-headers"])
            .lines()
            .filter(|l| l.contains(" Ready "))
            .count()
            == nodes),
        "sim nodes did not become Ready: {}",
        ferry.ok(&["get", "nodes"])
    );
    (ferry, sim, dir)
}

/// Polls `check` until it returns true or `timeout` passes; returns the last result.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs the pytest suite in `tests/<dir>` against `ferry` with the official Python client, from
/// scripts/test.sh's venv (target/python) or `FERRY_PYTHON`.
pub fn python_suite(ferry: &Ferry, dir: &str) {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var("FERRY_PYTHON").unwrap_or_else(|_| {
        manifest
            .join("../../target/python/bin/python")
            .to_string_lossy()
            .into_owned()
    });
    let status = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(manifest.join("tests").join(dir))
        .env("KUBECONFIG", &ferry.kubeconfig)
        .status()
        .unwrap_or_else(|e| panic!("run {python} (scripts/test.sh makes the venv): {e}"));
    assert!(
        status.success(),
        "the Python client's suite in tests/{dir} failed"
    );
}
