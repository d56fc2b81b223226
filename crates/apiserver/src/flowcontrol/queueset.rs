//! A limited priority level's queues (upstream's `fairqueuing/queueset`): at most
//! `concurrency` requests execute at once; the others wait in one of `queues` FIFO queues,
//! chosen by shuffle sharding — the flow's hash deals a hand of `hand_size` queues
//! ([`deal`]) and the request joins the shortest of them — and a queue holding
//! `queue_length_limit` requests refuses more. A level whose limit response is `Reject` has
//! no queues: a request without a free seat is refused at once.
//!
//! Fair queuing here is start-time fair queuing (SFQ), a simplification of upstream's virtual
//! time: a request takes the seats its work estimate says ([`super::estimate`]: one, or more
//! for a LIST of many objects), and counts that many units of work. A request entering queue
//! `q` gets the start tag `max(V, last_finish(q))`, and `last_finish(q)` becomes that tag plus
//! its seats; free seats go to the queue head with the smallest tag once they are enough for
//! it (a wide head waits for them: nothing tagged after it passes it), and its tag becomes the
//! virtual time `V`. A flow that floods its queues thus waits behind its own requests while a
//! light flow's request, tagged near `V`, is served next. Upstream also weighs requests by
//! their duration and lets levels lend and borrow seats; ferry does neither.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;

/// How a limited level takes requests it cannot run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSetConfig {
    /// Seats: how many of the level's requests execute at once (upstream's nominal
    /// concurrency limit).
    pub concurrency: usize,
    /// Queues; 0 for a level that rejects instead of queuing.
    pub queues: usize,
    /// How many queues a flow's hand holds.
    pub hand_size: usize,
    /// Requests a queue holds at most.
    pub queue_length_limit: usize,
}

/// Why a request was refused, as upstream's `apiserver_flowcontrol_rejected_requests_total`
/// labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The queue the request was dealt was full.
    #[error("queue-full")]
    QueueFull,
    /// The level rejects instead of queuing and had no free seat.
    #[error("concurrency-limit")]
    ConcurrencyLimit,
    /// The request waited longer than the queue wait limit.
    #[error("time-out")]
    TimeOut,
    /// The request's client went away while it waited.
    #[error("cancelled")]
    Cancelled,
}

impl Rejection {
    /// The `reason` label of the rejected-requests metric.
    pub fn reason(self) -> &'static str {
        match self {
            Rejection::QueueFull => "queue-full",
            Rejection::ConcurrencyLimit => "concurrency-limit",
            Rejection::TimeOut => "time-out",
            Rejection::Cancelled => "cancelled",
        }
    }
}

/// Counters of a level since it was made (upstream's `dump_priority_levels` columns).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests waiting in a queue now.
    pub waiting: usize,
    /// Requests executing now.
    pub executing: usize,
    /// Seats those requests hold.
    pub seats_in_use: usize,
    /// Queues holding or executing requests now.
    pub active_queues: usize,
    /// Requests given a seat so far.
    pub dispatched: u64,
    /// Requests refused because their queue was full or no seat was free.
    pub rejected: u64,
    /// Requests that waited too long.
    pub timed_out: u64,
    /// Requests whose client went away while they waited.
    pub cancelled: u64,
}

struct Waiter {
    id: u64,
    start_tag: u64,
    /// The seats it takes.
    width: usize,
    wake: oneshot::Sender<()>,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Waiter>,
    executing: usize,
    /// The start tag of the next request to join (SFQ's finish tag of the last one).
    last_finish: u64,
}

// Lock order: a `QueueSet`'s state is the only lock taken while dispatching; wakers are
// fired under it (a oneshot send does not block).
struct State {
    config: QueueSetConfig,
    queues: Vec<Queue>,
    virtual_time: u64,
    next_id: u64,
    counts: Counts,
}

impl State {
    /// Gives free seats to the queue heads with the smallest start tags.
    fn dispatch(&mut self) {
        while self.counts.seats_in_use < self.config.concurrency {
            let Some((width, index)) = self
                .queues
                .iter()
                .enumerate()
                .filter_map(|(i, q)| q.waiting.front().map(|w| (w.start_tag, w.width, i)))
                .min()
                .map(|(_, width, i)| (width, i))
            else {
                return;
            };
            if self.counts.seats_in_use + width > self.config.concurrency {
                // The next in line needs more seats than are free: it waits for them.
                return;
            }
            let queue = &mut self.queues[index];
            let Some(waiter) = queue.waiting.pop_front() else {
                return;
            };
            self.counts.waiting -= 1;
            self.virtual_time = self.virtual_time.max(waiter.start_tag);
            // The seat is the waiter's even if it is going away: its `WaitGuard` (or the end
            // of its wait) finds it dispatched and gives the seat back.
            let _ = waiter.wake.send(());
            queue.executing += 1;
            self.counts.executing += 1;
            self.counts.seats_in_use += waiter.width;
            self.counts.dispatched += 1;
        }
    }
}

