//! The journey as a terminal waterfall: one plain line per step (no cursor movement, so it
//! reads the same in a CI log), in start order, indented by depth, with a bar scaled to the
//! whole journey.

use std::collections::HashMap;
use std::fmt::Write as _;

use ferry_journey::SpanRecord;

/// The attributes worth a column, in this order.
const KEY_ATTRIBUTES: &[&str] = &[
    "verb",
    "node",
    "feasible",
    "plugin",
    "revision",
    "ip",
    "container",
    "image",
    "reason",
];

/// The bar's width inside its brackets; the fixed columns stay within 100.
const BAR_WIDTH: usize = 24;
/// The step column's width, indentation included.
const STEP_WIDTH: usize = 28;
/// The component column's width.
const COMPONENT_WIDTH: usize = 23;

/// An admission plugin's step gets a line when it took at least this long or failed: a
/// request has a dozen that take microseconds and say little (`--output json` has them all).
const PLUGIN_LINE_FROM_NANOS: u64 = 1_000_000;

/// Whether `step` gets a line of the waterfall.
pub fn worth_a_line(step: &SpanRecord) -> bool {
    step.step != "admission plugin"
        || step.error.is_some()
        || step.duration_nanos() >= PLUGIN_LINE_FROM_NANOS
}

/// What the waterfall is of.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// `pod`, `deployment`, `replicaset`.
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The node it runs on.
    pub node: Option<String>,
    /// Its phase.
    pub phase: Option<String>,
}

/// The steps in the order they are shown, each with its depth: by start, a parent before the
/// children that started with it.
pub fn ordered<'a>(steps: &[&'a SpanRecord]) -> Vec<(usize, &'a SpanRecord)> {
    let by_id: HashMap<(&str, &str), &SpanRecord> = steps
        .iter()
        .map(|s| ((s.trace_id.as_str(), s.span_id.as_str()), *s))
        .collect();
    let depth = |step: &SpanRecord| {
        let mut depth = 0;
        let mut at = step;
        while let Some(parent) = at
            .parent_span_id
            .as_deref()
            .and_then(|p| by_id.get(&(at.trace_id.as_str(), p)))
        {
            depth += 1;
            at = parent;
            if depth > steps.len() {
                break;
            }
        }
        depth
    };
    let mut out: Vec<(usize, &SpanRecord)> = steps.iter().map(|s| (depth(s), *s)).collect();
    out.sort_by(|(da, a), (db, b)| {
        (a.start_unix_nanos, *da, &a.span_id).cmp(&(b.start_unix_nanos, *db, &b.span_id))
    });
    out
}

/// The whole waterfall: header, column titles, a line per step, and the note on steps the
/// server did not keep.
pub fn waterfall(header: &Header, steps: &[&SpanRecord], dropped: usize) -> String {
    let mut out = header_line(header, steps);
    out.push('\n');
    let mut rows = ordered(steps);
    rows.retain(|(_, step)| worth_a_line(step));
    let origin = rows
        .iter()
        .map(|(_, s)| s.start_unix_nanos)
        .min()
        .unwrap_or(0);
    let end = rows
        .iter()
        .map(|(_, s)| s.end_unix_nanos)
        .max()
        .unwrap_or(origin);
    let total = end.saturating_sub(origin);
    if rows.is_empty() {
        out.push_str("(no steps recorded)\n");
    } else {
        let _ = writeln!(
            out,
            "{:>8} {:>8}  {:<cw$} {:<sw$} TIMELINE",
            "OFFSET",
            "TOOK",
            "COMPONENT",
            "STEP",
            cw = COMPONENT_WIDTH,
            sw = STEP_WIDTH,
        );
        for (depth, step) in rows {
            out.push_str(&line(step, depth, origin, Some(total)));
            out.push('\n');
        }
    }
    if dropped > 0 {
        let _ = writeln!(
            out,
            "({dropped} steps not kept: the trace was at its bound)"
        );
    }
    out
}

/// `pod default/web-1  node=n1  phase=Running  created → Ready in 1.234s`.
pub fn header_line(header: &Header, steps: &[&SpanRecord]) -> String {
    let mut out = format!("{} {}/{}", header.kind, header.namespace, header.name);
    if let Some(node) = &header.node {
        let _ = write!(out, "  node={node}");
    }
    if let Some(phase) = &header.phase {
        let _ = write!(out, "  phase={phase}");
    }
    if let Some(ready) = creation_to_ready(header, steps) {
        let _ = write!(out, "  created → Ready in {}", seconds(ready));
    }
    out
}

