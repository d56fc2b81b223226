//! `pods/binding` (the scheduler's bind) and `pods/eviction` (`kubectl drain`).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{json, Value};

use crate::object::{meta_str, metadata_mut};
use crate::rest::{self, Request, Rest};
use crate::status::ApiError;
use crate::status::Target;

fn success(code: u16) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code})
}

/// Binds a pod to a node: sets `spec.nodeName` once and the PodScheduled condition, as
/// upstream's `BindingREST`.
pub async fn bind(rest: &Rest, req: &Request<'_>) -> Result<Value, ApiError> {
    let binding = rest::parse_body(&req.body, req.content_type)?;
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if node.is_empty() {
        return Err(ApiError::invalid(
            "Binding",
            "",
            req.name,
            &[crate::status::FieldError::required("target.name", "")],
        ));
    }
    let key = crate::storage::key(req.resource.info, req.namespace, req.name);
    loop {
        let (mut pod, revision) =
            rest::read(&rest.storage, req.resource, req.namespace, req.name).await?;
        if meta_str(&pod, "deletionTimestamp").is_some() {
            return Err(ApiError::conflict(
                Target::of(req.resource.info, req.name),
                &format!(
                    "pod {} is being deleted, cannot be assigned to a host",
                    req.name
                ),
            ));
        }
        if let Some(current) = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            return Err(ApiError::conflict(
                Target::of(req.resource.info, req.name),
                &format!("pod {} is already assigned to node \"{current}\"", req.name),
            ));
        }
        pod["spec"]["nodeName"] = Value::String(node.clone());
        let now = crate::object::now_rfc3339();
        let conditions = pod["status"]
            .as_object_mut()
            .map(|s| s.entry("conditions").or_insert(json!([])));
        if let Some(Value::Array(conditions)) = conditions {
            conditions.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
            conditions.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}));
        }
        if let Some(Value::Object(annotations)) = binding.pointer("/metadata/annotations") {
            let meta = metadata_mut(&mut pod);
            let target = meta.entry("annotations").or_insert(json!({}));
            for (k, v) in annotations {
                target[k] = v.clone();
            }
        }
        metadata_mut(&mut pod).remove("resourceVersion");
        let bytes = bytes::Bytes::from(serde_json::to_vec(&pod).unwrap_or_default());
        match rest
            .storage
            .store
            .update(key.clone(), revision, bytes)
            .await?
        {
            Ok(_) => return Ok(success(201)),
            Err(None) => {
                return Err(ApiError::not_found(crate::status::Target {
                    group: "",
                    resource: "pods",
                    name: req.name,
                }))
            }
            Err(Some(_)) => continue,
        }
    }
}

/// Evicts a pod, as upstream's `EvictionREST`: unless the pod is already terminal, pending or
/// being deleted, the PodDisruptionBudget selecting it must allow one more disruption, which
/// the eviction takes (decrementing `disruptionsAllowed` and recording the pod in
/// `disruptedPods`) before deleting the pod; otherwise 429 TooManyRequests with upstream's
/// message, which `kubectl drain` retries.
pub async fn evict(rest: &Rest, req: &Request<'_>) -> Result<Value, ApiError> {
    let eviction = rest::parse_body(&req.body, req.content_type)?;
    let options = eviction.get("deleteOptions").cloned().unwrap_or(json!({}));
    let pods = req.resource;
    let (pod, _) = rest::read(&rest.storage, pods, req.namespace, req.name).await?;
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Pending");
    let ignore_budgets = matches!(phase, "Succeeded" | "Failed" | "Pending")
        || meta_str(&pod, "deletionTimestamp").is_some();
    if !ignore_budgets {
        take_disruption(rest, req, &pod).await?;
    }
    let delete = Request {
        body: bytes::Bytes::from(options.to_string()),
        content_type: "application/json",
        subresource: "",
        ..*req
    };
    rest::delete(rest, &delete).await?;
    Ok(success(201))
}

fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Whether a metav1.LabelSelector (JSON) selects `labels`: in policy/v1 an empty selector
/// selects every pod of the namespace, a missing one (or one that does not parse) none.
pub fn selector_selects(selector: Option<&Value>, labels: Option<&Value>) -> bool {
    let Some(selector) = selector
        .filter(|s| !s.is_null())
        .and_then(|s| serde_json::from_value::<LabelSelector>(s.clone()).ok())
    else {
        return false;
    };
    let labels: BTreeMap<String, String> = labels
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default();
    ferry_api::matching::selector_matches(&selector, &labels)
}

fn too_many_requests(cause: String) -> ApiError {
    ApiError {
        code: 429,
        reason: "TooManyRequests",
        message: "Cannot evict pod as it would violate the pod's disruption budget.".into(),
        details: Some(Box::new(crate::status::StatusDetails {
            causes: vec![crate::status::StatusCause::new("DisruptionBudget", cause)],
            ..Default::default()
        })),
    }
}

/// Finds the pod's budget and takes one disruption from it (compare-and-swap on the budget).
async fn take_disruption(rest: &Rest, req: &Request<'_>, pod: &Value) -> Result<(), ApiError> {
    let Some(pdbs) = rest
        .registry
        .resolve("policy", "v1", "poddisruptionbudgets")
    else {
        return Ok(());
    };
    let name = meta_str(pod, "name").unwrap_or("").to_string();
    loop {
        let listed = rest
            .storage
            .store
            .range(ferry_store::RangeRequest::new(
                ferry_store::KeyRange::prefix(crate::storage::prefix(pdbs.info, req.namespace)),
            ))
            .await?;
        let mut matching = Vec::new();
        for kv in &listed.kvs {
            let pdb = rest::decode(&pdbs, &kv.value, kv.mod_revision)?;
            if selector_selects(
                pdb.pointer("/spec/selector"),
                pod.pointer("/metadata/labels"),
            ) {
                matching.push((pdb, kv.key.clone(), kv.mod_revision));
            }
        }
        let (mut pdb, key, revision) = match matching.len() {
            0 => return Ok(()),
            1 => matching.remove(0),
            _ => {
                return Err(ApiError::internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ))
            }
        };
        let pdb_name = meta_str(&pdb, "name").unwrap_or("").to_string();
        let status = |field: &str| {
            pdb.pointer(&format!("/status/{field}"))
                .and_then(Value::as_i64)
                .unwrap_or(0)
        };
        let (healthy, desired) = (status("currentHealthy"), status("desiredHealthy"));
        // An unready pod does not count as healthy: it may go while the budget is met.
        if !pod_ready(pod) && healthy >= desired && desired > 0 {
            return Ok(());
        }
        let generation = pdb
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if status("observedGeneration") < generation {
            return Err(too_many_requests(format!(
                "The disruption budget {pdb_name} is still being processed by the server."
            )));
        }
        let allowed = status("disruptionsAllowed");
        if allowed < 0 {
            return Err(ApiError::forbidden("pdb disruptions allowed is negative"));
        }
        if allowed == 0 {
            return Err(too_many_requests(format!("The disruption budget {pdb_name} needs {desired} healthy pods and has {healthy} currently")));
        }
        if req.query.get("dryRun").is_some_and(|v| v == "All") {
            return Ok(());
        }
        pdb["status"]["disruptionsAllowed"] = json!(allowed - 1);
        let now = crate::object::now_rfc3339();
        if !pdb["status"]["disruptedPods"].is_object() {
            pdb["status"]["disruptedPods"] = json!({});
        }
        pdb["status"]["disruptedPods"][name.as_str()] = json!(now);
        metadata_mut(&mut pdb).remove("resourceVersion");
        match rest
            .storage
            .store
            .update(key, revision, rest::encode(&pdbs, &pdb))
            .await?
        {
            Ok(_) => return Ok(()),
            // The budget moved under us: look again.
            Err(_) => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_select_as_label_selectors_do() {
        let labels = json!({"app": "web", "tier": "front"});
        let cases = [
            (json!({"matchLabels": {"app": "web"}}), true),
            (json!({"matchLabels": {"app": "db"}}), false),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}),
                false,
            ),
            (json!({}), true),
            (Value::Null, false),
        ];
        for (selector, want) in cases {
            assert_eq!(
                selector_selects(Some(&selector), Some(&labels)),
                want,
                "{selector}"
            );
        }
    }
}
