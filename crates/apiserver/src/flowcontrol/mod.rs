//! API Priority and Fairness (upstream's `k8s.io/apiserver/pkg/util/flowcontrol`): requests are
//! classified by the FlowSchema with the lowest `matchingPrecedence` that matches them
//! ([`classify`]) into a priority level and a flow; a limited level runs at most its share of
//! the server's concurrency limit at once, queues the rest fairly among flows with shuffle
//! sharding ([`queueset`]) and refuses what its queues cannot hold (429 with `Retry-After`);
//! an exempt level (`system:masters`, health probes) is never limited. The levels and schemas
//! are ordinary objects (`flowcontrol.apiserver.k8s.io/v1`), kept by [`Controller`] from store
//! watches; the server creates upstream's [`bootstrap`] configuration at start and keeps it.
//!
//! Start reading at [`Controller::classify`] and [`Controller::admit`], called by
//! `filters::priority_and_fairness`.

pub mod bootstrap;
pub mod classify;
pub mod estimate;
pub mod queueset;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferry_store::{Event, EventKind, KeyValue};
use k8s_openapi::api::flowcontrol::v1::PolicyRulesWithSubjects;
use parking_lot::{Mutex, RwLock};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::request::RequestInfo;
use classify::Distinguisher;
use queueset::{QueueSet, QueueSetConfig, Rejection, Seat};

/// The response header naming the FlowSchema a request matched.
pub const FLOW_SCHEMA_UID_HEADER: &str = "X-Kubernetes-PF-FlowSchema-UID";
/// The response header naming the priority level a request ran at.
pub const PRIORITY_LEVEL_UID_HEADER: &str = "X-Kubernetes-PF-PriorityLevel-UID";

/// How long a request waits in a queue at most: upstream's quarter of the 60 s request
/// timeout.
pub const DEFAULT_QUEUE_WAIT: Duration = Duration::from_secs(15);
/// The longest `Retry-After` a refused request is given, in seconds.
const MAX_RETRY_AFTER: u64 = 32;

/// Where the levels' and schemas' objects are stored.
const PREFIXES: &[&str] = &["/flowschemas/", "/prioritylevelconfigurations/"];

/// A priority level in force.
pub struct Level {
    /// Its name.
    pub name: String,
    /// Its object's UID ("" for a mandatory level not stored yet).
    pub uid: String,
    /// Its queues, or `None` for an exempt level.
    queues: Option<Arc<QueueSet>>,
    /// Its seats (upstream's nominal concurrency limit).
    pub nominal_seats: usize,
    drops: Arc<Mutex<Drops>>,
}

impl Level {
    /// Whether the level is exempt from limits.
    pub fn is_exempt(&self) -> bool {
        self.queues.is_none()
    }
}

/// When requests were dropped, for `Retry-After` (upstream's dropped-requests tracker,
/// simplified): the advice doubles, up to 32 s, while drops go on through a whole advised
/// period, and halves after a period without drops.
#[derive(Default)]
struct Drops {
    /// Drops per second (unix seconds), the last 64 s.
    seconds: VecDeque<(u64, u64)>,
    retry_after: u64,
    adjusted_at: u64,
}

impl Drops {
    fn record(&mut self, now: u64) -> u64 {
        if self.retry_after == 0 {
            self.retry_after = 1;
            self.adjusted_at = now;
        }
        match self.seconds.back_mut() {
            Some((second, count)) if *second == now => *count += 1,
            _ => self.seconds.push_back((now, 1)),
        }
        while self.seconds.front().is_some_and(|(s, _)| *s + 64 < now) {
            self.seconds.pop_front();
        }
        if now >= self.adjusted_at + self.retry_after {
            let window = self.retry_after;
            let dropped_in = |second: u64| self.seconds.iter().any(|(s, _)| *s == second);
            let sustained = (1..=window).all(|d| dropped_in(now - d));
            let quiet = (1..=window).all(|d| !dropped_in(now - d));
            if sustained {
                self.retry_after = (self.retry_after * 2).min(MAX_RETRY_AFTER);
            } else if quiet {
                self.retry_after = (self.retry_after / 2).max(1);
            }
            self.adjusted_at = now;
        }
        self.retry_after
    }
}

