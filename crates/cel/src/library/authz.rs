//! Kubernetes' authorizer library, for admission policies: the variable `authorizer` checks
//! what the request's user (or another) may do, through a callback of the caller's
//! ([`Authorizer`]), and `authorizer.requestResource` is the check of the request's own
//! resource.
//!
//! ```text
//! authorizer.group('apps').resource('deployments').subresource('scale')
//!     .namespace('default').name('web').check('update').allowed()
//! authorizer.path('/healthz').check('get').reason()
//! authorizer.serviceAccount('ns', 'sa').group('').resource('pods').check('list').errored()
//! authorizer.requestResource.check('delete').allowed()
//! authorizer.group('').resource('pods').fieldSelector('spec.nodeName=n1').check('list').allowed()
//! ```
//!
//! Bind it with [`Variable::Authorizer`](crate::Variable::Authorizer) and an
//! [`AuthorizerBinding`]: the name it is bound to is the variable (`authorizer`), and, when
//! the binding has the request's resource, `<name>.requestResource` too. Each `check(verb)`
//! calls [`Authorizer::check`] once, with an [`AuthzCheck`].

use std::sync::Arc;

use cel::common::types::{CelBool, CelString, Kind, Type};
use cel::common::value::Val;
use cel::{DeclarationError, Env, ExecutionError};

use super::{error, opaque_value};

/// Decides what a user may do: ferry's authorizer (RBAC and the others), as the caller wires
/// it.
pub trait Authorizer: Send + Sync {
    /// The decision on `check`. An authorizer that fails says so in
    /// [`AuthzDecision::error`], which expressions read with `errored()` and `error()`.
    fn check(&self, check: &AuthzCheck) -> AuthzDecision;
}

/// One authorization check: what upstream's `authorizer.AttributesRecord` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzCheck {
    /// The user to check as: `None` for the request's user (whom the caller knows), or the
    /// user of `authorizer.serviceAccount(namespace, name)`.
    pub user: Option<AuthzUser>,
    /// The verb: an API verb (`get`, `list`, `create`, …) for a resource, an HTTP verb
    /// (lower case, as written) for a path.
    pub verb: String,
    /// What is checked.
    pub target: AuthzTarget,
}

/// A user other than the request's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzUser {
    /// `system:serviceaccount:<namespace>:<name>`.
    pub name: String,
    /// `system:serviceaccounts` and `system:serviceaccounts:<namespace>`.
    pub groups: Vec<String>,
}

/// A resource or a non-resource path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthzTarget {
    /// A resource request (of API version `*`).
    Resource(ResourceAttributes),
    /// A non-resource URL such as `/healthz`.
    Path(String),
}

/// The resource of a check; empty fields are unset (a namespace of `""` is every namespace
/// or a cluster-scoped resource, as in RBAC).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceAttributes {
    /// The API group (`""` for the core group).
    pub group: String,
    /// The resource (`deployments`).
    pub resource: String,
    /// The subresource (`scale`).
    pub subresource: String,
    /// The namespace.
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// The field selector as written (`fieldSelector(…)`); parsing it, and what a selector
    /// that does not parse means, is the authorizer's.
    pub field_selector: String,
    /// The label selector as written (`labelSelector(…)`).
    pub label_selector: String,
}

/// An authorizer's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed: `allowed()` is true.
    Allow,
    /// Denied.
    Deny,
    /// No opinion (denied, for an expression).
    NoOpinion,
}

/// What [`Authorizer::check`] gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzDecision {
    /// The decision.
    pub decision: Decision,
    /// Why: `reason()`.
    pub reason: String,
    /// The authorizer's failure, if any: `errored()` and `error()`.
    pub error: Option<String>,
}

impl AuthzDecision {
    /// An allowing decision.
    pub fn allow(reason: impl Into<String>) -> AuthzDecision {
        AuthzDecision {
            decision: Decision::Allow,
            reason: reason.into(),
            error: None,
        }
    }

    /// A denying decision.
    pub fn deny(reason: impl Into<String>) -> AuthzDecision {
        AuthzDecision {
            decision: Decision::Deny,
            reason: reason.into(),
            error: None,
        }
    }

