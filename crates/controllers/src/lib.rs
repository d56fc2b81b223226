//! `ferry-controllers`: the controllers of kube-controller-manager. Each watches the API through
//! shared informers ([`informer`]), turns changes into keys on its work queue ([`queue`]) and
//! reconciles one key at a time with plain API calls through kube-rs — never the store — so
//! the same code runs inside `ferry server` or as `ferry controllers --kubeconfig`.
//!
//! Start reading at [`run`], then one controller: [`replicaset`] is the model the others follow
//! (handlers → queue → `sync(key)` → pure decision functions with table tests at the bottom).
//! A sync fails with an [`Error`] (a failed API call) or its controller's own enum.
//!
//! The informers run with the manager's own client; each controller acts through the client a
//! [`ClientBuilder`] gives it by its service account's name ([`names`]): with
//! `--use-service-account-credentials` its own identity and `system:controller:<name>` role,
//! as upstream's kube-controller-manager (see `ferry_client::clientbuilder`).

pub mod attachdetach;
pub mod certificates;
pub mod claim;
pub mod clusterroleaggregation;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod endpointslicemirroring;
pub mod endpointutil;
pub mod ephemeral;
mod error;
pub mod expectations;
pub mod gc;
pub mod history;
pub mod informer;
pub mod job;
pub mod journey;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod persistentvolume;
pub mod podautoscaler;
pub mod podgc;
pub mod queue;
pub mod replicaset;
pub mod replication;
pub mod resourcequota;
pub mod serviceaccount;
pub mod serviceaccounttoken;
pub mod servicelb;
pub mod statefulset;
#[cfg(test)]
pub(crate) mod testing;
pub mod util;
pub mod volumeprotection;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use ferry_client::clientbuilder::{ClientBuildError, ClientBuilder, SimpleClientBuilder};
use ferry_client::events::Recorder;
use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Endpoints, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod,
    ReplicationController, ResourceQuota, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::api::storage::v1::{CSIDriver, StorageClass, VolumeAttachment};
use kube::runtime::watcher;
use kube::Api;

pub(crate) use crate::error::ApiContext;
pub use crate::error::{Error, ErrorChain};
use crate::informer::Informer;
use crate::queue::Reconciler as _;

/// The service accounts the controllers act as (upstream's names; each has the role
/// `system:controller:<name>` in the default RBAC policy).
pub mod names {
    /// The ReplicaSet controller.
    pub const REPLICASET: &str = "replicaset-controller";
    /// The ReplicationController manager.
    pub const REPLICATION: &str = "replication-controller";
    /// The Deployment controller.
    pub const DEPLOYMENT: &str = "deployment-controller";
    /// The Job controller (with the ttl-after-finished work).
    pub const JOB: &str = "job-controller";
    /// The CronJob controller.
    pub const CRONJOB: &str = "cronjob-controller";
    /// The DaemonSet controller.
    pub const DAEMONSET: &str = "daemon-set-controller";
    /// The StatefulSet controller.
    pub const STATEFULSET: &str = "statefulset-controller";
    /// The PersistentVolume binder.
    pub const PERSISTENT_VOLUME_BINDER: &str = "persistent-volume-binder";
    /// The claims' half of volume protection.
    pub const PVC_PROTECTION: &str = "pvc-protection-controller";
    /// The volumes' half of volume protection.
    pub const PV_PROTECTION: &str = "pv-protection-controller";
    /// The disruption (PodDisruptionBudget) controller.
    pub const DISRUPTION: &str = "disruption-controller";
    /// The EndpointSlice controller.
    pub const ENDPOINTSLICE: &str = "endpointslice-controller";
    /// The Endpoints controller.
    pub const ENDPOINT: &str = "endpoint-controller";
    /// The EndpointSlice mirroring controller.
    pub const ENDPOINTSLICE_MIRRORING: &str = "endpointslicemirroring-controller";
    /// ferry's service load balancer (a cloud's service controller).
    pub const SERVICE: &str = "service-controller";
    /// The Namespace controller.
    pub const NAMESPACE: &str = "namespace-controller";
    /// The ServiceAccount controller (the `default` accounts).
    pub const SERVICE_ACCOUNT: &str = "service-account-controller";
    /// The `kube-root-ca.crt` publisher (run by the ServiceAccount controller).
    pub const ROOT_CA_CERT_PUBLISHER: &str = "root-ca-cert-publisher";
    /// Node lifecycle and node IPAM.
    pub const NODE: &str = "node-controller";
    /// The pod garbage collector.
    pub const POD_GC: &str = "pod-garbage-collector";
    /// The garbage collector.
    pub const GC: &str = "generic-garbage-collector";
    /// CSR approving and signing.
    pub const CERTIFICATE: &str = "certificate-controller";
    /// The ClusterRole aggregation controller.
    pub const CLUSTERROLE_AGGREGATION: &str = "clusterrole-aggregation-controller";
    /// The ResourceQuota controller.
    pub const RESOURCEQUOTA: &str = "resourcequota-controller";
    /// The HorizontalPodAutoscaler controller.
    pub const HORIZONTAL_POD_AUTOSCALER: &str = "horizontal-pod-autoscaler";
    /// The claims of pods' generic ephemeral volumes.
    pub const EPHEMERAL_VOLUME: &str = "ephemeral-volume-controller";
    /// The attach-detach controller (VolumeAttachments of CSI volumes).
    pub const ATTACH_DETACH: &str = "attachdetach-controller";

