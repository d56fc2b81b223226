//! Looking inside pods with the real kubectl, through the API server and the kubelet's HTTPS
//! server to containerd: logs (follow, tail, timestamps, previous, waiting), exec (exit code,
//! stdin), cp both ways, attach, port-forward, kubectl debug with a target, the kubelet's own refusals, and no file
//! descriptor left behind by 200 dropped log streams. The pods use images by their usual names
//! (`busybox`, `nginx`), pulled through the registries file's mirror of docker.io.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::common::{eventually, Ferry};
use super::{http_get, run};

/// The usual names, pulled through the data dir's registries.yaml mirror of docker.io.
const BUSYBOX_BY_NAME: &str = "busybox";
const NGINX_BY_NAME: &str = "nginx";

fn phase_is(ferry: &Ferry, pod: &str, phase: &str) -> bool {
    ferry
        .kubectl(&["get", "pod", pod, "-o", "jsonpath={.status.phase}"])
        .stdout
        == phase.as_bytes()
}

/// Open file descriptors of a process.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// A long-running kubectl (`logs -f`, `attach`, `port-forward`) and the lines it prints.
fn spawn_kubectl(
    ferry: &Ferry,
    args: &[&str],
) -> (
    std::process::Child,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
) {
    spawn_kubectl_logging(ferry, args, Stdio::inherit())
}

/// [`spawn_kubectl`], its stderr to `stderr`.
fn spawn_kubectl_logging(
    ferry: &Ferry,
    args: &[&str],
    stderr: Stdio,
) -> (
    std::process::Child,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
) {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&ferry.kubeconfig)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"));
    let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    (child, lines)
}

