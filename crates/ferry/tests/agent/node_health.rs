//! Node health on real containerd: the kubelet's `/stats/summary` through the API server's
//! `nodes/proxy`, container log rotation, and the eviction manager under an absurd hard
//! threshold (the node reports MemoryPressure; a BestEffort pod is refused, a Burstable pod
//! started anyway is evicted), and a pod past its emptyDir's size limit evicted without pressure.

use std::path::Path;
use std::time::Duration;

use super::common::{eventually, Ferry};

/// `kubectl get --raw /api/v1/nodes/<node>/proxy/stats/summary` names the node and `pod` with
/// its container's CPU, memory, rootfs and logs.
pub fn stats_summary_through_the_node_proxy(ferry: &Ferry, node: &str, pod: &str) {
    let path = format!("/api/v1/nodes/{node}/proxy/stats/summary");
    let mut summary = serde_json::Value::Null;
    assert!(
        eventually(Duration::from_secs(30), || {
            let out = ferry.kubectl(&["get", "--raw", &path]);
            summary = serde_json::from_slice(&out.stdout).unwrap_or_default();
            summary["pods"]
                .as_array()
                .is_some_and(|pods| pods.iter().any(|p| p["podRef"]["name"] == pod))
        }),
        "no {pod} in the summary: {summary}"
    );
    assert_eq!(summary["node"]["nodeName"], node);
    assert!(
        summary["node"]["memory"]["availableBytes"].is_u64(),
        "{summary}"
    );
    assert!(summary["node"]["fs"]["capacityBytes"].is_u64(), "{summary}");
    assert!(
        summary["node"]["runtime"]["imageFs"]["usedBytes"].is_u64(),
        "{summary}"
    );
    assert!(summary["node"]["rlimit"]["maxpid"].is_i64(), "{summary}");
    let p = summary["pods"]
        .as_array()
        .and_then(|pods| pods.iter().find(|p| p["podRef"]["name"] == pod))
        .cloned()
        .unwrap_or_default();
    assert_eq!(p["podRef"]["namespace"], "default");
    let container = &p["containers"][0];
    assert_eq!(container["name"], pod);
    assert!(
        container["memory"]["workingSetBytes"].as_u64() > Some(0),
        "{p}"
    );
    assert!(container["cpu"]["usageCoreNanoSeconds"].is_u64(), "{p}");
    assert!(container["logs"]["usedBytes"].is_u64(), "{p}");
    assert!(p["ephemeral-storage"]["usedBytes"].is_u64(), "{p}");
    // containerd 1.6 gives no sandbox stats: the pod's network namespace and cgroup do.
    assert_eq!(p["network"]["name"], "eth0", "{p}");
    assert!(p["network"]["rxBytes"].is_u64(), "{p}");
    assert!(
        p["process_stats"]["process_count"].as_u64() >= Some(1),
        "{p}"
    );
    // The kubelet's own paths are proxied too.
    let healthz = ferry.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/nodes/{node}/proxy/healthz"),
    ]);
    assert_eq!(healthz.trim(), "ok");
}

/// Starts a pod writing ~50 kB/s, for [`chatty_logs_are_rotated`] later.
pub fn start_chatty(ferry: &Ferry, image: &str) {
    ferry.ok(&[
        "run",
        "chatty",
        &format!("--image={image}"),
        "--restart=Never",
        "--",
        "sh",
        "-c",
        "while true; do seq 1 600 | sed 's/$/ chatty padding padding padding padding/'; sleep 1; done",
    ]);
}

/// With `--container-log-max-size=64Ki --container-log-max-files=3`, the chatty pod's log was
/// rotated and older files compressed, never more than three files, and `kubectl logs` reads
/// the current file.
pub fn chatty_logs_are_rotated(ferry: &Ferry, agent_dir: &Path) {
    let uid = ferry.ok(&["get", "pod", "chatty", "-o", "jsonpath={.metadata.uid}"]);
    let dir = agent_dir
        .join("pod-logs")
        .join(format!("default_chatty_{}", uid.trim()))
        .join("chatty");
    let files = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert!(
        eventually(Duration::from_secs(40), || {
            let names = files();
            names.iter().any(|n| n.ends_with(".gz"))
                && names
                    .iter()
                    .any(|n| n.starts_with("0.log.") && !n.ends_with(".gz"))
        }),
        "no rotated and compressed logs in {}: {:?}",
        dir.display(),
        files()
    );
    let names = files();
    assert!(
        names.len() <= 3 && names.contains(&"0.log".to_string()),
        "{names:?}"
    );
    // Right after a rotation the current file may still be empty (upstream reads only it).
    let mut last = String::new();
    assert!(
        eventually(Duration::from_secs(10), || {
            last = ferry.ok(&["logs", "chatty", "--tail=1"]);
            last.contains("chatty padding")
        }),
        "kubectl logs chatty --tail=1: {last:?}"
    );
    ferry.ok(&[
        "delete",
        "pod",
        "chatty",
        "--grace-period=1",
        "--wait=false",
    ]);
}

