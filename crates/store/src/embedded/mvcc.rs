//! The in-memory MVCC state: every key's versions, the event history that watches replay, and
//! the leases. Pure data: no I/O, no clock (callers pass `now`). The write-ahead log records the
//! concrete writes this module decides ([`WalRecord`]) and replays them through the same
//! `apply_*` functions, so recovery rebuilds exactly the state that was acknowledged.
//!
//! # Versions, by example
//!
//! Each key maps to its versions in revision order; a deletion is a version without value (a
//! tombstone). After these writes:
//!
//! ```text
//! rev 2: put a=1     rev 3: put a=2     rev 5: delete a     rev 7: put a=3
//! ```
//!
//! `a` holds `[2:"1" (create 2, version 1), 3:"2" (create 2, version 2), 5:tombstone,
//! 7:"3" (create 7, version 1)]`. A read at revision `r` takes the last version with
//! `mod_revision <= r`: at 4 it sees "2", at 6 nothing (the tombstone), at 9 "3".
//!
//! Compacting at revision 6 keeps the versions at or after 6 and, of the older ones, only the
//! last one if it is not a tombstone — here nothing older survives, since the last version
//! before 6 is the tombstone at 5 — so `a` holds `[7:"3"]`, a read at 6 still sees nothing and
//! a read at 4 fails with `Compacted`. The event history keeps the events with revision >= 6.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::error::StoreError;
use crate::kv::{
    Compare, CompareOp, CompareTarget, Event, EventKind, KeyRange, KeyValue, LeaseId, Op,
    OpResponse, RangeEnd, RangeRequest, RangeResponse, Result, Revision, Txn, TxnResponse,
};

/// One version of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Version {
    pub mod_revision: Revision,
    /// Position of the write within its transaction, so that events of one revision replay in
    /// the order they happened.
    pub sub: u32,
    pub create_revision: Revision,
    pub version: i64,
    pub lease: LeaseId,
    /// `None`: the key was deleted at `mod_revision`.
    pub value: Option<Bytes>,
}

impl Version {
    fn to_kv(&self, key: &Bytes) -> Option<KeyValue> {
        self.value.as_ref().map(|value| KeyValue {
            key: key.clone(),
            value: value.clone(),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            lease: self.lease,
        })
    }
}

/// A lease: its TTL, when it expires, and the keys attached to it.
#[derive(Clone, Debug)]
pub(crate) struct Lease {
    pub ttl: Duration,
    pub deadline: Instant,
    pub keys: BTreeSet<Bytes>,
}

/// A write as the log records it: the outcome of a transaction, not the transaction itself
/// (compares and ranges are already decided).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum WalRecord {
    /// The writes of one revision, in order.
    Txn {
        revision: Revision,
        writes: Vec<Write>,
    },
    /// A lease was granted.
    LeaseGrant { id: LeaseId, ttl: Duration },
    /// A lease was revoked or expired (its keys' deletions come in a `Txn` just before).
    LeaseRevoke { id: LeaseId },
    /// History before `revision` was dropped.
    Compact { revision: Revision },
}

/// One write of a [`WalRecord::Txn`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Write {
    Put {
        key: Bytes,
        value: Bytes,
        lease: LeaseId,
    },
    Delete {
        key: Bytes,
    },
}

/// The whole state of the embedded store.
#[derive(Debug, Default)]
pub(crate) struct Mvcc {
    pub(crate) keys: BTreeMap<Bytes, Vec<Version>>,
    /// Every change with revision >= `compact_revision`, in order.
    events: VecDeque<Event>,
    /// The newest revision written (durable or not: the caller tracks durability).
    pub(crate) current_revision: Revision,
    /// The oldest revision still readable; 0 before the first compaction.
    pub(crate) compact_revision: Revision,
    pub(crate) leases: HashMap<LeaseId, Lease>,
}

impl Mvcc {
    /// An empty store at revision 1, as a fresh etcd.
    pub fn new() -> Self {
        Mvcc {
            current_revision: 1,
            ..Mvcc::default()
        }
    }

    fn check_readable(&self, revision: Revision) -> Result<()> {
        if revision < self.compact_revision {
            return Err(StoreError::Compacted {
                requested: revision,
                compacted: self.compact_revision,
            });
        }
        Ok(())
    }

