//! Black-box tests of the DaemonSet and StatefulSet controllers: a real `ferry server` with
//! `ferry sim` nodes, driven by the real kubectl — one pod per eligible node, rollouts,
//! history and undo; ordered pods with stable names and claims that outlive them.

mod common;

use std::time::Duration;

use common::{eventually, Ferry, Sim};

fn start(nodes: usize) -> (Ferry, Sim, tempfile::TempDir) {
    common::with_sim_nodes(nodes, &[])
}

/// `name node image` of each live pod matching `selector`, sorted.
fn pods(ferry: &Ferry, selector: &str) -> Vec<String> {
    let out = ferry.ok(&[
        "get",
        "pods",
        "-l",
        selector,
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.spec.containers[0].image} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
    ]);
    let mut lines: Vec<String> = out
        .lines()
        .filter(|l| l.split(' ').nth(3).is_none_or(str::is_empty))
        .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .collect();
    lines.sort();
    lines
}

fn jsonpath(ferry: &Ferry, object: &str, path: &str) -> String {
    ferry.ok(&["get", object, "-o", &format!("jsonpath={path}")])
}

const DAEMONSET: &str = "apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: 'registry.local/agent:1'}]
";

#[test]
fn daemonsets_run_one_pod_per_eligible_node() {
    let (ferry, _sim, _dir) = start(3);
    // A node with a NoSchedule taint gets no daemon pod; the cordon taint is tolerated.
    ferry.ok(&["taint", "nodes", "sim-2", "dedicated=db:NoSchedule"]);
    ferry.ok(&["cordon", "sim-1"]);
    ferry.apply_yaml("apply", DAEMONSET);
    ferry.ok(&["rollout", "status", "daemonset/agent", "--timeout=60s"]);
    let running = pods(&ferry, "app=agent");
    let mut nodes: Vec<&str> = running
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap())
        .collect();
    nodes.sort();
    assert_eq!(nodes, vec!["sim-0", "sim-1"], "{running:?}");
    assert_eq!(
        jsonpath(
            &ferry,
            "daemonset/agent",
            "{.status.desiredNumberScheduled} {.status.currentNumberScheduled} {.status.numberReady} {.status.updatedNumberScheduled} {.status.numberAvailable}"
        ),
        "2 2 2 2 2"
    );
    // Pods are pinned by node affinity, carry the tolerations and the revision hash.
    let pod = running[0].split(' ').next().unwrap().to_string();
    let affinity = jsonpath(
        &ferry,
        &format!("pod/{pod}"),
        "{.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[0].key}",
    );
    assert_eq!(affinity, "metadata.name");
    let tolerations = jsonpath(&ferry, &format!("pod/{pod}"), "{.spec.tolerations[*].key}");
    assert!(
        tolerations.contains("node.kubernetes.io/unschedulable"),
        "{tolerations}"
    );
    let labels = jsonpath(&ferry, &format!("pod/{pod}"), "{.metadata.labels}");
    assert!(
        labels.contains("controller-revision-hash") && labels.contains("pod-template-generation"),
        "{labels}"
    );

    // The taint goes: the node gets its pod.
    ferry.ok(&["taint", "nodes", "sim-2", "dedicated-"]);
    assert!(
        eventually(Duration::from_secs(30), || pods(&ferry, "app=agent").len()
            == 3),
        "{:?}",
        pods(&ferry, "app=agent")
    );
    ferry.ok(&["rollout", "status", "daemonset/agent", "--timeout=60s"]);

    // A new image rolls out node by node; history and undo.
    ferry.ok(&[
        "set",
        "image",
        "daemonset/agent",
        "agent=registry.local/agent:2",
    ]);
    ferry.ok(&["rollout", "status", "daemonset/agent", "--timeout=90s"]);
    assert!(
        eventually(Duration::from_secs(20), || pods(&ferry, "app=agent")
            .iter()
            .filter(|l| l.ends_with("agent:2"))
            .count()
            == 3),
        "{:?}",
        pods(&ferry, "app=agent")
    );
    let history = ferry.ok(&["rollout", "history", "daemonset/agent"]);
    assert!(
        history.contains("1 ") && history.contains("2 "),
        "{history}"
    );
    let revisions = ferry.ok(&[
        "get",
        "controllerrevisions",
        "-l",
        "app=agent",
        "--no-headers",
    ]);
    assert_eq!(revisions.lines().count(), 2, "{revisions}");
    ferry.ok(&["rollout", "undo", "daemonset/agent"]);
    ferry.ok(&["rollout", "status", "daemonset/agent", "--timeout=90s"]);
    assert!(
        eventually(Duration::from_secs(20), || pods(&ferry, "app=agent")
            .iter()
            .filter(|l| l.ends_with("agent:1"))
            .count()
            == 3),
        "{:?}",
        pods(&ferry, "app=agent")
    );
    // The old revision came back as revision 3.
    let numbers = jsonpath(&ferry, "controllerrevisions", "{.items[*].revision}");
    let mut numbers: Vec<&str> = numbers.split(' ').collect();
    numbers.sort();
    assert_eq!(numbers, vec!["2", "3"]);

    // A nodeSelector limits the set; a deleted pod comes back.
    ferry.ok(&["label", "nodes", "sim-0", "role=edge"]);
    ferry.ok(&[
        "patch",
        "daemonset/agent",
        "-p",
        r#"{"spec":{"template":{"spec":{"nodeSelector":{"role":"edge"}}}}}"#,
    ]);
    assert!(
        eventually(Duration::from_secs(60), || {
            let p = pods(&ferry, "app=agent");
            p.len() == 1 && p[0].contains(" sim-0 ")
        }),
        "{:?}",
        pods(&ferry, "app=agent")
    );
    let only = pods(&ferry, "app=agent")[0]
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    ferry.ok(&["delete", "pod", &only, "--wait=false"]);
    assert!(
        eventually(Duration::from_secs(30), || {
            let p = pods(&ferry, "app=agent");
            p.len() == 1 && !p[0].starts_with(&only)
        }),
        "{:?}",
        pods(&ferry, "app=agent")
    );
    // Deleting the set deletes its pods and revisions.
    ferry.ok(&["delete", "daemonset/agent"]);
    assert!(
        eventually(Duration::from_secs(30), || pods(&ferry, "app=agent")
            .is_empty()
            && ferry
                .ok(&[
                    "get",
                    "controllerrevisions",
                    "-l",
                    "app=agent",
                    "-o",
                    "name"
                ])
                .is_empty()),
        "{:?}",
        pods(&ferry, "app=agent")
    );
}

