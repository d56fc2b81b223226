//! Black-box tests of the pod's journey: a real `ferry server` with `ferry sim` nodes, driven by
//! the real kubectl; the steps read back over `/journey/v1/` and through `ferry trace`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{eventually, Ferry, Sim};
use serde_json::Value;

fn start(nodes: usize) -> (Ferry, Sim, tempfile::TempDir) {
    common::with_sim_nodes(nodes, &[])
}

fn raw(ferry: &Ferry, path: &str) -> Value {
    serde_json::from_str(&ferry.ok(&["get", "--raw", path])).expect("json")
}

/// The trace id in a pod's journey annotation.
fn trace_of(ferry: &Ferry, object: &str) -> String {
    let value = ferry.ok(&[
        "get",
        object,
        "-o",
        "jsonpath={.metadata.annotations.journey\\.ferry\\.dev/traceparent}",
    ]);
    let mut parts = value.split('-');
    assert_eq!(parts.next(), Some("00"), "{object}: traceparent {value:?}");
    parts.next().expect("a trace id").to_string()
}

fn steps(trace: &Value) -> Vec<&Value> {
    trace["spans"].as_array().expect("spans").iter().collect()
}

fn step_names(spans: &[&Value]) -> Vec<String> {
    spans
        .iter()
        .map(|s| s["step"].as_str().unwrap_or("").to_string())
        .collect()
}

fn ferry_trace(ferry: &Ferry, args: &[&str]) -> String {
    ferry.trace(args)
}

#[test]
fn a_deployments_pod_has_one_journey_across_components() {
    let (ferry, _sim, _dir) = start(2);
    ferry.ok(&[
        "create",
        "deployment",
        "web",
        "--image=registry.local/web:1",
        "--replicas=2",
    ]);
    let running = || {
        ferry.ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "--field-selector=status.phase=Running",
            "-o",
            "name",
        ])
    };
    assert!(
        eventually(Duration::from_secs(30), || running().lines().count() == 2),
        "pods did not run: {}",
        ferry.ok(&["get", "pods", "-o", "wide"])
    );
    let pod = running().lines().next().expect("a pod").to_string();
    let uid = ferry.ok(&["get", &pod, "-o", "jsonpath={.metadata.uid}"]);
    // The Deployment, its ReplicaSet and the pod are one journey.
    let trace = trace_of(&ferry, &pod);
    assert_eq!(trace_of(&ferry, "deployment/web"), trace);
    let kept = raw(&ferry, &format!("/journey/v1/traces/{trace}"));
    let spans = steps(&kept);
    let names = step_names(&spans);
    for step in [
        "request",
        "authenticated",
        "authorized",
        "mutating admission",
        "validation",
        "validating admission",
        "persisted",
        "created replicaset",
        "created pod",
        "queued",
        "filtered",
        "scored",
        "bound",
        "pod seen",
        "ready",
    ] {
        assert!(names.iter().any(|n| n == step), "no {step:?} in {names:?}");
    }
    // The pod's own create request hangs under the ReplicaSet controller's step, which hangs
    // under the ReplicaSet's create request, which hangs under the Deployment controller's.
    let by_id = |id: &str| spans.iter().find(|s| s["spanId"] == id).copied();
    let parent = |span: &Value| span["parentSpanId"].as_str().and_then(by_id);
    let pod_request = spans
        .iter()
        .find(|s| {
            s["step"] == "request"
                && s["object"]["uid"] == uid.as_str()
                && s["attributes"]["verb"] == "create"
        })
        .expect("the pod's create request");
    let created_pod = parent(pod_request).expect("the pod request's parent");
    assert_eq!(created_pod["step"], "created pod");
    let rs_request = parent(created_pod).expect("created pod's parent");
    assert_eq!(rs_request["object"]["resource"], "replicasets");
    let created_rs = parent(rs_request).expect("the RS request's parent");
    assert_eq!(created_rs["step"], "created replicaset");
    let deployment_request = parent(created_rs).expect("created replicaset's parent");
    assert_eq!(deployment_request["object"]["resource"], "deployments");
    assert_eq!(deployment_request["attributes"]["user"], "ferry-admin");
    // Every step took no negative time, and the scheduler's came after the pod was persisted.
    for span in &spans {
        let (start, end) = (
            span["startUnixNanos"].as_u64(),
            span["endUnixNanos"].as_u64(),
        );
        assert!(start <= end, "{span}");
    }
    // The object's steps are found by its uid too.
    let by_uid = raw(&ferry, &format!("/journey/v1/objects/{uid}"));
    assert!(by_uid["traces"]
        .as_array()
        .expect("traces")
        .iter()
        .any(|t| t["traceId"] == trace.as_str()));

    // `ferry trace` tells it in order.
    let name = pod.trim_start_matches("pod/");
    let text = ferry_trace(&ferry, &[&format!("pod/{name}")]);
    let mut last = 0;
    for step in ["persisted", "created pod", "queued", "filtered", "bound"] {
        let at = text[last..]
            .find(step)
            .unwrap_or_else(|| panic!("{step:?} missing or out of order in:\n{text}"));
        last += at;
    }
    let json: Value = serde_json::from_str(&ferry_trace(
        &ferry,
        &[&format!("pod/{name}"), "-o", "json"],
    ))
    .expect("json");
    assert_eq!(json["pod"]["uid"], uid.as_str());
    assert!(json["steps"].as_array().is_some_and(|s| s.len() >= 10));
}

