//! The Identity service: the driver's name and version, what it can do as a whole, and Probe.

use tonic::{Request, Response, Status};

use super::{Error, LocalDriver, DRIVER_NAME};
use crate::v1::identity_server::Identity;
use crate::v1::plugin_capability::{self, service, volume_expansion};
use crate::v1::{
    GetPluginCapabilitiesRequest, GetPluginCapabilitiesResponse, GetPluginInfoRequest,
    GetPluginInfoResponse, PluginCapability, ProbeRequest, ProbeResponse,
};

#[tonic::async_trait]
impl Identity for LocalDriver {
    async fn get_plugin_info(
        &self,
        _request: Request<GetPluginInfoRequest>,
    ) -> Result<Response<GetPluginInfoResponse>, Status> {
        Ok(Response::new(GetPluginInfoResponse {
            name: DRIVER_NAME.to_string(),
            vendor_version: env!("CARGO_PKG_VERSION").to_string(),
            manifest: Default::default(),
        }))
    }

    async fn get_plugin_capabilities(
        &self,
        _request: Request<GetPluginCapabilitiesRequest>,
    ) -> Result<Response<GetPluginCapabilitiesResponse>, Status> {
        let service = |kind: service::Type| PluginCapability {
            r#type: Some(plugin_capability::Type::Service(
                plugin_capability::Service {
                    r#type: kind.into(),
                },
            )),
        };
        Ok(Response::new(GetPluginCapabilitiesResponse {
            capabilities: vec![
                service(service::Type::ControllerService),
                // Volumes live on one node: CreateVolume answers with that node's topology.
                service(service::Type::VolumeAccessibilityConstraints),
                // Expansion only changes the recorded capacity, so it is fine while mounted.
                PluginCapability {
                    r#type: Some(plugin_capability::Type::VolumeExpansion(
                        plugin_capability::VolumeExpansion {
                            r#type: volume_expansion::Type::Online.into(),
                        },
                    )),
                },
            ],
        }))
    }

    async fn probe(
        &self,
        _request: Request<ProbeRequest>,
    ) -> Result<Response<ProbeResponse>, Status> {
        self.run("Probe", |inner| {
            let root = inner.store.root();
            match std::fs::metadata(root) {
                Ok(meta) if meta.is_dir() => Ok(ProbeResponse { ready: Some(true) }),
                Ok(_) => Err(Error::FailedPrecondition(format!(
                    "{} is not a directory",
                    root.display()
                ))),
                Err(err) => Err(Error::FailedPrecondition(format!(
                    "volume directory {}: {err}",
                    root.display()
                ))),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::testing::Fixture;

    #[tokio::test]
    async fn identity() {
        let fixture = Fixture::new(None);
        let info = fixture
            .driver
            .get_plugin_info(Request::new(GetPluginInfoRequest {}))
            .await
            .expect("info")
            .into_inner();
        assert_eq!(info.name, "local.csi.ferry.dev");
        assert!(!info.vendor_version.is_empty());

        let caps = fixture
            .driver
            .get_plugin_capabilities(Request::new(GetPluginCapabilitiesRequest {}))
            .await
            .expect("capabilities")
            .into_inner()
            .capabilities;
        assert_eq!(caps.len(), 3);

        let probe = fixture
            .driver
            .probe(Request::new(ProbeRequest {}))
            .await
            .expect("probe")
            .into_inner();
        assert_eq!(probe.ready, Some(true));

        std::fs::remove_dir_all(fixture.root()).expect("remove root");
        let status = fixture
            .driver
            .probe(Request::new(ProbeRequest {}))
            .await
            .expect_err("no root");
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    }
}
