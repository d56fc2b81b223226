//! The garbage collector: deletes objects whose owners are gone, as upstream's
//! `pkg/controller/garbagecollector`.
//!
//! It discovers every resource the API serves that can be listed, watched and deleted (events
//! excepted), watches their metadata only, and keeps a graph of owner → dependents by UID. An
//! owner that is referenced but not (yet) seen is a *virtual* node, verified with a live GET.
//!
//! - **Background**: when an owner disappears, each dependent is examined; if none of its owners
//!   exists any more it is deleted, otherwise the dangling references are removed.
//! - **Foreground**: an owner being deleted with the `foregroundDeletion` finalizer has all its
//!   dependents deleted (those that have dependents of their own, in the foreground too); its
//!   finalizer is removed once no dependent with `blockOwnerDeletion` is left.
//! - **Orphan**: an owner being deleted with the `orphan` finalizer has its reference removed
//!   from every dependent, then the finalizer removed.
//!
//! Discovery runs again every [`RESYNC_PERIOD`] (upstream's `GarbageCollector.Sync`), since
//! resources come and go at run time (CustomResourceDefinitions): a resource newly served gets a
//! watch (a *monitor*), one no longer served has its watch stopped, and the graph is kept
//! (upstream's `syncMonitors`). Objects whose resource went away stay in the graph; what needs an
//! API for them fails with [`GcError::NoApi`] and is retried with backoff. Scope (namespaced or
//! not) always comes from the discovered resource, never from a list of kinds.
//!
//! The graph is changed by one task only (events from all watches go through a channel); the
//! workers read it under a lock and talk to the API.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, PartialObjectMeta, Patch, PatchParams, Preconditions,
};
use kube::discovery::{verbs, Discovery, Scope};
use kube::runtime::{watcher, WatchStreamExt as _};
use kube::Api;
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

use crate::queue::{run_workers, Queue};
use crate::util::api_code;
use crate::{ApiContext as _, Context, Error, ErrorChain};

/// Why an attempt to delete or orphan failed.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// An API call failed.
    #[error(transparent)]
    Api(#[from] Error),
    /// A watched object's kind is no longer among the discovered resources.
    #[error("no API for a watched object")]
    NoApi,
}

/// Resources the collector never looks at (upstream's `DefaultIgnoredResources`).
const IGNORED: &[(&str, &str)] = &[("", "events"), ("events.k8s.io", "events")];

/// The finalizer of foreground deletion.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer of orphaning deletion.
pub const ORPHAN: &str = "orphan";

/// How often discovery runs again (kube-controller-manager syncs its collector every 30 s).
pub const RESYNC_PERIOD: Duration = Duration::from_secs(30);

/// How soon discovery is tried again while nothing is watched yet.
const FIRST_DISCOVERY_RETRY: Duration = Duration::from_secs(5);

/// One watched resource type, as discovered.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Resource {
    api: ApiResource,
    namespaced: bool,
}

impl Resource {
    fn key(&self) -> ResourceKey {
        ResourceKey {
            group: self.api.group.clone(),
            version: self.api.version.clone(),
            plural: self.api.plural.clone(),
        }
    }

    /// Whether objects of `api_version`/`kind` are reached through this resource: same group
    /// and kind. The API server serves an object at every version of its group, and an owner
    /// reference may name another version than the preferred one discovery recommends.
    fn serves(&self, api_version: &str, kind: &str) -> bool {
        let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
        self.api.kind == kind && self.api.group == group
    }
}

/// The resource serving `api_version`/`kind` (upstream's REST mapping): the exact version, else
/// another version of the same group.
fn find_resource<'a>(
    resources: &'a [Resource],
    api_version: &str,
    kind: &str,
) -> Option<&'a Resource> {
    resources
        .iter()
        .find(|r| r.api.api_version == api_version && r.api.kind == kind)
        .or_else(|| resources.iter().find(|r| r.serves(api_version, kind)))
}

/// A resource's name in the API — group, version, plural (upstream's `GroupVersionResource`) —
/// which keys its monitor.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct ResourceKey {
    group: String,
    version: String,
    plural: String,
}

/// What a resync does to the monitors (upstream's `syncMonitors`).
#[derive(Debug, Default, PartialEq)]
struct MonitorChanges {
    /// Resources newly discovered, to watch, in discovery order.
    start: Vec<Resource>,
    /// Resources no longer discovered, whose watch stops, sorted.
    stop: Vec<ResourceKey>,
}

/// Compares the resources watched with those just discovered. A resource whose kind or scope
/// changed under the same name (a CRD deleted and made again) is stopped and started anew.
fn monitor_changes<'a>(
    running: impl IntoIterator<Item = &'a Resource>,
    discovered: &[Resource],
) -> MonitorChanges {
    let running: HashMap<ResourceKey, &Resource> =
        running.into_iter().map(|r| (r.key(), r)).collect();
    let mut wanted: HashMap<ResourceKey, &Resource> = HashMap::new();
    let mut changes = MonitorChanges::default();
    for resource in discovered {
        let key = resource.key();
        if wanted.contains_key(&key) {
            continue;
        }
        if running.get(&key) != Some(&resource) {
            changes.start.push(resource.clone());
        }
        wanted.insert(key, resource);
    }
    changes.stop = running
        .iter()
        .filter(|(key, resource)| wanted.get(*key) != Some(*resource))
        .map(|(key, _)| key.clone())
        .collect();
    changes.stop.sort();
    changes
}

/// An event of one monitor, with the resource it watches.
type MonitorEvent = (
    Arc<Resource>,
    watcher::Event<PartialObjectMeta<DynamicObject>>,
);

/// A running watch of one resource.
struct Monitor {
    resource: Arc<Resource>,
    task: AbortHandle,
}

/// The graph builder's watches, one per resource, keyed by resource so that starting or
/// stopping some never disturbs the others (upstream's `monitors`). Dropping it stops them all.
struct Monitors {
    client: kube::Client,
    events: mpsc::Sender<MonitorEvent>,
    running: HashMap<ResourceKey, Monitor>,
    tasks: JoinSet<()>,
}

impl Monitors {
    fn new(client: kube::Client, events: mpsc::Sender<MonitorEvent>) -> Monitors {
        Monitors {
            client,
            events,
            running: HashMap::new(),
            tasks: JoinSet::new(),
        }
    }

    fn resources(&self) -> impl Iterator<Item = &Resource> {
        self.running.values().map(|m| m.resource.as_ref())
    }

    fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    fn apply(&mut self, changes: &MonitorChanges) {
        for key in &changes.stop {
            if let Some(monitor) = self.running.remove(key) {
                monitor.task.abort();
            }
        }
        for resource in &changes.start {
            self.start(resource.clone());
        }
        // Aborted tasks stay in the set until joined.
        while self.tasks.try_join_next().is_some() {}
    }

