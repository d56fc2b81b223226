//! ResourceQuota accounting (upstream's `pkg/quota/v1` evaluators), shared by the API server's
//! ResourceQuota admission plugin, which charges a new object to the quotas of its namespace,
//! and the quota controller, which recounts `status.used` from what exists.
//!
//! An [`Evaluator`] knows, for one group/resource, which quota resource names it accounts
//! (`pods`, `requests.cpu`, `count/deployments.apps`, …), what one object uses, and whether an
//! object falls in a quota's scopes. Objects are JSON, as the API server holds them.

use k8s_openapi::api::core::v1::PodSpec;
use serde_json::Value;

use crate::qos::{compute_qos_class, QosClass};
use crate::resources::{self, Amount, ResourceList};

/// The quota resource names a pod's compute usage is charged under.
const POD_RESOURCES: &[&str] = &[
    "pods",
    "count/pods",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
];

/// The quota resource names every container must request or limit explicitly when a quota
/// constrains them (upstream's backward-compatibility rule for cpu and memory).
const REQUIRES_EXPLICIT: &[&str] = &[
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

/// The scopes a quota may name (`spec.scopes`, `spec.scopeSelector`).
pub const SCOPES: &[&str] = &[
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
];

/// The resources kept under the legacy object-count names (`configmaps` beside
/// `count/configmaps`).
const LEGACY_COUNTS: &[&str] = &[
    "pods",
    "services",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
];

/// The quota name counting objects of `resource` in `group` (`count/pods`,
/// `count/deployments.apps`).
pub fn count_name(group: &str, resource: &str) -> String {
    if group.is_empty() {
        format!("count/{resource}")
    } else {
        format!("count/{resource}.{group}")
    }
}

/// The group/resource a `count/…` quota name counts.
pub fn counted_resource(name: &str) -> Option<(String, String)> {
    let counted = name.strip_prefix("count/")?;
    Some(match counted.split_once('.') {
        Some((resource, group)) => (group.to_string(), resource.to_string()),
        None => (String::new(), counted.to_string()),
    })
}

/// What accounts the objects of one group/resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evaluator {
    /// Pods: counts and compute resources, with scopes.
    Pods,
    /// Services: counts, node ports and load balancers.
    Services,
    /// PersistentVolumeClaims: counts and storage, overall and per storage class.
    Claims,
    /// Any other resource: its object count (and legacy name, if it has one).
    Count {
        /// The API group.
        group: String,
        /// The resource.
        resource: String,
    },
}

/// A scope requirement of a quota: `spec.scopes` entries are `Exists` requirements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeRequirement {
    /// The scope's name.
    pub scope: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// The values of `In`/`NotIn`.
    pub values: Vec<String>,
}

/// The scope requirements of a quota object (upstream's `getScopeSelectorsFromQuota`).
pub fn scope_requirements(quota: &Value) -> Vec<ScopeRequirement> {
    let spec = &quota["spec"];
    let mut requirements: Vec<ScopeRequirement> = spec["scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|scope| ScopeRequirement {
            scope: scope.to_string(),
            operator: "Exists".into(),
            values: Vec::new(),
        })
        .collect();
    for expression in spec["scopeSelector"]["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        requirements.push(ScopeRequirement {
            scope: expression["scopeName"].as_str().unwrap_or_default().into(),
            operator: expression["operator"].as_str().unwrap_or_default().into(),
            values: expression["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
        });
    }
    requirements
}

