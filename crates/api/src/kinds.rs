//! The `k8s-openapi` type of every kind ferry serves: the OpenAPI documents take
//! its schema from it ([`crate::openapi`]), and [`canonical`] writes an object
//! the way upstream's decode → encode writes it.
//!
//! Upstream decodes every object it stores into its Go type and encodes it
//! again, so fields without `omitempty` (the counts of a `DaemonSetStatus`,
//! `ReplicaSetStatus.replicas`, a container's `name`) are always in what it
//! serves, as their zero value if nobody set them; clients' typed models (the
//! official Python client's) refuse objects without them. `k8s-openapi`'s
//! types model exactly that: a required field is not an `Option`, decodes as
//! its default when absent, and is always encoded.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

use k8s_openapi::api;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::schemars::{JsonSchema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// A kind with a `k8s-openapi` type: where it is served, how to get its
/// schema, and its typed round trip.
pub(crate) struct KindType {
    pub(crate) group: &'static str,
    pub(crate) version: &'static str,
    pub(crate) kind: &'static str,
    /// Adds the type's schema (and all it uses) to the generator.
    pub(crate) register: fn(&mut SchemaGenerator),
    /// The type's definition name.
    pub(crate) name: fn() -> Cow<'static, str>,
    /// Decodes an object into the type and encodes it again.
    round_trip: fn(Value) -> Result<Value, serde_json::Error>,
}

fn register<T: JsonSchema>(generator: &mut SchemaGenerator) {
    generator.subschema_for::<T>();
}

fn schema_name<T: JsonSchema>() -> Cow<'static, str> {
    T::schema_name()
}

fn round_trip<T: DeserializeOwned + Serialize>(object: Value) -> Result<Value, serde_json::Error> {
    serde_json::to_value(serde_json::from_value::<T>(object)?)
}

/// The [`KindType`] of each listed top-level type, group, version and kind
/// taken from its `k8s_openapi::Resource` impl.
macro_rules! kinds {
    ($($ty:ty),* $(,)?) => {
        &[$(KindType {
            group: <$ty as k8s_openapi::Resource>::GROUP,
            version: <$ty as k8s_openapi::Resource>::VERSION,
            kind: <$ty as k8s_openapi::Resource>::KIND,
            register: register::<$ty>,
            name: schema_name::<$ty>,
            round_trip: round_trip::<$ty>,
        }),*]
    };
}

/// Every kind ferry serves a schema for: the kinds of [`RESOURCES`], the
/// kinds of their subresources that have a type (`Scale`, `Eviction`,
/// `TokenRequest`, ...), and the `meta.k8s.io` kinds the API answers with.
/// (`PodExecOptions` and the other `connect` options are query parameters,
/// not bodies; upstream has no schema for them either.)
pub(crate) static KINDS: &[KindType] = kinds![
    api::core::v1::Binding,
    api::core::v1::ComponentStatus,
    api::core::v1::ConfigMap,
    api::core::v1::Endpoints,
    api::core::v1::Event,
    api::core::v1::LimitRange,
    api::core::v1::Namespace,
    api::core::v1::Node,
    api::core::v1::PersistentVolumeClaim,
    api::core::v1::PersistentVolume,
    api::core::v1::Pod,
    api::core::v1::PodTemplate,
    api::core::v1::ReplicationController,
    api::core::v1::ResourceQuota,
    api::core::v1::Secret,
    api::core::v1::ServiceAccount,
    api::core::v1::Service,
    k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService,
    api::apps::v1::ControllerRevision,
    api::apps::v1::DaemonSet,
    api::apps::v1::Deployment,
    api::apps::v1::ReplicaSet,
    api::apps::v1::StatefulSet,
    api::events::v1::Event,
    api::authentication::v1::SelfSubjectReview,
    api::authentication::v1::TokenReview,
    api::authentication::v1::TokenRequest,
    api::authorization::v1::LocalSubjectAccessReview,
    api::authorization::v1::SelfSubjectAccessReview,
    api::authorization::v1::SelfSubjectRulesReview,
    api::authorization::v1::SubjectAccessReview,
    api::autoscaling::v2::HorizontalPodAutoscaler,
    api::autoscaling::v1::HorizontalPodAutoscaler,
    api::autoscaling::v1::Scale,
    api::batch::v1::CronJob,
    api::batch::v1::Job,
    api::certificates::v1::CertificateSigningRequest,
    api::networking::v1::IngressClass,
    api::networking::v1::Ingress,
    api::networking::v1::IPAddress,
    api::networking::v1::NetworkPolicy,
    api::networking::v1::ServiceCIDR,
    api::policy::v1::PodDisruptionBudget,
    api::policy::v1::Eviction,
    api::rbac::v1::ClusterRoleBinding,
    api::rbac::v1::ClusterRole,
    api::rbac::v1::RoleBinding,
    api::rbac::v1::Role,
    api::storage::v1::CSIDriver,
    api::storage::v1::CSINode,
    api::storage::v1::CSIStorageCapacity,
    api::storage::v1::StorageClass,
    api::storage::v1::VolumeAttachment,
    api::admissionregistration::v1::MutatingWebhookConfiguration,
    api::admissionregistration::v1::ValidatingAdmissionPolicy,
    api::admissionregistration::v1::ValidatingAdmissionPolicyBinding,
    api::admissionregistration::v1::ValidatingWebhookConfiguration,
    api::admissionregistration::v1alpha1::MutatingAdmissionPolicy,
    api::admissionregistration::v1alpha1::MutatingAdmissionPolicyBinding,
    apiextensions::v1::CustomResourceDefinition,
    api::scheduling::v1::PriorityClass,
    api::coordination::v1::Lease,
    api::node::v1::RuntimeClass,
    api::discovery::v1::EndpointSlice,
    api::flowcontrol::v1::FlowSchema,
    api::flowcontrol::v1::PriorityLevelConfiguration,
    meta::Status,
    meta::APIGroup,
    meta::APIGroupList,
    meta::APIResourceList,
    meta::APIVersions,
];