    /// Every name above: [`crate::run_with`] asks for no other.
    pub const ALL: &[&str] = &[
        REPLICASET,
        REPLICATION,
        DEPLOYMENT,
        JOB,
        CRONJOB,
        DAEMONSET,
        STATEFULSET,
        PERSISTENT_VOLUME_BINDER,
        PVC_PROTECTION,
        PV_PROTECTION,
        DISRUPTION,
        ENDPOINTSLICE,
        ENDPOINT,
        ENDPOINTSLICE_MIRRORING,
        SERVICE,
        NAMESPACE,
        SERVICE_ACCOUNT,
        ROOT_CA_CERT_PUBLISHER,
        NODE,
        POD_GC,
        GC,
        CERTIFICATE,
        CLUSTERROLE_AGGREGATION,
        RESOURCEQUOTA,
        HORIZONTAL_POD_AUTOSCALER,
        EPHEMERAL_VOLUME,
        ATTACH_DETACH,
    ];
}

/// Settings of the controller manager (upstream's flags of the same names).
#[derive(Clone, Debug)]
pub struct Options {
    /// `--cluster-cidr`: the range node IPAM cuts pod CIDRs from.
    pub cluster_cidr: String,
    /// `--node-cidr-mask-size`: the prefix length of each node's pod CIDR.
    pub node_cidr_mask_size: u8,
    /// `--node-monitor-period`: how often node health is checked.
    pub node_monitor_period: Duration,
    /// `--node-monitor-grace-period`: a node whose lease is older is marked Unknown.
    pub node_monitor_grace_period: Duration,
    /// `--node-startup-grace-period`: patience with a node that never reported Ready.
    pub node_startup_grace_period: Duration,
    /// `--concurrent-*-syncs`: workers per controller.
    pub workers: usize,
    /// The cluster CA (PEM), published in every namespace as the `kube-root-ca.crt` ConfigMap.
    pub root_ca: Option<String>,
    /// `--cluster-signing-cert-file`: the CA certificate (PEM) the CSR signer signs with; without
    /// it (or the key) no CertificateSigningRequest is signed.
    pub cluster_signing_cert_file: Option<std::path::PathBuf>,
    /// `--cluster-signing-key-file`: that CA's private key (PEM).
    pub cluster_signing_key_file: Option<std::path::PathBuf>,
    /// `--cluster-signing-duration`: how long signed certificates are valid when the request
    /// does not say (`spec.expirationSeconds`).
    pub cluster_signing_duration: Duration,
    /// Signs the legacy tokens of `kubernetes.io/service-account-token` Secrets (upstream's
    /// `--service-account-private-key-file`); without it they stay unfilled.
    pub token_signer: Option<TokenSigner>,
    /// `--resource-quota-sync-period`: how often every quota is recounted.
    pub resource_quota_sync_period: Duration,
    /// `--horizontal-pod-autoscaler-*`: the HPA controller's sync period, tolerance, default
    /// scale-down window and CPU readiness periods.
    pub horizontal_pod_autoscaler: podautoscaler::HpaOptions,
}

