//! The Node authorizer (upstream's `--authorization-mode=Node`): what a kubelet, as
//! `system:node:<name>` in `system:nodes`, may do — upstream's `system:node` rules narrowed to
//! the node's own Node and Lease, and Secrets, ConfigMaps, PersistentVolumeClaims and
//! PersistentVolumes only when a pod bound to the node uses them ([`crate::node_graph`]). It has no opinion on anyone else, nor on what it does not
//! allow, so the next authorizer (RBAC) decides those.

use k8s_openapi::api::rbac::v1::PolicyRule;

use std::sync::Arc;

use crate::auth::{Authorizer, Decision, UserInfo};
use crate::node_graph::{NodeGraph, Used};
use crate::request::RequestInfo;

/// Which objects a [`Rule`] covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Names {
    /// Any object.
    Any,
    /// Only the object named as the requesting node (its Node, its Lease).
    OwnNode,
}

/// One grant: these verbs on these resources (`resource` or `resource/subresource`) of one
/// API group, optionally only in one namespace, on any object or only the node's own.
#[derive(Debug, Clone, Copy)]
struct Rule {
    verbs: &'static [&'static str],
    group: &'static str,
    resources: &'static [&'static str],
    namespace: Option<&'static str>,
    names: Names,
}

const fn rule(
    verbs: &'static [&'static str],
    group: &'static str,
    resources: &'static [&'static str],
) -> Rule {
    Rule {
        verbs,
        group,
        resources,
        namespace: None,
        names: Names::Any,
    }
}

const READ: &[&str] = &["get", "list", "watch"];
const CSR_VERBS: &[&str] = &["create", "get", "list", "watch"];

/// What a node (`system:node:<name>` in `system:nodes`) may do: upstream's `system:node` role
/// with the Node authorizer's narrowing, simplified.
///
/// Secrets, ConfigMaps, PVCs and PVs are not here: [`NodeAuthorizer`] decides them from the
/// graph of what the node's pods use. What a node may write to pods and Nodes is
/// narrowed further by the NodeRestriction check in admission (`admission::node_restriction`):
/// its own Node only, pods bound to it only, no pod creation.
const NODE_RULES: &[Rule] = &[
    rule(&["get", "list", "watch", "create"], "", &["nodes"]),
    Rule {
        names: Names::OwnNode,
        ..rule(&["update", "patch", "delete"], "", &["nodes"])
    },
    Rule {
        names: Names::OwnNode,
        ..rule(&["get", "update", "patch"], "", &["nodes/status"])
    },
    rule(&["get", "list", "watch", "delete"], "", &["pods"]),
    rule(&["update", "patch"], "", &["pods/status"]),
    rule(&["create"], "", &["pods/eviction"]),
    rule(&["create", "update", "patch"], "", &["events"]),
    rule(&["create", "update", "patch"], "events.k8s.io", &["events"]),
    Rule {
        namespace: Some("kube-node-lease"),
        ..rule(&["get", "create"], "coordination.k8s.io", &["leases"])
    },
    Rule {
        namespace: Some("kube-node-lease"),
        names: Names::OwnNode,
        ..rule(
            &["update", "patch", "delete"],
            "coordination.k8s.io",
            &["leases"],
        )
    },
    rule(READ, "", &["services", "endpoints"]),
    // The agent's service proxy runs with its node's credentials: what upstream's
    // system:node-proxier role grants kube-proxy.
    rule(READ, "discovery.k8s.io", &["endpointslices"]),
    // The agent's NetworkPolicy enforcement, likewise (k3s's policy controller reads these
    // with its agent's credentials too).
    rule(READ, "networking.k8s.io", &["networkpolicies"]),
    rule(READ, "", &["namespaces"]),
    rule(
        CSR_VERBS,
        "certificates.k8s.io",
        &["certificatesigningrequests"],
    ),
    rule(&["create"], "authentication.k8s.io", &["tokenreviews"]),
    // The pods' projected service-account tokens; NodeRestriction narrows it to tokens bound
    // to pods scheduled on the node.
    rule(&["create"], "", &["serviceaccounts/token"]),
    rule(
        &["create"],
        "authorization.k8s.io",
        &["subjectaccessreviews"],
    ),
    rule(READ, "node.k8s.io", &["runtimeclasses"]),
    rule(READ, "storage.k8s.io", &["csidrivers", "csinodes"]),
    // The kubelet waits for its volumes' VolumeAttachments (upstream narrows the get to the
    // node's own attachments through its graph; ferry's graph has no attachments yet).
    rule(&["get"], "storage.k8s.io", &["volumeattachments"]),
];

/// The node a user is, if it is one: `system:node:<name>` in `system:nodes`, as upstream's
/// Node authorizer recognises nodes.
pub fn node_name(user: &UserInfo) -> Option<&str> {
    if !user.in_group("system:nodes") {
        return None;
    }
    user.name
        .strip_prefix("system:node:")
        .filter(|name| !name.is_empty())
}