/// From the start of the pod's first step (its create request) to the end of its "ready"
/// step, when both are there.
pub fn creation_to_ready(header: &Header, steps: &[&SpanRecord]) -> Option<u64> {
    let own = |s: &&&SpanRecord| {
        s.object.as_ref().is_some_and(|o| {
            o.resource == "pods" && o.name == header.name && o.namespace == header.namespace
        })
    };
    let created = steps.iter().filter(own).map(|s| s.start_unix_nanos).min()?;
    let ready = steps
        .iter()
        .filter(own)
        .filter(|s| s.step == "ready")
        .map(|s| s.end_unix_nanos)
        .max()?;
    Some(ready.saturating_sub(created))
}

/// One step: offset from `origin`, duration, component, the step indented by `depth`, the bar
/// when the total is known (not while following), then the key attributes and the error.
pub fn line(step: &SpanRecord, depth: usize, origin: u64, total: Option<u64>) -> String {
    let name = truncate(&format!("{}{}", "  ".repeat(depth), step.step), STEP_WIDTH);
    let mut out = format!(
        "{:>8} {:>8}  {:<cw$} {:<sw$}",
        format!("+{}", seconds(step.start_unix_nanos.saturating_sub(origin))),
        duration(step.duration_nanos()),
        truncate(&step.component, COMPONENT_WIDTH),
        name,
        cw = COMPONENT_WIDTH,
        sw = STEP_WIDTH
    );
    if let Some(total) = total {
        out.push(' ');
        out.push_str(&bar(step, origin, total));
    }
    for (key, value) in attributes(step) {
        let _ = write!(out, " {key}={value}");
    }
    if let Some(error) = &step.error {
        let _ = write!(out, " ✗ error: {error}");
    }
    out.trim_end().to_string()
}

/// The key attributes of a step, in [`KEY_ATTRIBUTES`] order.
fn attributes(step: &SpanRecord) -> Vec<(&str, &str)> {
    KEY_ATTRIBUTES
        .iter()
        .filter_map(|k| step.attributes.get(*k).map(|v| (*k, v.as_str())))
        .collect()
}

/// `[   ====      ]`: where the step lies in the journey, at least one mark wide.
fn bar(step: &SpanRecord, origin: u64, total: u64) -> String {
    let scale = |ns: u64| -> usize {
        if total == 0 {
            return 0;
        }
        let at = u128::from(ns.saturating_sub(origin).min(total)) * BAR_WIDTH as u128
            / u128::from(total);
        usize::try_from(at).unwrap_or(BAR_WIDTH)
    };
    let from = scale(step.start_unix_nanos).min(BAR_WIDTH - 1);
    let to = scale(step.end_unix_nanos).clamp(from + 1, BAR_WIDTH);
    format!(
        "[{}{}{}]",
        " ".repeat(from),
        "=".repeat(to - from),
        " ".repeat(BAR_WIDTH - to)
    )
}

/// `1.234s`: seconds with milliseconds.
pub fn seconds(ns: u64) -> String {
    format!("{}.{:03}s", ns / 1_000_000_000, ns / 1_000_000 % 1000)
}

/// `0.4ms`, `12ms`, `1.234s`, `2m03s`: a step's duration, short.
pub fn duration(ns: u64) -> String {
    match ns {
        0..1_000_000 => format!("{}.{}ms", ns / 1_000_000, ns / 100_000 % 10),
        1_000_000..1_000_000_000 => format!("{}ms", ns / 1_000_000),
        1_000_000_000..60_000_000_000 => seconds(ns),
        _ => format!("{}m{:02}s", ns / 60_000_000_000, ns / 1_000_000_000 % 60),
    }
}

