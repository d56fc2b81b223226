//! The pod's sandbox (upstream `kuberuntime_sandbox.go`): the ready one, or a new one (after a
//! dead one is stopped, with a backoff when creating fails), its IPs, stopping it; and the
//! pod's managed `/etc/hosts`. Making a sandbox is the journey step `sandbox created`.

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use tokio::time::Instant;
use tracing::field::Empty;
use tracing::Instrument;

use super::plan::restart_policy;
use super::{pod_key, Observed, PodWorker};
use crate::journey::pod_step;
use crate::podconfig;
use crate::runtime::v1;

impl PodWorker {
    /// A ready sandbox for the pod: the existing one, or a new one. `Ok(None)`: no sandbox and
    /// none to be made now; `Err`: making one failed (event recorded).
    pub(super) async fn ensure_sandbox(
        &mut self,
        pod: &Pod,
        spec: &PodSpec,
        observed: &Observed,
    ) -> Result<Option<(String, v1::PodSandboxConfig, Vec<String>)>, ()> {
        let mut ctx = self.shared.node.sandbox.clone();
        if let Some(ready) = observed.ready_sandbox() {
            ctx.attempt = ready.metadata.as_ref().map(|m| m.attempt).unwrap_or(0);
            let config = podconfig::sandbox_config(pod, &ctx).map_err(|e| {
                self.sandbox_failed(pod, &e);
            })?;
            let ips = self.sandbox_ips(&ready.id).await;
            return Ok(Some((ready.id.clone(), config, ips)));
        }
        // Upstream: a pod that must not restart and already ran gets no new sandbox.
        let ran = observed.containers.values().any(|v| !v.is_empty());
        if !observed.sandboxes.is_empty() && ran && restart_policy(spec) == "Never" {
            self.stop_sandboxes(observed).await;
            return Ok(None);
        }
        if self.state.sandbox_backoff.in_backoff("sandbox") {
            return Err(());
        }
        // A dead sandbox: stopped with its containers, and kept (until it is older than the
        // previous one) so the restart counts carry over to the new one, as upstream's.
        if !observed.sandboxes.is_empty() {
            self.event(
                pod,
                None,
                false,
                "SandboxChanged",
                "Pod sandbox changed, it will be killed and re-created.".into(),
            );
            self.stop_sandboxes(observed).await;
        }
        ctx.attempt = observed
            .sandboxes
            .first()
            .and_then(|s| s.metadata.as_ref())
            .map(|m| m.attempt + 1)
            .unwrap_or(0);
        let config = podconfig::sandbox_config(pod, &ctx).map_err(|e| {
            self.sandbox_failed(pod, &e);
        })?;
        let span = pod_step!(
            &pod.metadata,
            "sandbox created",
            ip = Empty,
            handler = Empty
        );
        match self
            .create_sandbox(pod, &config)
            .instrument(span.clone())
            .await
        {
            Ok((id, handler, ips)) => {
                if !handler.is_empty() {
                    span.record("handler", handler.as_str());
                }
                if let Some(ip) = ips.first() {
                    span.record("ip", ip.as_str());
                }
                self.state.sandbox_backoff.reset("sandbox");
                Ok(Some((id, config, ips)))
            }
            Err(e) => {
                ferry_journey::fail(&span, &e);
                self.sandbox_failed(pod, &e);
                self.state.sandbox_backoff.next("sandbox");
                Err(())
            }
        }
    }

    /// Makes the pod's directories, looks up its runtime handler and runs the sandbox
    /// (containerd starts the pause container and runs the CNI ADD); returns its id, the
    /// handler and its IPs.
    async fn create_sandbox(
        &self,
        pod: &Pod,
        config: &v1::PodSandboxConfig,
    ) -> Result<(String, String, Vec<String>), String> {
        self.prepare_pod_dir(config).map_err(|e| e.to_string())?;
        let handler = self.runtime_handler(pod).await?;
        let creating = Instant::now();
        let id = self
            .shared
            .runtime
            .run_pod_sandbox(config.clone(), &handler)
            .await
            .map_err(|e| {
                tracing::warn!(pod = %pod_key(pod), error = %e, "creating the pod sandbox");
                e.to_string()
            })?;
        let ms = creating.elapsed().as_millis() as u64;
        tracing::debug!(pod = %pod_key(pod), ms, "sandbox created");
        let ips = self.sandbox_ips(&id).await;
        Ok((id, handler, ips))
    }

