//! Black-box tests of the control loop: a real `ferry server` (controllers and scheduler in
//! process) with `ferry sim` nodes, driven by the real kubectl — Deployments roll out,
//! scheduling failures are explained, nodes die and their pods move, deletions cascade.

mod common;

use std::time::Duration;

use common::{eventually, Ferry, Sim};

const FAST_NODES: &[&str] = &[
    "--node-monitor-period",
    "1s",
    "--node-monitor-grace-period",
    "4s",
];

fn start(nodes: usize) -> (Ferry, Sim, tempfile::TempDir) {
    common::with_sim_nodes(nodes, FAST_NODES)
}

fn running_pods(ferry: &Ferry, selector: &str) -> Vec<(String, String)> {
    let out = ferry.ok(&[
        "get",
        "pods",
        "-l",
        selector,
        "--field-selector=status.phase=Running",
        "-o",
        "jsonpath={range .items[?(@.metadata.deletionTimestamp)]}{end}{range .items[*]}{.metadata.name} {.spec.nodeName}{\"\\n\"}{end}",
    ]);
    out.lines()
        .filter_map(|l| {
            l.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        })
        .collect()
}

fn deployment(name: &str, replicas: u32, extra_spec: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: app, image: 'registry.local/app:1'}}]
{extra_spec}"
    )
}

#[test]
fn deployment_rolls_out_on_sim_nodes() {
    let (ferry, _sim, _dir) = start(3);
    ferry.apply_yaml("apply", &deployment("web", 3, ""));
    assert!(
        eventually(Duration::from_secs(30), || running_pods(&ferry, "app=web")
            .len()
            == 3),
        "3 pods Running: {}",
        ferry.ok(&["get", "pods", "-o", "wide"])
    );
    ferry.ok(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    // Deployment → ReplicaSet → Pod, by controller references.
    let rs = ferry.ok(&["get", "rs", "-l", "app=web", "-o", "jsonpath={.items[0].metadata.ownerReferences[0].kind}/{.items[0].metadata.ownerReferences[0].name} {.items[0].metadata.name}"]);
    let (owner, rs_name) = rs.split_once(' ').expect("rs");
    assert_eq!(owner, "Deployment/web");
    let pod_owners = ferry.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].metadata.ownerReferences[0].name}",
    ]);
    assert!(pod_owners.split(' ').all(|o| o == rs_name), "{pod_owners}");
    let nodes: Vec<String> = running_pods(&ferry, "app=web")
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert!(nodes.iter().all(|n| n.starts_with("sim-")), "{nodes:?}");
    let events = ferry.ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=Scheduled",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(
        events.contains("Successfully assigned default/web-"),
        "{events}"
    );

    // A new image rolls out; the old ReplicaSet ends at zero.
    ferry.ok(&["set", "image", "deployment/web", "app=registry.local/app:2"]);
    ferry.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    // `rollout status` is done once the new pods are available; the old set's status follows
    // its scale-down a moment later.
    let mut sets = String::new();
    assert!(
        eventually(Duration::from_secs(10), || {
            sets = ferry.ok(&[
                "get",
                "rs",
                "-l",
                "app=web",
                "-o",
                "jsonpath={range .items[*]}{.metadata.name}={.spec.replicas}/{.status.replicas} {end}",
            ]);
            sets.contains(&format!("{rs_name}=0/0"))
        }),
        "old replicaset scaled to 0: {sets}"
    );
    let history = ferry.ok(&["rollout", "history", "deployment/web"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");

    // Undo brings the first template back as revision 3.
    ferry.ok(&["rollout", "undo", "deployment/web"]);
    ferry.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let image = ferry.ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(image, "registry.local/app:1");
    let revision = ferry.ok(&[
        "get",
        "rs",
        rs_name,
        "-o",
        "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision} {.spec.replicas}",
    ]);
    assert_eq!(revision, "3 3");

    // Scale up.
    ferry.ok(&["scale", "deployment/web", "--replicas=10"]);
    assert!(
        eventually(Duration::from_secs(30), || running_pods(&ferry, "app=web")
            .len()
            == 10),
        "10 pods Running: {}",
        ferry.ok(&["get", "pods", "-o", "wide"])
    );
    let status = ferry.ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.status.readyReplicas}/{.status.updatedReplicas}/{.status.availableReplicas}",
    ]);
    assert!(
        eventually(Duration::from_secs(20), || ferry.ok(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.status.availableReplicas}"
        ]) == "10"),
        "{status}"
    );
}

#[test]
fn unschedulable_pods_say_why() {
    let (ferry, _sim, _dir) = start(3);
    ferry.ok(&["taint", "node", "sim-0", "dedicated=infra:NoSchedule"]);
    // 32 cores per sim node: 40 fits nowhere.
    let big = "apiVersion: v1
kind: Pod
metadata: {name: big}
spec:
  containers: [{name: app, image: 'registry.local/app:1', resources: {requests: {cpu: '40'}}}]
";
    ferry.apply_yaml("create", big);
    let want = "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: infra}, 2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod.";
    let message = || {
        ferry.ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=big,reason=FailedScheduling",
            "-o",
            "jsonpath={.items[*].message}",
        ])
    };
    assert!(
        eventually(Duration::from_secs(20), || message().contains(want)),
        "FailedScheduling: {:?}",
        message()
    );
    let condition = ferry.ok(&[
        "get",
        "pod",
        "big",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].reason} {.status.phase}",
    ]);
    assert_eq!(condition, "Unschedulable Pending");
    let describe = ferry.ok(&["describe", "pod", "big"]);
    assert!(describe.contains("FailedScheduling"), "{describe}");
}

