//! API aggregation, as upstream's kube-aggregator does it: `apiregistration.k8s.io/v1`
//! APIServices say who serves each group-version. A local one (no `spec.service`) is served by
//! this server; the server keeps one per built-in and custom group-version itself
//! ([`autoregister`]). A remote one has its `/apis/<group>/<version>` requests proxied to a ready
//! endpoint of its Service ([`proxy`]) once ferry has authenticated and authorized them,
//! trusting the APIService's `caBundle`, presenting the front-proxy client certificate and
//! naming the user in `X-Remote-User`/`X-Remote-Group`. Its `Available` condition comes from
//! the Service, its endpoints and a GET of its discovery document ([`available`]), which is
//! also what discovery lists for it ([`Aggregator::discovery`]).
//!
//! One task runs both controllers: every second it compares the custom resources served and
//! the Services and EndpointSlices seen with what it last saw, and checks each remote APIService
//! again when it changed, when a proxied request failed to reach it, or when its time came (30 s
//! after a success; sooner, backing off, after a failure).

pub mod autoregister;
pub mod available;
mod openapi;
pub mod proxy;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ferry_store::{Event, EventKind, KeyValue};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::discovery::RemoteVersion;
use crate::reflector::{self, Objects, Reflected};
use crate::rest::Rest;
use crate::status::ApiError;

/// Where APIServices are kept.
const PREFIX: &str = "/apiservices/";

/// How often the controllers look for changes.
const TICK: Duration = Duration::from_secs(1);

/// How long a remote APIService that passed its check waits for the next one (upstream's
/// informer resync).
const RESYNC: Duration = Duration::from_secs(30);

/// The first wait after a failed check; doubled after each further failure, up to [`RESYNC`].
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// A remote APIService, as the proxy and the availability check need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// The APIService's name (`<version>.<group>`).
    pub name: String,
    /// Its group.
    pub group: String,
    /// Its version.
    pub version: String,
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub service: String,
    /// The Service's port.
    pub port: i32,
    /// `spec.caBundle` (base64 PEM), if set.
    pub ca_bundle: Option<String>,
    /// `spec.insecureSkipTLSVerify`.
    pub insecure: bool,
    /// Whether its `Available` condition is `True`.
    pub available: bool,
    /// `spec.groupPriorityMinimum`.
    pub group_priority: i64,
    /// `spec.versionPriority`.
    pub version_priority: i64,
}

impl Remote {
    /// The remote APIService `apiservice` describes; `None` for a local one.
    pub fn of(apiservice: &Value) -> Option<Remote> {
        let service = apiservice
            .pointer("/spec/service")
            .filter(|s| s.is_object())?;
        let text = |v: &Value, pointer: &str| {
            v.pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let number = |pointer: &str| apiservice.pointer(pointer).and_then(Value::as_i64);
        Some(Remote {
            name: text(apiservice, "/metadata/name"),
            group: text(apiservice, "/spec/group"),
            version: text(apiservice, "/spec/version"),
            namespace: text(service, "/namespace"),
            service: text(service, "/name"),
            port: service["port"]
                .as_i64()
                .and_then(|p| i32::try_from(p).ok())
                .unwrap_or(443),
            ca_bundle: apiservice
                .pointer("/spec/caBundle")
                .and_then(Value::as_str)
                .filter(|b| !b.is_empty())
                .map(String::from),
            insecure: apiservice
                .pointer("/spec/insecureSkipTLSVerify")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            available: available::is_available(apiservice),
            group_priority: number("/spec/groupPriorityMinimum").unwrap_or(0),
            version_priority: number("/spec/versionPriority").unwrap_or(0),
        })
    }

    /// The name its serving certificate must carry (upstream's `<service>.<namespace>.svc`).
    pub fn server_name(&self) -> String {
        format!("{}.{}.svc", self.service, self.namespace)
    }
}

/// The APIServices as last seen in the store, by name, and the names that changed since.
struct ApiServices {
    stored: parking_lot::RwLock<BTreeMap<String, Value>>,
    /// The remote ones by group and version, read on every `/apis` request: rebuilt when an
    /// APIService changes, not parsed per request.
    remotes: parking_lot::RwLock<HashMap<String, HashMap<String, Arc<Remote>>>>,
    changed: mpsc::UnboundedSender<String>,
}

impl ApiServices {
    /// Rebuilds the remote index from `stored`.
    fn index(&self, stored: &BTreeMap<String, Value>) {
        let mut remotes: HashMap<String, HashMap<String, Arc<Remote>>> = HashMap::new();
        for remote in stored.values().filter_map(Remote::of) {
            remotes
                .entry(remote.group.clone())
                .or_default()
                .insert(remote.version.clone(), Arc::new(remote));
        }
        *self.remotes.write() = remotes;
    }
}

fn name_of(kv: &KeyValue) -> String {
    String::from_utf8_lossy(&kv.key[PREFIX.len().min(kv.key.len())..]).into_owned()
}

impl Reflected for ApiServices {
    fn prefixes(&self) -> &'static [&'static str] {
        &[PREFIX]
    }

