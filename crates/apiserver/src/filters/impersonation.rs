//! Impersonation (upstream's `WithImpersonation`, `kubectl --as=U --as-group=G`): with
//! `Impersonate-User` (and `Impersonate-Group`, `Impersonate-Uid`) the request goes on as that
//! user, if the requester may `impersonate` users (and each group) — asked of the authorizer
//! like any other request.

use std::convert::Infallible;
use std::sync::Arc;

use tower::Service;

use super::{BoxFuture, Filter};
use crate::auth::{Auth, UserInfo};
use crate::body::{Request, Response};
use crate::request::RequestInfo;
use crate::status::ApiError;

/// The impersonation filter.
#[derive(Clone)]
pub struct Impersonate(pub Arc<Auth>);

fn values(headers: &http::HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect()
}

/// The user `headers` ask to act as, if `user` may; `user` if they ask for nobody.
pub async fn impersonated(
    auth: &Auth,
    user: UserInfo,
    headers: &http::HeaderMap,
) -> Result<UserInfo, ApiError> {
    let Some(name) = values(headers, "impersonate-user").into_iter().next() else {
        if !values(headers, "impersonate-group").is_empty() {
            return Err(ApiError::internal(
                "requested impersonation of groups without impersonating a user",
            ));
        }
        return Ok(user);
    };
    let groups = values(headers, "impersonate-group");
    let uid = values(headers, "impersonate-uid")
        .into_iter()
        .next()
        .unwrap_or_default();
    check(auth, &user, "users", &name).await?;
    for group in &groups {
        check(auth, &user, "groups", group).await?;
    }
    let mut all_groups = groups;
    if !all_groups.iter().any(|g| g == "system:authenticated") {
        all_groups.push("system:authenticated".into());
    }
    Ok(UserInfo {
        name,
        uid,
        groups: all_groups,
    })
}

/// Whether `user` may impersonate the `resource` (`users`, `groups`) named `object`.
async fn check(auth: &Auth, user: &UserInfo, resource: &str, object: &str) -> Result<(), ApiError> {
    let request = RequestInfo {
        is_resource_request: true,
        verb: "impersonate".into(),
        api_prefix: "api".into(),
        resource: resource.into(),
        name: object.into(),
        ..Default::default()
    };
    if auth.authorize(user, &request).await.allowed() {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "{resource} \"{object}\" is forbidden: User \"{}\" cannot impersonate resource \"{resource}\" in API group \"\" at the cluster scope",
        user.name
    )))
}

impl Filter for Impersonate {
    fn call<S>(&self, mut request: Request, mut next: S) -> BoxFuture
    where
        S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
        S::Future: Send,
    {
        if request.extensions().get::<UserInfo>().is_none() {
            return Box::pin(async { Ok(ApiError::unauthorized().into_response()) });
        }
        let headers = request.headers();
        if !headers.contains_key("impersonate-user") && !headers.contains_key("impersonate-group") {
            return Box::pin(next.call(request));
        }
        let auth = self.0.clone();
        Box::pin(async move {
            let Some(user) = request.extensions().get::<UserInfo>().cloned() else {
                return Ok(ApiError::unauthorized().into_response());
            };
            match impersonated(&auth, user, request.headers()).await {
                Ok(user) => {
                    request.extensions_mut().insert(user);
                    next.call(request).await
                }
                Err(e) => Ok(e.into_response()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::authentication::tests::{as_user, auth};
    use crate::filters::authentication::Authenticate;
    use crate::filters::testing::Reached;
    use crate::filters::FilterLayer;
    use tower::{ServiceBuilder, ServiceExt};

    fn impersonating(token: &str, user: &str, groups: &[&str]) -> Request {
        let mut request = as_user("/api", token);
        let headers = request.headers_mut();
        headers.insert(
            "impersonate-user",
            http::HeaderValue::from_str(user).expect("header"),
        );
        for group in groups {
            headers.append(
                "impersonate-group",
                http::HeaderValue::from_str(group).expect("header"),
            );
        }
        request
    }

    #[tokio::test]
    async fn masters_may_act_as_others_and_others_may_not() {
        let reached = Reached::default();
        let chain = ServiceBuilder::new()
            .layer(FilterLayer(Authenticate(auth())))
            .layer(FilterLayer(Impersonate(auth())))
            .service(reached.service());
        let response = chain
            .clone()
            .oneshot(impersonating("admin", "bob", &["devs"]))
            .await
            .expect("ok");
        assert_eq!(response.status(), 200);
        {
            let parts = reached.0.lock().expect("lock");
            let user = parts[0].extensions.get::<UserInfo>().expect("user");
            assert_eq!(user.name, "bob");
            assert_eq!(user.groups, ["devs", "system:authenticated"]);
        }
        let response = chain
            .clone()
            .oneshot(impersonating("alice", "bob", &[]))
            .await
            .expect("ok");
        assert_eq!(response.status(), 403);
        let body = crate::body::read(response.into_body(), 1000)
            .await
            .expect("body");
        assert!(String::from_utf8_lossy(&body).contains("users \\\"bob\\\" is forbidden: User \\\"alice\\\" cannot impersonate resource \\\"users\\\""));
        let response = chain.oneshot(as_user("/api", "alice")).await.expect("ok");
        assert_eq!(response.status(), 200);
        assert_eq!(reached.count(), 2);
    }
}