/// Runs every streaming check against `ferry`, whose local agent runs the pods; `server_pid`
/// is the process that also runs the kubelet.
pub fn pods_stream(ferry: &Ferry, server_pid: u32) {
    ferry.ok(&[
        "run",
        "talker",
        &format!("--image={BUSYBOX_BY_NAME}"),
        "--restart=Never",
        "--",
        "sh",
        "-c",
        "echo hi; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.5; done",
    ]);
    ferry.ok(&[
        "run",
        "web",
        &format!("--image={NGINX_BY_NAME}"),
        "--restart=Never",
    ]);
    ferry.ok(&[
        "run",
        "crasher",
        &format!("--image={BUSYBOX_BY_NAME}"),
        "--restart=Always",
        "--",
        "sh",
        "-c",
        "echo run at $(date +%s%N); exit 1",
    ]);
    ferry.ok(&[
        "run",
        "no-image",
        "--image=127.0.0.1:5000/missing:1",
        "--restart=Never",
    ]);
    for pod in ["talker", "web"] {
        assert!(
            eventually(Duration::from_secs(60), || phase_is(ferry, pod, "Running")),
            "{pod} never ran: {}",
            ferry.ok(&["describe", "pod", pod])
        );
    }

    // Logs: the whole log, the tail with timestamps, following new lines.
    assert!(
        eventually(Duration::from_secs(10), || ferry
            .ok(&["logs", "talker"])
            .starts_with("hi\ntick 0\n")),
        "log: {}",
        ferry.ok(&["logs", "talker"])
    );
    let tail = ferry.ok(&["logs", "talker", "--tail=1", "--timestamps"]);
    let (time, text) = tail
        .trim_end()
        .split_once(' ')
        .expect("a timestamp and a line");
    assert!(time.ends_with('Z') && time.contains('T'), "{tail}");
    assert!(text.starts_with("tick "), "{tail}");
    assert_eq!(tail.lines().count(), 1, "{tail}");
    let (mut follow, mut lines) = spawn_kubectl(ferry, &["logs", "-f", "talker", "--tail=1"]);
    let first: u64 = lines
        .next()
        .expect("a line")
        .expect("text")
        .trim_start_matches("tick ")
        .parse()
        .expect("a tick");
    let later: u64 = lines
        .nth(2)
        .expect("more lines")
        .expect("text")
        .trim_start_matches("tick ")
        .parse()
        .expect("a tick");
    assert_eq!(later, first + 3, "followed lines come in order");
    let _ = follow.kill();
    let _ = follow.wait();

    // --previous of a crash-looping container; a container that never started.
    assert!(
        eventually(Duration::from_secs(60), || {
            ferry
                .kubectl(&["logs", "crasher", "--previous"])
                .stdout
                .starts_with(b"run at ")
        }),
        "no previous log: {}",
        ferry.ok(&["describe", "pod", "crasher"])
    );
    let error = ferry.fails(&["logs", "talker", "--previous"]);
    assert!(
        error.contains(r#"previous terminated container "talker" in pod "talker" not found"#),
        "{error}"
    );
    assert!(
        eventually(Duration::from_secs(30), || {
            let error = ferry.fails(&["logs", "no-image"]);
            error.contains(r#"container "no-image" in pod "no-image" is waiting to start: "#)
                && (error.contains("image can't be pulled")
                    || error.contains("trying and failing to pull image"))
        }),
        "{}",
        ferry.fails(&["logs", "no-image"])
    );

    // Exec: output, the exit code carried back, stdin piped in.
    assert_eq!(
        ferry.ok(&["exec", "talker", "--", "echo", "inside"]),
        "inside\n"
    );
    let exit = ferry.kubectl(&["exec", "talker", "--", "sh", "-c", "exit 3"]);
    assert_eq!(exit.status.code(), Some(3), "{exit:?}");
    // With a terminal (`-it`, kubectl on a pty from `script`): the container gets a tty, the
    // session has a resize stream, the exit code still comes back.
    let terminal = Command::new("script")
        .arg("-qec")
        .arg(format!(
            "kubectl --kubeconfig {} exec -it talker -- sh -c 'tty; exit 4'",
            ferry.kubeconfig.display()
        ))
        .arg("/dev/null")
        .stdin(Stdio::null())
        .output()
        .expect("script");
    let shown = String::from_utf8_lossy(&terminal.stdout);
    assert!(
        terminal.status.code() == Some(4) && shown.contains("/dev/pts/"),
        "{terminal:?}"
    );
    let piped = ferry.with_stdin(
        &["-v=4", "exec", "-i", "talker", "--", "cat"],
        "through stdin\n",
    );
    assert_eq!(String::from_utf8_lossy(&piped.stdout), "through stdin\n");
    // kubectl spoke WebSocket v5 (the kubelet bridges it to containerd's SPDY), with stdin's
    // end carried by v5's close signal: no fallback to SPDY.
    let said = String::from_utf8_lossy(&piped.stderr);
    assert!(
        !said.contains("RemoteCommand fallback") && said.contains("v5.channel.k8s.io"),
        "{said}"
    );
    let error = ferry.fails(&["exec", "no-image", "--", "true"]);
    assert!(
        !error.is_empty(),
        "exec into a container that never ran fails"
    );

    // cp both ways: the same bytes.
    let dir = tempfile::tempdir().expect("dir");
    let original: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let source = dir.path().join("in.bin");
    std::fs::write(&source, &original).expect("write");
    ferry.ok(&["cp", &source.to_string_lossy(), "talker:/tmp/in.bin"]);
    let back = dir.path().join("out.bin");
    ferry.ok(&["cp", "talker:/tmp/in.bin", &back.to_string_lossy()]);
    assert!(
        std::fs::read(&back).expect("read") == original,
        "cp changed the bytes"
    );

    // attach: the running container's output.
    let (mut attach, mut attached) = spawn_kubectl(ferry, &["attach", "talker"]);
    let line = attached.next().expect("a line").expect("text");
    assert!(line.starts_with("tick "), "{line}");
    let _ = attach.kill();
    let _ = attach.wait();

    // port-forward to the HTTP server's port (80, as nginx's).
    let log = dir.path().join("port-forward.log");
    let (mut forward, mut said) = spawn_kubectl_logging(
        ferry,
        &[
            "-v=4",
            "port-forward",
            "pod/web",
            ":80",
            "--address=127.0.0.1",
        ],
        Stdio::from(std::fs::File::create(&log).expect("log")),
    );
    let line = said.next().expect("a line").expect("text");
    // "Forwarding from 127.0.0.1:PORT -> 80"
    let port = line
        .split_whitespace()
        .nth(2)
        .and_then(|a| a.rsplit(':').next())
        .expect("a port")
        .to_string();
    let page = http_get(&format!("http://127.0.0.1:{port}/"));
    let _ = forward.kill();
    let _ = forward.wait();
    assert!(
        page.as_deref()
            .is_some_and(|p| p.contains("hello from ferry httpd")),
        "{page:?}"
    );
    // Over WebSocket, SPDY tunnelled: no fallback to a plain SPDY upgrade.
    let said = std::fs::read_to_string(&log).expect("log");
    assert!(!said.contains("fallback to secondary dialer"), "{said}");

    // kubectl debug: an ephemeral container in talker's process namespace sees its processes.
    ferry.ok(&[
        "debug",
        "talker",
        &format!("--image={BUSYBOX_BY_NAME}"),
        "--target=talker",
        "--container=debugger",
        "--",
        "ps",
    ]);
    assert!(
        eventually(Duration::from_secs(60), || {
            ferry
                .kubectl(&[
                    "get",
                    "pod",
                    "talker",
                    "-o",
                    "jsonpath={.status.ephemeralContainerStatuses[0].state.terminated.reason}",
                ])
                .stdout
                == b"Completed"
        }),
        "the debug container never ran: {}",
        ferry.ok(&["get", "pod", "talker", "-o", "yaml"])
    );
    let processes = ferry.ok(&["logs", "talker", "-c", "debugger"]);
    assert!(
        processes.contains("echo tick"),
        "the target's processes are not visible: {processes}"
    );
    let refused = ferry.fails(&[
        "patch",
        "pod",
        "talker",
        "--subresource=ephemeralcontainers",
        "--type=strategic",
        "-p",
        r#"{"spec":{"ephemeralContainers":[{"name":"bad","image":"busybox","ports":[{"containerPort":80}]}]}}"#,
    ]);
    assert!(
        refused.contains("].ports: Forbidden: cannot be set for an Ephemeral Container")
            && refused.contains(r#"The Pod "talker" is invalid"#),
        "{refused}"
    );

    // The kubelet itself: no certificate, 401; a certificate of the CA for a user the API
    // server does not authorize, 403.
    let node_port = ferry.ok(&[
        "get",
        "nodes",
        "-o",
        "jsonpath={.items[0].status.daemonEndpoints.kubeletEndpoint.Port}",
    ]);
    let kubelet = format!("https://127.0.0.1:{node_port}/containerLogs/default/talker/talker");
    let anonymous = run(
        "curl",
        &["-sk", "-o", "/dev/null", "-w", "%{http_code}", &kubelet],
    );
    assert_eq!(anonymous, "401");
    let tls = ferry.kubeconfig.parent().expect("data dir").join("tls");
    let key = dir.path().join("bob.key");
    let cert = dir.path().join("bob.crt");
    let made = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=bob/O=dev",
            "-keyout",
        ])
        .arg(&key)
        .args(["-out"])
        .arg(dir.path().join("bob.csr"))
        .output()
        .expect("openssl req");
    assert!(made.status.success(), "{made:?}");
    // A v3 client certificate (rustls refuses v1 ones).
    let extensions = dir.path().join("bob.ext");
    std::fs::write(&extensions, "extendedKeyUsage=clientAuth\n").expect("write");
    let signed = Command::new("openssl")
        .args(["x509", "-req", "-days", "1", "-extfile"])
        .arg(&extensions)
        .args(["-in"])
        .arg(dir.path().join("bob.csr"))
        .arg("-CA")
        .arg(tls.join("ca.crt"))
        .arg("-CAkey")
        .arg(tls.join("ca.key"))
        .args(["-CAcreateserial", "-out"])
        .arg(&cert)
        .output()
        .expect("openssl x509");
    assert!(signed.status.success(), "{signed:?}");
    let bob = run(
        "curl",
        &[
            "-sk",
            "--cert",
            &cert.to_string_lossy(),
            "--key",
            &key.to_string_lossy(),
            &kubelet,
        ],
    );
    assert_eq!(
        bob.trim(),
        "Forbidden (user=bob, verb=get, resource=nodes, subresource=proxy)"
    );

    // 200 log streams opened and dropped leave no file descriptor behind.
    let before = fds(server_pid);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        use futures::AsyncBufReadExt as _;
        let client = ferry_client::connect(&ferry.kubeconfig, "ferry-test")
            .await
            .expect("client");
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::namespaced(client, "default");
        let params = kube::api::LogParams {
            follow: true,
            tail_lines: Some(1),
            ..Default::default()
        };
        for _ in 0..200 {
            let mut stream = pods
                .log_stream("talker", &params)
                .await
                .expect("log stream")
                .lines();
            use futures::StreamExt as _;
            let line = stream.next().await.expect("a line").expect("text");
            assert!(line.starts_with("tick "), "{line}");
        }
    });
    drop(runtime);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut after = fds(server_pid);
    while after > before + 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        after = fds(server_pid);
    }
    assert!(
        after <= before + 10,
        "file descriptors of the server and kubelet: {before} before 200 dropped log streams, {after} after"
    );

    for pod in ["talker", "web", "crasher", "no-image"] {
        ferry.ok(&["delete", "pod", pod, "--grace-period=1", "--wait=false"]);
    }
}

