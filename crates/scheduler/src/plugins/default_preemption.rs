//! DefaultPreemption (PostFilter): when no node fits, find a node where deleting pods of lower
//! priority makes the pod fit, as upstream's `Evaluator.Preempt`:
//!
//! 1. The pod must be eligible (`preemptionPolicy` is not `Never`; no terminating
//!    lower-priority pod on its nominated node).
//! 2. Nodes rejected as UnschedulableAndUnresolvable are skipped ("Preemption is not helpful
//!    for scheduling").
//! 3. On each other node, remove every lower-priority pod; if the pod still does not fit, the
//!    node is out; otherwise add the removed pods back, most important first, keeping each that
//!    still lets the pod fit. The rest are the victims.
//! 4. Pick the node whose highest victim priority is lowest, then the lowest sum of priorities,
//!    then the fewest victims.
//!
//! The plugin only decides; the scheduler deletes the victims and sets `nominatedNodeName`.
//! Not modelled: PodDisruptionBudgets, the candidate limit (every node is tried), and pods
//! nominated to a node are not counted by later cycles' filters.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;

use crate::cache::{NodeInfo, PodInfo, Snapshot};
use crate::config::ConfigError;
use crate::framework::{
    Code, CycleState, Framework, NodeStatuses, Plugin, PostFilter, PostFilterResult, Status,
};
use crate::plugins::parse_args;
use crate::plugins::priority_sort::pod_priority;
use crate::scheduler::FitError;

/// The plugin's name.
pub const NAME: &str = "DefaultPreemption";
/// Status of nodes where removing pods cannot help.
pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
/// Status of nodes without lower-priority pods.
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

/// `DefaultPreemptionArgs` (accepted for compatibility; every node is tried).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Args {
    /// Upstream: minimum percentage of nodes to find candidates on.
    #[serde(default)]
    pub min_candidate_nodes_percentage: Option<i32>,
    /// Upstream: minimum number of candidates.
    #[serde(default)]
    pub min_candidate_nodes_absolute: Option<i32>,
}

/// The DefaultPreemption plugin.
pub struct DefaultPreemption;

impl DefaultPreemption {
    /// Builds the plugin from its args.
    pub fn new(args: Option<&serde_json::Value>) -> Result<DefaultPreemption, ConfigError> {
        let _: Args = parse_args(NAME, args)?;
        Ok(DefaultPreemption)
    }
}

impl Plugin for DefaultPreemption {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_post_filter(&self) -> Option<&dyn PostFilter> {
        Some(self)
    }
}

/// A node where preemption works and its victims.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// The node.
    pub node: String,
    /// The pods to delete, most important first.
    pub victims: Vec<Arc<Pod>>,
}

/// Why a pod may not preempt at all (upstream's `PodEligibleToPreemptOthers` messages, which
/// end up in the FailedScheduling event after `preemption: `).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum NotEligible {
    /// The pod's `preemptionPolicy` is `Never`.
    #[error("not eligible due to preemptionPolicy=Never.")]
    PreemptionPolicyNever,
    /// A lower-priority pod on the pod's nominated node is terminating: the pod waits for it
    /// rather than preempting again.
    #[error("not eligible due to a terminating pod on the nominated node.")]
    TerminatingPodOnNominatedNode,
}

/// Whether the pod may preempt at all.
fn eligible(pod: &Pod, snapshot: &Snapshot) -> Result<(), NotEligible> {
    let spec = pod.spec.as_ref();
    if spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never") {
        return Err(NotEligible::PreemptionPolicyNever);
    }
    let nominated = pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .filter(|n| !n.is_empty());
    if let Some(node) = nominated.and_then(|n| snapshot.get(n)) {
        let priority = pod_priority(pod);
        if node
            .pods
            .iter()
            .any(|p| p.pod.metadata.deletion_timestamp.is_some() && pod_priority(&p.pod) < priority)
        {
            return Err(NotEligible::TerminatingPodOnNominatedNode);
        }
    }
    Ok(())
}

