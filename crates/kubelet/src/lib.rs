//! ferry's kubelet: the node agent that makes pods bound to this node run on a real container
//! runtime. So far it holds the foundation the pod workers (not written yet: one state machine per
//! pod, volumes, probes, status manager; see issue 6) will stand on:
//!
//! - [`runtime`]: the [`Runtime`](runtime::Runtime) trait — the CRI v1 calls the pod workers make
//!   (sandboxes, containers, images) — with [`CriRuntime`](runtime::CriRuntime), a tonic client on
//!   containerd's unix socket, and [`FakeRuntime`](runtime::FakeRuntime), an in-memory fake that
//!   records calls and injects failures for unit tests. Start reading at `runtime/mod.rs`.
//! - [`containerd`]: runs the node's own containerd (Debian's `containerd` + `runc`) with a
//!   config generated under the agent's data dir, waits for CRI to answer, stops it by pid.
//! - [`cni`]: the CNI conflist (bridge + host-local on the node's podCIDR, portmap) that
//!   containerd's CRI plugin uses for each sandbox.
//! - [`podconfig`]: pure builders from a Pod to CRI's `PodSandboxConfig` and `ContainerConfig`
//!   (DNS, hostname, ports, QoS cgroup parent, env with `$(VAR)` expansion and
//!   fieldRef/resourceFieldRef/configMap/secret sources, mounts, resources, security context),
//!   with upstream's CreateContainerConfigError messages; [`quantity`] parses resource
//!   quantities for it.
//! - [`probe`]: liveness, readiness and startup probes and the workers whose results feed `status`.
//! - [`status`]: the pure PodStatus computation (phase, the five conditions, container
//!   statuses, QoS class) that the status manager will patch to `pods/status`.
//! - [`machine`] and [`node`]: the machine's capacity (cgroup v1, v2 and hybrid limits),
//!   pressure signals, and the Node, its status and its Lease in kube-node-lease; a
//!   `NodeHeartbeat` that registers the node and keeps Lease and status fresh.
//! - [`volume`]: the volume manager: prepares a pod's volumes on the host (emptyDir, configMap,
//!   secret, downwardAPI, projected, hostPath) before its containers start, and removes them after.
//!
//! It talks to containerd over CRI v1 gRPC only (types from the `k8s-cri` crate), and to the
//! host only to write config files, start/stop the containerd process and find its shims.
//! `tests/containerd.rs` runs a pod sandbox and a container on real containerd (root, opt-in).

pub mod backoff;
pub mod cleanup;
pub mod cni;
pub mod containerd;
pub mod images;
pub mod kubelet;
pub mod machine;
pub mod netguard;
pub mod node;
pub mod pod_worker;
pub mod podconfig;
pub mod probe;
pub mod quantity;
pub mod runtime;
pub mod status;
pub mod volume;
