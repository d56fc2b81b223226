//! The kubelet server's pod endpoints: a container's log, and exec, attach and port-forward
//! handed to the runtime's streaming server. A log's instance is the one the pod's status names
//! (as upstream's); running containers and sandboxes are found through the runtime by the
//! labels the pod workers give them, so a pod started by an earlier kubelet process is found
//! too.

use std::sync::Arc;

use bytes::Bytes;
use ferry_client::upgrade;
use futures::StreamExt as _;
use http_body_util::BodyExt as _;

use k8s_openapi::api::core::v1::Pod;

use ferry_api::query::parse_bool;

use super::logs::{self, LogOptions};
use super::translate::{self, Streams, Translation};
use super::{text, Response};
use crate::podconfig::{CONTAINER_NAME_LABEL, POD_NAMESPACE_LABEL, POD_NAME_LABEL};
use crate::runtime::{v1, Runtime, RuntimeError, StreamRequest};

/// The pod's containers named `container`, newest instance first.
async fn instances(
    runtime: &Arc<dyn Runtime>,
    namespace: &str,
    pod: &str,
    container: &str,
) -> Result<Vec<v1::Container>, RuntimeError> {
    let labels = [
        (POD_NAMESPACE_LABEL, namespace),
        (POD_NAME_LABEL, pod),
        (CONTAINER_NAME_LABEL, container),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut found = runtime
        .list_containers(Some(v1::ContainerFilter {
            label_selector: labels,
            ..Default::default()
        }))
        .await?;
    found.sort_by_key(|c| {
        std::cmp::Reverse((c.metadata.as_ref().map_or(0, |m| m.attempt), c.created_at))
    });
    Ok(found)
}

fn runtime_error(error: RuntimeError) -> Response {
    match error {
        RuntimeError::NotFound(message) => text(404, message),
        other => text(500, other.to_string()),
    }
}

/// The instance whose log a request reads, from the pod's status as upstream's
/// `validateContainerLogStatus` picks it: with `previous`, the last terminated one; else the
/// running one, or the one that ended (a crash loop reads the instance that crashed). The
/// runtime's id (without its `containerd://` scheme), or the kubelet's message why there is
/// no log.
pub fn log_container_id(pod: &Pod, container: &str, previous: bool) -> Result<String, String> {
    let pod_name = pod.metadata.name.as_deref().unwrap_or("");
    let status = pod.status.as_ref().and_then(|status| {
        [
            &status.container_statuses,
            &status.init_container_statuses,
            &status.ephemeral_container_statuses,
        ]
        .into_iter()
        .flatten()
        .flatten()
        .find(|s| s.name == container)
    });
    let waiting_no_logs =
        || format!("container {container:?} in pod {pod_name:?} is waiting to start - no logs yet");
    let Some(status) = status else {
        return Err(waiting_no_logs());
    };
    let id = |id: Option<&String>| {
        id.filter(|id| !id.is_empty()).map(|id| {
            id.split_once("://")
                .map_or(id.as_str(), |(_, id)| id)
                .to_string()
        })
    };
    let last = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref());
    let state = status.state.clone().unwrap_or_default();
    let terminated_error = || format!("container {container:?} in pod {pod_name:?} is terminated");
    if previous {
        return id(last.and_then(|t| t.container_id.as_ref())).ok_or_else(|| {
            format!("previous terminated container {container:?} in pod {pod_name:?} not found")
        });
    }
    if state.running.is_some() {
        return id(status.container_id.as_ref()).ok_or_else(waiting_no_logs);
    }
    if let Some(terminated) = &state.terminated {
        return id(terminated.container_id.as_ref())
            .or_else(|| id(last.and_then(|t| t.container_id.as_ref())))
            .ok_or_else(terminated_error);
    }
    if let Some(last) = last {
        return id(last.container_id.as_ref()).ok_or_else(terminated_error);
    }
    if let Some(waiting) = &state.waiting {
        let why = match waiting.reason.as_deref().unwrap_or("") {
            "ErrImagePull" => "image can't be pulled".to_string(),
            "ImagePullBackOff" => "trying and failing to pull image".to_string(),
            other => other.to_string(),
        };
        return Err(format!(
            "container {container:?} in pod {pod_name:?} is waiting to start: {why}"
        ));
    }
    Err(waiting_no_logs())
}