    fn replace(&self, listed: Vec<(usize, KeyValue)>) {
        let mut stored = self.stored.write();
        let before: Vec<String> = stored.keys().cloned().collect();
        stored.clear();
        for (_, kv) in listed {
            if let Ok(object) = serde_json::from_slice(&kv.value) {
                stored.insert(name_of(&kv), object);
            }
        }
        self.index(&stored);
        for name in before.iter().chain(stored.keys()) {
            let _ = self.changed.send(name.clone());
        }
    }

    fn apply(&self, _index: usize, events: &[Event]) {
        let mut stored = self.stored.write();
        for event in events {
            let name = name_of(&event.kv);
            match event.kind {
                EventKind::Put => {
                    if let Ok(object) = serde_json::from_slice(&event.kv.value) {
                        stored.insert(name.clone(), object);
                    }
                }
                EventKind::Delete => {
                    stored.remove(&name);
                }
            }
            let _ = self.changed.send(name);
        }
        self.index(&stored);
    }
}

/// What a TLS client configuration depends on: the CA bundle and whether to skip verification.
type TlsKey = (Option<String>, bool);

/// The client certificate and key presented to extension API servers.
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// The aggregator's state: the APIServices, the Services and EndpointSlices their endpoints
/// are found in, the front proxy's identity, and what each remote APIService's discovery
/// document listed when last fetched.
pub struct Aggregator {
    apiservices: Arc<ApiServices>,
    changes: parking_lot::Mutex<Option<mpsc::UnboundedReceiver<String>>>,
    /// The storage's Services and EndpointSlices, once started.
    cluster: OnceLock<Arc<Objects>>,
    identity: OnceLock<Identity>,
    /// TLS client configurations by (caBundle, insecureSkipTLSVerify).
    tls: parking_lot::Mutex<HashMap<TlsKey, Arc<rustls::ClientConfig>>>,
    /// The remote APIServices' resources (`APIResource` objects), by APIService name.
    resources: parking_lot::RwLock<BTreeMap<String, Vec<Value>>>,
    /// Remote APIServices a proxied request failed to reach: checked again at once.
    unreachable: mpsc::UnboundedSender<String>,
    unreachable_queue: parking_lot::Mutex<Option<mpsc::UnboundedReceiver<String>>>,
    started: OnceLock<()>,
}

impl Default for Aggregator {
    fn default() -> Self {
        Aggregator::new()
    }
}

impl Aggregator {
    /// An aggregator that knows no APIService until [`Aggregator::start`].
    pub fn new() -> Aggregator {
        let (changed, changes) = mpsc::unbounded_channel();
        let (unreachable, unreachable_queue) = mpsc::unbounded_channel();
        Aggregator {
            apiservices: Arc::new(ApiServices {
                stored: Default::default(),
                remotes: Default::default(),
                changed,
            }),
            changes: parking_lot::Mutex::new(Some(changes)),
            cluster: OnceLock::new(),
            identity: OnceLock::new(),
            tls: Default::default(),
            resources: Default::default(),
            unreachable,
            unreachable_queue: parking_lot::Mutex::new(Some(unreachable_queue)),
            started: OnceLock::new(),
        }
    }

    /// The front-proxy client certificate chain and key presented to extension API servers
    /// (upstream's `--proxy-client-cert-file`); without it none is presented. Set once, before
    /// requests are proxied.
    pub fn set_front_proxy_identity(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) {
        let _ = self.identity.set(Identity { chain, key });
    }

