//! The `CreateContainer` config for one container (upstream `kuberuntime_container.go`,
//! `generateContainerConfig`): command and args expanded against the environment, image,
//! labels and annotations (with the spec hash the pod worker compares), and the Linux part from
//! `resources.rs` and `security_context.rs`. [`ContainerContext`] carries what the kubelet
//! looked up for it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use super::mounts::container_mounts;
use super::resources::container_resources;
use super::security_context::{container_security_context, verify_run_as_non_root};
use super::{
    container_env, expand, pod_name, pod_namespace, pod_uid, ConfigError, VolumeHostPath,
    CONTAINER_HASH_ANNOTATION, CONTAINER_NAME_LABEL, CONTAINER_PORTS_ANNOTATION,
    CONTAINER_RESTART_COUNT_ANNOTATION, POD_DELETION_GRACE_PERIOD_ANNOTATION, POD_NAMESPACE_LABEL,
    POD_NAME_LABEL, POD_TERMINATION_GRACE_PERIOD_ANNOTATION, POD_UID_LABEL,
    PRE_STOP_HANDLER_ANNOTATION, TERMINATION_MESSAGE_PATH_ANNOTATION,
    TERMINATION_MESSAGE_POLICY_ANNOTATION,
};
use crate::runtime::v1;

/// Facts and looked-up objects the container config needs besides the pod and container.
#[derive(Clone, Debug, Default)]
pub struct ContainerContext {
    /// How many times this container was restarted (0 for the first); the CRI attempt.
    pub restart_count: u32,
    /// The image reference to run (what PullImage returned); the spec's image is also passed as
    /// `user_specified_image`.
    pub image_ref: String,
    /// The image's numeric user, if it has one (for `runAsNonRoot`).
    pub image_uid: Option<i64>,
    /// The image's user name if it is not numeric.
    pub image_username: String,
    /// The pod's IPs from the sandbox status (for `status.podIP(s)`).
    pub pod_ips: Vec<String>,
    /// The node's IPs (for `status.hostIP(s)`).
    pub host_ips: Vec<String>,
    /// The node's allocatable resources (limits default to them in `resourceFieldRef`).
    pub node_allocatable: BTreeMap<String, ApiQuantity>,
    /// The node's memory capacity in bytes (Burstable `oom_score_adj`).
    pub node_memory_capacity: i64,
    /// The pod namespace's configMaps this container references: name → data.
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    /// The pod namespace's secrets this container references: name → data.
    pub secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// The pod's prepared volumes by volume name.
    pub volumes: BTreeMap<String, VolumeHostPath>,
    /// The pod's managed `/etc/hosts` file, mounted unless the container mounts its own.
    pub etc_hosts_path: Option<String>,
    /// The host file backing the container's `terminationMessagePath`.
    pub termination_message_host_path: Option<String>,
    /// Directory of Localhost seccomp profiles (upstream `<root-dir>/seccomp`).
    pub seccomp_profile_root: String,
    /// For an ephemeral container with a `targetContainerName`: the target's runtime id, whose
    /// process namespace it joins (CRI's `NamespaceMode::TARGET`).
    pub pid_target: Option<String>,
}

