//! What the server fills in or clears in a Service before validating it: upstream's
//! `SetDefaults_Service` on every write, and on updates the fix-ups of its service storage
//! (`patchAllocatedValues`, `normalizeClusterIPs`) and strategy (`dropTypeDependentFields`), so
//! that a manifest sent again without what was allocated for it (`kubectl apply` without
//! `clusterIP`) means what it meant, and a change of type drops what only the old type used.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ClientIPConfig, ServiceSpec, SessionAffinityConfig};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{cluster_ips, is_set, service_type, EXTERNAL_NAME, LOAD_BALANCER, NODE_PORT};

/// `DefaultClientIPServiceAffinitySeconds`: three hours.
pub(super) const DEFAULT_CLIENT_IP_TIMEOUT_SECONDS: i32 = 10800;

/// `ExternallyAccessible`: reachable from outside through node ports, a load balancer or
/// external IPs.
pub(super) fn externally_accessible(spec: &ServiceSpec) -> bool {
    match service_type(spec) {
        NODE_PORT | LOAD_BALANCER => true,
        super::CLUSTER_IP => spec
            .external_ips
            .as_ref()
            .is_some_and(|ips| !ips.is_empty()),
        _ => false,
    }
}

/// `needsNodePort`: NodePort and LoadBalancer services have node ports.
pub(super) fn needs_node_ports(spec: &ServiceSpec) -> bool {
    matches!(service_type(spec), NODE_PORT | LOAD_BALANCER)
}

/// `NeedsHealthCheck`: a LoadBalancer that keeps traffic on the node it arrives at has a
/// health check node port.
pub(super) fn needs_health_check(spec: &ServiceSpec) -> bool {
    service_type(spec) == LOAD_BALANCER && spec.external_traffic_policy.as_deref() == Some("Local")
}

/// `SetDefaults_Service`. Zero node ports are dropped as Go's `omitempty` drops them.
pub(super) fn set_defaults(spec: &mut ServiceSpec) {
    if !is_set(&spec.session_affinity) {
        spec.session_affinity = Some("None".into());
    }
    match spec.session_affinity.as_deref() {
        Some("None") => spec.session_affinity_config = None,
        Some("ClientIP") => {
            let has_timeout = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .is_some_and(|c| c.timeout_seconds.is_some());
            if !has_timeout {
                spec.session_affinity_config = Some(SessionAffinityConfig {
                    client_ip: Some(ClientIPConfig {
                        timeout_seconds: Some(DEFAULT_CLIENT_IP_TIMEOUT_SECONDS),
                    }),
                });
            }
        }
        _ => {}
    }
    if !is_set(&spec.type_) {
        spec.type_ = Some(super::CLUSTER_IP.into());
    }
    for port in spec.ports.iter_mut().flatten() {
        if !is_set(&port.protocol) {
            port.protocol = Some("TCP".into());
        }
        let unset = match &port.target_port {
            None => true,
            Some(IntOrString::Int(n)) => *n == 0,
            Some(IntOrString::String(s)) => s.is_empty(),
        };
        if unset {
            port.target_port = Some(IntOrString::Int(port.port));
        }
        if port.node_port == Some(0) {
            port.node_port = None;
        }
    }
    if spec.health_check_node_port == Some(0) {
        spec.health_check_node_port = None;
    }
    if externally_accessible(spec) && !is_set(&spec.external_traffic_policy) {
        spec.external_traffic_policy = Some("Cluster".into());
    }
    if spec.internal_traffic_policy.is_none() && service_type(spec) != EXTERNAL_NAME {
        spec.internal_traffic_policy = Some("Cluster".into());
    }
    if service_type(spec) == LOAD_BALANCER && spec.allocate_load_balancer_node_ports.is_none() {
        spec.allocate_load_balancer_node_ports = Some(true);
    }
}

