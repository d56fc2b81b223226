//! DefaultBinder: binds through the [`Binder`] (a `pods/binding` POST in production).

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use k8s_openapi::api::core::v1::Pod;

use crate::binder::Binder;
use crate::framework::{Bind, CycleState, Plugin, Status};

/// The plugin's name.
pub const NAME: &str = "DefaultBinder";

/// The DefaultBinder plugin.
pub struct DefaultBinder {
    binder: Arc<dyn Binder>,
}

impl DefaultBinder {
    /// A binder plugin writing through `binder`.
    pub fn new(binder: Arc<dyn Binder>) -> DefaultBinder {
        DefaultBinder { binder }
    }
}

impl Plugin for DefaultBinder {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_bind(&self) -> Option<&dyn Bind> {
        Some(self)
    }
}

impl Bind for DefaultBinder {
    fn bind(&self, _state: &CycleState, pod: &Pod, node: &str) -> BoxFuture<'static, Status> {
        let call = self.binder.bind(pod, node);
        async move {
            match call.await {
                Ok(()) => Status::success(),
                Err(error) => Status::error(error.to_string()),
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binder::{Call, FakeBinder};
    use crate::testing::make_pod;

    #[tokio::test]
    async fn binds_through_the_binder() {
        let fake = FakeBinder::new();
        let plugin = DefaultBinder::new(fake.clone());
        let status = plugin
            .bind(&CycleState::new(), &make_pod("p").pod(), "n1")
            .await;
        assert!(status.is_success());
        assert_eq!(fake.calls(), [Call::Bind("default/p".into(), "n1".into())]);
        *fake.fail_binds.lock() = Some("conflict".into());
        let status = plugin
            .bind(&CycleState::new(), &make_pod("p").pod(), "n1")
            .await;
        assert_eq!(status, Status::error("conflict"));
    }
}
