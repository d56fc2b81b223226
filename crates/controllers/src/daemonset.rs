//! The DaemonSet controller: one pod per eligible node, as upstream's `pkg/controller/daemon`.
//!
//! A node is eligible when the pod (with the tolerations upstream adds to every daemon pod)
//! fits it: its `nodeName`, node selector and required node affinity, and no untolerated
//! NoSchedule/NoExecute taint ([`should_run`]). Pods go through the default scheduler, pinned
//! to their node by a `metadata.name` `matchFields` node affinity term. History is kept in
//! ControllerRevisions ([`crate::history`]); updates roll out by `maxUnavailable` or by
//! `maxSurge` ([`rolling_update`]) or wait for pods to be deleted (`OnDelete`). The decisions
//! are pure functions at the bottom, tested by tables.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ferry_api::matching::{node_selector_terms_match, tolerated};
use ferry_client::events::{reference, EventType};
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodTemplateSpec, Taint, Toleration,
};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt as _};
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::claim;
use crate::expectations::Expectations;
use crate::history::{self, Created, REVISION_HASH_LABEL};
use crate::informer::{key_of, Key};
use crate::queue::{Queue, Reconciler};
use crate::replicaset::{api_message, pod_from_template, slow_start_batches};
use crate::util::{
    api_code, controller_ref, is_pod_available, pod_ready, scaled_int_or_percent,
    selector_is_empty, selector_matches,
};
use crate::{ApiContext as _, Context, Error};

/// The label carrying the DaemonSet's template generation on its pods.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// The DaemonSet annotation the API server keeps the template generation in.
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";
/// The event source.
const COMPONENT: &str = "daemonset-controller";
/// At most this many creations or deletions per sync (upstream's `BurstReplicas`).
const BURST: usize = 250;
/// Backoff for deleting failed pods on a node: 1 s doubling to 15 min, as upstream.
const FAILED_BACKOFF_BASE: Duration = Duration::from_secs(1);
const FAILED_BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);

/// The controller.
pub struct DaemonSetController {
    ctx: Arc<Context>,
    queue: Arc<Queue<Key>>,
    expectations: Expectations,
    /// Per `namespace/name/node`: the current backoff and when it was last moved on.
    failed_backoff: Mutex<HashMap<String, (Duration, Instant)>>,
}

impl Reconciler for DaemonSetController {
    type Key = Key;
    type Error = Error;
    const NAME: &'static str = "daemonset";

    fn queue(&self) -> &Arc<Queue<Key>> {
        &self.queue
    }

    async fn reconcile(self: Arc<Self>, key: Key) -> Result<Option<Duration>, Error> {
        self.sync(key).await
    }
}

fn owner_key(key: &Key) -> String {
    format!("{}/{}", key.0, key.1)
}

impl DaemonSetController {
    /// Registers the handlers.
    pub fn new(ctx: Arc<Context>) -> Arc<DaemonSetController> {
        let controller = Arc::new(DaemonSetController {
            ctx: ctx.clone(),
            queue: Queue::new(),
            expectations: Expectations::default(),
            failed_backoff: Mutex::default(),
        });
        let c = controller.clone();
        ctx.daemon_sets
            .add_handler(move |old, new| match (old, new) {
                (_, Some(ds)) => c.queue.add(key_of(ds.as_ref())),
                (Some(ds), None) => {
                    let owner = owner_key(&key_of(ds.as_ref()));
                    c.expectations.delete(&owner);
                    c.failed_backoff
                        .lock()
                        .retain(|k, _| !k.starts_with(&format!("{owner}/")));
                }
                (None, None) => {}
            });
        let c = controller.clone();
        ctx.pods.add_handler(move |old, new| c.on_pod(old, new));
        let c = controller.clone();
        ctx.nodes.add_handler(move |old, new| {
            let relevant = match (old, new) {
                (Some(old), Some(new)) => node_changed(old, new),
                _ => true,
            };
            if relevant {
                for ds in c.ctx.daemon_sets.list() {
                    c.queue.add(key_of(ds.as_ref()));
                }
            }
        });
        controller
    }

    fn resolve(&self, pod: &Pod) -> Option<Arc<DaemonSet>> {
        let reference = controller_ref(&pod.metadata).filter(|r| r.kind == "DaemonSet")?;
        let ds = self
            .ctx
            .daemon_sets
            .get(&pod.namespace().unwrap_or_default(), &reference.name)?;
        (ds.metadata.uid.as_deref() == Some(reference.uid.as_str())).then_some(ds)
    }

