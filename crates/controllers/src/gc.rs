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

/// One watched resource type.
#[derive(Clone, Debug)]
struct Resource {
    api: ApiResource,
    namespaced: bool,
}

/// Where an object is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// `group/version` or `v1`.
    pub api_version: String,
    /// The kind.
    pub kind: String,
    /// Empty for cluster-scoped objects.
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
                    }
                }
                None => {
                    let namespace = if is_cluster_scoped_kind(&added.kind) {
                        String::new()
                    } else {
                        identity.namespace.clone()
                    };
                    let virtual_node = GraphNode {
                        identity: Identity {
                            api_version: added.api_version.clone(),
                            kind: added.kind.clone(),
                            namespace,
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

fn is_cluster_scoped_kind(kind: &str) -> bool {
    matches!(
        kind,
        "Node"
            | "Namespace"
            | "PersistentVolume"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "StorageClass"
            | "CustomResourceDefinition"
            | "PriorityClass"
    )
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
    resources: Mutex<Vec<Resource>>,
    attempt_to_delete: Arc<Queue<String>>,
    attempt_to_orphan: Arc<Queue<String>>,
}

impl GarbageCollector {
    /// A collector; [`GarbageCollector::run`] discovers resources and starts watching.
    pub fn new(ctx: Arc<Context>) -> Arc<GarbageCollector> {
        Arc::new(GarbageCollector {
            ctx,
            graph: Mutex::new(Graph::default()),
            resources: Mutex::new(Vec::new()),
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
        Ok(resources)
    }

    /// Discovers, watches every resource's metadata and runs the workers, until the process ends.
    pub async fn run(self: Arc<Self>, workers: usize) {
        let resources = loop {
            match self.discover().await {
                Ok(r) => break r,
                Err(error) => {
                    tracing::info!(error = %ErrorChain(&error), "garbage collector: discovery failed, retrying");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        };
        *self.resources.lock() = resources.clone();
        let (sender, mut events) = tokio::sync::mpsc::channel::<(
            usize,
            watcher::Event<PartialObjectMeta<DynamicObject>>,
        )>(1024);
        let mut tasks = tokio::task::JoinSet::new();
        for (index, resource) in resources.iter().enumerate() {
            let api: Api<PartialObjectMeta<DynamicObject>> =
                Api::all_with(self.ctx.client.clone(), &resource.api);
            let sender = sender.clone();
            tasks.spawn(async move {
                let stream = watcher(api, watcher::Config::default()).default_backoff();
                futures::pin_mut!(stream);
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(event) => {
                            if sender.send((index, event)).await.is_err() {
                                return;
                            }
                        }
                        Err(error) => tracing::debug!(%error, "garbage collector watch error"),
                    }
                }
            });
        }
        drop(sender);
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
        // The graph builder: the only writer of the graph.
        let mut listing: HashMap<usize, HashSet<String>> = HashMap::new();
        let mut known: HashMap<usize, HashSet<String>> = HashMap::new();
        while let Some((index, event)) = events.recv().await {
            let Some(resource) = resources.get(index) else {
                continue;
            };
            match event {
                watcher::Event::Apply(meta) | watcher::Event::InitApply(meta) => {
                    let Some(uid) = meta.metadata.uid.clone() else {
                        continue;
                    };
                    if let Some(listed) = listing.get_mut(&index) {
                        listed.insert(uid.clone());
                    }
                    known.entry(index).or_default().insert(uid);
                    let work = self.observe(resource, &meta);
                    self.schedule(work);
                }
                watcher::Event::Delete(meta) => {
                    let Some(uid) = meta.metadata.uid.clone() else {
                        continue;
                    };
                    known.entry(index).or_default().remove(&uid);
                    let work = self.graph.lock().remove(&uid);
                    self.schedule(work);
                }
                watcher::Event::Init => {
                    listing.insert(index, HashSet::new());
                }
                watcher::Event::InitDone => {
                    let listed = listing.remove(&index).unwrap_or_default();
                    let vanished: Vec<String> = known
                        .get(&index)
                        .map(|k| k.difference(&listed).cloned().collect())
                        .unwrap_or_default();
                    known.insert(index, listed);
                    for uid in vanished {
                        let work = self.graph.lock().remove(&uid);
                        self.schedule(work);
                    }
                }
            }
        }
        tasks.abort_all();
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

    fn api_for(&self, identity: &Identity) -> Option<Api<DynamicObject>> {
        let resources = self.resources.lock();
        let resource = resources
            .iter()
            .find(|r| r.api.api_version == identity.api_version && r.api.kind == identity.kind)?;
        Some(if resource.namespaced {
            Api::namespaced_with(self.ctx.client.clone(), &identity.namespace, &resource.api)
        } else {
            Api::all_with(self.ctx.client.clone(), &resource.api)
        })
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
                let namespace = if is_cluster_scoped_kind(&owner.kind) {
                    String::new()
                } else {
                    dependent.namespace.clone()
                };
                let identity = Identity {
                    api_version: owner.api_version.clone(),
                    kind: owner.kind.clone(),
                    namespace,
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
