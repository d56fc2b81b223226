//! Table printers of the `events.k8s.io` group's kinds, as upstream's `printers.go` prints them.

use serde_json::Value;

use super::{Column, TablePrinter};

/// The table of `events.events.k8s.io`.
pub struct EventsV1;

impl TablePrinter for EventsV1 {
    fn columns(&self) -> Vec<Column> {
        super::core::event_columns()
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        super::core::event_row(o, now, true)
    }
}