/// The queues and seats of one limited priority level.
pub struct QueueSet {
    state: Mutex<State>,
}

/// The seats held by an executing request; dropping it frees them for the next.
pub struct Seat {
    set: Arc<QueueSet>,
    queue: Option<usize>,
    width: usize,
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut state = self.set.state.lock();
        state.counts.executing -= 1;
        state.counts.seats_in_use -= self.width;
        if let Some(queue) = self.queue.and_then(|q| state.queues.get_mut(q)) {
            queue.executing -= 1;
        }
        state.dispatch();
    }
}

impl QueueSet {
    /// Queues as `config` says.
    pub fn new(config: QueueSetConfig) -> Arc<QueueSet> {
        let set = Arc::new(QueueSet {
            state: Mutex::new(State {
                config,
                queues: Vec::new(),
                virtual_time: 0,
                next_id: 0,
                counts: Counts::default(),
            }),
        });
        set.reconfigure(config);
        set
    }

    /// Takes a new configuration (the server's limit or the level's spec changed). Queues
    /// beyond a smaller count drain but take no new requests.
    pub fn reconfigure(&self, config: QueueSetConfig) {
        let mut state = self.state.lock();
        state.config = config;
        while state.queues.len() < config.queues {
            state.queues.push(Queue::default());
        }
        state.dispatch();
    }

    /// The configuration in force.
    pub fn config(&self) -> QueueSetConfig {
        self.state.lock().config
    }

    /// The counters now.
    pub fn counts(&self) -> Counts {
        let state = self.state.lock();
        let mut counts = state.counts;
        counts.active_queues = state
            .queues
            .iter()
            .filter(|q| !q.waiting.is_empty() || q.executing > 0)
            .count();
        counts
    }

    /// A seat for a request of the flow hashed to `flow_hash`: at once, after waiting in a
    /// queue (at most `wait_limit`), or refused. `on_queued` is called when the request joins
    /// a queue and `on_dequeued` when it leaves it (the in-queue gauge).
    pub async fn acquire(
        self: &Arc<Self>,
        flow_hash: u64,
        wait_limit: Duration,
        on_queued: impl FnOnce(),
        on_dequeued: impl FnOnce(),
    ) -> Result<Seat, Rejection> {
        self.acquire_seats(flow_hash, 1, wait_limit, on_queued, on_dequeued)
            .await
    }

    /// [`QueueSet::acquire`] for a request that takes `width` seats (at most the level's
    /// seats, so it can always run alone).
    pub async fn acquire_seats(
        self: &Arc<Self>,
        flow_hash: u64,
        width: usize,
        wait_limit: Duration,
        on_queued: impl FnOnce(),
        on_dequeued: impl FnOnce(),
    ) -> Result<Seat, Rejection> {
        let (id, index, width, woken) = {
            let mut state = self.state.lock();
            let width = width.clamp(1, state.config.concurrency.max(1));
            let free =
                |state: &State| state.counts.seats_in_use + width <= state.config.concurrency;
            let live = state.config.queues.min(state.queues.len());
            if live == 0 {
                // A level that rejects: free seats or nothing.
                if free(&state) {
                    state.counts.executing += 1;
                    state.counts.seats_in_use += width;
                    state.counts.dispatched += 1;
                    return Ok(Seat {
                        set: self.clone(),
                        queue: None,
                        width,
                    });
                }
                state.counts.rejected += 1;
                return Err(Rejection::ConcurrencyLimit);
            }
            let hand_size = state.config.hand_size.clamp(1, live);
            let mut best: Option<(usize, usize)> = None;
            deal(flow_hash, live, hand_size, |card| {
                let queue = &state.queues[card];
                let length = queue.waiting.len() + queue.executing;
                if best.is_none_or(|(_, shortest)| length < shortest) {
                    best = Some((card, length));
                }
            });
            let index = best.map(|(card, _)| card).unwrap_or(0);
            if state.queues[index].waiting.len() >= state.config.queue_length_limit {
                state.counts.rejected += 1;
                return Err(Rejection::QueueFull);
            }
            // Idle with seats free: straight to them (what enqueue-then-dispatch gives).
            if free(&state) && state.counts.waiting == 0 {
                let virtual_time = state.virtual_time;
                let queue = &mut state.queues[index];
                let tag = virtual_time.max(queue.last_finish);
                queue.last_finish = tag + width as u64;
                queue.executing += 1;
                state.virtual_time = tag;
                state.counts.executing += 1;
                state.counts.seats_in_use += width;
                state.counts.dispatched += 1;
                return Ok(Seat {
                    set: self.clone(),
                    queue: Some(index),
                    width,
                });
            }
            let (wake, woken) = oneshot::channel();
            let id = state.next_id;
            state.next_id += 1;
            let virtual_time = state.virtual_time;
            let queue = &mut state.queues[index];
            let start_tag = virtual_time.max(queue.last_finish);
            queue.last_finish = start_tag + width as u64;
            queue.waiting.push_back(Waiter {
                id,
                start_tag,
                width,
                wake,
            });
            state.counts.waiting += 1;
            state.dispatch();
            (id, index, width, woken)
        };
        on_queued();
        // Leaves the queue if the request is dropped (its client went away) while waiting.
        let mut guard = WaitGuard {
            set: self,
            id,
            index,
            width,
            armed: true,
        };
        let outcome = tokio::time::timeout(wait_limit, woken).await;
        guard.armed = false;
        on_dequeued();
        match outcome {
            Ok(Ok(())) => Ok(Seat {
                set: self.clone(),
                queue: Some(index),
                width,
            }),
            _ => {
                if self.leave(index, id, false) {
                    Err(Rejection::TimeOut)
                } else {
                    // Dispatched just as the wait ended: the seats are ours.
                    Ok(Seat {
                        set: self.clone(),
                        queue: Some(index),
                        width,
                    })
                }
            }
        }
    }

