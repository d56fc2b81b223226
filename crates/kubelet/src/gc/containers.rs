//! Container garbage collection (upstream's `pkg/kubelet/kuberuntime/kuberuntime_gc.go`):
//! dead containers are grouped per pod and container name ("evict units", newest first);
//! deleted pods lose all of theirs; each unit keeps `--maximum-dead-containers-per-container`
//! (1: the previous instance, for `lastState` and `kubectl logs --previous`); and if more than
//! `--maximum-dead-containers` remain on the node, units are cut evenly and then the oldest go.
//! Sandboxes that are not ready and hold no container are removed, all of a deleted pod's and
//! all but the newest of a live pod's. [`plan`] decides (pure); [`listing`] and [`remove`] ask the
//! runtime.

use std::collections::{BTreeMap, HashSet};

use crate::podconfig::{CONTAINER_NAME_LABEL, POD_UID_LABEL};
use crate::runtime::{v1, Runtime, RuntimeError};

/// The container GC flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContainerGcPolicy {
    /// Dead containers younger than this (ns) are kept (`--minimum-container-ttl-duration`, 0).
    pub min_age_nanos: i64,
    /// `--maximum-dead-containers-per-container` (1); negative: no limit.
    pub max_per_pod_container: i64,
    /// `--maximum-dead-containers` (-1: no limit).
    pub max_containers: i64,
}

impl Default for ContainerGcPolicy {
    fn default() -> Self {
        ContainerGcPolicy {
            min_age_nanos: 0,
            max_per_pod_container: 1,
            max_containers: -1,
        }
    }
}

/// A container as the collector sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcContainer {
    /// Its id.
    pub id: String,
    /// Its pod's uid.
    pub pod_uid: String,
    /// Its name in the pod.
    pub name: String,
    /// Its sandbox.
    pub sandbox_id: String,
    /// Running (never collected).
    pub running: bool,
    /// Creation, ns.
    pub created_at: i64,
}

/// A sandbox as the collector sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcSandbox {
    /// Its id.
    pub id: String,
    /// Its pod's uid.
    pub pod_uid: String,
    /// Ready (never collected).
    pub ready: bool,
    /// Creation, ns.
    pub created_at: i64,
}

/// What to remove.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Containers, in the order to remove them.
    pub containers: Vec<String>,
    /// Sandboxes.
    pub sandboxes: Vec<String>,
}

/// Keeps the newest `keep` of a unit sorted newest first; the rest go to `removed`.
fn keep_newest(unit: &mut Vec<GcContainer>, keep: usize, removed: &mut Vec<String>) {
    if unit.len() > keep {
        removed.extend(unit.drain(keep..).rev().map(|c| c.id));
    }
}

/// Upstream's `evictContainers` and `evictSandboxes`. `pod_exists` tells which pods still
/// exist (`None`: not known yet, so nothing is removed for being a deleted pod's);
/// `all_unused` removes every dead container of live pods too (the eviction manager's
/// `DeleteAllUnusedContainers`).
pub fn plan(
    containers: &[GcContainer],
    sandboxes: &[GcSandbox],
    pod_exists: Option<&HashSet<String>>,
    policy: &ContainerGcPolicy,
    all_unused: bool,
    now_nanos: i64,
) -> Plan {
    let deleted = |uid: &str| pod_exists.is_some_and(|live| !live.contains(uid));
    let mut removed = vec![];
    let mut units: BTreeMap<(String, String), Vec<GcContainer>> = BTreeMap::new();
    for c in containers {
        if c.running || now_nanos.saturating_sub(c.created_at) < policy.min_age_nanos {
            continue;
        }
        units
            .entry((c.pod_uid.clone(), c.name.clone()))
            .or_default()
            .push(c.clone());
    }
    for unit in units.values_mut() {
        unit.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    }
    units.retain(|(uid, _), unit| {
        if deleted(uid) || (all_unused && pod_exists.is_some()) {
            keep_newest(unit, 0, &mut removed);
            false
        } else {
            true
        }
    });
    if policy.max_per_pod_container >= 0 {
        for unit in units.values_mut() {
            keep_newest(unit, policy.max_per_pod_container as usize, &mut removed);
        }
    }
    let count = |units: &BTreeMap<(String, String), Vec<GcContainer>>| {
        units.values().map(Vec::len).sum::<usize>()
    };
    if policy.max_containers >= 0 && count(&units) > policy.max_containers as usize {
        let per_unit = (policy.max_containers as usize / units.len().max(1)).max(1);
        for unit in units.values_mut() {
            keep_newest(unit, per_unit, &mut removed);
        }
        let left = count(&units);
        if left > policy.max_containers as usize {
            let mut flattened: Vec<GcContainer> = units.into_values().flatten().collect();
            flattened.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
            keep_newest(&mut flattened, policy.max_containers as usize, &mut removed);
        }
    }

    // Sandboxes: a ready one, or one still holding a container, is active.
    let removed_set: HashSet<&str> = removed.iter().map(String::as_str).collect();
    let holding: HashSet<&str> = containers
        .iter()
        .filter(|c| !removed_set.contains(c.id.as_str()))
        .map(|c| c.sandbox_id.as_str())
        .collect();
    let mut by_pod: BTreeMap<&str, Vec<&GcSandbox>> = BTreeMap::new();
    for s in sandboxes {
        by_pod.entry(s.pod_uid.as_str()).or_default().push(s);
    }
    let mut removed_sandboxes = vec![];
    for (uid, mut list) in by_pod {
        list.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        let keep = if deleted(uid) { 0 } else { 1 };
        removed_sandboxes.extend(
            list.iter()
                .skip(keep)
                .filter(|s| !s.ready && !holding.contains(s.id.as_str()))
                .rev()
                .map(|s| s.id.clone()),
        );
    }
    Plan {
        containers: removed,
        sandboxes: removed_sandboxes,
    }
}

