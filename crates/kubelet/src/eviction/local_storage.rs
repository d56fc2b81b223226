//! Local storage limits (upstream's `localStorageEviction`, LocalStorageCapacityIsolation): at
//! every observation, whatever the node's thresholds, a pod is evicted at once when
//!
//! 1. an emptyDir volume holds more than its `sizeLimit`,
//! 2. the pod's ephemeral storage (containers' writable layers and logs, local volumes) is over
//!    the sum of its containers' `ephemeral-storage` limits, or
//! 3. a container's logs (and writable layer, unless images are on a filesystem of their own)
//!    are over its own `ephemeral-storage` limit,
//!
//! with upstream's message for the first that holds.

use ferry_api::resources::{pod_limits, Amount};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::stats::summary::{FsStats, PodStats};

/// The resource whose limits are checked.
const EPHEMERAL_STORAGE: &str = "ephemeral-storage";

/// Which limit a pod broke, for the eviction metric's signal label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// An emptyDir over its `sizeLimit` (`emptydirfs.limit`).
    EmptyDir,
    /// The pod over its containers' limits together (`ephemeralpodfs.limit`).
    Pod,
    /// A container over its own limit (`ephemeralcontainerfs.limit`).
    Container,
}

impl Violation {
    /// Upstream's signal name for the eviction metric.
    pub fn signal(self) -> &'static str {
        match self {
            Violation::EmptyDir => "emptydirfs.limit",
            Violation::Pod => "ephemeralpodfs.limit",
            Violation::Container => "ephemeralcontainerfs.limit",
        }
    }
}

fn used(fs: Option<&FsStats>) -> u64 {
    fs.and_then(|f| f.used_bytes).unwrap_or(0)
}

/// A positive limit, parsed.
fn positive(quantity: &Quantity) -> Option<Amount> {
    Amount::parse(&quantity.0).filter(|a| a.quantity.nanos() > 0)
}

/// Whether `bytes` are more than `limit`, exactly as upstream compares quantities.
fn over(bytes: u64, limit: &Amount) -> bool {
    i128::from(bytes) * 1_000_000_000 > limit.quantity.nanos()
}

