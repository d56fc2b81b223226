//! The etcd backend: the [`Store`] trait over a real etcd (v3 API) through `etcd-client`, every
//! key under a prefix (`/registry` by default, as kube-apiserver). A thin translation: etcd
//! already has the semantics the trait describes.

pub mod process;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client as etcd;
use futures::StreamExt;

use crate::error::StoreError;
use crate::kv::{
    Compare, CompareOp, CompareTarget, Event, EventKind, KeyRange, KeyValue, LeaseId, Op,
    OpResponse, RangeEnd, RangeRequest, RangeResponse, Result, Revision, Store, Txn, TxnResponse,
    WatchRequest, WatchResponse, WatchStream,
};

/// A store kept in etcd.
#[derive(Clone)]
pub struct EtcdStore {
    client: etcd::Client,
    prefix: Bytes,
}

/// Maps an etcd error onto the store's, by etcd's own error texts.
fn from_etcd(err: etcd::Error, requested: Revision) -> StoreError {
    let text = err.to_string();
    if text.contains("required revision has been compacted") {
        StoreError::Compacted { requested, compacted: requested }
    } else if text.contains("required revision is a future revision") {
        StoreError::FutureRevision { requested, current: 0 }
    } else if text.contains("lease not found") {
        StoreError::LeaseNotFound(0)
    } else if text.contains("duplicate key given in txn request") {
        StoreError::InvalidArgument(text)
    } else {
        StoreError::Etcd(text)
    }
}

