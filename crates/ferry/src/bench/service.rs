//! `ferry bench service`: the service path's costs, each beside a reference from the same run.
//!
//! - **Proxy sync for one changed Service** with N Services × E endpoints already programmed
//!   (default 1,000 and 10,000 × 10): the partial transaction `ferry-proxy` applies, against
//!   rebuilding the same whole ruleset with `nft -f` (the ratio says how much the maps and
//!   per-Service chains save). Each in a network namespace of its own, removed afterwards.
//! - **DNS queries per second** with Debian's `dnsperf`, against ferry's cluster DNS and against
//!   `dnsmasq` answering the same names from a hosts file.
//!
//! Needs root (network namespaces), nft, and for the DNS figures `dnsperf` and `dnsmasq`
//! (`apt-get install dnsperf dnsmasq-base`); what is missing is said and skipped.
//! - **Pod Ready → first connection through the ClusterIP**, on a real node (a `ferry server`
//!   and a `ferry agent` on containerd, as `ferry bench pod-startup` starts them): for each pod,
//!   its Service is created first (its ClusterIP refuses), then the pod, with a readiness probe;
//!   one watch notes when the pod is seen Ready and when its EndpointSlice endpoint is, while the
//!   host tries to connect to the ClusterIP every 2 ms. The figure is the time from Ready to the
//!   first accepted connection, with the EndpointSlice's share beside it.

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ferry_proxy::model::{Endpoint, ServicePort, ServicePortName};
use ferry_proxy::nft::Protocol;
use ferry_proxy::{rules, sync, Config, Nft};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::watcher;
use kube::Api;
use serde_json::json;

use super::podstartup::{condition_true, need_root_and_registry, percentile, RealNode};

/// Options of `ferry bench service`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print one JSON object on the last line.
    #[arg(long)]
    json: bool,
    /// Service counts for the proxy sync figure.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    services: Vec<usize>,
    /// Endpoints per Service.
    #[arg(long, default_value_t = 10)]
    endpoints: usize,
    /// Partial syncs measured per count (the median is reported).
    #[arg(long, default_value_t = 5)]
    changes: usize,
    /// Services the DNS figure's names come from.
    #[arg(long, default_value_t = 1000)]
    dns_services: usize,
    /// Seconds of dnsperf against each server.
    #[arg(long, default_value_t = 10)]
    dns_seconds: u64,
    /// Pods, one at a time, for the Ready → first connection figure (0 skips it; it needs root
    /// and the local test registry).
    #[arg(long, default_value_t = 20)]
    ready_pods: usize,
}

const CONFIG: Config = Config {
    cluster_cidr: (Ipv4Addr::new(10, 42, 0, 0), 16),
    service_cidr: (Ipv4Addr::new(10, 43, 0, 0), 16),
};

fn cluster_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 43, (i / 250) as u8, (i % 250 + 1) as u8)
}

/// `count` Service ports with `endpoints` ready endpoints each; `shrunk` loses one endpoint.
fn ports(count: usize, endpoints: usize, shrunk: Option<usize>) -> Vec<ServicePort> {
    (0..count)
        .map(|i| {
            let n = if Some(i) == shrunk {
                endpoints.saturating_sub(1)
            } else {
                endpoints
            };
            ServicePort {
                name: ServicePortName {
                    namespace: "bench".into(),
                    name: format!("svc-{i}"),
                    port: "http".into(),
                    protocol: Protocol::Tcp,
                },
                cluster_ip: cluster_ip(i),
                port: 80,
                node_port: None,
                external_ips: Vec::new(),
                affinity_timeout: None,
                internal_local: false,
                external_local: false,
                endpoints: (0..n)
                    .map(|e| {
                        let k = i * endpoints + e;
                        Endpoint {
                            ip: Ipv4Addr::new(10, 42, (k / 250 % 256) as u8, (k % 250 + 1) as u8),
                            port: 8080,
                            ready: true,
                            serving: true,
                            terminating: false,
                            local: e == 0,
                        }
                    })
                    .collect(),
            }
        })
        .collect()
}

