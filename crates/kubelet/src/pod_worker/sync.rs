//! One sync of a pod that is not being deleted (upstream `SyncPod`): look at the runtime
//! ([`PodWorker::observe`]), prepare volumes, make sure of the sandbox, carry out the
//! [`plan`]'s steps (with crash-loop backoff), keep the prober in step, and post
//! the status.

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::time::Instant;

use super::plan::is_sidecar;
use super::{
    all_done, find_container, find_ephemeral, go_duration, ns_to_timestamp, plan, pod_grace_period,
    pod_key, Instance, Lifecycle, Observed, PodWorker, ProbeView, Step, SyncResult, ERROR_RESYNC,
    RESYNC, SLOW_RESYNC, STEADY_RESYNC,
};
use crate::podconfig::{CONTAINER_HASH_ANNOTATION, CONTAINER_NAME_LABEL, POD_UID_LABEL};
use crate::probe::ProbeManager;
use crate::runtime::{v1, RuntimeError};

struct Probes<'a>(&'a ProbeManager, &'a str);

impl ProbeView for Probes<'_> {
    fn failed_probe(&self, name: &str, id: &str) -> Option<&'static str> {
        self.0
            .failed_probe(self.1, name, id)
            .map(|kind| match kind {
                crate::probe::ProbeKind::Startup => "startup",
                _ => "liveness",
            })
    }

    fn started(&self, container: &Container) -> bool {
        container.startup_probe.is_none() || self.0.startup(self.1, &container.name) == Some(true)
    }
}

impl PodWorker {
    /// The pod's sandboxes and containers as the runtime has them; removes container
    /// instances older than the two newest of each name and stale sandboxes (garbage).
    pub async fn observe(&self) -> Result<Observed, RuntimeError> {
        let runtime = &self.shared.runtime;
        let mut labels = HashMap::new();
        labels.insert(POD_UID_LABEL.to_string(), self.uid.clone());
        let mut sandboxes = runtime
            .list_pod_sandboxes(Some(v1::PodSandboxFilter {
                label_selector: labels.clone(),
                ..Default::default()
            }))
            .await?;
        sandboxes.sort_by_key(|s| {
            std::cmp::Reverse((s.metadata.as_ref().map(|m| m.attempt), s.created_at))
        });
        // Keep the newest two (the current one and the one before, for restart counts).
        let mut removed = vec![];
        for stale in sandboxes.iter().skip(2) {
            if stale.state != v1::PodSandboxState::SandboxReady as i32 {
                match runtime.remove_pod_sandbox(&stale.id).await {
                    Ok(()) => removed.push(stale.id.clone()),
                    Err(e) => {
                        tracing::debug!(sandbox = %stale.id, error = %e, "removing an old sandbox")
                    }
                }
            }
        }
        sandboxes.retain(|s| !removed.contains(&s.id));
        let containers = runtime
            .list_containers(Some(v1::ContainerFilter {
                label_selector: labels,
                ..Default::default()
            }))
            .await?;
        let mut by_name: HashMap<String, Vec<v1::Container>> = HashMap::new();
        for c in containers {
            let name = c
                .labels
                .get(CONTAINER_NAME_LABEL)
                .cloned()
                .or_else(|| c.metadata.as_ref().map(|m| m.name.clone()))
                .unwrap_or_default();
            by_name.entry(name).or_default().push(c);
        }
        let mut observed = Observed {
            sandboxes,
            containers: HashMap::new(),
        };
        for (name, mut list) in by_name {
            list.sort_by_key(|c| {
                std::cmp::Reverse((c.metadata.as_ref().map(|m| m.attempt), c.created_at))
            });
            let mut instances = vec![];
            for (n, c) in list.into_iter().enumerate() {
                if n >= 2 {
                    // Upstream keeps one dead instance per container (for lastState); its
                    // log and rotated logs go with it.
                    crate::logs::clean(runtime.as_ref(), &c.id).await;
                    if let Err(e) = runtime.remove_container(&c.id).await {
                        tracing::debug!(id = %c.id, error = %e, "removing an old container");
                    }
                    continue;
                }
                let status = match runtime.container_status(&c.id).await {
                    Ok(status) => status,
                    Err(RuntimeError::NotFound(_)) => continue,
                    Err(e) => return Err(e),
                };
                instances.push(Instance {
                    attempt: c.metadata.as_ref().map(|m| m.attempt).unwrap_or(0),
                    sandbox_id: c.pod_sandbox_id.clone(),
                    hash: c
                        .annotations
                        .get(CONTAINER_HASH_ANNOTATION)
                        .and_then(|h| u32::from_str_radix(h, 16).ok()),
                    id: c.id,
                    status,
                });
            }
            observed.containers.insert(name, instances);
        }
        Ok(observed)
    }