/// The runtime's containers and sandboxes of pods (those with a pod uid label).
pub async fn listing(
    runtime: &dyn Runtime,
) -> Result<(Vec<GcContainer>, Vec<GcSandbox>), RuntimeError> {
    let running = i32::from(v1::ContainerState::ContainerRunning);
    let ready = i32::from(v1::PodSandboxState::SandboxReady);
    let containers = runtime
        .list_containers(None)
        .await?
        .into_iter()
        .filter_map(|c| {
            let pod_uid = c.labels.get(POD_UID_LABEL)?.clone();
            let name = c
                .labels
                .get(CONTAINER_NAME_LABEL)
                .cloned()
                .or_else(|| c.metadata.as_ref().map(|m| m.name.clone()))?;
            Some(GcContainer {
                id: c.id,
                pod_uid,
                name,
                sandbox_id: c.pod_sandbox_id,
                running: c.state == running,
                created_at: c.created_at,
            })
        })
        .collect();
    let sandboxes = runtime
        .list_pod_sandboxes(None)
        .await?
        .into_iter()
        .filter_map(|s| {
            Some(GcSandbox {
                pod_uid: s.labels.get(POD_UID_LABEL)?.clone(),
                ready: s.state == ready,
                created_at: s.created_at,
                id: s.id,
            })
        })
        .collect();
    Ok((containers, sandboxes))
}

