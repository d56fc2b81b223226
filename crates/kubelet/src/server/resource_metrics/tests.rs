//! The text against upstream's own expectations (`resource_metrics_test.go`), Go's float
//! formatting, and the join of sandboxes, containers and stats on the recording fake runtime.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt as _;

use super::*;
use crate::podconfig::{CONTAINER_NAME_LABEL, POD_NAMESPACE_LABEL, POD_NAME_LABEL};
use crate::runtime::fake::{Call, Op, Usage};
use crate::runtime::{image_spec, FakeRuntime, RuntimeError};

/// Upstream's test instant: 2021-06-23 05:11:18.302091597 +0800.
const STATIC_NANOS: i64 = 1_624_396_278_302_091_597;

fn cpu(nanos: u64) -> Option<CpuStats> {
    Some(CpuStats {
        time_nanos: STATIC_NANOS,
        usage_core_nano_seconds: Some(nanos),
    })
}

fn memory(bytes: u64) -> Option<MemoryStats> {
    Some(MemoryStats {
        time_nanos: STATIC_NANOS,
        working_set_bytes: Some(bytes),
    })
}

fn container(name: &str, started_before: Duration) -> ContainerStats {
    ContainerStats {
        name: name.into(),
        start_time_nanos: STATIC_NANOS - started_before.as_nanos() as i64,
        cpu: cpu(10_000_000_000),
        memory: memory(1000),
    }
}

