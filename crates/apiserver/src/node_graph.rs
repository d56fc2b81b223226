//! The Node authorizer's graph (upstream's `plugin/pkg/auth/authorizer/node/graph.go`, as
//! relations rather than a general graph): which Secrets, ConfigMaps and
//! PersistentVolumeClaims the pods bound to each node use — through volumes (also projected
//! ones), environment variables and image pull secrets — and which PersistentVolume each claim
//! is bound to. A node may read exactly those objects. Kept from the store like the RBAC
//! policy ([`crate::reflector`]).

use std::collections::HashMap;
use std::sync::Arc;

use ferry_store::{Event, EventKind, KeyValue, Store, StoreError};
use serde_json::Value;

/// The kinds of objects a pod uses that a node may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Used {
    /// A Secret.
    Secret,
    /// A ConfigMap.
    ConfigMap,
    /// A PersistentVolumeClaim.
    Claim,
}

type Object = (Used, String, String);

const PREFIXES: [&str; 2] = ["/pods/", "/persistentvolumeclaims/"];

#[derive(Default)]
struct State {
    /// Each pod (by store key): its node and what it uses.
    pods: HashMap<Vec<u8>, (String, Vec<Object>)>,
    /// Object → node → how many of the node's pods use it.
    used_by: HashMap<Object, HashMap<String, usize>>,
    /// Claim (by store key) → (namespace, claim, volume it is bound to).
    claims: HashMap<Vec<u8>, (String, String, String)>,
}

/// Every object `pod` uses, by kind, namespace and name.
pub fn uses(pod: &Value) -> Vec<Object> {
    let namespace = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let spec = &pod["spec"];
    let mut found: Vec<Object> = Vec::new();
    let mut add = |kind: Used, name: &Value| {
        if let Some(name) = name.as_str().filter(|n| !n.is_empty()) {
            let object = (kind, namespace.to_string(), name.to_string());
            if !found.contains(&object) {
                found.push(object);
            }
        }
    };
    for secret in spec["imagePullSecrets"].as_array().into_iter().flatten() {
        add(Used::Secret, &secret["name"]);
    }
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
    for volume in spec["volumes"].as_array().into_iter().flatten() {
        add(Used::Secret, &volume["secret"]["secretName"]);
        add(Used::ConfigMap, &volume["configMap"]["name"]);
        add(Used::Claim, &volume["persistentVolumeClaim"]["claimName"]);
        if volume["ephemeral"].is_object() {
            // A generic ephemeral volume's claim is named after the pod and the volume.
            let name = volume["name"].as_str().unwrap_or_default();
            add(Used::Claim, &Value::String(format!("{pod_name}-{name}")));
        }
        for source in volume["projected"]["sources"]
            .as_array()
            .into_iter()
            .flatten()
        {
            add(Used::Secret, &source["secret"]["name"]);
            add(Used::ConfigMap, &source["configMap"]["name"]);
        }
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for container in spec[list].as_array().into_iter().flatten() {
            for env in container["env"].as_array().into_iter().flatten() {
                add(Used::Secret, &env["valueFrom"]["secretKeyRef"]["name"]);
                add(
                    Used::ConfigMap,
                    &env["valueFrom"]["configMapKeyRef"]["name"],
                );
            }
            for from in container["envFrom"].as_array().into_iter().flatten() {
                add(Used::Secret, &from["secretRef"]["name"]);
                add(Used::ConfigMap, &from["configMapRef"]["name"]);
            }
        }
    }
    found
}

impl State {
    fn remove_pod(&mut self, key: &[u8]) {
        let Some((node, objects)) = self.pods.remove(key) else {
            return;
        };
        for object in objects {
            if let Some(nodes) = self.used_by.get_mut(&object) {
                if let Some(count) = nodes.get_mut(&node) {
                    *count -= 1;
                    if *count == 0 {
                        nodes.remove(&node);
                    }
                }
                if nodes.is_empty() {
                    self.used_by.remove(&object);
                }
            }
        }
    }

    fn put_pod(&mut self, key: &[u8], value: &[u8]) {
        self.remove_pod(key);
        let Ok(pod) = serde_json::from_slice::<Value>(value) else {
            return;
        };
        let Some(node) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) else {
            return;
        };
        let objects = uses(&pod);
        for object in &objects {
            *self
                .used_by
                .entry(object.clone())
                .or_default()
                .entry(node.to_string())
                .or_default() += 1;
        }
        self.pods.insert(key.to_vec(), (node.to_string(), objects));
    }

    fn put_claim(&mut self, key: &[u8], value: &[u8]) {
        let Ok(claim) = serde_json::from_slice::<Value>(value) else {
            return;
        };
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        self.claims.insert(
            key.to_vec(),
            (
                text(&claim["metadata"]["namespace"]),
                text(&claim["metadata"]["name"]),
                text(&claim["spec"]["volumeName"]),
            ),
        );
    }

    fn put(&mut self, index: usize, kv_key: &[u8], value: &[u8]) {
        match index {
            0 => self.put_pod(kv_key, value),
            _ => self.put_claim(kv_key, value),
        }
    }

    fn delete(&mut self, index: usize, key: &[u8]) {
        match index {
            0 => self.remove_pod(key),
            _ => {
                self.claims.remove(key);
            }
        }
    }
}

