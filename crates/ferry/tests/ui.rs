//! Black-box test of the web view (`/ui/`): a real `ferry server` with `ferry sim` nodes, the
//! page opened in a real headless Chromium driven through chromedriver (WebDriver), reached
//! through `kubectl proxy` with the test kubeconfig's admin credentials, as a user would.
//! A screenshot is left in `target/test-artifacts/ui/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (scripts/install-deps.sh); ignored by a
//! plain `cargo test`, run by scripts/test.sh with `--ignored`.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::ops::Not;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{eventually, Ferry, Sim};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// How long the page may take to show what the cluster did.
const PATIENCE: Duration = Duration::from_secs(30);

/// A child process killed (by pid) and reaped when dropped, also when the test fails; with
/// its process group when it leads one (chromedriver: the browser it started goes with it).
struct Killed {
    child: Child,
    group: bool,
}

impl Killed {
    fn process(child: Child) -> Killed {
        Killed {
            child,
            group: false,
        }
    }

    /// `command` started as the leader of a new process group.
    fn group(command: &mut Command) -> Killed {
        let child = command.process_group(0).spawn().expect("start a process");
        Killed { child, group: true }
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        if self.group {
            // The group's id is its leader's pid.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.child.id())])
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path of `program` on `PATH`.
fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Chromium and its WebDriver, or a failure saying how to get them.
fn browser() -> (PathBuf, PathBuf) {
    let chromium = on_path("chromium").or_else(|| on_path("chromium-browser"));
    let driver = on_path("chromedriver");
    match (chromium, driver) {
        (Some(chromium), Some(driver)) => (chromium, driver),
        _ => panic!(
            "this test needs Chromium and chromedriver on PATH: \
             `apt-get install chromium chromium-driver` (scripts/install-deps.sh installs them)"
        ),
    }
}

/// A free port on 127.0.0.1 (free when this returns; chromedriver takes it right after).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// chromedriver on a free 127.0.0.1 port: its WebDriver URL.
fn start_chromedriver(driver: &Path) -> (Killed, String) {
    let port = free_port();
    let child = Killed::group(
        Command::new(driver)
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    assert!(
        eventually(Duration::from_secs(10), || TcpStream::connect((
            "127.0.0.1",
            port
        ))
        .is_ok()),
        "chromedriver did not listen on 127.0.0.1:{port}"
    );
    (child, format!("http://127.0.0.1:{port}"))
}

/// `kubectl proxy` on a free port with the test kubeconfig's credentials: its URL.
fn start_kubectl_proxy(ferry: &Ferry) -> (Killed, String) {
    let mut child = Command::new("kubectl")
        .env("KUBECONFIG", &ferry.kubeconfig)
        .args(["proxy", "--port=0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kubectl proxy");
    let stdout = child.stdout.take().expect("stdout");
    let child = Killed::process(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read kubectl proxy's output");
    let address = line
        .trim()
        .strip_prefix("Starting to serve on ")
        .unwrap_or_else(|| panic!("kubectl proxy said {line:?}"));
    (child, format!("http://{address}"))
}

fn start_cluster() -> (Ferry, Sim, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ferry = Ferry::start_in(dir.path(), &[]);
    let sim = Sim::start(&ferry, 1, &[]);
    assert!(
        eventually(PATIENCE, || ferry
            .ok(&["get", "nodes", "--no-headers"])
            .contains(" Ready ")),
        "the sim node did not become Ready: {}",
        ferry.ok(&["get", "nodes"])
    );
    (ferry, sim, dir)
}

/// Where test outputs go: `target/test-artifacts/ui/` (`CARGO_TARGET_DIR` when set, else the
/// target dir this test binary was built in).
fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            // target/<profile>/deps/ui-<hash>
            let exe = std::env::current_exe().ok()?;
            Some(exe.parent()?.parent()?.parent()?.to_path_buf())
        })
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("test-artifacts/ui");
    std::fs::create_dir_all(&dir).expect("create the artifacts dir");
    dir
}

/// The page's pods: `{name, step}` each, `step` the furthest step shown for it.
const PODS: &str = "return [...document.querySelectorAll('#pods li')]
    .map(li => ({name: li.dataset.name, step: li.dataset.step}));";

/// The waterfall: its non-empty lanes, its rows' steps (and which failed), the lit stages.
const WATERFALL: &str = "const all = (q) => [...document.querySelectorAll(q)];
    return {
      title: document.getElementById('journey-title').textContent,
      lanes: all('#waterfall .lane:not(.empty)').map(l => l.dataset.lane),
      steps: all('#waterfall .row').map(r => r.dataset.step),
      failed: all('#waterfall .row.failed').map(r => r.dataset.step),
      bars: all('#waterfall .row .bar').map(b => b.style.width).filter(w => w.endsWith('%')).length,
      stages: all('#stages li.done, #stages li.current').map(s => s.dataset.stage),
      failedStages: all('#stages li.failed').map(s => s.dataset.stage),
      problem: document.getElementById('problem').hidden ? '' : document.getElementById('problem').textContent,
    };";

/// Runs `script` in the page until `done` says yes; fails with the last answer after a while.
async fn until(page: &Client, what: &str, script: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let value = page.execute(script, vec![]).await.expect("run a script");
        if done(&value) {
            return value;
        }
        if Instant::now() > deadline {
            let shot = page.screenshot().await.unwrap_or_default();
            let _ = std::fs::write(artifacts().join("failure.png"), shot);
            panic!("{what}: the page shows {value:#}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Saves what the page shows as `name` in the artifacts dir.
async fn screenshot(page: &Client, name: &str) {
    let shot = page.screenshot().await.expect("a screenshot");
    assert!(shot.starts_with(b"\x89PNG"), "not a PNG");
    let path = artifacts().join(name);
    std::fs::write(&path, shot).expect("save the screenshot");
    eprintln!("screenshot: {}", path.display());
}

/// Whether the waterfall is the journey of the pod `key` (`namespace/name`, or its beginning).
fn titled(waterfall: &Value, key: &str) -> bool {
    waterfall["title"]
        .as_str()
        .is_some_and(|t| t.contains(&format!("Journey of {key}")))
}

fn has(list: &Value, item: &str) -> bool {
    list.as_array()
        .is_some_and(|items| items.iter().any(|i| i == item))
}

fn pod_step<'a>(pods: &'a Value, name: &str) -> Option<&'a str> {
    pods.as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["step"].as_str())
}

async fn open_pod(page: &Client, prefix: &str) {
    page.find(Locator::Css(&format!("#pods li[data-name^='{prefix}']")))
        .await
        .expect("the pod in the list")
        .click()
        .await
        .expect("click the pod");
}

#[test]
#[ignore = "needs chromium and chromium-driver; scripts/test.sh runs it"]
fn the_web_view_lists_pods_and_follows_their_journeys_live() {
    let (chromium, driver) = browser();
    let (ferry, _sim, _dir) = start_cluster();
    ferry.ok(&[
        "create",
        "deployment",
        "web",
        "--image=registry.local/web:1",
    ]);
    assert!(
        eventually(PATIENCE, || ferry
            .ok(&[
                "get",
                "pods",
                "-l",
                "app=web",
                "-o",
                "jsonpath={.items[*].spec.nodeName}"
            ])
            .trim()
            .is_empty()
            .not()),
        "the deployment's pod was not scheduled: {}",
        ferry.ok(&["get", "pods", "-o", "wide"])
    );
    // Only administrators see the page: a service account is refused.
    ferry.ok(&["create", "serviceaccount", "viewer"]);
    let token = ferry.ok(&["create", "token", "viewer"]);
    let refused = ferry.kubectl_with_token(token.trim(), &["get", "--raw", "/ui/"]);
    assert!(
        !refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("Forbidden"),
        "a service account read /ui/: {}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let (_proxy, proxy_url) = start_kubectl_proxy(&ferry);
    let (_chromedriver, webdriver) = start_chromedriver(&driver);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let capabilities = json!({
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,1400"],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("an object")
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let page = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&webdriver)
            .await
            .expect("a WebDriver session");

        // Without credentials the server itself refuses the page.
        page.goto(&format!("{}/ui/", ferry.url))
            .await
            .expect("open /ui/");
        let source = page.source().await.expect("page source");
        assert!(
            source.contains("Unauthorized") && !source.contains("app.js"),
            "an anonymous browser got: {source}"
        );

        // Through kubectl proxy (the kubeconfig's admin credentials): the pods, each with
        // its furthest step.
        page.goto(&format!("{proxy_url}/ui"))
            .await
            .expect("open /ui");
        let pods = until(&page, "the deployment's pod with a step", PODS, |pods| {
            pods.as_array().is_some_and(|pods| {
                pods.iter().any(|p| {
                    p["name"].as_str().is_some_and(|n| n.starts_with("web-")) && p["step"] != ""
                })
            })
        })
        .await;
        assert!(
            page.current_url().await.expect("url").path() == "/ui/",
            "{pods}"
        );

        // Its journey: the Deployment's, the ReplicaSet's and the pod's steps, by component.
        open_pod(&page, "web-").await;
        let journey = until(&page, "the deployment pod's journey", WATERFALL, |w| {
            titled(w, "default/web-")
                && ["persisted", "created replicaset", "created pod", "bound"]
                    .iter()
                    .all(|s| has(&w["steps"], s))
        })
        .await;
        for lane in ["API server", "etcd", "controller manager", "scheduler"] {
            assert!(has(&journey["lanes"], lane), "no {lane} lane: {journey:#}");
        }
        for stage in [
            "request",
            "admission",
            "persisted",
            "controller",
            "scheduled",
        ] {
            assert!(
                has(&journey["stages"], stage),
                "stage {stage} not lit: {journey:#}"
            );
        }
        assert_eq!(
            journey["bars"].as_u64(),
            journey["steps"].as_array().map(|s| s.len() as u64),
            "every step has a bar: {journey:#}"
        );
        assert_eq!(journey["problem"], "", "{journey:#}");
        screenshot(&page, "deployment-pod.png").await;

        // A pod created now appears, and its steps arrive as they happen.
        ferry.ok(&["run", "live", "--image=registry.local/web:1"]);
        // Steps of the stages before the pod is bound: the list must move past them.
        let unbound = [
            "",
            "request",
            "authorized",
            "persisted",
            "queued",
            "filtered",
            "scored",
        ];
        until(&page, "the new pod bound, in the list", PODS, |pods| {
            pod_step(pods, "live").is_some_and(|step| !unbound.contains(&step))
        })
        .await;
        open_pod(&page, "live").await;
        let live = until(&page, "the new pod's journey", WATERFALL, |w| {
            titled(w, "default/live")
                && ["request", "persisted", "bound"]
                    .iter()
                    .all(|s| has(&w["steps"], s))
        })
        .await;
        assert!(
            !has(&live["steps"], "created pod"),
            "another pod's steps: {live:#}"
        );

        // A pod no node fits: its failed step is marked. Then a node fits, and the timeline
        // left open shows the pod bound, as it happens.
        ferry.ok(&[
            "run",
            "stuck",
            "--image=registry.local/web:1",
            "--overrides={\"spec\":{\"nodeSelector\":{\"disk\":\"ssd\"}}}",
        ]);
        until(&page, "the stuck pod in the list", PODS, |pods| {
            pod_step(pods, "stuck").is_some()
        })
        .await;
        open_pod(&page, "stuck").await;
        let stuck = until(&page, "the stuck pod's failed step", WATERFALL, |w| {
            titled(w, "default/stuck")
                && has(&w["failed"], "unschedulable")
                && has(&w["failedStages"], "scheduled")
        })
        .await;
        assert!(!has(&stuck["steps"], "bound"), "{stuck:#}");
        let node = ferry.ok(&["get", "nodes", "-o", "name"]);
        ferry.ok(&["label", node.trim(), "disk=ssd"]);
        until(&page, "the stuck pod bound, live", WATERFALL, |w| {
            titled(w, "default/stuck")
                && has(&w["failed"], "unschedulable")
                && has(&w["steps"], "bound")
                && has(&w["stages"], "scheduled")
        })
        .await;
        screenshot(&page, "stuck-then-bound-pod.png").await;

        // A deleted pod leaves the list.
        ferry.ok(&["delete", "pod", "live", "--wait=false"]);
        until(&page, "the deleted pod gone", PODS, |pods| {
            pod_step(pods, "live").is_none() && pod_step(pods, "stuck").is_some()
        })
        .await;
        page.close().await.expect("end the WebDriver session");
    });
}
