//! Pod status as the kubelet reports it: [`pod_status`] turns the pod and plain facts about its
//! sandbox and containers into the `PodStatus` patched to `pods/status`, following upstream's
//! `generateAPIPodStatus`, `convertToAPIContainerStatuses`, `getPhase`, the probe manager's
//! `UpdatePodStatus` and the condition generators in `pkg/kubelet/status/generate.go`;
//! [`status_changed`] is the status manager's "is a patch needed" test; [`pod_qos_class`] is
//! upstream's `GetPodQOS`.
//!
//! The facts are what the pod worker knows from the runtime and the prober, already reduced to
//! the container's current state: a container waiting to be restarted carries the waiting reason
//! the worker recorded (`CrashLoopBackOff`, `ErrImagePull`, `CreateContainerConfigError`, ...)
//! and its previous exit as `last_termination`, which is what upstream derives from its reason
//! cache and the previous container instance.
//!
//! Timestamps are truncated to whole seconds, as the status manager's `normalizeStatus` does and
//! as the API stores them, so a status read back from the API compares equal to a regenerated one.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// The scheme of container IDs in statuses (`containerd://<id>`).
pub const CONTAINER_ID_SCHEME: &str = "containerd";

/// Condition types the kubelet owns (upstream `PodConditionByKubelet`); other conditions in the
/// pod's status (readiness gates, DisruptionTarget) are preserved as they are.
const KUBELET_CONDITIONS: &[&str] = &[
    "PodScheduled",
    "Ready",
    "Initialized",
    "ContainersReady",
    "PodReadyToStartContainers",
];

pub use ferry_api::qos::{compute_qos_class, pod_qos_class, QosClass};

/// How a container ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Terminated {
    /// Exit code.
    pub exit_code: i32,
    /// The signal that killed it, if the runtime says.
    pub signal: Option<i32>,
    /// The runtime's reason (`Completed`, `Error`, `OOMKilled`).
    pub reason: String,
    /// The termination message.
    pub message: String,
    /// When it started.
    pub started_at: Option<Timestamp>,
    /// When it exited.
    pub finished_at: Option<Timestamp>,
    /// The runtime's id of the instance that ended (`lastState.terminated.containerID`, which
    /// `kubectl logs --previous` reads).
    pub container_id: String,
}

/// A container's current state as the pod worker sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuntimeState {
    /// Not running: being created, pulling, backing off, or failed to be created.
    Waiting {
        /// `ContainerCreating`, `PodInitializing`, `ErrImagePull`, `ImagePullBackOff`,
        /// `CrashLoopBackOff`, `CreateContainerConfigError`, ...
        reason: String,
        /// Details for humans.
        message: String,
    },
    /// Running since `started_at`.
    Running {
        /// When it started.
        started_at: Timestamp,
    },
    /// Exited (and not, or not yet, restarted).
    Terminated(Terminated),
}

/// Plain facts about one container of the pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerFacts {
    /// The container's name in the spec.
    pub name: String,
    /// Its current state.
    pub state: RuntimeState,
    /// How the previous instance ended, if it was restarted.
    pub last_termination: Option<Terminated>,
    /// How many times it was restarted.
    pub restart_count: i32,
    /// The image as the spec names it.
    pub image: String,
    /// The image's digest reference (`repo@sha256:…`).
    pub image_id: String,
    /// The runtime's container id, without scheme; empty if no container exists yet.
    pub container_id: String,
    /// The latest readiness probe result; `None` if the probe has not run (or there is none).
    pub readiness: Option<bool>,
    /// The latest startup probe result; `None` if it has not run (or there is none).
    pub startup: Option<bool>,
}

impl ContainerFacts {
    /// Facts for a container in `state`, with no restarts, ids or probe results.
    pub fn new(name: &str, state: RuntimeState) -> ContainerFacts {
        ContainerFacts {
            name: name.to_string(),
            state,
            last_termination: None,
            restart_count: 0,
            image: String::new(),
            image_id: String::new(),
            container_id: String::new(),
            readiness: None,
            startup: None,
        }
    }
}

/// Plain facts about the pod on this node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodFacts {
    /// App containers the runtime knows (missing ones are waiting to be created).
    pub containers: Vec<ContainerFacts>,
    /// Init containers the runtime knows.
    pub init_containers: Vec<ContainerFacts>,
    /// Ephemeral containers the runtime knows.
    pub ephemeral_containers: Vec<ContainerFacts>,
    /// The current sandbox is ready with its network set up.
    pub sandbox_ready: bool,
    /// The sandbox's IPs, primary first.
    pub pod_ips: Vec<String>,
    /// The node's IPs, primary first.
    pub host_ips: Vec<String>,
    /// When the kubelet first saw the pod (used if the previous status has no start time).
    pub start_time: Option<Timestamp>,
    /// The pod will not run containers again (deleted and stopped, or finished).
    pub pod_is_terminal: bool,
    /// Now, for condition transition times.
    pub now: Timestamp,
}

