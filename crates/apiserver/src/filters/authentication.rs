//! Authentication (upstream's `WithAuthentication`): the client certificate the TLS layer
//! verified, or the bearer token, names the user; a request that names nobody is 401. The
//! `Authorization` header is not passed on.

use std::convert::Infallible;
use std::sync::Arc;

use tower::Service;

use super::{BoxFuture, Filter};
use crate::auth::{Auth, Credentials};
use crate::body::{Request, Response};
use crate::status::ApiError;

/// The verified client certificate of the connection a request came on, if any (the server
/// puts it in each request's extensions).
#[derive(Debug, Clone, Default)]
pub struct ClientCertificate(pub Option<Arc<Vec<u8>>>);

/// The authentication filter.
#[derive(Clone)]
pub struct Authenticate(pub Arc<Auth>);

impl Filter for Authenticate {
    fn call<S>(&self, mut request: Request, mut next: S) -> BoxFuture
    where
        S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
        S::Future: Send,
    {
        let certificate = request
            .extensions()
            .get::<ClientCertificate>()
            .and_then(|c| c.0.clone());
        let bearer = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_string());
        let auth = self.0.clone();
        Box::pin(async move {
            let user = auth
                .authenticate(&Credentials {
                    client_cert: certificate.as_deref().map(Vec::as_slice),
                    bearer_token: bearer.as_deref(),
                })
                .await;
            match user {
                Ok(user) => {
                    request.headers_mut().remove(http::header::AUTHORIZATION);
                    request.extensions_mut().insert(user);
                    crate::journey::stamp(&mut request, |s| &mut s.authenticated);
                    next.call(request).await
                }
                Err(_) => Ok(ApiError::unauthorized().into_response()),
            }
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::auth::{Authenticator, AuthenticatorChain, AuthnError, Decision, UserInfo};
    use crate::filters::testing::{get, Reached};
    use crate::filters::FilterLayer;
    use crate::request::RequestInfo;
    use tower::{Layer, ServiceExt};

    /// Token `admin` is a master, `alice` nobody special; masters may do anything, others only
    /// `get`.
    pub(crate) fn auth() -> Arc<Auth> {
        struct Tokens;
        #[async_trait::async_trait]
        impl Authenticator for Tokens {
            async fn authenticate(
                &self,
                credentials: &Credentials<'_>,
            ) -> Option<Result<UserInfo, AuthnError>> {
                let token = credentials.bearer_token?;
                let groups = match token {
                    "admin" => vec!["system:masters".to_string()],
                    "alice" => vec![],
                    _ => return Some(Err(AuthnError::Invalid("unknown token".into()))),
                };
                Some(Ok(UserInfo {
                    name: token.to_string(),
                    uid: String::new(),
                    groups,
                }))
            }
        }
        struct GetsOnly;
        impl crate::auth::Authorizer for GetsOnly {
            fn authorize(&self, user: &UserInfo, request: &RequestInfo) -> Decision {
                if user.groups.iter().any(|g| g == "system:masters") || request.verb == "get" {
                    Decision::Allow
                } else {
                    Decision::Deny(String::new())
                }
            }
        }
        Arc::new(Auth {
            authn: AuthenticatorChain(vec![Box::new(Tokens)]),
            authz: Box::new(GetsOnly),
        })
    }

    /// A GET with `Authorization: Bearer <token>`.
    pub(crate) fn as_user(path: &str, token: &str) -> Request {
        let mut request = get(path);
        request.headers_mut().insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        );
        request
    }

    #[tokio::test]
    async fn users_are_named_or_refused() {
        let reached = Reached::default();
        let chain = FilterLayer(Authenticate(auth())).layer(reached.service());
        let response = chain
            .clone()
            .oneshot(as_user("/api", "alice"))
            .await
            .expect("ok");
        assert_eq!(response.status(), 200);
        {
            let parts = reached.0.lock().expect("lock");
            assert_eq!(
                parts[0].extensions.get::<UserInfo>().expect("user").name,
                "alice"
            );
            assert!(parts[0].headers.get("authorization").is_none());
        }
        let response = chain
            .clone()
            .oneshot(as_user("/api", "mallory"))
            .await
            .expect("ok");
        assert_eq!(response.status(), 401);
        let response = chain.oneshot(get("/api")).await.expect("ok");
        assert_eq!(response.status(), 401);
        assert_eq!(reached.count(), 1);
    }
}
