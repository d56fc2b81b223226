//! TokenRequest, `POST …/serviceaccounts/<name>/token` (upstream's
//! `pkg/registry/core/serviceaccount/storage/token.go`): a token for the service account,
//! for the requested audiences (default: the API server's), lasting `expirationSeconds`
//! (default an hour, at least ten minutes), optionally bound to a Pod, Secret or Node that
//! must exist (with the uid given, if one is) — the token dies with it. What `kubectl create
//! token` and the kubelet's projected volumes ask for.

use serde_json::{json, Value};

use super::token::{Claims, KubernetesClaims, ObjectRef};
use super::Tokens;
use crate::admission::{Attributes, Operation};
use crate::rest::{self, Request, Rest};
use crate::status::{ApiError, FieldError, Target};

/// Upstream's default `expirationSeconds`.
const DEFAULT_EXPIRATION: i64 = 3600;
/// The shortest token upstream issues.
const MIN_EXPIRATION: i64 = 600;

fn invalid(name: &str, error: FieldError) -> ApiError {
    ApiError::invalid("TokenRequest", "authentication.k8s.io", name, &[error])
}

/// Answers a TokenRequest for the service account `req.name` in `req.namespace`.
pub async fn create_token(
    tokens: &Tokens,
    rest: &Rest,
    req: &Request<'_>,
) -> Result<Value, ApiError> {
    let (namespace, name) = (req.namespace, req.name);
    let mut request = rest::parse_body(&req.body, req.content_type)?;
    if !request["metadata"].is_object() {
        request["metadata"] = json!({});
    }
    request["metadata"]["name"] = json!(name);
    request["metadata"]["namespace"] = json!(namespace);
    if !request["spec"].is_object() {
        request["spec"] = json!({});
    }
    let requested = request["spec"]["expirationSeconds"]
        .as_i64()
        .unwrap_or(DEFAULT_EXPIRATION);
    if requested < MIN_EXPIRATION {
        return Err(invalid(
            name,
            FieldError::invalid_raw(
                "spec.expirationSeconds",
                requested.to_string(),
                "may not specify a duration less than 10 minutes",
            ),
        ));
    }
    if requested > 1 << 32 {
        return Err(invalid(
            name,
            FieldError::invalid_raw(
                "spec.expirationSeconds",
                requested.to_string(),
                "may not specify a duration larger than 2^32 seconds",
            ),
        ));
    }
    let expiration = match tokens.config.max_expiration {
        Some(max) if requested as u64 > max.as_secs() => max.as_secs() as i64,
        _ => requested,
    };
    let mut audiences: Vec<String> = request["spec"]["audiences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    if audiences.is_empty() {
        audiences = tokens.api_audiences().to_vec();
    }

    let service_accounts = ferry_api::registry::find("", "v1", "serviceaccounts")
        .ok_or_else(|| ApiError::internal("serviceaccounts not registered"))?;
    rest.admission
        .admit(
            &rest.storage,
            &Attributes {
                resource: service_accounts,
                subresource: "token",
                operation: Operation::Create,
                user: req.user,
                old: None,
                dry_run: false,
                warnings: None,
                audit_annotations: None,
                field_manager: None,
                auth: None,
                strategy: None,
            },
            &mut request,
        )
        .await?;
    let account = tokens
        .find("serviceaccounts", namespace, name)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(Target::of(service_accounts, name)))?;
    if account.deleting {
        return Err(ApiError::not_found(Target::of(service_accounts, name)));
    }

    let mut claims = KubernetesClaims {
        namespace: namespace.to_string(),
        serviceaccount: ObjectRef {
            name: name.to_string(),
            uid: account.uid,
        },
        pod: None,
        secret: None,
        node: None,
    };
    let reference = &request["spec"]["boundObjectRef"];
    if reference.is_object() {
        let text = |field: &str| reference[field].as_str().unwrap_or_default();
        let (kind, bound_name) = (text("kind"), text("name"));
        let plural = match (text("apiVersion"), kind) {
            ("v1", "Pod") => "pods",
            ("v1", "Secret") => "secrets",
            ("v1", "Node") => "nodes",
            (version, kind) => {
                let group = version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
                let version = version.rsplit('/').next().unwrap_or(version);
                return Err(ApiError::bad_request(format!(
                    "cannot bind token for object of type {group}/{version}, Kind={kind}"
                )));
            }
        };
        let info = ferry_api::registry::find("", "v1", plural)
            .ok_or_else(|| ApiError::internal("not registered"))?;
        let scope = if plural == "nodes" { "" } else { namespace };
        let found = tokens
            .find(plural, scope, bound_name)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found(Target::of(info, bound_name)))?;
        if !text("uid").is_empty() && text("uid") != found.uid {
            return Err(ApiError::conflict(
                Target { group: "", resource: kind, name: bound_name },
                &format!("the UID in the bound object reference ({}) does not match the UID in record. The object might have been deleted and then recreated", text("uid")),
            ));
        }
        let bound = ObjectRef {
            name: bound_name.to_string(),
            uid: found.uid.clone(),
        };
        match plural {
            "pods" => {
                // The node the pod runs on is named too, as upstream does since 1.30.
                let node = found
                    .object
                    .pointer("/spec/nodeName")
                    .and_then(Value::as_str);
                if let Some(node) = node.filter(|n| !n.is_empty()) {
                    if let Some(found) = tokens
                        .find("nodes", "", node)
                        .await
                        .map_err(ApiError::internal)?
                    {
                        claims.node = Some(ObjectRef {
                            name: node.to_string(),
                            uid: found.uid,
                        });
                    }
                }
                claims.pod = Some(bound);
            }
            "secrets" => claims.secret = Some(bound),
            _ => claims.node = Some(bound),
        }
        request["spec"]["boundObjectRef"]["uid"] = json!(found.uid);
    }
    request["spec"]["audiences"] = json!(audiences);
    request["spec"]["expirationSeconds"] = json!(expiration);
    request["apiVersion"] = json!("authentication.k8s.io/v1");
    request["kind"] = json!("TokenRequest");
    request["metadata"]["creationTimestamp"] = Value::Null;
    if req.query.get("dryRun").is_some_and(|v| v == "All") {
        return Ok(request);
    }
    let now = jiff::Timestamp::now();
    let expires = now + jiff::SignedDuration::from_secs(expiration);
    let claims = Claims {
        iss: tokens.issuer().to_string(),
        sub: format!("system:serviceaccount:{namespace}:{name}"),
        aud: audiences,
        exp: expires.as_second(),
        iat: now.as_second(),
        nbf: now.as_second(),
        jti: crate::object::new_uid(),
        kubernetes: claims,
    };
    let token = tokens.sign(&claims).map_err(ApiError::internal)?;
    request["status"] = json!({
        "token": token,
        "expirationTimestamp": jiff::Timestamp::from_second(expires.as_second())
            .map(|t| t.to_string())
            .unwrap_or_default(),
    });
    Ok(request)
}
