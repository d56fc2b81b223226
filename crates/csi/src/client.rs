//! Clients of a CSI plugin on a unix socket: [`connect`] gives the typed Identity, Controller
//! and Node clients over one HTTP/2 connection, dialled as the kubelet dials containerd's CRI
//! socket (tonic with a connector that ignores the URI).

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::v1::controller_client::ControllerClient;
use crate::v1::identity_client::IdentityClient;
use crate::v1::node_client::NodeClient;

/// The bound on every call unless the request sets its own (`Request::set_timeout`): the
/// kubelet's CSI timeout for mount operations.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// The three CSI services of one plugin. Cheap to clone (the clients share one connection,
/// re-established by tonic after the plugin restarts); the clients' methods take `&mut self`,
/// so clone a client to call it from several tasks.
#[derive(Clone, Debug)]
pub struct CsiClient {
    /// GetPluginInfo, GetPluginCapabilities, Probe.
    pub identity: IdentityClient<Channel>,
    /// CreateVolume, DeleteVolume, GetCapacity, ControllerExpandVolume, ...
    pub controller: ControllerClient<Channel>,
    /// NodePublishVolume, NodeUnpublishVolume, NodeGetInfo, NodeGetVolumeStats, ...
    pub node: NodeClient<Channel>,
    channel: Channel,
    socket: PathBuf,
}

impl CsiClient {
    fn new(socket: PathBuf, channel: Channel) -> Self {
        Self {
            identity: IdentityClient::new(channel.clone()),
            controller: ControllerClient::new(channel.clone()),
            node: NodeClient::new(channel.clone()),
            channel,
            socket,
        }
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The connection, for clients of services this crate does not generate.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }
}

/// Connects to the CSI plugin on the unix socket `socket`; fails when nothing accepts
/// connections there.
pub async fn connect(socket: impl AsRef<Path>) -> Result<CsiClient, tonic::transport::Error> {
    let socket = socket.as_ref().to_path_buf();
    let channel = endpoint()
        .connect_with_connector(connector(socket.clone()))
        .await?;
    Ok(CsiClient::new(socket, channel))
}

/// A client that connects on its first call (and again after failures); calls made while the
/// socket does not answer fail with UNAVAILABLE.
pub fn connect_lazy(socket: impl AsRef<Path>) -> CsiClient {
    let socket = socket.as_ref().to_path_buf();
    let channel = endpoint().connect_with_connector_lazy(connector(socket.clone()));
    CsiClient::new(socket, channel)
}

fn endpoint() -> Endpoint {
    // The URI is a placeholder: the connector dials the unix socket.
    Endpoint::from_static("http://localhost")
        .connect_timeout(Duration::from_secs(5))
        .timeout(DEFAULT_CALL_TIMEOUT)
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
        async move { Ok(TokioIo::new(tokio::net::UnixStream::connect(socket).await?)) }
    })
}
