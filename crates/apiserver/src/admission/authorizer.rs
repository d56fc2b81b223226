//! The CEL `authorizer` of admission expressions (upstream's `library.Authz`): checks asked by
//! ValidatingAdmissionPolicies, MutatingAdmissionPolicies and webhook match conditions are
//! decided by the server's authorizer chain, as the request's user or as a service account
//! (`authorizer.serviceAccount(ns, name)`). The chain's in-memory modes (Node, RBAC) decide;
//! a mode that would have to call out (the Webhook mode) has no opinion here, as expressions
//! are evaluated without awaiting.

use std::sync::Arc;

use ferry_cel::{
    AuthorizerBinding, AuthzCheck, AuthzDecision, AuthzTarget, Decision as CelDecision,
    ResourceAttributes,
};

use super::Attributes;
use crate::auth::{Auth, Decision, UserInfo};
use crate::request::RequestInfo;

/// The server's authorizer, asked as `user` unless a check names another.
struct CelAuthorizer {
    auth: Arc<Auth>,
    user: UserInfo,
}

/// The request a check describes, as the authorizers read requests.
fn request_info(check: &AuthzCheck) -> RequestInfo {
    match &check.target {
        AuthzTarget::Resource(resource) => RequestInfo {
            is_resource_request: true,
            verb: check.verb.clone(),
            api_prefix: if resource.group.is_empty() {
                "api"
            } else {
                "apis"
            }
            .to_string(),
            group: resource.group.clone(),
            version: "*".to_string(),
            namespace: resource.namespace.clone(),
            resource: resource.resource.clone(),
            subresource: resource.subresource.clone(),
            name: resource.name.clone(),
            ..RequestInfo::default()
        },
        AuthzTarget::Path(path) => RequestInfo {
            is_resource_request: false,
            path: path.clone(),
            verb: check.verb.clone(),
            ..RequestInfo::default()
        },
    }
}

impl ferry_cel::Authorizer for CelAuthorizer {
    fn check(&self, check: &AuthzCheck) -> AuthzDecision {
        let other;
        let user = match &check.user {
            Some(user) => {
                other = UserInfo {
                    name: user.name.clone(),
                    uid: String::new(),
                    groups: user.groups.clone(),
                };
                &other
            }
            None => &self.user,
        };
        match self.auth.authz.authorize(user, &request_info(check)) {
            Decision::Allow => AuthzDecision::allow(""),
            Decision::Deny(reason) => AuthzDecision {
                decision: CelDecision::NoOpinion,
                reason,
                error: None,
            },
            Decision::Forbid(reason) => AuthzDecision::deny(reason),
        }
    }
}

/// The `authorizer` variable of a request's expressions, with its `requestResource`; `None`
/// for the server's own writes and where the server has no authorizer (tests).
pub fn binding(
    attributes: &Attributes<'_>,
    namespace: &str,
    name: &str,
) -> Option<AuthorizerBinding> {
    let (auth, user) = (attributes.auth?, attributes.user?);
    let authorizer = CelAuthorizer {
        auth: auth.clone(),
        user: user.clone(),
    };
    let info = attributes.resource;
    Some(
        AuthorizerBinding::new(Arc::new(authorizer)).with_request_resource(ResourceAttributes {
            group: info.group.to_string(),
            resource: info.plural.to_string(),
            subresource: attributes.subresource.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            ..ResourceAttributes::default()
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AuthenticatorChain, Authorizer};

    /// Allows `jane` to get pods in `default`, and service accounts of `ci` to list secrets.
    struct Rules;

    impl Authorizer for Rules {
        fn authorize(&self, user: &UserInfo, request: &RequestInfo) -> Decision {
            let allowed = match (user.name.as_str(), request.verb.as_str()) {
                ("jane", "get") => request.resource == "pods" && request.namespace == "default",
                (_, "list") => {
                    user.groups.iter().any(|g| g == "system:serviceaccounts:ci")
                        && request.resource == "secrets"
                }
                ("jane", "head") => request.path == "/healthz",
                _ => false,
            };
            if allowed {
                Decision::Allow
            } else {
                Decision::Deny(format!("{} may not", user.name))
            }
        }
    }

    #[test]
    fn checks_are_decided_by_the_server_authorizer() {
        let auth = Arc::new(Auth {
            authn: AuthenticatorChain(Vec::new()),
            authz: Box::new(Rules),
        });
        let authorizer = CelAuthorizer {
            auth,
            user: UserInfo {
                name: "jane".into(),
                uid: String::new(),
                groups: vec!["system:authenticated".into()],
            },
        };
        let binding = AuthorizerBinding::new(Arc::new(authorizer));
        let eval = |source: &str| {
            ferry_cel::Program::compile(source)
                .expect("compiles")
                .eval(&[("authorizer", ferry_cel::Variable::Authorizer(&binding))])
                .expect("evaluates")
        };
        assert_eq!(
            eval(
                "authorizer.group('').resource('pods').namespace('default').check('get').allowed()"
            ),
            true
        );
        assert_eq!(
            eval("authorizer.group('').resource('pods').namespace('kube-system').check('get').reason()"),
            "jane may not"
        );
        assert_eq!(
            eval("authorizer.path('/healthz').check('head').allowed()"),
            true
        );
        assert_eq!(
            eval("authorizer.serviceAccount('ci', 'bot').group('').resource('secrets').check('list').allowed()"),
            true
        );
        assert_eq!(
            eval("authorizer.group('').resource('secrets').check('list').allowed()"),
            false
        );
    }
}
