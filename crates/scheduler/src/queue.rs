//! The scheduling queue, as upstream's `PriorityQueue`: three places a pending pod can wait.
//!
//! - **activeQ**: ready to be tried, ordered by the QueueSort plugin (priority, then time).
//! - **backoffQ**: failed recently; waits `initial * 2^(attempts-1)` capped at `max` (1 s .. 10 s
//!   by default), then moves to activeQ.
//! - **unschedulable**: rejected by some plugins; waits for a [`ClusterEvent`] one of those
//!   plugins declared interest in (then to backoffQ or activeQ), or for 5 minutes (periodic
//!   flush). Pods rejected by PreEnqueue (scheduling gates) also wait here, marked gated, until
//!   an update of the pod lets them in.
//!
//! A popped pod is *in flight* until the scheduler reports the outcome. An event arriving while
//! pods are in flight bumps `move_request_cycle`, so a pod that then fails goes to backoffQ
//! instead of waiting for an event that already happened (upstream's moveRequestCycle).
//!
//! Time is `tokio::time::Instant`, so tests run with a paused clock.
//!
//! The queue keeps `scheduler_pending_pods` and counts `scheduler_queue_incoming_pods_total`
//! ([`crate::metrics`]) as pods move.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Pod;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::cache::pod_key;
use crate::framework::{ClusterEvent, Status};

/// The event of a pod coming back after a failed attempt.
const ATTEMPT_FAILURE: &str = "ScheduleAttemptFailure";

/// How long a pod may sit in the unschedulable map before the periodic flush retries it.
pub const MAX_UNSCHEDULABLE_DURATION: Duration = Duration::from_secs(5 * 60);

/// A pod waiting in the queue and its scheduling history.
#[derive(Clone, Debug)]
pub struct QueuedPodInfo {
    /// The pod (latest version seen).
    pub pod: Arc<Pod>,
    /// When it last entered the queue (or failed): ordering and backoff start.
    pub timestamp: Instant,
    /// When it last entered activeQ, by the wall clock: where its `queued` journey step starts.
    pub active_since: SystemTime,
    /// When it was first popped.
    pub initial_attempt: Option<Instant>,
    /// How many times it has been popped.
    pub attempts: u32,
    /// When it was last popped: the start of its current attempt.
    pub attempt_start: Instant,
    /// The plugins that rejected it in its last attempt (empty: an error, retry on any event).
    pub unschedulable_plugins: BTreeSet<&'static str>,
    /// Set when PreEnqueue rejected it.
    pub gated: Option<Status>,
}

impl QueuedPodInfo {
    /// A new entry for `pod` at `now`.
    pub fn new(pod: Arc<Pod>, now: Instant) -> QueuedPodInfo {
        QueuedPodInfo {
            pod,
            timestamp: now,
            active_since: SystemTime::now(),
            initial_attempt: None,
            attempts: 0,
            attempt_start: now,
            unschedulable_plugins: BTreeSet::new(),
            gated: None,
        }
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        pod_key(&self.pod)
    }
}

/// Where a queued pod waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// Ready to be popped.
    Active,
    /// Backing off.
    Backoff,
    /// Waiting for an event (or gated).
    Unschedulable,
}

impl Place {
    /// Its `queue` label in the metrics.
    fn label(self) -> &'static str {
        match self {
            Place::Active => "active",
            Place::Backoff => "backoff",
            Place::Unschedulable => "unschedulable",
        }
    }
}

/// The `scheduler_pending_pods` series (active, backoff, unschedulable, gated), resolved once.
static PENDING: std::sync::LazyLock<[prometheus_client::metrics::gauge::Gauge; 4]> =
    std::sync::LazyLock::new(|| {
        ["active", "backoff", "unschedulable", "gated"].map(crate::metrics::pending)
    });

impl Entry {
    /// Its `scheduler_pending_pods` series.
    fn pending(&self) -> &'static prometheus_client::metrics::gauge::Gauge {
        let index = match self.place {
            Place::Active => 0,
            Place::Backoff => 1,
            Place::Unschedulable if self.info.gated.is_some() => 3,
            Place::Unschedulable => 2,
        };
        &PENDING[index]
    }
}

/// The QueueSort comparison: whether `a` goes before `b`.
pub type LessFn = Arc<dyn Fn(&QueuedPodInfo, &QueuedPodInfo) -> bool + Send + Sync>;
/// The PreEnqueue check: Success lets the pod into activeQ.
pub type PreEnqueueFn = Arc<dyn Fn(&Pod) -> Status + Send + Sync>;

