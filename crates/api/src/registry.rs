//! The resource registry: every resource ferry serves, described the way
//! upstream kube-apiserver v1.33 describes it in discovery.
//!
//! The data was taken from upstream's discovery documents
//! (`kubernetes/kubernetes` `api/discovery/api__v1.json`,
//! `apis__<group>__<version>.json`, `aggregated_v2.json` and `apis.json`),
//! cross-checked against the REST storage registration in
//! `pkg/registry/core/rest/storage_core.go`.
//!
//! Conventions, all mirroring upstream discovery:
//!
//! * [`RESOURCES`] is ordered by group in the order of `/apis` (core first),
//!   versions preferred first, and within a group-version by plural name
//!   (upstream sorts resources alphabetically).
//! * Verbs are listed in upstream's (alphabetical) order.
//! * Subresources are listed in upstream's (alphabetical) order.
//! * A [`Subresource`] whose `group` and `version` are both empty responds
//!   with a kind of the parent's group-version; this is how upstream's
//!   aggregated discovery (`responseKind`) and `/api/v1` list them.
//!
//! Upstream v1.33 serves more than this table (for example
//! `resource.k8s.io`); those are not served by ferry and are deliberately
//! absent.

/// Verbs of an ordinary read-write collection, in upstream's order.
const RW: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Verbs of a `status`-like subresource (also `scale`, `approval`, ...).
const GPU: &[&str] = &["get", "patch", "update"];

/// Verbs of a create-only ("virtual") resource such as `tokenreviews`.
const CREATE: &[&str] = &["create"];

/// Verbs of a `proxy` subresource.
const PROXY: &[&str] = &["create", "delete", "get", "patch", "update"];

/// Verbs of the streaming `attach`, `exec` and `portforward` subresources.
const STREAM: &[&str] = &["create", "get"];

/// The `all` category (what `kubectl get all` lists).
const ALL: &[&str] = &["all"];

/// The `api-extensions` category (webhooks, admission policies, CRDs).
const API_EXT: &[&str] = &["api-extensions"];

/// Nothing: no short names, no categories or no subresources.
const NONE: &[&str] = &[];

/// A resource served by the API server, as discovery describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResourceInfo {
    /// API group; `""` for the core (legacy, `/api`) group.
    pub group: &'static str,
    /// API version within the group, e.g. `"v1"`.
    pub version: &'static str,
    /// Kind of the objects, e.g. `"Pod"`.
    pub kind: &'static str,
    /// Plural resource name used in URLs, e.g. `"pods"`.
    pub plural: &'static str,
    /// Singular resource name, e.g. `"pod"`.
    pub singular: &'static str,
    /// Whether objects live in a namespace (`scope: Namespaced`).
    pub namespaced: bool,
    /// Short names (`kubectl get po`), in upstream's order.
    pub short_names: &'static [&'static str],
    /// Categories (`kubectl get all`), in upstream's order.
    pub categories: &'static [&'static str],
    /// Verbs on the resource itself, in upstream's order.
    pub verbs: &'static [&'static str],
    /// Subresources (`pods/status`, ...), in upstream's order.
    pub subresources: &'static [Subresource],
    /// Whether a CustomResourceDefinition defines it (then its objects are kept under their
    /// group, as upstream's `/registry/<group>/<plural>`, so a custom plural never meets a
    /// built-in one).
    pub custom: bool,
}

/// A subresource of a [`ResourceInfo`], e.g. `pods/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subresource {
    /// Subresource name, e.g. `"status"`.
    pub name: &'static str,
    /// Kind of the request/response body, e.g. `"Pod"`, `"Scale"`,
    /// `"Binding"`, `"Eviction"`.
    pub kind: &'static str,
    /// Group of `kind`; empty (with `version` empty) when it is the parent
    /// resource's group-version, as upstream discovery reports it.
    pub group: &'static str,
    /// Version of `kind`; empty when it is the parent's group-version.
    pub version: &'static str,
    /// Verbs on the subresource, in upstream's order.
    pub verbs: &'static [&'static str],
}

impl Subresource {
    /// A subresource whose kind is in the parent's group-version.
    const fn local(name: &'static str, kind: &'static str, verbs: &'static [&'static str]) -> Self {
        Subresource {
            name,
            kind,
            group: "",
            version: "",
            verbs,
        }
    }

    /// A subresource whose kind lives in another group-version.
    const fn foreign(
        name: &'static str,
        group: &'static str,
        version: &'static str,
        kind: &'static str,
        verbs: &'static [&'static str],
    ) -> Self {
        Subresource {
            name,
            kind,
            group,
            version,
            verbs,
        }
    }

    /// `status` (get, patch, update) of the parent kind.
    pub const fn status(kind: &'static str) -> Self {
        Self::local("status", kind, GPU)
    }

    /// `scale` (get, patch, update) answering with `autoscaling/v1` `Scale`.
    pub const fn scale() -> Self {
        Self::foreign("scale", "autoscaling", "v1", "Scale", GPU)
    }

    /// Whether the subresource's kind is in the parent's group-version
    /// (upstream then leaves group and version empty).
    pub fn in_parent_group_version(&self) -> bool {
        self.group.is_empty() && self.version.is_empty()
    }
}