#[test]
fn anti_affinity_and_default_spreading_spread_pods_over_nodes() {
    let (ferry, _sim, _dir) = start(3);
    let spec = "      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: spread}}
            topologyKey: kubernetes.io/hostname
";
    ferry.apply_yaml("apply", &deployment("spread", 4, spec));
    assert!(
        eventually(Duration::from_secs(30), || running_pods(
            &ferry,
            "app=spread"
        )
        .len()
            == 3),
        "{}",
        ferry.ok(&["get", "pods", "-o", "wide"])
    );
    let mut nodes: Vec<String> = running_pods(&ferry, "app=spread")
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    nodes.sort();
    nodes.dedup();
    assert_eq!(nodes.len(), 3, "one pod per node: {nodes:?}");
    // The fourth has nowhere to go.
    let pending = ferry.ok(&[
        "get",
        "pods",
        "-l",
        "app=spread",
        "--field-selector=status.phase=Pending",
        "-o",
        "name",
    ]);
    assert_eq!(pending.lines().count(), 1, "{pending}");

    // Without constraints of their own, a Deployment's pods spread as upstream's system
    // default constraints put them: evenly over identical nodes (sim nodes have no zone
    // label). Three rounds of 3, 6 and 9 replicas: an even split by chance of all nine is
    // about one in 10^8.
    for round in 0..3 {
        for replicas in [3usize, 6, 9] {
            let name = format!("even-{round}-{replicas}");
            ferry.apply_yaml("apply", &deployment(&name, replicas as u32, ""));
            let selector = format!("app={name}");
            let scheduled = || {
                ferry
                    .ok(&[
                        "get",
                        "pods",
                        "-l",
                        &selector,
                        "-o",
                        "jsonpath={range .items[*]}{.spec.nodeName}{\"\\n\"}{end}",
                    ])
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect::<Vec<String>>()
            };
            assert!(
                eventually(Duration::from_secs(30), || scheduled().len() == replicas),
                "{name}: {:?}",
                scheduled()
            );
            let nodes = scheduled();
            let per_node: Vec<usize> = ["sim-0", "sim-1", "sim-2"]
                .iter()
                .map(|n| nodes.iter().filter(|m| m == n).count())
                .collect();
            assert_eq!(
                per_node,
                [replicas / 3; 3],
                "{name} is not spread evenly: {nodes:?}"
            );
        }
    }
}

#[test]
fn pods_of_a_dead_node_are_evicted_and_replaced() {
    let (ferry, _sim, _dir) = start(3);
    // Short tolerations of unreachable nodes, so eviction comes in seconds, not 300.
    let spec = "      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
";
    ferry.apply_yaml("apply", &deployment("hardy", 3, spec));
    assert!(
        eventually(Duration::from_secs(30), || running_pods(
            &ferry,
            "app=hardy"
        )
        .len()
            == 3),
        "{}",
        ferry.ok(&["get", "pods", "-o", "wide"])
    );
    let victim_node = running_pods(&ferry, "app=hardy")[0].1.clone();
    ferry.ok(&["annotate", "node", &victim_node, "sim.ferry.dev/down=true"]);
    let ready = || {
        ferry.ok(&[
            "get",
            "node",
            &victim_node,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ])
    };
    assert!(
        eventually(Duration::from_secs(20), || ready() == "Unknown"),
        "node went Unknown: {}",
        ready()
    );
    let taints = ferry.ok(&[
        "get",
        "node",
        &victim_node,
        "-o",
        "jsonpath={.spec.taints[*].key}",
    ]);
    assert!(
        taints.contains("node.kubernetes.io/unreachable"),
        "{taints}"
    );
    // Replaced elsewhere: three Running pods, none on the dead node.
    assert!(
        eventually(Duration::from_secs(30), || {
            let pods = running_pods(&ferry, "app=hardy");
            let alive: Vec<_> = pods.iter().filter(|(_, n)| *n != victim_node).collect();
            alive.len() == 3
        }),
        "{}",
        ferry.ok(&["get", "pods", "-o", "wide"])
    );
    let evicted = ferry.ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=TaintManagerEviction",
        "-o",
        "name",
    ]);
    assert!(!evicted.is_empty());
    // Back up: Ready again, taints gone.
    ferry.ok(&["annotate", "node", &victim_node, "sim.ferry.dev/down-"]);
    assert!(
        eventually(Duration::from_secs(20), || ready() == "True"),
        "node Ready again: {}",
        ready()
    );
    assert!(eventually(Duration::from_secs(10), || ferry
        .ok(&["get", "node", &victim_node, "-o", "jsonpath={.spec.taints}"])
        .is_empty()));
}

#[test]
fn deletions_cascade() {
    let (ferry, _sim, _dir) = start(2);
    for name in ["bg", "fg"] {
        ferry.apply_yaml("apply", &deployment(name, 2, ""));
    }
    for name in ["bg", "fg"] {
        let selector = format!("app={name}");
        assert!(eventually(Duration::from_secs(30), || running_pods(
            &ferry, &selector
        )
        .len()
            == 2));
    }
    ferry.ok(&["delete", "deployment", "bg"]);
    ferry.ok(&[
        "delete",
        "deployment",
        "fg",
        "--cascade=foreground",
        "--timeout=60s",
    ]);
    // Foreground: by the time the delete returns (kubectl waits), the dependents are gone.
    assert_eq!(
        ferry.ok(&["get", "rs,pods", "-l", "app=fg", "-o", "name"]),
        ""
    );
    assert!(eventually(Duration::from_secs(30), || ferry
        .ok(&["get", "rs,pods", "-l", "app=bg", "-o", "name"])
        .is_empty()));

    // Orphan: the ReplicaSet stays, without its owner.
    ferry.apply_yaml("apply", &deployment("orph", 1, ""));
    assert!(eventually(Duration::from_secs(30), || running_pods(
        &ferry, "app=orph"
    )
    .len()
        == 1));
    ferry.ok(&["delete", "deployment", "orph", "--cascade=orphan"]);
    assert!(eventually(Duration::from_secs(10), || ferry
        .kubectl(&["get", "deployment", "orph"])
        .status
        .code()
        == Some(1)));
    let owners = ferry.ok(&[
        "get",
        "rs",
        "-l",
        "app=orph",
        "-o",
        "jsonpath={.items[0].metadata.ownerReferences}",
    ]);
    assert_eq!(owners, "", "orphaned replicaset keeps no owner reference");

    // A namespace deletion empties it, then the namespace goes.
    ferry.ok(&["create", "namespace", "doomed"]);
    ferry.ok(&[
        "-n",
        "doomed",
        "create",
        "deployment",
        "d",
        "--image=registry.local/app:1",
        "--replicas=2",
    ]);
    ferry.ok(&[
        "-n",
        "doomed",
        "create",
        "configmap",
        "c",
        "--from-literal=a=b",
    ]);
    assert!(eventually(Duration::from_secs(30), || ferry
        .ok(&[
            "-n",
            "doomed",
            "get",
            "pods",
            "--field-selector=status.phase=Running",
            "-o",
            "name"
        ])
        .lines()
        .count()
        == 2));
    ferry.ok(&["delete", "namespace", "doomed", "--timeout=60s"]);
    assert!(ferry
        .fails(&["get", "namespace", "doomed"])
        .contains("NotFound"));
}

