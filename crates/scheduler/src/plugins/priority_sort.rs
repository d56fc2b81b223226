//! PrioritySort: the activeQ order. Higher `spec.priority` first, then the pod that entered the
//! queue earlier.

use crate::framework::{Plugin, QueueSort};
use crate::queue::QueuedPodInfo;

/// The plugin's name.
pub const NAME: &str = "PrioritySort";

/// The PrioritySort plugin.
pub struct PrioritySort;

/// The pod's priority (0 when unset).
pub fn pod_priority(pod: &k8s_openapi::api::core::v1::Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// Whether `a` goes before `b`.
pub fn less(a: &QueuedPodInfo, b: &QueuedPodInfo) -> bool {
    let (pa, pb) = (pod_priority(&a.pod), pod_priority(&b.pod));
    pa > pb || (pa == pb && a.timestamp < b.timestamp)
}

impl Plugin for PrioritySort {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_queue_sort(&self) -> Option<&dyn QueueSort> {
        Some(self)
    }
}

impl QueueSort for PrioritySort {
    fn less(&self, a: &QueuedPodInfo, b: &QueuedPodInfo) -> bool {
        less(a, b)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::testing::make_pod;

    #[test]
    fn priority_then_time() {
        let now = tokio::time::Instant::now();
        let info = |p: i32, t: u64| {
            QueuedPodInfo::new(
                Arc::new(make_pod("p").priority(p).pod()),
                now + Duration::from_secs(t),
            )
        };
        let cases = [
            ((10, 5), (1, 0), true),
            ((1, 0), (10, 5), false),
            ((1, 0), (1, 5), true),
            ((1, 5), (1, 0), false),
        ];
        for ((pa, ta), (pb, tb), want) in cases {
            assert_eq!(
                PrioritySort.less(&info(pa, ta), &info(pb, tb)),
                want,
                "{pa}@{ta} vs {pb}@{tb}"
            );
        }
    }
}
