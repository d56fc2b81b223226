//! Authentication and authorization, the first two stages of the request pipeline.
//!
//! Authentication: x509 client certificates verified by TLS against the cluster CA (CN = user,
//! O = groups) and bearer tokens from a `--token-file` (upstream's CSV:
//! `token,user,uid,"group1,group2"`). A request with neither is anonymous, and anonymous
//! requests are refused with 401. Every authenticated user is also in `system:authenticated`.
//!
//! Bootstrap tokens (upstream's `<id>.<secret>` bearer tokens, here the one join token of
//! `ferry server`) authenticate a joining node as `system:bootstrap:<id>` in
//! `system:bootstrappers`, which may only ask for a client certificate.
//!
//! Authorization ([`DefaultAuthorizer`]): until RBAC lands, `system:masters` may do everything;
//! other users may read discovery, version, health and OpenAPI (what upstream's
//! `system:discovery`, `system:basic-user` and `system:public-info-viewer` roles grant) and ask
//! who they are; bootstrappers may create CSRs; nodes get upstream's `system:node` rules,
//! narrowed as the Node authorizer narrows them. The rest is 403 with upstream's wording.

use std::collections::HashMap;
use std::path::Path;

use crate::request::RequestInfo;

/// Who is making a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// User name.
    pub name: String,
    /// User id, when the authenticator knows one.
    pub uid: String,
    /// Groups.
    pub groups: Vec<String>,
}

impl UserInfo {
    fn new(name: String, uid: String, mut groups: Vec<String>) -> Self {
        if !groups.iter().any(|g| g == "system:authenticated") {
            groups.push("system:authenticated".into());
        }
        UserInfo { name, uid, groups }
    }

    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// What a request offers to prove who it is.
#[derive(Debug, Default, Clone)]
pub struct Credentials<'a> {
    /// The verified client certificate's subject, DER-encoded certificate.
    pub client_cert: Option<&'a [u8]>,
    /// The `Authorization: Bearer` token.
    pub bearer_token: Option<&'a str>,
}

/// Why authentication failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthnError {
    /// No credentials: anonymous requests are not allowed.
    #[error("anonymous requests are not allowed")]
    Anonymous,
    /// Credentials were offered and are not valid.
    #[error("invalid credentials: {0}")]
    Invalid(String),
}

/// One way of authenticating.
pub trait Authenticator: Send + Sync {
    /// `None` if this authenticator does not apply to the credentials.
    fn authenticate(&self, credentials: &Credentials<'_>) -> Option<Result<UserInfo, AuthnError>>;
}

/// Client certificates. The TLS layer already verified the chain against the CA; this reads
/// the user out of the subject.
pub struct X509Authenticator;

impl Authenticator for X509Authenticator {
    fn authenticate(&self, credentials: &Credentials<'_>) -> Option<Result<UserInfo, AuthnError>> {
        let der = credentials.client_cert?;
        Some(match x509_parser::parse_x509_certificate(der) {
            Ok((_, cert)) => {
                let subject = cert.subject();
                let name = subject
                    .iter_common_name()
                    .filter_map(|c| c.as_str().ok())
                    .next();
                let groups = subject
                    .iter_organization()
                    .filter_map(|o| o.as_str().ok())
                    .map(str::to_string)
                    .collect();
                match name {
                    Some(name) if !name.is_empty() => {
                        Ok(UserInfo::new(name.to_string(), String::new(), groups))
                    }
                    _ => Err(AuthnError::Invalid(
                        "client certificate without common name".into(),
                    )),
                }
            }
            Err(e) => Err(AuthnError::Invalid(format!(
                "unparsable client certificate: {e}"
            ))),
        })
    }
}

/// Static bearer tokens from a CSV file, as upstream's `--token-auth-file`.
#[derive(Debug, Default)]
pub struct TokenFileAuthenticator {
    tokens: HashMap<String, UserInfo>,
}

impl TokenFileAuthenticator {
    /// Reads the file: `token,user,uid[,"group1,group2"]` per line.
    pub fn load(path: &Path) -> std::io::Result<Self> {
        Ok(Self::parse(&std::fs::read_to_string(path)?))
    }

