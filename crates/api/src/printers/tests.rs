//! The printers against upstream's cells and columns.

#![allow(clippy::unwrap_used)]

use super::cells::*;
use super::*;
use serde_json::json;

/// 2025-11-25T10:00:00Z
const T0: i64 = 1_764_064_800;
const CREATED: &str = "2025-11-25T10:00:00Z";

/// Seconds after [`T0`] as an RFC 3339 string.
fn ts(after: i64) -> String {
    format_rfc3339((T0 + after) as i128 * NANOS)
}

fn names(cols: &[Column]) -> Vec<&'static str> {
    cols.iter().map(|c| c.name).collect()
}

/// The cell of `column` (by name) of `object`'s row.
fn cell(group: &str, plural: &str, object: &Value, now: i64, column: &str) -> Value {
    let cols = columns(group, plural);
    let i = cols
        .iter()
        .position(|c| c.name == column)
        .unwrap_or_else(|| panic!("no column {column}"));
    row(group, plural, object, now)[i].clone()
}

#[test]
fn human_duration_matches_upstream() {
    let cases: &[(i64, &str)] = &[
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (5, "5s"),
        (119, "119s"),
        (120, "2m"),
        (125, "2m5s"),
        (180, "3m"),
        (599, "9m59s"),
        (600, "10m"),
        (179 * 60 + 59, "179m"),
        (3 * 3600, "3h"),
        (5 * 3600 + 60, "5h1m"),
        (8 * 3600 + 60, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (49 * 3600, "2d1h"),
        (3 * 86400, "3d"),
        (8 * 86400, "8d"),
        (30 * 86400, "30d"),
        (2 * 365 * 86400 - 1, "729d"),
        (2 * 365 * 86400, "2y"),
        ((3 * 365 + 20) * 86400, "3y20d"),
        (9 * 365 * 86400, "9y"),
    ];
    for (secs, want) in cases {
        assert_eq!(human_duration(*secs), *want, "{secs}s");
    }
}

#[test]
fn rfc3339_parse_and_format() {
    let cases: &[(&str, Option<&str>)] = &[
        ("2025-11-25T10:00:00Z", Some("2025-11-25T10:00:00Z")),
        ("2025-11-25T10:00:00.123456Z", Some("2025-11-25T10:00:00Z")),
        ("2025-11-25T12:30:00+02:30", Some("2025-11-25T10:00:00Z")),
        ("2025-11-25T08:00:00-02:00", Some("2025-11-25T10:00:00Z")),
        ("1970-01-01T00:00:00Z", Some("1970-01-01T00:00:00Z")),
        ("2024-02-29T23:59:59Z", Some("2024-02-29T23:59:59Z")),
        ("0001-01-01T00:00:00Z", Some("0001-01-01T00:00:00Z")),
        ("2025-11-25", None),
        ("2025-11-25T10:00:00", None),
        ("2025-13-25T10:00:00Z", None),
        ("garbage-garbage-garbage", None),
    ];
    for (input, want) in cases {
        let got = parse_rfc3339(input).map(format_rfc3339);
        assert_eq!(got.as_deref(), *want, "{input}");
    }
    assert_eq!(parse_rfc3339(CREATED), Some(T0 as i128 * NANOS));
    assert_eq!(parse_rfc3339("0001-01-01T00:00:00Z"), Some(ZERO_TIME));
    assert_eq!(
        parse_rfc3339("2025-11-25T10:00:00.5Z"),
        Some(T0 as i128 * NANOS + 500_000_000)
    );
}

fn pod(spec: Value, status: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "creationTimestamp": CREATED},
        "spec": spec,
        "status": status,
    })
}

fn one_container() -> Value {
    json!({"containers": [{"name": "c", "image": "nginx"}]})
}

