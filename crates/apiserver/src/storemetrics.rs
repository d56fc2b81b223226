//! Store latency for `/metrics`: a [`Store`] wrapper timing every range and transaction into
//! upstream's `etcd_request_duration_seconds` histogram, labelled by operation and by the
//! resource the key belongs to (`/pods/…` → `pods`), so a slow store shows up per resource.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ferry_store::{
    LeaseId, RangeRequest, RangeResponse, Result, Revision, Store, Txn, TxnResponse, WatchRequest,
    WatchStream,
};
use parking_lot::Mutex;

/// Upstream's buckets for `etcd_request_duration_seconds`.
const BUCKETS: &[f64] = &[
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// A store that times what passes through it.
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    /// (operation, resource) → latency histogram.
    latencies: Mutex<BTreeMap<(&'static str, String), Histogram>>,
}

/// The resource a key belongs to: its first path segment.
fn resource_of(key: &[u8]) -> String {
    let text = String::from_utf8_lossy(key);
    text.trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("")
        .to_string()
}

impl MeteredStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>) -> Arc<MeteredStore> {
        Arc::new(MeteredStore {
            inner,
            latencies: Mutex::new(BTreeMap::new()),
        })
    }

    fn observe(&self, operation: &'static str, key: &[u8], elapsed: Duration) {
        self.latencies
            .lock()
            .entry((operation, resource_of(key)))
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    /// Appends the histogram in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP etcd_request_duration_seconds Store request latency in seconds for each operation and object type.\n# TYPE etcd_request_duration_seconds histogram\n");
        for ((operation, resource), h) in self.latencies.lock().iter() {
            let labels = format!("operation=\"{operation}\",type=\"{resource}\"");
            for (bound, count) in BUCKETS.iter().zip(&h.counts) {
                let _ = writeln!(
                    out,
                    "etcd_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "etcd_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "etcd_request_duration_seconds_sum{{{labels}}} {:.6}",
                h.sum
            );
            let _ = writeln!(
                out,
                "etcd_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
    }
}

#[async_trait]
impl Store for MeteredStore {
    async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        let key = request.range.start.clone();
        let operation = if request.range.end == ferry_store::RangeEnd::Single {
            "get"
        } else {
            "list"
        };
        let started = Instant::now();
        let response = self.inner.range(request).await;
        self.observe(operation, &key, started.elapsed());
        response
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        let key = txn
            .compare
            .first()
            .map(|c| c.key.clone())
            .unwrap_or_default();
        let started = Instant::now();
        let response = self.inner.txn(txn).await;
        self.observe("txn", &key, started.elapsed());
        response
    }

    async fn watch(&self, request: WatchRequest) -> Result<WatchStream> {
        self.inner.watch(request).await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.inner.compact(revision).await
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.inner.current_revision().await
    }

    async fn lease_grant(&self, ttl: Duration) -> Result<(LeaseId, Duration)> {
        self.inner.lease_grant(ttl).await
    }

    async fn lease_keep_alive(&self, lease: LeaseId) -> Result<Duration> {
        self.inner.lease_keep_alive(lease).await
    }

    async fn lease_revoke(&self, lease: LeaseId) -> Result<()> {
        self.inner.lease_revoke(lease).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_per_bucket() {
        let mut h = Histogram::default();
        h.observe(0.001);
        h.observe(0.03);
        assert_eq!(h.counts[0], 1, "≤ 5 ms");
        assert_eq!(h.counts[2], 2, "≤ 50 ms");
        assert_eq!(h.count, 2);
        assert_eq!(resource_of(b"/pods/default/x"), "pods");
    }
}
