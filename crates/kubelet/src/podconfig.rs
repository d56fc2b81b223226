//! From a pod to the CRI requests that run it: [`sandbox_config`] builds the
//! `RunPodSandbox` config and [`container_config`] the `CreateContainer` config for one container,
//! as upstream's kubelet does in `kuberuntime_sandbox.go`, `kuberuntime_container.go`,
//! `kuberuntime_container_linux.go`, `kubelet_pods.go` (environment, mounts) and
//! `network/dns/dns.go`.
//!
//! Both are pure: everything the kubelet would look up (configMaps, secrets, the node's
//! resolv.conf and allocatable, the host paths of prepared volumes, the image's user) is passed
//! in a context struct, so the pod worker does the I/O and these functions are tested by tables.
//!
//! Deliberate differences from upstream, each because of this machine or this project's scope:
//! - `oom_score_adj` is upstream's value clamped at 0: root lacks `CAP_SYS_RESOURCE` here
//!   (docs/RUNTIME.md), so the negative values upstream gives Guaranteed pods (-997) and
//!   node-critical pods cannot be applied; positive ones (BestEffort 1000, Burstable 2..999) can.
//! - No user namespaces, AppArmor, SELinux labels, devices, hugepages or swap settings.
//! - Port mappings carry only ports with a `hostPort` (upstream passes every container port and
//!   the runtime skips those without one).
//! - The environment is returned in declaration order (envFrom keys, then `env`), where upstream
//!   returns it in Go map order; no service-link variables (there are no Services yet).
//! - subPath is a plain join of the volume's host path and the sub path (upstream bind-mounts it
//!   safely through `/proc/self/fd`); `..` and absolute sub paths are rejected as upstream does.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, SeccompProfile};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use crate::downward::{format_map, split_subscript, ResourceValueError};
use crate::quantity::{Quantity, QuantityError};
use crate::runtime::v1;
use crate::status::{pod_qos_class, QosClass};

/// Pod label the kubelet adds to sandboxes and containers: the pod's name.
pub const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
/// Pod label: the pod's namespace.
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
/// Pod label: the pod's UID.
pub const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";
/// Container label: the container's name.
pub const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";
/// Container annotation: the restart count the container was created with.
pub const CONTAINER_RESTART_COUNT_ANNOTATION: &str = "io.kubernetes.container.restartCount";
/// Container annotation: the container's hash (see [`container_hash`]).
pub const CONTAINER_HASH_ANNOTATION: &str = "io.kubernetes.container.hash";
/// Container annotation: `terminationMessagePath`.
pub const TERMINATION_MESSAGE_PATH_ANNOTATION: &str =
    "io.kubernetes.container.terminationMessagePath";
/// Container annotation: `terminationMessagePolicy`.
pub const TERMINATION_MESSAGE_POLICY_ANNOTATION: &str =
    "io.kubernetes.container.terminationMessagePolicy";
/// Container annotation: the preStop handler as JSON.
pub const PRE_STOP_HANDLER_ANNOTATION: &str = "io.kubernetes.container.preStopHandler";
/// Container annotation: the container's ports as JSON.
pub const CONTAINER_PORTS_ANNOTATION: &str = "io.kubernetes.container.ports";
/// Container annotation: `spec.terminationGracePeriodSeconds`.
pub const POD_TERMINATION_GRACE_PERIOD_ANNOTATION: &str =
    "io.kubernetes.pod.terminationGracePeriod";
/// Container annotation: `metadata.deletionGracePeriodSeconds`.
pub const POD_DELETION_GRACE_PERIOD_ANNOTATION: &str = "io.kubernetes.pod.deletionGracePeriod";

/// Upstream's `defaultDNSOptions` for ClusterFirst pods.
const CLUSTER_FIRST_DNS_OPTIONS: &[&str] = &["ndots:5"];
/// `validation.MaxDNSNameservers`.
const MAX_DNS_NAMESERVERS: usize = 3;
/// `validation.MaxDNSSearchPaths`.
const MAX_DNS_SEARCH_PATHS: usize = 32;
/// `validation.MaxDNSSearchListChars`.
const MAX_DNS_SEARCH_LIST_CHARS: usize = 2048;
/// A hostname is a DNS label.
const MAX_HOSTNAME_LEN: usize = 63;
/// `setHostnameAsFQDN`: the kernel's hostname limit.
const MAX_FQDN_LEN: usize = 64;
/// CFS period, microseconds (upstream `quotaPeriod`).
pub const CPU_PERIOD_US: i64 = 100_000;
/// Minimum CFS quota, microseconds (upstream `minQuotaPeriod`).
const MIN_CPU_QUOTA_US: i64 = 1000;
/// cgroup v1 `cpu.shares` bounds (upstream `MinShares`, `MaxShares`).
const MIN_SHARES: i64 = 2;
const MAX_SHARES: i64 = 262_144;

/// Paths a container's `/proc` masks by default (upstream `defaultMaskedPaths`).
const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
/// Paths mounted read-only by default (upstream `defaultReadonlyPaths`).
const DEFAULT_READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Why a sandbox or container config cannot be built. For container configs the message is what
/// upstream puts in the `CreateContainerConfigError` waiting state and the `Failed` event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A configMap referenced by `envFrom` or `configMapKeyRef` (not optional) does not exist.
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    /// A `configMapKeyRef` key (not optional) is missing from the configMap.
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKeyNotFound {
        /// The key.
        key: String,
        /// The pod's namespace.
        namespace: String,
        /// The configMap's name.
        name: String,
    },
    /// A secret referenced by `envFrom` or `secretKeyRef` (not optional) does not exist.
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    /// A `secretKeyRef` key (not optional) is missing from the secret.
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKeyNotFound {
        /// The key.
        key: String,
        /// The pod's namespace.
        namespace: String,
        /// The secret's name.
        name: String,
    },
    /// A `fieldRef` the kubelet cannot resolve; the message is upstream's.
    #[error("{0}")]
    FieldRef(String),
    /// A `resourceFieldRef` naming an unsupported resource.
    #[error("unsupported container resource : {0}")]
    UnsupportedResource(String),
    /// A quantity in the pod that does not parse.
    #[error("invalid quantity {value:?}: {source}")]
    Quantity {
        /// The quantity as written.
        value: String,
        /// Why it does not parse.
        source: QuantityError,
    },
    /// A volumeMount names a volume the context has no host path for.
    #[error("cannot find volume \"{volume}\" to mount into container \"{container}\"")]
    VolumeNotFound {
        /// The volume's name.
        volume: String,
        /// The container's name.
        container: String,
    },
    /// A subPath (or expanded subPathExpr) with a `..` element.
    #[error("unable to provision SubPath `{0}`: must not contain '..'")]
    SubPathBacksteps(String),
    /// An absolute subPath.
    #[error("error SubPath `{0}` must not be an absolute path")]
    SubPathAbsolute(String),
    /// A subPathExpr referencing variables the container does not define.
    #[error("missing value for {0}")]
    SubPathExprMissing(String),
    /// Bidirectional mount propagation asked for by an unprivileged container.
    #[error("Bidirectional mount propagation is available only to privileged containers")]
    BidirectionalUnprivileged,
    /// A Localhost seccomp profile without `localhostProfile`.
    #[error("localhostProfile must be set if seccompProfile type is Localhost.")]
    SeccompLocalhostProfileMissing,
    /// `runAsNonRoot` cannot be satisfied; the message is upstream's.
    #[error("{0}")]
    RunAsNonRoot(String),
    /// `setHostnameAsFQDN` with a name longer than the kernel allows.
    #[error(
        "failed to construct FQDN from pod hostname and cluster domain, FQDN {fqdn} is too long (64 characters is the max, {len} characters requested)"
    )]
    FqdnTooLong {
        /// The FQDN.
        fqdn: String,
        /// Its length.
        len: usize,
    },
}

/// Node facts and settings the sandbox config needs besides the pod.
#[derive(Clone, Debug, Default)]
pub struct SandboxContext {
    /// How many sandboxes this pod had before (0 for the first).
    pub attempt: u32,
    /// Root of the pod log directories (upstream `/var/log/pods`; under the agent's data dir here).
    pub pod_logs_root: String,
    /// Root of the pod cgroups in cgroupfs form, e.g. `/kubepods`.
    pub cgroup_root: String,
    /// The cluster domain, e.g. `cluster.local`.
    pub cluster_domain: String,
    /// The cluster DNS servers (kubelet `--cluster-dns`); empty falls back to the node's DNS.
    pub cluster_dns: Vec<String>,
    /// The contents of the resolv.conf the node's pods inherit (kubelet `--resolv-conf`); `None`
    /// for `--resolv-conf=""` (then pods get a local-only resolver, as upstream).
    pub host_resolv_conf: Option<String>,
    /// The node's IPs (used only when there is no resolv.conf).
    pub node_ips: Vec<String>,
}

/// Where a prepared volume is on the host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeHostPath {
    /// The host path bind-mounted into containers.
    pub host_path: String,
    /// The volume is read-only whatever the mount says (secret, configMap, downwardAPI, ...).
    pub read_only: bool,
}

/// Facts and looked-up objects the container config needs besides the pod and container.
#[derive(Clone, Debug, Default)]
pub struct ContainerContext {
    /// How many times this container was restarted (0 for the first); the CRI attempt.
    pub restart_count: u32,
    /// The image reference to run (what PullImage returned); the spec's image is also passed as
    /// `user_specified_image`.
    pub image_ref: String,
    /// The image's numeric user, if it has one (for `runAsNonRoot`).
    pub image_uid: Option<i64>,
    /// The image's user name if it is not numeric.
    pub image_username: String,
    /// The pod's IPs from the sandbox status (for `status.podIP(s)`).
    pub pod_ips: Vec<String>,
    /// The node's IPs (for `status.hostIP(s)`).
    pub host_ips: Vec<String>,
    /// The node's allocatable resources (limits default to them in `resourceFieldRef`).
    pub node_allocatable: BTreeMap<String, ApiQuantity>,
    /// The node's memory capacity in bytes (Burstable `oom_score_adj`).
    pub node_memory_capacity: i64,
    /// The pod namespace's configMaps this container references: name → data.
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    /// The pod namespace's secrets this container references: name → data.
    pub secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// The pod's prepared volumes by volume name.
    pub volumes: BTreeMap<String, VolumeHostPath>,
    /// The pod's managed `/etc/hosts` file, mounted unless the container mounts its own.
    pub etc_hosts_path: Option<String>,
    /// The host file backing the container's `terminationMessagePath`.
    pub termination_message_host_path: Option<String>,
    /// Directory of Localhost seccomp profiles (upstream `<root-dir>/seccomp`).
    pub seccomp_profile_root: String,
}