/// A [`serviceaccounttoken::LegacyTokenSigner`] in [`Options`].
#[derive(Clone)]
pub struct TokenSigner(pub Arc<dyn serviceaccounttoken::LegacyTokenSigner>);

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner")
    }
}

impl Default for Options {
    fn default() -> Options {
        Options {
            cluster_cidr: "10.42.0.0/16".into(),
            node_cidr_mask_size: 24,
            node_monitor_period: Duration::from_secs(5),
            node_monitor_grace_period: Duration::from_secs(40),
            node_startup_grace_period: Duration::from_secs(60),
            workers: 5,
            root_ca: None,
            cluster_signing_cert_file: None,
            cluster_signing_key_file: None,
            cluster_signing_duration: certificates::DEFAULT_SIGNING_DURATION,
            token_signer: None,
            resource_quota_sync_period: resourcequota::DEFAULT_SYNC_PERIOD,
            horizontal_pod_autoscaler: podautoscaler::HpaOptions::default(),
        }
    }
}

/// What every controller shares: the client, the event recorder and the informers.
pub struct Context {
    /// The API client.
    pub client: kube::Client,
    /// Event recorders by component (`deployment-controller`, …), made on first use.
    recorders: parking_lot::Mutex<std::collections::HashMap<&'static str, Recorder>>,
    /// Settings.
    pub options: Options,
    /// All pods, indexed by node name.
    pub pods: Arc<Informer<Pod>>,
    /// All ReplicaSets.
    pub replica_sets: Arc<Informer<ReplicaSet>>,
    /// All ReplicationControllers.
    pub replication_controllers: Arc<Informer<ReplicationController>>,
    /// All Deployments.
    pub deployments: Arc<Informer<Deployment>>,
    /// All Jobs.
    pub jobs: Arc<Informer<Job>>,
    /// All Nodes.
    pub nodes: Arc<Informer<Node>>,
    /// All Namespaces.
    pub namespaces: Arc<Informer<Namespace>>,
    /// All ServiceAccounts.
    pub service_accounts: Arc<Informer<ServiceAccount>>,
    /// The Secrets of type `kubernetes.io/service-account-token`.
    pub token_secrets: Arc<Informer<Secret>>,
    /// All PodDisruptionBudgets.
    pub pdbs: Arc<Informer<PodDisruptionBudget>>,
    /// Node heartbeats in kube-node-lease.
    pub node_leases: Arc<Informer<Lease>>,
    /// All CertificateSigningRequests.
    pub csrs: Arc<Informer<CertificateSigningRequest>>,
    /// All Services.
    pub services: Arc<Informer<Service>>,
    /// All EndpointSlices, indexed by `namespace/service` (their service-name label).
    pub endpoint_slices: Arc<Informer<EndpointSlice>>,
    /// All Endpoints.
    pub endpoints: Arc<Informer<Endpoints>>,
    /// All ClusterRoles.
    pub cluster_roles: Arc<Informer<ClusterRole>>,
    /// All ResourceQuotas.
    pub resource_quotas: Arc<Informer<ResourceQuota>>,
    /// All DaemonSets.
    pub daemon_sets: Arc<Informer<DaemonSet>>,
    /// All StatefulSets.
    pub stateful_sets: Arc<Informer<StatefulSet>>,
    /// All ControllerRevisions (the history of DaemonSets and StatefulSets).
    pub controller_revisions: Arc<Informer<ControllerRevision>>,
    /// All CronJobs.
    pub cron_jobs: Arc<Informer<CronJob>>,
    /// All PersistentVolumeClaims.
    pub persistent_volume_claims: Arc<Informer<PersistentVolumeClaim>>,
    /// All PersistentVolumes.
    pub persistent_volumes: Arc<Informer<PersistentVolume>>,
    /// All StorageClasses.
    pub storage_classes: Arc<Informer<StorageClass>>,
    /// All HorizontalPodAutoscalers (`autoscaling/v2`).
    pub horizontal_pod_autoscalers: Arc<Informer<HorizontalPodAutoscaler>>,
    /// All CSIDrivers.
    pub csi_drivers: Arc<Informer<CSIDriver>>,
    /// All VolumeAttachments, indexed by node name.
    pub volume_attachments: Arc<Informer<VolumeAttachment>>,
}

