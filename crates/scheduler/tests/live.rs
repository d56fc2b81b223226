//! The scheduler against a running cluster (ignored by default): start `ferry server`, then
//! `FERRY_KUBECONFIG=.../kubeconfig.yaml cargo test -p ferry-scheduler --test live -- --ignored`.
//! Creates nodes and pods in a fresh namespace, runs [`ferry_scheduler::run`], and checks the
//! bindings, the PodScheduled condition and the events upstream would write.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::Api;

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running cluster: FERRY_KUBECONFIG"]
async fn schedules_against_a_live_cluster() {
    let kubeconfig = PathBuf::from(std::env::var("FERRY_KUBECONFIG").expect("FERRY_KUBECONFIG"));
    let client = ferry_client::connect(&kubeconfig, "ferry-test")
        .await
        .expect("connect");
    let suffix = std::process::id();
    let namespace = format!("sched-{suffix}");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}})).expect("ns");
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");

    let nodes: Api<Node> = Api::all(client.clone());
    let node = |name: &str, cpu: &str, taint: bool| -> Node {
        let mut value = serde_json::json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
                       "capacity": {"cpu": cpu, "memory": "4Gi", "pods": "110"}}
        });
        if taint {
            value["spec"] = serde_json::json!({"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]});
        }
        serde_json::from_value(value).expect("node")
    };
    // The expected messages count nodes: clear what an earlier failed run left behind.
    for old in nodes
        .list(&ListParams::default())
        .await
        .expect("nodes")
        .items
    {
        let name = old.metadata.name.unwrap_or_default();
        if ["cp-", "w1-", "w2-"].iter().any(|p| name.starts_with(p)) {
            let _ = nodes.delete(&name, &DeleteParams::default()).await;
        }
    }
    let names = [
        format!("cp-{suffix}"),
        format!("w1-{suffix}"),
        format!("w2-{suffix}"),
    ];
    for (name, cpu, taint) in [
        (&names[0], "8", true),
        (&names[1], "1", false),
        (&names[2], "1", false),
    ] {
        let created = nodes
            .create(&PostParams::default(), &node(name, cpu, taint))
            .await
            .expect("create node");
        // Status may be dropped on create: set it through the status subresource.
        let mut with_status = node(name, cpu, taint);
        with_status.metadata.resource_version = created.metadata.resource_version;
        let _ = nodes
            .replace_status(name, &PostParams::default(), &with_status)
            .await;
    }

    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let pod = |name: &str, cpu: &str| -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "pause", "resources": {"requests": {"cpu": cpu}}}]}
        }))
        .expect("pod")
    };
    pods.create(&PostParams::default(), &pod("fits", "500m"))
        .await
        .expect("create pod");
    pods.create(&PostParams::default(), &pod("too-big", "2"))
        .await
        .expect("create pod");

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let scheduler = tokio::spawn(ferry_scheduler::run(
        client.clone(),
        ferry_scheduler::Config::default(),
        async move {
            let _ = stopped.await;
        },
    ));

    eventually("the small pod to be bound", || {
        let pods = pods.clone();
        async move {
            let pod = pods.get("fits").await.expect("get");
            pod.spec
                .and_then(|s| s.node_name)
                .is_some_and(|n| n.starts_with('w'))
        }
    })
    .await;
    let want = "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. \
                preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod.";
    eventually("the big pod's PodScheduled=False condition", || {
        let pods = pods.clone();
        async move {
            let pod = pods.get("too-big").await.expect("get");
            pod.status
                .and_then(|s| s.conditions)
                .into_iter()
                .flatten()
                .any(|c| {
                    c.type_ == "PodScheduled"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("Unschedulable")
                        && c.message.as_deref() == Some(want)
                })
        }
    })
    .await;
    let events: Api<Event> = Api::namespaced(client.clone(), &namespace);
    eventually("the Scheduled and FailedScheduling events", || {
        let events = events.clone();
        let namespace = namespace.clone();
        async move {
            let list = events.list(&ListParams::default()).await.expect("events");
            let has = |reason: &str, message: &dyn Fn(&str) -> bool| {
                list.items.iter().any(|e| {
                    e.reason.as_deref() == Some(reason)
                        && e.message.as_deref().is_some_and(message)
                        && e.source.as_ref().and_then(|s| s.component.as_deref())
                            == Some("default-scheduler")
                })
            };
            has("Scheduled", &|m| {
                m.starts_with(&format!("Successfully assigned {namespace}/fits to w"))
            }) && has("FailedScheduling", &|m| m == want)
        }
    })
    .await;

    // A pod for another scheduler is left alone.
    let mut other = pod("other", "1m");
    other.spec.as_mut().expect("spec").scheduler_name = Some("someone-else".into());
    pods.create(&PostParams::default(), &other)
        .await
        .expect("create pod");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(pods
        .get("other")
        .await
        .expect("get")
        .spec
        .and_then(|s| s.node_name)
        .is_none());

    // Preemption: fill the free worker with a priority-0 pod, then ask for a whole cpu with a
    // higher priority: one priority-0 pod is deleted and the preemptor nominated.
    let mut hog = pod("hog", "1");
    hog.spec.as_mut().expect("spec").priority = Some(0);
    pods.create(&PostParams::default(), &hog)
        .await
        .expect("create hog");
    eventually("the hog to be bound", || {
        let pods = pods.clone();
        async move {
            pods.get("hog")
                .await
                .expect("get")
                .spec
                .and_then(|s| s.node_name)
                .is_some()
        }
    })
    .await;
    let mut vip = pod("vip", "1");
    vip.spec.as_mut().expect("spec").priority = Some(100);
    pods.create(&PostParams::default(), &vip)
        .await
        .expect("create vip");
    // With no kubelet the victim stays Terminating, so the preemptor stays nominated (as
    // upstream: it waits for the victim to go).
    eventually("a victim deleted and the preemptor nominated", || {
        let pods = pods.clone();
        async move {
            let vip = pods.get("vip").await.expect("get");
            let nominated = vip
                .status
                .and_then(|s| s.nominated_node_name)
                .is_some_and(|n| n.starts_with('w'));
            let list = pods.list(&ListParams::default()).await.expect("list").items;
            let victims = list
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_some())
                .filter_map(|p| p.metadata.name.clone())
                .collect::<Vec<_>>();
            nominated && victims.len() == 1 && (victims[0] == "fits" || victims[0] == "hog")
        }
    })
    .await;

    let _ = stop.send(());
    scheduler.await.expect("join").expect("run");
    for name in &names {
        let _ = nodes.delete(name, &DeleteParams::default()).await;
    }
    let _ = namespaces
        .delete(&namespace, &DeleteParams::default())
        .await;
}