    /// Follows the APIServices, Services and EndpointSlices in `rest`'s store, makes the local
    /// APIServices, and runs the controllers. Calling it again only brings the local
    /// APIServices in line again.
    pub async fn start(self: &Arc<Self>, rest: Arc<Rest>) -> Result<(), ApiError> {
        if self.started.get().is_some() {
            return autoregister::sync(&rest, &self.snapshot(), true).await;
        }
        reflector::start(&self.apiservices, rest.storage.store.clone())
            .await
            .map_err(ApiError::from)?;
        let cluster = rest.storage.cluster().await.map_err(ApiError::from)?;
        let _ = self.cluster.set(cluster.clone());
        autoregister::sync(&rest, &self.snapshot(), true).await?;
        let _ = self.started.set(());
        let (Some(changes), Some(unreachable)) = (
            self.changes.lock().take(),
            self.unreachable_queue.lock().take(),
        ) else {
            return Ok(());
        };
        tokio::spawn(self.clone().run(rest, changes, unreachable));
        Ok(())
    }

    /// Every APIService as last seen, by name.
    fn snapshot(&self) -> BTreeMap<String, Value> {
        self.apiservices.stored.read().clone()
    }

    /// The remote APIService serving `group`/`version`, if one does.
    pub fn remote_for(&self, group: &str, version: &str) -> Option<Arc<Remote>> {
        let remotes = self.apiservices.remotes.read();
        remotes.get(group)?.get(version).cloned()
    }

    /// The aggregated APIs' group-versions for discovery: each remote APIService's priorities
    /// and the resources it listed when last fetched, stale while it is unavailable.
    pub fn discovery(&self) -> Vec<RemoteVersion> {
        let stored = self.apiservices.stored.read();
        let resources = self.resources.read();
        stored
            .values()
            .filter_map(Remote::of)
            .map(|remote| RemoteVersion {
                resources: resources.get(&remote.name).cloned().unwrap_or_default(),
                fresh: remote.available,
                group: remote.group,
                version: remote.version,
                group_priority: remote.group_priority,
                version_priority: remote.version_priority,
            })
            .collect()
    }

    /// The view of Services and EndpointSlices, once started.
    fn cluster(&self) -> Option<Arc<Objects>> {
        self.cluster.get().cloned()
    }

    /// A ready endpoint of `remote`'s Service (upstream's endpoint routing).
    pub fn endpoint(&self, remote: &Remote) -> Result<(String, u16), String> {
        let cluster = self
            .cluster()
            .ok_or_else(|| "the aggregator is not started".to_string())?;
        crate::webhook::resolve_endpoint(&cluster, &remote.namespace, &remote.service, remote.port)
    }

