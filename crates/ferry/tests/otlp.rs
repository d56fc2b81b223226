//! The journey's steps exported over OTLP: a real `ferry server` (and `ferry sim`) with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at a collector of this test's (the OTLP gRPC trace
//! service on 127.0.0.1), and a Deployment created with kubectl.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, Ferry, Sim};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;

/// A span as the collector got it: service, name, pod name, trace id, parent id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Got {
    service: String,
    name: String,
    pod: Option<String>,
    trace: Vec<u8>,
    parent: Vec<u8>,
}

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Got>>>);

fn string(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    })
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = self.0.lock().expect("lock");
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .as_ref()
                .and_then(|r| string(&r.attributes, "service.name"))
                .unwrap_or_default();
            for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                assert!(
                    span.start_time_unix_nano <= span.end_time_unix_nano,
                    "{span:?}"
                );
                got.push(Got {
                    service: service.clone(),
                    name: span.name.clone(),
                    pod: string(&span.attributes, "k8s.pod.name"),
                    trace: span.trace_id.clone(),
                    parent: span.parent_span_id.clone(),
                });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[test]
fn a_pods_steps_reach_an_opentelemetry_collector() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let collector = Collector::default();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let service = TraceServiceServer::new(collector.clone());
    let serving = runtime.spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    // Only this test runs in this binary: the children inherit it.
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{address}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let ferry = Ferry::start_in(dir.path(), &[]);
    let _sim = Sim::start(&ferry, 1, &[]);
    ferry.ok(&[
        "create",
        "deployment",
        "web",
        "--image=registry.local/web:1",
    ]);
    let pod_steps = |got: &[Got]| -> BTreeSet<(String, String)> {
        got.iter()
            .filter(|g| g.pod.as_deref().is_some_and(|p| p.starts_with("web-")))
            .map(|g| (g.service.clone(), g.name.clone()))
            .collect()
    };
    let wanted = [
        ("kube-apiserver", "persisted"),
        ("replicaset-controller", "created pod"),
        ("kube-scheduler", "bound"),
    ];
    let arrived = eventually(Duration::from_secs(30), || {
        let got = collector.0.lock().expect("lock");
        let steps = pod_steps(&got);
        wanted
            .iter()
            .all(|(s, n)| steps.contains(&(s.to_string(), n.to_string())))
    });
    let got = collector.0.lock().expect("lock").clone();
    assert!(arrived, "{:#?}", pod_steps(&got));
    // One trace from the kubectl request on: the scheduler's step has the pod's trace and a
    // parent.
    let bound = got
        .iter()
        .find(|g| g.name == "bound" && g.pod.is_some())
        .expect("bound");
    assert_eq!(bound.trace.len(), 16);
    assert_eq!(bound.parent.len(), 8);
    let created = got
        .iter()
        .find(|g| g.name == "created pod")
        .expect("created pod");
    assert_eq!(created.trace, bound.trace, "one journey");
    serving.abort();
}
