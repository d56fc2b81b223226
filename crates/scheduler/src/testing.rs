//! Builders for pods and nodes in tests and benchmarks, after upstream's `st.MakePod()` /
//! `st.MakeNode()`: `make_pod("p").req("cpu", "500m").toleration(..)`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerImage, ContainerPort, Node, NodeAffinity, NodeSelector,
    NodeSelectorRequirement, NodeSelectorTerm, NodeSpec, NodeStatus, Pod, PodAffinity,
    PodAffinityTerm, PodAntiAffinity, PodSchedulingGate, PodSpec, PreferredSchedulingTerm,
    ResourceRequirements, Taint, Toleration, TopologySpreadConstraint, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};

/// Starts a pod named `name` in namespace `default` with one container and no requests.
pub fn make_pod(name: &str) -> PodBuilder {
    PodBuilder(Pod {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some("default".to_string()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c0".to_string(),
                image: Some("pause".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    })
}

/// Starts a node named `name` with the `kubernetes.io/hostname` label and 110 pods allocatable.
pub fn make_node(name: &str) -> NodeBuilder {
    let mut labels = BTreeMap::new();
    labels.insert("kubernetes.io/hostname".to_string(), name.to_string());
    let mut allocatable = BTreeMap::new();
    allocatable.insert("pods".to_string(), Quantity("110".into()));
    NodeBuilder(Node {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            allocatable: Some(allocatable.clone()),
            capacity: Some(allocatable),
            ..Default::default()
        }),
    })
}

/// A pod under construction.
#[derive(Clone, Debug)]
pub struct PodBuilder(pub Pod);

fn requirements(name: &str, quantity: &str) -> ResourceRequirements {
    let mut requests = BTreeMap::new();
    requests.insert(name.to_string(), Quantity(quantity.to_string()));
    ResourceRequirements {
        requests: Some(requests),
        ..Default::default()
    }
}

fn selector(labels: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        match_expressions: None,
    }
}

impl PodBuilder {
    fn spec(&mut self) -> &mut PodSpec {
        self.0.spec.get_or_insert_with(Default::default)
    }

    fn affinity(&mut self) -> &mut Affinity {
        self.spec().affinity.get_or_insert_with(Default::default)
    }

    /// The pod.
    pub fn pod(self) -> Pod {
        self.0
    }

    /// Adds a request to the first container.
    pub fn req(mut self, name: &str, quantity: &str) -> Self {
        let container = &mut self.spec().containers[0];
        let resources = container.resources.get_or_insert_with(Default::default);
        resources
            .requests
            .get_or_insert_with(Default::default)
            .insert(name.to_string(), Quantity(quantity.to_string()));
        self
    }

