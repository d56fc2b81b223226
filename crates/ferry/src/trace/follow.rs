//! `ferry trace --follow`: the waterfall so far, then each new step of the pod's journey as a
//! plain line as it arrives (the all-steps watch, so the proxy's steps, which are in traces of
//! their own, show too), until the pod is Ready or Ctrl-C. With a command (`-- kubectl apply
//! -f x.yaml`), the watch starts before the command runs and follows the first pod its objects
//! make.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Context as _;
use ferry_journey::SpanRecord;
use futures::{Stream, StreamExt as _};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::Api;
use tokio::time::Instant;

use super::lineage::{self, Subject};
use super::{api, pod_header, render, subject, trace_id, traces_of, why, Output, PodReport};

/// The all-steps watch.
type Steps = Pin<Box<dyn Stream<Item = anyhow::Result<SpanRecord>>>>;

/// How long to gather steps that arrive together before printing them in start order (a
/// request's parts arrive before the request, which ends last).
const GATHER: Duration = Duration::from_millis(250);
/// How often the pod is read to see whether it is Ready.
const POLL: Duration = Duration::from_secs(2);
/// How many steps of other traces a command's follow keeps while it waits for its pod.
const BACKLOG: usize = 50_000;

/// Every step seen of the traces the pod's journey is in, and which were printed.
struct Journey {
    subject: Subject,
    traces: HashSet<String>,
    seen: HashSet<(String, String)>,
    spans: Vec<SpanRecord>,
    printed: HashSet<(String, String)>,
    origin: Option<u64>,
    dropped: usize,
}

impl Journey {
    fn new(subject: Subject) -> Journey {
        Journey {
            subject,
            traces: HashSet::new(),
            seen: HashSet::new(),
            spans: Vec::new(),
            printed: HashSet::new(),
            origin: None,
            dropped: 0,
        }
    }

    /// Whether `span` may belong to the journey: it is in one of its traces, or for the pod.
    fn wants(&self, span: &SpanRecord) -> bool {
        self.traces.contains(&span.trace_id) || self.subject.is_about(span)
    }

    /// Keeps `span` (once).
    fn add(&mut self, span: SpanRecord) {
        if self
            .seen
            .insert((span.trace_id.clone(), span.span_id.clone()))
        {
            self.spans.push(span);
        }
    }

    /// The journey's steps as they stand.
    fn steps(&self) -> Vec<&SpanRecord> {
        lineage::journey(&self.spans, &self.subject)
    }

    /// The journey's steps not printed yet, in start order with their depth, now marked
    /// printed.
    fn fresh(&mut self) -> Vec<(usize, SpanRecord)> {
        let steps = lineage::journey(&self.spans, &self.subject);
        let fresh: Vec<(usize, SpanRecord)> = render::ordered(&steps)
            .into_iter()
            .filter(|(_, s)| {
                !self
                    .printed
                    .contains(&(s.trace_id.clone(), s.span_id.clone()))
            })
            .map(|(depth, s)| (depth, s.clone()))
            .collect();
        self.printed.extend(
            fresh
                .iter()
                .map(|(_, s)| (s.trace_id.clone(), s.span_id.clone())),
        );
        fresh
    }

    /// Whether the pod's "ready" step has arrived.
    fn has_ready_step(&self) -> bool {
        self.spans
            .iter()
            .any(|s| s.step == "ready" && self.subject.is_about(s))
    }
}

/// Follows `pod` from its kept steps (and `seed`, steps already seen) on.
pub async fn pod(
    client: &kube::Client,
    pod: Pod,
    seed: Vec<SpanRecord>,
    output: Output,
) -> anyhow::Result<()> {
    let steps: Steps = Box::pin(api::watch_all(client).await?);
    follow(client, pod, seed, steps, output).await
}

