//! The HTTPS server and the request pipeline, in upstream's order:
//! authentication → authorization → (per verb) mutating admission → defaulting and validation
//! → validating admission → store. Non-resource paths (`/version`, health, discovery,
//! `/metrics`) are answered here; resource requests are resolved in the [`Registry`] and go to
//! [`crate::rest`] and [`crate::watch`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ferry_store::Store;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};

use crate::admission::Chain;
use crate::auth::{
    AlwaysAllow, Auth, AuthenticatorChain, AuthorizationMode, Authorizer, AuthorizerChain,
    PrivilegedGroups,
};
use crate::body::{Request as HttpRequest, Response};
use crate::features::FeatureGates;
use crate::filters::audit::{Audit, Auditor, RemoteAddr, TracingSink};
use crate::filters::authentication::{Authenticate, ClientCertificate};
use crate::filters::authorization::Authorize;
use crate::filters::impersonation::Impersonate;
use crate::filters::max_inflight::{self, MaxInFlight};
use crate::filters::metrics::{Instrument, Metrics};
use crate::filters::priority_and_fairness::{InFlightLimit, PriorityAndFairness};
use crate::filters::recover::RecoverPanic;
use crate::filters::request_info::ParseRequestInfo;
use crate::filters::{BoxFuture, FilterLayer};
use crate::handlers::Router;
use crate::registry::Registry;
use crate::rest::{self, Rest};
use crate::status::ApiError;
use crate::storage::Storage;

pub use crate::handlers::nonresource::KUBERNETES_VERSION;

/// The namespaces that exist from the start.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// How many requests the server runs at once, and how it chooses among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// `--max-requests-inflight`.
    pub read_only: usize,
    /// `--max-mutating-requests-inflight`.
    pub mutating: usize,
    /// `--enable-priority-and-fairness`.
    pub priority_and_fairness: bool,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            read_only: max_inflight::DEFAULT_READ_ONLY,
            mutating: max_inflight::DEFAULT_MUTATING,
            priority_and_fairness: true,
        }
    }
}

/// The API server: the REST verbs' state and what the handler chain needs.
pub struct Server {
    /// The REST verbs' storage, admission and resources.
    pub rest: Arc<Rest>,
    auth: Arc<Auth>,
    /// The address clients reach us at (for `/api`'s serverAddressByClientCIDRs).
    address: Arc<parking_lot::Mutex<String>>,
    metrics: Arc<Metrics>,
    registry: Arc<prometheus_client::registry::Registry>,
    audit: std::sync::OnceLock<Arc<Auditor>>,
    /// The request limits (`--max-requests-inflight`, `--max-mutating-requests-inflight`,
    /// `--enable-priority-and-fairness`), set once before serving.
    limits: std::sync::OnceLock<RequestLimits>,
    /// API Priority and Fairness.
    flowcontrol: Arc<crate::flowcontrol::Controller>,
    kubelet: Arc<std::sync::OnceLock<crate::kubelet::KubeletClient>>,
    resource_metrics: Arc<crate::metrics_api::ResourceMetrics>,
    /// The RBAC objects, when RBAC is one of the authorization modes.
    policy: Option<Arc<crate::rbac::Policy>>,
    /// The Node authorizer's graph, when Node is one of the authorization modes.
    graph: Option<Arc<crate::node_graph::NodeGraph>>,
    tokens: Arc<std::sync::OnceLock<Arc<crate::serviceaccount::Tokens>>>,
    features: std::sync::OnceLock<FeatureGates>,
    aggregator: Arc<crate::aggregator::Aggregator>,
    journeys: Arc<ferry_journey::Journeys>,
}

impl Server {
    /// A server over `store` with the given authenticators, authorization modes (after
    /// upstream's privileged-groups authorizer, in order) and admission plugins.
    pub fn new(
        store: Arc<dyn Store>,
        authn: AuthenticatorChain,
        modes: &[AuthorizationMode],
        admission: Chain,
    ) -> Arc<Server> {
        Server::with_authorization_webhook(store, authn, modes, None, admission)
    }

