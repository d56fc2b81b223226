//! Which steps of a trace are one pod's journey.
//!
//! A Deployment's trace is a tree (by `parentSpanId`) holding every one of its pods: the
//! Deployment's create request → "created replicaset" → the ReplicaSet's create request →
//! one "created pod" per pod → that pod's create request → its scheduler and kubelet steps. A
//! pod's journey is the path from the root to the pod's own steps, with the parts of each step
//! on that path, and nothing of its sibling pods:
//!
//! - the pod's **own** steps: those whose object is the pod, and everything under them;
//! - their **ancestors**: the steps that led to the pod (the Deployment's and ReplicaSet's
//!   requests, the controllers' steps);
//! - the **parts** of each ancestor: its descendants done by the same component for the same
//!   object (the API server's "authenticated", "persisted"… of a request). Another pod's
//!   "created pod" is the controller's step under the API server's request, so it is never a
//!   part of that request, and neither is anything below it.

use std::collections::{HashMap, HashSet};

use ferry_journey::{ObjectRef, SpanRecord};

/// The object whose journey is wanted: its uid, and its key for the steps that were recorded
/// before it had one (the create request's own parts may carry only the name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    /// Its uid.
    pub uid: String,
    /// `pods`, `deployments`…
    pub resource: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl Subject {
    /// Whether `span` was done for this object.
    pub fn is_about(&self, span: &SpanRecord) -> bool {
        let Some(object) = &span.object else {
            return false;
        };
        match &object.uid {
            Some(uid) => *uid == self.uid,
            None => {
                object.resource == self.resource
                    && object.namespace == self.namespace
                    && object.name == self.name
            }
        }
    }
}

/// The spans of one or more traces as a tree: each span's parent and children by index.
struct Tree<'a> {
    spans: &'a [SpanRecord],
    parent: Vec<Option<usize>>,
    children: Vec<Vec<usize>>,
}

impl<'a> Tree<'a> {
    fn new(spans: &'a [SpanRecord]) -> Tree<'a> {
        let index: HashMap<(&str, &str), usize> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| ((s.trace_id.as_str(), s.span_id.as_str()), i))
            .collect();
        let parent: Vec<Option<usize>> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let id = s.parent_span_id.as_deref()?;
                index
                    .get(&(s.trace_id.as_str(), id))
                    .copied()
                    .filter(|p| *p != i)
            })
            .collect();
        let mut children = vec![Vec::new(); spans.len()];
        for (child, parent) in parent.iter().enumerate() {
            if let Some(parent) = parent {
                children[*parent].push(child);
            }
        }
        Tree {
            spans,
            parent,
            children,
        }
    }

    /// `i`'s ancestors, nearest first (stops at a cycle, which well-formed ids never make).
    fn ancestors(&self, i: usize) -> Vec<usize> {
        let mut seen = HashSet::from([i]);
        let mut out = Vec::new();
        let mut at = self.parent[i];
        while let Some(p) = at.filter(|p| seen.insert(*p)) {
            out.push(p);
            at = self.parent[p];
        }
        out
    }

    /// The spans below `i` reached through children that `follow` accepts.
    fn below(&self, i: usize, follow: impl Fn(usize) -> bool) -> Vec<usize> {
        let mut seen = HashSet::from([i]);
        let mut out = Vec::new();
        let mut stack = vec![i];
        while let Some(at) = stack.pop() {
            for &child in &self.children[at] {
                if follow(child) && seen.insert(child) {
                    out.push(child);
                    stack.push(child);
                }
            }
        }
        out
    }

    /// The parts of step `i`: its descendants by the same component for the same object.
    fn parts(&self, i: usize) -> Vec<usize> {
        let whole = &self.spans[i];
        let key = object_key(whole.object.as_ref());
        self.below(i, |c| {
            let part = &self.spans[c];
            part.component == whole.component && object_key(part.object.as_ref()) == key
        })
    }
}

/// An object's identity without its uid (a request's parts may have been recorded before the
/// uid was known).
fn object_key(object: Option<&ObjectRef>) -> Option<(&str, &str, &str)> {
    object.map(|o| (o.resource.as_str(), o.namespace.as_str(), o.name.as_str()))
}

/// The journey of `subject` among `spans` (one or more whole traces), in the input's order.
pub fn journey<'a>(spans: &'a [SpanRecord], subject: &Subject) -> Vec<&'a SpanRecord> {
    let tree = Tree::new(spans);
    let mut keep = HashSet::new();
    for own in (0..spans.len()).filter(|i| subject.is_about(&spans[*i])) {
        keep.insert(own);
        keep.extend(tree.below(own, |_| true));
        for ancestor in tree.ancestors(own) {
            keep.insert(ancestor);
            keep.extend(tree.parts(ancestor));
        }
    }
    (0..spans.len())
        .filter(|i| keep.contains(i))
        .map(|i| &spans[i])
        .collect()
}

