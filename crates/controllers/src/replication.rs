//! The ReplicationController controller, as upstream's `pkg/controller/replication`: the
//! [`ReplicaSetController`] run over ReplicationControllers seen as ReplicaSets, so the two
//! kinds are kept by one piece of code (upstream's `conversion.go` adapters).
//!
//! [`replica_set_of`] is the view: the RC's `selector` map becomes the `matchLabels` of a
//! LabelSelector, everything else carries over. The controller writes back as the RC: its
//! status ([`rc_status_of`]) through the RC's `status` subresource, pods owned by
//! `v1`/`ReplicationController`, events about the RC from `replication-controller`.

use std::borrow::Cow;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{
    ReplicaSet, ReplicaSetCondition, ReplicaSetSpec, ReplicaSetStatus,
};
use k8s_openapi::api::core::v1::{
    ReplicationController, ReplicationControllerCondition, ReplicationControllerStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::informer::Informer;
use crate::replicaset::{ReplicaSetController, ReplicatedKind};
use crate::Context;

/// ReplicationControllers (`v1`), kept by the ReplicaSet controller's code.
pub struct ReplicationControllers;

/// The controller of ReplicationControllers (upstream's `ReplicationManager`).
pub type ReplicationManager = ReplicaSetController<ReplicationControllers>;

impl ReplicatedKind for ReplicationControllers {
    type Object = ReplicationController;
    /// Upstream's queue name.
    const NAME: &'static str = "replicationmanager";
    const COMPONENT: &'static str = "replication-controller";
    const UPDATING_STATUS: &'static str = "updating replicationcontroller status";

    fn informer(ctx: &Context) -> &Arc<Informer<ReplicationController>> {
        &ctx.replication_controllers
    }

    fn as_replica_set(object: &ReplicationController) -> Cow<'_, ReplicaSet> {
        Cow::Owned(replica_set_of(object))
    }

    fn set_status(object: &mut ReplicationController, status: ReplicaSetStatus) {
        object.status = Some(rc_status_of(status));
    }
}

/// The ReplicaSet an RC reads as (upstream's `convertRCtoRS`). A selector left empty is the
/// template's labels, as upstream's defaulting (`SetDefaults_ReplicationController`) would
/// have stored it.
pub fn replica_set_of(rc: &ReplicationController) -> ReplicaSet {
    let spec = rc.spec.as_ref().map(|spec| {
        let template_labels = spec
            .template
            .as_ref()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone());
        let match_labels = spec
            .selector
            .clone()
            .filter(|s| !s.is_empty())
            .or(template_labels);
        ReplicaSetSpec {
            replicas: spec.replicas,
            min_ready_seconds: spec.min_ready_seconds,
            selector: LabelSelector {
                match_labels,
                match_expressions: None,
            },
            template: spec.template.clone(),
        }
    });
    let status = rc.status.as_ref().map(|status| ReplicaSetStatus {
        replicas: status.replicas,
        fully_labeled_replicas: status.fully_labeled_replicas,
        ready_replicas: status.ready_replicas,
        available_replicas: status.available_replicas,
        observed_generation: status.observed_generation,
        conditions: status.conditions.as_ref().map(|conditions| {
            conditions
                .iter()
                .map(|c| ReplicaSetCondition {
                    type_: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    last_transition_time: c.last_transition_time.clone(),
                })
                .collect()
        }),
        terminating_replicas: None,
    });
    ReplicaSet {
        metadata: rc.metadata.clone(),
        spec,
        status,
    }
}