#[test]
fn jobs_run_to_completion() {
    let (ferry, _sim, _dir) = start(2);
    // The sim finishes pods carrying this annotation with exit code 0 after the duration.
    let job = |name: &str, extra: &str| {
        format!(
            "apiVersion: batch/v1
kind: Job
metadata: {{name: {name}}}
spec:
  completions: 3
  parallelism: 2
{extra}  template:
    metadata: {{annotations: {{sim.ferry.dev/complete-after: 300ms}}}}
    spec:
      restartPolicy: Never
      containers: [{{name: work, image: 'registry.local/app:1'}}]
"
        )
    };
    ferry.apply_yaml("apply", &job("batch", ""));
    ferry.ok(&[
        "wait",
        "--for=condition=complete",
        "job/batch",
        "--timeout=60s",
    ]);
    assert_eq!(
        ferry.ok(&["get", "job", "batch", "-o", "jsonpath={.status.succeeded}"]),
        "3"
    );
    let pods = ferry.ok(&[
        "get",
        "pods",
        "-l",
        "job-name=batch",
        "-o",
        "jsonpath={.items[*].status.phase}",
    ]);
    assert_eq!(pods, "Succeeded Succeeded Succeeded");
    let table = ferry.ok(&["get", "job", "batch"]);
    assert!(
        table.contains("Complete") && table.contains("3/3"),
        "{table}"
    );

    // ttlSecondsAfterFinished: the finished Job and its pods go away.
    ferry.apply_yaml("apply", &job("brief", "  ttlSecondsAfterFinished: 1\n"));
    assert!(
        eventually(Duration::from_secs(60), || ferry
            .kubectl(&["get", "job", "brief"])
            .status
            .code()
            == Some(1)),
        "{}",
        ferry.ok(&["get", "jobs"])
    );
    assert!(eventually(Duration::from_secs(30), || ferry
        .ok(&["get", "pods", "-l", "job-name=brief", "-o", "name"])
        .is_empty()));
}

/// A CronJob starts a Job at its next minute — named after that minute, controlled by the
/// CronJob, annotated with the scheduled time — and sees it finish; `kubectl create job
/// --from=cronjob/…` (client-side) makes one by hand.
#[test]
fn cronjob_runs_jobs_on_schedule() {
    let (ferry, _sim, _dir) = start(1);
    ferry.apply_yaml(
        "apply",
        "apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: '*/1 * * * *'
  jobTemplate:
    metadata: {labels: {app: tick}}
    spec:
      template:
        metadata: {annotations: {sim.ferry.dev/complete-after: 300ms}}
        spec:
          restartPolicy: Never
          containers: [{name: work, image: 'registry.local/app:1'}]
",
    );
    let mut jobs = String::new();
    assert!(
        eventually(Duration::from_secs(70), || {
            jobs = ferry.ok(&[
                "get",
                "jobs",
                "-l",
                "app=tick",
                "-o",
                "jsonpath={.items[*].metadata.name}",
            ]);
            !jobs.is_empty()
        }),
        "no job within a minute: {}",
        ferry.ok(&["describe", "cronjob", "tick"])
    );
    let name = jobs.split(' ').next().expect("a job").to_string();
    let minute: i64 = name
        .strip_prefix("tick-")
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("job name {name}"));
    let get = |what: &str, jsonpath: &str| {
        ferry.ok(&["get", what, "-o", &format!("jsonpath={jsonpath}")])
    };
    let job = format!("job/{name}");
    assert_eq!(
        get(
            &job,
            "{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}/{.metadata.ownerReferences[0].controller}"
        ),
        "CronJob/tick/true"
    );
    let scheduled = get(
        &job,
        "{.metadata.annotations.batch\\.kubernetes\\.io/cronjob-scheduled-timestamp}",
    );
    assert_eq!(
        ferry_api::time::parse_rfc3339(&scheduled),
        Some(minute * 60),
        "{scheduled}"
    );
    assert_eq!(get("cronjob/tick", "{.status.lastScheduleTime}"), scheduled);

    // The Job finishes: out of status.active, into lastSuccessfulTime, with an event.
    assert!(
        eventually(Duration::from_secs(30), || get(
            "cronjob/tick",
            "{.status.active}|{.status.lastSuccessfulTime}"
        )
        .starts_with("|2")),
        "{}",
        ferry.ok(&["get", "cronjob", "tick", "-o", "yaml"])
    );
    let events = ferry.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=tick",
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
    ]);
    assert!(
        events.contains(&format!("SuccessfulCreate: Created job {name}"))
            && events.contains(&format!(
                "SawCompletedJob: Saw completed job: {name}, condition: Complete"
            )),
        "{events}"
    );
    let table = ferry.ok(&["get", "cronjob", "tick"]);
    assert!(
        table.contains("*/1 * * * *") && table.contains("False"),
        "{table}"
    );

    // By hand: kubectl copies the template and marks the Job manual.
    ferry.ok(&["create", "job", "manual", "--from=cronjob/tick"]);
    assert_eq!(
        get(
            "job/manual",
            "{.metadata.annotations.cronjob\\.kubernetes\\.io/instantiate} {.metadata.ownerReferences[0].name}"
        ),
        "manual tick"
    );
    ferry.ok(&[
        "wait",
        "--for=condition=complete",
        "job/manual",
        "--timeout=30s",
    ]);
}

