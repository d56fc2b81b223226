//! The proxy's step of a pod's journey ([`ferry_journey`]): `proxy rules programmed`, once the
//! rules that send a Service's traffic to a newly ready pod are applied on this node.
//!
//! The proxy does not watch pods, so the step has no parent: it names the pod (an endpoint's
//! `targetRef`) and its uid, by which the API server finds the pod's journey. The pods newly
//! programmed are those ready behind a programmed Service in the slices just applied that were
//! not in the slices applied before ([`newly_ready`]); the first sync after the proxy starts
//! is the baseline and takes no step (it programs pods that became ready long ago).

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use kube::ResourceExt as _;

use crate::model::ServicePort;

/// What the proxy's steps call it.
pub const COMPONENT: &str = "kube-proxy";

const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A pod that became a ready endpoint of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyPod {
    /// `namespace/name` of the Service.
    pub service: String,
    /// The pod's namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
}

impl ReadyPod {
    /// Records its `proxy rules programmed` step on node `node`, from `start_ns` (when the
    /// proxy saw the change) to now.
    pub fn programmed(&self, node: &str, start_ns: u64) {
        let step = ferry_journey::step!(
            "proxy rules programmed",
            component = COMPONENT,
            object = %format_args!("pods/{}/{}", self.namespace, self.name),
            uid = self.uid.as_str(),
            node = node,
            service = self.service.as_str(),
            start_ns = start_ns
        );
        drop(step);
    }
}

/// The pods ready behind the Services of `ports` in `slices` that were not ready behind the
/// Services of `before_ports` in `before_slices`: those the rules of `slices` newly send
/// traffic to.
pub fn newly_ready(
    before_slices: &[Arc<EndpointSlice>],
    before_ports: &[ServicePort],
    slices: &[Arc<EndpointSlice>],
    ports: &[ServicePort],
) -> Vec<ReadyPod> {
    let before: HashSet<(&str, &str, &str)> = ready_endpoints(before_slices, before_ports)
        .map(|(slice, service, endpoint)| (namespace_of(slice), service, endpoint))
        .filter_map(|(namespace, service, endpoint)| {
            Some((
                namespace,
                service,
                endpoint.target_ref.as_ref()?.uid.as_deref()?,
            ))
        })
        .collect();
    let mut newly = Vec::new();
    for (slice, service, endpoint) in ready_endpoints(slices, ports) {
        let Some(target) = endpoint.target_ref.as_ref() else {
            continue;
        };
        let (Some(uid), Some(name)) = (target.uid.as_deref(), target.name.as_deref()) else {
            continue;
        };
        let namespace = namespace_of(slice);
        if target.kind.as_deref() != Some("Pod") || before.contains(&(namespace, service, uid)) {
            continue;
        }
        let pod = ReadyPod {
            service: format!("{namespace}/{service}"),
            namespace: target.namespace.as_deref().unwrap_or(namespace).to_string(),
            name: name.to_string(),
            uid: uid.to_string(),
        };
        // A pod listed twice (in two slices, while they are rebalanced) is one step.
        if !newly.contains(&pod) {
            newly.push(pod);
        }
    }
    newly
}

fn namespace_of(slice: &EndpointSlice) -> &str {
    slice.metadata.namespace.as_deref().unwrap_or_default()
}

/// The ready endpoints of the slices whose Service `ports` program, with their slice and
/// Service name.
fn ready_endpoints<'a>(
    slices: &'a [Arc<EndpointSlice>],
    ports: &'a [ServicePort],
) -> impl Iterator<Item = (&'a EndpointSlice, &'a str, &'a Endpoint)> {
    let programmed: HashSet<(&str, &str)> = ports
        .iter()
        .map(|p| (p.name.namespace.as_str(), p.name.name.as_str()))
        .collect();
    slices
        .iter()
        .filter(|slice| slice.address_type == "IPv4")
        .filter_map(move |slice| {
            let service = slice.labels().get(SERVICE_NAME_LABEL)?.as_str();
            programmed
                .contains(&(namespace_of(slice), service))
                .then_some((slice.as_ref(), service))
        })
        .flat_map(|(slice, service)| {
            slice
                .endpoints
                .iter()
                .filter(|e| is_ready(e))
                .map(move |e| (slice, service, e))
        })
}

