//! The conformance suite: what every `Store` backend must do, as etcd v3 does it for the
//! Kubernetes API server. Each case takes a fresh, empty store; revisions are checked relative
//! to what the store reports, so the same case runs against the embedded store and real etcd.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferry_store::{
    Compare, CompareOp, CompareTarget, EventKind, KeyRange, Op, OpResponse, RangeRequest, Revision,
    Store, StoreError, Txn, WatchRequest, WatchResponse, WatchStream,
};
use futures::StreamExt;

pub type Dyn = Arc<dyn Store>;

fn b(s: impl AsRef<str>) -> Bytes {
    Bytes::copy_from_slice(s.as_ref().as_bytes())
}

/// The next watch message, failing the test if none comes within 10 s.
pub async fn next_message(stream: &mut WatchStream) -> Result<WatchResponse, StoreError> {
    match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
        Ok(Some(message)) => message,
        Ok(None) => panic!("watch ended without an error"),
        Err(_) => panic!("no watch message within 10 s"),
    }
}

/// Reads events (skipping progress notifications) until `n` have arrived.
async fn collect_events(stream: &mut WatchStream, n: usize) -> Vec<ferry_store::Event> {
    let mut events = Vec::new();
    while events.len() < n {
        let message = next_message(stream).await.expect("watch message");
        events.extend(message.events);
    }
    events
}

pub async fn revisions(store: Dyn) {
    let start = store.current_revision().await.expect("revision");
    let r1 = store.put(b("/r/a"), b("1")).await.expect("put");
    assert!(r1 > start);
    let r2 = store.put(b("/r/a"), b("2")).await.expect("put");
    assert_eq!(r2, r1 + 1, "every write moves the revision by one");
    let a = store.get(b"/r/a").await.expect("get").expect("exists");
    assert_eq!((a.create_revision, a.mod_revision, a.version), (r1, r2, 2));

    // All keys of one transaction share its revision.
    let txn = Txn::new().and_then([Op::put(b("/r/b"), b("1")), Op::put(b("/r/c"), b("1"))]);
    let response = store.txn(txn).await.expect("txn");
    assert_eq!(response.header_revision, r2 + 1);
    let range = store
        .range(RangeRequest::new(KeyRange::prefix(b("/r/"))))
        .await
        .expect("range");
    let mods: Vec<Revision> = range.kvs.iter().map(|kv| kv.mod_revision).collect();
    assert_eq!(mods, vec![r2, r2 + 1, r2 + 1]);
    assert_eq!(range.header_revision, r2 + 1);

    // A read at an older revision sees the old value; a future one is refused.
    let old = store
        .range(RangeRequest::new(KeyRange::key(b("/r/a"))).at(r1))
        .await
        .expect("old");
    assert_eq!(old.kvs[0].value, b("1"));
    let future = store
        .range(RangeRequest::new(KeyRange::key(b("/r/a"))).at(r2 + 100))
        .await;
    assert!(
        matches!(future, Err(StoreError::FutureRevision { .. })),
        "{future:?}"
    );

    // Deletion moves the revision; re-creation starts a new generation.
    let deleted = store
        .delete(b("/r/a"), 0)
        .await
        .expect("delete")
        .expect("deleted");
    assert_eq!(deleted.value, b("2"));
    let r_del = store.current_revision().await.expect("revision");
    assert_eq!(r_del, r2 + 2);
    assert_eq!(store.get(b"/r/a").await.expect("get"), None);
    let r_new = store.put(b("/r/a"), b("3")).await.expect("put");
    let a = store.get(b"/r/a").await.expect("get").expect("exists");
    assert_eq!((a.create_revision, a.version), (r_new, 1));
    // Deleting nothing does not move the revision.
    let nothing = store
        .txn(Txn::new().and_then([Op::delete(b("/r/none"))]))
        .await
        .expect("txn");
    assert_eq!(nothing.header_revision, r_new);
}

