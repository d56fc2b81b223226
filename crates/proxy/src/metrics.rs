//! The proxy's metrics, with kube-proxy's names (`pkg/proxy/metrics`), served by the agent on
//! kube-proxy's metrics address. ferry serves IPv4 only, so every series has
//! `ip_family="IPv4"`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// kube-proxy's buckets for sync durations: 1 ms doubling 15 times.
fn sync_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// What the proxy counts and times.
#[derive(Debug)]
pub struct Metrics {
    /// Every applied sync's duration.
    pub sync_duration: Histogram,
    /// Full syncs' durations (the whole table rewritten).
    pub full_sync_duration: Histogram,
    /// Partial syncs' durations (only what changed).
    pub partial_sync_duration: Histogram,
    /// When the rules were last synced, in seconds since the epoch.
    pub last_sync: Gauge<f64, AtomicU64>,
    /// nft transactions that failed (each retried as a full sync).
    pub sync_failures: Counter,
    /// Stale UDP conntrack entries deleted.
    pub conntrack_deleted: Counter,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            sync_duration: sync_buckets(),
            full_sync_duration: sync_buckets(),
            partial_sync_duration: sync_buckets(),
            last_sync: Gauge::default(),
            sync_failures: Counter::default(),
            conntrack_deleted: Counter::default(),
        }
    }
}

impl Metrics {
    /// Records a sync that took `took`.
    pub(crate) fn synced(&self, full: bool, took: Duration) {
        let seconds = took.as_secs_f64();
        self.sync_duration.observe(seconds);
        if full {
            self.full_sync_duration.observe(seconds);
        } else {
            self.partial_sync_duration.observe(seconds);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.last_sync.set(now.as_secs_f64());
    }

    /// Adds the metrics to `registry` under kube-proxy's names.
    pub fn register(&self, registry: &mut Registry) {
        let proxy = registry
            .sub_registry_with_prefix("kubeproxy")
            .sub_registry_with_label(("ip_family".into(), "IPv4".into()));
        proxy.register(
            "sync_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds",
            self.sync_duration.clone(),
        );
        proxy.register(
            "sync_full_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for full resyncs",
            self.full_sync_duration.clone(),
        );
        proxy.register(
            "sync_partial_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for partial resyncs",
            self.partial_sync_duration.clone(),
        );
        proxy.register(
            "sync_proxy_rules_last_timestamp_seconds",
            "The last time proxy rules were successfully synced",
            self.last_sync.clone(),
        );
        proxy.register(
            "sync_proxy_rules_nftables_sync_failures",
            "Cumulative proxy nftables sync failures",
            self.sync_failures.clone(),
        );
        proxy.register(
            "conntrack_reconciler_deleted_entries",
            "Cumulative conntrack flows deleted by conntrack reconciler",
            self.conntrack_deleted.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_proxys_names_with_the_ip_family() {
        let metrics = Metrics::default();
        metrics.synced(false, Duration::from_millis(3));
        metrics.synced(true, Duration::from_millis(40));
        metrics.sync_failures.inc();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        for line in [
            "kubeproxy_sync_proxy_rules_duration_seconds_count{ip_family=\"IPv4\"} 2",
            "kubeproxy_sync_full_proxy_rules_duration_seconds_count{ip_family=\"IPv4\"} 1",
            "kubeproxy_sync_partial_proxy_rules_duration_seconds_bucket{ip_family=\"IPv4\",le=\"0.004\"} 1",
            "kubeproxy_sync_proxy_rules_nftables_sync_failures_total{ip_family=\"IPv4\"} 1",
            "kubeproxy_conntrack_reconciler_deleted_entries_total{ip_family=\"IPv4\"} 0",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(text
            .contains("kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family=\"IPv4\"} 1"));
    }
}
