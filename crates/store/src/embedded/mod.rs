//! The embedded backend: `ferry server`'s default store, in its data directory.
//!
//! Design (see docs/ARCHITECTURE.md): the state lives in memory ([`mvcc::Mvcc`], as etcd keeps
//! its key index in memory) and is made durable by a write-ahead log ([`wal`]) plus snapshots
//! ([`snapshot`]).
//!
//! A write runs in three steps:
//! 1. under the state lock, the transaction is decided and applied in memory at revision
//!    `current + 1`, and its record is queued for the log in the same order;
//! 2. the flusher thread appends everything queued so far with one `write` and one
//!    `fdatasync` — concurrent writers share that sync (group commit);
//! 3. the flusher publishes the new durable position; the writer, waiting for it, answers.
//!
//! Reads and watches only see durable revisions: a reader never observes a write that a crash
//! could still take back. If a log write fails the store stops accepting work (the memory state
//! can no longer be promised to be on disk); a restart recovers from disk.
//!
//! Lock order: `state` before `queue`. The flusher takes only `queue`.
//!
//! Backups: [`EmbeddedStore::save_snapshot`] writes the state at one revision to a file while
//! the store serves, and [`restore`] makes a new store directory from such a file.

mod codec;
mod mvcc;
mod snapshot;
mod wal;

pub use snapshot::{read_info as read_snapshot_info, SnapshotInfo};

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::{Condvar, Mutex, RwLock};
use tokio::sync::watch;

use self::mvcc::{Mvcc, WalRecord};
use crate::error::StoreError;
use crate::kv::{
    LeaseId, RangeRequest, RangeResponse, Result, Revision, Store, Txn, TxnResponse, WatchRequest,
    WatchResponse, WatchStream,
};

/// How the embedded store drops old history by itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Retention {
    /// Keep the revisions written in the last this long.
    Time(Duration),
    /// Keep this many revisions.
    Revisions(i64),
}

/// Settings of the embedded store.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the log and snapshots live.
    pub data_dir: PathBuf,
    /// How often automatic compaction runs; `None` disables it.
    pub auto_compaction: Option<Duration>,
    /// What automatic compaction keeps.
    pub retention: Retention,
    /// Log bytes written since the last snapshot that trigger a new one.
    pub snapshot_after_bytes: u64,
    /// How often expired leases are looked for.
    pub lease_check_interval: Duration,
}

impl Config {
    /// Defaults for `data_dir`: compaction every 5 minutes keeping the last 5 minutes, as the
    /// Kubernetes API server compacts etcd; a snapshot after 64 MiB of log.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            auto_compaction: Some(Duration::from_secs(300)),
            retention: Retention::Time(Duration::from_secs(300)),
            snapshot_after_bytes: 64 << 20,
            lease_check_interval: Duration::from_millis(250),
        }
    }
}

/// How far the log is on disk, published by the flusher.
#[derive(Clone, Copy, Debug, Default)]
struct Durable {
    /// Every queued item with a ticket up to this one is on disk.
    ticket: u64,
    /// The newest revision on disk: what reads and watches see.
    revision: Revision,
    /// The log failed: nothing more will become durable.
    failed: bool,
}

/// Items waiting for the flusher.
#[derive(Default)]
struct Queue {
    items: Vec<Queued>,
    /// Ticket of the newest item queued.
    last_ticket: u64,
    /// The store is closing: flush what is queued and stop.
    closing: bool,
}

enum Queued {
    /// Framed records ending at `revision`.
    Records {
        bytes: Vec<u8>,
        revision: Revision,
        ticket: u64,
    },
    /// Start a new segment (for a snapshot, which then drops the older ones).
    Rotate { seq: u64, ticket: u64 },
}

