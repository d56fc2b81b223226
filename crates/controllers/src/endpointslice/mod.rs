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

pub mod reconciler;
pub(crate) mod tracker;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt as _};

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
        self.apply(&key, &service, plan.create, plan.update, plan.delete)
            .await?;
        if !plan.missing_nodes.is_empty() {
            return Err(EndpointSliceError::NodesNotFound {
                service: format!("{namespace}/{name}"),
                missing: plan.missing_nodes,
            });
        }
        Ok(None)
    }

    /// Creates, updates and deletes, recording each write in the tracker.
    async fn apply(
        &self,
        key: &Key,
        service: &Service,
        create: Vec<EndpointSlice>,
        update: Vec<EndpointSlice>,
        delete: Vec<EndpointSlice>,
    ) -> Result<(), Error> {
        let api: Api<EndpointSlice> = Api::namespaced(self.ctx.client.clone(), &key.0);
        let params = PostParams::default();
        // No new slices for a Service being deleted: the garbage collector is removing them.
        if service.metadata.deletion_timestamp.is_none() {
            for slice in create {
                match api.create(&params, &slice).await {
                    Ok(made) => self.tracker.written(key, &made),
                    // A namespace being deleted takes no new objects; its Services go too.
                    Err(e) if api_code(&e) == Some(403) && is_namespace_terminating(&e) => {
                        return Ok(())
                    }
                    Err(e) => return Err(e).context("creating an EndpointSlice"),
                }
            }
        }
        for slice in update {
            let updated = api
                .replace(&slice.name_any(), &params, &slice)
                .await
                .context("updating an EndpointSlice")?;
            self.tracker.written(key, &updated);
        }
        for slice in delete {
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
}

fn is_namespace_terminating(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.message.contains("because it is being terminated"))
}

#[cfg(test)]
mod scenarios;
