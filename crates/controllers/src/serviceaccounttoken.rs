//! The service-account token controller (upstream's `serviceaccount-token` / TokensController):
//! a Secret of type `kubernetes.io/service-account-token` that names a service account in its
//! `kubernetes.io/service-account.name` annotation gets a legacy (non-expiring) token of that
//! account, the cluster CA and the namespace, and the account's uid in the
//! `kubernetes.io/service-account.uid` annotation; a token Secret whose account does not exist
//! (or is another one of the same name, by uid) is deleted, and so are an account's token
//! Secrets when it goes.
//!
//! Signing needs the service-account private key (upstream's
//! `--service-account-private-key-file`): the controller gets a [`LegacyTokenSigner`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::ByteString;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::{Api, ResourceExt as _};

use crate::queue::{Queue, Reconciler};
use crate::util::api_code;
use crate::{ApiContext as _, Context, Error};

/// The Secret type this controller fills.
pub const TOKEN_TYPE: &str = "kubernetes.io/service-account-token";
/// The annotation naming the service account.
pub const NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
/// The annotation holding its uid.
pub const UID_ANNOTATION: &str = "kubernetes.io/service-account.uid";

/// Signs legacy service-account tokens.
pub trait LegacyTokenSigner: Send + Sync {
    /// A token of `namespace/account` (uid `uid`) held by the Secret `secret`.
    fn sign(
        &self,
        namespace: &str,
        account: &str,
        uid: &str,
        secret: &str,
    ) -> Result<String, String>;
}

/// The controller and its queue of token Secrets (namespace, name).
pub struct TokenController {
    ctx: Arc<Context>,
    queue: Arc<Queue<(String, String)>>,
    signer: Arc<dyn LegacyTokenSigner>,
}

impl Reconciler for TokenController {
    type Key = (String, String);
    type Error = Error;
    const NAME: &'static str = "serviceaccount-token";

    fn queue(&self) -> &Arc<Queue<(String, String)>> {
        &self.queue
    }

    async fn reconcile(self: Arc<Self>, key: (String, String)) -> Result<Option<Duration>, Error> {
        self.sync(key).await
    }
}

/// What becomes of a token Secret.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// It is complete.
    Nothing,
    /// Its account is gone (or is another one): delete it.
    Delete,
    /// Fill in what is missing (the token when `token` is true).
    Fill {
        /// Whether a token must be made.
        token: bool,
    },
}

/// Decides for `secret` given its `account` (upstream's `syncSecret`).
pub fn decide(secret: &Secret, account: Option<&ServiceAccount>, ca: Option<&str>) -> Action {
    let annotations = secret.metadata.annotations.clone().unwrap_or_default();
    let Some(account) = account else {
        return Action::Delete;
    };
    let wanted_uid = annotations.get(UID_ANNOTATION).filter(|u| !u.is_empty());
    if wanted_uid.is_some_and(|uid| Some(uid) != account.metadata.uid.as_ref()) {
        return Action::Delete;
    }
    let data = secret.data.clone().unwrap_or_default();
    let has = |key: &str| data.get(key).is_some_and(|v| !v.0.is_empty());
    let token = !has("token");
    let ca_missing =
        ca.is_some_and(|ca| data.get("ca.crt").map(|v| v.0.as_slice()) != Some(ca.as_bytes()));
    if token || ca_missing || !has("namespace") || wanted_uid.is_none() {
        Action::Fill { token }
    } else {
        Action::Nothing
    }
}

