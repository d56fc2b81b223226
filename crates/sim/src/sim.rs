//! The simulated nodes at run time: registration, Lease renewals and status heartbeats spread
//! over their intervals, and the watch on Nodes that notices a node taken down, brought back,
//! deleted, or marked not Ready by someone else.
//!
//! Tasks: one future per loop (registration, lease walk, status walk, node watch, pod watch,
//! urgent work), joined in `run`; plus one small task per pod waiting on a timer (start delay,
//! completion). Every request holds a permit of one semaphore, so at most
//! `Options::max_in_flight` requests are in flight whatever the node count.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;
use parking_lot::Mutex;
use tokio::sync::{mpsc, Semaphore, SemaphorePermit};

use crate::ipam::Ipv4Cidr;
use crate::kubelet::Pods;
use crate::node::{self, StatusInput};
use crate::{spread, Options};

/// The HTTP status of an API error, if the server answered.
pub(crate) fn status_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// One simulated node. The name and addresses never change; the rest follows the API.
pub(crate) struct SimNode {
    pub(crate) name: String,
    pub(crate) internal_ip: Ipv4Addr,
    /// Where its pods' IPs come from while it has no `spec.podCIDR`.
    pub(crate) fallback_cidr: Ipv4Cidr,
    pub(crate) live: Mutex<NodeLive>,
}

/// What changes about a node. Lock order: `Sim::pods` before a node's `live`.
pub(crate) struct NodeLive {
    /// The Node's uid once registered; `None` until then, and after the Node was deleted.
    pub(crate) uid: Option<String>,
    /// `spec.podCIDR`, once the node IPAM controller assigned it.
    pub(crate) pod_cidr: Option<Ipv4Cidr>,
    /// Taken down with the down annotation: dead, as far as the cluster can tell.
    pub(crate) down: bool,
    /// When it registered (the pressure conditions' transition time).
    since: Timestamp,
    /// When Ready last became True.
    ready_since: Timestamp,
    /// A full status update is queued (the watch saw Ready not True).
    status_queued: bool,
}

impl NodeLive {
    /// Whether the node is registered and up: renewing, posting status, running pods.
    pub(crate) fn alive(&self) -> bool {
        self.uid.is_some() && !self.down
    }
}

/// Work that cannot wait for a node's turn in a walk.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Work {
    /// (Re-)register the node.
    Register(usize),
    /// Post its full status now (someone marked it not Ready while it is up).
    PostStatus(usize),
    /// It came back up: renew its Lease, post its status, pick up its pods.
    Recover(usize),
}

/// Everything the sim shares between its loops.
pub(crate) struct Sim {
    pub(crate) client: kube::Client,
    pub(crate) options: Options,
    pub(crate) nodes: Vec<SimNode>,
    pub(crate) by_name: HashMap<String, usize>,
    /// The pods the fake kubelet handles, and the pod IPs in use.
    pub(crate) pods: Mutex<Pods>,
    limiter: Semaphore,
    /// When this sim started: the nodes' boot time.
    boot: Timestamp,
    pub(crate) shutting_down: AtomicBool,
    work: mpsc::UnboundedSender<Work>,
}