    fn on_pod(&self, old: Option<&Arc<Pod>>, new: Option<&Arc<Pod>>) {
        let Some(pod) = new.or(old) else { return };
        let namespace = pod.namespace().unwrap_or_default();
        let Some(ds) = self.resolve(pod) else {
            if controller_ref(&pod.metadata).is_none() && new.is_some() {
                // An orphan: the DaemonSets selecting it may adopt it.
                for ds in self.ctx.daemon_sets.list_namespace(&namespace) {
                    if ds.spec.as_ref().is_some_and(|s| {
                        !selector_is_empty(&s.selector)
                            && selector_matches(&s.selector, pod.metadata.labels.as_ref())
                    }) {
                        self.queue.add(key_of(ds.as_ref()));
                    }
                }
            }
            return;
        };
        let key = key_of(ds.as_ref());
        let owner = owner_key(&key);
        let pod_id = format!("{namespace}/{}", pod.name_any());
        match (old, new) {
            (None, Some(p)) if p.metadata.deletion_timestamp.is_some() => {
                self.expectations.deletion_observed(&owner, &pod_id)
            }
            (None, Some(_)) => self.expectations.creation_observed(&owner),
            (Some(o), Some(n))
                if o.metadata.deletion_timestamp.is_none()
                    && n.metadata.deletion_timestamp.is_some() =>
            {
                self.expectations.deletion_observed(&owner, &pod_id)
            }
            (Some(o), Some(n)) => {
                let min_ready = ds
                    .spec
                    .as_ref()
                    .and_then(|s| s.min_ready_seconds)
                    .unwrap_or(0);
                if min_ready > 0 && !pod_ready(o).0 && pod_ready(n).0 {
                    self.queue.add_after(
                        key.clone(),
                        Duration::from_secs(u64::try_from(min_ready).unwrap_or(0)),
                    );
                }
            }
            (Some(_), None) => self.expectations.deletion_observed(&owner, &pod_id),
            (None, None) => {}
        }
        self.queue.add(key);
    }

    async fn sync(&self, key: Key) -> Result<Option<Duration>, Error> {
        let owner = owner_key(&key);
        let Some(ds) = self.ctx.daemon_sets.get(&key.0, &key.1) else {
            self.expectations.delete(&owner);
            return Ok(None);
        };
        let spec = ds.spec.clone().unwrap_or_default();
        if selector_is_empty(&spec.selector) {
            self.ctx.recorder(COMPONENT).event(
                reference(ds.as_ref()),
                EventType::Warning,
                "SelectingAll",
                "This daemon set is selecting all pods. A non-empty selector is required.",
            );
            return Ok(None);
        }
        if ds.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let nodes = self.ctx.nodes.list();
        let api: Api<DaemonSet> = Api::namespaced(self.ctx.client.clone(), &key.0);
        let claim_owner = claim::Owner {
            meta: &ds.metadata,
            api_version: "apps/v1",
            kind: "DaemonSet",
            selector: &spec.selector,
        };
        let pods = claim::claim(
            &self.ctx.client,
            &claim_owner,
            self.ctx.pods.list_namespace(&key.0),
            || async { Ok(api.get_opt(&key.1).await?.map(|d| d.metadata)) },
        )
        .await?;
        let by_node = pods_by_node(&pods);

        let Some((hash, old_revisions)) = self.construct_history(&ds).await? else {
            return Ok(Some(Duration::from_millis(100)));
        };
        let now = jiff::Timestamp::now();
        let mut requeue: Option<Duration> = None;
        if self.expectations.satisfied(&owner) {
            let mut plan = manage(&ds, &nodes, &by_node, &hash);
            for (pod, node) in &plan.failed {
                match self.failed_pod_backoff(&owner, node) {
                    Some(delay) => {
                        requeue = Some(requeue.map_or(delay, |r| r.min(delay)));
                    }
                    None => {
                        self.ctx.recorder(COMPONENT).event(
                            reference(ds.as_ref()),
                            EventType::Warning,
                            "FailedDaemonPod",
                            format!(
                                "Found failed daemon pod {}/{pod} on node {node}, will try to kill it",
                                key.0
                            ),
                        );
                        plan.delete.push(pod.clone());
                    }
                }
            }
            if plan.create.is_empty() && plan.delete.is_empty() && is_rolling_update(&ds) {
                let nodes_by_name: HashMap<&str, &Node> = nodes
                    .iter()
                    .map(|n| (n.metadata.name.as_deref().unwrap_or(""), n.as_ref()))
                    .collect();
                plan = rolling_update(&ds, &nodes_by_name, &by_node, &hash, now);
            }
            self.sync_nodes(&ds, &plan, &hash).await?;
        }
        let in_use: HashSet<String> = pods
            .iter()
            .filter_map(|p| p.labels().get(REVISION_HASH_LABEL).cloned())
            .collect();
        let limit = usize::try_from(spec.revision_history_limit.unwrap_or(10)).unwrap_or(0);
        history::truncate(&self.ctx.client, &old_revisions, &in_use, limit).await?;

        let status = calculate_status(&ds, &nodes, &by_node, &hash, now);
        if ds.status.as_ref() != Some(&status) {
            let mut updated = (*ds).clone();
            updated.status = Some(status.clone());
            match api
                .replace_status(&key.1, &PostParams::default(), &updated)
                .await
            {
                Ok(_) => {}
                Err(e) if matches!(api_code(&e), Some(404 | 409)) => {}
                Err(e) => return Err(e).context("updating daemonset status"),
            }
        }
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        if min_ready > 0 && status.number_available != Some(status.number_ready) {
            let wait = Duration::from_secs(u64::try_from(min_ready).unwrap_or(0));
            requeue = Some(requeue.map_or(wait, |r| r.min(wait)));
        }
        Ok(requeue)
    }

