//! Three `ferry server`s on a three-member etcd, started by scripts/ha-cluster.sh on loopback
//! (docs/HA.md): the server holding the controller-manager Lease is killed with SIGKILL during
//! a Deployment rollout and another server's controllers finish it; then an etcd member is
//! killed and writes go on; a writer creating ConfigMaps through every server meanwhile loses
//! none it was told were created. Run alone by scripts/test.sh (`--ignored`): its timings are
//! the Leases' and it uses 127.0.0.2-4.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::eventually;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/ha-cluster.sh");

/// The leader election's lease duration and retry period (ferry_client::leader's defaults,
/// upstream's): a successor takes over within their sum of the leader's last renewal.
const LEASE_DURATION: Duration = Duration::from_secs(15);
const RETRY_PERIOD: Duration = Duration::from_secs(2);

/// The cluster the script started under a temporary directory; stopped (every server and
/// etcd member, by their recorded pids) and removed when dropped, also when the test fails.
struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_ports();
        let cluster = Cluster { dir, port };
        let out = Command::new("bash")
            .arg(SCRIPT)
            .arg("start")
            .arg("--dir")
            .arg(cluster.dir.path())
            .args(["--api-port", &port.to_string()])
            .args(["--etcd-client-port", &(port + 1).to_string()])
            .args(["--etcd-peer-port", &(port + 2).to_string()])
            .args(["--ferry", env!("CARGO_BIN_EXE_ferry")])
            .output()
            .expect("run scripts/ha-cluster.sh");
        assert!(
            out.status.success(),
            "ha-cluster.sh start failed:\n{}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            cluster.logs()
        );
        cluster
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The tail of every log, for failure messages.
    fn logs(&self) -> String {
        let mut all = String::new();
        for name in [
            "server-1", "server-2", "server-3", "etcd-1", "etcd-2", "etcd-3",
        ] {
            let log =
                std::fs::read_to_string(self.path(&format!("{name}.log"))).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            all += &format!("--- {name}.log (last lines)\n");
            for line in tail.into_iter().rev() {
                all += line;
                all.push('\n');
            }
        }
        all
    }

    /// kubectl through the server of `context` (ferry-1..3).
    fn kubectl(&self, context: &str, args: &[&str]) -> Output {
        kubectl(&self.path("kubeconfig.yaml"), context, args)
    }

    fn ok(&self, context: &str, args: &[&str]) -> String {
        let out = self.kubectl(context, args);
        assert!(
            out.status.success(),
            "kubectl --context {context} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// SIGKILL to the process the script recorded as `name`.
    fn kill9(&self, name: &str) {
        let pid = std::fs::read_to_string(self.path(&format!("{name}.pid"))).expect("pid file");
        let status = Command::new("kill")
            .args(["-KILL", pid.trim()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -9 {name} ({})", pid.trim());
    }

    /// The server (1..3) whose components hold the Lease `kube-system/<lease>`, asked of
    /// `context`'s server.
    fn holder(&self, context: &str, lease: &str) -> Option<usize> {
        let out = self.kubectl(
            context,
            &[
                "-n",
                "kube-system",
                "get",
                "lease",
                lease,
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ],
        );
        let holder = String::from_utf8_lossy(&out.stdout).into_owned();
        // `<host>_ferry-server_<data-dir>`: the data dir names the server.
        (1..=3).find(|i| holder.ends_with(&format!("/server-{i}")))
    }

    /// The addresses in the `kubernetes` Endpoints.
    fn kubernetes_endpoints(&self, context: &str) -> String {
        let out = self.kubectl(
            context,
            &[
                "get",
                "endpoints",
                "kubernetes",
                "-o",
                "jsonpath={.subsets[*].addresses[*].ip}:{.subsets[*].ports[*].port}",
            ],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(SCRIPT)
            .arg("stop")
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn kubectl(kubeconfig: &Path, context: &str, args: &[&str]) -> Output {
    Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .args(["--context", context, "--request-timeout=10s"])
        .args(args)
        .output()
        .expect("run kubectl")
}

/// A port free on 127.0.0.2-4, with the next two (etcd's client and peer ports).
fn free_ports() -> u16 {
    for _ in 0..100 {
        let probe = std::net::TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
        let port = probe.local_addr().expect("address").port();
        drop(probe);
        if port > 65000 {
            continue;
        }
        let free = (2..=4).all(|host| {
            (port..port + 3)
                .all(|p| std::net::TcpListener::bind(format!("127.0.0.{host}:{p}")).is_ok())
        });
        if free {
            return port;
        }
    }
    panic!("no three free ports on 127.0.0.2-4");
}

/// `ferry sim` nodes joined through one server's own kubeconfig, killed when dropped.
struct Sim(Child);

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Creates ConfigMaps `w-<n>` through the three servers in turn until stopped, recording
/// those the API acknowledged (kubectl succeeded) with when.
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(String, Instant)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(kubeconfig: PathBuf) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, acked) = (stop.clone(), acked.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let name = format!("w-{n}");
                    let context = format!("ferry-{}", n % 3 + 1);
                    let out = kubectl(
                        &kubeconfig,
                        &context,
                        &["create", "configmap", &name, "--from-literal=n=1"],
                    );
                    if out.status.success() {
                        acked.lock().expect("lock").push((name, Instant::now()));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        Writer {
            stop,
            acked,
            thread: Some(thread),
        }
    }

    /// Stops writing; the acknowledged names and when.
    fn finish(&mut self) -> Vec<(String, Instant)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.acked.lock().expect("lock").clone()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.finish();
    }
}

#[test]
#[ignore = "three servers and three etcd members on 127.0.0.2-4, about 40 s: scripts/test.sh runs it alone"]
fn a_killed_server_and_etcd_member_lose_no_work_and_no_acknowledged_write() {
    let started = Instant::now();
    let cluster = Cluster::start();
    let kubeconfig = cluster.path("kubeconfig.yaml");
    let port = cluster.port;

    // Every server serves, and the `kubernetes` endpoints list all three.
    let all = format!("127.0.0.2 127.0.0.3 127.0.0.4:{port}");
    assert!(
        eventually(Duration::from_secs(15), || cluster
            .kubernetes_endpoints("ferry-3")
            == all),
        "kubernetes endpoints: {:?}, want {all:?}",
        cluster.kubernetes_endpoints("ferry-3")
    );

    // One controller manager works: the one of the server holding the Lease.
    let mut leader = None;
    assert!(eventually(Duration::from_secs(20), || {
        leader = cluster.holder("ferry-2", "kube-controller-manager");
        leader.is_some()
    }));
    let leader = leader.expect("leader");
    let survivor = if leader == 3 { 2 } else { 3 };
    let survivor_context = format!("ferry-{survivor}");

    // Simulated nodes and the writer go through servers that stay up.
    let sim = Sim(Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["sim", "--kubeconfig"])
        .arg(cluster.path(&format!("server-{survivor}/kubeconfig.yaml")))
        .args([
            "--nodes",
            "3",
            "--pod-start-delay",
            "1s",
            "--lease-renew-interval",
            "1s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ferry sim"));
    let mut writer = Writer::start(kubeconfig.clone());

    cluster.ok(
        &survivor_context,
        &[
            "create",
            "deployment",
            "web",
            "--image=web:1",
            "--replicas=6",
        ],
    );
    cluster.ok(
        &survivor_context,
        &["rollout", "status", "deployment/web", "--timeout=30s"],
    );

    // A rollout, and the leader killed while it runs.
    cluster.ok(
        &survivor_context,
        &["set", "image", "deployment/web", "web=web:2"],
    );
    std::thread::sleep(Duration::from_millis(500));
    cluster.kill9(&format!("server-{leader}"));
    let killed = Instant::now();
    let mut successor = None;
    let took_over = eventually(
        LEASE_DURATION + RETRY_PERIOD + Duration::from_secs(5),
        || {
            successor = cluster
                .holder(&survivor_context, "kube-controller-manager")
                .filter(|holder| *holder != leader);
            successor.is_some()
        },
    );
    let takeover = killed.elapsed();
    assert!(
        took_over,
        "no server took the controller-manager Lease over from server-{leader}\n{}",
        cluster.logs()
    );
    eprintln!(
        "controller manager: server-{leader} killed, server-{} took over in {:.1} s",
        successor.expect("successor"),
        takeover.as_secs_f64()
    );
    assert!(
        takeover <= LEASE_DURATION + RETRY_PERIOD + Duration::from_secs(1),
        "takeover took {takeover:?}"
    );
    cluster.ok(
        &survivor_context,
        &["rollout", "status", "deployment/web", "--timeout=30s"],
    );
    let images = cluster.ok(
        &survivor_context,
        &[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.containers[0].image}",
        ],
    );
    let images: Vec<&str> = images.split_whitespace().collect();
    assert_eq!(images, vec!["web:2"; 6], "the rollout's pods");

    // The killed server leaves the `kubernetes` endpoints when its store lease expires.
    let live: Vec<String> = (1..=3)
        .filter(|i| *i != leader)
        .map(|i| format!("127.0.0.{}", i + 1))
        .collect();
    let live = format!("{}:{port}", live.join(" "));
    assert!(
        eventually(Duration::from_secs(30), || cluster
            .kubernetes_endpoints(&survivor_context)
            == live),
        "kubernetes endpoints: {:?}, want {live:?}",
        cluster.kubernetes_endpoints(&survivor_context)
    );

    // An etcd member killed (the first of every server's endpoints): writes go on.
    cluster.kill9("etcd-1");
    let member_killed = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    cluster.ok(
        &survivor_context,
        &["scale", "deployment/web", "--replicas=3"],
    );
    cluster.ok(
        &survivor_context,
        &["rollout", "status", "deployment/web", "--timeout=30s"],
    );
    let acked = writer.finish();
    let after = acked
        .iter()
        .filter(|(_, at)| at.duration_since(member_killed) > Duration::from_secs(1))
        .count();
    assert!(
        after >= 5,
        "only {after} writes acknowledged after the etcd member was killed\n{}",
        cluster.logs()
    );

    // No acknowledged write lost: every ConfigMap the API said it created is there.
    let listed = cluster.ok(
        &survivor_context,
        &[
            "get",
            "configmaps",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
    );
    let listed: std::collections::BTreeSet<&str> = listed.split_whitespace().collect();
    let lost: Vec<&str> = acked
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| !listed.contains(name))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    eprintln!(
        "{} acknowledged writes, none lost ({after} after the etcd member was killed); {:.1} s in all",
        acked.len(),
        started.elapsed().as_secs_f64()
    );
    drop(sim);
}
