//! The namespace controller: a namespace being deleted (phase Terminating, `kubernetes` in
//! `spec.finalizers`) has everything in it deleted — every namespaced resource the API serves,
//! found by discovery — and once nothing is left, the `kubernetes` finalizer is removed through
//! the `finalize` subresource, which lets the API server delete the namespace. Its status
//! conditions say what it is waiting for, with upstream's types, reasons and messages.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::{verbs, Discovery, Scope};
use kube::{Api, ResourceExt as _};
use serde_json::json;

use crate::queue::{Queue, Reconciler};
use crate::util::api_code;
use crate::{Context, Error};

/// The finalizer this controller owns.
pub const FINALIZER: &str = "kubernetes";

/// The controller and its queue of namespace names.
pub struct NamespaceController {
    ctx: Arc<Context>,
    queue: Arc<Queue<String>>,
}

/// Why a namespace's sync failed.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    /// An API call failed.
    #[error(transparent)]
    Api(#[from] Error),
    /// Discovery failed, or some content could not be deleted: `errors` says what.
    #[error("deleting the content of namespace {namespace}: {}", errors.join("; "))]
    Content {
        /// The namespace.
        namespace: String,
        /// One message per resource that failed (`pods: …`), or the discovery failure.
        errors: Vec<String>,
    },
}

/// What one pass over a namespace's content found.
#[derive(Debug, Default, PartialEq)]
pub struct Remaining {
    /// `<resource>[.<group>] has N resource instances`, sorted.
    pub resources: Vec<String>,
    /// `<finalizer> in N resource instances`, sorted.
    pub finalizers: Vec<String>,
    /// Errors deleting content.
    pub errors: Vec<String>,
}

impl Reconciler for NamespaceController {
    type Key = String;
    type Error = NamespaceError;
    const NAME: &'static str = "namespace";

    fn queue(&self) -> &Arc<Queue<String>> {
        &self.queue
    }

    async fn reconcile(self: Arc<Self>, key: String) -> Result<Option<Duration>, NamespaceError> {
        self.sync(key).await
    }
}

impl NamespaceController {
    /// Registers the handlers.
    pub fn new(ctx: Arc<Context>) -> Arc<NamespaceController> {
        let controller = Arc::new(NamespaceController {
            ctx: ctx.clone(),
            queue: Queue::new(),
        });
        let c = controller.clone();
        ctx.namespaces.add_handler(move |_, new| {
            if let Some(ns) = new.filter(|ns| ns.metadata.deletion_timestamp.is_some()) {
                c.queue.add(ns.name_any());
            }
        });
        controller
    }

    async fn sync(&self, name: String) -> Result<Option<Duration>, NamespaceError> {
        let Some(ns) = self.ctx.namespaces.get("", &name) else {
            return Ok(None);
        };
        if ns.metadata.deletion_timestamp.is_none() {
            return Ok(None);
        }
        let finalizers = ns
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.clone())
            .unwrap_or_default();
        if !finalizers.iter().any(|f| f == FINALIZER) {
            return Ok(None);
        }
        let discovery = Discovery::new(self.ctx.client.clone()).run().await;
        let remaining = match &discovery {
            Ok(discovery) => self.delete_content(discovery, &name).await,
            Err(error) => Remaining {
                errors: vec![format!("discovery failed: {error}")],
                ..Default::default()
            },
        };
        let conditions = conditions(discovery.is_ok(), &remaining, &ns);
        let api: Api<Namespace> = Api::all(self.ctx.client.clone());
        if ns.status.as_ref().and_then(|s| s.conditions.as_ref()) != Some(&conditions) {
            let patch = json!({"status": {"conditions": conditions}});
            if let Err(e) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                if api_code(&e) == Some(404) {
                    return Ok(None);
                }
                return Err(Error::api("updating namespace conditions", e).into());
            }
        }
        if discovery.is_err() || !remaining.errors.is_empty() {
            return Err(NamespaceError::Content {
                namespace: name,
                errors: remaining.errors,
            });
        }
        if !remaining.resources.is_empty() {
            // Pods wait for their kubelet; look again soon.
            return Ok(Some(Duration::from_secs(2)));
        }
        let mut finalized = (*ns).clone();
        // The status patch above moved the resourceVersion; the finalize write is unconditional.
        finalized.metadata.resource_version = None;
        if let Some(spec) = finalized.spec.as_mut() {
            spec.finalizers = Some(finalizers.into_iter().filter(|f| f != FINALIZER).collect());
        }
        match api
            .replace_subresource("finalize", &name, &PostParams::default(), &finalized)
            .await
        {
            Ok(_) => Ok(None),
            Err(e) if api_code(&e) == Some(404) => Ok(None),
            Err(e) => Err(Error::api("finalizing the namespace", e).into()),
        }
    }

    /// Deletes every namespaced object in `namespace`; returns what is still there.
    async fn delete_content(&self, discovery: &Discovery, namespace: &str) -> Remaining {
        let mut remaining = Remaining::default();
        let mut finalizer_counts: std::collections::BTreeMap<String, usize> = Default::default();
        for group in discovery.groups() {
            for (resource, caps) in group.recommended_resources() {
                if caps.scope != Scope::Namespaced
                    || !caps.supports_operation(verbs::LIST)
                    || !caps.supports_operation(verbs::DELETE)
                {
                    continue;
                }
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.ctx.client.clone(), namespace, &resource);
                let deleted = if caps.supports_operation(verbs::DELETE_COLLECTION) {
                    api.delete_collection(&DeleteParams::background(), &ListParams::default())
                        .await
                        .map(|_| ())
                } else {
                    match api.list_metadata(&ListParams::default()).await {
                        Ok(list) => {
                            let mut result = Ok(());
                            for item in list.items {
                                if let Err(e) = api
                                    .delete(&item.name_any(), &DeleteParams::background())
                                    .await
                                {
                                    if api_code(&e) != Some(404) {
                                        result = Err(e);
                                    }
                                }
                            }
                            result
                        }
                        Err(e) => Err(e),
                    }
                };
                if let Err(e) = deleted {
                    if !matches!(api_code(&e), Some(404) | Some(405)) {
                        remaining.errors.push(format!("{}: {e}", resource.plural));
                    }
                }
                match api.list_metadata(&ListParams::default()).await {
                    Ok(list) if !list.items.is_empty() => {
                        let group_resource = if resource.group.is_empty() {
                            resource.plural.clone()
                        } else {
                            format!("{}.{}", resource.plural, resource.group)
                        };
                        remaining.resources.push(format!(
                            "{group_resource} has {} resource instances",
                            list.items.len()
                        ));
                        for item in &list.items {
                            for f in item.finalizers() {
                                *finalizer_counts.entry(f.clone()).or_default() += 1;
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) if matches!(api_code(&e), Some(404) | Some(405)) => {}
                    Err(e) => remaining.errors.push(format!("{}: {e}", resource.plural)),
                }
            }
        }
        remaining.resources.sort();
        remaining.finalizers = finalizer_counts
            .into_iter()
            .map(|(f, n)| format!("{f} in {n} resource instances"))
            .collect();
        remaining
    }
}

