//! `ferry-journey`: a pod's journey through the cluster, step by step.
//!
//! Each component records the steps it takes for an object (the API server's authentication,
//! admission and persistence of a write; the controller creating the pod; the scheduler's
//! filtering, scoring and binding; the kubelet's sandbox, network, containers and probes) as
//! `tracing` spans of target `journey` ([`step!`]). [`JourneyLayer`] turns them into
//! [`SpanRecord`]s with W3C trace and span ids and hands them to the installed
//! [`sink`]s: in the API server its [`Journeys`] ring, in a process of its own a batcher that
//! posts them to the server (`POST /journey/v1/spans`).
//!
//! The trace travels between components as upstream's API server tracing carries it: a
//! client sends `traceparent` ([`current`] gives the value for the span it is in), and the API
//! server writes the context of the request that created or changed an object into the
//! object's [`ANNOTATION`], where the next component (a controller, the scheduler, the
//! kubelet) reads it as the parent of its own steps.
//!
//! Start reading at [`layer`]; the bounds of what the server keeps are in [`ring`].

pub mod context;
pub mod layer;
pub mod record;
pub mod ring;
pub mod sink;
pub mod steps;
pub mod testing;

pub use context::{SpanId, TraceContext, TraceId};
pub use layer::{context_of, current, record_past, JourneyLayer, TARGET};
pub use record::{now_unix_nanos, unix_nanos, ObjectRef, SpanRecord};
pub use ring::{Journeys, Limits, TraceSnapshot};
pub use sink::{install, Sink, SinkGuard};

/// The annotation holding the `traceparent` of the request that created an object (or last
/// changed its spec): the parent of the steps other components take for it.
pub const ANNOTATION: &str = "journey.ferry.dev/traceparent";

/// The HTTP header a client sends the context of its step in (W3C Trace Context).
pub const HEADER: &str = "traceparent";

/// The `traceparent` an object carries in its [`ANNOTATION`], if any.
pub fn of_object(meta: &k8s_meta::ObjectMeta) -> Option<&str> {
    meta.annotations
        .as_ref()?
        .get(ANNOTATION)
        .map(String::as_str)
}

#[doc(hidden)]
pub mod k8s_meta {
    pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
}

/// A journey step: an `info` span of target `journey` with the given static name and fields,
/// and `error` and `end_ns` declared so they can be recorded later ([`fail`]). With journeys
/// [switched off](sink::switch_off), a disabled span, the fields left unevaluated.
///
/// ```ignore
/// let span = ferry_journey::step!("bound", parent = %tp, object = %key, component = "kube-scheduler");
/// ```
#[macro_export]
macro_rules! step {
    ($name:literal) => {
        if $crate::sink::enabled() {
            ::tracing::info_span!(target: "journey", $name, error = ::tracing::field::Empty, end_ns = ::tracing::field::Empty)
        } else {
            ::tracing::Span::none()
        }
    };
    ($name:literal, $($field:tt)+) => {
        if $crate::sink::enabled() {
            ::tracing::info_span!(target: "journey", $name, error = ::tracing::field::Empty, end_ns = ::tracing::field::Empty, $($field)+)
        } else {
            ::tracing::Span::none()
        }
    };
}

