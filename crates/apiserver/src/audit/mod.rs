//! The audit log: the events ([`AuditEvent`]) and where they go ([`AuditSink`]), the policy
//! that says what is recorded ([`policy`]) and the file backend ([`log`]); the filter that
//! makes the events is [`crate::filters::audit`].

pub mod log;
pub mod policy;

use serde_json::{json, Value};

use crate::request::RequestInfo;
use policy::Level;

/// One answered request (upstream's audit `Event` at stage `ResponseComplete`).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// The level it was recorded at.
    pub level: Level,
    /// A unique id.
    pub audit_id: String,
    /// Who asked.
    pub user: String,
    /// Their groups.
    pub groups: Vec<String>,
    /// The Kubernetes verb.
    pub verb: String,
    /// The request URI.
    pub request_uri: String,
    /// What the request is about.
    pub info: Option<RequestInfo>,
    /// The client's address.
    pub source_ip: Option<String>,
    /// The client's `User-Agent`.
    pub user_agent: String,
    /// The response code.
    pub code: u16,
    /// The request's body (level `Request` and up).
    pub request_object: Option<Value>,
    /// The response's body (level `RequestResponse`).
    pub response_object: Option<Value>,
    /// When the request arrived.
    pub received: jiff::Timestamp,
    /// When it was answered.
    pub completed: jiff::Timestamp,
    /// What admission recorded about the request (`pod-security.kubernetes.io/…`,
    /// `validation.policy.admission.k8s.io/…`, webhooks' audit annotations).
    pub annotations: Annotations,
}

/// Audit annotations, by key; the resource handler leaves them in the response's extensions
/// for the audit filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Annotations(pub std::collections::BTreeMap<String, String>);

impl AuditEvent {
    /// How long the answer took, in seconds.
    pub fn latency_seconds(&self) -> f64 {
        self.completed.duration_since(self.received).as_secs_f64()
    }

    /// The event as upstream's `audit.k8s.io/v1` Event; `None` at level `None`.
    pub fn to_json(&self) -> Option<Value> {
        if self.level == Level::None {
            return None;
        }
        let time = |t: jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        let mut event = json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1",
            "level": self.level.as_str(), "auditID": self.audit_id, "stage": "ResponseComplete",
            "requestURI": self.request_uri, "verb": self.verb,
            "user": {"username": self.user, "groups": self.groups},
            "sourceIPs": self.source_ip.iter().collect::<Vec<_>>(),
            "userAgent": self.user_agent,
            "responseStatus": {"metadata": {}, "code": self.code},
            "requestReceivedTimestamp": time(self.received),
            "stageTimestamp": time(self.completed),
        });
        if let Some(info) = self.info.as_ref().filter(|i| i.is_resource_request) {
            let mut reference = json!({"resource": info.resource, "apiVersion": info.version});
            for (field, value) in [
                ("namespace", &info.namespace),
                ("name", &info.name),
                ("apiGroup", &info.group),
                ("subresource", &info.subresource),
            ] {
                if !value.is_empty() {
                    reference[field] = json!(value);
                }
            }
            event["objectRef"] = reference;
        }
        if !self.annotations.0.is_empty() {
            event["annotations"] = json!(self.annotations.0);
        }
        if let Some(object) = &self.request_object {
            event["requestObject"] = object.clone();
        }
        if let Some(object) = &self.response_object {
            event["responseObject"] = object.clone();
        }
        Some(event)
    }
}

/// Where audit events go.
pub trait AuditSink: Send + Sync {
    /// Records one event.
    fn record(&self, event: &AuditEvent);
}

/// Audit events as `tracing` events.
pub struct TracingSink;

impl AuditSink for TracingSink {
    fn record(&self, event: &AuditEvent) {
        tracing::debug!(
            target: "ferry::audit",
            user = %event.user,
            verb = %event.verb,
            uri = %event.request_uri,
            code = event.code,
            latency = event.latency_seconds(),
            "ResponseComplete"
        );
    }
}
