//! Priority (upstream's `plugin/pkg/admission/priority`): a new pod's `priority` and
//! `preemptionPolicy` come from its PriorityClass (`priorityClassName`), or from the class marked
//! `globalDefault` when it names none (priority 0 when there is none); naming a class that does
//! not exist, or giving a priority that differs from the class's, is refused. For
//! PriorityClasses themselves: only one may be the global default.
//!
//! The two classes upstream creates at start, `system-node-critical` and
//! `system-cluster-critical`, are [`system_classes`]; the API server keeps them.

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{Attributes, MutatingPlugin, Operation};
use crate::object::meta_str;
use crate::reflector::LazyObjects;
use crate::registry::{GroupResource, PODS};
use crate::status::ApiError;
use crate::storage::Storage;

/// PriorityClasses.
const PRIORITY_CLASSES: GroupResource = GroupResource {
    group: "scheduling.k8s.io",
    resource: "priorityclasses",
};

/// The Priority plugin, with the PriorityClasses kept in memory from the store once it first
/// needs them (as upstream's plugin reads them from an informer).
pub struct Priority {
    classes: LazyObjects,
}

impl Default for Priority {
    fn default() -> Priority {
        Priority {
            classes: LazyObjects::new(&["/priorityclasses/"]),
        }
    }
}

impl Priority {
    /// Every PriorityClass (listed and then watched from `storage` on first use).
    async fn classes(&self, storage: &Storage) -> Result<Vec<Value>, ApiError> {
        let view = self.classes.get(&storage.store).await?;
        Ok(view.under("/priorityclasses/"))
    }
}

/// The classes upstream's API server creates at start.
pub fn system_classes() -> [Value; 2] {
    let class = |name: &str, value: i64, description: &str| {
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value, "description": description,
            "preemptionPolicy": "PreemptLowerPriority"})
    };
    [
        class(
            "system-node-critical",
            2_000_001_000,
            "Used for system critical pods that must not be moved from their current node.",
        ),
        class(
            "system-cluster-critical",
            2_000_000_000,
            "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
        ),
    ]
}

/// The class a pod without `priorityClassName` gets: the global default with the highest
/// value, if any.
fn default_class(classes: &[Value]) -> Option<&Value> {
    classes
        .iter()
        .filter(|c| c["globalDefault"].as_bool() == Some(true))
        .max_by_key(|c| c["value"].as_i64().unwrap_or(0))
}

/// Sets the pod's priority from `class` (or 0 and PreemptLowerPriority without one), refusing
/// values the pod gave that differ.
fn apply(pod: &mut Value, class: Option<&Value>) -> Result<(), String> {
    let priority = class.and_then(|c| c["value"].as_i64()).unwrap_or(0);
    let policy = class
        .and_then(|c| c["preemptionPolicy"].as_str())
        .unwrap_or("PreemptLowerPriority")
        .to_string();
    let spec = &mut pod["spec"];
    if let Some(given) = spec["priority"].as_i64() {
        if given != priority {
            return Err(format!("the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name"));
        }
    }
    if let Some(given) = spec["preemptionPolicy"].as_str() {
        if given != policy {
            return Err(format!("the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"));
        }
    }
    spec["priority"] = json!(priority);
    spec["preemptionPolicy"] = json!(policy);
    Ok(())
}

#[async_trait]
impl MutatingPlugin for Priority {
    fn name(&self) -> &'static str {
        "Priority"
    }

    async fn admit(
        &self,
        storage: &Storage,
        attributes: &Attributes<'_>,
        object: &mut Value,
    ) -> Result<(), ApiError> {
        if attributes.operation == Operation::Delete || !attributes.subresource.is_empty() {
            return Ok(());
        }
        let resource = GroupResource::of(attributes.resource);
        let name = meta_str(object, "name").unwrap_or_default().to_string();
        if resource == PRIORITY_CLASSES {
            if object["globalDefault"].as_bool() != Some(true) {
                return Ok(());
            }
            let classes = self.classes(storage).await?;
            let other = classes.iter().find(|c| {
                c["globalDefault"].as_bool() == Some(true) && meta_str(c, "name") != Some(&name)
            });
            return match other {
                Some(other) => Err(ApiError::forbidden(format!(
                    "priorityclasses.scheduling.k8s.io \"{name}\" is forbidden: PriorityClass {} is already marked as default. Only one default can exist",
                    meta_str(other, "name").unwrap_or_default()
                ))),
                None => Ok(()),
            };
        }
        if resource != PODS || attributes.operation != Operation::Create {
            return Ok(());
        }
        let mut classes = self.classes(storage).await?;
        let class_name = object["spec"]["priorityClassName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let class = if class_name.is_empty() {
            let class = default_class(&classes);
            if let Some(class) = class {
                object["spec"]["priorityClassName"] = json!(meta_str(class, "name"));
            }
            class
        } else {
            let known = classes
                .iter()
                .any(|c| meta_str(c, "name") == Some(&class_name));
            if !known {
                // Just created, perhaps, and not yet seen by the watch: ask the store.
                let info = ferry_api::registry::find("scheduling.k8s.io", "v1", "priorityclasses")
                    .ok_or_else(|| ApiError::internal("priorityclasses not registered"))?;
                let key = crate::storage::key(info, "", &class_name);
                if let Some(kv) = storage.store.get(&key).await? {
                    if let Ok(class) = serde_json::from_slice(&kv.value) {
                        classes.push(class);
                    }
                }
            }
            let class = classes
                .iter()
                .find(|c| meta_str(c, "name") == Some(&class_name));
            if class.is_none() {
                return Err(ApiError::forbidden(format!(
                    "pods \"{name}\" is forbidden: no PriorityClass with name {class_name} was found"
                )));
            }
            class
        };
        apply(object, class)
            .map_err(|why| ApiError::forbidden(format!("pods \"{name}\" is forbidden: {why}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_take_their_class_values_and_may_not_contradict_them() {
        let [node_critical, _] = system_classes();
        let mut pod = json!({"spec": {"priorityClassName": "system-node-critical"}});
        apply(&mut pod, Some(&node_critical)).expect("applies");
        assert_eq!(pod["spec"]["priority"], 2_000_001_000);
        assert_eq!(pod["spec"]["preemptionPolicy"], "PreemptLowerPriority");
        let mut plain = json!({"spec": {}});
        apply(&mut plain, None).expect("applies");
        assert_eq!(plain["spec"]["priority"], 0);
        let mut liar = json!({"spec": {"priority": 5}});
        assert_eq!(
            apply(&mut liar, Some(&node_critical)),
            Err("the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 2000001000 from the given PriorityClass name".into())
        );
        let high = json!({"metadata": {"name": "high"}, "value": 1000, "globalDefault": true});
        let low = json!({"metadata": {"name": "low"}, "value": 10, "globalDefault": true});
        let none = json!({"metadata": {"name": "none"}, "value": 5000});
        let classes = [low, none, high.clone()];
        assert_eq!(default_class(&classes), Some(&high));
        assert_eq!(default_class(&classes[1..2]), None);
    }
}