const STATEFULSET: &str = "apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 3
  selector: {matchLabels: {app: web}}
  persistentVolumeClaimRetentionPolicy: {whenScaled: Retain, whenDeleted: Delete}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: 'registry.local/web:1'}]
  volumeClaimTemplates:
  - metadata: {name: www}
    spec:
      accessModes: [ReadWriteOnce]
      storageClassName: manual
      resources: {requests: {storage: 1Gi}}
";

/// Volumes for the StatefulSet's claims (sim nodes run no storage driver).
fn manual_volumes(count: usize) -> String {
    (0..count)
        .map(|i| {
            format!(
                "apiVersion: v1
kind: PersistentVolume
metadata: {{name: manual-{i}}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  storageClassName: manual
  hostPath: {{path: /tmp/ferry-test-manual-{i}}}
"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

#[test]
fn statefulsets_keep_names_order_and_claims() {
    let (ferry, _sim, _dir) = start(2);
    ferry.apply_yaml("apply", &manual_volumes(3));
    ferry.apply_yaml("apply", STATEFULSET);
    ferry.ok(&["rollout", "status", "statefulset/web", "--timeout=60s"]);
    let names: Vec<String> = pods(&ferry, "app=web")
        .iter()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["web-0", "web-1", "web-2"]);
    // OrderedReady: each pod was created after the one before was Ready.
    let created = |pod: &str| {
        jsonpath(
            &ferry,
            &format!("pod/{pod}"),
            "{.metadata.creationTimestamp}",
        )
    };
    assert!(created("web-0") <= created("web-1") && created("web-1") <= created("web-2"));
    let events = ferry.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=StatefulSet,reason=SuccessfulCreate",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(
        events.contains("create Pod web-0 in StatefulSet web successful")
            && events.contains("create Claim www-web-0 Pod web-0 in StatefulSet web success"),
        "{events}"
    );
    // Identity: hostname, subdomain, labels, the claim as a volume.
    assert_eq!(
        jsonpath(
            &ferry,
            "pod/web-1",
            "{.spec.hostname} {.spec.subdomain} {.metadata.labels.statefulset\\.kubernetes\\.io/pod-name} {.metadata.labels.apps\\.kubernetes\\.io/pod-index} {.spec.volumes[0].persistentVolumeClaim.claimName}"
        ),
        "web-1 web web-1 1 www-web-1"
    );
    let claims = ferry.ok(&["get", "pvc", "-o", "name"]);
    assert_eq!(
        claims.lines().collect::<Vec<_>>(),
        vec![
            "persistentvolumeclaim/www-web-0",
            "persistentvolumeclaim/www-web-1",
            "persistentvolumeclaim/www-web-2"
        ]
    );
    // whenDeleted: Delete makes the set an owner of each claim.
    assert_eq!(
        jsonpath(
            &ferry,
            "pvc/www-web-0",
            "{.metadata.ownerReferences[0].kind}"
        ),
        "StatefulSet"
    );

    // A deleted pod comes back with the same name and claim.
    let uid = jsonpath(&ferry, "pod/web-1", "{.metadata.uid}");
    ferry.ok(&["delete", "pod", "web-1", "--wait=false"]);
    assert!(
        eventually(Duration::from_secs(30), || {
            let now = ferry.kubectl(&[
                "get",
                "pod/web-1",
                "-o",
                "jsonpath={.metadata.uid} {.status.phase}",
            ]);
            let out = String::from_utf8_lossy(&now.stdout).to_string();
            !out.starts_with(&uid) && out.ends_with("Running")
        }),
        "web-1 not recreated"
    );

    // An update rolls from the top down; the status names both revisions until it is done.
    ferry.ok(&[
        "set",
        "image",
        "statefulset/web",
        "web=registry.local/web:2",
    ]);
    ferry.ok(&["rollout", "status", "statefulset/web", "--timeout=90s"]);
    assert!(
        pods(&ferry, "app=web").iter().all(|l| l.ends_with("web:2")),
        "{:?}",
        pods(&ferry, "app=web")
    );
    let (current, update) = (
        jsonpath(&ferry, "statefulset/web", "{.status.currentRevision}"),
        jsonpath(&ferry, "statefulset/web", "{.status.updateRevision}"),
    );
    assert_eq!(current, update);
    assert!(current.starts_with("web-"), "{current}");
    assert_eq!(
        jsonpath(
            &ferry,
            "pod/web-0",
            "{.metadata.labels.controller-revision-hash}"
        ),
        update
    );
    let history = ferry.ok(&["rollout", "history", "statefulset/web"]);
    assert!(
        history.contains("1 ") && history.contains("2 "),
        "{history}"
    );

    // A partition keeps the lower ordinals on the old template.
    ferry.ok(&[
        "patch",
        "statefulset/web",
        "-p",
        r#"{"spec":{"updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"partition":2}}}}"#,
    ]);
    ferry.ok(&[
        "set",
        "image",
        "statefulset/web",
        "web=registry.local/web:3",
    ]);
    ferry.ok(&["rollout", "status", "statefulset/web", "--timeout=90s"]);
    assert_eq!(
        pods(&ferry, "app=web")
            .iter()
            .map(|l| l.rsplit(':').next().unwrap().to_string())
            .collect::<Vec<_>>(),
        vec!["2", "2", "3"]
    );

    // Scaling down removes the highest ordinals and keeps their claims (whenScaled: Retain).
    ferry.ok(&["scale", "statefulset/web", "--replicas=1"]);
    assert!(
        eventually(Duration::from_secs(60), || pods(&ferry, "app=web").len()
            == 1),
        "{:?}",
        pods(&ferry, "app=web")
    );
    assert!(pods(&ferry, "app=web")[0].starts_with("web-0 "));
    assert_eq!(ferry.ok(&["get", "pvc", "-o", "name"]).lines().count(), 3);

    // Deleting the set removes its pods, and its claims through the owner references.
    ferry.ok(&["delete", "statefulset/web"]);
    assert!(
        eventually(Duration::from_secs(60), || pods(&ferry, "app=web")
            .is_empty()
            && ferry.ok(&["get", "pvc", "-o", "name"]).is_empty()),
        "pods {:?}, claims {}",
        pods(&ferry, "app=web"),
        ferry.ok(&["get", "pvc", "-o", "name"])
    );
}

const VOLUMES: &str = "apiVersion: v1
kind: PersistentVolume
metadata: {name: keep}
spec:
  capacity: {storage: 5Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ''
  hostPath: {path: /tmp/ferry-test-keep}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: small}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Delete
  storageClassName: ''
  hostPath: {path: /tmp/ferry-test-small}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: later}
provisioner: example.com/nothing
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: now}
provisioner: example.com/nothing
";

fn claim(name: &str, size: &str, class: &str) -> String {
    format!(
        "apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: {name}}}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: '{class}'
  resources: {{requests: {{storage: {size}}}}}
"
    )
}

fn events_for(ferry: &Ferry, name: &str) -> String {
    ferry.ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={name}"),
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
    ])
}