/// How the queue is set up.
#[derive(Clone)]
pub struct QueueOptions {
    /// The QueueSort comparison.
    pub less: LessFn,
    /// The PreEnqueue plugins of the pod's profile.
    pub pre_enqueue: PreEnqueueFn,
    /// For each plugin, the events that can make a pod it rejected schedulable.
    pub interest: HashMap<&'static str, HashSet<ClusterEvent>>,
    /// Backoff after the first failure.
    pub initial_backoff: Duration,
    /// Backoff cap.
    pub max_backoff: Duration,
}

struct Entry {
    info: QueuedPodInfo,
    place: Place,
    seq: u64,
}

struct HeapItem {
    info: QueuedPodInfo,
    seq: u64,
}

struct InFlight {
    pod: Arc<Pod>,
    deleted: bool,
}

#[derive(Default)]
struct State {
    /// activeQ as a binary heap over `less` (max first); stale items (seq mismatch) are skipped.
    active: Vec<HeapItem>,
    backoff: BinaryHeap<Reverse<(Instant, u64, String)>>,
    entries: HashMap<String, Entry>,
    in_flight: HashMap<String, InFlight>,
    scheduling_cycle: u64,
    move_request_cycle: u64,
    seq: u64,
    closed: bool,
    /// How many `entries` are in [`Place::Unschedulable`] (events skip their scan when none).
    unschedulable: usize,
}

impl State {
    fn insert_entry(&mut self, key: String, entry: Entry) {
        self.unschedulable += usize::from(entry.place == Place::Unschedulable);
        entry.pending().inc();
        if let Some(old) = self.entries.insert(key, entry) {
            self.unschedulable -= usize::from(old.place == Place::Unschedulable);
            old.pending().dec();
        }
    }

    fn remove_entry(&mut self, key: &str) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.unschedulable -= usize::from(entry.place == Place::Unschedulable);
        entry.pending().dec();
        Some(entry)
    }

    /// Forgets every entry (the queue is dropped), so the pending gauges do not keep them.
    fn clear(&mut self) {
        for entry in self.entries.values() {
            entry.pending().dec();
        }
        self.entries.clear();
        self.unschedulable = 0;
    }
}

/// The scheduling queue; see the module docs. Shared by the informer handlers and the loop.
pub struct SchedulingQueue {
    state: Mutex<State>,
    notify: Notify,
    options: QueueOptions,
}

impl SchedulingQueue {
    /// An empty queue.
    pub fn new(options: QueueOptions) -> SchedulingQueue {
        SchedulingQueue {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            options,
        }
    }

    /// The backoff after `attempts` failures: initial * 2^(attempts-1), capped.
    pub fn backoff_duration(&self, attempts: u32) -> Duration {
        let mut duration = self.options.initial_backoff;
        for _ in 1..attempts {
            duration = duration.saturating_mul(2);
            if duration >= self.options.max_backoff {
                return self.options.max_backoff;
            }
        }
        duration.min(self.options.max_backoff)
    }

    fn backoff_expiry(&self, info: &QueuedPodInfo) -> Instant {
        info.timestamp + self.backoff_duration(info.attempts)
    }

    fn push_active(
        &self,
        state: &mut State,
        key: String,
        mut info: QueuedPodInfo,
        event: &'static str,
    ) {
        crate::metrics::incoming(event, Place::Active.label());
        info.active_since = SystemTime::now();
        state.seq += 1;
        let seq = state.seq;
        heap_push(
            &mut state.active,
            HeapItem {
                info: info.clone(),
                seq,
            },
            &self.options.less,
        );
        state.insert_entry(
            key,
            Entry {
                info,
                place: Place::Active,
                seq,
            },
        );
        self.notify.notify_one();
    }

    fn push_backoff(
        &self,
        state: &mut State,
        key: String,
        info: QueuedPodInfo,
        event: &'static str,
    ) {
        crate::metrics::incoming(event, Place::Backoff.label());
        state.seq += 1;
        let seq = state.seq;
        state
            .backoff
            .push(Reverse((self.backoff_expiry(&info), seq, key.clone())));
        state.insert_entry(
            key,
            Entry {
                info,
                place: Place::Backoff,
                seq,
            },
        );
    }

