//! A HorizontalPodAutoscaler on the real node: a Deployment whose pods burn CPU (bounded by a
//! limit) grows to its maximum, and shrinks back to one once they stop.

use std::time::Duration;

use super::common::{eventually, Ferry};

const BUSYBOX: &str = "127.0.0.1:5000/busybox:1";

fn replicas(ferry: &Ferry) -> String {
    ferry.ok(&[
        "get",
        "deployment",
        "burn",
        "-o",
        "jsonpath={.spec.replicas}",
    ])
}

/// Runs on the cluster of `the_server_runs_a_local_agent`.
pub fn cpu_burners_scale_up_and_back_down(ferry: &Ferry) {
    ferry.apply_yaml(
        "apply",
        &format!(
            "apiVersion: apps/v1
kind: Deployment
metadata: {{name: burn}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: burn}}}}
  template:
    metadata: {{labels: {{app: burn}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: burn
        image: {BUSYBOX}
        command: [sh, -c, 'while [ ! -f /tmp/stop ]; do :; done; sleep 3600']
        resources: {{requests: {{cpu: 50m}}, limits: {{cpu: 100m}}}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: burn}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: burn}}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 50}}}}
  behavior:
    scaleDown: {{stabilizationWindowSeconds: 0}}
"
        ),
    );
    assert!(
        eventually(Duration::from_secs(150), || replicas(ferry) == "3"),
        "no scale-up: {}\n{}",
        ferry.ok(&["describe", "hpa", "burn"]),
        ferry.ok(&["get", "pods", "-l", "app=burn", "-o", "wide"])
    );
    let events = ferry.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=HorizontalPodAutoscaler,reason=SuccessfulRescale",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(
        events.contains(
            "New size: 3; reason: cpu resource utilization (percentage of request) above target"
        ),
        "{events}"
    );
    let table = ferry.ok(&["get", "hpa", "burn", "--no-headers"]);
    assert!(table.contains("cpu: ") && table.contains("/50%"), "{table}");

    // The pods stop burning: back to one.
    assert!(
        eventually(Duration::from_secs(90), || {
            let pods = ferry.ok(&[
                "get",
                "pods",
                "-l",
                "app=burn",
                "--field-selector=status.phase=Running",
                "-o",
                "jsonpath={.items[*].metadata.name}",
            ]);
            for pod in pods.split_whitespace() {
                let _ = ferry.kubectl(&["exec", pod, "--", "touch", "/tmp/stop"]);
            }
            replicas(ferry) == "1"
        }),
        "no scale-down: {}",
        ferry.ok(&["describe", "hpa", "burn"])
    );
    ferry.ok(&["delete", "hpa", "burn"]);
    ferry.ok(&["delete", "deployment", "burn", "--wait=true"]);
}