/// A ReplicaSet status as the RC's (the status half of upstream's `convertRStoRC`); RCs have no
/// `terminatingReplicas`.
pub fn rc_status_of(status: ReplicaSetStatus) -> ReplicationControllerStatus {
    ReplicationControllerStatus {
        replicas: status.replicas,
        fully_labeled_replicas: status.fully_labeled_replicas,
        ready_replicas: status.ready_replicas,
        available_replicas: status.available_replicas,
        observed_generation: status.observed_generation,
        conditions: status.conditions.map(|conditions| {
            conditions
                .into_iter()
                .map(|c| ReplicationControllerCondition {
                    type_: c.type_,
                    status: c.status,
                    reason: c.reason,
                    message: c.message,
                    last_transition_time: c.last_transition_time,
                })
                .collect()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replicaset::selects_template;
    use serde_json::json;

    fn rc(spec: serde_json::Value) -> ReplicationController {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "rc-uid", "generation": 4},
            "spec": spec,
            "status": {"replicas": 2, "readyReplicas": 1, "observedGeneration": 3,
                "conditions": [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "quota"}]},
        }))
        .expect("rc")
    }

    #[test]
    fn the_selector_map_becomes_match_labels() {
        let template = json!({"metadata": {"labels": {"app": "web", "tier": "fe"}}});
        type Case<'a> = (&'a str, serde_json::Value, serde_json::Value, bool);
        let cases: Vec<Case> = vec![
            (
                "set",
                json!({"selector": {"app": "web"}, "template": template}),
                json!({"matchLabels": {"app": "web"}}),
                true,
            ),
            (
                "left out: the template's labels",
                json!({"template": template}),
                json!({"matchLabels": {"app": "web", "tier": "fe"}}),
                true,
            ),
            (
                "empty: the template's labels",
                json!({"selector": {}, "template": template}),
                json!({"matchLabels": {"app": "web", "tier": "fe"}}),
                true,
            ),
            (
                "not selecting the template",
                json!({"selector": {"app": "db"}, "template": template}),
                json!({"matchLabels": {"app": "db"}}),
                false,
            ),
            (
                "nothing to select by",
                json!({"template": {"metadata": {}}}),
                json!({}),
                false,
            ),
        ];
        for (name, spec, selector, usable) in cases {
            let rs = replica_set_of(&rc(spec));
            let spec = rs.spec.expect("spec");
            assert_eq!(
                serde_json::to_value(&spec.selector).expect("json"),
                selector,
                "{name}"
            );
            assert_eq!(selects_template(&spec), usable, "{name}");
        }
    }

    #[test]
    fn spec_metadata_and_status_carry_over_and_back() {
        let rc = rc(
            json!({"replicas": 3, "minReadySeconds": 5, "selector": {"app": "web"},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}),
        );
        let rs = replica_set_of(&rc);
        assert_eq!(rs.metadata, rc.metadata);
        let spec = rs.spec.clone().expect("spec");
        let rc_spec = rc.spec.clone().expect("spec");
        assert_eq!(
            (spec.replicas, spec.min_ready_seconds, spec.template),
            (Some(3), Some(5), rc_spec.template)
        );
        let status = rs.status.clone().expect("status");
        assert_eq!(
            (
                status.replicas,
                status.ready_replicas,
                status.observed_generation
            ),
            (2, Some(1), Some(3))
        );
        assert_eq!(rc_status_of(status), rc.status.expect("status"));
    }
}

/// Scenario tests: one reconcile of an RC against a mock API server, asserting the exact calls.
#[cfg(test)]
mod scenarios {
    use std::time::Duration;

    use super::*;
    use crate::queue::Reconciler as _;
    use crate::testing::{accept_all, client, echo, Call};
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::{json, Value};

    fn rc_json(replicas: i32) -> Value {
        json!({
            "apiVersion": "v1", "kind": "ReplicationController",
            "metadata": {"name": "web", "namespace": "default", "uid": "rc-uid", "generation": 1, "resourceVersion": "1"},
            "spec": {"replicas": replicas, "selector": {"app": "web"},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
        })
    }

    fn replication_controller(replicas: i32) -> ReplicationController {
        serde_json::from_value(rc_json(replicas)).expect("rc")
    }

    fn rc_ref() -> Value {
        json!({"apiVersion": "v1", "kind": "ReplicationController", "name": "web", "uid": "rc-uid", "controller": true, "blockOwnerDeletion": true})
    }

    fn pod(name: &str, owner: Option<Value>, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("{name}-uid"), "labels": {"app": "web"},
                "resourceVersion": "5", "creationTimestamp": "2025-01-01T00:00:00Z",
                "ownerReferences": owner.map(|o| vec![o])},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .expect("pod")
    }

