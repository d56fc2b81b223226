//! The web view at `/ui/`: the cluster's pods, each with the last step of its journey, and the
//! journey of the pod picked as a live waterfall (one row per step, grouped by the component
//! that took it, placed at its real start offset with its real duration, failures marked).
//!
//! - **Who sees it**: `/ui/…` is a non-resource path behind the same filters as the API, so an
//!   anonymous browser gets 401 and a user RBAC does not allow gets 403; only `cluster-admin`'s
//!   `nonResourceURLs: ["*"]` (the `system:masters` group) allows it by default, and the
//!   `ferry:journey-reader` ClusterRole (`get` on `/journey/v1/*` and `/ui/*`) lets an
//!   administrator give it to others, with `view` for the pods it lists. A browser gets
//!   in with the user's client certificate, or through `kubectl proxy`, which adds the
//!   kubeconfig's credentials (certificate or token): `kubectl proxy`, then
//!   `http://127.0.0.1:8001/ui/`.
//! - **Where the data comes from**: the page holds none; it reads the API as any client does,
//!   with the same credentials: `api/v1/pods` (list, then watch) and the journey paths
//!   (`journey/v1/objects/{uid}`, `journey/v1/traces/{traceId}?watch=1`,
//!   `journey/v1/spans?watch=1`, see [`crate::journey`]). Its URLs are relative to `/ui/`, so it
//!   also works under a proxy's prefix.
//! - **What is served**: the files beside this one, compiled in (no external assets, no build
//!   step), and `steps.json`, made from [`ferry_journey::steps::STEPS`] so that the page names
//!   and orders the stages as `ferry trace` does.

use ferry_journey::steps::{Stage, STEPS};
use serde_json::{json, Map, Value};

use crate::body::{self, Response};
use crate::request::RequestInfo;
use crate::status::ApiError;

/// The path the web view is served under.
pub const PREFIX: &str = "/ui";

/// Seed 004's nine stages, in order, with the words the page shows for each.
const STAGES: [(Stage, &str); 9] = [
    (Stage::Request, "request"),
    (Stage::Admission, "admission"),
    (Stage::Persisted, "persisted"),
    (Stage::Controller, "controller"),
    (Stage::Scheduler, "scheduled"),
    (Stage::Kubelet, "kubelet"),
    (Stage::Runtime, "containers"),
    (Stage::Ready, "ready"),
    (Stage::Traffic, "traffic"),
];

/// The seven components of the seeds, one lane of the waterfall each: its name, the
/// components (`SpanRecord::component`, `*` standing for any beginning, as ferry's controllers
/// are each their own component) whose steps go in it, and the steps that go in it
/// whoever took them (the store's write is the API server's step but etcd's time; the runtime
/// stage is the container runtime's work, asked for by the kubelet over CRI).
const LANES: [(&str, &[&str], &[&str]); 7] = [
    ("kubectl", &["kubectl"], &[]),
    ("API server", &["kube-apiserver"], &[]),
    ("etcd", &["etcd"], &["persisted"]),
    (
        "controller manager",
        &["kube-controller-manager", "*-controller"],
        &[],
    ),
    ("scheduler", &["kube-scheduler"], &[]),
    ("kubelet", &["kubelet"], &[]),
    ("container runtime", &["containerd", "cri-o"], &[]),
];

/// One file of the page.
struct Asset {
    /// Its path under [`PREFIX`] (`/` is the page itself).
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: [Asset; 4] = [
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("index.html"),
    },
    Asset {
        path: "/index.html",
        content_type: "text/html; charset=utf-8",
        body: include_str!("index.html"),
    },
    Asset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("app.js"),
    },
    Asset {
        path: "/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("style.css"),
    },
];

/// The page may load only its own files and talk only to its own origin; no other site may
/// frame it.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Whether `path` is the web view's.
pub fn serves(path: &str) -> bool {
    path == PREFIX
        || path
            .strip_prefix(PREFIX)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// `GET /ui/…`: the page, its script and style, and `steps.json`; `/ui` is redirected to
/// `/ui/` (the page's relative URLs need the slash).
pub fn handle(info: &RequestInfo) -> Result<Response, ApiError> {
    if info.verb != "get" && info.verb != "head" {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let rest = info.path.strip_prefix(PREFIX).unwrap_or("");
    if rest.is_empty() {
        return Ok(redirect_to_slash());
    }
    let response = if rest == "/steps.json" {
        body::json(200, &steps())
    } else {
        let asset = ASSETS
            .iter()
            .find(|a| a.path == rest)
            .ok_or_else(ApiError::path_not_found)?;
        body::response(200, asset.content_type, asset.body)
    };
    Ok(with_headers(response))
}

/// `/ui` → `ui/`: relative, so that it stays under a proxy's prefix.
fn redirect_to_slash() -> Response {
    let mut response = body::response(301, "text/plain; charset=utf-8", "");
    response.headers_mut().insert(
        http::header::LOCATION,
        http::HeaderValue::from_static("ui/"),
    );
    response
}

fn with_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_SECURITY_POLICY,
        http::HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    // A new server version brings new files; what the page shows is never cached anyway.
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache"),
    );
    response
}

