//! Table printers of the core (`/api/v1`) group's kinds, as upstream's `printers.go` prints them.

use serde_json::{json, Value};

use super::cells::*;
use super::{Column, TablePrinter};

/// The table of `pods`.
pub struct Pod;

impl TablePrinter for Pod {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
            col("Status", "string", "The aggregate status of the containers in this pod."),
            col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
            AGE,
            wide("IP", "string", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
            wide("Node", "string", "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename"),
            wide("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled."),
            wide("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates"),
        ]
    }

    /// A `Completed` condition once the pod succeeded or failed, as upstream attaches it.
    fn conditions(&self, object: &Value) -> Option<Value> {
        let (reason, message) = match st(object, &["status", "phase"]) {
            "Succeeded" => ("Succeeded", "The pod has completed successfully."),
            "Failed" => ("Failed", "The pod failed."),
            _ => return None,
        };
        Some(json!([{
            "type": "Completed",
            "status": "True",
            "reason": reason,
            "message": message,
        }]))
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        pod_row(o, now)
    }
}

/// The table of `podtemplates`.
pub struct PodTemplate;

impl TablePrinter for PodTemplate {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Containers", "string", CONTAINERS_DESC),
            col("Images", "string", IMAGES_DESC),
            col("Pod Labels", "string", "The labels for the pod template."),
        ]
    }

    fn row(&self, o: &Value, _now: i128) -> Vec<Value> {
        let (names, images) = containers_cells(at(o, &["template", "spec", "containers"]));
        vec![
            name(o),
            names.into(),
            images.into(),
            format_labels(at(o, &["template", "metadata", "labels"])).into(),
        ]
    }
}

/// The table of `replicationcontrollers`.
pub struct ReplicationController;

impl TablePrinter for ReplicationController {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Desired", "integer", "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller"),
            col("Current", "integer", "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller"),
            col("Ready", "integer", "The number of ready replicas for this replication controller."),
            AGE,
            wide("Containers", "string", CONTAINERS_DESC),
            wide("Images", "string", IMAGES_DESC),
            wide("Selector", "string", "Selector is a label query over pods that should match the Replicas count. If Selector is empty, it is defaulted to the labels present on the Pod template. Label keys and values that must match in order to be controlled by this replication controller, if empty defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"),
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        let (names, images) = containers_cells(at(o, &["spec", "template", "spec", "containers"]));
        vec![
            name(o),
            opt_int(o, &["spec", "replicas"]).unwrap_or(1).into(),
            int(o, &["status", "replicas"]).into(),
            int(o, &["status", "readyReplicas"]).into(),
            age(o, now),
            names.into(),
            images.into(),
            format_labels(at(o, &["spec", "selector"])).into(),
        ]
    }
}

/// The table of `services`.
pub struct Service;

impl TablePrinter for Service {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Type", "string", "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is \"None\", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. \"NodePort\" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. \"LoadBalancer\" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. \"ExternalName\" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types"),
            col("Cluster-IP", "string", "clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are \"None\", empty string (\"\"), or a valid IP address. Setting this to \"None\" makes a \"headless service\" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies"),
            col("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system."),
            col("Port(s)", "string", "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies"),
            AGE,
            wide("Selector", "string", "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/"),
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        service_row(o, now)
    }
}

/// The table of `endpoints`.
pub struct Endpoints;

impl TablePrinter for Endpoints {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Endpoints", "string", "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share. A single address with multiple ports, some of which are ready and some of which are not (because they come from different containers) will result in the address being displayed in different subsets for the different ports. No address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service."),
            AGE,
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        vec![
            name(o),
            format_endpoints(arr(o, &["subsets"])).into(),
            age(o, now),
        ]
    }
}

/// The table of `nodes`.
pub struct Node;

