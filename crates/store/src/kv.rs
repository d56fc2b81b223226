//! The interfaces: what a ferry store is, independent of its backend.
//!
//! The types mirror etcd v3's API (mvccpb.KeyValue, RangeRequest, TxnRequest, WatchRequest,
//! LeaseGrant) restricted to what a Kubernetes API server uses, so that the etcd backend is a thin
//! translation and the embedded backend can be checked against real etcd by one conformance suite.

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

use crate::error::StoreError;

/// A store revision: one cluster-wide counter, bumped once by every transaction that writes.
/// Kubernetes exposes it as `metadata.resourceVersion`.
pub type Revision = i64;

/// A lease id; `0` means "no lease", as in etcd.
pub type LeaseId = i64;

/// Result type of every store call.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One version of a key, as etcd's `mvccpb.KeyValue`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: Bytes,
    /// The value at this version.
    pub value: Bytes,
    /// Revision of the write that created the key (since its last deletion).
    pub create_revision: Revision,
    /// Revision of the write that produced this version.
    pub mod_revision: Revision,
    /// Number of writes since the key was created: 1 for a new key.
    pub version: i64,
    /// The lease the key is attached to, or 0.
    pub lease: LeaseId,
}

/// A range of keys: `[start, end)`, or the single key `start` when `end` is `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    /// First key of the range.
    pub start: Bytes,
    /// What ends the range.
    pub end: RangeEnd,
}

/// How a [`KeyRange`] ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeEnd {
    /// Only the key `start` itself.
    Single,
    /// Every key `>= start` and `< end`.
    Before(Bytes),
    /// Every key `>= start`.
    Unbounded,
}

impl KeyRange {
    /// Just one key.
    pub fn key(key: impl Into<Bytes>) -> Self {
        KeyRange {
            start: key.into(),
            end: RangeEnd::Single,
        }
    }

    /// Every key that starts with `prefix` (etcd's `WithPrefix`).
    pub fn prefix(prefix: impl Into<Bytes>) -> Self {
        let start = prefix.into();
        let end = match prefix_end(&start) {
            Some(end) => RangeEnd::Before(end),
            None => RangeEnd::Unbounded,
        };
        KeyRange { start, end }
    }

    /// Every key in `[start, end)`.
    pub fn between(start: impl Into<Bytes>, end: impl Into<Bytes>) -> Self {
        KeyRange {
            start: start.into(),
            end: RangeEnd::Before(end.into()),
        }
    }

    /// The same range, starting at `start` instead (used for `continue` tokens). For a single
    /// key the result is that key if it is not before `start`, else an empty range.
    pub fn starting_at(&self, start: Bytes) -> Self {
        KeyRange {
            start,
            end: self.end.clone(),
        }
    }

    /// Whether `key` lies in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        match &self.end {
            RangeEnd::Single => key == &self.start[..],
            RangeEnd::Before(end) => key >= &self.start[..] && key < &end[..],
            RangeEnd::Unbounded => key >= &self.start[..],
        }
    }
}

/// The smallest key greater than every key with `prefix`, or `None` if there is none (the
/// prefix is empty or all 0xff bytes). etcd's `GetPrefixRangeEnd`.
pub fn prefix_end(prefix: &[u8]) -> Option<Bytes> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end.into());
        }
    }
    None
}

/// A read of a key range, as etcd's `RangeRequest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeRequest {
    /// Which keys.
    pub range: KeyRange,
    /// Read at this revision; `0` means the latest.
    pub revision: Revision,
    /// At most this many keys; `0` means no limit.
    pub limit: i64,
    /// Only count the keys, return none.
    pub count_only: bool,
}

impl RangeRequest {
    /// A read of `range` at the latest revision, without limit.
    pub fn new(range: KeyRange) -> Self {
        RangeRequest {
            range,
            revision: 0,
            limit: 0,
            count_only: false,
        }
    }

    /// Read at `revision` (0: latest).
    pub fn at(mut self, revision: Revision) -> Self {
        self.revision = revision;
        self
    }

    /// Return at most `limit` keys (0: all).
    pub fn limit(mut self, limit: i64) -> Self {
        self.limit = limit;
        self
    }
}