/// The pod's status (upstream `generateAPIPodStatus`). `previous` is the status last generated
/// for this pod (the status manager's copy, or `pod.status` if there is none); `pod.status` is
/// what the API has, used for terminal phases and conditions the kubelet does not own.
pub fn pod_status(pod: &Pod, facts: &PodFacts, previous: &PodStatus) -> PodStatus {
    let spec = pod.spec.clone().unwrap_or_default();
    let api_status = pod.status.clone().unwrap_or_default();
    let init_specs = spec.init_containers.clone().unwrap_or_default();
    let has_init = !init_specs.is_empty();

    let mut container_statuses = container_statuses(
        &spec.containers,
        &facts.containers,
        previous.container_statuses.as_deref().unwrap_or_default(),
        has_init,
        false,
    );
    container_statuses.sort_by(|a, b| a.name.cmp(&b.name));
    let init_container_statuses = container_statuses_init(&init_specs, facts, previous);
    let ephemeral_statuses = ephemeral_container_statuses(&spec, facts, previous);

    let mut all: Vec<ContainerStatus> = container_statuses.clone();
    all.extend(init_container_statuses.iter().cloned());
    let has_initialized = facts
        .containers
        .iter()
        .any(|c| !c.container_id.is_empty() && spec.containers.iter().any(|s| s.name == c.name));
    let mut phase = pod_phase(&spec, &all, facts.pod_is_terminal, has_initialized);

    let terminal = |p: Option<&str>| matches!(p, Some("Failed") | Some("Succeeded"));
    if !terminal(Some(phase)) {
        if terminal(previous.phase.as_deref()) {
            phase = previous.phase.as_deref().unwrap_or(phase);
        } else if terminal(api_status.phase.as_deref()) {
            phase = api_status.phase.as_deref().unwrap_or(phase);
        }
    }
    // Pods never leave a terminal phase the API already shows.
    if terminal(api_status.phase.as_deref()) {
        phase = api_status.phase.as_deref().unwrap_or(phase);
    }
    let phase = phase.to_string();
    let (mut reason, mut message) = (None, None);
    if previous.phase.as_deref() == Some(phase.as_str()) {
        reason = previous.reason.clone().or(api_status.reason.clone());
        message = previous.message.clone().or(api_status.message.clone());
    }

    // Conditions: others' first, then the kubelet's in upstream's order.
    let mut conditions: Vec<PodCondition> = api_status
        .conditions
        .iter()
        .flatten()
        .filter(|c| !KUBELET_CONDITIONS.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    let now = secs(facts.now);
    let transition = |type_: &str, status: &str| -> Time {
        previous
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == type_ && c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or(Time(now))
    };
    let condition = |type_: &str, status: bool, reason: Option<String>, message: Option<String>| {
        let status = if status { "True" } else { "False" };
        PodCondition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason,
            message,
            last_transition_time: Some(transition(type_, status)),
            ..Default::default()
        }
    };
    conditions.push(condition(
        "PodReadyToStartContainers",
        facts.sandbox_ready,
        None,
        None,
    ));
    let (ok, r, m) = initialized_condition(&spec, &all, &phase);
    conditions.push(condition("Initialized", ok, r, m));
    let (containers_ready, r, m) = containers_ready_condition(&spec, &all, &phase);
    let (ready, ready_reason, ready_message) = if containers_ready {
        readiness_gates(&spec, &conditions)
    } else {
        (false, r.clone(), m.clone())
    };
    conditions.push(condition("Ready", ready, ready_reason, ready_message));
    conditions.push(condition("ContainersReady", containers_ready, r, m));
    let scheduled = previous
        .conditions
        .iter()
        .flatten()
        .chain(api_status.conditions.iter().flatten())
        .find(|c| c.type_ == "PodScheduled" && c.status == "True")
        .cloned()
        .unwrap_or_else(|| condition("PodScheduled", true, None, None));
    conditions.push(scheduled);

    let mut pod_ips: Vec<String> = facts.pod_ips.clone();
    let host_ips: Vec<String> = facts.host_ips.iter().take(2).cloned().collect();
    if spec.host_network.unwrap_or(false) && pod_ips.is_empty() {
        pod_ips = host_ips.clone();
    }
    let start_time = previous
        .start_time
        .clone()
        .or_else(|| facts.start_time.map(|t| Time(secs(t))))
        .or(Some(Time(now)));

    let mut status = PodStatus {
        phase: Some(phase),
        reason,
        message,
        conditions: Some(conditions),
        container_statuses: Some(container_statuses),
        init_container_statuses: (!init_container_statuses.is_empty())
            .then_some(init_container_statuses),
        ephemeral_container_statuses: (!ephemeral_statuses.is_empty())
            .then_some(ephemeral_statuses),
        host_ip: host_ips.first().cloned(),
        host_ips: (!host_ips.is_empty()).then(|| {
            host_ips
                .iter()
                .map(|ip| HostIP { ip: ip.clone() })
                .collect()
        }),
        pod_ip: pod_ips.first().cloned(),
        pod_ips: (!pod_ips.is_empty())
            .then(|| pod_ips.iter().map(|ip| PodIP { ip: ip.clone() }).collect()),
        start_time,
        qos_class: Some(pod_qos_class(pod).as_str().to_string()),
        nominated_node_name: api_status.nominated_node_name.clone(),
        ..Default::default()
    };
    normalize(&mut status);
    status
}

fn container_statuses_init(
    init_specs: &[Container],
    facts: &PodFacts,
    previous: &PodStatus,
) -> Vec<ContainerStatus> {
    // Init container statuses stay in spec order.
    container_statuses(
        init_specs,
        &facts.init_containers,
        previous
            .init_container_statuses
            .as_deref()
            .unwrap_or_default(),
        !init_specs.is_empty(),
        true,
    )
}

/// Ephemeral containers' statuses: reported, never ready, never part of the phase or
/// conditions.
fn ephemeral_container_statuses(
    spec: &PodSpec,
    facts: &PodFacts,
    previous: &PodStatus,
) -> Vec<ContainerStatus> {
    let specs: Vec<Container> = spec
        .ephemeral_containers
        .iter()
        .flatten()
        .map(crate::podconfig::ephemeral_as_container)
        .collect();
    let mut statuses = container_statuses(
        &specs,
        &facts.ephemeral_containers,
        previous
            .ephemeral_container_statuses
            .as_deref()
            .unwrap_or_default(),
        false,
        false,
    );
    for status in &mut statuses {
        status.ready = false;
        status.started = None;
    }
    statuses
}

