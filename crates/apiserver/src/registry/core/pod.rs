//! Pods (`pkg/registry/core/pod`): upstream's PodSpec defaults (`SetDefaults_PodSpec`,
//! `SetDefaults_Container`), the QoS class, which fields an update may
//! change, graceful deletion of bound pods (finished by their kubelet), and the field selectors
//! kubelets and controllers use.

use std::collections::BTreeMap;

use ferry_api::qos::{compute_qos_class, default_requests_from_limits, QosClass};
use k8s_openapi::api::core::v1::PodSpec;
use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::registry::core::persistentvolumeclaim::validate_claim_spec;
use crate::registry::generic::{default, is_dns_label, LABEL_MESSAGE};
use crate::registry::Strategy;
use crate::status::FieldError;

/// The Pod strategy.
pub struct PodStrategy;

impl Strategy for PodStrategy {
    fn traced(&self) -> bool {
        true
    }

    fn prepare_for_create(&self, object: &mut Value, _user: Option<&UserInfo>) {
        object["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
        self.default_fields(object);
    }

    /// The spec's defaults, requests from limits, and the QoS class they give (in a status
    /// that has one: a new pod's).
    fn default_fields(&self, object: &mut Value) {
        let Some(spec) = object.get_mut("spec") else {
            return;
        };
        default_pod_spec(spec);
        default(spec, "serviceAccountName", json!("default"));
        if let Some(sa) = spec.get("serviceAccountName").cloned() {
            default(spec, "serviceAccount", sa);
        }
        let qos = default_requests_and_qos(spec);
        if let Some(class) = object.pointer_mut("/status/qosClass") {
            *class = json!(qos);
        }
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        match object.get("spec") {
            Some(spec) => {
                validate_pod_spec(spec, "spec", errors);
                super::ephemeral::validate(spec, errors);
            }
            None => errors.push(FieldError::required("spec.containers", "")),
        }
    }

    /// `ephemeralcontainers` takes only `spec.ephemeralContainers` of the request; the pod
    /// itself (and its status) cannot change their ephemeral containers.
    fn merge_update(
        &self,
        info: &ferry_api::registry::ResourceInfo,
        subresource: &str,
        old: &Value,
        requested: Value,
    ) -> Result<Value, crate::status::ApiError> {
        let ephemeral = |pod: &Value| pod.pointer("/spec/ephemeralContainers").cloned();
        let set = |pod: &mut Value, containers: Option<Value>| {
            if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
                match containers {
                    Some(c) => spec.insert("ephemeralContainers".into(), c),
                    None => spec.remove("ephemeralContainers"),
                };
            }
        };
        match subresource {
            "ephemeralcontainers" => {
                let mut new = old.clone();
                set(&mut new, ephemeral(&requested));
                if let Some(spec) = new.get_mut("spec") {
                    default_pod_spec(spec);
                }
                Ok(new)
            }
            _ => {
                let mut new =
                    crate::registry::generic::merge_update(info, subresource, old, requested)?;
                set(&mut new, ephemeral(old));
                Ok(new)
            }
        }
    }

    fn validate_update(&self, new: &Value, old: &Value, errors: &mut Vec<FieldError>) {
        self.validate(new, errors);
        // The fields upstream lets a pod update change.
        let strip = |v: &Value| {
            let mut spec = v.get("spec").cloned().unwrap_or(json!({}));
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
                // Changed only through pods/ephemeralcontainers, checked below.
                s.remove("ephemeralContainers");
                s.remove("activeDeadlineSeconds");
                s.remove("tolerations");
                s.remove("terminationGracePeriodSeconds");
            }
            spec
        };
        let spec = |pod: &Value| pod.get("spec").cloned().unwrap_or(json!({}));
        super::ephemeral::validate_update(&spec(new), &spec(old), errors);
        if strip(new) != strip(old) {
            errors.push(FieldError::forbidden("spec", "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"));
        }
    }

    fn selectable_fields(&self, object: &Value, fields: &mut BTreeMap<String, String>) {
        for (name, path) in [
            ("spec.nodeName", "/spec/nodeName"),
            ("spec.restartPolicy", "/spec/restartPolicy"),
            ("spec.schedulerName", "/spec/schedulerName"),
            ("spec.serviceAccountName", "/spec/serviceAccountName"),
            ("spec.hostNetwork", "/spec/hostNetwork"),
            ("status.phase", "/status/phase"),
            ("status.podIP", "/status/podIP"),
            ("status.nominatedNodeName", "/status/nominatedNodeName"),
        ] {
            fields.insert(name.into(), ferry_api::selector::text_at(object, path));
        }
        if fields.get("spec.hostNetwork").is_some_and(String::is_empty) {
            fields.insert("spec.hostNetwork".into(), "false".into());
        }
    }

    /// Pods bound to a node get their grace period (default `terminationGracePeriodSeconds`,
    /// 30 s); unbound and finished pods go at once.
    fn grace_period(&self, object: &Value, requested: Option<i64>) -> i64 {
        let finished = matches!(
            object.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded") | Some("Failed")
        );
        if !is_bound(object) || finished {
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

    /// A bound pod with a grace period left is finished by its kubelet (which deletes it with
    /// grace 0), not by the API server.
    fn awaits_graceful_termination(&self, object: &Value) -> bool {
        is_bound(object)
            && object
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                > 0
    }
}

fn is_bound(pod: &Value) -> bool {
    pod.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty())
}

