//! ControllerRevisions: the history of DaemonSets and StatefulSets, as upstream's
//! `pkg/controller/history` and the two controllers' `constructHistory`/`truncateHistory`.
//!
//! A revision holds a patch that puts a pod template back (`{"spec":{"template":{…,"$patch":
//! "replace"}}}`, what `kubectl rollout undo` applies), a revision number, the owner's
//! annotations (so `kubectl rollout history` shows `kubernetes.io/change-cause`) and the
//! template's labels plus `controller-revision-hash`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt as _};
use serde_json::{json, Value};

use crate::claim;
use crate::util::{api_code, hash_with_collisions, new_controller_ref};
use crate::{ApiContext as _, Context, Error};

/// The label naming a pod's (and a revision's) revision.
pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";

/// The revision data of `template`: a strategic merge patch replacing `spec.template`.
pub fn template_patch(template: &PodTemplateSpec) -> Value {
    let mut template = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Some(map) = template.as_object_mut() {
        map.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": template}})
}

/// Whether `revision` holds `patch`.
pub fn holds(revision: &ControllerRevision, patch: &Value) -> bool {
    revision.data.as_ref().is_some_and(|d| &d.0 == patch)
}

/// Upstream's `HashControllerRevision`: of the data and the collision count.
pub fn data_hash(patch: &Value, collision_count: Option<i32>) -> String {
    hash_with_collisions(
        serde_json::to_string(patch).unwrap_or_default().as_bytes(),
        collision_count,
    )
}

/// A revision name: `<owner>-<hash>`, the owner's name cut to fit (upstream's
/// `ControllerRevisionName`).
pub fn revision_name(owner: &str, hash: &str) -> String {
    let owner = if owner.len() > 223 {
        &owner[..223]
    } else {
        owner
    };
    format!("{owner}-{hash}")
}

/// A new revision of `owner` (a `kind` of `apps/v1`) holding `patch`.
pub fn new_revision(
    owner: &ObjectMeta,
    kind: &str,
    template: &PodTemplateSpec,
    patch: Value,
    revision: i64,
    hash: &str,
) -> ControllerRevision {
    let mut labels: BTreeMap<String, String> = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(REVISION_HASH_LABEL.into(), hash.into());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(owner.name.as_deref().unwrap_or(""), hash)),
            namespace: owner.namespace.clone(),
            labels: Some(labels),
            annotations: owner.annotations.clone(),
            owner_references: Some(vec![new_controller_ref(owner, "apps/v1", kind)]),
            ..Default::default()
        },
        data: Some(RawExtension(patch)),
        revision,
    }
}

/// The revisions `owner` controls, oldest revision first, after claiming as upstream's
/// `ClaimControllerRevisions`: orphans its selector selects are adopted (a set deleted with
/// `--cascade=orphan` and made again keeps its history), and its revisions it no longer
/// selects are released. The owner was read fresh for its pods in the same sync.
pub async fn controlled(
    ctx: &Context,
    owner: &claim::Owner<'_>,
) -> Result<Vec<Arc<ControllerRevision>>, Error> {
    let namespace = owner.meta.namespace.clone().unwrap_or_default();
    let meta = owner.meta.clone();
    let mut revisions = claim::claim(
        &ctx.client,
        owner,
        ctx.controller_revisions.list_namespace(&namespace),
        || async move { Ok(Some(meta)) },
    )
    .await?;
    revisions.sort_by(|a, b| {
        a.revision
            .cmp(&b.revision)
            .then_with(|| {
                a.metadata
                    .creation_timestamp
                    .cmp(&b.metadata.creation_timestamp)
            })
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
    Ok(revisions)
}

/// What creating a revision came to.
pub enum Created {
    /// Created, or an equal one of the same owner was there already.
    Revision(Box<ControllerRevision>),
    /// Another revision holds the name: the owner's collision count must move on.
    Collision,
}

/// Creates `revision`; an existing one of that name is taken if it holds the same data for
/// the same owner, and is a hash collision otherwise.
pub async fn create(client: &kube::Client, revision: ControllerRevision) -> Result<Created, Error> {
    let namespace = revision.namespace().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), &namespace);
    match api.create(&PostParams::default(), &revision).await {
        Ok(created) => Ok(Created::Revision(Box::new(created))),
        Err(e) if api_code(&e) == Some(409) => {
            let existing = api
                .get(&revision.name_any())
                .await
                .context("reading a controller revision")?;
            // Equal data is the same revision, whoever owns it (an orphan is adopted by the
            // owner's next claim), as upstream's CreateControllerRevision.
            if existing.data == revision.data {
                Ok(Created::Revision(Box::new(existing)))
            } else {
                Ok(Created::Collision)
            }
        }
        Err(e) => Err(e).context("creating a controller revision"),
    }
}