struct Shared {
    dir: PathBuf,
    config: Config,
    state: RwLock<Mvcc>,
    queue: Mutex<Queue>,
    queue_cond: Condvar,
    durable: watch::Sender<Durable>,
    /// The next segment number the store will rotate to.
    next_segment: AtomicU64,
    /// Log bytes since the last snapshot.
    log_bytes: AtomicU64,
    /// A background snapshot is running.
    snapshotting: AtomicBool,
    snapshot_lock: Mutex<()>,
}

/// The embedded store. Cheap to share behind an `Arc`; closes (flushing the log) on drop.
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    flusher: Mutex<Option<JoinHandle<()>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Held for the store's life: a second process cannot open the same directory.
    _lock: File,
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `config.data_dir`, recovering its state from disk. Must
    /// be called inside a Tokio runtime (the store runs lease expiry and compaction tasks).
    pub async fn open(config: Config) -> Result<EmbeddedStore> {
        let dir = config.data_dir.clone();
        let (lock, state, next_segment) = tokio::task::spawn_blocking(move || recover(&dir))
            .await
            .map_err(|e| StoreError::Closed(format!("recovery task failed: {e}")))??;
        let wal_dir = config.data_dir.join("wal");
        let segment = wal::SegmentWriter::create(&wal_dir, next_segment)?;
        let (durable, _) = watch::channel(Durable {
            ticket: 0,
            revision: state.current_revision,
            failed: false,
        });
        let shared = Arc::new(Shared {
            dir: config.data_dir.clone(),
            config,
            state: RwLock::new(state),
            queue: Mutex::new(Queue::default()),
            queue_cond: Condvar::new(),
            durable,
            next_segment: AtomicU64::new(next_segment + 1),
            log_bytes: AtomicU64::new(0),
            snapshotting: AtomicBool::new(false),
            snapshot_lock: Mutex::new(()),
        });
        let flusher = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("ferry-store-wal".into())
                .spawn(move || flush_loop(&shared, segment))
                .map_err(|e| StoreError::io("starting the log thread", e))?
        };
        let mut tasks = vec![tokio::spawn(expire_leases(Arc::downgrade(&shared)))];
        if let Some(every) = shared.config.auto_compaction {
            tasks.push(tokio::spawn(auto_compact(Arc::downgrade(&shared), every)));
        }
        Ok(EmbeddedStore {
            shared,
            flusher: Mutex::new(Some(flusher)),
            tasks,
            _lock: lock,
        })
    }

    /// Flushes the log and stops the store's thread and tasks. Later calls fail with `Closed`.
    pub fn close(&self) {
        self.shared.queue.lock().closing = true;
        self.shared.queue_cond.notify_all();
        if let Some(flusher) = self.flusher.lock().take() {
            let _ = flusher.join();
        }
        for task in &self.tasks {
            task.abort();
        }
    }

    /// Writes a snapshot now and drops the log before it (also done automatically).
    pub async fn snapshot(&self) -> Result<()> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || shared.snapshot())
            .await
            .map_err(|e| StoreError::Closed(format!("snapshot task failed: {e}")))?
    }

    /// Saves the whole store at one revision to `path` (a backup, for [`restore`]) while it
    /// keeps serving: the state is encoded under the read lock, so writers wait for the
    /// encoding only, and the file is written once that revision is durable, so it never holds
    /// a write a crash could take back. Written to a temporary name and renamed.
    pub async fn save_snapshot(&self, path: &Path) -> Result<SnapshotInfo> {
        self.shared.check_open()?;
        let shared = self.shared.clone();
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let (revision, encoded) = {
                let state = shared.state.read();
                (state.current_revision, snapshot::encode_saved(&state))
            };
            futures::executor::block_on(shared.wait_durable_revision(revision))?;
            snapshot::write_saved(&path, &encoded)?;
            Ok(SnapshotInfo {
                revision,
                size: encoded.len() as u64,
            })
        })
        .await
        .map_err(|e| StoreError::Closed(format!("snapshot task failed: {e}")))?
    }

    /// Bytes of keys and values held in memory (all retained versions).
    pub fn approximate_size(&self) -> usize {
        self.shared.state.read().approximate_size()
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        self.close();
    }
}