impl EtcdStore {
    /// Connects to etcd at `endpoints` (`http://127.0.0.1:2379`), keeping keys under `prefix`.
    pub async fn connect(endpoints: &[String], prefix: impl Into<Bytes>) -> Result<EtcdStore> {
        let options = etcd::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(30));
        let client = etcd::Client::connect(endpoints, Some(options)).await.map_err(|e| from_etcd(e, 0))?;
        Ok(EtcdStore { client, prefix: prefix.into() })
    }

    fn full(&self, key: &[u8]) -> Vec<u8> {
        [&self.prefix[..], key].concat()
    }

    /// The etcd key range of `range`: `(key, range_end)`, range_end empty for one key.
    fn etcd_range(&self, range: &KeyRange) -> (Vec<u8>, Vec<u8>) {
        let start = self.full(&range.start);
        let end = match &range.end {
            RangeEnd::Single => Vec::new(),
            RangeEnd::Before(end) => self.full(end),
            RangeEnd::Unbounded => crate::kv::prefix_end(&self.prefix).map_or(vec![0], |e| e.to_vec()),
        };
        (start, end)
    }

    fn kv(&self, kv: &etcd::KeyValue) -> KeyValue {
        let key = kv.key();
        let key = key.strip_prefix(&self.prefix[..]).unwrap_or(key);
        KeyValue {
            key: Bytes::copy_from_slice(key),
            value: Bytes::copy_from_slice(kv.value()),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
            version: kv.version(),
            lease: kv.lease(),
        }
    }

    fn get_options(&self, request: &RangeRequest) -> (Vec<u8>, etcd::GetOptions) {
        let (key, end) = self.etcd_range(&request.range);
        let mut options = etcd::GetOptions::new().with_limit(request.limit).with_revision(request.revision);
        if !end.is_empty() {
            options = options.with_range(end);
        }
        if request.count_only {
            options = options.with_count_only();
        }
        (key, options)
    }

    fn range_response(&self, response: &etcd::GetResponse) -> RangeResponse {
        RangeResponse {
            header_revision: response.header().map_or(0, |h| h.revision()),
            kvs: response.kvs().iter().map(|kv| self.kv(kv)).collect(),
            more: response.more(),
            count: response.count(),
        }
    }

    fn compare(&self, compare: &Compare) -> etcd::Compare {
        let op = match compare.op {
            CompareOp::Equal => etcd::CompareOp::Equal,
            CompareOp::NotEqual => etcd::CompareOp::NotEqual,
            CompareOp::Greater => etcd::CompareOp::Greater,
            CompareOp::Less => etcd::CompareOp::Less,
        };
        let key = self.full(&compare.key);
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
                let mut options = etcd::PutOptions::new().with_prev_key();
                if *lease != 0 {
                    options = options.with_lease(*lease);
                }
                etcd::TxnOp::put(self.full(key), value.to_vec(), Some(options))
            }
            Op::Delete(range) => {
                let (key, end) = self.etcd_range(range);
                let mut options = etcd::DeleteOptions::new().with_prev_key();
                if !end.is_empty() {
                    options = options.with_range(end);
                }
                etcd::TxnOp::delete(key, Some(options))
            }
            Op::Range(request) => {
                let (key, options) = self.get_options(request);
                etcd::TxnOp::get(key, Some(options))
            }
        }
    }

    /// The revision etcd answers with now.
    async fn header_revision(&self) -> Result<Revision> {
        let mut kv = self.client.kv_client();
        let options = etcd::GetOptions::new().with_count_only();
        let response = kv.get(self.prefix.to_vec(), Some(options)).await.map_err(|e| from_etcd(e, 0))?;
        Ok(response.header().map_or(0, |h| h.revision()))
    }

    /// A lease-related error with the lease id filled in.
    fn lease_error(err: etcd::Error, lease: LeaseId) -> StoreError {
        match from_etcd(err, 0) {
            StoreError::LeaseNotFound(_) => StoreError::LeaseNotFound(lease),
            other => other,
        }
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        let (key, options) = self.get_options(&request);
        let mut kv = self.client.kv_client();
        let response = kv.get(key, Some(options)).await.map_err(|e| from_etcd(e, request.revision))?;
        Ok(self.range_response(&response))
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        let etcd_txn = etcd::Txn::new()
            .when(txn.compare.iter().map(|c| self.compare(c)).collect::<Vec<_>>())
            .and_then(txn.success.iter().map(|o| self.op(o)).collect::<Vec<_>>())
            .or_else(txn.failure.iter().map(|o| self.op(o)).collect::<Vec<_>>());
        let mut kv = self.client.kv_client();
        let response = kv.txn(etcd_txn).await.map_err(|e| {
            let lease = txn.success.iter().chain(&txn.failure).find_map(|o| match o {
                Op::Put { lease, .. } if *lease != 0 => Some(*lease),
                _ => None,
            });
            Self::lease_error(e, lease.unwrap_or(0))
        })?;
        let responses = response
            .op_responses()
            .into_iter()
            .map(|r| match r {
                etcd::TxnOpResponse::Put(put) => OpResponse::Put { prev_kv: put.prev_key().map(|kv| self.kv(kv)) },
                etcd::TxnOpResponse::Delete(delete) => {
                    OpResponse::Delete { prev_kvs: delete.prev_kvs().iter().map(|kv| self.kv(kv)).collect() }
                }
                etcd::TxnOpResponse::Get(get) => OpResponse::Range(self.range_response(&get)),
                etcd::TxnOpResponse::Txn(_) => OpResponse::Range(RangeResponse::default()),
            })
            .collect();
        Ok(TxnResponse {
            succeeded: response.succeeded(),
            header_revision: response.header().map_or(0, |h| h.revision()),
            responses,
        })
    }

    async fn watch(&self, request: WatchRequest) -> Result<WatchStream> {
        let (key, end) = self.etcd_range(&request.range);
        let mut options = etcd::WatchOptions::new().with_start_revision(request.start_revision).with_progress_notify();
        if !end.is_empty() {
            options = options.with_range(end);
        }
        if request.prev_kv {
            options = options.with_prev_key();
        }
        let mut watch_client = self.client.watch_client();
        let stream = watch_client.watch(key, Some(options)).await.map_err(|e| from_etcd(e, request.start_revision))?;
        let (sender, responses) = stream.split();
        struct State {
            store: EtcdStore,
            sender: etcd::WatchRequestSender,
            responses: etcd::WatchResponseStream,
            request: WatchRequest,
            idle_since: tokio::time::Instant,
            done: bool,
        }
        let state = State {
            store: self.clone(),
            sender,
            responses,
            request,
            idle_since: tokio::time::Instant::now(),
            done: false,
        };
        let stream = futures::stream::unfold(state, |mut s| async move {
            if s.done {
                return None;
            }
            loop {
                let progress_at = s.request.progress_notify.map(|every| s.idle_since + every);
                let tick = async {
                    match progress_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                let message = tokio::select! {
                    m = s.responses.next() => m,
                    () = tick => {
                        // etcd's own progress interval is 10 minutes: ask for one now.
                        s.idle_since = tokio::time::Instant::now();
                        if let Err(e) = s.sender.request_progress().await {
                            s.done = true;
                            return Some((Err(from_etcd(e, 0)), s));
                        }
                        continue;
                    }
                };
                let response = match message {
                    None => {
                        s.done = true;
                        return Some((Err(StoreError::Etcd("watch stream ended".into())), s));
                    }
                    Some(Err(e)) => {
                        s.done = true;
                        return Some((Err(from_etcd(e, s.request.start_revision)), s));
                    }
                    Some(Ok(r)) => r,
                };
                if response.compact_revision() > 0 {
                    s.done = true;
                    let error = StoreError::Compacted {
                        requested: s.request.start_revision,
                        compacted: response.compact_revision(),
                    };
                    return Some((Err(error), s));
                }
                if response.canceled() {
                    s.done = true;
                    let reason = format!("watch canceled: {}", response.cancel_reason());
                    return Some((Err(StoreError::Etcd(reason)), s));
                }
                let revision = response.header().map_or(0, |h| h.revision());
                if response.created() && response.events().is_empty() {
                    continue;
                }
                let events: Vec<Event> = response
                    .events()
                    .iter()
                    .filter_map(|e| {
                        let kv = s.store.kv(e.kv()?);
                        let kind = match e.event_type() {
                            etcd::EventType::Put => EventKind::Put,
                            etcd::EventType::Delete => EventKind::Delete,
                        };
                        let prev_kv = if s.request.prev_kv { e.prev_kv().map(|p| s.store.kv(p)) } else { None };
                        Some(Event { kind, kv, prev_kv })
                    })
                    .collect();
                if !events.is_empty() {
                    s.idle_since = tokio::time::Instant::now();
                } else if s.request.progress_notify.is_none() {
                    continue;
                }
                return Some((Ok(WatchResponse { revision, events }), s));
            }
        });
        Ok(Box::pin(stream))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let mut kv = self.client.kv_client();
        let options = etcd::CompactionOptions::new().with_physical();
        match kv.compact(revision, Some(options)).await {
            Ok(_) => Ok(()),
            Err(e) => Err(match from_etcd(e, revision) {
                StoreError::FutureRevision { requested, .. } => {
                    StoreError::FutureRevision { requested, current: self.header_revision().await.unwrap_or(0) }
                }
                other => other,
            }),
        }
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.header_revision().await
    }

    async fn lease_grant(&self, ttl: Duration) -> Result<(LeaseId, Duration)> {
        let seconds = ttl.as_secs_f64().ceil().max(1.0) as i64;
        let mut lease = self.client.lease_client();
        let response = lease.grant(seconds, None).await.map_err(|e| from_etcd(e, 0))?;
        Ok((response.id(), Duration::from_secs(response.ttl().max(0) as u64)))
    }

    async fn lease_keep_alive(&self, id: LeaseId) -> Result<Duration> {
        let mut lease = self.client.lease_client();
        let (mut keeper, mut responses) = lease.keep_alive(id).await.map_err(|e| Self::lease_error(e, id))?;
        keeper.keep_alive().await.map_err(|e| Self::lease_error(e, id))?;
        match responses.message().await.map_err(|e| Self::lease_error(e, id))? {
            Some(response) if response.ttl() > 0 => Ok(Duration::from_secs(response.ttl() as u64)),
            _ => Err(StoreError::LeaseNotFound(id)),
        }
    }

    async fn lease_revoke(&self, id: LeaseId) -> Result<()> {
        let mut lease = self.client.lease_client();
        lease.revoke(id).await.map_err(|e| Self::lease_error(e, id))?;
        Ok(())
    }
}
