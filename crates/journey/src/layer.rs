//! The `tracing` layer that turns spans of target `journey` into [`SpanRecord`]s.
//!
//! A component writes a step as an ordinary span (usually through [`step!`](crate::step)):
//!
//! ```ignore
//! let span = ferry_journey::step!("bound", parent = %traceparent, object = %key, node = %node);
//! client.create(…).instrument(span).await
//! ```
//!
//! Fields the layer reads: `parent` (a `traceparent`; without it the step hangs under the
//! nearest enclosing journey span, or starts a trace), `object` (`resource/namespace/name`),
//! `uid`, `component`, `start_ns` (a start earlier than the span's creation, for a step the
//! component noticed afterwards, such as time spent in a queue), `end_ns`, and `error` (the
//! step failed). Every other field becomes an attribute. `component` and `object` are
//! inherited from the enclosing journey span. The record is exported to the installed
//! [`sink`](crate::sink)s when the span closes. Spans made while journeys are
//! [switched off](crate::sink::switch_off) are left alone.

use std::collections::BTreeMap;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::context::{SpanId, TraceContext, TraceId};
use crate::record::{now_unix_nanos, ObjectRef, SpanRecord};

/// The target every journey span has.
pub const TARGET: &str = "journey";

/// The layer; install it with its [`JourneyLayer::filter`] so only journey spans reach it.
#[derive(Default, Clone, Copy, Debug)]
pub struct JourneyLayer;

/// What the layer keeps in a span's extensions while it is open.
struct Open {
    context: TraceContext,
    parent: Option<SpanId>,
    fields: Fields,
    start: u64,
}

#[derive(Default)]
struct Fields {
    parent: Option<TraceContext>,
    object: Option<ObjectRef>,
    uid: Option<String>,
    component: Option<String>,
    start_ns: Option<u64>,
    end_ns: Option<u64>,
    error: Option<String>,
    attributes: BTreeMap<String, String>,
}

impl Fields {
    fn set(&mut self, field: &Field, value: String) {
        match field.name() {
            "parent" => self.parent = TraceContext::parse(&value),
            "object" => self.object = ObjectRef::parse(&value),
            "uid" => self.uid = Some(value).filter(|u| !u.is_empty()),
            "component" => self.component = Some(value),
            "start_ns" => self.start_ns = value.parse().ok(),
            "end_ns" => self.end_ns = value.parse().ok(),
            "error" => self.error = Some(value),
            name => {
                self.attributes.insert(name.to_string(), value);
            }
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, value.to_string());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field, value.to_string());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field, value.to_string());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.set(field, format!("{value:?}"));
    }
}

impl JourneyLayer {
    /// The per-layer filter: journey spans only, whatever the log filter says.
    pub fn filter<S>() -> impl Filter<S> + Clone {
        tracing_subscriber::filter::filter_fn(|metadata| metadata.target() == TARGET)
    }
}

impl<S> Layer<S> for JourneyLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        // Switched off, a span gets no context (nor anything else): it is no step.
        if !crate::sink::enabled() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        // The nearest enclosing journey span: its context is the parent unless `parent` says
        // otherwise, and it lends the component and object the step leaves out (cloned only
        // then).
        let mut context = None;
        for ancestor in span.scope().skip(1) {
            let extensions = ancestor.extensions();
            let Some(open) = extensions.get::<Open>() else {
                continue;
            };
            context = Some(open.context);
            if fields.component.is_none() {
                fields.component = open.fields.component.clone();
            }
            if fields.object.is_none() {
                fields.object = open.fields.object.clone();
                if fields.uid.is_none() {
                    fields.uid = open.fields.uid.clone();
                }
            }
            break;
        }
        let (trace_id, parent) = match (fields.parent, context) {
            (Some(parent), _) => (parent.trace_id, Some(parent.span_id)),
            (None, Some(context)) => (context.trace_id, Some(context.span_id)),
            (None, None) => (TraceId::random(), None),
        };
        let open = Open {
            context: TraceContext {
                trace_id,
                span_id: SpanId::random(),
            },
            parent,
            fields,
            start: now_unix_nanos(),
        };
        span.extensions_mut().insert(open);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(open) = extensions.get_mut::<Open>() {
            values.record(&mut open.fields);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(open) = span.extensions_mut().remove::<Open>() else {
            return;
        };
        let end = open.fields.end_ns.unwrap_or_else(now_unix_nanos);
        let start = open.fields.start_ns.unwrap_or(open.start).min(end);
        let object = with_uid(open.fields.object, open.fields.uid);
        crate::sink::export(SpanRecord {
            trace_id: open.context.trace_id.to_string(),
            span_id: open.context.span_id.to_string(),
            parent_span_id: open.parent.map(|p| p.to_string()),
            step: span.name().to_string(),
            component: open.fields.component.unwrap_or_default(),
            object,
            start_unix_nanos: start,
            end_unix_nanos: end,
            error: open.fields.error,
            attributes: open.fields.attributes,
        });
    }
}

/// Records a step that is over — from `start` to `end` (Unix nanoseconds), with `attributes`
/// and the `error` it failed with — as a child of the journey span the caller is in, without
/// making a span: for a step whose times were taken (the filters' stamps, a store write) and
/// which has no steps of its own, a record costs much less than a span's life. It inherits the
/// component and object as a span would; nothing is recorded outside a journey span.
pub fn record_past(
    step: &'static str,
    start: u64,
    end: u64,
    attributes: &[(&'static str, &str)],
    error: Option<&str>,
) {
    if !crate::sink::enabled() {
        return;
    }
    let record = with_open(&tracing::Span::current(), |open| SpanRecord {
        trace_id: open.context.trace_id.to_string(),
        span_id: SpanId::random().to_string(),
        parent_span_id: Some(open.context.span_id.to_string()),
        step: step.to_string(),
        component: open.fields.component.clone().unwrap_or_default(),
        object: with_uid(open.fields.object.clone(), open.fields.uid.clone()),
        start_unix_nanos: start.min(end),
        end_unix_nanos: end,
        error: error.map(str::to_string),
        attributes: attributes
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    });
    if let Some(record) = record {
        crate::sink::export(record);
    }
}

/// The context of the journey span the caller is in (the current span or its nearest journey
/// ancestor): what a client sends as `traceparent` so the API server's steps join the journey.
pub fn current() -> Option<TraceContext> {
    context_of(&tracing::Span::current())
}

/// The context of `span` or of its nearest journey ancestor.
pub fn context_of(span: &tracing::Span) -> Option<TraceContext> {
    with_open(span, |open| open.context)
}

/// `read` of the journey span `span` is (itself, or its nearest journey ancestor).
fn with_open<T>(span: &tracing::Span, mut read: impl FnMut(&Open) -> T) -> Option<T> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let span = registry.span(id)?;
        span.scope()
            .find_map(|s| s.extensions().get::<Open>().map(&mut read))
    })
    .flatten()
}

/// A step's object with the uid recorded beside it.
fn with_uid(object: Option<ObjectRef>, uid: Option<String>) -> Option<ObjectRef> {
    object.map(|object| ObjectRef { uid, ..object })
}
