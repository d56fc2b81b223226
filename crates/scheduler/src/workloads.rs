//! The selectors of the objects that select pods — Services, ReplicationControllers,
//! ReplicaSets and StatefulSets — as the watchers last saw them. PodTopologySpread's system
//! default constraints count the pods these select: [`WorkloadCache::default_selector`] is
//! upstream's `helper.DefaultSelector`.
//!
//! Only selectors are kept (not the objects), so the cache stays small at scale.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use parking_lot::RwLock;

/// A controller kind whose selector [`WorkloadCache::default_selector`] uses, with the
/// `apiVersion` an owner reference must name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ControllerKind {
    /// `v1` ReplicationController: a map selector.
    ReplicationController,
    /// `apps/v1` ReplicaSet.
    ReplicaSet,
    /// `apps/v1` StatefulSet.
    StatefulSet,
}

impl ControllerKind {
    /// The kind an owner reference (`apiVersion`, `kind`) names, if supported.
    fn of(api_version: &str, kind: &str) -> Option<ControllerKind> {
        match (api_version, kind) {
            ("v1", "ReplicationController") => Some(ControllerKind::ReplicationController),
            ("apps/v1", "ReplicaSet") => Some(ControllerKind::ReplicaSet),
            ("apps/v1", "StatefulSet") => Some(ControllerKind::StatefulSet),
            _ => None,
        }
    }
}

type Labels = BTreeMap<String, String>;

/// Service selectors by namespace and name; controller selectors by kind and `namespace/name`.
#[derive(Default)]
pub struct WorkloadCache {
    /// Only services with a selector (a service without one selects nothing).
    services: RwLock<HashMap<String, HashMap<String, Labels>>>,
    controllers: RwLock<HashMap<(ControllerKind, String), LabelSelector>>,
}

fn key(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or(""),
        meta.name.as_deref().unwrap_or("")
    )
}

/// Adds `selector`'s requirements to `into` (matchLabels as `In` requirements, so two
/// conflicting requirements on one key stay two and match nothing, as upstream's `Add`).
fn add_requirements(into: &mut Vec<LabelSelectorRequirement>, selector: &LabelSelector) {
    for (key, value) in selector.match_labels.iter().flatten() {
        into.push(LabelSelectorRequirement {
            key: key.clone(),
            operator: "In".into(),
            values: Some(vec![value.clone()]),
        });
    }
    into.extend(selector.match_expressions.iter().flatten().cloned());
}

impl WorkloadCache {
    /// A service was added or changed.
    pub fn put_service(&self, service: &Service) {
        let namespace = service.metadata.namespace.clone().unwrap_or_default();
        let name = service.metadata.name.clone().unwrap_or_default();
        let mut services = self.services.write();
        match service.spec.as_ref().and_then(|s| s.selector.clone()) {
            Some(selector) => {
                services
                    .entry(namespace)
                    .or_default()
                    .insert(name, selector);
            }
            None => {
                if let Some(names) = services.get_mut(&namespace) {
                    names.remove(&name);
                }
            }
        }
    }

    /// A service went.
    pub fn remove_service(&self, service: &Service) {
        let namespace = service.metadata.namespace.as_deref().unwrap_or("");
        let mut services = self.services.write();
        if let Some(names) = services.get_mut(namespace) {
            names.remove(service.metadata.name.as_deref().unwrap_or(""));
            if names.is_empty() {
                services.remove(namespace);
            }
        }
    }

    fn put_controller(&self, kind: ControllerKind, meta: &ObjectMeta, selector: LabelSelector) {
        self.controllers.write().insert((kind, key(meta)), selector);
    }

    /// A controller went.
    pub fn remove_controller(&self, kind: ControllerKind, meta: &ObjectMeta) {
        self.controllers.write().remove(&(kind, key(meta)));
    }

    /// A ReplicationController was added or changed.
    pub fn put_replication_controller(&self, rc: &ReplicationController) {
        let selector = LabelSelector {
            match_labels: rc.spec.as_ref().and_then(|s| s.selector.clone()),
            match_expressions: None,
        };
        self.put_controller(
            ControllerKind::ReplicationController,
            &rc.metadata,
            selector,
        );
    }

    /// A ReplicaSet was added or changed.
    pub fn put_replica_set(&self, rs: &ReplicaSet) {
        let selector = rs
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        self.put_controller(ControllerKind::ReplicaSet, &rs.metadata, selector);
    }

    /// A StatefulSet was added or changed.
    pub fn put_stateful_set(&self, ss: &StatefulSet) {
        let selector = ss
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        self.put_controller(ControllerKind::StatefulSet, &ss.metadata, selector);
    }

