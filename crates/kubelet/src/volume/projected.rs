//! `projected` volumes (upstream `pkg/volume/projected`): the files of several configMap, secret,
//! downwardAPI and serviceAccountToken sources merged into one directory (later sources win on
//! the same path). A token source's file holds a token of the pod's service account bound to
//! the pod, renewed as it ages ([`super::ObjectSource::service_account_token`]).
//! `clusterTrustBundle` sources are refused: this cluster does not serve them yet.

use k8s_openapi::api::core::v1::{Pod, ProjectedVolumeSource};

use super::atomic_writer::{file_mode, FileProjection, Payload};
use super::config_map::config_map_payload;
use super::downward_api::downward_api_payload;
use super::object_source::TokenFor;
use super::secret::secret_payload;
use super::{ObjectSource, VolumeError, VolumeManager, DEFAULT_FILE_MODE};

impl VolumeManager {
    /// The files of the projected volume `name`: refuses the sources this cluster does not serve
    /// before looking anything up, then merges the files of each source in order.
    pub(super) async fn projected_payload(
        &self,
        pod: &Pod,
        namespace: &str,
        name: &str,
        projected: &ProjectedVolumeSource,
        source: &dyn ObjectSource,
    ) -> Result<Payload, VolumeError> {
        let lookup_err = |source: VolumeError| VolumeError::Lookup {
            volume: name.to_string(),
            source: Box::new(source),
        };
        let mode = projected.default_mode.unwrap_or(DEFAULT_FILE_MODE);
        let sources = projected.sources.as_deref().unwrap_or_default();
        // Refuse before looking anything up, so nothing is half done.
        for projection in sources {
            let unsupported = if projection.cluster_trust_bundle.is_some() {
                Some("clusterTrustBundle")
            } else {
                None
            };
            if let Some(projection) = unsupported {
                return Err(VolumeError::UnsupportedProjection {
                    volume: name.to_string(),
                    projection,
                });
            }
        }
        // Later sources overwrite earlier ones on the same path, as upstream.
        let mut payload = Payload::new();
        for projection in sources {
            if let Some(config_map) = &projection.config_map {
                let optional = config_map.optional.unwrap_or(false);
                let object = source
                    .config_map(namespace, &config_map.name)
                    .await
                    .map_err(lookup_err)?;
                payload.extend(config_map_payload(
                    name,
                    &config_map.name,
                    object.as_ref(),
                    config_map.items.as_deref(),
                    mode,
                    optional,
                )?);
            }
            if let Some(secret) = &projection.secret {
                let optional = secret.optional.unwrap_or(false);
                let object = source
                    .secret(namespace, &secret.name)
                    .await
                    .map_err(lookup_err)?;
                payload.extend(secret_payload(
                    name,
                    &secret.name,
                    object.as_ref(),
                    secret.items.as_deref(),
                    mode,
                    optional,
                )?);
            }
            if let Some(token) = &projection.service_account_token {
                let spec = pod.spec.as_ref();
                let request = TokenFor {
                    namespace: namespace.to_string(),
                    service_account: spec
                        .and_then(|s| s.service_account_name.clone())
                        .filter(|n| !n.is_empty())
                        .unwrap_or_else(|| "default".to_string()),
                    audience: token.audience.clone().unwrap_or_default(),
                    expiration_seconds: token.expiration_seconds.unwrap_or(3600),
                    pod_name: pod.metadata.name.clone().unwrap_or_default(),
                    pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
                };
                let token_text = source
                    .service_account_token(&request)
                    .await
                    .map_err(lookup_err)?;
                payload.insert(
                    token.path.clone(),
                    FileProjection {
                        data: token_text.into_bytes(),
                        mode: file_mode(mode),
                    },
                );
            }
            if let Some(downward_api) = &projection.downward_api {
                let items = downward_api.items.as_deref().unwrap_or_default();
                payload.extend(downward_api_payload(
                    name,
                    pod,
                    items,
                    mode,
                    &self.node_allocatable,
                )?);
            }
        }
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::volume::testing::*;
    use crate::volume::{MountCall, StaticObjectSource};

    #[tokio::test]
    async fn projected_merges_sources_into_one_dir() {
        let f = fixture();
        let source = StaticObjectSource::new()
            .with_config_map(config_map(
                "conf",
                json!({"config.yaml": "x: 1", "other": "o"}),
            ))
            .with_secret(secret("creds", &[("token", b"t0k")]));
        let pod = pod(
            json!([{"name": "all-in-one", "projected": {"defaultMode": 0o440, "sources": [
                {"configMap": {"name": "conf", "items": [{"key": "config.yaml", "path": "conf/config.yaml"}]}},
                {"secret": {"name": "creds", "items": [{"key": "token", "path": "conf/token", "mode": 0o400}]}},
                {"secret": {"name": "missing", "optional": true}},
                {"downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
            ]}}]),
        );
        let volumes = f.manager.prepare(&pod, &source).await.expect("prepare");
        let dir = volume_dir(&f, "kubernetes.io~projected", "all-in-one");
        assert!(volumes["all-in-one"].read_only);
        assert_eq!(visible(&dir), ["conf", "labels"]);
        assert_eq!(read(&dir.join("conf/config.yaml")), "x: 1");
        assert_eq!(read(&dir.join("conf/token")), "t0k");
        assert_eq!(mode(&dir.join("conf/config.yaml")), 0o440);
        assert_eq!(mode(&dir.join("conf/token")), 0o400);
        assert_eq!(mode(&dir.join("labels")), 0o440);
        assert_eq!(
            f.mounter.calls(),
            vec![MountCall::MountTmpfs {
                target: dir,
                size_bytes: Some(8 << 30)
            }]
        );

        let missing = pod_with(
            json!([{"name": "p", "projected": {"sources": [{"configMap": {"name": "nope"}}]}}]),
            json!([{"name": "app"}]),
        );
        assert_eq!(
            prepare_err(&f, &missing, &source).await,
            "MountVolume.SetUp failed for volume \"p\" : configmap \"nope\" not found"
        );
    }

    #[tokio::test]
    async fn the_default_api_access_volume_gets_a_bound_token() {
        let f = fixture();
        let source = StaticObjectSource::new()
            .with_config_map(config_map("kube-root-ca.crt", json!({"ca.crt": "CA"})));
        let pod = pod(
            json!([{"name": "kube-api-access-x1y2z", "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}]),
        );
        let volumes = f.manager.prepare(&pod, &source).await.expect("prepared");
        let dir = std::path::PathBuf::from(&volumes["kube-api-access-x1y2z"].host_path);
        let read = |file: &str| std::fs::read_to_string(dir.join(file)).expect(file);
        assert_eq!(read("token"), "token:ns1/default@");
        assert_eq!(read("ca.crt"), "CA");
        assert_eq!(read("namespace"), "ns1");
        let requests = source.token_requests.lock().clone();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].expiration_seconds, 3607);
        assert_eq!(
            requests[0].pod_uid,
            pod.metadata.uid.clone().unwrap_or_default()
        );
    }

    #[tokio::test]
    async fn projected_trust_bundles_are_refused() {
        let f = fixture();
        let projection = json!({"clusterTrustBundle": {"path": "ca.crt", "name": "b"}});
        let pod = pod(json!([{"name": "kube-api-access", "projected": {"sources": [projection]}}]));
        assert_eq!(
            prepare_err(&f, &pod, &StaticObjectSource::new()).await,
            "MountVolume.SetUp failed for volume \"kube-api-access\" : projected clusterTrustBundle sources are not served by this cluster yet"
        );
        assert!(!f
            .manager
            .pod_volumes_dir(UID)
            .join("kubernetes.io~projected")
            .exists());
    }
}
