//! Serving a driver's Identity, Controller and Node services on a unix socket, as CSI plugins do
//! (`CSI_ENDPOINT=unix:///…/csi.sock`).

use std::future::Future;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Server;

use crate::v1::controller_server::{Controller, ControllerServer};
use crate::v1::identity_server::{Identity, IdentityServer};
use crate::v1::node_server::{Node, NodeServer};

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The socket could not be made (its directory, a stale socket's removal, bind).
    #[error("CSI socket {path}: {source}")]
    Socket {
        /// The socket's path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Something that is not a socket is at the path; it is left alone.
    #[error("CSI socket {0}: the path exists and is not a socket")]
    NotASocket(PathBuf),
    /// Another server accepts connections on the socket.
    #[error("CSI socket {0}: another server is listening on it")]
    InUse(PathBuf),
    /// The gRPC server failed.
    #[error("CSI server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// A bound CSI socket, not yet serving: bind first when callers must be able to connect as soon
/// as this returns (e.g. before announcing the plugin), then [`serve`](CsiSocket::serve).
#[derive(Debug)]
pub struct CsiSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl CsiSocket {
    /// Binds `path`, making its directory if missing and replacing a stale socket (one nobody
    /// accepts on, left by a driver that did not shut down). Needs a tokio runtime.
    pub fn bind(path: impl AsRef<Path>) -> Result<Self, ServeError> {
        let path = path.as_ref().to_path_buf();
        let socket_error = |source| ServeError::Socket {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(socket_error)?;
        }
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_socket() => {
                if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                    return Err(ServeError::InUse(path));
                }
                std::fs::remove_file(&path).map_err(socket_error)?;
            }
            Ok(_) => return Err(ServeError::NotASocket(path)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(socket_error(err)),
        }
        let listener = UnixListener::bind(&path).map_err(socket_error)?;
        Ok(Self { listener, path })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves `driver`'s three services until `shutdown` completes, then waits for the calls in
    /// flight and removes the socket.
    pub async fn serve<D>(
        self,
        driver: D,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError>
    where
        D: Identity + Controller + Node + Clone,
    {
        tracing::info!(socket = %self.path.display(), "serving CSI");
        let result = Server::builder()
            .add_service(IdentityServer::new(driver.clone()))
            .add_service(ControllerServer::new(driver.clone()))
            .add_service(NodeServer::new(driver))
            .serve_with_incoming_shutdown(UnixListenerStream::new(self.listener), shutdown)
            .await;
        if let Err(err) = std::fs::remove_file(&self.path) {
            if err.kind() != io::ErrorKind::NotFound {
                tracing::warn!(socket = %self.path.display(), %err, "removing the CSI socket");
            }
        }
        result.map_err(ServeError::from)
    }
}

/// Serves `driver` (e.g. a [`LocalDriver`](crate::LocalDriver)) on the unix socket `socket`
/// until `shutdown` completes: [`CsiSocket::bind`] then [`CsiSocket::serve`].
pub async fn serve<D>(
    driver: D,
    socket: impl AsRef<Path>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError>
where
    D: Identity + Controller + Node + Clone,
{
    CsiSocket::bind(socket)?.serve(driver, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stale_sockets_are_replaced_live_ones_and_files_are_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plugins/csi.sock");

        let first = CsiSocket::bind(&path).expect("bind");
        assert!(matches!(CsiSocket::bind(&path), Err(ServeError::InUse(_))));
        drop(first);
        // The dropped listener left its socket file behind: stale, replaced.
        assert!(path.exists());
        let second = CsiSocket::bind(&path).expect("rebind");
        assert_eq!(second.path(), path);
        drop(second);

        let file = dir.path().join("file");
        std::fs::write(&file, b"not a socket").expect("write");
        assert!(matches!(
            CsiSocket::bind(&file),
            Err(ServeError::NotASocket(_))
        ));
        assert!(file.exists());
    }
}