    /// [`Server::new`], with the webhook the `Webhook` mode asks (without one, that mode has no
    /// opinion).
    pub fn with_authorization_webhook(
        store: Arc<dyn Store>,
        authn: AuthenticatorChain,
        modes: &[AuthorizationMode],
        mut webhook: Option<crate::authz_webhook::WebhookAuthorizer>,
        mut admission: Chain,
    ) -> Arc<Server> {
        let policy = modes
            .contains(&AuthorizationMode::Rbac)
            .then(crate::rbac::Policy::new);
        let graph = modes
            .contains(&AuthorizationMode::Node)
            .then(crate::node_graph::NodeGraph::new);
        let mut authorizers: Vec<Box<dyn Authorizer>> = vec![Box::new(PrivilegedGroups)];
        for mode in modes {
            match mode {
                AuthorizationMode::AlwaysAllow => authorizers.push(Box::new(AlwaysAllow)),
                // Nothing allows what the modes before did not.
                AuthorizationMode::AlwaysDeny => break,
                AuthorizationMode::Node => {
                    if let Some(graph) = &graph {
                        authorizers.push(Box::new(crate::node_authorizer::NodeAuthorizer(
                            graph.clone(),
                        )));
                    }
                }
                AuthorizationMode::Rbac => {
                    if let Some(policy) = &policy {
                        authorizers.push(Box::new(crate::rbac::RbacAuthorizer(policy.clone())));
                    }
                }
                AuthorizationMode::Webhook => {
                    if let Some(webhook) = webhook.take() {
                        authorizers.push(Box::new(webhook));
                    }
                }
            }
        }
        let auth = Arc::new(Auth {
            authn,
            authz: Box::new(AuthorizerChain(authorizers)),
        });
        if let Some(policy) = &policy {
            admission.add_validating(crate::rbac::escalation::Escalation {
                auth: auth.clone(),
                policy: policy.clone(),
            });
        }
        let mut registry = prometheus_client::registry::Registry::default();
        let rest = Rest {
            storage: Storage::with_metrics(store, &mut registry),
            admission,
            registry: Registry::builtin(),
            auth: Some(auth.clone()),
        };
        let metrics = Arc::new(Metrics::new(&mut registry));
        let flowcontrol = crate::flowcontrol::Controller::new(
            max_inflight::DEFAULT_READ_ONLY + max_inflight::DEFAULT_MUTATING,
            &mut registry,
        );
        let rest = Arc::new(rest);
        flowcontrol.set_object_counts(Arc::new(crate::object_counts::StoredCounts::new(
            rest.clone(),
        )));
        Arc::new(Server {
            rest,
            auth,
            address: Arc::new(parking_lot::Mutex::new(String::new())),
            metrics,
            registry: Arc::new(registry),
            audit: std::sync::OnceLock::new(),
            limits: std::sync::OnceLock::new(),
            flowcontrol,
            kubelet: Arc::default(),
            resource_metrics: Arc::default(),
            policy,
            graph,
            tokens: Arc::default(),
            features: std::sync::OnceLock::new(),
            aggregator: Arc::default(),
            journeys: ferry_journey::Journeys::new(ferry_journey::Limits::default()),
        })
    }