/// Ready, as the rules read it: unknown readiness counts as ready, as the API says.
fn is_ready(endpoint: &Endpoint) -> bool {
    endpoint
        .conditions
        .as_ref()
        .and_then(|c| c.ready)
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::service_ports;
    use k8s_openapi::api::core::v1::Service;
    use serde_json::json;

    fn service(name: &str, cluster_ip: &str) -> Arc<Service> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"},
                "spec": {"clusterIP": cluster_ip, "ports": [{"name": "http", "port": 80}]}}))
            .expect("service"),
        )
    }

    /// A slice of Service `service` with pods `(name, ready)`.
    fn slice(service: &str, pods: &[(&str, bool)]) -> Arc<EndpointSlice> {
        let endpoints: Vec<serde_json::Value> = pods
            .iter()
            .enumerate()
            .map(|(i, (name, ready))| {
                json!({"addresses": [format!("10.42.0.{}", i + 1)], "conditions": {"ready": ready},
                    "targetRef": {"kind": "Pod", "namespace": "default", "name": name, "uid": format!("{name}-uid")}})
            })
            .collect();
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": format!("{service}-x"), "namespace": "default",
                "labels": {"kubernetes.io/service-name": service}},
                "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": endpoints}),
            )
            .expect("slice"),
        )
    }

    fn names(pods: &[ReadyPod]) -> Vec<(&str, &str)> {
        pods.iter()
            .map(|p| (p.service.as_str(), p.name.as_str()))
            .collect()
    }

    #[test]
    fn pods_turning_ready_behind_a_programmed_service_are_new_once() {
        let services = [service("web", "10.43.0.20"), service("headless", "None")];
        let before = [slice("web", &[("web-0", true), ("web-1", false)])];
        let before_ports = service_ports(&services, &before, "a");
        let after = [
            slice("web", &[("web-0", true), ("web-1", true), ("web-2", false)]),
            slice("headless", &[("db-0", true)]),
        ];
        let ports = service_ports(&services, &after, "a");
        let newly = newly_ready(&before, &before_ports, &after, &ports);
        // web-0 was ready already, web-2 is not, and a headless Service gets no rules.
        assert_eq!(names(&newly), [("default/web", "web-1")]);
        assert_eq!(
            (newly[0].namespace.as_str(), newly[0].uid.as_str()),
            ("default", "web-1-uid")
        );
        // Nothing changed: nothing new.
        assert!(newly_ready(&after, &ports, &after, &ports).is_empty());
    }

    #[test]
    fn a_service_newly_programmed_brings_its_ready_pods() {
        let before_services = [service("web", "None")];
        let slices = [slice("web", &[("web-0", true)])];
        let before_ports = service_ports(&before_services, &slices, "a");
        let ports = service_ports(&[service("web", "10.43.0.20")], &slices, "a");
        let newly = newly_ready(&slices, &before_ports, &slices, &ports);
        assert_eq!(names(&newly), [("default/web", "web-0")]);
    }

    #[test]
    fn the_step_names_the_pod_and_the_node_and_starts_when_the_change_was_seen() {
        let capture = ferry_journey::testing::capture();
        let pod = ReadyPod {
            service: "default/web".into(),
            namespace: "default".into(),
            name: "web-1".into(),
            uid: "web-1-uid".into(),
        };
        pod.programmed("node-a", 5);
        let spans = capture.spans();
        assert_eq!(capture.steps(), ["proxy rules programmed"]);
        let step = &spans[0];
        assert_eq!(
            (step.component.as_str(), step.parent_span_id.as_deref()),
            ("kube-proxy", None)
        );
        let object = step.object.as_ref().expect("the pod");
        assert_eq!(
            (object.key(), object.uid.as_deref()),
            ("pods/default/web-1".to_string(), Some("web-1-uid"))
        );
        assert_eq!(step.attributes["node"], "node-a");
        assert_eq!(step.attributes["service"], "default/web");
        assert_eq!(step.start_unix_nanos, 5);
    }
}