    fn push_unschedulable(
        &self,
        state: &mut State,
        key: String,
        info: QueuedPodInfo,
        event: &'static str,
    ) {
        crate::metrics::incoming(event, Place::Unschedulable.label());
        state.seq += 1;
        let seq = state.seq;
        state.insert_entry(
            key,
            Entry {
                info,
                place: Place::Unschedulable,
                seq,
            },
        );
    }

    /// Active if its backoff is over, backoffQ otherwise.
    fn push_active_or_backoff(
        &self,
        state: &mut State,
        key: String,
        info: QueuedPodInfo,
        now: Instant,
        event: &'static str,
    ) {
        if info.attempts > 0 && self.backoff_expiry(&info) > now {
            self.push_backoff(state, key, info, event);
        } else {
            self.push_active(state, key, info, event);
        }
    }

    /// A new pending pod from the watch. PreEnqueue may park it as gated.
    pub fn add(&self, pod: Arc<Pod>) {
        let key = pod_key(&pod);
        let mut state = self.state.lock();
        if state.entries.contains_key(&key) || state.in_flight.contains_key(&key) {
            drop(state);
            return self.update(pod);
        }
        let info = QueuedPodInfo::new(pod, Instant::now());
        self.enqueue_checked(&mut state, key, info, "PodAdd");
    }

    /// Runs PreEnqueue: activeQ if it passes, parked as gated otherwise.
    fn enqueue_checked(
        &self,
        state: &mut State,
        key: String,
        mut info: QueuedPodInfo,
        event: &'static str,
    ) {
        let status = (self.options.pre_enqueue)(&info.pod);
        if status.is_success() {
            info.gated = None;
            self.push_active(state, key, info, event);
        } else {
            info.gated = Some(status);
            self.push_unschedulable(state, key, info, event);
        }
    }

    /// A pending pod changed. A gated pod is re-checked; an unschedulable pod whose spec,
    /// labels or annotations changed is retried (status-only updates, like our own condition
    /// patch, are ignored as upstream's `isPodUpdated` does).
    pub fn update(&self, pod: Arc<Pod>) {
        let key = pod_key(&pod);
        let now = Instant::now();
        let mut state = self.state.lock();
        if let Some(flight) = state.in_flight.get_mut(&key) {
            flight.pod = pod;
            return;
        }
        let Some(entry) = state.entries.get_mut(&key) else {
            drop(state);
            return self.add(pod);
        };
        let changed = spec_changed(&entry.info.pod, &pod);
        entry.info.pod = pod;
        if entry.place != Place::Unschedulable {
            return;
        }
        if entry.info.gated.is_some() {
            let Some(entry) = state.remove_entry(&key) else {
                return;
            };
            self.enqueue_checked(&mut state, key, entry.info, "PodUpdate");
        } else if changed {
            let Some(entry) = state.remove_entry(&key) else {
                return;
            };
            self.push_active_or_backoff(&mut state, key, entry.info, now, "PodUpdate");
        }
    }

    /// A pending pod was deleted or got bound: drop it wherever it is.
    pub fn delete(&self, key: &str) {
        let mut state = self.state.lock();
        state.remove_entry(key);
        if let Some(flight) = state.in_flight.get_mut(key) {
            flight.deleted = true;
        }
    }

    /// Waits for the next pod to schedule; `None` once closed.
    pub async fn pop(&self) -> Option<QueuedPodInfo> {
        loop {
            {
                let mut state = self.state.lock();
                while let Some(item) = heap_pop(&mut state.active, &self.options.less) {
                    let key = item.info.key();
                    let valid = state
                        .entries
                        .get(&key)
                        .is_some_and(|e| e.seq == item.seq && e.place == Place::Active);
                    if !valid {
                        continue;
                    }
                    let Some(entry) = state.remove_entry(&key) else {
                        continue;
                    };
                    let mut info = entry.info;
                    info.attempts += 1;
                    info.attempt_start = Instant::now();
                    info.initial_attempt.get_or_insert(info.attempt_start);
                    state.scheduling_cycle += 1;
                    state.in_flight.insert(
                        key,
                        InFlight {
                            pod: info.pod.clone(),
                            deleted: false,
                        },
                    );
                    return Some(info);
                }
                if state.closed {
                    return None;
                }
            }
            self.notify.notified().await;
        }
    }

    /// The current scheduling cycle number (bumped by each pop).
    pub fn scheduling_cycle(&self) -> u64 {
        self.state.lock().scheduling_cycle
    }

