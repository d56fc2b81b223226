//! The checks of the Pod Security Standards, one function each, with the minor they appeared
//! in and the baseline check a restricted one replaces; each revision inside a check is
//! chosen by the minor evaluated. Reasons and details are upstream's, word for word: pods
//! are listed by `pod`, then `container "a"` / `containers "a", "b"` in the order init,
//! regular, ephemeral; values are sorted and quoted.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{ContainerPort, PodSpec, SecurityContext};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::Level;

/// A rule a pod breaks: upstream's `ForbiddenReason` and `ForbiddenDetail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// What is wrong, short (`host namespaces`).
    pub reason: String,
    /// Where and what (`hostNetwork=true`); may be empty.
    pub detail: String,
}

fn violation(reason: &str, detail: String) -> Option<Violation> {
    Some(Violation {
        reason: reason.to_string(),
        detail,
    })
}

/// One check of the standards.
struct Check {
    id: &'static str,
    level: Level,
    /// The first minor the check exists at.
    since: u32,
    /// The baseline check it replaces at the restricted level.
    replaces: Option<&'static str>,
    run: fn(&Pod<'_>) -> Option<Violation>,
}

#[rustfmt::skip]
const CHECKS: &[Check] = &[
    Check { id: "appArmorProfile", level: Level::Baseline, since: 0, replaces: None, run: app_armor_profile },
    Check { id: "capabilities_baseline", level: Level::Baseline, since: 0, replaces: None, run: capabilities_baseline },
    Check { id: "hostNamespaces", level: Level::Baseline, since: 0, replaces: None, run: host_namespaces },
    Check { id: "hostPathVolumes", level: Level::Baseline, since: 0, replaces: None, run: host_path_volumes },
    Check { id: "hostPorts", level: Level::Baseline, since: 0, replaces: None, run: host_ports },
    Check { id: "privileged", level: Level::Baseline, since: 0, replaces: None, run: privileged },
    Check { id: "procMount", level: Level::Baseline, since: 0, replaces: None, run: proc_mount },
    Check { id: "seLinuxOptions", level: Level::Baseline, since: 0, replaces: None, run: se_linux_options },
    Check { id: "seccompProfile_baseline", level: Level::Baseline, since: 0, replaces: None, run: seccomp_baseline },
    Check { id: "sysctls", level: Level::Baseline, since: 0, replaces: None, run: sysctls },
    Check { id: "windowsHostProcess", level: Level::Baseline, since: 0, replaces: None, run: windows_host_process },
    Check { id: "allowPrivilegeEscalation", level: Level::Restricted, since: 8, replaces: None, run: allow_privilege_escalation },
    Check { id: "capabilities_restricted", level: Level::Restricted, since: 22, replaces: Some("capabilities_baseline"), run: capabilities_restricted },
    Check { id: "restrictedVolumes", level: Level::Restricted, since: 0, replaces: Some("hostPathVolumes"), run: restricted_volumes },
    Check { id: "runAsNonRoot", level: Level::Restricted, since: 0, replaces: None, run: run_as_non_root },
    Check { id: "runAsUser", level: Level::Restricted, since: 23, replaces: None, run: run_as_user },
    Check { id: "seccompProfile_restricted", level: Level::Restricted, since: 19, replaces: Some("seccompProfile_baseline"), run: seccomp_restricted },
];

/// The violations of `level` at `minor`'s rules: the level's checks (with those a stricter
/// check replaces left out) ordered by level, then by id byte-wise, as upstream orders them.
pub(super) fn run(level: Level, minor: u32, meta: &ObjectMeta, spec: &PodSpec) -> Vec<Violation> {
    if level == Level::Privileged {
        return Vec::new();
    }
    let mut checks: Vec<&Check> = CHECKS
        .iter()
        .filter(|c| c.level <= level && c.since <= minor)
        .collect();
    let replaced: Vec<&str> = checks.iter().filter_map(|c| c.replaces).collect();
    checks.retain(|c| !replaced.contains(&c.id));
    checks.sort_by_key(|c| (c.level, c.id));
    let pod = Pod::new(meta, spec, minor);
    checks.iter().filter_map(|c| (c.run)(&pod)).collect()
}

/// A container of any kind, as the checks see it.
struct Container<'a> {
    name: &'a str,
    security: Option<&'a SecurityContext>,
    ports: &'a [ContainerPort],
}