impl TablePrinter for Node {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Status", "string", "The status of the node"),
            col("Roles", "string", "The roles of the node"),
            AGE,
            col("Version", "string", "Kubelet Version reported by the node."),
            wide("Internal-IP", "string", "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP)."),
            wide("External-IP", "string", "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP)."),
            wide("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
            wide("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
            wide("Container-Runtime", "string", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        node_row(o, now)
    }
}

/// The table of `events`.
pub struct Event;

impl TablePrinter for Event {
    fn columns(&self) -> Vec<Column> {
        event_columns()
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        event_row(o, now, false)
    }
}

/// The table of `namespaces`.
pub struct Namespace;

impl TablePrinter for Namespace {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Status", "string", "The status of the namespace"),
            AGE,
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        // Upstream sets `Active` on create.
        let phase = at(o, &["status", "phase"]).as_str().unwrap_or("Active");
        vec![name(o), phase.into(), age(o, now)]
    }
}

/// The table of `secrets`.
pub struct Secret;

impl TablePrinter for Secret {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Type", "string", "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types"),
            col("Data", "string", "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4"),
            AGE,
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        let ty = at(o, &["type"]).as_str().unwrap_or("Opaque");
        vec![
            name(o),
            ty.into(),
            (map_len(at(o, &["data"])) as i64).into(),
            age(o, now),
        ]
    }
}

/// The table of `serviceaccounts`.
pub struct ServiceAccount;

impl TablePrinter for ServiceAccount {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use. Pods are only limited to this list if this service account has a \"kubernetes.io/enforce-mountable-secrets\" annotation set to \"true\". The \"kubernetes.io/enforce-mountable-secrets\" annotation is deprecated since v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field should not be used to find auto-generated service account token secrets for use outside of pods. Instead, tokens can be requested directly using the TokenRequest API, or service account token secrets can be manually created. More info: https://kubernetes.io/docs/concepts/configuration/secret"),
            AGE,
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        vec![
            name(o),
            (arr(o, &["secrets"]).len() as i64).into(),
            age(o, now),
        ]
    }
}

/// The table of `persistentvolumes`.
pub struct PersistentVolume;

impl TablePrinter for PersistentVolume {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Capacity", "string", "capacity is the description of the persistent volume's resources and capacity. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#capacity"),
            col("Access Modes", "string", "accessModes contains all ways the volume can be mounted. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes"),
            col("Reclaim Policy", "string", "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim. Valid options are Retain (default for manually created PersistentVolumes), Delete (default for dynamically provisioned PersistentVolumes), and Recycle (deprecated). Recycle must be supported by the volume plugin underlying this PersistentVolume. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#reclaiming"),
            col("Status", "string", "phase indicates if a volume is available, bound to a claim, or released by a claim. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#phase"),
            col("Claim", "string", "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim. Expected to be non-nil when bound. claim.VolumeName is the authoritative bind between PV and PVC. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#binding"),
            col("StorageClass", "string", "StorageClass of the pv"),
            col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv"),
            col("Reason", "string", "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI."),
            AGE,
            wide("VolumeMode", "string", "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state. Value of Filesystem is implied when not included in spec."),
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        let claim = at(o, &["spec", "claimRef"]);
        let claim = if claim.is_null() {
            String::new()
        } else {
            format!("{}/{}", st(claim, &["namespace"]), st(claim, &["name"]))
        };
        let phase = if deleting(o) {
            "Terminating"
        } else {
            at(o, &["status", "phase"]).as_str().unwrap_or("Pending")
        };
        let class = match annotation(o, "volume.beta.kubernetes.io/storage-class") {
            Some(c) => c,
            None => st(o, &["spec", "storageClassName"]),
        };
        vec![
            name(o),
            quantity(at(o, &["spec", "capacity", "storage"])).into(),
            access_modes(arr(o, &["spec", "accessModes"])).into(),
            at(o, &["spec", "persistentVolumeReclaimPolicy"])
                .as_str()
                .unwrap_or("Retain")
                .into(),
            phase.into(),
            claim.into(),
            class.into(),
            at(o, &["spec", "volumeAttributesClassName"])
                .as_str()
                .unwrap_or("<unset>")
                .into(),
            st(o, &["status", "reason"]).into(),
            age(o, now),
            at(o, &["spec", "volumeMode"])
                .as_str()
                .unwrap_or("Filesystem")
                .into(),
        ]
    }
}

/// The table of `persistentvolumeclaims`.
pub struct PersistentVolumeClaim;

