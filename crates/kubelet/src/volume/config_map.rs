//! `configMap` volumes (upstream `pkg/volume/configmap`): the configMap's `data` and
//! `binaryData` keys as files, all of them or the `items` listed, written by the AtomicWriter.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, KeyToPath};

use super::atomic_writer::{key_payload, Payload};
use super::VolumeError;

/// The files of a configMap (volume or projection): `data` and `binaryData` keys.
pub(super) fn config_map_payload(
    volume: &str,
    name: &str,
    config_map: Option<&ConfigMap>,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
    optional: bool,
) -> Result<Payload, VolumeError> {
    let Some(config_map) = config_map else {
        if optional {
            return Ok(Payload::new());
        }
        return Err(VolumeError::ConfigMapNotFound {
            volume: volume.to_string(),
            name: name.to_string(),
        });
    };
    let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (key, value) in config_map.binary_data.iter().flatten() {
        data.insert(key.clone(), value.0.clone());
    }
    // The API rejects a key in both; if one slips through, `data` wins as in upstream's lookup.
    for (key, value) in config_map.data.iter().flatten() {
        data.insert(key.clone(), value.clone().into_bytes());
    }
    key_payload(&data, items, default_mode, optional, |key| {
        VolumeError::ConfigMapKeyNotFound {
            volume: volume.to_string(),
            key: key.to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fs;
    use std::path::PathBuf;

    use serde_json::json;

    use crate::volume::testing::*;
    use crate::volume::StaticObjectSource;

    #[tokio::test]
    async fn config_map_writes_every_key_with_the_atomic_layout() {
        let f = fixture();
        let mut cm = config_map("conf", json!({"app.properties": "a=1", "b": "two"}));
        cm.binary_data = Some(BTreeMap::from([(
            "blob".to_string(),
            k8s_openapi::ByteString(vec![0, 159, 146, 150]),
        )]));
        let source = StaticObjectSource::new().with_config_map(cm);
        let pod = pod(json!([{"name": "config", "configMap": {"name": "conf"}}]));
        let volumes = f.manager.prepare(&pod, &source).await.expect("prepare");
        let dir = volume_dir(&f, "kubernetes.io~configmap", "config");
        assert_eq!(volumes["config"].host_path, dir.to_string_lossy());
        assert!(volumes["config"].read_only);
        assert_eq!(mode(&dir), 0o777);

        assert_eq!(visible(&dir), ["app.properties", "b", "blob"]);
        assert_eq!(read(&dir.join("app.properties")), "a=1");
        assert_eq!(fs::read(dir.join("blob")).expect("fs"), [0, 159, 146, 150]);
        assert_eq!(
            fs::read_link(dir.join("b")).expect("fs"),
            PathBuf::from("..data/b")
        );
        let ts = ts_dirs(&dir);
        assert_eq!(ts.len(), 1);
        assert!(ts[0].starts_with("..20"), "{ts:?}");
        assert_eq!(
            fs::read_link(dir.join("..data")).expect("fs"),
            PathBuf::from(&ts[0])
        );
        assert_eq!(mode(&dir.join(&ts[0])), 0o755);
        assert_eq!(mode(&dir.join("b")), 0o644);
        assert!(!dir.join("..data_tmp").exists());
    }

    #[tokio::test]
    async fn config_map_items_select_keys_with_paths_and_modes() {
        let f = fixture();
        let source = StaticObjectSource::new()
            .with_config_map(config_map("conf", json!({"a": "A", "b": "B", "c": "C"})));
        let pod = pod(json!([{"name": "config", "configMap": {
            "name": "conf",
            "defaultMode": 0o600,
            "items": [
                {"key": "a", "path": "top"},
                {"key": "b", "path": "nested/dir/b.txt", "mode": 0o400},
                {"key": "c", "path": "nested/c"},
            ],
        }}]));
        f.manager.prepare(&pod, &source).await.expect("prepare");
        let dir = volume_dir(&f, "kubernetes.io~configmap", "config");
        assert_eq!(visible(&dir), ["nested", "top"]);
        assert_eq!(read(&dir.join("top")), "A");
        assert_eq!(read(&dir.join("nested/dir/b.txt")), "B");
        assert_eq!(read(&dir.join("nested/c")), "C");
        assert_eq!(
            fs::read_link(dir.join("nested")).expect("fs"),
            PathBuf::from("..data/nested")
        );
        assert_eq!(mode(&dir.join("top")), 0o600);
        assert_eq!(mode(&dir.join("nested/dir/b.txt")), 0o400);
        assert_eq!(mode(&dir.join("nested/c")), 0o600);
    }

    #[tokio::test]
    async fn missing_config_map_and_keys() {
        let f = fixture();
        let empty = StaticObjectSource::new();
        let pod1 = pod(json!([{"name": "config", "configMap": {"name": "nope"}}]));
        assert_eq!(
            prepare_err(&f, &pod1, &empty).await,
            "MountVolume.SetUp failed for volume \"config\" : configmap \"nope\" not found"
        );

        let source =
            StaticObjectSource::new().with_config_map(config_map("conf", json!({"a": "A"})));
        let pod2 = pod(
            json!([{"name": "config", "configMap": {"name": "conf", "items": [
                {"key": "a", "path": "a"}, {"key": "missing", "path": "m"},
            ]}}]),
        );
        assert_eq!(
            prepare_err(&f, &pod2, &source).await,
            "MountVolume.SetUp failed for volume \"config\" : configmap references non-existent config key: missing"
        );
    }

    #[tokio::test]
    async fn optional_config_map_missing_object_or_key() {
        let f = fixture();
        let pod1 =
            pod(json!([{"name": "config", "configMap": {"name": "nope", "optional": true}}]));
        let volumes = f
            .manager
            .prepare(&pod1, &StaticObjectSource::new())
            .await
            .expect("prepare");
        let dir = volume_dir(&f, "kubernetes.io~configmap", "config");
        assert_eq!(volumes["config"].host_path, dir.to_string_lossy());
        assert!(visible(&dir).is_empty());
        assert!(dir.join("..data").is_dir());

        let source =
            StaticObjectSource::new().with_config_map(config_map("conf", json!({"a": "A"})));
        let pod2 = pod(
            json!([{"name": "config", "configMap": {"name": "conf", "optional": true, "items": [
                {"key": "a", "path": "a"}, {"key": "missing", "path": "m"},
            ]}}]),
        );
        f.manager.prepare(&pod2, &source).await.expect("prepare");
        assert_eq!(visible(&dir), ["a"]);

        // The object appears later: the next sync fills the volume.
        f.manager
            .prepare(
                &pod1,
                &StaticObjectSource::new().with_config_map(config_map("nope", json!({"x": "1"}))),
            )
            .await
            .expect("prepare");
        assert_eq!(visible(&dir), ["x"]);
    }
}