/// `normalizeClusterIPs`: keeps `clusterIPs` in step with `clusterIP` for clients that only
/// know the singular field (`old` is `None` on create).
pub(super) fn normalize_cluster_ips(new: &mut ServiceSpec, old: Option<&ServiceSpec>) {
    let new_ip = new.cluster_ip.clone().unwrap_or_default();
    let Some(old) = old else {
        if !new_ip.is_empty() && cluster_ips(new).is_empty() {
            new.cluster_ips = Some(vec![new_ip]);
        }
        return;
    };
    let old_ip = old.cluster_ip.clone().unwrap_or_default();
    // An old client patching something else sent no clusterIPs.
    if !cluster_ips(old).is_empty() && cluster_ips(new).is_empty() && old_ip == new_ip {
        new.cluster_ips = old.cluster_ips.clone();
    }
    if old_ip != new_ip && cluster_ips(old) == cluster_ips(new) {
        new.cluster_ips = if !old_ip.is_empty() && new_ip.is_empty() {
            // Clearing the singular field clears both; changing it is validation's to refuse.
            None
        } else {
            Some(vec![new_ip])
        };
    }
}

/// `patchAllocatedValues`: an update that leaves out what was allocated (the cluster IP, node
/// ports matched by port name, the health check node port) keeps it.
pub(super) fn patch_allocated_values(new: &mut ServiceSpec, old: &ServiceSpec) {
    let needs_cluster_ip = |s: &ServiceSpec| service_type(s) != EXTERNAL_NAME;
    if needs_cluster_ip(old) && needs_cluster_ip(new) {
        if !is_set(&new.cluster_ip) {
            new.cluster_ip = old.cluster_ip.clone();
        }
        if cluster_ips(new).is_empty() && !cluster_ips(old).is_empty() {
            new.cluster_ips = old.cluster_ips.clone();
        }
    }
    if needs_node_ports(old) && needs_node_ports(new) {
        // Node ports the new spec already uses, of the old ones, cannot be patched in again.
        let used: BTreeSet<i32> = node_ports(old)
            .intersection(&node_ports(new))
            .copied()
            .collect();
        let by_name: BTreeMap<&str, i32> = old
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.as_deref().unwrap_or(""), p.node_port.unwrap_or(0)))
            .collect();
        for port in new.ports.iter_mut().flatten() {
            if port.node_port.unwrap_or(0) == 0 {
                let old_value = by_name
                    .get(port.name.as_deref().unwrap_or(""))
                    .copied()
                    .unwrap_or(0);
                if old_value != 0 && !used.contains(&old_value) {
                    port.node_port = Some(old_value);
                }
            }
        }
    }
    if needs_health_check(old)
        && needs_health_check(new)
        && new.health_check_node_port.unwrap_or(0) == 0
    {
        new.health_check_node_port = old.health_check_node_port;
    }
}

/// The node ports a spec holds.
pub(super) fn node_ports(spec: &ServiceSpec) -> BTreeSet<i32> {
    spec.ports
        .iter()
        .flatten()
        .filter_map(|p| p.node_port.filter(|n| *n != 0))
        .collect()
}

