//! The kubelet server's requests against the recording fake runtime: who may call, logs of the
//! current and previous instance, and the streaming endpoints' refusals.

use std::sync::Arc;

use async_trait::async_trait;
use http_body_util::BodyExt as _;

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::auth::{Attributes, Authorizer, User};
use super::streaming::{log_container_id, PodLookup};
use super::KubeletServer;
use crate::podconfig::{CONTAINER_NAME_LABEL, POD_NAMESPACE_LABEL, POD_NAME_LABEL};
use crate::runtime::{image_spec, v1, FakeRuntime, Runtime};

const IMAGE: &str = "127.0.0.1:5000/busybox:1";

/// Allows what its list says, and records what it was asked.
struct Allow(Vec<&'static str>, parking_lot::Mutex<Vec<Attributes>>);

#[async_trait]
impl Authorizer for Allow {
    async fn authorize(&self, user: &User, attributes: &Attributes) -> Result<bool, String> {
        self.1.lock().push(attributes.clone());
        Ok(self.0.contains(&user.name.as_str()))
    }
}

/// The pods the test says, as the API server would return them.
#[derive(Default)]
struct Pods(parking_lot::Mutex<Vec<Pod>>);

impl Pods {
    /// `default/web` whose `app` container has `status`.
    fn set_web(&self, status: serde_json::Value) {
        let pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "app"}]},
            "status": {"containerStatuses": [status]}
        }))
        .expect("pod");
        *self.0.lock() = vec![pod];
    }
}

#[async_trait]
impl PodLookup for Pods {
    async fn pod(&self, namespace: &str, name: &str) -> Result<Option<Pod>, String> {
        Ok(self
            .0
            .lock()
            .iter()
            .find(|p| {
                p.metadata.namespace.as_deref() == Some(namespace)
                    && p.metadata.name.as_deref() == Some(name)
            })
            .cloned())
    }
}

fn user(name: &str) -> Option<User> {
    Some(User {
        name: name.into(),
        groups: vec!["system:authenticated".into()],
    })
}

