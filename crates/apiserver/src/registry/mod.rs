//! The registry: every served resource with its [`Strategy`] — what is particular to a kind
//! on the way through the generic REST verbs in [`crate::rest`], as upstream's
//! `pkg/registry/<group>/<kind>` strategies (`RESTCreateStrategy`, `RESTUpdateStrategy`,
//! `RESTDeleteStrategy`, `GarbageCollectionDeleteStrategy`, field selectors, TTLs).
//!
//! One file per kind, under its group's folder named as upstream's. Adding a kind is adding its
//! row to `ferry_api::registry::RESOURCES` and, if it has rules of its own, a file here and a line
//! in [`strategy_for`] — the one place that tells kinds apart by name. A kind without rules of
//! its own gets [`generic::Generic`]. A CustomResourceDefinition's strategy will be built at run
//! time from its schema the same way.

pub mod admissionregistration;
pub mod apiextensions;
pub mod apiregistration;
pub mod apps;
pub mod autoscaling;
pub mod batch;
pub mod certificates;
pub mod core;
pub mod discovery;
pub mod events;
pub mod flowcontrol;
pub mod generic;
pub mod networking;
pub mod rbac;
pub mod scheduling;

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use ferry_api::printers::TablePrinter;
use ferry_api::registry::ResourceInfo;
use serde_json::Value;

use crate::auth::UserInfo;
use crate::status::{ApiError, FieldError};
use crate::storage::Storage;

/// How a kind's names are checked (`ValidateObjectMeta`'s name function).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// A DNS subdomain (RFC 1123), the default.
    Subdomain,
    /// A DNS label: namespaces, StatefulSets, CronJobs.
    Label,
    /// A DNS-1035 label (a letter first): services.
    Dns1035Label,
    /// Any name that is a valid path segment (RBAC's `ValidateRBACName`).
    PathSegment,
    /// An IP address in canonical form (IPAddress objects).
    IpAddress,
}

/// What is particular to one kind. Every method has upstream's default behaviour, so a kind
/// overrides only what its upstream strategy changes.
#[async_trait]
pub trait Strategy: Send + Sync {
    /// Whether `metadata.generation` starts at 1 and moves when the spec changes.
    fn tracks_generation(&self) -> bool {
        false
    }

    /// Whether a create clears the status (kinds with a `status` subresource; Nodes and
    /// PersistentVolumes keep what their creator sent).
    fn resets_status_on_create(&self) -> bool {
        true
    }

    /// How names are checked.
    fn name_rule(&self) -> NameRule {
        NameRule::Subdomain
    }

    /// Defaults and server-set fields of a new object, after the generic ones; `user` is who
    /// asks (`None` for the server's own writes).
    fn prepare_for_create(&self, _object: &mut Value, _user: Option<&UserInfo>) {}

    /// The kind's defaults (upstream's `SetDefaults_<Kind>`), idempotent: applied to a new
    /// object by `prepare_for_create`, and again to an object a mutating webhook or policy
    /// changed — upstream decodes the mutated object with defaulting, so a container a webhook
    /// injects gets its `imagePullPolicy`, `terminationMessagePath`, requests from limits….
    fn default_fields(&self, _object: &mut Value) {}

    /// What an update changes beyond the request, after the generic rules.
    fn prepare_for_update(&self, _new: &mut Value, _old: &Value) {}

    /// The kind's own validation of a new object (object metadata is checked generically).
    fn validate(&self, _object: &Value, _errors: &mut Vec<FieldError>) {}

    /// The kind's validation of an update: by default the new object's validation.
    fn validate_update(&self, new: &Value, _old: &Value, errors: &mut Vec<FieldError>) {
        self.validate(new, errors);
    }

    /// The object an update of `subresource` ("" for the main resource) leads to, from the stored
    /// `old` and the `requested` one.
    fn merge_update(
        &self,
        info: &ResourceInfo,
        subresource: &str,
        old: &Value,
        requested: Value,
    ) -> Result<Value, ApiError> {
        generic::merge_update(info, subresource, old, requested)
    }

    /// The kind's selectable fields of `object` (`GetAttrs`), beside `metadata.name` and
    /// `metadata.namespace`. Called with `{}` to learn which fields are supported.
    fn selectable_fields(&self, _object: &Value, _fields: &mut BTreeMap<String, String>) {}

