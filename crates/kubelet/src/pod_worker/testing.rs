//! Test fixtures shared by the pod worker tests: a [`PodWorker`] over a [`FakeRuntime`], a
//! fake API recording the statuses it posts and the deletes it finalizes, and shorthands to read
//! them back.

use std::sync::Arc;

use async_trait::async_trait;
use ferry_client::events::Recorder;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use parking_lot::Mutex;
use serde_json::json;

use super::{NodeContext, PodApi, PodWorker, Shared};
use crate::images::ImageManager;
use crate::podconfig::SandboxContext;
use crate::probe::ProbeManager;
use crate::runtime::fake::Call;
use crate::runtime::FakeRuntime;
use crate::volume::{StaticObjectSource, VolumeManager};

/// Records what the worker posts and deletes.
#[derive(Default)]
pub(super) struct FakeApi {
    pub(super) statuses: Mutex<Vec<PodStatus>>,
    pub(super) deletes: Mutex<u32>,
}

#[async_trait]
impl PodApi for FakeApi {
    async fn patch_status(&self, _pod: &Pod, status: &PodStatus) -> Result<(), kube::Error> {
        self.statuses.lock().push(status.clone());
        Ok(())
    }
    async fn finalize_delete(&self, _pod: &Pod) -> Result<(), kube::Error> {
        *self.deletes.lock() += 1;
        Ok(())
    }
}

pub(super) struct Fixture {
    pub(super) runtime: Arc<FakeRuntime>,
    pub(super) api: Arc<FakeApi>,
    pub(super) events: tokio::sync::mpsc::Receiver<ferry_client::events::Record>,
    pub(super) worker: PodWorker,
    pub(super) _dir: tempfile::TempDir,
}

pub(super) fn fixture(objects: StaticObjectSource) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = Arc::new(FakeRuntime::new());
    runtime.add_image("r/app:1");
    let api = Arc::new(FakeApi::default());
    let (recorder, events) = Recorder::for_tests();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let pods_dir = dir.path().join("pods");
    let shared = Arc::new(Shared {
        runtime: runtime.clone(),
        api: api.clone(),
        objects: Arc::new(objects),
        volumes: VolumeManager::new(pods_dir.clone()),
        images: ImageManager::default(),
        probes: ProbeManager::new(runtime.clone(), recorder.clone(), tx),
        recorder,
        pod_starts: tokio::sync::Semaphore::new(4),
        evictions: Default::default(),
        node: NodeContext {
            node_name: "n1".into(),
            node_ips: vec!["192.0.2.1".into()],
            sandbox: SandboxContext {
                pod_logs_root: dir.path().join("logs").to_string_lossy().into_owned(),
                cgroup_root: "/kubepods".into(),
                cluster_domain: "cluster.local".into(),
                ..Default::default()
            },
            pods_dir,
            ..Default::default()
        },
    });
    Fixture {
        worker: PodWorker::new(shared, "uid-1".into()),
        runtime,
        api,
        events,
        _dir: dir,
    }
}

pub(super) fn pod(spec: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "default", "uid": "uid-1"},
        "spec": spec,
    }))
    .expect("pod")
}

pub(super) fn created(runtime: &FakeRuntime) -> Vec<String> {
    runtime
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::CreateContainer { name, .. } => Some(name),
            _ => None,
        })
        .collect()
}

pub(super) fn last_status(api: &FakeApi) -> serde_json::Value {
    serde_json::to_value(api.statuses.lock().last().cloned().unwrap_or_default()).expect("json")
}

pub(super) fn reasons(
    events: &mut tokio::sync::mpsc::Receiver<ferry_client::events::Record>,
) -> Vec<String> {
    let mut out = vec![];
    while let Ok(e) = events.try_recv() {
        out.push(e.reason);
    }
    out
}

pub(super) fn image(name: &str) -> serde_json::Value {
    json!({"name": name, "image": "r/app:1", "imagePullPolicy": "IfNotPresent"})
}
