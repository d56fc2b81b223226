//! The image manager: makes a container's image present according to its `imagePullPolicy`
//! (upstream `kuberuntime.imageManager.EnsureImageExists`), with upstream's events and pull
//! backoff: a failed pull is `ErrImagePull`, and until its backoff window (10 s, doubling to
//! 300 s, per pod and image) has passed the container waits in `ImagePullBackOff`.

use std::time::Instant as StdInstant;

use k8s_openapi::api::core::v1::{Container, ObjectReference};
use parking_lot::Mutex;

use crate::backoff::Backoff;
use crate::runtime::{image_spec, v1, Runtime};

/// Why an image is not there to run; the reason and message go into the container's waiting
/// state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageError {
    /// `ErrImagePull`, `ImagePullBackOff`, `ErrImageNeverPull` or `InvalidImageName`.
    pub reason: &'static str,
    /// Details, as upstream words them.
    pub message: String,
}

/// An event the manager wants recorded about the pod (the caller owns the recorder).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageEvent {
    /// `Normal` or `Warning`.
    pub warning: bool,
    /// `Pulling`, `Pulled`, `Failed`, `BackOff`, `ErrImageNeverPull`.
    pub reason: &'static str,
    /// Upstream's message.
    pub message: String,
}

/// Pull backoff per pod and image.
#[derive(Debug, Default)]
pub struct ImageManager {
    backoff: Mutex<Backoff>,
}

/// The pull policy in effect: the spec's, or the API default (Always for `:latest` or no tag,
/// IfNotPresent otherwise) if it is somehow unset.
pub fn pull_policy(container: &Container) -> &str {
    if let Some(policy) = container.image_pull_policy.as_deref() {
        return policy;
    }
    let image = container.image.as_deref().unwrap_or_default();
    let last = image.rsplit('/').next().unwrap_or_default();
    let untagged_or_latest =
        !image.contains('@') && last.split_once(':').is_none_or(|(_, tag)| tag == "latest");
    if untagged_or_latest {
        "Always"
    } else {
        "IfNotPresent"
    }
}

impl ImageManager {
    /// Makes `container`'s image present; returns the image reference to create the container
    /// with. `events` receives what to record, in order.
    pub async fn ensure_image(
        &self,
        runtime: &dyn Runtime,
        pod_uid: &str,
        container: &Container,
        sandbox_config: &v1::PodSandboxConfig,
        events: &mut Vec<ImageEvent>,
    ) -> Result<String, ImageError> {
        let image = container.image.clone().unwrap_or_default();
        if image.is_empty() {
            return Err(ImageError {
                reason: "InvalidImageName",
                message: "Failed to apply default image tag \"\": couldn't parse image name \"\": invalid reference format".into(),
            });
        }
        let spec = image_spec(&image);
        let present = match runtime.image_status(spec.clone()).await {
            Ok(image) => image,
            Err(e) => {
                tracing::debug!(%image, error = %e, "image status");
                None
            }
        };
        let policy = pull_policy(container);
        let mut event = |warning, reason, message: String| {
            events.push(ImageEvent {
                warning,
                reason,
                message,
            })
        };
        if policy != "Always" {
            if let Some(found) = &present {
                event(
                    false,
                    "Pulled",
                    format!("Container image \"{image}\" already present on machine"),
                );
                return Ok(found.id.clone());
            }
            if policy == "Never" {
                let message =
                    format!("Container image \"{image}\" is not present with pull policy of Never");
                event(true, "ErrImageNeverPull", message.clone());
                return Err(ImageError {
                    reason: "ErrImageNeverPull",
                    message,
                });
            }
        }
        let key = format!("{pod_uid}_{image}");
        if self.backoff.lock().in_backoff(&key) {
            let message = format!("Back-off pulling image \"{image}\"");
            event(false, "BackOff", message.clone());
            return Err(ImageError {
                reason: "ImagePullBackOff",
                message,
            });
        }
        event(false, "Pulling", format!("Pulling image \"{image}\""));
        let started = StdInstant::now();
        match runtime
            .pull_image(spec.clone(), None, Some(sandbox_config.clone()))
            .await
        {
            Ok(image_ref) => {
                self.backoff.lock().reset(&key);
                let took = go_duration_ms(started.elapsed());
                let size = match runtime.image_status(spec).await {
                    Ok(Some(found)) => found.size,
                    _ => 0,
                };
                event(
                    false,
                    "Pulled",
                    format!(
                        "Successfully pulled image \"{image}\" in {took} ({took} including waiting). Image size: {size} bytes."
                    ),
                );
                Ok(image_ref)
            }
            Err(e) => {
                self.backoff.lock().next(&key);
                event(
                    true,
                    "Failed",
                    format!("Failed to pull image \"{image}\": {e}"),
                );
                Err(ImageError {
                    reason: "ErrImagePull",
                    message: e.to_string(),
                })
            }
        }
    }

    /// Forgets a pod's backoff windows (it is gone).
    pub fn forget_pod(&self, pod_uid: &str) {
        self.backoff.lock().reset_prefix(&format!("{pod_uid}_"));
    }
}

