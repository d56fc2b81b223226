//! Image garbage collection (upstream's `pkg/kubelet/images/image_gc_manager.go`): the
//! kubelet remembers when it first saw each image and when a container last used it; when the
//! image filesystem is `--image-gc-high-threshold` percent full it removes unused images, the
//! least recently used first, until usage is back to `--image-gc-low-threshold`. Images in use
//! by any container (running or not), the sandbox image, and images younger than
//! `--image-minimum-gc-age` are never removed.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::runtime::{image_spec, v1, Runtime, RuntimeError};

/// The image GC flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageGcPolicy {
    /// `--image-gc-high-threshold` (85): usage percent that starts a collection.
    pub high_threshold_percent: u8,
    /// `--image-gc-low-threshold` (80): usage percent a collection brings it back to.
    pub low_threshold_percent: u8,
    /// `--image-minimum-gc-age` (2m): younger images are kept.
    pub min_age: Duration,
}

impl Default for ImageGcPolicy {
    fn default() -> Self {
        ImageGcPolicy {
            high_threshold_percent: 85,
            low_threshold_percent: 80,
            min_age: Duration::from_secs(120),
        }
    }
}

/// Why the policy is invalid (upstream's `NewImageGCManager` checks).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageGcError {
    /// A threshold over 100.
    #[error("invalid HighThresholdPercent {0}, must be in range [0-100]")]
    High(u8),
    /// A threshold over 100.
    #[error("invalid LowThresholdPercent {0}, must be in range [0-100]")]
    Low(u8),
    /// Low above high.
    #[error("LowThresholdPercent {0} can not be higher than HighThresholdPercent {1}")]
    LowAboveHigh(u8, u8),
}

impl ImageGcPolicy {
    /// Checks the thresholds.
    pub fn validate(&self) -> Result<(), ImageGcError> {
        if self.high_threshold_percent > 100 {
            return Err(ImageGcError::High(self.high_threshold_percent));
        }
        if self.low_threshold_percent > 100 {
            return Err(ImageGcError::Low(self.low_threshold_percent));
        }
        if self.low_threshold_percent > self.high_threshold_percent {
            return Err(ImageGcError::LowAboveHigh(
                self.low_threshold_percent,
                self.high_threshold_percent,
            ));
        }
        Ok(())
    }

    /// Upstream's `GarbageCollect` arithmetic: bytes to free when the filesystem of
    /// `capacity` with `available` left is at or over the high threshold; `None` otherwise.
    pub fn bytes_to_free(&self, capacity: u64, available: u64) -> Option<u64> {
        if capacity == 0 || available > capacity {
            return None;
        }
        let usage_percent = 100 - (available as u128 * 100 / capacity as u128) as u64;
        if usage_percent < u64::from(self.high_threshold_percent) {
            return None;
        }
        let target = capacity as u128 * u128::from(100 - self.low_threshold_percent) / 100;
        Some((target as u64).saturating_sub(available))
    }
}

/// What the collector knows of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageRecord {
    /// When it was first seen.
    pub first_detected: Instant,
    /// When a container last used it.
    pub last_used: Instant,
    /// Its size.
    pub size: u64,
    /// Never removed (the sandbox image, or pinned by the runtime).
    pub pinned: bool,
}

/// An image as listed, for [`detect`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedImage {
    /// Its id.
    pub id: String,
    /// Its size.
    pub size: u64,
    /// Never removed.
    pub pinned: bool,
}

/// Upstream's `detectImages`: records for the images present (new ones first detected `now`),
/// `now` as the last use of those in use, records of vanished images dropped.
pub fn detect(
    records: &mut HashMap<String, ImageRecord>,
    images: &[ListedImage],
    in_use: &HashSet<String>,
    now: Instant,
) {
    let present: HashSet<&str> = images.iter().map(|i| i.id.as_str()).collect();
    records.retain(|id, _| present.contains(id.as_str()));
    for image in images {
        let record = records.entry(image.id.clone()).or_insert(ImageRecord {
            first_detected: now,
            last_used: now,
            size: image.size,
            pinned: image.pinned,
        });
        record.size = image.size;
        record.pinned = image.pinned;
        if in_use.contains(&image.id) {
            record.last_used = now;
        }
    }
}

