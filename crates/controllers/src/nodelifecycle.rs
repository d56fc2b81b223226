//! Node lifecycle: watches node heartbeats (Leases in kube-node-lease and the Ready
//! condition's heartbeat) and, like upstream's node lifecycle controller and taint manager:
//!
//! - a node not heard from for `--node-monitor-grace-period` gets its conditions set to
//!   Unknown ("Kubelet stopped posting node status."), and its pods are marked not Ready;
//! - taints follow the Ready condition: `node.kubernetes.io/not-ready` (False) or
//!   `node.kubernetes.io/unreachable` (Unknown), as NoSchedule and NoExecute, and
//!   `node.kubernetes.io/unschedulable:NoSchedule` follows `spec.unschedulable`; the kubelet's
//!   pressure conditions become `node.kubernetes.io/{memory,disk,pid}-pressure:NoSchedule`
//!   while True (upstream's TaintNodesByCondition, `doNoScheduleTaintingPass`);
//! - pods on a node with NoExecute taints they do not tolerate are deleted at once; pods that
//!   tolerate them for `tolerationSeconds` are deleted when that runs out (the API server's
//!   DefaultTolerationSeconds gives every pod 300 s for not-ready and unreachable).
//!
//! Time is measured from when this controller saw a heartbeat change, not from timestamps the
//! node wrote, so clock skew between machines does not matter (as upstream's probeTimestamp).

use std::collections::HashMap;
use std::sync::Arc;

use ferry_client::events::{reference, EventType};
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, PodCondition, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt as _};
use parking_lot::Mutex;
use serde_json::json;
use tokio::time::Instant;

use crate::util::api_code;
use crate::{ApiContext as _, Context, Error, ErrorChain};
use ferry_api::matching::tolerates;

/// Taint for a node whose Ready condition is False.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// Taint for a node whose Ready condition is Unknown.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// Taint for a cordoned node.
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// Taint for a node whose MemoryPressure condition is True.
pub const MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
/// Taint for a node whose DiskPressure condition is True.
pub const DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
/// Taint for a node whose PIDPressure condition is True.
pub const PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";

/// Upstream's `nodeConditionToTaintKeyStatusMap`: a condition with this status means the taint.
const CONDITION_TAINTS: &[(&str, &str, &str)] = &[
    ("MemoryPressure", "True", MEMORY_PRESSURE),
    ("DiskPressure", "True", DISK_PRESSURE),
    ("PIDPressure", "True", PID_PRESSURE),
];

