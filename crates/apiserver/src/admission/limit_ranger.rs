//! LimitRanger (upstream's `plugin/pkg/admission/limitranger`): the LimitRanges of a namespace
//! give its new pods' containers default requests and limits (`defaultRequest`, `default`,
//! noted in the `kubernetes.io/limit-ranger` annotation) in the mutating phase, and bound what
//! containers, whole pods and PersistentVolumeClaims may ask for (`min`, `max`,
//! `maxLimitRequestRatio`) in the validating phase. Pod updates are not judged (containers'
//! resources cannot change), as upstream.

use std::collections::BTreeMap;

use async_trait::async_trait;
use ferry_api::resources::{self, Amount, ResourceList};
use k8s_openapi::api::core::v1::PodSpec;
use serde_json::{json, Value};

use super::{Attributes, MutatingPlugin, Operation, ValidatingPlugin};
use crate::reflector::LazyObjects;
use crate::registry::{GroupResource, PODS};
use crate::status::ApiError;
use crate::storage::Storage;

/// The annotation that says what the plugin defaulted.
const ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// PersistentVolumeClaims.
const CLAIMS: GroupResource = GroupResource {
    group: "",
    resource: "persistentvolumeclaims",
};

/// The LimitRanger plugin, with the LimitRanges kept in memory from the store.
pub struct LimitRanger {
    ranges: LazyObjects,
}

impl Default for LimitRanger {
    fn default() -> LimitRanger {
        LimitRanger {
            ranges: LazyObjects::new(&["/limitranges/"]),
        }
    }
}

impl LimitRanger {
    /// Whether the plugin looks at this request, as upstream's `SupportsAttributes`: creates of
    /// pods, creates and updates of claims, never subresources or deletes.
    fn applies(attributes: &Attributes<'_>) -> Option<GroupResource> {
        let resource = GroupResource::of(attributes.resource);
        let applies = attributes.subresource.is_empty()
            && match attributes.operation {
                Operation::Create => resource == PODS || resource == CLAIMS,
                Operation::Update => resource == CLAIMS,
                Operation::Delete => false,
            };
        // An object being deleted is left alone.
        let deleting = attributes
            .old
            .is_some_and(|old| old["metadata"]["deletionTimestamp"].is_string());
        (applies && !deleting).then_some(resource)
    }

