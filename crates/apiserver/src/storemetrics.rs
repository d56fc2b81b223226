//! Store latency for `/metrics`: a [`Store`] wrapper timing every range and transaction into
//! upstream's `etcd_request_duration_seconds` histogram, labelled by operation and by the
//! resource the key belongs to (`/pods/…` → `pods`), so a slow store shows up per resource.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ferry_store::{
    LeaseId, RangeRequest, RangeResponse, Result, Revision, Store, Txn, TxnResponse, WatchRequest,
    WatchStream,
};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upstream's buckets for `etcd_request_duration_seconds`.
const BUCKETS: &[f64] = &[
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

/// The histogram's labels, as upstream's.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    operation: &'static str,
    #[prometheus(flatten)]
    object: ObjectType,
}

/// `type`: the resource a key belongs to (a keyword in Rust, hence the wrapper).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ObjectType {
    r#type: String,
}

type Latencies = Family<StoreLabels, Histogram, fn() -> Histogram>;

fn histogram() -> Histogram {
    Histogram::new(BUCKETS.iter().copied())
}

/// A store that times what passes through it.
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    latencies: Latencies,
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
    /// Wraps `inner`; its histogram is registered in `registry`.
    pub fn new(inner: Arc<dyn Store>, registry: &mut Registry) -> Arc<MeteredStore> {
        let latencies = Latencies::new_with_constructor(histogram);
        registry.register(
            "etcd_request_duration_seconds",
            "Store request latency in seconds for each operation and object type",
            latencies.clone(),
        );
        Arc::new(MeteredStore { inner, latencies })
    }

    fn observe(&self, operation: &'static str, key: &[u8], elapsed: Duration) {
        let labels = StoreLabels {
            operation,
            object: ObjectType {
                r#type: resource_of(key),
            },
        };
        self.latencies
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
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

    async fn is_stale(&self, key: &[u8]) -> Result<bool> {
        self.inner.is_stale(key).await
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
    fn latencies_per_operation_and_resource() {
        assert_eq!(resource_of(b"/pods/default/x"), "pods");
        let mut registry = Registry::default();
        let store = MeteredStore {
            inner: Arc::new(NoStore),
            latencies: Latencies::new_with_constructor(histogram),
        };
        registry.register(
            "etcd_request_duration_seconds",
            "latency",
            store.latencies.clone(),
        );
        store.observe("txn", b"/pods/default/x", Duration::from_millis(1));
        store.observe("txn", b"/pods/default/y", Duration::from_millis(30));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(text.contains("etcd_request_duration_seconds_bucket{le=\"0.005\",operation=\"txn\",type=\"pods\"} 1\n")
            || text.contains("etcd_request_duration_seconds_bucket{operation=\"txn\",type=\"pods\",le=\"0.005\"} 1\n"), "{text}");
        assert!(
            text.contains(
                "etcd_request_duration_seconds_count{operation=\"txn\",type=\"pods\"} 2\n"
            ),
            "{text}"
        );
    }

    /// A store that is never called.
    struct NoStore;

    #[async_trait]
    impl Store for NoStore {
        async fn range(&self, _: RangeRequest) -> Result<RangeResponse> {
            unreachable!()
        }
        async fn txn(&self, _: Txn) -> Result<TxnResponse> {
            unreachable!()
        }
        async fn watch(&self, _: WatchRequest) -> Result<WatchStream> {
            unreachable!()
        }
        async fn compact(&self, _: Revision) -> Result<()> {
            unreachable!()
        }
        async fn current_revision(&self) -> Result<Revision> {
            unreachable!()
        }
        async fn lease_grant(&self, _: Duration) -> Result<(LeaseId, Duration)> {
            unreachable!()
        }
        async fn lease_keep_alive(&self, _: LeaseId) -> Result<Duration> {
            unreachable!()
        }
        async fn lease_revoke(&self, _: LeaseId) -> Result<()> {
            unreachable!()
        }
    }
}