const MONITORED_CONDITIONS: &[&str] = &["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// What the controller last saw of a node's heartbeats.
struct Health {
    probe: Instant,
    lease_renew: Option<jiff::Timestamp>,
    ready_heartbeat: Option<jiff::Timestamp>,
}

/// The controller.
pub struct NodeLifecycleController {
    ctx: Arc<Context>,
    health: Mutex<HashMap<String, Health>>,
    wake: tokio::sync::Notify,
}

impl NodeLifecycleController {
    /// Registers the handlers: taint changes are acted on at once, not at the next period.
    pub fn new(ctx: Arc<Context>) -> Arc<NodeLifecycleController> {
        let controller = Arc::new(NodeLifecycleController {
            ctx: ctx.clone(),
            health: Mutex::new(HashMap::new()),
            wake: tokio::sync::Notify::new(),
        });
        let c = controller.clone();
        ctx.nodes.add_handler(move |old, new| {
            let taints = |n: Option<&Arc<Node>>| {
                n.and_then(|n| n.spec.as_ref())
                    .and_then(|s| s.taints.clone())
            };
            let ready = |n: Option<&Arc<Node>>| {
                n.and_then(|n| ready_condition(n).map(|c| c.status.clone()))
            };
            let unschedulable = |n: Option<&Arc<Node>>| {
                n.and_then(|n| n.spec.as_ref())
                    .and_then(|s| s.unschedulable)
            };
            let pressure = |n: Option<&Arc<Node>>| {
                n.map(|n| {
                    CONDITION_TAINTS
                        .iter()
                        .map(|(type_, status, _)| condition_is(n, type_, status))
                        .collect::<Vec<bool>>()
                })
            };
            if taints(old) != taints(new)
                || ready(old) != ready(new)
                || unschedulable(old) != unschedulable(new)
                || pressure(old) != pressure(new)
            {
                c.wake.notify_one();
            }
        });
        controller
    }

    /// Checks every node each `--node-monitor-period` (and on taint changes), until the
    /// process ends.
    pub async fn run(self: Arc<Self>) {
        let period = self.ctx.options.node_monitor_period;
        loop {
            if let Err(error) = self.monitor().await {
                tracing::info!(error = %ErrorChain(&error), "node lifecycle pass failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = self.wake.notified() => {}
            }
        }
    }

    async fn monitor(&self) -> Result<(), Error> {
        let nodes = self.ctx.nodes.list();
        let now = Instant::now();
        {
            let mut health = self.health.lock();
            health.retain(|name, _| nodes.iter().any(|n| n.name_any() == *name));
        }
        for node in nodes {
            let name = node.name_any();
            let lease_renew = self
                .ctx
                .node_leases
                .get("kube-node-lease", &name)
                .and_then(|l| l.spec.as_ref()?.renew_time.as_ref().map(|t| t.0));
            let ready_heartbeat =
                ready_condition(&node).and_then(|c| c.last_heartbeat_time.as_ref().map(|t| t.0));
            let stale = {
                let mut health = self.health.lock();
                let h = health.entry(name.clone()).or_insert(Health {
                    probe: now,
                    lease_renew,
                    ready_heartbeat,
                });
                if h.lease_renew != lease_renew || h.ready_heartbeat != ready_heartbeat {
                    *h = Health {
                        probe: now,
                        lease_renew,
                        ready_heartbeat,
                    };
                }
                let grace = if ready_condition(&node).is_none() {
                    self.ctx.options.node_startup_grace_period
                } else {
                    self.ctx.options.node_monitor_grace_period
                };
                now.duration_since(h.probe) > grace
            };
            let mut node = (*node).clone();
            if stale {
                if let Some(conditions) = mark_unknown(&node, Time(jiff::Timestamp::now())) {
                    let api: Api<Node> = Api::all(self.ctx.client.clone());
                    let patch = json!({"status": {"conditions": conditions}});
                    node = api
                        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .context("marking a node Unknown")?;
                    self.ctx.recorder("node-controller").event(
                        reference(&node),
                        EventType::Normal,
                        "NodeNotReady",
                        format!("Node {name} status is now: NodeNotReady"),
                    );
                    self.mark_pods_not_ready(&name).await;
                }
            }
            let now_time = Time(jiff::Timestamp::now());
            if let Some(taints) = desired_taints(&node, &now_time) {
                let api: Api<Node> = Api::all(self.ctx.client.clone());
                // An empty list is sent as null: `taints` is omitempty upstream, so it goes away.
                let taints = if taints.is_empty() {
                    serde_json::Value::Null
                } else {
                    json!(taints)
                };
                let patch = json!({"metadata": {"resourceVersion": node.resource_version()}, "spec": {"taints": taints}});
                match api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(patched) => node = patched,
                    Err(e) if matches!(api_code(&e), Some(404) | Some(409)) => continue,
                    Err(e) => return Err(e).context("updating node taints"),
                }
            }
            self.evict(&node).await;
        }
        Ok(())
    }

    async fn mark_pods_not_ready(&self, node: &str) {
        for pod in self.ctx.pods.list_indexed(node) {
            let Some(conditions) = pod_not_ready_conditions(&pod, Time(jiff::Timestamp::now()))
            else {
                continue;
            };
            let api: Api<Pod> = Api::namespaced(
                self.ctx.client.clone(),
                &pod.namespace().unwrap_or_default(),
            );
            let patch = json!({"status": {"conditions": conditions}});
            if let Err(error) = api
                .patch_status(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                tracing::debug!(%error, pod = %pod.name_any(), "marking a pod not ready");
            }
        }
    }

    /// Deletes the node's pods whose tolerations of its NoExecute taints ran out.
    async fn evict(&self, node: &Node) {
        let taints: Vec<Taint> = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.effect == "NoExecute")
            .collect();
        if taints.is_empty() {
            return;
        }
        let now = jiff::Timestamp::now();
        for pod in self.ctx.pods.list_indexed(&node.name_any()) {
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let tolerations = pod
                .spec
                .as_ref()
                .and_then(|s| s.tolerations.clone())
                .unwrap_or_default();
            match eviction_time(&taints, &tolerations) {
                Eviction::Never => continue,
                Eviction::At(when) if when > now => continue,
                _ => {}
            }
            let namespace = pod.namespace().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &namespace);
            self.ctx.recorder("taint-eviction-controller").event(
                reference(pod.as_ref()),
                EventType::Normal,
                "TaintManagerEviction",
                format!("Marking for deletion Pod {namespace}/{}", pod.name_any()),
            );
            let condition = json!({"status": {"conditions": [{
                "type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
                "message": "Taint manager: deleting due to NoExecute taint", "lastTransitionTime": Time(now),
            }]}});
            // A strategic merge keeps the pod's other conditions (merge key: type).
            let _ = api
                .patch_status(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Strategic(&condition),
                )
                .await;
            if let Err(error) = api.delete(&pod.name_any(), &DeleteParams::default()).await {
                if api_code(&error) != Some(404) {
                    tracing::info!(%error, pod = %pod.name_any(), "evicting a pod");
                }
            }
        }
    }
}

