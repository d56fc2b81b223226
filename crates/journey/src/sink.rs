//! Where finished steps go: the API server's own [`Journeys`](crate::Journeys) ring, or a
//! component's batcher that posts them to its API server. A process may have several (a
//! `ferry server` with tests' servers beside it); with none, steps are dropped.
//!
//! A process can also switch journeys off altogether ([`switch_off`], `ferry server
//! --journeys=false`): then no step is made at all, and a [`step!`](crate::step) costs one
//! atomic load.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::record::SpanRecord;

/// Takes finished steps. Called on the thread that closed the span: must not block.
pub trait Sink: Send + Sync {
    /// One finished step (shared: a sink that keeps it keeps the `Arc`).
    fn export(&self, span: &Arc<SpanRecord>);
}

static SINKS: RwLock<Vec<(u64, Arc<dyn Sink>)>> = RwLock::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(0);
/// How many [`Off`] guards are alive: journeys are on while there are none.
static OFF: AtomicUsize = AtomicUsize::new(0);

/// Sends every step closed from now on to `sink` until the guard is dropped.
#[must_use = "the sink is removed when the guard is dropped"]
pub fn install(sink: Arc<dyn Sink>) -> SinkGuard {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
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

/// Switches journeys off in this process until the guard is dropped: [`step!`](crate::step)
/// then makes a disabled span without evaluating its fields, the layer keeps nothing for the
/// journey spans made otherwise, so no step reaches a sink, no request carries a
/// `traceparent` and the API server annotates no object.
#[must_use = "journeys are on again when the guard is dropped"]
pub fn switch_off() -> Off {
    OFF.fetch_add(1, Ordering::Relaxed);
    Off(())
}

/// Keeps journeys off while it lives ([`switch_off`]).
#[derive(Debug)]
pub struct Off(());

impl Drop for Off {
    fn drop(&mut self) {
        OFF.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether journeys are on in this process (they are unless [`switch_off`]ed): the check
/// every [`step!`](crate::step) makes first.
#[inline]
pub fn enabled() -> bool {
    OFF.load(Ordering::Relaxed) == 0
}

/// Whether steps go anywhere: journeys are on and a sink is installed (a component may skip
/// work only a journey needs).
pub fn active() -> bool {
    enabled() && !SINKS.read().is_empty()
}

pub(crate) fn export(span: SpanRecord) {
    let span = Arc::new(span);
    for (_, sink) in SINKS.read().iter() {
        sink.export(&span);
    }
}

/// Tests that record steps hold it to read, the one that switches journeys off (for the whole
/// process) to write.
#[cfg(test)]
pub(crate) static SWITCH: RwLock<()> = RwLock::new(());

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex;

    use super::*;
    use crate::testing::capture;

    struct Count(Mutex<usize>);

    impl Sink for Count {
        fn export(&self, _: &Arc<SpanRecord>) {
            *self.0.lock() += 1;
        }
    }

    #[test]
    fn switched_off_no_step_is_made_and_fields_are_not_evaluated() {
        let _alone = SWITCH.write();
        let capture = capture();
        let count = Arc::new(Count(Mutex::new(0)));
        let _sink = install(count.clone());
        let evaluated = std::cell::Cell::new(0);
        let field = || {
            evaluated.set(evaluated.get() + 1);
            "pods/default/p"
        };
        {
            let off = switch_off();
            let nested = switch_off();
            assert!(!enabled() && !active());
            drop(nested);
            assert!(!enabled(), "off while any guard lives");
            let span = crate::step!("bound", component = "t", object = %field());
            assert!(span.is_none());
            let _in = span.enter();
            assert_eq!(crate::current(), None, "no traceparent to send");
            crate::fail(&span, "ignored");
            // A journey span made without the macro is left alone by the layer.
            let raw = tracing::info_span!(target: "journey", "raw", component = "t");
            let _raw = raw.enter();
            assert_eq!(crate::current(), None);
            drop(off);
        }
        assert_eq!(evaluated.get(), 0);
        assert!(capture.spans().is_empty());
        assert_eq!(*count.0.lock(), 0);

        assert!(enabled() && active());
        drop(crate::step!("bound", component = "t", object = %field()));
        assert_eq!(evaluated.get(), 1);
        assert_eq!(
            capture.steps(),
            ["bound"],
            "on again once the guard is dropped"
        );
    }
}
