//! `ferry trace`: a pod's journey through the cluster as a terminal waterfall, every step with
//! its component, start offset, duration and result, read from the API server's journey
//! endpoints (`/journey/v1/…`), and how it ends when the pod is not Ready (why it is Pending,
//! why it crashes, why it is not ready).
//!
//! [`lineage`] picks the pod's steps out of its traces, [`render`] draws them, [`why`] says
//! how the journey ends, [`follow`] prints steps as they happen.

mod api;
pub(crate) mod follow;
mod lineage;
mod render;
mod why;

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::Context as _;
use ferry_journey::{SpanRecord, TraceContext};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ListParams, LogParams};
use kube::Api;
use serde_json::{json, Value};

use api::Trace;
use lineage::Subject;
use render::Header;
use why::Crash;

/// Options of `ferry trace`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  ferry trace pod/web-1 -n shop
  ferry trace deployment/web --output json
  ferry trace --follow pod/web-1
  ferry trace --follow -- kubectl apply -f web.yaml")]
pub struct Args {
    /// What to trace: pod/NAME (or a bare NAME), deployment/NAME, rs/NAME or replicaset/NAME.
    /// Leave it out with `--follow -- COMMAND`: the first pod the command's objects make.
    target: Option<String>,
    /// The namespace.
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// After the steps so far, print each new one as it happens, until the pod is Ready
    /// (or Ctrl-C).
    #[arg(short, long)]
    follow: bool,
    /// `text` (a waterfall) or `json` (with `--follow`: one step a line).
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// The cluster's kubeconfig (the first of `$KUBECONFIG`, else ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// A command to run while following (`-- kubectl apply -f x.yaml`): the journey watched
    /// starts before it runs.
    #[arg(last = true)]
    command: Vec<String>,
}

/// How `ferry trace` prints.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// A waterfall for people.
    Text,
    /// JSON for tools.
    Json,
}

/// What a target names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Pod,
    Deployment,
    ReplicaSet,
}

/// `pod/NAME`, `deployment/NAME`, `rs/NAME`, `replicaset/NAME`, or a bare pod NAME (the
/// spellings kubectl accepts for these resources).
fn parse_target(text: &str) -> anyhow::Result<(Kind, String)> {
    let (kind, name) = match text.split_once('/') {
        Some((kind, name)) => (kind, name),
        None => ("pod", text),
    };
    let kind = match kind.to_ascii_lowercase().as_str() {
        "pod" | "pods" | "po" => Kind::Pod,
        "deployment" | "deployments" | "deploy" => Kind::Deployment,
        "rs" | "replicaset" | "replicasets" => Kind::ReplicaSet,
        other => anyhow::bail!("cannot trace {other:?}: give pod/NAME, deployment/NAME or rs/NAME"),
    };
    if name.is_empty() || name.contains('/') {
        anyhow::bail!("{text:?}: give KIND/NAME with one name");
    }
    Ok((kind, name.to_string()))
}

/// The kubeconfig: `--kubeconfig` or the first file of `$KUBECONFIG` (clap reads both into
/// one value), else `~/.kube/config`, as kubectl picks it.
fn kubeconfig_path(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(first) = given
        .as_ref()
        .and_then(|g| std::env::split_paths(g).find(|p| !p.as_os_str().is_empty()))
    {
        return Ok(first);
    }
    let home = std::env::var_os("HOME").context("no --kubeconfig, $KUBECONFIG or $HOME")?;
    Ok(PathBuf::from(home).join(".kube").join("config"))
}

/// `ferry trace`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let kubeconfig = kubeconfig_path(args.kubeconfig)?;
    let client = ferry_client::connect(&kubeconfig, "ferry-trace").await?;
    let target = args.target.as_deref().map(parse_target).transpose()?;
    match (target, args.command.is_empty()) {
        (None, false) => follow::command(&client, &args.command, args.output).await,
        (None, true) => anyhow::bail!("give what to trace (pod/NAME) or `--follow -- COMMAND`"),
        (Some(_), false) => {
            anyhow::bail!("give either what to trace or a command to run, not both")
        }
        (Some((Kind::Pod, name)), true) => {
            let pod = Api::<Pod>::namespaced(client.clone(), &args.namespace)
                .get(&name)
                .await
                .with_context(|| format!("pod {}/{name}", args.namespace))?;
            if args.follow {
                follow::pod(&client, pod, Vec::new(), args.output).await
            } else {
                print_pod(&client, pod, args.output).await
            }
        }
        (Some((kind, name)), true) => {
            let workload = Workload::get(&client, kind, &args.namespace, &name).await?;
            workload.print(&client, args.follow, args.output).await
        }
    }
}

