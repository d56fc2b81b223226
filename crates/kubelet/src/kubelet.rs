//! The kubelet's pod loop: one watch on the pods bound to this node feeds one [`PodWorker`]
//! per pod (upstream `syncLoop` + `podWorkers`), and housekeeping removes what the runtime has
//! for pods this node no longer has (upstream `HandlePodCleanups`): at start, after every relist
//! and every few seconds.
//!
//! A worker gets the pod's newest version through a `watch` channel (only the latest matters),
//! and is woken early by probe results; a pod gone from the API is terminated with the grace
//! period its last version had.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::pod_worker::{PodWorker, Shared, SyncResult};
use crate::podconfig::POD_UID_LABEL;

/// How often orphaned sandboxes and pod directories are looked for.
const HOUSEKEEPING: Duration = Duration::from_secs(5);
/// How often the runtime is relisted for state changes (upstream PLEG's relist period).
const RELIST: Duration = Duration::from_secs(1);

/// Upstream's PLEG (pod lifecycle event generator) in its simplest form: one relist of all
/// sandboxes and containers, compared with the previous one; the pods whose sandboxes or
/// containers appeared, vanished or changed state get a sync. Workers of steady pods then need
/// no CRI calls of their own between their slow resyncs.
#[derive(Default)]
struct Pleg {
    /// Container or sandbox id → (state, pod uid), as of the last relist.
    last: HashMap<String, (i32, String)>,
}

impl Pleg {
    /// The uids of pods whose runtime state changed since the last relist.
    async fn relist(&mut self, runtime: &dyn crate::runtime::Runtime) -> HashSet<String> {
        let (sandboxes, containers) = match tokio::try_join!(
            runtime.list_pod_sandboxes(None),
            runtime.list_containers(None)
        ) {
            Ok(lists) => lists,
            Err(e) => {
                tracing::debug!(error = %e, "relisting the runtime");
                return HashSet::new();
            }
        };
        let mut now = HashMap::new();
        for s in sandboxes {
            if let Some(uid) = s.labels.get(POD_UID_LABEL) {
                now.insert(s.id, (s.state, uid.clone()));
            }
        }
        for c in containers {
            if let Some(uid) = c.labels.get(POD_UID_LABEL) {
                now.insert(c.id, (c.state + 100, uid.clone()));
            }
        }
        let mut changed = HashSet::new();
        for (id, (state, uid)) in &now {
            if self.last.get(id).map(|(s, _)| s) != Some(state) {
                changed.insert(uid.clone());
            }
        }
        for (id, (_, uid)) in &self.last {
            if !now.contains_key(id) {
                changed.insert(uid.clone());
            }
        }
        self.last = now;
        changed
    }
}

struct WorkerHandle {
    pod: watch::Sender<Option<Pod>>,
    kick: mpsc::Sender<()>,
    task: JoinHandle<()>,
}

/// The pod loop of one node.
pub struct Kubelet {
    shared: Arc<Shared>,
    workers: HashMap<String, WorkerHandle>,
    /// Pods refused at admission (they never get a worker).
    rejected: HashSet<String>,
}