/// Carries out a plan; failures are logged and the rest goes on. Returns what was removed.
pub async fn remove(runtime: &dyn Runtime, plan: &Plan) -> usize {
    let mut removed = 0;
    for id in &plan.containers {
        crate::logs::clean(runtime, id).await;
        match runtime.remove_container(id).await {
            Ok(()) | Err(RuntimeError::NotFound(_)) => removed += 1,
            Err(e) => tracing::warn!(container = %id, error = %e, "container GC: removing"),
        }
    }
    for id in &plan.sandboxes {
        match runtime.remove_pod_sandbox(id).await {
            Ok(()) | Err(RuntimeError::NotFound(_)) => removed += 1,
            Err(e) => tracing::warn!(sandbox = %id, error = %e, "container GC: removing a sandbox"),
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead(id: &str, uid: &str, name: &str, created_at: i64) -> GcContainer {
        GcContainer {
            id: id.into(),
            pod_uid: uid.into(),
            name: name.into(),
            sandbox_id: format!("s-{uid}"),
            running: false,
            created_at,
        }
    }

    fn running(id: &str, uid: &str, name: &str, created_at: i64) -> GcContainer {
        GcContainer {
            running: true,
            ..dead(id, uid, name, created_at)
        }
    }

    fn live(uids: &[&str]) -> HashSet<String> {
        uids.iter().map(|s| s.to_string()).collect()
    }

    /// Upstream's `TestContainerGC` cases, by name.
    #[test]
    fn container_gc_as_upstream() {
        let default = ContainerGcPolicy::default();
        let cases: Vec<(&str, Vec<GcContainer>, ContainerGcPolicy, Vec<&str>)> = vec![
            (
                "one dead container per unit is kept",
                vec![dead("a1", "p", "app", 1), dead("a2", "p", "app", 2)],
                default,
                vec!["a1"],
            ),
            (
                "running containers are never removed",
                vec![running("a1", "p", "app", 1), running("a2", "p", "app", 2)],
                default,
                vec![],
            ),
            (
                "no per-unit limit",
                vec![dead("a1", "p", "app", 1), dead("a2", "p", "app", 2)],
                ContainerGcPolicy {
                    max_per_pod_container: -1,
                    ..default
                },
                vec![],
            ),
            (
                "the oldest go first",
                vec![
                    dead("a1", "p", "app", 1),
                    dead("a3", "p", "app", 3),
                    dead("a2", "p", "app", 2),
                ],
                ContainerGcPolicy {
                    max_per_pod_container: 1,
                    ..default
                },
                vec!["a1", "a2"],
            ),
            (
                "max containers cuts units evenly, keeping one each",
                vec![
                    dead("a1", "p", "app", 1),
                    dead("a2", "p", "app", 2),
                    dead("b1", "p", "side", 3),
                    dead("b2", "p", "side", 4),
                ],
                ContainerGcPolicy {
                    max_per_pod_container: -1,
                    max_containers: 2,
                    ..default
                },
                vec!["a1", "b1"],
            ),
            (
                "then the oldest overall",
                vec![
                    dead("a1", "p", "app", 1),
                    dead("b1", "p", "side", 3),
                    dead("c1", "q", "app", 5),
                ],
                ContainerGcPolicy {
                    max_per_pod_container: -1,
                    max_containers: 1,
                    ..default
                },
                vec!["a1", "b1"],
            ),
            (
                "young dead containers are kept",
                vec![dead("a1", "p", "app", 1), dead("a2", "p", "app", 99)],
                ContainerGcPolicy {
                    min_age_nanos: 10,
                    max_per_pod_container: 0,
                    ..default
                },
                vec!["a1"],
            ),
            (
                "a deleted pod's dead containers all go",
                vec![dead("x1", "gone", "app", 1), dead("x2", "gone", "app", 2)],
                default,
                vec!["x1", "x2"],
            ),
        ];
        for (name, containers, policy, want) in cases {
            let mut got = plan(
                &containers,
                &[],
                Some(&live(&["p", "q"])),
                &policy,
                false,
                100,
            )
            .containers;
            got.sort();
            assert_eq!(got, want, "{name}");
        }
        // Unknown pods: nothing is removed for being a deleted pod's.
        let containers = [dead("x1", "gone", "app", 1)];
        assert!(plan(&containers, &[], None, &default, false, 100)
            .containers
            .is_empty());
        // All unused (eviction reclaim): even the last dead instance of a live pod.
        let containers = [dead("a1", "p", "app", 1)];
        assert_eq!(
            plan(&containers, &[], Some(&live(&["p"])), &default, true, 100).containers,
            ["a1"]
        );
    }

    /// Upstream's `TestSandboxGC`.
    #[test]
    fn sandbox_gc_as_upstream() {
        let sandbox = |id: &str, uid: &str, ready: bool, created_at: i64| GcSandbox {
            id: id.into(),
            pod_uid: uid.into(),
            ready,
            created_at,
        };
        let sandboxes = vec![
            sandbox("s-old", "p", false, 1),
            sandbox("s-new", "p", false, 2),
            sandbox("s-ready", "q", true, 1),
            sandbox("s-gone-1", "gone", false, 1),
            sandbox("s-gone-2", "gone", false, 2),
            sandbox("s-holding", "r", false, 1),
            sandbox("s-holding-newer", "r", false, 2),
        ];
        // A running container holds its (not ready) sandbox.
        let containers = [GcContainer {
            sandbox_id: "s-holding".into(),
            ..running("c", "r", "app", 1)
        }];
        let mut got = plan(
            &containers,
            &sandboxes,
            Some(&live(&["p", "q", "r"])),
            &ContainerGcPolicy::default(),
            false,
            100,
        )
        .sandboxes;
        got.sort();
        assert_eq!(got, ["s-gone-1", "s-gone-2", "s-old"]);
    }
}