    /// The grace period of a delete (`CheckGracefulDelete`): 0 deletes at once.
    fn grace_period(&self, _object: &Value, _requested: Option<i64>) -> i64 {
        0
    }

    /// Whether an object being deleted whose last finalizer went still waits for someone else to
    /// finish it (a bound pod, for its kubelet).
    fn awaits_graceful_termination(&self, _object: &Value) -> bool {
        false
    }

    /// Finalizers of the kind's own beside `metadata.finalizers` (a namespace's
    /// `spec.finalizers`): the object stays until they are gone.
    fn has_spec_finalizers(&self, _object: &Value) -> bool {
        false
    }

    /// The conflict message when an object already being deleted is deleted again, for kinds
    /// that refuse it (namespaces).
    fn repeated_delete_conflict(&self) -> Option<&'static str> {
        None
    }

    /// Finalizers the first delete adds, so the object waits for their owners (a
    /// CustomResourceDefinition's cleanup of its objects).
    fn delete_finalizers(&self) -> &'static [&'static str] {
        &[]
    }

    /// What a graceful delete changes beside the deletion timestamp (a namespace's phase).
    fn prepare_for_graceful_delete(&self, _object: &mut Value) {}

    /// How long objects live (Events: upstream's `--event-ttl`); `None` for ever.
    fn ttl(&self) -> Option<Duration> {
        None
    }

    /// Whether writes of this kind are steps of a pod's journey ([`crate::journey`]): pods and
    /// the workloads that make them. Other kinds' writes (leases, events) would only fill the
    /// journeys' memory.
    fn traced(&self) -> bool {
        false
    }

    /// Before a create is written: reserves what the object needs (a service's cluster IP and
    /// node ports), refusing the create if that is impossible. `key` is where it will be
    /// written.
    async fn begin_create(
        &self,
        _storage: &Storage,
        _info: &ResourceInfo,
        _key: &[u8],
        _object: &mut Value,
    ) -> Result<(), ApiError> {
        Ok(())
    }

    /// Before an update is written: reserves what the new object needs that the old one did
    /// not hold (a service that became NodePort), refusing the update if that is impossible.
    /// The answer is settled once the write is known: [`Reservations::commit`] or
    /// [`Reservations::revert`].
    async fn begin_update(
        &self,
        _storage: &Storage,
        _new: &mut Value,
        _old: &Value,
    ) -> Result<Reservations, ApiError> {
        Ok(Reservations::default())
    }

    /// After a create that [`Strategy::begin_create`] prepared failed, or after a delete:
    /// releases what it reserved.
    async fn release(&self, _storage: &Storage, _object: &Value) {}

    /// Removes the fields of `object` its schema does not know (upstream's decoding into the
    /// typed object, or a custom resource's pruning), returning their paths as upstream's
    /// `unknown field "<path>"` names them.
    fn prune_unknown_fields(&self, info: &ResourceInfo, object: &mut Value) -> Vec<String> {
        ferry_api::openapi::prune_unknown_fields(info.group, info.version, info.kind, object)
    }

    /// Whether an update changed what `metadata.generation` counts (the spec, for built-in
    /// kinds).
    fn spec_changed(&self, new: &Value, old: &Value) -> bool {
        new.get("spec") != old.get("spec")
    }

    /// Whether strategic merge patches apply (built-in kinds; custom resources take only JSON
    /// and merge patches, as upstream).
    fn accepts_strategic_merge(&self) -> bool {
        true
    }

    /// Converts objects read from storage into the version served, all at once (a custom
    /// resource's conversion webhook). By default [`Strategy::decode_stored`] has served them.
    async fn convert_stored(
        &self,
        _storage: &Storage,
        _objects: &mut [Value],
    ) -> Result<(), ApiError> {
        Ok(())
    }

    /// The object to write converted into the version stored, when it must be (a custom
    /// resource's conversion webhook); `None` to write it as it is.
    async fn convert_for_storage(
        &self,
        _storage: &Storage,
        _object: &Value,
    ) -> Result<Option<Value>, ApiError> {
        Ok(None)
    }

    /// The object as stored, from the object as served (resources that share storage with
    /// another version of the kind, as events.k8s.io Events with core Events).
    fn encode_for_storage(&self, object: Value) -> Value {
        object
    }

    /// The object as served, from the object as stored.
    fn decode_stored(&self, object: Value) -> Value {
        object
    }
}