    /// Parses the CSV text; malformed lines are skipped with a warning.
    pub fn parse(text: &str) -> Self {
        let mut tokens = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_csv(line);
            if fields.len() < 3 || fields[0].is_empty() || fields[1].is_empty() {
                tracing::warn!(line = n + 1, "token file: need at least token,user,uid");
                continue;
            }
            let groups = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            tokens.insert(
                fields[0].clone(),
                UserInfo::new(fields[1].clone(), fields[2].clone(), groups),
            );
        }
        TokenFileAuthenticator { tokens }
    }
}

fn split_csv(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => fields.last_mut().expect("never empty").push(c),
        }
    }
    fields.into_iter().map(|f| f.trim().to_string()).collect()
}

impl Authenticator for TokenFileAuthenticator {
    fn authenticate(&self, credentials: &Credentials<'_>) -> Option<Result<UserInfo, AuthnError>> {
        let token = credentials.bearer_token?;
        Some(
            self.tokens
                .get(token)
                .cloned()
                .ok_or_else(|| AuthnError::Invalid("invalid bearer token".into())),
        )
    }
}

/// Bootstrap tokens, as upstream's `--enable-bootstrap-token-auth`, for the one join token
/// `ferry server` keeps: the bearer token `<id>.<secret>` authenticates as
/// `system:bootstrap:<id>` in `system:bootstrappers`.
pub struct BootstrapTokenAuthenticator {
    id: String,
    secret: String,
}

impl BootstrapTokenAuthenticator {
    /// The authenticator of the token `<id>.<secret>`.
    pub fn new(id: &str, secret: &str) -> Self {
        BootstrapTokenAuthenticator {
            id: id.to_string(),
            secret: secret.to_string(),
        }
    }
}

/// Whether `a == b`, in time that depends only on the lengths (upstream compares bootstrap
/// token secrets with `subtle.ConstantTimeCompare`).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `token` has the shape of a bootstrap token: `[a-z0-9]{6}.[a-z0-9]{16}`.
fn bootstrap_token_parts(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let valid = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (valid(id, 6) && valid(secret, 16)).then_some((id, secret))
}

impl Authenticator for BootstrapTokenAuthenticator {
    fn authenticate(&self, credentials: &Credentials<'_>) -> Option<Result<UserInfo, AuthnError>> {
        // Tokens of another shape are for the other token authenticators.
        let (id, secret) = bootstrap_token_parts(credentials.bearer_token?)?;
        let matches = constant_time_eq(id.as_bytes(), self.id.as_bytes())
            & constant_time_eq(secret.as_bytes(), self.secret.as_bytes());
        Some(if matches {
            Ok(UserInfo::new(
                format!("system:bootstrap:{id}"),
                String::new(),
                vec!["system:bootstrappers".into()],
            ))
        } else {
            Err(AuthnError::Invalid("invalid bootstrap token".into()))
        })
    }
}

/// Tries each authenticator in turn; the first that applies decides.
pub struct AuthenticatorChain(pub Vec<Box<dyn Authenticator>>);

impl AuthenticatorChain {
    /// Authenticates, or says why not.
    pub fn authenticate(&self, credentials: &Credentials<'_>) -> Result<UserInfo, AuthnError> {
        let mut last_error = None;
        for a in &self.0 {
            match a.authenticate(credentials) {
                Some(Ok(user)) => return Ok(user),
                Some(Err(e)) => last_error = Some(e),
                None => {}
            }
        }
        Err(last_error.unwrap_or(AuthnError::Anonymous))
    }
}

/// Who a request comes from and what they may do: the authenticators and the authorizer.
pub struct Auth {
    /// The authenticators, tried in turn.
    pub authn: AuthenticatorChain,
    /// The authorizer.
    pub authz: Box<dyn Authorizer>,
}

impl Auth {
    /// Who `credentials` belong to.
    pub fn authenticate(&self, credentials: &Credentials<'_>) -> Result<UserInfo, AuthnError> {
        self.authn.authenticate(credentials)
    }

    /// The authorizer's decision for `user` doing `request`.
    pub fn authorize(&self, user: &UserInfo, request: &RequestInfo) -> Decision {
        self.authz.authorize(user, request)
    }
}

/// An authorization decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go on.
    Allow,
    /// 403 with this reason appended to upstream's message.
    Deny(String),
}

/// Decides whether a user may do what a request asks.
pub trait Authorizer: Send + Sync {
    /// The decision.
    fn authorize(&self, user: &UserInfo, request: &RequestInfo) -> Decision;
}