/// The pod under evaluation.
struct Pod<'a> {
    meta: &'a ObjectMeta,
    spec: &'a PodSpec,
    /// Init containers, then containers, then ephemeral containers.
    containers: Vec<Container<'a>>,
    minor: u32,
}

impl<'a> Pod<'a> {
    fn new(meta: &'a ObjectMeta, spec: &'a PodSpec, minor: u32) -> Pod<'a> {
        let regular = spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers);
        let mut containers: Vec<Container<'a>> = regular
            .map(|c| Container {
                name: &c.name,
                security: c.security_context.as_ref(),
                ports: c.ports.as_deref().unwrap_or_default(),
            })
            .collect();
        containers.extend(
            spec.ephemeral_containers
                .iter()
                .flatten()
                .map(|c| Container {
                    name: &c.name,
                    security: c.security_context.as_ref(),
                    ports: c.ports.as_deref().unwrap_or_default(),
                }),
        );
        Pod {
            meta,
            spec,
            containers,
            minor,
        }
    }

    /// The names of the containers `bad` picks.
    fn containers_where(&self, bad: impl Fn(&SecurityContext) -> bool) -> Vec<&'a str> {
        self.containers
            .iter()
            .filter(|c| c.security.is_some_and(&bad))
            .map(|c| c.name)
            .collect()
    }

    fn security(&self) -> Option<&'a k8s_openapi::api::core::v1::PodSecurityContext> {
        self.spec.security_context.as_ref()
    }

    fn windows(&self) -> bool {
        self.spec.os.as_ref().is_some_and(|os| os.name == "windows")
    }

    fn annotation(&self, key: &str) -> Option<&'a str> {
        self.meta.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

fn plural<'s>(n: usize, one: &'s str, many: &'s str) -> &'s str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// `"a", "b"` (upstream's `joinQuote`).
fn quoted<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let items: Vec<String> = items
        .into_iter()
        .map(|s| format!("\"{}\"", s.as_ref()))
        .collect();
    items.join(", ")
}

/// `container "a"` or `containers "a", "b"`.
fn containers(names: &[&str]) -> String {
    let word = plural(names.len(), "container", "containers");
    format!("{word} {}", quoted(names))
}

/// `pod`, then the containers, joined with ` and `.
fn setters(pod: bool, names: &[&str]) -> Option<String> {
    let mut parts = Vec::new();
    if pod {
        parts.push("pod".to_string());
    }
    if !names.is_empty() {
        parts.push(containers(names));
    }
    (!parts.is_empty()).then(|| parts.join(" and "))
}

fn host_namespaces(pod: &Pod<'_>) -> Option<Violation> {
    let spec = pod.spec;
    let set = [
        (spec.host_network, "hostNetwork=true"),
        (spec.host_pid, "hostPID=true"),
        (spec.host_ipc, "hostIPC=true"),
    ];
    let items: Vec<&str> = set
        .iter()
        .filter(|(on, _)| *on == Some(true))
        .map(|(_, item)| *item)
        .collect();
    if items.is_empty() {
        return None;
    }
    violation("host namespaces", items.join(", "))
}

fn privileged(pod: &Pod<'_>) -> Option<Violation> {
    let bad = pod.containers_where(|sc| sc.privileged == Some(true));
    if bad.is_empty() {
        return None;
    }
    let detail = format!(
        "{} must not set securityContext.privileged=true",
        containers(&bad)
    );
    violation("privileged", detail)
}

/// The capabilities a baseline container may add.
const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

fn added_capabilities(sc: &SecurityContext) -> impl Iterator<Item = &str> {
    let capabilities = sc.capabilities.as_ref();
    capabilities
        .and_then(|c| c.add.as_ref())
        .into_iter()
        .flatten()
        .map(String::as_str)
}

fn capabilities_baseline(pod: &Pod<'_>) -> Option<Violation> {
    let forbidden = |cap: &str| !BASELINE_CAPABILITIES.contains(&cap);
    let bad = pod.containers_where(|sc| added_capabilities(sc).any(forbidden));
    if bad.is_empty() {
        return None;
    }
    let caps: BTreeSet<&str> = pod
        .containers
        .iter()
        .filter_map(|c| c.security)
        .flat_map(added_capabilities)
        .filter(|cap| forbidden(cap))
        .collect();
    let detail = format!(
        "{} must not include {} in securityContext.capabilities.add",
        containers(&bad),
        quoted(&caps)
    );
    violation("non-default capabilities", detail)
}

