//! What the Endpoints and EndpointSlice controllers share, as upstream's
//! `k8s.io/endpointslice/util` and `pkg/controller/util/endpoint`: which Services select a
//! pod, which pods belong in a Service's endpoints, and the port a Service port reaches on a pod.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use std::sync::Arc;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, PodIP, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt as _;

use crate::informer::{key_of, Informer, Key};
use crate::util::pod_ready;

/// The selector of a Service that the controllers fill: `None` for a Service without one (its
/// endpoints are made by hand) and for ExternalName Services (they have none).
pub fn service_selector(service: &Service) -> Option<&BTreeMap<String, String>> {
    let spec = service.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    // A selector of no labels arrives as an empty map, which upstream's decoding makes nil.
    spec.selector.as_ref().filter(|s| !s.is_empty())
}

/// Whether the Service's selector selects a pod with `labels` (a Service selector is equality
/// only: every pair must be there).
pub fn selects(service: &Service, labels: Option<&BTreeMap<String, String>>) -> bool {
    service_selector(service).is_some_and(|selector| {
        selector
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
    })
}

/// Whether the Service has no cluster IP (`clusterIP: None`): its endpoints are labelled
/// `service.kubernetes.io/headless`.
pub fn is_headless(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_none_or(|ip| ip == "None" || ip.is_empty())
}

/// Whether `publishNotReadyAddresses` is set.
pub fn publishes_not_ready(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

/// Upstream's `ShouldPodBeInEndpoints`: not terminal (Succeeded or Failed), has an IP, and is
/// not being deleted unless `include_terminating`.
pub fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let status = pod.status.as_ref();
    if matches!(
        status.and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    ) {
        return false;
    }
    let has_ip = status.is_some_and(|s| {
        s.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty())
            || s.pod_ips.as_ref().is_some_and(|ips| !ips.is_empty())
    });
    has_ip && (include_terminating || pod.metadata.deletion_timestamp.is_none())
}

/// The pod's IPv4 addresses (`status.podIPs`, or `status.podIP` from an older writer).
pub fn pod_ipv4_addresses(pod: &Pod) -> Vec<String> {
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    let ips: Vec<&str> = match status.pod_ips.as_ref().filter(|ips| !ips.is_empty()) {
        Some(ips) => ips.iter().map(|ip| ip.ip.as_str()).collect(),
        None => status.pod_ip.as_deref().into_iter().collect(),
    };
    ips.into_iter()
        .filter(|ip| ip.parse::<Ipv4Addr>().is_ok())
        .map(str::to_string)
        .collect()
}

/// Whether the pod's hostname is published (`ShouldSetHostname`): it names one
/// (`spec.hostname`) and its `spec.subdomain` is this Service, in the same namespace.
pub fn should_set_hostname(pod: &Pod, service: &Service) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    spec.hostname.as_deref().is_some_and(|h| !h.is_empty())
        && spec.subdomain.as_deref() == Some(service.name_any().as_str())
        && pod.namespace() == service.namespace()
}

/// The protocol of a port, `TCP` when not given (the API server defaults it).
pub fn protocol(protocol: Option<&String>) -> &str {
    protocol.map_or("TCP", String::as_str)
}

/// The pod's port a Service port reaches (upstream's `FindPort`): a numeric `targetPort` is
/// that number; a named one is the container port of that name and the Service port's protocol,
/// in the containers or the sidecars (init containers with `restartPolicy: Always`). `None`
/// when the pod has no such port.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    let name = match &port.target_port {
        None => return Some(port.port),
        Some(IntOrString::Int(n)) => return Some(*n),
        Some(IntOrString::String(name)) => name,
    };
    let spec = pod.spec.as_ref()?;
    let wanted = protocol(port.protocol.as_ref());
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    spec.containers
        .iter()
        .chain(sidecars)
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_ref() == Some(name) && protocol(p.protocol.as_ref()) == wanted)
        .map(|p| p.container_port)
}

/// The Services to sync after a pod changed from `old` to `new`: those selecting it before or
/// after, unless nothing its endpoint shows changed.
pub fn services_to_sync(
    services: &Informer<Service>,
    old: Option<&Arc<Pod>>,
    new: Option<&Arc<Pod>>,
) -> Vec<Key> {
    if let (Some(old), Some(new)) = (old, new) {
        if !endpoint_changed(old, new) {
            return Vec::new();
        }
    }
    let Some(pod) = new.or(old) else {
        return Vec::new();
    };
    let selected = |service: &Service, p: Option<&Arc<Pod>>| {
        p.is_some_and(|p| selects(service, p.metadata.labels.as_ref()))
    };
    services
        .list_namespace(&pod.namespace().unwrap_or_default())
        .into_iter()
        .filter(|s| selected(s, old) || selected(s, new))
        .map(|s| key_of(s.as_ref()))
        .collect()
}

/// The pods of `namespace` the Service selects.
pub fn selected_pods(pods: &Informer<Pod>, service: &Service) -> Vec<Arc<Pod>> {
    pods.list_namespace(&service.namespace().unwrap_or_default())
        .into_iter()
        .filter(|p| selects(service, p.metadata.labels.as_ref()))
        .collect()
}

/// The reference to a pod an endpoint carries (`targetRef`).
pub fn pod_reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.namespace(),
        name: Some(pod.name_any()),
        uid: pod.metadata.uid.clone(),
        ..ObjectReference::default()
    }
}

/// Whether the pod's Ready condition is true.
pub fn is_pod_ready(pod: &Pod) -> bool {
    pod_ready(pod).0
}

