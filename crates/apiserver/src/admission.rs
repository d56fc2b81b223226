//! Admission: the stages between authorization and the store that may change (mutating) or
//! refuse (validating) a write. Each plugin is a trait object in a chain, so later issues add
//! LimitRanger, ResourceQuota, webhooks and policies beside the built-in ones.

use async_trait::async_trait;
use ferry_api::registry::ResourceInfo;
use serde_json::Value;

use crate::object::meta_str;
use crate::server::Server;
use crate::status::{ApiError, Target};

/// One admission plugin. Every method defaults to "admit unchanged".
#[async_trait]
pub trait Admission: Send + Sync {
    /// The plugin's upstream name.
    fn name(&self) -> &'static str;

    /// A create of `object` (already defaulted) in the object's namespace.
    async fn admit_create(
        &self,
        _server: &Server,
        _info: &ResourceInfo,
        _object: &mut Value,
    ) -> Result<(), ApiError> {
        Ok(())
    }

    /// An update from `old` to `new`.
    async fn admit_update(
        &self,
        _server: &Server,
        _info: &ResourceInfo,
        _new: &mut Value,
        _old: &Value,
    ) -> Result<(), ApiError> {
        Ok(())
    }

    /// A delete of `object`.
    async fn admit_delete(
        &self,
        _server: &Server,
        _info: &ResourceInfo,
        _object: &Value,
    ) -> Result<(), ApiError> {
        Ok(())
    }
}

/// The chain, run in order; the first refusal wins.
#[derive(Default)]
pub struct Chain(pub Vec<Box<dyn Admission>>);

impl Chain {
    /// Runs every plugin on a create.
    pub async fn admit_create(
        &self,
        server: &Server,
        info: &ResourceInfo,
        object: &mut Value,
    ) -> Result<(), ApiError> {
        for plugin in &self.0 {
            plugin.admit_create(server, info, object).await?;
        }
        Ok(())
    }

    /// Runs every plugin on an update.
    pub async fn admit_update(
        &self,
        server: &Server,
        info: &ResourceInfo,
        new: &mut Value,
        old: &Value,
    ) -> Result<(), ApiError> {
        for plugin in &self.0 {
            plugin.admit_update(server, info, new, old).await?;
        }
        Ok(())
    }

    /// Runs every plugin on a delete.
    pub async fn admit_delete(
        &self,
        server: &Server,
        info: &ResourceInfo,
        object: &Value,
    ) -> Result<(), ApiError> {
        for plugin in &self.0 {
            plugin.admit_delete(server, info, object).await?;
        }
        Ok(())
    }
}

/// Namespaces that always exist and may not be deleted.
pub const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// NamespaceLifecycle: nothing is created in a namespace that does not exist or is being
/// deleted, and the system namespaces cannot be deleted.
pub struct NamespaceLifecycle;

#[async_trait]
impl Admission for NamespaceLifecycle {
    fn name(&self) -> &'static str {
        "NamespaceLifecycle"
    }

    async fn admit_create(
        &self,
        server: &Server,
        info: &ResourceInfo,
        object: &mut Value,
    ) -> Result<(), ApiError> {
        if !info.namespaced {
            return Ok(());
        }
        let namespace = meta_str(object, "namespace").unwrap_or("").to_string();
        let ns_info = ferry_api::registry::find("", "v1", "namespaces")
            .ok_or_else(|| ApiError::internal("no namespaces resource"))?;
        let target = Target {
            group: "",
            resource: "namespaces",
            name: &namespace,
        };
        let (ns, _) = crate::rest::read(server, ns_info, "", &namespace)
            .await
            .map_err(|e| {
                if e.code == 404 {
                    ApiError::not_found(target)
                } else {
                    e
                }
            })?;
        let terminating = ns.pointer("/status/phase").and_then(Value::as_str)
            == Some("Terminating")
            || meta_str(&ns, "deletionTimestamp").is_some();
        if terminating {
            return Err(ApiError {
                code: 403,
                reason: "Forbidden",
                message: format!(
                    "{} \"{}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                    if info.group.is_empty() { info.plural.to_string() } else { format!("{}.{}", info.plural, info.group) },
                    meta_str(object, "name").or_else(|| meta_str(object, "generateName")).unwrap_or("")
                ),
                details: Some(serde_json::json!({"name": meta_str(object, "name"), "group": info.group, "kind": info.plural,
                    "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {namespace} is being terminated"), "field": "metadata.namespace"}]})),
            });
        }
        Ok(())
    }

    async fn admit_delete(
        &self,
        _server: &Server,
        info: &ResourceInfo,
        object: &Value,
    ) -> Result<(), ApiError> {
        let name = meta_str(object, "name").unwrap_or("");
        if info.group.is_empty()
            && info.plural == "namespaces"
            && IMMORTAL_NAMESPACES.contains(&name)
        {
            return Err(ApiError::forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        Ok(())
    }
}
