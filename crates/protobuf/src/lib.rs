//! `ferry-protobuf`: request bodies in Kubernetes' protobuf encoding
//! (`application/vnd.kubernetes.protobuf`), which client-go's typed clients — and so `kubectl
//! create namespace|configmap|deployment`, `kubectl run`, controllers — send for built-in
//! kinds, decoded into the JSON the API server works with (`ferry_apiserver::rest`'s
//! `parse_body` turns a [`ProtobufError`] into its `Status`). A crate of its own so that the
//! decoder is fuzzed without building the API server (`fuzz/fuzz_targets/protobuf.rs`).
//!
//! The envelope is `k8s\0` + a `runtime.Unknown` message holding `typeMeta` and the object's
//! own bytes. The object is decoded with the generated types of `k8s-rs-pb` (which carry the
//! upstream `.proto` field numbers and JSON names) and turned into the JSON the rest of the
//! server works with. Go's protobuf encoding writes value-typed fields even when empty, where
//! JSON would omit them; those zero values are removed again here (empty strings, zero times,
//! empty lists and maps), so a protobuf request and its JSON twin become the same object.

use base64::Engine as _;
use k8s_rs_pb::api;
use k8s_rs_pb::apimachinery::pkg::apis::meta;
use protobuf::Message;
use serde_json::{Map, Value};

/// The media type.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8; 4] = b"k8s\0";

/// Why a request body is refused, in upstream's words: 400 but for [`ProtobufError::Unsupported`]
/// (415).
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    /// No `k8s\0` prefix.
    #[error(
        "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
    )]
    NotProtobuf,
    /// The `runtime.Unknown` envelope does not decode.
    #[error("unable to decode protobuf envelope: {0}")]
    Envelope(String),
    /// The object does not decode as its kind.
    #[error("unable to decode {kind} from protobuf{why}")]
    Object {
        /// The kind the envelope names.
        kind: String,
        /// `: <the decoder's error>`, or nothing when the decoder panicked.
        why: String,
    },
    /// A kind ferry reads only as JSON.
    #[error("{MEDIA_TYPE} for {api_version}, Kind={kind}; send application/json")]
    Unsupported {
        /// Its API version.
        api_version: String,
        /// Its kind.
        kind: String,
    },
}

/// Why an object's bytes do not decode.
#[derive(Debug, thiserror::Error)]
enum DecodeError {
    /// Not the message it says it is.
    #[error(transparent)]
    Protobuf(#[from] protobuf::Error),
    /// Not representable as JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

fn decode_as<T: Message + serde::Serialize>(raw: &[u8]) -> Result<Value, DecodeError> {
    let message = T::parse_from_bytes(raw)?;
    Ok(serde_json::to_value(&message)?)
}

macro_rules! kinds {
    ($api_version:expr, $kind:expr, $raw:expr; $( ($av:literal, $k:literal) => $ty:ty ),* $(,)?) => {
        match ($api_version, $kind) {
            $( ($av, $k) => Some(decode_as::<$ty>($raw)), )*
            _ => None,
        }
    };
}

/// Decodes one protobuf request body into JSON (with `apiVersion` and `kind`).
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtobufError::NotProtobuf)?;
    let unknown = k8s_rs_pb::apimachinery::pkg::runtime::Unknown::parse_from_bytes(rest)
        .map_err(|e| ProtobufError::Envelope(e.to_string()))?;
    let api_version = unknown.typeMeta.apiVersion.clone().unwrap_or_default();
    let kind = unknown.typeMeta.kind.clone().unwrap_or_default();
    let raw = unknown.raw.clone().unwrap_or_default();
    // The generated serializers unwrap on malformed data; a bad body must not take the
    // connection down with it.
    let decoded =
        std::panic::catch_unwind(|| decode_kind(&api_version, &kind, &raw)).map_err(|_| {
            ProtobufError::Object {
                kind: kind.clone(),
                why: String::new(),
            }
        })?;
    let mut value = match decoded {
        Some(Ok(value)) => value,
        Some(Err(e)) => {
            return Err(ProtobufError::Object {
                kind,
                why: format!(": {e}"),
            })
        }
        None => return Err(ProtobufError::Unsupported { api_version, kind }),
    };
    clean(&mut value, None);
    if kind == "Secret" {
        base64_map(&mut value, "data");
    }
    if kind == "ConfigMap" {
        base64_map(&mut value, "binaryData");
    }
    if let Value::Object(map) = &mut value {
        map.insert("apiVersion".into(), Value::String(api_version));
        map.insert("kind".into(), Value::String(kind));
    }
    Ok(value)
}

