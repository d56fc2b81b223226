//! Terminating a deleted pod (upstream `SyncTerminatingPod` and `KillPod`): app containers,
//! then sidecars, stopped within what is left of the grace period (cut short when the pod's
//! grace period is), the sandbox stopped and removed, volumes and directories cleaned, the final
//! status posted, and the delete finalized.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use tokio::time::Instant;

use super::{
    find_container, pod_grace_period, pod_key, Instance, PodWorker, SyncResult,
    MINIMUM_GRACE_PERIOD, RESYNC, SLOW_RESYNC,
};
use crate::podconfig;
use crate::runtime::Runtime;

/// Waits for `kills` (containers being stopped); if meanwhile the pod's grace period gets
/// shorter than `grace` (or the pod is gone from the API: a force delete), stops `ids` again
/// with the shorter timeout (at least the 2 s minimum). Returns the shortened grace, if any.
async fn kill_or_shorten(
    runtime: Arc<dyn Runtime>,
    kills: impl std::future::Future<Output = ()>,
    ids: Vec<String>,
    mut updates: Option<tokio::sync::watch::Receiver<Option<Pod>>>,
    mut grace: Duration,
) -> Option<Duration> {
    tokio::pin!(kills);
    let mut shortened = None;
    loop {
        let next_grace = async {
            let Some(rx) = updates.as_mut() else {
                return futures::future::pending().await;
            };
            if rx.changed().await.is_err() {
                return futures::future::pending().await;
            }
            let pod = rx.borrow().clone();
            match pod {
                Some(p) => p.metadata.deletion_grace_period_seconds.unwrap_or(i64::MAX),
                None => 0,
            }
        };
        tokio::select! {
            () = &mut kills => return shortened,
            seconds = next_grace => {
                let new = Duration::from_secs(seconds.max(0) as u64).max(MINIMUM_GRACE_PERIOD);
                if new < grace {
                    grace = new;
                    shortened = Some(new);
                    for id in &ids {
                        let (runtime, id) = (runtime.clone(), id.clone());
                        tokio::spawn(async move {
                            if let Err(e) = runtime.stop_container(&id, new.as_secs() as i64).await {
                                tracing::debug!(container = %id, error = %e, "stopping again with a shorter grace period");
                            }
                        });
                    }
                }
            }
        }
    }
}