/// Takes the directory's `LOCK` (`flock`, held while the file stays open): one process per
/// store directory.
fn lock_dir(dir: &Path) -> Result<File> {
    let lock_path = dir.join("LOCK");
    let lock = File::create(&lock_path)
        .map_err(|e| StoreError::io(format!("creating {}", lock_path.display()), e))?;
    lock.try_lock().map_err(|e| {
        StoreError::Closed(format!(
            "{} is in use by another process: {e}",
            dir.display()
        ))
    })?;
    Ok(lock)
}

/// Makes the store directory `data_dir` from a snapshot saved by
/// [`EmbeddedStore::save_snapshot`], for [`EmbeddedStore::open`] to start from. Keys keep their
/// revisions (objects their `resourceVersion`s); the store's revision moves `bump_revision`
/// ahead and becomes the compacted revision, as `etcdutl snapshot restore --bump-revision
/// --mark-compacted` does for Kubernetes: a watch or read from any earlier revision gets
/// `Compacted` (410) and its client relists, instead of resuming in a history that the restore
/// took back. Refuses a directory that already holds a store, and a file that is not an intact
/// saved snapshot. Returns the snapshot's header and the restored store's revision.
pub fn restore(
    snapshot_file: &Path,
    data_dir: &Path,
    bump_revision: Revision,
) -> Result<(SnapshotInfo, Revision)> {
    let (mut state, info) = snapshot::load_saved(snapshot_file, Instant::now())?;
    let wal_dir = data_dir.join("wal");
    let snap_dir = data_dir.join("snap");
    for d in [data_dir, &wal_dir, &snap_dir] {
        fs::create_dir_all(d)
            .map_err(|e| StoreError::io(format!("creating {}", d.display()), e))?;
    }
    let _lock = lock_dir(data_dir)?;
    if !snapshot::list(&snap_dir)?.is_empty() || !wal::list_segments(&wal_dir)?.is_empty() {
        return Err(StoreError::InvalidArgument(format!(
            "{} already holds a store: restore into an empty directory",
            data_dir.display()
        )));
    }
    state.mark_compacted(bump_revision);
    snapshot::write(
        &snap_dir,
        state.current_revision,
        &snapshot::encode(&state, 0),
    )?;
    Ok((info, state.current_revision))
}

/// Loads the newest snapshot and replays the log after it. Returns the directory lock, the
/// state and the number of the segment to write next.
fn recover(dir: &Path) -> Result<(File, Mvcc, u64)> {
    let wal_dir = dir.join("wal");
    let snap_dir = dir.join("snap");
    for d in [dir, &wal_dir, &snap_dir] {
        fs::create_dir_all(d)
            .map_err(|e| StoreError::io(format!("creating {}", d.display()), e))?;
    }
    let lock = lock_dir(dir)?;
    let now = Instant::now();
    let (mut state, first_segment) = match snapshot::list(&snap_dir)?.last() {
        Some((_, path)) => snapshot::load(path, now)?,
        None => (Mvcc::new(), 0),
    };
    let segments = wal::list_segments(&wal_dir)?;
    let (older, replay): (Vec<_>, Vec<_>) = segments
        .into_iter()
        .partition(|(seq, _)| *seq < first_segment);
    for (_, path) in older {
        // Left by a crash between writing a snapshot and deleting the log it covers.
        let _ = fs::remove_file(path);
    }
    let mut expected = first_segment;
    for (i, (seq, path)) in replay.iter().enumerate() {
        if *seq != expected {
            return Err(StoreError::Corrupt {
                path: wal::segment_path(&wal_dir, expected),
                offset: 0,
                reason: "log segment missing".into(),
            });
        }
        let last = i + 1 == replay.len();
        let contents = wal::read_segment(path, last)?;
        for record in &contents.records {
            state.replay(record, now).map_err(|e| StoreError::Corrupt {
                path: path.clone(),
                offset: 0,
                reason: format!("record does not apply: {e}"),
            })?;
        }
        if let Some(reason) = contents.torn {
            tracing::warn!(file = %path.display(), offset = contents.valid_len, %reason,
                "cutting off a torn write at the end of the log");
            wal::truncate(path, contents.valid_len)?;
        }
        expected = seq + 1;
    }
    Ok((lock, state, expected))
}

