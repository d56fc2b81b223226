//! The clients a controller manager hands its controllers, as upstream's
//! `k8s.io/controller-manager/pkg/clientbuilder` does.
//!
//! - [`SimpleClientBuilder`]: every controller shares the manager's own client
//!   (`--use-service-account-credentials=false`, and the controllers' tests).
//! - [`ServiceAccountClientBuilder`]: each controller acts as its own ServiceAccount in
//!   kube-system (`--use-service-account-credentials`, kubeadm's default): the manager makes sure
//!   the account exists, asks the API server for a bound token for it (TokenRequest, an hour,
//!   the API server's audiences) and gives the controller a client that sends that token — and
//!   its own user agent, `kube-controller-manager/<version> (linux/amd64) ferry/<controller>`.
//!   A background task asks for a new token before 80% of the old one's life is over, and at
//!   once when the API server answers 401 to the token (its account was deleted and made again,
//!   say: the request for a new token makes the account again, as upstream's transport resets
//!   its token on 401); it stops when the last client using the token is dropped.
//!
//! Start reading at [`ClientBuilder`]; the refresh timing is the pure [`next_refresh`].

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, ObjectMeta, PostParams};
use parking_lot::RwLock;

/// The namespace of the controllers' service accounts.
pub const NAMESPACE: &str = "kube-system";

/// How long the tokens asked for last (upstream's default `expirationSeconds`).
pub const TOKEN_EXPIRATION: Duration = Duration::from_secs(3600);

/// Why a controller's client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    /// The controller's ServiceAccount could not be read or created.
    #[error("ensuring the service account {NAMESPACE}/{account}: {source}")]
    ServiceAccount {
        /// The account.
        account: String,
        /// The failed call.
        source: kube::Error,
    },
    /// The TokenRequest failed.
    #[error("requesting a token for {NAMESPACE}/{account}: {source}")]
    Token {
        /// The account.
        account: String,
        /// The failed call.
        source: kube::Error,
    },
    /// The TokenRequest was answered without a token.
    #[error("the token request for {NAMESPACE}/{0} returned no usable token")]
    EmptyToken(String),
    /// The client could not be built from the manager's configuration.
    #[error("building the client of {account}: {source}")]
    Client {
        /// The account.
        account: String,
        /// Why.
        source: kube::Error,
    },
}

/// A boxed future, so the trait can be used as `dyn ClientBuilder`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What gives the controllers their clients.
pub trait ClientBuilder: Send + Sync {
    /// The manager's own client: shared informers, leader election, and the controllers
    /// upstream also runs with it (the token controller).
    fn root(&self) -> kube::Client;
    /// The client the controller whose service account is `name` acts through.
    fn client<'a>(&'a self, name: &'a str)
        -> BoxFuture<'a, Result<kube::Client, ClientBuildError>>;
}

/// One client for everything: today's behaviour without service-account credentials.
#[derive(Clone)]
pub struct SimpleClientBuilder(pub kube::Client);

impl ClientBuilder for SimpleClientBuilder {
    fn root(&self) -> kube::Client {
        self.0.clone()
    }

    fn client<'a>(
        &'a self,
        _name: &'a str,
    ) -> BoxFuture<'a, Result<kube::Client, ClientBuildError>> {
        Box::pin(async move { Ok(self.0.clone()) })
    }
}

/// Each controller as its own ServiceAccount in kube-system.
pub struct ServiceAccountClientBuilder {
    root: kube::Client,
    /// The manager's configuration, whose cluster, CA and headers the controllers' clients
    /// share (its credentials are replaced by the token).
    config: kube::Config,
    component: String,
    expiration: Duration,
}

impl ServiceAccountClientBuilder {
    /// Controllers' clients like `config`'s (the manager's own, sent by `root`), with
    /// `component` (`kube-controller-manager`) first in their user agents.
    pub fn new(root: kube::Client, config: kube::Config, component: &str) -> Self {
        ServiceAccountClientBuilder {
            root,
            config,
            component: component.to_string(),
            expiration: TOKEN_EXPIRATION,
        }
    }

    /// Makes sure `kube-system/<name>` exists (upstream's `getOrCreateServiceAccount`).
    async fn ensure_account(root: &kube::Client, name: &str) -> Result<(), ClientBuildError> {
        let api: Api<ServiceAccount> = Api::namespaced(root.clone(), NAMESPACE);
        let wrap = |source| ClientBuildError::ServiceAccount {
            account: name.to_string(),
            source,
        };
        if api.get_opt(name).await.map_err(wrap)?.is_some() {
            return Ok(());
        }
        let account = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(NAMESPACE.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &account).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(source) => Err(wrap(source)),
        }
    }

    /// A fresh token for `name` and how long it lasts.
    async fn request_token(
        root: &kube::Client,
        name: &str,
        expiration: Duration,
    ) -> Result<(String, Duration), ClientBuildError> {
        Self::ensure_account(root, name).await?;
        let api: Api<ServiceAccount> = Api::namespaced(root.clone(), NAMESPACE);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                // None: the API server's own audiences.
                audiences: Vec::new(),
                expiration_seconds: Some(expiration.as_secs() as i64),
                bound_object_ref: None,
            },
            ..Default::default()
        };
        let answer = api
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .map_err(|source| ClientBuildError::Token {
                account: name.to_string(),
                source,
            })?;
        let status = answer
            .status
            .filter(|s| !s.token.is_empty())
            .ok_or_else(|| ClientBuildError::EmptyToken(name.to_string()))?;
        let now = jiff::Timestamp::now();
        let lifetime = now
            .duration_until(status.expiration_timestamp.0)
            .unsigned_abs();
        // A server clock ahead of ours would make it look expired: trust what was asked.
        let lifetime = if lifetime.is_zero() {
            expiration
        } else {
            lifetime
        };
        Ok((status.token, lifetime))
    }
}