    /// The pod's cycle ended without a retry (scheduled, or dropped).
    pub fn done(&self, key: &str) {
        self.state.lock().in_flight.remove(key);
    }

    /// The pod failed in cycle `cycle`: park it until an event of interest (or backoff if an
    /// event already came during the cycle, or if no plugin rejected it: an error).
    pub fn add_unschedulable(&self, mut info: QueuedPodInfo, cycle: u64) {
        let key = info.key();
        let now = Instant::now();
        let mut state = self.state.lock();
        let Some(flight) = state.in_flight.remove(&key) else {
            // Not popped from here (or already handled).
            if state.entries.contains_key(&key) {
                return;
            }
            return self.push_backoff(&mut state, key, info, ATTEMPT_FAILURE);
        };
        if flight.deleted || state.entries.contains_key(&key) {
            return;
        }
        info.pod = flight.pod;
        info.timestamp = now;
        if info.unschedulable_plugins.is_empty() || state.move_request_cycle >= cycle {
            self.push_backoff(&mut state, key, info, ATTEMPT_FAILURE);
        } else {
            self.push_unschedulable(&mut state, key, info, ATTEMPT_FAILURE);
        }
    }

    /// Moves backoffQ pods whose backoff is over to activeQ (called every second).
    pub fn flush_backoff_completed(&self) {
        let now = Instant::now();
        let mut state = self.state.lock();
        while let Some(Reverse((expiry, seq, key))) = state.backoff.peek().cloned() {
            if expiry > now {
                break;
            }
            state.backoff.pop();
            let valid = state
                .entries
                .get(&key)
                .is_some_and(|e| e.seq == seq && e.place == Place::Backoff);
            if !valid {
                continue;
            }
            if let Some(entry) = state.remove_entry(&key) {
                self.push_active(&mut state, key, entry.info, "BackoffComplete");
            }
        }
    }

