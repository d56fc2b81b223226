//! `ferry agent`: the node agent — joins a server (join token → node client certificate), runs
//! its own containerd (or uses one given), registers the Node and keeps its Lease fresh, guards
//! the pod network, writes the CNI config for the node's podCIDR, runs the service proxy
//! (`ferry-proxy`) and the kubelet's pod workers. `ferry agent --cleanup` removes everything the agent made on this machine.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ferry_kubelet::cleanup::{self, CleanupOptions};
use ferry_kubelet::cni::{self, CniConfig};
use ferry_kubelet::containerd::{Containerd, ContainerdConfig, DEFAULT_SANDBOX_IMAGE};
use ferry_kubelet::images::ImageManager;
use ferry_kubelet::kubelet::Kubelet;
use ferry_kubelet::machine::MachineConfig;
use ferry_kubelet::netguard::{self, Guard};
use ferry_kubelet::node::{NodeHeartbeat, NodeOptions};
use ferry_kubelet::pod_worker::{KubePodApi, NodeContext, Shared};
use ferry_kubelet::podconfig::SandboxContext;
use ferry_kubelet::probe::ProbeManager;
use ferry_kubelet::runtime::{CriRuntime, Runtime};
use ferry_kubelet::volume::{ApiObjectSource, VolumeManager};
use k8s_openapi::api::core::v1::Node;

/// Options of `ferry agent`.
#[derive(clap::Args, Debug, Clone)]
pub struct AgentArgs {
    /// The API server's URL (with `--token`).
    #[arg(long)]
    pub server: Option<String>,
    /// The join token the server wrote to `<server data dir>/join-token`.
    #[arg(long)]
    pub token: Option<String>,
    /// A kubeconfig to use instead of joining with a token.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The Node's name [default: the lower-cased hostname].
    #[arg(long)]
    pub node_name: Option<String>,
    /// Where the agent keeps its credentials, containerd, pod volumes and logs.
    #[arg(long, default_value = "/var/lib/ferry/agent")]
    pub data_dir: PathBuf,
    /// An existing CRI socket to use instead of starting containerd.
    #[arg(long)]
    pub container_runtime_endpoint: Option<PathBuf>,
    /// The cluster's pod CIDR (guarded: never routed off this machine).
    #[arg(long, default_value = "10.42.0.0/16")]
    pub cluster_cidr: String,
    /// The service CIDR (guarded too).
    #[arg(long, default_value = "10.43.0.0/16")]
    pub service_cidr: String,
    /// The pods' cgroup root (cgroupfs driver).
    #[arg(long, default_value = "/kubepods")]
    pub cgroup_root: String,
    /// The pod bridge.
    #[arg(long, default_value = "ferry0")]
    pub bridge: String,
    /// The cluster domain.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Cluster DNS server IPs for pods (the `kube-dns` Service's cluster IP `ferry server`
    /// keeps); given empty (`--cluster-dns=`), pods use the node's resolv.conf.
    #[arg(long, value_delimiter = ',', default_value = "10.43.0.10")]
    pub cluster_dns: Vec<String>,
    /// The node's IP [default: the default route's source address].
    #[arg(long)]
    pub node_ip: Option<IpAddr>,
    /// The sandbox (pause) image.
    #[arg(long, default_value = DEFAULT_SANDBOX_IMAGE)]
    pub pause_image: String,
    /// The port of the kubelet's HTTPS server (logs, exec, attach, port-forward for the API
    /// server); 0 picks a free one (several agents on one machine). The Node publishes it.
    #[arg(long, default_value_t = 10250)]
    pub kubelet_port: u16,
    /// The address the kubelet's HTTPS server listens on.
    #[arg(long, default_value = "0.0.0.0")]
    pub kubelet_address: IpAddr,
    /// Registry mirrors, TLS and credentials for the node's containerd, in k3s's
    /// `registries.yaml` format [default: <data-dir>/registries.yaml when it exists].
    #[arg(long)]
    pub registries: Option<PathBuf>,
    /// Remove every container, mount, interface, namespace, route, nft table and cgroup the
    /// agent made on this machine, then exit (run it with the agent stopped).
    #[arg(long)]
    pub cleanup: bool,
    /// Where the service proxy's metrics (kube-proxy's names) and the pod network's are served
    /// over HTTP, as kube-proxy's `--metrics-bind-address`; empty serves none.
    #[arg(long, default_value = "127.0.0.1:10249")]
    pub proxy_metrics_bind_address: String,
    /// Do not run the local CSI driver (`local.csi.ferry.dev`) and its provisioner.
    #[arg(long)]
    pub disable_local_storage: bool,
    /// Node health: eviction thresholds, garbage collection, log rotation (boxed: the
    /// subcommand enum stays small).
    #[command(flatten)]
    pub health: Box<NodeHealthArgs>,
}

