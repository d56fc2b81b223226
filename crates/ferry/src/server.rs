//! `ferry server`: the API server on its store (embedded by default), with the cluster's
//! certificates and an admin kubeconfig in the data directory. Controllers, scheduler and the
//! local node's agent join this command with their issues.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use ferry_apiserver::admission::Chain;
use ferry_apiserver::auth::{
    AuthenticatorChain, AuthorizationMode, BootstrapTokenAuthenticator, TokenFileAuthenticator,
    X509Authenticator,
};
use ferry_apiserver::pki::{write_private, Pki};
use ferry_apiserver::Server;
use ferry_client::bootstrap::JoinToken;
use ferry_store::embedded::{Config, EmbeddedStore};
use ferry_store::etcd::cluster::EtcdCluster;
use ferry_store::Store;

/// Which store backend.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum StoreKind {
    /// The embedded store under `--data-dir`.
    Embedded,
    /// An external etcd (`--etcd-endpoints`).
    Etcd,
}

/// Options of `ferry server`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where the store, certificates and kubeconfig live [default: /var/lib/ferry as root, else
    /// $XDG_DATA_HOME/ferry].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address of the HTTPS API (port 0 picks a free one; the chosen address is printed and
    /// written to the kubeconfig).
    #[arg(long, default_value = "127.0.0.1:6443")]
    https_listen: SocketAddr,
    /// Store backend.
    #[arg(long, value_enum, default_value = "embedded")]
    store: StoreKind,
    /// etcd client URLs, comma-separated (with `--store etcd`).
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    etcd_endpoints: Vec<String>,
    /// Key prefix in etcd (with `--store etcd`).
    #[arg(long, default_value = "/registry")]
    etcd_prefix: String,
    /// Static bearer tokens, upstream's CSV format: token,user,uid,"group1,group2".
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// A kubeconfig-format file naming the webhook that reviews bearer tokens no other
    /// authenticator knows (`authentication.k8s.io` TokenReview).
    #[arg(long)]
    authentication_token_webhook_config_file: Option<PathBuf>,
    /// How long the token webhook's answers are kept.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    authentication_token_webhook_cache_ttl: std::time::Duration,
    /// The TokenReview version sent to the token webhook: v1 or v1beta1.
    #[arg(long, default_value = "v1")]
    authentication_token_webhook_version: String,
    /// The OpenID Connect issuer whose ID tokens authenticate users (https; its discovery
    /// document and keys are fetched from it).
    #[arg(long)]
    oidc_issuer_url: Option<String>,
    /// The client id ID tokens must be issued for (their audience).
    #[arg(long, default_value = "")]
    oidc_client_id: String,
    /// The claim naming the user.
    #[arg(long, default_value = "sub")]
    oidc_username_claim: String,
    /// Put before user names (default `<issuer>#` unless the claim is email; `-` for none).
    #[arg(long)]
    oidc_username_prefix: Option<String>,
    /// The claim listing the user's groups.
    #[arg(long)]
    oidc_groups_claim: Option<String>,
    /// Put before group names.
    #[arg(long, default_value = "")]
    oidc_groups_prefix: String,
    /// The CA the issuer's certificate must chain to.
    #[arg(long)]
    oidc_ca_file: Option<PathBuf>,
    /// A `key=value` claim every ID token must carry (repeatable).
    #[arg(long)]
    oidc_required_claim: Vec<String>,
    /// The signing algorithms accepted, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec!["RS256".to_string()])]
    oidc_signing_algs: Vec<String>,
    /// The issuer service-account tokens name (`iss`); repeatable: the first signs new tokens,
    /// all are accepted. Default https://kubernetes.default.svc.cluster.local.
    #[arg(long)]
    service_account_issuer: Vec<String>,
    /// PEM file of the private key that signs service-account tokens (PKCS#8, ECDSA P-256 or
    /// RSA); default `<data-dir>/tls/service-account.key`, made on first start.
    #[arg(long)]
    service_account_signing_key_file: Option<PathBuf>,
    /// PEM files of keys (private keys, public keys or certificates) that verify
    /// service-account tokens, beside the signing key; repeatable.
    #[arg(long)]
    service_account_key_file: Vec<PathBuf>,
    /// Longest lifetime of a requested service-account token (longer requests are shortened).
    #[arg(long, value_parser = parse_duration)]
    service_account_max_token_expiration: Option<std::time::Duration>,
    /// The audit policy (`audit.k8s.io/v1` Policy): which requests are recorded, at which level.
    #[arg(long)]
    audit_policy_file: Option<PathBuf>,
    /// The audit log (`-`: standard output); needs `--audit-policy-file`.
    #[arg(long)]
    audit_log_path: Option<PathBuf>,
    /// Rotate the audit log past this many MiB (0: never).
    #[arg(long, default_value_t = 0)]
    audit_log_maxsize: u64,
    /// Old audit log files kept (0: all).
    #[arg(long, default_value_t = 0)]
    audit_log_maxbackup: usize,
    /// The audiences a token presented to the API server must name (comma-separated);
    /// default: the service-account issuers.
    #[arg(long, value_delimiter = ',')]
    api_audiences: Vec<String>,
    /// How often the embedded store compacts its history, keeping what was written within the
    /// last interval (upstream's flag of the same name; `0` disables it). Accepts `300s`, `5m`,
    /// `1h` or plain seconds.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    etcd_compaction_interval: std::time::Duration,
    /// The admission plugins to run, by upstream's names, comma-separated (they run in
    /// upstream's order whatever the order given); the default is every plugin ferry has.
    #[arg(long, value_delimiter = ',', default_values_t = ferry_apiserver::admission::DEFAULT_PLUGINS.iter().map(|p| p.to_string()).collect::<Vec<_>>())]
    enable_admission_plugins: Vec<String>,
    /// Admission plugins to turn off, comma-separated (upstream's flag: they are left out even
    /// if enabled).
    #[arg(long, value_delimiter = ',')]
    disable_admission_plugins: Vec<String>,
    /// Upstream's `EncryptionConfiguration` file (`apiserver.config.k8s.io/v1`): the resources
    /// encrypted at rest and their providers (aescbc, aesgcm, secretbox, identity).
    #[arg(long)]
    encryption_provider_config: Option<PathBuf>,
    /// Upstream's `AdmissionConfiguration` file (`apiserver.config.k8s.io/v1`): the plugins'
    /// configuration, e.g. PodSecurity's `PodSecurityConfiguration` defaults and exemptions.
    #[arg(long)]
    admission_control_config_file: Option<PathBuf>,
    /// Upstream's feature gates ferry can switch, `Name=true|false`, comma-separated:
    /// `WatchList` (streaming lists; off by default, as in Kubernetes 1.33).
    #[arg(long)]
    feature_gates: Option<ferry_apiserver::features::FeatureGates>,
    /// API versions served beyond the default ones, as upstream's `--runtime-config`:
    /// `group/version=true|false` pairs, comma-separated, or `api/alpha=true` (the alpha
    /// versions ferry has: `admissionregistration.k8s.io/v1alpha1`, MutatingAdmissionPolicy).
    #[arg(long)]
    runtime_config: Option<ferry_apiserver::features::RuntimeConfig>,
    /// The authorizers after `system:masters`' (which may do everything), in order, by upstream's
    /// names: Node, RBAC, Webhook, AlwaysAllow, AlwaysDeny.
    #[arg(long, value_delimiter = ',', default_values_t = vec!["Node".to_string(), "RBAC".to_string()])]
    authorization_mode: Vec<String>,
    /// A kubeconfig-format file naming the webhook the `Webhook` authorization mode sends
    /// SubjectAccessReviews to.
    #[arg(long)]
    authorization_webhook_config_file: Option<PathBuf>,
    /// The SubjectAccessReview version sent to the authorization webhook: v1beta1 or v1.
    #[arg(long, default_value = "v1beta1")]
    authorization_webhook_version: String,
    /// How long the authorization webhook's allowances are kept.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    authorization_webhook_cache_authorized_ttl: std::time::Duration,
    /// How long the authorization webhook's other answers are kept.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    authorization_webhook_cache_unauthorized_ttl: std::time::Duration,
    /// Requests other than mutating ones run at once at most (upstream's
    /// `--max-requests-inflight`); with priority and fairness, part of the server's limit.
    #[arg(long, default_value_t = ferry_apiserver::filters::max_inflight::DEFAULT_READ_ONLY)]
    max_requests_inflight: usize,
    /// Mutating requests run at once at most (upstream's `--max-mutating-requests-inflight`);
    /// with priority and fairness, the rest of the server's limit.
    #[arg(long, default_value_t = ferry_apiserver::filters::max_inflight::DEFAULT_MUTATING)]
    max_mutating_requests_inflight: usize,
    /// API Priority and Fairness: requests classified by FlowSchemas into priority levels that
    /// share the server's limit and queue fairly (upstream's default); `false` for the plain
    /// max-in-flight limits.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    enable_priority_and_fairness: bool,
    /// Record pods' journeys (`ferry trace`): the steps this process's API server,
    /// controllers, scheduler and agent take for pods and their workloads, kept in memory and
    /// served under `/journey/v1/`; `false` makes none and annotates no object with its
    /// `traceparent` (steps posted by agents in other processes are still kept).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    journeys: bool,
    /// Do not run the controller manager in this process.
    #[arg(long)]
    disable_controllers: bool,
    /// Run each controller as its own service account in kube-system, bound to its
    /// `system:controller:<name>` role (kubeadm's and k3s's setting); `false`: all as the
    /// manager's kubeconfig user, a master (kube-controller-manager's own default).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    use_service_account_credentials: bool,
    /// Do not run the scheduler in this process.
    #[arg(long)]
    disable_scheduler: bool,
    #[command(flatten)]
    controllers: crate::components::ControllerFlags,
    /// The in-process scheduler's KubeSchedulerConfiguration file.
    #[arg(long)]
    scheduler_config: Option<PathBuf>,
    /// The in-process scheduler's secure port (kube-scheduler's `--secure-port`: health and
    /// `/metrics` over HTTPS); 0 serves none.
    #[arg(long, default_value_t = ferry_client::serving::SCHEDULER_PORT)]
    scheduler_secure_port: u16,
    /// The address of the scheduler's secure port.
    #[arg(long, default_value = "127.0.0.1")]
    scheduler_bind_address: std::net::IpAddr,
    /// The in-process controller manager's secure port (kube-controller-manager's
    /// `--secure-port`); 0 serves none.
    #[arg(long, default_value_t = ferry_client::serving::CONTROLLER_MANAGER_PORT)]
    controller_manager_secure_port: u16,
    /// The address of the controller manager's secure port.
    #[arg(long, default_value = "127.0.0.1")]
    controller_manager_bind_address: std::net::IpAddr,
    /// Do not run an agent (kubelet on this machine's containerd) for the local node.
    #[arg(long)]
    disable_agent: bool,
    /// How often the kubelets' resource usage is scraped for `metrics.k8s.io` (`kubectl top`,
    /// HorizontalPodAutoscalers), as metrics-server's `--metric-resolution`.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    metric_resolution: std::time::Duration,
    /// The nodes whose kubelets are scraped (metrics-server's `--node-selector`); simulated
    /// nodes are left out by default.
    #[arg(long, default_value = ferry_apiserver::metrics_api::scrape::DEFAULT_NODE_SELECTOR)]
    metrics_node_selector: String,
    /// Do not create the `local.csi.ferry.dev` CSIDriver and the default `local` StorageClass
    /// (k3s's `--disable local-storage`); agents run the driver unless told otherwise.
    #[arg(long)]
    disable_local_storage: bool,
    /// A flag for the local agent, as `ferry agent` takes it (repeatable), e.g.
    /// `--agent-arg=--cgroup-root=/ferry`.
    #[arg(long = "agent-arg", allow_hyphen_values = true)]
    agent_args: Vec<String>,
    /// The cluster IP of the `kube-dns` Service in kube-system, which pods use as nameserver.
    #[arg(long, default_value = "10.43.0.10")]
    cluster_dns: std::net::Ipv4Addr,
    /// The cluster domain the DNS answers for.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// The port the cluster DNS listens on at this machine's address (0 picks one; the
    /// `kube-dns` Service's endpoint follows).
    #[arg(long, default_value_t = 53)]
    cluster_dns_port: u16,
    /// Do not run the cluster DNS.
    #[arg(long)]
    disable_dns: bool,
    /// How nodes reach each other's pods: `vxlan` (an overlay, for nodes that reach each other
    /// over IP) or `host-gw` (a route per node, for nodes on one L2 network). Every agent reads
    /// it from the ConfigMap kube-system/ferry-pod-network.
    #[arg(long, default_value = "vxlan")]
    pod_network: ferry_podnet::Backend,
    /// Registry mirrors and settings for the local node's containerd, in k3s's
    /// `registries.yaml` format [default: <data-dir>/registries.yaml when it exists].
    #[arg(long)]
    registries: Option<PathBuf>,
    #[command(flatten)]
    snapshots: crate::snapshot::ServerFlags,
}