    /// The handler chain, filters first ([`crate::filters`]), then the router.
    pub fn service(
        &self,
    ) -> impl tower::Service<HttpRequest, Response = Response, Error = Infallible, Future = BoxFuture>
           + Clone
           + Send
           + 'static {
        ServiceBuilder::new()
            .layer(FilterLayer(RecoverPanic))
            .layer(FilterLayer(ParseRequestInfo))
            .layer(FilterLayer(Instrument(self.metrics.clone())))
            .layer(FilterLayer(Authenticate(self.auth.clone())))
            .layer(FilterLayer(Audit(self.auditor())))
            .layer(FilterLayer(Impersonate(self.auth.clone())))
            .layer(FilterLayer(self.in_flight_limit()))
            .layer(FilterLayer(Authorize(self.auth.clone())))
            .service(Router {
                rest: self.rest.clone(),
                auth: self.auth.clone(),
                metrics: self.metrics.clone(),
                registry: self.registry.clone(),
                address: self.address.clone(),
                kubelet: self.kubelet.clone(),
                tokens: self.tokens.clone(),
                resource_metrics: self.resource_metrics.clone(),
                features: self.features(),
                aggregator: self.aggregator.clone(),
                flowcontrol: self.flowcontrol.clone(),
                journeys: self.journeys.clone(),
            })
    }

    /// Sets the request limits (upstream's `--max-requests-inflight`,
    /// `--max-mutating-requests-inflight` and `--enable-priority-and-fairness`). Set once,
    /// before serving.
    pub fn set_request_limits(&self, limits: RequestLimits) {
        self.flowcontrol.set_limits(
            limits.read_only + limits.mutating,
            crate::flowcontrol::DEFAULT_QUEUE_WAIT,
        );
        let _ = self.limits.set(limits);
    }

    fn request_limits(&self) -> RequestLimits {
        self.limits.get().copied().unwrap_or_default()
    }

    /// The chain's concurrency limit: API Priority and Fairness (its server-wide limit the sum
    /// of the two in-flight limits, as upstream's), or max-in-flight when it is disabled.
    fn in_flight_limit(&self) -> InFlightLimit {
        let limits = self.request_limits();
        if limits.priority_and_fairness {
            InFlightLimit::PriorityAndFairness(PriorityAndFairness(self.flowcontrol.clone()))
        } else {
            InFlightLimit::MaxInFlight(MaxInFlight::new(limits.read_only, limits.mutating))
        }
    }

    /// The steps of pods' journeys this server keeps and serves (`/journey/v1/`): install it
    /// as a [`ferry_journey::Sink`] for the steps of components in this process.
    pub fn journeys(&self) -> Arc<ferry_journey::Journeys> {
        self.journeys.clone()
    }

    /// The feature gates (upstream's `--feature-gates`); upstream v1.33's defaults unless set.
    /// Set once, before serving.
    pub fn set_feature_gates(&self, gates: FeatureGates) {
        let _ = self.features.set(gates);
    }

    /// The feature gates the server runs with.
    pub fn features(&self) -> FeatureGates {
        self.features.get().copied().unwrap_or_default()
    }

    /// What is audited and where it goes (upstream's `--audit-policy-file` and backend); by
    /// default every request at `Metadata` as `tracing` events. Set once, before serving.
    pub fn set_audit(&self, auditor: Auditor) {
        let _ = self.audit.set(Arc::new(auditor));
    }

    fn auditor(&self) -> Arc<Auditor> {
        self.audit
            .get_or_init(|| {
                Arc::new(Auditor {
                    policy: None,
                    sink: Arc::new(TracingSink),
                })
            })
            .clone()
    }

    /// How the server reaches kubelets: `tls` trusts the cluster CA (kubelets' serving
    /// certificates come from its `kubelet-serving` signer) and presents the server's
    /// [`crate::kubelet::KUBELET_CLIENT_USER`] certificate. Without it, `pods/log`, `exec`,
    /// `attach` and `portforward` answer 503. Set once.
    pub fn set_kubelet_client(&self, tls: rustls::ClientConfig) {
        let _ = self.kubelet.set(crate::kubelet::KubeletClient::new(tls));
    }

    /// Starts scraping the kubelets of the nodes `node_selector` selects every `resolution` for
    /// `metrics.k8s.io` (metrics-server's `--metric-resolution` and `--node-selector`).
    pub fn start_resource_metrics(
        &self,
        resolution: std::time::Duration,
        node_selector: &str,
    ) -> Result<(), ApiError> {
        let selector = ferry_api::selector::LabelSelector::parse(node_selector)
            .map_err(|e| ApiError::bad_request(format!("--metrics-node-selector: {e}")))?;
        tokio::spawn(crate::metrics_api::scrape::run(
            self.rest.storage.store.clone(),
            self.kubelet.clone(),
            self.resource_metrics.clone(),
            resolution,
            selector,
        ));
        Ok(())
    }

    /// The service-account token issuer: TokenRequest (`serviceaccounts/<name>/token`) and
    /// the OIDC discovery documents are served once it is set (the authenticator of the same
    /// tokens is the caller's to put in the chain). Set once.
    pub fn set_service_account_tokens(&self, tokens: Arc<crate::serviceaccount::Tokens>) {
        let _ = self.tokens.set(tokens);
    }

    /// Creates the system namespaces if missing; with RBAC, reconciles the default policy
    /// ([`crate::rbac::bootstrap`]) and loads the RBAC objects before the first request.
    pub async fn bootstrap(self: &Arc<Self>) -> Result<(), ApiError> {
        for name in SYSTEM_NAMESPACES {
            let namespace =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            self.ensure(("", "v1", "namespaces"), "", name, namespace, false)
                .await?;
        }
        // Upstream's system PriorityClasses.
        for class in crate::admission::system_priority_classes() {
            let name = class["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            self.ensure(
                ("scheduling.k8s.io", "v1", "priorityclasses"),
                "",
                &name,
                class,
                false,
            )
            .await?;
        }
        if self.request_limits().priority_and_fairness {
            self.start_priority_and_fairness().await?;
        }
        crate::apiextensions::start(self.rest.clone()).await?;
        // After the custom resources are served, so their APIServices are kept.
        self.aggregator.start(self.rest.clone()).await?;
        if let Some(graph) = &self.graph {
            graph
                .start(self.rest.storage.store.clone())
                .await
                .map_err(ApiError::from)?;
        }
        if let Some(policy) = &self.policy {
            self.reconcile_rbac().await?;
            policy
                .start(self.rest.storage.store.clone())
                .await
                .map_err(ApiError::from)?;
        }
        Ok(())
    }

    /// API Priority and Fairness' configuration: upstream's bootstrap levels and schemas
    /// ensured, the stored configuration read, and a task that keeps both — the bootstrap
    /// objects (a deleted one comes back; a changed one as [`crate::flowcontrol::bootstrap::reconcile`]
    /// says) and each FlowSchema's `Dangling` condition — whenever the configuration changes.
    async fn start_priority_and_fairness(self: &Arc<Self>) -> Result<(), ApiError> {
        self.keep_flowcontrol_objects().await?;
        self.flowcontrol
            .start(self.rest.storage.store.clone())
            .await
            .map_err(ApiError::from)?;
        let mut changes = self.flowcontrol.changes();
        let server = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(this) = server.upgrade() else { return };
                if let Err(error) = this.keep_flowcontrol_objects().await {
                    tracing::debug!(error = %error.message, "keeping the flow-control objects");
                }
                drop(this);
                if changes.changed().await.is_err() {
                    return;
                }
                // Changes come in bursts (a status write is one): let them settle.
                tokio::time::sleep(Duration::from_millis(100)).await;
                changes.mark_unchanged();
            }
        });
        Ok(())
    }

    async fn keep_flowcontrol_objects(&self) -> Result<(), ApiError> {
        use crate::flowcontrol::bootstrap;
        const GROUP: &str = "flowcontrol.apiserver.k8s.io";
        let levels = (GROUP, "v1", "prioritylevelconfigurations");
        let schemas = (GROUP, "v1", "flowschemas");
        let sets = [
            (levels, bootstrap::mandatory_priority_levels(), true),
            (levels, bootstrap::suggested_priority_levels(), false),
            (schemas, bootstrap::mandatory_flow_schemas(), true),
            (schemas, bootstrap::suggested_flow_schemas(), false),
        ];
        for (resource, objects, mandatory) in sets {
            for wanted in objects {
                let name = wanted["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                match self.read(resource, &name).await? {
                    None => self.ensure(resource, "", &name, wanted, false).await?,
                    Some(existing) => {
                        if let Some(updated) = bootstrap::reconcile(&existing, &wanted, mandatory) {
                            self.write_flowcontrol(resource, &name, "", &updated)
                                .await?;
                        }
                    }
                }
            }
        }
        for updated in self
            .flowcontrol
            .dangling_updates(&crate::object::now_rfc3339())
        {
            let name = updated["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            self.write_flowcontrol(schemas, &name, "status", &updated)
                .await?;
        }
        Ok(())
    }

    /// Writes `object` (carrying the `resourceVersion` read) as an update of `subresource`; a
    /// conflict is left for the next round.
    async fn write_flowcontrol(
        &self,
        resource: (&str, &str, &str),
        name: &str,
        subresource: &str,
        object: &Value,
    ) -> Result<(), ApiError> {
        let resource = self.resolve(resource)?;
        let internal = rest::Internal::default();
        let req = internal.request(&resource, "", name, subresource, object);
        match rest::update(&self.rest, &req, &rest::ObjectView).await {
            Ok(_) => Ok(()),
            Err(e) if e.code == 409 || e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Upstream's RBAC bootstrap: each default ClusterRole and ClusterRoleBinding is created,
    /// or given back what it lacks unless it opted out of autoupdate.
    async fn reconcile_rbac(&self) -> Result<(), ApiError> {
        use crate::rbac::bootstrap::{self, BindingChange};
        const GROUP: &str = "rbac.authorization.k8s.io";
        for role in bootstrap::cluster_roles() {
            let name = role["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let resource = (GROUP, "v1", "clusterroles");
            match self.read(resource, &name).await? {
                None => self.ensure(resource, "", &name, role, false).await?,
                Some(existing) => {
                    if let Some(updated) = bootstrap::reconcile_role(&existing, &role) {
                        self.ensure(resource, "", &name, updated, true).await?;
                    }
                }
            }
        }
        for binding in bootstrap::cluster_role_bindings() {
            let name = binding["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let resource = (GROUP, "v1", "clusterrolebindings");
            let Some(existing) = self.read(resource, &name).await? else {
                self.ensure(resource, "", &name, binding, false).await?;
                continue;
            };
            match bootstrap::reconcile_binding(&existing, &binding) {
                BindingChange::Keep => {}
                BindingChange::Update(updated) => {
                    self.ensure(resource, "", &name, updated, true).await?
                }
                BindingChange::Recreate => {
                    let resource_info = self.resolve(resource)?;
                    let key = crate::storage::key(resource_info.info, "", &name);
                    let _ = self
                        .rest
                        .storage
                        .store
                        .delete(key, 0)
                        .await
                        .map_err(ApiError::from)?;
                    self.ensure(resource, "", &name, binding, false).await?;
                }
            }
        }
        Ok(())
    }

    fn resolve(
        &self,
        (group, version, plural): (&str, &str, &str),
    ) -> Result<Arc<crate::registry::Resource>, ApiError> {
        self.rest
            .registry
            .resolve(group, version, plural)
            .ok_or_else(|| ApiError::internal(format!("{plural} not registered")))
    }

    /// The cluster-scoped object `name`, if it exists.
    async fn read(
        &self,
        resource: (&str, &str, &str),
        name: &str,
    ) -> Result<Option<Value>, ApiError> {
        let resource = self.resolve(resource)?;
        let key = crate::storage::key(resource.info, "", name);
        match self.rest.storage.store.get(&key).await {
            Ok(Some(kv)) => rest::decode(&resource, &kv.value, kv.mod_revision).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates an object the server itself keeps (`resource` is group, version and plural); if
    /// it exists, leaves it (`replace` false) or replaces it.
    pub(crate) async fn ensure(
        &self,
        (group, version, plural): (&str, &str, &str),
        namespace: &str,
        name: &str,
        object: Value,
        replace: bool,
    ) -> Result<(), ApiError> {
        let resource = self.resolve((group, version, plural))?;
        let internal = rest::Internal::default();
        let req = internal.request(&resource, namespace, name, "", &object);
        match rest::create(&self.rest, &req).await {
            Ok(_) => Ok(()),
            Err(e) if e.code == 409 && replace => rest::update(&self.rest, &req, &rest::ObjectView)
                .await
                .map(|_| ()),
            Err(e) if e.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The `kubernetes` service in `default` (10.43.0.1:443) with its target port, the one
    /// this server listens on. Its endpoints are the lease endpoint reconciler's
    /// (`endpoint_reconciler.rs`).
    pub(crate) async fn ensure_kubernetes_service(&self, port: u16) -> Result<(), ApiError> {
        let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": crate::registry::core::service::allocator::KUBERNETES_SERVICE_IP, "type": "ClusterIP", "sessionAffinity": "None",
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]}});
        self.ensure(
            ("", "v1", "services"),
            "default",
            "kubernetes",
            service,
            true,
        )
        .await
    }

    /// The front proxy's credentials: requests to aggregated APIs present its client
    /// certificate. Set once, before serving.
    pub fn set_front_proxy(&self, front_proxy: &crate::pki::FrontProxy) -> Result<(), ApiError> {
        let (chain, key) = front_proxy
            .client_identity()
            .map_err(|e| ApiError::internal(e.to_string()))?;
        self.aggregator.set_front_proxy_identity(chain, key);
        Ok(())
    }

    /// The `extension-apiserver-authentication` ConfigMap in `kube-system`, as upstream's
    /// ClusterAuthenticationTrustController publishes it: the CA of client certificates
    /// (`client_ca_pem`), and how requests proxied by the aggregator are recognized (the front
    /// proxy's CA, its client's name, the `X-Remote-*` headers), so extension API servers such
    /// as metrics-server can authenticate them.
    pub async fn ensure_extension_apiserver_authentication(
        self: &Arc<Self>,
        client_ca_pem: &str,
        front_proxy: &crate::pki::FrontProxy,
    ) -> Result<(), ApiError> {
        let list = |items: &[&str]| serde_json::to_string(items).unwrap_or_default();
        let data: std::collections::BTreeMap<String, String> = [
            ("client-ca-file", client_ca_pem.to_string()),
            (
                "requestheader-allowed-names",
                list(&[crate::pki::FRONT_PROXY_CLIENT]),
            ),
            (
                "requestheader-client-ca-file",
                front_proxy.ca.cert_pem.clone(),
            ),
            (
                "requestheader-extra-headers-prefix",
                list(&["X-Remote-Extra-"]),
            ),
            ("requestheader-group-headers", list(&["X-Remote-Group"])),
            ("requestheader-username-headers", list(&["X-Remote-User"])),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        self.ensure_config_map("kube-system", "extension-apiserver-authentication", &data)
            .await
    }

    /// A ConfigMap the server publishes its settings in (created, or replaced when it differs).
    pub async fn ensure_config_map(
        self: &Arc<Self>,
        namespace: &str,
        name: &str,
        data: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), ApiError> {
        let map = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace}, "data": data});
        self.ensure(("", "v1", "configmaps"), namespace, name, map, true)
            .await
    }

    /// The node-local CSI driver's objects, made once (a user's later changes stay): the
    /// `local.csi.ferry.dev` CSIDriver (no attach, storage capacity tracked) and the `local`
    /// StorageClass, the cluster's default, binding when the first pod is scheduled and
    /// deleting volumes with their claims, as k3s's `local-path` class.
    pub async fn ensure_local_storage(self: &Arc<Self>) -> Result<(), ApiError> {
        let driver = json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
            "metadata": {"name": "local.csi.ferry.dev"},
            "spec": {"attachRequired": false, "podInfoOnMount": false, "storageCapacity": true,
                     "fsGroupPolicy": "File", "volumeLifecycleModes": ["Persistent"],
                     "requiresRepublish": false, "seLinuxMount": false}});
        self.ensure(
            ("storage.k8s.io", "v1", "csidrivers"),
            "",
            "local.csi.ferry.dev",
            driver,
            false,
        )
        .await?;
        let class = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "local",
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "local.csi.ferry.dev", "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer", "allowVolumeExpansion": true});
        self.ensure(
            ("storage.k8s.io", "v1", "storageclasses"),
            "",
            "local",
            class,
            false,
        )
        .await
    }

    /// The `kube-dns` Service in kube-system (`cluster_ip`, ports 53 UDP and TCP) and its
    /// EndpointSlice pointing at the cluster DNS this server runs at `address`.
    pub async fn ensure_kube_dns(
        self: &Arc<Self>,
        cluster_ip: std::net::Ipv4Addr,
        address: SocketAddr,
    ) -> Result<(), ApiError> {
        let port = address.port();
        let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kube-dns", "namespace": "kube-system",
            "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "ferry-dns", "kubernetes.io/cluster-service": "true"}},
            "spec": {"clusterIP": cluster_ip.to_string(), "type": "ClusterIP",
                "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": port},
                          {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": port}]}});
        let ip = address.ip();
        let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kube-dns", "namespace": "kube-system",
                "labels": {"kubernetes.io/service-name": "kube-dns"}},
            "addressType": if ip.is_ipv6() { "IPv6" } else { "IPv4" },
            "endpoints": [{"addresses": [ip.to_string()], "conditions": {"ready": true}}],
            "ports": [{"name": "dns", "port": port, "protocol": "UDP"},
                      {"name": "dns-tcp", "port": port, "protocol": "TCP"}]});
        self.ensure(
            ("", "v1", "services"),
            "kube-system",
            "kube-dns",
            service,
            true,
        )
        .await?;
        self.ensure(
            ("discovery.k8s.io", "v1", "endpointslices"),
            "kube-system",
            "kube-dns",
            slice,
            true,
        )
        .await
    }
}