/// The node-health flags of `ferry agent`, with upstream kubelet's names and defaults.
#[derive(clap::Args, Debug, Clone)]
pub struct NodeHealthArgs {
    /// Hard eviction thresholds (`signal<quantity|percent`, comma-separated): met, pods are
    /// evicted at once. Given, it replaces the whole default list; `0%` is no threshold (CI
    /// machines with little disk left: `nodefs.available<0%,imagefs.available<0%`, as kind does).
    #[arg(
        long,
        env = "FERRY_EVICTION_HARD",
        default_value = ferry_kubelet::eviction::threshold::DEFAULT_EVICTION_HARD
    )]
    pub eviction_hard: String,
    /// Soft eviction thresholds (`memory.available<1.5Gi`): met for their grace period, pods
    /// are evicted with up to `--eviction-max-pod-grace-period`.
    #[arg(long, default_value = "")]
    pub eviction_soft: String,
    /// Grace periods of the soft thresholds (`memory.available=1m30s`).
    #[arg(long, default_value = "")]
    pub eviction_soft_grace_period: String,
    /// How much beyond a threshold a signal must recover (`memory.available=0Mi,nodefs.available=500Mi`).
    #[arg(long, default_value = "")]
    pub eviction_minimum_reclaim: String,
    /// The longest grace period of a pod evicted for a soft threshold, in seconds (the pod's
    /// own when shorter; 0: killed at once, as upstream).
    #[arg(long, default_value_t = 0)]
    pub eviction_max_pod_grace_period: u64,
    /// How long a pressure condition stays after its signal cleared.
    #[arg(long, default_value = "5m0s")]
    pub eviction_pressure_transition_period: String,
    /// Image filesystem usage percent that starts image garbage collection.
    #[arg(long, default_value_t = 85)]
    pub image_gc_high_threshold: u8,
    /// Image filesystem usage percent image garbage collection brings it down to.
    #[arg(long, default_value_t = 80)]
    pub image_gc_low_threshold: u8,
    /// Images younger than this are never garbage collected.
    #[arg(long, default_value = "2m0s")]
    pub image_minimum_gc_age: String,
    /// Dead instances kept per container (negative: no limit).
    #[arg(long, default_value_t = 1, allow_hyphen_values = true)]
    pub maximum_dead_containers_per_container: i64,
    /// Dead containers kept on the node (negative: no limit).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub maximum_dead_containers: i64,
    /// A container log at least this big is rotated.
    #[arg(long, default_value = "10Mi")]
    pub container_log_max_size: String,
    /// Log files kept per container, the current one included.
    #[arg(long, default_value_t = 5)]
    pub container_log_max_files: usize,
}

/// What the node-health flags make: the eviction manager's, the garbage collectors' and the
/// log rotation's configuration.
struct NodeHealth {
    eviction: ferry_kubelet::eviction::EvictionConfig,
    image_gc: ferry_kubelet::gc::images::ImageGcPolicy,
    container_gc: ferry_kubelet::gc::containers::ContainerGcPolicy,
    log_rotation: ferry_kubelet::logs::LogRotatePolicy,
}

fn go_duration(flag: &str, value: &str) -> anyhow::Result<Duration> {
    ferry_api::duration::parse_go(value)
        .with_context(|| format!("--{flag}: invalid duration {value:?}"))
}

