//! The fake kubelet: one watch on all bound pods (`spec.nodeName!=`), filtered in memory to
//! the sim's live nodes. A pod seen for the first time starts after the start delay (status
//! Running and Ready, a pod IP from its node's range); a pod being deleted has its containers
//! "stop" at once on SIGTERM and is deleted with grace period 0, as kwok does.
//!
//! Per pod the sim keeps only a small [`PodEntry`]; the Pod object itself is held only by the
//! task waiting to start or complete it.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;
use serde_json::json;
use tokio::task::AbortHandle;
use tracing::Instrument as _;

use crate::ipam::PodIpam;
use crate::pod_status::{self, Decision, Outcome, Placement, Tracked};
use crate::sim::{status_code, Sim};

/// A kubelet's journey step for `pod` on the simulated node `node` (`sim=true` tells it from a
/// real kubelet's).
macro_rules! sim_step {
    ($name:literal, $pod:expr, $node:expr $(, $($field:tt)+)?) => {{
        let pod: &Pod = $pod;
        let meta = &pod.metadata;
        ferry_journey::step!(
            $name,
            parent = ferry_journey::of_object(meta).unwrap_or_default(),
            object = %format_args!(
                "pods/{}/{}",
                meta.namespace.as_deref().unwrap_or_default(),
                meta.name.as_deref().unwrap_or_default()
            ),
            uid = meta.uid.as_deref().unwrap_or_default(),
            component = "kubelet",
            node = %$node,
            sim = true
            $(, $($field)+)?
        )
    }};
}

/// The longest wait between retries of a failed request for a pod.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Why a pod could not be started yet; it is tried again after a backoff.
#[derive(Debug, thiserror::Error)]
enum StartError {
    /// Every pod IP of the node's range is taken.
    #[error("no free pod IP in the node's range")]
    NoPodIp,
    /// Posting the Running status failed.
    #[error(transparent)]
    Patch(#[from] kube::Error),
}

/// What the sim remembers about one pod it handles.
pub(crate) struct PodEntry {
    /// Index of its node.
    node: usize,
    state: Tracked,
    /// Its pod IP, while it holds one of the node's.
    ip: Option<Ipv4Addr>,
    /// The task waiting on its timer (start, completion, deletion).
    task: Option<AbortHandle>,
}

/// The pods of all sim nodes, by uid, and each node's pod IPs.
pub(crate) struct Pods {
    entries: HashMap<String, PodEntry>,
    ipam: Vec<PodIpam>,
}

impl Pods {
    /// No pods, for `nodes` nodes.
    pub(crate) fn new(nodes: usize) -> Pods {
        Pods {
            entries: HashMap::new(),
            ipam: (0..nodes).map(|_| PodIpam::default()).collect(),
        }
    }

    /// Forgets a pod: stops its task, frees its IP.
    fn remove(&mut self, uid: &str) {
        if let Some(entry) = self.entries.remove(uid) {
            if let Some(task) = entry.task {
                task.abort();
            }
            if let Some(ip) = entry.ip {
                self.ipam[entry.node].release(ip);
            }
        }
    }

    /// Frees the pod's IP (its sandbox is gone) but remembers the pod.
    fn release_ip(&mut self, uid: &str) {
        if let Some(entry) = self.entries.get_mut(uid) {
            if let Some(ip) = entry.ip.take() {
                self.ipam[entry.node].release(ip);
            }
        }
    }

    /// Stops every pod task (shutdown).
    pub(crate) fn abort_all(&mut self) {
        for entry in self.entries.values_mut() {
            if let Some(task) = entry.task.take() {
                task.abort();
            }
        }
    }
}

fn uid_of(pod: &Pod) -> Option<String> {
    pod.metadata.uid.clone()
}

fn pods_api(sim: &Sim, pod: &Pod) -> Api<Pod> {
    Api::namespaced(
        sim.client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    )
}

/// A merge patch of `pods/status`; the uid makes it apply to this pod only, as the kubelet's.
fn status_patch(pod: &Pod, status: &PodStatus) -> serde_json::Value {
    json!({ "metadata": { "uid": pod.metadata.uid }, "status": status })
}

impl Sim {
    /// All bound pods, from one watch.
    pub(crate) async fn watch_pods(self: &Arc<Sim>) {
        let api: Api<Pod> = Api::all(self.client.clone());
        let stream = watcher::watcher(api, watcher::Config::default().fields("spec.nodeName!="))
            .default_backoff();
        let mut stream = std::pin::pin!(stream);
        let mut seen: Option<HashSet<String>> = None;
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Apply(pod)) => self.on_pod(pod),
                Ok(Event::Delete(pod)) => {
                    if let Some(uid) = uid_of(&pod) {
                        self.pods.lock().remove(&uid);
                    }
                }
                Ok(Event::Init) => seen = Some(HashSet::new()),
                Ok(Event::InitApply(pod)) => {
                    if let (Some(seen), Some(uid)) = (seen.as_mut(), uid_of(&pod)) {
                        seen.insert(uid);
                    }
                    self.on_pod(pod);
                }
                Ok(Event::InitDone) => {
                    // Pods deleted while the watch was down.
                    if let Some(seen) = seen.take() {
                        let mut pods = self.pods.lock();
                        let gone: Vec<String> = pods
                            .entries
                            .keys()
                            .filter(|uid| !seen.contains(*uid))
                            .cloned()
                            .collect();
                        for uid in gone {
                            pods.remove(&uid);
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "watching pods"),
            }
        }
    }

