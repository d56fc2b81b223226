//! Server-side printing: the `meta.k8s.io/v1` `Table` that upstream
//! kube-apiserver returns for
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` (what `kubectl get`
//! asks for).
//!
//! The column definitions and the cell values follow upstream's
//! `pkg/printers/internalversion/printers.go` (v1.33) and, for resources
//! without a printer there (roles, limit ranges, CRDs, ...), the default table
//! convertor of `k8s.io/apiserver/pkg/registry/rest/table.go` (`Name`,
//! `Created At`).
//!
//! Upstream always generates the table with `Wide: true`, so every row holds
//! a cell for every column, including the priority 1 (`-o wide`) ones;
//! kubectl hides those unless asked for `-o wide`.
//!
//! Objects are taken as versioned JSON (what is stored). Upstream prints the
//! internal, defaulted form of the object; where upstream's defaulting always
//! fills a field (for example a Deployment's `spec.replicas`, a Service's
//! `spec.type`, a port's `protocol`, a Secret's `type`) the printers here
//! apply the same default, so a not-yet-defaulted object prints as upstream
//! would print it. Quantities are printed as stored (upstream prints the
//! canonical form, which is what a server that canonicalizes stores).
//!
//! Times are computed against the caller's `now_unix_secs`, and ages use
//! upstream's `duration.HumanDuration` ([`human_duration`]).

use serde_json::{json, Map, Value};

/// A column of a table: upstream's `metav1.TableColumnDefinition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Human-readable name, e.g. `"Name"`, `"Ready"` (kubectl upper-cases it).
    pub name: &'static str,
    /// OpenAPI type of the cells: `"string"`, `"integer"`, `"number"`,
    /// `"boolean"` or `"date"`.
    pub type_: &'static str,
    /// OpenAPI format: `"name"` for the column naming the object, `""`
    /// otherwise.
    pub format: &'static str,
    /// Description of the column (upstream's field documentation).
    pub description: &'static str,
    /// `0` for normal columns, `1` for columns shown only by `-o wide`.
    pub priority: i32,
}

impl Column {
    /// The column as a `columnDefinitions` entry of a `Table`.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.type_,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

// ---------------------------------------------------------------------------
// Column definitions
// ---------------------------------------------------------------------------

const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const CONTAINERS_DESC: &str = "Names of each container in the template.";
const IMAGES_DESC: &str = "Images referenced by each container in the template.";
const SELECTOR_DESC: &str = "Label query over pods that should match the replica count. Label keys and values that must match in order to be controlled by this replica set. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";

/// The `Name` column (format `name`).
const NAME: Column = Column {
    name: "Name",
    type_: "string",
    format: "name",
    description: NAME_DESC,
    priority: 0,
};

/// The `Age` column.
const AGE: Column = col("Age", "string", AGE_DESC);

const fn col(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority: 0,
    }
}

const fn wide(name: &'static str, type_: &'static str, description: &'static str) -> Column {
    Column {
        name,
        type_,
        format: "",
        description,
        priority: 1,
    }
}

/// Which printer handles a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Printer {
    Pod,
    PodTemplate,
    PodDisruptionBudget,
    ReplicationController,
    ReplicaSet,
    DaemonSet,
    Job,
    CronJob,
    Service,
    Ingress,
    IngressClass,
    StatefulSet,
    Endpoints,
    Node,
    Event,
    EventsV1,
    Namespace,
    Secret,
    ServiceAccount,
    PersistentVolume,
    PersistentVolumeClaim,
    ComponentStatus,
    Deployment,
    HorizontalPodAutoscaler,
    ConfigMap,
    NetworkPolicy,
    RoleBinding,
    ClusterRoleBinding,
    CertificateSigningRequest,
    Lease,
    StorageClass,
    ControllerRevision,
    ResourceQuota,
    PriorityClass,
    RuntimeClass,
    IpAddress,
    ServiceCidr,
    VolumeAttachment,
    EndpointSlice,
    CsiNode,
    CsiDriver,
    CsiStorageCapacity,
    MutatingWebhook,
    ValidatingWebhook,
    ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding,
    Default,
}

fn printer(group: &str, plural: &str) -> Printer {
    use Printer::*;
    match (group, plural) {
        ("", "pods") => Pod,
        ("", "podtemplates") => PodTemplate,
        ("policy", "poddisruptionbudgets") => PodDisruptionBudget,
        ("", "replicationcontrollers") => ReplicationController,
        ("apps", "replicasets") => ReplicaSet,
        ("apps", "daemonsets") => DaemonSet,
        ("batch", "jobs") => Job,
        ("batch", "cronjobs") => CronJob,
        ("", "services") => Service,
        ("networking.k8s.io", "ingresses") => Ingress,
        ("networking.k8s.io", "ingressclasses") => IngressClass,
        ("apps", "statefulsets") => StatefulSet,
        ("", "endpoints") => Endpoints,
        ("", "nodes") => Node,
        ("", "events") => Event,
        ("events.k8s.io", "events") => EventsV1,
        ("", "namespaces") => Namespace,
        ("", "secrets") => Secret,
        ("", "serviceaccounts") => ServiceAccount,
        ("", "persistentvolumes") => PersistentVolume,
        ("", "persistentvolumeclaims") => PersistentVolumeClaim,
        ("", "componentstatuses") => ComponentStatus,
        ("apps", "deployments") => Deployment,
        ("autoscaling", "horizontalpodautoscalers") => HorizontalPodAutoscaler,
        ("", "configmaps") => ConfigMap,
        ("networking.k8s.io", "networkpolicies") => NetworkPolicy,
        ("rbac.authorization.k8s.io", "rolebindings") => RoleBinding,
        ("rbac.authorization.k8s.io", "clusterrolebindings") => ClusterRoleBinding,
        ("certificates.k8s.io", "certificatesigningrequests") => CertificateSigningRequest,
        ("coordination.k8s.io", "leases") => Lease,
        ("storage.k8s.io", "storageclasses") => StorageClass,
        ("apps", "controllerrevisions") => ControllerRevision,
        ("", "resourcequotas") => ResourceQuota,
        ("scheduling.k8s.io", "priorityclasses") => PriorityClass,
        ("node.k8s.io", "runtimeclasses") => RuntimeClass,
        ("networking.k8s.io", "ipaddresses") => IpAddress,
        ("networking.k8s.io", "servicecidrs") => ServiceCidr,
        ("storage.k8s.io", "volumeattachments") => VolumeAttachment,
        ("discovery.k8s.io", "endpointslices") => EndpointSlice,
        ("storage.k8s.io", "csinodes") => CsiNode,
        ("storage.k8s.io", "csidrivers") => CsiDriver,
        ("storage.k8s.io", "csistoragecapacities") => CsiStorageCapacity,
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations") => MutatingWebhook,
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations") => ValidatingWebhook,
        ("admissionregistration.k8s.io", "validatingadmissionpolicies") => {
            ValidatingAdmissionPolicy
        }
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings") => {
            ValidatingAdmissionPolicyBinding
        }
        _ => Default,
    }
}