/// The flusher thread: appends queued records, syncs once per batch, publishes progress.
fn flush_loop(shared: &Shared, mut segment: wal::SegmentWriter) {
    let wal_dir = shared.dir.join("wal");
    let mut buf = Vec::new();
    loop {
        let items = {
            let mut queue = shared.queue.lock();
            while queue.items.is_empty() && !queue.closing {
                shared.queue_cond.wait(&mut queue);
            }
            if queue.items.is_empty() {
                return;
            }
            std::mem::take(&mut queue.items)
        };
        let mut done = *shared.durable.borrow();
        let mut result = Ok(());
        for item in items {
            match item {
                Queued::Records {
                    bytes,
                    revision,
                    ticket,
                } => {
                    buf.extend_from_slice(&bytes);
                    done.revision = done.revision.max(revision);
                    done.ticket = ticket;
                }
                Queued::Rotate { seq, ticket } => {
                    result = segment.append_durable(&buf).and_then(|()| {
                        segment = wal::SegmentWriter::create(&wal_dir, seq)?;
                        Ok(())
                    });
                    shared.log_bytes.store(0, Ordering::Relaxed);
                    buf.clear();
                    done.ticket = ticket;
                    if result.is_err() {
                        break;
                    }
                }
            }
        }
        if result.is_ok() && !buf.is_empty() {
            result = segment.append_durable(&buf);
            shared
                .log_bytes
                .fetch_add(buf.len() as u64, Ordering::Relaxed);
        }
        buf.clear();
        if let Err(e) = result {
            tracing::error!(error = %e, "the store's log failed; refusing further writes");
            shared.durable.send_modify(|d| d.failed = true);
            return;
        }
        shared.durable.send_modify(|d| {
            d.ticket = done.ticket;
            d.revision = done.revision;
        });
    }
}

impl Shared {
    fn check_open(&self) -> Result<()> {
        if self.durable.borrow().failed {
            return Err(StoreError::Closed(
                "the log failed; restart to recover".into(),
            ));
        }
        if self.queue.lock().closing {
            return Err(StoreError::Closed("the store was closed".into()));
        }
        Ok(())
    }

    /// Queues log records (call with the state lock held, to keep log order = revision order)
    /// and returns the ticket to wait for.
    fn enqueue(&self, records: &[WalRecord], revision: Revision) -> u64 {
        let mut queue = self.queue.lock();
        if records.is_empty() {
            return queue.last_ticket;
        }
        let mut bytes = Vec::new();
        for record in records {
            wal::frame(record, &mut bytes);
        }
        queue.last_ticket += 1;
        let ticket = queue.last_ticket;
        queue.items.push(Queued::Records {
            bytes,
            revision,
            ticket,
        });
        self.queue_cond.notify_one();
        ticket
    }

    /// Waits until everything up to `ticket` is on disk.
    async fn wait_durable(&self, ticket: u64) -> Result<()> {
        let mut rx = self.durable.subscribe();
        let durable = rx
            .wait_for(|d| d.ticket >= ticket || d.failed)
            .await
            .map_err(|_| StoreError::Closed("the store was closed".into()))?;
        if durable.ticket >= ticket {
            Ok(())
        } else {
            Err(StoreError::Closed(
                "the log failed; restart to recover".into(),
            ))
        }
    }

    /// Waits until `revision` is on disk.
    async fn wait_durable_revision(&self, revision: Revision) -> Result<()> {
        let mut rx = self.durable.subscribe();
        let durable = rx
            .wait_for(|d| d.revision >= revision || d.failed)
            .await
            .map_err(|_| StoreError::Closed("the store was closed".into()))?;
        if durable.revision >= revision {
            Ok(())
        } else {
            Err(StoreError::Closed(
                "the log failed; restart to recover".into(),
            ))
        }
    }

