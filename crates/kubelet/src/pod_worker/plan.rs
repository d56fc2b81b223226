//! The pure decision part of the pod worker (upstream `computePodActions`): what the runtime has
//! for a pod ([`Observed`]: sandboxes and container [`Instance`]s), and from that and the pod's
//! spec, what to do next ([`plan`]'s [`Step`]s) and whether the pod is done ([`all_done`]).
//! No I/O: tested by tables.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};

use crate::podconfig;
use crate::runtime::v1;

/// A container instance the runtime has for the pod.
#[derive(Clone, Debug)]
pub struct Instance {
    /// The runtime's id.
    pub id: String,
    /// The CRI attempt (the restart count).
    pub attempt: u32,
    /// The sandbox it runs in.
    pub sandbox_id: String,
    /// The spec hash it was created from.
    pub hash: Option<u32>,
    /// Its status.
    pub status: v1::ContainerStatus,
}

impl Instance {
    pub(super) fn state(&self) -> v1::ContainerState {
        v1::ContainerState::try_from(self.status.state)
            .unwrap_or(v1::ContainerState::ContainerUnknown)
    }

    pub(super) fn running(&self) -> bool {
        self.state() == v1::ContainerState::ContainerRunning
    }

    pub(super) fn exit_code(&self) -> Option<i32> {
        (self.state() == v1::ContainerState::ContainerExited).then_some(self.status.exit_code)
    }
}

/// What the runtime has for one pod.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Its sandboxes, newest first.
    pub sandboxes: Vec<v1::PodSandbox>,
    /// Container instances by container name, newest first (at most the two newest have a
    /// status; older ones are garbage and removed).
    pub containers: HashMap<String, Vec<Instance>>,
}

impl Observed {
    /// The newest sandbox if it is ready.
    pub fn ready_sandbox(&self) -> Option<&v1::PodSandbox> {
        self.sandboxes
            .first()
            .filter(|s| s.state == v1::PodSandboxState::SandboxReady as i32)
    }

    pub(super) fn latest(&self, name: &str) -> Option<&Instance> {
        self.containers.get(name).and_then(|v| v.first())
    }

    /// Only what runs in sandbox `id` (what the planner looks at: a new sandbox starts its
    /// init containers again).
    pub fn in_sandbox(&self, id: &str) -> Observed {
        Observed {
            sandboxes: self
                .sandboxes
                .iter()
                .filter(|s| s.id == id)
                .cloned()
                .collect(),
            containers: self
                .containers
                .iter()
                .map(|(name, list)| {
                    let list: Vec<Instance> = list
                        .iter()
                        .filter(|i| i.sandbox_id == id)
                        .cloned()
                        .collect();
                    (name.clone(), list)
                })
                .filter(|(_, list)| !list.is_empty())
                .collect(),
        }
    }
}

/// One thing the worker does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Start (or restart) a container.
    Start {
        /// Its name.
        name: String,
        /// It is an init container.
        init: bool,
    },
    /// Kill a running container (a failed liveness/startup probe, or its spec changed).
    Kill {
        /// The instance.
        id: String,
        /// Its name.
        name: String,
        /// Why, for the event.
        reason: String,
    },
    /// Start an ephemeral container (`kubectl debug`): once, never restarted.
    StartEphemeral {
        /// Its name.
        name: String,
    },
    /// The pod failed (an init container failed under `restartPolicy: Never`).
    PodFailed,
}

/// What the planner knows about one container besides the runtime.
pub trait ProbeView {
    /// Which probe of this instance failed past its threshold (`liveness` or `startup`), if
    /// one did: the container must be restarted.
    fn failed_probe(&self, name: &str, id: &str) -> Option<&'static str>;
    /// Whether the container's startup probe has succeeded (true when it has none).
    fn started(&self, container: &Container) -> bool;
}

pub(super) fn restart_policy(spec: &PodSpec) -> &str {
    spec.restart_policy.as_deref().unwrap_or("Always")
}