    /// The current revision's hash and the old revisions, creating the current one if the
    /// template is new (`None`: a hash collision moved the collision count; sync again).
    async fn construct_history(
        &self,
        ds: &DaemonSet,
    ) -> Result<
        Option<(
            String,
            Vec<Arc<k8s_openapi::api::apps::v1::ControllerRevision>>,
        )>,
        Error,
    > {
        let namespace = ds.namespace().unwrap_or_default();
        let template = ds
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let patch = history::template_patch(&template);
        let spec = ds.spec.clone().unwrap_or_default();
        let owner = claim::Owner {
            meta: &ds.metadata,
            api_version: "apps/v1",
            kind: "DaemonSet",
            selector: &spec.selector,
        };
        let (current, old): (Vec<_>, Vec<_>) = history::controlled(&self.ctx, &owner)
            .await?
            .into_iter()
            .partition(|r| history::holds(r, &patch));
        let next = old.iter().map(|r| r.revision).max().unwrap_or(0) + 1;
        let current = match current.last() {
            Some(current) if current.revision < next => {
                history::renumber(&self.ctx.client, current, next).await?
            }
            Some(current) => (**current).clone(),
            None => {
                let collisions = ds.status.as_ref().and_then(|s| s.collision_count);
                let hash = crate::deployment::template_hash(&template, collisions);
                let revision =
                    history::new_revision(&ds.metadata, "DaemonSet", &template, patch, next, &hash);
                match history::create(&self.ctx.client, revision).await? {
                    Created::Revision(r) => *r,
                    Created::Collision => {
                        let mut updated = ds.clone();
                        let status = updated.status.get_or_insert_with(Default::default);
                        status.collision_count = Some(collisions.unwrap_or(0) + 1);
                        Api::<DaemonSet>::namespaced(self.ctx.client.clone(), &namespace)
                            .replace_status(&ds.name_any(), &PostParams::default(), &updated)
                            .await
                            .context("updating daemonset collision count")?;
                        return Ok(None);
                    }
                }
            }
        };
        let hash = current
            .labels()
            .get(REVISION_HASH_LABEL)
            .cloned()
            .unwrap_or_else(|| current.name_any());
        Ok(Some((hash, old)))
    }

    /// `None` when a failed pod on `node` may be deleted now (and the backoff moves on), or
    /// how long to wait.
    fn failed_pod_backoff(&self, owner: &str, node: &str) -> Option<Duration> {
        let key = format!("{owner}/{node}");
        let mut backoffs = self.failed_backoff.lock();
        let now = Instant::now();
        match backoffs.get(&key).copied() {
            Some((delay, since)) if now < since + delay => Some(since + delay - now),
            Some((delay, _)) => {
                backoffs.insert(key, ((delay * 2).min(FAILED_BACKOFF_MAX), now));
                None
            }
            None => {
                backoffs.insert(key, (FAILED_BACKOFF_BASE, now));
                None
            }
        }
    }

