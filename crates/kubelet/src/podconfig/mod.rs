//! From a pod to the CRI requests that run it: [`sandbox_config`] builds the
//! `RunPodSandbox` config and [`container_config`] the `CreateContainer` config for one container,
//! as upstream's kubelet does in `kuberuntime_sandbox.go`, `kuberuntime_container.go`,
//! `kuberuntime_container_linux.go`, `kubelet_pods.go` (environment, mounts) and
//! `network/dns/dns.go`.
//!
//! Both are pure: everything the kubelet would look up (configMaps, secrets, the node's
//! resolv.conf and allocatable, the host paths of prepared volumes, the image's user) is passed
//! in a context struct, so the pod worker does the I/O and these functions are tested by tables.
//!
//! Deliberate differences from upstream, each because of this machine or this project's scope:
//! - `oom_score_adj` is upstream's value clamped at 0: root lacks `CAP_SYS_RESOURCE` here
//!   (docs/RUNTIME.md), so the negative values upstream gives Guaranteed pods (-997) and
//!   node-critical pods cannot be applied; positive ones (BestEffort 1000, Burstable 2..999) can.
//! - No user namespaces, AppArmor, SELinux labels, devices, hugepages or swap settings.
//! - Port mappings carry only ports with a `hostPort` (upstream passes every container port and
//!   the runtime skips those without one).
//! - The environment is returned in declaration order (envFrom keys, then `env`), where upstream
//!   returns it in Go map order; no service-link variables (there are no Services yet).
//! - subPath is a plain join of the volume's host path and the sub path (upstream bind-mounts it
//!   safely through `/proc/self/fd`); `..` and absolute sub paths are rejected as upstream does.
//!
//! By concept: `sandbox.rs` (the sandbox config: metadata, hostname, ports, cgroup parent,
//! namespaces) and `dns.rs` (its resolver config); `container.rs` (the container config) with
//! `env.rs` (its environment), `mounts.rs` (its mounts), `resources.rs` (its cgroup resources
//! and OOM score) and `security_context.rs` (its Linux security context and `runAsNonRoot`).
//! This file holds the labels and annotations the kubelet puts on what it creates, and
//! [`ConfigError`].

mod container;
mod dns;
mod env;
mod mounts;
mod resources;
mod sandbox;
mod security_context;
#[cfg(test)]
mod testing;

use k8s_openapi::api::core::v1::Pod;

use crate::quantity::QuantityError;

pub use self::container::{container_config, container_hash, ContainerContext};
pub use self::dns::parse_resolv_conf;
pub use self::env::{container_env, expand};
pub use self::mounts::VolumeHostPath;
pub use self::resources::{
    container_oom_score_adj, milli_cpu_to_quota, milli_cpu_to_shares, CPU_PERIOD_US,
};
pub use self::sandbox::{
    namespace_options, pod_cgroup_parent, pod_log_directory, sandbox_config, SandboxContext,
};

/// Pod label the kubelet adds to sandboxes and containers: the pod's name.
pub const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
/// Pod label: the pod's namespace.
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
/// Pod label: the pod's UID.
pub const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";
/// Container label: the container's name.
pub const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";
/// Container annotation: the restart count the container was created with.
pub const CONTAINER_RESTART_COUNT_ANNOTATION: &str = "io.kubernetes.container.restartCount";
/// Container annotation: the container's hash (see [`container_hash`]).
pub const CONTAINER_HASH_ANNOTATION: &str = "io.kubernetes.container.hash";
/// Container annotation: `terminationMessagePath`.
pub const TERMINATION_MESSAGE_PATH_ANNOTATION: &str =
    "io.kubernetes.container.terminationMessagePath";
/// Container annotation: `terminationMessagePolicy`.
pub const TERMINATION_MESSAGE_POLICY_ANNOTATION: &str =
    "io.kubernetes.container.terminationMessagePolicy";
/// Container annotation: the preStop handler as JSON.
pub const PRE_STOP_HANDLER_ANNOTATION: &str = "io.kubernetes.container.preStopHandler";
/// Container annotation: the container's ports as JSON.
pub const CONTAINER_PORTS_ANNOTATION: &str = "io.kubernetes.container.ports";
/// Container annotation: `spec.terminationGracePeriodSeconds`.
pub const POD_TERMINATION_GRACE_PERIOD_ANNOTATION: &str =
    "io.kubernetes.pod.terminationGracePeriod";