impl ResourceInfo {
    /// `apiVersion` of the objects: `"v1"` for core, else `"group/version"`.
    pub fn api_version(&self) -> String {
        if self.is_core() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Kind of the list objects, e.g. `"PodList"`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Whether the resource is in the core (legacy, `/api`) group.
    pub fn is_core(&self) -> bool {
        self.group.is_empty()
    }

    /// Whether the resource itself supports `verb`.
    pub fn has_verb(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }

    /// The subresource called `name`, if any.
    pub fn subresource(&self, name: &str) -> Option<&'static Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }
}

/// Shorthand for a table row.
#[allow(clippy::too_many_arguments)]
const fn r(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    verbs: &'static [&'static str],
    subresources: &'static [Subresource],
) -> ResourceInfo {
    ResourceInfo {
        group,
        version,
        kind,
        plural,
        singular,
        namespaced,
        short_names,
        categories,
        verbs,
        subresources,
        custom: false,
    }
}

const NS: bool = true;
const CLUSTER: bool = false;

/// Every resource ferry serves, in discovery order (see the module docs).
#[rustfmt::skip]
pub static RESOURCES: &[ResourceInfo] = &[
    // ---- core v1 (/api/v1) ----
    r("", "v1", "Binding", "bindings", "binding", NS, NONE, NONE, CREATE, &[]),
    r("", "v1", "ComponentStatus", "componentstatuses", "componentstatus", CLUSTER, &["cs"], NONE, &["get", "list"], &[]),
    r("", "v1", "ConfigMap", "configmaps", "configmap", NS, &["cm"], NONE, RW, &[]),
    r("", "v1", "Endpoints", "endpoints", "endpoints", NS, &["ep"], NONE, RW, &[]),
    r("", "v1", "Event", "events", "event", NS, &["ev"], NONE, RW, &[]),
    r("", "v1", "LimitRange", "limitranges", "limitrange", NS, &["limits"], NONE, RW, &[]),
    // Namespaces have no deletecollection upstream.
    r("", "v1", "Namespace", "namespaces", "namespace", CLUSTER, &["ns"], NONE,
        &["create", "delete", "get", "list", "patch", "update", "watch"],
        &[Subresource::local("finalize", "Namespace", &["update"]), Subresource::status("Namespace")]),
    r("", "v1", "Node", "nodes", "node", CLUSTER, &["no"], NONE, RW,
        &[Subresource::local("proxy", "NodeProxyOptions", PROXY), Subresource::status("Node")]),
    r("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", "persistentvolumeclaim", NS, &["pvc"], NONE, RW,
        &[Subresource::status("PersistentVolumeClaim")]),
    r("", "v1", "PersistentVolume", "persistentvolumes", "persistentvolume", CLUSTER, &["pv"], NONE, RW,
        &[Subresource::status("PersistentVolume")]),
    r("", "v1", "Pod", "pods", "pod", NS, &["po"], ALL, RW, &[
        Subresource::local("attach", "PodAttachOptions", STREAM),
        Subresource::local("binding", "Binding", CREATE),
        Subresource::local("ephemeralcontainers", "Pod", GPU),
        Subresource::foreign("eviction", "policy", "v1", "Eviction", CREATE),
        Subresource::local("exec", "PodExecOptions", STREAM),
        Subresource::local("log", "Pod", &["get"]),
        Subresource::local("portforward", "PodPortForwardOptions", STREAM),
        Subresource::local("proxy", "PodProxyOptions", PROXY),
        // `resize` is registered only while the InPlacePodVerticalScaling
        // feature gate is on; it is beta and on by default in v1.33, so a
        // default v1.33 server lists it (kind Pod; get, patch, update).
        // Upstream's checked-in api/discovery/api__v1.json omits it.
        Subresource::local("resize", "Pod", GPU),
        Subresource::status("Pod"),
    ]),
    r("", "v1", "PodTemplate", "podtemplates", "podtemplate", NS, NONE, NONE, RW, &[]),
    r("", "v1", "ReplicationController", "replicationcontrollers", "replicationcontroller", NS, &["rc"], ALL, RW,
        &[Subresource::scale(), Subresource::status("ReplicationController")]),
    r("", "v1", "ResourceQuota", "resourcequotas", "resourcequota", NS, &["quota"], NONE, RW,
        &[Subresource::status("ResourceQuota")]),
    r("", "v1", "Secret", "secrets", "secret", NS, NONE, NONE, RW, &[]),
    r("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", NS, &["sa"], NONE, RW,
        &[Subresource::foreign("token", "authentication.k8s.io", "v1", "TokenRequest", CREATE)]),
    r("", "v1", "Service", "services", "service", NS, &["svc"], ALL, RW,
        &[Subresource::local("proxy", "ServiceProxyOptions", PROXY), Subresource::status("Service")]),
    // ---- apiregistration.k8s.io/v1 (the aggregator's own group, first in `/apis`) ----
    r("apiregistration.k8s.io", "v1", "APIService", "apiservices", "apiservice", CLUSTER, NONE, API_EXT, RW,
        &[Subresource::status("APIService")]),
    // ---- apps/v1 ----
    r("apps", "v1", "ControllerRevision", "controllerrevisions", "controllerrevision", NS, NONE, NONE, RW, &[]),
    r("apps", "v1", "DaemonSet", "daemonsets", "daemonset", NS, &["ds"], ALL, RW, &[Subresource::status("DaemonSet")]),
    r("apps", "v1", "Deployment", "deployments", "deployment", NS, &["deploy"], ALL, RW,
        &[Subresource::scale(), Subresource::status("Deployment")]),
    r("apps", "v1", "ReplicaSet", "replicasets", "replicaset", NS, &["rs"], ALL, RW,
        &[Subresource::scale(), Subresource::status("ReplicaSet")]),
    r("apps", "v1", "StatefulSet", "statefulsets", "statefulset", NS, &["sts"], ALL, RW,
        &[Subresource::scale(), Subresource::status("StatefulSet")]),
    // ---- events.k8s.io/v1 (same storage as core events) ----
    r("events.k8s.io", "v1", "Event", "events", "event", NS, &["ev"], NONE, RW, &[]),
    // ---- authentication.k8s.io/v1 ----
    r("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", "selfsubjectreview", CLUSTER, NONE, NONE, CREATE, &[]),
    r("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", "tokenreview", CLUSTER, NONE, NONE, CREATE, &[]),
    // ---- authorization.k8s.io/v1 ----
    r("authorization.k8s.io", "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews", "localsubjectaccessreview", NS, NONE, NONE, CREATE, &[]),
    r("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", "selfsubjectaccessreview", CLUSTER, NONE, NONE, CREATE, &[]),
    r("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", "selfsubjectrulesreview", CLUSTER, NONE, NONE, CREATE, &[]),
    r("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", "subjectaccessreview", CLUSTER, NONE, NONE, CREATE, &[]),
    // ---- autoscaling/v2 (preferred), then autoscaling/v1 ----
    // Categories are ["all"] in v1.33; later upstream versions add
    // "podautoscalers" (seen in a newer api/discovery snapshot), not v1.33.
    r("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", "horizontalpodautoscaler", NS, &["hpa"], ALL, RW,
        &[Subresource::status("HorizontalPodAutoscaler")]),
    r("autoscaling", "v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", "horizontalpodautoscaler", NS, &["hpa"], ALL, RW,
        &[Subresource::status("HorizontalPodAutoscaler")]),
    // ---- batch/v1 ----
    r("batch", "v1", "CronJob", "cronjobs", "cronjob", NS, &["cj"], ALL, RW, &[Subresource::status("CronJob")]),
    r("batch", "v1", "Job", "jobs", "job", NS, NONE, ALL, RW, &[Subresource::status("Job")]),
    // ---- certificates.k8s.io/v1 ----
    r("certificates.k8s.io", "v1", "CertificateSigningRequest", "certificatesigningrequests", "certificatesigningrequest", CLUSTER, &["csr"], NONE, RW,
        &[Subresource::local("approval", "CertificateSigningRequest", GPU), Subresource::status("CertificateSigningRequest")]),
    // ---- networking.k8s.io/v1 ----
    r("networking.k8s.io", "v1", "IngressClass", "ingressclasses", "ingressclass", CLUSTER, NONE, NONE, RW, &[]),
    r("networking.k8s.io", "v1", "Ingress", "ingresses", "ingress", NS, &["ing"], NONE, RW, &[Subresource::status("Ingress")]),
    r("networking.k8s.io", "v1", "IPAddress", "ipaddresses", "ipaddress", CLUSTER, &["ip"], NONE, RW, &[]),
    r("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", "networkpolicy", NS, &["netpol"], NONE, RW, &[]),
    r("networking.k8s.io", "v1", "ServiceCIDR", "servicecidrs", "servicecidr", CLUSTER, NONE, NONE, RW, &[Subresource::status("ServiceCIDR")]),
    // ---- policy/v1 ----
    r("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", "poddisruptionbudget", NS, &["pdb"], NONE, RW,
        &[Subresource::status("PodDisruptionBudget")]),
    // ---- rbac.authorization.k8s.io/v1 ----
    r("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding", CLUSTER, NONE, NONE, RW, &[]),
    r("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", CLUSTER, NONE, NONE, RW, &[]),
    r("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", NS, NONE, NONE, RW, &[]),
    r("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", NS, NONE, NONE, RW, &[]),
    // ---- storage.k8s.io/v1 ----
    r("storage.k8s.io", "v1", "CSIDriver", "csidrivers", "csidriver", CLUSTER, NONE, NONE, RW, &[]),
    r("storage.k8s.io", "v1", "CSINode", "csinodes", "csinode", CLUSTER, NONE, NONE, RW, &[]),
    r("storage.k8s.io", "v1", "CSIStorageCapacity", "csistoragecapacities", "csistoragecapacity", NS, NONE, NONE, RW, &[]),
    r("storage.k8s.io", "v1", "StorageClass", "storageclasses", "storageclass", CLUSTER, &["sc"], NONE, RW, &[]),
    r("storage.k8s.io", "v1", "VolumeAttachment", "volumeattachments", "volumeattachment", CLUSTER, NONE, NONE, RW,
        &[Subresource::status("VolumeAttachment")]),
    // ---- admissionregistration.k8s.io/v1 ----
    r("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", "mutatingwebhookconfiguration", CLUSTER, NONE, API_EXT, RW, &[]),
    r("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy", "validatingadmissionpolicies", "validatingadmissionpolicy", CLUSTER, NONE, API_EXT, RW,
        &[Subresource::status("ValidatingAdmissionPolicy")]),
    r("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicyBinding", "validatingadmissionpolicybindings", "validatingadmissionpolicybinding", CLUSTER, NONE, API_EXT, RW, &[]),
    r("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations", "validatingwebhookconfiguration", CLUSTER, NONE, API_EXT, RW, &[]),
    // ---- apiextensions.k8s.io/v1 ----
    r("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", "customresourcedefinition", CLUSTER, &["crd", "crds"], API_EXT, RW,
        &[Subresource::status("CustomResourceDefinition")]),
    // ---- scheduling.k8s.io/v1 ----
    r("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", "priorityclass", CLUSTER, &["pc"], NONE, RW, &[]),
    // ---- coordination.k8s.io/v1 ----
    r("coordination.k8s.io", "v1", "Lease", "leases", "lease", NS, NONE, NONE, RW, &[]),
    // ---- node.k8s.io/v1 ----
    r("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", "runtimeclass", CLUSTER, NONE, NONE, RW, &[]),
    // ---- discovery.k8s.io/v1 ----
    r("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", NS, NONE, NONE, RW, &[]),
    // ---- flowcontrol.apiserver.k8s.io/v1: API Priority and Fairness ----
    r("flowcontrol.apiserver.k8s.io", "v1", "FlowSchema", "flowschemas", "flowschema", CLUSTER, NONE, NONE, RW,
        &[Subresource::status("FlowSchema")]),
    r("flowcontrol.apiserver.k8s.io", "v1", "PriorityLevelConfiguration", "prioritylevelconfigurations", "prioritylevelconfiguration", CLUSTER, NONE, NONE, RW,
        &[Subresource::status("PriorityLevelConfiguration")]),
    // ---- metrics.k8s.io/v1beta1: resource usage the server scrapes from the kubelets (what
    // metrics-server serves upstream through aggregation); not stored ----
    r("metrics.k8s.io", "v1beta1", "NodeMetrics", "nodes", "", CLUSTER, NONE, NONE, &["get", "list"], &[]),
    r("metrics.k8s.io", "v1beta1", "PodMetrics", "pods", "", NS, NONE, NONE, &["get", "list"], &[]),
];