fn phase_and_reason(ferry: &Ferry, pod: &str) -> String {
    ferry
        .ok(&[
            "get",
            "pod",
            pod,
            "-o",
            "jsonpath={.status.phase}/{.status.reason}",
        ])
        .trim()
        .to_string()
}

/// On a node whose agent runs with `--eviction-hard=memory.available<1000Ti`: MemoryPressure
/// and its taint, a BestEffort pod refused at admission, and a Burstable pod (admitted under
/// memory pressure) evicted with upstream's message.
pub fn memory_pressure_evicts(ferry: &Ferry, node: &str, image: &str) {
    assert!(
        eventually(Duration::from_secs(40), || {
            ferry
                .ok(&[
                    "get",
                    "node",
                    node,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"MemoryPressure\")].status}",
                ])
                .trim()
                == "True"
        }),
        "no MemoryPressure: {}",
        ferry.ok(&["describe", "node", node])
    );
    let reason = ferry.ok(&[
        "get",
        "node",
        node,
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"MemoryPressure\")].reason}",
    ]);
    assert_eq!(reason.trim(), "KubeletHasInsufficientMemory");
    assert!(
        eventually(Duration::from_secs(20), || ferry
            .ok(&["get", "node", node, "-o", "jsonpath={.spec.taints}"])
            .contains("node.kubernetes.io/memory-pressure")),
        "no memory-pressure taint"
    );
    // Bound to the node directly: the taint keeps the scheduler away.
    let overrides = |resources: &str| {
        format!(
            r#"{{"spec": {{"nodeName": "{node}", "containers": [{{"name": "c", "image": "{image}",
                "command": ["sleep", "3600"], "resources": {resources}}}]}}}}"#
        )
    };
    ferry.ok(&[
        "run",
        "best-effort",
        &format!("--image={image}"),
        "--restart=Never",
        &format!("--overrides={}", overrides("{}")),
    ]);
    assert!(
        eventually(Duration::from_secs(20), || phase_and_reason(
            ferry,
            "best-effort"
        ) == "Failed/Evicted"),
        "best-effort: {}",
        phase_and_reason(ferry, "best-effort")
    );
    let message = ferry.ok(&[
        "get",
        "pod",
        "best-effort",
        "-o",
        "jsonpath={.status.message}",
    ]);
    assert_eq!(message, "The node had condition: [MemoryPressure]. ");

    ferry.ok(&[
        "run",
        "burstable",
        &format!("--image={image}"),
        "--restart=Never",
        &format!(
            "--overrides={}",
            overrides(r#"{"requests": {"memory": "1Mi"}}"#)
        ),
    ]);
    assert!(
        eventually(Duration::from_secs(40), || phase_and_reason(
            ferry,
            "burstable"
        ) == "Failed/Evicted"),
        "burstable: {}",
        ferry.ok(&["describe", "pod", "burstable"])
    );
    let message = ferry.ok(&[
        "get",
        "pod",
        "burstable",
        "-o",
        "jsonpath={.status.message}",
    ]);
    assert!(
        message.starts_with(
            "The node was low on resource: memory. Threshold quantity: 1000Ti, available: "
        ),
        "{message}"
    );
    let events = ferry.ok(&[
        "get",
        "events",
        "--field-selector=involvedObject.name=burstable,reason=Evicted",
        "-o",
        "name",
    ]);
    assert!(!events.trim().is_empty(), "no Evicted event");
    ferry.ok(&[
        "delete",
        "pod",
        "best-effort",
        "burstable",
        "--grace-period=1",
    ]);
}

/// A pod that writes 3 MiB into an emptyDir limited to 1 MiB is evicted by the eviction
/// manager, with no node pressure, with upstream's message, and counted in the kubelet's
/// `/metrics`.
pub fn an_empty_dir_past_its_size_limit_is_evicted(ferry: &Ferry, node: &str, image: &str) {
    ferry.apply_yaml(
        "apply",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: filler}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  volumes: [{{name: cache, emptyDir: {{sizeLimit: 1Mi}}}}]
  containers:
  - name: filler
    image: {image}
    command: ["sh", "-c", "dd if=/dev/zero of=/cache/fill bs=1024 count=3072; sleep 3600"]
    volumeMounts: [{{name: cache, mountPath: /cache}}]
"#
        ),
    );
    assert!(
        eventually(Duration::from_secs(90), || phase_and_reason(
            ferry, "filler"
        ) == "Failed/Evicted"),
        "filler: {}",
        ferry.ok(&["describe", "pod", "filler"])
    );
    let message = ferry.ok(&["get", "pod", "filler", "-o", "jsonpath={.status.message}"]);
    assert_eq!(
        message,
        "Usage of EmptyDir volume \"cache\" exceeds the limit \"1Mi\". "
    );
    let metrics = ferry.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/nodes/{node}/proxy/metrics"),
    ]);
    assert!(
        metrics.contains("kubelet_evictions_total{eviction_signal=\"emptydirfs.limit\"} 1")
            && metrics.contains(&format!("kubelet_node_name{{node=\"{node}\"}} 1"))
            && metrics.contains("kubelet_running_pods "),
        "{metrics}"
    );
    ferry.ok(&["delete", "pod", "filler", "--grace-period=0", "--force"]);
}
