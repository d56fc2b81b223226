//! [`FakeRuntime`]: an in-memory [`Runtime`] for unit tests of the pod workers.
//!
//! It keeps sandboxes, containers and images with CRI states, records every call in order
//! ([`FakeRuntime::calls`]), and lets a test script what goes wrong: a pull that fails for one
//! image, a container that exits with code N as soon as it starts or when it is stopped, a
//! container that crashes later ([`FakeRuntime::exit_container`]), what an exec in a container
//! returns and how long it takes ([`FakeRuntime::push_exec_result`],
//! [`FakeRuntime::set_exec_result`], [`FakeRuntime::set_exec_delay`]), or any call failing once
//! ([`FakeRuntime::fail_next`]). The CPU and memory a container or sandbox reports in its stats
//! are scripted too ([`FakeRuntime::set_usage`]).
//!
//! Timestamps come from `tokio::time::Instant`, offset from a fixed epoch, so tests on paused
//! time (`tokio::time::pause`) see exact durations between `started_at` and `finished_at`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{
    labels_match, timeout_seconds, v1, ExecSyncResult, Result, Runtime, RuntimeError, StreamRequest,
};

/// 2024-01-01T00:00:00Z in nanoseconds: the fake's clock starts there.
const EPOCH_NANOS: i64 = 1_704_067_200_000_000_000;

/// One recorded call, with the arguments that identify what it acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `version`.
    Version,
    /// `run_pod_sandbox`, by the sandbox metadata's namespace/name and attempt.
    RunPodSandbox {
        /// `namespace/name` of the pod.
        pod: String,
        /// Sandbox attempt number.
        attempt: u32,
    },
    /// `stop_pod_sandbox`.
    StopPodSandbox(String),
    /// `remove_pod_sandbox`.
    RemovePodSandbox(String),
    /// `pod_sandbox_status`.
    PodSandboxStatus(String),
    /// `list_pod_sandboxes`.
    ListPodSandboxes,
    /// `create_container`, by sandbox id and container name.
    CreateContainer {
        /// The sandbox id.
        pod_sandbox_id: String,
        /// The container's metadata name.
        name: String,
    },
    /// `start_container`.
    StartContainer(String),
    /// `stop_container`, with the timeout in seconds.
    StopContainer(String, i64),
    /// `remove_container`.
    RemoveContainer(String),
    /// `container_status`.
    ContainerStatus(String),
    /// `list_containers`.
    ListContainers,
    /// `exec_sync`, by container id and command.
    ExecSync {
        /// The container id.
        container_id: String,
        /// The command.
        cmd: Vec<String>,
    },
    /// `pull_image`, by image reference.
    PullImage(String),
    /// `image_status`, by image reference.
    ImageStatus(String),
    /// `list_images`.
    ListImages,
    /// `list_container_stats`.
    ListContainerStats,
    /// `list_pod_sandbox_stats`.
    ListPodSandboxStats,
    /// `stream_url`.
    StreamUrl(StreamRequest),
    /// `remove_image`, by image id or reference.
    RemoveImage(String),
    /// `reopen_container_log`.
    ReopenContainerLog(String),
    /// `image_fs_info`.
    ImageFsInfo,
}

/// The operations [`FakeRuntime::fail_next`] can make fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `version`.
    Version,
    /// `run_pod_sandbox`.
    RunPodSandbox,
    /// `stop_pod_sandbox`.
    StopPodSandbox,
    /// `remove_pod_sandbox`.
    RemovePodSandbox,
    /// `pod_sandbox_status`.
    PodSandboxStatus,
    /// `list_pod_sandboxes`.
    ListPodSandboxes,
    /// `create_container`.
    CreateContainer,
    /// `start_container`.
    StartContainer,
    /// `stop_container`.
    StopContainer,
    /// `remove_container`.
    RemoveContainer,
    /// `container_status`.
    ContainerStatus,
    /// `list_containers`.
    ListContainers,
    /// `exec_sync`.
    ExecSync,
    /// `pull_image`.
    PullImage,
    /// `image_status`.
    ImageStatus,
    /// `list_images`.
    ListImages,
    /// `list_container_stats`.
    ListContainerStats,
    /// `list_pod_sandbox_stats`.
    ListPodSandboxStats,
    /// `stream_url`.
    StreamUrl,
    /// `remove_image`.
    RemoveImage,
    /// `reopen_container_log`.
    ReopenContainerLog,
    /// `image_fs_info`.
    ImageFsInfo,
}

/// What a container or sandbox has used, as the fake's stats report it
/// ([`FakeRuntime::set_usage`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Cumulative CPU time, in core-nanoseconds.
    pub cpu_core_nanos: u64,
    /// The memory working set, in bytes.
    pub working_set_bytes: u64,
}

/// A container's lifecycle in the fake, as the CRI reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    /// Created, not started.
    Created,
    /// Started at `started_at` (ns) and running.
    Running {
        /// Start time, ns since the epoch.
        started_at: i64,
    },
    /// Exited with `exit_code`. `started_at` is 0 if it never started.
    Exited {
        /// Start time, ns since the epoch (0 if it never ran).
        started_at: i64,
        /// Exit time, ns since the epoch.
        finished_at: i64,
        /// The process's exit code.
        exit_code: i32,
    },
}

impl ContainerState {
    fn cri(self) -> v1::ContainerState {
        match self {
            ContainerState::Created => v1::ContainerState::ContainerCreated,
            ContainerState::Running { .. } => v1::ContainerState::ContainerRunning,
            ContainerState::Exited { .. } => v1::ContainerState::ContainerExited,
        }
    }
}

#[derive(Debug, Clone)]
struct Sandbox {
    config: v1::PodSandboxConfig,
    runtime_handler: String,
    ready: bool,
    created_at: i64,
    ip: String,
}

#[derive(Debug, Clone)]
struct Container {
    pod_sandbox_id: String,
    config: v1::ContainerConfig,
    image_ref: String,
    created_at: i64,
    state: ContainerState,
}

#[derive(Debug, Default)]
struct State {
    calls: Vec<Call>,
    next_id: u64,
    next_ip: u32,
    // BTreeMaps: listings come out in id (= creation) order, so tests are deterministic.
    sandboxes: BTreeMap<String, Sandbox>,
    containers: BTreeMap<String, Container>,
    /// Image reference (as pulled) -> image.
    images: BTreeMap<String, v1::Image>,
    fail_next: HashMap<Op, VecDeque<RuntimeError>>,
    pull_failures: HashMap<String, RuntimeError>,
    /// Container name -> exit code on start.
    exit_on_start: HashMap<String, i32>,
    /// Container name -> exit code on stop.
    exit_on_stop: HashMap<String, i32>,
    /// Container id or name -> exec results, one per call, before `exec_results`.
    exec_queue: HashMap<String, VecDeque<Result<ExecSyncResult>>>,
    /// Container id or name -> the exec result once its queue is empty.
    exec_results: HashMap<String, Result<ExecSyncResult>>,
    /// Container id or name -> how long an exec runs.
    exec_delays: HashMap<String, Duration>,
    /// Container or sandbox id -> what its stats report.
    usage: HashMap<String, Usage>,
    /// What `image_fs_info` reports: bytes and inodes used by images.
    image_fs: (u64, u64),
}

