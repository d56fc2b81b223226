//! The scheduler's writes to the API server behind one narrow trait, so the core runs without
//! an API server (tests, benchmarks): binding, the PodScheduled condition and nominated node,
//! and deleting preemption victims. [`KubeBinder`] does them with kube-rs; [`FakeBinder`]
//! records them.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use k8s_openapi::api::core::v1::{
    Binding, ObjectReference, PersistentVolume, PersistentVolumeClaim, Pod,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::Api;
use parking_lot::Mutex;

/// A failed write.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The API server refused or could not be reached.
    #[error("{0}")]
    Api(String),
}

/// What the scheduler writes.
pub trait Binder: Send + Sync + 'static {
    /// POSTs `pods/binding` for `pod` to `node`.
    fn bind(&self, pod: &Pod, node: &str) -> BoxFuture<'static, Result<(), BindError>>;
    /// Sets `PodScheduled=False` with `reason` and `message` (and the nominated node when
    /// `Some`, `Some("")` clearing it) in pods/status.
    fn mark_unschedulable(
        &self,
        pod: &Pod,
        reason: &str,
        message: &str,
        nominated_node: Option<&str>,
    ) -> BoxFuture<'static, Result<(), BindError>>;
    /// Deletes a preemption victim.
    fn delete_victim(&self, victim: &Pod) -> BoxFuture<'static, Result<(), BindError>>;
    /// Binds a volume to a claim (its `claimRef`, as the PersistentVolume controller would):
    /// the VolumeBinding plugin's choice for a claim that waited for its first consumer.
    fn bind_volume(
        &self,
        volume: &PersistentVolume,
        claim: &PersistentVolumeClaim,
    ) -> BoxFuture<'static, Result<(), BindError>>;
    /// Annotates a claim with the node its volume is to be provisioned for
    /// (`volume.kubernetes.io/selected-node`).
    fn select_node(
        &self,
        claim: &PersistentVolumeClaim,
        node: &str,
    ) -> BoxFuture<'static, Result<(), BindError>>;
}

/// The v1 Binding of `pod` to `node`.
pub fn binding(pod: &Pod, node: &str) -> Binding {
    Binding {
        metadata: ObjectMeta {
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            ..Default::default()
        },
    }
}

/// Writes through kube-rs.
#[derive(Clone)]
pub struct KubeBinder {
    client: kube::Client,
}

impl KubeBinder {
    /// A binder using `client`.
    pub fn new(client: kube::Client) -> KubeBinder {
        KubeBinder { client }
    }

    fn pods(&self, pod: &Pod) -> Api<Pod> {
        Api::namespaced(
            self.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        )
    }
}

fn api_error(error: kube::Error) -> BindError {
    BindError::Api(error.to_string())
}

impl Binder for KubeBinder {
    fn bind(&self, pod: &Pod, node: &str) -> BoxFuture<'static, Result<(), BindError>> {
        let api = self.pods(pod);
        let name = pod.metadata.name.clone().unwrap_or_default();
        let body = binding(pod, node);
        async move {
            api.create_subresource::<Binding, serde_json::Value>(
                "binding",
                &name,
                &PostParams::default(),
                &body,
            )
            .await
            .map(|_| ())
            .map_err(api_error)
        }
        .boxed()
    }

    fn mark_unschedulable(
        &self,
        pod: &Pod,
        reason: &str,
        message: &str,
        nominated_node: Option<&str>,
    ) -> BoxFuture<'static, Result<(), BindError>> {
        let api = self.pods(pod);
        let name = pod.metadata.name.clone().unwrap_or_default();
        // Keep lastTransitionTime when the condition already says the same thing, as upstream's
        // UpdatePodCondition does; skip the write entirely when nothing changes.
        let current = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
            .cloned();
        let unchanged = current.as_ref().is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some(reason)
                && c.message.as_deref() == Some(message)
        });
        let current_nominated = pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.clone())
            .unwrap_or_default();
        let nominated_unchanged = nominated_node.is_none_or(|n| n == current_nominated);
        if unchanged && nominated_unchanged {
            return async { Ok(()) }.boxed();
        }
        let transition = match &current {
            Some(c) if c.status == "False" => c.last_transition_time.clone(),
            _ => None,
        }
        .map(|t| t.0.to_string())
        .unwrap_or_else(|| {
            jiff::Timestamp::now()
                .round(jiff::Unit::Second)
                .unwrap_or_else(|_| jiff::Timestamp::now())
                .to_string()
        });
        let mut status = serde_json::json!({
            "conditions": [{
                "type": "PodScheduled",
                "status": "False",
                "reason": reason,
                "message": message,
                "lastTransitionTime": transition,
                "lastProbeTime": null,
            }]
        });
        if let Some(node) = nominated_node {
            status["nominatedNodeName"] = if node.is_empty() {
                serde_json::Value::Null
            } else {
                node.into()
            };
        }
        let patch = serde_json::json!({ "status": status });
        async move {
            api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
                .await
                .map(|_| ())
                .map_err(api_error)
        }
        .boxed()
    }

    fn delete_victim(&self, victim: &Pod) -> BoxFuture<'static, Result<(), BindError>> {
        let api = self.pods(victim);
        let name = victim.metadata.name.clone().unwrap_or_default();
        let params = DeleteParams {
            preconditions: victim.metadata.uid.clone().map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..Default::default()
        };
        async move {
            match api.delete(&name, &params).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
                Err(e) => Err(api_error(e)),
            }
        }
        .boxed()
    }

    fn bind_volume(
        &self,
        volume: &PersistentVolume,
        claim: &PersistentVolumeClaim,
    ) -> BoxFuture<'static, Result<(), BindError>> {
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        let mut volume = volume.clone();
        volume
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(ferry_api::volumes::BOUND_BY_CONTROLLER.into(), "yes".into());
        volume.spec.get_or_insert_with(Default::default).claim_ref =
            Some(ferry_api::volumes::claim_reference(claim));
        let name = volume.metadata.name.clone().unwrap_or_default();
        async move {
            api.replace(&name, &PostParams::default(), &volume)
                .await
                .map(|_| ())
                .map_err(api_error)
        }
        .boxed()
    }

    fn select_node(
        &self,
        claim: &PersistentVolumeClaim,
        node: &str,
    ) -> BoxFuture<'static, Result<(), BindError>> {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(
            self.client.clone(),
            claim.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let mut claim = claim.clone();
        claim
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(ferry_api::volumes::SELECTED_NODE.into(), node.into());
        let name = claim.metadata.name.clone().unwrap_or_default();
        async move {
            api.replace(&name, &PostParams::default(), &claim)
                .await
                .map(|_| ())
                .map_err(api_error)
        }
        .boxed()
    }
}

