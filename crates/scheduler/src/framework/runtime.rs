//! One profile's plugins, resolved from the configuration, and the functions that run each
//! extension point in order (upstream's `frameworkImpl`).
//!
//! Resolution follows upstream: the default plugins are enabled through `multiPoint` (each at
//! every extension point it implements, with upstream's score weights); a profile's `multiPoint`
//! and per-point `enabled`/`disabled` lists are merged over them (`disabled: [{name: "*"}]`
//! drops the defaults; enabling a default again re-weights it in place).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

use crate::cache::{NodeInfo, Snapshot};
use crate::config::{ConfigError, PluginRef, PluginSet, Profile};
use crate::framework::registry::{Handle, Registry};
use crate::framework::{
    ClusterEvent, Code, CycleState, Filter, NodeScore, NodeStatuses, Plugin, PostFilterResult,
    Score, Status, MAX_NODE_SCORE,
};
use crate::plugins;
use crate::queue::QueuedPodInfo;

/// Upstream's default plugins (v1 `multiPoint`) and score weights.
pub const DEFAULT_PLUGINS: &[(&str, i64)] = &[
    (plugins::scheduling_gates::NAME, 0),
    (plugins::priority_sort::NAME, 0),
    (plugins::node_unschedulable::NAME, 0),
    (plugins::node_name::NAME, 0),
    (plugins::taint_toleration::NAME, 3),
    (plugins::node_affinity::NAME, 2),
    (plugins::node_ports::NAME, 0),
    (plugins::node_resources_fit::NAME, 1),
    (plugins::volume_restrictions::NAME, 0),
    (plugins::node_volume_limits::NAME, 0),
    (plugins::volume_binding::NAME, 0),
    (plugins::volume_zone::NAME, 0),
    (plugins::pod_topology_spread::NAME, 2),
    (plugins::inter_pod_affinity::NAME, 2),
    (plugins::default_preemption::NAME, 0),
    (plugins::node_resources_balanced_allocation::NAME, 1),
    (plugins::image_locality::NAME, 1),
    (plugins::default_binder::NAME, 0),
];

type P = Arc<dyn Plugin>;

/// A profile's plugins per extension point, and how to run them.
pub struct Framework {
    /// The profile's scheduler name.
    pub scheduler_name: String,
    /// The same name, shared by its metrics' label sets.
    profile: Arc<str>,
    /// The profile's percentageOfNodesToScore, if set.
    pub percentage_of_nodes_to_score: Option<i32>,
    pre_enqueue: Vec<P>,
    queue_sort: P,
    pre_filter: Vec<P>,
    filter: Vec<P>,
    post_filter: Vec<P>,
    pre_score: Vec<P>,
    score: Vec<(P, i64)>,
    reserve: Vec<P>,
    permit: Vec<P>,
    pre_bind: Vec<P>,
    bind: Vec<P>,
    post_bind: Vec<P>,
    all: Vec<P>,
    /// Threads for scoring.
    pub parallelism: usize,
}

fn merge(defaults: Vec<PluginRef>, custom: &PluginSet) -> Vec<PluginRef> {
    let disabled: HashSet<&str> = custom.disabled.iter().map(|p| p.name.as_str()).collect();
    let mut result: Vec<PluginRef> = if disabled.contains("*") {
        Vec::new()
    } else {
        defaults
            .into_iter()
            .filter(|p| !disabled.contains(p.name.as_str()))
            .collect()
    };
    for enabled in &custom.enabled {
        match result.iter_mut().find(|p| p.name == enabled.name) {
            Some(existing) => existing.weight = enabled.weight,
            None => result.push(enabled.clone()),
        }
    }
    result
}