    fn durable_revision(&self) -> Revision {
        self.durable.borrow().revision
    }

    /// Applies `change` to the state, logs what it returns and waits until that is durable.
    async fn write<T>(
        self: &Arc<Self>,
        change: impl FnOnce(&mut Mvcc) -> Result<(T, Vec<WalRecord>)>,
    ) -> Result<T> {
        self.check_open()?;
        let (value, ticket) = {
            let mut state = self.state.write();
            let (value, records) = change(&mut state)?;
            (value, self.enqueue(&records, state.current_revision))
        };
        self.wait_durable(ticket).await?;
        if self.log_bytes.load(Ordering::Relaxed) >= self.config.snapshot_after_bytes {
            self.snapshot_in_background();
        }
        Ok(value)
    }

    /// Starts a snapshot on a blocking thread unless one is already running.
    fn snapshot_in_background(self: &Arc<Self>) {
        if self.snapshotting.swap(true, Ordering::AcqRel) {
            return;
        }
        let shared = self.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = shared.snapshot() {
                tracing::warn!(error = %e, "store snapshot failed");
            }
            shared.snapshotting.store(false, Ordering::Release);
        });
    }

    /// Writes a snapshot and deletes the log and snapshots it makes redundant.
    fn snapshot(&self) -> Result<()> {
        self.check_open()?;
        // One snapshot at a time, or an older one could delete a newer one's log.
        let _one_at_a_time = self.snapshot_lock.lock();
        let (encoded, revision, seq, ticket) = {
            let state = self.state.read();
            let seq = self.next_segment.fetch_add(1, Ordering::AcqRel);
            let encoded = snapshot::encode(&state, seq);
            let mut queue = self.queue.lock();
            queue.last_ticket += 1;
            let ticket = queue.last_ticket;
            queue.items.push(Queued::Rotate { seq, ticket });
            self.queue_cond.notify_one();
            (encoded, state.current_revision, seq, ticket)
        };
        futures::executor::block_on(self.wait_durable(ticket))?;
        let snap_dir = self.dir.join("snap");
        let written = snapshot::write(&snap_dir, revision, &encoded)?;
        for (_, path) in snapshot::list(&snap_dir)? {
            if path != written {
                let _ = fs::remove_file(path);
            }
        }
        let wal_dir = self.dir.join("wal");
        for (old, path) in wal::list_segments(&wal_dir)? {
            if old < seq {
                let _ = fs::remove_file(path);
            }
        }
        wal::sync_dir(&wal_dir)?;
        tracing::debug!(revision, bytes = encoded.len(), "store snapshot written");
        Ok(())
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn range(&self, request: RangeRequest) -> Result<RangeResponse> {
        self.shared.check_open()?;
        let durable = self.shared.durable_revision();
        let at = if request.revision == 0 {
            durable
        } else {
            request.revision
        };
        if at > durable {
            return Err(StoreError::FutureRevision {
                requested: at,
                current: durable,
            });
        }
        let mut response = self.shared.state.read().range(&request, at)?;
        response.header_revision = durable;
        Ok(response)
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        self.shared
            .write(|state| {
                let (response, record) = state.txn(&txn)?;
                Ok((response, record.into_iter().collect()))
            })
            .await
    }

    async fn watch(&self, request: WatchRequest) -> Result<WatchStream> {
        self.shared.check_open()?;
        Ok(Box::pin(watch_stream(self.shared.clone(), request)))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let durable = self.shared.durable_revision();
        if revision > durable {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current: durable,
            });
        }
        self.shared
            .write(|state| {
                state.compact(revision)?;
                Ok(((), vec![WalRecord::Compact { revision }]))
            })
            .await?;
        if self.shared.log_bytes.load(Ordering::Relaxed)
            >= self.shared.config.snapshot_after_bytes / 4
        {
            self.snapshot().await?;
        }
        Ok(())
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.shared.check_open()?;
        Ok(self.shared.durable_revision())
    }

    async fn lease_grant(&self, ttl: Duration) -> Result<(LeaseId, Duration)> {
        // Whole seconds, at least one, as etcd grants them.
        let ttl = Duration::from_secs(ttl.as_secs_f64().ceil().max(1.0) as u64);
        self.shared
            .write(|state| {
                let id = loop {
                    let id = rand::random::<i64>() & i64::MAX;
                    if id != 0 && !state.leases.contains_key(&id) {
                        break id;
                    }
                };
                state.grant_lease(id, ttl, Instant::now());
                Ok(((id, ttl), vec![WalRecord::LeaseGrant { id, ttl }]))
            })
            .await
    }

    async fn lease_keep_alive(&self, lease: LeaseId) -> Result<Duration> {
        self.shared.check_open()?;
        self.shared.state.write().keep_alive(lease, Instant::now())
    }

    async fn lease_revoke(&self, lease: LeaseId) -> Result<()> {
        self.shared
            .write(|state| Ok(((), state.revoke_lease(lease)?)))
            .await
    }
}