    /// No opinion, and an error of the authorizer.
    pub fn failed(error: impl Into<String>) -> AuthzDecision {
        AuthzDecision {
            decision: Decision::NoOpinion,
            reason: String::new(),
            error: Some(error.into()),
        }
    }
}

/// What the variable `authorizer` is bound to: the authorizer, and the request's resource
/// for `authorizer.requestResource` (upstream binds it for admission requests).
#[derive(Clone)]
pub struct AuthorizerBinding {
    authorizer: Arc<dyn Authorizer>,
    request_resource: Option<ResourceAttributes>,
}

impl std::fmt::Debug for AuthorizerBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizerBinding")
            .field("request_resource", &self.request_resource)
            .finish_non_exhaustive()
    }
}

impl PartialEq for AuthorizerBinding {
    fn eq(&self, other: &AuthorizerBinding) -> bool {
        Arc::ptr_eq(&self.authorizer, &other.authorizer)
            && self.request_resource == other.request_resource
    }
}

impl AuthorizerBinding {
    /// `authorizer`, checking as the request's user.
    pub fn new(authorizer: Arc<dyn Authorizer>) -> AuthorizerBinding {
        AuthorizerBinding {
            authorizer,
            request_resource: None,
        }
    }

    /// With `authorizer.requestResource`: the request's group, resource, subresource,
    /// namespace and name (its selectors are not set).
    pub fn with_request_resource(mut self, resource: ResourceAttributes) -> AuthorizerBinding {
        self.request_resource = Some(resource);
        self
    }

    /// The values to bind: `name` to the authorizer, and `<name>.requestResource` to the
    /// request's resource check when there is one.
    pub(crate) fn values(&self, name: &str) -> Vec<(String, Box<dyn Val>)> {
        let authorizer = AuthorizerValue {
            authorizer: self.authorizer.clone(),
            user: None,
        };
        let mut values = Vec::new();
        if let Some(resource) = &self.request_resource {
            let check = ResourceCheck {
                authorizer: authorizer.clone(),
                attributes: resource.clone(),
            };
            values.push((
                format!("{name}.requestResource"),
                Box::new(check) as Box<dyn Val>,
            ));
        }
        values.push((name.to_string(), Box::new(authorizer)));
        values
    }
}

static AUTHORIZER_TYPE: Type =
    Type::simple_type(Kind::Opaque, "kubernetes.authorization.Authorizer");
static PATH_CHECK_TYPE: Type =
    Type::simple_type(Kind::Opaque, "kubernetes.authorization.PathCheck");
static GROUP_CHECK_TYPE: Type =
    Type::simple_type(Kind::Opaque, "kubernetes.authorization.GroupCheck");
static RESOURCE_CHECK_TYPE: Type =
    Type::simple_type(Kind::Opaque, "kubernetes.authorization.ResourceCheck");
static DECISION_TYPE: Type = Type::simple_type(Kind::Opaque, "kubernetes.authorization.Decision");

/// `authorizer`, or `authorizer.serviceAccount(…)`.
#[derive(Clone)]
struct AuthorizerValue {
    authorizer: Arc<dyn Authorizer>,
    user: Option<AuthzUser>,
}

impl std::fmt::Debug for AuthorizerValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl PartialEq for AuthorizerValue {
    fn eq(&self, other: &AuthorizerValue) -> bool {
        Arc::ptr_eq(&self.authorizer, &other.authorizer) && self.user == other.user
    }
}

impl AuthorizerValue {
    fn check(&self, verb: &str, target: AuthzTarget) -> DecisionValue {
        let check = AuthzCheck {
            user: self.user.clone(),
            verb: verb.to_string(),
            target,
        };
        DecisionValue(self.authorizer.check(&check))
    }
}

#[derive(Debug, Clone, PartialEq)]
struct PathCheck {
    authorizer: AuthorizerValue,
    path: String,
}

#[derive(Debug, Clone, PartialEq)]
struct GroupCheck {
    authorizer: AuthorizerValue,
    group: String,
}

