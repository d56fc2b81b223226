//! One finished step, as the components export it and the API server keeps and serves it
//! (`/journey/v1/…`, JSON in camelCase).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::context::{SpanId, TraceContext, TraceId};

/// One step one component took for one object, with its start and end on that component's
/// clock (nanoseconds since the Unix epoch).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpanRecord {
    /// The journey: 32 hex digits.
    pub trace_id: String,
    /// This step: 16 hex digits.
    pub span_id: String,
    /// The step it hangs under, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
    /// What was done, in the seeds' words (`authenticated`, `bound`, `sandbox created`…).
    pub step: String,
    /// Who did it (`kube-apiserver`, `kube-scheduler`, `kubelet`…).
    pub component: String,
    /// What it was done for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectRef>,
    /// When it started.
    pub start_unix_nanos: u64,
    /// When it ended (never before the start).
    pub end_unix_nanos: u64,
    /// Why it failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What else the component said about it (`node`, `revision`, `feasible`…).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// The object a step was for: `pods/default/web-1` and its uid when known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// The resource's plural (`pods`, `deployments`).
    pub resource: String,
    /// Its namespace (empty for cluster-scoped ones).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its uid, once the object has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

impl ObjectRef {
    /// Reads `resource/namespace/name` or `resource/name` (the `object` field of a step).
    pub fn parse(text: &str) -> Option<ObjectRef> {
        let mut parts = text.splitn(3, '/');
        let resource = parts.next().filter(|r| !r.is_empty())?;
        let first = parts.next()?;
        let (namespace, name) = match parts.next() {
            Some(name) => (first, name),
            None => ("", first),
        };
        Some(ObjectRef {
            resource: resource.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: None,
        })
    }

    /// `resource/namespace/name`, or `resource/name` when cluster-scoped.
    pub fn key(&self) -> String {
        if self.namespace.is_empty() {
            format!("{}/{}", self.resource, self.name)
        } else {
            format!("{}/{}/{}", self.resource, self.namespace, self.name)
        }
    }
}

impl SpanRecord {
    /// The trace it belongs to, if its id is well formed.
    pub fn trace(&self) -> Option<TraceId> {
        TraceId::parse(&self.trace_id)
    }

    /// The context a step under this one would carry.
    pub fn context(&self) -> Option<TraceContext> {
        Some(TraceContext {
            trace_id: self.trace()?,
            span_id: SpanId::parse(&self.span_id)?,
        })
    }

    /// How long it took, in nanoseconds.
    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nanos.saturating_sub(self.start_unix_nanos)
    }
}

/// Now, in nanoseconds since the Unix epoch.
pub fn now_unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A [`std::time::SystemTime`] in nanoseconds since the Unix epoch (a step's `start_ns`).
pub fn unix_nanos(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_round_trip() {
        let pod = ObjectRef::parse("pods/default/web-1").expect("valid");
        assert_eq!(
            (pod.namespace.as_str(), pod.name.as_str()),
            ("default", "web-1")
        );
        assert_eq!(pod.key(), "pods/default/web-1");
        let node = ObjectRef::parse("nodes/n1").expect("valid");
        assert_eq!(node.namespace, "");
        assert_eq!(node.key(), "nodes/n1");
        assert_eq!(ObjectRef::parse("pods"), None);
        assert_eq!(ObjectRef::parse("/x"), None);
    }
}
