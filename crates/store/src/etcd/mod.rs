//! The etcd backend: the [`Store`] trait over a real etcd (v3 API) through `etcd-client`, every
//! key kept under a prefix (`/registry`, as kube-apiserver does). A thin translation: etcd
//! already has the semantics the trait describes. [`process::EtcdProcess`] starts a throwaway
//! etcd for tests and benchmarks.

pub mod cluster;
pub mod process;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client as etcd;
use futures::StreamExt;
use tokio::time::Instant;

use crate::error::StoreError;
use crate::kv::{
    prefix_end, Compare, CompareOp, CompareTarget, Event, EventKind, KeyRange, KeyValue, LeaseId,
    Op, OpResponse, RangeEnd, RangeRequest, RangeResponse, Result, Revision, Store, Txn,
    TxnResponse, WatchRequest, WatchResponse, WatchStream,
};

/// The largest message accepted from etcd. Lists of a large cluster exceed gRPC's default of
/// 4 MiB; etcd itself sends up to 2 GiB (as kube-apiserver, accept as much).
const MAX_MESSAGE: usize = i32::MAX as usize;

/// A [`Store`] kept in etcd, every key under a prefix.
#[derive(Clone)]
pub struct EtcdStore {
    kv: etcd::KvClient,
    watch: etcd::WatchClient,
    lease: etcd::LeaseClient,
    maintenance: etcd::MaintenanceClient,
    keys: Keys,
}

/// Translates keys between the caller's namespace and etcd's (`prefix + key`).
#[derive(Clone)]
struct Keys {
    prefix: Bytes,
}

impl Keys {
    fn to_etcd(&self, key: &[u8]) -> Vec<u8> {
        [&self.prefix[..], key].concat()
    }

    /// etcd's `(key, range_end)` for a range; `range_end` is empty for a single key.
    fn range(&self, range: &KeyRange) -> (Vec<u8>, Vec<u8>) {
        let end = match &range.end {
            RangeEnd::Single => Vec::new(),
            RangeEnd::Before(end) => self.to_etcd(end),
            // Everything under the prefix; with no prefix, etcd's "every key >= key".
            RangeEnd::Unbounded => {
                prefix_end(&self.prefix).map_or_else(|| vec![0], |end| end.to_vec())
            }
        };
        (self.to_etcd(&range.start), end)
    }

    fn kv(&self, kv: &etcd::KeyValue) -> KeyValue {
        let key = kv.key().strip_prefix(&self.prefix[..]).unwrap_or(kv.key());
        KeyValue {
            key: Bytes::copy_from_slice(key),
            value: Bytes::copy_from_slice(kv.value()),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
            version: kv.version(),
            lease: kv.lease(),
        }
    }

    fn range_response(&self, response: &etcd::GetResponse) -> RangeResponse {
        RangeResponse {
            header_revision: response.header().map_or(0, |h| h.revision()),
            kvs: response.kvs().iter().map(|kv| self.kv(kv)).collect(),
            more: response.more(),
            count: response.count(),
        }
    }

    fn get(&self, request: &RangeRequest) -> (Vec<u8>, etcd::GetOptions) {
        let (key, end) = self.range(&request.range);
        let mut options = etcd::GetOptions::new()
            .with_revision(request.revision)
            .with_limit(request.limit);
        if !end.is_empty() {
            options = options.with_range(end);
        }
        if request.count_only {
            options = options.with_count_only();
        }
        (key, options)
    }

    fn compare(&self, compare: &Compare) -> etcd::Compare {
        let key = self.to_etcd(&compare.key);
        let op = match compare.op {
            CompareOp::Equal => etcd::CompareOp::Equal,
            CompareOp::NotEqual => etcd::CompareOp::NotEqual,
            CompareOp::Greater => etcd::CompareOp::Greater,
            CompareOp::Less => etcd::CompareOp::Less,
        };
        match &compare.target {
            CompareTarget::ModRevision(r) => etcd::Compare::mod_revision(key, op, *r),
            CompareTarget::CreateRevision(r) => etcd::Compare::create_revision(key, op, *r),
            CompareTarget::Version(v) => etcd::Compare::version(key, op, *v),
            CompareTarget::Value(v) => etcd::Compare::value(key, op, v.to_vec()),
        }
    }

