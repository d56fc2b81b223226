//! NamespaceLifecycle: nothing is created in a namespace that does not exist or is being
//! deleted, and the system namespaces cannot be deleted.

use async_trait::async_trait;
use serde_json::Value;

use super::{Attributes, MutatingPlugin, Operation};
use crate::object::meta_str;
use crate::registry::{GroupResource, NAMESPACES};
use crate::status::{ApiError, StatusCause, StatusDetails, Target};
use crate::storage::Storage;

/// Namespaces that always exist and may not be deleted.
pub const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// The NamespaceLifecycle plugin.
pub struct NamespaceLifecycle;

#[async_trait]
impl MutatingPlugin for NamespaceLifecycle {
    fn name(&self) -> &'static str {
        "NamespaceLifecycle"
    }

    async fn admit(
        &self,
        storage: &Storage,
        attributes: &Attributes<'_>,
        object: &mut Value,
    ) -> Result<(), ApiError> {
        let info = attributes.resource;
        match attributes.operation {
            Operation::Create if info.namespaced => {}
            Operation::Delete if GroupResource::of(info) == NAMESPACES => {
                let name = meta_str(object, "name").unwrap_or("");
                if IMMORTAL_NAMESPACES.contains(&name) {
                    return Err(ApiError::forbidden(format!(
                        "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
                    )));
                }
                return Ok(());
            }
            _ => return Ok(()),
        }
        let namespace = meta_str(object, "namespace").unwrap_or("").to_string();
        let ns_info = ferry_api::registry::find("", "v1", NAMESPACES.resource)
            .ok_or_else(|| ApiError::internal("no namespaces resource"))?;
        let stored = storage
            .store
            .get(&crate::storage::key(ns_info, "", &namespace))
            .await?
            .ok_or_else(|| ApiError::not_found(Target::of(ns_info, &namespace)))?;
        let ns: Value = serde_json::from_slice(&stored.value)
            .map_err(|e| ApiError::internal(format!("stored namespace is not JSON: {e}")))?;
        let terminating = ns.pointer("/status/phase").and_then(Value::as_str)
            == Some("Terminating")
            || meta_str(&ns, "deletionTimestamp").is_some();
        if !terminating {
            return Ok(());
        }
        let resource = if info.group.is_empty() {
            info.plural.to_string()
        } else {
            format!("{}.{}", info.plural, info.group)
        };
        let name = meta_str(object, "name")
            .or_else(|| meta_str(object, "generateName"))
            .unwrap_or("");
        Err(ApiError {
            code: 403,
            reason: "Forbidden",
            message: format!(
                "{resource} \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated"
            ),
            details: Some(Box::new(StatusDetails {
                name: meta_str(object, "name").unwrap_or("").to_string(),
                group: info.group.to_string(),
                kind: info.plural.to_string(),
                causes: vec![StatusCause {
                    reason: "NamespaceTerminating".into(),
                    message: format!("namespace {namespace} is being terminated"),
                    field: "metadata.namespace".into(),
                }],
                retry_after_seconds: None,
            })),
        })
    }
}