/// A kubeconfig with the CA, certificate and key embedded (the admin's, the local node's).
fn embedded_kubeconfig(
    url: &str,
    ca_pem: &str,
    user: &str,
    cert: &ferry_apiserver::pki::CertPair,
) -> String {
    use ferry_client::kubeconfig::{kubeconfig, Pem};
    kubeconfig(
        url,
        Pem::Data(ca_pem),
        user,
        Pem::Data(&cert.cert_pem),
        Pem::Data(&cert.key_pem),
    )
}

/// The local node's agent: its own node client certificate (issued here, as the CSR signer
/// would), a kubeconfig under `<data-dir>/agent`, and the agent's defaults plus `extra`.
fn local_agent(
    data_dir: &std::path::Path,
    url: &str,
    pki: &Pki,
    extra: &[String],
) -> anyhow::Result<crate::agent::AgentArgs> {
    let node = crate::agent::hostname();
    let dir = data_dir.join("agent");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let user = format!("system:node:{node}");
    let cert = pki
        .client_cert(&user, Some("system:nodes"))
        .context("the local node's certificate")?;
    let kubeconfig = dir.join("kubelet.kubeconfig");
    write_private(
        &kubeconfig,
        &embedded_kubeconfig(url, &pki.ca_pem(), &user, &cert),
    )
    .context("writing the local node's kubeconfig")?;
    let mut flags: Vec<String> = vec![
        "--kubeconfig".into(),
        kubeconfig.to_string_lossy().into_owned(),
        "--node-name".into(),
        node,
        "--data-dir".into(),
        dir.to_string_lossy().into_owned(),
    ];
    flags.extend(extra.iter().cloned());
    crate::agent::AgentArgs::from_flags(&flags)
}

