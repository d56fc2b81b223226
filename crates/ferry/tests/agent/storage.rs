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

/// A pod's generic ephemeral volume: the ephemeral volume controller makes its claim
/// `<pod>-<volume>` from the template, owned by the pod; the local driver provisions it and the
/// kubelet mounts it; deleting the pod deletes the claim (garbage collector), and the volume and
/// its directory with it. A claim of that name the pod does not own keeps the pod Pending.
/// Runs after [`statefulsets_keep_their_data`], which leaves no volume behind.
pub fn ephemeral_volumes_go_with_their_pod(ferry: &Ferry, agent_dir: &Path) {
    let pod = |name: &str| {
        format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: {BUSYBOX}
    command: [sh, -c, 'echo hello > /scratch/file; sleep 3600']
    volumeMounts: [{{name: work, mountPath: /scratch}}]
  volumes:
  - name: work
    ephemeral:
      volumeClaimTemplate:
        metadata: {{labels: {{kind: scratch}}}}
        spec:
          accessModes: [ReadWriteOnce]
          resources: {{requests: {{storage: 32Mi}}}}
"
        )
    };
    ferry.apply_yaml("apply", &pod("scratch"));
    let ready = ferry.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/scratch",
        "--timeout=120s",
    ]);
    assert!(
        ready.status.success(),
        "{}\n{}\n{}",
        String::from_utf8_lossy(&ready.stderr),
        ferry.ok(&["get", "pods,pvc,pv", "-o", "wide"]),
        ferry.ok(&["get", "events", "--sort-by=.lastTimestamp"])
    );
    assert_eq!(
        jsonpath(
            ferry,
            "pvc/scratch-work",
            "{.status.phase} {.metadata.labels.kind} {.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name} {.metadata.ownerReferences[0].controller} {.spec.storageClassName}"
        ),
        "Bound scratch Pod/scratch true local"
    );
    assert_eq!(
        ferry.ok(&["exec", "scratch", "--", "cat", "/scratch/file"]),
        "hello\n"
    );
    assert_eq!(
        volume_dirs(agent_dir).len(),
        1,
        "{:?}",
        volume_dirs(agent_dir)
    );

    ferry.ok(&["delete", "pod", "scratch", "--wait=true"]);
    assert!(
        eventually(Duration::from_secs(60), || ferry
            .ok(&["get", "pvc,pv", "-o", "name"])
            .is_empty()
            && volume_dirs(agent_dir).is_empty()),
        "left: {} {:?}",
        ferry.ok(&["get", "pvc,pv"]),
        volume_dirs(agent_dir)
    );

    // A claim of the same name made by hand is not the pod's: the pod waits, and says why.
    ferry.apply_yaml(
        "apply",
        "apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: taken-work}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 32Mi}}}
",
    );
    ferry.apply_yaml("apply", &pod("taken"));
    let why = "PVC default/taken-work was not created for pod default/taken (pod is not owner)";
    assert!(
        eventually(Duration::from_secs(30), || ferry
            .ok(&[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=taken",
                "-o",
                "jsonpath={.items[*].message}"
            ])
            .contains(why)),
        "no event saying {why:?}: {}",
        ferry.ok(&["get", "events", "--sort-by=.lastTimestamp"])
    );
    assert_eq!(jsonpath(ferry, "pod/taken", "{.status.phase}"), "Pending");
    ferry.ok(&["delete", "pod", "taken", "--wait=true"]);
    ferry.ok(&["delete", "pvc", "taken-work", "--wait=true"]);
}