/// A pod's journey and how it ends, as printed.
struct PodReport {
    pod: Pod,
    steps: Vec<SpanRecord>,
    dropped: usize,
    pending: Option<String>,
    crash: Option<Crash>,
    not_ready: Option<String>,
}

/// The object a pod's (or workload's) steps are about.
fn subject(resource: &str, meta: &ObjectMeta) -> Subject {
    Subject {
        uid: meta.uid.clone().unwrap_or_default(),
        resource: resource.to_string(),
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
    }
}

/// The trace id in an object's annotation.
fn trace_id(meta: &ObjectMeta) -> Option<String> {
    let context = TraceContext::parse(ferry_journey::of_object(meta)?)?;
    Some(context.trace_id.to_string())
}

/// Every kept trace of an object: those with a step for its uid (the proxy's for a pod are in
/// traces of their own) and the one its annotation names.
async fn traces_of(client: &kube::Client, meta: &ObjectMeta) -> anyhow::Result<Vec<Trace>> {
    let mut traces = match meta.uid.as_deref() {
        Some(uid) => api::object_traces(client, uid).await?,
        None => Vec::new(),
    };
    if let Some(id) = trace_id(meta).filter(|id| traces.iter().all(|t| t.trace_id != *id)) {
        traces.extend(api::trace(client, &id).await?);
    }
    Ok(traces)
}

/// The steps of several traces, each once, and how many they did not keep.
fn merge(traces: Vec<Trace>) -> (Vec<SpanRecord>, usize) {
    let mut seen = HashSet::new();
    let mut spans = Vec::new();
    let mut dropped = 0;
    for trace in traces {
        dropped += trace.dropped;
        for span in trace.spans {
            if seen.insert((span.trace_id.clone(), span.span_id.clone())) {
                spans.push(span);
            }
        }
    }
    (spans, dropped)
}

/// The header of a pod's waterfall.
fn pod_header(pod: &Pod) -> Header {
    Header {
        kind: "pod".into(),
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        phase: pod.status.as_ref().and_then(|s| s.phase.clone()),
    }
}

impl PodReport {
    /// Reads the pod's journey and, when it is not Ready, why.
    async fn read(client: &kube::Client, pod: Pod) -> anyhow::Result<PodReport> {
        let (spans, dropped) = merge(traces_of(client, &pod.metadata).await?);
        let steps: Vec<SpanRecord> = lineage::journey(&spans, &subject("pods", &pod.metadata))
            .into_iter()
            .cloned()
            .collect();
        let mut report = PodReport {
            pod,
            steps,
            dropped,
            pending: None,
            crash: None,
            not_ready: None,
        };
        report.explain(client).await;
        Ok(report)
    }

    /// Fills in how the journey ends: pending, crashing, or not ready.
    async fn explain(&mut self, client: &kube::Client) {
        let refs: Vec<&SpanRecord> = self.steps.iter().collect();
        self.pending = why::pending(&self.pod, &refs);
        self.crash = why::crashed(&self.pod);
        if let Some(crash) = self.crash.as_mut() {
            crash.log_tail = previous_log_tail(client, &self.pod, &crash.container).await;
        }
        if self.pending.is_none() && self.crash.is_none() {
            self.not_ready = why::not_ready(&self.pod);
        }
    }