    fn op(&self, op: &Op) -> etcd::TxnOp {
        match op {
            Op::Put { key, value, lease } => {
                let options = etcd::PutOptions::new().with_lease(*lease).with_prev_key();
                etcd::TxnOp::put(self.to_etcd(key), value.to_vec(), Some(options))
            }
            Op::Delete(range) => {
                let (key, end) = self.range(range);
                let mut options = etcd::DeleteOptions::new().with_prev_key();
                if !end.is_empty() {
                    options = options.with_range(end);
                }
                etcd::TxnOp::delete(key, Some(options))
            }
            Op::Range(request) => {
                let (key, options) = self.get(request);
                etcd::TxnOp::get(key, Some(options))
            }
        }
    }

    fn op_response(&self, response: etcd::TxnOpResponse) -> Result<OpResponse> {
        Ok(match response {
            etcd::TxnOpResponse::Put(put) => OpResponse::Put {
                prev_kv: put.prev_key().map(|kv| self.kv(kv)),
            },
            etcd::TxnOpResponse::Delete(delete) => OpResponse::Delete {
                prev_kvs: delete.prev_kvs().iter().map(|kv| self.kv(kv)).collect(),
            },
            etcd::TxnOpResponse::Get(get) => OpResponse::Range(self.range_response(&get)),
            etcd::TxnOpResponse::Txn(_) => {
                return Err(StoreError::Etcd(
                    "unexpected nested transaction response".into(),
                ))
            }
        })
    }
}

/// Maps an etcd error to the store's, by etcd's error texts (as etcd's own Go client does).
/// The revision or lease concerned is not in etcd's errors: they come back as 0, and callers
/// that know them fill them in ([`EtcdStore::complete`]).
fn from_etcd(err: etcd::Error) -> StoreError {
    let message = match &err {
        etcd::Error::GRpcStatus(status) => status.message().to_owned(),
        other => other.to_string(),
    };
    if message.contains("required revision has been compacted") {
        StoreError::Compacted {
            requested: 0,
            compacted: 0,
        }
    } else if message.contains("required revision is a future revision") {
        StoreError::FutureRevision {
            requested: 0,
            current: 0,
        }
    } else if message.contains("requested lease not found")
        // etcd-client's keep_alive: etcd answered TTL 0.
        || matches!(&err, etcd::Error::LeaseKeepAliveError(m) if m.contains("lease not found"))
    {
        StoreError::LeaseNotFound(0)
    } else if let etcd::Error::GRpcStatus(status) = &err {
        // tonic::Code::InvalidArgument (3): duplicate key in a txn, request too large, …
        if status.code() as i32 == 3 {
            StoreError::InvalidArgument(message)
        } else {
            StoreError::Etcd(format!("{:?}: {message}", status.code()))
        }
    } else {
        StoreError::Etcd(message)
    }
}

impl EtcdStore {
    /// Connects to etcd at `endpoints` (`http://127.0.0.1:2379`), keeping every key under
    /// `prefix` (ferry uses `/registry`). The connection is made lazily, by the first request.
    pub async fn connect(endpoints: &[String], prefix: impl Into<Bytes>) -> Result<EtcdStore> {
        let options = etcd::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            // Detect a dead etcd under a quiet watch; etcd refuses pings more often than every
            // 5 s, and any ping without an open stream.
            .with_keep_alive(Duration::from_secs(30), Duration::from_secs(10))
            .with_keep_alive_while_idle(false)
            // Fail (and end watches) rather than wait when etcd has lost its leader.
            .with_require_leader(true);
        let client = etcd::Client::connect(endpoints, Some(options))
            .await
            .map_err(from_etcd)?;
        Ok(EtcdStore {
            kv: client.kv_client().max_decoding_message_size(MAX_MESSAGE),
            watch: client.watch_client().max_decoding_message_size(MAX_MESSAGE),
            lease: client.lease_client(),
            maintenance: client.maintenance_client(),
            keys: Keys {
                prefix: prefix.into(),
            },
        })
    }

