//! The scheduler's steps in a pod's journey (`ferry-journey`): `queued` (activeQ until popped),
//! `filtered`, `scored`, `bound` (Reserve through Bind, the `pods/binding` POST inside it) and
//! `unschedulable` (an attempt that found no node, once per distinct message). Each is a span
//! of component `kube-scheduler` on `pods/<namespace>/<name>`, under the `traceparent` the pod
//! carries in its annotation.

use std::collections::HashMap;
use std::fmt;

use k8s_openapi::api::core::v1::Pod;
use parking_lot::Mutex;

/// The component the scheduler's steps are recorded for.
pub(crate) const COMPONENT: &str = "kube-scheduler";

/// A journey step for `pod` (a `&Pod` or an `Arc<Pod>`): `pod_step!("filtered", pod, nodes = 3)`.
macro_rules! pod_step {
    ($name:literal, $pod:expr $(, $($field:tt)+)?) => {
        ferry_journey::step!(
            $name,
            parent = ferry_journey::of_object(&$pod.metadata).unwrap_or(""),
            object = %$crate::journey::PodObject(&*$pod),
            uid = $pod.metadata.uid.as_deref().unwrap_or(""),
            component = $crate::journey::COMPONENT
            $(, $($field)+)?
        )
    };
}
pub(crate) use pod_step;

/// `pods/<namespace>/<name>`, written without allocating a key first.
pub(crate) struct PodObject<'a>(pub &'a Pod);

impl fmt::Display for PodObject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let meta = &self.0.metadata;
        write!(
            f,
            "pods/{}/{}",
            meta.namespace.as_deref().unwrap_or("default"),
            meta.name.as_deref().unwrap_or("")
        )
    }
}

/// The last `unschedulable` message recorded per pod, so a pod retried with the same outcome
/// does not add a step per retry.
#[derive(Default)]
pub(crate) struct LastUnschedulable(Mutex<HashMap<String, String>>);

impl LastUnschedulable {
    /// Whether `message` differs from the last one recorded for the pod `uid` (and remembers
    /// it).
    pub(crate) fn is_new(&self, uid: &str, message: &str) -> bool {
        let mut last = self.0.lock();
        if last.get(uid).is_some_and(|m| m == message) {
            return false;
        }
        last.insert(uid.to_string(), message.to_string());
        true
    }

    /// Forgets the pod `uid` (bound or deleted).
    pub(crate) fn forget(&self, uid: &str) {
        self.0.lock().remove(uid);
    }
}

/// The key [`LastUnschedulable`] keeps `pod` under: its uid, or its name without one.
pub(crate) fn uid_or_key(pod: &Pod) -> std::borrow::Cow<'_, str> {
    match pod.metadata.uid.as_deref() {
        Some(uid) if !uid.is_empty() => std::borrow::Cow::Borrowed(uid),
        _ => std::borrow::Cow::Owned(crate::cache::pod_key(pod)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_message_is_not_new() {
        let last = LastUnschedulable::default();
        assert!(last.is_new("u1", "0/1 nodes are available: 1 Insufficient cpu."));
        assert!(!last.is_new("u1", "0/1 nodes are available: 1 Insufficient cpu."));
        assert!(last.is_new("u2", "0/1 nodes are available: 1 Insufficient cpu."));
        assert!(last.is_new("u1", "0/2 nodes are available: 2 Insufficient cpu."));
        last.forget("u1");
        assert!(last.is_new("u1", "0/2 nodes are available: 2 Insufficient cpu."));
    }

    #[test]
    fn objects_are_pods_by_namespace_and_name() {
        let pod = crate::testing::make_pod("web").namespace("shop").pod();
        assert_eq!(PodObject(&pod).to_string(), "pods/shop/web");
    }
}
