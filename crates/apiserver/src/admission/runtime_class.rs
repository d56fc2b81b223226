//! RuntimeClass (upstream's `plugin/pkg/admission/runtimeclass`): a new pod that names a
//! RuntimeClass gets the class's `overhead.podFixed` as its `spec.overhead` and the class's
//! `scheduling` (node selector merged into the pod's, tolerations added), so the scheduler
//! counts and places it as the runtime needs; a class that does not exist, an overhead that
//! differs from the class's, or a node selector that contradicts it is refused.

use async_trait::async_trait;
use ferry_api::resources;
use serde_json::{Map, Value};

use super::{Attributes, MutatingPlugin, Operation, ValidatingPlugin};
use crate::reflector::LazyObjects;
use crate::registry::{GroupResource, PODS};
use crate::status::ApiError;
use crate::storage::Storage;

/// The RuntimeClass plugin, with the classes kept in memory once first needed.
pub struct RuntimeClass {
    classes: LazyObjects,
}

impl Default for RuntimeClass {
    fn default() -> RuntimeClass {
        RuntimeClass {
            classes: LazyObjects::new(&["/runtimeclasses/"]),
        }
    }
}

impl RuntimeClass {
    /// The pod's RuntimeClass, `None` when it names none; refused when it does not exist.
    async fn class_of(
        &self,
        storage: &Storage,
        attributes: &Attributes<'_>,
        pod: &Value,
    ) -> Result<Option<Value>, ApiError> {
        let applies = attributes.operation == Operation::Create
            && attributes.subresource.is_empty()
            && GroupResource::of(attributes.resource) == PODS;
        let name = pod
            .pointer("/spec/runtimeClassName")
            .and_then(Value::as_str);
        let Some(name) = name.filter(|n| applies && !n.is_empty()) else {
            return Ok(None);
        };
        let view = self.classes.get(&storage.store).await?;
        let class = view.get(&format!("/runtimeclasses/{name}"));
        match class {
            Some(class) => Ok(Some(class)),
            None => Err(attributes.forbidden(
                pod,
                &format!("pod rejected: RuntimeClass {name:?} not found"),
            )),
        }
    }
}

/// The class's overhead must be the pod's, if the pod gave one.
fn check_overhead(pod: &Value, class: Option<&Value>) -> Result<(), &'static str> {
    let given = pod.pointer("/spec/overhead").filter(|o| !o.is_null());
    let defined = class
        .and_then(|c| c.pointer("/overhead/podFixed"))
        .filter(|o| !o.is_null());
    match (given, defined) {
        (Some(given), Some(defined))
            if resources::from_json(given) != resources::from_json(defined) =>
        {
            Err("pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead")
        }
        (Some(_), None) => Err(
            "pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead",
        ),
        _ => Ok(()),
    }
}

/// Adds the class's overhead and scheduling to the pod.
fn apply(pod: &mut Value, class: &Value) -> Result<(), String> {
    check_overhead(pod, Some(class)).map_err(String::from)?;
    let spec = pod
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .ok_or("pod rejected: no spec")?;
    if let Some(overhead) = class.pointer("/overhead/podFixed").filter(|o| !o.is_null()) {
        spec.insert("overhead".into(), overhead.clone());
    }
    let Some(scheduling) = class.get("scheduling").filter(|s| s.is_object()) else {
        return Ok(());
    };
    if let Some(selector) = scheduling["nodeSelector"].as_object() {
        let pod_selector = spec
            .entry("nodeSelector")
            .or_insert_with(|| Value::Object(Map::new()));
        if pod_selector.is_null() {
            *pod_selector = Value::Object(Map::new());
        }
        let pod_selector = pod_selector
            .as_object_mut()
            .ok_or("pod rejected: bad nodeSelector")?;
        for (key, value) in selector {
            match pod_selector.get(key) {
                Some(existing) if existing != value => {
                    return Err(format!(
                        "conflict: runtimeClass.scheduling.nodeSelector[{key}] = {}; pod.spec.nodeSelector[{key}] = {}",
                        value.as_str().unwrap_or_default(),
                        existing.as_str().unwrap_or_default()
                    ));
                }
                _ => {
                    pod_selector.insert(key.clone(), value.clone());
                }
            }
        }
    }
    if let Some(tolerations) = scheduling["tolerations"].as_array() {
        let pod_tolerations = spec
            .entry("tolerations")
            .or_insert_with(|| Value::Array(Vec::new()));
        if pod_tolerations.is_null() {
            *pod_tolerations = Value::Array(Vec::new());
        }
        let pod_tolerations = pod_tolerations
            .as_array_mut()
            .ok_or("pod rejected: bad tolerations")?;
        for toleration in tolerations {
            if !pod_tolerations.contains(toleration) {
                pod_tolerations.push(toleration.clone());
            }
        }
    }
    Ok(())
}