/// Defaults of a PodSpec (`SetDefaults_PodSpec`, `SetDefaults_Container`, …), for pods and the
/// templates of workloads.
pub fn default_pod_spec(spec: &mut Value) {
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "securityContext", json!({}));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "enableServiceLinks", json!(true));
    for list in ["initContainers", "containers", "ephemeralContainers"] {
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
            for source in ["configMap", "secret", "downwardAPI", "projected"] {
                if let Some(s) = v.get_mut(source) {
                    default(s, "defaultMode", json!(420));
                }
            }
        }
    }
}

/// Defaults the pod template spec at `path` of a workload.
pub fn default_template(object: &mut Value, path: &str) {
    if let Some(spec) = object.pointer_mut(path) {
        default_pod_spec(spec);
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

/// Upstream's `SetDefaults_Pod` for resources (requests default to limits), then the QoS class
/// of the defaulted spec (`GetPodQOS`). A spec that does not decode is left as it is (the typed
/// round trip refuses it next).
pub fn default_requests_and_qos(spec: &mut Value) -> &'static str {
    let Ok(mut typed) = serde_json::from_value::<PodSpec>(spec.clone()) else {
        return QosClass::BestEffort.as_str();
    };
    default_requests_from_limits(&mut typed);
    if let Ok(defaulted) = serde_json::to_value(&typed) {
        *spec = defaulted;
    }
    compute_qos_class(&typed).as_str()
}

/// A pod spec's containers: at least one, names unique DNS labels, images set; and its
/// generic ephemeral volumes' claim templates.
pub fn validate_pod_spec(spec: &Value, path: &str, errors: &mut Vec<FieldError>) {
    validate_ephemeral_volumes(spec, path, errors);
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

/// Each `ephemeral` volume's claim template, as upstream's
/// `ValidatePersistentVolumeClaimTemplate`: required; only labels and annotations in its
/// metadata; its spec a claim's.
fn validate_ephemeral_volumes(spec: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let volumes = spec.get("volumes").and_then(Value::as_array);
    for (i, volume) in volumes.into_iter().flatten().enumerate() {
        let Some(ephemeral) = volume.get("ephemeral").filter(|e| !e.is_null()) else {
            continue;
        };
        let path = format!("{path}.volumes[{i}].ephemeral.volumeClaimTemplate");
        let Some(template) = ephemeral
            .get("volumeClaimTemplate")
            .filter(|t| !t.is_null())
        else {
            errors.push(FieldError::required(path, ""));
            continue;
        };
        let set = |v: &Value| match v {
            Value::Null => false,
            Value::String(s) => !s.is_empty(),
            Value::Object(o) => !o.is_empty(),
            Value::Array(a) => !a.is_empty(),
            _ => true,
        };
        let metadata = template.get("metadata").and_then(Value::as_object);
        for (field, _) in metadata
            .into_iter()
            .flatten()
            .filter(|(k, v)| !matches!(k.as_str(), "labels" | "annotations") && set(v))
        {
            errors.push(FieldError::forbidden(
                format!("{path}.metadata.{field}"),
                "cannot be set for an ephemeral volume",
            ));
        }
        let claim = template.get("spec").cloned().unwrap_or_else(|| json!({}));
        validate_claim_spec(&claim, &format!("{path}.spec"), errors);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::generic::{prepare_for_create, tests::resource, validate};

    fn pods() -> &'static crate::registry::Resource {
        resource("", "v1", "pods")
    }

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
        assert_eq!(default_pull_policy("busybox@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn pods_are_defaulted_as_upstream() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}], "resources": {"requests": {"cpu": "1"}}}]}});
        prepare_for_create(pods(), &mut pod, None);
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
            pod.pointer("/spec/serviceAccountName"),
            Some(&json!("default"))
        );
        assert_eq!(
            pod.pointer("/status"),
            Some(&json!({"phase": "Pending", "qosClass": "Burstable"}))
        );
        validate(pods(), &pod, None).expect("valid");
    }

    #[test]
    fn containers_are_validated() {
        let err = validate(pods(), &json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}, {"name": "c", "image": "y"}]}}), None).expect_err("dup");
        assert!(
            err.message
                .contains("spec.containers[1].name: Duplicate value: \"c\""),
            "{}",
            err.message
        );
        let err = validate(
            pods(),
            &json!({"metadata": {"name": "p"}, "spec": {"containers": []}}),
            None,
        )
        .expect_err("none");
        assert!(
            err.message.contains("spec.containers: Required value"),
            "{}",
            err.message
        );
        let err = validate(
            pods(),
            &json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "Bad"}]}}),
            None,
        )
        .expect_err("bad");
        assert!(
            err.message
                .contains("spec.containers[0].name: Invalid value: \"Bad\""),
            "{}",
            err.message
        );
        assert!(
            err.message
                .contains("spec.containers[0].image: Required value"),
            "{}",
            err.message
        );
    }

    #[test]
    fn updates_change_only_what_upstream_allows() {
        let old = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "a"}], "restartPolicy": "Always"}});
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("b");
        new["spec"]["activeDeadlineSeconds"] = json!(10);
        validate(pods(), &new, Some(&old)).expect("image and deadline may change");
        new["spec"]["restartPolicy"] = json!("Never");
        let err = validate(pods(), &new, Some(&old)).expect_err("restartPolicy is fixed");
        assert!(
            err.message
                .contains("spec: Forbidden: pod updates may not change fields other than"),
            "{}",
            err.message
        );
    }

    #[test]
    fn grace_periods() {
        let strategy = PodStrategy;
        let unbound = json!({"spec": {}});
        assert_eq!(strategy.grace_period(&unbound, Some(30)), 0);
        let bound = json!({"spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 45}});
        assert_eq!(strategy.grace_period(&bound, None), 45);
        assert_eq!(strategy.grace_period(&bound, Some(5)), 5);
        assert_eq!(strategy.grace_period(&bound, Some(-3)), 0);
        let finished = json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Succeeded"}});
        assert_eq!(strategy.grace_period(&finished, None), 0);
        let terminating =
            json!({"metadata": {"deletionGracePeriodSeconds": 30}, "spec": {"nodeName": "n1"}});
        assert!(strategy.awaits_graceful_termination(&terminating));
        assert!(!strategy.awaits_graceful_termination(
            &json!({"metadata": {"deletionGracePeriodSeconds": 0}, "spec": {"nodeName": "n1"}})
        ));
    }

    #[test]
    fn limits_become_requests_and_set_the_qos_class() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        prepare_for_create(pods(), &mut pod, None);
        assert_eq!(
            pod.pointer("/spec/containers/0/resources/requests"),
            Some(&json!({"cpu": "1", "memory": "1Gi"}))
        );
        assert_eq!(pod.pointer("/status/qosClass"), Some(&json!("Guaranteed")));
        let mut best = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}});
        prepare_for_create(pods(), &mut best, None);
        assert_eq!(best.pointer("/status/qosClass"), Some(&json!("BestEffort")));
    }

    #[test]
    fn selectable_fields_default_host_network() {
        let mut fields = BTreeMap::new();
        PodStrategy.selectable_fields(&json!({"spec": {"nodeName": "n1"}}), &mut fields);
        assert_eq!(fields["spec.nodeName"], "n1");
        assert_eq!(fields["spec.hostNetwork"], "false");
        assert_eq!(fields["status.phase"], "");
    }

    #[test]
    fn ephemeral_volumes_are_checked_as_upstream() {
        let spec = json!({"containers": [{"name": "c", "image": "busybox"}], "volumes": [
            {"name": "ok", "ephemeral": {"volumeClaimTemplate": {
                "metadata": {"labels": {"a": "b"}, "creationTimestamp": null},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}}},
            {"name": "none", "ephemeral": {}},
            {"name": "named", "ephemeral": {"volumeClaimTemplate": {
                "metadata": {"name": "x"},
                "spec": {"accessModes": ["Sometimes"], "resources": {"requests": {"storage": "0"}}}}}}
        ]});
        let mut errors = Vec::new();
        validate_pod_spec(&spec, "spec", &mut errors);
        let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            lines,
            [
                "spec.volumes[1].ephemeral.volumeClaimTemplate: Required value",
                "spec.volumes[2].ephemeral.volumeClaimTemplate.metadata.name: Forbidden: cannot be set for an ephemeral volume",
                "spec.volumes[2].ephemeral.volumeClaimTemplate.spec.accessModes: Unsupported value: \"Sometimes\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
                "spec.volumes[2].ephemeral.volumeClaimTemplate.spec.resources[storage]: Invalid value: \"0\": must be greater than zero",
            ]
        );
    }
}