/// The graph.
#[derive(Default)]
pub struct NodeGraph {
    state: parking_lot::RwLock<State>,
}

impl NodeGraph {
    /// An empty graph; [`NodeGraph::start`] fills it.
    pub fn new() -> Arc<NodeGraph> {
        Arc::default()
    }

    /// Lists pods and claims (the graph is complete when this returns) and follows them.
    pub async fn start(self: &Arc<Self>, store: Arc<dyn Store>) -> Result<(), StoreError> {
        crate::reflector::start(self, store).await
    }

    /// Whether a pod bound to `node` uses `kind` `namespace/name`.
    pub fn uses(&self, node: &str, kind: Used, namespace: &str, name: &str) -> bool {
        let object = (kind, namespace.to_string(), name.to_string());
        self.state
            .read()
            .used_by
            .get(&object)
            .is_some_and(|nodes| nodes.contains_key(node))
    }

    /// Whether the PersistentVolume `name` is bound to a claim a pod of `node` uses.
    pub fn uses_volume(&self, node: &str, name: &str) -> bool {
        let state = self.state.read();
        state.claims.values().any(|(namespace, claim, volume)| {
            volume == name
                && state
                    .used_by
                    .get(&(Used::Claim, namespace.clone(), claim.clone()))
                    .is_some_and(|nodes| nodes.contains_key(node))
        })
    }

    /// A graph over `pods` (store keys and objects), for tests.
    pub fn of_pods(pods: &[(&str, Value)]) -> NodeGraph {
        let mut state = State::default();
        for (key, pod) in pods {
            state.put_pod(key.as_bytes(), pod.to_string().as_bytes());
        }
        NodeGraph {
            state: parking_lot::RwLock::new(state),
        }
    }
}

impl crate::reflector::Reflected for NodeGraph {
    fn prefixes(&self) -> &'static [&'static str] {
        &PREFIXES
    }

    fn replace(&self, listed: Vec<(usize, KeyValue)>) {
        let mut fresh = State::default();
        for (index, kv) in listed {
            fresh.put(index, &kv.key, &kv.value);
        }
        *self.state.write() = fresh;
    }

    fn apply(&self, index: usize, events: &[Event]) {
        let mut state = self.state.write();
        for event in events {
            match event.kind {
                EventKind::Put => state.put(index, &event.kv.key, &event.kv.value),
                EventKind::Delete => state.delete(index, &event.kv.key),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, node: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns"}, "spec": {"nodeName": node,
            "imagePullSecrets": [{"name": "pull"}],
            "volumes": [{"name": "v1", "secret": {"secretName": "vol-secret"}},
                        {"name": "data", "persistentVolumeClaim": {"claimName": "claim"}},
                        {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {}}},
                        {"name": "api", "projected": {"sources": [{"configMap": {"name": "kube-root-ca.crt"}}, {"serviceAccountToken": {"path": "token"}}]}}],
            "containers": [{"name": "c",
                "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}},
                        {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "env-map", "key": "k"}}}],
                "envFrom": [{"configMapRef": {"name": "all-map"}}]}]}})
    }

    #[test]
    fn a_node_uses_what_its_pods_use_until_they_go() {
        let graph = NodeGraph::of_pods(&[
            ("/pods/ns/a", pod("a", "n1")),
            ("/pods/ns/b", pod("b", "n1")),
            (
                "/pods/ns/pending",
                json!({"metadata": {"name": "pending", "namespace": "ns"}, "spec": {"volumes": [{"name": "x", "secret": {"secretName": "unbound"}}]}}),
            ),
        ]);
        for (kind, name) in [
            (Used::Secret, "pull"),
            (Used::Secret, "vol-secret"),
            (Used::Secret, "env-secret"),
            (Used::ConfigMap, "env-map"),
            (Used::ConfigMap, "all-map"),
            (Used::ConfigMap, "kube-root-ca.crt"),
            (Used::Claim, "claim"),
            (Used::Claim, "a-scratch"),
        ] {
            assert!(graph.uses("n1", kind, "ns", name), "{kind:?} {name}");
            assert!(!graph.uses("n2", kind, "ns", name), "{kind:?} {name}");
        }
        assert!(!graph.uses("n1", Used::Secret, "other", "pull"));
        assert!(!graph.uses("n1", Used::Secret, "ns", "unbound"));
        assert!(!graph.uses("n1", Used::ConfigMap, "ns", "pull"));
        // Two pods use the objects: the relation lasts until both are gone.
        let mut state = graph.state.write();
        state.remove_pod(b"/pods/ns/a");
        assert!(state
            .used_by
            .contains_key(&(Used::Secret, "ns".into(), "pull".into())));
        state.remove_pod(b"/pods/ns/b");
        assert!(state.used_by.is_empty());
        state.put_claim(b"/persistentvolumeclaims/ns/claim", json!({"metadata": {"name": "claim", "namespace": "ns"}, "spec": {"volumeName": "pv-1"}}).to_string().as_bytes());
        state.put_pod(b"/pods/ns/a", pod("a", "n1").to_string().as_bytes());
        drop(state);
        assert!(graph.uses_volume("n1", "pv-1"));
        assert!(!graph.uses_volume("n2", "pv-1"));
        assert!(!graph.uses_volume("n1", "pv-2"));
    }
}