/// `ferry controllers` and `ferry scheduler` as processes of their own: two controller
/// managers share the work through a Lease — one works, the other takes over when it stops.
#[test]
fn standalone_components_elect_a_leader() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().expect("tempdir");
    let ferry = Ferry::start_in(
        dir.path(),
        &["--disable-controllers", "--disable-scheduler"],
    );
    let component = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(args)
            .arg("--kubeconfig")
            .arg(&ferry.kubeconfig)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a component")
    };
    struct Killed(Vec<std::process::Child>);
    impl Drop for Killed {
        fn drop(&mut self) {
            for child in &mut self.0 {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
    let mut processes = Killed(vec![
        component(&["controllers"]),
        component(&["controllers"]),
        component(&["scheduler"]),
    ]);
    let _sim = Sim::start(&ferry, 2, &[]);
    let holder = || {
        ferry.ok(&[
            "-n",
            "kube-system",
            "get",
            "lease",
            "kube-controller-manager",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
    };
    assert!(eventually(Duration::from_secs(30), || ferry
        .kubectl(&[
            "-n",
            "kube-system",
            "get",
            "lease",
            "kube-controller-manager"
        ])
        .status
        .success()));
    let first = holder();
    let pids: Vec<u32> = processes.0.iter().map(|c| c.id()).collect();
    let leader = pids
        .iter()
        .position(|pid| first.ends_with(&format!("_{pid}")))
        .expect("a controller manager holds the lease");
    assert!(leader < 2, "{first}");
    ferry.apply_yaml("apply", &deployment("ha", 2, ""));
    assert!(
        eventually(Duration::from_secs(30), || running_pods(&ferry, "app=ha")
            .len()
            == 2),
        "{}",
        ferry.ok(&["get", "pods", "-o", "wide"])
    );
    let scheduler_holder = ferry.ok(&[
        "-n",
        "kube-system",
        "get",
        "lease",
        "kube-scheduler",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert!(
        scheduler_holder.ends_with(&format!("_{}", pids[2])),
        "{scheduler_holder}"
    );

    // The leader stops (SIGTERM: it gives the Lease up); the other one takes over.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pids[leader].to_string())
        .status();
    let _ = processes.0[leader].wait();
    let other = pids[1 - leader];
    assert!(
        eventually(Duration::from_secs(30), || holder()
            .ends_with(&format!("_{other}"))),
        "lease holder: {}",
        holder()
    );
    ferry.ok(&["scale", "deployment/ha", "--replicas=4"]);
    assert!(
        eventually(Duration::from_secs(30), || running_pods(&ferry, "app=ha")
            .len()
            == 4),
        "{}",
        ferry.ok(&["get", "pods", "-o", "wide"])
    );
}

#[test]
fn recreate_and_progress_deadline() {
    let (ferry, _sim, _dir) = start(2);
    // Recreate: the old pods go before new ones come.
    ferry.apply_yaml(
        "apply",
        &deployment("rec", 2, "").replace(
            "spec:\n  replicas: 2",
            "spec:\n  strategy: {type: Recreate}\n  replicas: 2",
        ),
    );
    ferry.ok(&["rollout", "status", "deployment/rec", "--timeout=30s"]);
    ferry.ok(&["set", "image", "deployment/rec", "app=registry.local/app:2"]);
    ferry.ok(&["rollout", "status", "deployment/rec", "--timeout=60s"]);
    let images = ferry.ok(&[
        "get",
        "pods",
        "-l",
        "app=rec",
        "--field-selector=status.phase=Running",
        "-o",
        "jsonpath={.items[*].spec.containers[0].image}",
    ]);
    assert_eq!(images, "registry.local/app:2 registry.local/app:2");

    // A rollout that cannot progress (nothing fits) reports ProgressDeadlineExceeded.
    let stuck = deployment("stuck", 1, "")
        .replace(
            "spec:\n  replicas: 1",
            "spec:\n  progressDeadlineSeconds: 2\n  replicas: 1",
        )
        .replace(
            "image: 'registry.local/app:1'}]",
            "image: 'registry.local/app:1', resources: {requests: {cpu: '100'}}}]",
        );
    ferry.apply_yaml("apply", &stuck);
    let out = ferry.kubectl(&["rollout", "status", "deployment/stuck", "--timeout=60s"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("exceeded its progress deadline"),
        "{stderr}"
    );
    let reason = ferry.ok(&[
        "get",
        "deployment",
        "stuck",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Progressing\")].reason}",
    ]);
    assert_eq!(reason, "ProgressDeadlineExceeded");
}

#[test]
fn drain_respects_disruption_budgets() {
    let (ferry, _sim, _dir) = start(3);
    ferry.apply_yaml("apply", &deployment("guarded", 3, ""));
    assert!(eventually(Duration::from_secs(30), || running_pods(
        &ferry,
        "app=guarded"
    )
    .len()
        == 3));
    let budget = "apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: guarded}
spec:
  minAvailable: 3
  selector: {matchLabels: {app: guarded}}
";
    ferry.apply_yaml("apply", budget);
    let status = || {
        ferry.ok(&["get", "pdb", "guarded", "-o", "jsonpath={.status.currentHealthy}/{.status.desiredHealthy}/{.status.disruptionsAllowed}"])
    };
    assert!(
        eventually(Duration::from_secs(20), || status() == "3/3/0"),
        "{}",
        status()
    );
    let node = running_pods(&ferry, "app=guarded")[0].1.clone();
    // No slack: eviction is refused with 429, which kubectl drain retries until its timeout.
    let out = ferry.kubectl(&["drain", &node, "--timeout=4s"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{stderr}"
    );
    assert_eq!(running_pods(&ferry, "app=guarded").len(), 3);

    // One pod of slack: drain goes through, one pod at a time, replacements elsewhere.
    ferry.ok(&[
        "patch",
        "pdb",
        "guarded",
        "--type=merge",
        "-p",
        r#"{"spec":{"minAvailable":2}}"#,
    ]);
    assert!(
        eventually(Duration::from_secs(20), || status() == "3/2/1"),
        "{}",
        status()
    );
    ferry.ok(&["drain", &node, "--timeout=60s"]);
    assert!(
        eventually(Duration::from_secs(30), || {
            let pods = running_pods(&ferry, "app=guarded");
            pods.len() == 3 && pods.iter().all(|(_, n)| *n != node)
        }),
        "{}",
        ferry.ok(&["get", "pods", "-o", "wide"])
    );
}

/// The endpoints of a Service as `kubectl get endpointslices` shows them: (pod, ready) pairs.
fn slice_endpoints(ferry: &Ferry, service: &str) -> Vec<(String, String)> {
    let out = ferry.ok(&[
        "get",
        "endpointslices",
        "-l",
        &format!("kubernetes.io/service-name={service}"),
        "-o",
        "jsonpath={range .items[*].endpoints[*]}{.targetRef.name} {.conditions.ready}{\"\\n\"}{end}",
    ]);
    let mut endpoints: Vec<(String, String)> = out
        .lines()
        .filter_map(|l| {
            l.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        })
        .collect();
    endpoints.sort();
    endpoints
}

#[test]
fn services_get_endpoint_slices_and_endpoints() {
    let (ferry, _sim, _dir) = start(2);
    ferry.apply_yaml("apply", &deployment("web", 3, ""));
    ferry.ok(&["rollout", "status", "deployment/web", "--timeout=30s"]);
    assert_eq!(
        ferry.ok(&[
            "expose",
            "deployment",
            "web",
            "--port=80",
            "--target-port=8080"
        ]),
        "service/web exposed\n"
    );
    let ready = |n: usize| {
        move |e: &Vec<(String, String)>| e.len() == n && e.iter().all(|(_, r)| r == "true")
    };
    assert!(
        eventually(Duration::from_secs(10), || ready(3)(&slice_endpoints(
            &ferry, "web"
        ))),
        "3 ready endpoints: {}",
        ferry.ok(&["get", "endpointslices", "-o", "yaml"])
    );
    // One slice, as upstream labels and owns it, with the resolved port.
    let slice = ferry.ok(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
        "-o",
        "jsonpath={.items[*].metadata.labels.endpointslice\\.kubernetes\\.io/managed-by} {.items[*].metadata.ownerReferences[0].kind}/{.items[*].metadata.ownerReferences[0].name} {.items[*].addressType} {.items[*].ports[0].port}",
    ]);
    assert_eq!(
        slice,
        "endpointslice-controller.k8s.io Service/web IPv4 8080"
    );
    let table = ferry.ok(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
    ]);
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(row.get(1..3), Some(&["IPv4", "8080"][..]), "{table}");
    assert_eq!(row.get(3).map(|e| e.split(',').count()), Some(3), "{table}");
    // The legacy Endpoints, and `kubectl describe service` reading them.
    let addresses = ferry.ok(&[
        "get",
        "endpoints",
        "web",
        "-o",
        "jsonpath={.subsets[0].addresses[*].ip}",
    ]);
    assert_eq!(addresses.split(' ').count(), 3, "{addresses}");
    let described = ferry.ok(&["describe", "service", "web"]);
    let line = described
        .lines()
        .find(|l| l.starts_with("Endpoints:"))
        .unwrap_or_default();
    assert!(line.contains(":8080"), "{described}");

    // Scaled up and down, the slice follows; at zero it stays as the empty placeholder.
    ferry.ok(&["scale", "deployment/web", "--replicas=5"]);
    assert!(
        eventually(Duration::from_secs(20), || ready(5)(&slice_endpoints(
            &ferry, "web"
        ))),
        "5 ready endpoints: {:?}",
        slice_endpoints(&ferry, "web")
    );
    ferry.ok(&["scale", "deployment/web", "--replicas=0"]);
    assert!(
        eventually(Duration::from_secs(20), || slice_endpoints(&ferry, "web")
            .is_empty()),
        "no endpoints left: {:?}",
        slice_endpoints(&ferry, "web")
    );
    let slices = ferry.ok(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
        "-o",
        "name",
    ]);
    assert_eq!(slices.lines().count(), 1, "{slices}");
    assert!(
        eventually(Duration::from_secs(10), || ferry
            .ok(&["get", "endpoints", "web", "-o", "jsonpath={.subsets}"])
            .is_empty()),
        "Endpoints emptied"
    );

    // The Service goes: its slice by its owner reference, its Endpoints by the controller.
    ferry.ok(&["delete", "service", "web"]);
    assert!(
        eventually(Duration::from_secs(20), || ferry
            .ok(&[
                "get",
                "endpointslices,endpoints",
                "-l",
                "kubernetes.io/service-name=web",
                "-o",
                "name"
            ])
            .is_empty()
            && ferry
                .fails(&["get", "endpoints", "web"])
                .contains("NotFound")),
        "slices and Endpoints of a deleted Service remain: {}",
        ferry.ok(&["get", "endpointslices,endpoints"])
    );
    // A Service without a selector and Endpoints made by hand: mirrored into a slice.
    ferry.apply_yaml(
        "apply",
        "apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec:\n  ports: [{name: sql, port: 5432}]\n---\napiVersion: v1\nkind: Endpoints\nmetadata: {name: db}\nsubsets:\n- addresses: [{ip: 192.168.7.5}]\n  ports: [{name: sql, port: 5432}]\n",
    );
    let mirrored = || {
        ferry.ok(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=db",
            "-o",
            "jsonpath={.items[*].metadata.labels.endpointslice\\.kubernetes\\.io/managed-by} {.items[*].endpoints[0].addresses[0]} {.items[*].ports[0].port}",
        ])
    };
    assert!(
        eventually(Duration::from_secs(10), || mirrored()
            == "endpointslicemirroring-controller.k8s.io 192.168.7.5 5432"),
        "mirrored slice: {}",
        mirrored()
    );
    // A LoadBalancer gets the nodes' addresses as its ingress, shown as EXTERNAL-IP.
    ferry.ok(&["create", "service", "loadbalancer", "edge", "--tcp=80:8080"]);
    let ingress = || {
        ferry.ok(&[
            "get",
            "svc",
            "edge",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[*].ip}",
        ])
    };
    assert!(
        eventually(Duration::from_secs(10), || ingress()
            .split_whitespace()
            .count()
            == 2),
        "ingress: {}",
        ingress()
    );
    let table = ferry.ok(&["get", "svc", "edge"]);
    let first = ingress()
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(table.contains(&first), "{table}");
    // The cluster DNS is the kube-dns Service, its endpoint the server's DNS.
    assert_eq!(
        ferry.ok(&[
            "get",
            "svc",
            "kube-dns",
            "-n",
            "kube-system",
            "-o",
            "jsonpath={.spec.clusterIP} {.spec.ports[*].protocol}"
        ]),
        "10.43.0.10 UDP TCP"
    );
    let dns_port = ferry.ok(&[
        "get",
        "endpointslice",
        "kube-dns",
        "-n",
        "kube-system",
        "-o",
        "jsonpath={.ports[0].port}",
    ]);
    assert!(dns_port.parse::<u16>().is_ok_and(|p| p > 0), "{dns_port}");
    // The kubernetes Service has its slice too, and it is not mirrored a second time.
    assert_eq!(
        ferry.ok(&[
            "get",
            "endpointslice",
            "kubernetes",
            "-o",
            "jsonpath={.endpoints[0].addresses[0]}"
        ]),
        "127.0.0.1"
    );
    assert_eq!(
        ferry
            .ok(&[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=kubernetes",
                "-o",
                "name"
            ])
            .lines()
            .count(),
        1
    );
}

fn replication_controller(name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: v1
kind: ReplicationController
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{app: {name}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: app, image: 'registry.local/app:1'}}]
"
    )
}