fn decode_kind(api_version: &str, kind: &str, raw: &[u8]) -> Option<Result<Value, DecodeError>> {
    kinds!(api_version, kind, raw;
        ("v1", "Namespace") => api::core::v1::Namespace,
        ("v1", "ConfigMap") => api::core::v1::ConfigMap,
        ("v1", "Secret") => api::core::v1::Secret,
        ("v1", "Service") => api::core::v1::Service,
        ("v1", "ServiceAccount") => api::core::v1::ServiceAccount,
        ("v1", "Pod") => api::core::v1::Pod,
        ("v1", "Node") => api::core::v1::Node,
        ("v1", "Endpoints") => api::core::v1::Endpoints,
        ("v1", "Event") => api::core::v1::Event,
        ("v1", "LimitRange") => api::core::v1::LimitRange,
        ("v1", "ResourceQuota") => api::core::v1::ResourceQuota,
        ("v1", "PersistentVolume") => api::core::v1::PersistentVolume,
        ("v1", "PersistentVolumeClaim") => api::core::v1::PersistentVolumeClaim,
        ("v1", "ReplicationController") => api::core::v1::ReplicationController,
        ("v1", "PodTemplate") => api::core::v1::PodTemplate,
        ("v1", "Binding") => api::core::v1::Binding,
        ("v1", "DeleteOptions") => meta::v1::DeleteOptions,
        ("meta.k8s.io/v1", "DeleteOptions") => meta::v1::DeleteOptions,
        ("apps/v1", "Deployment") => api::apps::v1::Deployment,
        ("apps/v1", "ReplicaSet") => api::apps::v1::ReplicaSet,
        ("apps/v1", "StatefulSet") => api::apps::v1::StatefulSet,
        ("apps/v1", "DaemonSet") => api::apps::v1::DaemonSet,
        ("apps/v1", "ControllerRevision") => api::apps::v1::ControllerRevision,
        ("batch/v1", "Job") => api::batch::v1::Job,
        ("batch/v1", "CronJob") => api::batch::v1::CronJob,
        ("autoscaling/v1", "Scale") => api::autoscaling::v1::Scale,
        ("autoscaling/v2", "HorizontalPodAutoscaler") => api::autoscaling::v2::HorizontalPodAutoscaler,
        ("policy/v1", "Eviction") => api::policy::v1::Eviction,
        ("policy/v1", "PodDisruptionBudget") => api::policy::v1::PodDisruptionBudget,
        ("coordination.k8s.io/v1", "Lease") => api::coordination::v1::Lease,
        ("discovery.k8s.io/v1", "EndpointSlice") => api::discovery::v1::EndpointSlice,
        ("events.k8s.io/v1", "Event") => api::events::v1::Event,
        ("rbac.authorization.k8s.io/v1", "Role") => api::rbac::v1::Role,
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => api::rbac::v1::RoleBinding,
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => api::rbac::v1::ClusterRole,
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => api::rbac::v1::ClusterRoleBinding,
        ("scheduling.k8s.io/v1", "PriorityClass") => api::scheduling::v1::PriorityClass,
        ("storage.k8s.io/v1", "StorageClass") => api::storage::v1::StorageClass,
        ("networking.k8s.io/v1", "NetworkPolicy") => api::networking::v1::NetworkPolicy,
        ("networking.k8s.io/v1", "Ingress") => api::networking::v1::Ingress,
        ("networking.k8s.io/v1", "IngressClass") => api::networking::v1::IngressClass,
        ("node.k8s.io/v1", "RuntimeClass") => api::node::v1::RuntimeClass,
        ("certificates.k8s.io/v1", "CertificateSigningRequest") => api::certificates::v1::CertificateSigningRequest,
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => api::authorization::v1::SelfSubjectAccessReview,
        ("authorization.k8s.io/v1", "SubjectAccessReview") => api::authorization::v1::SubjectAccessReview,
        ("authorization.k8s.io/v1", "LocalSubjectAccessReview") => api::authorization::v1::LocalSubjectAccessReview,
        ("authorization.k8s.io/v1", "SelfSubjectRulesReview") => api::authorization::v1::SelfSubjectRulesReview,
        ("authentication.k8s.io/v1", "SelfSubjectReview") => api::authentication::v1::SelfSubjectReview,
        ("authentication.k8s.io/v1", "TokenReview") => api::authentication::v1::TokenReview,
        ("authentication.k8s.io/v1", "TokenRequest") => api::authentication::v1::TokenRequest,
        ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration") => api::admissionregistration::v1::ValidatingWebhookConfiguration,
        ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration") => api::admissionregistration::v1::MutatingWebhookConfiguration,
    )
}

