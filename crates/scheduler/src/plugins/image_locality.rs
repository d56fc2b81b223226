//! ImageLocality: prefers nodes that already have the pod's images, weighted by how many nodes
//! have them (an image everywhere says little), between 23 MB and 1000 MB per container.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::cache::{normalized_image_name, NodeInfo, Snapshot};
use crate::framework::{ClusterEvent, CycleState, Plugin, PreScore, Score, Status, MAX_NODE_SCORE};

/// The plugin's name.
pub const NAME: &str = "ImageLocality";
const MB: i64 = 1024 * 1024;
const MIN_THRESHOLD: i64 = 23 * MB;
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;
const STATE_KEY: &str = "PreScoreImageLocality";

/// The ImageLocality plugin.
pub struct ImageLocality;

struct PreScoreState {
    images: Vec<String>,
    total_nodes: usize,
    image_nodes: Arc<std::collections::HashMap<String, usize>>,
}

fn pod_images(pod: &Pod) -> Vec<String> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .filter_map(|c| c.image.as_deref())
        .map(normalized_image_name)
        .collect()
}

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events(&self) -> Vec<ClusterEvent> {
        vec![ClusterEvent::NodeAdd, ClusterEvent::NodeImageChange]
    }
    fn as_pre_score(&self) -> Option<&dyn PreScore> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn Score> {
        Some(self)
    }
}

impl PreScore for ImageLocality {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        _nodes: &[Arc<NodeInfo>],
        snapshot: &Snapshot,
    ) -> Status {
        state.write(
            STATE_KEY,
            PreScoreState {
                images: pod_images(pod),
                total_nodes: snapshot.num_nodes(),
                image_nodes: snapshot.image_nodes.clone(),
            },
        );
        Status::success()
    }
}

impl Score for ImageLocality {
    fn score(&self, state: &CycleState, _pod: &Pod, node: &NodeInfo) -> (i64, Status) {
        let Some(s) = state.read::<PreScoreState>(STATE_KEY) else {
            return (0, Status::error("ImageLocality: no PreScore state"));
        };
        let total = s.total_nodes.max(1) as f64;
        let sum: i64 = s
            .images
            .iter()
            .filter_map(|image| {
                let size = *node.image_sizes.get(image)?;
                let spread = *s.image_nodes.get(image).unwrap_or(&1) as f64 / total;
                Some((size as f64 * spread) as i64)
            })
            .sum();
        let max_threshold = MAX_CONTAINER_THRESHOLD * s.images.len().max(1) as i64;
        let sum = sum.clamp(MIN_THRESHOLD, max_threshold);
        (
            MAX_NODE_SCORE * (sum - MIN_THRESHOLD) / (max_threshold - MIN_THRESHOLD),
            Status::success(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{make_node, make_pod};

    #[test]
    fn nodes_with_the_image_score_higher() {
        let snapshot = Snapshot::from_objects(
            vec![
                make_node("big").image("registry/app:1", 600 * MB).node(),
                make_node("small")
                    .image("registry/app:1", 600 * MB)
                    .image("registry/tiny:1", 10 * MB)
                    .node(),
                make_node("none").node(),
            ],
            vec![],
        );
        let pod = make_pod("p").image("registry/app:1").pod();
        let mut state = CycleState::new();
        ImageLocality.pre_score(&mut state, &pod, &snapshot.nodes, &snapshot);
        let scores: Vec<i64> = ["big", "small", "none"]
            .iter()
            .map(|n| {
                ImageLocality
                    .score(&state, &pod, snapshot.get(n).expect("node"))
                    .0
            })
            .collect();
        // 600 MB on 2 of 3 nodes: 400 MB scaled: (400-23)*100/(1000-23) = 38.
        assert_eq!(scores, [38, 38, 0]);
        assert_eq!(normalized_image_name("nginx"), "nginx:latest");
        assert_eq!(
            normalized_image_name("host:5000/nginx"),
            "host:5000/nginx:latest"
        );
        assert_eq!(
            normalized_image_name("nginx@sha256:abc"),
            "nginx@sha256:abc"
        );
    }

    /// Upstream's `TestImageLocalityPriority` cases (image_locality_test.go), with its current
    /// per-container threshold (1000 MB times the number of containers).
    #[test]
    fn upstream_cases() {
        let node_40_300_4000 = || {
            make_node("node1")
                .image("gcr.io/40:latest", 40 * MB)
                .image("gcr.io/300:latest", 300 * MB)
                .image("gcr.io/4000:latest", 4000 * MB)
                .node()
        };
        let node_250_10 = || {
            make_node("node2")
                .image("gcr.io/250:latest", 250 * MB)
                .image("gcr.io/10:latest", 10 * MB)
                .node()
        };
        let pod = |images: &[&str]| {
            let mut builder = make_pod("p").image(images[0]);
            for image in &images[1..] {
                builder = builder.container_image(image);
            }
            builder.pod()
        };
        let cases = [
            // 40 MB / 2 nodes is under the 23 MB floor; 250 MB / 2: 100 * (125 - 23) / (2000 - 23).
            (
                "two images spread on two nodes, prefer the larger image one",
                pod(&["gcr.io/40", "gcr.io/250"]),
                vec![node_40_300_4000(), node_250_10()],
                vec![0, 5],
            ),
            // (40 + 300) / 2 = 170 MB: 100 * (170 - 23) / (2000 - 23).
            (
                "two images on one node, prefer this node",
                pod(&["gcr.io/40", "gcr.io/300"]),
                vec![node_40_300_4000(), node_250_10()],
                vec![7, 0],
            ),
            // 4000 MB / 2 reaches the 2000 MB ceiling; 10 MB / 2 is under the floor.
            (
                "if exceed limit, use limit",
                pod(&["gcr.io/4000", "gcr.io/10"]),
                vec![node_40_300_4000(), node_250_10()],
                vec![100, 0],
            ),
            // 4000 MB / 3 nodes: 100 * (1333 - 23) / (2000 - 23).
            (
                "if exceed limit, use limit (with a node which has no images)",
                pod(&["gcr.io/4000", "gcr.io/10"]),
                vec![node_40_300_4000(), node_250_10(), make_node("node3").node()],
                vec![66, 0, 0],
            ),
        ];
        for (name, pod, nodes, want) in cases {
            let names: Vec<String> = nodes
                .iter()
                .map(|n| n.metadata.name.clone().unwrap_or_default())
                .collect();
            let snapshot = Snapshot::from_objects(nodes, vec![]);
            let mut state = CycleState::new();
            ImageLocality.pre_score(&mut state, &pod, &snapshot.nodes, &snapshot);
            let got: Vec<i64> = names
                .iter()
                .map(|n| {
                    ImageLocality
                        .score(&state, &pod, snapshot.get(n).expect("node"))
                        .0
                })
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }
}