    fn start(&mut self, resource: Resource) {
        let resource = Arc::new(resource);
        let api: Api<PartialObjectMeta<DynamicObject>> =
            Api::all_with(self.client.clone(), &resource.api);
        let events = self.events.clone();
        let watched = resource.clone();
        let task = self.tasks.spawn(async move {
            let stream = watcher(api, watcher::Config::default()).default_backoff();
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(event) => {
                        if events.send((watched.clone(), event)).await.is_err() {
                            return;
                        }
                    }
                    Err(error) => tracing::debug!(resource = %watched.api.plural, %error, "garbage collector watch error"),
                }
            }
        });
        let key = resource.key();
        if let Some(old) = self.running.insert(key, Monitor { resource, task }) {
            old.task.abort();
        }
    }
}

/// What the graph builder remembers per resource to notice objects deleted while a watch was
/// down: the UIDs seen, and those listed so far by a relist in progress. Kept across a monitor's
/// stop and restart, so the new monitor's first list drops what went away meanwhile.
#[derive(Default)]
struct Seen {
    known: HashMap<ResourceKey, HashSet<String>>,
    listing: HashMap<ResourceKey, HashSet<String>>,
}

/// Where an object is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// `group/version` or `v1`.
    pub api_version: String,
    /// The kind.
    pub kind: String,
    /// Empty for cluster-scoped objects. A virtual node (an owner only referenced) has its first
    /// dependent's namespace, as upstream: owners share their dependents' namespace, and whether
    /// the kind is namespaced at all is the discovered resource's to say when the API is called.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// The UID.
    pub uid: String,
}

/// A node of the ownership graph.
#[derive(Clone, Debug)]
pub struct GraphNode {
    /// The object.
    pub identity: Identity,
    /// Its owner references.
    pub owners: Vec<OwnerReference>,
    /// UIDs of objects that name this one as an owner.
    pub dependents: HashSet<String>,
    /// Has a deletionTimestamp.
    pub being_deleted: bool,
    /// Its finalizers.
    pub finalizers: Vec<String>,
    /// Seen through a watch (false: only referenced, existence unverified).
    pub observed: bool,
}

impl GraphNode {
    fn deleting_dependents(&self) -> bool {
        self.being_deleted && self.finalizers.iter().any(|f| f == FOREGROUND)
    }

    fn orphaning(&self) -> bool {
        self.being_deleted && self.finalizers.iter().any(|f| f == ORPHAN)
    }
}

/// The ownership graph.
#[derive(Default)]
pub struct Graph {
    nodes: HashMap<String, GraphNode>,
}

/// What an event on the graph asks the workers to do.
#[derive(Debug, Default, PartialEq)]
pub struct Work {
    /// UIDs to examine for deletion.
    pub attempt_to_delete: Vec<String>,
    /// UIDs whose dependents are to be orphaned.
    pub attempt_to_orphan: Vec<String>,
}

impl Graph {
    /// A node by UID.
    pub fn get(&self, uid: &str) -> Option<&GraphNode> {
        self.nodes.get(uid)
    }

    /// Records an object seen (added or changed); returns the work it creates.
    pub fn observe(
        &mut self,
        identity: Identity,
        owners: Vec<OwnerReference>,
        being_deleted: bool,
        finalizers: Vec<String>,
    ) -> Work {
        let mut work = Work::default();
        let uid = identity.uid.clone();
        let old = self.nodes.get(&uid).cloned();
        let old_owners: Vec<OwnerReference> = old
            .as_ref()
            .filter(|o| o.observed)
            .map(|o| o.owners.clone())
            .unwrap_or_default();
        let was_deleting_dependents = old
            .as_ref()
            .is_some_and(|o| o.observed && o.deleting_dependents());
        let was_orphaning = old.as_ref().is_some_and(|o| o.observed && o.orphaning());
        let dependents = old.map(|o| o.dependents).unwrap_or_default();
        let node = GraphNode {
            identity: identity.clone(),
            owners: owners.clone(),
            dependents,
            being_deleted,
            finalizers,
            observed: true,
        };
        let deleting_dependents = node.deleting_dependents();
        let orphaning = node.orphaning();
        self.nodes.insert(uid.clone(), node);

        // Owner edges that went away.
        for gone in old_owners
            .iter()
            .filter(|o| !owners.iter().any(|n| n.uid == o.uid))
        {
            if let Some(owner) = self.nodes.get_mut(&gone.uid) {
                owner.dependents.remove(&uid);
                if owner.deleting_dependents() {
                    work.attempt_to_delete.push(gone.uid.clone());
                }
            }
        }
        // New owner edges; owners never seen become virtual nodes, to be verified.
        for added in owners
            .iter()
            .filter(|o| !old_owners.iter().any(|n| n.uid == o.uid))
        {
            match self.nodes.get_mut(&added.uid) {
                Some(owner) => {
                    owner.dependents.insert(uid.clone());
                    if owner.deleting_dependents() {
                        work.attempt_to_delete.push(uid.clone());
                    } else if !owner.observed {
                        // A virtual owner (never seen, or seen gone and kept for its
                        // dependents): verify it again, or a dependent made just after the
                        // owner went (a ReplicaSet's pod created as it was deleted) would
                        // hang on it and never be examined.
                        work.attempt_to_delete.push(added.uid.clone());
                    }
                }
                None => {
                    let virtual_node = GraphNode {
                        identity: Identity {
                            api_version: added.api_version.clone(),
                            kind: added.kind.clone(),
                            namespace: identity.namespace.clone(),
                            name: added.name.clone(),
                            uid: added.uid.clone(),
                        },
                        owners: Vec::new(),
                        dependents: HashSet::from([uid.clone()]),
                        being_deleted: false,
                        finalizers: Vec::new(),
                        observed: false,
                    };
                    self.nodes.insert(added.uid.clone(), virtual_node);
                    work.attempt_to_delete.push(added.uid.clone());
                }
            }
        }
        if orphaning && !was_orphaning {
            work.attempt_to_orphan.push(uid.clone());
        }
        if deleting_dependents && !was_deleting_dependents {
            work.attempt_to_delete.push(uid.clone());
            if let Some(node) = self.nodes.get(&uid) {
                work.attempt_to_delete
                    .extend(node.dependents.iter().cloned());
            }
        }
        work
    }

    /// Records an object gone; its dependents are examined, and owners waiting for it.
    pub fn remove(&mut self, uid: &str) -> Work {
        let mut work = Work::default();
        let Some(node) = self.nodes.remove(uid) else {
            return work;
        };
        work.attempt_to_delete
            .extend(node.dependents.iter().cloned());
        // Dependents keep an edge to the (now absent) owner through their references; keep a
        // virtual node so they can still be found, as upstream does.
        if !node.dependents.is_empty() {
            self.nodes.insert(
                uid.to_string(),
                GraphNode {
                    observed: false,
                    owners: Vec::new(),
                    being_deleted: false,
                    finalizers: Vec::new(),
                    ..node.clone()
                },
            );
            // And have it re-verified (then dropped) by a worker.
        }
        for owner in &node.owners {
            if let Some(o) = self.nodes.get_mut(&owner.uid) {
                o.dependents.remove(uid);
                if o.deleting_dependents() || (!o.observed && o.dependents.is_empty()) {
                    work.attempt_to_delete.push(owner.uid.clone());
                }
            }
        }
        work
    }