/// Fields whose value is a map from user keys: their entries are data, never zero values.
const MAP_FIELDS: &[&str] = &[
    "labels",
    "annotations",
    "data",
    "stringData",
    "binaryData",
    "nodeSelector",
    "matchLabels",
    "selector",
    "capacity",
    "allocatable",
    "limits",
    "requests",
    "hard",
    "used",
    "parameters",
    "attributes",
    "volumeAttributes",
    "overhead",
    "allocatedResources",
];

/// Go structs embedded with `json:",inline"`: a field of their own in protobuf, their fields
/// spread into the parent's in JSON (a Volume's `volumeSource`, an IngressRule's
/// `ingressRuleValue`, a Probe's `handler`, a webhook rule's `rule`).
const INLINE_FIELDS: &[&str] = &[
    "volumeSource",
    "persistentVolumeSource",
    "ingressRuleValue",
    "handler",
    "rule",
    "ruleWithOperations",
];

/// The zero time Go writes for an unset `metav1.Time`.
const ZERO_TIME: &str = "1970-01-01T00:00:00Z";

/// Removes what Go's JSON encoding would have omitted: nulls, empty strings, zero times, empty
/// lists and (for map fields) empty maps. `field` is the name of the field holding `value`.
fn clean(value: &mut Value, field: Option<&str>) {
    match value {
        Value::Object(map) => {
            let is_map_field = field.is_some_and(|f| MAP_FIELDS.contains(&f));
            if is_map_field && !map.is_empty() && map.values().all(Value::is_string) {
                // User data: keep every entry as it is.
                return;
            }
            // Rust keywords get a trailing underscore in the generated types (`type_`); JSON
            // field names never end in one.
            let escaped: Vec<String> = map.keys().filter(|k| k.ends_with('_')).cloned().collect();
            for key in escaped {
                if let Some(v) = map.remove(&key) {
                    map.insert(key.trim_end_matches('_').to_string(), v);
                }
            }
            for key in INLINE_FIELDS {
                if let Some(Value::Object(_)) = map.get(*key) {
                    if let Some(Value::Object(inner)) = map.remove(*key) {
                        map.extend(inner);
                    }
                }
            }
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let remove = match map.get_mut(&key) {
                    Some(v) => {
                        clean(v, Some(&key));
                        is_zero(v, &key)
                    }
                    None => false,
                };
                if remove {
                    map.remove(&key);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                clean(item, None);
            }
        }
        _ => {}
    }
}

fn is_zero(value: &Value, key: &str) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty() || s == ZERO_TIME,
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty() && MAP_FIELDS.contains(&key),
        _ => false,
    }
}

/// `map<string, bytes>` arrives as arrays of numbers; JSON carries base64.
fn base64_map(object: &mut Value, field: &str) {
    let Some(Value::Object(map)) = object.get_mut(field) else {
        return;
    };
    let encoded: Map<String, Value> = map
        .iter()
        .map(|(k, v)| {
            let bytes: Vec<u8> = v
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|b| b.as_u64().map(|b| b as u8))
                        .collect()
                })
                .unwrap_or_default();
            (
                k.clone(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
            )
        })
        .collect();
    *map = encoded;
}

#[cfg(test)]
mod tests {
    use super::*;
    use protobuf::MessageField;

