//! Authentication and authorization, the first two stages of the request pipeline.
//!
//! Authentication: x509 client certificates verified by TLS against the cluster CA (CN = user,
//! O = groups) and bearer tokens from a `--token-file` (upstream's CSV:
//! `token,user,uid,"group1,group2"`). A request with neither is anonymous, and anonymous
//! requests are refused with 401. Every authenticated user is also in `system:authenticated`.
//!
//! Authorization: until RBAC lands, `system:masters` may do everything; other users may read
//! discovery, version, health and OpenAPI (what upstream's `system:discovery`,
//! `system:basic-user` and `system:public-info-viewer` roles grant) and ask who they are; the
//! rest is 403 with upstream's wording.

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

/// `system:masters` may do everything; everyone authenticated may read discovery, version,
/// health, OpenAPI and review themselves. RBAC will replace this.
pub struct MastersAndDiscovery;

const PUBLIC_PATHS: &[&str] = &[
    "/api", "/apis", "/version", "/healthz", "/livez", "/readyz", "/openapi",
];

impl Authorizer for MastersAndDiscovery {
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
            MastersAndDiscovery.authorize(&admin, &list_pods),
            Decision::Allow
        );
        assert!(matches!(
            MastersAndDiscovery.authorize(&bob, &list_pods),
            Decision::Deny(_)
        ));
        assert_eq!(
            MastersAndDiscovery.authorize(&bob, &parse("GET", "/apis/apps/v1", false)),
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
}