impl Rule {
    /// `Some(true)`: allowed; `Some(false)`: the rule is about this request but the object is
    /// another node's; `None`: the rule does not apply.
    fn allows(&self, request: &RequestInfo, node: Option<&str>) -> Option<bool> {
        let resource = if request.subresource.is_empty() {
            request.resource.clone()
        } else {
            format!("{}/{}", request.resource, request.subresource)
        };
        let applies = request.is_resource_request
            && self.group == request.group
            && self.verbs.contains(&request.verb.as_str())
            && self.resources.contains(&resource.as_str())
            && self.namespace.is_none_or(|ns| ns == request.namespace);
        if !applies {
            return None;
        }
        match self.names {
            Names::Any => Some(true),
            Names::OwnNode => Some(node.is_some_and(|n| n == request.name)),
        }
    }
}

fn check(rules: &[Rule], request: &RequestInfo, node: Option<&str>) -> Option<Decision> {
    let mut other_node = false;
    for rule in rules {
        match rule.allows(request, node) {
            Some(true) => return Some(Decision::Allow),
            Some(false) => other_node = true,
            None => {}
        }
    }
    other_node.then(|| {
        Decision::Deny(format!(
            "node '{}' cannot modify {} '{}'",
            node.unwrap_or_default(),
            request.resource.trim_end_matches('s'),
            request.name
        ))
    })
}

/// The Node authorizer.
pub struct NodeAuthorizer(pub Arc<NodeGraph>);

/// The ConfigMap every ferry agent reads for the pod network's settings (`ferry_podnet`).
const POD_NETWORK_CONFIG_MAP: (&str, &str) = ("kube-system", "ferry-pod-network");

impl NodeAuthorizer {
    /// Reads of the objects pods use: a node may get one by name when a pod bound to it uses
    /// it (upstream's graph check), and nothing else of these kinds.
    fn used_object(&self, node: &str, request: &RequestInfo) -> Option<Decision> {
        let kind = match (request.group.as_str(), request.resource.as_str()) {
            ("", "secrets") => Some(Used::Secret),
            ("", "configmaps") => Some(Used::ConfigMap),
            ("", "persistentvolumeclaims") => Some(Used::Claim),
            ("", "persistentvolumes") => None,
            _ => return None,
        };
        if !request.is_resource_request || !request.subresource.is_empty() {
            return None;
        }
        if request.verb != "get" || request.name.is_empty() {
            return Some(Decision::Deny(
                "can only get individual resources of this type".into(),
            ));
        }
        let (namespace, name) = (request.namespace.as_str(), request.name.as_str());
        let related = match kind {
            Some(Used::ConfigMap) if (namespace, name) == POD_NETWORK_CONFIG_MAP => true,
            Some(kind) => self.0.uses(node, kind, namespace, name),
            None => self.0.uses_volume(node, name),
        };
        Some(if related {
            Decision::Allow
        } else {
            Decision::Deny(format!(
                "no relationship found between node '{node}' and this object"
            ))
        })
    }
}

impl Authorizer for NodeAuthorizer {
    fn authorize(&self, user: &UserInfo, request: &RequestInfo) -> Decision {
        let Some(node) = node_name(user) else {
            return Decision::Deny(String::new());
        };
        if let Some(decision) = self.used_object(node, request) {
            return decision;
        }
        check(NODE_RULES, request, Some(node)).unwrap_or(Decision::Deny(String::new()))
    }

    fn rules_for(
        &self,
        user: &UserInfo,
        _namespace: &str,
        rules: &mut Vec<PolicyRule>,
    ) -> Result<(), String> {
        if node_name(user).is_none() {
            return Ok(());
        }
        let strings = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        rules.extend(NODE_RULES.iter().map(|rule| PolicyRule {
            verbs: strings(rule.verbs),
            api_groups: Some(vec![rule.group.to_string()]),
            resources: Some(strings(rule.resources)),
            ..Default::default()
        }));
        Err("node authorizer does not support user rule resolution".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::parse;

    /// `kubectl auth can-i VERB RESOURCE [NAME] [-n NS] --as=USER --as-group=GROUP`, answered
    /// by the authorizer the way review.rs asks it.
    /// A node authorizer whose graph has pod `p` on `n1`, using secret `s`, config map `c` and
    /// claim `c` in `default`, and pod `q` on `n2` using secret `other`.
    fn authorizer() -> NodeAuthorizer {
        let p = serde_json::json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {"nodeName": "n1",
            "volumes": [{"name": "a", "secret": {"secretName": "s"}}, {"name": "b", "configMap": {"name": "c"}},
                        {"name": "d", "persistentVolumeClaim": {"claimName": "c"}}]}});
        let q = serde_json::json!({"metadata": {"name": "q", "namespace": "default"}, "spec": {"nodeName": "n2",
            "volumes": [{"name": "a", "secret": {"secretName": "other"}}]}});
        NodeAuthorizer(Arc::new(NodeGraph::of_pods(&[
            ("/pods/default/p", p),
            ("/pods/default/q", q),
        ])))
    }

