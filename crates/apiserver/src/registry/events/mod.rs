//! The events.k8s.io group: Events stored with core/v1's.

pub mod event;
