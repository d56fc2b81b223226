//! The node's own API objects: the Node the kubelet registers, the status it keeps posting, and
//! its Lease in `kube-node-lease` — upstream's `kubelet_node_status.go` (`initialNode`,
//! `tryRegisterWithAPIServer`, the status setters in `nodestatus/setters.go`,
//! `tryUpdateNodeStatus`) and the node lease controller.
//!
//! Pure builders first ([`node_object`], [`node_status`], [`lease_object`], [`renewed_lease`],
//! [`reconcile_existing_node`], [`should_post_status`]), then the I/O ([`register`],
//! [`post_status`], [`renew_lease`]) and [`NodeHeartbeat`], the loop that ties them together:
//! register, renew the Lease every 10 s, post the status every 10 s when it changed and every
//! 5 min regardless.
//!
//! Deviations from upstream:
//! - on re-registration (the Node exists) ferry adds its configured labels, the attach/detach
//!   annotation and any missing `--register-with-taints` taints; upstream reconciles only the
//!   default labels and the annotation, and applies taints only at creation.
//! - when the Node disappears after registration (404 on a status patch) the heartbeat registers
//!   it again; upstream's kubelet needs a restart.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    ContainerImage, DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints,
    NodeSpec, NodeStatus, NodeSystemInfo, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};

use crate::machine::{self, MachineConfig, NodeFacts, Pressure, Resources};
use crate::runtime::Runtime;

/// `nodeInfo.kubeletVersion`.
pub const KUBELET_VERSION: &str = "v1.33.0-ferry";
/// The namespace of node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// `nodeLeaseDurationSeconds`, upstream's default.
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// The kubelet's port (`daemonEndpoints.kubeletEndpoint`).
pub const KUBELET_PORT: i32 = 10250;
/// Upstream's `nodeStatusMaxImages`: the status lists at most this many images.
pub const MAX_IMAGES: usize = 50;

/// The kubelet's Node annotation saying the TTL controller's TTL for this node.
pub const TTL_ANNOTATION: &str = "node.alpha.kubernetes.io/ttl";
/// The annotation saying the attach/detach controller, not the kubelet, attaches volumes.
pub const CMAD_ANNOTATION: &str = "volumes.kubernetes.io/controller-managed-attach-detach";

/// The labels upstream's kubelet reconciles on an existing Node (`updateDefaultLabels`).
const DEFAULT_LABELS: [&str; 5] = [
    "kubernetes.io/hostname",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
];

/// Errors of the node's API calls.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// An API call failed.
    #[error("{action}: {source}")]
    Api {
        /// What was being done (`create node`, `patch node status`, ...).
        action: &'static str,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The existing Node kept changing under the reconciliation.
    #[error("node {0} kept changing during registration")]
    Conflict(String),
    /// The machine could not be read.
    #[error(transparent)]
    Machine(#[from] machine::MachineError),
}

fn api_err(action: &'static str) -> impl FnOnce(kube::Error) -> NodeError {
    move |e| NodeError::Api {
        action,
        source: Box::new(e),
    }
}

/// The HTTP status of an API error, if the server answered.
fn status_code(error: &NodeError) -> Option<u16> {
    match error {
        NodeError::Api { source, .. } => match source.as_ref() {
            kube::Error::Api(status) => Some(status.code),
            _ => None,
        },
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Plain data.

/// How this node registers: name, extra labels, taints.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeOptions {
    /// The Node's name (upstream: the lower-cased hostname unless overridden).
    pub node_name: String,
    /// `--node-labels`, on top of the kubelet's own.
    pub labels: BTreeMap<String, String>,
    /// `--register-with-taints`.
    pub taints: Vec<Taint>,
    /// `daemonEndpoints.kubeletEndpoint.Port`.
    pub kubelet_port: i32,
}

impl NodeOptions {
    /// Options for a node named `node_name`, with no extra labels or taints.
    pub fn new(node_name: impl Into<String>) -> Self {
        NodeOptions {
            node_name: node_name.into(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            kubelet_port: KUBELET_PORT,
        }
    }
}

/// What the node's health is made of besides the machine: the runtime and the eviction manager.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Health {
    /// `containerd://<version>` (`<runtimeName>://<runtimeVersion>` of CRI `Version`).
    pub runtime_version: String,
    /// Why the node is not ready (runtime down, network not ready); empty when it is.
    pub errors: Vec<String>,
    /// The pressure conditions.
    pub pressure: Pressure,
    /// The images on the node, when known (see [`node_images`]).
    pub images: Option<Vec<ContainerImage>>,
}

// ---------------------------------------------------------------------------------------------
// Pure builders.

fn string_map<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The labels the kubelet puts on its Node (`initialNode`), then `--node-labels`.
pub fn node_labels(facts: &NodeFacts, options: &NodeOptions) -> BTreeMap<String, String> {
    let os = facts.operating_system.as_str();
    let arch = facts.architecture.as_str();
    let mut labels = string_map([
        ("kubernetes.io/hostname", facts.hostname.as_str()),
        ("kubernetes.io/os", os),
        ("kubernetes.io/arch", arch),
        ("beta.kubernetes.io/os", os),
        ("beta.kubernetes.io/arch", arch),
    ]);
    labels.extend(options.labels.clone());
    labels
}

/// The annotations the kubelet puts on its Node.
pub fn node_annotations() -> BTreeMap<String, String> {
    string_map([(TTL_ANNOTATION, "0"), (CMAD_ANNOTATION, "true")])
}

/// The Node as the kubelet creates it, without status (see [`node_status`]).
pub fn node_object(facts: &NodeFacts, options: &NodeOptions) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(options.node_name.clone()),
            labels: Some(node_labels(facts, options)),
            annotations: Some(node_annotations()),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            taints: (!options.taints.is_empty()).then(|| options.taints.clone()),
            ..NodeSpec::default()
        }),
        status: None,
    }
}

