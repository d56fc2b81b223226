#![allow(missing_docs)]
//! The store's integration tests: the conformance suite against both backends (the etcd one
//! starts a real etcd from Debian's `etcd-server` package on a free loopback port), then the
//! embedded backend's durability: restart, crash (SIGKILL) and corrupt-file recovery.

mod conformance;
mod durability;

use std::sync::Arc;

use ferry_store::embedded::{Config, EmbeddedStore};
use ferry_store::etcd::process::EtcdProcess;
use ferry_store::etcd::EtcdStore;

/// A store under test and what keeps it alive (its directory, its etcd process).
pub struct Backend {
    pub store: conformance::Dyn,
    _guard: Box<dyn std::any::Any + Send>,
}

pub async fn embedded() -> Backend {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::new(dir.path());
    config.auto_compaction = None;
    let store = EmbeddedStore::open(config)
        .await
        .expect("open embedded store");
    Backend {
        store: Arc::new(store),
        _guard: Box::new(dir),
    }
}

pub async fn etcd() -> Backend {
    assert!(
        EtcdProcess::available(),
        "etcd is not installed: run scripts/install-deps.sh (Debian package etcd-server)"
    );
    let process = EtcdProcess::start().await.expect("start etcd");
    let store = EtcdStore::connect(&[process.endpoint()], "/registry")
        .await
        .expect("connect to etcd");
    Backend {
        store: Arc::new(store),
        _guard: Box::new(process),
    }
}

macro_rules! conformance_suite {
    ($backend:ident: $($case:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = super::$backend().await;
                    super::conformance::$case(backend.store.clone()).await;
                }
            )*
        }
    };
}

conformance_suite!(embedded: revisions, compare_and_swap, range_limit_and_continue,
    watch_from_old_revision, watch_slow_consumer, compaction, leases, lease_expiry,
    concurrent_writers, progress_notify);

conformance_suite!(etcd: revisions, compare_and_swap, range_limit_and_continue,
    watch_from_old_revision, watch_slow_consumer, compaction, leases, lease_expiry,
    concurrent_writers, progress_notify);