    /// UIDs of the virtual nodes (owners referenced, never seen) whose identity `matches`.
    pub fn unobserved(&self, matches: impl Fn(&Identity) -> bool) -> Vec<String> {
        let mut uids: Vec<String> = self
            .nodes
            .values()
            .filter(|n| !n.observed && matches(&n.identity))
            .map(|n| n.identity.uid.clone())
            .collect();
        uids.sort();
        uids
    }

    /// Drops a virtual node confirmed absent; its dependents are examined.
    pub fn drop_virtual(&mut self, uid: &str) -> Work {
        let mut work = Work::default();
        if self.nodes.get(uid).is_some_and(|n| !n.observed) {
            if let Some(node) = self.nodes.remove(uid) {
                work.attempt_to_delete.extend(node.dependents);
            }
        }
        work
    }
}

/// How an owner reference stands (upstream's `classifyReferences`).
#[derive(Debug, PartialEq)]
enum OwnerState {
    Solid,
    Dangling,
    WaitingForDependentsDeletion,
}

/// The collector.
pub struct GarbageCollector {
    ctx: Arc<Context>,
    graph: Mutex<Graph>,
    /// The resources discovered last: how an object's API and scope are found.
    resources: Mutex<Vec<Resource>>,
    resync_period: Duration,
    attempt_to_delete: Arc<Queue<String>>,
    attempt_to_orphan: Arc<Queue<String>>,
}

impl GarbageCollector {
    /// A collector that runs discovery again every [`RESYNC_PERIOD`];
    /// [`GarbageCollector::run`] discovers resources and starts watching.
    pub fn new(ctx: Arc<Context>) -> Arc<GarbageCollector> {
        GarbageCollector::with_resync_period(ctx, RESYNC_PERIOD)
    }

    /// A collector that runs discovery again every `resync_period`.
    pub fn with_resync_period(ctx: Arc<Context>, resync_period: Duration) -> Arc<GarbageCollector> {
        Arc::new(GarbageCollector {
            ctx,
            graph: Mutex::new(Graph::default()),
            resources: Mutex::new(Vec::new()),
            resync_period,
            attempt_to_delete: Queue::new(),
            attempt_to_orphan: Queue::new(),
        })
    }

    fn schedule(&self, work: Work) {
        for uid in work.attempt_to_delete {
            self.attempt_to_delete.add(uid);
        }
        for uid in work.attempt_to_orphan {
            self.attempt_to_orphan.add(uid);
        }
    }

    async fn discover(&self) -> Result<Vec<Resource>, Error> {
        let discovery = Discovery::new(self.ctx.client.clone())
            .run()
            .await
            .context("discovery")?;
        let mut resources = Vec::new();
        for group in discovery.groups() {
            for (api, caps) in group.recommended_resources() {
                let usable = [verbs::LIST, verbs::WATCH, verbs::DELETE]
                    .iter()
                    .all(|v| caps.supports_operation(v));
                if !usable || IGNORED.contains(&(api.group.as_str(), api.plural.as_str())) {
                    continue;
                }
                resources.push(Resource {
                    namespaced: caps.scope == Scope::Namespaced,
                    api,
                });
            }
        }
        // Groups come in no particular order.
        resources.sort_by_key(Resource::key);
        Ok(resources)
    }

    /// Runs discovery and brings the monitors in line with it (upstream's `Sync`). When
    /// discovery fails or finds nothing, the monitors and lookups are kept as they are.
    async fn sync_monitors(&self, monitors: &mut Monitors) -> Result<MonitorChanges, Error> {
        let discovered = self.discover().await?;
        if discovered.is_empty() {
            tracing::info!("garbage collector: discovery found no resources, keeping the monitors");
            return Ok(MonitorChanges::default());
        }
        let changes = monitor_changes(monitors.resources(), &discovered);
        // Lookups first: the new monitors' objects need their API as soon as they are seen.
        *self.resources.lock() = discovered;
        monitors.apply(&changes);
        if changes == MonitorChanges::default() {
            return Ok(changes);
        }
        let started: Vec<&str> = changes
            .start
            .iter()
            .map(|r| r.api.plural.as_str())
            .collect();
        let stopped: Vec<&str> = changes.stop.iter().map(|k| k.plural.as_str()).collect();
        tracing::info!(?started, ?stopped, "garbage collector: monitors changed");
        // Owners referenced while their kind was not served could not be verified; they can be
        // now (upstream retries them until its REST mapper knows the kind).
        let unverified = self.graph.lock().unobserved(|owner| {
            changes
                .start
                .iter()
                .any(|r| r.serves(&owner.api_version, &owner.kind))
        });
        for uid in unverified {
            self.attempt_to_delete.add(uid);
        }
        Ok(changes)
    }

    /// Discovers, watches every resource's metadata and runs the workers, until the process
    /// ends; discovery runs again every resync period, starting and stopping watches.
    pub async fn run(self: Arc<Self>, workers: usize) {
        let (sender, mut events) = mpsc::channel::<MonitorEvent>(1024);
        let mut tasks = JoinSet::new();
        let this = self.clone();
        tasks.spawn(async move {
            // Owns the monitors: when this task ends, every watch stops and the channel closes.
            let mut monitors = Monitors::new(this.ctx.client.clone(), sender);
            loop {
                if let Err(error) = this.sync_monitors(&mut monitors).await {
                    tracing::info!(error = %ErrorChain(&error), "garbage collector: discovery failed, keeping the monitors");
                }
                let delay = if monitors.is_empty() {
                    FIRST_DISCOVERY_RETRY.min(this.resync_period)
                } else {
                    this.resync_period
                };
                tokio::time::sleep(delay).await;
            }
        });
        let this = self.clone();
        tasks.spawn(async move {
            let queue = this.attempt_to_delete.clone();
            let gc = this.clone();
            run_workers(queue, workers, "garbagecollector", move |uid| {
                let gc = gc.clone();
                async move { gc.attempt_to_delete(uid).await }
            })
            .await;
        });
        let this = self.clone();
        tasks.spawn(async move {
            let queue = this.attempt_to_orphan.clone();
            let gc = this.clone();
            run_workers(queue, 1, "garbagecollector-orphan", move |uid| {
                let gc = gc.clone();
                async move { gc.attempt_to_orphan(uid).await }
            })
            .await;
        });
        // The graph builder: the only writer of the graph. Events of a monitor just stopped
        // may still arrive; they are true, and carry their resource.
        let mut seen = Seen::default();
        while let Some((resource, event)) = events.recv().await {
            self.process_event(&mut seen, &resource, event);
        }
        tasks.abort_all();
    }