/// Resources of API versions upstream serves only when `--runtime-config` turns them on
/// (alpha versions), in discovery order; [`served`] lists those turned on with [`RESOURCES`].
#[rustfmt::skip]
pub static OPTIONAL_RESOURCES: &[ResourceInfo] = &[
    // ---- admissionregistration.k8s.io/v1alpha1 ----
    r("admissionregistration.k8s.io", "v1alpha1", "MutatingAdmissionPolicy", "mutatingadmissionpolicies", "mutatingadmissionpolicy", CLUSTER, NONE, API_EXT, RW, &[]),
    r("admissionregistration.k8s.io", "v1alpha1", "MutatingAdmissionPolicyBinding", "mutatingadmissionpolicybindings", "mutatingadmissionpolicybinding", CLUSTER, NONE, API_EXT, RW, &[]),
];

/// The optional group-versions this process serves, fixed the first time anything asks.
static ENABLED: std::sync::OnceLock<Vec<(&'static str, &'static str)>> = std::sync::OnceLock::new();

/// Why optional versions cannot be turned on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnableError {
    /// Not one of [`OPTIONAL_RESOURCES`]' group-versions.
    #[error("unknown api group version {0:?} (optional ones: {known})", known = optional_versions().join(", "))]
    Unknown(String),
    /// The registry was read before: what it served cannot change any more.
    #[error("the API versions served were fixed before --runtime-config was read")]
    AlreadyFixed,
}

