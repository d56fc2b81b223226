//! Structured merge and diff for server-side apply (work in progress).
