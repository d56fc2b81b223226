//! Kind-specific behaviour of the REST verbs, as upstream's per-resource strategies
//! (`PrepareForCreate`, `PrepareForUpdate`, `Validate`, `ValidateUpdate`) and defaulting
//! (`SetDefaults_*`): what a create resets, what a status update may touch, when `generation`
//! moves, which fields are required or immutable.

use ferry_api::registry::ResourceInfo;
use ferry_store::LeaseId;
use serde_json::{json, Map, Value};

use crate::object::{meta_str, metadata_mut};
use crate::server::Server;
use crate::status::{ApiError, FieldError};

/// Kinds whose `metadata.generation` tracks spec changes.
fn tracks_generation(info: &ResourceInfo) -> bool {
    matches!(
        info.group,
        "apps"
            | "batch"
            | "policy"
            | "autoscaling"
            | "networking.k8s.io"
            | "apiextensions.k8s.io"
            | "admissionregistration.k8s.io"
    )
}

fn has_status(info: &ResourceInfo) -> bool {
    info.subresources.iter().any(|s| s.name == "status")
}

fn is(info: &ResourceInfo, group: &str, plural: &str) -> bool {
    info.group == group && info.plural == plural
}

/// Sets `object[key]` if absent.
fn default(object: &mut Value, key: &str, value: Value) {
    if let Value::Object(map) = object {
        map.entry(key.to_string()).or_insert(value);
    }
}

/// Defaults of a PodSpec (`SetDefaults_PodSpec`, `SetDefaults_Container`, …).
fn default_pod_spec(spec: &mut Value) {
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "securityContext", json!({}));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "enableServiceLinks", json!(true));
    for list in ["initContainers", "containers"] {
        if let Some(Value::Array(containers)) = spec.get_mut(list) {
            for c in containers {
                let image = c
                    .get("image")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                default(c, "imagePullPolicy", json!(default_pull_policy(&image)));
                default(c, "terminationMessagePath", json!("/dev/termination-log"));
                default(c, "terminationMessagePolicy", json!("File"));
                default(c, "resources", json!({}));
                if let Some(Value::Array(ports)) = c.get_mut("ports") {
                    for p in ports {
                        default(p, "protocol", json!("TCP"));
                    }
                }
            }
        }
    }
    if let Some(Value::Array(volumes)) = spec.get_mut("volumes") {
        for v in volumes {
            for (source, mode_field) in [
                ("configMap", "defaultMode"),
                ("secret", "defaultMode"),
                ("downwardAPI", "defaultMode"),
                ("projected", "defaultMode"),
            ] {
                if let Some(s) = v.get_mut(source) {
                    default(s, mode_field, json!(420));
                }
            }
        }
    }
}

/// `IfNotPresent` unless the image has no tag or the tag is `latest` (`Always`).
pub fn default_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

/// Defaults a pod template's spec (workload kinds).
fn default_template(object: &mut Value, path: &str) {
    if let Some(spec) = object.pointer_mut(path) {
        default_pod_spec(spec);
    }
}

