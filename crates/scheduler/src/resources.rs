//! Resource arithmetic: quantities, the requests of a pod as upstream's
//! `resourcehelper.PodRequests` computes them (sidecars, the init-container max rule, overhead),
//! and the "non-zero" requests used for scoring.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// `cpu`.
pub const CPU: &str = "cpu";
/// `memory`.
pub const MEMORY: &str = "memory";
/// `ephemeral-storage`.
pub const EPHEMERAL_STORAGE: &str = "ephemeral-storage";
/// `pods`.
pub const PODS: &str = "pods";
/// The CPU request scoring assumes for a container that sets none (upstream
/// `DefaultMilliCPURequest`).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// The memory request scoring assumes for a container that sets none (200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// An amount of each resource: CPU in millicores, everything else in units (bytes, counts).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU, millicores.
    pub milli_cpu: i64,
    /// Memory, bytes.
    pub memory: i64,
    /// Ephemeral storage, bytes.
    pub ephemeral_storage: i64,
    /// How many pods (only meaningful for allocatable).
    pub allowed_pod_number: i64,
    /// Extended and hugepages resources by name, in units.
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    /// From a resource list (`requests`, `allocatable`, `overhead`).
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Resources {
        let mut resources = Resources::default();
        for (name, quantity) in list {
            resources.set(name, quantity_value(name, quantity));
        }
        resources
    }

    /// A node's allocatable resources.
    pub fn allocatable(node: &Node) -> Resources {
        node.status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref())
            .map(Resources::from_list)
            .unwrap_or_default()
    }

    /// The amount of `name` (cpu in millicores).
    pub fn get(&self, name: &str) -> i64 {
        match name {
            CPU => self.milli_cpu,
            MEMORY => self.memory,
            EPHEMERAL_STORAGE => self.ephemeral_storage,
            PODS => self.allowed_pod_number,
            _ => self.scalar.get(name).copied().unwrap_or(0),
        }
    }

    /// Sets the amount of `name`.
    pub fn set(&mut self, name: &str, value: i64) {
        match name {
            CPU => self.milli_cpu = value,
            MEMORY => self.memory = value,
            EPHEMERAL_STORAGE => self.ephemeral_storage = value,
            PODS => self.allowed_pod_number = value,
            _ => {
                self.scalar.insert(name.to_string(), value);
            }
        }
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Resources) {
        self.combine(other, |a, b| a.saturating_add(b));
    }

    /// Subtracts `other` from `self`.
    pub fn sub(&mut self, other: &Resources) {
        self.combine(other, |a, b| a.saturating_sub(b));
    }

    /// Raises each resource of `self` to at least `other`'s.
    pub fn max_with(&mut self, other: &Resources) {
        self.combine(other, i64::max);
    }

    fn combine(&mut self, other: &Resources, f: impl Fn(i64, i64) -> i64) {
        self.milli_cpu = f(self.milli_cpu, other.milli_cpu);
        self.memory = f(self.memory, other.memory);
        self.ephemeral_storage = f(self.ephemeral_storage, other.ephemeral_storage);
        self.allowed_pod_number = f(self.allowed_pod_number, other.allowed_pod_number);
        for (name, value) in &other.scalar {
            let entry = self.scalar.entry(name.clone()).or_insert(0);
            *entry = f(*entry, *value);
        }
    }

    /// The names of the resources set to a non-zero amount, cpu/memory/ephemeral-storage first.
    pub fn names(&self) -> Vec<&str> {
        let mut names = Vec::new();
        for (name, value) in [
            (CPU, self.milli_cpu),
            (MEMORY, self.memory),
            (EPHEMERAL_STORAGE, self.ephemeral_storage),
        ] {
            if value != 0 {
                names.push(name);
            }
        }
        names.extend(
            self.scalar
                .iter()
                .filter(|(_, v)| **v != 0)
                .map(|(k, _)| k.as_str()),
        );
        names
    }
}

/// A resource name resolved once (at plugin construction), so per-node scoring reads
/// [`Resources`] without matching strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResourceName {
    /// `cpu`.
    Cpu,
    /// `memory`.
    Memory,
    /// `ephemeral-storage`.
    EphemeralStorage,
    /// `pods`.
    Pods,
    /// An extended or hugepages resource.
    Scalar(String),
}

impl ResourceName {
    /// Resolves `name`.
    pub fn new(name: &str) -> ResourceName {
        match name {
            CPU => ResourceName::Cpu,
            MEMORY => ResourceName::Memory,
            EPHEMERAL_STORAGE => ResourceName::EphemeralStorage,
            PODS => ResourceName::Pods,
            _ => ResourceName::Scalar(name.to_string()),
        }
    }
}

