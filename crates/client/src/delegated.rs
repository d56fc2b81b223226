//! Who a request to a component's own HTTPS server comes from and what it may do, decided by
//! the API server as upstream's delegating filters do (kube-scheduler's and
//! kube-controller-manager's `--authentication-kubeconfig` / `--authorization-kubeconfig`):
//!
//! - a client certificate the TLS handshake verified against the cluster's client CA names the
//!   user ([`certificate_user`]: CN the name, each O a group);
//! - else a bearer token is reviewed by the API server ([`TokenReviews`], a TokenReview);
//! - else the caller is `system:anonymous` ([`User::anonymous`]).
//!
//! What the user may do is asked of the API server too ([`SubjectAccessReviews`]: a
//! SubjectAccessReview of the request's path and verb, or of a resource for the kubelet).

use std::sync::Arc;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use rustls::pki_types::CertificateDer;

use crate::clientbuilder::BoxFuture;

/// The group every authenticated user is in.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The anonymous user's name.
pub const ANONYMOUS: &str = "system:anonymous";
/// The anonymous user's group.
pub const UNAUTHENTICATED: &str = "system:unauthenticated";

/// A caller, as the authorizer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user name.
    pub name: String,
    /// Its groups.
    pub groups: Vec<String>,
}

impl User {
    /// A caller that presented no credentials.
    pub fn anonymous() -> User {
        User {
            name: ANONYMOUS.into(),
            groups: vec![UNAUTHENTICATED.into()],
        }
    }

    /// `name` in `groups`, and in `system:authenticated` (upstream's group adder).
    pub fn authenticated(name: String, mut groups: Vec<String>) -> User {
        if !groups.iter().any(|g| g == AUTHENTICATED) {
            groups.push(AUTHENTICATED.into());
        }
        User { name, groups }
    }
}

/// The user a verified client certificate names: CN the name, each O a group.
pub fn certificate_user(peer: Option<&[CertificateDer<'_>]>) -> Option<User> {
    use x509_parser::prelude::FromDer as _;
    let leaf = peer?.first()?;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(leaf.as_ref()).ok()?;
    let name = cert
        .subject()
        .iter_common_name()
        .find_map(|c| c.as_str().ok())?
        .to_string();
    let groups = cert
        .subject()
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some(User::authenticated(name, groups))
}

/// The bearer token of an `Authorization` header, if it carries one.
pub fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Checks bearer tokens.
pub trait TokenAuthenticator: Send + Sync {
    /// The token's user; `Ok(None)` if the token is not valid, `Err` if that could not be
    /// decided.
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<User>, String>>;
}

/// What a request does, in authorization terms.
#[derive(Debug, Clone, PartialEq)]
pub enum Attributes {
    /// A request for a path that is no API resource (`/metrics`).
    Path {
        /// `get`, `create`, … ([`verb`]).
        verb: &'static str,
        /// The request's path.
        path: String,
    },
    /// A request on an API resource (the kubelet's `nodes/<subresource>`).
    Resource(Box<ResourceAttributes>),
}

/// Decides whether a user may do something.
pub trait Authorizer: Send + Sync {
    /// `Ok(true)` if allowed; `Err` if it could not be decided.
    fn authorize<'a>(
        &'a self,
        user: &'a User,
        attributes: &'a Attributes,
    ) -> BoxFuture<'a, Result<bool, String>>;
}

/// The authorization verb of an HTTP method, as upstream's request info resolver names it.
pub fn verb(method: &http::Method) -> &'static str {
    match *method {
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "get",
    }
}

/// Upstream's 403 message for `user` refused `attributes` (without the `forbidden: ` prefix).
pub fn forbidden_message(user: &User, attributes: &Attributes) -> String {
    match attributes {
        Attributes::Path { verb, path } => {
            format!("User {:?} cannot {verb} path {path:?}", user.name)
        }
        Attributes::Resource(r) => {
            let resource = match r.subresource.as_deref() {
                Some(sub) if !sub.is_empty() => {
                    format!("{}/{sub}", r.resource.as_deref().unwrap_or(""))
                }
                _ => r.resource.clone().unwrap_or_default(),
            };
            format!(
                "User {:?} cannot {} resource {resource:?}",
                user.name,
                r.verb.as_deref().unwrap_or("")
            )
        }
    }
}

/// Reviews tokens with the API server (a TokenReview; the API server's own audiences).
pub struct TokenReviews(pub kube::Client);