/// The names of a resource list's entries (`status.hard`).
pub fn names(list: &Value) -> Vec<String> {
    list.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// An extended resource (`example.com/gpu`): qualified by a domain other than kubernetes.io.
fn is_extended(name: &str) -> bool {
    name.contains('/') && !name.contains("kubernetes.io/")
}

/// A quota name for requests of huge pages or of an extended resource.
fn is_special_request(name: &str) -> bool {
    name.strip_prefix("requests.")
        .is_some_and(|rest| rest.starts_with("hugepages-") || is_extended(rest))
}

impl Evaluator {
    /// The evaluator of objects of `resource` in `group`; `None` for what quota ignores
    /// (Events, as upstream's default configuration).
    pub fn for_resource(group: &str, resource: &str) -> Option<Evaluator> {
        match (group, resource) {
            ("" | "events.k8s.io", "events") => None,
            _ => Some(Evaluator::of(group, resource)),
        }
    }

    /// The evaluator of objects of `resource` in `group`.
    pub fn of(group: &str, resource: &str) -> Evaluator {
        match (group, resource) {
            ("", "pods") => Evaluator::Pods,
            ("", "services") => Evaluator::Services,
            ("", "persistentvolumeclaims") => Evaluator::Claims,
            _ => Evaluator::Count {
                group: group.into(),
                resource: resource.into(),
            },
        }
    }

    /// Whether this evaluator accounts the quota resource `name`.
    pub fn accounts(&self, name: &str) -> bool {
        match self {
            Evaluator::Pods => {
                POD_RESOURCES.contains(&name)
                    || name.starts_with("hugepages-")
                    || is_special_request(name)
            }
            Evaluator::Services => matches!(
                name,
                "services" | "count/services" | "services.nodeports" | "services.loadbalancers"
            ),
            Evaluator::Claims => {
                matches!(
                    name,
                    "persistentvolumeclaims" | "count/persistentvolumeclaims" | "requests.storage"
                ) || name.ends_with(".storageclass.storage.k8s.io/requests.storage")
                    || name.ends_with(".storageclass.storage.k8s.io/persistentvolumeclaims")
            }
            Evaluator::Count { group, resource } => {
                name == count_name(group, resource)
                    || (group.is_empty() && name == resource && LEGACY_COUNTS.contains(&name))
            }
        }
    }

    /// The names among `hard` this evaluator accounts.
    pub fn matching(&self, hard: &[String]) -> Vec<String> {
        hard.iter().filter(|n| self.accounts(n)).cloned().collect()
    }

    /// Whether an update (not only a create) can change what an object uses.
    pub fn charges_updates(&self) -> bool {
        matches!(self, Evaluator::Services | Evaluator::Claims)
    }

    /// What `object` uses, at `now` (a pod past its deletion grace period no longer uses compute
    /// resources).
    pub fn usage(&self, object: &Value, now: jiff::Timestamp) -> ResourceList {
        let mut usage = ResourceList::new();
        let mut set = |name: &str, amount: Amount| {
            usage.insert(name.to_string(), amount);
        };
        match self {
            Evaluator::Pods => {
                set("count/pods", Amount::count(1));
                if counts_compute(object, now) {
                    let spec: PodSpec =
                        serde_json::from_value(object["spec"].clone()).unwrap_or_default();
                    let requests = resources::pod_requests(&spec, true);
                    let limits = resources::pod_limits(&spec, true);
                    usage.extend(pod_compute_usage(&requests, &limits));
                }
            }
            Evaluator::Services => {
                set("services", Amount::count(1));
                set("count/services", Amount::count(1));
                let spec = &object["spec"];
                let ports = spec["ports"].as_array().map(Vec::len).unwrap_or(0);
                let with_node_ports = spec["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["nodePort"].as_i64().is_some_and(|n| n != 0))
                    .count();
                let count = |n: usize| Amount::count(i64::try_from(n).unwrap_or(i64::MAX));
                match spec["type"].as_str() {
                    Some("NodePort") => set("services.nodeports", count(ports)),
                    Some("LoadBalancer") => {
                        set("services.nodeports", count(with_node_ports));
                        set("services.loadbalancers", Amount::count(1));
                    }
                    _ => {}
                }
            }
            Evaluator::Claims => {
                set("persistentvolumeclaims", Amount::count(1));
                set("count/persistentvolumeclaims", Amount::count(1));
                let class = object["spec"]["storageClassName"]
                    .as_str()
                    .filter(|c| !c.is_empty());
                if let Some(class) = class {
                    set(
                        &format!("{class}.storageclass.storage.k8s.io/persistentvolumeclaims"),
                        Amount::count(1),
                    );
                }
                let requested = object["spec"]["resources"]["requests"]["storage"]
                    .as_str()
                    .and_then(Amount::parse);
                if let Some(storage) = requested {
                    set("requests.storage", storage);
                    if let Some(class) = class {
                        set(
                            &format!("{class}.storageclass.storage.k8s.io/requests.storage"),
                            storage,
                        );
                    }
                }
            }
            Evaluator::Count { group, resource } => {
                set(&count_name(group, resource), Amount::count(1));
                if group.is_empty() && LEGACY_COUNTS.contains(&resource.as_str()) {
                    set(resource, Amount::count(1));
                }
            }
        }
        usage
    }

    /// Whether `object` falls in every one of the quota's scope requirements (objects other
    /// than pods have no scopes: a scoped quota never matches them).
    pub fn in_scopes(&self, object: &Value, scopes: &[ScopeRequirement]) -> bool {
        if scopes.is_empty() {
            return true;
        }
        if *self != Evaluator::Pods {
            return false;
        }
        scopes.iter().all(|s| pod_in_scope(object, s))
    }

    /// Upstream's constraint on pods: when a quota limits cpu or memory, every container must
    /// say how much it requests (or may use) of it. The message names what is missing where.
    pub fn constraints(&self, required: &[String], object: &Value) -> Result<(), String> {
        if *self != Evaluator::Pods {
            return Ok(());
        }
        let required: Vec<&str> = required
            .iter()
            .map(String::as_str)
            .filter(|n| REQUIRES_EXPLICIT.contains(n))
            .collect();
        if required.is_empty() {
            return Ok(());
        }
        let spec: PodSpec = serde_json::from_value(object["spec"].clone()).unwrap_or_default();
        let mut missing: std::collections::BTreeMap<&str, std::collections::BTreeSet<String>> =
            Default::default();
        for container in spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
        {
            let resources = container.resources.as_ref();
            let requests = resources::from_api(resources.and_then(|r| r.requests.as_ref()));
            let limits = resources::from_api(resources.and_then(|r| r.limits.as_ref()));
            let has = pod_compute_usage(&requests, &limits);
            for name in &required {
                if !has.contains_key(*name) {
                    missing
                        .entry(name)
                        .or_default()
                        .insert(container.name.clone());
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let parts: Vec<String> = missing
            .iter()
            .map(|(name, containers)| {
                let containers: Vec<&str> = containers.iter().map(String::as_str).collect();
                format!("{name} for: {}", containers.join(","))
            })
            .collect();
        Err(format!("must specify {}", parts.join("; ")))
    }
}

/// Whether a pod still uses compute resources (upstream's `QuotaV1Pod`): not once it has
/// finished, nor once its deletion's grace period has run out.
fn counts_compute(pod: &Value, now: jiff::Timestamp) -> bool {
    if matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    ) {
        return false;
    }
    let metadata = &pod["metadata"];
    let deleted = metadata["deletionTimestamp"]
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let grace = metadata["deletionGracePeriodSeconds"].as_i64();
    if let (Some(deleted), Some(grace)) = (deleted, grace) {
        if now > deleted + jiff::SignedDuration::from_secs(grace) {
            return false;
        }
    }
    true
}

/// The quota names a pod's (or a container's) requests and limits are charged under
/// (upstream's `podComputeUsageHelper`), `pods` included.
fn pod_compute_usage(requests: &ResourceList, limits: &ResourceList) -> ResourceList {
    let mut usage = ResourceList::new();
    usage.insert("pods".into(), Amount::count(1));
    for name in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(request) = requests.get(name) {
            usage.insert(name.into(), *request);
            usage.insert(format!("requests.{name}"), *request);
        }
        if let Some(limit) = limits.get(name) {
            usage.insert(format!("limits.{name}"), *limit);
        }
    }
    for (name, request) in requests {
        if name.starts_with("hugepages-") || is_extended(name) {
            usage.insert(format!("requests.{name}"), *request);
        }
    }
    usage
}

fn pod_in_scope(pod: &Value, requirement: &ScopeRequirement) -> bool {
    let spec = &pod["spec"];
    let terminating = spec["activeDeadlineSeconds"]
        .as_i64()
        .is_some_and(|s| s >= 0);
    let best_effort = || {
        let typed: PodSpec = serde_json::from_value(spec.clone()).unwrap_or_default();
        compute_qos_class(&typed) == QosClass::BestEffort
    };
    match requirement.scope.as_str() {
        "Terminating" => terminating,
        "NotTerminating" => !terminating,
        "BestEffort" => best_effort(),
        "NotBestEffort" => !best_effort(),
        "PriorityClass" => {
            let class = spec["priorityClassName"].as_str().filter(|c| !c.is_empty());
            match requirement.operator.as_str() {
                "In" => class.is_some_and(|c| requirement.values.iter().any(|v| v == c)),
                "NotIn" => !class.is_some_and(|c| requirement.values.iter().any(|v| v == c)),
                "Exists" => class.is_some(),
                "DoesNotExist" => class.is_none(),
                _ => false,
            }
        }
        "CrossNamespacePodAffinity" => {
            let affinity = &spec["affinity"];
            ["podAffinity", "podAntiAffinity"].iter().any(|kind| {
                let required = affinity[kind]["requiredDuringSchedulingIgnoredDuringExecution"]
                    .as_array()
                    .into_iter()
                    .flatten();
                let preferred = affinity[kind]["preferredDuringSchedulingIgnoredDuringExecution"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|w| &w["podAffinityTerm"]);
                required.chain(preferred).any(|term| {
                    term["namespaceSelector"].is_object()
                        || term["namespaces"].as_array().is_some_and(|n| !n.is_empty())
                })
            })
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> jiff::Timestamp {
        "2026-01-01T00:00:00Z".parse().expect("time")
    }

    #[test]
    fn pods_use_counts_and_compute_resources() {
        let pod = json!({"spec": {"containers": [
            {"name": "a", "image": "x", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"},
                "limits": {"cpu": "500m", "memory": "128Mi"}}},
            {"name": "b", "image": "x", "resources": {"requests": {"cpu": "250m", "example.com/gpu": "1"}}},
        ]}});
        let usage = Evaluator::Pods.usage(&pod, now());
        assert_eq!(
            resources::pretty(&usage),
            "count/pods=1,cpu=500m,limits.cpu=500m,limits.memory=128Mi,memory=64Mi,pods=1,requests.cpu=500m,requests.example.com/gpu=1,requests.memory=64Mi"
        );
        let mut done = pod.clone();
        done["status"]["phase"] = json!("Succeeded");
        assert_eq!(
            resources::pretty(&Evaluator::Pods.usage(&done, now())),
            "count/pods=1"
        );
        let mut deleting = pod.clone();
        deleting["metadata"] = json!({"deletionTimestamp": "2025-12-31T23:59:00Z",
            "deletionGracePeriodSeconds": 30});
        assert_eq!(
            Evaluator::Pods.usage(&deleting, now()).len(),
            1,
            "past grace"
        );
        deleting["metadata"]["deletionGracePeriodSeconds"] = json!(120);
        assert!(
            Evaluator::Pods.usage(&deleting, now()).len() > 1,
            "within grace"
        );
    }

    #[test]
    fn other_kinds_are_counted() {
        let svc = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}});
        assert_eq!(
            resources::pretty(&Evaluator::Services.usage(&svc, now())),
            "count/services=1,services=1,services.nodeports=2"
        );
        let pvc = json!({"spec": {"storageClassName": "fast",
            "resources": {"requests": {"storage": "1Gi"}}}});
        assert_eq!(
            resources::pretty(&Evaluator::Claims.usage(&pvc, now())),
            "count/persistentvolumeclaims=1,fast.storageclass.storage.k8s.io/persistentvolumeclaims=1,fast.storageclass.storage.k8s.io/requests.storage=1Gi,persistentvolumeclaims=1,requests.storage=1Gi"
        );
        let deployments = Evaluator::of("apps", "deployments");
        assert!(deployments.accounts("count/deployments.apps"));
        assert!(!deployments.accounts("deployments"));
        assert_eq!(
            resources::pretty(&deployments.usage(&json!({}), now())),
            "count/deployments.apps=1"
        );
        let configmaps = Evaluator::of("", "configmaps");
        assert_eq!(
            configmaps.matching(&[
                "configmaps".into(),
                "pods".into(),
                "count/configmaps".into()
            ]),
            ["configmaps", "count/configmaps"]
        );
        assert_eq!(
            counted_resource("count/deployments.apps"),
            Some(("apps".into(), "deployments".into()))
        );
        assert_eq!(
            counted_resource("count/secrets"),
            Some((String::new(), "secrets".into()))
        );
    }

    #[test]
    fn scopes_select_pods() {
        let quota = json!({"spec": {"scopes": ["BestEffort"], "scopeSelector": {"matchExpressions": [
            {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}});
        let scopes = scope_requirements(&quota);
        assert_eq!(scopes.len(), 2);
        let pod = |class: &str, resources: Value| {
            json!({"spec": {"priorityClassName": class,
                "containers": [{"name": "c", "image": "x", "resources": resources}]}})
        };
        let pods = Evaluator::Pods;
        assert!(pods.in_scopes(&pod("high", json!({})), &scopes));
        assert!(!pods.in_scopes(&pod("low", json!({})), &scopes));
        assert!(!pods.in_scopes(&pod("high", json!({"requests": {"cpu": "1"}})), &scopes));
        assert!(!Evaluator::Services.in_scopes(&json!({}), &scopes));
        let terminating = ScopeRequirement {
            scope: "Terminating".into(),
            operator: "Exists".into(),
            values: vec![],
        };
        let mut job_pod = pod("", json!({}));
        assert!(!pods.in_scopes(&job_pod, std::slice::from_ref(&terminating)));
        job_pod["spec"]["activeDeadlineSeconds"] = json!(60);
        assert!(pods.in_scopes(&job_pod, &[terminating]));
    }

    #[test]
    fn quotas_on_cpu_and_memory_require_explicit_values() {
        let pod = json!({"spec": {"containers": [
            {"name": "a", "image": "x", "resources": {"requests": {"cpu": "1"}}},
            {"name": "b", "image": "x"},
        ], "initContainers": [{"name": "init", "image": "x", "resources": {"limits": {"cpu": "1"}}}]}});
        let required = [
            "requests.cpu".to_string(),
            "limits.cpu".into(),
            "pods".into(),
        ];
        assert_eq!(
            Evaluator::Pods.constraints(&required, &pod),
            Err("must specify limits.cpu for: a,b; requests.cpu for: b,init".into())
        );
        assert_eq!(Evaluator::Pods.constraints(&["pods".into()], &pod), Ok(()));
    }
}