    /// Saves etcd's own snapshot (`etcdctl snapshot save`: the member's whole database, every
    /// prefix) to `path`, kept in etcd's format so that `etcdutl snapshot restore` reads it.
    /// Written to a temporary name and renamed once complete. Returns its size in bytes.
    pub async fn save_snapshot(&self, path: &std::path::Path) -> Result<u64> {
        use std::io::Write as _;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        let io = |e| StoreError::io(format!("writing {}", tmp.display()), e);
        let mut stream = self
            .maintenance
            .clone()
            .snapshot()
            .await
            .map_err(from_etcd)?;
        // Chunks go to the page cache; the one slow call, the sync, runs off the runtime.
        let mut file = std::os::unix::fs::OpenOptionsExt::mode(
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true),
            0o600,
        )
        .open(&tmp)
        .map_err(io)?;
        let mut size = 0;
        while let Some(message) = stream.message().await.map_err(from_etcd)? {
            file.write_all(message.blob()).map_err(io)?;
            size += message.blob().len() as u64;
        }
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            file.sync_all()
                .map_err(|e| StoreError::io(format!("syncing {}", tmp.display()), e))?;
            std::fs::rename(&tmp, &path)
                .map_err(|e| StoreError::io(format!("renaming {}", tmp.display()), e))
        })
        .await
        .map_err(|e| StoreError::Closed(format!("snapshot task failed: {e}")))??;
        Ok(size)
    }

    /// The prefix every key is stored under.
    pub fn prefix(&self) -> &Bytes {
        &self.keys.prefix
    }

    /// Fills in what [`from_etcd`] cannot know: the revision asked for (`requested`), the
    /// lease concerned and, for a future revision, the current one (fetched).
    async fn complete(&self, err: StoreError, requested: Revision, lease: LeaseId) -> StoreError {
        match err {
            // etcd 3.4 does not say which revision it compacted to; `requested` is a lower bound.
            StoreError::Compacted { .. } => StoreError::Compacted {
                requested,
                compacted: requested,
            },
            StoreError::FutureRevision { .. } => StoreError::FutureRevision {
                requested,
                current: self.current_revision().await.unwrap_or(0),
            },
            StoreError::LeaseNotFound(_) => StoreError::LeaseNotFound(lease),
            other => other,
        }
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        let (key, options) = self.keys.get(&request);
        match self.kv.clone().get(key, Some(options)).await {
            Ok(response) => Ok(self.keys.range_response(&response)),
            Err(e) => Err(self.complete(from_etcd(e), request.revision, 0).await),
        }
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        let ops = |ops: &[Op]| ops.iter().map(|op| self.keys.op(op)).collect::<Vec<_>>();
        let request = etcd::Txn::new()
            .when(
                txn.compare
                    .iter()
                    .map(|c| self.keys.compare(c))
                    .collect::<Vec<_>>(),
            )
            .and_then(ops(&txn.success))
            .or_else(ops(&txn.failure));
        let response = match self.kv.clone().txn(request).await {
            Ok(response) => response,
            Err(e) => {
                // The lease of a put, the revision of a read: what the error may be about.
                let all = || txn.success.iter().chain(&txn.failure);
                let lease = all().find_map(|op| match op {
                    Op::Put { lease, .. } if *lease != 0 => Some(*lease),
                    _ => None,
                });
                let revision = all().find_map(|op| match op {
                    Op::Range(r) if r.revision != 0 => Some(r.revision),
                    _ => None,
                });
                return Err(self
                    .complete(from_etcd(e), revision.unwrap_or(0), lease.unwrap_or(0))
                    .await);
            }
        };
        let responses = response
            .op_responses()
            .into_iter()
            .map(|r| self.keys.op_response(r))
            .collect::<Result<Vec<_>>>()?;
        Ok(TxnResponse {
            succeeded: response.succeeded(),
            header_revision: response.header().map_or(0, |h| h.revision()),
            responses,
        })
    }

    async fn watch(&self, request: WatchRequest) -> Result<WatchStream> {
        let (key, end) = self.keys.range(&request.range);
        let mut options = etcd::WatchOptions::new().with_start_revision(request.start_revision);
        if !end.is_empty() {
            options = options.with_range(end);
        }
        if request.prev_kv {
            options = options.with_prev_key();
        }
        if request.progress_notify.is_some() {
            options = options.with_progress_notify();
        }
        let mut stream = self
            .watch
            .clone()
            .watch(key, Some(options))
            .await
            .map_err(from_etcd)?;
        // Wait for etcd's answer to the create request, so that a watch "from now" sees every
        // change made after this call returns.
        let created = match stream.message().await.map_err(from_etcd)? {
            Some(created) => created,
            None => {
                return Err(StoreError::Etcd(
                    "etcd closed the watch before creating it".into(),
                ))
            }
        };
        let watch = Watch {
            stream,
            keys: self.keys.clone(),
            prev_kv: request.prev_kv,
            progress_every: request.progress_notify,
            last_message: Instant::now(),
            next: request.start_revision,
            first: Some(created),
            done: false,
        };
        let stream = futures::stream::unfold(watch, |mut watch| async move {
            let item = watch.next().await?;
            Some((item, watch))
        });
        Ok(Box::pin(stream))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        // Physical: returns once the old revisions are really gone from the backend.
        let options = etcd::CompactionOptions::new().with_physical();
        match self.kv.clone().compact(revision, Some(options)).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.complete(from_etcd(e), revision, 0).await),
        }
    }

    async fn current_revision(&self) -> Result<Revision> {
        // Counting the one key at the prefix itself: the cheapest read that has a header.
        let options = etcd::GetOptions::new().with_count_only();
        let response = self
            .kv
            .clone()
            .get(self.keys.prefix.to_vec(), Some(options))
            .await
            .map_err(from_etcd)?;
        Ok(response.header().map_or(0, |h| h.revision()))
    }

    async fn lease_grant(&self, ttl: Duration) -> Result<(LeaseId, Duration)> {
        // etcd counts whole seconds (and raises anything below its minimum, 2 s by default).
        let seconds = ttl
            .as_secs()
            .saturating_add(u64::from(ttl.subsec_nanos() > 0))
            .max(1);
        let seconds = i64::try_from(seconds)
            .map_err(|_| StoreError::InvalidArgument(format!("lease TTL {ttl:?} is too long")))?;
        let response = self
            .lease
            .clone()
            .grant(seconds, None)
            .await
            .map_err(from_etcd)?;
        Ok((
            response.id(),
            Duration::from_secs(response.ttl().max(0).unsigned_abs()),
        ))
    }

    async fn lease_keep_alive(&self, id: LeaseId) -> Result<Duration> {
        let not_found = |e| match from_etcd(e) {
            StoreError::LeaseNotFound(_) => StoreError::LeaseNotFound(id),
            other => other,
        };
        // etcd-client's keep_alive sends one keep-alive and checks its TTL but does not return
        // it; the second one on the same stream tells the TTL.
        let (mut keeper, mut responses) =
            self.lease.clone().keep_alive(id).await.map_err(not_found)?;
        keeper.keep_alive().await.map_err(not_found)?;
        match responses.message().await.map_err(not_found)? {
            Some(response) if response.ttl() > 0 => {
                Ok(Duration::from_secs(response.ttl().unsigned_abs()))
            }
            _ => Err(StoreError::LeaseNotFound(id)),
        }
    }

    async fn lease_revoke(&self, id: LeaseId) -> Result<()> {
        match self.lease.clone().revoke(id).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.complete(from_etcd(e), 0, id).await),
        }
    }
}