/// An in-memory [`Runtime`]; see the module docs.
#[derive(Debug)]
pub struct FakeRuntime {
    state: Mutex<State>,
    origin: tokio::time::Instant,
    /// Pod IPs are `{pod_ip_prefix}{n}` for n = 2, 3, ...
    pod_ip_prefix: String,
    /// The exit code of a stopped container with no [`FakeRuntime::exit_on_stop`] entry.
    default_stop_exit_code: i32,
}

impl Default for FakeRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeRuntime {
    /// An empty runtime: no images, pod IPs from 10.42.0.2, stopped containers exit 0.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State {
                next_ip: 2,
                ..Default::default()
            }),
            origin: tokio::time::Instant::now(),
            pod_ip_prefix: "10.42.0.".to_string(),
            default_stop_exit_code: 0,
        }
    }

    /// Sets the prefix of pod IPs (e.g. `"10.42.7."`).
    pub fn with_pod_ip_prefix(mut self, prefix: &str) -> Self {
        self.pod_ip_prefix = prefix.to_string();
        self
    }

    /// Sets the exit code of containers stopped by `stop_container`/`stop_pod_sandbox`
    /// (default 0; 137 models a process killed after its grace period).
    pub fn with_default_stop_exit_code(mut self, exit_code: i32) -> Self {
        self.default_stop_exit_code = exit_code;
        self
    }

    /// Makes `image` present, as if pulled earlier; returns its image id.
    pub fn add_image(&self, image: &str) -> String {
        let image = fake_image(image);
        let id = image.id.clone();
        self.state
            .lock()
            .images
            .insert(image.repo_tags[0].clone(), image);
        id
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().calls.clone()
    }

    /// Forgets the recorded calls.
    pub fn clear_calls(&self) {
        self.state.lock().calls.clear();
    }

    /// The next call of `op` fails with `error` (queued: call twice to fail twice).
    pub fn fail_next(&self, op: Op, error: RuntimeError) {
        self.state
            .lock()
            .fail_next
            .entry(op)
            .or_default()
            .push_back(error);
    }

    /// Every pull of `image` fails with `error` until [`FakeRuntime::clear_pull_failure`].
    pub fn fail_pull(&self, image: &str, error: RuntimeError) {
        self.state
            .lock()
            .pull_failures
            .insert(image.to_string(), error);
    }

    /// Pulls of `image` succeed again.
    pub fn clear_pull_failure(&self, image: &str) {
        self.state.lock().pull_failures.remove(image);
    }

    /// Containers named `name` exit with `exit_code` as soon as they start.
    pub fn exit_on_start(&self, name: &str, exit_code: i32) {
        self.state
            .lock()
            .exit_on_start
            .insert(name.to_string(), exit_code);
    }

    /// Containers named `name` exit with `exit_code` when stopped.
    pub fn exit_on_stop(&self, name: &str, exit_code: i32) {
        self.state
            .lock()
            .exit_on_stop
            .insert(name.to_string(), exit_code);
    }

    /// The next exec in `container` (a container id, or a container name for every container of
    /// that name) returns `result`; queued, and used before [`FakeRuntime::set_exec_result`]'s.
    pub fn push_exec_result(&self, container: &str, result: Result<ExecSyncResult>) {
        self.state
            .lock()
            .exec_queue
            .entry(container.to_string())
            .or_default()
            .push_back(result);
    }

    /// Every exec in `container` (id or name) returns `result` from now on, once the queue of
    /// [`FakeRuntime::push_exec_result`] is empty. Without either, an exec in a running
    /// container exits 0 with no output.
    pub fn set_exec_result(&self, container: &str, result: Result<ExecSyncResult>) {
        self.state
            .lock()
            .exec_results
            .insert(container.to_string(), result);
    }

    /// Execs in `container` (id or name) run for `delay` (on tokio time) before they return. If
    /// that is longer than the call's timeout, the call ends when the timeout does, with gRPC
    /// `DEADLINE_EXCEEDED`, as containerd answers.
    pub fn set_exec_delay(&self, container: &str, delay: Duration) {
        self.state
            .lock()
            .exec_delays
            .insert(container.to_string(), delay);
    }

    /// The stats of container or sandbox `id` report `usage` from now on. Without it a running
    /// container reports zeros, and a sandbox the sum of its running containers.
    pub fn set_usage(&self, id: &str, usage: Usage) {
        self.state.lock().usage.insert(id.to_string(), usage);
    }

    /// `image_fs_info` reports `used_bytes` and `inodes_used` for the image filesystem from
    /// now on (zeros until then).
    pub fn set_image_fs_usage(&self, used_bytes: u64, inodes_used: u64) {
        self.state.lock().image_fs = (used_bytes, inodes_used);
    }

    /// Makes `image` present with `size` bytes, as if pulled earlier; returns its image id.
    pub fn add_image_with_size(&self, image: &str, size: u64) -> String {
        let mut image = fake_image(image);
        image.size = size;
        let id = image.id.clone();
        self.state
            .lock()
            .images
            .insert(image.repo_tags[0].clone(), image);
        id
    }

    /// Image references present, in order.
    pub fn image_refs(&self) -> Vec<String> {
        self.state.lock().images.keys().cloned().collect()
    }

    /// A running container exits by itself now with `exit_code` (a crash, or a job finishing).
    pub fn exit_container(&self, container_id: &str, exit_code: i32) -> Result<()> {
        let now = self.now();
        let mut state = self.state.lock();
        let container = state
            .containers
            .get_mut(container_id)
            .ok_or_else(|| not_found("container", container_id))?;
        match container.state {
            ContainerState::Running { started_at } => {
                container.state = ContainerState::Exited {
                    started_at,
                    finished_at: now,
                    exit_code,
                };
                Ok(())
            }
            other => Err(precondition(format!(
                "container {container_id} is {other:?}, not running"
            ))),
        }
    }

    /// The fake's view of a container's state.
    pub fn container_state(&self, container_id: &str) -> Option<ContainerState> {
        self.state
            .lock()
            .containers
            .get(container_id)
            .map(|c| c.state)
    }

    /// Ids of the sandboxes that exist (ready or not).
    pub fn sandbox_ids(&self) -> Vec<String> {
        self.state.lock().sandboxes.keys().cloned().collect()
    }

    /// Ids of the containers that exist, in creation order.
    pub fn container_ids(&self) -> Vec<String> {
        self.state.lock().containers.keys().cloned().collect()
    }

    fn now(&self) -> i64 {
        let elapsed = tokio::time::Instant::now().duration_since(self.origin);
        EPOCH_NANOS.saturating_add(i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX))
    }

    /// Records `call` and returns the injected failure for `op`, if any.
    fn enter(&self, state: &mut State, op: Op, call: Call) -> Result<()> {
        state.calls.push(call);
        match state.fail_next.get_mut(&op).and_then(VecDeque::pop_front) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    fn new_id(state: &mut State, kind: &str) -> String {
        state.next_id += 1;
        // Zero-padded so BTreeMap order is creation order.
        format!("{kind}-{:08}", state.next_id)
    }

    fn stop_exit_code(&self, state: &State, name: &str) -> i32 {
        state
            .exit_on_stop
            .get(name)
            .copied()
            .unwrap_or(self.default_stop_exit_code)
    }
}