/// The limit `pod` breaks, if any, and upstream's message for it. `dedicated_image_fs`: the
/// containers' writable layers are on the image filesystem, so only their logs count against
/// their own limits.
pub fn violation(
    pod: &Pod,
    stats: &PodStats,
    dedicated_image_fs: bool,
) -> Option<(Violation, String)> {
    let spec = pod.spec.as_ref()?;
    // 1. emptyDir volumes over their size limit.
    for volume in spec.volumes.iter().flatten() {
        let Some(limit) = volume
            .empty_dir
            .as_ref()
            .and_then(|e| e.size_limit.as_ref())
        else {
            continue;
        };
        let Some(limit) = positive(limit) else {
            continue;
        };
        let Some(usage) = stats.volume.iter().find(|v| v.name == volume.name) else {
            continue;
        };
        if over(used(Some(&usage.fs)), &limit) {
            let message = format!(
                "Usage of EmptyDir volume {:?} exceeds the limit {:?}. ",
                volume.name,
                limit.to_string()
            );
            return Some((Violation::EmptyDir, message));
        }
    }
    // 2. The pod over its containers' limits together.
    if let Some(limit) = pod_limits(spec, false).get(EPHEMERAL_STORAGE) {
        if over(used(stats.ephemeral_storage.as_ref()), limit) {
            let message = format!(
                "Pod ephemeral local storage usage exceeds the total limit of containers {limit}. "
            );
            return Some((Violation::Pod, message));
        }
    }
    // 3. A container over its own limit.
    for container in &stats.containers {
        let limit = spec
            .containers
            .iter()
            .find(|c| c.name == container.name)
            .and_then(|c| {
                c.resources
                    .as_ref()?
                    .limits
                    .as_ref()?
                    .get(EPHEMERAL_STORAGE)
            })
            .and_then(positive);
        let Some(limit) = limit else {
            continue;
        };
        let mut usage = used(container.logs.as_ref());
        if !dedicated_image_fs {
            usage += used(container.rootfs.as_ref());
        }
        if over(usage, &limit) {
            let message = format!(
                "Container {} exceeded its local ephemeral storage limit {:?}. ",
                container.name,
                limit.to_string()
            );
            return Some((Violation::Container, message));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::stats::summary::{ContainerStats, PodReference, VolumeStats};

    const MI: u64 = 1 << 20;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "uid": "p"}, "spec": spec}))
            .expect("pod")
    }

    fn fs(used: u64) -> Option<FsStats> {
        Some(FsStats {
            used_bytes: Some(used),
            ..Default::default()
        })
    }

    fn stats(volume: u64, rootfs: u64, logs: u64) -> PodStats {
        PodStats {
            pod_ref: PodReference {
                name: "p".into(),
                namespace: "default".into(),
                uid: "p".into(),
            },
            containers: vec![ContainerStats {
                name: "app".into(),
                rootfs: fs(rootfs),
                logs: fs(logs),
                ..Default::default()
            }],
            volume: vec![VolumeStats {
                fs: fs(volume).unwrap_or_default(),
                name: "cache".into(),
            }],
            ephemeral_storage: fs(volume + rootfs + logs),
            ..Default::default()
        }
    }

    fn with_limits(limits: serde_json::Value, size_limit: Option<&str>) -> Pod {
        let mut empty_dir = json!({});
        if let Some(size) = size_limit {
            empty_dir["sizeLimit"] = json!(size);
        }
        pod(json!({
            "volumes": [{"name": "cache", "emptyDir": empty_dir}],
            "containers": [{"name": "app", "resources": {"limits": limits}}]}))
    }

    #[test]
    fn an_empty_dir_over_its_size_limit() {
        let pod = with_limits(json!({}), Some("1Mi"));
        assert_eq!(violation(&pod, &stats(MI, 0, 0), false), None);
        assert_eq!(
            violation(&pod, &stats(2 * MI, 0, 0), false),
            Some((
                Violation::EmptyDir,
                "Usage of EmptyDir volume \"cache\" exceeds the limit \"1Mi\". ".into()
            ))
        );
        // No limit, or a zero one, limits nothing.
        assert_eq!(
            violation(&with_limits(json!({}), None), &stats(9 * MI, 0, 0), false),
            None
        );
        assert_eq!(
            violation(
                &with_limits(json!({}), Some("0")),
                &stats(9 * MI, 0, 0),
                false
            ),
            None
        );
    }

    #[test]
    fn a_pod_over_its_containers_limits() {
        let pod = pod(json!({
            "volumes": [{"name": "cache", "emptyDir": {}}],
            "containers": [
                {"name": "app", "resources": {"limits": {"ephemeral-storage": "2Mi"}}},
                {"name": "side", "resources": {"limits": {"ephemeral-storage": "1Mi"}}}]}));
        assert_eq!(violation(&pod, &stats(MI, MI / 2, 0), false), None);
        let (kind, message) = violation(&pod, &stats(3 * MI, MI / 2, 0), false).expect("over");
        assert_eq!(kind, Violation::Pod);
        assert_eq!(
            message,
            "Pod ephemeral local storage usage exceeds the total limit of containers 3Mi. "
        );
    }

    #[test]
    fn a_container_over_its_own_limit() {
        let pod = pod(json!({"containers": [
            {"name": "app", "resources": {"limits": {"ephemeral-storage": "1Mi"}}},
            {"name": "side", "resources": {"limits": {"ephemeral-storage": "10Mi"}}}]}));
        let mut over = stats(0, MI, MI / 2);
        over.ephemeral_storage = fs(0);
        assert_eq!(
            violation(&pod, &over, false),
            Some((
                Violation::Container,
                "Container app exceeded its local ephemeral storage limit \"1Mi\". ".into()
            ))
        );
        // With images on their own filesystem, only the logs count.
        assert_eq!(violation(&pod, &over, true), None);
    }
}