/// The registries file looked for in the data dir (`ferry server`'s and `ferry agent`'s).
pub const REGISTRIES_FILE: &str = "registries.yaml";

/// The lower-cased hostname.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_lowercase())
        .unwrap_or_else(|_| "localhost".to_string())
}

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// `ferry agent`'s flags parsed on their own (for the server's local agent).
#[derive(clap::Parser)]
struct AgentCli {
    #[command(flatten)]
    args: AgentArgs,
}

impl AgentArgs {
    /// Parses `ferry agent` flags.
    pub fn from_flags(flags: &[String]) -> anyhow::Result<AgentArgs> {
        use clap::Parser as _;
        let argv = std::iter::once("ferry-agent".to_string()).chain(flags.iter().cloned());
        Ok(AgentCli::try_parse_from(argv)?.args)
    }

    /// The node-health flags, checked.
    fn node_health(&self) -> anyhow::Result<NodeHealth> {
        let h = &self.health;
        use ferry_kubelet::{eviction, gc, logs};
        let thresholds = eviction::threshold::parse_thresholds(
            &h.eviction_hard,
            &h.eviction_soft,
            &h.eviction_soft_grace_period,
            &h.eviction_minimum_reclaim,
        )?;
        let image_gc = gc::images::ImageGcPolicy {
            high_threshold_percent: h.image_gc_high_threshold,
            low_threshold_percent: h.image_gc_low_threshold,
            min_age: go_duration("image-minimum-gc-age", &h.image_minimum_gc_age)?,
        };
        image_gc.validate()?;
        Ok(NodeHealth {
            eviction: eviction::EvictionConfig {
                thresholds,
                pressure_transition_period: go_duration(
                    "eviction-pressure-transition-period",
                    &h.eviction_pressure_transition_period,
                )?,
                max_pod_grace_period: Duration::from_secs(h.eviction_max_pod_grace_period),
                ..eviction::EvictionConfig::default()
            },
            image_gc,
            container_gc: gc::containers::ContainerGcPolicy {
                max_per_pod_container: h.maximum_dead_containers_per_container,
                max_containers: h.maximum_dead_containers,
                ..Default::default()
            },
            log_rotation: logs::LogRotatePolicy::parse(
                &h.container_log_max_size,
                h.container_log_max_files,
            )?,
        })
    }

    fn containerd_config(&self) -> ContainerdConfig {
        let mut config = ContainerdConfig::new(self.data_dir.join("containerd"));
        config.sandbox_image = self.pause_image.clone();
        config
    }

    /// The registry settings: `--registries`, or the data dir's file if there is one.
    fn registries(&self) -> anyhow::Result<ferry_kubelet::registries::Registries> {
        let path = match &self.registries {
            Some(path) => path.clone(),
            None => {
                let path = self.data_dir.join(REGISTRIES_FILE);
                if !path.exists() {
                    return Ok(Default::default());
                }
                path
            }
        };
        let registries = ferry_kubelet::registries::Registries::load(&path)?;
        tracing::info!(path = %path.display(), mirrors = ?registries.mirrors.keys().collect::<Vec<_>>(), "registry settings");
        Ok(registries)
    }

    fn guard(&self) -> Guard {
        Guard {
            cluster_cidr: self.cluster_cidr.clone(),
            service_cidr: self.service_cidr.clone(),
            bridge: self.bridge.clone(),
        }
    }

    /// What `--cleanup` removes.
    pub fn cleanup_options(&self) -> CleanupOptions {
        CleanupOptions {
            data_dir: self.data_dir.clone(),
            containerd: self.containerd_config(),
            bridge: self.bridge.clone(),
            network_name: "ferry".to_string(),
            cgroup_root: self.cgroup_root.clone(),
            guard: self.guard(),
        }
    }
}