#[test]
fn claims_bind_to_volumes_and_release_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ferry = Ferry::start_in(dir.path(), &[]);
    ferry.apply_yaml("apply", VOLUMES);
    assert!(
        eventually(Duration::from_secs(20), || jsonpath(
            &ferry,
            "pv",
            "{.items[*].status.phase}"
        ) == "Available Available"),
        "{}",
        ferry.ok(&["get", "pv"])
    );
    // The smallest volume that fits is bound, both ways.
    ferry.apply_yaml("apply", &claim("data", "1Gi", ""));
    assert!(
        eventually(Duration::from_secs(20), || jsonpath(
            &ferry,
            "pvc/data",
            "{.status.phase}"
        ) == "Bound"),
        "{}",
        ferry.ok(&["get", "pvc", "-o", "yaml"])
    );
    assert_eq!(
        jsonpath(
            &ferry,
            "pvc/data",
            "{.spec.volumeName} {.status.capacity.storage} {.status.accessModes[0]}"
        ),
        "small 1Gi ReadWriteOnce"
    );
    assert!(
        eventually(Duration::from_secs(10), || jsonpath(
            &ferry,
            "pv/small",
            "{.status.phase} {.spec.claimRef.namespace}/{.spec.claimRef.name}"
        ) == "Bound default/data"),
        "{}",
        ferry.ok(&["get", "pv"])
    );
    let table = ferry.ok(&["get", "pv", "small", "--no-headers"]);
    assert!(
        table.contains("Bound") && table.contains("default/data"),
        "{table}"
    );
    // Too big for any volume, and no class to provision one.
    ferry.apply_yaml("apply", &claim("huge", "50Gi", ""));
    assert!(
        eventually(Duration::from_secs(10), || {
            events_for(&ferry, "huge")
            .contains("FailedBinding: no persistent volumes available for this claim and no storage class is set")
        }),
        "{}",
        events_for(&ferry, "huge")
    );
    assert_eq!(jsonpath(&ferry, "pvc/huge", "{.status.phase}"), "Pending");
    // A class that waits for the first consumer; one that provisions at once.
    ferry.apply_yaml("apply", &claim("lazy", "1Gi", "later"));
    ferry.apply_yaml("apply", &claim("eager", "1Gi", "now"));
    assert!(
        eventually(Duration::from_secs(10), || events_for(&ferry, "lazy")
            .contains(
                "WaitForFirstConsumer: waiting for first consumer to be created before binding"
            )),
        "{}",
        events_for(&ferry, "lazy")
    );
    assert!(
        eventually(Duration::from_secs(10), || {
            events_for(&ferry, "eager").contains(
            "ExternalProvisioning: Waiting for a volume to be created either by the external provisioner 'example.com/nothing'"
        )
        }),
        "{}",
        events_for(&ferry, "eager")
    );
    assert_eq!(
        jsonpath(
            &ferry,
            "pvc/eager",
            "{.metadata.annotations.volume\\.kubernetes\\.io/storage-provisioner}"
        ),
        "example.com/nothing"
    );
    // A bound claim grows, never shrinks; an unbound one keeps its size.
    let refused = ferry.fails(&[
        "patch",
        "pvc/data",
        "-p",
        r#"{"spec":{"resources":{"requests":{"storage":"500Mi"}}}}"#,
    ]);
    assert!(
        refused.contains(
            "spec.resources.requests.storage: Forbidden: field can not be less than previous value"
        ),
        "{refused}"
    );
    // Growing needs a class that allows expansion (PersistentVolumeClaimResize).
    let refused = ferry.fails(&[
        "patch",
        "pvc/data",
        "-p",
        r#"{"spec":{"resources":{"requests":{"storage":"2Gi"}}}}"#,
    ]);
    assert!(
        refused.contains("persistentvolumeclaims \"data\" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"),
        "{refused}"
    );
    assert_eq!(
        jsonpath(&ferry, "pvc/data", "{.metadata.finalizers[0]}"),
        "kubernetes.io/pvc-protection"
    );
    let refused = ferry.fails(&[
        "patch",
        "pvc/huge",
        "-p",
        r#"{"spec":{"resources":{"requests":{"storage":"60Gi"}}}}"#,
    ]);
    assert!(
        refused.contains("spec is immutable after creation"),
        "{refused}"
    );
    // The claim goes: a Delete volume without a provisioner fails, a Retain one is Released.
    ferry.apply_yaml("apply", &claim("kept", "2Gi", ""));
    assert!(
        eventually(Duration::from_secs(20), || jsonpath(
            &ferry,
            "pvc/kept",
            "{.status.phase} {.spec.volumeName}"
        ) == "Bound keep"),
        "{}",
        ferry.ok(&["get", "pvc"])
    );
    ferry.ok(&["delete", "pvc", "data", "kept"]);
    assert!(
        eventually(Duration::from_secs(20), || jsonpath(
            &ferry,
            "pv/keep",
            "{.status.phase}"
        ) == "Released"
            && jsonpath(&ferry, "pv/small", "{.status.phase}") == "Failed"),
        "{}",
        ferry.ok(&["get", "pv"])
    );
    assert!(
        events_for(&ferry, "small").contains("VolumeFailedDelete"),
        "{}",
        events_for(&ferry, "small")
    );
}