/// `cpu` as a Quantity: whole cores (`"2"`) or millicores (`"1500m"`).
pub fn cpu_quantity(millis: u64) -> Quantity {
    if millis.is_multiple_of(1000) {
        Quantity((millis / 1000).to_string())
    } else {
        Quantity(format!("{millis}m"))
    }
}

/// Bytes as a canonical binary-SI Quantity, as the kubelet prints memory and storage:
/// the largest suffix that divides exactly (`"24731708Ki"`, `"2Gi"`), else plain bytes.
pub fn bytes_quantity(bytes: u64) -> Quantity {
    const SUFFIXES: [(&str, u32); 6] = [
        ("Ei", 60),
        ("Pi", 50),
        ("Ti", 40),
        ("Gi", 30),
        ("Mi", 20),
        ("Ki", 10),
    ];
    if bytes == 0 {
        return Quantity("0".to_string());
    }
    for (suffix, shift) in SUFFIXES {
        if bytes.is_multiple_of(1u64 << shift) {
            return Quantity(format!("{}{suffix}", bytes >> shift));
        }
    }
    Quantity(bytes.to_string())
}

/// A resource list (`status.capacity` / `status.allocatable`).
pub fn resource_list(r: &Resources) -> BTreeMap<String, Quantity> {
    [
        ("cpu", cpu_quantity(r.cpu_millis)),
        ("memory", bytes_quantity(r.memory_bytes)),
        ("pods", Quantity(r.pods.to_string())),
        (
            "ephemeral-storage",
            bytes_quantity(r.ephemeral_storage_bytes),
        ),
        ("hugepages-2Mi", bytes_quantity(r.hugepages_2mi_bytes)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// One condition: `lastTransitionTime` carried over from `previous` when its status is the same,
/// `lastHeartbeatTime` now (upstream's condition setters).
fn condition(
    previous: Option<&NodeStatus>,
    type_: &str,
    status: bool,
    (reason, message): (&str, String),
    now: Timestamp,
) -> NodeCondition {
    let status = if status { "True" } else { "False" };
    let transition = previous
        .and_then(|p| p.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    NodeCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(transition),
    }
}

/// The Ready condition's message when not ready: upstream's `errors.NewAggregate` text.
fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// The kubelet's four conditions, in upstream's order.
pub fn node_conditions(
    health: &Health,
    previous: Option<&NodeStatus>,
    now: Timestamp,
) -> Vec<NodeCondition> {
    let p = &health.pressure;
    let pick = |pressure: bool, yes: (&'static str, &str), no: (&'static str, &str)| {
        let (reason, message) = if pressure { yes } else { no };
        (reason, message.to_string())
    };
    let ready = if health.errors.is_empty() {
        (
            "KubeletReady",
            "kubelet is posting ready status".to_string(),
        )
    } else {
        ("KubeletNotReady", aggregate(&health.errors))
    };
    vec![
        condition(
            previous,
            "MemoryPressure",
            p.memory,
            pick(
                p.memory,
                (
                    "KubeletHasInsufficientMemory",
                    "kubelet has insufficient memory available",
                ),
                (
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
            ),
            now,
        ),
        condition(
            previous,
            "DiskPressure",
            p.disk,
            pick(
                p.disk,
                ("KubeletHasDiskPressure", "kubelet has disk pressure"),
                ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ),
            now,
        ),
        condition(
            previous,
            "PIDPressure",
            p.pid,
            pick(
                p.pid,
                (
                    "KubeletHasInsufficientPID",
                    "kubelet has insufficient PID available",
                ),
                (
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                ),
            ),
            now,
        ),
        condition(previous, "Ready", health.errors.is_empty(), ready, now),
    ]
}

/// The node's addresses: InternalIP (when known) and Hostname.
pub fn node_addresses(internal_ip: Option<IpAddr>, hostname: &str) -> Vec<NodeAddress> {
    let mut addresses = Vec::new();
    if let Some(ip) = internal_ip {
        addresses.push(NodeAddress {
            type_: "InternalIP".to_string(),
            address: ip.to_string(),
        });
    }
    addresses.push(NodeAddress {
        type_: "Hostname".to_string(),
        address: hostname.to_string(),
    });
    addresses
}

/// The node's status: resources, conditions, addresses, daemon endpoints, node info, images.
pub fn node_status(
    facts: &NodeFacts,
    health: &Health,
    previous: Option<&NodeStatus>,
    now: Timestamp,
) -> NodeStatus {
    NodeStatus {
        capacity: Some(resource_list(&facts.capacity)),
        allocatable: Some(resource_list(&facts.allocatable)),
        conditions: Some(node_conditions(health, previous, now)),
        addresses: Some(node_addresses(facts.internal_ip, &facts.hostname)),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: KUBELET_PORT }),
        }),
        node_info: Some(NodeSystemInfo {
            machine_id: facts.machine_id.clone(),
            system_uuid: facts.system_uuid.clone(),
            boot_id: facts.boot_id.clone(),
            kernel_version: facts.kernel_version.clone(),
            os_image: facts.os_image.clone(),
            container_runtime_version: health.runtime_version.clone(),
            kubelet_version: KUBELET_VERSION.to_string(),
            // Deprecated upstream (1.31+): the kubelet leaves it empty.
            kube_proxy_version: String::new(),
            operating_system: facts.operating_system.clone(),
            architecture: facts.architecture.clone(),
            swap: None,
        }),
        images: health.images.clone(),
        ..NodeStatus::default()
    }
}

