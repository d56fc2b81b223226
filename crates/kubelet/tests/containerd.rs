//! A pod sandbox and a container on a real containerd started by [`Containerd`], through CRI.
//!
//! Opt-in: needs root, Debian's containerd/runc/CNI plugins (`scripts/install-runtime-deps.sh`)
//! and the local test images (`scripts/build-test-images.sh`, run here if the registry on
//! 127.0.0.1:5000 is not up; stopped again at the end if this test started it). Run with
//!
//! ```sh
//! FERRY_CONTAINERD_TESTS=1 cargo test -p ferry-kubelet --test containerd -- --ignored --nocapture
//! ```
//!
//! Everything it makes on the host is removed by [`HostGuard`]'s `Drop`, also when an assertion
//! fails: containers (runc), containerd and its shims (by pid), mounts under the temp dir, the
//! bridge, sandbox netns, libcni's cached results, new nft tables, new cgroups, host directories
//! it caused to exist. The network is a bridge of our own on 10.42.251.0/24 without a gateway
//! address, so pod traffic has nowhere to go but the bridge.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_kubelet::cni::{self, CniConfig};
use ferry_kubelet::containerd::{self, Containerd, ContainerdConfig};
use ferry_kubelet::runtime::{image_spec, v1, Runtime, RuntimeError};

const POD_CIDR: &str = "10.42.251.0/24";
const BRIDGE: &str = "ferry-test0";
const NETWORK: &str = "ferry-test";
const BUSYBOX: &str = "127.0.0.1:5000/busybox:1";
/// Host directories that containerd, runc, CNI or `ip netns` create as a side effect.
const HOST_DIRS: [&str; 6] = [
    "/run/netns",
    "/run/containerd/s",
    "/run/containerd",
    "/run/mount",
    "/var/lib/cni/results",
    "/var/lib/cni",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn list_dir(dir: &str) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| Some(e.ok()?.file_name().to_str()?.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Top-level cgroups in every hierarchy (`/sys/fs/cgroup/<controller>/<name>`).
fn top_cgroups() -> BTreeSet<PathBuf> {
    let mut set = BTreeSet::new();
    for controller in list_dir("/sys/fs/cgroup") {
        let dir = Path::new("/sys/fs/cgroup").join(controller);
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                set.insert(entry.path());
            }
        }
    }
    set
}

use ferry_kubelet::cleanup::{mounts_under, remove_cgroup_tree, wait_gone};

fn is_mountpoint(dir: &str) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines().any(|line| line.split(' ').nth(4) == Some(dir))
}

/// What the host looked like before, and everything the test may leave behind.
struct HostGuard {
    tmp: tempfile::TempDir,
    containerd: Option<Containerd>,
    socket: PathBuf,
    runc_root: PathBuf,
    host_dirs_before: BTreeSet<&'static str>,
    netns_before: BTreeSet<String>,
    cni_results_before: BTreeSet<String>,
    shim_sockets_before: BTreeSet<String>,
    nft_tables_before: BTreeSet<String>,
    cgroups_before: BTreeSet<PathBuf>,
    ip_forward_before: String,
    /// Set if this test started the registry.
    registry_dir: Option<PathBuf>,
}

impl HostGuard {
    fn new() -> Self {
        // Short path: the gRPC socket lives under it (unix socket paths max 107 bytes).
        let tmp = tempfile::Builder::new()
            .prefix("ferry-kt.")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let data_dir = tmp.path().join("c");
        Self {
            socket: data_dir.join("containerd.sock"),
            runc_root: data_dir.join("runc"),
            tmp,
            containerd: None,
            host_dirs_before: HOST_DIRS
                .into_iter()
                .filter(|d| Path::new(d).exists())
                .collect(),
            netns_before: list_dir("/run/netns"),
            cni_results_before: list_dir("/var/lib/cni/results"),
            shim_sockets_before: list_dir("/run/containerd/s"),
            nft_tables_before: nft_tables(),
            cgroups_before: top_cgroups(),
            ip_forward_before: std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
                .unwrap_or_default(),
            registry_dir: None,
        }
    }
}

