//! The image manager: makes a container's image present according to its `imagePullPolicy`
//! (upstream `kuberuntime.imageManager.EnsureImageExists`), with upstream's events and pull
//! backoff: a failed pull is `ErrImagePull`, and until its backoff window (10 s, doubling to
//! 300 s, per pod and image) has passed the container waits in `ImagePullBackOff`.

use std::time::Instant as StdInstant;

use k8s_openapi::api::core::v1::{Container, ObjectReference};
use parking_lot::Mutex;
use tracing::Instrument;

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
    /// with. `events` receives what to record, in order. `step` makes the journey step
    /// `image pulled` (with an `image` field, and a `present` one declared empty): the pull
    /// runs in it, and an image already present is recorded as `present = true`; a pull in
    /// backoff or not allowed is no step.
    #[allow(clippy::too_many_arguments)]
    pub async fn ensure_image(
        &self,
        runtime: &dyn Runtime,
        pod_uid: &str,
        container: &Container,
        sandbox_config: &v1::PodSandboxConfig,
        credentials: &[v1::AuthConfig],
        events: &mut Vec<ImageEvent>,
        step: &(dyn Fn() -> tracing::Span + Sync),
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
                step().record("present", true);
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
        let span = step();
        let started = StdInstant::now();
        // Each matching pull secret in turn, as upstream; anonymous without one.
        let mut pulled = Err(crate::runtime::RuntimeError::InvalidResponse(
            "no pull attempted".into(),
        ));
        let attempts: Vec<Option<v1::AuthConfig>> = if credentials.is_empty() {
            vec![None]
        } else {
            credentials.iter().cloned().map(Some).collect()
        };
        for auth in attempts {
            pulled = runtime
                .pull_image(spec.clone(), auth, Some(sandbox_config.clone()))
                .instrument(span.clone())
                .await;
            if pulled.is_ok() {
                break;
            }
        }
        match pulled {
            Ok(image_ref) => {
                self.backoff.lock().reset(&key);
                let took = ferry_api::duration::format_go(std::time::Duration::from_millis(
                    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                ));
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
                ferry_journey::fail(&span, &e);
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

/// The registry host of an image reference (`docker.io` when it names none), as the
/// credential lookup keys it.
pub fn registry_host(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            normalize_registry(first)
        }
        _ => "docker.io".to_string(),
    }
}

/// A docker config key (`https://index.docker.io/v1/`, `registry.example:5000`, ...) as a host.
fn normalize_registry(key: &str) -> String {
    let host = key
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default();
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        other => other.to_string(),
    }
}

