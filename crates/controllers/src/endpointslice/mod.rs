//! The EndpointSlice controller (upstream's `pkg/controller/endpointslice`,
//! `endpointslice-controller.k8s.io`): for every Service with a selector, EndpointSlices listing
//! the pods it selects — their addresses, ports, readiness, node and zone — which the service
//! proxy and cluster DNS read.
//!
//! Handlers queue a Service when it changes, when a pod it selects (before or after the change)
//! changes in what its endpoint shows, and when one of its slices changes by someone else's
//! hand. A sync hands the Service, its pods and its slices to the [`reconciler`] and carries out
//! the plan. The [`tracker`] remembers what this controller wrote, so a sync never acts on a
//! cache that has not yet seen its own last writes (it would create a slice twice), and the
//! controller's own writes coming back through the watch do not queue the Service again.
//!
//! A write that makes a pod a ready endpoint of the Service is the pod's `added to
//! endpointslice` journey step ([`newly_ready`]), under the pod's own journey.

pub mod reconciler;
pub(crate) mod tracker;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ObjectReference, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt as _};
use tracing::Span;

use crate::endpointutil::{selected_pods, service_selector, services_to_sync};
use crate::informer::{key_of, Key};
use crate::queue::{Queue, Reconciler as QueueReconciler};
use crate::util::api_code;
use crate::{ApiContext as _, Context, Error};
pub use reconciler::{Reconciler, MANAGED_BY_LABEL, SERVICE_NAME_LABEL};
use tracker::Tracker;

/// Why a sync did not finish; the Service is synced again with backoff.
#[derive(Debug, thiserror::Error)]
pub enum EndpointSliceError {
    /// The slice cache has not seen this controller's last writes yet.
    #[error("EndpointSlice informer cache is out of date")]
    StaleCache,
    /// Pods on nodes the cache does not know were left out.
    #[error("skipping Pods for Service {service}: {}", missing.iter().map(|(pod, node)| format!("Pod {pod}: Node {node} Not Found")).collect::<Vec<_>>().join(", "))]
    NodesNotFound {
        /// `namespace/name` of the Service.
        service: String,
        /// The pods and their nodes.
        missing: Vec<(String, String)>,
    },
    /// An API call failed.
    #[error(transparent)]
    Api(#[from] Error),
}

/// The slice index value of a slice: `namespace/service` from its service-name label.
pub fn slice_service(slice: &EndpointSlice) -> Option<String> {
    let service = slice.labels().get(SERVICE_NAME_LABEL)?;
    Some(format!(
        "{}/{service}",
        slice.namespace().unwrap_or_default()
    ))
}

/// The Service a slice managed by `controller_name` belongs to.
pub(crate) fn managed_service(slice: &EndpointSlice, controller_name: &str) -> Option<Key> {
    let labels = slice.labels();
    if labels.get(MANAGED_BY_LABEL).map(String::as_str) != Some(controller_name) {
        return None;
    }
    let service = labels.get(SERVICE_NAME_LABEL)?;
    Some((slice.namespace().unwrap_or_default(), service.clone()))
}

/// The controller and its queue of Services.
pub struct EndpointSliceController {
    ctx: Arc<Context>,
    queue: Arc<Queue<Key>>,
    tracker: Tracker,
    reconciler: Reconciler,
}

impl QueueReconciler for EndpointSliceController {
    type Key = Key;
    type Error = EndpointSliceError;
    const NAME: &'static str = "endpointslice";

    fn queue(&self) -> &Arc<Queue<Key>> {
        &self.queue
    }

    async fn reconcile(self: Arc<Self>, key: Key) -> Result<Option<Duration>, EndpointSliceError> {
        self.sync(key).await
    }
}

impl EndpointSliceController {
    /// Registers the handlers.
    pub fn new(ctx: Arc<Context>) -> Arc<EndpointSliceController> {
        let controller = Arc::new(EndpointSliceController {
            ctx: ctx.clone(),
            queue: Queue::new(),
            tracker: Tracker::default(),
            reconciler: Reconciler::DEFAULT,
        });
        let c = controller.clone();
        ctx.services.add_handler(move |old, new| {
            if let Some(service) = new.or(old) {
                c.queue.add(key_of(service.as_ref()));
            }
        });
        let c = controller.clone();
        ctx.pods.add_handler(move |old, new| {
            for key in services_to_sync(&c.ctx.services, old, new) {
                c.queue.add(key);
            }
        });
        let c = controller.clone();
        ctx.endpoint_slices.add_handler(move |old, new| {
            let Some(slice) = new.or(old) else { return };
            let Some(service) = managed_service(slice, c.reconciler.controller_name) else {
                return;
            };
            let by_others = match new {
                Some(new) => c.tracker.should_sync(&service, new),
                None => c.tracker.handle_deletion(&service, slice),
            };
            if by_others {
                c.queue.add(service);
            }
        });
        controller
    }

    async fn sync(&self, key: Key) -> Result<Option<Duration>, EndpointSliceError> {
        let (namespace, name) = &key;
        let Some(service) = self.ctx.services.get(namespace, name) else {
            // Its slices go with it: the garbage collector follows their owner reference.
            self.tracker.forget(&key);
            return Ok(None);
        };
        // Services without a selector get their slices from elsewhere (by hand, or mirrored
        // from hand-made Endpoints); ExternalName Services get none.
        if service_selector(&service).is_none() {
            return Ok(None);
        }
        let pods = selected_pods(&self.ctx.pods, &service);
        let existing: Vec<Arc<EndpointSlice>> = self
            .ctx
            .endpoint_slices
            .list_indexed(&format!("{namespace}/{name}"))
            .into_iter()
            .filter(|s| managed_service(s, self.reconciler.controller_name).is_some())
            .collect();
        if self.tracker.stale(&key, &existing) {
            return Err(EndpointSliceError::StaleCache);
        }
        let nodes = |node: &str| self.ctx.nodes.get("", node);
        let plan = self
            .reconciler
            .reconcile(&service, &pods, &nodes, &existing);
        let writes = Writes {
            create: plan.create,
            update: plan.update,
            delete: plan.delete,
        };
        self.apply(&key, &service, writes, &existing).await?;
        if !plan.missing_nodes.is_empty() {
            return Err(EndpointSliceError::NodesNotFound {
                service: format!("{namespace}/{name}"),
                missing: plan.missing_nodes,
            });
        }
        Ok(None)
    }