/// The QoS class of a pod spec (`GetPodQOS`).
pub fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .flat_map(|l| spec.get(*l).and_then(Value::as_array).into_iter().flatten())
        .collect();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in containers {
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        let has = |m: Option<&Map<String, Value>>, r: &str| m.is_some_and(|m| m.contains_key(r));
        for r in ["cpu", "memory"] {
            if has(requests, r) || has(limits, r) {
                any = true;
            }
            let l = limits.and_then(|m| m.get(r));
            let q = requests.and_then(|m| m.get(r)).or(l);
            if l.is_none() || q != l {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Upstream's Job strategy: unless `manualSelector`, the selector is generated from the Job's
/// UID and the template gets the matching labels (old and new spellings).
fn generate_job_selector(object: &mut Value) {
    if object
        .pointer("/spec/manualSelector")
        .and_then(Value::as_bool)
        == Some(true)
        || object.pointer("/spec/selector").is_some()
    {
        return;
    }
    let uid = object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert(
            "selector".into(),
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
        );
    }
    if let Some(template) = object
        .pointer_mut("/spec/template")
        .and_then(Value::as_object_mut)
    {
        let meta = template.entry("metadata").or_insert(json!({}));
        if let Some(meta) = meta.as_object_mut() {
            let labels = meta.entry("labels").or_insert(json!({}));
            if let Some(labels) = labels.as_object_mut() {
                labels.insert("batch.kubernetes.io/controller-uid".into(), json!(uid));
                labels.insert("batch.kubernetes.io/job-name".into(), json!(name));
                labels.insert("controller-uid".into(), json!(uid));
                labels.insert("job-name".into(), json!(name));
            }
        }
    }
}

/// ObjectMeta's list and map fields are `omitempty` upstream: an empty one (a patch that
/// removed the last owner reference or finalizer) is not stored, so it reads back as absent.
fn drop_empty_metadata(object: &mut Value) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "ownerReferences",
            "finalizers",
            "labels",
            "annotations",
            "managedFields",
        ] {
            let empty = match meta.get(field) {
                Some(Value::Array(a)) => a.is_empty(),
                Some(Value::Object(o)) => o.is_empty(),
                Some(Value::Null) => true,
                _ => false,
            };
            if empty {
                meta.remove(field);
            }
        }
    }
}

/// What a create resets and defaults.
pub fn prepare_for_create(info: &ResourceInfo, object: &mut Value) {
    drop_empty_metadata(object);
    if tracks_generation(info) {
        metadata_mut(object).insert("generation".into(), json!(1));
    }
    if has_status(info) && !is(info, "", "nodes") && !is(info, "", "persistentvolumes") {
        object["status"] = json!({});
    }
    match (info.group, info.plural) {
        ("", "namespaces") => {
            object["status"] = json!({"phase": "Active"});
            let spec = object
                .as_object_mut()
                .map(|o| o.entry("spec").or_insert(json!({})));
            if let Some(spec) = spec {
                default(spec, "finalizers", json!(["kubernetes"]));
            }
        }
        ("", "pods") => {
            if let Some(spec) = object.get_mut("spec") {
                default_pod_spec(spec);
                default(spec, "serviceAccountName", json!("default"));
                if let Some(sa) = spec.get("serviceAccountName").cloned() {
                    default(spec, "serviceAccount", sa);
                }
                default(spec, "priority", json!(0));
                default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
                add_default_tolerations(spec);
            }
            let qos = object.get("spec").map(qos_class).unwrap_or("BestEffort");
            object["status"] = json!({"phase": "Pending", "qosClass": qos});
        }
        ("", "services") => {
            if let Some(spec) = object.get_mut("spec") {
                default(spec, "type", json!("ClusterIP"));
                default(spec, "sessionAffinity", json!("None"));
                default(spec, "internalTrafficPolicy", json!("Cluster"));
                if let Some(Value::Array(ports)) = spec.get_mut("ports") {
                    for p in ports {
                        default(p, "protocol", json!("TCP"));
                        if let Some(port) = p.get("port").cloned() {
                            default(p, "targetPort", port);
                        }
                    }
                }
            }
            object["status"] = json!({"loadBalancer": {}});
        }
        ("", "secrets") => default(object, "type", json!("Opaque")),
        ("apps", "deployments") => {
            if let Some(spec) = object.get_mut("spec") {
                default(spec, "replicas", json!(1));
                default(spec, "revisionHistoryLimit", json!(10));
                default(spec, "progressDeadlineSeconds", json!(600));
                default(spec, "strategy", json!({}));
                if let Some(strategy) = spec.get_mut("strategy") {
                    default(strategy, "type", json!("RollingUpdate"));
                }
                if spec.pointer("/strategy/type").and_then(Value::as_str) == Some("RollingUpdate") {
                    if let Some(strategy) = spec.get_mut("strategy") {
                        default(strategy, "rollingUpdate", json!({}));
                        if let Some(ru) = strategy.get_mut("rollingUpdate") {
                            default(ru, "maxUnavailable", json!("25%"));
                            default(ru, "maxSurge", json!("25%"));
                        }
                    }
                }
            }
            default_template(object, "/spec/template/spec");
        }
        ("apps", "replicasets") | ("", "replicationcontrollers") => {
            if let Some(spec) = object.get_mut("spec") {
                default(spec, "replicas", json!(1));
            }
            default_template(object, "/spec/template/spec");
        }
        ("apps", "statefulsets") => {
            if let Some(spec) = object.get_mut("spec") {
                default(spec, "replicas", json!(1));
                default(spec, "podManagementPolicy", json!("OrderedReady"));
                default(spec, "revisionHistoryLimit", json!(10));
                default(
                    spec,
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
                );
                default(
                    spec,
                    "persistentVolumeClaimRetentionPolicy",
                    json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
                );
            }
            default_template(object, "/spec/template/spec");
        }
        ("apps", "daemonsets") => {
            if let Some(spec) = object.get_mut("spec") {
                default(spec, "revisionHistoryLimit", json!(10));
                default(
                    spec,
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
                );
            }
            default_template(object, "/spec/template/spec");
        }
        ("batch", "jobs") => {
            generate_job_selector(object);
            if let Some(spec) = object.get_mut("spec") {
                default(spec, "parallelism", json!(1));
                default(spec, "completions", json!(1));
                default(spec, "backoffLimit", json!(6));
                default(spec, "completionMode", json!("NonIndexed"));
                default(spec, "suspend", json!(false));
                default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
                default(spec, "manualSelector", json!(false));
            }
            if let Some(spec) = object.pointer_mut("/spec/template/spec") {
                default(spec, "restartPolicy", json!("Never"));
                default_pod_spec(spec);
            }
        }
        ("batch", "cronjobs") => {
            if let Some(spec) = object.get_mut("spec") {
                default(spec, "concurrencyPolicy", json!("Allow"));
                default(spec, "suspend", json!(false));
                default(spec, "successfulJobsHistoryLimit", json!(3));
                default(spec, "failedJobsHistoryLimit", json!(1));
            }
            default_template(object, "/spec/jobTemplate/spec/template/spec");
        }
        _ => {}
    }
}

