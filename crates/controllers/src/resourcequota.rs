//! The ResourceQuota controller (upstream's `resourcequota`): each quota's `status.hard` follows
//! its `spec.hard`, and `status.used` is recounted from the objects of its namespace that its
//! scopes select, with the evaluators the API server's admission charges with
//! ([`ferry_api::quota`]). Admission adds a new object's use at once; this controller is what
//! gives it back: a quota is recounted when an object it counts goes away (a pod is deleted or
//! finishes, a Service or any counted resource is deleted — watched from when a quota first
//! names it), when its spec changes, and every `resource_quota_sync_period`.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use ferry_api::quota::{self, Evaluator};
use ferry_api::resources::{self, Amount, ResourceList};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Pod, ResourceQuota, ResourceQuotaStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{ApiResource, DynamicObject, ListParams, PartialObjectMeta, PostParams};
use kube::runtime::{watcher, WatchStreamExt as _};
use kube::{Api, ResourceExt as _};
use serde_json::Value;

use crate::queue::{Queue, Reconciler};
use crate::{ApiContext as _, Context, Error};

/// Upstream's `--resource-quota-sync-period` default.
pub const DEFAULT_SYNC_PERIOD: Duration = Duration::from_secs(300);

/// The controller and its queue of `namespace/name` quota keys.
pub struct ResourceQuotaController {
    ctx: Arc<Context>,
    queue: Arc<Queue<String>>,
    /// The group/resources whose deletions are watched (beside pods and services, which the
    /// shared informers follow).
    watched: parking_lot::Mutex<HashSet<(String, String)>>,
}

impl Reconciler for ResourceQuotaController {
    type Key = String;
    type Error = Error;
    const NAME: &'static str = "resourcequota";

    fn queue(&self) -> &Arc<Queue<String>> {
        &self.queue
    }

    async fn reconcile(self: Arc<Self>, key: String) -> Result<Option<Duration>, Error> {
        self.sync(key).await
    }
}

/// Whether a pod update gives back what it used: it finished, or its deletion began.
fn pod_released(old: &Pod, new: &Pod) -> bool {
    let terminal = |p: &Pod| {
        matches!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
    };
    (terminal(new) && !terminal(old))
        || (new.metadata.deletion_timestamp.is_some() && old.metadata.deletion_timestamp.is_none())
}

/// Whether the quota's status is behind its spec (a new quota, or a changed `hard`).
fn needs_count(quota: &ResourceQuota) -> bool {
    let hard = quota
        .spec
        .as_ref()
        .and_then(|s| s.hard.clone())
        .unwrap_or_default();
    let status = quota.status.clone().unwrap_or_default();
    let used = status.used.unwrap_or_default();
    status.hard.unwrap_or_default() != hard || hard.keys().any(|name| !used.contains_key(name))
}

/// The evaluators a quota's `hard` names need, each with the names it accounts.
fn evaluators_for(hard: &[String]) -> Vec<(Evaluator, Vec<String>)> {
    let mut evaluators: Vec<(Evaluator, Vec<String>)> = Vec::new();
    let mut candidates = vec![Evaluator::Pods, Evaluator::Services, Evaluator::Claims];
    for name in hard {
        if let Some((group, resource)) = quota::counted_resource(name) {
            candidates.push(Evaluator::of(&group, &resource));
        } else if !name.contains('/') && !name.contains('.') {
            candidates.push(Evaluator::of("", name));
        }
    }
    for evaluator in candidates {
        if evaluators.iter().any(|(e, _)| *e == evaluator) {
            continue;
        }
        let names = evaluator.matching(hard);
        if !names.is_empty() {
            evaluators.push((evaluator, names));
        }
    }
    evaluators
}

/// What `objects` in the quota's scopes use of `names`; every name is present, zero if unused.
fn count(
    evaluator: &Evaluator,
    names: &[String],
    scopes: &[quota::ScopeRequirement],
    objects: &[Value],
    now: jiff::Timestamp,
) -> ResourceList {
    let mut used: ResourceList = names
        .iter()
        .map(|n| (n.clone(), Amount::count(0)))
        .collect();
    for object in objects.iter().filter(|o| evaluator.in_scopes(o, scopes)) {
        let usage = resources::mask(&evaluator.usage(object, now), names);
        for (name, amount) in usage {
            let entry = used.entry(name).or_default();
            // A zero count takes the format of what is counted (`memory` in Mi, not in k).
            if entry.quantity.is_zero() {
                entry.format = amount.format;
            }
            entry.quantity = entry.quantity + amount.quantity;
        }
    }
    used
}

/// The API resource of `resource` in `group`, from ferry's table.
fn api_resource(group: &str, resource: &str) -> Option<ApiResource> {
    let info = ferry_api::registry::RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == resource)?;
    let api_version = if group.is_empty() {
        info.version.to_string()
    } else {
        format!("{group}/{}", info.version)
    };
    Some(ApiResource {
        group: group.into(),
        version: info.version.into(),
        api_version,
        kind: info.kind.into(),
        plural: info.plural.into(),
    })
}