/// The kinds by name (a few names are used by two groups, as `Event`).
static BY_KIND: LazyLock<HashMap<&'static str, Vec<&'static KindType>>> = LazyLock::new(|| {
    let mut by_kind: HashMap<&'static str, Vec<&'static KindType>> = HashMap::new();
    for k in KINDS {
        by_kind.entry(k.kind).or_default().push(k);
    }
    by_kind
});

/// Whether ferry has a type for `kind` in `group`/`version`.
pub fn has_type(group: &str, version: &str, kind: &str) -> bool {
    find(group, version, kind).is_some()
}

fn find(group: &str, version: &str, kind: &str) -> Option<&'static KindType> {
    BY_KIND
        .get(kind)?
        .iter()
        .find(|k| k.group == group && k.version == version)
        .copied()
}

/// `object` (of `kind` in `group`/`version`) as upstream would serve it after
/// decoding it into its type and encoding it again: fields that are always
/// written are there, `null`s of optional fields are gone. Kinds without a type
/// come back unchanged. Fails as decoding does: a field of the wrong type.
pub fn canonical(
    group: &str,
    version: &str,
    kind: &str,
    object: Value,
) -> Result<Value, serde_json::Error> {
    match find(group, version, kind) {
        Some(k) => (k.round_trip)(object),
        None => Ok(object),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn always_written_fields_appear_with_their_zero_value() {
        let ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "d"}, "spec": {}, "status": {}});
        let out = canonical("apps", "v1", "DaemonSet", ds).expect("decodes");
        for field in [
            "currentNumberScheduled",
            "desiredNumberScheduled",
            "numberMisscheduled",
            "numberReady",
        ] {
            assert_eq!(out["status"][field], 0, "{field}");
        }
        assert_eq!(out["status"].get("numberAvailable"), None);
        let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r"}, "status": {}});
        let out = canonical("apps", "v1", "ReplicaSet", rs).expect("decodes");
        assert_eq!(out["status"]["replicas"], 0);
    }

    #[test]
    fn numbers_read_exactly() {
        let object: Value =
            serde_json::from_str(r#"{"spec": {"x": 1.1e120, "y": 0.30000000000000004}}"#)
                .expect("json");
        let out = canonical("example.com", "v1", "Widget", object).expect("decodes");
        assert_eq!(out["spec"]["x"].as_f64(), Some(1.1e120));
        // Written as Go's encoding/json writes it too.
        assert_eq!(
            out.to_string(),
            r#"{"spec":{"x":1.1e+120,"y":0.30000000000000004}}"#
        );
    }

    #[test]
    fn nulls_go_and_wrong_types_fail() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": null}, "spec": {"containers": [{"name": "c", "image": "x"}], "nodeName": null}});
        let out = canonical("", "v1", "Pod", pod).expect("decodes");
        assert_eq!(out["metadata"], json!({"name": "p"}));
        assert_eq!(out["spec"].get("nodeName"), None);
        let bad = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": "three"}});
        assert!(canonical("apps", "v1", "Deployment", bad).is_err());
        let unknown = json!({"anything": [1, null]});
        assert_eq!(
            canonical("example.com", "v1", "Widget", unknown.clone()).expect("as is"),
            unknown
        );
    }

    #[test]
    fn both_events_have_types() {
        assert!(has_type("", "v1", "Event"));
        assert!(has_type("events.k8s.io", "v1", "Event"));
        assert!(!has_type("", "v1", "Widget"));
    }
}