/// DefaultTolerationSeconds admission: tolerate not-ready and unreachable nodes for 300 s.
fn add_default_tolerations(spec: &mut Value) {
    let tolerations = spec
        .as_object_mut()
        .map(|s| s.entry("tolerations").or_insert(json!([])));
    let Some(Value::Array(tolerations)) = tolerations else {
        return;
    };
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let present = tolerations.iter().any(|t| {
            t.get("key").and_then(Value::as_str) == Some(key)
                || (t.get("key").is_none()
                    && t.get("operator").and_then(Value::as_str) == Some("Exists"))
        });
        if !present {
            tolerations.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
}

/// On create, after [`prepare_for_create`]: what the server records about who asked (a
/// CertificateSigningRequest's `spec.username`, `groups`, …).
pub fn set_requesting_user(
    info: &ResourceInfo,
    object: &mut Value,
    user: Option<&crate::auth::UserInfo>,
) {
    if is(info, "certificates.k8s.io", "certificatesigningrequests") {
        crate::csr::set_requesting_user(object, user);
    }
}

/// What an update may change: a status update takes only the status; an update of the main
/// resource of a kind with a status subresource keeps the old status.
pub fn merge_update(
    info: &ResourceInfo,
    subresource: &str,
    old: &Value,
    mut requested: Value,
) -> Result<Value, ApiError> {
    if is(info, "certificates.k8s.io", "certificatesigningrequests") {
        return crate::csr::merge_update(subresource, old, &requested).ok_or_else(|| {
            ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({subresource})"
            ))
        });
    }
    match subresource {
        "" => {
            if has_status(info) {
                match old.get("status") {
                    Some(s) => requested["status"] = s.clone(),
                    None => {
                        if let Value::Object(m) = &mut requested {
                            m.remove("status");
                        }
                    }
                }
            }
            Ok(requested)
        }
        "status" => {
            let mut new = old.clone();
            match requested.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Value::Object(m) = &mut new {
                        m.remove("status");
                    }
                }
            }
            // Upstream lets status updates set labels and annotations too.
            for field in ["labels", "annotations"] {
                if let Some(v) = requested.get("metadata").and_then(|m| m.get(field)) {
                    metadata_mut(&mut new).insert(field.into(), v.clone());
                }
            }
            Ok(new)
        }
        "finalize" if is(info, "", "namespaces") => {
            let mut new = old.clone();
            new["spec"]["finalizers"] = requested
                .pointer("/spec/finalizers")
                .cloned()
                .unwrap_or(json!([]));
            Ok(new)
        }
        other => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({other})"
        ))),
    }
}