impl Sim {
    /// The shared state and the receiving end of the urgent work queue.
    pub(crate) fn new(
        client: kube::Client,
        options: Options,
    ) -> (Arc<Sim>, mpsc::UnboundedReceiver<Work>) {
        let boot = Timestamp::now();
        let nodes: Vec<SimNode> = (0..options.nodes)
            .map(|index| SimNode {
                name: node::node_name(&options, index),
                internal_ip: node::internal_ip(index),
                fallback_cidr: options.pod_cidr_fallback.subnet(24, index),
                live: Mutex::new(NodeLive {
                    uid: None,
                    pod_cidr: None,
                    down: false,
                    since: boot,
                    ready_since: boot,
                    status_queued: false,
                }),
            })
            .collect();
        let by_name = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone(), i))
            .collect();
        let (work, receiver) = mpsc::unbounded_channel();
        let sim = Sim {
            client,
            limiter: Semaphore::new(options.max_in_flight.max(1)),
            pods: Mutex::new(Pods::new(nodes.len())),
            options,
            nodes,
            by_name,
            boot,
            shutting_down: AtomicBool::new(false),
            work,
        };
        (Arc::new(sim), receiver)
    }

    /// A permit to send one request.
    pub(crate) async fn permit(&self) -> Option<SemaphorePermit<'_>> {
        self.limiter.acquire().await.ok()
    }

    /// Whether node `index` is registered and up.
    pub(crate) fn alive(&self, index: usize) -> bool {
        self.nodes[index].live.lock().alive()
    }

    fn queue(&self, work: Work) {
        // The receiver lives as long as `run`; a send after it is gone has nothing to do.
        let _ = self.work.send(work);
    }

    fn nodes_api(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    fn leases_api(&self) -> Api<Lease> {
        Api::namespaced(self.client.clone(), node::LEASE_NAMESPACE)
    }

    /// Runs every loop until dropped.
    pub(crate) async fn run(self: &Arc<Sim>, work: mpsc::UnboundedReceiver<Work>) {
        self.register_all().await;
        tokio::join!(
            self.lease_walk(),
            self.status_walk(),
            self.watch_nodes(),
            self.watch_pods(),
            self.work_loop(work)
        );
    }

    async fn register_all(&self) {
        let limit = self.options.max_in_flight.max(1);
        futures::stream::iter(0..self.nodes.len())
            .for_each_concurrent(limit, |i| self.register_logged(i))
            .await;
        let registered = self
            .nodes
            .iter()
            .filter(|n| n.live.lock().uid.is_some())
            .count();
        tracing::info!(registered, nodes = self.nodes.len(), "sim nodes registered");
    }

    async fn register_logged(&self, index: usize) {
        if let Err(error) = self.register(index).await {
            tracing::warn!(node = %self.nodes[index].name, %error, "registering node");
        }
    }

    /// Registers node `index` as the kubelet does: create the Node (or take over the one of
    /// that name), then its Lease.
    async fn register(&self, index: usize) -> Result<(), kube::Error> {
        if self.shutting_down.load(Ordering::Relaxed) {
            return Ok(());
        }
        let sim_node = &self.nodes[index];
        let name = sim_node.name.as_str();
        let now = Timestamp::now();
        let boot_id = node::boot_id(name, self.boot);
        let input = StatusInput {
            name,
            internal_ip: sim_node.internal_ip,
            boot_id: &boot_id,
            since: now,
            ready_since: now,
            now,
        };
        let api = self.nodes_api();
        let created = {
            let _permit = self.permit().await;
            api.create(&PostParams::default(), &node::node(&self.options, &input))
                .await
        };
        let registered = match created {
            Ok(created) => created,
            Err(error) if status_code(&error) == Some(409) => {
                let _permit = self.permit().await;
                let existing = api
                    .patch(
                        name,
                        &PatchParams::default(),
                        &Patch::Merge(node::takeover_patch(&self.options, name)),
                    )
                    .await?;
                if !node::is_down(&existing) {
                    api.patch_status(
                        name,
                        &PatchParams::default(),
                        &Patch::Merge(node::full_status_patch(&self.options, &input)),
                    )
                    .await?;
                }
                existing
            }
            Err(error) => return Err(error),
        };
        let uid = registered.metadata.uid.clone().unwrap_or_default();
        let down = node::is_down(&registered);
        {
            let mut live = sim_node.live.lock();
            live.uid = Some(uid.clone());
            live.down = down;
            live.pod_cidr = pod_cidr(&registered);
            live.since = now;
            live.ready_since = now;
        }
        if down {
            tracing::info!(node = %name, "registered a node that is down");
            return Ok(());
        }
        let leases = self.leases_api();
        let _permit = self.permit().await;
        match leases
            .create(&PostParams::default(), &node::lease(name, &uid, now))
            .await
        {
            Err(error) if status_code(&error) == Some(409) => {
                let patch = node::lease_takeover_patch(name, &uid, now);
                leases
                    .patch(name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                    .map(drop)
            }
            other => other.map(drop),
        }
    }

    /// Every node's Lease, renewed once per `lease_renew_interval`, a slice at a time. Nodes
    /// not registered (a failed registration, a deleted Node) register instead.
    async fn lease_walk(&self) {
        let limit = self.options.max_in_flight.max(1);
        spread::walk(
            self.nodes.len(),
            self.options.lease_renew_interval,
            |range| {
                futures::stream::iter(range).for_each_concurrent(limit, |i| self.renew_lease(i))
            },
        )
        .await;
    }

    async fn renew_lease(&self, index: usize) {
        let (uid, down) = {
            let live = self.nodes[index].live.lock();
            (live.uid.clone(), live.down)
        };
        let Some(uid) = uid else {
            return self.register_logged(index).await;
        };
        if down || self.shutting_down.load(Ordering::Relaxed) {
            return;
        }
        if let Err(error) = self.renew_lease_of(index, &uid).await {
            tracing::debug!(node = %self.nodes[index].name, %error, "renewing lease");
        }
    }

    /// One renewal: a merge patch, or a create when the Lease is gone (deleted with an earlier
    /// Node of the same name by the garbage collector).
    async fn renew_lease_of(&self, index: usize, uid: &str) -> Result<(), kube::Error> {
        let name = self.nodes[index].name.as_str();
        let leases = self.leases_api();
        let now = Timestamp::now();
        let _permit = self.permit().await;
        match leases
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(node::lease_renewal_patch(name, now)),
            )
            .await
        {
            Err(error) if status_code(&error) == Some(404) => {
                match leases
                    .create(&PostParams::default(), &node::lease(name, uid, now))
                    .await
                {
                    Err(error) if status_code(&error) == Some(409) => Ok(()),
                    other => other.map(drop),
                }
            }
            other => other.map(drop),
        }
    }

    /// Every node's status heartbeat, once per `status_update_interval`, a slice at a time.
    async fn status_walk(&self) {
        let limit = self.options.max_in_flight.max(1);
        spread::walk(
            self.nodes.len(),
            self.options.status_update_interval,
            |range| {
                futures::stream::iter(range)
                    .for_each_concurrent(limit, |i| self.post_status_logged(i, false))
            },
        )
        .await;
    }

    async fn post_status_logged(&self, index: usize, full: bool) {
        if let Err(error) = self.post_status(index, full).await {
            tracing::debug!(node = %self.nodes[index].name, %error, "posting node status");
        }
    }

    /// Posts the node's conditions (`full`: its whole status) if it is up.
    async fn post_status(&self, index: usize, full: bool) -> Result<(), kube::Error> {
        let sim_node = &self.nodes[index];
        let (since, ready_since) = {
            let live = sim_node.live.lock();
            if !live.alive() || self.shutting_down.load(Ordering::Relaxed) {
                return Ok(());
            }
            (live.since, live.ready_since)
        };
        let name = sim_node.name.as_str();
        let boot_id = node::boot_id(name, self.boot);
        let input = StatusInput {
            name,
            internal_ip: sim_node.internal_ip,
            boot_id: &boot_id,
            since,
            ready_since,
            now: Timestamp::now(),
        };
        let patch = if full {
            node::full_status_patch(&self.options, &input)
        } else {
            node::heartbeat_patch(&input)
        };
        let _permit = self.permit().await;
        match self
            .nodes_api()
            .patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Err(error) if status_code(&error) == Some(404) => {
                // Deleted: the lease walk registers it again (the node watch may be quicker).
                sim_node.live.lock().uid = None;
                Ok(())
            }
            other => other.map(drop),
        }
    }

    /// Urgent work, a bounded number at a time.
    async fn work_loop(self: &Arc<Sim>, mut receiver: mpsc::UnboundedReceiver<Work>) {
        let limit = self.options.max_in_flight.max(1);
        futures::stream::poll_fn(|cx| receiver.poll_recv(cx))
            .for_each_concurrent(limit, |work| async move {
                match work {
                    Work::Register(index) => self.register_logged(index).await,
                    Work::PostStatus(index) => {
                        self.nodes[index].live.lock().status_queued = false;
                        self.post_status_logged(index, true).await;
                    }
                    Work::Recover(index) => self.recover(index).await,
                }
            })
            .await;
    }

    /// A node brought back up: Lease, full status, and its pods as a restarted kubelet
    /// finds them.
    async fn recover(self: &Arc<Sim>, index: usize) {
        let Some(uid) = self.nodes[index].live.lock().uid.clone() else {
            return;
        };
        if let Err(error) = self.renew_lease_of(index, &uid).await {
            tracing::debug!(node = %self.nodes[index].name, %error, "renewing lease");
        }
        self.post_status_logged(index, true).await;
        self.resync_pods(index).await;
    }

    /// The Nodes as the API server sees them.
    async fn watch_nodes(&self) {
        let stream =
            watcher::watcher(self.nodes_api(), watcher::Config::default()).default_backoff();
        let mut stream = std::pin::pin!(stream);
        let mut seen: Option<Vec<bool>> = None;
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Apply(node)) => {
                    self.observe_node(&node);
                }
                Ok(Event::Init) => seen = Some(vec![false; self.nodes.len()]),
                Ok(Event::InitApply(node)) => {
                    if let (Some(index), Some(seen)) = (self.observe_node(&node), seen.as_mut()) {
                        seen[index] = true;
                    }
                }
                Ok(Event::InitDone) => {
                    // Nodes deleted while the watch was down.
                    for (index, seen) in seen.take().into_iter().flatten().enumerate() {
                        if !seen {
                            self.node_deleted(index);
                        }
                    }
                }
                Ok(Event::Delete(node)) => {
                    if let Some(&index) = node
                        .metadata
                        .name
                        .as_ref()
                        .and_then(|n| self.by_name.get(n))
                    {
                        self.node_deleted(index);
                    }
                }
                Err(error) => tracing::warn!(%error, "watching nodes"),
            }
        }
    }

    fn node_deleted(&self, index: usize) {
        if self.shutting_down.load(Ordering::Relaxed) {
            return;
        }
        let mut live = self.nodes[index].live.lock();
        if live.uid.take().is_some() {
            tracing::info!(node = %self.nodes[index].name, "node deleted; registering it again");
            self.queue(Work::Register(index));
        }
    }

    /// Takes what matters from a Node of the sim: its uid, pod CIDR, down annotation and
    /// whether it is Ready. Returns its index.
    fn observe_node(&self, node: &Node) -> Option<usize> {
        let index = *self.by_name.get(node.metadata.name.as_ref()?)?;
        let down = node::is_down(node);
        let mut live = self.nodes[index].live.lock();
        if let Some(uid) = &node.metadata.uid {
            if live.uid.as_ref() != Some(uid) {
                live.uid = Some(uid.clone());
            }
        }
        live.pod_cidr = pod_cidr(node);
        let was_down = std::mem::replace(&mut live.down, down);
        match (was_down, down) {
            (false, true) => tracing::info!(node = %self.nodes[index].name, "node taken down"),
            (true, false) => {
                tracing::info!(node = %self.nodes[index].name, "node back up");
                live.ready_since = Timestamp::now();
                self.queue(Work::Recover(index));
            }
            (false, false) if !node::is_ready(node) && !live.status_queued => {
                // The node lifecycle controller marked it Unknown (or someone else changed it);
                // a live kubelet posts its status at once when it differs.
                live.status_queued = true;
                live.ready_since = Timestamp::now();
                self.queue(Work::PostStatus(index));
            }
            _ => {}
        }
        Some(index)
    }
}

/// A Node's `spec.podCIDR`, when it has a valid IPv4 one.
fn pod_cidr(node: &Node) -> Option<Ipv4Cidr> {
    node.spec.as_ref()?.pod_cidr.as_ref()?.parse().ok()
}
