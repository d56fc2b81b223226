//! Table printers of the `scheduling.k8s.io` group's kinds, as upstream's `printers.go` prints them.

use serde_json::Value;

use super::cells::*;
use super::{Column, TablePrinter};

/// The table of `priorityclasses.scheduling.k8s.io`.
pub struct PriorityClass;

impl TablePrinter for PriorityClass {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Value", "integer", "value represents the integer value of this priority class. This is the actual priority that pods receive when they have the name of this class in their pod spec."),
            col("Global-Default", "boolean", "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class. Only one PriorityClass can be marked as `globalDefault`. However, if more than one PriorityClasses exists with their `globalDefault` field set to true, the smallest value of such global default PriorityClasses will be used as the default priority."),
            AGE,
            col("PreemptionPolicy", "string", "preemptionPolicy is the Policy for preempting pods with lower priority. One of Never, PreemptLowerPriority. Defaults to PreemptLowerPriority if unset."),
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        vec![
            name(o),
            int(o, &["value"]).into(),
            at(o, &["globalDefault"]).as_bool().unwrap_or(false).into(),
            age(o, now),
            at(o, &["preemptionPolicy"])
                .as_str()
                .unwrap_or("PreemptLowerPriority")
                .into(),
        ]
    }
}