    /// Creates and deletes what `plan` says, under expectations (upstream's `syncNodes`).
    async fn sync_nodes(&self, ds: &DaemonSet, plan: &Plan, hash: &str) -> Result<(), Error> {
        let namespace = ds.namespace().unwrap_or_default();
        let owner = owner_key(&key_of(ds));
        let create: Vec<&String> = plan.create.iter().take(BURST).collect();
        let delete: Vec<&String> = plan.delete.iter().take(BURST).collect();
        // Both at once: setting one after the other would forget the first.
        self.expectations.expect(
            &owner,
            create.len() as i64,
            delete.iter().map(|name| format!("{namespace}/{name}")),
        );
        let pods: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &namespace);
        let template = daemon_pod_template(ds, hash);
        let mut first_error = None;
        let mut queued = create.into_iter();
        'batches: for batch in slow_start_batches(queued.len()) {
            let mut calls = Vec::new();
            for node in queued.by_ref().take(batch) {
                let mut pod = pod_from_template(&template, &ds.metadata, "DaemonSet");
                if let Some(spec) = pod.spec.as_mut() {
                    spec.affinity = Some(pin_to_node(spec.affinity.take(), node));
                }
                let pods = pods.clone();
                calls.push(async move {
                    crate::journey::create_pod(&pods, &pod, &ds.metadata, COMPONENT).await
                });
            }
            let mut failed = 0;
            for result in futures::future::join_all(calls).await {
                match result {
                    Ok(created) => self.ctx.recorder(COMPONENT).event(
                        reference(ds),
                        EventType::Normal,
                        "SuccessfulCreate",
                        format!("Created pod: {}", created.name_any()),
                    ),
                    Err(e) => {
                        failed += 1;
                        self.expectations.creation_observed(&owner);
                        self.ctx.recorder(COMPONENT).event(
                            reference(ds),
                            EventType::Warning,
                            "FailedCreate",
                            format!("Error creating: {}", api_message(&e)),
                        );
                        first_error.get_or_insert(e);
                    }
                }
            }
            if failed > 0 {
                // Upstream's slow start: what was not tried is not expected either.
                for _ in queued.by_ref() {
                    self.expectations.creation_observed(&owner);
                }
                break 'batches;
            }
        }
        for name in delete {
            match pods.delete(name, &DeleteParams::background()).await {
                Ok(_) => self.ctx.recorder(COMPONENT).event(
                    reference(ds),
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!("Deleted pod: {name}"),
                ),
                Err(e) => {
                    self.expectations
                        .deletion_observed(&owner, &format!("{namespace}/{name}"));
                    if api_code(&e) != Some(404) {
                        self.ctx.recorder(COMPONENT).event(
                            reference(ds),
                            EventType::Warning,
                            "FailedDelete",
                            format!("Error deleting: {}", api_message(&e)),
                        );
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        match first_error {
            Some(e) => Err(e).context("creating or deleting daemon pods"),
            None => Ok(()),
        }
    }
}

/// Whether a node change can change where the DaemonSets run (upstream's
/// `shouldIgnoreNodeUpdate`, inverted): labels, taints, unschedulable, conditions.
fn node_changed(old: &Node, new: &Node) -> bool {
    let conditions = |n: &Node| {
        n.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .map(|c| {
                c.iter()
                    .map(|c| (c.type_.clone(), c.status.clone()))
                    .collect::<Vec<_>>()
            })
    };
    old.metadata.labels != new.metadata.labels
        || old.spec.as_ref().map(|s| (&s.taints, s.unschedulable))
            != new.spec.as_ref().map(|s| (&s.taints, s.unschedulable))
        || conditions(old) != conditions(new)
}

/// The node a daemon pod is for: its `nodeName`, or before scheduling the node its
/// `matchFields` affinity pins it to (upstream's `GetTargetNodeName`).
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(node) = spec.node_name.as_ref().filter(|n| !n.is_empty()) {
        return Some(node.clone());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| r.values.as_ref()?.first().cloned())
}

/// The DaemonSet's pods by the node they are for (pods for no node are left out).
pub fn pods_by_node(pods: &[Arc<Pod>]) -> BTreeMap<String, Vec<Arc<Pod>>> {
    let mut by_node: BTreeMap<String, Vec<Arc<Pod>>> = BTreeMap::new();
    for pod in pods {
        if let Some(node) = target_node(pod) {
            by_node.entry(node).or_default().push(pod.clone());
        }
    }
    for pods in by_node.values_mut() {
        pods.sort_by(|a, b| by_creation_and_phase(a, b));
    }
    by_node
}

/// Oldest first; among equals, pods further along (Running before Pending) first (upstream's
/// `podByCreationTimestampAndPhase`).
fn by_creation_and_phase(a: &Pod, b: &Pod) -> std::cmp::Ordering {
    let phase_rank = |p: &Pod| match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Running") => 0,
        Some("Pending") => 2,
        _ => 1,
    };
    a.metadata
        .creation_timestamp
        .cmp(&b.metadata.creation_timestamp)
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| a.name_any().cmp(&b.name_any()))
}

/// The tolerations upstream adds to every daemon pod (`AddOrUpdateDaemonPodTolerations`).
pub fn daemon_tolerations(host_network: bool) -> Vec<Toleration> {
    let exists = |key: &str, effect: &str| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        value: None,
        toleration_seconds: None,
    };
    let mut tolerations = vec![
        exists("node.kubernetes.io/not-ready", "NoExecute"),
        exists("node.kubernetes.io/unreachable", "NoExecute"),
        exists("node.kubernetes.io/disk-pressure", "NoSchedule"),
        exists("node.kubernetes.io/memory-pressure", "NoSchedule"),
        exists("node.kubernetes.io/pid-pressure", "NoSchedule"),
        exists("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        tolerations.push(exists(
            "node.kubernetes.io/network-unavailable",
            "NoSchedule",
        ));
    }
    tolerations
}

/// The DaemonSet's template as its pods get it (upstream's `CreatePodTemplate`): the added
/// tolerations (replacing a same key and effect), the revision hash and template generation
/// labels.
pub fn daemon_pod_template(ds: &DaemonSet, hash: &str) -> PodTemplateSpec {
    let mut template = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let spec = template.spec.get_or_insert_with(Default::default);
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for added in daemon_tolerations(spec.host_network == Some(true)) {
        tolerations.retain(|t| !(t.key == added.key && t.effect == added.effect));
        tolerations.push(added);
    }
    let labels = template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(Default::default);
    if let Some(generation) = ds.annotations().get(TEMPLATE_GENERATION_ANNOTATION) {
        labels.insert(TEMPLATE_GENERATION_LABEL.into(), generation.clone());
    }
    if !hash.is_empty() {
        labels.insert(REVISION_HASH_LABEL.into(), hash.into());
    }
    template
}

/// `affinity` with its required node selector replaced by one term naming `node` (upstream's
/// `ReplaceDaemonSetPodNodeNameNodeAffinity`): preferences and pod (anti-)affinity stay.
pub fn pin_to_node(affinity: Option<Affinity>, node: &str) -> Affinity {
    let mut affinity = affinity.unwrap_or_default();
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![node.into()]),
            }]),
        }],
    });
    affinity
}

