//! The kubelet's steps of a pod's journey (`ferry trace`): `pod seen`, `volumes mounted`,
//! `sandbox created`, `image pulled`, `container started`, `init container completed`,
//! `container exited`, the probes passing and `ready`, each a `ferry-journey` span recorded
//! where the work happens (the pod worker, the image manager, the prober).
//!
//! Every step of a pod is made with [`pod_step!`]: component `kubelet`, object
//! `pods/<namespace>/<name>`, the pod's uid, and as parent the `traceparent` the API server
//! wrote into the pod ([`ferry_journey::of_object`]), so the kubelet's steps join the trace of
//! the request that made the pod.

use std::fmt;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// A pod's journey object, `pods/<namespace>/<name>`, written only when a step records it.
pub struct PodObject<'a>(pub &'a ObjectMeta);

impl fmt::Display for PodObject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pods/{}/{}",
            self.0.namespace.as_deref().unwrap_or_default(),
            self.0.name.as_deref().unwrap_or_default()
        )
    }
}

/// A kubelet step for the pod with metadata `$meta` (an `&ObjectMeta`):
/// [`ferry_journey::step!`] with the pod's parent, object, uid and component filled in, and
/// `start_ns` declared so an earlier start can be recorded ([`start_at`]).
///
/// ```ignore
/// let span = pod_step!(&pod.metadata, "sandbox created", ip = tracing::field::Empty);
/// ```
macro_rules! pod_step {
    ($meta:expr, $name:literal $(, $($field:tt)+)?) => {{
        let meta: &::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta = $meta;
        ::ferry_journey::step!(
            $name,
            parent = ::ferry_journey::of_object(meta).unwrap_or_default(),
            object = %$crate::journey::PodObject(meta),
            uid = meta.uid.as_deref().unwrap_or_default(),
            component = "kubelet",
            start_ns = ::tracing::field::Empty
            $(, $($field)+)?
        )
    }};
}
pub(crate) use pod_step;

/// A wall-clock time as a step's `start_ns` or `end_ns` (nanoseconds since the Unix epoch).
pub fn nanos(time: Timestamp) -> u64 {
    u64::try_from(time.as_nanosecond()).unwrap_or(0)
}

/// A CRI time (nanoseconds since the Unix epoch, 0 when unknown) as a step's time.
pub fn cri_nanos(ns: i64) -> Option<u64> {
    u64::try_from(ns).ok().filter(|ns| *ns > 0)
}

/// Records that the step `span` began at `start_ns` (before its span was made), if known.
pub fn start_at(span: &tracing::Span, start_ns: Option<u64>) {
    if let Some(ns) = start_ns {
        span.record("start_ns", ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_carry_the_pods_trace_object_and_uid() {
        let capture = ferry_journey::testing::capture();
        let meta: ObjectMeta = serde_json::from_value(serde_json::json!({
            "name": "p", "namespace": "ns", "uid": "u1",
            "annotations": {(ferry_journey::ANNOTATION): "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        }))
        .expect("meta");
        let span = pod_step!(&meta, "pod seen", node = "n1");
        start_at(&span, cri_nanos(5));
        drop(span);
        drop(pod_step!(&ObjectMeta::default(), "ready"));
        let spans = capture.spans();
        assert_eq!(capture.steps(), ["pod seen", "ready"]);
        let seen = &spans[0];
        assert_eq!(seen.trace_id, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(seen.parent_span_id.as_deref(), Some("b7ad6b7169203331"));
        assert_eq!(seen.component, "kubelet");
        let object = seen.object.as_ref().expect("object");
        assert_eq!(object.key(), "pods/ns/p");
        assert_eq!(object.uid.as_deref(), Some("u1"));
        assert_eq!(seen.start_unix_nanos, 5);
        assert_eq!(seen.attributes.get("node").map(String::as_str), Some("n1"));
        assert_eq!(
            spans[1].parent_span_id, None,
            "no annotation: a trace of its own"
        );
    }

    #[test]
    fn unknown_cri_times_are_none() {
        assert_eq!(cri_nanos(0), None);
        assert_eq!(cri_nanos(-1), None);
        assert_eq!(cri_nanos(7), Some(7));
        assert_eq!(nanos(Timestamp::UNIX_EPOCH), 0);
    }
}