/// Most events one watch message carries (a revision is never split, so it may carry more).
const WATCH_BATCH: usize = 1000;

/// A watch: reads the event history from its next revision up to the durable one, then waits
/// for the durable revision to move. It reads at its own pace — a slow consumer is never
/// dropped, it just catches up from history — until compaction passes it, which ends the
/// stream with `Compacted`.
fn watch_stream(
    shared: Arc<Shared>,
    request: WatchRequest,
) -> impl futures::Stream<Item = Result<WatchResponse>> {
    struct Watch {
        shared: Arc<Shared>,
        request: WatchRequest,
        rx: watch::Receiver<Durable>,
        next: Revision,
        last_sent: tokio::time::Instant,
        done: bool,
    }
    let rx = shared.durable.subscribe();
    let next = if request.start_revision > 0 {
        request.start_revision
    } else {
        rx.borrow().revision + 1
    };
    let watch = Watch {
        shared,
        request,
        rx,
        next,
        last_sent: tokio::time::Instant::now(),
        done: false,
    };
    futures::stream::unfold(watch, |mut w| async move {
        if w.done {
            return None;
        }
        loop {
            let durable = *w.rx.borrow_and_update();
            if durable.failed {
                w.done = true;
                return Some((Err(StoreError::Closed("the log failed".into())), w));
            }
            let events = w.shared.state.read().events(
                &w.request.range,
                w.next,
                durable.revision,
                WATCH_BATCH,
                w.request.prev_kv,
            );
            match events {
                Err(e) => {
                    w.done = true;
                    return Some((Err(e), w));
                }
                Ok(events) if !events.is_empty() => {
                    w.next = events.last().map_or(w.next, |e| e.revision() + 1);
                    w.last_sent = tokio::time::Instant::now();
                    return Some((
                        Ok(WatchResponse {
                            revision: durable.revision,
                            events,
                        }),
                        w,
                    ));
                }
                Ok(_) => w.next = w.next.max(durable.revision + 1),
            }
            let progress = w.request.progress_notify.map(|every| w.last_sent + every);
            let progress_due = async {
                match progress {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = w.rx.changed() => {
                    if changed.is_err() {
                        w.done = true;
                        return Some((Err(StoreError::Closed("the store was closed".into())), w));
                    }
                }
                () = progress_due => {
                    w.last_sent = tokio::time::Instant::now();
                    let revision = w.shared.durable_revision();
                    return Some((Ok(WatchResponse { revision, events: Vec::new() }), w));
                }
            }
        }
    })
}

/// Revokes leases whose TTL ran out: their keys are deleted as ordinary DELETE events.
async fn expire_leases(shared: std::sync::Weak<Shared>) {
    let interval = match shared.upgrade() {
        Some(s) => s.config.lease_check_interval,
        None => return,
    };
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let expired = shared.state.read().expired_leases(Instant::now());
        for id in expired {
            let result = shared
                .write(|state| {
                    // Kept alive in the meantime?
                    if !state.expired_leases(Instant::now()).contains(&id) {
                        return Ok(((), Vec::new()));
                    }
                    Ok(((), state.revoke_lease(id)?))
                })
                .await;
            if let Err(e) = result {
                tracing::warn!(lease = id, error = %e, "could not revoke an expired lease");
            }
        }
    }
}