/// A flag's duration that does not parse.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum DurationError {
    /// A number of seconds that is no duration: negative, not finite, or too large.
    #[error("invalid duration {0:?}")]
    Seconds(String),
    /// Neither a number of seconds nor a Go duration.
    #[error("invalid duration {0:?}: use a Go duration such as 300ms, 5s, 1h30m")]
    Syntax(String),
}

/// A flag's duration (a clap value parser): a Go duration (`300s`, `5m`, `1h30m`, `250ms`:
/// [`ferry_api::duration::parse_go`]), or plain seconds, which upstream's flags do not take but
/// ferry's always have (`--etcd-compaction-interval` says so).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, DurationError> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return std::time::Duration::try_from_secs_f64(seconds)
            .map_err(|_| DurationError::Seconds(text.to_string()));
    }
    ferry_api::duration::parse_go(text).ok_or_else(|| DurationError::Syntax(text.to_string()))
}

/// Binds the cluster DNS on this machine's address (the local agent's `--node-ip` if it has
/// one: the address other nodes know this one by) and publishes it as the `kube-dns` Service's
/// endpoint; a DNS that cannot start is logged, and the server runs without it.
async fn start_dns(
    server: &std::sync::Arc<ferry_apiserver::server::Server>,
    args: &Args,
) -> Option<ferry_dns::Bound> {
    let node_ip = if args.disable_agent {
        None
    } else {
        crate::agent::AgentArgs::from_flags(&args.agent_args)
            .ok()
            .and_then(|a| a.node_ip)
    };
    let ip = ferry_kubelet::machine::node_ip(std::path::Path::new("/"), node_ip);
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let options = ferry_dns::Options {
        listen: SocketAddr::new(ip, args.cluster_dns_port),
        domain: args.cluster_domain.clone(),
        upstreams: ferry_dns::upstreams_from_resolv_conf(&resolv, &[ip, args.cluster_dns.into()]),
    };
    let bound = match ferry_dns::bind(options).await {
        Ok(bound) => bound,
        Err(error) => {
            tracing::error!(%error, "cluster DNS not started");
            return None;
        }
    };
    if let Err(error) = server
        .ensure_kube_dns(args.cluster_dns, bound.address())
        .await
    {
        tracing::error!(error = %error.message, "publishing the kube-dns Service");
    }
    println!(
        "ferry: cluster DNS on {} (kube-dns {})",
        bound.address(),
        args.cluster_dns
    );
    Some(bound)
}

