//! For tests of components: the journey steps recorded on the test's thread.
//!
//! ```ignore
//! let capture = ferry_journey::testing::capture();
//! worker.sync().await; // on a current-thread runtime, as `#[tokio::test]` gives
//! assert_eq!(capture.steps(), ["pod seen", "sandbox created"]);
//! ```

use std::sync::Arc;
use std::thread::ThreadId;

use parking_lot::Mutex;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

use crate::record::SpanRecord;
use crate::sink::{install, Sink, SinkGuard};
use crate::JourneyLayer;

/// Steps closed on one thread while it lives.
pub struct Capture {
    kept: Arc<Kept>,
    _sink: SinkGuard,
    _default: Option<tracing::subscriber::DefaultGuard>,
}

struct Kept {
    thread: ThreadId,
    spans: Mutex<Vec<SpanRecord>>,
}

impl Sink for Kept {
    fn export(&self, span: &std::sync::Arc<SpanRecord>) {
        if std::thread::current().id() == self.thread {
            self.spans.lock().push(SpanRecord::clone(span));
        }
    }
}

/// Starts capturing the steps closed on this thread.
pub fn capture() -> Capture {
    let kept = Arc::new(Kept {
        thread: std::thread::current().id(),
        spans: Mutex::new(Vec::new()),
    });
    let subscriber =
        || tracing_subscriber::registry().with(JourneyLayer.with_filter(JourneyLayer::filter()));
    // One global subscriber for the test process: with a thread-local one per test, a step's
    // callsite first reached on a thread without a subscriber could keep a cached "never"
    // interest while tests run side by side. The sink keeps this thread's steps only.
    static GLOBAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let global =
        *GLOBAL.get_or_init(|| tracing::subscriber::set_global_default(subscriber()).is_ok());
    Capture {
        _sink: install(kept.clone()),
        _default: (!global).then(|| tracing::subscriber::set_default(subscriber())),
        kept,
    }
}

impl Capture {
    /// The steps so far, in the order they closed.
    pub fn spans(&self) -> Vec<SpanRecord> {
        self.kept.spans.lock().clone()
    }

    /// Their names.
    pub fn steps(&self) -> Vec<String> {
        self.kept
            .spans
            .lock()
            .iter()
            .map(|s| s.step.clone())
            .collect()
    }

    /// Forgets the steps so far.
    pub fn clear(&self) {
        self.kept.spans.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn steps_of_this_thread_are_captured() {
        let _on = crate::sink::SWITCH.read();
        let capture = super::capture();
        drop(crate::step!("bound", component = "t"));
        std::thread::spawn(|| drop(crate::step!("queued", component = "t")))
            .join()
            .expect("thread");
        assert_eq!(capture.steps(), ["bound"]);
    }
}