    /// The TLS client configuration for `remote`: its `caBundle` trusted (or, with
    /// `insecureSkipTLSVerify`, any certificate accepted), the front-proxy identity presented.
    pub fn client_config(&self, remote: &Remote) -> Result<Arc<rustls::ClientConfig>, String> {
        let key = (remote.ca_bundle.clone(), remote.insecure);
        if let Some(config) = self.tls.lock().get(&key) {
            return Ok(config.clone());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = if remote.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(proxy::AcceptAnyServer(provider)))
        } else {
            builder.with_root_certificates(crate::webhook::roots(remote.ca_bundle.as_deref())?)
        };
        let config = match self.identity.get() {
            Some(identity) => builder
                .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
                .map_err(|e| e.to_string())?,
            None => builder.with_no_client_auth(),
        };
        let config = Arc::new(config);
        self.tls.lock().insert(key, config.clone());
        Ok(config)
    }

    /// A proxied request could not reach `name`: check it again now.
    pub fn report_unreachable(&self, name: &str) {
        let _ = self.unreachable.send(name.to_string());
    }

    /// The controllers' loop (see the module's documentation).
    async fn run(
        self: Arc<Self>,
        rest: Arc<Rest>,
        mut changes: mpsc::UnboundedReceiver<String>,
        mut unreachable: mpsc::UnboundedReceiver<String>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        let mut custom = rest.registry.custom();
        let mut cluster_generation = self.cluster().map(|c| c.generation());
        // When each remote APIService is checked next, and the wait after a failure.
        let mut due: HashMap<String, (Instant, Duration)> = HashMap::new();
        // The specs last checked, so a status write of our own does not count as a change.
        let mut specs: HashMap<String, Value> = HashMap::new();
        loop {
            // A change to an APIService only wakes the loop (its spec is compared below);
            // a failed proxied request forces a check.
            let mut failed: Vec<String> = Vec::new();
            tokio::select! {
                name = changes.recv() => if name.is_none() {
                    return;
                },
                name = unreachable.recv() => failed.extend(name),
                _ = tick.tick() => {}
            }
            while changes.try_recv().is_ok() {}
            while let Ok(name) = unreachable.try_recv() {
                failed.push(name);
            }
            let current = rest.registry.custom();
            if !Arc::ptr_eq(&current, &custom) {
                custom = current;
                if let Err(error) = autoregister::sync(&rest, &self.snapshot(), false).await {
                    tracing::warn!(error = %error.message, "registering custom resources' APIServices");
                }
            }
            let generation = self.cluster().map(|c| c.generation());
            let cluster_changed = generation != cluster_generation;
            cluster_generation = generation;

            let snapshot = self.snapshot();
            self.resources
                .write()
                .retain(|name, _| snapshot.get(name).is_some_and(|a| Remote::of(a).is_some()));
            specs.retain(|name, _| snapshot.contains_key(name));
            due.retain(|name, _| snapshot.contains_key(name));
            let now = Instant::now();
            let mut checks = Vec::new();
            for (name, apiservice) in &snapshot {
                let Some(remote) = Remote::of(apiservice) else {
                    if let Err(error) = available::mark_local(&rest, apiservice).await {
                        tracing::debug!(apiservice = %name, error = %error.message, "marking a local APIService available");
                    }
                    continue;
                };
                let spec_changed = specs.get(name) != apiservice.get("spec");
                let forced = cluster_changed || spec_changed || failed.contains(name);
                let scheduled = due.get(name).is_none_or(|(at, _)| *at <= now);
                if forced || scheduled {
                    specs.insert(name.clone(), apiservice["spec"].clone());
                    checks.push((name.clone(), apiservice.clone(), remote));
                }
            }
            let results =
                futures::future::join_all(checks.iter().map(|(_, apiservice, remote)| {
                    available::check(&self, &rest, apiservice, remote)
                }))
                .await;
            for ((name, _, _), passed) in checks.into_iter().zip(results) {
                let next = match passed {
                    Some(resources) => {
                        self.resources.write().insert(name.clone(), resources);
                        (Instant::now() + RESYNC, FIRST_RETRY)
                    }
                    None => {
                        let wait = due.get(&name).map(|(_, w)| *w).unwrap_or(FIRST_RETRY);
                        (Instant::now() + wait, (wait * 2).min(RESYNC))
                    }
                };
                due.insert(name, next);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn remote_apiservices_name_their_service() {
        let local =
            json!({"metadata": {"name": "v1.apps"}, "spec": {"group": "apps", "version": "v1"}});
        assert_eq!(Remote::of(&local), None);
        let remote = json!({"metadata": {"name": "v1alpha1.wardle.example.com"},
            "spec": {"group": "wardle.example.com", "version": "v1alpha1", "groupPriorityMinimum": 1000,
                     "versionPriority": 15, "caBundle": "", "service": {"namespace": "wardle", "name": "api"}},
            "status": {"conditions": [{"type": "Available", "status": "True", "reason": "Passed"}]}});
        let remote = Remote::of(&remote).expect("remote");
        assert_eq!(remote.port, 443);
        assert_eq!(remote.ca_bundle, None);
        assert!(remote.available);
        assert_eq!(remote.server_name(), "api.wardle.svc");
        assert_eq!((remote.group_priority, remote.version_priority), (1000, 15));
    }

    #[test]
    fn remotes_are_found_by_group_and_version_until_deleted() {
        let aggregator = Aggregator::new();
        let kv = |name: &str, value: Value| KeyValue {
            key: format!("{PREFIX}{name}").into_bytes().into(),
            value: value.to_string().into_bytes().into(),
            create_revision: 1,
            mod_revision: 1,
            version: 1,
            lease: 0,
        };
        let remote = json!({"metadata": {"name": "v1alpha1.wardle.example.com"},
            "spec": {"group": "wardle.example.com", "version": "v1alpha1",
                     "service": {"namespace": "wardle", "name": "api"}}});
        let local =
            json!({"metadata": {"name": "v1.apps"}, "spec": {"group": "apps", "version": "v1"}});
        aggregator.apiservices.replace(vec![
            (0, kv("v1alpha1.wardle.example.com", remote)),
            (0, kv("v1.apps", local)),
        ]);
        let found = aggregator.remote_for("wardle.example.com", "v1alpha1");
        assert_eq!(found.map(|r| r.service.clone()), Some("api".to_string()));
        assert!(aggregator.remote_for("apps", "v1").is_none());
        assert!(aggregator.remote_for("wardle.example.com", "v1").is_none());
        let deleted = Event {
            kind: EventKind::Delete,
            kv: kv("v1alpha1.wardle.example.com", Value::Null),
            prev_kv: None,
        };
        aggregator.apiservices.apply(0, &[deleted]);
        assert!(aggregator
            .remote_for("wardle.example.com", "v1alpha1")
            .is_none());
    }
}
