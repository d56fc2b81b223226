//! A work queue as client-go's `workqueue`: a key added many times while waiting is processed
//! once; a key being processed is never handed to a second worker — adds during processing are
//! kept and the key comes back after [`Queue::done`]; failed keys come back with a per-key
//! exponential backoff. A key added for later waits once, for the earliest time asked (client-go's
//! delaying queue), so requeues asked by many syncs do not pile up.
//!
//! A queue run by [`run_workers`] reports client-go's workqueue metrics under the controller's
//! name ([`metrics`]): adds, depth, time waiting, time worked, retries.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::ErrorChain;

/// Backoff of [`Queue::add_rate_limited`]: 5 ms doubling up to this cap (upstream caps at
/// 1000 s; a minute keeps a broken object from going quiet for long).
const MAX_BACKOFF: Duration = Duration::from_secs(60);
const BASE_BACKOFF: Duration = Duration::from_millis(5);

struct State<T> {
    /// Items waiting, with when they were queued.
    queue: VecDeque<(T, Instant)>,
    /// Waiting to be processed (in `queue`, or to be re-queued when its processing ends).
    dirty: HashSet<T>,
    /// Items being processed, with when their processing started.
    processing: HashMap<T, Instant>,
    failures: HashMap<T, u32>,
    /// Items added for later, with when they are due (client-go's `waitingForQueue`).
    waiting: HashMap<T, tokio::time::Instant>,
    shut_down: bool,
}

/// A de-duplicating work queue shared by the event handlers (producers) and the workers.
pub struct Queue<T> {
    state: Mutex<State<T>>,
    notify: Notify,
    /// Set once the queue has a name ([`Queue::instrument`]).
    metrics: OnceLock<metrics::QueueMetrics>,
}

