//! The disruption controller: keeps each PodDisruptionBudget's status — how many of its pods
//! are healthy, how many must be, how many may be disrupted now — which the API server's
//! eviction subresource reads and decrements (upstream's `pkg/controller/disruption`).
//!
//! `minAvailable` as a number needs that many ready pods out of those the selector matches;
//! `minAvailable` as a percentage and `maxUnavailable` are taken of the *expected* pods: the
//! scale of the controllers owning the matched pods (ReplicaSet, or the Deployment above it).
//! Pods recorded in `disruptedPods` by an eviction are not counted healthy until they are gone
//! or two minutes passed, so two evictions cannot take the same slack.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::PostParams;
use kube::{Api, ResourceExt as _};

use crate::informer::{key_of, Key};
use crate::queue::{Queue, Reconciler};
use crate::util::{api_code, controller_ref, pod_ready, scaled_int_or_percent, selector_matches};
use crate::{ApiContext as _, Context, Error};

/// How long an eviction's entry in `disruptedPods` holds the pod out of the healthy count.
const DISRUPTION_TIMEOUT: Duration = Duration::from_secs(120);

/// The controller and its queue of budgets.
pub struct DisruptionController {
    ctx: Arc<Context>,
    queue: Arc<Queue<Key>>,
}

impl Reconciler for DisruptionController {
    type Key = Key;
    type Error = Error;
    const NAME: &'static str = "disruption";

    fn queue(&self) -> &Arc<Queue<Key>> {
        &self.queue
    }

    async fn reconcile(self: Arc<Self>, key: Key) -> Result<Option<Duration>, Error> {
        self.sync(key).await
    }
}

impl DisruptionController {
    /// Registers the handlers.
    pub fn new(ctx: Arc<Context>) -> Arc<DisruptionController> {
        let controller = Arc::new(DisruptionController {
            ctx: ctx.clone(),
            queue: Queue::new(),
        });
        let c = controller.clone();
        ctx.pdbs.add_handler(move |old, new| {
            if let Some(pdb) = new.or(old) {
                c.queue.add(key_of(pdb.as_ref()));
            }
        });
        let c = controller.clone();
        ctx.pods.add_handler(move |old, new| {
            let Some(pod) = new.or(old) else { return };
            let namespace = pod.namespace().unwrap_or_default();
            for pdb in c.ctx.pdbs.list_namespace(&namespace) {
                let selects = |p: Option<&Arc<Pod>>| p.is_some_and(|p| selects(&pdb, p));
                if selects(old) || selects(new) {
                    c.queue.add(key_of(pdb.as_ref()));
                }
            }
        });
        controller
    }

    /// The scale of the controller owning `pod` (ReplicaSet, or its Deployment).
    fn owner_scale(&self, pod: &Pod) -> Option<(String, i32)> {
        let namespace = pod.namespace().unwrap_or_default();
        let owner = controller_ref(&pod.metadata)?;
        if owner.kind != "ReplicaSet" {
            return None;
        }
        let rs = self
            .ctx
            .replica_sets
            .get(&namespace, &owner.name)
            .filter(|rs| rs.metadata.uid.as_deref() == Some(owner.uid.as_str()))?;
        if let Some(d) = controller_ref(&rs.metadata).filter(|r| r.kind == "Deployment") {
            let deployment = self.ctx.deployments.get(&namespace, &d.name)?;
            let replicas = deployment
                .spec
                .as_ref()
                .and_then(|s| s.replicas)
                .unwrap_or(1);
            return Some((format!("Deployment/{}", d.uid), replicas));
        }
        Some((
            format!("ReplicaSet/{}", owner.uid),
            rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        ))
    }

    async fn sync(&self, key: Key) -> Result<Option<Duration>, Error> {
        let Some(pdb) = self.ctx.pdbs.get(&key.0, &key.1) else {
            return Ok(None);
        };
        let now = jiff::Timestamp::now();
        let pods: Vec<Arc<Pod>> = self
            .ctx
            .pods
            .list_namespace(&key.0)
            .into_iter()
            .filter(|p| selects(&pdb, p))
            .collect();
        let mut scales: BTreeMap<String, i32> = BTreeMap::new();
        let mut unowned = 0;
        for pod in &pods {
            match self.owner_scale(pod) {
                Some((owner, replicas)) => {
                    scales.insert(owner, replicas);
                }
                None => unowned += 1,
            }
        }
        let expected_from_owners = scales.values().sum::<i32>() + unowned;
        let status = compute_status(&pdb, &pods, expected_from_owners, now);
        let requeue = status
            .disrupted_pods
            .as_ref()
            .and_then(|d| d.values().map(|t| t.0).min())
            .map(|oldest| {
                Duration::from_secs_f64(
                    now.duration_until(
                        oldest
                            + jiff::SignedDuration::try_from(DISRUPTION_TIMEOUT)
                                .unwrap_or_default(),
                    )
                    .as_secs_f64()
                    .max(0.0)
                        + 0.5,
                )
            });
        if pdb.status.as_ref() != Some(&status) {
            let mut updated = (*pdb).clone();
            updated.status = Some(status);
            let api: Api<PodDisruptionBudget> = Api::namespaced(self.ctx.client.clone(), &key.0);
            match api
                .replace_status(&key.1, &PostParams::default(), &updated)
                .await
            {
                Ok(_) => {}
                Err(e) if api_code(&e) == Some(404) => return Ok(None),
                Err(e) => return Err(e).context("updating a disruption budget"),
            }
        }
        Ok(requeue)
    }
}