fn should_restart(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

pub(super) fn is_sidecar(container: &Container) -> bool {
    container.restart_policy.as_deref() == Some("Always")
}

/// What to do next for a pod whose sandbox is ready (upstream `computePodActions`): the next
/// init container, or every app container that should (re)start, plus kills for failed
/// liveness probes and changed specs. Pure.
pub fn plan(spec: &PodSpec, observed: &Observed, probes: &dyn ProbeView) -> Vec<Step> {
    let policy = restart_policy(spec);
    let mut steps = vec![];
    let start = |name: &str, init: bool| Step::Start {
        name: name.to_string(),
        init,
    };
    let kill_if_unhealthy = |c: &Container, i: &Instance, steps: &mut Vec<Step>| -> bool {
        let hash = podconfig::container_hash(c);
        let reason = if let Some(probe) = probes.failed_probe(&c.name, &i.id) {
            let then = if policy == "Never" {
                ""
            } else {
                ", will be restarted"
            };
            format!("Container {} failed {probe} probe{then}", c.name)
        } else if i.hash.is_some_and(|h| h != hash) {
            format!("Container {} definition changed, will be restarted", c.name)
        } else {
            return false;
        };
        steps.push(Step::Kill {
            id: i.id.clone(),
            name: c.name.clone(),
            reason,
        });
        true
    };

    // Init containers run only until an app container exists in this sandbox.
    let initialized = spec
        .containers
        .iter()
        .any(|c| observed.latest(&c.name).is_some());
    if !initialized {
        for c in spec.init_containers.iter().flatten() {
            let sidecar = is_sidecar(c);
            match observed.latest(&c.name) {
                None => {
                    steps.push(start(&c.name, true));
                    return steps;
                }
                Some(i) if i.running() => {
                    if sidecar {
                        if kill_if_unhealthy(c, i, &mut steps) {
                            steps.push(start(&c.name, true));
                            return steps;
                        }
                        if !probes.started(c) {
                            return steps; // the next one waits for its startup probe
                        }
                        continue;
                    }
                    return steps; // wait for it
                }
                Some(i) => match i.exit_code() {
                    Some(0) if !sidecar => continue,
                    Some(code) if !sidecar && !should_restart(policy, code) => {
                        return vec![Step::PodFailed];
                    }
                    // A failed init container, a stopped sidecar, or one created and never
                    // started: (re)start it.
                    _ => {
                        steps.push(start(&c.name, true));
                        return steps;
                    }
                },
            }
        }
    } else {
        // Sidecars keep running next to the app containers.
        for c in spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| is_sidecar(c))
        {
            match observed.latest(&c.name) {
                Some(i) if i.running() => {
                    if kill_if_unhealthy(c, i, &mut steps) {
                        steps.push(start(&c.name, true));
                    }
                }
                _ => steps.push(start(&c.name, true)),
            }
        }
    }
    for c in &spec.containers {
        match observed.latest(&c.name) {
            None => steps.push(start(&c.name, false)),
            Some(i) if i.running() => {
                if kill_if_unhealthy(c, i, &mut steps) && policy != "Never" {
                    steps.push(start(&c.name, false));
                }
            }
            Some(i) => match i.exit_code() {
                Some(code) if !should_restart(policy, code) => {}
                _ => steps.push(start(&c.name, false)),
            },
        }
    }
    // Ephemeral containers start once the pod's app containers exist, and run once.
    for c in spec.ephemeral_containers.iter().flatten() {
        if observed.latest(&c.name).is_none() {
            steps.push(Step::StartEphemeral {
                name: c.name.clone(),
            });
        }
    }
    steps
}

/// Whether every container of the pod has finished for good (restart policy Never or
/// OnFailure), so the pod is terminal.
pub fn all_done(spec: &PodSpec, observed: &Observed) -> bool {
    let policy = restart_policy(spec);
    if policy == "Always" {
        return false;
    }
    spec.containers.iter().all(|c| {
        observed
            .latest(&c.name)
            .and_then(Instance::exit_code)
            .is_some_and(|code| !should_restart(policy, code))
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::pod_worker::go_duration;
    use crate::pod_worker::testing::image;

    #[test]
    fn plan_restarts_per_policy_and_kills_changed_containers() {
        struct NoProbes;
        impl ProbeView for NoProbes {
            fn failed_probe(&self, _: &str, _: &str) -> Option<&'static str> {
                None
            }
            fn started(&self, _: &Container) -> bool {
                true
            }
        }
        let spec: PodSpec =
            serde_json::from_value(json!({"containers": [image("c")]})).expect("spec");
        let exited = |code| Instance {
            id: "x".into(),
            attempt: 0,
            sandbox_id: "s".into(),
            hash: None,
            status: v1::ContainerStatus {
                state: v1::ContainerState::ContainerExited as i32,
                exit_code: code,
                ..Default::default()
            },
        };
        let observed = |i: Instance| Observed {
            sandboxes: vec![],
            containers: [("c".to_string(), vec![i])].into(),
        };
        let start = vec![Step::Start {
            name: "c".into(),
            init: false,
        }];
        assert_eq!(
            plan(&spec, &observed(exited(0)), &NoProbes),
            start,
            "Always restarts"
        );
        let mut never = spec.clone();
        never.restart_policy = Some("Never".into());
        assert!(plan(&never, &observed(exited(1)), &NoProbes).is_empty());
        let mut on_failure = spec.clone();
        on_failure.restart_policy = Some("OnFailure".into());
        assert!(plan(&on_failure, &observed(exited(0)), &NoProbes).is_empty());
        assert_eq!(plan(&on_failure, &observed(exited(1)), &NoProbes), start);
        let mut running = exited(0);
        running.status.state = v1::ContainerState::ContainerRunning as i32;
        running.hash = Some(1);
        let steps = plan(&spec, &observed(running), &NoProbes);
        assert!(
            matches!(&steps[0], Step::Kill { reason, .. } if reason.contains("definition changed")),
            "{steps:?}"
        );
        // An ephemeral container starts once, and is not restarted when it ends.
        let mut debugged = spec.clone();
        debugged.ephemeral_containers = Some(vec![serde_json::from_value(
            json!({"name": "debugger", "image": "busybox", "targetContainerName": "c"}),
        )
        .expect("ephemeral")]);
        let mut app = exited(0);
        app.status.state = v1::ContainerState::ContainerRunning as i32;
        assert_eq!(
            plan(&debugged, &observed(app.clone()), &NoProbes),
            [Step::StartEphemeral {
                name: "debugger".into()
            }]
        );
        let mut both = observed(app);
        both.containers.insert("debugger".into(), vec![exited(0)]);
        assert!(plan(&debugged, &both, &NoProbes).is_empty());
        assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
    }
}