fn not_found(kind: &str, id: &str) -> RuntimeError {
    RuntimeError::NotFound(format!("{kind} {id:?} not found"))
}

fn precondition(message: String) -> RuntimeError {
    RuntimeError::Grpc {
        code: tonic::Code::FailedPrecondition,
        message,
    }
}

/// A deterministic image id for a reference (FNV-1a, repeated to 64 hex digits).
fn fake_image(reference: &str) -> v1::Image {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in reference.bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    v1::Image {
        id: format!("sha256:{}", format!("{hash:016x}").repeat(4)),
        repo_tags: vec![reference.to_string()],
        size: 1024 * 1024,
        spec: Some(super::image_spec(reference)),
        ..Default::default()
    }
}

fn find_image<'a>(state: &'a State, image: &str) -> Option<&'a v1::Image> {
    state
        .images
        .get(image)
        .or_else(|| state.images.values().find(|i| i.id == image))
}

fn metadata_name(config: &v1::ContainerConfig) -> String {
    config
        .metadata
        .as_ref()
        .map(|m| m.name.clone())
        .unwrap_or_default()
}

fn sandbox_state(ready: bool) -> v1::PodSandboxState {
    if ready {
        v1::PodSandboxState::SandboxReady
    } else {
        v1::PodSandboxState::SandboxNotready
    }
}

#[async_trait]
impl Runtime for FakeRuntime {
    async fn version(&self) -> Result<v1::VersionResponse> {
        let mut state = self.state.lock();
        self.enter(&mut state, Op::Version, Call::Version)?;
        Ok(v1::VersionResponse {
            version: "0.1.0".to_string(),
            runtime_name: "fake".to_string(),
            runtime_version: "0.0.0".to_string(),
            runtime_api_version: "v1".to_string(),
        })
    }

    async fn run_pod_sandbox(
        &self,
        config: v1::PodSandboxConfig,
        runtime_handler: &str,
    ) -> Result<String> {
        let now = self.now();
        let mut state = self.state.lock();
        let metadata = config.metadata.clone().unwrap_or_default();
        let call = Call::RunPodSandbox {
            pod: format!("{}/{}", metadata.namespace, metadata.name),
            attempt: metadata.attempt,
        };
        self.enter(&mut state, Op::RunPodSandbox, call)?;
        if config.metadata.is_none() {
            return Err(RuntimeError::Grpc {
                code: tonic::Code::InvalidArgument,
                message: "sandbox config has no metadata".to_string(),
            });
        }
        let id = Self::new_id(&mut state, "sandbox");
        let ip = format!("{}{}", self.pod_ip_prefix, state.next_ip);
        state.next_ip += 1;
        let sandbox = Sandbox {
            config,
            runtime_handler: runtime_handler.to_string(),
            ready: true,
            created_at: now,
            ip,
        };
        state.sandboxes.insert(id.clone(), sandbox);
        Ok(id)
    }

    async fn stop_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<()> {
        let now = self.now();
        let mut state = self.state.lock();
        self.enter(
            &mut state,
            Op::StopPodSandbox,
            Call::StopPodSandbox(pod_sandbox_id.to_string()),
        )?;
        let Some(sandbox) = state.sandboxes.get_mut(pod_sandbox_id) else {
            return Err(not_found("sandbox", pod_sandbox_id));
        };
        sandbox.ready = false;
        let codes: HashMap<String, i32> = state
            .containers
            .iter()
            .filter(|(_, c)| c.pod_sandbox_id == pod_sandbox_id)
            .map(|(id, c)| {
                (
                    id.clone(),
                    self.stop_exit_code(&state, &metadata_name(&c.config)),
                )
            })
            .collect();
        for (id, exit_code) in codes {
            if let Some(container) = state.containers.get_mut(&id) {
                stop(container, now, exit_code);
            }
        }
        Ok(())
    }

    async fn remove_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<()> {
        let mut state = self.state.lock();
        self.enter(
            &mut state,
            Op::RemovePodSandbox,
            Call::RemovePodSandbox(pod_sandbox_id.to_string()),
        )?;
        state.sandboxes.remove(pod_sandbox_id);
        state
            .containers
            .retain(|_, c| c.pod_sandbox_id != pod_sandbox_id);
        Ok(())
    }

    async fn pod_sandbox_status(&self, pod_sandbox_id: &str) -> Result<v1::PodSandboxStatus> {
        let mut state = self.state.lock();
        self.enter(
            &mut state,
            Op::PodSandboxStatus,
            Call::PodSandboxStatus(pod_sandbox_id.to_string()),
        )?;
        let sandbox = state
            .sandboxes
            .get(pod_sandbox_id)
            .ok_or_else(|| not_found("sandbox", pod_sandbox_id))?;
        Ok(v1::PodSandboxStatus {
            id: pod_sandbox_id.to_string(),
            metadata: sandbox.config.metadata.clone(),
            state: sandbox_state(sandbox.ready).into(),
            created_at: sandbox.created_at,
            // Like containerd, a stopped sandbox has released its IP.
            network: sandbox.ready.then(|| v1::PodSandboxNetworkStatus {
                ip: sandbox.ip.clone(),
                additional_ips: vec![],
            }),
            labels: sandbox.config.labels.clone(),
            annotations: sandbox.config.annotations.clone(),
            runtime_handler: sandbox.runtime_handler.clone(),
            ..Default::default()
        })
    }

    async fn list_pod_sandboxes(
        &self,
        filter: Option<v1::PodSandboxFilter>,
    ) -> Result<Vec<v1::PodSandbox>> {
        let mut state = self.state.lock();
        self.enter(&mut state, Op::ListPodSandboxes, Call::ListPodSandboxes)?;
        let filter = filter.unwrap_or_default();
        Ok(state
            .sandboxes
            .iter()
            .filter(|(id, s)| {
                (filter.id.is_empty() || **id == filter.id)
                    && filter
                        .state
                        .is_none_or(|v| v.state == i32::from(sandbox_state(s.ready)))
                    && labels_match(&filter.label_selector, &s.config.labels)
            })
            .map(|(id, s)| v1::PodSandbox {
                id: id.clone(),
                metadata: s.config.metadata.clone(),
                state: sandbox_state(s.ready).into(),
                created_at: s.created_at,
                labels: s.config.labels.clone(),
                annotations: s.config.annotations.clone(),
                runtime_handler: s.runtime_handler.clone(),
            })
            .collect())
    }