    /// One sync of `pod` (upstream `SyncPod`, or `SyncTerminatingPod` once it is being
    /// deleted).
    pub async fn sync(&mut self, pod: &Pod) -> SyncResult {
        self.record_pod_seen(pod);
        if pod.metadata.deletion_timestamp.is_some() {
            return self.terminate(pod, false).await;
        }
        // Not deleted: a termination begun because the pod was seen gone is dropped.
        self.state.lifecycle.resume();
        let observed = match self.observe().await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(pod = %pod_key(pod), error = %e, "looking at the runtime");
                return SyncResult::Resync(RESYNC);
            }
        };
        let spec = pod.spec.clone().unwrap_or_default();
        if let Some(eviction) = self.shared.evictions.take(&self.uid) {
            // Upstream's eviction `killPodFunc`: its containers stopped within the eviction's
            // grace period, then it stays Failed (`Evicted`).
            let mut kills = vec![];
            for (name, instances) in &observed.containers {
                for i in instances.iter().filter(|i| i.running()) {
                    kills.push(self.kill_container(pod, &i.id, name, eviction.grace_period));
                }
            }
            futures::future::join_all(kills).await;
            self.state.evicted = Some(eviction);
        }
        let api_phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(api_phase, Some("Succeeded" | "Failed"))
            || self.state.lifecycle != Lifecycle::Syncing
            || self.state.evicted.is_some()
        {
            // Nothing runs again: stop what is left, keep reporting the final status.
            self.state.lifecycle.complete();
            self.shared.probes.remove_pod(&self.uid);
            self.stop_sandboxes(&observed).await;
            let observed = self.observe().await.unwrap_or(observed);
            self.record_exits(pod, &spec, &observed);
            self.post_status(pod, &observed, false, vec![], true).await;
            return SyncResult::Resync(SLOW_RESYNC);
        }

        let sync_started = Instant::now();
        // 1. Volumes, before the sandbox: a pod that cannot mount gets no sandbox (and no IP).
        let volumes = match self.mount_volumes(pod).await {
            Ok(v) => v,
            Err(e) => {
                self.event(pod, None, true, "FailedMount", e.to_string());
                self.post_status(pod, &observed, false, vec![], false).await;
                return SyncResult::Resync(Duration::from_secs(5));
            }
        };

        // 2. The sandbox. A pod getting its first (or a new) sandbox waits its turn to start.
        let shared = self.shared.clone();
        let _starting = match observed.ready_sandbox() {
            Some(_) => None,
            None => shared.pod_starts.acquire().await.ok(),
        };
        let (sandbox_id, sandbox_config, pod_ips) =
            match self.ensure_sandbox(pod, &spec, &observed).await {
                Ok(Some(s)) => s,
                Ok(None) => {
                    // The sandbox died and the pod must not get a new one (it ran under Never).
                    self.state.lifecycle.complete();
                    let observed = self.observe().await.unwrap_or(observed);
                    self.record_exits(pod, &spec, &observed);
                    self.post_status(pod, &observed, false, vec![], true).await;
                    return SyncResult::Resync(SLOW_RESYNC);
                }
                Err(()) => {
                    self.post_status(pod, &observed, false, vec![], false).await;
                    return SyncResult::Resync(RESYNC);
                }
            };
        let observed =
            if observed.ready_sandbox().map(|s| s.id.as_str()) == Some(sandbox_id.as_str()) {
                observed
            } else {
                match self.observe().await {
                    Ok(o) => o,
                    Err(_) => return SyncResult::Resync(RESYNC),
                }
            };

        let sandbox_done = Instant::now();
        // 3 and 4. Containers.
        self.state.backoff_until = None;
        let now = Instant::now();
        let exited: Vec<&str> = observed
            .containers
            .values()
            .flatten()
            .filter(|i| i.exit_code().is_some())
            .map(|i| i.id.as_str())
            .collect();
        self.state
            .exits
            .retain(|id, _| exited.contains(&id.as_str()));
        for id in exited {
            self.state.exits.entry(id.to_string()).or_insert(now);
        }
        self.record_exits(pod, &spec, &observed);
        let current = observed.in_sandbox(&sandbox_id);
        let steps = plan(&spec, &current, &Probes(&self.shared.probes, &self.uid));
        for step in &steps {
            match step {
                Step::Kill { id, name, reason } => {
                    let container = find_container(&spec, name);
                    self.event(
                        pod,
                        Some((name, container.is_some_and(|c| c.1))),
                        false,
                        "Killing",
                        reason.clone(),
                    );
                    let grace = pod_grace_period(pod);
                    self.kill_container(pod, id, name, grace).await;
                }
                Step::PodFailed => {
                    self.state.lifecycle.complete();
                }
                Step::StartEphemeral { name } => {
                    let Some((container, target)) = find_ephemeral(&spec, name) else {
                        continue;
                    };
                    // The target's running instance, whose processes it sees.
                    let pid_target = target
                        .and_then(|t| observed.latest(&t).filter(|i| i.running()))
                        .map(|i| i.id.clone());
                    self.start_container(
                        pod,
                        &container,
                        false,
                        &sandbox_id,
                        &sandbox_config,
                        &pod_ips,
                        &volumes,
                        0,
                        pid_target,
                    )
                    .await;
                }
                Step::Start { name, init } => {
                    let Some((container, _)) = find_container(&spec, name) else {
                        continue;
                    };
                    let previous = observed.latest(name);
                    if let Some(prev) = previous.filter(|p| !p.running()) {
                        // A restart: upstream's crash-loop backoff.
                        if prev.exit_code().is_some() {
                            // Upstream's crash-loop backoff, measured from the exit.
                            // When the worker first saw it exited (within a resync of the exit;
                            // on tokio's clock, so tests run on paused time).
                            let since_exit = self
                                .state
                                .exits
                                .get(&prev.id)
                                .map(|t| t.elapsed())
                                .unwrap_or_default();
                            let delay = self.state.crash_backoff.delay(name);
                            if let Some(delay) = delay.filter(|d| since_exit < *d) {
                                let (pname, ns) = (
                                    pod.metadata.name.clone().unwrap_or_default(),
                                    pod.metadata.namespace.clone().unwrap_or_default(),
                                );
                                self.event(pod, Some((name, *init)), true, "BackOff",
                                    format!("Back-off restarting failed container {name} in pod {pname}_{ns}({})", self.uid));
                                self.state.waiting.insert(name.clone(), ("CrashLoopBackOff".into(),
                                    format!("back-off {} restarting failed container={name} pod={pname}_{ns}({})", go_duration(delay), self.uid)));
                                self.state.backoff_until = Some(
                                    self.state
                                        .backoff_until
                                        .map_or(delay - since_exit, |d| d.min(delay - since_exit)),
                                );
                                continue;
                            }
                            self.state.crash_backoff.next(name);
                        }
                    }
                    // The restart count goes on across sandboxes.
                    let attempt = observed
                        .containers
                        .get(name.as_str())
                        .and_then(|list| list.iter().map(|i| i.attempt).max())
                        .map_or(0, |a| a + 1);
                    let ok = self
                        .start_container(
                            pod,
                            container,
                            *init,
                            &sandbox_id,
                            &sandbox_config,
                            &pod_ips,
                            &volumes,
                            attempt,
                            None,
                        )
                        .await;
                    if ok && *init && !is_sidecar(container) {
                        break; // one init container at a time
                    }
                }
            }
        }
        let observed = match self.observe().await {
            Ok(o) => o,
            Err(_) => observed,
        };
        self.record_exits(pod, &spec, &observed);
        if all_done(&spec, &observed) || steps.contains(&Step::PodFailed) {
            self.state.lifecycle.complete();
            // What still runs (sidecars) stops with its grace period and preStop, as upstream.
            let grace = pod_grace_period(pod);
            let mut kills = vec![];
            for (name, list) in &observed.containers {
                for i in list.iter().filter(|i| i.running()) {
                    let init = find_container(&spec, name).is_some_and(|(_, init)| init);
                    self.event(
                        pod,
                        Some((name, init)),
                        false,
                        "Killing",
                        format!("Stopping container {name}"),
                    );
                    kills.push(self.kill_container(pod, &i.id, name, grace));
                }
            }
            futures::future::join_all(kills).await;
            self.stop_sandboxes(&observed).await;
        }
        for (name, instances) in &observed.containers {
            match instances
                .first()
                .filter(|i| i.running() && self.state.lifecycle == Lifecycle::Syncing)
            {
                Some(i) => {
                    let started_at =
                        ns_to_timestamp(i.status.started_at).unwrap_or_else(Timestamp::now);
                    self.shared.probes.sync_container(
                        pod,
                        name,
                        &i.id,
                        started_at,
                        pod_ips.first().map(String::as_str).unwrap_or_default(),
                    );
                }
                // Nothing to probe in a container that is not running.
                None => self.shared.probes.remove_container(&self.uid, name),
            }
        }
        let finished = self.state.lifecycle == Lifecycle::Completed;
        if steps.iter().any(|s| matches!(s, Step::Start { .. })) {
            tracing::debug!(pod = %pod_key(pod),
                before_containers_ms = sandbox_done.duration_since(sync_started).as_millis() as u64,
                containers_ms = sandbox_done.elapsed().as_millis() as u64, "started containers");
        }
        self.post_status(pod, &observed, !finished, pod_ips, finished)
            .await;
        // A fresh error stays visible for a few seconds before the next attempt turns it into
        // a backoff (upstream requeues a failed sync with a backoff of its own).
        let fresh_error = self.state.waiting.values().any(|(reason, _)| {
            matches!(
                reason.as_str(),
                "ErrImagePull"
                    | "CreateContainerConfigError"
                    | "CreateContainerError"
                    | "RunContainerError"
            )
        });
        let image_backoff = self
            .state
            .waiting
            .values()
            .any(|(reason, _)| reason == "ImagePullBackOff");
        SyncResult::Resync(if finished {
            SLOW_RESYNC
        } else if fresh_error {
            ERROR_RESYNC
        } else if let Some(left) = self.state.backoff_until {
            // Look again when the shortest crash-loop window ends (not every second: each
            // look while backing off is a BackOff event).
            left.clamp(RESYNC, SLOW_RESYNC)
        } else if image_backoff {
            ERROR_RESYNC
        } else {
            STEADY_RESYNC
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use crate::pod_worker::testing::*;
    use crate::pod_worker::Lifecycle;
    use crate::runtime::fake::Call;
    use crate::volume::StaticObjectSource;

    #[tokio::test(start_paused = true)]
    async fn init_containers_run_one_at_a_time_in_order() {
        let mut f = fixture(StaticObjectSource::new());
        f.runtime.exit_on_start("a", 0);
        f.runtime.exit_on_start("b", 0);
        let p =
            pod(json!({"initContainers": [image("a"), image("b")], "containers": [image("c")]}));
        f.worker.sync(&p).await;
        assert_eq!(created(&f.runtime), ["a"]);
        assert_eq!(
            last_status(&f.api)["initContainerStatuses"][0]["state"]["terminated"]["exitCode"],
            0
        );
        f.worker.sync(&p).await;
        assert_eq!(created(&f.runtime), ["a", "b"]);
        f.worker.sync(&p).await;
        assert_eq!(created(&f.runtime), ["a", "b", "c"]);
        let status = last_status(&f.api);
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["podIP"], "10.42.0.2");
        assert!(status["containerStatuses"][0]["state"]["running"].is_object());
        // Steady: nothing more is created, and an unchanged status is not posted again.
        let posted = f.api.statuses.lock().len();
        f.worker.sync(&p).await;
        assert_eq!(created(&f.runtime), ["a", "b", "c"]);
        assert_eq!(f.api.statuses.lock().len(), posted);
        let r = reasons(&mut f.events);
        assert!(r.iter().filter(|r| *r == "Started").count() == 3, "{r:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_evicted_pod_is_killed_and_stays_failed_with_the_eviction() {
        let f = fixture(StaticObjectSource::new());
        let mut f = f;
        let p = pod(json!({"containers": [image("app")]}));
        f.worker.sync(&p).await;
        assert_eq!(last_status(&f.api)["phase"], "Running");
        f.worker.shared.evictions.request(
            "uid-1",
            crate::eviction::PodEviction {
                grace_period: crate::eviction::IMMEDIATE_GRACE_PERIOD,
                message: "The node was low on resource: memory. ".into(),
            },
        );
        f.worker.sync(&p).await;
        let status = last_status(&f.api);
        assert_eq!(status["phase"], "Failed");
        assert_eq!(status["reason"], "Evicted");
        assert_eq!(status["message"], "The node was low on resource: memory. ");
        assert!(status["containerStatuses"][0]["state"]["terminated"].is_object());
        assert!(f
            .runtime
            .calls()
            .iter()
            .any(|c| matches!(c, Call::StopContainer(_, 2))));
        assert_eq!(f.worker.state.lifecycle, Lifecycle::Completed);
        // Nothing restarts, though the restart policy is Always.
        f.worker.sync(&p).await;
        assert_eq!(created(&f.runtime), ["app"]);
        assert_eq!(last_status(&f.api)["reason"], "Evicted");
    }

    #[tokio::test(start_paused = true)]
    async fn failed_init_container_under_never_fails_the_pod() {
        let mut f = fixture(StaticObjectSource::new());
        f.runtime.exit_on_start("a", 3);
        let p = pod(
            json!({"restartPolicy": "Never", "initContainers": [image("a")], "containers": [image("c")]}),
        );
        f.worker.sync(&p).await;
        f.worker.sync(&p).await;
        assert_eq!(created(&f.runtime), ["a"], "no restart, no app container");
        assert_eq!(last_status(&f.api)["phase"], "Failed");
        assert_eq!(f.worker.state.lifecycle, Lifecycle::Completed);
    }

    #[tokio::test(start_paused = true)]
    async fn crash_loop_backs_off() {
        let mut f = fixture(StaticObjectSource::new());
        f.runtime.exit_on_start("c", 1);
        let p = pod(json!({"containers": [image("c")]}));
        f.worker.sync(&p).await; // first start, exits
        f.worker.sync(&p).await; // first restart: at once
        assert_eq!(created(&f.runtime).len(), 2);
        f.worker.sync(&p).await; // in backoff
        assert_eq!(created(&f.runtime).len(), 2);
        let status = last_status(&f.api);
        let c = &status["containerStatuses"][0];
        assert_eq!(c["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(
            c["state"]["waiting"]["message"],
            "back-off 10s restarting failed container=c pod=p_default(uid-1)"
        );
        assert_eq!(c["lastState"]["terminated"]["exitCode"], 1);
        assert_eq!(c["restartCount"], 1);
        tokio::time::advance(Duration::from_secs(10)).await;
        f.worker.sync(&p).await;
        assert_eq!(created(&f.runtime).len(), 3);
        f.worker.sync(&p).await;
        assert_eq!(
            last_status(&f.api)["containerStatuses"][0]["state"]["waiting"]["message"],
            "back-off 20s restarting failed container=c pod=p_default(uid-1)"
        );
        assert!(reasons(&mut f.events).contains(&"BackOff".to_string()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_liveness_probe_restarts_the_container() {
        let mut f = fixture(StaticObjectSource::new());
        f.runtime.set_exec_result(
            "c",
            Ok(crate::runtime::ExecSyncResult {
                exit_code: 1,
                stdout: b"unhealthy".to_vec(),
                stderr: vec![],
            }),
        );
        let mut c = image("c");
        c["livenessProbe"] =
            json!({"exec": {"command": ["check"]}, "periodSeconds": 1, "failureThreshold": 2});
        let p = pod(json!({"terminationGracePeriodSeconds": 5, "containers": [c]}));
        f.worker.sync(&p).await;
        assert_eq!(created(&f.runtime), ["c"]);
        // Two failed probes, a second apart.
        for _ in 0..3 {
            tokio::time::advance(Duration::from_secs(1)).await;
            tokio::task::yield_now().await;
        }
        f.worker.sync(&p).await;
        assert_eq!(created(&f.runtime), ["c", "c"], "killed and started again");
        let stops: Vec<i64> = f
            .runtime
            .calls()
            .iter()
            .filter_map(|c| match c {
                Call::StopContainer(_, t) => Some(*t),
                _ => None,
            })
            .collect();
        assert_eq!(stops, [5], "stopped with the pod's grace period");
        f.worker.sync(&p).await;
        let status = last_status(&f.api);
        assert_eq!(
            status["containerStatuses"][0]["restartCount"], 1,
            "{status}"
        );
        let mut events = vec![];
        while let Ok(e) = f.events.try_recv() {
            events.push((e.reason, e.message));
        }
        assert!(
            events.iter().any(|(r, m)| r == "Unhealthy" && m.starts_with("Liveness probe failed: unhealthy")),
            "{events:?}"
        );
        assert!(
            events.iter().any(|(r, m)| r == "Killing"
                && m == "Container c failed liveness probe, will be restarted"),
            "{events:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn completed_pod_under_on_failure_succeeds_and_stops_its_sandbox() {
        let mut f = fixture(StaticObjectSource::new());
        f.runtime.exit_on_start("c", 0);
        let p = pod(json!({"restartPolicy": "OnFailure", "containers": [image("c")]}));
        f.worker.sync(&p).await;
        assert_eq!(last_status(&f.api)["phase"], "Succeeded");
        assert!(f
            .runtime
            .calls()
            .iter()
            .any(|c| matches!(c, Call::StopPodSandbox(_))));
        f.worker.sync(&p).await;
        assert_eq!(created(&f.runtime).len(), 1, "not restarted");
    }
}