/// Whether the DaemonSet should run a pod on `node`, and whether a pod already there should
/// go on running (upstream's `NodeShouldRunDaemonPod`).
pub fn should_run(ds: &DaemonSet, node: &Node) -> (bool, bool) {
    let Some(spec) = ds.spec.as_ref() else {
        return (false, false);
    };
    let pod_spec = spec.template.spec.clone().unwrap_or_default();
    let name = node.metadata.name.as_deref().unwrap_or("");
    if pod_spec
        .node_name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != name)
    {
        return (false, false);
    }
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let selector_fits = pod_spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let affinity_fits = pod_spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .is_none_or(|s| node_selector_terms_match(&s.node_selector_terms, node));
    if !selector_fits || !affinity_fits {
        return (false, false);
    }
    let mut tolerations = pod_spec.tolerations.clone().unwrap_or_default();
    tolerations.extend(daemon_tolerations(pod_spec.host_network == Some(true)));
    let taints: &[Taint] = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default();
    let untolerated = |effects: &[&str]| {
        taints
            .iter()
            .any(|t| effects.contains(&t.effect.as_str()) && !tolerated(&tolerations, t))
    };
    if untolerated(&["NoSchedule", "NoExecute"]) {
        return (false, !untolerated(&["NoExecute"]));
    }
    (true, true)
}

/// What one sync does: pods to create (by node) and pods to delete (by name); failed pods
/// (name, node) that are deleted once their node's backoff allows.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Nodes that need a daemon pod.
    pub create: Vec<String>,
    /// Pods to delete.
    pub delete: Vec<String>,
    /// Failed pods to delete after their backoff.
    pub failed: Vec<(String, String)>,
}

fn allows_surge(ds: &DaemonSet) -> bool {
    is_rolling_update(ds) && surge_and_unavailable(ds, 1).0 > 0
}

fn is_rolling_update(ds: &DaemonSet) -> bool {
    ds.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate")
}

/// Upstream's `manage`: pods where they should be and nowhere else
/// (`podsShouldBeOnNode` for every node, then pods for nodes that are gone).
pub fn manage(
    ds: &DaemonSet,
    nodes: &[Arc<Node>],
    by_node: &BTreeMap<String, Vec<Arc<Pod>>>,
    hash: &str,
) -> Plan {
    let mut plan = Plan::default();
    let hash_of = |p: &Pod| p.labels().get(REVISION_HASH_LABEL).cloned();
    let mut seen = HashSet::new();
    for node in nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        seen.insert(name.clone());
        let (run, keep) = should_run(ds, node);
        let pods = by_node.get(&name);
        match pods {
            None if run => plan.create.push(name),
            Some(pods) if keep => {
                let mut running = Vec::new();
                for pod in pods
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                {
                    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
                        Some("Failed") => plan.failed.push((pod.name_any(), name.clone())),
                        Some("Succeeded") => plan.delete.push(pod.name_any()),
                        _ => running.push(pod),
                    }
                }
                if running.len() <= 1 {
                    continue;
                }
                if !allows_surge(ds) {
                    plan.delete
                        .extend(running.iter().skip(1).map(|p| p.name_any()));
                    continue;
                }
                // With surge, an old and a new pod may both run while the new one is not
                // ready yet; everything else goes.
                let (mut oldest_new, mut oldest_old) = (None, None);
                for pod in &running {
                    let slot = if hash_of(pod).as_deref() == Some(hash) {
                        &mut oldest_new
                    } else {
                        &mut oldest_old
                    };
                    if slot.is_none() {
                        *slot = Some(*pod);
                    } else {
                        plan.delete.push(pod.name_any());
                    }
                }
                if let (Some(new), Some(old)) = (oldest_new, oldest_old) {
                    if !pod_ready(old).0 || pod_ready(new).0 {
                        plan.delete.push(old.name_any());
                    }
                }
            }
            Some(pods) if !keep => plan.delete.extend(
                pods.iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .map(|p| p.name_any()),
            ),
            _ => {}
        }
    }
    for (node, pods) in by_node {
        if !seen.contains(node) {
            plan.delete.extend(
                pods.iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .map(|p| p.name_any()),
            );
        }
    }
    plan
}

/// `maxSurge` and `maxUnavailable` as counts of `desired` (upstream's
/// `updatedDesiredNodeCounts`): both 0 means one unavailable.
pub fn surge_and_unavailable(ds: &DaemonSet, desired: i32) -> (i32, i32) {
    let rolling = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.as_ref());
    let surge = rolling
        .and_then(|r| r.max_surge.as_ref())
        .map_or(0, |v| scaled_int_or_percent(v, desired, true));
    let unavailable = rolling
        .and_then(|r| r.max_unavailable.as_ref())
        .map_or(1, |v| scaled_int_or_percent(v, desired, true));
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// Whether `pod` runs the current template (upstream's `IsPodUpdated`).
fn is_updated(ds: &DaemonSet, pod: &Pod, hash: &str) -> bool {
    let labels = pod.labels();
    (!hash.is_empty() && labels.get(REVISION_HASH_LABEL).map(String::as_str) == Some(hash))
        || ds
            .annotations()
            .get(TEMPLATE_GENERATION_ANNOTATION)
            .is_some_and(|g| labels.get(TEMPLATE_GENERATION_LABEL) == Some(g))
}

