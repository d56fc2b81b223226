//! NodeRestriction, for the writes ferry's nodes make: a node (`system:node:<n>` in
//! `system:nodes`) may create and change only its own Node, may not create pods (upstream allows
//! mirror pods only, which ferry has not), and may delete pods and write their status only when
//! they are bound to it (`spec.nodeName == n`). Everyone else passes.

use async_trait::async_trait;
use serde_json::Value;

use super::{Attributes, MutatingPlugin, Operation};
use crate::object::meta_str;
use crate::registry::{GroupResource, NODES, PODS};
use crate::status::ApiError;
use crate::storage::Storage;

/// The NodeRestriction plugin.
pub struct NodeRestriction;

#[async_trait]
impl MutatingPlugin for NodeRestriction {
    fn name(&self) -> &'static str {
        "NodeRestriction"
    }

    async fn admit(
        &self,
        storage: &Storage,
        attributes: &Attributes<'_>,
        object: &mut Value,
    ) -> Result<(), ApiError> {
        if attributes.subresource == "token" {
            return check_token_request(storage, attributes, object).await;
        }
        // An update is judged on the stored object: the pod as it is bound now.
        let object = attributes.old.unwrap_or(object);
        check(attributes, object)
    }
}

/// A node may ask for a service account's token only bound to a pod scheduled on it
/// (upstream's `admitServiceAccount`); the kubelet asks for the pods' projected tokens.
async fn check_token_request(
    storage: &Storage,
    attributes: &Attributes<'_>,
    request: &Value,
) -> Result<(), ApiError> {
    let Some(node) = attributes.user.and_then(crate::node_authorizer::node_name) else {
        return Ok(());
    };
    let forbidden = |why: &str| {
        Err(ApiError::forbidden(format!(
            "serviceaccounts \"{}\" is forbidden: {why}",
            meta_str(request, "name").unwrap_or_default()
        )))
    };
    let reference = &request["spec"]["boundObjectRef"];
    let text = |field: &str| reference[field].as_str().unwrap_or_default();
    if text("apiVersion") != "v1" || text("kind") != "Pod" || text("name").is_empty() {
        return forbidden("node requested token not bound to a pod");
    }
    if text("uid").is_empty() {
        return forbidden("node requested token with a pod binding without a uid");
    }
    let namespace = meta_str(request, "namespace").unwrap_or_default();
    let Some(pod) =
        crate::storage::read_core(&*storage.store, "pods", namespace, text("name")).await?
    else {
        return Err(ApiError::not_found(crate::status::Target {
            group: "",
            resource: "pods",
            name: text("name"),
        }));
    };
    if meta_str(&pod, "uid") != Some(text("uid")) {
        return forbidden(&format!("the UID in the bound object reference ({}) does not match the UID in record. The object might have been deleted and then recreated", text("uid")));
    }
    if pod.pointer("/spec/nodeName").and_then(Value::as_str) != Some(node) {
        return forbidden("node requested token bound to a pod scheduled on a different node");
    }
    Ok(())
}

fn check(attributes: &Attributes<'_>, object: &Value) -> Result<(), ApiError> {
    let Some(node) = attributes.user.and_then(crate::node_authorizer::node_name) else {
        return Ok(());
    };
    let resource = GroupResource::of(attributes.resource);
    let name = meta_str(object, "name").unwrap_or_default();
    let forbidden = |why: String| {
        Err(ApiError::forbidden(format!(
            "{} \"{name}\" is forbidden: {why}",
            resource.resource
        )))
    };
    match (resource, attributes.operation) {
        (NODES, _) if name != node => {
            forbidden(format!("node \"{node}\" is not allowed to modify node \"{name}\""))
        }
        (PODS, Operation::Create) => forbidden(format!(
            "pod does not have \"kubernetes.io/config.mirror\" annotation, node \"{node}\" can only create mirror pods"
        )),
        (PODS, op) => {
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
mod tests {
    use super::*;
    use crate::auth::UserInfo;
    use ferry_api::registry::ResourceInfo;
    use serde_json::json;

    fn info(plural: &'static str) -> &'static ResourceInfo {
        ferry_api::registry::find("", "v1", plural).expect("registered")
    }

    fn check_as(
        user: Option<&UserInfo>,
        resource: &'static ResourceInfo,
        operation: Operation,
        object: &Value,
    ) -> Result<(), Value> {
        let attributes = Attributes {
            resource,
            subresource: "",
            operation,
            user,
            old: None,
            dry_run: false,
            warnings: None,
            audit_annotations: None,
            field_manager: None,
            auth: None,
            strategy: None,
        };
        check(&attributes, object).map_err(|e| e.to_status()["message"].clone())
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
        let n = Some(&n1);
        assert!(check_as(n, nodes, Operation::Create, &node("n1")).is_ok());
        assert_eq!(
            check_as(n, nodes, Operation::Create, &node("n2")),
            Err(json!(
                "nodes \"n2\" is forbidden: node \"n1\" is not allowed to modify node \"n2\""
            ))
        );
        assert!(check_as(n, pods, Operation::Create, &pod("n1")).is_err());
        assert!(check_as(n, pods, Operation::Delete, &pod("n1")).is_ok());
        assert_eq!(
            check_as(n, pods, Operation::Delete, &pod("n2")),
            Err(json!("pods \"p\" is forbidden: node \"n1\" can only delete pods with spec.nodeName set to itself"))
        );
        assert!(check_as(n, pods, Operation::Update, &pod("n1")).is_ok());
        assert!(check_as(n, pods, Operation::Update, &pod("n2")).is_err());
        assert!(check_as(Some(&admin), pods, Operation::Delete, &pod("n2")).is_ok());
        assert!(check_as(None, pods, Operation::Delete, &pod("n2")).is_ok());
    }

    #[tokio::test]
    async fn updates_are_judged_on_the_stored_pod() {
        let n1 = UserInfo {
            name: "system:node:n1".into(),
            uid: String::new(),
            groups: vec!["system:nodes".into()],
        };
        let stored = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n2"}});
        let mut moved = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}});
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ferry_store::embedded::EmbeddedStore::open(ferry_store::embedded::Config::new(
            dir.path(),
        ))
        .await
        .expect("open");
        let storage = Storage::new(std::sync::Arc::new(store));
        let attributes = Attributes {
            resource: info("pods"),
            subresource: "status",
            operation: Operation::Update,
            user: Some(&n1),
            old: Some(&stored),
            dry_run: false,
            warnings: None,
            audit_annotations: None,
            field_manager: None,
            auth: None,
            strategy: None,
        };
        let refused = NodeRestriction
            .admit(&storage, &attributes, &mut moved)
            .await;
        assert_eq!(refused.expect_err("another node's pod").code, 403);
    }
}
