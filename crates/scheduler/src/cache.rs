//! The scheduler's cache of the cluster and the per-cycle [`Snapshot`] taken from it, as
//! upstream's `internal/cache`.
//!
//! The cache holds one [`NodeInfo`] per node: the node, the pods on it (bound, or *assumed*: the
//! scheduler picked the node and the bind is in flight) and sums the filters need (requested
//! resources, used host ports, images). Informer handlers update it; the scheduling loop copies
//! it into a [`Snapshot`] at the start of each cycle so the cycle sees one consistent cluster
//! without holding the lock.
//!
//! Copying is cheap: NodeInfos are `Arc`s shared by cache and snapshot; the cache changes a node
//! with `Arc::make_mut` (cloning only that node if the snapshot still shares it) and remembers it
//! as dirty; the next snapshot update replaces only the dirty nodes.
//!
//! An assumed pod is confirmed when the watch shows it bound, forgotten when binding fails, and
//! expires `assumed_pod_ttl` after its bind finished if the watch never showed it (a lost event).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use tokio::time::Instant;

use crate::framework::ClusterEvent;
use crate::resources::{pod_requests, Resources};

/// The key of a pod in the cache and the queue: `namespace/name`.
pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// Whether `key` is `pod`'s `namespace/name` (without building the key).
fn key_is(pod: &Pod, key: &str) -> bool {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    key.len() == namespace.len() + 1 + name.len()
        && key.starts_with(namespace)
        && key[namespace.len()..].starts_with('/')
        && key.ends_with(name)
}

/// The topology keys of `pod`'s pod (anti-)affinity terms, required and preferred (one per
/// term).
pub fn affinity_topology_keys(pod: &Pod) -> impl Iterator<Item = &str> {
    let affinity = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    let affinity_terms = affinity.and_then(|a| a.pod_affinity.as_ref()).map(|a| {
        (
            &a.required_during_scheduling_ignored_during_execution,
            &a.preferred_during_scheduling_ignored_during_execution,
        )
    });
    let anti_terms = affinity
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .map(|a| {
            (
                &a.required_during_scheduling_ignored_during_execution,
                &a.preferred_during_scheduling_ignored_during_execution,
            )
        });
    affinity_terms
        .into_iter()
        .chain(anti_terms)
        .flat_map(|(required, preferred)| {
            required
                .iter()
                .flatten()
                .map(|t| t.topology_key.as_str())
                .chain(
                    preferred
                        .iter()
                        .flatten()
                        .map(|t| t.pod_affinity_term.topology_key.as_str()),
                )
        })
}

/// A pod and what the scheduler computes once about it.
#[derive(Clone, Debug)]
pub struct PodInfo {
    /// The pod.
    pub pod: Arc<Pod>,
    /// Its requests (init-container max rule, overhead).
    pub requests: Resources,
    /// Its requests with 100m/200Mi for containers that set none (for scoring).
    pub non_zero_requests: Resources,
    /// It has pod affinity or anti-affinity terms (required or preferred).
    pub has_affinity: bool,
    /// It has required anti-affinity terms.
    pub has_required_anti_affinity: bool,
}

impl PodInfo {
    /// Computes the info of `pod`.
    pub fn new(pod: Arc<Pod>) -> PodInfo {
        let affinity = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
        let has_affinity =
            affinity.is_some_and(|a| a.pod_affinity.is_some() || a.pod_anti_affinity.is_some());
        let has_required_anti_affinity = affinity
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .is_some_and(|terms| !terms.is_empty());
        PodInfo {
            requests: pod_requests(&pod, false),
            non_zero_requests: pod_requests(&pod, true),
            has_affinity,
            has_required_anti_affinity,
            pod,
        }
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        pod_key(&self.pod)
    }
}

/// A host port in use: protocol, host IP (`0.0.0.0` when unset) and port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// The host IP, `0.0.0.0` for all.
    pub ip: String,
    /// The port.
    pub port: i32,
}