    /// Applies one watch event to the graph and schedules the work it makes.
    fn process_event(
        &self,
        seen: &mut Seen,
        resource: &Resource,
        event: watcher::Event<PartialObjectMeta<DynamicObject>>,
    ) {
        let key = resource.key();
        match event {
            watcher::Event::Apply(meta) | watcher::Event::InitApply(meta) => {
                let Some(uid) = meta.metadata.uid.clone() else {
                    return;
                };
                if let Some(listed) = seen.listing.get_mut(&key) {
                    listed.insert(uid.clone());
                }
                seen.known.entry(key).or_default().insert(uid);
                let work = self.observe(resource, &meta);
                self.schedule(work);
            }
            watcher::Event::Delete(meta) => {
                let Some(uid) = meta.metadata.uid.clone() else {
                    return;
                };
                seen.known.entry(key).or_default().remove(&uid);
                let work = self.graph.lock().remove(&uid);
                self.schedule(work);
            }
            watcher::Event::Init => {
                seen.listing.insert(key, HashSet::new());
            }
            watcher::Event::InitDone => {
                let listed = seen.listing.remove(&key).unwrap_or_default();
                let vanished: Vec<String> = seen
                    .known
                    .get(&key)
                    .map(|k| k.difference(&listed).cloned().collect())
                    .unwrap_or_default();
                seen.known.insert(key, listed);
                for uid in vanished {
                    let work = self.graph.lock().remove(&uid);
                    self.schedule(work);
                }
            }
        }
    }

    fn observe(&self, resource: &Resource, meta: &PartialObjectMeta<DynamicObject>) -> Work {
        let m = &meta.metadata;
        let identity = Identity {
            api_version: resource.api.api_version.clone(),
            kind: resource.api.kind.clone(),
            namespace: if resource.namespaced {
                m.namespace.clone().unwrap_or_default()
            } else {
                String::new()
            },
            name: m.name.clone().unwrap_or_default(),
            uid: m.uid.clone().unwrap_or_default(),
        };
        self.graph.lock().observe(
            identity,
            m.owner_references.clone().unwrap_or_default(),
            m.deletion_timestamp.is_some(),
            m.finalizers.clone().unwrap_or_default(),
        )
    }

    /// The API of the object, scoped as discovery says; `None` when its kind is not (or no
    /// longer) served, or when a namespaced kind is named without a namespace — an owner
    /// reference from a cluster-scoped object to a namespaced kind, which upstream rejects
    /// (`namespacedOwnerOfClusterScopedObjectErr`): such an owner cannot exist.
    fn api_for(&self, identity: &Identity) -> Option<Api<DynamicObject>> {
        let resources = self.resources.lock();
        let resource = find_resource(&resources, &identity.api_version, &identity.kind)?;
        if !resource.namespaced {
            return Some(Api::all_with(self.ctx.client.clone(), &resource.api));
        }
        if identity.namespace.is_empty() {
            tracing::debug!(kind = %identity.kind, name = %identity.name, "garbage collector: a namespaced kind named by a cluster-scoped object");
            return None;
        }
        Some(Api::namespaced_with(
            self.ctx.client.clone(),
            &identity.namespace,
            &resource.api,
        ))
    }

    /// Whether the object exists with this UID (a live read: caches lag).
    async fn exists(&self, identity: &Identity) -> Result<Option<bool>, Error> {
        let Some(api) = self.api_for(identity) else {
            return Ok(None);
        };
        match api.get_metadata_opt(&identity.name).await {
            Ok(Some(found)) => Ok(Some(
                found.metadata.uid.as_deref() == Some(identity.uid.as_str()),
            )),
            Ok(None) => Ok(Some(false)),
            Err(e) => Err(e).context("reading an owner"),
        }
    }

    async fn classify(
        &self,
        dependent: &Identity,
        owner: &OwnerReference,
    ) -> Result<OwnerState, Error> {
        let known = self.graph.lock().get(&owner.uid).cloned();
        match known {
            Some(node) if node.observed => {
                if node.deleting_dependents() {
                    Ok(OwnerState::WaitingForDependentsDeletion)
                } else {
                    Ok(OwnerState::Solid)
                }
            }
            _ => {
                // The namespace applies only if the owner's kind is namespaced (`api_for`).
                let identity = Identity {
                    api_version: owner.api_version.clone(),
                    kind: owner.kind.clone(),
                    namespace: dependent.namespace.clone(),
                    name: owner.name.clone(),
                    uid: owner.uid.clone(),
                };
                match self.exists(&identity).await? {
                    Some(false) => Ok(OwnerState::Dangling),
                    // Present, or a kind we cannot look up: never delete on a guess.
                    _ => Ok(OwnerState::Solid),
                }
            }
        }
    }