/// Container annotation: `metadata.deletionGracePeriodSeconds`.
pub const POD_DELETION_GRACE_PERIOD_ANNOTATION: &str = "io.kubernetes.pod.deletionGracePeriod";

/// Why a sandbox or container config cannot be built. For container configs the message is what
/// upstream puts in the `CreateContainerConfigError` waiting state and the `Failed` event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A configMap referenced by `envFrom` or `configMapKeyRef` (not optional) does not exist.
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    /// A `configMapKeyRef` key (not optional) is missing from the configMap.
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKeyNotFound {
        /// The key.
        key: String,
        /// The pod's namespace.
        namespace: String,
        /// The configMap's name.
        name: String,
    },
    /// A secret referenced by `envFrom` or `secretKeyRef` (not optional) does not exist.
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    /// A `secretKeyRef` key (not optional) is missing from the secret.
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKeyNotFound {
        /// The key.
        key: String,
        /// The pod's namespace.
        namespace: String,
        /// The secret's name.
        name: String,
    },
    /// A `fieldRef` the kubelet cannot resolve; the message is upstream's.
    #[error("{0}")]
    FieldRef(String),
    /// A `resourceFieldRef` naming an unsupported resource.
    #[error("unsupported container resource : {0}")]
    UnsupportedResource(String),
    /// A quantity in the pod that does not parse.
    #[error("invalid quantity {value:?}: {source}")]
    Quantity {
        /// The quantity as written.
        value: String,
        /// Why it does not parse.
        source: QuantityError,
    },
    /// A volumeMount names a volume the context has no host path for.
    #[error("cannot find volume \"{volume}\" to mount into container \"{container}\"")]
    VolumeNotFound {
        /// The volume's name.
        volume: String,
        /// The container's name.
        container: String,
    },
    /// A subPath (or expanded subPathExpr) with a `..` element.
    #[error("unable to provision SubPath `{0}`: must not contain '..'")]
    SubPathBacksteps(String),
    /// An absolute subPath.
    #[error("error SubPath `{0}` must not be an absolute path")]
    SubPathAbsolute(String),
    /// A subPathExpr referencing variables the container does not define.
    #[error("missing value for {0}")]
    SubPathExprMissing(String),
    /// Bidirectional mount propagation asked for by an unprivileged container.
    #[error("Bidirectional mount propagation is available only to privileged containers")]
    BidirectionalUnprivileged,
    /// A Localhost seccomp profile without `localhostProfile`.
    #[error("localhostProfile must be set if seccompProfile type is Localhost.")]
    SeccompLocalhostProfileMissing,
    /// `runAsNonRoot` cannot be satisfied; the message is upstream's.
    #[error("{0}")]
    RunAsNonRoot(String),
    /// `setHostnameAsFQDN` with a name longer than the kernel allows.
    #[error(
        "failed to construct FQDN from pod hostname and cluster domain, FQDN {fqdn} is too long (64 characters is the max, {len} characters requested)"
    )]
    FqdnTooLong {
        /// The FQDN.
        fqdn: String,
        /// Its length.
        len: usize,
    },
}

fn pod_name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

fn pod_namespace(pod: &Pod) -> String {
    pod.metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into())
}

fn pod_uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

/// An ephemeral container as a container (the same fields but `targetContainerName`), for the
/// code that builds, starts and reports containers.
pub fn ephemeral_as_container(
    ephemeral: &k8s_openapi::api::core::v1::EphemeralContainer,
) -> k8s_openapi::api::core::v1::Container {
    let mut value = serde_json::to_value(ephemeral).unwrap_or_default();
    if let Some(fields) = value.as_object_mut() {
        fields.remove("targetContainerName");
    }
    serde_json::from_value(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_error_messages_match_upstream() {
        let cases = [
            (
                ConfigError::ConfigMapNotFound("x".into()),
                "configmap \"x\" not found",
            ),
            (
                ConfigError::ConfigMapKeyNotFound {
                    key: "k".into(),
                    namespace: "ns".into(),
                    name: "x".into(),
                },
                "couldn't find key k in ConfigMap ns/x",
            ),
            (
                ConfigError::SecretNotFound("x".into()),
                "secret \"x\" not found",
            ),
            (
                ConfigError::SecretKeyNotFound {
                    key: "k".into(),
                    namespace: "ns".into(),
                    name: "x".into(),
                },
                "couldn't find key k in Secret ns/x",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
    }
}
