//! The components that talk to the API server as clients — controllers, scheduler, simulated
//! nodes — as subcommands of their own (`ferry controllers --kubeconfig K`, …) and inside
//! `ferry server`. Either way they reach the API only through a kube-rs client, and the
//! controllers and scheduler take a coordination.k8s.io Lease in kube-system first, so two
//! copies can run and one works.
//!
//! Both also serve their health and Prometheus metrics on upstream's secure ports (10259,
//! 10257: [`SecureServingFlags`], [`ferry_client::serving`]), `/metrics` for callers the API
//! server lets `get` it.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ferry_client::clientbuilder::{
    ClientBuilder, ServiceAccountClientBuilder, SimpleClientBuilder,
};
use ferry_client::leader::{Config as LeaderConfig, Elector};
use futures::TryFutureExt as _;
use prometheus_client::registry::Registry;

use crate::server::parse_duration;

/// Controller-manager settings shared by `ferry controllers` and `ferry server`.
#[derive(clap::Args, Debug, Clone)]
pub struct ControllerFlags {
    /// The range node IPAM cuts each node's pod CIDR from.
    #[arg(long, default_value = "10.42.0.0/16")]
    pub cluster_cidr: String,
    /// Prefix length of each node's pod CIDR.
    #[arg(long, default_value_t = 24)]
    pub node_cidr_mask_size: u8,
    /// How often node health is checked.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub node_monitor_period: Duration,
    /// A node whose heartbeat is older than this is marked Unknown and tainted unreachable.
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    pub node_monitor_grace_period: Duration,
    /// Patience with a node that never reported Ready.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub node_startup_grace_period: Duration,
    /// Workers per controller.
    #[arg(long, default_value_t = 5)]
    pub concurrent_syncs: usize,
    /// The CA certificate (PEM) that signs approved CertificateSigningRequests (`ferry server`
    /// uses its own CA, `<data-dir>/tls/ca.crt`, unless told otherwise).
    #[arg(long)]
    pub cluster_signing_cert_file: Option<PathBuf>,
    /// That CA's private key (PEM) (`ferry server`: `<data-dir>/tls/ca.key`).
    #[arg(long)]
    pub cluster_signing_key_file: Option<PathBuf>,
    /// Validity of signed certificates whose request does not set `expirationSeconds`.
    #[arg(long, default_value = "8760h", value_parser = parse_duration)]
    pub cluster_signing_duration: Duration,
    /// The service-account signing key (PKCS#8 PEM) the token controller signs the legacy
    /// tokens of `kubernetes.io/service-account-token` Secrets with (`ferry server`: its own,
    /// `<data-dir>/tls/service-account.key`).
    #[arg(long)]
    pub service_account_private_key_file: Option<PathBuf>,
    /// How often every ResourceQuota's usage is recounted (besides recounts when what it counts
    /// is deleted).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub resource_quota_sync_period: Duration,
    /// How often each HorizontalPodAutoscaler is synced.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_sync_period: Duration,
    /// The least change of the metric-to-target ratio that makes the HPA scale (0.1: ±10 %).
    #[arg(long, default_value_t = 0.1)]
    pub horizontal_pod_autoscaler_tolerance: f64,
    /// The scale-down stabilization window of HPAs whose `behavior` sets none.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_downscale_stabilization: Duration,
    /// How long after a pod starts its CPU samples are skipped while it is not ready.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_cpu_initialization_period: Duration,
    /// How long after a pod starts a not-ready pod counts as never having been ready.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_initial_readiness_delay: Duration,
}

/// Where a component serves its health and metrics (upstream's secure serving flags).
#[derive(clap::Args, Debug, Clone)]
pub struct SecureServingFlags {
    /// The address of the secure port (upstream listens on all addresses; ferry keeps it local
    /// unless told otherwise).
    #[arg(long, default_value = "127.0.0.1")]
    pub bind_address: IpAddr,
    /// The HTTPS port serving `/healthz`, `/livez`, `/readyz` and `/metrics` (0: none); default
    /// upstream's (kube-scheduler 10259, kube-controller-manager 10257).
    #[arg(long)]
    pub secure_port: Option<u16>,
    /// The serving certificate (PEM); default a self-signed one made at start.
    #[arg(long, requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// The serving certificate's key (PEM).
    #[arg(long, requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
}