/// One call a [`FakeBinder`] saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// A bind of `namespace/name` to the node.
    Bind(String, String),
    /// A PodScheduled=False update: pod, reason, message, nominated node.
    Unschedulable(String, String, String, Option<String>),
    /// A victim deleted.
    Delete(String),
    /// A volume bound to a claim (`namespace/name`).
    BindVolume(String, String),
    /// A claim (`namespace/name`) annotated with its selected node.
    SelectNode(String, String),
}

/// Records calls and succeeds (or fails binds when told to).
#[derive(Default)]
pub struct FakeBinder {
    /// Everything called, in order.
    pub calls: Mutex<Vec<Call>>,
    /// Fail every bind with this message.
    pub fail_binds: Mutex<Option<String>>,
    /// The journey context each bind was made in: the `traceparent` a real client sends.
    pub bind_contexts: Mutex<Vec<Option<String>>>,
}

impl FakeBinder {
    /// A new fake, shared.
    pub fn new() -> Arc<FakeBinder> {
        Arc::new(FakeBinder::default())
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().clone()
    }
}

fn key(pod: &Pod) -> String {
    crate::cache::pod_key(pod)
}

fn claim_key(claim: &PersistentVolumeClaim) -> String {
    format!(
        "{}/{}",
        claim.metadata.namespace.as_deref().unwrap_or(""),
        claim.metadata.name.as_deref().unwrap_or("")
    )
}

impl Binder for FakeBinder {
    fn bind(&self, pod: &Pod, node: &str) -> BoxFuture<'static, Result<(), BindError>> {
        self.calls
            .lock()
            .push(Call::Bind(key(pod), node.to_string()));
        self.bind_contexts
            .lock()
            .push(ferry_journey::current().map(|c| c.to_string()));
        let result = match self.fail_binds.lock().clone() {
            Some(message) => Err(BindError::Api(message)),
            None => Ok(()),
        };
        async move { result }.boxed()
    }

    fn mark_unschedulable(
        &self,
        pod: &Pod,
        reason: &str,
        message: &str,
        nominated_node: Option<&str>,
    ) -> BoxFuture<'static, Result<(), BindError>> {
        self.calls.lock().push(Call::Unschedulable(
            key(pod),
            reason.into(),
            message.into(),
            nominated_node.map(Into::into),
        ));
        async { Ok(()) }.boxed()
    }

    fn delete_victim(&self, victim: &Pod) -> BoxFuture<'static, Result<(), BindError>> {
        self.calls.lock().push(Call::Delete(key(victim)));
        async { Ok(()) }.boxed()
    }

    fn bind_volume(
        &self,
        volume: &PersistentVolume,
        claim: &PersistentVolumeClaim,
    ) -> BoxFuture<'static, Result<(), BindError>> {
        self.calls.lock().push(Call::BindVolume(
            volume.metadata.name.clone().unwrap_or_default(),
            claim_key(claim),
        ));
        async { Ok(()) }.boxed()
    }

    fn select_node(
        &self,
        claim: &PersistentVolumeClaim,
        node: &str,
    ) -> BoxFuture<'static, Result<(), BindError>> {
        self.calls
            .lock()
            .push(Call::SelectNode(claim_key(claim), node.into()));
        async { Ok(()) }.boxed()
    }
}
