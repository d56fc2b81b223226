//! Pod garbage collection (upstream's PodGC): pods bound to a node that no longer exists are
//! force-deleted (nothing will ever finish them), and so are unscheduled pods being deleted.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::DeleteParams;
use kube::{Api, ResourceExt as _};

use crate::util::api_code;
use crate::Context;

/// How often PodGC looks (upstream's `gcCheckPeriod`).
const PERIOD: Duration = Duration::from_secs(20);

/// The controller.
pub struct PodGcController {
    ctx: Arc<Context>,
}

impl PodGcController {
    /// A controller over the shared informers.
    pub fn new(ctx: Arc<Context>) -> Arc<PodGcController> {
        Arc::new(PodGcController { ctx })
    }

    /// Runs until the process ends.
    pub async fn run(self: Arc<Self>) {
        loop {
            tokio::time::sleep(PERIOD).await;
            self.collect().await;
        }
    }

    async fn collect(&self) {
        let nodes: Api<Node> = Api::all(self.ctx.client.clone());
        for pod in self.ctx.pods.list() {
            let node = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty());
            let orphaned = match &node {
                // Confirm with the API: the cache may lag behind a new node.
                Some(node) if self.ctx.nodes.get("", node).is_none() => {
                    matches!(nodes.get_opt(node).await, Ok(None))
                }
                Some(_) => false,
                None => pod.metadata.deletion_timestamp.is_some(),
            };
            if !orphaned {
                continue;
            }
            let api: Api<Pod> = Api::namespaced(
                self.ctx.client.clone(),
                &pod.namespace().unwrap_or_default(),
            );
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: None,
                ..Default::default()
            };
            match api.delete(&pod.name_any(), &params).await {
                Ok(_) => {
                    tracing::info!(pod = %pod.name_any(), node = ?node, "PodGC: force-deleted an orphaned pod")
                }
                Err(e) if api_code(&e) == Some(404) => {}
                Err(error) => {
                    tracing::info!(%error, pod = %pod.name_any(), "PodGC: deleting an orphaned pod")
                }
            }
        }
    }
}