/// `generation` moves when the spec changes; services keep their allocated IPs and ports.
pub fn prepare_for_update(info: &ResourceInfo, new: &mut Value, old: &Value) {
    drop_empty_metadata(new);
    if is(info, "", "services") {
        crate::service::carry_over(new, old);
    }
    if !tracks_generation(info) {
        return;
    }
    let generation = old
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let next = if new.get("spec") != old.get("spec") {
        generation + 1
    } else {
        generation
    };
    metadata_mut(new).insert("generation".into(), json!(next));
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

const SUBDOMAIN_MESSAGE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MESSAGE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// Names that must be DNS labels rather than subdomains.
fn name_is_label(info: &ResourceInfo) -> bool {
    matches!(
        (info.group, info.plural),
        ("", "namespaces") | ("", "services") | ("apps", "statefulsets") | ("batch", "cronjobs")
    )
}

/// Validation (`ValidateObjectMeta` plus the common per-kind rules), and on update the
/// immutable fields. Fails with upstream's 422.
pub fn validate(info: &ResourceInfo, object: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    let name = meta_str(object, "name").unwrap_or("");
    if name.is_empty() {
        errors.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else if name_is_label(info) {
        if !is_dns_label(name) {
            errors.push(FieldError::invalid("metadata.name", name, LABEL_MESSAGE));
        }
    } else if !is_dns_subdomain(name) && !matches!(info.group, "rbac.authorization.k8s.io") {
        errors.push(FieldError::invalid(
            "metadata.name",
            name,
            SUBDOMAIN_MESSAGE,
        ));
    }
    if let Some(Value::Object(labels)) = object.pointer("/metadata/labels") {
        for (k, v) in labels {
            let value = v.as_str().unwrap_or("");
            let key_name = k.rsplit('/').next().unwrap_or(k);
            let ok_key = !key_name.is_empty()
                && key_name.len() <= 63
                && key_name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !ok_key {
                errors.push(FieldError::invalid("metadata.labels", k.as_str(), "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"));
            }
            let ok_value = value.len() <= 63
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !ok_value || !v.is_string() {
                errors.push(FieldError::invalid("metadata.labels", value, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"));
            }
        }
    }
    match (info.group, info.plural) {
        ("", "pods") => {
            if let Some(spec) = object.get("spec") {
                validate_pod_spec(spec, "spec", &mut errors);
            } else {
                errors.push(FieldError::required("spec.containers", ""));
            }
            if let Some(old) = old {
                let strip = |v: &Value| {
                    let mut spec = v.get("spec").cloned().unwrap_or(json!({}));
                    // The fields upstream lets a pod update change.
                    for c in spec
                        .get_mut("containers")
                        .and_then(Value::as_array_mut)
                        .into_iter()
                        .flatten()
                    {
                        if let Value::Object(c) = c {
                            c.remove("image");
                        }
                    }
                    if let Value::Object(s) = &mut spec {
                        s.remove("activeDeadlineSeconds");
                        s.remove("tolerations");
                        s.remove("terminationGracePeriodSeconds");
                    }
                    spec
                };
                if strip(object) != strip(old) {
                    errors.push(FieldError::forbidden("spec", "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"));
                }
            }
        }
        ("apps", "deployments")
        | ("apps", "replicasets")
        | ("apps", "statefulsets")
        | ("apps", "daemonsets") => {
            validate_workload(object, &mut errors);
            if let Some(old) = old {
                if object.pointer("/spec/selector") != old.pointer("/spec/selector") {
                    errors.push(FieldError::invalid_raw(
                        "spec.selector",
                        selector_text(object.pointer("/spec/selector")),
                        "field is immutable",
                    ));
                }
            }
        }
        ("certificates.k8s.io", "certificatesigningrequests") => {
            crate::csr::validate(object, old, &mut errors)
        }
        ("", "configmaps") | ("", "secrets") => {
            for field in ["data", "binaryData", "stringData"] {
                if let Some(Value::Object(data)) = object.get(field) {
                    for k in data.keys() {
                        if k.is_empty()
                            || k.len() > 253
                            || !k
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                        {
                            errors.push(FieldError::invalid(format!("{field}[{k}]"), k.as_str(), "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"));
                        }
                    }
                }
            }
        }
        _ => {}
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(info.kind, info.group, name, &errors))
    }
}

fn selector_text(selector: Option<&Value>) -> String {
    selector.map(|s| s.to_string()).unwrap_or_default()
}

fn validate_pod_spec(spec: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let containers = spec.get("containers").and_then(Value::as_array);
    if containers.is_none_or(|c| c.is_empty()) {
        errors.push(FieldError::required(format!("{path}.containers"), ""));
    }
    let mut names = std::collections::BTreeSet::new();
    for list in ["initContainers", "containers"] {
        for (i, c) in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let name = c.get("name").and_then(Value::as_str).unwrap_or("");
            if name.is_empty() {
                errors.push(FieldError::required(format!("{path}.{list}[{i}].name"), ""));
            } else if !is_dns_label(name) {
                errors.push(FieldError::invalid(
                    format!("{path}.{list}[{i}].name"),
                    name,
                    LABEL_MESSAGE,
                ));
            } else if !names.insert(name.to_string()) {
                errors.push(FieldError::duplicate(
                    format!("{path}.{list}[{i}].name"),
                    name,
                ));
            }
            if c.get("image")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                errors.push(FieldError::required(
                    format!("{path}.{list}[{i}].image"),
                    "",
                ));
            }
        }
    }
}

fn validate_workload(object: &Value, errors: &mut Vec<FieldError>) {
    let selector = object.pointer("/spec/selector");
    let match_labels = selector
        .and_then(|s| s.get("matchLabels"))
        .and_then(Value::as_object);
    let expressions = selector
        .and_then(|s| s.get("matchExpressions"))
        .and_then(Value::as_array);
    if selector.is_none()
        || (match_labels.is_none_or(|m| m.is_empty()) && expressions.is_none_or(|e| e.is_empty()))
    {
        errors.push(FieldError::required("spec.selector", ""));
    }
    let template_labels = object
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object);
    if let Some(match_labels) = match_labels {
        let matches = match_labels
            .iter()
            .all(|(k, v)| template_labels.and_then(|t| t.get(k)) == Some(v));
        if !matches {
            let shown = template_labels
                .map(|t| {
                    let pairs: Vec<String> = t.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
                    format!("map[string]string{{{}}}", pairs.join(", "))
                })
                .unwrap_or_else(|| "map[string]string(nil)".into());
            errors.push(FieldError::invalid_raw(
                "spec.template.metadata.labels",
                shown,
                "`selector` does not match template `labels`",
            ));
        }
    }
    if let Some(replicas) = object.pointer("/spec/replicas").and_then(Value::as_i64) {
        if replicas < 0 {
            errors.push(FieldError::invalid_raw(
                "spec.replicas",
                replicas.to_string(),
                "must be greater than or equal to 0",
            ));
        }
    }
    match object.pointer("/spec/template/spec") {
        Some(spec) => validate_pod_spec(spec, "spec.template.spec", errors),
        None => errors.push(FieldError::required("spec.template.spec.containers", "")),
    }
}