/// The optional group-versions ferry has, as `group/version`.
pub fn optional_versions() -> Vec<String> {
    let mut versions: Vec<String> = OPTIONAL_RESOURCES
        .iter()
        .map(|r| format!("{}/{}", r.group, r.version))
        .collect();
    versions.dedup();
    versions
}

/// Turns on the optional group-versions `enabled` (`group/version`) for the life of the
/// process, as upstream's `--runtime-config`; it must be called before anything reads the
/// registry (the OpenAPI model and the server's tables are built once from it).
pub fn enable(enabled: &[String]) -> Result<(), EnableError> {
    let mut versions = Vec::new();
    for wanted in enabled {
        let found = OPTIONAL_RESOURCES
            .iter()
            .find(|r| format!("{}/{}", r.group, r.version) == *wanted)
            .ok_or_else(|| EnableError::Unknown(wanted.clone()))?;
        if !versions.contains(&(found.group, found.version)) {
            versions.push((found.group, found.version));
        }
    }
    ENABLED.set(versions).map_err(|_| EnableError::AlreadyFixed)
}

/// Whether the optional `group`/`version` is served.
fn enabled(group: &str, version: &str) -> bool {
    ENABLED
        .get_or_init(Vec::new)
        .iter()
        .any(|(g, v)| *g == group && *v == version)
}

