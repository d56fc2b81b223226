//! Server-side printing: the `meta.k8s.io/v1` `Table` that upstream
//! kube-apiserver returns for
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` (what `kubectl get`
//! asks for).
//!
//! The column definitions and the cell values follow upstream's
//! `pkg/printers/internalversion/printers.go` (v1.33) and, for resources
//! without a printer there (roles, limit ranges, CRDs, ...), the default table
//! convertor of `k8s.io/apiserver/pkg/registry/rest/table.go` (`Name`,
//! `Created At`).
//!
//! Upstream always generates the table with `Wide: true`, so every row holds
//! a cell for every column, including the priority 1 (`-o wide`) ones;
//! kubectl hides those unless asked for `-o wide`.
//!
//! Objects are taken as versioned JSON (what is stored). Upstream prints the
//! internal, defaulted form of the object; where upstream's defaulting always
//! fills a field (for example a Deployment's `spec.replicas`, a Service's
//! `spec.type`, a port's `protocol`, a Secret's `type`) the printers here
//! apply the same default, so a not-yet-defaulted object prints as upstream
//! would print it. Quantities are printed as stored (upstream prints the
//! canonical form, which is what a server that canonicalizes stores).
//!
//! Times are computed against the caller's `now_unix_secs`, and ages use
//! upstream's `duration.HumanDuration` ([`human_duration`]).

mod admissionregistration;
mod apiregistration;
mod apps;
mod autoscaling;
mod batch;
mod cells;
mod certificates;
mod coordination;
mod core;
mod custom;
mod discovery;
mod events;
mod flowcontrol;
mod networking;
mod node;
mod policy;
mod rbac;
mod scheduling;
mod storage;
#[cfg(test)]
mod tests;

use serde_json::{json, Map, Value};

use cells::*;
pub use cells::{
    format_label_selector, format_labels, format_rfc3339, human_duration, parse_rfc3339,
};
pub use custom::CustomColumns;

/// A column of a table: upstream's `metav1.TableColumnDefinition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Human-readable name, e.g. `"Name"`, `"Ready"` (kubectl upper-cases it).
    pub name: &'static str,
    /// OpenAPI type of the cells: `"string"`, `"integer"`, `"number"`,
    /// `"boolean"` or `"date"`.
    pub type_: &'static str,
    /// OpenAPI format: `"name"` for the column naming the object, `""`
    /// otherwise.
    pub format: &'static str,
    /// Description of the column (upstream's field documentation).
    pub description: &'static str,
    /// `0` for normal columns, `1` for columns shown only by `-o wide`.
    pub priority: i32,
}

impl Column {
    /// The column as a `columnDefinitions` entry of a `Table`.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.type_,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// A kind's table: its columns and the cells of one object's row, together (upstream's
/// `TableHandler(columns, printFunc)`).
pub trait TablePrinter: Send + Sync {
    /// The column definitions, including the priority 1 (`-o wide`) ones.
    fn columns(&self) -> Vec<Column>;

    /// The cells of `object`'s row, one per column; `now` in nanoseconds since the epoch.
    fn row(&self, object: &Value, now: i128) -> Vec<Value>;

    /// The row's conditions (upstream attaches them to pods only).
    fn conditions(&self, _object: &Value) -> Option<Value> {
        None
    }
}

/// The table of kinds without a printer of their own (upstream's default table convertor:
/// `Name`, `Created At`).
pub struct DefaultTable;

impl TablePrinter for DefaultTable {
    fn columns(&self) -> Vec<Column> {
        vec![NAME, col("Created At", "date", AGE_DESC)]
    }