const LOCAL_STORAGE: &str = "apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: local-on-sim-1}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: local
  local: {path: /mnt/disks/one}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [sim-1]}]
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: dynamic}
provisioner: example.com/external
volumeBindingMode: WaitForFirstConsumer
";

fn pod_with_claim(name: &str, claim: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  containers: [{{name: app, image: 'registry.local/app:1'}}]
  volumes: [{{name: data, persistentVolumeClaim: {{claimName: {claim}}}}}]
"
    )
}

#[test]
fn pods_are_scheduled_where_their_volumes_can_be() {
    let (ferry, _sim, _dir) = start(3);
    ferry.apply_yaml("apply", LOCAL_STORAGE);
    // A claim waiting for its consumer: the pod goes to the node of the only local volume,
    // and the scheduler binds the claim to it.
    ferry.apply_yaml("apply", &claim("near", "1Gi", "local"));
    ferry.apply_yaml("apply", &pod_with_claim("user", "near"));
    assert!(
        eventually(Duration::from_secs(30), || jsonpath(
            &ferry,
            "pod/user",
            "{.spec.nodeName} {.status.phase}"
        ) == "sim-1 Running"),
        "{}",
        ferry.ok(&["get", "pod/user", "-o", "wide"])
    );
    assert_eq!(
        jsonpath(&ferry, "pvc/near", "{.status.phase} {.spec.volumeName}"),
        "Bound local-on-sim-1"
    );
    // A claim in use stays until its pod goes (pvc-protection).
    ferry.ok(&["delete", "pvc", "near", "--wait=false"]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !jsonpath(&ferry, "pvc/near", "{.metadata.deletionTimestamp}").is_empty(),
        "the claim in use went"
    );
    ferry.ok(&["delete", "pod", "user", "--wait=true"]);
    assert!(
        eventually(Duration::from_secs(20), || ferry
            .ok(&["get", "pvc", "-o", "name"])
            .lines()
            .all(|l| l != "persistentvolumeclaim/near")),
        "the claim stayed after its pod: {}",
        ferry.ok(&["get", "pvc"])
    );
    // No volume left for a second claim of the class: the pod waits, saying why.
    ferry.apply_yaml("apply", &claim("far", "1Gi", "local"));
    ferry.apply_yaml("apply", &pod_with_claim("waiting", "far"));
    assert!(
        eventually(Duration::from_secs(20), || events_for(&ferry, "waiting")
            .contains(
                "node(s) didn't find available persistent volumes to bind"
            )),
        "{}",
        events_for(&ferry, "waiting")
    );
    // A missing claim.
    ferry.apply_yaml("apply", &pod_with_claim("orphan", "nope"));
    assert!(
        eventually(Duration::from_secs(20), || events_for(&ferry, "orphan")
            .contains("persistentvolumeclaim \"nope\" not found")),
        "{}",
        events_for(&ferry, "orphan")
    );
    // A class with a provisioner: the claim gets the chosen node for it.
    ferry.apply_yaml("apply", &claim("made", "1Gi", "dynamic"));
    ferry.apply_yaml("apply", &pod_with_claim("consumer", "made"));
    assert!(
        eventually(Duration::from_secs(20), || !jsonpath(
            &ferry,
            "pvc/made",
            "{.metadata.annotations.volume\\.kubernetes\\.io/selected-node}"
        )
        .is_empty()),
        "{}",
        ferry.ok(&["get", "pvc/made", "-o", "yaml"])
    );
    assert!(
        eventually(Duration::from_secs(10), || jsonpath(
            &ferry,
            "pvc/made",
            "{.metadata.annotations.volume\\.kubernetes\\.io/storage-provisioner}"
        ) == "example.com/external"),
        "{}",
        ferry.ok(&["get", "pvc/made", "-o", "yaml"])
    );
    assert_eq!(jsonpath(&ferry, "pod/consumer", "{.spec.nodeName}"), "");
}

