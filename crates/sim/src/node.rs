//! What a simulated node says about itself, as pure functions: the Node the kubelet registers
//! (`kubelet_node_status.go`'s `initialNode` and the status setters), its conditions, and its
//! Lease in `kube-node-lease`. The I/O that posts them is in `sim.rs`.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::Ipv4Addr;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use serde_json::{json, Value};

use crate::Options;

/// Annotation that takes a node down (`"true"`): no Lease renewals, no status, no pods.
pub const DOWN_ANNOTATION: &str = "sim.ferry.dev/down";
/// Label every simulated node carries, `type=ferry-sim`, so tests can select them.
pub const TYPE_LABEL: (&str, &str) = ("type", "ferry-sim");
/// The namespace of node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// `leaseDurationSeconds` of node Leases, the kubelet's.
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// `nodeInfo.kubeletVersion`.
pub const KUBELET_VERSION: &str = "v1.33.0-ferry-sim";
/// `nodeInfo.containerRuntimeVersion`; also the scheme of image and container IDs.
pub const RUNTIME_VERSION: &str = "fake://ferry-sim";

/// The first node address: node `i` is `10.128.0.0 + i + 1`, distinct for 8 million nodes.
const NODE_IP_BASE: Ipv4Addr = Ipv4Addr::new(10, 128, 0, 0);

/// The InternalIP of node number `index`, from 10.128.0.0/9 (never routed, just data).
pub fn internal_ip(index: usize) -> Ipv4Addr {
    let offset = (index as u64 % ((1 << 23) - 2)) as u32 + 1;
    Ipv4Addr::from(u32::from(NODE_IP_BASE) + offset)
}

/// The name of node number `index`.
pub fn node_name(options: &Options, index: usize) -> String {
    format!("{}{index}", options.name_prefix)
}

/// Whether the node carries the down annotation.
pub fn is_down(node: &Node) -> bool {
    node.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DOWN_ANNOTATION))
        .is_some_and(|v| v == "true")
}

/// Whether the node's Ready condition is True (what the kubelet keeps posting).
pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

/// The labels the kubelet puts on its Node, then the sim's, then `--labels`.
pub fn labels(options: &Options, name: &str) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = [
        ("kubernetes.io/hostname", name),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", "amd64"),
        ("node.kubernetes.io/instance-type", "ferry-sim"),
        TYPE_LABEL,
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    labels.extend(options.labels.clone());
    labels
}

/// The annotations the kubelet puts on its Node.
pub fn annotations() -> BTreeMap<String, String> {
    [
        ("node.alpha.kubernetes.io/ttl", "0"),
        (
            "volumes.kubernetes.io/controller-managed-attach-detach",
            "true",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A stable 128-bit hex id from `parts` (machine ID, system UUID): the same node name gives
/// the same id after a restart of the sim, as a real machine keeps its own.
fn hex_id(parts: &[&str]) -> String {
    let mut out = String::with_capacity(32);
    for round in 0u8..2 {
        let mut hasher = DefaultHasher::new();
        round.hash(&mut hasher);
        parts.hash(&mut hasher);
        out.push_str(&format!("{:016x}", hasher.finish()));
    }
    out
}

fn uuid(hex: &str) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The boot ID of node `name` in a sim process started at `boot`: new at each start, as a
/// reboot gives a new one.
pub fn boot_id(name: &str, boot: Timestamp) -> String {
    uuid(&hex_id(&[name, &boot.as_nanosecond().to_string()]))
}

/// Everything a node's status says; the conditions are its heartbeat.
pub struct StatusInput<'a> {
    /// The node.
    pub name: &'a str,
    /// Its InternalIP.
    pub internal_ip: Ipv4Addr,
    /// Its boot ID.
    pub boot_id: &'a str,
    /// When the pressure conditions last changed (registration).
    pub since: Timestamp,
    /// When Ready last became True.
    pub ready_since: Timestamp,
    /// The heartbeat time.
    pub now: Timestamp,
}

/// The kubelet's four conditions, all healthy, in upstream's order.
pub fn conditions(input: &StatusInput<'_>) -> Vec<NodeCondition> {
    let condition =
        |type_: &str, status: &str, reason: &str, message: &str, since: Timestamp| NodeCondition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            last_heartbeat_time: Some(Time(input.now)),
            last_transition_time: Some(Time(since)),
        };
    vec![
        condition(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
            input.since,
        ),
        condition(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
            input.since,
        ),
        condition(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
            input.since,
        ),
        condition(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status",
            input.ready_since,
        ),
    ]
}

/// The full status: resources, conditions, addresses, daemon endpoints, node info.
pub fn status(options: &Options, input: &StatusInput<'_>) -> NodeStatus {
    let resources: BTreeMap<String, Quantity> = [
        ("cpu", options.cpu.clone()),
        ("memory", options.memory.clone()),
        ("pods", options.max_pods.to_string()),
        ("ephemeral-storage", "100Gi".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Quantity(v)))
    .collect();
    let machine_id = hex_id(&[input.name, "machine-id"]);
    NodeStatus {
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        conditions: Some(conditions(input)),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: input.internal_ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: input.name.to_string(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: 10250 }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: "amd64".into(),
            boot_id: input.boot_id.to_string(),
            container_runtime_version: RUNTIME_VERSION.into(),
            kernel_version: "6.1.0-ferry-sim".into(),
            kube_proxy_version: String::new(),
            kubelet_version: KUBELET_VERSION.into(),
            system_uuid: uuid(&hex_id(&[input.name, "system-uuid"])),
            machine_id,
            operating_system: "linux".into(),
            os_image: "ferry-sim".into(),
            swap: None,
        }),
        ..NodeStatus::default()
    }
}