    fn row(&self, o: &Value, _now: i128) -> Vec<Value> {
        let t = parse_rfc3339(st(o, &["metadata", "creationTimestamp"])).unwrap_or(ZERO_TIME);
        vec![name(o), format_rfc3339(t).into()]
    }
}

/// The registration: the printer of each kind that has one. The only place printers are told
/// apart by group and resource.
pub fn printer_for(group: &str, plural: &str) -> &'static dyn TablePrinter {
    match (group, plural) {
        ("", "pods") => &core::Pod,
        ("", "podtemplates") => &core::PodTemplate,
        ("policy", "poddisruptionbudgets") => &policy::PodDisruptionBudget,
        ("", "replicationcontrollers") => &core::ReplicationController,
        ("apps", "replicasets") => &apps::ReplicaSet,
        ("apps", "daemonsets") => &apps::DaemonSet,
        ("batch", "jobs") => &batch::Job,
        ("batch", "cronjobs") => &batch::CronJob,
        ("", "services") => &core::Service,
        ("networking.k8s.io", "ingresses") => &networking::Ingress,
        ("networking.k8s.io", "ingressclasses") => &networking::IngressClass,
        ("apps", "statefulsets") => &apps::StatefulSet,
        ("", "endpoints") => &core::Endpoints,
        ("", "nodes") => &core::Node,
        ("", "events") => &core::Event,
        ("events.k8s.io", "events") => &events::EventsV1,
        ("", "namespaces") => &core::Namespace,
        ("", "secrets") => &core::Secret,
        ("", "serviceaccounts") => &core::ServiceAccount,
        ("", "persistentvolumes") => &core::PersistentVolume,
        ("", "persistentvolumeclaims") => &core::PersistentVolumeClaim,
        ("", "componentstatuses") => &core::ComponentStatus,
        ("apps", "deployments") => &apps::Deployment,
        ("autoscaling", "horizontalpodautoscalers") => &autoscaling::HorizontalPodAutoscaler,
        ("", "configmaps") => &core::ConfigMap,
        ("networking.k8s.io", "networkpolicies") => &networking::NetworkPolicy,
        ("rbac.authorization.k8s.io", "rolebindings") => &rbac::RoleBinding,
        ("rbac.authorization.k8s.io", "clusterrolebindings") => &rbac::RoleBinding,
        ("certificates.k8s.io", "certificatesigningrequests") => {
            &certificates::CertificateSigningRequest
        }
        ("coordination.k8s.io", "leases") => &coordination::Lease,
        ("storage.k8s.io", "storageclasses") => &storage::StorageClass,
        ("apps", "controllerrevisions") => &apps::ControllerRevision,
        ("", "resourcequotas") => &core::ResourceQuota,
        ("scheduling.k8s.io", "priorityclasses") => &scheduling::PriorityClass,
        ("node.k8s.io", "runtimeclasses") => &node::RuntimeClass,
        ("networking.k8s.io", "ipaddresses") => &networking::IpAddress,
        ("networking.k8s.io", "servicecidrs") => &networking::ServiceCidr,
        ("storage.k8s.io", "volumeattachments") => &storage::VolumeAttachment,
        ("discovery.k8s.io", "endpointslices") => &discovery::EndpointSlice,
        ("storage.k8s.io", "csinodes") => &storage::CsiNode,
        ("storage.k8s.io", "csidrivers") => &storage::CsiDriver,
        ("storage.k8s.io", "csistoragecapacities") => &storage::CsiStorageCapacity,
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations") => {
            &admissionregistration::WebhookConfiguration
        }
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations") => {
            &admissionregistration::WebhookConfiguration
        }
        ("admissionregistration.k8s.io", "validatingadmissionpolicies") => {
            &admissionregistration::VALIDATING_ADMISSION_POLICY
        }
        ("admissionregistration.k8s.io", "mutatingadmissionpolicies") => {
            &admissionregistration::MUTATING_ADMISSION_POLICY
        }
        (
            "admissionregistration.k8s.io",
            "validatingadmissionpolicybindings" | "mutatingadmissionpolicybindings",
        ) => &admissionregistration::AdmissionPolicyBinding,
        ("apiregistration.k8s.io", "apiservices") => &apiregistration::ApiService,
        ("flowcontrol.apiserver.k8s.io", "flowschemas") => &flowcontrol::FlowSchema,
        ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations") => {
            &flowcontrol::PriorityLevelConfiguration
        }
        _ => &DefaultTable,
    }
}

/// The column definitions upstream returns for `group`/`plural` (`""` is
/// the core group), in order, including the priority 1 (`-o wide`) ones.
/// Resources without a dedicated printer get the default `Name`,
/// `Created At` columns.
pub fn columns(group: &str, plural: &str) -> Vec<Column> {
    printer_for(group, plural).columns()
}

/// The cells of `object`'s row, one per column of [`columns`] (same order),
/// as upstream's printer (run with `Wide: true`, as the API server does)
/// produces them. Integer cells are JSON numbers, boolean cells JSON
/// booleans, everything else strings.
pub fn row(group: &str, plural: &str, object: &Value, now_unix_secs: i64) -> Vec<Value> {
    printer_for(group, plural).row(object, now_unix_secs as i128 * NANOS)
}

/// The full `meta.k8s.io/v1` `Table` for `objects` (a list, or a single
/// object for a GET), with each row's `object` as the `PartialObjectMetadata`
/// of the object (what `includeObject=Metadata`, kubectl's default, asks
/// for). `resource_version` and `continue_token` go to the table's list
/// metadata (omitted when empty, as upstream's `omitempty`).
pub fn table(
    printer: &dyn TablePrinter,
    objects: &[Value],
    now_unix_secs: i64,
    resource_version: &str,
    continue_token: Option<&str>,
) -> Value {
    let mut metadata = Map::new();
    if !resource_version.is_empty() {
        metadata.insert("resourceVersion".into(), resource_version.into());
    }
    if let Some(c) = continue_token {
        if !c.is_empty() {
            metadata.insert("continue".into(), c.into());
        }
    }
    let column_definitions: Vec<Value> = printer.columns().iter().map(Column::to_json).collect();
    let now = now_unix_secs as i128 * NANOS;
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut r = Map::new();
            r.insert("cells".into(), Value::Array(printer.row(o, now)));
            if let Some(c) = printer.conditions(o) {
                r.insert("conditions".into(), c);
            }
            r.insert("object".into(), partial_object_metadata(o));
            Value::Object(r)
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": column_definitions,
        "rows": rows,
    })
}

/// The `meta.k8s.io/v1` `PartialObjectMetadata` of an object: its
/// `metadata` only.
pub fn partial_object_metadata(object: &Value) -> Value {
    let metadata = match object.get("metadata") {
        Some(m) if m.is_object() => m.clone(),
        _ => Value::Object(Map::new()),
    };
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
    })
}
