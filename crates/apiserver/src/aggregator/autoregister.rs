//! The local APIServices, as upstream's autoregister and CRD registration controllers keep
//! them: one per built-in group-version (`v1.`, `v1.apps`, `v2.autoscaling`, …) with upstream's
//! priorities, labelled `kube-aggregator.kubernetes.io/automanaged: onstart` (put back as they
//! should be when the server starts), and one per served custom resource group-version
//! (priorities 1000 and 100), labelled `true` (kept in step while the server runs).
//!
//! An APIService without the label, or one given a `service` (someone pointed the
//! group-version at an extension server, as metrics-server's manifest does for
//! `v1beta1.metrics.k8s.io`), is left alone.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::registry::Registry;
use crate::rest::{self, Internal, Rest};
use crate::status::ApiError;

/// The label of the APIServices the server manages.
pub const AUTOMANAGED_LABEL: &str = "kube-aggregator.kubernetes.io/automanaged";
/// Its value on built-in group-versions' APIServices: synced when the server starts.
pub const ON_START: &str = "onstart";
/// Its value on custom resources' APIServices: synced continuously.
pub const CONTINUOUSLY: &str = "true";

/// The group priority of custom resources' group-versions (upstream's CRD registration).
const CUSTOM_GROUP_PRIORITY: i64 = 1000;
/// The version priority of custom resources' group-versions.
const CUSTOM_VERSION_PRIORITY: i64 = 100;

/// What to do to one APIService.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create it.
    Create(Value),
    /// Write it as given (the stored object with the desired spec and label).
    Update(Value),
    /// Delete the APIService of this name.
    Delete(String),
}

fn apiservice(group: &str, version: &str, priorities: (i64, i64), label: &str) -> Value {
    json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": format!("{version}.{group}"), "labels": {AUTOMANAGED_LABEL: label}},
        "spec": {"group": group, "version": version,
                 "groupPriorityMinimum": priorities.0, "versionPriority": priorities.1}})
}

/// The local APIServices the server should have, by name: the built-in group-versions with a
/// priority in upstream's table (the aggregator's own group has none: it is listed first
/// without one), then the custom resources' group-versions that are not built in.
pub fn desired(registry: &Registry) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut builtin = vec![("", "v1")];
    for (group, versions) in ferry_api::registry::groups() {
        builtin.extend(versions.into_iter().map(|v| (group, v)));
    }
    for (group, version) in builtin {
        if let Some((g, v)) = ferry_api::registry::priority(group, version) {
            let object = apiservice(group, version, (g.into(), v.into()), ON_START);
            out.insert(format!("{version}.{group}"), object);
        }
    }
    for resource in registry.custom().all() {
        let (group, version) = (resource.info.group, resource.info.version);
        let name = format!("{version}.{group}");
        out.entry(name).or_insert_with(|| {
            apiservice(
                group,
                version,
                (CUSTOM_GROUP_PRIORITY, CUSTOM_VERSION_PRIORITY),
                CONTINUOUSLY,
            )
        });
    }
    out
}

fn label(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/labels")
        .and_then(|l| l.get(AUTOMANAGED_LABEL))
        .and_then(Value::as_str)
}

/// What brings `stored` in line with `desired`. `on_start` also syncs the `onstart` ones.
pub fn plan(
    stored: &BTreeMap<String, Value>,
    desired: &BTreeMap<String, Value>,
    on_start: bool,
) -> Vec<Action> {
    let mut actions = Vec::new();
    for (name, want) in desired {
        let Some(have) = stored.get(name) else {
            actions.push(Action::Create(want.clone()));
            continue;
        };
        let managed = match label(have) {
            Some(ON_START) => on_start,
            Some(CONTINUOUSLY) => true,
            _ => false,
        };
        let taken_over = have.pointer("/spec/service").is_some_and(|s| s.is_object());
        if !managed || taken_over {
            continue;
        }
        if have.get("spec") != want.get("spec") || label(have) != label(want) {
            let mut updated = have.clone();
            updated["spec"] = want["spec"].clone();
            if !updated["metadata"]["labels"].is_object() {
                updated["metadata"]["labels"] = json!({});
            }
            updated["metadata"]["labels"][AUTOMANAGED_LABEL] =
                want["metadata"]["labels"][AUTOMANAGED_LABEL].clone();
            actions.push(Action::Update(updated));
        }
    }
    for (name, have) in stored {
        if desired.contains_key(name) {
            continue;
        }
        let remove = match label(have) {
            Some(ON_START) => on_start,
            Some(CONTINUOUSLY) => true,
            _ => false,
        };
        if remove && !have.pointer("/spec/service").is_some_and(|s| s.is_object()) {
            actions.push(Action::Delete(name.clone()));
        }
    }
    actions
}

