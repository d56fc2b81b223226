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
//! Authorization: an [`AuthorizerChain`] in upstream's order — [`PrivilegedGroups`]
//! (`system:masters` may do everything), then the modes of `--authorization-mode` (by default
//! the Node authorizer, [`crate::node_authorizer`], and RBAC, [`crate::rbac`]). The first to
//! allow wins; when none does the request is 403 with upstream's wording and their reasons.

use std::collections::HashMap;
use std::path::Path;

use k8s_openapi::api::rbac::v1::PolicyRule;

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
    pub(crate) fn new(name: String, uid: String, mut groups: Vec<String>) -> Self {
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
#[async_trait::async_trait]
pub trait Authenticator: Send + Sync {
    /// `None` if this authenticator does not apply to the credentials.
    async fn authenticate(
        &self,
        credentials: &Credentials<'_>,
    ) -> Option<Result<UserInfo, AuthnError>>;
}

/// Client certificates. The TLS layer already verified the chain against the CA; this reads
/// the user out of the subject.
pub struct X509Authenticator;

#[async_trait::async_trait]
impl Authenticator for X509Authenticator {
    async fn authenticate(
        &self,
        credentials: &Credentials<'_>,
    ) -> Option<Result<UserInfo, AuthnError>> {
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

#[async_trait::async_trait]
impl Authenticator for TokenFileAuthenticator {
    async fn authenticate(
        &self,
        credentials: &Credentials<'_>,
    ) -> Option<Result<UserInfo, AuthnError>> {
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

#[async_trait::async_trait]
impl Authenticator for BootstrapTokenAuthenticator {
    async fn authenticate(
        &self,
        credentials: &Credentials<'_>,
    ) -> Option<Result<UserInfo, AuthnError>> {
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
    pub async fn authenticate(
        &self,
        credentials: &Credentials<'_>,
    ) -> Result<UserInfo, AuthnError> {
        let mut last_error = None;
        for a in &self.0 {
            match a.authenticate(credentials).await {
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
    pub async fn authenticate(
        &self,
        credentials: &Credentials<'_>,
    ) -> Result<UserInfo, AuthnError> {
        self.authn.authenticate(credentials).await
    }

    /// The authorizer's decision for `user` doing `request` (in memory, unless a mode calls
    /// out).
    pub async fn authorize(&self, user: &UserInfo, request: &RequestInfo) -> Decision {
        if self.authz.calls_out() {
            self.authz.authorize_async(user, request).await
        } else {
            self.authz.authorize(user, request)
        }
    }
}

/// An authorization decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go on.
    Allow,
    /// Not allowed by this authorizer (upstream's NoOpinion: the next one may still allow);
    /// the reason, if any, is appended to upstream's 403 message.
    Deny(String),
    /// Denied outright (upstream's DecisionDeny, a webhook's `denied: true`): no later
    /// authorizer is asked.
    Forbid(String),
}

impl Decision {
    /// Whether the request may go on.
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }
}

/// Decides whether a user may do what a request asks.
#[async_trait::async_trait]
pub trait Authorizer: Send + Sync {
    /// The decision, for authorizers that decide in memory.
    fn authorize(&self, user: &UserInfo, request: &RequestInfo) -> Decision;

    /// Whether the decision takes a call out ([`Authorizer::authorize_async`] must be asked:
    /// the webhook).
    fn calls_out(&self) -> bool {
        false
    }

    /// The decision of an authorizer that calls out; the others' is [`Authorizer::authorize`].
    async fn authorize_async(&self, user: &UserInfo, request: &RequestInfo) -> Decision {
        self.authorize(user, request)
    }

    /// Adds the rules `user` holds in `namespace` to `rules` (upstream's `RuleResolver`, for
    /// SelfSubjectRulesReview); an error says the list is incomplete, and why.
    fn rules_for(
        &self,
        _user: &UserInfo,
        _namespace: &str,
        _rules: &mut Vec<PolicyRule>,
    ) -> Result<(), String> {
        Ok(())
    }
}

/// Authorizers asked in turn (upstream's union authorizer): the first that allows wins, one
/// that forbids ends it, and otherwise every reason is given.
pub struct AuthorizerChain(pub Vec<Box<dyn Authorizer>>);

/// The reasons a chain has heard so far.
#[derive(Default)]
struct Union(Vec<String>);

impl Union {
    /// Takes one authorizer's decision; the chain's, if that one settles it.
    fn hear(&mut self, decision: Decision) -> Option<Decision> {
        match decision {
            Decision::Deny(reason) => {
                if !reason.is_empty() {
                    self.0.push(reason);
                }
                None
            }
            settled => Some(settled),
        }
    }

    fn end(self) -> Decision {
        Decision::Deny(self.0.join("\n"))
    }
}

#[async_trait::async_trait]
impl Authorizer for AuthorizerChain {
    fn authorize(&self, user: &UserInfo, request: &RequestInfo) -> Decision {
        let mut union = Union::default();
        for authorizer in &self.0 {
            if let Some(settled) = union.hear(authorizer.authorize(user, request)) {
                return settled;
            }
        }
        union.end()
    }

    fn calls_out(&self) -> bool {
        self.0.iter().any(|a| a.calls_out())
    }

    async fn authorize_async(&self, user: &UserInfo, request: &RequestInfo) -> Decision {
        let mut union = Union::default();
        for authorizer in &self.0 {
            let decision = if authorizer.calls_out() {
                authorizer.authorize_async(user, request).await
            } else {
                authorizer.authorize(user, request)
            };
            if let Some(settled) = union.hear(decision) {
                return settled;
            }
        }
        union.end()
    }

    fn rules_for(
        &self,
        user: &UserInfo,
        namespace: &str,
        rules: &mut Vec<PolicyRule>,
    ) -> Result<(), String> {
        let errors: Vec<String> = self
            .0
            .iter()
            .filter_map(|a| a.rules_for(user, namespace, rules).err())
            .collect();
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.concat()),
            _ => Err(format!("[{}]", errors.join(", "))),
        }
    }
}

/// Rules that allow everything: what `system:masters` and `cluster-admin` hold.
pub fn full_authority() -> Vec<PolicyRule> {
    let star = || Some(vec!["*".to_string()]);
    vec![
        PolicyRule {
            verbs: vec!["*".into()],
            api_groups: star(),
            resources: star(),
            ..Default::default()
        },
        PolicyRule {
            verbs: vec!["*".into()],
            non_resource_urls: star(),
            ..Default::default()
        },
    ]
}

/// The group whose members may do everything, whatever RBAC says (upstream's
/// `user.SystemPrivilegedGroup`).
pub const PRIVILEGED_GROUP: &str = "system:masters";

/// Upstream's privileged-groups authorizer, always first: `system:masters` may do everything.
pub struct PrivilegedGroups;

impl Authorizer for PrivilegedGroups {
    fn authorize(&self, user: &UserInfo, _request: &RequestInfo) -> Decision {
        if user.in_group(PRIVILEGED_GROUP) {
            Decision::Allow
        } else {
            Decision::Deny(String::new())
        }
    }

    fn rules_for(
        &self,
        user: &UserInfo,
        _namespace: &str,
        rules: &mut Vec<PolicyRule>,
    ) -> Result<(), String> {
        if user.in_group(PRIVILEGED_GROUP) {
            rules.extend(full_authority());
        }
        Ok(())
    }
}

/// `--authorization-mode=AlwaysAllow`: everyone authenticated may do everything.
pub struct AlwaysAllow;

impl Authorizer for AlwaysAllow {
    fn authorize(&self, _user: &UserInfo, _request: &RequestInfo) -> Decision {
        Decision::Allow
    }

    fn rules_for(
        &self,
        _user: &UserInfo,
        _namespace: &str,
        rules: &mut Vec<PolicyRule>,
    ) -> Result<(), String> {
        rules.extend(full_authority());
        Ok(())
    }
}

/// One of `--authorization-mode`'s modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizationMode {
    /// Allow every request.
    AlwaysAllow,
    /// Deny every request not allowed by an earlier mode (or `system:masters`).
    AlwaysDeny,
    /// The Node authorizer.
    Node,
    /// Role-based access control.
    Rbac,
    /// SubjectAccessReviews sent to the service `--authorization-webhook-config-file` names.
    Webhook,
}

impl std::str::FromStr for AuthorizationMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "AlwaysAllow" => AuthorizationMode::AlwaysAllow,
            "AlwaysDeny" => AuthorizationMode::AlwaysDeny,
            "Node" => AuthorizationMode::Node,
            "RBAC" => AuthorizationMode::Rbac,
            "Webhook" => AuthorizationMode::Webhook,
            other => {
                return Err(format!(
                    "authorization mode {other:?} is not supported (AlwaysAllow, AlwaysDeny, Node, RBAC, Webhook)"
                ))
            }
        })
    }
}

