//! Role-based access control, as upstream's `plugin/pkg/auth/authorizer/rbac` and
//! `pkg/registry/rbac`:
//!
//! - [`rules`]: what a PolicyRule allows, and whether rules cover others;
//! - [`policy`]: the Roles, ClusterRoles and bindings, kept in memory from the store;
//! - [`RbacAuthorizer`]: allows a request when a rule of a role bound to the user (by name,
//!   group or service account) allows it — ClusterRoleBindings everywhere, RoleBindings in
//!   their namespace;
//! - [`escalation`]: nobody creates a role granting, or binds a role, beyond what they hold
//!   themselves, unless allowed to `escalate` or `bind`;
//! - [`bootstrap`]: upstream's default roles and bindings, created and reconciled at start.

pub mod bootstrap;
pub mod escalation;
pub mod policy;
pub mod rules;

use std::sync::Arc;

use k8s_openapi::api::rbac::v1::PolicyRule;

use crate::auth::{Authorizer, Decision, UserInfo};
use crate::request::RequestInfo;
pub use policy::Policy;

/// The RBAC authorizer (upstream's `--authorization-mode=RBAC`).
pub struct RbacAuthorizer(pub Arc<Policy>);

/// Problems met while resolving rules, as upstream words them in a denial's reason.
fn errors_reason(errors: &[String]) -> String {
    match errors.len() {
        0 => String::new(),
        1 => format!("RBAC: {}", errors[0]),
        _ => format!("RBAC: [{}]", errors.join(", ")),
    }
}

impl Authorizer for RbacAuthorizer {
    fn authorize(&self, user: &UserInfo, request: &RequestInfo) -> Decision {
        let mut allowed = false;
        let errors = self.0.visit_rules(user, &request.namespace, |rule| {
            allowed = rules::allows(rule, request);
            !allowed
        });
        if allowed {
            Decision::Allow
        } else {
            Decision::Deny(errors_reason(&errors))
        }
    }

    fn rules_for(
        &self,
        user: &UserInfo,
        namespace: &str,
        out: &mut Vec<PolicyRule>,
    ) -> Result<(), String> {
        let (found, errors) = self.0.rules_for(user, namespace);
        out.extend(found);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join(", "))
        }
    }
}