    /// The version of `key` visible at `revision`.
    fn visible(versions: &[Version], revision: Revision) -> Option<&Version> {
        let after = versions.partition_point(|v| v.mod_revision <= revision);
        versions[..after].last().filter(|v| v.value.is_some())
    }

    fn latest(&self, key: &[u8]) -> Option<&Version> {
        self.keys
            .get(key)
            .and_then(|v| v.last())
            .filter(|v| v.value.is_some())
    }

    /// Reads `request` as of `revision` (already resolved by the caller, never 0).
    pub fn range(&self, request: &RangeRequest, revision: Revision) -> Result<RangeResponse> {
        self.check_readable(revision)?;
        let mut response = RangeResponse {
            header_revision: revision,
            ..Default::default()
        };
        let limit = usize::try_from(request.limit).unwrap_or(0);
        let mut visit = |key: &Bytes, versions: &Vec<Version>| {
            if let Some(version) = Self::visible(versions, revision) {
                response.count += 1;
                if request.count_only {
                    return;
                }
                if limit == 0 || response.kvs.len() < limit {
                    response.kvs.extend(version.to_kv(key));
                } else {
                    response.more = true;
                }
            }
        };
        match &request.range.end {
            RangeEnd::Single => {
                if let Some((key, versions)) = self.keys.get_key_value(&request.range.start) {
                    visit(key, versions);
                }
            }
            RangeEnd::Before(end) => {
                if request.range.start < *end {
                    for (key, versions) in self.keys.range(request.range.start.clone()..end.clone())
                    {
                        visit(key, versions);
                    }
                }
            }
            RangeEnd::Unbounded => {
                for (key, versions) in self.keys.range(request.range.start.clone()..) {
                    visit(key, versions);
                }
            }
        }
        Ok(response)
    }

    /// Keys of `range` that exist now (for deletes).
    fn live_keys(&self, range: &KeyRange) -> Vec<Bytes> {
        let request = RangeRequest::new(range.clone());
        match self.range(&request, self.current_revision) {
            Ok(response) => response.kvs.into_iter().map(|kv| kv.key).collect(),
            Err(_) => Vec::new(),
        }
    }

    fn compare_holds(&self, compare: &Compare) -> bool {
        let latest = self.latest(&compare.key);
        let ordering = match &compare.target {
            CompareTarget::ModRevision(r) => latest.map_or(0, |v| v.mod_revision).cmp(r),
            CompareTarget::CreateRevision(r) => latest.map_or(0, |v| v.create_revision).cmp(r),
            CompareTarget::Version(n) => latest.map_or(0, |v| v.version).cmp(n),
            CompareTarget::Value(bytes) => match latest.and_then(|v| v.value.as_ref()) {
                Some(value) => value.cmp(bytes),
                // etcd: a value compare on a missing key fails whatever the operator.
                None => return false,
            },
        };
        match compare.op {
            CompareOp::Equal => ordering.is_eq(),
            CompareOp::NotEqual => ordering.is_ne(),
            CompareOp::Greater => ordering.is_gt(),
            CompareOp::Less => ordering.is_lt(),
        }
    }