/// Whether the kind's group-version is served: every one of [`RESOURCES`], and the optional
/// ones turned on.
pub fn serves_version(group: &str, version: &str) -> bool {
    let optional = OPTIONAL_RESOURCES
        .iter()
        .any(|r| r.group == group && r.version == version);
    !optional || enabled(group, version)
}

/// Every resource served: [`RESOURCES`], then the optional ones turned on.
pub fn served() -> impl Iterator<Item = &'static ResourceInfo> {
    RESOURCES.iter().chain(
        OPTIONAL_RESOURCES
            .iter()
            .filter(|r| enabled(r.group, r.version)),
    )
}

/// Named API groups (everything but core) in upstream's `/apis` order, each
/// with its served versions, preferred first: `apiregistration.k8s.io`
/// first (the aggregator lists its own group before every APIService), then
/// by [`priority`]'s group priority. Upstream, with alpha/beta APIs on, lists
/// more; ferry does not serve those.
static GROUPS: &[(&str, &[&str])] = &[
    ("apiregistration.k8s.io", &["v1"]),
    ("apps", &["v1"]),
    ("events.k8s.io", &["v1"]),
    ("authentication.k8s.io", &["v1"]),
    ("authorization.k8s.io", &["v1"]),
    ("autoscaling", &["v2", "v1"]),
    ("batch", &["v1"]),
    ("certificates.k8s.io", &["v1"]),
    ("networking.k8s.io", &["v1"]),
    ("policy", &["v1"]),
    ("rbac.authorization.k8s.io", &["v1"]),
    ("storage.k8s.io", &["v1"]),
    ("admissionregistration.k8s.io", &["v1"]),
    ("apiextensions.k8s.io", &["v1"]),
    ("scheduling.k8s.io", &["v1"]),
    ("coordination.k8s.io", &["v1"]),
    ("node.k8s.io", &["v1"]),
    ("discovery.k8s.io", &["v1"]),
    ("flowcontrol.apiserver.k8s.io", &["v1"]),
    ("metrics.k8s.io", &["v1beta1"]),
];

/// The group priority the aggregator lists `apiregistration.k8s.io` with: above
/// every APIService's (at most 20000), as upstream's `APIRegistrationGroupPriority`.
pub const APIREGISTRATION_GROUP_PRIORITY: i32 = 20001;

/// The group and version priority (`groupPriorityMinimum`, `versionPriority`)
/// of a built-in group-version's APIService, as upstream's
/// `apiVersionPriorities` (`cmd/kube-apiserver/app/aggregator.go` merged
/// with `DefaultGenericAPIServicePriorities`), for the versions ferry serves;
/// `metrics.k8s.io` as metrics-server registers it.
pub fn priority(group: &str, version: &str) -> Option<(i32, i32)> {
    Some(match (group, version) {
        ("", "v1") => (18000, 1),
        ("apps", "v1") => (17800, 15),
        ("events.k8s.io", "v1") => (17750, 15),
        ("authentication.k8s.io", "v1") => (17700, 15),
        ("authorization.k8s.io", "v1") => (17600, 15),
        ("autoscaling", "v1") => (17500, 15),
        ("autoscaling", "v2") => (17500, 30),
        ("batch", "v1") => (17400, 15),
        ("certificates.k8s.io", "v1") => (17300, 15),
        ("networking.k8s.io", "v1") => (17200, 15),
        ("policy", "v1") => (17100, 15),
        ("rbac.authorization.k8s.io", "v1") => (17000, 15),
        ("storage.k8s.io", "v1") => (16800, 15),
        ("admissionregistration.k8s.io", "v1") => (16700, 15),
        ("admissionregistration.k8s.io", "v1alpha1") => (16700, 9),
        ("apiextensions.k8s.io", "v1") => (16700, 15),
        ("scheduling.k8s.io", "v1") => (16600, 15),
        ("coordination.k8s.io", "v1") => (16500, 15),
        ("node.k8s.io", "v1") => (16300, 15),
        ("discovery.k8s.io", "v1") => (16200, 15),
        ("flowcontrol.apiserver.k8s.io", "v1") => (16100, 21),
        ("metrics.k8s.io", "v1beta1") => (100, 100),
        _ => return None,
    })
}

/// The resource `plural` in `group`/`version` (`""` group for core).
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    served().find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource whose objects are of `kind` in `group`/`version`.
pub fn find_by_kind(group: &str, version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    served().find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// The named API groups (not core) in upstream's `/apis` order, each with
/// its versions, preferred version first.
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    GROUPS
        .iter()
        .map(|(group, versions)| {
            let mut versions = versions.to_vec();
            for r in OPTIONAL_RESOURCES.iter().filter(|r| r.group == *group) {
                if enabled(r.group, r.version) && !versions.contains(&r.version) {
                    versions.push(r.version);
                }
            }
            (*group, versions)
        })
        .collect()
}