    async fn create_container(
        &self,
        pod_sandbox_id: &str,
        mut config: v1::ContainerConfig,
        sandbox_config: v1::PodSandboxConfig,
    ) -> Result<String> {
        // As containerd: the status's log path is the sandbox's log directory joined with the
        // container's.
        if !config.log_path.is_empty() && !sandbox_config.log_directory.is_empty() {
            config.log_path = format!(
                "{}/{}",
                sandbox_config.log_directory.trim_end_matches('/'),
                config.log_path
            );
        }
        let now = self.now();
        let mut state = self.state.lock();
        let call = Call::CreateContainer {
            pod_sandbox_id: pod_sandbox_id.to_string(),
            name: metadata_name(&config),
        };
        self.enter(&mut state, Op::CreateContainer, call)?;
        let sandbox = state
            .sandboxes
            .get(pod_sandbox_id)
            .ok_or_else(|| not_found("sandbox", pod_sandbox_id))?;
        if !sandbox.ready {
            return Err(precondition(format!(
                "sandbox {pod_sandbox_id} is not ready"
            )));
        }
        let image = config
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .unwrap_or_default();
        let image_ref = find_image(&state, &image)
            .map(|i| i.id.clone())
            .ok_or_else(|| not_found("image", &image))?;
        let id = Self::new_id(&mut state, "container");
        let container = Container {
            pod_sandbox_id: pod_sandbox_id.to_string(),
            config,
            image_ref,
            created_at: now,
            state: ContainerState::Created,
        };
        state.containers.insert(id.clone(), container);
        Ok(id)
    }

    async fn start_container(&self, container_id: &str) -> Result<()> {
        let now = self.now();
        let mut state = self.state.lock();
        self.enter(
            &mut state,
            Op::StartContainer,
            Call::StartContainer(container_id.to_string()),
        )?;
        let container = state
            .containers
            .get(container_id)
            .ok_or_else(|| not_found("container", container_id))?;
        if container.state != ContainerState::Created {
            return Err(precondition(format!(
                "container {container_id} is {:?}, not created",
                container.state
            )));
        }
        let exit_code = state
            .exit_on_start
            .get(&metadata_name(&container.config))
            .copied();
        let new_state = match exit_code {
            Some(exit_code) => ContainerState::Exited {
                started_at: now,
                finished_at: now,
                exit_code,
            },
            None => ContainerState::Running { started_at: now },
        };
        if let Some(container) = state.containers.get_mut(container_id) {
            container.state = new_state;
        }
        Ok(())
    }

    async fn stop_container(&self, container_id: &str, timeout_seconds: i64) -> Result<()> {
        let now = self.now();
        let mut state = self.state.lock();
        let call = Call::StopContainer(container_id.to_string(), timeout_seconds);
        self.enter(&mut state, Op::StopContainer, call)?;
        let container = state
            .containers
            .get(container_id)
            .ok_or_else(|| not_found("container", container_id))?;
        let exit_code = self.stop_exit_code(&state, &metadata_name(&container.config));
        if let Some(container) = state.containers.get_mut(container_id) {
            stop(container, now, exit_code);
        }
        Ok(())
    }

    async fn remove_container(&self, container_id: &str) -> Result<()> {
        let mut state = self.state.lock();
        self.enter(
            &mut state,
            Op::RemoveContainer,
            Call::RemoveContainer(container_id.to_string()),
        )?;
        state.containers.remove(container_id);
        Ok(())
    }

    async fn container_status(&self, container_id: &str) -> Result<v1::ContainerStatus> {
        let mut state = self.state.lock();
        self.enter(
            &mut state,
            Op::ContainerStatus,
            Call::ContainerStatus(container_id.to_string()),
        )?;
        let c = state
            .containers
            .get(container_id)
            .ok_or_else(|| not_found("container", container_id))?;
        let (started_at, finished_at, exit_code, reason) = match c.state {
            ContainerState::Created => (0, 0, 0, ""),
            ContainerState::Running { started_at } => (started_at, 0, 0, ""),
            ContainerState::Exited {
                started_at,
                finished_at,
                exit_code,
            } => {
                // containerd's reasons for an exited container.
                (
                    started_at,
                    finished_at,
                    exit_code,
                    if exit_code == 0 { "Completed" } else { "Error" },
                )
            }
        };
        Ok(v1::ContainerStatus {
            id: container_id.to_string(),
            metadata: c.config.metadata.clone(),
            state: c.state.cri().into(),
            created_at: c.created_at,
            started_at,
            finished_at,
            exit_code,
            image: c.config.image.clone(),
            image_ref: c.image_ref.clone(),
            image_id: c.image_ref.clone(),
            reason: reason.to_string(),
            labels: c.config.labels.clone(),
            annotations: c.config.annotations.clone(),
            mounts: c.config.mounts.clone(),
            log_path: c.config.log_path.clone(),
            ..Default::default()
        })
    }

    async fn list_containers(
        &self,
        filter: Option<v1::ContainerFilter>,
    ) -> Result<Vec<v1::Container>> {
        let mut state = self.state.lock();
        self.enter(&mut state, Op::ListContainers, Call::ListContainers)?;
        let filter = filter.unwrap_or_default();
        Ok(state
            .containers
            .iter()
            .filter(|(id, c)| {
                (filter.id.is_empty() || **id == filter.id)
                    && (filter.pod_sandbox_id.is_empty()
                        || c.pod_sandbox_id == filter.pod_sandbox_id)
                    && filter
                        .state
                        .is_none_or(|v| v.state == i32::from(c.state.cri()))
                    && labels_match(&filter.label_selector, &c.config.labels)
            })
            .map(|(id, c)| v1::Container {
                id: id.clone(),
                pod_sandbox_id: c.pod_sandbox_id.clone(),
                metadata: c.config.metadata.clone(),
                image: c.config.image.clone(),
                image_ref: c.image_ref.clone(),
                image_id: c.image_ref.clone(),
                state: c.state.cri().into(),
                created_at: c.created_at,
                labels: c.config.labels.clone(),
                annotations: c.config.annotations.clone(),
            })
            .collect())
    }

