//! The event recorder: core/v1 Events as client-go's legacy `record.EventRecorder` writes them
//! (kube-controller-manager and the kubelet still use it; `kubectl describe` lists these).
//!
//! Recording never blocks the caller: events go through a bounded channel to one task that
//! writes them. A repeat of an event (same source, object, type, reason and message) within the
//! cache's memory is not a new object: the existing one gets `count + 1` and a new
//! `lastTimestamp`, as upstream's `EventCorrelator` does.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use tokio::sync::mpsc;

/// `Normal` or `Warning`, the two event types upstream allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Something expected happened.
    Normal,
    /// Something went wrong or may need attention.
    Warning,
}

impl EventType {
    /// The `type` field's value.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// One event to record.
#[derive(Clone, Debug)]
pub struct Record {
    /// The object the event is about.
    pub involved_object: ObjectReference,
    /// Normal or Warning.
    pub event_type: EventType,
    /// Upstream's CamelCase reason (`Scheduled`, `SuccessfulCreate`, ...).
    pub reason: String,
    /// The human-readable message.
    pub message: String,
}

/// Records events for one component; cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    sender: mpsc::Sender<Record>,
}

/// How many events may wait to be written before new ones are dropped (upstream's broadcaster
/// also drops rather than block its callers).
const QUEUE: usize = 4096;
/// How many distinct events the aggregation cache remembers (client-go: 4096).
const CACHE: usize = 4096;

impl Recorder {
    /// A recorder writing as `component` (the event's `source.component`, e.g.
    /// `default-scheduler`) from `host` (`source.host`, the kubelet's node name, or empty).
    /// Spawns its writer task on the current runtime; it ends when every clone is dropped.
    pub fn new(client: kube::Client, component: &str, host: &str) -> Recorder {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let writer = Writer {
            client,
            source: EventSource {
                component: Some(component.to_string()),
                host: Some(host.to_string()).filter(|h| !h.is_empty()),
            },
            seen: HashMap::new(),
        };
        tokio::spawn(writer.run(receiver));
        Recorder { sender }
    }

    /// A recorder that keeps what it is given, for tests: returns the receiving end.
    pub fn for_tests() -> (Recorder, mpsc::Receiver<Record>) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        (Recorder { sender }, receiver)
    }

    /// Records an event about `object`; never waits.
    pub fn event(
        &self,
        object: ObjectReference,
        event_type: EventType,
        reason: &str,
        message: impl Into<String>,
    ) {
        let record = Record {
            involved_object: object,
            event_type,
            reason: reason.to_string(),
            message: message.into(),
        };
        if self.sender.try_send(record).is_err() {
            tracing::debug!(reason, "event queue full, dropping an event");
        }
    }
}

/// The reference to put in `involvedObject` for a typed object.
pub fn reference<K>(object: &K) -> ObjectReference
where
    K: kube::Resource<DynamicType = ()>,
{
    let meta = object.meta();
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        field_path: None,
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    kind: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    uid: Option<String>,
    field_path: Option<String>,
    event_type: EventType,
    reason: String,
    message: String,
}

struct Seen {
    name: String,
    count: i32,
}

struct Writer {
    client: kube::Client,
    source: EventSource,
    seen: HashMap<Key, Seen>,
}

impl Writer {
    async fn run(mut self, mut receiver: mpsc::Receiver<Record>) {
        while let Some(record) = receiver.recv().await {
            if let Err(error) = self.write(record).await {
                tracing::debug!(%error, "writing an event");
            }
        }
    }

    async fn write(&mut self, record: Record) -> Result<(), kube::Error> {
        let object = &record.involved_object;
        let namespace = object
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let key = Key {
            kind: object.kind.clone(),
            namespace: object.namespace.clone(),
            name: object.name.clone(),
            uid: object.uid.clone(),
            field_path: object.field_path.clone(),
            event_type: record.event_type,
            reason: record.reason.clone(),
            message: record.message.clone(),
        };
        let now = Time(jiff::Timestamp::now());
        if let Some(seen) = self.seen.get_mut(&key) {
            seen.count += 1;
            let patch = serde_json::json!({"count": seen.count, "lastTimestamp": now});
            match api
                .patch(&seen.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                // Expired (1 h TTL) or deleted: record it anew.
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(error),
            }
        }
        if self.seen.len() >= CACHE {
            self.seen.clear();
        }
        let name = format!(
            "{}.{:x}",
            object.name.as_deref().unwrap_or("unknown"),
            jiff::Timestamp::now().as_nanosecond()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace),
                ..Default::default()
            },
            involved_object: object.clone(),
            type_: Some(record.event_type.as_str().to_string()),
            reason: Some(record.reason),
            message: Some(record.message),
            source: Some(self.source.clone()),
            reporting_component: self.source.component.clone(),
            reporting_instance: self.source.host.clone(),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            ..Default::default()
        };
        api.create(&PostParams::default(), &event).await?;
        self.seen.insert(key, Seen { name, count: 1 });
        Ok(())
    }
}
