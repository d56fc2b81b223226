//! The manager on fake observations, as upstream's `eviction_manager_test.go`.

use serde_json::json;

use super::*;
use crate::machine::ThresholdValue;
use crate::stats::summary::*;
use crate::stats::{StaticSummary, Summary};

const MI: u64 = 1 << 20;

#[derive(Default)]
struct FakePods(Mutex<Vec<Pod>>);

#[async_trait]
impl ActivePods for FakePods {
    async fn active_pods(&self) -> Vec<Pod> {
        self.0.lock().clone()
    }
}

#[derive(Default)]
struct RecordingKiller(Mutex<Vec<(String, PodEviction)>>);

#[async_trait]
impl PodKiller for RecordingKiller {
    async fn evict(&self, pod: &Pod, eviction: PodEviction) -> bool {
        self.0
            .lock()
            .push((pod.metadata.name.clone().unwrap_or_default(), eviction));
        true
    }
}

/// Frees `bytes` of the nodefs when called.
struct FakeReclaimer {
    summary: Arc<StaticSummary>,
    bytes: u64,
    calls: Mutex<Vec<Signal>>,
}

#[async_trait]
impl NodeReclaimer for FakeReclaimer {
    async fn reclaim(&self, signal: Signal) {
        self.calls.lock().push(signal);
        let mut s = self.summary.0.lock();
        if let Some(fs) = s.node.fs.as_mut() {
            fs.available_bytes = fs.available_bytes.map(|a| a + self.bytes);
        }
    }
}

fn pod(name: &str, priority: i32, memory_request: Option<&str>) -> Pod {
    let resources = match memory_request {
        Some(r) => json!({"requests": {"memory": r}}),
        None => json!({}),
    };
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "uid": name},
        "spec": {"priority": priority, "terminationGracePeriodSeconds": 30,
            "containers": [{"name": "app", "resources": resources}]}
    }))
    .expect("pod")
}