    /// The waterfall and its ending.
    fn text(&self) -> String {
        let refs: Vec<&SpanRecord> = self.steps.iter().collect();
        let mut out = render::waterfall(&pod_header(&self.pod), &refs, self.dropped);
        for line in self.ending() {
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    /// The lines that say why the pod is not Ready, if it is not.
    fn ending(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(pending) = &self.pending {
            lines.push(format!("Pending: {pending}"));
        }
        if let Some(crash) = &self.crash {
            lines.extend(why::crash_lines(crash, jiff::Timestamp::now()));
        }
        lines.extend(self.not_ready.clone());
        lines
    }

    /// `{"pod": {…}, "steps": […], "pending": …, "crash": …}`.
    fn json(&self) -> Value {
        let header = pod_header(&self.pod);
        json!({
            "pod": {
                "name": header.name,
                "namespace": header.namespace,
                "uid": self.pod.metadata.uid,
                "node": header.node,
                "phase": header.phase,
            },
            "steps": self.steps,
            "dropped": self.dropped,
            "pending": self.pending,
            "crash": self.crash.as_ref().map(Crash::to_json),
            "notReady": self.not_ready,
        })
    }
}

/// The last 10 lines of a container's previous run (none when the log cannot be read: the
/// rest of the report still helps).
async fn previous_log_tail(client: &kube::Client, pod: &Pod, container: &str) -> Vec<String> {
    let pods = Api::<Pod>::namespaced(
        client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    );
    let params = LogParams {
        container: Some(container.to_string()),
        previous: true,
        tail_lines: Some(10),
        ..LogParams::default()
    };
    match pods
        .logs(pod.metadata.name.as_deref().unwrap_or_default(), &params)
        .await
    {
        Ok(text) => text.lines().map(str::to_string).collect(),
        Err(e) => vec![format!("(the previous log could not be read: {e})")],
    }
}

/// `ferry trace pod/NAME` without `--follow`.
async fn print_pod(client: &kube::Client, pod: Pod, output: Output) -> anyhow::Result<()> {
    let report = PodReport::read(client, pod).await?;
    match output {
        Output::Text => print!("{}", report.text()),
        Output::Json => println!("{}", serde_json::to_string_pretty(&report.json())?),
    }
    Ok(())
}

/// A Deployment or ReplicaSet and its current pods (found through owner references).
struct Workload {
    kind: Kind,
    meta: ObjectMeta,
    pods: Vec<Pod>,
}

/// Whether `meta` has an owner with one of these uids.
fn owned_by(meta: &ObjectMeta, owners: &HashSet<String>) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| owners.contains(&o.uid))
}

