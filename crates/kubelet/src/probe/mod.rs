//! Container probes (liveness, readiness, startup), as upstream's prober (`pkg/kubelet/prober`
//! and `pkg/probe`) runs them.
//!
//! Three layers, from the edge inwards:
//!
//! - [`probe_once`]: one attempt of a probe against one container: an exec through
//!   [`Runtime::exec_sync`], an HTTP/1.1 GET, a TCP connect or a gRPC health check, each bounded
//!   by `timeoutSeconds` and answering with upstream's messages.
//! - [`ProbeState`] and [`should_probe`]: the pure bookkeeping of upstream's prober worker:
//!   the initial result per kind, consecutive results against `successThreshold` and
//!   `failureThreshold`, the hold after a liveness or startup failure, `initialDelaySeconds`,
//!   and the startup probe gating the other two. Tested by tables.
//! - [`ProbeManager`]: one tokio task per (pod, container, kind) probing every `periodSeconds`
//!   on tokio time, publishing results the pod worker reads ([`ProbeManager::readiness`],
//!   [`ProbeManager::startup`], [`ProbeManager::liveness_failed`]), recording upstream's
//!   `Unhealthy` events, and sending the pod's uid on a channel whenever a result changes.
//!
//! Results belong to one container *instance* (its runtime id): a restarted container starts
//! over from the initial values, as upstream's results cache is keyed by container id.
//!
//! The probers, one file per handler as upstream's `pkg/probe/{exec,http,tcp,grpc}`:
//! `exec.rs`, `http.rs`, `tcp.rs` (also the dialing HTTP probes share) and `grpc.rs`. Then
//! upstream's `pkg/kubelet/prober`: `worker.rs` (one worker's thresholds and loop) and
//! `manager.rs` ([`ProbeManager`]). This file holds the types they share and [`probe_once`].

mod exec;
mod grpc;
mod http;
mod manager;
mod tcp;
#[cfg(test)]
mod testing;
mod worker;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use self::exec::exec_probe;
use self::grpc::grpc_probe;
use self::http::http_probe;
use self::tcp::tcp_probe;
use crate::runtime::Runtime;

pub use self::manager::ProbeManager;
pub use self::worker::{should_probe, ProbeState};

/// The `User-Agent` of HTTP and gRPC probes (upstream: `kube-probe/<major>.<minor>`).
pub const USER_AGENT: &str = "kube-probe/1.33";

/// How much of an exec probe's output or an HTTP probe's body is kept (upstream: 10 KiB).
pub const MAX_OUTPUT: usize = 10 * 1024;

/// The three probes a container can declare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// `livenessProbe`: failing it gets the container killed and restarted.
    Liveness,
    /// `readinessProbe`: the container is Ready only while it passes.
    Readiness,
    /// `startupProbe`: holds the other two back until it passes; failing it is like failing
    /// liveness.
    Startup,
}

impl ProbeKind {
    /// All three, in the order workers are started.
    pub const ALL: [ProbeKind; 3] = [
        ProbeKind::Startup,
        ProbeKind::Liveness,
        ProbeKind::Readiness,
    ];

    /// The word upstream's event messages start with (`Liveness probe failed: ...`).
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }

    /// The container's probe of this kind, if it declares one.
    pub fn spec(self, container: &Container) -> Option<&Probe> {
        match self {
            ProbeKind::Liveness => container.liveness_probe.as_ref(),
            ProbeKind::Readiness => container.readiness_probe.as_ref(),
            ProbeKind::Startup => container.startup_probe.as_ref(),
        }
    }

    /// The result a new container instance starts with (upstream worker's `initialValue`):
    /// not ready, alive, and not yet started (unknown).
    pub fn initial_result(self) -> Option<bool> {
        match self {
            ProbeKind::Readiness => Some(false),
            ProbeKind::Liveness => Some(true),
            ProbeKind::Startup => None,
        }
    }
}

/// The outcome of one probe attempt (upstream's `probe.Result` with its output).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    /// The probe passed.
    Success,
    /// The probe passed with a remark: an HTTP probe answered by a redirect to another host
    /// (or one we do not follow). Counts as success; recorded as a `ProbeWarning` event.
    Warning(String),
    /// The probe failed, with upstream's message (the command's output, `HTTP probe failed with
    /// statuscode: 500`, `dial tcp ...: connect: connection refused`, ...).
    Failure(String),
    /// The probe could not be run (the runtime's error, an unknown named port, an unsupported
    /// scheme). Upstream retries at once and then throws the attempt away: it counts neither
    /// way.
    Unknown(String),
}

