//! The service load balancer, as k3s's ServiceLB gives one without a cloud: a Service of
//! `type: LoadBalancer` (without a `loadBalancerClass`, which names another implementation)
//! gets the addresses of the Ready, schedulable nodes as its ingress IPs. Every node's proxy
//! sends traffic for those addresses and the Service's ports to its endpoints, as for a node
//! port; `kubectl get svc` shows them as EXTERNAL-IP.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, Node, Service};
use kube::api::{Patch, PatchParams};
use kube::Api;
use serde_json::json;

use crate::informer::{key_of, Key};
use crate::queue::{Queue, Reconciler};
use crate::util::api_code;
use crate::{ApiContext as _, Context, Error};

/// The controller and its queue of Services.
pub struct ServiceLbController {
    ctx: Arc<Context>,
    queue: Arc<Queue<Key>>,
}

impl Reconciler for ServiceLbController {
    type Key = Key;
    type Error = Error;
    const NAME: &'static str = "servicelb";

    fn queue(&self) -> &Arc<Queue<Key>> {
        &self.queue
    }

    async fn reconcile(self: Arc<Self>, key: Key) -> Result<Option<Duration>, Error> {
        self.sync(key).await
    }
}

/// Whether this controller gives the Service its addresses.
fn balanced(service: &Service) -> bool {
    service.spec.as_ref().is_some_and(|s| {
        s.type_.as_deref() == Some("LoadBalancer") && s.load_balancer_class.is_none()
    })
}

/// The node's address traffic reaches it at: its ExternalIP, else its InternalIP.
fn node_address(node: &Node) -> Option<String> {
    let addresses = node.status.as_ref()?.addresses.as_ref()?;
    ["ExternalIP", "InternalIP"].iter().find_map(|kind| {
        addresses
            .iter()
            .find(|a| a.type_ == *kind)
            .map(|a| a.address.clone())
    })
}

fn usable(node: &Node) -> bool {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let unschedulable = node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    ready && !unschedulable
}

/// The ingress of a balanced Service: every usable node's address, sorted.
pub fn ingress(nodes: &[Arc<Node>]) -> Vec<LoadBalancerIngress> {
    let mut ips: Vec<String> = nodes
        .iter()
        .filter(|n| usable(n))
        .filter_map(|n| node_address(n))
        .collect();
    ips.sort();
    ips.dedup();
    ips.into_iter()
        .map(|ip| LoadBalancerIngress {
            ip: Some(ip),
            ip_mode: Some("VIP".into()),
            ..LoadBalancerIngress::default()
        })
        .collect()
}

impl ServiceLbController {
    /// Registers the handlers.
    pub fn new(ctx: Arc<Context>) -> Arc<ServiceLbController> {
        let controller = Arc::new(ServiceLbController {
            ctx: ctx.clone(),
            queue: Queue::new(),
        });
        let c = controller.clone();
        ctx.services.add_handler(move |old, new| {
            if let Some(service) = new.or(old).filter(|s| balanced(s)) {
                c.queue.add(key_of(service.as_ref()));
            }
        });
        // A node coming, going or changing readiness changes every balanced Service.
        let c = controller.clone();
        ctx.nodes.add_handler(move |old, new| {
            let shown =
                |n: Option<&Arc<Node>>| n.filter(|n| usable(n)).and_then(|n| node_address(n));
            if shown(old) == shown(new) {
                return;
            }
            for service in c.ctx.services.list().iter().filter(|s| balanced(s)) {
                c.queue.add(key_of(service.as_ref()));
            }
        });
        controller
    }

    async fn sync(&self, key: Key) -> Result<Option<Duration>, Error> {
        let Some(service) = self.ctx.services.get(&key.0, &key.1) else {
            return Ok(None);
        };
        if !balanced(&service) {
            return Ok(None);
        }
        let wanted = LoadBalancerStatus {
            ingress: Some(ingress(&self.ctx.nodes.list())),
        };
        let current = service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.clone())
            .unwrap_or_default();
        let same = current.ingress.clone().unwrap_or_default()
            == wanted.ingress.clone().unwrap_or_default();
        if same {
            return Ok(None);
        }
        let api: Api<Service> = Api::namespaced(self.ctx.client.clone(), &key.0);
        let patch = json!({"status": {"loadBalancer": wanted}});
        match api
            .patch_status(&key.1, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(None),
            Err(e) if api_code(&e) == Some(404) => Ok(None),
            Err(e) => Err(e).context("updating a load balancer's ingress"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ip: &str, ready: bool, unschedulable: bool) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name},
                "spec": {"unschedulable": unschedulable},
                "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                    "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}}))
            .expect("node"),
        )
    }

    #[test]
    fn ready_schedulable_nodes_are_the_ingress() {
        let nodes = [
            node("b", "192.0.2.12", true, false),
            node("a", "192.0.2.11", true, false),
            node("down", "192.0.2.13", false, false),
            node("cordoned", "192.0.2.14", true, true),
        ];
        let ips: Vec<Option<String>> = ingress(&nodes).into_iter().map(|i| i.ip).collect();
        assert_eq!(
            ips,
            [
                Some("192.0.2.11".to_string()),
                Some("192.0.2.12".to_string())
            ]
        );
    }

    #[test]
    fn only_load_balancers_without_a_class() {
        let service = |spec: serde_json::Value| -> Service {
            serde_json::from_value(json!({"metadata": {"name": "s"}, "spec": spec}))
                .expect("service")
        };
        assert!(balanced(&service(json!({"type": "LoadBalancer"}))));
        assert!(!balanced(&service(
            json!({"type": "LoadBalancer", "loadBalancerClass": "example.com/lb"})
        )));
        assert!(!balanced(&service(json!({"type": "NodePort"}))));
    }
}
