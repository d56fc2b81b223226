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

/// What a request does, for [`node_restriction`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A create.
    Create,
    /// An update or patch (of the object or a subresource).
    Update,
    /// A delete.
    Delete,
}

/// Upstream's NodeRestriction admission plugin, for the writes ferry's nodes make: a node
/// (`system:node:<n>` in `system:nodes`) may create and change only its own Node, may not create
/// pods (upstream allows mirror pods only, which ferry has not), and may delete pods and write
/// their status only when they are bound to it (`spec.nodeName == n`). `object` is the stored
/// object (the new one for a create). Everyone else passes.
pub fn node_restriction(
    user: Option<&crate::auth::UserInfo>,
    info: &ResourceInfo,
    operation: Operation,
    object: &Value,
) -> Result<(), ApiError> {
    let Some(node) = user.and_then(crate::auth::node_name) else {
        return Ok(());
    };
    if !info.group.is_empty() {
        return Ok(());
    }
    let name = meta_str(object, "name").unwrap_or_default();
    let forbidden = |why: String| {
        Err(ApiError::forbidden(format!(
            "{} \"{name}\" is forbidden: {why}",
            info.plural
        )))
    };
    match (info.plural, operation) {
        ("nodes", _) if name != node => {
            forbidden(format!("node \"{node}\" is not allowed to modify node \"{name}\""))
        }
        ("pods", Operation::Create) => forbidden(format!(
            "pod does not have \"kubernetes.io/config.mirror\" annotation, node \"{node}\" can only create mirror pods"
        )),
        ("pods", op) => {
            let bound = object.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node);
            if bound {
                return Ok(());
            }
            let what = if op == Operation::Delete {
                "delete pods"
            } else {
                "update pod status for pods"
            };
            forbidden(format!(
                "node \"{node}\" can only {what} with spec.nodeName set to itself"
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod node_restriction_tests {
    use super::*;
    use crate::auth::UserInfo;
    use serde_json::json;

    fn info(plural: &'static str) -> &'static ResourceInfo {
        ferry_api::registry::find("", "v1", plural).expect("registered")
    }

    #[test]
    fn nodes_touch_only_their_own_node_and_pods() {
        let n1 = UserInfo {
            name: "system:node:n1".into(),
            uid: String::new(),
            groups: vec!["system:nodes".into()],
        };
        let admin = UserInfo {
            name: "admin".into(),
            uid: String::new(),
            groups: vec!["system:masters".into()],
        };
        let node = |name: &str| json!({"metadata": {"name": name}});
        let pod = |bound: &str| json!({"metadata": {"name": "p"}, "spec": {"nodeName": bound}});
        let (nodes, pods) = (info("nodes"), info("pods"));
        let check = |user: &UserInfo, info: &ResourceInfo, op, object: &Value| {
            let info: &ResourceInfo = info;
            node_restriction(Some(user), info, op, object)
                .map_err(|e| e.to_status()["message"].clone())
        };
        assert!(check(&n1, nodes, Operation::Create, &node("n1")).is_ok());
        assert_eq!(
            check(&n1, nodes, Operation::Create, &node("n2")),
            Err(json!(
                "nodes \"n2\" is forbidden: node \"n1\" is not allowed to modify node \"n2\""
            ))
        );
        assert!(check(&n1, pods, Operation::Create, &pod("n1")).is_err());
        assert!(check(&n1, pods, Operation::Delete, &pod("n1")).is_ok());
        assert_eq!(
            check(&n1, pods, Operation::Delete, &pod("n2")),
            Err(json!("pods \"p\" is forbidden: node \"n1\" can only delete pods with spec.nodeName set to itself"))
        );
        assert!(check(&n1, pods, Operation::Update, &pod("n1")).is_ok());
        assert!(check(&n1, pods, Operation::Update, &pod("n2")).is_err());
        assert!(check(&admin, pods, Operation::Delete, &pod("n2")).is_ok());
        assert!(node_restriction(None, pods, Operation::Delete, &pod("n2")).is_ok());
    }
}