// ---------------------------------------------------------------------------------------------
// Sandbox

/// The `RunPodSandbox` config for `pod` (upstream `generatePodSandboxConfig`).
pub fn sandbox_config(
    pod: &Pod,
    ctx: &SandboxContext,
) -> Result<v1::PodSandboxConfig, ConfigError> {
    let spec = pod.spec.clone().unwrap_or_default();
    let name = pod_name(pod);
    let namespace = pod_namespace(pod);
    let uid = pod_uid(pod);

    let hostname = if spec.host_network.unwrap_or(false) {
        String::new()
    } else {
        pod_hostname(pod, &spec, &ctx.cluster_domain)?
    };

    let mut labels: std::collections::HashMap<String, String> = pod
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_NAMESPACE_LABEL.into(), namespace.clone());
    labels.insert(POD_UID_LABEL.into(), uid.clone());

    Ok(v1::PodSandboxConfig {
        metadata: Some(v1::PodSandboxMetadata {
            name: name.clone(),
            uid: uid.clone(),
            namespace: namespace.clone(),
            attempt: ctx.attempt,
        }),
        hostname,
        log_directory: pod_log_directory(&ctx.pod_logs_root, &namespace, &name, &uid),
        dns_config: Some(pod_dns_config(pod, &spec, ctx)),
        port_mappings: port_mappings(&spec),
        labels,
        annotations: pod
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        linux: Some(sandbox_linux_config(pod, &spec, ctx)),
        windows: None,
    })
}

/// `<root>/<namespace>_<name>_<uid>` (upstream `BuildPodLogsDirectory`).
pub fn pod_log_directory(root: &str, namespace: &str, name: &str, uid: &str) -> String {
    format!("{}/{namespace}_{name}_{uid}", root.trim_end_matches('/'))
}

/// The pod's cgroup in cgroupfs form: `<root>/pod<uid>` for Guaranteed,
/// `<root>/burstable/pod<uid>`, `<root>/besteffort/pod<uid>` (upstream's `CgroupName` for the
/// cgroupfs driver).
pub fn pod_cgroup_parent(cgroup_root: &str, qos: QosClass, uid: &str) -> String {
    let root = cgroup_root.trim_end_matches('/');
    match qos {
        QosClass::Guaranteed => format!("{root}/pod{uid}"),
        QosClass::Burstable => format!("{root}/burstable/pod{uid}"),
        QosClass::BestEffort => format!("{root}/besteffort/pod{uid}"),
    }
}

fn pod_hostname(pod: &Pod, spec: &PodSpec, cluster_domain: &str) -> Result<String, ConfigError> {
    let mut hostname = match spec.hostname.as_deref() {
        Some(h) if !h.is_empty() => h.to_string(),
        _ => pod_name(pod),
    };
    // Upstream truncatePodHostnameIfNeeded: cut to 63 and drop trailing '-' / '.'.
    if hostname.len() > MAX_HOSTNAME_LEN {
        hostname.truncate(MAX_HOSTNAME_LEN);
        while hostname.ends_with(['-', '.']) {
            hostname.pop();
        }
    }
    let subdomain = spec.subdomain.as_deref().filter(|s| !s.is_empty());
    if let (true, Some(subdomain)) = (spec.set_hostname_as_fqdn.unwrap_or(false), subdomain) {
        let fqdn = format!(
            "{hostname}.{subdomain}.{}.svc.{cluster_domain}",
            pod_namespace(pod)
        );
        if fqdn.len() > MAX_FQDN_LEN {
            let len = fqdn.len();
            return Err(ConfigError::FqdnTooLong { fqdn, len });
        }
        return Ok(fqdn);
    }
    Ok(hostname)
}

/// Container ports with a host port, deduplicated (upstream `MakePortMappings`).
fn port_mappings(spec: &PodSpec) -> Vec<v1::PortMapping> {
    let mut mappings: Vec<v1::PortMapping> = Vec::new();
    for container in &spec.containers {
        for port in container.ports.iter().flatten() {
            let host_port = port.host_port.unwrap_or(0);
            if host_port <= 0 {
                continue;
            }
            let mapping = v1::PortMapping {
                protocol: runtime_protocol(port.protocol.as_deref()) as i32,
                container_port: port.container_port,
                host_port,
                host_ip: port.host_ip.clone().unwrap_or_default(),
            };
            if !mappings.contains(&mapping) {
                mappings.push(mapping);
            }
        }
    }
    mappings
}

fn runtime_protocol(protocol: Option<&str>) -> v1::Protocol {
    match protocol {
        Some("UDP") => v1::Protocol::Udp,
        Some("SCTP") => v1::Protocol::Sctp,
        _ => v1::Protocol::Tcp,
    }
}

fn sandbox_linux_config(
    pod: &Pod,
    spec: &PodSpec,
    ctx: &SandboxContext,
) -> v1::LinuxPodSandboxConfig {
    let psc = spec.security_context.clone().unwrap_or_default();
    let sysctls = psc
        .sysctls
        .iter()
        .flatten()
        .map(|s| (s.name.clone(), s.value.clone()))
        .collect();
    let mut supplemental_groups = Vec::new();
    supplemental_groups.extend(psc.fs_group);
    supplemental_groups.extend(psc.supplemental_groups.iter().flatten().copied());
    let privileged = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .any(|c| {
            c.security_context
                .as_ref()
                .and_then(|sc| sc.privileged)
                .unwrap_or(false)
        });
    v1::LinuxPodSandboxConfig {
        cgroup_parent: pod_cgroup_parent(&ctx.cgroup_root, pod_qos_class(pod), &pod_uid(pod)),
        security_context: Some(v1::LinuxSandboxSecurityContext {
            namespace_options: Some(namespace_options(spec)),
            run_as_user: psc.run_as_user.map(|value| v1::Int64Value { value }),
            run_as_group: psc.run_as_group.map(|value| v1::Int64Value { value }),
            supplemental_groups,
            privileged,
            // Upstream always gives the sandbox (pause) runtime/default (kubernetes#84623).
            seccomp: Some(v1::SecurityProfile {
                profile_type: v1::security_profile::ProfileType::RuntimeDefault as i32,
                localhost_ref: String::new(),
            }),
            ..Default::default()
        }),
        sysctls,
        ..Default::default()
    }
}

