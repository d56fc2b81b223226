//! The `RunPodSandbox` config (upstream `kuberuntime_sandbox.go`, `generatePodSandboxConfig`):
//! metadata and labels, hostname, log directory, host port mappings, the pod cgroup per QoS
//! class, namespaces, and the sandbox's security context and sysctls. Its DNS config is
//! `dns.rs`.

use k8s_openapi::api::core::v1::{Pod, PodSpec};

use super::dns::pod_dns_config;
use super::{
    pod_name, pod_namespace, pod_uid, ConfigError, POD_NAMESPACE_LABEL, POD_NAME_LABEL,
    POD_UID_LABEL,
};
use crate::runtime::v1;
use crate::status::{pod_qos_class, QosClass};

/// A hostname is a DNS label.
const MAX_HOSTNAME_LEN: usize = 63;
/// `setHostnameAsFQDN`: the kernel's hostname limit.
const MAX_FQDN_LEN: usize = 64;

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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::podconfig::testing::*;

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
}