/// The credentials for `image` in the pod's image pull secrets (`kubernetes.io/dockerconfigjson`
/// with `.dockerconfigjson`, or the legacy `.dockercfg`), in the order the secrets are given
/// (upstream tries each, then gives up).
pub fn pull_credentials(
    image: &str,
    secrets: &[k8s_openapi::api::core::v1::Secret],
) -> Vec<v1::AuthConfig> {
    let host = registry_host(image);
    let mut out = vec![];
    for secret in secrets {
        let data = secret.data.clone().unwrap_or_default();
        let auths = if let Some(json) = data.get(".dockerconfigjson") {
            serde_json::from_slice::<serde_json::Value>(&json.0)
                .ok()
                .and_then(|v| v.get("auths").cloned())
        } else if let Some(json) = data.get(".dockercfg") {
            serde_json::from_slice::<serde_json::Value>(&json.0).ok()
        } else {
            None
        };
        let Some(serde_json::Value::Object(auths)) = auths else {
            continue;
        };
        for (key, entry) in auths {
            if normalize_registry(&key) != host {
                continue;
            }
            let field = |name: &str| {
                entry
                    .get(name)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            out.push(v1::AuthConfig {
                username: field("username"),
                password: field("password"),
                auth: field("auth"),
                server_address: host.clone(),
                identity_token: field("identitytoken"),
                registry_token: field("registrytoken"),
            });
        }
    }
    out
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
    fn pull_secrets_match_the_image_registry() {
        let secret = |key: &str, json: serde_json::Value| -> k8s_openapi::api::core::v1::Secret {
            let mut data = std::collections::BTreeMap::new();
            data.insert(
                key.to_string(),
                k8s_openapi::ByteString(serde_json::to_vec(&json).expect("json")),
            );
            k8s_openapi::api::core::v1::Secret {
                data: Some(data),
                ..Default::default()
            }
        };
        let secrets = [
            secret(
                ".dockerconfigjson",
                serde_json::json!({"auths": {
                    "https://index.docker.io/v1/": {"auth": "aHViOnB3"},
                    "registry.example:5000": {"username": "u", "password": "p"},
                }}),
            ),
            secret(
                ".dockercfg",
                serde_json::json!({"registry.example:5000": {"auth": "dTI6cDI="}}),
            ),
        ];
        assert_eq!(registry_host("busybox"), "docker.io");
        assert_eq!(registry_host("library/busybox:1"), "docker.io");
        assert_eq!(registry_host("127.0.0.1:5000/busybox:1"), "127.0.0.1:5000");
        let hub = pull_credentials("busybox:1", &secrets);
        assert_eq!(hub.len(), 1);
        assert_eq!(hub[0].auth, "aHViOnB3");
        let private = pull_credentials("registry.example:5000/app:1", &secrets);
        assert_eq!(private.len(), 2, "both secrets, in order");
        assert_eq!(
            (private[0].username.as_str(), private[0].password.as_str()),
            ("u", "p")
        );
        assert_eq!(private[1].auth, "dTI6cDI=");
        assert!(pull_credentials("other.example/app:1", &secrets).is_empty());
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
                &[],
                &mut events,
                &tracing::Span::none,
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
                &[],
                &mut events,
                &tracing::Span::none,
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
                &[],
                &mut events,
                &tracing::Span::none,
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
                .ensure_image(runtime, "u", c, sandbox, &[], events, &tracing::Span::none)
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
            .ensure_image(
                &runtime,
                "v",
                &c,
                &sandbox,
                &[],
                &mut other,
                &tracing::Span::none,
            )
            .await;
        assert_eq!(got.expect_err("fails").reason, "ErrImagePull");
        // Once the image exists, the next try after the window succeeds and resets it.
        runtime.clear_pull_failure("r/missing:1");
        tokio::time::advance(Duration::from_secs(40)).await;
        events.clear();
        assert!(manager
            .ensure_image(
                &runtime,
                "u",
                &c,
                &sandbox,
                &[],
                &mut events,
                &tracing::Span::none
            )
            .await
            .is_ok());
        manager.forget_pod("u");
    }

    #[tokio::test(start_paused = true)]
    async fn pulls_and_present_images_are_steps_but_backing_off_is_none() {
        let capture = ferry_journey::testing::capture();
        let runtime = FakeRuntime::new();
        runtime.add_image("r/app:1");
        runtime.fail_pull("r/missing:1", RuntimeError::NotFound("gone".into()));
        let manager = ImageManager::default();
        let sandbox = v1::PodSandboxConfig::default();
        let step = || {
            ferry_journey::step!(
                "image pulled",
                component = "kubelet-images-test",
                present = tracing::field::Empty
            )
        };
        for (image, policy) in [
            ("r/app:1", None),
            ("r/app:1", Some("Always")),
            ("r/missing:1", None),
            ("r/missing:1", None),
        ] {
            let c = container(image, policy);
            let _ = manager
                .ensure_image(&runtime, "u", &c, &sandbox, &[], &mut vec![], &step)
                .await;
        }
        let steps: Vec<_> = capture
            .spans()
            .into_iter()
            .map(|s| (s.attributes.get("present").cloned(), s.error))
            .collect();
        assert_eq!(
            steps,
            [
                (Some("true".to_string()), None),
                (None, None),
                (None, Some("not found: gone".to_string())),
            ],
            "present, pulled, failed; the pull in backoff is no step"
        );
    }
}