impl TablePrinter for PersistentVolumeClaim {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Status", "string", "phase represents the current phase of PersistentVolumeClaim."),
            col("Volume", "string", "volumeName is the binding reference to the PersistentVolume backing this claim."),
            col("Capacity", "string", "capacity represents the actual resources of the underlying volume."),
            col("Access Modes", "string", "accessModes contains the actual access modes the volume backing the PVC has. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1"),
            col("StorageClass", "string", "StorageClass of the pvc"),
            col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc"),
            AGE,
            wide("VolumeMode", "string", "volumeMode defines what type of volume is required by the claim. Value of Filesystem is implied when not included in claim spec."),
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        let phase = if deleting(o) {
            "Terminating"
        } else {
            at(o, &["status", "phase"]).as_str().unwrap_or("Pending")
        };
        let volume = st(o, &["spec", "volumeName"]);
        let (capacity, modes) = if volume.is_empty() {
            (String::new(), String::new())
        } else {
            (
                quantity(at(o, &["status", "capacity", "storage"])),
                access_modes(arr(o, &["status", "accessModes"])),
            )
        };
        let class = match annotation(o, "volume.beta.kubernetes.io/storage-class") {
            Some(c) => c,
            None => st(o, &["spec", "storageClassName"]),
        };
        vec![
            name(o),
            phase.into(),
            volume.into(),
            capacity.into(),
            modes.into(),
            class.into(),
            at(o, &["spec", "volumeAttributesClassName"])
                .as_str()
                .unwrap_or("<unset>")
                .into(),
            age(o, now),
            at(o, &["spec", "volumeMode"])
                .as_str()
                .unwrap_or("Filesystem")
                .into(),
        ]
    }
}

/// The table of `componentstatuses`.
pub struct ComponentStatus;

impl TablePrinter for ComponentStatus {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Status", "string", "Status of the component conditions"),
            col("Message", "string", "Message of the component conditions"),
            col("Error", "string", "Error of the component conditions"),
        ]
    }

    fn row(&self, o: &Value, _now: i128) -> Vec<Value> {
        let (mut status, mut message, mut error) = ("Unknown", "", "");
        for c in arr(o, &["conditions"]) {
            if st(c, &["type"]) == "Healthy" {
                status = if st(c, &["status"]) == "True" {
                    "Healthy"
                } else {
                    "Unhealthy"
                };
                message = st(c, &["message"]);
                error = st(c, &["error"]);
                break;
            }
        }
        vec![name(o), status.into(), message.into(), error.into()]
    }
}

/// The table of `configmaps`.
pub struct ConfigMap;

impl TablePrinter for ConfigMap {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Data", "string", "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process."),
            AGE,
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        vec![
            name(o),
            ((map_len(at(o, &["data"])) + map_len(at(o, &["binaryData"]))) as i64).into(),
            age(o, now),
        ]
    }
}

/// The table of `resourcequotas`.
pub struct ResourceQuota;

impl TablePrinter for ResourceQuota {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Request", "string", "Request represents a minimum amount of cpu/memory that a container may consume."),
            col("Limit", "string", "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."),
            AGE,
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        let hard = at(o, &["status", "hard"]);
        let mut keys: Vec<&String> = match hard.as_object() {
            Some(m) => m.keys().collect(),
            None => vec![],
        };
        keys.sort();
        let (mut req, mut lim) = (String::new(), String::new());
        for k in keys {
            let used = quantity(at(o, &["status", "used", k]));
            let h = quantity(at(hard, &[k]));
            let w = match k.split_once('.') {
                Some(("limits", _)) => &mut lim,
                _ => &mut req,
            };
            w.push_str(&format!("{k}: {used}/{h}, "));
        }
        vec![
            name(o),
            req.trim_end_matches_once(", ").into(),
            lim.trim_end_matches_once(", ").into(),
            age(o, now),
        ]
    }
}