/// Reservation keys an update took and gave up (upstream's allocation transaction): the keys
/// taken go again if the update is not written, the keys given up go once it is.
#[derive(Debug, Default)]
#[must_use = "reservations are settled with commit or revert"]
pub struct Reservations {
    /// Keys reserved for the new object.
    pub taken: Vec<Bytes>,
    /// Keys the old object held and the new one does not.
    pub given_up: Vec<Bytes>,
}

impl Reservations {
    /// The update was written: what the old object held and the new one does not is free.
    pub async fn commit(self, storage: &Storage) {
        for key in self.given_up {
            let _ = storage.store.delete(key, 0).await;
        }
    }

    /// The update was not written: what was taken for it is free again.
    pub async fn revert(self, storage: &Storage) {
        for key in self.taken {
            let _ = storage.store.delete(key, 0).await;
        }
    }
}

/// A group and resource (upstream's `schema.GroupResource`), for the cross-cutting code that
/// must name one (admission plugins, as upstream's `api.Resource("pods")`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupResource {
    /// API group ("" for core).
    pub group: &'static str,
    /// Resource (plural).
    pub resource: &'static str,
}

impl GroupResource {
    /// The group and resource of `info`.
    pub fn of(info: &'static ResourceInfo) -> GroupResource {
        GroupResource {
            group: info.group,
            resource: info.plural,
        }
    }
}

/// Pods.
pub const PODS: GroupResource = GroupResource {
    group: "",
    resource: "pods",
};
/// Nodes.
pub const NODES: GroupResource = GroupResource {
    group: "",
    resource: "nodes",
};
/// Namespaces.
pub const NAMESPACES: GroupResource = GroupResource {
    group: "",
    resource: "namespaces",
};

/// How a subresource is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubresourceKind {
    /// A part of the object read with it and written through the kind's
    /// [`Strategy::merge_update`] (`status`, a namespace's `finalize`, a CSR's `approval`).
    Part,
    /// `scale`: an `autoscaling/v1` Scale view of `spec.replicas`.
    Scale,
    /// `pods/binding`: the scheduler's bind.
    Binding,
    /// `pods/eviction`: a delete that honours disruption budgets.
    Eviction,
    /// `pods/log`: read from the node's kubelet.
    Log,
    /// `pods/exec`, `pods/attach`, `pods/portforward`: an upgrade proxied to the node's kubelet.
    Stream,
    /// `serviceaccounts/token`: TokenRequest.
    Token,
    /// `nodes/proxy`: a request proxied to the node's kubelet.
    NodeProxy,
}

/// A served resource, its strategy, its table printer and its subresources.
pub struct Resource {
    /// What discovery says of it.
    pub info: &'static ResourceInfo,
    /// Its kind's rules.
    pub strategy: Box<dyn Strategy>,
    /// Its kind's table (`kubectl get`).
    pub printer: Arc<dyn TablePrinter>,
    /// Where its `scale` subresource reads and writes, if it has one.
    pub scale: ScalePaths,
    /// A custom resource's `openAPIV3Schema`, for its OpenAPI document (the built-in kinds'
    /// come from their types).
    pub schema: Option<Arc<Value>>,
    /// Its managed-fields recorder, built on first use ([`Resource::field_manager`]).
    field_manager: std::sync::OnceLock<Arc<crate::fieldmanager::FieldManager>>,
    /// The subresources ferry serves, and how.
    subresources: Vec<(&'static str, SubresourceKind)>,
}

/// Where the `scale` subresource finds the replicas and the selector in an object: the
/// built-in kinds' `.spec.replicas`, `.status.replicas` and `.spec.selector` (a label selector),
/// or the paths a CustomResourceDefinition names (its selector then a string already).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalePaths {
    /// JSON pointer of the desired replicas.
    pub spec_replicas: String,
    /// JSON pointer of the observed replicas.
    pub status_replicas: String,
    /// JSON pointer of the selector, if the kind has one.
    pub selector: Option<String>,
    /// Whether the selector is a serialized label selector (a string) rather than a structured
    /// one.
    pub selector_is_text: bool,
}