/// Compacts every `every`, keeping what [`Config::retention`] says.
async fn auto_compact(shared: std::sync::Weak<Shared>, every: Duration) {
    // Revisions seen over time, to find the one that is `Retention::Time` old.
    let mut samples: std::collections::VecDeque<(Instant, Revision)> = Default::default();
    let sample_every = (every / 10).max(Duration::from_millis(10));
    let mut tick = tokio::time::interval(sample_every);
    let mut last_compaction = Instant::now();
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let now = Instant::now();
        let current = shared.durable_revision();
        samples.push_back((now, current));
        if now.duration_since(last_compaction) < every {
            continue;
        }
        last_compaction = now;
        let target = match &shared.config.retention {
            Retention::Revisions(keep) => current - keep,
            Retention::Time(keep) => {
                while samples.len() > 1 && now.duration_since(samples[1].0) >= *keep {
                    samples.pop_front();
                }
                match samples.front() {
                    Some((at, revision)) if now.duration_since(*at) >= *keep => *revision,
                    _ => 0,
                }
            }
        };
        let compacted = shared.state.read().compact_revision;
        if target > compacted {
            let result = shared
                .write(|state| {
                    state.compact(target)?;
                    Ok(((), vec![WalRecord::Compact { revision: target }]))
                })
                .await;
            match result {
                Ok(()) => tracing::debug!(revision = target, "store compacted"),
                Err(e) => tracing::warn!(error = %e, "automatic compaction failed"),
            }
            if shared.log_bytes.load(Ordering::Relaxed) >= shared.config.snapshot_after_bytes / 4 {
                shared.snapshot_in_background();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{KeyRange, KeyValue, Op};
    use futures::StreamExt as _;

    fn config(dir: &Path) -> Config {
        Config {
            auto_compaction: None,
            ..Config::new(dir)
        }
    }

    async fn all_at(store: &EmbeddedStore, revision: Revision) -> Vec<KeyValue> {
        let request = RangeRequest::new(KeyRange::prefix(&b""[..])).at(revision);
        store.range(request).await.expect("range").kvs
    }

    async fn put(store: &EmbeddedStore, key: String, value: String) {
        store
            .txn(Txn::new().and_then([Op::put(key, value)]))
            .await
            .expect("put");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_snapshot_under_concurrent_writes_holds_exactly_one_revision() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(
            EmbeddedStore::open(config(&dir.path().join("a")))
                .await
                .expect("open"),
        );
        for i in 0..100 {
            put(
                &store,
                format!("/registry/configmaps/default/cm-{i}"),
                format!("v{i}"),
            )
            .await;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for w in 0..4 {
            let (store, stop) = (store.clone(), stop.clone());
            writers.push(tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    // New keys, overwrites of old ones and deletions, as a cluster writes.
                    put(
                        &store,
                        format!("/registry/configmaps/w{w}/cm-{i}"),
                        format!("{i}"),
                    )
                    .await;
                    put(
                        &store,
                        format!("/registry/configmaps/default/cm-{}", i % 100),
                        format!("w{w}-{i}"),
                    )
                    .await;
                    if i % 7 == 0 {
                        let key = format!("/registry/configmaps/w{w}/cm-{}", i / 2);
                        store
                            .txn(Txn::new().and_then([Op::delete(key)]))
                            .await
                            .expect("delete");
                    }
                    i += 1;
                }
            }));
        }
        while store.current_revision().await.expect("revision") < 300 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let file = dir.path().join("saved");
        let info = store.save_snapshot(&file).await.expect("save");
        // The writers go on past the snapshot's revision before they stop.
        while store.current_revision().await.expect("revision") < info.revision + 50 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.store(true, Ordering::Relaxed);
        for writer in writers {
            writer.await.expect("writer");
        }
        assert_eq!(read_snapshot_info(&file).expect("info"), info);

        let restored_dir = dir.path().join("b");
        let (read, revision) = restore(&file, &restored_dir, 0).expect("restore");
        assert_eq!((read, revision), (info, info.revision));
        let restored = EmbeddedStore::open(config(&restored_dir))
            .await
            .expect("open restored");
        let want = all_at(&store, info.revision).await;
        assert!(want.len() > 100);
        assert_eq!(all_at(&restored, 0).await, want);
        assert_eq!(
            restored.current_revision().await.expect("revision"),
            info.revision
        );
    }

    #[tokio::test]
    async fn a_restored_store_keeps_revisions_and_answers_older_ones_with_compacted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(config(&dir.path().join("a")))
            .await
            .expect("open");
        put(&store, "/registry/a".into(), "1".into()).await;
        put(&store, "/registry/b".into(), "1".into()).await;
        put(&store, "/registry/a".into(), "2".into()).await;
        store
            .txn(Txn::new().and_then([Op::delete("/registry/b")]))
            .await
            .expect("delete");
        let (lease, _) = store
            .lease_grant(Duration::from_secs(600))
            .await
            .expect("lease");
        store
            .txn(Txn::new().and_then([Op::Put {
                key: "/registry/events/e".into(),
                value: "x".into(),
                lease,
            }]))
            .await
            .expect("put with lease");
        let file = dir.path().join("saved");
        let info = store.save_snapshot(&file).await.expect("save");
        let want = all_at(&store, info.revision).await;
        drop(store);

        let restored_dir = dir.path().join("b");
        let (_, revision) = restore(&file, &restored_dir, 1000).expect("restore");
        assert_eq!(revision, info.revision + 1000);
        // A second restore into the same directory is refused.
        let again = restore(&file, &restored_dir, 0).expect_err("not empty");
        assert!(
            again.to_string().contains("already holds a store"),
            "{again}"
        );

        let restored = EmbeddedStore::open(config(&restored_dir))
            .await
            .expect("open");
        assert_eq!(all_at(&restored, 0).await, want);
        assert_eq!(
            restored.current_revision().await.expect("revision"),
            revision
        );
        for old in [info.revision - 1, info.revision, revision - 1] {
            let read = restored
                .range(RangeRequest::new(KeyRange::prefix(&b""[..])).at(old))
                .await;
            assert!(
                matches!(read, Err(StoreError::Compacted { .. })),
                "{read:?}"
            );
            let mut watch = restored
                .watch(WatchRequest::new(KeyRange::prefix(&b""[..])).from_revision(old))
                .await
                .expect("watch");
            let first = watch.next().await.expect("an answer");
            assert!(
                matches!(first, Err(StoreError::Compacted { .. })),
                "{first:?}"
            );
        }
        // New writes follow the restored revision; the lease came back with its key.
        put(&restored, "/registry/c".into(), "1".into()).await;
        assert_eq!(
            restored.current_revision().await.expect("revision"),
            revision + 1
        );
        restored.lease_revoke(lease).await.expect("revoke");
        let events = all_at(&restored, 0).await;
        assert!(
            events.iter().all(|kv| kv.key != "/registry/events/e"),
            "{events:?}"
        );

        // And it survives a restart like any store.
        let now = all_at(&restored, 0).await;
        drop(restored);
        let reopened = EmbeddedStore::open(config(&restored_dir))
            .await
            .expect("reopen");
        assert_eq!(all_at(&reopened, 0).await, now);
    }
}