/// The authorizer `ferry server` runs until RBAC lands: upstream's default grants, hard-coded.
///
/// - `system:masters` may do everything (as upstream, whatever RBAC says);
/// - everyone authenticated may read discovery, version, health and OpenAPI and review
///   themselves (`system:discovery`, `system:basic-user`, `system:public-info-viewer`);
/// - `system:bootstrappers` may create and read CertificateSigningRequests
///   (`system:node-bootstrapper`), which is all a joining node needs;
/// - `system:nodes` users named `system:node:<name>` get [`NODE_RULES`]: upstream's
///   `system:node` role narrowed the way the Node authorizer narrows it, simplified (see there).
pub struct DefaultAuthorizer;

/// Which objects a [`Rule`] covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Names {
    /// Any object.
    Any,
    /// Only the object named as the requesting node (its Node, its Lease).
    OwnNode,
}

/// One grant: these verbs on these resources (`resource` or `resource/subresource`) of one
/// API group, optionally only in one namespace, on any object or only the node's own.
#[derive(Debug, Clone, Copy)]
struct Rule {
    verbs: &'static [&'static str],
    group: &'static str,
    resources: &'static [&'static str],
    namespace: Option<&'static str>,
    names: Names,
}

const fn rule(
    verbs: &'static [&'static str],
    group: &'static str,
    resources: &'static [&'static str],
) -> Rule {
    Rule {
        verbs,
        group,
        resources,
        namespace: None,
        names: Names::Any,
    }
}

const READ: &[&str] = &["get", "list", "watch"];
const CSR_VERBS: &[&str] = &["create", "get", "list", "watch"];

/// Upstream's `system:node-bootstrapper` role.
const BOOTSTRAPPER_RULES: &[Rule] = &[rule(
    CSR_VERBS,
    "certificates.k8s.io",
    &["certificatesigningrequests"],
)];

/// What a node (`system:node:<name>` in `system:nodes`) may do: upstream's `system:node` role
/// with the Node authorizer's narrowing, simplified.
///
/// Simplification (gap) against upstream: upstream's Node authorizer lets a node read only the
/// Secrets, ConfigMaps, PVCs and PVs referenced by pods bound to it, from a graph of pods →
/// objects it keeps up to date; we have no such graph, so a node may `get` any Secret or
/// ConfigMap by name (not list or watch them). What a node may write to pods and Nodes is
/// narrowed further by the NodeRestriction check in admission (`admission::node_restriction`):
/// its own Node only, pods bound to it only, no pod creation.
const NODE_RULES: &[Rule] = &[
    rule(&["get", "list", "watch", "create"], "", &["nodes"]),
    Rule {
        names: Names::OwnNode,
        ..rule(&["update", "patch", "delete"], "", &["nodes"])
    },
    Rule {
        names: Names::OwnNode,
        ..rule(&["get", "update", "patch"], "", &["nodes/status"])
    },
    rule(&["get", "list", "watch", "delete"], "", &["pods"]),
    rule(&["update", "patch"], "", &["pods/status"]),
    rule(&["create"], "", &["pods/eviction"]),
    rule(&["create", "update", "patch"], "", &["events"]),
    rule(&["create", "update", "patch"], "events.k8s.io", &["events"]),
    Rule {
        namespace: Some("kube-node-lease"),
        ..rule(&["get", "create"], "coordination.k8s.io", &["leases"])
    },
    Rule {
        namespace: Some("kube-node-lease"),
        names: Names::OwnNode,
        ..rule(
            &["update", "patch", "delete"],
            "coordination.k8s.io",
            &["leases"],
        )
    },
    rule(READ, "", &["services", "endpoints"]),
    // The agent's service proxy runs with its node's credentials: what upstream's
    // system:node-proxier role grants kube-proxy.
    rule(READ, "discovery.k8s.io", &["endpointslices"]),
    // The agent's NetworkPolicy enforcement, likewise (k3s's policy controller reads these
    // with its agent's credentials too).
    rule(READ, "networking.k8s.io", &["networkpolicies"]),
    rule(READ, "", &["namespaces"]),
    rule(
        &["get"],
        "",
        &[
            "configmaps",
            "secrets",
            "persistentvolumeclaims",
            "persistentvolumes",
        ],
    ),
    rule(
        CSR_VERBS,
        "certificates.k8s.io",
        &["certificatesigningrequests"],
    ),
    rule(&["create"], "authentication.k8s.io", &["tokenreviews"]),
    rule(
        &["create"],
        "authorization.k8s.io",
        &["subjectaccessreviews"],
    ),
    rule(READ, "node.k8s.io", &["runtimeclasses"]),
    rule(READ, "storage.k8s.io", &["csidrivers", "csinodes"]),
];