/// Victims on one node, or the status saying why there are none.
pub fn select_victims_on_node(
    framework: &Framework,
    pod: &Pod,
    snapshot: &Snapshot,
    node: &NodeInfo,
) -> Result<Vec<Arc<Pod>>, Status> {
    let priority = pod_priority(pod);
    let mut potential: Vec<PodInfo> = node
        .pods
        .iter()
        .filter(|p| pod_priority(&p.pod) < priority)
        .cloned()
        .collect();
    if potential.is_empty() {
        return Err(Status::unresolvable(NO_VICTIMS));
    }
    let mut what_if = snapshot.clone();
    let mut info = node.clone();
    for victim in &potential {
        info.remove_pod(&victim.key());
    }
    what_if.replace(info.clone());
    let status = framework.run_filter_what_if(pod, &what_if, &node.name);
    if !status.is_success() {
        return Err(status);
    }
    // Most important first: higher priority, then older.
    potential.sort_by(|a, b| {
        pod_priority(&b.pod)
            .cmp(&pod_priority(&a.pod))
            .then_with(|| {
                a.pod
                    .metadata
                    .creation_timestamp
                    .cmp(&b.pod.metadata.creation_timestamp)
            })
    });
    let mut victims = Vec::new();
    for candidate in potential {
        let key = candidate.key();
        info.add_pod(candidate.clone());
        what_if.replace(info.clone());
        if !framework
            .run_filter_what_if(pod, &what_if, &node.name)
            .is_success()
        {
            info.remove_pod(&key);
            what_if.replace(info.clone());
            victims.push(candidate.pod);
        }
    }
    Ok(victims)
}

/// Upstream's `pickOneNodeForPreemption`, without PDBs and start times.
pub fn pick_one(candidates: &[Candidate]) -> Option<&Candidate> {
    candidates.iter().min_by_key(|c| {
        let highest = c
            .victims
            .iter()
            .map(|v| pod_priority(v))
            .max()
            .unwrap_or(i32::MIN);
        // Offset so that negative priorities still sum sensibly, as upstream.
        let sum: i64 = c
            .victims
            .iter()
            .map(|v| i64::from(pod_priority(v)) + i64::from(i32::MAX) + 1)
            .sum();
        (highest, sum, c.victims.len())
    })
}