impl Resources {
    /// The amount of `name`, as [`Resources::get`].
    pub fn amount(&self, name: &ResourceName) -> i64 {
        match name {
            ResourceName::Cpu => self.milli_cpu,
            ResourceName::Memory => self.memory,
            ResourceName::EphemeralStorage => self.ephemeral_storage,
            ResourceName::Pods => self.allowed_pod_number,
            ResourceName::Scalar(name) => self.scalar.get(name).copied().unwrap_or(0),
        }
    }
}

/// A quantity's value in the unit the scheduler counts `resource` in: millicores for cpu,
/// units otherwise; rounded up as `resource.Quantity.MilliValue`/`Value` do. Unparseable
/// quantities count as zero (the API server validates them).
pub fn quantity_value(resource: &str, quantity: &Quantity) -> i64 {
    match ferry_api::quantity::Quantity::from_api(quantity) {
        Ok(q) if resource == CPU => q.milli_value(),
        Ok(q) => q.value(),
        Err(_) => 0,
    }
}

fn container_requests(container: &Container, non_zero: bool) -> Resources {
    let mut resources = container
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .map(Resources::from_list)
        .unwrap_or_default();
    if non_zero {
        let requests = container
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref());
        if !requests.is_some_and(|r| r.contains_key(CPU)) {
            resources.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !requests.is_some_and(|r| r.contains_key(MEMORY)) {
            resources.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    resources
}

fn is_restartable_init(container: &Container) -> bool {
    container.restart_policy.as_deref() == Some("Always")
}

/// The resources a pod requests, as upstream's `PodRequests`: the sum over containers plus
/// restartable init containers (sidecars), raised to what any regular init container needs
/// (its request plus the sidecars started before it), plus the pod overhead. With `non_zero`,
/// containers without a cpu or memory request count 100m / 200Mi (used by scoring only).
pub fn pod_requests(pod: &Pod, non_zero: bool) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources::default();
    };
    let mut sum = Resources::default();
    for container in &spec.containers {
        sum.add(&container_requests(container, non_zero));
    }
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for container in spec.init_containers.iter().flatten() {
        let requests = container_requests(container, non_zero);
        if is_restartable_init(container) {
            sidecars.add(&requests);
            sum.add(&requests);
            init_max.max_with(&sidecars);
        } else {
            let mut needed = requests;
            needed.add(&sidecars);
            init_max.max_with(&needed);
        }
    }
    sum.max_with(&init_max);
    if let Some(overhead) = spec.overhead.as_ref() {
        sum.add(&Resources::from_list(overhead));
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::make_pod;

    #[test]
    fn quantities_in_the_schedulers_units() {
        assert_eq!(quantity_value(CPU, &Quantity("0.1".into())), 100);
        assert_eq!(quantity_value(CPU, &Quantity("500m".into())), 500);
        assert_eq!(quantity_value(CPU, &Quantity("1m".into())), 1);
        assert_eq!(
            quantity_value(CPU, &Quantity("1.0001m".into())),
            2,
            "rounded up"
        );
        assert_eq!(quantity_value(MEMORY, &Quantity("1Ki".into())), 1024);
        assert_eq!(quantity_value(MEMORY, &Quantity("128Mi".into())), 128 << 20);
        assert_eq!(quantity_value(MEMORY, &Quantity("1e3".into())), 1000);
        assert_eq!(quantity_value(MEMORY, &Quantity("abc".into())), 0);
    }

    #[test]
    fn pod_requests_follow_the_init_container_max_rule() {
        // Two containers of 100m and 200m; an init container of 500m: the pod needs 500m.
        let pod = make_pod("p")
            .req(CPU, "100m")
            .container_req(CPU, "200m")
            .init_req(CPU, "500m")
            .pod();
        assert_eq!(pod_requests(&pod, false).milli_cpu, 500);
        // An init container smaller than the sum does not matter.
        let pod = make_pod("p").req(CPU, "400m").init_req(CPU, "300m").pod();
        assert_eq!(pod_requests(&pod, false).milli_cpu, 400);
        // Overhead is added on top.
        let pod = make_pod("p").req(CPU, "400m").overhead(CPU, "50m").pod();
        assert_eq!(pod_requests(&pod, false).milli_cpu, 450);
        // A sidecar runs alongside: it adds to the sum and to later init containers.
        let pod = make_pod("p")
            .req(CPU, "100m")
            .init_req(CPU, "500m")
            .sidecar_req(CPU, "100m")
            .pod();
        assert_eq!(pod_requests(&pod, false).milli_cpu, 500);
        let pod = make_pod("p")
            .sidecar_req(CPU, "100m")
            .init_req(CPU, "500m")
            .req(CPU, "100m")
            .pod();
        assert_eq!(pod_requests(&pod, false).milli_cpu, 600);
    }

    #[test]
    fn non_zero_requests_default_cpu_and_memory() {
        let pod = make_pod("p").pod();
        let requests = pod_requests(&pod, true);
        assert_eq!(
            (requests.milli_cpu, requests.memory),
            (100, 200 * 1024 * 1024)
        );
        assert_eq!(pod_requests(&pod, false), Resources::default());
    }
}