const PUBLIC_PATHS: &[&str] = &[
    "/api", "/apis", "/version", "/healthz", "/livez", "/readyz", "/openapi",
];

/// The node a user is, if it is one: `system:node:<name>` in `system:nodes`, as upstream's
/// Node authorizer recognises nodes.
pub fn node_name(user: &UserInfo) -> Option<&str> {
    if !user.in_group("system:nodes") {
        return None;
    }
    user.name
        .strip_prefix("system:node:")
        .filter(|name| !name.is_empty())
}

impl Rule {
    /// `Some(true)`: allowed; `Some(false)`: the rule is about this request but the object is
    /// another node's; `None`: the rule does not apply.
    fn allows(&self, request: &RequestInfo, node: Option<&str>) -> Option<bool> {
        let resource = if request.subresource.is_empty() {
            request.resource.clone()
        } else {
            format!("{}/{}", request.resource, request.subresource)
        };
        let applies = request.is_resource_request
            && self.group == request.group
            && self.verbs.contains(&request.verb.as_str())
            && self.resources.contains(&resource.as_str())
            && self.namespace.is_none_or(|ns| ns == request.namespace);
        if !applies {
            return None;
        }
        match self.names {
            Names::Any => Some(true),
            Names::OwnNode => Some(node.is_some_and(|n| n == request.name)),
        }
    }
}

fn check(rules: &[Rule], request: &RequestInfo, node: Option<&str>) -> Option<Decision> {
    let mut other_node = false;
    for rule in rules {
        match rule.allows(request, node) {
            Some(true) => return Some(Decision::Allow),
            Some(false) => other_node = true,
            None => {}
        }
    }
    other_node.then(|| {
        Decision::Deny(format!(
            "node '{}' cannot modify {} '{}'",
            node.unwrap_or_default(),
            request.resource.trim_end_matches('s'),
            request.name
        ))
    })
}

impl Authorizer for DefaultAuthorizer {
    fn authorize(&self, user: &UserInfo, request: &RequestInfo) -> Decision {
        if user.in_group("system:masters") {
            return Decision::Allow;
        }
        if !request.is_resource_request {
            let read = request.verb == "get" || request.verb == "head";
            let public = PUBLIC_PATHS
                .iter()
                .any(|p| request.path == *p || request.path.starts_with(&format!("{p}/")));
            if read && public {
                return Decision::Allow;
            }
        }
        let self_review = request.verb == "create"
            && (request.resource == "selfsubjectaccessreviews"
                || request.resource == "selfsubjectrulesreviews"
                || request.resource == "selfsubjectreviews");
        if self_review {
            return Decision::Allow;
        }
        if user.in_group("system:bootstrappers") {
            if let Some(decision) = check(BOOTSTRAPPER_RULES, request, None) {
                return decision;
            }
        }
        if let Some(node) = node_name(user) {
            if let Some(decision) = check(NODE_RULES, request, Some(node)) {
                return decision;
            }
        }
        Decision::Deny(String::new())
    }
}

