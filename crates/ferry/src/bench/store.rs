//! `ferry bench store`: durable writes/s and latency of the embedded store and, through the same
//! `Store` trait in the same run, of a real etcd started on loopback (the reference); then watch
//! fan-out: many watchers each receiving every event, counted for loss.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use ferry_store::embedded::{Config, EmbeddedStore};
use ferry_store::etcd::process::EtcdProcess;
use ferry_store::etcd::EtcdStore;
use ferry_store::{KeyRange, Store, WatchRequest};
use futures::StreamExt;
use serde_json::{json, Value};

/// Options of `ferry bench store`.
#[derive(clap::Args)]
pub struct Args {
    /// Print one JSON object with every figure as the last line.
    #[arg(long)]
    json: bool,
    /// Seconds each write measurement runs.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Concurrent writer counts to measure.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16, 64])]
    writers: Vec<usize>,
    /// Watchers in the fan-out measurement.
    #[arg(long, default_value_t = 1000)]
    watchers: usize,
    /// Events in the fan-out measurement.
    #[arg(long, default_value_t = 10_000)]
    events: usize,
    /// Skip the etcd reference (no ratio is printed then).
    #[arg(long)]
    no_etcd: bool,
}

/// What one write measurement gave.
struct Writes {
    writers: usize,
    writes_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Writes {
    fn json(&self) -> Value {
        json!({"writers": self.writers, "writes_per_s": round(self.writes_per_s),
               "p50_ms": round(self.p50_ms), "p99_ms": round(self.p99_ms)})
    }
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// `writers` tasks putting 1 KiB values to distinct keys for `seconds`.
async fn measure_writes(
    store: Arc<dyn Store>,
    writers: usize,
    seconds: f64,
    tag: &str,
) -> anyhow::Result<Writes> {
    let value = Bytes::from(vec![b'v'; 1024]);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            let value = value.clone();
            let tag = tag.to_string();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let key = Bytes::from(format!("/bench/{tag}/{w}/{i}"));
                    let t = Instant::now();
                    store.put(key, value.clone()).await?;
                    latencies.push(t.elapsed());
                    i += 1;
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    Ok(Writes {
        writers,
        writes_per_s: latencies.len() as f64 / elapsed,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
    })
}

/// `watchers` watches of one prefix, then `events` writes; every watcher must see every event,
/// in order, once.
async fn measure_fanout(
    store: Arc<dyn Store>,
    watchers: usize,
    events: usize,
) -> anyhow::Result<Value> {
    let start = store.current_revision().await? + 1;
    let mut streams = Vec::with_capacity(watchers);
    for _ in 0..watchers {
        let request = WatchRequest::new(KeyRange::prefix(Bytes::from_static(b"/fanout/")))
            .from_revision(start);
        streams.push(store.watch(request).await?);
    }
    let started = Instant::now();
    let consumers: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            tokio::spawn(async move {
                let (mut seen, mut last) = (0usize, 0i64);
                while seen < events {
                    let message = tokio::time::timeout(Duration::from_secs(60), stream.next())
                        .await
                        .context("watcher stalled")?
                        .context("watch ended")??;
                    for event in message.events {
                        anyhow::ensure!(
                            event.revision() > last,
                            "event out of order or duplicated"
                        );
                        last = event.revision();
                        seen += 1;
                    }
                }
                anyhow::Ok(seen)
            })
        })
        .collect();
    let writers = 16;
    let value = Bytes::from(vec![b'e'; 256]);
    let producer: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            let value = value.clone();
            tokio::spawn(async move {
                for i in (w..events).step_by(writers) {
                    store
                        .put(Bytes::from(format!("/fanout/{i}")), value.clone())
                        .await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for p in producer {
        p.await??;
    }
    let mut delivered = 0usize;
    for c in consumers {
        delivered += c.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let expected = watchers * events;
    Ok(
        json!({"watchers": watchers, "events": events, "delivered": delivered,
              "lost": expected - delivered.min(expected),
              "seconds": round(elapsed), "events_per_s": round(delivered as f64 / elapsed)}),
    )
}

fn print_writes(name: &str, results: &[Writes]) {
    for r in results {
        println!(
            "{name:<9} writers={:<3} {:>9.0} writes/s   p50 {:>6.2} ms   p99 {:>6.2} ms",
            r.writers, r.writes_per_s, r.p50_ms, r.p99_ms
        );
    }
}

/// Runs the benchmark.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    println!(
        "ferry bench store: 1 KiB values, durable (fdatasync) writes, {} s per measurement",
        args.seconds
    );
    let mut config = Config::new(dir.path().join("embedded"));
    config.auto_compaction = None;
    let embedded: Arc<dyn Store> = Arc::new(EmbeddedStore::open(config).await?);
    let mut embedded_writes = Vec::new();
    for &writers in &args.writers {
        embedded_writes
            .push(measure_writes(embedded.clone(), writers, args.seconds, "embedded").await?);
    }
    print_writes("embedded", &embedded_writes);

    let mut etcd_writes = Vec::new();
    let _etcd = if args.no_etcd {
        None
    } else {
        let process = EtcdProcess::start()
            .await
            .context("starting etcd (Debian package etcd-server)")?;
        let etcd: Arc<dyn Store> =
            Arc::new(EtcdStore::connect(&[process.endpoint()], "/registry").await?);
        for &writers in &args.writers {
            etcd_writes.push(measure_writes(etcd.clone(), writers, args.seconds, "etcd").await?);
        }
        print_writes("etcd", &etcd_writes);
        Some(process)
    };
    let at16 = |results: &[Writes]| {
        results
            .iter()
            .find(|r| r.writers == 16)
            .map(|r| r.writes_per_s)
    };
    let ratio = match (at16(&embedded_writes), at16(&etcd_writes)) {
        (Some(e), Some(r)) if r > 0.0 => Some(round(e / r)),
        _ => None,
    };
    if let Some(ratio) = ratio {
        println!("ratio embedded/etcd writes/s at 16 writers: {ratio:.2}x");
    }

    let fanout = measure_fanout(embedded.clone(), args.watchers, args.events).await?;
    println!(
        "watch fan-out (embedded): {} watchers x {} events: {} events/s, {} lost, {} s",
        fanout["watchers"],
        fanout["events"],
        fanout["events_per_s"],
        fanout["lost"],
        fanout["seconds"]
    );
    if args.json {
        let summary = json!({
            "bench": "store",
            "embedded": embedded_writes.iter().map(Writes::json).collect::<Vec<_>>(),
            "etcd": etcd_writes.iter().map(Writes::json).collect::<Vec<_>>(),
            "ratio_vs_etcd": ratio,
            "watch_fanout": fanout,
        });
        println!("{summary}");
    }
    Ok(())
}
