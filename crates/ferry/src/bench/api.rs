//! `ferry bench api`: a real `ferry server` child process measured over HTTPS with the admin
//! client certificate — time to ready, idle RSS, durable pod creates/s from concurrent clients,
//! GET latency, paginated LIST latency, watch fan-out — and, in the same run as the reference,
//! the embedded store's own write rate through its trait. Then the pod-journey tracing's cost:
//! pod creates on fresh servers with journeys on and with `--journeys=false`.

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use ferry_apiserver::pki::Pki;
use ferry_store::embedded::{Config, EmbeddedStore};
use ferry_store::Store;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};

/// Options of `ferry bench api`.
#[derive(clap::Args)]
pub struct Args {
    /// Print one JSON object with every figure as the last line.
    #[arg(long)]
    json: bool,
    /// Run the server with its in-process controllers and scheduler (off by default: this
    /// measures the API server).
    #[arg(long)]
    with_components: bool,
    /// Pods to create (they are then listed and read).
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Concurrent clients creating pods.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Watchers in the fan-out measurement.
    #[arg(long, default_value_t = 1000)]
    watchers: usize,
    /// Events each watcher must receive.
    #[arg(long, default_value_t = 1000)]
    events: usize,
    /// Pods created in each of the two authorization runs (RBAC and admission on; off).
    #[arg(long, default_value_t = 3000)]
    authz_pods: usize,
    /// Objects created in each run of the API-extension figures (custom resources,
    /// ConfigMaps, Deployments created and applied).
    #[arg(long, default_value_t = 3000)]
    extension_objects: usize,
    /// Clients flooding the server with LISTs in the priority-and-fairness figure.
    #[arg(long, default_value_t = 400)]
    apf_clients: usize,
    /// Pods created on each of the four servers of the journey-overhead figure (journeys on,
    /// off, off, on).
    #[arg(long, default_value_t = 10_000)]
    journey_pods: usize,
}

/// One HTTP/1.1 connection over TLS with the admin certificate.
pub(super) struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Connection {
    pub(super) async fn open(
        address: &str,
        tls: Arc<rustls::ClientConfig>,
    ) -> anyhow::Result<Connection> {
        let tcp = tokio::net::TcpStream::connect(address).await?;
        tcp.set_nodelay(true)?;
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1")?.to_owned();
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "benchmark connection closed");
            }
        });
        Ok(Connection { sender })
    }

    pub(super) async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Bytes)> {
        self.request_as(method, path, body, "application/json")
            .await
    }

    /// A request whose body has `content_type` (a patch's, an apply's).
    pub(super) async fn request_as(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        content_type: &str,
    ) -> anyhow::Result<(u16, Bytes)> {
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1")
            .header("content-type", content_type)
            .header("accept", "application/json")
            .body(Full::new(
                body.map(|b| Bytes::from(b.to_string())).unwrap_or_default(),
            ))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

pub(super) fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |p: f64| {
        if samples.is_empty() {
            return 0.0;
        }
        let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
        samples[i].as_secs_f64() * 1000.0
    };
    (at(0.5), at(0.99))
}

/// Resident memory of `pid`, in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmRSS:")
}

/// A memory figure of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`, …) in MiB; 0 if unreadable.
pub fn status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// Creates `pods` pods named `pod-NNNNN` in `default` over `clients` connections with `tls`,
/// each connection its share in turn; every create's latency.
pub(super) async fn create_pods(
    address: &str,
    tls: &Arc<rustls::ClientConfig>,
    pods: usize,
    clients: usize,
) -> anyhow::Result<Vec<Duration>> {
    let per_client = pods.div_ceil(clients);
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (address, tls) = (address.to_string(), tls.clone());
            tokio::spawn(async move {
                let mut connection = Connection::open(&address, tls).await?;
                let mut latencies = Vec::new();
                for i in (c * per_client).min(pods)..((c + 1) * per_client).min(pods) {
                    let t = Instant::now();
                    let (status, body) = connection
                        .request(
                            "POST",
                            "/api/v1/namespaces/default/pods",
                            Some(&pod(&format!("pod-{i:05}"))),
                        )
                        .await?;
                    if status != 201 {
                        bail!(
                            "create returned {status}: {}",
                            String::from_utf8_lossy(&body)
                        );
                    }
                    latencies.push(t.elapsed());
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.context("a client")??);
    }
    Ok(latencies)
}

pub(super) fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "bench"}},
           "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}})
}

