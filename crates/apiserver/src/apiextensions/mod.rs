//! The API server's controllers of CustomResourceDefinitions, as upstream's apiextensions
//! server runs them in-process: names are checked against the group's other definitions
//! ([`naming`]), an accepted definition is `Established` and its versions served from the
//! registry at once, and a deleted one has its objects deleted before its cleanup finalizer
//! goes.
//!
//! Every server follows the definitions in the store, so several servers over one etcd serve
//! the same custom resources; status writes race harmlessly (a conflict is retried on the next
//! change).

pub mod naming;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use ferry_store::{Event, EventKind, KeyValue};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::reflector::{self, Reflected};
use crate::registry::apiextensions::customresource::resources_of;
use crate::registry::apiextensions::customresourcedefinition::{set_condition, CLEANUP_FINALIZER};
use crate::registry::Resource;
use crate::rest::{self, Internal, Rest};
use crate::status::ApiError;
use naming::Names;

/// Where definitions are kept.
const PREFIX: &str = "/customresourcedefinitions/";

/// How often a deleted definition whose objects are not all gone yet (finalizers of their own)
/// is looked at again.
const CLEANUP_RETRY: Duration = Duration::from_secs(1);

/// The definitions as last seen, and the names that changed since their last reconcile.
struct Definitions {
    stored: parking_lot::Mutex<BTreeMap<String, Value>>,
    changed: mpsc::UnboundedSender<String>,
}

fn name_of(kv: &KeyValue) -> String {
    String::from_utf8_lossy(&kv.key[PREFIX.len()..]).into_owned()
}

impl Reflected for Definitions {
    fn prefixes(&self) -> &'static [&'static str] {
        &[PREFIX]
    }

    fn replace(&self, listed: Vec<(usize, KeyValue)>) {
        let mut stored = self.stored.lock();
        let before: BTreeSet<String> = stored.keys().cloned().collect();
        stored.clear();
        for (_, kv) in listed {
            if let Ok(crd) = serde_json::from_slice(&kv.value) {
                stored.insert(name_of(&kv), crd);
            }
        }
        for name in before.iter().chain(stored.keys()) {
            let _ = self.changed.send(name.clone());
        }
    }

    fn apply(&self, _index: usize, events: &[Event]) {
        let mut stored = self.stored.lock();
        for event in events {
            let name = name_of(&event.kv);
            match event.kind {
                EventKind::Put => {
                    if let Ok(crd) = serde_json::from_slice(&event.kv.value) {
                        stored.insert(name.clone(), crd);
                    }
                }
                EventKind::Delete => {
                    stored.remove(&name);
                }
            }
            let _ = self.changed.send(name);
        }
    }
}

/// Follows the definitions in `rest`'s store and serves their custom resources from its
/// registry. The definitions stored now are served when this returns.
pub async fn start(rest: Arc<Rest>) -> Result<(), ApiError> {
    let (changed, mut queue) = mpsc::unbounded_channel();
    let definitions = Arc::new(Definitions {
        stored: Default::default(),
        changed,
    });
    reflector::start(&definitions, rest.storage.store.clone())
        .await
        .map_err(ApiError::from)?;
    let controller = Controller {
        rest,
        definitions: definitions.clone(),
    };
    // The definitions there are now are served before the first request.
    let mut first = BTreeSet::new();
    while let Ok(name) = queue.try_recv() {
        first.insert(name);
    }
    let mut retry = BTreeSet::new();
    for name in first {
        if controller.reconcile(&name).await {
            retry.insert(name);
        }
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CLEANUP_RETRY);
        loop {
            let name = tokio::select! {
                name = queue.recv() => match name {
                    Some(name) => name,
                    None => return,
                },
                _ = tick.tick(), if !retry.is_empty() => {
                    for name in std::mem::take(&mut retry) {
                        if controller.reconcile(&name).await {
                            retry.insert(name);
                        }
                    }
                    continue;
                }
            };
            if controller.reconcile(&name).await {
                retry.insert(name);
            } else {
                retry.remove(&name);
            }
        }
    });
    Ok(())
}

struct Controller {
    rest: Arc<Rest>,
    definitions: Arc<Definitions>,
}

