//! `metadata.managedFields` and server-side apply, as upstream's
//! `k8s.io/apiserver/pkg/endpoints/handlers/fieldmanager`, over `ferry-smd`: every write
//! records which fields its manager set (operation `Update`), and an apply
//! (`application/apply-patch+yaml`) merges the applied configuration into the object,
//! refusing with 409 fields other managers own unless forced.
//!
//! The manager of a write is its `fieldManager` query parameter, else its `User-Agent` up to the
//! first `/` (kubectl names itself `kubectl-create`, `kubectl-edit`, … in the parameter).

use std::collections::HashMap;

use ferry_smd::{ApplyError, FieldSet, ManagedFields, Path, Schema};
use serde_json::Value;

use ferry_api::registry::ResourceInfo;

use crate::status::{ApiError, FieldError, StatusCause, StatusDetails};

/// The managed fields of one resource: its schema, and the fields each endpoint resets (no
/// one owns them through it).
pub struct FieldManager {
    schema: Schema,
    /// `.status` through the main resource, when the kind has a status subresource.
    reset_main: FieldSet,
    /// `.spec` through the `status` subresource.
    reset_status: FieldSet,
}

impl FieldManager {
    /// The field manager of the resource `info`: the schema of its built-in type, or `schema`,
    /// its custom resource definition's version's (a schema that does not convert is replaced
    /// by the deduced one, where lists are atomic and maps granular).
    pub fn new(info: &ResourceInfo, schema: Option<&Value>) -> FieldManager {
        let schema = match schema {
            Some(schema) => Schema::from_crd(schema),
            None => built_in_schema(info.group, info.version, info.kind),
        };
        let schema = schema.unwrap_or_else(|error| {
            tracing::warn!(kind = info.kind, %error, "no merge schema, fields deduced");
            Schema::deduced()
        });
        let has_status = info.subresource("status").is_some();
        let fields = |names: &[&str]| -> FieldSet {
            let paths: Vec<Path> = names.iter().map(|n| Path::fields(&[n])).collect();
            FieldSet::from_paths(&paths)
        };
        FieldManager {
            schema,
            reset_main: if has_status {
                fields(&["status"])
            } else {
                FieldSet::new()
            },
            reset_status: if has_status {
                fields(&["spec"])
            } else {
                FieldSet::new()
            },
        }
    }

    /// The field manager of a built-in type that is not a resource of its own but a view of
    /// one (the `autoscaling/v1` Scale of the `scale` subresource): no endpoint resets fields.
    pub fn of_type(group: &str, version: &str, kind: &str) -> FieldManager {
        let schema = built_in_schema(group, version, kind).unwrap_or_else(|error| {
            tracing::warn!(kind, %error, "no merge schema, fields deduced");
            Schema::deduced()
        });
        FieldManager {
            schema,
            reset_main: FieldSet::new(),
            reset_status: FieldSet::new(),
        }
    }