/// The bearer token a controller's client sends, replaced by its refresher.
struct Token(RwLock<http::HeaderValue>);

/// Tells a token's refresher that the API server refused the token (401).
#[derive(Clone)]
struct Refused(Arc<tokio::sync::Notify>);

/// Notifies [`Refused`] when a response is 401.
#[derive(Clone)]
struct WatchRefusalsLayer(Refused);

impl<S> tower::Layer<S> for WatchRefusalsLayer {
    type Service = WatchRefusals<S>;

    fn layer(&self, inner: S) -> WatchRefusals<S> {
        WatchRefusals {
            inner,
            refused: self.0.clone(),
        }
    }
}

/// The service of [`WatchRefusalsLayer`].
#[derive(Clone)]
struct WatchRefusals<S> {
    inner: S,
    refused: Refused,
}

impl<S, Req, B> tower::Service<Req> for WatchRefusals<S>
where
    S: tower::Service<Req, Response = http::Response<B>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<B>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<http::Response<B>, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let answer = self.inner.call(request);
        let refused = self.refused.clone();
        Box::pin(async move {
            let response = answer.await?;
            if response.status() == http::StatusCode::UNAUTHORIZED {
                refused.0.notify_one();
            }
            Ok(response)
        })
    }
}

fn bearer(token: &str) -> Option<http::HeaderValue> {
    let mut value = http::HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// When to ask for the next token: at 80% of the current one's `lifetime` (upstream's
/// 20% leeway), or — after `failures` failed attempts — again soon with a growing backoff,
/// never later than the refresh point of what is left.
pub fn next_refresh(lifetime: Duration, failures: u32) -> Duration {
    if failures == 0 {
        return lifetime.mul_f64(0.8);
    }
    let backoff = Duration::from_secs(1u64 << failures.min(6)); // 2 s … 64 s
    backoff.min(lifetime.mul_f64(0.2).max(Duration::from_secs(1)))
}

/// The least time between two token requests made because the token was refused.
const REFUSAL_BACKOFF: Duration = Duration::from_secs(1);

/// Keeps `token` fresh while some client still holds it: renewed at [`next_refresh`], or once
/// `refused` says the API server no longer takes it.
async fn refresh(
    root: kube::Client,
    name: String,
    expiration: Duration,
    token: Weak<Token>,
    refused: Refused,
    mut lifetime: Duration,
) {
    let mut failures = 0;
    loop {
        let wait = next_refresh(lifetime, failures);
        let started = tokio::time::Instant::now();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = refused.0.notified() => {
                tracing::info!(account = %name, "a controller's token was refused; asking for a new one");
                // Refusals of the token just replaced, or a server that refuses every token,
                // do not make a storm of requests.
                tokio::time::sleep(REFUSAL_BACKOFF).await;
            }
        }
        let wait = started.elapsed();
        let Some(held) = token.upgrade() else {
            return;
        };
        match ServiceAccountClientBuilder::request_token(&root, &name, expiration).await {
            Ok((fresh, fresh_lifetime)) => match bearer(&fresh) {
                Some(value) => {
                    *held.0.write() = value;
                    lifetime = fresh_lifetime;
                    failures = 0;
                    tracing::debug!(account = %name, ?lifetime, "refreshed a controller's token");
                }
                None => failures += 1,
            },
            Err(error) => {
                // What is left of the old token is what the backoff may use.
                lifetime = lifetime.saturating_sub(wait);
                failures += 1;
                tracing::warn!(%error, account = %name, "refreshing a controller's token");
            }
        }
    }
}

impl ClientBuilder for ServiceAccountClientBuilder {
    fn root(&self) -> kube::Client {
        self.root.clone()
    }

