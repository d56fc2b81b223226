//! `ferry-proxy`: the service proxy of every node, kube-proxy's nftables mode. It watches
//! Services and EndpointSlices through the API and programs table `ip ferry-proxy` so that
//! traffic to a cluster IP, a node port or an external IP goes to a ready endpoint.
//!
//! Read in this order: [`model`] (Services and slices → Service ports with endpoints),
//! [`rules`] (the ruleset they need), [`sync`] (one transaction from what was applied to what is
//! wanted), [`nft`] (statements and commands, as JSON to apply and as text to read), then
//! [`run`] (the watch and sync loop). A pod newly ready behind a Service is a step of its
//! journey once its rules are applied ([`journey`]).

pub mod conntrack;
pub mod journey;
pub mod metrics;
pub mod model;
pub mod nft;
pub mod rules;
pub mod sync;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_client::watch::reflect;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::Api;
use tokio::sync::Notify;

pub use metrics::Metrics;

pub use nft::{ApplyError, Nft};
pub use rules::Config;

/// Settings of the proxy.
#[derive(Debug, Clone)]
pub struct Options {
    /// This node's name: endpoints on it are local.
    pub node_name: String,
    /// The pod and service ranges.
    pub config: Config,
    /// How often the whole table is rewritten (repairing what was changed by hand).
    pub full_resync: Duration,
    /// How `nft` is run.
    pub nft: Nft,
    /// Whether stale UDP conntrack entries are deleted after a sync ([`conntrack`]), in this
    /// process's network namespace (where `nft` must then apply too).
    pub flush_conntrack: bool,
}

/// A CIDR `a.b.c.d/n` that is not one.
#[derive(Debug, thiserror::Error)]
#[error("invalid IPv4 CIDR {0:?}")]
pub struct CidrError(pub String);

/// Parses `a.b.c.d/n`.
pub fn parse_cidr(text: &str) -> Result<(Ipv4Addr, u8), CidrError> {
    let invalid = || CidrError(text.to_string());
    let (addr, len) = text.split_once('/').ok_or_else(invalid)?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| invalid())?;
    let len: u8 = len.parse().map_err(|_| invalid())?;
    if len > 32 {
        return Err(invalid());
    }
    Ok((addr, len))
}

/// The proxy of one node.
pub struct Proxy {
    options: Options,
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    changed: Arc<Notify>,
    /// Its metrics.
    pub metrics: Arc<Metrics>,
}

impl Proxy {
    /// Watches Services and EndpointSlices through `client`; returns the proxy and the watch
    /// task to run beside [`Proxy::run`].
    pub fn new(
        client: kube::Client,
        options: Options,
    ) -> (Proxy, impl std::future::Future<Output = ()> + Send) {
        let changed = Arc::new(Notify::new());
        let (services, services_writer) = reflector::store();
        let (slices, slices_writer) = reflector::store();
        let watch_services = reflect(
            Api::<Service>::all(client.clone()),
            services_writer,
            changed.clone(),
            "proxy",
        );
        let watch_slices = reflect(
            Api::<EndpointSlice>::all(client),
            slices_writer,
            changed.clone(),
            "proxy",
        );
        let watches = async move {
            tokio::join!(watch_services, watch_slices);
        };
        let proxy = Proxy {
            options,
            services,
            slices,
            changed,
            metrics: Arc::default(),
        };
        (proxy, watches)
    }