impl Framework {
    /// Builds a profile's framework with plugins from `registry`.
    pub fn new(
        profile: &Profile,
        registry: &Registry,
        handle: &Handle,
        parallelism: usize,
    ) -> Result<Framework, ConfigError> {
        let defaults = DEFAULT_PLUGINS
            .iter()
            .map(|(name, weight)| PluginRef {
                name: name.to_string(),
                weight: *weight,
            })
            .collect();
        let multi_point = merge(defaults, &profile.plugins.multi_point);
        let p = &profile.plugins;
        let point_sets = [
            &p.pre_enqueue,
            &p.queue_sort,
            &p.pre_filter,
            &p.filter,
            &p.post_filter,
            &p.pre_score,
            &p.score,
            &p.reserve,
            &p.permit,
            &p.pre_bind,
            &p.bind,
            &p.post_bind,
        ];
        // Build every plugin named anywhere, once.
        let mut built: HashMap<String, P> = HashMap::new();
        let args: HashMap<&str, &serde_json::Value> = profile
            .plugin_config
            .iter()
            .filter_map(|c| c.args.as_ref().map(|a| (c.name.as_str(), a)))
            .collect();
        for name in multi_point
            .iter()
            .chain(point_sets.iter().flat_map(|s| s.enabled.iter()))
            .map(|p| p.name.clone())
        {
            if let std::collections::hash_map::Entry::Vacant(entry) = built.entry(name) {
                let plugin =
                    registry.build(entry.key(), args.get(entry.key().as_str()).copied(), handle)?;
                entry.insert(plugin);
            }
        }
        type Has = fn(&dyn Plugin) -> bool;
        let checks: [(&str, Has); 12] = [
            ("preEnqueue", |p| p.as_pre_enqueue().is_some()),
            ("queueSort", |p| p.as_queue_sort().is_some()),
            ("preFilter", |p| p.as_pre_filter().is_some()),
            ("filter", |p| p.as_filter().is_some()),
            ("postFilter", |p| p.as_post_filter().is_some()),
            ("preScore", |p| p.as_pre_score().is_some()),
            ("score", |p| p.as_score().is_some()),
            ("reserve", |p| p.as_reserve().is_some()),
            ("permit", |p| p.as_permit().is_some()),
            ("preBind", |p| p.as_pre_bind().is_some()),
            ("bind", |p| p.as_bind().is_some()),
            ("postBind", |p| p.as_post_bind().is_some()),
        ];
        let mut points: Vec<Vec<(P, i64)>> = Vec::new();
        for ((point, has), set) in checks.iter().zip(point_sets) {
            for enabled in &set.enabled {
                if built.get(&enabled.name).is_some_and(|p| !has(p.as_ref())) {
                    return Err(ConfigError::Invalid(format!(
                        "plugin {:?} does not implement {point}",
                        enabled.name
                    )));
                }
            }
            let base = multi_point
                .iter()
                .filter(|r| built.get(&r.name).is_some_and(|p| has(p.as_ref())))
                .cloned()
                .collect();
            let refs = merge(base, set);
            let mut list = Vec::new();
            for r in refs {
                if let Some(plugin) = built.get(&r.name) {
                    list.push((plugin.clone(), if r.weight == 0 { 1 } else { r.weight }));
                }
            }
            points.push(list);
        }
        let plain = |i: usize| points[i].iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
        let queue_sort = points[1].first().map(|(p, _)| p.clone()).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "profile {:?} has no queueSort plugin",
                profile.scheduler_name
            ))
        })?;
        if points[10].is_empty() {
            return Err(ConfigError::Invalid(format!(
                "profile {:?} has no bind plugin",
                profile.scheduler_name
            )));
        }
        let mut all: Vec<P> = built.into_values().collect();
        all.sort_by_key(|p| p.name());
        Ok(Framework {
            scheduler_name: profile.scheduler_name.clone(),
            profile: profile.scheduler_name.as_str().into(),
            percentage_of_nodes_to_score: profile.percentage_of_nodes_to_score,
            pre_enqueue: plain(0),
            queue_sort,
            pre_filter: plain(2),
            filter: plain(3),
            post_filter: plain(4),
            pre_score: plain(5),
            score: points[6].clone(),
            reserve: plain(7),
            permit: plain(8),
            pre_bind: plain(9),
            bind: plain(10),
            post_bind: plain(11),
            all,
            parallelism: parallelism.max(1),
        })
    }

    /// The default profile with the in-tree plugins (tests, benchmarks).
    pub fn default_profile(handle: &Handle) -> Framework {
        #[allow(clippy::expect_used)]
        Framework::new(&Profile::default(), &plugins::registry(), handle, 1)
            .expect("the default profile is valid")
    }

    /// The names of the plugins at each extension point, for logs and tests.
    pub fn plugin_names(&self) -> Vec<(&'static str, Vec<(&'static str, i64)>)> {
        let names = |v: &Vec<P>| v.iter().map(|p| (p.name(), 0)).collect::<Vec<_>>();
        vec![
            ("preEnqueue", names(&self.pre_enqueue)),
            ("queueSort", vec![(self.queue_sort.name(), 0)]),
            ("preFilter", names(&self.pre_filter)),
            ("filter", names(&self.filter)),
            ("postFilter", names(&self.post_filter)),
            ("preScore", names(&self.pre_score)),
            (
                "score",
                self.score.iter().map(|(p, w)| (p.name(), *w)).collect(),
            ),
            ("reserve", names(&self.reserve)),
            ("permit", names(&self.permit)),
            ("preBind", names(&self.pre_bind)),
            ("bind", names(&self.bind)),
            ("postBind", names(&self.post_bind)),
        ]
    }

    /// For each plugin, the events that can make a pod it rejected schedulable.
    pub fn events(&self) -> HashMap<&'static str, HashSet<ClusterEvent>> {
        self.all
            .iter()
            .map(|p| (p.name(), p.events().into_iter().collect()))
            .collect()
    }

    /// Whether there are Filter plugins.
    pub fn has_filters(&self) -> bool {
        !self.filter.is_empty()
    }

    /// PreEnqueue: the first non-success status, or success.
    pub fn run_pre_enqueue(&self, pod: &Pod) -> Status {
        for plugin in &self.pre_enqueue {
            if let Some(p) = plugin.as_pre_enqueue() {
                let status = p.pre_enqueue(pod);
                if !status.is_success() {
                    return status.with_plugin(plugin.name());
                }
            }
        }
        Status::success()
    }

    /// QueueSort.
    pub fn less(&self, a: &QueuedPodInfo, b: &QueuedPodInfo) -> bool {
        self.queue_sort
            .as_queue_sort()
            .is_some_and(|q| q.less(a, b))
    }

    /// PreFilter: the nodes to consider (`None`: all) or the first rejection.
    pub fn run_pre_filter(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
    ) -> Result<Option<HashSet<String>>, Status> {
        let started = Instant::now();
        let result = self.pre_filter(state, pod, snapshot);
        let code = result.as_ref().map_or_else(|s| s.code, |_| Code::Success);
        self.observe("PreFilter", started, code);
        result
    }

    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
    ) -> Result<Option<HashSet<String>>, Status> {
        let mut nodes: Option<HashSet<String>> = None;
        for plugin in &self.pre_filter {
            let Some(p) = plugin.as_pre_filter() else {
                continue;
            };
            let (result, status) = p.pre_filter(state, pod, snapshot);
            if status.is_skip() {
                state.skip_filter_plugins.insert(plugin.name());
                continue;
            }
            if !status.is_success() {
                return Err(status.with_plugin(plugin.name()));
            }
            if let Some(names) = result.and_then(|r| r.node_names) {
                nodes = Some(match nodes {
                    None => names,
                    Some(previous) => previous.intersection(&names).cloned().collect(),
                });
            }
        }
        Ok(nodes)
    }

    /// Filter: the first failing plugin's status, or success.
    pub fn run_filter(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        run_filters(&self.active_filters(state), state, pod, node)
    }

    /// The Filter plugins of this cycle, in order: those whose PreFilter did not skip them.
    /// Resolved once per cycle so the per-node loop does no lookups.
    pub fn active_filters(&self, state: &CycleState) -> Vec<(&'static str, &dyn Filter)> {
        self.filter
            .iter()
            .filter(|plugin| !state.skip_filter_plugins.contains(plugin.name()))
            .filter_map(|plugin| Some((plugin.name(), plugin.as_filter()?)))
            .collect()
    }

    /// PreFilter and Filter for one node of a what-if snapshot (preemption: the node without
    /// its victims). PreFilter runs again because affinity and spreading state depend on pods.
    pub fn run_filter_what_if(&self, pod: &Pod, snapshot: &Snapshot, node: &str) -> Status {
        let mut state = CycleState::new();
        let Some(info) = snapshot.get(node) else {
            return Status::unresolvable("node not found");
        };
        match self.run_pre_filter(&mut state, pod, snapshot) {
            Err(status) => status,
            Ok(Some(names)) if !names.contains(node) => {
                Status::unresolvable("node(s) didn't satisfy plugin(s) PreFilter")
            }
            Ok(_) => self.run_filter(&state, pod, info),
        }
    }

    /// PostFilter: the first plugin that succeeds; otherwise the last status.
    pub fn run_post_filter(
        &self,
        state: &CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
        statuses: &NodeStatuses,
    ) -> (Option<PostFilterResult>, Status) {
        let started = Instant::now();
        let result = self.post_filter(state, pod, snapshot, statuses);
        self.observe("PostFilter", started, result.1.code);
        result
    }

    fn post_filter(
        &self,
        state: &CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
        statuses: &NodeStatuses,
    ) -> (Option<PostFilterResult>, Status) {
        let mut last = (None, Status::unschedulable(""));
        for plugin in &self.post_filter {
            let Some(p) = plugin.as_post_filter() else {
                continue;
            };
            let (result, status) = p.post_filter(state, pod, snapshot, statuses, self);
            if status.is_success() {
                return (result, status);
            }
            if status.code == Code::Error {
                return (result, status.with_plugin(plugin.name()));
            }
            last = (result, status.with_plugin(plugin.name()));
        }
        last
    }

    /// PreScore over the feasible nodes.
    pub fn run_pre_score(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        nodes: &[Arc<NodeInfo>],
        snapshot: &Snapshot,
    ) -> Status {
        let started = Instant::now();
        let status = self.pre_score(state, pod, nodes, snapshot);
        self.observe("PreScore", started, status.code);
        status
    }

    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        nodes: &[Arc<NodeInfo>],
        snapshot: &Snapshot,
    ) -> Status {
        for plugin in &self.pre_score {
            let Some(p) = plugin.as_pre_score() else {
                continue;
            };
            let status = p.pre_score(state, pod, nodes, snapshot);
            if status.is_skip() {
                state.skip_score_plugins.insert(plugin.name());
            } else if !status.is_success() {
                return status.with_plugin(plugin.name());
            }
        }
        Status::success()
    }

    /// Score, NormalizeScore and weights: each node's total. Every Score plugin runs in one
    /// pass over the nodes (one set of threads per cycle, not one per plugin); errors and
    /// normalization then go plugin by plugin, in order.
    pub fn run_score(
        &self,
        state: &CycleState,
        pod: &Pod,
        nodes: &[Arc<NodeInfo>],
    ) -> Result<Vec<i64>, Status> {
        let started = Instant::now();
        let result = self.score(state, pod, nodes);
        let code = result.as_ref().map_or_else(|s| s.code, |_| Code::Success);
        self.observe("Score", started, code);
        result
    }

    fn score(
        &self,
        state: &CycleState,
        pod: &Pod,
        nodes: &[Arc<NodeInfo>],
    ) -> Result<Vec<i64>, Status> {
        let mut totals = vec![0i64; nodes.len()];
        let active: Vec<(&'static str, &dyn Score, i64)> = self
            .score
            .iter()
            .filter(|(plugin, _)| !state.skip_score_plugins.contains(plugin.name()))
            .filter_map(|(plugin, weight)| Some((plugin.name(), plugin.as_score()?, *weight)))
            .collect();
        if active.is_empty() || nodes.is_empty() {
            return Ok(totals);
        }
        let k = active.len();
        // raw[i * k + j]: plugin j's raw score of node i.
        let mut raw: Vec<(i64, Status)> = vec![(0, Status::success()); nodes.len() * k];
        parallel_for_each(nodes, &mut raw, k, self.parallelism, |node, out| {
            for (slot, (_, p, _)) in out.iter_mut().zip(&active) {
                *slot = p.score(state, pod, node);
            }
        });
        let mut scores: Vec<NodeScore> = nodes
            .iter()
            .map(|n| NodeScore {
                name: n.name.clone(),
                score: 0,
            })
            .collect();
        for (j, (name, p, weight)) in active.iter().enumerate() {
            for (i, slot) in scores.iter_mut().enumerate() {
                let (score, status) = &mut raw[i * k + j];
                if !status.is_success() {
                    return Err(std::mem::replace(status, Status::success()).with_plugin(name));
                }
                slot.score = *score;
            }
            let status = p.normalize_score(state, pod, &mut scores);
            if !status.is_success() {
                return Err(status.with_plugin(name));
            }
            for (total, s) in totals.iter_mut().zip(&scores) {
                if !(0..=MAX_NODE_SCORE).contains(&s.score) {
                    return Err(Status::error(format!(
                        "plugin {name:?} returns an invalid score {}, it should in the range of [0, {MAX_NODE_SCORE}] after normalizing",
                        s.score
                    )));
                }
                *total += s.score * weight;
            }
        }
        Ok(totals)
    }

    /// Reserve; on failure everything reserved is undone.
    pub fn run_reserve(&self, state: &mut CycleState, pod: &Pod, node: &str) -> Status {
        let started = Instant::now();
        let status = self.reserve(state, pod, node);
        self.observe("Reserve", started, status.code);
        status
    }

    fn reserve(&self, state: &mut CycleState, pod: &Pod, node: &str) -> Status {
        for plugin in &self.reserve {
            let Some(p) = plugin.as_reserve() else {
                continue;
            };
            let status = p.reserve(state, pod, node);
            if !status.is_success() {
                self.run_unreserve(state, pod, node);
                return status.with_plugin(plugin.name());
            }
        }
        Status::success()
    }

    /// Unreserve, in reverse order.
    pub fn run_unreserve(&self, state: &mut CycleState, pod: &Pod, node: &str) {
        let started = Instant::now();
        for plugin in self.reserve.iter().rev() {
            if let Some(p) = plugin.as_reserve() {
                p.unreserve(state, pod, node);
            }
        }
        self.observe("Unreserve", started, Code::Success);
    }

    /// Permit: a rejection, or how long to wait (`None`: allowed now).
    pub fn run_permit(
        &self,
        state: &CycleState,
        pod: &Pod,
        node: &str,
    ) -> Result<Option<Duration>, Status> {
        let started = Instant::now();
        let result = self.permit(state, pod, node);
        let code = match &result {
            Ok(Some(_)) => Code::Wait,
            Ok(None) => Code::Success,
            Err(status) => status.code,
        };
        self.observe("Permit", started, code);
        result
    }

    fn permit(
        &self,
        state: &CycleState,
        pod: &Pod,
        node: &str,
    ) -> Result<Option<Duration>, Status> {
        let mut wait: Option<Duration> = None;
        for plugin in &self.permit {
            let Some(p) = plugin.as_permit() else {
                continue;
            };
            let (status, timeout) = p.permit(state, pod, node);
            match status.code {
                Code::Success | Code::Skip => {}
                Code::Wait => wait = Some(wait.map_or(timeout, |w| w.max(timeout))),
                _ => return Err(status.with_plugin(plugin.name())),
            }
        }
        Ok(wait)
    }

    /// PreBind.
    pub async fn run_pre_bind(&self, state: &CycleState, pod: &Pod, node: &str) -> Status {
        let started = Instant::now();
        let status = self.pre_bind(state, pod, node).await;
        self.observe("PreBind", started, status.code);
        status
    }

    async fn pre_bind(&self, state: &CycleState, pod: &Pod, node: &str) -> Status {
        for plugin in &self.pre_bind {
            let Some(p) = plugin.as_pre_bind() else {
                continue;
            };
            let status = p.pre_bind(state, pod, node).await;
            if !status.is_success() {
                return status.with_plugin(plugin.name());
            }
        }
        Status::success()
    }

    /// Bind: the first plugin not skipping binds.
    pub async fn run_bind(&self, state: &CycleState, pod: &Pod, node: &str) -> Status {
        let started = Instant::now();
        let status = self.bind(state, pod, node).await;
        self.observe("Bind", started, status.code);
        status
    }

    async fn bind(&self, state: &CycleState, pod: &Pod, node: &str) -> Status {
        for plugin in &self.bind {
            let Some(p) = plugin.as_bind() else { continue };
            let status = p.bind(state, pod, node).await;
            if status.is_skip() {
                continue;
            }
            return status.with_plugin(plugin.name());
        }
        Status::error("all bind plugins skipped")
    }

    /// PostBind.
    pub fn run_post_bind(&self, state: &CycleState, pod: &Pod, node: &str) {
        let started = Instant::now();
        for plugin in &self.post_bind {
            if let Some(p) = plugin.as_post_bind() {
                p.post_bind(state, pod, node);
            }
        }
        self.observe("PostBind", started, Code::Success);
    }

    /// The profile's name, as its metrics label it.
    pub fn profile(&self) -> &Arc<str> {
        &self.profile
    }

    /// Records a run of `extension_point` begun at `started` that answered `code`.
    fn observe(&self, extension_point: &'static str, started: Instant, code: Code) {
        crate::metrics::extension_point(extension_point, &self.profile, code, started.elapsed());
    }
}