/// ReplicationControllers are kept by the ReplicaSet controller's code, as upstream's: pods
/// owned by `v1`/`ReplicationController`, the status `kubectl get rc` prints, `kubectl scale
/// rc`, events from `replication-controller`, adoption of orphans, cascading deletion.
#[test]
fn replication_controllers_keep_their_pods() {
    let (ferry, _sim, _dir) = start(2);
    ferry.apply_yaml("create", &replication_controller("legacy", 3));
    assert!(
        eventually(Duration::from_secs(30), || running_pods(
            &ferry,
            "app=legacy"
        )
        .len()
            == 3),
        "3 pods Running: {}",
        ferry.ok(&["get", "pods", "-o", "wide"])
    );
    let rc_uid = ferry.ok(&["get", "rc", "legacy", "-o", "jsonpath={.metadata.uid}"]);
    let owners = |ferry: &Ferry| {
        ferry.ok(&[
            "get",
            "pods",
            "-l",
            "app=legacy",
            "-o",
            "jsonpath={range .items[*]}{.metadata.ownerReferences[*].apiVersion} {.metadata.ownerReferences[*].kind} {.metadata.ownerReferences[*].uid} {.metadata.ownerReferences[*].controller}{\"\\n\"}{end}",
        ])
    };
    let want = format!("v1 ReplicationController {rc_uid} true");
    let listed = owners(&ferry);
    assert!(
        listed.lines().count() == 3 && listed.lines().all(|l| l == want),
        "{listed}"
    );
    // The counts `kubectl get rc` prints, and the generation they were computed for.
    let status = |ferry: &Ferry| {
        ferry.ok(&[
            "get",
            "rc",
            "legacy",
            "-o",
            "jsonpath={.status.replicas} {.status.fullyLabeledReplicas} {.status.readyReplicas} {.status.availableReplicas} {.status.observedGeneration}/{.metadata.generation}",
        ])
    };
    let settled = |counts: &str, status: String| {
        status.split_once(' ').is_some_and(|(replicas, rest)| {
            let (rest, generations) = rest.rsplit_once(' ').unwrap_or_default();
            let (observed, generation) = generations.split_once('/').unwrap_or_default();
            format!("{replicas} {rest}") == counts && observed == generation
        })
    };
    assert!(
        eventually(Duration::from_secs(30), || settled(
            "3 3 3 3",
            status(&ferry)
        )),
        "{}",
        ferry.ok(&["get", "rc", "legacy", "-o", "yaml"])
    );
    let row = ferry.ok(&["get", "rc", "legacy", "--no-headers"]);
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[..4], ["legacy", "3", "3", "3"], "{row}");
    let described = ferry.ok(&["describe", "rc", "legacy"]);
    assert!(
        described.contains("3 Running / 0 Waiting")
            && described.contains("SuccessfulCreate")
            && described.contains("replication-controller"),
        "{described}"
    );

    ferry.ok(&["scale", "rc", "legacy", "--replicas=1"]);
    assert!(
        eventually(Duration::from_secs(30), || ferry
            .ok(&["get", "pods", "-l", "app=legacy", "-o", "name"])
            .lines()
            .count()
            == 1
            && settled("1 1 1 1", status(&ferry))),
        "{}",
        ferry.ok(&["get", "rc,pods", "-l", "app=legacy", "-o", "wide"])
    );
    let reasons = ferry.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=ReplicationController,reason=SuccessfulDelete",
        "-o",
        "jsonpath={.items[*].source.component}",
    ]);
    assert!(reasons.contains("replication-controller"), "{reasons:?}");

    // Orphaned, then adopted by a new RC of the same selector, which makes up the rest.
    ferry.ok(&["delete", "rc", "legacy", "--cascade=orphan"]);
    assert!(eventually(Duration::from_secs(10), || owners(&ferry)
        .trim()
        .is_empty()
        && ferry.kubectl(&["get", "rc", "legacy"]).status.code()
            == Some(1)));
    let survivor = ferry.ok(&["get", "pods", "-l", "app=legacy", "-o", "name"]);
    ferry.apply_yaml("create", &replication_controller("legacy", 2));
    let rc_uid = ferry.ok(&["get", "rc", "legacy", "-o", "jsonpath={.metadata.uid}"]);
    let want = format!("v1 ReplicationController {rc_uid} true");
    assert!(
        eventually(Duration::from_secs(30), || {
            let listed = owners(&ferry);
            running_pods(&ferry, "app=legacy").len() == 2
                && listed.lines().count() == 2
                && listed.lines().all(|l| l == want)
        }),
        "{}",
        owners(&ferry)
    );
    assert!(ferry
        .ok(&["get", "pods", "-l", "app=legacy", "-o", "name"])
        .contains(survivor.trim()));

    // kubectl's default cascade (background): the garbage collector deletes the pods.
    ferry.ok(&["delete", "rc", "legacy"]);
    assert!(
        eventually(Duration::from_secs(30), || ferry
            .ok(&["get", "pods", "-l", "app=legacy", "-o", "name"])
            .is_empty()),
        "{}",
        ferry.ok(&["get", "pods", "-l", "app=legacy"])
    );
}

