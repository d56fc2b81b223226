//! `ferry demo`: the seeds' story told by a real cluster. It uses the cluster a kubeconfig
//! names (or starts one: `ferry server`, with this machine's node on containerd as root, else
//! simulated nodes), applies a small Deployment and Service, and follows the journey of the
//! Deployment's new pod in the terminal ([`crate::trace`]) from the request to Ready.
//!
//! Each run restarts the Deployment (a template annotation with the run's time), so there is
//! always a new pod to follow. A cluster the demo started runs until Ctrl-C, then is stopped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Patch, PatchParams};
use kube::Api;
use serde_json::json;

use crate::trace::{self, Output};

/// The field manager (and user agent) of the demo's writes.
const MANAGER: &str = "ferry-demo";
/// The name of the demo's Deployment and Service.
const NAME: &str = "hello";
/// How long a started cluster may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// Options of `ferry demo`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  ferry demo                     # the cluster of $KUBECONFIG, or a new one
  ferry demo --sim-nodes 3       # a new cluster on simulated nodes (no root needed)")]
pub struct Args {
    /// The cluster to use (the first of `$KUBECONFIG`, else ~/.kube/config, else the data
    /// dir's kubeconfig). When none answers, the demo starts one.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Where a cluster the demo starts keeps its data [default: ferry server's].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A started cluster runs its pods on this many simulated nodes instead of this machine's
    /// containerd (the default as root; otherwise 3 simulated nodes).
    #[arg(long)]
    sim_nodes: Option<usize>,
    /// The address a started cluster's API server listens on (port 0: a free one).
    #[arg(long, default_value = "127.0.0.1:6443")]
    https_listen: std::net::SocketAddr,
    /// The namespace of the demo's Deployment and Service.
    #[arg(short, long, default_value = "demo")]
    namespace: String,
    /// The image to run: the HTTP test image `scripts/install.sh` builds and serves locally.
    #[arg(long, default_value = "127.0.0.1:5000/httpd:1")]
    image: String,
    /// The port the image serves HTTP on.
    #[arg(long, default_value_t = 8080)]
    port: i32,
}

/// `ferry demo`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(crate::server::default_data_dir);
    let (client, kubeconfig, started) = match running_cluster(&args, &data_dir).await {
        Some((client, kubeconfig)) => {
            println!("Using the cluster of {}", kubeconfig.display());
            (client, kubeconfig, None)
        }
        None => {
            let (cluster, client) =
                Cluster::start(&data_dir, args.https_listen, args.sim_nodes).await?;
            (client, cluster.kubeconfig.clone(), Some(cluster))
        }
    };
    println!(
        "Applying Deployment {ns}/{NAME} and Service {ns}/{NAME} ({}), then following the \
         journey of the Deployment's new pod:\n",
        args.image,
        ns = args.namespace
    );
    let (apply_client, namespace, image, port) = (
        client.clone(),
        args.namespace.clone(),
        args.image.clone(),
        args.port,
    );
    let start = move || Ok(apply(apply_client, namespace, image, port));
    trace::follow::while_doing(&client, start, Output::Text).await?;
    println!(
        "\nNext, with `export KUBECONFIG={}`: `kubectl -n {ns} get pods,svc,endpointslices -o \
         wide`, `ferry trace -n {ns} deployment/{NAME}`, or the web view at {}/ui/.",
        kubeconfig.display(),
        server_url(&kubeconfig).unwrap_or_else(|| "the API server's address".into()),
        ns = args.namespace,
    );
    if let Some(cluster) = started {
        println!("The cluster the demo started runs until Ctrl-C.");
        tokio::signal::ctrl_c().await?;
        drop(cluster);
    }
    Ok(())
}

/// The first kubeconfig that names a cluster which answers: the one given, else
/// ~/.kube/config, else the data dir's.
async fn running_cluster(args: &Args, data_dir: &Path) -> Option<(kube::Client, PathBuf)> {
    let mut candidates: Vec<PathBuf> = args
        .kubeconfig
        .as_ref()
        .and_then(|k| std::env::split_paths(k).find(|p| !p.as_os_str().is_empty()))
        .into_iter()
        .collect();
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".kube").join("config"));
    }
    candidates.push(data_dir.join("kubeconfig.yaml"));
    for path in candidates.into_iter().filter(|p| p.exists()) {
        if let Some(client) = answering(&path).await {
            return Some((client, path));
        }
    }
    None
}

/// The API server's address in `kubeconfig` (its current context's cluster).
fn server_url(kubeconfig: &Path) -> Option<String> {
    let config = kube::config::Kubeconfig::read_from(kubeconfig).ok()?;
    let context = config.current_context.as_deref();
    let cluster_name = config
        .contexts
        .iter()
        .find(|c| Some(c.name.as_str()) == context)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone());
    let cluster = config
        .clusters
        .iter()
        .find(|c| Some(&c.name) == cluster_name.as_ref())
        .or(config.clusters.first())?;
    cluster.cluster.as_ref()?.server.clone()
}

