//! Controller expectations, as upstream's `ControllerExpectations`/`UIDTrackingControllerExpectations`:
//! after a controller asks for N creations (or deletions of named pods) it does not act on the
//! same owner again until its informer has seen them, so a slow watch never makes it create a
//! second batch. Expectations older than five minutes are considered satisfied, in case an
//! event was lost.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// After this, stale expectations no longer block a sync (upstream's `ExpectationsTimeout`).
pub const TIMEOUT: Duration = Duration::from_secs(300);

struct Expectation {
    adds: i64,
    deletes: HashSet<String>,
    set_at: Instant,
}

/// Expectations per owner key.
#[derive(Default)]
pub struct Expectations {
    owners: Mutex<HashMap<String, Expectation>>,
}

impl Expectations {
    /// Whether the owner may be synced: nothing pending, or the expectation timed out.
    pub fn satisfied(&self, owner: &str) -> bool {
        match self.owners.lock().get(owner) {
            None => true,
            Some(e) => (e.adds <= 0 && e.deletes.is_empty()) || e.set_at.elapsed() > TIMEOUT,
        }
    }

    /// Expects `count` creations.
    pub fn expect_creations(&self, owner: &str, count: i64) {
        self.expect(owner, count, std::iter::empty());
    }

    /// Expects the deletion of these pods (`namespace/name`).
    pub fn expect_deletions(&self, owner: &str, pods: impl IntoIterator<Item = String>) {
        self.expect(owner, 0, pods);
    }

    /// Expects `count` creations and the deletion of these pods at once (upstream's
    /// `SetExpectations`), replacing what was expected before.
    pub fn expect(&self, owner: &str, count: i64, pods: impl IntoIterator<Item = String>) {
        self.owners.lock().insert(
            owner.to_string(),
            Expectation {
                adds: count,
                deletes: pods.into_iter().collect(),
                set_at: Instant::now(),
            },
        );
    }

    /// One creation was seen (or will never happen: it failed or was skipped).
    pub fn creation_observed(&self, owner: &str) {
        if let Some(e) = self.owners.lock().get_mut(owner) {
            e.adds -= 1;
        }
    }

    /// The deletion of `pod` was seen (or failed).
    pub fn deletion_observed(&self, owner: &str, pod: &str) {
        if let Some(e) = self.owners.lock().get_mut(owner) {
            e.deletes.remove(pod);
        }
    }

    /// Forgets the owner (it was deleted).
    pub fn delete(&self, owner: &str) {
        self.owners.lock().remove(owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn creations_block_until_observed_or_timed_out() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/rs"));
        e.expect_creations("ns/rs", 2);
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(e.satisfied("ns/rs"));
        e.expect_creations("ns/rs", 1);
        tokio::time::advance(TIMEOUT + Duration::from_secs(1)).await;
        assert!(e.satisfied("ns/rs"), "stale expectations expire");
    }

    #[tokio::test(start_paused = true)]
    async fn creations_and_deletions_are_expected_together() {
        let e = Expectations::default();
        e.expect("ns/ds", 1, ["ns/old".to_string()]);
        e.deletion_observed("ns/ds", "ns/old");
        assert!(!e.satisfied("ns/ds"), "the creation is still expected");
        e.creation_observed("ns/ds");
        assert!(e.satisfied("ns/ds"));
    }

    #[tokio::test(start_paused = true)]
    async fn deletions_are_tracked_by_pod() {
        let e = Expectations::default();
        e.expect_deletions("ns/rs", ["ns/a".to_string(), "ns/b".to_string()]);
        e.deletion_observed("ns/rs", "ns/a");
        e.deletion_observed("ns/rs", "ns/a");
        assert!(
            !e.satisfied("ns/rs"),
            "a repeated observation of one pod does not count twice"
        );
        e.deletion_observed("ns/rs", "ns/b");
        assert!(e.satisfied("ns/rs"));
    }
}
