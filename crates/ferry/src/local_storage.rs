//! The agent's local storage: the `local.csi.ferry.dev` CSI driver on a unix socket under the
//! data dir (volumes are directories under `<data-dir>/storage`), registered with the node, its
//! provisioner for claims placed on this node — what k3s's local-path provisioner gives, over
//! CSI — and its attacher for the VolumeAttachments of this node (used when the CSIDriver object
//! says `attachRequired: true`). `ferry server` creates the CSIDriver object and the default
//! `local` StorageClass.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ferry_csi::driver::DRIVER_NAME;
use ferry_csi::mounter::HostMounter;
use ferry_csi::{CsiSocket, DriverConfig, LocalDriver};
use ferry_kubelet::csi::attacher::Attacher;
use ferry_kubelet::csi::provisioner::Provisioner;
use ferry_kubelet::csi::{register, CsiNode};

/// Starts the driver, its provisioner and its attacher; the driver is added to `csi` once
/// registered. All stop with `stopping`.
pub async fn start<S, Fut>(
    client: kube::Client,
    node: &str,
    data_dir: &Path,
    csi: Arc<CsiNode>,
    stopping: S,
) -> anyhow::Result<()>
where
    S: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let socket = data_dir.join("csi").join(DRIVER_NAME).join("csi.sock");
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let driver = LocalDriver::new(
        DriverConfig {
            node_id: node.to_string(),
            root: data_dir.join("storage"),
            capacity_bytes: None,
        },
        Arc::new(HostMounter),
    )
    .context("starting the local CSI driver")?;
    let bound = CsiSocket::bind(&socket).context("binding the CSI socket")?;
    tokio::spawn(bound.serve(driver, stopping()));
    let mut driver_client = ferry_csi::client::connect(&socket)
        .await
        .context("connecting to the local CSI driver")?;
    let node = node.to_string();
    tokio::spawn(async move {
        // Registration needs the Node; retry until it is there.
        let topology = loop {
            match register(&client, &node, DRIVER_NAME, &mut driver_client).await {
                Ok(topology) => break topology,
                Err(error) => {
                    tracing::warn!(%error, "registering the local CSI driver; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        };
        csi.add_driver(DRIVER_NAME, driver_client.clone());
        tracing::info!(driver = DRIVER_NAME, "CSI driver registered");
        // The driver's node id is the node's name (DriverConfig::node_id above).
        let attacher = Attacher::new(
            client.clone(),
            driver_client.clone(),
            DRIVER_NAME,
            &node,
            &node,
        );
        tokio::join!(
            attacher.run(stopping()),
            Provisioner::new(client, driver_client, DRIVER_NAME, &node, topology).run(stopping()),
        );
    });
    Ok(())
}
