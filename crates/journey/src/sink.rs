//! Where finished steps go: the API server's own [`Journeys`](crate::Journeys) ring, or a
//! component's batcher that posts them to its API server. A process may have several (a
//! `ferry server` with tests' servers beside it); with none, steps are dropped.

use std::sync::Arc;

use parking_lot::RwLock;

use crate::record::SpanRecord;

/// Takes finished steps. Called on the thread that closed the span: must not block.
pub trait Sink: Send + Sync {
    /// One finished step.
    fn export(&self, span: &SpanRecord);
}

static SINKS: RwLock<Vec<(u64, Arc<dyn Sink>)>> = RwLock::new(Vec::new());
static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Sends every step closed from now on to `sink` until the guard is dropped.
#[must_use = "the sink is removed when the guard is dropped"]
pub fn install(sink: Arc<dyn Sink>) -> SinkGuard {
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    SINKS.write().push((id, sink));
    SinkGuard(id)
}

/// Removes its sink when dropped.
#[derive(Debug)]
pub struct SinkGuard(u64);

impl Drop for SinkGuard {
    fn drop(&mut self) {
        SINKS.write().retain(|(id, _)| *id != self.0);
    }
}

/// Whether any sink is installed (a component may skip work only a journey needs).
pub fn active() -> bool {
    !SINKS.read().is_empty()
}

pub(crate) fn export(span: SpanRecord) {
    for (_, sink) in SINKS.read().iter() {
        sink.export(&span);
    }
}
