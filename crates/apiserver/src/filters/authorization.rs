//! Authorization (upstream's `WithAuthorization`): the authorizer decides whether the
//! (possibly impersonated) user may do what the request asks; if not, 403 worded as upstream's.

use std::convert::Infallible;
use std::sync::Arc;

use tower::Service;

use super::{BoxFuture, Filter};
use crate::auth::{forbidden_message, Auth, Decision, UserInfo};
use crate::body::{Request, Response};
use crate::request::RequestInfo;
use crate::status::ApiError;

/// The authorization filter.
#[derive(Clone)]
pub struct Authorize(pub Arc<Auth>);

impl Filter for Authorize {
    fn call<S>(&self, request: Request, mut next: S) -> BoxFuture
    where
        S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
        S::Future: Send,
    {
        let auth = self.0.clone();
        Box::pin(async move {
            let refused = {
                let (Some(user), Some(info)) = (
                    request.extensions().get::<UserInfo>(),
                    request.extensions().get::<RequestInfo>(),
                ) else {
                    return Ok(ApiError::unauthorized().into_response());
                };
                match auth.authorize(user, info).await {
                    Decision::Allow => None,
                    Decision::Deny(reason) | Decision::Forbid(reason) => {
                        Some(ApiError::forbidden(forbidden_message(user, info, &reason)))
                    }
                }
            };
            match refused {
                None => {
                    let mut request = request;
                    crate::journey::stamp(&mut request, |s| &mut s.authorized);
                    next.call(request).await
                }
                Some(refused) => Ok(refused.into_response()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::authentication::tests::{as_user, auth};
    use crate::filters::authentication::Authenticate;
    use crate::filters::request_info::ParseRequestInfo;
    use crate::filters::testing::Reached;
    use crate::filters::FilterLayer;
    use tower::{ServiceBuilder, ServiceExt};

    #[tokio::test]
    async fn denied_requests_are_403_as_upstream_words_them() {
        let reached = Reached::default();
        let chain = ServiceBuilder::new()
            .layer(FilterLayer(ParseRequestInfo))
            .layer(FilterLayer(Authenticate(auth())))
            .layer(FilterLayer(Authorize(auth())))
            .service(reached.service());
        let allowed = chain
            .clone()
            .oneshot(as_user("/api/v1/namespaces/a/pods/p", "alice"))
            .await
            .expect("ok");
        assert_eq!(allowed.status(), 200);
        let denied = chain
            .oneshot(as_user("/api/v1/namespaces/a/pods", "alice"))
            .await
            .expect("ok");
        assert_eq!(denied.status(), 403);
        let body = crate::body::read(denied.into_body(), 1000)
            .await
            .expect("body");
        assert!(String::from_utf8_lossy(&body).contains("pods is forbidden: User \\\"alice\\\" cannot list resource \\\"pods\\\" in API group \\\"\\\" in the namespace \\\"a\\\""), "{}", String::from_utf8_lossy(&body));
        assert_eq!(reached.count(), 1);
    }
}