pub(super) fn pod_row(pod: &Value, now: i128) -> Vec<Value> {
    let spec = at(pod, &["spec"]);
    let status = at(pod, &["status"]);
    let init_specs = arr(spec, &["initContainers"]);
    let mut restarts: i64 = 0;
    let mut restartable_init_restarts: i64 = 0;
    let mut total = arr(spec, &["containers"]).len();
    let mut ready = 0usize;
    let mut last_restart = ZERO_TIME;
    let mut last_restartable_init_restart = ZERO_TIME;

    // Upstream sets phase Pending on create.
    let phase = at(status, &["phase"]).as_str().unwrap_or("Pending");
    let mut reason = non_empty_or(st(status, &["reason"]), phase).to_string();

    for c in arr(status, &["conditions"]) {
        if st(c, &["type"]) == "PodScheduled" && st(c, &["reason"]) == "SchedulingGated" {
            reason = "SchedulingGated".to_string();
        }
    }

    let restartable = |name: &str| {
        init_specs
            .iter()
            .find(|c| st(c, &["name"]) == name)
            .is_some_and(|c| st(c, &["restartPolicy"]) == "Always")
    };
    for c in init_specs {
        if st(c, &["restartPolicy"]) == "Always" {
            total += 1;
        }
    }

    let finished = |cs: &Value| -> Option<i128> {
        let t = at(cs, &["lastState", "terminated"]);
        if t.is_null() {
            None
        } else {
            Some(parse_rfc3339(st(t, &["finishedAt"])).unwrap_or(ZERO_TIME))
        }
    };

    let mut initializing = false;
    for (i, cs) in arr(status, &["initContainerStatuses"]).iter().enumerate() {
        let rc = int(cs, &["restartCount"]);
        restarts += rc;
        if let Some(t) = finished(cs) {
            if last_restart < t {
                last_restart = t;
            }
        }
        let is_restartable = restartable(st(cs, &["name"]));
        if is_restartable {
            restartable_init_restarts += rc;
            if let Some(t) = finished(cs) {
                if last_restartable_init_restart < t {
                    last_restartable_init_restart = t;
                }
            }
        }
        let terminated = at(cs, &["state", "terminated"]);
        let waiting = at(cs, &["state", "waiting"]);
        if !terminated.is_null() && int(terminated, &["exitCode"]) == 0 {
            continue;
        } else if is_restartable && at(cs, &["started"]).as_bool() == Some(true) {
            if at(cs, &["ready"]).as_bool() == Some(true) {
                ready += 1;
            }
            continue;
        } else if !terminated.is_null() {
            let r = st(terminated, &["reason"]);
            reason = if r.is_empty() {
                let signal = int(terminated, &["signal"]);
                if signal != 0 {
                    format!("Init:Signal:{signal}")
                } else {
                    format!("Init:ExitCode:{}", int(terminated, &["exitCode"]))
                }
            } else {
                format!("Init:{r}")
            };
            initializing = true;
        } else if !waiting.is_null()
            && !st(waiting, &["reason"]).is_empty()
            && st(waiting, &["reason"]) != "PodInitializing"
        {
            reason = format!("Init:{}", st(waiting, &["reason"]));
            initializing = true;
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
            initializing = true;
        }
        break;
    }

    let initialized_true = arr(status, &["conditions"])
        .iter()
        .find(|c| st(c, &["type"]) == "Initialized")
        .is_some_and(|c| st(c, &["status"]) == "True");

    if !initializing || initialized_true {
        restarts = restartable_init_restarts;
        last_restart = last_restartable_init_restart;
        let mut has_running = false;
        for cs in arr(status, &["containerStatuses"]).iter().rev() {
            restarts += int(cs, &["restartCount"]);
            if let Some(t) = finished(cs) {
                if last_restart < t {
                    last_restart = t;
                }
            }
            let waiting = at(cs, &["state", "waiting"]);
            let terminated = at(cs, &["state", "terminated"]);
            if !waiting.is_null() && !st(waiting, &["reason"]).is_empty() {
                reason = st(waiting, &["reason"]).to_string();
            } else if !terminated.is_null() && !st(terminated, &["reason"]).is_empty() {
                reason = st(terminated, &["reason"]).to_string();
            } else if !terminated.is_null() {
                let signal = int(terminated, &["signal"]);
                reason = if signal != 0 {
                    format!("Signal:{signal}")
                } else {
                    format!("ExitCode:{}", int(terminated, &["exitCode"]))
                };
            } else if at(cs, &["ready"]).as_bool() == Some(true)
                && !at(cs, &["state", "running"]).is_null()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = arr(status, &["conditions"])
                .iter()
                .any(|c| st(c, &["type"]) == "Ready" && st(c, &["status"]) == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.to_string();
        }
    }

    if deleting(pod) && st(status, &["reason"]) == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting(pod) && phase != "Failed" && phase != "Succeeded" {
        reason = "Terminating".to_string();
    }

    let restarts_str = if restarts != 0 && last_restart != ZERO_TIME {
        format!(
            "{restarts} ({} ago)",
            human_duration_nanos(now - last_restart)
        )
    } else {
        restarts.to_string()
    };

    let mut pod_ip = match arr(status, &["podIPs"]).first() {
        Some(ip) => st(ip, &["ip"]),
        // Upstream's conversion fills podIPs from podIP.
        None => st(status, &["podIP"]),
    };
    if pod_ip.is_empty() {
        pod_ip = "<none>";
    }
    let node_name = non_empty_or(st(spec, &["nodeName"]), "<none>");
    let nominated = non_empty_or(st(status, &["nominatedNodeName"]), "<none>");
    let gates = arr(spec, &["readinessGates"]);
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let true_conditions = gates
            .iter()
            .filter(|g| {
                let ty = st(g, &["conditionType"]);
                arr(status, &["conditions"])
                    .iter()
                    .find(|c| st(c, &["type"]) == ty)
                    .is_some_and(|c| st(c, &["status"]) == "True")
            })
            .count();
        format!("{true_conditions}/{}", gates.len())
    };

    vec![
        name(pod),
        format!("{ready}/{total}").into(),
        reason.into(),
        restarts_str.into(),
        age(pod, now),
        pod_ip.into(),
        node_name.into(),
        nominated.into(),
        readiness_gates.into(),
    ]
}