impl Controller {
    fn definitions(&self) -> Arc<Resource> {
        self.rest
            .registry
            .resolve("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            .unwrap_or_else(|| unreachable!("definitions are a built-in resource"))
    }

    /// Brings the definition `name` and what is served for it in line; true if it must be
    /// looked at again later (a deleted definition whose objects are not all gone).
    async fn reconcile(&self, name: &str) -> bool {
        let crd = self.definitions.stored.lock().get(name).cloned();
        let Some(crd) = crd else {
            self.rest.registry.set_custom(name, Vec::new());
            return false;
        };
        let outcome = if crd.pointer("/metadata/deletionTimestamp").is_some() {
            self.finalize(name, crd).await
        } else {
            self.establish(name, crd).await.map(|()| false)
        };
        outcome.unwrap_or_else(|error| {
            tracing::warn!(definition = name, error = %error.message, "reconciling a CustomResourceDefinition");
            true
        })
    }

    /// Names, conditions and stored versions of a live definition, and its resources served.
    async fn establish(&self, name: &str, mut crd: Value) -> Result<(), ApiError> {
        let group = crd
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let others: Vec<Names> = self
            .definitions
            .stored
            .lock()
            .iter()
            .filter(|(n, other)| {
                n.as_str() != name
                    && other.pointer("/spec/group").and_then(Value::as_str) == Some(&group)
            })
            .map(|(_, other)| Names::at(other, "/status/acceptedNames"))
            .collect();
        let requested = Names::at(&crd, "/spec/names");
        let own = Names::at(&crd, "/status/acceptedNames");
        let before = crd.get("status").cloned();
        match naming::check(&requested, &own, &others) {
            Ok(()) => {
                crd["status"]["acceptedNames"] = requested.to_json();
                set_condition(
                    &mut crd,
                    "NamesAccepted",
                    "True",
                    "NoConflicts",
                    "no conflicts found",
                );
                set_condition(
                    &mut crd,
                    "Established",
                    "True",
                    "InitialNamesAccepted",
                    "the initial names have been accepted",
                );
            }
            Err(conflict) => {
                set_condition(
                    &mut crd,
                    "NamesAccepted",
                    "False",
                    conflict.reason,
                    &conflict.message,
                );
                if !is_true(&crd, "Established") {
                    set_condition(
                        &mut crd,
                        "Established",
                        "False",
                        "NotAccepted",
                        "not all names are accepted",
                    );
                }
            }
        }
        add_stored_version(&mut crd);
        if is_true(&crd, "Established") {
            match resources_of(&crd, false) {
                Ok(resources) => self.rest.registry.set_custom(name, resources),
                Err(why) => {
                    tracing::warn!(
                        definition = name,
                        why,
                        "not serving a CustomResourceDefinition"
                    );
                    self.rest.registry.set_custom(name, Vec::new());
                }
            }
        }
        if crd.get("status") != before.as_ref() {
            self.write_status(name, &crd).await?;
        }
        Ok(())
    }

    /// A deleted definition: its objects deleted, then its finalizer removed. True while
    /// objects remain.
    async fn finalize(&self, name: &str, mut crd: Value) -> Result<bool, ApiError> {
        let resources = resources_of(&crd, true).unwrap_or_default();
        self.rest.registry.set_custom(name, resources.clone());
        let has_finalizer = crd
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|f| f == CLEANUP_FINALIZER));
        if !has_finalizer {
            return Ok(false);
        }
        let remaining = match resources.first() {
            Some(resource) => self.delete_objects(resource).await?,
            None => 0,
        };
        if remaining > 0 {
            let message = format!("CustomResource deletion is in progress ({remaining} remaining)");
            if set_condition(
                &mut crd,
                "Terminating",
                "True",
                "InstanceDeletionInProgress",
                &message,
            ) {
                self.write_status(name, &crd).await?;
            }
            return Ok(true);
        }
        set_condition(
            &mut crd,
            "Terminating",
            "True",
            "InstanceDeletionCompleted",
            "removed all instances",
        );
        let crd = self.write_status(name, &crd).await?;
        // Without the finalizer (and no other) the update deletes the definition.
        let mut finished = crd;
        if let Some(Value::Array(finalizers)) = finished.pointer_mut("/metadata/finalizers") {
            finalizers.retain(|f| f != CLEANUP_FINALIZER);
        }
        let internal = Internal::default();
        let resource = self.definitions();
        let req = internal.request(&resource, "", name, "", &finished);
        rest::update(&self.rest, &req, &rest::ObjectView).await?;
        Ok(false)
    }

    /// Deletes every object of `resource` (all versions share its storage), each through the
    /// REST delete so its own finalizers are honoured; how many are still there.
    async fn delete_objects(&self, resource: &Resource) -> Result<usize, ApiError> {
        let internal = Internal::default();
        let list_request = internal.request(resource, "", "", "", &Value::Null);
        let listed = rest::list(&self.rest, &list_request).await?;
        let items = listed["items"].as_array().cloned().unwrap_or_default();
        let mut remaining = 0;
        for item in &items {
            let namespace = item
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("");
            let object = item
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let req = internal.request(resource, namespace, object, "", &json!({}));
            match rest::delete(&self.rest, &req).await {
                Ok(deleted) if deleted.pointer("/metadata/deletionTimestamp").is_some() => {
                    remaining += 1
                }
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(remaining)
    }

    /// Writes `crd`'s status (on the revision it was read at); the definition as written.
    async fn write_status(&self, name: &str, crd: &Value) -> Result<Value, ApiError> {
        let internal = Internal::default();
        let resource = self.definitions();
        let req = internal.request(&resource, "", name, "status", crd);
        rest::update(&self.rest, &req, &rest::ObjectView).await
    }
}

fn is_true(crd: &Value, type_: &str) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == type_ && c["status"] == "True")
}

/// `status.storedVersions` gains the storage version.
fn add_stored_version(crd: &mut Value) {
    let storage = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|v| v["storage"] == true)
        .and_then(|v| v["name"].as_str())
        .map(String::from);
    let Some(storage) = storage else { return };
    let stored = crd["status"]
        .as_object_mut()
        .map(|s| s.entry("storedVersions").or_insert_with(|| json!([])));
    if let Some(Value::Array(stored)) = stored {
        if !stored.iter().any(|v| v == &storage) {
            stored.push(json!(storage));
        }
    }
}
