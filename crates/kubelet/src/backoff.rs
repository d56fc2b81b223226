//! Per-key exponential backoff, as upstream's `flowcontrol.Backoff` used by the kubelet for image
//! pulls (`ImagePullBackOff`) and container restarts (`CrashLoopBackOff`): the first failure
//! waits `initial`, each failure inside the window doubles the wait up to `max`, and a key that
//! has not failed for `2 × max` starts over.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// Upstream's initial backoff for image pulls and container restarts.
pub const INITIAL: Duration = Duration::from_secs(10);
/// Upstream's maximum backoff (`MaxContainerBackOff`, the image pull maximum).
pub const MAX: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// The current wait.
    delay: Duration,
    /// When the wait started (the last failure).
    since: Instant,
}

/// Backoff windows by key. Time comes from tokio, so tests run on paused time.
#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    entries: HashMap<String, Entry>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(INITIAL, MAX)
    }
}

impl Backoff {
    /// A backoff starting at `initial`, doubling to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            entries: HashMap::new(),
        }
    }

    /// Records a failure of `key` now: starts its window, or doubles it (upstream `Next`).
    pub fn next(&mut self, key: &str) {
        let now = Instant::now();
        let delay = match self.entries.get(key) {
            Some(e) if now.duration_since(e.since) <= 2 * self.max => (e.delay * 2).min(self.max),
            _ => self.initial,
        };
        self.entries
            .insert(key.to_string(), Entry { delay, since: now });
    }

    /// Whether `key` is still waiting out its window (upstream `IsInBackOffSinceUpdate`).
    pub fn in_backoff(&self, key: &str) -> bool {
        self.remaining(key).is_some()
    }

    /// What is left of `key`'s window, if it is in one.
    pub fn remaining(&self, key: &str) -> Option<Duration> {
        let e = self.entries.get(key)?;
        let elapsed = Instant::now().duration_since(e.since);
        (elapsed < e.delay).then(|| e.delay - elapsed)
    }

    /// The current window length of `key` (what "back-off 20s" reports).
    pub fn delay(&self, key: &str) -> Option<Duration> {
        self.entries.get(key).map(|e| e.delay)
    }

    /// Forgets `key` (a success, or the pod is gone).
    pub fn reset(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Forgets every key starting with `prefix` (all of a pod's keys).
    pub fn reset_prefix(&mut self, prefix: &str) {
        self.entries.retain(|k, _| !k.starts_with(prefix));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn doubles_to_the_maximum_and_expires() {
        let mut b = Backoff::default();
        assert!(!b.in_backoff("k"));
        b.next("k");
        assert_eq!(b.delay("k"), Some(Duration::from_secs(10)));
        assert!(b.in_backoff("k"));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(!b.in_backoff("k"));
        let mut seen = vec![];
        for _ in 0..7 {
            b.next("k");
            seen.push(b.delay("k").map(|d| d.as_secs()));
        }
        assert_eq!(
            seen,
            [20, 40, 80, 160, 300, 300, 300].map(Some).to_vec(),
            "doubling, capped at 300 s"
        );
        // Quiet for longer than twice the maximum: start over.
        tokio::time::advance(Duration::from_secs(601)).await;
        b.next("k");
        assert_eq!(b.delay("k"), Some(Duration::from_secs(10)));
        b.reset_prefix("k");
        assert_eq!(b.delay("k"), None);
    }
}