    /// Replaces the containers: one per entry, requesting exactly what it lists (none: a pod
    /// without containers, as upstream's `MakePod().Obj()`).
    pub fn containers_requesting(mut self, containers: &[&[(&str, &str)]]) -> Self {
        self.spec().containers = containers
            .iter()
            .enumerate()
            .map(|(i, requests)| Container {
                name: format!("c{i}"),
                resources: Some(ResourceRequirements {
                    requests: Some(
                        requests
                            .iter()
                            .map(|(name, q)| (name.to_string(), Quantity(q.to_string())))
                            .collect(),
                    ),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect();
        self
    }

    /// Adds a container requesting `quantity` of `name`.
    pub fn container_req(mut self, name: &str, quantity: &str) -> Self {
        let n = self.spec().containers.len();
        self.spec().containers.push(Container {
            name: format!("c{n}"),
            resources: Some(requirements(name, quantity)),
            ..Default::default()
        });
        self
    }

    /// Adds a regular init container requesting `quantity` of `name`.
    pub fn init_req(mut self, name: &str, quantity: &str) -> Self {
        let init = self.spec().init_containers.get_or_insert_with(Vec::new);
        init.push(Container {
            name: format!("i{}", init.len()),
            resources: Some(requirements(name, quantity)),
            ..Default::default()
        });
        self
    }

    /// Adds a sidecar (an init container with `restartPolicy: Always`) requesting `quantity`.
    pub fn sidecar_req(mut self, name: &str, quantity: &str) -> Self {
        let init = self.spec().init_containers.get_or_insert_with(Vec::new);
        init.push(Container {
            name: format!("s{}", init.len()),
            resources: Some(requirements(name, quantity)),
            restart_policy: Some("Always".into()),
            ..Default::default()
        });
        self
    }

    /// Sets an overhead entry.
    pub fn overhead(mut self, name: &str, quantity: &str) -> Self {
        self.spec()
            .overhead
            .get_or_insert_with(Default::default)
            .insert(name.to_string(), Quantity(quantity.to_string()));
        self
    }

    /// Sets the namespace.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.0.metadata.namespace = Some(namespace.to_string());
        self
    }

    /// Adds a label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.0
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(key.to_string(), value.to_string());
        self
    }

    /// Sets `spec.priority`.
    pub fn priority(mut self, priority: i32) -> Self {
        self.spec().priority = Some(priority);
        self
    }

    /// Sets `spec.preemptionPolicy`.
    pub fn preemption_policy(mut self, policy: &str) -> Self {
        self.spec().preemption_policy = Some(policy.to_string());
        self
    }

    /// Sets `spec.schedulerName`.
    pub fn scheduler_name(mut self, name: &str) -> Self {
        self.spec().scheduler_name = Some(name.to_string());
        self
    }

    /// Sets `spec.nodeName` (an assigned pod).
    pub fn node(mut self, node: &str) -> Self {
        self.spec().node_name = Some(node.to_string());
        self
    }

    /// Sets the creation timestamp to `seconds` after the epoch.
    pub fn created(mut self, seconds: i64) -> Self {
        self.0.metadata.creation_timestamp = jiff::Timestamp::from_second(seconds).ok().map(Time);
        self
    }

    /// Adds a toleration.
    pub fn toleration(mut self, key: &str, operator: &str, value: &str, effect: &str) -> Self {
        self.spec()
            .tolerations
            .get_or_insert_with(Vec::new)
            .push(Toleration {
                key: Some(key.to_string()).filter(|k| !k.is_empty()),
                operator: Some(operator.to_string()),
                value: Some(value.to_string()).filter(|v| !v.is_empty()),
                effect: Some(effect.to_string()).filter(|e| !e.is_empty()),
                toleration_seconds: None,
            });
        self
    }

    /// Adds a `nodeSelector` entry.
    pub fn node_selector(mut self, key: &str, value: &str) -> Self {
        self.spec()
            .node_selector
            .get_or_insert_with(Default::default)
            .insert(key.to_string(), value.to_string());
        self
    }

    /// Adds a required node affinity term with one expression (`key operator values`).
    pub fn node_affinity(mut self, key: &str, operator: &str, values: &[&str]) -> Self {
        let term = NodeSelectorTerm {
            match_expressions: Some(vec![requirement(key, operator, values)]),
            match_fields: None,
        };
        let node_affinity = self
            .affinity()
            .node_affinity
            .get_or_insert_with(NodeAffinity::default);
        node_affinity
            .required_during_scheduling_ignored_during_execution
            .get_or_insert_with(|| NodeSelector {
                node_selector_terms: Vec::new(),
            })
            .node_selector_terms
            .push(term);
        self
    }

    /// Adds a required node affinity term matching `metadata.name` against `names`.
    pub fn node_affinity_field(mut self, operator: &str, names: &[&str]) -> Self {
        let term = NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![requirement("metadata.name", operator, names)]),
        };
        let node_affinity = self
            .affinity()
            .node_affinity
            .get_or_insert_with(NodeAffinity::default);
        node_affinity
            .required_during_scheduling_ignored_during_execution
            .get_or_insert_with(|| NodeSelector {
                node_selector_terms: Vec::new(),
            })
            .node_selector_terms
            .push(term);
        self
    }

    /// Adds a preferred node affinity term.
    pub fn preferred_node_affinity(
        mut self,
        weight: i32,
        key: &str,
        operator: &str,
        values: &[&str],
    ) -> Self {
        let preference = NodeSelectorTerm {
            match_expressions: Some(vec![requirement(key, operator, values)]),
            match_fields: None,
        };
        self.affinity()
            .node_affinity
            .get_or_insert_with(NodeAffinity::default)
            .preferred_during_scheduling_ignored_during_execution
            .get_or_insert_with(Vec::new)
            .push(PreferredSchedulingTerm { preference, weight });
        self
    }

