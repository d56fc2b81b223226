//! The storage plugins (upstream's `plugin/pkg/admission/storage/...`):
//!
//! - StorageObjectInUseProtection: a new claim gets the `kubernetes.io/pvc-protection`
//!   finalizer and a new volume `kubernetes.io/pv-protection`, so neither goes while in use
//!   (the pvc-protection and pv-protection controllers remove them once it is not).
//! - PersistentVolumeClaimResize: a claim's storage request grows only when its StorageClass
//!   allows volume expansion.

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{Attributes, MutatingPlugin, Operation, ValidatingPlugin};
use crate::reflector::LazyObjects;
use crate::registry::GroupResource;
use crate::status::ApiError;
use crate::storage::Storage;

/// The claim finalizer.
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
/// The volume finalizer.
pub const PV_PROTECTION: &str = "kubernetes.io/pv-protection";

const CLAIMS: GroupResource = GroupResource {
    group: "",
    resource: "persistentvolumeclaims",
};
const VOLUMES: GroupResource = GroupResource {
    group: "",
    resource: "persistentvolumes",
};

/// StorageObjectInUseProtection.
pub struct StorageObjectInUseProtection;

/// Adds `finalizer` to `object`'s finalizers unless there.
fn add_finalizer(object: &mut Value, finalizer: &str) {
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let finalizers = meta.entry("finalizers").or_insert_with(|| json!([]));
    if !finalizers.is_array() {
        *finalizers = json!([]);
    }
    if let Some(list) = finalizers.as_array_mut() {
        if !list.iter().any(|f| f == finalizer) {
            list.push(json!(finalizer));
        }
    }
}

#[async_trait]
impl MutatingPlugin for StorageObjectInUseProtection {
    fn name(&self) -> &'static str {
        "StorageObjectInUseProtection"
    }

    async fn admit(
        &self,
        _storage: &Storage,
        attributes: &Attributes<'_>,
        object: &mut Value,
    ) -> Result<(), ApiError> {
        if attributes.operation != Operation::Create || !attributes.subresource.is_empty() {
            return Ok(());
        }
        match GroupResource::of(attributes.resource) {
            CLAIMS => add_finalizer(object, PVC_PROTECTION),
            VOLUMES => add_finalizer(object, PV_PROTECTION),
            _ => {}
        }
        Ok(())
    }
}

/// PersistentVolumeClaimResize, with the classes kept in memory once first needed.
pub struct PersistentVolumeClaimResize {
    classes: LazyObjects,
}

impl Default for PersistentVolumeClaimResize {
    fn default() -> PersistentVolumeClaimResize {
        PersistentVolumeClaimResize {
            classes: LazyObjects::new(&["/storageclasses/"]),
        }
    }
}

fn storage_request(object: &Value) -> Option<ferry_api::quantity::Quantity> {
    object
        .pointer("/spec/resources/requests/storage")
        .and_then(Value::as_str)
        .and_then(|q| ferry_api::quantity::Quantity::parse(q).ok())
}

#[async_trait]
impl ValidatingPlugin for PersistentVolumeClaimResize {
    fn name(&self) -> &'static str {
        "PersistentVolumeClaimResize"
    }

    async fn validate(
        &self,
        storage: &Storage,
        attributes: &Attributes<'_>,
        object: &Value,
    ) -> Result<(), ApiError> {
        let Some(old) = attributes.old else {
            return Ok(());
        };
        if attributes.operation != Operation::Update
            || !attributes.subresource.is_empty()
            || GroupResource::of(attributes.resource) != CLAIMS
        {
            return Ok(());
        }
        let (Some(new_size), Some(old_size)) = (storage_request(object), storage_request(old))
        else {
            return Ok(());
        };
        if new_size <= old_size {
            return Ok(());
        }
        if old.pointer("/status/phase").and_then(Value::as_str) != Some("Bound") {
            return Err(attributes.forbidden(
                object,
                "Only bound persistent volume claims can be expanded",
            ));
        }
        let class = old
            .pointer("/spec/storageClassName")
            .and_then(Value::as_str)
            .unwrap_or("");
        let view = self.classes.get(&storage.store).await?;
        let allowed = !class.is_empty()
            && view
                .get(&format!("/storageclasses/{class}"))
                .and_then(|c| c.get("allowVolumeExpansion").and_then(Value::as_bool))
                .unwrap_or(false);
        if !allowed {
            return Err(attributes.forbidden(
                object,
                "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finalizers_are_added_once() {
        let mut claim = json!({"metadata": {"name": "c", "finalizers": ["other"]}});
        add_finalizer(&mut claim, PVC_PROTECTION);
        add_finalizer(&mut claim, PVC_PROTECTION);
        assert_eq!(
            claim["metadata"]["finalizers"],
            json!(["other", PVC_PROTECTION])
        );
        let mut volume = json!({"metadata": {"name": "v"}});
        add_finalizer(&mut volume, PV_PROTECTION);
        assert_eq!(volume["metadata"]["finalizers"], json!([PV_PROTECTION]));
    }
}