/// `ferry agent --cleanup`.
pub async fn run_cleanup(args: &AgentArgs) -> anyhow::Result<()> {
    let mut report = cleanup::cleanup(&args.cleanup_options());
    match ferry_proxy::cleanup(&ferry_proxy::Nft::default()) {
        Ok(()) => report
            .actions
            .push(format!("removed nft table ip {}", ferry_proxy::nft::TABLE)),
        Err(e) => report.errors.push(e.to_string()),
    }
    match ferry_podnet::policy::cleanup().await {
        Ok(()) => report.actions.push(format!(
            "removed nft table inet {}",
            ferry_podnet::policy::render::TABLE
        )),
        Err(e) => report.errors.push(e.to_string()),
    }
    match ferry_podnet::cleanup().await {
        Ok(removed) => report.actions.extend(removed),
        Err(e) => report.errors.push(e.to_string()),
    }
    for action in &report.actions {
        println!("ferry agent --cleanup: {action}");
    }
    for error in &report.errors {
        eprintln!("ferry agent --cleanup: {error}");
    }
    anyhow::ensure!(report.errors.is_empty(), "some of the cleanup failed");
    Ok(())
}

/// The client and its kubeconfig: from `--kubeconfig`, or by joining with `--server` and
/// `--token`.
async fn client(args: &AgentArgs, node_name: &str) -> anyhow::Result<(kube::Client, PathBuf)> {
    let kubeconfig = match (&args.kubeconfig, &args.server, &args.token) {
        (Some(path), _, _) => path.clone(),
        (None, Some(server), Some(token)) => {
            let dir = args.data_dir.join("credentials");
            std::fs::create_dir_all(&dir)?;
            // A server that is not up yet (or a CSR not signed in time) is waited for, as
            // upstream's kubelet does; a wrong token or CA is not.
            let mut delay = Duration::from_secs(1);
            loop {
                use ferry_client::bootstrap::{bootstrap_kubeconfig, BootstrapError};
                match bootstrap_kubeconfig(server, token, node_name, &dir).await {
                    Ok(path) => break path,
                    Err(e @ (BootstrapError::Tls { .. } | BootstrapError::Timeout(_))) => {
                        tracing::warn!(error = %e, "joining the cluster; trying again");
                    }
                    Err(BootstrapError::Api(kube::Error::Api(s))) if s.code >= 500 => {
                        tracing::warn!(error = %s.message, "joining the cluster; trying again");
                    }
                    Err(e) => return Err(e).context("joining the cluster"),
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
        _ => anyhow::bail!("give --server and --token (or --kubeconfig)"),
    };
    Ok((
        ferry_client::connect(&kubeconfig, "kubelet").await?,
        kubeconfig,
    ))
}

/// Waits for the node IPAM controller to give the Node a podCIDR.
async fn wait_for_pod_cidr(client: &kube::Client, node_name: &str) -> String {
    let nodes: kube::Api<Node> = kube::Api::all(client.clone());
    let mut logged = false;
    loop {
        if let Ok(Some(node)) = nodes.get_opt(node_name).await {
            if let Some(cidr) = node.spec.and_then(|s| s.pod_cidr).filter(|c| !c.is_empty()) {
                return cidr;
            }
        }
        if !logged {
            tracing::info!(node = %node_name, "waiting for the node's podCIDR");
            logged = true;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The kubelet's HTTPS server: its serving certificate asked for (and renewed on restart) from
/// the `kubelet-serving` signer for the node's name and addresses — retried until the
/// controller manager signs it — then served until `stopping`.
#[allow(clippy::too_many_arguments)]
async fn serve_kubelet(
    client: kube::Client,
    node_name: String,
    node_ips: Vec<String>,
    kubeconfig: PathBuf,
    dir: PathBuf,
    runtime: Arc<dyn Runtime>,
    stats: Arc<dyn ferry_kubelet::stats::SummaryProvider>,
    metrics: Arc<ferry_kubelet::metrics::KubeletMetrics>,
    listener: tokio::net::TcpListener,
    stopping: impl std::future::Future<Output = ()>,
) {
    use ferry_kubelet::server::{self, auth::SubjectAccessReviews, KubeletServer};
    let mut names = vec![node_name.clone()];
    names.extend(node_ips);
    let ca = match ferry_client::kubeconfig::cluster_ca(&kubeconfig) {
        Ok(ca) => ca,
        Err(error) => {
            tracing::error!(%error, "the kubelet server needs the cluster CA; not serving");
            return;
        }
    };
    let mut delay = Duration::from_secs(1);
    let (cert, key) = loop {
        match ferry_client::bootstrap::serving_certificate(
            client.clone(),
            &node_name,
            &names,
            &dir,
            Duration::from_secs(60),
        )
        .await
        {
            Ok(pair) => break pair,
            Err(error) => tracing::warn!(%error, "the kubelet's serving certificate; trying again"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(60));
    };
    let tls = match server::tls_config(&cert, &key, &ca) {
        Ok(tls) => tls,
        Err(error) => {
            tracing::error!(%error, "the kubelet server's TLS configuration; not serving");
            return;
        }
    };
    let address = listener.local_addr().ok();
    tracing::info!(?address, "kubelet server listening");
    let authorizer = Arc::new(SubjectAccessReviews(client.clone()));
    let pods = Arc::new(server::streaming::ApiPods(client));
    KubeletServer::new(node_name, runtime, authorizer, pods)
        .with_stats(stats)
        .with_metrics(metrics)
        .serve(listener, tls, stopping)
        .await;
}

/// Runs the agent until `shutdown`. Pods keep running when it stops (as with upstream's
/// kubelet); `--cleanup` removes them.
pub async fn run<F>(args: AgentArgs, shutdown: F) -> anyhow::Result<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    if args.cleanup {
        return run_cleanup(&args).await;
    }
    let health = args.node_health()?;
    anyhow::ensure!(
        is_root(),
        "ferry agent runs containers through containerd and must run as root"
    );
    let node_name = args.node_name.clone().unwrap_or_else(hostname);
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let stopping = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let (client, kubeconfig) = tokio::select! {
        client = client(&args, &node_name) => client?,
        () = stopping() => return Ok(()),
    };
    let _journeys = crate::components::report_journeys(&client);
    // The kubelet server's port is bound first: the Node publishes it when it registers.
    let kubelet_listener =
        tokio::net::TcpListener::bind((args.kubelet_address, args.kubelet_port))
            .await
            .with_context(|| {
                format!(
                    "binding the kubelet server on {}:{} (another agent on this machine? give --kubelet-port)",
                    args.kubelet_address, args.kubelet_port
                )
            })?;
    let kubelet_port = kubelet_listener.local_addr()?.port();

    // The runtime: ours, or the one given.
    let (containerd, runtime): (Option<Containerd>, Arc<dyn Runtime>) =
        match &args.container_runtime_endpoint {
            Some(socket) => (
                None,
                Arc::new(
                    CriRuntime::connect(socket)
                        .await
                        .context("connecting to the CRI socket")?,
                ),
            ),
            None => {
                let mut config = args.containerd_config();
                config.registries = args.registries()?;
                let containerd = Containerd::start(config, Duration::from_secs(60))
                    .await
                    .context("starting containerd")?;
                let runtime = Arc::new(containerd.runtime().clone());
                (Some(containerd), runtime)
            }
        };

    let machine = MachineConfig {
        data_dir: args.data_dir.clone(),
        node_ip: args.node_ip,
        hostname_override: Some(node_name.clone()),
        eviction_hard: ferry_kubelet::eviction::threshold::eviction_hard(
            &health.eviction.thresholds,
        ),
        ..MachineConfig::default()
    };
    let evictions = Arc::new(ferry_kubelet::eviction::EvictionState::default());
    let mut node_options = NodeOptions::new(node_name.clone());
    node_options.kubelet_port = i32::from(kubelet_port);
    let mut heartbeat = NodeHeartbeat::new(node_options, machine.clone());
    heartbeat.pressure = Some(evictions.clone());
    // The CSI volumes in use on the node, read from the pods' and the staged volumes' records.
    heartbeat.volumes = Some(VolumeManager::new(args.data_dir.join("pods")));
    let pod_logs_root = args.data_dir.join("pod-logs");
    let stats: Arc<dyn ferry_kubelet::stats::SummaryProvider> =
        Arc::new(ferry_kubelet::stats::StatsProvider::new(
            ferry_kubelet::stats::StatsConfig {
                node_name: node_name.clone(),
                machine: machine.clone(),
                pods_dir: args.data_dir.join("pods"),
                pod_logs_root: pod_logs_root.clone(),
                runtime_pid: containerd.as_ref().map(Containerd::pid),
            },
            runtime.clone(),
        ));
    let heartbeat = tokio::spawn(heartbeat.run(client.clone(), runtime.clone(), stopping()));

    let result =
        async {
            let pod_cidr = tokio::select! {
                cidr = wait_for_pod_cidr(&client, &node_name) => cidr,
                () = stopping() => return Ok(()),
            };
            let network = tokio::select! {
                network = ferry_podnet::NetworkConfig::fetch(&client) => network?,
                () = stopping() => return Ok(()),
            };
            let mut guard = args.guard();
            let cluster_cidr = network.cluster_cidr.to_string();
            if args.cluster_cidr.parse::<ferry_podnet::Cidr>().ok() != Some(network.cluster_cidr) {
                tracing::warn!(
                    server = %cluster_cidr,
                    flag = %args.cluster_cidr,
                    "the server's cluster CIDR differs from --cluster-cidr; using the server's \
                     (give `ferry agent --cleanup` the server's too)"
                );
                guard.cluster_cidr = cluster_cidr.clone();
            }
            // The guard before the first sandbox: CNI's bridge plugin turns on IP forwarding.
            netguard::install(&guard).context("installing the pod-network guard")?;
            let netlink = ferry_podnet::Netlink::connect().context("opening rtnetlink")?;
            let node_ip = ferry_kubelet::machine::node_ip(std::path::Path::new("/"), args.node_ip);
            let cni_dir = args.containerd_config().cni_conf_dir();
            let mut cni_config = CniConfig::new(&args.bridge, &pod_cidr, &args.data_dir);
            cni_config.is_gateway = true;
            let mut pod_network_stats = None;
            let pod_network = match (node_ip, pod_cidr.parse::<ferry_podnet::Cidr>()) {
                (IpAddr::V4(node_ip), Ok(pod_cidr)) => {
                    if network.backend == ferry_podnet::Backend::Vxlan {
                        let underlay = netlink.mtu_of_device_with(node_ip).await?;
                        cni_config.mtu = Some(underlay - ferry_podnet::plan::VXLAN_OVERHEAD);
                    }
                    let options = ferry_podnet::Options {
                        node_name: node_name.clone(),
                        node_ip,
                        pod_cidr,
                        backend: network.backend,
                        resync: Duration::from_secs(30),
                    };
                    let allow = Box::new(|peers: &[ferry_podnet::Peer]| {
                        let peers = netguard::Peers {
                            pod_cidrs: peers.iter().map(|p| p.pod_cidr.to_string()).collect(),
                            node_ips: peers.iter().map(|p| p.node_ip).collect(),
                        };
                        netguard::allow_peers(&peers).map_err(|e| e.to_string())
                    });
                    let (pod_network, watch) =
                        ferry_podnet::PodNetwork::new(client.clone(), options, allow);
                    pod_network_stats = Some(pod_network.stats.clone());
                    Some((
                        tokio::spawn(watch),
                        tokio::spawn(pod_network.run(netlink, stopping())),
                    ))
                }
                (node_ip, pod_cidr) => {
                    tracing::warn!(%node_ip, ?pod_cidr, "no IPv4 node IP and podCIDR: pods on other nodes are not routed");
                    None
                }
            };
            cni::write_conflist(&cni_dir, &cni_config).context("writing the CNI config")?;
            tracing::info!(node = %node_name, %pod_cidr, backend = %network.backend, "pod network ready");

            // The service proxy, beside the pods.
            ferry_proxy::prepare_host().context("enabling bridge netfilter")?;
            let proxy_options = ferry_proxy::Options {
                node_name: node_name.clone(),
                config: ferry_proxy::Config {
                    cluster_cidr: ferry_proxy::parse_cidr(&cluster_cidr)?,
                    service_cidr: ferry_proxy::parse_cidr(&args.service_cidr)?,
                },
                full_resync: Duration::from_secs(60),
                nft: ferry_proxy::Nft::default(),
                flush_conntrack: true,
            };
            // NetworkPolicy for this node's pods.
            let (policy, policy_watches) = ferry_podnet::policy::PolicyController::new(
                client.clone(),
                node_name.clone(),
                Duration::from_secs(60),
            );
            let policy_watches = tokio::spawn(policy_watches);
            let policy_stats = policy.stats.clone();
            let policy = tokio::spawn(policy.run(stopping()));
            let (proxy, proxy_watches) = ferry_proxy::Proxy::new(client.clone(), proxy_options);
            let proxy_watches = tokio::spawn(proxy_watches);
            let network_metrics = match args.proxy_metrics_bind_address.as_str() {
                "" => None,
                address => {
                    let address = address
                        .parse()
                        .with_context(|| format!("--proxy-metrics-bind-address {address}"))?;
                    let registry = crate::network_metrics::registry(
                        &proxy.metrics,
                        pod_network_stats.as_deref(),
                        &policy_stats,
                    );
                    crate::network_metrics::bind(address).await.map(|listener| {
                        tokio::spawn(crate::network_metrics::serve(listener, registry, stopping()))
                    })
                }
            };
            let proxy = tokio::spawn(proxy.run(stopping()));

            let nodes: kube::Api<Node> = kube::Api::all(client.clone());
            let node = nodes.get(&node_name).await.context("reading the Node")?;
            let status = node.status.unwrap_or_default();
            let node_ips: Vec<String> = status
                .addresses
                .iter()
                .flatten()
                .filter(|a| a.type_ == "InternalIP")
                .map(|a| a.address.clone())
                .collect();
            let memory_capacity = status
                .capacity
                .as_ref()
                .and_then(|c| c.get("memory"))
                .and_then(|q| ferry_kubelet::quantity::Quantity::parse(&q.0).ok())
                .map(|q| q.value())
                .unwrap_or(0);
            let sandbox = SandboxContext {
                attempt: 0,
                pod_logs_root: pod_logs_root.to_string_lossy().into_owned(),
                cgroup_root: args.cgroup_root.clone(),
                cluster_domain: args.cluster_domain.clone(),
                cluster_dns: args
                    .cluster_dns
                    .iter()
                    .filter(|s| !s.is_empty())
                    .cloned()
                    .collect(),
                host_resolv_conf: std::fs::read_to_string("/etc/resolv.conf").ok(),
                node_ips: node_ips.clone(),
            };
            let kubelet_metrics = Arc::new(ferry_kubelet::metrics::KubeletMetrics::new(&node_name));
            let kubelet_server = tokio::spawn(serve_kubelet(
                client.clone(),
                node_name.clone(),
                node_ips.clone(),
                kubeconfig.clone(),
                args.data_dir.join("credentials"),
                runtime.clone(),
                stats.clone(),
                kubelet_metrics.clone(),
                kubelet_listener,
                stopping(),
            ));
            let pods_dir = args.data_dir.join("pods");
            let csi = Arc::new(ferry_kubelet::csi::CsiNode::new());
            if !args.disable_local_storage {
                let stopping = stopping.clone();
                crate::local_storage::start(
                    client.clone(),
                    &node_name,
                    &args.data_dir,
                    csi.clone(),
                    stopping,
                )
                .await?;
            }
            let recorder =
                ferry_client::events::Recorder::new(client.clone(), "kubelet", &node_name);
            let (probe_tx, probe_rx) = tokio::sync::mpsc::unbounded_channel();
            let shared = Arc::new(Shared {
                runtime: runtime.clone(),
                api: Arc::new(KubePodApi(client.clone())),
                objects: Arc::new(ApiObjectSource::new(client.clone())),
                volumes: VolumeManager::new(pods_dir.clone()).with_csi(csi),
                images: ImageManager::default(),
                probes: ProbeManager::new(runtime.clone(), recorder.clone(), probe_tx.clone()),
                recorder,
                pod_starts: tokio::sync::Semaphore::new(
                    ferry_kubelet::pod_worker::default_pod_starts(),
                ),
                evictions: evictions.clone(),
                node: NodeContext {
                    node_name: node_name.clone(),
                    node_ips,
                    sandbox,
                    node_allocatable: status.allocatable.unwrap_or_default(),
                    node_memory_capacity: memory_capacity,
                    pods_dir,
                    seccomp_profile_root: args
                        .data_dir
                        .join("seccomp")
                        .to_string_lossy()
                        .into_owned(),
                },
            });
            // Node health: garbage collection, the eviction manager, log rotation.
            let node_pods = Arc::new(ferry_kubelet::eviction::ApiActivePods {
                client: client.clone(),
                node_name: node_name.clone(),
            });
            let collector = Arc::new(ferry_kubelet::gc::GarbageCollector::new(
                runtime.clone(),
                ferry_kubelet::gc::images::ImageGc::new(
                    health.image_gc,
                    vec![args.pause_image.clone()],
                ),
                health.container_gc,
                stats.clone(),
                node_pods.clone(),
            ));
            let gc_task = tokio::spawn(collector.clone().run(stopping()));
            let eviction_manager = ferry_kubelet::eviction::EvictionManager::new(
                health.eviction,
                node_name.clone(),
                stats.clone(),
                node_pods,
                Arc::new(ferry_kubelet::eviction::WorkerKiller {
                    state: evictions.clone(),
                    kick: probe_tx.clone(),
                }),
                Some(collector),
                shared.recorder.clone(),
                evictions,
            )
            .with_metrics(kubelet_metrics);
            let eviction_task = tokio::spawn(eviction_manager.run(stopping()));
            let log_task = tokio::spawn(
                ferry_kubelet::logs::ContainerLogManager::new(runtime.clone(), health.log_rotation)
                    .run(stopping()),
            );
            Kubelet::new(shared)
                .run(client.clone(), probe_rx, stopping())
                .await;
            gc_task.abort();
            eviction_task.abort();
            log_task.abort();
            let _ = tokio::time::timeout(Duration::from_secs(5), proxy).await;
            proxy_watches.abort();
            kubelet_server.abort();
            let _ = tokio::time::timeout(Duration::from_secs(5), policy).await;
            policy_watches.abort();
            if let Some(metrics) = network_metrics {
                metrics.abort();
            }
            if let Some((watch, pod_network)) = pod_network {
                let _ = tokio::time::timeout(Duration::from_secs(5), pod_network).await;
                watch.abort();
            }
            anyhow::Ok(())
        }
        .await;

    let _ = tokio::time::timeout(Duration::from_secs(5), heartbeat).await;
    if let Some(containerd) = containerd {
        if let Err(e) = containerd.stop(Duration::from_secs(10)).await {
            tracing::warn!(error = %e, "stopping containerd");
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(list: &[&str]) -> AgentArgs {
        let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        AgentArgs::from_flags(&list).expect("flags")
    }

    #[test]
    fn node_health_flags_have_upstreams_defaults_and_checks() {
        let health = flags(&[]).node_health().expect("defaults");
        assert_eq!(health.eviction.thresholds.len(), 4);
        assert_eq!(
            health.eviction.pressure_transition_period,
            Duration::from_secs(300)
        );
        assert_eq!(health.image_gc, Default::default());
        assert_eq!(health.container_gc, Default::default());
        assert_eq!(health.log_rotation, Default::default());
        let soft = flags(&[
            "--eviction-soft=memory.available<1Gi",
            "--eviction-soft-grace-period=memory.available=1m30s",
            "--container-log-max-size=64Ki",
            "--maximum-dead-containers=-1",
        ])
        .node_health()
        .expect("soft");
        assert_eq!(
            soft.eviction.thresholds.last().map(|t| t.grace_period),
            Some(Duration::from_secs(90))
        );
        assert_eq!(soft.log_rotation.max_size, 64 << 10);
        for bad in [
            "--eviction-soft=memory.available<1Gi",
            "--eviction-hard=memory.available>1Gi",
            "--image-gc-low-threshold=90",
            "--container-log-max-files=1",
        ] {
            assert!(flags(&[bad]).node_health().is_err(), "{bad}");
        }
    }
}