/// What the page needs to know about steps: the stages' names in order, each known step's
/// stage (its index) and, when it is fixed, its lane; the lanes' names; and which lane each
/// component's other steps go in (by name, or by a `*` pattern).
fn steps() -> Value {
    let stage_index = |stage: Stage| STAGES.iter().position(|(s, _)| *s == stage);
    let mut steps = Map::new();
    for (name, stage) in STEPS {
        let mut step = Map::new();
        if let Some(index) = stage_index(*stage) {
            step.insert("stage".into(), json!(index));
        }
        if let Some(lane) = lane_of_step(name, *stage) {
            step.insert("lane".into(), json!(lane));
        }
        steps.insert((*name).to_string(), Value::Object(step));
    }
    let components: Map<String, Value> = LANES
        .iter()
        .enumerate()
        .flat_map(|(index, (_, components, _))| {
            components
                .iter()
                .map(move |c| ((*c).to_string(), json!(index)))
        })
        .collect();
    json!({
        "stages": STAGES.iter().map(|(_, label)| *label).collect::<Vec<_>>(),
        "lanes": LANES.iter().map(|(name, _, _)| *name).collect::<Vec<_>>(),
        "steps": steps,
        "components": components,
    })
}

/// The lane a step goes in whoever took it: the one that names it, or the container
/// runtime's for the runtime stage.
fn lane_of_step(step: &str, stage: Stage) -> Option<usize> {
    LANES
        .iter()
        .position(|(_, _, steps)| steps.contains(&step))
        .or_else(|| (stage == Stage::Runtime).then_some(LANES.len() - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn get(path: &str) -> Response {
        let info = crate::request::parse("GET", path, false);
        assert!(serves(&info.path), "{path}");
        handle(&info).unwrap_or_else(ApiError::into_response)
    }

    async fn text(response: Response) -> String {
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    fn content_type(response: &Response) -> &str {
        response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[test]
    fn only_paths_under_ui_are_the_web_views() {
        assert!(serves("/ui"));
        assert!(serves("/ui/"));
        assert!(serves("/ui/app.js"));
        assert!(!serves("/uix"));
        assert!(!serves("/api/v1/pods"));
        assert!(!serves("/journey/v1/spans"));
    }

    #[tokio::test]
    async fn the_page_and_its_files_are_served_with_their_types() {
        for (path, content, needle) in [
            ("/ui/", "text/html", "<script src=\"app.js\""),
            (
                "/ui/index.html",
                "text/html",
                "<link rel=\"stylesheet\" href=\"style.css\"",
            ),
            ("/ui/app.js", "text/javascript", "journey/v1/traces/"),
            ("/ui/style.css", "text/css", ".waterfall"),
            ("/ui/steps.json", "application/json", "\"persisted\""),
        ] {
            let response = get(path);
            assert_eq!(response.status(), 200, "{path}");
            assert!(content_type(&response).starts_with(content), "{path}");
            let headers = response.headers();
            assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
            assert!(
                headers["content-security-policy"]
                    .to_str()
                    .is_ok_and(|csp| csp.contains("frame-ancestors 'none'")),
                "{path}"
            );
            assert!(text(response).await.contains(needle), "{path}: {needle}");
        }
    }

    #[test]
    fn ui_without_its_slash_is_redirected_and_unknown_files_are_404() {
        let response = get("/ui");
        assert_eq!(response.status(), 301);
        assert_eq!(response.headers()[http::header::LOCATION], "ui/");
        assert_eq!(get("/ui/nope.js").status(), 404);
        assert_eq!(get("/ui/app.js/").status(), 404);
    }

    #[test]
    fn only_get_and_head_are_answered() {
        let info = crate::request::parse("POST", "/ui/", false);
        let response = handle(&info).unwrap_or_else(ApiError::into_response);
        assert_eq!(response.status(), 405);
        let info = crate::request::parse("HEAD", "/ui/app.js", false);
        assert!(handle(&info).is_ok_and(|r| r.status() == 200));
    }

    #[test]
    fn every_step_has_its_stage_and_the_stores_and_runtimes_have_their_lanes() {
        let steps = steps();
        let stages = steps["stages"].as_array().expect("stages");
        assert_eq!(stages.len(), 9);
        for (name, stage) in STEPS {
            let index = steps["steps"][*name]["stage"].as_u64().expect("a stage");
            assert_eq!(
                Some(index as usize),
                STAGES.iter().position(|(s, _)| s == stage)
            );
        }
        let lanes = steps["lanes"].as_array().expect("lanes");
        let lane = |index: &Value| lanes[index.as_u64().expect("a lane") as usize].clone();
        assert_eq!(lane(&steps["steps"]["persisted"]["lane"]), "etcd");
        assert_eq!(
            lane(&steps["steps"]["sandbox created"]["lane"]),
            "container runtime"
        );
        assert_eq!(
            lane(&steps["steps"]["container started"]["lane"]),
            "container runtime"
        );
        assert_eq!(steps["steps"]["bound"].get("lane"), None);
        assert_eq!(lane(&steps["components"]["kube-scheduler"]), "scheduler");
        assert_eq!(lane(&steps["components"]["kube-apiserver"]), "API server");
        assert_eq!(lane(&steps["components"]["kubelet"]), "kubelet");
        assert_eq!(
            lane(&steps["components"]["*-controller"]),
            "controller manager"
        );
    }

    #[test]
    fn the_stages_are_the_nine_in_order() {
        assert!(STAGES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(STEPS
            .iter()
            .all(|(_, stage)| STAGES.iter().any(|(s, _)| s == stage)));
    }
}