impl Workload {
    /// Reads the workload, its ReplicaSets (for a Deployment) and their pods.
    async fn get(
        client: &kube::Client,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> anyhow::Result<Workload> {
        let all = ListParams::default();
        let replicasets = Api::<ReplicaSet>::namespaced(client.clone(), namespace);
        let (meta, owners) = match kind {
            Kind::Deployment => {
                let deployment = Api::<Deployment>::namespaced(client.clone(), namespace)
                    .get(name)
                    .await
                    .with_context(|| format!("deployment {namespace}/{name}"))?;
                let uid = HashSet::from_iter(deployment.metadata.uid.clone());
                let owned = replicasets
                    .list(&all)
                    .await?
                    .items
                    .into_iter()
                    .filter(|rs| owned_by(&rs.metadata, &uid));
                let owners = owned.filter_map(|rs| rs.metadata.uid).collect();
                (deployment.metadata, owners)
            }
            Kind::ReplicaSet | Kind::Pod => {
                let rs = replicasets
                    .get(name)
                    .await
                    .with_context(|| format!("replicaset {namespace}/{name}"))?;
                let owners = HashSet::from_iter(rs.metadata.uid.clone());
                (rs.metadata, owners)
            }
        };
        let mut pods: Vec<Pod> = Api::<Pod>::namespaced(client.clone(), namespace)
            .list(&all)
            .await?
            .items
            .into_iter()
            .filter(|p| owned_by(&p.metadata, &owners))
            .collect();
        pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        Ok(Workload { kind, meta, pods })
    }

    /// The workload's own steps (its pods' branches left out), then each pod's journey; with
    /// `follow`, then follows the first pod that is not Ready.
    async fn print(
        self,
        client: &kube::Client,
        follow: bool,
        output: Output,
    ) -> anyhow::Result<()> {
        let (spans, dropped) = merge(traces_of(client, &self.meta).await?);
        let own: Vec<&SpanRecord> = lineage::without_pods(&spans);
        let mut reports = Vec::new();
        for pod in &self.pods {
            reports.push(PodReport::read(client, pod.clone()).await?);
        }
        let kind = if self.kind == Kind::Deployment {
            "deployment"
        } else {
            "replicaset"
        };
        match output {
            Output::Text => {
                let header = Header {
                    kind: kind.into(),
                    namespace: self.meta.namespace.clone().unwrap_or_default(),
                    name: self.meta.name.clone().unwrap_or_default(),
                    ..Header::default()
                };
                print!("{}", render::waterfall(&header, &own, dropped));
                if reports.is_empty() {
                    println!("(no pods)");
                }
                for report in &reports {
                    println!();
                    print!("{}", report.text());
                }
            }
            Output::Json => {
                let mut value = json!({
                    "steps": own,
                    "dropped": dropped,
                    "pods": reports.iter().map(PodReport::json).collect::<Vec<_>>(),
                });
                value[kind] = json!({
                    "name": self.meta.name,
                    "namespace": self.meta.namespace,
                    "uid": self.meta.uid,
                });
                println!("{}", serde_json::to_string_pretty(&value)?);
            }
        }
        match self.pods.into_iter().find(|p| !why::is_ready(p)) {
            Some(pod) if follow => follow::pod(client, pod, Vec::new(), output).await,
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(argv: &[&str]) -> Args {
        Cli::try_parse_from(std::iter::once("trace").chain(argv.iter().copied()))
            .expect("valid")
            .args
    }

    #[test]
    fn targets_read_as_kubectl_spells_them() {
        let table = [
            ("pod/web-1", Kind::Pod),
            ("pods/web-1", Kind::Pod),
            ("web-1", Kind::Pod),
            ("deployment/web-1", Kind::Deployment),
            ("deploy/web-1", Kind::Deployment),
            ("rs/web-1", Kind::ReplicaSet),
            ("replicaset/web-1", Kind::ReplicaSet),
            ("ReplicaSets/web-1", Kind::ReplicaSet),
        ];
        for (text, kind) in table {
            assert_eq!(
                parse_target(text).expect(text),
                (kind, "web-1".to_string()),
                "{text}"
            );
        }
        for bad in ["svc/web", "pod/", "pod/a/b", ""] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_and_a_command_to_follow() {
        let args = parse(&[
            "pod/web-1",
            "-n",
            "shop",
            "--follow",
            "-o",
            "json",
            "--kubeconfig",
            "/k",
        ]);
        assert_eq!(args.target.as_deref(), Some("pod/web-1"));
        assert_eq!(
            (args.namespace.as_str(), args.follow, args.output),
            ("shop", true, Output::Json)
        );
        assert_eq!(args.kubeconfig, Some(PathBuf::from("/k")));
        assert!(args.command.is_empty());
        let args = parse(&["--follow", "--", "kubectl", "apply", "-f", "x.yaml"]);
        assert_eq!(args.target, None);
        assert_eq!(args.command, ["kubectl", "apply", "-f", "x.yaml"]);
        assert_eq!(parse(&["deployment/web"]).output, Output::Text);
        assert_eq!(parse(&["deployment/web"]).namespace, "default");
    }

    #[test]
    fn the_first_kubeconfig_of_a_list_is_used() {
        let list = std::env::join_paths(["/a/config", "/b/config"]).expect("joinable");
        assert_eq!(
            kubeconfig_path(Some(PathBuf::from(list))).expect("given"),
            PathBuf::from("/a/config")
        );
    }

    #[test]
    fn merged_traces_keep_each_step_once() {
        let spans = lineage::tests::deployment_tree();
        let a = Trace {
            trace_id: "t".into(),
            spans: spans[..3].to_vec(),
            dropped: 1,
        };
        let b = Trace {
            trace_id: "t".into(),
            spans: spans[1..5].to_vec(),
            dropped: 2,
        };
        let (merged, dropped) = merge(vec![a, b]);
        assert_eq!((merged.len(), dropped), (5, 3));
    }

    #[test]
    fn a_report_prints_pod_steps_and_pending_as_json() {
        let pod: Pod = serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "status": {"phase": "Pending"}}),
        )
        .expect("a pod");
        let report = PodReport {
            pod,
            steps: vec![],
            dropped: 0,
            pending: Some("0/1 nodes are available".into()),
            crash: None,
            not_ready: None,
        };
        assert_eq!(
            report.json(),
            json!({"pod": {"name": "p", "namespace": "ns", "uid": "u", "node": null, "phase": "Pending"},
                "steps": [], "dropped": 0, "pending": "0/1 nodes are available", "crash": null, "notReady": null})
        );
        assert_eq!(
            report.text(),
            "pod ns/p  phase=Pending\n(no steps recorded)\nPending: 0/1 nodes are available\n"
        );
    }
}
