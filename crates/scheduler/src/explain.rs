//! Why a pod is pending, in plain words: the sentence the `unschedulable` journey step carries
//! next to upstream's FailedScheduling message.
//!
//! Upstream's message counts each reason over the nodes and sorts the "`<count> <reason>`"
//! strings: `0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: },
//! 2 Insufficient cpu. preemption: …`. [`why_pending`] says the same for a human reading a
//! journey: the reasons grouped with their counts, largest first, taints written as
//! `key=value`, and for every `Insufficient <resource>` what the pod asked for and the most any
//! of the nodes rejected for it had free:
//! `3 nodes: 2 Insufficient cpu (requested 2, free at most 1.5), 1 had untolerated taint
//! node.kubernetes.io/not-ready`. What preemption said is left out: it is about other pods.
//!
//! The free amounts are not in the plugins' statuses (the reason strings stay upstream's); the
//! scheduler reads them from the snapshot when the attempt fails ([`shortfalls`]) and carries
//! them in the [`FitError`].

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::Pod;

use crate::cache::Snapshot;
use crate::framework::NodeStatuses;
use crate::resources::{pod_requests, Resources, CPU, EPHEMERAL_STORAGE, MEMORY};
use crate::scheduler::FitError;

/// The prefix of NodeResourcesFit's reasons for a resource the node lacks.
const INSUFFICIENT: &str = "Insufficient ";
/// Upstream's prefix of most node reasons, left out in plain words.
const NODES: &str = "node(s) ";
/// TaintToleration's reason, before `{key: value}`.
const UNTOLERATED_TAINT: &str = "node(s) had untolerated taint {";

/// A resource the pod asked for more of than some nodes had free.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shortfall {
    /// The pod's request, in the scheduler's unit (millicores for cpu, bytes for memory).
    pub requested: i64,
    /// The largest free amount among the nodes rejected for this resource (never negative).
    pub free: i64,
}

/// For each resource some node was rejected for as `Insufficient <resource>`, what `pod`
/// requests of it and the most any of those nodes had free in `snapshot`.
pub fn shortfalls(
    statuses: &NodeStatuses,
    pod: &Pod,
    snapshot: &Snapshot,
) -> BTreeMap<String, Shortfall> {
    let mut found: BTreeMap<String, Shortfall> = BTreeMap::new();
    let mut requests: Option<Resources> = None;
    for (node, status) in statuses {
        let Some(info) = snapshot.get(node) else {
            continue;
        };
        for resource in status
            .reasons
            .iter()
            .filter_map(|r| r.strip_prefix(INSUFFICIENT))
        {
            let free = (info.allocatable.get(resource) - info.requested.get(resource)).max(0);
            found
                .entry(resource.to_string())
                .and_modify(|s| s.free = s.free.max(free))
                .or_insert_with(|| Shortfall {
                    requested: requests
                        .get_or_insert_with(|| pod_requests(pod, false))
                        .get(resource),
                    free,
                });
        }
    }
    found
}

/// Why the pod did not fit, in plain words: `"3 nodes: 2 Insufficient cpu (requested 2, free
/// at most 1.5), 1 had untolerated taint node.kubernetes.io/not-ready"`. Each node's reasons
/// count separately, as in the FailedScheduling message; groups go largest first, then in
/// upstream's alphabetical order. PostFilter's (preemption's) message is left out.
pub fn why_pending(fit: &FitError) -> String {
    let total = nodes(fit.num_all_nodes);
    if let Some(message) = &fit.pre_filter_msg {
        return format!("{total}, none considered: {}", plain(message));
    }
    let mut histogram: HashMap<&str, usize> = HashMap::new();
    for status in fit.statuses.values() {
        for reason in &status.reasons {
            *histogram.entry(reason.as_str()).or_default() += 1;
        }
    }
    let mut groups: Vec<(&str, usize)> = histogram.into_iter().collect();
    groups.sort_by(|(a, m), (b, n)| n.cmp(m).then(a.cmp(b)));
    let mut parts: Vec<String> = groups
        .into_iter()
        .map(|(reason, count)| format!("{count} {}", described(reason, fit)))
        .collect();
    let unconsidered = fit.num_all_nodes.saturating_sub(fit.statuses.len());
    if unconsidered > 0 {
        parts.push(format!("{unconsidered} not considered"));
    }
    if parts.is_empty() {
        return format!("{total}, none fits");
    }
    format!("{total}: {}", parts.join(", "))
}

/// "1 node", "3 nodes".
fn nodes(count: usize) -> String {
    if count == 1 {
        "1 node".to_string()
    } else {
        format!("{count} nodes")
    }
}