/// The host ports `pod` asks for.
pub fn pod_host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|port| *port > 0)?;
            Some(HostPort {
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".to_string()),
                ip: p
                    .host_ip
                    .clone()
                    .filter(|ip| !ip.is_empty())
                    .unwrap_or_else(|| "0.0.0.0".to_string()),
                port,
            })
        })
        .collect()
}

/// An image name as the node reports it: `:latest` added when there is no tag or digest.
pub fn normalized_image_name(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || last.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

/// One node and the pods on it, as upstream's `framework.NodeInfo`.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// The node's name.
    pub name: String,
    /// The node, `None` while only pods naming it have been seen.
    pub node: Option<Arc<Node>>,
    /// The pods bound or assumed to it.
    pub pods: Vec<PodInfo>,
    /// How many of them have pod (anti-)affinity terms.
    pub pods_with_affinity: usize,
    /// How many of them have required anti-affinity terms.
    pub pods_with_required_anti_affinity: usize,
    /// The topology keys of the pods' (anti-)affinity terms (required and preferred), each with
    /// how many terms use it: InterPodAffinity's PreScore visits only the domains of these keys.
    pub affinity_topology_keys: BTreeMap<String, usize>,
    /// Sum of the pods' requests.
    pub requested: Resources,
    /// Sum of the pods' non-zero requests (for scoring).
    pub non_zero_requested: Resources,
    /// The node's allocatable resources.
    pub allocatable: Resources,
    /// Host ports in use.
    pub used_ports: Vec<HostPort>,
    /// Images present on the node: normalized name to size in bytes.
    pub image_sizes: HashMap<String, i64>,
    /// Bumped on every change.
    pub generation: u64,
}

impl NodeInfo {
    /// An empty NodeInfo for `name`.
    pub fn new(name: &str) -> NodeInfo {
        NodeInfo {
            name: name.to_string(),
            node: None,
            pods: Vec::new(),
            pods_with_affinity: 0,
            pods_with_required_anti_affinity: 0,
            affinity_topology_keys: BTreeMap::new(),
            requested: Resources::default(),
            non_zero_requested: Resources::default(),
            allocatable: Resources::default(),
            used_ports: Vec::new(),
            image_sizes: HashMap::new(),
            generation: 0,
        }
    }

    /// A NodeInfo for `node` with `pods` on it (tests, benchmarks).
    pub fn with_pods(node: Node, pods: impl IntoIterator<Item = Pod>) -> NodeInfo {
        let mut info = NodeInfo::new(node.metadata.name.as_deref().unwrap_or(""));
        info.set_node(Arc::new(node));
        for pod in pods {
            info.add_pod(PodInfo::new(Arc::new(pod)));
        }
        info
    }

    /// Sets the node object.
    pub fn set_node(&mut self, node: Arc<Node>) {
        self.allocatable = Resources::allocatable(&node);
        self.image_sizes.clear();
        for image in node
            .status
            .as_ref()
            .and_then(|s| s.images.as_ref())
            .into_iter()
            .flatten()
        {
            for name in image.names.iter().flatten() {
                self.image_sizes
                    .insert(normalized_image_name(name), image.size_bytes.unwrap_or(0));
            }
        }
        self.node = Some(node);
    }

    /// The node's labels.
    pub fn labels(&self) -> Option<&BTreeMap<String, String>> {
        self.node.as_ref().and_then(|n| n.metadata.labels.as_ref())
    }