pub async fn compare_and_swap(store: Dyn) {
    let created = store.create(b("/cas/k"), b("v1"), 0).await.expect("create");
    let r1 = created.expect("created when absent");
    assert_eq!(
        store.create(b("/cas/k"), b("v2"), 0).await.expect("create"),
        None,
        "409 AlreadyExists"
    );

    let r2 = store
        .update(b("/cas/k"), r1, b("v2"))
        .await
        .expect("update")
        .expect("current revision");
    let stale = store
        .update(b("/cas/k"), r1, b("v3"))
        .await
        .expect("update");
    let current = stale
        .expect_err("stale revision conflicts")
        .expect("key exists");
    assert_eq!((current.mod_revision, current.value.clone()), (r2, b("v2")));

    let stale_delete = store.delete(b("/cas/k"), r1).await.expect("delete");
    assert!(stale_delete.is_err());
    assert!(
        store.get(b"/cas/k").await.expect("get").is_some(),
        "nothing half-done"
    );
    store
        .delete(b("/cas/k"), r2)
        .await
        .expect("delete")
        .expect("deleted at the right revision");
    let gone = store
        .update(b("/cas/k"), r2, b("v4"))
        .await
        .expect("update");
    assert_eq!(
        gone,
        Err(None),
        "updating a deleted key conflicts with nothing current"
    );

    // The other comparison targets and operators.
    store.put(b("/cas/n"), b("b")).await.expect("put");
    let cases = [
        (CompareTarget::Version(1), CompareOp::Equal, true),
        (CompareTarget::Version(1), CompareOp::Greater, false),
        (CompareTarget::Value(b("a")), CompareOp::Greater, true),
        (CompareTarget::Value(b("c")), CompareOp::Less, true),
        (CompareTarget::Value(b("b")), CompareOp::NotEqual, false),
        (CompareTarget::CreateRevision(0), CompareOp::Greater, true),
    ];
    for (target, op, holds) in cases {
        let compare = Compare {
            key: b("/cas/n"),
            target: target.clone(),
            op,
        };
        let response = store.txn(Txn::new().when([compare])).await.expect("txn");
        assert_eq!(response.succeeded, holds, "{target:?} {op:?}");
    }

    // Failure branch operations run and report.
    let txn = Txn::new()
        .when([Compare::absent(b("/cas/n"))])
        .and_then([Op::put(b("/cas/x"), b("never"))])
        .or_else([Op::get(b("/cas/n")), Op::put(b("/cas/y"), b("else"))]);
    let response = store.txn(txn).await.expect("txn");
    assert!(!response.succeeded);
    assert!(matches!(&response.responses[0], OpResponse::Range(r) if r.kvs[0].value == b("b")));
    assert!(store.get(b"/cas/x").await.expect("get").is_none());
    assert!(store.get(b"/cas/y").await.expect("get").is_some());
}

pub async fn range_limit_and_continue(store: Dyn) {
    for i in 0..10 {
        store
            .put(b(format!("/pods/ns/p{i:02}")), b(format!("v{i}")))
            .await
            .expect("put");
    }
    store
        .put(b("/pods0"), b("outside the prefix"))
        .await
        .expect("put");
    store
        .put(b("/pod"), b("outside the prefix"))
        .await
        .expect("put");
    let snapshot = store.current_revision().await.expect("revision");
    let prefix = KeyRange::prefix(b("/pods/"));

    let page = store
        .range(RangeRequest::new(prefix.clone()).at(snapshot).limit(4))
        .await
        .expect("range");
    assert_eq!((page.kvs.len(), page.more, page.count), (4, true, 10));

    // Writes after the snapshot do not show in later pages read at the snapshot.
    store
        .put(b("/pods/ns/p05"), b("changed"))
        .await
        .expect("put");
    store
        .delete(b("/pods/ns/p06"), 0)
        .await
        .expect("delete")
        .expect("deleted");
    store.put(b("/pods/ns/p99"), b("new")).await.expect("put");

    let mut seen: Vec<Bytes> = page.kvs.iter().map(|kv| kv.key.clone()).collect();
    let mut last = page;
    while last.more {
        let mut start = last.kvs.last().expect("a full page").key.to_vec();
        start.push(0); // the key right after the last one, as the API server's continue token
        let request = RangeRequest::new(prefix.starting_at(start.into()))
            .at(snapshot)
            .limit(4);
        last = store.range(request).await.expect("next page");
        for kv in &last.kvs {
            assert!(kv.mod_revision <= snapshot);
            if kv.key == b("/pods/ns/p05") {
                assert_eq!(kv.value, b("v5"), "page read at the snapshot revision");
            }
        }
        seen.extend(last.kvs.iter().map(|kv| kv.key.clone()));
    }
    let expected: Vec<Bytes> = (0..10).map(|i| b(format!("/pods/ns/p{i:02}"))).collect();
    assert_eq!(seen, expected);

    let now = store
        .range(RangeRequest::new(prefix.clone()))
        .await
        .expect("range");
    assert_eq!(now.count, 10);
    assert!(!now.more);
    let count = store
        .range(RangeRequest {
            count_only: true,
            ..RangeRequest::new(prefix)
        })
        .await
        .expect("count");
    assert_eq!((count.count, count.kvs.len()), (10, 0));
    let between = store
        .range(RangeRequest::new(KeyRange::between(
            b("/pods/ns/p02"),
            b("/pods/ns/p04"),
        )))
        .await
        .expect("range");
    assert_eq!(between.kvs.len(), 2);
}

