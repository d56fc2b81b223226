//! The `Website` custom resource (`websites.example.ferry.dev/v1`) and the pure decisions about
//! its status.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a user asks for: a static site serving `content` from `replicas` web servers.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "example.ferry.dev",
    version = "v1",
    kind = "Website",
    namespaced,
    status = "WebsiteStatus",
    shortname = "ws",
    // Raw JSON columns: the structured form repeats `type_ = "integer"`, which clippy flags
    // as a duplicated attribute.
    printcolumn = r#"{"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}"#,
    printcolumn = r#"{"name": "Observed", "type": "integer", "jsonPath": ".status.observedGeneration"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct WebsiteSpec {
    /// The page served as `index.html`.
    #[schemars(length(min = 1))]
    pub content: String,
    /// How many web server pods the Deployment runs.
    #[schemars(range(min = 0, max = 10))]
    pub replicas: i32,
}

/// What the operator last did, written through the `status` subresource.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebsiteStatus {
    /// The `metadata.generation` whose spec the children were last applied from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The `Reconciled` condition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// The one condition this operator sets: true once the children match the spec.
pub const RECONCILED: &str = "Reconciled";

/// The status after the children of `generation` were applied. The condition's
/// `lastTransitionTime` only moves when its status changes, as upstream controllers do, so an
/// unchanged object applies an unchanged status.
pub fn reconciled_status(
    previous: Option<&WebsiteStatus>,
    generation: Option<i64>,
    now: Timestamp,
) -> WebsiteStatus {
    let previous_condition = previous
        .and_then(|status| status.conditions.iter().find(|c| c.type_ == RECONCILED))
        .filter(|c| c.status == "True");
    let last_transition_time = previous_condition
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    WebsiteStatus {
        observed_generation: generation,
        conditions: vec![Condition {
            type_: RECONCILED.to_string(),
            status: "True".to_string(),
            reason: "ChildrenApplied".to_string(),
            message: "the ConfigMap and the Deployment match the spec".to_string(),
            observed_generation: generation,
            last_transition_time,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).expect("timestamp")
    }

    #[test]
    fn the_condition_keeps_its_transition_time_while_it_stays_true() {
        let first = reconciled_status(None, Some(1), at(100));
        assert_eq!(first.observed_generation, Some(1));
        assert_eq!(first.conditions[0].last_transition_time, Time(at(100)));

        let second = reconciled_status(Some(&first), Some(2), at(200));
        assert_eq!(second.observed_generation, Some(2));
        assert_eq!(second.conditions[0].observed_generation, Some(2));
        assert_eq!(second.conditions[0].last_transition_time, Time(at(100)));
    }

    #[test]
    fn a_condition_that_was_not_true_transitions_now() {
        let mut stale = reconciled_status(None, Some(1), at(100));
        stale.conditions[0].status = "False".to_string();
        let next = reconciled_status(Some(&stale), Some(1), at(300));
        assert_eq!(next.conditions[0].last_transition_time, Time(at(300)));
    }

    #[test]
    fn the_derived_definition_is_namespaced_with_a_status_subresource() {
        use kube::CustomResourceExt;
        let crd = Website::crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("websites.example.ferry.dev")
        );
        assert_eq!(crd.spec.scope, "Namespaced");
        let version = &crd.spec.versions[0];
        assert!(version
            .subresources
            .as_ref()
            .is_some_and(|s| s.status.is_some()));
    }
}