/// Brings the stored APIServices (`stored`, as last seen) in line with what `rest`'s registry
/// serves.
pub async fn sync(
    rest: &Rest,
    stored: &BTreeMap<String, Value>,
    on_start: bool,
) -> Result<(), ApiError> {
    let resource = rest
        .registry
        .resolve("apiregistration.k8s.io", "v1", "apiservices")
        .ok_or_else(|| ApiError::internal("apiservices not registered"))?;
    let internal = Internal::default();
    for action in plan(stored, &desired(&rest.registry), on_start) {
        let outcome = match &action {
            Action::Create(object) => {
                let name = object["metadata"]["name"].as_str().unwrap_or_default();
                let req = internal.request(&resource, "", name, "", object);
                match rest::create(rest, &req).await {
                    Err(e) if e.code == 409 => Ok(()),
                    other => other.map(|_| ()),
                }
            }
            Action::Update(object) => {
                let name = object["metadata"]["name"].as_str().unwrap_or_default();
                let req = internal.request(&resource, "", name, "", object);
                rest::update(rest, &req, &rest::ObjectView)
                    .await
                    .map(|_| ())
            }
            Action::Delete(name) => {
                let req = internal.request(&resource, "", name, "", &json!({}));
                match rest::delete(rest, &req).await {
                    Err(e) if e.code == 404 => Ok(()),
                    other => other.map(|_| ()),
                }
            }
        };
        // A conflict (another server, a user) is settled on the next pass.
        if let Err(error) = outcome {
            tracing::warn!(?action, error = %error.message, "registering a local APIService");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_name(objects: Vec<Value>) -> BTreeMap<String, Value> {
        objects
            .into_iter()
            .map(|o| (o["metadata"]["name"].as_str().unwrap_or("").to_string(), o))
            .collect()
    }

    #[test]
    fn builtin_group_versions_have_upstreams_priorities() {
        let want = desired(&Registry::builtin());
        assert_eq!(want["v1."]["spec"]["groupPriorityMinimum"], 18000);
        assert_eq!(want["v1."]["spec"]["versionPriority"], 1);
        assert_eq!(want["v2.autoscaling"]["spec"]["versionPriority"], 30);
        assert_eq!(
            want["v1.apps"]["metadata"]["labels"][AUTOMANAGED_LABEL],
            "onstart"
        );
        assert_eq!(
            want["v1beta1.metrics.k8s.io"]["spec"]["groupPriorityMinimum"],
            100
        );
        assert!(!want.contains_key("v1.apiregistration.k8s.io"));
        assert!(want.values().all(|o| o["spec"].get("service").is_none()));
    }

    #[test]
    fn plans_as_upstreams_autoregister() {
        let crd = apiservice("stable.example.com", "v1", (1000, 100), CONTINUOUSLY);
        let apps = apiservice("apps", "v1", (17800, 15), ON_START);
        let desired = by_name(vec![crd.clone(), apps.clone()]);

        // Missing ones are created.
        let created = plan(&BTreeMap::new(), &desired, false);
        assert_eq!(created.len(), 2);

        // A changed built-in one is put back only at start; a custom one at once.
        let mut edited_apps = apps.clone();
        edited_apps["spec"]["versionPriority"] = json!(1);
        edited_apps["metadata"]["resourceVersion"] = json!("7");
        let mut edited_crd = crd.clone();
        edited_crd["spec"]["groupPriorityMinimum"] = json!(5);
        let stored = by_name(vec![edited_apps, edited_crd]);
        let running = plan(&stored, &desired, false);
        assert_eq!(running.len(), 1);
        let started = plan(&stored, &desired, true);
        assert_eq!(started.len(), 2);
        let Some(Action::Update(updated)) = started
            .iter()
            .find(|a| matches!(a, Action::Update(o) if o["metadata"]["name"] == "v1.apps"))
        else {
            panic!("apps updated: {started:?}");
        };
        assert_eq!(updated["spec"]["versionPriority"], 15);
        assert_eq!(updated["metadata"]["resourceVersion"], "7");

        // Gone custom group-versions go; unlabelled and taken-over ones stay.
        let mut taken = apiservice("metrics.k8s.io", "v1beta1", (100, 100), ON_START);
        taken["spec"]["service"] = json!({"namespace": "kube-system", "name": "metrics-server"});
        let mut users = apiservice("wardle.example.com", "v1alpha1", (1000, 15), "");
        users["metadata"]["labels"] = json!({});
        let stale = apiservice("old.example.com", "v1", (1000, 100), CONTINUOUSLY);
        let stored = by_name(vec![crd, apps, taken.clone(), users, stale]);
        let mut desired_with_metrics = desired.clone();
        desired_with_metrics.insert(
            "v1beta1.metrics.k8s.io".into(),
            apiservice("metrics.k8s.io", "v1beta1", (100, 100), ON_START),
        );
        assert_eq!(
            plan(&stored, &desired_with_metrics, true),
            vec![Action::Delete("v1.old.example.com".into())]
        );
    }
}
