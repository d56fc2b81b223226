//! `ferry-scheduler`: kube-scheduler for ferry (being written).