/// The `CreateContainer` config for `container` of `pod` (upstream `generateContainerConfig`).
/// Errors are the pod's `CreateContainerConfigError`s.
pub fn container_config(
    pod: &Pod,
    container: &Container,
    ctx: &ContainerContext,
) -> Result<v1::ContainerConfig, ConfigError> {
    let spec = pod.spec.clone().unwrap_or_default();
    verify_run_as_non_root(pod, container, ctx)?;
    let envs = container_env(pod, container, ctx)?;
    let lookup = |name: &str| {
        envs.iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let command = container
        .command
        .iter()
        .flatten()
        .map(|c| expand(c, &lookup))
        .collect();
    let args = container
        .args
        .iter()
        .flatten()
        .map(|a| expand(a, &lookup))
        .collect();

    let restart_count = ctx.restart_count;
    let mut labels = std::collections::HashMap::new();
    labels.insert(POD_NAME_LABEL.to_string(), pod_name(pod));
    labels.insert(POD_NAMESPACE_LABEL.to_string(), pod_namespace(pod));
    labels.insert(POD_UID_LABEL.to_string(), pod_uid(pod));
    labels.insert(CONTAINER_NAME_LABEL.to_string(), container.name.clone());

    Ok(v1::ContainerConfig {
        metadata: Some(v1::ContainerMetadata {
            name: container.name.clone(),
            attempt: restart_count,
        }),
        image: Some(v1::ImageSpec {
            image: if ctx.image_ref.is_empty() {
                container.image.clone().unwrap_or_default()
            } else {
                ctx.image_ref.clone()
            },
            user_specified_image: container.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command,
        args,
        working_dir: container.working_dir.clone().unwrap_or_default(),
        envs: envs
            .iter()
            .map(|(key, value)| v1::KeyValue {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        mounts: container_mounts(container, &envs, ctx)?,
        labels,
        annotations: container_annotations(pod, container, restart_count),
        log_path: format!("{}/{restart_count}.log", container.name),
        stdin: container.stdin.unwrap_or(false),
        stdin_once: container.stdin_once.unwrap_or(false),
        tty: container.tty.unwrap_or(false),
        linux: Some(v1::LinuxContainerConfig {
            resources: Some(container_resources(pod, container, ctx)?),
            security_context: Some(container_security_context(&spec, container, ctx)?),
        }),
        ..Default::default()
    })
}

fn container_annotations(
    pod: &Pod,
    container: &Container,
    restart_count: u32,
) -> std::collections::HashMap<String, String> {
    let mut annotations = std::collections::HashMap::new();
    annotations.insert(
        CONTAINER_HASH_ANNOTATION.to_string(),
        format!("{:x}", container_hash(container)),
    );
    annotations.insert(
        CONTAINER_RESTART_COUNT_ANNOTATION.to_string(),
        restart_count.to_string(),
    );
    annotations.insert(
        TERMINATION_MESSAGE_PATH_ANNOTATION.to_string(),
        container
            .termination_message_path
            .clone()
            .unwrap_or_default(),
    );
    annotations.insert(
        TERMINATION_MESSAGE_POLICY_ANNOTATION.to_string(),
        container
            .termination_message_policy
            .clone()
            .unwrap_or_default(),
    );
    if let Some(grace) = pod.metadata.deletion_grace_period_seconds {
        annotations.insert(
            POD_DELETION_GRACE_PERIOD_ANNOTATION.to_string(),
            grace.to_string(),
        );
    }
    if let Some(grace) = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
    {
        annotations.insert(
            POD_TERMINATION_GRACE_PERIOD_ANNOTATION.to_string(),
            grace.to_string(),
        );
    }
    if let Some(json) = container
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
        .and_then(|pre_stop| serde_json::to_string(pre_stop).ok())
    {
        annotations.insert(PRE_STOP_HANDLER_ANNOTATION.to_string(), json);
    }
    if let Some(json) = container
        .ports
        .as_ref()
        .filter(|p| !p.is_empty())
        .and_then(|ports| serde_json::to_string(ports).ok())
    {
        annotations.insert(CONTAINER_PORTS_ANNOTATION.to_string(), json);
    }
    annotations
}

/// A hash of the container's spec (FNV-1a 32 over its JSON, as upstream's `HashContainer` uses
/// FNV-32a; not bit-identical to upstream, which hashes a spew dump). The pod worker compares it
/// with the running container's annotation to notice a changed spec.
pub fn container_hash(container: &Container) -> u32 {
    let json = serde_json::to_vec(container).unwrap_or_default();
    let mut hash: u32 = 0x811c_9dc5;
    for byte in json {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::podconfig::testing::*;
    use crate::podconfig::*;
    use crate::runtime::v1;

    #[test]
    fn container_command_args_and_basics() {
        let p = pod_with(
            json!({"deletionGracePeriodSeconds": 5}),
            json!({"terminationGracePeriodSeconds": 30, "containers": [{
                "name": "app", "image": "127.0.0.1:5000/busybox:1",
                "command": ["/bin/sh", "-c"], "args": ["echo $(MSG) $$(MSG) $(NOPE)"],
                "workingDir": "/tmp",
                "env": [{"name": "MSG", "value": "hi"}],
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "ports": [{"containerPort": 80}],
                "lifecycle": {"preStop": {"exec": {"command": ["sleep", "1"]}}}
            }]}),
        );
        let mut ctx = container_ctx();
        ctx.restart_count = 3;
        let spec = p.spec.clone().unwrap_or_default();
        let c = container_config(&p, &spec.containers[0], &ctx).expect("config");
        assert_eq!(
            c.metadata,
            Some(v1::ContainerMetadata {
                name: "app".into(),
                attempt: 3
            })
        );
        let image = c.image.clone().expect("image");
        assert_eq!(image.image, "sha256:abc");
        assert_eq!(image.user_specified_image, "127.0.0.1:5000/busybox:1");
        assert_eq!(c.command, vec!["/bin/sh", "-c"]);
        assert_eq!(c.args, vec!["echo hi $(MSG) $(NOPE)"]);
        assert_eq!(c.working_dir, "/tmp");
        assert_eq!(
            c.envs,
            vec![v1::KeyValue {
                key: "MSG".into(),
                value: "hi".into()
            }]
        );
        assert_eq!(c.log_path, "app/3.log");
        let label = |k: &str| c.labels.get(k).map(String::as_str);
        assert_eq!(label(CONTAINER_NAME_LABEL), Some("app"));
        assert_eq!(label(POD_NAME_LABEL), Some("web"));
        assert_eq!(label(POD_NAMESPACE_LABEL), Some("ns"));
        assert_eq!(label(POD_UID_LABEL), Some("u1"));
        let annotation = |k: &str| c.annotations.get(k).map(String::as_str);
        assert_eq!(annotation(CONTAINER_RESTART_COUNT_ANNOTATION), Some("3"));
        assert_eq!(
            annotation(TERMINATION_MESSAGE_PATH_ANNOTATION),
            Some("/dev/termination-log")
        );
        assert_eq!(
            annotation(TERMINATION_MESSAGE_POLICY_ANNOTATION),
            Some("File")
        );
        assert_eq!(
            annotation(POD_TERMINATION_GRACE_PERIOD_ANNOTATION),
            Some("30")
        );
        assert_eq!(annotation(POD_DELETION_GRACE_PERIOD_ANNOTATION), Some("5"));
        assert_eq!(
            annotation(PRE_STOP_HANDLER_ANNOTATION),
            Some(r#"{"exec":{"command":["sleep","1"]}}"#)
        );
        assert_eq!(
            annotation(CONTAINER_PORTS_ANNOTATION),
            Some(r#"[{"containerPort":80}]"#)
        );
        assert!(annotation(CONTAINER_HASH_ANNOTATION).is_some());
        assert!(c.devices.is_empty());
    }
}