/// Labels of pod `default/web`, and `extra`.
fn web_labels(extra: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    [(POD_NAMESPACE_LABEL, "default"), (POD_NAME_LABEL, "web")]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Instance `attempt` of container `app` of `default/web`, logging to `app/<attempt>.log`.
fn app_config(attempt: u32) -> v1::ContainerConfig {
    v1::ContainerConfig {
        metadata: Some(v1::ContainerMetadata {
            name: "app".into(),
            attempt,
        }),
        image: Some(image_spec(IMAGE)),
        labels: web_labels(&[(CONTAINER_NAME_LABEL, "app")]),
        log_path: format!("app/{attempt}.log"),
        ..Default::default()
    }
}

struct Node {
    fake: Arc<FakeRuntime>,
    server: Arc<KubeletServer>,
    authorizer: Arc<Allow>,
    pods: Arc<Pods>,
    logs: tempfile::TempDir,
}

/// A node running pod `default/web` with container `app`, whose log directory is a temporary one.
async fn node() -> (Node, String) {
    let fake = Arc::new(FakeRuntime::new());
    fake.add_image(IMAGE);
    let logs = tempfile::tempdir().expect("dir");
    let sandbox_config = v1::PodSandboxConfig {
        metadata: Some(v1::PodSandboxMetadata {
            name: "web".into(),
            uid: "u1".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        labels: web_labels(&[]),
        log_directory: logs.path().to_string_lossy().into_owned(),
        ..Default::default()
    };
    let sandbox = fake
        .run_pod_sandbox(sandbox_config.clone(), "")
        .await
        .expect("sandbox");
    let id = fake
        .create_container(&sandbox, app_config(0), sandbox_config)
        .await
        .expect("container");
    fake.start_container(&id).await.expect("start");
    std::fs::create_dir_all(logs.path().join("app")).expect("dir");
    std::fs::write(
        logs.path().join("app/0.log"),
        "2026-12-05T10:00:00Z stdout F hello\n2026-12-05T10:00:01Z stderr F world\n",
    )
    .expect("log");
    let authorizer = Arc::new(Allow(
        vec!["kube-apiserver-kubelet-client"],
        Default::default(),
    ));
    let runtime: Arc<dyn Runtime> = fake.clone();
    let pods = Arc::new(Pods::default());
    pods.set_web(json!({"name": "app", "state": {"running": {}}, "containerID": format!("containerd://{id}")}));
    let server = KubeletServer::new("n1", runtime, authorizer.clone(), pods.clone());
    (
        Node {
            fake,
            server,
            authorizer,
            pods,
            logs,
        },
        id,
    )
}

async fn get(node: &Node, who: Option<User>, path: &str) -> (u16, String) {
    let request = http::Request::get(path).body(()).expect("request");
    let response = node.server.handle(who, request).await;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn callers_need_a_certificate_and_the_api_servers_yes() {
    let (node, _) = node().await;
    assert_eq!(
        get(&node, None, "/healthz").await,
        (401, "Unauthorized\n".into())
    );
    assert_eq!(
        get(&node, user("bob"), "/containerLogs/default/web/app").await,
        (
            403,
            "Forbidden (user=bob, verb=get, resource=nodes, subresource=proxy)\n".into()
        )
    );
    let asked = node.authorizer.1.lock().clone();
    assert_eq!(asked.len(), 1);
    assert_eq!(
        (asked[0].subresource, asked[0].node.as_str()),
        ("proxy", "n1")
    );
}

#[tokio::test]
async fn logs_of_the_current_and_previous_instance() {
    let (node, first) = node().await;
    let apiserver = || user("kube-apiserver-kubelet-client");
    assert_eq!(
        get(&node, apiserver(), "/containerLogs/default/web/app").await,
        (200, "hello\nworld\n".into())
    );
    assert_eq!(
        get(
            &node,
            apiserver(),
            "/containerLogs/default/web/app?tailLines=1&timestamps=true"
        )
        .await,
        (200, "2026-12-05T10:00:01Z world\n".into())
    );
    assert_eq!(
        get(
            &node,
            apiserver(),
            "/containerLogs/default/web/app?previous=true"
        )
        .await,
        (
            400,
            "previous terminated container \"app\" in pod \"web\" not found\n".into()
        )
    );
    assert_eq!(
        get(
            &node,
            apiserver(),
            "/containerLogs/default/web/app?limitBytes=0"
        )
        .await
        .0,
        400
    );
    assert_eq!(
        get(&node, apiserver(), "/containerLogs/default/web/other").await,
        (404, "container \"other\" not found in pod \"web\"\n".into())
    );
    assert_eq!(
        get(&node, apiserver(), "/containerLogs/default/gone/app").await,
        (404, "pod \"gone\" does not exist\n".into())
    );

    // A restart: the new instance is current, the first one previous.
    node.fake.exit_container(&first, 1).expect("exit");
    let sandbox = node.fake.sandbox_ids().pop().expect("sandbox");
    let second = node
        .fake
        .create_container(
            &sandbox,
            app_config(1),
            v1::PodSandboxConfig {
                log_directory: node.logs.path().to_string_lossy().into_owned(),
                ..Default::default()
            },
        )
        .await
        .expect("second");
    node.fake.start_container(&second).await.expect("start");
    node.pods.set_web(json!({"name": "app",
        "state": {"running": {}}, "containerID": format!("containerd://{second}"),
        "lastState": {"terminated": {"exitCode": 1, "containerID": format!("containerd://{first}")}}}));
    std::fs::write(
        node.logs.path().join("app/1.log"),
        "2026-12-05T11:00:00Z stdout F again\n",
    )
    .expect("log");
    assert_eq!(
        get(&node, apiserver(), "/containerLogs/default/web/app").await,
        (200, "again\n".into())
    );
    assert_eq!(
        get(
            &node,
            apiserver(),
            "/containerLogs/default/web/app?previous=true"
        )
        .await,
        (200, "hello\nworld\n".into())
    );
}

#[tokio::test]
async fn streaming_needs_an_upgrade_and_a_running_container() {
    let (node, id) = node().await;
    let apiserver = || user("kube-apiserver-kubelet-client");
    assert_eq!(
        get(&node, apiserver(), "/exec/default/web/app?command=true").await,
        (400, "Upgrade request required\n".into())
    );
    node.fake.exit_container(&id, 0).expect("exit");
    let request = http::Request::post("/exec/default/web/app?command=true&stdout=true")
        .header("connection", "Upgrade")
        .header("upgrade", "SPDY/3.1")
        .body(())
        .expect("request");
    let response = node.server.handle(apiserver(), request).await;
    assert_eq!(response.status(), 404);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(&body[..], b"container not found (\"app\")\n");
    assert_eq!(get(&node, apiserver(), "/nothing/here").await.0, 404);
}

#[test]
fn the_log_instance_follows_upstreams_choice() {
    let pick = |status: serde_json::Value, previous: bool| {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "status": {"containerStatuses": [status]}
        }))
        .expect("pod");
        log_container_id(&pod, "app", previous)
    };
    let running = json!({"name": "app", "state": {"running": {}}, "containerID": "containerd://c2",
        "lastState": {"terminated": {"exitCode": 1, "containerID": "containerd://c1"}}});
    assert_eq!(pick(running.clone(), false), Ok("c2".into()));
    assert_eq!(pick(running, true), Ok("c1".into()));
    let fresh = json!({"name": "app", "state": {"running": {}}, "containerID": "containerd://c1"});
    assert_eq!(
        pick(fresh, true),
        Err("previous terminated container \"app\" in pod \"web\" not found".into())
    );
    // A crash loop: the instance that crashed is both the current log and the previous one.
    let crashing = json!({"name": "app", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "containerID": "containerd://c3",
        "lastState": {"terminated": {"exitCode": 1, "containerID": "containerd://c3"}}});
    assert_eq!(pick(crashing.clone(), false), Ok("c3".into()));
    assert_eq!(pick(crashing, true), Ok("c3".into()));
    let creating = json!({"name": "app", "state": {"waiting": {"reason": "ContainerCreating"}}});
    assert_eq!(
        pick(creating, false),
        Err("container \"app\" in pod \"web\" is waiting to start: ContainerCreating".into())
    );
    let pulling = json!({"name": "app", "state": {"waiting": {"reason": "ImagePullBackOff"}}});
    assert_eq!(
        pick(pulling, false),
        Err("container \"app\" in pod \"web\" is waiting to start: trying and failing to pull image".into())
    );
    let done = json!({"name": "app", "state": {"terminated": {"exitCode": 0, "containerID": "containerd://c4"}}});
    assert_eq!(pick(done, false), Ok("c4".into()));
}

#[tokio::test]
async fn resource_metrics_need_nodes_metrics_and_name_the_pods_containers() {
    let (node, id) = node().await;
    node.fake.set_usage(
        &id,
        crate::runtime::fake::Usage {
            cpu_core_nanos: 2_500_000_000,
            working_set_bytes: 8192,
        },
    );
    assert_eq!(
        get(&node, user("bob"), "/metrics/resource").await,
        (
            403,
            "Forbidden (user=bob, verb=get, resource=nodes, subresource=metrics)\n".into()
        )
    );
    // The node's figures from a host tree: 12 s of CPU, a cgroup v1 working set of 7000 bytes.
    let host = tempfile::tempdir().expect("dir");
    for (path, content) in [
        ("proc/stat", "cpu  1000 0 200 5000 0 0 0 0 0 0\n"),
        (
            "proc/meminfo",
            "MemTotal: 8 kB\nMemFree: 1 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n",
        ),
        (
            "proc/self/mountinfo",
            "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
        ),
        ("sys/fs/cgroup/memory/memory.usage_in_bytes", "9000\n"),
        (
            "sys/fs/cgroup/memory/memory.stat",
            "total_inactive_file 2000\n",
        ),
    ] {
        let path = host.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        std::fs::write(path, content).expect("write");
    }
    let runtime: Arc<dyn Runtime> = node.fake.clone();
    let server = KubeletServer::with_host_root(
        "n1",
        runtime,
        node.authorizer.clone(),
        node.pods.clone(),
        host.path(),
    );
    let request = http::Request::get("/metrics/resource")
        .body(())
        .expect("request");
    let response = server
        .handle(user("kube-apiserver-kubelet-client"), request)
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()[http::header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let body = String::from_utf8_lossy(&body);
    let line = |prefix: &str| {
        body.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {body}"))
            .to_string()
    };
    let cpu = line(
        r#"container_cpu_usage_seconds_total{container="app",namespace="default",pod="web"} "#,
    );
    let fields: Vec<&str> = cpu.split(' ').collect();
    assert_eq!(fields[1], "2.5", "{cpu}");
    assert!(
        fields[2]
            .parse::<i64>()
            .is_ok_and(|ms| ms > 1_700_000_000_000),
        "{cpu}"
    );
    line(
        r#"container_memory_working_set_bytes{container="app",namespace="default",pod="web"} 8192 "#,
    );
    line(r#"pod_cpu_usage_seconds_total{namespace="default",pod="web"} 2.5 "#);
    line("node_cpu_usage_seconds_total 12 ");
    line("node_memory_working_set_bytes 7000 ");
    line("node_swap_usage_bytes 0 ");
    line("resource_scrape_error 0");
    let asked = node.authorizer.1.lock().clone();
    assert!(
        asked
            .iter()
            .all(|a| (a.verb, a.subresource, a.node.as_str()) == ("get", "metrics", "n1")),
        "{asked:?}"
    );
}

#[tokio::test]
async fn the_summary_needs_nodes_stats_and_is_upstreams_json() {
    let (node, _) = node().await;
    assert_eq!(
        get(
            &node,
            user("kube-apiserver-kubelet-client"),
            "/stats/summary"
        )
        .await
        .0,
        404,
        "without a stats provider"
    );
    let summary = crate::stats::StaticSummary::default();
    summary.0.lock().node.node_name = "n1".into();
    let server = node.server.clone().with_stats(Arc::new(summary));
    let node = Node { server, ..node };
    assert_eq!(
        get(&node, user("bob"), "/stats/summary").await,
        (
            403,
            "Forbidden (user=bob, verb=get, resource=nodes, subresource=stats)\n".into()
        )
    );
    let (status, body) = get(
        &node,
        user("kube-apiserver-kubelet-client"),
        "/stats/summary",
    )
    .await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["node"]["nodeName"], "n1");
    assert!(json["pods"].is_array());
}