/// Upstream `convertToAPIContainerStatuses` plus the probe manager's `started`/`ready`.
fn container_statuses(
    specs: &[Container],
    facts: &[ContainerFacts],
    previous: &[ContainerStatus],
    has_init_containers: bool,
    init: bool,
) -> Vec<ContainerStatus> {
    let default_reason = if has_init_containers {
        "PodInitializing"
    } else {
        "ContainerCreating"
    };
    specs
        .iter()
        .map(|spec| {
            let old = previous.iter().find(|s| s.name == spec.name);
            let Some(fact) = facts.iter().find(|f| f.name == spec.name) else {
                // No container yet: waiting, keeping what the old status knew.
                if let Some(old) = old.filter(|o| {
                    o.state
                        .as_ref()
                        .and_then(|s| s.terminated.as_ref())
                        .is_some()
                }) {
                    return old.clone();
                }
                return ContainerStatus {
                    name: spec.name.clone(),
                    image: spec.image.clone().unwrap_or_default(),
                    state: Some(ContainerState {
                        waiting: Some(ContainerStateWaiting {
                            reason: Some(default_reason.to_string()),
                            message: None,
                        }),
                        ..Default::default()
                    }),
                    restart_count: old.map(|o| o.restart_count).unwrap_or(0),
                    last_state: old.and_then(|o| o.last_state.clone()),
                    started: Some(false),
                    ..Default::default()
                };
            };
            let container_id = (!fact.container_id.is_empty())
                .then(|| format!("{CONTAINER_ID_SCHEME}://{}", fact.container_id));
            let state = match &fact.state {
                RuntimeState::Waiting { reason, message } => ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: non_empty(reason),
                        message: non_empty(message),
                    }),
                    ..Default::default()
                },
                RuntimeState::Running { started_at } => ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: Some(Time(*started_at)),
                    }),
                    ..Default::default()
                },
                RuntimeState::Terminated(t) => ContainerState {
                    terminated: Some(terminated(t, container_id.clone())),
                    ..Default::default()
                },
            };
            let last_state = match &fact.last_termination {
                Some(t) => Some(ContainerState {
                    terminated: Some(terminated(
                        t,
                        (!t.container_id.is_empty())
                            .then(|| format!("{CONTAINER_ID_SCHEME}://{}", t.container_id)),
                    )),
                    ..Default::default()
                }),
                // A restarted container whose previous instance is gone keeps the old record.
                None if fact.restart_count > 0 => old.and_then(|o| o.last_state.clone()),
                None => None,
            };
            let running = matches!(fact.state, RuntimeState::Running { .. });
            let started = running
                && match fact.startup {
                    Some(result) => result,
                    None => spec.startup_probe.is_none(),
                };
            let restartable = spec.restart_policy.as_deref() == Some("Always");
            let ready = if init && !restartable {
                matches!(&fact.state, RuntimeState::Terminated(t) if t.exit_code == 0)
            } else {
                started && (fact.readiness == Some(true) || spec.readiness_probe.is_none())
            };
            ContainerStatus {
                name: spec.name.clone(),
                image: if fact.image.is_empty() {
                    spec.image.clone().unwrap_or_default()
                } else {
                    fact.image.clone()
                },
                image_id: fact.image_id.clone(),
                container_id,
                state: Some(state),
                last_state,
                ready,
                started: Some(started),
                restart_count: fact.restart_count,
                ..Default::default()
            }
        })
        .collect()
}

fn terminated(t: &Terminated, container_id: Option<String>) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: t.exit_code,
        signal: t.signal,
        reason: non_empty(&t.reason),
        message: non_empty(&t.message),
        started_at: t.started_at.map(Time),
        finished_at: t.finished_at.map(Time),
        container_id,
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn state_of(status: &ContainerStatus) -> (bool, Option<&ContainerStateTerminated>, bool) {
    let state = status.state.clone().unwrap_or_default();
    let running = state.running.is_some();
    let waiting = state.waiting.is_some();
    let terminated = status.state.as_ref().and_then(|s| s.terminated.as_ref());
    (running, terminated, waiting)
}

fn last_terminated(status: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
}

fn is_restartable(container: &Container) -> bool {
    container.restart_policy.as_deref() == Some("Always")
}

/// Upstream `getPhase`.
fn pod_phase(
    spec: &PodSpec,
    statuses: &[ContainerStatus],
    pod_is_terminal: bool,
    pod_has_initialized: bool,
) -> &'static str {
    let find = |name: &str| statuses.iter().find(|s| s.name == name);
    let init_containers = spec.init_containers.as_deref().unwrap_or_default();
    let (mut pending_regular_init, mut pending_restartable_init, mut failed_init) = (0, 0, 0);
    for container in init_containers.iter().filter(|c| !is_restartable(c)) {
        let Some(status) = find(&container.name) else {
            pending_regular_init += 1;
            continue;
        };
        match state_of(status) {
            (true, _, _) => pending_regular_init += 1,
            (_, Some(t), _) => {
                if t.exit_code != 0 {
                    failed_init += 1;
                }
            }
            (_, None, true) => match last_terminated(status) {
                Some(t) if t.exit_code != 0 => failed_init += 1,
                Some(_) => {}
                None => pending_regular_init += 1,
            },
            _ => pending_regular_init += 1,
        }
    }
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for container in init_containers.iter().filter(|c| is_restartable(c)) {
        let Some(status) = find(&container.name) else {
            unknown += 1;
            continue;
        };
        match state_of(status) {
            (true, _, _) => {
                if status.started != Some(true) {
                    pending_restartable_init += 1;
                }
                running += 1;
            }
            (_, Some(_), _) => {}
            (_, None, true) => {
                if last_terminated(status).is_none() {
                    pending_restartable_init += 1;
                    waiting += 1;
                }
            }
            _ => {
                pending_restartable_init += 1;
                unknown += 1;
            }
        }
    }
    for container in &spec.containers {
        let Some(status) = find(&container.name) else {
            unknown += 1;
            continue;
        };
        match state_of(status) {
            (true, _, _) => running += 1,
            (_, Some(t), _) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            (_, None, true) => {
                if last_terminated(status).is_some() {
                    stopped += 1;
                } else {
                    waiting += 1;
                }
            }
            _ => unknown += 1,
        }
    }
    let restart_policy = spec.restart_policy.as_deref().unwrap_or("Always");
    if failed_init > 0 && restart_policy == "Never" {
        return "Failed";
    }
    if pending_regular_init > 0 || (pending_restartable_init > 0 && !pod_has_initialized) {
        return "Pending";
    }
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 && unknown == 0 {
        return "Running";
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if pod_is_terminal {
            return if stopped == succeeded {
                "Succeeded"
            } else {
                "Failed"
            };
        }
        if restart_policy == "Always" {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if restart_policy == "Never" {
            return "Failed";
        }
        return "Running";
    }
    "Pending"
}

/// Go's `fmt.Sprintf("%s", []string{...})`: `[a b]`.
fn go_list(names: &[String]) -> String {
    format!("[{}]", names.join(" "))
}