    /// Retries pods unschedulable for longer than [`MAX_UNSCHEDULABLE_DURATION`] (called every
    /// 30 s).
    pub fn flush_unschedulable_leftover(&self) {
        let now = Instant::now();
        let mut state = self.state.lock();
        let stale: Vec<String> = state
            .entries
            .iter()
            .filter(|(_, e)| {
                e.place == Place::Unschedulable
                    && e.info.gated.is_none()
                    && now.duration_since(e.info.timestamp) >= MAX_UNSCHEDULABLE_DURATION
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            if let Some(entry) = state.remove_entry(&key) {
                self.push_active_or_backoff(
                    &mut state,
                    key,
                    entry.info,
                    now,
                    "UnschedulableTimeout",
                );
            }
        }
    }

    /// A cluster event happened: retry the unschedulable pods one of whose rejecting plugins
    /// cares about it.
    pub fn on_event(&self, event: ClusterEvent) {
        let now = Instant::now();
        let mut state = self.state.lock();
        state.move_request_cycle = state.scheduling_cycle;
        if state.unschedulable == 0 {
            return;
        }
        let interest = &self.options.interest;
        let moved: Vec<String> = state
            .entries
            .iter()
            .filter(|(_, e)| {
                e.place == Place::Unschedulable
                    && e.info.gated.is_none()
                    && (e.info.unschedulable_plugins.is_empty()
                        || e.info.unschedulable_plugins.iter().any(|p| {
                            interest
                                .get(p)
                                .is_some_and(|events| events.contains(&event))
                        }))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in moved {
            if let Some(entry) = state.remove_entry(&key) {
                self.push_active_or_backoff(&mut state, key, entry.info, now, event.label());
            }
        }
    }

    /// Where `key` waits, if queued.
    pub fn place(&self, key: &str) -> Option<Place> {
        self.state.lock().entries.get(key).map(|e| e.place)
    }

    /// How many pods wait in each place: (active, backoff, unschedulable).
    pub fn len(&self) -> (usize, usize, usize) {
        let state = self.state.lock();
        let count = |p: Place| state.entries.values().filter(|e| e.place == p).count();
        (
            count(Place::Active),
            count(Place::Backoff),
            count(Place::Unschedulable),
        )
    }

    /// Whether no pod waits anywhere.
    pub fn is_empty(&self) -> bool {
        self.state.lock().entries.is_empty()
    }

    /// Wakes `pop` for good: it returns `None` once activeQ is empty.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.notify.notify_one();
    }
}

impl Drop for SchedulingQueue {
    fn drop(&mut self) {
        self.state.get_mut().clear();
    }
}

fn spec_changed(old: &Pod, new: &Pod) -> bool {
    old.spec != new.spec
        || old.metadata.labels != new.metadata.labels
        || old.metadata.annotations != new.metadata.annotations
}

/// `less`, with insertion order breaking ties so equal pods pop first-in first-out.
fn before(a: &HeapItem, b: &HeapItem, less: &LessFn) -> bool {
    less(&a.info, &b.info) || (!less(&b.info, &a.info) && a.seq < b.seq)
}

fn heap_push(heap: &mut Vec<HeapItem>, item: HeapItem, less: &LessFn) {
    heap.push(item);
    let mut i = heap.len() - 1;
    while i > 0 {
        let parent = (i - 1) / 2;
        if before(&heap[i], &heap[parent], less) {
            heap.swap(i, parent);
            i = parent;
        } else {
            break;
        }
    }
}

fn heap_pop(heap: &mut Vec<HeapItem>, less: &LessFn) -> Option<HeapItem> {
    if heap.is_empty() {
        return None;
    }
    let last = heap.len() - 1;
    heap.swap(0, last);
    let top = heap.pop();
    let mut i = 0;
    loop {
        let (l, r) = (2 * i + 1, 2 * i + 2);
        let mut first = i;
        if l < heap.len() && before(&heap[l], &heap[first], less) {
            first = l;
        }
        if r < heap.len() && before(&heap[r], &heap[first], less) {
            first = r;
        }
        if first == i {
            break;
        }
        heap.swap(i, first);
        i = first;
    }
    top
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::PreEnqueue;
    use crate::plugins::priority_sort::less;
    use crate::plugins::scheduling_gates::SchedulingGates;
    use crate::testing::make_pod;

    fn queue() -> SchedulingQueue {
        let mut interest: HashMap<&'static str, HashSet<ClusterEvent>> = HashMap::new();
        interest.insert(
            "NodeResourcesFit",
            [ClusterEvent::NodeAdd, ClusterEvent::AssignedPodDelete]
                .into_iter()
                .collect(),
        );
        interest.insert(
            "TaintToleration",
            [ClusterEvent::NodeAdd, ClusterEvent::NodeTaintChange]
                .into_iter()
                .collect(),
        );
        SchedulingQueue::new(QueueOptions {
            less: Arc::new(less),
            pre_enqueue: Arc::new(|pod: &Pod| SchedulingGates.pre_enqueue(pod)),
            interest,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
        })
    }

    async fn pop_now(q: &SchedulingQueue) -> Option<QueuedPodInfo> {
        tokio::time::timeout(Duration::from_millis(1), q.pop())
            .await
            .ok()
            .flatten()
    }

    fn name(info: &QueuedPodInfo) -> &str {
        info.pod.metadata.name.as_deref().unwrap_or("")
    }

    #[tokio::test(start_paused = true)]
    async fn pops_by_priority_then_age() {
        let q = queue();
        q.add(Arc::new(make_pod("low").priority(1).pod()));
        tokio::time::advance(Duration::from_millis(10)).await;
        q.add(Arc::new(make_pod("high").priority(10).pod()));
        tokio::time::advance(Duration::from_millis(10)).await;
        q.add(Arc::new(make_pod("low2").priority(1).pod()));
        let order: Vec<String> = [pop_now(&q).await, pop_now(&q).await, pop_now(&q).await]
            .into_iter()
            .map(|i| name(&i.expect("a pod")).to_string())
            .collect();
        assert_eq!(order, ["high", "low", "low2"]);
        assert!(pop_now(&q).await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_to_ten_seconds() {
        let q = queue();
        let want = [1, 2, 4, 8, 10, 10];
        let got: Vec<u64> = (1..=6).map(|a| q.backoff_duration(a).as_secs()).collect();
        assert_eq!(got, want);

        // Through the queue: each failure waits exactly its backoff.
        q.add(Arc::new(make_pod("p").pod()));
        for seconds in want {
            let info = pop_now(&q).await.expect("active");
            let cycle = q.scheduling_cycle();
            q.add_unschedulable(info, cycle); // no plugins: an error, goes to backoff
            assert_eq!(q.place("default/p"), Some(Place::Backoff));
            tokio::time::advance(Duration::from_millis(seconds * 1000 - 1)).await;
            q.flush_backoff_completed();
            assert_eq!(
                q.place("default/p"),
                Some(Place::Backoff),
                "still backing off before {seconds}s"
            );
            tokio::time::advance(Duration::from_millis(1)).await;
            q.flush_backoff_completed();
            assert_eq!(
                q.place("default/p"),
                Some(Place::Active),
                "active after {seconds}s"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn unschedulable_pods_move_on_events_their_plugins_care_about() {
        let q = queue();
        q.add(Arc::new(make_pod("cpu").pod()));
        q.add(Arc::new(make_pod("taint").pod()));
        for _ in 0..2 {
            let mut info = pop_now(&q).await.expect("pod");
            let plugin = if name(&info) == "cpu" {
                "NodeResourcesFit"
            } else {
                "TaintToleration"
            };
            info.unschedulable_plugins.insert(plugin);
            let cycle = q.scheduling_cycle();
            q.add_unschedulable(info, cycle);
        }
        assert_eq!(q.len(), (0, 0, 2));
        // Only TaintToleration cares about taint changes.
        tokio::time::advance(Duration::from_secs(2)).await;
        q.on_event(ClusterEvent::NodeTaintChange);
        assert_eq!(q.place("default/taint"), Some(Place::Active));
        assert_eq!(q.place("default/cpu"), Some(Place::Unschedulable));
        // A node add moves the other one; it has waited out its backoff, so straight to active.
        q.on_event(ClusterEvent::NodeAdd);
        assert_eq!(q.place("default/cpu"), Some(Place::Active));
    }

    #[tokio::test(start_paused = true)]
    async fn event_during_the_cycle_sends_the_pod_to_backoff() {
        let q = queue();
        q.add(Arc::new(make_pod("p").pod()));
        let mut info = pop_now(&q).await.expect("pod");
        let cycle = q.scheduling_cycle();
        q.on_event(ClusterEvent::NodeAdd); // a node came while we were filtering
        info.unschedulable_plugins.insert("NodeResourcesFit");
        q.add_unschedulable(info, cycle);
        assert_eq!(q.place("default/p"), Some(Place::Backoff));
    }

    #[tokio::test(start_paused = true)]
    async fn leftover_unschedulable_pods_are_flushed_after_five_minutes() {
        let q = queue();
        q.add(Arc::new(make_pod("p").pod()));
        let mut info = pop_now(&q).await.expect("pod");
        info.unschedulable_plugins.insert("NodeResourcesFit");
        let cycle = q.scheduling_cycle();
        q.add_unschedulable(info, cycle);
        tokio::time::advance(Duration::from_secs(299)).await;
        q.flush_unschedulable_leftover();
        assert_eq!(q.place("default/p"), Some(Place::Unschedulable));
        tokio::time::advance(Duration::from_secs(1)).await;
        q.flush_unschedulable_leftover();
        assert_eq!(q.place("default/p"), Some(Place::Active));
    }

    #[tokio::test(start_paused = true)]
    async fn gated_pods_stay_out_until_their_gates_are_removed() {
        let q = queue();
        q.add(Arc::new(
            make_pod("p").scheduling_gate("example.com/wait").pod(),
        ));
        assert_eq!(q.place("default/p"), Some(Place::Unschedulable));
        q.on_event(ClusterEvent::NodeAdd);
        assert!(
            pop_now(&q).await.is_none(),
            "events do not release gated pods"
        );
        q.update(Arc::new(make_pod("p").pod()));
        assert_eq!(name(&pop_now(&q).await.expect("released")), "p");
    }

    #[tokio::test(start_paused = true)]
    async fn deleted_and_in_flight_pods() {
        let q = queue();
        q.add(Arc::new(make_pod("p").pod()));
        q.delete("default/p");
        assert!(pop_now(&q).await.is_none());
        q.add(Arc::new(make_pod("q").pod()));
        let info = pop_now(&q).await.expect("q");
        // An update while in flight does not enqueue a second copy; a delete drops the retry.
        q.update(Arc::new(make_pod("q").label("a", "b").pod()));
        assert!(q.is_empty());
        q.delete("default/q");
        let cycle = q.scheduling_cycle();
        q.add_unschedulable(info, cycle);
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn pop_waits_for_a_pod() {
        let q = Arc::new(queue());
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.pop().await.map(|i| i.key()) }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        q.add(Arc::new(make_pod("late").pod()));
        assert_eq!(
            waiter.await.expect("join"),
            Some("default/late".to_string())
        );
    }
}