    async fn attempt_to_delete(&self, uid: String) -> Result<Option<Duration>, GcError> {
        let Some(node) = self.graph.lock().get(&uid).cloned() else {
            return Ok(None);
        };
        if !node.observed {
            // A virtual node: does the owner exist at all?
            match self.exists(&node.identity).await? {
                Some(false) => {
                    let work = self.graph.lock().drop_virtual(&uid);
                    self.schedule(work);
                }
                _ => {
                    if node.dependents.is_empty() {
                        self.graph.lock().drop_virtual(&uid);
                    }
                }
            }
            return Ok(None);
        }
        let api = self.api_for(&node.identity).ok_or(GcError::NoApi)?;
        if node.deleting_dependents() {
            return self.process_deleting_dependents(&node, &api).await;
        }
        if node.being_deleted || node.owners.is_empty() {
            return Ok(None);
        }
        let mut solid = Vec::new();
        let mut dangling = Vec::new();
        let mut waiting = Vec::new();
        for owner in &node.owners {
            match self.classify(&node.identity, owner).await? {
                OwnerState::Solid => solid.push(owner.clone()),
                OwnerState::Dangling => dangling.push(owner.clone()),
                OwnerState::WaitingForDependentsDeletion => waiting.push(owner.clone()),
            }
        }
        if !solid.is_empty() {
            if dangling.is_empty() && waiting.is_empty() {
                return Ok(None);
            }
            // Keep the object; drop references to gone owners, unblock waiting ones.
            let refs: Vec<OwnerReference> = node
                .owners
                .iter()
                .filter(|o| !dangling.iter().any(|d| d.uid == o.uid))
                .map(|o| {
                    let mut o = o.clone();
                    if waiting.iter().any(|w| w.uid == o.uid) {
                        o.block_owner_deletion = Some(false);
                    }
                    o
                })
                .collect();
            let patch = json!({"metadata": {"ownerReferences": refs, "uid": uid}});
            match api
                .patch(
                    &node.identity.name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => return Ok(None),
                Err(e) if matches!(api_code(&e), Some(404) | Some(409)) => return Ok(None),
                Err(e) => return Err(Error::api("removing dangling owner references", e).into()),
            }
        }
        let policy = if !waiting.is_empty() && !node.dependents.is_empty() {
            "Foreground"
        } else if node.finalizers.iter().any(|f| f == ORPHAN) {
            "Orphan"
        } else if node.finalizers.iter().any(|f| f == FOREGROUND) {
            "Foreground"
        } else {
            "Background"
        };
        let params = DeleteParams {
            propagation_policy: Some(match policy {
                "Foreground" => kube::api::PropagationPolicy::Foreground,
                "Orphan" => kube::api::PropagationPolicy::Orphan,
                _ => kube::api::PropagationPolicy::Background,
            }),
            preconditions: Some(Preconditions {
                uid: Some(uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        tracing::debug!(kind = %node.identity.kind, name = %node.identity.name, policy, "garbage collector: deleting a dependent");
        match api.delete(&node.identity.name, &params).await {
            Ok(_) => Ok(None),
            Err(e) if matches!(api_code(&e), Some(404) | Some(409)) => Ok(None),
            Err(e) => Err(Error::api("deleting a dependent", e).into()),
        }
    }

    /// An owner deleted in the foreground: wait for blocking dependents, then let it go.
    async fn process_deleting_dependents(
        &self,
        node: &GraphNode,
        api: &Api<DynamicObject>,
    ) -> Result<Option<Duration>, GcError> {
        let (blocking, others): (Vec<GraphNode>, Vec<GraphNode>) = {
            let graph = self.graph.lock();
            let dependents: Vec<GraphNode> = node
                .dependents
                .iter()
                .filter_map(|d| graph.get(d).cloned())
                .collect();
            dependents.into_iter().partition(|d| {
                d.owners
                    .iter()
                    .any(|o| o.uid == node.identity.uid && o.block_owner_deletion == Some(true))
            })
        };
        for dependent in blocking.iter().chain(others.iter()) {
            if !dependent.being_deleted || !dependent.deleting_dependents() {
                self.attempt_to_delete.add(dependent.identity.uid.clone());
            }
        }
        if !blocking.is_empty() {
            return Ok(None);
        }
        self.remove_finalizer(node, api, FOREGROUND).await
    }

    async fn remove_finalizer(
        &self,
        node: &GraphNode,
        api: &Api<DynamicObject>,
        finalizer: &str,
    ) -> Result<Option<Duration>, GcError> {
        // Read fresh: finalizers are shared with others, and the patch carries resourceVersion.
        let Some(current) = api
            .get_metadata_opt(&node.identity.name)
            .await
            .map_err(Error::from)?
        else {
            return Ok(None);
        };
        if current.metadata.uid.as_deref() != Some(node.identity.uid.as_str()) {
            return Ok(None);
        }
        let finalizers: Vec<String> = current
            .metadata
            .finalizers
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|f| f != finalizer)
            .collect();
        if Some(&finalizers) == current.metadata.finalizers.as_ref() {
            return Ok(None);
        }
        let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": current.metadata.resource_version}});
        match api
            .patch(
                &node.identity.name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(None),
            Err(e) if api_code(&e) == Some(404) => Ok(None),
            Err(e) => Err(Error::api("removing a finalizer", e).into()),
        }
    }

    async fn attempt_to_orphan(&self, uid: String) -> Result<Option<Duration>, GcError> {
        let Some(node) = self.graph.lock().get(&uid).cloned() else {
            return Ok(None);
        };
        if !node.orphaning() {
            return Ok(None);
        }
        let dependents: Vec<GraphNode> = {
            let graph = self.graph.lock();
            node.dependents
                .iter()
                .filter_map(|d| graph.get(d).cloned())
                .collect()
        };
        for dependent in dependents {
            let Some(api) = self.api_for(&dependent.identity) else {
                continue;
            };
            let refs: Vec<&OwnerReference> =
                dependent.owners.iter().filter(|o| o.uid != uid).collect();
            let patch =
                json!({"metadata": {"ownerReferences": refs, "uid": dependent.identity.uid}});
            match api
                .patch(
                    &dependent.identity.name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => {}
                Err(e) if matches!(api_code(&e), Some(404) | Some(409)) => {}
                Err(e) => return Err(Error::api("orphaning a dependent", e).into()),
            }
        }
        let api = self.api_for(&node.identity).ok_or(GcError::NoApi)?;
        self.remove_finalizer(&node, &api, ORPHAN).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(kind: &str, name: &str, uid: &str) -> Identity {
        Identity {
            api_version: "apps/v1".into(),
            kind: kind.into(),
            namespace: "ns".into(),
            name: name.into(),
            uid: uid.into(),
        }
    }

    fn owner(kind: &str, name: &str, uid: &str, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: kind.into(),
            name: name.into(),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(block),
        }
    }

    #[test]
    fn unseen_owners_become_virtual_and_are_verified() {
        let mut g = Graph::default();
        let work = g.observe(
            id("ReplicaSet", "rs", "rs-uid"),
            vec![owner("Deployment", "d", "d-uid", true)],
            false,
            vec![],
        );
        assert_eq!(work.attempt_to_delete, vec!["d-uid".to_string()]);
        assert!(!g.get("d-uid").expect("virtual").observed);
        // The owner shows up: it becomes real and keeps its dependent.
        let work = g.observe(id("Deployment", "d", "d-uid"), vec![], false, vec![]);
        assert_eq!(work, Work::default());
        assert!(g.get("d-uid").expect("owner").dependents.contains("rs-uid"));
    }

    #[test]
    fn an_owner_going_away_examines_its_dependents() {
        let mut g = Graph::default();
        g.observe(id("Deployment", "d", "d-uid"), vec![], false, vec![]);
        g.observe(
            id("ReplicaSet", "rs", "rs-uid"),
            vec![owner("Deployment", "d", "d-uid", true)],
            false,
            vec![],
        );
        let work = g.remove("d-uid");
        assert_eq!(work.attempt_to_delete, vec!["rs-uid".to_string()]);
    }

    #[test]
    fn a_dependent_made_after_its_owner_went_has_the_owner_verified() {
        let mut g = Graph::default();
        g.observe(id("ReplicaSet", "rs", "rs-uid"), vec![], false, vec![]);
        let rs = || vec![owner("ReplicaSet", "rs", "rs-uid", true)];
        g.observe(id("Pod", "a", "a-uid"), rs(), false, vec![]);
        // The ReplicaSet is deleted; its pod keeps a virtual node for it.
        let work = g.remove("rs-uid");
        assert_eq!(work.attempt_to_delete, vec!["a-uid".to_string()]);
        assert!(!g.get("rs-uid").expect("kept virtual").observed);
        // A pod the ReplicaSet controller created as the set went: the owner is verified again
        // (then dropped, and its dependents examined), not taken as it stands.
        let work = g.observe(id("Pod", "b", "b-uid"), rs(), false, vec![]);
        assert_eq!(work.attempt_to_delete, vec!["rs-uid".to_string()]);
        let work = g.drop_virtual("rs-uid");
        let mut examined = work.attempt_to_delete;
        examined.sort();
        assert_eq!(examined, vec!["a-uid".to_string(), "b-uid".to_string()]);
    }

    #[test]
    fn foreground_deletion_examines_owner_and_dependents() {
        let mut g = Graph::default();
        g.observe(id("Deployment", "d", "d-uid"), vec![], false, vec![]);
        g.observe(
            id("ReplicaSet", "rs", "rs-uid"),
            vec![owner("Deployment", "d", "d-uid", true)],
            false,
            vec![],
        );
        let work = g.observe(
            id("Deployment", "d", "d-uid"),
            vec![],
            true,
            vec![FOREGROUND.into()],
        );
        assert_eq!(
            work.attempt_to_delete,
            vec!["d-uid".to_string(), "rs-uid".to_string()]
        );
        // The dependent leaving wakes the waiting owner.
        let work = g.remove("rs-uid");
        assert_eq!(work.attempt_to_delete, vec!["d-uid".to_string()]);
    }

    #[test]
    fn orphan_finalizer_asks_for_orphaning() {
        let mut g = Graph::default();
        g.observe(id("ReplicaSet", "rs", "rs-uid"), vec![], false, vec![]);
        let work = g.observe(
            id("ReplicaSet", "rs", "rs-uid"),
            vec![],
            true,
            vec![ORPHAN.into()],
        );
        assert_eq!(work.attempt_to_orphan, vec!["rs-uid".to_string()]);
    }

    pub(super) fn resource(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
    ) -> Resource {
        let api_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        Resource {
            api: ApiResource {
                group: group.into(),
                version: version.into(),
                api_version,
                kind: kind.into(),
                plural: plural.into(),
            },
            namespaced,
        }
    }

    fn key(group: &str, version: &str, plural: &str) -> ResourceKey {
        ResourceKey {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
        }
    }

    #[test]
    fn monitors_follow_discovery() {
        let pods = resource("", "v1", "Pod", "pods", true);
        let config_maps = resource("", "v1", "ConfigMap", "configmaps", true);
        let widgets = resource("example.com", "v1", "Widget", "widgets", false);
        let widgets_v2 = resource("example.com", "v2", "Widget", "widgets", false);
        let namespaced_widgets = resource("example.com", "v1", "Widget", "widgets", true);
        struct Case {
            name: &'static str,
            running: Vec<Resource>,
            discovered: Vec<Resource>,
            start: Vec<Resource>,
            stop: Vec<ResourceKey>,
        }
        let cases = [
            Case {
                name: "first discovery starts everything",
                running: vec![],
                discovered: vec![pods.clone(), config_maps.clone()],
                start: vec![pods.clone(), config_maps.clone()],
                stop: vec![],
            },
            Case {
                name: "nothing changed",
                running: vec![pods.clone(), widgets.clone()],
                discovered: vec![widgets.clone(), pods.clone()],
                start: vec![],
                stop: vec![],
            },
            Case {
                name: "a custom resource served later is started alone",
                running: vec![pods.clone(), config_maps.clone()],
                discovered: vec![pods.clone(), config_maps.clone(), widgets.clone()],
                start: vec![widgets.clone()],
                stop: vec![],
            },
            Case {
                name: "a resource gone is stopped, the others kept",
                running: vec![pods.clone(), widgets.clone(), config_maps.clone()],
                discovered: vec![pods.clone(), config_maps.clone()],
                start: vec![],
                stop: vec![key("example.com", "v1", "widgets")],
            },
            Case {
                name: "a new preferred version replaces the old one",
                running: vec![pods.clone(), widgets.clone()],
                discovered: vec![pods.clone(), widgets_v2.clone()],
                start: vec![widgets_v2.clone()],
                stop: vec![key("example.com", "v1", "widgets")],
            },
            Case {
                name: "a scope changed under the same name restarts the monitor",
                running: vec![widgets.clone()],
                discovered: vec![namespaced_widgets.clone()],
                start: vec![namespaced_widgets.clone()],
                stop: vec![key("example.com", "v1", "widgets")],
            },
            Case {
                name: "a resource discovered twice is started once",
                running: vec![],
                discovered: vec![pods.clone(), pods.clone()],
                start: vec![pods.clone()],
                stop: vec![],
            },
        ];
        for case in cases {
            let changes = monitor_changes(&case.running, &case.discovered);
            assert_eq!(
                changes,
                MonitorChanges {
                    start: case.start,
                    stop: case.stop,
                },
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn kinds_are_found_in_their_group_at_any_version() {
        let resources = [
            resource("", "v1", "ConfigMap", "configmaps", true),
            resource("example.com", "v1", "Widget", "widgets", false),
            resource("other.example.com", "v1", "Widget", "widgets", true),
        ];
        let found = |api_version: &str, kind: &str| {
            find_resource(&resources, api_version, kind)
                .map(|r| r.api.plural.clone() + "." + &r.api.group)
        };
        assert_eq!(found("v1", "ConfigMap").as_deref(), Some("configmaps."));
        assert_eq!(
            found("example.com/v1", "Widget").as_deref(),
            Some("widgets.example.com")
        );
        // An owner reference naming a version discovery did not recommend.
        assert_eq!(
            found("example.com/v1beta1", "Widget").as_deref(),
            Some("widgets.example.com")
        );
        assert_eq!(
            found("other.example.com/v2", "Widget").as_deref(),
            Some("widgets.other.example.com")
        );
        assert_eq!(found("apps/v1", "ConfigMap"), None);
        assert_eq!(found("example.com/v1", "Gadget"), None);
    }

    #[test]
    fn virtual_owners_take_the_dependents_namespace_and_can_be_listed() {
        let mut g = Graph::default();
        let mut widget = owner("Widget", "w", "w-uid", true);
        widget.api_version = "example.com/v1".into();
        g.observe(
            id("ReplicaSet", "rs", "rs-uid"),
            vec![widget],
            false,
            vec![],
        );
        g.observe(
            id("Pod", "p", "p-uid"),
            vec![owner("ReplicaSet", "rs", "rs-uid", true)],
            false,
            vec![],
        );
        let virtual_owner = g.get("w-uid").expect("virtual");
        assert_eq!(virtual_owner.identity.namespace, "ns");
        assert_eq!(g.unobserved(|_| true), vec!["w-uid".to_string()]);
        assert!(g.unobserved(|o| o.kind == "Gadget").is_empty());
    }
}

/// Scenario tests: one attempt against a mock API server, asserting the exact calls.
#[cfg(test)]
mod scenarios {
    use super::*;
    use crate::testing::{client, Call};
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::Value;

    fn collector(
        respond: impl Fn(&Call) -> (u16, Value) + Send + Sync + 'static,
    ) -> (Arc<GarbageCollector>, crate::testing::Calls) {
        let (client, calls) = client(respond);
        let gc = GarbageCollector::new(Context::new(client, crate::Options::default()));
        *gc.resources.lock() = vec![
            Resource {
                api: ApiResource::erase::<Pod>(&()),
                namespaced: true,
            },
            Resource {
                api: ApiResource::erase::<ReplicaSet>(&()),
                namespaced: true,
            },
        ];
        (gc, calls)
    }

    fn pod(owners: Vec<OwnerReference>) -> (Identity, Vec<OwnerReference>) {
        let identity = Identity {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: "default".into(),
            name: "web-1".into(),
            uid: "pod-uid".into(),
        };
        (identity, owners)
    }

    fn owned_by(name: &str, uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: name.into(),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    fn not_found(call: &Call) -> (u16, Value) {
        let name = call.path.rsplit('/').next().unwrap_or("");
        (
            404,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
            "message": format!("replicasets.apps \"{name}\" not found")}),
        )
    }

    #[tokio::test]
    async fn a_dependent_of_a_gone_owner_is_deleted_in_the_background() {
        let (gc, calls) = collector(|call| match call.method.as_str() {
            "GET" => not_found(call),
            _ => (
                200,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
            ),
        });
        let (identity, owners) = pod(vec![owned_by("web", "rs-uid")]);
        gc.graph.lock().observe(identity, owners, false, vec![]);
        gc.attempt_to_delete("pod-uid".into())
            .await
            .expect("attempted");
        let made = calls.without_events();
        let lines: Vec<String> = made.iter().map(Call::line).collect();
        assert_eq!(
            lines,
            [
                "GET /apis/apps/v1/namespaces/default/replicasets/web",
                "DELETE /api/v1/namespaces/default/pods/web-1?",
            ]
        );
        assert_eq!(made[1].body["propagationPolicy"], "Background");
        assert_eq!(made[1].body["preconditions"]["uid"], "pod-uid");
    }

    #[tokio::test]
    async fn an_owner_recreated_under_the_same_name_does_not_save_the_dependent() {
        let (gc, calls) = collector(|call| match call.method.as_str() {
            "GET" => (
                200,
                json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                "metadata": {"name": "web", "namespace": "default", "uid": "another-uid"}}),
            ),
            _ => (
                200,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
            ),
        });
        let (identity, owners) = pod(vec![owned_by("web", "rs-uid")]);
        gc.graph.lock().observe(identity, owners, false, vec![]);
        gc.attempt_to_delete("pod-uid".into())
            .await
            .expect("attempted");
        let lines: Vec<String> = calls.without_events().iter().map(Call::line).collect();
        assert_eq!(
            lines.last().map(String::as_str),
            Some("DELETE /api/v1/namespaces/default/pods/web-1?")
        );
    }

    #[tokio::test]
    async fn a_dependent_with_a_live_owner_only_loses_the_dangling_reference() {
        let (gc, calls) = collector(|call| match call.method.as_str() {
            "GET" if call.path.ends_with("/gone") => not_found(call),
            "GET" => (
                200,
                json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                "metadata": {"name": "live", "namespace": "default", "uid": "live-uid"}}),
            ),
            _ => (200, call.body.clone()),
        });
        let (identity, owners) = pod(vec![
            owned_by("gone", "gone-uid"),
            owned_by("live", "live-uid"),
        ]);
        gc.graph.lock().observe(identity, owners, false, vec![]);
        gc.attempt_to_delete("pod-uid".into())
            .await
            .expect("attempted");
        let made = calls.without_events();
        let patch = made.last().expect("a patch");
        assert_eq!(patch.line(), "PATCH /api/v1/namespaces/default/pods/web-1?");
        assert_eq!(patch.body["metadata"]["uid"], "pod-uid");
        let refs = patch.body["metadata"]["ownerReferences"]
            .as_array()
            .expect("refs");
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0]["uid"], "live-uid");
        assert!(made.iter().all(|c| c.method != "DELETE"), "{made:?}");
    }
}