impl PodWorker {
    /// Terminates the pod: containers stopped within the grace period (preStop first), the
    /// sandbox stopped and removed, volumes cleaned, the final status posted, and — unless the
    /// pod is already `gone` from the API — the delete finalized with grace period 0.
    pub async fn terminate(&mut self, pod: &Pod, gone: bool) -> SyncResult {
        let grace = Duration::from_secs(
            pod.metadata
                .deletion_grace_period_seconds
                .map(|g| g.max(0) as u64)
                .unwrap_or_else(|| pod_grace_period(pod).as_secs()),
        );
        // terminationGracePeriodSeconds has no upper bound: cap it at a day.
        let grace = grace.min(Duration::from_secs(86_400));
        // Refused once terminated: then only the delete is left to finalize.
        if self
            .state
            .lifecycle
            .start_terminating(Instant::now() + grace)
        {
            let observed = match self.observe().await {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(pod = %pod_key(pod), error = %e, "looking at the runtime");
                    return SyncResult::Resync(RESYNC);
                }
            };
            let spec = pod.spec.clone().unwrap_or_default();
            let mut running: Vec<(&String, &Instance)> = observed
                .containers
                .iter()
                .flat_map(|(name, list)| {
                    list.iter().filter(|i| i.running()).map(move |i| (name, i))
                })
                .collect();
            running
                .sort_by_key(|(name, _)| find_container(&spec, name).is_some_and(|(_, init)| init));
            // App containers first, then sidecars (upstream stops sidecars last), each group
            // with what is left of the grace period.
            for sidecars in [false, true] {
                let group: Vec<(&String, &Instance)> = running
                    .iter()
                    .filter(|(n, _)| {
                        find_container(&spec, n).is_some_and(|(_, init)| init) == sidecars
                    })
                    .copied()
                    .collect();
                if group.is_empty() {
                    continue;
                }
                let remaining = self.state.lifecycle.deadline().map_or(Duration::ZERO, |d| {
                    d.saturating_duration_since(Instant::now())
                });
                let mut kills = vec![];
                for (name, instance) in &group {
                    self.event(
                        pod,
                        Some((name, sidecars)),
                        false,
                        "Killing",
                        format!("Stopping container {name}"),
                    );
                    kills.push(self.kill_container(pod, &instance.id, name, remaining));
                }
                let ids = group.iter().map(|(_, i)| i.id.clone()).collect();
                let shortened = kill_or_shorten(
                    self.shared.runtime.clone(),
                    async {
                        futures::future::join_all(kills).await;
                    },
                    ids,
                    self.updates.clone(),
                    remaining,
                )
                .await;
                if let Some(grace) = shortened {
                    self.state
                        .lifecycle
                        .shorten_deadline(Instant::now() + grace);
                }
            }
            self.stop_sandboxes(&observed).await;
            self.shared.probes.remove_pod(&self.uid);
            // The final status, from the stopped containers, before they are removed.
            let stopped = self.observe().await.unwrap_or(observed);
            if !gone {
                // Terminating: the status is that of a deleted pod.
                self.post_status(pod, &stopped, false, vec![], true).await;
            }
            for s in &stopped.sandboxes {
                if let Err(e) = self.shared.runtime.remove_pod_sandbox(&s.id).await {
                    tracing::warn!(sandbox = %s.id, error = %e, "removing a sandbox");
                    return SyncResult::Resync(RESYNC);
                }
            }
            // Unmounting and deleting files blocks: off the async threads.
            let (shared, uid) = (self.shared.clone(), self.uid.clone());
            let cleaned = tokio::task::spawn_blocking(move || shared.volumes.cleanup(&uid)).await;
            let failed: Option<&dyn std::fmt::Display> = match &cleaned {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(e) => Some(e),
            };
            if let Some(e) = failed {
                tracing::warn!(pod = %pod_key(pod), error = %e, "cleaning up volumes");
                return SyncResult::Resync(RESYNC);
            }
            // CSI volumes this pod was the last user of on the node go from their global
            // mount; a failure is retried by the next cleanup (this pod's is done).
            if let Err(e) = self.shared.volumes.unstage_unused_csi_volumes().await {
                tracing::warn!(pod = %pod_key(pod), error = %e, "unstaging CSI volumes");
            }
            let _ = std::fs::remove_dir_all(self.shared.node.pods_dir.join(&self.uid));
            let logs = podconfig::pod_log_directory(
                &self.shared.node.sandbox.pod_logs_root,
                pod.metadata.namespace.as_deref().unwrap_or_default(),
                pod.metadata.name.as_deref().unwrap_or_default(),
                &self.uid,
            );
            let _ = std::fs::remove_dir_all(logs);
            self.shared.images.forget_pod(&self.uid);
            self.state.lifecycle.terminated();
        }
        if gone {
            return SyncResult::Finished;
        }
        match self.shared.api.finalize_delete(pod).await {
            Ok(()) => SyncResult::Resync(SLOW_RESYNC),
            Err(e) if matches!(&e, kube::Error::Api(s) if s.code == 404 || s.code == 409) => {
                SyncResult::Finished
            }
            Err(e) => {
                tracing::warn!(pod = %pod_key(pod), error = %e, "finalizing the delete");
                SyncResult::Resync(RESYNC)
            }
        }
    }
}