/// A workload's own steps in its trace: everything except the pods' branches (the subtrees
/// under the steps done for a pod), which [`journey`] shows pod by pod.
pub fn without_pods(spans: &[SpanRecord]) -> Vec<&SpanRecord> {
    let tree = Tree::new(spans);
    let is_pod = |s: &SpanRecord| s.object.as_ref().is_some_and(|o| o.resource == "pods");
    let mut drop = HashSet::new();
    for root in (0..spans.len()).filter(|i| is_pod(&spans[*i])) {
        drop.insert(root);
        drop.extend(tree.below(root, |_| true));
    }
    (0..spans.len())
        .filter(|i| !drop.contains(i))
        .map(|i| &spans[i])
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A span of trace `t` for tests: `id` and `parent` are short names padded to span ids.
    pub fn span(
        id: &str,
        parent: Option<&str>,
        step: &str,
        component: &str,
        object: &str,
        uid: Option<&str>,
    ) -> SpanRecord {
        let mut object = ObjectRef::parse(object);
        if let Some(object) = object.as_mut() {
            object.uid = uid.map(str::to_string);
        }
        SpanRecord {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: format!("{id:0>16}"),
            parent_span_id: parent.map(|p| format!("{p:0>16}")),
            step: step.into(),
            component: component.into(),
            object,
            start_unix_nanos: 0,
            end_unix_nanos: 0,
            error: None,
            attributes: Default::default(),
        }
    }

    const API: &str = "kube-apiserver";
    const KCM: &str = "kube-controller-manager";

    /// A Deployment with one ReplicaSet and two pods, `a` (uid ua) and `b` (uid ub).
    pub fn deployment_tree() -> Vec<SpanRecord> {
        let d = "deployments/default/web";
        let rs = "replicasets/default/web-1";
        let (pa, pb) = ("pods/default/web-1-a", "pods/default/web-1-b");
        vec![
            span("1", None, "request", API, d, Some("ud")),
            span("11", Some("1"), "authenticated", API, d, None),
            span("12", Some("1"), "persisted", API, d, Some("ud")),
            span("2", Some("1"), "created replicaset", KCM, rs, None),
            span("3", Some("2"), "request", API, rs, Some("urs")),
            span("31", Some("3"), "authenticated", API, rs, None),
            span("32", Some("3"), "admission", API, rs, None),
            span("321", Some("32"), "mutating admission", API, rs, None),
            span("33", Some("3"), "persisted", API, rs, Some("urs")),
            span("4a", Some("3"), "created pod", KCM, pa, None),
            span("5a", Some("4a"), "request", API, pa, Some("ua")),
            span("51a", Some("5a"), "authenticated", API, pa, None),
            span("6a", Some("5a"), "bound", "kube-scheduler", pa, Some("ua")),
            span("7a", Some("5a"), "ready", "kubelet", pa, Some("ua")),
            span("4b", Some("3"), "created pod", KCM, pb, None),
            span("5b", Some("4b"), "request", API, pb, Some("ub")),
            span("51b", Some("5b"), "authenticated", API, pb, None),
            span("6b", Some("5b"), "bound", "kube-scheduler", pb, Some("ub")),
            // The deployment controller's later work, not on pod a's path.
            span("8", Some("1"), "scaled replicaset", KCM, rs, None),
        ]
    }

    fn pod(name: &str, uid: &str) -> Subject {
        Subject {
            uid: uid.into(),
            resource: "pods".into(),
            namespace: "default".into(),
            name: name.into(),
        }
    }

    fn ids(spans: Vec<&SpanRecord>) -> Vec<String> {
        spans
            .iter()
            .map(|s| s.span_id.trim_start_matches('0').to_string())
            .collect()
    }

    #[test]
    fn a_pods_journey_is_its_path_with_the_parts_of_each_step_and_no_sibling() {
        let spans = deployment_tree();
        let a = journey(&spans, &pod("web-1-a", "ua"));
        assert_eq!(
            ids(a),
            ["1", "11", "12", "2", "3", "31", "32", "321", "33", "4a", "5a", "51a", "6a", "7a"]
        );
        let b = journey(&spans, &pod("web-1-b", "ub"));
        assert_eq!(
            ids(b),
            ["1", "11", "12", "2", "3", "31", "32", "321", "33", "4b", "5b", "51b", "6b"]
        );
    }

    #[test]
    fn a_sibling_whose_request_was_not_kept_still_stays_out() {
        // Pod b's request and steps fell off the bound: its "created pod" is a leaf now.
        let spans: Vec<_> = deployment_tree()
            .into_iter()
            .filter(|s| !s.span_id.ends_with('b') || s.step == "created pod")
            .collect();
        let a = ids(journey(&spans, &pod("web-1-a", "ua")));
        assert!(!a.contains(&"4b".to_string()), "{a:?}");
    }

    #[test]
    fn an_object_without_steps_has_no_journey_and_missing_parents_cut_the_path() {
        let spans = deployment_tree();
        assert!(journey(&spans, &pod("other", "uo")).is_empty());
        // Without the ReplicaSet's request the pod's path stops at "created pod".
        let spans: Vec<_> = spans
            .into_iter()
            .filter(|s| s.span_id != format!("{:0>16}", "3"))
            .collect();
        assert_eq!(
            ids(journey(&spans, &pod("web-1-a", "ua"))),
            ["4a", "5a", "51a", "6a", "7a"]
        );
    }

    #[test]
    fn steps_known_only_by_name_before_the_uid_count_as_the_pods() {
        let spans = vec![
            span("9", None, "request", API, "pods/default/solo", None),
            span(
                "91",
                Some("9"),
                "bound",
                "kube-scheduler",
                "pods/default/solo",
                Some("us"),
            ),
            span(
                "92",
                None,
                "request",
                API,
                "pods/default/solo",
                Some("old-uid"),
            ),
        ];
        assert_eq!(ids(journey(&spans, &pod("solo", "us"))), ["9", "91"]);
    }

    #[test]
    fn a_workloads_own_steps_leave_out_the_pods_branches() {
        let spans = deployment_tree();
        assert_eq!(
            ids(without_pods(&spans)),
            ["1", "11", "12", "2", "3", "31", "32", "321", "33", "8"]
        );
    }
}