/// A client of the cluster `kubeconfig` names, if its API server answers within seconds.
async fn answering(kubeconfig: &Path) -> Option<kube::Client> {
    let client = ferry_client::connect(kubeconfig, MANAGER).await.ok()?;
    let version = tokio::time::timeout(Duration::from_secs(3), client.apiserver_version());
    matches!(version.await, Ok(Ok(_))).then_some(client)
}

/// The demo's Namespace, Service and Deployment, applied server-side; the Deployment's
/// template carries the time of this run, so it rolls out a new pod.
async fn apply(
    client: kube::Client,
    namespace: String,
    image: String,
    port: i32,
) -> anyhow::Result<()> {
    let params = PatchParams::apply(MANAGER).force();
    let namespace_object = json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace},
    });
    Api::<Namespace>::all(client.clone())
        .patch(&namespace, &params, &Patch::Apply(namespace_object))
        .await
        .with_context(|| format!("applying namespace {namespace}"))?;
    let labels = json!({"app": NAME});
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": port}]},
    });
    Api::<Service>::namespaced(client.clone(), &namespace)
        .patch(NAME, &params, &Patch::Apply(service))
        .await
        .context("applying the Service")?;
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {"demo.ferry.dev/run": jiff::Timestamp::now().to_string()},
                },
                "spec": {"containers": [{
                    "name": NAME,
                    "image": image,
                    "ports": [{"containerPort": port, "name": "http"}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
                }]},
            },
        },
    });
    Api::<Deployment>::namespaced(client, &namespace)
        .patch(NAME, &params, &Patch::Apply(deployment))
        .await
        .context("applying the Deployment")?;
    Ok(())
}

/// A cluster the demo started: `ferry server` (and `ferry sim`) as child processes, stopped
/// by pid on drop.
struct Cluster {
    children: Vec<Child>,
    kubeconfig: PathBuf,
}

impl Cluster {
    /// Starts `ferry server` on `data_dir` (with its local agent as root, unless `sim_nodes`),
    /// and `ferry sim` for simulated nodes; ready (with a client) once the API answers.
    async fn start(
        data_dir: &Path,
        listen: std::net::SocketAddr,
        sim_nodes: Option<usize>,
    ) -> anyhow::Result<(Cluster, kube::Client)> {
        let exe = std::env::current_exe().context("finding the ferry binary")?;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let root = rustix::process::geteuid().is_root();
        let sim_nodes = match sim_nodes {
            Some(n) => Some(n),
            None if root => None,
            None => Some(3),
        };
        let where_ = match sim_nodes {
            Some(n) => format!("{n} simulated nodes"),
            None => "this machine's node on containerd".to_string(),
        };
        println!(
            "No cluster answers: starting one in {} ({where_}; logs in demo-*.log there)",
            data_dir.display()
        );
        let mut server = Command::new(&exe);
        server
            .arg("server")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--https-listen")
            .arg(listen.to_string());
        // A kubeconfig of an earlier run names an address that may be another server's now.
        let kubeconfig = data_dir.join("kubeconfig.yaml");
        if kubeconfig.exists() {
            std::fs::remove_file(&kubeconfig)
                .with_context(|| format!("removing the old {}", kubeconfig.display()))?;
        }
        if sim_nodes.is_some() {
            server.arg("--disable-agent");
        }
        let mut cluster = Cluster {
            children: vec![spawn_logged(server, &data_dir.join("demo-server.log"))?],
            kubeconfig,
        };
        let client = cluster.wait_until_it_answers().await?;
        if let Some(nodes) = sim_nodes {
            let mut sim = Command::new(&exe);
            sim.arg("sim")
                .arg("--kubeconfig")
                .arg(&cluster.kubeconfig)
                .arg("--nodes")
                .arg(nodes.to_string());
            cluster
                .children
                .push(spawn_logged(sim, &data_dir.join("demo-sim.log"))?);
        }
        Ok((cluster, client))
    }

    /// A client once the server wrote its kubeconfig and answers; an error with the log's
    /// tail when it exits or takes too long.
    async fn wait_until_it_answers(&mut self) -> anyhow::Result<kube::Client> {
        let deadline = Instant::now() + START_TIMEOUT;
        let log = self.kubeconfig.with_file_name("demo-server.log");
        loop {
            if let Some(status) = self.children[0].try_wait()? {
                anyhow::bail!("ferry server exited ({status}):\n{}", tail(&log));
            }
            if self.kubeconfig.exists() {
                if let Some(client) = answering(&self.kubeconfig).await {
                    return Ok(client);
                }
            }
            if Instant::now() > deadline {
                anyhow::bail!("ferry server did not answer in time:\n{}", tail(&log));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Cluster {
    /// Stops the children, last started first: SIGTERM, then SIGKILL after 20 seconds.
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev() {
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Starts `command` with its output in `log`.
fn spawn_logged(mut command: Command, log: &Path) -> anyhow::Result<Child> {
    let file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    command
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .with_context(|| format!("starting {command:?}"))
}

/// The last lines of a log, for an error.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