pub(super) fn service_row(o: &Value, now: i128) -> Vec<Value> {
    let spec = at(o, &["spec"]);
    // Upstream defaults the type to ClusterIP.
    let ty = at(spec, &["type"]).as_str().unwrap_or("ClusterIP");
    let cluster_ip = match arr(spec, &["clusterIPs"]).first().and_then(Value::as_str) {
        Some(ip) => ip,
        None => st(spec, &["clusterIP"]),
    };
    let cluster_ip = non_empty_or(cluster_ip, "<none>");
    let external_ips: Vec<&str> = arr(spec, &["externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let external = match ty {
        "ClusterIP" | "NodePort" => {
            if external_ips.is_empty() {
                "<none>".to_string()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            let lb = load_balancer_status(arr(o, &["status", "loadBalancer", "ingress"]));
            if !external_ips.is_empty() {
                let mut results: Vec<&str> = vec![];
                if !lb.is_empty() {
                    results.extend(lb.split(','));
                }
                results.extend(external_ips.iter());
                results.join(",")
            } else if !lb.is_empty() {
                lb
            } else {
                "<pending>".to_string()
            }
        }
        "ExternalName" => st(spec, &["externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    };
    let ports: Vec<String> = arr(spec, &["ports"])
        .iter()
        .map(|p| {
            let port = int(p, &["port"]);
            let proto = at(p, &["protocol"]).as_str().unwrap_or("TCP");
            let node_port = int(p, &["nodePort"]);
            if node_port > 0 {
                format!("{port}:{node_port}/{proto}")
            } else {
                format!("{port}/{proto}")
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    };
    vec![
        name(o),
        ty.into(),
        cluster_ip.into(),
        external.into(),
        ports.into(),
        age(o, now),
        format_labels(at(spec, &["selector"])).into(),
    ]
}

pub(super) fn node_row(o: &Value, now: i128) -> Vec<Value> {
    // The last Ready condition wins (upstream builds a map by type).
    let mut ready: Option<&str> = None;
    for c in arr(o, &["status", "conditions"]) {
        if st(c, &["type"]) == "Ready" {
            ready = Some(st(c, &["status"]));
        }
    }
    let mut status = vec![match ready {
        Some("True") => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if at(o, &["spec", "unschedulable"]).as_bool() == Some(true) {
        status.push("SchedulingDisabled");
    }
    let mut roles: Vec<&str> = vec![];
    if let Some(labels) = at(o, &["metadata", "labels"]).as_object() {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.push(role);
                }
            } else if k == "kubernetes.io/role" {
                if let Some(v) = v.as_str().filter(|v| !v.is_empty()) {
                    roles.push(v);
                }
            }
        }
    }
    roles.sort_unstable();
    roles.dedup();
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.join(",")
    };
    let address = |ty: &str| {
        arr(o, &["status", "addresses"])
            .iter()
            .find(|a| st(a, &["type"]) == ty)
            .map(|a| st(a, &["address"]))
            .unwrap_or("<none>")
    };
    let info = at(o, &["status", "nodeInfo"]);
    vec![
        name(o),
        status.join(",").into(),
        roles.into(),
        age(o, now),
        st(info, &["kubeletVersion"]).into(),
        address("InternalIP").into(),
        address("ExternalIP").into(),
        non_empty_or(st(info, &["osImage"]), "<unknown>").into(),
        non_empty_or(st(info, &["kernelVersion"]), "<unknown>").into(),
        non_empty_or(st(info, &["containerRuntimeVersion"]), "<unknown>").into(),
    ]
}

/// Core `v1` events, or (`events_v1`) `events.k8s.io/v1` events, which
/// upstream prints through the same internal type.
pub(super) fn event_row(o: &Value, now: i128, events_v1: bool) -> Vec<Value> {
    let (first_f, last_f, count_f, regarding_f, source_f, message_f, controller_f) = if events_v1 {
        (
            "deprecatedFirstTimestamp",
            "deprecatedLastTimestamp",
            "deprecatedCount",
            "regarding",
            "deprecatedSource",
            "note",
            "reportingController",
        )
    } else {
        (
            "firstTimestamp",
            "lastTimestamp",
            "count",
            "involvedObject",
            "source",
            "message",
            "reportingComponent",
        )
    };
    let first_ts = parse_ts(at(o, &[first_f]));
    let mut first = translate_since(first_ts, now);
    if first_ts == ZERO_TIME {
        first = translate_since(parse_ts(at(o, &["eventTime"])), now);
    }
    let last_ts = parse_ts(at(o, &[last_f]));
    let mut last = translate_since(last_ts, now);
    if last_ts == ZERO_TIME {
        last = first.clone();
    }
    let mut count = int(o, &[count_f]);
    let series = at(o, &["series"]);
    if !series.is_null() {
        last = translate_since(parse_ts(at(series, &["lastObservedTime"])), now);
        count = int(series, &["count"]);
    } else if count == 0 {
        count = 1;
    }
    let involved = at(o, &[regarding_f]);
    let kind = st(involved, &["kind"]).to_lowercase();
    let target = if st(involved, &["name"]).is_empty() {
        kind
    } else {
        format!("{kind}/{}", st(involved, &["name"]))
    };
    let component = non_empty_or(st(o, &[source_f, "component"]), st(o, &[controller_f]));
    let instance = non_empty_or(st(o, &[source_f, "host"]), st(o, &["reportingInstance"]));
    let source = if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    };
    vec![
        last.into(),
        st(o, &["type"]).into(),
        st(o, &["reason"]).into(),
        target.into(),
        st(involved, &["fieldPath"]).into(),
        source.into(),
        st(o, &[message_f]).trim().into(),
        first.into(),
        count.into(),
        name(o),
    ]
}

/// The columns of both Event APIs (core/v1 and events.k8s.io/v1 print alike).
pub(super) fn event_columns() -> Vec<Column> {
    vec![
        col("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
        col("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
        col("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
        col("Object", "string", "The object that this event is about."),
        wide("Subobject", "string", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object."),
        wide("Source", "string", "The component reporting this event. Should be a short machine understandable string."),
        col("Message", "string", "A human-readable description of the status of this operation."),
        wide("First Seen", "string", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"),
        wide("Count", "string", "The number of times this event has occurred."),
        Column { priority: 1, ..NAME },
    ]
}