fn pod_node(pod: &Pod) -> Option<String> {
    pod.spec
        .as_ref()?
        .node_name
        .clone()
        .filter(|n| !n.is_empty())
}

impl Context {
    /// Informers over `client`, not started yet.
    pub fn new(client: kube::Client, options: Options) -> Arc<Context> {
        let all = watcher::Config::default();
        Arc::new(Context {
            recorders: Default::default(),
            pods: Informer::with_index(Api::all(client.clone()), all.clone(), Some(pod_node)),
            replica_sets: Informer::new(Api::all(client.clone()), all.clone()),
            replication_controllers: Informer::new(Api::all(client.clone()), all.clone()),
            deployments: Informer::new(Api::all(client.clone()), all.clone()),
            jobs: Informer::new(Api::all(client.clone()), all.clone()),
            nodes: Informer::new(Api::all(client.clone()), all.clone()),
            namespaces: Informer::new(Api::all(client.clone()), all.clone()),
            service_accounts: Informer::new(Api::all(client.clone()), all.clone()),
            token_secrets: Informer::new(
                Api::all(client.clone()),
                all.clone()
                    .fields(&format!("type={}", serviceaccounttoken::TOKEN_TYPE)),
            ),
            pdbs: Informer::new(Api::all(client.clone()), all.clone()),
            node_leases: Informer::new(
                Api::namespaced(client.clone(), "kube-node-lease"),
                all.clone(),
            ),
            csrs: Informer::new(Api::all(client.clone()), all.clone()),
            services: Informer::new(Api::all(client.clone()), all.clone()),
            endpoint_slices: Informer::with_index(
                Api::all(client.clone()),
                all.clone(),
                Some(endpointslice::slice_service),
            ),
            endpoints: Informer::new(Api::all(client.clone()), all.clone()),
            cluster_roles: Informer::new(Api::all(client.clone()), all.clone()),
            resource_quotas: Informer::new(Api::all(client.clone()), all.clone()),
            daemon_sets: Informer::new(Api::all(client.clone()), all.clone()),
            stateful_sets: Informer::new(Api::all(client.clone()), all.clone()),
            controller_revisions: Informer::new(Api::all(client.clone()), all.clone()),
            cron_jobs: Informer::new(Api::all(client.clone()), all.clone()),
            persistent_volume_claims: Informer::new(Api::all(client.clone()), all.clone()),
            persistent_volumes: Informer::new(Api::all(client.clone()), all.clone()),
            horizontal_pod_autoscalers: Informer::new(Api::all(client.clone()), all.clone()),
            csi_drivers: Informer::new(Api::all(client.clone()), all.clone()),
            volume_attachments: Informer::with_index(
                Api::all(client.clone()),
                all.clone(),
                Some(attachdetach::attachment_node),
            ),
            storage_classes: Informer::new(Api::all(client.clone()), all),
            client,
            options,
        })
    }

    /// The same informers and settings, acting through `client` (a controller's own).
    pub fn for_controller(&self, client: kube::Client) -> Arc<Context> {
        Arc::new(Context {
            client,
            recorders: Default::default(),
            options: self.options.clone(),
            pods: self.pods.clone(),
            replica_sets: self.replica_sets.clone(),
            replication_controllers: self.replication_controllers.clone(),
            deployments: self.deployments.clone(),
            jobs: self.jobs.clone(),
            nodes: self.nodes.clone(),
            namespaces: self.namespaces.clone(),
            service_accounts: self.service_accounts.clone(),
            token_secrets: self.token_secrets.clone(),
            pdbs: self.pdbs.clone(),
            node_leases: self.node_leases.clone(),
            csrs: self.csrs.clone(),
            services: self.services.clone(),
            endpoint_slices: self.endpoint_slices.clone(),
            endpoints: self.endpoints.clone(),
            cluster_roles: self.cluster_roles.clone(),
            resource_quotas: self.resource_quotas.clone(),
            daemon_sets: self.daemon_sets.clone(),
            stateful_sets: self.stateful_sets.clone(),
            controller_revisions: self.controller_revisions.clone(),
            cron_jobs: self.cron_jobs.clone(),
            persistent_volume_claims: self.persistent_volume_claims.clone(),
            persistent_volumes: self.persistent_volumes.clone(),
            storage_classes: self.storage_classes.clone(),
            horizontal_pod_autoscalers: self.horizontal_pod_autoscalers.clone(),
            csi_drivers: self.csi_drivers.clone(),
            volume_attachments: self.volume_attachments.clone(),
        })
    }