struct Schema {
    name: String,
    uid: String,
    level: String,
    distinguisher: Option<Distinguisher>,
    rules: Vec<PolicyRulesWithSubjects>,
}

/// What the server classifies with: the schemas in matching order and the levels by name.
struct Config {
    schemas: Vec<Schema>,
    levels: HashMap<String, Arc<Level>>,
}

/// Which schema, level and flow a request belongs to.
pub struct Classification {
    /// The matching FlowSchema's name.
    pub flow_schema: String,
    /// Its UID.
    pub flow_schema_uid: String,
    /// The priority level.
    pub level: Arc<Level>,
    /// The flow's hash (schema and distinguisher), which deals its queues.
    pub flow_hash: u64,
}

/// A refused request: how long its client should wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// Why.
    pub reason: Rejection,
    /// The `Retry-After` advice, in seconds.
    pub retry_after: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlowLabels {
    flow_schema: String,
    priority_level: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectLabels {
    flow_schema: String,
    priority_level: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LevelLabels {
    priority_level: String,
}

/// Upstream's `apiserver_flowcontrol_*` metrics.
#[derive(Default)]
struct Metrics {
    rejected: Family<RejectLabels, Counter>,
    dispatched: Family<FlowLabels, Counter>,
    in_queue: Family<FlowLabels, Gauge>,
    executing: Family<FlowLabels, Gauge>,
    nominal_seats: Family<LevelLabels, Gauge>,
}

/// An admitted request: holds its seat (if its level is limited) until dropped.
pub struct Admission {
    _seat: Option<Seat>,
    executing: Gauge,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.executing.dec();
    }
}

/// The stored levels and schemas, by name, as the store holds them (with their
/// `resourceVersion`).
#[derive(Default)]
struct Stored {
    schemas: BTreeMap<String, Value>,
    levels: BTreeMap<String, Value>,
}

/// How many objects of each resource are stored, as last counted: what a LIST's seats are
/// estimated from ([`estimate`]).
pub trait ObjectCounts: Send + Sync {
    /// The count of `group`'s `resource`, if it was counted; asking may start a recount.
    fn count(&self, group: &str, resource: &str) -> Option<u64>;
}

/// API Priority and Fairness: the configuration in force, the levels' queues and the metrics.
pub struct Controller {
    stored: RwLock<Stored>,
    counts: std::sync::OnceLock<Arc<dyn ObjectCounts>>,
    config: RwLock<Arc<Config>>,
    server_concurrency: AtomicUsize,
    queue_wait: RwLock<Duration>,
    metrics: Metrics,
    changes: tokio::sync::watch::Sender<u64>,
}

impl Controller {
    /// A controller limiting the server to `server_concurrency` requests at once, with the
    /// bootstrap configuration until the stored one is read ([`Controller::start`]); its
    /// metrics registered in `registry`.
    pub fn new(
        server_concurrency: usize,
        registry: &mut prometheus_client::registry::Registry,
    ) -> Arc<Controller> {
        let metrics = Metrics::default();
        registry.register(
            "apiserver_flowcontrol_rejected_requests",
            "Number of requests rejected by API Priority and Fairness subsystem",
            metrics.rejected.clone(),
        );
        registry.register(
            "apiserver_flowcontrol_dispatched_requests",
            "Number of requests executed by API Priority and Fairness subsystem",
            metrics.dispatched.clone(),
        );
        registry.register(
            "apiserver_flowcontrol_current_inqueue_requests",
            "Number of requests currently pending in queues of the API Priority and Fairness subsystem",
            metrics.in_queue.clone(),
        );
        registry.register(
            "apiserver_flowcontrol_current_executing_requests",
            "Number of requests in initial (for a WATCH) or any (for a non-WATCH) execution stage in the API Priority and Fairness subsystem",
            metrics.executing.clone(),
        );
        registry.register(
            "apiserver_flowcontrol_nominal_limit_seats",
            "Nominal number of execution seats configured for each priority level",
            metrics.nominal_seats.clone(),
        );
        let mut stored = Stored::default();
        for object in bootstrap::mandatory_priority_levels()
            .into_iter()
            .chain(bootstrap::suggested_priority_levels())
        {
            stored.levels.insert(name_of(&object), object);
        }
        for object in bootstrap::mandatory_flow_schemas()
            .into_iter()
            .chain(bootstrap::suggested_flow_schemas())
        {
            stored.schemas.insert(name_of(&object), object);
        }
        let controller = Arc::new(Controller {
            stored: RwLock::new(stored),
            counts: std::sync::OnceLock::new(),
            config: RwLock::new(Arc::new(Config {
                schemas: Vec::new(),
                levels: HashMap::new(),
            })),
            server_concurrency: AtomicUsize::new(server_concurrency),
            queue_wait: RwLock::new(DEFAULT_QUEUE_WAIT),
            metrics,
            changes: tokio::sync::watch::channel(0).0,
        });
        controller.rebuild();
        controller
    }

    /// Sets the server's concurrency limit (upstream's `--max-requests-inflight` plus
    /// `--max-mutating-requests-inflight`) and how long a request may wait in a queue.
    pub fn set_limits(&self, server_concurrency: usize, queue_wait: Duration) {
        self.server_concurrency
            .store(server_concurrency, Ordering::Relaxed);
        *self.queue_wait.write() = queue_wait;
        self.rebuild();
    }

    /// Reads the stored levels and schemas (the configuration is the stored one when this
    /// returns), then follows their changes.
    pub async fn start(
        self: &Arc<Self>,
        store: Arc<dyn ferry_store::Store>,
    ) -> Result<(), ferry_store::StoreError> {
        crate::reflector::start(self, store).await
    }

    /// A receiver that sees a new value whenever the configuration changed.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The stored FlowSchema `name`, with its `resourceVersion`.
    pub fn stored_flow_schema(&self, name: &str) -> Option<Value> {
        self.stored.read().schemas.get(name).cloned()
    }

    /// The stored PriorityLevelConfiguration `name`, with its `resourceVersion`.
    pub fn stored_priority_level(&self, name: &str) -> Option<Value> {
        self.stored.read().levels.get(name).cloned()
    }

    /// The stored FlowSchemas whose `Dangling` condition is not what it should be, each with
    /// the condition set as it should (upstream's config controller writes them): `True`
    /// with reason `NotFound` when the level it names does not exist, else `False`, `Found`.
    pub fn dangling_updates(&self, now: &str) -> Vec<Value> {
        let stored = self.stored.read();
        let mut updates = Vec::new();
        for schema in stored.schemas.values() {
            if schema["metadata"]["resourceVersion"].is_null() {
                continue; // the in-memory bootstrap copy, not stored yet
            }
            let level = schema["spec"]["priorityLevelConfiguration"]["name"]
                .as_str()
                .unwrap_or_default();
            let (status, reason, message) = if stored.levels.contains_key(level) {
                ("False", "Found", format!("This FlowSchema references the PriorityLevelConfiguration object named {level:?} and it exists"))
            } else {
                ("True", "NotFound", format!("This FlowSchema references the PriorityLevelConfiguration object named {level:?} but there is no such object"))
            };
            let conditions = schema["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let current = conditions.iter().find(|c| c["type"] == "Dangling");
            if current.is_some_and(|c| {
                c["status"] == status && c["reason"] == reason && c["message"] == message
            }) {
                continue;
            }
            let mut updated = schema.clone();
            let mut kept: Vec<Value> = conditions
                .into_iter()
                .filter(|c| c["type"] != "Dangling")
                .collect();
            kept.push(
                json!({"type": "Dangling", "status": status, "lastTransitionTime": now,
                "reason": reason, "message": message}),
            );
            updated["status"] = json!({"conditions": kept});
            updates.push(updated);
        }
        updates
    }

    /// The schema, level and flow of a request by `user`: the first schema in matching order
    /// (`matchingPrecedence`, then name) that matches and whose level exists; `catch-all` if
    /// none does.
    pub fn classify(&self, user: &UserInfo, info: &RequestInfo) -> Classification {
        let config = self.config.read().clone();
        for schema in &config.schemas {
            let Some(level) = config.levels.get(&schema.level) else {
                continue; // dangling
            };
            if classify::matches(&schema.rules, user, info) {
                let distinguisher = classify::flow_distinguisher(schema.distinguisher, user, info);
                return Classification {
                    flow_schema: schema.name.clone(),
                    flow_schema_uid: schema.uid.clone(),
                    level: level.clone(),
                    flow_hash: queueset::flow_hash(&schema.name, &distinguisher),
                };
            }
        }
        let level = config
            .levels
            .get(bootstrap::CATCH_ALL)
            .cloned()
            .unwrap_or_else(|| catch_all_fallback(self.server_concurrency.load(Ordering::Relaxed)));
        Classification {
            flow_schema: bootstrap::CATCH_ALL.into(),
            flow_schema_uid: String::new(),
            level,
            flow_hash: queueset::flow_hash(bootstrap::CATCH_ALL, &user.name),
        }
    }

    /// Where LISTs' seats are estimated from; without it every request takes one seat. Set
    /// once.
    pub fn set_object_counts(&self, counts: Arc<dyn ObjectCounts>) {
        let _ = self.counts.set(counts);
    }

    /// The seats `info` (with its `query` string) takes at `classification`'s level
    /// ([`estimate::seats`]).
    pub fn seats(&self, classification: &Classification, info: &RequestInfo, query: &str) -> usize {
        if classification.level.is_exempt() || info.verb != "list" {
            return 1;
        }
        let stored = self
            .counts
            .get()
            .and_then(|counts| counts.count(&info.group, &info.resource));
        let maximum = estimate::maximum_seats(classification.level.nominal_seats);
        estimate::seats(info, query, stored, maximum)
    }

    /// Runs `classification`'s request, taking `seats`, now or after it waited its turn in a
    /// queue, or refuses it. Exempt levels admit at once.
    pub async fn admit(
        &self,
        classification: &Classification,
        seats: usize,
    ) -> Result<Admission, Rejected> {
        let labels = FlowLabels {
            flow_schema: classification.flow_schema.clone(),
            priority_level: classification.level.name.clone(),
        };
        let seat = match &classification.level.queues {
            None => None,
            Some(queues) => {
                let in_queue = self.metrics.in_queue.get_or_create(&labels).clone();
                let leaving = in_queue.clone();
                let wait = *self.queue_wait.read();
                let acquired = queues
                    .acquire_seats(
                        classification.flow_hash,
                        seats,
                        wait,
                        move || {
                            in_queue.inc();
                        },
                        move || {
                            leaving.dec();
                        },
                    )
                    .await;
                match acquired {
                    Ok(seat) => Some(seat),
                    Err(reason) => {
                        self.metrics
                            .rejected
                            .get_or_create(&RejectLabels {
                                flow_schema: labels.flow_schema,
                                priority_level: labels.priority_level,
                                reason: reason.reason().into(),
                            })
                            .inc();
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_secs())
                            .unwrap_or_default();
                        let retry_after = classification.level.drops.lock().record(now);
                        return Err(Rejected {
                            reason,
                            retry_after,
                        });
                    }
                }
            }
        };
        self.metrics.dispatched.get_or_create(&labels).inc();
        let executing = self.metrics.executing.get_or_create(&labels).clone();
        executing.inc();
        Ok(Admission {
            _seat: seat,
            executing,
        })
    }

    /// Upstream's `/debug/api_priority_and_fairness/dump_priority_levels`: one row per level.
    pub fn dump_priority_levels(&self) -> String {
        let config = self.config.read().clone();
        let mut levels: Vec<&Arc<Level>> = config.levels.values().collect();
        levels.sort_by(|a, b| a.name.cmp(&b.name));
        let mut rows = vec![[
            "PriorityLevelName",
            "ActiveQueues",
            "IsIdle",
            "IsQuiescing",
            "WaitingRequests",
            "ExecutingRequests",
            "DispatchedRequests",
            "RejectedRequests",
            "TimedoutRequests",
            "CancelledRequests",
        ]
        .map(String::from)];
        for level in levels {
            let cells = match &level.queues {
                None => {
                    let mut cells = [(); 10].map(|_| "<none>".to_string());
                    cells[0] = level.name.clone();
                    cells
                }
                Some(queues) => {
                    let c = queues.counts();
                    [
                        level.name.clone(),
                        c.active_queues.to_string(),
                        (c.waiting == 0 && c.executing == 0).to_string(),
                        "false".into(),
                        c.waiting.to_string(),
                        c.executing.to_string(),
                        c.dispatched.to_string(),
                        c.rejected.to_string(),
                        c.timed_out.to_string(),
                        c.cancelled.to_string(),
                    ]
                }
            };
            rows.push(cells);
        }
        let mut widths = [0usize; 10];
        for row in &rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.len() + 1);
            }
        }
        let mut out = String::new();
        for row in rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!(
                        "{:<width$} ",
                        format!("{cell},"),
                        width = widths[i]
                    ));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// Computes the configuration from the stored objects and the server's limit: each level's
    /// seats are `ceil(limit × shares / Σ shares)` (upstream's nominal concurrency limit; no
    /// lending or borrowing between levels). Queues are kept across changes.
    fn rebuild(&self) {
        let stored = self.stored.read();
        let mut level_objects: BTreeMap<String, Value> = stored.levels.clone();
        let mut schema_objects: BTreeMap<String, Value> = stored.schemas.clone();
        drop(stored);
        // The mandatory objects are in force even before they are stored (again).
        for object in bootstrap::mandatory_priority_levels() {
            level_objects.entry(name_of(&object)).or_insert(object);
        }
        for object in bootstrap::mandatory_flow_schemas() {
            schema_objects.entry(name_of(&object)).or_insert(object);
        }
        let server = self.server_concurrency.load(Ordering::Relaxed);
        let specs: Vec<(String, String, LevelSpec)> = level_objects
            .values()
            .map(|o| (name_of(o), uid_of(o), LevelSpec::of(&o["spec"])))
            .collect();
        let total_shares: u64 = specs.iter().map(|(_, _, s)| s.shares).sum();
        let previous = self.config.read().clone();
        let mut levels = HashMap::new();
        for (name, uid, spec) in specs {
            let nominal_seats = if total_shares == 0 {
                0
            } else {
                (server as u64 * spec.shares).div_ceil(total_shares) as usize
            };
            let old = previous.levels.get(&name);
            let queues = spec.queuing.map(|(queues, hand_size, queue_length_limit)| {
                let config = QueueSetConfig {
                    concurrency: nominal_seats,
                    queues,
                    hand_size,
                    queue_length_limit,
                };
                match old.and_then(|l| l.queues.clone()) {
                    Some(set) => {
                        set.reconfigure(config);
                        set
                    }
                    None => QueueSet::new(config),
                }
            });
            self.metrics
                .nominal_seats
                .get_or_create(&LevelLabels {
                    priority_level: name.clone(),
                })
                .set(nominal_seats as i64);
            let drops = old.map(|l| l.drops.clone()).unwrap_or_default();
            levels.insert(
                name.clone(),
                Arc::new(Level {
                    name,
                    uid,
                    queues,
                    nominal_seats,
                    drops,
                }),
            );
        }
        let mut schemas: Vec<(i64, Schema)> = schema_objects
            .values()
            .map(|o| {
                let spec = &o["spec"];
                (
                    spec["matchingPrecedence"].as_i64().unwrap_or(1000),
                    Schema {
                        name: name_of(o),
                        uid: uid_of(o),
                        level: spec["priorityLevelConfiguration"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        distinguisher: spec["distinguisherMethod"]["type"]
                            .as_str()
                            .and_then(Distinguisher::parse),
                        rules: serde_json::from_value(spec["rules"].clone()).unwrap_or_default(),
                    },
                )
            })
            .collect();
        schemas.sort_by(|(a, x), (b, y)| a.cmp(b).then_with(|| x.name.cmp(&y.name)));
        *self.config.write() = Arc::new(Config {
            schemas: schemas.into_iter().map(|(_, s)| s).collect(),
            levels,
        });
        self.changes.send_modify(|n| *n += 1);
    }
}