    /// Takes waiter `id` out of queue `index`; false if it was dispatched already.
    fn leave(&self, index: usize, id: u64, cancelled: bool) -> bool {
        let mut state = self.state.lock();
        let Some(queue) = state.queues.get_mut(index) else {
            return false;
        };
        let Some(at) = queue.waiting.iter().position(|w| w.id == id) else {
            return false;
        };
        queue.waiting.remove(at);
        state.counts.waiting -= 1;
        if cancelled {
            state.counts.cancelled += 1;
        } else {
            state.counts.timed_out += 1;
        }
        true
    }
}

/// Takes a waiting request out of its queue if its future is dropped before a seat came.
struct WaitGuard<'a> {
    set: &'a Arc<QueueSet>,
    id: u64,
    index: usize,
    width: usize,
    armed: bool,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        if self.armed && !self.set.leave(self.index, self.id, true) {
            // Seats were given to the dropped request: give them back.
            drop(Seat {
                set: self.set.clone(),
                queue: Some(self.index),
                width: self.width,
            });
        }
    }
}

/// Shuffle sharding (upstream's `shufflesharding.Dealer`): the `hand_size` distinct cards of a
/// `deck_size` deck that `hash` deals, each passed to `pick`. The hash is read as mixed-radix
/// digits (`deck_size`, `deck_size - 1`, …), so every hand is equally likely and two flows
/// share all their cards only if their hashes agree on those digits.
pub fn deal(mut hash: u64, deck_size: usize, hand_size: usize, mut pick: impl FnMut(usize)) {
    let hand_size = hand_size.min(deck_size);
    let mut remainders = Vec::with_capacity(hand_size);
    for i in 0..hand_size {
        let radix = (deck_size - i) as u64;
        remainders.push((hash % radix) as usize);
        hash /= radix;
    }
    for i in 0..hand_size {
        let mut card = remainders[i];
        for j in (1..=i).rev() {
            if card >= remainders[j - 1] {
                card += 1;
            }
        }
        pick(card);
    }
}