/// [`node_status`] with the kubelet port from `options`.
fn node_status_for(
    facts: &NodeFacts,
    options: &NodeOptions,
    health: &Health,
    previous: Option<&NodeStatus>,
    now: Timestamp,
) -> NodeStatus {
    let mut status = node_status(facts, health, previous, now);
    status.daemon_endpoints = Some(NodeDaemonEndpoints {
        kubelet_endpoint: Some(DaemonEndpoint {
            port: options.kubelet_port,
        }),
    });
    status
}

/// `status.images` from the runtime's images (`(names, size)`: repo tags then digests), largest
/// first, at most [`MAX_IMAGES`], as upstream's images setter.
pub fn node_images(images: Vec<(Vec<String>, u64)>) -> Vec<ContainerImage> {
    let mut images: Vec<_> = images
        .into_iter()
        .filter(|(names, _)| !names.is_empty())
        .collect();
    images.sort_by_key(|(_, size)| std::cmp::Reverse(*size));
    images.truncate(MAX_IMAGES);
    images
        .into_iter()
        .map(|(names, size)| ContainerImage {
            names: Some(names),
            size_bytes: Some(i64::try_from(size).unwrap_or(i64::MAX)),
        })
        .collect()
}

/// Whether two statuses differ other than in the conditions' heartbeat times (upstream's
/// `nodeStatusHasChanged`).
pub fn status_changed(old: &NodeStatus, new: &NodeStatus) -> bool {
    let strip = |s: &NodeStatus| {
        let mut s = s.clone();
        for c in s.conditions.iter_mut().flatten() {
            c.last_heartbeat_time = None;
        }
        s
    };
    strip(old) != strip(new)
}

/// Whether to patch `nodes/status` now: when the status changed since the last post, or when
/// `report_frequency` (`nodeStatusReportFrequency`, 5 min) passed since it.
pub fn should_post_status(
    last_posted: Option<(&NodeStatus, Timestamp)>,
    new: &NodeStatus,
    now: Timestamp,
    report_frequency: Duration,
) -> bool {
    let Some((old, at)) = last_posted else {
        return true;
    };
    if status_changed(old, new) {
        return true;
    }
    let elapsed = now.duration_since(at);
    elapsed.is_negative() || elapsed.unsigned_abs() >= report_frequency
}

/// The Lease's owner: the Node, as the kubelet sets it (so the Lease goes with the Node).
fn node_owner(node_name: &str, node_uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: "v1".to_string(),
        kind: "Node".to_string(),
        name: node_name.to_string(),
        uid: node_uid.to_string(),
        ..OwnerReference::default()
    }
}

/// The node's Lease in `kube-node-lease`, owned by its Node when the Node's UID is known.
pub fn lease_object(
    node_name: &str,
    node_uid: Option<&str>,
    duration_seconds: i32,
    now: Timestamp,
) -> Lease {
    let base = Lease {
        metadata: ObjectMeta {
            name: Some(node_name.to_string()),
            namespace: Some(LEASE_NAMESPACE.to_string()),
            ..ObjectMeta::default()
        },
        spec: None,
    };
    renewed_lease(&base, node_name, node_uid, duration_seconds, now)
}

/// `base` renewed at `now` (upstream's lease controller `newLease`): holder, duration and renew
/// time set; the owner reference to the Node added if the Lease has none.
pub fn renewed_lease(
    base: &Lease,
    node_name: &str,
    node_uid: Option<&str>,
    duration_seconds: i32,
    now: Timestamp,
) -> Lease {
    let mut lease = base.clone();
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = Some(node_name.to_string());
    spec.lease_duration_seconds = Some(duration_seconds);
    spec.renew_time = Some(MicroTime(now));
    if let Some(uid) = node_uid {
        if lease
            .metadata
            .owner_references
            .as_ref()
            .is_none_or(|o| o.is_empty())
        {
            lease.metadata.owner_references = Some(vec![node_owner(node_name, uid)]);
        }
    }
    lease
}

/// The existing Node updated with ours on re-registration, or `None` when nothing changes:
/// our labels set (an empty value removes a default label, as upstream), the attach/detach
/// annotation set, the TTL annotation added when absent, our taints added when no taint of the
/// same key and effect is there.
pub fn reconcile_existing_node(existing: &Node, ours: &Node) -> Option<Node> {
    let mut node = existing.clone();
    let mut changed = false;
    let labels = node.metadata.labels.get_or_insert_with(BTreeMap::new);
    for (key, value) in ours.metadata.labels.iter().flatten() {
        if value.is_empty() && DEFAULT_LABELS.contains(&key.as_str()) {
            changed |= labels.remove(key).is_some();
        } else if labels.get(key) != Some(value) {
            labels.insert(key.clone(), value.clone());
            changed = true;
        }
    }
    let annotations = node.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let ours_annotations = ours.metadata.annotations.clone().unwrap_or_default();
    if let Some(cmad) = ours_annotations.get(CMAD_ANNOTATION) {
        if annotations.get(CMAD_ANNOTATION) != Some(cmad) {
            annotations.insert(CMAD_ANNOTATION.to_string(), cmad.clone());
            changed = true;
        }
    }
    if let Some(ttl) = ours_annotations.get(TTL_ANNOTATION) {
        if !annotations.contains_key(TTL_ANNOTATION) {
            annotations.insert(TTL_ANNOTATION.to_string(), ttl.clone());
            changed = true;
        }
    }
    let our_taints = ours
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    if !our_taints.is_empty() {
        let spec = node.spec.get_or_insert_with(NodeSpec::default);
        let taints = spec.taints.get_or_insert_with(Vec::new);
        for taint in our_taints {
            if !taints
                .iter()
                .any(|t| t.key == taint.key && t.effect == taint.effect)
            {
                taints.push(taint);
                changed = true;
            }
        }
    }
    changed.then_some(node)
}

