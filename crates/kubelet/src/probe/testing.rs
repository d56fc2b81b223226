//! Test helpers shared by the probe tests: probes and containers from JSON, and a
//! [`FakeRuntime`] with a running container to exec in.

use k8s_openapi::api::core::v1::{Container, Probe};

use super::ProbeTarget;
use crate::runtime::fake::Call;
use crate::runtime::{image_spec, v1, FakeRuntime, Runtime};

pub(super) fn probe(value: serde_json::Value) -> Probe {
    serde_json::from_value(value).expect("probe")
}

pub(super) fn container(value: serde_json::Value) -> Container {
    serde_json::from_value(value).expect("container")
}

/// A fake runtime with one running container named `app`; returns its id.
pub(super) async fn running(fake: &FakeRuntime, name: &str) -> String {
    fake.add_image("busybox");
    let sandbox_config = v1::PodSandboxConfig {
        metadata: Some(v1::PodSandboxMetadata {
            name: "p".into(),
            uid: "uid-1".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        ..Default::default()
    };
    let sandbox = match fake.sandbox_ids().first() {
        Some(id) => id.clone(),
        None => fake
            .run_pod_sandbox(sandbox_config.clone(), "")
            .await
            .expect("sandbox"),
    };
    let config = v1::ContainerConfig {
        metadata: Some(v1::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(image_spec("busybox")),
        ..Default::default()
    };
    let id = fake
        .create_container(&sandbox, config, sandbox_config)
        .await
        .expect("create");
    fake.start_container(&id).await.expect("start");
    id
}

pub(super) fn target<'a>(
    fake: &'a FakeRuntime,
    id: &'a str,
    container: &'a Container,
) -> ProbeTarget<'a> {
    ProbeTarget {
        pod_ip: "127.0.0.1",
        container_id: id,
        container,
        runtime: fake,
    }
}

pub(super) fn exec_calls(fake: &FakeRuntime) -> Vec<(String, Vec<String>)> {
    fake.calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::ExecSync { container_id, cmd } => Some((container_id, cmd)),
            _ => None,
        })
        .collect()
}