/// One reason in plain words, with the amounts for a resource the pod asked too much of.
fn described<'a>(reason: &'a str, fit: &FitError) -> Cow<'a, str> {
    let shortfall = reason
        .strip_prefix(INSUFFICIENT)
        .and_then(|resource| Some((resource, fit.shortfalls.get(resource)?)));
    match shortfall {
        Some((resource, s)) => Cow::Owned(format!(
            "{reason} (requested {}, free at most {})",
            quantity(resource, s.requested),
            quantity(resource, s.free)
        )),
        None => plain(reason),
    }
}

/// Upstream's reason in plain words: without the "node(s)" prefix, taints as `key=value`.
fn plain(reason: &str) -> Cow<'_, str> {
    if let Some(taint) = reason
        .strip_prefix(UNTOLERATED_TAINT)
        .and_then(|t| t.strip_suffix('}'))
    {
        // Upstream prints `{key: value}`, `{key: }` without a value.
        return Cow::Owned(match taint.split_once(": ").unwrap_or((taint, "")) {
            (key, "") => format!("had untolerated taint {key}"),
            (key, value) => format!("had untolerated taint {key}={value}"),
        });
    }
    match reason {
        "node(s) were unschedulable" => Cow::Borrowed("were cordoned (unschedulable)"),
        "node(s) didn't match Pod's node affinity/selector" => {
            Cow::Borrowed("didn't match the pod's node affinity/selector")
        }
        "Too many pods" => Cow::Borrowed("had too many pods"),
        _ => Cow::Borrowed(reason.strip_prefix(NODES).unwrap_or(reason)),
    }
}

/// An amount of `resource` as kubectl would show it: cpu in cores (`2`, `1.5`) or millicores
/// below one core (`250m`); memory, storage and hugepages in binary units (`1Gi`, `512Mi`,
/// `1.5Gi`, two decimals at most, rounded down); other resources as counts.
pub fn quantity(resource: &str, amount: i64) -> String {
    if resource == CPU {
        cpu(amount)
    } else if resource == MEMORY
        || resource == EPHEMERAL_STORAGE
        || resource.starts_with("hugepages-")
    {
        bytes(amount)
    } else {
        amount.to_string()
    }
}

fn cpu(milli: i64) -> String {
    if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else if milli.abs() < 1000 {
        format!("{milli}m")
    } else {
        let cores = format!("{}.{:03}", milli / 1000, (milli % 1000).abs());
        cores.trim_end_matches('0').to_string()
    }
}

