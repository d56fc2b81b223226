//! ResourceQuota (upstream's `resourcequota` admission plugin): a write that would use more of
//! something than a quota of its namespace allows is refused with 403 `exceeded quota: …`; one
//! that fits is charged to the quotas' `status.used` before it is stored, so two writes racing
//! for the last unit cannot both pass. The quota controller recounts `status.used` from what
//! exists (that is also how charges of writes that failed later are given back), and until it
//! has counted a quota (`status.hard` empty), the quota does not constrain.
//!
//! Charges go to the store by compare-and-swap on each quota's revision, retried on conflict,
//! and writes to one namespace take turns here (upstream batches them per namespace too).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use ferry_api::quota::{self, Evaluator};
use ferry_api::resources::{self, ResourceList};
use serde_json::Value;

use super::{Attributes, Operation, ValidatingPlugin};
use crate::reflector::LazyObjects;
use crate::registry::GroupResource;
use crate::status::ApiError;
use crate::storage::Storage;

/// Attempts at charging before giving up on conflicts.
const ATTEMPTS: usize = 5;

/// The ResourceQuota plugin.
pub struct ResourceQuota {
    /// Every quota, to skip namespaces without any at no cost.
    quotas: LazyObjects,
    /// One lock per namespace being charged.
    namespaces: parking_lot::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Default for ResourceQuota {
    fn default() -> ResourceQuota {
        ResourceQuota {
            quotas: LazyObjects::new(&["/resourcequotas/"]),
            namespaces: Default::default(),
        }
    }
}

/// A quota read from the store, with its revision for the compare-and-swap.
struct Stored {
    key: bytes::Bytes,
    revision: i64,
    object: Value,
}

/// What one write does to one quota.
#[derive(Debug, PartialEq)]
enum Charge {
    /// The quota does not constrain what the write uses.
    None,
    /// The quota's `status.used` after the write.
    Used(ResourceList),
}

/// Judges a write using `delta` of a quota (upstream's `CheckRequest` for one quota): refused
/// when it exceeds `status.hard`, or when the quota constrains a resource it has not counted.
fn charge(
    evaluator: &Evaluator,
    quota: &Value,
    object: &Value,
    delta: &ResourceList,
) -> Result<Charge, String> {
    let name = quota["metadata"]["name"].as_str().unwrap_or_default();
    let hard_json = &quota["status"]["hard"];
    let hard = resources::from_json(hard_json);
    let constrained = evaluator.matching(&quota::names(hard_json));
    if constrained.is_empty() || !evaluator.in_scopes(object, &quota::scope_requirements(quota)) {
        return Ok(Charge::None);
    }
    evaluator
        .constraints(&constrained, object)
        .map_err(|why| format!("failed quota: {name}: {why}"))?;
    let used = resources::from_json(&quota["status"]["used"]);
    let uncounted: Vec<&str> = constrained
        .iter()
        .filter(|n| !used.contains_key(*n))
        .map(String::as_str)
        .collect();
    if !uncounted.is_empty() {
        let mut uncounted = uncounted;
        uncounted.sort_unstable();
        return Err(format!(
            "status unknown for quota: {name}, resources: {}",
            uncounted.join(",")
        ));
    }
    let requested = resources::mask(delta, &constrained);
    let requested: ResourceList = requested
        .into_iter()
        .filter(|(_, a)| !a.quantity.is_zero())
        .collect();
    if requested.is_empty() {
        return Ok(Charge::None);
    }
    let mut new_used = used.clone();
    resources::add(&mut new_used, &requested);
    let exceeded: Vec<String> = requested
        .keys()
        .filter(|n| match (new_used.get(*n), hard.get(*n)) {
            (Some(total), Some(limit)) => total.quantity > limit.quantity,
            _ => false,
        })
        .cloned()
        .collect();
    if !exceeded.is_empty() {
        return Err(format!(
            "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
            resources::pretty(&resources::mask(&requested, &exceeded)),
            resources::pretty(&resources::mask(&used, &exceeded)),
            resources::pretty(&resources::mask(&hard, &exceeded)),
        ));
    }
    Ok(Charge::Used(new_used))
}

/// What the write uses beyond what the stored object used (never negative, as upstream).
fn delta(evaluator: &Evaluator, attributes: &Attributes<'_>, object: &Value) -> ResourceList {
    let now = jiff::Timestamp::now();
    let mut usage = evaluator.usage(object, now);
    if let Some(old) = attributes.old {
        let before = evaluator.usage(old, now);
        for (name, amount) in usage.iter_mut() {
            if let Some(previous) = before.get(name) {
                amount.quantity = if amount.quantity > previous.quantity {
                    amount.quantity - previous.quantity
                } else {
                    ferry_api::quantity::Quantity::ZERO
                };
            }
        }
    }
    usage
}

impl ResourceQuota {
    fn lock_for(&self, namespace: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.namespaces
            .lock()
            .entry(namespace.to_string())
            .or_default()
            .clone()
    }