    /// The node's label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels().and_then(|l| l.get(key)).map(String::as_str)
    }

    /// Adds a pod and its requests and ports.
    pub fn add_pod(&mut self, pod: PodInfo) {
        self.requested.add(&pod.requests);
        self.non_zero_requested.add(&pod.non_zero_requests);
        self.used_ports.extend(pod_host_ports(&pod.pod));
        self.pods_with_affinity += usize::from(pod.has_affinity);
        self.pods_with_required_anti_affinity += usize::from(pod.has_required_anti_affinity);
        if pod.has_affinity {
            for key in affinity_topology_keys(&pod.pod) {
                match self.affinity_topology_keys.get_mut(key) {
                    Some(count) => *count += 1,
                    None => {
                        self.affinity_topology_keys.insert(key.to_string(), 1);
                    }
                }
            }
        }
        self.pods.push(pod);
        self.generation += 1;
    }

    /// Removes the pod with key `key`; returns it.
    pub fn remove_pod(&mut self, key: &str) -> Option<PodInfo> {
        let index = self.pods.iter().position(|p| key_is(&p.pod, key))?;
        let pod = self.pods.swap_remove(index);
        self.requested.sub(&pod.requests);
        self.non_zero_requested.sub(&pod.non_zero_requests);
        for port in pod_host_ports(&pod.pod) {
            if let Some(i) = self.used_ports.iter().position(|p| *p == port) {
                self.used_ports.swap_remove(i);
            }
        }
        self.pods_with_affinity -= usize::from(pod.has_affinity);
        self.pods_with_required_anti_affinity -= usize::from(pod.has_required_anti_affinity);
        if pod.has_affinity {
            for key in affinity_topology_keys(&pod.pod) {
                if let Some(count) = self.affinity_topology_keys.get_mut(key) {
                    *count -= 1;
                    if *count == 0 {
                        self.affinity_topology_keys.remove(key);
                    }
                }
            }
        }
        self.generation += 1;
        Some(pod)
    }
}

/// The cluster as one scheduling cycle sees it.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Every node with a node object, ordered by name.
    pub nodes: Vec<Arc<NodeInfo>>,
    index: HashMap<String, usize>,
    /// Namespace labels, for namespaceSelector in pod affinity terms.
    pub namespace_labels: Arc<HashMap<String, BTreeMap<String, String>>>,
    /// For each normalized image name, how many nodes have it (ImageLocality's spread).
    pub image_nodes: Arc<HashMap<String, usize>>,
    /// How many nodes run pods with pod (anti-)affinity terms (InterPodAffinity skips its
    /// scan when there are none).
    pub nodes_with_affinity: usize,
    /// How many nodes run pods with required anti-affinity terms.
    pub nodes_with_required_anti_affinity: usize,
    /// The topology keys of every pod's (anti-)affinity terms, with how many terms use each.
    affinity_topology_keys: BTreeMap<String, usize>,
    /// Per node label key, per value: the indices into `nodes` of the nodes with that label
    /// (the topology domains), so a plugin visits a domain's nodes without scanning all.
    domains: Arc<HashMap<String, HashMap<String, Vec<usize>>>>,
}

impl Snapshot {
    /// A snapshot of `nodes` (tests, benchmarks).
    pub fn from_node_infos(nodes: impl IntoIterator<Item = NodeInfo>) -> Snapshot {
        let mut snapshot = Snapshot::default();
        let mut nodes: Vec<Arc<NodeInfo>> = nodes.into_iter().map(Arc::new).collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        snapshot.nodes = nodes;
        snapshot.reindex();
        snapshot
    }

    /// A snapshot of `nodes` with `pods` placed by their `spec.nodeName`.
    pub fn from_objects(nodes: Vec<Node>, pods: Vec<Pod>) -> Snapshot {
        let mut infos: Vec<NodeInfo> = nodes
            .into_iter()
            .map(|n| NodeInfo::with_pods(n, []))
            .collect();
        for pod in pods {
            let node = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            if let Some(info) = infos.iter_mut().find(|i| i.name == node) {
                info.add_pod(PodInfo::new(Arc::new(pod)));
            }
        }
        Snapshot::from_node_infos(infos)
    }

    /// Sets namespace labels (tests).
    pub fn with_namespace_labels(
        mut self,
        labels: HashMap<String, BTreeMap<String, String>>,
    ) -> Snapshot {
        self.namespace_labels = Arc::new(labels);
        self
    }

    fn count(&mut self, node: &NodeInfo, sign: isize) {
        let add = |n: usize, yes: bool| {
            if yes {
                n.saturating_add_signed(sign)
            } else {
                n
            }
        };
        self.nodes_with_affinity = add(self.nodes_with_affinity, node.pods_with_affinity > 0);
        self.nodes_with_required_anti_affinity = add(
            self.nodes_with_required_anti_affinity,
            node.pods_with_required_anti_affinity > 0,
        );
        for (key, count) in &node.affinity_topology_keys {
            match self.affinity_topology_keys.get_mut(key) {
                // Entries that drop to 0 stay: the set of keys in use is small and stable.
                Some(total) => *total = total.saturating_add_signed(sign * *count as isize),
                None if sign > 0 => {
                    self.affinity_topology_keys.insert(key.clone(), *count);
                }
                None => {}
            }
        }
    }