    /// The event recorder of `component` (upstream's source component names, which
    /// `kubectl describe` shows under "From").
    pub fn recorder(&self, component: &'static str) -> Recorder {
        self.recorders
            .lock()
            .entry(component)
            .or_insert_with(|| Recorder::new(self.client.clone(), component, ""))
            .clone()
    }

    fn start_informers(self: &Arc<Self>, tasks: &mut tokio::task::JoinSet<()>) {
        tasks.spawn(self.pods.clone().run());
        tasks.spawn(self.replica_sets.clone().run());
        tasks.spawn(self.replication_controllers.clone().run());
        tasks.spawn(self.deployments.clone().run());
        tasks.spawn(self.jobs.clone().run());
        tasks.spawn(self.nodes.clone().run());
        tasks.spawn(self.namespaces.clone().run());
        tasks.spawn(self.service_accounts.clone().run());
        tasks.spawn(self.token_secrets.clone().run());
        tasks.spawn(self.pdbs.clone().run());
        tasks.spawn(self.node_leases.clone().run());
        tasks.spawn(self.csrs.clone().run());
        tasks.spawn(self.services.clone().run());
        tasks.spawn(self.endpoint_slices.clone().run());
        tasks.spawn(self.endpoints.clone().run());
        tasks.spawn(self.cluster_roles.clone().run());
        tasks.spawn(self.resource_quotas.clone().run());
        tasks.spawn(self.daemon_sets.clone().run());
        tasks.spawn(self.stateful_sets.clone().run());
        tasks.spawn(self.controller_revisions.clone().run());
        tasks.spawn(self.cron_jobs.clone().run());
        tasks.spawn(self.persistent_volume_claims.clone().run());
        tasks.spawn(self.persistent_volumes.clone().run());
        tasks.spawn(self.storage_classes.clone().run());
        tasks.spawn(self.horizontal_pod_autoscalers.clone().run());
        tasks.spawn(self.csi_drivers.clone().run());
        tasks.spawn(self.volume_attachments.clone().run());
    }

    async fn wait_synced(&self) {
        self.pods.wait_synced().await;
        self.replica_sets.wait_synced().await;
        self.replication_controllers.wait_synced().await;
        self.deployments.wait_synced().await;
        self.jobs.wait_synced().await;
        self.nodes.wait_synced().await;
        self.namespaces.wait_synced().await;
        self.service_accounts.wait_synced().await;
        self.token_secrets.wait_synced().await;
        self.pdbs.wait_synced().await;
        self.node_leases.wait_synced().await;
        self.csrs.wait_synced().await;
        self.services.wait_synced().await;
        self.endpoint_slices.wait_synced().await;
        self.endpoints.wait_synced().await;
        self.cluster_roles.wait_synced().await;
        self.resource_quotas.wait_synced().await;
        self.daemon_sets.wait_synced().await;
        self.stateful_sets.wait_synced().await;
        self.controller_revisions.wait_synced().await;
        self.cron_jobs.wait_synced().await;
        self.persistent_volume_claims.wait_synced().await;
        self.persistent_volumes.wait_synced().await;
        self.storage_classes.wait_synced().await;
        self.horizontal_pod_autoscalers.wait_synced().await;
        self.csi_drivers.wait_synced().await;
        self.volume_attachments.wait_synced().await;
    }
}