fn nft_tables() -> BTreeSet<String> {
    run("nft", &["list", "tables"])
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        // Containers first (their processes outlive a killed shim), by runc's state for containerd's
        // k8s.io namespace.
        let runc_root = self.runc_root.join("k8s.io");
        let runc_root = runc_root.to_string_lossy();
        for id in run("runc", &["--root", &runc_root, "list", "-q"])
            .unwrap_or_default()
            .lines()
        {
            eprintln!("cleanup: runc delete --force {id}");
            let _ = run("runc", &["--root", &runc_root, "delete", "--force", id]);
        }
        if let Some(containerd) = self.containerd.take() {
            let pid = containerd.pid();
            eprintln!("cleanup: killing containerd {pid}");
            drop(containerd); // kill_on_drop: SIGKILL
            wait_gone(pid, Duration::from_secs(5));
        }
        for pid in containerd::kill_stray_shims(&self.socket) {
            eprintln!("cleanup: killed shim {pid}");
            wait_gone(pid, Duration::from_secs(5));
        }
        // A killed shim leaves its socket behind.
        for socket in list_dir("/run/containerd/s").difference(&self.shim_sockets_before) {
            let _ = std::fs::remove_file(Path::new("/run/containerd/s").join(socket));
        }
        for netns in list_dir("/run/netns").difference(&self.netns_before) {
            if netns.starts_with("cni-") {
                eprintln!("cleanup: ip netns delete {netns}");
                let _ = run("ip", &["netns", "delete", netns]);
            }
        }
        if run("ip", &["link", "show", BRIDGE]).is_some() {
            let _ = run("ip", &["link", "delete", BRIDGE]);
        }
        for table in nft_tables().difference(&self.nft_tables_before) {
            // "table <family> <name>"
            let words: Vec<&str> = table.split_whitespace().collect();
            if let [_, family, name] = words[..] {
                eprintln!("cleanup: nft delete table {family} {name}");
                let _ = run("nft", &["delete", "table", family, name]);
            }
        }
        if !self.ip_forward_before.is_empty() {
            let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", &self.ip_forward_before);
        }
        for mount in mounts_under(self.tmp.path()) {
            eprintln!("cleanup: umount -l {}", mount.display());
            let _ = run("umount", &["-l", &mount.to_string_lossy()]);
        }
        for cgroup in top_cgroups().difference(&self.cgroups_before) {
            remove_cgroup_tree(cgroup);
        }
        for result in list_dir("/var/lib/cni/results").difference(&self.cni_results_before) {
            // Our network's and the loopback network containerd adds to every sandbox.
            if result.starts_with(&format!("{NETWORK}-")) || result.starts_with("cni-loopback-") {
                let _ = std::fs::remove_file(Path::new("/var/lib/cni/results").join(result));
            }
        }
        for dir in HOST_DIRS {
            if self.host_dirs_before.contains(dir)
                || !list_dir(dir).is_empty()
                || !Path::new(dir).is_dir()
            {
                continue;
            }
            if is_mountpoint(dir) {
                let _ = run("umount", &[dir]);
            }
            let _ = std::fs::remove_dir(dir);
        }
        if let Some(dir) = &self.registry_dir {
            let script = repo_root().join("scripts/stop-test-registry.sh");
            let _ = Command::new(script).arg("--registry-dir").arg(dir).output();
        }
        // The TempDir removes the rest.
    }
}

fn registry_up() -> bool {
    run(
        "curl",
        &["-fsS", "--max-time", "2", "http://127.0.0.1:5000/v2/"],
    )
    .is_some()
}

fn wait_for_file_containing(path: &Path, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) || Instant::now() >= deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn state(status: &v1::ContainerStatus) -> v1::ContainerState {
    v1::ContainerState::try_from(status.state).unwrap_or(v1::ContainerState::ContainerUnknown)
}

