//! `emptyDir` (upstream `pkg/volume/emptydir`): the volume directory itself (mode 0777), and the
//! tmpfs behind a `medium: Memory` emptyDir — and behind secret and projected volumes, which
//! upstream also keeps in memory — sized like upstream's `calculateEmptyDirMemorySize`.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use super::{io_err, VolumeError, VolumeManager};
use crate::quantity::Quantity;

impl VolumeManager {
    /// The size of a memory-backed volume (upstream `calculateEmptyDirMemorySize`): the node's
    /// allocatable memory, lowered to the pod's memory limit and then to the volume's
    /// `sizeLimit` when those are positive and smaller. `None` (the kernel's default) when none is
    /// known; unlike upstream, an unknown allocatable does not also disable the other two.
    pub(super) fn tmpfs_size(
        &self,
        volume: &str,
        pod: &Pod,
        size_limit: Option<&ApiQuantity>,
    ) -> Result<Option<i64>, VolumeError> {
        let mut size = self
            .node_allocatable
            .get("memory")
            .map(Quantity::value)
            .filter(|bytes| *bytes > 0);
        let mut lower_to = |candidate: i64| {
            if candidate > 0 && size.is_none_or(|current| candidate <= current) {
                size = Some(candidate);
            }
        };
        if let Some(limit) = pod_memory_limit(pod) {
            lower_to(limit);
        }
        if let Some(size_limit) = size_limit {
            let parsed =
                Quantity::from_api(size_limit).map_err(|err| VolumeError::InvalidSpec {
                    volume: volume.to_string(),
                    message: format!("invalid sizeLimit {:?}: {err}", size_limit.0),
                })?;
            lower_to(parsed.value());
        }
        Ok(size)
    }

    /// Creates the volume directory with mode 0777 (upstream emptyDir `setupDir`; chmod because
    /// of the umask) and, for a memory medium, mounts a tmpfs on it unless one is there already.
    pub(super) fn set_up_dir(
        &self,
        volume: &str,
        dir: &Path,
        tmpfs: Option<Option<i64>>,
    ) -> Result<(), VolumeError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o777)
            .create(dir)
            .map_err(io_err(volume, "create directory", dir))?;
        let Some(size_bytes) = tmpfs else {
            let mode = fs::metadata(dir)
                .map_err(io_err(volume, "stat", dir))?
                .permissions()
                .mode();
            if mode & 0o7777 != 0o777 {
                fs::set_permissions(dir, fs::Permissions::from_mode(0o777))
                    .map_err(io_err(volume, "chmod", dir))?;
            }
            return Ok(());
        };
        // Mountinfo shows canonical paths.
        let canonical = fs::canonicalize(dir).map_err(io_err(volume, "resolve", dir))?;
        let mounts = self
            .mounter
            .mount_points()
            .map_err(io_err(volume, "read mounts for", dir))?;
        let mounted = mounts
            .iter()
            .any(|m| m.path == canonical && m.fs_type == "tmpfs");
        if !mounted {
            fs::set_permissions(&canonical, fs::Permissions::from_mode(0o777))
                .map_err(io_err(volume, "chmod", dir))?;
            tracing::info!(volume, path = %canonical.display(), ?size_bytes, "mounting tmpfs");
            self.mounter
                .mount_tmpfs(&canonical, size_bytes)
                .map_err(io_err(volume, "mount tmpfs on", dir))?;
        }
        Ok(())
    }
}