    /// Syncs after every change (changes arriving together make one sync) and every
    /// `full_resync`, until `shutdown` resolves. The table stays when it ends: traffic keeps
    /// flowing while the agent restarts; `ferry agent --cleanup` removes it.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        tokio::select! {
            () = async {
                let _ = tokio::join!(self.services.wait_until_ready(), self.slices.wait_until_ready());
            } => {}
            () = &mut shutdown => return,
        }
        let mut applied: Option<rules::Ruleset> = None;
        let mut applied_ports: Vec<model::ServicePort> = Vec::new();
        // The slices of the rules applied last (none before the first sync), and when the
        // proxy first saw a change not yet applied: what the journey's steps need.
        let mut applied_slices: Option<Vec<Arc<EndpointSlice>>> = None;
        let mut changed_at: Option<u64> = None;
        let mut last_full = Instant::now();
        loop {
            let slices = self.slices.state();
            let ports = {
                let services = self.services.state();
                model::service_ports(&services, &slices, &self.options.node_name)
            };
            let desired = rules::desired(&self.options.config, &ports);
            let due = last_full.elapsed() >= self.options.full_resync;
            let full = applied.is_none() || due;
            let transaction = match &applied {
                Some(previous) if !full => sync::partial(previous, &desired),
                _ => {
                    last_full = Instant::now();
                    sync::full(&self.options.config, &desired)
                }
            };
            let mut retry = None;
            let mut synced = transaction.is_empty();
            if !transaction.is_empty() {
                let started = Instant::now();
                match self.options.nft.apply(&transaction).await {
                    Ok(()) => {
                        let took = started.elapsed();
                        self.metrics.synced(full, took);
                        tracing::debug!(
                            commands = transaction.commands.len(),
                            ?took,
                            "proxy rules synced"
                        );
                        applied = Some(desired);
                        synced = true;
                    }
                    Err(error) => {
                        self.metrics.sync_failures.inc();
                        tracing::warn!(%error, "proxy sync failed; retrying with a full sync");
                        applied = None;
                        retry = Some(Duration::from_secs(1));
                    }
                }
            }
            if synced {
                if let Some(before) = &applied_slices {
                    let start = changed_at.unwrap_or_else(ferry_journey::now_unix_nanos);
                    for pod in journey::newly_ready(before, &applied_ports, &slices, &ports) {
                        pod.programmed(&self.options.node_name, start);
                    }
                }
                applied_slices = Some(slices);
                changed_at = None;
                let previous = std::mem::replace(&mut applied_ports, ports);
                if self.options.flush_conntrack {
                    self.flush_stale(conntrack::stale(&previous, &applied_ports))
                        .await;
                }
            }
            let wait = retry
                .unwrap_or_else(|| self.options.full_resync.saturating_sub(last_full.elapsed()));
            tokio::select! {
                () = self.changed.notified() => {
                    changed_at.get_or_insert_with(ferry_journey::now_unix_nanos);
                    // Changes that come together (a rollout) make one sync.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                () = tokio::time::sleep(wait) => {}
                () = &mut shutdown => return,
            }
        }
    }

    /// Deletes the UDP conntrack entries `filters` name (the rules no longer send there).
    async fn flush_stale(&self, filters: Vec<conntrack::Filter>) {
        if filters.is_empty() {
            return;
        }
        match tokio::task::spawn_blocking(move || conntrack::flush(&filters)).await {
            Ok(Ok(deleted)) => {
                self.metrics.conntrack_deleted.inc_by(deleted as u64);
                tracing::debug!(deleted, "stale UDP conntrack entries deleted");
            }
            Ok(Err(error)) => tracing::warn!(%error, "deleting stale UDP conntrack entries"),
            Err(error) => tracing::warn!(%error, "the conntrack flush did not finish"),
        }
    }
}

/// Removes the proxy's table (nothing to remove is not an error).
pub fn cleanup(nft: &Nft) -> Result<(), ApplyError> {
    nft.apply_blocking(&sync::cleanup())
}

/// Makes bridged pod traffic pass through the proxy's rules (`br_netfilter`'s
/// `net.bridge.bridge-nf-call-iptables`): without it a reply from a pod to a client pod on the
/// same bridge skips the un-DNAT and the client sees the endpoint's address instead of the
/// Service's. A kernel without the bridge netfilter module is left as it is.
pub fn prepare_host() -> std::io::Result<()> {
    let knob = std::path::Path::new("/proc/sys/net/bridge/bridge-nf-call-iptables");
    if knob.exists() {
        std::fs::write(knob, "1")?;
    }
    Ok(())
}