fn pod_stats(name: &str, working_set: u64, disk: u64) -> PodStats {
    PodStats {
        pod_ref: PodReference {
            name: name.into(),
            namespace: "default".into(),
            uid: name.into(),
        },
        containers: vec![ContainerStats {
            name: "app".into(),
            memory: Some(MemoryStats {
                working_set_bytes: Some(working_set),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ephemeral_storage: Some(FsStats {
            used_bytes: Some(disk),
            inodes_used: Some(1),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A node with `memory_available` of 2Gi and `disk_available` of 100Gi.
fn summary(memory_available: u64, disk_available: u64, pods: Vec<PodStats>) -> Summary {
    Summary {
        node: NodeStats {
            node_name: "n1".into(),
            memory: Some(MemoryStats {
                available_bytes: Some(memory_available),
                working_set_bytes: Some((2048 * MI).saturating_sub(memory_available)),
                ..Default::default()
            }),
            fs: Some(FsStats {
                available_bytes: Some(disk_available),
                capacity_bytes: Some(100 << 30),
                inodes_free: Some(1_000_000),
                inodes: Some(1_000_000),
                ..Default::default()
            }),
            ..Default::default()
        },
        pods,
    }
}

struct Harness {
    manager: EvictionManager,
    summary: Arc<StaticSummary>,
    killer: Arc<RecordingKiller>,
    state: Arc<EvictionState>,
    events: tokio::sync::mpsc::Receiver<ferry_client::events::Record>,
}

fn harness(thresholds: Vec<Threshold>, pods: Vec<Pod>, reclaim: Option<u64>) -> Harness {
    let summary = Arc::new(StaticSummary::default());
    let killer = Arc::new(RecordingKiller::default());
    let state = Arc::new(EvictionState::default());
    let (recorder, events) = Recorder::for_tests();
    let reclaimer = reclaim.map(|bytes| {
        Arc::new(FakeReclaimer {
            summary: summary.clone(),
            bytes,
            calls: Mutex::new(vec![]),
        }) as Arc<dyn NodeReclaimer>
    });
    let manager = EvictionManager::new(
        EvictionConfig {
            thresholds,
            max_pod_grace_period: Duration::from_secs(60),
            ..EvictionConfig::default()
        },
        "n1",
        summary.clone(),
        Arc::new(FakePods(Mutex::new(pods))),
        killer.clone(),
        reclaimer,
        recorder,
        state.clone(),
    );
    Harness {
        manager,
        summary,
        killer,
        state,
        events,
    }
}

fn stats_pods() -> Vec<PodStats> {
    vec![
        pod_stats("guaranteed-low-use", 50 * MI, 0),
        pod_stats("best-effort-high-use", 400 * MI, 0),
        pod_stats("burstable-over", 300 * MI, 0),
    ]
}

fn pods() -> Vec<Pod> {
    vec![
        pod("guaranteed-low-use", 0, Some("100Mi")),
        pod("best-effort-high-use", 0, None),
        pod("burstable-over", 0, Some("100Mi")),
    ]
}

/// Upstream's `TestMemoryPressure`: a hard memory threshold met evicts the worst pod at once
/// with the minimum grace period, reports MemoryPressure, refuses BestEffort pods and admits
/// Burstable ones, and keeps the condition for the transition period after recovery.
#[tokio::test]
async fn memory_pressure() {
    let hard = Threshold::hard(Signal::MemoryAvailable, ThresholdValue::Quantity(1024 * MI));
    let soft = Threshold {
        value: ThresholdValue::Quantity(2000 * MI),
        grace_period: Duration::from_secs(120),
        ..hard
    };
    let mut h = harness(vec![hard, soft], pods(), None);
    let t0 = Instant::now();

    // Plenty of memory: nothing happens.
    *h.summary.0.lock() = summary(2048 * MI, 50 << 30, stats_pods());
    assert!(h.manager.synchronize(t0).await.is_empty());
    assert!(h.state.conditions().is_empty());
    assert_eq!(h.state.admit(&pod("new", 0, None)), Admission::Admit);

    // Under the soft threshold only: the condition, no eviction until its grace period ends.
    *h.summary.0.lock() = summary(1500 * MI, 50 << 30, stats_pods());
    assert!(h
        .manager
        .synchronize(t0 + Duration::from_secs(10))
        .await
        .is_empty());
    assert!(h.state.pressure().memory);
    let evicted = h.manager.synchronize(t0 + Duration::from_secs(131)).await;
    assert_eq!(evicted.len(), 1);
    {
        let kills = h.killer.0.lock();
        assert_eq!(kills[0].0, "best-effort-high-use");
        assert_eq!(
            kills[0].1.grace_period,
            Duration::from_secs(30),
            "soft: the pod's own"
        );
    }

    // Under the hard threshold: evicted at once with the minimum grace period.
    *h.summary.0.lock() = summary(500 * MI, 50 << 30, stats_pods());
    let evicted = h.manager.synchronize(t0 + Duration::from_secs(140)).await;
    assert_eq!(evicted.len(), 1);
    let (name, eviction) = h.killer.0.lock().last().cloned().expect("evicted");
    assert_eq!(name, "best-effort-high-use");
    assert_eq!(eviction.grace_period, IMMEDIATE_GRACE_PERIOD);
    assert_eq!(
        eviction.message,
        "The node was low on resource: memory. Threshold quantity: 1Gi, available: 500Mi. \
         Container app was using 400Mi, request is 0, has larger consumption of memory. "
    );
    assert_eq!(
        h.state.admit(&pod("new", 0, None)),
        Admission::Reject {
            reason: "Evicted".into(),
            message: "The node had condition: [MemoryPressure]. ".into()
        }
    );
    assert_eq!(
        h.state.admit(&pod("new", 0, Some("10Mi"))),
        Admission::Admit
    );
    let mut reasons = vec![];
    while let Ok(e) = h.events.try_recv() {
        reasons.push(e.reason);
    }
    assert!(reasons.contains(&"EvictionThresholdMet".to_string()));
    assert!(reasons.contains(&"Evicted".to_string()));

    // Recovered: no eviction, the condition stays for the transition period (5 min).
    *h.summary.0.lock() = summary(2048 * MI, 50 << 30, stats_pods());
    let kills = h.killer.0.lock().len();
    assert!(h
        .manager
        .synchronize(t0 + Duration::from_secs(200))
        .await
        .is_empty());
    assert!(h.state.pressure().memory);
    assert_eq!(h.killer.0.lock().len(), kills);
    h.manager
        .synchronize(t0 + Duration::from_secs(140 + 301))
        .await;
    assert!(!h.state.pressure().memory);
}

/// Upstream's `TestDiskPressureNodeFs` and `TestNodeReclaimFuncs`: node-level reclaim first;
/// when it frees enough, no pod is evicted; otherwise the pod using the most disk goes.
#[tokio::test]
async fn disk_pressure_reclaims_before_evicting() {
    let hard = Threshold::hard(Signal::NodeFsAvailable, ThresholdValue::Quantity(2 << 30));
    let disk_pods = vec![
        pod_stats("guaranteed-low-use", 0, 1 << 20),
        pod_stats("best-effort-high-use", 0, 5 << 30),
        pod_stats("burstable-over", 0, 1 << 30),
    ];
    // Reclaim frees 2Gi: from 1Gi available to 3Gi, enough.
    let mut h = harness(vec![hard], pods(), Some(2 << 30));
    *h.summary.0.lock() = summary(2048 * MI, 1 << 30, disk_pods.clone());
    assert!(h.manager.synchronize(Instant::now()).await.is_empty());
    assert!(h.state.pressure().disk, "the condition is reported anyway");
    assert!(h.killer.0.lock().is_empty());

    // Reclaim frees too little: the biggest user is evicted.
    let mut h = harness(vec![hard], pods(), Some(1 << 20));
    *h.summary.0.lock() = summary(2048 * MI, 1 << 30, disk_pods);
    let evicted = h.manager.synchronize(Instant::now()).await;
    assert_eq!(evicted.len(), 1);
    let (name, eviction) = h.killer.0.lock()[0].clone();
    assert_eq!(name, "best-effort-high-use");
    assert!(eviction.message.starts_with(
        "The node was low on resource: ephemeral-storage. Threshold quantity: 2Gi, available: "
    ));
    assert_eq!(
        h.state.admit(&pod("new", 0, Some("10Mi"))),
        Admission::Reject {
            reason: "Evicted".into(),
            message: "The node had condition: [DiskPressure]. ".into()
        }
    );
}

/// Critical pods are never evicted (upstream's `TestCriticalPodsAreNotEvicted`).
#[tokio::test]
async fn critical_pods_are_not_evicted() {
    let hard = Threshold::hard(Signal::MemoryAvailable, ThresholdValue::Quantity(1024 * MI));
    let critical = pod("critical", rank::SYSTEM_CRITICAL_PRIORITY, None);
    let mut h = harness(vec![hard], vec![critical], None);
    *h.summary.0.lock() = summary(100 * MI, 50 << 30, vec![pod_stats("critical", 900 * MI, 0)]);
    assert!(h.manager.synchronize(Instant::now()).await.is_empty());
    assert!(h.killer.0.lock().is_empty());
    assert!(h.state.pressure().memory);
}

#[test]
fn an_evicted_pods_status() {
    let mut status = PodStatus {
        phase: Some("Running".into()),
        ..Default::default()
    };
    let eviction = PodEviction {
        grace_period: IMMEDIATE_GRACE_PERIOD,
        message: "The node was low on resource: memory. ".into(),
    };
    eviction.apply(&mut status, jiff::Timestamp::UNIX_EPOCH);
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    assert_eq!(status.reason.as_deref(), Some("Evicted"));
    let condition = &status.conditions.as_ref().expect("conditions")[0];
    assert_eq!(condition.type_, "DisruptionTarget");
    assert_eq!(condition.reason.as_deref(), Some("TerminationByKubelet"));
    assert!(is_active(&pod("p", 0, None)));
}

/// Upstream's `TestLocalStorageLimitEviction` in short: with no threshold met, a pod whose
/// emptyDir is over its `sizeLimit` is evicted at once with upstream's message; a critical
/// one is not.
#[tokio::test]
async fn pods_over_local_storage_limits_are_evicted_without_pressure() {
    let over = |name: &str, priority: i32| -> (Pod, PodStats) {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": name},
            "spec": {"priority": priority, "containers": [{"name": "app"}],
                "volumes": [{"name": "cache", "emptyDir": {"sizeLimit": "1Mi"}}]}}))
        .expect("pod");
        let mut stats = pod_stats(name, MI, 2 * MI);
        stats.volume = vec![VolumeStats {
            fs: FsStats {
                used_bytes: Some(2 * MI),
                ..Default::default()
            },
            name: "cache".into(),
        }];
        (pod, stats)
    };
    let (filler, filler_stats) = over("filler", 0);
    let (critical, critical_stats) = over("critical", rank::SYSTEM_CRITICAL_PRIORITY);
    let mut h = harness(vec![], vec![filler, critical, pod("quiet", 0, None)], None);
    *h.summary.0.lock() = summary(
        2048 * MI,
        50 << 30,
        vec![filler_stats, critical_stats, pod_stats("quiet", MI, 0)],
    );
    let evicted = h.manager.synchronize(Instant::now()).await;
    let names: Vec<&str> = evicted
        .iter()
        .filter_map(|p| p.metadata.name.as_deref())
        .collect();
    assert_eq!(names, ["filler"]);
    let killed = h.killer.0.lock().clone();
    assert_eq!(
        killed,
        [(
            "filler".to_string(),
            PodEviction {
                grace_period: Duration::ZERO,
                message: "Usage of EmptyDir volume \"cache\" exceeds the limit \"1Mi\". ".into(),
            }
        )]
    );
    assert!(h.state.conditions().is_empty());
    let event = h.events.try_recv().expect("event");
    assert_eq!(event.reason, "Evicted");
}
