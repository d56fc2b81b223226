//! The example operator (`examples/website-operator`, written with kube-rs) against a real
//! `ferry server`, in-process: it installs its derived CRD with server-side apply and waits
//! for Established; a Website created with kubectl becomes a ConfigMap and a Deployment applied
//! server-side and owned by it, a status through the status subresource and an Event; spec
//! changes and a deleted child are reconciled; deleting the Website runs the finalizer's
//! cleanup, which deletes the children before the Website goes.

mod common;

use std::fmt::Debug;
use std::time::Duration;

use common::Ferry;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::serde::de::DeserializeOwned;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions, Condition};
use kube::{Resource, ResourceExt};
use website_operator::controller::{FIELD_MANAGER, FINALIZER};
use website_operator::{Website, WebsiteSpec};

/// How long any one step may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Watches `name` until `condition` holds; the object then, if it exists.
async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    condition: impl Condition<K>,
) -> Option<K>
where
    K: Clone + Debug + Send + DeserializeOwned + Resource + 'static,
{
    tokio::time::timeout(TIMEOUT, await_condition(api.clone(), name, condition))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap_or_else(|e| panic!("watching for {what}: {e}"))
}

/// Polls the Events about the Website `website` until one has `reason` and satisfies `check`.
async fn wait_for_event(
    events: &Api<Event>,
    website: &str,
    reason: &str,
    what: &str,
    check: impl Fn(&Event) -> bool,
) -> Event {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let list = events
            .list(&ListParams::default())
            .await
            .expect("list events");
        let found = list.items.into_iter().find(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(website)
                && e.reason.as_deref() == Some(reason)
                && check(e)
        });
        if let Some(event) = found {
            return event;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {reason} Event about {website}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn note_has(text: &'static str) -> impl Fn(&Event) -> bool {
    move |e| e.note.as_deref().is_some_and(|n| n.contains(text))
}

fn controlled_by(meta: &kube::api::ObjectMeta, website: &Website) -> bool {
    meta.owner_references.as_ref().is_some_and(|owners| {
        owners.iter().any(|o| {
            o.kind == "Website"
                && Some(&o.uid) == website.metadata.uid.as_ref()
                && o.controller == Some(true)
        })
    })
}

const WEBSITE: &str = "apiVersion: example.ferry.dev/v1
kind: Website
metadata: {name: hello}
spec: {content: '<h1>v1</h1>', replicas: 2}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_operator_reconciles_a_website_and_cleans_up_through_its_finalizer() {
    // The operator's log, shown when the test fails.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("website_operator=debug,kube_runtime=debug")
        .try_init();
    let ferry = Ferry::start();
    let client = ferry.client().await;
    tokio::time::timeout(TIMEOUT, website_operator::install_crd(&client, TIMEOUT))
        .await
        .expect("CRD installed in time")
        .expect("install the CRD");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let operator = tokio::spawn(website_operator::run(client.clone(), async move {
        let _ = stopped.await;
    }));

    let websites: Api<Website> = Api::namespaced(client.clone(), "default");
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let events: Api<Event> = Api::namespaced(client.clone(), "default");

    // The derived schema is enforced: replicas is at most 10.
    let too_many = Website::new(
        "too-many",
        WebsiteSpec {
            content: "x".into(),
            replicas: 11,
        },
    );
    match websites.create(&PostParams::default(), &too_many).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 422, "{status:?}"),
        other => panic!("a Website with 11 replicas should be invalid: {other:?}"),
    }

    ferry.apply_yaml("apply", WEBSITE);

    // The finalizer goes on first, then the children, the status and an Event.
    let website = wait_for(
        &websites,
        "hello",
        "the Website reconciled",
        |w: Option<&Website>| {
            w.and_then(|w| w.status.as_ref())
                .is_some_and(|s| s.observed_generation == Some(1))
        },
    )
    .await
    .expect("the Website");
    assert!(
        website.finalizers().iter().any(|f| f == FINALIZER),
        "{website:?}"
    );
    let status = website.status.as_ref().expect("status");
    let condition = &status.conditions[0];
    assert_eq!(
        (condition.type_.as_str(), condition.status.as_str()),
        ("Reconciled", "True")
    );

    let config_map = config_maps
        .get("hello-content")
        .await
        .expect("the ConfigMap");
    assert_eq!(
        config_map.data.as_ref().expect("data")["index.html"],
        "<h1>v1</h1>"
    );
    assert!(
        controlled_by(&config_map.metadata, &website),
        "{config_map:?}"
    );
    let managers = config_map
        .metadata
        .managed_fields
        .clone()
        .unwrap_or_default();
    assert!(
        managers
            .iter()
            .any(|m| m.manager.as_deref() == Some(FIELD_MANAGER)
                && m.operation.as_deref() == Some("Apply")),
        "the ConfigMap is applied by the operator: {managers:?}"
    );
    let deployment = deployments.get("hello").await.expect("the Deployment");
    assert_eq!(deployment.spec.as_ref().and_then(|s| s.replicas), Some(2));
    assert!(
        controlled_by(&deployment.metadata, &website),
        "{deployment:?}"
    );
    let first = wait_for_event(
        &events,
        "hello",
        "Reconciled",
        "for 2 replicas",
        note_has("with 2 replicas"),
    )
    .await;
    assert_eq!(first.reporting_controller.as_deref(), Some(FIELD_MANAGER));

    // The operator settles: re-applying unchanged children and status writes nothing.
    let settled = (config_map.resource_version(), website.resource_version());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let config_map = config_maps
        .get("hello-content")
        .await
        .expect("the ConfigMap");
    let website = websites.get("hello").await.expect("the Website");
    assert_eq!(
        (config_map.resource_version(), website.resource_version()),
        settled
    );

    // The printer columns and short name of the derived definition, through kubectl.
    let table = ferry.ok(&["get", "ws", "hello"]);
    assert!(
        table.contains("REPLICAS") && table.contains("OBSERVED"),
        "{table}"
    );

    // A new spec: the children follow and the status observes the new generation.
    let patch = serde_json::json!({"spec": {"content": "<h1>v2</h1>", "replicas": 3}});
    websites
        .patch("hello", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("update the spec");
    wait_for(
        &config_maps,
        "hello-content",
        "the new content",
        |c: Option<&ConfigMap>| {
            c.and_then(|c| c.data.as_ref())
                .is_some_and(|d| d.get("index.html").map(String::as_str) == Some("<h1>v2</h1>"))
        },
    )
    .await;
    wait_for(
        &deployments,
        "hello",
        "3 replicas",
        |d: Option<&Deployment>| {
            d.and_then(|d| d.spec.as_ref()).and_then(|s| s.replicas) == Some(3)
        },
    )
    .await;
    wait_for(
        &websites,
        "hello",
        "generation 2 observed",
        |w: Option<&Website>| {
            w.and_then(|w| w.status.as_ref())
                .is_some_and(|s| s.observed_generation == Some(2))
        },
    )
    .await;
    // kube-rs's Recorder counts a repeated Event as a series on the first one (a merge patch).
    wait_for_event(&events, "hello", "Reconciled", "seen twice", |e| {
        e.series.as_ref().is_some_and(|s| s.count >= 2)
    })
    .await;

    // A child deleted behind the operator's back comes back.
    let old_uid = config_map.uid().expect("uid");
    config_maps
        .delete("hello-content", &DeleteParams::default())
        .await
        .expect("delete the ConfigMap");
    wait_for(
        &config_maps,
        "hello-content",
        "the ConfigMap recreated",
        |c: Option<&ConfigMap>| c.is_some_and(|c| c.uid().is_some_and(|uid| uid != old_uid)),
    )
    .await;

    // Deleting the Website runs the cleanup, then the finalizer comes off and it is gone.
    let uid = website.uid().expect("uid");
    let config_map_uid = config_maps
        .get("hello-content")
        .await
        .expect("ConfigMap")
        .uid();
    let deployment_uid = deployment.uid().expect("uid");
    websites
        .delete("hello", &DeleteParams::default())
        .await
        .expect("delete the Website");
    wait_for(
        &websites,
        "hello",
        "the Website gone",
        conditions::is_deleted(&uid),
    )
    .await;
    wait_for(
        &config_maps,
        "hello-content",
        "the ConfigMap gone",
        conditions::is_deleted(&config_map_uid.expect("uid")),
    )
    .await;
    wait_for(
        &deployments,
        "hello",
        "the Deployment gone",
        conditions::is_deleted(&deployment_uid),
    )
    .await;
    wait_for_event(
        &events,
        "hello",
        "DeletedChildren",
        "from the cleanup",
        note_has("deleted ConfigMap hello-content"),
    )
    .await;

    let _ = stop.send(());
    tokio::time::timeout(TIMEOUT, operator)
        .await
        .expect("the operator stops in time")
        .expect("the operator task");
}