pub async fn watch_from_old_revision(store: Dyn) {
    let first = store.put(b("/w/a"), b("1")).await.expect("put");
    store.put(b("/w/a"), b("2")).await.expect("put");
    store.put(b("/other"), b("not watched")).await.expect("put");
    store
        .delete(b("/w/a"), 0)
        .await
        .expect("delete")
        .expect("deleted");
    let mut stream = store
        .watch(WatchRequest::new(KeyRange::prefix(b("/w/"))).from_revision(first))
        .await
        .expect("watch");
    store.put(b("/w/b"), b("live")).await.expect("put");
    let events = collect_events(&mut stream, 4).await;
    let kinds: Vec<_> = events.iter().map(|e| (e.kind, e.kv.key.clone())).collect();
    assert_eq!(
        kinds,
        vec![
            (EventKind::Put, b("/w/a")),
            (EventKind::Put, b("/w/a")),
            (EventKind::Delete, b("/w/a")),
            (EventKind::Put, b("/w/b")),
        ]
    );
    assert_eq!(events[0].kv.mod_revision, first);
    assert!(events.windows(2).all(|w| w[0].revision() < w[1].revision()));
    assert_eq!(
        events[1].prev_kv.as_ref().map(|kv| kv.value.clone()),
        Some(b("1"))
    );
    assert_eq!(
        events[2].prev_kv.as_ref().map(|kv| kv.value.clone()),
        Some(b("2"))
    );
    assert!(events[3].prev_kv.is_none());

    // A watch from now sees only later changes.
    let mut now = store
        .watch(WatchRequest::new(KeyRange::key(b("/w/b"))))
        .await
        .expect("watch");
    let r = store.put(b("/w/b"), b("later")).await.expect("put");
    let later = collect_events(&mut now, 1).await;
    assert_eq!(
        (later[0].kv.mod_revision, later[0].kv.value.clone()),
        (r, b("later"))
    );
}

