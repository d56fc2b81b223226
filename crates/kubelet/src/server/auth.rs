//! Who may call the kubelet: each request's attributes as upstream's kubelet derives them
//! (`nodes/<subresource>` of this node, the verb from the HTTP method), decided by the API
//! server through a SubjectAccessReview ([`SubjectAccessReviews`]).

use async_trait::async_trait;
use k8s_openapi::api::authorization::v1::ResourceAttributes;

/// An authenticated caller (the certificate's CN, its Os and `system:authenticated`).
pub use ferry_client::delegated::User;

/// What a request does, in authorization terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    /// `get`, `create`, `update`, `patch` or `delete`.
    pub verb: &'static str,
    /// The subresource of `nodes`: `stats`, `metrics`, `log`, `spec`, `checkpoint` or `proxy`.
    pub subresource: &'static str,
    /// The node.
    pub node: String,
}

impl Attributes {
    /// Upstream's mapping: the path's first segment names the subresource (everything else,
    /// exec and container logs included, is `proxy`); the method names the verb.
    pub fn of(method: &http::Method, path: &str, node: &str) -> Attributes {
        let verb = match *method {
            http::Method::POST => "create",
            http::Method::PUT => "update",
            http::Method::PATCH => "patch",
            http::Method::DELETE => "delete",
            _ => "get",
        };
        let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
        let subresource = match first {
            "stats" => "stats",
            "metrics" => "metrics",
            "logs" => "log",
            "spec" => "spec",
            "checkpoint" => "checkpoint",
            _ => "proxy",
        };
        Attributes {
            verb,
            subresource,
            node: node.to_string(),
        }
    }

    /// Upstream's 403 text.
    pub fn forbidden(&self, user: &User) -> String {
        format!(
            "Forbidden (user={}, verb={}, resource=nodes, subresource={})",
            user.name, self.verb, self.subresource
        )
    }
}

/// Decides whether a user may do something to the node.
#[async_trait]
pub trait Authorizer: Send + Sync {
    /// `Ok(true)` if allowed; `Err` if it could not be decided.
    async fn authorize(&self, user: &User, attributes: &Attributes) -> Result<bool, String>;
}

/// Asks the API server (upstream's `--authorization-mode=Webhook`), with the node's
/// credentials: a SubjectAccessReview for `nodes/<subresource>` of this node.
pub struct SubjectAccessReviews(pub kube::Client);

#[async_trait]
impl Authorizer for SubjectAccessReviews {
    async fn authorize(&self, user: &User, attributes: &Attributes) -> Result<bool, String> {
        use ferry_client::delegated::Authorizer as _;
        let reviews = ferry_client::delegated::SubjectAccessReviews(self.0.clone());
        let resource = ResourceAttributes {
            verb: Some(attributes.verb.into()),
            resource: Some("nodes".into()),
            subresource: Some(attributes.subresource.into()),
            name: Some(attributes.node.clone()),
            ..Default::default()
        };
        reviews
            .authorize(
                user,
                &ferry_client::delegated::Attributes::Resource(Box::new(resource)),
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_follow_upstreams_paths_and_methods() {
        let of = |method: http::Method, path: &str| {
            let a = Attributes::of(&method, path, "n1");
            (a.verb, a.subresource)
        };
        assert_eq!(
            of(http::Method::GET, "/containerLogs/ns/p/c"),
            ("get", "proxy")
        );
        assert_eq!(of(http::Method::POST, "/exec/ns/p/c"), ("create", "proxy"));
        assert_eq!(of(http::Method::GET, "/stats/summary"), ("get", "stats"));
        assert_eq!(
            of(http::Method::GET, "/metrics/resource"),
            ("get", "metrics")
        );
        assert_eq!(of(http::Method::GET, "/logs/syslog"), ("get", "log"));
        assert_eq!(of(http::Method::DELETE, "/spec"), ("delete", "spec"));
        let user = User {
            name: "bob".into(),
            groups: vec![],
        };
        assert_eq!(
            Attributes::of(&http::Method::POST, "/exec/a/b/c", "n1").forbidden(&user),
            "Forbidden (user=bob, verb=create, resource=nodes, subresource=proxy)"
        );
    }
}