// ---------------------------------------------------------------------------------------------
// I/O.

fn nodes(client: &kube::Client) -> Api<Node> {
    Api::all(client.clone())
}

fn leases(client: &kube::Client) -> Api<Lease> {
    Api::namespaced(client.clone(), LEASE_NAMESPACE)
}

/// Registers `node` (with its status): creates it, or, when a Node of that name exists,
/// reconciles our labels, annotations and taints into it ([`reconcile_existing_node`]) and
/// patches its status. Returns the Node as the server has it.
pub async fn register(client: &kube::Client, node: &Node) -> Result<Node, NodeError> {
    let api = nodes(client);
    let name = node.metadata.name.clone().unwrap_or_default();
    match api
        .create(&PostParams::default(), node)
        .await
        .map_err(api_err("create node"))
    {
        Ok(created) => return Ok(created),
        Err(e) if status_code(&e) == Some(409) => {}
        Err(e) => return Err(e),
    }
    // It exists: reconcile, with the resourceVersion we read, a few times if it moves under us.
    let mut reconciled = None;
    for _ in 0..5 {
        let existing = api.get(&name).await.map_err(api_err("get node"))?;
        let Some(updated) = reconcile_existing_node(&existing, node) else {
            reconciled = Some(existing);
            break;
        };
        match api
            .replace(&name, &PostParams::default(), &updated)
            .await
            .map_err(api_err("update node"))
        {
            Ok(n) => {
                reconciled = Some(n);
                break;
            }
            Err(e) if status_code(&e) == Some(409) => continue,
            Err(e) => return Err(e),
        }
    }
    if reconciled.is_none() {
        return Err(NodeError::Conflict(name));
    }
    match &node.status {
        Some(status) => post_status(client, &name, status).await,
        None => reconciled.ok_or(NodeError::Conflict(name)),
    }
}

/// Patches `nodes/status` with `status` (a strategic merge patch: conditions and addresses merge
/// by type, as upstream's). Unconditional: [`should_post_status`] decides when.
pub async fn post_status(
    client: &kube::Client,
    node_name: &str,
    status: &NodeStatus,
) -> Result<Node, NodeError> {
    let patch = serde_json::json!({ "status": status });
    nodes(client)
        .patch_status(node_name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .map_err(api_err("patch node status"))
}

/// Renews the node's Lease at `now`: an update of `latest` (the Lease as last written) when
/// given, else of the Lease read from the server, else a create. Returns the Lease written, to
/// pass as `latest` next time (upstream's lease controller keeps it likewise, saving a GET).
pub async fn renew_lease(
    client: &kube::Client,
    node_name: &str,
    node_uid: Option<&str>,
    latest: Option<&Lease>,
    duration_seconds: i32,
    now: Timestamp,
) -> Result<Lease, NodeError> {
    let api = leases(client);
    if let Some(base) = latest {
        let renewed = renewed_lease(base, node_name, node_uid, duration_seconds, now);
        match api
            .replace(node_name, &PostParams::default(), &renewed)
            .await
            .map_err(api_err("update lease"))
        {
            Ok(lease) => return Ok(lease),
            // Changed or deleted since: read it again below.
            Err(e) if matches!(status_code(&e), Some(404 | 409)) => {}
            Err(e) => return Err(e),
        }
    }
    for _ in 0..2 {
        match api.get_opt(node_name).await.map_err(api_err("get lease"))? {
            Some(existing) => {
                let renewed = renewed_lease(&existing, node_name, node_uid, duration_seconds, now);
                match api
                    .replace(node_name, &PostParams::default(), &renewed)
                    .await
                    .map_err(api_err("update lease"))
                {
                    Err(e) if matches!(status_code(&e), Some(404 | 409)) => continue,
                    other => return other,
                }
            }
            None => {
                let lease = lease_object(node_name, node_uid, duration_seconds, now);
                match api
                    .create(&PostParams::default(), &lease)
                    .await
                    .map_err(api_err("create lease"))
                {
                    Err(e) if status_code(&e) == Some(409) => continue,
                    other => return other,
                }
            }
        }
    }
    Err(NodeError::Conflict(node_name.to_string()))
}

/// The runtime's part of [`Health`]: its version, or why the node is not ready; and its images.
pub async fn runtime_health(runtime: &dyn Runtime, last_version: &str) -> Health {
    let (runtime_version, errors) = match runtime.version().await {
        Ok(v) => (
            format!("{}://{}", v.runtime_name, v.runtime_version),
            vec![],
        ),
        Err(e) => (
            last_version.to_string(),
            vec![format!("container runtime is down: {e}")],
        ),
    };
    let images = runtime.list_images(None).await.ok().map(|images| {
        node_images(
            images
                .into_iter()
                .map(|i| {
                    let names = i.repo_tags.into_iter().chain(i.repo_digests).collect();
                    (names, i.size)
                })
                .collect(),
        )
    });
    Health {
        runtime_version,
        errors,
        pressure: Pressure::default(),
        images,
    }
}

/// The heartbeat's periods, upstream's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeartbeatConfig {
    /// How often the Lease is renewed (upstream: 25% of the lease duration, 10 s).
    pub lease_renew_interval: Duration,
    /// `nodeLeaseDurationSeconds`.
    pub lease_duration_seconds: i32,
    /// `nodeStatusUpdateFrequency`: how often the status is computed (and posted if changed).
    pub status_update_frequency: Duration,
    /// `nodeStatusReportFrequency`: the status is posted at least this often.
    pub status_report_frequency: Duration,
    /// Wait between registration attempts.
    pub register_retry: Duration,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig {
            lease_renew_interval: Duration::from_secs(10),
            lease_duration_seconds: LEASE_DURATION_SECONDS,
            status_update_frequency: Duration::from_secs(10),
            status_report_frequency: Duration::from_secs(300),
            register_retry: Duration::from_secs(7),
        }
    }
}