    /// The pods of a node that came back up, as a restarted kubelet lists them.
    pub(crate) async fn resync_pods(self: &Arc<Sim>, index: usize) {
        let name = &self.nodes[index].name;
        let api: Api<Pod> = Api::all(self.client.clone());
        let listed = {
            let _permit = self.permit().await;
            api.list(&ListParams::default().fields(&format!("spec.nodeName={name}")))
                .await
        };
        match listed {
            Ok(list) => list.items.into_iter().for_each(|pod| self.on_pod(pod)),
            Err(error) => {
                tracing::warn!(node = %name, %error, "listing the pods of a node back up")
            }
        }
    }

    /// Acts on a pod the watch shows, if it is bound to a live node of the sim.
    fn on_pod(self: &Arc<Sim>, pod: Pod) {
        let Some(index) = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .and_then(|n| self.by_name.get(n))
            .copied()
        else {
            return;
        };
        let Some(uid) = uid_of(&pod) else { return };
        if !self.alive(index) || self.shutting_down.load(Ordering::Relaxed) {
            return;
        }
        let mut pods = self.pods.lock();
        let tracked = pods.entries.get(&uid).map(|e| e.state);
        let decision = pod_status::decide(&pod, tracked, Timestamp::now());
        match decision {
            Decision::Nothing => {}
            Decision::Start => {
                let task = spawn(self.clone().start(uid.clone(), index, pod));
                pods.entries.insert(
                    uid,
                    PodEntry {
                        node: index,
                        state: Tracked::Starting,
                        ip: None,
                        task,
                    },
                );
            }
            Decision::Adopt { pod_ip, finish_in } => {
                if let Some(ip) = pod_ip {
                    pods.ipam[index].mark_used(ip);
                }
                let task = finish_in.and_then(|(after, outcome)| {
                    spawn(self.clone().finish(uid.clone(), index, pod, after, outcome))
                });
                pods.entries.insert(
                    uid,
                    PodEntry {
                        node: index,
                        state: Tracked::Running,
                        ip: pod_ip,
                        task,
                    },
                );
            }
            Decision::Kill { post_status } => {
                let previous = pods.entries.remove(&uid);
                let (ip, old_task) = previous.map_or((None, None), |e| (e.ip, e.task));
                if let Some(task) = old_task {
                    task.abort();
                }
                let task = spawn(self.clone().kill(uid.clone(), index, pod, post_status));
                pods.entries.insert(
                    uid,
                    PodEntry {
                        node: index,
                        state: Tracked::Terminating,
                        ip,
                        task,
                    },
                );
            }
        }
    }

    /// Where a starting pod runs: the node's address, and an IP from its range (the node's
    /// own for `hostNetwork` pods). `None` when the range is full.
    fn place(&self, uid: &str, index: usize, host_network: bool) -> Option<Placement> {
        let sim_node = &self.nodes[index];
        let host_ip = sim_node.internal_ip;
        if host_network {
            return Some(Placement {
                host_ip,
                pod_ip: host_ip,
            });
        }
        let mut pods = self.pods.lock();
        let pods = &mut *pods;
        let entry = pods.entries.get_mut(uid)?;
        if let Some(pod_ip) = entry.ip {
            return Some(Placement { host_ip, pod_ip });
        }
        let range = sim_node
            .live
            .lock()
            .pod_cidr
            .unwrap_or(sim_node.fallback_cidr);
        let pod_ip = pods.ipam[index].allocate(range)?;
        entry.ip = Some(pod_ip);
        Some(Placement { host_ip, pod_ip })
    }

    /// Sets the state of a pod still tracked; `false` if it is not (deleted meanwhile).
    fn set_state(&self, uid: &str, state: Tracked, keep_task: bool) -> bool {
        let mut pods = self.pods.lock();
        match pods.entries.get_mut(uid) {
            Some(entry) => {
                entry.state = state;
                if !keep_task {
                    entry.task = None;
                }
                true
            }
            None => false,
        }
    }

