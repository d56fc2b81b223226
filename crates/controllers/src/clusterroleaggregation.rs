//! The ClusterRole aggregation controller (upstream's `clusterrole-aggregation`): a ClusterRole
//! with an `aggregationRule` gets as its rules the union of the rules of every other ClusterRole
//! its selectors match, in name order, each rule once — so `admin`, `edit` and `view` grow when
//! a CRD's author labels a role `rbac.authorization.k8s.io/aggregate-to-view: "true"`.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::api::PostParams;
use kube::{Api, ResourceExt as _};

use crate::queue::{Queue, Reconciler};
use crate::util::selector_matches;
use crate::{ApiContext as _, Context, Error};

/// The controller and its queue of aggregated ClusterRole names.
pub struct AggregationController {
    ctx: Arc<Context>,
    queue: Arc<Queue<String>>,
}

impl Reconciler for AggregationController {
    type Key = String;
    type Error = Error;
    const NAME: &'static str = "clusterrole-aggregation";

    fn queue(&self) -> &Arc<Queue<String>> {
        &self.queue
    }

    async fn reconcile(self: Arc<Self>, key: String) -> Result<Option<Duration>, Error> {
        self.sync(key).await
    }
}

/// The rules `role` aggregates from `roles`: matched by any selector, itself excluded, in name
/// order, each rule once. `None` if `role` does not aggregate.
pub fn aggregate(role: &ClusterRole, roles: &[Arc<ClusterRole>]) -> Option<Vec<PolicyRule>> {
    let selectors = role
        .aggregation_rule
        .as_ref()?
        .cluster_role_selectors
        .as_ref()?;
    let mut matched: Vec<&Arc<ClusterRole>> = roles
        .iter()
        .filter(|other| other.name_any() != role.name_any())
        .filter(|other| {
            selectors
                .iter()
                .any(|s| selector_matches(s, other.metadata.labels.as_ref()))
        })
        .collect();
    matched.sort_by_key(|r| r.name_any());
    let mut rules: Vec<PolicyRule> = Vec::new();
    for other in matched {
        for rule in other.rules.iter().flatten() {
            if !rules.contains(rule) {
                rules.push(rule.clone());
            }
        }
    }
    Some(rules)
}

impl AggregationController {
    /// Registers the handlers: any ClusterRole change may change any aggregated role.
    pub fn new(ctx: Arc<Context>) -> Arc<AggregationController> {
        let controller = Arc::new(AggregationController {
            ctx: ctx.clone(),
            queue: Queue::new(),
        });
        let c = controller.clone();
        ctx.cluster_roles.add_handler(move |_, _| {
            for role in c.ctx.cluster_roles.list() {
                if role.aggregation_rule.is_some() {
                    c.queue.add(role.name_any());
                }
            }
        });
        controller
    }

    async fn sync(&self, name: String) -> Result<Option<Duration>, Error> {
        let Some(role) = self.ctx.cluster_roles.get("", &name) else {
            return Ok(None);
        };
        let Some(rules) = aggregate(&role, &self.ctx.cluster_roles.list()) else {
            return Ok(None);
        };
        if role.rules.clone().unwrap_or_default() == rules {
            return Ok(None);
        }
        let mut updated = (*role).clone();
        updated.rules = Some(rules);
        let api: Api<ClusterRole> = Api::all(self.ctx.client.clone());
        api.replace(&name, &PostParams::default(), &updated)
            .await
            .context("updating an aggregated clusterrole")?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::AggregationRule;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

    fn role(
        name: &str,
        labels: &[(&str, &str)],
        verbs: &[&str],
        aggregates: Option<&str>,
    ) -> Arc<ClusterRole> {
        Arc::new(ClusterRole {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            rules: Some(
                verbs
                    .iter()
                    .map(|v| PolicyRule {
                        verbs: vec![v.to_string()],
                        api_groups: Some(vec![String::new()]),
                        resources: Some(vec!["pods".into()]),
                        ..Default::default()
                    })
                    .collect(),
            ),
            aggregation_rule: aggregates.map(|label| AggregationRule {
                cluster_role_selectors: Some(vec![LabelSelector {
                    match_labels: Some([(label.to_string(), "true".to_string())].into()),
                    ..Default::default()
                }]),
            }),
        })
    }

    fn verbs(rules: &[PolicyRule]) -> Vec<&str> {
        rules.iter().map(|r| r.verbs[0].as_str()).collect()
    }

    #[test]
    fn aggregated_rules_are_the_union_in_name_order_without_repeats() {
        let view = role("view", &[("to-edit", "true")], &[], Some("to-view"));
        let roles = vec![
            view.clone(),
            role("z-extra", &[("to-view", "true")], &["watch", "get"], None),
            role("a-base", &[("to-view", "true")], &["get", "list"], None),
            role("unlabelled", &[], &["delete"], None),
            // Its own label does not make a role aggregate itself.
            role("self", &[("to-self", "true")], &["patch"], Some("to-self")),
        ];
        let rules = aggregate(&view, &roles).expect("aggregates");
        assert_eq!(verbs(&rules), ["get", "list", "watch"]);
        assert_eq!(aggregate(&roles[4], &roles).expect("aggregates"), vec![]);
        assert_eq!(aggregate(&roles[1], &roles), None);
    }
}