impl ProbeResult {
    /// `Some(true)` for a success or warning, `Some(false)` for a failure, `None` if unknown.
    pub fn passed(&self) -> Option<bool> {
        match self {
            ProbeResult::Success | ProbeResult::Warning(_) => Some(true),
            ProbeResult::Failure(_) => Some(false),
            ProbeResult::Unknown(_) => None,
        }
    }
}

/// What a probe attempt runs against.
#[derive(Clone, Copy)]
pub struct ProbeTarget<'a> {
    /// The pod's IP: the default host of HTTP and TCP probes, the host of gRPC probes.
    pub pod_ip: &'a str,
    /// The container's runtime id (for exec probes).
    pub container_id: &'a str,
    /// The container's spec: named ports, and the env exec commands expand `$(VAR)` from.
    pub container: &'a Container,
    /// The runtime exec probes run through.
    pub runtime: &'a dyn Runtime,
}

impl std::fmt::Debug for ProbeTarget<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeTarget")
            .field("pod_ip", &self.pod_ip)
            .field("container_id", &self.container_id)
            .field("container", &self.container.name)
            .finish_non_exhaustive()
    }
}

/// `timeoutSeconds`, defaulted (1) and at least one second.
pub fn probe_timeout(probe: &Probe) -> Duration {
    Duration::from_secs(positive(probe.timeout_seconds, 1))
}

/// `periodSeconds`, defaulted (10) and at least one second.
pub fn probe_period(probe: &Probe) -> Duration {
    Duration::from_secs(positive(probe.period_seconds, 10))
}

fn positive(value: Option<i32>, default: u64) -> u64 {
    match value {
        Some(v) if v > 0 => u64::from(v.unsigned_abs()),
        _ => default,
    }
}

/// One attempt of `probe` against `target`, bounded by its `timeoutSeconds`. A probe with no
/// handler is [`ProbeResult::Unknown`].
pub async fn probe_once(probe: &Probe, target: &ProbeTarget<'_>) -> ProbeResult {
    let timeout = probe_timeout(probe);
    if let Some(exec) = &probe.exec {
        return exec_probe(exec, target, timeout).await;
    }
    if let Some(http) = &probe.http_get {
        return http_probe(http, target, timeout).await;
    }
    if let Some(tcp) = &probe.tcp_socket {
        return tcp_probe(tcp, target, timeout).await;
    }
    if let Some(grpc) = &probe.grpc {
        return grpc_probe(grpc, target, timeout).await;
    }
    ProbeResult::Unknown("missing probe handler".to_string())
}

// ---- ports ---------------------------------------------------------------------------------

/// Why a probe's port does not resolve (upstream `ResolveContainerPort`'s errors).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// A name that is neither one of the container's ports nor a number.
    #[error("port {name} not found")]
    NotFound {
        /// The port as the probe names it.
        name: String,
    },
    /// A number outside 1..=65535.
    #[error("invalid port number: {number}")]
    Invalid {
        /// The number, from the probe or the named port.
        number: i64,
    },
}

/// Upstream's `ResolveContainerPort`: a number, or the name of one of the container's ports
/// (falling back to a number written as a string); 1..=65535.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, PortError> {
    let number = match port {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(name) => {
            let named = container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| i64::from(p.container_port));
            match named {
                Some(n) => n,
                None => name
                    .parse::<i64>()
                    .map_err(|_| PortError::NotFound { name: name.clone() })?,
            }
        }
    };
    u16::try_from(number)
        .ok()
        .filter(|n| *n > 0)
        .ok_or(PortError::Invalid { number })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::testing::*;
    use super::*;

    #[test]
    fn ports_resolve_by_number_or_name() {
        let c =
            container(json!({"name": "app", "ports": [{"name": "http", "containerPort": 8080}]}));
        let cases = [
            (IntOrString::Int(80), Ok(80)),
            (IntOrString::String("http".into()), Ok(8080)),
            (IntOrString::String("81".into()), Ok(81)),
            (
                IntOrString::String("metrics".into()),
                Err(PortError::NotFound {
                    name: "metrics".into(),
                }),
            ),
            (IntOrString::Int(0), Err(PortError::Invalid { number: 0 })),
            (
                IntOrString::Int(70000),
                Err(PortError::Invalid { number: 70000 }),
            ),
        ];
        for (port, expected) in cases {
            assert_eq!(resolve_port(&port, &c), expected, "{port:?}");
        }
        // Upstream's wording, as the probe's Unknown result carries it.
        let message = |port| resolve_port(&port, &c).err().map(|e| e.to_string());
        assert_eq!(
            message(IntOrString::String("metrics".into())).as_deref(),
            Some("port metrics not found")
        );
        assert_eq!(
            message(IntOrString::Int(70000)).as_deref(),
            Some("invalid port number: 70000")
        );
    }
}