/// The Node as the kubelet creates it (with its status; the API server keeps a Node's status
/// on create).
pub fn node(options: &Options, input: &StatusInput<'_>) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(input.name.to_string()),
            labels: Some(labels(options, input.name)),
            annotations: Some(annotations()),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            taints: (!options.taints.is_empty()).then(|| options.taints.clone()),
            ..NodeSpec::default()
        }),
        status: Some(status(options, input)),
    }
}

/// A merge patch for `nodes/status` carrying the full status.
pub fn full_status_patch(options: &Options, input: &StatusInput<'_>) -> Value {
    json!({ "status": status(options, input) })
}

/// A merge patch for `nodes/status` carrying only the conditions: the periodic heartbeat.
pub fn heartbeat_patch(input: &StatusInput<'_>) -> Value {
    json!({ "status": { "conditions": conditions(input) } })
}

/// A merge patch for a Node the sim takes over (it existed already): the kubelet's labels and
/// annotations.
pub fn takeover_patch(options: &Options, name: &str) -> Value {
    json!({ "metadata": { "labels": labels(options, name), "annotations": annotations() } })
}

fn owner(name: &str, node_uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: name.to_string(),
        uid: node_uid.to_string(),
        ..OwnerReference::default()
    }
}

/// The node's Lease, owned by its Node as the kubelet sets it (so it goes with the Node).
pub fn lease(name: &str, node_uid: &str, now: Timestamp) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(LEASE_NAMESPACE.to_string()),
            owner_references: Some(vec![owner(name, node_uid)]),
            ..ObjectMeta::default()
        },
        spec: Some(lease_spec(name, now)),
    }
}

fn lease_spec(name: &str, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(name.to_string()),
        lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
        renew_time: Some(MicroTime(now)),
        ..LeaseSpec::default()
    }
}

/// A merge patch renewing the Lease: one small request, no read, no conflict.
pub fn lease_renewal_patch(name: &str, now: Timestamp) -> Value {
    json!({ "spec": lease_spec(name, now) })
}

