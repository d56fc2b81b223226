//! What a request asks for, read off its method, path and query as upstream's
//! `RequestInfoFactory` does: the verb (`get`, `list`, `watch`, `create`, …), the API group and
//! version, namespace, resource, subresource and name. Authorization and the REST handlers both
//! work from this.

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestInfo {
    /// Whether the path is under `/api` or `/apis` (a resource request) rather than
    /// `/version`, `/healthz`, `/openapi/…` (a non-resource request).
    pub is_resource_request: bool,
    /// The path, for non-resource requests.
    pub path: String,
    /// Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection, or
    /// the lower-cased HTTP method for non-resource requests.
    pub verb: String,
    /// `api` or `apis`.
    pub api_prefix: String,
    /// API group ("" for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Namespace, when the path has one.
    pub namespace: String,
    /// Resource (plural); empty for discovery paths like `/api/v1`.
    pub resource: String,
    /// Subresource (`status`, `scale`, `binding`, …).
    pub subresource: String,
    /// Object name.
    pub name: String,
}

/// Parses a request. `watch` says whether the query asks for a watch (`watch=true|1`).
pub fn parse(method: &str, path: &str, watch: bool) -> RequestInfo {
    let mut info = RequestInfo {
        path: path.to_string(),
        verb: method.to_ascii_lowercase(),
        ..Default::default()
    };
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let (prefix, rest) = match parts.split_first() {
        Some((p, rest)) if *p == "api" || *p == "apis" => (*p, rest),
        _ => return info,
    };
    info.api_prefix = prefix.to_string();
    let mut rest = rest.to_vec();
    if prefix == "apis" {
        if rest.is_empty() {
            return info;
        }
        info.group = rest.remove(0).to_string();
    }
    if rest.is_empty() {
        return info;
    }
    info.version = rest.remove(0).to_string();
    info.is_resource_request = true;
    // Old-style watch paths: /api/v1/watch/namespaces/x/pods
    let mut legacy_watch = false;
    if rest.first() == Some(&"watch") {
        rest.remove(0);
        legacy_watch = true;
    }
    if rest.first() == Some(&"namespaces") && rest.len() >= 2 {
        // /namespaces/{ns}/{resource}... — but /namespaces/{name} alone is the namespace itself.
        if rest.len() == 2 || (rest.len() == 3 && (rest[2] == "status" || rest[2] == "finalize")) {
            // The namespace object itself, or its status/finalize subresources.
            info.resource = "namespaces".into();
            info.name = rest[1].to_string();
            info.subresource = rest.get(2).map(|s| s.to_string()).unwrap_or_default();
        } else {
            info.namespace = rest[1].to_string();
            rest.drain(..2);
            info.resource = rest[0].to_string();
            info.name = rest.get(1).map(|s| s.to_string()).unwrap_or_default();
            info.subresource = rest.get(2..).map(|s| s.join("/")).unwrap_or_default();
        }
    } else if let Some(resource) = rest.first() {
        info.resource = resource.to_string();
        info.name = rest.get(1).map(|s| s.to_string()).unwrap_or_default();
        info.subresource = if rest.get(2) == Some(&"proxy") {
            // Upstream: the subresource is `proxy`; what follows is the path on the target
            // (read again from `path` by the proxy handler).
            "proxy".to_string()
        } else {
            rest.get(2..).map(|s| s.join("/")).unwrap_or_default()
        };
    } else {
        // /api/v1: discovery of a group version.
        info.is_resource_request = false;
        return info;
    }
    info.verb = match method {
        "GET" | "HEAD" => {
            if watch || legacy_watch {
                "watch"
            } else if info.name.is_empty() {
                "list"
            } else {
                "get"
            }
        }
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => {
            if info.name.is_empty() {
                "deletecollection"
            } else {
                "delete"
            }
        }
        other => {
            return RequestInfo {
                verb: other.to_ascii_lowercase(),
                ..info
            }
        }
    }
    .to_string();
    info
}

/// A boolean query parameter as upstream reads it (Go's `strconv.ParseBool`).
pub use ferry_api::query::parse_bool as query_bool;

#[cfg(test)]
mod tests {
    use super::*;

    fn p(method: &str, path: &str) -> (String, String, String, String, String, String) {
        let i = parse(method, path, false);
        (
            i.verb,
            i.group,
            i.namespace,
            i.resource,
            i.name,
            i.subresource,
        )
    }

    fn t(v: [&str; 6]) -> (String, String, String, String, String, String) {
        (
            v[0].into(),
            v[1].into(),
            v[2].into(),
            v[3].into(),
            v[4].into(),
            v[5].into(),
        )
    }

    #[test]
    fn paths_as_upstream_reads_them() {
        assert_eq!(
            p("GET", "/api/v1/namespaces/default/pods"),
            t(["list", "", "default", "pods", "", ""])
        );
        assert_eq!(
            p("GET", "/api/v1/namespaces/default/pods/web"),
            t(["get", "", "default", "pods", "web", ""])
        );
        assert_eq!(
            p("PUT", "/api/v1/namespaces/default/pods/web/status"),
            t(["update", "", "default", "pods", "web", "status"])
        );
        assert_eq!(
            p("POST", "/api/v1/namespaces/default/pods/web/binding"),
            t(["create", "", "default", "pods", "web", "binding"])
        );
        assert_eq!(
            p("GET", "/api/v1/namespaces"),
            t(["list", "", "", "namespaces", "", ""])
        );
        assert_eq!(
            p("DELETE", "/api/v1/namespaces/x"),
            t(["delete", "", "", "namespaces", "x", ""])
        );
        assert_eq!(
            p("PUT", "/api/v1/namespaces/x/finalize"),
            t(["update", "", "", "namespaces", "x", "finalize"])
        );
        assert_eq!(
            p("GET", "/api/v1/pods"),
            t(["list", "", "", "pods", "", ""])
        );
        assert_eq!(
            p("DELETE", "/apis/apps/v1/namespaces/d/deployments"),
            t(["deletecollection", "apps", "d", "deployments", "", ""])
        );
        assert_eq!(
            p("PATCH", "/apis/apps/v1/namespaces/d/deployments/w/scale"),
            t(["patch", "apps", "d", "deployments", "w", "scale"])
        );
        assert_eq!(
            p("GET", "/api/v1/nodes/n1"),
            t(["get", "", "", "nodes", "n1", ""])
        );
        assert_eq!(
            parse("GET", "/api/v1/namespaces/d/pods", true).verb,
            "watch"
        );
        assert_eq!(
            parse("GET", "/api/v1/watch/namespaces/d/pods", false).verb,
            "watch"
        );
        assert!(!parse("GET", "/version", false).is_resource_request);
        assert!(!parse("GET", "/apis/apps/v1", false).is_resource_request);
        assert!(!parse("GET", "/apis", false).is_resource_request);
    }
}
