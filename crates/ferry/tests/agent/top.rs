//! `kubectl top`: the server scrapes the kubelet's `/metrics/resource` and serves
//! `metrics.k8s.io`, which kubectl reads.

use std::time::Duration;

use super::common::{eventually, Ferry};

/// `pod` runs in `default` on `node`.
pub fn kubectl_top_shows_usage(ferry: &Ferry, pod: &str, node: &str) {
    let mut last = String::new();
    assert!(
        eventually(Duration::from_secs(60), || {
            let out = ferry.kubectl(&["top", "pod", pod, "--no-headers"]);
            last = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            out.status.success() && last.starts_with(pod)
        }),
        "kubectl top pod: {last}"
    );
    // NAME CPU(cores) MEMORY(bytes): the memory is in Mi.
    let fields: Vec<&str> = last.split_whitespace().collect();
    assert!(
        fields.len() == 3 && fields[1].ends_with('m') && fields[2].ends_with("Mi"),
        "{last}"
    );
    let nodes = ferry.ok(&["top", "node", node, "--no-headers"]);
    assert!(nodes.starts_with(node) && nodes.contains('%'), "{nodes}");
    let raw = ferry.ok(&[
        "get",
        "--raw",
        &format!("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/{pod}"),
    ]);
    let metrics: serde_json::Value = serde_json::from_str(&raw).expect("PodMetrics");
    assert_eq!(metrics["kind"], "PodMetrics");
    assert!(
        metrics["containers"][0]["usage"]["cpu"].is_string(),
        "{raw}"
    );
    let missing = ferry.fails(&["top", "pod", "nothing-here"]);
    assert!(missing.contains("not found"), "{missing}");
}