fn bytes(amount: i64) -> String {
    const UNITS: [&str; 6] = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    let mut unit = None;
    let mut size: i64 = 1;
    for name in UNITS {
        match size.checked_mul(1024) {
            Some(next) if amount.abs() >= next => {
                size = next;
                unit = Some(name);
            }
            _ => break,
        }
    }
    let Some(unit) = unit else {
        return amount.to_string();
    };
    let whole = amount / size;
    // Hundredths of the unit, rounded toward zero: a free amount is never overstated.
    let hundredths = ((i128::from(amount % size) * 100) / i128::from(size)).abs();
    if hundredths == 0 {
        return format!("{whole}{unit}");
    }
    let decimals = format!("{hundredths:02}");
    format!("{whole}.{}{unit}", decimals.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::{Code, Status};
    use crate::plugins::{
        node_affinity, node_unschedulable, pod_topology_spread, taint_toleration, volume_binding,
    };

    /// A FitError over nodes n0, n1, ... each rejected with the given reasons.
    fn fit(total: usize, nodes: &[&[&str]]) -> FitError {
        let statuses = nodes
            .iter()
            .enumerate()
            .map(|(i, reasons)| {
                let status = Status {
                    code: Code::Unschedulable,
                    reasons: reasons.iter().map(|r| r.to_string()).collect(),
                    plugin: None,
                };
                (format!("n{i}"), status)
            })
            .collect();
        FitError::new(total, None, statuses)
    }

    fn short(resource: &str, requested: i64, free: i64) -> (String, Shortfall) {
        (resource.to_string(), Shortfall { requested, free })
    }

    #[test]
    fn reasons_in_plain_words() {
        let not_ready = taint_toleration::untolerated_reason("node.kubernetes.io/not-ready", "");
        let gpu = taint_toleration::untolerated_reason("dedicated", "gpu");
        let affinity = node_affinity::ERR_REASON_POD;
        let cordoned = node_unschedulable::ERR_REASON_UNSCHEDULABLE;
        let volume = volume_binding::ERR_NODE_CONFLICT;
        let spread = pod_topology_spread::ERR_REASON_CONSTRAINTS_NOT_MATCH;
        let cases: Vec<(FitError, &str)> = vec![
            (
                fit(
                    3,
                    &[&[&not_ready], &["Insufficient cpu"], &["Insufficient cpu"]],
                ),
                "3 nodes: 2 Insufficient cpu, 1 had untolerated taint node.kubernetes.io/not-ready",
            ),
            (
                fit(2, &[&[&gpu], &[&gpu]]),
                "2 nodes: 2 had untolerated taint dedicated=gpu",
            ),
            (
                fit(1, &[&[affinity]]),
                "1 node: 1 didn't match the pod's node affinity/selector",
            ),
            (
                fit(3, &[&[volume], &[spread], &[cordoned]]),
                "3 nodes: 1 didn't match pod topology spread constraints, \
                 1 had volume node affinity conflict, 1 were cordoned (unschedulable)",
            ),
            (
                fit(
                    2,
                    &[
                        &["Insufficient cpu", "Insufficient memory"],
                        &["Insufficient memory", "Too many pods"],
                    ],
                ),
                "2 nodes: 2 Insufficient memory, 1 Insufficient cpu, 1 had too many pods",
            ),
            (
                fit(5, &[&[affinity], &[affinity]]),
                "5 nodes: 2 didn't match the pod's node affinity/selector, 3 not considered",
            ),
        ];
        for (i, (error, want)) in cases.iter().enumerate() {
            assert_eq!(why_pending(error), *want, "case {i}");
        }
    }

    #[test]
    fn insufficient_resources_say_how_much() {
        let mut error = fit(
            4,
            &[
                &["Insufficient cpu"],
                &["Insufficient cpu", "Insufficient memory"],
                &["Insufficient nvidia.com/gpu"],
                &[node_unschedulable::ERR_REASON_UNSCHEDULABLE],
            ],
        );
        error.shortfalls = [
            short("cpu", 2000, 1500),
            short("memory", 1 << 30, 512 << 20),
            short("nvidia.com/gpu", 2, 1),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            why_pending(&error),
            "4 nodes: 2 Insufficient cpu (requested 2, free at most 1.5), \
             1 Insufficient memory (requested 1Gi, free at most 512Mi), \
             1 Insufficient nvidia.com/gpu (requested 2, free at most 1), \
             1 were cordoned (unschedulable)"
        );
    }

    #[test]
    fn preemption_and_prefilter_messages() {
        let mut error = fit(2, &[&["Insufficient cpu"], &["Insufficient cpu"]]);
        error.post_filter_msg = Some(
            "preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
                .into(),
        );
        let why = why_pending(&error);
        assert_eq!(why, "2 nodes: 2 Insufficient cpu");
        assert!(!why.contains("preemption"));
        let unbound = FitError::new(
            3,
            Some(volume_binding::ERR_UNBOUND_IMMEDIATE.to_string()),
            NodeStatuses::new(),
        );
        assert_eq!(
            why_pending(&unbound),
            "3 nodes, none considered: pod has unbound immediate PersistentVolumeClaims"
        );
    }

    #[test]
    fn quantities_as_kubectl_shows_them() {
        let cases = [
            ("cpu", 2000, "2"),
            ("cpu", 1500, "1.5"),
            ("cpu", 1250, "1.25"),
            ("cpu", 250, "250m"),
            ("cpu", 0, "0"),
            ("memory", 1 << 30, "1Gi"),
            ("memory", 512 << 20, "512Mi"),
            ("memory", 1536 << 20, "1.5Gi"),
            ("memory", (3 << 30) + (1 << 20), "3Gi"),
            ("memory", 4_000_000_000, "3.72Gi"),
            ("memory", 1000, "1000"),
            ("ephemeral-storage", 10 << 30, "10Gi"),
            ("hugepages-2Mi", 2 << 20, "2Mi"),
            ("nvidia.com/gpu", 3, "3"),
        ];
        for (resource, amount, want) in cases {
            assert_eq!(quantity(resource, amount), want, "{resource} {amount}");
        }
    }

    #[test]
    fn shortfalls_take_the_most_free_among_rejected_nodes() {
        use crate::testing::{make_node, make_pod};
        let snapshot = Snapshot::from_objects(
            vec![
                make_node("a")
                    .capacity(&[("cpu", "1"), ("memory", "1Gi")])
                    .node(),
                make_node("b")
                    .capacity(&[("cpu", "2"), ("memory", "4Gi")])
                    .node(),
                make_node("c").capacity(&[("cpu", "8")]).node(),
            ],
            vec![make_pod("e").req("cpu", "500m").node("b").pod()],
        );
        let mut statuses = NodeStatuses::new();
        for (node, reasons) in [
            ("a", vec!["Insufficient cpu", "Insufficient memory"]),
            ("b", vec!["Insufficient cpu"]),
            ("c", vec!["Too many pods"]),
        ] {
            statuses.insert(
                node.to_string(),
                Status {
                    code: Code::Unschedulable,
                    reasons: reasons.into_iter().map(String::from).collect(),
                    plugin: None,
                },
            );
        }
        let pod = make_pod("p").req("cpu", "4").req("memory", "2Gi").pod();
        let found = shortfalls(&statuses, &pod, &snapshot);
        assert_eq!(
            found,
            [short("cpu", 4000, 1500), short("memory", 2 << 30, 1 << 30)]
                .into_iter()
                .collect()
        );
    }
}