/// Upstream's default `--authorization-mode`.
pub const DEFAULT_AUTHORIZATION_MODES: &[AuthorizationMode] =
    &[AuthorizationMode::Node, AuthorizationMode::Rbac];

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
    use futures::executor::block_on;

    #[test]
    fn token_file_as_upstream() {
        let tokens =
            TokenFileAuthenticator::parse("t1,alice,1\nt2,bob,2,\"dev,ops\"\n# comment\nbroken\n");
        let bob = block_on(tokens.authenticate(&Credentials {
            bearer_token: Some("t2"),
            ..Default::default()
        }));
        let bob = bob.expect("applies").expect("valid");
        assert_eq!(bob.name, "bob");
        assert_eq!(bob.groups, vec!["dev", "ops", "system:authenticated"]);
        let bad = block_on(tokens.authenticate(&Credentials {
            bearer_token: Some("nope"),
            ..Default::default()
        }));
        assert!(matches!(bad, Some(Err(AuthnError::Invalid(_)))));
        assert!(block_on(tokens.authenticate(&Credentials::default())).is_none());
        let chain = AuthenticatorChain(vec![Box::new(X509Authenticator), Box::new(tokens)]);
        assert_eq!(
            block_on(chain.authenticate(&Credentials::default())),
            Err(AuthnError::Anonymous)
        );
    }

    #[test]
    fn the_chain_allows_on_the_first_allow_and_words_denials_as_upstream() {
        struct Says(&'static str);
        impl Authorizer for Says {
            fn authorize(&self, _user: &UserInfo, _request: &RequestInfo) -> Decision {
                match self.0 {
                    "allow" => Decision::Allow,
                    reason => Decision::Deny(reason.to_string()),
                }
            }
        }
        let admin = UserInfo::new("admin".into(), String::new(), vec!["system:masters".into()]);
        let bob = UserInfo::new("bob".into(), String::new(), vec![]);
        let list_pods = parse("GET", "/api/v1/namespaces/default/pods", false);
        let chain = AuthorizerChain(vec![
            Box::new(PrivilegedGroups),
            Box::new(Says("")),
            Box::new(Says("no")),
        ]);
        assert_eq!(chain.authorize(&admin, &list_pods), Decision::Allow);
        assert_eq!(
            chain.authorize(&bob, &list_pods),
            Decision::Deny("no".into())
        );
        let chain = AuthorizerChain(vec![Box::new(Says("first")), Box::new(Says("allow"))]);
        assert_eq!(chain.authorize(&bob, &list_pods), Decision::Allow);
        let mut rules = Vec::new();
        assert_eq!(PrivilegedGroups.rules_for(&admin, "", &mut rules), Ok(()));
        assert_eq!(rules, full_authority());
        assert_eq!(
            forbidden_message(&bob, &list_pods, ""),
            "pods is forbidden: User \"bob\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        );
        let get_node = parse("GET", "/api/v1/nodes/n1", false);
        assert_eq!(
            forbidden_message(&bob, &get_node, "RBAC: clusterrole.rbac.authorization.k8s.io \"x\" not found"),
            "nodes \"n1\" is forbidden: User \"bob\" cannot get resource \"nodes\" in API group \"\" at the cluster scope: RBAC: clusterrole.rbac.authorization.k8s.io \"x\" not found"
        );
        assert_eq!("RBAC".parse(), Ok(AuthorizationMode::Rbac));
        assert!("ABAC".parse::<AuthorizationMode>().is_err());
    }

    #[tokio::test]
    async fn a_forbidding_authorizer_ends_the_chain_and_one_that_calls_out_is_awaited() {
        /// Forbids, asynchronously only.
        struct Remote;
        #[async_trait::async_trait]
        impl Authorizer for Remote {
            fn authorize(&self, _user: &UserInfo, _request: &RequestInfo) -> Decision {
                Decision::Deny(String::new())
            }
            fn calls_out(&self) -> bool {
                true
            }
            async fn authorize_async(&self, _user: &UserInfo, _request: &RequestInfo) -> Decision {
                tokio::task::yield_now().await;
                Decision::Forbid("banned".into())
            }
        }
        let bob = UserInfo::new("bob".into(), String::new(), vec![]);
        let list_pods = parse("GET", "/api/v1/namespaces/default/pods", false);
        let auth = Auth {
            authn: AuthenticatorChain(vec![]),
            authz: Box::new(AuthorizerChain(vec![
                Box::new(Remote),
                Box::new(AlwaysAllow),
            ])),
        };
        assert!(auth.authz.calls_out());
        assert_eq!(
            auth.authorize(&bob, &list_pods).await,
            Decision::Forbid("banned".into())
        );
        // In memory only, the remote one has no opinion and the next allows.
        assert_eq!(auth.authz.authorize(&bob, &list_pods), Decision::Allow);
    }

    #[test]
    fn bootstrap_token_authenticates_bootstrappers() {
        let authn = BootstrapTokenAuthenticator::new("abcdef", "0123456789abcdef");
        let with = |token: &'static str| {
            block_on(authn.authenticate(&Credentials {
                bearer_token: Some(token),
                ..Default::default()
            }))
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
        assert!(block_on(authn.authenticate(&Credentials::default())).is_none());
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