/// The node's side of the heartbeat: registration, Lease renewal, status updates.
#[derive(Clone, Debug)]
pub struct NodeHeartbeat {
    /// The Node's name, labels, taints.
    pub options: NodeOptions,
    /// How the machine is read.
    pub machine: MachineConfig,
    /// Periods.
    pub config: HeartbeatConfig,
    /// The eviction manager's conditions; without one, the hard thresholds of
    /// `machine.eviction_hard` against the latest observation.
    pub pressure: Option<std::sync::Arc<crate::eviction::EvictionState>>,
    /// The pods' volumes, reported as `status.volumesInUse` (upstream's volume manager's
    /// `GetVolumesInUse`); without it none are.
    pub volumes: Option<crate::volume::VolumeManager>,
}

/// What the heartbeat remembers between ticks.
#[derive(Default)]
struct HeartbeatState {
    /// The registered Node's UID; `None` until registered (or after it vanished).
    node_uid: Option<String>,
    /// The status last posted, and when.
    posted: Option<(NodeStatus, Timestamp)>,
    /// The Lease last written.
    lease: Option<Lease>,
    /// The runtime version last seen, kept while the runtime is down.
    runtime_version: String,
}

impl NodeHeartbeat {
    /// A heartbeat for `options.node_name` reading the machine with `machine`, default periods.
    pub fn new(options: NodeOptions, machine: MachineConfig) -> Self {
        NodeHeartbeat {
            options,
            machine,
            config: HeartbeatConfig::default(),
            pressure: None,
            volumes: None,
        }
    }

    /// The node's current status and the Node to register, from the machine and the runtime.
    async fn observe(
        &self,
        runtime: &dyn Runtime,
        state: &mut HeartbeatState,
        now: Timestamp,
    ) -> Result<(Node, NodeStatus), NodeError> {
        let facts = machine::read_facts(&self.machine)?;
        let observations = machine::read_observations(&self.machine)?;
        let mut health = runtime_health(runtime, &state.runtime_version).await;
        state.runtime_version = health.runtime_version.clone();
        health.pressure = match &self.pressure {
            Some(state) => state.pressure(),
            None => machine::pressure(&observations, &self.machine.eviction_hard),
        };
        let previous = state.posted.as_ref().map(|(s, _)| s);
        let mut status = node_status_for(&facts, &self.options, &health, previous, now);
        if let Some(volumes) = &self.volumes {
            // Always a list, so that the strategic patch clears what is no longer in use.
            status.volumes_in_use = Some(volumes.csi_volumes_in_use());
        }
        Ok((node_object(&facts, &self.options), status))
    }