/// `dropTypeDependentFields`: a change of type drops what only the old type used (and the
/// server may have set), unless the user changed it too — then validation says no.
pub(super) fn drop_type_dependent_fields(new: &mut ServiceSpec, old: &ServiceSpec) {
    let needs_cluster_ip = |s: &ServiceSpec| service_type(s) != EXTERNAL_NAME;
    if needs_cluster_ip(old) && !needs_cluster_ip(new) {
        if old.cluster_ip.as_deref().unwrap_or("") == new.cluster_ip.as_deref().unwrap_or("")
            && cluster_ips(old) == cluster_ips(new)
        {
            new.cluster_ip = None;
            new.cluster_ips = None;
        }
        if old.ip_families.as_deref().unwrap_or_default()
            == new.ip_families.as_deref().unwrap_or_default()
        {
            new.ip_families = None;
        }
        if old.ip_family_policy == new.ip_family_policy {
            new.ip_family_policy = None;
        }
    }
    // Node ports go unless the user added one.
    if needs_node_ports(old)
        && !needs_node_ports(new)
        && node_ports(old).is_superset(&node_ports(new))
    {
        for port in new.ports.iter_mut().flatten() {
            port.node_port = None;
        }
    }
    if needs_health_check(old)
        && !needs_health_check(new)
        && old.health_check_node_port == new.health_check_node_port
    {
        new.health_check_node_port = None;
    }
    let leaves_load_balancer =
        service_type(old) == LOAD_BALANCER && service_type(new) != LOAD_BALANCER;
    if leaves_load_balancer
        && new.allocate_load_balancer_node_ports.is_some()
        && new.allocate_load_balancer_node_ports == old.allocate_load_balancer_node_ports
    {
        new.allocate_load_balancer_node_ports = None;
    }
    if leaves_load_balancer && new.load_balancer_class == old.load_balancer_class {
        new.load_balancer_class = None;
    }
    if externally_accessible(old)
        && !externally_accessible(new)
        && new.external_traffic_policy == old.external_traffic_policy
    {
        new.external_traffic_policy = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ServicePort;

    fn port(name: &str, number: i32, node_port: Option<i32>) -> ServicePort {
        ServicePort {
            name: (!name.is_empty()).then(|| name.to_string()),
            port: number,
            node_port,
            ..ServicePort::default()
        }
    }

    fn spec(service_type: &str, ports: Vec<ServicePort>) -> ServiceSpec {
        ServiceSpec {
            type_: Some(service_type.into()),
            ports: Some(ports),
            ..ServiceSpec::default()
        }
    }

    #[test]
    fn defaults_follow_the_type() {
        // (type, externalIPs, externalTrafficPolicy, internalTrafficPolicy, allocateLBNodePorts)
        let cases = [
            ("ClusterIP", false, None, Some("Cluster"), None),
            ("ClusterIP", true, Some("Cluster"), Some("Cluster"), None),
            ("NodePort", false, Some("Cluster"), Some("Cluster"), None),
            (
                "LoadBalancer",
                false,
                Some("Cluster"),
                Some("Cluster"),
                Some(true),
            ),
            ("ExternalName", false, None, None, None),
        ];
        for (service_type, external_ips, etp, itp, alloc) in cases {
            let mut s = spec(service_type, vec![port("", 80, Some(0))]);
            if external_ips {
                s.external_ips = Some(vec!["192.0.2.7".into()]);
            }
            set_defaults(&mut s);
            assert_eq!(s.external_traffic_policy.as_deref(), etp, "{service_type}");
            assert_eq!(s.internal_traffic_policy.as_deref(), itp, "{service_type}");
            assert_eq!(s.allocate_load_balancer_node_ports, alloc, "{service_type}");
            assert_eq!(s.session_affinity.as_deref(), Some("None"));
            let p = &s.ports.as_ref().expect("ports")[0];
            assert_eq!(p.protocol.as_deref(), Some("TCP"));
            assert_eq!(p.target_port, Some(IntOrString::Int(80)));
            assert_eq!(p.node_port, None, "0 is Go's absent");
        }
        let mut untyped = ServiceSpec::default();
        set_defaults(&mut untyped);
        assert_eq!(untyped.type_.as_deref(), Some("ClusterIP"));
    }

    #[test]
    fn client_ip_affinity_gets_three_hours_and_none_gets_no_config() {
        let mut s = ServiceSpec {
            session_affinity: Some("ClientIP".into()),
            ..ServiceSpec::default()
        };
        set_defaults(&mut s);
        let timeout = s
            .session_affinity_config
            .and_then(|c| c.client_ip)
            .and_then(|c| c.timeout_seconds);
        assert_eq!(timeout, Some(10800));
        let mut none = ServiceSpec {
            session_affinity_config: Some(SessionAffinityConfig::default()),
            ..ServiceSpec::default()
        };
        set_defaults(&mut none);
        assert_eq!(none.session_affinity_config, None);
    }

    #[test]
    fn named_target_ports_stay_and_empty_ones_take_the_port() {
        let mut s = spec("ClusterIP", vec![port("a", 80, None), port("b", 81, None)]);
        if let Some(ports) = s.ports.as_mut() {
            ports[0].target_port = Some(IntOrString::String("http".into()));
            ports[1].target_port = Some(IntOrString::String(String::new()));
        }
        set_defaults(&mut s);
        let ports = s.ports.expect("ports");
        assert_eq!(
            ports[0].target_port,
            Some(IntOrString::String("http".into()))
        );
        assert_eq!(ports[1].target_port, Some(IntOrString::Int(81)));
    }

    #[test]
    fn cluster_ips_follow_cluster_ip() {
        let ips = |ip: Option<&str>, list: Option<Vec<&str>>| ServiceSpec {
            cluster_ip: ip.map(str::to_string),
            cluster_ips: list.map(|l| l.into_iter().map(str::to_string).collect()),
            ..ServiceSpec::default()
        };
        // (new, old, clusterIPs after)
        let cases = [
            (ips(Some("10.43.0.9"), None), None, Some(vec!["10.43.0.9"])),
            (ips(None, None), None, None),
            (
                ips(Some("10.43.0.9"), None),
                Some(ips(Some("10.43.0.9"), Some(vec!["10.43.0.9"]))),
                Some(vec!["10.43.0.9"]),
            ),
            (
                ips(None, Some(vec!["10.43.0.9"])),
                Some(ips(Some("10.43.0.9"), Some(vec!["10.43.0.9"]))),
                None,
            ),
            (
                ips(Some("10.43.0.7"), Some(vec!["10.43.0.9"])),
                Some(ips(Some("10.43.0.9"), Some(vec!["10.43.0.9"]))),
                Some(vec!["10.43.0.7"]),
            ),
        ];
        for (mut new, old, want) in cases {
            normalize_cluster_ips(&mut new, old.as_ref());
            let want: Option<Vec<String>> =
                want.map(|w| w.into_iter().map(str::to_string).collect());
            assert_eq!(new.cluster_ips, want, "old {old:?}");
        }
    }

    #[test]
    fn updates_keep_what_was_allocated() {
        let mut old = spec(
            "NodePort",
            vec![
                port("http", 80, Some(31000)),
                port("https", 443, Some(31001)),
            ],
        );
        old.cluster_ip = Some("10.43.1.2".into());
        old.cluster_ips = Some(vec!["10.43.1.2".into()]);
        // By name, not position; a value the new spec uses elsewhere is not patched in twice.
        let mut new = spec(
            "NodePort",
            vec![
                port("https", 8443, None),
                port("http", 80, Some(31001)),
                port("new", 90, None),
            ],
        );
        patch_allocated_values(&mut new, &old);
        assert_eq!(new.cluster_ip.as_deref(), Some("10.43.1.2"));
        assert_eq!(new.cluster_ips, old.cluster_ips);
        let node_ports: Vec<Option<i32>> =
            new.ports.iter().flatten().map(|p| p.node_port).collect();
        assert_eq!(node_ports, [None, Some(31001), None]);
        // An ExternalName service keeps nothing of the old cluster IP.
        let mut external = spec("ExternalName", vec![]);
        patch_allocated_values(&mut external, &old);
        assert_eq!(external.cluster_ip, None);
    }

    #[test]
    fn leaving_a_type_drops_what_only_it_used() {
        let mut old = spec("LoadBalancer", vec![port("http", 80, Some(31000))]);
        old.cluster_ip = Some("10.43.1.2".into());
        old.cluster_ips = Some(vec!["10.43.1.2".into()]);
        old.ip_families = Some(vec!["IPv4".into()]);
        old.ip_family_policy = Some("SingleStack".into());
        old.external_traffic_policy = Some("Local".into());
        old.health_check_node_port = Some(31500);
        old.allocate_load_balancer_node_ports = Some(true);

        let mut cluster_ip = old.clone();
        cluster_ip.type_ = Some("ClusterIP".into());
        drop_type_dependent_fields(&mut cluster_ip, &old);
        assert_eq!(cluster_ip.cluster_ip.as_deref(), Some("10.43.1.2"));
        assert_eq!(cluster_ip.ports.as_ref().expect("ports")[0].node_port, None);
        assert_eq!(cluster_ip.health_check_node_port, None);
        assert_eq!(cluster_ip.allocate_load_balancer_node_ports, None);
        assert_eq!(cluster_ip.external_traffic_policy, None);

        let mut external = old.clone();
        external.type_ = Some("ExternalName".into());
        drop_type_dependent_fields(&mut external, &old);
        assert_eq!(
            (
                external.cluster_ip,
                external.cluster_ips,
                external.ip_families,
                external.ip_family_policy
            ),
            (None, None, None, None)
        );

        // A node port the user added is left for validation to refuse.
        let mut added = old.clone();
        added.type_ = Some("ClusterIP".into());
        added.ports = Some(vec![port("http", 80, Some(31999))]);
        drop_type_dependent_fields(&mut added, &old);
        assert_eq!(added.ports.expect("ports")[0].node_port, Some(31999));
    }
}
