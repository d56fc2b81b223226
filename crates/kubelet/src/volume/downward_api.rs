//! `downwardAPI` volumes (upstream `pkg/volume/downwardapi`): files holding the pod's metadata
//! (`fieldRef`) and its containers' requests and limits (`resourceFieldRef`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, Pod, ResourceFieldSelector};

use super::atomic_writer::{file_mode, FileProjection, Payload};
use super::VolumeError;
use crate::downward::{format_map, go_quote, split_subscript, ResourceValueError};
use crate::quantity::Quantity;

/// Why an item of a downward API volume has no value (upstream's messages).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DownwardApiError {
    /// A `fieldRef` with a subscript on a field other than labels or annotations.
    #[error("fieldPath {} does not support subscript", go_quote(field_path))]
    SubscriptNotSupported {
        /// The field path as written, e.g. `metadata.name['x']`.
        field_path: String,
    },
    /// A `fieldRef` to a field volumes do not offer (only metadata; `spec.nodeName` and
    /// `status.podIP` are for env vars).
    #[error("unsupported fieldPath: {field_path}")]
    UnsupportedFieldPath {
        /// The field path as written.
        field_path: String,
    },
    /// A `resourceFieldRef` naming a container the pod does not have.
    #[error("container {container_name} not found")]
    ContainerNotFound {
        /// The `containerName` as written.
        container_name: String,
    },
    /// A `resourceFieldRef` whose resource or quantities are not usable.
    #[error(transparent)]
    Resource(#[from] ResourceValueError),
}

/// The files of a downward API volume or projection (upstream `downwardapi.CollectData`).
pub(super) fn downward_api_payload(
    volume: &str,
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: i32,
    node_allocatable: &BTreeMap<String, Quantity>,
) -> Result<Payload, VolumeError> {
    let fail = |source: DownwardApiError| VolumeError::DownwardApi {
        volume: volume.to_string(),
        source,
    };
    let mut payload = Payload::new();
    for item in items {
        let value = if let Some(field_ref) = &item.field_ref {
            field_path_value(pod, &field_ref.field_path).map_err(fail)?
        } else if let Some(resource_ref) = &item.resource_field_ref {
            resource_field_value(pod, resource_ref, node_allocatable).map_err(fail)?
        } else {
            String::new()
        };
        payload.insert(
            item.path.clone(),
            FileProjection {
                data: value.into_bytes(),
                mode: file_mode(item.mode.unwrap_or(default_mode)),
            },
        );
    }
    Ok(payload)
}

/// A `fieldRef` of a downward API volume (upstream `fieldpath.ExtractFieldPathAsString`: unlike
/// env vars, only metadata fields).
fn field_path_value(pod: &Pod, field_path: &str) -> Result<String, DownwardApiError> {
    let meta = &pod.metadata;
    if let Some((path, key)) = split_subscript(field_path) {
        let map = match path {
            "metadata.annotations" => &meta.annotations,
            "metadata.labels" => &meta.labels,
            _ => {
                return Err(DownwardApiError::SubscriptNotSupported {
                    field_path: field_path.to_string(),
                })
            }
        };
        return Ok(map
            .as_ref()
            .and_then(|m| m.get(key))
            .cloned()
            .unwrap_or_default());
    }
    Ok(match field_path {
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        _ => {
            return Err(DownwardApiError::UnsupportedFieldPath {
                field_path: field_path.to_string(),
            })
        }
    })
}

