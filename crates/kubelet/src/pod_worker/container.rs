//! One container's life as the pod worker drives it (upstream `kuberuntime_container.go`):
//! pull its image, build its config from the looked-up configMaps and secrets, create and start
//! it, run its postStart hook; and kill it, preStop hook first, within its grace period. The
//! pull (or the image found present) is the journey step `image pulled`, creating and starting
//! the container `container started`.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod};
use tokio::time::Instant;
use tracing::field::Empty;
use tracing::Instrument;

use super::{
    find_container, go_duration, pod_grace_period, pod_key, PodWorker, MINIMUM_GRACE_PERIOD,
};
use crate::journey::pod_step;
use crate::podconfig::{self, ContainerContext};
use crate::probe::ProbeResult;
use crate::runtime::{v1, RuntimeError};

/// Why a postStart or preStop hook failed, in the words of upstream's `FailedPostStartHook` and
/// `FailedPreStopHook` events.
#[derive(Debug, thiserror::Error)]
pub(super) enum HookError {
    /// The exec hook's command ran and exited non-zero.
    #[error(
        "Exec lifecycle hook ({command:?}) for Container \"{container}\" in Pod failed - error: command '{}' exited with {exit_code}: {stderr}",
        command.join(" ")
    )]
    ExecExited {
        /// The container's name.
        container: String,
        /// The hook's command.
        command: Vec<String>,
        /// Its exit code.
        exit_code: i32,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// The exec hook's command could not be run.
    #[error(
        "Exec lifecycle hook ({command:?}) for Container \"{container}\" in Pod failed - error: {source}"
    )]
    Exec {
        /// The container's name.
        container: String,
        /// The hook's command.
        command: Vec<String>,
        /// The runtime's error.
        #[source]
        source: RuntimeError,
    },
    /// The HTTP hook's GET did not succeed.
    #[error(
        "HTTP lifecycle hook ({path}) for Container \"{container}\" in Pod failed - error: {result:?}"
    )]
    Http {
        /// The container's name.
        container: String,
        /// The hook's path.
        path: String,
        /// The GET's outcome.
        result: ProbeResult,
    },
}