    /// The merge of writes through `subresource`, leaving out the fields it resets (none for
    /// kinds without a status: then no filtering at all).
    fn updater(&self, subresource: &str) -> ferry_smd::Updater<'_> {
        let updater = ferry_smd::Updater::new(&self.schema);
        let reset = self.reset(subresource);
        if reset.is_empty() {
            updater
        } else {
            updater.ignoring(reset)
        }
    }

    fn reset(&self, subresource: &str) -> &FieldSet {
        static NOTHING: std::sync::LazyLock<FieldSet> = std::sync::LazyLock::new(FieldSet::new);
        match subresource {
            "" => &self.reset_main,
            "status" => &self.reset_status,
            _ => &NOTHING,
        }
    }

    /// Records a create (`old` `None`), update or non-apply patch by `manager` into `new`'s
    /// `metadata.managedFields`.
    pub fn update(&self, old: Option<&Value>, new: &mut Value, manager: &str, subresource: &str) {
        let old = old.unwrap_or(&Value::Null);
        let managed = ManagedFields::decode_live_or_new(old, new, !subresource.is_empty());
        // Written again below: out of the way of the comparison, without a copy.
        ManagedFields::strip(new);
        let now = crate::object::now_rfc3339();
        let api_version = api_version_of(new);
        let request = request(&api_version, manager, subresource, &now);
        let updated = self
            .updater(subresource)
            .update(old, new, &managed, &request)
            .unwrap_or(managed);
        updated.write_to(new);
    }

    /// Merges the partial object `config` into `live` with the kind's merge schema, recording
    /// no manager (a MutatingAdmissionPolicy's apply configuration).
    pub fn merge_config(
        &self,
        live: &Value,
        config: &Value,
    ) -> Result<Value, ferry_smd::PatchError> {
        ferry_smd::merge_config(&self.schema, live, config)
    }

    /// Applies `config` for `manager` over `live` (`None`: the object does not exist yet); the
    /// object to write, with its managed fields.
    pub fn apply(
        &self,
        live: Option<&Value>,
        config: &Value,
        manager: &str,
        subresource: &str,
        force: bool,
    ) -> Result<Value, ApiError> {
        let live = live.unwrap_or(&Value::Null);
        let managed = ManagedFields::from_object(live).unwrap_or_default();
        let now = crate::object::now_rfc3339();
        let api_version = api_version_of(config);
        let request = request(&api_version, manager, subresource, &now);
        let updater = self.updater(subresource);
        let applied = match updater.apply(live, config, &managed, &request, force) {
            // kubectl's own server-side apply may take over the fields its client-side apply
            // set (upstream's lastAppliedManager): conflicts on fields the last-applied
            // annotation vouches for are forced.
            Err(ApplyError::Conflicts(conflicts)) if manager == KUBECTL => {
                match self.allowed_by_last_applied(live) {
                    Some(allowed) if conflicts.without(&allowed).0.is_empty() => {
                        updater.apply(live, config, &managed, &request, true)
                    }
                    Some(allowed) => Err(ApplyError::Conflicts(conflicts.without(&allowed))),
                    None => Err(ApplyError::Conflicts(conflicts)),
                }
            }
            other => other,
        };
        let (mut applied, managed) = applied.map_err(apply_error)?;
        managed.write_to(&mut applied);
        if manager == KUBECTL {
            keep_last_applied(live, config, &mut applied);
        }
        Ok(applied)
    }

    /// The fields of the live object's last-applied annotation whose values the object still
    /// has (upstream's `allowedConflictsFromLastApplied`); `None` without a usable annotation.
    fn allowed_by_last_applied(&self, live: &Value) -> Option<FieldSet> {
        let text = live
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(LAST_APPLIED))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())?;
        let last_applied: Value = serde_json::from_str(text).ok()?;
        if last_applied.get("apiVersion") != live.get("apiVersion") {
            return None;
        }
        let mut live = live.clone();
        ManagedFields::strip(&mut live);
        let fields = FieldSet::of(&last_applied, &self.schema).ok()?;
        let comparison = ferry_smd::compare(&self.schema, &last_applied, &live);
        Some(
            fields
                .difference(&comparison.modified)
                .difference(&comparison.added)
                .difference(&comparison.removed),
        )
    }
}

/// The `apiVersion` of an object.
/// The merge schema of a built-in type from the OpenAPI definitions (deduced for types without
/// a definition).
fn built_in_schema(
    group: &str,
    version: &str,
    kind: &str,
) -> Result<Schema, ferry_smd::SchemaError> {
    match ferry_api::openapi::definition_name(group, version, kind) {
        Some(root) => Schema::from_openapi(ferry_api::openapi::definitions(), root),
        None => Ok(Schema::deduced()),
    }
}