    /// Puts `info` at index `i`, keeping the affinity counts and the domains.
    fn set(&mut self, i: usize, info: Arc<NodeInfo>) {
        let old = self.nodes[i].clone();
        self.count(&info, 1);
        self.count(&old, -1);
        let same_labels = match (&old.node, &info.node) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a.metadata.labels == b.metadata.labels,
            (None, None) => true,
            _ => false,
        };
        if !same_labels {
            let domains = Arc::make_mut(&mut self.domains);
            for (key, value) in old.labels().into_iter().flatten() {
                if let Some(indices) = domains.get_mut(key).and_then(|v| v.get_mut(value)) {
                    indices.retain(|j| *j != i);
                }
            }
            for (key, value) in info.labels().into_iter().flatten() {
                let indices = domains
                    .entry(key.clone())
                    .or_default()
                    .entry(value.clone())
                    .or_default();
                if let Err(at) = indices.binary_search(&i) {
                    indices.insert(at, i);
                }
            }
        }
        self.nodes[i] = info;
    }

    fn reindex(&mut self) {
        self.nodes_with_affinity = 0;
        self.nodes_with_required_anti_affinity = 0;
        self.affinity_topology_keys.clear();
        for node in self.nodes.clone() {
            self.count(&node, 1);
        }
        self.index = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone(), i))
            .collect();
        let mut domains: HashMap<String, HashMap<String, Vec<usize>>> = HashMap::new();
        for (i, node) in self.nodes.iter().enumerate() {
            for (key, value) in node.labels().into_iter().flatten() {
                let values = match domains.get_mut(key) {
                    Some(values) => values,
                    None => domains.entry(key.clone()).or_default(),
                };
                match values.get_mut(value) {
                    Some(indices) => indices.push(i),
                    None => {
                        values.insert(value.clone(), vec![i]);
                    }
                }
            }
        }
        self.domains = Arc::new(domains);
        let mut image_nodes: HashMap<String, usize> = HashMap::new();
        for node in &self.nodes {
            for image in node.image_sizes.keys() {
                *image_nodes.entry(image.clone()).or_default() += 1;
            }
        }
        self.image_nodes = Arc::new(image_nodes);
    }

    /// The indices into [`Snapshot::nodes`] of the nodes labelled `key=value` (a topology
    /// domain), in order.
    pub fn nodes_in_domain(&self, key: &str, value: &str) -> &[usize] {
        self.domains
            .get(key)
            .and_then(|values| values.get(value))
            .map_or(&[], Vec::as_slice)
    }

    /// The topology keys used by the (anti-)affinity terms of the pods in the snapshot.
    pub fn affinity_topology_keys(&self) -> impl Iterator<Item = &str> {
        self.affinity_topology_keys
            .iter()
            .filter(|(_, count)| **count > 0)
            .map(|(key, _)| key.as_str())
    }

    /// The node named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<NodeInfo>> {
        self.index.get(name).map(|i| &self.nodes[*i])
    }

    /// How many nodes there are.
    pub fn num_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Replaces one node (preemption's what-if).
    pub fn replace(&mut self, info: NodeInfo) {
        if let Some(i) = self.index.get(&info.name).copied() {
            self.set(i, Arc::new(info));
        }
    }
}

#[derive(Clone, Debug)]
struct PodState {
    node: String,
    /// Bind finished for an assumed pod: when it expires.
    deadline: Option<Instant>,
}

/// Errors of cache operations.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CacheError {
    /// A pod was assumed twice.
    #[error("pod {0} is already in the cache")]
    AlreadyPresent(String),
    /// The pod is not assumed.
    #[error("pod {0} is not assumed")]
    NotAssumed(String),
}