/// Pod creates on one kind of server: rate and latency.
#[derive(Clone, Copy, Debug)]
pub(super) struct Creates {
    /// Creates per second.
    pub per_s: f64,
    /// Create latency p50 (ms).
    pub p50_ms: f64,
    /// Create latency p99 (ms).
    pub p99_ms: f64,
}

/// The same pod creates with pods' journeys recorded and with `--journeys=false`.
pub(super) struct JourneyOverhead {
    /// Journeys on (the default).
    pub on: Creates,
    /// Journeys off.
    pub off: Creates,
}

impl JourneyOverhead {
    /// Creates/s with journeys on over creates/s with them off (target ≥ 0.95).
    pub fn ratio(&self) -> f64 {
        self.on.per_s / self.off.per_s
    }

    /// The figures for `--json`, `pods` created on each server.
    pub fn to_json(&self, pods: usize) -> Value {
        json!({
            "journey_pods": pods,
            "journeys_on_creates_per_s": self.on.per_s.round(),
            "journeys_on_create_p50_ms": self.on.p50_ms, "journeys_on_create_p99_ms": self.on.p99_ms,
            "journeys_off_creates_per_s": self.off.per_s.round(),
            "journeys_off_create_p50_ms": self.off.p50_ms, "journeys_off_create_p99_ms": self.off.p99_ms,
            "journeys_ratio": (self.ratio() * 1000.0).round() / 1000.0,
        })
    }
}

/// `pods` creates by `clients` on a fresh server started with `flags` and `--journeys=<on>`;
/// fails unless the pods carry the journey annotation exactly when journeys are on.
async fn creates_with_journeys(
    flags: &[&str],
    on: bool,
    pods: usize,
    clients: usize,
) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let tmp = tempfile::tempdir()?;
    let data_dir = tmp.path().join("server");
    let journeys = format!("--journeys={on}");
    let flags: Vec<&str> = flags.iter().copied().chain([journeys.as_str()]).collect();
    let (server, address, _) = start_server_with(&data_dir, &flags)?;
    let pki = Pki::load_or_create(&data_dir.join("tls"))?;
    let tls = Arc::new(pki.client_tls(&pki.admin)?);
    let mut admin = Connection::open(&address, tls.clone()).await?;
    let account =
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}});
    admin
        .request(
            "POST",
            "/api/v1/namespaces/default/serviceaccounts",
            Some(&account),
        )
        .await?;
    let started = Instant::now();
    let latencies = create_pods(&address, &tls, pods, clients).await?;
    let elapsed = started.elapsed();
    let (status, body) = admin
        .request("GET", "/api/v1/namespaces/default/pods/pod-00000", None)
        .await?;
    if status != 200 {
        bail!("get returned {status}");
    }
    let annotated = serde_json::from_slice::<Value>(&body)?
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(ferry_journey::ANNOTATION))
        .is_some();
    if annotated != on {
        bail!("with --journeys={on} a created pod has the journey annotation: {annotated}");
    }
    drop(server);
    Ok((latencies, elapsed))
}

/// The pod-journey tracing's cost: `pods` creates by `clients` on fresh servers started with
/// `flags`, journeys on and off, in the order on, off, off, on so that a drift of the machine
/// (page cache, other work) weighs on both alike; each side's figures are over its two runs.
pub(super) async fn journey_overhead(
    flags: &[&str],
    pods: usize,
    clients: usize,
) -> anyhow::Result<JourneyOverhead> {
    let mut runs: [(Vec<Duration>, Duration); 2] = Default::default();
    for on in [true, false, false, true] {
        let (latencies, elapsed) = creates_with_journeys(flags, on, pods, clients).await?;
        let side = &mut runs[usize::from(on)];
        side.0.extend(latencies);
        side.1 += elapsed;
    }
    let [off, on] = runs.map(|(latencies, elapsed)| {
        let per_s = latencies.len() as f64 / elapsed.as_secs_f64();
        let (p50_ms, p99_ms) = percentiles(latencies);
        Creates {
            per_s,
            p50_ms,
            p99_ms,
        }
    });
    Ok(JourneyOverhead { on, off })
}

