//! The ServiceAccount controller (and upstream's root-CA publisher): every active namespace has a
//! `default` ServiceAccount, and — when the cluster CA is known — a `kube-root-ca.crt` ConfigMap
//! with it, which projected service-account volumes mount.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, ResourceExt as _};

use crate::queue::{Queue, Reconciler};
use crate::util::api_code;
use crate::{ApiContext as _, Context, Error};

/// The ConfigMap the CA is published in.
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";

/// The controller and its queue of namespace names.
pub struct ServiceAccountController {
    ctx: Arc<Context>,
    /// The root-ca-cert-publisher's client (upstream's separate controller, here run on the
    /// same queue): it writes the `kube-root-ca.crt` ConfigMaps.
    publisher: kube::Client,
    queue: Arc<Queue<String>>,
}

impl Reconciler for ServiceAccountController {
    type Key = String;
    type Error = Error;
    const NAME: &'static str = "serviceaccount";

    fn queue(&self) -> &Arc<Queue<String>> {
        &self.queue
    }

    async fn reconcile(self: Arc<Self>, key: String) -> Result<Option<Duration>, Error> {
        self.sync(key).await
    }
}

impl ServiceAccountController {
    /// Registers the handlers.
    pub fn new(ctx: Arc<Context>) -> Arc<ServiceAccountController> {
        let publisher = ctx.client.clone();
        Self::with_publisher_client(ctx, publisher)
    }

    /// Registers the handlers; the CA is published through `publisher`.
    pub fn with_publisher_client(
        ctx: Arc<Context>,
        publisher: kube::Client,
    ) -> Arc<ServiceAccountController> {
        let controller = Arc::new(ServiceAccountController {
            ctx: ctx.clone(),
            publisher,
            queue: Queue::new(),
        });
        let c = controller.clone();
        ctx.namespaces.add_handler(move |old, new| {
            // New namespaces, and ones whose content may have been touched.
            if let (None, Some(ns)) = (old, new) {
                c.queue.add(ns.name_any());
            }
        });
        let c = controller.clone();
        ctx.service_accounts.add_handler(move |old, new| {
            if let (Some(sa), None) = (old, new) {
                c.queue.add(sa.namespace().unwrap_or_default());
            }
        });
        controller
    }

    async fn sync(&self, namespace: String) -> Result<Option<Duration>, Error> {
        let Some(ns) = self.ctx.namespaces.get("", &namespace) else {
            return Ok(None);
        };
        if ns.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        if self
            .ctx
            .service_accounts
            .get(&namespace, "default")
            .is_none()
        {
            let sa = ServiceAccount {
                metadata: ObjectMeta {
                    name: Some("default".into()),
                    namespace: Some(namespace.clone()),
                    ..Default::default()
                },
                ..Default::default()
            };
            let api: Api<ServiceAccount> = Api::namespaced(self.ctx.client.clone(), &namespace);
            match api.create(&PostParams::default(), &sa).await {
                Ok(_) => {}
                Err(e) if matches!(api_code(&e), Some(409) | Some(403) | Some(404)) => {}
                Err(e) => return Err(e).context("creating the default serviceaccount"),
            }
        }
        if let Some(ca) = &self.ctx.options.root_ca {
            let api: Api<ConfigMap> = Api::namespaced(self.publisher.clone(), &namespace);
            let data = std::collections::BTreeMap::from([("ca.crt".to_string(), ca.clone())]);
            match api.get_opt(ROOT_CA_CONFIGMAP).await? {
                Some(existing) if existing.data.as_ref() == Some(&data) => {}
                Some(mut existing) => {
                    existing.data = Some(data);
                    api.replace(ROOT_CA_CONFIGMAP, &PostParams::default(), &existing)
                        .await
                        .context("updating kube-root-ca.crt")?;
                }
                None => {
                    let cm = ConfigMap {
                        metadata: ObjectMeta {
                            name: Some(ROOT_CA_CONFIGMAP.into()),
                            namespace: Some(namespace.clone()),
                            annotations: Some([("kubernetes.io/description".to_string(), "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.".to_string())].into()),
                            ..Default::default()
                        },
                        data: Some(data),
                        ..Default::default()
                    };
                    match api.create(&PostParams::default(), &cm).await {
                        Ok(_) => {}
                        Err(e) if matches!(api_code(&e), Some(409) | Some(403) | Some(404)) => {}
                        Err(e) => return Err(e).context("creating kube-root-ca.crt"),
                    }
                }
            }
        }
        Ok(None)
    }
}