/// The pod's memory limit as upstream `ResourceConfigForPod` sets it on the pod cgroup: only
/// when every container (init ones included) declares one; then the larger of the app
/// containers plus restartable (sidecar) init containers, and each plain init container plus the
/// sidecars started before it; plus the pod overhead.
fn pod_memory_limit(pod: &Pod) -> Option<i64> {
    let spec = pod.spec.as_ref()?;
    let limit = |container: &Container| -> Option<i64> {
        let quantity = container
            .resources
            .as_ref()?
            .limits
            .as_ref()?
            .get("memory")?;
        Quantity::from_api(quantity)
            .ok()
            .map(|q| q.value())
            .filter(|bytes| *bytes > 0)
    };
    let mut app = 0i64;
    for container in &spec.containers {
        app = app.saturating_add(limit(container)?);
    }
    let mut sidecars = 0i64;
    let mut init = 0i64;
    for container in spec.init_containers.iter().flatten() {
        let bytes = limit(container)?;
        if container.restart_policy.as_deref() == Some("Always") {
            sidecars = sidecars.saturating_add(bytes);
            init = init.max(sidecars);
        } else {
            init = init.max(sidecars.saturating_add(bytes));
        }
    }
    let overhead = spec
        .overhead
        .as_ref()
        .and_then(|o| o.get("memory"))
        .and_then(|q| Quantity::from_api(q).ok())
        .map_or(0, |q| q.value());
    Some(
        app.saturating_add(sidecars)
            .max(init)
            .saturating_add(overhead),
    )
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::PathBuf;

    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    use super::*;
    use crate::podconfig::VolumeHostPath;
    use crate::volume::testing::*;
    use crate::volume::{HostMounter, MountCall, MountPoint, Mounter, StaticObjectSource};

    #[tokio::test]
    async fn empty_dir_on_disk_is_a_0777_directory() {
        let f = fixture();
        let pod = pod(json!([{"name": "data", "emptyDir": {}}, {"name": "bare"}]));
        let volumes = f
            .manager
            .prepare(&pod, &StaticObjectSource::new())
            .await
            .expect("prepare");
        let dir = volume_dir(&f, "kubernetes.io~empty-dir", "data");
        assert_eq!(
            volumes["data"],
            VolumeHostPath {
                host_path: dir.to_string_lossy().into_owned(),
                read_only: false
            }
        );
        assert!(dir.is_dir());
        assert_eq!(mode(&dir), 0o777);
        // A volume without a source is an emptyDir (API defaulting).
        assert!(volume_dir(&f, "kubernetes.io~empty-dir", "bare").is_dir());
        assert!(f.mounter.calls().is_empty());

        // Idempotent, and contents survive.
        fs::write(dir.join("file"), "kept").expect("fs");
        f.manager
            .prepare(&pod, &StaticObjectSource::new())
            .await
            .expect("prepare");
        assert_eq!(read(&dir.join("file")), "kept");
    }

    #[tokio::test]
    async fn memory_empty_dir_mounts_a_tmpfs_once() {
        let f = fixture();
        let pod =
            pod(json!([{"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}]));
        let source = StaticObjectSource::new();
        f.manager.prepare(&pod, &source).await.expect("prepare");
        f.manager.prepare(&pod, &source).await.expect("prepare");
        let dir = volume_dir(&f, "kubernetes.io~empty-dir", "cache");
        assert_eq!(
            f.mounter.calls(),
            vec![MountCall::MountTmpfs {
                target: dir,
                size_bytes: Some(64 << 20)
            }]
        );
    }

    #[test]
    fn tmpfs_size_is_the_smallest_of_allocatable_pod_limit_and_size_limit() {
        let f = fixture();
        let limited =
            |limit: &str| json!([{"name": "app", "resources": {"limits": {"memory": limit}}}]);
        let size = |pod: &Pod, size_limit: Option<&str>| {
            let q = size_limit.map(|s| ApiQuantity(s.into()));
            f.manager.tmpfs_size("v", pod, q.as_ref()).expect("size")
        };
        // Only allocatable known.
        assert_eq!(size(&pod(json!([])), None), Some(8 << 30));
        // The pod's limit is lower.
        let p = pod_with(json!([]), limited("1Gi"));
        assert_eq!(size(&p, None), Some(1 << 30));
        // sizeLimit lower still; a larger sizeLimit does not raise it.
        assert_eq!(size(&p, Some("100Mi")), Some(100 << 20));
        assert_eq!(size(&p, Some("2Gi")), Some(1 << 30));
        // A container without a limit: no pod limit.
        let p = pod_with(
            json!([]),
            json!([{"name": "a", "resources": {"limits": {"memory": "1Gi"}}}, {"name": "b"}]),
        );
        assert_eq!(size(&p, None), Some(8 << 30));
        // Init containers: the larger of app sum and each init container.
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"uid": UID},
            "spec": {
                "containers": [{"name": "a", "resources": {"limits": {"memory": "1Gi"}}}],
                "initContainers": [{"name": "i", "resources": {"limits": {"memory": "3Gi"}}}],
            }
        }))
        .expect("valid object");
        assert_eq!(size(&p, None), Some(3 << 30));
        // No allocatable known: the other limits still apply.
        let bare = VolumeManager::new("/tmp/unused");
        assert_eq!(
            bare.tmpfs_size("v", &pod(json!([])), None).expect("size"),
            None
        );
        let q = ApiQuantity("10Mi".into());
        assert_eq!(
            bare.tmpfs_size("v", &pod(json!([])), Some(&q))
                .expect("size"),
            Some(10 << 20)
        );
    }

    #[tokio::test]
    async fn hugepages_medium_is_refused() {
        let f = fixture();
        let pod = pod(json!([{"name": "hp", "emptyDir": {"medium": "HugePages"}}]));
        assert_eq!(
            prepare_err(&f, &pod, &StaticObjectSource::new()).await,
            "MountVolume.SetUp failed for volume \"hp\" : emptyDir medium \"HugePages\" is not supported by this kubelet"
        );
    }

    /// Needs root: `cargo test -p ferry-kubelet --lib volume -- --ignored`.
    #[tokio::test]
    #[ignore = "mounts a tmpfs: needs root"]
    async fn memory_empty_dir_on_a_real_tmpfs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pods_dir = fs::canonicalize(dir.path()).expect("fs").join("pods");
        let manager = VolumeManager::new(&pods_dir);
        let pod =
            pod(json!([{"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}]));
        let volumes = manager
            .prepare(&pod, &StaticObjectSource::new())
            .await
            .expect("prepare");
        manager
            .prepare(&pod, &StaticObjectSource::new())
            .await
            .expect("prepare");
        let target = PathBuf::from(&volumes["cache"].host_path);
        let tmpfs: Vec<MountPoint> = HostMounter
            .mount_points()
            .expect("mounts")
            .into_iter()
            .filter(|m| m.path == target)
            .collect();
        assert_eq!(tmpfs.len(), 1, "mounted once: {tmpfs:?}");
        assert_eq!(tmpfs[0].fs_type, "tmpfs");
        // Size limit enforced.
        assert!(fs::write(target.join("big"), vec![0u8; 2 << 20]).is_err());

        manager.cleanup(UID).expect("cleanup");
        assert!(!manager.pod_dir(UID).exists());
        assert!(!HostMounter
            .mount_points()
            .expect("mounts")
            .iter()
            .any(|m| m.path == target));
    }
}