#[async_trait]
impl MutatingPlugin for RuntimeClass {
    fn name(&self) -> &'static str {
        "RuntimeClass"
    }

    async fn admit(
        &self,
        storage: &Storage,
        attributes: &Attributes<'_>,
        object: &mut Value,
    ) -> Result<(), ApiError> {
        if attributes.user.is_none() {
            return Ok(());
        }
        if let Some(class) = self.class_of(storage, attributes, object).await? {
            apply(object, &class).map_err(|why| attributes.forbidden(object, &why))?;
        }
        Ok(())
    }
}

#[async_trait]
impl ValidatingPlugin for RuntimeClass {
    fn name(&self) -> &'static str {
        "RuntimeClass"
    }

    async fn validate(
        &self,
        storage: &Storage,
        attributes: &Attributes<'_>,
        object: &Value,
    ) -> Result<(), ApiError> {
        let is_pod_create = attributes.operation == Operation::Create
            && attributes.subresource.is_empty()
            && GroupResource::of(attributes.resource) == PODS;
        if attributes.user.is_none() || !is_pod_create {
            return Ok(());
        }
        let class = self.class_of(storage, attributes, object).await?;
        check_overhead(object, class.as_ref()).map_err(|why| attributes.forbidden(object, why))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classes_bring_overhead_selectors_and_tolerations() {
        let class = json!({"metadata": {"name": "kata"}, "handler": "kata",
            "overhead": {"podFixed": {"cpu": "250m", "memory": "120Mi"}},
            "scheduling": {"nodeSelector": {"runtime": "kata"},
                "tolerations": [{"key": "kata", "operator": "Exists", "effect": "NoSchedule"}]}});
        let mut pod = json!({"spec": {"runtimeClassName": "kata", "nodeSelector": {"zone": "a"},
            "containers": [{"name": "c", "image": "busybox"}]}});
        apply(&mut pod, &class).expect("applies");
        assert_eq!(
            pod["spec"]["overhead"],
            json!({"cpu": "250m", "memory": "120Mi"})
        );
        assert_eq!(
            pod["spec"]["nodeSelector"],
            json!({"zone": "a", "runtime": "kata"})
        );
        assert_eq!(pod["spec"]["tolerations"][0]["key"], "kata");
        // Applying twice adds nothing twice.
        apply(&mut pod, &class).expect("applies again");
        assert_eq!(pod["spec"]["tolerations"].as_array().map(Vec::len), Some(1));

        let mut conflicting = json!({"spec": {"nodeSelector": {"runtime": "runc"}}});
        assert_eq!(
            apply(&mut conflicting, &class),
            Err("conflict: runtimeClass.scheduling.nodeSelector[runtime] = kata; pod.spec.nodeSelector[runtime] = runc".into())
        );
        let mut other_overhead = json!({"spec": {"overhead": {"cpu": "1"}}});
        assert_eq!(
            apply(&mut other_overhead, &class),
            Err(
                "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead".into()
            )
        );
        let same = json!({"spec": {"overhead": {"cpu": "0.25", "memory": "120Mi"}}});
        assert_eq!(check_overhead(&same, Some(&class)), Ok(()));
        assert!(check_overhead(&same, None).is_err());
    }
}
