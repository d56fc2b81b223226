//! `ferry bench …`: benchmarks. Each prints its figures beside a reference measured in the same
//! run on the same machine, and with `--json` ends with one JSON object on the last line.

mod api;
mod authz;
mod density;
mod exec;
mod extensions;
mod flowcontrol;
mod podstartup;
mod scheduler;
mod service;
mod store;
mod workloads;

use clap::Subcommand;

/// The benchmarks.
#[derive(Subcommand)]
pub enum Bench {
    /// The store: durable write rate and latency at 1, 16 and 64 writers, embedded vs a real
    /// etcd through the same trait; watch fan-out.
    Store(store::Args),
    /// The API server over HTTPS: ready time, idle RSS, pod creates/s, GET and LIST latency,
    /// watch fan-out; reference: the embedded store's own write rate. Then authorization:
    /// RBAC decision time (200 roles, 1,000 bindings) and creates/s by an RBAC-bound user with
    /// admission, next to AlwaysAllow without admission. Then priority and fairness: node
    /// heartbeat p99 alone and during a flood of LISTs, with the LISTs refused. Then the
    /// pod-journey tracing's cost: pod creates/s with journeys on next to `--journeys=false`.
    Api(api::Args),
    /// The scheduler through the API: pods/s for pending pods on sim nodes (plain, and with
    /// topology spread + anti-affinity) next to a round-robin binder; memory; a large
    /// Deployment's time to all pods available.
    Scheduler(scheduler::Args),
    /// Pod startup on a real node (a `ferry agent` on containerd): creation to Running and to
    /// Ready, split into phases; reference: `ctr run` of the same image. Then creation to Ready
    /// on a second node whose server runs with `--journeys=false`.
    PodStartup(podstartup::Args),
    /// Looking inside a pod: `kubectl exec` round trips next to `ctr task exec`, and
    /// `kubectl logs -f` throughput next to reading the CRI log file.
    Exec(exec::Args),
    /// The service path: the proxy's sync of one changed Service among 1,000 and 10,000 next to
    /// rebuilding the ruleset with `nft -f`; cluster DNS queries/s next to dnsmasq.
    Service(service::Args),
    /// Workloads and storage: a DaemonSet on sim nodes next to a Deployment of as many pods;
    /// with `--real-node`, a Parallel StatefulSet with claims next to a Deployment without, and
    /// CSI create+publish next to mkdir + bind mount.
    Workloads(workloads::Args),
    /// Upstream's density/load test on this machine: sim nodes, pods through Deployments of
    /// mixed sizes created, scaled and deleted at a steady rate; API call latency per verb and
    /// resource, pod startup latency, the server's peak memory and CPU, each against its SLO.
    Density(density::Args),
}

/// Runs one benchmark.
pub async fn run(bench: Bench) -> anyhow::Result<()> {
    match bench {
        Bench::Store(args) => store::run(args).await,
        Bench::Api(args) => api::run(args).await,
        Bench::Scheduler(args) => scheduler::run(args).await,
        Bench::PodStartup(args) => podstartup::run(args).await,
        Bench::Service(args) => service::run(args).await,
        Bench::Exec(args) => exec::run(args).await,
        Bench::Workloads(args) => workloads::run(args).await,
        Bench::Density(args) => density::run(args).await,
    }
}
