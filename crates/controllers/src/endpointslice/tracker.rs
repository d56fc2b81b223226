//! What the controller wrote, per Service (upstream's `EndpointSliceTracker`): the generation of
//! each slice it created or updated, and the slices it deleted. The cache is stale for a
//! Service while it shows an older generation, lacks a written slice, or still holds a deleted
//! one; and a slice event is someone else's change only if it shows a newer generation than
//! the controller's own write.

use std::collections::HashMap;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use parking_lot::Mutex;

use crate::informer::Key;

/// What is known of one slice: the generation written, or `Deleted`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Written {
    Generation(i64),
    Deleted,
}

/// Per Service, per slice UID, what the controller last did.
#[derive(Default)]
pub struct Tracker {
    services: Mutex<HashMap<Key, HashMap<String, Written>>>,
}

fn uid(slice: &EndpointSlice) -> String {
    slice.metadata.uid.clone().unwrap_or_default()
}

fn generation(slice: &EndpointSlice) -> i64 {
    slice.metadata.generation.unwrap_or_default()
}

impl Tracker {
    /// After a create or update answered with `slice`.
    pub fn written(&self, service: &Key, slice: &EndpointSlice) {
        self.services
            .lock()
            .entry(service.clone())
            .or_default()
            .insert(uid(slice), Written::Generation(generation(slice)));
    }

    /// After a delete of `slice` was accepted.
    pub fn expect_deletion(&self, service: &Key, slice: &EndpointSlice) {
        self.services
            .lock()
            .entry(service.clone())
            .or_default()
            .insert(uid(slice), Written::Deleted);
    }

    /// Whether an added or updated slice is news: not one the controller wrote, or newer.
    pub fn should_sync(&self, service: &Key, slice: &EndpointSlice) -> bool {
        match self
            .services
            .lock()
            .get(service)
            .and_then(|s| s.get(&uid(slice)))
        {
            Some(Written::Generation(g)) => generation(slice) > *g,
            _ => true,
        }
    }

    /// A slice left the cache: forgets it, and says whether that is news (a deletion the
    /// controller did not make).
    pub fn handle_deletion(&self, service: &Key, slice: &EndpointSlice) -> bool {
        let mut services = self.services.lock();
        let Some(slices) = services.get_mut(service) else {
            return true;
        };
        let news = slices.remove(&uid(slice)) != Some(Written::Deleted);
        if slices.is_empty() {
            services.remove(service);
        }
        news
    }

    /// Whether the cached `slices` of a Service are behind what the controller wrote.
    pub fn stale(&self, service: &Key, slices: &[std::sync::Arc<EndpointSlice>]) -> bool {
        let services = self.services.lock();
        let Some(written) = services.get(service) else {
            return false;
        };
        let behind = slices.iter().any(|s| match written.get(&uid(s)) {
            Some(Written::Deleted) => true,
            Some(Written::Generation(g)) => *g > generation(s),
            None => false,
        });
        behind
            || written.iter().any(|(uid, w)| {
                matches!(w, Written::Generation(_))
                    && !slices
                        .iter()
                        .any(|s| s.metadata.uid.as_deref() == Some(uid))
            })
    }

    /// The Service is gone.
    pub fn forget(&self, service: &Key) {
        self.services.lock().remove(service);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn slice(uid: &str, generation: i64) -> Arc<EndpointSlice> {
        let mut s = EndpointSlice::default();
        s.metadata.uid = Some(uid.into());
        s.metadata.generation = Some(generation);
        Arc::new(s)
    }

    #[test]
    fn a_cache_behind_the_controllers_writes_is_stale() {
        let t = Tracker::default();
        let svc: Key = ("default".into(), "web".into());
        assert!(!t.stale(&svc, &[]));
        t.written(&svc, &slice("a", 2));
        // Created but not yet seen; then seen at an older generation; then caught up.
        assert!(t.stale(&svc, &[]));
        assert!(t.stale(&svc, &[slice("a", 1)]));
        assert!(!t.stale(&svc, &[slice("a", 2)]));
        // Our own write coming back is no news; a newer generation is.
        assert!(!t.should_sync(&svc, &slice("a", 2)));
        assert!(t.should_sync(&svc, &slice("a", 3)));
        assert!(t.should_sync(&svc, &slice("b", 1)));
        // Deleted but still cached: stale; its deletion event is no news and clears it.
        t.expect_deletion(&svc, &slice("a", 2));
        assert!(t.stale(&svc, &[slice("a", 2)]));
        assert!(!t.stale(&svc, &[]));
        assert!(!t.handle_deletion(&svc, &slice("a", 2)));
        // Someone else's deletion is news.
        t.written(&svc, &slice("b", 1));
        assert!(t.handle_deletion(&svc, &slice("b", 1)));
    }
}