/// A duration as Go prints one truncated to milliseconds (`523ms`, `1.234s`, `1m2.5s`), as
/// upstream's pull messages do.
pub fn go_duration_ms(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (minutes, rest) = (ms / 60_000, ms % 60_000);
    let seconds = format!("{}.{:03}", rest / 1000, rest % 1000);
    let seconds = seconds.trim_end_matches('0').trim_end_matches('.');
    if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// The `involvedObject` for an event about one of the pod's containers (upstream's fieldPath
/// `spec.containers{name}` / `spec.initContainers{name}`).
pub fn container_reference(pod: &ObjectReference, container: &str, init: bool) -> ObjectReference {
    let list = if init { "initContainers" } else { "containers" };
    ObjectReference {
        field_path: Some(format!("spec.{list}{{{container}}}")),
        ..pod.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{FakeRuntime, RuntimeError};
    use std::time::Duration;

    fn container(image: &str, policy: Option<&str>) -> Container {
        Container {
            name: "c".into(),
            image: Some(image.into()),
            image_pull_policy: policy.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn durations_print_as_go_does() {
        let ms = std::time::Duration::from_millis;
        assert_eq!(go_duration_ms(ms(523)), "523ms");
        assert_eq!(go_duration_ms(ms(1234)), "1.234s");
        assert_eq!(go_duration_ms(ms(2000)), "2s");
        assert_eq!(go_duration_ms(ms(62_500)), "1m2.5s");
    }

    #[test]
    fn default_policy_follows_the_tag() {
        assert_eq!(pull_policy(&container("busybox", None)), "Always");
        assert_eq!(pull_policy(&container("busybox:latest", None)), "Always");
        assert_eq!(
            pull_policy(&container("127.0.0.1:5000/busybox", None)),
            "Always"
        );
        assert_eq!(
            pull_policy(&container("127.0.0.1:5000/busybox:1", None)),
            "IfNotPresent"
        );
        assert_eq!(
            pull_policy(&container("busybox@sha256:abc", None)),
            "IfNotPresent"
        );
        assert_eq!(pull_policy(&container("busybox:1", Some("Never"))), "Never");
    }

    fn reasons(events: &[ImageEvent]) -> Vec<&str> {
        events.iter().map(|e| e.reason).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn present_image_is_not_pulled_unless_always() {
        let runtime = FakeRuntime::new();
        let id = runtime.add_image("r/app:1");
        let manager = ImageManager::default();
        let sandbox = v1::PodSandboxConfig::default();
        let mut events = vec![];
        let got = manager
            .ensure_image(
                &runtime,
                "u",
                &container("r/app:1", None),
                &sandbox,
                &mut events,
            )
            .await;
        assert_eq!(got, Ok(id));
        assert_eq!(reasons(&events), ["Pulled"]);
        assert!(events[0].message.contains("already present on machine"));

        events.clear();
        let got = manager
            .ensure_image(
                &runtime,
                "u",
                &container("r/app:1", Some("Always")),
                &sandbox,
                &mut events,
            )
            .await;
        assert!(got.is_ok());
        assert_eq!(reasons(&events), ["Pulling", "Pulled"]);
        assert!(events[1]
            .message
            .starts_with("Successfully pulled image \"r/app:1\" in "));
    }

    #[tokio::test(start_paused = true)]
    async fn never_pull_of_a_missing_image() {
        let runtime = FakeRuntime::new();
        let manager = ImageManager::default();
        let mut events = vec![];
        let got = manager
            .ensure_image(
                &runtime,
                "u",
                &container("r/missing:1", Some("Never")),
                &v1::PodSandboxConfig::default(),
                &mut events,
            )
            .await;
        let err = got.expect_err("not present");
        assert_eq!(err.reason, "ErrImageNeverPull");
        assert_eq!(
            err.message,
            "Container image \"r/missing:1\" is not present with pull policy of Never"
        );
        assert!(runtime
            .calls()
            .iter()
            .all(|c| !matches!(c, crate::runtime::fake::Call::PullImage(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn failed_pulls_back_off_doubling() {
        let runtime = FakeRuntime::new();
        runtime.fail_pull(
            "r/missing:1",
            RuntimeError::NotFound("r/missing:1: not found".into()),
        );
        let manager = ImageManager::default();
        let c = container("r/missing:1", None);
        let sandbox = v1::PodSandboxConfig::default();
        let mut events = vec![];
        async fn try_pull(
            manager: &ImageManager,
            runtime: &FakeRuntime,
            c: &Container,
            sandbox: &v1::PodSandboxConfig,
            events: &mut Vec<ImageEvent>,
        ) -> &'static str {
            manager
                .ensure_image(runtime, "u", c, sandbox, events)
                .await
                .expect_err("fails")
                .reason
        }
        macro_rules! attempt {
            ($events:expr) => {
                try_pull(&manager, &runtime, &c, &sandbox, $events)
            };
        }
        assert_eq!(attempt!(&mut events).await, "ErrImagePull");
        assert_eq!(reasons(&events), ["Pulling", "Failed"]);
        assert_eq!(
            events[1].message,
            "Failed to pull image \"r/missing:1\": not found: r/missing:1: not found"
        );
        events.clear();
        assert_eq!(attempt!(&mut events).await, "ImagePullBackOff");
        assert_eq!(reasons(&events), ["BackOff"]);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(attempt!(&mut events).await, "ErrImagePull");
        // The window doubled: still backing off after 10 s, not after 20 s.
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(attempt!(&mut events).await, "ImagePullBackOff");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(attempt!(&mut events).await, "ErrImagePull");
        // Another pod has its own window.
        let mut other = vec![];
        let got = manager
            .ensure_image(&runtime, "v", &c, &sandbox, &mut other)
            .await;
        assert_eq!(got.expect_err("fails").reason, "ErrImagePull");
        // Once the image exists, the next try after the window succeeds and resets it.
        runtime.clear_pull_failure("r/missing:1");
        tokio::time::advance(Duration::from_secs(40)).await;
        events.clear();
        assert!(manager
            .ensure_image(&runtime, "u", &c, &sandbox, &mut events)
            .await
            .is_ok());
        manager.forget_pod("u");
    }
}