    /// The selector of the pods that belong with `pod`, as upstream's `DefaultSelector`: the
    /// labels of every Service in its namespace selecting it, and the selector of its
    /// controller (a ReplicationController, ReplicaSet or StatefulSet). `None` when that is
    /// empty: the pod gets no default spreading.
    ///
    /// One difference: a controller this cache has not seen yet (its watch event still on the
    /// way while its first pods are scheduled) counts as selecting the pod's own labels, so a
    /// burst of a new ReplicaSet's pods is spread from the first pod on; upstream spreads them
    /// by the services only.
    pub fn default_selector(&self, pod: &Pod) -> Option<LabelSelector> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("");
        let empty = Labels::new();
        let pod_labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
        let mut match_labels = Labels::new();
        if let Some(services) = self.services.read().get(namespace) {
            for selector in services.values() {
                if selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)) {
                    match_labels.extend(selector.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        let mut match_expressions = Vec::new();
        let controller = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .and_then(|o| Some((ControllerKind::of(&o.api_version, &o.kind)?, o)));
        if let Some((kind, owner)) = controller {
            let owner_key = format!("{namespace}/{}", owner.name);
            match self.controllers.read().get(&(kind, owner_key)) {
                Some(selector) if kind == ControllerKind::ReplicationController => {
                    match_labels.extend(selector.match_labels.clone().unwrap_or_default());
                }
                Some(selector) => add_requirements(&mut match_expressions, selector),
                None => match_labels.extend(pod_labels.clone()),
            }
        }
        if match_labels.is_empty() && match_expressions.is_empty() {
            return None;
        }
        Some(LabelSelector {
            match_labels: Some(match_labels),
            match_expressions: (!match_expressions.is_empty()).then_some(match_expressions),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::selector_matches;
    use crate::testing::make_pod;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::{ReplicationControllerSpec, ServiceSpec};

    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn service(name: &str, selector: Option<&[(&str, &str)]>) -> Service {
        Service {
            metadata: meta(name),
            spec: Some(ServiceSpec {
                selector: selector.map(labels),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn replica_set(name: &str, selector: &[(&str, &str)]) -> ReplicaSet {
        ReplicaSet {
            metadata: meta(name),
            spec: Some(ReplicaSetSpec {
                selector: LabelSelector {
                    match_labels: Some(labels(selector)),
                    match_expressions: None,
                },
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Upstream's `TestGetPodServices` / `DefaultSelector` cases, as what the selector matches.
    #[test]
    fn default_selector_merges_services_and_the_controller() {
        let cache = WorkloadCache::default();
        let pod = make_pod("p")
            .label("app", "web")
            .label("tier", "front")
            .label("pod-template-hash", "abc")
            .pod();
        // Nothing selects the pod: no default spreading.
        assert_eq!(cache.default_selector(&pod), None);
        // A service without a selector selects nothing; one in another namespace neither.
        cache.put_service(&service("headless", None));
        let mut elsewhere = service("elsewhere", Some(&[("app", "web")]));
        elsewhere.metadata.namespace = Some("other".into());
        cache.put_service(&elsewhere);
        cache.put_service(&service("db", Some(&[("app", "db")])));
        assert_eq!(cache.default_selector(&pod), None);
        // Two matching services: their labels merge.
        cache.put_service(&service("web", Some(&[("app", "web")])));
        cache.put_service(&service("front", Some(&[("tier", "front")])));
        let selector = cache.default_selector(&pod).expect("selector");
        assert_eq!(
            selector.match_labels,
            Some(labels(&[("app", "web"), ("tier", "front")]))
        );
        // Its controller's selector is added as requirements.
        let owned = make_pod("p")
            .label("app", "web")
            .label("tier", "front")
            .label("pod-template-hash", "abc")
            .owner("ReplicaSet", "web-abc")
            .pod();
        cache.put_replica_set(&replica_set(
            "web-abc",
            &[("app", "web"), ("pod-template-hash", "abc")],
        ));
        let selector = cache.default_selector(&owned).expect("selector");
        let sibling = labels(&[
            ("app", "web"),
            ("tier", "front"),
            ("pod-template-hash", "abc"),
        ]);
        let old_revision = labels(&[
            ("app", "web"),
            ("tier", "front"),
            ("pod-template-hash", "old"),
        ]);
        assert!(selector_matches(&selector, &sibling));
        assert!(!selector_matches(&selector, &old_revision));
        // Services gone: the controller alone.
        for name in ["web", "front"] {
            cache.remove_service(&service(name, None));
        }
        let selector = cache.default_selector(&owned).expect("selector");
        assert_eq!(selector.match_labels, Some(Labels::new()));
        assert_eq!(selector.match_expressions.as_ref().map(Vec::len), Some(2));
        // A controller not seen yet: the pod's own labels.
        let unseen = make_pod("p")
            .label("app", "web")
            .owner("StatefulSet", "db")
            .pod();
        assert_eq!(
            cache
                .default_selector(&unseen)
                .expect("selector")
                .match_labels,
            Some(labels(&[("app", "web")]))
        );
        // A ReplicationController's map selector merges like a service's.
        let rc = ReplicationController {
            metadata: meta("legacy"),
            spec: Some(ReplicationControllerSpec {
                selector: Some(labels(&[("app", "legacy")])),
                ..Default::default()
            }),
            ..Default::default()
        };
        cache.put_replication_controller(&rc);
        let legacy = make_pod("p")
            .label("app", "legacy")
            .owner("ReplicationController", "legacy")
            .pod();
        assert_eq!(
            cache
                .default_selector(&legacy)
                .expect("selector")
                .match_labels,
            Some(labels(&[("app", "legacy")]))
        );
        cache.remove_controller(ControllerKind::ReplicationController, &rc.metadata);
        // An owner that is not the controller, or of another kind, does not count.
        let mut not_controller = make_pod("p")
            .label("app", "x")
            .owner("ReplicaSet", "x")
            .pod();
        if let Some(o) = not_controller.metadata.owner_references.as_mut() {
            o[0].controller = None;
        }
        assert_eq!(cache.default_selector(&not_controller), None);
        let job = make_pod("p").label("app", "x").owner("Job", "x").pod();
        assert_eq!(cache.default_selector(&job), None);
    }
}