pub(crate) fn default_data_dir() -> PathBuf {
    // Root or not, read from /proc (the effective uid), without unsafe code.
    let is_root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    if is_root {
        return PathBuf::from("/var/lib/ferry");
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("ferry")
}

/// The join token kept in `path` (mode 0600), made on first start — and again if the CA it
/// names is no longer the cluster's.
fn join_token(path: &std::path::Path, pki: &Pki) -> anyhow::Result<JoinToken> {
    if let Ok(text) = std::fs::read_to_string(path) {
        match JoinToken::parse(&text) {
            Ok(token) if token.matches_ca(&pki.ca_pem()) => return Ok(token),
            Ok(_) => {
                tracing::warn!(path = %path.display(), "join token names another CA, making a new one")
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "unreadable join token, making a new one")
            }
        }
    }
    let token = JoinToken::generate(&pki.ca_pem()).context("making the join token")?;
    write_private(path, &format!("{token}\n")).context("writing the join token")?;
    Ok(token)
}

/// The audit policy and backend of `--audit-*`: without a policy nothing goes to the log
/// (as upstream); with a policy and no log path, events go to `tracing`.
fn auditor(args: &Args) -> anyhow::Result<Option<ferry_apiserver::filters::audit::Auditor>> {
    use ferry_apiserver::audit::log::{LogConfig, LogSink};
    use ferry_apiserver::audit::policy::Policy;
    use ferry_apiserver::filters::audit::{Auditor, TracingSink};
    let Some(policy_file) = &args.audit_policy_file else {
        if args.audit_log_path.is_some() {
            tracing::warn!("--audit-log-path without --audit-policy-file: nothing is audited");
        }
        return Ok(None);
    };
    let text = std::fs::read_to_string(policy_file)
        .with_context(|| format!("reading {}", policy_file.display()))?;
    let policy = Policy::parse(&text)
        .map_err(|e| anyhow::anyhow!("--audit-policy-file {}: {e}", policy_file.display()))?;
    let sink: Arc<dyn ferry_apiserver::filters::audit::AuditSink> = match &args.audit_log_path {
        Some(path) => Arc::new(
            LogSink::open(LogConfig {
                path: path.clone(),
                max_size_mib: args.audit_log_maxsize,
                max_backups: args.audit_log_maxbackup,
            })
            .with_context(|| format!("opening the audit log {}", path.display()))?,
        ),
        None => Arc::new(TracingSink),
    };
    Ok(Some(Auditor {
        policy: Some(policy),
        sink,
    }))
}