/// Rediscovery against a mock API server whose discovery documents change between resyncs.
#[cfg(test)]
mod rediscovery {
    use std::sync::atomic::{AtomicU8, Ordering};

    use super::*;
    use crate::testing::{client, Call};
    use serde_json::Value;

    const VERBS: [&str; 7] = [
        "create", "delete", "get", "list", "patch", "update", "watch",
    ];

    /// What discovery says: the core group only, or a custom resource too, or an error.
    #[derive(Clone, Copy)]
    #[repr(u8)]
    enum Served {
        Core,
        CoreAndWidgets,
        Failing,
    }

    fn discovery(call: &Call, served: Served) -> Option<(u16, Value)> {
        if call.method != "GET" {
            return None;
        }
        let widgets = matches!(served, Served::CoreAndWidgets);
        let answer = match call.path.split('?').next().unwrap_or_default() {
            "/api" => {
                json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
            }
            "/api/v1" => json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                {"name": "configmaps", "singularName": "configmap", "namespaced": true, "kind": "ConfigMap", "verbs": VERBS},
                {"name": "events", "singularName": "event", "namespaced": true, "kind": "Event", "verbs": VERBS},
            ]}),
            "/apis" if matches!(served, Served::Failing) => {
                return Some((
                    503,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 503}),
                ))
            }
            "/apis" => {
                let groups = if widgets {
                    json!([{"name": "example.com",
                        "versions": [{"groupVersion": "example.com/v1", "version": "v1"}],
                        "preferredVersion": {"groupVersion": "example.com/v1", "version": "v1"}}])
                } else {
                    json!([])
                };
                json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
            }
            "/apis/example.com/v1" if widgets => {
                json!({"kind": "APIResourceList", "groupVersion": "example.com/v1", "resources": [
                    {"name": "widgets", "singularName": "widget", "namespaced": false, "kind": "Widget", "verbs": VERBS},
                ]})
            }
            _ => return None,
        };
        Some((200, answer))
    }

    fn not_found() -> (u16, Value) {
        (
            404,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
        )
    }

    fn keys(monitors: &Monitors) -> Vec<String> {
        let mut keys: Vec<String> = monitors
            .running
            .keys()
            .map(|k| format!("{}/{}/{}", k.group, k.version, k.plural))
            .collect();
        keys.sort();
        keys
    }

    fn widget_owner(name: &str, uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: "example.com/v1".into(),
            kind: "Widget".into(),
            name: name.into(),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    #[tokio::test]
    async fn custom_resources_are_watched_once_served_and_dropped_once_gone() {
        let served = Arc::new(AtomicU8::new(Served::Core as u8));
        let serving = served.clone();
        let (client, calls) = client(move |call| {
            let served = match serving.load(Ordering::SeqCst) {
                0 => Served::Core,
                1 => Served::CoreAndWidgets,
                _ => Served::Failing,
            };
            discovery(call, served).unwrap_or_else(|| match call.method.as_str() {
                // Owners' reads, and the monitors' lists (which back off).
                "GET" => not_found(),
                _ => (
                    200,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                ),
            })
        });
        let gc = GarbageCollector::new(Context::new(client.clone(), crate::Options::default()));
        let (sender, _events) = mpsc::channel(16);
        let mut monitors = Monitors::new(client, sender);
        let widget_calls = || -> Vec<String> {
            calls
                .without_events()
                .iter()
                .map(Call::line)
                .filter(|l| l.contains("/widgets/") || l.starts_with("DELETE"))
                .collect()
        };

        // First discovery: the core group, events left out.
        let changes = gc.sync_monitors(&mut monitors).await.expect("discovery");
        assert_eq!(changes.start.len(), 1);
        assert_eq!(keys(&monitors), ["/v1/configmaps"]);

        // A ConfigMap owned by a Widget, before widgets are served: the owner cannot be
        // verified, so nothing is deleted on a guess.
        let config_map = Identity {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: "default".into(),
            name: "cfg".into(),
            uid: "cfg-uid".into(),
        };
        let work =
            gc.graph
                .lock()
                .observe(config_map, vec![widget_owner("w", "w-uid")], false, vec![]);
        assert_eq!(work.attempt_to_delete, ["w-uid"]);
        gc.attempt_to_delete("w-uid".into())
            .await
            .expect("virtual owner");
        gc.attempt_to_delete("cfg-uid".into())
            .await
            .expect("dependent");
        assert!(widget_calls().is_empty(), "{:?}", widget_calls());
        assert!(
            !gc.graph
                .lock()
                .get("w-uid")
                .expect("still virtual")
                .observed
        );

        // Widgets are served: watched, and the unverified owner is queued again.
        served.store(Served::CoreAndWidgets as u8, Ordering::SeqCst);
        let changes = gc.sync_monitors(&mut monitors).await.expect("discovery");
        assert_eq!(
            changes.stop,
            Vec::<ResourceKey>::new(),
            "the ConfigMap monitor is kept"
        );
        assert_eq!(
            keys(&monitors),
            ["/v1/configmaps", "example.com/v1/widgets"]
        );
        assert_eq!(gc.attempt_to_delete.get().await.as_deref(), Some("w-uid"));
        gc.attempt_to_delete.done(&"w-uid".to_string());
        // The worker's turn: the owner is read where discovery says (cluster-scoped, so no
        // namespace in the path), found gone, and its dependent collected.
        gc.attempt_to_delete("w-uid".into())
            .await
            .expect("virtual owner");
        assert!(gc.graph.lock().get("w-uid").is_none());
        assert_eq!(gc.attempt_to_delete.get().await.as_deref(), Some("cfg-uid"));
        gc.attempt_to_delete("cfg-uid".into())
            .await
            .expect("dependent");
        assert_eq!(
            widget_calls(),
            [
                "GET /apis/example.com/v1/widgets/w",
                "GET /apis/example.com/v1/widgets/w",
                "DELETE /api/v1/namespaces/default/configmaps/cfg?",
            ]
        );

        // A Widget owned by a ConfigMap, seen through the widgets' monitor.
        let widget = Identity {
            api_version: "example.com/v1".into(),
            kind: "Widget".into(),
            namespace: String::new(),
            name: "w2".into(),
            uid: "w2-uid".into(),
        };
        let mut owner = widget_owner("cfg2", "cfg2-uid");
        owner.api_version = "v1".into();
        owner.kind = "ConfigMap".into();
        gc.graph.lock().observe(widget, vec![owner], false, vec![]);

        // Discovery failing keeps every monitor.
        served.store(Served::Failing as u8, Ordering::SeqCst);
        assert!(gc.sync_monitors(&mut monitors).await.is_err());
        assert_eq!(
            keys(&monitors),
            ["/v1/configmaps", "example.com/v1/widgets"]
        );

        // The CRD is deleted: its monitor stops, the other stays; its objects stay in the graph
        // and what needs their API fails softly, to be retried.
        served.store(Served::Core as u8, Ordering::SeqCst);
        let changes = gc.sync_monitors(&mut monitors).await.expect("discovery");
        assert_eq!(changes.start, Vec::<Resource>::new());
        assert_eq!(keys(&monitors), ["/v1/configmaps"]);
        assert!(gc.graph.lock().get("w2-uid").is_some());
        assert!(matches!(
            gc.attempt_to_delete("w2-uid".into()).await,
            Err(GcError::NoApi)
        ));
    }

    fn meta(name: &str, uid: &str) -> PartialObjectMeta<DynamicObject> {
        serde_json::from_value(
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
            "metadata": {"name": name, "uid": uid}}),
        )
        .expect("metadata")
    }

    #[tokio::test]
    async fn a_monitor_started_again_drops_what_went_away_meanwhile() {
        let (client, _calls) = client(crate::testing::accept_all);
        let gc = GarbageCollector::new(Context::new(client, crate::Options::default()));
        let widgets = super::tests::resource("example.com", "v1", "Widget", "widgets", false);
        let mut seen = Seen::default();
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(meta("a", "a-uid")),
            watcher::Event::InitApply(meta("b", "b-uid")),
            watcher::Event::InitDone,
        ] {
            gc.process_event(&mut seen, &widgets, event);
        }
        assert!(gc.graph.lock().get("b-uid").is_some());
        // The resource went away and came back (its monitor stopped, then started anew): the
        // new monitor's first list no longer has b.
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(meta("a", "a-uid")),
            watcher::Event::InitDone,
        ] {
            gc.process_event(&mut seen, &widgets, event);
        }
        assert!(gc.graph.lock().get("a-uid").is_some());
        assert!(gc.graph.lock().get("b-uid").is_none());
    }

    #[tokio::test]
    async fn scope_comes_from_discovery() {
        let (client, calls) = client(|_| not_found());
        let gc = GarbageCollector::new(Context::new(client, crate::Options::default()));
        *gc.resources.lock() = vec![
            super::tests::resource("", "v1", "ConfigMap", "configmaps", true),
            super::tests::resource("example.com", "v1", "Widget", "widgets", false),
        ];
        let identity = |api_version: &str, kind: &str, namespace: &str| Identity {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: namespace.into(),
            name: "x".into(),
            uid: "x-uid".into(),
        };
        // A custom cluster-scoped owner named by a namespaced dependent: read without namespace.
        assert_eq!(
            gc.exists(&identity("example.com/v1", "Widget", "default"))
                .await
                .expect("read"),
            Some(false)
        );
        // A namespaced owner named by a cluster-scoped object cannot exist: never read, never
        // taken for gone.
        assert_eq!(
            gc.exists(&identity("v1", "ConfigMap", ""))
                .await
                .expect("read"),
            None
        );
        let lines: Vec<String> = calls.without_events().iter().map(Call::line).collect();
        assert_eq!(lines, ["GET /apis/example.com/v1/widgets/x"]);
    }
}