/// A merge patch renewing the Lease and pointing its owner at the current Node (taking over a
/// Lease left by an earlier Node of the same name).
pub fn lease_takeover_patch(name: &str, node_uid: &str, now: Timestamp) -> Value {
    json!({ "metadata": { "ownerReferences": [owner(name, node_uid)] }, "spec": lease_spec(name, now) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::parse_taint;

    fn input(name: &str) -> StatusInput<'_> {
        let t = |s: &str| s.parse::<Timestamp>().expect("time");
        StatusInput {
            name,
            internal_ip: internal_ip(3),
            boot_id: "b",
            since: t("2025-01-01T00:00:00Z"),
            ready_since: t("2025-01-01T00:01:00Z"),
            now: t("2025-01-01T00:02:00Z"),
        }
    }

    #[test]
    fn node_as_the_kubelet_registers_it() {
        let mut options = Options::default();
        options.labels.insert("zone".into(), "a".into());
        options
            .taints
            .push(parse_taint("gpu=true:NoSchedule").expect("taint"));
        let node = serde_json::to_value(node(&options, &input("sim-3"))).expect("json");
        assert_eq!(
            node["metadata"]["labels"]["kubernetes.io/hostname"],
            "sim-3"
        );
        assert_eq!(node["metadata"]["labels"]["type"], "ferry-sim");
        assert_eq!(
            node["metadata"]["labels"]["node.kubernetes.io/instance-type"],
            "ferry-sim"
        );
        assert_eq!(node["metadata"]["labels"]["zone"], "a");
        assert_eq!(
            node["metadata"]["annotations"]["node.alpha.kubernetes.io/ttl"],
            "0"
        );
        assert_eq!(
            node["spec"]["taints"][0],
            json!({"key": "gpu", "value": "true", "effect": "NoSchedule"})
        );
        let status = &node["status"];
        assert_eq!(
            status["capacity"],
            json!({"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "100Gi"})
        );
        assert_eq!(status["allocatable"], status["capacity"]);
        assert_eq!(
            status["addresses"],
            json!([{"type": "InternalIP", "address": "10.128.0.4"}, {"type": "Hostname", "address": "sim-3"}])
        );
        assert_eq!(status["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        assert_eq!(status["nodeInfo"]["kubeletVersion"], KUBELET_VERSION);
        assert_eq!(
            status["nodeInfo"]["containerRuntimeVersion"],
            "fake://ferry-sim"
        );
        let types: Vec<&str> = status["conditions"]
            .as_array()
            .expect("conditions")
            .iter()
            .filter_map(|c| c["type"].as_str())
            .collect();
        assert_eq!(
            types,
            ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
        );
        let ready = &status["conditions"][3];
        assert_eq!(
            (&ready["status"], &ready["reason"]),
            (&json!("True"), &json!("KubeletReady"))
        );
        assert_eq!(ready["lastTransitionTime"], "2025-01-01T00:01:00Z");
        assert_eq!(ready["lastHeartbeatTime"], "2025-01-01T00:02:00Z");
        assert_eq!(
            status["conditions"][0]["lastTransitionTime"],
            "2025-01-01T00:00:00Z"
        );
        let typed: Node = serde_json::from_value(node).expect("round trip");
        assert!(is_ready(&typed));
        assert!(!is_down(&typed));
    }

    #[test]
    fn ids_are_unique_and_stable() {
        let a = status(&Options::default(), &input("sim-1"))
            .node_info
            .expect("info");
        let b = status(&Options::default(), &input("sim-2"))
            .node_info
            .expect("info");
        let a2 = status(&Options::default(), &input("sim-1"))
            .node_info
            .expect("info");
        assert_ne!(a.machine_id, b.machine_id);
        assert_ne!(a.system_uuid, b.system_uuid);
        assert_eq!(a.machine_id, a2.machine_id);
        assert_eq!(a.machine_id.len(), 32);
        assert_eq!(a.system_uuid.len(), 36);
        let t = Timestamp::UNIX_EPOCH;
        assert_ne!(boot_id("sim-1", t), boot_id("sim-2", t));
        assert_ne!(internal_ip(0), internal_ip(1));
        assert_eq!(internal_ip(0), Ipv4Addr::new(10, 128, 0, 1));
        assert_eq!(internal_ip(300), Ipv4Addr::new(10, 128, 1, 45));
    }

    #[test]
    fn lease_is_owned_by_its_node() {
        let now = Timestamp::UNIX_EPOCH;
        let lease = serde_json::to_value(lease("sim-0", "u-1", now)).expect("json");
        assert_eq!(lease["metadata"]["namespace"], "kube-node-lease");
        assert_eq!(
            lease["metadata"]["ownerReferences"],
            json!([{"apiVersion": "v1", "kind": "Node", "name": "sim-0", "uid": "u-1"}])
        );
        assert_eq!(lease["spec"]["holderIdentity"], "sim-0");
        assert_eq!(lease["spec"]["leaseDurationSeconds"], 40);
        assert!(lease["spec"]["renewTime"].is_string());
        let patch = lease_renewal_patch("sim-0", now);
        assert!(patch.get("metadata").is_none());
    }

    #[test]
    fn down_annotation() {
        let mut node = Node::default();
        assert!(!is_down(&node));
        node.metadata.annotations =
            Some([(DOWN_ANNOTATION.to_string(), "true".to_string())].into());
        assert!(is_down(&node));
        node.metadata.annotations =
            Some([(DOWN_ANNOTATION.to_string(), "false".to_string())].into());
        assert!(!is_down(&node));
    }
}
