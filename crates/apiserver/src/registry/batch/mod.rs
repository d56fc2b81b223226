//! The batch group: Jobs and CronJobs, and the Job spec validation they share.

pub mod cronjob;
pub mod job;
pub mod validation;
