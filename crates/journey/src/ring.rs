//! The API server's memory of journeys: every step it was sent, grouped by trace, within
//! fixed bounds (traces, steps in all, steps per trace). When a bound is reached the trace
//! updated longest ago goes first; a trace at its own bound keeps its first steps and counts
//! the rest as dropped. Readers can follow new steps as they arrive.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::broadcast;

use crate::context::TraceId;
use crate::record::SpanRecord;
use crate::sink::Sink;

/// How much is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Traces at most.
    pub traces: usize,
    /// Steps at most, over all traces.
    pub spans: usize,
    /// Steps at most in one trace (a Deployment of many pods is one trace).
    pub spans_per_trace: usize,
    /// Traces one object's uid is remembered in.
    pub traces_per_object: usize,
}

impl Default for Limits {
    /// About 40 MB at most with steps of ~400 bytes.
    fn default() -> Limits {
        Limits {
            traces: 4096,
            spans: 100_000,
            spans_per_trace: 4096,
            traces_per_object: 8,
        }
    }
}

/// The steps of traces, bounded by [`Limits`].
pub struct Journeys {
    limits: Limits,
    inner: Mutex<Inner>,
    live: broadcast::Sender<Arc<SpanRecord>>,
}

#[derive(Default)]
struct Inner {
    traces: HashMap<TraceId, Trace>,
    /// Last update → trace: the first is the one to evict.
    order: BTreeMap<u64, TraceId>,
    next: u64,
    spans: usize,
    /// Object uid → the traces with a step for it, oldest first.
    by_uid: HashMap<String, Vec<TraceId>>,
}

struct Trace {
    spans: Vec<Arc<SpanRecord>>,
    updated: u64,
    dropped: usize,
    uids: Vec<String>,
}

/// One trace as a reader gets it.
#[derive(Clone, Debug, Default)]
pub struct TraceSnapshot {
    /// Its steps in the order they arrived.
    pub spans: Vec<Arc<SpanRecord>>,
    /// Steps not kept because the trace was at its bound.
    pub dropped: usize,
}

impl Journeys {
    /// An empty memory with these bounds.
    pub fn new(limits: Limits) -> Arc<Journeys> {
        Arc::new(Journeys {
            limits,
            inner: Mutex::new(Inner::default()),
            live: broadcast::channel(4096).0,
        })
    }

    /// Keeps one step (one whose trace id is malformed is ignored).
    pub fn insert(&self, span: SpanRecord) {
        self.insert_shared(Arc::new(span));
    }

    /// Keeps one step, shared.
    pub fn insert_shared(&self, span: Arc<SpanRecord>) {
        let Some(trace_id) = span.trace() else { return };
        {
            let mut inner = self.inner.lock();
            let inner = &mut *inner;
            inner.next += 1;
            let now = inner.next;
            let trace = inner.traces.entry(trace_id).or_insert_with(|| Trace {
                spans: Vec::new(),
                updated: now,
                dropped: 0,
                uids: Vec::new(),
            });
            inner.order.remove(&trace.updated);
            trace.updated = now;
            inner.order.insert(now, trace_id);
            if trace.spans.len() >= self.limits.spans_per_trace {
                trace.dropped += 1;
            } else {
                if let Some(uid) = span.object.as_ref().and_then(|o| o.uid.clone()) {
                    if !trace.uids.contains(&uid) {
                        trace.uids.push(uid.clone());
                        let traces = inner.by_uid.entry(uid).or_default();
                        if !traces.contains(&trace_id) {
                            if traces.len() >= self.limits.traces_per_object {
                                traces.remove(0);
                            }
                            traces.push(trace_id);
                        }
                    }
                }
                trace.spans.push(span.clone());
                inner.spans += 1;
            }
            while inner.traces.len() > self.limits.traces || inner.spans > self.limits.spans {
                let Some((_, oldest)) = inner.order.pop_first() else {
                    break;
                };
                inner.evict(oldest);
            }
        }
        // Nobody following is the usual case: the error says only that.
        let _ = self.live.send(span);
    }

    /// The steps of one trace.
    pub fn trace(&self, id: TraceId) -> Option<TraceSnapshot> {
        let inner = self.inner.lock();
        inner.traces.get(&id).map(|trace| TraceSnapshot {
            spans: trace.spans.clone(),
            dropped: trace.dropped,
        })
    }

    /// The traces with a step for the object with this uid, oldest first.
    pub fn traces_of(&self, uid: &str) -> Vec<TraceId> {
        self.inner
            .lock()
            .by_uid
            .get(uid)
            .cloned()
            .unwrap_or_default()
    }

    /// Steps as they arrive from now on (a slow reader loses the oldest and is told how many).
    pub fn follow(&self) -> broadcast::Receiver<Arc<SpanRecord>> {
        self.live.subscribe()
    }