/// A node's pod of the current template and its pod of an older one, each if any.
type NewAndOld<'a> = (Option<&'a Arc<Pod>>, Option<&'a Arc<Pod>>);

/// The one new and one old pod on a node; `None` when there are more (left to `manage`).
fn updated_and_old<'a>(ds: &DaemonSet, pods: &'a [Arc<Pod>], hash: &str) -> Option<NewAndOld<'a>> {
    let (mut new, mut old) = (None, None);
    for pod in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let slot = if is_updated(ds, pod, hash) {
            &mut new
        } else {
            &mut old
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(pod);
    }
    Some((new, old))
}

/// Upstream's `rollingUpdate`: old pods replaced within `maxUnavailable` (delete first) or
/// `maxSurge` (create the new pod beside the old one, delete the old once the new is
/// available).
pub fn rolling_update(
    ds: &DaemonSet,
    nodes: &HashMap<&str, &Node>,
    by_node: &BTreeMap<String, Vec<Arc<Pod>>>,
    hash: &str,
    now: jiff::Timestamp,
) -> Plan {
    let min_ready = ds
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    let desired = nodes.values().filter(|n| should_run(ds, n).0).count() as i32;
    let (max_surge, max_unavailable) = surge_and_unavailable(ds, desired);
    let available = |p: &Pod| is_pod_available(p, min_ready, now);
    let mut plan = Plan::default();
    if max_surge == 0 {
        let mut unavailable = 0;
        let (mut replace, mut candidates) = (Vec::new(), Vec::new());
        for pods in by_node.values() {
            match updated_and_old(ds, pods, hash) {
                None | Some((None, None)) | Some((Some(_), Some(_))) => unavailable += 1,
                Some((Some(new), None)) => {
                    if !available(new) {
                        unavailable += 1;
                    }
                }
                Some((None, Some(old))) => {
                    if !available(old) {
                        replace.push(old.name_any());
                    } else if unavailable < max_unavailable {
                        candidates.push(old.name_any());
                    }
                }
            }
        }
        let room = (max_unavailable - unavailable).clamp(0, candidates.len() as i32) as usize;
        plan.delete = replace;
        plan.delete.extend(candidates.into_iter().take(room));
        return plan;
    }
    let mut surging = 0;
    let (mut allowed, mut candidates) = (Vec::new(), Vec::new());
    for (node, pods) in by_node {
        match updated_and_old(ds, pods, hash) {
            None => surging += 1,
            Some((_, None)) => {}
            Some((None, Some(old))) => {
                let runs = nodes
                    .get(node.as_str())
                    .is_some_and(|n| should_run(ds, n).0);
                if !available(old) {
                    if runs {
                        allowed.push(node.clone());
                    } else {
                        plan.delete.push(old.name_any());
                    }
                } else if runs && surging < max_surge {
                    // A node that keeps its pod but takes no new one (an untolerated
                    // NoSchedule taint) gets no surge pod: it could not be scheduled.
                    candidates.push(node.clone());
                }
            }
            Some((Some(new), Some(old))) => {
                if available(new) {
                    plan.delete.push(old.name_any());
                } else {
                    surging += 1;
                }
            }
        }
    }
    let room = (max_surge - surging).clamp(0, candidates.len() as i32) as usize;
    plan.create = allowed;
    plan.create.extend(candidates.into_iter().take(room));
    plan
}