/// `GET /containerLogs/<namespace>/<pod>/<container>`: the log under the query's options
/// ([`LogOptions::from_query`]), streamed while the container runs when following.
pub async fn container_logs(
    runtime: &Arc<dyn Runtime>,
    pods: &dyn PodLookup,
    namespace: &str,
    pod: &str,
    container: &str,
    query: &str,
) -> Response {
    let options = match LogOptions::from_query(query, jiff::Timestamp::now()) {
        Ok(options) => options,
        Err(message) => return text(400, message),
    };
    let found = match pods.pod(namespace, pod).await {
        Ok(Some(found)) => found,
        Ok(None) => return text(404, format!("pod {pod:?} does not exist")),
        Err(error) => return text(500, error),
    };
    let spec = found.spec.as_ref();
    let exists = spec.is_some_and(|spec| {
        spec.containers.iter().any(|c| c.name == container)
            || spec
                .init_containers
                .iter()
                .flatten()
                .any(|c| c.name == container)
            || spec
                .ephemeral_containers
                .iter()
                .flatten()
                .any(|c| c.name == container)
    });
    if !exists {
        return text(
            404,
            format!("container {container:?} not found in pod {pod:?}"),
        );
    }
    let id = match log_container_id(&found, container, options.previous) {
        Ok(id) => id,
        Err(message) => return text(400, message),
    };
    let status = match runtime.container_status(&id).await {
        Ok(status) => status,
        Err(error) => return runtime_error(error),
    };
    if status.log_path.is_empty() {
        return text(500, format!("container {container:?} has no log path"));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let runtime = runtime.clone();
    let path = std::path::PathBuf::from(&status.log_path);
    tokio::spawn(async move {
        let running = || {
            let runtime = runtime.clone();
            let id = id.clone();
            async move {
                runtime
                    .container_status(&id)
                    .await
                    .is_ok_and(|s| s.state == v1::ContainerState::ContainerRunning as i32)
            }
        };
        if let Err(error) = logs::stream(path, options, tx, running).await {
            tracing::debug!(%error, "container log stream");
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::io::Error>(hyper::body::Frame::data(chunk)), rx))
    });
    let mut response =
        http::Response::new(http_body_util::StreamBody::new(body.boxed()).boxed_unsync());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    response
}

/// Finds this node's pods, for their container statuses (which instance a log request reads).
#[async_trait::async_trait]
pub trait PodLookup: Send + Sync {
    /// The pod, `None` if there is none.
    async fn pod(&self, namespace: &str, name: &str) -> Result<Option<Pod>, String>;
}

/// From the API server, with the node's credentials.
pub struct ApiPods(pub kube::Client);

#[async_trait::async_trait]
impl PodLookup for ApiPods {
    async fn pod(&self, namespace: &str, name: &str) -> Result<Option<Pod>, String> {
        kube::Api::<Pod>::namespaced(self.0.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|e| e.to_string())
    }
}

fn flag(query: &str, name: &str) -> bool {
    form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k == name && parse_bool(&v))
}

/// `/exec/…` and `/attach/…`: the container's running instance, a streaming URL for it, and
/// the client's upgrade proxied there.
pub async fn container_stream<B>(
    runtime: &Arc<dyn Runtime>,
    kind: &str,
    namespace: &str,
    pod: &str,
    container: &str,
    request: http::Request<B>,
) -> Response {
    if !upgrade::is_upgrade(request.headers()) {
        return text(400, "Upgrade request required");
    }
    let query = request.uri().query().unwrap_or("");
    let running = match instances(runtime, namespace, pod, container).await {
        Ok(found) => found
            .into_iter()
            .find(|c| c.state == v1::ContainerState::ContainerRunning as i32),
        Err(error) => return runtime_error(error),
    };
    let Some(running) = running else {
        return text(404, format!("container not found ({container:?})"));
    };
    let tty = flag(query, "tty");
    let streams = Streams {
        stdin: flag(query, "input") || flag(query, "stdin"),
        stdout: flag(query, "output") || flag(query, "stdout"),
        // With a TTY, stderr is the terminal too (upstream).
        stderr: !tty && (flag(query, "error") || flag(query, "stderr")),
        tty,
    };
    let stream_request = if kind == "exec" {
        let cmd: Vec<String> = form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.into_owned())
            .collect();
        if cmd.is_empty() {
            return text(400, "missing command");
        }
        StreamRequest::Exec(v1::ExecRequest {
            container_id: running.id,
            cmd,
            tty,
            stdin: streams.stdin,
            stdout: streams.stdout,
            stderr: streams.stderr,
        })
    } else {
        StreamRequest::Attach(v1::AttachRequest {
            container_id: running.id,
            tty,
            stdin: streams.stdin,
            stdout: streams.stdout,
            stderr: streams.stderr,
        })
    };
    let translation = translate::websocket_offers(request.headers(), translate::V5_CHANNEL)
        .then_some(Translation::Exec(streams));
    proxy_to_runtime(runtime, stream_request, translation, request).await
}

