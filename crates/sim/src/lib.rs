//! `ferry-sim`: simulated nodes, as kwok gives them. `ferry sim --nodes N` registers N Nodes,
//! keeps their Leases and status fresh with little traffic, and plays the kubelet for the pods
//! bound to them (Running and Ready after a delay, deletions honoured at once), so the control
//! plane (scheduler, controllers, node lifecycle) can be exercised at thousands of nodes
//! without running a container.
//!
//! It talks only to the API server, through kube-rs: Nodes and `nodes/status`, Leases in
//! `kube-node-lease`, one watch on bound pods, `pods/status` and pod deletes.
//!
//! Start reading at [`run`], then `sim.rs` (registration, heartbeats, the node watch) and
//! `kubelet.rs` (pods). What is posted is computed by pure functions in [`node`] and
//! [`pod_status`]; [`spread`] spreads periodic work over its interval, [`ipam`] hands out pod
//! IPs.
//!
//! Taking a node down: `kubectl annotate node sim-1 sim.ferry.dev/down=true` stops its Lease
//! renewals, status and pods, so the node lifecycle controller sees a dead node; removing the
//! annotation brings it back. A pod annotated `sim.ferry.dev/complete-after: 10s` turns
//! Succeeded that long after it started (for Jobs); one annotated `sim.ferry.dev/fail-after:
//! 10s` turns Failed, its containers exited with `sim.ferry.dev/exit-code` (default 1).

pub mod ipam;
mod kubelet;
pub mod node;
mod options;
pub mod pod_status;
mod sim;
pub mod spread;

use std::future::Future;
use std::sync::atomic::Ordering;

pub use ipam::Ipv4Cidr;
pub use node::DOWN_ANNOTATION;
pub use options::{parse_labels, parse_taint, parse_taints, Options, ParseError};
pub use pod_status::{COMPLETE_AFTER_ANNOTATION, EXIT_CODE_ANNOTATION, FAIL_AFTER_ANNOTATION};

/// Runs the simulated nodes until `shutdown` resolves.
///
/// Registers the nodes first (bounded concurrency), then renews Leases, posts status, watches
/// Nodes and pods. On shutdown every task stops and the Nodes stay as they are, like stopping
/// kwok or a kubelet: their Leases expire and the node lifecycle controller marks them
/// NotReady; running `ferry sim` again with the same options takes them over.
///
/// Needs (as user `system:node:*` would, but for all nodes): Nodes create/get/patch/watch/list
/// and `nodes/status` patch; Leases in `kube-node-lease` create/patch; pods list/watch and
/// delete, `pods/status` patch.
pub async fn run(
    client: kube::Client,
    options: Options,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        !options.lease_renew_interval.is_zero(),
        "the lease renew interval must be positive"
    );
    anyhow::ensure!(
        !options.status_update_interval.is_zero(),
        "the status update interval must be positive"
    );
    tracing::info!(nodes = options.nodes, prefix = %options.name_prefix, "starting simulated nodes");
    let (sim, work) = sim::Sim::new(client, options);
    tokio::select! {
        () = shutdown => {}
        () = sim.run(work) => {}
    }
    sim.shutting_down.store(true, Ordering::Relaxed);
    sim.pods.lock().abort_all();
    tracing::info!("simulated nodes stopped; their Nodes stay registered");
    Ok(())
}
