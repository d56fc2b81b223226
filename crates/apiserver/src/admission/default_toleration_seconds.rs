//! DefaultTolerationSeconds (upstream's `plugin/pkg/admission/defaulttolerationseconds`): a pod
//! that does not already tolerate them gets tolerations of the `node.kubernetes.io/not-ready`
//! and `node.kubernetes.io/unreachable` NoExecute taints for 300 seconds, so its node's failure
//! evicts it after five minutes rather than at once (seed 004's node-failure story).

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{Attributes, MutatingPlugin, Operation};
use crate::registry::{GroupResource, PODS};
use crate::status::ApiError;
use crate::storage::Storage;

/// Seconds a pod tolerates each taint (upstream's `--default-not-ready-toleration-seconds` and
/// `--default-unreachable-toleration-seconds`).
const SECONDS: i64 = 300;
/// The taints tolerated.
const TAINTS: [&str; 2] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
];

/// The DefaultTolerationSeconds plugin.
pub struct DefaultTolerationSeconds;

/// Adds the tolerations the pod's spec lacks. A toleration covers a taint when its key is the
/// taint's or empty and its effect is NoExecute or empty (as upstream decides it).
fn add_tolerations(spec: &mut Value) {
    let Some(spec) = spec.as_object_mut() else {
        return;
    };
    let tolerations = spec.entry("tolerations").or_insert(json!([]));
    if tolerations.is_null() {
        *tolerations = json!([]);
    }
    let Some(tolerations) = tolerations.as_array_mut() else {
        return;
    };
    for key in TAINTS {
        let covered = tolerations.iter().any(|t| {
            let tolerated = t["key"].as_str().unwrap_or_default();
            let effect = t["effect"].as_str().unwrap_or_default();
            (tolerated == key || tolerated.is_empty())
                && (effect == "NoExecute" || effect.is_empty())
        });
        if !covered {
            tolerations.push(
                json!({"key": key, "operator": "Exists", "effect": "NoExecute",
                "tolerationSeconds": SECONDS}),
            );
        }
    }
}

#[async_trait]
impl MutatingPlugin for DefaultTolerationSeconds {
    fn name(&self) -> &'static str {
        "DefaultTolerationSeconds"
    }

    async fn admit(
        &self,
        _storage: &Storage,
        attributes: &Attributes<'_>,
        object: &mut Value,
    ) -> Result<(), ApiError> {
        let applies = GroupResource::of(attributes.resource) == PODS
            && attributes.subresource.is_empty()
            && attributes.operation != Operation::Delete;
        if applies {
            add_tolerations(&mut object["spec"]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_tolerate_failed_nodes_for_five_minutes_unless_they_say_otherwise() {
        let added = |tolerations: Value| {
            let mut spec = json!({"tolerations": tolerations});
            add_tolerations(&mut spec);
            spec["tolerations"]
                .as_array()
                .map(|t| t.len())
                .unwrap_or_default()
        };
        let mut spec = json!({});
        add_tolerations(&mut spec);
        assert_eq!(
            spec["tolerations"][0],
            json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                "effect": "NoExecute", "tolerationSeconds": 300})
        );
        assert_eq!(
            spec["tolerations"][1]["key"],
            "node.kubernetes.io/unreachable"
        );
        assert_eq!(added(json!(null)), 2);
        assert_eq!(
            added(json!([{"operator": "Exists"}])),
            1,
            "tolerates everything"
        );
        assert_eq!(
            added(json!([{"operator": "Exists", "effect": "NoSchedule"}])),
            3,
            "another effect"
        );
        assert_eq!(
            added(
                json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                "effect": "NoExecute", "tolerationSeconds": 10}])
            ),
            2,
            "its own seconds kept"
        );
    }
}
