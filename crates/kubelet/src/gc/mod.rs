//! Garbage collection of dead containers and unused images (upstream's container GC, every
//! minute, and image GC, every five minutes), and the node-level reclaim the eviction manager
//! asks for under disk pressure ([`NodeReclaimer`]): every dead container of a pod that is not
//! running it, then every unused image old enough.
//!
//! The decisions are pure ([`containers::plan`], [`images::plan_removal`]); the
//! [`GarbageCollector`] lists, decides and removes through the [`Runtime`].

pub mod containers;
pub mod images;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use self::containers::ContainerGcPolicy;
use self::images::ImageGc;
use crate::eviction::threshold::Signal;
use crate::eviction::NodeReclaimer;
use crate::runtime::Runtime;
use crate::stats::SummaryProvider;

/// How often dead containers are collected (upstream's `ContainerGCPeriod`).
pub const CONTAINER_GC_PERIOD: Duration = Duration::from_secs(60);
/// How often images are collected (upstream's `ImageGCPeriod`).
pub const IMAGE_GC_PERIOD: Duration = Duration::from_secs(300);

/// Which pods exist (`None`: not known), so a deleted pod's containers can go.
#[async_trait]
pub trait PodUids: Send + Sync {
    /// The uids of this node's pods in the API.
    async fn pod_uids(&self) -> Option<HashSet<String>>;
}

#[async_trait]
impl PodUids for crate::eviction::ApiActivePods {
    async fn pod_uids(&self) -> Option<HashSet<String>> {
        let api: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::all(self.client.clone());
        let params =
            kube::api::ListParams::default().fields(&format!("spec.nodeName={}", self.node_name));
        api.list(&params).await.ok().map(|list| {
            list.items
                .into_iter()
                .filter_map(|p| p.metadata.uid)
                .collect()
        })
    }
}

/// The collector of one node.
pub struct GarbageCollector {
    runtime: Arc<dyn Runtime>,
    images: ImageGc,
    container_policy: ContainerGcPolicy,
    summary: Arc<dyn SummaryProvider>,
    pods: Arc<dyn PodUids>,
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

impl GarbageCollector {
    /// A collector over `runtime`; the image filesystem's figures come from `summary`.
    pub fn new(
        runtime: Arc<dyn Runtime>,
        images: ImageGc,
        container_policy: ContainerGcPolicy,
        summary: Arc<dyn SummaryProvider>,
        pods: Arc<dyn PodUids>,
    ) -> Self {
        GarbageCollector {
            runtime,
            images,
            container_policy,
            summary,
            pods,
        }
    }

    /// One container collection (`all_unused`: every dead container of live pods too);
    /// returns how many containers and sandboxes were removed.
    pub async fn collect_containers(&self, all_unused: bool) -> usize {
        // The runtime before the API: a pod whose containers are listed is in the later list.
        let (containers, sandboxes) = match containers::listing(self.runtime.as_ref()).await {
            Ok(l) => l,
            Err(error) => {
                tracing::debug!(%error, "container GC: listing");
                return 0;
            }
        };
        let live = self.pods.pod_uids().await;
        let plan = containers::plan(
            &containers,
            &sandboxes,
            live.as_ref(),
            &self.container_policy,
            all_unused,
            now_nanos(),
        );
        containers::remove(self.runtime.as_ref(), &plan).await
    }

    /// One image collection against the image filesystem's usage; returns the bytes freed.
    pub async fn collect_images(&self, now: Instant) -> u64 {
        let summary = match self.summary.summary().await {
            Ok(s) => s,
            Err(error) => {
                tracing::debug!(%error, "image GC: no summary");
                return 0;
            }
        };
        let fs = summary
            .node
            .runtime
            .as_ref()
            .and_then(|r| r.image_fs.clone())
            .or(summary.node.fs.clone())
            .unwrap_or_default();
        let (Some(capacity), Some(available)) = (fs.capacity_bytes, fs.available_bytes) else {
            return 0;
        };
        match self
            .images
            .garbage_collect(self.runtime.as_ref(), capacity, available, now)
            .await
        {
            Ok(freed) => freed,
            Err(error) => {
                tracing::warn!(%error, "image garbage collection");
                0
            }
        }
    }

