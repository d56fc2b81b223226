//! `ferry`: the one binary. Subcommands are wired here; the work lives in the crates
//! (`ferry-store`, `ferry-apiserver`, `ferry-controllers`, …).

mod agent;
mod bench;
mod components;
mod demo;
mod local_storage;
mod network_metrics;
mod otlp;
mod server;
mod snapshot;
mod trace;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ferry",
    version,
    about = "A Kubernetes-API-compatible cluster in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The API server on its store (embedded by default), writing an admin kubeconfig.
    Server(Box<server::Args>),
    /// The node agent: joins a server, runs containerd, registers the Node and runs the pods
    /// bound to it (the kubelet). `--cleanup` removes what it made on this machine.
    Agent(agent::AgentArgs),
    /// The controller manager (deployment, replicaset, garbage collector, namespace, node
    /// lifecycle, …) against a cluster given by a kubeconfig.
    Controllers(components::ControllersArgs),
    /// The scheduler: assigns pending pods to nodes through filter and score plugins.
    Scheduler(components::SchedulerArgs),
    /// Simulated nodes: registers Nodes, keeps their Leases fresh and plays the kubelet for
    /// pods bound to them (Running and Ready after a delay), like kwok.
    Sim(components::SimArgs),
    /// Saves, lists and deletes snapshots of the store (k3s's `etcd-snapshot`); `ferry server
    /// --restore-from` starts from one.
    Snapshot {
        #[command(subcommand)]
        what: snapshot::SnapshotCommand,
    },
    /// Benchmarks that print figures next to a reference measured in the same run.
    Bench {
        #[command(subcommand)]
        what: bench::Bench,
    },
    /// A pod's journey through the cluster, step by step (`pod/NAME`, `deployment/NAME`,
    /// `rs/NAME`): every component's step with its start, duration and result, and why the pod
    /// is Pending, crashing or not Ready.
    Trace(trace::Args),
    /// The seeds' story told by a real cluster: uses the running one (or starts one), applies
    /// a small Deployment and Service, and follows its new pod's journey to Ready.
    Demo(demo::Args),
}

fn main() -> anyhow::Result<()> {
    logging();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Server(args) => runtime.block_on(server::run(*args)),
        Command::Agent(args) => runtime.block_on(agent::run(args, components::shutdown_signal())),
        Command::Controllers(args) => runtime.block_on(components::controllers(args)),
        Command::Scheduler(args) => runtime.block_on(components::scheduler(args)),
        Command::Sim(args) => runtime.block_on(components::sim(args)),
        Command::Snapshot { what } => runtime.block_on(snapshot::run(what)),
        Command::Bench { what } => runtime.block_on(bench::run(what)),
        Command::Trace(args) => runtime.block_on(trace::run(args)),
        Command::Demo(args) => runtime.block_on(demo::run(args)),
    }
}

/// Logs to stderr as `RUST_LOG` says, and journey steps (`ferry-journey`) to whatever sinks the
/// subcommand installs, whatever `RUST_LOG` says (each layer has its own filter).
fn logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // hickory-server logs every DNS query at info; journey steps are data for the journey
        // layer, not log lines (the log layer would format every step's fields).
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("info,hickory_server=warn,journey=off")
        });
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(filter),
        )
        .with(ferry_journey::JourneyLayer.with_filter(ferry_journey::JourneyLayer::filter()))
        .init();
}