/// The scheduler's view of nodes and pods; see the module docs.
pub struct Cache {
    nodes: HashMap<String, Arc<NodeInfo>>,
    pods: HashMap<String, PodState>,
    assumed: HashSet<String>,
    namespace_labels: Arc<HashMap<String, BTreeMap<String, String>>>,
    dirty: HashSet<String>,
    /// The set of nodes (or a namespace) changed: the snapshot needs a full rebuild.
    structure_changed: bool,
    assumed_pod_ttl: Duration,
}

impl Cache {
    /// An empty cache; assumed pods expire `assumed_pod_ttl` after their bind finished.
    pub fn new(assumed_pod_ttl: Duration) -> Cache {
        Cache {
            nodes: HashMap::new(),
            pods: HashMap::new(),
            assumed: HashSet::new(),
            namespace_labels: Arc::default(),
            dirty: HashSet::new(),
            structure_changed: true,
            assumed_pod_ttl,
        }
    }

    fn node_mut(&mut self, name: &str) -> &mut NodeInfo {
        self.dirty.insert(name.to_string());
        let info = self
            .nodes
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(NodeInfo::new(name)));
        Arc::make_mut(info)
    }

    /// Adds or updates a node; returns the events the change amounts to.
    pub fn upsert_node(&mut self, node: impl Into<Arc<Node>>) -> Vec<ClusterEvent> {
        let node = node.into();
        let name = node.metadata.name.clone().unwrap_or_default();
        let old = self.nodes.get(&name).and_then(|n| n.node.clone());
        let events = node_events(old.as_deref(), &node);
        if old.is_none() || events.contains(&ClusterEvent::NodeImageChange) {
            self.structure_changed = true;
        }
        let info = self.node_mut(&name);
        info.set_node(node);
        info.generation += 1;
        events
    }

    /// Removes a node (its NodeInfo stays while pods still name it).
    pub fn remove_node(&mut self, name: &str) {
        self.structure_changed = true;
        let Some(info) = self.nodes.get_mut(name) else {
            return;
        };
        if info.pods.is_empty() {
            self.nodes.remove(name);
        } else {
            Arc::make_mut(info).node = None;
        }
    }

    /// Records an assigned pod seen by the watch: confirms it if it was assumed.
    pub fn add_pod(&mut self, pod: Arc<Pod>) {
        let key = pod_key(&pod);
        if self.pods.contains_key(&key) {
            // Assumed (now confirmed) or seen before: replace with the current object.
            self.assumed.remove(&key);
            self.remove_pod(&key);
        }
        self.insert_pod(key, pod);
    }

    fn insert_pod(&mut self, key: String, pod: Arc<Pod>) {
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        self.node_mut(&node).add_pod(PodInfo::new(pod));
        self.pods.insert(
            key,
            PodState {
                node,
                deadline: None,
            },
        );
    }

    /// Forgets a pod that was deleted, finished or moved.
    pub fn remove_pod(&mut self, key: &str) {
        let Some(state) = self.pods.remove(key) else {
            return;
        };
        self.assumed.remove(key);
        let drop_node = {
            let info = self.node_mut(&state.node);
            info.remove_pod(key);
            info.node.is_none() && info.pods.is_empty()
        };
        if drop_node {
            self.nodes.remove(&state.node);
            self.structure_changed = true;
        }
    }

    /// Puts a pod the scheduler placed on `node` into the cache before it is bound.
    pub fn assume_pod(&mut self, pod: Arc<Pod>) -> Result<(), CacheError> {
        let key = pod_key(&pod);
        if self.pods.contains_key(&key) {
            return Err(CacheError::AlreadyPresent(key));
        }
        self.insert_pod(key.clone(), pod);
        self.assumed.insert(key);
        Ok(())
    }

    /// The bind of an assumed pod finished: start its expiry clock.
    pub fn finish_binding(&mut self, key: &str, now: Instant) {
        if self.assumed.contains(key) {
            if let Some(state) = self.pods.get_mut(key) {
                state.deadline = Some(now + self.assumed_pod_ttl);
            }
        }
    }

    /// Drops an assumed pod whose bind failed.
    pub fn forget_pod(&mut self, key: &str) -> Result<(), CacheError> {
        if !self.assumed.contains(key) {
            return Err(CacheError::NotAssumed(key.to_string()));
        }
        self.remove_pod(key);
        Ok(())
    }

    /// Whether `key` is assumed and not yet confirmed.
    pub fn is_assumed(&self, key: &str) -> bool {
        self.assumed.contains(key)
    }

    /// Expires assumed pods whose bind finished more than the TTL ago; returns their keys.
    pub fn cleanup_assumed(&mut self, now: Instant) -> Vec<String> {
        let expired: Vec<String> = self
            .assumed
            .iter()
            .filter(|k| {
                self.pods
                    .get(*k)
                    .and_then(|s| s.deadline)
                    .is_some_and(|d| d <= now)
            })
            .cloned()
            .collect();
        for key in &expired {
            tracing::warn!(pod = %key, "assumed pod expired");
            self.remove_pod(key);
        }
        expired
    }

    /// Records a namespace's labels; whether they changed.
    pub fn upsert_namespace(&mut self, namespace: &Namespace) -> bool {
        let name = namespace.metadata.name.clone().unwrap_or_default();
        let labels = namespace.metadata.labels.clone().unwrap_or_default();
        if self.namespace_labels.get(&name) == Some(&labels) {
            return false;
        }
        Arc::make_mut(&mut self.namespace_labels).insert(name, labels);
        self.structure_changed = true;
        true
    }

    /// Forgets a namespace.
    pub fn remove_namespace(&mut self, name: &str) {
        if Arc::make_mut(&mut self.namespace_labels)
            .remove(name)
            .is_some()
        {
            self.structure_changed = true;
        }
    }

    /// How many nodes (with a node object) the cache has.
    pub fn num_nodes(&self) -> usize {
        self.nodes.values().filter(|n| n.node.is_some()).count()
    }

    /// The NodeInfo of `name`.
    pub fn node_info(&self, name: &str) -> Option<&Arc<NodeInfo>> {
        self.nodes.get(name)
    }

    /// Brings `snapshot` up to date: only dirty nodes are replaced unless nodes came or went.
    pub fn update_snapshot(&mut self, snapshot: &mut Snapshot) {
        if self.structure_changed {
            let mut nodes: Vec<Arc<NodeInfo>> = self
                .nodes
                .values()
                .filter(|n| n.node.is_some())
                .cloned()
                .collect();
            nodes.sort_by(|a, b| a.name.cmp(&b.name));
            snapshot.nodes = nodes;
            snapshot.namespace_labels = self.namespace_labels.clone();
            snapshot.reindex();
        } else {
            for name in &self.dirty {
                if let (Some(i), Some(info)) =
                    (snapshot.index.get(name).copied(), self.nodes.get(name))
                {
                    snapshot.set(i, info.clone());
                }
            }
        }
        self.dirty.clear();
        self.structure_changed = false;
    }
}

