//! [`CriRuntime`]: the [`Runtime`] trait over CRI v1 gRPC on a unix socket (containerd's
//! `grpc.address`), with tonic and the `k8s-cri` generated clients.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

use super::{timeout_seconds, v1, ExecSyncResult, Result, Runtime, RuntimeError, StreamRequest};

/// The CRI API version we speak, sent in `Version` requests.
pub const CRI_API_VERSION: &str = "v1";

/// A CRI v1 client on a unix socket. Cheap to clone: the clients share one HTTP/2 connection,
/// which tonic re-establishes after the runtime restarts.
#[derive(Debug, Clone)]
pub struct CriRuntime {
    socket: PathBuf,
    runtime: RuntimeServiceClient<Channel>,
    image: ImageServiceClient<Channel>,
}

impl CriRuntime {
    /// Connects to the CRI socket at `socket`. Fails with [`RuntimeError::Unavailable`] when
    /// nothing accepts connections there.
    pub async fn connect(socket: impl AsRef<Path>) -> Result<Self> {
        let socket = socket.as_ref().to_path_buf();
        let channel = endpoint()
            .connect_with_connector(connector(socket.clone()))
            .await
            .map_err(|e| RuntimeError::Unavailable(format!("{}: {e}", socket.display())))?;
        Ok(Self::with_channel(socket, channel))
    }

    /// A client that connects on its first call (and reconnects after failures); calls made
    /// while the socket does not answer fail with [`RuntimeError::Unavailable`].
    pub fn connect_lazy(socket: impl AsRef<Path>) -> Self {
        let socket = socket.as_ref().to_path_buf();
        let channel = endpoint().connect_with_connector_lazy(connector(socket.clone()));
        Self::with_channel(socket, channel)
    }

    fn with_channel(socket: PathBuf, channel: Channel) -> Self {
        Self {
            socket,
            runtime: RuntimeServiceClient::new(channel.clone()),
            image: ImageServiceClient::new(channel),
        }
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `PodSandboxStatus`, with the runtime's verbose `info` when asked.
    async fn sandbox_status(
        &self,
        pod_sandbox_id: &str,
        verbose: bool,
    ) -> Result<v1::PodSandboxStatusResponse> {
        let request = v1::PodSandboxStatusRequest {
            pod_sandbox_id: pod_sandbox_id.to_string(),
            verbose,
        };
        let response = self
            .runtime
            .clone()
            .pod_sandbox_status(request)
            .await
            .map_err(status)?;
        Ok(response.into_inner())
    }
}

fn endpoint() -> Endpoint {
    // The URI is a placeholder: the connector below ignores it and dials the unix socket.
    Endpoint::from_static("http://localhost")
        .connect_timeout(Duration::from_secs(5))
        // Image pulls and sandbox creation can take a while; bound every call anyway.
        .timeout(Duration::from_secs(300))
}

fn connector(
    socket: PathBuf,
) -> impl tower::Service<
    Uri,
    Response = TokioIo<tokio::net::UnixStream>,
    Error = std::io::Error,
    Future = impl Send + 'static,
> + Clone
       + Send
       + 'static {
    tower::service_fn(move |_: Uri| {
        let socket = socket.clone();
        async move {
            Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(socket).await?))
        }
    })
}

/// Maps a transport-level failure (no connection) and a gRPC status alike.
fn status(e: tonic::Status) -> RuntimeError {
    RuntimeError::from(e)
}

/// What an exec may take beyond its own timeout before we give up waiting for the runtime
/// (upstream's default runtime request timeout).
const EXEC_GRACE: Duration = Duration::from_secs(120);

/// Like [`status`], except that our own deadline expiring (tonic reports it as `CANCELLED`
/// "Timeout expired") is a `DEADLINE_EXCEEDED` like the runtime's.
fn exec_status(e: tonic::Status) -> RuntimeError {
    if e.code() == tonic::Code::Cancelled && e.message() == "Timeout expired" {
        return RuntimeError::Grpc {
            code: tonic::Code::DeadlineExceeded,
            message: e.message().to_string(),
        };
    }
    status(e)
}

fn missing(what: &str) -> RuntimeError {
    RuntimeError::InvalidResponse(format!("response has no {what}"))
}

/// The pause process's pid in containerd's verbose sandbox info (`info` → `{"pid": …}`).
fn sandbox_pid(info: &std::collections::HashMap<String, String>) -> Option<u32> {
    let info: serde_json::Value = serde_json::from_str(info.get("info")?).ok()?;
    info.get("pid")?
        .as_u64()
        .and_then(|pid| u32::try_from(pid).ok())
        .filter(|pid| *pid > 0)
}