/// The 64-bit FNV-1a hash of a flow (schema name and distinguisher), as upstream hashes it to
/// deal its hand.
pub fn flow_hash(schema: &str, distinguisher: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in schema.bytes().chain([0]).chain(distinguisher.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn hand(hash: u64, deck: usize, size: usize) -> Vec<usize> {
        let mut cards = Vec::new();
        deal(hash, deck, size, |c| cards.push(c));
        cards
    }

    #[test]
    fn deals_are_distinct_cards_of_the_deck() {
        // Upstream's dealer test values: hash 0 deals the first cards in order.
        assert_eq!(hand(0, 128, 6), [0, 1, 2, 3, 4, 5]);
        // Digits 5 % 8 = 5, then 0 of 7: card 0; then 0 of 6 → skips 0 → 1.
        assert_eq!(hand(5, 8, 3), [5, 0, 1]);
        for hash in [
            1u64,
            42,
            0xdead_beef,
            u64::MAX,
            flow_hash("global-default", "alice"),
        ] {
            for (deck, size) in [(128, 6), (64, 6), (16, 4), (8, 8), (1, 1)] {
                let cards = hand(hash, deck, size);
                assert_eq!(cards.len(), size);
                assert!(cards.iter().all(|&c| c < deck), "{cards:?}");
                let distinct: BTreeSet<_> = cards.iter().collect();
                assert_eq!(distinct.len(), size, "{cards:?} of {deck}");
            }
        }
        // Different flows mostly get different hands.
        let hands: BTreeSet<Vec<usize>> = (0..100)
            .map(|i| hand(flow_hash("global-default", &format!("user-{i}")), 128, 6))
            .collect();
        assert_eq!(hands.len(), 100);
    }

    fn config(concurrency: usize, queues: usize, hand: usize, length: usize) -> QueueSetConfig {
        QueueSetConfig {
            concurrency,
            queues,
            hand_size: hand,
            queue_length_limit: length,
        }
    }

    const WAIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_wide_request_waits_for_enough_seats() {
        let set = QueueSet::new(config(4, 8, 2, 10));
        let narrow = set.acquire(1, WAIT, || {}, || {}).await.expect("seat");
        let second = set.acquire(2, WAIT, || {}, || {}).await.expect("seat");
        assert_eq!(set.counts().seats_in_use, 2);
        // Three seats wanted, two free: it waits.
        let wide = {
            let set = set.clone();
            tokio::spawn(async move { set.acquire_seats(3, 3, WAIT, || {}, || {}).await })
        };
        while set.counts().waiting == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(set.counts().seats_in_use, 2);
        drop(narrow);
        let wide = wide.await.expect("join").expect("seats");
        assert_eq!(set.counts().seats_in_use, 4, "the wide one holds three");
        drop((second, wide));
        assert_eq!(set.counts().seats_in_use, 0);
        // Wider than the level: it takes every seat, alone.
        let all = set
            .acquire_seats(5, 100, WAIT, || {}, || {})
            .await
            .expect("seats");
        assert_eq!(set.counts().seats_in_use, 4);
        drop(all);
    }

    #[tokio::test]
    async fn full_queues_refuse_and_seats_pass_on() {
        let set = QueueSet::new(config(1, 1, 1, 2));
        let first = set.acquire(1, WAIT, || {}, || {}).await.expect("seat");
        let waiting: Vec<_> = (0..2)
            .map(|_| {
                let set = set.clone();
                tokio::spawn(async move { set.acquire(1, WAIT, || {}, || {}).await.map(drop) })
            })
            .collect();
        while set.counts().waiting < 2 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            set.acquire(1, WAIT, || {}, || {}).await.err(),
            Some(Rejection::QueueFull)
        );
        drop(first);
        for w in waiting {
            w.await.expect("join").expect("dispatched in turn");
        }
        let counts = set.counts();
        assert_eq!(
            (counts.dispatched, counts.rejected, counts.executing),
            (3, 1, 0)
        );
    }

    #[tokio::test]
    async fn rejecting_levels_do_not_queue() {
        let set = QueueSet::new(config(1, 0, 0, 0));
        let seat = set.acquire(7, WAIT, || {}, || {}).await.expect("seat");
        assert_eq!(
            set.acquire(7, WAIT, || {}, || {}).await.err(),
            Some(Rejection::ConcurrencyLimit)
        );
        drop(seat);
        set.acquire(7, WAIT, || {}, || {})
            .await
            .expect("free again");
    }

    #[tokio::test]
    async fn waiting_too_long_times_out() {
        let set = QueueSet::new(config(1, 4, 2, 10));
        let _seat = set.acquire(1, WAIT, || {}, || {}).await.expect("seat");
        let late = set
            .acquire(1, Duration::from_millis(100), || {}, || {})
            .await;
        assert_eq!(late.err(), Some(Rejection::TimeOut));
        assert_eq!(set.counts().waiting, 0);
    }

    #[tokio::test]
    async fn a_light_flow_overtakes_a_flood() {
        // Two queues, hands of one: the flood and the light flow get different queues.
        let set = QueueSet::new(config(1, 2, 1, 100));
        let (flood, light) = (0u64, 1u64);
        assert_ne!(hand(flood, 2, 1), hand(light, 2, 1));
        let seat = set.acquire(flood, WAIT, || {}, || {}).await.expect("seat");
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (s, o) = (set.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _seat = s.acquire(flood, WAIT, || {}, || {}).await.expect("seat");
                o.lock().push(format!("flood-{i}"));
            }));
            while set.counts().waiting < i + 1 {
                tokio::task::yield_now().await;
            }
        }
        let (s, o) = (set.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let _seat = s.acquire(light, WAIT, || {}, || {}).await.expect("seat");
            o.lock().push("light".to_string());
        }));
        while set.counts().waiting < 6 {
            tokio::task::yield_now().await;
        }
        drop(seat);
        for t in tasks {
            t.await.expect("join");
        }
        let order = order.lock().clone();
        let light_at = order.iter().position(|o| o == "light").expect("served");
        assert!(
            light_at <= 1,
            "the light flow waited behind the flood: {order:?}"
        );
    }
}