impl ResourceQuotaController {
    /// Registers the handlers.
    pub fn new(ctx: Arc<Context>) -> Arc<ResourceQuotaController> {
        let controller = Arc::new(ResourceQuotaController {
            ctx: ctx.clone(),
            queue: Queue::new(),
            watched: Default::default(),
        });
        let c = controller.clone();
        ctx.resource_quotas.add_handler(move |_, new| {
            if let Some(quota) = new.filter(|q| needs_count(q)) {
                c.queue.add(format!(
                    "{}/{}",
                    quota.namespace().unwrap_or_default(),
                    quota.name_any()
                ));
            }
        });
        let c = controller.clone();
        ctx.pods.add_handler(move |old, new| match (old, new) {
            (Some(pod), None) => c.recount_namespace(&pod.namespace().unwrap_or_default()),
            (Some(old), Some(new)) if pod_released(old, new) => {
                c.recount_namespace(&new.namespace().unwrap_or_default())
            }
            _ => {}
        });
        let c = controller.clone();
        ctx.services.add_handler(move |old, new| match (old, new) {
            (Some(svc), None) => c.recount_namespace(&svc.namespace().unwrap_or_default()),
            (Some(old), Some(new)) if old.spec != new.spec => {
                c.recount_namespace(&new.namespace().unwrap_or_default())
            }
            _ => {}
        });
        controller
    }

    /// Queues every quota of `namespace`.
    fn recount_namespace(&self, namespace: &str) {
        for quota in self.ctx.resource_quotas.list_namespace(namespace) {
            self.queue.add(format!("{namespace}/{}", quota.name_any()));
        }
    }

    /// Queues every quota every `period`, until the controller is dropped.
    pub async fn resync(self: Arc<Self>, period: Duration) {
        let weak = Arc::downgrade(&self);
        drop(self);
        loop {
            tokio::time::sleep(period).await;
            let Some(this) = weak.upgrade() else { return };
            for quota in this.ctx.resource_quotas.list() {
                this.queue.add(format!(
                    "{}/{}",
                    quota.namespace().unwrap_or_default(),
                    quota.name_any()
                ));
            }
        }
    }