/// The answer to a [`RangeRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeResponse {
    /// The revision the read was served at when none was asked for; otherwise the store's
    /// current revision (as etcd's response header).
    pub header_revision: Revision,
    /// The keys found, in key order (empty with `count_only`).
    pub kvs: Vec<KeyValue>,
    /// Whether more keys matched than `limit` let through.
    pub more: bool,
    /// How many keys matched in all, regardless of `limit`.
    pub count: i64,
}

/// A condition of a transaction, as etcd's `Compare`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    /// The key compared (a single key).
    pub key: Bytes,
    /// What is compared.
    pub target: CompareTarget,
    /// How.
    pub op: CompareOp,
}

/// What a [`Compare`] looks at. An absent key has all revisions and its version 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompareTarget {
    /// `mod_revision` against this value.
    ModRevision(Revision),
    /// `create_revision` against this value (0 means "the key does not exist").
    CreateRevision(Revision),
    /// `version` against this value.
    Version(i64),
    /// The value bytes against these.
    Value(Bytes),
}

/// The comparison of a [`Compare`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    /// Equal.
    Equal,
    /// Not equal.
    NotEqual,
    /// The key's field is greater.
    Greater,
    /// The key's field is less.
    Less,
}

impl Compare {
    /// The key does not exist (create-if-absent).
    pub fn absent(key: impl Into<Bytes>) -> Self {
        Compare {
            key: key.into(),
            target: CompareTarget::CreateRevision(0),
            op: CompareOp::Equal,
        }
    }

    /// The key was last written at `revision` (optimistic concurrency).
    pub fn mod_revision_is(key: impl Into<Bytes>, revision: Revision) -> Self {
        Compare {
            key: key.into(),
            target: CompareTarget::ModRevision(revision),
            op: CompareOp::Equal,
        }
    }
}

/// One operation of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Write `value` at `key`, attached to `lease` (0: none).
    Put {
        /// The key.
        key: Bytes,
        /// The new value.
        value: Bytes,
        /// Lease to attach the key to, or 0.
        lease: LeaseId,
    },
    /// Delete every key of the range.
    Delete(KeyRange),
    /// Read, seeing the writes of earlier operations of the same transaction.
    Range(RangeRequest),
}

impl Op {
    /// A put without lease.
    pub fn put(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Op::Put {
            key: key.into(),
            value: value.into(),
            lease: 0,
        }
    }

    /// A delete of one key.
    pub fn delete(key: impl Into<Bytes>) -> Self {
        Op::Delete(KeyRange::key(key))
    }

    /// A read of one key at the latest revision.
    pub fn get(key: impl Into<Bytes>) -> Self {
        Op::Range(RangeRequest::new(KeyRange::key(key)))
    }
}

/// A transaction: if every compare holds, run `success`, else `failure`; atomically, at one
/// revision. No key may be written twice in one transaction (etcd's rule).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Txn {
    /// Conditions, all of which must hold.
    pub compare: Vec<Compare>,
    /// Operations when they hold.
    pub success: Vec<Op>,
    /// Operations when one does not.
    pub failure: Vec<Op>,
}

impl Txn {
    /// An empty transaction.
    pub fn new() -> Self {
        Txn::default()
    }

    /// Adds conditions.
    pub fn when(mut self, compare: impl IntoIterator<Item = Compare>) -> Self {
        self.compare.extend(compare);
        self
    }

    /// Adds operations for success.
    pub fn and_then(mut self, ops: impl IntoIterator<Item = Op>) -> Self {
        self.success.extend(ops);
        self
    }

    /// Adds operations for failure.
    pub fn or_else(mut self, ops: impl IntoIterator<Item = Op>) -> Self {
        self.failure.extend(ops);
        self
    }
}

/// What one operation of a transaction gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResponse {
    /// A put; with the version it replaced, if any.
    Put {
        /// The previous version of the key.
        prev_kv: Option<KeyValue>,
    },
    /// A delete; with the versions it removed.
    Delete {
        /// The deleted keys' last versions, in key order.
        prev_kvs: Vec<KeyValue>,
    },
    /// A read.
    Range(RangeResponse),
}