/// Runs `filters` in order on one node: the first failing plugin's status, or success.
pub fn run_filters(
    filters: &[(&'static str, &dyn Filter)],
    state: &CycleState,
    pod: &Pod,
    node: &NodeInfo,
) -> Status {
    for (name, p) in filters {
        let status = p.filter(state, pod, node);
        if !status.is_success() {
            return status.with_plugin(name);
        }
    }
    Status::success()
}

/// Below this many items per thread, splitting the work costs more than it saves (a thread
/// spawn costs about as much as scoring a few hundred nodes).
const MIN_ITEMS_PER_THREAD: usize = 256;

/// Maps `items` through `f` on up to `parallelism` threads (the caller's and scoped ones),
/// keeping order.
pub fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    parallelism: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = parallelism.min(items.len() / MIN_ITEMS_PER_THREAD).max(1);
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let mut chunks = items.chunks(chunk);
        let first = chunks.next().unwrap_or_default();
        let handles: Vec<_> = chunks
            .map(|c| scope.spawn(move || c.iter().map(f).collect::<Vec<R>>()))
            .collect();
        let mut out: Vec<R> = Vec::with_capacity(items.len());
        out.extend(first.iter().map(f));
        for h in handles {
            out.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        out
    })
}

/// Calls `f(item, out)` for every item with its own `per_item`-long slice of `out`
/// (`out.len() == items.len() * per_item`), on up to `parallelism` threads.
pub fn parallel_for_each<T: Sync, R: Send>(
    items: &[T],
    out: &mut [R],
    per_item: usize,
    parallelism: usize,
    f: impl Fn(&T, &mut [R]) + Sync,
) {
    debug_assert_eq!(out.len(), items.len() * per_item);
    let per_item = per_item.max(1);
    let run = |items: &[T], out: &mut [R]| {
        for (item, slot) in items.iter().zip(out.chunks_mut(per_item)) {
            f(item, slot);
        }
    };
    let threads = parallelism.min(items.len() / MIN_ITEMS_PER_THREAD).max(1);
    if threads == 1 {
        return run(items, out);
    }
    let chunk = items.len().div_ceil(threads);
    let run = &run;
    std::thread::scope(|scope| {
        let mut parts = items.chunks(chunk).zip(out.chunks_mut(chunk * per_item));
        let first = parts.next();
        for (items, out) in parts {
            scope.spawn(move || run(items, out));
        }
        if let Some((items, out)) = first {
            run(items, out);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binder::FakeBinder;
    use crate::config::Config;

    fn handle() -> Handle {
        Handle {
            binder: FakeBinder::new(),
            volumes: Default::default(),
            workloads: Default::default(),
        }
    }

    #[test]
    fn default_profile_has_upstreams_weights() {
        let framework = Framework::default_profile(&handle());
        let names = framework.plugin_names();
        let score = &names.iter().find(|(p, _)| *p == "score").expect("score").1;
        assert_eq!(
            score,
            &[
                ("TaintToleration", 3),
                ("NodeAffinity", 2),
                ("NodeResourcesFit", 1),
                ("PodTopologySpread", 2),
                ("InterPodAffinity", 2),
                ("NodeResourcesBalancedAllocation", 1),
                ("ImageLocality", 1),
            ]
        );
        let filter: Vec<&str> = names
            .iter()
            .find(|(p, _)| *p == "filter")
            .expect("filter")
            .1
            .iter()
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(
            filter,
            [
                "NodeUnschedulable",
                "NodeName",
                "TaintToleration",
                "NodeAffinity",
                "NodePorts",
                "NodeResourcesFit",
                "NodeVolumeLimits",
                "VolumeBinding",
                "VolumeZone",
                "PodTopologySpread",
                "InterPodAffinity"
            ]
        );
    }

    #[test]
    fn profiles_merge_over_the_defaults() {
        let yaml = r#"
profiles:
- schedulerName: packer
  plugins:
    score:
      disabled: [{name: NodeResourcesBalancedAllocation}, {name: ImageLocality}]
      enabled: [{name: NodeResourcesFit, weight: 5}]
    filter:
      disabled: [{name: "*"}]
      enabled: [{name: NodeResourcesFit}]
"#;
        let config = Config::parse(yaml, "f").expect("parse");
        let framework = Framework::new(&config.profiles[0], &plugins::registry(), &handle(), 1)
            .expect("framework");
        let names = framework.plugin_names();
        let get = |point: &str| {
            names
                .iter()
                .find(|(p, _)| *p == point)
                .expect("point")
                .1
                .clone()
        };
        assert_eq!(get("filter"), [("NodeResourcesFit", 0)]);
        assert!(get("score").contains(&("NodeResourcesFit", 5)));
        assert!(!get("score").iter().any(|(n, _)| *n == "ImageLocality"));

        let bad = Config::parse(
            "profiles: [{plugins: {filter: {enabled: [{name: Nope}]}}}]",
            "f",
        )
        .expect("parse");
        assert!(matches!(
            Framework::new(&bad.profiles[0], &plugins::registry(), &handle(), 1),
            Err(ConfigError::UnknownPlugin(_))
        ));
        let wrong = Config::parse(
            "profiles: [{plugins: {filter: {enabled: [{name: ImageLocality}]}}}]",
            "f",
        )
        .expect("parse");
        assert!(matches!(
            Framework::new(&wrong.profiles[0], &plugins::registry(), &handle(), 1),
            Err(ConfigError::Invalid(_))
        ));
    }

    #[test]
    fn parallel_map_keeps_order() {
        let items: Vec<usize> = (0..1000).collect();
        assert_eq!(
            parallel_map(&items, 4, |i| i * 2),
            items.iter().map(|i| i * 2).collect::<Vec<_>>()
        );
    }

    #[test]
    fn parallel_for_each_fills_each_items_slice() {
        for n in [0, 5, 1000] {
            let items: Vec<usize> = (0..n).collect();
            let mut out = vec![0usize; n * 3];
            parallel_for_each(&items, &mut out, 3, 2, |i, slot| {
                for (j, s) in slot.iter_mut().enumerate() {
                    *s = i * 10 + j;
                }
            });
            let want: Vec<usize> = items
                .iter()
                .flat_map(|i| (0..3).map(move |j| i * 10 + j))
                .collect();
            assert_eq!(out, want);
        }
    }
}
