//! Storage end to end on the local node: the server's default `local` StorageClass, the
//! agent's `local.csi.ferry.dev` driver and provisioner, the scheduler's VolumeBinding and the
//! kubelet's CSI publish. A StatefulSet's pods each get a volume that outlives them, a claim
//! grows when edited, and deleting the claims deletes the volumes and their directories.

use std::path::Path;
use std::time::Duration;

use super::common::{eventually, Ferry};

const BUSYBOX: &str = "127.0.0.1:5000/busybox:1";

fn jsonpath(ferry: &Ferry, object: &str, path: &str) -> String {
    ferry.ok(&["get", object, "-o", &format!("jsonpath={path}")])
}

fn volume_dirs(agent_dir: &Path) -> Vec<String> {
    std::fs::read_dir(agent_dir.join("storage"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs on the cluster of `the_server_runs_a_local_agent`, whose agent keeps its data in
/// `agent_dir`.
pub fn statefulsets_keep_their_data(ferry: &Ferry, node: &str, agent_dir: &Path) {
    let classes = ferry.ok(&["get", "storageclass", "--no-headers"]);
    assert!(
        classes.contains("local (default)") && classes.contains("local.csi.ferry.dev"),
        "{classes}"
    );
    assert!(
        eventually(Duration::from_secs(30), || jsonpath(
            ferry,
            &format!("csinode/{node}"),
            "{.spec.drivers[0].name}"
        ) == "local.csi.ferry.dev"),
        "the driver was not registered: {}",
        ferry.ok(&["get", "csinodes", "-o", "yaml"])
    );
    assert!(
        eventually(Duration::from_secs(70), || !ferry
            .ok(&[
                "get",
                "csistoragecapacities",
                "-n",
                "kube-system",
                "-o",
                "name"
            ])
            .is_empty()),
        "no storage capacity published"
    );
    let manifest = format!(
        "apiVersion: v1
kind: Service
metadata: {{name: data}}
spec: {{clusterIP: None, selector: {{app: data}}, ports: [{{port: 80}}]}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: data}}
spec:
  serviceName: data
  replicas: 2
  selector: {{matchLabels: {{app: data}}}}
  template:
    metadata: {{labels: {{app: data}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: {BUSYBOX}
        command: [sh, -c, 'hostname >> /data/log; sleep 3600']
        volumeMounts: [{{name: www, mountPath: /data}}]
  volumeClaimTemplates:
  - metadata: {{name: www}}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {{requests: {{storage: 64Mi}}}}
"
    );
    ferry.apply_yaml("apply", &manifest);
    let rollout = ferry.kubectl(&["rollout", "status", "statefulset/data", "--timeout=180s"]);
    assert!(
        rollout.status.success(),
        "rollout: {}\n{}\n{}",
        String::from_utf8_lossy(&rollout.stderr),
        ferry.ok(&["get", "pods,pvc,pv", "-o", "wide"]),
        ferry.ok(&["get", "events", "--sort-by=.lastTimestamp"])
    );
    // The claims were provisioned on this node by the driver.
    let claim = jsonpath(
        ferry,
        "pvc/www-data-0",
        "{.status.phase} {.spec.storageClassName} {.spec.volumeName}",
    );
    let fields: Vec<&str> = claim.split(' ').collect();
    assert_eq!(&fields[..2], ["Bound", "local"], "{claim}");
    let pv = fields[2].to_string();
    assert!(pv.starts_with("pvc-"), "{claim}");
    assert_eq!(
        jsonpath(
            ferry,
            &format!("pv/{pv}"),
            "{.spec.csi.driver} {.metadata.annotations.pv\\.kubernetes\\.io/provisioned-by} {.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]} {.spec.persistentVolumeReclaimPolicy}"
        ),
        format!("local.csi.ferry.dev local.csi.ferry.dev {node} Delete")
    );
    assert_eq!(
        volume_dirs(agent_dir).len(),
        2,
        "{:?}",
        volume_dirs(agent_dir)
    );
    let read = |pod: &str| ferry.ok(&["exec", pod, "--", "cat", "/data/log"]);
    assert_eq!(read("data-1"), "data-1\n");

    // The pod goes and comes back with the same name and the same data.
    let uid = jsonpath(ferry, "pod/data-1", "{.metadata.uid}");
    ferry.ok(&["delete", "pod", "data-1", "--wait=true"]);
    assert!(
        eventually(Duration::from_secs(90), || {
            let out = ferry.kubectl(&[
                "get",
                "pod/data-1",
                "-o",
                "jsonpath={.metadata.uid} {.status.containerStatuses[0].ready}",
            ]);
            let out = String::from_utf8_lossy(&out.stdout).to_string();
            !out.starts_with(&uid) && out.ends_with("true")
        }),
        "data-1 did not come back: {}",
        ferry.ok(&["get", "pods", "-o", "wide"])
    );
    assert_eq!(read("data-1"), "data-1\ndata-1\n");
    // Its DNS name (hostname.subdomain) leads to the new pod.
    let ip = jsonpath(ferry, "pod/data-1", "{.status.podIP}");
    let mut answer = String::new();
    assert!(
        eventually(Duration::from_secs(30), || {
            let out = ferry.kubectl(&[
                "exec",
                "data-0",
                "--",
                "nslookup",
                "data-1.data.default.svc.cluster.local",
            ]);
            answer = String::from_utf8_lossy(&out.stdout).into_owned();
            answer.contains(&ip)
        }),
        "data-1.data does not resolve to {ip}: {answer}"
    );

    // A claim grows when edited.
    ferry.ok(&[
        "patch",
        "pvc/www-data-0",
        "-p",
        r#"{"spec":{"resources":{"requests":{"storage":"128Mi"}}}}"#,
    ]);
    assert!(
        eventually(Duration::from_secs(60), || jsonpath(
            ferry,
            "pvc/www-data-0",
            "{.status.capacity.storage}"
        ) == "128Mi"),
        "the claim did not grow: {}",
        ferry.ok(&["get", "pvc/www-data-0", "-o", "yaml"])
    );
    assert_eq!(
        jsonpath(ferry, &format!("pv/{pv}"), "{.spec.capacity.storage}"),
        "128Mi"
    );

    // The set goes, then its claims (Retain on set deletion): the volumes and their
    // directories go with them.
    ferry.ok(&["delete", "statefulset", "data", "--wait=true"]);
    assert!(
        eventually(Duration::from_secs(60), || ferry
            .ok(&["get", "pods", "-l", "app=data", "-o", "name"])
            .is_empty()),
        "pods left: {}",
        ferry.ok(&["get", "pods"])
    );
    ferry.ok(&["delete", "pvc", "www-data-0", "www-data-1"]);
    ferry.ok(&["delete", "service", "data"]);
    assert!(
        eventually(Duration::from_secs(60), || ferry
            .ok(&["get", "pv", "-o", "name"])
            .is_empty()
            && volume_dirs(agent_dir).is_empty()),
        "volumes left: {} {:?}",
        ferry.ok(&["get", "pv"]),
        volume_dirs(agent_dir)
    );
}