#[test]
fn a_pod_no_node_fits_says_why() {
    let (ferry, _sim, _dir) = start(2);
    ferry.apply_yaml(
        "create",
        "apiVersion: v1
kind: Pod
metadata: {name: stuck}
spec:
  nodeSelector: {disk: ssd}
  containers: [{name: c, image: registry.local/web:1}]
",
    );
    let trace = trace_of(&ferry, "pod/stuck");
    assert!(
        eventually(Duration::from_secs(20), || {
            let kept = raw(&ferry, &format!("/journey/v1/traces/{trace}"));
            step_names(&steps(&kept))
                .iter()
                .any(|s| s == "unschedulable")
        }),
        "no unschedulable step"
    );
    let text = ferry_trace(&ferry, &["pod/stuck"]);
    assert!(
        text.contains("Pending")
            && text.contains("2 nodes")
            && text.contains("node affinity/selector"),
        "{text}"
    );
}

#[test]
fn only_components_post_steps_and_only_administrators_and_readers_read_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ferry = Ferry::start_in(dir.path(), &[]);
    let file = dir.path().join("spans.json");
    let span = serde_json::json!({"spans": [{
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": "b7ad6b7169203331",
        "step": "pod seen",
        "component": "kubelet",
        "object": {"resource": "pods", "namespace": "default", "name": "p", "uid": "u-1"},
        "startUnixNanos": 1,
        "endUnixNanos": 2,
    }]});
    std::fs::write(&file, span.to_string()).expect("write");
    let post = |who: &[&str]| {
        let mut args = vec!["create", "--raw", "/journey/v1/spans", "-f"];
        let path = file.to_str().expect("utf-8");
        args.push(path);
        args.extend_from_slice(who);
        ferry.kubectl(&args)
    };
    let node = post(&["--as=system:node:n1", "--as-group=system:nodes"]);
    assert!(
        node.status.success(),
        "{}",
        String::from_utf8_lossy(&node.stderr)
    );
    let stranger = post(&["--as=bob"]);
    assert!(!stranger.status.success());
    assert!(
        String::from_utf8_lossy(&stranger.stderr).contains("forbidden"),
        "{}",
        String::from_utf8_lossy(&stranger.stderr)
    );
    let kept = raw(
        &ferry,
        "/journey/v1/traces/0af7651916cd43dd8448eb211c80319c",
    );
    assert_eq!(step_names(&steps(&kept)), ["pod seen"]);
    let by_uid = raw(&ferry, "/journey/v1/objects/u-1");
    assert_eq!(by_uid["traces"].as_array().map(Vec::len), Some(1));
    let read = || {
        ferry.kubectl(&[
            "get",
            "--raw",
            "/journey/v1/traces/0af7651916cd43dd8448eb211c80319c",
            "--as=bob",
        ])
    };
    assert!(!read().status.success());
    // Bound to the reader role, bob reads journeys and the web view, and still posts none.
    ferry.ok(&[
        "create",
        "clusterrolebinding",
        "bob-reads-journeys",
        "--clusterrole=ferry:journey-reader",
        "--user=bob",
    ]);
    assert!(
        eventually(Duration::from_secs(10), || read().status.success()),
        "{}",
        String::from_utf8_lossy(&read().stderr)
    );
    assert!(ferry
        .kubectl(&["get", "--raw", "/ui/steps.json", "--as=bob"])
        .status
        .success());
    assert!(!post(&["--as=bob"]).status.success());
    let unknown = ferry.kubectl(&[
        "get",
        "--raw",
        "/journey/v1/traces/1af7651916cd43dd8448eb211c80319c",
    ]);
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("NotFound")
            || String::from_utf8_lossy(&unknown.stderr).contains("not found"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
}

