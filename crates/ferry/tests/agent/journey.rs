//! The pod's journey on a real node: `ferry trace` shows a Deployment's pod from the kubectl
//! request to the proxy's rules, every component's step in order, and a crashing pod's exit
//! code and log tail.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use super::common::{eventually, Ferry};

/// The steps of a pod of the `web` Deployment, in the order they start (each starts once the
/// one before it has done its part; a step may end after the next one started, as `bound`
/// does when the kubelet sees the binding before the scheduler's binding cycle is over): the
/// API server's for the pod's create, the scheduler's, the kubelet's and the runtime's, then
/// the Service's.
const IN_ORDER: &[&str] = &[
    "authenticated",
    "authorized",
    "mutating admission",
    "validation",
    "validating admission",
    "persisted",
    "queued",
    "filtered",
    "scored",
    "bound",
    "pod seen",
    "volumes mounted",
    "sandbox created",
    "init container completed",
    "readiness probe passed",
    "ready",
    "added to endpointslice",
    "proxy rules programmed",
];

/// Steps that are there too, in no one order with those above.
const ALSO: &[&str] = &[
    "request",
    "created pod",
    "image pulled",
    "container started",
];

fn ferry_trace(ferry: &Ferry, args: &[&str]) -> String {
    ferry.trace(args)
}

fn nanos(step: &Value, field: &str) -> u64 {
    step[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} of {step}"))
}

/// An RFC 3339 time of the API in Unix nanoseconds.
fn api_time(value: &str) -> u64 {
    let at: jiff::Timestamp = value.parse().unwrap_or_else(|e| panic!("{value}: {e}"));
    u64::try_from(at.as_nanosecond()).expect("after 1970")
}

/// `pod` of the `web` Deployment (Ready, behind the `web` Service) has every step from its
/// request to the proxy's rules; they end in order, none takes negative time, and from the
/// request to Ready they span the time the API says the pod took to become Ready.
pub fn a_pods_journey_runs_from_request_to_proxy(ferry: &Ferry, pod: &str) {
    let mut last = Value::Null;
    let mine = |json: &Value| -> Vec<Value> {
        json["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .filter(|s| s["object"]["resource"] == "pods" && s["object"]["name"] == pod)
            .cloned()
            .collect()
    };
    // The proxy's step comes once the node's rules for the web Service are applied.
    let complete = eventually(Duration::from_secs(30), || {
        last = serde_json::from_str(&ferry_trace(ferry, &[&format!("pod/{pod}"), "-o", "json"]))
            .expect("ferry trace -o json");
        let steps = mine(&last);
        IN_ORDER
            .iter()
            .chain(ALSO)
            .all(|name| steps.iter().any(|s| s["step"] == *name))
    });
    let steps = mine(&last);
    let zero = steps
        .iter()
        .map(|s| nanos(s, "startUnixNanos"))
        .min()
        .unwrap_or(0);
    // Each step as `name start..end` in ms from the first, for the messages.
    let names: Vec<String> = steps
        .iter()
        .map(|s| {
            let ms = |f| nanos(s, f).saturating_sub(zero) / 1_000_000;
            format!(
                "{} {}..{}",
                s["step"],
                ms("startUnixNanos"),
                ms("endUnixNanos")
            )
        })
        .collect();
    assert!(complete, "steps missing: {names:#?}\n{last:#}");
    for step in &steps {
        assert!(
            nanos(step, "startUnixNanos") <= nanos(step, "endUnixNanos"),
            "{step}"
        );
        assert!(step["error"].is_null(), "{step}");
    }
    // The first start and end of each step; the starts in the order above.
    let first = |field: &str| {
        let mut first: HashMap<&str, u64> = HashMap::new();
        for step in &steps {
            let name = step["step"].as_str().unwrap_or_default();
            let at = nanos(step, field);
            first
                .entry(name)
                .and_modify(|e| *e = (*e).min(at))
                .or_insert(at);
        }
        first
    };
    let (first_start, first_end) = (first("startUnixNanos"), first("endUnixNanos"));
    for pair in IN_ORDER.windows(2) {
        assert!(
            first_start[pair[0]] <= first_start[pair[1]],
            "{:?} started after {:?}: {names:#?}",
            pair[0],
            pair[1]
        );
    }
    // From the pod's create request to its `ready` step's end is the time the API shows from
    // its creation to its Ready condition (whole seconds there: within 10% or a second).
    let request = steps
        .iter()
        .filter(|s| s["step"] == "request")
        .map(|s| nanos(s, "startUnixNanos"))
        .min()
        .expect("the pod's request");
    let journey = first_end["ready"].saturating_sub(request);
    let times = ferry.ok(&[
        "get",
        "pod",
        pod,
        "-o",
        "jsonpath={.metadata.creationTimestamp} {.status.conditions[?(@.type==\"Ready\")].lastTransitionTime}",
    ]);
    let (created, ready) = times.split_once(' ').expect("creation and Ready times");
    let api = api_time(ready).saturating_sub(api_time(created));
    let slack = (api / 10).max(1_000_000_000);
    assert!(
        journey.abs_diff(api) <= slack,
        "journey {journey}ns, the API's creation to Ready {api}ns"
    );
    // The waterfall names each component.
    let text = ferry_trace(ferry, &[&format!("pod/{pod}")]);
    eprintln!("{text}");
    for component in ["kube-apiserver", "kube-scheduler", "kubelet", "kube-proxy"] {
        assert!(text.contains(component), "{component} missing:\n{text}");
    }
}

/// A container that exits 3 after printing two lines: `ferry trace` ends with its exit code,
/// the back-off and the log tail.
pub fn a_crashing_pods_journey_ends_with_its_exit_and_log(ferry: &Ferry, image: &str) {
    ferry.ok(&[
        "run",
        "crasher",
        &format!("--image={image}"),
        "--",
        "sh",
        "-c",
        "echo starting; echo 'no config found'; exit 3",
    ]);
    assert!(
        eventually(Duration::from_secs(60), || {
            ferry
                .kubectl(&[
                    "get",
                    "pod",
                    "crasher",
                    "-o",
                    "jsonpath={.status.containerStatuses[0].state.waiting.reason}",
                ])
                .stdout
                == b"CrashLoopBackOff"
        }),
        "crasher never crash-looped: {}",
        ferry.ok(&["get", "pod", "crasher", "-o", "yaml"])
    );
    let text = ferry_trace(ferry, &["pod/crasher"]);
    for words in [
        "container exited",
        "Crashing: container crasher",
        "CrashLoopBackOff",
        "exited with code 3 (Error)",
        "back-off",
        "| no config found",
    ] {
        assert!(text.contains(words), "{words:?} missing:\n{text}");
    }
    let json: Value =
        serde_json::from_str(&ferry_trace(ferry, &["pod/crasher", "-o", "json"])).expect("json");
    assert_eq!(json["crash"]["exitCode"], 3, "{json:#}");
    ferry.ok(&["delete", "pod", "crasher", "--wait=true"]);
}