/// The column definitions upstream returns for `group`/`plural` (`""` is
/// the core group), in order, including the priority 1 (`-o wide`) ones.
/// Resources without a dedicated printer get the default `Name`,
/// `Created At` columns.
pub fn columns(group: &str, plural: &str) -> Vec<Column> {
    use Printer as P;
    match printer(group, plural) {
        P::Pod => vec![
            NAME,
            col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
            col("Status", "string", "The aggregate status of the containers in this pod."),
            col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
            AGE,
            wide("IP", "string", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
            wide("Node", "string", "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename"),
            wide("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled."),
            wide("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates"),
        ],
        P::PodTemplate => vec![
            NAME,
            col("Containers", "string", CONTAINERS_DESC),
            col("Images", "string", IMAGES_DESC),
            col("Pod Labels", "string", "The labels for the pod template."),
        ],
        P::PodDisruptionBudget => vec![
            NAME,
            col("Min Available", "string", "The minimum number of pods that must be available."),
            col("Max Unavailable", "string", "The maximum number of pods that may be unavailable."),
            col("Allowed Disruptions", "integer", "Calculated number of pods that may be disrupted at this time."),
            AGE,
        ],
        P::ReplicationController => vec![
            NAME,
            col("Desired", "integer", "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller"),
            col("Current", "integer", "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-replicationcontroller"),
            col("Ready", "integer", "The number of ready replicas for this replication controller."),
            AGE,
            wide("Containers", "string", CONTAINERS_DESC),
            wide("Images", "string", IMAGES_DESC),
            wide("Selector", "string", "Selector is a label query over pods that should match the Replicas count. If Selector is empty, it is defaulted to the labels present on the Pod template. Label keys and values that must match in order to be controlled by this replication controller, if empty defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"),
        ],
        P::ReplicaSet => vec![
            NAME,
            col("Desired", "integer", "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller"),
            col("Current", "integer", "Replicas is the most recently observed number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller"),
            col("Ready", "integer", "The number of ready replicas for this replica set."),
            AGE,
            wide("Containers", "string", CONTAINERS_DESC),
            wide("Images", "string", IMAGES_DESC),
            wide("Selector", "string", SELECTOR_DESC),
        ],
        P::DaemonSet => vec![
            NAME,
            col("Desired", "integer", "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/"),
            col("Current", "integer", "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/"),
            col("Ready", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready."),
            col("Up-to-date", "integer", "The total number of nodes that are running updated daemon pod"),
            col("Available", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)"),
            col("Node Selector", "string", "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/"),
            AGE,
            wide("Containers", "string", CONTAINERS_DESC),
            wide("Images", "string", IMAGES_DESC),
            wide("Selector", "string", "A label query over pods that are managed by the daemon set. Must match in order to be controlled. If empty, defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"),
        ],
        P::Job => vec![
            NAME,
            col("Status", "string", "Status of the job."),
            col("Completions", "string", "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs."),
            col("Duration", "string", "Time required to complete the job."),
            AGE,
            wide("Containers", "string", CONTAINERS_DESC),
            wide("Images", "string", IMAGES_DESC),
            wide("Selector", "string", "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"),
        ],
        P::CronJob => vec![
            NAME,
            col("Schedule", "string", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
            col("Timezone", "string", "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process. The set of valid time zone names and the time zone offset is loaded from the system-wide time zone database by the API server during CronJob validation and the controller manager during execution. If no system-wide time zone database can be found a bundled version of the database is used instead. If the time zone name becomes invalid during the lifetime of a CronJob or due to a change in host configuration, the controller will stop creating new new Jobs and will create a system event with the reason UnknownTimeZone. More information can be found in https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones"),
            col("Suspend", "boolean", "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false."),
            col("Active", "integer", "A list of pointers to currently running jobs."),
            col("Last Schedule", "string", "Information when was the last time the job was successfully scheduled."),
            AGE,
            wide("Containers", "string", CONTAINERS_DESC),
            wide("Images", "string", IMAGES_DESC),
            wide("Selector", "string", "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"),
        ],
        P::Service => vec![
            NAME,
            col("Type", "string", "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is \"None\", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. \"NodePort\" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. \"LoadBalancer\" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. \"ExternalName\" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types"),
            col("Cluster-IP", "string", "clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are \"None\", empty string (\"\"), or a valid IP address. Setting this to \"None\" makes a \"headless service\" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies"),
            col("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system."),
            col("Port(s)", "string", "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies"),
            AGE,
            wide("Selector", "string", "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/"),
        ],
        P::Ingress => vec![
            NAME,
            col("Class", "string", "The name of the IngressClass resource that should be used for additional configuration"),
            col("Hosts", "string", "Hosts that incoming requests are matched against before the ingress rule"),
            col("Address", "string", "Address is a list containing ingress points for the load-balancer"),
            col("Ports", "string", "Ports of TLS configurations that open"),
            AGE,
        ],
        P::IngressClass => vec![
            NAME,
            col("Controller", "string", "Controller that is responsible for handling this class"),
            col("Parameters", "string", "A reference to a resource with additional parameters"),
            AGE,
        ],
        P::StatefulSet => vec![
            NAME,
            col("Ready", "string", "Number of the pod with ready state"),
            AGE,
            wide("Containers", "string", CONTAINERS_DESC),
            wide("Images", "string", IMAGES_DESC),
        ],
        P::Endpoints => vec![
            NAME,
            col("Endpoints", "string", "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share. A single address with multiple ports, some of which are ready and some of which are not (because they come from different containers) will result in the address being displayed in different subsets for the different ports. No address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service."),
            AGE,
        ],
        P::Node => vec![
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
        ],
        P::Event | P::EventsV1 => vec![
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
        ],
        P::Namespace => vec![
            NAME,
            col("Status", "string", "The status of the namespace"),
            AGE,
        ],
        P::Secret => vec![
            NAME,
            col("Type", "string", "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types"),
            col("Data", "string", "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4"),
            AGE,
        ],
        P::ServiceAccount => vec![
            NAME,
            col("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use. Pods are only limited to this list if this service account has a \"kubernetes.io/enforce-mountable-secrets\" annotation set to \"true\". The \"kubernetes.io/enforce-mountable-secrets\" annotation is deprecated since v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field should not be used to find auto-generated service account token secrets for use outside of pods. Instead, tokens can be requested directly using the TokenRequest API, or service account token secrets can be manually created. More info: https://kubernetes.io/docs/concepts/configuration/secret"),
            AGE,
        ],
        P::PersistentVolume => vec![
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
        ],
        P::PersistentVolumeClaim => vec![
            NAME,
            col("Status", "string", "phase represents the current phase of PersistentVolumeClaim."),
            col("Volume", "string", "volumeName is the binding reference to the PersistentVolume backing this claim."),
            col("Capacity", "string", "capacity represents the actual resources of the underlying volume."),
            col("Access Modes", "string", "accessModes contains the actual access modes the volume backing the PVC has. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1"),
            col("StorageClass", "string", "StorageClass of the pvc"),
            col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc"),
            AGE,
            wide("VolumeMode", "string", "volumeMode defines what type of volume is required by the claim. Value of Filesystem is implied when not included in claim spec."),
        ],
        P::ComponentStatus => vec![
            NAME,
            col("Status", "string", "Status of the component conditions"),
            col("Message", "string", "Message of the component conditions"),
            col("Error", "string", "Error of the component conditions"),
        ],
        P::Deployment => vec![
            NAME,
            col("Ready", "string", "Number of the pod with ready state"),
            col("Up-to-date", "string", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
            col("Available", "string", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
            AGE,
            wide("Containers", "string", CONTAINERS_DESC),
            wide("Images", "string", IMAGES_DESC),
            wide("Selector", "string", "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."),
        ],
        P::HorizontalPodAutoscaler => vec![
            NAME,
            col("Reference", "string", "scaleTargetRef points to the target resource to scale, and is used to the pods for which metrics should be collected, as well as to actually change the replica count."),
            col("Targets", "string", "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used).  The desired replica count is calculated multiplying the ratio between the target value and the current value by the current number of pods.  Ergo, metrics used must decrease as the pod count is increased, and vice-versa.  See the individual metric source types for more information about how each type of metric must respond."),
            col("MinPods", "string", "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down. It defaults to 1 pod.  minReplicas is allowed to be 0 if the alpha feature gate HPAScaleToZero is enabled and at least one Object or External metric is configured.  Scaling is active as long as at least one metric value is available."),
            col("MaxPods", "string", "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up. It cannot be less that minReplicas."),
            col("Replicas", "string", "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler."),
            AGE,
        ],
        P::ConfigMap => vec![
            NAME,
            col("Data", "string", "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process."),
            AGE,
        ],
        P::NetworkPolicy => vec![
            NAME,
            col("Pod-Selector", "string", "Selects the pods to which this NetworkPolicy object applies. The array of ingress rules is applied to any pods selected by this field. Multiple network policies can select the same set of pods. In this case, the ingress rules for each are combined additively. This field is NOT optional and follows standard label selector semantics. An empty podSelector matches all pods in this namespace."),
            AGE,
        ],
        P::RoleBinding => vec![
            NAME,
            col("Role", "string", "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable."),
            AGE,
            wide("Users", "string", "Users in the roleBinding"),
            wide("Groups", "string", "Groups in the roleBinding"),
            wide("ServiceAccounts", "string", "ServiceAccounts in the roleBinding"),
        ],
        P::ClusterRoleBinding => vec![
            NAME,
            col("Role", "string", "RoleRef can only reference a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable."),
            AGE,
            wide("Users", "string", "Users in the clusterRoleBinding"),
            wide("Groups", "string", "Groups in the clusterRoleBinding"),
            wide("ServiceAccounts", "string", "ServiceAccounts in the clusterRoleBinding"),
        ],
        P::CertificateSigningRequest => vec![
            NAME,
            AGE,
            col("SignerName", "string", "Requested signer for the request. It is a qualified name in the form: `scope-hostname.io/name`. If empty, it will be defaulted:\n 1. If it's a kubelet client certificate, it is assigned\n    \"kubernetes.io/kube-apiserver-client-kubelet\".\n 2. If it's a kubelet serving certificate, it is assigned\n    \"kubernetes.io/kubelet-serving\".\n 3. Otherwise, it is assigned \"kubernetes.io/legacy-unknown\".\nDistribution of trust for signers happens out of band. You can select on this field using `spec.signerName`."),
            col("Requestor", "string", "Base64-encoded PKCS#10 CSR data"),
            col("RequestedDuration", "string", "expirationSeconds is the requested duration of validity of the issued certificate. The certificate signer may issue a certificate with a different validity duration so a client must check the delta between the notBefore and and notAfter fields in the issued certificate to determine the actual duration."),
            col("Condition", "string", "Conditions applied to the request, such as approval or denial."),
        ],
        P::Lease => vec![
            NAME,
            col("Holder", "string", "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field."),
            AGE,
        ],
        P::StorageClass => vec![
            NAME,
            col("Provisioner", "string", "provisioner indicates the type of the provisioner."),
            col("ReclaimPolicy", "string", "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class. Defaults to Delete."),
            col("VolumeBindingMode", "string", "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.  When unset, VolumeBindingImmediate is used. This field is only honored by servers that enable the VolumeScheduling feature."),
            col("AllowVolumeExpansion", "string", "allowVolumeExpansion shows whether the storage class allow volume expand."),
            AGE,
        ],
        P::ControllerRevision => vec![
            NAME,
            col("Controller", "string", "Controller of the object"),
            col("Revision", "string", "Revision indicates the revision of the state represented by Data."),
            AGE,
        ],
        P::ResourceQuota => vec![
            NAME,
            col("Request", "string", "Request represents a minimum amount of cpu/memory that a container may consume."),
            col("Limit", "string", "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."),
            AGE,
        ],
        P::PriorityClass => vec![
            NAME,
            col("Value", "integer", "value represents the integer value of this priority class. This is the actual priority that pods receive when they have the name of this class in their pod spec."),
            col("Global-Default", "boolean", "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class. Only one PriorityClass can be marked as `globalDefault`. However, if more than one PriorityClasses exists with their `globalDefault` field set to true, the smallest value of such global default PriorityClasses will be used as the default priority."),
            AGE,
            col("PreemptionPolicy", "string", "preemptionPolicy is the Policy for preempting pods with lower priority. One of Never, PreemptLowerPriority. Defaults to PreemptLowerPriority if unset."),
        ],
        P::RuntimeClass => vec![
            NAME,
            col("Handler", "string", ""),
            AGE,
        ],
        P::IpAddress => vec![
            NAME,
            col("ParentRef", "string", "ParentRef references the resource that an IPAddress is attached to. An IPAddress must reference a parent object."),
        ],
        P::ServiceCidr => vec![
            NAME,
            col("CIDRs", "string", "CIDRs defines the IP blocks in CIDR notation (e.g. \"192.168.0.0/24\" or \"2001:db8::/64\") from which to assign service cluster IPs. Max of two CIDRs is allowed, one of each IP family. This field is immutable."),
            AGE,
        ],
        P::VolumeAttachment => vec![
            NAME,
            Column {
                name: "Attacher",
                type_: "string",
                format: "name",
                description: "attacher indicates the name of the volume driver that MUST handle this request. This is the name returned by GetPluginName().",
                priority: 0,
            },
            col("PV", "string", "persistentVolumeName represents the name of the persistent volume to attach."),
            col("Node", "string", "nodeName represents the node that the volume should be attached to."),
            col("Attached", "boolean", "attached indicates the volume is successfully attached. This field must only be set by the entity completing the attach operation, i.e. the external-attacher."),
            AGE,
        ],
        P::EndpointSlice => vec![
            NAME,
            col("AddressType", "string", "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation. The following address types are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. * FQDN: Represents a Fully Qualified Domain Name."),
            col("Ports", "string", "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must have a unique name. When ports is empty, it indicates that there are no defined ports. When a port is defined with a nil port value, it indicates \"all ports\". Each slice may include a maximum of 100 ports."),
            col("Endpoints", "string", "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints."),
            AGE,
        ],
        P::CsiNode => vec![
            NAME,
            col("Drivers", "integer", "Drivers indicates the number of CSI drivers registered on the node"),
            AGE,
        ],
        P::CsiDriver => vec![
            NAME,
            col("AttachRequired", "boolean", "attachRequired indicates this CSI volume driver requires an attach operation (because it implements the CSI ControllerPublishVolume() method), and that the Kubernetes attach detach controller should call the attach volume interface which checks the volumeattachment status and waits until the volume is attached before proceeding to mounting. The CSI external-attacher coordinates with CSI volume driver and updates the volumeattachment status when the attach operation is complete. If the value is specified to false, the attach operation will be skipped. Otherwise the attach operation will be called.\n\nThis field is immutable."),
            col("PodInfoOnMount", "boolean", "podInfoOnMount indicates this CSI volume driver requires additional pod information (like podName, podUID, etc.) during mount operations, if set to true. If set to false, pod information will not be passed on mount. Default is false."),
            col("StorageCapacity", "boolean", "storageCapacity indicates that the CSI volume driver wants pod scheduling to consider the storage capacity that the driver deployment will report by creating CSIStorageCapacity objects with capacity information, if set to true."),
            col("TokenRequests", "string", "tokenRequests indicates the CSI driver needs pods' service account tokens it is mounting volume for to do necessary authentication. Kubelet will pass the tokens in VolumeContext in the CSI NodePublishVolume calls. The CSI driver should parse and validate the following VolumeContext."),
            col("RequiresRepublish", "boolean", "requiresRepublish indicates the CSI driver wants `NodePublishVolume` being periodically called to reflect any possible change in the mounted volume. This field defaults to false."),
            col("Modes", "string", "volumeLifecycleModes defines what kind of volumes this CSI volume driver supports. The default if the list is empty is \"Persistent\", which is the usage defined by the CSI specification and implemented in Kubernetes via the usual PV/PVC mechanism."),
            AGE,
        ],
        P::CsiStorageCapacity => vec![
            NAME,
            col("StorageClassName", "string", "storageClassName represents the name of the StorageClass that the reported capacity applies to. It must meet the same requirements as the name of a StorageClass object (non-empty, DNS subdomain). If that object no longer exists, the CSIStorageCapacity object is obsolete and should be removed by its creator. This field is immutable."),
            col("Capacity", "string", "capacity is the value reported by the CSI driver in its GetCapacityResponse for a GetCapacityRequest with topology and parameters that match the previous fields."),
        ],
        P::MutatingWebhook | P::ValidatingWebhook => vec![
            NAME,
            col("Webhooks", "integer", "Webhooks indicates the number of webhooks registered in this configuration"),
            AGE,
        ],
        P::ValidatingAdmissionPolicy => vec![
            NAME,
            col("Validations", "integer", "Validations indicates the number of validation rules defined in this configuration"),
            col("ParamKind", "string", "ParamKind specifies the kind of resources used to parameterize this policy"),
            AGE,
        ],
        P::ValidatingAdmissionPolicyBinding => vec![
            NAME,
            col("PolicyName", "string", "PolicyName indicates the policy definition which the policy binding binded to"),
            col("ParamRef", "string", "ParamRef indicates the param resource which sets the configration param"),
            AGE,
        ],
        P::Default => vec![NAME, col("Created At", "date", AGE_DESC)],
    }
}

// ---------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------

/// The cells of `object`'s row, one per column of [`columns`] (same order),
/// as upstream's printer (run with `Wide: true`, as the API server does)
/// produces them. Integer cells are JSON numbers, boolean cells JSON
/// booleans, everything else strings.
pub fn row(group: &str, plural: &str, object: &Value, now_unix_secs: i64) -> Vec<Value> {
    let now = now_unix_secs as i128 * NANOS;
    let o = object;
    use Printer as P;
    match printer(group, plural) {
        P::Pod => pod_row(o, now),
        P::PodTemplate => {
            let (names, images) = containers_cells(at(o, &["template", "spec", "containers"]));
            vec![
                name(o),
                names.into(),
                images.into(),
                format_labels(at(o, &["template", "metadata", "labels"])).into(),
            ]
        }
        P::PodDisruptionBudget => {
            let or_na = |v: &Value| {
                if v.is_null() {
                    "N/A".to_string()
                } else {
                    int_or_string(v)
                }
            };
            vec![
                name(o),
                or_na(at(o, &["spec", "minAvailable"])).into(),
                or_na(at(o, &["spec", "maxUnavailable"])).into(),
                int(o, &["status", "disruptionsAllowed"]).into(),
                age(o, now),
            ]
        }
        P::ReplicationController => {
            let (names, images) =
                containers_cells(at(o, &["spec", "template", "spec", "containers"]));
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
        P::ReplicaSet => {
            let (names, images) =
                containers_cells(at(o, &["spec", "template", "spec", "containers"]));
            vec![
                name(o),
                opt_int(o, &["spec", "replicas"]).unwrap_or(1).into(),
                int(o, &["status", "replicas"]).into(),
                int(o, &["status", "readyReplicas"]).into(),
                age(o, now),
                names.into(),
                images.into(),
                format_label_selector(at(o, &["spec", "selector"])).into(),
            ]
        }
        P::DaemonSet => {
            let (names, images) =
                containers_cells(at(o, &["spec", "template", "spec", "containers"]));
            vec![
                name(o),
                int(o, &["status", "desiredNumberScheduled"]).into(),
                int(o, &["status", "currentNumberScheduled"]).into(),
                int(o, &["status", "numberReady"]).into(),
                int(o, &["status", "updatedNumberScheduled"]).into(),
                int(o, &["status", "numberAvailable"]).into(),
                format_labels(at(o, &["spec", "template", "spec", "nodeSelector"])).into(),
                age(o, now),
                names.into(),
                images.into(),
                format_label_selector(at(o, &["spec", "selector"])).into(),
            ]
        }
        P::Job => job_row(o, now),
        P::CronJob => {
            let last = at(o, &["status", "lastScheduleTime"]);
            let last = if last.is_null() {
                "<none>".to_string()
            } else {
                translate_timestamp_since(last.as_str(), now)
            };
            let tz = match at(o, &["spec", "timeZone"]).as_str() {
                Some(tz) => tz.to_string(),
                None => "<none>".to_string(),
            };
            let suspend = match at(o, &["spec", "suspend"]).as_bool() {
                Some(b) => print_bool(b),
                // Defaulted to false upstream.
                None => print_bool(false),
            };
            let (names, images) = containers_cells(at(
                o,
                &[
                    "spec",
                    "jobTemplate",
                    "spec",
                    "template",
                    "spec",
                    "containers",
                ],
            ));
            vec![
                name(o),
                st(o, &["spec", "schedule"]).into(),
                tz.into(),
                suspend.into(),
                (arr(o, &["status", "active"]).len() as i64).into(),
                last.into(),
                age(o, now),
                names.into(),
                images.into(),
                format_label_selector(at(o, &["spec", "jobTemplate", "spec", "selector"])).into(),
            ]
        }
        P::Service => service_row(o, now),
        P::Ingress => {
            let class = at(o, &["spec", "ingressClassName"])
                .as_str()
                .unwrap_or("<none>")
                .to_string();
            let rules = arr(o, &["spec", "rules"]);
            let ports = if arr(o, &["spec", "tls"]).is_empty() {
                "80"
            } else {
                "80, 443"
            };
            vec![
                name(o),
                class.into(),
                format_hosts(rules).into(),
                load_balancer_status(arr(o, &["status", "loadBalancer", "ingress"])).into(),
                ports.into(),
                age(o, now),
            ]
        }
        P::IngressClass => {
            let p = at(o, &["spec", "parameters"]);
            let parameters = if p.is_null() {
                "<none>".to_string()
            } else {
                let mut s = st(p, &["kind"]).to_string();
                if let Some(g) = at(p, &["apiGroup"]).as_str() {
                    s.push('.');
                    s.push_str(g);
                }
                s.push('/');
                s.push_str(st(p, &["name"]));
                s
            };
            vec![
                name(o),
                st(o, &["spec", "controller"]).into(),
                parameters.into(),
                age(o, now),
            ]
        }
        P::StatefulSet => {
            let (names, images) =
                containers_cells(at(o, &["spec", "template", "spec", "containers"]));
            vec![
                name(o),
                format!(
                    "{}/{}",
                    int(o, &["status", "readyReplicas"]),
                    opt_int(o, &["spec", "replicas"]).unwrap_or(1)
                )
                .into(),
                age(o, now),
                names.into(),
                images.into(),
            ]
        }
        P::Endpoints => vec![
            name(o),
            format_endpoints(arr(o, &["subsets"])).into(),
            age(o, now),
        ],
        P::Node => node_row(o, now),
        P::Event => event_row(o, now, false),
        P::EventsV1 => event_row(o, now, true),
        P::Namespace => {
            // Upstream sets `Active` on create.
            let phase = at(o, &["status", "phase"]).as_str().unwrap_or("Active");
            vec![name(o), phase.into(), age(o, now)]
        }
        P::Secret => {
            let ty = at(o, &["type"]).as_str().unwrap_or("Opaque");
            vec![
                name(o),
                ty.into(),
                (map_len(at(o, &["data"])) as i64).into(),
                age(o, now),
            ]
        }
        P::ServiceAccount => vec![
            name(o),
            (arr(o, &["secrets"]).len() as i64).into(),
            age(o, now),
        ],
        P::PersistentVolume => {
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
        P::PersistentVolumeClaim => {
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
        P::ComponentStatus => {
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
        P::Deployment => {
            let (names, images) =
                containers_cells(at(o, &["spec", "template", "spec", "containers"]));
            let selector = match selector_string(at(o, &["spec", "selector"])) {
                Ok(s) => s,
                Err(()) => "<invalid>".to_string(),
            };
            vec![
                name(o),
                format!(
                    "{}/{}",
                    int(o, &["status", "readyReplicas"]),
                    opt_int(o, &["spec", "replicas"]).unwrap_or(1)
                )
                .into(),
                int(o, &["status", "updatedReplicas"]).into(),
                int(o, &["status", "availableReplicas"]).into(),
                age(o, now),
                names.into(),
                images.into(),
                selector.into(),
            ]
        }
        P::HorizontalPodAutoscaler => hpa_row(o, now),
        P::ConfigMap => vec![
            name(o),
            ((map_len(at(o, &["data"])) + map_len(at(o, &["binaryData"]))) as i64).into(),
            age(o, now),
        ],
        P::NetworkPolicy => vec![
            name(o),
            // podSelector is not a pointer upstream: absent means empty.
            match selector_string(at(o, &["spec", "podSelector"])) {
                Ok(s) if s.is_empty() => "<none>".to_string(),
                Ok(s) => s,
                Err(()) => "<error>".to_string(),
            }
            .into(),
            age(o, now),
        ],
        P::RoleBinding | P::ClusterRoleBinding => {
            let role = format!(
                "{}/{}",
                st(o, &["roleRef", "kind"]),
                st(o, &["roleRef", "name"])
            );
            let (mut users, mut groups, mut sas) = (vec![], vec![], vec![]);
            for s in arr(o, &["subjects"]) {
                match st(s, &["kind"]) {
                    "ServiceAccount" => {
                        sas.push(format!("{}/{}", st(s, &["namespace"]), st(s, &["name"])))
                    }
                    "User" => users.push(st(s, &["name"]).to_string()),
                    "Group" => groups.push(st(s, &["name"]).to_string()),
                    _ => {}
                }
            }
            vec![
                name(o),
                role.into(),
                age(o, now),
                users.join(", ").into(),
                groups.join(", ").into(),
                sas.join(", ").into(),
            ]
        }
        P::CertificateSigningRequest => {
            let (mut approved, mut denied, mut failed) = (false, false, false);
            for c in arr(o, &["status", "conditions"]) {
                match st(c, &["type"]) {
                    "Approved" => approved = true,
                    "Denied" => denied = true,
                    "Failed" => failed = true,
                    _ => {}
                }
            }
            let mut status = if denied {
                "Denied"
            } else if approved {
                "Approved"
            } else {
                "Pending"
            }
            .to_string();
            if failed {
                status.push_str(",Failed");
            }
            if !st(o, &["status", "certificate"]).is_empty() {
                status.push_str(",Issued");
            }
            let signer = non_empty_or(st(o, &["spec", "signerName"]), "<none>");
            let duration = match opt_int(o, &["spec", "expirationSeconds"]) {
                Some(s) => human_duration(s),
                None => "<none>".to_string(),
            };
            vec![
                name(o),
                age(o, now),
                signer.into(),
                st(o, &["spec", "username"]).into(),
                duration.into(),
                status.into(),
            ]
        }
        P::Lease => vec![
            name(o),
            st(o, &["spec", "holderIdentity"]).into(),
            age(o, now),
        ],
        P::StorageClass => {
            let mut n = st(o, &["metadata", "name"]).to_string();
            if annotation(o, "storageclass.kubernetes.io/is-default-class") == Some("true")
                || annotation(o, "storageclass.beta.kubernetes.io/is-default-class") == Some("true")
            {
                n.push_str(" (default)");
            }
            vec![
                n.into(),
                st(o, &["provisioner"]).into(),
                at(o, &["reclaimPolicy"])
                    .as_str()
                    .unwrap_or("Delete")
                    .into(),
                at(o, &["volumeBindingMode"])
                    .as_str()
                    .unwrap_or("Immediate")
                    .into(),
                at(o, &["allowVolumeExpansion"])
                    .as_bool()
                    .unwrap_or(false)
                    .into(),
                age(o, now),
            ]
        }
        P::ControllerRevision => {
            let controller = arr(o, &["metadata", "ownerReferences"])
                .iter()
                .find(|r| at(r, &["controller"]).as_bool() == Some(true));
            let controller = match controller {
                None => "<none>".to_string(),
                Some(r) => {
                    let api_version = st(r, &["apiVersion"]);
                    let group = match api_version.split_once('/') {
                        Some((g, _)) => g,
                        None => "",
                    };
                    let kind = st(r, &["kind"]);
                    let gk = if group.is_empty() {
                        kind.to_string()
                    } else {
                        format!("{kind}.{group}")
                    };
                    if gk.is_empty() {
                        st(r, &["name"]).to_string()
                    } else {
                        format!("{}/{}", gk.to_lowercase(), st(r, &["name"]))
                    }
                }
            };
            vec![
                name(o),
                controller.into(),
                int(o, &["revision"]).into(),
                age(o, now),
            ]
        }
        P::ResourceQuota => {
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
        P::PriorityClass => vec![
            name(o),
            int(o, &["value"]).into(),
            at(o, &["globalDefault"]).as_bool().unwrap_or(false).into(),
            age(o, now),
            at(o, &["preemptionPolicy"])
                .as_str()
                .unwrap_or("PreemptLowerPriority")
                .into(),
        ],
        P::RuntimeClass => vec![name(o), st(o, &["handler"]).into(), age(o, now)],
        P::IpAddress => vec![name(o), parent_ref(o).into()],
        P::ServiceCidr => vec![
            name(o),
            arr(o, &["spec", "cidrs"])
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
                .into(),
            age(o, now),
        ],
        P::VolumeAttachment => vec![
            name(o),
            st(o, &["spec", "attacher"]).into(),
            st(o, &["spec", "source", "persistentVolumeName"]).into(),
            st(o, &["spec", "nodeName"]).into(),
            at(o, &["status", "attached"])
                .as_bool()
                .unwrap_or(false)
                .into(),
            age(o, now),
        ],
        P::EndpointSlice => endpoint_slice_row(o, now),
        P::CsiNode => vec![
            name(o),
            (arr(o, &["spec", "drivers"]).len() as i64).into(),
            age(o, now),
        ],
        P::CsiDriver => {
            let b = |field: &str, default: bool| -> Value {
                at(o, &["spec", field]).as_bool().unwrap_or(default).into()
            };
            let tokens = at(o, &["spec", "tokenRequests"]);
            let tokens = match tokens.as_array() {
                None => "<unset>".to_string(),
                Some(list) => list
                    .iter()
                    .map(|t| st(t, &["audience"]))
                    .collect::<Vec<_>>()
                    .join(","),
            };
            let modes: Vec<&str> = arr(o, &["spec", "volumeLifecycleModes"])
                .iter()
                .map(|m| m.as_str().unwrap_or(""))
                .collect();
            // Defaulted to [Persistent] upstream.
            let modes = if modes.is_empty() {
                "Persistent".to_string()
            } else {
                modes.join(",")
            };
            vec![
                name(o),
                b("attachRequired", true),
                b("podInfoOnMount", false),
                b("storageCapacity", false),
                tokens.into(),
                b("requiresRepublish", false),
                modes.into(),
                age(o, now),
            ]
        }
        P::CsiStorageCapacity => {
            let cap = at(o, &["capacity"]);
            let cap = if cap.is_null() {
                "<unset>".to_string()
            } else {
                quantity(cap)
            };
            vec![name(o), st(o, &["storageClassName"]).into(), cap.into()]
        }
        P::MutatingWebhook | P::ValidatingWebhook => vec![
            name(o),
            (arr(o, &["webhooks"]).len() as i64).into(),
            age(o, now),
        ],
        P::ValidatingAdmissionPolicy => {
            let pk = at(o, &["spec", "paramKind"]);
            let pk = if pk.is_null() {
                "<unset>".to_string()
            } else {
                format!("{}/{}", st(pk, &["apiVersion"]), st(pk, &["kind"]))
            };
            vec![
                name(o),
                (arr(o, &["spec", "validations"]).len() as i64).into(),
                pk.into(),
                age(o, now),
            ]
        }
        P::ValidatingAdmissionPolicyBinding => {
            let pr = at(o, &["spec", "paramRef"]);
            let param = if pr.is_null() {
                "<unset>".to_string()
            } else if !st(pr, &["name"]).is_empty() {
                let ns = st(pr, &["namespace"]);
                if ns.is_empty() {
                    format!("*/{}", st(pr, &["name"]))
                } else {
                    format!("{ns}/{}", st(pr, &["name"]))
                }
            } else if !at(pr, &["selector"]).is_null() {
                selector_string(at(pr, &["selector"])).unwrap_or_default()
            } else {
                "<unset>".to_string()
            };
            vec![
                name(o),
                st(o, &["spec", "policyName"]).into(),
                param.into(),
                age(o, now),
            ]
        }
        P::Default => {
            let t = parse_rfc3339(st(o, &["metadata", "creationTimestamp"])).unwrap_or(ZERO_TIME);
            vec![name(o), format_rfc3339(t).into()]
        }
    }
}

/// Row conditions upstream attaches (only pods have them: a `Completed`
/// condition once the pod succeeded or failed).
fn row_conditions(group: &str, plural: &str, object: &Value) -> Option<Value> {
    if printer(group, plural) != Printer::Pod {
        return None;
    }
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

/// The full `meta.k8s.io/v1` `Table` for `objects` (a list, or a single
/// object for a GET), with each row's `object` as the `PartialObjectMetadata`
/// of the object (what `includeObject=Metadata`, kubectl's default, asks
/// for). `resource_version` and `continue_token` go to the table's list
/// metadata (omitted when empty, as upstream's `omitempty`).
pub fn table(
    group: &str,
    plural: &str,
    objects: &[Value],
    now_unix_secs: i64,
    resource_version: &str,
    continue_token: Option<&str>,
) -> Value {
    let mut metadata = Map::new();
    if !resource_version.is_empty() {
        metadata.insert("resourceVersion".into(), resource_version.into());
    }
    if let Some(c) = continue_token {
        if !c.is_empty() {
            metadata.insert("continue".into(), c.into());
        }
    }
    let column_definitions: Vec<Value> =
        columns(group, plural).iter().map(Column::to_json).collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut r = Map::new();
            r.insert(
                "cells".into(),
                Value::Array(row(group, plural, o, now_unix_secs)),
            );
            if let Some(c) = row_conditions(group, plural, o) {
                r.insert("conditions".into(), c);
            }
            r.insert("object".into(), partial_object_metadata(o));
            Value::Object(r)
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": column_definitions,
        "rows": rows,
    })
}

/// The `meta.k8s.io/v1` `PartialObjectMetadata` of an object: its
/// `metadata` only.
pub fn partial_object_metadata(object: &Value) -> Value {
    let metadata = match object.get("metadata") {
        Some(m) if m.is_object() => m.clone(),
        _ => Value::Object(Map::new()),
    };
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
    })
}

// ---------------------------------------------------------------------------
// Per-kind printers
// ---------------------------------------------------------------------------

fn pod_row(pod: &Value, now: i128) -> Vec<Value> {
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

fn job_row(o: &Value, now: i128) -> Vec<Value> {
    let succeeded = int(o, &["status", "succeeded"]);
    let completions = match opt_int(o, &["spec", "completions"]) {
        Some(c) => format!("{succeeded}/{c}"),
        None => {
            let parallelism = opt_int(o, &["spec", "parallelism"]).unwrap_or(0);
            if parallelism > 1 {
                format!("{succeeded}/1 of {parallelism}")
            } else {
                format!("{succeeded}/1")
            }
        }
    };
    let start = at(o, &["status", "startTime"]).as_str();
    let completion = at(o, &["status", "completionTime"]).as_str();
    let duration = match (start, completion) {
        (None, _) => String::new(),
        (Some(s), None) => human_duration_nanos(now - parse_rfc3339(s).unwrap_or(ZERO_TIME)),
        (Some(s), Some(c)) => human_duration_nanos(
            parse_rfc3339(c).unwrap_or(ZERO_TIME) - parse_rfc3339(s).unwrap_or(ZERO_TIME),
        ),
    };
    let conditions = arr(o, &["status", "conditions"]);
    let has = |ty: &str| {
        conditions
            .iter()
            .find(|c| st(c, &["type"]) == ty)
            .is_some_and(|c| st(c, &["status"]) == "True")
    };
    let status = if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if deleting(o) {
        "Terminating"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = containers_cells(at(o, &["spec", "template", "spec", "containers"]));
    vec![
        name(o),
        status.into(),
        completions.into(),
        duration.into(),
        age(o, now),
        names.into(),
        images.into(),
        format_label_selector(at(o, &["spec", "selector"])).into(),
    ]
}

fn service_row(o: &Value, now: i128) -> Vec<Value> {
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

fn node_row(o: &Value, now: i128) -> Vec<Value> {
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
fn event_row(o: &Value, now: i128, events_v1: bool) -> Vec<Value> {
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

fn hpa_row(o: &Value, now: i128) -> Vec<Value> {
    let spec = at(o, &["spec"]);
    let status = at(o, &["status"]);
    let reference = format!(
        "{}/{}",
        st(spec, &["scaleTargetRef", "kind"]),
        st(spec, &["scaleTargetRef", "name"])
    );
    let metrics = if spec.get("targetCPUUtilizationPercentage").is_some()
        || (spec.get("metrics").is_none()
            && status.get("currentCPUUtilizationPercentage").is_some())
    {
        // autoscaling/v1: a single cpu utilization target.
        match opt_int(spec, &["targetCPUUtilizationPercentage"]) {
            None => "<none>".to_string(),
            Some(target) => {
                let current = match opt_int(status, &["currentCPUUtilizationPercentage"]) {
                    Some(c) => format!("{c}%"),
                    None => "<unknown>".to_string(),
                };
                format!("cpu: {current}/{target}%")
            }
        }
    } else {
        format_hpa_metrics(arr(spec, &["metrics"]), arr(status, &["currentMetrics"]))
    };
    // minReplicas is defaulted to 1 upstream.
    let min = opt_int(spec, &["minReplicas"]).unwrap_or(1).to_string();
    vec![
        name(o),
        reference.into(),
        metrics.into(),
        min.into(),
        int(spec, &["maxReplicas"]).into(),
        int(status, &["currentReplicas"]).into(),
        age(o, now),
    ]
}

fn format_hpa_metrics(specs: &[Value], statuses: &[Value]) -> String {
    if specs.is_empty() {
        return "<none>".to_string();
    }
    let q = |v: &Value| {
        if v.is_null() {
            "<nil>".to_string()
        } else {
            quantity(v)
        }
    };
    let mut list: Vec<String> = vec![];
    for (i, spec) in specs.iter().enumerate() {
        let status = statuses.get(i).unwrap_or(&NULL);
        let item = match st(spec, &["type"]) {
            ty @ ("External" | "Object") => {
                let field = if ty == "External" {
                    "external"
                } else {
                    "object"
                };
                let target = at(spec, &[field, "target"]);
                let cur = at(status, &[field]);
                if !at(target, &["averageValue"]).is_null() {
                    let current =
                        if !cur.is_null() && !at(cur, &["current", "averageValue"]).is_null() {
                            q(at(cur, &["current", "averageValue"]))
                        } else {
                            "<unknown>".to_string()
                        };
                    format!("{current}/{} (avg)", q(at(target, &["averageValue"])))
                } else {
                    let current = if !cur.is_null() {
                        q(at(cur, &["current", "value"]))
                    } else {
                        "<unknown>".to_string()
                    };
                    format!("{current}/{}", q(at(target, &["value"])))
                }
            }
            "Pods" => {
                let cur = at(status, &["pods"]);
                let current = if !cur.is_null() {
                    q(at(cur, &["current", "averageValue"]))
                } else {
                    "<unknown>".to_string()
                };
                format!(
                    "{current}/{}",
                    q(at(spec, &["pods", "target", "averageValue"]))
                )
            }
            ty @ ("Resource" | "ContainerResource") => {
                let field = if ty == "Resource" {
                    "resource"
                } else {
                    "containerResource"
                };
                let name = st(spec, &[field, "name"]);
                let target = at(spec, &[field, "target"]);
                let cur = at(status, &[field]);
                if !at(target, &["averageValue"]).is_null() {
                    let current = if !cur.is_null() {
                        q(at(cur, &["current", "averageValue"]))
                    } else {
                        "<unknown>".to_string()
                    };
                    format!("{name}: {current}/{}", q(at(target, &["averageValue"])))
                } else {
                    let current = match opt_int(cur, &["current", "averageUtilization"]) {
                        Some(u) => format!("{u}%"),
                        None => "<unknown>".to_string(),
                    };
                    let target = match opt_int(target, &["averageUtilization"]) {
                        Some(u) => format!("{u}%"),
                        None => "<auto>".to_string(),
                    };
                    format!("{name}: {current}/{target}")
                }
            }
            _ => "<unknown type>".to_string(),
        };
        list.push(item);
    }
    let count = list.len();
    if count > 2 {
        list.truncate(2);
        format!("{} + {} more...", list.join(", "), count - 2)
    } else {
        list.join(", ")
    }
}

fn endpoint_slice_row(o: &Value, now: i128) -> Vec<Value> {
    const MAX: usize = 3;
    let mut ports = vec![];
    let mut count = 0;
    for p in arr(o, &["ports"]) {
        if ports.len() < MAX {
            let port = match opt_int(p, &["port"]) {
                Some(n) => n.to_string(),
                None => match at(p, &["name"]).as_str() {
                    Some(n) => n.to_string(),
                    None => "*".to_string(),
                },
            };
            ports.push(port);
        }
        count += 1;
    }
    let ports = list_with_more(&ports, count, MAX);
    let mut addrs = vec![];
    let mut count = 0;
    for e in arr(o, &["endpoints"]) {
        for a in arr(e, &["addresses"]) {
            if addrs.len() < MAX {
                addrs.push(a.as_str().unwrap_or("").to_string());
            }
            count += 1;
        }
    }
    let endpoints = list_with_more(&addrs, count, MAX);
    vec![
        name(o),
        st(o, &["addressType"]).into(),
        ports.into(),
        endpoints.into(),
        age(o, now),
    ]
}

/// Upstream's `listWithMoreString`.
fn list_with_more(list: &[String], count: usize, max: usize) -> String {
    let ret = list.join(",");
    if count > max {
        format!("{ret} + {} more...", count - max)
    } else if ret.is_empty() {
        "<unset>".to_string()
    } else {
        ret
    }
}

/// Upstream's `formatEndpoints` (all ports).
fn format_endpoints(subsets: &[Value]) -> String {
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = vec![];
    let mut more = false;
    let mut count = 0;
    for ss in subsets {
        let addresses = arr(ss, &["addresses"]);
        let ports = arr(ss, &["ports"]);
        if ports.is_empty() {
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(st(a, &["ip"]).to_string());
            }
            continue;
        }
        for p in ports {
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(join_host_port(st(a, &["ip"]), int(p, &["port"])));
            }
        }
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", count - MAX)
    } else {
        ret
    }
}

/// Go's `net.JoinHostPort`.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Upstream's `formatHosts` for ingress rules.
fn format_hosts(rules: &[Value]) -> String {
    const MAX: usize = 3;
    let mut list: Vec<&str> = vec![];
    let mut more = false;
    for r in rules {
        if list.len() == MAX {
            more = true;
        }
        let host = st(r, &["host"]);
        if !more && !host.is_empty() {
            list.push(host);
        }
    }
    if list.is_empty() {
        return "*".to_string();
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", rules.len() - MAX)
    } else {
        ret
    }
}

/// Upstream's `loadBalancerStatusStringer` with `wide` (never clipped):
/// the sorted, de-duplicated IPs (or hostnames) of the ingress points.
fn load_balancer_status(ingress: &[Value]) -> String {
    let mut result: Vec<&str> = vec![];
    for i in ingress {
        let ip = st(i, &["ip"]);
        let host = st(i, &["hostname"]);
        if !ip.is_empty() {
            result.push(ip);
        } else if !host.is_empty() {
            result.push(host);
        }
    }
    result.sort_unstable();
    result.dedup();
    result.join(",")
}

/// Upstream's `layoutContainerCells`: container names and images, each
/// comma-separated.
fn containers_cells(containers: &Value) -> (String, String) {
    let list = containers.as_array().map(Vec::as_slice).unwrap_or(&[]);
    let names: Vec<&str> = list.iter().map(|c| st(c, &["name"])).collect();
    let images: Vec<&str> = list.iter().map(|c| st(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

/// `helper.GetAccessModesAsString`.
fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    let mut out = vec![];
    for (mode, short) in [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ] {
        if has(mode) {
            out.push(short);
        }
    }
    out.join(",")
}

// ---------------------------------------------------------------------------
// Labels and selectors
// ---------------------------------------------------------------------------

/// `labels.FormatLabels`: `k=v` pairs sorted by key, comma-separated, or
/// `<none>`.
pub fn format_labels(labels: &Value) -> String {
    let mut pairs: Vec<(&String, &str)> = match labels.as_object() {
        Some(m) => m
            .iter()
            .map(|(k, v)| (k, v.as_str().unwrap_or("")))
            .collect(),
        None => vec![],
    };
    if pairs.is_empty() {
        return "<none>".to_string();
    }
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `metav1.FormatLabelSelector`: the selector's string form, `<none>` when
/// it selects everything (or is absent), `<error>` when it is invalid.
pub fn format_label_selector(selector: &Value) -> String {
    match selector_string(selector) {
        Ok(s) if s.is_empty() => "<none>".to_string(),
        Ok(s) => s,
        Err(()) => "<error>".to_string(),
    }
}

/// `LabelSelectorAsSelector(sel).String()`: requirements sorted by key.
fn selector_string(selector: &Value) -> Result<String, ()> {
    let mut reqs: Vec<(String, String)> = vec![];
    if let Some(m) = at(selector, &["matchLabels"]).as_object() {
        for (k, v) in m {
            reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
        }
    }
    for e in arr(selector, &["matchExpressions"]) {
        let key = st(e, &["key"]);
        let mut values: Vec<&str> = arr(e, &["values"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let s = match st(e, &["operator"]) {
            "In" | "NotIn" if values.is_empty() => return Err(()),
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" | "DoesNotExist" if !values.is_empty() => return Err(()),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return Err(()),
        };
        reqs.push((key.to_string(), s));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(reqs
        .into_iter()
        .map(|(_, s)| s)
        .collect::<Vec<_>>()
        .join(","))
}

// ---------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------

const NANOS: i128 = 1_000_000_000;

/// Go's zero `time.Time` (0001-01-01T00:00:00Z) in nanoseconds since the
/// Unix epoch: what an absent timestamp is.
const ZERO_TIME: i128 = -62_135_596_800 * NANOS;

/// Parses an RFC 3339 timestamp (`2025-11-25T10:00:00Z`, optionally with
/// fractional seconds and a `±hh:mm` offset) into nanoseconds since the Unix
/// epoch.
pub fn parse_rfc3339(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let year = num(0, 4)?;
    let month = num(5, 2)?;
    let day = num(8, 2)?;
    let hour = num(11, 2)?;
    let minute = num(14, 2)?;
    let second = num(17, 2)?;
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut nanos: i128 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = &s[start..i];
        if frac.is_empty() {
            return None;
        }
        let mut digits: String = frac.chars().take(9).collect();
        while digits.len() < 9 {
            digits.push('0');
        }
        nanos = digits.parse().ok()?;
    }
    let offset_secs: i64 = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let h = num(i + 1, 2)?;
            let m = num(i + 4, 2)?;
            let off = h * 3600 + m * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    Some(secs as i128 * NANOS + nanos)
}

/// Formats nanoseconds since the Unix epoch as Go's `time.RFC3339` in UTC
/// (`2006-01-02T15:04:05Z`, no fractional seconds).
pub fn format_rfc3339(nanos: i128) -> String {
    let secs = nanos.div_euclid(NANOS) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01 (H. Hinnant).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Upstream's `duration.HumanDuration` of a number of seconds: `5s`,
/// `2m5s`, `3m`, `5h1m`, `3d`, `30d`, `3y20d`, ...; `0s` for -1s and
/// `<invalid>` for less.
pub fn human_duration(seconds: i64) -> String {
    human_duration_nanos(seconds as i128 * NANOS)
}

fn human_duration_nanos(d: i128) -> String {
    // Rust's integer division truncates toward zero like Go's conversions.
    let seconds = d / NANOS;
    if seconds < -1 {
        return "<invalid>".to_string();
    } else if seconds < 0 {
        return "0s".to_string();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = d / (60 * NANOS);
    if minutes < 10 {
        let s = (d / NANOS) % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = d / (3600 * NANOS);
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        format!("{hours}h{m}m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        format!("{}d{h}h", hours / 24)
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        format!("{}y{dy}d", hours / 24 / 365)
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

/// A timestamp field's value in nanoseconds, [`ZERO_TIME`] when absent or
/// unparsable.
fn parse_ts(v: &Value) -> i128 {
    v.as_str().and_then(parse_rfc3339).unwrap_or(ZERO_TIME)
}

/// Upstream's `translateTimestampSince`.
fn translate_since(t: i128, now: i128) -> String {
    if t == ZERO_TIME {
        return "<unknown>".to_string();
    }
    human_duration_nanos(now - t)
}

fn translate_timestamp_since(ts: Option<&str>, now: i128) -> String {
    translate_since(ts.and_then(parse_rfc3339).unwrap_or(ZERO_TIME), now)
}

/// The AGE cell: time since `metadata.creationTimestamp`.
/// An IPAddress's parent as upstream prints it: `resource.group[/namespace]/name`, lower case.
fn parent_ref(o: &Value) -> String {
    let Some(parent) = o.pointer("/spec/parentRef").filter(|p| p.is_object()) else {
        return "<none>".into();
    };
    let field = |f: &str| parent.get(f).and_then(Value::as_str).unwrap_or("");
    let mut out = match field("group") {
        "" => field("resource").to_lowercase(),
        group => format!("{}.{}", field("resource"), group).to_lowercase(),
    };
    if !field("namespace").is_empty() {
        out.push('/');
        out.push_str(field("namespace"));
    }
    out.push('/');
    out.push_str(field("name"));
    out
}

fn age(o: &Value, now: i128) -> Value {
    translate_since(parse_ts(at(o, &["metadata", "creationTimestamp"])), now).into()
}

// ---------------------------------------------------------------------------
// JSON access helpers
// ---------------------------------------------------------------------------

static NULL: Value = Value::Null;

/// The value at `path` (object keys), or `null`.
fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    let mut cur = v;
    for p in path {
        match cur.get(*p) {
            Some(x) => cur = x,
            None => return &NULL,
        }
    }
    cur
}

/// The string at `path`, or `""`.
fn st<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).as_str().unwrap_or("")
}

fn opt_int(v: &Value, path: &[&str]) -> Option<i64> {
    let x = at(v, path);
    x.as_i64().or_else(|| x.as_f64().map(|f| f as i64))
}

/// The integer at `path`, or 0.
fn int(v: &Value, path: &[&str]) -> i64 {
    opt_int(v, path).unwrap_or(0)
}

fn arr<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path).as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn map_len(v: &Value) -> usize {
    v.as_object().map_or(0, Map::len)
}

fn name(o: &Value) -> Value {
    st(o, &["metadata", "name"]).into()
}

fn deleting(o: &Value) -> bool {
    !at(o, &["metadata", "deletionTimestamp"]).is_null()
}

fn annotation<'a>(o: &'a Value, key: &str) -> Option<&'a str> {
    at(o, &["metadata", "annotations", key]).as_str()
}

fn non_empty_or<'a>(s: &'a str, default: &'a str) -> &'a str {
    if s.is_empty() {
        default
    } else {
        s
    }
}

/// An `IntOrString` as upstream's `String()`.
fn int_or_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// A quantity as printed: the stored string (or number), `0` when absent.
fn quantity(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => "0".to_string(),
    }
}

/// Go's `printBool`.
fn print_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

trait TrimOnce {
    fn trim_end_matches_once(&self, suffix: &str) -> String;
}

impl TrimOnce for String {
    /// Go's `strings.TrimSuffix`.
    fn trim_end_matches_once(&self, suffix: &str) -> String {
        self.strip_suffix(suffix).unwrap_or(self).to_string()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    /// 2025-11-25T10:00:00Z
    const T0: i64 = 1_764_064_800;
    const CREATED: &str = "2025-11-25T10:00:00Z";

    /// Seconds after [`T0`] as an RFC 3339 string.
    fn ts(after: i64) -> String {
        format_rfc3339((T0 + after) as i128 * NANOS)
    }

    fn names(cols: &[Column]) -> Vec<&'static str> {
        cols.iter().map(|c| c.name).collect()
    }

    /// The cell of `column` (by name) of `object`'s row.
    fn cell(group: &str, plural: &str, object: &Value, now: i64, column: &str) -> Value {
        let cols = columns(group, plural);
        let i = cols
            .iter()
            .position(|c| c.name == column)
            .unwrap_or_else(|| panic!("no column {column}"));
        row(group, plural, object, now)[i].clone()
    }

    #[test]
    fn human_duration_matches_upstream() {
        let cases: &[(i64, &str)] = &[
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (125, "2m5s"),
            (180, "3m"),
            (599, "9m59s"),
            (600, "10m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (5 * 3600 + 60, "5h1m"),
            (8 * 3600 + 60, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (49 * 3600, "2d1h"),
            (3 * 86400, "3d"),
            (8 * 86400, "8d"),
            (30 * 86400, "30d"),
            (2 * 365 * 86400 - 1, "729d"),
            (2 * 365 * 86400, "2y"),
            ((3 * 365 + 20) * 86400, "3y20d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(*secs), *want, "{secs}s");
        }
    }

    #[test]
    fn rfc3339_parse_and_format() {
        let cases: &[(&str, Option<&str>)] = &[
            ("2025-11-25T10:00:00Z", Some("2025-11-25T10:00:00Z")),
            ("2025-11-25T10:00:00.123456Z", Some("2025-11-25T10:00:00Z")),
            ("2025-11-25T12:30:00+02:30", Some("2025-11-25T10:00:00Z")),
            ("2025-11-25T08:00:00-02:00", Some("2025-11-25T10:00:00Z")),
            ("1970-01-01T00:00:00Z", Some("1970-01-01T00:00:00Z")),
            ("2024-02-29T23:59:59Z", Some("2024-02-29T23:59:59Z")),
            ("0001-01-01T00:00:00Z", Some("0001-01-01T00:00:00Z")),
            ("2025-11-25", None),
            ("2025-11-25T10:00:00", None),
            ("2025-13-25T10:00:00Z", None),
            ("garbage-garbage-garbage", None),
        ];
        for (input, want) in cases {
            let got = parse_rfc3339(input).map(format_rfc3339);
            assert_eq!(got.as_deref(), *want, "{input}");
        }
        assert_eq!(parse_rfc3339(CREATED), Some(T0 as i128 * NANOS));
        assert_eq!(parse_rfc3339("0001-01-01T00:00:00Z"), Some(ZERO_TIME));
        assert_eq!(
            parse_rfc3339("2025-11-25T10:00:00.5Z"),
            Some(T0 as i128 * NANOS + 500_000_000)
        );
    }

    fn pod(spec: Value, status: Value) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "creationTimestamp": CREATED},
            "spec": spec,
            "status": status,
        })
    }

    fn one_container() -> Value {
        json!({"containers": [{"name": "c", "image": "nginx"}]})
    }

    #[test]
    fn pod_ready_status_restarts() {
        let now = T0 + 3600;
        let waiting = |reason: &str| json!({"waiting": {"reason": reason}});
        let two_inits = json!({
            "initContainers": [{"name": "i1"}, {"name": "i2"}],
            "containers": [{"name": "c"}],
        });
        let cases: Vec<(&str, Value, &str, &str, &str)> = vec![
            (
                "no status",
                pod(one_container(), json!({})),
                "0/1",
                "Pending",
                "0",
            ),
            (
                "pending unscheduled",
                pod(
                    one_container(),
                    json!({
                        "phase": "Pending",
                        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
                    }),
                ),
                "0/1",
                "Pending",
                "0",
            ),
            (
                "scheduling gated",
                pod(
                    one_container(),
                    json!({
                        "phase": "Pending",
                        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}],
                    }),
                ),
                "0/1",
                "SchedulingGated",
                "0",
            ),
            (
                "container creating",
                pod(
                    one_container(),
                    json!({
                        "phase": "Pending",
                        "containerStatuses": [{"name": "c", "ready": false, "restartCount": 0, "state": waiting("ContainerCreating")}],
                    }),
                ),
                "0/1",
                "ContainerCreating",
                "0",
            ),
            (
                "image pull backoff",
                pod(
                    one_container(),
                    json!({
                        "phase": "Pending",
                        "containerStatuses": [{"name": "c", "ready": false, "restartCount": 0, "state": waiting("ImagePullBackOff")}],
                    }),
                ),
                "0/1",
                "ImagePullBackOff",
                "0",
            ),
            (
                "running",
                pod(
                    one_container(),
                    json!({
                        "phase": "Running",
                        "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": CREATED}}}],
                    }),
                ),
                "1/1",
                "Running",
                "0",
            ),
            (
                "running, one of two ready",
                pod(
                    json!({"containers": [{"name": "a"}, {"name": "b"}]}),
                    json!({
                        "phase": "Running",
                        "containerStatuses": [
                            {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                            {"name": "b", "ready": false, "restartCount": 0, "state": {"running": {}}},
                        ],
                    }),
                ),
                "1/2",
                "Running",
                "0",
            ),
            (
                "completed",
                pod(
                    one_container(),
                    json!({
                        "phase": "Succeeded",
                        "containerStatuses": [{"name": "c", "ready": false, "restartCount": 0,
                            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
                    }),
                ),
                "0/1",
                "Completed",
                "0",
            ),
            (
                "error",
                pod(
                    one_container(),
                    json!({
                        "phase": "Failed",
                        "containerStatuses": [{"name": "c", "ready": false, "restartCount": 0,
                            "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}],
                    }),
                ),
                "0/1",
                "Error",
                "0",
            ),
            (
                "killed by signal, no reason",
                pod(
                    one_container(),
                    json!({
                        "phase": "Failed",
                        "containerStatuses": [{"name": "c", "restartCount": 0,
                            "state": {"terminated": {"exitCode": 137, "signal": 9}}}],
                    }),
                ),
                "0/1",
                "Signal:9",
                "0",
            ),
            (
                "exit code, no reason",
                pod(
                    one_container(),
                    json!({
                        "phase": "Failed",
                        "containerStatuses": [{"name": "c", "restartCount": 0,
                            "state": {"terminated": {"exitCode": 2}}}],
                    }),
                ),
                "0/1",
                "ExitCode:2",
                "0",
            ),
            (
                "crash loop with last restart time",
                pod(
                    one_container(),
                    json!({
                        "phase": "Running",
                        "containerStatuses": [{"name": "c", "ready": false, "restartCount": 5,
                            "state": waiting("CrashLoopBackOff"),
                            "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ts(3600 - 180)}}}],
                    }),
                ),
                "0/1",
                "CrashLoopBackOff",
                "5 (3m ago)",
            ),
            (
                "restarts without a finish time",
                pod(
                    one_container(),
                    json!({
                        "phase": "Running",
                        "containerStatuses": [{"name": "c", "ready": true, "restartCount": 2, "state": {"running": {}}}],
                    }),
                ),
                "1/1",
                "Running",
                "2",
            ),
            (
                "init 0/2",
                pod(
                    two_inits.clone(),
                    json!({
                        "phase": "Pending",
                        "initContainerStatuses": [
                            {"name": "i1", "restartCount": 0, "state": {"running": {}}},
                            {"name": "i2", "restartCount": 0, "state": waiting("PodInitializing")},
                        ],
                        "containerStatuses": [{"name": "c", "restartCount": 0, "state": waiting("PodInitializing")}],
                    }),
                ),
                "0/1",
                "Init:0/2",
                "0",
            ),
            (
                "init 1/2",
                pod(
                    two_inits.clone(),
                    json!({
                        "phase": "Pending",
                        "initContainerStatuses": [
                            {"name": "i1", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                            {"name": "i2", "restartCount": 0, "state": {"running": {}}},
                        ],
                    }),
                ),
                "0/1",
                "Init:1/2",
                "0",
            ),
            (
                "init error",
                pod(
                    two_inits.clone(),
                    json!({
                        "phase": "Pending",
                        "initContainerStatuses": [
                            {"name": "i1", "restartCount": 3, "state": {"terminated": {"exitCode": 1, "reason": "Error"}}},
                            {"name": "i2", "restartCount": 0, "state": waiting("PodInitializing")},
                        ],
                    }),
                ),
                "0/1",
                "Init:Error",
                "3",
            ),
            (
                "init crash loop",
                pod(
                    two_inits.clone(),
                    json!({
                        "phase": "Pending",
                        "initContainerStatuses": [
                            {"name": "i1", "restartCount": 4, "state": waiting("CrashLoopBackOff"),
                             "lastState": {"terminated": {"exitCode": 1, "finishedAt": ts(3600 - 10)}}},
                        ],
                    }),
                ),
                "0/1",
                "Init:CrashLoopBackOff",
                "4 (10s ago)",
            ),
            (
                "init exit code without reason",
                pod(
                    two_inits.clone(),
                    json!({
                        "phase": "Pending",
                        "initContainerStatuses": [
                            {"name": "i1", "restartCount": 0, "state": {"terminated": {"exitCode": 3}}},
                        ],
                    }),
                ),
                "0/1",
                "Init:ExitCode:3",
                "0",
            ),
            (
                "pod initializing",
                pod(
                    two_inits.clone(),
                    json!({
                        "phase": "Pending",
                        "initContainerStatuses": [
                            {"name": "i1", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                            {"name": "i2", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                        ],
                        "containerStatuses": [{"name": "c", "restartCount": 0, "state": waiting("PodInitializing")}],
                    }),
                ),
                "0/1",
                "PodInitializing",
                "0",
            ),
            (
                "sidecar counts as a container",
                pod(
                    json!({
                        "initContainers": [{"name": "side", "restartPolicy": "Always"}],
                        "containers": [{"name": "c"}],
                    }),
                    json!({
                        "phase": "Running",
                        "conditions": [{"type": "Initialized", "status": "True"}],
                        "initContainerStatuses": [{"name": "side", "ready": true, "started": true, "restartCount": 1, "state": {"running": {}}}],
                        "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "state": {"running": {}}}],
                    }),
                ),
                "2/2",
                "Running",
                "1",
            ),
            (
                "completed container but another still running",
                pod(
                    json!({"containers": [{"name": "a"}, {"name": "b"}]}),
                    json!({
                        "phase": "Running",
                        "conditions": [{"type": "Ready", "status": "False"}],
                        "containerStatuses": [
                            {"name": "a", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                            {"name": "b", "ready": true, "restartCount": 0, "state": {"running": {}}},
                        ],
                    }),
                ),
                "1/2",
                "NotReady",
                "0",
            ),
            (
                "evicted (status.reason)",
                pod(
                    one_container(),
                    json!({"phase": "Failed", "reason": "Evicted"}),
                ),
                "0/1",
                "Evicted",
                "0",
            ),
        ];
        for (what, p, ready, status, restarts) in cases {
            let cells = row("", "pods", &p, now);
            assert_eq!(cells.len(), columns("", "pods").len(), "{what}");
            assert_eq!(cells[0], json!("p"), "{what}");
            assert_eq!(cells[1], json!(ready), "{what}: ready");
            assert_eq!(cells[2], json!(status), "{what}: status");
            assert_eq!(cells[3], json!(restarts), "{what}: restarts");
            assert_eq!(cells[4], json!("60m"), "{what}: age");
        }
    }

    #[test]
    fn pod_terminating_and_node_lost() {
        let running = json!({
            "phase": "Running",
            "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "state": {"running": {}}}],
        });
        let mut p = pod(one_container(), running.clone());
        p["metadata"]["deletionTimestamp"] = json!(ts(10));
        assert_eq!(
            cell("", "pods", &p, T0 + 20, "Status"),
            json!("Terminating")
        );

        let mut done = pod(one_container(), json!({"phase": "Succeeded"}));
        done["metadata"]["deletionTimestamp"] = json!(ts(10));
        assert_eq!(
            cell("", "pods", &done, T0 + 20, "Status"),
            json!("Succeeded")
        );

        let mut lost = pod(
            one_container(),
            json!({"phase": "Running", "reason": "NodeLost"}),
        );
        assert_eq!(
            cell("", "pods", &lost, T0 + 20, "Status"),
            json!("NodeLost")
        );
        lost["metadata"]["deletionTimestamp"] = json!(ts(10));
        assert_eq!(cell("", "pods", &lost, T0 + 20, "Status"), json!("Unknown"));
    }

    #[test]
    fn pod_wide_cells() {
        let mut p = pod(
            json!({
                "containers": [{"name": "c"}],
                "nodeName": "node-1",
                "readinessGates": [{"conditionType": "a"}, {"conditionType": "b"}],
            }),
            json!({
                "phase": "Running",
                "podIP": "10.0.0.9",
                "podIPs": [{"ip": "10.0.0.9"}, {"ip": "fd00::9"}],
                "conditions": [{"type": "a", "status": "True"}, {"type": "b", "status": "False"}],
            }),
        );
        let cells = row("", "pods", &p, T0);
        assert_eq!(
            cells[5..].to_vec(),
            vec![
                json!("10.0.0.9"),
                json!("node-1"),
                json!("<none>"),
                json!("1/2")
            ]
        );
        p["spec"] = one_container();
        p["status"] = json!({"phase": "Pending"});
        let cells = row("", "pods", &p, T0);
        assert_eq!(
            cells[5..].to_vec(),
            vec![
                json!("<none>"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>")
            ]
        );
    }

    #[test]
    fn pod_columns() {
        let cols = columns("", "pods");
        assert_eq!(
            names(&cols),
            [
                "Name",
                "Ready",
                "Status",
                "Restarts",
                "Age",
                "IP",
                "Node",
                "Nominated Node",
                "Readiness Gates"
            ]
        );
        let prio: Vec<i32> = cols.iter().map(|c| c.priority).collect();
        assert_eq!(prio, [0, 0, 0, 0, 0, 1, 1, 1, 1]);
        assert_eq!(cols[0].format, "name");
        assert!(cols[1..].iter().all(|c| c.format.is_empty()));
    }

    fn node(labels: Value, conditions: Value, unschedulable: bool) -> Value {
        json!({
            "metadata": {"name": "n1", "creationTimestamp": CREATED, "labels": labels},
            "spec": {"unschedulable": unschedulable},
            "status": {
                "conditions": conditions,
                "nodeInfo": {"kubeletVersion": "v1.33.1"},
                "addresses": [{"type": "InternalIP", "address": "192.168.0.2"}, {"type": "Hostname", "address": "n1"}],
            },
        })
    }

    #[test]
    fn node_status_and_roles() {
        let ready = |s: &str| json!([{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": s}]);
        let cases: Vec<(Value, Value, bool, &str, &str)> = vec![
            (json!({}), ready("True"), false, "Ready", "<none>"),
            (json!({}), ready("False"), false, "NotReady", "<none>"),
            (json!({}), ready("Unknown"), false, "NotReady", "<none>"),
            (json!({}), json!([]), false, "Unknown", "<none>"),
            (
                json!({}),
                ready("True"),
                true,
                "Ready,SchedulingDisabled",
                "<none>",
            ),
            (
                json!({}),
                json!([]),
                true,
                "Unknown,SchedulingDisabled",
                "<none>",
            ),
            (
                json!({"node-role.kubernetes.io/worker": "", "node-role.kubernetes.io/control-plane": "", "kubernetes.io/hostname": "n1"}),
                ready("True"),
                false,
                "Ready",
                "control-plane,worker",
            ),
            (
                json!({"kubernetes.io/role": "master"}),
                ready("True"),
                false,
                "Ready",
                "master",
            ),
            (
                json!({"kubernetes.io/role": "", "node-role.kubernetes.io/": ""}),
                ready("True"),
                false,
                "Ready",
                "<none>",
            ),
            (
                json!({"kubernetes.io/role": "worker", "node-role.kubernetes.io/worker": ""}),
                ready("True"),
                false,
                "Ready",
                "worker",
            ),
        ];
        for (labels, conditions, unsched, status, roles) in cases {
            let n = node(labels.clone(), conditions, unsched);
            let cells = row("", "nodes", &n, T0 + 3 * 86400);
            assert_eq!(cells[1], json!(status), "{labels}");
            assert_eq!(cells[2], json!(roles), "{labels}");
            assert_eq!(cells[3], json!("3d"));
            assert_eq!(cells[4], json!("v1.33.1"));
            assert_eq!(
                cells[5..].to_vec(),
                vec![
                    json!("192.168.0.2"),
                    json!("<none>"),
                    json!("<unknown>"),
                    json!("<unknown>"),
                    json!("<unknown>")
                ]
            );
        }
        assert_eq!(
            names(&columns("", "nodes")),
            [
                "Name",
                "Status",
                "Roles",
                "Age",
                "Version",
                "Internal-IP",
                "External-IP",
                "OS-Image",
                "Kernel-Version",
                "Container-Runtime"
            ]
        );
    }

    #[test]
    fn deployment_cells() {
        let d = |spec: Value, status: Value| json!({"metadata": {"name": "web", "creationTimestamp": CREATED}, "spec": spec, "status": status});
        let template = json!({"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}, {"name": "side", "image": "busybox"}]}});
        let cases: Vec<(Value, Vec<Value>)> = vec![
            (
                d(
                    json!({"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template}),
                    json!({"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}),
                ),
                vec![
                    json!("web"),
                    json!("2/3"),
                    json!(3),
                    json!(2),
                    json!("5m"),
                    json!("nginx,side"),
                    json!("nginx:1.27,busybox"),
                    json!("app=web"),
                ],
            ),
            (
                d(json!({}), json!({})),
                vec![
                    json!("web"),
                    json!("0/1"),
                    json!(0),
                    json!(0),
                    json!("5m"),
                    json!(""),
                    json!(""),
                    json!(""),
                ],
            ),
            (
                d(
                    json!({"replicas": 0, "selector": {"matchLabels": {"b": "2", "a": "1"},
                    "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}, {"key": "x", "operator": "DoesNotExist"}]}}),
                    json!({}),
                ),
                vec![
                    json!("web"),
                    json!("0/0"),
                    json!(0),
                    json!(0),
                    json!("5m"),
                    json!(""),
                    json!(""),
                    json!("a=1,b=2,env in (dev,prod),!x"),
                ],
            ),
            (
                d(
                    json!({"selector": {"matchExpressions": [{"key": "x", "operator": "Bogus"}]}}),
                    json!({}),
                ),
                vec![
                    json!("web"),
                    json!("0/1"),
                    json!(0),
                    json!(0),
                    json!("5m"),
                    json!(""),
                    json!(""),
                    json!("<invalid>"),
                ],
            ),
        ];
        for (obj, want) in cases {
            assert_eq!(row("apps", "deployments", &obj, T0 + 300), want, "{obj}");
        }
        assert_eq!(
            names(&columns("apps", "deployments")),
            [
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
    }

    #[test]
    fn workload_cells() {
        let meta = json!({"name": "w", "creationTimestamp": CREATED});
        let rs = json!({"metadata": meta, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "w"}},
            "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}, "status": {"replicas": 2, "readyReplicas": 1}});
        assert_eq!(
            row("apps", "replicasets", &rs, T0 + 60),
            vec![
                json!("w"),
                json!(2),
                json!(2),
                json!(1),
                json!("60s"),
                json!("c"),
                json!("i"),
                json!("app=w")
            ]
        );
        let sts =
            json!({"metadata": meta, "spec": {"replicas": 3}, "status": {"readyReplicas": 3}});
        assert_eq!(
            row("apps", "statefulsets", &sts, T0 + 60),
            vec![json!("w"), json!("3/3"), json!("60s"), json!(""), json!("")]
        );
        let ds = json!({"metadata": meta, "spec": {"template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}}}},
            "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1, "updatedNumberScheduled": 2, "numberAvailable": 1}});
        assert_eq!(
            row("apps", "daemonsets", &ds, T0 + 60),
            vec![
                json!("w"),
                json!(2),
                json!(2),
                json!(1),
                json!(2),
                json!(1),
                json!("kubernetes.io/os=linux"),
                json!("60s"),
                json!(""),
                json!(""),
                json!("<none>")
            ]
        );
        assert_eq!(
            names(&columns("apps", "daemonsets")),
            [
                "Name",
                "Desired",
                "Current",
                "Ready",
                "Up-to-date",
                "Available",
                "Node Selector",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
    }

    #[test]
    fn job_and_cronjob_cells() {
        let job = |spec: Value, status: Value| json!({"metadata": {"name": "j", "creationTimestamp": CREATED}, "spec": spec, "status": status});
        let cases: Vec<(Value, &str, &str, &str)> = vec![
            (
                job(json!({"completions": 1, "parallelism": 1}), json!({})),
                "Running",
                "0/1",
                "",
            ),
            (
                job(
                    json!({"completions": 3}),
                    json!({"succeeded": 3, "startTime": ts(0), "completionTime": ts(95),
                    "conditions": [{"type": "Complete", "status": "True"}]}),
                ),
                "Complete",
                "3/3",
                "95s",
            ),
            (
                job(json!({"parallelism": 4}), json!({"startTime": ts(0)})),
                "Running",
                "0/1 of 4",
                "10m",
            ),
            (
                job(
                    json!({}),
                    json!({"conditions": [{"type": "Failed", "status": "True"}]}),
                ),
                "Failed",
                "0/1",
                "",
            ),
            (
                job(
                    json!({}),
                    json!({"conditions": [{"type": "Suspended", "status": "True"}]}),
                ),
                "Suspended",
                "0/1",
                "",
            ),
        ];
        for (j, status, completions, duration) in cases {
            let cells = row("batch", "jobs", &j, T0 + 600);
            assert_eq!(cells[1], json!(status), "{j}");
            assert_eq!(cells[2], json!(completions), "{j}");
            assert_eq!(cells[3], json!(duration), "{j}");
        }
        let cj = json!({"metadata": {"name": "cj", "creationTimestamp": CREATED},
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}},
            "status": {"active": [{"name": "x"}], "lastScheduleTime": ts(300)}});
        assert_eq!(
            row("batch", "cronjobs", &cj, T0 + 600),
            vec![
                json!("cj"),
                json!("*/5 * * * *"),
                json!("<none>"),
                json!("False"),
                json!(1),
                json!("5m"),
                json!("10m"),
                json!("c"),
                json!("busybox"),
                json!("<none>")
            ]
        );
        assert_eq!(
            names(&columns("batch", "cronjobs")),
            [
                "Name",
                "Schedule",
                "Timezone",
                "Suspend",
                "Active",
                "Last Schedule",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
    }

    #[test]
    fn service_cells() {
        let svc = |spec: Value, status: Value| json!({"metadata": {"name": "s", "creationTimestamp": CREATED}, "spec": spec, "status": status});
        let cases: Vec<(Value, Vec<Value>)> = vec![
            (
                svc(
                    json!({"clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"], "ports": [{"port": 443, "protocol": "TCP"}]}),
                    json!({}),
                ),
                vec![
                    json!("s"),
                    json!("ClusterIP"),
                    json!("10.96.0.1"),
                    json!("<none>"),
                    json!("443/TCP"),
                    json!("2d"),
                    json!("<none>"),
                ],
            ),
            (
                svc(
                    json!({"type": "NodePort", "clusterIP": "10.96.0.2", "selector": {"app": "x"},
                    "ports": [{"port": 80, "nodePort": 30080}, {"port": 53, "protocol": "UDP"}]}),
                    json!({}),
                ),
                vec![
                    json!("s"),
                    json!("NodePort"),
                    json!("10.96.0.2"),
                    json!("<none>"),
                    json!("80:30080/TCP,53/UDP"),
                    json!("2d"),
                    json!("app=x"),
                ],
            ),
            (
                svc(
                    json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.3"], "ports": []}),
                    json!({}),
                ),
                vec![
                    json!("s"),
                    json!("LoadBalancer"),
                    json!("10.96.0.3"),
                    json!("<pending>"),
                    json!("<none>"),
                    json!("2d"),
                    json!("<none>"),
                ],
            ),
            (
                svc(
                    json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.3"], "externalIPs": ["1.2.3.4"]}),
                    json!({"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "lb.example.com"}]}}),
                ),
                vec![
                    json!("s"),
                    json!("LoadBalancer"),
                    json!("10.96.0.3"),
                    json!("5.6.7.8,lb.example.com,1.2.3.4"),
                    json!("<none>"),
                    json!("2d"),
                    json!("<none>"),
                ],
            ),
            (
                svc(
                    json!({"type": "ExternalName", "externalName": "example.com"}),
                    json!({}),
                ),
                vec![
                    json!("s"),
                    json!("ExternalName"),
                    json!("<none>"),
                    json!("example.com"),
                    json!("<none>"),
                    json!("2d"),
                    json!("<none>"),
                ],
            ),
            (
                svc(
                    json!({"clusterIP": "None", "clusterIPs": ["None"]}),
                    json!({}),
                ),
                vec![
                    json!("s"),
                    json!("ClusterIP"),
                    json!("None"),
                    json!("<none>"),
                    json!("<none>"),
                    json!("2d"),
                    json!("<none>"),
                ],
            ),
        ];
        for (s, want) in cases {
            assert_eq!(row("", "services", &s, T0 + 2 * 86400), want, "{s}");
        }
    }

    #[test]
    fn simple_core_cells() {
        let meta = json!({"name": "x", "creationTimestamp": CREATED});
        let now = T0 + 30;
        let cases: Vec<(&str, &str, Value, Vec<Value>)> = vec![
            (
                "",
                "namespaces",
                json!({"metadata": meta, "status": {"phase": "Active"}}),
                vec![json!("x"), json!("Active"), json!("30s")],
            ),
            (
                "",
                "configmaps",
                json!({"metadata": meta, "data": {"a": "1", "b": "2"}, "binaryData": {"c": ""}}),
                vec![json!("x"), json!(3), json!("30s")],
            ),
            (
                "",
                "configmaps",
                json!({"metadata": meta}),
                vec![json!("x"), json!(0), json!("30s")],
            ),
            (
                "",
                "secrets",
                json!({"metadata": meta, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}),
                vec![
                    json!("x"),
                    json!("kubernetes.io/tls"),
                    json!(2),
                    json!("30s"),
                ],
            ),
            (
                "",
                "secrets",
                json!({"metadata": meta}),
                vec![json!("x"), json!("Opaque"), json!(0), json!("30s")],
            ),
            (
                "",
                "serviceaccounts",
                json!({"metadata": meta}),
                vec![json!("x"), json!(0), json!("30s")],
            ),
            (
                "",
                "endpoints",
                json!({"metadata": meta}),
                vec![json!("x"), json!("<none>"), json!("30s")],
            ),
            (
                "",
                "endpoints",
                json!({"metadata": meta, "subsets": [
                {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]}]}),
                vec![
                    json!("x"),
                    json!("10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more..."),
                    json!("30s"),
                ],
            ),
            (
                "",
                "endpoints",
                json!({"metadata": meta, "subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 6443}]}]}),
                vec![json!("x"), json!("[fd00::1]:6443"), json!("30s")],
            ),
            (
                "coordination.k8s.io",
                "leases",
                json!({"metadata": meta, "spec": {"holderIdentity": "me"}}),
                vec![json!("x"), json!("me"), json!("30s")],
            ),
            (
                "discovery.k8s.io",
                "endpointslices",
                json!({"metadata": meta, "addressType": "IPv4",
                "ports": [{"port": 80}, {"name": "dns"}], "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}]}),
                vec![
                    json!("x"),
                    json!("IPv4"),
                    json!("80,dns"),
                    json!("10.0.0.1,10.0.0.2"),
                    json!("30s"),
                ],
            ),
            (
                "discovery.k8s.io",
                "endpointslices",
                json!({"metadata": meta, "addressType": "IPv4"}),
                vec![
                    json!("x"),
                    json!("IPv4"),
                    json!("<unset>"),
                    json!("<unset>"),
                    json!("30s"),
                ],
            ),
            (
                "rbac.authorization.k8s.io",
                "rolebindings",
                json!({"metadata": meta, "roleRef": {"kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"}, {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}, {"kind": "User", "name": "bob"}]}),
                vec![
                    json!("x"),
                    json!("ClusterRole/view"),
                    json!("30s"),
                    json!("alice, bob"),
                    json!("devs"),
                    json!("ns/sa"),
                ],
            ),
            (
                "policy",
                "poddisruptionbudgets",
                json!({"metadata": meta, "spec": {"minAvailable": 1}, "status": {"disruptionsAllowed": 0}}),
                vec![json!("x"), json!("1"), json!("N/A"), json!(0), json!("30s")],
            ),
            (
                "policy",
                "poddisruptionbudgets",
                json!({"metadata": meta, "spec": {"maxUnavailable": "50%"}, "status": {"disruptionsAllowed": 2}}),
                vec![
                    json!("x"),
                    json!("N/A"),
                    json!("50%"),
                    json!(2),
                    json!("30s"),
                ],
            ),
            (
                "scheduling.k8s.io",
                "priorityclasses",
                json!({"metadata": meta, "value": 2000001000, "globalDefault": false}),
                vec![
                    json!("x"),
                    json!(2000001000),
                    json!(false),
                    json!("30s"),
                    json!("PreemptLowerPriority"),
                ],
            ),
            (
                "storage.k8s.io",
                "storageclasses",
                json!({"metadata": {"name": "std", "creationTimestamp": CREATED,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}, "provisioner": "rancher.io/local-path",
                "volumeBindingMode": "WaitForFirstConsumer"}),
                vec![
                    json!("std (default)"),
                    json!("rancher.io/local-path"),
                    json!("Delete"),
                    json!("WaitForFirstConsumer"),
                    json!(false),
                    json!("30s"),
                ],
            ),
            (
                "apps",
                "controllerrevisions",
                json!({"metadata": {"name": "x", "creationTimestamp": CREATED,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "ds", "controller": true}]}, "revision": 3}),
                vec![
                    json!("x"),
                    json!("daemonset.apps/ds"),
                    json!(3),
                    json!("30s"),
                ],
            ),
            (
                "",
                "resourcequotas",
                json!({"metadata": meta, "status": {
                "hard": {"pods": "10", "limits.cpu": "2", "requests.cpu": "1", "limits.memory": "2Gi"},
                "used": {"pods": "1", "requests.cpu": "100m"}}}),
                vec![
                    json!("x"),
                    json!("pods: 1/10, requests.cpu: 100m/1"),
                    json!("limits.cpu: 0/2, limits.memory: 0/2Gi"),
                    json!("30s"),
                ],
            ),
            (
                "",
                "persistentvolumeclaims",
                json!({"metadata": meta, "spec": {"storageClassName": "std", "volumeName": "pv1"},
                "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"]}}),
                vec![
                    json!("x"),
                    json!("Bound"),
                    json!("pv1"),
                    json!("1Gi"),
                    json!("RWO,RWX"),
                    json!("std"),
                    json!("<unset>"),
                    json!("30s"),
                    json!("Filesystem"),
                ],
            ),
            (
                "",
                "persistentvolumes",
                json!({"metadata": meta, "spec": {"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Delete", "claimRef": {"namespace": "ns", "name": "c"}, "storageClassName": "std"},
                "status": {"phase": "Bound"}}),
                vec![
                    json!("x"),
                    json!("5Gi"),
                    json!("RWO"),
                    json!("Delete"),
                    json!("Bound"),
                    json!("ns/c"),
                    json!("std"),
                    json!("<unset>"),
                    json!(""),
                    json!("30s"),
                    json!("Filesystem"),
                ],
            ),
        ];
        for (group, plural, obj, want) in cases {
            assert_eq!(
                row(group, plural, &obj, now),
                want,
                "{group}/{plural}: {obj}"
            );
        }
    }

    #[test]
    fn event_cells() {
        let ev = json!({
            "metadata": {"name": "p.1234", "namespace": "default", "creationTimestamp": CREATED},
            "involvedObject": {"kind": "Pod", "name": "p", "fieldPath": "spec.containers{c}"},
            "reason": "Pulled", "message": "Successfully pulled image \"nginx\"\n", "type": "Normal",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": ts(0), "lastTimestamp": ts(240), "count": 3,
        });
        assert_eq!(
            row("", "events", &ev, T0 + 300),
            vec![
                json!("60s"),
                json!("Normal"),
                json!("Pulled"),
                json!("pod/p"),
                json!("spec.containers{c}"),
                json!("kubelet, node-1"),
                json!("Successfully pulled image \"nginx\""),
                json!("5m"),
                json!(3),
                json!("p.1234")
            ]
        );
        let new_style = json!({
            "metadata": {"name": "e", "creationTimestamp": CREATED},
            "involvedObject": {"kind": "Node", "name": ""},
            "reason": "Scheduled", "message": "m", "type": "Normal",
            "eventTime": "2025-11-25T10:00:00.000000Z",
            "reportingComponent": "default-scheduler", "reportingInstance": "",
        });
        assert_eq!(
            row("", "events", &new_style, T0 + 5),
            vec![
                json!("5s"),
                json!("Normal"),
                json!("Scheduled"),
                json!("node"),
                json!(""),
                json!("default-scheduler"),
                json!("m"),
                json!("5s"),
                json!(1),
                json!("e")
            ]
        );
        let v1 = json!({
            "metadata": {"name": "e", "creationTimestamp": CREATED},
            "regarding": {"kind": "Pod", "name": "p"}, "note": "hi", "reason": "R", "type": "Warning",
            "eventTime": "2025-11-25T10:00:00.000000Z", "reportingController": "ctrl", "reportingInstance": "inst",
            "series": {"count": 7, "lastObservedTime": "2025-11-25T10:01:00.000000Z"},
        });
        assert_eq!(
            row("events.k8s.io", "events", &v1, T0 + 120),
            vec![
                json!("60s"),
                json!("Warning"),
                json!("R"),
                json!("pod/p"),
                json!(""),
                json!("ctrl, inst"),
                json!("hi"),
                json!("2m"),
                json!(7),
                json!("e")
            ]
        );
        let cols = columns("", "events");
        assert_eq!(
            names(&cols),
            [
                "Last Seen",
                "Type",
                "Reason",
                "Object",
                "Subobject",
                "Source",
                "Message",
                "First Seen",
                "Count",
                "Name"
            ]
        );
        let prio: Vec<i32> = cols.iter().map(|c| c.priority).collect();
        assert_eq!(prio, [0, 0, 0, 0, 1, 1, 0, 1, 1, 1]);
        assert_eq!(cols[9].format, "name");
    }

    #[test]
    fn default_table_columns_and_cells() {
        for (group, plural) in [
            ("rbac.authorization.k8s.io", "roles"),
            ("rbac.authorization.k8s.io", "clusterroles"),
            ("", "limitranges"),
            ("apiextensions.k8s.io", "customresourcedefinitions"),
            ("example.com", "widgets"),
        ] {
            let cols = columns(group, plural);
            assert_eq!(names(&cols), ["Name", "Created At"], "{plural}");
            assert_eq!(
                (cols[0].type_, cols[0].format, cols[0].priority),
                ("string", "name", 0)
            );
            assert_eq!(
                (cols[1].type_, cols[1].format, cols[1].priority),
                ("date", "", 0)
            );
        }
        let cases: Vec<(Value, Vec<Value>)> = vec![
            (
                json!({"metadata": {"name": "admin", "creationTimestamp": CREATED}}),
                vec![json!("admin"), json!(CREATED)],
            ),
            (
                json!({"metadata": {"name": "tz", "creationTimestamp": "2025-11-25T12:00:00+02:00"}}),
                vec![json!("tz"), json!(CREATED)],
            ),
            (
                json!({"metadata": {"name": "none"}}),
                vec![json!("none"), json!("0001-01-01T00:00:00Z")],
            ),
        ];
        for (obj, want) in cases {
            assert_eq!(row("rbac.authorization.k8s.io", "roles", &obj, T0), want);
        }
    }

    #[test]
    fn age_unknown_without_creation_timestamp() {
        let cm = json!({"metadata": {"name": "x"}});
        assert_eq!(cell("", "configmaps", &cm, T0, "Age"), json!("<unknown>"));
    }

    #[test]
    fn every_row_has_a_cell_per_column() {
        let objects = [
            json!({}),
            json!({"metadata": {"name": "x", "creationTimestamp": CREATED}, "spec": {}, "status": {}}),
        ];
        for r in crate::registry::RESOURCES {
            for o in &objects {
                assert_eq!(
                    row(r.group, r.plural, o, T0).len(),
                    columns(r.group, r.plural).len(),
                    "{}/{}",
                    r.group,
                    r.plural
                );
            }
        }
    }

    #[test]
    fn table_json() {
        let running = pod(
            one_container(),
            json!({
                "phase": "Running",
                "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "state": {"running": {}}}],
            }),
        );
        let mut done = pod(one_container(), json!({"phase": "Succeeded"}));
        done["metadata"]["name"] = json!("done");
        let t = table(
            "",
            "pods",
            &[running.clone(), done],
            T0 + 10,
            "42",
            Some("tok"),
        );
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(
            t["metadata"],
            json!({"resourceVersion": "42", "continue": "tok"})
        );
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 9);
        assert_eq!(
            t["columnDefinitions"][0],
            json!({"name": "Name", "type": "string", "format": "name", "description": NAME_DESC, "priority": 0})
        );
        assert_eq!(t["columnDefinitions"][5]["priority"], 1);
        let rows = t["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0]["cells"],
            json!(["p", "1/1", "Running", "0", "10s", "<none>", "<none>", "<none>", "<none>"])
        );
        assert!(rows[0].get("conditions").is_none());
        assert_eq!(
            rows[0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": running["metadata"]})
        );
        assert_eq!(
            rows[1]["conditions"],
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}])
        );

        let empty = table("rbac.authorization.k8s.io", "roles", &[], T0, "", None);
        assert_eq!(empty["metadata"], json!({}));
        assert_eq!(empty["rows"], json!([]));
        assert_eq!(
            empty["columnDefinitions"][1],
            json!({"name": "Created At", "type": "date", "format": "", "description": AGE_DESC, "priority": 0})
        );
    }

    #[test]
    fn label_selector_formatting() {
        let cases: Vec<(Value, &str)> = vec![
            (Value::Null, "<none>"),
            (json!({}), "<none>"),
            (
                json!({"matchLabels": {"app": "x", "tier": "web"}}),
                "app=x,tier=web",
            ),
            (
                json!({"matchExpressions": [{"key": "k", "operator": "NotIn", "values": ["b", "a"]}, {"key": "e", "operator": "Exists"}]}),
                "e,k notin (a,b)",
            ),
            (
                json!({"matchExpressions": [{"key": "k", "operator": "In", "values": []}]}),
                "<error>",
            ),
        ];
        for (sel, want) in cases {
            assert_eq!(format_label_selector(&sel), want, "{sel}");
        }
        assert_eq!(format_labels(&json!({"b": "2", "a": "1"})), "a=1,b=2");
        assert_eq!(format_labels(&json!({})), "<none>");
    }
}