fn api_version_of(object: &Value) -> String {
    object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// A write by `manager` through `subresource`, now.
fn request<'a>(
    api_version: &'a str,
    manager: &'a str,
    subresource: &'a str,
    now: &'a str,
) -> ferry_smd::Request<'a> {
    ferry_smd::Request {
        manager,
        api_version,
        subresource,
        now,
    }
}

/// The manager name of `kubectl apply --server-side`.
const KUBECTL: &str = "kubectl";

/// The annotation of client-side apply.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Upstream's lastAppliedUpdater: an object that has a last-applied annotation keeps it in
/// step with what kubectl server-side applied, so a later client-side apply computes the
/// right patch.
fn keep_last_applied(live: &Value, config: &Value, applied: &mut Value) {
    let had = live
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .is_some();
    if !had {
        return;
    }
    let mut last = config.clone();
    if let Some(Value::Object(annotations)) = last.pointer_mut("/metadata/annotations") {
        annotations.remove(LAST_APPLIED);
    }
    if let Some(Value::Object(annotations)) = applied.pointer_mut("/metadata/annotations") {
        annotations.insert(LAST_APPLIED.to_string(), Value::String(last.to_string()));
    }
}

/// The Status of a refused apply.
fn apply_error(error: ApplyError) -> ApiError {
    match error {
        ApplyError::Conflicts(conflicts) => ApiError {
            code: 409,
            reason: "Conflict",
            message: conflicts.message(),
            details: Some(Box::new(StatusDetails {
                causes: conflicts
                    .causes()
                    .into_iter()
                    .map(|c| StatusCause {
                        reason: c.reason.to_string(),
                        message: c.message,
                        field: c.field,
                    })
                    .collect(),
                ..StatusDetails::default()
            })),
        },
        ApplyError::ManagedFieldsInConfig => {
            ApiError::bad_request("metadata.managedFields must be nil")
        }
        other => ApiError::internal(other.to_string()),
    }
}

/// The manager of a write: `fieldManager`, else the user agent up to its first `/`.
pub fn manager<'a>(query: &'a HashMap<String, String>, user_agent: &'a str) -> &'a str {
    match query.get("fieldManager") {
        Some(manager) if !manager.is_empty() => manager,
        _ => user_agent.split('/').next().unwrap_or(""),
    }
}