    async fn exec_sync(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecSyncResult> {
        let (result, delay) = {
            let mut state = self.state.lock();
            let call = Call::ExecSync {
                container_id: container_id.to_string(),
                cmd,
            };
            self.enter(&mut state, Op::ExecSync, call)?;
            let container = state
                .containers
                .get(container_id)
                .ok_or_else(|| not_found("container", container_id))?;
            if !matches!(container.state, ContainerState::Running { .. }) {
                return Err(precondition(format!(
                    "container {container_id} is {:?}, not running",
                    container.state
                )));
            }
            let name = metadata_name(&container.config);
            let keys = [container_id.to_string(), name];
            let delay = keys
                .iter()
                .find_map(|k| state.exec_delays.get(k).copied())
                .unwrap_or_default();
            let queued = keys
                .iter()
                .find_map(|k| state.exec_queue.get_mut(k).and_then(VecDeque::pop_front));
            let result = queued
                .or_else(|| keys.iter().find_map(|k| state.exec_results.get(k).cloned()))
                .unwrap_or_else(|| Ok(ExecSyncResult::default()));
            (result, delay)
        };
        let limit = Duration::from_secs(timeout_seconds(timeout).unsigned_abs());
        if !limit.is_zero() && delay > limit {
            tokio::time::sleep(limit).await;
            return Err(RuntimeError::Grpc {
                code: tonic::Code::DeadlineExceeded,
                message: format!(
                    "timeout {}s exceeded: context deadline exceeded",
                    limit.as_secs()
                ),
            });
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        result
    }

    async fn pull_image(
        &self,
        image: v1::ImageSpec,
        _auth: Option<v1::AuthConfig>,
        _sandbox_config: Option<v1::PodSandboxConfig>,
    ) -> Result<String> {
        let mut state = self.state.lock();
        self.enter(
            &mut state,
            Op::PullImage,
            Call::PullImage(image.image.clone()),
        )?;
        if let Some(error) = state.pull_failures.get(&image.image) {
            return Err(error.clone());
        }
        let pulled = fake_image(&image.image);
        let id = pulled.id.clone();
        state.images.insert(image.image, pulled);
        Ok(id)
    }

    async fn image_status(&self, image: v1::ImageSpec) -> Result<Option<v1::Image>> {
        let mut state = self.state.lock();
        self.enter(
            &mut state,
            Op::ImageStatus,
            Call::ImageStatus(image.image.clone()),
        )?;
        Ok(find_image(&state, &image.image).cloned())
    }

    async fn list_images(&self, filter: Option<v1::ImageFilter>) -> Result<Vec<v1::Image>> {
        let mut state = self.state.lock();
        self.enter(&mut state, Op::ListImages, Call::ListImages)?;
        let wanted = filter
            .and_then(|f| f.image)
            .map(|i| i.image)
            .filter(|i| !i.is_empty());
        Ok(match wanted {
            Some(image) => find_image(&state, &image).cloned().into_iter().collect(),
            None => state.images.values().cloned().collect(),
        })
    }

    /// Every container matching `filter`; CPU and memory (sampled now) for running ones only,
    /// as containerd has no task metrics for the others.
    async fn list_container_stats(
        &self,
        filter: Option<v1::ContainerStatsFilter>,
    ) -> Result<Vec<v1::ContainerStats>> {
        let now = self.now();
        let mut state = self.state.lock();
        self.enter(&mut state, Op::ListContainerStats, Call::ListContainerStats)?;
        let filter = filter.unwrap_or_default();
        Ok(state
            .containers
            .iter()
            .filter(|(id, c)| {
                (filter.id.is_empty() || **id == filter.id)
                    && (filter.pod_sandbox_id.is_empty()
                        || c.pod_sandbox_id == filter.pod_sandbox_id)
                    && labels_match(&filter.label_selector, &c.config.labels)
            })
            .map(|(id, c)| container_stats(&state, id, c, now))
            .collect())
    }

    /// Ready sandboxes matching `filter`, with their own usage if set, else the sum of their
    /// running containers', and those containers' stats.
    async fn list_pod_sandbox_stats(
        &self,
        filter: Option<v1::PodSandboxStatsFilter>,
    ) -> Result<Vec<v1::PodSandboxStats>> {
        let now = self.now();
        let mut state = self.state.lock();
        self.enter(
            &mut state,
            Op::ListPodSandboxStats,
            Call::ListPodSandboxStats,
        )?;
        let filter = filter.unwrap_or_default();
        Ok(state
            .sandboxes
            .iter()
            .filter(|(id, s)| {
                s.ready
                    && (filter.id.is_empty() || **id == filter.id)
                    && labels_match(&filter.label_selector, &s.config.labels)
            })
            .map(|(id, s)| {
                let containers: Vec<v1::ContainerStats> = state
                    .containers
                    .iter()
                    .filter(|(_, c)| {
                        c.pod_sandbox_id == *id && matches!(c.state, ContainerState::Running { .. })
                    })
                    .map(|(cid, c)| container_stats(&state, cid, c, now))
                    .collect();
                let usage = state.usage.get(id).copied().unwrap_or_else(|| {
                    containers.iter().fold(Usage::default(), |sum, c| Usage {
                        cpu_core_nanos: sum.cpu_core_nanos
                            + c.cpu
                                .as_ref()
                                .and_then(|u| u.usage_core_nano_seconds.as_ref())
                                .map_or(0, |v| v.value),
                        working_set_bytes: sum.working_set_bytes
                            + c.memory
                                .as_ref()
                                .and_then(|u| u.working_set_bytes.as_ref())
                                .map_or(0, |v| v.value),
                    })
                });
                let (cpu, memory) = usage_stats(usage, now);
                v1::PodSandboxStats {
                    attributes: Some(v1::PodSandboxAttributes {
                        id: id.clone(),
                        metadata: s.config.metadata.clone(),
                        labels: s.config.labels.clone(),
                        annotations: s.config.annotations.clone(),
                    }),
                    linux: Some(v1::LinuxPodSandboxStats {
                        cpu: Some(cpu),
                        memory: Some(memory),
                        containers,
                        ..Default::default()
                    }),
                    windows: None,
                }
            })
            .collect())
    }

    async fn remove_image(&self, image: v1::ImageSpec) -> Result<()> {
        let mut state = self.state.lock();
        self.enter(
            &mut state,
            Op::RemoveImage,
            Call::RemoveImage(image.image.clone()),
        )?;
        let id = find_image(&state, &image.image).map(|i| i.id.clone());
        if let Some(id) = id {
            state.images.retain(|_, i| i.id != id);
        }
        Ok(())
    }

    /// Records the call; a container whose config names an absolute log path gets a new, empty
    /// file there, as the runtime opens one after rotation renamed the old.
    async fn reopen_container_log(&self, container_id: &str) -> Result<()> {
        let mut state = self.state.lock();
        self.enter(
            &mut state,
            Op::ReopenContainerLog,
            Call::ReopenContainerLog(container_id.to_string()),
        )?;
        let c = state
            .containers
            .get(container_id)
            .ok_or_else(|| not_found("container", container_id))?;
        if !matches!(c.state, ContainerState::Running { .. }) {
            return Err(precondition(format!(
                "container {container_id} is not running"
            )));
        }
        let path = std::path::Path::new(&c.config.log_path);
        if path.is_absolute() {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| RuntimeError::Grpc {
                    code: tonic::Code::Internal,
                    message: format!("reopening {}: {e}", path.display()),
                })?;
        }
        Ok(())
    }

    async fn image_fs_info(&self) -> Result<v1::ImageFsInfoResponse> {
        let now = self.now();
        let mut state = self.state.lock();
        self.enter(&mut state, Op::ImageFsInfo, Call::ImageFsInfo)?;
        let (used, inodes) = state.image_fs;
        Ok(v1::ImageFsInfoResponse {
            image_filesystems: vec![v1::FilesystemUsage {
                timestamp: now,
                fs_id: Some(v1::FilesystemIdentifier {
                    mountpoint: "/fake/images".into(),
                }),
                used_bytes: Some(v1::UInt64Value { value: used }),
                inodes_used: Some(v1::UInt64Value { value: inodes }),
            }],
            container_filesystems: vec![],
        })
    }

    /// `http://fake-stream/<kind>/<id>`, for a running container (exec, attach) or a ready
    /// sandbox (port-forward); the runtime's errors otherwise.
    async fn stream_url(&self, request: StreamRequest) -> Result<String> {
        let mut state = self.state.lock();
        self.enter(&mut state, Op::StreamUrl, Call::StreamUrl(request.clone()))?;
        let (kind, id) = match &request {
            StreamRequest::Exec(r) => ("exec", &r.container_id),
            StreamRequest::Attach(r) => ("attach", &r.container_id),
            StreamRequest::PortForward(r) => ("portforward", &r.pod_sandbox_id),
        };
        if kind == "portforward" {
            if !state.sandboxes.contains_key(id) {
                return Err(not_found("sandbox", id));
            }
        } else {
            let container = state
                .containers
                .get(id)
                .ok_or_else(|| not_found("container", id))?;
            if !matches!(container.state, ContainerState::Running { .. }) {
                return Err(precondition(format!("container {id} is not running")));
            }
        }
        Ok(format!("http://fake-stream/{kind}/{id}"))
    }
}

/// CRI's CPU and memory figures for `usage`, sampled at `now`.
fn usage_stats(usage: Usage, now: i64) -> (v1::CpuUsage, v1::MemoryUsage) {
    let value = |value| Some(v1::UInt64Value { value });
    (
        v1::CpuUsage {
            timestamp: now,
            usage_core_nano_seconds: value(usage.cpu_core_nanos),
            ..Default::default()
        },
        v1::MemoryUsage {
            timestamp: now,
            working_set_bytes: value(usage.working_set_bytes),
            usage_bytes: value(usage.working_set_bytes),
            ..Default::default()
        },
    )
}

/// A container's stats: attributes always, CPU and memory while it runs.
fn container_stats(state: &State, id: &str, c: &Container, now: i64) -> v1::ContainerStats {
    let usage = matches!(c.state, ContainerState::Running { .. })
        .then(|| usage_stats(state.usage.get(id).copied().unwrap_or_default(), now));
    let (cpu, memory) = usage.map_or((None, None), |(cpu, memory)| (Some(cpu), Some(memory)));
    v1::ContainerStats {
        attributes: Some(v1::ContainerAttributes {
            id: id.to_string(),
            metadata: c.config.metadata.clone(),
            labels: c.config.labels.clone(),
            annotations: c.config.annotations.clone(),
        }),
        cpu,
        memory,
        ..Default::default()
    }
}

/// Stops a container: running -> exited with `exit_code`; created -> exited without having run;
/// exited stays as it was (stop is idempotent).
fn stop(container: &mut Container, now: i64, exit_code: i32) {
    container.state = match container.state {
        ContainerState::Created => ContainerState::Exited {
            started_at: 0,
            finished_at: now,
            exit_code,
        },
        ContainerState::Running { started_at } => ContainerState::Exited {
            started_at,
            finished_at: now,
            exit_code,
        },
        exited @ ContainerState::Exited { .. } => exited,
    };
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::runtime::image_spec;

    const BUSYBOX: &str = "127.0.0.1:5000/busybox:1";

    fn sandbox_config(name: &str) -> v1::PodSandboxConfig {
        v1::PodSandboxConfig {
            metadata: Some(v1::PodSandboxMetadata {
                name: name.to_string(),
                uid: format!("uid-{name}"),
                namespace: "default".to_string(),
                attempt: 0,
            }),
            labels: [("io.kubernetes.pod.name".to_string(), name.to_string())].into(),
            ..Default::default()
        }
    }

    fn container_config(name: &str) -> v1::ContainerConfig {
        v1::ContainerConfig {
            metadata: Some(v1::ContainerMetadata {
                name: name.to_string(),
                attempt: 0,
            }),
            image: Some(image_spec(BUSYBOX)),
            labels: [("io.kubernetes.container.name".to_string(), name.to_string())].into(),
            ..Default::default()
        }
    }

    fn state_of(status: &v1::ContainerStatus) -> v1::ContainerState {
        v1::ContainerState::try_from(status.state).expect("valid state")
    }

    #[tokio::test]
    async fn pod_lifecycle_is_recorded_in_order() {
        tokio::time::pause();
        let fake = FakeRuntime::new();
        let runtime: Arc<dyn Runtime> = Arc::new(FakeRuntime::new());
        assert_eq!(
            runtime
                .version()
                .await
                .expect("version")
                .runtime_api_version,
            "v1"
        );

        let image_ref = fake
            .pull_image(image_spec(BUSYBOX), None, None)
            .await
            .expect("pull");
        assert!(image_ref.starts_with("sha256:"));
        let sandbox = fake
            .run_pod_sandbox(sandbox_config("web"), "")
            .await
            .expect("sandbox");
        let status = fake
            .pod_sandbox_status(&sandbox)
            .await
            .expect("sandbox status");
        assert_eq!(status.state, i32::from(v1::PodSandboxState::SandboxReady));
        assert_eq!(status.network.expect("network").ip, "10.42.0.2");

        let id = fake
            .create_container(&sandbox, container_config("app"), sandbox_config("web"))
            .await
            .expect("create");
        assert_eq!(
            state_of(&fake.container_status(&id).await.expect("status")),
            v1::ContainerState::ContainerCreated
        );
        fake.start_container(&id).await.expect("start");
        tokio::time::advance(Duration::from_secs(3)).await;
        fake.stop_container(&id, 2).await.expect("stop");
        let status = fake.container_status(&id).await.expect("status");
        assert_eq!(state_of(&status), v1::ContainerState::ContainerExited);
        assert_eq!(status.exit_code, 0);
        assert_eq!(status.reason, "Completed");
        assert_eq!(status.finished_at - status.started_at, 3_000_000_000);
        assert_eq!(status.image_ref, image_ref);

        fake.stop_pod_sandbox(&sandbox).await.expect("stop sandbox");
        let status = fake
            .pod_sandbox_status(&sandbox)
            .await
            .expect("sandbox status");
        assert_eq!(
            status.state,
            i32::from(v1::PodSandboxState::SandboxNotready)
        );
        assert!(status.network.is_none(), "a stopped sandbox has no IP");
        fake.remove_pod_sandbox(&sandbox)
            .await
            .expect("remove sandbox");
        fake.remove_pod_sandbox(&sandbox)
            .await
            .expect("remove is idempotent");
        assert!(
            fake.container_ids().is_empty(),
            "removing the sandbox removes its containers"
        );

        assert_eq!(
            fake.calls(),
            vec![
                Call::PullImage(BUSYBOX.to_string()),
                Call::RunPodSandbox {
                    pod: "default/web".to_string(),
                    attempt: 0
                },
                Call::PodSandboxStatus(sandbox.clone()),
                Call::CreateContainer {
                    pod_sandbox_id: sandbox.clone(),
                    name: "app".to_string()
                },
                Call::ContainerStatus(id.clone()),
                Call::StartContainer(id.clone()),
                Call::StopContainer(id.clone(), 2),
                Call::ContainerStatus(id.clone()),
                Call::StopPodSandbox(sandbox.clone()),
                Call::PodSandboxStatus(sandbox.clone()),
                Call::RemovePodSandbox(sandbox.clone()),
                Call::RemovePodSandbox(sandbox),
            ]
        );
    }

    #[tokio::test]
    async fn injected_pull_failure_persists_until_cleared() {
        let fake = FakeRuntime::new();
        let missing = "127.0.0.1:5000/missing:1";
        fake.fail_pull(
            missing,
            RuntimeError::NotFound("manifest unknown".to_string()),
        );
        for _ in 0..2 {
            let err = fake
                .pull_image(image_spec(missing), None, None)
                .await
                .expect_err("pull fails");
            assert_eq!(err, RuntimeError::NotFound("manifest unknown".to_string()));
        }
        assert_eq!(
            fake.image_status(image_spec(missing))
                .await
                .expect("status"),
            None
        );
        fake.clear_pull_failure(missing);
        fake.pull_image(image_spec(missing), None, None)
            .await
            .expect("pull works again");
        assert!(fake
            .image_status(image_spec(missing))
            .await
            .expect("status")
            .is_some());
        assert_eq!(fake.list_images(None).await.expect("list").len(), 1);
    }

    #[tokio::test]
    async fn containers_exit_with_scripted_codes() {
        let fake = FakeRuntime::new().with_default_stop_exit_code(137);
        fake.add_image(BUSYBOX);
        fake.exit_on_start("init", 3);
        fake.exit_on_stop("graceful", 143);
        let sandbox = fake
            .run_pod_sandbox(sandbox_config("p"), "")
            .await
            .expect("sandbox");

        let init = fake
            .create_container(&sandbox, container_config("init"), sandbox_config("p"))
            .await
            .expect("create");
        fake.start_container(&init).await.expect("start");
        let status = fake.container_status(&init).await.expect("status");
        assert_eq!(
            (state_of(&status), status.exit_code, status.reason.as_str()),
            (v1::ContainerState::ContainerExited, 3, "Error")
        );
        assert!(
            fake.start_container(&init).await.is_err(),
            "an exited container cannot start again"
        );

        let graceful = fake
            .create_container(&sandbox, container_config("graceful"), sandbox_config("p"))
            .await
            .expect("create");
        let stubborn = fake
            .create_container(&sandbox, container_config("stubborn"), sandbox_config("p"))
            .await
            .expect("create");
        fake.start_container(&graceful).await.expect("start");
        fake.start_container(&stubborn).await.expect("start");
        fake.stop_container(&graceful, 30).await.expect("stop");
        assert!(matches!(
            fake.container_state(&graceful),
            Some(ContainerState::Exited { exit_code: 143, .. })
        ));
        fake.stop_container(&graceful, 30)
            .await
            .expect("stop is idempotent");
        // Stopping the sandbox stops the rest with the default code.
        fake.stop_pod_sandbox(&sandbox).await.expect("stop sandbox");
        assert!(matches!(
            fake.container_state(&stubborn),
            Some(ContainerState::Exited { exit_code: 137, .. })
        ));
    }

    #[tokio::test]
    async fn crash_and_one_shot_failures() {
        let fake = FakeRuntime::new();
        fake.add_image(BUSYBOX);
        fake.fail_next(
            Op::RunPodSandbox,
            RuntimeError::Unavailable("cni not ready".to_string()),
        );
        let err = fake
            .run_pod_sandbox(sandbox_config("p"), "")
            .await
            .expect_err("first run fails");
        assert_eq!(err, RuntimeError::Unavailable("cni not ready".to_string()));
        let sandbox = fake
            .run_pod_sandbox(sandbox_config("p"), "")
            .await
            .expect("second run works");

        let id = fake
            .create_container(&sandbox, container_config("app"), sandbox_config("p"))
            .await
            .expect("create");
        fake.start_container(&id).await.expect("start");
        fake.exit_container(&id, 1).expect("crash");
        assert!(matches!(
            fake.container_state(&id),
            Some(ContainerState::Exited { exit_code: 1, .. })
        ));
        assert!(
            fake.exit_container(&id, 1).is_err(),
            "only a running container can exit"
        );

        // Unknown ids.
        assert!(matches!(
            fake.container_status("nope").await,
            Err(RuntimeError::NotFound(_))
        ));
        assert!(matches!(
            fake.pod_sandbox_status("nope").await,
            Err(RuntimeError::NotFound(_))
        ));
        fake.remove_container("nope")
            .await
            .expect("remove is idempotent");
        // An image that is not present cannot be used.
        let mut config = container_config("other");
        config.image = Some(image_spec("127.0.0.1:5000/absent:1"));
        let err = fake
            .create_container(&sandbox, config, sandbox_config("p"))
            .await
            .expect_err("no image");
        assert!(matches!(err, RuntimeError::NotFound(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn exec_results_are_scripted_per_container() {
        let fake = FakeRuntime::new();
        fake.add_image(BUSYBOX);
        let sandbox = fake
            .run_pod_sandbox(sandbox_config("p"), "")
            .await
            .expect("sandbox");
        let app = fake
            .create_container(&sandbox, container_config("app"), sandbox_config("p"))
            .await
            .expect("create");
        let cmd = || vec!["cat".to_string(), "/tmp/healthy".to_string()];
        let second = Duration::from_secs(1);

        // Not running yet, or unknown.
        let err = fake
            .exec_sync(&app, cmd(), second)
            .await
            .expect_err("created, not running");
        assert!(matches!(
            err,
            RuntimeError::Grpc {
                code: tonic::Code::FailedPrecondition,
                ..
            }
        ));
        assert!(matches!(
            fake.exec_sync("nope", cmd(), second).await,
            Err(RuntimeError::NotFound(_))
        ));

        fake.start_container(&app).await.expect("start");
        assert_eq!(
            fake.exec_sync(&app, cmd(), second).await,
            Ok(ExecSyncResult::default()),
            "exit 0 by default"
        );
        let failed = ExecSyncResult {
            exit_code: 1,
            stdout: vec![],
            stderr: b"cat: can't open '/tmp/healthy'".to_vec(),
        };
        // The queue (by id) first, then the sticky result (by name).
        fake.set_exec_result("app", Ok(failed.clone()));
        fake.push_exec_result(&app, Ok(ExecSyncResult::default()));
        assert_eq!(
            fake.exec_sync(&app, cmd(), second).await,
            Ok(ExecSyncResult::default())
        );
        assert_eq!(
            fake.exec_sync(&app, cmd(), second).await,
            Ok(failed.clone())
        );
        assert_eq!(fake.exec_sync(&app, cmd(), second).await, Ok(failed));
        fake.fail_next(Op::ExecSync, RuntimeError::Unavailable("down".into()));
        assert!(fake.exec_sync(&app, cmd(), second).await.is_err());

        // A slow command: done within its timeout, or cut off by it.
        fake.set_exec_result("app", Ok(ExecSyncResult::default()));
        fake.set_exec_delay(&app, Duration::from_secs(2));
        let start = tokio::time::Instant::now();
        assert!(fake
            .exec_sync(&app, cmd(), Duration::from_secs(5))
            .await
            .is_ok());
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        let err = fake
            .exec_sync(&app, cmd(), second)
            .await
            .expect_err("timed out");
        assert!(err.is_deadline_exceeded(), "{err:?}");
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        assert_eq!(
            fake.calls().last(),
            Some(&Call::ExecSync {
                container_id: app.clone(),
                cmd: cmd()
            })
        );
    }

    #[tokio::test]
    async fn list_filters_by_id_state_sandbox_and_labels() {
        let fake = FakeRuntime::new();
        fake.add_image(BUSYBOX);
        let a = fake
            .run_pod_sandbox(sandbox_config("a"), "")
            .await
            .expect("a");
        let b = fake
            .run_pod_sandbox(sandbox_config("b"), "")
            .await
            .expect("b");
        fake.stop_pod_sandbox(&b).await.expect("stop b");

        let by_label = v1::PodSandboxFilter {
            label_selector: [("io.kubernetes.pod.name".to_string(), "a".to_string())].into(),
            ..Default::default()
        };
        let ids = |items: Vec<v1::PodSandbox>| items.into_iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(
            ids(fake.list_pod_sandboxes(Some(by_label)).await.expect("list")),
            vec![a.clone()]
        );
        let not_ready = v1::PodSandboxFilter {
            state: Some(v1::PodSandboxStateValue {
                state: v1::PodSandboxState::SandboxNotready.into(),
            }),
            ..Default::default()
        };
        assert_eq!(
            ids(fake
                .list_pod_sandboxes(Some(not_ready))
                .await
                .expect("list")),
            vec![b.clone()]
        );
        assert_eq!(
            ids(fake.list_pod_sandboxes(None).await.expect("list")),
            vec![a.clone(), b]
        );

        let c1 = fake
            .create_container(&a, container_config("one"), sandbox_config("a"))
            .await
            .expect("c1");
        let c2 = fake
            .create_container(&a, container_config("two"), sandbox_config("a"))
            .await
            .expect("c2");
        fake.start_container(&c2).await.expect("start");
        let running = v1::ContainerFilter {
            pod_sandbox_id: a.clone(),
            state: Some(v1::ContainerStateValue {
                state: v1::ContainerState::ContainerRunning.into(),
            }),
            ..Default::default()
        };
        let listed = fake.list_containers(Some(running)).await.expect("list");
        assert_eq!(
            listed.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
            vec![c2]
        );
        let by_name = v1::ContainerFilter {
            label_selector: [(
                "io.kubernetes.container.name".to_string(),
                "one".to_string(),
            )]
            .into(),
            ..Default::default()
        };
        let listed = fake.list_containers(Some(by_name)).await.expect("list");
        assert_eq!(
            listed.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
            vec![c1]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stats_report_scripted_usage_of_running_containers() {
        let fake = FakeRuntime::new();
        fake.add_image(BUSYBOX);
        let sandbox = fake
            .run_pod_sandbox(sandbox_config("p"), "")
            .await
            .expect("sandbox");
        let app = fake
            .create_container(&sandbox, container_config("app"), sandbox_config("p"))
            .await
            .expect("create");
        let idle = fake
            .create_container(&sandbox, container_config("idle"), sandbox_config("p"))
            .await
            .expect("create");
        fake.start_container(&app).await.expect("start");
        fake.set_usage(
            &app,
            Usage {
                cpu_core_nanos: 3,
                working_set_bytes: 4,
            },
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        let stats = fake.list_container_stats(None).await.expect("stats");
        let figures = |s: &v1::ContainerStats| {
            (
                s.attributes.as_ref().map(|a| a.id.clone()),
                s.cpu
                    .as_ref()
                    .map(|c| (c.timestamp, c.usage_core_nano_seconds)),
                s.memory.as_ref().and_then(|m| m.working_set_bytes),
            )
        };
        assert_eq!(
            stats.iter().map(figures).collect::<Vec<_>>(),
            vec![
                (
                    Some(app.clone()),
                    Some((
                        EPOCH_NANOS + 1_000_000_000,
                        Some(v1::UInt64Value { value: 3 })
                    )),
                    Some(v1::UInt64Value { value: 4 })
                ),
                (Some(idle), None, None),
            ],
            "a created container has no figures"
        );
        let only_app = v1::ContainerStatsFilter {
            id: app.clone(),
            ..Default::default()
        };
        assert_eq!(
            fake.list_container_stats(Some(only_app))
                .await
                .expect("stats")
                .len(),
            1
        );
        let pods = fake.list_pod_sandbox_stats(None).await.expect("stats");
        let linux = pods[0].linux.as_ref().expect("linux");
        assert_eq!(linux.containers.len(), 1, "running containers only");
        assert_eq!(
            linux.cpu.as_ref().and_then(|c| c.usage_core_nano_seconds),
            Some(v1::UInt64Value { value: 3 }),
            "the sum of its containers"
        );
        fake.stop_pod_sandbox(&sandbox).await.expect("stop");
        assert!(fake
            .list_pod_sandbox_stats(None)
            .await
            .expect("stats")
            .is_empty());
        assert_eq!(fake.calls().last(), Some(&Call::ListPodSandboxStats));
    }
}