/// Upstream `NamespacesForPod`: PID per container unless `shareProcessNamespace` (pod) or
/// `hostPID` (node); network and IPC per pod unless `hostNetwork` / `hostIPC`. The CONTAINER
/// PID mode is set explicitly because containerd 1.6 needs it (docs/RUNTIME.md).
pub fn namespace_options(spec: &PodSpec) -> v1::NamespaceOption {
    let pid = if spec.host_pid.unwrap_or(false) {
        v1::NamespaceMode::Node
    } else if spec.share_process_namespace.unwrap_or(false) {
        v1::NamespaceMode::Pod
    } else {
        v1::NamespaceMode::Container
    };
    let node_or_pod = |host: Option<bool>| {
        if host.unwrap_or(false) {
            v1::NamespaceMode::Node
        } else {
            v1::NamespaceMode::Pod
        }
    };
    v1::NamespaceOption {
        network: node_or_pod(spec.host_network) as i32,
        pid: pid as i32,
        ipc: node_or_pod(spec.host_ipc) as i32,
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------
// DNS

/// The pod's resolver config (upstream `Configurer.GetPodDNS`).
fn pod_dns_config(pod: &Pod, spec: &PodSpec, ctx: &SandboxContext) -> v1::DnsConfig {
    let mut config = match &ctx.host_resolv_conf {
        Some(contents) => parse_resolv_conf(contents),
        None => v1::DnsConfig::default(),
    };
    let host_network = spec.host_network.unwrap_or(false);
    enum DnsType {
        None,
        Cluster,
        Host,
    }
    let dns_type = match spec.dns_policy.as_deref() {
        Some("None") => DnsType::None,
        Some("ClusterFirstWithHostNet") => DnsType::Cluster,
        Some("Default") => DnsType::Host,
        // ClusterFirst, the default; host-network pods fall back to the node's DNS.
        _ if host_network => DnsType::Host,
        _ => DnsType::Cluster,
    };
    let host = |mut config: v1::DnsConfig| {
        if ctx.host_resolv_conf.is_none() {
            // `--resolv-conf=""`: resolve on the local machine only, as upstream.
            config.servers = ctx
                .node_ips
                .iter()
                .map(|ip| if ip.contains(':') { "::1" } else { "127.0.0.1" }.to_string())
                .collect();
            if config.servers.is_empty() {
                config.servers.push("127.0.0.1".into());
            }
            config.searches = vec![".".into()];
        }
        config
    };
    config = match dns_type {
        DnsType::None => v1::DnsConfig::default(),
        DnsType::Cluster if !ctx.cluster_dns.is_empty() => {
            let mut searches = Vec::new();
            if !ctx.cluster_domain.is_empty() {
                let domain = &ctx.cluster_domain;
                searches.push(format!("{}.svc.{domain}", pod_namespace(pod)));
                searches.push(format!("svc.{domain}"));
                searches.push(domain.clone());
            }
            searches.extend(config.searches);
            v1::DnsConfig {
                servers: ctx.cluster_dns.clone(),
                searches: omit_duplicates(searches),
                options: CLUSTER_FIRST_DNS_OPTIONS
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            }
        }
        DnsType::Cluster | DnsType::Host => host(config),
    };
    if let Some(pod_dns) = &spec.dns_config {
        let mut servers = std::mem::take(&mut config.servers);
        servers.extend(pod_dns.nameservers.iter().flatten().cloned());
        config.servers = omit_duplicates(servers);
        let mut searches = std::mem::take(&mut config.searches);
        searches.extend(pod_dns.searches.iter().flatten().cloned());
        config.searches = omit_duplicates(searches);
        let options: Vec<(String, Option<String>)> = pod_dns
            .options
            .iter()
            .flatten()
            .map(|o| (o.name.clone().unwrap_or_default(), o.value.clone()))
            .collect();
        config.options = merge_dns_options(&config.options, &options);
    }
    fit_dns_limits(config)
}

/// Nameservers, searches and options from resolv.conf contents (upstream `parseResolvConf`).
pub fn parse_resolv_conf(contents: &str) -> v1::DnsConfig {
    let mut config = v1::DnsConfig::default();
    for line in contents.lines() {
        if line.starts_with(['#', ';']) {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.first() {
            Some(&"nameserver") => {
                if let Some(server) = fields.get(1) {
                    config.servers.push(server.to_string());
                }
            }
            Some(&"search") => {
                // The last search line wins; "a." and "a" are the same domain.
                config.searches = fields[1..]
                    .iter()
                    .filter(|s| **s != ".")
                    .map(|s| s.trim_end_matches('.').to_string())
                    .collect();
            }
            Some(&"options") => {
                let parsed: Vec<(String, Option<String>)> = fields[1..]
                    .iter()
                    .map(|o| match o.split_once(':') {
                        Some((name, value)) => (name.to_string(), Some(value.to_string())),
                        None => (o.to_string(), None),
                    })
                    .collect();
                config.options = merge_dns_options(&config.options, &parsed);
            }
            _ => {}
        }
    }
    config
}

/// Merges options by name, later ones winning (upstream `mergeDNSOptions`; kept in first-seen
/// order where upstream's comes from a Go map).
fn merge_dns_options(existing: &[String], extra: &[(String, Option<String>)]) -> Vec<String> {
    let mut merged: Vec<(String, String)> = Vec::new();
    let mut set = |name: &str, value: &str| {
        if let Some(entry) = merged.iter_mut().find(|(n, _)| n == name) {
            entry.1 = value.to_string();
        } else {
            merged.push((name.to_string(), value.to_string()));
        }
    };
    for option in existing {
        match option.split_once(':') {
            Some((name, value)) => set(name, value),
            None => set(option, ""),
        }
    }
    for (name, value) in extra {
        set(name, value.as_deref().unwrap_or(""));
    }
    merged
        .into_iter()
        .map(|(name, value)| {
            if value.is_empty() {
                name
            } else {
                format!("{name}:{value}")
            }
        })
        .collect()
}

fn omit_duplicates(items: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// Upstream `formDNSConfigFitsLimits`: at most 3 nameservers; at most 32 search domains, none
/// over 253 characters, 2048 characters in all.
fn fit_dns_limits(mut config: v1::DnsConfig) -> v1::DnsConfig {
    config.servers.truncate(MAX_DNS_NAMESERVERS);
    config.searches.truncate(MAX_DNS_SEARCH_PATHS);
    config.searches.retain(|s| s.len() <= 253);
    let mut total = config.searches.join(" ").len();
    while total > MAX_DNS_SEARCH_LIST_CHARS {
        match config.searches.pop() {
            Some(last) => total = total.saturating_sub(last.len() + 1),
            None => break,
        }
    }
    config
}

// ---------------------------------------------------------------------------------------------
// Containers

/// The `CreateContainer` config for `container` of `pod` (upstream `generateContainerConfig`).
/// Errors are the pod's `CreateContainerConfigError`s.
pub fn container_config(
    pod: &Pod,
    container: &Container,
    ctx: &ContainerContext,
) -> Result<v1::ContainerConfig, ConfigError> {
    let spec = pod.spec.clone().unwrap_or_default();
    verify_run_as_non_root(pod, container, ctx)?;
    let envs = container_env(pod, container, ctx)?;
    let lookup = |name: &str| {
        envs.iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let command = container
        .command
        .iter()
        .flatten()
        .map(|c| expand(c, &lookup))
        .collect();
    let args = container
        .args
        .iter()
        .flatten()
        .map(|a| expand(a, &lookup))
        .collect();

    let restart_count = ctx.restart_count;
    let mut labels = std::collections::HashMap::new();
    labels.insert(POD_NAME_LABEL.to_string(), pod_name(pod));
    labels.insert(POD_NAMESPACE_LABEL.to_string(), pod_namespace(pod));
    labels.insert(POD_UID_LABEL.to_string(), pod_uid(pod));
    labels.insert(CONTAINER_NAME_LABEL.to_string(), container.name.clone());

    Ok(v1::ContainerConfig {
        metadata: Some(v1::ContainerMetadata {
            name: container.name.clone(),
            attempt: restart_count,
        }),
        image: Some(v1::ImageSpec {
            image: if ctx.image_ref.is_empty() {
                container.image.clone().unwrap_or_default()
            } else {
                ctx.image_ref.clone()
            },
            user_specified_image: container.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command,
        args,
        working_dir: container.working_dir.clone().unwrap_or_default(),
        envs: envs
            .iter()
            .map(|(key, value)| v1::KeyValue {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        mounts: container_mounts(container, &envs, ctx)?,
        labels,
        annotations: container_annotations(pod, container, restart_count),
        log_path: format!("{}/{restart_count}.log", container.name),
        stdin: container.stdin.unwrap_or(false),
        stdin_once: container.stdin_once.unwrap_or(false),
        tty: container.tty.unwrap_or(false),
        linux: Some(v1::LinuxContainerConfig {
            resources: Some(container_resources(pod, container, ctx)?),
            security_context: Some(container_security_context(&spec, container, ctx)?),
        }),
        ..Default::default()
    })
}

fn container_annotations(
    pod: &Pod,
    container: &Container,
    restart_count: u32,
) -> std::collections::HashMap<String, String> {
    let mut annotations = std::collections::HashMap::new();
    annotations.insert(
        CONTAINER_HASH_ANNOTATION.to_string(),
        format!("{:x}", container_hash(container)),
    );
    annotations.insert(
        CONTAINER_RESTART_COUNT_ANNOTATION.to_string(),
        restart_count.to_string(),
    );
    annotations.insert(
        TERMINATION_MESSAGE_PATH_ANNOTATION.to_string(),
        container
            .termination_message_path
            .clone()
            .unwrap_or_default(),
    );
    annotations.insert(
        TERMINATION_MESSAGE_POLICY_ANNOTATION.to_string(),
        container
            .termination_message_policy
            .clone()
            .unwrap_or_default(),
    );
    if let Some(grace) = pod.metadata.deletion_grace_period_seconds {
        annotations.insert(
            POD_DELETION_GRACE_PERIOD_ANNOTATION.to_string(),
            grace.to_string(),
        );
    }
    if let Some(grace) = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
    {
        annotations.insert(
            POD_TERMINATION_GRACE_PERIOD_ANNOTATION.to_string(),
            grace.to_string(),
        );
    }
    if let Some(json) = container
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
        .and_then(|pre_stop| serde_json::to_string(pre_stop).ok())
    {
        annotations.insert(PRE_STOP_HANDLER_ANNOTATION.to_string(), json);
    }
    if let Some(json) = container
        .ports
        .as_ref()
        .filter(|p| !p.is_empty())
        .and_then(|ports| serde_json::to_string(ports).ok())
    {
        annotations.insert(CONTAINER_PORTS_ANNOTATION.to_string(), json);
    }
    annotations
}

/// A hash of the container's spec (FNV-1a 32 over its JSON, as upstream's `HashContainer` uses
/// FNV-32a; not bit-identical to upstream, which hashes a spew dump). The pod worker compares it
/// with the running container's annotation to notice a changed spec.
pub fn container_hash(container: &Container) -> u32 {
    let json = serde_json::to_vec(container).unwrap_or_default();
    let mut hash: u32 = 0x811c_9dc5;
    for byte in json {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

// ---------------------------------------------------------------------------------------------
// Environment

/// The container's environment in upstream's resolution order (`makeEnvironmentVariables`):
/// `envFrom` sources first (with their prefix), then `env` entries in order, each `value`
/// expanded against the variables defined before it, later definitions replacing earlier ones.
pub fn container_env(
    pod: &Pod,
    container: &Container,
    ctx: &ContainerContext,
) -> Result<Vec<(String, String)>, ConfigError> {
    let namespace = pod_namespace(pod);
    let mut env: Vec<(String, String)> = Vec::new();
    fn set(env: &mut Vec<(String, String)>, name: String, value: String) {
        if let Some(entry) = env.iter_mut().find(|(n, _)| *n == name) {
            entry.1 = value;
        } else {
            env.push((name, value));
        }
    }

    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.clone().unwrap_or_default();
        if let Some(cm) = &source.config_map_ref {
            match ctx.config_maps.get(&cm.name) {
                Some(data) => {
                    for (k, v) in data {
                        set(&mut env, format!("{prefix}{k}"), v.clone());
                    }
                }
                None if cm.optional.unwrap_or(false) => {}
                None => return Err(ConfigError::ConfigMapNotFound(cm.name.clone())),
            }
        } else if let Some(secret) = &source.secret_ref {
            match ctx.secrets.get(&secret.name) {
                Some(data) => {
                    for (k, v) in data {
                        set(
                            &mut env,
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(v).into_owned(),
                        );
                    }
                }
                None if secret.optional.unwrap_or(false) => {}
                None => return Err(ConfigError::SecretNotFound(secret.name.clone())),
            }
        }
    }

    for var in container.env.iter().flatten() {
        let value = match (var.value.as_deref(), &var.value_from) {
            (Some(value), _) if !value.is_empty() => {
                let snapshot = env.clone();
                let lookup = |name: &str| {
                    snapshot
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v.clone())
                };
                expand(value, &lookup)
            }
            (_, Some(from)) => {
                if let Some(field) = &from.field_ref {
                    field_ref_value(pod, field.api_version.as_deref(), &field.field_path, ctx)?
                } else if let Some(resource) = &from.resource_field_ref {
                    resource_field_value(
                        container,
                        &resource.resource,
                        resource.divisor.as_ref(),
                        ctx,
                    )?
                } else if let Some(key_ref) = &from.config_map_key_ref {
                    let optional = key_ref.optional.unwrap_or(false);
                    match ctx.config_maps.get(&key_ref.name) {
                        None if optional => continue,
                        None => return Err(ConfigError::ConfigMapNotFound(key_ref.name.clone())),
                        Some(data) => match data.get(&key_ref.key) {
                            Some(v) => v.clone(),
                            None if optional => continue,
                            None => {
                                return Err(ConfigError::ConfigMapKeyNotFound {
                                    key: key_ref.key.clone(),
                                    namespace,
                                    name: key_ref.name.clone(),
                                });
                            }
                        },
                    }
                } else if let Some(key_ref) = &from.secret_key_ref {
                    let optional = key_ref.optional.unwrap_or(false);
                    match ctx.secrets.get(&key_ref.name) {
                        None if optional => continue,
                        None => return Err(ConfigError::SecretNotFound(key_ref.name.clone())),
                        Some(data) => match data.get(&key_ref.key) {
                            Some(v) => String::from_utf8_lossy(v).into_owned(),
                            None if optional => continue,
                            None => {
                                return Err(ConfigError::SecretKeyNotFound {
                                    key: key_ref.key.clone(),
                                    namespace,
                                    name: key_ref.name.clone(),
                                });
                            }
                        },
                    }
                } else {
                    String::new()
                }
            }
            _ => String::new(),
        };
        set(&mut env, var.name.clone(), value);
    }
    Ok(env)
}

/// Upstream's `$(VAR)` expansion (`third_party/forked/golang/expansion`): `$(NAME)` becomes the
/// variable's value, or stays as written when undefined; `$$` is a literal `$`; anything else is
/// copied.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if after.is_empty() {
            // A trailing '$' is literal.
            out.push('$');
            rest = after;
            break;
        }
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('(') {
            match tail.find(')') {
                Some(close) => {
                    let name = &tail[..close];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &tail[close + 1..];
                }
                None => {
                    // Unterminated reference: copied as is.
                    out.push_str("$(");
                    rest = tail;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A `fieldRef` value (upstream `podFieldSelectorRuntimeValue` and
/// `fieldpath.ExtractFieldPathAsString`).
fn field_ref_value(
    pod: &Pod,
    api_version: Option<&str>,
    field_path: &str,
    ctx: &ContainerContext,
) -> Result<String, ConfigError> {
    let version = api_version.unwrap_or("v1");
    if version != "v1" && !version.is_empty() {
        return Err(ConfigError::FieldRef(format!(
            "unsupported pod version: {version}"
        )));
    }
    let spec = pod.spec.clone().unwrap_or_default();
    if let Some((path, key)) = split_subscript(field_path) {
        let map = match path {
            "metadata.annotations" => &pod.metadata.annotations,
            "metadata.labels" => &pod.metadata.labels,
            _ => {
                return Err(ConfigError::FieldRef(format!(
                    "field label not supported: {field_path}"
                )));
            }
        };
        return Ok(map
            .as_ref()
            .and_then(|m| m.get(key))
            .cloned()
            .unwrap_or_default());
    }
    Ok(match field_path {
        "metadata.name" => pod_name(pod),
        "metadata.namespace" => pod_namespace(pod),
        "metadata.uid" => pod_uid(pod),
        "metadata.annotations" => format_map(pod.metadata.annotations.as_ref()),
        "metadata.labels" => format_map(pod.metadata.labels.as_ref()),
        "spec.nodeName" => spec.node_name.unwrap_or_default(),
        "spec.serviceAccountName" => spec.service_account_name.unwrap_or_default(),
        "status.hostIP" => ctx.host_ips.first().cloned().unwrap_or_default(),
        "status.hostIPs" => ctx.host_ips.join(","),
        "status.podIP" => ctx.pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => ctx.pod_ips.join(","),
        // Accepted by the API's field label conversion but not resolvable by the kubelet.
        "spec.restartPolicy" | "spec.schedulerName" | "status.phase" => {
            return Err(ConfigError::FieldRef(format!(
                "unsupported fieldPath: {field_path}"
            )));
        }
        _ => {
            return Err(ConfigError::FieldRef(format!(
                "field label not supported: {field_path}"
            )));
        }
    })
}

fn resource_field_value(
    container: &Container,
    resource: &str,
    divisor: Option<&ApiQuantity>,
    ctx: &ContainerContext,
) -> Result<String, ConfigError> {
    let allocatable = |name: &str| {
        ctx.node_allocatable
            .get(name)
            .map(crate::downward::parse_api_quantity)
            .transpose()
    };
    crate::downward::container_resource_value(container, resource, divisor, &allocatable).map_err(
        |e| match e {
            ResourceValueError::Unsupported(r) => ConfigError::UnsupportedResource(r),
            ResourceValueError::Quantity { value, source } => {
                ConfigError::Quantity { value, source }
            }
        },
    )
}

fn parse_quantity(quantity: &ApiQuantity) -> Result<Quantity, ConfigError> {
    Quantity::from_api(quantity).map_err(|source| ConfigError::Quantity {
        value: quantity.0.clone(),
        source,
    })
}

// ---------------------------------------------------------------------------------------------
// Mounts

fn container_mounts(
    container: &Container,
    envs: &[(String, String)],
    ctx: &ContainerContext,
) -> Result<Vec<v1::Mount>, ConfigError> {
    let privileged = container
        .security_context
        .as_ref()
        .and_then(|sc| sc.privileged)
        .unwrap_or(false);
    let mut mounts = Vec::new();
    let mut mounts_etc_hosts = false;
    for mount in container.volume_mounts.iter().flatten() {
        let volume = ctx
            .volumes
            .get(&mount.name)
            .ok_or_else(|| ConfigError::VolumeNotFound {
                volume: mount.name.clone(),
                container: container.name.clone(),
            })?;
        let mut sub_path = mount.sub_path.clone().unwrap_or_default();
        if let Some(expr) = mount.sub_path_expr.as_deref().filter(|e| !e.is_empty()) {
            // Upstream ExpandContainerVolumeMounts: an undefined or empty variable is an error.
            let missing = std::cell::RefCell::new(std::collections::BTreeSet::new());
            let expanded = expand(expr, &|name| {
                let value = envs
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                if value.is_empty() {
                    missing.borrow_mut().insert(name.to_string());
                }
                Some(value)
            });
            let missing = missing.into_inner();
            if !missing.is_empty() {
                let names: Vec<String> = missing.into_iter().collect();
                return Err(ConfigError::SubPathExprMissing(names.join(", ")));
            }
            sub_path = expanded;
        }
        let mut host_path = volume.host_path.clone();
        if !sub_path.is_empty() {
            if sub_path.starts_with('/') {
                return Err(ConfigError::SubPathAbsolute(sub_path));
            }
            if sub_path.split('/').any(|part| part == "..") {
                return Err(ConfigError::SubPathBacksteps(sub_path));
            }
            host_path = format!("{}/{}", host_path.trim_end_matches('/'), sub_path);
        }
        let propagation = match mount.mount_propagation.as_deref() {
            Some("HostToContainer") => v1::MountPropagation::PropagationHostToContainer,
            Some("Bidirectional") => {
                if !privileged {
                    return Err(ConfigError::BidirectionalUnprivileged);
                }
                v1::MountPropagation::PropagationBidirectional
            }
            _ => v1::MountPropagation::PropagationPrivate,
        };
        if mount.mount_path == "/etc/hosts" {
            mounts_etc_hosts = true;
        }
        mounts.push(v1::Mount {
            container_path: mount.mount_path.clone(),
            host_path,
            readonly: mount.read_only.unwrap_or(false) || volume.read_only,
            propagation: propagation as i32,
            ..Default::default()
        });
    }
    if let Some(hosts) = ctx.etc_hosts_path.as_ref().filter(|_| !mounts_etc_hosts) {
        mounts.push(v1::Mount {
            container_path: "/etc/hosts".into(),
            host_path: hosts.clone(),
            ..Default::default()
        });
    }
    if let Some(host_file) = &ctx.termination_message_host_path {
        let path = container
            .termination_message_path
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/dev/termination-log".into());
        mounts.push(v1::Mount {
            container_path: path,
            host_path: host_file.clone(),
            ..Default::default()
        });
    }
    Ok(mounts)
}

// ---------------------------------------------------------------------------------------------
// Resources and security

/// cgroup v1 `cpu.shares` for a CPU request in millicores (upstream `MilliCPUToShares`).
pub fn milli_cpu_to_shares(milli_cpu: i64) -> i64 {
    if milli_cpu <= 0 {
        return MIN_SHARES;
    }
    (milli_cpu * 1024 / 1000).clamp(MIN_SHARES, MAX_SHARES)
}

/// CFS quota in microseconds for a CPU limit in millicores over `period` (upstream
/// `milliCPUToQuota`); 0 (no quota) when there is no limit.
pub fn milli_cpu_to_quota(milli_cpu: i64, period: i64) -> i64 {
    if milli_cpu <= 0 {
        return 0;
    }
    (milli_cpu * period / 1000).max(MIN_CPU_QUOTA_US)
}

/// Upstream's `GetContainerOOMScoreAdjust`: Guaranteed -997, BestEffort 1000, Burstable
/// `1000 - 1000 * memoryRequest / memoryCapacity` kept within 3..=999. (Node-critical pods also
/// get -997 upstream; there are none here yet.)
pub fn container_oom_score_adj(pod: &Pod, container: &Container, memory_capacity: i64) -> i64 {
    match pod_qos_class(pod) {
        QosClass::Guaranteed => -997,
        QosClass::BestEffort => 1000,
        QosClass::Burstable => {
            let request = container
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("memory"))
                .and_then(|q| Quantity::from_api(q).ok())
                .map(|q| q.value())
                .unwrap_or(0);
            if memory_capacity <= 0 {
                return 999;
            }
            let adj = 1000 - (i128::from(request) * 1000 / i128::from(memory_capacity)) as i64;
            if adj < 3 {
                3
            } else if adj == 1000 {
                999
            } else {
                adj
            }
        }
    }
}

fn container_resources(
    pod: &Pod,
    container: &Container,
    ctx: &ContainerContext,
) -> Result<v1::LinuxContainerResources, ConfigError> {
    let resources = container.resources.clone().unwrap_or_default();
    let get = |list: &Option<BTreeMap<String, ApiQuantity>>, name: &str| {
        list.as_ref()
            .and_then(|l| l.get(name))
            .map(parse_quantity)
            .transpose()
    };
    let cpu_request = get(&resources.requests, "cpu")?;
    let cpu_limit = get(&resources.limits, "cpu")?.unwrap_or(Quantity::ZERO);
    let memory_limit = get(&resources.limits, "memory")?.unwrap_or(Quantity::ZERO);
    // A missing request defaults to the limit (the API server defaults it too).
    let shares = milli_cpu_to_shares(cpu_request.unwrap_or(cpu_limit).milli_value());
    Ok(v1::LinuxContainerResources {
        cpu_period: CPU_PERIOD_US,
        cpu_quota: milli_cpu_to_quota(cpu_limit.milli_value(), CPU_PERIOD_US),
        cpu_shares: shares,
        memory_limit_in_bytes: memory_limit.value(),
        // Upstream's value clamped at 0: without CAP_SYS_RESOURCE (docs/RUNTIME.md) runc cannot
        // lower oom_score_adj below containerd's own 0, so Guaranteed gets 0 instead of -997.
        oom_score_adj: container_oom_score_adj(pod, container, ctx.node_memory_capacity).max(0),
        ..Default::default()
    })
}

fn seccomp_profile(
    profile: Option<&SeccompProfile>,
    profile_root: &str,
) -> Result<v1::SecurityProfile, ConfigError> {
    use v1::security_profile::ProfileType;
    let unconfined = v1::SecurityProfile {
        profile_type: ProfileType::Unconfined as i32,
        localhost_ref: String::new(),
    };
    let Some(profile) = profile else {
        // kubelet `--seccomp-default` is off: unconfined unless the pod asks.
        return Ok(unconfined);
    };
    match profile.type_.as_str() {
        "RuntimeDefault" => Ok(v1::SecurityProfile {
            profile_type: ProfileType::RuntimeDefault as i32,
            localhost_ref: String::new(),
        }),
        "Localhost" => match profile.localhost_profile.as_deref() {
            Some(name) if !name.is_empty() => Ok(v1::SecurityProfile {
                profile_type: ProfileType::Localhost as i32,
                localhost_ref: format!("{}/{name}", profile_root.trim_end_matches('/')),
            }),
            _ => Err(ConfigError::SeccompLocalhostProfileMissing),
        },
        _ => Ok(unconfined),
    }
}

/// Upstream `determineEffectiveSecurityContext`: the container's security context with the pod's
/// user, group and non-root settings as defaults, plus the pod's namespaces and groups.
fn container_security_context(
    spec: &PodSpec,
    container: &Container,
    ctx: &ContainerContext,
) -> Result<v1::LinuxContainerSecurityContext, ConfigError> {
    let psc = spec.security_context.clone().unwrap_or_default();
    let sc = container.security_context.clone().unwrap_or_default();
    let run_as_user = sc.run_as_user.or(psc.run_as_user);
    let run_as_group = sc.run_as_group.or(psc.run_as_group);
    let seccomp = seccomp_profile(
        sc.seccomp_profile.as_ref().or(psc.seccomp_profile.as_ref()),
        &ctx.seccomp_profile_root,
    )?;
    let mut supplemental_groups = Vec::new();
    supplemental_groups.extend(psc.fs_group);
    supplemental_groups.extend(psc.supplemental_groups.iter().flatten().copied());
    let unmasked = sc.proc_mount.as_deref() == Some("Unmasked");
    let (masked_paths, readonly_paths) = if unmasked {
        (Vec::new(), Vec::new())
    } else {
        (
            DEFAULT_MASKED_PATHS.iter().map(|s| s.to_string()).collect(),
            DEFAULT_READONLY_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        )
    };
    let capabilities = sc.capabilities.as_ref().map(|c| v1::Capability {
        add_capabilities: c.add.clone().unwrap_or_default(),
        drop_capabilities: c.drop.clone().unwrap_or_default(),
        ..Default::default()
    });
    Ok(v1::LinuxContainerSecurityContext {
        capabilities,
        privileged: sc.privileged.unwrap_or(false),
        namespace_options: Some(namespace_options(spec)),
        // Upstream getImageUser: an image without a user runs as root, and says so explicitly.
        run_as_user: match (run_as_user, ctx.image_uid, ctx.image_username.is_empty()) {
            (Some(value), _, _) | (None, Some(value), _) => Some(v1::Int64Value { value }),
            (None, None, true) => Some(v1::Int64Value { value: 0 }),
            (None, None, false) => None,
        },
        run_as_group: run_as_group.map(|value| v1::Int64Value { value }),
        run_as_username: if run_as_user.is_none() && ctx.image_uid.is_none() {
            ctx.image_username.clone()
        } else {
            String::new()
        },
        readonly_rootfs: sc.read_only_root_filesystem.unwrap_or(false),
        supplemental_groups,
        no_new_privs: sc.allow_privilege_escalation == Some(false),
        masked_paths,
        readonly_paths,
        seccomp: Some(seccomp),
        ..Default::default()
    })
}

/// Upstream `verifyRunAsNonRoot`.
fn verify_run_as_non_root(
    pod: &Pod,
    container: &Container,
    ctx: &ContainerContext,
) -> Result<(), ConfigError> {
    let spec = pod.spec.clone().unwrap_or_default();
    let psc = spec.security_context.unwrap_or_default();
    let sc = container.security_context.clone().unwrap_or_default();
    if !sc.run_as_non_root.or(psc.run_as_non_root).unwrap_or(false) {
        return Ok(());
    }
    let pod_ref = format!("{}_{}({})", pod_name(pod), pod_namespace(pod), pod_uid(pod));
    let name = &container.name;
    if let Some(user) = sc.run_as_user.or(psc.run_as_user) {
        if user == 0 {
            return Err(ConfigError::RunAsNonRoot(format!(
                "container's runAsUser breaks non-root policy (pod: \"{pod_ref}\", container: {name})"
            )));
        }
        return Ok(());
    }
    match ctx.image_uid {
        Some(0) => Err(ConfigError::RunAsNonRoot(format!(
            "container has runAsNonRoot and image will run as root (pod: \"{pod_ref}\", container: {name})"
        ))),
        Some(_) => Ok(()),
        None if !ctx.image_username.is_empty() => Err(ConfigError::RunAsNonRoot(format!(
            "container has runAsNonRoot and image has non-numeric user ({}), cannot verify user is non-root (pod: \"{pod_ref}\", container: {name})",
            ctx.image_username
        ))),
        // No user in the image: it runs as root.
        None => Err(ConfigError::RunAsNonRoot(format!(
            "container has runAsNonRoot and image will run as root (pod: \"{pod_ref}\", container: {name})"
        ))),
    }
}

fn pod_name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

fn pod_namespace(pod: &Pod) -> String {
    pod.metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into())
}

fn pod_uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        pod_with(json!({}), spec)
    }

    fn pod_with(metadata: serde_json::Value, spec: serde_json::Value) -> Pod {
        let mut meta = json!({"name": "web", "namespace": "ns", "uid": "u1"});
        if let (Some(m), Some(extra)) = (meta.as_object_mut(), metadata.as_object()) {
            m.extend(extra.clone());
        }
        serde_json::from_value(json!({"metadata": meta, "spec": spec})).expect("pod")
    }

    fn one(container: serde_json::Value) -> Pod {
        pod(json!({"containers": [container]}))
    }

    fn sandbox_ctx() -> SandboxContext {
        SandboxContext {
            attempt: 0,
            pod_logs_root: "/data/pods".into(),
            cgroup_root: "/kubepods".into(),
            cluster_domain: "cluster.local".into(),
            cluster_dns: vec!["10.43.0.10".into()],
            host_resolv_conf: Some(
                "# host\nnameserver 192.168.1.1\nnameserver 192.168.1.2\nsearch example.com corp.\noptions ndots:2 edns0\n"
                    .into(),
            ),
            node_ips: vec!["192.168.1.10".into()],
        }
    }

    fn container_ctx() -> ContainerContext {
        let mut ctx = ContainerContext {
            image_ref: "sha256:abc".into(),
            image_uid: Some(1000),
            pod_ips: vec!["10.42.0.5".into(), "fd00::5".into()],
            host_ips: vec!["192.168.1.10".into()],
            node_memory_capacity: 8 << 30,
            seccomp_profile_root: "/data/seccomp".into(),
            ..Default::default()
        };
        ctx.node_allocatable
            .insert("cpu".into(), ApiQuantity("4".into()));
        ctx.node_allocatable
            .insert("memory".into(), ApiQuantity("8Gi".into()));
        ctx.config_maps.insert(
            "cfg".into(),
            BTreeMap::from([
                ("A".to_string(), "from-cm".to_string()),
                ("B".to_string(), "b".to_string()),
            ]),
        );
        ctx.secrets.insert(
            "sec".into(),
            BTreeMap::from([("PASSWORD".to_string(), b"hunter2".to_vec())]),
        );
        ctx.volumes.insert(
            "data".into(),
            VolumeHostPath {
                host_path: "/data/pods/u1/volumes/data".into(),
                read_only: false,
            },
        );
        ctx.volumes.insert(
            "conf".into(),
            VolumeHostPath {
                host_path: "/data/pods/u1/volumes/conf".into(),
                read_only: true,
            },
        );
        ctx
    }

    fn sandbox(pod: &Pod) -> v1::PodSandboxConfig {
        sandbox_config(pod, &sandbox_ctx()).expect("sandbox config")
    }

    fn config(pod: &Pod) -> Result<v1::ContainerConfig, ConfigError> {
        let spec = pod.spec.clone().unwrap_or_default();
        container_config(pod, &spec.containers[0], &container_ctx())
    }

    fn env_of(pod: &Pod) -> Result<Vec<(String, String)>, ConfigError> {
        let spec = pod.spec.clone().unwrap_or_default();
        container_env(pod, &spec.containers[0], &container_ctx())
    }

    fn linux_sc(c: &v1::PodSandboxConfig) -> v1::LinuxSandboxSecurityContext {
        c.linux
            .clone()
            .and_then(|l| l.security_context)
            .expect("security context")
    }

    #[test]
    fn sandbox_metadata_labels_logs_and_hostname() {
        let p = pod_with(
            json!({"labels": {"app": "web"}, "annotations": {"note": "x"}}),
            json!({"containers": [{"name": "c", "image": "busybox"}]}),
        );
        let mut ctx = sandbox_ctx();
        ctx.attempt = 2;
        let c = sandbox_config(&p, &ctx).expect("config");
        assert_eq!(
            c.metadata,
            Some(v1::PodSandboxMetadata {
                name: "web".into(),
                uid: "u1".into(),
                namespace: "ns".into(),
                attempt: 2
            })
        );
        assert_eq!(c.hostname, "web");
        assert_eq!(c.log_directory, "/data/pods/ns_web_u1");
        assert_eq!(c.labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(
            c.labels.get(POD_NAME_LABEL).map(String::as_str),
            Some("web")
        );
        assert_eq!(
            c.labels.get(POD_NAMESPACE_LABEL).map(String::as_str),
            Some("ns")
        );
        assert_eq!(c.labels.get(POD_UID_LABEL).map(String::as_str), Some("u1"));
        assert_eq!(c.annotations.get("note").map(String::as_str), Some("x"));
    }

    #[test]
    fn sandbox_hostname() {
        let long = "a".repeat(62) + "-bcd";
        let cases: Vec<(serde_json::Value, Result<&str, ConfigError>)> = vec![
            (json!({"hostname": "h1"}), Ok("h1")),
            (json!({"hostname": "h1", "subdomain": "sub"}), Ok("h1")),
            (
                json!({"hostname": "h1", "subdomain": "sub", "setHostnameAsFQDN": true}),
                Ok("h1.sub.ns.svc.cluster.local"),
            ),
            (json!({"hostname": long}), Ok(&long[..62])),
            (json!({"hostNetwork": true}), Ok("")),
            (
                json!({"hostname": "h".repeat(40), "subdomain": "sub", "setHostnameAsFQDN": true}),
                Err(ConfigError::FqdnTooLong {
                    fqdn: format!("{}.sub.ns.svc.cluster.local", "h".repeat(40)),
                    len: 65,
                }),
            ),
        ];
        for (spec, want) in cases {
            let mut spec = spec;
            spec["containers"] = json!([{"name": "c"}]);
            let got = sandbox_config(&pod(spec.clone()), &sandbox_ctx()).map(|c| c.hostname);
            assert_eq!(got, want.map(String::from), "{spec}");
        }
    }

    #[test]
    fn sandbox_cgroup_parent_per_qos_class() {
        let res = |r: serde_json::Value| json!({"containers": [{"name": "c", "resources": r}]});
        let cases = [
            (res(json!({})), "/kubepods/besteffort/podu1"),
            (
                res(json!({"requests": {"cpu": "100m"}})),
                "/kubepods/burstable/podu1",
            ),
            (
                res(
                    json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}),
                ),
                "/kubepods/podu1",
            ),
        ];
        for (spec, want) in cases {
            let c = sandbox(&pod(spec.clone()));
            assert_eq!(
                c.linux.map(|l| l.cgroup_parent).as_deref(),
                Some(want),
                "{spec}"
            );
        }
    }

    #[test]
    fn namespace_modes() {
        use v1::NamespaceMode::{Container, Node, Pod as PodNs};
        // (spec, network, pid, ipc)
        let cases = [
            (json!({}), PodNs, Container, PodNs),
            (json!({"shareProcessNamespace": true}), PodNs, PodNs, PodNs),
            (
                json!({"hostPID": true, "shareProcessNamespace": true}),
                PodNs,
                Node,
                PodNs,
            ),
            (json!({"hostNetwork": true}), Node, Container, PodNs),
            (json!({"hostIPC": true}), PodNs, Container, Node),
        ];
        for (spec, network, pid, ipc) in cases {
            let mut spec = spec;
            spec["containers"] = json!([{"name": "c"}]);
            let p = pod(spec.clone());
            let want = v1::NamespaceOption {
                network: network as i32,
                pid: pid as i32,
                ipc: ipc as i32,
                ..Default::default()
            };
            assert_eq!(
                linux_sc(&sandbox(&p)).namespace_options,
                Some(want.clone()),
                "{spec}"
            );
            let container = config(&p).expect("config");
            let sc = container
                .linux
                .and_then(|l| l.security_context)
                .expect("sc");
            assert_eq!(sc.namespace_options, Some(want), "{spec}");
        }
    }

    #[test]
    fn sandbox_security_context() {
        let p = pod(json!({
            "securityContext": {
                "runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000,
                "supplementalGroups": [4000, 5000],
                "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]
            },
            "containers": [{"name": "c"}],
            "initContainers": [{"name": "i", "securityContext": {"privileged": true}}]
        }));
        let c = sandbox(&p);
        let sc = linux_sc(&c);
        assert_eq!(sc.run_as_user, Some(v1::Int64Value { value: 1000 }));
        assert_eq!(sc.run_as_group, Some(v1::Int64Value { value: 3000 }));
        assert_eq!(sc.supplemental_groups, vec![2000, 4000, 5000]);
        assert!(sc.privileged);
        assert_eq!(
            sc.seccomp.map(|s| s.profile_type),
            Some(v1::security_profile::ProfileType::RuntimeDefault as i32)
        );
        let sysctls = c.linux.map(|l| l.sysctls).unwrap_or_default();
        assert_eq!(
            sysctls
                .get("net.ipv4.ip_unprivileged_port_start")
                .map(String::as_str),
            Some("0")
        );
        assert!(!linux_sc(&sandbox(&one(json!({"name": "c"})))).privileged);
    }

    #[test]
    fn dns_config_per_policy() {
        let cluster_search = ["ns.svc.cluster.local", "svc.cluster.local", "cluster.local"];
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let host = v1::DnsConfig {
            servers: strings(&["192.168.1.1", "192.168.1.2"]),
            searches: strings(&["example.com", "corp"]),
            options: strings(&["ndots:2", "edns0"]),
        };
        let mut cluster_searches = strings(&cluster_search);
        cluster_searches.extend(strings(&["example.com", "corp"]));
        let cluster = v1::DnsConfig {
            servers: strings(&["10.43.0.10"]),
            searches: cluster_searches.clone(),
            options: strings(&["ndots:5"]),
        };
        let custom = json!({"nameservers": ["1.1.1.1"], "searches": ["my.dns"],
            "options": [{"name": "ndots", "value": "1"}, {"name": "single-request"}]});
        let mut merged_searches = cluster_searches.clone();
        merged_searches.push("my.dns".into());
        // (spec, context tweak, want)
        type Tweak = fn(&mut SandboxContext);
        let no_tweak: Tweak = |_| {};
        let cases: Vec<(serde_json::Value, Tweak, v1::DnsConfig)> = vec![
            (json!({}), no_tweak, cluster.clone()),
            (
                json!({"dnsPolicy": "ClusterFirst"}),
                no_tweak,
                cluster.clone(),
            ),
            (
                json!({"dnsPolicy": "ClusterFirst", "hostNetwork": true}),
                no_tweak,
                host.clone(),
            ),
            (
                json!({"dnsPolicy": "ClusterFirstWithHostNet", "hostNetwork": true}),
                no_tweak,
                cluster.clone(),
            ),
            (json!({"dnsPolicy": "Default"}), no_tweak, host.clone()),
            (
                json!({"dnsPolicy": "None", "dnsConfig": custom.clone()}),
                no_tweak,
                v1::DnsConfig {
                    servers: strings(&["1.1.1.1"]),
                    searches: strings(&["my.dns"]),
                    options: strings(&["ndots:1", "single-request"]),
                },
            ),
            (
                json!({"dnsPolicy": "ClusterFirst", "dnsConfig": custom}),
                no_tweak,
                v1::DnsConfig {
                    servers: strings(&["10.43.0.10", "1.1.1.1"]),
                    searches: merged_searches,
                    options: strings(&["ndots:1", "single-request"]),
                },
            ),
            // No cluster DNS configured: ClusterFirst falls back to the node's.
            (json!({}), |c| c.cluster_dns.clear(), host.clone()),
            // --resolv-conf="": local resolver only.
            (
                json!({"dnsPolicy": "Default"}),
                |c| c.host_resolv_conf = None,
                v1::DnsConfig {
                    servers: strings(&["127.0.0.1"]),
                    searches: strings(&["."]),
                    options: vec![],
                },
            ),
        ];
        for (spec, tweak, want) in cases {
            let mut spec = spec;
            spec["containers"] = json!([{"name": "c"}]);
            let mut ctx = sandbox_ctx();
            tweak(&mut ctx);
            let got = sandbox_config(&pod(spec.clone()), &ctx).expect("config");
            assert_eq!(got.dns_config, Some(want), "{spec}");
        }
    }

    #[test]
    fn dns_limits() {
        let mut ctx = sandbox_ctx();
        ctx.host_resolv_conf = Some(format!(
            "nameserver 1.1.1.1\nnameserver 1.1.1.2\nnameserver 1.1.1.3\nnameserver 1.1.1.4\nsearch {}\n",
            (0..40).map(|i| format!("d{i}.example")).collect::<Vec<_>>().join(" ")
        ));
        let p = pod(json!({"dnsPolicy": "Default", "containers": [{"name": "c"}]}));
        let dns = sandbox_config(&p, &ctx)
            .expect("config")
            .dns_config
            .expect("dns");
        assert_eq!(dns.servers.len(), 3);
        assert_eq!(dns.searches.len(), 32);
    }

    #[test]
    fn port_mappings_only_with_host_port() {
        let p = pod(json!({"containers": [
            {"name": "a", "ports": [
                {"containerPort": 8080, "hostPort": 18080},
                {"containerPort": 9090},
                {"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "127.0.0.1"}
            ]},
            {"name": "b", "ports": [{"containerPort": 8080, "hostPort": 18080}]}
        ]}));
        assert_eq!(
            sandbox(&p).port_mappings,
            vec![
                v1::PortMapping {
                    protocol: v1::Protocol::Tcp as i32,
                    container_port: 8080,
                    host_port: 18080,
                    host_ip: String::new()
                },
                v1::PortMapping {
                    protocol: v1::Protocol::Udp as i32,
                    container_port: 53,
                    host_port: 5353,
                    host_ip: "127.0.0.1".into()
                },
            ]
        );
    }

    #[test]
    fn expansion_like_upstream() {
        let vars = BTreeMap::from([
            ("VAR".to_string(), "value".to_string()),
            ("EMPTY".to_string(), String::new()),
        ]);
        let lookup = |name: &str| vars.get(name).cloned();
        let cases = [
            ("$(VAR)", "value"),
            ("x-$(VAR)-y", "x-value-y"),
            ("$(VAR)$(VAR)", "valuevalue"),
            ("$(UNDEFINED)", "$(UNDEFINED)"),
            ("$(EMPTY)", ""),
            ("$$(VAR)", "$(VAR)"),
            ("$$$(VAR)", "$value"),
            ("$$$$(VAR)", "$$(VAR)"),
            ("$VAR", "$VAR"),
            ("$(VAR", "$(VAR"),
            ("$()", "$()"),
            ("trailing$", "trailing$"),
            ("$", "$"),
            ("no vars", "no vars"),
            ("ünï$(VAR)cødé", "ünïvaluecødé"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &lookup), want, "{input}");
        }
    }

    #[test]
    fn env_resolution() {
        let env = |e: serde_json::Value| {
            env_of(&one(json!({"name": "c", "env": e, "resources": {
                "requests": {"cpu": "250m", "memory": "64Mi"},
                "limits": {"memory": "128Mi"}
            }})))
        };
        let pairs = |v: &[(&str, &str)]| {
            Ok(v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>())
        };
        let field =
            |path: &str| json!([{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": path}}}]);
        let resource = |r: &str, divisor: Option<&str>| {
            let mut sel = json!({"resource": r});
            if let Some(d) = divisor {
                sel["divisor"] = json!(d);
            }
            json!([{"name": "X", "valueFrom": {"resourceFieldRef": sel}}])
        };
        type Case = (
            serde_json::Value,
            Result<Vec<(String, String)>, ConfigError>,
        );
        let cases: Vec<Case> = vec![
            (
                json!([{"name": "A", "value": "1"}, {"name": "B", "value": "$(A)-2"},
                       {"name": "C", "value": "$(D)"}, {"name": "D", "value": "4"},
                       {"name": "A", "value": "$(A)$(A)"}]),
                pairs(&[("A", "11"), ("B", "1-2"), ("C", "$(D)"), ("D", "4")]),
            ),
            (
                json!([{"name": "E", "value": "$$(A)"}]),
                pairs(&[("E", "$(A)")]),
            ),
            (json!([{"name": "E"}]), pairs(&[("E", "")])),
            (field("metadata.name"), pairs(&[("X", "web")])),
            (field("metadata.namespace"), pairs(&[("X", "ns")])),
            (field("metadata.uid"), pairs(&[("X", "u1")])),
            (field("metadata.labels['app']"), pairs(&[("X", "")])),
            (field("spec.nodeName"), pairs(&[("X", "")])),
            (field("status.hostIP"), pairs(&[("X", "192.168.1.10")])),
            (field("status.podIP"), pairs(&[("X", "10.42.0.5")])),
            (field("status.podIPs"), pairs(&[("X", "10.42.0.5,fd00::5")])),
            (
                field("spec.restartPolicy"),
                Err(ConfigError::FieldRef(
                    "unsupported fieldPath: spec.restartPolicy".into(),
                )),
            ),
            (
                field("metadata.bogus"),
                Err(ConfigError::FieldRef(
                    "field label not supported: metadata.bogus".into(),
                )),
            ),
            (resource("requests.cpu", None), pairs(&[("X", "1")])),
            (resource("requests.cpu", Some("1m")), pairs(&[("X", "250")])),
            (resource("limits.cpu", None), pairs(&[("X", "4")])),
            (
                resource("limits.memory", Some("1Mi")),
                pairs(&[("X", "128")]),
            ),
            (
                resource("requests.memory", None),
                pairs(&[("X", "67108864")]),
            ),
            (
                resource("limits.nvidia.com/gpu", None),
                Err(ConfigError::UnsupportedResource(
                    "limits.nvidia.com/gpu".into(),
                )),
            ),
            (
                json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "B"}}}]),
                pairs(&[("X", "b")]),
            ),
            (
                json!([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "PASSWORD"}}}]),
                pairs(&[("X", "hunter2")]),
            ),
            (
                json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]),
                Err(ConfigError::ConfigMapNotFound("nope".into())),
            ),
            (
                json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]),
                Err(ConfigError::ConfigMapKeyNotFound {
                    key: "k".into(),
                    namespace: "ns".into(),
                    name: "cfg".into(),
                }),
            ),
            (
                json!([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]),
                Err(ConfigError::SecretNotFound("nope".into())),
            ),
            (
                json!([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "k"}}}]),
                Err(ConfigError::SecretKeyNotFound {
                    key: "k".into(),
                    namespace: "ns".into(),
                    name: "sec".into(),
                }),
            ),
            (
                json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": true}}},
                       {"name": "Y", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "k", "optional": true}}}]),
                pairs(&[]),
            ),
        ];
        for (spec_env, want) in cases {
            assert_eq!(env(spec_env.clone()), want, "{spec_env}");
        }
    }

    #[test]
    fn config_error_messages_match_upstream() {
        let cases = [
            (
                ConfigError::ConfigMapNotFound("x".into()),
                "configmap \"x\" not found",
            ),
            (
                ConfigError::ConfigMapKeyNotFound {
                    key: "k".into(),
                    namespace: "ns".into(),
                    name: "x".into(),
                },
                "couldn't find key k in ConfigMap ns/x",
            ),
            (
                ConfigError::SecretNotFound("x".into()),
                "secret \"x\" not found",
            ),
            (
                ConfigError::SecretKeyNotFound {
                    key: "k".into(),
                    namespace: "ns".into(),
                    name: "x".into(),
                },
                "couldn't find key k in Secret ns/x",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn env_from_then_env() {
        let p = one(json!({"name": "c",
            "envFrom": [
                {"configMapRef": {"name": "cfg"}},
                {"secretRef": {"name": "sec"}, "prefix": "S_"},
                {"configMapRef": {"name": "missing", "optional": true}}
            ],
            "env": [{"name": "A", "value": "override-$(B)"}]
        }));
        assert_eq!(
            env_of(&p),
            Ok(vec![
                ("A".to_string(), "override-b".to_string()),
                ("B".to_string(), "b".to_string()),
                ("S_PASSWORD".to_string(), "hunter2".to_string()),
            ])
        );
        let missing = one(json!({"name": "c", "envFrom": [{"secretRef": {"name": "gone"}}]}));
        assert_eq!(
            env_of(&missing),
            Err(ConfigError::SecretNotFound("gone".into()))
        );
    }

    #[test]
    fn field_ref_maps_are_formatted_like_upstream() {
        let p = pod_with(
            json!({"labels": {"b": "2", "a": "x\"y"}}),
            json!({"containers": [{"name": "c", "env": [
                {"name": "L", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels"}}},
                {"name": "K", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['b']"}}}
            ]}]}),
        );
        assert_eq!(
            env_of(&p),
            Ok(vec![
                ("L".to_string(), "a=\"x\\\"y\"\nb=\"2\"".to_string()),
                ("K".to_string(), "2".to_string()),
            ])
        );
    }

    #[test]
    fn container_command_args_and_basics() {
        let p = pod_with(
            json!({"deletionGracePeriodSeconds": 5}),
            json!({"terminationGracePeriodSeconds": 30, "containers": [{
                "name": "app", "image": "127.0.0.1:5000/busybox:1",
                "command": ["/bin/sh", "-c"], "args": ["echo $(MSG) $$(MSG) $(NOPE)"],
                "workingDir": "/tmp",
                "env": [{"name": "MSG", "value": "hi"}],
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "ports": [{"containerPort": 80}],
                "lifecycle": {"preStop": {"exec": {"command": ["sleep", "1"]}}}
            }]}),
        );
        let mut ctx = container_ctx();
        ctx.restart_count = 3;
        let spec = p.spec.clone().unwrap_or_default();
        let c = container_config(&p, &spec.containers[0], &ctx).expect("config");
        assert_eq!(
            c.metadata,
            Some(v1::ContainerMetadata {
                name: "app".into(),
                attempt: 3
            })
        );
        let image = c.image.clone().expect("image");
        assert_eq!(image.image, "sha256:abc");
        assert_eq!(image.user_specified_image, "127.0.0.1:5000/busybox:1");
        assert_eq!(c.command, vec!["/bin/sh", "-c"]);
        assert_eq!(c.args, vec!["echo hi $(MSG) $(NOPE)"]);
        assert_eq!(c.working_dir, "/tmp");
        assert_eq!(
            c.envs,
            vec![v1::KeyValue {
                key: "MSG".into(),
                value: "hi".into()
            }]
        );
        assert_eq!(c.log_path, "app/3.log");
        let label = |k: &str| c.labels.get(k).map(String::as_str);
        assert_eq!(label(CONTAINER_NAME_LABEL), Some("app"));
        assert_eq!(label(POD_NAME_LABEL), Some("web"));
        assert_eq!(label(POD_NAMESPACE_LABEL), Some("ns"));
        assert_eq!(label(POD_UID_LABEL), Some("u1"));
        let annotation = |k: &str| c.annotations.get(k).map(String::as_str);
        assert_eq!(annotation(CONTAINER_RESTART_COUNT_ANNOTATION), Some("3"));
        assert_eq!(
            annotation(TERMINATION_MESSAGE_PATH_ANNOTATION),
            Some("/dev/termination-log")
        );
        assert_eq!(
            annotation(TERMINATION_MESSAGE_POLICY_ANNOTATION),
            Some("File")
        );
        assert_eq!(
            annotation(POD_TERMINATION_GRACE_PERIOD_ANNOTATION),
            Some("30")
        );
        assert_eq!(annotation(POD_DELETION_GRACE_PERIOD_ANNOTATION), Some("5"));
        assert_eq!(
            annotation(PRE_STOP_HANDLER_ANNOTATION),
            Some(r#"{"exec":{"command":["sleep","1"]}}"#)
        );
        assert_eq!(
            annotation(CONTAINER_PORTS_ANNOTATION),
            Some(r#"[{"containerPort":80}]"#)
        );
        assert!(annotation(CONTAINER_HASH_ANNOTATION).is_some());
        assert!(c.devices.is_empty());
    }

    #[test]
    fn linux_resources() {
        // (resources, cpu_shares, cpu_quota, memory_limit, oom_score_adj)
        let cases = [
            (json!({}), 2, 0, 0, 1000),
            (json!({"requests": {"cpu": "100m"}}), 102, 0, 0, 999),
            (json!({"requests": {"cpu": "1m"}}), 2, 0, 0, 999),
            (json!({"limits": {"cpu": "500m"}}), 512, 50_000, 0, 999),
            (json!({"limits": {"cpu": "1m"}}), 2, 1000, 0, 999),
            (
                json!({"requests": {"cpu": "1.5", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}),
                1536,
                200_000,
                2 << 30,
                875,
            ),
            // Guaranteed: upstream -997, clamped to 0 here.
            (
                json!({"requests": {"cpu": "1", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "128Mi"}}),
                1024,
                100_000,
                128 << 20,
                0,
            ),
            (json!({"limits": {"memory": "1e3"}}), 2, 0, 1000, 999),
        ];
        for (resources, shares, quota, memory, oom) in cases {
            let p = one(json!({"name": "c", "resources": resources}));
            let r = config(&p)
                .expect("config")
                .linux
                .and_then(|l| l.resources)
                .expect("resources");
            assert_eq!(
                (
                    r.cpu_shares,
                    r.cpu_period,
                    r.cpu_quota,
                    r.memory_limit_in_bytes,
                    r.oom_score_adj
                ),
                (shares, CPU_PERIOD_US, quota, memory, oom),
                "{resources}"
            );
        }
    }

    #[test]
    fn oom_score_adj_upstream_values() {
        let res = |r: serde_json::Value| one(json!({"name": "c", "resources": r}));
        let guaranteed = res(json!({"limits": {"cpu": "1", "memory": "1Gi"},
            "requests": {"cpu": "1", "memory": "1Gi"}}));
        let spec = guaranteed.spec.clone().unwrap_or_default();
        assert_eq!(
            container_oom_score_adj(&guaranteed, &spec.containers[0], 8 << 30),
            -997
        );
        let burstable = res(json!({"requests": {"memory": "8Gi"}}));
        let spec = burstable.spec.clone().unwrap_or_default();
        assert_eq!(
            container_oom_score_adj(&burstable, &spec.containers[0], 8 << 30),
            3
        );
    }

    #[test]
    fn container_security_context_cases() {
        let sc_of = |p: &Pod| {
            config(p)
                .expect("config")
                .linux
                .and_then(|l| l.security_context)
                .expect("sc")
        };
        let c = sc_of(&pod(json!({
            "securityContext": {"runAsUser": 1000, "runAsGroup": 100, "fsGroup": 7, "supplementalGroups": [8]},
            "containers": [{"name": "c", "securityContext": {
                "privileged": true, "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
                "runAsUser": 2000, "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}
            }}]
        })));
        assert!(c.privileged);
        assert!(c.readonly_rootfs);
        assert!(c.no_new_privs);
        assert_eq!(c.run_as_user, Some(v1::Int64Value { value: 2000 }));
        assert_eq!(c.run_as_group, Some(v1::Int64Value { value: 100 }));
        assert_eq!(c.supplemental_groups, vec![7, 8]);
        assert_eq!(
            c.capabilities,
            Some(v1::Capability {
                add_capabilities: vec!["NET_ADMIN".into()],
                drop_capabilities: vec!["ALL".into()],
                ..Default::default()
            })
        );
        assert_eq!(c.masked_paths.len(), DEFAULT_MASKED_PATHS.len());
        assert_eq!(c.readonly_paths.len(), DEFAULT_READONLY_PATHS.len());

        let plain = sc_of(&one(json!({"name": "c"})));
        assert!(!plain.privileged && !plain.no_new_privs && !plain.readonly_rootfs);
        // The image's user when the spec sets none.
        assert_eq!(plain.run_as_user, Some(v1::Int64Value { value: 1000 }));

        use v1::security_profile::ProfileType;
        let seccomp = |spec: serde_json::Value| {
            config(&pod(spec)).map(|c| {
                c.linux
                    .and_then(|l| l.security_context)
                    .and_then(|s| s.seccomp)
                    .map(|s| (s.profile_type, s.localhost_ref))
            })
        };
        let cases = [
            (
                json!({"containers": [{"name": "c"}]}),
                Ok(Some((ProfileType::Unconfined as i32, String::new()))),
            ),
            (
                json!({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}, "containers": [{"name": "c"}]}),
                Ok(Some((ProfileType::RuntimeDefault as i32, String::new()))),
            ),
            (
                json!({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                       "containers": [{"name": "c", "securityContext": {"seccompProfile": {"type": "Unconfined"}}}]}),
                Ok(Some((ProfileType::Unconfined as i32, String::new()))),
            ),
            (
                json!({"containers": [{"name": "c", "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}}]}),
                Ok(Some((
                    ProfileType::Localhost as i32,
                    "/data/seccomp/p.json".to_string(),
                ))),
            ),
            (
                json!({"containers": [{"name": "c", "securityContext": {"seccompProfile": {"type": "Localhost"}}}]}),
                Err(ConfigError::SeccompLocalhostProfileMissing),
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(seccomp(spec.clone()), want, "{spec}");
        }
    }

    #[test]
    fn run_as_non_root() {
        let check = |spec: serde_json::Value, uid: Option<i64>, username: &str| {
            let p = pod(spec);
            let mut ctx = container_ctx();
            ctx.image_uid = uid;
            ctx.image_username = username.into();
            let spec = p.spec.clone().unwrap_or_default();
            container_config(&p, &spec.containers[0], &ctx)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        let non_root =
            json!({"securityContext": {"runAsNonRoot": true}, "containers": [{"name": "c"}]});
        assert_eq!(check(non_root.clone(), Some(1000), ""), Ok(()));
        assert_eq!(
            check(non_root.clone(), Some(0), ""),
            Err("container has runAsNonRoot and image will run as root (pod: \"web_ns(u1)\", container: c)".into())
        );
        assert_eq!(
            check(non_root.clone(), None, "nobody"),
            Err("container has runAsNonRoot and image has non-numeric user (nobody), cannot verify user is non-root (pod: \"web_ns(u1)\", container: c)".into())
        );
        assert_eq!(
            check(
                json!({"securityContext": {"runAsNonRoot": true, "runAsUser": 0}, "containers": [{"name": "c"}]}),
                Some(1000),
                ""
            ),
            Err(
                "container's runAsUser breaks non-root policy (pod: \"web_ns(u1)\", container: c)"
                    .into()
            )
        );
        assert_eq!(
            check(json!({"containers": [{"name": "c"}]}), Some(0), ""),
            Ok(())
        );
    }

    #[test]
    fn mounts() {
        let mounts = |container: serde_json::Value, tweak: fn(&mut ContainerContext)| {
            let p = one(container);
            let mut ctx = container_ctx();
            tweak(&mut ctx);
            let spec = p.spec.clone().unwrap_or_default();
            container_config(&p, &spec.containers[0], &ctx).map(|c| {
                c.mounts
                    .into_iter()
                    .map(|m| (m.container_path, m.host_path, m.readonly, m.propagation))
                    .collect::<Vec<_>>()
            })
        };
        let private = v1::MountPropagation::PropagationPrivate as i32;
        let none: fn(&mut ContainerContext) = |_| {};
        assert_eq!(
            mounts(
                json!({"name": "c", "env": [{"name": "POD", "value": "p1"}], "volumeMounts": [
                    {"name": "data", "mountPath": "/data"},
                    {"name": "data", "mountPath": "/ro", "readOnly": true},
                    {"name": "conf", "mountPath": "/etc/conf"},
                    {"name": "data", "mountPath": "/sub", "subPath": "a/b"},
                    {"name": "data", "mountPath": "/expr", "subPathExpr": "logs/$(POD)"},
                    {"name": "data", "mountPath": "/h2c", "mountPropagation": "HostToContainer"}
                ]}),
                |ctx| {
                    ctx.etc_hosts_path = Some("/data/pods/u1/etc-hosts".into());
                    ctx.termination_message_host_path =
                        Some("/data/pods/u1/containers/c/0a1b".into());
                }
            ),
            Ok(vec![
                (
                    "/data".into(),
                    "/data/pods/u1/volumes/data".into(),
                    false,
                    private
                ),
                (
                    "/ro".into(),
                    "/data/pods/u1/volumes/data".into(),
                    true,
                    private
                ),
                (
                    "/etc/conf".into(),
                    "/data/pods/u1/volumes/conf".into(),
                    true,
                    private
                ),
                (
                    "/sub".into(),
                    "/data/pods/u1/volumes/data/a/b".into(),
                    false,
                    private
                ),
                (
                    "/expr".into(),
                    "/data/pods/u1/volumes/data/logs/p1".into(),
                    false,
                    private
                ),
                (
                    "/h2c".into(),
                    "/data/pods/u1/volumes/data".into(),
                    false,
                    v1::MountPropagation::PropagationHostToContainer as i32
                ),
                (
                    "/etc/hosts".into(),
                    "/data/pods/u1/etc-hosts".into(),
                    false,
                    private
                ),
                (
                    "/dev/termination-log".into(),
                    "/data/pods/u1/containers/c/0a1b".into(),
                    false,
                    private
                ),
            ])
        );
        let errors = [
            (
                json!({"name": "c", "volumeMounts": [{"name": "gone", "mountPath": "/x"}]}),
                ConfigError::VolumeNotFound {
                    volume: "gone".into(),
                    container: "c".into(),
                },
            ),
            (
                json!({"name": "c", "volumeMounts": [{"name": "data", "mountPath": "/x", "subPath": "../etc"}]}),
                ConfigError::SubPathBacksteps("../etc".into()),
            ),
            (
                json!({"name": "c", "volumeMounts": [{"name": "data", "mountPath": "/x", "subPath": "/etc"}]}),
                ConfigError::SubPathAbsolute("/etc".into()),
            ),
            (
                json!({"name": "c", "volumeMounts": [{"name": "data", "mountPath": "/x", "subPathExpr": "$(B)/$(A)"}]}),
                ConfigError::SubPathExprMissing("A, B".into()),
            ),
            (
                json!({"name": "c", "volumeMounts": [{"name": "data", "mountPath": "/x", "mountPropagation": "Bidirectional"}]}),
                ConfigError::BidirectionalUnprivileged,
            ),
        ];
        for (container, want) in errors {
            assert_eq!(mounts(container.clone(), none), Err(want), "{container}");
        }
        // A container mounting its own /etc/hosts does not get the managed one.
        let own = mounts(
            json!({"name": "c", "volumeMounts": [{"name": "data", "mountPath": "/etc/hosts", "subPath": "hosts"}]}),
            |ctx| ctx.etc_hosts_path = Some("/managed".into()),
        )
        .expect("mounts");
        assert_eq!(own.len(), 1);
    }
}
