//! Table printers of the `policy` group's kinds, as upstream's `printers.go` prints them.

use serde_json::Value;

use super::cells::*;
use super::{Column, TablePrinter};

/// The table of `poddisruptionbudgets.policy`.
pub struct PodDisruptionBudget;

impl TablePrinter for PodDisruptionBudget {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col(
                "Min Available",
                "string",
                "The minimum number of pods that must be available.",
            ),
            col(
                "Max Unavailable",
                "string",
                "The maximum number of pods that may be unavailable.",
            ),
            col(
                "Allowed Disruptions",
                "integer",
                "Calculated number of pods that may be disrupted at this time.",
            ),
            AGE,
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        let or_na = |v: &Value| {
            if v.is_null() {
                "N/A".to_string()
            } else {
                int_or_string(v)
            }
        };
        vec![
            name(o),
            or_na(at(o, &["spec", "minAvailable"])).into(),
            or_na(at(o, &["spec", "maxUnavailable"])).into(),
            int(o, &["status", "disruptionsAllowed"]).into(),
            age(o, now),
        ]
    }
}