/// The namespace's deletion conditions, as upstream's namespace controller reports them.
pub fn conditions(
    discovered: bool,
    remaining: &Remaining,
    ns: &Namespace,
) -> Vec<NamespaceCondition> {
    let existing = ns
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let make = |type_: &str, failed: bool, reason: &str, message: String| {
        let status = if failed { "True" } else { "False" };
        let keep = existing.iter().find(|c| {
            c.type_ == type_
                && c.status == status
                && c.reason.as_deref() == Some(reason)
                && c.message.as_deref() == Some(message.as_str())
        });
        keep.cloned().unwrap_or(NamespaceCondition {
            type_: type_.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message),
            last_transition_time: Some(Time(jiff::Timestamp::now())),
        })
    };
    vec![
        if discovered {
            make(
                "NamespaceDeletionDiscoveryFailure",
                false,
                "ResourcesDiscovered",
                "All resources successfully discovered".into(),
            )
        } else {
            make(
                "NamespaceDeletionDiscoveryFailure",
                true,
                "DiscoveryFailed",
                "Discovery failed for some groups".into(),
            )
        },
        make(
            "NamespaceDeletionGroupVersionParsingFailure",
            false,
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed".into(),
        ),
        if remaining.errors.is_empty() {
            make(
                "NamespaceDeletionContentFailure",
                false,
                "ContentDeleted",
                "All content successfully deleted, may be waiting on finalization".into(),
            )
        } else {
            make(
                "NamespaceDeletionContentFailure",
                true,
                "ContentDeletionFailed",
                format!(
                    "Failed to delete all resource types, {} remaining: {}",
                    remaining.errors.len(),
                    remaining.errors.join(", ")
                ),
            )
        },
        if remaining.resources.is_empty() {
            make(
                "NamespaceContentRemaining",
                false,
                "ContentRemoved",
                "All content successfully removed".into(),
            )
        } else {
            make(
                "NamespaceContentRemaining",
                true,
                "SomeResourcesRemain",
                format!(
                    "Some resources are remaining: {}",
                    remaining.resources.join(", ")
                ),
            )
        },
        if remaining.finalizers.is_empty() {
            make(
                "NamespaceFinalizersRemaining",
                false,
                "ContentHasNoFinalizers",
                "All content-preserving finalizers finished".into(),
            )
        } else {
            make(
                "NamespaceFinalizersRemaining",
                true,
                "SomeFinalizersRemain",
                format!(
                    "Some content in the namespace has finalizers remaining: {}",
                    remaining.finalizers.join(", ")
                ),
            )
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_say_what_remains() {
        let remaining = Remaining {
            resources: vec!["pods has 3 resource instances".into()],
            ..Default::default()
        };
        let c = conditions(true, &remaining, &Namespace::default());
        let content = c
            .iter()
            .find(|c| c.type_ == "NamespaceContentRemaining")
            .expect("condition");
        assert_eq!(content.status, "True");
        assert_eq!(
            content.message.as_deref(),
            Some("Some resources are remaining: pods has 3 resource instances")
        );
        let done = conditions(true, &Remaining::default(), &Namespace::default());
        assert!(done.iter().all(|c| c.status == "False"), "{done:?}");
    }

    #[test]
    fn unchanged_conditions_keep_their_transition_time() {
        let first = conditions(true, &Remaining::default(), &Namespace::default());
        let ns = Namespace {
            status: Some(k8s_openapi::api::core::v1::NamespaceStatus {
                conditions: Some(first.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(conditions(true, &Remaining::default(), &ns), first);
    }
}