    /// Traces and steps kept now.
    pub fn len(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        (inner.traces.len(), inner.spans)
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len().0 == 0
    }
}

impl Inner {
    fn evict(&mut self, id: TraceId) {
        let Some(trace) = self.traces.remove(&id) else {
            return;
        };
        self.spans -= trace.spans.len();
        for uid in trace.uids {
            if let Some(traces) = self.by_uid.get_mut(&uid) {
                traces.retain(|t| *t != id);
                if traces.is_empty() {
                    self.by_uid.remove(&uid);
                }
            }
        }
    }
}

impl Sink for Journeys {
    fn export(&self, span: &Arc<SpanRecord>) {
        self.insert_shared(span.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ObjectRef;

    fn span(trace: u128, n: u64, uid: Option<&str>) -> SpanRecord {
        SpanRecord {
            trace_id: TraceId(trace).to_string(),
            span_id: crate::SpanId(n).to_string(),
            parent_span_id: None,
            step: format!("step {n}"),
            component: "test".into(),
            object: uid.map(|uid| ObjectRef {
                resource: "pods".into(),
                namespace: "default".into(),
                name: "p".into(),
                uid: Some(uid.into()),
            }),
            start_unix_nanos: n,
            end_unix_nanos: n + 1,
            error: None,
            attributes: Default::default(),
        }
    }

    fn limits(traces: usize, spans: usize, per_trace: usize) -> Limits {
        Limits {
            traces,
            spans,
            spans_per_trace: per_trace,
            traces_per_object: 2,
        }
    }

    #[test]
    fn steps_are_grouped_by_trace_in_arrival_order() {
        let journeys = Journeys::new(Limits::default());
        journeys.insert(span(1, 1, None));
        journeys.insert(span(2, 2, None));
        journeys.insert(span(1, 3, None));
        let one = journeys.trace(TraceId(1)).expect("kept");
        let steps: Vec<_> = one.spans.iter().map(|s| s.step.as_str()).collect();
        assert_eq!(steps, ["step 1", "step 3"]);
        assert_eq!(journeys.len(), (2, 3));
        assert!(journeys.trace(TraceId(3)).is_none());
    }

    #[test]
    fn the_trace_updated_longest_ago_goes_first() {
        let journeys = Journeys::new(limits(2, 100, 100));
        journeys.insert(span(1, 1, Some("a")));
        journeys.insert(span(2, 2, None));
        journeys.insert(span(1, 3, None)); // trace 1 is now the newer one
        journeys.insert(span(3, 4, None));
        assert!(
            journeys.trace(TraceId(2)).is_none(),
            "trace 2 was updated longest ago"
        );
        assert!(journeys.trace(TraceId(1)).is_some());
        assert!(journeys.trace(TraceId(3)).is_some());
        assert_eq!(journeys.len(), (2, 3));
        journeys.insert(span(4, 5, None));
        journeys.insert(span(5, 6, None));
        assert!(
            journeys.traces_of("a").is_empty(),
            "the uid index forgets evicted traces"
        );
    }

    #[test]
    fn all_steps_together_stay_within_their_bound() {
        let journeys = Journeys::new(limits(100, 5, 100));
        for n in 0..4 {
            journeys.insert(span(1, n, None));
        }
        for n in 4..7 {
            journeys.insert(span(2, n, None));
        }
        // Seven steps do not fit in five: trace 1 (four steps) had to go.
        assert_eq!(journeys.len(), (1, 3));
        assert!(journeys.trace(TraceId(1)).is_none());
    }

    #[test]
    fn a_trace_at_its_bound_keeps_its_first_steps_and_counts_the_rest() {
        let journeys = Journeys::new(limits(10, 100, 3));
        for n in 0..5 {
            journeys.insert(span(1, n, None));
        }
        let trace = journeys.trace(TraceId(1)).expect("kept");
        assert_eq!(trace.spans.len(), 3);
        assert_eq!(trace.dropped, 2);
        assert_eq!(trace.spans[0].step, "step 0");
    }

    #[test]
    fn an_object_is_found_in_its_newest_traces() {
        let journeys = Journeys::new(limits(10, 100, 10));
        for trace in 1..=3 {
            journeys.insert(span(trace, trace as u64, Some("uid-1")));
            journeys.insert(span(trace, 10 + trace as u64, Some("uid-1")));
        }
        assert_eq!(journeys.traces_of("uid-1"), [TraceId(2), TraceId(3)]);
        assert!(journeys.traces_of("uid-2").is_empty());
    }

    #[tokio::test]
    async fn followers_see_steps_as_they_arrive() {
        let journeys = Journeys::new(Limits::default());
        let mut live = journeys.follow();
        journeys.insert(span(7, 1, None));
        let got = live.recv().await.expect("a step");
        assert_eq!(got.step, "step 1");
    }
}