/// What of a level's spec decides its seats and queues.
struct LevelSpec {
    shares: u64,
    /// Queues, hand size and queue length limit; `None` for an exempt level; zero queues for a
    /// level that rejects.
    queuing: Option<(usize, usize, usize)>,
}

impl LevelSpec {
    fn of(spec: &Value) -> LevelSpec {
        let number = |v: &Value, default: u64| v.as_u64().unwrap_or(default);
        if spec["type"] == "Exempt" {
            return LevelSpec {
                shares: number(&spec["exempt"]["nominalConcurrencyShares"], 0),
                queuing: None,
            };
        }
        let limited = &spec["limited"];
        let queuing = &limited["limitResponse"]["queuing"];
        let queue = if limited["limitResponse"]["type"] == "Queue" {
            (
                number(&queuing["queues"], 64) as usize,
                number(&queuing["handSize"], 8) as usize,
                number(&queuing["queueLengthLimit"], 50) as usize,
            )
        } else {
            (0, 0, 0)
        };
        LevelSpec {
            shares: number(&limited["nominalConcurrencyShares"], 30),
            queuing: Some(queue),
        }
    }
}

/// A `catch-all` level for a configuration that lacks one (it is mandatory; this only covers
/// the moment before it is back).
fn catch_all_fallback(server_concurrency: usize) -> Arc<Level> {
    Arc::new(Level {
        name: bootstrap::CATCH_ALL.into(),
        uid: String::new(),
        queues: Some(QueueSet::new(QueueSetConfig {
            concurrency: server_concurrency.max(1),
            queues: 0,
            hand_size: 0,
            queue_length_limit: 0,
        })),
        nominal_seats: server_concurrency,
        drops: Arc::default(),
    })
}