    /// Collects containers every minute and images every five until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut containers = tokio::time::interval(CONTAINER_GC_PERIOD);
        let mut images = tokio::time::interval(IMAGE_GC_PERIOD);
        containers.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        images.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = containers.tick() => { self.collect_containers(false).await; }
                _ = images.tick() => { self.collect_images(Instant::now()).await; }
            }
        }
    }
}

#[async_trait]
impl NodeReclaimer for GarbageCollector {
    /// Upstream's disk reclaim functions: `DeleteAllUnusedContainers`, `DeleteUnusedImages`.
    async fn reclaim(&self, signal: Signal) {
        let removed = self.collect_containers(true).await;
        let freed = self
            .images
            .delete_unused(self.runtime.as_ref(), Instant::now())
            .await
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "deleting unused images");
                0
            });
        tracing::info!(%signal, removed, freed, "eviction manager: node-level reclaim");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{v1, FakeRuntime};
    use crate::stats::StaticSummary;

    struct Pods(Option<HashSet<String>>);

    #[async_trait]
    impl PodUids for Pods {
        async fn pod_uids(&self) -> Option<HashSet<String>> {
            self.0.clone()
        }
    }

    fn labels(uid: &str, name: &str) -> std::collections::HashMap<String, String> {
        std::collections::HashMap::from([
            (crate::podconfig::POD_UID_LABEL.to_string(), uid.to_string()),
            (
                crate::podconfig::CONTAINER_NAME_LABEL.to_string(),
                name.to_string(),
            ),
        ])
    }

    #[tokio::test(start_paused = true)]
    async fn dead_containers_beyond_one_and_a_deleted_pods_sandbox_are_removed() {
        let runtime = Arc::new(FakeRuntime::new());
        runtime.add_image("r/app:1");
        let sandbox_config = |uid: &str| v1::PodSandboxConfig {
            metadata: Some(v1::PodSandboxMetadata {
                name: uid.into(),
                namespace: "default".into(),
                uid: uid.into(),
                attempt: 0,
            }),
            labels: labels(uid, ""),
            ..Default::default()
        };
        let live = runtime
            .run_pod_sandbox(sandbox_config("live"), "")
            .await
            .expect("sandbox");
        let mut ids = vec![];
        for attempt in 0..3 {
            let id = runtime
                .create_container(
                    &live,
                    v1::ContainerConfig {
                        metadata: Some(v1::ContainerMetadata {
                            name: "app".into(),
                            attempt,
                        }),
                        image: Some(crate::runtime::image_spec("r/app:1")),
                        labels: labels("live", "app"),
                        ..Default::default()
                    },
                    sandbox_config("live"),
                )
                .await
                .expect("container");
            runtime.start_container(&id).await.expect("start");
            if attempt < 2 {
                runtime.exit_container(&id, 1).expect("exit");
            }
            tokio::time::advance(Duration::from_secs(1)).await;
            ids.push(id);
        }
        let gone = runtime
            .run_pod_sandbox(sandbox_config("gone"), "")
            .await
            .expect("sandbox");
        runtime.stop_pod_sandbox(&gone).await.expect("stop");
        let gc = GarbageCollector::new(
            runtime.clone(),
            ImageGc::new(Default::default(), vec![]),
            ContainerGcPolicy::default(),
            Arc::new(StaticSummary::default()),
            Arc::new(Pods(Some(HashSet::from(["live".to_string()])))),
        );
        assert_eq!(gc.collect_containers(false).await, 2);
        // The running instance and the newest dead one stay; the deleted pod's sandbox goes.
        assert_eq!(runtime.container_ids(), [ids[1].clone(), ids[2].clone()]);
        assert_eq!(runtime.sandbox_ids(), std::slice::from_ref(&live));
        // Reclaim under disk pressure: the last dead instance goes too, and unused images
        // old enough (none is unused here).
        gc.reclaim(Signal::NodeFsAvailable).await;
        assert_eq!(runtime.container_ids(), [ids[2].clone()]);
        assert_eq!(runtime.image_refs(), ["r/app:1"]);
    }
}