/// Upstream's 403 message for a denied request.
pub fn forbidden_message(user: &UserInfo, request: &RequestInfo, reason: &str) -> String {
    let suffix = if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    };
    if !request.is_resource_request {
        return format!(
            "forbidden: User \"{}\" cannot {} path \"{}\"{suffix}",
            user.name, request.verb, request.path
        );
    }
    let resource = if request.subresource.is_empty() {
        request.resource.clone()
    } else {
        format!("{}/{}", request.resource, request.subresource)
    };
    let qualified = if request.group.is_empty() {
        request.resource.clone()
    } else {
        format!("{}.{}", request.resource, request.group)
    };
    let object = if request.name.is_empty() {
        qualified
    } else {
        format!("{qualified} \"{}\"", request.name)
    };
    let scope = if request.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{}\"", request.namespace)
    };
    format!(
        "{object} is forbidden: User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}{suffix}",
        user.name, request.verb, request.group
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::parse;

    #[test]
    fn token_file_as_upstream() {
        let tokens =
            TokenFileAuthenticator::parse("t1,alice,1\nt2,bob,2,\"dev,ops\"\n# comment\nbroken\n");
        let bob = tokens.authenticate(&Credentials {
            bearer_token: Some("t2"),
            ..Default::default()
        });
        let bob = bob.expect("applies").expect("valid");
        assert_eq!(bob.name, "bob");
        assert_eq!(bob.groups, vec!["dev", "ops", "system:authenticated"]);
        let bad = tokens.authenticate(&Credentials {
            bearer_token: Some("nope"),
            ..Default::default()
        });
        assert!(matches!(bad, Some(Err(AuthnError::Invalid(_)))));
        assert!(tokens.authenticate(&Credentials::default()).is_none());
        let chain = AuthenticatorChain(vec![Box::new(X509Authenticator), Box::new(tokens)]);
        assert_eq!(
            chain.authenticate(&Credentials::default()),
            Err(AuthnError::Anonymous)
        );
    }

    #[test]
    fn masters_may_everything_others_discovery_only() {
        let admin = UserInfo::new("admin".into(), String::new(), vec!["system:masters".into()]);
        let bob = UserInfo::new("bob".into(), String::new(), vec![]);
        let list_pods = parse("GET", "/api/v1/namespaces/default/pods", false);
        assert_eq!(
            DefaultAuthorizer.authorize(&admin, &list_pods),
            Decision::Allow
        );
        assert!(matches!(
            DefaultAuthorizer.authorize(&bob, &list_pods),
            Decision::Deny(_)
        ));
        assert_eq!(
            DefaultAuthorizer.authorize(&bob, &parse("GET", "/apis/apps/v1", false)),
            Decision::Allow
        );
        assert_eq!(
            forbidden_message(&bob, &list_pods, ""),
            "pods is forbidden: User \"bob\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        );
        let get_node = parse("GET", "/api/v1/nodes/n1", false);
        assert_eq!(
            forbidden_message(&bob, &get_node, ""),
            "nodes \"n1\" is forbidden: User \"bob\" cannot get resource \"nodes\" in API group \"\" at the cluster scope"
        );
    }

    #[test]
    fn bootstrap_token_authenticates_bootstrappers() {
        let authn = BootstrapTokenAuthenticator::new("abcdef", "0123456789abcdef");
        let with = |token: &'static str| {
            authn.authenticate(&Credentials {
                bearer_token: Some(token),
                ..Default::default()
            })
        };
        let user = with("abcdef.0123456789abcdef")
            .expect("applies")
            .expect("valid");
        assert_eq!(user.name, "system:bootstrap:abcdef");
        assert_eq!(
            user.groups,
            vec!["system:bootstrappers", "system:authenticated"]
        );
        assert!(matches!(
            with("abcdef.0123456789abcdee"),
            Some(Err(AuthnError::Invalid(_)))
        ));
        assert!(matches!(
            with("zzzzzz.0123456789abcdef"),
            Some(Err(AuthnError::Invalid(_)))
        ));
        // Other shapes are other authenticators' business.
        assert!(with("abcdef.0123456789ABCDEF").is_none());
        assert!(with("t1").is_none());
        assert!(authn.authenticate(&Credentials::default()).is_none());
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    /// `kubectl auth can-i VERB RESOURCE [NAME] [-n NS] --as=USER --as-group=GROUP`, answered
    /// by the authorizer the way review.rs asks it.
    fn can_i(user: &UserInfo, verb: &str, path: &str) -> bool {
        let method = match verb {
            "get" | "list" | "watch" => "GET",
            "create" => "POST",
            "update" => "PUT",
            "patch" => "PATCH",
            "delete" => "DELETE",
            other => panic!("verb {other}"),
        };
        let mut request = parse(method, path, verb == "watch");
        request.verb = verb.to_string();
        DefaultAuthorizer.authorize(user, &request) == Decision::Allow
    }

    #[test]
    fn nodes_and_bootstrappers_as_upstream() {
        let node = UserInfo::new(
            "system:node:n1".into(),
            String::new(),
            vec!["system:nodes".into()],
        );
        let bootstrapper = UserInfo::new(
            "system:bootstrap:abcdef".into(),
            String::new(),
            vec!["system:bootstrappers".into()],
        );
        // Named like a node, but not in system:nodes: not a node.
        let impostor = UserInfo::new("system:node:n1".into(), String::new(), vec![]);
        let csrs = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
        #[rustfmt::skip]
        let table: &[(&UserInfo, &str, &str, bool)] = &[
            (&bootstrapper, "create", csrs, true),
            (&bootstrapper, "get", &format!("{csrs}/node-csr-x"), true),
            (&bootstrapper, "list", csrs, true),
            (&bootstrapper, "watch", csrs, true),
            (&bootstrapper, "delete", &format!("{csrs}/node-csr-x"), false),
            (&bootstrapper, "update", &format!("{csrs}/node-csr-x/approval"), false),
            (&bootstrapper, "get", "/api/v1/nodes/n1", false),
            (&bootstrapper, "list", "/api/v1/pods", false),
            (&node, "get", "/api/v1/nodes/n2", true),
            (&node, "list", "/api/v1/nodes", true),
            (&node, "watch", "/api/v1/nodes", true),
            (&node, "create", "/api/v1/nodes", true),
            (&node, "update", "/api/v1/nodes/n1", true),
            (&node, "patch", "/api/v1/nodes/n1/status", true),
            (&node, "update", "/api/v1/nodes/n2", false),
            (&node, "patch", "/api/v1/nodes/n2/status", false),
            (&node, "delete", "/api/v1/nodes/n1", true),
            (&node, "delete", "/api/v1/nodes/n2", false),
            (&node, "list", "/api/v1/pods", true),
            (&node, "watch", "/api/v1/pods", true),
            (&node, "get", "/api/v1/namespaces/default/pods/p", true),
            (&node, "create", "/api/v1/namespaces/kube-system/pods", false),
            (&node, "delete", "/api/v1/namespaces/default/pods/p", true),
            (&node, "update", "/api/v1/namespaces/default/pods/p", false),
            (&node, "patch", "/api/v1/namespaces/default/pods/p/status", true),
            (&node, "create", "/api/v1/namespaces/default/pods/p/eviction", true),
            (&node, "create", "/api/v1/namespaces/default/events", true),
            (&node, "patch", "/api/v1/namespaces/default/events/e", true),
            (&node, "create", "/apis/events.k8s.io/v1/namespaces/default/events", true),
            (&node, "delete", "/api/v1/namespaces/default/events/e", false),
            (&node, "get", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1", true),
            (&node, "create", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", true),
            (&node, "update", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1", true),
            (&node, "update", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n2", false),
            (&node, "update", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/n1", false),
            (&node, "get", "/api/v1/namespaces/default/secrets/s", true),
            (&node, "get", "/api/v1/namespaces/default/configmaps/c", true),
            (&node, "list", "/api/v1/namespaces/default/configmaps", false),
            (&node, "watch", "/api/v1/secrets", false),
            (&node, "watch", "/api/v1/services", true),
            (&node, "list", "/api/v1/namespaces/default/endpoints", true),
            (&node, "create", "/api/v1/namespaces/default/secrets", false),
            (&node, "get", "/api/v1/namespaces/default/persistentvolumeclaims/c", true),
            (&node, "get", "/api/v1/persistentvolumes/v", true),
            (&node, "list", "/api/v1/persistentvolumes", false),
            (&node, "create", csrs, true),
            (&node, "update", &format!("{csrs}/node-csr-x/approval"), false),
            (&node, "create", "/apis/authentication.k8s.io/v1/tokenreviews", true),
            (&node, "create", "/apis/authorization.k8s.io/v1/subjectaccessreviews", true),
            (&node, "list", "/apis/node.k8s.io/v1/runtimeclasses", true),
            (&node, "get", "/apis/storage.k8s.io/v1/csinodes/n1", true),
            (&node, "watch", "/apis/storage.k8s.io/v1/csidrivers", true),
            (&node, "create", "/apis/apps/v1/namespaces/default/deployments", false),
            (&node, "list", "/apis/apps/v1/deployments", false),
            (&node, "delete", "/api/v1/namespaces/default", false),
            (&node, "get", "/version", true),
            (&impostor, "get", "/api/v1/nodes/n1", false),
        ];
        for (user, verb, path, allowed) in table {
            assert_eq!(
                can_i(user, verb, path),
                *allowed,
                "{} {verb} {path}",
                user.name
            );
        }
        let other = parse("PUT", "/api/v1/nodes/n2", false);
        assert_eq!(
            DefaultAuthorizer.authorize(&node, &other),
            Decision::Deny("node 'n1' cannot modify node 'n2'".into())
        );
        assert_eq!(node_name(&node), Some("n1"));
        assert_eq!(node_name(&impostor), None);
    }
}
