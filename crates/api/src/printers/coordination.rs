//! Table printers of the `coordination.k8s.io` group's kinds, as upstream's `printers.go` prints them.

use serde_json::Value;

use super::cells::*;
use super::{Column, TablePrinter};

/// The table of `leases.coordination.k8s.io`.
pub struct Lease;

impl TablePrinter for Lease {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Holder", "string", "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field."),
            AGE,
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        vec![
            name(o),
            st(o, &["spec", "holderIdentity"]).into(),
            age(o, now),
        ]
    }
}