/// `text` cut to `width` characters, with `…` when cut.
fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::trace::lineage::tests::span;

    const MS: u64 = 1_000_000;
    const T0: u64 = 1_700_000_000_000_000_000;

    fn timed(mut s: SpanRecord, start_ms: u64, end_ms: u64, attrs: &[(&str, &str)]) -> SpanRecord {
        s.start_unix_nanos = T0 + start_ms * MS;
        s.end_unix_nanos = T0 + end_ms * MS;
        s.attributes = attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        s
    }

    /// A pod created directly, scheduled, started and Ready in 1.2s.
    pub fn pod_journey() -> Vec<SpanRecord> {
        let p = "pods/default/web-1";
        let api = "kube-apiserver";
        let mut pull = timed(
            span("7", Some("1"), "image pulled", "kubelet", p, Some("u1")),
            300,
            900,
            &[("image", "nginx")],
        );
        pull.error = Some("first pull timed out, retried".into());
        vec![
            timed(
                span("1", None, "request", api, p, Some("u1")),
                0,
                12,
                &[("verb", "create")],
            ),
            timed(
                span("2", Some("1"), "authenticated", api, p, None),
                0,
                1,
                &[],
            ),
            timed(
                span("3", Some("1"), "persisted", api, p, Some("u1")),
                8,
                11,
                &[("revision", "42")],
            ),
            timed(
                span("4", Some("1"), "queued", "kube-scheduler", p, Some("u1")),
                12,
                20,
                &[],
            ),
            timed(
                span("5", Some("1"), "bound", "kube-scheduler", p, Some("u1")),
                20,
                24,
                &[("node", "n1")],
            ),
            timed(
                span("6", Some("1"), "sandbox created", "kubelet", p, Some("u1")),
                40,
                300,
                &[("ip", "10.42.0.7")],
            ),
            pull,
            timed(
                span(
                    "8",
                    Some("1"),
                    "container started",
                    "kubelet",
                    p,
                    Some("u1"),
                ),
                900,
                1000,
                &[("container", "app")],
            ),
            timed(
                span("9", Some("1"), "ready", "kubelet", p, Some("u1")),
                1200,
                1200,
                &[],
            ),
        ]
    }

    #[test]
    fn a_pods_waterfall() {
        let spans = pod_journey();
        let steps: Vec<&SpanRecord> = spans.iter().rev().collect();
        let header = Header {
            kind: "pod".into(),
            namespace: "default".into(),
            name: "web-1".into(),
            node: Some("n1".into()),
            phase: Some("Running".into()),
        };
        let want = "\
pod default/web-1  node=n1  phase=Running  created → Ready in 1.200s
  OFFSET     TOOK  COMPONENT               STEP                         TIMELINE
 +0.000s     12ms  kube-apiserver          request                      [=                       ] verb=create
 +0.000s      1ms  kube-apiserver            authenticated              [=                       ]
 +0.008s      3ms  kube-apiserver            persisted                  [=                       ] revision=42
 +0.012s      8ms  kube-scheduler            queued                     [=                       ]
 +0.020s      4ms  kube-scheduler            bound                      [=                       ] node=n1
 +0.040s    260ms  kubelet                   sandbox created            [======                  ] ip=10.42.0.7
 +0.300s    600ms  kubelet                   image pulled               [      ============      ] image=nginx ✗ error: first pull timed out, retried
 +0.900s    100ms  kubelet                   container started          [                  ==    ] container=app
 +1.200s    0.0ms  kubelet                   ready                      [                       =]
(3 steps not kept: the trace was at its bound)
";
        assert_eq!(waterfall(&header, &steps, 3), want);
        // The fixed columns, bar included, fit in 100; attributes and errors follow.
        let fixed = |l: &str| l.find(']').map_or(0, |end| l[..=end].chars().count());
        assert!(want.lines().all(|l| fixed(l) <= 100));
    }

    #[test]
    fn no_steps_and_no_ready_say_so() {
        let header = Header {
            kind: "pod".into(),
            namespace: "ns".into(),
            name: "p".into(),
            node: None,
            phase: Some("Pending".into()),
        };
        assert_eq!(
            waterfall(&header, &[], 0),
            "pod ns/p  phase=Pending\n(no steps recorded)\n"
        );
    }

    #[test]
    fn a_parent_comes_before_a_child_that_started_with_it() {
        let spans = pod_journey();
        let steps: Vec<&SpanRecord> = vec![&spans[1], &spans[0]];
        let order: Vec<_> = ordered(&steps)
            .into_iter()
            .map(|(d, s)| (d, s.step.as_str()))
            .collect();
        assert_eq!(order, [(0, "request"), (1, "authenticated")]);
    }

    #[test]
    fn only_slow_or_failed_admission_plugins_get_a_line() {
        let p = "pods/default/web-1";
        let plugin = |start_ms, end_ms| {
            let step = span(
                "9",
                Some("1"),
                "admission plugin",
                "kube-apiserver",
                p,
                None,
            );
            timed(step, start_ms, end_ms, &[("plugin", "PodSecurity")])
        };
        assert!(!worth_a_line(&plugin(5, 5)));
        assert!(worth_a_line(&plugin(5, 7)));
        let mut refused = plugin(5, 5);
        refused.error = Some("pods \"web-1\" is forbidden: violates PodSecurity".into());
        assert!(worth_a_line(&refused));
        let quick = plugin(5, 5);
        let spans = pod_journey();
        let mut steps: Vec<&SpanRecord> = spans.iter().collect();
        steps.push(&quick);
        steps.push(&refused);
        let text = waterfall(&Header::default(), &steps, 0);
        assert_eq!(text.matches("admission plugin").count(), 1, "{text}");
    }

    #[test]
    fn durations_read_short() {
        assert_eq!(duration(400_000), "0.4ms");
        assert_eq!(duration(12 * MS), "12ms");
        assert_eq!(duration(1234 * MS), "1.234s");
        assert_eq!(duration(123_000 * MS), "2m03s");
        assert_eq!(seconds(12 * MS), "0.012s");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }
}