    /// Starts following deletions of `group`/`resource` (once per resource).
    fn watch_deletions(self: &Arc<Self>, group: &str, resource: &str) {
        if !self.watched.lock().insert((group.into(), resource.into())) {
            return;
        }
        let Some(api_resource) = api_resource(group, resource) else {
            return;
        };
        let api: Api<PartialObjectMeta<DynamicObject>> =
            Api::all_with(self.ctx.client.clone(), &api_resource);
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let stream = watcher(api, watcher::Config::default()).default_backoff();
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                let Some(this) = weak.upgrade() else { return };
                if let Ok(watcher::Event::Delete(object)) = event {
                    this.recount_namespace(&object.namespace().unwrap_or_default());
                }
            }
        });
    }

    /// The namespace's objects an evaluator counts, as JSON.
    async fn objects(&self, evaluator: &Evaluator, namespace: &str) -> Result<Vec<Value>, Error> {
        fn to_json<T: serde::Serialize>(object: &T) -> Value {
            serde_json::to_value(object).unwrap_or_default()
        }
        Ok(match evaluator {
            Evaluator::Pods => self
                .ctx
                .pods
                .list_namespace(namespace)
                .iter()
                .map(|p| to_json(&**p))
                .collect(),
            Evaluator::Services => self
                .ctx
                .services
                .list_namespace(namespace)
                .iter()
                .map(|s| to_json(&**s))
                .collect(),
            Evaluator::Claims => self.list(namespace, "", "persistentvolumeclaims").await?,
            Evaluator::Count { group, resource } => self.list(namespace, group, resource).await?,
        })
    }

    async fn list(
        &self,
        namespace: &str,
        group: &str,
        resource: &str,
    ) -> Result<Vec<Value>, Error> {
        let Some(api_resource) = api_resource(group, resource) else {
            return Ok(Vec::new());
        };
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.ctx.client.clone(), namespace, &api_resource);
        let listed = api
            .list(&ListParams::default())
            .await
            .context("listing what a quota counts")?;
        Ok(listed
            .items
            .iter()
            .map(|o| serde_json::to_value(o).unwrap_or_default())
            .collect())
    }

    async fn sync(self: &Arc<Self>, key: String) -> Result<Option<Duration>, Error> {
        let Some((namespace, name)) = key.split_once('/') else {
            return Ok(None);
        };
        let Some(quota) = self.ctx.resource_quotas.get(namespace, name) else {
            return Ok(None);
        };
        let hard = quota
            .spec
            .as_ref()
            .and_then(|s| s.hard.clone())
            .unwrap_or_default();
        let names: Vec<String> = hard.keys().cloned().collect();
        let quota_json = serde_json::to_value(&*quota).unwrap_or_default();
        let scopes = quota::scope_requirements(&quota_json);
        let now = jiff::Timestamp::now();
        let mut used = ResourceList::new();
        for (evaluator, accounted) in evaluators_for(&names) {
            match &evaluator {
                Evaluator::Claims => self.watch_deletions("", "persistentvolumeclaims"),
                Evaluator::Count { group, resource } => self.watch_deletions(group, resource),
                Evaluator::Pods | Evaluator::Services => {}
            }
            let objects = self.objects(&evaluator, namespace).await?;
            used.extend(count(&evaluator, &accounted, &scopes, &objects, now));
        }
        // Names nothing accounts (a typo, an unknown resource) are counted as zero.
        for name in &names {
            used.entry(name.clone()).or_insert(Amount::count(0));
        }
        let used: BTreeMap<String, Quantity> = used
            .iter()
            .map(|(n, a)| (n.clone(), Quantity(a.to_string())))
            .collect();
        let status = ResourceQuotaStatus {
            hard: Some(hard),
            used: Some(used),
        };
        if quota.status.as_ref() == Some(&status) {
            return Ok(None);
        }
        let mut updated = (*quota).clone();
        updated.status = Some(status);
        let api: Api<ResourceQuota> = Api::namespaced(self.ctx.client.clone(), namespace);
        api.replace_status(name, &PostParams::default(), &updated)
            .await
            .context("updating a quota's status")?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hard_names_choose_their_evaluators() {
        let names: Vec<String> = [
            "pods",
            "requests.cpu",
            "configmaps",
            "count/deployments.apps",
            "services.nodeports",
            "requests.storage",
        ]
        .map(String::from)
        .to_vec();
        let chosen = evaluators_for(&names);
        let summary: Vec<(Evaluator, Vec<&str>)> = chosen
            .iter()
            .map(|(e, n)| (e.clone(), n.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            summary,
            [
                (Evaluator::Pods, vec!["pods", "requests.cpu"]),
                (Evaluator::Services, vec!["services.nodeports"]),
                (Evaluator::Claims, vec!["requests.storage"]),
                (Evaluator::of("", "configmaps"), vec!["configmaps"]),
                (
                    Evaluator::of("apps", "deployments"),
                    vec!["count/deployments.apps"]
                ),
            ]
        );
    }

    #[test]
    fn usage_is_summed_over_what_the_scopes_select() {
        let pod = |cpu: &str, phase: &str| {
            json!({"spec": {"containers": [{"name": "c", "image": "x",
                "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]},
                "status": {"phase": phase}})
        };
        let objects = [
            pod("250m", "Running"),
            pod("500m", "Running"),
            pod("1", "Succeeded"),
        ];
        let names: Vec<String> = [
            "pods",
            "count/pods",
            "requests.cpu",
            "requests.memory",
            "limits.cpu",
        ]
        .map(String::from)
        .to_vec();
        let now = jiff::Timestamp::now();
        let used = count(&Evaluator::Pods, &names, &[], &objects, now);
        assert_eq!(
            resources::pretty(&used),
            "count/pods=3,limits.cpu=0,pods=2,requests.cpu=750m,requests.memory=128Mi"
        );
        let best_effort = [quota::ScopeRequirement {
            scope: "BestEffort".into(),
            operator: "Exists".into(),
            values: vec![],
        }];
        let used = count(&Evaluator::Pods, &names[..1], &best_effort, &objects, now);
        assert_eq!(resources::pretty(&used), "pods=0");
    }

    #[test]
    fn released_pods_and_stale_statuses_are_noticed() {
        let running: Pod =
            serde_json::from_value(json!({"status": {"phase": "Running"}})).expect("pod");
        let done: Pod =
            serde_json::from_value(json!({"status": {"phase": "Failed"}})).expect("pod");
        let deleting: Pod = serde_json::from_value(json!({"metadata": {
            "deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Running"}}))
        .expect("pod");
        assert!(pod_released(&running, &done));
        assert!(pod_released(&running, &deleting));
        assert!(!pod_released(&done, &done));
        let quota = |spec: Value, status: Value| -> ResourceQuota {
            serde_json::from_value(json!({"spec": {"hard": spec}, "status": status}))
                .expect("quota")
        };
        assert!(needs_count(&quota(json!({"pods": "2"}), json!({}))));
        assert!(needs_count(&quota(
            json!({"pods": "3"}),
            json!({"hard": {"pods": "2"}, "used": {"pods": "1"}})
        )));
        assert!(!needs_count(&quota(
            json!({"pods": "2"}),
            json!({"hard": {"pods": "2"}, "used": {"pods": "1"}})
        )));
    }
}