#[derive(Debug, Clone, PartialEq)]
struct ResourceCheck {
    authorizer: AuthorizerValue,
    attributes: ResourceAttributes,
}

#[derive(Debug, Clone, PartialEq)]
struct DecisionValue(AuthzDecision);

opaque_value!(AuthorizerValue, &AUTHORIZER_TYPE);
opaque_value!(PathCheck, &PATH_CHECK_TYPE);
opaque_value!(GroupCheck, &GROUP_CHECK_TYPE);
opaque_value!(ResourceCheck, &RESOURCE_CHECK_TYPE);
opaque_value!(DecisionValue, &DECISION_TYPE);

pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    cel::add_member_overload!(env, fn path: (AuthorizerValue, CelString) -> Result<PathCheck>)?;
    cel::add_member_overload!(env, fn group: (AuthorizerValue, CelString) -> GroupCheck)?;
    cel::add_member_overload!(env,
        fn service_account: (AuthorizerValue, CelString, CelString) -> Result<AuthorizerValue>)?;
    cel::add_member_overload!(env, fn resource: (GroupCheck, CelString) -> Result<ResourceCheck>)?;
    cel::add_member_overload!(env, fn subresource: (ResourceCheck, CelString) -> ResourceCheck)?;
    cel::add_member_overload!(env, fn namespace: (ResourceCheck, CelString) -> ResourceCheck)?;
    cel::add_member_overload!(env, fn name: (ResourceCheck, CelString) -> ResourceCheck)?;
    cel::add_member_overload!(env, fn field_selector: (ResourceCheck, CelString) -> ResourceCheck)?;
    cel::add_member_overload!(env, fn label_selector: (ResourceCheck, CelString) -> ResourceCheck)?;
    cel::add_member_overload!(env, fn check_path: (PathCheck, CelString) -> DecisionValue,
        name = "check")?;
    cel::add_member_overload!(env, fn check_resource: (ResourceCheck, CelString) -> DecisionValue,
        name = "check")?;
    cel::add_member_overload!(env, fn allowed: (DecisionValue) -> CelBool)?;
    cel::add_member_overload!(env, fn reason: (DecisionValue) -> CelString)?;
    cel::add_member_overload!(env, fn errored: (DecisionValue) -> CelBool)?;
    cel::add_member_overload!(env, fn decision_error: (DecisionValue) -> CelString, name = "error")?;
    Ok(())
}

fn path(authorizer: &AuthorizerValue, path: &CelString<'_>) -> Result<PathCheck, ExecutionError> {
    if path.inner().trim().is_empty() {
        return Err(error("path", "path must not be empty"));
    }
    Ok(PathCheck {
        authorizer: authorizer.clone(),
        path: path.inner().to_string(),
    })
}

fn group(authorizer: &AuthorizerValue, group: &CelString<'_>) -> GroupCheck {
    GroupCheck {
        authorizer: authorizer.clone(),
        group: group.inner().to_string(),
    }
}

/// The authorizer of the service account `namespace/name`'s user.
fn service_account(
    authorizer: &AuthorizerValue,
    namespace: &CelString<'_>,
    name: &CelString<'_>,
) -> Result<AuthorizerValue, ExecutionError> {
    let (namespace, name) = (namespace.inner(), name.inner());
    if !ferry_api::names::dns1123_subdomain_problems(name).is_empty() {
        return Err(error("serviceAccount", "Invalid service account name"));
    }
    if !ferry_api::names::dns1123_label_problems(namespace).is_empty() {
        return Err(error("serviceAccount", "Invalid service account namespace"));
    }
    let user = AuthzUser {
        name: format!("system:serviceaccount:{namespace}:{name}"),
        groups: vec![
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{namespace}"),
        ],
    };
    Ok(AuthorizerValue {
        authorizer: authorizer.authorizer.clone(),
        user: Some(user),
    })
}

