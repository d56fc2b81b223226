//! The journey's steps to an OpenTelemetry collector (a user's Jaeger or Tempo): OTLP over
//! gRPC, when the OpenTelemetry SDKs' variable `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_ENDPOINT`) is set, e.g. `http://127.0.0.1:4317`.
//!
//! Each step becomes a span with its own trace and span ids, parent, start and end (the step's
//! clock, not the export's), its attributes, the object in Kubernetes' semantic-convention
//! attributes (`k8s.namespace.name`, `k8s.pod.name`, `k8s.pod.uid`…), and an error status when
//! it failed; the component is the span's `service.name`. Steps are batched; a collector that
//! is away loses them (the server's own ring still has them), as a full queue does.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferry_journey::{SinkGuard, SpanRecord};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use tokio::sync::mpsc;

/// The variables read, the signal-specific one first (the SDKs' order).
const ENDPOINT_VARIABLES: &[&str] = &[
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];
/// Steps waiting to be exported; beyond, steps are dropped.
const QUEUE: usize = 4096;
/// Steps per export at most.
const BATCH: usize = 512;
/// How long a batch waits for more steps.
const LINGER: Duration = Duration::from_millis(500);

/// Whether this process already exports (one exporter whatever asks for it).
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Exports this process's steps to the endpoint the environment names, if it names one and
/// no exporter runs yet; until the guard is dropped. Needs a Tokio runtime.
pub fn from_env() -> Option<SinkGuard> {
    let endpoint = ENDPOINT_VARIABLES
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|e| !e.trim().is_empty()))?;
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return None;
    }
    tracing::info!(%endpoint, "exporting journey steps over OTLP");
    Some(ferry_journey::install(OtlpSink::start(endpoint)))
}

/// Queues steps for the exporting task.
struct OtlpSink {
    queue: mpsc::Sender<SpanRecord>,
}

impl OtlpSink {
    fn start(endpoint: String) -> Arc<OtlpSink> {
        let (queue, steps) = mpsc::channel(QUEUE);
        tokio::spawn(export_batches(endpoint, steps));
        Arc::new(OtlpSink { queue })
    }
}

impl ferry_journey::Sink for OtlpSink {
    fn export(&self, span: &Arc<SpanRecord>) {
        let _ = self.queue.try_send(SpanRecord::clone(span));
    }
}

async fn export_batches(endpoint: String, mut steps: mpsc::Receiver<SpanRecord>) {
    let mut client = None;
    while let Some(batch) = ferry_client::journey::next_batch(&mut steps, BATCH, LINGER).await {
        let request = request(&batch);
        if client.is_none() {
            match TraceServiceClient::connect(endpoint.clone()).await {
                Ok(connected) => client = Some(connected),
                Err(error) => {
                    tracing::debug!(%error, %endpoint, "connecting the OTLP collector");
                    continue;
                }
            }
        }
        if let Some(connected) = client.as_mut() {
            if let Err(error) = connected.export(request).await {
                tracing::debug!(%error, %endpoint, "exporting journey steps");
                client = None;
            }
        }
    }
}

/// An export request of `steps`: a resource per component.
fn request(steps: &[SpanRecord]) -> ExportTraceServiceRequest {
    let mut by_component: BTreeMap<&str, Vec<Span>> = BTreeMap::new();
    for step in steps {
        by_component
            .entry(step.component.as_str())
            .or_default()
            .push(otlp_span(step));
    }
    let resource_spans = by_component
        .into_iter()
        .map(|(component, spans)| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![attribute("service.name", component)],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "ferry-journey".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..InstrumentationScope::default()
                }),
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

/// One step as an OTLP span.
fn otlp_span(step: &SpanRecord) -> Span {
    let mut attributes = object_attributes(step);
    attributes.extend(step.attributes.iter().map(|(k, v)| attribute(k, v)));
    let status = step.error.as_ref().map(|message| Status {
        message: message.clone(),
        code: status::StatusCode::Error.into(),
    });
    Span {
        trace_id: hex_bytes(&step.trace_id),
        span_id: hex_bytes(&step.span_id),
        parent_span_id: step
            .parent_span_id
            .as_deref()
            .map(hex_bytes)
            .unwrap_or_default(),
        name: step.step.clone(),
        kind: span::SpanKind::Internal.into(),
        start_time_unix_nano: step.start_unix_nanos,
        end_time_unix_nano: step.end_unix_nanos,
        attributes,
        status,
        ..Span::default()
    }
}

