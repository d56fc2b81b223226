//! Upstream's `ValidateService` and `ValidateServiceUpdate`, with its field paths and messages:
//! ports, type, session affinity, cluster IPs and families, external IPs and names, traffic
//! policies, load balancer fields, and what may not change once set. Values are printed as Go's
//! `field.Error` prints them (`[]string{"10.43.0.5"}`, `core.ServicePort{...}`).
//!
//! What is allocated before validation upstream (cluster IPs, node ports, the health check node
//! port) is allocated after it here, so a spec still waiting for them is valid.

use std::collections::BTreeSet;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::defaults::{externally_accessible, needs_health_check};
use super::{
    cluster_ips, is_headless, service_type, CLUSTER_IP, EXTERNAL_NAME, LOAD_BALANCER, NODE_PORT,
};
use crate::registry::generic::{
    dns1123_label_problems, dns1123_subdomain_problems, label_value_problems, parse_ip_sloppy,
    port_name_problems, qualified_name_problems,
};
use crate::status::FieldError;

const SERVICE_TYPES: [&str; 4] = [CLUSTER_IP, EXTERNAL_NAME, LOAD_BALANCER, NODE_PORT];
const SESSION_AFFINITIES: [&str; 2] = ["ClientIP", "None"];
const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];
const TRAFFIC_POLICIES: [&str; 2] = ["Cluster", "Local"];
const IP_FAMILIES: [&str; 2] = ["IPv4", "IPv6"];
const IP_FAMILY_POLICIES: [&str; 3] = ["PreferDualStack", "RequireDualStack", "SingleStack"];
const TRAFFIC_DISTRIBUTIONS: [&str; 1] = ["PreferClose"];
/// `MaxClientIPServiceAffinitySeconds`: a day.
const MAX_CLIENT_IP_TIMEOUT_SECONDS: i32 = 86400;
const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";
const ONLY_LOAD_BALANCER: &str = "may only be used when `type` is 'LoadBalancer'";
const TOPOLOGY_MODE: &str = "service.kubernetes.io/topology-mode";
const TOPOLOGY_HINTS: &str = "service.kubernetes.io/topology-aware-hints";
const SOURCE_RANGES: &str = "service.beta.kubernetes.io/load-balancer-source-ranges";
const IP_MESSAGE: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
const CIDR_MESSAGE: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";
const CHANGED: &str = "may not change once set";