/// The answer to a [`Txn`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnResponse {
    /// Whether the compares held (and `success` ran).
    pub succeeded: bool,
    /// The store's revision after the transaction: the transaction's own revision if it wrote.
    pub header_revision: Revision,
    /// One response per operation that ran.
    pub responses: Vec<OpResponse>,
}

/// A change to a key, as delivered by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Whether the key was written or deleted.
    pub kind: EventKind,
    /// The new version (PUT), or for DELETE the key with `mod_revision` of the deletion and an
    /// empty value (as etcd sends tombstones).
    pub kv: KeyValue,
    /// The version before this change, when there was one and the watch asked for it.
    pub prev_kv: Option<KeyValue>,
}

/// The kind of an [`Event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created or updated.
    Put,
    /// The key was deleted (also by lease expiry).
    Delete,
}

impl Event {
    /// The revision of the change.
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// What to watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchRequest {
    /// The keys.
    pub range: KeyRange,
    /// First revision to deliver; 0 means "changes after now".
    pub start_revision: Revision,
    /// Include the previous version in events.
    pub prev_kv: bool,
    /// When nothing happened for this long, send a progress notification (a response without
    /// events carrying the current revision), so that callers can emit watch bookmarks.
    pub progress_notify: Option<Duration>,
}

impl WatchRequest {
    /// A watch of `range` from now, with previous values and no progress notifications.
    pub fn new(range: KeyRange) -> Self {
        WatchRequest {
            range,
            start_revision: 0,
            prev_kv: true,
            progress_notify: None,
        }
    }

    /// Start at `revision` (events with `mod_revision >= revision`).
    pub fn from_revision(mut self, revision: Revision) -> Self {
        self.start_revision = revision;
        self
    }

    /// Send progress notifications after `every` of silence.
    pub fn progress_every(mut self, every: Duration) -> Self {
        self.progress_notify = Some(every);
        self
    }
}

/// One message of a watch: a batch of events in revision order, or — when `events` is empty —
/// a progress notification saying that everything up to `revision` has been delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchResponse {
    /// The store revision this message is current to.
    pub revision: Revision,
    /// The events, in revision order; no revision is split across two messages.
    pub events: Vec<Event>,
}

impl WatchResponse {
    /// Whether this is a progress notification.
    pub fn is_progress_notify(&self) -> bool {
        self.events.is_empty()
    }
}

/// A stream of watch messages. It ends with an `Err` when the watch cannot go on (its next
/// revision was compacted: [`StoreError::Compacted`]; the store closed; a backend failure) and
/// never drops events silently.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse>> + Send>>;