/// Upstream's `freeSpace`: the images to remove, least recently used first (then first
/// detected, then id), skipping those in use, pinned, or younger than `min_age`, until
/// `bytes_to_free` is reached.
pub fn plan_removal(
    records: &HashMap<String, ImageRecord>,
    in_use: &HashSet<String>,
    bytes_to_free: u64,
    min_age: Duration,
    now: Instant,
) -> Vec<String> {
    let mut candidates: Vec<(&String, &ImageRecord)> = records
        .iter()
        .filter(|(id, r)| !in_use.contains(*id) && !r.pinned)
        .collect();
    candidates.sort_by(|a, b| {
        (a.1.last_used, a.1.first_detected, a.0).cmp(&(b.1.last_used, b.1.first_detected, b.0))
    });
    let mut freed = 0u64;
    let mut out = vec![];
    for (id, record) in candidates {
        if freed >= bytes_to_free {
            break;
        }
        if now.saturating_duration_since(record.first_detected) < min_age {
            continue;
        }
        out.push(id.clone());
        freed = freed.saturating_add(record.size);
    }
    out
}

/// The image collector over a runtime.
#[derive(Debug)]
pub struct ImageGc {
    policy: ImageGcPolicy,
    /// Images never removed, by reference (the sandbox image).
    pinned_references: Vec<String>,
    records: Mutex<HashMap<String, ImageRecord>>,
}

impl ImageGc {
    /// A collector with `policy`, keeping the images named in `pinned_references`.
    pub fn new(policy: ImageGcPolicy, pinned_references: Vec<String>) -> Self {
        ImageGc {
            policy,
            pinned_references,
            records: Mutex::new(HashMap::new()),
        }
    }

    /// Lists images and containers and updates the records; returns the images in use.
    async fn observe(
        &self,
        runtime: &dyn Runtime,
        now: Instant,
    ) -> Result<HashSet<String>, RuntimeError> {
        let images = runtime.list_images(None).await?;
        let containers = runtime.list_containers(None).await?;
        let mut in_use = HashSet::new();
        for c in &containers {
            in_use.insert(c.image_ref.clone());
            if let Some(spec) = &c.image {
                // A reference or an id: resolve it to the id among the images.
                if let Some(image) = images.iter().find(|i| {
                    i.id == spec.image
                        || i.repo_tags.contains(&spec.image)
                        || i.repo_digests.contains(&spec.image)
                }) {
                    in_use.insert(image.id.clone());
                }
            }
        }
        let listed: Vec<ListedImage> = images
            .iter()
            .map(|i: &v1::Image| ListedImage {
                id: i.id.clone(),
                size: i.size,
                pinned: i.pinned
                    || i.repo_tags
                        .iter()
                        .any(|t| self.pinned_references.contains(t)),
            })
            .collect();
        detect(&mut self.records.lock(), &listed, &in_use, now);
        Ok(in_use)
    }

    /// Removes images to free `bytes_to_free`; returns the bytes freed.
    async fn free_space(
        &self,
        runtime: &dyn Runtime,
        bytes_to_free: u64,
        now: Instant,
    ) -> Result<u64, RuntimeError> {
        let in_use = self.observe(runtime, now).await?;
        let plan = plan_removal(
            &self.records.lock(),
            &in_use,
            bytes_to_free,
            self.policy.min_age,
            now,
        );
        let mut freed = 0;
        for id in plan {
            tracing::info!(image = %id, "image garbage collection: removing an unused image");
            runtime.remove_image(image_spec(&id)).await?;
            if let Some(record) = self.records.lock().remove(&id) {
                freed += record.size;
            }
        }
        Ok(freed)
    }

    /// One collection: frees space when the image filesystem (`capacity`, `available`) is over
    /// the high threshold. Returns the bytes freed.
    pub async fn garbage_collect(
        &self,
        runtime: &dyn Runtime,
        capacity: u64,
        available: u64,
        now: Instant,
    ) -> Result<u64, RuntimeError> {
        match self.policy.bytes_to_free(capacity, available) {
            Some(bytes) => self.free_space(runtime, bytes, now).await,
            None => {
                // Keep the last-used times current between collections.
                self.observe(runtime, now).await?;
                Ok(0)
            }
        }
    }