    /// The `spec.limits` of the namespace's LimitRanges, one list per LimitRange.
    async fn limits(
        &self,
        storage: &Storage,
        namespace: &str,
    ) -> Result<Vec<Vec<Value>>, ApiError> {
        let view = self.ranges.get(&storage.store).await?;
        Ok(view
            .under(&format!("/limitranges/{namespace}/"))
            .into_iter()
            .map(|range| {
                range["spec"]["limits"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .collect())
    }
}

/// One `spec.limits` item's list `field` (`min`, `default`, …).
fn list(item: &Value, field: &str) -> ResourceList {
    resources::from_json(&item[field])
}

/// Adds the Container-type defaults of one LimitRange to the pod's containers that lack them
/// (upstream's `mergePodResourceRequirements`); returns the annotation's parts.
fn merge_defaults(pod: &mut Value, limits: &[Value]) -> Vec<String> {
    let mut default_requests = ResourceList::new();
    let mut default_limits = ResourceList::new();
    for item in limits.iter().filter(|i| i["type"] == "Container") {
        default_requests.extend(list(item, "defaultRequest"));
        default_limits.extend(list(item, "default"));
    }
    let mut notes = Vec::new();
    if default_requests.is_empty() && default_limits.is_empty() {
        return notes;
    }
    for (field, kind) in [
        ("containers", "container"),
        ("initContainers", "init container"),
    ] {
        let containers = pod["spec"].get_mut(field).and_then(Value::as_array_mut);
        for container in containers.into_iter().flatten() {
            let name = container["name"].as_str().unwrap_or_default().to_string();
            let set_limits = fill(container, "limits", &default_limits);
            let set_requests = fill(container, "requests", &default_requests);
            if !set_requests.is_empty() {
                notes.push(format!(
                    "{} request for {kind} {name}",
                    set_requests.join(", ")
                ));
            }
            if !set_limits.is_empty() {
                notes.push(format!("{} limit for {kind} {name}", set_limits.join(", ")));
            }
        }
    }
    notes
}

/// Sets each of `defaults` the container's `resources.<field>` lacks; the names set, sorted.
fn fill(container: &mut Value, field: &str, defaults: &ResourceList) -> Vec<String> {
    let mut set = Vec::new();
    if defaults.is_empty() {
        return set;
    }
    if !container["resources"].is_object() {
        container["resources"] = json!({});
    }
    if !container["resources"][field].is_object() {
        container["resources"][field] = json!({});
    }
    let Some(present) = container["resources"][field].as_object_mut() else {
        return set;
    };
    for (name, amount) in defaults {
        if !present.contains_key(name) {
            present.insert(name.clone(), json!(amount.to_string()));
            set.push(name.clone());
        }
    }
    set
}

/// Compares as upstream's `requestLimitEnforcedValues`: in thousandths, unless a value is too
/// large for that, then in units.
fn comparable(values: [Option<&Amount>; 3]) -> [i64; 3] {
    let milli_fits = values
        .iter()
        .flatten()
        .all(|a| a.quantity.value() <= i64::MAX / 1000);
    values.map(|a| {
        let q = a.map(|a| a.quantity).unwrap_or_default();
        if milli_fits {
            q.milli_value()
        } else {
            q.value()
        }
    })
}

fn min_constraint(
    kind: &str,
    name: &str,
    enforced: &Amount,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let (request, limit) = (requests.get(name), limits.get(name));
    let [observed_request, observed_limit, minimum] = comparable([request, limit, Some(enforced)]);
    let Some(request) = request else {
        return Some(format!(
            "minimum {name} usage per {kind} is {enforced}.  No request is specified"
        ));
    };
    if observed_request < minimum {
        return Some(format!(
            "minimum {name} usage per {kind} is {enforced}, but request is {request}"
        ));
    }
    match limit {
        Some(limit) if observed_limit < minimum => Some(format!(
            "minimum {name} usage per {kind} is {enforced}, but limit is {limit}"
        )),
        _ => None,
    }
}

fn max_constraint(
    kind: &str,
    name: &str,
    enforced: &Amount,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let (request, limit) = (requests.get(name), limits.get(name));
    let [observed_request, observed_limit, maximum] = comparable([request, limit, Some(enforced)]);
    let Some(limit) = limit else {
        return Some(format!(
            "maximum {name} usage per {kind} is {enforced}.  No limit is specified"
        ));
    };
    if observed_limit > maximum {
        return Some(format!(
            "maximum {name} usage per {kind} is {enforced}, but limit is {limit}"
        ));
    }
    match request {
        Some(request) if observed_request > maximum => Some(format!(
            "maximum {name} usage per {kind} is {enforced}, but request is {request}"
        )),
        _ => None,
    }
}

/// A claim's `max`: on what it requests, as it has no limit.
fn max_request_constraint(
    kind: &str,
    name: &str,
    enforced: &Amount,
    requests: &ResourceList,
) -> Option<String> {
    let request = requests.get(name);
    let [observed, _, maximum] = comparable([request, None, Some(enforced)]);
    let Some(request) = request else {
        return Some(format!(
            "maximum {name} usage per {kind} is {enforced}.  No request is specified"
        ));
    };
    (observed > maximum)
        .then(|| format!("maximum {name} usage per {kind} is {enforced}, but request is {request}"))
}

fn ratio_constraint(
    kind: &str,
    name: &str,
    enforced: &Amount,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let (request, limit) = (requests.get(name), limits.get(name));
    let [observed_request, observed_limit, _] = comparable([request, limit, Some(enforced)]);
    if request.is_none() || observed_request == 0 {
        return Some(format!("{name} max limit to request ratio per {kind} is {enforced}, but no request is specified or request is 0"));
    }
    if limit.is_none() || observed_limit == 0 {
        return Some(format!("{name} max limit to request ratio per {kind} is {enforced}, but no limit is specified or limit is 0"));
    }
    let ratio = observed_limit as f64 / observed_request as f64;
    let (scaled, maximum) = if enforced.quantity.value() <= i64::MAX / 1000 {
        (ratio * 1000.0, enforced.quantity.milli_value() as f64)
    } else {
        (ratio, enforced.quantity.value() as f64)
    };
    (scaled > maximum).then(|| {
        format!("{name} max limit to request ratio per {kind} is {enforced}, but provided ratio is {ratio:.6}")
    })
}

/// Checks `requests`/`limits` against one item's `min`, `max` and `maxLimitRequestRatio`.
fn check(
    item: &Value,
    kind: &str,
    requests: &ResourceList,
    limits: &ResourceList,
    errors: &mut Vec<String>,
) {
    for (name, enforced) in &list(item, "min") {
        errors.extend(min_constraint(kind, name, enforced, requests, limits));
    }
    for (name, enforced) in &list(item, "max") {
        errors.extend(max_constraint(kind, name, enforced, requests, limits));
    }
    for (name, enforced) in &list(item, "maxLimitRequestRatio") {
        errors.extend(ratio_constraint(kind, name, enforced, requests, limits));
    }
}

/// What a pod breaks of one LimitRange (upstream's `PodValidateLimitFunc`).
fn validate_pod(pod: &Value, limits: &[Value]) -> Vec<String> {
    let mut errors = Vec::new();
    let spec: PodSpec = serde_json::from_value(pod["spec"].clone()).unwrap_or_default();
    for item in limits {
        match item["type"].as_str() {
            Some("Container") => {
                for container in spec
                    .containers
                    .iter()
                    .chain(spec.init_containers.iter().flatten())
                {
                    let resources = container.resources.as_ref();
                    let requests = resources::from_api(resources.and_then(|r| r.requests.as_ref()));
                    let limits = resources::from_api(resources.and_then(|r| r.limits.as_ref()));
                    check(item, "Container", &requests, &limits, &mut errors);
                }
            }
            Some("Pod") => {
                let requests = resources::pod_requests(&spec, false);
                let limits = resources::pod_limits(&spec, false);
                check(item, "Pod", &requests, &limits, &mut errors);
            }
            _ => {}
        }
    }
    errors
}

/// What a claim breaks of one LimitRange (upstream's `PersistentVolumeClaimValidateLimitFunc`).
fn validate_claim(claim: &Value, limits: &[Value]) -> Vec<String> {
    let mut errors = Vec::new();
    let requests = resources::from_json(&claim["spec"]["resources"]["requests"]);
    let kind = "PersistentVolumeClaim";
    for item in limits.iter().filter(|i| i["type"] == kind) {
        for (name, enforced) in &list(item, "min") {
            errors.extend(min_constraint(
                kind,
                name,
                enforced,
                &requests,
                &BTreeMap::new(),
            ));
        }
        for (name, enforced) in &list(item, "max") {
            errors.extend(max_request_constraint(kind, name, enforced, &requests));
        }
    }
    errors
}

/// Upstream's aggregate error text: one message alone, several in brackets.
fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

#[async_trait]
impl MutatingPlugin for LimitRanger {
    fn name(&self) -> &'static str {
        "LimitRanger"
    }

    async fn admit(
        &self,
        storage: &Storage,
        attributes: &Attributes<'_>,
        object: &mut Value,
    ) -> Result<(), ApiError> {
        if LimitRanger::applies(attributes) != Some(PODS) {
            return Ok(());
        }
        let mut notes = Vec::new();
        for limits in self.limits(storage, attributes.namespace(object)).await? {
            notes.extend(merge_defaults(object, &limits));
        }
        if notes.is_empty() {
            return Ok(());
        }
        let metadata = &mut object["metadata"];
        if !metadata["annotations"].is_object() {
            metadata["annotations"] = json!({});
        }
        metadata["annotations"][ANNOTATION] =
            json!(format!("LimitRanger plugin set: {}", notes.join("; ")));
        // The class was computed from the spec as sent; the defaults may change it.
        let class = crate::registry::core::pod::default_requests_and_qos(&mut object["spec"]);
        object["status"]["qosClass"] = json!(class);
        Ok(())
    }
}

#[async_trait]
impl ValidatingPlugin for LimitRanger {
    fn name(&self) -> &'static str {
        "LimitRanger"
    }

    async fn validate(
        &self,
        storage: &Storage,
        attributes: &Attributes<'_>,
        object: &Value,
    ) -> Result<(), ApiError> {
        let Some(resource) = LimitRanger::applies(attributes) else {
            return Ok(());
        };
        for limits in self.limits(storage, attributes.namespace(object)).await? {
            let errors = if resource == PODS {
                validate_pod(object, &limits)
            } else {
                validate_claim(object, &limits)
            };
            if !errors.is_empty() {
                return Err(attributes.forbidden(object, &aggregate(&errors)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(containers: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": containers}})
    }

    #[test]
    fn containers_get_the_defaults_they_lack() {
        let limits = [json!({"type": "Container",
            "default": {"cpu": "500m", "memory": "256Mi"},
            "defaultRequest": {"cpu": "100m", "memory": "128Mi"}})];
        let mut p = pod(json!([
            {"name": "bare", "image": "x"},
            {"name": "some", "image": "x", "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "2"}}},
        ]));
        let notes = merge_defaults(&mut p, &limits);
        assert_eq!(
            notes,
            [
                "cpu, memory request for container bare",
                "cpu, memory limit for container bare",
                "memory request for container some",
                "memory limit for container some",
            ]
        );
        assert_eq!(
            p["spec"]["containers"][0]["resources"],
            json!({"requests": {"cpu": "100m", "memory": "128Mi"},
                "limits": {"cpu": "500m", "memory": "256Mi"}})
        );
        assert_eq!(
            p["spec"]["containers"][1]["resources"]["requests"]["cpu"],
            "1"
        );
        let none = [json!({"type": "Pod", "max": {"cpu": "1"}})];
        assert!(merge_defaults(&mut pod(json!([{"name": "c"}])), &none).is_empty());
    }

    #[test]
    fn bounds_are_checked_with_upstreams_words() {
        let limits = [
            json!({"type": "Container", "min": {"cpu": "100m"}, "max": {"cpu": "1", "memory": "1Gi"},
                "maxLimitRequestRatio": {"memory": "2"}}),
            json!({"type": "Pod", "max": {"cpu": "1500m"}}),
        ];
        let c = |name: &str, requests: Value, limits: Value| json!({"name": name, "image": "x", "resources": {"requests": requests, "limits": limits}});
        let fine = pod(json!([c(
            "a",
            json!({"cpu": "200m", "memory": "512Mi"}),
            json!({"cpu": "500m", "memory": "1Gi"})
        )]));
        assert!(validate_pod(&fine, &limits).is_empty());
        let bad = pod(json!([
            c(
                "a",
                json!({"cpu": "50m", "memory": "256Mi"}),
                json!({"cpu": "2", "memory": "1Gi"})
            ),
            c(
                "b",
                json!({"cpu": "1"}),
                json!({"cpu": "1", "memory": "512Mi"})
            ),
        ]));
        assert_eq!(
            validate_pod(&bad, &limits),
            [
                "minimum cpu usage per Container is 100m, but request is 50m",
                "maximum cpu usage per Container is 1, but limit is 2",
                "memory max limit to request ratio per Container is 2, but provided ratio is 4.000000",
                "memory max limit to request ratio per Container is 2, but no request is specified or request is 0",
                "maximum cpu usage per Pod is 1500m, but limit is 3",
            ]
        );
        let unlimited = pod(json!([c("a", json!({"cpu": "200m"}), json!({}))]));
        assert_eq!(
            validate_pod(
                &unlimited,
                &[json!({"type": "Container", "max": {"cpu": "1"}})]
            ),
            ["maximum cpu usage per Container is 1.  No limit is specified"]
        );
        assert_eq!(aggregate(&["one".into()]), "one");
        assert_eq!(aggregate(&["one".into(), "two".into()]), "[one, two]");
    }

    #[test]
    fn claims_are_bounded_by_their_storage_request() {
        let limits = [
            json!({"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"},
            "max": {"storage": "10Gi"}}),
        ];
        let claim = |size: &str| json!({"spec": {"resources": {"requests": {"storage": size}}}});
        assert!(validate_claim(&claim("5Gi"), &limits).is_empty());
        assert_eq!(
            validate_claim(&claim("20Gi"), &limits),
            ["maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"]
        );
        assert_eq!(
            validate_claim(&claim("500Mi"), &limits),
            ["minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"]
        );
    }
}