/// `/portForward/<namespace>/<pod>`: the pod's ready sandbox, a streaming URL for it, and the
/// client's upgrade proxied there (the ports travel in the stream headers).
pub async fn port_forward<B>(
    runtime: &Arc<dyn Runtime>,
    namespace: &str,
    pod: &str,
    request: http::Request<B>,
) -> Response {
    if !upgrade::is_upgrade(request.headers()) {
        return text(400, "Upgrade request required");
    }
    let labels = [(POD_NAMESPACE_LABEL, namespace), (POD_NAME_LABEL, pod)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let sandboxes = match runtime
        .list_pod_sandboxes(Some(v1::PodSandboxFilter {
            label_selector: labels,
            state: Some(v1::PodSandboxStateValue {
                state: v1::PodSandboxState::SandboxReady as i32,
            }),
            ..Default::default()
        }))
        .await
    {
        Ok(found) => found,
        Err(error) => return runtime_error(error),
    };
    let Some(sandbox) = sandboxes.into_iter().max_by_key(|s| s.created_at) else {
        return text(
            404,
            format!("pod {pod:?} in namespace {namespace:?} has no running sandbox"),
        );
    };
    let ports = form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "port")
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    let stream_request = StreamRequest::PortForward(v1::PortForwardRequest {
        pod_sandbox_id: sandbox.id,
        port: ports,
    });
    let translation =
        translate::websocket_offers(request.headers(), translate::PORT_FORWARD_TUNNEL)
            .then_some(Translation::PortForward);
    proxy_to_runtime(runtime, stream_request, translation, request).await
}

/// Asks the runtime for the session's URL and forwards the client's upgrade to it — or, for a
/// WebSocket protocol the runtime does not speak, bridges it to the runtime's SPDY
/// ([`translate`]).
async fn proxy_to_runtime<B>(
    runtime: &Arc<dyn Runtime>,
    stream_request: StreamRequest,
    translation: Option<Translation>,
    mut request: http::Request<B>,
) -> Response {
    let url = match runtime.stream_url(stream_request).await {
        Ok(url) => url,
        Err(error) => return runtime_error(error),
    };
    let Ok(uri) = url.parse::<http::Uri>() else {
        return text(500, format!("runtime streaming URL {url:?} does not parse"));
    };
    let (Some(authority), Some(path)) = (uri.authority(), uri.path_and_query()) else {
        return text(
            500,
            format!("runtime streaming URL {url:?} has no host or path"),
        );
    };
    // The client's query goes along: a WebSocket port-forward names its ports there, and the
    // streaming server reads them from its own request.
    let path = match (path.query(), request.uri().query()) {
        (None, Some(query)) if !query.is_empty() => format!("{}?{query}", path.path()),
        _ => path.as_str().to_string(),
    };
    if uri.scheme_str() != Some("http") {
        return text(
            500,
            format!("runtime streaming URL {url:?} is not plain HTTP on loopback"),
        );
    }
    let tcp = match tokio::net::TcpStream::connect(authority.as_str()).await {
        Ok(tcp) => tcp,
        Err(error) => {
            return text(
                500,
                format!("connecting to the runtime's streaming server: {error}"),
            )
        }
    };
    if let Some(translation) = translation {
        return translate::serve(tcp, authority.as_str(), &path, request, translation).await;
    }
    let client_upgrade = hyper::upgrade::on(&mut request);
    match upgrade::forward(
        tcp,
        request.method(),
        authority.as_str(),
        &path,
        request.headers(),
    )
    .await
    {
        Ok(forwarded) => forwarded.into_response(client_upgrade, super::full_body),
        Err(error) => text(
            500,
            format!("proxying to the runtime's streaming server: {error}"),
        ),
    }
}