fn resource(group: &GroupCheck, resource: &CelString<'_>) -> Result<ResourceCheck, ExecutionError> {
    if resource.inner().trim().is_empty() {
        return Err(error("resource", "resource must not be empty"));
    }
    Ok(ResourceCheck {
        authorizer: group.authorizer.clone(),
        attributes: ResourceAttributes {
            group: group.group.clone(),
            resource: resource.inner().to_string(),
            ..ResourceAttributes::default()
        },
    })
}

/// `check` with one attribute set to `value`.
fn with(
    check: &ResourceCheck,
    value: &CelString<'_>,
    field: fn(&mut ResourceAttributes) -> &mut String,
) -> ResourceCheck {
    let mut check = check.clone();
    *field(&mut check.attributes) = value.inner().to_string();
    check
}

fn subresource(check: &ResourceCheck, value: &CelString<'_>) -> ResourceCheck {
    with(check, value, |a| &mut a.subresource)
}

fn namespace(check: &ResourceCheck, value: &CelString<'_>) -> ResourceCheck {
    with(check, value, |a| &mut a.namespace)
}

fn name(check: &ResourceCheck, value: &CelString<'_>) -> ResourceCheck {
    with(check, value, |a| &mut a.name)
}

fn field_selector(check: &ResourceCheck, value: &CelString<'_>) -> ResourceCheck {
    with(check, value, |a| &mut a.field_selector)
}

fn label_selector(check: &ResourceCheck, value: &CelString<'_>) -> ResourceCheck {
    with(check, value, |a| &mut a.label_selector)
}

fn check_path(check: &PathCheck, verb: &CelString<'_>) -> DecisionValue {
    check
        .authorizer
        .check(verb.inner(), AuthzTarget::Path(check.path.clone()))
}

fn check_resource(check: &ResourceCheck, verb: &CelString<'_>) -> DecisionValue {
    check.authorizer.check(
        verb.inner(),
        AuthzTarget::Resource(check.attributes.clone()),
    )
}

fn allowed(decision: &DecisionValue) -> CelBool {
    (decision.0.decision == Decision::Allow).into()
}

fn reason(decision: &DecisionValue) -> CelString<'static> {
    decision.0.reason.clone().into()
}

fn errored(decision: &DecisionValue) -> CelBool {
    decision.0.error.is_some().into()
}