impl PodWorker {
    /// Pulls, creates and starts one container; records why it could not in
    /// [`WorkerState::waiting`](super::WorkerState::waiting). Returns whether it started.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn start_container(
        &mut self,
        pod: &Pod,
        container: &Container,
        init: bool,
        sandbox_id: &str,
        sandbox_config: &v1::PodSandboxConfig,
        pod_ips: &[String],
        volumes: &BTreeMap<String, podconfig::VolumeHostPath>,
        attempt: u32,
        pid_target: Option<String>,
    ) -> bool {
        let name = container.name.as_str();
        let at = Some((name, init));
        let runtime = self.shared.runtime.clone();
        let mut events = vec![];
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let mut pull_secrets = vec![];
        for reference in pod
            .spec
            .iter()
            .flat_map(|s| s.image_pull_secrets.iter().flatten())
        {
            // A missing pull secret is not an error: the pull goes on without it, as upstream.
            if let Ok(Some(secret)) = self
                .shared
                .objects
                .secret(&namespace, &reference.name)
                .await
            {
                pull_secrets.push(secret);
            }
        }
        let credentials = crate::images::pull_credentials(
            container.image.as_deref().unwrap_or_default(),
            &pull_secrets,
        );
        let image_name = container.image.as_deref().unwrap_or_default();
        let image_step = || {
            pod_step!(
                &pod.metadata,
                "image pulled",
                image = image_name,
                present = Empty
            )
        };
        let image = self
            .shared
            .images
            .ensure_image(
                runtime.as_ref(),
                &self.uid,
                container,
                sandbox_config,
                &credentials,
                &mut events,
                &image_step,
            )
            .await;
        for e in events {
            self.event(pod, at, e.warning, e.reason, e.message);
        }
        let image_ref = match image {
            Ok(r) => r,
            Err(e) => {
                self.event(pod, at, true, "Failed", format!("Error: {}", e.reason));
                self.state
                    .waiting
                    .insert(name.to_string(), (e.reason.to_string(), e.message));
                return false;
            }
        };
        let fail = |this: &mut Self, reason: &str, message: String| {
            this.event(pod, at, true, "Failed", format!("Error: {message}"));
            this.state
                .waiting
                .insert(name.to_string(), (reason.to_string(), message));
            false
        };
        let mut ctx = ContainerContext {
            restart_count: attempt,
            image_ref,
            pod_ips: pod_ips.to_vec(),
            host_ips: self.shared.node.node_ips.clone(),
            node_allocatable: self.shared.node.node_allocatable.clone(),
            node_memory_capacity: self.shared.node.node_memory_capacity,
            volumes: volumes.clone(),
            seccomp_profile_root: self.shared.node.seccomp_profile_root.clone(),
            pid_target,
            ..Default::default()
        };
        match self.write_etc_hosts(pod, pod_ips) {
            Ok(path) => ctx.etc_hosts_path = path,
            Err(e) => {
                return fail(
                    self,
                    "CreateContainerConfigError",
                    format!("writing /etc/hosts: {e}"),
                )
            }
        }
        let message_dir = self
            .shared
            .node
            .pods_dir
            .join(&self.uid)
            .join("containers")
            .join(name);
        let message_file = message_dir.join(attempt.to_string());
        if let Err(e) =
            std::fs::create_dir_all(&message_dir).and_then(|()| std::fs::write(&message_file, b""))
        {
            return fail(
                self,
                "CreateContainerConfigError",
                format!("termination message file: {e}"),
            );
        }
        ctx.termination_message_host_path = Some(message_file.to_string_lossy().into_owned());
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let (config_maps, secrets) = env_sources(container);
        for cm in config_maps {
            match self.shared.objects.config_map(&namespace, &cm).await {
                Ok(Some(found)) => {
                    let mut data = found.data.unwrap_or_default();
                    for (k, v) in found.binary_data.unwrap_or_default() {
                        data.insert(k, String::from_utf8_lossy(&v.0).into_owned());
                    }
                    ctx.config_maps.insert(cm, data);
                }
                Ok(None) => {}
                Err(e) => return fail(self, "CreateContainerConfigError", e.to_string()),
            }
        }
        for s in secrets {
            match self.shared.objects.secret(&namespace, &s).await {
                Ok(Some(found)) => {
                    let data = found
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0))
                        .collect();
                    ctx.secrets.insert(s, data);
                }
                Ok(None) => {}
                Err(e) => return fail(self, "CreateContainerConfigError", e.to_string()),
            }
        }
        let config = match podconfig::container_config(pod, container, &ctx) {
            Ok(c) => c,
            Err(e) => return fail(self, "CreateContainerConfigError", e.to_string()),
        };
        let span = pod_step!(
            &pod.metadata,
            "container started",
            container = name,
            restart = Empty
        );
        if attempt > 0 {
            span.record("restart", attempt);
        }
        let id = match runtime
            .create_container(sandbox_id, config, sandbox_config.clone())
            .instrument(span.clone())
            .await
        {
            Ok(id) => id,
            Err(e) => {
                ferry_journey::fail(&span, &e);
                return fail(self, "CreateContainerError", e.to_string());
            }
        };
        self.event(
            pod,
            at,
            false,
            "Created",
            format!("Created container: {name}"),
        );
        if let Err(e) = runtime.start_container(&id).instrument(span.clone()).await {
            ferry_journey::fail(&span, &e);
            return fail(self, "RunContainerError", e.to_string());
        }
        drop(span);
        self.event(
            pod,
            at,
            false,
            "Started",
            format!("Started container {name}"),
        );
        self.state.waiting.remove(name);
        if let Some(post_start) = container
            .lifecycle
            .as_ref()
            .and_then(|l| l.post_start.as_ref())
        {
            let ip = pod_ips.first().cloned().unwrap_or_default();
            if let Err(e) = self
                .run_hook(post_start, container, &id, &ip, Duration::from_secs(30))
                .await
            {
                self.event(pod, at, true, "FailedPostStartHook", e.to_string());
                let grace = pod_grace_period(pod);
                self.kill_container(pod, &id, name, grace).await;
                return false;
            }
        }
        true
    }

    /// Runs a lifecycle hook (exec in the container, or an HTTP GET), bounded by `timeout`.
    async fn run_hook(
        &self,
        hook: &LifecycleHandler,
        container: &Container,
        container_id: &str,
        pod_ip: &str,
        timeout: Duration,
    ) -> Result<(), HookError> {
        if let Some(exec) = &hook.exec {
            let command = exec.command.clone().unwrap_or_default();
            let result = self
                .shared
                .runtime
                .exec_sync(container_id, command.clone(), timeout)
                .await;
            return match result {
                Ok(r) if r.exit_code == 0 => Ok(()),
                Ok(r) => Err(HookError::ExecExited {
                    container: container.name.clone(),
                    command,
                    exit_code: r.exit_code,
                    stderr: String::from_utf8_lossy(&r.stderr).into_owned(),
                }),
                Err(source) => Err(HookError::Exec {
                    container: container.name.clone(),
                    command,
                    source,
                }),
            };
        }
        if let Some(http) = &hook.http_get {
            let probe = k8s_openapi::api::core::v1::Probe {
                http_get: Some(http.clone()),
                timeout_seconds: Some(timeout.as_secs().max(1) as i32),
                ..Default::default()
            };
            let target = crate::probe::ProbeTarget {
                pod_ip,
                container_id,
                container,
                runtime: self.shared.runtime.as_ref(),
            };
            return match crate::probe::probe_once(&probe, &target).await {
                ProbeResult::Success => Ok(()),
                result => Err(HookError::Http {
                    container: container.name.clone(),
                    path: http.path.clone().unwrap_or_default(),
                    result,
                }),
            };
        }
        if let Some(sleep) = &hook.sleep {
            tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0) as u64).min(timeout)).await;
        }
        Ok(())
    }

    /// Stops one container with `grace` (at least the 2 s minimum), running its preStop hook
    /// first.
    pub(super) async fn kill_container(&self, pod: &Pod, id: &str, name: &str, grace: Duration) {
        let started = Instant::now();
        let spec = pod.spec.clone().unwrap_or_default();
        if let Some((container, _)) = find_container(&spec, name) {
            if let Some(pre_stop) = container
                .lifecycle
                .as_ref()
                .and_then(|l| l.pre_stop.as_ref())
            {
                let ip = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.pod_ip.clone())
                    .unwrap_or_default();
                let hook = self.run_hook(pre_stop, container, id, &ip, grace);
                match tokio::time::timeout(grace, hook).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => self.event(
                        pod,
                        Some((name, false)),
                        true,
                        "FailedPreStopHook",
                        e.to_string(),
                    ),
                    Err(_) => self.event(
                        pod,
                        Some((name, false)),
                        true,
                        "FailedPreStopHook",
                        format!("PreStopHook failed: timed out after {}", go_duration(grace)),
                    ),
                }
            }
        }
        let left = grace
            .saturating_sub(started.elapsed())
            .max(MINIMUM_GRACE_PERIOD);
        if let Err(e) = self
            .shared
            .runtime
            .stop_container(id, left.as_secs_f64().ceil() as i64)
            .await
        {
            tracing::warn!(pod = %pod_key(pod), container = %name, error = %e, "stopping a container");
        }
    }
}

