//! The store's errors. The API server maps them once, at its HTTP edge, to a Kubernetes `Status`.

use std::path::PathBuf;

use crate::kv::{LeaseId, Revision};

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The revision asked for was compacted away (the API server's 410 Gone, "too old resource
    /// version").
    #[error("required revision {requested} has been compacted (compacted revision {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The store's compacted revision: the oldest one still readable.
        compacted: Revision,
    },
    /// The revision asked for is newer than the store's current revision.
    #[error("required revision {requested} is a future revision (current revision {current})")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The store's current revision.
        current: Revision,
    },
    /// The lease does not exist (never granted, revoked or expired).
    #[error("requested lease {0} not found")]
    LeaseNotFound(LeaseId),
    /// The request itself is malformed (a key written twice in one transaction, …).
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    /// On-disk data is damaged somewhere other than a torn tail: the store refuses to start
    /// rather than lose data silently.
    #[error("corrupt store file {}: at offset {offset}: {reason}", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the first damaged record.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },
    /// A file given as a saved snapshot (`ferry snapshot save`) cannot be used: not a ferry
    /// snapshot, a format this version does not read, truncated, or damaged.
    #[error("{}: not a usable ferry snapshot: {reason}", path.display())]
    InvalidSnapshot {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An I/O error of the embedded backend. After a failed write the store refuses further
    /// writes: what is in memory can no longer be promised to be on disk.
    #[error("store I/O error: {context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The store was closed, or failed earlier and stopped serving.
    #[error("store is closed: {0}")]
    Closed(String),
    /// An error from the etcd backend that has no better variant (transport, server errors).
    #[error("etcd: {0}")]
    Etcd(String),
    /// A value could not be transformed on its way to or from the store (an API server's
    /// encryption at rest: a missing key, a damaged or tampered value).
    #[error("{0}")]
    Transform(String),
}

impl StoreError {
    /// An [`StoreError::Io`] with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StoreError::Io {
            context: context.into(),
            source,
        }
    }
}
