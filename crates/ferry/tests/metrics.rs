//! Black-box test of the components' own metrics: a real `ferry server` serves kube-scheduler's
//! and kube-controller-manager's health and `/metrics` over HTTPS on their secure ports, to a
//! ServiceAccount bound to `system:monitoring` (a bearer token the components review with the
//! API server), as upstream's components do.

mod common;

use std::process::Command;
use std::time::Duration;

use common::eventually;

/// A port free now (the servers of parallel tests must not share upstream's defaults).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `curl -k` of `https://127.0.0.1:<port><path>` with `token`: the status code and the body.
fn get(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    let mut curl = Command::new("curl");
    curl.args(["-sk", "-w", "\n%{http_code}"]);
    if let Some(token) = token {
        curl.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let out = curl
        .arg(format!("https://127.0.0.1:{port}{path}"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn scheduler_and_controller_manager_serve_metrics_to_monitoring() {
    let (scheduler, manager) = (free_port(), free_port());
    let flags = [
        format!("--scheduler-secure-port={scheduler}"),
        format!("--controller-manager-secure-port={manager}"),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (ferry, _sim, _dir) = common::with_sim_nodes(1, &flags);

    ferry.ok(&["create", "serviceaccount", "prometheus"]);
    ferry.ok(&[
        "create",
        "clusterrolebinding",
        "prometheus-monitoring",
        "--clusterrole=system:monitoring",
        "--serviceaccount=default:prometheus",
    ]);
    let token = ferry
        .ok(&["create", "token", "prometheus"])
        .trim()
        .to_string();
    ferry.ok(&["create", "serviceaccount", "nobody"]);
    let nobody = ferry.ok(&["create", "token", "nobody"]).trim().to_string();

    ferry.ok(&["run", "web", "--image=registry.k8s.io/pause:3.10"]);
    assert!(
        eventually(Duration::from_secs(30), || !ferry
            .ok(&["get", "pod", "web", "-o", "jsonpath={.spec.nodeName}"])
            .is_empty()),
        "the pod was not scheduled"
    );

    // Health is everyone's; metrics need `get` on /metrics.
    assert_eq!(get(scheduler, "/healthz", None), (200, "ok".into()));
    assert_eq!(get(manager, "/readyz", None).0, 200);
    let (code, body) = get(scheduler, "/metrics", None);
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains(r#"forbidden: User \"system:anonymous\" cannot get path \"/metrics\""#),
        "{body}"
    );
    let (code, body) = get(scheduler, "/metrics", Some(&nobody));
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains(r#"User \"system:serviceaccount:default:nobody\""#),
        "{body}"
    );
    assert_eq!(get(manager, "/metrics", Some("not-a-token")).0, 401);

    let mut last = String::new();
    let scheduled = eventually(Duration::from_secs(20), || {
        let (code, body) = get(scheduler, "/metrics", Some(&token));
        last = body;
        code == 200
            && last.contains(
                r#"scheduler_schedule_attempts_total{profile="default-scheduler",result="scheduled"}"#,
            )
    });
    assert!(scheduled, "scheduler metrics: {last}");
    for name in [
        "scheduler_pending_pods{queue=\"active\"}",
        "scheduler_pod_scheduling_attempts_bucket",
        "scheduler_framework_extension_point_duration_seconds_bucket{le=\"0.0001\",extension_point=\"Bind\",profile=\"default-scheduler\",status=\"Success\"}",
        "scheduler_queue_incoming_pods_total{event=\"PodAdd\",queue=\"active\"}",
        "leader_election_master_status{name=\"kube-scheduler\"} 1",
        "rest_client_requests_total{",
    ] {
        assert!(last.contains(name), "no {name} in the scheduler's metrics: {last}");
    }

    let (code, body) = get(manager, "/metrics", Some(&token));
    assert_eq!(code, 200, "{body}");
    for name in [
        "workqueue_adds_total{name=\"serviceaccount\"}",
        "workqueue_depth{name=\"deployment\"}",
        "workqueue_work_duration_seconds_count{name=\"serviceaccount\"}",
        "leader_election_master_status{name=\"kube-controller-manager\"} 1",
    ] {
        assert!(
            body.contains(name),
            "no {name} in the controller manager's metrics: {body}"
        );
    }
}