    /// One status update: registers first if needed, then posts when [`should_post_status`]
    /// says so.
    async fn update_status(
        &self,
        client: &kube::Client,
        runtime: &dyn Runtime,
        state: &mut HeartbeatState,
    ) -> Result<(), NodeError> {
        let now = Timestamp::now();
        let (mut node, status) = self.observe(runtime, state, now).await?;
        let name = &self.options.node_name;
        if state.node_uid.is_none() {
            node.status = Some(status.clone());
            let registered = register(client, &node).await?;
            tracing::info!(node = %name, "node registered");
            state.node_uid = registered.metadata.uid.clone();
            state.posted = Some((status, now));
            return Ok(());
        }
        let last = state.posted.as_ref().map(|(s, t)| (s, *t));
        if !should_post_status(last, &status, now, self.config.status_report_frequency) {
            return Ok(());
        }
        match post_status(client, name, &status).await {
            Ok(_) => {
                state.posted = Some((status, now));
                Ok(())
            }
            Err(e) if status_code(&e) == Some(404) => {
                tracing::warn!(node = %name, "node is gone; registering again");
                state.node_uid = None;
                state.lease = None;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Runs until `shutdown` completes: registers the Node (retrying), then renews the Lease every
    /// `lease_renew_interval` and updates the status every `status_update_frequency`. Errors are
    /// logged and retried at the next tick.
    pub async fn run<F>(self, client: kube::Client, runtime: Arc<dyn Runtime>, shutdown: F)
    where
        F: Future<Output = ()>,
    {
        let mut state = HeartbeatState::default();
        tokio::pin!(shutdown);
        // Registration: the Lease needs the Node's UID for its owner reference.
        while state.node_uid.is_none() {
            if let Err(e) = self
                .update_status(&client, runtime.as_ref(), &mut state)
                .await
            {
                tracing::warn!(node = %self.options.node_name, error = %e, "node registration failed");
                tokio::select! {
                    () = &mut shutdown => return,
                    () = tokio::time::sleep(self.config.register_retry) => continue,
                }
            }
        }
        let mut lease_tick = tokio::time::interval(self.config.lease_renew_interval);
        let mut status_tick = tokio::time::interval(self.config.status_update_frequency);
        lease_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        status_tick.reset(); // the status was just posted by the registration
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = lease_tick.tick() => {
                    if state.node_uid.is_none() {
                        continue;
                    }
                    match renew_lease(
                        &client,
                        &self.options.node_name,
                        state.node_uid.as_deref(),
                        state.lease.as_ref(),
                        self.config.lease_duration_seconds,
                        Timestamp::now(),
                    )
                    .await
                    {
                        Ok(lease) => state.lease = Some(lease),
                        Err(e) => {
                            state.lease = None;
                            tracing::warn!(node = %self.options.node_name, error = %e, "lease renewal failed");
                        }
                    }
                }
                _ = status_tick.tick() => {
                    if let Err(e) = self.update_status(&client, runtime.as_ref(), &mut state).await {
                        tracing::warn!(node = %self.options.node_name, error = %e, "node status update failed");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::net::Ipv4Addr;

    fn t(s: &str) -> Timestamp {
        s.parse().expect("time")
    }

    fn facts() -> NodeFacts {
        let capacity = Resources {
            cpu_millis: 2000,
            memory_bytes: 24731708 * 1024,
            ephemeral_storage_bytes: 100 << 30,
            pods: 110,
            hugepages_2mi_bytes: 0,
        };
        NodeFacts {
            hostname: "node-a".to_string(),
            internal_ip: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2))),
            capacity,
            allocatable: machine::allocatable(
                &capacity,
                &Resources::default(),
                &Resources::default(),
                &machine::EvictionHard::default(),
            ),
            machine_id: "3d1219c7".to_string(),
            system_uuid: "3d1219c7".to_string(),
            boot_id: "c9aff790".to_string(),
            kernel_version: "6.1.0".to_string(),
            os_image: "Debian GNU/Linux 12 (bookworm)".to_string(),
            operating_system: "linux".to_string(),
            architecture: "amd64".to_string(),
        }
    }

    fn healthy() -> Health {
        Health {
            runtime_version: "containerd://1.6.20".to_string(),
            ..Health::default()
        }
    }

    fn taint(key: &str, effect: &str) -> Taint {
        Taint {
            key: key.to_string(),
            effect: effect.to_string(),
            ..Taint::default()
        }
    }

    #[test]
    fn quantities() {
        let cpu = [(2000, "2"), (1500, "1500m"), (1, "1m"), (0, "0")];
        for (millis, want) in cpu {
            assert_eq!(cpu_quantity(millis).0, want);
        }
        let bytes = [
            (0, "0"),
            (24731708 * 1024, "24731708Ki"),
            (2 << 30, "2Gi"),
            (1536 << 20, "1536Mi"),
            (1000, "1000"),
            (1 << 40, "1Ti"),
        ];
        for (b, want) in bytes {
            assert_eq!(bytes_quantity(b).0, want, "{b}");
        }
    }

    #[test]
    fn node_object_as_the_kubelet_registers_it() {
        let mut options = NodeOptions::new("node-a");
        options.labels.insert("zone".into(), "a".into());
        options.taints.push(Taint {
            value: Some("true".into()),
            ..taint("gpu", "NoSchedule")
        });
        let node = serde_json::to_value(node_object(&facts(), &options)).expect("json");
        assert_eq!(
            node["metadata"],
            json!({
                "name": "node-a",
                "labels": {
                    "kubernetes.io/hostname": "node-a",
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "beta.kubernetes.io/os": "linux",
                    "beta.kubernetes.io/arch": "amd64",
                    "zone": "a",
                },
                "annotations": {
                    "node.alpha.kubernetes.io/ttl": "0",
                    "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                },
            })
        );
        assert_eq!(
            node["spec"],
            json!({"taints": [{"key": "gpu", "value": "true", "effect": "NoSchedule"}]})
        );
        let bare =
            serde_json::to_value(node_object(&facts(), &NodeOptions::new("n"))).expect("json");
        assert_eq!(bare["spec"], json!({}));
    }

    #[test]
    fn status_resources_addresses_info() {
        let now = t("2025-01-01T00:02:00Z");
        let status =
            serde_json::to_value(node_status(&facts(), &healthy(), None, now)).expect("json");
        assert_eq!(
            status["capacity"],
            json!({"cpu": "2", "memory": "24731708Ki", "pods": "110",
                   "ephemeral-storage": "100Gi", "hugepages-2Mi": "0"})
        );
        assert_eq!(
            status["allocatable"],
            json!({"cpu": "2", "memory": "24629308Ki", "pods": "110",
                   "ephemeral-storage": "90Gi", "hugepages-2Mi": "0"})
        );
        assert_eq!(
            status["addresses"],
            json!([{"type": "InternalIP", "address": "192.0.2.2"},
                   {"type": "Hostname", "address": "node-a"}])
        );
        assert_eq!(status["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        assert_eq!(
            status["nodeInfo"],
            json!({
                "machineID": "3d1219c7", "systemUUID": "3d1219c7", "bootID": "c9aff790",
                "kernelVersion": "6.1.0", "osImage": "Debian GNU/Linux 12 (bookworm)",
                "containerRuntimeVersion": "containerd://1.6.20",
                "kubeletVersion": "v1.33.0-ferry", "kubeProxyVersion": "",
                "operatingSystem": "linux", "architecture": "amd64",
            })
        );
        assert!(status.get("images").is_none());
        let no_ip = NodeFacts {
            internal_ip: None,
            ..facts()
        };
        let addresses = node_status(&no_ip, &healthy(), None, now).addresses;
        assert_eq!(addresses.map(|a| a.len()), Some(1));
    }

    #[test]
    fn conditions_table() {
        let then = t("2025-01-01T00:00:00Z");
        let now = t("2025-01-01T00:02:00Z");
        let previous = node_status(&facts(), &healthy(), None, then);
        let pressure = |memory, disk, pid| Health {
            pressure: Pressure { memory, disk, pid },
            ..healthy()
        };
        let down = Health {
            errors: vec!["container runtime is down".into()],
            ..healthy()
        };
        let two = Health {
            errors: vec!["a".into(), "b".into()],
            ..healthy()
        };
        // (health, previous, type, status, reason, message, transition time)
        type Row<'a> = (
            Health,
            Option<&'a NodeStatus>,
            &'a str,
            &'a str,
            &'a str,
            &'a str,
            Timestamp,
        );
        let table: Vec<Row> = vec![
            (
                healthy(),
                None,
                "Ready",
                "True",
                "KubeletReady",
                "kubelet is posting ready status",
                now,
            ),
            (
                healthy(),
                Some(&previous),
                "Ready",
                "True",
                "KubeletReady",
                "kubelet is posting ready status",
                then,
            ),
            (
                down.clone(),
                Some(&previous),
                "Ready",
                "False",
                "KubeletNotReady",
                "container runtime is down",
                now,
            ),
            (
                two,
                None,
                "Ready",
                "False",
                "KubeletNotReady",
                "[a, b]",
                now,
            ),
            (
                healthy(),
                Some(&previous),
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
                then,
            ),
            (
                pressure(true, false, false),
                Some(&previous),
                "MemoryPressure",
                "True",
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
                now,
            ),
            (
                healthy(),
                Some(&previous),
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
                then,
            ),
            (
                pressure(false, true, false),
                None,
                "DiskPressure",
                "True",
                "KubeletHasDiskPressure",
                "kubelet has disk pressure",
                now,
            ),
            (
                pressure(false, true, false),
                Some(&previous),
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
                then,
            ),
            (
                pressure(false, false, true),
                Some(&previous),
                "PIDPressure",
                "True",
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available",
                now,
            ),
        ];
        for (health, previous, type_, status, reason, message, transition) in table {
            let conditions = node_conditions(&health, previous, now);
            let types: Vec<&str> = conditions.iter().map(|c| c.type_.as_str()).collect();
            assert_eq!(
                types,
                ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
            );
            let c = conditions
                .iter()
                .find(|c| c.type_ == type_)
                .expect("condition");
            assert_eq!(
                (c.status.as_str(), c.reason.as_deref(), c.message.as_deref()),
                (status, Some(reason), Some(message)),
                "{type_} {health:?}"
            );
            assert_eq!(
                c.last_transition_time,
                Some(Time(transition)),
                "{type_} {health:?}"
            );
            assert_eq!(c.last_heartbeat_time, Some(Time(now)));
        }
        // Back to Ready after being down: a new transition.
        let down_status = node_status(&facts(), &down, Some(&previous), t("2025-01-01T00:01:00Z"));
        let back = node_conditions(&healthy(), Some(&down_status), now);
        assert_eq!(back[3].last_transition_time, Some(Time(now)));
    }

    #[test]
    fn when_to_post_status() {
        let t0 = t("2025-01-01T00:00:00Z");
        let five_min = Duration::from_secs(300);
        let posted = node_status(&facts(), &healthy(), None, t0);
        let at = |secs: i64| t0 + jiff::SignedDuration::from_secs(secs);
        let same_later = node_status(&facts(), &healthy(), Some(&posted), at(10));
        let not_ready = node_status(
            &facts(),
            &Health {
                errors: vec!["x".into()],
                ..healthy()
            },
            Some(&posted),
            at(10),
        );
        let more_pods = node_status(
            &NodeFacts {
                capacity: Resources {
                    pods: 200,
                    ..facts().capacity
                },
                ..facts()
            },
            &healthy(),
            Some(&posted),
            at(10),
        );
        let table = [
            (None, &same_later, at(10), true),
            (Some((&posted, t0)), &same_later, at(10), false),
            (Some((&posted, t0)), &same_later, at(299), false),
            (Some((&posted, t0)), &same_later, at(300), true),
            (Some((&posted, t0)), &not_ready, at(10), true),
            (Some((&posted, t0)), &more_pods, at(10), true),
            // A clock that went back: post.
            (Some((&posted, at(100))), &same_later, at(10), true),
        ];
        for (i, (last, new, now, want)) in table.into_iter().enumerate() {
            assert_eq!(
                should_post_status(last, new, now, five_min),
                want,
                "row {i}"
            );
        }
    }

    #[test]
    fn lease_as_the_kubelet_writes_it() {
        let now = t("2025-01-01T00:00:00Z");
        let lease =
            serde_json::to_value(lease_object("node-a", Some("u-1"), 40, now)).expect("json");
        assert_eq!(
            lease,
            json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": "node-a",
                    "namespace": "kube-node-lease",
                    "ownerReferences": [
                        {"apiVersion": "v1", "kind": "Node", "name": "node-a", "uid": "u-1"}
                    ],
                },
                "spec": {
                    "holderIdentity": "node-a",
                    "leaseDurationSeconds": 40,
                    "renewTime": "2025-01-01T00:00:00.000000Z",
                },
            })
        );
        let unowned = lease_object("node-a", None, 40, now);
        assert!(unowned.metadata.owner_references.is_none());
        // Renewal keeps the server's metadata and an existing owner, moves renewTime.
        let mut existing = lease_object("node-a", Some("old-uid"), 40, now);
        existing.metadata.resource_version = Some("7".into());
        let later = t("2025-01-01T00:00:10Z");
        let renewed = renewed_lease(&existing, "node-a", Some("u-2"), 40, later);
        assert_eq!(renewed.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(
            renewed
                .metadata
                .owner_references
                .as_ref()
                .map(|o| o[0].uid.as_str()),
            Some("old-uid")
        );
        assert_eq!(
            renewed.spec.and_then(|s| s.renew_time),
            Some(MicroTime(later))
        );
        let adopted = renewed_lease(&unowned, "node-a", Some("u-2"), 40, later);
        assert_eq!(
            adopted.metadata.owner_references.map(|o| o[0].uid.clone()),
            Some("u-2".to_string())
        );
    }

    #[test]
    fn reconcile_existing_node_table() {
        let mut options = NodeOptions::new("node-a");
        options.taints.push(taint("dedicated", "NoSchedule"));
        let ours = node_object(&facts(), &options);
        let mut same = ours.clone();
        same.metadata.resource_version = Some("5".into());
        same.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert("extra".into(), "kept".into());
        same.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(TTL_ANNOTATION.into(), "15".into());
        let mut stale_label = same.clone();
        stale_label
            .metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert("kubernetes.io/arch".into(), "arm64".into());
        let mut no_annotations = same.clone();
        no_annotations.metadata.annotations = None;
        let mut other_taint = same.clone();
        other_taint.spec = Some(NodeSpec {
            taints: Some(vec![taint("node.kubernetes.io/not-ready", "NoSchedule")]),
            ..NodeSpec::default()
        });
        let mut same_key_other_value = same.clone();
        same_key_other_value.spec = Some(NodeSpec {
            taints: Some(vec![Taint {
                value: Some("x".into()),
                ..taint("dedicated", "NoSchedule")
            }]),
            ..NodeSpec::default()
        });
        // (existing, changed?, arch label, ttl, taint keys)
        let table = [
            (&same, false, "amd64", "15", vec!["dedicated"]),
            (&stale_label, true, "amd64", "15", vec!["dedicated"]),
            (&no_annotations, true, "amd64", "0", vec!["dedicated"]),
            (
                &other_taint,
                true,
                "amd64",
                "15",
                vec!["node.kubernetes.io/not-ready", "dedicated"],
            ),
            (
                &same_key_other_value,
                false,
                "amd64",
                "15",
                vec!["dedicated"],
            ),
        ];
        for (i, (existing, changed, arch, ttl, taints)) in table.into_iter().enumerate() {
            let got = reconcile_existing_node(existing, &ours);
            assert_eq!(got.is_some(), changed, "row {i}");
            let node = got.unwrap_or_else(|| existing.clone());
            let labels = node.metadata.labels.clone().unwrap_or_default();
            let annotations = node.metadata.annotations.clone().unwrap_or_default();
            assert_eq!(
                labels.get("kubernetes.io/arch").map(String::as_str),
                Some(arch),
                "row {i}"
            );
            assert_eq!(
                labels.get("extra").map(String::as_str),
                Some("kept"),
                "row {i}"
            );
            assert_eq!(
                annotations.get(TTL_ANNOTATION).map(String::as_str),
                Some(ttl),
                "row {i}"
            );
            assert_eq!(
                annotations.get(CMAD_ANNOTATION).map(String::as_str),
                Some("true"),
                "row {i}"
            );
            assert_eq!(
                node.metadata.resource_version.as_deref(),
                Some("5"),
                "row {i}"
            );
            let keys: Vec<String> = node
                .spec
                .and_then(|s| s.taints)
                .unwrap_or_default()
                .into_iter()
                .map(|t| t.key)
                .collect();
            assert_eq!(keys, taints, "row {i}");
        }
    }

    #[test]
    fn images_largest_first_and_capped() {
        let mut images: Vec<(Vec<String>, u64)> = (0..60u64)
            .map(|i| {
                (
                    vec![format!("img{i}:latest"), format!("img{i}@sha256:{i}")],
                    i * 10,
                )
            })
            .collect();
        images.push((vec![], 1_000_000));
        let got = node_images(images);
        assert_eq!(got.len(), MAX_IMAGES);
        assert_eq!(got[0].size_bytes, Some(590));
        assert_eq!(
            got[0].names.as_deref(),
            Some(&["img59:latest".to_string(), "img59@sha256:59".to_string()][..])
        );
        assert_eq!(got[49].size_bytes, Some(100));
    }

    #[tokio::test]
    async fn runtime_health_from_the_fake() {
        use crate::runtime::fake::Op;
        use crate::runtime::{FakeRuntime, RuntimeError};
        let fake = FakeRuntime::new();
        let health = runtime_health(&fake, "").await;
        assert_eq!(health.runtime_version, "fake://0.0.0");
        assert!(health.errors.is_empty());
        assert_eq!(health.images.as_ref().map(Vec::len), Some(0));
        fake.fail_next(Op::Version, RuntimeError::Unavailable("socket".into()));
        let down = runtime_health(&fake, &health.runtime_version).await;
        assert_eq!(down.runtime_version, "fake://0.0.0");
        assert_eq!(
            down.errors,
            ["container runtime is down: runtime unavailable: socket"]
        );
    }
}