impl TokenAuthenticator for TokenReviews {
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<User>, String>> {
        Box::pin(async move {
            let review = TokenReview {
                spec: TokenReviewSpec {
                    token: Some(token.to_string()),
                    audiences: None,
                },
                ..Default::default()
            };
            let api: Api<TokenReview> = Api::all(self.0.clone());
            let answer = api
                .create(&PostParams::default(), &review)
                .await
                .map_err(|e| e.to_string())?;
            let Some(status) = answer.status else {
                return Ok(None);
            };
            if status.authenticated != Some(true) {
                return Ok(None);
            }
            let user = status.user.unwrap_or_default();
            Ok(Some(User::authenticated(
                user.username.unwrap_or_default(),
                user.groups.unwrap_or_default(),
            )))
        })
    }
}

/// Asks the API server a SubjectAccessReview (upstream's webhook authorizer).
pub struct SubjectAccessReviews(pub kube::Client);

impl Authorizer for SubjectAccessReviews {
    fn authorize<'a>(
        &'a self,
        user: &'a User,
        attributes: &'a Attributes,
    ) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            let (resource_attributes, non_resource_attributes) = match attributes {
                Attributes::Path { verb, path } => (
                    None,
                    Some(NonResourceAttributes {
                        path: Some(path.clone()),
                        verb: Some((*verb).into()),
                    }),
                ),
                Attributes::Resource(r) => (Some(ResourceAttributes::clone(r)), None),
            };
            let review = SubjectAccessReview {
                spec: SubjectAccessReviewSpec {
                    user: Some(user.name.clone()),
                    groups: Some(user.groups.clone()),
                    resource_attributes,
                    non_resource_attributes,
                    ..Default::default()
                },
                ..Default::default()
            };
            let api: Api<SubjectAccessReview> = Api::all(self.0.clone());
            let answer = api
                .create(&PostParams::default(), &review)
                .await
                .map_err(|e| e.to_string())?;
            Ok(answer.status.is_some_and(|s| s.allowed))
        })
    }
}

/// Delegated authentication and authorization through one client, as both components
/// configure them from their kubeconfig.
pub fn delegated(client: kube::Client) -> (Arc<dyn TokenAuthenticator>, Arc<dyn Authorizer>) {
    (
        Arc::new(TokenReviews(client.clone())),
        Arc::new(SubjectAccessReviews(client)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        headers.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("Bearer abc.def"),
        );
        assert_eq!(bearer_token(&headers), Some("abc.def"));
        headers.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("Basic dXNlcjpwdw=="),
        );
        assert_eq!(bearer_token(&headers), None);
        headers.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("bearer "),
        );
        assert_eq!(bearer_token(&headers), None);
    }

    #[test]
    fn users_are_authenticated_once_and_anonymous_is_unauthenticated() {
        let user = User::authenticated("bob".into(), vec![AUTHENTICATED.into(), "dev".into()]);
        assert_eq!(user.groups, vec![AUTHENTICATED.to_string(), "dev".into()]);
        let user = User::authenticated("bob".into(), vec![]);
        assert_eq!(user.groups, vec![AUTHENTICATED.to_string()]);
        assert_eq!(User::anonymous().groups, vec![UNAUTHENTICATED.to_string()]);
    }

    #[test]
    fn certificates_name_the_user_and_its_groups() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "prometheus");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "system:monitoring");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let der = vec![cert.der().clone()];
        assert_eq!(
            certificate_user(Some(&der)),
            Some(User {
                name: "prometheus".into(),
                groups: vec!["system:monitoring".into(), AUTHENTICATED.into()],
            })
        );
        assert_eq!(certificate_user(None), None);
    }

    #[test]
    fn forbidden_messages_are_upstreams() {
        let user = User::anonymous();
        let path = Attributes::Path {
            verb: verb(&http::Method::GET),
            path: "/metrics".into(),
        };
        assert_eq!(
            forbidden_message(&user, &path),
            r#"User "system:anonymous" cannot get path "/metrics""#
        );
        let resource = Attributes::Resource(Box::new(ResourceAttributes {
            verb: Some("get".into()),
            resource: Some("nodes".into()),
            subresource: Some("metrics".into()),
            ..Default::default()
        }));
        assert_eq!(
            forbidden_message(&user, &resource),
            r#"User "system:anonymous" cannot get resource "nodes/metrics""#
        );
        assert_eq!(verb(&http::Method::POST), "create");
        assert_eq!(verb(&http::Method::HEAD), "get");
    }
}