/// The grace period of a delete: pods bound to a node get theirs (default
/// `terminationGracePeriodSeconds`, 30 s); everything else, and unbound pods, go at once.
pub fn grace_period(info: &ResourceInfo, object: &Value, requested: Option<i64>) -> i64 {
    if !is(info, "", "pods") {
        return 0;
    }
    let bound = object
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        object.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded") | Some("Failed")
    );
    if !bound || finished {
        return 0;
    }
    requested
        .or_else(|| {
            object
                .pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
        })
        .unwrap_or(30)
        .max(0)
}

/// The store lease a new object is attached to: Events live one hour (upstream's
/// `--event-ttl`), sharing a lease per minute as upstream's lease manager does.
pub async fn lease_for(server: &Server, info: &ResourceInfo) -> Result<LeaseId, ApiError> {
    if info.plural != "events" {
        return Ok(0);
    }
    server.event_lease().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_api::registry::find;

    #[test]
    fn pull_policy_by_tag() {
        assert_eq!(default_pull_policy("busybox"), "Always");
        assert_eq!(default_pull_policy("busybox:latest"), "Always");
        assert_eq!(default_pull_policy("busybox:1.36"), "IfNotPresent");
        assert_eq!(default_pull_policy("127.0.0.1:5000/busybox"), "Always");
        assert_eq!(
            default_pull_policy("127.0.0.1:5000/busybox:v1"),
            "IfNotPresent"
        );
    }

    #[test]
    fn pods_are_defaulted_as_upstream() {
        let info = find("", "v1", "pods").expect("pods");
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}], "resources": {"requests": {"cpu": "1"}}}]}});
        prepare_for_create(info, &mut pod);
        assert_eq!(pod.pointer("/spec/restartPolicy"), Some(&json!("Always")));
        assert_eq!(
            pod.pointer("/spec/containers/0/imagePullPolicy"),
            Some(&json!("Always"))
        );
        assert_eq!(
            pod.pointer("/spec/containers/0/ports/0/protocol"),
            Some(&json!("TCP"))
        );
        assert_eq!(
            pod.pointer("/spec/tolerations")
                .and_then(Value::as_array)
                .map(Vec::len),
            Some(2)
        );
        assert_eq!(
            pod.pointer("/status"),
            Some(&json!({"phase": "Pending", "qosClass": "Burstable"}))
        );
        validate(info, &pod, None).expect("valid");
    }

    #[test]
    fn deployment_selector_must_match_template() {
        let info = find("apps", "v1", "deployments").expect("deployments");
        let mut d = json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "other"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
        prepare_for_create(info, &mut d);
        assert_eq!(
            d.pointer("/spec/strategy/rollingUpdate/maxSurge"),
            Some(&json!("25%"))
        );
        let err = validate(info, &d, None).expect_err("invalid");
        assert_eq!(err.code, 422);
        assert!(err.message.contains("spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`"), "{}", err.message);
    }

    #[test]
    fn names_are_checked() {
        let cm = find("", "v1", "configmaps").expect("configmaps");
        let err =
            validate(cm, &json!({"metadata": {"name": "Bad_Name"}}), None).expect_err("invalid");
        assert!(err.message.starts_with("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"));
        let ns = find("", "v1", "namespaces").expect("namespaces");
        assert!(validate(ns, &json!({"metadata": {"name": "a.b"}}), None).is_err());
        let pods = find("", "v1", "pods").expect("pods");
        let err = validate(pods, &json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}, {"name": "c", "image": "y"}]}}), None).expect_err("dup");
        assert!(
            err.message
                .contains("spec.containers[1].name: Duplicate value: \"c\""),
            "{}",
            err.message
        );
    }

    #[test]
    fn qos_classes() {
        assert_eq!(
            qos_class(&json!({"containers": [{"name": "c"}]})),
            "BestEffort"
        );
        let g = json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]});
        assert_eq!(qos_class(&g), "Guaranteed");
    }
}