/// Serves HTTPS on `listener` until `shutdown` resolves; then stops accepting, lets in-flight
/// requests finish (watches are cut after a grace period) and returns.
pub async fn serve(
    server: Arc<Server>,
    listener: TcpListener,
    tls: rustls::ServerConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    *server.address.lock() = address.to_string();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    // The OpenAPI documents are built from the types on first use; build them now, off the
    // request path, so kubectl's first validation does not wait.
    tokio::task::spawn_blocking(|| {
        ferry_api::openapi::v3_index();
        ferry_api::openapi::v2_protobuf();
    });
    let chain = server.service();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let chain = chain.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%remote, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let certificate = ClientCertificate(
                tls.get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| Arc::new(c.to_vec())),
            );
            let service = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| {
                    let mut request = request
                        .map(|body| body.map_err(crate::body::BodyError::new).boxed_unsync());
                    request.extensions_mut().insert(certificate.clone());
                    request.extensions_mut().insert(RemoteAddr(remote));
                    chain.clone().oneshot(request)
                },
            );
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            let _ = watcher.watch(connection.into_owned()).await;
        });
    }
    drop(listener);
    // In-flight requests finish; long watches are cut after a while.
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
    tracing::info!(%address, "API server stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The whole handler chain over an embedded store, through `tower::ServiceExt::oneshot`:
    //! what a client's request meets, without a socket or TLS.

    use ferry_store::embedded::{Config, EmbeddedStore};

    use super::*;
    use crate::auth::{TokenFileAuthenticator, DEFAULT_AUTHORIZATION_MODES};
    use crate::body;

    async fn server() -> (Arc<Server>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::new(dir.path());
        config.auto_compaction = None;
        let store = Arc::new(EmbeddedStore::open(config).await.expect("open"));
        let tokens = TokenFileAuthenticator::parse("admin,admin,1,system:masters\nalice,alice,2\n");
        let server = Server::new(
            store,
            AuthenticatorChain(vec![Box::new(tokens)]),
            DEFAULT_AUTHORIZATION_MODES,
            Chain::from_names(crate::admission::DEFAULT_PLUGINS).expect("default plugins"),
        );
        server.bootstrap().await.expect("bootstrap");
        (server, dir)
    }

    fn request(method: &str, path: &str, token: &str, body: Option<Value>) -> HttpRequest {
        let builder = http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json");
        match body {
            Some(body) => builder.body(body::full(body.to_string())),
            None => builder.body(body::empty()),
        }
        .expect("request")
    }

    async fn call(server: &Server, request: HttpRequest) -> (u16, Value) {
        let response = server.service().oneshot(request).await.expect("infallible");
        let code = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn bootstrap_creates_the_system_namespaces_once() {
        let (server, _dir) = server().await;
        server.bootstrap().await.expect("again");
        let (code, list) = call(&server, request("GET", "/api/v1/namespaces", "admin", None)).await;
        assert_eq!(code, 200);
        let mut names: Vec<&str> = list["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|n| n["metadata"]["name"].as_str())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["default", "kube-node-lease", "kube-public", "kube-system"]
        );
    }

    #[tokio::test]
    async fn a_create_goes_through_every_layer() {
        let (server, _dir) = server().await;
        let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings"}, "data": {"a": "1"}});
        let path = "/api/v1/namespaces/default/configmaps";

        let (code, created) = call(
            &server,
            request("POST", path, "admin", Some(config_map.clone())),
        )
        .await;
        assert_eq!(code, 201, "{created}");
        assert_eq!(created["metadata"]["namespace"], "default");

        // Authenticated but not authorized: upstream's Forbidden wording.
        let (code, status) = call(
            &server,
            request("GET", &format!("{path}/settings"), "alice", None),
        )
        .await;
        assert_eq!(code, 403);
        assert_eq!(
            status["message"],
            r#"configmaps "settings" is forbidden: User "alice" cannot get resource "configmaps" in API group "" in the namespace "default""#
        );

        // An unknown token is refused before anything else runs.
        let (code, status) = call(&server, request("GET", path, "nobody", None)).await;
        assert_eq!(
            (code, status["reason"].as_str()),
            (401, Some("Unauthorized"))
        );

        // Admission: NamespaceLifecycle refuses a namespace that does not exist.
        let (code, status) = call(
            &server,
            request(
                "POST",
                "/api/v1/namespaces/missing/configmaps",
                "admin",
                Some(config_map),
            ),
        )
        .await;
        assert_eq!(code, 404, "{status}");
        assert_eq!(status["message"], r#"namespaces "missing" not found"#);
    }

    #[tokio::test]
    async fn the_kubernetes_service_follows_the_server_address() {
        let (server, _dir) = server().await;
        let first: SocketAddr = "127.0.0.1:6443".parse().expect("address");
        let moved: SocketAddr = "127.0.0.2:7443".parse().expect("address");
        crate::endpoint_reconciler::EndpointReconciler::start(&server, first)
            .await
            .expect("ensure");
        crate::endpoint_reconciler::EndpointReconciler::start(&server, moved)
            .await
            .expect("ensure again");
        let (code, endpoints) = call(
            &server,
            request(
                "GET",
                "/api/v1/namespaces/default/endpoints/kubernetes",
                "admin",
                None,
            ),
        )
        .await;
        assert_eq!(code, 200);
        assert_eq!(endpoints["subsets"][0]["addresses"][0]["ip"], "127.0.0.2");
        assert_eq!(endpoints["subsets"][0]["ports"][0]["port"], 7443);
        let (_, service) = call(
            &server,
            request(
                "GET",
                "/api/v1/namespaces/default/services/kubernetes",
                "admin",
                None,
            ),
        )
        .await;
        assert_eq!(service["spec"]["ports"][0]["targetPort"], 7443);
        let (_, slice) = call(
            &server,
            request(
                "GET",
                "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes",
                "admin",
                None,
            ),
        )
        .await;
        assert_eq!(slice["endpoints"][0]["addresses"], json!(["127.0.0.2"]));
        assert_eq!(slice["ports"][0]["port"], 7443);
        assert_eq!(
            slice["metadata"]["labels"],
            json!({"kubernetes.io/service-name": "kubernetes"})
        );
    }

    /// Polls `path` as admin until `done` holds of the answer.
    async fn eventually(server: &Server, path: &str, done: impl Fn(u16, &Value) -> bool) -> Value {
        for _ in 0..100 {
            let (code, value) = call(server, request("GET", path, "admin", None)).await;
            if done(code, &value) {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{path} never got there");
    }

    #[tokio::test]
    async fn apiservices_local_and_remote() {
        let (server, _dir) = server().await;
        let apiservices = "/apis/apiregistration.k8s.io/v1/apiservices";
        // The server's own group-versions, available as local ones.
        let apps = eventually(&server, &format!("{apiservices}/v1.apps"), |code, o| {
            code == 200 && crate::aggregator::available::is_available(o)
        })
        .await;
        assert_eq!(apps["status"]["conditions"][0]["reason"], "Local");
        assert_eq!(
            apps["metadata"]["labels"]["kube-aggregator.kubernetes.io/automanaged"],
            "onstart"
        );

        // A remote one whose Service does not exist.
        let wardle = json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": "v1alpha1.wardle.example.com"},
            "spec": {"group": "wardle.example.com", "version": "v1alpha1", "groupPriorityMinimum": 1000,
                     "versionPriority": 15, "insecureSkipTLSVerify": true,
                     "service": {"namespace": "default", "name": "wardle"}}});
        let (code, created) =
            call(&server, request("POST", apiservices, "admin", Some(wardle))).await;
        assert_eq!(code, 201, "{created}");
        assert_eq!(created["spec"]["service"]["port"], 443);
        let wardle = eventually(
            &server,
            &format!("{apiservices}/v1alpha1.wardle.example.com"),
            |_, o| o.pointer("/status/conditions/0/reason").is_some(),
        )
        .await;
        assert_eq!(
            wardle["status"]["conditions"][0],
            json!({"type": "Available", "status": "False", "reason": "ServiceNotFound",
                   "message": "service/wardle in \"default\" is not present",
                   "lastTransitionTime": wardle["status"]["conditions"][0]["lastTransitionTime"]})
        );
        // Its requests answer upstream's 503, after authorization.
        let response = server
            .service()
            .oneshot(request(
                "GET",
                "/apis/wardle.example.com/v1alpha1/flunders",
                "admin",
                None,
            ))
            .await
            .expect("infallible");
        assert_eq!(response.status(), 503);
        let (code, _) = call(
            &server,
            request(
                "GET",
                "/apis/wardle.example.com/v1alpha1/flunders",
                "alice",
                None,
            ),
        )
        .await;
        assert_eq!(code, 403);
        // Discovery lists it, stale.
        let (_, groups) = call(&server, request("GET", "/apis", "admin", None)).await;
        assert!(groups["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .any(|g| g["name"] == "wardle.example.com"));
    }

    #[tokio::test]
    async fn custom_resources_get_apiservices_while_served() {
        let (server, _dir) = server().await;
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "things.stable.example.com"},
            "spec": {"group": "stable.example.com", "scope": "Namespaced",
                "names": {"plural": "things", "kind": "Thing"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object"}}}]}});
        let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
        let (code, created) = call(&server, request("POST", crds, "admin", Some(crd))).await;
        assert_eq!(code, 201, "{created}");
        let path = "/apis/apiregistration.k8s.io/v1/apiservices/v1.stable.example.com";
        let registered = eventually(&server, path, |code, o| {
            code == 200 && crate::aggregator::available::is_available(o)
        })
        .await;
        assert_eq!(registered["spec"]["groupPriorityMinimum"], 1000);
        assert_eq!(registered["spec"]["versionPriority"], 100);
        assert_eq!(
            registered["metadata"]["labels"]["kube-aggregator.kubernetes.io/automanaged"],
            "true"
        );
        let (code, _) = call(
            &server,
            request(
                "DELETE",
                &format!("{crds}/things.stable.example.com"),
                "admin",
                None,
            ),
        )
        .await;
        assert_eq!(code, 200);
        eventually(&server, path, |code, _| code == 404).await;
    }
}