impl Default for ScalePaths {
    fn default() -> Self {
        ScalePaths {
            spec_replicas: "/spec/replicas".into(),
            status_replicas: "/status/replicas".into(),
            selector: Some("/spec/selector".into()),
            selector_is_text: false,
        }
    }
}

impl Resource {
    /// A resource of `info` with `strategy`, a table printer and the given subresources.
    pub fn new(
        info: &'static ResourceInfo,
        strategy: Box<dyn Strategy>,
        printer: Arc<dyn TablePrinter>,
        scale: ScalePaths,
        subresources: Vec<(&'static str, SubresourceKind)>,
    ) -> Resource {
        Resource {
            info,
            strategy,
            printer,
            scale,
            schema: None,
            field_manager: Default::default(),
            subresources,
        }
    }

    /// The built-in resource `info`, with its kind's strategy, printer and subresources.
    pub fn built_in(info: &'static ResourceInfo) -> Resource {
        Resource {
            info,
            strategy: strategy_for(info),
            printer: Arc::new(StaticPrinter(ferry_api::printers::printer_for(
                info.group,
                info.plural,
            ))),
            scale: ScalePaths::default(),
            schema: None,
            field_manager: Default::default(),
            subresources: subresources_for(info),
        }
    }

    /// Its managed-fields recorder (built on first use: the schema of a built-in kind is
    /// converted from the OpenAPI definitions once).
    pub fn field_manager(&self) -> Arc<crate::fieldmanager::FieldManager> {
        self.field_manager
            .get_or_init(|| {
                Arc::new(crate::fieldmanager::FieldManager::new(
                    self.info,
                    self.schema.as_deref(),
                ))
            })
            .clone()
    }

    /// How `name` is served, if it is (discovery lists subresources ferry does not serve yet:
    /// `pods/proxy`, `nodes/proxy`, …).
    pub fn subresource(&self, name: &str) -> Option<SubresourceKind> {
        self.subresources
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, kind)| *kind)
    }
}

/// A built-in kind's table printer, shared as the run-time ones are.
struct StaticPrinter(&'static dyn TablePrinter);

impl TablePrinter for StaticPrinter {
    fn columns(&self) -> Vec<ferry_api::printers::Column> {
        self.0.columns()
    }

    fn row(&self, object: &Value, now: i128) -> Vec<Value> {
        self.0.row(object, now)
    }

    fn conditions(&self, object: &Value) -> Option<Value> {
        self.0.conditions(object)
    }
}

/// Every served resource: the built-in ones, fixed at start, and those CustomResourceDefinitions
/// define, which come and go while the server runs.
pub struct Registry {
    resources: HashMap<&'static str, Vec<Arc<Resource>>>,
    custom: parking_lot::RwLock<Arc<CustomResources>>,
}

/// The resources of the established CustomResourceDefinitions, by CRD name and by plural (as
/// the built-in ones are kept), and the OpenAPI v3 document of each of their group-versions.
#[derive(Default)]
pub struct CustomResources {
    by_definition: BTreeMap<String, Vec<Arc<Resource>>>,
    by_plural: HashMap<&'static str, Vec<Arc<Resource>>>,
    documents: BTreeMap<String, Arc<ferry_api::openapi::Document>>,
    /// `/openapi/v2` with these resources, built when first asked for.
    v2: std::sync::OnceLock<ferry_api::openapi::V2>,
}

impl CustomResources {
    /// Every custom resource, by definition name, then in the definition's version order.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Resource>> {
        self.by_definition.values().flatten()
    }

    /// The OpenAPI v3 documents of the custom group-versions, by path (`apis/<group>/<version>`).
    pub fn documents(&self) -> &BTreeMap<String, Arc<ferry_api::openapi::Document>> {
        &self.documents
    }

    /// `/openapi/v2`: the built-in document with every custom group-version's paths and
    /// definitions.
    pub fn v2(&self) -> ferry_api::openapi::V2 {
        self.v2
            .get_or_init(|| {
                let mut group_versions: Vec<(&str, &str)> =
                    self.all().map(|r| (r.info.group, r.info.version)).collect();
                group_versions.sort();
                group_versions.dedup();
                let parts: Vec<ferry_api::openapi::CustomV2> = group_versions
                    .into_iter()
                    .map(|(group, version)| {
                        ferry_api::openapi::custom_v2_part(
                            group,
                            version,
                            &self.kinds(group, version),
                        )
                    })
                    .collect();
                ferry_api::openapi::v2_with_custom(&parts)
            })
            .clone()
    }

    /// The kinds served at `group`/`version`, by plural.
    fn kinds(&self, group: &str, version: &str) -> Vec<ferry_api::openapi::CustomKind<'_>> {
        let mut resources: Vec<&Arc<Resource>> = self
            .all()
            .filter(|r| r.info.group == group && r.info.version == version)
            .collect();
        resources.sort_by_key(|r| r.info.plural);
        resources
            .iter()
            .map(|r| ferry_api::openapi::CustomKind {
                info: r.info,
                schema: r.schema.as_deref(),
            })
            .collect()
    }

    /// The OpenAPI v3 document of `group`/`version` from the resources served there.
    fn document(&self, group: &str, version: &str) -> Option<ferry_api::openapi::Document> {
        let kinds = self.kinds(group, version);
        (!kinds.is_empty()).then(|| ferry_api::openapi::custom_v3_document(group, version, &kinds))
    }
}

