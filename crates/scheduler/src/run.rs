//! The scheduler against a real API server: kube-rs watchers feed the [`Scheduler`]'s informer
//! handlers, a loop schedules, a ticker does housekeeping, all until `shutdown`.
//!
//! Watches (list + watch, all namespaces): pods (every pod: assigned ones fill the cache,
//! pending ones for our profiles go to the queue), nodes, namespaces (labels for
//! namespaceSelector), claims, volumes and storage classes for VolumeBinding, and Services,
//! ReplicationControllers, ReplicaSets and StatefulSets for PodTopologySpread's default
//! selector. Scheduling starts once the pod, node and namespace lists are in, as upstream
//! waits for its informers to sync.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ferry_client::events::Recorder;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{
    Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, ReplicationController, Service,
};
use k8s_openapi::api::storage::v1::{CSIDriver, CSINode, CSIStorageCapacity, StorageClass};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::binder::KubeBinder;
use crate::config::{Config, ConfigError};
use crate::scheduler::Scheduler;
use crate::workloads::ControllerKind;

/// What the watch loop calls for one resource.
trait Handler<K>: Send + 'static {
    fn apply(&mut self, old: Option<&K>, new: Arc<K>);
    fn delete(&mut self, old: &K);
}

struct Pods(Arc<Scheduler>);
struct Nodes(Arc<Scheduler>);
struct Namespaces(Arc<Scheduler>);
struct Claims(Arc<Scheduler>);
struct Volumes(Arc<Scheduler>);
struct Classes(Arc<Scheduler>);
struct Drivers(Arc<Scheduler>);
struct Capacities(Arc<Scheduler>);
struct CsiNodes(Arc<Scheduler>);
struct Services(Arc<Scheduler>);
struct ReplicationControllers(Arc<Scheduler>);
struct ReplicaSets(Arc<Scheduler>);
struct StatefulSets(Arc<Scheduler>);

impl Handler<Service> for Services {
    fn apply(&mut self, _old: Option<&Service>, new: Arc<Service>) {
        self.0.workloads.put_service(&new);
    }
    fn delete(&mut self, old: &Service) {
        self.0.workloads.remove_service(old);
    }
}

impl Handler<ReplicationController> for ReplicationControllers {
    fn apply(&mut self, _old: Option<&ReplicationController>, new: Arc<ReplicationController>) {
        self.0.workloads.put_replication_controller(&new);
    }
    fn delete(&mut self, old: &ReplicationController) {
        self.0
            .workloads
            .remove_controller(ControllerKind::ReplicationController, &old.metadata);
    }
}

impl Handler<ReplicaSet> for ReplicaSets {
    fn apply(&mut self, _old: Option<&ReplicaSet>, new: Arc<ReplicaSet>) {
        self.0.workloads.put_replica_set(&new);
    }
    fn delete(&mut self, old: &ReplicaSet) {
        self.0
            .workloads
            .remove_controller(ControllerKind::ReplicaSet, &old.metadata);
    }
}

impl Handler<StatefulSet> for StatefulSets {
    fn apply(&mut self, _old: Option<&StatefulSet>, new: Arc<StatefulSet>) {
        self.0.workloads.put_stateful_set(&new);
    }
    fn delete(&mut self, old: &StatefulSet) {
        self.0
            .workloads
            .remove_controller(ControllerKind::StatefulSet, &old.metadata);
    }
}

impl Handler<CSIDriver> for Drivers {
    fn apply(&mut self, _old: Option<&CSIDriver>, new: Arc<CSIDriver>) {
        self.0.on_csi_driver(new);
    }
    fn delete(&mut self, old: &CSIDriver) {
        self.0.on_csi_driver_delete(&old.name_any());
    }
}

impl Handler<CSINode> for CsiNodes {
    fn apply(&mut self, _old: Option<&CSINode>, new: Arc<CSINode>) {
        self.0.on_csi_node(new);
    }
    fn delete(&mut self, old: &CSINode) {
        self.0.on_csi_node_delete(&old.name_any());
    }
}

impl Handler<CSIStorageCapacity> for Capacities {
    fn apply(&mut self, _old: Option<&CSIStorageCapacity>, new: Arc<CSIStorageCapacity>) {
        self.0.on_storage_capacity(new);
    }
    fn delete(&mut self, old: &CSIStorageCapacity) {
        self.0.on_storage_capacity_delete(old);
    }
}