impl<T: Clone + Eq + Hash + Send + 'static> Queue<T> {
    /// An empty queue.
    pub fn new() -> Arc<Queue<T>> {
        Arc::new(Queue {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashMap::new(),
                failures: HashMap::new(),
                waiting: HashMap::new(),
                shut_down: false,
            }),
            notify: Notify::new(),
            metrics: OnceLock::new(),
        })
    }

    /// Reports this queue's metrics under `name` from now on (the first name given stays).
    pub fn instrument(&self, name: &'static str) {
        let metrics = self
            .metrics
            .get_or_init(|| metrics::QueueMetrics::new(name));
        metrics.depth.set(self.len() as i64);
    }

    /// Appends `item` to the waiting line, now.
    fn push(&self, state: &mut State<T>, item: T) {
        state.queue.push_back((item, Instant::now()));
        if let Some(metrics) = self.metrics.get() {
            metrics.depth.set(state.queue.len() as i64);
        }
    }

    /// Queues `item` unless it is already waiting.
    pub fn add(&self, item: T) {
        let mut state = self.state.lock();
        if state.shut_down || !state.dirty.insert(item.clone()) {
            return;
        }
        if let Some(metrics) = self.metrics.get() {
            metrics.adds.inc();
        }
        if !state.processing.contains_key(&item) {
            self.push(&mut state, item);
            drop(state);
            self.notify.notify_one();
        }
    }

    /// Queues `item` after `delay`, unless it already waits to be queued sooner; if it waits
    /// for later, it now waits for this earlier time instead.
    pub fn add_after(self: &Arc<Self>, item: T, delay: Duration) {
        if delay.is_zero() {
            return self.add(item);
        }
        let due = tokio::time::Instant::now() + delay;
        {
            let mut state = self.state.lock();
            if state.shut_down || state.waiting.get(&item).is_some_and(|d| *d <= due) {
                return;
            }
            state.waiting.insert(item.clone(), due);
        }
        let queue = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep_until(due).await;
            let Some(queue) = queue.upgrade() else { return };
            // A sooner add_after took this one's place: it has queued the item already.
            let mine = {
                let mut state = queue.state.lock();
                let mine = state.waiting.get(&item) == Some(&due);
                if mine {
                    state.waiting.remove(&item);
                }
                mine
            };
            if mine {
                queue.add(item);
            }
        });
    }

    /// Queues `item` after its backoff, which doubles with each failure until [`Queue::forget`].
    pub fn add_rate_limited(self: &Arc<Self>, item: T) {
        let failures = {
            let mut state = self.state.lock();
            let failures = state.failures.entry(item.clone()).or_insert(0);
            *failures += 1;
            *failures
        };
        if let Some(metrics) = self.metrics.get() {
            metrics.retries.inc();
        }
        self.add_after(item, backoff(failures));
    }

    /// Clears `item`'s failure count (after a success).
    pub fn forget(&self, item: &T) {
        self.state.lock().failures.remove(item);
    }

    /// The next item, waiting for one; `None` once shut down. Call [`Queue::done`] after.
    pub async fn get(&self) -> Option<T> {
        loop {
            let notified = self.notify.notified();
            {
                let mut state = self.state.lock();
                if let Some((item, queued)) = state.queue.pop_front() {
                    let now = Instant::now();
                    if let Some(metrics) = self.metrics.get() {
                        metrics.depth.set(state.queue.len() as i64);
                        metrics
                            .queue_duration
                            .observe(now.duration_since(queued).as_secs_f64());
                    }
                    state.dirty.remove(&item);
                    state.processing.insert(item.clone(), now);
                    // Another item may be waiting for another worker.
                    if !state.queue.is_empty() {
                        self.notify.notify_one();
                    }
                    return Some(item);
                }
                if state.shut_down {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Ends the processing of `item`; if it was added meanwhile, it is queued again.
    pub fn done(&self, item: &T) {
        let mut state = self.state.lock();
        let started = state.processing.remove(item);
        if let (Some(metrics), Some(started)) = (self.metrics.get(), started) {
            metrics
                .work_duration
                .observe(started.elapsed().as_secs_f64());
        }
        if state.dirty.contains(item) {
            self.push(&mut state, item.clone());
            drop(state);
            self.notify.notify_one();
        }
    }

    /// Wakes every worker with `None`.
    pub fn shut_down(&self) {
        self.state.lock().shut_down = true;
        self.notify.notify_waiters();
    }

    /// Items waiting (for tests and metrics).
    pub fn len(&self) -> usize {
        self.state.lock().queue.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn backoff(failures: u32) -> Duration {
    let factor = 1u32
        .checked_shl(failures.saturating_sub(1))
        .unwrap_or(u32::MAX);
    BASE_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
}

/// A controller driven by a work queue: the keys it reconciles, its queue, and the sync of one
/// key. [`run`] gives it workers; `reconciler.queue().shut_down()` stops them.
pub trait Reconciler: Send + Sync + 'static {
    /// What the queue holds (`namespace/name`, or a namespace's name).
    type Key: Clone + Eq + Hash + Send + Sync + std::fmt::Debug + 'static;
    /// What a sync fails with ([`crate::Error`], or the controller's own enum); logged with its
    /// sources, and the key retried with backoff.
    type Error: std::error::Error + Send + Sync + 'static;
    /// The controller's name in logs.
    const NAME: &'static str;
    /// The queue its event handlers fill.
    fn queue(&self) -> &Arc<Queue<Self::Key>>;
    /// Brings one key's objects in line; `Ok(Some(delay))` asks to see the key again later.
    fn reconcile(
        self: Arc<Self>,
        key: Self::Key,
    ) -> impl std::future::Future<Output = Result<Option<Duration>, Self::Error>> + Send;
}

/// Runs `workers` workers of `reconciler` until its queue shuts down.
pub async fn run<R: Reconciler>(reconciler: Arc<R>, workers: usize) {
    let queue = reconciler.queue().clone();
    run_workers(queue, workers, R::NAME, move |key| {
        reconciler.clone().reconcile(key)
    })
    .await;
}

/// Runs `workers` workers over `queue` until it shuts down: each takes a key, runs `sync`, and
/// on error puts the key back with backoff; `Ok(Some(delay))` asks to see the key again later.
pub async fn run_workers<T, F, Fut, E>(
    queue: Arc<Queue<T>>,
    workers: usize,
    name: &'static str,
    sync: F,
) where
    T: Clone + Eq + Hash + Send + Sync + std::fmt::Debug + 'static,
    F: Fn(T) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<Option<Duration>, E>> + Send,
    E: std::error::Error + Send + Sync + 'static,
{
    queue.instrument(name);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let queue = queue.clone();
        let sync = sync.clone();
        tasks.spawn(async move {
            while let Some(key) = queue.get().await {
                match sync(key.clone()).await {
                    Ok(again) => {
                        queue.forget(&key);
                        if let Some(delay) = again {
                            queue.add_after(key.clone(), delay);
                        }
                    }
                    Err(error) => {
                        tracing::info!(controller = name, ?key, error = %ErrorChain(&error), "sync failed, retrying");
                        queue.add_rate_limited(key.clone());
                    }
                }
                queue.done(&key);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// client-go's workqueue metrics (`workqueue_*{name}`), one series per queue name, for the
/// whole process as client-go's global metrics provider; [`register`](metrics::register) adds
/// them to a registry.
pub mod metrics {
    use std::sync::LazyLock;

    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
    use prometheus_client::registry::Registry;

    /// The label of every workqueue series.
    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    pub struct QueueName {
        /// The queue's (its controller's) name.
        pub name: &'static str,
    }

    fn durations() -> Histogram {
        // client-go's buckets: 10 ns to 10 s by powers of ten.
        Histogram::new(exponential_buckets(10e-9, 10.0, 10))
    }

    type Histograms = Family<QueueName, Histogram, fn() -> Histogram>;

    struct Families {
        adds: Family<QueueName, Counter>,
        depth: Family<QueueName, Gauge>,
        queue_duration: Histograms,
        work_duration: Histograms,
        retries: Family<QueueName, Counter>,
    }

    static FAMILIES: LazyLock<Families> = LazyLock::new(|| Families {
        adds: Family::default(),
        depth: Family::default(),
        queue_duration: Family::new_with_constructor(durations),
        work_duration: Family::new_with_constructor(durations),
        retries: Family::default(),
    });

    /// One queue's series.
    pub(super) struct QueueMetrics {
        pub(super) adds: Counter,
        pub(super) depth: Gauge,
        pub(super) queue_duration: Histogram,
        pub(super) work_duration: Histogram,
        pub(super) retries: Counter,
    }

    impl QueueMetrics {
        pub(super) fn new(name: &'static str) -> QueueMetrics {
            let label = QueueName { name };
            let families = &*FAMILIES;
            QueueMetrics {
                adds: families.adds.get_or_create(&label).clone(),
                depth: families.depth.get_or_create(&label).clone(),
                queue_duration: families.queue_duration.get_or_create(&label).clone(),
                work_duration: families.work_duration.get_or_create(&label).clone(),
                retries: families.retries.get_or_create(&label).clone(),
            }
        }
    }

    /// Adds every queue's metrics to `registry`, under client-go's names.
    pub fn register(registry: &mut Registry) {
        let workqueue = registry.sub_registry_with_prefix("workqueue");
        let families = &*FAMILIES;
        workqueue.register(
            "adds",
            "Total number of adds handled by workqueue",
            families.adds.clone(),
        );
        workqueue.register(
            "depth",
            "Current depth of workqueue",
            families.depth.clone(),
        );
        workqueue.register(
            "queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested.",
            families.queue_duration.clone(),
        );
        workqueue.register(
            "work_duration_seconds",
            "How long in seconds processing an item from workqueue takes.",
            families.work_duration.clone(),
        );
        workqueue.register(
            "retries",
            "Total number of retries handled by workqueue",
            families.retries.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn adds_while_waiting_collapse() {
        let q = Queue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        assert_eq!(q.get().await, Some("a"));
        assert_eq!(q.get().await, Some("b"));
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn a_key_in_processing_is_not_handed_out_twice() {
        let q = Queue::new();
        q.add("a");
        let a = q.get().await;
        q.add("a");
        assert!(q.is_empty(), "re-added while processing: held back");
        q.done(&"a");
        assert_eq!(a, Some("a"));
        assert_eq!(q.get().await, Some("a"), "comes back after done");
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limited_adds_back_off() {
        let q = Queue::new();
        q.add_rate_limited("a");
        q.add_rate_limited("a");
        q.add_rate_limited("a");
        // Third failure: 20 ms; the first two (5, 10 ms) collapse into the same waiting key.
        tokio::time::sleep(Duration::from_millis(6)).await;
        assert_eq!(q.len(), 1);
        assert_eq!(backoff(1), Duration::from_millis(5));
        assert_eq!(backoff(3), Duration::from_millis(20));
        assert_eq!(backoff(40), MAX_BACKOFF);
        q.forget(&"a");
        assert!(!q.state.lock().failures.contains_key("a"));
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_adds_wait_once_for_the_earliest_time() {
        let q = Queue::new();
        q.add_after("a", Duration::from_secs(10));
        q.add_after("a", Duration::from_secs(20));
        q.add_after("a", Duration::from_secs(5));
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(q.get().await, Some("a"), "due at the earliest time");
        q.done(&"a");
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(q.is_empty(), "the later times were folded into it");
    }

    #[tokio::test]
    async fn shut_down_wakes_workers() {
        let q: Arc<Queue<u32>> = Queue::new();
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.get().await }
        });
        tokio::task::yield_now().await;
        q.shut_down();
        assert_eq!(waiter.await.expect("join"), None);
    }

    #[tokio::test]
    async fn named_queues_report_client_gos_workqueue_metrics() {
        let q = Queue::new();
        q.instrument("metrics-test");
        q.add("a");
        q.add("a");
        q.add("b");
        let a = q.get().await.expect("a");
        q.add_rate_limited(a);
        q.done(&a);
        let mut registry = prometheus_client::registry::Registry::default();
        metrics::register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        for line in [
            r#"workqueue_adds_total{name="metrics-test"} 2"#,
            r#"workqueue_depth{name="metrics-test"} 1"#,
            r#"workqueue_queue_duration_seconds_count{name="metrics-test"} 1"#,
            r#"workqueue_work_duration_seconds_count{name="metrics-test"} 1"#,
            r#"workqueue_retries_total{name="metrics-test"} 1"#,
        ] {
            assert!(text.contains(line), "no {line} in {text}");
        }
    }
}
