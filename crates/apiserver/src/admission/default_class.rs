//! DefaultStorageClass and DefaultIngressClass (upstream's `plugin/pkg/admission/storage/
//! storageclass/setdefault` and `…/network/defaultingressclass`): a new
//! PersistentVolumeClaim without `storageClassName`, or Ingress without `ingressClassName`,
//! gets the class marked default by its annotation — the newest one when several are.

use async_trait::async_trait;
use serde_json::Value;

use super::{Attributes, MutatingPlugin, Operation};
use crate::object::meta_str;
use crate::reflector::LazyObjects;
use crate::registry::GroupResource;
use crate::status::ApiError;
use crate::storage::Storage;

/// What one of the two plugins defaults.
pub struct DefaultClass {
    name: &'static str,
    /// The objects defaulted.
    target: GroupResource,
    /// Their field naming the class.
    field: &'static str,
    /// Annotations of the objects that name a class the old way (left alone).
    legacy_annotations: &'static [&'static str],
    /// Where the classes are kept.
    classes_prefix: &'static str,
    classes: LazyObjects,
    /// The annotations marking a class the default (`"true"`).
    default_annotations: &'static [&'static str],
}

impl DefaultClass {
    /// DefaultStorageClass.
    pub fn storage() -> DefaultClass {
        DefaultClass {
            name: "DefaultStorageClass",
            target: GroupResource {
                group: "",
                resource: "persistentvolumeclaims",
            },
            field: "storageClassName",
            legacy_annotations: &["volume.beta.kubernetes.io/storage-class"],
            classes_prefix: "/storageclasses/",
            classes: LazyObjects::new(&["/storageclasses/"]),
            default_annotations: &[
                "storageclass.kubernetes.io/is-default-class",
                "storageclass.beta.kubernetes.io/is-default-class",
            ],
        }
    }

    /// DefaultIngressClass.
    pub fn ingress() -> DefaultClass {
        DefaultClass {
            name: "DefaultIngressClass",
            target: GroupResource {
                group: "networking.k8s.io",
                resource: "ingresses",
            },
            field: "ingressClassName",
            legacy_annotations: &["kubernetes.io/ingress.class"],
            classes_prefix: "/ingressclasses/",
            classes: LazyObjects::new(&["/ingressclasses/"]),
            default_annotations: &["ingressclass.kubernetes.io/is-default-class"],
        }
    }

    /// The default class's name among `classes`: the newest marked default, then by name.
    fn default_of(&self, classes: &[Value]) -> Option<String> {
        let is_default = |class: &&Value| {
            self.default_annotations.iter().any(|a| {
                class
                    .pointer("/metadata/annotations")
                    .and_then(|m| m.get(*a))
                    .and_then(Value::as_str)
                    == Some("true")
            })
        };
        let mut defaults: Vec<&Value> = classes.iter().filter(is_default).collect();
        defaults.sort_by(|a, b| {
            let created = |c: &Value| {
                meta_str(c, "creationTimestamp")
                    .unwrap_or_default()
                    .to_string()
            };
            created(b)
                .cmp(&created(a))
                .then_with(|| meta_str(a, "name").cmp(&meta_str(b, "name")))
        });
        defaults
            .first()
            .and_then(|c| meta_str(c, "name"))
            .map(String::from)
    }
}

#[async_trait]
impl MutatingPlugin for DefaultClass {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn admit(
        &self,
        storage: &Storage,
        attributes: &Attributes<'_>,
        object: &mut Value,
    ) -> Result<(), ApiError> {
        if attributes.user.is_none()
            || attributes.operation != Operation::Create
            || !attributes.subresource.is_empty()
            || GroupResource::of(attributes.resource) != self.target
        {
            return Ok(());
        }
        let named = object
            .get("spec")
            .and_then(|s| s.get(self.field))
            .is_some_and(|v| !v.is_null());
        let legacy = self.legacy_annotations.iter().any(|a| {
            object
                .pointer("/metadata/annotations")
                .and_then(|m| m.get(*a))
                .is_some()
        });
        if named || legacy {
            return Ok(());
        }
        let view = self.classes.get(&storage.store).await?;
        let Some(class) = self.default_of(&view.under(self.classes_prefix)) else {
            return Ok(());
        };
        if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert(self.field.to_string(), Value::String(class));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_newest_default_class_wins() {
        let class = |name: &str, created: &str, default: Option<&str>| {
            let annotations =
                default.map(|d| json!({"storageclass.kubernetes.io/is-default-class": d}));
            json!({"metadata": {"name": name, "creationTimestamp": created, "annotations": annotations}})
        };
        let storage = DefaultClass::storage();
        let classes = vec![
            class("old", "2026-01-01T00:00:00Z", Some("true")),
            class("new", "2026-06-01T00:00:00Z", Some("true")),
            class(
                "newest-but-not-default",
                "2026-12-01T00:00:00Z",
                Some("false"),
            ),
            class("plain", "2026-12-02T00:00:00Z", None),
        ];
        assert_eq!(storage.default_of(&classes).as_deref(), Some("new"));
        assert_eq!(storage.default_of(&classes[2..]), None);
        let beta = json!({"metadata": {"name": "beta", "annotations": {"storageclass.beta.kubernetes.io/is-default-class": "true"}}});
        assert_eq!(storage.default_of(&[beta]).as_deref(), Some("beta"));
    }
}