/// Whether a pod changed in what its endpoints show: a change elsewhere (an annotation, a
/// container's restart count) is no reason to sync the Services selecting it (upstream's
/// `podEndpointsChanged`).
pub fn endpoint_changed(old: &Pod, new: &Pod) -> bool {
    type Shown<'a> = (
        Option<(
            &'a Option<String>,
            &'a Option<Vec<PodIP>>,
            &'a Option<String>,
        )>,
        Option<(&'a Option<String>, &'a Option<String>, &'a Option<String>)>,
    );
    fn shown(pod: &Pod) -> Shown<'_> {
        (
            pod.status
                .as_ref()
                .map(|s| (&s.pod_ip, &s.pod_ips, &s.phase)),
            pod.spec
                .as_ref()
                .map(|s| (&s.node_name, &s.hostname, &s.subdomain)),
        )
    }
    old.metadata.labels != new.metadata.labels
        || old.metadata.deletion_timestamp.is_some() != new.metadata.deletion_timestamp.is_some()
        || is_pod_ready(old) != is_pod_ready(new)
        || shown(old) != shown(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).expect("pod")
    }

    fn service(value: serde_json::Value) -> Service {
        serde_json::from_value(value).expect("service")
    }

    #[test]
    fn which_pods_belong() {
        let running = pod(
            json!({"metadata": {"name": "a"}, "status": {"phase": "Running", "podIP": "10.42.0.5"}}),
        );
        assert!(should_pod_be_in_endpoints(&running, false));
        let no_ip = pod(json!({"metadata": {"name": "a"}, "status": {"phase": "Pending"}}));
        assert!(!should_pod_be_in_endpoints(&no_ip, true));
        let done = pod(
            json!({"metadata": {"name": "a"}, "status": {"phase": "Succeeded", "podIP": "10.42.0.5"}}),
        );
        assert!(!should_pod_be_in_endpoints(&done, true));
        let deleting = pod(
            json!({"metadata": {"name": "a", "deletionTimestamp": "2025-01-01T00:00:00Z"},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.42.0.5"}]}}),
        );
        assert!(should_pod_be_in_endpoints(&deleting, true));
        assert!(!should_pod_be_in_endpoints(&deleting, false));
    }

    #[test]
    fn ports_by_number_and_by_name_and_protocol() {
        let p = pod(json!({"metadata": {"name": "a"}, "spec": {
            "containers": [{"name": "c", "image": "x", "ports": [
                {"name": "http", "containerPort": 8080},
                {"name": "dns", "containerPort": 5353, "protocol": "UDP"}]}],
            "initContainers": [
                {"name": "side", "image": "x", "restartPolicy": "Always", "ports": [{"name": "metrics", "containerPort": 9090}]},
                {"name": "init", "image": "x", "ports": [{"name": "setup", "containerPort": 7070}]}]}}));
        let port =
            |v: serde_json::Value| -> ServicePort { serde_json::from_value(v).expect("port") };
        assert_eq!(
            find_port(&p, &port(json!({"port": 80, "targetPort": 8081}))),
            Some(8081)
        );
        assert_eq!(find_port(&p, &port(json!({"port": 80}))), Some(80));
        assert_eq!(
            find_port(&p, &port(json!({"port": 80, "targetPort": "http"}))),
            Some(8080)
        );
        assert_eq!(
            find_port(&p, &port(json!({"port": 53, "targetPort": "dns"}))),
            None
        );
        assert_eq!(
            find_port(
                &p,
                &port(json!({"port": 53, "targetPort": "dns", "protocol": "UDP"}))
            ),
            Some(5353)
        );
        assert_eq!(
            find_port(&p, &port(json!({"port": 1, "targetPort": "metrics"}))),
            Some(9090)
        );
        assert_eq!(
            find_port(&p, &port(json!({"port": 1, "targetPort": "setup"}))),
            None
        );
    }

    #[test]
    fn selectors_and_hostnames() {
        let web = service(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "clusterIP": "None"}}));
        let labels = BTreeMap::from([
            ("app".to_string(), "web".to_string()),
            ("x".into(), "y".into()),
        ]);
        assert!(selects(&web, Some(&labels)));
        assert!(!selects(&web, None));
        assert!(is_headless(&web));
        let external = service(json!({"metadata": {"name": "ext"},
            "spec": {"type": "ExternalName", "externalName": "example.com", "selector": {"app": "web"}}}));
        assert!(!selects(&external, Some(&labels)));
        let empty = service(json!({"metadata": {"name": "e"}, "spec": {"selector": {}}}));
        assert!(service_selector(&empty).is_none());
        let named = pod(json!({"metadata": {"name": "a", "namespace": "default"},
            "spec": {"hostname": "a", "subdomain": "web", "containers": []}}));
        assert!(should_set_hostname(&named, &web));
        let other_ns = pod(json!({"metadata": {"name": "a", "namespace": "other"},
            "spec": {"hostname": "a", "subdomain": "web", "containers": []}}));
        assert!(!should_set_hostname(&other_ns, &web));
    }

    #[test]
    fn ipv4_addresses_only() {
        let dual = pod(
            json!({"metadata": {"name": "a"}, "status": {"podIP": "10.42.0.5",
            "podIPs": [{"ip": "10.42.0.5"}, {"ip": "fd00::5"}]}}),
        );
        assert_eq!(pod_ipv4_addresses(&dual), ["10.42.0.5"]);
        let old = pod(json!({"metadata": {"name": "a"}, "status": {"podIP": "10.42.0.6"}}));
        assert_eq!(pod_ipv4_addresses(&old), ["10.42.0.6"]);
    }
}