    fn can_i(user: &UserInfo, verb: &str, path: &str) -> bool {
        let method = match verb {
            "get" | "list" | "watch" => "GET",
            "create" => "POST",
            "update" => "PUT",
            "patch" => "PATCH",
            "delete" => "DELETE",
            other => panic!("verb {other}"),
        };
        let mut request = parse(method, path, verb == "watch");
        request.verb = verb.to_string();
        authorizer().authorize(user, &request) == Decision::Allow
    }

    #[test]
    fn nodes_get_the_node_rules_for_their_own_objects() {
        let node = UserInfo::new(
            "system:node:n1".into(),
            String::new(),
            vec!["system:nodes".into()],
        );
        // Named like a node, but not in system:nodes: not a node.
        let impostor = UserInfo::new("system:node:n1".into(), String::new(), vec![]);
        let csrs = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
        #[rustfmt::skip]
        let table: &[(&UserInfo, &str, &str, bool)] = &[
            (&node, "get", "/api/v1/nodes/n2", true),
            (&node, "list", "/api/v1/nodes", true),
            (&node, "watch", "/api/v1/nodes", true),
            (&node, "create", "/api/v1/nodes", true),
            (&node, "update", "/api/v1/nodes/n1", true),
            (&node, "patch", "/api/v1/nodes/n1/status", true),
            (&node, "update", "/api/v1/nodes/n2", false),
            (&node, "patch", "/api/v1/nodes/n2/status", false),
            (&node, "delete", "/api/v1/nodes/n1", true),
            (&node, "delete", "/api/v1/nodes/n2", false),
            (&node, "list", "/api/v1/pods", true),
            (&node, "watch", "/api/v1/pods", true),
            (&node, "get", "/api/v1/namespaces/default/pods/p", true),
            (&node, "create", "/api/v1/namespaces/kube-system/pods", false),
            (&node, "delete", "/api/v1/namespaces/default/pods/p", true),
            (&node, "update", "/api/v1/namespaces/default/pods/p", false),
            (&node, "patch", "/api/v1/namespaces/default/pods/p/status", true),
            (&node, "create", "/api/v1/namespaces/default/pods/p/eviction", true),
            (&node, "create", "/api/v1/namespaces/default/events", true),
            (&node, "patch", "/api/v1/namespaces/default/events/e", true),
            (&node, "create", "/apis/events.k8s.io/v1/namespaces/default/events", true),
            (&node, "delete", "/api/v1/namespaces/default/events/e", false),
            (&node, "get", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1", true),
            (&node, "create", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", true),
            (&node, "update", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1", true),
            (&node, "update", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n2", false),
            (&node, "update", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/n1", false),
            (&node, "get", "/api/v1/namespaces/default/secrets/s", true),
            (&node, "get", "/api/v1/namespaces/default/secrets/other", false),
            (&node, "get", "/api/v1/namespaces/kube-system/secrets/s", false),
            (&node, "get", "/api/v1/namespaces/default/configmaps/c", true),
            (&node, "get", "/api/v1/namespaces/default/configmaps/other", false),
            (&node, "get", "/api/v1/namespaces/kube-system/configmaps/ferry-pod-network", true),
            (&node, "list", "/api/v1/namespaces/default/configmaps", false),
            (&node, "watch", "/api/v1/secrets", false),
            (&node, "watch", "/api/v1/services", true),
            (&node, "list", "/api/v1/namespaces/default/endpoints", true),
            (&node, "create", "/api/v1/namespaces/default/secrets", false),
            (&node, "get", "/api/v1/namespaces/default/persistentvolumeclaims/c", true),
            (&node, "get", "/api/v1/persistentvolumes/v", false),
            (&node, "list", "/api/v1/persistentvolumes", false),
            (&node, "create", csrs, true),
            (&node, "update", &format!("{csrs}/node-csr-x/approval"), false),
            (&node, "create", "/apis/authentication.k8s.io/v1/tokenreviews", true),
            (&node, "create", "/apis/authorization.k8s.io/v1/subjectaccessreviews", true),
            (&node, "list", "/apis/node.k8s.io/v1/runtimeclasses", true),
            (&node, "get", "/apis/storage.k8s.io/v1/csinodes/n1", true),
            (&node, "watch", "/apis/storage.k8s.io/v1/csidrivers", true),
            (&node, "create", "/apis/apps/v1/namespaces/default/deployments", false),
            (&node, "list", "/apis/apps/v1/deployments", false),
            (&node, "delete", "/api/v1/namespaces/default", false),
            (&impostor, "get", "/api/v1/nodes/n1", false),
        ];
        for (user, verb, path, allowed) in table {
            assert_eq!(
                can_i(user, verb, path),
                *allowed,
                "{} {verb} {path}",
                user.name
            );
        }
        let other = parse("PUT", "/api/v1/nodes/n2", false);
        assert_eq!(
            authorizer().authorize(&node, &other),
            Decision::Deny("node 'n1' cannot modify node 'n2'".into())
        );
        assert_eq!(node_name(&node), Some("n1"));
        assert_eq!(node_name(&impostor), None);
    }
}