impl Handler<PersistentVolumeClaim> for Claims {
    fn apply(&mut self, _old: Option<&PersistentVolumeClaim>, new: Arc<PersistentVolumeClaim>) {
        self.0.on_claim(new);
    }
    fn delete(&mut self, old: &PersistentVolumeClaim) {
        self.0.on_claim_delete(old);
    }
}

impl Handler<PersistentVolume> for Volumes {
    fn apply(&mut self, _old: Option<&PersistentVolume>, new: Arc<PersistentVolume>) {
        self.0.on_volume(new);
    }
    fn delete(&mut self, old: &PersistentVolume) {
        self.0.on_volume_delete(&old.name_any());
    }
}

impl Handler<StorageClass> for Classes {
    fn apply(&mut self, _old: Option<&StorageClass>, new: Arc<StorageClass>) {
        self.0.on_storage_class(new);
    }
    fn delete(&mut self, old: &StorageClass) {
        self.0.on_storage_class_delete(&old.name_any());
    }
}

impl Handler<Pod> for Pods {
    fn apply(&mut self, old: Option<&Pod>, new: Arc<Pod>) {
        self.0.on_pod(old, new);
    }
    fn delete(&mut self, old: &Pod) {
        self.0.on_pod_delete(old);
    }
}

impl Handler<Node> for Nodes {
    fn apply(&mut self, _old: Option<&Node>, new: Arc<Node>) {
        self.0.on_node(new);
    }
    fn delete(&mut self, old: &Node) {
        self.0.on_node_delete(&old.name_any());
    }
}

impl Handler<Namespace> for Namespaces {
    fn apply(&mut self, _old: Option<&Namespace>, new: Arc<Namespace>) {
        self.0.on_namespace(&new);
    }
    fn delete(&mut self, old: &Namespace) {
        self.0.on_namespace_delete(&old.name_any());
    }
}

fn key<K: Resource>(object: &K) -> String {
    format!(
        "{}/{}",
        object.meta().namespace.as_deref().unwrap_or(""),
        object.meta().name.as_deref().unwrap_or("")
    )
}

/// Runs one watcher, keeping the last version of each object (to give handlers the old
/// version and to turn a relist into deletes for objects that vanished meanwhile).
async fn watch<K, H>(api: Api<K>, mut handler: H, synced: oneshot::Sender<()>)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    H: Handler<K>,
{
    let mut known: HashMap<String, Arc<K>> = HashMap::new();
    let mut relisted: Option<HashMap<String, Arc<K>>> = None;
    let mut synced = Some(synced);
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(%error, kind = std::any::type_name::<K>(), "watch error; retrying");
                continue;
            }
        };
        match event {
            Event::Init => relisted = Some(HashMap::new()),
            Event::InitApply(object) | Event::Apply(object) => {
                let object = Arc::new(object);
                let k = key(&*object);
                let old = known.insert(k.clone(), object.clone());
                if let Some(seen) = relisted.as_mut() {
                    seen.insert(k, object.clone());
                }
                handler.apply(old.as_deref(), object);
            }
            Event::Delete(object) => {
                known.remove(&key(&object));
                handler.delete(&object);
            }
            Event::InitDone => {
                if let Some(seen) = relisted.take() {
                    for (k, object) in &known {
                        if !seen.contains_key(k) {
                            handler.delete(object);
                        }
                    }
                    known = seen;
                }
                if let Some(synced) = synced.take() {
                    let _ = synced.send(());
                }
            }
        }
    }
}