/// The events a node update amounts to (all "add" for a new node).
pub fn node_events(old: Option<&Node>, new: &Node) -> Vec<ClusterEvent> {
    let Some(old) = old else {
        return vec![ClusterEvent::NodeAdd];
    };
    let mut events = Vec::new();
    if old.metadata.labels != new.metadata.labels {
        events.push(ClusterEvent::NodeLabelChange);
    }
    fn taints(n: &Node) -> &[k8s_openapi::api::core::v1::Taint] {
        n.spec
            .as_ref()
            .and_then(|s| s.taints.as_deref())
            .unwrap_or_default()
    }
    fn allocatable(n: &Node) -> Option<&BTreeMap<String, Quantity>> {
        n.status.as_ref().and_then(|s| s.allocatable.as_ref())
    }
    fn images(n: &Node) -> Option<&Vec<k8s_openapi::api::core::v1::ContainerImage>> {
        n.status.as_ref().and_then(|s| s.images.as_ref())
    }
    if taints(old) != taints(new) {
        events.push(ClusterEvent::NodeTaintChange);
    }
    if allocatable(old) != allocatable(new) {
        events.push(ClusterEvent::NodeAllocatableChange);
    }
    let unschedulable = |n: &Node| {
        n.spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false)
    };
    if unschedulable(old) != unschedulable(new) {
        events.push(ClusterEvent::NodeUnschedulableChange);
    }
    if images(old) != images(new) {
        events.push(ClusterEvent::NodeImageChange);
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{make_node, make_pod};

    fn cache_with_node() -> Cache {
        let mut cache = Cache::new(Duration::from_secs(30));
        cache.upsert_node(make_node("n1").capacity(&[("cpu", "4")]).node());
        cache
    }

    #[test]
    fn assume_confirm_and_forget() {
        let mut cache = cache_with_node();
        let pod = Arc::new(make_pod("p").req("cpu", "1").node("n1").pod());
        cache.assume_pod(pod.clone()).expect("assume");
        assert!(cache.is_assumed("default/p"));
        assert_eq!(
            cache.assume_pod(pod.clone()),
            Err(CacheError::AlreadyPresent("default/p".into()))
        );
        assert_eq!(
            cache.node_info("n1").map(|n| n.requested.milli_cpu),
            Some(1000)
        );
        // The watch shows it bound: confirmed, counted once.
        cache.add_pod(pod.clone());
        assert!(!cache.is_assumed("default/p"));
        assert_eq!(
            cache.node_info("n1").map(|n| n.requested.milli_cpu),
            Some(1000)
        );
        assert_eq!(
            cache.forget_pod("default/p"),
            Err(CacheError::NotAssumed("default/p".into()))
        );

        let other = Arc::new(make_pod("q").req("cpu", "1").node("n1").pod());
        cache.assume_pod(other).expect("assume");
        cache.forget_pod("default/q").expect("forget");
        assert_eq!(
            cache.node_info("n1").map(|n| n.requested.milli_cpu),
            Some(1000)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn assumed_pods_expire_after_binding() {
        let mut cache = cache_with_node();
        cache
            .assume_pod(Arc::new(make_pod("p").node("n1").pod()))
            .expect("assume");
        let now = Instant::now();
        assert!(
            cache
                .cleanup_assumed(now + Duration::from_secs(3600))
                .is_empty(),
            "bind not finished"
        );
        cache.finish_binding("default/p", now);
        assert!(cache
            .cleanup_assumed(now + Duration::from_secs(29))
            .is_empty());
        assert_eq!(
            cache.cleanup_assumed(now + Duration::from_secs(30)),
            vec!["default/p".to_string()]
        );
        assert!(cache.node_info("n1").is_some_and(|n| n.pods.is_empty()));
    }

    #[test]
    fn snapshot_updates_only_dirty_nodes() {
        let mut cache = cache_with_node();
        cache.upsert_node(make_node("n2").node());
        let mut snapshot = Snapshot::default();
        cache.update_snapshot(&mut snapshot);
        assert_eq!(snapshot.num_nodes(), 2);
        let n2_before = snapshot.get("n2").cloned().expect("n2");
        cache.add_pod(Arc::new(make_pod("p").req("cpu", "1").node("n1").pod()));
        cache.update_snapshot(&mut snapshot);
        assert_eq!(snapshot.get("n1").map(|n| n.pods.len()), Some(1));
        assert!(
            Arc::ptr_eq(&n2_before, snapshot.get("n2").expect("n2")),
            "untouched node is shared"
        );
        // Affinity counts follow incremental updates.
        let anti = make_pod("anti")
            .node("n2")
            .pod_anti_affinity("zone", &[("a", "b")])
            .pod();
        cache.add_pod(Arc::new(anti));
        cache.update_snapshot(&mut snapshot);
        assert_eq!(
            (
                snapshot.nodes_with_affinity,
                snapshot.nodes_with_required_anti_affinity
            ),
            (1, 1)
        );
        cache.remove_pod("default/anti");
        cache.update_snapshot(&mut snapshot);
        assert_eq!(
            (
                snapshot.nodes_with_affinity,
                snapshot.nodes_with_required_anti_affinity
            ),
            (0, 0)
        );
        cache.remove_node("n2");
        cache.update_snapshot(&mut snapshot);
        assert_eq!(snapshot.num_nodes(), 1);
    }

    #[test]
    fn pods_before_their_node_are_kept() {
        let mut cache = Cache::new(Duration::from_secs(30));
        cache.add_pod(Arc::new(make_pod("p").node("later").pod()));
        let mut snapshot = Snapshot::default();
        cache.update_snapshot(&mut snapshot);
        assert_eq!(snapshot.num_nodes(), 0, "no node object yet");
        cache.upsert_node(make_node("later").node());
        cache.update_snapshot(&mut snapshot);
        assert_eq!(snapshot.get("later").map(|n| n.pods.len()), Some(1));
    }

    #[test]
    fn snapshot_domains_and_affinity_keys_follow_updates() {
        let mut cache = Cache::new(Duration::from_secs(30));
        cache.upsert_node(make_node("n1").label("zone", "a").node());
        cache.upsert_node(make_node("n2").label("zone", "a").node());
        let mut snapshot = Snapshot::default();
        cache.update_snapshot(&mut snapshot);
        assert_eq!(snapshot.nodes_in_domain("zone", "a"), [0, 1]);
        assert_eq!(
            snapshot.nodes_in_domain("kubernetes.io/hostname", "n2"),
            [1]
        );
        assert!(snapshot.nodes_in_domain("zone", "b").is_empty());
        // A relabelled node moves domain through the incremental path.
        cache.upsert_node(make_node("n2").label("zone", "b").node());
        cache.update_snapshot(&mut snapshot);
        assert_eq!(snapshot.nodes_in_domain("zone", "a"), [0]);
        assert_eq!(snapshot.nodes_in_domain("zone", "b"), [1]);
        // Topology keys of affinity terms come and go with their pods.
        assert_eq!(snapshot.affinity_topology_keys().count(), 0);
        let pod = make_pod("p")
            .node("n1")
            .pod_anti_affinity("zone", &[("a", "b")])
            .preferred_pod_affinity(1, "kubernetes.io/hostname", &[("a", "b")])
            .pod();
        cache.add_pod(Arc::new(pod));
        cache.update_snapshot(&mut snapshot);
        assert_eq!(
            snapshot.affinity_topology_keys().collect::<Vec<_>>(),
            ["kubernetes.io/hostname", "zone"]
        );
        assert_eq!(
            snapshot.get("n1").map(|n| n.affinity_topology_keys.len()),
            Some(2)
        );
        // The watch's update of the same pod replaces it, counted once.
        cache.add_pod(Arc::new(
            make_pod("p")
                .node("n1")
                .pod_anti_affinity("zone", &[("a", "b")])
                .preferred_pod_affinity(1, "kubernetes.io/hostname", &[("a", "b")])
                .pod(),
        ));
        cache.update_snapshot(&mut snapshot);
        assert_eq!(
            snapshot
                .get("n1")
                .and_then(|n| n.affinity_topology_keys.get("zone").copied()),
            Some(1)
        );
        cache.remove_pod("default/p");
        cache.update_snapshot(&mut snapshot);
        assert_eq!(snapshot.affinity_topology_keys().count(), 0);
        assert!(snapshot
            .get("n1")
            .is_some_and(|n| n.affinity_topology_keys.is_empty()));
        // A full rebuild gives the same index.
        cache.upsert_node(make_node("n3").label("zone", "b").node());
        cache.update_snapshot(&mut snapshot);
        assert_eq!(snapshot.nodes_in_domain("zone", "b"), [1, 2]);
    }

    #[test]
    fn remove_pod_matches_the_exact_key() {
        let mut info = NodeInfo::new("n");
        info.add_pod(PodInfo::new(Arc::new(make_pod("ab").pod())));
        info.add_pod(PodInfo::new(Arc::new(make_pod("b").namespace("a").pod())));
        assert!(info.remove_pod("default/b").is_none());
        assert!(info.remove_pod("a/b").is_some());
        assert!(info.remove_pod("default/ab").is_some());
        assert!(info.pods.is_empty());
    }
}
