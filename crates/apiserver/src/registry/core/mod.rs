//! The core (legacy, `/api/v1`) group's kinds with rules of their own.

pub mod configmap;
pub mod ephemeral;
pub mod event;
pub mod limitrange;
pub mod namespace;
pub mod node;
pub mod persistentvolume;
pub mod persistentvolumeclaim;
pub mod pod;
pub mod replicationcontroller;
pub mod resourcequota;
pub mod secret;
pub mod service;