fn host_path_volumes(pod: &Pod<'_>) -> Option<Violation> {
    let volumes = pod.spec.volumes.iter().flatten();
    let bad: Vec<&str> = volumes
        .filter(|v| v.host_path.is_some())
        .map(|v| v.name.as_str())
        .collect();
    if bad.is_empty() {
        return None;
    }
    let detail = format!(
        "{} {}",
        plural(bad.len(), "volume", "volumes"),
        quoted(&bad)
    );
    violation("hostPath volumes", detail)
}

fn host_ports(pod: &Pod<'_>) -> Option<Violation> {
    fn host_ports<'a>(c: &Container<'a>) -> impl Iterator<Item = String> + 'a {
        let ports = c.ports.iter().filter_map(|p| p.host_port);
        ports.filter(|port| *port != 0).map(|port| port.to_string())
    }
    let bad: Vec<&str> = pod
        .containers
        .iter()
        .filter(|c| host_ports(c).next().is_some())
        .map(|c| c.name)
        .collect();
    if bad.is_empty() {
        return None;
    }
    let ports: BTreeSet<String> = pod.containers.iter().flat_map(host_ports).collect();
    let ports: Vec<String> = ports.into_iter().collect();
    let detail = format!(
        "{} {} {} {}",
        containers(&bad),
        plural(bad.len(), "uses", "use"),
        plural(ports.len(), "hostPort", "hostPorts"),
        ports.join(", ")
    );
    violation("hostPort", detail)
}

fn app_armor_profile(pod: &Pod<'_>) -> Option<Violation> {
    let allowed = |kind: &str| kind == "RuntimeDefault" || kind == "Localhost";
    let mut values = BTreeSet::new();
    let pod_profile = pod.security().and_then(|sc| sc.app_armor_profile.as_ref());
    let pod_bad = pod_profile.is_some_and(|p| !allowed(&p.type_));
    values.extend(pod_profile.filter(|_| pod_bad).map(|p| p.type_.clone()));
    let profile = |sc: &SecurityContext| sc.app_armor_profile.as_ref().map(|p| p.type_.clone());
    let bad = pod.containers_where(|sc| profile(sc).is_some_and(|t| !allowed(&t)));
    let container_values = pod.containers.iter().filter_map(|c| profile(c.security?));
    values.extend(container_values.filter(|t| !allowed(t)));

    const PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";
    let annotation_allowed =
        |v: &str| v.is_empty() || v == "runtime/default" || v.starts_with("localhost/");
    let annotations = pod.meta.annotations.iter().flatten();
    let bad_annotations: Vec<String> = annotations
        .filter(|(k, v)| k.starts_with(PREFIX) && !annotation_allowed(v))
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();

    let mut setters = setters(pod_bad, &bad).into_iter().collect::<Vec<_>>();
    if !bad_annotations.is_empty() {
        let word = plural(bad_annotations.len(), "annotation", "annotations");
        setters.push(word.to_string());
    }
    if setters.is_empty() {
        return None;
    }
    let mut listed: Vec<String> = values.into_iter().collect();
    listed.extend(bad_annotations);
    let reason = plural(
        listed.len(),
        "forbidden AppArmor profile",
        "forbidden AppArmor profiles",
    );
    let detail = format!(
        "{} must not set AppArmor profile type to {}",
        setters.join(" and "),
        quoted(&listed)
    );
    violation(reason, detail)
}

fn se_linux_options(pod: &Pod<'_>) -> Option<Violation> {
    use k8s_openapi::api::core::v1::SELinuxOptions;
    let mut allowed_types = vec!["", "container_t", "container_init_t", "container_kvm_t"];
    if pod.minor >= 31 {
        allowed_types.push("container_engine_t");
    }
    let mut types = BTreeSet::new();
    let (mut user, mut role) = (false, false);
    let mut bad_options = |options: &SELinuxOptions| {
        let kind = options.type_.as_deref().unwrap_or_default();
        let bad_type = !allowed_types.contains(&kind);
        if bad_type {
            types.insert(kind.to_string());
        }
        let set = |field: &Option<String>| field.as_deref().is_some_and(|s| !s.is_empty());
        user |= set(&options.user);
        role |= set(&options.role);
        bad_type || set(&options.user) || set(&options.role)
    };
    let pod_options = pod.security().and_then(|sc| sc.se_linux_options.as_ref());
    let pod_bad = pod_options.is_some_and(&mut bad_options);
    let mut bad = Vec::new();
    for c in &pod.containers {
        let options = c.security.and_then(|sc| sc.se_linux_options.as_ref());
        if options.is_some_and(&mut bad_options) {
            bad.push(c.name);
        }
    }
    let setters = setters(pod_bad, &bad)?;
    let mut data = Vec::new();
    if !types.is_empty() {
        data.push(format!(
            "{} {}",
            plural(types.len(), "type", "types"),
            quoted(&types)
        ));
    }
    if user {
        data.push("user may not be set".to_string());
    }
    if role {
        data.push("role may not be set".to_string());
    }
    let detail = format!(
        "{setters} set forbidden securityContext.seLinuxOptions: {}",
        data.join("; ")
    );
    violation("seLinuxOptions", detail)
}