/// Whether the pod has not been started by a kubelet yet (admission applies to it): no start
/// time, not terminal.
fn never_started(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    status.and_then(|s| s.start_time.as_ref()).is_none()
        && !matches!(
            status.and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
        && pod.metadata.deletion_timestamp.is_none()
}

/// Whether two versions of a pod differ only in status and bookkeeping metadata.
fn same_but_status(a: &Pod, b: &Pod) -> bool {
    let strip = |p: &Pod| {
        let mut p = p.clone();
        p.status = None;
        p.metadata.resource_version = None;
        p.metadata.managed_fields = None;
        p
    };
    strip(a) == strip(b)
}

fn uid_of(pod: &Pod) -> Option<String> {
    pod.metadata.uid.clone()
}

impl Kubelet {
    /// A pod loop over `shared`.
    pub fn new(shared: Arc<Shared>) -> Self {
        Kubelet {
            shared,
            workers: HashMap::new(),
            rejected: HashSet::new(),
        }
    }

    /// Upstream's `canAdmitPod` for a pod this kubelet has not started: the eviction manager's
    /// admission under node pressure. A refused pod is failed with the refusal's reason and
    /// message (upstream's `rejectPod`) and gets no worker.
    fn admit(&mut self, uid: &str, pod: &Pod) -> bool {
        if self.rejected.contains(uid) {
            // Deleted: a worker finalizes the delete (there is nothing to stop).
            if pod.metadata.deletion_timestamp.is_some() {
                self.rejected.remove(uid);
                return true;
            }
            return false;
        }
        if !never_started(pod) {
            return true;
        }
        let crate::eviction::admit::Admission::Reject { reason, message } =
            self.shared.evictions.admit(pod)
        else {
            return true;
        };
        tracing::info!(pod = ?pod.metadata.name, %reason, %message, "pod refused at admission");
        self.rejected.insert(uid.to_string());
        self.shared.recorder.event(
            crate::pod_worker::pod_reference(pod),
            ferry_client::events::EventType::Warning,
            &reason,
            message.clone(),
        );
        let status = k8s_openapi::api::core::v1::PodStatus {
            phase: Some("Failed".into()),
            reason: Some(reason),
            message: Some(message),
            ..Default::default()
        };
        let (api, pod) = (self.shared.api.clone(), pod.clone());
        tokio::spawn(async move {
            if let Err(e) = api.patch_status(&pod, &status).await {
                tracing::warn!(error = %e, "failing a pod refused at admission");
            }
        });
        false
    }

    fn on_pod(&mut self, pod: Pod) {
        let Some(uid) = uid_of(&pod) else { return };
        if !self.workers.contains_key(&uid) && !self.admit(&uid, &pod) {
            return;
        }
        if let Some(worker) = self.workers.get(&uid) {
            if !worker.task.is_finished() {
                // Status-only updates (mostly our own patches) are kept but wake nobody, as
                // upstream's pod config ignores them.
                worker.pod.send_if_modified(|current| {
                    let wake = current.as_ref().is_none_or(|c| !same_but_status(c, &pod));
                    *current = Some(pod);
                    wake
                });
                return;
            }
        }
        let (pod_tx, pod_rx) = watch::channel(Some(pod));
        let (kick_tx, kick_rx) = mpsc::channel(1);
        let worker = PodWorker::new(self.shared.clone(), uid.clone());
        let task = tokio::spawn(run_worker(worker, pod_rx, kick_rx));
        self.workers.insert(
            uid,
            WorkerHandle {
                pod: pod_tx,
                kick: kick_tx,
                task,
            },
        );
    }

    fn on_gone(&mut self, uid: &str) {
        self.rejected.remove(uid);
        if let Some(worker) = self.workers.get(uid) {
            worker.pod.send_replace(None);
        }
    }

    /// Stops and removes sandboxes, and removes pod directories, of pods that have no worker
    /// (deleted while the agent was down, or left by a crash).
    async fn housekeeping(&mut self) {
        // A worker that panicked is logged and started again on the pod's latest version (a
        // dropped worker would make its pod look orphaned).
        let mut restart = vec![];
        for (uid, worker) in &mut self.workers {
            if !worker.task.is_finished() {
                continue;
            }
            if let Some(Err(e)) = futures::FutureExt::now_or_never(&mut worker.task) {
                if e.is_panic() {
                    tracing::error!(pod_uid = %uid, "a pod worker panicked; starting it again");
                    if let Some(pod) = worker.pod.borrow().clone() {
                        restart.push(pod);
                    }
                }
            }
        }
        self.workers.retain(|_, w| !w.task.is_finished());
        for pod in restart {
            self.on_pod(pod);
        }
        let live: Vec<String> = self.workers.keys().cloned().collect();
        self.shared.objects.forget_other_pods(&live);
        let runtime = &self.shared.runtime;
        let sandboxes = match runtime.list_pod_sandboxes(None).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "housekeeping: listing sandboxes");
                return;
            }
        };
        for sandbox in sandboxes {
            let Some(uid) = sandbox.labels.get(POD_UID_LABEL) else {
                continue;
            };
            if self.workers.contains_key(uid) {
                continue;
            }
            tracing::info!(sandbox = %sandbox.id, pod_uid = %uid, "removing an orphaned pod sandbox");
            // Off the pod loop: stopping can take the containers' time.
            let runtime = runtime.clone();
            tokio::spawn(async move {
                let _ = runtime.stop_pod_sandbox(&sandbox.id).await;
                if let Err(e) = runtime.remove_pod_sandbox(&sandbox.id).await {
                    tracing::warn!(sandbox = %sandbox.id, error = %e, "removing an orphaned sandbox");
                }
            });
        }
        let pods_dir = &self.shared.node.pods_dir;
        for entry in std::fs::read_dir(pods_dir).into_iter().flatten().flatten() {
            let uid = entry.file_name().to_string_lossy().into_owned();
            if !self.workers.contains_key(&uid) {
                if let Err(e) = self.shared.volumes.cleanup(&uid) {
                    tracing::warn!(pod_uid = %uid, error = %e, "removing an orphaned pod directory");
                }
            }
        }
        // Staged CSI volumes of pods that are gone (removed above, or before a restart).
        if let Err(e) = self.shared.volumes.unstage_unused_csi_volumes().await {
            tracing::warn!(error = %e, "unstaging unused CSI volumes");
        }
    }

    /// Runs until `shutdown`: watches the pods bound to `node_name`, runs their workers, and
    /// cleans up after pods that are gone. `probe_changes` carries pod uids whose probe results
    /// changed. Pods keep running when this returns (as when upstream's kubelet stops).
    pub async fn run<F>(
        mut self,
        client: kube::Client,
        mut probe_changes: mpsc::UnboundedReceiver<String>,
        shutdown: F,
    ) where
        F: Future<Output = ()>,
    {
        let node = self.shared.node.node_name.clone();
        let api: Api<Pod> = Api::all(client);
        let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
        let stream = watcher::watcher(api, config).default_backoff();
        let mut stream = std::pin::pin!(stream);
        tokio::pin!(shutdown);
        let mut seen: Option<HashSet<String>> = None;
        let mut listed = false;
        let mut tick = tokio::time::interval(HOUSEKEEPING);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut relist = tokio::time::interval(RELIST);
        relist.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pleg = Pleg::default();
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                event = stream.next() => match event {
                    Some(Ok(Event::Apply(pod))) => self.on_pod(pod),
                    Some(Ok(Event::Delete(pod))) => {
                        if let Some(uid) = uid_of(&pod) {
                            self.on_gone(&uid);
                        }
                    }
                    Some(Ok(Event::Init)) => seen = Some(HashSet::new()),
                    Some(Ok(Event::InitApply(pod))) => {
                        if let (Some(seen), Some(uid)) = (seen.as_mut(), uid_of(&pod)) {
                            seen.insert(uid);
                        }
                        self.on_pod(pod);
                    }
                    Some(Ok(Event::InitDone)) => {
                        if let Some(seen) = seen.take() {
                            let gone: Vec<String> = self.workers.keys().filter(|u| !seen.contains(*u)).cloned().collect();
                            for uid in gone {
                                self.on_gone(&uid);
                            }
                        }
                        listed = true;
                        self.housekeeping().await;
                    }
                    Some(Err(e)) => tracing::warn!(error = %e, "watching this node's pods"),
                    None => break,
                },
                Some(uid) = probe_changes.recv() => {
                    if let Some(worker) = self.workers.get(&uid) {
                        let _ = worker.kick.try_send(());
                    }
                }
                _ = tick.tick() => {
                    if listed {
                        self.housekeeping().await;
                    }
                }
                _ = relist.tick() => {
                    for uid in pleg.relist(self.shared.runtime.as_ref()).await {
                        if let Some(worker) = self.workers.get(&uid) {
                            let _ = worker.kick.try_send(());
                        }
                    }
                }
            }
        }
        for (_, worker) in self.workers.drain() {
            worker.task.abort();
        }
    }
}

/// A worker's loop: sync on every new version of the pod, on a kick, and every resync period;
/// terminate when the pod is gone.
async fn run_worker(
    mut worker: PodWorker,
    mut pod: watch::Receiver<Option<Pod>>,
    mut kick: mpsc::Receiver<()>,
) {
    let mut last: Option<Pod> = None;
    worker.updates = Some(pod.clone());
    loop {
        let current = pod.borrow_and_update().clone();
        let result = match current {
            Some(p) => {
                let r = worker.sync(&p).await;
                last = Some(p);
                r
            }
            None => match &last {
                Some(p) => worker.terminate(p, true).await,
                None => SyncResult::Finished,
            },
        };
        let wait = match result {
            SyncResult::Finished => return,
            SyncResult::Resync(d) => d,
        };
        tokio::select! {
            changed = pod.changed() => if changed.is_err() { return },
            _ = kick.recv() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}