/// Sets a revision's number (an old template brought back becomes the newest revision).
pub async fn renumber(
    client: &kube::Client,
    revision: &ControllerRevision,
    number: i64,
) -> Result<ControllerRevision, Error> {
    let api: Api<ControllerRevision> =
        Api::namespaced(client.clone(), &revision.namespace().unwrap_or_default());
    let mut updated = revision.clone();
    updated.revision = number;
    api.replace(&revision.name_any(), &PostParams::default(), &updated)
        .await
        .context("renumbering a controller revision")
}

/// Deletes the oldest of `old` revisions beyond `limit`, sparing the ones a live pod still
/// runs (`in_use`, by their `controller-revision-hash` or name).
pub async fn truncate(
    client: &kube::Client,
    old: &[Arc<ControllerRevision>],
    in_use: &HashSet<String>,
    limit: usize,
) -> Result<(), Error> {
    let used = |r: &ControllerRevision| {
        in_use.contains(&r.name_any())
            || r.labels()
                .get(REVISION_HASH_LABEL)
                .is_some_and(|h| in_use.contains(h))
    };
    let deletable: Vec<&Arc<ControllerRevision>> = old.iter().filter(|r| !used(r)).collect();
    let excess = deletable.len().saturating_sub(limit);
    for revision in deletable.into_iter().take(excess) {
        let api: Api<ControllerRevision> =
            Api::namespaced(client.clone(), &revision.namespace().unwrap_or_default());
        match api
            .delete(&revision.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(e) if api_code(&e) == Some(404) => {}
            Err(e) => return Err(e).context("deleting an old controller revision"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image}]}
        }))
        .unwrap()
    }

    #[test]
    fn the_patch_replaces_the_template() {
        let patch = template_patch(&template("a"));
        assert_eq!(patch["spec"]["template"]["$patch"], "replace");
        assert_eq!(
            patch["spec"]["template"]["spec"]["containers"][0]["image"],
            "a"
        );
        let meta = ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("u1".into()),
            annotations: Some([("kubernetes.io/change-cause".to_string(), "x".to_string())].into()),
            ..Default::default()
        };
        let hash = data_hash(&patch, None);
        let revision = new_revision(
            &meta,
            "StatefulSet",
            &template("a"),
            patch.clone(),
            3,
            &hash,
        );
        assert_eq!(revision.name_any(), format!("web-{hash}"));
        assert_eq!(revision.labels()["app"], "web");
        assert_eq!(revision.labels()[REVISION_HASH_LABEL], hash);
        assert_eq!(revision.annotations()["kubernetes.io/change-cause"], "x");
        assert!(holds(&revision, &patch));
        assert!(!holds(&revision, &template_patch(&template("b"))));
        assert_ne!(data_hash(&patch, None), data_hash(&patch, Some(1)));
    }

    #[test]
    fn long_owner_names_are_cut() {
        let name = revision_name(&"a".repeat(300), "h");
        assert_eq!(name.len(), 225);
    }
}