/// A `resourceFieldRef` of a downward API volume (upstream
/// `ExtractResourceValueByContainerNameAndNodeAllocatable`): the named container's value, see
/// [`crate::downward::container_resource_value`].
fn resource_field_value(
    pod: &Pod,
    selector: &ResourceFieldSelector,
    node_allocatable: &BTreeMap<String, Quantity>,
) -> Result<String, DownwardApiError> {
    let container_name = selector.container_name.as_deref().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let container = spec
        .into_iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .find(|c| c.name == container_name)
        .ok_or_else(|| DownwardApiError::ContainerNotFound {
            container_name: container_name.to_string(),
        })?;
    let value = crate::downward::container_resource_value(
        container,
        &selector.resource,
        selector.divisor.as_ref(),
        &|name| Ok(node_allocatable.get(name).copied()),
    )?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
    use serde_json::json;

    use super::*;
    use crate::volume::testing::*;
    use crate::volume::StaticObjectSource;

    fn resource_pod(items: serde_json::Value) -> Pod {
        pod_with(
            json!([{"name": "info", "downwardAPI": {"items": items}}]),
            json!([
                {"name": "app", "resources": {
                    "requests": {"cpu": "250m", "memory": "64Mi"},
                    "limits": {"cpu": "1500m", "memory": "128Mi", "ephemeral-storage": "0"},
                }},
                {"name": "bare"},
            ]),
        )
    }

    #[tokio::test]
    async fn downward_api_metadata_fields() {
        let f = fixture();
        let pod = pod(
            json!([{"name": "info", "downwardAPI": {"defaultMode": 0o640, "items": [
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}},
                {"path": "uid", "fieldRef": {"fieldPath": "metadata.uid"}, "mode": 0o600},
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
                {"path": "sub/app", "fieldRef": {"fieldPath": "metadata.labels['app']"}},
                {"path": "sub/none", "fieldRef": {"fieldPath": "metadata.annotations['none']"}},
            ]}}]),
        );
        let volumes = f
            .manager
            .prepare(&pod, &StaticObjectSource::new())
            .await
            .expect("prepare");
        assert!(volumes["info"].read_only);
        let dir = volume_dir(&f, "kubernetes.io~downward-api", "info");
        assert_eq!(read(&dir.join("name")), "web");
        assert_eq!(read(&dir.join("namespace")), "ns1");
        assert_eq!(read(&dir.join("uid")), UID);
        assert_eq!(
            read(&dir.join("labels")),
            "app=\"web\"\ntier=\"front \\\"end\\\"\""
        );
        assert_eq!(
            read(&dir.join("annotations")),
            "note=\"line1\\nline2\\tend\""
        );
        assert_eq!(read(&dir.join("sub/app")), "web");
        assert_eq!(read(&dir.join("sub/none")), "");
        assert_eq!(mode(&dir.join("name")), 0o640);
        assert_eq!(mode(&dir.join("uid")), 0o600);
        assert!(dir.join("..data").is_dir());

        // A label change reaches the file on the next sync.
        let mut changed = pod.clone();
        changed.metadata.labels = Some(BTreeMap::from([("app".into(), "api".into())]));
        f.manager
            .prepare(&changed, &StaticObjectSource::new())
            .await
            .expect("prepare");
        assert_eq!(read(&dir.join("labels")), "app=\"api\"");
        assert_eq!(ts_dirs(&dir).len(), 1);
    }

    #[test]
    fn downward_api_resources_round_up_and_default_to_allocatable() {
        let f = fixture();
        let cases = [
            ("app", "limits.cpu", None, "2"), // 1500m → 2 cores
            ("app", "limits.cpu", Some("1m"), "1500"),
            ("app", "requests.cpu", None, "1"), // 250m rounds up
            ("app", "requests.cpu", Some("100m"), "3"), // 2.5 → 3
            ("app", "limits.memory", None, "134217728"),
            ("app", "limits.memory", Some("1Mi"), "128"),
            ("app", "requests.memory", Some("1Mi"), "64"),
            ("app", "limits.ephemeral-storage", Some("1Gi"), "100"), // zero limit → allocatable
            ("app", "requests.ephemeral-storage", None, "0"),
            ("bare", "limits.cpu", Some("1m"), "4000"), // unset → allocatable
            ("bare", "limits.memory", Some("1Gi"), "8"),
            ("bare", "requests.memory", None, "0"),
            ("app", "limits.hugepages-2Mi", None, "0"),
        ];
        for (container, resource, divisor, want) in cases {
            let pod = resource_pod(json!([]));
            let selector = ResourceFieldSelector {
                container_name: Some(container.into()),
                resource: resource.into(),
                divisor: divisor.map(|d| ApiQuantity(d.into())),
            };
            assert_eq!(
                resource_field_value(&pod, &selector, &f.manager.node_allocatable)
                    .expect("resource value"),
                want,
                "{container} {resource} {divisor:?}"
            );
        }
    }

    #[test]
    fn downward_api_errors_say_which_item() {
        let pod = resource_pod(json!([]));
        assert_eq!(
            field_path_value(&pod, "spec.nodeName"),
            Err(DownwardApiError::UnsupportedFieldPath {
                field_path: "spec.nodeName".into()
            })
        );
        assert_eq!(
            field_path_value(&pod, "metadata.name['x']"),
            Err(DownwardApiError::SubscriptNotSupported {
                field_path: "metadata.name['x']".into()
            })
        );
        let selector = |container: &str, resource: &str| ResourceFieldSelector {
            container_name: Some(container.into()),
            resource: resource.into(),
            divisor: None,
        };
        let allocatable = BTreeMap::new();
        assert_eq!(
            resource_field_value(&pod, &selector("ghost", "limits.cpu"), &allocatable),
            Err(DownwardApiError::ContainerNotFound {
                container_name: "ghost".into()
            })
        );
        assert_eq!(
            resource_field_value(&pod, &selector("app", "limits.gpu"), &allocatable),
            Err(DownwardApiError::Resource(ResourceValueError::Unsupported(
                "limits.gpu".into()
            )))
        );
    }

    #[tokio::test]
    async fn downward_api_resource_file_and_errors() {
        let f = fixture();
        let pod = resource_pod(json!([
            {"path": "cpu", "resourceFieldRef": {"containerName": "app", "resource": "limits.cpu", "divisor": "1m"}},
        ]));
        f.manager
            .prepare(&pod, &StaticObjectSource::new())
            .await
            .expect("prepare");
        let dir = volume_dir(&f, "kubernetes.io~downward-api", "info");
        assert_eq!(read(&dir.join("cpu")), "1500");

        for (item, message) in [
            (
                json!({"path": "x", "resourceFieldRef": {"containerName": "ghost", "resource": "limits.cpu"}}),
                "container ghost not found",
            ),
            (
                json!({"path": "x", "resourceFieldRef": {"containerName": "app", "resource": "limits.gpu"}}),
                "unsupported container resource : limits.gpu",
            ),
            (
                json!({"path": "x", "fieldRef": {"fieldPath": "spec.nodeName"}}),
                "unsupported fieldPath: spec.nodeName",
            ),
            (
                json!({"path": "x", "fieldRef": {"fieldPath": "metadata.name['x']"}}),
                "fieldPath \"metadata.name['x']\" does not support subscript",
            ),
        ] {
            let pod = resource_pod(json!([item]));
            assert_eq!(
                prepare_err(&f, &pod, &StaticObjectSource::new()).await,
                format!("MountVolume.SetUp failed for volume \"info\" : {message}")
            );
        }
    }
}