/// Upstream `TerminatePod`: a deleted pod's containers that never ended are reported terminated
/// with `ContainerStatusUnknown` (137), and the pod ends Failed if it was not terminal yet.
pub fn terminal_status_of_deleted_pod(status: &mut PodStatus) {
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateTerminated};
    let statuses = status
        .container_statuses
        .iter_mut()
        .chain(status.init_container_statuses.iter_mut())
        .flatten();
    for c in statuses {
        let ended = c.state.as_ref().is_some_and(|s| s.terminated.is_some());
        if !ended {
            c.last_state = c
                .state
                .take()
                .filter(|s| s.running.is_some())
                .or(c.last_state.take());
            c.state = Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 137,
                    reason: Some("ContainerStatusUnknown".into()),
                    message: Some(
                        "The container could not be located when the pod was terminated".into(),
                    ),
                    ..Default::default()
                }),
                ..Default::default()
            });
            c.ready = false;
            c.started = Some(false);
        }
    }
    if !matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        status.phase = Some("Failed".into());
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use serde_json::json;

    use crate::pod_worker::testing::*;
    use crate::pod_worker::*;
    use crate::runtime::fake::{Call, Op};
    use crate::runtime::RuntimeError;
    use crate::volume::StaticObjectSource;

    fn deleted(
        mut p: k8s_openapi::api::core::v1::Pod,
        grace: i64,
    ) -> k8s_openapi::api::core::v1::Pod {
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            Timestamp::now(),
        ));
        p.metadata.deletion_grace_period_seconds = Some(grace);
        p
    }

    #[tokio::test(start_paused = true)]
    async fn a_termination_that_fails_a_step_keeps_its_deadline_until_terminated() {
        let mut f = fixture(StaticObjectSource::new());
        let p = pod(json!({"containers": [image("c")]}));
        f.worker.sync(&p).await;
        assert_eq!(f.worker.state.lifecycle, Lifecycle::Syncing);
        let p = deleted(p, 30);
        let began = tokio::time::Instant::now();
        let unavailable = || RuntimeError::Unavailable("busy".into());
        f.runtime.fail_next(Op::RemovePodSandbox, unavailable());
        assert_eq!(f.worker.sync(&p).await, SyncResult::Resync(RESYNC));
        let deadline = f.worker.state.lifecycle.deadline().expect("terminating");
        assert_eq!(deadline, began + Duration::from_secs(30));
        assert_eq!(*f.api.deletes.lock(), 0);

        // Retried later: the deadline is the one set when termination began.
        tokio::time::advance(Duration::from_secs(10)).await;
        f.runtime.fail_next(Op::RemovePodSandbox, unavailable());
        assert_eq!(f.worker.sync(&p).await, SyncResult::Resync(RESYNC));
        assert_eq!(f.worker.state.lifecycle.deadline(), Some(deadline));

        assert_eq!(f.worker.sync(&p).await, SyncResult::Resync(SLOW_RESYNC));
        assert_eq!(f.worker.state.lifecycle, Lifecycle::Terminated);
        assert_eq!(*f.api.deletes.lock(), 1);
        // Terminated: nothing is stopped again, only the delete finalized.
        f.runtime.clear_calls();
        assert_eq!(f.worker.sync(&p).await, SyncResult::Resync(SLOW_RESYNC));
        assert!(f.runtime.calls().is_empty(), "{:?}", f.runtime.calls());
        assert_eq!(*f.api.deletes.lock(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pod_seen_again_after_it_was_gone_runs_again() {
        let mut f = fixture(StaticObjectSource::new());
        let p = pod(json!({"containers": [image("c")]}));
        f.worker.sync(&p).await;
        // Gone from the API (a stale list), and the termination fails a step.
        f.runtime.fail_next(
            Op::RemovePodSandbox,
            RuntimeError::Unavailable("busy".into()),
        );
        assert_eq!(
            f.worker.terminate(&p, true).await,
            SyncResult::Resync(RESYNC)
        );
        assert!(f.worker.state.lifecycle.termination_started());
        // Back, not deleted: the termination is dropped and the pod syncs as before.
        f.worker.sync(&p).await;
        assert_eq!(f.worker.state.lifecycle, Lifecycle::Syncing);
        assert_eq!(last_status(&f.api)["phase"], "Running");
    }

    #[tokio::test(start_paused = true)]
    async fn deletion_stops_containers_within_the_grace_period_then_finalizes() {
        let mut f = fixture(StaticObjectSource::new());
        let mut p = pod(
            json!({"terminationGracePeriodSeconds": 30, "containers": [image("c"), image("d")]}),
        );
        f.worker.sync(&p).await;
        assert_eq!(created(&f.runtime).len(), 2);
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            Timestamp::now(),
        ));
        p.metadata.deletion_grace_period_seconds = Some(5);
        f.runtime.clear_calls();
        let result = f.worker.sync(&p).await;
        assert_eq!(result, SyncResult::Resync(SLOW_RESYNC));
        let calls = f.runtime.calls();
        let stops: Vec<i64> = calls
            .iter()
            .filter_map(|c| match c {
                Call::StopContainer(_, t) => Some(*t),
                _ => None,
            })
            .collect();
        assert_eq!(
            stops,
            [5, 5],
            "each container gets the pod's remaining grace"
        );
        let stop_sandbox = calls
            .iter()
            .position(|c| matches!(c, Call::StopPodSandbox(_)))
            .expect("sandbox stopped");
        let remove_sandbox = calls
            .iter()
            .position(|c| matches!(c, Call::RemovePodSandbox(_)))
            .expect("sandbox removed");
        assert!(stop_sandbox < remove_sandbox);
        assert_eq!(*f.api.deletes.lock(), 1);
        let status = last_status(&f.api);
        assert!(
            status["containerStatuses"][0]["state"]["terminated"].is_object(),
            "{status}"
        );
        assert!(f.runtime.sandbox_ids().is_empty());
        assert!(reasons(&mut f.events).contains(&"Killing".to_string()));
        // Gone from the API afterwards: nothing more to do.
        assert_eq!(f.worker.terminate(&p, true).await, SyncResult::Finished);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pod_deleted_before_its_container_ran_ends_failed() {
        let mut f = fixture(StaticObjectSource::new());
        f.runtime
            .fail_pull("r/missing:1", RuntimeError::NotFound("nope".into()));
        let mut p = pod(json!({"containers": [{"name": "c", "image": "r/missing:1"}]}));
        f.worker.sync(&p).await;
        assert_eq!(last_status(&f.api)["phase"], "Pending");
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            Timestamp::now(),
        ));
        p.metadata.deletion_grace_period_seconds = Some(30);
        f.worker.sync(&p).await;
        let status = last_status(&f.api);
        assert_eq!(status["phase"], "Failed");
        let terminated = &status["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(terminated["reason"], "ContainerStatusUnknown");
        assert_eq!(terminated["exitCode"], 137);
        assert_eq!(*f.api.deletes.lock(), 1);
    }
}
