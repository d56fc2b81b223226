//! Table printers of the `node.k8s.io` group's kinds, as upstream's `printers.go` prints them.

use serde_json::Value;

use super::cells::*;
use super::{Column, TablePrinter};

/// The table of `runtimeclasses.node.k8s.io`.
pub struct RuntimeClass;

impl TablePrinter for RuntimeClass {
    fn columns(&self) -> Vec<Column> {
        vec![NAME, col("Handler", "string", ""), AGE]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        vec![name(o), st(o, &["handler"]).into(), age(o, now)]
    }
}