async fn follow(
    client: &kube::Client,
    mut pod: Pod,
    seed: Vec<SpanRecord>,
    mut steps: Steps,
    output: Output,
) -> anyhow::Result<()> {
    let mut journey = Journey::new(subject("pods", &pod.metadata));
    journey.traces.extend(trace_id(&pod.metadata));
    journey
        .traces
        .extend(seed.iter().map(|s| s.trace_id.clone()));
    seed.into_iter().for_each(|s| journey.add(s));
    for trace in traces_of(client, &pod.metadata).await? {
        journey.traces.insert(trace.trace_id);
        journey.dropped += trace.dropped;
        trace.spans.into_iter().for_each(|s| journey.add(s));
    }
    print_so_far(&mut journey, &pod, output);
    let pods = Api::<Pod>::namespaced(
        client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    );
    let name = pod.metadata.name.clone().unwrap_or_default();
    let mut poll = tokio::time::interval(POLL);
    let mut flush_at: Option<Instant> = None;
    let mut ready = why::is_ready(&pod);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    while !ready {
        tokio::select! {
            next = steps.next() => match next {
                Some(Ok(span)) => {
                    if receive(client, &mut journey, span).await? {
                        flush_at.get_or_insert_with(|| Instant::now() + GATHER);
                    }
                }
                Some(Err(e)) => eprintln!("ferry trace: {e:#}"),
                None => {
                    eprintln!("ferry trace: the server ended the watch; watching again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    steps = Box::pin(api::watch_all(client).await?);
                }
            },
            _ = sleep_until(flush_at), if flush_at.is_some() => {
                flush_at = None;
                print_fresh(&mut journey, output);
                ready = journey.has_ready_step();
            }
            _ = poll.tick() => {
                pod = pods.get(&name).await.with_context(|| format!("reading pod {name}"))?;
                ready = why::is_ready(&pod);
            }
            _ = &mut ctrl_c => {
                print_fresh(&mut journey, output);
                return print_ending(client, &mut pod, &pods, &name, &journey, output).await;
            }
        }
    }
    // The last steps (the kubelet's "ready", the endpoints') may still be on their way.
    gather(client, &mut journey, &mut steps, Duration::from_secs(1)).await?;
    print_fresh(&mut journey, output);
    print_ending(client, &mut pod, &pods, &name, &journey, output).await
}

/// Keeps a step that belongs to the journey, reading the kept steps of a trace it opens (the
/// proxy's for the pod). Whether it was kept.
async fn receive(
    client: &kube::Client,
    journey: &mut Journey,
    span: SpanRecord,
) -> anyhow::Result<bool> {
    if !journey.wants(&span) {
        return Ok(false);
    }
    if journey.traces.insert(span.trace_id.clone()) {
        if let Some(trace) = api::trace(client, &span.trace_id).await? {
            journey.dropped += trace.dropped;
            trace.spans.into_iter().for_each(|s| journey.add(s));
        }
    }
    journey.add(span);
    Ok(true)
}

/// Keeps the journey's steps that arrive within `window`.
async fn gather(
    client: &kube::Client,
    journey: &mut Journey,
    steps: &mut Steps,
    window: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + window;
    while let Ok(Some(next)) = tokio::time::timeout_at(deadline, steps.next()).await {
        if let Ok(span) = next {
            receive(client, journey, span).await?;
        }
    }
    Ok(())
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The waterfall of the steps kept so far (text), or each step as a JSON line.
fn print_so_far(journey: &mut Journey, pod: &Pod, output: Output) {
    let fresh = journey.fresh();
    journey.origin = fresh.iter().map(|(_, s)| s.start_unix_nanos).min();
    match output {
        Output::Text => {
            let steps: Vec<&SpanRecord> = fresh.iter().map(|(_, s)| s).collect();
            print!(
                "{}",
                render::waterfall(&pod_header(pod), &steps, journey.dropped)
            );
            println!("(following: new steps as they happen; Ctrl-C to stop)");
        }
        Output::Json => fresh.iter().for_each(|(_, s)| print_json_line(s)),
    }
}

/// The journey's steps that arrived since the last print: a line each.
fn print_fresh(journey: &mut Journey, output: Output) {
    let fresh = journey.fresh();
    let origin = *journey.origin.get_or_insert_with(|| {
        fresh
            .iter()
            .map(|(_, s)| s.start_unix_nanos)
            .min()
            .unwrap_or(0)
    });
    for (depth, step) in &fresh {
        match output {
            Output::Text if !render::worth_a_line(step) => {}
            Output::Text => println!("{}", render::line(step, *depth, origin, None)),
            Output::Json => print_json_line(step),
        }
    }
}

fn print_json_line(step: &SpanRecord) {
    match serde_json::to_string(step) {
        Ok(line) => println!("{line}"),
        Err(e) => eprintln!("ferry trace: {e}"),
    }
}

/// How it ended: the time to Ready, or why the pod is not Ready; with `-o json` the whole
/// report as a last line.
async fn print_ending(
    client: &kube::Client,
    pod: &mut Pod,
    pods: &Api<Pod>,
    name: &str,
    journey: &Journey,
    output: Output,
) -> anyhow::Result<()> {
    *pod = pods
        .get(name)
        .await
        .with_context(|| format!("reading pod {name}"))?;
    let steps: Vec<SpanRecord> = journey.steps().into_iter().cloned().collect();
    let mut report = PodReport {
        pod: pod.clone(),
        steps,
        dropped: journey.dropped,
        pending: None,
        crash: None,
        not_ready: None,
    };
    report.explain(client).await;
    match output {
        Output::Text => {
            if why::is_ready(pod) {
                let refs: Vec<&SpanRecord> = report.steps.iter().collect();
                match render::creation_to_ready(&pod_header(pod), &refs) {
                    Some(total) => println!("Ready: created → Ready in {}", render::seconds(total)),
                    None => println!("Ready"),
                }
            }
            report.ending().iter().for_each(|line| println!("{line}"));
        }
        Output::Json => println!("{}", serde_json::to_string(&report.json())?),
    }
    Ok(())
}

/// Whether `span` is the creation of the pod to follow for a command: a pod's create request
/// that starts a trace (the command made it) or is in the trace of a workload the command
/// created or changed. A workload's write request (create, update, patch: a rollout restart
/// too) that starts a trace adds that trace to `workloads`.
fn is_commands_pod(span: &SpanRecord, workloads: &mut HashSet<String>) -> bool {
    let verb = span.attributes.get("verb").map(String::as_str);
    let writes = span.step == "request" && matches!(verb, Some("create" | "update" | "patch"));
    let Some(object) = span.object.as_ref().filter(|_| writes) else {
        return false;
    };
    let root = span.parent_span_id.is_none();
    match object.resource.as_str() {
        "pods" => verb == Some("create") && (root || workloads.contains(&span.trace_id)),
        "deployments" | "replicasets" | "statefulsets" | "daemonsets" | "jobs" => {
            if root {
                workloads.insert(span.trace_id.clone());
            }
            false
        }
        _ => false,
    }
}

/// `ferry trace --follow -- COMMAND`: watches every step, runs the command, and follows the
/// first pod its objects make.
pub async fn command(
    client: &kube::Client,
    command: &[String],
    output: Output,
) -> anyhow::Result<()> {
    let (program, arguments) = command.split_first().context("no command to run")?;
    let label = command.join(" ");
    let start = || -> anyhow::Result<_> {
        let mut child = tokio::process::Command::new(program)
            .args(arguments)
            .spawn()
            .with_context(|| format!("running {program}"))?;
        Ok(async move {
            let status = child.wait().await?;
            anyhow::ensure!(status.success(), "{label} failed: {status}");
            Ok(())
        })
    };
    while_doing(client, start, output).await
}

/// Watches every step, then starts `action` (which writes objects) and follows the first pod
/// its objects make: a pod it creates, or the first pod of a workload it creates or changes.
/// An action still running then goes on by itself.
pub async fn while_doing<F>(
    client: &kube::Client,
    start: impl FnOnce() -> anyhow::Result<F>,
    output: Output,
) -> anyhow::Result<()>
where
    F: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let mut steps: Steps = Box::pin(api::watch_all(client).await?);
    let mut action = Box::pin(start()?);
    let mut backlog: VecDeque<SpanRecord> = VecDeque::new();
    let mut workloads = HashSet::new();
    let mut running = true;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let created = loop {
        tokio::select! {
            done = &mut action, if running => {
                running = false;
                done?;
                if output == Output::Text {
                    println!("(waiting for the first pod those objects make)");
                }
            }
            next = steps.next() => {
                let span = next.context("the server ended the watch")??;
                if is_commands_pod(&span, &mut workloads) {
                    break span;
                }
                if backlog.len() == BACKLOG {
                    backlog.pop_front();
                }
                backlog.push_back(span);
            }
            _ = &mut ctrl_c => return Ok(()),
        }
    };
    let pod = created_pod(client, &created).await?;
    let trace = created.trace_id.clone();
    let seed: Vec<SpanRecord> = backlog
        .into_iter()
        .filter(|s| s.trace_id == trace)
        .chain([created])
        .collect();
    if running {
        // It ends by itself (a command's output still reaches the terminal).
        tokio::spawn(action);
    }
    follow(client, pod, seed, steps, output).await
}

/// The pod a create request made, by its uid when the step has it, else by name.
async fn created_pod(client: &kube::Client, request: &SpanRecord) -> anyhow::Result<Pod> {
    let object = request
        .object
        .as_ref()
        .context("a create request without its object")?;
    let pods = Api::<Pod>::namespaced(client.clone(), &object.namespace);
    for _ in 0..10 {
        let found = match &object.uid {
            Some(uid) => pods
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .find(|p| p.metadata.uid.as_ref() == Some(uid)),
            None => pods.get_opt(&object.name).await?,
        };
        if let Some(pod) = found {
            return Ok(pod);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    anyhow::bail!("pod {} was created but is gone", object.key())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::lineage::tests::{deployment_tree, span};

    fn create(mut s: SpanRecord) -> SpanRecord {
        s.attributes.insert("verb".into(), "create".into());
        s
    }

    #[test]
    fn a_command_follows_its_own_pod_or_the_first_of_its_workload() {
        let mut workloads = HashSet::new();
        let other_trace = |mut s: SpanRecord| {
            s.trace_id = "11111111111111111111111111111111".into();
            s
        };
        // Another controller's pod in a trace the command did not start.
        let stranger = other_trace(create(span(
            "5",
            Some("4"),
            "request",
            "kube-apiserver",
            "pods/ns/x",
            None,
        )));
        assert!(!is_commands_pod(&stranger, &mut workloads));
        // The command's Deployment, then its pod in the same trace.
        let deployment = create(span(
            "1",
            None,
            "request",
            "kube-apiserver",
            "deployments/ns/web",
            None,
        ));
        assert!(!is_commands_pod(&deployment, &mut workloads));
        let not_a_create = span(
            "5a",
            Some("4a"),
            "request",
            "kube-apiserver",
            "pods/ns/web-1",
            None,
        );
        assert!(!is_commands_pod(&not_a_create, &mut workloads));
        let pod = create(span(
            "5a",
            Some("4a"),
            "request",
            "kube-apiserver",
            "pods/ns/web-1",
            None,
        ));
        assert!(is_commands_pod(&pod, &mut workloads));
        // A bare pod the command created.
        let bare = other_trace(create(span(
            "9",
            None,
            "request",
            "kube-apiserver",
            "pods/ns/solo",
            None,
        )));
        assert!(is_commands_pod(&bare, &mut HashSet::new()));
        let service = create(span(
            "9",
            None,
            "request",
            "kube-apiserver",
            "services/ns/web",
            None,
        ));
        assert!(!is_commands_pod(&service, &mut workloads));
        // A rollout restart: the Deployment patched, its new pod in the patch's trace.
        let mut restart = span(
            "1",
            None,
            "request",
            "kube-apiserver",
            "deployments/ns/web",
            None,
        );
        restart.trace_id = "22222222222222222222222222222222".into();
        restart.attributes.insert("verb".into(), "patch".into());
        let mut workloads = HashSet::new();
        assert!(!is_commands_pod(&restart, &mut workloads));
        let mut new_pod = pod.clone();
        new_pod.trace_id = restart.trace_id.clone();
        assert!(is_commands_pod(&new_pod, &mut workloads));
        // A pod patched is not one made.
        let mut patched = bare.clone();
        patched.attributes.insert("verb".into(), "patch".into());
        assert!(!is_commands_pod(&patched, &mut HashSet::new()));
    }

    #[test]
    fn steps_print_once_in_start_order_as_the_journey_grows() {
        let tree = deployment_tree();
        let subject = Subject {
            uid: "ua".into(),
            resource: "pods".into(),
            namespace: "default".into(),
            name: "web-1-a".into(),
        };
        let mut journey = Journey::new(subject);
        journey.traces.insert(tree[0].trace_id.clone());
        // The pod's scheduler step arrives before the requests that lead to it.
        let by_id = |id: &str| {
            tree.iter()
                .find(|s| s.span_id == format!("{id:0>16}"))
                .cloned()
                .expect("in the tree")
        };
        journey.add(by_id("6a"));
        journey.add(by_id("6b"));
        let first: Vec<String> = journey.fresh().into_iter().map(|(_, s)| s.step).collect();
        assert_eq!(first, ["bound"]);
        journey.add(by_id("5a"));
        journey.add(by_id("51a"));
        journey.add(by_id("6a"));
        let next: Vec<(usize, String)> = journey
            .fresh()
            .into_iter()
            .map(|(d, s)| (d, s.step))
            .collect();
        assert_eq!(
            next,
            [(0, "request".to_string()), (1, "authenticated".to_string())]
        );
        assert!(journey.fresh().is_empty());
        assert!(!journey.has_ready_step());
        journey.add(by_id("7a"));
        assert!(journey.has_ready_step());
        assert!(journey.wants(&by_id("6b")), "same trace");
    }
}