fn proc_mount(pod: &Pod<'_>) -> Option<Violation> {
    let bad_mount = |sc: &SecurityContext| sc.proc_mount.clone().filter(|m| m != "Default");
    let bad = pod.containers_where(|sc| bad_mount(sc).is_some());
    if bad.is_empty() {
        return None;
    }
    let mounts: BTreeSet<String> = pod
        .containers
        .iter()
        .filter_map(|c| bad_mount(c.security?))
        .collect();
    let detail = format!(
        "{} must not set securityContext.procMount to {}",
        containers(&bad),
        quoted(&mounts)
    );
    violation("procMount", detail)
}

fn valid_seccomp(kind: &str) -> bool {
    kind == "RuntimeDefault" || kind == "Localhost"
}

fn container_seccomp<'a>(c: &Container<'a>) -> Option<&'a str> {
    let profile = c.security?.seccomp_profile.as_ref()?;
    Some(profile.type_.as_str())
}

/// Seccomp at the baseline: before v1.19 the annotations, then the fields may not ask for
/// another profile than the runtime's default or a local one (unset is allowed).
fn seccomp_baseline(pod: &Pod<'_>) -> Option<Violation> {
    if pod.minor < 19 {
        return seccomp_annotations(pod);
    }
    let pod_type = pod.security().and_then(|sc| sc.seccomp_profile.as_ref());
    let pod_type = pod_type
        .map(|p| p.type_.as_str())
        .filter(|t| !valid_seccomp(t));
    let mut values: BTreeSet<&str> = pod_type.into_iter().collect();
    let mut bad = Vec::new();
    for c in &pod.containers {
        if let Some(kind) = container_seccomp(c).filter(|t| !valid_seccomp(t)) {
            bad.push(c.name);
            values.insert(kind);
        }
    }
    let setters = setters(pod_type.is_some(), &bad)?;
    let detail = format!(
        "{setters} must not set securityContext.seccompProfile.type to {}",
        quoted(&values)
    );
    violation("seccompProfile", detail)
}

fn seccomp_annotations(pod: &Pod<'_>) -> Option<Violation> {
    let valid =
        |v: &str| v == "runtime/default" || v == "docker/default" || v.starts_with("localhost/");
    let mut keys = vec!["seccomp.security.alpha.kubernetes.io/pod".to_string()];
    keys.extend(
        pod.containers
            .iter()
            .map(|c| format!("container.seccomp.security.alpha.kubernetes.io/{}", c.name)),
    );
    let forbidden: BTreeSet<String> = keys
        .iter()
        .filter_map(|key| Some((key, pod.annotation(key)?)))
        .filter(|(_, value)| !valid(value))
        .map(|(key, value)| format!("{key}={value:?}"))
        .collect();
    if forbidden.is_empty() {
        return None;
    }
    let word = plural(
        forbidden.len(),
        "forbidden annotation",
        "forbidden annotations",
    );
    let list: Vec<String> = forbidden.into_iter().collect();
    violation("seccompProfile", format!("{word} {}", list.join(", ")))
}

/// The sysctls a pod may set at `minor`'s rules.
fn allowed_sysctls(minor: u32) -> Vec<&'static str> {
    let mut allowed = vec![
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
    ];
    let revisions: [(u32, &[&str]); 3] = [
        (27, &["net.ipv4.ip_local_reserved_ports"]),
        (
            29,
            &[
                "net.ipv4.tcp_keepalive_time",
                "net.ipv4.tcp_fin_timeout",
                "net.ipv4.tcp_keepalive_intvl",
                "net.ipv4.tcp_keepalive_probes",
            ],
        ),
        (32, &["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"]),
    ];
    for (since, names) in revisions {
        if minor >= since {
            allowed.extend_from_slice(names);
        }
    }
    allowed
}