/// A network namespace of the benchmark's own, removed when dropped.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> anyhow::Result<Netns> {
        let name = format!("ferry-bench-{tag}-{}", std::process::id());
        let status = Command::new("ip").args(["netns", "add", &name]).status()?;
        anyhow::ensure!(status.success(), "ip netns add {name} (needs root)");
        Ok(Netns(name))
    }

    fn nft(&self) -> Nft {
        Nft {
            program: "ip".into(),
            args: vec!["netns".into(), "exec".into(), self.0.clone(), "nft".into()],
        }
    }

    /// `nft -f -` of a text script in the namespace.
    fn nft_text(&self, script: &str) -> anyhow::Result<()> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.0, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(script.as_bytes())?;
        let out = child.wait_with_output()?;
        anyhow::ensure!(
            out.status.success(),
            "nft -f: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// (median partial sync ms, full JSON apply ms, full `nft -f` rebuild ms) for `count` Services.
async fn proxy_sync(count: usize, args: &Args) -> anyhow::Result<(f64, f64, f64)> {
    let base = rules::desired(&CONFIG, &ports(count, args.endpoints, None));
    let programmed = Netns::new("partial")?;
    let started = Instant::now();
    programmed
        .nft()
        .apply(&sync::full(&CONFIG, &base))
        .await
        .context("programming the base ruleset")?;
    let full_json = ms(started.elapsed());
    let mut partials = Vec::new();
    for change in 0..args.changes {
        let changed = count * change / args.changes.max(1);
        let next = rules::desired(&CONFIG, &ports(count, args.endpoints, Some(changed)));
        let transaction = sync::partial(&base, &next);
        let started = Instant::now();
        programmed.nft().apply(&transaction).await?;
        partials.push(ms(started.elapsed()));
        // Back to the base state for the next change.
        programmed.nft().apply(&sync::partial(&next, &base)).await?;
    }
    partials.sort_by(f64::total_cmp);
    let partial = partials[partials.len() / 2];
    // The reference: the whole ruleset again, as text through `nft -f`, into a table that
    // already holds it (what a proxy without partial syncs does on every change).
    let rebuilt = Netns::new("full")?;
    let script = sync::full(&CONFIG, &base).text();
    rebuilt.nft_text(&script)?;
    let started = Instant::now();
    rebuilt.nft_text(&script)?;
    let full_text = ms(started.elapsed());
    Ok((partial, full_json, full_text))
}

fn dnsperf_qps(server: SocketAddr, queries: &std::path::Path, seconds: u64) -> anyhow::Result<f64> {
    let out = Command::new("dnsperf")
        .args([
            "-s",
            &server.ip().to_string(),
            "-p",
            &server.port().to_string(),
        ])
        .arg("-d")
        .arg(queries)
        .args(["-l", &seconds.to_string(), "-c", "4", "-T", "2"])
        .output()
        .context("running dnsperf")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Queries per second:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no rate in dnsperf's output: {text}"))
}

/// (ferry's qps, dnsmasq's qps) over the same names.
async fn dns(args: &Args) -> anyhow::Result<(f64, f64)> {
    for tool in ["dnsperf", "dnsmasq"] {
        anyhow::ensure!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()?
                .status
                .success(),
            "{tool} not installed (apt-get install dnsperf dnsmasq-base)"
        );
    }
    let dir = tempfile::tempdir()?;
    let services: Vec<Arc<Service>> = (0..args.dns_services)
        .map(|i| {
            serde_json::from_value(
                serde_json::json!({"metadata": {"name": format!("svc-{i}"), "namespace": "bench"},
                "spec": {"clusterIP": cluster_ip(i).to_string(), "ports": [{"port": 80}]}}),
            )
            .map(Arc::new)
        })
        .collect::<Result<_, _>>()?;
    let queries = dir.path().join("queries");
    let hosts = dir.path().join("hosts");
    let mut query_lines = String::new();
    let mut host_lines = String::new();
    for i in 0..args.dns_services {
        let name = format!("svc-{i}.bench.svc.cluster.local");
        query_lines.push_str(&format!("{name} A\n"));
        host_lines.push_str(&format!("{} {name}\n", cluster_ip(i)));
    }
    std::fs::write(&queries, query_lines)?;
    std::fs::write(&hosts, host_lines)?;

    let zone = ferry_dns::zone::Zone::build("cluster.local", &services, &[]);
    let bound = ferry_dns::bind(ferry_dns::Options {
        listen: "127.0.0.1:0".parse()?,
        domain: "cluster.local".into(),
        upstreams: Vec::new(),
    })
    .await?;
    let address = bound.address();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(bound.serve_zone(zone, async {
        let _ = stopped.await;
    }));
    let (queries_path, seconds) = (queries.clone(), args.dns_seconds);
    let ferry =
        tokio::task::spawn_blocking(move || dnsperf_qps(address, &queries_path, seconds)).await??;
    let _ = stop.send(());
    let _ = server.await;

    let port = std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut dnsmasq = Command::new("dnsmasq")
        .args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
        ])
        .args([
            "--listen-address=127.0.0.1",
            "--cache-size=10000",
            "--user=root",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--addn-hosts={}", hosts.display()))
        .arg(format!("--pid-file={}", dir.path().join("pid").display()))
        .stderr(Stdio::null())
        .spawn()
        .context("starting dnsmasq")?;
    std::thread::sleep(Duration::from_millis(500));
    let reference = dnsperf_qps(
        SocketAddr::from(([127, 0, 0, 1], port)),
        &queries,
        args.dns_seconds,
    );
    let _ = Command::new("kill").arg(dnsmasq.id().to_string()).status();
    let _ = dnsmasq.wait();
    Ok((ferry, reference?))
}

/// One pod's times from being seen Ready, in ms.
struct ReadyToTraffic {
    /// To its endpoint seen ready in its Service's EndpointSlice.
    slice: f64,
    /// To the first connection accepted through the ClusterIP.
    traffic: f64,
}

const READY_NAMESPACE: &str = "bench-svc";

async fn ready_to_traffic(pods: usize) -> anyhow::Result<Vec<ReadyToTraffic>> {
    need_root_and_registry("the Ready → first connection figure")?;
    let mut node = RealNode::start().await?;
    let result = measure_ready_to_traffic(&node.kubeconfig, pods).await;
    node.stop();
    result
}

fn slice_endpoint_ready(slice: &EndpointSlice) -> bool {
    slice
        .endpoints
        .iter()
        .any(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
}

/// When the first of `stream`'s objects satisfies `done`, on this machine's clock.
async fn first_seen<K>(
    api: Api<K>,
    config: watcher::Config,
    done: impl Fn(&K) -> bool,
) -> anyhow::Result<Instant>
where
    K: kube::Resource
        + Clone
        + k8s_openapi::serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    let stream = watcher(api, config);
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        let now = Instant::now();
        if let watcher::Event::Apply(object) | watcher::Event::InitApply(object) = event? {
            if done(&object) {
                return Ok(now);
            }
        }
    }
    anyhow::bail!("the watch ended")
}