/// Kubernetes' order of versions (upstream's `version.CompareKubeAwareVersionStrings`), highest
/// priority first: GA before beta before alpha, a higher major then a higher minor first; then
/// versions of another form, alphabetically.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    /// (major, stability 2 GA / 1 beta / 0 alpha, minor) of a Kubernetes-form version.
    fn parse(v: &str) -> Option<(u64, u8, u64)> {
        let rest = v.strip_prefix('v')?;
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let major: u64 = rest[..digits].parse().ok()?;
        let rest = &rest[digits..];
        if rest.is_empty() {
            return Some((major, 2, 0));
        }
        let (stability, minor) = if let Some(m) = rest.strip_prefix("beta") {
            (1, m)
        } else if let Some(m) = rest.strip_prefix("alpha") {
            (0, m)
        } else {
            return None;
        };
        Some((major, stability, minor.parse().ok()?))
    }
    match (parse(a), parse(b)) {
        (Some((ma, sa, na)), Some((mb, sb, nb))) => sb.cmp(&sa).then(mb.cmp(&ma)).then(nb.cmp(&na)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// All resources in `group`/`version`, in discovery order.
pub fn resources_in<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static ResourceInfo> + 'a {
    served().filter(move |r| r.group == group && r.version == version)
}

/// A resource known only at run time: a version of a CustomResourceDefinition, served with
/// every verb of a read-write collection and, if its version asks, `status` and `scale`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CustomResourceInfo {
    /// The CRD's `spec.group`.
    pub group: String,
    /// One of its versions.
    pub version: String,
    /// `spec.names.kind`.
    pub kind: String,
    /// `spec.names.plural`.
    pub plural: String,
    /// `spec.names.singular` (the kind in lower case when not given).
    pub singular: String,
    /// `spec.scope` is `Namespaced`.
    pub namespaced: bool,
    /// `spec.names.shortNames`.
    pub short_names: Vec<String>,
    /// `spec.names.categories`.
    pub categories: Vec<String>,
    /// The version has the `status` subresource.
    pub status: bool,
    /// The version has the `scale` subresource.
    pub scale: bool,
}

impl CustomResourceInfo {
    /// The [`ResourceInfo`] of this description, kept for the life of the process so it can be
    /// handed around as the built-in ones are: equal descriptions share one, so a CRD that is
    /// re-established unchanged (or a server restarted in tests) keeps no second copy. What is
    /// kept grows only with the number of distinct CRD versions ever served.
    pub fn intern(&self) -> &'static ResourceInfo {
        let kind = intern_str(&self.kind);
        let mut subresources = Vec::new();
        if self.scale {
            subresources.push(Subresource::scale());
        }
        if self.status {
            subresources.push(Subresource::status(kind));
        }
        // Upstream's (alphabetical) order: scale before status.
        let info = ResourceInfo {
            group: intern_str(&self.group),
            version: intern_str(&self.version),
            kind,
            plural: intern_str(&self.plural),
            singular: intern_str(&self.singular),
            namespaced: self.namespaced,
            short_names: intern_strs(&self.short_names),
            categories: intern_strs(&self.categories),
            verbs: RW,
            subresources: intern(subresources.into_boxed_slice()),
            custom: true,
        };
        intern(info)
    }
}

/// The one kept copy of `value` (leaked on first sight; equal values share it).
fn intern<T: Eq + std::hash::Hash + Send + Sync + 'static>(value: T) -> &'static T {
    use std::any::{Any, TypeId};
    use std::collections::{HashMap, HashSet};
    use std::sync::{LazyLock, Mutex};
    type Sets = HashMap<TypeId, Box<dyn Any + Send>>;
    static SETS: LazyLock<Mutex<Sets>> = LazyLock::new(|| Mutex::new(HashMap::new()));
    let mut sets = SETS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let set = sets
        .entry(TypeId::of::<T>())
        .or_insert_with(|| Box::new(HashSet::<&'static T>::new()));
    let Some(set) = set.downcast_mut::<HashSet<&'static T>>() else {
        unreachable!("one set per type id")
    };
    if let Some(kept) = set.get(&value) {
        return kept;
    }
    let kept: &'static T = Box::leak(Box::new(value));
    set.insert(kept);
    kept
}

/// The one kept copy of `s` (see [`CustomResourceInfo::intern`]).
pub(crate) fn intern_str(s: &str) -> &'static str {
    intern(Box::<str>::from(s))
}