fn name_of(object: &Value) -> String {
    object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn uid_of(object: &Value) -> String {
    object["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A stored object with its revision as `resourceVersion`.
fn decode(kv: &KeyValue) -> Option<Value> {
    let mut object: Value = serde_json::from_slice(&kv.value).ok()?;
    object["metadata"]["resourceVersion"] = json!(kv.mod_revision.to_string());
    Some(object)
}

impl crate::reflector::Reflected for Controller {
    fn prefixes(&self) -> &'static [&'static str] {
        PREFIXES
    }

    fn replace(&self, listed: Vec<(usize, KeyValue)>) {
        let mut stored = Stored::default();
        for (index, kv) in listed {
            if let Some(object) = decode(&kv) {
                let map = if index == 0 {
                    &mut stored.schemas
                } else {
                    &mut stored.levels
                };
                map.insert(name_of(&object), object);
            }
        }
        *self.stored.write() = stored;
        self.rebuild();
    }

    fn apply(&self, index: usize, events: &[Event]) {
        {
            let mut stored = self.stored.write();
            let map = if index == 0 {
                &mut stored.schemas
            } else {
                &mut stored.levels
            };
            for event in events {
                let name = String::from_utf8_lossy(&event.kv.key)
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                match event.kind {
                    EventKind::Put => {
                        if let Some(object) = decode(&event.kv) {
                            map.insert(name, object);
                        }
                    }
                    EventKind::Delete => {
                        map.remove(&name);
                    }
                }
            }
        }
        self.rebuild();
    }
}

#[cfg(test)]
mod tests;