/// Tries to connect to `address` until a connection is accepted.
async fn first_connection(address: SocketAddr) -> Instant {
    loop {
        let attempt = tokio::net::TcpStream::connect(address);
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(200), attempt).await {
            return Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn measure_ready_to_traffic(
    kubeconfig: &std::path::Path,
    count: usize,
) -> anyhow::Result<Vec<ReadyToTraffic>> {
    let client = ferry_client::connect(kubeconfig, "ferry-bench").await?;
    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": READY_NAMESPACE}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await?;
    let services: Api<Service> = Api::namespaced(client.clone(), READY_NAMESPACE);
    let pods: Api<Pod> = Api::namespaced(client.clone(), READY_NAMESPACE);
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), READY_NAMESPACE);
    let mut samples = Vec::new();
    // The first pod pulls the image; it is not counted.
    for i in 0..=count {
        let name = format!("rt-{i}");
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"selector": {"rt": name}, "ports": [{"port": 80, "targetPort": 8080}]},
        }))?;
        let service = services.create(&PostParams::default(), &service).await?;
        let ip: Ipv4Addr = service
            .spec
            .and_then(|s| s.cluster_ip)
            .context("no clusterIP")?
            .parse()?;
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"rt": name}},
            "spec": {
                "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "web", "image": "127.0.0.1:5000/httpd:1",
                    "imagePullPolicy": "IfNotPresent",
                    "ports": [{"containerPort": 8080}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}}],
            },
        }))?;
        let ready = first_seen(
            pods.clone(),
            watcher::Config::default().fields(&format!("metadata.name={name}")),
            |pod: &Pod| condition_true(pod, "Ready"),
        );
        let sliced = first_seen(
            slices.clone(),
            watcher::Config::default().labels(&format!("kubernetes.io/service-name={name}")),
            slice_endpoint_ready,
        );
        let connected = first_connection(SocketAddr::from((ip, 80)));
        pods.create(&PostParams::default(), &pod).await?;
        let (ready, sliced, connected) = tokio::time::timeout(Duration::from_secs(120), async {
            tokio::join!(ready, sliced, connected)
        })
        .await
        .with_context(|| format!("pod {name} not reached through {ip} within 120 s"))?;
        let (ready, sliced) = (ready?, sliced?);
        if i > 0 {
            samples.push(ReadyToTraffic {
                slice: ms(sliced.saturating_duration_since(ready)),
                traffic: ms(connected.saturating_duration_since(ready)),
            });
        }
        pods.delete(&name, &DeleteParams::default().grace_period(0))
            .await?;
        services.delete(&name, &DeleteParams::default()).await?;
    }
    Ok(samples)
}

