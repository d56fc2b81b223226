//! Claiming children, as upstream's `ControllerRefManager`: an owner keeps the children it
//! controls and still selects, releases the ones it controls but no longer selects (their
//! controller reference is patched away), and adopts orphans it selects — after reading itself
//! again once, since a cached owner may have been deleted and replaced under the same name.
//!
//! ReplicaSets, DaemonSets and StatefulSets claim pods with it; DaemonSets and StatefulSets claim
//! their ControllerRevisions too.

use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt as _};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::util::{api_code, controller_ref, new_controller_ref, selector_matches};
use crate::Error;

/// Who claims: the owner's metadata as cached, its kind and its selector.
pub struct Owner<'a> {
    /// The owner as the informer has it.
    pub meta: &'a ObjectMeta,
    /// `apps/v1`, …
    pub api_version: &'a str,
    /// `ReplicaSet`, `DaemonSet`, …
    pub kind: &'a str,
    /// What it selects.
    pub selector: &'a LabelSelector,
}

/// Claims `children` (all in the owner's namespace) for `owner`; `fresh` reads the owner from
/// the API server (`None`: gone), once, before the first adoption. Children being deleted are
/// never adopted.
pub async fn claim<K, F, Fut>(
    client: &kube::Client,
    owner: &Owner<'_>,
    children: Vec<Arc<K>>,
    fresh: F,
) -> Result<Vec<Arc<K>>, Error>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Option<ObjectMeta>, kube::Error>>,
{
    let uid = owner.meta.uid.clone().unwrap_or_default();
    let namespace = owner.meta.namespace.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), &namespace);
    let deleting = owner.meta.deletion_timestamp.is_some();
    let mut claimed = Vec::new();
    let mut fresh = Some(fresh);
    for child in children {
        let meta = child.meta();
        let matches = selector_matches(owner.selector, meta.labels.as_ref());
        match controller_ref(meta) {
            Some(r) if r.uid != uid => {}
            Some(_) if matches => claimed.push(child),
            Some(_) => {
                if deleting {
                    continue;
                }
                let rest: Vec<&OwnerReference> = child
                    .owner_references()
                    .iter()
                    .filter(|r| r.uid != uid)
                    .collect();
                let patch = json!({"metadata": {"ownerReferences": rest, "uid": meta.uid}});
                match api
                    .patch(
                        &child.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await
                {
                    Ok(_) => {}
                    Err(e) if matches!(api_code(&e), Some(404 | 409 | 422)) => {}
                    Err(e) => return Err(Error::api("releasing a child", e)),
                }
            }
            None => {
                if !matches || deleting || meta.deletion_timestamp.is_some() {
                    continue;
                }
                if let Some(read) = fresh.take() {
                    let current = read().await?;
                    // Upstream aborts the sync rather than act on a partial claim.
                    let name = owner.meta.name.as_deref().unwrap_or("");
                    match current {
                        Some(m) if m.uid.as_deref() != Some(uid.as_str()) => {
                            return Err(Error::Waiting(format!(
                                "original {} {namespace}/{name} is gone: got uid {}, wanted {uid}",
                                owner.kind,
                                m.uid.unwrap_or_default()
                            )))
                        }
                        None => {
                            return Err(Error::Waiting(format!(
                                "original {} {namespace}/{name} is gone",
                                owner.kind
                            )))
                        }
                        Some(m) if m.deletion_timestamp.is_some() => {
                            return Err(Error::Waiting(format!(
                                "{} {namespace}/{name} has just been deleted at {}",
                                owner.kind,
                                m.deletion_timestamp
                                    .map(|t| t.0.to_string())
                                    .unwrap_or_default()
                            )))
                        }
                        Some(_) => {}
                    }
                }
                let mut refs: Vec<OwnerReference> = child.owner_references().to_vec();
                refs.push(new_controller_ref(
                    owner.meta,
                    owner.api_version,
                    owner.kind,
                ));
                let patch = json!({"metadata": {"ownerReferences": refs, "uid": meta.uid}});
                match api
                    .patch(
                        &child.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await
                {
                    Ok(adopted) => claimed.push(Arc::new(adopted)),
                    Err(e) if matches!(api_code(&e), Some(404 | 409 | 422)) => {}
                    Err(e) => return Err(Error::api("adopting a child", e)),
                }
            }
        }
    }
    Ok(claimed)
}
