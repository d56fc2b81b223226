//! Escalation prevention (upstream's `pkg/registry/rbac` policy-based storage): a user may
//! create or update a Role or ClusterRole only with rules they hold themselves, and bind a role
//! only if they hold all its rules — unless they are `system:masters`, may `escalate` roles
//! (for roles) or may `bind` that role (for bindings). Setting a ClusterRole's
//! `aggregationRule` needs every permission, since it can gather anything.
//!
//! It runs on every write of the four RBAC resources, after validation, so a refused write
//! leaves nothing behind; it is not an admission plugin one could disable.

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef};
use serde_json::Value;

use super::rules::{covers, missing_rules_message};
use super::Policy;
use crate::admission::{Attributes, Operation, ValidatingPlugin};
use crate::auth::{full_authority, Auth, UserInfo, PRIVILEGED_GROUP};
use crate::request::RequestInfo;
use crate::status::{ApiError, Target};
use crate::storage::Storage;

/// The RBAC API group.
pub const GROUP: &str = "rbac.authorization.k8s.io";

/// The check, with the authorizer (for `escalate` and `bind`) and the policy (for what the user
/// holds).
pub struct Escalation {
    /// The server's authorizer.
    pub auth: Arc<Auth>,
    /// The RBAC objects.
    pub policy: Arc<Policy>,
}

fn metadata<'a>(object: &'a Value, field: &str) -> &'a str {
    object["metadata"][field].as_str().unwrap_or_default()
}

/// Whether only what the garbage collector touches changed (upstream's
/// `IsOnlyMutatingGCFields`): owner references and finalizers.
fn only_gc_fields(new: &Value, old: &Value) -> bool {
    let strip = |object: &Value| {
        let mut object = object.clone();
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            for field in [
                "ownerReferences",
                "finalizers",
                "resourceVersion",
                "managedFields",
            ] {
                meta.remove(field);
            }
        }
        object
    };
    strip(new) == strip(old)
}

fn rules_of(object: &Value) -> Vec<PolicyRule> {
    serde_json::from_value(object["rules"].clone()).unwrap_or_default()
}

/// Upstream's `ConfirmNoEscalation` message.
fn escalation_message(user: &UserInfo, missing: &[PolicyRule], errors: &[String]) -> String {
    let groups: Vec<String> = user
        .groups
        .iter()
        .map(|g| serde_json::to_string(g).unwrap_or_default())
        .collect();
    let mut message = format!(
        "user {:?} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        groups.join(" "),
        missing_rules_message(missing)
    );
    if !errors.is_empty() {
        message.push_str(&format!("; resolution errors: [{}]", errors.join(", ")));
    }
    message
}

impl Escalation {
    /// Whether `user` may `verb` the role `resource`/`name` in `namespace`.
    async fn may(
        &self,
        user: &UserInfo,
        verb: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> bool {
        let request = RequestInfo {
            is_resource_request: true,
            verb: verb.into(),
            api_prefix: "apis".into(),
            group: GROUP.into(),
            version: "v1".into(),
            namespace: namespace.into(),
            resource: resource.into(),
            name: name.into(),
            ..Default::default()
        };
        self.auth.authorize(user, &request).await.allowed()
    }

    /// `Err` with the message when `user` does not hold every rule of `wanted` in `namespace`.
    fn confirm_no_escalation(
        &self,
        user: &UserInfo,
        namespace: &str,
        wanted: &[PolicyRule],
    ) -> Result<(), String> {
        let (held, errors) = self.policy.rules_for(user, namespace);
        covers(&held, wanted).map_err(|missing| escalation_message(user, &missing, &errors))
    }

    async fn check_role(
        &self,
        attributes: &Attributes<'_>,
        user: &UserInfo,
        object: &Value,
    ) -> Result<(), String> {
        let (namespace, name) = (metadata(object, "namespace"), metadata(object, "name"));
        if self
            .may(
                user,
                "escalate",
                attributes.resource.plural,
                namespace,
                name,
            )
            .await
        {
            return Ok(());
        }
        self.confirm_no_escalation(user, namespace, &rules_of(object))?;
        if object.get("aggregationRule").is_some_and(|r| !r.is_null()) {
            self.confirm_no_escalation(user, namespace, &full_authority())
                .map_err(|_| {
                    "must have cluster-admin privileges to use the aggregationRule".to_string()
                })?;
        }
        Ok(())
    }

    async fn check_binding(&self, user: &UserInfo, object: &Value) -> Result<(), String> {
        let namespace = metadata(object, "namespace");
        let role_ref: RoleRef = serde_json::from_value(object["roleRef"].clone())
            .map_err(|e| format!("roleRef: {e}"))?;
        let role_resource = match role_ref.kind.as_str() {
            "Role" => "roles",
            _ => "clusterroles",
        };
        if self
            .may(user, "bind", role_resource, namespace, &role_ref.name)
            .await
        {
            return Ok(());
        }
        let Some(rules) = self.policy.role_rules(&role_ref, namespace) else {
            return Err(format!(
                "{}.{GROUP} {:?} not found",
                role_ref.kind.to_lowercase(),
                role_ref.name
            ));
        };
        self.confirm_no_escalation(user, namespace, &rules)
    }
}

#[async_trait]
impl ValidatingPlugin for Escalation {
    fn name(&self) -> &'static str {
        "RBACEscalationPrevention"
    }

    async fn validate(
        &self,
        _storage: &Storage,
        attributes: &Attributes<'_>,
        object: &Value,
    ) -> Result<(), ApiError> {
        let resource = attributes.resource;
        if resource.group != GROUP
            || !attributes.subresource.is_empty()
            || attributes.operation == Operation::Delete
        {
            return Ok(());
        }
        let Some(user) = attributes.user else {
            return Ok(());
        };
        if user.in_group(PRIVILEGED_GROUP) {
            return Ok(());
        }
        if attributes
            .old
            .is_some_and(|old| only_gc_fields(object, old))
        {
            return Ok(());
        }
        // Bindings are the group's kinds with a role reference (validation made sure they
        // have one); the others are roles.
        let verdict = if object.get("roleRef").is_some() {
            self.check_binding(user, object).await
        } else {
            self.check_role(attributes, user, object).await
        };
        verdict.map_err(|why| {
            ApiError::forbidden_object(Target::of(resource, metadata(object, "name")), &why)
        })
    }
}