/// Why the controller manager could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// `--cluster-cidr` or `--node-cidr-mask-size` is unusable.
    #[error(transparent)]
    Cidr(#[from] nodeipam::CidrError),
    /// The `--cluster-signing-*` CA could not be loaded.
    #[error(transparent)]
    Signer(#[from] certificates::SignError),
    /// A controller's client (its service account's token) could not be made.
    #[error(transparent)]
    Client(#[from] ClientBuildError),
}

/// Runs every controller until `shutdown` resolves, all with `client`.
pub async fn run(
    client: kube::Client,
    options: Options,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RunError> {
    run_with(Arc::new(SimpleClientBuilder(client)), options, shutdown).await
}

/// Runs every controller until `shutdown` resolves, each with the client `clients` gives it
/// (the informers and the token controller with the manager's own).
pub async fn run_with(
    clients: Arc<dyn ClientBuilder>,
    options: Options,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RunError> {
    let ctx = Context::new(clients.root(), options);
    let workers = ctx.options.workers;
    let as_ = |name: &'static str| {
        debug_assert!(names::ALL.contains(&name), "{name} missing from names::ALL");
        let (ctx, clients) = (ctx.clone(), clients.clone());
        async move { Ok::<_, RunError>(ctx.for_controller(clients.client(name).await?)) }
    };
    // Handlers are registered before the informers start, so none misses the first list.
    let replica_sets = replicaset::ReplicaSetController::<replicaset::ReplicaSets>::new(
        as_(names::REPLICASET).await?,
    );
    let replication_controllers =
        replication::ReplicationManager::new(as_(names::REPLICATION).await?);
    let deployments = deployment::DeploymentController::new(as_(names::DEPLOYMENT).await?);
    let jobs = job::JobController::new(as_(names::JOB).await?);
    let cron_jobs = cronjob::CronJobController::new(as_(names::CRONJOB).await?);
    let daemon_sets = daemonset::DaemonSetController::new(as_(names::DAEMONSET).await?);
    let stateful_sets = statefulset::StatefulSetController::new(as_(names::STATEFULSET).await?);
    let volumes = persistentvolume::PersistentVolumeController::new(
        as_(names::PERSISTENT_VOLUME_BINDER).await?,
    );
    let volume_protection = volumeprotection::VolumeProtectionController::with_volume_client(
        as_(names::PVC_PROTECTION).await?,
        as_(names::PV_PROTECTION).await?.client.clone(),
    );
    let ephemeral_volumes =
        ephemeral::EphemeralVolumeController::new(as_(names::EPHEMERAL_VOLUME).await?);
    let attach_detach = attachdetach::AttachDetachController::new(as_(names::ATTACH_DETACH).await?);
    let disruption = disruption::DisruptionController::new(as_(names::DISRUPTION).await?);
    let endpoint_slices =
        endpointslice::EndpointSliceController::new(as_(names::ENDPOINTSLICE).await?);
    let endpoints = endpoints::EndpointsController::new(as_(names::ENDPOINT).await?);
    let mirroring = endpointslicemirroring::MirroringController::new(
        as_(names::ENDPOINTSLICE_MIRRORING).await?,
    );
    let service_lb = servicelb::ServiceLbController::new(as_(names::SERVICE).await?);
    let namespaces = namespace::NamespaceController::new(as_(names::NAMESPACE).await?);
    let service_accounts = serviceaccount::ServiceAccountController::with_publisher_client(
        as_(names::SERVICE_ACCOUNT).await?,
        as_(names::ROOT_CA_CERT_PUBLISHER).await?.client.clone(),
    );
    let node = as_(names::NODE).await?;
    let node_ipam = nodeipam::NodeIpamController::new(node.clone())?;
    let node_lifecycle = nodelifecycle::NodeLifecycleController::new(node);
    let pod_gc = podgc::PodGcController::new(as_(names::POD_GC).await?);
    let gc = gc::GarbageCollector::new(as_(names::GC).await?);
    let certificate = as_(names::CERTIFICATE).await?;
    let csr_approving = certificates::CsrApprovingController::new(certificate.clone());
    let aggregation = clusterroleaggregation::AggregationController::new(
        as_(names::CLUSTERROLE_AGGREGATION).await?,
    );
    let quotas = resourcequota::ResourceQuotaController::new(as_(names::RESOURCEQUOTA).await?);
    let autoscalers =
        podautoscaler::HorizontalController::new(as_(names::HORIZONTAL_POD_AUTOSCALER).await?);
    // The token controller runs with the manager's own identity, as upstream's: it fills
    // Secrets no controller role may write.
    let tokens = ctx
        .options
        .token_signer
        .clone()
        .map(|signer| serviceaccounttoken::TokenController::new(ctx.clone(), signer.0));
    let csr_signing = match (
        &ctx.options.cluster_signing_cert_file,
        &ctx.options.cluster_signing_key_file,
    ) {
        (Some(cert), Some(key)) => {
            let signer =
                certificates::CaSigner::load(cert, key, ctx.options.cluster_signing_duration)?;
            Some(certificates::CsrSigningController::new(
                certificate.clone(),
                signer,
            ))
        }
        _ => {
            tracing::info!("no --cluster-signing-cert-file and key: not signing certificates");
            None
        }
    };

    let mut informers = tokio::task::JoinSet::new();
    ctx.start_informers(&mut informers);
    ctx.wait_synced().await;
    tracing::info!("controller informers synced");

    let mut controllers = tokio::task::JoinSet::new();
    controllers.spawn(queue::run(replica_sets.clone(), workers));
    controllers.spawn(queue::run(replication_controllers.clone(), workers));
    controllers.spawn(queue::run(deployments.clone(), workers));
    controllers.spawn(queue::run(jobs.clone(), workers));
    controllers.spawn(queue::run(cron_jobs.clone(), workers));
    controllers.spawn(queue::run(daemon_sets.clone(), workers));
    controllers.spawn(queue::run(stateful_sets.clone(), workers));
    controllers.spawn(queue::run(volumes.clone(), workers));
    controllers.spawn(queue::run(volume_protection.clone(), workers));
    controllers.spawn(queue::run(ephemeral_volumes.clone(), workers));
    controllers.spawn(queue::run(attach_detach.clone(), workers));
    controllers.spawn(queue::run(disruption.clone(), workers));
    controllers.spawn(queue::run(endpoint_slices.clone(), workers));
    controllers.spawn(queue::run(endpoints.clone(), workers));
    controllers.spawn(queue::run(mirroring.clone(), workers));
    controllers.spawn(queue::run(service_lb.clone(), workers));
    controllers.spawn(queue::run(namespaces.clone(), workers));
    controllers.spawn(queue::run(service_accounts.clone(), workers));
    controllers.spawn(queue::run(node_ipam.clone(), 1));
    controllers.spawn(node_lifecycle.clone().run());
    controllers.spawn(pod_gc.clone().run());
    controllers.spawn(gc.clone().run(workers));
    controllers.spawn(queue::run(csr_approving.clone(), workers));
    controllers.spawn(queue::run(aggregation.clone(), 1));
    controllers.spawn(queue::run(quotas.clone(), workers));
    controllers.spawn(queue::run(autoscalers.clone(), workers));
    controllers.spawn(
        quotas
            .clone()
            .resync(ctx.options.resource_quota_sync_period),
    );
    if let Some(tokens) = &tokens {
        controllers.spawn(queue::run(tokens.clone(), workers));
    }
    if let Some(signing) = &csr_signing {
        controllers.spawn(queue::run(signing.clone(), workers));
    }
    shutdown.await;
    replica_sets.queue().shut_down();
    replication_controllers.queue().shut_down();
    deployments.queue().shut_down();
    jobs.queue().shut_down();
    cron_jobs.queue().shut_down();
    daemon_sets.queue().shut_down();
    stateful_sets.queue().shut_down();
    volumes.queue().shut_down();
    volume_protection.queue().shut_down();
    ephemeral_volumes.queue().shut_down();
    attach_detach.queue().shut_down();
    disruption.queue().shut_down();
    endpoint_slices.queue().shut_down();
    endpoints.queue().shut_down();
    mirroring.queue().shut_down();
    service_lb.queue().shut_down();
    namespaces.queue().shut_down();
    service_accounts.queue().shut_down();
    csr_approving.queue().shut_down();
    aggregation.queue().shut_down();
    quotas.queue().shut_down();
    autoscalers.queue().shut_down();
    if let Some(tokens) = &tokens {
        tokens.queue().shut_down();
    }
    if let Some(signing) = &csr_signing {
        signing.queue().shut_down();
    }
    informers.abort_all();
    controllers.abort_all();
    Ok(())
}