    /// The runtime handler of the pod's RuntimeClass ("" for the default runtime), as
    /// upstream's runtime class manager looks it up.
    async fn runtime_handler(&self, pod: &Pod) -> Result<String, String> {
        let class = pod
            .spec
            .as_ref()
            .and_then(|s| s.runtime_class_name.as_deref());
        let Some(class) = class.filter(|c| !c.is_empty()) else {
            return Ok(String::new());
        };
        match self.shared.objects.runtime_class(class).await {
            Ok(Some(found)) => Ok(found.handler),
            Ok(None) => Err(format!("RuntimeClass {class:?} not found")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Upstream's `FailedCreatePodSandBox` event.
    fn sandbox_failed(&self, pod: &Pod, error: &dyn std::fmt::Display) {
        self.event(
            pod,
            None,
            true,
            "FailedCreatePodSandBox",
            format!("Failed to create pod sandbox: {error}"),
        );
    }

    /// The log directory and the managed `/etc/hosts`, before the sandbox.
    fn prepare_pod_dir(&self, config: &v1::PodSandboxConfig) -> std::io::Result<()> {
        std::fs::create_dir_all(&config.log_directory)?;
        std::fs::create_dir_all(self.shared.node.pods_dir.join(&self.uid))
    }

    async fn sandbox_ips(&self, id: &str) -> Vec<String> {
        match self.shared.runtime.pod_sandbox_status(id).await {
            Ok(status) => status
                .network
                .map(|n| {
                    std::iter::once(n.ip)
                        .chain(n.additional_ips.into_iter().map(|i| i.ip))
                        .filter(|ip| !ip.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            Err(e) => {
                tracing::debug!(sandbox = %id, error = %e, "sandbox status");
                vec![]
            }
        }
    }

    /// The managed `/etc/hosts` of a pod (upstream `managedHostsFileContent`).
    pub(super) fn write_etc_hosts(
        &self,
        pod: &Pod,
        pod_ips: &[String],
    ) -> std::io::Result<Option<String>> {
        let spec = pod.spec.clone().unwrap_or_default();
        if spec.host_network.unwrap_or(false) {
            return Ok(None);
        }
        let hostname = spec
            .hostname
            .clone()
            .or_else(|| pod.metadata.name.clone())
            .unwrap_or_default();
        let mut content = String::from(
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
        );
        let fqdn = spec.subdomain.as_ref().map(|sub| {
            format!(
                "{hostname}.{sub}.{}.svc.{}",
                pod.metadata.namespace.as_deref().unwrap_or("default"),
                self.shared.node.sandbox.cluster_domain
            )
        });
        for ip in pod_ips {
            match &fqdn {
                Some(fqdn) => content.push_str(&format!("{ip}\t{fqdn}\t{hostname}\n")),
                None => content.push_str(&format!("{ip}\t{hostname}\n")),
            }
        }
        if let Some(aliases) = &spec.host_aliases {
            content.push_str("\n# Entries added by HostAliases.\n");
            for alias in aliases {
                let names = alias.hostnames.clone().unwrap_or_default().join("\t");
                content.push_str(&format!("{}\t{names}\n", alias.ip));
            }
        }
        let path = self.shared.node.pods_dir.join(&self.uid).join("etc-hosts");
        std::fs::create_dir_all(self.shared.node.pods_dir.join(&self.uid))?;
        std::fs::write(&path, content)?;
        Ok(Some(path.to_string_lossy().into_owned()))
    }

    pub(super) async fn stop_sandboxes(&self, observed: &Observed) {
        for s in observed
            .sandboxes
            .iter()
            .filter(|s| s.state == v1::PodSandboxState::SandboxReady as i32)
        {
            if let Err(e) = self.shared.runtime.stop_pod_sandbox(&s.id).await {
                tracing::warn!(sandbox = %s.id, error = %e, "stopping a sandbox");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::pod_worker::testing::*;
    use crate::pod_worker::*;
    use crate::volume::StaticObjectSource;

    #[tokio::test(start_paused = true)]
    async fn a_new_sandbox_reruns_init_containers_and_keeps_restart_counts() {
        let mut f = fixture(StaticObjectSource::new());
        f.runtime.exit_on_start("i", 0);
        let p = pod(json!({"initContainers": [image("i")], "containers": [image("c")]}));
        f.worker.sync(&p).await;
        f.worker.sync(&p).await;
        assert_eq!(created(&f.runtime), ["i", "c"]);
        // The sandbox dies (its pause process, say).
        let first = f.runtime.sandbox_ids()[0].clone();
        f.runtime.stop_pod_sandbox(&first).await.expect("stop");
        f.worker.sync(&p).await;
        assert_eq!(
            created(&f.runtime),
            ["i", "c", "i"],
            "init containers run again"
        );
        f.worker.sync(&p).await;
        assert_eq!(created(&f.runtime), ["i", "c", "i", "c"]);
        let status = last_status(&f.api);
        assert_eq!(
            status["containerStatuses"][0]["restartCount"], 1,
            "{status}"
        );
        assert!(status["containerStatuses"][0]["state"]["running"].is_object());
        assert_eq!(
            f.runtime.sandbox_ids().len(),
            2,
            "the old sandbox is kept, stopped"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn sandboxes_run_with_the_runtime_class_handler() {
        use crate::runtime::Runtime as _;
        let objects = StaticObjectSource::new();
        objects.insert_runtime_class(
            serde_json::from_value(json!({"metadata": {"name": "sandboxed"}, "handler": "runsc"}))
                .expect("runtime class"),
        );
        let mut f = fixture(objects);
        let mut spec = json!({"containers": [image("c")]});
        spec["runtimeClassName"] = json!("sandboxed");
        f.worker.sync(&pod(spec)).await;
        let sandboxes = f.runtime.list_pod_sandboxes(None).await.expect("list");
        assert_eq!(sandboxes.len(), 1);
        assert_eq!(sandboxes[0].runtime_handler, "runsc");

        // A class that does not exist: no sandbox, upstream's event.
        let mut f = fixture(StaticObjectSource::new());
        let mut spec = json!({"containers": [image("c")]});
        spec["runtimeClassName"] = json!("ghost");
        f.worker.sync(&pod(spec)).await;
        assert!(f.runtime.sandbox_ids().is_empty());
        assert!(reasons(&mut f.events).contains(&"FailedCreatePodSandBox".to_string()));
    }
}