/// Runs `ferry demo` with `args` until it exits, or until `until` appears in its output (then
/// interrupts it as Ctrl-C does); its output and exit status.
fn ferry_demo(args: &[&str], until: &str) -> (String, std::process::ExitStatus) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("demo")
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", "/nonexistent")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run ferry demo");
    let stdout = child.stdout.take().expect("stdout");
    let (lines, reader) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let mut out = String::new();
    while let Ok(line) =
        reader.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
    {
        out.push_str(&line);
        out.push('\n');
        if line.contains(until) {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
        }
    }
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if std::time::Instant::now() > deadline + Duration::from_secs(30) {
            // SIGKILL would leave what it started running.
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            std::thread::sleep(Duration::from_secs(25));
            let _ = child.kill();
            break child.wait().expect("ferry demo ends");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (out, status)
}

#[test]
fn the_demo_follows_a_new_pod_of_its_deployment_to_ready_each_run() {
    let (ferry, _sim, _dir) = start(2);
    let kubeconfig = ferry.kubeconfig.to_str().expect("utf-8").to_string();
    let args = [
        "--kubeconfig",
        &kubeconfig,
        "--image",
        "registry.local/web:1",
    ];
    for run in 0..2 {
        let (out, status) = ferry_demo(&args, "Next, with");
        assert!(status.success(), "run {run}: {status}\n{out}");
        let mut last = 0;
        for step in [
            "Using the cluster",
            "request",
            "persisted",
            "bound",
            "Ready: created → Ready in",
            "Next, with",
        ] {
            last += out[last..].find(step).unwrap_or_else(|| {
                panic!("run {run}: {step:?} missing or out of order in:\n{out}")
            });
        }
    }
    // Two runs, two pods: the second rolled the Deployment out again.
    assert!(
        eventually(Duration::from_secs(30), || ferry
            .ok(&["get", "rs", "-n", "demo", "--no-headers"])
            .lines()
            .count()
            == 2),
        "{}",
        ferry.ok(&["get", "rs,pods", "-n", "demo"])
    );
    let endpoints = ferry.ok(&[
        "get",
        "endpointslices",
        "-n",
        "demo",
        "-o",
        "jsonpath={.items[*].endpoints[*].targetRef.name}",
    ]);
    assert!(!endpoints.is_empty(), "the Service has no endpoints");
}

#[test]
fn the_demo_starts_a_cluster_on_simulated_nodes_and_stops_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let data = data_dir.to_str().expect("utf-8");
    let (out, status) = ferry_demo(
        &[
            "--data-dir",
            data,
            "--https-listen",
            "127.0.0.1:0",
            "--sim-nodes",
            "2",
            "--image",
            "registry.local/web:1",
        ],
        "runs until Ctrl-C",
    );
    assert!(status.success(), "{status}\n{out}");
    for words in [
        "No cluster answers: starting one",
        "bound",
        "Ready: created → Ready in",
    ] {
        assert!(out.contains(words), "{words:?} missing in:\n{out}");
    }
    // Its server and simulated nodes are gone.
    let left = Command::new("pgrep")
        .args(["-f", data])
        .output()
        .expect("pgrep");
    assert!(
        left.stdout.is_empty(),
        "left running: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}
