//! Table printers of the `autoscaling` group's kinds, as upstream's `printers.go` prints them.

use serde_json::Value;

use super::cells::*;
use super::{Column, TablePrinter};

/// The table of `horizontalpodautoscalers.autoscaling`.
pub struct HorizontalPodAutoscaler;

impl TablePrinter for HorizontalPodAutoscaler {
    fn columns(&self) -> Vec<Column> {
        vec![
            NAME,
            col("Reference", "string", "scaleTargetRef points to the target resource to scale, and is used to the pods for which metrics should be collected, as well as to actually change the replica count."),
            col("Targets", "string", "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used).  The desired replica count is calculated multiplying the ratio between the target value and the current value by the current number of pods.  Ergo, metrics used must decrease as the pod count is increased, and vice-versa.  See the individual metric source types for more information about how each type of metric must respond."),
            col("MinPods", "string", "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down. It defaults to 1 pod.  minReplicas is allowed to be 0 if the alpha feature gate HPAScaleToZero is enabled and at least one Object or External metric is configured.  Scaling is active as long as at least one metric value is available."),
            col("MaxPods", "string", "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up. It cannot be less that minReplicas."),
            col("Replicas", "string", "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler."),
            AGE,
        ]
    }

    fn row(&self, o: &Value, now: i128) -> Vec<Value> {
        hpa_row(o, now)
    }
}

pub(super) fn hpa_row(o: &Value, now: i128) -> Vec<Value> {
    let spec = at(o, &["spec"]);
    let status = at(o, &["status"]);
    let reference = format!(
        "{}/{}",
        st(spec, &["scaleTargetRef", "kind"]),
        st(spec, &["scaleTargetRef", "name"])
    );
    let metrics = if spec.get("targetCPUUtilizationPercentage").is_some()
        || (spec.get("metrics").is_none()
            && status.get("currentCPUUtilizationPercentage").is_some())
    {
        // autoscaling/v1: a single cpu utilization target.
        match opt_int(spec, &["targetCPUUtilizationPercentage"]) {
            None => "<none>".to_string(),
            Some(target) => {
                let current = match opt_int(status, &["currentCPUUtilizationPercentage"]) {
                    Some(c) => format!("{c}%"),
                    None => "<unknown>".to_string(),
                };
                format!("cpu: {current}/{target}%")
            }
        }
    } else {
        format_hpa_metrics(arr(spec, &["metrics"]), arr(status, &["currentMetrics"]))
    };
    // minReplicas is defaulted to 1 upstream.
    let min = opt_int(spec, &["minReplicas"]).unwrap_or(1).to_string();
    vec![
        name(o),
        reference.into(),
        metrics.into(),
        min.into(),
        int(spec, &["maxReplicas"]).into(),
        int(status, &["currentReplicas"]).into(),
        age(o, now),
    ]
}

pub(super) fn format_hpa_metrics(specs: &[Value], statuses: &[Value]) -> String {
    if specs.is_empty() {
        return "<none>".to_string();
    }
    let q = |v: &Value| {
        if v.is_null() {
            "<nil>".to_string()
        } else {
            quantity(v)
        }
    };
    let mut list: Vec<String> = vec![];
    for (i, spec) in specs.iter().enumerate() {
        let status = statuses.get(i).unwrap_or(&NULL);
        let item = match st(spec, &["type"]) {
            ty @ ("External" | "Object") => {
                let field = if ty == "External" {
                    "external"
                } else {
                    "object"
                };
                let target = at(spec, &[field, "target"]);
                let cur = at(status, &[field]);
                if !at(target, &["averageValue"]).is_null() {
                    let current =
                        if !cur.is_null() && !at(cur, &["current", "averageValue"]).is_null() {
                            q(at(cur, &["current", "averageValue"]))
                        } else {
                            "<unknown>".to_string()
                        };
                    format!("{current}/{} (avg)", q(at(target, &["averageValue"])))
                } else {
                    let current = if !cur.is_null() {
                        q(at(cur, &["current", "value"]))
                    } else {
                        "<unknown>".to_string()
                    };
                    format!("{current}/{}", q(at(target, &["value"])))
                }
            }
            "Pods" => {
                let cur = at(status, &["pods"]);
                let current = if !cur.is_null() {
                    q(at(cur, &["current", "averageValue"]))
                } else {
                    "<unknown>".to_string()
                };
                format!(
                    "{current}/{}",
                    q(at(spec, &["pods", "target", "averageValue"]))
                )
            }
            ty @ ("Resource" | "ContainerResource") => {
                let field = if ty == "Resource" {
                    "resource"
                } else {
                    "containerResource"
                };
                let name = st(spec, &[field, "name"]);
                let target = at(spec, &[field, "target"]);
                let cur = at(status, &[field]);
                if !at(target, &["averageValue"]).is_null() {
                    let current = if !cur.is_null() {
                        q(at(cur, &["current", "averageValue"]))
                    } else {
                        "<unknown>".to_string()
                    };
                    format!("{name}: {current}/{}", q(at(target, &["averageValue"])))
                } else {
                    let current = match opt_int(cur, &["current", "averageUtilization"]) {
                        Some(u) => format!("{u}%"),
                        None => "<unknown>".to_string(),
                    };
                    let target = match opt_int(target, &["averageUtilization"]) {
                        Some(u) => format!("{u}%"),
                        None => "<auto>".to_string(),
                    };
                    format!("{name}: {current}/{target}")
                }
            }
            _ => "<unknown type>".to_string(),
        };
        list.push(item);
    }
    let count = list.len();
    if count > 2 {
        list.truncate(2);
        format!("{} + {} more...", list.join(", "), count - 2)
    } else {
        list.join(", ")
    }
}