/// The server under test, stopped by pid when dropped.
/// A `ferry server` child process, stopped when dropped.
pub struct ServerProcess(pub Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `ferry server` with extra flags; returns it, its address and its ready time (ms).
pub fn start_server_with(
    data_dir: &Path,
    extra: &[&str],
) -> anyhow::Result<(ServerProcess, String, f64)> {
    let started = Instant::now();
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "server",
            "--disable-agent",
            "--disable-dns",
            "--https-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data_dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting ferry server")?;
    let stdout = child.stdout.take().context("stdout")?;
    let process = ServerProcess(child);
    let mut address = String::new();
    let mut lines = std::io::BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line?;
        if let Some(rest) = line.strip_prefix("ferry: API server listening on https://") {
            address = rest.split_whitespace().next().unwrap_or("").to_string();
            break;
        }
    }
    let ready_ms = started.elapsed().as_secs_f64() * 1000.0;
    if address.is_empty() {
        bail!("ferry server did not start");
    }
    std::thread::spawn(move || for _ in lines {});
    Ok((process, address, ready_ms))
}

/// The reference: the embedded store's durable write rate at `writers` with ~1 KiB values.
async fn store_reference(dir: &Path, writers: usize, seconds: f64) -> anyhow::Result<f64> {
    let mut config = Config::new(dir);
    config.auto_compaction = None;
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(config).await?);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let value = Bytes::from(vec![b'p'; 1024]);
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            let value = value.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    store
                        .create(
                            Bytes::from(format!("/pods/default/{w}-{n}")),
                            value.clone(),
                            0,
                        )
                        .await?;
                    n += 1;
                }
                anyhow::Ok(n)
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// Runs the benchmark.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let data_dir = tmp.path().join("server");
    // A first start: the server makes its certificates too, as a newcomer's would.
    // The API server alone: the in-process controllers and scheduler are API clients whose
    // own work (scheduling attempts, events, status writes) would be measured too.
    let flags: &[&str] = if args.with_components {
        &[]
    } else {
        &["--disable-controllers", "--disable-scheduler"]
    };
    let (server, address, ready_ms) = start_server_with(&data_dir, flags)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = rss_mib(server.0.id());
    println!("ferry bench api: server ready in {ready_ms:.0} ms, idle RSS {idle_rss:.1} MiB");

    let pki = Pki::load_or_create(&data_dir.join("tls"))?;
    let tls = Arc::new(pki.client_tls(&pki.admin)?);

    // The `default` service account the serviceaccount controller would make: pods run as it.
    let mut setup = Connection::open(&address, tls.clone()).await?;
    let account =
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}});
    setup
        .request(
            "POST",
            "/api/v1/namespaces/default/serviceaccounts",
            Some(&account),
        )
        .await?;
    drop(setup);

    // Creates: `clients` connections, each creating its share, durably.
    let started = Instant::now();
    let create_latencies = create_pods(&address, &tls, args.pods, args.clients).await?;
    let creates_per_s = create_latencies.len() as f64 / started.elapsed().as_secs_f64();
    let (create_p50, create_p99) = percentiles(create_latencies);
    println!("creates:  {} pods by {} clients: {creates_per_s:.0}/s, p50 {create_p50:.2} ms, p99 {create_p99:.2} ms", args.pods, args.clients);

    let reference = store_reference(&tmp.path().join("reference"), args.clients, 3.0).await?;
    println!(
        "reference: embedded store creates at {} writers: {reference:.0}/s (ratio {:.2})",
        args.clients,
        creates_per_s / reference
    );

    // GETs on one connection.
    let mut connection = Connection::open(&address, tls.clone())
        .await
        .context("connecting for GETs")?;
    let mut get_latencies = Vec::new();
    for i in 0..2000usize {
        let name = format!("pod-{:05}", (i * 7919) % args.pods);
        let t = Instant::now();
        let (status, _) = connection
            .request(
                "GET",
                &format!("/api/v1/namespaces/default/pods/{name}"),
                None,
            )
            .await
            .context("GET")?;
        if status != 200 {
            bail!("get returned {status}");
        }
        get_latencies.push(t.elapsed());
    }
    let (get_p50, get_p99) = percentiles(get_latencies);
    println!("GET:      p50 {get_p50:.2} ms, p99 {get_p99:.2} ms");

    // LIST all pods, 500 a page.
    let mut page_latencies = Vec::new();
    let (mut listed, mut token) = (0usize, String::new());
    let list_started = Instant::now();
    loop {
        let path = if token.is_empty() {
            "/api/v1/namespaces/default/pods?limit=500".to_string()
        } else {
            format!("/api/v1/namespaces/default/pods?limit=500&continue={token}")
        };
        let t = Instant::now();
        let (status, body) = connection.request("GET", &path, None).await?;
        page_latencies.push(t.elapsed());
        if status != 200 {
            bail!("list returned {status}");
        }
        let page: Value = serde_json::from_slice(&body)?;
        listed += page["items"].as_array().map_or(0, Vec::len);
        token = page
            .pointer("/metadata/continue")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if token.is_empty() {
            break;
        }
    }
    let list_ms = list_started.elapsed().as_secs_f64() * 1000.0;
    let (page_p50, page_p99) = percentiles(page_latencies);
    println!("LIST:     {listed} pods in {list_ms:.0} ms, a page of 500: p50 {page_p50:.2} ms, p99 {page_p99:.2} ms");

    // Watch fan-out: watchers on one namespace's configmaps, then `events` writes.
    let mut setup = Connection::open(&address, tls.clone()).await?;
    setup
        .request(
            "POST",
            "/api/v1/namespaces",
            Some(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fanout"}})),
        )
        .await?;
    let (_, body) = setup
        .request("GET", "/api/v1/namespaces/fanout/configmaps", None)
        .await?;
    let rv = serde_json::from_slice::<Value>(&body)?
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("0")
        .to_string();
    let mut watchers = Vec::new();
    for _ in 0..args.watchers {
        let mut connection = Connection::open(&address, tls.clone()).await?;
        let request = hyper::Request::builder()
            .uri(format!(
                "/api/v1/namespaces/fanout/configmaps?watch=true&resourceVersion={rv}"
            ))
            .header("host", "127.0.0.1")
            .body(Full::new(Bytes::new()))?;
        connection.sender.ready().await?;
        let response = connection.sender.send_request(request).await?;
        let events = args.events;
        watchers.push(tokio::spawn(async move {
            let mut body = response.into_body();
            let (mut seen, mut buffer) = (0usize, Vec::new());
            while seen < events {
                let frame = tokio::time::timeout(Duration::from_secs(120), body.frame())
                    .await
                    .context("watch stalled")?;
                let Some(frame) = frame else {
                    bail!("watch ended after {seen} events")
                };
                if let Ok(data) = frame?.into_data() {
                    buffer.extend_from_slice(&data);
                    seen += buffer.iter().filter(|b| **b == b'\n').count();
                    if let Some(last) = buffer.iter().rposition(|b| *b == b'\n') {
                        buffer.drain(..=last);
                    }
                }
            }
            drop(connection);
            anyhow::Ok(seen)
        }));
    }
    let fanout_started = Instant::now();
    let writers: Vec<_> = (0..8usize)
        .map(|w| {
            let (address, tls) = (address.clone(), tls.clone());
            let events = args.events;
            tokio::spawn(async move {
                let mut connection = Connection::open(&address, tls).await?;
                for i in (w..events).step_by(8) {
                    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}")}, "data": {"i": i.to_string()}});
                    connection.request("POST", "/api/v1/namespaces/fanout/configmaps", Some(&cm)).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for w in writers {
        w.await??;
    }
    let mut delivered = 0;
    for w in watchers {
        delivered += w.await??;
    }
    let fanout_s = fanout_started.elapsed().as_secs_f64();
    let events_per_s = delivered as f64 / fanout_s;
    println!("watch:    {} watchers x {} events: {delivered} delivered in {fanout_s:.2} s ({events_per_s:.0} events/s)", args.watchers, args.events);
    let rss_after = rss_mib(server.0.id());
    println!("RSS after the run: {rss_after:.1} MiB");
    drop(server);
    let journeys = journey_overhead(flags, args.journey_pods, args.clients).await?;
    println!(
        "journeys: {} pod creates by {} clients on two servers each: on {:.0}/s (p50 {:.2} ms, p99 {:.2} ms); off (--journeys=false) {:.0}/s (p50 {:.2} ms, p99 {:.2} ms); ratio on/off {:.3} (target ≥ 0.95)",
        args.journey_pods, args.clients,
        journeys.on.per_s, journeys.on.p50_ms, journeys.on.p99_ms,
        journeys.off.per_s, journeys.off.p50_ms, journeys.off.p99_ms,
        journeys.ratio()
    );
    let authz = super::authz::measure(args.authz_pods, args.clients).await?;
    let extensions = super::extensions::measure(args.extension_objects, args.clients).await?;
    let apf = super::flowcontrol::measure(args.apf_clients).await?;
    println!(
        "APF:      node lease renewals p50 {:.2} ms, p99 {:.2} ms alone; p50 {:.2} ms, p99 {:.2} ms while {} clients flood LISTs of 1,000 ConfigMaps ({} served, {} refused with 429; {} renewals failed)",
        apf.alone_ms.0, apf.alone_ms.1, apf.flooded_ms.0, apf.flooded_ms.1, apf.clients,
        apf.lists_served, apf.lists_rejected, apf.failed_renewals
    );

    if args.json {
        let mut summary = json!({
            "bench": "api", "pods": args.pods, "clients": args.clients,
            "ready_ms": (ready_ms * 10.0).round() / 10.0,
            "idle_rss_mib": (idle_rss * 10.0).round() / 10.0,
            "creates_per_s": creates_per_s.round(),
            "create_p50_ms": create_p50, "create_p99_ms": create_p99,
            "store_reference_creates_per_s": reference.round(),
            "get_p50_ms": get_p50, "get_p99_ms": get_p99,
            "list_all_ms": list_ms.round(), "list_page_p50_ms": page_p50, "list_page_p99_ms": page_p99,
            "watchers": args.watchers, "watch_events": args.events, "watch_delivered": delivered,
            "authz_decision_p50_us": authz.decision_us.0, "authz_decision_p99_us": authz.decision_us.1,
            "authz_reference_p50_us": authz.reference_us.0, "authz_reference_p99_us": authz.reference_us.1,
            "rbac_creates_per_s": authz.rbac_creates_per_s.round(),
            "open_creates_per_s": authz.open_creates_per_s.round(),
            "configmap_creates_per_s": extensions.configmap_creates_per_s.round(),
            "custom_creates_per_s": extensions.custom_creates_per_s.round(),
            "deployment_creates_per_s": extensions.deployment_creates_per_s.round(),
            "deployment_applies_per_s": extensions.deployment_applies_per_s.round(),
            "watch_events_per_s": events_per_s.round(),
            "apf_heartbeat_alone_p99_ms": apf.alone_ms.1, "apf_heartbeat_flooded_p99_ms": apf.flooded_ms.1,
            "apf_flood_clients": apf.clients, "apf_lists_served": apf.lists_served,
            "apf_lists_rejected": apf.lists_rejected, "apf_failed_renewals": apf.failed_renewals,
            "rss_after_mib": (rss_after * 10.0).round() / 10.0,
        });
        if let (Some(all), Value::Object(journeys)) =
            (summary.as_object_mut(), journeys.to_json(args.journey_pods))
        {
            all.extend(journeys);
        }
        println!("{summary}");
    }
    Ok(())
}