    /// Adds a required pod affinity term to pods labelled `labels` in `topology_key`.
    pub fn pod_affinity(mut self, topology_key: &str, labels: &[(&str, &str)]) -> Self {
        let term = affinity_term(topology_key, labels);
        self.affinity()
            .pod_affinity
            .get_or_insert_with(PodAffinity::default)
            .required_during_scheduling_ignored_during_execution
            .get_or_insert_with(Vec::new)
            .push(term);
        self
    }

    /// Adds a required pod anti-affinity term.
    pub fn pod_anti_affinity(mut self, topology_key: &str, labels: &[(&str, &str)]) -> Self {
        let term = affinity_term(topology_key, labels);
        self.affinity()
            .pod_anti_affinity
            .get_or_insert_with(PodAntiAffinity::default)
            .required_during_scheduling_ignored_during_execution
            .get_or_insert_with(Vec::new)
            .push(term);
        self
    }

    /// Adds a required pod affinity term with a raw term (namespaces, namespaceSelector).
    pub fn pod_affinity_term(mut self, term: PodAffinityTerm) -> Self {
        self.affinity()
            .pod_affinity
            .get_or_insert_with(PodAffinity::default)
            .required_during_scheduling_ignored_during_execution
            .get_or_insert_with(Vec::new)
            .push(term);
        self
    }

    /// Adds a preferred pod affinity term.
    pub fn preferred_pod_affinity(
        mut self,
        weight: i32,
        topology_key: &str,
        labels: &[(&str, &str)],
    ) -> Self {
        let term = WeightedPodAffinityTerm {
            pod_affinity_term: affinity_term(topology_key, labels),
            weight,
        };
        self.affinity()
            .pod_affinity
            .get_or_insert_with(PodAffinity::default)
            .preferred_during_scheduling_ignored_during_execution
            .get_or_insert_with(Vec::new)
            .push(term);
        self
    }

    /// Adds a preferred pod anti-affinity term.
    pub fn preferred_pod_anti_affinity(
        mut self,
        weight: i32,
        topology_key: &str,
        labels: &[(&str, &str)],
    ) -> Self {
        let term = WeightedPodAffinityTerm {
            pod_affinity_term: affinity_term(topology_key, labels),
            weight,
        };
        self.affinity()
            .pod_anti_affinity
            .get_or_insert_with(PodAntiAffinity::default)
            .preferred_during_scheduling_ignored_during_execution
            .get_or_insert_with(Vec::new)
            .push(term);
        self
    }

    /// Adds a topology spread constraint over pods labelled `labels`.
    pub fn spread(
        mut self,
        max_skew: i32,
        topology_key: &str,
        when_unsatisfiable: &str,
        labels: &[(&str, &str)],
    ) -> Self {
        self.spec()
            .topology_spread_constraints
            .get_or_insert_with(Vec::new)
            .push(TopologySpreadConstraint {
                max_skew,
                topology_key: topology_key.to_string(),
                when_unsatisfiable: when_unsatisfiable.to_string(),
                label_selector: Some(selector(labels)),
                ..Default::default()
            });
        self
    }

    /// Adds a raw topology spread constraint.
    pub fn spread_constraint(mut self, constraint: TopologySpreadConstraint) -> Self {
        self.spec()
            .topology_spread_constraints
            .get_or_insert_with(Vec::new)
            .push(constraint);
        self
    }

    /// Adds a host port to the first container.
    pub fn host_port(mut self, protocol: &str, host_ip: &str, port: i32) -> Self {
        self.spec().containers[0]
            .ports
            .get_or_insert_with(Vec::new)
            .push(ContainerPort {
                container_port: port,
                host_port: Some(port),
                host_ip: Some(host_ip.to_string()).filter(|h| !h.is_empty()),
                protocol: Some(protocol.to_string()),
                name: None,
            });
        self
    }