/// Lines of an expected exposition, indentation removed.
fn text(lines: &str) -> String {
    lines
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn a_failed_scrape_is_the_error_gauge_alone() {
    assert_eq!(
        encode(None),
        text(
            "# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise
             # TYPE resource_scrape_error gauge
             resource_scrape_error 1"
        )
    );
}

#[test]
fn node_metrics_as_upstream() {
    let summary = Summary {
        node: NodeStats {
            cpu: cpu(10_000_000_000),
            memory: memory(1000),
            swap_usage_bytes: Some(500),
        },
        pods: vec![],
    };
    assert_eq!(
        encode(Some(&summary)),
        text(
            "# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds
             # TYPE node_cpu_usage_seconds_total counter
             node_cpu_usage_seconds_total 10 1624396278302
             # HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes
             # TYPE node_memory_working_set_bytes gauge
             node_memory_working_set_bytes 1000 1624396278302
             # HELP node_swap_usage_bytes [ALPHA] Current swap usage of the node in bytes. Reported only on non-windows systems
             # TYPE node_swap_usage_bytes gauge
             node_swap_usage_bytes 500 1624396278302
             # HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise
             # TYPE resource_scrape_error gauge
             resource_scrape_error 0"
        )
    );
    // Unknown values are left out, not written as zero.
    let unknown = Summary {
        node: NodeStats {
            cpu: Some(CpuStats {
                time_nanos: STATIC_NANOS,
                usage_core_nano_seconds: None,
            }),
            memory: None,
            swap_usage_bytes: Some(1),
        },
        pods: vec![],
    };
    assert!(encode(Some(&unknown)).starts_with("# HELP resource_scrape_error"));
}

#[test]
fn containers_and_pods_sorted_as_the_go_client_sorts_them() {
    let summary = Summary {
        node: NodeStats::default(),
        pods: vec![
            PodStats {
                namespace: "namespace_a".into(),
                name: "pod_a".into(),
                cpu: cpu(20_000_000_000),
                memory: memory(2000),
                containers: vec![
                    container("container_a", Duration::from_secs(30)),
                    container("container_b", Duration::from_secs(120)),
                ],
            },
            PodStats {
                namespace: "namespace_b".into(),
                name: "pod_b".into(),
                cpu: cpu(10_000_000_000),
                memory: memory(1000),
                containers: vec![container("container_a", Duration::from_secs(600))],
            },
        ],
    };
    assert_eq!(
        encode(Some(&summary)),
        text(
            r#"# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
               # TYPE container_cpu_usage_seconds_total counter
               container_cpu_usage_seconds_total{container="container_a",namespace="namespace_a",pod="pod_a"} 10 1624396278302
               container_cpu_usage_seconds_total{container="container_a",namespace="namespace_b",pod="pod_b"} 10 1624396278302
               container_cpu_usage_seconds_total{container="container_b",namespace="namespace_a",pod="pod_a"} 10 1624396278302
               # HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes
               # TYPE container_memory_working_set_bytes gauge
               container_memory_working_set_bytes{container="container_a",namespace="namespace_a",pod="pod_a"} 1000 1624396278302
               container_memory_working_set_bytes{container="container_a",namespace="namespace_b",pod="pod_b"} 1000 1624396278302
               container_memory_working_set_bytes{container="container_b",namespace="namespace_a",pod="pod_a"} 1000 1624396278302
               # HELP container_start_time_seconds [STABLE] Start time of the container since unix epoch in seconds
               # TYPE container_start_time_seconds gauge
               container_start_time_seconds{container="container_a",namespace="namespace_a",pod="pod_a"} 1.6243962483020916e+09
               container_start_time_seconds{container="container_a",namespace="namespace_b",pod="pod_b"} 1.6243956783020916e+09
               container_start_time_seconds{container="container_b",namespace="namespace_a",pod="pod_a"} 1.6243961583020916e+09
               # HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds
               # TYPE pod_cpu_usage_seconds_total counter
               pod_cpu_usage_seconds_total{namespace="namespace_a",pod="pod_a"} 20 1624396278302
               pod_cpu_usage_seconds_total{namespace="namespace_b",pod="pod_b"} 10 1624396278302
               # HELP pod_memory_working_set_bytes [STABLE] Current working set of the pod in bytes
               # TYPE pod_memory_working_set_bytes gauge
               pod_memory_working_set_bytes{namespace="namespace_a",pod="pod_a"} 2000 1624396278302
               pod_memory_working_set_bytes{namespace="namespace_b",pod="pod_b"} 1000 1624396278302
               # HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise
               # TYPE resource_scrape_error gauge
               resource_scrape_error 0"#
        )
    );
}

#[test]
fn start_times_before_the_epoch_and_duplicates_are_left_out() {
    let mut early = container("early", Duration::ZERO);
    early.start_time_nanos = 999_999_999;
    let mut twin = container("app", Duration::ZERO);
    twin.cpu = cpu(5_000_000_000);
    let pod = |containers| PodStats {
        namespace: "ns".into(),
        name: "p".into(),
        cpu: None,
        memory: None,
        containers,
    };
    // Two ready sandboxes of one pod, each with an `app`: the first collected stays.
    let summary = Summary {
        node: NodeStats::default(),
        pods: vec![
            pod(vec![early, container("app", Duration::ZERO)]),
            pod(vec![twin]),
        ],
    };
    let out = encode(Some(&summary));
    assert!(
        !out.contains(r#"container_start_time_seconds{container="early""#),
        "{out}"
    );
    assert!(
        out.contains(
            r#"container_cpu_usage_seconds_total{container="app",namespace="ns",pod="p"} 10 "#
        ),
        "{out}"
    );
    assert_eq!(
        out.matches(r#"container_cpu_usage_seconds_total{container="app""#)
            .count(),
        1
    );
}

#[test]
fn label_values_and_help_are_escaped() {
    assert_eq!(escape_label_value(r#"a"b\c"#), r#"a\"b\\c"#);
    assert_eq!(escape_label_value("line\nbreak"), r"line\nbreak");
    assert_eq!(escape_help("back\\slash\nnew"), r"back\\slash\nnew");
    let summary = Summary {
        node: NodeStats::default(),
        pods: vec![PodStats {
            namespace: "n\"s".into(),
            name: "p\\1".into(),
            cpu: cpu(1_500_000_000),
            memory: None,
            containers: vec![],
        }],
    };
    assert!(encode(Some(&summary))
        .contains(r#"pod_cpu_usage_seconds_total{namespace="n\"s",pod="p\\1"} 1.5 1624396278302"#));
}

#[test]
fn floats_as_go_formats_them() {
    for (value, text) in [
        (0.0, "0"),
        (10.0, "10"),
        (0.5, "0.5"),
        (12.345, "12.345"),
        (999_999.0, "999999"),
        (1e6, "1e+06"),
        (123_456_789.0, "1.23456789e+08"),
        (1.624_396_248_302_091_6e9, "1.6243962483020916e+09"),
        (1e21, "1e+21"),
        (1e100, "1e+100"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1.5e-7, "1.5e-07"),
        (-2.5e6, "-2.5e+06"),
        (f64::INFINITY, "+Inf"),
        (f64::NEG_INFINITY, "-Inf"),
        (f64::NAN, "NaN"),
    ] {
        assert_eq!(format_float(value), text, "{value}");
    }
}

// ---------------------------------------------------------------------------------------------
// The join, on the fake runtime.

const IMAGE: &str = "127.0.0.1:5000/busybox:1";

fn labels(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn sandbox_config(namespace: &str, name: &str, attempt: u32) -> v1::PodSandboxConfig {
    v1::PodSandboxConfig {
        metadata: Some(v1::PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: namespace.into(),
            attempt,
        }),
        labels: labels(&[(POD_NAMESPACE_LABEL, namespace), (POD_NAME_LABEL, name)]),
        ..Default::default()
    }
}

async fn start(
    fake: &FakeRuntime,
    sandbox: &str,
    config: &v1::PodSandboxConfig,
    name: &str,
    attempt: u32,
) -> String {
    let metadata = config.metadata.clone().unwrap_or_default();
    let container = v1::ContainerConfig {
        metadata: Some(v1::ContainerMetadata {
            name: name.into(),
            attempt,
        }),
        image: Some(image_spec(IMAGE)),
        labels: labels(&[
            (POD_NAMESPACE_LABEL, &metadata.namespace),
            (POD_NAME_LABEL, &metadata.name),
            (CONTAINER_NAME_LABEL, name),
        ]),
        ..Default::default()
    };
    let id = fake
        .create_container(sandbox, container, config.clone())
        .await
        .expect("create");
    fake.start_container(&id).await.expect("start");
    id
}

/// A host tree with 12.5 s of CPU, 3000 bytes of working set and no swap.
fn host() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("tempdir");
    for (path, content) in [
        ("proc/stat", "cpu  1000 0 250 90000 0 0 0 0 0 0\n"),
        (
            "proc/meminfo",
            "MemTotal: 8 kB\nMemFree: 1 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n",
        ),
        (
            "proc/self/mountinfo",
            "25 20 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
        ),
        (
            "sys/fs/cgroup/memory.stat",
            "anon 2000\nfile 1500\ninactive_file 500\n",
        ),
    ] {
        let path = root.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, content).expect("write");
    }
    root
}

/// `web` (a recreated sandbox: the old one stopped; `app` restarted once, `sidecar`), `done`
/// (its only container exited) and `idle` (created, never started).
async fn node(fake: &FakeRuntime) -> (String, String, String) {
    fake.add_image(IMAGE);
    let web = sandbox_config("default", "web", 0);
    let old = fake
        .run_pod_sandbox(web.clone(), "")
        .await
        .expect("sandbox");
    let gone = start(fake, &old, &web, "app", 0).await;
    fake.set_usage(
        &gone,
        Usage {
            cpu_core_nanos: 99_000_000_000,
            working_set_bytes: 99,
        },
    );
    fake.stop_pod_sandbox(&old).await.expect("stop");
    tokio::time::advance(Duration::from_millis(2500)).await;
    let web = sandbox_config("default", "web", 1);
    let sandbox = fake
        .run_pod_sandbox(web.clone(), "")
        .await
        .expect("sandbox");
    let first = start(fake, &sandbox, &web, "app", 0).await;
    fake.exit_container(&first, 1).expect("crash");
    let app = start(fake, &sandbox, &web, "app", 1).await;
    let sidecar = start(fake, &sandbox, &web, "sidecar", 0).await;
    fake.set_usage(
        &app,
        Usage {
            cpu_core_nanos: 1_250_000_000,
            working_set_bytes: 4096,
        },
    );
    fake.set_usage(
        &sidecar,
        Usage {
            cpu_core_nanos: 500_000_000,
            working_set_bytes: 1024,
        },
    );
    let done = sandbox_config("jobs", "done", 0);
    let done_sandbox = fake
        .run_pod_sandbox(done.clone(), "")
        .await
        .expect("sandbox");
    let finished = start(fake, &done_sandbox, &done, "work", 0).await;
    fake.exit_container(&finished, 0).expect("exit");
    let idle = sandbox_config("default", "idle", 0);
    fake.run_pod_sandbox(idle, "").await.expect("sandbox");
    (sandbox, app, sidecar)
}

#[tokio::test(start_paused = true)]
async fn running_containers_of_current_sandboxes_with_the_pods_own_figures() {
    let fake = FakeRuntime::new();
    let (sandbox, _, _) = node(&fake).await;
    // The pod cgroup holds more than its containers: the pause container, say.
    fake.set_usage(
        &sandbox,
        Usage {
            cpu_core_nanos: 2_000_000_000,
            working_set_bytes: 6000,
        },
    );
    let host = host();
    fake.clear_calls();
    let summary = collect(&fake, host.path()).await.expect("collect");
    assert_eq!(
        fake.calls(),
        vec![
            Call::ListPodSandboxes,
            Call::ListContainers,
            Call::ListContainerStats,
            Call::ListPodSandboxStats,
        ]
    );
    assert_eq!(
        summary.node.cpu.and_then(|c| c.usage_core_nano_seconds),
        Some(12_500_000_000)
    );
    assert_eq!(
        summary.node.memory.and_then(|m| m.working_set_bytes),
        Some(3000)
    );
    assert_eq!(summary.node.swap_usage_bytes, Some(0));

    let out = encode(Some(&summary));
    let samples: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("node_"))
        .collect();
    // 2024-01-01T00:00:02.5Z: the second sandbox's containers were created then.
    assert_eq!(
        samples,
        vec![
            r#"container_cpu_usage_seconds_total{container="app",namespace="default",pod="web"} 1.25 1704067202500"#,
            r#"container_cpu_usage_seconds_total{container="sidecar",namespace="default",pod="web"} 0.5 1704067202500"#,
            r#"container_memory_working_set_bytes{container="app",namespace="default",pod="web"} 4096 1704067202500"#,
            r#"container_memory_working_set_bytes{container="sidecar",namespace="default",pod="web"} 1024 1704067202500"#,
            r#"container_start_time_seconds{container="app",namespace="default",pod="web"} 1.7040672025e+09"#,
            r#"container_start_time_seconds{container="sidecar",namespace="default",pod="web"} 1.7040672025e+09"#,
            r#"pod_cpu_usage_seconds_total{namespace="default",pod="web"} 2 1704067202500"#,
            r#"pod_memory_working_set_bytes{namespace="default",pod="web"} 6000 1704067202500"#,
            "resource_scrape_error 0",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn without_sandbox_stats_a_pod_is_the_sum_of_its_containers() {
    let fake = FakeRuntime::new();
    node(&fake).await;
    fake.fail_next(
        Op::ListPodSandboxStats,
        RuntimeError::Grpc {
            code: tonic::Code::Unimplemented,
            message: "unknown method ListPodSandboxStats".into(),
        },
    );
    let host = host();
    let summary = collect(&fake, host.path()).await.expect("collect");
    assert_eq!(summary.pods.len(), 1, "{summary:?}");
    let web = &summary.pods[0];
    assert_eq!(
        (web.namespace.as_str(), web.name.as_str()),
        ("default", "web")
    );
    assert_eq!(
        web.cpu.and_then(|c| c.usage_core_nano_seconds),
        Some(1_750_000_000)
    );
    assert_eq!(web.memory.and_then(|m| m.working_set_bytes), Some(5120));
}

#[tokio::test(start_paused = true)]
async fn a_runtime_or_host_failure_is_a_scrape_error() {
    let fake = Arc::new(FakeRuntime::new());
    node(&fake).await;
    fake.fail_next(
        Op::ListContainerStats,
        RuntimeError::Unavailable("connection refused".into()),
    );
    let host = host();
    let runtime: Arc<dyn Runtime> = fake.clone();
    let response = serve(&runtime, host.path()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[http::header::CONTENT_TYPE], CONTENT_TYPE);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(String::from_utf8_lossy(&body), encode(None));

    let nowhere = tempfile::tempdir().expect("tempdir");
    let error = collect(fake.as_ref(), nowhere.path())
        .await
        .expect_err("no /proc");
    assert!(error.contains("proc/stat"), "{error}");
}

#[test]
fn missing_cri_figures_are_zero_now_and_stopped_sandboxes_give_way() {
    let ready = i32::from(v1::PodSandboxState::SandboxReady);
    let not_ready = i32::from(v1::PodSandboxState::SandboxNotready);
    let running = i32::from(v1::ContainerState::ContainerRunning);
    let sandbox = |id: &str, state, created_at| v1::PodSandbox {
        id: id.into(),
        metadata: Some(v1::PodSandboxMetadata {
            name: "p".into(),
            namespace: "ns".into(),
            ..Default::default()
        }),
        state,
        created_at,
        ..Default::default()
    };
    let container = |id: &str, sandbox: &str| v1::Container {
        id: id.into(),
        pod_sandbox_id: sandbox.into(),
        metadata: Some(v1::ContainerMetadata {
            name: format!("c-{id}"),
            attempt: 0,
        }),
        state: running,
        created_at: 5_000_000_000,
        ..Default::default()
    };
    let stats = |id: &str| v1::ContainerStats {
        attributes: Some(v1::ContainerAttributes {
            id: id.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    // Two stopped sandboxes of `p`: the newer one counts (its container still runs, say,
    // mid-teardown); the older one's container does not.
    let listing = RuntimeListing {
        sandboxes: vec![sandbox("new", not_ready, 2), sandbox("old", not_ready, 1)],
        containers: vec![container("a", "old"), container("b", "new")],
        container_stats: vec![stats("a"), stats("b"), stats("unknown")],
        sandbox_stats: None,
    };
    let pods = pod_stats(listing, 7);
    assert_eq!(
        pods,
        vec![PodStats {
            namespace: "ns".into(),
            name: "p".into(),
            cpu: Some(CpuStats {
                time_nanos: 7,
                usage_core_nano_seconds: Some(0)
            }),
            memory: Some(MemoryStats {
                time_nanos: 7,
                working_set_bytes: Some(0)
            }),
            containers: vec![ContainerStats {
                name: "c-b".into(),
                start_time_nanos: 5_000_000_000,
                cpu: Some(CpuStats {
                    time_nanos: 7,
                    usage_core_nano_seconds: Some(0)
                }),
                memory: Some(MemoryStats {
                    time_nanos: 7,
                    working_set_bytes: Some(0)
                }),
            }],
        }]
    );
    // With a ready one among them, only the ready one counts.
    let listing = RuntimeListing {
        sandboxes: vec![sandbox("new", not_ready, 2), sandbox("old", ready, 1)],
        containers: vec![container("a", "old"), container("b", "new")],
        container_stats: vec![stats("a"), stats("b")],
        sandbox_stats: None,
    };
    let pods = pod_stats(listing, 7);
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0].containers[0].name, "c-a");
}