/// StatefulSets, DaemonSets and CronJobs are validated as upstream validates them: kubectl
/// prints upstream's field paths and messages, schedules are read by the controller's parser.
#[test]
fn workload_validation_is_worded_as_upstream() {
    let ferry = Ferry::start();
    let schedule = ferry.fails(&[
        "create",
        "cronjob",
        "tick",
        "--image=busybox",
        "--schedule=61 * * * *",
    ]);
    assert!(schedule.contains("CronJob.batch \"tick\" is invalid: spec.schedule: Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61"), "{schedule}");
    let long = "a".repeat(53);
    let named = ferry.fails(&[
        "create",
        "cronjob",
        &long,
        "--image=busybox",
        "--schedule=@daily",
    ]);
    assert!(
        named.contains(&format!(
            "metadata.name: Invalid value: \"{long}\": must be no more than 52 characters"
        )),
        "{named}"
    );
    ferry.ok(&[
        "create",
        "cronjob",
        "nightly",
        "--image=busybox",
        "--schedule=30 2 * * MON-FRI",
    ]);
    ferry.ok(&[
        "patch",
        "cronjob/nightly",
        "-p",
        r#"{"spec":{"timeZone":"Europe/Berlin"}}"#,
    ]);
    let cron_job = |extra: &str| {
        format!("apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: tick\n  namespace: default\nspec:\n  schedule: '*/5 * * * *'\n{extra}  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers: [{{name: c, image: busybox}}]\n")
    };
    // kubectl lists several causes one per line.
    let zone = ferry.create_err(&cron_job("  timeZone: Mars/Olympus\n"));
    assert!(zone.contains("The CronJob \"tick\" is invalid: \n* spec.timeZone: Invalid value: \"Mars/Olympus\": unknown time zone Mars/Olympus\n* spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"\n"), "{zone}");

    let stateful_set = |name: &str, restart: &str| {
        format!("apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  serviceName: {name}\n  replicas: 0\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      restartPolicy: {restart}\n      containers: [{{name: c, image: busybox}}]\n")
    };
    let never = ferry.create_err(&stateful_set("once", "Never"));
    assert!(never.contains("The StatefulSet \"once\" is invalid: spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""), "{never}");
    ferry.apply_yaml("create", &stateful_set("db", "Always"));
    ferry.ok(&["scale", "statefulset/db", "--replicas=0"]);
    let fixed = ferry.fails(&[
        "patch",
        "statefulset/db",
        "-p",
        r#"{"spec":{"serviceName":"other"}}"#,
    ]);
    assert!(fixed.contains("The StatefulSet \"db\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"), "{fixed}");

    let daemon_set = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: agent\n  namespace: default\nspec:\n  selector: {matchLabels: {app: agent}}\n  updateStrategy:\n    rollingUpdate: {maxUnavailable: 0, maxSurge: 0}\n  template:\n    metadata: {labels: {app: agent}}\n    spec:\n      containers: [{name: c, image: busybox}]\n";
    let stuck = ferry.create_err(daemon_set);
    assert!(stuck.contains("The DaemonSet \"agent\" is invalid: spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"), "{stuck}");
}