#[async_trait]
impl Runtime for CriRuntime {
    async fn version(&self) -> Result<v1::VersionResponse> {
        let request = v1::VersionRequest {
            version: CRI_API_VERSION.to_string(),
        };
        Ok(self
            .runtime
            .clone()
            .version(request)
            .await
            .map_err(status)?
            .into_inner())
    }

    async fn run_pod_sandbox(
        &self,
        config: v1::PodSandboxConfig,
        runtime_handler: &str,
    ) -> Result<String> {
        let request = v1::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: runtime_handler.to_string(),
        };
        let response = self
            .runtime
            .clone()
            .run_pod_sandbox(request)
            .await
            .map_err(status)?;
        Ok(response.into_inner().pod_sandbox_id)
    }

    async fn stop_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<()> {
        let request = v1::StopPodSandboxRequest {
            pod_sandbox_id: pod_sandbox_id.to_string(),
        };
        self.runtime
            .clone()
            .stop_pod_sandbox(request)
            .await
            .map_err(status)?;
        Ok(())
    }

    async fn remove_pod_sandbox(&self, pod_sandbox_id: &str) -> Result<()> {
        let request = v1::RemovePodSandboxRequest {
            pod_sandbox_id: pod_sandbox_id.to_string(),
        };
        self.runtime
            .clone()
            .remove_pod_sandbox(request)
            .await
            .map_err(status)?;
        Ok(())
    }

    async fn pod_sandbox_status(&self, pod_sandbox_id: &str) -> Result<v1::PodSandboxStatus> {
        self.sandbox_status(pod_sandbox_id, false)
            .await?
            .status
            .ok_or_else(|| missing("sandbox status"))
    }

    async fn pod_sandbox_pid(&self, pod_sandbox_id: &str) -> Result<Option<u32>> {
        let response = self.sandbox_status(pod_sandbox_id, true).await?;
        Ok(sandbox_pid(&response.info))
    }

    async fn list_pod_sandboxes(
        &self,
        filter: Option<v1::PodSandboxFilter>,
    ) -> Result<Vec<v1::PodSandbox>> {
        let request = v1::ListPodSandboxRequest { filter };
        Ok(self
            .runtime
            .clone()
            .list_pod_sandbox(request)
            .await
            .map_err(status)?
            .into_inner()
            .items)
    }

    async fn create_container(
        &self,
        pod_sandbox_id: &str,
        config: v1::ContainerConfig,
        sandbox_config: v1::PodSandboxConfig,
    ) -> Result<String> {
        let request = v1::CreateContainerRequest {
            pod_sandbox_id: pod_sandbox_id.to_string(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        let response = self
            .runtime
            .clone()
            .create_container(request)
            .await
            .map_err(status)?;
        Ok(response.into_inner().container_id)
    }

    async fn start_container(&self, container_id: &str) -> Result<()> {
        let request = v1::StartContainerRequest {
            container_id: container_id.to_string(),
        };
        self.runtime
            .clone()
            .start_container(request)
            .await
            .map_err(status)?;
        Ok(())
    }

    async fn stop_container(&self, container_id: &str, timeout_seconds: i64) -> Result<()> {
        let request = v1::StopContainerRequest {
            container_id: container_id.to_string(),
            timeout: timeout_seconds,
        };
        let mut request = tonic::Request::new(request);
        // The call lasts up to the grace period: do not let the channel's default cut it short.
        request.set_timeout(Duration::from_secs(
            timeout_seconds.max(0).unsigned_abs() + 60,
        ));
        self.runtime
            .clone()
            .stop_container(request)
            .await
            .map_err(status)?;
        Ok(())
    }

    async fn remove_container(&self, container_id: &str) -> Result<()> {
        let request = v1::RemoveContainerRequest {
            container_id: container_id.to_string(),
        };
        self.runtime
            .clone()
            .remove_container(request)
            .await
            .map_err(status)?;
        Ok(())
    }

    async fn container_status(&self, container_id: &str) -> Result<v1::ContainerStatus> {
        let request = v1::ContainerStatusRequest {
            container_id: container_id.to_string(),
            verbose: false,
        };
        let response = self
            .runtime
            .clone()
            .container_status(request)
            .await
            .map_err(status)?;
        response
            .into_inner()
            .status
            .ok_or_else(|| missing("container status"))
    }

    async fn list_containers(
        &self,
        filter: Option<v1::ContainerFilter>,
    ) -> Result<Vec<v1::Container>> {
        let request = v1::ListContainersRequest { filter };
        Ok(self
            .runtime
            .clone()
            .list_containers(request)
            .await
            .map_err(status)?
            .into_inner()
            .containers)
    }

    async fn exec_sync(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecSyncResult> {
        let request = v1::ExecSyncRequest {
            container_id: container_id.to_string(),
            cmd,
            timeout: timeout_seconds(timeout),
        };
        let mut request = tonic::Request::new(request);
        if !timeout.is_zero() {
            // Like upstream: the command's timeout plus the usual request timeout (2 min), so
            // the runtime has time to kill the command and answer DEADLINE_EXCEEDED itself.
            request.set_timeout(timeout + EXEC_GRACE);
        }
        let response = self
            .runtime
            .clone()
            .exec_sync(request)
            .await
            .map_err(exec_status)?
            .into_inner();
        Ok(ExecSyncResult {
            exit_code: response.exit_code,
            stdout: response.stdout,
            stderr: response.stderr,
        })
    }

    async fn pull_image(
        &self,
        image: v1::ImageSpec,
        auth: Option<v1::AuthConfig>,
        sandbox_config: Option<v1::PodSandboxConfig>,
    ) -> Result<String> {
        let request = v1::PullImageRequest {
            image: Some(image),
            auth,
            sandbox_config,
        };
        Ok(self
            .image
            .clone()
            .pull_image(request)
            .await
            .map_err(status)?
            .into_inner()
            .image_ref)
    }

    async fn image_status(&self, image: v1::ImageSpec) -> Result<Option<v1::Image>> {
        let request = v1::ImageStatusRequest {
            image: Some(image),
            verbose: false,
        };
        Ok(self
            .image
            .clone()
            .image_status(request)
            .await
            .map_err(status)?
            .into_inner()
            .image)
    }

    async fn list_images(&self, filter: Option<v1::ImageFilter>) -> Result<Vec<v1::Image>> {
        let request = v1::ListImagesRequest { filter };
        Ok(self
            .image
            .clone()
            .list_images(request)
            .await
            .map_err(status)?
            .into_inner()
            .images)
    }

    async fn list_container_stats(
        &self,
        filter: Option<v1::ContainerStatsFilter>,
    ) -> Result<Vec<v1::ContainerStats>> {
        let request = v1::ListContainerStatsRequest { filter };
        Ok(self
            .runtime
            .clone()
            .list_container_stats(request)
            .await
            .map_err(status)?
            .into_inner()
            .stats)
    }

    async fn list_pod_sandbox_stats(
        &self,
        filter: Option<v1::PodSandboxStatsFilter>,
    ) -> Result<Vec<v1::PodSandboxStats>> {
        let request = v1::ListPodSandboxStatsRequest { filter };
        Ok(self
            .runtime
            .clone()
            .list_pod_sandbox_stats(request)
            .await
            .map_err(status)?
            .into_inner()
            .stats)
    }

    async fn remove_image(&self, image: v1::ImageSpec) -> Result<()> {
        let request = v1::RemoveImageRequest { image: Some(image) };
        match self.image.clone().remove_image(request).await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == tonic::Code::NotFound => Ok(()),
            Err(e) => Err(status(e)),
        }
    }

    async fn reopen_container_log(&self, container_id: &str) -> Result<()> {
        let request = v1::ReopenContainerLogRequest {
            container_id: container_id.to_string(),
        };
        self.runtime
            .clone()
            .reopen_container_log(request)
            .await
            .map_err(status)?;
        Ok(())
    }

    async fn image_fs_info(&self) -> Result<v1::ImageFsInfoResponse> {
        Ok(self
            .image
            .clone()
            .image_fs_info(v1::ImageFsInfoRequest {})
            .await
            .map_err(status)?
            .into_inner())
    }

    async fn stream_url(&self, request: StreamRequest) -> Result<String> {
        let mut runtime = self.runtime.clone();
        let url = match request {
            StreamRequest::Exec(r) => runtime.exec(r).await?.into_inner().url,
            StreamRequest::Attach(r) => runtime.attach(r).await?.into_inner().url,
            StreamRequest::PortForward(r) => runtime.port_forward(r).await?.into_inner().url,
        };
        if url.is_empty() {
            return Err(RuntimeError::InvalidResponse(
                "the streaming call returned no URL".into(),
            ));
        }
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_pid_is_read_from_containerds_verbose_info() {
        let info =
            |json: &str| std::collections::HashMap::from([("info".to_string(), json.to_string())]);
        assert_eq!(
            sandbox_pid(&info(r#"{"pid": 4242, "processStatus": "running"}"#)),
            Some(4242)
        );
        assert_eq!(sandbox_pid(&info(r#"{"pid": 0}"#)), None);
        assert_eq!(sandbox_pid(&info("not json")), None);
        assert_eq!(sandbox_pid(&std::collections::HashMap::new()), None);
    }

    #[tokio::test]
    async fn no_socket_is_unavailable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("missing.sock");
        match CriRuntime::connect(&socket).await {
            Err(RuntimeError::Unavailable(_)) => {}
            other => panic!("expected Unavailable, got {other:?}"),
        }
        let lazy = CriRuntime::connect_lazy(&socket);
        match lazy.version().await {
            Err(RuntimeError::Unavailable(_)) => {}
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
}