    fn controller(client: kube::Client) -> (Arc<Context>, Arc<ReplicationManager>) {
        let ctx = Context::new(client, crate::Options::default());
        (ctx.clone(), ReplicationManager::new(ctx))
    }

    fn key() -> (String, String) {
        ("default".into(), "web".into())
    }

    async fn events(calls: &crate::testing::Calls, count: usize) -> Vec<Call> {
        for _ in 0..50 {
            if calls.events().len() >= count {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        calls.events()
    }

    #[tokio::test]
    async fn pods_are_created_owned_by_the_rc_and_its_status_written() {
        let (client, calls) = client(accept_all);
        let (ctx, rc) = controller(client);
        ctx.replication_controllers
            .seed(vec![replication_controller(3)]);
        ctx.pods.seed(vec![]);
        rc.clone().reconcile(key()).await.expect("synced");
        let made = calls.without_events();
        let lines: Vec<String> = made.iter().map(Call::line).collect();
        assert_eq!(
            lines,
            [
                "POST /api/v1/namespaces/default/pods?",
                "POST /api/v1/namespaces/default/pods?",
                "POST /api/v1/namespaces/default/pods?",
                "PUT /api/v1/namespaces/default/replicationcontrollers/web/status?",
            ]
        );
        let pod = &made[0].body;
        assert_eq!(pod["metadata"]["generateName"], "web-");
        assert_eq!(pod["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(pod["metadata"]["ownerReferences"], json!([rc_ref()]));
        let written = &made[3].body;
        assert_eq!(
            (&written["kind"], &written["apiVersion"]),
            (&json!("ReplicationController"), &json!("v1"))
        );
        assert_eq!(written["spec"]["selector"], json!({"app": "web"}));
        assert_eq!(
            written["status"],
            json!({"replicas": 0, "fullyLabeledReplicas": 0, "readyReplicas": 0,
                "availableReplicas": 0, "observedGeneration": 1})
        );
        // The creations are expected: until the pods are seen, another sync creates nothing.
        rc.clone().reconcile(key()).await.expect("synced");
        let again: Vec<String> = calls.without_events()[4..].iter().map(Call::line).collect();
        assert!(again.iter().all(|l| !l.starts_with("POST")), "{again:?}");
        // The events are about the RC, from upstream's component.
        let events = events(&calls, 3).await;
        assert_eq!(events.len(), 3, "{events:?}");
        let event = &events[0].body;
        assert_eq!(event["reason"], "SuccessfulCreate");
        assert_eq!(event["source"]["component"], "replication-controller");
        assert_eq!(event["involvedObject"]["kind"], "ReplicationController");
        assert_eq!(event["involvedObject"]["apiVersion"], "v1");
        assert_eq!(event["involvedObject"]["uid"], "rc-uid");
    }

    #[tokio::test]
    async fn scaling_down_deletes_the_unready_and_counts_status() {
        let (client, calls) = client(accept_all);
        let (ctx, rc) = controller(client);
        let mut scaled = replication_controller(1);
        scaled.metadata.generation = Some(2);
        ctx.replication_controllers.seed(vec![scaled]);
        ctx.pods.seed(vec![
            pod("ready", Some(rc_ref()), true),
            pod("unready-a", Some(rc_ref()), false),
            pod("unready-b", Some(rc_ref()), false),
        ]);
        rc.clone().reconcile(key()).await.expect("synced");
        let made = calls.without_events();
        let mut lines: Vec<String> = made.iter().map(Call::line).collect();
        let status = lines.pop().expect("a status update");
        lines.sort();
        assert_eq!(
            lines,
            [
                "DELETE /api/v1/namespaces/default/pods/unready-a?",
                "DELETE /api/v1/namespaces/default/pods/unready-b?",
            ]
        );
        assert_eq!(
            status,
            "PUT /api/v1/namespaces/default/replicationcontrollers/web/status?"
        );
        // As upstream: the status counts the pods this sync started from.
        assert_eq!(
            made[2].body["status"],
            json!({"replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 1,
                "availableReplicas": 1, "observedGeneration": 2})
        );
        let events = events(&calls, 2).await;
        assert!(
            events
                .iter()
                .all(|e| e.body["reason"] == "SuccessfulDelete"),
            "{events:?}"
        );
    }

    #[tokio::test]
    async fn orphans_are_adopted_and_a_replica_sets_pods_left_alone() {
        let (client, calls) = client(|call: &Call| match call.method.as_str() {
            "GET" if call.path.contains("/replicationcontrollers/web") => (200, rc_json(1)),
            _ => accept_all(call),
        });
        let (ctx, rc) = controller(client);
        ctx.replication_controllers
            .seed(vec![replication_controller(1)]);
        let rs_ref = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "rs-uid", "controller": true});
        ctx.pods.seed(vec![
            pod("orphan", None, true),
            pod("rs-pod", Some(rs_ref), true),
        ]);
        rc.clone().reconcile(key()).await.expect("synced");
        let made = calls.without_events();
        let lines: Vec<String> = made.iter().map(Call::line).collect();
        assert_eq!(
            lines,
            [
                "GET /api/v1/namespaces/default/replicationcontrollers/web",
                "PATCH /api/v1/namespaces/default/pods/orphan?",
                "PUT /api/v1/namespaces/default/replicationcontrollers/web/status?",
            ]
        );
        assert_eq!(
            made[1].body["metadata"]["ownerReferences"],
            json!([rc_ref()])
        );
        assert_eq!(made[2].body["status"]["replicas"], 1);
    }

    #[tokio::test]
    async fn an_rc_not_selecting_its_template_is_left_alone() {
        let (client, calls) = client(accept_all);
        let (ctx, rc) = controller(client);
        let mut broken = rc_json(2);
        broken["spec"]["selector"] = json!({"app": "db"});
        ctx.replication_controllers
            .seed(vec![serde_json::from_value(broken).expect("rc")]);
        ctx.pods.seed(vec![]);
        rc.clone().reconcile(key()).await.expect("synced");
        assert_eq!(calls.without_events(), []);
    }

    #[tokio::test]
    async fn pod_changes_wake_only_the_rc_that_controls_them() {
        let (client, _calls) = client(|call: &Call| echo(call, 200));
        let (ctx, rc) = controller(client);
        ctx.replication_controllers
            .seed(vec![replication_controller(1)]);
        let queued = rc.queue().get().await.expect("the rc's own add");
        rc.queue().done(&queued);
        assert!(rc.queue().is_empty());
        let apps_ref = json!({"apiVersion": "apps/v1", "kind": "ReplicationController", "name": "web", "uid": "rc-uid", "controller": true});
        ctx.pods
            .seed(vec![pod("other-group", Some(apps_ref), true)]);
        assert!(rc.queue().is_empty(), "an apps/v1 owner is not this RC");
        ctx.pods.seed(vec![pod("mine", Some(rc_ref()), true)]);
        assert_eq!(rc.queue().len(), 1);
        let queued = rc.queue().get().await.expect("woken by its pod");
        assert_eq!(queued, key());
        rc.queue().done(&queued);
        ctx.pods.seed(vec![pod("orphan", None, true)]);
        assert_eq!(
            rc.queue().len(),
            1,
            "an orphan it selects wakes it to adopt"
        );
    }
}