/// Runs until `shutdown` resolves: watches pods and nodes through kube-rs, schedules, binds.
/// Fails only at the start, when `config`'s profiles do not build; watch errors are retried.
pub async fn run(
    client: kube::Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ConfigError> {
    let recorder = Recorder::new(client.clone(), crate::config::DEFAULT_SCHEDULER_NAME, "");
    let binder = Arc::new(KubeBinder::new(client.clone()));
    let scheduler = Scheduler::new(&config, binder, Some(recorder))?;
    for profile in &config.profiles {
        tracing::info!(scheduler_name = %profile.scheduler_name, "scheduler profile loaded");
    }

    let (pods_synced, pods_ready) = oneshot::channel();
    let (nodes_synced, nodes_ready) = oneshot::channel();
    let (namespaces_synced, namespaces_ready) = oneshot::channel();
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(watch(
        Api::<Pod>::all(client.clone()),
        Pods(scheduler.clone()),
        pods_synced,
    ));
    tasks.spawn(watch(
        Api::<Node>::all(client.clone()),
        Nodes(scheduler.clone()),
        nodes_synced,
    ));
    tasks.spawn(watch(
        Api::<Namespace>::all(client.clone()),
        Namespaces(scheduler.clone()),
        namespaces_synced,
    ));
    // Storage: VolumeBinding's view. Scheduling does not wait for it; a pod rejected for a
    // claim not seen yet is retried when the claim arrives.
    let (claims_synced, _) = oneshot::channel();
    let (volumes_synced, _) = oneshot::channel();
    let (classes_synced, _) = oneshot::channel();
    tasks.spawn(watch(
        Api::<PersistentVolumeClaim>::all(client.clone()),
        Claims(scheduler.clone()),
        claims_synced,
    ));
    tasks.spawn(watch(
        Api::<PersistentVolume>::all(client.clone()),
        Volumes(scheduler.clone()),
        volumes_synced,
    ));
    tasks.spawn(watch(
        Api::<StorageClass>::all(client.clone()),
        Classes(scheduler.clone()),
        classes_synced,
    ));
    let (drivers_synced, _) = oneshot::channel();
    let (capacities_synced, _) = oneshot::channel();
    tasks.spawn(watch(
        Api::<CSIDriver>::all(client.clone()),
        Drivers(scheduler.clone()),
        drivers_synced,
    ));
    tasks.spawn(watch(
        Api::<CSIStorageCapacity>::all(client.clone()),
        Capacities(scheduler.clone()),
        capacities_synced,
    ));
    let (csi_nodes_synced, _) = oneshot::channel();
    tasks.spawn(watch(
        Api::<CSINode>::all(client.clone()),
        CsiNodes(scheduler.clone()),
        csi_nodes_synced,
    ));
    // PodTopologySpread's default selector. Not waited for either: a pod whose controller is
    // not seen yet is spread by its own labels (see `WorkloadCache::default_selector`).
    let (services_synced, _) = oneshot::channel();
    let (rcs_synced, _) = oneshot::channel();
    let (replica_sets_synced, _) = oneshot::channel();
    let (stateful_sets_synced, _) = oneshot::channel();
    tasks.spawn(watch(
        Api::<Service>::all(client.clone()),
        Services(scheduler.clone()),
        services_synced,
    ));
    tasks.spawn(watch(
        Api::<ReplicationController>::all(client.clone()),
        ReplicationControllers(scheduler.clone()),
        rcs_synced,
    ));
    tasks.spawn(watch(
        Api::<ReplicaSet>::all(client.clone()),
        ReplicaSets(scheduler.clone()),
        replica_sets_synced,
    ));
    tasks.spawn(watch(
        Api::<StatefulSet>::all(client.clone()),
        StatefulSets(scheduler.clone()),
        stateful_sets_synced,
    ));
    let housekeeping = scheduler.clone();
    tasks.spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        let mut tick = 0u64;
        loop {
            ticker.tick().await;
            tick += 1;
            housekeeping.housekeeping(tick);
        }
    });

    let scheduling = {
        let scheduler = scheduler.clone();
        async move {
            let (a, b, c) = tokio::join!(pods_ready, nodes_ready, namespaces_ready);
            if a.is_err() || b.is_err() || c.is_err() {
                return;
            }
            tracing::info!("caches synced; scheduling");
            while scheduler.schedule_one().await {}
        }
    };
    tokio::select! {
        _ = shutdown => {}
        _ = scheduling => {}
    }
    scheduler.queue.close();
    tasks.abort_all();
    // Let binds in flight finish (bounded), so pods are not left assumed-but-unbound.
    let _ = tokio::time::timeout(Duration::from_secs(5), scheduler.wait_for_bindings()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    /// `ferry` spawns `run` on a multi-threaded runtime: its future must be `Send`.
    #[allow(dead_code)]
    fn run_future_is_send(client: kube::Client) {
        fn is_send<T: Send>(_: &T) {}
        let future = super::run(client, crate::Config::default(), async {});
        is_send(&future);
    }
}