impl Registry {
    /// The built-in resources served (`ferry_api::registry::served`), each with its strategy
    /// and its table printer.
    pub fn builtin() -> Registry {
        let mut resources: HashMap<&'static str, Vec<Arc<Resource>>> = HashMap::new();
        for info in ferry_api::registry::served() {
            resources
                .entry(info.plural)
                .or_default()
                .push(Arc::new(Resource::built_in(info)));
        }
        Registry {
            resources,
            custom: Default::default(),
        }
    }

    /// The built-in resource of `group`, `version` and `plural`, borrowed from the registry.
    pub fn builtin_resource(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<&Arc<Resource>> {
        find_in(&self.resources, group, version, plural)
    }

    /// The resource a path names.
    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<Arc<Resource>> {
        if let Some(found) = self.builtin_resource(group, version, plural) {
            return Some(found.clone());
        }
        find_in(&self.custom.read().by_plural, group, version, plural).cloned()
    }

    /// A resource of `group` and `plural` in any version it is served in (every version of a
    /// resource is stored under the same keys).
    pub fn resolve_any_version(&self, group: &str, plural: &str) -> Option<Arc<Resource>> {
        let in_group = |resources: &Vec<Arc<Resource>>| {
            resources.iter().find(|r| r.info.group == group).cloned()
        };
        if let Some(found) = self.resources.get(plural).and_then(in_group) {
            return Some(found);
        }
        self.custom.read().by_plural.get(plural).and_then(in_group)
    }

    /// The custom resources served now.
    pub fn custom(&self) -> Arc<CustomResources> {
        self.custom.read().clone()
    }

    /// Serves `resources` for the CustomResourceDefinition `definition` (replacing what it
    /// served before); an empty list stops serving it.
    pub fn set_custom(&self, definition: &str, resources: Vec<Arc<Resource>>) {
        let mut custom = self.custom.write();
        let mut by_definition = custom.by_definition.clone();
        // The group-versions whose documents change: the definition's, before and after.
        let mut touched: Vec<(&'static str, &'static str)> = by_definition
            .get(definition)
            .into_iter()
            .flatten()
            .chain(&resources)
            .map(|r| (r.info.group, r.info.version))
            .collect();
        touched.sort();
        touched.dedup();
        if resources.is_empty() {
            by_definition.remove(definition);
        } else {
            by_definition.insert(definition.to_string(), resources);
        }
        let mut by_plural: HashMap<&'static str, Vec<Arc<Resource>>> = HashMap::new();
        for r in by_definition.values().flatten() {
            by_plural.entry(r.info.plural).or_default().push(r.clone());
        }
        let mut next = CustomResources {
            by_definition,
            by_plural,
            documents: custom.documents.clone(),
            v2: Default::default(),
        };
        for (group, version) in touched {
            let path = format!("apis/{group}/{version}");
            match next.document(group, version) {
                Some(document) => next.documents.insert(path, Arc::new(document)),
                None => next.documents.remove(&path),
            };
        }
        *custom = Arc::new(next);
    }
}

/// The resource of `group`, `version` and `plural` among resources kept by plural.
fn find_in<'a>(
    by_plural: &'a HashMap<&'static str, Vec<Arc<Resource>>>,
    group: &str,
    version: &str,
    plural: &str,
) -> Option<&'a Arc<Resource>> {
    by_plural
        .get(plural)?
        .iter()
        .find(|r| r.info.group == group && r.info.version == version)
}