    /// Starts a pod after the start delay: posts Running, then finishes it if asked to.
    async fn start(self: Arc<Sim>, uid: String, index: usize, pod: Pod) {
        let node = crate::node::node_name(&self.options, index);
        let seen = ferry_journey::now_unix_nanos();
        drop(sim_step!("pod seen", &pod, &node));
        tokio::time::sleep(self.options.pod_start_delay).await;
        let host_network = pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        let mut backoff = Duration::from_secs(1);
        loop {
            if !self.alive(index) {
                // Dead nodes start nothing; the pod is picked up again when the node is back.
                self.pods.lock().remove(&uid);
                return;
            }
            let posted = match self.place(&uid, index, host_network) {
                None if !self.pods.lock().entries.contains_key(&uid) => return,
                None => Err(StartError::NoPodIp),
                Some(placement) => {
                    let status = pod_status::running_status(&pod, placement, Timestamp::now());
                    let _permit = self.permit().await;
                    // Running and Ready at once: the journey's `ready`, from when it was seen.
                    let ready = sim_step!("ready", &pod, &node, start_ns = seen);
                    let patched = pods_api(&self, &pod)
                        .patch_status(
                            &pod_name(&pod),
                            &PatchParams::default(),
                            &Patch::Merge(status_patch(&pod, &status)),
                        )
                        .instrument(ready.clone())
                        .await;
                    if let Err(error) = &patched {
                        ferry_journey::fail(&ready, error);
                    }
                    match patched {
                        Ok(updated) => Ok(updated),
                        Err(error) if matches!(status_code(&error), Some(404 | 409)) => {
                            self.pods.lock().remove(&uid);
                            return;
                        }
                        Err(error) => Err(StartError::Patch(error)),
                    }
                }
            };
            match posted {
                Ok(updated) => {
                    let finish_after = pod_status::finish_after(&updated);
                    if !self.set_state(&uid, Tracked::Running, finish_after.is_some()) {
                        return;
                    }
                    if let Some((after, outcome)) = finish_after {
                        self.finish_now_or_later(uid, index, updated, after, outcome)
                            .await;
                    }
                    return;
                }
                Err(error) => {
                    tracing::debug!(pod = %pod_name(&pod), %error, "starting pod");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Finishes an adopted pod `after` from now.
    async fn finish(
        self: Arc<Sim>,
        uid: String,
        index: usize,
        pod: Pod,
        after: Duration,
        outcome: Outcome,
    ) {
        self.finish_now_or_later(uid, index, pod, after, outcome)
            .await;
    }

    /// Posts Succeeded (or Failed) for a pod asked to complete (or fail), `after` from now.
    async fn finish_now_or_later(
        &self,
        uid: String,
        index: usize,
        pod: Pod,
        after: Duration,
        outcome: Outcome,
    ) {
        tokio::time::sleep(after).await;
        let mut backoff = Duration::from_secs(1);
        loop {
            if !self.alive(index) {
                self.pods.lock().remove(&uid);
                return;
            }
            let status = pod_status::finished_status(&pod, outcome, Timestamp::now());
            let result = {
                let _permit = self.permit().await;
                pods_api(self, &pod)
                    .patch_status(
                        &pod_name(&pod),
                        &PatchParams::default(),
                        &Patch::Merge(status_patch(&pod, &status)),
                    )
                    .await
            };
            match result {
                Ok(_) => {
                    if self.set_state(&uid, Tracked::Finished, false) {
                        self.pods.lock().release_ip(&uid);
                    }
                    return;
                }
                Err(error) if matches!(status_code(&error), Some(404 | 409)) => {
                    self.pods.lock().remove(&uid);
                    return;
                }
                Err(error) => {
                    tracing::debug!(pod = %pod_name(&pod), %error, "finishing pod");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// A pod being deleted on a live node: its containers stop at once on SIGTERM, so the grace
    /// period is not waited out; post that they stopped (if they ran), then delete it with
    /// grace period 0 for this uid only.
    async fn kill(self: Arc<Sim>, uid: String, index: usize, pod: Pod, post_status: bool) {
        let api = pods_api(&self, &pod);
        let name = pod_name(&pod);
        let mut backoff = Duration::from_secs(1);
        let mut status_posted = !post_status;
        loop {
            if !self.alive(index) {
                self.pods.lock().remove(&uid);
                return;
            }
            let permit = self.permit().await;
            if !status_posted {
                let status = pod_status::killed_status(&pod, Timestamp::now());
                match api
                    .patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(status_patch(&pod, &status)),
                    )
                    .await
                {
                    Ok(_) => status_posted = true,
                    Err(error) if matches!(status_code(&error), Some(404 | 409)) => {
                        status_posted = true
                    }
                    Err(error) => {
                        tracing::debug!(pod = %name, %error, "posting the status of a pod being deleted")
                    }
                }
            }
            if status_posted {
                let params = DeleteParams::default()
                    .grace_period(0)
                    .preconditions(Preconditions {
                        uid: Some(uid.clone()),
                        resource_version: None,
                    });
                match api.delete(&name, &params).await {
                    Ok(_) => break,
                    Err(error) if matches!(status_code(&error), Some(404 | 409)) => break,
                    Err(error) => tracing::debug!(pod = %name, %error, "deleting pod"),
                }
            }
            drop(permit);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        // Gone, or kept by finalizers: either way its sandbox (and IP) is no more.
        let mut pods = self.pods.lock();
        pods.release_ip(&uid);
        if let Some(entry) = pods.entries.get_mut(&uid) {
            entry.task = None;
        }
    }
}

/// Runs a pod's timer task; its handle lets a deletion or shutdown stop it.
fn spawn<F>(future: F) -> Option<AbortHandle>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    Some(tokio::spawn(future).abort_handle())
}

/// The pod's name (the API path takes it; the uid goes in preconditions and patches).
fn pod_name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}
