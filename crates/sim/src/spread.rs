//! Spreading periodic per-node work (Lease renewals, status heartbeats) over its interval, so
//! 5,000 nodes renewing every 10 s make 500 small requests a second rather than 5,000 at once
//! every ten seconds. One ticker walks the node list a slice per tick.

use std::future::Future;
use std::ops::Range;
use std::time::Duration;

/// The shortest tick: finer spreading buys nothing and costs wake-ups.
pub const MIN_TICK: Duration = Duration::from_millis(100);

/// How a walk over all nodes every interval is cut up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spread {
    /// Ticks per interval; each tick handles one slice of the nodes.
    pub slices: usize,
    /// Time between ticks: `interval / slices`.
    pub tick: Duration,
}

/// Cuts `interval` into ticks no shorter than [`MIN_TICK`] (unless the interval is), at most
/// one per node.
pub fn spread(nodes: usize, interval: Duration) -> Spread {
    let interval = interval.max(Duration::from_millis(1));
    let by_time = (interval.as_nanos() / MIN_TICK.as_nanos()).max(1);
    let slices = usize::try_from(by_time)
        .unwrap_or(usize::MAX)
        .min(nodes)
        .max(1);
    Spread {
        slices,
        tick: interval / u32::try_from(slices).unwrap_or(u32::MAX),
    }
}

/// The nodes (indices) of slice `slice` of `slices`: contiguous, in order, every node in
/// exactly one slice, sizes differing by at most one.
pub fn slice_range(slice: usize, slices: usize, nodes: usize) -> Range<usize> {
    let slices = slices.max(1);
    let slice = slice % slices;
    let bound = |s: usize| (s as u128 * nodes as u128 / slices as u128) as usize;
    bound(slice)..bound(slice + 1)
}

/// Calls `work` on each slice of `0..nodes` in turn, one per tick, forever: every node once
/// per `interval`. The first slice goes at once. A slow `work` delays the next tick rather than
/// piling up ticks.
pub async fn walk<F, Fut>(nodes: usize, interval: Duration, mut work: F)
where
    F: FnMut(Range<usize>) -> Fut,
    Fut: Future<Output = ()>,
{
    let Spread { slices, tick } = spread(nodes, interval);
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut slice = 0;
    loop {
        ticker.tick().await;
        let range = slice_range(slice, slices, nodes);
        if !range.is_empty() {
            work(range).await;
        }
        slice = (slice + 1) % slices;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn spreads() {
        let table = [
            (5000, 10_000, 100, 100),
            (5000, 60_000, 600, 100),
            (3, 10_000, 3, 3333),
            (1, 10_000, 1, 10_000),
            (0, 10_000, 1, 10_000),
            (10, 50, 1, 50),
        ];
        for (nodes, interval_ms, slices, tick_ms) in table {
            let got = spread(nodes, Duration::from_millis(interval_ms));
            assert_eq!(
                (got.slices, got.tick.as_millis()),
                (slices, tick_ms),
                "{nodes} nodes every {interval_ms} ms"
            );
        }
    }

    #[test]
    fn slices_cover_every_node_once() {
        for (nodes, slices) in [(5000, 100), (7, 3), (3, 3), (1, 1), (0, 1), (10, 4)] {
            let mut seen = Vec::new();
            for s in 0..slices {
                let r = slice_range(s, slices, nodes);
                assert!(
                    r.len() <= nodes.div_ceil(slices),
                    "{nodes}/{slices}: slice {s} too big"
                );
                seen.extend(r);
            }
            assert_eq!(seen, (0..nodes).collect::<Vec<_>>(), "{nodes}/{slices}");
        }
        assert_eq!(slice_range(1, 3, 7), 2..4);
        assert_eq!(slice_range(4, 3, 7), 2..4, "slice numbers wrap");
    }

    #[tokio::test(start_paused = true)]
    async fn walk_visits_every_node_once_per_interval_evenly() {
        let visits = Arc::new(Mutex::new(Vec::new()));
        let start = tokio::time::Instant::now();
        let record = visits.clone();
        let walker = tokio::spawn(walk(10, Duration::from_secs(1), move |range| {
            let record = record.clone();
            async move {
                let at = start.elapsed().as_millis();
                record
                    .lock()
                    .expect("lock")
                    .extend(range.map(|node| (node, at)));
            }
        }));
        tokio::time::sleep(Duration::from_millis(1950)).await;
        walker.abort();
        let visits = visits.lock().expect("lock").clone();
        // 10 nodes, 10 slices of 100 ms: node i at i*100 ms, then again a second later.
        let want: Vec<(usize, u128)> = (0..20).map(|i| (i % 10, i as u128 * 100)).collect();
        assert_eq!(visits, want);
    }
}