    async fn read_quotas(storage: &Storage, prefix: &str) -> Result<Vec<Stored>, ApiError> {
        let answer = storage
            .store
            .range(ferry_store::RangeRequest::new(
                ferry_store::KeyRange::prefix(prefix.to_string()),
            ))
            .await?;
        Ok(answer
            .kvs
            .into_iter()
            .filter_map(|kv| {
                Some(Stored {
                    object: serde_json::from_slice(&kv.value).ok()?,
                    key: kv.key,
                    revision: kv.mod_revision,
                })
            })
            .collect())
    }
}

#[async_trait]
impl ValidatingPlugin for ResourceQuota {
    fn name(&self) -> &'static str {
        "ResourceQuota"
    }

    async fn validate(
        &self,
        storage: &Storage,
        attributes: &Attributes<'_>,
        object: &Value,
    ) -> Result<(), ApiError> {
        let info = attributes.resource;
        let GroupResource { group, resource } = GroupResource::of(info);
        let Some(evaluator) = Evaluator::for_resource(group, resource) else {
            return Ok(());
        };
        let handled = attributes.subresource.is_empty()
            && info.namespaced
            && match attributes.operation {
                Operation::Create => true,
                Operation::Update => evaluator.charges_updates(),
                Operation::Delete => false,
            };
        let namespace = attributes.namespace(object);
        if !handled || namespace.is_empty() {
            return Ok(());
        }
        let prefix = format!("/resourcequotas/{namespace}/");
        if !self.quotas.get(&storage.store).await?.any_under(&prefix) {
            return Ok(());
        }
        let delta = delta(&evaluator, attributes, object);
        let lock = self.lock_for(namespace);
        let _turn = lock.lock().await;
        for _ in 0..ATTEMPTS {
            let quotas = ResourceQuota::read_quotas(storage, &prefix).await?;
            let mut charges = Vec::new();
            for stored in &quotas {
                match charge(&evaluator, &stored.object, object, &delta) {
                    Ok(Charge::None) => {}
                    Ok(Charge::Used(used)) => charges.push((stored, used)),
                    Err(why) => return Err(attributes.forbidden(object, &why)),
                }
            }
            if attributes.dry_run || charges.is_empty() {
                return Ok(());
            }
            let mut conflict = false;
            for (stored, used) in charges {
                let mut updated = stored.object.clone();
                updated["status"]["used"] = resources::to_json(&used);
                let value = bytes::Bytes::from(serde_json::to_vec(&updated).unwrap_or_default());
                let written = storage
                    .store
                    .update(stored.key.clone(), stored.revision, value)
                    .await?;
                conflict |= written.is_err();
            }
            if !conflict {
                return Ok(());
            }
        }
        let name = crate::object::meta_str(object, "name").unwrap_or_default();
        Err(ApiError::conflict(
            crate::status::Target::of(info, name),
            &format!("the ResourceQuotas of namespace {namespace} kept changing while charging them; please try again"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn quota(hard: Value, used: Value) -> Value {
        json!({"metadata": {"name": "q"}, "spec": {"hard": hard},
            "status": {"hard": hard, "used": used}})
    }

    fn pod(cpu: Option<&str>) -> Value {
        let resources = match cpu {
            Some(cpu) => json!({"requests": {"cpu": cpu}, "limits": {"cpu": cpu}}),
            None => json!({}),
        };
        json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "image": "x", "resources": resources}]}})
    }

    fn judge(quota: &Value, object: &Value) -> Result<Charge, String> {
        let usage = Evaluator::Pods.usage(object, jiff::Timestamp::now());
        charge(&Evaluator::Pods, quota, object, &usage)
    }

    #[test]
    fn writes_within_the_quota_are_charged_and_others_refused() {
        let q = quota(
            json!({"pods": "2", "requests.cpu": "1"}),
            json!({"pods": "1", "requests.cpu": "500m"}),
        );
        assert_eq!(
            judge(&q, &pod(Some("500m"))),
            Ok(Charge::Used(resources::from_json(
                &json!({"pods": "2", "requests.cpu": "1"})
            )))
        );
        assert_eq!(
            judge(&q, &pod(Some("600m"))),
            Err("exceeded quota: q, requested: requests.cpu=600m, used: requests.cpu=500m, limited: requests.cpu=1".into())
        );
        assert_eq!(
            judge(&q, &pod(None)),
            Err("failed quota: q: must specify requests.cpu for: c".into())
        );
        let full = quota(json!({"pods": "2"}), json!({"pods": "2"}));
        assert_eq!(
            judge(&full, &pod(None)),
            Err("exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2".into())
        );
        let uncounted = quota(json!({"pods": "2"}), json!({}));
        assert_eq!(
            judge(&uncounted, &pod(None)),
            Err("status unknown for quota: q, resources: pods".into())
        );
        let fresh = json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "1"}}});
        assert_eq!(
            judge(&fresh, &pod(None)),
            Ok(Charge::None),
            "not yet counted"
        );
        let other = quota(json!({"configmaps": "1"}), json!({"configmaps": "1"}));
        assert_eq!(judge(&other, &pod(None)), Ok(Charge::None));
    }
}