/// The registration of subresources: which of a kind's subresources are served, and how.
fn subresources_for(info: &ResourceInfo) -> Vec<(&'static str, SubresourceKind)> {
    info.subresources
        .iter()
        .filter_map(|s| {
            let kind = match (info.group, info.plural, s.name) {
                (_, _, "status") => SubresourceKind::Part,
                ("", "namespaces", "finalize") => SubresourceKind::Part,
                ("", "pods", "ephemeralcontainers") => SubresourceKind::Part,
                ("certificates.k8s.io", "certificatesigningrequests", "approval") => {
                    SubresourceKind::Part
                }
                (_, _, "scale") => SubresourceKind::Scale,
                ("", "pods", "binding") => SubresourceKind::Binding,
                ("", "pods", "eviction") => SubresourceKind::Eviction,
                ("", "pods", "log") => SubresourceKind::Log,
                ("", "pods", "exec" | "attach" | "portforward") => SubresourceKind::Stream,
                ("", "nodes", "proxy") => SubresourceKind::NodeProxy,
                ("", "serviceaccounts", "token") => SubresourceKind::Token,
                _ => return None,
            };
            Some((s.name, kind))
        })
        .collect()
}

/// The registration: the strategy of each built-in kind. The only place kinds are told apart by
/// group and name.
fn strategy_for(info: &ResourceInfo) -> Box<dyn Strategy> {
    match (info.group, info.plural) {
        ("", "pods") => Box::new(core::pod::PodStrategy),
        ("", "services") => Box::new(core::service::ServiceStrategy),
        ("", "namespaces") => Box::new(core::namespace::NamespaceStrategy),
        ("", "nodes") => Box::new(core::node::NodeStrategy),
        ("", "persistentvolumes") => Box::new(core::persistentvolume::PersistentVolumeStrategy),
        ("", "persistentvolumeclaims") => {
            Box::new(core::persistentvolumeclaim::PersistentVolumeClaimStrategy)
        }
        ("", "events") => Box::new(core::event::EventStrategy),
        ("", "secrets") => Box::new(core::secret::SecretStrategy),
        ("", "configmaps") => Box::new(core::configmap::ConfigMapStrategy),
        ("", "limitranges") => Box::new(core::limitrange::LimitRangeStrategy),
        ("", "resourcequotas") => Box::new(core::resourcequota::ResourceQuotaStrategy),
        ("", "replicationcontrollers") => {
            Box::new(core::replicationcontroller::ReplicationControllerStrategy)
        }
        ("autoscaling", "horizontalpodautoscalers") if info.version == "v1" => {
            Box::new(autoscaling::horizontalpodautoscaler::HpaV1Strategy)
        }
        ("autoscaling", "horizontalpodautoscalers") => {
            Box::new(autoscaling::horizontalpodautoscaler::HpaV2Strategy)
        }
        ("apps", "deployments") => Box::new(apps::deployment::DeploymentStrategy),
        ("apps", "replicasets") => Box::new(apps::replicaset::ReplicaSetStrategy),
        ("apps", "statefulsets") => Box::new(apps::statefulset::StatefulSetStrategy),
        ("apps", "daemonsets") => Box::new(apps::daemonset::DaemonSetStrategy),
        ("batch", "jobs") => Box::new(batch::job::JobStrategy),
        ("batch", "cronjobs") => Box::new(batch::cronjob::CronJobStrategy),
        ("certificates.k8s.io", "certificatesigningrequests") => {
            Box::new(certificates::csr::CsrStrategy)
        }
        ("discovery.k8s.io", "endpointslices") => {
            Box::new(discovery::endpointslice::EndpointSliceStrategy)
        }
        ("events.k8s.io", "events") => Box::new(events::event::EventStrategy),
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations") => Box::new(
            admissionregistration::webhookconfiguration::WebhookConfigurationStrategy {
                mutating: true,
            },
        ),
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations") => Box::new(
            admissionregistration::webhookconfiguration::WebhookConfigurationStrategy {
                mutating: false,
            },
        ),
        ("admissionregistration.k8s.io", "validatingadmissionpolicies") => {
            Box::new(admissionregistration::policy::ValidatingAdmissionPolicyStrategy)
        }
        ("admissionregistration.k8s.io", "validatingadmissionpolicybindings") => {
            Box::new(admissionregistration::policy::ValidatingAdmissionPolicyBindingStrategy)
        }
        ("admissionregistration.k8s.io", "mutatingadmissionpolicies") => {
            Box::new(admissionregistration::mutating_policy::MutatingAdmissionPolicyStrategy)
        }
        ("admissionregistration.k8s.io", "mutatingadmissionpolicybindings") => {
            Box::new(admissionregistration::mutating_policy::MutatingAdmissionPolicyBindingStrategy)
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            Box::new(apiextensions::customresourcedefinition::CustomResourceDefinitionStrategy)
        }
        ("apiregistration.k8s.io", "apiservices") => {
            Box::new(apiregistration::apiservice::ApiServiceStrategy)
        }
        ("networking.k8s.io", "ipaddresses") => Box::new(networking::ipaddress::IpAddressStrategy),
        ("networking.k8s.io", "servicecidrs") => {
            Box::new(networking::servicecidr::ServiceCidrStrategy)
        }
        // Kinds without rules of their own; generation moves with the spec in the groups whose
        // upstream strategies all do that.
        (
            "apps"
            | "batch"
            | "policy"
            | "autoscaling"
            | "networking.k8s.io"
            | "apiextensions.k8s.io"
            | "admissionregistration.k8s.io",
            _,
        ) => Box::new(generic::Generic::tracking_generation()),
        ("scheduling.k8s.io", "priorityclasses") => {
            Box::new(scheduling::priorityclass::PriorityClassStrategy)
        }
        ("flowcontrol.apiserver.k8s.io", "flowschemas") => {
            Box::new(flowcontrol::flowschema::FlowSchemaStrategy)
        }
        ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations") => {
            Box::new(flowcontrol::prioritylevelconfiguration::PriorityLevelConfigurationStrategy)
        }
        ("rbac.authorization.k8s.io", "roles") => {
            Box::new(rbac::role::RoleStrategy { namespaced: true })
        }
        ("rbac.authorization.k8s.io", "clusterroles") => {
            Box::new(rbac::role::RoleStrategy { namespaced: false })
        }
        ("rbac.authorization.k8s.io", "rolebindings") => {
            Box::new(rbac::binding::BindingStrategy { namespaced: true })
        }
        ("rbac.authorization.k8s.io", "clusterrolebindings") => {
            Box::new(rbac::binding::BindingStrategy { namespaced: false })
        }
        _ => Box::new(generic::Generic::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_row_is_registered() {
        let registry = Registry::builtin();
        for info in ferry_api::registry::RESOURCES {
            let resource = registry
                .resolve(info.group, info.version, info.plural)
                .expect("registered");
            assert!(std::ptr::eq(resource.info, info));
        }
        assert!(registry.resolve("", "v1", "nothing").is_none());
        let pods = registry.resolve("", "v1", "pods").expect("pods");
        assert_eq!(pods.subresource("binding"), Some(SubresourceKind::Binding));
        assert_eq!(pods.subresource("status"), Some(SubresourceKind::Part));
        assert_eq!(pods.subresource("log"), Some(SubresourceKind::Log));
        assert_eq!(pods.subresource("exec"), Some(SubresourceKind::Stream));
        assert_eq!(pods.subresource("proxy"), None, "not served yet");
        let deployments = registry
            .resolve("apps", "v1", "deployments")
            .expect("deployments");
        assert_eq!(
            deployments.subresource("scale"),
            Some(SubresourceKind::Scale)
        );
    }
}