/// Marks a step failed, with why.
pub fn fail(span: &tracing::Span, error: impl std::fmt::Display) {
    span.record("error", tracing::field::display(error));
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer;

    use super::*;

    /// Keeps the steps of one component (tests run side by side and share the sinks).
    struct Keep(&'static str, Mutex<Vec<SpanRecord>>);

    impl Sink for Keep {
        fn export(&self, span: &std::sync::Arc<SpanRecord>) {
            if span.component == self.0 {
                self.1.lock().push(SpanRecord::clone(span));
            }
        }
    }

    fn recorded(component: &'static str, work: impl FnOnce()) -> Vec<SpanRecord> {
        let _on = sink::SWITCH.read();
        let keep = Arc::new(Keep(component, Mutex::new(Vec::new())));
        let _guard = install(keep.clone());
        let subscriber =
            tracing_subscriber::registry().with(JourneyLayer.with_filter(JourneyLayer::filter()));
        tracing::subscriber::with_default(subscriber, work);
        let spans = keep.1.lock().clone();
        spans
    }

    #[test]
    fn nested_steps_share_the_trace_and_inherit_component_and_object() {
        let spans = recorded("c1", || {
            let outer = step!(
                "request",
                component = "c1",
                object = "pods/default/p",
                uid = "u1",
                verb = "create"
            );
            let _in = outer.enter();
            let inner = step!("authenticated", user = "admin");
            fail(&inner, "nope");
            drop(inner);
            let noise = tracing::info_span!("not a journey step");
            let _n = noise.enter();
            let deeper = step!("persisted", revision = 42u64);
            drop(deeper);
        });
        assert_eq!(spans.len(), 3);
        let (auth, persisted, request) = (&spans[0], &spans[1], &spans[2]);
        assert_eq!(request.step, "request");
        assert_eq!(request.parent_span_id, None);
        assert_eq!(
            request.attributes.get("verb").map(String::as_str),
            Some("create")
        );
        for child in [auth, persisted] {
            assert_eq!(child.trace_id, request.trace_id);
            assert_eq!(
                child.parent_span_id.as_deref(),
                Some(request.span_id.as_str())
            );
            assert_eq!(child.component, "c1");
            let object = child.object.as_ref().expect("inherited");
            assert_eq!(
                (object.name.as_str(), object.uid.as_deref()),
                ("p", Some("u1"))
            );
            assert!(child.start_unix_nanos <= child.end_unix_nanos);
        }
        assert_eq!(auth.error.as_deref(), Some("nope"));
        assert_eq!(
            persisted.attributes.get("revision").map(String::as_str),
            Some("42")
        );
    }

    #[test]
    fn an_explicit_parent_joins_another_components_trace() {
        let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let mut current_inside = None;
        let spans = recorded("c2", || {
            let span = step!("bound", component = "c2", parent = parent, start_ns = 5u64);
            let _in = span.enter();
            current_inside = current();
        });
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].trace_id, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(spans[0].parent_span_id.as_deref(), Some("b7ad6b7169203331"));
        assert_eq!(
            spans[0].start_unix_nanos, 5,
            "a step may have started before its span"
        );
        let inside = current_inside.expect("a journey span was current");
        assert_eq!(
            inside.to_string(),
            format!("00-{}-{}-01", spans[0].trace_id, spans[0].span_id)
        );
    }

    #[test]
    fn a_past_step_is_a_child_of_the_current_step_without_a_span() {
        let spans = recorded("c4", || {
            let outer = step!(
                "request",
                component = "c4",
                object = "pods/default/p",
                uid = "u1"
            );
            let _in = outer.enter();
            record_past("persisted", 10, 20, &[("revision", "7")], None);
            record_past("validation", 30, 25, &[], Some("invalid"));
        });
        let steps: Vec<&str> = spans.iter().map(|s| s.step.as_str()).collect();
        assert_eq!(steps, ["persisted", "validation", "request"]);
        let (persisted, validation, request) = (&spans[0], &spans[1], &spans[2]);
        assert_eq!(
            persisted.parent_span_id.as_deref(),
            Some(request.span_id.as_str())
        );
        assert_eq!(persisted.trace_id, request.trace_id);
        assert_ne!(persisted.span_id, validation.span_id);
        assert_eq!(
            (persisted.start_unix_nanos, persisted.end_unix_nanos),
            (10, 20)
        );
        assert_eq!(
            persisted.attributes.get("revision").map(String::as_str),
            Some("7")
        );
        let object = persisted.object.as_ref().expect("inherited");
        assert_eq!(
            (object.name.as_str(), object.uid.as_deref()),
            ("p", Some("u1"))
        );
        assert_eq!(validation.start_unix_nanos, 25, "never a negative duration");
        assert_eq!(validation.error.as_deref(), Some("invalid"));
    }

    #[test]
    fn outside_a_journey_there_is_no_context() {
        let spans = recorded("c3", || {
            let span = tracing::info_span!("other");
            let _in = span.enter();
            assert_eq!(current(), None);
        });
        assert!(spans.is_empty());
    }

    #[test]
    fn objects_carry_their_parent_in_an_annotation() {
        let mut meta = k8s_meta::ObjectMeta::default();
        assert_eq!(of_object(&meta), None);
        meta.annotations = Some([(ANNOTATION.to_string(), "00-x".to_string())].into());
        assert_eq!(of_object(&meta), Some("00-x"));
    }
}
