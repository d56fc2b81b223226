//! The autoscaling group: HorizontalPodAutoscalers, stored once in the `autoscaling/v2` shape
//! and served as v2 and v1 (`horizontalpodautoscaler.rs`).

pub mod horizontalpodautoscaler;