    /// Every unused image old enough (the eviction manager's reclaim).
    pub async fn delete_unused(
        &self,
        runtime: &dyn Runtime,
        now: Instant,
    ) -> Result<u64, RuntimeError> {
        self.free_space(runtime, u64::MAX, now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::FakeRuntime;

    const MB: u64 = 1 << 20;

    #[test]
    fn thresholds_as_upstreams_garbage_collect() {
        let policy = ImageGcPolicy::default();
        let cases = [
            ("under high", 1000, 200, None),
            ("at high", 1000, 150, Some(50)),
            ("over high", 1000, 100, Some(100)),
            ("full", 1000, 0, Some(200)),
            ("no capacity", 0, 0, None),
        ];
        for (name, capacity, available, want) in cases {
            assert_eq!(policy.bytes_to_free(capacity, available), want, "{name}");
        }
        assert_eq!(
            ImageGcPolicy {
                low_threshold_percent: 90,
                ..policy
            }
            .validate(),
            Err(ImageGcError::LowAboveHigh(90, 85))
        );
        assert!(policy.validate().is_ok());
    }

    #[test]
    fn removal_takes_the_least_recently_used_first_and_keeps_young_used_and_pinned() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let record = |first: u64, last: u64, size: u64, pinned: bool| ImageRecord {
            first_detected: at(first),
            last_used: at(last),
            size,
            pinned,
        };
        let records = HashMap::from([
            ("old-unused".to_string(), record(0, 10, 100 * MB, false)),
            ("older-unused".to_string(), record(0, 5, 100 * MB, false)),
            ("in-use".to_string(), record(0, 0, 500 * MB, false)),
            ("pause".to_string(), record(0, 0, MB, true)),
            ("young".to_string(), record(590, 590, 100 * MB, false)),
            ("recent".to_string(), record(0, 400, 100 * MB, false)),
        ]);
        let in_use = HashSet::from(["in-use".to_string()]);
        let now = at(600);
        let min_age = Duration::from_secs(120);
        let cases: [(&str, u64, Vec<&str>); 4] = [
            ("nothing to free", 0, vec![]),
            ("one image", 50 * MB, vec!["older-unused"]),
            ("two images", 150 * MB, vec!["older-unused", "old-unused"]),
            (
                "everything allowed",
                u64::MAX,
                vec!["older-unused", "old-unused", "recent"],
            ),
        ];
        for (name, bytes, want) in cases {
            assert_eq!(
                plan_removal(&records, &in_use, bytes, min_age, now),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn detection_keeps_first_seen_and_updates_last_used() {
        let t0 = Instant::now();
        let mut records = HashMap::new();
        let image = |id: &str| ListedImage {
            id: id.into(),
            size: 1,
            pinned: false,
        };
        detect(&mut records, &[image("a"), image("b")], &HashSet::new(), t0);
        let t1 = t0 + Duration::from_secs(60);
        detect(
            &mut records,
            &[image("a")],
            &HashSet::from(["a".to_string()]),
            t1,
        );
        assert_eq!(records.len(), 1, "b is gone");
        assert_eq!(records["a"].first_detected, t0);
        assert_eq!(records["a"].last_used, t1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_collection_removes_unused_images_through_cri() {
        let runtime = FakeRuntime::new();
        runtime.add_image_with_size("r/used:1", 300 * MB);
        runtime.add_image_with_size("r/unused:1", 200 * MB);
        runtime.add_image_with_size("r/pause:1", MB);
        // A container (exited or not) keeps its image.
        let config = v1::PodSandboxConfig {
            metadata: Some(v1::PodSandboxMetadata {
                name: "p".into(),
                namespace: "default".into(),
                uid: "u".into(),
                attempt: 0,
            }),
            ..Default::default()
        };
        let sandbox = runtime
            .run_pod_sandbox(config.clone(), "")
            .await
            .expect("sandbox");
        runtime
            .create_container(
                &sandbox,
                v1::ContainerConfig {
                    metadata: Some(v1::ContainerMetadata {
                        name: "c".into(),
                        attempt: 0,
                    }),
                    image: Some(image_spec("r/used:1")),
                    ..Default::default()
                },
                config,
            )
            .await
            .expect("container");
        let gc = ImageGc::new(ImageGcPolicy::default(), vec!["r/pause:1".into()]);
        let t0 = Instant::now();
        // First sight: too young to remove.
        assert_eq!(
            gc.garbage_collect(&runtime, 1000 * MB, 50 * MB, t0)
                .await
                .expect("gc"),
            0
        );
        let later = t0 + Duration::from_secs(180);
        let freed = gc
            .garbage_collect(&runtime, 1000 * MB, 50 * MB, later)
            .await
            .expect("gc");
        assert_eq!(freed, 200 * MB);
        assert_eq!(runtime.image_refs(), ["r/pause:1", "r/used:1"]);
        assert!(runtime
            .calls()
            .iter()
            .any(|c| matches!(c, crate::runtime::fake::Call::RemoveImage(_))));
    }
}
