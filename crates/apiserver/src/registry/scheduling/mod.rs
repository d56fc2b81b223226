//! The scheduling group.

pub mod priorityclass;