fn sysctls(pod: &Pod<'_>) -> Option<Violation> {
    let allowed = allowed_sysctls(pod.minor);
    let set = pod.security().and_then(|sc| sc.sysctls.as_ref());
    let forbidden: Vec<&str> = set
        .into_iter()
        .flatten()
        .map(|s| s.name.as_str())
        .filter(|name| !allowed.contains(name))
        .collect();
    if forbidden.is_empty() {
        return None;
    }
    violation("forbidden sysctls", forbidden.join(", "))
}

fn windows_host_process(pod: &Pod<'_>) -> Option<Violation> {
    let host_process = |options: Option<
        &k8s_openapi::api::core::v1::WindowsSecurityContextOptions,
    >| { options.and_then(|o| o.host_process) == Some(true) };
    let pod_bad = host_process(pod.security().and_then(|sc| sc.windows_options.as_ref()));
    let bad = pod.containers_where(|sc| host_process(sc.windows_options.as_ref()));
    let setters = setters(pod_bad, &bad)?;
    let detail = format!("{setters} must not set securityContext.windowsOptions.hostProcess=true");
    violation("hostProcess", detail)
}

fn allow_privilege_escalation(pod: &Pod<'_>) -> Option<Violation> {
    if pod.minor >= 25 && pod.windows() {
        return None;
    }
    let bad: Vec<&str> = pod
        .containers
        .iter()
        .filter(|c| c.security.and_then(|sc| sc.allow_privilege_escalation) != Some(false))
        .map(|c| c.name)
        .collect();
    if bad.is_empty() {
        return None;
    }
    let detail = format!(
        "{} must set securityContext.allowPrivilegeEscalation=false",
        containers(&bad)
    );
    violation("allowPrivilegeEscalation != false", detail)
}

fn capabilities_restricted(pod: &Pod<'_>) -> Option<Violation> {
    if pod.minor >= 25 && pod.windows() {
        return None;
    }
    let (mut missing_drop, mut adding) = (Vec::new(), Vec::new());
    let mut forbidden = BTreeSet::new();
    for c in &pod.containers {
        let Some(capabilities) = c.security.and_then(|sc| sc.capabilities.as_ref()) else {
            missing_drop.push(c.name);
            continue;
        };
        if !capabilities.drop.iter().flatten().any(|cap| cap == "ALL") {
            missing_drop.push(c.name);
        }
        let added = capabilities.add.iter().flatten();
        let bad: Vec<&str> = added
            .map(String::as_str)
            .filter(|cap| *cap != "NET_BIND_SERVICE")
            .collect();
        if !bad.is_empty() {
            adding.push(c.name);
            forbidden.extend(bad);
        }
    }
    let mut details = Vec::new();
    if !missing_drop.is_empty() {
        let who = containers(&missing_drop);
        details.push(format!(
            "{who} must set securityContext.capabilities.drop=[\"ALL\"]"
        ));
    }
    if !adding.is_empty() {
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers(&adding),
            quoted(&forbidden)
        ));
    }
    if details.is_empty() {
        return None;
    }
    violation("unrestricted capabilities", details.join("; "))
}