/// The service-account token issuer and authenticator of `--service-account-*`.
fn service_account_tokens(
    args: &Args,
    data_dir: &std::path::Path,
    store: Arc<dyn Store>,
) -> anyhow::Result<Arc<ferry_apiserver::serviceaccount::Tokens>> {
    use ferry_apiserver::serviceaccount::{keys, TokenConfig, Tokens};
    let signing_path = args
        .service_account_signing_key_file
        .clone()
        .unwrap_or_else(|| data_dir.join("tls/service-account.key"));
    let signing =
        keys::load_or_generate(&signing_path).context("the service-account signing key")?;
    let mut verifying = Vec::new();
    for path in &args.service_account_key_file {
        verifying.extend(keys::verifying_keys(path).context("--service-account-key-file")?);
    }
    let config = TokenConfig {
        issuers: args.service_account_issuer.clone(),
        audiences: args.api_audiences.clone(),
        max_expiration: args.service_account_max_token_expiration,
    };
    Ok(Tokens::new(store, signing, verifying, config))
}

/// The OIDC authenticator the `--oidc-*` flags describe.
fn oidc_authenticator(
    args: &Args,
    issuer_url: &str,
) -> anyhow::Result<ferry_apiserver::oidc::OidcAuthenticator> {
    let required_claims = args
        .oidc_required_claim
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow::anyhow!("--oidc-required-claim {pair:?}: want key=value"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let signing_algs = args
        .oidc_signing_algs
        .iter()
        .map(|alg| {
            alg.parse::<jsonwebtoken::Algorithm>()
                .map_err(|_| anyhow::anyhow!("--oidc-signing-algs: unknown algorithm {alg:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    ferry_apiserver::oidc::OidcAuthenticator::new(ferry_apiserver::oidc::OidcConfig {
        issuer_url: issuer_url.to_string(),
        client_id: args.oidc_client_id.clone(),
        username_claim: args.oidc_username_claim.clone(),
        username_prefix: args.oidc_username_prefix.clone(),
        groups_claim: args.oidc_groups_claim.clone(),
        groups_prefix: args.oidc_groups_prefix.clone(),
        ca_file: args.oidc_ca_file.clone(),
        required_claims,
        signing_algs,
    })
    .map_err(|e| anyhow::anyhow!("--oidc-issuer-url: {e}"))
}

/// Runs the server until SIGTERM or SIGINT.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    if let Some(config) = &args.runtime_config {
        ferry_api::registry::enable(&config.enabled).context("--runtime-config")?;
    }
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let embedded_store = matches!(args.store, StoreKind::Embedded);
    crate::snapshot::prepare(&args.snapshots, embedded_store, &data_dir.join("store"))?;
    let (store, embedded): (Arc<dyn Store>, Option<Arc<EmbeddedStore>>) = match args.store {
        StoreKind::Embedded => {
            let mut config = Config::new(data_dir.join("store"));
            config.auto_compaction = Some(args.etcd_compaction_interval).filter(|d| !d.is_zero());
            config.retention =
                ferry_store::embedded::Retention::Time(args.etcd_compaction_interval);
            let store = Arc::new(
                EmbeddedStore::open(config)
                    .await
                    .context("opening the store")?,
            );
            (store.clone(), Some(store))
        }
        StoreKind::Etcd => {
            // One client per member, failing over when one is down (docs/HA.md).
            let store = EtcdCluster::connect(&args.etcd_endpoints, args.etcd_prefix.clone())
                .await
                .context("connecting to etcd")?;
            (Arc::new(store), None)
        }
    };
    let store: Arc<dyn Store> = match &args.encryption_provider_config {
        Some(path) => {
            let config = ferry_apiserver::encryption::EncryptionConfig::load(path)
                .map_err(|e| anyhow::anyhow!("--encryption-provider-config: {e}"))?;
            ferry_apiserver::encryption::EncryptingStore::new(store, config)
        }
        None => store,
    };
    // A CA (and service-account key) already in `<data-dir>/tls` is kept: servers that share
    // a store share them by copying them there before their first start (docs/HA.md).
    let listen_ip = Some(args.https_listen.ip()).filter(|ip| !ip.is_unspecified());
    let pki = Pki::load_or_create_serving(&data_dir.join("tls"), listen_ip.as_slice())
        .context("cluster certificates")?;
    let front_proxy = ferry_apiserver::pki::FrontProxy::load_or_create(&data_dir.join("tls"))
        .context("the front proxy's certificates")?;
    let join_token_file = data_dir.join("join-token");
    let join_token = join_token(&join_token_file, &pki)?;
    let mut authenticators: Vec<Box<dyn ferry_apiserver::auth::Authenticator>> = vec![
        Box::new(X509Authenticator),
        Box::new(BootstrapTokenAuthenticator::new(
            &join_token.id,
            &join_token.secret,
        )),
    ];
    let tokens = service_account_tokens(&args, &data_dir, store.clone())?;
    authenticators.push(Box::new(
        ferry_apiserver::serviceaccount::TokenAuthenticator(tokens.clone()),
    ));
    if let Some(path) = &args.token_file {
        let tokens = TokenFileAuthenticator::load(path)
            .with_context(|| format!("reading {}", path.display()))?;
        authenticators.push(Box::new(tokens));
    }
    // OIDC before the token webhook, in upstream's order.
    if let Some(issuer_url) = &args.oidc_issuer_url {
        authenticators.push(Box::new(oidc_authenticator(&args, issuer_url)?));
    }
    if let Some(path) = &args.authentication_token_webhook_config_file {
        let webhook = ferry_apiserver::token_webhook::WebhookTokenAuthenticator::load(
            path,
            args.authentication_token_webhook_cache_ttl,
            &args.authentication_token_webhook_version,
        )
        .map_err(|e| anyhow::anyhow!("--authentication-token-webhook-config-file: {e}"))?;
        authenticators.push(Box::new(webhook));
    }
    for name in &args.disable_admission_plugins {
        if !ferry_apiserver::admission::PLUGINS.contains(&name.as_str()) {
            anyhow::bail!("--disable-admission-plugins: unknown admission plugin {name:?}");
        }
    }
    let enabled: Vec<&String> = args
        .enable_admission_plugins
        .iter()
        .filter(|p| !args.disable_admission_plugins.contains(p))
        .collect();
    let configuration = match &args.admission_control_config_file {
        Some(path) => ferry_apiserver::admission::Configuration::load(path)
            .map_err(|e| anyhow::anyhow!("--admission-control-config-file: {e}"))?,
        None => Default::default(),
    };
    let admission = Chain::configured(&enabled, &configuration)
        .map_err(|e| anyhow::anyhow!("--enable-admission-plugins: {e}"))?;
    let modes = args
        .authorization_mode
        .iter()
        .map(|m| m.parse::<AuthorizationMode>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("--authorization-mode: {e}"))?;
    let webhook = match (
        modes.contains(&AuthorizationMode::Webhook),
        &args.authorization_webhook_config_file,
    ) {
        (true, Some(path)) => Some(
            ferry_apiserver::authz_webhook::WebhookAuthorizer::load(
                path,
                &args.authorization_webhook_version,
                args.authorization_webhook_cache_authorized_ttl,
                args.authorization_webhook_cache_unauthorized_ttl,
            )
            .map_err(|e| anyhow::anyhow!("--authorization-webhook-config-file: {e}"))?,
        ),
        (true, None) => anyhow::bail!(
            "--authorization-mode: authorization-mode Webhook's authorization config file not passed"
        ),
        (false, _) => None,
    };
    let server = Server::with_authorization_webhook(
        store,
        AuthenticatorChain(authenticators),
        &modes,
        webhook,
        admission,
    );
    // Steps of the components in this process go straight into the server's memory, unless
    // journeys are off (then none is made).
    let (_journeys, _journeys_off) = if args.journeys {
        (Some(ferry_journey::install(server.journeys())), None)
    } else {
        (None, Some(ferry_journey::sink::switch_off()))
    };
    // And to a user's OpenTelemetry collector, when the environment names one.
    let _otlp = args.journeys.then(crate::otlp::from_env).flatten();
    server.set_service_account_tokens(tokens);
    server
        .set_front_proxy(&front_proxy)
        .map_err(|e| anyhow::anyhow!("the front proxy's client certificate: {}", e.message))?;
    if let Some(gates) = args.feature_gates {
        server.set_feature_gates(gates);
    }
    server.set_request_limits(ferry_apiserver::server::RequestLimits {
        read_only: args.max_requests_inflight,
        mutating: args.max_mutating_requests_inflight,
        priority_and_fairness: args.enable_priority_and_fairness,
    });
    if let Some(auditor) = auditor(&args)? {
        server.set_audit(auditor);
    }
    server.bootstrap().await.map_err(|e| {
        anyhow::anyhow!(
            "creating the system namespaces and the default RBAC policy: {}",
            e.message
        )
    })?;
    // The server's certificate for kubelets (pods/log, exec, port-forward): made per start,
    // like the local node's; kubelets trust the CA and authorize it by SubjectAccessReview.
    let kubelet_client = pki
        .client_cert(
            ferry_apiserver::kubelet::KUBELET_CLIENT_USER,
            Some("system:masters"),
        )
        .context("the kubelet client certificate")?;
    server.set_kubelet_client(
        pki.client_tls(&kubelet_client)
            .context("the kubelet client's TLS configuration")?,
    );
    server
        .start_resource_metrics(args.metric_resolution, &args.metrics_node_selector)
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;

    let listener = tokio::net::TcpListener::bind(args.https_listen)
        .await
        .with_context(|| format!("listening on {}", args.https_listen))?;
    let mut address = listener.local_addr()?;
    if address.ip().is_unspecified() {
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("https://{address}");
    let endpoint_reconciler =
        ferry_apiserver::endpoint_reconciler::EndpointReconciler::start(&server, address)
            .await
            .map_err(|e| anyhow::anyhow!("creating the kubernetes service: {}", e.message))?;
    let network = ferry_podnet::NetworkConfig {
        cluster_cidr: args.controllers.cluster_cidr.parse()?,
        backend: args.pod_network,
    };
    server
        .ensure_extension_apiserver_authentication(&pki.ca_pem(), &front_proxy)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "publishing extension-apiserver-authentication: {}",
                e.message
            )
        })?;
    server
        .ensure_config_map("kube-system", ferry_podnet::CONFIG_MAP, &network.to_data())
        .await
        .map_err(|e| anyhow::anyhow!("publishing the pod network settings: {}", e.message))?;
    if !args.disable_local_storage {
        server
            .ensure_local_storage()
            .await
            .map_err(|e| anyhow::anyhow!("creating the local storage class: {}", e.message))?;
    }
    let dns = if args.disable_dns {
        None
    } else {
        start_dns(&server, &args).await
    };
    let kubeconfig = data_dir.join("kubeconfig.yaml");
    write_private(
        &kubeconfig,
        &embedded_kubeconfig(&url, &pki.ca_pem(), "ferry-admin", &pki.admin),
    )
    .context("writing the kubeconfig")?;
    let tls = pki.server_tls().context("TLS configuration")?;

    println!(
        "ferry: API server listening on {url} (ready in {} ms)",
        started.elapsed().as_millis()
    );
    println!(
        "ferry: join token (for `ferry agent --token`) in {}",
        join_token_file.display()
    );
    println!("export KUBECONFIG={}", kubeconfig.display());
    std::io::stdout().flush()?;

    // The components connect like any client; the listener is bound, so they can start now.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let stopping = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let mut components = tokio::task::JoinSet::new();
    {
        // `ferry snapshot save` on <data-dir>/snapshot.sock, and scheduled snapshots.
        let backend = crate::snapshot::backend(embedded.clone(), &args.etcd_endpoints).await?;
        let (flags, dir, shutdown) = (args.snapshots.clone(), data_dir.clone(), stopping());
        components.spawn(async move {
            if let Err(error) = crate::snapshot::serve(backend, flags, dir, shutdown).await {
                tracing::error!(error = %format!("{error:#}"), "snapshots stopped");
            }
        });
    }
    {
        // This server's address in the `kubernetes` endpoints, taken out on shutdown.
        let shutdown = stopping();
        components.spawn(async move { endpoint_reconciler.run(shutdown).await });
    }
    if let Some(dns) = dns {
        let client = crate::components::in_process_client(&kubeconfig, "coredns").await?;
        let shutdown = stopping();
        components.spawn(async move {
            dns.serve(client, shutdown).await;
        });
    }
    if !args.disable_controllers || !args.disable_scheduler {
        let identity = crate::components::server_identity(&data_dir);
        if !args.disable_controllers {
            // The manager runs as upstream's: as system:kube-controller-manager, each controller
            // with its own service account's token. Without service-account credentials every
            // controller shares one client, which then needs a master's permissions.
            let manager_kubeconfig = if args.use_service_account_credentials {
                let path = data_dir.join("controller-manager.kubeconfig");
                let user = "system:kube-controller-manager";
                let cert = pki
                    .client_cert(user, None)
                    .context("the controller manager's client certificate")?;
                write_private(
                    &path,
                    &embedded_kubeconfig(&url, &pki.ca_pem(), user, &cert),
                )
                .context("writing the controller manager's kubeconfig")?;
                path
            } else {
                kubeconfig.clone()
            };
            let clients = crate::components::controller_clients(
                &manager_kubeconfig,
                args.use_service_account_credentials,
            )
            .await?;
            let (identity, mut flags, shutdown) =
                (identity.clone(), args.controllers.clone(), stopping());
            // Approved node certificates are signed by the cluster CA.
            if flags.service_account_private_key_file.is_none() {
                flags.service_account_private_key_file = Some(
                    args.service_account_signing_key_file
                        .clone()
                        .unwrap_or_else(|| data_dir.join("tls/service-account.key")),
                );
            }
            if flags.cluster_signing_cert_file.is_none() && flags.cluster_signing_key_file.is_none()
            {
                flags.cluster_signing_cert_file = Some(data_dir.join("tls/ca.crt"));
                flags.cluster_signing_key_file = Some(data_dir.join("tls/ca.key"));
            }
            let root_ca = Some(pki.ca_pem());
            let serving = crate::components::secure_serving(
                args.controller_manager_bind_address,
                args.controller_manager_secure_port,
                None,
            );
            components.spawn(async move {
                if let Err(error) = crate::components::run_controllers(
                    clients,
                    &flags,
                    root_ca,
                    Some(identity),
                    serving,
                    shutdown,
                )
                .await
                {
                    tracing::error!(error = %format!("{error:#}"), "controller manager stopped");
                }
            });
        }
        if !args.disable_scheduler {
            // The scheduler runs as upstream's does: as system:kube-scheduler, with the
            // permissions of the default policy's role of that name (not as a master).
            let scheduler_kubeconfig = data_dir.join("scheduler.kubeconfig");
            let cert = pki
                .client_cert("system:kube-scheduler", None)
                .context("the scheduler's client certificate")?;
            write_private(
                &scheduler_kubeconfig,
                &embedded_kubeconfig(&url, &pki.ca_pem(), "system:kube-scheduler", &cert),
            )
            .context("writing the scheduler's kubeconfig")?;
            let client = crate::components::in_process_client(
                &scheduler_kubeconfig,
                crate::components::SCHEDULER,
            )
            .await?;
            let (identity, shutdown) = (identity.clone(), stopping());
            let config = args.scheduler_config.clone();
            let serving = crate::components::secure_serving(
                args.scheduler_bind_address,
                args.scheduler_secure_port,
                None,
            );
            components.spawn(async move {
                if let Err(error) = crate::components::run_scheduler(
                    client,
                    config.as_deref(),
                    Some(identity),
                    serving,
                    shutdown,
                )
                .await
                {
                    tracing::error!(error = %format!("{error:#}"), "scheduler stopped");
                }
            });
        }
    }
    let mut grace = std::time::Duration::from_secs(2);
    if !args.disable_agent {
        if crate::agent::is_root() {
            let mut agent_args = args.agent_args.clone();
            let registries = args
                .registries
                .clone()
                .unwrap_or_else(|| data_dir.join(crate::agent::REGISTRIES_FILE));
            if args.registries.is_some() || registries.exists() {
                agent_args.push(format!("--registries={}", registries.display()));
            }
            let agent = local_agent(&data_dir, &url, &pki, &agent_args)?;
            let shutdown = stopping();
            components.spawn(async move {
                if let Err(error) = crate::agent::run(agent, shutdown).await {
                    tracing::error!(error = %format!("{error:#}"), "the local agent stopped");
                }
            });
            // The agent stops its containerd before the server goes.
            grace = std::time::Duration::from_secs(15);
        } else {
            tracing::warn!("not root: no agent for the local node (pods need a `ferry agent` run as root; --disable-agent silences this)");
        }
    }
    let shutdown = async move {
        crate::components::shutdown_signal().await;
        let _ = stop.send(true);
        // Give the components a moment to release their leases while the API still serves.
        let _ = tokio::time::timeout(grace, async {
            while components.join_next().await.is_some() {}
        })
        .await;
    };
    ferry_apiserver::serve(server, listener, tls, shutdown).await?;
    if let Some(store) = embedded {
        store.close();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser as _;

    use super::{parse_duration, DurationError};

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: super::Args,
    }

    #[test]
    fn journeys_are_on_unless_switched_off() {
        let journeys = |flags: &[&str]| {
            Cli::try_parse_from(std::iter::once("server").chain(flags.iter().copied()))
                .map(|cli| cli.args.journeys)
        };
        assert!(journeys(&[]).expect("no flag"));
        assert!(!journeys(&["--journeys=false"]).expect("off"));
        assert!(journeys(&["--journeys", "true"]).expect("on"));
        assert!(journeys(&["--journeys=maybe"]).is_err());
    }

    #[test]
    fn flag_durations() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration(" 1.5 "), Ok(Duration::from_millis(1500)));
        assert_eq!(
            parse_duration("-1"),
            Err(DurationError::Seconds("-1".into()))
        );
        let syntax = parse_duration("5 minutes").expect_err("not a duration");
        assert_eq!(
            syntax.to_string(),
            "invalid duration \"5 minutes\": use a Go duration such as 300ms, 5s, 1h30m"
        );
    }
}