/// The status upstream's `updateDaemonSetStatus` computes.
pub fn calculate_status(
    ds: &DaemonSet,
    nodes: &[Arc<Node>],
    by_node: &BTreeMap<String, Vec<Arc<Pod>>>,
    hash: &str,
    now: jiff::Timestamp,
) -> DaemonSetStatus {
    let min_ready = ds
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    let mut status = DaemonSetStatus {
        collision_count: ds.status.as_ref().and_then(|s| s.collision_count),
        conditions: ds.status.as_ref().and_then(|s| s.conditions.clone()),
        observed_generation: ds.metadata.generation,
        ..Default::default()
    };
    let (mut updated, mut available, mut ready) = (0, 0, 0);
    for node in nodes {
        let name = node.metadata.name.as_deref().unwrap_or("");
        let pods = by_node.get(name).filter(|p| !p.is_empty());
        if should_run(ds, node).0 {
            status.desired_number_scheduled += 1;
            let Some(pods) = pods else { continue };
            status.current_number_scheduled += 1;
            let pod = &pods[0];
            if pod_ready(pod).0 {
                ready += 1;
                if is_pod_available(pod, min_ready, now) {
                    available += 1;
                }
            }
            if is_updated(ds, pod, hash) {
                updated += 1;
            }
        } else if pods.is_some() {
            status.number_misscheduled += 1;
        }
    }
    status.number_ready = ready;
    status.number_available = Some(available);
    status.updated_number_scheduled = Some(updated);
    status.number_unavailable = Some(status.desired_number_scheduled - available);
    status
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use serde_json::json;

    use super::*;

    fn ds(extra_spec: serde_json::Value) -> DaemonSet {
        let mut value = json!({
            "metadata": {"name": "agent", "namespace": "kube-system", "uid": "ds-uid", "generation": 2,
                          "annotations": {TEMPLATE_GENERATION_ANNOTATION: "2"}},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}},
                             "spec": {"containers": [{"name": "c", "image": "agent:1"}]}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
            }
        });
        if let Some(extra) = extra_spec.as_object() {
            for (k, v) in extra {
                value["spec"][k] = v.clone();
            }
        }
        serde_json::from_value(value).unwrap()
    }

    fn node(name: &str, labels: &[(&str, &str)], taints: &[(&str, &str)]) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>()},
                "spec": {"taints": taints.iter().map(|(k, e)| json!({"key": k, "effect": e})).collect::<Vec<_>>()}
            }))
            .unwrap(),
        )
    }

    fn pod(name: &str, node: &str, hash: &str, ready: bool, age: i64) -> Arc<Pod> {
        let created = jiff::Timestamp::from_second(1_000_000 - age).unwrap();
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([(REVISION_HASH_LABEL.to_string(), hash.to_string())].into()),
                creation_timestamp: Some(Time(created)),
                ..Default::default()
            },
            spec: Some(k8s_openapi::api::core::v1::PodSpec {
                node_name: Some(node.into()),
                ..Default::default()
            }),
            status: Some(
                serde_json::from_value(json!({
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"},
                                    "lastTransitionTime": "2020-01-01T00:00:00Z"}]
                }))
                .unwrap(),
            ),
        })
    }

    fn now() -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_000_000).unwrap()
    }

    #[test]
    fn eligibility_follows_selectors_affinity_and_taints() {
        let plain = ds(json!({}));
        let worker = node("w", &[("role", "worker")], &[]);
        assert_eq!(should_run(&plain, &worker), (true, true));
        // Taints the daemon tolerations cover.
        let not_ready = node("n", &[], &[("node.kubernetes.io/not-ready", "NoExecute")]);
        assert_eq!(should_run(&plain, &not_ready), (true, true));
        let cordoned = node(
            "c",
            &[],
            &[("node.kubernetes.io/unschedulable", "NoSchedule")],
        );
        assert_eq!(should_run(&plain, &cordoned), (true, true));
        // A NoSchedule taint: no new pod, but the one there stays; NoExecute: it goes.
        let control = node(
            "cp",
            &[],
            &[("node-role.kubernetes.io/control-plane", "NoSchedule")],
        );
        assert_eq!(should_run(&plain, &control), (false, true));
        let evicting = node("e", &[], &[("dedicated", "NoExecute")]);
        assert_eq!(should_run(&plain, &evicting), (false, false));
        let tolerant = ds(
            json!({"template": {"metadata": {"labels": {"app": "agent"}}, "spec": {
            "containers": [{"name": "c", "image": "a"}],
            "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]}}}),
        );
        assert_eq!(should_run(&tolerant, &control), (true, true));
        // nodeSelector and required node affinity.
        let selective = ds(
            json!({"template": {"metadata": {"labels": {"app": "agent"}}, "spec": {
            "containers": [{"name": "c", "image": "a"}], "nodeSelector": {"role": "worker"}}}}),
        );
        assert_eq!(should_run(&selective, &worker), (true, true));
        assert_eq!(should_run(&selective, &not_ready), (false, false));
        let affine = ds(
            json!({"template": {"metadata": {"labels": {"app": "agent"}}, "spec": {
            "containers": [{"name": "c", "image": "a"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "role", "operator": "NotIn", "values": ["worker"]}]}]}}}}}}),
        );
        assert_eq!(should_run(&affine, &worker), (false, false));
        assert_eq!(should_run(&affine, &not_ready), (true, true));
    }

    #[test]
    fn pods_are_pinned_by_a_match_fields_term() {
        let affinity = pin_to_node(None, "n1");
        let terms = &affinity
            .node_affinity
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .unwrap()
            .node_selector_terms;
        assert_eq!(terms.len(), 1);
        let fields = terms[0].match_fields.as_ref().unwrap();
        assert_eq!(fields[0].key, "metadata.name");
        assert_eq!(fields[0].values.as_deref(), Some(&["n1".to_string()][..]));
        let pinned = pod("p", "", "h", false, 0);
        let mut pinned = (*pinned).clone();
        pinned.spec.as_mut().unwrap().node_name = None;
        pinned.spec.as_mut().unwrap().affinity = Some(pin_to_node(None, "n7"));
        assert_eq!(target_node(&pinned).as_deref(), Some("n7"));
        let template = daemon_pod_template(&ds(json!({})), "h1");
        let labels = template.metadata.unwrap().labels.unwrap();
        assert_eq!(labels[REVISION_HASH_LABEL], "h1");
        assert_eq!(labels[TEMPLATE_GENERATION_LABEL], "2");
        assert_eq!(template.spec.unwrap().tolerations.unwrap().len(), 6);
    }

    #[test]
    fn manage_creates_where_missing_and_deletes_extras() {
        let set = ds(json!({}));
        let nodes = vec![
            node("a", &[], &[]),
            node("b", &[], &[]),
            node("evict", &[], &[("dedicated", "NoExecute")]),
        ];
        let mut failed = (*pod("a-failed", "a", "h", false, 1)).clone();
        failed.status.as_mut().unwrap().phase = Some("Failed".into());
        let by_node = pods_by_node(&[
            pod("b-old", "b", "h", true, 10),
            pod("b-young", "b", "h", true, 1),
            Arc::new(failed),
            pod("e", "evict", "h", true, 5),
            pod("gone", "removed-node", "h", true, 5),
        ]);
        let plan = manage(&set, &nodes, &by_node, "h");
        assert_eq!(plan.create, Vec::<String>::new(), "a has a (failed) pod");
        assert_eq!(plan.failed, vec![("a-failed".to_string(), "a".to_string())]);
        assert_eq!(plan.delete, vec!["b-young", "e", "gone"]);
        let empty = manage(&set, &nodes, &BTreeMap::new(), "h");
        assert_eq!(empty.create, vec!["a", "b"]);
    }

    #[test]
    fn rolling_update_without_surge_deletes_within_max_unavailable() {
        let set = ds(json!({}));
        let nodes = [
            node("a", &[], &[]),
            node("b", &[], &[]),
            node("c", &[], &[]),
        ];
        let by_name: HashMap<&str, &Node> = nodes
            .iter()
            .map(|n| (n.metadata.name.as_deref().unwrap(), n.as_ref()))
            .collect();
        let by_node = pods_by_node(&[
            pod("a1", "a", "old", true, 5),
            pod("b1", "b", "old", true, 5),
            pod("c1", "c", "old", false, 5),
        ]);
        // The unavailable old pod is replaced at once; one more within maxUnavailable 1.
        let plan = rolling_update(&set, &by_name, &by_node, "new", now());
        assert_eq!(plan.delete, vec!["c1", "a1"]);
        // A new pod not yet available uses up the budget.
        let by_node = pods_by_node(&[
            pod("a2", "a", "new", false, 1),
            pod("b1", "b", "old", true, 5),
            pod("c1", "c", "old", true, 5),
        ]);
        let plan = rolling_update(&set, &by_name, &by_node, "new", now());
        assert!(plan.delete.is_empty(), "{plan:?}");
        // maxUnavailable 2 of 3 (67% rounds up to 3, capped by candidates).
        let wide = ds(
            json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "67%"}}}),
        );
        let by_node = pods_by_node(&[
            pod("a1", "a", "old", true, 5),
            pod("b1", "b", "old", true, 5),
            pod("c1", "c", "old", true, 5),
        ]);
        let plan = rolling_update(&wide, &by_name, &by_node, "new", now());
        assert_eq!(plan.delete.len(), 3);
    }

    #[test]
    fn rolling_update_with_surge_creates_then_deletes() {
        let set = ds(
            json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}}),
        );
        let nodes = [node("a", &[], &[]), node("b", &[], &[])];
        let by_name: HashMap<&str, &Node> = nodes
            .iter()
            .map(|n| (n.metadata.name.as_deref().unwrap(), n.as_ref()))
            .collect();
        let by_node = pods_by_node(&[
            pod("a1", "a", "old", true, 5),
            pod("b1", "b", "old", true, 5),
        ]);
        let plan = rolling_update(&set, &by_name, &by_node, "new", now());
        assert_eq!(plan.create, vec!["a"]);
        assert!(plan.delete.is_empty());
        // The new pod on a is available: its old pod goes, b surges next.
        let by_node = pods_by_node(&[
            pod("a1", "a", "old", true, 5),
            pod("a2", "a", "new", true, 1),
            pod("b1", "b", "old", true, 5),
        ]);
        let plan = rolling_update(&set, &by_name, &by_node, "new", now());
        assert_eq!(plan.delete, vec!["a1"]);
        assert_eq!(plan.create, vec!["b"]);
        assert_eq!(
            surge_and_unavailable(
                &ds(
                    json!({"updateStrategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}})
                ),
                5
            ),
            (0, 1)
        );
    }

    #[test]
    fn status_counts_as_upstream() {
        let set = ds(json!({}));
        let nodes = vec![
            node("a", &[], &[]),
            node("b", &[], &[]),
            node("c", &[], &[]),
            node(
                "cp",
                &[],
                &[("node-role.kubernetes.io/control-plane", "NoSchedule")],
            ),
        ];
        let by_node = pods_by_node(&[
            pod("a1", "a", "new", true, 5),
            pod("b1", "b", "old", false, 5),
            pod("cp1", "cp", "new", true, 5),
        ]);
        let status = calculate_status(&set, &nodes, &by_node, "new", now());
        assert_eq!(status.desired_number_scheduled, 3);
        assert_eq!(status.current_number_scheduled, 2);
        assert_eq!(status.number_misscheduled, 1);
        assert_eq!(status.number_ready, 1);
        assert_eq!(status.number_available, Some(1));
        assert_eq!(status.updated_number_scheduled, Some(1));
        assert_eq!(status.number_unavailable, Some(2));
        assert_eq!(status.observed_generation, Some(2));
    }
}