    /// Rejects what etcd rejects before touching anything: a key written twice, a put to a
    /// lease that does not exist. Nothing is half-written on error.
    fn validate(&self, ops: &[Op]) -> Result<()> {
        let mut written: BTreeSet<&Bytes> = BTreeSet::new();
        for op in ops {
            if let Op::Put { key, lease, .. } = op {
                if !written.insert(key) {
                    return Err(StoreError::InvalidArgument(
                        "duplicate key given in txn request".into(),
                    ));
                }
                if *lease != 0 && !self.leases.contains_key(lease) {
                    return Err(StoreError::LeaseNotFound(*lease));
                }
            }
        }
        for op in ops {
            if let Op::Range(request) = op {
                if request.revision != 0 {
                    self.check_readable(request.revision)?;
                    if request.revision > self.current_revision {
                        return Err(StoreError::FutureRevision {
                            requested: request.revision,
                            current: self.current_revision,
                        });
                    }
                }
            }
            if let Op::Delete(range) = op {
                if written.iter().any(|key| range.contains(key)) {
                    return Err(StoreError::InvalidArgument(
                        "duplicate key given in txn request".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Runs a transaction: decides the compares, applies the chosen operations at revision
    /// `current + 1` and returns the response with the record to log (`None` if nothing changed,
    /// in which case the revision does not move, as in etcd).
    pub fn txn(&mut self, txn: &Txn) -> Result<(TxnResponse, Option<WalRecord>)> {
        let succeeded = txn.compare.iter().all(|c| self.compare_holds(c));
        let ops = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        self.validate(ops)?;
        let revision = self.current_revision + 1;
        let mut writes = Vec::new();
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                Op::Put { key, value, lease } => {
                    let write = Write::Put {
                        key: key.clone(),
                        value: value.clone(),
                        lease: *lease,
                    };
                    let prev_kv = self.apply(revision, writes.len() as u32, &write);
                    writes.push(write);
                    responses.push(OpResponse::Put { prev_kv });
                }
                Op::Delete(range) => {
                    let mut prev_kvs = Vec::new();
                    for key in self.live_keys(range) {
                        let write = Write::Delete { key };
                        prev_kvs.extend(self.apply(revision, writes.len() as u32, &write));
                        writes.push(write);
                    }
                    responses.push(OpResponse::Delete { prev_kvs });
                }
                Op::Range(request) => {
                    // Reads inside a transaction see its earlier writes; `validate` checked
                    // that an explicit revision is readable.
                    let at = if request.revision == 0 {
                        revision
                    } else {
                        request.revision
                    };
                    responses.push(OpResponse::Range(self.range(request, at)?));
                }
            }
        }
        let record = if writes.is_empty() {
            None
        } else {
            self.current_revision = revision;
            Some(WalRecord::Txn { revision, writes })
        };
        for response in &mut responses {
            if let OpResponse::Range(range) = response {
                range.header_revision = self.current_revision;
            }
        }
        let response = TxnResponse {
            succeeded,
            header_revision: self.current_revision,
            responses,
        };
        Ok((response, record))
    }

    /// Applies one write at `revision`, recording its event; returns the previous version.
    fn apply(&mut self, revision: Revision, sub: u32, write: &Write) -> Option<KeyValue> {
        let key = match write {
            Write::Put { key, .. } | Write::Delete { key } => key.clone(),
        };
        let versions = self.keys.entry(key.clone()).or_default();
        let prev = versions.last().filter(|v| v.value.is_some()).cloned();
        let prev_kv = prev.as_ref().and_then(|v| v.to_kv(&key));
        if let Some(old_lease) = prev.as_ref().map(|v| v.lease).filter(|l| *l != 0) {
            if let Some(lease) = self.leases.get_mut(&old_lease) {
                lease.keys.remove(&key);
            }
        }
        let version = match write {
            Write::Put { value, lease, .. } => {
                if *lease != 0 {
                    if let Some(l) = self.leases.get_mut(lease) {
                        l.keys.insert(key.clone());
                    }
                }
                Version {
                    mod_revision: revision,
                    sub,
                    create_revision: prev.as_ref().map_or(revision, |p| p.create_revision),
                    version: prev.as_ref().map_or(1, |p| p.version + 1),
                    lease: *lease,
                    value: Some(value.clone()),
                }
            }
            Write::Delete { .. } => Version {
                mod_revision: revision,
                sub,
                create_revision: 0,
                version: 0,
                lease: 0,
                value: None,
            },
        };
        let event = event_of(&key, &version, prev_kv.clone());
        let versions = self.keys.entry(key).or_default();
        versions.push(version);
        self.events.push_back(event);
        prev_kv
    }

    /// Re-applies a logged record during recovery. `now` starts replayed leases' TTLs afresh,
    /// as etcd does when a leader restarts.
    pub fn replay(&mut self, record: &WalRecord, now: Instant) -> Result<()> {
        match record {
            WalRecord::Txn { revision, writes } => {
                if *revision <= self.current_revision {
                    return Err(StoreError::InvalidArgument(format!(
                        "log record at revision {revision} is not after {}",
                        self.current_revision
                    )));
                }
                for (sub, write) in writes.iter().enumerate() {
                    self.apply(*revision, sub as u32, write);
                }
                self.current_revision = *revision;
            }
            WalRecord::LeaseGrant { id, ttl } => {
                self.grant_lease(*id, *ttl, now);
            }
            WalRecord::LeaseRevoke { id } => {
                self.leases.remove(id);
            }
            WalRecord::Compact { revision } => self.compact(*revision)?,
        }
        Ok(())
    }

    /// Registers a lease.
    pub fn grant_lease(&mut self, id: LeaseId, ttl: Duration, now: Instant) {
        self.leases.insert(
            id,
            Lease {
                ttl,
                deadline: now + ttl,
                keys: BTreeSet::new(),
            },
        );
    }

    /// Pushes a lease's deadline to `now + ttl`.
    pub fn keep_alive(&mut self, id: LeaseId, now: Instant) -> Result<Duration> {
        let lease = self
            .leases
            .get_mut(&id)
            .ok_or(StoreError::LeaseNotFound(id))?;
        lease.deadline = now + lease.ttl;
        Ok(lease.ttl)
    }

    /// Revokes a lease: deletes its keys at one new revision. Returns the records to log.
    pub fn revoke_lease(&mut self, id: LeaseId) -> Result<Vec<WalRecord>> {
        let lease = self.leases.get(&id).ok_or(StoreError::LeaseNotFound(id))?;
        let deletes = lease
            .keys
            .iter()
            .cloned()
            .map(|key| Op::Delete(KeyRange::key(key)));
        let txn = Txn::new().and_then(deletes);
        let (_, record) = self.txn(&txn)?;
        self.leases.remove(&id);
        Ok(record
            .into_iter()
            .chain([WalRecord::LeaseRevoke { id }])
            .collect())
    }

    /// Leases whose deadline has passed.
    pub fn expired_leases(&self, now: Instant) -> Vec<LeaseId> {
        self.leases
            .iter()
            .filter(|(_, l)| l.deadline <= now)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Drops history before `revision`. See the module documentation.
    pub fn compact(&mut self, revision: Revision) -> Result<()> {
        if revision <= self.compact_revision {
            return Err(StoreError::Compacted {
                requested: revision,
                compacted: self.compact_revision,
            });
        }
        if revision > self.current_revision {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current: self.current_revision,
            });
        }
        self.keys.retain(|_, versions| {
            let first_kept = versions.partition_point(|v| v.mod_revision < revision);
            let keep_older = first_kept > 0 && versions[first_kept - 1].value.is_some();
            let drop = if keep_older {
                first_kept - 1
            } else {
                first_kept
            };
            versions.drain(..drop);
            !versions.is_empty()
        });
        let first_event = self.events.partition_point(|e| e.revision() < revision);
        self.events.drain(..first_event);
        self.compact_revision = revision;
        Ok(())
    }

    /// After a restore, as `etcdutl snapshot restore --bump-revision --mark-compacted`: moves
    /// the revision `bump` ahead (past any revision clients of the old cluster may hold) and
    /// makes it the compacted revision, so a watch or read from any earlier revision gets
    /// `Compacted` (410) and clients relist. Keys keep their revisions.
    pub fn mark_compacted(&mut self, bump: Revision) {
        self.current_revision += bump.max(0);
        self.compact_revision = self.current_revision;
        let first_event = self
            .events
            .partition_point(|e| e.revision() < self.compact_revision);
        self.events.drain(..first_event);
    }

    /// Events of `range` with revision in `[from, to]`, at most about `max` of them but never
    /// splitting a revision. Fails if `from` was compacted.
    pub fn events(
        &self,
        range: &KeyRange,
        from: Revision,
        to: Revision,
        max: usize,
        prev_kv: bool,
    ) -> Result<Vec<Event>> {
        self.check_readable(from)?;
        let start = self.events.partition_point(|e| e.revision() < from);
        let mut out: Vec<Event> = Vec::new();
        for event in self.events.range(start..) {
            let revision = event.revision();
            if revision > to {
                break;
            }
            if out.len() >= max && out.last().is_some_and(|last| last.revision() != revision) {
                break;
            }
            if range.contains(&event.kv.key) {
                let mut event = event.clone();
                if !prev_kv {
                    event.prev_kv = None;
                }
                out.push(event);
            }
        }
        Ok(out)
    }

    /// Rebuilds the event history from the versions (after loading a snapshot): the versions
    /// kept hold every change since the compacted revision, and the version before each change.
    pub fn rebuild_events(&mut self) {
        let mut events: Vec<(Revision, u32, Event)> = Vec::new();
        for (key, versions) in &self.keys {
            for (i, version) in versions.iter().enumerate() {
                if version.mod_revision < self.compact_revision {
                    continue;
                }
                let prev = i.checked_sub(1).and_then(|p| versions[p].to_kv(key));
                events.push((
                    version.mod_revision,
                    version.sub,
                    event_of(key, version, prev),
                ));
            }
        }
        events.sort_by_key(|(revision, sub, _)| (*revision, *sub));
        self.events = events.into_iter().map(|(_, _, e)| e).collect();
    }

    /// Rebuilds the leases' key sets from the versions (after loading a snapshot).
    pub fn rebuild_lease_keys(&mut self) {
        for lease in self.leases.values_mut() {
            lease.keys.clear();
        }
        for (key, versions) in &self.keys {
            if let Some(latest) = versions
                .last()
                .filter(|v| v.value.is_some() && v.lease != 0)
            {
                if let Some(lease) = self.leases.get_mut(&latest.lease) {
                    lease.keys.insert(key.clone());
                }
            }
        }
    }

    /// Bytes of keys and values held, for snapshot decisions and metrics.
    pub fn approximate_size(&self) -> usize {
        self.keys
            .iter()
            .map(|(k, vs)| {
                k.len()
                    + vs.iter()
                        .map(|v| 40 + v.value.as_ref().map_or(0, |b| b.len()))
                        .sum::<usize>()
            })
            .sum()
    }
}

fn event_of(key: &Bytes, version: &Version, prev_kv: Option<KeyValue>) -> Event {
    match version.to_kv(key) {
        Some(kv) => Event {
            kind: EventKind::Put,
            kv,
            prev_kv,
        },
        None => Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: key.clone(),
                value: Bytes::new(),
                create_revision: 0,
                mod_revision: version.mod_revision,
                version: 0,
                lease: 0,
            },
            prev_kv,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn put(m: &mut Mvcc, key: &str, value: &str) -> Revision {
        let (response, _) = m
            .txn(&Txn::new().and_then([Op::put(b(key), b(value))]))
            .expect("put");
        response.header_revision
    }

    fn get_at(m: &Mvcc, key: &str, revision: Revision) -> Result<Option<String>> {
        let response = m.range(&RangeRequest::new(KeyRange::key(b(key))), revision)?;
        Ok(response
            .kvs
            .first()
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()))
    }

    #[test]
    fn worked_example_of_the_module_docs() {
        let mut m = Mvcc::new();
        assert_eq!(put(&mut m, "a", "1"), 2);
        assert_eq!(put(&mut m, "a", "2"), 3);
        assert_eq!(put(&mut m, "other", "x"), 4);
        let (deleted, _) = m
            .txn(&Txn::new().and_then([Op::delete(b("a"))]))
            .expect("delete");
        assert_eq!(deleted.header_revision, 5);
        put(&mut m, "other", "y");
        assert_eq!(put(&mut m, "a", "3"), 7);
        assert_eq!(get_at(&m, "a", 4).expect("read"), Some("2".into()));
        assert_eq!(get_at(&m, "a", 6).expect("read"), None);
        assert_eq!(get_at(&m, "a", 9).expect("read"), Some("3".into()));
        let latest = m.latest(b"a").expect("a exists");
        assert_eq!((latest.create_revision, latest.version), (7, 1));

        m.compact(6).expect("compact");
        assert_eq!(m.keys[&b("a")].len(), 1);
        assert_eq!(get_at(&m, "a", 6).expect("read"), None);
        assert_eq!(get_at(&m, "other", 6).expect("read"), Some("y".into()));
        assert!(matches!(
            get_at(&m, "a", 4),
            Err(StoreError::Compacted { compacted: 6, .. })
        ));
        let events = m
            .events(&KeyRange::prefix(Bytes::new()), 6, 7, 100, true)
            .expect("events");
        assert_eq!(
            events.iter().map(Event::revision).collect::<Vec<_>>(),
            vec![6, 7]
        );
        assert_eq!(
            events[0].prev_kv.as_ref().map(|kv| kv.value.clone()),
            Some(b("x"))
        );
    }

    #[test]
    fn deleting_nothing_does_not_move_the_revision() {
        let mut m = Mvcc::new();
        let (response, record) = m
            .txn(&Txn::new().and_then([Op::delete(b("missing"))]))
            .expect("txn");
        assert_eq!(response.header_revision, 1);
        assert!(record.is_none());
    }

    #[test]
    fn duplicate_keys_and_unknown_leases_are_rejected_without_writing() {
        let mut m = Mvcc::new();
        let twice = Txn::new().and_then([Op::put(b("k"), b("1")), Op::put(b("k"), b("2"))]);
        assert!(matches!(m.txn(&twice), Err(StoreError::InvalidArgument(_))));
        let overlap = Txn::new().and_then([
            Op::put(b("p/k"), b("1")),
            Op::Delete(KeyRange::prefix(b("p/"))),
        ]);
        assert!(matches!(
            m.txn(&overlap),
            Err(StoreError::InvalidArgument(_))
        ));
        let leased = Txn::new().and_then([
            Op::put(b("x"), b("1")),
            Op::Put {
                key: b("k"),
                value: b("v"),
                lease: 42,
            },
        ]);
        assert!(matches!(m.txn(&leased), Err(StoreError::LeaseNotFound(42))));
        assert!(m.keys.is_empty());
        assert_eq!(m.current_revision, 1);
    }

    #[test]
    fn replaying_records_rebuilds_the_same_state() {
        let now = Instant::now();
        let mut live = Mvcc::new();
        let mut log = Vec::new();
        live.grant_lease(9, Duration::from_secs(10), now);
        log.push(WalRecord::LeaseGrant {
            id: 9,
            ttl: Duration::from_secs(10),
        });
        for txn in [
            Txn::new().and_then([Op::put(b("a"), b("1")), Op::put(b("b"), b("1"))]),
            Txn::new().and_then([Op::Put {
                key: b("l"),
                value: b("v"),
                lease: 9,
            }]),
            Txn::new()
                .when([Compare::absent(b("a"))])
                .and_then([Op::put(b("a"), b("x"))])
                .or_else([Op::put(b("a"), b("2"))]),
            Txn::new().and_then([Op::Delete(KeyRange::prefix(b("b")))]),
        ] {
            let (_, record) = live.txn(&txn).expect("txn");
            log.extend(record);
        }
        log.extend(live.revoke_lease(9).expect("revoke"));
        let mut replayed = Mvcc::new();
        for record in &log {
            replayed.replay(record, now).expect("replay");
        }
        assert_eq!(replayed.keys, live.keys);
        assert_eq!(replayed.current_revision, live.current_revision);
        assert_eq!(replayed.events, live.events);
        assert!(replayed.leases.is_empty());
        let mut rebuilt = Mvcc {
            keys: live.keys.clone(),
            current_revision: live.current_revision,
            ..Mvcc::default()
        };
        rebuilt.rebuild_events();
        assert_eq!(rebuilt.events, live.events);
    }

    #[test]
    fn events_never_split_a_revision() {
        let mut m = Mvcc::new();
        m.txn(&Txn::new().and_then([
            Op::put(b("a"), b("1")),
            Op::put(b("b"), b("1")),
            Op::put(b("c"), b("1")),
        ]))
        .expect("txn");
        put(&mut m, "d", "1");
        let all = KeyRange::prefix(Bytes::new());
        let first = m.events(&all, 0, 10, 1, false).expect("events");
        assert_eq!(first.len(), 3);
        assert!(first.iter().all(|e| e.prev_kv.is_none()));
        let rest = m.events(&all, 3, 10, 1, false).expect("events");
        assert_eq!(rest.len(), 1);
    }

    #[test]
    fn lease_revocation_deletes_attached_keys_at_one_revision() {
        let now = Instant::now();
        let mut m = Mvcc::new();
        m.grant_lease(5, Duration::from_secs(1), now);
        m.txn(&Txn::new().and_then([
            Op::Put {
                key: b("e1"),
                value: b("v"),
                lease: 5,
            },
            Op::Put {
                key: b("e2"),
                value: b("v"),
                lease: 5,
            },
        ]))
        .expect("txn");
        // Overwriting without a lease detaches the key.
        put(&mut m, "e2", "kept");
        assert_eq!(m.expired_leases(now + Duration::from_secs(2)), vec![5]);
        let records = m.revoke_lease(5).expect("revoke");
        assert_eq!(records.len(), 2);
        assert_eq!(get_at(&m, "e1", m.current_revision).expect("read"), None);
        assert_eq!(
            get_at(&m, "e2", m.current_revision).expect("read"),
            Some("kept".into())
        );
        assert!(matches!(
            m.keep_alive(5, now),
            Err(StoreError::LeaseNotFound(5))
        ));
    }
}