/// The step's object in Kubernetes' semantic conventions: `k8s.namespace.name`, and
/// `k8s.<kind>.name`/`.uid` for the kinds the conventions name.
fn object_attributes(step: &SpanRecord) -> Vec<KeyValue> {
    let Some(object) = &step.object else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if !object.namespace.is_empty() {
        out.push(attribute("k8s.namespace.name", &object.namespace));
    }
    let kind = match object.resource.as_str() {
        "pods" => Some("pod"),
        "deployments" => Some("deployment"),
        "replicasets" => Some("replicaset"),
        "statefulsets" => Some("statefulset"),
        "daemonsets" => Some("daemonset"),
        "jobs" => Some("job"),
        _ => None,
    };
    match kind {
        Some(kind) => {
            if !object.name.is_empty() {
                out.push(attribute(&format!("k8s.{kind}.name"), &object.name));
            }
            if let Some(uid) = object.uid.as_deref().filter(|u| !u.is_empty()) {
                out.push(attribute(&format!("k8s.{kind}.uid"), uid));
            }
        }
        None => out.push(attribute("k8s.object", &object.key())),
    }
    out
}

fn attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..KeyValue::default()
    }
}

/// The bytes of a lower-case hex id (empty for anything else: OTLP's "no id").
fn hex_bytes(hex: &str) -> Vec<u8> {
    if !hex.len().is_multiple_of(2) {
        return Vec::new();
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_journey::ObjectRef;

    fn step(name: &str, component: &str) -> SpanRecord {
        SpanRecord {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: "b7ad6b7169203331".into(),
            parent_span_id: Some("00f067aa0ba902b7".into()),
            step: name.into(),
            component: component.into(),
            object: Some(ObjectRef {
                resource: "pods".into(),
                namespace: "shop".into(),
                name: "web-1".into(),
                uid: Some("u-1".into()),
            }),
            start_unix_nanos: 1_000,
            end_unix_nanos: 3_000,
            error: None,
            attributes: [("node".to_string(), "n1".to_string())].into(),
        }
    }

    fn attributes(span: &Span) -> BTreeMap<String, String> {
        span.attributes
            .iter()
            .map(|kv| {
                let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(any_value::Value::StringValue(s)) => s.clone(),
                    other => format!("{other:?}"),
                };
                (kv.key.clone(), value)
            })
            .collect()
    }

    #[test]
    fn a_step_is_a_span_with_its_own_ids_times_and_object() {
        let span = otlp_span(&step("bound", "kube-scheduler"));
        assert_eq!(hex_bytes("0af7651916cd43dd8448eb211c80319c").len(), 16);
        assert_eq!(span.trace_id, hex_bytes("0af7651916cd43dd8448eb211c80319c"));
        assert_eq!(
            span.span_id,
            vec![0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31]
        );
        assert_eq!(span.parent_span_id, hex_bytes("00f067aa0ba902b7"));
        assert_eq!(span.name, "bound");
        assert_eq!(
            (span.start_time_unix_nano, span.end_time_unix_nano),
            (1_000, 3_000)
        );
        assert!(span.status.is_none());
        let attributes = attributes(&span);
        assert_eq!(attributes["k8s.namespace.name"], "shop");
        assert_eq!(attributes["k8s.pod.name"], "web-1");
        assert_eq!(attributes["k8s.pod.uid"], "u-1");
        assert_eq!(attributes["node"], "n1");
    }

    #[test]
    fn a_failed_step_has_an_error_status_and_a_root_no_parent() {
        let mut failed = step("image pulled", "kubelet");
        failed.error = Some("not found".into());
        failed.parent_span_id = None;
        let span = otlp_span(&failed);
        let status = span.status.expect("a status");
        assert_eq!(status.code, i32::from(status::StatusCode::Error));
        assert_eq!(status.message, "not found");
        assert!(span.parent_span_id.is_empty());
    }

    #[test]
    fn each_component_is_a_service() {
        let request = request(&[
            step("persisted", "kube-apiserver"),
            step("bound", "kube-scheduler"),
            step("request", "kube-apiserver"),
        ]);
        let services: Vec<(String, usize)> = request
            .resource_spans
            .iter()
            .map(|r| {
                let resource = r.resource.as_ref().expect("resource");
                let name = match resource.attributes[0]
                    .value
                    .as_ref()
                    .and_then(|v| v.value.as_ref())
                {
                    Some(any_value::Value::StringValue(s)) => s.clone(),
                    _ => String::new(),
                };
                (name, r.scope_spans[0].spans.len())
            })
            .collect();
        assert_eq!(
            services,
            [
                ("kube-apiserver".to_string(), 2),
                ("kube-scheduler".to_string(), 1)
            ]
        );
    }

    #[test]
    fn ids_that_are_not_hex_are_no_ids() {
        assert!(hex_bytes("abc").is_empty());
        assert!(hex_bytes("zz").is_empty());
        assert_eq!(hex_bytes("0aff"), vec![0x0a, 0xff]);
    }
}
