//! A DaemonSet over a real node and simulated ones: one pod on the local node (really running
//! on containerd) and one on each simulated node, none on a node tainted against it.

use std::time::Duration;

use super::common::{eventually, Ferry, Sim};

const BUSYBOX: &str = "127.0.0.1:5000/busybox:1";

/// Runs on the cluster of `the_server_runs_a_local_agent`, whose real node is `node`.
pub fn daemonset_spans_real_and_simulated_nodes(ferry: &Ferry, node: &str) {
    let sim = Sim::start(ferry, 3, &["--name-prefix", "ds-sim-"]);
    assert!(
        eventually(Duration::from_secs(30), || ferry
            .ok(&["get", "nodes", "-l", "type=ferry-sim", "--no-headers"])
            .lines()
            .filter(|l| l.contains(" Ready "))
            .count()
            == 3),
        "sim nodes: {}",
        ferry.ok(&["get", "nodes"])
    );
    ferry.ok(&["taint", "nodes", "ds-sim-2", "dedicated=db:NoSchedule"]);
    ferry.apply_yaml(
        "apply",
        &format!(
            "apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: everywhere}}
spec:
  selector: {{matchLabels: {{app: everywhere}}}}
  template:
    metadata: {{labels: {{app: everywhere}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{{name: app, image: {BUSYBOX}, command: [sleep, '3600']}}]
"
        ),
    );
    let rollout = ferry.kubectl(&[
        "rollout",
        "status",
        "daemonset/everywhere",
        "--timeout=120s",
    ]);
    assert!(
        rollout.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&rollout.stderr),
        ferry.ok(&["get", "pods", "-o", "wide"])
    );
    let mut nodes: Vec<String> = ferry
        .ok(&[
            "get",
            "pods",
            "-l",
            "app=everywhere",
            "-o",
            "jsonpath={range .items[*]}{.spec.nodeName}{\"\\n\"}{end}",
        ])
        .lines()
        .map(str::to_string)
        .collect();
    nodes.sort();
    let mut expected = vec![node.to_string(), "ds-sim-0".into(), "ds-sim-1".into()];
    expected.sort();
    assert_eq!(nodes, expected);
    // The real node's pod really runs.
    let pod = ferry.ok(&[
        "get",
        "pods",
        "-l",
        "app=everywhere",
        "--field-selector",
        &format!("spec.nodeName={node}"),
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    assert_eq!(ferry.ok(&["exec", &pod, "--", "echo", "here"]), "here\n");
    ferry.ok(&["delete", "daemonset", "everywhere", "--wait=true"]);
    assert!(
        eventually(Duration::from_secs(60), || ferry
            .ok(&["get", "pods", "-l", "app=everywhere", "-o", "name"])
            .is_empty()),
        "daemon pods left"
    );
    drop(sim);
    for name in ["ds-sim-0", "ds-sim-1", "ds-sim-2"] {
        ferry.ok(&["delete", "node", name, "--wait=false"]);
    }
}