/// Upstream's check of `fieldManager` (`ValidateFieldManager`): at most 128 printable
/// characters; an apply must name one.
pub fn validate_manager(query: &HashMap<String, String>, apply: bool) -> Result<(), ApiError> {
    let manager = query.get("fieldManager").map(String::as_str).unwrap_or("");
    let error = if apply && manager.is_empty() {
        Some(FieldError::required(
            "fieldManager",
            "is required for apply patch",
        ))
    } else if manager.chars().count() > 128 {
        Some(FieldError::invalid_raw(
            "fieldManager",
            format!("{manager:?}"),
            "must be no more than 128 characters",
        ))
    } else if manager
        .chars()
        .any(|c| c.is_control() || !(' '..='~').contains(&c) && c.is_ascii())
    {
        Some(FieldError::invalid_raw(
            "fieldManager",
            format!("{manager:?}"),
            "must only contain printable characters",
        ))
    } else {
        None
    };
    match error {
        Some(error) => Err(ApiError::invalid(
            "PatchOptions",
            "meta.k8s.io",
            "",
            &[error],
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployments() -> FieldManager {
        let info = ferry_api::registry::find("apps", "v1", "deployments").expect("served");
        FieldManager::new(info, None)
    }

    #[test]
    fn a_create_records_its_manager() {
        let fields = deployments();
        let mut deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}});
        fields.update(None, &mut deployment, "kubectl-create", "");
        let entry = &deployment["metadata"]["managedFields"][0];
        assert_eq!(entry["manager"], "kubectl-create");
        assert_eq!(entry["operation"], "Update");
        assert_eq!(entry["apiVersion"], "apps/v1");
        assert_eq!(entry["fieldsType"], "FieldsV1");
        let containers = &entry["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"];
        assert!(containers.get("k:{\"name\":\"web\"}").is_some(), "{entry}");
    }

    #[test]
    fn applies_conflict_with_other_managers_unless_forced() {
        let fields = deployments();
        let config = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}});
        let live = fields
            .apply(None, &config, "alice", "", false)
            .expect("created");
        let mut scaled = config.clone();
        scaled["spec"]["replicas"] = json!(5);
        let err = fields
            .apply(Some(&live), &scaled, "bob", "", false)
            .expect_err("conflict");
        assert_eq!(err.code, 409);
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"alice\": .spec.replicas"
        );
        let forced = fields
            .apply(Some(&live), &scaled, "bob", "", true)
            .expect("forced");
        assert_eq!(forced["spec"]["replicas"], 5);
        let managers: Vec<&str> = forced["metadata"]["managedFields"]
            .as_array()
            .expect("entries")
            .iter()
            .filter_map(|e| e["manager"].as_str())
            .collect();
        assert_eq!(managers, ["alice", "bob"]);
    }

    /// The cost of recording a pod create and a status update (`cargo test --release -p
    /// ferry-apiserver --lib managed_fields_cost -- --ignored --nocapture`).
    #[test]
    #[ignore = "a measurement, not a check"]
    fn managed_fields_cost() {
        let info = ferry_api::registry::find("", "v1", "pods").expect("served");
        let fields = FieldManager::new(info, None);
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "labels": {"app": "bench"},
                "uid": "0b6e0c54-8c8e-4bb0-9d43-3f0c3a1f0e11",
                "creationTimestamp": "2026-12-07T00:00:00Z"},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36",
                "command": ["sleep", "3600"], "imagePullPolicy": "IfNotPresent",
                "resources": {}, "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File"}],
                "dnsPolicy": "ClusterFirst", "enableServiceLinks": true,
                "preemptionPolicy": "PreemptLowerPriority", "priority": 0,
                "restartPolicy": "Always", "schedulerName": "default-scheduler",
                "securityContext": {}, "serviceAccountName": "default",
                "terminationGracePeriodSeconds": 30,
                "tolerations": [{"effect": "NoExecute", "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists", "tolerationSeconds": 300}]},
            "status": {"phase": "Pending", "qosClass": "BestEffort"}});
        let n = 20_000;
        let started = std::time::Instant::now();
        let mut created = pod.clone();
        for _ in 0..n {
            created = pod.clone();
            fields.update(None, &mut created, "bench", "");
        }
        let create = started.elapsed().as_secs_f64() * 1e6 / n as f64;
        let mut running = created.clone();
        running["status"] = json!({"phase": "Running", "podIP": "10.42.0.5",
            "conditions": [{"type": "Ready", "status": "True"}]});
        let started = std::time::Instant::now();
        for _ in 0..n {
            let mut new = running.clone();
            fields.update(Some(&created), &mut new, "kubelet", "status");
        }
        let status = started.elapsed().as_secs_f64() * 1e6 / n as f64;
        let started = std::time::Instant::now();
        for _ in 0..n {
            let _ = pod.clone();
        }
        let clone = started.elapsed().as_secs_f64() * 1e6 / n as f64;
        println!("create {create:.1} µs, status update {status:.1} µs, a clone {clone:.1} µs");
    }

    #[test]
    fn the_manager_comes_from_the_query_or_the_user_agent() {
        let mut query = HashMap::new();
        assert_eq!(manager(&query, "kubectl/v1.32.0 (linux/amd64)"), "kubectl");
        query.insert("fieldManager".to_string(), "kubectl-edit".to_string());
        assert_eq!(manager(&query, "kubectl/v1.32.0"), "kubectl-edit");
        let err = validate_manager(&HashMap::new(), true).expect_err("required");
        assert_eq!(
            err.message,
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
        );
    }
}
