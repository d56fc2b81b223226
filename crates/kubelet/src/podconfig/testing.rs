//! Test fixtures shared by the podconfig tests: pods from JSON, a sandbox context and a
//! container context with a node, configMaps, secrets and volumes, and shorthands for the
//! configs built from them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use serde_json::json;

use super::{
    container_config, container_env, sandbox_config, ConfigError, ContainerContext, SandboxContext,
    VolumeHostPath,
};
use crate::runtime::v1;

pub(super) fn pod(spec: serde_json::Value) -> Pod {
    pod_with(json!({}), spec)
}

pub(super) fn pod_with(metadata: serde_json::Value, spec: serde_json::Value) -> Pod {
    let mut meta = json!({"name": "web", "namespace": "ns", "uid": "u1"});
    if let (Some(m), Some(extra)) = (meta.as_object_mut(), metadata.as_object()) {
        m.extend(extra.clone());
    }
    serde_json::from_value(json!({"metadata": meta, "spec": spec})).expect("pod")
}

pub(super) fn one(container: serde_json::Value) -> Pod {
    pod(json!({"containers": [container]}))
}

pub(super) fn sandbox_ctx() -> SandboxContext {
    SandboxContext {
        attempt: 0,
        pod_logs_root: "/data/pods".into(),
        cgroup_root: "/kubepods".into(),
        cluster_domain: "cluster.local".into(),
        cluster_dns: vec!["10.43.0.10".into()],
        host_resolv_conf: Some(
            "# host\nnameserver 192.168.1.1\nnameserver 192.168.1.2\nsearch example.com corp.\noptions ndots:2 edns0\n"
                .into(),
        ),
        node_ips: vec!["192.168.1.10".into()],
    }
}

pub(super) fn container_ctx() -> ContainerContext {
    let mut ctx = ContainerContext {
        image_ref: "sha256:abc".into(),
        image_uid: Some(1000),
        pod_ips: vec!["10.42.0.5".into(), "fd00::5".into()],
        host_ips: vec!["192.168.1.10".into()],
        node_memory_capacity: 8 << 30,
        seccomp_profile_root: "/data/seccomp".into(),
        ..Default::default()
    };
    ctx.node_allocatable
        .insert("cpu".into(), ApiQuantity("4".into()));
    ctx.node_allocatable
        .insert("memory".into(), ApiQuantity("8Gi".into()));
    ctx.config_maps.insert(
        "cfg".into(),
        BTreeMap::from([
            ("A".to_string(), "from-cm".to_string()),
            ("B".to_string(), "b".to_string()),
        ]),
    );
    ctx.secrets.insert(
        "sec".into(),
        BTreeMap::from([("PASSWORD".to_string(), b"hunter2".to_vec())]),
    );
    ctx.volumes.insert(
        "data".into(),
        VolumeHostPath {
            host_path: "/data/pods/u1/volumes/data".into(),
            read_only: false,
        },
    );
    ctx.volumes.insert(
        "conf".into(),
        VolumeHostPath {
            host_path: "/data/pods/u1/volumes/conf".into(),
            read_only: true,
        },
    );
    ctx
}

pub(super) fn sandbox(pod: &Pod) -> v1::PodSandboxConfig {
    sandbox_config(pod, &sandbox_ctx()).expect("sandbox config")
}

pub(super) fn config(pod: &Pod) -> Result<v1::ContainerConfig, ConfigError> {
    let spec = pod.spec.clone().unwrap_or_default();
    container_config(pod, &spec.containers[0], &container_ctx())
}

pub(super) fn env_of(pod: &Pod) -> Result<Vec<(String, String)>, ConfigError> {
    let spec = pod.spec.clone().unwrap_or_default();
    container_env(pod, &spec.containers[0], &container_ctx())
}

pub(super) fn linux_sc(c: &v1::PodSandboxConfig) -> v1::LinuxSandboxSecurityContext {
    c.linux
        .clone()
        .and_then(|l| l.security_context)
        .expect("security context")
}