fn selects(pdb: &PodDisruptionBudget, pod: &Pod) -> bool {
    // policy/v1: an empty selector selects every pod in the namespace; none selects none.
    pdb.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|s| selector_matches(s, pod.metadata.labels.as_ref()))
}

/// The budget's status from the pods it selects (upstream's `getExpectedPodCount`,
/// `countHealthyPods`, `updatePdbStatus`); `expected_from_owners` is the summed scale of the
/// pods' controllers.
pub fn compute_status(
    pdb: &PodDisruptionBudget,
    pods: &[Arc<Pod>],
    expected_from_owners: i32,
    now: jiff::Timestamp,
) -> PodDisruptionBudgetStatus {
    let spec = pdb.spec.clone().unwrap_or_default();
    let previous = pdb.status.clone().unwrap_or_default();
    // Evictions not yet visible as deletions, within their timeout.
    let mut disrupted: BTreeMap<String, Time> = BTreeMap::new();
    for (name, at) in previous.disrupted_pods.clone().unwrap_or_default() {
        let gone = pods
            .iter()
            .find(|p| p.name_any() == name)
            .is_none_or(|p| p.metadata.deletion_timestamp.is_some());
        let expired =
            at.0 + jiff::SignedDuration::try_from(DISRUPTION_TIMEOUT).unwrap_or_default() < now;
        if !gone && !expired {
            disrupted.insert(name, at);
        }
    }
    let healthy = pods
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && pod_ready(p).0
                && !disrupted.contains_key(&p.name_any())
        })
        .count() as i32;
    let (expected, desired) = match (&spec.min_available, &spec.max_unavailable) {
        (Some(IntOrString::Int(n)), _) => (
            pods.iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .count() as i32,
            *n,
        ),
        (Some(percent), _) => (
            expected_from_owners,
            scaled_int_or_percent(percent, expected_from_owners, true),
        ),
        (None, Some(max)) => (
            expected_from_owners,
            (expected_from_owners - scaled_int_or_percent(max, expected_from_owners, true)).max(0),
        ),
        (None, None) => (pods.len() as i32, 1),
    };
    let allowed = (healthy - desired).max(0);
    let condition_status = if allowed > 0 { "True" } else { "False" };
    let reason = if allowed > 0 {
        "SufficientPods"
    } else {
        "InsufficientPods"
    };
    let previous_condition = previous
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionAllowed");
    let condition = match previous_condition {
        Some(c) if c.status == condition_status && c.reason == reason => c.clone(),
        _ => Condition {
            type_: "DisruptionAllowed".into(),
            status: condition_status.into(),
            reason: reason.into(),
            message: String::new(),
            observed_generation: pdb.metadata.generation,
            last_transition_time: Time(now),
        },
    };
    PodDisruptionBudgetStatus {
        observed_generation: pdb.metadata.generation,
        current_healthy: healthy,
        desired_healthy: desired,
        expected_pods: expected,
        disruptions_allowed: allowed,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        conditions: Some(vec![condition]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(name: &str, ready: bool) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    fn pdb(min: Option<IntOrString>, max: Option<IntOrString>) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: ObjectMeta {
                generation: Some(1),
                ..Default::default()
            },
            spec: Some(PodDisruptionBudgetSpec {
                min_available: min,
                max_unavailable: max,
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn budgets_count_as_upstream() {
        let now = jiff::Timestamp::from_second(1_700_000_000).expect("ts");
        let pods = vec![pod("a", true), pod("b", true), pod("c", false)];
        let cases = [
            (
                "minAvailable 1",
                pdb(Some(IntOrString::Int(1)), None),
                (2, 1, 3, 1),
            ),
            (
                "minAvailable 2",
                pdb(Some(IntOrString::Int(2)), None),
                (2, 2, 3, 0),
            ),
            (
                "minAvailable 50% of 4 expected",
                pdb(Some(IntOrString::String("50%".into())), None),
                (2, 2, 4, 0),
            ),
            (
                "maxUnavailable 1 of 4 expected",
                pdb(None, Some(IntOrString::Int(1))),
                (2, 3, 4, 0),
            ),
            (
                "maxUnavailable 25% of 4 expected rounds up",
                pdb(None, Some(IntOrString::String("25%".into()))),
                (2, 3, 4, 0),
            ),
        ];
        for (name, budget, (healthy, desired, expected, allowed)) in cases {
            let s = compute_status(&budget, &pods, 4, now);
            assert_eq!(
                (
                    s.current_healthy,
                    s.desired_healthy,
                    s.expected_pods,
                    s.disruptions_allowed
                ),
                (healthy, desired, expected, allowed),
                "{name}"
            );
        }
    }

    #[test]
    fn evicted_pods_stay_out_of_the_healthy_count_until_gone_or_expired() {
        let now = jiff::Timestamp::from_second(1_700_000_000).expect("ts");
        let mut budget = pdb(Some(IntOrString::Int(1)), None);
        budget.status = Some(PodDisruptionBudgetStatus {
            disrupted_pods: Some([("a".to_string(), Time(now))].into()),
            ..Default::default()
        });
        let pods = vec![pod("a", true), pod("b", true)];
        let s = compute_status(&budget, &pods, 2, now);
        assert_eq!((s.current_healthy, s.disruptions_allowed), (1, 0));
        let later = now + jiff::SignedDuration::from_secs(121);
        let s = compute_status(&budget, &pods, 2, later);
        assert_eq!((s.current_healthy, s.disruptions_allowed), (2, 1));
        assert!(s.disrupted_pods.is_none());
    }
}