pub async fn watch_slow_consumer(store: Dyn) {
    let start = store.current_revision().await.expect("revision") + 1;
    let mut stream = store
        .watch(WatchRequest::new(KeyRange::prefix(b("/slow/"))).from_revision(start))
        .await
        .expect("watch");
    // Write much more than any buffer before reading anything.
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..250 {
                    store
                        .put(b(format!("/slow/{w}/{i}")), Bytes::from(vec![b'x'; 512]))
                        .await
                        .expect("put");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let events = collect_events(&mut stream, 2000).await;
    assert_eq!(events.len(), 2000, "none lost, none duplicated");
    assert!(
        events.windows(2).all(|w| w[0].revision() < w[1].revision()),
        "in revision order"
    );
    let keys: BTreeSet<_> = events.iter().map(|e| e.kv.key.clone()).collect();
    assert_eq!(keys.len(), 2000);
}

pub async fn compaction(store: Dyn) {
    let old = store.put(b("/c/k"), b("1")).await.expect("put");
    store.put(b("/c/k"), b("2")).await.expect("put");
    let mid = store.put(b("/c/gone"), b("x")).await.expect("put");
    store
        .delete(b("/c/gone"), 0)
        .await
        .expect("delete")
        .expect("deleted");
    let latest = store.put(b("/c/k"), b("3")).await.expect("put");
    store.compact(mid + 1).await.expect("compact");

    let at_old = store
        .range(RangeRequest::new(KeyRange::key(b("/c/k"))).at(old))
        .await;
    assert!(
        matches!(at_old, Err(StoreError::Compacted { .. })),
        "{at_old:?}"
    );
    let at_compacted = store
        .range(RangeRequest::new(KeyRange::prefix(b("/c/"))).at(mid + 1))
        .await
        .expect("readable");
    assert_eq!(
        at_compacted.kvs.len(),
        1,
        "the deleted key is gone, /c/k is still visible"
    );
    assert_eq!(at_compacted.kvs[0].value, b("2"));
    let now = store.get(b"/c/k").await.expect("get").expect("exists");
    assert_eq!((now.mod_revision, now.version), (latest, 3));

    let mut stream = store
        .watch(WatchRequest::new(KeyRange::prefix(b("/c/"))).from_revision(old))
        .await
        .expect("watch call");
    let first = next_message(&mut stream).await;
    assert!(
        matches!(first, Err(StoreError::Compacted { .. })),
        "{first:?}"
    );

    // Right after the compacted revision, the history is whole. (What a watch from exactly the
    // compacted revision sees differs: etcd drops a deletion at that revision.)
    let mut after_compacted = store
        .watch(WatchRequest::new(KeyRange::prefix(b("/c/"))).from_revision(mid + 2))
        .await
        .expect("watch");
    let events = collect_events(&mut after_compacted, 1).await;
    assert_eq!(
        (events[0].kind, events[0].kv.mod_revision),
        (EventKind::Put, latest)
    );

    let again = store.compact(mid).await;
    assert!(
        matches!(again, Err(StoreError::Compacted { .. })),
        "{again:?}"
    );
    let future = store.compact(latest + 100).await;
    assert!(
        matches!(future, Err(StoreError::FutureRevision { .. })),
        "{future:?}"
    );
}

pub async fn leases(store: Dyn) {
    // Revocation deletes the attached keys at one revision.
    let (lease, ttl) = store
        .lease_grant(Duration::from_secs(60))
        .await
        .expect("grant");
    assert_eq!(ttl, Duration::from_secs(60));
    store
        .create(b("/l/a"), b("1"), lease)
        .await
        .expect("create")
        .expect("created");
    store
        .create(b("/l/b"), b("1"), lease)
        .await
        .expect("create")
        .expect("created");
    assert_eq!(
        store.lease_keep_alive(lease).await.expect("keep alive"),
        Duration::from_secs(60)
    );
    let before = store.current_revision().await.expect("revision");
    store.lease_revoke(lease).await.expect("revoke");
    assert_eq!(
        store.current_revision().await.expect("revision"),
        before + 1
    );
    assert!(store.get(b"/l/a").await.expect("get").is_none());
    let gone = store.lease_keep_alive(lease).await;
    assert!(
        matches!(gone, Err(StoreError::LeaseNotFound(_))),
        "{gone:?}"
    );
    let unknown = store.create(b("/l/c"), b("1"), lease).await;
    assert!(
        matches!(unknown, Err(StoreError::LeaseNotFound(_))),
        "{unknown:?}"
    );
    assert!(
        store.get(b"/l/c").await.expect("get").is_none(),
        "nothing half-written"
    );
}

pub async fn lease_expiry(store: Dyn) {
    let (lease, _) = store
        .lease_grant(Duration::from_secs(2))
        .await
        .expect("grant");
    let mut stream = store
        .watch(WatchRequest::new(KeyRange::prefix(b("/events/"))))
        .await
        .expect("watch");
    store
        .create(b("/events/e1"), b("event"), lease)
        .await
        .expect("create")
        .expect("created");
    store
        .put(b("/events/kept"), b("no lease"))
        .await
        .expect("put");
    let events = collect_events(&mut stream, 2).await;
    assert!(events.iter().all(|e| e.kind == EventKind::Put));
    // No keep-alive: within a few seconds the key goes, as an ordinary DELETE event.
    let deletion = tokio::time::timeout(Duration::from_secs(15), collect_events(&mut stream, 1))
        .await
        .expect("the lease expires");
    assert_eq!(
        (deletion[0].kind, deletion[0].kv.key.clone()),
        (EventKind::Delete, b("/events/e1"))
    );
    assert!(store.get(b"/events/e1").await.expect("get").is_none());
    assert!(store.get(b"/events/kept").await.expect("get").is_some());
}

pub async fn concurrent_writers(store: Dyn) {
    store.put(b("/counter"), b("0")).await.expect("put");
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut revisions = Vec::new();
                for _ in 0..25 {
                    loop {
                        let current = store.get(b"/counter").await.expect("get").expect("exists");
                        let n: u64 = std::str::from_utf8(&current.value)
                            .expect("utf8")
                            .parse()
                            .expect("number");
                        let result = store
                            .update(b("/counter"), current.mod_revision, b((n + 1).to_string()))
                            .await
                            .expect("update");
                        if let Ok(revision) = result {
                            revisions.push(revision);
                            break;
                        }
                    }
                }
                revisions
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        let revisions = task.await.expect("writer");
        assert!(
            revisions.windows(2).all(|w| w[0] < w[1]),
            "each writer sees increasing revisions"
        );
        all.extend(revisions);
    }
    let counter = store.get(b"/counter").await.expect("get").expect("exists");
    assert_eq!(counter.value, b("400"), "no lost update");
    let distinct: BTreeSet<_> = all.iter().collect();
    assert_eq!(distinct.len(), 400, "every write got its own revision");
}

pub async fn progress_notify(store: Dyn) {
    let request = WatchRequest::new(KeyRange::prefix(b("/quiet/")))
        .progress_every(Duration::from_millis(300));
    let mut stream = store.watch(request).await.expect("watch");
    // Writes elsewhere move the revision without events for this watch.
    let r = store.put(b("/busy"), b("1")).await.expect("put");
    loop {
        let message = next_message(&mut stream).await.expect("message");
        assert!(
            message.is_progress_notify(),
            "no events expected: {message:?}"
        );
        if message.revision >= r {
            break;
        }
    }
}