/// The kubelet's defaults: network and IPC shared by the pod, a PID namespace per container
/// (`shareProcessNamespace: false`). The CRI's zero value would be POD for PID too, making the
/// pause process PID 1 of every container.
fn namespaces() -> v1::NamespaceOption {
    v1::NamespaceOption {
        network: v1::NamespaceMode::Pod.into(),
        pid: v1::NamespaceMode::Container.into(),
        ipc: v1::NamespaceMode::Pod.into(),
        ..Default::default()
    }
}

#[tokio::test]
#[ignore = "needs root, containerd and the local test registry: FERRY_CONTAINERD_TESTS=1 cargo test -p ferry-kubelet --test containerd -- --ignored"]
async fn pod_sandbox_and_container_on_real_containerd() {
    if std::env::var("FERRY_CONTAINERD_TESTS").as_deref() != Ok("1") {
        eprintln!("SKIPPED: set FERRY_CONTAINERD_TESTS=1 to run against a real containerd");
        return;
    }
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED: must run as root (containerd, runc, CNI)");
        return;
    }
    let mut guard = HostGuard::new();
    if !registry_up() {
        let dir = std::env::var_os("FERRY_TEST_REGISTRY_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp/ferry-test-registry"));
        guard.registry_dir = Some(dir.clone());
        let status = Command::new(repo_root().join("scripts/build-test-images.sh"))
            .arg("--registry-dir")
            .arg(&dir)
            .status()
            .expect("run scripts/build-test-images.sh");
        assert!(
            status.success(),
            "scripts/build-test-images.sh failed: {status}"
        );
        assert!(
            registry_up(),
            "the test registry does not answer on 127.0.0.1:5000"
        );
    }

    let data_dir = guard.tmp.path().join("c");
    let config = ContainerdConfig::new(&data_dir);
    let mut network = CniConfig::new(BRIDGE, POD_CIDR, &data_dir);
    network.network_name = NETWORK.to_string();
    cni::write_conflist(&config.cni_conf_dir(), &network).expect("write conflist");

    let started = Instant::now();
    let containerd = Containerd::start(config.clone(), Duration::from_secs(30))
        .await
        .expect("start containerd");
    eprintln!(
        "containerd pid {} ready in {:?}",
        containerd.pid(),
        started.elapsed()
    );
    let runtime: Arc<dyn Runtime> = Arc::new(containerd.runtime().clone());
    guard.containerd = Some(containerd);

    let version = runtime.version().await.expect("version");
    eprintln!("version: {version:?}");
    assert_eq!(version.runtime_name, "containerd");
    assert_eq!(version.runtime_api_version, "v1");

    let t = Instant::now();
    let image_ref = runtime
        .pull_image(image_spec(BUSYBOX), None, None)
        .await
        .expect("pull busybox");
    eprintln!("PullImage {BUSYBOX}: {image_ref} in {:?}", t.elapsed());
    assert!(image_ref.starts_with("sha256:"), "{image_ref}");
    let image = runtime
        .image_status(image_spec(BUSYBOX))
        .await
        .expect("image status")
        .expect("image present");
    assert_eq!(image.id, image_ref);
    assert!(
        image.repo_tags.iter().any(|t| t == BUSYBOX),
        "{:?}",
        image.repo_tags
    );
    let missing = runtime
        .image_status(image_spec("127.0.0.1:5000/absent:1"))
        .await
        .expect("image status");
    assert!(missing.is_none());
    let images = runtime.list_images(None).await.expect("list images");
    assert!(images.iter().any(|i| i.id == image_ref));

    let log_dir = guard.tmp.path().join("logs");
    let labels: std::collections::HashMap<String, String> = [(
        "ferry.test".to_string(),
        format!("containerd-{}", std::process::id()),
    )]
    .into();
    let sandbox_config = v1::PodSandboxConfig {
        metadata: Some(v1::PodSandboxMetadata {
            name: "hello".to_string(),
            uid: format!("uid-hello-{}", std::process::id()),
            namespace: "ferry-test".to_string(),
            attempt: 0,
        }),
        hostname: "hello".to_string(),
        log_directory: log_dir.to_string_lossy().into_owned(),
        labels: labels.clone(),
        linux: Some(v1::LinuxPodSandboxConfig {
            cgroup_parent: "/ferry-test".to_string(),
            security_context: Some(v1::LinuxSandboxSecurityContext {
                namespace_options: Some(namespaces()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let t = Instant::now();
    let sandbox = runtime
        .run_pod_sandbox(sandbox_config.clone(), "")
        .await
        .expect("run pod sandbox");
    eprintln!("RunPodSandbox: {sandbox} in {:?}", t.elapsed());
    let status = runtime
        .pod_sandbox_status(&sandbox)
        .await
        .expect("sandbox status");
    assert_eq!(status.state, i32::from(v1::PodSandboxState::SandboxReady));
    let ip = status.network.map(|n| n.ip).unwrap_or_default();
    let ip: Ipv4Addr = ip
        .parse()
        .unwrap_or_else(|_| panic!("sandbox IP {ip:?} is not IPv4"));
    eprintln!("sandbox IP {ip}");
    assert!(cni::cidr_contains(POD_CIDR, ip), "{ip} not in {POD_CIDR}");
    let filter = v1::PodSandboxFilter {
        label_selector: labels.clone(),
        ..Default::default()
    };
    let listed = runtime
        .list_pod_sandboxes(Some(filter.clone()))
        .await
        .expect("list sandboxes");
    assert_eq!(
        listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        vec![sandbox.as_str()]
    );

    let container_config = v1::ContainerConfig {
        metadata: Some(v1::ContainerMetadata {
            name: "hello".to_string(),
            attempt: 0,
        }),
        image: Some(image_spec(BUSYBOX)),
        command: vec![
            "sh".to_string(),
            "-c".to_string(),
            "echo hello; sleep 30".to_string(),
        ],
        log_path: "hello/0.log".to_string(),
        linux: Some(v1::LinuxContainerConfig {
            security_context: Some(v1::LinuxContainerSecurityContext {
                namespace_options: Some(namespaces()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        labels: labels.clone(),
        ..Default::default()
    };
    let t = Instant::now();
    let container = runtime
        .create_container(&sandbox, container_config, sandbox_config.clone())
        .await
        .expect("create container");
    runtime
        .start_container(&container)
        .await
        .expect("start container");
    eprintln!("Create+StartContainer: {container} in {:?}", t.elapsed());
    let status = runtime
        .container_status(&container)
        .await
        .expect("container status");
    assert_eq!(
        state(&status),
        v1::ContainerState::ContainerRunning,
        "{status:?}"
    );
    // containerd 1.6 reports the repo digest here (`image_id` is newer than 1.6).
    eprintln!(
        "container image_ref {:?}, image_id {:?}",
        status.image_ref, status.image_id
    );
    assert!(
        status.image_ref.contains("busybox@sha256:") || status.image_ref == image_ref,
        "{status:?}"
    );
    let log = wait_for_file_containing(
        &log_dir.join("hello/0.log"),
        "hello",
        Duration::from_secs(5),
    );
    eprintln!("container log: {log:?}");
    assert!(log.contains("stdout F hello"), "{log:?}");
    let in_sandbox = v1::ContainerFilter {
        pod_sandbox_id: sandbox.clone(),
        ..Default::default()
    };
    let listed = runtime
        .list_containers(Some(in_sandbox.clone()))
        .await
        .expect("list containers");
    assert_eq!(
        listed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        vec![container.as_str()]
    );

    // `sh` is PID 1 of its container and has no SIGTERM handler, so the kernel drops SIGTERM:
    // the stop takes the whole 2 s and ends with SIGKILL (137).
    let t = Instant::now();
    runtime
        .stop_container(&container, 2)
        .await
        .expect("stop container");
    let stop_took = t.elapsed();
    let status = runtime
        .container_status(&container)
        .await
        .expect("container status");
    eprintln!(
        "StopContainer(2): {stop_took:?}, exit code {}, reason {:?}",
        status.exit_code, status.reason
    );
    assert_eq!(state(&status), v1::ContainerState::ContainerExited);
    assert_eq!(status.exit_code, 137);
    assert!(
        stop_took >= Duration::from_secs(2) && stop_took < Duration::from_secs(10),
        "{stop_took:?}"
    );
    assert!(status.finished_at > status.started_at && status.started_at > 0);

    runtime
        .remove_container(&container)
        .await
        .expect("remove container");
    runtime
        .remove_container(&container)
        .await
        .expect("remove container is idempotent");
    assert!(runtime
        .list_containers(Some(in_sandbox))
        .await
        .expect("list containers")
        .is_empty());
    let missing = runtime
        .container_status(&container)
        .await
        .expect_err("removed container");
    eprintln!("ContainerStatus of a removed container: {missing}");
    assert!(matches!(missing, RuntimeError::NotFound(_)), "{missing:?}");

    runtime
        .stop_pod_sandbox(&sandbox)
        .await
        .expect("stop sandbox");
    let status = runtime
        .pod_sandbox_status(&sandbox)
        .await
        .expect("sandbox status");
    assert_eq!(
        status.state,
        i32::from(v1::PodSandboxState::SandboxNotready)
    );
    runtime
        .remove_pod_sandbox(&sandbox)
        .await
        .expect("remove sandbox");
    assert!(runtime
        .list_pod_sandboxes(Some(filter))
        .await
        .expect("list sandboxes")
        .is_empty());
    // The image filesystem (the summary's `imageFs`, image GC's figures), then image GC's
    // RemoveImage: gone, and removing it again is no error.
    let image_fs = runtime.image_fs_info().await.expect("image fs info");
    eprintln!("ImageFsInfo: {image_fs:?}");
    let images_fs = image_fs
        .image_filesystems
        .first()
        .expect("an image filesystem");
    // containerd adds up the snapshots now and then: a fresh one may still say 0.
    assert!(images_fs.used_bytes.is_some());
    assert!(!images_fs
        .fs_id
        .as_ref()
        .expect("fs id")
        .mountpoint
        .is_empty());
    runtime
        .remove_image(image_spec(&image_ref))
        .await
        .expect("remove image");
    assert!(runtime
        .image_status(image_spec(BUSYBOX))
        .await
        .expect("image status")
        .is_none());
    runtime
        .remove_image(image_spec(&image_ref))
        .await
        .expect("removing a missing image");

    // CNI DEL released the IP: host-local keeps one file per lease in its dataDir.
    let leases = list_dir(&network.ipam_data_dir.join(NETWORK).to_string_lossy());
    assert!(
        !leases.iter().any(|f| f.parse::<Ipv4Addr>().is_ok()),
        "leases left: {leases:?}"
    );

    let containerd = guard.containerd.take().expect("containerd");
    let status = containerd
        .stop(Duration::from_secs(10))
        .await
        .expect("stop containerd");
    eprintln!("containerd stopped: {status}");
    // All tasks were deleted, so no shim should be left for our socket.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !containerd::stray_shims(&config.socket()).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        containerd::stray_shims(&config.socket()),
        Vec::<u32>::new(),
        "shims left"
    );
    let netns_before = guard.netns_before.clone();
    drop(guard);

    // Nothing of ours is left on the host.
    assert!(
        run("ip", &["link", "show", BRIDGE]).is_none(),
        "bridge {BRIDGE} left"
    );
    let netns_left: Vec<_> = list_dir("/run/netns")
        .difference(&netns_before)
        .cloned()
        .collect();
    assert!(netns_left.is_empty(), "netns left: {netns_left:?}");
}
