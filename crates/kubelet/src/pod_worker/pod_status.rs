//! The status a pod worker posts (upstream `generateAPIPodStatus` and the status manager's
//! rule): the pod's facts from the runtime, the worker's memory and the prober, turned into a
//! `PodStatus` by [`crate::status`] and patched only when it changed.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};
use tracing::Instrument;

use super::journey::{first_container_start, is_ready};
use super::{
    ns_to_timestamp, pod_key, terminal_status_of_deleted_pod, Instance, Observed, PodWorker,
};
use crate::journey::{pod_step, start_at};
use crate::runtime::v1;
use crate::status::{self, ContainerFacts, PodFacts, RuntimeState, Terminated};

/// The termination of an exited instance, as the status shows it.
pub(super) fn terminated_of(instance: &Instance) -> Option<Terminated> {
    let code = instance.exit_code()?;
    let s = &instance.status;
    Some(Terminated {
        exit_code: code,
        signal: None,
        reason: if s.reason.is_empty() {
            if code == 0 { "Completed" } else { "Error" }.to_string()
        } else {
            s.reason.clone()
        },
        message: s.message.clone(),
        started_at: ns_to_timestamp(s.started_at),
        finished_at: ns_to_timestamp(s.finished_at),
        container_id: instance.id.clone(),
    })
}

impl PodWorker {
    /// The pod's facts for the status computation.
    fn facts(
        &self,
        pod: &Pod,
        observed: &Observed,
        sandbox_ready: bool,
        pod_ips: Vec<String>,
        terminal: bool,
    ) -> PodFacts {
        let spec = pod.spec.clone().unwrap_or_default();
        let container_facts = |c: &Container| -> Option<ContainerFacts> {
            let waiting = self.state.waiting.get(&c.name);
            let list = observed
                .containers
                .get(&c.name)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let Some(latest) = list.first() else {
                let (reason, message) = waiting?.clone();
                return Some(ContainerFacts::new(
                    &c.name,
                    RuntimeState::Waiting { reason, message },
                ));
            };
            let s = &latest.status;
            let mut last_termination = list.get(1).and_then(terminated_of);
            let state = match latest.state() {
                v1::ContainerState::ContainerRunning => RuntimeState::Running {
                    started_at: ns_to_timestamp(s.started_at).unwrap_or(self.state.first_seen),
                },
                v1::ContainerState::ContainerExited => {
                    let mut t = terminated_of(latest).unwrap_or_default();
                    if t.message.is_empty() {
                        t.message = self.termination_message(&c.name, latest.attempt);
                    }
                    match waiting.filter(|_| !terminal) {
                        // Waiting to be restarted: the exit becomes the last state.
                        Some((reason, message)) => {
                            last_termination = Some(t);
                            RuntimeState::Waiting {
                                reason: reason.clone(),
                                message: message.clone(),
                            }
                        }
                        None => RuntimeState::Terminated(t),
                    }
                }
                _ => RuntimeState::Waiting {
                    reason: waiting
                        .map(|w| w.0.clone())
                        .unwrap_or_else(|| "ContainerCreating".into()),
                    message: waiting.map(|w| w.1.clone()).unwrap_or_default(),
                },
            };
            let mut facts = ContainerFacts::new(&c.name, state);
            facts.last_termination = last_termination;
            facts.restart_count = latest.attempt as i32;
            facts.image = c.image.clone().unwrap_or_default();
            facts.image_id = s.image_ref.clone();
            facts.container_id = latest.id.clone();
            facts.readiness = self.shared.probes.readiness(&self.uid, &c.name);
            facts.startup = self.shared.probes.startup(&self.uid, &c.name);
            Some(facts)
        };
        PodFacts {
            containers: spec.containers.iter().filter_map(container_facts).collect(),
            init_containers: spec
                .init_containers
                .iter()
                .flatten()
                .filter_map(container_facts)
                .collect(),
            ephemeral_containers: spec
                .ephemeral_containers
                .iter()
                .flatten()
                .filter_map(|e| container_facts(&crate::podconfig::ephemeral_as_container(e)))
                .collect(),
            sandbox_ready,
            pod_ips,
            host_ips: self.shared.node.node_ips.clone(),
            start_time: Some(self.state.first_seen),
            pod_is_terminal: terminal,
            now: Timestamp::now(),
        }
    }

    fn termination_message(&self, name: &str, attempt: u32) -> String {
        let path = self
            .shared
            .node
            .pods_dir
            .join(&self.uid)
            .join("containers")
            .join(name)
            .join(attempt.to_string());
        let mut message = std::fs::read(path).unwrap_or_default();
        message.truncate(4096);
        String::from_utf8_lossy(&message).into_owned()
    }

    /// Computes the status and patches it if it changed since the last post (the status
    /// manager's rule).
    pub(super) async fn post_status(
        &mut self,
        pod: &Pod,
        observed: &Observed,
        sandbox_ready: bool,
        pod_ips: Vec<String>,
        terminal: bool,
    ) {
        let facts = self.facts(pod, observed, sandbox_ready, pod_ips, terminal);
        let previous = self
            .state
            .last_status
            .clone()
            .or_else(|| pod.status.clone())
            .unwrap_or_default();
        let mut status = status::pod_status(pod, &facts, &previous);
        if self.state.lifecycle.termination_started() {
            terminal_status_of_deleted_pod(&mut status);
        }
        if let Some(eviction) = &self.state.evicted {
            eviction.apply(&mut status, facts.now);
        }
        if status.pod_ip.is_none() {
            // A stopped sandbox keeps its IP in the status, as upstream's.
            status.pod_ip = previous.pod_ip.clone();
            status.pod_ips = previous.pod_ips.clone();
        }
        let changed = match &self.state.last_status {
            Some(last) => status::status_changed(last, &status),
            None => pod
                .status
                .as_ref()
                .is_none_or(|s| status::status_changed(s, &status)),
        };
        if !changed {
            return;
        }
        // The status that first says Ready (again) is the journey step `ready`, from when the
        // first container started.
        let span = if is_ready(&status) && !is_ready(&previous) {
            let span = pod_step!(&pod.metadata, "ready");
            let first_start = pod
                .spec
                .as_ref()
                .and_then(|spec| first_container_start(spec, observed));
            start_at(&span, first_start);
            span
        } else {
            tracing::Span::none()
        };
        match self
            .shared
            .api
            .patch_status(pod, &status)
            .instrument(span.clone())
            .await
        {
            Ok(()) => self.state.last_status = Some(status),
            Err(e) => {
                ferry_journey::fail(&span, &e);
                tracing::debug!(pod = %pod_key(pod), error = %e, "patching the pod status")
            }
        }
    }
}