/// A `[]string` as Go's `%#v` prints it.
pub(super) fn go_strings(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// An optional `[]string` as Go's `%#v` prints it: `nil` is `[]string(nil)`.
fn go_optional_strings(values: &Option<Vec<String>>) -> String {
    match values {
        Some(values) => go_strings(values),
        None => "[]string(nil)".into(),
    }
}

/// A string pointer as `field.Error` prints it: `nil` is `"null"`.
fn or_null(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("null")
}

/// `ValidateService` (`old` is `None`) or `ValidateServiceUpdate`.
pub(super) fn validate(new: &Service, old: Option<&Service>, errors: &mut Vec<FieldError>) {
    let default = ServiceSpec::default();
    let spec = new.spec.as_ref().unwrap_or(&default);
    if let Some(old) = old {
        let old_spec = old.spec.as_ref().unwrap_or(&default);
        cluster_ips_update(spec, old_spec, errors);
        ip_families_update(spec, old_spec, errors);
        load_balancer_class(spec, Some(old_spec), errors);
        if needs_health_check(old_spec)
            && needs_health_check(spec)
            && spec.health_check_node_port != old_spec.health_check_node_port
        {
            errors.push(FieldError::forbidden(
                "spec.healthCheckNodePort",
                "field is immutable",
            ));
        }
    }
    validate_service(new, spec, errors);
}

fn validate_service(service: &Service, spec: &ServiceSpec, errors: &mut Vec<FieldError>) {
    if let Some(annotations) = &service.metadata.annotations {
        if let (Some(mode), Some(hints)) = (
            annotations.get(TOPOLOGY_MODE),
            annotations.get(TOPOLOGY_HINTS),
        ) {
            if mode != hints {
                errors.push(FieldError::invalid(
                    format!("metadata.annotations[{TOPOLOGY_MODE}]"),
                    mode.as_str(),
                    format!("must match annotations[{TOPOLOGY_HINTS}] when both are specified"),
                ));
            }
        }
    }
    let service_type = service_type(spec);
    let ports = spec.ports.as_deref().unwrap_or_default();
    if ports.is_empty() && !is_headless(spec) && service_type != EXTERNAL_NAME {
        errors.push(FieldError::required("spec.ports", ""));
    }
    match service_type {
        LOAD_BALANCER | NODE_PORT if is_headless(spec) => {
            errors.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                "None",
                format!("may not be set to 'None' for {service_type} services"),
            ));
        }
        EXTERNAL_NAME => external_name(spec, errors),
        _ => {}
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        service_port(
            port,
            &format!("spec.ports[{i}]"),
            ports.len() > 1,
            &mut names,
            errors,
        );
    }
    for (key, value) in spec.selector.iter().flatten() {
        for problem in qualified_name_problems(key) {
            errors.push(FieldError::invalid("spec.selector", key.as_str(), problem));
        }
        for problem in label_value_problems(value) {
            errors.push(FieldError::invalid(
                "spec.selector",
                value.as_str(),
                problem,
            ));
        }
    }
    session_affinity(spec, errors);
    errors.extend(cluster_ips_related_fields(spec));
    for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
        external_ip(ip, &format!("spec.externalIPs[{i}]"), errors);
    }
    match spec.type_.as_deref().unwrap_or("") {
        "" => errors.push(FieldError::required("spec.type", "")),
        t if !SERVICE_TYPES.contains(&t) => {
            errors.push(FieldError::not_supported("spec.type", t, &SERVICE_TYPES))
        }
        _ => {}
    }
    if service_type == CLUSTER_IP {
        for (i, port) in ports.iter().enumerate() {
            if port.node_port.unwrap_or(0) != 0 {
                errors.push(FieldError::forbidden(
                    format!("spec.ports[{i}].nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
    duplicate_ports(ports, errors);
    source_ranges(service, spec, errors);
    match (spec.allocate_load_balancer_node_ports, service_type) {
        (Some(_), t) if t != LOAD_BALANCER => errors.push(FieldError::forbidden(
            "spec.allocateLoadBalancerNodePorts",
            ONLY_LOAD_BALANCER,
        )),
        // Upstream's path, without `spec.` (defaulting sets the field, so it is not seen).
        (None, LOAD_BALANCER) => {
            errors.push(FieldError::required("allocateLoadBalancerNodePorts", ""))
        }
        _ => {}
    }
    load_balancer_class(spec, None, errors);
    traffic_policies(spec, errors);
    if let Some(distribution) = spec.traffic_distribution.as_deref() {
        if !TRAFFIC_DISTRIBUTIONS.contains(&distribution) {
            errors.push(FieldError::not_supported(
                "spec.trafficDistribution",
                distribution,
                &TRAFFIC_DISTRIBUTIONS,
            ));
        }
    }
}

/// An ExternalName service: a DNS name (a trailing dot allowed), no cluster IPs or families.
fn external_name(spec: &ServiceSpec, errors: &mut Vec<FieldError>) {
    if !cluster_ips(spec).is_empty() {
        errors.push(FieldError::forbidden(
            "spec.clusterIPs",
            "may not be set for ExternalName services",
        ));
    }
    if spec.ip_families.as_ref().is_some_and(|f| !f.is_empty()) {
        errors.push(FieldError::forbidden(
            "spec.ipFamilies",
            "may not be set for ExternalName services",
        ));
    }
    if spec.ip_family_policy.is_some() {
        errors.push(FieldError::forbidden(
            "spec.ipFamilyPolicy",
            "may not be set for ExternalName services",
        ));
    }
    let name = spec.external_name.as_deref().unwrap_or("");
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        errors.push(FieldError::required("spec.externalName", ""));
    }
    for problem in dns1123_subdomain_problems(name)
        .into_iter()
        .filter(|_| !name.is_empty())
    {
        errors.push(FieldError::invalid("spec.externalName", name, problem));
    }
}

/// `validateServicePort`.
fn service_port(
    port: &ServicePort,
    path: &str,
    require_name: bool,
    names: &mut BTreeSet<String>,
    errors: &mut Vec<FieldError>,
) {
    let name = port.name.as_deref().unwrap_or("");
    if name.is_empty() {
        if require_name {
            errors.push(FieldError::required(format!("{path}.name"), ""));
        }
    } else {
        for problem in dns1123_label_problems(name) {
            errors.push(FieldError::invalid(format!("{path}.name"), name, problem));
        }
        if !names.insert(name.to_string()) {
            errors.push(FieldError::duplicate(format!("{path}.name"), name));
        }
    }
    if !(1..=65535).contains(&port.port) {
        errors.push(FieldError::invalid_raw(
            format!("{path}.port"),
            port.port.to_string(),
            PORT_RANGE,
        ));
    }
    match port.protocol.as_deref().unwrap_or("") {
        "" => errors.push(FieldError::required(format!("{path}.protocol"), "")),
        p if !PROTOCOLS.contains(&p) => errors.push(FieldError::not_supported(
            format!("{path}.protocol"),
            p,
            &PROTOCOLS,
        )),
        _ => {}
    }
    match &port.target_port {
        Some(IntOrString::String(name)) => {
            for problem in port_name_problems(name) {
                errors.push(FieldError::invalid(
                    format!("{path}.targetPort"),
                    name.as_str(),
                    problem,
                ));
            }
        }
        number => {
            let number = match number {
                Some(IntOrString::Int(n)) => *n,
                _ => 0,
            };
            if !(1..=65535).contains(&number) {
                errors.push(FieldError::invalid_raw(
                    format!("{path}.targetPort"),
                    number.to_string(),
                    PORT_RANGE,
                ));
            }
        }
    }
    if let Some(protocol) = &port.app_protocol {
        for problem in qualified_name_problems(protocol) {
            errors.push(FieldError::invalid(
                format!("{path}.appProtocol"),
                protocol.as_str(),
                problem,
            ));
        }
    }
}

/// No two ports share a protocol and port, or a protocol and node port.
fn duplicate_ports(ports: &[ServicePort], errors: &mut Vec<FieldError>) {
    let protocol = |p: &ServicePort| p.protocol.clone().unwrap_or_default();
    let mut node_ports = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let node_port = port.node_port.unwrap_or(0);
        if node_port != 0 && !node_ports.insert((protocol(port), node_port)) {
            errors.push(FieldError::duplicate_raw(
                format!("spec.ports[{i}].nodePort"),
                node_port.to_string(),
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        if !seen.insert((protocol(port), port.port)) {
            // The key upstream compares, printed as Go prints a `core.ServicePort`.
            errors.push(FieldError::duplicate_raw(
                format!("spec.ports[{i}]"),
                format!(
                    "core.ServicePort{{Name:\"\", Protocol:{:?}, AppProtocol:(*string)(nil), Port:{}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
                    protocol(port),
                    port.port
                ),
            ));
        }
    }
}

fn session_affinity(spec: &ServiceSpec, errors: &mut Vec<FieldError>) {
    let path = "spec.sessionAffinityConfig";
    match spec.session_affinity.as_deref().unwrap_or("") {
        "" => errors.push(FieldError::required("spec.sessionAffinity", "")),
        "ClientIP" => {
            let required = |field: String| {
                FieldError::required(field, "when session affinity type is ClientIP")
            };
            let Some(config) = &spec.session_affinity_config else {
                errors.push(required(path.into()));
                return;
            };
            let Some(client_ip) = &config.client_ip else {
                errors.push(required(format!("{path}.clientIP")));
                return;
            };
            match client_ip.timeout_seconds {
                None => errors.push(required(format!("{path}.clientIP.timeoutSeconds"))),
                Some(t) if t <= 0 || t > MAX_CLIENT_IP_TIMEOUT_SECONDS => {
                    errors.push(FieldError::invalid_raw(
                        format!("{path}.clientIP.timeoutSeconds"),
                        t.to_string(),
                        format!(
                            "must be greater than 0 and less than {MAX_CLIENT_IP_TIMEOUT_SECONDS}"
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        "None" => {
            if spec.session_affinity_config.is_some() {
                errors.push(FieldError::forbidden(
                    path,
                    "must not be set when session affinity is None",
                ));
            }
        }
        other => errors.push(FieldError::not_supported(
            "spec.sessionAffinity",
            other,
            &SESSION_AFFINITIES,
        )),
    }
}

/// `ValidateServiceClusterIPsRelatedFields`: `clusterIP` and `clusterIPs` agree, the addresses
/// are addresses (or `None`, alone), one per family, of the families listed; the families and
/// policy are known values.
pub(super) fn cluster_ips_related_fields(spec: &ServiceSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if service_type(spec) == EXTERNAL_NAME {
        return errors;
    }
    let ips = cluster_ips(spec);
    let printed = || go_optional_strings(&spec.cluster_ips);
    match spec.cluster_ip.as_deref().unwrap_or("") {
        "" if !ips.is_empty() => errors.push(FieldError::invalid_raw(
            "spec.clusterIPs",
            printed(),
            "must be empty when `clusterIP` is not specified",
        )),
        "" => {}
        _ if ips.is_empty() => errors.push(FieldError::required("spec.clusterIPs", "")),
        ip if ips[0] != ip => errors.push(FieldError::invalid_raw(
            "spec.clusterIPs",
            printed(),
            "first value must match `clusterIP`",
        )),
        _ => {}
    }
    let mut seen = BTreeSet::new();
    for (i, family) in spec.ip_families.iter().flatten().enumerate() {
        let path = format!("spec.ipFamilies[{i}]");
        if !IP_FAMILIES.contains(&family.as_str()) {
            errors.push(FieldError::not_supported(
                path.clone(),
                family,
                &IP_FAMILIES,
            ));
        }
        if !seen.insert(family) {
            errors.push(FieldError::duplicate(path, family.as_str()));
        }
    }
    if let Some(policy) = spec.ip_family_policy.as_deref() {
        if !IP_FAMILY_POLICIES.contains(&policy) {
            errors.push(FieldError::not_supported(
                "spec.ipFamilyPolicy",
                policy,
                &IP_FAMILY_POLICIES,
            ));
        }
    }
    let mut has_invalid = false;
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && ip == "None" {
            if ips.len() > 1 {
                has_invalid = true;
                errors.push(FieldError::invalid_raw(
                    "spec.clusterIPs",
                    printed(),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        if parse_ip_sloppy(ip).is_none() {
            has_invalid = true;
            errors.push(FieldError::invalid(
                format!("spec.clusterIPs[{i}]"),
                ip.as_str(),
                IP_MESSAGE,
            ));
        }
    }
    if ips.len() > 2 {
        errors.push(FieldError::invalid_raw(
            "spec.clusterIPs",
            printed(),
            "may only hold up to 2 values",
        ));
    }
    if has_invalid {
        return errors;
    }
    let is_v6 = |ip: &str| matches!(parse_ip_sloppy(ip), Some(IpAddr::V6(_)));
    if ips.len() > 1 {
        let v6 = ips.iter().filter(|ip| is_v6(ip)).count();
        if v6 == 0 || v6 == ips.len() {
            errors.push(FieldError::invalid_raw(
                "spec.clusterIPs",
                printed(),
                "may specify no more than one IP for each IP family",
            ));
        }
    }
    if !is_headless(spec) {
        for (i, (ip, family)) in ips
            .iter()
            .zip(spec.ip_families.iter().flatten())
            .enumerate()
        {
            let expected = match family.as_str() {
                "IPv4" if is_v6(ip) => "IPv4",
                "IPv6" if !is_v6(ip) => "IPv6",
                _ => continue,
            };
            errors.push(FieldError::invalid(
                format!("spec.clusterIPs[{i}]"),
                ip.as_str(),
                format!("expected an {expected} value as indicated by `ipFamilies[{i}]`"),
            ));
        }
    }
    errors
}

/// `validateUpgradeDowngradeClusterIPs`: the primary cluster IP never changes.
fn cluster_ips_update(new: &ServiceSpec, old: &ServiceSpec, errors: &mut Vec<FieldError>) {
    if service_type(new) == EXTERNAL_NAME || service_type(old) == EXTERNAL_NAME {
        return;
    }
    if is_headless(new) && is_headless(old) {
        return;
    }
    let (new_ips, old_ips) = (cluster_ips(new), cluster_ips(old));
    let printed = go_optional_strings(&new.cluster_ips);
    let changed = |i: usize| {
        FieldError::invalid_raw(format!("spec.clusterIPs[{i}]"), printed.clone(), CHANGED)
    };
    if new_ips.len() == old_ips.len() {
        for (i, (new_ip, old_ip)) in new_ips.iter().zip(old_ips).enumerate() {
            if new_ip != old_ip {
                errors.push(changed(i));
            }
        }
    } else if new_ips.len() < old_ips.len() {
        if new_ips.is_empty() {
            errors.push(FieldError::invalid_raw(
                "spec.clusterIPs[0]",
                printed.clone(),
                "primary clusterIP can not be unset",
            ));
        } else if new_ips[0] != old_ips[0] {
            errors.push(changed(0));
        }
        if new_ips.len() == 1 && new.ip_family_policy.as_deref() != Some("SingleStack") {
            errors.push(FieldError::invalid(
                "spec.ipFamilyPolicy",
                or_null(&new.ip_family_policy),
                "must be set to 'SingleStack' when releasing the secondary clusterIP",
            ));
        }
    } else if !old_ips.is_empty() && new_ips[0] != old_ips[0] {
        errors.push(changed(0));
    }
}

/// `validateUpgradeDowngradeIPFamilies`: the primary family never changes (upstream's paths and
/// values, `ipFamilies[0]` whichever entry changed).
fn ip_families_update(new: &ServiceSpec, old: &ServiceSpec, errors: &mut Vec<FieldError>) {
    if service_type(new) == EXTERNAL_NAME || service_type(old) == EXTERNAL_NAME {
        return;
    }
    if is_headless(new) || is_headless(old) {
        return;
    }
    let new_families = new.ip_families.as_deref().unwrap_or_default();
    let old_families = old.ip_families.as_deref().unwrap_or_default();
    let path = "spec.ipFamilies[0]";
    let ips_printed = || go_optional_strings(&new.cluster_ips);
    if new_families.len() == old_families.len() {
        for (new_family, old_family) in new_families.iter().zip(old_families) {
            if new_family != old_family {
                errors.push(FieldError::invalid_raw(
                    path,
                    go_optional_strings(&new.ip_families),
                    CHANGED,
                ));
            }
        }
    } else if new_families.len() < old_families.len() {
        if cluster_ips(new).is_empty() {
            errors.push(FieldError::invalid_raw(
                path,
                go_optional_strings(&new.ip_families),
                "primary ipFamily can not be unset",
            ));
        }
        if !new_families.is_empty() && new_families[0] != old_families[0] {
            errors.push(FieldError::invalid_raw(path, ips_printed(), CHANGED));
        }
        if new_families.len() == 1 && new.ip_family_policy.as_deref() != Some("SingleStack") {
            errors.push(FieldError::invalid(
                "spec.ipFamilyPolicy",
                or_null(&new.ip_family_policy),
                "must be set to 'SingleStack' when releasing the secondary ipFamily",
            ));
        }
    } else if !old_families.is_empty() && new_families[0] != old_families[0] {
        errors.push(FieldError::invalid_raw(path, ips_printed(), CHANGED));
    }
}

/// `validateLoadBalancerClassField`: only for LoadBalancers, a qualified name, fixed once set.
fn load_balancer_class(
    spec: &ServiceSpec,
    old: Option<&ServiceSpec>,
    errors: &mut Vec<FieldError>,
) {
    let is_load_balancer = |s: &ServiceSpec| service_type(s) == LOAD_BALANCER;
    let path = "spec.loadBalancerClass";
    if let Some(old) = old {
        if is_load_balancer(old)
            && is_load_balancer(spec)
            && old.load_balancer_class != spec.load_balancer_class
        {
            errors.push(FieldError::invalid(
                path,
                or_null(&spec.load_balancer_class),
                CHANGED,
            ));
        }
    }
    match &spec.load_balancer_class {
        Some(class) if is_load_balancer(spec) => {
            for problem in qualified_name_problems(class) {
                errors.push(FieldError::invalid(path, class.as_str(), problem));
            }
        }
        Some(_) => errors.push(FieldError::forbidden(path, ONLY_LOAD_BALANCER)),
        None => {}
    }
}

/// `externalTrafficPolicy` only where traffic comes from outside, `healthCheckNodePort` only for
/// a LoadBalancer that keeps it local, `internalTrafficPolicy` a known value.
fn traffic_policies(spec: &ServiceSpec, errors: &mut Vec<FieldError>) {
    let external = spec.external_traffic_policy.as_deref().unwrap_or("");
    if !externally_accessible(spec) {
        if !external.is_empty() {
            errors.push(FieldError::invalid(
                "spec.externalTrafficPolicy",
                external,
                "may only be set for externally-accessible services",
            ));
        }
    } else if external.is_empty() {
        errors.push(FieldError::required("spec.externalTrafficPolicy", ""));
    } else if !TRAFFIC_POLICIES.contains(&external) {
        errors.push(FieldError::not_supported(
            "spec.externalTrafficPolicy",
            external,
            &TRAFFIC_POLICIES,
        ));
    }
    let health_check = spec.health_check_node_port.unwrap_or(0);
    if !needs_health_check(spec) {
        if health_check != 0 {
            errors.push(FieldError::invalid_raw(
                "spec.healthCheckNodePort",
                health_check.to_string(),
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ));
        }
    } else if health_check != 0 && !(1..=65535).contains(&health_check) {
        // 0 is allocated after validation here (before it upstream, so never seen).
        errors.push(FieldError::invalid_raw(
            "spec.healthCheckNodePort",
            health_check.to_string(),
            PORT_RANGE,
        ));
    }
    match spec.internal_traffic_policy.as_deref() {
        // Not required of ExternalName services, for the sake of those stored without it.
        None if matches!(service_type(spec), CLUSTER_IP | NODE_PORT | LOAD_BALANCER) => {
            errors.push(FieldError::required("spec.internalTrafficPolicy", ""))
        }
        Some(policy) if !TRAFFIC_POLICIES.contains(&policy) => errors.push(
            FieldError::not_supported("spec.internalTrafficPolicy", policy, &TRAFFIC_POLICIES),
        ),
        _ => {}
    }
}

/// `loadBalancerSourceRanges` (or its older annotation): CIDRs, for LoadBalancers only.
fn source_ranges(service: &Service, spec: &ServiceSpec, errors: &mut Vec<FieldError>) {
    let is_load_balancer = service_type(spec) == LOAD_BALANCER;
    let ranges = spec
        .load_balancer_source_ranges
        .as_deref()
        .unwrap_or_default();
    if !ranges.is_empty() {
        // Upstream's path, capitalised.
        let path = "spec.LoadBalancerSourceRanges";
        if !is_load_balancer {
            errors.push(FieldError::forbidden(path, ONLY_LOAD_BALANCER));
        }
        for (i, range) in ranges.iter().enumerate() {
            // Space-padded values are allowed, for the annotation's sake.
            let range = range.trim();
            if !is_cidr(range) {
                errors.push(FieldError::invalid(
                    format!("{path}[{i}]"),
                    range,
                    CIDR_MESSAGE,
                ));
            }
        }
        return;
    }
    let Some(value) = service
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SOURCE_RANGES))
    else {
        return;
    };
    let path = format!("metadata.annotations[{SOURCE_RANGES}]");
    if !is_load_balancer {
        errors.push(FieldError::forbidden(path.clone(), ONLY_LOAD_BALANCER));
    }
    let value = value.trim();
    if value.is_empty() {
        return;
    }
    for range in value.split(',').map(str::trim) {
        if !is_cidr(range) {
            errors.push(FieldError::invalid(path.clone(), range, CIDR_MESSAGE));
        }
    }
}

/// `ParseCIDRSloppy` succeeds.
fn is_cidr(value: &str) -> bool {
    let Some((ip, bits)) = value.split_once('/') else {
        return false;
    };
    let max = match parse_ip_sloppy(ip) {
        Some(IpAddr::V4(_)) => 32,
        Some(IpAddr::V6(_)) => 128,
        None => return false,
    };
    !bits.is_empty()
        && bits.len() <= 3
        && bits.bytes().all(|b| b.is_ascii_digit())
        && bits.parse::<u8>().is_ok_and(|b| b <= max)
}

/// An external IP: an address, and not one that means "this host" or "this link"
/// (`ValidateNonSpecialIP`).
fn external_ip(ip: &str, path: &str, errors: &mut Vec<FieldError>) {
    let Some(address) = parse_ip_sloppy(ip) else {
        errors.push(FieldError::invalid(path, ip, IP_MESSAGE));
        return;
    };
    let (link_local, link_local_multicast) = match address {
        IpAddr::V4(a) => (a.is_link_local(), a.octets()[..3] == [224, 0, 0]),
        IpAddr::V6(a) => {
            let o = a.octets();
            (
                o[0] == 0xfe && o[1] & 0xc0 == 0x80,
                o[0] == 0xff && o[1] & 0x0f == 0x02,
            )
        }
    };
    if address.is_unspecified() {
        errors.push(FieldError::invalid(
            path,
            ip,
            format!("may not be unspecified ({ip})"),
        ));
    }
    if address.is_loopback() {
        errors.push(FieldError::invalid(
            path,
            ip,
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        ));
    }
    if link_local {
        errors.push(FieldError::invalid(
            path,
            ip,
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    if link_local_multicast {
        errors.push(FieldError::invalid(
            path,
            ip,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// A valid ClusterIP service as the server has it before allocating, with `spec` merged in.
    fn service(spec: Value) -> Service {
        let mut base = json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {
            "type": "ClusterIP", "selector": {"app": "web"}, "sessionAffinity": "None",
            "internalTrafficPolicy": "Cluster", "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"],
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}]}});
        if let (Some(base), Value::Object(changes)) = (base["spec"].as_object_mut(), spec) {
            for (k, v) in changes {
                if v.is_null() {
                    base.remove(&k);
                } else {
                    base.insert(k, v);
                }
            }
        }
        serde_json::from_value(base).expect("a Service")
    }

    fn errors_of(new: &Service, old: Option<&Service>) -> Vec<String> {
        let mut errors = Vec::new();
        validate(new, old, &mut errors);
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn specs_and_their_errors() {
        let tcp = |port: i64| json!({"port": port, "protocol": "TCP", "targetPort": port});
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (json!({}), vec![]),
            (json!({"ports": null}), vec!["spec.ports: Required value"]),
            (json!({"ports": null, "clusterIP": "None", "clusterIPs": ["None"]}), vec![]),
            (json!({"ports": [{"port": 0, "protocol": "TCP", "targetPort": 70000}]}), vec![
                "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            ]),
            (json!({"ports": [tcp(80), tcp(81)]}), vec![
                "spec.ports[0].name: Required value",
                "spec.ports[1].name: Required value",
            ]),
            (json!({"ports": [
                {"name": "Web", "port": 80, "protocol": "TCP", "targetPort": 80},
                {"name": "web", "port": 81, "protocol": "ICMP", "targetPort": "http--x"},
                {"name": "web", "port": 80, "protocol": "TCP", "targetPort": "8080"}]}), vec![
                "spec.ports[0].name: Invalid value: \"Web\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                "spec.ports[1].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "spec.ports[1].targetPort: Invalid value: \"http--x\": must not contain consecutive hyphens",
                "spec.ports[2].name: Duplicate value: \"web\"",
                "spec.ports[2].targetPort: Invalid value: \"8080\": must contain at least one letter (a-z)",
                "spec.ports[2]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}",
            ]),
            (json!({"ports": [{"name": "a", "port": 53, "protocol": "TCP", "targetPort": 53},
                              {"name": "b", "port": 53, "protocol": "UDP", "targetPort": 53}]}), vec![]),
            (json!({"ports": [{"port": 80, "protocol": "TCP", "targetPort": 80, "nodePort": 30080}]}), vec![
                "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
            ]),
            (json!({"type": "NodePort", "externalTrafficPolicy": "Cluster", "ports": [
                {"name": "a", "port": 80, "protocol": "TCP", "targetPort": 80, "nodePort": 30080},
                {"name": "b", "port": 81, "protocol": "TCP", "targetPort": 81, "nodePort": 30080}]}), vec![
                "spec.ports[1].nodePort: Duplicate value: 30080",
            ]),
            (json!({"type": "Balanced"}), vec![
                "spec.type: Unsupported value: \"Balanced\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
            ]),
            (json!({"sessionAffinity": "Sticky"}), vec![
                "spec.sessionAffinity: Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\"",
            ]),
            (json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86401}}}), vec![
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 86401: must be greater than 0 and less than 86400",
            ]),
            (json!({"type": "NodePort", "externalTrafficPolicy": "Cluster", "clusterIP": "None", "clusterIPs": ["None"]}), vec![
                "spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services",
            ]),
            (json!({"type": "ExternalName", "internalTrafficPolicy": null, "ipFamilyPolicy": null, "ipFamilies": null, "ports": null, "externalName": "db.example.com."}), vec![]),
            (json!({"type": "ExternalName", "clusterIP": "10.43.0.9", "clusterIPs": ["10.43.0.9"], "externalName": "Not_A.Name"}), vec![
                "spec.clusterIPs: Forbidden: may not be set for ExternalName services",
                "spec.ipFamilies: Forbidden: may not be set for ExternalName services",
                "spec.ipFamilyPolicy: Forbidden: may not be set for ExternalName services",
                "spec.externalName: Invalid value: \"Not_A.Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            ]),
            (json!({"type": "ExternalName", "ipFamilyPolicy": null, "ipFamilies": null}), vec![
                "spec.externalName: Required value",
            ]),
            (json!({"clusterIP": "10.43.0.9", "clusterIPs": ["10.43.0.8"]}), vec![
                "spec.clusterIPs: Invalid value: []string{\"10.43.0.8\"}: first value must match `clusterIP`",
            ]),
            (json!({"clusterIP": "10.43.0.999", "clusterIPs": ["10.43.0.999"]}), vec![
                "spec.clusterIPs[0]: Invalid value: \"10.43.0.999\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ]),
            (json!({"ipFamilies": ["IPv4", "IPv4"]}), vec![
                "spec.ipFamilies[1]: Duplicate value: \"IPv4\"",
            ]),
            (json!({"externalIPs": ["127.0.0.1", "bogus"]}), vec![
                "spec.externalIPs[0]: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
                "spec.externalIPs[1]: Invalid value: \"bogus\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                "spec.externalTrafficPolicy: Required value",
            ]),
            (json!({"externalTrafficPolicy": "Cluster"}), vec![
                "spec.externalTrafficPolicy: Invalid value: \"Cluster\": may only be set for externally-accessible services",
            ]),
            (json!({"type": "NodePort", "externalTrafficPolicy": "Nearest"}), vec![
                "spec.externalTrafficPolicy: Unsupported value: \"Nearest\": supported values: \"Cluster\", \"Local\"",
            ]),
            (json!({"healthCheckNodePort": 31000}), vec![
                "spec.healthCheckNodePort: Invalid value: 31000: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ]),
            (json!({"internalTrafficPolicy": "Nearest"}), vec![
                "spec.internalTrafficPolicy: Unsupported value: \"Nearest\": supported values: \"Cluster\", \"Local\"",
            ]),
            (json!({"allocateLoadBalancerNodePorts": true, "loadBalancerClass": "x", "loadBalancerSourceRanges": ["10.0.0.0/33"]}), vec![
                "spec.LoadBalancerSourceRanges: Forbidden: may only be used when `type` is 'LoadBalancer'",
                "spec.LoadBalancerSourceRanges[0]: Invalid value: \"10.0.0.0/33\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                "spec.allocateLoadBalancerNodePorts: Forbidden: may only be used when `type` is 'LoadBalancer'",
                "spec.loadBalancerClass: Forbidden: may only be used when `type` is 'LoadBalancer'",
            ]),
            (json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "allocateLoadBalancerNodePorts": false}), vec![]),
            (json!({"trafficDistribution": "Anywhere"}), vec![
                "spec.trafficDistribution: Unsupported value: \"Anywhere\": supported values: \"PreferClose\"",
            ]),
            (json!({"selector": {"app/x/y": "a b"}}), vec![
                "spec.selector: Invalid value: \"app/x/y\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                "spec.selector: Invalid value: \"a b\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            ]),
        ];
        for (spec, want) in cases {
            let label = spec.to_string();
            assert_eq!(errors_of(&service(spec), None), want, "{label}");
        }
    }

    #[test]
    fn updates_keep_cluster_ips_families_and_classes() {
        let old = service(json!({"clusterIP": "10.43.1.2", "clusterIPs": ["10.43.1.2"]}));
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (json!({"clusterIP": "10.43.1.2", "clusterIPs": ["10.43.1.2"]}), vec![]),
            (json!({"clusterIP": "10.43.1.3", "clusterIPs": ["10.43.1.3"]}), vec![
                "spec.clusterIPs[0]: Invalid value: []string{\"10.43.1.3\"}: may not change once set",
            ]),
            (json!({}), vec![
                "spec.clusterIPs[0]: Invalid value: []string(nil): primary clusterIP can not be unset",
            ]),
            (json!({"clusterIP": "None", "clusterIPs": ["None"]}), vec![
                "spec.clusterIPs[0]: Invalid value: []string{\"None\"}: may not change once set",
            ]),
            (json!({"clusterIP": "10.43.1.2", "clusterIPs": ["10.43.1.2"], "ipFamilies": ["IPv6"]}), vec![
                "spec.ipFamilies[0]: Invalid value: []string{\"IPv6\"}: may not change once set",
                "spec.clusterIPs[0]: Invalid value: \"10.43.1.2\": expected an IPv6 value as indicated by `ipFamilies[0]`",
            ]),
        ];
        for (spec, want) in cases {
            let label = spec.to_string();
            assert_eq!(errors_of(&service(spec), Some(&old)), want, "{label}");
        }
        // Headless services stay headless without complaint; ExternalName may come and go.
        let headless = service(json!({"clusterIP": "None", "clusterIPs": ["None"]}));
        assert!(errors_of(&headless, Some(&headless)).is_empty());
        let external = service(
            json!({"type": "ExternalName", "externalName": "db", "internalTrafficPolicy": null, "ipFamilyPolicy": null, "ipFamilies": null}),
        );
        assert!(errors_of(&external, Some(&old)).is_empty());

        let lb = |class: Value, health: Value| {
            service(
                json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "allocateLoadBalancerNodePorts": true,
            "clusterIP": "10.43.1.2", "clusterIPs": ["10.43.1.2"], "loadBalancerClass": class, "healthCheckNodePort": health}),
            )
        };
        assert_eq!(
            errors_of(
                &lb(json!("example.com/b"), json!(31500)),
                Some(&lb(json!("example.com/a"), json!(31500)))
            ),
            ["spec.loadBalancerClass: Invalid value: \"example.com/b\": may not change once set"]
        );
        assert_eq!(
            errors_of(
                &lb(Value::Null, json!(31501)),
                Some(&lb(Value::Null, json!(31500)))
            ),
            ["spec.healthCheckNodePort: Forbidden: field is immutable"]
        );
    }

    #[test]
    fn go_prints_string_slices() {
        assert_eq!(
            go_strings(&["a".into(), "b".into()]),
            "[]string{\"a\", \"b\"}"
        );
        assert_eq!(go_optional_strings(&None), "[]string(nil)");
        assert_eq!(go_optional_strings(&Some(vec![])), "[]string{}");
    }
}
