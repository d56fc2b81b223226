//! ferry's kubelet: the node agent that makes pods bound to this node run on a real container
//! runtime. Start reading at [`kubelet`] (one watch on this node's pods, one worker per pod,
//! housekeeping) and [`pod_worker`] (the per-pod state machine: sandbox, volumes, images, init
//! and app containers, restarts with backoff, termination, status posting). Around them:
//!
//! - [`downward`]: downward API values shared by env vars and volumes.
//! - [`images`] and [`backoff`]: pull policy, upstream's pull and crash-loop backoff.
//! - [`journey`]: the kubelet's steps of a pod's journey (`ferry trace`), as `ferry-journey` spans.
//! - [`netguard`]: pod and service traffic never leaves the machine (nft table + blackholes).
//! - [`cleanup`]: `ferry agent --cleanup`, removing everything the agent made on the machine.
//! - [`runtime`]: the [`Runtime`](runtime::Runtime) trait — the CRI v1 calls the pod workers make
//!   (sandboxes, containers, images) — with [`CriRuntime`](runtime::CriRuntime), a tonic client on
//!   containerd's unix socket, and [`FakeRuntime`](runtime::FakeRuntime), an in-memory fake that
//!   records calls and injects failures for unit tests. Start reading at `runtime/mod.rs`.
//! - [`containerd`]: runs the node's own containerd (Debian's `containerd` + `runc`) with a
//!   config generated under the agent's data dir, waits for CRI to answer, stops it by pid.
//! - [`registries`]: registry mirrors, TLS and credentials from a k3s-style `registries.yaml`,
//!   as containerd's `hosts.toml` files.
//! - [`cni`]: the CNI conflist (bridge + host-local on the node's podCIDR, portmap) that
//!   containerd's CRI plugin uses for each sandbox.
//! - [`podconfig`]: pure builders from a Pod to CRI's `PodSandboxConfig` and `ContainerConfig`
//!   (DNS, hostname, ports, QoS cgroup parent, env with `$(VAR)` expansion and
//!   fieldRef/resourceFieldRef/configMap/secret sources, mounts, resources, security context),
//!   with upstream's CreateContainerConfigError messages; [`quantity`] parses resource
//!   quantities for it.
//! - [`probe`]: liveness, readiness and startup probes and the workers whose results feed `status`.
//! - [`status`]: the pure PodStatus computation (phase, the five conditions, container
//!   statuses, QoS class) that the pod worker patches to `pods/status` when it changes.
//! - [`machine`] and [`node`]: the machine's capacity (cgroup v1, v2 and hybrid limits),
//!   pressure signals, and the Node, its status and its Lease in kube-node-lease; a
//!   `NodeHeartbeat` that registers the node and keeps Lease and status fresh.
//! - [`server`]: the kubelet's HTTPS server (`:10250`): container logs, and exec, attach and
//!   port-forward proxied to the runtime's streaming server, for the API server; the node's
//!   figures as `/metrics/resource` and `/stats/summary`.
//! - [`stats`]: upstream's `stats/v1alpha1` Summary of the node and its pods (CRI stats, the
//!   host, pod volume and log directories), behind the `SummaryProvider` trait.
//! - [`eviction`]: the eviction manager: signals and thresholds (hard, soft with grace periods),
//!   the pressure conditions, admission under pressure, pod ranking and eviction through the
//!   pod workers — pure decisions with table tests, I/O behind traits.
//! - [`gc`]: dead-container and unused-image garbage collection (also the eviction manager's
//!   node-level reclaim).
//! - [`logs`]: container log rotation by size and count, older files gzip-compressed, CRI
//!   `ReopenContainerLog`.
//! - [`volume`]: the volume manager: prepares a pod's volumes on the host (emptyDir, configMap,
//!   secret, downwardAPI, projected, hostPath) before its containers start, and removes them after.
//!
//! It talks to containerd over CRI v1 gRPC only (types from the `k8s-cri` crate), and to the
//! host to write config and volume files, mount tmpfs volumes, start/stop the containerd process,
//! and install the network guard (`nft`, `ip`). `tests/containerd.rs` runs a pod sandbox and a
//! container on real containerd (root, opt-in); `crates/ferry/tests/agent.rs` runs whole pods.

pub mod backoff;
pub mod cleanup;
pub mod cni;
pub mod containerd;
pub mod csi;
pub mod downward;
pub mod eviction;
pub mod gc;
pub mod images;
pub mod journey;
pub mod kubelet;
pub mod logs;
pub mod machine;
pub mod metrics;
pub mod netguard;
pub mod node;
pub mod pod_worker;
pub mod podconfig;
pub mod probe;
pub mod registries;
pub use ferry_api::quantity;
pub mod runtime;
pub mod server;
pub mod stats;
pub mod status;
pub mod volume;
