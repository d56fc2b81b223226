//! ferry's store: the key-value store with etcd v3's semantics that the API server keeps every
//! object in (`/registry/pods/<namespace>/<name>` and so on).
//!
//! Kubernetes relies on a handful of etcd properties: one cluster-wide revision that becomes
//! `metadata.resourceVersion`; reads at a revision (consistent paginated lists); transactions
//! with compare-and-swap on `mod_revision` (409 Conflict); watches from any revision not yet
//! compacted (410 Gone after compaction); and leases that delete keys when they expire (Event
//! objects' TTL). [`Store`] is that contract, with two backends:
//!
//! - `embedded::EmbeddedStore`, the default of `ferry server`: an in-memory MVCC index (as
//!   etcd keeps its key index in memory) made durable by a write-ahead log with group commit and
//!   periodic snapshots. Start reading at `embedded/mod.rs`.
//! - `etcd::EtcdStore`, the same trait over a real etcd through `etcd-client`.
//!
//! Start with [`kv`] (the interfaces). The conformance suite in `tests/` runs against both.

pub mod embedded;
pub mod error;
pub mod etcd;
pub mod kv;

pub use error::StoreError;
pub use kv::*;