impl TokenController {
    /// Registers the handlers.
    pub fn new(ctx: Arc<Context>, signer: Arc<dyn LegacyTokenSigner>) -> Arc<TokenController> {
        let controller = Arc::new(TokenController {
            ctx: ctx.clone(),
            queue: Queue::new(),
            signer,
        });
        let c = controller.clone();
        ctx.token_secrets.add_handler(move |_, new| {
            if let Some(secret) = new {
                c.queue
                    .add((secret.namespace().unwrap_or_default(), secret.name_any()));
            }
        });
        // An account's going (or coming back) concerns the Secrets that name it.
        let c = controller.clone();
        ctx.service_accounts.add_handler(move |old, new| {
            let Some(account) = new.or(old) else { return };
            let namespace = account.namespace().unwrap_or_default();
            for secret in c.ctx.token_secrets.list_namespace(&namespace) {
                let names_it = secret
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(NAME_ANNOTATION))
                    == Some(&account.name_any());
                if names_it {
                    c.queue.add((namespace.clone(), secret.name_any()));
                }
            }
        });
        controller
    }

    async fn sync(&self, (namespace, name): (String, String)) -> Result<Option<Duration>, Error> {
        let Some(secret) = self.ctx.token_secrets.get(&namespace, &name) else {
            return Ok(None);
        };
        if secret.type_.as_deref() != Some(TOKEN_TYPE)
            || secret.metadata.deletion_timestamp.is_some()
        {
            return Ok(None);
        }
        let account_name = secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(NAME_ANNOTATION))
            .cloned()
            .unwrap_or_default();
        let account = self.ctx.service_accounts.get(&namespace, &account_name);
        let ca = self.ctx.options.root_ca.as_deref();
        let api: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &namespace);
        match decide(&secret, account.as_deref(), ca) {
            Action::Nothing => Ok(None),
            Action::Delete => {
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: secret.metadata.uid.clone(),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                match api.delete(&name, &params).await {
                    Ok(_) => Ok(None),
                    Err(e) if matches!(api_code(&e), Some(404 | 409)) => Ok(None),
                    Err(e) => {
                        Err(e).context("deleting a token secret of a missing service account")
                    }
                }
            }
            Action::Fill { token } => {
                let account = account.expect("decide fills only with an account");
                let uid = account.metadata.uid.clone().unwrap_or_default();
                let mut updated = (*secret).clone();
                let data = updated.data.get_or_insert_with(BTreeMap::new);
                if token {
                    let signed = self
                        .signer
                        .sign(&namespace, &account_name, &uid, &name)
                        .map_err(Error::Signing)?;
                    data.insert("token".into(), ByteString(signed.into_bytes()));
                }
                if let Some(ca) = ca {
                    data.insert("ca.crt".into(), ByteString(ca.as_bytes().to_vec()));
                }
                data.insert(
                    "namespace".into(),
                    ByteString(namespace.clone().into_bytes()),
                );
                updated
                    .metadata
                    .annotations
                    .get_or_insert_with(BTreeMap::new)
                    .insert(UID_ANNOTATION.into(), uid);
                match api.replace(&name, &PostParams::default(), &updated).await {
                    Ok(_) => Ok(None),
                    Err(e) if matches!(api_code(&e), Some(404)) => Ok(None),
                    Err(e) => Err(e).context("filling a token secret"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn secret(annotations: &[(&str, &str)], data: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("tok".into()),
                namespace: Some("ns".into()),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            type_: Some(TOKEN_TYPE.into()),
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn account(uid: &str) -> ServiceAccount {
        ServiceAccount {
            metadata: ObjectMeta {
                name: Some("robot".into()),
                namespace: Some("ns".into()),
                uid: Some(uid.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn token_secrets_are_filled_once_and_die_with_their_account() {
        let fresh = secret(&[(NAME_ANNOTATION, "robot")], &[]);
        assert_eq!(
            decide(&fresh, Some(&account("u1")), Some("CA")),
            Action::Fill { token: true }
        );
        assert_eq!(decide(&fresh, None, Some("CA")), Action::Delete);
        let filled = secret(
            &[(NAME_ANNOTATION, "robot"), (UID_ANNOTATION, "u1")],
            &[("token", "t"), ("ca.crt", "CA"), ("namespace", "ns")],
        );
        assert_eq!(
            decide(&filled, Some(&account("u1")), Some("CA")),
            Action::Nothing
        );
        // A new CA is written, the token kept.
        assert_eq!(
            decide(&filled, Some(&account("u1")), Some("CA2")),
            Action::Fill { token: false }
        );
        // The account of that name is another one now.
        assert_eq!(
            decide(&filled, Some(&account("u2")), Some("CA")),
            Action::Delete
        );
    }
}
