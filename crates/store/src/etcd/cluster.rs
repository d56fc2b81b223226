//! The store over the members of one etcd cluster, failing over when a member is down, as
//! etcd's own v3.3 Go client does: requests go to one member (the first that answers); when it
//! cannot be reached they go to the next, and the next request starts there.
//!
//! Why not `etcd-client`'s balanced channel over every endpoint: it keeps sending half the
//! requests to a member that refuses connections (tonic's lazy endpoints report themselves
//! ready and fail each call), so one dead member fails a server's writes for good.
//!
//! What is retried on another member: any request that never reached the first (its
//! connection could not be made), and reads (ranges, watches, keep-alives) whatever the
//! failure. A write whose member went away after it was sent is not: it may have been applied
//! (a retried create would then answer "already exists"), so the caller gets the error, as
//! etcd's client only retries mutations it knows were not sent.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::EtcdStore;
use crate::error::StoreError;
use crate::kv::{
    LeaseId, RangeRequest, RangeResponse, Result, Revision, Store, Txn, TxnResponse, WatchRequest,
    WatchStream,
};

/// Whether a request may be sent again to another member after `error`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Retry {
    /// Only when it never reached the member (writes).
    NotSent,
    /// Whenever the member was unavailable (reads, idempotent calls).
    Unavailable,
}

/// The request never left: the connection to the member could not be made.
fn not_sent(error: &StoreError) -> bool {
    matches!(error, StoreError::Etcd(message)
        if message.contains("tcp connect error")
            || message.contains("Connection refused")
            || message.contains("error trying to connect"))
}

/// The member did not answer: down, unreachable, or without a leader.
fn unavailable(error: &StoreError) -> bool {
    not_sent(error)
        || matches!(error, StoreError::Etcd(message)
            if message.starts_with("Unavailable")
                || message.contains("transport error")
                || message.contains("error reading a body from connection")
                || message.contains("no leader"))
}

/// A [`Store`] over the members of one etcd cluster (see the module documentation).
pub struct EtcdCluster {
    /// One client per member, each connected to that member alone.
    members: Vec<EtcdStore>,
    /// The member requests go to first.
    current: AtomicUsize,
}

impl EtcdCluster {
    /// Clients for the members at `endpoints` (`http://127.0.0.2:2379,...`), every key under
    /// `prefix`. Connections are made lazily.
    pub async fn connect(endpoints: &[String], prefix: impl Into<Bytes>) -> Result<EtcdCluster> {
        if endpoints.is_empty() {
            return Err(StoreError::InvalidArgument("no etcd endpoints".into()));
        }
        let prefix: Bytes = prefix.into();
        let mut members = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            members.push(EtcdStore::connect(std::slice::from_ref(endpoint), prefix.clone()).await?);
        }
        Ok(EtcdCluster {
            members,
            current: AtomicUsize::new(0),
        })
    }

    /// The members' clients, in the order of the endpoints given.
    pub fn members(&self) -> &[EtcdStore] {
        &self.members
    }

    /// Runs `call` on the current member, then on the others in turn while `retry` allows;
    /// the member that answers becomes the current one.
    async fn call<'a, T, F, Fut>(&'a self, retry: Retry, call: F) -> Result<T>
    where
        F: Fn(&'a EtcdStore) -> Fut,
        Fut: std::future::Future<Output = Result<T>> + 'a,
    {
        let first = self.current.load(Ordering::Relaxed) % self.members.len();
        let mut last = None;
        for step in 0..self.members.len() {
            let index = (first + step) % self.members.len();
            match call(&self.members[index]).await {
                Ok(value) => {
                    if step > 0 {
                        self.current.store(index, Ordering::Relaxed);
                        tracing::info!(member = index, "etcd: failed over to another member");
                    }
                    return Ok(value);
                }
                Err(error) => {
                    let again = match retry {
                        Retry::NotSent => not_sent(&error),
                        Retry::Unavailable => unavailable(&error),
                    };
                    if !again {
                        // The member is reachable but the request may have been applied: the
                        // next request still goes elsewhere if this one is down.
                        if unavailable(&error) {
                            self.current
                                .store((index + 1) % self.members.len(), Ordering::Relaxed);
                        }
                        return Err(error);
                    }
                    tracing::debug!(member = index, %error, "etcd member unavailable");
                    last = Some(error);
                }
            }
        }
        Err(last.unwrap_or_else(|| StoreError::Etcd("no etcd member answered".into())))
    }
}

#[async_trait]
impl Store for EtcdCluster {
    async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        self.call(Retry::Unavailable, |m| m.range(request.clone()))
            .await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        // A transaction that only reads may go anywhere.
        let read_only = txn
            .success
            .iter()
            .chain(&txn.failure)
            .all(|op| matches!(op, crate::kv::Op::Range(_)));
        let retry = if read_only {
            Retry::Unavailable
        } else {
            Retry::NotSent
        };
        self.call(retry, |m| m.txn(txn.clone())).await
    }

    async fn watch(&self, request: WatchRequest) -> Result<WatchStream> {
        self.call(Retry::Unavailable, |m| m.watch(request.clone()))
            .await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        // Compacting twice to one revision is harmless.
        self.call(Retry::Unavailable, |m| m.compact(revision)).await
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.call(Retry::Unavailable, |m| m.current_revision())
            .await
    }

    async fn lease_grant(&self, ttl: Duration) -> Result<(LeaseId, Duration)> {
        self.call(Retry::NotSent, |m| m.lease_grant(ttl)).await
    }

    async fn lease_keep_alive(&self, lease: LeaseId) -> Result<Duration> {
        self.call(Retry::Unavailable, |m| m.lease_keep_alive(lease))
            .await
    }

    async fn lease_revoke(&self, lease: LeaseId) -> Result<()> {
        // Revoking twice answers "not found" the second time, which callers accept.
        self.call(Retry::Unavailable, |m| m.lease_revoke(lease))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_failures_are_retried() {
        let etcd = |m: &str| StoreError::Etcd(m.to_string());
        let refused = etcd("Unavailable: tcp connect error");
        assert!(not_sent(&refused) && unavailable(&refused));
        let gone = etcd("Unavailable: error reading a body from connection");
        assert!(!not_sent(&gone) && unavailable(&gone));
        let leaderless = etcd("Unavailable: etcdserver: no leader");
        assert!(!not_sent(&leaderless) && unavailable(&leaderless));
        let timeout = etcd("Unknown: etcdserver: request timed out");
        assert!(!unavailable(&timeout));
        assert!(!unavailable(&StoreError::LeaseNotFound(7)));
    }

    #[tokio::test]
    async fn requests_go_to_a_member_that_answers() {
        let Ok(etcd) = super::super::process::EtcdProcess::start().await else {
            eprintln!("no etcd (Debian package etcd-server): skipped");
            return;
        };
        // A port nothing listens on comes first: the request fails over to the live member.
        let dead = {
            let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            format!("http://{}", socket.local_addr().expect("address"))
        };
        let cluster = EtcdCluster::connect(&[dead, etcd.endpoint()], "/registry")
            .await
            .expect("connect");
        let revision = cluster
            .put(Bytes::from_static(b"/k"), Bytes::from_static(b"v"))
            .await
            .expect("put fails over");
        assert!(revision > 0);
        assert_eq!(cluster.current.load(Ordering::Relaxed), 1);
        let kv = cluster.get(b"/k").await.expect("get").expect("present");
        assert_eq!(&kv.value[..], b"v");
    }
}