fn decision_error(decision: &DecisionValue) -> CelString<'static> {
    decision.0.error.clone().unwrap_or_default().into()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::{Program, Variable};

    /// Allows what its rules name, records every check.
    #[derive(Default)]
    struct Fake {
        checks: Mutex<Vec<AuthzCheck>>,
    }

    impl Authorizer for Fake {
        fn check(&self, check: &AuthzCheck) -> AuthzDecision {
            self.checks.lock().expect("lock").push(check.clone());
            match &check.target {
                AuthzTarget::Path(path) if path == "/healthz" => AuthzDecision::allow("public"),
                AuthzTarget::Path(_) => AuthzDecision::failed("webhook unavailable"),
                AuthzTarget::Resource(r) if r.resource == "deployments" && check.user.is_none() => {
                    AuthzDecision::allow("RBAC: allowed by RoleBinding \"edit\"")
                }
                AuthzTarget::Resource(_) => AuthzDecision::deny("no rule"),
            }
        }
    }

    fn eval(source: &str, fake: &Arc<Fake>) -> Result<serde_json::Value, crate::EvalError> {
        let binding =
            AuthorizerBinding::new(fake.clone()).with_request_resource(ResourceAttributes {
                group: "apps".into(),
                resource: "deployments".into(),
                namespace: "default".into(),
                name: "web".into(),
                ..ResourceAttributes::default()
            });
        Program::compile(source)
            .expect("compiles")
            .eval(&[("authorizer", Variable::Authorizer(&binding))])
    }

    #[test]
    fn checks_call_the_authorizer() {
        let fake = Arc::new(Fake::default());
        let cases = [
            ("authorizer.group('apps').resource('deployments').namespace('default').name('x').check('create').allowed()", true),
            ("authorizer.group('apps').resource('deployments').check('create').reason() == 'RBAC: allowed by RoleBinding \"edit\"'", true),
            ("authorizer.group('').resource('pods').check('create').allowed()", false),
            ("authorizer.group('').resource('pods').check('create').errored()", false),
            ("authorizer.path('/healthz').check('get').allowed()", true),
            ("authorizer.path('/metrics').check('get').errored()", true),
            ("authorizer.path('/metrics').check('get').error() == 'webhook unavailable'", true),
            ("authorizer.path('/healthz').check('get').error() == ''", true),
            ("authorizer.serviceAccount('ns', 'sa').group('apps').resource('deployments').check('get').allowed()", false),
            ("authorizer.requestResource.check('update').allowed()", true),
            ("authorizer.requestResource.subresource('scale').check('update').allowed()", true),
        ];
        for (source, want) in cases {
            assert_eq!(eval(source, &fake), Ok(serde_json::json!(want)), "{source}");
        }
    }

    #[test]
    fn the_authorizer_receives_every_attribute() {
        let fake = Arc::new(Fake::default());
        eval(
            "authorizer.serviceAccount('kube-system', 'replicaset-controller').group('apps')
                .resource('deployments').subresource('scale').namespace('ns').name('web')
                .fieldSelector('spec.x=y').labelSelector('a=b').check('patch').allowed()",
            &fake,
        )
        .expect("evaluates");
        eval(
            "authorizer.requestResource.check('delete').allowed()",
            &fake,
        )
        .expect("evaluates");
        eval("authorizer.path('/healthz').check('get').allowed()", &fake).expect("evaluates");
        let checks = fake.checks.lock().expect("lock").clone();
        assert_eq!(
            checks,
            vec![
                AuthzCheck {
                    user: Some(AuthzUser {
                        name: "system:serviceaccount:kube-system:replicaset-controller".into(),
                        groups: vec![
                            "system:serviceaccounts".into(),
                            "system:serviceaccounts:kube-system".into()
                        ],
                    }),
                    verb: "patch".into(),
                    target: AuthzTarget::Resource(ResourceAttributes {
                        group: "apps".into(),
                        resource: "deployments".into(),
                        subresource: "scale".into(),
                        namespace: "ns".into(),
                        name: "web".into(),
                        field_selector: "spec.x=y".into(),
                        label_selector: "a=b".into(),
                    }),
                },
                AuthzCheck {
                    user: None,
                    verb: "delete".into(),
                    target: AuthzTarget::Resource(ResourceAttributes {
                        group: "apps".into(),
                        resource: "deployments".into(),
                        namespace: "default".into(),
                        name: "web".into(),
                        ..ResourceAttributes::default()
                    }),
                },
                AuthzCheck {
                    user: None,
                    verb: "get".into(),
                    target: AuthzTarget::Path("/healthz".into()),
                },
            ]
        );
    }

    #[test]
    fn invalid_arguments_fail_with_upstreams_errors() {
        let fake = Arc::new(Fake::default());
        let cases = [
            ("authorizer.path(' ').check('get').allowed()", "path must not be empty"),
            ("authorizer.group('').resource('').check('get').allowed()", "resource must not be empty"),
            ("authorizer.serviceAccount('ns', 'Bad_Name').group('').resource('pods').check('get').allowed()", "Invalid service account name"),
            ("authorizer.serviceAccount('a.b', 'sa').group('').resource('pods').check('get').allowed()", "Invalid service account namespace"),
        ];
        for (source, want) in cases {
            let error = eval(source, &fake).expect_err(source);
            assert!(error.to_string().contains(want), "{source}: {error}");
        }
        assert!(fake.checks.lock().expect("lock").is_empty());
    }

    #[test]
    fn without_a_request_resource_it_is_undeclared() {
        let fake: Arc<dyn Authorizer> = Arc::new(Fake::default());
        let binding = AuthorizerBinding::new(fake);
        let error = Program::compile("authorizer.requestResource.check('get').allowed()")
            .expect("compiles")
            .eval(&[("authorizer", Variable::Authorizer(&binding))])
            .expect_err("no requestResource");
        assert!(error.to_string().contains("requestResource"), "{error}");
    }
}