/// Indexed Jobs as upstream 1.33 runs them, on sim pods that fail with an exit code
/// (`sim.ferry.dev/fail-after`, `sim.ferry.dev/exit-code`) or complete: each index retried up
/// to `backoffLimitPerIndex` (the replacement carrying the index's failure count) until the
/// Job fails on its failed indexes; a `successPolicy` met while a replacement still runs, which
/// is then terminated; `FailIndex` with `maxFailedIndexes`. Every Job ends in two steps
/// (`FailureTarget`/`SuccessCriteriaMet`, then `Failed`/`Complete`) and leaves no pod with the
/// tracking finalizer. The API server refuses what upstream's validation refuses.
#[test]
fn jobs_back_off_per_index_and_meet_success_policies() {
    let (ferry, _sim, _dir) = start(2);
    let job = |name: &str, spec: &str, annotations: &str| {
        format!(
            "apiVersion: batch/v1
kind: Job
metadata: {{name: {name}}}
spec:
  completionMode: Indexed
{spec}  template:
    metadata: {{annotations: {{{annotations}}}}}
    spec:
      restartPolicy: Never
      containers: [{{name: work, image: 'registry.local/app:1'}}]
"
        )
    };
    let get =
        |name: &str, path: &str| ferry.ok(&["get", "job", name, "-o", &format!("jsonpath={path}")]);
    let conditions = |name: &str| {
        get(
            name,
            "{range .status.conditions[*]}{.type}={.reason}:{.message};{end}",
        )
    };
    let pods = |name: &str, path: &str| {
        ferry.ok(&[
            "get",
            "pods",
            "-l",
            &format!("batch.kubernetes.io/job-name={name}"),
            "-o",
            &format!("jsonpath={{range .items[*]}}{path} {{end}}"),
        ])
    };
    let sorted = |text: String| {
        let mut words: Vec<String> = text.split_whitespace().map(String::from).collect();
        words.sort();
        words.join(" ")
    };

    // Every pod fails with exit code 3; each index is retried once, 10 s later.
    ferry.apply_yaml(
        "create",
        &job(
            "flaky",
            "  completions: 2\n  parallelism: 2\n  backoffLimitPerIndex: 1\n",
            "sim.ferry.dev/fail-after: 300ms, sim.ferry.dev/exit-code: '3'",
        ),
    );
    // A success policy met by indexes 1 and 2 while index 0's replacement still runs.
    ferry.apply_yaml(
        "create",
        &job(
            "quorum",
            "  completions: 3\n  parallelism: 3\n  backoffLimitPerIndex: 1\n  successPolicy:\n    rules: [{succeededIndexes: '1-2'}]\n",
            "sim.ferry.dev/complete-after: 20s",
        ),
    );
    // FailIndex on exit code 3, and no failed index allowed.
    ferry.apply_yaml(
        "create",
        &job(
            "fragile",
            "  completions: 3\n  parallelism: 3\n  backoffLimitPerIndex: 2\n  maxFailedIndexes: 0\n  podFailurePolicy:\n    rules: [{action: FailIndex, onExitCodes: {operator: In, values: [3]}}]\n",
            "sim.ferry.dev/fail-after: 300ms, sim.ferry.dev/exit-code: '3'",
        ),
    );
    assert_eq!(
        get(
            "quorum",
            "{.spec.podReplacementPolicy} {.spec.backoffLimit}"
        ),
        "TerminatingOrFailed 2147483647",
        "defaults with backoffLimitPerIndex"
    );
    assert_eq!(get("fragile", "{.spec.podReplacementPolicy}"), "Failed");

    // A pod deleted while it runs is a failure of its index (podReplacementPolicy
    // TerminatingOrFailed): its replacement comes after the backoff, with the count.
    let first = |name: &str, index: u32| {
        ferry
            .ok(&[
                "get",
                "pods",
                "-l",
                &format!("job-name={name},batch.kubernetes.io/job-completion-index={index}"),
                "--field-selector=status.phase=Running",
                "-o",
                "name",
            ])
            .lines()
            .next()
            .map(String::from)
    };
    let mut victim = None;
    assert!(
        eventually(Duration::from_secs(30), || {
            victim = first("quorum", 0);
            victim.is_some()
        }),
        "{}",
        ferry.ok(&["get", "pods", "-o", "wide"])
    );
    let victim = victim.expect("pod");
    assert_eq!(
        ferry.ok(&["get", &victim, "-o", "jsonpath={.metadata.finalizers}"]),
        "[\"batch.kubernetes.io/job-tracking\"]"
    );
    ferry.ok(&["delete", &victim, "--wait=false"]);
    assert!(
        eventually(Duration::from_secs(40), || pods(
            "quorum",
            "{.metadata.annotations.batch\\.kubernetes\\.io/job-index-failure-count}"
        )
        .split_whitespace()
        .any(|c| c == "1")),
        "no replacement of index 0: {}",
        ferry.ok(&["get", "pods", "-l", "job-name=quorum", "-o", "wide"])
    );

    ferry.ok(&[
        "wait",
        "--for=condition=failed",
        "job/flaky",
        "--timeout=90s",
    ]);
    assert_eq!(
        conditions("flaky"),
        "FailureTarget=FailedIndexes:Job has failed indexes;Failed=FailedIndexes:Job has failed indexes;"
    );
    assert_eq!(
        get(
            "flaky",
            "{.status.failedIndexes}/{.status.completedIndexes}/{.status.failed}/{.status.active}"
        ),
        "0,1//4/"
    );
    assert_eq!(
        sorted(pods(
            "flaky",
            "{.status.phase}/{.status.containerStatuses[0].state.terminated.exitCode}"
        )),
        "Failed/3 Failed/3 Failed/3 Failed/3"
    );
    assert_eq!(
        sorted(pods(
            "flaky",
            "{.metadata.annotations.batch\\.kubernetes\\.io/job-index-failure-count}"
        )),
        "0 0 1 1"
    );

    ferry.ok(&[
        "wait",
        "--for=condition=failed",
        "job/fragile",
        "--timeout=90s",
    ]);
    assert_eq!(
        conditions("fragile"),
        "FailureTarget=MaxFailedIndexesExceeded:Job has exceeded the specified maximal number of failed indexes;Failed=MaxFailedIndexesExceeded:Job has exceeded the specified maximal number of failed indexes;"
    );
    assert!(!get("fragile", "{.status.failedIndexes}").is_empty());

    ferry.ok(&[
        "wait",
        "--for=condition=complete",
        "job/quorum",
        "--timeout=90s",
    ]);
    assert_eq!(
        conditions("quorum"),
        "SuccessCriteriaMet=SuccessPolicy:Matched rules at index 0;Complete=SuccessPolicy:Matched rules at index 0;"
    );
    assert_eq!(
        get(
            "quorum",
            "{.status.completedIndexes}/{.status.failedIndexes}/{.status.succeeded}/{.status.failed}/{.status.terminating}/{.status.uncountedTerminatedPods}"
        ),
        "1,2//2/1/0/{}"
    );
    assert!(
        eventually(Duration::from_secs(30), || pods(
            "quorum",
            "{.metadata.annotations.batch\\.kubernetes\\.io/job-completion-index}"
        )
        .split_whitespace()
        .all(|i| i != "0")),
        "index 0's replacement is terminated: {}",
        ferry.ok(&["get", "pods", "-l", "job-name=quorum", "-o", "wide"])
    );
    for name in ["flaky", "quorum", "fragile"] {
        assert_eq!(pods(name, "{.metadata.finalizers}").trim(), "", "{name}");
    }
    let events = ferry.ok(&[
        "get",
        "events",
        "--field-selector=involvedObject.kind=Job",
        "-o",
        "jsonpath={range .items[*]}{.involvedObject.name}/{.reason} {end}",
    ]);
    for event in [
        "flaky/FailedIndexes",
        "fragile/MaxFailedIndexesExceeded",
        "quorum/Completed",
    ] {
        assert!(events.contains(event), "{event}: {events}");
    }

    // A Job deleted while its pods run: they lose the finalizer and go.
    ferry.apply_yaml(
        "create",
        &job("endless", "  completions: 2\n  parallelism: 2\n", ""),
    );
    assert!(eventually(Duration::from_secs(30), || pods(
        "endless",
        "{.status.phase}"
    )
    .split_whitespace()
    .filter(|p| *p == "Running")
    .count()
        == 2));
    ferry.ok(&["delete", "job", "endless", "--wait=false"]);
    assert!(
        eventually(Duration::from_secs(30), || pods(
            "endless",
            "{.metadata.name}"
        )
        .trim()
        .is_empty()),
        "{}",
        ferry.ok(&["get", "pods", "-l", "job-name=endless", "-o", "yaml"])
    );

    // Upstream's validation of the new fields.
    let refused = ferry.create_err(
        "apiVersion: batch/v1
kind: Job
metadata: {name: refused}
spec:
  completions: 2
  backoffLimitPerIndex: 1
  successPolicy:
    rules: [{succeededCount: 1}]
  template:
    spec:
      restartPolicy: Never
      containers: [{name: work, image: 'registry.local/app:1'}]
",
    );
    assert!(
        refused.contains(
            "spec.backoffLimitPerIndex: Invalid value: 1: requires indexed completion mode"
        ),
        "{refused}"
    );
    assert!(
        refused.contains("spec.successPolicy: Invalid value: batch.SuccessPolicy{"),
        "{refused}"
    );
    let refused = ferry.create_err(&job(
        "refused",
        "  completions: 2\n  successPolicy:\n    rules: [{succeededIndexes: '0-5'}]\n",
        "",
    ));
    assert!(
        refused.contains("spec.successPolicy.rules[0].succeededIndexes: Invalid value: \"0-5\": error parsing succeededIndexes: too large index: \"5\""),
        "{refused}"
    );
}
