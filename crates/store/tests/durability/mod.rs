//! Durability of the embedded backend: what was acknowledged survives restarts, SIGKILL and
//! torn writes; damage anywhere else stops the store with the file and offset named.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferry_store::embedded::{Config, EmbeddedStore};
use ferry_store::{EventKind, KeyRange, Op, RangeRequest, Store, StoreError, Txn, WatchRequest};
use rand::Rng;

fn b(s: impl AsRef<str>) -> Bytes {
    Bytes::copy_from_slice(s.as_ref().as_bytes())
}

fn config(dir: &Path) -> Config {
    let mut config = Config::new(dir);
    config.auto_compaction = None;
    config
}

async fn open(dir: &Path) -> EmbeddedStore {
    EmbeddedStore::open(config(dir)).await.expect("open")
}

async fn all(store: &EmbeddedStore) -> Vec<(Bytes, Bytes, i64, i64)> {
    let range = store
        .range(RangeRequest::new(KeyRange::prefix(Bytes::new())))
        .await
        .expect("range");
    range
        .kvs
        .into_iter()
        .map(|kv| (kv.key, kv.value, kv.create_revision, kv.mod_revision))
        .collect()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir.join("wal"))
        .expect("wal dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}

fn disk_usage(dir: &Path) -> u64 {
    ["wal", "snap"]
        .iter()
        .flat_map(|d| fs::read_dir(dir.join(d)).expect("dir"))
        .map(|e| e.expect("entry").metadata().expect("metadata").len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_state_revisions_history_and_leases() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path()).await;
    let first = store.put(b("/a"), b("1")).await.expect("put");
    store.put(b("/a"), b("2")).await.expect("put");
    let (lease, _) = store
        .lease_grant(Duration::from_secs(600))
        .await
        .expect("grant");
    store
        .create(b("/leased"), b("x"), lease)
        .await
        .expect("create")
        .expect("created");
    store
        .txn(Txn::new().and_then([Op::put(b("/b"), b("1")), Op::delete(b("/a"))]))
        .await
        .expect("txn");
    let before = all(&store).await;
    let revision = store.current_revision().await.expect("revision");
    drop(store);

    let store = open(dir.path()).await;
    assert_eq!(store.current_revision().await.expect("revision"), revision);
    assert_eq!(all(&store).await, before);
    assert!(
        store.lease_keep_alive(lease).await.is_ok(),
        "leases survive a restart"
    );
    // The history survives too: a watch from the first revision replays every change.
    let mut stream = store
        .watch(WatchRequest::new(KeyRange::prefix(b("/"))).from_revision(first))
        .await
        .expect("watch");
    let message = crate::conformance::next_message(&mut stream)
        .await
        .expect("events");
    let kinds: Vec<_> = message
        .events
        .iter()
        .map(|e| (e.kind, e.kv.key.clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (EventKind::Put, b("/a")),
            (EventKind::Put, b("/a")),
            (EventKind::Put, b("/leased")),
            (EventKind::Put, b("/b")),
            (EventKind::Delete, b("/a")),
        ]
    );
    // Snapshot, then restart from the snapshot.
    store.snapshot().await.expect("snapshot");
    drop(store);
    let store = open(dir.path()).await;
    assert_eq!(all(&store).await, before);
    assert_eq!(store.current_revision().await.expect("revision"), revision);
    store.lease_revoke(lease).await.expect("revoke");
    assert!(store.get(b"/leased").await.expect("get").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_cannot_open_the_same_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _store = open(dir.path()).await;
    let second = EmbeddedStore::open(config(dir.path())).await;
    assert!(
        matches!(second, Err(StoreError::Closed(_))),
        "{:?}",
        second.err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_use_follows_live_data_after_compaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config(dir.path());
    config.snapshot_after_bytes = 512 << 10;
    let store = EmbeddedStore::open(config).await.expect("open");
    // 100 live keys of 1 KiB, each rewritten 40 times: 4 MiB of writes.
    for round in 0..40 {
        for i in 0..100 {
            store
                .put(b(format!("/k/{i}")), Bytes::from(vec![round as u8; 1024]))
                .await
                .expect("put");
        }
    }
    let current = store.current_revision().await.expect("revision");
    store.compact(current).await.expect("compact");
    store.snapshot().await.expect("snapshot");
    let used = disk_usage(dir.path());
    assert!(used < 400 << 10, "{used} bytes on disk for ~110 KiB live");
    drop(store);
    let store = open(dir.path()).await;
    let range = store
        .range(RangeRequest::new(KeyRange::prefix(b("/k/"))))
        .await
        .expect("range");
    assert_eq!(range.count, 100);
    assert!(range
        .kvs
        .iter()
        .all(|kv| kv.value[0] == 39 && kv.version == 40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_is_cut_and_the_rest_recovered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path()).await;
    for i in 0..100 {
        store
            .put(b(format!("/k/{i:03}")), b("value"))
            .await
            .expect("put");
    }
    let revision = store.current_revision().await.expect("revision");
    drop(store);
    let last = segments(dir.path()).pop().expect("a segment");
    // Half a record: a length header and a few bytes of what would follow.
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(&last)
        .expect("open");
    file.write_all(&[200, 0, 0, 0, 1, 2, 3]).expect("append");
    drop(file);
    let store = open(dir.path()).await;
    assert_eq!(store.current_revision().await.expect("revision"), revision);
    assert_eq!(all(&store).await.len(), 100);
    let r = store.put(b("/after"), b("x")).await.expect("writes go on");
    drop(store);
    let store = open(dir.path()).await;
    assert_eq!(
        store
            .get(b"/after")
            .await
            .expect("get")
            .map(|kv| kv.mod_revision),
        Some(r)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corruption_before_the_tail_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path()).await;
    for i in 0..100 {
        store
            .put(b(format!("/k/{i:03}")), b("value"))
            .await
            .expect("put");
    }
    drop(store);
    let last = segments(dir.path()).pop().expect("a segment");
    let mut data = fs::read(&last).expect("read");
    let middle = data.len() / 2;
    data[middle] ^= 0x55;
    fs::write(&last, &data).expect("write");
    match EmbeddedStore::open(config(dir.path())).await {
        Err(StoreError::Corrupt { path, offset, .. }) => {
            assert_eq!(path, last);
            assert!(
                offset as usize <= middle,
                "offset {offset} names the damaged record"
            );
        }
        Err(other) => panic!("expected corruption, got {other}"),
        Ok(_) => panic!("a store with a corrupt log must not start"),
    }
}

// ---------------------------------------------------------------------------------------------
// Crash test: a child process writes as fast as it can and is killed with SIGKILL at a random
// moment; after each restart every acknowledged write is present, and every transaction is
// all-or-nothing.

const CHILD_DIR: &str = "FERRY_CRASH_CHILD_DIR";
const CHILD_ROUND: &str = "FERRY_CRASH_CHILD_ROUND";

fn value_of(writer: u64, n: u64) -> Bytes {
    // Long enough that a half-written value cannot pass for a whole one.
    Bytes::from(format!(
        "{writer}:{n}:{}",
        "x".repeat(200 + (n % 300) as usize)
    ))
}

/// The child: not a test of its own (it returns at once unless the parent started it).
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let round: u64 = std::env::var(CHILD_ROUND)
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let store = Arc::new(
            EmbeddedStore::open(config(Path::new(&dir)))
                .await
                .expect("child opens"),
        );
        let writers: Vec<_> = (0..8u64)
            .map(|writer| {
                let store = store.clone();
                tokio::spawn(async move {
                    for n in round * 1_000_000.. {
                        let value = value_of(writer, n);
                        let txn = Txn::new().and_then([
                            Op::put(b(format!("/a/{writer}/{n}")), value.clone()),
                            Op::put(b(format!("/b/{writer}/{n}")), value),
                        ]);
                        store.txn(txn).await.expect("write");
                        let mut out = std::io::stdout().lock();
                        let _ = writeln!(out, "ack {writer} {n}");
                        let _ = out.flush();
                    }
                })
            })
            .collect();
        for writer in writers {
            let _ = writer.await;
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_recovery_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    let mut acked: BTreeMap<(u64, u64), ()> = BTreeMap::new();
    let mut rng = rand::rng();
    for round in 1..=20u64 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "durability::crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_ROUND, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut parts = line.split_whitespace();
                if parts.next() == Some("ack") {
                    let writer = parts.next().and_then(|p| p.parse().ok());
                    let n = parts.next().and_then(|p| p.parse().ok());
                    if let (Some(writer), Some(n)) = (writer, n) {
                        acks.push((writer, n));
                    }
                }
            }
            acks
        });
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..600))).await;
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("reap child");
        assert!(!status.success(), "the child was killed, not finished");
        let acks = reader.join().expect("reader");
        assert!(
            !acks.is_empty() || round > 1,
            "the child acknowledged nothing in round {round}"
        );
        acked.extend(acks.into_iter().map(|a| (a, ())));

        let store = open(dir.path()).await;
        let range = store
            .range(RangeRequest::new(KeyRange::prefix(Bytes::new())))
            .await
            .expect("range");
        let present: BTreeMap<Bytes, Bytes> =
            range.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
        for (writer, n) in acked.keys() {
            for side in ["a", "b"] {
                let key = b(format!("/{side}/{writer}/{n}"));
                assert_eq!(
                    present.get(&key),
                    Some(&value_of(*writer, *n)),
                    "round {round}: acknowledged {key:?} lost"
                );
            }
        }
        for (key, value) in &present {
            let text = std::str::from_utf8(key).expect("utf8 key");
            let mut parts = text.split('/').skip(1);
            let (side, writer, n) = (parts.next(), parts.next(), parts.next());
            let writer: u64 = writer.and_then(|w| w.parse().ok()).expect("writer");
            let n: u64 = n.and_then(|n| n.parse().ok()).expect("n");
            assert_eq!(
                value,
                &value_of(writer, n),
                "round {round}: {text} half-written"
            );
            let other = if side == Some("a") { "b" } else { "a" };
            assert!(
                present.contains_key(&b(format!("/{other}/{writer}/{n}"))),
                "round {round}: {text} without its pair"
            );
        }
        drop(store);
    }
    eprintln!(
        "crash test: {} acknowledged transactions survived 20 SIGKILLs",
        acked.len()
    );
    assert!(
        acked.len() > 100,
        "only {} writes acknowledged in 20 rounds",
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_compaction_keeps_the_configured_revisions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::new(dir.path());
    config.auto_compaction = Some(Duration::from_millis(100));
    config.retention = ferry_store::embedded::Retention::Revisions(5);
    let store = EmbeddedStore::open(config).await.expect("open");
    let first = store.put(b("/k"), b("0")).await.expect("put");
    for i in 1..20 {
        store.put(b("/k"), b(i.to_string())).await.expect("put");
    }
    let current = store.current_revision().await.expect("revision");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let old = store
            .range(RangeRequest::new(KeyRange::key(b("/k"))).at(first))
            .await;
        if matches!(old, Err(StoreError::Compacted { .. })) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no automatic compaction within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The retained window is still readable.
    let recent = store
        .range(RangeRequest::new(KeyRange::key(b("/k"))).at(current - 5))
        .await
        .expect("retained");
    assert_eq!(recent.kvs.len(), 1);
}
