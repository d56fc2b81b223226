//! Test fixtures shared by the volume tests: a pod with given volumes, configMaps and secrets,
//! and a [`VolumeManager`] over a temporary `pods` directory mounting through a [`FakeMounter`].

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use serde_json::json;

use super::{FakeMounter, StaticObjectSource, VolumeManager};
use crate::quantity::Quantity;

pub(super) const UID: &str = "0d1e5c2a-uid";

pub(super) fn pod(volumes: serde_json::Value) -> Pod {
    pod_with(volumes, json!([{"name": "app", "image": "busybox"}]))
}

pub(super) fn pod_with(volumes: serde_json::Value, containers: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {
            "name": "web", "namespace": "ns1", "uid": UID,
            "labels": {"app": "web", "tier": "front \"end\""},
            "annotations": {"note": "line1\nline2\tend"},
        },
        "spec": {"containers": containers, "volumes": volumes},
    }))
    .expect("valid object")
}

pub(super) fn config_map(name: &str, data: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "ns1"},
        "data": data,
    }))
    .expect("valid object")
}

pub(super) fn secret(name: &str, data: &[(&str, &[u8])]) -> Secret {
    let mut secret = Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns1".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    secret.data = Some(
        data.iter()
            .map(|(k, v)| (k.to_string(), k8s_openapi::ByteString(v.to_vec())))
            .collect(),
    );
    secret
}

pub(super) struct Fixture {
    pub(super) _dir: tempfile::TempDir,
    pub(super) mounter: Arc<FakeMounter>,
    pub(super) manager: VolumeManager,
}

pub(super) fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    // Canonical, so paths compare equal to what the (fake) mount table records.
    let pods_dir = fs::canonicalize(dir.path()).expect("fs").join("pods");
    let mounter = Arc::new(FakeMounter::new());
    let manager = VolumeManager::new(pods_dir)
        .with_mounter(mounter.clone())
        .with_node_allocatable(BTreeMap::from([
            ("cpu".to_string(), Quantity::parse("4").expect("quantity")),
            (
                "memory".to_string(),
                Quantity::parse("8Gi").expect("quantity"),
            ),
            (
                "ephemeral-storage".to_string(),
                Quantity::parse("100Gi").expect("quantity"),
            ),
        ]));
    Fixture {
        _dir: dir,
        mounter,
        manager,
    }
}

pub(super) fn volume_dir(f: &Fixture, plugin: &str, name: &str) -> PathBuf {
    f.manager.pod_volumes_dir(UID).join(plugin).join(name)
}

pub(super) fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("fs").mode() & 0o7777
}

pub(super) fn read(path: &Path) -> String {
    fs::read_to_string(path).expect("fs")
}

/// The `..`-prefixed directories of a volume (timestamped versions).
pub(super) fn ts_dirs(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("fs")
        .map(|e| e.expect("dir entry"))
        .filter(|e| e.file_type().expect("file type").is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".."))
        .collect();
    names.sort();
    names
}

/// The visible (non-`..`) names of a volume directory.
pub(super) fn visible(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("fs")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| !n.starts_with(".."))
        .collect();
    names.sort();
    names
}

pub(super) async fn prepare_err(f: &Fixture, pod: &Pod, source: &StaticObjectSource) -> String {
    f.manager
        .prepare(pod, source)
        .await
        .expect_err("must fail")
        .to_string()
}
