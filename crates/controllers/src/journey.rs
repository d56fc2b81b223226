//! The controllers' steps of a pod's journey ([`ferry_journey`]).
//!
//! A controller makes the write that carries a journey on (a Deployment's ReplicaSet, a
//! workload's pod) inside a step whose parent is its own object's annotation. Its client sends
//! the step's `traceparent`, so the API server's steps for the write hang under the step and
//! the new object's annotation continues the trace: Deployment → ReplicaSet → Pod.

use std::fmt::Debug;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument as _;

/// The parent of a step taken for `meta`'s journey: its annotation (an empty parent is
/// ignored: the step starts a trace of its own).
pub fn parent_of(meta: &ObjectMeta) -> &str {
    ferry_journey::of_object(meta).unwrap_or_default()
}

/// Creates `pod` in a `created pod` step of `component`, under the journey of `owner`, the
/// object the pod is made for.
pub async fn create_pod(
    api: &Api<Pod>,
    pod: &Pod,
    owner: &ObjectMeta,
    component: &'static str,
) -> Result<Pod, kube::Error> {
    let step = ferry_journey::step!(
        "created pod",
        parent = parent_of(owner),
        component = component,
        object = tracing::field::Empty,
        uid = tracing::field::Empty
    );
    create_in(api, pod, step).await
}

/// Creates `object` inside `step`, which declares `object` and `uid` (empty until known):
/// records the object before the call when it has a name, then as created (a generated name
/// and the uid are known only then), or why the create failed.
pub async fn create_in<K>(api: &Api<K>, object: &K, step: tracing::Span) -> Result<K, kube::Error>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned,
    K::DynamicType: Default,
{
    record_object(&step, object);
    let result = api
        .create(&PostParams::default(), object)
        .instrument(step.clone())
        .await;
    match &result {
        Ok(created) => record_object(&step, created),
        Err(error) => ferry_journey::fail(&step, error),
    }
    result
}

/// Records `object`'s `resource/namespace/name` and uid on `step`, as far as they are known.
pub fn record_object<K>(step: &tracing::Span, object: &K)
where
    K: Resource,
    K::DynamicType: Default,
{
    if step.is_disabled() {
        return;
    }
    let meta = object.meta();
    if let Some(name) = meta.name.as_deref() {
        let kind = K::DynamicType::default();
        let plural = K::plural(&kind);
        let key = match meta.namespace.as_deref() {
            Some(namespace) if !namespace.is_empty() => format!("{plural}/{namespace}/{name}"),
            _ => format!("{plural}/{name}"),
        };
        step.record("object", tracing::field::display(key));
    }
    if let Some(uid) = meta.uid.as_deref() {
        step.record("uid", uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{accept_all, client};

    const OWNER_TRACE: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    fn owner() -> ObjectMeta {
        ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            annotations: Some(
                [(
                    ferry_journey::ANNOTATION.to_string(),
                    OWNER_TRACE.to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        }
    }

    fn pod(name: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: name.map(str::to_string),
                generate_name: Some("web-".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_pod_is_created_in_a_step_under_its_owner() {
        let capture = ferry_journey::testing::capture();
        let (client, calls) = client(accept_all);
        let api: Api<Pod> = Api::namespaced(client, "default");
        create_pod(&api, &pod(None), &owner(), "test-controller")
            .await
            .expect("created");
        let spans = capture.spans();
        assert_eq!(spans.len(), 1, "{spans:?}");
        let step = &spans[0];
        assert_eq!(
            (step.step.as_str(), step.component.as_str()),
            ("created pod", "test-controller")
        );
        assert_eq!(step.trace_id, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(step.parent_span_id.as_deref(), Some("b7ad6b7169203331"));
        let object = step.object.as_ref().expect("recorded once created");
        assert_eq!(object.key(), "pods/default/web-abcde");
        assert_eq!(object.uid.as_deref(), Some("new-uid"));
        let sent = calls.without_events()[0].traceparent.clone();
        assert_eq!(
            sent,
            Some(format!("00-{}-{}-01", step.trace_id, step.span_id))
        );
    }

    #[tokio::test]
    async fn a_failed_create_is_a_failed_step_of_the_named_pod() {
        let capture = ferry_journey::testing::capture();
        let (client, _calls) = client(|_| {
            (
                409,
                serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": "AlreadyExists", "code": 409, "message": "pods \"web-0\" already exists"}),
            )
        });
        let api: Api<Pod> = Api::namespaced(client, "default");
        let owner = ObjectMeta::default();
        create_pod(&api, &pod(Some("web-0")), &owner, "test-controller")
            .await
            .expect_err("refused");
        let spans = capture.spans();
        assert_eq!(spans.len(), 1);
        assert_eq!(
            spans[0].parent_span_id, None,
            "an owner without a journey starts one"
        );
        assert_eq!(
            spans[0].object.as_ref().map(|o| o.key()).as_deref(),
            Some("pods/default/web-0")
        );
        assert!(spans[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("already exists")));
    }
}