/// The configMaps and secrets a container's env refers to.
fn env_sources(container: &Container) -> (Vec<String>, Vec<String>) {
    let (mut cms, mut secrets) = (vec![], vec![]);
    for from in container.env_from.iter().flatten() {
        if let Some(r) = &from.config_map_ref {
            cms.push(r.name.clone());
        }
        if let Some(r) = &from.secret_ref {
            secrets.push(r.name.clone());
        }
    }
    for env in container.env.iter().flatten() {
        if let Some(source) = &env.value_from {
            if let Some(r) = &source.config_map_key_ref {
                cms.push(r.name.clone());
            }
            if let Some(r) = &source.secret_key_ref {
                secrets.push(r.name.clone());
            }
        }
    }
    cms.sort();
    cms.dedup();
    secrets.sort();
    secrets.dedup();
    (cms, secrets)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use crate::pod_worker::testing::*;
    use crate::runtime::{ExecSyncResult, RuntimeError};
    use crate::volume::StaticObjectSource;

    #[tokio::test(start_paused = true)]
    async fn failed_post_start_hooks_are_events_in_upstreams_words() {
        let mut f = fixture(StaticObjectSource::new());
        let mut c = image("c");
        c["lifecycle"] = json!({"postStart": {"exec": {"command": ["sh", "-c", "false"]}}});
        let p = pod(json!({"containers": [c]}));
        f.runtime.push_exec_result(
            "c",
            Ok(ExecSyncResult {
                exit_code: 1,
                stderr: b"boom".to_vec(),
                ..Default::default()
            }),
        );
        f.runtime
            .push_exec_result("c", Err(RuntimeError::NotFound("no such container".into())));
        f.worker.sync(&p).await;
        f.worker.sync(&p).await;
        let mut hooks = vec![];
        while let Ok(e) = f.events.try_recv() {
            if e.reason == "FailedPostStartHook" {
                hooks.push(e.message);
            }
        }
        let exec = r#"Exec lifecycle hook (["sh", "-c", "false"]) for Container "c" in Pod failed - error:"#;
        assert_eq!(
            hooks.first().map(String::as_str),
            Some(format!("{exec} command 'sh -c false' exited with 1: boom").as_str())
        );
        assert_eq!(hooks.len(), 2, "{hooks:?}");
        assert!(hooks[1].starts_with(&format!("{exec} ")), "{}", hooks[1]);
    }

    #[tokio::test(start_paused = true)]
    async fn image_pull_errors_then_back_off() {
        let mut f = fixture(StaticObjectSource::new());
        f.runtime.fail_pull(
            "r/missing:1",
            RuntimeError::NotFound("r/missing:1: not found".into()),
        );
        let p = pod(json!({"containers": [{"name": "c", "image": "r/missing:1"}]}));
        f.worker.sync(&p).await;
        let waiting = |f: &Fixture| {
            last_status(&f.api)["containerStatuses"][0]["state"]["waiting"]["reason"].clone()
        };
        assert_eq!(waiting(&f), "ErrImagePull");
        f.worker.sync(&p).await;
        assert_eq!(waiting(&f), "ImagePullBackOff");
        tokio::time::advance(Duration::from_secs(10)).await;
        f.worker.sync(&p).await;
        assert_eq!(waiting(&f), "ErrImagePull");
        let r = reasons(&mut f.events);
        assert!(
            r.contains(&"Pulling".to_string())
                && r.contains(&"Failed".to_string())
                && r.contains(&"BackOff".to_string()),
            "{r:?}"
        );
        assert!(created(&f.runtime).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn missing_config_map_key_is_a_config_error() {
        let objects = StaticObjectSource::new().with_config_map(
            serde_json::from_value(
                json!({"metadata": {"name": "cm", "namespace": "default"}, "data": {"a": "1"}}),
            )
            .expect("cm"),
        );
        let mut f = fixture(objects);
        let mut c = image("c");
        c["env"] =
            json!([{"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "b"}}}]);
        let p = pod(json!({"containers": [c]}));
        f.worker.sync(&p).await;
        let status = last_status(&f.api);
        let waiting = &status["containerStatuses"][0]["state"]["waiting"];
        assert_eq!(waiting["reason"], "CreateContainerConfigError");
        assert_eq!(
            waiting["message"],
            "couldn't find key b in ConfigMap default/cm"
        );
        assert!(created(&f.runtime).is_empty());
    }
}