    fn client<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<kube::Client, ClientBuildError>> {
        Box::pin(async move {
            let (token, lifetime) = Self::request_token(&self.root, name, self.expiration).await?;
            let value = bearer(&token).ok_or_else(|| ClientBuildError::EmptyToken(name.into()))?;
            let token = Arc::new(Token(RwLock::new(value)));
            let mut config = self.config.clone();
            // The token is the only credential: a client certificate would win over it.
            config.auth_info = kube::config::AuthInfo::default();
            let config = crate::with_user_agent_value(
                config,
                &crate::controller_user_agent(&self.component, name),
            );
            let wrap = |source| ClientBuildError::Client {
                account: name.to_string(),
                source,
            };
            let sent = token.clone();
            let layer = tower::util::MapRequestLayer::new(
                move |mut request: http::Request<kube::client::Body>| {
                    request
                        .headers_mut()
                        .insert(http::header::AUTHORIZATION, sent.0.read().clone());
                    request
                },
            );
            let refused = Refused(Arc::new(tokio::sync::Notify::new()));
            let counted = crate::metrics::RequestsLayer::new(&config.cluster_url);
            let client = kube::client::ClientBuilder::try_from(config)
                .map_err(wrap)?
                .with_layer(&counted)
                .with_layer(&WatchRefusalsLayer(refused.clone()))
                .with_layer(&layer)
                .with_layer(&crate::journey::traceparent_layer())
                .build();
            tokio::spawn(refresh(
                self.root.clone(),
                name.to_string(),
                self.expiration,
                Arc::downgrade(&token),
                refused,
                lifetime,
            ));
            Ok(client)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_refreshed_at_80_percent_of_their_life() {
        let hour = Duration::from_secs(3600);
        assert_eq!(next_refresh(hour, 0), Duration::from_secs(2880));
        assert_eq!(
            next_refresh(Duration::from_secs(600), 0),
            Duration::from_secs(480)
        );
    }

    #[test]
    fn failed_refreshes_back_off_within_what_is_left() {
        let hour = Duration::from_secs(3600);
        assert_eq!(next_refresh(hour, 1), Duration::from_secs(2));
        assert_eq!(next_refresh(hour, 3), Duration::from_secs(8));
        assert_eq!(next_refresh(hour, 30), Duration::from_secs(64));
        // Little left: retry within the last fifth, never sooner than a second.
        assert_eq!(
            next_refresh(Duration::from_secs(100), 6),
            Duration::from_secs(20)
        );
        assert_eq!(next_refresh(Duration::ZERO, 6), Duration::from_secs(1));
    }

    /// A root client whose API server knows every account and counts the token requests.
    fn mock_root(requests: Arc<std::sync::atomic::AtomicUsize>) -> kube::Client {
        use std::sync::atomic::Ordering;
        let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
            let requests = requests.clone();
            async move {
                let path = request.uri().path().to_string();
                let body = if path.ends_with("/token") {
                    let n = requests.fetch_add(1, Ordering::SeqCst);
                    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(600);
                    serde_json::json!({"apiVersion": "authentication.k8s.io/v1",
                        "kind": "TokenRequest", "metadata": {},
                        "spec": {"audiences": ["https://kubernetes.default.svc"]},
                        "status": {"token": format!("token-{n}"),
                            "expirationTimestamp": expires.to_string()}})
                } else {
                    serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount",
                        "metadata": {"name": "deployment-controller", "namespace": NAMESPACE}})
                };
                let bytes = serde_json::to_vec(&body).unwrap_or_default();
                Ok::<_, std::convert::Infallible>(
                    http::Response::builder()
                        .header("content-type", "application/json")
                        .body(http_body_util::Full::new(bytes::Bytes::from(bytes)))
                        .unwrap_or_default(),
                )
            }
        });
        kube::Client::new(service, "default")
    }

    #[tokio::test(start_paused = true)]
    async fn a_controllers_token_is_replaced_before_it_expires_and_no_longer_once_dropped() {
        use std::sync::atomic::Ordering;
        let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let config = kube::Config::new("https://127.0.0.1:6443".parse().expect("url"));
        let builder = ServiceAccountClientBuilder::new(
            mock_root(requests.clone()),
            config,
            "kube-controller-manager",
        );
        let client = builder
            .client("deployment-controller")
            .await
            .expect("client");
        assert_eq!(requests.load(Ordering::SeqCst), 1);
        // A 600 s token: renewed at 480 s, not before.
        tokio::time::sleep(Duration::from_secs(470)).await;
        assert_eq!(requests.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert_eq!(requests.load(Ordering::SeqCst), 2);
        drop(client);
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(
            requests.load(Ordering::SeqCst),
            2,
            "no refresh without a client"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_token_is_replaced_at_once() {
        use std::sync::atomic::Ordering;
        use tower::{Layer as _, ServiceExt as _};
        let refused = Refused(Arc::new(tokio::sync::Notify::new()));
        // The client's layer sees the 401 …
        let server = tower::service_fn(|_request: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(
                http::Response::builder()
                    .status(401)
                    .body(())
                    .unwrap_or_default(),
            )
        });
        let answer = WatchRefusalsLayer(refused.clone())
            .layer(server)
            .oneshot(http::Request::new(()))
            .await
            .expect("answer");
        assert_eq!(answer.status(), 401);
        // … and the refresher asks for a new token long before 80% of the old one's life.
        let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let token = Arc::new(Token(RwLock::new(bearer("old").expect("header"))));
        tokio::spawn(refresh(
            mock_root(requests.clone()),
            "deployment-controller".into(),
            TOKEN_EXPIRATION,
            Arc::downgrade(&token),
            refused,
            Duration::from_secs(600),
        ));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(requests.load(Ordering::SeqCst), 1);
        assert_eq!(*token.0.read(), bearer("token-0").expect("header"));
    }
}