fn intern_strs(list: &[String]) -> &'static [&'static str] {
    let interned: Box<[&'static str]> = list.iter().map(|s| intern_str(s)).collect();
    intern(interned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    #[test]
    fn versions_in_kubernetes_order() {
        let mut versions = vec![
            "v1alpha1",
            "v1",
            "foo1",
            "v2beta1",
            "v11alpha2",
            "v1beta2",
            "v2",
            "foo10",
            "v1beta1",
            "v12alpha1",
        ];
        versions.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(
            versions,
            [
                "v2",
                "v1",
                "v2beta1",
                "v1beta2",
                "v1beta1",
                "v12alpha1",
                "v11alpha2",
                "v1alpha1",
                "foo1",
                "foo10"
            ]
        );
    }

    #[test]
    fn custom_resources_are_interned_once() {
        let crontab = CustomResourceInfo {
            group: "stable.example.com".into(),
            version: "v1".into(),
            kind: "CronTab".into(),
            plural: "crontabs".into(),
            singular: "crontab".into(),
            namespaced: true,
            short_names: vec!["ct".into()],
            categories: vec!["all".into()],
            status: true,
            scale: true,
        };
        let a = crontab.intern();
        let b = crontab.clone().intern();
        assert!(std::ptr::eq(a, b));
        assert!(a.custom);
        assert_eq!(a.api_version(), "stable.example.com/v1");
        assert_eq!(a.short_names, &["ct"]);
        let names: Vec<&str> = a.subresources.iter().map(|s| s.name).collect();
        assert_eq!(names, ["scale", "status"]);
        let v2 = CustomResourceInfo {
            version: "v2".into(),
            ..crontab
        };
        assert!(!std::ptr::eq(a, v2.intern()));
        assert_eq!(v2.intern().plural.as_ptr(), a.plural.as_ptr());
    }

    #[test]
    fn group_version_plural_unique() {
        let mut seen = HashSet::new();
        for r in RESOURCES {
            assert!(
                seen.insert((r.group, r.version, r.plural)),
                "duplicate {}/{} {}",
                r.group,
                r.version,
                r.plural
            );
        }
    }

    #[test]
    fn kind_unique_per_group_version() {
        let mut seen = HashSet::new();
        for r in RESOURCES {
            assert!(
                seen.insert((r.group, r.version, r.kind)),
                "duplicate kind {}",
                r.kind
            );
        }
    }

    #[test]
    fn short_names_unique_across_resources() {
        // The same resource may be served in several groups or versions
        // (hpa in autoscaling v1 and v2; ev in core and events.k8s.io), so
        // a short name must always name the same plural and never two.
        let mut owner: HashMap<&str, &str> = HashMap::new();
        for r in RESOURCES {
            for s in r.short_names {
                let prev = owner.insert(s, r.plural);
                assert!(
                    prev.is_none() || prev == Some(r.plural),
                    "short name {s} reused"
                );
                assert_ne!(*s, r.plural);
                assert_ne!(*s, r.singular);
            }
        }
        // No short name may collide with any plural or singular either.
        for r in RESOURCES {
            for other in RESOURCES {
                for s in other.short_names {
                    if other.plural != r.plural {
                        assert_ne!(*s, r.plural);
                        assert_ne!(*s, r.singular);
                    }
                }
            }
        }
    }

    #[test]
    fn find_works() {
        let pods = find("", "v1", "pods").expect("pods");
        assert_eq!(pods.kind, "Pod");
        assert!(pods.is_core());
        assert_eq!(pods.api_version(), "v1");
        assert_eq!(pods.list_kind(), "PodList");

        let deploy = find("apps", "v1", "deployments").expect("deployments");
        assert_eq!(deploy.api_version(), "apps/v1");
        assert_eq!(deploy.list_kind(), "DeploymentList");
        assert!(!deploy.is_core());
        assert_eq!(deploy.subresource("scale").map(|s| s.kind), Some("Scale"));

        assert!(find("apps", "v1", "pods").is_none());
        assert!(find("", "v1", "Pods").is_none());
        assert!(find("", "v2", "pods").is_none());
    }

    #[test]
    fn find_by_kind_works() {
        let ds = find_by_kind("apps", "v1", "DaemonSet").expect("DaemonSet");
        assert_eq!(ds.plural, "daemonsets");
        let hpa = find_by_kind("autoscaling", "v1", "HorizontalPodAutoscaler").expect("hpa v1");
        assert_eq!(hpa.version, "v1");
        let lsar =
            find_by_kind("authorization.k8s.io", "v1", "LocalSubjectAccessReview").expect("lsar");
        assert!(lsar.namespaced);
        assert_eq!(lsar.verbs, &["create"]);
        assert!(find_by_kind("", "v1", "Deployment").is_none());
        for r in RESOURCES {
            assert_eq!(find_by_kind(r.group, r.version, r.kind), Some(r));
            assert_eq!(find(r.group, r.version, r.plural), Some(r));
        }
    }

    #[test]
    fn pods_match_upstream() {
        let pods = find("", "v1", "pods").expect("pods");
        assert_eq!(
            pods.verbs,
            &[
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch"
            ]
        );
        assert_eq!(pods.short_names, &["po"]);
        assert_eq!(pods.categories, &["all"]);
        assert_eq!(pods.singular, "pod");
        assert!(pods.namespaced);

        let status = pods.subresource("status").expect("status");
        assert_eq!(status.kind, "Pod");
        assert!(status.in_parent_group_version());
        assert_eq!(status.verbs, &["get", "patch", "update"]);

        let binding = pods.subresource("binding").expect("binding");
        assert_eq!(binding.kind, "Binding");
        assert_eq!(binding.verbs, &["create"]);

        let eviction = pods.subresource("eviction").expect("eviction");
        assert_eq!(
            (eviction.group, eviction.version, eviction.kind),
            ("policy", "v1", "Eviction")
        );
        assert_eq!(eviction.verbs, &["create"]);
        assert!(!eviction.in_parent_group_version());

        assert_eq!(pods.subresource("log").map(|s| s.verbs), Some(&["get"][..]));
        assert_eq!(
            pods.subresource("exec").map(|s| s.verbs),
            Some(&["create", "get"][..])
        );
    }

    #[test]
    fn both_events_exist() {
        let core = find("", "v1", "events").expect("core events");
        let new = find("events.k8s.io", "v1", "events").expect("events.k8s.io events");
        assert_eq!(core.kind, "Event");
        assert_eq!(new.kind, "Event");
        assert_eq!(new.api_version(), "events.k8s.io/v1");
        assert_eq!(core.short_names, &["ev"]);
        assert_eq!(new.short_names, &["ev"]);
    }

    #[test]
    fn all_category_exactly_upstream() {
        let mut all: Vec<&str> = RESOURCES
            .iter()
            .filter(|r| r.categories.contains(&"all"))
            .map(|r| r.plural)
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(
            all,
            [
                "cronjobs",
                "daemonsets",
                "deployments",
                "horizontalpodautoscalers",
                "jobs",
                "pods",
                "replicasets",
                "replicationcontrollers",
                "services",
                "statefulsets",
            ]
        );
    }

    #[test]
    fn verbs_and_subresources_sorted_like_upstream() {
        for r in RESOURCES {
            assert!(
                r.verbs.windows(2).all(|w| w[0] < w[1]),
                "{} verbs",
                r.plural
            );
            assert!(
                r.subresources.windows(2).all(|w| w[0].name < w[1].name),
                "{} subresources",
                r.plural
            );
            for s in r.subresources {
                assert!(
                    s.verbs.windows(2).all(|w| w[0] < w[1]),
                    "{}/{} verbs",
                    r.plural,
                    s.name
                );
                assert_eq!(
                    s.group.is_empty(),
                    s.version.is_empty(),
                    "{}/{}",
                    r.plural,
                    s.name
                );
            }
        }
    }

    #[test]
    fn resources_sorted_within_group_version() {
        for (g, vs) in groups().into_iter().chain([("", vec!["v1"])]) {
            for v in vs {
                let plurals: Vec<&str> = resources_in(g, v).map(|r| r.plural).collect();
                assert!(!plurals.is_empty(), "{g}/{v} has no resources");
                assert!(plurals.windows(2).all(|w| w[0] < w[1]), "{g}/{v} order");
            }
        }
    }

    #[test]
    fn optional_versions_are_served_only_when_turned_on() {
        // Nothing in this test binary turns them on: the first read fixes "none".
        assert!(find(
            "admissionregistration.k8s.io",
            "v1alpha1",
            "mutatingadmissionpolicies"
        )
        .is_none());
        assert!(!serves_version("admissionregistration.k8s.io", "v1alpha1"));
        assert!(serves_version("admissionregistration.k8s.io", "v1"));
        assert_eq!(served().count(), RESOURCES.len());
        let admission = groups()
            .into_iter()
            .find(|(g, _)| *g == "admissionregistration.k8s.io")
            .expect("group");
        assert_eq!(admission.1, vec!["v1"]);
        assert_eq!(
            optional_versions(),
            vec!["admissionregistration.k8s.io/v1alpha1"]
        );
        assert_eq!(
            enable(&["apps/v1beta1".to_string()]),
            Err(EnableError::Unknown("apps/v1beta1".into()))
        );
        assert_eq!(
            enable(&["admissionregistration.k8s.io/v1alpha1".to_string()]),
            Err(EnableError::AlreadyFixed)
        );
    }

    #[test]
    fn groups_cover_resources_in_order() {
        let gs = groups();
        assert_eq!(gs[0].0, "apiregistration.k8s.io");
        assert_eq!(gs[1].0, "apps");
        assert_eq!(gs[2].0, "events.k8s.io");
        let autoscaling = gs
            .iter()
            .find(|(g, _)| *g == "autoscaling")
            .expect("autoscaling");
        assert_eq!(autoscaling.1, vec!["v2", "v1"]);
        assert_eq!(gs.last().map(|(g, _)| *g), Some("metrics.k8s.io"));

        // RESOURCES follows the group order, core first.
        let mut order: Vec<(&str, &str)> = vec![("", "v1")];
        for (g, vs) in &gs {
            for v in vs {
                order.push((g, v));
            }
        }
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for r in RESOURCES {
            if seen.last() != Some(&(r.group, r.version)) {
                assert!(
                    !seen.contains(&(r.group, r.version)),
                    "{}/{} split",
                    r.group,
                    r.version
                );
                seen.push((r.group, r.version));
            }
        }
        assert_eq!(seen, order);
    }
}