impl PostFilter for DefaultPreemption {
    fn post_filter(
        &self,
        _state: &CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
        statuses: &NodeStatuses,
        framework: &Framework,
    ) -> (Option<PostFilterResult>, Status) {
        if let Err(why) = eligible(pod, snapshot) {
            return (None, Status::unschedulable(format!("preemption: {why}")));
        }
        let mut preemption_statuses = NodeStatuses::new();
        let mut candidates = Vec::new();
        for node in &snapshot.nodes {
            let code = statuses.get(&node.name).map(|s| s.code);
            if code == Some(Code::UnschedulableAndUnresolvable) {
                preemption_statuses.insert(node.name.clone(), Status::unresolvable(NOT_HELPFUL));
                continue;
            }
            if code != Some(Code::Unschedulable) {
                // Not evaluated (or passed): nothing to learn here.
                continue;
            }
            match select_victims_on_node(framework, pod, snapshot, node) {
                Ok(victims) => candidates.push(Candidate {
                    node: node.name.clone(),
                    victims,
                }),
                Err(status) => {
                    preemption_statuses.insert(node.name.clone(), status);
                }
            }
        }
        let clear = Some(PostFilterResult {
            nominated_node: Some(String::new()),
            victims: Vec::new(),
        });
        match pick_one(&candidates) {
            Some(best) => (
                Some(PostFilterResult {
                    nominated_node: Some(best.node.clone()),
                    victims: best.victims.clone(),
                }),
                Status::success(),
            ),
            None => {
                let error = FitError::new(preemption_statuses.len(), None, preemption_statuses);
                (clear, Status::unschedulable(format!("preemption: {error}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binder::FakeBinder;
    use crate::framework::registry::Handle;
    use crate::testing::{make_node, make_pod};

    fn framework() -> Framework {
        Framework::default_profile(&Handle {
            binder: FakeBinder::new(),
            volumes: Default::default(),
            workloads: Default::default(),
        })
    }

    fn statuses(framework: &Framework, pod: &Pod, snapshot: &Snapshot) -> NodeStatuses {
        let mut state = CycleState::new();
        framework
            .run_pre_filter(&mut state, pod, snapshot)
            .expect("prefilter");
        snapshot
            .nodes
            .iter()
            .map(|n| (n.name.clone(), framework.run_filter(&state, pod, n)))
            .collect()
    }

    #[test]
    fn picks_the_node_with_the_least_important_victims() {
        let node = |name: &str| make_node(name).capacity(&[("cpu", "2")]).node();
        let snapshot = Snapshot::from_objects(
            vec![
                node("n1"),
                node("n2"),
                make_node("tainted")
                    .capacity(&[("cpu", "2")])
                    .taint("k", "v", "NoSchedule")
                    .node(),
            ],
            vec![
                make_pod("mid").priority(5).req("cpu", "2").node("n1").pod(),
                make_pod("low1")
                    .priority(1)
                    .req("cpu", "1")
                    .node("n2")
                    .pod(),
                make_pod("low2")
                    .priority(1)
                    .req("cpu", "1")
                    .node("n2")
                    .pod(),
            ],
        );
        let fw = framework();
        let pod = make_pod("p").priority(10).req("cpu", "1").pod();
        let st = statuses(&fw, &pod, &snapshot);
        let (result, status) =
            DefaultPreemption.post_filter(&CycleState::new(), &pod, &snapshot, &st, &fw);
        assert!(status.is_success(), "{status:?}");
        let result = result.expect("result");
        assert_eq!(result.nominated_node.as_deref(), Some("n2"));
        // Only one of the two priority-1 pods has to go.
        assert_eq!(result.victims.len(), 1);
    }

    #[test]
    fn no_candidates_gives_upstreams_message() {
        let snapshot = Snapshot::from_objects(
            vec![
                make_node("n1").capacity(&[("cpu", "1")]).node(),
                make_node("n2").capacity(&[("cpu", "1")]).node(),
                make_node("cp")
                    .capacity(&[("cpu", "4")])
                    .taint("node-role.kubernetes.io/control-plane", "", "NoSchedule")
                    .node(),
            ],
            vec![],
        );
        let fw = framework();
        let pod = make_pod("p").req("cpu", "2").pod();
        let st = statuses(&fw, &pod, &snapshot);
        let (result, status) =
            DefaultPreemption.post_filter(&CycleState::new(), &pod, &snapshot, &st, &fw);
        assert_eq!(
            status.message(),
            "preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
        );
        assert_eq!(result.and_then(|r| r.nominated_node), Some(String::new()));
        let never = make_pod("p")
            .req("cpu", "2")
            .preemption_policy("Never")
            .pod();
        let (_, status) =
            DefaultPreemption.post_filter(&CycleState::new(), &never, &snapshot, &st, &fw);
        assert_eq!(
            status.message(),
            "preemption: not eligible due to preemptionPolicy=Never."
        );
    }

    #[test]
    fn higher_priority_pods_are_not_victims() {
        let snapshot = Snapshot::from_objects(
            vec![make_node("n1").capacity(&[("cpu", "1")]).node()],
            vec![make_pod("high")
                .priority(100)
                .req("cpu", "1")
                .node("n1")
                .pod()],
        );
        let fw = framework();
        let pod = make_pod("p").priority(10).req("cpu", "1").pod();
        let st = statuses(&fw, &pod, &snapshot);
        let (_, status) =
            DefaultPreemption.post_filter(&CycleState::new(), &pod, &snapshot, &st, &fw);
        assert_eq!(
            status.message(),
            "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
        );
    }
}