impl SecureServingFlags {
    /// Where to serve (`default_port` unless `--secure-port`), `None` when disabled.
    pub fn options(
        &self,
        default_port: u16,
    ) -> anyhow::Result<Option<ferry_client::serving::Options>> {
        let port = self.secure_port.unwrap_or(default_port);
        let certificate = match (&self.tls_cert_file, &self.tls_private_key_file) {
            (Some(cert), Some(key)) => Some((
                std::fs::read_to_string(cert)
                    .with_context(|| format!("reading {}", cert.display()))?,
                std::fs::read_to_string(key)
                    .with_context(|| format!("reading {}", key.display()))?,
            )),
            _ => None,
        };
        Ok(secure_serving(self.bind_address, port, certificate))
    }
}

/// Serving on `address:port` with `certificate` (none: self-signed); port 0 disables it.
pub fn secure_serving(
    address: IpAddr,
    port: u16,
    certificate: Option<(String, String)>,
) -> Option<ferry_client::serving::Options> {
    (port != 0).then(|| ferry_client::serving::Options {
        address: SocketAddr::new(address, port),
        certificate,
    })
}

/// Starts `component`'s secure serving of the metrics `register` adds (and client-go's) with
/// `client` checking the callers; dropping the returned sender stops it. A port that cannot be
/// bound is logged and the component goes on without it (as the agent's metrics address).
async fn serve_metrics(
    client: &kube::Client,
    component: &str,
    serving: Option<ferry_client::serving::Options>,
    register: fn(&mut Registry),
) -> Option<tokio::sync::oneshot::Sender<()>> {
    let serving = serving?;
    let mut registry = Registry::default();
    register(&mut registry);
    ferry_client::metrics::register(&mut registry);
    let metrics: ferry_client::serving::Metrics = Arc::new(move || {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)?;
        Ok(text)
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let address = serving.address;
    let started = ferry_client::serving::start(client.clone(), serving, metrics, async {
        let _ = stopped.await;
    })
    .await;
    match started {
        Ok(bound) => {
            tracing::info!(component, address = %bound, "serving health and metrics over HTTPS");
            Some(stop)
        }
        Err(error) => {
            tracing::warn!(component, %address, %error, "not serving health and metrics (give --secure-port)");
            None
        }
    }
}

/// The token controller's signer: the API server's service-account key.
struct LegacySigner(ferry_apiserver::serviceaccount::keys::SigningKey);

impl ferry_controllers::serviceaccounttoken::LegacyTokenSigner for LegacySigner {
    fn sign(
        &self,
        namespace: &str,
        account: &str,
        uid: &str,
        secret: &str,
    ) -> Result<String, String> {
        ferry_apiserver::serviceaccount::token::sign_legacy(
            &self.0, namespace, account, uid, secret,
        )
    }
}

impl ControllerFlags {
    fn options(&self, root_ca: Option<String>) -> anyhow::Result<ferry_controllers::Options> {
        let token_signer = match &self.service_account_private_key_file {
            Some(path) => {
                let pem = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let key = ferry_apiserver::serviceaccount::keys::SigningKey::from_pem(&pem)
                    .context("--service-account-private-key-file")?;
                Some(ferry_controllers::TokenSigner(Arc::new(LegacySigner(key))))
            }
            None => None,
        };
        Ok(ferry_controllers::Options {
            cluster_cidr: self.cluster_cidr.clone(),
            node_cidr_mask_size: self.node_cidr_mask_size,
            node_monitor_period: self.node_monitor_period,
            node_monitor_grace_period: self.node_monitor_grace_period,
            node_startup_grace_period: self.node_startup_grace_period,
            workers: self.concurrent_syncs,
            root_ca,
            cluster_signing_cert_file: self.cluster_signing_cert_file.clone(),
            cluster_signing_key_file: self.cluster_signing_key_file.clone(),
            cluster_signing_duration: self.cluster_signing_duration,
            token_signer,
            resource_quota_sync_period: self.resource_quota_sync_period,
            horizontal_pod_autoscaler: ferry_controllers::podautoscaler::HpaOptions {
                sync_period: self.horizontal_pod_autoscaler_sync_period,
                downscale_stabilization: self.horizontal_pod_autoscaler_downscale_stabilization,
                calculator: ferry_controllers::podautoscaler::replicas::ReplicaCalculator {
                    tolerance: self.horizontal_pod_autoscaler_tolerance,
                    cpu_initialization_period: self
                        .horizontal_pod_autoscaler_cpu_initialization_period,
                    delay_of_initial_readiness_status: self
                        .horizontal_pod_autoscaler_initial_readiness_delay,
                },
            },
        })
    }
}

/// Options of `ferry controllers`.
#[derive(clap::Args, Debug)]
pub struct ControllersArgs {
    /// Kubeconfig of the cluster to manage.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Take the kube-system/kube-controller-manager Lease before working.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Run each controller as its own service account in kube-system (a TokenRequest token),
    /// as upstream's flag; otherwise every controller uses the kubeconfig's credentials.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    use_service_account_credentials: bool,
    #[command(flatten)]
    flags: ControllerFlags,
    #[command(flatten)]
    serving: SecureServingFlags,
}

/// This machine's name, for leader identities.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// A per-process identity: two copies on one machine must differ.
pub fn process_identity() -> String {
    format!("{}_{}", hostname(), std::process::id())
}

/// The identity of the components inside `ferry server`: stable across restarts of the same
/// server, so a restarted server takes its own Lease back at once.
pub fn server_identity(data_dir: &Path) -> String {
    format!("{}_ferry-server_{}", hostname(), data_dir.display())
}

/// Runs `work` while holding the Lease `kube-system/<lease>`; starts over if the Lease is
/// lost; gives it up when `shutdown` resolves.
pub async fn with_leader_election<F, Fut>(
    client: kube::Client,
    lease: &str,
    identity: String,
    shutdown: impl Future<Output = ()>,
    work: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let elector = Elector::new(
        client,
        "kube-system",
        lease,
        &identity,
        LeaderConfig::default(),
    );
    let run = async {
        loop {
            match elector.run(work()).await {
                Ok(Ok(())) => return,
                Ok(Err(error)) => {
                    tracing::error!(lease, error = %format!("{error:#}"), "component failed, restarting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(lost) => {
                    tracing::warn!(lease, %lost, "leadership lost, standing for election again")
                }
            }
        }
    };
    tokio::select! {
        _ = run => {}
        _ = shutdown => {}
    }
    if let Err(error) = elector.release().await {
        tracing::debug!(%error, lease, "releasing the lease");
    }
}

/// The controllers' clients from the manager's kubeconfig: each controller as its own service
/// account (`use_service_account_credentials`), or all with the kubeconfig's credentials.
pub async fn controller_clients(
    kubeconfig: &Path,
    use_service_account_credentials: bool,
) -> anyhow::Result<Arc<dyn ClientBuilder>> {
    let config = ferry_client::config(kubeconfig, CONTROLLER_MANAGER)
        .await
        .context("the controller manager's kubeconfig")?;
    let root =
        ferry_client::journey::client(config.clone()).context("the controller manager's client")?;
    Ok(if use_service_account_credentials {
        Arc::new(ServiceAccountClientBuilder::new(
            root,
            config,
            CONTROLLER_MANAGER,
        ))
    } else {
        Arc::new(SimpleClientBuilder(root))
    })
}

/// Runs the controller manager until `shutdown`, serving its metrics as `serving` says.
pub async fn run_controllers(
    clients: Arc<dyn ClientBuilder>,
    flags: &ControllerFlags,
    root_ca: Option<String>,
    identity: Option<String>,
    serving: Option<ferry_client::serving::Options>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let options = flags.options(root_ca)?;
    let client = clients.root();
    let _serving = serve_metrics(
        &client,
        CONTROLLER_MANAGER,
        serving,
        ferry_controllers::queue::metrics::register,
    )
    .await;
    let work = || {
        ferry_controllers::run_with(clients.clone(), options.clone(), std::future::pending())
            .map_err(anyhow::Error::from)
    };
    match identity {
        Some(identity) => {
            with_leader_election(
                client.clone(),
                "kube-controller-manager",
                identity,
                shutdown,
                work,
            )
            .await
        }
        None => {
            tokio::select! {
                result = work() => result?,
                _ = shutdown => {}
            }
        }
    }
    Ok(())
}

/// Posts this process's journey steps to the API server through `client`, unless the process
/// keeps them itself (a `ferry server` running the component in-process), and exports them
/// over OTLP when the environment names a collector ([`crate::otlp`]); until the guards are
/// dropped.
pub fn report_journeys(client: &kube::Client) -> Vec<ferry_journey::SinkGuard> {
    let remote = (!ferry_journey::sink::active())
        .then(|| ferry_journey::install(ferry_client::journey::RemoteSink::start(client.clone())));
    remote.into_iter().chain(crate::otlp::from_env()).collect()
}

/// `ferry controllers`.
pub async fn controllers(args: ControllersArgs) -> anyhow::Result<()> {
    let clients =
        controller_clients(&args.kubeconfig, args.use_service_account_credentials).await?;
    let _journeys = report_journeys(&clients.root());
    let identity = args.leader_elect.then(process_identity);
    let serving = args
        .serving
        .options(ferry_client::serving::CONTROLLER_MANAGER_PORT)?;
    run_controllers(
        clients,
        &args.flags,
        None,
        identity,
        serving,
        shutdown_signal(),
    )
    .await
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
}

/// The user agents (and so the field managers) of the components, as upstream's.
pub const CONTROLLER_MANAGER: &str = "kube-controller-manager";
pub const SCHEDULER: &str = "kube-scheduler";

/// A client for an in-process component, from a kubeconfig the server wrote.
pub async fn in_process_client(kubeconfig: &Path, component: &str) -> anyhow::Result<kube::Client> {
    ferry_client::connect(kubeconfig, component)
        .await
        .context("connecting the in-process components")
}

/// Options of `ferry sim`.
#[derive(clap::Args, Debug)]
pub struct SimArgs {
    /// Kubeconfig of the cluster to join.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// How many nodes to simulate.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Node names are this prefix and an index.
    #[arg(long, default_value = "sim-")]
    name_prefix: String,
    /// CPU capacity of each node.
    #[arg(long, default_value = "32")]
    cpu: String,
    /// Memory capacity of each node.
    #[arg(long, default_value = "256Gi")]
    memory: String,
    /// Pod capacity of each node.
    #[arg(long, default_value_t = 110)]
    max_pods: u32,
    /// Extra labels on every node: `k=v,k2=v2`.
    #[arg(long, value_parser = ferry_sim::parse_labels)]
    labels: Option<std::collections::BTreeMap<String, String>>,
    /// Taints on every node: `k=v:NoSchedule,k2:NoExecute`.
    #[arg(long, value_parser = ferry_sim::parse_taint, value_delimiter = ',')]
    taints: Vec<k8s_openapi::api::core::v1::Taint>,
    /// A bound pod turns Running and Ready after this.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pod_start_delay: Duration,
    /// How often each node renews its Lease.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    lease_renew_interval: Duration,
    /// How often each node posts its status.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    status_update_interval: Duration,
}

/// `ferry sim`.
pub async fn sim(args: SimArgs) -> anyhow::Result<()> {
    let client = ferry_client::connect(&args.kubeconfig, "ferry-sim").await?;
    let _journeys = report_journeys(&client);
    let options = ferry_sim::Options {
        nodes: args.nodes,
        name_prefix: args.name_prefix,
        cpu: args.cpu,
        memory: args.memory,
        max_pods: args.max_pods,
        labels: args.labels.unwrap_or_default(),
        taints: args.taints,
        pod_start_delay: args.pod_start_delay,
        lease_renew_interval: args.lease_renew_interval,
        status_update_interval: args.status_update_interval,
        ..Default::default()
    };
    ferry_sim::run(client, options, shutdown_signal()).await
}

/// Options of `ferry scheduler`.
#[derive(clap::Args, Debug)]
pub struct SchedulerArgs {
    /// Kubeconfig of the cluster to schedule for.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// A KubeSchedulerConfiguration (kubescheduler.config.k8s.io/v1) file: profiles, plugins,
    /// weights.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Take the kube-system/kube-scheduler Lease before working.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    #[command(flatten)]
    serving: SecureServingFlags,
}

/// Runs the scheduler until `shutdown`, serving its metrics as `serving` says.
pub async fn run_scheduler(
    client: kube::Client,
    config: Option<&Path>,
    identity: Option<String>,
    serving: Option<ferry_client::serving::Options>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let config = ferry_scheduler::load_config(config).context("scheduler configuration")?;
    let _serving = serve_metrics(
        &client,
        SCHEDULER,
        serving,
        ferry_scheduler::metrics::register,
    )
    .await;
    let work = || {
        ferry_scheduler::run(client.clone(), config.clone(), std::future::pending())
            .map_err(anyhow::Error::from)
    };
    match identity {
        Some(identity) => {
            with_leader_election(client.clone(), "kube-scheduler", identity, shutdown, work).await
        }
        None => {
            tokio::select! {
                result = work() => result?,
                _ = shutdown => {}
            }
        }
    }
    Ok(())
}

/// `ferry scheduler`.
pub async fn scheduler(args: SchedulerArgs) -> anyhow::Result<()> {
    let client = ferry_client::connect(&args.kubeconfig, SCHEDULER).await?;
    let _journeys = report_journeys(&client);
    let identity = args.leader_elect.then(process_identity);
    let serving = args
        .serving
        .options(ferry_client::serving::SCHEDULER_PORT)?;
    run_scheduler(
        client,
        args.config.as_deref(),
        identity,
        serving,
        shutdown_signal(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;
    use ferry_apiserver::rbac::bootstrap;

    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        controllers: super::ControllerFlags,
    }

    /// The HPA's flags reach its options; unset, they are upstream's defaults.
    #[test]
    fn horizontal_pod_autoscaler_flags() {
        let parse = |args: &[&str]| {
            Flags::try_parse_from(std::iter::once("ferry").chain(args.iter().copied()))
                .expect("flags")
                .controllers
                .options(None)
                .expect("options")
                .horizontal_pod_autoscaler
        };
        let defaults = parse(&[]);
        let upstream = ferry_controllers::podautoscaler::HpaOptions::default();
        assert_eq!(defaults.sync_period, upstream.sync_period);
        assert_eq!(
            defaults.downscale_stabilization,
            upstream.downscale_stabilization
        );
        assert_eq!(defaults.calculator, upstream.calculator);
        let set = parse(&[
            "--horizontal-pod-autoscaler-sync-period=30s",
            "--horizontal-pod-autoscaler-tolerance=0.25",
            "--horizontal-pod-autoscaler-downscale-stabilization=1m",
            "--horizontal-pod-autoscaler-cpu-initialization-period=2m",
            "--horizontal-pod-autoscaler-initial-readiness-delay=10s",
        ]);
        assert_eq!(set.sync_period, std::time::Duration::from_secs(30));
        assert_eq!(
            set.downscale_stabilization,
            std::time::Duration::from_secs(60)
        );
        assert_eq!(set.calculator.tolerance, 0.25);
        assert_eq!(
            set.calculator.cpu_initialization_period,
            std::time::Duration::from_secs(120)
        );
        assert_eq!(
            set.calculator.delay_of_initial_readiness_status,
            std::time::Duration::from_secs(10)
        );
    }

    /// A controller without its role and binding would silently fail with 403s.
    #[test]
    fn every_controller_has_a_role_and_a_binding() {
        let roles = bootstrap::cluster_roles();
        let bindings = bootstrap::cluster_role_bindings();
        for name in ferry_controllers::names::ALL {
            let role = format!("system:controller:{name}");
            assert!(
                roles.iter().any(|r| r["metadata"]["name"] == role.as_str()),
                "no role {role}"
            );
            assert!(
                bindings
                    .iter()
                    .any(|b| b["roleRef"]["name"] == role.as_str()
                        && b["subjects"].as_array().is_some_and(|s| s
                            .iter()
                            .any(|s| s["kind"] == "ServiceAccount"
                                && s["namespace"] == "kube-system"
                                && s["name"] == *name))),
                "no binding of {role} to kube-system/{name}"
            );
        }
        assert!(roles
            .iter()
            .any(|r| r["metadata"]["name"] == "system:kube-controller-manager"));
    }
}