    /// Creates, updates and deletes, recording each write in the tracker; `existing` are the
    /// slices before, which tell the pods a write makes ready.
    async fn apply(
        &self,
        key: &Key,
        service: &Service,
        writes: Writes,
        existing: &[Arc<EndpointSlice>],
    ) -> Result<(), Error> {
        let api: Api<EndpointSlice> = Api::namespaced(self.ctx.client.clone(), &key.0);
        let params = PostParams::default();
        let mut ready_before = None;
        let mut steps = |slice: &EndpointSlice| {
            let before = ready_before.get_or_insert_with(|| ready_pods(existing));
            newly_ready(slice, before)
                .map(|pod| self.added_step(pod, &key.1))
                .collect::<Vec<Span>>()
        };
        // No new slices for a Service being deleted: the garbage collector is removing them.
        if service.metadata.deletion_timestamp.is_none() {
            for slice in writes.create {
                let steps = steps(&slice);
                let made = api.create(&params, &slice).await;
                close_steps(steps, made.as_ref());
                match made {
                    Ok(made) => self.tracker.written(key, &made),
                    // A namespace being deleted takes no new objects; its Services go too.
                    Err(e) if api_code(&e) == Some(403) && is_namespace_terminating(&e) => {
                        return Ok(())
                    }
                    Err(e) => return Err(e).context("creating an EndpointSlice"),
                }
            }
        }
        for slice in writes.update {
            let steps = steps(&slice);
            let updated = api.replace(&slice.name_any(), &params, &slice).await;
            close_steps(steps, updated.as_ref());
            let updated = updated.context("updating an EndpointSlice")?;
            self.tracker.written(key, &updated);
        }
        for slice in writes.delete {
            match api
                .delete(&slice.name_any(), &DeleteParams::default())
                .await
            {
                Ok(_) => self.tracker.expect_deletion(key, &slice),
                Err(e) if api_code(&e) == Some(404) => {}
                Err(e) => return Err(e).context("deleting an EndpointSlice"),
            }
        }
        Ok(())
    }

    /// The `added to endpointslice` step of `pod` (an endpoint's target) for Service `service`,
    /// under the pod's journey when the informer has the pod.
    fn added_step(&self, pod: &ObjectReference, service: &str) -> Span {
        let namespace = pod.namespace.as_deref().unwrap_or_default();
        let name = pod.name.as_deref().unwrap_or_default();
        let known = self
            .ctx
            .pods
            .get(namespace, name)
            .filter(|p| p.metadata.uid == pod.uid);
        let parent = known
            .as_ref()
            .and_then(|p| ferry_journey::of_object(&p.metadata))
            .unwrap_or_default();
        ferry_journey::step!(
            "added to endpointslice",
            parent = parent,
            component = crate::names::ENDPOINTSLICE,
            object = %format_args!("pods/{namespace}/{name}"),
            uid = pod.uid.as_deref().unwrap_or_default(),
            service = service,
            slice = tracing::field::Empty
        )
    }
}

/// The writes of one sync.
struct Writes {
    create: Vec<EndpointSlice>,
    update: Vec<EndpointSlice>,
    delete: Vec<EndpointSlice>,
}

/// Whether an endpoint is ready (unknown readiness counts as ready, as the API says).
fn is_ready(endpoint: &k8s_openapi::api::discovery::v1::Endpoint) -> bool {
    endpoint
        .conditions
        .as_ref()
        .and_then(|c| c.ready)
        .unwrap_or(true)
}

/// The uids of the pods ready in `slices`.
fn ready_pods(slices: &[Arc<EndpointSlice>]) -> HashSet<&str> {
    slices
        .iter()
        .flat_map(|s| &s.endpoints)
        .filter(|e| is_ready(e))
        .filter_map(|e| e.target_ref.as_ref()?.uid.as_deref())
        .collect()
}

/// The pods `slice` lists ready that were not ready before (`ready_before`, by uid): those a
/// write of `slice` adds to the Service's ready endpoints.
pub fn newly_ready<'a>(
    slice: &'a EndpointSlice,
    ready_before: &'a HashSet<&'a str>,
) -> impl Iterator<Item = &'a ObjectReference> {
    slice
        .endpoints
        .iter()
        .filter(|e| is_ready(e))
        .filter_map(|e| e.target_ref.as_ref())
        .filter(|target| {
            target.kind.as_deref() == Some("Pod")
                && target
                    .uid
                    .as_deref()
                    .is_some_and(|uid| !ready_before.contains(uid))
        })
}

/// Ends the steps of a slice write: with the slice's name (known only once a created slice is
/// made), or why the write failed.
fn close_steps(steps: Vec<Span>, written: Result<&EndpointSlice, &kube::Error>) {
    for step in steps {
        match written {
            Ok(slice) => {
                step.record("slice", slice.metadata.name.as_deref().unwrap_or_default());
            }
            Err(error) => ferry_journey::fail(&step, error),
        }
    }
}

fn is_namespace_terminating(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.message.contains("because it is being terminated"))
}

#[cfg(test)]
mod scenarios;