    /// Sets the first container's image.
    pub fn image(mut self, image: &str) -> Self {
        self.spec().containers[0].image = Some(image.to_string());
        self
    }

    /// Adds a container running `image`.
    pub fn container_image(mut self, image: &str) -> Self {
        let n = self.spec().containers.len();
        self.spec().containers.push(Container {
            name: format!("c{n}"),
            image: Some(image.to_string()),
            ..Default::default()
        });
        self
    }

    /// Sets an annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.0
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(key.to_string(), value.to_string());
        self
    }

    /// Adds a scheduling gate.
    pub fn scheduling_gate(mut self, name: &str) -> Self {
        self.spec()
            .scheduling_gates
            .get_or_insert_with(Vec::new)
            .push(PodSchedulingGate {
                name: name.to_string(),
            });
        self
    }

    /// Adds a controller owner reference of `kind` (e.g. `ReplicaSet`; `apps/v1`, or `v1` for
    /// a ReplicationController).
    pub fn owner(mut self, kind: &str, name: &str) -> Self {
        self.0
            .metadata
            .owner_references
            .get_or_insert_with(Vec::new)
            .push(OwnerReference {
                api_version: if kind == "ReplicationController" {
                    "v1"
                } else {
                    "apps/v1"
                }
                .into(),
                kind: kind.to_string(),
                name: name.to_string(),
                uid: format!("uid-{name}"),
                controller: Some(true),
                block_owner_deletion: None,
            });
        self
    }

    /// Marks the pod as being deleted.
    pub fn terminating(mut self) -> Self {
        self.0.metadata.deletion_timestamp = jiff::Timestamp::from_second(1).ok().map(Time);
        self
    }
}

fn requirement(key: &str, operator: &str, values: &[&str]) -> NodeSelectorRequirement {
    NodeSelectorRequirement {
        key: key.to_string(),
        operator: operator.to_string(),
        values: if values.is_empty() {
            None
        } else {
            Some(values.iter().map(|v| v.to_string()).collect())
        },
    }
}

/// A pod affinity term selecting pods labelled `labels` in the pod's own namespace.
pub fn affinity_term(topology_key: &str, labels: &[(&str, &str)]) -> PodAffinityTerm {
    PodAffinityTerm {
        topology_key: topology_key.to_string(),
        label_selector: Some(selector(labels)),
        ..Default::default()
    }
}

/// A node under construction.
#[derive(Clone, Debug)]
pub struct NodeBuilder(pub Node);

impl NodeBuilder {
    /// The node.
    pub fn node(self) -> Node {
        self.0
    }

    /// Sets capacity and allocatable of each listed resource.
    pub fn capacity(mut self, resources: &[(&str, &str)]) -> Self {
        let status = self.0.status.get_or_insert_with(Default::default);
        for (name, quantity) in resources {
            for list in [&mut status.allocatable, &mut status.capacity] {
                list.get_or_insert_with(Default::default)
                    .insert(name.to_string(), Quantity(quantity.to_string()));
            }
        }
        self
    }

    /// Adds a taint.
    pub fn taint(mut self, key: &str, value: &str, effect: &str) -> Self {
        let spec = self.0.spec.get_or_insert_with(Default::default);
        spec.taints.get_or_insert_with(Vec::new).push(Taint {
            key: key.to_string(),
            value: Some(value.to_string()).filter(|v| !v.is_empty()),
            effect: effect.to_string(),
            time_added: None,
        });
        self
    }

    /// Adds a label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.0
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(key.to_string(), value.to_string());
        self
    }

    /// Sets `spec.unschedulable` (a cordoned node).
    pub fn unschedulable(mut self) -> Self {
        self.0
            .spec
            .get_or_insert_with(Default::default)
            .unschedulable = Some(true);
        self
    }

    /// Adds an image of `size` bytes to `status.images`.
    pub fn image(mut self, name: &str, size: i64) -> Self {
        let status = self.0.status.get_or_insert_with(Default::default);
        status
            .images
            .get_or_insert_with(Vec::new)
            .push(ContainerImage {
                names: Some(vec![name.to_string()]),
                size_bytes: Some(size),
            });
        self
    }
}