/// Runs the benchmark.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut json = serde_json::Map::new();
    for &count in &args.services {
        match proxy_sync(count, &args).await {
            Ok((partial, full_json, full_text)) => {
                println!(
                    "proxy sync, one Service changed, {count} Services × {} endpoints: {partial:.1} ms \
                     (reference: the whole ruleset again with nft -f {full_text:.1} ms, {:.1}× slower; \
                     first full sync as JSON {full_json:.1} ms)",
                    args.endpoints,
                    full_text / partial.max(0.001)
                );
                let key = if count % 1000 == 0 {
                    format!("{}k", count / 1000)
                } else {
                    count.to_string()
                };
                json.insert(format!("sync_ms_{key}"), serde_json::json!(partial));
                json.insert(
                    format!("full_rebuild_ms_{key}"),
                    serde_json::json!(full_text),
                );
            }
            Err(error) => println!("proxy sync with {count} Services: not measured: {error:#}"),
        }
    }
    match dns(&args).await {
        Ok((ferry, dnsmasq)) => {
            println!(
                "DNS, {} names, dnsperf for {} s: ferry {ferry:.0} queries/s; reference: dnsmasq {dnsmasq:.0} queries/s (ratio {:.2})",
                args.dns_services,
                args.dns_seconds,
                ferry / dnsmasq.max(1.0)
            );
            json.insert("dns_qps".into(), serde_json::json!(ferry));
            json.insert("dnsmasq_qps".into(), serde_json::json!(dnsmasq));
            json.insert(
                "dns_ratio_vs_dnsmasq".into(),
                serde_json::json!(ferry / dnsmasq.max(1.0)),
            );
        }
        Err(error) => println!("DNS: not measured: {error:#}"),
    }
    if args.ready_pods == 0 {
        json.insert("ready_to_traffic_p99_ms".into(), serde_json::Value::Null);
    } else {
        match ready_to_traffic(args.ready_pods).await {
            Ok(mut samples) => {
                let mut traffic: Vec<f64> = samples.iter().map(|s| s.traffic).collect();
                let mut slices: Vec<f64> = samples.iter_mut().map(|s| s.slice).collect();
                let (p50, p99) = (
                    percentile(&mut traffic, 0.5),
                    percentile(&mut traffic, 0.99),
                );
                println!(
                    "pod Ready → first connection through its ClusterIP, {} pods on a real node: \
                     p50 {p50:.1} ms, p99 {p99:.1} ms (of which Ready → its EndpointSlice endpoint \
                     ready: p50 {:.1} ms, p99 {:.1} ms)",
                    samples.len(),
                    percentile(&mut slices, 0.5),
                    percentile(&mut slices, 0.99)
                );
                json.insert("ready_to_traffic_p50_ms".into(), serde_json::json!(p50));
                json.insert("ready_to_traffic_p99_ms".into(), serde_json::json!(p99));
            }
            Err(error) => {
                println!("pod Ready → first connection: not measured: {error:#}");
                json.insert("ready_to_traffic_p99_ms".into(), serde_json::Value::Null);
            }
        }
    }
    if args.json {
        println!("{}", serde_json::Value::Object(json));
    }
    Ok(())
}