#[test]
fn pod_ready_status_restarts() {
    let now = T0 + 3600;
    let waiting = |reason: &str| json!({"waiting": {"reason": reason}});
    let two_inits = json!({
        "initContainers": [{"name": "i1"}, {"name": "i2"}],
        "containers": [{"name": "c"}],
    });
    let cases: Vec<(&str, Value, &str, &str, &str)> = vec![
        (
            "no status",
            pod(one_container(), json!({})),
            "0/1",
            "Pending",
            "0",
        ),
        (
            "pending unscheduled",
            pod(
                one_container(),
                json!({
                    "phase": "Pending",
                    "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
                }),
            ),
            "0/1",
            "Pending",
            "0",
        ),
        (
            "scheduling gated",
            pod(
                one_container(),
                json!({
                    "phase": "Pending",
                    "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}],
                }),
            ),
            "0/1",
            "SchedulingGated",
            "0",
        ),
        (
            "container creating",
            pod(
                one_container(),
                json!({
                    "phase": "Pending",
                    "containerStatuses": [{"name": "c", "ready": false, "restartCount": 0, "state": waiting("ContainerCreating")}],
                }),
            ),
            "0/1",
            "ContainerCreating",
            "0",
        ),
        (
            "image pull backoff",
            pod(
                one_container(),
                json!({
                    "phase": "Pending",
                    "containerStatuses": [{"name": "c", "ready": false, "restartCount": 0, "state": waiting("ImagePullBackOff")}],
                }),
            ),
            "0/1",
            "ImagePullBackOff",
            "0",
        ),
        (
            "running",
            pod(
                one_container(),
                json!({
                    "phase": "Running",
                    "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": CREATED}}}],
                }),
            ),
            "1/1",
            "Running",
            "0",
        ),
        (
            "running, one of two ready",
            pod(
                json!({"containers": [{"name": "a"}, {"name": "b"}]}),
                json!({
                    "phase": "Running",
                    "containerStatuses": [
                        {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                        {"name": "b", "ready": false, "restartCount": 0, "state": {"running": {}}},
                    ],
                }),
            ),
            "1/2",
            "Running",
            "0",
        ),
        (
            "completed",
            pod(
                one_container(),
                json!({
                    "phase": "Succeeded",
                    "containerStatuses": [{"name": "c", "ready": false, "restartCount": 0,
                        "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
                }),
            ),
            "0/1",
            "Completed",
            "0",
        ),
        (
            "error",
            pod(
                one_container(),
                json!({
                    "phase": "Failed",
                    "containerStatuses": [{"name": "c", "ready": false, "restartCount": 0,
                        "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}],
                }),
            ),
            "0/1",
            "Error",
            "0",
        ),
        (
            "killed by signal, no reason",
            pod(
                one_container(),
                json!({
                    "phase": "Failed",
                    "containerStatuses": [{"name": "c", "restartCount": 0,
                        "state": {"terminated": {"exitCode": 137, "signal": 9}}}],
                }),
            ),
            "0/1",
            "Signal:9",
            "0",
        ),
        (
            "exit code, no reason",
            pod(
                one_container(),
                json!({
                    "phase": "Failed",
                    "containerStatuses": [{"name": "c", "restartCount": 0,
                        "state": {"terminated": {"exitCode": 2}}}],
                }),
            ),
            "0/1",
            "ExitCode:2",
            "0",
        ),
        (
            "crash loop with last restart time",
            pod(
                one_container(),
                json!({
                    "phase": "Running",
                    "containerStatuses": [{"name": "c", "ready": false, "restartCount": 5,
                        "state": waiting("CrashLoopBackOff"),
                        "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ts(3600 - 180)}}}],
                }),
            ),
            "0/1",
            "CrashLoopBackOff",
            "5 (3m ago)",
        ),
        (
            "restarts without a finish time",
            pod(
                one_container(),
                json!({
                    "phase": "Running",
                    "containerStatuses": [{"name": "c", "ready": true, "restartCount": 2, "state": {"running": {}}}],
                }),
            ),
            "1/1",
            "Running",
            "2",
        ),
        (
            "init 0/2",
            pod(
                two_inits.clone(),
                json!({
                    "phase": "Pending",
                    "initContainerStatuses": [
                        {"name": "i1", "restartCount": 0, "state": {"running": {}}},
                        {"name": "i2", "restartCount": 0, "state": waiting("PodInitializing")},
                    ],
                    "containerStatuses": [{"name": "c", "restartCount": 0, "state": waiting("PodInitializing")}],
                }),
            ),
            "0/1",
            "Init:0/2",
            "0",
        ),
        (
            "init 1/2",
            pod(
                two_inits.clone(),
                json!({
                    "phase": "Pending",
                    "initContainerStatuses": [
                        {"name": "i1", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                        {"name": "i2", "restartCount": 0, "state": {"running": {}}},
                    ],
                }),
            ),
            "0/1",
            "Init:1/2",
            "0",
        ),
        (
            "init error",
            pod(
                two_inits.clone(),
                json!({
                    "phase": "Pending",
                    "initContainerStatuses": [
                        {"name": "i1", "restartCount": 3, "state": {"terminated": {"exitCode": 1, "reason": "Error"}}},
                        {"name": "i2", "restartCount": 0, "state": waiting("PodInitializing")},
                    ],
                }),
            ),
            "0/1",
            "Init:Error",
            "3",
        ),
        (
            "init crash loop",
            pod(
                two_inits.clone(),
                json!({
                    "phase": "Pending",
                    "initContainerStatuses": [
                        {"name": "i1", "restartCount": 4, "state": waiting("CrashLoopBackOff"),
                         "lastState": {"terminated": {"exitCode": 1, "finishedAt": ts(3600 - 10)}}},
                    ],
                }),
            ),
            "0/1",
            "Init:CrashLoopBackOff",
            "4 (10s ago)",
        ),
        (
            "init exit code without reason",
            pod(
                two_inits.clone(),
                json!({
                    "phase": "Pending",
                    "initContainerStatuses": [
                        {"name": "i1", "restartCount": 0, "state": {"terminated": {"exitCode": 3}}},
                    ],
                }),
            ),
            "0/1",
            "Init:ExitCode:3",
            "0",
        ),
        (
            "pod initializing",
            pod(
                two_inits.clone(),
                json!({
                    "phase": "Pending",
                    "initContainerStatuses": [
                        {"name": "i1", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                        {"name": "i2", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                    ],
                    "containerStatuses": [{"name": "c", "restartCount": 0, "state": waiting("PodInitializing")}],
                }),
            ),
            "0/1",
            "PodInitializing",
            "0",
        ),
        (
            "sidecar counts as a container",
            pod(
                json!({
                    "initContainers": [{"name": "side", "restartPolicy": "Always"}],
                    "containers": [{"name": "c"}],
                }),
                json!({
                    "phase": "Running",
                    "conditions": [{"type": "Initialized", "status": "True"}],
                    "initContainerStatuses": [{"name": "side", "ready": true, "started": true, "restartCount": 1, "state": {"running": {}}}],
                    "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "state": {"running": {}}}],
                }),
            ),
            "2/2",
            "Running",
            "1",
        ),
        (
            "completed container but another still running",
            pod(
                json!({"containers": [{"name": "a"}, {"name": "b"}]}),
                json!({
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": "False"}],
                    "containerStatuses": [
                        {"name": "a", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                        {"name": "b", "ready": true, "restartCount": 0, "state": {"running": {}}},
                    ],
                }),
            ),
            "1/2",
            "NotReady",
            "0",
        ),
        (
            "evicted (status.reason)",
            pod(
                one_container(),
                json!({"phase": "Failed", "reason": "Evicted"}),
            ),
            "0/1",
            "Evicted",
            "0",
        ),
    ];
    for (what, p, ready, status, restarts) in cases {
        let cells = row("", "pods", &p, now);
        assert_eq!(cells.len(), columns("", "pods").len(), "{what}");
        assert_eq!(cells[0], json!("p"), "{what}");
        assert_eq!(cells[1], json!(ready), "{what}: ready");
        assert_eq!(cells[2], json!(status), "{what}: status");
        assert_eq!(cells[3], json!(restarts), "{what}: restarts");
        assert_eq!(cells[4], json!("60m"), "{what}: age");
    }
}

#[test]
fn pod_terminating_and_node_lost() {
    let running = json!({
        "phase": "Running",
        "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "state": {"running": {}}}],
    });
    let mut p = pod(one_container(), running.clone());
    p["metadata"]["deletionTimestamp"] = json!(ts(10));
    assert_eq!(
        cell("", "pods", &p, T0 + 20, "Status"),
        json!("Terminating")
    );

    let mut done = pod(one_container(), json!({"phase": "Succeeded"}));
    done["metadata"]["deletionTimestamp"] = json!(ts(10));
    assert_eq!(
        cell("", "pods", &done, T0 + 20, "Status"),
        json!("Succeeded")
    );

    let mut lost = pod(
        one_container(),
        json!({"phase": "Running", "reason": "NodeLost"}),
    );
    assert_eq!(
        cell("", "pods", &lost, T0 + 20, "Status"),
        json!("NodeLost")
    );
    lost["metadata"]["deletionTimestamp"] = json!(ts(10));
    assert_eq!(cell("", "pods", &lost, T0 + 20, "Status"), json!("Unknown"));
}

#[test]
fn pod_wide_cells() {
    let mut p = pod(
        json!({
            "containers": [{"name": "c"}],
            "nodeName": "node-1",
            "readinessGates": [{"conditionType": "a"}, {"conditionType": "b"}],
        }),
        json!({
            "phase": "Running",
            "podIP": "10.0.0.9",
            "podIPs": [{"ip": "10.0.0.9"}, {"ip": "fd00::9"}],
            "conditions": [{"type": "a", "status": "True"}, {"type": "b", "status": "False"}],
        }),
    );
    let cells = row("", "pods", &p, T0);
    assert_eq!(
        cells[5..].to_vec(),
        vec![
            json!("10.0.0.9"),
            json!("node-1"),
            json!("<none>"),
            json!("1/2")
        ]
    );
    p["spec"] = one_container();
    p["status"] = json!({"phase": "Pending"});
    let cells = row("", "pods", &p, T0);
    assert_eq!(
        cells[5..].to_vec(),
        vec![
            json!("<none>"),
            json!("<none>"),
            json!("<none>"),
            json!("<none>")
        ]
    );
}

#[test]
fn pod_columns() {
    let cols = columns("", "pods");
    assert_eq!(
        names(&cols),
        [
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP",
            "Node",
            "Nominated Node",
            "Readiness Gates"
        ]
    );
    let prio: Vec<i32> = cols.iter().map(|c| c.priority).collect();
    assert_eq!(prio, [0, 0, 0, 0, 0, 1, 1, 1, 1]);
    assert_eq!(cols[0].format, "name");
    assert!(cols[1..].iter().all(|c| c.format.is_empty()));
}

fn node(labels: Value, conditions: Value, unschedulable: bool) -> Value {
    json!({
        "metadata": {"name": "n1", "creationTimestamp": CREATED, "labels": labels},
        "spec": {"unschedulable": unschedulable},
        "status": {
            "conditions": conditions,
            "nodeInfo": {"kubeletVersion": "v1.33.1"},
            "addresses": [{"type": "InternalIP", "address": "192.168.0.2"}, {"type": "Hostname", "address": "n1"}],
        },
    })
}

#[test]
fn node_status_and_roles() {
    let ready = |s: &str| json!([{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": s}]);
    let cases: Vec<(Value, Value, bool, &str, &str)> = vec![
        (json!({}), ready("True"), false, "Ready", "<none>"),
        (json!({}), ready("False"), false, "NotReady", "<none>"),
        (json!({}), ready("Unknown"), false, "NotReady", "<none>"),
        (json!({}), json!([]), false, "Unknown", "<none>"),
        (
            json!({}),
            ready("True"),
            true,
            "Ready,SchedulingDisabled",
            "<none>",
        ),
        (
            json!({}),
            json!([]),
            true,
            "Unknown,SchedulingDisabled",
            "<none>",
        ),
        (
            json!({"node-role.kubernetes.io/worker": "", "node-role.kubernetes.io/control-plane": "", "kubernetes.io/hostname": "n1"}),
            ready("True"),
            false,
            "Ready",
            "control-plane,worker",
        ),
        (
            json!({"kubernetes.io/role": "master"}),
            ready("True"),
            false,
            "Ready",
            "master",
        ),
        (
            json!({"kubernetes.io/role": "", "node-role.kubernetes.io/": ""}),
            ready("True"),
            false,
            "Ready",
            "<none>",
        ),
        (
            json!({"kubernetes.io/role": "worker", "node-role.kubernetes.io/worker": ""}),
            ready("True"),
            false,
            "Ready",
            "worker",
        ),
    ];
    for (labels, conditions, unsched, status, roles) in cases {
        let n = node(labels.clone(), conditions, unsched);
        let cells = row("", "nodes", &n, T0 + 3 * 86400);
        assert_eq!(cells[1], json!(status), "{labels}");
        assert_eq!(cells[2], json!(roles), "{labels}");
        assert_eq!(cells[3], json!("3d"));
        assert_eq!(cells[4], json!("v1.33.1"));
        assert_eq!(
            cells[5..].to_vec(),
            vec![
                json!("192.168.0.2"),
                json!("<none>"),
                json!("<unknown>"),
                json!("<unknown>"),
                json!("<unknown>")
            ]
        );
    }
    assert_eq!(
        names(&columns("", "nodes")),
        [
            "Name",
            "Status",
            "Roles",
            "Age",
            "Version",
            "Internal-IP",
            "External-IP",
            "OS-Image",
            "Kernel-Version",
            "Container-Runtime"
        ]
    );
}

#[test]
fn deployment_cells() {
    let d = |spec: Value, status: Value| json!({"metadata": {"name": "web", "creationTimestamp": CREATED}, "spec": spec, "status": status});
    let template = json!({"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}, {"name": "side", "image": "busybox"}]}});
    let cases: Vec<(Value, Vec<Value>)> = vec![
        (
            d(
                json!({"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template}),
                json!({"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}),
            ),
            vec![
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("5m"),
                json!("nginx,side"),
                json!("nginx:1.27,busybox"),
                json!("app=web"),
            ],
        ),
        (
            d(json!({}), json!({})),
            vec![
                json!("web"),
                json!("0/1"),
                json!(0),
                json!(0),
                json!("5m"),
                json!(""),
                json!(""),
                json!(""),
            ],
        ),
        (
            d(
                json!({"replicas": 0, "selector": {"matchLabels": {"b": "2", "a": "1"},
                "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}, {"key": "x", "operator": "DoesNotExist"}]}}),
                json!({}),
            ),
            vec![
                json!("web"),
                json!("0/0"),
                json!(0),
                json!(0),
                json!("5m"),
                json!(""),
                json!(""),
                json!("a=1,b=2,env in (dev,prod),!x"),
            ],
        ),
        (
            d(
                json!({"selector": {"matchExpressions": [{"key": "x", "operator": "Bogus"}]}}),
                json!({}),
            ),
            vec![
                json!("web"),
                json!("0/1"),
                json!(0),
                json!(0),
                json!("5m"),
                json!(""),
                json!(""),
                json!("<invalid>"),
            ],
        ),
    ];
    for (obj, want) in cases {
        assert_eq!(row("apps", "deployments", &obj, T0 + 300), want, "{obj}");
    }
    assert_eq!(
        names(&columns("apps", "deployments")),
        [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
}

#[test]
fn workload_cells() {
    let meta = json!({"name": "w", "creationTimestamp": CREATED});
    let rs = json!({"metadata": meta, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "w"}},
        "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}, "status": {"replicas": 2, "readyReplicas": 1}});
    assert_eq!(
        row("apps", "replicasets", &rs, T0 + 60),
        vec![
            json!("w"),
            json!(2),
            json!(2),
            json!(1),
            json!("60s"),
            json!("c"),
            json!("i"),
            json!("app=w")
        ]
    );
    let sts = json!({"metadata": meta, "spec": {"replicas": 3}, "status": {"readyReplicas": 3}});
    assert_eq!(
        row("apps", "statefulsets", &sts, T0 + 60),
        vec![json!("w"), json!("3/3"), json!("60s"), json!(""), json!("")]
    );
    let ds = json!({"metadata": meta, "spec": {"template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}}}},
        "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1, "updatedNumberScheduled": 2, "numberAvailable": 1}});
    assert_eq!(
        row("apps", "daemonsets", &ds, T0 + 60),
        vec![
            json!("w"),
            json!(2),
            json!(2),
            json!(1),
            json!(2),
            json!(1),
            json!("kubernetes.io/os=linux"),
            json!("60s"),
            json!(""),
            json!(""),
            json!("<none>")
        ]
    );
    assert_eq!(
        names(&columns("apps", "daemonsets")),
        [
            "Name",
            "Desired",
            "Current",
            "Ready",
            "Up-to-date",
            "Available",
            "Node Selector",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
}

#[test]
fn job_and_cronjob_cells() {
    let job = |spec: Value, status: Value| json!({"metadata": {"name": "j", "creationTimestamp": CREATED}, "spec": spec, "status": status});
    let cases: Vec<(Value, &str, &str, &str)> = vec![
        (
            job(json!({"completions": 1, "parallelism": 1}), json!({})),
            "Running",
            "0/1",
            "",
        ),
        (
            job(
                json!({"completions": 3}),
                json!({"succeeded": 3, "startTime": ts(0), "completionTime": ts(95),
                "conditions": [{"type": "Complete", "status": "True"}]}),
            ),
            "Complete",
            "3/3",
            "95s",
        ),
        (
            job(json!({"parallelism": 4}), json!({"startTime": ts(0)})),
            "Running",
            "0/1 of 4",
            "10m",
        ),
        (
            job(
                json!({}),
                json!({"conditions": [{"type": "Failed", "status": "True"}]}),
            ),
            "Failed",
            "0/1",
            "",
        ),
        (
            job(
                json!({}),
                json!({"conditions": [{"type": "Suspended", "status": "True"}]}),
            ),
            "Suspended",
            "0/1",
            "",
        ),
    ];
    for (j, status, completions, duration) in cases {
        let cells = row("batch", "jobs", &j, T0 + 600);
        assert_eq!(cells[1], json!(status), "{j}");
        assert_eq!(cells[2], json!(completions), "{j}");
        assert_eq!(cells[3], json!(duration), "{j}");
    }
    let cj = json!({"metadata": {"name": "cj", "creationTimestamp": CREATED},
        "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}},
        "status": {"active": [{"name": "x"}], "lastScheduleTime": ts(300)}});
    assert_eq!(
        row("batch", "cronjobs", &cj, T0 + 600),
        vec![
            json!("cj"),
            json!("*/5 * * * *"),
            json!("<none>"),
            json!("False"),
            json!(1),
            json!("5m"),
            json!("10m"),
            json!("c"),
            json!("busybox"),
            json!("<none>")
        ]
    );
    assert_eq!(
        names(&columns("batch", "cronjobs")),
        [
            "Name",
            "Schedule",
            "Timezone",
            "Suspend",
            "Active",
            "Last Schedule",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
}

#[test]
fn service_cells() {
    let svc = |spec: Value, status: Value| json!({"metadata": {"name": "s", "creationTimestamp": CREATED}, "spec": spec, "status": status});
    let cases: Vec<(Value, Vec<Value>)> = vec![
        (
            svc(
                json!({"clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"], "ports": [{"port": 443, "protocol": "TCP"}]}),
                json!({}),
            ),
            vec![
                json!("s"),
                json!("ClusterIP"),
                json!("10.96.0.1"),
                json!("<none>"),
                json!("443/TCP"),
                json!("2d"),
                json!("<none>"),
            ],
        ),
        (
            svc(
                json!({"type": "NodePort", "clusterIP": "10.96.0.2", "selector": {"app": "x"},
                "ports": [{"port": 80, "nodePort": 30080}, {"port": 53, "protocol": "UDP"}]}),
                json!({}),
            ),
            vec![
                json!("s"),
                json!("NodePort"),
                json!("10.96.0.2"),
                json!("<none>"),
                json!("80:30080/TCP,53/UDP"),
                json!("2d"),
                json!("app=x"),
            ],
        ),
        (
            svc(
                json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.3"], "ports": []}),
                json!({}),
            ),
            vec![
                json!("s"),
                json!("LoadBalancer"),
                json!("10.96.0.3"),
                json!("<pending>"),
                json!("<none>"),
                json!("2d"),
                json!("<none>"),
            ],
        ),
        (
            svc(
                json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.3"], "externalIPs": ["1.2.3.4"]}),
                json!({"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "lb.example.com"}]}}),
            ),
            vec![
                json!("s"),
                json!("LoadBalancer"),
                json!("10.96.0.3"),
                json!("5.6.7.8,lb.example.com,1.2.3.4"),
                json!("<none>"),
                json!("2d"),
                json!("<none>"),
            ],
        ),
        (
            svc(
                json!({"type": "ExternalName", "externalName": "example.com"}),
                json!({}),
            ),
            vec![
                json!("s"),
                json!("ExternalName"),
                json!("<none>"),
                json!("example.com"),
                json!("<none>"),
                json!("2d"),
                json!("<none>"),
            ],
        ),
        (
            svc(
                json!({"clusterIP": "None", "clusterIPs": ["None"]}),
                json!({}),
            ),
            vec![
                json!("s"),
                json!("ClusterIP"),
                json!("None"),
                json!("<none>"),
                json!("<none>"),
                json!("2d"),
                json!("<none>"),
            ],
        ),
    ];
    for (s, want) in cases {
        assert_eq!(row("", "services", &s, T0 + 2 * 86400), want, "{s}");
    }
}

#[test]
fn simple_core_cells() {
    let meta = json!({"name": "x", "creationTimestamp": CREATED});
    let now = T0 + 30;
    let cases: Vec<(&str, &str, Value, Vec<Value>)> = vec![
        (
            "",
            "namespaces",
            json!({"metadata": meta, "status": {"phase": "Active"}}),
            vec![json!("x"), json!("Active"), json!("30s")],
        ),
        (
            "",
            "configmaps",
            json!({"metadata": meta, "data": {"a": "1", "b": "2"}, "binaryData": {"c": ""}}),
            vec![json!("x"), json!(3), json!("30s")],
        ),
        (
            "",
            "configmaps",
            json!({"metadata": meta}),
            vec![json!("x"), json!(0), json!("30s")],
        ),
        (
            "",
            "secrets",
            json!({"metadata": meta, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}),
            vec![
                json!("x"),
                json!("kubernetes.io/tls"),
                json!(2),
                json!("30s"),
            ],
        ),
        (
            "",
            "secrets",
            json!({"metadata": meta}),
            vec![json!("x"), json!("Opaque"), json!(0), json!("30s")],
        ),
        (
            "",
            "serviceaccounts",
            json!({"metadata": meta}),
            vec![json!("x"), json!(0), json!("30s")],
        ),
        (
            "",
            "endpoints",
            json!({"metadata": meta}),
            vec![json!("x"), json!("<none>"), json!("30s")],
        ),
        (
            "",
            "endpoints",
            json!({"metadata": meta, "subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]}]}),
            vec![
                json!("x"),
                json!("10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more..."),
                json!("30s"),
            ],
        ),
        (
            "",
            "endpoints",
            json!({"metadata": meta, "subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 6443}]}]}),
            vec![json!("x"), json!("[fd00::1]:6443"), json!("30s")],
        ),
        (
            "coordination.k8s.io",
            "leases",
            json!({"metadata": meta, "spec": {"holderIdentity": "me"}}),
            vec![json!("x"), json!("me"), json!("30s")],
        ),
        (
            "discovery.k8s.io",
            "endpointslices",
            json!({"metadata": meta, "addressType": "IPv4",
            "ports": [{"port": 80}, {"name": "dns"}], "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}]}),
            vec![
                json!("x"),
                json!("IPv4"),
                json!("80,dns"),
                json!("10.0.0.1,10.0.0.2"),
                json!("30s"),
            ],
        ),
        (
            "discovery.k8s.io",
            "endpointslices",
            json!({"metadata": meta, "addressType": "IPv4"}),
            vec![
                json!("x"),
                json!("IPv4"),
                json!("<unset>"),
                json!("<unset>"),
                json!("30s"),
            ],
        ),
        (
            "rbac.authorization.k8s.io",
            "rolebindings",
            json!({"metadata": meta, "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"}, {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}, {"kind": "User", "name": "bob"}]}),
            vec![
                json!("x"),
                json!("ClusterRole/view"),
                json!("30s"),
                json!("alice, bob"),
                json!("devs"),
                json!("ns/sa"),
            ],
        ),
        (
            "policy",
            "poddisruptionbudgets",
            json!({"metadata": meta, "spec": {"minAvailable": 1}, "status": {"disruptionsAllowed": 0}}),
            vec![json!("x"), json!("1"), json!("N/A"), json!(0), json!("30s")],
        ),
        (
            "policy",
            "poddisruptionbudgets",
            json!({"metadata": meta, "spec": {"maxUnavailable": "50%"}, "status": {"disruptionsAllowed": 2}}),
            vec![
                json!("x"),
                json!("N/A"),
                json!("50%"),
                json!(2),
                json!("30s"),
            ],
        ),
        (
            "scheduling.k8s.io",
            "priorityclasses",
            json!({"metadata": meta, "value": 2000001000, "globalDefault": false}),
            vec![
                json!("x"),
                json!(2000001000),
                json!(false),
                json!("30s"),
                json!("PreemptLowerPriority"),
            ],
        ),
        (
            "storage.k8s.io",
            "storageclasses",
            json!({"metadata": {"name": "std", "creationTimestamp": CREATED,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}, "provisioner": "rancher.io/local-path",
            "volumeBindingMode": "WaitForFirstConsumer"}),
            vec![
                json!("std (default)"),
                json!("rancher.io/local-path"),
                json!("Delete"),
                json!("WaitForFirstConsumer"),
                json!(false),
                json!("30s"),
            ],
        ),
        (
            "apps",
            "controllerrevisions",
            json!({"metadata": {"name": "x", "creationTimestamp": CREATED,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "ds", "controller": true}]}, "revision": 3}),
            vec![
                json!("x"),
                json!("daemonset.apps/ds"),
                json!(3),
                json!("30s"),
            ],
        ),
        (
            "",
            "resourcequotas",
            json!({"metadata": meta, "status": {
            "hard": {"pods": "10", "limits.cpu": "2", "requests.cpu": "1", "limits.memory": "2Gi"},
            "used": {"pods": "1", "requests.cpu": "100m"}}}),
            vec![
                json!("x"),
                json!("pods: 1/10, requests.cpu: 100m/1"),
                json!("limits.cpu: 0/2, limits.memory: 0/2Gi"),
                json!("30s"),
            ],
        ),
        (
            "",
            "persistentvolumeclaims",
            json!({"metadata": meta, "spec": {"storageClassName": "std", "volumeName": "pv1"},
            "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"]}}),
            vec![
                json!("x"),
                json!("Bound"),
                json!("pv1"),
                json!("1Gi"),
                json!("RWO,RWX"),
                json!("std"),
                json!("<unset>"),
                json!("30s"),
                json!("Filesystem"),
            ],
        ),
        (
            "",
            "persistentvolumes",
            json!({"metadata": meta, "spec": {"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete", "claimRef": {"namespace": "ns", "name": "c"}, "storageClassName": "std"},
            "status": {"phase": "Bound"}}),
            vec![
                json!("x"),
                json!("5Gi"),
                json!("RWO"),
                json!("Delete"),
                json!("Bound"),
                json!("ns/c"),
                json!("std"),
                json!("<unset>"),
                json!(""),
                json!("30s"),
                json!("Filesystem"),
            ],
        ),
    ];
    for (group, plural, obj, want) in cases {
        assert_eq!(
            row(group, plural, &obj, now),
            want,
            "{group}/{plural}: {obj}"
        );
    }
}

#[test]
fn event_cells() {
    let ev = json!({
        "metadata": {"name": "p.1234", "namespace": "default", "creationTimestamp": CREATED},
        "involvedObject": {"kind": "Pod", "name": "p", "fieldPath": "spec.containers{c}"},
        "reason": "Pulled", "message": "Successfully pulled image \"nginx\"\n", "type": "Normal",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": ts(0), "lastTimestamp": ts(240), "count": 3,
    });
    assert_eq!(
        row("", "events", &ev, T0 + 300),
        vec![
            json!("60s"),
            json!("Normal"),
            json!("Pulled"),
            json!("pod/p"),
            json!("spec.containers{c}"),
            json!("kubelet, node-1"),
            json!("Successfully pulled image \"nginx\""),
            json!("5m"),
            json!(3),
            json!("p.1234")
        ]
    );
    let new_style = json!({
        "metadata": {"name": "e", "creationTimestamp": CREATED},
        "involvedObject": {"kind": "Node", "name": ""},
        "reason": "Scheduled", "message": "m", "type": "Normal",
        "eventTime": "2025-11-25T10:00:00.000000Z",
        "reportingComponent": "default-scheduler", "reportingInstance": "",
    });
    assert_eq!(
        row("", "events", &new_style, T0 + 5),
        vec![
            json!("5s"),
            json!("Normal"),
            json!("Scheduled"),
            json!("node"),
            json!(""),
            json!("default-scheduler"),
            json!("m"),
            json!("5s"),
            json!(1),
            json!("e")
        ]
    );
    let v1 = json!({
        "metadata": {"name": "e", "creationTimestamp": CREATED},
        "regarding": {"kind": "Pod", "name": "p"}, "note": "hi", "reason": "R", "type": "Warning",
        "eventTime": "2025-11-25T10:00:00.000000Z", "reportingController": "ctrl", "reportingInstance": "inst",
        "series": {"count": 7, "lastObservedTime": "2025-11-25T10:01:00.000000Z"},
    });
    assert_eq!(
        row("events.k8s.io", "events", &v1, T0 + 120),
        vec![
            json!("60s"),
            json!("Warning"),
            json!("R"),
            json!("pod/p"),
            json!(""),
            json!("ctrl, inst"),
            json!("hi"),
            json!("2m"),
            json!(7),
            json!("e")
        ]
    );
    let cols = columns("", "events");
    assert_eq!(
        names(&cols),
        [
            "Last Seen",
            "Type",
            "Reason",
            "Object",
            "Subobject",
            "Source",
            "Message",
            "First Seen",
            "Count",
            "Name"
        ]
    );
    let prio: Vec<i32> = cols.iter().map(|c| c.priority).collect();
    assert_eq!(prio, [0, 0, 0, 0, 1, 1, 0, 1, 1, 1]);
    assert_eq!(cols[9].format, "name");
}

#[test]
fn default_table_columns_and_cells() {
    for (group, plural) in [
        ("rbac.authorization.k8s.io", "roles"),
        ("rbac.authorization.k8s.io", "clusterroles"),
        ("", "limitranges"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        ("example.com", "widgets"),
    ] {
        let cols = columns(group, plural);
        assert_eq!(names(&cols), ["Name", "Created At"], "{plural}");
        assert_eq!(
            (cols[0].type_, cols[0].format, cols[0].priority),
            ("string", "name", 0)
        );
        assert_eq!(
            (cols[1].type_, cols[1].format, cols[1].priority),
            ("date", "", 0)
        );
    }
    let cases: Vec<(Value, Vec<Value>)> = vec![
        (
            json!({"metadata": {"name": "admin", "creationTimestamp": CREATED}}),
            vec![json!("admin"), json!(CREATED)],
        ),
        (
            json!({"metadata": {"name": "tz", "creationTimestamp": "2025-11-25T12:00:00+02:00"}}),
            vec![json!("tz"), json!(CREATED)],
        ),
        (
            json!({"metadata": {"name": "none"}}),
            vec![json!("none"), json!("0001-01-01T00:00:00Z")],
        ),
    ];
    for (obj, want) in cases {
        assert_eq!(row("rbac.authorization.k8s.io", "roles", &obj, T0), want);
    }
}

#[test]
fn age_unknown_without_creation_timestamp() {
    let cm = json!({"metadata": {"name": "x"}});
    assert_eq!(cell("", "configmaps", &cm, T0, "Age"), json!("<unknown>"));
}

#[test]
fn every_row_has_a_cell_per_column() {
    let objects = [
        json!({}),
        json!({"metadata": {"name": "x", "creationTimestamp": CREATED}, "spec": {}, "status": {}}),
    ];
    for r in crate::registry::RESOURCES {
        for o in &objects {
            assert_eq!(
                row(r.group, r.plural, o, T0).len(),
                columns(r.group, r.plural).len(),
                "{}/{}",
                r.group,
                r.plural
            );
        }
    }
}

#[test]
fn table_json() {
    let running = pod(
        one_container(),
        json!({
            "phase": "Running",
            "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0, "state": {"running": {}}}],
        }),
    );
    let mut done = pod(one_container(), json!({"phase": "Succeeded"}));
    done["metadata"]["name"] = json!("done");
    let t = table(
        printer_for("", "pods"),
        &[running.clone(), done],
        T0 + 10,
        "42",
        Some("tok"),
    );
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(
        t["metadata"],
        json!({"resourceVersion": "42", "continue": "tok"})
    );
    assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 9);
    assert_eq!(
        t["columnDefinitions"][0],
        json!({"name": "Name", "type": "string", "format": "name", "description": NAME_DESC, "priority": 0})
    );
    assert_eq!(t["columnDefinitions"][5]["priority"], 1);
    let rows = t["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0]["cells"],
        json!(["p", "1/1", "Running", "0", "10s", "<none>", "<none>", "<none>", "<none>"])
    );
    assert!(rows[0].get("conditions").is_none());
    assert_eq!(
        rows[0]["object"],
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": running["metadata"]})
    );
    assert_eq!(
        rows[1]["conditions"],
        json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}])
    );

    let empty = table(
        printer_for("rbac.authorization.k8s.io", "roles"),
        &[],
        T0,
        "",
        None,
    );
    assert_eq!(empty["metadata"], json!({}));
    assert_eq!(empty["rows"], json!([]));
    assert_eq!(
        empty["columnDefinitions"][1],
        json!({"name": "Created At", "type": "date", "format": "", "description": AGE_DESC, "priority": 0})
    );
}

#[test]
fn label_selector_formatting() {
    let cases: Vec<(Value, &str)> = vec![
        (Value::Null, "<none>"),
        (json!({}), "<none>"),
        (
            json!({"matchLabels": {"app": "x", "tier": "web"}}),
            "app=x,tier=web",
        ),
        (
            json!({"matchExpressions": [{"key": "k", "operator": "NotIn", "values": ["b", "a"]}, {"key": "e", "operator": "Exists"}]}),
            "e,k notin (a,b)",
        ),
        (
            json!({"matchExpressions": [{"key": "k", "operator": "In", "values": []}]}),
            "<error>",
        ),
    ];
    for (sel, want) in cases {
        assert_eq!(format_label_selector(&sel), want, "{sel}");
    }
    assert_eq!(format_labels(&json!({"b": "2", "a": "1"})), "a=1,b=2");
    assert_eq!(format_labels(&json!({})), "<none>");
}
