//! `secret` volumes (upstream `pkg/volume/secret`): the secret's keys as files, all of them or
//! the `items` listed, written by the AtomicWriter on a tmpfs so secret bytes never reach the
//! node's disk.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{KeyToPath, Secret};

use super::atomic_writer::{key_payload, Payload};
use super::VolumeError;

/// The files of a secret (volume or projection).
pub(super) fn secret_payload(
    volume: &str,
    name: &str,
    secret: Option<&Secret>,
    items: Option<&[KeyToPath]>,
    default_mode: i32,
    optional: bool,
) -> Result<Payload, VolumeError> {
    let Some(secret) = secret else {
        if optional {
            return Ok(Payload::new());
        }
        return Err(VolumeError::SecretNotFound {
            volume: volume.to_string(),
            name: name.to_string(),
        });
    };
    let mut data: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(key, value)| (key.clone(), value.0.clone()))
        .collect();
    // `stringData` is write-only: the API server merges it into `data` (overriding). Honour it
    // in case an object reaches us unconverted.
    for (key, value) in secret.string_data.iter().flatten() {
        data.insert(key.clone(), value.clone().into_bytes());
    }
    key_payload(&data, items, default_mode, optional, |key| {
        VolumeError::SecretKeyNotFound {
            volume: volume.to_string(),
            key: key.to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fs;

    use serde_json::json;

    use crate::volume::testing::*;
    use crate::volume::{MountCall, StaticObjectSource};

    #[tokio::test]
    async fn secret_volume_on_tmpfs_with_modes() {
        let f = fixture();
        let source = StaticObjectSource::new().with_secret(secret(
            "creds",
            &[("user", b"admin"), ("pass", b"\x00s3cret")],
        ));
        let pod = pod(json!([
            {"name": "all", "secret": {"secretName": "creds"}},
            {"name": "some", "secret": {"secretName": "creds", "defaultMode": 0o400,
                "items": [{"key": "pass", "path": "p/pass"}, {"key": "user", "path": "u", "mode": 0o444}]}},
        ]));
        let volumes = f.manager.prepare(&pod, &source).await.expect("prepare");
        let all = volume_dir(&f, "kubernetes.io~secret", "all");
        let some = volume_dir(&f, "kubernetes.io~secret", "some");
        assert!(volumes["all"].read_only);
        assert_eq!(visible(&all), ["pass", "user"]);
        assert_eq!(fs::read(all.join("pass")).expect("fs"), b"\x00s3cret");
        assert_eq!(mode(&all.join("user")), 0o644);
        assert_eq!(read(&some.join("u")), "admin");
        assert_eq!(mode(&some.join("u")), 0o444);
        assert_eq!(mode(&some.join("p/pass")), 0o400);
        // Both on a tmpfs sized to the node's allocatable memory.
        assert_eq!(
            f.mounter.calls(),
            vec![
                MountCall::MountTmpfs {
                    target: all,
                    size_bytes: Some(8 << 30)
                },
                MountCall::MountTmpfs {
                    target: some,
                    size_bytes: Some(8 << 30)
                },
            ]
        );
        f.manager.prepare(&pod, &source).await.expect("prepare");
        assert_eq!(f.mounter.calls().len(), 2, "no second mount");
    }

    #[tokio::test]
    async fn secret_string_data_is_honoured() {
        let f = fixture();
        let mut s = secret("creds", &[("a", b"from-data")]);
        s.string_data = Some(BTreeMap::from([(
            "b".to_string(),
            "from-string".to_string(),
        )]));
        let source = StaticObjectSource::new().with_secret(s);
        let pod = pod(json!([{"name": "s", "secret": {"secretName": "creds"}}]));
        f.manager.prepare(&pod, &source).await.expect("prepare");
        let dir = volume_dir(&f, "kubernetes.io~secret", "s");
        assert_eq!(read(&dir.join("a")), "from-data");
        assert_eq!(read(&dir.join("b")), "from-string");
    }

    #[tokio::test]
    async fn missing_and_optional_secrets() {
        let f = fixture();
        let empty = StaticObjectSource::new();
        let pod1 = pod(json!([{"name": "s", "secret": {"secretName": "nope"}}]));
        assert_eq!(
            prepare_err(&f, &pod1, &empty).await,
            "MountVolume.SetUp failed for volume \"s\" : secret \"nope\" not found"
        );
        let source = StaticObjectSource::new().with_secret(secret("creds", &[("a", b"1")]));
        let pod2 = pod(
            json!([{"name": "s", "secret": {"secretName": "creds", "items": [{"key": "zz", "path": "zz"}]}}]),
        );
        assert_eq!(
            prepare_err(&f, &pod2, &source).await,
            "MountVolume.SetUp failed for volume \"s\" : secret references non-existent secret key: zz"
        );
        let pod3 = pod(json!([
            {"name": "s", "secret": {"secretName": "creds", "optional": true, "items": [{"key": "zz", "path": "zz"}, {"key": "a", "path": "a"}]}},
            {"name": "t", "secret": {"secretName": "nope", "optional": true}},
        ]));
        f.manager.prepare(&pod3, &source).await.expect("prepare");
        assert_eq!(visible(&volume_dir(&f, "kubernetes.io~secret", "s")), ["a"]);
        assert!(visible(&volume_dir(&f, "kubernetes.io~secret", "t")).is_empty());
    }
}