/// Upstream `GeneratePodInitializedCondition`: (status, reason, message).
fn initialized_condition(
    spec: &PodSpec,
    statuses: &[ContainerStatus],
    phase: &str,
) -> (bool, Option<String>, Option<String>) {
    let (mut unknown, mut incomplete) = (Vec::new(), Vec::new());
    for container in spec.init_containers.iter().flatten() {
        let Some(status) = statuses.iter().find(|s| s.name == container.name) else {
            unknown.push(container.name.clone());
            continue;
        };
        let done = if is_restartable(container) {
            status.started == Some(true)
        } else {
            status.ready
        };
        if !done {
            incomplete.push(container.name.clone());
        }
    }
    if phase == "Succeeded" && unknown.is_empty() {
        return (true, Some("PodCompleted".into()), None);
    }
    // A regular container that ran means initialization finished before (restartable init
    // containers may be restarting now).
    let regular_started = statuses.iter().any(|s| {
        spec.containers.iter().any(|c| c.name == s.name)
            && s.state
                .as_ref()
                .is_some_and(|st| st.running.is_some() || st.terminated.is_some())
    });
    if regular_started {
        return (true, None, None);
    }
    let mut messages = Vec::new();
    if !unknown.is_empty() {
        messages.push(format!(
            "containers with unknown status: {}",
            go_list(&unknown)
        ));
    }
    if !incomplete.is_empty() {
        messages.push(format!(
            "containers with incomplete status: {}",
            go_list(&incomplete)
        ));
    }
    if messages.is_empty() {
        (true, None, None)
    } else {
        (
            false,
            Some("ContainersNotInitialized".into()),
            Some(messages.join(", ")),
        )
    }
}

/// Upstream `GenerateContainersReadyCondition`: (status, reason, message).
fn containers_ready_condition(
    spec: &PodSpec,
    statuses: &[ContainerStatus],
    phase: &str,
) -> (bool, Option<String>, Option<String>) {
    let (mut unknown, mut unready) = (Vec::new(), Vec::new());
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| is_restartable(c));
    for container in sidecars.chain(spec.containers.iter()) {
        match statuses.iter().find(|s| s.name == container.name) {
            Some(status) if !status.ready => unready.push(container.name.clone()),
            Some(_) => {}
            None => unknown.push(container.name.clone()),
        }
    }
    if (phase == "Succeeded" && unknown.is_empty()) || phase == "Failed" {
        let reason = if phase == "Failed" {
            "PodFailed"
        } else {
            "PodCompleted"
        };
        return (false, Some(reason.into()), None);
    }
    let mut messages = Vec::new();
    if !unknown.is_empty() {
        messages.push(format!(
            "containers with unknown status: {}",
            go_list(&unknown)
        ));
    }
    if !unready.is_empty() {
        messages.push(format!(
            "containers with unready status: {}",
            go_list(&unready)
        ));
    }
    if messages.is_empty() {
        (true, None, None)
    } else {
        (
            false,
            Some("ContainersNotReady".into()),
            Some(messages.join(", ")),
        )
    }
}

/// The readiness-gate part of upstream `GeneratePodReadyCondition`.
fn readiness_gates(
    spec: &PodSpec,
    conditions: &[PodCondition],
) -> (bool, Option<String>, Option<String>) {
    let mut messages = Vec::new();
    for gate in spec.readiness_gates.iter().flatten() {
        match conditions.iter().find(|c| c.type_ == gate.condition_type) {
            None => messages.push(format!(
                "corresponding condition of pod readiness gate \"{}\" does not exist.",
                gate.condition_type
            )),
            Some(c) if c.status != "True" => messages.push(format!(
                "the status of pod readiness gate \"{}\" is not \"True\", but {}",
                gate.condition_type, c.status
            )),
            Some(_) => {}
        }
    }
    if messages.is_empty() {
        (true, None, None)
    } else {
        (
            false,
            Some("ReadinessGatesNotReady".into()),
            Some(messages.join(", ")),
        )
    }
}

/// Whether `new` differs from `old` in anything the kubelet reports (upstream
/// `isPodStatusByKubeletEqual`, negated): kubelet-owned conditions compare by status, reason and
/// message only (not their probe or transition times); everything else compares whole, with
/// times at second precision as the API stores them.
pub fn status_changed(old: &PodStatus, new: &PodStatus) -> bool {
    let owned = |status: &PodStatus| -> BTreeMap<String, (String, Option<String>, Option<String>)> {
        status
            .conditions
            .iter()
            .flatten()
            .filter(|c| KUBELET_CONDITIONS.contains(&c.type_.as_str()))
            .map(|c| {
                (
                    c.type_.clone(),
                    (c.status.clone(), c.reason.clone(), c.message.clone()),
                )
            })
            .collect()
    };
    if owned(old) != owned(new) {
        return true;
    }
    let mut old = old.clone();
    let mut new = new.clone();
    old.conditions = new.conditions.clone();
    normalize(&mut old);
    normalize(&mut new);
    old != new
}

/// Upstream `normalizeStatus`: times at second precision, app container statuses by name.
fn normalize(status: &mut PodStatus) {
    if let Some(statuses) = status.container_statuses.as_mut() {
        statuses.sort_by(|a, b| a.name.cmp(&b.name));
    }
    let fix = |t: &mut Option<Time>| {
        if let Some(time) = t {
            time.0 = secs(time.0);
        }
    };
    fix(&mut status.start_time);
    for condition in status.conditions.iter_mut().flatten() {
        fix(&mut condition.last_transition_time);
        fix(&mut condition.last_probe_time);
    }
    let statuses = status
        .container_statuses
        .iter_mut()
        .flatten()
        .chain(status.init_container_statuses.iter_mut().flatten());
    for cs in statuses {
        for state in [cs.state.as_mut(), cs.last_state.as_mut()]
            .into_iter()
            .flatten()
        {
            if let Some(running) = state.running.as_mut() {
                fix(&mut running.started_at);
            }
            if let Some(terminated) = state.terminated.as_mut() {
                fix(&mut terminated.started_at);
                fix(&mut terminated.finished_at);
            }
        }
    }
}