fn restricted_volumes(pod: &Pod<'_>) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut kinds = BTreeSet::new();
    for v in pod.spec.volumes.iter().flatten() {
        let allowed = v.config_map.is_some()
            || v.csi.is_some()
            || v.downward_api.is_some()
            || v.empty_dir.is_some()
            || v.ephemeral.is_some()
            || v.image.is_some()
            || v.persistent_volume_claim.is_some()
            || v.projected.is_some()
            || v.secret.is_some();
        if allowed {
            continue;
        }
        bad.push(v.name.as_str());
        let restricted = [
            (v.host_path.is_some(), "hostPath"),
            (v.gce_persistent_disk.is_some(), "gcePersistentDisk"),
            (v.aws_elastic_block_store.is_some(), "awsElasticBlockStore"),
            (v.git_repo.is_some(), "gitRepo"),
            (v.nfs.is_some(), "nfs"),
            (v.iscsi.is_some(), "iscsi"),
            (v.glusterfs.is_some(), "glusterfs"),
            (v.rbd.is_some(), "rbd"),
            (v.flex_volume.is_some(), "flexVolume"),
            (v.cinder.is_some(), "cinder"),
            (v.cephfs.is_some(), "cephfs"),
            (v.flocker.is_some(), "flocker"),
            (v.fc.is_some(), "fc"),
            (v.azure_file.is_some(), "azureFile"),
            (v.vsphere_volume.is_some(), "vsphereVolume"),
            (v.quobyte.is_some(), "quobyte"),
            (v.azure_disk.is_some(), "azureDisk"),
            (v.photon_persistent_disk.is_some(), "photonPersistentDisk"),
            (v.portworx_volume.is_some(), "portworxVolume"),
            (v.scale_io.is_some(), "scaleIO"),
            (v.storageos.is_some(), "storageos"),
        ];
        let kind = restricted
            .iter()
            .find(|(set, _)| *set)
            .map(|(_, kind)| *kind);
        kinds.insert(kind.unwrap_or("unknown"));
    }
    if bad.is_empty() {
        return None;
    }
    let detail = format!(
        "{} {} {} {} {}",
        plural(bad.len(), "volume", "volumes"),
        quoted(&bad),
        plural(bad.len(), "uses", "use"),
        plural(
            kinds.len(),
            "restricted volume type",
            "restricted volume types"
        ),
        quoted(&kinds)
    );
    violation("restricted volume types", detail)
}

fn run_as_non_root(pod: &Pod<'_>) -> Option<Violation> {
    let pod_value = pod.security().and_then(|sc| sc.run_as_non_root);
    let (mut explicit, mut implicit) = (Vec::new(), Vec::new());
    for c in &pod.containers {
        match c.security.and_then(|sc| sc.run_as_non_root) {
            Some(false) => explicit.push(c.name),
            Some(true) => {}
            None if pod_value != Some(true) => implicit.push(c.name),
            None => {}
        }
    }
    const REASON: &str = "runAsNonRoot != true";
    if let Some(setters) = setters(pod_value == Some(false), &explicit) {
        let detail = format!("{setters} must not set securityContext.runAsNonRoot=false");
        return violation(REASON, detail);
    }
    if implicit.is_empty() {
        return None;
    }
    let detail = format!(
        "pod or {} must set securityContext.runAsNonRoot=true",
        containers(&implicit)
    );
    violation(REASON, detail)
}

fn run_as_user(pod: &Pod<'_>) -> Option<Violation> {
    let pod_root = pod.security().and_then(|sc| sc.run_as_user) == Some(0);
    let bad = pod.containers_where(|sc| sc.run_as_user == Some(0));
    let setters = setters(pod_root, &bad)?;
    violation("runAsUser=0", format!("{setters} must not set runAsUser=0"))
}

/// Seccomp at the restricted level: the pod or every container must ask for the runtime's
/// default or a local profile.
fn seccomp_restricted(pod: &Pod<'_>) -> Option<Violation> {
    if pod.minor >= 25 && pod.windows() {
        return None;
    }
    let pod_type = pod.security().and_then(|sc| sc.seccomp_profile.as_ref());
    let pod_type = pod_type.map(|p| p.type_.as_str());
    let pod_bad = pod_type.is_some_and(|t| !valid_seccomp(t));
    let pod_good = pod_type.is_some_and(valid_seccomp);
    let mut values: BTreeSet<&str> = pod_type.filter(|_| pod_bad).into_iter().collect();
    let (mut explicit, mut implicit) = (Vec::new(), Vec::new());
    for c in &pod.containers {
        match container_seccomp(c) {
            Some(kind) if !valid_seccomp(kind) => {
                explicit.push(c.name);
                values.insert(kind);
            }
            Some(_) => {}
            None if !pod_good => implicit.push(c.name),
            None => {}
        }
    }
    if let Some(setters) = setters(pod_bad, &explicit) {
        let detail = format!(
            "{setters} must not set securityContext.seccompProfile.type to {}",
            quoted(&values)
        );
        return violation("seccompProfile", detail);
    }
    if implicit.is_empty() {
        return None;
    }
    let detail = format!(
        "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
        containers(&implicit)
    );
    violation("seccompProfile", detail)
}

#[cfg(test)]
mod tests {
    use super::super::{evaluate, forbidden_detail, forbidden_reason, LevelVersion, Version};
    use super::*;
    use k8s_openapi::api::core::v1::Pod as ApiPod;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> ApiPod {
        serde_json::from_value(value).expect("pod")
    }

