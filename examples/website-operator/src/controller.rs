//! The reconciler: `kube::runtime::Controller` over Websites and the ConfigMaps and Deployments
//! they own, with `kube::runtime::finalizer` splitting each reconciliation into an apply and a
//! cleanup.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as Recorded, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::runtime::{watcher, Controller};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::children::{self, MANAGED_BY};
use crate::website::{reconciled_status, Website};
use crate::Error;

/// The finalizer that holds a deleted Website until its children are deleted.
pub const FINALIZER: &str = "websites.example.ferry.dev/cleanup";

/// The field manager of every apply, and the reporting controller of every Event.
pub const FIELD_MANAGER: &str = MANAGED_BY;

/// What every reconciliation shares.
struct Context {
    client: Client,
    recorder: Recorder,
}

/// Runs the controller until `shutdown` completes, then lets running reconciliations finish.
/// The CRD must be installed first ([`crate::install_crd`]).
pub async fn run(client: Client, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let children = watcher::Config::default().labels(&children::managed_by_selector());
    let context = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(client.clone(), Reporter::from(FIELD_MANAGER)),
    });
    Controller::new(
        Api::<Website>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<ConfigMap>::all(client.clone()), children.clone())
    .owns(Api::<Deployment>::all(client), children)
    .graceful_shutdown_on(shutdown)
    .run(reconcile, error_policy, context)
    .for_each(|result| async move {
        match result {
            Ok((website, _)) => tracing::info!(%website, "reconciled"),
            Err(error) => tracing::warn!(%error, "reconcile failed"),
        }
    })
    .await;
}

async fn reconcile(
    website: Arc<Website>,
    context: Arc<Context>,
) -> Result<Action, kube::runtime::finalizer::Error<Error>> {
    let namespace = website.namespace().unwrap_or_default();
    let websites: Api<Website> = Api::namespaced(context.client.clone(), &namespace);
    finalizer(&websites, FINALIZER, website, |event| async {
        match event {
            Finalizer::Apply(website) => apply(&website, &context).await,
            Finalizer::Cleanup(website) => cleanup(&website, &context).await,
        }
    })
    .await
}

/// Applies the children, then the status, and records an Event when a new generation was
/// handled.
async fn apply(website: &Website, context: &Context) -> Result<Action, Error> {
    let namespace = website
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = website.name_any();
    let params = PatchParams::apply(FIELD_MANAGER).force();

    let config_map = children::config_map(website)?;
    Api::<ConfigMap>::namespaced(context.client.clone(), &namespace)
        .patch(
            &children::config_map_name(&name),
            &params,
            &Patch::Apply(&config_map),
        )
        .await?;
    let deployment = children::deployment(website)?;
    Api::<Deployment>::namespaced(context.client.clone(), &namespace)
        .patch(&name, &params, &Patch::Apply(&deployment))
        .await?;

    let generation = website.metadata.generation;
    let previous = website.status.as_ref();
    let status = reconciled_status(previous, generation, jiff::Timestamp::now());
    if previous != Some(&status) {
        let patch = json!({
            "apiVersion": Website::api_version(&()),
            "kind": Website::kind(&()),
            "status": status,
        });
        Api::<Website>::namespaced(context.client.clone(), &namespace)
            .patch_status(&name, &params, &Patch::Apply(&patch))
            .await?;
    }
    if previous.and_then(|s| s.observed_generation) != generation {
        let note = format!(
            "applied ConfigMap {} and Deployment {name} with {} replicas",
            children::config_map_name(&name),
            website.spec.replicas
        );
        publish(context, website, "Reconciled", "Apply", note).await?;
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// Deletes the children explicitly (not leaving them to the garbage collector), so that the
/// finalizer is only removed once they are on their way out.
async fn cleanup(website: &Website, context: &Context) -> Result<Action, Error> {
    let namespace = website
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = website.name_any();
    let params = DeleteParams::background();
    let deleted_deployment = ignore_not_found(
        Api::<Deployment>::namespaced(context.client.clone(), &namespace)
            .delete(&name, &params)
            .await
            .map(|_| ()),
    )?;
    let deleted_config_map = ignore_not_found(
        Api::<ConfigMap>::namespaced(context.client.clone(), &namespace)
            .delete(&children::config_map_name(&name), &params)
            .await
            .map(|_| ()),
    )?;
    let note = match (deleted_deployment, deleted_config_map) {
        (false, false) => "the ConfigMap and the Deployment were already gone".to_string(),
        _ => format!(
            "deleted ConfigMap {} and Deployment {name}",
            children::config_map_name(&name)
        ),
    };
    publish(context, website, "DeletedChildren", "Cleanup", note).await?;
    Ok(Action::await_change())
}

/// `Ok(true)` when the delete was accepted, `Ok(false)` when there was nothing to delete.
fn ignore_not_found(result: Result<(), kube::Error>) -> Result<bool, Error> {
    match result {
        Ok(()) => Ok(true),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(false),
        Err(error) => Err(error.into()),
    }
}

async fn publish(
    context: &Context,
    website: &Website,
    reason: &str,
    action: &str,
    note: String,
) -> Result<(), Error> {
    let event = Recorded {
        type_: EventType::Normal,
        reason: reason.to_string(),
        note: Some(note),
        action: action.to_string(),
        secondary: None,
    };
    context
        .recorder
        .publish(&event, &website.object_ref(&()))
        .await?;
    Ok(())
}

/// Failed reconciliations are retried after a short, fixed delay (`run` logs the error).
fn error_policy(
    _website: Arc<Website>,
    _error: &kube::runtime::finalizer::Error<Error>,
    _context: Arc<Context>,
) -> Action {
    Action::requeue(Duration::from_secs(2))
}