/// Whether the node has condition `type_` with `status`.
fn condition_is(node: &Node, type_: &str, status: &str) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == type_ && c.status == status)
}

fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// The node's conditions with the monitored ones set to Unknown, or `None` if they already are.
pub fn mark_unknown(node: &Node, now: Time) -> Option<Vec<NodeCondition>> {
    let mut conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut changed = false;
    for type_ in MONITORED_CONDITIONS {
        match conditions.iter_mut().find(|c| c.type_ == *type_) {
            Some(c) if c.status == "Unknown" => {}
            Some(c) => {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(now.clone());
                changed = true;
            }
            None => {
                conditions.push(NodeCondition {
                    type_: type_.to_string(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_heartbeat_time: Some(now.clone()),
                    last_transition_time: Some(now.clone()),
                });
                changed = true;
            }
        }
    }
    changed.then_some(conditions)
}

/// The node's taints with the condition taints brought in line with its Ready condition and
/// `spec.unschedulable`, or `None` if they already are. New NoExecute taints carry `timeAdded`.
pub fn desired_taints(node: &Node, now: &Time) -> Option<Vec<Taint>> {
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let ready = ready_condition(node).map(|c| c.status.as_str());
    let mut wanted: Vec<(&str, &str)> = match ready {
        Some("False") => vec![(NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute")],
        Some("Unknown") => vec![(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")],
        // A node that never reported is not ready to take pods.
        None => vec![(NOT_READY, "NoSchedule")],
        _ => vec![],
    };
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        wanted.push((UNSCHEDULABLE, "NoSchedule"));
    }
    for (type_, status, key) in CONDITION_TAINTS {
        if condition_is(node, type_, status) {
            wanted.push((key, "NoSchedule"));
        }
    }
    let managed = |t: &Taint| {
        [
            NOT_READY,
            UNREACHABLE,
            UNSCHEDULABLE,
            MEMORY_PRESSURE,
            DISK_PRESSURE,
            PID_PRESSURE,
        ]
        .contains(&t.key.as_str())
            && t.value.as_deref().unwrap_or("").is_empty()
    };
    let mut taints: Vec<Taint> = current
        .iter()
        .filter(|t| !managed(t) || wanted.contains(&(t.key.as_str(), t.effect.as_str())))
        .cloned()
        .collect();
    for (key, effect) in wanted {
        if !taints.iter().any(|t| t.key == key && t.effect == effect) {
            taints.push(Taint {
                key: key.into(),
                effect: effect.into(),
                value: None,
                time_added: (effect == "NoExecute").then(|| now.clone()),
            });
        }
    }
    (taints != current).then_some(taints)
}

/// The pod's conditions with Ready (and ContainersReady) False, or `None` if already so.
pub fn pod_not_ready_conditions(pod: &Pod, now: Time) -> Option<Vec<PodCondition>> {
    let mut conditions = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut changed = false;
    for c in conditions
        .iter_mut()
        .filter(|c| c.type_ == "Ready" || c.type_ == "ContainersReady")
    {
        if c.status != "False" {
            c.status = "False".into();
            c.reason = Some("NodeNotReady".into());
            c.message = None;
            c.last_transition_time = Some(now.clone());
            changed = true;
        }
    }
    changed.then_some(conditions)
}

/// When a pod must leave a node with these NoExecute taints.
#[derive(Debug, PartialEq)]
pub enum Eviction {
    /// It tolerates them all forever.
    Never,
    /// Some taint is not tolerated.
    Now,
    /// Its shortest tolerationSeconds run out then.
    At(jiff::Timestamp),
}

/// Upstream's taint manager decision: any untolerated taint evicts now; otherwise the
/// earliest `timeAdded + tolerationSeconds` over the taints.
pub fn eviction_time(taints: &[Taint], tolerations: &[Toleration]) -> Eviction {
    let mut earliest: Option<jiff::Timestamp> = None;
    for taint in taints {
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Eviction::Now;
        }
        // The longest-lasting matching toleration wins for this taint; none bounded: forever.
        let seconds = matching
            .iter()
            .map(|t| t.toleration_seconds)
            .try_fold(i64::MIN, |acc, s| s.map(|s| acc.max(s)));
        let Some(seconds) = seconds else { continue };
        let added = taint
            .time_added
            .as_ref()
            .map(|t| t.0)
            .unwrap_or_else(jiff::Timestamp::now);
        let at = added + jiff::SignedDuration::from_secs(seconds.max(0));
        earliest = Some(earliest.map_or(at, |e| e.min(at)));
    }
    earliest.map_or(Eviction::Never, Eviction::At)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus};

    fn taint(key: &str, effect: &str, added: i64) -> Taint {
        Taint {
            key: key.into(),
            effect: effect.into(),
            value: None,
            time_added: Some(Time(jiff::Timestamp::from_second(added).expect("ts"))),
        }
    }

    fn toleration(key: &str, op: &str, effect: &str, seconds: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()).filter(|k: &String| !k.is_empty()),
            operator: Some(op.into()),
            effect: Some(effect.into()).filter(|e: &String| !e.is_empty()),
            toleration_seconds: seconds,
            value: None,
        }
    }

    #[test]
    fn eviction_follows_tolerations() {
        let unreachable = taint(UNREACHABLE, "NoExecute", 1000);
        let at = |s| Eviction::At(jiff::Timestamp::from_second(s).expect("ts"));
        let cases = [
            ("no toleration", vec![], Eviction::Now),
            (
                "default 300 s",
                vec![toleration(UNREACHABLE, "Exists", "NoExecute", Some(300))],
                at(1300),
            ),
            (
                "forever",
                vec![toleration(UNREACHABLE, "Exists", "NoExecute", None)],
                Eviction::Never,
            ),
            (
                "tolerate everything",
                vec![toleration("", "Exists", "", None)],
                Eviction::Never,
            ),
            (
                "other key",
                vec![toleration(NOT_READY, "Exists", "NoExecute", Some(300))],
                Eviction::Now,
            ),
            (
                "NoSchedule only",
                vec![toleration(UNREACHABLE, "Exists", "NoSchedule", None)],
                Eviction::Now,
            ),
        ];
        for (name, tolerations, want) in cases {
            assert_eq!(
                eviction_time(std::slice::from_ref(&unreachable), &tolerations),
                want,
                "{name}"
            );
        }
    }

    fn node(ready: Option<&str>, taints: Vec<Taint>) -> Node {
        Node {
            metadata: Default::default(),
            spec: Some(NodeSpec {
                taints: Some(taints),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                conditions: ready.map(|s| {
                    vec![NodeCondition {
                        type_: "Ready".into(),
                        status: s.into(),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn pressure_conditions_taint_no_schedule_while_true() {
        let now = Time(jiff::Timestamp::from_second(5000).expect("ts"));
        let with = |conditions: &[(&str, &str)], taints: Vec<Taint>| {
            let mut n = node(Some("True"), taints);
            let list = n
                .status
                .as_mut()
                .and_then(|s| s.conditions.as_mut())
                .expect("conditions");
            for (type_, status) in conditions {
                list.push(NodeCondition {
                    type_: type_.to_string(),
                    status: status.to_string(),
                    ..Default::default()
                });
            }
            n
        };
        let keys = |t: Option<Vec<Taint>>| {
            t.map(|t| {
                t.into_iter()
                    .map(|t| format!("{}:{}", t.key, t.effect))
                    .collect::<Vec<_>>()
            })
        };
        let cases: Vec<(&str, Node, Option<Vec<String>>)> = vec![
            (
                "memory pressure",
                with(
                    &[("MemoryPressure", "True"), ("DiskPressure", "False")],
                    vec![],
                ),
                Some(vec![format!("{MEMORY_PRESSURE}:NoSchedule")]),
            ),
            (
                "disk and pid pressure",
                with(&[("DiskPressure", "True"), ("PIDPressure", "True")], vec![]),
                Some(vec![
                    format!("{DISK_PRESSURE}:NoSchedule"),
                    format!("{PID_PRESSURE}:NoSchedule"),
                ]),
            ),
            (
                "already tainted",
                with(
                    &[("MemoryPressure", "True")],
                    vec![Taint {
                        key: MEMORY_PRESSURE.into(),
                        effect: "NoSchedule".into(),
                        ..Default::default()
                    }],
                ),
                None,
            ),
            (
                "pressure gone",
                with(
                    &[("MemoryPressure", "False")],
                    vec![Taint {
                        key: MEMORY_PRESSURE.into(),
                        effect: "NoSchedule".into(),
                        ..Default::default()
                    }],
                ),
                Some(vec![]),
            ),
        ];
        for (name, node, want) in cases {
            assert_eq!(keys(desired_taints(&node, &now)), want, "{name}");
        }
    }

    #[test]
    fn taints_follow_the_ready_condition() {
        let now = Time(jiff::Timestamp::from_second(5000).expect("ts"));
        let keys = |t: Option<Vec<Taint>>| {
            t.map(|t| {
                t.into_iter()
                    .map(|t| format!("{}:{}", t.key, t.effect))
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            keys(desired_taints(&node(Some("True"), vec![]), &now)),
            None
        );
        assert_eq!(
            keys(desired_taints(&node(Some("Unknown"), vec![]), &now)),
            Some(vec![
                format!("{UNREACHABLE}:NoSchedule"),
                format!("{UNREACHABLE}:NoExecute")
            ])
        );
        // Back to Ready: the condition taints go, a user's taint stays.
        let user = Taint {
            key: "dedicated".into(),
            effect: "NoSchedule".into(),
            value: Some("gpu".into()),
            time_added: None,
        };
        let back = desired_taints(
            &node(
                Some("True"),
                vec![taint(UNREACHABLE, "NoExecute", 1), user.clone()],
            ),
            &now,
        );
        assert_eq!(back, Some(vec![user]));
    }

    #[test]
    fn stale_nodes_go_unknown_once() {
        let now = Time(jiff::Timestamp::from_second(5000).expect("ts"));
        let conditions = mark_unknown(&node(Some("True"), vec![]), now.clone()).expect("changed");
        let ready = conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .expect("ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("Unknown", Some("NodeStatusUnknown"))
        );
        let mut unknown = node(Some("True"), vec![]);
        unknown.status.as_mut().expect("status").conditions = Some(conditions);
        assert_eq!(mark_unknown(&unknown, now), None);
    }
}