/// The official Python client's pods, exec and port-forward calls (tests/python_agent), with
/// its own WebSocket streaming. The client and pytest come from scripts/test.sh's venv
/// (target/python) or `FERRY_PYTHON`.
pub fn official_python_client(ferry: &Ferry) {
    super::common::python_suite(ferry, "python_agent");
}

/// A client certificate of the cluster CA for `/CN=<user>` (a v3 one: rustls refuses v1),
/// written under `dir`; its certificate and key paths.
fn client_certificate(
    ferry: &Ferry,
    dir: &std::path::Path,
    user: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let tls = ferry.kubeconfig.parent().expect("data dir").join("tls");
    let key = dir.join(format!("{user}.key"));
    let csr = dir.join(format!("{user}.csr"));
    let cert = dir.join(format!("{user}.crt"));
    let extensions = dir.join(format!("{user}.ext"));
    std::fs::write(&extensions, "extendedKeyUsage=clientAuth\n").expect("write");
    let made = Command::new("openssl")
        .args(["req", "-new", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-subj"])
        .arg(format!("/CN={user}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr)
        .output()
        .expect("openssl req");
    assert!(made.status.success(), "{made:?}");
    let signed = Command::new("openssl")
        .args(["x509", "-req", "-days", "1", "-extfile"])
        .arg(&extensions)
        .arg("-in")
        .arg(&csr)
        .arg("-CA")
        .arg(tls.join("ca.crt"))
        .arg("-CAkey")
        .arg(tls.join("ca.key"))
        .args(["-CAcreateserial", "-out"])
        .arg(&cert)
        .output()
        .expect("openssl x509");
    assert!(signed.status.success(), "{signed:?}");
    (cert, key)
}

/// The kubelet's `/metrics/resource`, as metrics-server reads it: a user bound to
/// `nodes/metrics` (as metrics-server's ClusterRole binds it) gets the Prometheus text with
/// the running pod `pod`'s container `pod` in it; a user without it, upstream's 403.
pub fn resource_metrics(ferry: &Ferry, pod: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let port = ferry.ok(&[
        "get",
        "nodes",
        "-o",
        "jsonpath={.items[0].status.daemonEndpoints.kubeletEndpoint.Port}",
    ]);
    let url = format!("https://127.0.0.1:{port}/metrics/resource");
    let curl = |cert: &std::path::Path, key: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "-sk".to_string(),
            "--cert".to_string(),
            cert.to_string_lossy().into_owned(),
            "--key".to_string(),
            key.to_string_lossy().into_owned(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(url.clone());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run("curl", &args)
    };

    let (cert, key) = client_certificate(ferry, dir.path(), "nobody");
    assert_eq!(
        curl(&cert, &key, &[]).trim(),
        "Forbidden (user=nobody, verb=get, resource=nodes, subresource=metrics)"
    );

    ferry.ok(&[
        "create",
        "clusterrole",
        "e2e-node-metrics",
        "--verb=get",
        "--resource=nodes/metrics",
    ]);
    ferry.ok(&[
        "create",
        "clusterrolebinding",
        "e2e-node-metrics",
        "--clusterrole=e2e-node-metrics",
        "--user=e2e-scraper",
    ]);
    let (cert, key) = client_certificate(ferry, dir.path(), "e2e-scraper");
    let prefix = format!(
        r#"container_cpu_usage_seconds_total{{container="{pod}",namespace="default",pod="{pod}"}} "#
    );
    let mut text = String::new();
    assert!(
        eventually(Duration::from_secs(30), || {
            text = curl(&cert, &key, &[]);
            text.contains(&prefix)
        }),
        "no {prefix}in {text}"
    );
    let line = text
        .lines()
        .find(|l| l.starts_with(&prefix))
        .expect("the line");
    let quoted = format!(r#"pod="{pod}""#);
    for line in text.lines().filter(|l| l.contains(&quoted)) {
        eprintln!("{line}");
    }
    let fields: Vec<&str> = line[prefix.len()..].split(' ').collect();
    let seconds: f64 = fields[0].parse().expect("core-seconds");
    let millis: u128 = fields.get(1).expect("a timestamp").parse().expect("ms");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    assert!(seconds > 0.0, "{line}");
    assert!(millis.abs_diff(now) < 120_000, "{line}: now is {now}");
    for family in [
        "# TYPE container_cpu_usage_seconds_total counter",
        "# TYPE container_memory_working_set_bytes gauge",
        "# TYPE node_cpu_usage_seconds_total counter",
        "# TYPE node_memory_working_set_bytes gauge",
        "resource_scrape_error 0",
    ] {
        assert!(text.lines().any(|l| l == family), "no {family} in {text}");
    }
    for prefix in [
        format!(
            r#"container_memory_working_set_bytes{{container="{pod}",namespace="default",pod="{pod}"}} "#
        ),
        format!(
            r#"container_start_time_seconds{{container="{pod}",namespace="default",pod="{pod}"}} "#
        ),
        format!(r#"pod_cpu_usage_seconds_total{{namespace="default",pod="{pod}"}} "#),
        format!(r#"pod_memory_working_set_bytes{{namespace="default",pod="{pod}"}} "#),
        "node_cpu_usage_seconds_total ".to_string(),
        "node_memory_working_set_bytes ".to_string(),
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&prefix)),
            "no {prefix}in {text}"
        );
    }
    let content_type = curl(&cert, &key, &["-o", "/dev/null", "-w", "%{content_type}"]);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");

    ferry.ok(&["delete", "clusterrolebinding", "e2e-node-metrics"]);
    ferry.ok(&["delete", "clusterrole", "e2e-node-metrics"]);
}
