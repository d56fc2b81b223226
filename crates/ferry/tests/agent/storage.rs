//! Storage end to end on the local node: the server's default `local` StorageClass, the
//! agent's `local.csi.ferry.dev` driver and provisioner, the scheduler's VolumeBinding and the
//! kubelet's CSI stage (one global mount per volume on the node) and publish. A StatefulSet's pods each get a volume that outlives them, a claim
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

/// The volumes the kubelet staged: the directories under
/// `<agent dir>/plugins/kubernetes.io/csi/local.csi.ferry.dev`, one per volume
/// (`<sha256(volume handle)>`, holding the `globalmount`).
fn staged_volumes(agent_dir: &Path) -> Vec<String> {
    let dir = agent_dir.join("plugins/kubernetes.io/csi/local.csi.ferry.dev");
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().join("globalmount").is_dir())
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
    // Each volume was staged once on the node, at upstream's global mount path.
    assert_eq!(
        staged_volumes(agent_dir).len(),
        2,
        "{:?}",
        staged_volumes(agent_dir)
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
    // The last pod using each volume gone, the kubelet unstaged them.
    assert!(
        eventually(Duration::from_secs(30), || staged_volumes(agent_dir)
            .is_empty()),
        "still staged: {:?}",
        staged_volumes(agent_dir)
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

/// The CSIDriver `local.csi.ferry.dev` with `attachRequired: true` instead of the server's
/// `false` (the field is immutable: the driver is made again).
fn driver_requiring_attach(ferry: &Ferry, required: bool) {
    ferry.ok(&["delete", "csidriver", "local.csi.ferry.dev", "--wait=true"]);
    ferry.apply_yaml(
        "create",
        &format!(
            "apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata: {{name: local.csi.ferry.dev}}
spec: {{attachRequired: {required}, podInfoOnMount: false, storageCapacity: true, fsGroupPolicy: File,
  volumeLifecycleModes: [Persistent], requiresRepublish: false, seLinuxMount: false}}
"
        ),
    );
}

/// With a driver that requires attaching, a pod's volume goes through upstream's attach path:
/// the attach-detach controller makes the VolumeAttachment, the driver's attacher publishes the
/// volume to the node and marks it attached, the kubelet waits for that before staging, and the
/// Node reports the volume attached and in use; with the pod gone, the attachment goes.
pub fn attached_volumes_come_and_go(ferry: &Ferry, node: &str) {
    driver_requiring_attach(ferry, true);
    ferry.apply_yaml(
        "apply",
        &format!(
            "apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: attached}}
spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 32Mi}}}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: attached}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: {BUSYBOX}
    command: [sh, -c, 'echo attached > /data/file; sleep 3600']
    volumeMounts: [{{name: data, mountPath: /data}}]
  volumes:
  - name: data
    persistentVolumeClaim: {{claimName: attached}}
"
        ),
    );
    let ready = ferry.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/attached",
        "--timeout=120s",
    ]);
    assert!(
        ready.status.success(),
        "{}\n{}\n{}",
        String::from_utf8_lossy(&ready.stderr),
        ferry.ok(&["get", "pods,pvc,pv,volumeattachments", "-o", "wide"]),
        ferry.ok(&["get", "events", "--sort-by=.lastTimestamp"])
    );
    let pv = jsonpath(ferry, "pvc/attached", "{.spec.volumeName}");
    let attachments = ferry.ok(&[
        "get",
        "volumeattachments",
        "-o",
        "jsonpath={range .items[*]}{.spec.attacher} {.spec.nodeName} {.spec.source.persistentVolumeName} {.status.attached}{\"\\n\"}{end}",
    ]);
    assert_eq!(
        attachments.trim(),
        format!("local.csi.ferry.dev {node} {pv} true"),
        "{attachments}"
    );
    assert!(
        eventually(Duration::from_secs(30), || jsonpath(
            ferry,
            &format!("node/{node}"),
            "{.status.volumesAttached[*].name} {.status.volumesInUse[*]}"
        )
        .contains(&format!("kubernetes.io/csi/local.csi.ferry.dev^"))),
        "the node does not report the volume: {}",
        jsonpath(
            ferry,
            &format!("node/{node}"),
            "{.status.volumesAttached} {.status.volumesInUse}"
        )
    );
    assert_eq!(
        ferry.ok(&["exec", "attached", "--", "cat", "/data/file"]),
        "attached\n"
    );

    ferry.ok(&["delete", "pod", "attached", "--wait=true"]);
    assert!(
        eventually(Duration::from_secs(120), || ferry
            .ok(&["get", "volumeattachments", "-o", "name"])
            .is_empty()),
        "the attachment stays: {}",
        ferry.ok(&["get", "volumeattachments", "-o", "yaml"])
    );
    ferry.ok(&["delete", "pvc", "attached", "--wait=true"]);
    driver_requiring_attach(ferry, false);
}