fn secs(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + second).expect("timestamp")
    }

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": spec,
        }))
        .expect("pod")
    }

    fn waiting(reason: &str) -> RuntimeState {
        RuntimeState::Waiting {
            reason: reason.into(),
            message: String::new(),
        }
    }

    fn running() -> RuntimeState {
        RuntimeState::Running { started_at: at(1) }
    }

    fn exit(code: i32, reason: &str) -> Terminated {
        Terminated {
            exit_code: code,
            reason: reason.into(),
            started_at: Some(at(1)),
            finished_at: Some(at(2)),
            ..Default::default()
        }
    }

    fn exited(code: i32, reason: &str) -> RuntimeState {
        RuntimeState::Terminated(exit(code, reason))
    }

    fn fact(name: &str, state: RuntimeState) -> ContainerFacts {
        ContainerFacts {
            image: "busybox:1".into(),
            image_id: "127.0.0.1:5000/busybox@sha256:abc".into(),
            container_id: format!("id-{name}"),
            ..ContainerFacts::new(name, state)
        }
    }

    /// Restarted: waiting for the next start with the previous exit recorded.
    fn restarting(name: &str, reason: &str, code: i32) -> ContainerFacts {
        ContainerFacts {
            last_termination: Some(Terminated {
                container_id: "c2".into(),
                ..exit(code, if code == 0 { "Completed" } else { "Error" })
            }),
            restart_count: 3,
            ..fact(name, waiting(reason))
        }
    }

    fn facts(containers: Vec<ContainerFacts>, init: Vec<ContainerFacts>) -> PodFacts {
        PodFacts {
            containers,
            init_containers: init,
            ephemeral_containers: vec![],
            sandbox_ready: true,
            pod_ips: vec!["10.42.0.5".into()],
            host_ips: vec!["192.168.1.10".into()],
            start_time: Some(at(0)),
            pod_is_terminal: false,
            now: at(10),
        }
    }

    fn generate(p: &Pod, f: &PodFacts) -> PodStatus {
        pod_status(p, f, &p.status.clone().unwrap_or_default())
    }

    fn condition<'a>(status: &'a PodStatus, type_: &str) -> &'a PodCondition {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == type_)
            .unwrap_or_else(|| panic!("no {type_} condition"))
    }

    /// What kubectl prints in the STATUS column (upstream `printPod`; the same logic as
    /// ferry-api's printer, restated here over typed statuses).
    fn kubectl_status(spec: &PodSpec, status: &PodStatus) -> String {
        let mut reason = status
            .reason
            .clone()
            .or(status.phase.clone())
            .unwrap_or_default();
        let init_specs = spec.init_containers.clone().unwrap_or_default();
        let mut initializing = false;
        for (i, cs) in status.init_container_statuses.iter().flatten().enumerate() {
            let state = cs.state.clone().unwrap_or_default();
            let restartable = init_specs
                .iter()
                .any(|c| c.name == cs.name && is_restartable(c));
            match (&state.terminated, &state.waiting) {
                (Some(t), _) if t.exit_code == 0 => continue,
                _ if restartable && cs.started == Some(true) => continue,
                (Some(t), _) => {
                    reason = match t.reason.as_deref() {
                        Some(r) if !r.is_empty() => format!("Init:{r}"),
                        _ => format!("Init:ExitCode:{}", t.exit_code),
                    };
                }
                (None, Some(w))
                    if w.reason
                        .as_deref()
                        .is_some_and(|r| !r.is_empty() && r != "PodInitializing") =>
                {
                    reason = format!("Init:{}", w.reason.clone().unwrap_or_default());
                }
                _ => reason = format!("Init:{i}/{}", init_specs.len()),
            }
            initializing = true;
            break;
        }
        let initialized = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Initialized" && c.status == "True");
        if !initializing || initialized {
            let mut has_running = false;
            for cs in status.container_statuses.iter().flatten().rev() {
                let state = cs.state.clone().unwrap_or_default();
                if let Some(r) = state
                    .waiting
                    .and_then(|w| w.reason)
                    .filter(|r| !r.is_empty())
                {
                    reason = r;
                } else if let Some(t) = &state.terminated {
                    reason = match t.reason.as_deref() {
                        Some(r) if !r.is_empty() => r.to_string(),
                        _ => format!("ExitCode:{}", t.exit_code),
                    };
                } else if cs.ready && state.running.is_some() {
                    has_running = true;
                }
            }
            if reason == "Completed" && has_running {
                let ready = status
                    .conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                reason = if ready { "Running" } else { "NotReady" }.into();
            }
        }
        reason
    }

    #[test]
    fn kubectl_status_column() {
        let app = json!([{"name": "app", "image": "busybox:1"}]);
        let with_init = |policy: &str| {
            json!({"restartPolicy": policy, "containers": app.clone(),
                   "initContainers": [{"name": "init", "image": "busybox:1"}]})
        };
        let plain = |policy: &str| json!({"restartPolicy": policy, "containers": app.clone()});
        let config_error = ContainerFacts {
            state: RuntimeState::Waiting {
                reason: "CreateContainerConfigError".into(),
                message: "configmap \"x\" not found".into(),
            },
            container_id: String::new(),
            ..fact("app", waiting(""))
        };
        // (name, spec, app facts, init facts, phase, STATUS column)
        type Case<'a> = (
            &'a str,
            serde_json::Value,
            Vec<ContainerFacts>,
            Vec<ContainerFacts>,
            &'a str,
            &'a str,
        );
        let cases: Vec<Case> = vec![
            (
                "creating",
                plain("Always"),
                vec![],
                vec![],
                "Pending",
                "ContainerCreating",
            ),
            (
                "running",
                plain("Always"),
                vec![fact("app", running())],
                vec![],
                "Running",
                "Running",
            ),
            (
                "completed",
                plain("Never"),
                vec![fact("app", exited(0, "Completed"))],
                vec![],
                "Succeeded",
                "Completed",
            ),
            (
                "completed on failure policy",
                plain("OnFailure"),
                vec![fact("app", exited(0, "Completed"))],
                vec![],
                "Succeeded",
                "Completed",
            ),
            (
                "error",
                plain("Never"),
                vec![fact("app", exited(1, "Error"))],
                vec![],
                "Failed",
                "Error",
            ),
            (
                "exited without reason",
                plain("Never"),
                vec![fact("app", exited(137, ""))],
                vec![],
                "Failed",
                "ExitCode:137",
            ),
            (
                "error, restarting (Always)",
                plain("Always"),
                vec![fact("app", exited(1, "Error"))],
                vec![],
                "Running",
                "Error",
            ),
            (
                "crash loop",
                plain("Always"),
                vec![restarting("app", "CrashLoopBackOff", 1)],
                vec![],
                "Running",
                "CrashLoopBackOff",
            ),
            (
                "crash loop (OnFailure)",
                plain("OnFailure"),
                vec![restarting("app", "CrashLoopBackOff", 2)],
                vec![],
                "Running",
                "CrashLoopBackOff",
            ),
            (
                "image pull error",
                plain("Always"),
                vec![ContainerFacts {
                    container_id: String::new(),
                    ..fact("app", waiting("ErrImagePull"))
                }],
                vec![],
                "Pending",
                "ErrImagePull",
            ),
            (
                "image pull backoff",
                plain("Always"),
                vec![ContainerFacts {
                    container_id: String::new(),
                    ..fact("app", waiting("ImagePullBackOff"))
                }],
                vec![],
                "Pending",
                "ImagePullBackOff",
            ),
            (
                "config error",
                plain("Always"),
                vec![config_error],
                vec![],
                "Pending",
                "CreateContainerConfigError",
            ),
            (
                "init pending",
                with_init("Always"),
                vec![],
                vec![],
                "Pending",
                "Init:0/1",
            ),
            (
                "init running",
                with_init("Always"),
                vec![],
                vec![fact("init", running())],
                "Pending",
                "Init:0/1",
            ),
            (
                "init error (Never)",
                with_init("Never"),
                vec![],
                vec![fact("init", exited(1, "Error"))],
                "Failed",
                "Init:Error",
            ),
            (
                "init error (Always)",
                with_init("Always"),
                vec![],
                vec![fact("init", exited(1, "Error"))],
                "Pending",
                "Init:Error",
            ),
            (
                "init crash loop",
                with_init("Always"),
                vec![],
                vec![restarting("init", "CrashLoopBackOff", 1)],
                "Pending",
                "Init:CrashLoopBackOff",
            ),
            (
                "init image pull",
                with_init("Always"),
                vec![],
                vec![ContainerFacts {
                    container_id: String::new(),
                    ..fact("init", waiting("ErrImagePull"))
                }],
                "Pending",
                "Init:ErrImagePull",
            ),
            (
                "init done, app creating",
                with_init("Always"),
                vec![],
                vec![fact("init", exited(0, "Completed"))],
                "Pending",
                "PodInitializing",
            ),
            (
                "init done, app running",
                with_init("Always"),
                vec![fact("app", running())],
                vec![fact("init", exited(0, "Completed"))],
                "Running",
                "Running",
            ),
        ];
        for (name, spec, app, init, phase, column) in cases {
            let p = pod(spec);
            let status = generate(&p, &facts(app, init));
            assert_eq!(status.phase.as_deref(), Some(phase), "{name}: phase");
            let spec = p.spec.clone().unwrap_or_default();
            assert_eq!(kubectl_status(&spec, &status), column, "{name}: STATUS");
        }
    }

    #[test]
    fn container_status_fields() {
        let p = pod(
            json!({"containers": [{"name": "b", "image": "busybox:1"}, {"name": "a", "image": "busybox:1"}],
                           "initContainers": [{"name": "init", "image": "busybox:1"}]}),
        );
        let status = generate(
            &p,
            &facts(
                vec![
                    fact("b", running()),
                    ContainerFacts {
                        state: RuntimeState::Waiting {
                            reason: "CreateContainerConfigError".into(),
                            message: "couldn't find key k in ConfigMap ns/x".into(),
                        },
                        ..fact("a", waiting(""))
                    },
                ],
                vec![fact("init", exited(0, "Completed"))],
            ),
        );
        let statuses = status.container_statuses.clone().unwrap_or_default();
        // Sorted by name, as upstream.
        assert_eq!(
            statuses.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        let b = &statuses[1];
        assert_eq!(b.container_id.as_deref(), Some("containerd://id-b"));
        assert_eq!(b.image, "busybox:1");
        assert_eq!(b.image_id, "127.0.0.1:5000/busybox@sha256:abc");
        assert!(b.ready);
        assert_eq!(b.started, Some(true));
        assert_eq!(
            b.state
                .clone()
                .and_then(|s| s.running)
                .and_then(|r| r.started_at),
            Some(Time(at(1)))
        );
        let a_waiting = statuses[0]
            .state
            .clone()
            .and_then(|s| s.waiting)
            .expect("waiting");
        assert_eq!(
            a_waiting.reason.as_deref(),
            Some("CreateContainerConfigError")
        );
        assert_eq!(
            a_waiting.message.as_deref(),
            Some("couldn't find key k in ConfigMap ns/x")
        );
        assert!(!statuses[0].ready);
        assert_eq!(statuses[0].started, Some(false));
        let init = status.init_container_statuses.clone().unwrap_or_default();
        assert!(init[0].ready, "a succeeded init container is ready");
        let t = init[0]
            .state
            .clone()
            .and_then(|s| s.terminated)
            .expect("terminated");
        assert_eq!(t.container_id.as_deref(), Some("containerd://id-init"));
        assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
        assert_eq!(status.host_ip.as_deref(), Some("192.168.1.10"));
        assert_eq!(
            status.host_ips,
            Some(vec![HostIP {
                ip: "192.168.1.10".into()
            }])
        );
        assert_eq!(status.pod_ip.as_deref(), Some("10.42.0.5"));
        assert_eq!(
            status.pod_ips,
            Some(vec![PodIP {
                ip: "10.42.0.5".into()
            }])
        );
        assert_eq!(status.start_time, Some(Time(at(0))));
        assert_eq!(status.qos_class.as_deref(), Some("BestEffort"));
    }

    #[test]
    fn last_state_and_restart_count() {
        let p = pod(json!({"containers": [{"name": "app"}]}));
        let status = generate(
            &p,
            &facts(vec![restarting("app", "CrashLoopBackOff", 1)], vec![]),
        );
        let cs = &status.container_statuses.clone().unwrap_or_default()[0];
        assert_eq!(cs.restart_count, 3);
        let last = cs
            .last_state
            .clone()
            .and_then(|s| s.terminated)
            .expect("last state");
        assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
        // The instance that ended, as `kubectl logs --previous` finds it.
        assert_eq!(last.container_id.as_deref(), Some("containerd://c2"));

        // The container record is gone (e.g. removed before a new sandbox): the old status's
        // restart count and last state are kept, the state goes back to waiting.
        let next = pod_status(&p, &facts(vec![], vec![]), &status);
        let cs = &next.container_statuses.clone().unwrap_or_default()[0];
        assert_eq!(cs.restart_count, 3);
        assert!(cs.last_state.clone().and_then(|s| s.terminated).is_some());
        assert_eq!(
            cs.state
                .clone()
                .and_then(|s| s.waiting)
                .and_then(|w| w.reason)
                .as_deref(),
            Some("ContainerCreating")
        );
    }

    #[test]
    fn readiness_and_startup_probes() {
        let spec = |probes: serde_json::Value| {
            let mut c = json!({"name": "app"});
            if let (Some(c), Some(p)) = (c.as_object_mut(), probes.as_object()) {
                c.extend(p.clone());
            }
            pod(json!({"containers": [c]}))
        };
        let probe = json!({"exec": {"command": ["true"]}});
        // (probes in the spec, readiness result, startup result, started, ready)
        let cases = [
            (json!({}), None, None, true, true),
            (json!({"readinessProbe": probe}), None, None, true, false),
            (
                json!({"readinessProbe": probe}),
                Some(false),
                None,
                true,
                false,
            ),
            (
                json!({"readinessProbe": probe}),
                Some(true),
                None,
                true,
                true,
            ),
            (json!({"startupProbe": probe}), None, None, false, false),
            (json!({"startupProbe": probe}), None, Some(true), true, true),
            (
                json!({"startupProbe": probe, "readinessProbe": probe}),
                Some(true),
                Some(false),
                false,
                false,
            ),
        ];
        for (probes, readiness, startup, started, ready) in cases {
            let p = spec(probes.clone());
            let f = facts(
                vec![ContainerFacts {
                    readiness,
                    startup,
                    ..fact("app", running())
                }],
                vec![],
            );
            let status = generate(&p, &f);
            let cs = &status.container_statuses.clone().unwrap_or_default()[0];
            assert_eq!(
                (cs.started, cs.ready),
                (Some(started), ready),
                "{probes} {readiness:?} {startup:?}"
            );
            let want = if ready { "True" } else { "False" };
            assert_eq!(condition(&status, "ContainersReady").status, want);
            assert_eq!(condition(&status, "Ready").status, want);
        }
    }

    #[test]
    fn conditions_messages_and_transition_times() {
        let p = pod(json!({
            "containers": [{"name": "a"}, {"name": "b"}],
            "initContainers": [{"name": "init"}]
        }));
        let first = generate(&p, &facts(vec![], vec![fact("init", running())]));
        let ready = condition(&first, "Ready");
        assert_eq!(
            (
                ready.status.as_str(),
                ready.reason.as_deref(),
                ready.message.as_deref()
            ),
            (
                "False",
                Some("ContainersNotReady"),
                Some("containers with unready status: [a b]")
            )
        );
        let cr = condition(&first, "ContainersReady");
        assert_eq!(
            cr.message.as_deref(),
            Some("containers with unready status: [a b]")
        );
        let init = condition(&first, "Initialized");
        assert_eq!(
            (
                init.status.as_str(),
                init.reason.as_deref(),
                init.message.as_deref()
            ),
            (
                "False",
                Some("ContainersNotInitialized"),
                Some("containers with incomplete status: [init]")
            )
        );
        assert_eq!(
            condition(&first, "PodReadyToStartContainers").status,
            "True"
        );
        assert_eq!(condition(&first, "PodScheduled").status, "True");
        for c in first.conditions.iter().flatten() {
            assert_eq!(c.last_transition_time, Some(Time(at(10))), "{}", c.type_);
        }

        // Later: init done, a ready, b not; Initialized flips, Ready stays False.
        let mut later = facts(
            vec![
                fact("a", running()),
                ContainerFacts {
                    state: waiting("CrashLoopBackOff"),
                    ..restarting("b", "CrashLoopBackOff", 1)
                },
            ],
            vec![fact("init", exited(0, "Completed"))],
        );
        later.now = at(20);
        let second = pod_status(&p, &later, &first);
        assert_eq!(condition(&second, "Initialized").status, "True");
        assert_eq!(
            condition(&second, "Initialized").last_transition_time,
            Some(Time(at(20)))
        );
        let ready = condition(&second, "Ready");
        assert_eq!(
            ready.message.as_deref(),
            Some("containers with unready status: [b]")
        );
        assert_eq!(
            ready.last_transition_time,
            Some(Time(at(10))),
            "status unchanged"
        );
        assert_eq!(
            condition(&second, "PodScheduled").last_transition_time,
            Some(Time(at(10)))
        );
        assert_eq!(second.start_time, Some(Time(at(0))));
    }

    #[test]
    fn scheduled_condition_and_others_are_kept() {
        let mut p = pod(json!({"containers": [{"name": "a"}],
                               "readinessGates": [{"conditionType": "example.com/gate"}]}));
        p.status = Some(PodStatus {
            conditions: Some(vec![
                PodCondition {
                    type_: "PodScheduled".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(at(-5))),
                    ..Default::default()
                },
                PodCondition {
                    type_: "example.com/gate".into(),
                    status: "False".into(),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        });
        let status = generate(&p, &facts(vec![fact("a", running())], vec![]));
        assert_eq!(
            condition(&status, "PodScheduled").last_transition_time,
            Some(Time(at(-5)))
        );
        assert_eq!(condition(&status, "example.com/gate").status, "False");
        assert_eq!(condition(&status, "ContainersReady").status, "True");
        let ready = condition(&status, "Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref(), ready.message.as_deref()),
            (
                "False",
                Some("ReadinessGatesNotReady"),
                Some("the status of pod readiness gate \"example.com/gate\" is not \"True\", but False")
            )
        );
    }

    #[test]
    fn phase_rules() {
        let sidecar = json!({"name": "proxy", "restartPolicy": "Always"});
        // (spec, app facts, init facts, terminal, previous phase, want)
        type Case<'a> = (
            serde_json::Value,
            Vec<ContainerFacts>,
            Vec<ContainerFacts>,
            bool,
            Option<&'a str>,
            &'a str,
        );
        let cases: Vec<Case> = vec![
            // One running, one not created yet (waiting): Pending.
            (
                json!({"containers": [{"name": "a"}, {"name": "b"}]}),
                vec![fact("a", running())],
                vec![],
                false,
                None,
                "Pending",
            ),
            // One running, one exited with Always: Running.
            (
                json!({"containers": [{"name": "a"}, {"name": "b"}]}),
                vec![fact("a", running()), fact("b", exited(1, "Error"))],
                vec![],
                false,
                None,
                "Running",
            ),
            // All exited, OnFailure, one failed: Running (being restarted).
            (
                json!({"restartPolicy": "OnFailure", "containers": [{"name": "a"}, {"name": "b"}]}),
                vec![
                    fact("a", exited(0, "Completed")),
                    fact("b", exited(1, "Error")),
                ],
                vec![],
                false,
                None,
                "Running",
            ),
            // Terminal pod: exit codes decide whatever the policy.
            (
                json!({"containers": [{"name": "a"}]}),
                vec![fact("a", exited(0, "Completed"))],
                vec![],
                true,
                None,
                "Succeeded",
            ),
            (
                json!({"containers": [{"name": "a"}]}),
                vec![fact("a", exited(143, "Error"))],
                vec![],
                true,
                None,
                "Failed",
            ),
            // Sidecar started and app running: Running.
            (
                json!({"containers": [{"name": "a"}], "initContainers": [sidecar.clone()]}),
                vec![fact("a", running())],
                vec![fact("proxy", running())],
                false,
                None,
                "Running",
            ),
            // Sidecar running but not started yet (startup probe pending): Pending.
            (
                json!({"containers": [{"name": "a"}],
                       "initContainers": [{"name": "proxy", "restartPolicy": "Always", "startupProbe": {"exec": {"command": ["true"]}}}]}),
                vec![],
                vec![fact("proxy", running())],
                false,
                None,
                "Pending",
            ),
            // Job-like pod with a sidecar: app done, sidecar stopped → Succeeded (Never).
            (
                json!({"restartPolicy": "Never", "containers": [{"name": "a"}], "initContainers": [sidecar]}),
                vec![fact("a", exited(0, "Completed"))],
                vec![fact("proxy", exited(137, "Error"))],
                false,
                None,
                "Succeeded",
            ),
            // A terminal phase is never left.
            (
                json!({"containers": [{"name": "a"}]}),
                vec![],
                vec![],
                false,
                Some("Succeeded"),
                "Succeeded",
            ),
        ];
        for (i, (spec, app, init, terminal, previous, want)) in cases.into_iter().enumerate() {
            let p = pod(spec);
            let mut f = facts(app, init);
            f.pod_is_terminal = terminal;
            let prev = PodStatus {
                phase: previous.map(String::from),
                ..Default::default()
            };
            assert_eq!(
                pod_status(&p, &f, &prev).phase.as_deref(),
                Some(want),
                "case {i}"
            );
        }
    }

    #[test]
    fn terminal_conditions() {
        let p = pod(json!({"restartPolicy": "Never", "containers": [{"name": "a"}]}));
        let done = generate(&p, &facts(vec![fact("a", exited(0, "Completed"))], vec![]));
        assert_eq!(
            condition(&done, "Ready").reason.as_deref(),
            Some("PodCompleted")
        );
        assert_eq!(condition(&done, "ContainersReady").status, "False");
        assert_eq!(
            condition(&done, "Initialized").reason.as_deref(),
            Some("PodCompleted")
        );
        let failed = generate(&p, &facts(vec![fact("a", exited(1, "Error"))], vec![]));
        assert_eq!(
            condition(&failed, "Ready").reason.as_deref(),
            Some("PodFailed")
        );
    }

    #[test]
    fn host_network_pod_ips_and_sandbox_condition() {
        let p = pod(json!({"hostNetwork": true, "containers": [{"name": "a"}]}));
        let mut f = facts(vec![], vec![]);
        f.pod_ips.clear();
        f.sandbox_ready = false;
        f.host_ips = vec!["192.168.1.10".into(), "fd00::10".into(), "10.0.0.1".into()];
        let status = generate(&p, &f);
        assert_eq!(status.pod_ip.as_deref(), Some("192.168.1.10"));
        assert_eq!(status.pod_ips.map(|ips| ips.len()), Some(2));
        assert_eq!(status.host_ips.map(|ips| ips.len()), Some(2));
        assert_eq!(
            condition(&generate(&p, &f), "PodReadyToStartContainers").status,
            "False"
        );
    }

    #[test]
    fn status_qos_class_wins() {
        let mut p = pod(json!({"containers": [{"name": "c", "resources": {}}]}));
        assert_eq!(pod_qos_class(&p), QosClass::BestEffort);
        p.status = Some(PodStatus {
            qos_class: Some("Burstable".into()),
            ..Default::default()
        });
        assert_eq!(
            pod_qos_class(&p),
            QosClass::Burstable,
            "status.qosClass wins"
        );
    }

    #[test]
    fn status_changed_ignores_churn() {
        let p = pod(
            json!({"containers": [{"name": "a", "readinessProbe": {"exec": {"command": ["true"]}}}]}),
        );
        let f = facts(vec![fact("a", running())], vec![]);
        let first = generate(&p, &f);
        let mut later = f.clone();
        later.now = at(500);
        assert!(!status_changed(
            &first,
            &pod_status(&p, &later, &PodStatus::default())
        ));

        // Sub-second times as a runtime reports them compare equal to the API's seconds.
        let mut precise = f.clone();
        precise.containers[0].state = RuntimeState::Running {
            started_at: at(1)
                .checked_add(k8s_openapi::jiff::SignedDuration::from_millis(250))
                .expect("time"),
        };
        assert!(!status_changed(&first, &generate(&p, &precise)));

        let mut ready = f.clone();
        ready.containers[0].readiness = Some(true);
        assert!(status_changed(&first, &generate(&p, &ready)));

        let mut ip = f;
        ip.pod_ips = vec!["10.42.0.6".into()];
        assert!(status_changed(&first, &generate(&p, &ip)));
    }
}