    fn envelope<T: Message>(api_version: &str, kind: &str, object: &T) -> Vec<u8> {
        let mut unknown = k8s_rs_pb::apimachinery::pkg::runtime::Unknown::new();
        let mut type_meta = k8s_rs_pb::apimachinery::pkg::runtime::TypeMeta::new();
        type_meta.apiVersion = Some(api_version.into());
        type_meta.kind = Some(kind.into());
        unknown.typeMeta = MessageField::some(type_meta);
        unknown.raw = Some(object.write_to_bytes().expect("encode"));
        let mut body = MAGIC.to_vec();
        body.extend(unknown.write_to_bytes().expect("encode"));
        body
    }

    #[test]
    fn a_configmap_as_kubectl_create_sends_it() {
        let mut cm = api::core::v1::ConfigMap::new();
        let mut meta = meta::v1::ObjectMeta::new();
        meta.name = Some("settings".into());
        // Go writes empty value-typed fields.
        meta.generateName = Some(String::new());
        meta.creationTimestamp = MessageField::some(meta::v1::Time::new());
        cm.metadata = MessageField::some(meta);
        cm.data.insert("color".into(), "blue".into());
        cm.data.insert("empty".into(), String::new());
        let json = decode(&envelope("v1", "ConfigMap", &cm)).expect("decode");
        assert_eq!(
            json,
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"color": "blue", "empty": ""}})
        );
    }

    #[test]
    fn rust_keyword_fields_get_their_json_names() {
        let mut service = api::core::v1::Service::new();
        let mut spec = api::core::v1::ServiceSpec::new();
        spec.type_ = Some("NodePort".into());
        service.spec = MessageField::some(spec);
        let json = decode(&envelope("v1", "Service", &service)).expect("decode");
        assert_eq!(json["spec"]["type"], "NodePort");
    }

    #[test]
    fn secrets_carry_base64_and_unknown_kinds_are_refused() {
        let mut secret = api::core::v1::Secret::new();
        secret.data.insert("password".into(), b"hunter2".to_vec());
        let json = decode(&envelope("v1", "Secret", &secret)).expect("decode");
        assert_eq!(json["data"]["password"], "aHVudGVyMg==");
        let err = decode(&envelope("example.com/v1", "Widget", &secret)).expect_err("unknown kind");
        assert!(matches!(err, ProtobufError::Unsupported { .. }), "{err}");
        assert!(matches!(
            decode(b"{}").expect_err("no magic"),
            ProtobufError::NotProtobuf
        ));
    }

    #[test]
    fn embedded_structs_are_spread_into_their_parent() {
        let mut ingress = api::networking::v1::Ingress::new();
        let mut spec = api::networking::v1::IngressSpec::new();
        let mut rule = api::networking::v1::IngressRule::new();
        rule.host = Some("example.com".into());
        let mut value = api::networking::v1::IngressRuleValue::new();
        let mut http = api::networking::v1::HTTPIngressRuleValue::new();
        let mut path = api::networking::v1::HTTPIngressPath::new();
        path.path = Some("/".into());
        path.pathType = Some("Exact".into());
        http.paths.push(path);
        value.http = MessageField::some(http);
        rule.ingressRuleValue = MessageField::some(value);
        spec.rules.push(rule);
        ingress.spec = MessageField::some(spec);
        let json = decode(&envelope("networking.k8s.io/v1", "Ingress", &ingress)).expect("decode");
        assert_eq!(
            json["spec"]["rules"][0],
            serde_json::json!({"host": "example.com", "http": {"paths": [{"path": "/", "pathType": "Exact"}]}})
        );

        let mut pod = api::core::v1::Pod::new();
        let mut pod_spec = api::core::v1::PodSpec::new();
        let mut volume = api::core::v1::Volume::new();
        volume.name = Some("scratch".into());
        let mut source = api::core::v1::VolumeSource::new();
        source.emptyDir = MessageField::some(api::core::v1::EmptyDirVolumeSource::new());
        volume.volumeSource = MessageField::some(source);
        pod_spec.volumes.push(volume);
        pod.spec = MessageField::some(pod_spec);
        let json = decode(&envelope("v1", "Pod", &pod)).expect("decode");
        assert_eq!(
            json["spec"]["volumes"][0],
            serde_json::json!({"name": "scratch", "emptyDir": {}})
        );
    }
}