/// The state of one watch stream.
struct Watch {
    /// etcd's watch stream, with the sender of progress requests; dropping it cancels the
    /// watch in etcd.
    stream: etcd::WatchStream,
    keys: Keys,
    prev_kv: bool,
    progress_every: Option<Duration>,
    /// When the last message arrived (or progress was last asked for).
    last_message: Instant,
    /// The first revision not delivered yet (0 until etcd says where "now" is).
    next: Revision,
    /// etcd's answer to the create request, read by `watch()`.
    first: Option<etcd::WatchResponse>,
    done: bool,
}

impl Watch {
    async fn next(&mut self) -> Option<Result<WatchResponse>> {
        while !self.done {
            let response = match self.first.take() {
                Some(first) => first,
                None => match self.receive().await {
                    Ok(response) => response,
                    Err(e) => return Some(Err(self.fail(e))),
                },
            };
            if let Some(item) = self.translate(response) {
                return Some(item);
            }
        }
        None
    }

    /// The next message from etcd. After `progress_every` without any, asks etcd for a
    /// progress notification (etcd's own are 10 minutes apart).
    async fn receive(&mut self) -> Result<etcd::WatchResponse> {
        loop {
            let progress_due = self.progress_every.map(|every| self.last_message + every);
            let sleep = async {
                match progress_due {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let message = tokio::select! {
                // Messages first: progress is only asked for when nothing is pending.
                biased;
                message = self.stream.next() => Some(message),
                () = sleep => None,
            };
            match message {
                Some(Some(Ok(response))) => {
                    self.last_message = Instant::now();
                    return Ok(response);
                }
                Some(Some(Err(e))) => return Err(from_etcd(e)),
                Some(None) => return Err(StoreError::Etcd("etcd closed the watch stream".into())),
                None => {
                    self.last_message = Instant::now();
                    self.stream.request_progress().await.map_err(from_etcd)?;
                }
            }
        }
    }

    /// Ends the stream with `err`.
    fn fail(&mut self, err: StoreError) -> StoreError {
        self.done = true;
        err
    }

    /// What to yield for one etcd message, if anything.
    fn translate(&mut self, response: etcd::WatchResponse) -> Option<Result<WatchResponse>> {
        let revision = response.header().map_or(0, |h| h.revision());
        if response.compact_revision() > 0 {
            let requested = self.next;
            let compacted = response.compact_revision();
            return Some(Err(self.fail(StoreError::Compacted {
                requested,
                compacted,
            })));
        }
        if response.canceled() {
            let reason = format!("etcd canceled the watch: {}", response.cancel_reason());
            return Some(Err(self.fail(StoreError::Etcd(reason))));
        }
        if response.created() {
            if self.next == 0 {
                self.next = revision + 1; // "from now": etcd starts after its current revision
            }
            return None;
        }
        let mut events = Vec::with_capacity(response.events().len());
        for event in response.events() {
            let Some(kv) = event.kv() else {
                return Some(Err(
                    self.fail(StoreError::Etcd("watch event without a key".into()))
                ));
            };
            let kind = match event.event_type() {
                etcd::EventType::Put => EventKind::Put,
                etcd::EventType::Delete => EventKind::Delete,
            };
            let prev_kv = if self.prev_kv {
                event.prev_kv().map(|kv| self.keys.kv(kv))
            } else {
                None
            };
            events.push(Event {
                kind,
                kv: self.keys.kv(kv),
                prev_kv,
            });
        }
        match events.last() {
            Some(last) => self.next = last.revision() + 1,
            // A progress notification: never report less than what was delivered.
            None => self.next = self.next.max(revision + 1),
        }
        Some(Ok(WatchResponse {
            revision: revision.max(self.next - 1),
            events,
        }))
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::process::EtcdProcess;
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// A fresh etcd and a store on it under `/registry`. Fails (never skips) without etcd.
    async fn etcd() -> (EtcdProcess, EtcdStore) {
        assert!(
            EtcdProcess::available(),
            "etcd is not installed at {}: install Debian's etcd-server package \
             (scripts/install-deps.sh) or set FERRY_ETCD_BIN",
            EtcdProcess::binary().display()
        );
        let process = EtcdProcess::start().await.expect("start etcd");
        let store = EtcdStore::connect(&[process.endpoint()], "/registry")
            .await
            .expect("connect");
        (process, store)
    }

    async fn next(stream: &mut WatchStream) -> Result<WatchResponse> {
        match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
            Ok(Some(message)) => message,
            Ok(None) => panic!("the watch ended"),
            Err(_) => panic!("no watch message within 10 s"),
        }
    }

    #[tokio::test]
    async fn a_saved_snapshot_is_etcds_own_database() {
        let (_process, store) = etcd().await;
        store
            .put(b("/configmaps/ns/a"), b("saved-value"))
            .await
            .expect("put");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("etcd-snapshot");
        let size = store.save_snapshot(&path).await.expect("save");
        let data = std::fs::read(&path).expect("read");
        assert_eq!(size, data.len() as u64);
        // A bbolt database (its values in the clear) with etcd's SHA-256 after it, not a
        // ferry snapshot.
        assert!(data.windows(11).any(|w| w == b"saved-value"));
        assert!(crate::embedded::read_snapshot_info(&path).is_err());
        assert!(!dir.path().join("etcd-snapshot.tmp").exists());
    }

    #[tokio::test]
    async fn put_get_round_trip_under_the_prefix() {
        let (process, store) = etcd().await;
        let revision = store.put(b("/pods/ns/a"), b("v1")).await.expect("put");
        let kv = store
            .get(b"/pods/ns/a")
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(
            (kv.key, kv.value, kv.mod_revision, kv.version),
            (b("/pods/ns/a"), b("v1"), revision, 1)
        );

        // In etcd itself the key carries the prefix.
        let mut raw = etcd::Client::connect([process.endpoint()], None)
            .await
            .expect("connect");
        let response = raw.get("/registry/pods/ns/a", None).await.expect("raw get");
        assert_eq!(response.kvs().len(), 1);
        assert_eq!(response.kvs()[0].value(), b"v1");
        raw.put("/outside", "not ours", None)
            .await
            .expect("raw put");

        // Unbounded ranges stay inside the prefix; keys come back without it.
        let all = store
            .range(RangeRequest::new(KeyRange::prefix(Bytes::new())))
            .await
            .expect("range");
        let keys: Vec<Bytes> = all.kvs.iter().map(|kv| kv.key.clone()).collect();
        assert_eq!(keys, vec![b("/pods/ns/a")]);
        assert_eq!(
            store.current_revision().await.expect("revision"),
            revision + 1
        );
    }

    #[tokio::test]
    async fn txn_compare_and_swap_conflicts() {
        let (_process, store) = etcd().await;
        let r1 = store
            .create(b("/k"), b("1"), 0)
            .await
            .expect("create")
            .expect("created");
        assert_eq!(
            store.create(b("/k"), b("again"), 0).await.expect("create"),
            None
        );
        let r2 = store
            .update(b("/k"), r1, b("2"))
            .await
            .expect("update")
            .expect("updated");
        let conflict = store.update(b("/k"), r1, b("stale")).await.expect("update");
        let current = conflict.expect_err("conflict").expect("key exists");
        assert_eq!(
            (current.key, current.value, current.mod_revision),
            (b("/k"), b("2"), r2)
        );

        // Put and delete report the versions they replaced, without the prefix.
        let txn = Txn::new().and_then([Op::put(b("/k"), b("3")), Op::delete(b("/other"))]);
        let response = store.txn(txn).await.expect("txn");
        assert!(response.succeeded);
        match &response.responses[..] {
            [OpResponse::Put {
                prev_kv: Some(prev),
            }, OpResponse::Delete { prev_kvs }] => {
                assert_eq!((prev.key.clone(), prev.value.clone()), (b("/k"), b("2")));
                assert!(prev_kvs.is_empty());
            }
            other => panic!("unexpected responses {other:?}"),
        }
        let deleted = store
            .delete(b("/k"), 0)
            .await
            .expect("delete")
            .expect("deleted");
        assert_eq!((deleted.key, deleted.value), (b("/k"), b("3")));

        let duplicate = store
            .txn(Txn::new().and_then([Op::put(b("/d"), b("1")), Op::put(b("/d"), b("2"))]))
            .await;
        assert!(
            matches!(duplicate, Err(StoreError::InvalidArgument(_))),
            "{duplicate:?}"
        );
    }

    #[tokio::test]
    async fn range_with_limit_reports_more_and_count() {
        let (_process, store) = etcd().await;
        for i in 0..5 {
            store
                .put(b(&format!("/pods/p{i}")), b("v"))
                .await
                .expect("put");
        }
        store.put(b("/pods0"), b("outside")).await.expect("put");
        let page = store
            .range(RangeRequest::new(KeyRange::prefix(b("/pods/"))).limit(2))
            .await
            .expect("range");
        assert_eq!((page.kvs.len(), page.more, page.count), (2, true, 5));
        assert_eq!(page.kvs[0].key, b("/pods/p0"));
        let count = store
            .range(RangeRequest {
                count_only: true,
                ..RangeRequest::new(KeyRange::prefix(b("/pods/")))
            })
            .await
            .expect("count");
        assert_eq!((count.kvs.len(), count.count), (0, 5));
        let future = store
            .range(RangeRequest::new(KeyRange::key(b("/pods/p0"))).at(page.header_revision + 10))
            .await;
        assert!(
            matches!(future, Err(StoreError::FutureRevision { requested, current })
                if requested == page.header_revision + 10 && current == page.header_revision),
            "{future:?}"
        );
    }

    #[tokio::test]
    async fn watch_from_an_old_revision_sees_put_then_delete_with_prev_kv() {
        let (_process, store) = etcd().await;
        let first = store.put(b("/w/a"), b("1")).await.expect("put");
        store.put(b("/x"), b("not watched")).await.expect("put");
        store
            .delete(b("/w/a"), 0)
            .await
            .expect("delete")
            .expect("deleted");
        let mut stream = store
            .watch(WatchRequest::new(KeyRange::prefix(b("/w/"))).from_revision(first))
            .await
            .expect("watch");
        let mut events = Vec::new();
        while events.len() < 2 {
            events.extend(next(&mut stream).await.expect("message").events);
        }
        assert_eq!(
            (
                events[0].kind,
                events[0].kv.key.clone(),
                events[0].kv.mod_revision
            ),
            (EventKind::Put, b("/w/a"), first)
        );
        assert!(events[0].prev_kv.is_none());
        assert_eq!(
            (events[1].kind, events[1].kv.key.clone()),
            (EventKind::Delete, b("/w/a"))
        );
        assert_eq!(events[1].kv.mod_revision, first + 2);
        let prev = events[1].prev_kv.as_ref().expect("prev_kv of the delete");
        assert_eq!((prev.key.clone(), prev.value.clone()), (b("/w/a"), b("1")));

        // Without prev_kv there is none; a watch from now sees the next change.
        let request = WatchRequest {
            prev_kv: false,
            ..WatchRequest::new(KeyRange::key(b("/w/a")))
        };
        let mut now = store.watch(request).await.expect("watch");
        let r = store.put(b("/w/a"), b("2")).await.expect("put");
        store.put(b("/w/a"), b("3")).await.expect("put");
        let message = next(&mut now).await.expect("message");
        assert_eq!(message.events[0].kv.mod_revision, r);
        assert!(message.events[0].prev_kv.is_none());
    }

    #[tokio::test]
    async fn progress_notifications_after_silence() {
        let (_process, store) = etcd().await;
        let request = WatchRequest::new(KeyRange::prefix(b("/quiet/")))
            .progress_every(Duration::from_millis(300));
        let mut stream = store.watch(request).await.expect("watch");
        let r = store.put(b("/busy"), b("1")).await.expect("put");
        loop {
            let message = next(&mut stream).await.expect("message");
            assert!(message.is_progress_notify(), "{message:?}");
            if message.revision >= r {
                break;
            }
        }
    }

    #[tokio::test]
    async fn compacted_revisions_fail_with_compacted() {
        let (_process, store) = etcd().await;
        let old = store.put(b("/c"), b("1")).await.expect("put");
        let latest = store.put(b("/c"), b("2")).await.expect("put");
        store.compact(latest).await.expect("compact");
        let range = store
            .range(RangeRequest::new(KeyRange::key(b("/c"))).at(old))
            .await;
        assert!(
            matches!(range, Err(StoreError::Compacted { requested, .. }) if requested == old),
            "{range:?}"
        );
        let again = store.compact(old).await;
        assert!(
            matches!(again, Err(StoreError::Compacted { .. })),
            "{again:?}"
        );
        let future = store.compact(latest + 10).await;
        assert!(
            matches!(future, Err(StoreError::FutureRevision { current, .. }) if current == latest),
            "{future:?}"
        );

        let mut stream = store
            .watch(WatchRequest::new(KeyRange::key(b("/c"))).from_revision(old))
            .await
            .expect("watch");
        let first = next(&mut stream).await;
        assert!(
            matches!(first, Err(StoreError::Compacted { requested, compacted }) if requested == old && compacted == latest),
            "{first:?}"
        );
        assert!(
            stream.next().await.is_none(),
            "the stream ends after the error"
        );
    }

    #[tokio::test]
    async fn unknown_leases_are_not_found() {
        let (_process, store) = etcd().await;
        let (lease, ttl) = store
            .lease_grant(Duration::from_secs(30))
            .await
            .expect("grant");
        assert_eq!(ttl, Duration::from_secs(30));
        assert_eq!(
            store.lease_keep_alive(lease).await.expect("keep alive"),
            Duration::from_secs(30)
        );
        store.lease_revoke(lease).await.expect("revoke");
        let keep = store.lease_keep_alive(lease).await;
        assert!(
            matches!(keep, Err(StoreError::LeaseNotFound(id)) if id == lease),
            "{keep:?}"
        );
        let revoke = store.lease_revoke(lease).await;
        assert!(
            matches!(revoke, Err(StoreError::LeaseNotFound(id)) if id == lease),
            "{revoke:?}"
        );
        let put = store.create(b("/l"), b("1"), lease).await;
        assert!(
            matches!(put, Err(StoreError::LeaseNotFound(id)) if id == lease),
            "{put:?}"
        );
    }

    #[tokio::test]
    async fn lease_expiry_deletes_the_key_with_a_delete_event() {
        let (_process, store) = etcd().await;
        let (lease, ttl) = store
            .lease_grant(Duration::from_secs(2))
            .await
            .expect("grant");
        assert_eq!(ttl, Duration::from_secs(2));
        let mut stream = store
            .watch(WatchRequest::new(KeyRange::prefix(b("/events/"))))
            .await
            .expect("watch");
        store
            .create(b("/events/e1"), b("event"), lease)
            .await
            .expect("create")
            .expect("created");
        let put = next(&mut stream).await.expect("message");
        assert_eq!(
            (put.events[0].kind, put.events[0].kv.lease),
            (EventKind::Put, lease)
        );
        let deletion = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let message = next(&mut stream).await.expect("message");
                if let Some(event) = message.events.into_iter().next() {
                    return event;
                }
            }
        })
        .await
        .expect("the lease expires within 10 s");
        assert_eq!(
            (deletion.kind, deletion.kv.key),
            (EventKind::Delete, b("/events/e1"))
        );
        assert!(store.get(b"/events/e1").await.expect("get").is_none());
    }
}