    fn check(level: Level, version: Version, value: serde_json::Value) -> String {
        let pod = pod(value);
        let spec = pod.spec.unwrap_or_default();
        forbidden_detail(&evaluate(
            LevelVersion { level, version },
            &pod.metadata,
            &spec,
        ))
    }

    fn restricted(value: serde_json::Value) -> String {
        check(Level::Restricted, Version::Latest, value)
    }

    fn baseline(value: serde_json::Value) -> String {
        check(Level::Baseline, Version::Latest, value)
    }

    fn hardened() -> serde_json::Value {
        json!({"runAsNonRoot": true, "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}})
    }

    #[test]
    fn a_plain_container_breaks_four_restricted_rules_in_upstream_order() {
        let detail =
            restricted(json!({"spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}));
        assert_eq!(
            detail,
            "allowPrivilegeEscalation != false (container \"nginx\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"nginx\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or container \"nginx\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"nginx\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        );
        let plain = pod(json!({"spec": {"containers": [{"name": "nginx"}]}}));
        let lv = LevelVersion {
            level: Level::Restricted,
            version: Version::Latest,
        };
        let violations = evaluate(lv, &plain.metadata, plain.spec.as_ref().expect("spec"));
        assert_eq!(
            forbidden_reason(&violations),
            "allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile"
        );
        assert_eq!(
            baseline(json!({"spec": {"containers": [{"name": "nginx"}]}})),
            ""
        );
        let privileged = LevelVersion::PRIVILEGED;
        assert!(evaluate(
            privileged,
            &plain.metadata,
            plain.spec.as_ref().expect("spec")
        )
        .is_empty());
    }

    #[test]
    fn a_hardened_pod_passes_restricted() {
        let spec = json!({"spec": {"containers": [{"name": "a", "securityContext": hardened(),
            "ports": [{"containerPort": 80}]}],
            "volumes": [{"name": "v", "emptyDir": {}}, {"name": "c", "configMap": {"name": "x"}}]}});
        assert_eq!(restricted(spec), "");
        let pod_level = json!({"spec": {
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "Localhost", "localhostProfile": "p"}},
            "containers": [{"name": "a", "securityContext": {"allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}]}});
        assert_eq!(restricted(pod_level), "");
    }

    #[test]
    fn baseline_rules_word_their_findings_as_upstream() {
        let spec = json!({"spec": {
            "hostNetwork": true, "hostIPC": true,
            "securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}, {"name": "net.ipv4.tcp_rmem", "value": "1"}, {"name": "a.b", "value": "1"}],
                "seLinuxOptions": {"type": "foo", "user": "u"}},
            "initContainers": [{"name": "i", "securityContext": {"privileged": true, "capabilities": {"add": ["SYS_ADMIN", "CHOWN"]}}}],
            "containers": [
                {"name": "a", "ports": [{"containerPort": 80, "hostPort": 80}, {"containerPort": 1, "hostPort": 10000}],
                 "securityContext": {"privileged": true, "procMount": "Unmasked", "capabilities": {"add": ["NET_ADMIN"]},
                    "seLinuxOptions": {"type": "bar", "role": "r"}, "seccompProfile": {"type": "Unconfined"}}},
                {"name": "b", "ports": [{"containerPort": 81, "hostPort": 80}],
                 "securityContext": {"windowsOptions": {"hostProcess": true}, "appArmorProfile": {"type": "Unconfined"}}}],
            "volumes": [{"name": "h", "hostPath": {"path": "/"}}]}});
        assert_eq!(
            baseline(spec),
            [
                "forbidden AppArmor profile (container \"b\" must not set AppArmor profile type to \"Unconfined\")",
                "non-default capabilities (containers \"i\", \"a\" must not include \"NET_ADMIN\", \"SYS_ADMIN\" in securityContext.capabilities.add)",
                "host namespaces (hostNetwork=true, hostIPC=true)",
                "hostPath volumes (volume \"h\")",
                "hostPort (containers \"a\", \"b\" use hostPorts 10000, 80)",
                "privileged (containers \"i\", \"a\" must not set securityContext.privileged=true)",
                "procMount (container \"a\" must not set securityContext.procMount to \"Unmasked\")",
                "seLinuxOptions (pod and container \"a\" set forbidden securityContext.seLinuxOptions: types \"bar\", \"foo\"; user may not be set; role may not be set)",
                "seccompProfile (container \"a\" must not set securityContext.seccompProfile.type to \"Unconfined\")",
                "forbidden sysctls (kernel.msgmax, a.b)",
                "hostProcess (container \"b\" must not set securityContext.windowsOptions.hostProcess=true)",
            ]
            .join(", ")
        );
    }

    #[test]
    fn versions_choose_the_rules() {
        let tcp = json!({"spec": {"securityContext": {"sysctls": [{"name": "net.ipv4.tcp_rmem", "value": "1"}]},
            "containers": [{"name": "a"}]}});
        assert_eq!(
            check(Level::Baseline, Version::Minor(31), tcp.clone()),
            "forbidden sysctls (net.ipv4.tcp_rmem)"
        );
        assert_eq!(check(Level::Baseline, Version::Minor(32), tcp), "");
        let engine = json!({"spec": {"containers": [{"name": "a", "securityContext": {"seLinuxOptions": {"type": "container_engine_t"}}}]}});
        assert!(check(Level::Baseline, Version::Minor(30), engine.clone())
            .starts_with("seLinuxOptions"));
        assert_eq!(check(Level::Baseline, Version::Latest, engine), "");
        // Before v1.22 restricted checks the baseline capabilities; before v1.8 privilege
        // escalation is not checked; before v1.19 seccomp is read from annotations.
        let old = json!({"metadata": {"annotations": {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}},
            "spec": {"securityContext": {"runAsNonRoot": true}, "containers": [{"name": "a"}]}});
        assert_eq!(
            check(Level::Restricted, Version::Minor(7), old),
            "seccompProfile (forbidden annotation seccomp.security.alpha.kubernetes.io/pod=\"unconfined\")"
        );
        let windows = json!({"spec": {"os": {"name": "windows"}, "securityContext": {"runAsNonRoot": true}, "containers": [{"name": "a"}]}});
        assert_eq!(restricted(windows.clone()), "");
        assert!(check(Level::Restricted, Version::Minor(24), windows)
            .starts_with("allowPrivilegeEscalation"));
    }

    #[test]
    fn explicit_settings_are_named_before_missing_ones() {
        let mut sc = hardened();
        sc["runAsNonRoot"] = json!(false);
        sc["runAsUser"] = json!(0);
        sc["seccompProfile"] = json!({"type": "Unconfined"});
        sc["capabilities"]["add"] = json!(["SYS_TIME", "NET_RAW"]);
        let spec = json!({"spec": {"securityContext": {"runAsNonRoot": false, "runAsUser": 0},
            "containers": [{"name": "a", "securityContext": sc}, {"name": "b", "securityContext": hardened()}],
            "ephemeralContainers": [{"name": "debug"}],
            "volumes": [{"name": "n", "nfs": {"server": "s", "path": "/"}}, {"name": "h", "hostPath": {"path": "/"}}]}});
        assert_eq!(
            restricted(spec),
            [
                "allowPrivilegeEscalation != false (container \"debug\" must set securityContext.allowPrivilegeEscalation=false)",
                "unrestricted capabilities (container \"debug\" must set securityContext.capabilities.drop=[\"ALL\"]; container \"a\" must not include \"NET_RAW\", \"SYS_TIME\" in securityContext.capabilities.add)",
                "restricted volume types (volumes \"n\", \"h\" use restricted volume types \"hostPath\", \"nfs\")",
                "runAsNonRoot != true (pod and container \"a\" must not set securityContext.runAsNonRoot=false)",
                "runAsUser=0 (pod and container \"a\" must not set runAsUser=0)",
                "seccompProfile (container \"a\" must not set securityContext.seccompProfile.type to \"Unconfined\")",
            ]
            .join(", ")
        );
    }

    #[test]
    fn apparmor_annotations_count_as_setters() {
        let spec = json!({"metadata": {"annotations": {
                "container.apparmor.security.beta.kubernetes.io/e": "unconfined",
                "container.apparmor.security.beta.kubernetes.io/f": "localhost/x"}},
            "spec": {"securityContext": {"appArmorProfile": {"type": "Unconfined"}}, "containers": [{"name": "e"}]}});
        assert_eq!(
            baseline(spec),
            "forbidden AppArmor profiles (pod and annotation must not set AppArmor profile type to \"Unconfined\", \"container.apparmor.security.beta.kubernetes.io/e=\"unconfined\"\")"
        );
    }
}