/// A key-value store with etcd v3 semantics. See the crate documentation.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reads a range of keys.
    async fn range(&self, request: RangeRequest) -> Result<RangeResponse>;

    /// Runs a transaction atomically; returns once its writes are durable.
    async fn txn(&self, txn: Txn) -> Result<TxnResponse>;

    /// Watches a range of keys from a revision.
    async fn watch(&self, request: WatchRequest) -> Result<WatchStream>;

    /// Drops history before `revision`: reads and watches at older revisions then fail with
    /// [`StoreError::Compacted`].
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// The latest revision.
    async fn current_revision(&self) -> Result<Revision>;

    /// Grants a lease living `ttl` unless kept alive; returns its id and granted TTL.
    async fn lease_grant(&self, ttl: Duration) -> Result<(LeaseId, Duration)>;

    /// Resets a lease's TTL; returns the TTL. Fails with [`StoreError::LeaseNotFound`] when the
    /// lease expired or was revoked.
    async fn lease_keep_alive(&self, lease: LeaseId) -> Result<Duration>;

    /// Revokes a lease, deleting its keys (as DELETE events, at one revision).
    async fn lease_revoke(&self, lease: LeaseId) -> Result<()>;

    /// Whether the value at `key` is held in a form this store would now write differently —
    /// an API server's encryption at rest with a key that is no longer the first — so that an
    /// update changing nothing must still be written (upstream's "stale" transformed data).
    /// Plain stores: never.
    async fn is_stale(&self, _key: &[u8]) -> Result<bool> {
        Ok(false)
    }

    /// Reads one key at the latest revision.
    async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        let response = self
            .range(RangeRequest::new(KeyRange::key(Bytes::copy_from_slice(
                key,
            ))))
            .await?;
        Ok(response.kvs.into_iter().next())
    }

    /// Writes a key unconditionally; returns the new revision.
    async fn put(&self, key: Bytes, value: Bytes) -> Result<Revision> {
        Ok(self
            .txn(Txn::new().and_then([Op::Put {
                key,
                value,
                lease: 0,
            }]))
            .await?
            .header_revision)
    }

    /// Creates a key if it is absent; returns its revision, or `None` if the key exists.
    async fn create(&self, key: Bytes, value: Bytes, lease: LeaseId) -> Result<Option<Revision>> {
        let txn = Txn::new()
            .when([Compare::absent(key.clone())])
            .and_then([Op::Put { key, value, lease }]);
        let response = self.txn(txn).await?;
        Ok(response.succeeded.then_some(response.header_revision))
    }

    /// Replaces a key if its `mod_revision` is `expected`; otherwise returns the key's current
    /// version (or `None` if it is gone) as `Err` — the API server's 409 Conflict.
    async fn update(
        &self,
        key: Bytes,
        expected: Revision,
        value: Bytes,
    ) -> Result<std::result::Result<Revision, Option<KeyValue>>> {
        let txn = Txn::new()
            .when([Compare::mod_revision_is(key.clone(), expected)])
            .and_then([Op::Put {
                key: key.clone(),
                value,
                lease: 0,
            }])
            .or_else([Op::get(key)]);
        let response = self.txn(txn).await?;
        if response.succeeded {
            return Ok(Ok(response.header_revision));
        }
        Ok(Err(current_of(response)))
    }

    /// Deletes a key if its `mod_revision` is `expected` (0: whatever it is); returns the deleted
    /// version, or as `Err` the key's current version (or `None` if it is gone).
    async fn delete(
        &self,
        key: Bytes,
        expected: Revision,
    ) -> Result<std::result::Result<KeyValue, Option<KeyValue>>> {
        let compare = if expected == 0 {
            Compare {
                key: key.clone(),
                target: CompareTarget::CreateRevision(0),
                op: CompareOp::Greater,
            }
        } else {
            Compare::mod_revision_is(key.clone(), expected)
        };
        let txn = Txn::new()
            .when([compare])
            .and_then([Op::delete(key.clone())])
            .or_else([Op::get(key)]);
        let response = self.txn(txn).await?;
        if !response.succeeded {
            return Ok(Err(current_of(response)));
        }
        match response.responses.into_iter().next() {
            Some(OpResponse::Delete { prev_kvs }) if !prev_kvs.is_empty() => {
                Ok(Ok(prev_kvs.into_iter().next().expect("checked non-empty")))
            }
            // Deleted between compare and delete cannot happen in one transaction.
            _ => Ok(Err(None)),
        }
    }
}

/// The key read by the failure branch of `update`/`delete`.
fn current_of(response: TxnResponse) -> Option<KeyValue> {
    match response.responses.into_iter().next() {
        Some(OpResponse::Range(range)) => range.kvs.into_iter().next(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte_below_0xff() {
        assert_eq!(prefix_end(b"/pods/"), Some(Bytes::from_static(b"/pods0")));
        assert_eq!(prefix_end(b"a\xff"), Some(Bytes::from_static(b"b")));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn key_range_contains() {
        let pods = KeyRange::prefix(Bytes::from_static(b"/pods/"));
        assert!(pods.contains(b"/pods/default/a"));
        assert!(!pods.contains(b"/pods0"));
        assert!(!pods.contains(b"/pod"));
        assert!(KeyRange::key(Bytes::from_static(b"k")).contains(b"k"));
        assert!(!KeyRange::key(Bytes::from_static(b"k")).contains(b"k2"));
        assert!(KeyRange::prefix(Bytes::new()).contains(b"anything"));
    }
}
